"""Group a file into a file, batch by batch, with bounded memory."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa

from drgsim.errors import RecordsError
from drgsim.grouper.core import GroupSummary, group_arrow_result, load_scheme
from drgsim.inputs.sources import open_input
from drgsim.output import AtomicFile, check_output
from drgsim.records import check_columns, count_rows


def _lists_as_text(table: pa.Table) -> pa.Table:
    """CSV has no list type: list columns (``flags``) are written joined by ``|``."""
    import pyarrow.compute as pc

    for i, f in enumerate(table.schema):
        if pa.types.is_list(f.type) or pa.types.is_large_list(f.type):
            col = table.column(i)
            col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            table = table.set_column(i, f.name, pc.fill_null(pc.binary_join(col, "|"), ""))
    return table


#: output formats ``group`` writes, by file name ending
OUTPUT_FORMATS = (".parquet", ".pq", ".csv")

# Rows per streamed batch: small enough that writing one batch overlaps grouping the next
# (and memory stays low), large enough that per-batch overhead is negligible.
DEFAULT_BATCH_ROWS = 1 << 18


class _Writer:
    """Parquet or CSV output chosen by the target's extension, written to ``path`` (the
    temporary file that becomes the target when complete)."""

    def __init__(self, target: Path, path: Path):
        self.path = path
        self.kind = "csv" if target.name.lower().endswith(".csv") else "parquet"
        self._w = None
        self.schema: pa.Schema | None = None

    def write(self, table: pa.Table) -> None:
        if self.kind == "csv":
            table = _lists_as_text(table)
        if self._w is None:
            self.schema = table.schema
            if self.kind == "parquet":
                import pyarrow.parquet as pq

                from drgsim.grouper.batchio import parquet_write_options

                self._w = pq.ParquetWriter(self.path, table.schema, **parquet_write_options(table))
            else:
                import pyarrow.csv as pacsv

                self._w = pacsv.CSVWriter(self.path, table.schema.remove_metadata())
        elif table.schema != self.schema:
            table = table.cast(self.schema)
        if self.kind == "csv":
            table = table.replace_schema_metadata(None)
        self._w.write_table(table)

    def close(self) -> None:
        w, self._w = self._w, None
        if w is not None:
            w.close()


def group_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    scheme="chs_drg_11",
    translate: bool = False,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    threads: int | None = None,
    encoding: str | None = None,
    progress: Callable[[int], None] | None = None,
    column_map=None,
    flags: bool = False,
    names: bool = False,
    bad_lines: str = "error",
    glob: str | None = None,
    sheet: str | int | None = None,
    needs: dict[str, str] | None = None,
    matcher: Callable[[pa.Table], tuple[pa.Table, Any]] | None = None,
    status_labels: list[str] | None = None,
) -> GroupSummary:
    """Stream ``src`` (parquet, folder of parquet, CSV, .xlsx) through the grouper into ``dst``.

    The input is checked whole before any output (:func:`drgsim.inputs.sources.open_input`);
    memory is bounded by ``batch_rows``; the output carries provenance metadata. ``dst``
    is checked before any work (not the input, a writable folder, .parquet or .csv) and
    written atomically: an error or interruption leaves no file there and an earlier
    output untouched. ``matcher`` (batch → (table, status indices into ``status_labels``))
    replaces DRG grouping, e.g. DIP matching (:mod:`drgsim.dip.match`).
    """
    check_output(dst, [src], OUTPUT_FORMATS)
    cs = load_scheme(scheme)
    source = open_input(src, encoding=encoding, bad_lines=bad_lines, glob=glob, sheet=sheet,
                        column_map=column_map)
    have = source.empty_table().schema.names
    for opt, col in (needs or {}).items():  # e.g. --compare COLUMN: checked before any work
        if col not in have:
            raise RecordsError(f"{opt} {col}: no column {col!r} in {src} (columns: "
                               f"{', '.join(have[:20])}{', ...' if len(have) > 20 else ''})")
    summary = GroupSummary(notes=list(source.notes))
    summary.missing_columns = check_columns(source.empty_table().schema.names)
    tmp = AtomicFile(dst)  # renamed onto dst when the ``with`` below completes, else removed
    writer = _Writer(Path(dst), tmp.path)
    labels = status_labels or cs.out_status

    def run(batch: pa.Table) -> tuple[pa.Table, Any]:
        if matcher is not None:
            return matcher(batch)
        out, res = group_arrow_result(batch, cs, translate, threads, flags, names)
        return out, res.status

    t0 = time.perf_counter()
    first = True
    # Writing batch k (pyarrow, GIL released) overlaps grouping batch k+1 (numba, nogil).
    with tmp, ThreadPoolExecutor(1) as pool:
        pending: Future | None = None
        try:
            for batch in source.batches(batch_rows):
                first = False
                out, status = run(batch)
                summary.add(status, labels)
                if pending is not None:
                    pending.result()
                pending = pool.submit(writer.write, out)
                if progress:
                    progress(out.num_rows)
            if pending is not None:
                pending.result()
                pending = None
            if first:  # no rows (header-only CSV, zero-row parquet): columns, no rows
                empty = source.empty_table()
                writer.write(run(empty)[0])
        finally:
            if pending is not None:
                pending.exception()
            writer.close()
    side = source.write_malformed(dst)
    if side is not None:
        summary.sidecars.append(str(side))
        summary.notes.append(f"malformed rows' raw text -> {side}")
    summary.seconds = time.perf_counter() - t0
    return summary


def input_rows(src: str | os.PathLike[str], glob: str | None = None) -> int | None:
    """Row count for progress bars, when the input's metadata has it."""
    try:
        return count_rows(src, glob)
    except Exception:
        return None
