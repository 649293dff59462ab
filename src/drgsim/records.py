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
from drgsim.errors import MissingColumnError

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

def _kind(path: Path) -> str:
    from drgsim.inputs.sources import kind_of

    return kind_of(path)


def count_rows(path: str | os.PathLike[str], glob: str | None = None) -> int | None:
    """Rows in a parquet file or folder, from the footers (None for CSV and .xlsx)."""
    p = Path(path)
    kind = _kind(p)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(p).metadata.num_rows
    if kind == "dataset":
        import pyarrow.parquet as pq

        from drgsim.inputs.sources import list_folder

        return sum(pq.ParquetFile(f).metadata.num_rows for f in list_folder(p, glob))
    return None


def iter_batches(path: str | os.PathLike[str], batch_rows: int = 1 << 20,
                 encoding: str | None = None, column_map: Any = None,
                 all_text: bool = False, **options: Any) -> Iterator[pa.RecordBatch]:
    """Stream a parquet file, a folder of parquet files, a CSV or an .xlsx file as batches.

    Every check is made before the first batch (see :func:`drgsim.inputs.sources.open_input`,
    which also takes ``bad_lines``, ``glob`` and ``sheet`` through ``options``). CSV
    encoding is detected (UTF-8 or GB18030) unless given; ``column_map`` (a path, a shipped
    map name or a :class:`drgsim.inputs.ColumnMap`) is applied to each batch.
    """
    from drgsim.inputs.sources import open_input

    src = open_input(path, encoding=encoding, column_map=column_map, require=False, **options)
    yield from src.batches(batch_rows)


def read_records(source: Any, encoding: str | None = None, column_map: Any = None,
                 **options: Any) -> pa.Table:
    """Read a whole input (path, DataFrame or Arrow table) into one Arrow table.

    ``column_map`` (path, shipped name or ColumnMap) renames/joins/maps columns first;
    ``options`` (``bad_lines``, ``glob``, ``sheet``) go to :func:`~drgsim.inputs.sources.open_input`.
    """
    pd_ = sys.modules.get("pandas")  # a DataFrame can only come from an imported pandas
    is_frame = pd_ is not None and isinstance(source, pd_.DataFrame)
    if isinstance(source, (pa.Table, pa.RecordBatch)) or is_frame:
        if isinstance(source, pa.Table):
            table = source
        elif isinstance(source, pa.RecordBatch):
            table = pa.Table.from_batches([source])
        else:
            table = pa.Table.from_pandas(source, preserve_index=False)
        if column_map is not None:
            from drgsim.inputs.colmap import apply_map, load_map

            table = apply_map(table, load_map(column_map))
        return table
    from drgsim.inputs.sources import open_input

    src = open_input(source, encoding=encoding, column_map=column_map, require=False, **options)
    batches = list(src.batches())
    return pa.Table.from_batches(batches) if batches else src.empty_table()
