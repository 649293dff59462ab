"""Where scheme tables live: a bundled name (``chs_drg_11``) or a folder path."""

from __future__ import annotations

import os
from pathlib import Path

from drgsim.errors import SchemeNotFoundError

DEFAULT_SCHEME = "chs_drg_11"


def bundled_tables_root() -> Path:
    """The folder of bundled scheme tables (``grouper_tables/`` of the checkout).

    ``DRGSIM_TABLES`` overrides it, for installs that keep the tables elsewhere.
    """
    env = os.environ.get("DRGSIM_TABLES")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "grouper_tables"
        if candidate.is_dir():
            return candidate
    return here.parents[3] / "grouper_tables"


def bundled_schemes() -> list[str]:
    """Names of the bundled schemes."""
    root = bundled_tables_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "scheme.csv").is_file())


def resolve_scheme_dir(scheme: str | os.PathLike[str]) -> Path:
    """Resolve a scheme name or folder path to the folder holding its tables."""
    path = Path(scheme)
    if path.is_dir():
        return path.resolve()
    named = bundled_tables_root() / str(scheme)
    if named.is_dir():
        return named.resolve()
    known = ", ".join(bundled_schemes()) or "none found"
    raise SchemeNotFoundError(
        f"scheme {str(scheme)!r} is neither a folder nor a bundled scheme (bundled: {known})"
    )
