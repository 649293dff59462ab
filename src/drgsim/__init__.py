"""drgsim: CHS-DRG/DIP grouping, point pricing and regional budget simulation.

The public API is small and imported lazily so that ``import drgsim`` (and the CLI)
start fast; the heavy modules (numba kernels, pyarrow) load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute"
_LAZY = {
    "Grid": "drgsim.scenarios.grid:Grid",
    "explain": "drgsim.grouper.explain:explain",
    "group": "drgsim.grouper:group",
    "load_scheme": "drgsim.grouper:load_scheme",
    "prepare": "drgsim.scenarios.prepare:prepare",
    "read_records": "drgsim.records:read_records",
    "simulate": "drgsim.settlement.simulate:simulate",
    "synth": "drgsim.synth:__module__",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'drgsim' has no attribute {name!r}")
    module_name, attr = target.split(":")
    module = import_module(module_name)
    value = module if attr == "__module__" else getattr(module, attr)
    globals()[name] = value
    return value
