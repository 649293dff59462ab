"""DIP (按病种分值付费): a region's packet catalogue from its history, matching, scores.

``build`` makes a :class:`Catalogue` (packets, level means, auxiliary coefficients) from
history; ``write_catalogue``/``read_catalogue``/``validate_catalogue`` handle its folder.
``match`` (:mod:`drgsim.dip.match`) and ``aux`` (:mod:`drgsim.dip.aux`) load on first use.
Rules and defaults: ../shared/DIP.md; names: DIP_CONTRACT.md.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from drgsim.dip.build import build
from drgsim.dip.tables import (
    Catalogue,
    CatalogueError,
    read_catalogue,
    validate_catalogue,
    write_catalogue,
)

__all__ = [
    "Catalogue",
    "CatalogueError",
    "aux",
    "build",
    "match",
    "read_catalogue",
    "validate_catalogue",
    "write_catalogue",
]


def __getattr__(name: str) -> Any:
    """``match`` and ``aux`` load lazily: the catalogue works without those modules."""
    if name == "match":
        fn = import_module("drgsim.dip.match").match
        globals()["match"] = fn  # the import set dip.match to the module: the function wins
        return fn
    if name == "aux":
        return import_module("drgsim.dip.aux")
    raise AttributeError(f"module 'drgsim.dip' has no attribute {name!r}")
