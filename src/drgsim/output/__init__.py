"""Every file drgsim writes goes through here: written under a temporary name in the
target's directory and renamed onto the target only when complete, so a failed or
interrupted run never leaves a half-written file nor harms an earlier output.

A folder of outputs (:class:`OutputFolder`) writes each file so, records a run
fingerprint, and writes ``manifest.json`` last: a folder without one is incomplete.
"""

from __future__ import annotations

from drgsim.output.atomic import (
    PART_MARKER,
    AtomicFile,
    atomic_open,
    atomic_path,
    is_disk_full,
    write_bytes,
    write_text,
)
from drgsim.output.check import check_output
from drgsim.output.folder import MANIFEST, OutputFolder, fingerprint
from drgsim.output.signals import Terminated, install_signal_handlers

__all__ = [
    "MANIFEST",
    "PART_MARKER",
    "AtomicFile",
    "OutputFolder",
    "Terminated",
    "atomic_open",
    "atomic_path",
    "check_output",
    "fingerprint",
    "install_signal_handlers",
    "is_disk_full",
    "write_bytes",
    "write_text",
]
