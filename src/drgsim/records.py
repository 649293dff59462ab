"""Discharge records in: files, DataFrames and Arrow tables, read as the scheme README says.

Record fields are read once into plain arrays: integer fields become int64 with
``ABSENT`` for anything that is not an integer (scheme README section 3); code fields
become text, never numbers; every other column passes through untouched.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drgsim.constants import ABSENT, SATURATE
from drgsim.errors import MissingColumnError, RecordsError

if TYPE_CHECKING:  # pandas loads only when a DataFrame comes in (a faster CLI start)
    import pandas as pd

RECORD_FIELDS = (
    "case_id", "sex", "age_years", "age_days", "birth_weight_g", "dept", "los_days",
    "discharge_mode", "diagnoses", "procedures",
)
REQUIRED_FIELDS = ("case_id", "sex", "age_years", "diagnoses")
INT_FIELDS = ("sex", "age_years", "age_days", "birth_weight_g", "los_days", "discharge_mode")
CODE_FIELDS = ("diagnoses", "procedures")
TEXT_FIELDS = ("case_id", "dept", *CODE_FIELDS)
OUTPUT_COLUMNS = ("mdc", "adrg", "drg", "status")

_SATURATE = SATURATE


# ---------------------------------------------------------------- field parsing

def _chunks(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        return arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    return arr


def int_field(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Read an integer field: text per the README's integer literal, typed values as given.

    Returns int64 with ``ABSENT`` for nulls, non-integers and non-numeric text.
    """
    arr = _chunks(arr)
    t = arr.type
    n = len(arr)
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _int_text(arr)
    if pa.types.is_integer(t):
        vals = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        if pa.types.is_uint64(t):
            vals = np.minimum(pc.fill_null(arr, 0).to_numpy(zero_copy_only=False),
                              _SATURATE).astype(np.int64)
        valid = arr.is_valid().to_numpy(zero_copy_only=False)
        return np.where(valid, np.clip(vals, -_SATURATE, _SATURATE), ABSENT).astype(np.int64)
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        f = pc.cast(arr, pa.float64(), safe=False) if pa.types.is_decimal(t) else pc.cast(arr, pa.float64())
        x = f.to_numpy(zero_copy_only=False).astype(np.float64)
        valid = arr.is_valid().to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            whole = valid & np.isfinite(x) & (np.floor(x) == x)
        clipped = np.clip(np.where(whole, x, 0.0), -_SATURATE, _SATURATE)
        return np.where(whole, clipped.astype(np.int64), ABSENT).astype(np.int64)
    return np.full(n, ABSENT, dtype=np.int64)  # booleans, dates, nulls, ...: not integers


def _int_text(arr: pa.Array) -> np.ndarray:
    """Text integers via the byte kernel; non-ASCII fields (Unicode spaces) via Arrow."""
    from drgsim.textkernels import parse_ints, string_buffers

    n = len(arr)
    offsets, data = string_buffers(arr)
    valid = arr.is_valid().to_numpy(zero_copy_only=False) if arr.null_count else np.ones(n, bool)
    out = np.empty(n, dtype=np.int64)
    slow = np.zeros(n, dtype=np.bool_)
    parse_ints(offsets, data, valid, max(1, min(n, 16)), out, slow)
    if slow.any():
        idx = np.flatnonzero(slow)
        out[idx] = _int_text_arrow(arr.take(pa.array(idx)))
    return out


def _int_text_arrow(arr: pa.Array) -> np.ndarray:
    """Unicode-aware slow path of :func:`_int_text` (Python's notion of whitespace)."""
    s = pc.utf8_trim_whitespace(arr)
    s = pc.replace_substring_regex(s, r"^(-?[0-9]+)\.0+$", r"\1")
    small = pc.fill_null(pc.match_substring_regex(s, r"^-?[0-9]{1,18}$"), False)
    big = pc.fill_null(pc.match_substring_regex(s, r"^-?[0-9]{19,}$"), False)
    vals = pc.cast(pc.if_else(small, s, "0"), pa.int64()).to_numpy(zero_copy_only=False)
    out = np.where(small.to_numpy(zero_copy_only=False), vals, ABSENT)
    if pc.any(big).as_py():
        bigm = big.to_numpy(zero_copy_only=False)
        neg = pc.fill_null(pc.starts_with(s, "-"), False).to_numpy(zero_copy_only=False)
        out[bigm & neg] = -_SATURATE
        out[bigm & ~neg] = _SATURATE
    return out.astype(np.int64)


def code_field(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Read a code field as text: ``|``/``,``-joined strings, or list<string> joined by ``|``.

    Nulls become the empty field. Numbers are turned into their text (issue 13 flags them).
    """
    arr = _chunks(arr)
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = arr.type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        # non-null elements joined by "|": drop null elements, then join
        flat = pc.list_flatten(arr)
        parents = pc.list_parent_indices(arr)
        keep = flat.is_valid()
        flat = pc.filter(flat, keep)
        parents = pc.filter(parents, keep).to_numpy(zero_copy_only=False)
        counts = np.bincount(parents, minlength=len(arr)) if len(parents) else np.zeros(len(arr), np.int64)
        offsets = np.zeros(len(arr) + 1, dtype=np.int32)
        np.cumsum(counts, out=offsets[1:])
        flat = code_field(flat)
        lists = pa.ListArray.from_arrays(pa.array(offsets), flat)
        return pc.fill_null(pc.binary_join(lists, "|"), "")
    if pa.types.is_null(t):
        return pa.array([""] * len(arr), type=pa.string())
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        try:
            arr = pc.cast(arr, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return pa.array([""] * len(arr), type=pa.string())
    if pa.types.is_large_string(arr.type):
        arr = pc.cast(arr, pa.string())
    return pc.fill_null(arr, "")


# ---------------------------------------------------------------- record batches

@dataclass
class RecordFields:
    """The fields the grouper reads, for one batch of records."""

    n: int
    ints: dict[str, np.ndarray]
    diagnoses: pa.Array
    procedures: pa.Array
    missing: tuple[str, ...] = field(default=())  # optional record columns the input lacks


def check_columns(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Raise if a required column is missing; return the optional ones that are."""
    have = set(names)
    missing_req = [c for c in REQUIRED_FIELDS if c not in have]
    if missing_req:
        raise MissingColumnError(
            f"required column(s) missing: {', '.join(missing_req)} "
            f"(required: {', '.join(REQUIRED_FIELDS)}; found: {', '.join(names) or 'none'})"
        )
    return tuple(c for c in RECORD_FIELDS if c not in have)


def fields_from_table(table: pa.Table | pa.RecordBatch) -> RecordFields:
    """Read the record fields of an Arrow table or batch (columns already checked)."""
    names = table.schema.names
    missing = check_columns(names)
    n = table.num_rows
    ints = {}
    for f in INT_FIELDS:
        ints[f] = int_field(table.column(f)) if f in names else np.full(n, ABSENT, np.int64)
    empty = pa.array([""] * n, type=pa.string()) if ("procedures" not in names) else None
    return RecordFields(
        n=n,
        ints=ints,
        diagnoses=code_field(table.column("diagnoses")),
        procedures=code_field(table.column("procedures")) if empty is None else empty,
        missing=missing,
    )


def _object_to_arrow(values: pd.Series, name: str) -> pa.Array:
    """Mixed-type object columns (None, ints, text...) from pandas: element by element.

    Only ill-typed DataFrames take this path; typed and Arrow input never do.
    """
    def as_text(v: Any) -> str | None:
        if v is None or (isinstance(v, float) and v != v):
            return None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        if isinstance(v, (list, tuple, np.ndarray)):
            return "|".join(str(x) for x in v if x is not None)
        return str(v)

    return pa.array([as_text(v) for v in values.tolist()], type=pa.string())


def dataframe_record_table(df: pd.DataFrame) -> pa.Table:
    """The record columns of a DataFrame as Arrow, tolerant of mixed-type object columns."""
    cols = {}
    for name in RECORD_FIELDS:
        if name not in df.columns:
            continue
        s = df[name]
        try:
            arr = pa.array(s, from_pandas=True)
            if pa.types.is_struct(arr.type) or pa.types.is_binary(arr.type):
                raise pa.ArrowInvalid("unsupported type")
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            arr = _object_to_arrow(s, name)
        cols[name] = arr
    return pa.table(cols) if cols else pa.table({})


# ---------------------------------------------------------------- files

def _csv_options(path: Path, encoding: str | None, all_text: bool = True):
    import pyarrow.csv as pacsv

    from drgsim.inputs.encoding import arrow_encoding, detect_encoding

    enc = encoding or detect_encoding(path)
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    text = head.decode(enc, errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    import csv
    import io

    header = next(csv.reader(io.StringIO(text)), [])
    # Every CSV column is read as text: record fields are parsed by the README's rules, and
    # pass-through columns come out exactly as they went in ("1234.50" stays "1234.50");
    # type inference would also fail a whole batch on one odd value deep in the file.
    types = {c: pa.string() for c in header}
    read = pacsv.ReadOptions(encoding=arrow_encoding(enc), block_size=1 << 24)
    convert = pacsv.ConvertOptions(column_types=types, strings_can_be_null=False,
                                   quoted_strings_can_be_null=False)
    return read, convert


def _kind(path: Path) -> str:
    if path.is_dir():
        return "dataset"
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith((".parquet", ".pq")):
        return "parquet"
    if suffixes.endswith((".csv", ".csv.gz", ".txt", ".tsv")):
        return "csv"
    if suffixes.endswith(".xlsx"):
        return "xlsx"
    raise RecordsError(f"{path}: unknown file type (expected .parquet, .csv, .xlsx or a folder "
                       "of parquet)")


def _dataset(path: Path):
    import pyarrow.dataset as ds

    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".parquet", ".pq"))
    if not files:
        raise RecordsError(f"{path}: folder holds no .parquet files")
    return ds.dataset(path, format="parquet", partitioning="hive")


def count_rows(path: str | os.PathLike[str]) -> int | None:
    """Rows in a parquet file or dataset, from metadata (None for CSV)."""
    p = Path(path)
    kind = _kind(p)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(p).metadata.num_rows
    if kind == "dataset":
        return _dataset(p).count_rows()
    return None


def iter_batches(path: str | os.PathLike[str], batch_rows: int = 1 << 20,
                 encoding: str | None = None, column_map: Any = None,
                 all_text: bool = False) -> Iterator[pa.RecordBatch]:
    """Stream a parquet file, a folder of parquet files, a CSV or an .xlsx file as batches.

    CSV encoding is detected (UTF-8 or GB18030) unless given. ``column_map`` (a path,
    a shipped map name or a :class:`drgsim.inputs.ColumnMap`) is applied to each batch.
    """
    if column_map is not None:
        from drgsim.inputs.colmap import apply_map, load_map

        cm = load_map(column_map)
        if _kind(Path(path)) == "xlsx":
            from drgsim.inputs.excel import read_xlsx

            table, numeric = read_xlsx(path)
            yield from apply_map(table, cm, numeric).to_batches(max_chunksize=batch_rows)
            return
        for batch in iter_batches(path, batch_rows, encoding, all_text=True):
            yield from apply_map(pa.Table.from_batches([batch]), cm).to_batches()
        return
    p = Path(path)
    if not p.exists():
        raise RecordsError(f"{p}: no such file or folder")
    kind = _kind(p)
    if kind == "xlsx":
        from drgsim.inputs.colmap import numeric_code_mask
        from drgsim.inputs.excel import read_xlsx

        table, numeric = read_xlsx(p)
        yield from numeric_code_mask(table, numeric).to_batches(max_chunksize=batch_rows)
    elif kind == "parquet":
        import pyarrow.parquet as pq

        # pre_buffer=False: with pre-buffering pyarrow keeps every row group's read buffers
        # until the file is closed, so memory grew with the file (1.8 GiB for 25M rows).
        pf = pq.ParquetFile(p, pre_buffer=False)
        yield from pf.iter_batches(batch_size=batch_rows)
    elif kind == "dataset":
        import pyarrow.dataset as ds

        opts = ds.ParquetFragmentScanOptions(pre_buffer=False)
        yield from _dataset(p).to_batches(batch_size=batch_rows, fragment_scan_options=opts)
    else:
        import pyarrow.csv as pacsv

        read, convert = _csv_options(p, encoding, all_text)
        try:
            reader = pacsv.open_csv(p, read_options=read, convert_options=convert)
            yield from reader
        except pa.ArrowInvalid as exc:
            raise RecordsError(f"{p}: {exc}") from exc


def read_records(source: Any, encoding: str | None = None, column_map: Any = None) -> pa.Table:
    """Read a whole input (path, DataFrame or Arrow table) into one Arrow table.

    ``column_map`` (path, shipped name or ColumnMap) renames/joins/maps columns first.
    """
    if column_map is not None:
        from drgsim.inputs.colmap import apply_map, load_map

        cm = load_map(column_map)
        if isinstance(source, (str, os.PathLike)):
            p = Path(source)
            if p.exists() and _kind(p) == "xlsx":
                from drgsim.inputs.excel import read_xlsx

                table, numeric = read_xlsx(p)
                return apply_map(table, cm, numeric)
            if p.exists() and _kind(p) == "csv":
                batches = list(iter_batches(p, encoding=encoding, all_text=True))
                if batches:  # a header-only file falls through to the empty read below
                    return apply_map(pa.Table.from_batches(batches), cm)
        return apply_map(read_records(source, encoding), cm)
    if isinstance(source, pa.Table):
        return source
    if isinstance(source, pa.RecordBatch):
        return pa.Table.from_batches([source])
    if "pandas" in sys.modules and isinstance(source, sys.modules["pandas"].DataFrame):
        return pa.Table.from_pandas(source, preserve_index=False)
    p = Path(source)
    if p.exists() and _kind(p) == "xlsx":
        from drgsim.inputs.colmap import numeric_code_mask
        from drgsim.inputs.excel import read_xlsx

        table, numeric = read_xlsx(p)
        return numeric_code_mask(table, numeric)
    batches = list(iter_batches(p, encoding=encoding))
    if not batches:
        if _kind(p) == "csv":
            read, convert = _csv_options(p, encoding)
            import pyarrow.csv as pacsv

            return pacsv.read_csv(p, read_options=read, convert_options=convert)
        return pa.table({})
    return pa.Table.from_batches(batches)
