"""Write a synthetic region to a folder: hive-partitioned discharges plus two small files.

Layout::

    OUT/discharges/year=2023/month=01/part-0.parquet   (or .csv)
    OUT/hospitals.parquet
    OUT/region.parquet
    OUT/manifest.json       parameters, rows per month, dirty rows per kind, files, fingerprint

Parquet files are written in row groups of ``chunk_size`` rows; the rows and their order
do not depend on it. Same parameters, same bytes. The folder is written through
:class:`drgsim.output.OutputFolder`: each file atomically, ``manifest.json`` last (a folder
without it is incomplete); a re-run with the same parameters reuses what an earlier run
finished, and files of an earlier run with other parameters are removed.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from drgsim import __version__
from drgsim.errors import OutputError
from drgsim.output import AtomicFile, OutputFolder, fingerprint, is_disk_full
from drgsim.synth.region import FundTotals, MonthPlan, SynthError, SyntheticRegion

FORMATS = ("parquet", "csv")
PARQUET_COMPRESSION = "zstd"
#: dictionary-encode only the low-cardinality columns (the others cost time for nothing)
DICTIONARY_COLUMNS = ["hospital_id", "fund", "dept", "procedures", "synth_drg",
                      "synth_followup", "synth_dirt"]


@dataclass
class WriteResult:
    """What :func:`write_region` wrote."""

    out: Path
    rows: int
    files: list[Path]
    region: pa.Table
    dirt: dict[str, int]


class _MonthWriter:
    """Writes one month's partition file chunk by chunk."""

    def __init__(self, folder: OutputFolder, name: str, fmt: str, encoding: str,
                 chunk_size: int):
        self.folder, self.name = folder, name
        self.fmt, self.encoding, self.chunk_size = fmt, encoding, chunk_size
        self.buf: list[pa.Table] = []
        self.have = 0
        self.writer: pq.ParquetWriter | None = None
        self.fh: io.BufferedWriter | None = None
        #: None when an earlier run with the same fingerprint finished this file (reused)
        self.file: AtomicFile | None = None if folder.reusable(name) else folder.start(name)
        self.path = self.file.path if self.file is not None else folder.path / name

    def add(self, table: pa.Table) -> None:
        if self.file is None:
            return
        self.buf.append(table)
        self.have += table.num_rows
        while self.have >= self.chunk_size:
            whole = pa.concat_tables(self.buf)
            self._write(whole.slice(0, self.chunk_size))
            rest = whole.slice(self.chunk_size)
            self.buf, self.have = [rest], rest.num_rows

    def _write(self, table: pa.Table) -> None:
        if self.fmt == "parquet":
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.path, table.schema,
                                               compression=PARQUET_COMPRESSION,
                                               use_dictionary=DICTIONARY_COLUMNS)
            self.writer.write_table(table, row_group_size=self.chunk_size)
        else:
            first = self.fh is None
            if first:
                self.fh = open(self.path, "wb")  # noqa: SIM115 - closed in close()
            sink = io.BytesIO()
            pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=first,
                                                            quoting_style="none"))
            data = sink.getvalue()
            if self.encoding.lower().replace("-", "") not in ("utf8",):
                data = data.decode("utf-8").encode(self.encoding)
            self.fh.write(data)

    def close(self) -> None:
        if self.file is None:
            self.folder.keep(self.name)
            return
        if self.have:
            self._write(pa.concat_tables(self.buf))
        self._close_sinks()
        self.folder.finish(self.file)

    def _close_sinks(self) -> None:
        w, fh, self.writer, self.fh = self.writer, self.fh, None, None
        if w is not None:
            w.close()
        if fh is not None:
            fh.close()

    def abort(self) -> None:
        """Interrupted: drop the temporary file (an earlier complete file stays)."""
        if self.file is not None and not self.file.done:
            with contextlib.suppress(Exception):
                self._close_sinks()
            self.file.discard()


def _write_small(table: pa.Table, folder: OutputFolder, name: str, fmt: str,
                 encoding: str) -> Path:
    with folder.file(name) as path:
        if fmt == "parquet":
            pq.write_table(table, path, compression=PARQUET_COMPRESSION)
        else:
            sink = io.BytesIO()
            pacsv.write_csv(table, sink, pacsv.WriteOptions(quoting_style="none"))
            data = sink.getvalue()
            if encoding.lower().replace("-", "") != "utf8":
                data = data.decode("utf-8").encode(encoding)
            path.write_bytes(data)
    return folder.path / name


def _reused(out: Path, manifest: dict, fmt: str, encoding: str) -> WriteResult:
    """The result of an earlier complete run with the same fingerprint (nothing written)."""
    ext = "parquet" if fmt == "parquet" else "csv"
    region_path = out / f"region.{ext}"
    if fmt == "parquet":
        region_tbl = pq.read_table(region_path)
    else:
        data = region_path.read_bytes().decode(encoding).encode("utf-8")
        region_tbl = pacsv.read_csv(io.BytesIO(data))
    names = sorted(n for n in manifest["files"] if n.startswith("discharges/"))
    files = [out / n for n in names] + [out / f"hospitals.{ext}", region_path]
    return WriteResult(out, int(manifest["rows"]), files, region_tbl,
                       dict(manifest.get("dirty_rows_per_kind", {})))


def write_region(
    region: SyntheticRegion,
    out: str | os.PathLike[str],
    fmt: str = "parquet",
    encoding: str = "utf-8",
    chunk_size: int = 262_144,
    progress: Callable[[int], None] | None = None,
) -> WriteResult:
    """Write ``region`` under ``out`` (created; files of an earlier run are replaced).

    A folder already complete for the same parameters (its manifest's fingerprint) is
    reused as it is; a re-run after an interruption reuses the month files finished.
    """
    if fmt not in FORMATS:
        raise SynthError(f"format must be one of {FORMATS}, got {fmt!r}")
    if chunk_size < 1:
        raise SynthError(f"chunk_size must be >= 1, got {chunk_size}")
    if fmt == "parquet" and encoding.lower().replace("-", "") != "utf8":
        raise SynthError("--encoding applies to --format csv only (parquet text is UTF-8)")
    try:
        "男".encode(encoding)
    except LookupError as e:
        raise SynthError(f"unknown encoding {encoding!r}") from e
    out = Path(out)
    text = fmt == "csv"
    ext = "parquet" if fmt == "parquet" else "csv"
    params = {
        "discharges": region.discharges, "hospitals": region.n_hospitals,
        "years": list(region.years), "seed": region.seed,
        "dirty_rate": region.dirty_rate, "scheme": region.scheme, "format": fmt,
        "encoding": encoding if text else "utf-8",
    }
    scheme_dir = Path(str(region.scheme))
    fp = fingerprint([scheme_dir] if scheme_dir.is_dir() else [],
                     {**params, "chunk_size": chunk_size, "writer": "synth"})
    done = OutputFolder.complete(out, fp)
    if done is not None:
        if progress is not None:
            progress(int(done["rows"]))
        return _reused(out, done, fmt, encoding)
    folder = OutputFolder(out, fp, writer="synth", owned=["discharges/year=*/month=*/part-*.*",
                                          f"hospitals.{ext}", f"region.{ext}"]).open()
    totals = FundTotals()
    files: list[Path] = []
    month_rows: dict[str, int] = {}
    dirt: dict[str, int] = {}
    current: tuple[MonthPlan, _MonthWriter] | None = None
    rows = 0

    def open_month(m: MonthPlan) -> _MonthWriter:
        name = f"discharges/year={m.year}/month={m.month:02d}/part-0.{ext}"
        files.append(out / name)
        w = _MonthWriter(folder, name, fmt, encoding, chunk_size)
        writers.append(w)
        return w

    # encoding and compression run on a writer thread (pyarrow releases the GIL), in order
    pending: deque[Future] = deque()
    pool = ThreadPoolExecutor(1)
    writers: list[_MonthWriter] = []

    def submit(fn: Callable, *args) -> None:
        pending.append(pool.submit(fn, *args))
        while len(pending) > 3 or (pending and pending[0].done()):
            pending.popleft().result()

    try:
        for month, table in region.iter_blocks(text=text, totals=totals):
            if current is None or current[0] is not month:
                if current is not None:
                    submit(current[1].close)
                current = (month, open_month(month))
            submit(current[1].add, table)
            rows += table.num_rows
            key = f"{month.year}-{month.month:02d}"
            month_rows[key] = month_rows.get(key, 0) + table.num_rows
            counts = pc.value_counts(table.column("synth_dirt").drop_null())
            for item in counts.to_pylist():
                dirt[item["values"]] = dirt.get(item["values"], 0) + item["counts"]
            if progress is not None:
                progress(table.num_rows)
        if current is not None:
            submit(current[1].close)
        while pending:
            pending.popleft().result()
    except BaseException as exc:
        pool.shutdown(wait=True, cancel_futures=True)
        for w in writers:
            w.abort()
        if is_disk_full(exc):
            raise OutputError(f"{out}: disk full ({exc}); the folder is incomplete "
                              "(no manifest.json)") from exc
        raise
    finally:
        pool.shutdown(wait=True)

    region_tbl = region.region_table(totals)
    hosp_path = _write_small(region.hospitals_table(), folder, f"hospitals.{ext}", fmt, encoding)
    region_path = _write_small(region_tbl, folder, f"region.{ext}", fmt, encoding)
    manifest = {
        "generator": f"drgsim {__version__} synth",
        "parameters": params,
        "rows": rows,
        "rows_per_month": month_rows,
        "dirty_rows_per_kind": dict(sorted(dirt.items())),
        "columns_note": "synth_* columns are generator truth, not part of a real export: "
                        "synth_drg (intended DRG), synth_followup (readmission or near miss), "
                        "synth_followup_of (case_id of the earlier stay), synth_dirt (dirt kind)",
    }
    folder.commit(manifest)  # manifest.json, last
    return WriteResult(out, rows, [*files, hosp_path, region_path], region_tbl, dirt)
