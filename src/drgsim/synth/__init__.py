"""Synthetic region generator: realistic, seeded discharge data for demos, tests, benchmarks.

``region(out, ...)`` writes a region to a folder (hive-partitioned discharges, hospitals,
a fund table per year); :class:`SyntheticRegion` gives the same data in memory, block by
block. Cases are drawn from the scheme tables so that they group like real ones; see
``drgsim synth --help`` and the "Synthetic region" section of the README.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from drgsim.synth import params
from drgsim.synth.dirt import BAD_CODE, CHECK_FAILED, DIRT_KINDS, SEX_CONFLICT, UNCHANGED, DirtKind
from drgsim.synth.region import SynthError, SyntheticRegion, discharges
from drgsim.synth.writer import FORMATS, WriteResult, write_region

__all__ = [
    "BAD_CODE",
    "CHECK_FAILED",
    "DIRT_KINDS",
    "FORMATS",
    "SEX_CONFLICT",
    "UNCHANGED",
    "DirtKind",
    "SynthError",
    "SyntheticRegion",
    "WriteResult",
    "discharges",
    "params",
    "region",
]


def region(
    out: str | os.PathLike[str],
    *,
    discharges: int = params.DEFAULT_DISCHARGES,
    hospitals: int = params.DEFAULT_HOSPITALS,
    years: Sequence[int] = params.DEFAULT_YEARS,
    seed: int = 0,
    dirty_rate: float = params.DEFAULT_DIRTY_RATE,
    format: str = "parquet",  # noqa: A002 - mirrors the --format option
    encoding: str = "utf-8",
    chunk_size: int = 262_144,
    scheme: str = "chs_drg_11",
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> WriteResult:
    """Generate a synthetic region and write it under ``out``.

    ``discharges`` is the total over all ``years``. Same arguments, same bytes; another
    ``chunk_size`` (parquet row-group size) or ``workers`` gives the same rows in the same order.
    """
    if workers is None:  # one core generates, the other encodes and compresses
        workers = max(1, (os.cpu_count() or 1) - 1)
    reg = SyntheticRegion(discharges, hospitals, years, seed, dirty_rate, scheme, workers)
    return write_region(reg, out, format, encoding, chunk_size, progress)
