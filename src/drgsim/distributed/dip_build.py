"""The DIP catalogue build on a distributed engine: a shuffle by assigned packet.

The engine runs the steps of :mod:`drgsim.dip.steps` (which ``drgsim.dip.build`` runs on
one part): years, scan and per-row keys on any partition; key counts, status counts and
the history hash reduced to the driver; core packets and folds decided there from the
counts; the key → packet map applied per row; a shuffle by the *assigned* packet (a
comprehensive packet pools many keys) and per-packet statistics per partition; the
catalogue assembled on the driver. The driver holds per-key and per-packet statistics,
never history rows; the result equals ``dip.build`` of the same rows table for table,
whatever the partitioning and row order. Partial results travel as one-row frames of a
pickled blob (:data:`BLOB_SCHEMA`), so both adapters move them alike.

Not returned on an engine: the per-row ``assigned`` frame of ``dip.build`` (it is O(rows);
match the rows against the catalogue instead).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow as pa

from drgsim.dip import steps as S

BLOB_SCHEMA = pa.schema([("blob", pa.binary())])
#: the per-row frame's Arrow schema, and with the assigned packet
ROWS_SCHEMA = pa.schema([(c, pa.string() if t == "object" else pa.from_numpy_dtype(t))
                         for c, t in S.ROW_DTYPES.items()])
ASSIGNED_SCHEMA = pa.schema([(c, pa.from_numpy_dtype(t)) for c, t in S.ASSIGNED_DTYPES.items()])


def blob_frame(obj: Any) -> pd.DataFrame:
    """One partial result as a one-row frame (Dask's partition output)."""
    return pd.DataFrame({"blob": pd.Series([pickle.dumps(obj)], dtype=object)})


def empty_blobs() -> pd.DataFrame:
    return pd.DataFrame({"blob": pd.Series([], dtype=object)})


def blob_table(obj: Any) -> pa.Table:
    return pa.table({"blob": pa.array([pickle.dumps(obj)], pa.binary())})


def unblob(frame: Any) -> list[Any]:
    """The partial results of a gathered blob frame or Arrow table (our own pickles)."""
    col = frame.column("blob").to_pylist() if isinstance(frame, pa.Table) else \
        frame["blob"].tolist()
    return [pickle.loads(b) for b in col]


# ---------------------------------------------------------------- driver setup

setup = S.read_inputs  # what dip.build reads before the history (tables validated first)


def has_share(names: list[str], columns: dict[str, str] | None) -> bool:
    """Whether the history carries the patients' share (as ``read_history`` decides)."""
    from drgsim.dip.build import _col
    from drgsim.pricing.cases import SHARE_PARTS

    return _col(names, "patient_share", columns) is not None or \
        any(c in names for c in SHARE_PARTS)


plan_of = S.plan_of  # step 1 on the driver


reduce_scans = S.reduce_scans  # step 2 on the driver


def empty_rows() -> pd.DataFrame:
    """The per-row frame's zero-row meta."""
    return S.conform_rows(pd.DataFrame())


def driver_keys(plan: S.Plan, reductions: list[dict[str, Any]], unmatched: int,
                share: bool) -> tuple[S.Plan, S.Reduced, pd.DataFrame, pd.DataFrame]:
    """Step 4 on the driver: the reduced counts, the key → packet map, the packets."""
    red = S.combine_reductions(reductions, share)
    red.unmatched = unmatched
    plan, kmap, table = S.decide_packets(plan, red)
    return plan, red, kmap, table


def driver_catalogue(plan: S.Plan, table: pd.DataFrame, red: S.Reduced,
                     stats: list[dict[str, Any]], share: bool) -> Any:
    """Step 6 on the driver (refuses a packet split over partitions)."""
    stats = [s for s in stats if s is not None]
    return S.assemble(plan, table, red, stats, share, S.AUX_NOTE)


# ---------------------------------------------------------------- per partition

def _history(part: Any, columns: dict[str, str] | None) -> Any:
    from drgsim.dip.build import read_history

    if isinstance(part, pd.DataFrame):
        part = part.reset_index(drop=True)
    return read_history(part, columns)


def _rows_of(part: Any) -> int:
    return part.num_rows if isinstance(part, pa.Table) else len(part)


def years_frame(part: Any, columns: dict[str, str] | None) -> pd.DataFrame:
    """Step 1 on a partition: its distinct valid years."""
    import numpy as np

    if not _rows_of(part):
        return blob_frame(np.zeros(0, np.int64))
    return blob_frame(S.history_years(_history(part, columns)))


def scan_frame(part: Any, plan: S.Plan) -> pd.DataFrame:
    """Step 2 on a partition."""
    if not _rows_of(part):
        return blob_frame({"sums": None, "unmatched": set()})
    return blob_frame(S.scan_sums(_history(part, plan.columns), plan))


def rows_frame(part: Any, plan: S.Plan) -> pd.DataFrame:
    """Step 3 on a partition: its per-row frame."""
    if not _rows_of(part):
        return S.conform_rows(pd.DataFrame())
    return S.case_rows(_history(part, plan.columns), plan)


def reduce_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Step 3's reduction on a rows partition."""
    return blob_frame(S.reduce_rows(S.conform_rows(rows)))


def assign_frame(rows: pd.DataFrame, kmap: pd.DataFrame) -> pd.DataFrame:
    """Step 4 per row: usable rows with their packet (the shuffle key)."""
    return S.assign_rows(S.conform_rows(rows), kmap)


def empty_assigned() -> pd.DataFrame:
    return S.conform_rows(pd.DataFrame(), S.ASSIGNED_DTYPES)


def stats_frame(rows: pd.DataFrame, plan: S.Plan) -> pd.DataFrame:
    """Step 5 on the rows of whole packets (after the shuffle by packet)."""
    if not len(rows):
        return empty_blobs()
    return blob_frame(S.packet_statistics(S.conform_rows(rows, S.ASSIGNED_DTYPES), plan))


# ---------------------------------------------------------------- Arrow (Spark)

def _blobs_to_table(frames: list[pd.DataFrame]) -> pa.Table:
    df = pd.concat(frames, ignore_index=True) if frames else empty_blobs()
    return pa.Table.from_pandas(df, schema=BLOB_SCHEMA, preserve_index=False)


def blob_batches(batches: Iterator[pa.RecordBatch], fn: Any, *args: Any
                 ) -> Iterator[pa.RecordBatch]:
    """``fn(batch as Arrow table, *args)`` (a blob frame) over Spark's Arrow batches."""
    for b in batches:
        yield from _blobs_to_table([fn(pa.Table.from_batches([b]), *args)]).to_batches()


def rows_batches(batches: Iterator[pa.RecordBatch], plan: S.Plan) -> Iterator[pa.RecordBatch]:
    """Step 3 over Spark's Arrow batches, in :data:`ROWS_SCHEMA`."""
    for b in batches:
        r = rows_frame(pa.Table.from_batches([b]), plan)
        yield from pa.Table.from_pandas(r, schema=ROWS_SCHEMA, preserve_index=False
                                        ).to_batches()


def reduce_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for b in batches:
        yield from _blobs_to_table([reduce_frame(b.to_pandas())]).to_batches()


def assign_batches(batches: Iterator[pa.RecordBatch], kmap: pd.DataFrame
                   ) -> Iterator[pa.RecordBatch]:
    for b in batches:
        a = assign_frame(b.to_pandas(), kmap)
        yield from pa.Table.from_pandas(a, schema=ASSIGNED_SCHEMA, preserve_index=False
                                        ).to_batches()


def stats_table(table: pa.Table, plan: S.Plan) -> pa.Table:
    """Step 5 on an Arrow group (Spark's ``groupBy("packet").applyInArrow``)."""
    return _blobs_to_table([stats_frame(table.to_pandas(), plan)])


__all__ = [
    "ASSIGNED_SCHEMA", "BLOB_SCHEMA", "ROWS_SCHEMA", "assign_batches", "assign_frame",
    "blob_batches", "blob_frame", "blob_table", "driver_catalogue", "driver_keys",
    "empty_assigned", "empty_blobs", "empty_rows", "reduce_scans", "has_share", "plan_of", "reduce_batches",
    "reduce_frame", "rows_batches", "rows_frame", "scan_frame", "setup", "stats_frame",
    "stats_table", "unblob", "years_frame",
]
