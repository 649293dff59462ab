"""Exact weights calibration on a distributed engine: a shuffle by DRG, not rows gathered.

``drgsim.calibrate.calibrate`` is four steps, and an engine runs the same four:

1. **Rows** (any partition): :func:`rows_frame` — ``calibration_rows``: the usable cases
   as DRG, ADRG, MDC, year, cost (fen) and LOS; :func:`counts_frame` — their count per
   history year (integers), plus the rows discharged before the year; reduced by addition.
2. **Shuffle by DRG**, then per partition :func:`units_frame` — ``key_statistics``: the
   per-DRG trim and the partial sums of each DRG × ADRG × MDC × per-diem category
   ("unit"). Trimming is per DRG and every pooled level a DRG falls back to (ADRG, MDC,
   all cases) and every per-diem category is a sum over trimmed DRG rows, so the DRG is
   the key that keeps together what a DRG's statistics and its fallbacks need; the
   partial sums are computed in a canonical row order (sorted inside the DRG), so they
   are the single path's bit for bit however the engine partitioned the rows.
3. **Driver** (:func:`driver_weights`): gathers the units (O(DRGs × categories), never
   rows), reduces the all-case mean, and when some DRG lost every case to the trim while
   per-diem rates are checked for plausibility (its cases are then judged against the
   all-case mean, known only now) runs step 2 again on those DRGs' rows only
   (``pending``); then ``assemble`` — the single path's own assembly — builds the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from drgsim.calibrate import (
    PD_SUMS,
    TRIM_SUMS,
    UNIT_COLUMNS,
    CalSpec,
    assemble,
    calibration_rows,
    calibration_spec,
    empty_rows,
    key_statistics,
    no_usable_cases,
    pending_drgs,
    resolve_pending,
    year_counts,
)

#: the Arrow schema of step 1's rows and of step 2's units (Spark declares them)
ROWS_SCHEMA = pa.schema([("drg", pa.string()), ("adrg", pa.string()), ("mdc", pa.string()),
                         ("year", pa.int64()), ("cost_fen", pa.int64()), ("los", pa.float64())])
UNITS_SCHEMA = pa.schema(
    [(c, pa.string()) for c in ("drg", "adrg", "mdc", "pdcat")]
    + [("n", pa.int64())] + [(c, pa.float64()) for c in TRIM_SUMS]
    + [("pn", pa.int64())] + [(c, pa.float64()) for c in PD_SUMS] + [("pending", pa.bool_())]
    + [("part", pa.int64())]
)
COUNTS_SCHEMA = pa.schema([("year", pa.int64()), ("n", pa.int64())])
BEFORE = -1  # the ``year`` of the counts row carrying the rows discharged before the year


def spec_of(yp: Any, year: int) -> CalSpec:
    """The calibration parameters of a year's policy (``yp``: a YearPolicy), as the single
    path reads them (its per-diem categories included)."""
    from drgsim.settlement.simulate import per_diem_categories_of

    return calibration_spec(per_diem_categories_of(yp), year)


def rows_frame(df: pd.DataFrame, spec: CalSpec, columns: dict[str, str] | None = None
               ) -> pd.DataFrame:
    """Step 1 on one partition (any partitioning): its usable history cases."""
    return calibration_rows(df.reset_index(drop=True), spec, columns)


def counts_frame(df: pd.DataFrame, spec: CalSpec, dcol: str,
                 columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Step 1's reduction on one partition: usable cases per history year, and (``year``
    :data:`BEFORE`) every row discharged before the year, to tell "no history" from "no
    usable history"; integers, added up across partitions."""
    rows = rows_frame(df, spec, columns)
    y = pd.to_datetime(df[dcol], errors="coerce").dt.year
    before = int((y < spec.year).sum())
    return pd.DataFrame({"year": np.asarray([*spec.years, BEFORE], dtype=np.int64),
                         "n": np.append(year_counts(rows, spec), before).astype(np.int64)})


def reduce_counts(parts: pd.DataFrame, spec: CalSpec) -> tuple[np.ndarray, int]:
    """The whole history's year counts and rows before the year, from partial counts."""
    tot = parts.groupby("year")["n"].sum()
    counts = np.asarray([int(tot.get(y, 0)) for y in spec.years], dtype=np.int64)
    return counts, int(tot.get(BEFORE, 0))


def units_frame(rows: pd.DataFrame, spec: CalSpec, counts: np.ndarray,
                m_all: float | None = None) -> pd.DataFrame:
    """Step 2 on one partition holding every row of its DRGs (after the shuffle by DRG)."""
    u = key_statistics(rows.reset_index(drop=True), spec, counts, m_all)
    return conform_units(u)


def conform_units(u: pd.DataFrame) -> pd.DataFrame:
    """Units in fixed dtypes (text as object, sums float64, counts int64), even empty."""
    out = {}
    for f in UNITS_SCHEMA:
        col = u[f.name] if f.name in u else pd.Series([], dtype=object)
        if pa.types.is_string(f.type):
            out[f.name] = col.astype(object)
        elif pa.types.is_boolean(f.type):
            out[f.name] = col.astype(bool)
        else:
            out[f.name] = col.astype(f.type.to_pandas_dtype())
    return pd.DataFrame(out, columns=UNIT_COLUMNS).reset_index(drop=True)


def empty_units() -> pd.DataFrame:
    """A zero-row units frame (the meta of step 2)."""
    return conform_units(pd.DataFrame())


def rows_table(table: pa.Table, spec: CalSpec, columns: dict[str, str] | None = None
               ) -> pa.Table:
    """Step 1 on an Arrow batch, in :data:`ROWS_SCHEMA` (Spark's ``mapInArrow``)."""
    r = rows_frame(table.to_pandas(), spec, columns) if table.num_rows else empty_rows()
    return pa.Table.from_pandas(r, schema=ROWS_SCHEMA, preserve_index=False)


def rows_batches(batches: Iterator[pa.RecordBatch], spec: CalSpec,
                 columns: dict[str, str] | None = None) -> Iterator[pa.RecordBatch]:
    """Step 1 over Spark's Arrow batches."""
    for b in batches:
        yield from rows_table(pa.Table.from_batches([b]), spec, columns).to_batches()


def counts_batches(batches: Iterator[pa.RecordBatch], spec: CalSpec, dcol: str,
                   columns: dict[str, str] | None = None) -> Iterator[pa.RecordBatch]:
    """Step 1's reduction over Spark's Arrow batches (one counts frame per batch)."""
    for b in batches:
        c = counts_frame(b.to_pandas(), spec, dcol, columns)
        yield from pa.Table.from_pandas(c, schema=COUNTS_SCHEMA, preserve_index=False
                                        ).to_batches()


def units_table(table: pa.Table, spec: CalSpec, counts: np.ndarray,
                m_all: float | None = None) -> pa.Table:
    """Step 2 on an Arrow group (Spark's ``groupBy("drg").applyInArrow``)."""
    u = units_frame(table.to_pandas(), spec, counts, m_all)
    return pa.Table.from_pandas(u, schema=UNITS_SCHEMA, preserve_index=False)


def driver_weights(
    spec: CalSpec,
    counts: np.ndarray,
    before: int,
    units_of: Callable[[list[str] | None, float | None], pd.DataFrame],
    scheme: Any,
) -> pd.DataFrame:
    """Step 3: the weights table from the gathered units. ``units_of(drgs, m_all)`` runs
    step 2 on the engine (all DRGs when ``drgs`` is None, else only those DRGs' rows)
    and returns the gathered units."""
    from drgsim.calibrate import all_case_mean
    from drgsim.errors import RecordsError

    if not before:
        raise RecordsError(f"no history before {spec.year} to calibrate weights on: "
                           "give weights")
    if not int(np.sum(counts)):
        raise no_usable_cases(spec)
    units = check_whole_drgs(units_of(None, None))
    pend = pending_drgs(units)
    if pend:
        again = check_whole_drgs(units_of(pend, all_case_mean(units, spec)))
        units = resolve_pending(units, again)
    return assemble(units, spec, scheme)


def check_whole_drgs(units: pd.DataFrame) -> pd.DataFrame:
    """Refuse units where a DRG's rows were split between partitions (its trim and means
    would be a part's): every DRG's units must carry one partition token."""
    from drgsim.distributed.partition import DistributedError

    split = units.groupby("drg")["part"].nunique()
    split = split[split > 1]
    if len(split):
        raise DistributedError(
            f"calibration: the rows of DRG {split.index[0]!r} (and {len(split) - 1} more) "
            "were in several partitions; calibration needs a shuffle by DRG")
    return units


__all__ = [
    "BEFORE",
    "check_whole_drgs",
    "COUNTS_SCHEMA",
    "ROWS_SCHEMA",
    "UNITS_SCHEMA",
    "conform_units",
    "counts_batches",
    "counts_frame",
    "driver_weights",
    "empty_units",
    "reduce_counts",
    "rows_batches",
    "rows_frame",
    "rows_table",
    "spec_of",
    "units_frame",
    "units_table",
]
