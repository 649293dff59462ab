"""Tiny inputs without numba: the reference grouper, for a fast ``drgsim group`` start.

Loading numba and the cached kernels costs about half a second before the first record;
the reference grouper (:mod:`drgsim.grouper.reference`, the README algorithm in plain
Python, ~0.1 ms a record) does 1,000 records in less. So a batch of at most
``TINY_ROWS`` rows, in a process that has not loaded the kernels yet, is grouped by the
reference grouper. Both paths read the record fields by the same rules (this module
mirrors :func:`drgsim.records.fields_from_table`, with a Python port of the text-integer
kernel) and ``tests/test_tiny_path.py`` checks them equal on every conformance corpus.

The reference grouper's tables are cached beside the compiled scheme, by code, in SQLite,
keyed by the tables' hash, the drgsim version and the source of the reference grouper
and this module: a warm start neither re-reads the scheme CSVs nor loads the whole
vocabulary, only the rows for the codes the input holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from drgsim import __version__
from drgsim.constants import ABSENT, SATURATE
from drgsim.records import INT_FIELDS, RecordFields, check_columns, code_field, int_field
from drgsim.scheme.compiled import CompiledScheme

if TYPE_CHECKING:
    from drgsim.grouper.core import GroupResult
    from drgsim.grouper.reference import ReferenceGrouper

# Largest batch the reference grouper takes (``DRGSIM_TINY_ROWS`` overrides; 0 turns the
# tiny path off). At ~0.1 ms a record, 1,000 records cost less than loading the kernels.
TINY_ROWS = 1000
_ENGINES = ("auto", "kernel", "reference")


def tiny_rows() -> int:
    """The tiny-path threshold in force (``DRGSIM_TINY_ROWS`` or :data:`TINY_ROWS`)."""
    env = os.environ.get("DRGSIM_TINY_ROWS", "").strip()
    return int(env) if env.isdigit() else TINY_ROWS


def choose_engine(engine: str, n: int) -> str:
    """``kernel`` or ``reference`` for a batch of ``n`` rows.

    ``auto`` takes the reference grouper for at most :func:`tiny_rows` rows while the
    numba kernels are not loaded yet (once they are, the kernel is faster at any size).
    """
    if engine not in _ENGINES:
        raise ValueError(f"engine must be one of {', '.join(_ENGINES)}, not {engine!r}")
    if engine != "auto":
        return engine
    if n <= tiny_rows() and "drgsim.grouper.kernels" not in sys.modules:
        return "reference"
    return "kernel"


# ---------------------------------------------------------------- reading fields

_ASCII_SPACE = " \t\n\v\f\r"  # what the text-integer kernel trims (bytes 9-13 and 32)
_INT_TEXT = re.compile(r"(-?)([0-9]+)(?:\.0+)?")


def int_text_py(arr: pa.Array) -> np.ndarray:
    """:func:`drgsim.textkernels.parse_ints` in Python (with its Unicode fallback)."""
    from drgsim.records import _int_text_arrow

    values = arr.to_pylist()
    out = np.full(len(values), ABSENT, dtype=np.int64)
    slow = []
    for i, s in enumerate(values):
        if s is None:
            continue
        if not s.isascii():
            slow.append(i)
            continue
        m = _INT_TEXT.fullmatch(s.strip(_ASCII_SPACE))
        if m:
            v = min(int(m.group(2)), SATURATE)
            out[i] = -v if m.group(1) else v
    if slow:
        out[slow] = _int_text_arrow(arr.take(pa.array(slow, pa.int64())))
    return out


def _chunk(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        return arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    return arr


def _int_field_py(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    arr = _chunk(arr)
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return int_text_py(arr)
    return int_field(arr)  # typed values: pyarrow and numpy only, no kernel


def fields_py(table: pa.Table | pa.RecordBatch) -> RecordFields:
    """:func:`drgsim.records.fields_from_table` without the numba text kernel."""
    names = table.schema.names
    missing = check_columns(names)
    n = table.num_rows
    ints = {f: _int_field_py(table.column(f)) if f in names else np.full(n, ABSENT, np.int64)
            for f in INT_FIELDS}
    return RecordFields(
        n=n,
        ints=ints,
        diagnoses=code_field(table.column("diagnoses")),
        procedures=code_field(table.column("procedures")) if "procedures" in names
        else pa.array([""] * n, type=pa.string()),
        missing=missing,
    )


# ---------------------------------------------------------------- grouping

def group_reference(fields: RecordFields, scheme: CompiledScheme,
                    translate: bool) -> GroupResult:
    """Group read fields with the reference grouper; a :class:`GroupResult` like the kernel's."""
    from drgsim.grouper.core import GroupResult
    from drgsim.grouper.reference import split_codes

    mdc_ix = {lab: i for i, lab in enumerate(scheme.out_mdc)}
    adrg_ix = {code: i for i, code in enumerate(scheme.out_adrg)}
    drg_ix: dict[str, int] = {}
    for i, code in enumerate(scheme.out_drg):  # the kernel's index: first list that has it
        drg_ix.setdefault(code, i)
    status_ix = {s: i for i, s in enumerate(scheme.out_status)}
    ints = {k: [None if v == ABSENT else v for v in a.tolist()] for k, a in fields.ints.items()}
    dx = fields.diagnoses.to_pylist()
    px = fields.procedures.to_pylist()
    codes = {c for f in (dx, px) for v in f for c in split_codes(v, keep_empty_field=True)}
    ref = reference_grouper(scheme, codes, translate)
    out = [np.empty(fields.n, dtype=np.int32) for _ in range(4)]
    for i in range(fields.n):
        rec = {k: v[i] for k, v in ints.items()}
        rec["diagnoses"] = dx[i]
        rec["procedures"] = px[i]
        r = ref.group(rec, translate=translate)
        out[0][i] = mdc_ix[r.mdc]
        out[1][i] = adrg_ix[r.adrg]
        out[2][i] = drg_ix[r.drg]
        out[3][i] = status_ix[r.status]
    return GroupResult(*out)


# ---------------------------------------------------------------- cached reference tables
#
# The reference grouper looks codes up only by the codes of the record at hand (and, with
# translation, their targets). So the cache keeps its tables by code, in SQLite, and a
# tiny input loads the few codes it holds: the same grouper, restricted to what it reads.

_STATE_FORMAT = 1
_BY_CODE = ("mdc_list", "lists", "cc", "excl", "or_proc", "dx_map", "px_map")


def _cache_path(scheme: CompiledScheme) -> Path:
    from drgsim.grouper import reference
    from drgsim.scheme.compiled import cache_dir

    h = hashlib.blake2b(digest_size=8)
    for part in (str(_STATE_FORMAT), __version__, scheme.content_hash):
        h.update(part.encode() + b"\0")
    for mod_file in (reference.__file__, __file__):
        h.update(Path(mod_file).read_bytes())
    return cache_dir() / f"{scheme.content_hash}.reference-{h.hexdigest()}.sqlite"


def _by_code(ref) -> tuple[dict, dict[str, dict]]:
    """The reference grouper's tables split into (rules part, {code: its entries})."""
    entries: dict[str, dict] = {}

    def at(code: str) -> dict:
        return entries.setdefault(code, {})

    for mdc, codes in ref.mdc_list.items():
        for code, region in codes.items():
            at(code).setdefault("mdc_list", []).append([mdc, region])
    for (rid, lst), codes in ref.lists.items():
        for code, group in codes.items():
            at(code).setdefault("lists", []).append([rid, lst, group])
    for code, v in ref.cc.items():
        at(code)["cc"] = list(v)
    for code, v in ref.excl.items():
        at(code)["excl"] = v
    for code in ref.or_proc:
        at(code)["or_proc"] = 1
    for name in ("dx_map", "px_map"):
        for code, v in getattr(ref, name).items():
            at(code)[name] = v
    head = {k: v for k, v in vars(ref).items() if k not in _BY_CODE}
    return head, entries


def _build(scheme: CompiledScheme, path: Path) -> None:
    import sqlite3

    from drgsim.grouper.reference import ReferenceGrouper
    from drgsim.output import atomic_path
    from drgsim.scheme.tables import load_tables

    head, entries = _by_code(ReferenceGrouper(load_tables(scheme.path)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.unlink()  # sqlite creates its own file
        con = sqlite3.connect(tmp)
        try:
            con.execute("CREATE TABLE head (state TEXT)")
            con.execute("CREATE TABLE codes (code TEXT PRIMARY KEY, entry TEXT) WITHOUT ROWID")
            con.execute("INSERT INTO head VALUES (?)", (json.dumps(head, ensure_ascii=False),))
            con.executemany("INSERT INTO codes VALUES (?, ?)",
                            ((c, json.dumps(e, ensure_ascii=False)) for c, e in entries.items()))
            con.commit()
        finally:
            con.close()
    for old in path.parent.glob(f"{scheme.content_hash}.reference-*.sqlite"):
        if old != path:  # written by other drgsim code: never read again
            old.unlink(missing_ok=True)


def _load(path: Path, codes: set[str], translate: bool) -> ReferenceGrouper:
    import sqlite3

    from drgsim.grouper.reference import ReferenceGrouper

    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        (head,) = con.execute("SELECT state FROM head").fetchone()

        def fetch(wanted: list[str]) -> dict[str, dict]:
            got = {}
            for k in range(0, len(wanted), 500):
                part = wanted[k:k + 500]
                sql = f"SELECT code, entry FROM codes WHERE code IN ({','.join('?' * len(part))})"
                got.update((c, json.loads(e)) for c, e in con.execute(sql, part))
            return got

        entries = fetch(sorted(codes))
        if translate:  # translation targets are looked up after translating
            targets = {e[m] for e in entries.values() for m in ("dx_map", "px_map") if m in e}
            entries.update(fetch(sorted(targets - entries.keys())))
    finally:
        con.close()
    ref = ReferenceGrouper.__new__(ReferenceGrouper)
    vars(ref).update(json.loads(head))
    state: dict = {"mdc_list": {}, "lists": {}, "cc": {}, "excl": {}, "or_proc": set(),
                   "dx_map": {}, "px_map": {}}
    for code, e in entries.items():
        for mdc, region in e.get("mdc_list", ()):
            state["mdc_list"].setdefault(mdc, {})[code] = region
        for rid, lst, group in e.get("lists", ()):
            state["lists"].setdefault((rid, lst), {})[code] = group
        if "cc" in e:
            state["cc"][code] = tuple(e["cc"])
        if "excl" in e:
            state["excl"][code] = e["excl"]
        if "or_proc" in e:
            state["or_proc"].add(code)
        for name in ("dx_map", "px_map"):
            if name in e:
                state[name][code] = e[name]
    vars(ref).update(state)
    return ref


def reference_grouper(scheme: CompiledScheme, codes: set[str] | None = None,
                      translate: bool = False) -> ReferenceGrouper:
    """The scheme's :class:`ReferenceGrouper`, restricted to the tables' rows for ``codes``.

    Built once from the validated tables and cached on disk; ``codes=None`` (every code)
    builds it from the tables directly.
    """
    import sqlite3

    if codes is None:
        from drgsim.grouper.reference import ReferenceGrouper
        from drgsim.scheme.tables import load_tables

        return ReferenceGrouper(load_tables(scheme.path))
    path = _cache_path(scheme)
    try:
        return _load(path, codes, translate)
    except (sqlite3.Error, OSError, ValueError, TypeError):  # absent or unreadable: rebuild
        pass
    try:
        _build(scheme, path)
        return _load(path, codes, translate)
    except (sqlite3.Error, OSError):  # a read-only cache still groups, without the cache
        from drgsim.grouper.reference import ReferenceGrouper
        from drgsim.scheme.tables import load_tables

        return ReferenceGrouper(load_tables(scheme.path))


# ---------------------------------------------------------------- pandas, not needed

class _NoPandas:
    """A meta-path finder that makes ``import pandas`` fail (while it is installed)."""

    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is not needed here")
        return None


def arrow_without_pandas() -> None:
    """Keep pyarrow from importing pandas (~0.25 s) in a process that will not use it.

    pyarrow imports pandas on its first array built from Python or numpy values, only to
    recognise pandas objects; its shim then remembers "no pandas". Only for a command's
    own process (``drgsim group`` without ``--flags``/``--compare``): later ``to_pandas()``
    still works, but ``pa.array(series)`` would see a plain sequence.
    """
    if "pandas" in sys.modules:
        return
    block = _NoPandas()
    sys.meta_path.insert(0, block)
    try:
        pa.array([0])  # the shim tries pandas once, fails, and stops trying
    finally:
        sys.meta_path.remove(block)
