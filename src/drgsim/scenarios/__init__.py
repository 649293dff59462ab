"""Scenario sweeps (issue 18): prepare once, settle many overlaid policies at once."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "Prepared": "drgsim.scenarios.prepare:Prepared",
    "prepare": "drgsim.scenarios.prepare:prepare",
    "Grid": "drgsim.scenarios.grid:Grid",
    "check_keys": "drgsim.scenarios.grid:check_keys",
    "SweepResult": "drgsim.scenarios.sweep:SweepResult",
    "sweep": "drgsim.scenarios.sweep:sweep",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'drgsim.scenarios' has no attribute {name!r}")
    module_name, attr = target.split(":")
    value = getattr(import_module(module_name), attr)
    globals()[name] = value
    return value
