"""What runs inside Spark's tasks: Arrow in and out around :mod:`drgsim.distributed`.

No rule lives here. Each function converts a Spark Arrow batch or group to what the
engine-neutral functions take, calls them (the same ones the Dask adapter calls), and
converts back to the Arrow schema Spark was promised:

- grouping: :func:`drgsim.distributed.group_table` per Arrow batch;
- DIP: :func:`drgsim.distributed.dip.match_table` per Arrow batch;
- per hospital group: :func:`drgsim.distributed.price_partition`, then its
  ``summary()`` (pickled, one row) for the driver's reduce, or
  :func:`drgsim.distributed.pay_partition` with the broadcast payments (the case rows,
  plus one row carrying the pickled per-case parts of the tables);
- a sweep job (:func:`drgsim.distributed.sweep.run_job`) on the group priced again.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from drgsim.errors import DrgsimError

BLOB = "__drgsim_blob"  # pickled driver-bound parts riding beside the case rows
SUMMARY = pa.schema([(BLOB, pa.binary())])

# one object per Python worker and broadcast key: the broadcast is unpickled once, the
# numba kernels (disk-cached) load on the first batch and stay while Spark reuses the worker
_WORKER: dict[str, Any] = {}


def _cached(bc: Any, key: str) -> Any:
    if key not in _WORKER:
        _WORKER[key] = bc.value
    return _WORKER[key]


def _conform(t: pa.Table, target: pa.Schema) -> pa.Table:
    """The table in Spark's declared Arrow types (metadata dropped: Spark keeps none)."""
    t = t.replace_schema_metadata(None)
    if t.schema.names != target.names:
        raise DrgsimError(f"internal: batch columns {t.schema.names} != {target.names}")
    return t.cast(target) if not t.schema.equals(target) else t


def group_batches(
    batches: Iterator[pa.RecordBatch], bc: Any, key: str, translate: bool, flags: bool,
    names: bool, threads: int, target: pa.Schema,
) -> Iterator[pa.RecordBatch]:
    """Group each Arrow batch with the broadcast scheme (``drgsim.group``'s Arrow path)."""
    from drgsim.distributed import group_table

    cs = _cached(bc, key)
    for b in batches:
        t = group_table(pa.Table.from_batches([b]), cs, translate, flags, names, threads)
        yield from _conform(t, target).to_batches()


def dip_batches(batches: Iterator[pa.RecordBatch], bc: Any, key: str, translate: bool,
                threads: int, target: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Match each Arrow batch to DIP packets with the broadcast scheme and catalogue
    (:func:`drgsim.distributed.dip.match_table`, ``drgsim.dip.match``'s Arrow path)."""
    from drgsim.distributed.dip import match_table

    cs, cat = _cached(bc, key)
    for b in batches:
        t = match_table(pa.Table.from_batches([b]), cat, cs, translate, threads)
        yield from _conform(t, target).to_batches()


def _years(df: pd.DataFrame, dcol: str) -> pd.Series:
    """Discharge years parsed as ``drgsim.prepare`` parses them (NaN: no valid date)."""
    return pd.to_datetime(df[dcol], errors="coerce").dt.year


def scan_batches(batches: Iterator[pa.RecordBatch], hcol: str, dcol: str
                 ) -> Iterator[pa.RecordBatch]:
    """Rows per (discharge year, hospital) of each batch, dates parsed as prepare does."""
    schema = pa.schema([("year", pa.float64()), ("hospital", pa.string()), ("n", pa.int64())])
    for b in batches:
        df = b.select([hcol, dcol]).to_pandas()
        f = pd.DataFrame({"year": _years(df, dcol).astype("float64"),
                          "hospital": df[hcol].astype("string")})
        g = f.groupby(["year", "hospital"], dropna=False).size().rename("n").reset_index()
        yield pa.RecordBatch.from_pandas(g, schema=schema, preserve_index=False)


def year_filter_batches(batches: Iterator[pa.RecordBatch], dcol: str, lo: int | None,
                        hi: int | None, keep_undated: bool, cols: list[str] | None
                        ) -> Iterator[pa.RecordBatch]:
    """The rows whose discharge year is in [lo, hi] (and those without a valid date when
    ``keep_undated``), only ``cols``: the years parsed as prepare parses them."""
    for b in batches:
        y = _years(b.select([dcol]).to_pandas(), dcol)
        keep = y.notna()
        if lo is not None:
            keep &= y >= lo
        if hi is not None:
            keep &= y <= hi
        if keep_undated:
            keep |= y.isna()
        out = b.filter(pa.array(keep.to_numpy(bool)))
        yield out.select(cols) if cols is not None else out


def m_all_batches(batches: Iterator[pa.RecordBatch], columns: dict[str, str] | None
                  ) -> Iterator[pa.RecordBatch]:
    """Per batch of history rows: the cost sum and count of the grouped, payable cases
    (:func:`drgsim.distributed.partition.cost_sum_count`)."""
    from drgsim.distributed.partition import cost_sum_count

    for b in batches:
        s, n = cost_sum_count(b.to_pandas(), columns)
        yield pa.RecordBatch.from_pydict({"s": [s], "n": [n]})


def key_batches(batches: Iterator[pa.RecordBatch], order: list[str], target: pa.Schema
                ) -> Iterator[pa.RecordBatch]:
    """Per batch of matched rows, its distinct DIP pricing keys, each with its first row
    in input order (:func:`drgsim.distributed.dip.weight_keys`)."""
    from drgsim.distributed.dip import weight_keys

    for b in batches:
        k = weight_keys(b.to_pandas(), order)
        t = pa.Table.from_pandas(k, preserve_index=False)
        yield from _conform(t.select(target.names), target).to_batches()


def _priced(table: pa.Table, ctx: Any) -> Any:
    from drgsim.distributed import price_partition

    return price_partition(table.to_pandas(), ctx)


def summary_group(table: pa.Table, ctx: Any) -> pa.Table:
    """One hospital group priced; its summary (totals and sums) pickled in one row."""
    pp = _priced(table, ctx)
    return pa.table({BLOB: [pickle.dumps(pp.summary(), protocol=5)]}, schema=SUMMARY)


def sweep_group(table: pa.Table, ctx: Any, job: Any) -> pa.Table:
    """One hospital group priced again, then one sweep job on its local Prepared
    (:func:`drgsim.distributed.sweep.run_job`); the result pickled in one row."""
    from drgsim.distributed.sweep import run_job

    pp = _priced(table, ctx)
    return pa.table({BLOB: [pickle.dumps(run_job(pp.local, job), protocol=5)]}, schema=SUMMARY)


def pay_group(table: pa.Table, ctx: Any, pays: Any, hids: np.ndarray, schema: pa.Schema
              ) -> pa.Table:
    """One hospital group priced and paid from the broadcast hospital-month payments:
    its case rows (``BLOB`` null), then one row (case columns null) carrying the pickled
    per-case parts of the tables (indices, DRG and pay-status sums)."""
    from drgsim.distributed import pay_partition

    parts = pay_partition(_priced(table, ctx), pays, hids)
    cases = parts.pop("cases")
    names = [n for n in schema.names if n != BLOB]
    body = pa.Table.from_pandas(cases[names], preserve_index=False).replace_schema_metadata(None)
    body = body.append_column(BLOB, pa.nulls(len(cases), pa.binary()))
    blob = {n: pa.nulls(1, schema.field(n).type) for n in names}
    blob[BLOB] = pa.array([pickle.dumps(parts, protocol=5)], pa.binary())
    return pa.concat_tables([body.cast(schema), pa.table(blob, schema=schema)])


__all__ = [
    "BLOB",
    "dip_batches",
    "group_batches",
    "key_batches",
    "m_all_batches",
    "pay_group",
    "scan_batches",
    "summary_group",
    "sweep_group",
    "year_filter_batches",
]
