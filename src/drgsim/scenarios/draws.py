"""Uncertain assumptions: a fixed number or a distribution, drawn with a seed.

A value is given as a number, or as a mapping with ``dist`` and its parameters:

- ``{dist: uniform, min, max}``
- ``{dist: normal, mean, sd, min?, max?}``
- ``{dist: lognormal, mean, sd, min?, max?}``: ``mean`` and ``sd`` are those of the
  *value* (not of its logarithm): the log has σ² = ln(1 + sd²/mean²), μ = ln(mean) − σ²/2;
  so ``mean > 0``.
- ``{dist: triangular, min, mode, max}``

``min``/``max`` of normal and lognormal clip the draws (a draw below ``min`` is ``min``).
Every drawn value is kept to millionths (the resolution of every ratio the settlement
applies), so a value means the same on the rows and on the cells.

Draws: ``draws`` values per key from ``numpy.random.default_rng([seed, crc32(key)])``, so
the same seed gives the same draws, and adding or removing another key never changes a
key's draws. Draw 0 is a random draw like the others (not the expected value); without
draws a distribution stands for its expected value (the mean, clipped into its bounds; the
mode is not used).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from drgsim.errors import Problem, ScenarioError

DISTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # name: (required parameters, optional parameters)
    "uniform": (("min", "max"), ()),
    "normal": (("mean", "sd"), ("min", "max")),
    "lognormal": (("mean", "sd"), ("min", "max")),
    "triangular": (("min", "mode", "max"), ()),
}
RESOLUTION = 6  # decimals kept of every value (ppm)


@dataclass(frozen=True)
class Dist:
    """One assumption: ``dist`` is "fixed" (``params["value"]``) or a name in :data:`DISTS`."""

    dist: str
    params: dict[str, float]

    @property
    def fixed(self) -> bool:
        return self.dist == "fixed"

    @property
    def lo(self) -> float:
        return self.params.get("min", -math.inf) if not self.fixed else self.params["value"]

    @property
    def hi(self) -> float:
        return self.params.get("max", math.inf) if not self.fixed else self.params["value"]

    def expected(self) -> float:
        """The value standing for the distribution without draws: the mean, clipped."""
        p = self.params
        if self.fixed:
            v = p["value"]
        elif self.dist == "uniform":
            v = (p["min"] + p["max"]) / 2
        elif self.dist == "triangular":
            v = (p["min"] + p["mode"] + p["max"]) / 3
        else:
            v = min(max(p["mean"], self.lo), self.hi)
        return round(float(v), RESOLUTION)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` values (float64, clipped to the bounds, kept to millionths)."""
        p = self.params
        if self.fixed:
            v = np.full(n, p["value"], dtype=np.float64)
        elif self.dist == "uniform":
            v = rng.uniform(p["min"], p["max"], n)
        elif self.dist == "triangular":
            if p["min"] == p["max"]:
                v = np.full(n, p["min"], dtype=np.float64)
            else:
                v = rng.triangular(p["min"], p["mode"], p["max"], n)
        elif self.dist == "normal":
            v = rng.normal(p["mean"], p["sd"], n)
        else:
            s2 = math.log1p((p["sd"] / p["mean"]) ** 2)
            v = rng.lognormal(math.log(p["mean"]) - s2 / 2, math.sqrt(s2), n)
        v = np.clip(v, self.lo, self.hi)
        return np.round(v, RESOLUTION)


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def parse_dist(key: str, spec: Any, source: str = "behaviour") -> Dist:
    """A number or ``{dist: ..., ...}`` -> :class:`Dist`; every problem is a
    :class:`~drgsim.errors.ScenarioError` naming ``key``."""

    def bad(msg: str) -> ScenarioError:
        return ScenarioError([Problem(source, None, key, msg)])

    v = _num(spec)
    if v is not None:
        return Dist("fixed", {"value": v})
    if not isinstance(spec, dict):
        raise bad(f"expected a number or a distribution {{dist: ...}}, got {spec!r}")
    name = spec.get("dist")
    if name not in DISTS:
        raise bad(f"unknown distribution {name!r} (one of: {', '.join(DISTS)})")
    req, opt = DISTS[name]
    unknown = sorted(set(map(str, spec)) - {"dist", *req, *opt})
    if unknown:
        raise bad(
            f"{name}: unknown parameter(s) {', '.join(unknown)} (takes {', '.join(req + opt)})"
        )
    missing = [k for k in req if k not in spec]
    if missing:
        raise bad(f"{name}: missing {', '.join(missing)}")
    params: dict[str, float] = {}
    for k in req + opt:
        if k in spec:
            x = _num(spec[k])
            if x is None:
                raise bad(f"{name}: {k} must be a finite number, got {spec[k]!r}")
            params[k] = x
    lo, hi = params.get("min", -math.inf), params.get("max", math.inf)
    if lo > hi:
        raise bad(f"{name}: min {lo:g} is above max {hi:g}")
    if name == "triangular" and not lo <= params["mode"] <= hi:
        raise bad(f"triangular: mode {params['mode']:g} is outside [min, max]")
    if name in ("normal", "lognormal") and params["sd"] < 0:
        raise bad(f"{name}: sd must be >= 0, got {params['sd']:g}")
    if name == "lognormal" and params["mean"] <= 0:
        raise bad(f"lognormal: mean (of the value) must be > 0, got {params['mean']:g}")
    return Dist(name, params)


def key_rng(seed: int | None, key: str) -> np.random.Generator:
    """The generator of one key: independent of the other keys, fixed by the seed."""
    crc = zlib.crc32(key.encode("utf-8"))
    return np.random.default_rng(None if seed is None else [int(seed), crc])
