"""The flag engine: rules from data, evaluated column-wise over a batch of records."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from drgsim.constants import ABSENT
from drgsim.errors import DrgsimError, Problem, ValidationError
from drgsim.records import RecordFields
from drgsim.scheme.compiled import CompiledScheme

KINDS = ("field_empty", "first_piece_empty", "code_unknown", "code_near_match", "numeric_cell",
         "int_absent", "int_outside", "sex_edit", "age_edit", "cc_excluded")
_INT_FIELDS = ("sex", "age_years", "age_days", "birth_weight_g", "los_days", "discharge_mode")
_WHEN = re.compile(r"\s*([a-z_]+)\s*(<=|>=|=|<|>)\s*(-?[0-9]+)\s*\Z")


class FlagsError(ValidationError):
    """The flag rules or the sex/age edit table are malformed."""

    kind = "flag rules"


@dataclass(frozen=True)
class FlagRule:
    """One row of flags.csv."""

    flag: str
    kind: str
    field: str
    lo: int | None
    hi: int | None
    when: tuple[tuple[str, str, int], ...]
    description: str


def _edits_dir() -> Path:
    return Path(str(resources.files("drgsim") / "data" / "edits"))


def _int(s: str, file: str, line: int, col: str, problems: list[Problem]) -> int | None:
    if s == "":
        return None
    try:
        return int(s)
    except ValueError:
        problems.append(Problem(file, line, col, f"not an integer: {s!r}"))
        return None


@lru_cache(maxsize=4)
def flag_rules(path: str | None = None) -> tuple[FlagRule, ...]:
    """The flag rules (default: the shipped flags.csv), validated."""
    p = Path(path) if path else _edits_dir() / "flags.csv"
    problems: list[Problem] = []
    rules = []
    seen = set()
    with p.open(encoding="utf-8", newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh), start=2):
            flag = row.get("flag", "")
            if not re.fullmatch(r"[a-z][a-z0-9_]*", flag or ""):
                problems.append(Problem(p.name, i, "flag", f"not a short code: {flag!r}"))
            if flag in seen:
                problems.append(Problem(p.name, i, "flag", f"duplicate flag {flag!r}"))
            seen.add(flag)
            kind = row.get("kind", "")
            if kind not in KINDS:
                problems.append(Problem(p.name, i, "kind", f"unknown kind {kind!r}"))
            fld = row.get("field", "")
            if kind.startswith("int_") and fld not in _INT_FIELDS:
                problems.append(Problem(p.name, i, "field", f"not an integer field: {fld!r}"))
            when = []
            for part in filter(None, (row.get("when") or "").split("&")):
                m = _WHEN.match(part)
                if not m or m.group(1) not in _INT_FIELDS:
                    problems.append(Problem(p.name, i, "when", f"cannot read condition {part!r}"))
                    continue
                when.append((m.group(1), m.group(2), int(m.group(3))))
            rules.append(FlagRule(flag, kind, fld, _int(row.get("min", ""), p.name, i, "min", problems),
                                  _int(row.get("max", ""), p.name, i, "max", problems),
                                  tuple(when), row.get("description", "")))
    if problems:
        raise FlagsError(problems)
    return tuple(rules)


@lru_cache(maxsize=2)
def sex_age_edits(path: str | None = None) -> pd.DataFrame:
    """The principal-diagnosis sex/age edit table (validated)."""
    p = Path(path) if path else _edits_dir() / "sex_age_edits.csv"
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    problems = []
    for i, r in enumerate(df.itertuples(index=False), start=2):
        if len(r.code_from) != len(r.code_to) or r.code_to < r.code_from:
            problems.append(Problem(p.name, i, "code_to",
                                    "code_from/code_to must have equal length, code_from <= code_to"))
        if r.sex not in ("", "1", "2"):
            problems.append(Problem(p.name, i, "sex", f"must be 1, 2 or empty: {r.sex!r}"))
        if not r.source:
            problems.append(Problem(p.name, i, "source", "every edit cites its source"))
    if problems:
        raise FlagsError(problems)
    return df


# ---------------------------------------------------------------- dictionaries

@lru_cache(maxsize=4)
def _dictionaries(folder: str, content_hash: str) -> dict[str, tuple[pa.Array, pa.Array]]:
    """(exact codes, upper-cased codes) for diagnoses and procedures of a scheme folder."""
    import pyarrow.csv as pacsv

    def codes(file: str) -> pa.Array:
        p = Path(folder) / file
        if not p.is_file():
            return pa.array([], pa.string())
        t = pacsv.read_csv(p, convert_options=pacsv.ConvertOptions(
            column_types={"code": pa.string()}, include_columns=["code"],
            strings_can_be_null=False))
        return t.column("code").combine_chunks()

    dx = codes("icd10.csv")
    px = pa.concat_arrays([codes("icd9.csv"), codes("or_procedure.csv")])
    return {"diagnoses": (dx, pc.utf8_upper(dx)), "procedures": (px, pc.utf8_upper(px))}


def _split(field: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Flat pieces, their record index and their position in the record (empty field: none)."""
    text = pc.replace_substring(field, ",", "|")
    lists = pc.split_pattern(text, "|")
    empty = pc.equal(field, "")
    lists = pc.if_else(empty, pa.scalar([], pa.list_(pa.string())), lists)
    flat = pc.list_flatten(lists)
    parent = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.zeros(len(lengths), np.int64)
    np.cumsum(lengths[:-1], out=starts[1:]) if len(lengths) > 1 else None
    pos = np.arange(len(parent), dtype=np.int64) - starts[parent] if len(parent) else parent
    return flat, parent, pos


def _any_by_record(mask: np.ndarray, parent: np.ndarray, n: int) -> np.ndarray:
    if not len(parent):
        return np.zeros(n, bool)
    return np.bincount(parent[mask], minlength=n)[:n] > 0


def _cond(ints: dict[str, np.ndarray], when: tuple[tuple[str, str, int], ...], n: int) -> np.ndarray:
    ok = np.ones(n, bool)
    for f, op, v in when:
        x = ints[f]
        present = x != ABSENT
        cmp = {"=": x == v, "<=": x <= v, ">=": x >= v, "<": x < v, ">": x > v}[op]
        ok &= present & cmp
    return ok


def _principal(field: pa.Array) -> pa.Array:
    text = pc.replace_substring(field, ",", "|")
    return pc.list_element(pc.split_pattern(text, "|"), 0)


def _edit_masks(principal: pa.Array, ints: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    n = len(principal)
    sex_bad = np.zeros(n, bool)
    age_bad = np.zeros(n, bool)
    sex = ints["sex"]
    age = ints["age_years"]
    for r in sex_age_edits().itertuples(index=False):
        lo, hi = r.code_from, r.code_to
        head = pc.utf8_slice_codeunits(principal, 0, len(lo))
        hit = pc.and_(pc.greater_equal(head, lo), pc.less_equal(head, hi))
        hit = pc.fill_null(hit, False).to_numpy(zero_copy_only=False)
        if not hit.any():
            continue
        if r.sex:
            s = int(r.sex)
            sex_bad |= hit & np.isin(sex, (1, 2)) & (sex != s)
        if r.age_years_min or r.age_years_max:
            present = age != ABSENT
            out = np.zeros(n, bool)
            if r.age_years_min:
                out |= age < int(r.age_years_min)
            if r.age_years_max:
                out |= age > int(r.age_years_max)
            age_bad |= hit & present & out
    return sex_bad, age_bad


def compute_flags(fields: RecordFields, scheme: CompiledScheme,
                  numeric: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Boolean mask per flag (in flags.csv order) for one batch of records."""
    n = fields.n
    rules = flag_rules()
    dicts = _dictionaries(scheme.path, scheme.content_hash)
    texts = {"diagnoses": fields.diagnoses, "procedures": fields.procedures}
    split_cache: dict[str, tuple] = {}
    code_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def pieces(f: str):
        if f not in split_cache:
            split_cache[f] = _split(texts[f])
        return split_cache[f]

    def code_masks(f: str) -> tuple[np.ndarray, np.ndarray]:
        if f not in code_cache:
            flat, parent, _ = pieces(f)
            exact_set, upper_set = dicts[f]
            nonempty = pc.not_equal(flat, "").to_numpy(zero_copy_only=False)
            exact = pc.is_in(flat, value_set=exact_set).to_numpy(zero_copy_only=False)
            norm = pc.utf8_upper(pc.utf8_trim_whitespace(flat))
            near = pc.is_in(norm, value_set=upper_set).to_numpy(zero_copy_only=False)
            unknown = nonempty & ~exact & ~near
            near_only = nonempty & ~exact & near
            code_cache[f] = (_any_by_record(unknown, parent, n), _any_by_record(near_only, parent, n))
        return code_cache[f]

    edits = None
    out: dict[str, np.ndarray] = {}
    for r in rules:
        k = r.kind
        if k == "field_empty":
            m = pc.equal(texts[r.field], "").to_numpy(zero_copy_only=False)
        elif k == "first_piece_empty":
            t = texts[r.field]
            m = (pc.not_equal(t, "").to_numpy(zero_copy_only=False)
                 & pc.fill_null(pc.equal(_principal(t), ""), False).to_numpy(zero_copy_only=False))
        elif k == "code_unknown":
            m = code_masks(r.field)[0]
        elif k == "code_near_match":
            m = code_masks(r.field)[1]
        elif k == "numeric_cell":
            m = numeric.astype(bool) if numeric is not None else np.zeros(n, bool)
        elif k == "int_absent":
            m = fields.ints[r.field] == ABSENT
        elif k == "int_outside":
            x = fields.ints[r.field]
            m = x != ABSENT
            bad = np.zeros(n, bool)
            if r.lo is not None:
                bad |= x < r.lo
            if r.hi is not None:
                bad |= x > r.hi
            m &= bad
        elif k in ("sex_edit", "age_edit"):
            if edits is None:
                edits = _edit_masks(pc.fill_null(_principal(fields.diagnoses), ""), fields.ints)
            m = edits[0] if k == "sex_edit" else edits[1]
        elif k == "cc_excluded":
            m = _cc_excluded(fields.diagnoses, scheme, n)
        else:  # pragma: no cover - rules are validated
            raise DrgsimError(f"unknown flag kind {k}")
        if r.when:
            m = m & _cond(fields.ints, r.when, n)
        out[r.flag] = np.asarray(m, dtype=bool)
    return out


def _cc_excluded(diagnoses: pa.Array, scheme: CompiledScheme, n: int) -> np.ndarray:
    """Some secondary is an MCC/CC whose exclusion table equals the principal's."""
    from drgsim.codes import encode_field

    ptr, ids = encode_field(diagnoses, scheme, keep_empty_field=False, threads=1)
    ptr = np.asarray(ptr, np.int64)
    ids = np.asarray(ids, np.int64)
    lengths = np.diff(ptr)
    if not len(ids):
        return np.zeros(n, bool)
    kt = scheme.kt
    rec = np.repeat(np.arange(n), lengths)
    pos = np.arange(len(ids)) - ptr[:-1][rec]
    pid = ids[ptr[:-1][rec]]
    ptable = kt.code_pdx_table[pid]
    is_cc = kt.code_mcc[ids] | kt.code_cc[ids]
    hit = (pos > 0) & is_cc & (ptable >= 0) & (kt.code_cc_table[ids] == ptable)
    return np.bincount(rec[hit], minlength=n)[:n] > 0


def flags_column(masks: dict[str, np.ndarray], n: int) -> pa.Array:
    """A ``list<string>`` column: the raised flags of each record, in rule order."""
    names = list(masks)
    if not names:
        return pa.array([[]] * n, pa.list_(pa.string()))
    mat = np.stack([masks[f] for f in names], axis=1)
    rows, cols = np.nonzero(mat)  # row-major: sorted by record, then rule order
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
    values = pa.DictionaryArray.from_arrays(pa.array(cols.astype(np.int32)),
                                            pa.array(names, pa.string())).cast(pa.string())
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def flags_for_record(record: dict, scheme: CompiledScheme) -> list[str]:
    """The flags of one record given as a dict of raw fields (used by ``explain``)."""
    from drgsim.records import fields_from_table

    cols = {k: pa.array(["" if record.get(k) is None else str(record.get(k))], pa.string())
            for k in ("case_id", "sex", "age_years", "age_days", "birth_weight_g", "dept",
                      "los_days", "discharge_mode", "diagnoses", "procedures")}
    masks = compute_flags(fields_from_table(pa.table(cols)), scheme)
    return [f for f, m in masks.items() if m[0]]


def _flags_lists(col) -> pa.Array:
    """The flags column as list<string>: from Arrow lists, pandas lists or |-joined text."""
    if isinstance(col, pd.Series):
        try:
            col = pa.array(col, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            col = pa.array([list(v) if v is not None and not isinstance(v, str) else v
                            for v in col], from_pandas=True)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        text = pc.fill_null(col.cast(pa.string()), "")
        col = pc.if_else(pc.equal(text, ""), pa.scalar([], pa.list_(pa.string())),
                         pc.split_pattern(text, "|"))
    return col


def flag_summary(df: pd.DataFrame | pa.Table, hospital: str | None = "hospital_id"
                 ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(records per flag with its description, flags × hospital counts) of a grouped table.

    Column-wise (Arrow flatten + counts), so it scales with the grouped file.
    """
    names = list(df.columns) if isinstance(df, pd.DataFrame) else df.schema.names
    n = len(df) if isinstance(df, pd.DataFrame) else df.num_rows
    lists = _flags_lists(df["flags"] if isinstance(df, pd.DataFrame) else df.column("flags"))
    flat = pc.list_flatten(lists).to_numpy(zero_copy_only=False).astype(object)
    parent = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    has_any = pc.greater(pc.fill_null(pc.list_value_length(lists), 0), 0).to_numpy(
        zero_copy_only=False)
    desc = {r.flag: r.description for r in flag_rules()}
    # a flag counts once per record
    pairs = pd.DataFrame({"rec": parent, "flag": flat}).drop_duplicates()
    counts = pairs["flag"].value_counts()
    by_flag = pd.DataFrame({"flag": list(desc), "records": [int(counts.get(f, 0)) for f in desc]})
    by_flag["share"] = by_flag["records"] / n if n else 0.0
    by_flag["description"] = by_flag["flag"].map(desc)
    by_flag = pd.concat([by_flag, pd.DataFrame([{
        "flag": "(any)", "records": int(has_any.sum()),
        "share": float(has_any.mean()) if n else 0.0,
        "description": "records with at least one flag"}])], ignore_index=True)
    by_hosp = None
    if hospital and hospital in names:
        hcol = df[hospital] if isinstance(df, pd.DataFrame) else df.column(hospital).to_pandas()
        h = pd.Series(hcol).fillna("").astype(str).to_numpy(dtype=object)
        ex = pd.DataFrame({"hospital": h[pairs["rec"].to_numpy()], "flag": pairs["flag"].to_numpy()})
        piv = ex.pivot_table(index="hospital", columns="flag", aggfunc="size", fill_value=0)
        tot = pd.Series(h).value_counts().rename("records")
        anyf = pd.Series(h[has_any]).value_counts().rename("flagged")
        by_hosp = pd.concat([tot, anyf], axis=1).join(piv).fillna(0).astype(int)
        by_hosp.index.name = "hospital"
        by_hosp = by_hosp.reset_index().sort_values("hospital", ignore_index=True)
    return by_flag, by_hosp
