"""Column maps: rename Chinese headers, join wide code columns, map values — from YAML.

A map is a small YAML file validated like every other input (every problem as
``file:line: key: message``, all at once)::

    name: my_export
    columns:                 # source header -> output column
      病案号: case_id
      性别: sex
    join:                    # wide code columns -> one |-joined field
      diagnoses:
        first: 主要诊断编码          # the principal: a blank cell stays an empty first piece
        rest: 其他诊断编码{n}         # {n} = 1, 2, ... as present; or a list of headers
    values:                  # output column -> {text: value}; unmapped values pass through
      sex: {男: 1, 女: 2}

Joining keeps order; blanks among the ``rest`` columns are skipped, but a blank
``first`` column is kept as an empty first piece (``|I10.x00``): the scheme README's
empty principal, never a secondary promoted into its place. Flags report it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drgsim.errors import Problem, RecordsError, ValidationError


class ColumnMapError(ValidationError):
    """A column map (YAML) is malformed: every problem as file:line: key: message."""

    kind = "column map"


_TOP_KEYS = {"name", "description", "source", "columns", "join", "values"}
_JOIN_KEYS = {"first", "rest"}
_JOIN_TARGETS = {"diagnoses", "procedures"}


@dataclass
class JoinSpec:
    """Wide columns joined into one code field: ``first`` then the non-blank ``rest``."""

    first: str
    rest: list[str] | str  # explicit headers, or a pattern containing "{n}"

    def rest_columns(self, names: list[str]) -> list[str]:
        """The ``rest`` headers present in a file, in order (pattern: n = 1, 2, ...)."""
        if isinstance(self.rest, list):
            return [c for c in self.rest if c in names]
        rx = re.compile(re.escape(self.rest).replace(r"\{n\}", r"([0-9]+)") + r"\Z")
        found = [(int(m.group(1)), c) for c in names if (m := rx.match(c))]
        return [c for _, c in sorted(found)]


@dataclass
class ColumnMap:
    """A validated column map (see the module docstring for the YAML form)."""

    name: str
    file: str
    columns: dict[str, str] = field(default_factory=dict)
    join: dict[str, JoinSpec] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    description: str = ""

    def source_columns_of(self, target: str, names: list[str]) -> list[str]:
        """Source headers feeding an output column (for numeric-cell masks)."""
        if target in self.join:
            j = self.join[target]
            return [j.first, *j.rest_columns(names)]
        return [s for s, t in self.columns.items() if t == target] or [target]


def _line(node: Any, key: Any = None) -> int | None:
    try:
        if key is not None:
            return int(node.lc.key(key)[0]) + 1
        return int(node.lc.line) + 1
    except Exception:
        return None


def _scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float)) and not isinstance(v, bool)


def parse_map(text: str, file: str = "<map>") -> ColumnMap:
    """Parse and validate a column map from YAML text; raise :class:`ColumnMapError`."""
    from drgsim.yamlsafe import load_yaml

    problems: list[Problem] = []
    try:  # size, depth, aliases, duplicate keys and syntax: one file:line problem
        doc = load_yaml(text, file, ColumnMapError)
    except ValueError as exc:  # a scalar ruamel cannot construct (e.g. 2024-13-01)
        raise ColumnMapError([Problem(file, None, None, f"not valid YAML: {exc}")]) from None
    if not isinstance(doc, dict):
        raise ColumnMapError([Problem(file, 1, None, "a column map is a YAML mapping")])

    def bad(node: Any, key: Any, path: str, msg: str) -> None:
        problems.append(Problem(file, _line(node, key), path, msg))

    for k in doc:
        if k not in _TOP_KEYS:
            bad(doc, k, str(k), f"unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})")
    cm = ColumnMap(name=str(doc.get("name", Path(file).stem)), file=file,
                   description=str(doc.get("description", "") or ""))
    cols = doc.get("columns", {}) or {}
    if not isinstance(cols, dict):
        bad(doc, "columns", "columns", "must be a mapping of source header -> column name")
        cols = {}
    targets: dict[str, str] = {}
    for src, dst in cols.items():
        path = f"columns.{src}"
        if not isinstance(dst, str) or not dst.strip():
            bad(cols, src, path, "target must be a non-empty column name")
            continue
        if dst in targets:
            bad(cols, src, path, f"target {dst!r} is already the target of {targets[dst]!r}")
            continue
        targets[dst] = str(src)
        cm.columns[str(src)] = dst
    join = doc.get("join", {}) or {}
    if not isinstance(join, dict):
        bad(doc, "join", "join", "must be a mapping of diagnoses/procedures -> {first, rest}")
        join = {}
    for tgt, spec in join.items():
        path = f"join.{tgt}"
        if tgt not in _JOIN_TARGETS:
            bad(join, tgt, path, "can only join into diagnoses or procedures")
            continue
        if tgt in targets:
            bad(join, tgt, path, f"{tgt!r} is also a target in columns ({targets[tgt]!r})")
        if not isinstance(spec, dict):
            bad(join, tgt, path, "must be a mapping with keys first and rest")
            continue
        for k in spec:
            if k not in _JOIN_KEYS:
                bad(spec, k, f"{path}.{k}", "unknown key (allowed: first, rest)")
        first = spec.get("first")
        if not isinstance(first, str) or not first:
            bad(spec, "first" if "first" in spec else None, f"{path}.first",
                "required: the header of the principal/main code column")
            continue
        rest = spec.get("rest", [])
        if isinstance(rest, str):
            if "{n}" not in rest:
                bad(spec, "rest", f"{path}.rest", "a pattern must contain {n} (e.g. 其他诊断编码{n})")
                continue
        elif isinstance(rest, list) and all(isinstance(x, str) and x for x in rest):
            rest = [str(x) for x in rest]
        else:
            bad(spec, "rest", f"{path}.rest", "must be a pattern with {n} or a list of headers")
            continue
        cm.join[str(tgt)] = JoinSpec(first=first, rest=rest)
    values = doc.get("values", {}) or {}
    if not isinstance(values, dict):
        bad(doc, "values", "values", "must be a mapping of column -> {text: value}")
        values = {}
    for col, vm in values.items():
        path = f"values.{col}"
        if not isinstance(vm, dict) or not vm:
            bad(values, col, path, "must be a non-empty mapping of text -> value")
            continue
        out = {}
        for a, b in vm.items():
            if not _scalar(a) or not _scalar(b):
                bad(vm, a, f"{path}.{a}", "keys and values must be plain text or numbers")
                continue
            out[str(a)] = str(b)
        cm.values[str(col)] = out
    if problems:
        raise ColumnMapError(problems)
    return cm


def shipped_maps() -> dict[str, Path]:
    """The column maps shipped with drgsim: name -> path."""
    root = resources.files("drgsim") / "data" / "maps"
    return {Path(str(p)).stem: Path(str(p)) for p in root.iterdir() if str(p).endswith(".yaml")}


def load_map(source: str | os.PathLike[str] | ColumnMap) -> ColumnMap:
    """A column map from a file path or a shipped name (``bingan_shouye``, ``settlement_list``)."""
    if isinstance(source, ColumnMap):
        return source
    p = Path(source)
    if not p.is_file():
        shipped = shipped_maps()
        if str(source) in shipped:
            p = shipped[str(source)]
        else:
            raise RecordsError(f"{source}: no such column map file (shipped maps: "
                               f"{', '.join(sorted(shipped))})")
    from drgsim.yamlsafe import decode_utf8, read_yaml_bytes

    text = decode_utf8(read_yaml_bytes(p, ColumnMapError), str(p), ColumnMapError)
    return parse_map(text, file=str(p))


# ---------------------------------------------------------------- applying a map

def _as_text(arr) -> pa.Array:
    from drgsim.records import code_field

    return code_field(arr)


def _blank(arr: pa.Array) -> pa.Array:
    return pc.equal(pc.utf8_trim_whitespace(arr), "")


def join_columns(table: pa.Table, spec: JoinSpec, where: str) -> pa.Array:
    """``first`` then the non-blank ``rest`` cells of each row, joined with ``|``."""
    names = table.schema.names
    if spec.first not in names:
        raise RecordsError(f"{where}: column {spec.first!r} is not in the input "
                           f"(columns: {', '.join(names)})")
    first = _as_text(table.column(spec.first))
    first = pc.if_else(_blank(first), "", first)
    rest = [_as_text(table.column(c)) for c in spec.rest_columns(names)]
    if not rest:
        return first
    # column by column (never record by record): append each non-blank cell
    others = pa.array([""] * len(first), pa.string())
    for r in rest:
        empty_so_far = pc.equal(others, "")
        joined = pc.if_else(empty_so_far, r, pc.binary_join_element_wise(others, r, "|"))
        others = pc.if_else(_blank(r), others, joined)
    has_others = pc.not_equal(others, "")
    return pc.if_else(has_others, pc.binary_join_element_wise(first, others, "|"), first)


def map_values(arr, mapping: dict[str, str]) -> pa.Array:
    """Replace exact values (after trimming spaces) by their mapped text; others unchanged."""
    text = _as_text(arr)
    keys = pa.array(list(mapping), pa.string())
    vals = pa.array(list(mapping.values()), pa.string())
    idx = pc.index_in(pc.utf8_trim_whitespace(text), value_set=keys)
    mapped = pc.take(vals, idx)
    return pc.if_else(pc.is_null(idx), text, mapped)


def apply_map(table: pa.Table, cm: ColumnMap,
              numeric: dict[str, np.ndarray] | None = None) -> pa.Table:
    """Apply a column map to a table; joined sources are consumed, other columns pass through.

    ``numeric``: per source column, the rows whose cell was a number (from an .xlsx); the
    result carries their union over code fields as a private mask column for flags.
    """
    from drgsim.inputs.excel import NUMERIC_CODE_COLUMN

    names = table.schema.names
    where = cm.file
    out: dict[str, pa.Array] = {}
    consumed: set[str] = set()
    for tgt, spec in cm.join.items():
        out[tgt] = join_columns(table, spec, where)
        consumed.update([spec.first, *spec.rest_columns(names)])
    for c in names:
        if c in consumed:
            continue
        dst = cm.columns.get(c, c)
        if dst in out:
            dst = f"input_{c}" if dst == c else dst
            if dst in out:
                raise RecordsError(f"{where}: two input columns would both be named {dst!r}")
        out[dst] = table.column(c)
    for col, mapping in cm.values.items():
        if col in out:
            out[col] = map_values(out[col], mapping)
    # record columns first, in their usual order; then the rest as they came
    from drgsim.records import RECORD_FIELDS

    order = [c for c in RECORD_FIELDS if c in out] + [c for c in out if c not in RECORD_FIELDS]
    result = pa.table({c: out[c] for c in order})
    if numeric:
        mask = np.zeros(table.num_rows, dtype=bool)
        for tgt in ("diagnoses", "procedures"):
            for src in cm.source_columns_of(tgt, names):
                if src in numeric:
                    mask |= numeric[src]
        if mask.any():
            result = result.append_column(NUMERIC_CODE_COLUMN, pa.array(mask))
    return result


def numeric_code_mask(table: pa.Table, numeric: dict[str, np.ndarray]) -> pa.Table:
    """Without a map: the numeric-cell mask of the code columns themselves, if any."""
    from drgsim.inputs.excel import NUMERIC_CODE_COLUMN

    mask = np.zeros(table.num_rows, dtype=bool)
    for c in ("diagnoses", "procedures"):
        if c in numeric:
            mask |= numeric[c]
    return table.append_column(NUMERIC_CODE_COLUMN, pa.array(mask)) if mask.any() else table
