"""Scheme tables: locating, loading, validating and compiling CHS-DRG tables."""

from drgsim.scheme.paths import DEFAULT_SCHEME, bundled_schemes, resolve_scheme_dir

__all__ = ["DEFAULT_SCHEME", "bundled_schemes", "resolve_scheme_dir"]
