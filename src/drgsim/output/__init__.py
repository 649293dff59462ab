"""Every file drgsim writes goes through here: written under a temporary name in the
target's directory and renamed onto the target only when complete, so a failed or
interrupted run never leaves a half-written file nor harms an earlier output."""

from __future__ import annotations

from drgsim.output.atomic import atomic_open, atomic_path

__all__ = ["atomic_path", "atomic_open"]
