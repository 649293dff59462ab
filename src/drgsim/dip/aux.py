"""DIP auxiliary catalogues (辅助目录): case classes, fitted coefficients, applied coefficients.

Four catalogues (``../shared/DIP.md``, Scores): comorbidity (a Charlson index from secondary
diagnoses), disease severity I–IV, tumour severity and age bands. Classes, bounds and code
lists are data (``data/dip/aux_classes.csv``, ``charlson_icd10.csv``, ``tumour_codes.csv``);
this module reads them, assigns one class per case and catalogue (0 = none / reference),
fits ``subgroup mean / packet mean`` per packet and keeps a coefficient only where the CV
rule accepts the split, and applies the highest kept coefficient to a case.

Everything runs over whole arrays: codes become the scheme's ids once per batch
(:func:`drgsim.codes.encode_field`; per-id bit masks of the Charlson conditions and tumour
markers are built once per scheme), one numba pass ORs them per record and reuses the
grouper's own CC/MCC test; only records holding a code outside the scheme's vocabulary are
matched on their text (Arrow). Group sums are ``np.bincount`` over integer keys.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit, prange

from drgsim.constants import ABSENT
from drgsim.errors import DrgsimError, Problem, ValidationError
from drgsim.grouper.kernels import _effective

if TYPE_CHECKING:
    import pandas as pd

    from drgsim.records import RecordFields
    from drgsim.scheme.compiled import CompiledScheme

#: The catalogues, in tie-break order (an equal coefficient goes to the earlier one).
CATALOGUES = ("comorbidity", "severity", "tumour", "age")
#: ``discharge_mode`` of a death (DOMAIN.md section 1: 5 died).
DEATH_MODE = 5
MEASURES = ("cci", "los_days", "age_days", "age_years")
BASE_CONDITIONS = ("any", "cc", "mcc", "death", "age_under_1")
MARKERS = ("scope", "metastasis", "radiotherapy", "chemotherapy")
CONDITIONS = BASE_CONDITIONS + MARKERS[1:]

#: Acceptance defaults (DIP.md: "enough cases", CV >= 0.7, cut >= 20%). ``min_cases``: a
#: packet needs 30 cases (twice the core threshold) before any split of it is trusted;
#: ``min_subgroup_cases``: a class needs 5 cases of its own for its mean to be a coefficient.
DEFAULTS = {"min_cases": 30, "min_subgroup_cases": 5, "cv_min": 0.7, "cv_cut": 0.2}
#: Relative tolerance of the CV comparisons: a CV or cut that equals its bound in exact
#: arithmetic is accepted although float rounding may land a hair below it.
CV_RTOL = 1e-9

AUX_COLUMNS = ("packet", "catalogue", "class", "class_id", "n_cases", "mean_cost_fen",
               "coefficient", "cv_before", "cv_after", "kept", "reason")

REASONS = (
    "kept: CV >= cv_min and the split cuts it by >= cv_cut",
    "packet has fewer than min_cases cases",
    "packet mean cost is 0",
    "packet CV below cv_min",
    "split cuts the CV by less than cv_cut",
    "subgroup has fewer than min_subgroup_cases cases",
)


class AuxTableError(ValidationError):
    """An auxiliary-catalogue data table (classes, Charlson or tumour codes) is malformed."""

    kind = "auxiliary catalogue tables"


# ---------------------------------------------------------------- data tables

def _data_dir() -> Path:
    return Path(str(resources.files("drgsim") / "data" / "dip"))


def _rows(path: Path, columns: tuple[str, ...], problems: list[Problem]) -> list[tuple[int, dict]]:
    name = path.name
    try:
        fh = path.open(encoding="utf-8", newline="")
    except OSError as e:
        problems.append(Problem(name, None, None, f"cannot read: {e.strerror}"))
        return []
    with fh:
        reader = csv.DictReader(fh)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            problems.append(Problem(name, 1, missing[0], "missing column"))
            return []
        out = []
        for row in reader:
            if None in row or any(v is None for v in row.values()):
                problems.append(Problem(name, reader.line_num, None, "wrong number of fields"))
                continue
            out.append((reader.line_num, row))
        return out


def _int(row: dict, col: str, file: str, line: int, problems: list[Problem],
         lo: int | None = None, hi: int | None = None, empty_ok: bool = False) -> int | None:
    s = row[col]
    if s == "" and empty_ok:
        return None
    try:
        v = int(s)
    except ValueError:
        problems.append(Problem(file, line, col, f"not an integer: {s!r}"))
        return None
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        problems.append(Problem(file, line, col, f"{v} outside {lo}..{hi}"))
        return None
    return v


@dataclass(frozen=True)
class AuxClass:
    """One row of aux_classes.csv: a class applies when its condition holds and its
    measure lies in [min, max] (inclusive; empty = unbounded; an absent measure fails)."""

    catalogue: str
    class_id: int
    label: str
    priority: int
    condition: str
    measure: str
    lo: int | None
    hi: int | None
    name_zh: str


@dataclass(frozen=True)
class AuxTables:
    """The validated data tables of the auxiliary catalogues."""

    classes: tuple[AuxClass, ...]
    # Charlson: condition names, weights, superseded condition index (-1 none), prefixes
    conditions: tuple[str, ...]
    weights: tuple[int, ...]
    supersedes: tuple[int, ...]
    charlson_prefixes: tuple[tuple[str, int], ...]  # (prefix, condition index)
    tumour: tuple[tuple[str, str, str], ...]  # (marker, field dx|px, prefix)

    def of(self, catalogue: str) -> list[AuxClass]:
        return [c for c in self.classes if c.catalogue == catalogue]

    def label(self, catalogue: str, class_id: int) -> str:
        for c in self.classes:
            if c.catalogue == catalogue and c.class_id == class_id:
                return c.label
        raise KeyError((catalogue, class_id))


def _read_classes(path: Path, problems: list[Problem]) -> list[AuxClass]:
    cols = ("catalogue", "class_id", "class", "priority", "condition", "measure", "min", "max",
            "name_zh")
    out = []
    seen: dict[tuple[str, str], set] = {}
    for line, r in _rows(path, cols, problems):
        f = path.name
        cat = r["catalogue"]
        if cat not in CATALOGUES:
            problems.append(Problem(f, line, "catalogue", f"unknown catalogue {cat!r} "
                                    f"(one of {', '.join(CATALOGUES)})"))
        cid = _int(r, "class_id", f, line, problems, 1, 127)
        prio = _int(r, "priority", f, line, problems, 1, 127)
        for col, v in (("class_id", cid), ("class", r["class"]), ("priority", prio)):
            key = seen.setdefault((cat, col), set())
            if v in key:
                problems.append(Problem(f, line, col, f"duplicate {col} {v!r} in catalogue {cat}"))
            key.add(v)
        if not r["class"] or any(ch in r["class"] for ch in ",\"\n/"):
            problems.append(Problem(f, line, "class", f"not a class label: {r['class']!r}"))
        cond = r["condition"]
        if cond not in CONDITIONS:
            problems.append(Problem(f, line, "condition", f"unknown condition {cond!r} "
                                    f"(one of {', '.join(CONDITIONS)})"))
        meas = r["measure"]
        if meas not in ("", *MEASURES):
            problems.append(Problem(f, line, "measure", f"unknown measure {meas!r} "
                                    f"(one of {', '.join(MEASURES)} or empty)"))
        lo = _int(r, "min", f, line, problems, empty_ok=True)
        hi = _int(r, "max", f, line, problems, empty_ok=True)
        if meas == "" and (lo is not None or hi is not None):
            problems.append(Problem(f, line, "measure", "min/max given without a measure"))
        if meas and lo is None and hi is None and r["min"] == r["max"] == "":
            problems.append(Problem(f, line, "min", "a measure needs min or max"))
        if lo is not None and hi is not None and lo > hi:
            problems.append(Problem(f, line, "max", f"max {hi} below min {lo}"))
        out.append(AuxClass(cat, cid or 0, r["class"], prio or 0, cond, meas, lo, hi,
                            r["name_zh"]))
    for cat in CATALOGUES:
        if not any(c.catalogue == cat for c in out):
            problems.append(Problem(path.name, None, "catalogue", f"no class for catalogue {cat}"))
    return out


def _read_charlson(path: Path, problems: list[Problem]):
    f = path.name
    names: list[str] = []
    weights: dict[str, int] = {}
    sup: dict[str, str] = {}
    prefixes: list[tuple[str, str]] = []
    seen = set()
    rows = _rows(path, ("condition", "icd10_prefix", "weight", "supersedes"), problems)
    for line, r in rows:
        c = r["condition"]
        if not c:
            problems.append(Problem(f, line, "condition", "empty condition"))
            continue
        w = _int(r, "weight", f, line, problems, 0, 100)
        if c not in weights:
            names.append(c)
            weights[c] = w if w is not None else 0
            sup[c] = r["supersedes"]
        elif w is not None and weights[c] != w:
            problems.append(Problem(f, line, "weight", f"condition {c} has weight {weights[c]} "
                                    f"on an earlier row, {w} here"))
        if r["supersedes"] != sup[c]:
            problems.append(Problem(f, line, "supersedes", f"condition {c} supersedes "
                                    f"{sup[c]!r} on an earlier row"))
        p = r["icd10_prefix"]
        if not p or p != p.strip():
            problems.append(Problem(f, line, "icd10_prefix", f"not a code prefix: {p!r}"))
        if (c, p) in seen:
            problems.append(Problem(f, line, "icd10_prefix", f"duplicate prefix {p} for {c}"))
        seen.add((c, p))
        prefixes.append((p, c))
    line_of = {r["condition"]: line for line, r in rows}
    for c, s in sup.items():
        if s and s not in weights:
            problems.append(Problem(f, line_of.get(c), "supersedes", f"unknown condition {s!r}"))
        elif s and weights.get(s, 0) > weights[c]:
            problems.append(Problem(f, line_of.get(c), "supersedes",
                                    f"{c} (weight {weights[c]}) supersedes the heavier {s}"))
    if len(names) > 62:
        problems.append(Problem(f, None, "condition", "more than 62 conditions"))
    idx = {c: i for i, c in enumerate(names)}
    return (tuple(names), tuple(weights[c] for c in names),
            tuple(idx.get(sup[c], -1) if sup[c] else -1 for c in names),
            tuple((p, idx[c]) for p, c in prefixes))


def _read_tumour(path: Path, problems: list[Problem]):
    f = path.name
    out = []
    for line, r in _rows(path, ("marker", "field", "prefix"), problems):
        if r["marker"] not in MARKERS:
            problems.append(Problem(f, line, "marker", f"unknown marker {r['marker']!r} "
                                    f"(one of {', '.join(MARKERS)})"))
        if r["field"] not in ("dx", "px"):
            problems.append(Problem(f, line, "field", f"must be dx or px: {r['field']!r}"))
        if not r["prefix"] or r["prefix"] != r["prefix"].strip():
            problems.append(Problem(f, line, "prefix", f"not a code prefix: {r['prefix']!r}"))
        out.append((r["marker"], r["field"], r["prefix"]))
    for m in MARKERS:
        if not any(x[0] == m for x in out):
            problems.append(Problem(f, None, "marker", f"no code for marker {m}"))
    return tuple(out)


@lru_cache(maxsize=8)
def load_aux_tables(folder: str | None = None) -> AuxTables:
    """The validated auxiliary tables (default: the shipped ``data/dip``); every problem
    is collected and raised together as one :class:`AuxTableError`."""
    d = Path(folder) if folder else _data_dir()
    problems: list[Problem] = []
    classes = _read_classes(d / "aux_classes.csv", problems)
    conds, weights, sup, prefixes = _read_charlson(d / "charlson_icd10.csv", problems)
    tumour = _read_tumour(d / "tumour_codes.csv", problems)
    if problems:
        raise AuxTableError(problems)
    classes.sort(key=lambda c: (CATALOGUES.index(c.catalogue), c.class_id))
    return AuxTables(tuple(classes), conds, weights, sup, prefixes, tumour)


# ---------------------------------------------------------------- case classes

def _fields(records: Any) -> RecordFields:
    from drgsim.records import RecordFields, dataframe_record_table, fields_from_table

    if isinstance(records, RecordFields):
        return records
    if isinstance(records, pa.RecordBatch):
        records = pa.Table.from_batches([records])
    if isinstance(records, pa.Table):
        return fields_from_table(records)
    return fields_from_table(dataframe_record_table(records))  # a DataFrame


def _pieces(field_: pa.Array, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, pa.Array]:
    """Split a code field (``|`` or ``,``): (piece record, piece position, piece code id,
    unique codes). An empty field has no piece; codes become ids once (dictionary encode)."""
    text = pc.replace_substring(field_, ",", "|")
    lists = pc.split_pattern(text, "|")
    lists = pc.if_else(pc.equal(field_, ""), pa.scalar([], pa.list_(pa.string())), lists)
    flat = pc.list_flatten(lists)
    rec = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.zeros(n, np.int64)
    if n > 1:
        np.cumsum(lengths[:-1], out=starts[1:])
    pos = np.arange(len(rec), dtype=np.int64) - starts[rec] if len(rec) else rec
    enc = pc.dictionary_encode(flat).combine_chunks() if isinstance(flat, pa.ChunkedArray) \
        else pc.dictionary_encode(flat)
    ids = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return rec, pos, ids, enc.dictionary


def _prefix_mask(uniques: pa.Array, prefixes: list[tuple[str, int]]) -> np.ndarray:
    """uint64 bit mask per unique code: bit k when the code (or, for a dagger-asterisk code
    ``A+B*``, its asterisk part ``B``) starts with a prefix of item k."""
    mask = np.zeros(len(uniques), np.uint64)
    if not len(uniques):
        return mask
    star = pc.replace_substring_regex(uniques, r"^[^+]*\+", "")  # part after '+', else itself
    has_plus = pc.match_substring(uniques, "+").to_numpy(zero_copy_only=False)
    for p, k in prefixes:
        hit = pc.starts_with(uniques, p).to_numpy(zero_copy_only=False)
        hit = hit | (has_plus & pc.starts_with(star, p).to_numpy(zero_copy_only=False))
        mask[hit] |= np.uint64(1) << np.uint64(k)
    return mask


def _or_by_record(masks: np.ndarray, rec: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, np.uint64)
    nz = masks != 0
    np.bitwise_or.at(out, rec[nz], masks[nz])
    return out


def _field_bits_arrow(field_: pa.Array, n: int, items_all: list[tuple[str, int]],
                      items_sec: list[tuple[str, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Per record, the OR of the prefix bits of all its codes and of its codes after the
    first, matching the text itself (any code, in the scheme's dictionary or not)."""
    rec, pos, ids, uniques = _pieces(field_, n)
    if not len(ids):
        return np.zeros(n, np.uint64), np.zeros(n, np.uint64)
    m_all = _prefix_mask(uniques, items_all)[ids]
    m_sec = np.where(pos > 0, _prefix_mask(uniques, items_sec)[ids], np.uint64(0))
    return _or_by_record(m_all, rec, n), _or_by_record(m_sec, rec, n)


def _charlson_from_bits(have: np.ndarray, t: AuxTables) -> np.ndarray:
    """The index from condition bits: each condition once, superseded ones dropped."""
    one = np.uint64(1)
    eff = have.copy()
    for j, sup in enumerate(t.supersedes):  # j present: the condition it supersedes is dropped
        if sup >= 0:
            eff &= ~(((have >> np.uint64(j)) & one) << np.uint64(sup))
    score = np.zeros(len(have), np.int64)
    for k, w in enumerate(t.weights):
        score += w * ((eff >> np.uint64(k)) & one).astype(np.int64)
    return score


def charlson_scores(diagnoses: pa.Array, n: int, tables: AuxTables | None = None) -> np.ndarray:
    """Charlson index per record from its secondary diagnoses (int64), matching the code
    text directly (the reference for the scheme-vocabulary path of :func:`case_classes`)."""
    t = tables or load_aux_tables()
    _, have = _field_bits_arrow(diagnoses, n, [], list(t.charlson_prefixes))
    return _charlson_from_bits(have, t)


def _marker_items(t: AuxTables, fld: str) -> list[tuple[str, int]]:
    return [(p, MARKERS.index(m)) for m, f, p in t.tumour if f == fld]


def _bits_to_markers(bits: np.ndarray) -> dict[str, np.ndarray]:
    return {m: ((bits >> np.uint64(k)) & np.uint64(1)).astype(bool) for k, m in enumerate(MARKERS)}


def markers_arrow(fields: RecordFields, tables: AuxTables | None = None) -> dict[str, np.ndarray]:
    """Tumour markers per record matching the code text directly (the reference path)."""
    t = tables or load_aux_tables()
    a, _ = _field_bits_arrow(fields.diagnoses, fields.n, _marker_items(t, "dx"), [])
    b, _ = _field_bits_arrow(fields.procedures, fields.n, _marker_items(t, "px"), [])
    return _bits_to_markers(a | b)


_VOCAB_MASKS: dict[tuple[str, AuxTables], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _vocab_masks(scheme: CompiledScheme, t: AuxTables) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Charlson bits, tumour dx marker bits, tumour px marker bits) per scheme code id,
    computed once per scheme and tables."""
    key = (scheme.content_hash, t)
    got = _VOCAB_MASKS.get(key)
    if got is None:
        codes = pa.array(scheme.codes, type=pa.string())
        got = (_prefix_mask(codes, list(t.charlson_prefixes)),
               _prefix_mask(codes, _marker_items(t, "dx")),
               _prefix_mask(codes, _marker_items(t, "px")))
        for m in got:
            m[0] = 0  # id 0: an empty piece or a code in no table
        _VOCAB_MASKS[key] = got
    return got


@njit(parallel=True, cache=True, nogil=True)
def _or_codes_kernel(ptr, ids, mask_all, mask_sec, out_all, out_sec, unknown):
    """Per record: OR of ``mask_all`` over its codes, of ``mask_sec`` over the codes after
    the first; ``unknown`` when some piece has id 0 (not in the scheme's vocabulary)."""
    for i in prange(out_all.shape[0]):
        a = np.uint64(0)
        s = np.uint64(0)
        unk = False
        for k in range(ptr[i], ptr[i + 1]):
            c = ids[k]
            if c == 0:
                unk = True
            a |= mask_all[c]
            if k > ptr[i]:
                s |= mask_sec[c]
        out_all[i] = a
        out_sec[i] = s
        unknown[i] = unk


def _field_bits(field_: pa.Array, scheme: CompiledScheme, mask_all: np.ndarray,
                mask_sec: np.ndarray, items_all: list[tuple[str, int]],
                items_sec: list[tuple[str, int]], threads: int,
                encoded: tuple[np.ndarray, np.ndarray] | None = None):
    """:func:`_field_bits_arrow` through the scheme's code ids (one numba pass); the text
    path runs only for the records holding a code outside the vocabulary (or an empty
    piece), so any code matches its prefixes. Also returns the CSR (ptr, ids)."""
    from drgsim.codes import encode_field
    from drgsim.parallel import parallel_section

    if encoded is None:
        ptr, ids = encode_field(field_, scheme, keep_empty_field=False, threads=threads)
    else:
        ptr, ids = encoded
    n = len(ptr) - 1
    out_all = np.zeros(n, np.uint64)
    out_sec = np.zeros(n, np.uint64)
    unknown = np.zeros(n, np.bool_)
    with parallel_section(threads):
        _or_codes_kernel(ptr, ids, mask_all, mask_sec, out_all, out_sec, unknown)
    idx = np.flatnonzero(unknown)
    if len(idx):
        sub = field_.take(pa.array(idx))
        a, s = _field_bits_arrow(sub, len(idx), items_all, items_sec)
        out_all[idx] = a
        out_sec[idx] = s
    return out_all, out_sec, ptr, ids


@njit(parallel=True, cache=True, nogil=True)
def _cc_levels_kernel(kt, dx_ptr, dx_ids, out):
    """0 none, 1 an effective CC, 2 an effective MCC (the grouper's own test, with the
    principal's exclusion table)."""
    for i in prange(out.shape[0]):
        d0 = dx_ptr[i]
        nd = dx_ptr[i + 1] - d0
        dx = dx_ids[d0:d0 + nd]
        if _effective(kt, dx, nd, True):
            out[i] = 2
        elif _effective(kt, dx, nd, False):
            out[i] = 1
        else:
            out[i] = 0


def cc_levels(diagnoses: pa.Array, scheme: CompiledScheme, ptr: np.ndarray | None = None,
              ids: np.ndarray | None = None, threads: int = 1) -> np.ndarray:
    """Per record: 2 with an effective MCC secondary, 1 with an effective CC, else 0
    (``ptr``/``ids``: the field already encoded with the scheme's vocabulary)."""
    from drgsim.parallel import parallel_section

    if ptr is None or ids is None:
        from drgsim.codes import encode_field

        ptr, ids = encode_field(diagnoses, scheme, keep_empty_field=False, threads=threads)
    out = np.zeros(len(ptr) - 1, np.int8)
    with parallel_section(threads):
        _cc_levels_kernel(scheme.kt, ptr, ids, out)
    return out


def _catalogues(policy: Any) -> tuple[str, ...]:
    if policy is None:
        return CATALOGUES
    aux = _aux_section(policy)
    cats = aux.get("catalogues", list(CATALOGUES))
    bad = [c for c in cats if c not in CATALOGUES]
    if bad:
        raise DrgsimError(f"dip.aux.catalogues: unknown catalogue {bad[0]!r} "
                          f"(one of {', '.join(CATALOGUES)})")
    return tuple(c for c in CATALOGUES if c in cats)


def _aux_section(policy: Any) -> Mapping:
    if isinstance(policy, Mapping):
        dip = policy.get("dip", policy)
        aux = dip.get("aux", dip) if isinstance(dip, Mapping) else {}
        return aux if isinstance(aux, Mapping) else {}
    raise DrgsimError(f"policy: expected a mapping, got {type(policy).__name__}")


def case_classes(records_or_fields: Any, scheme: Any = "chs_drg_11", policy: Any = None,
                 tables: AuxTables | None = None, threads: int | None = None,
                 dx_encoded: tuple[np.ndarray, np.ndarray] | None = None,
                 px_encoded: tuple[np.ndarray, np.ndarray] | None = None,
                 ) -> dict[str, np.ndarray]:
    """One class per case and catalogue (``int8``; 0 = none / the reference class).

    ``records_or_fields``: :class:`~drgsim.records.RecordFields`, an Arrow table/batch or a
    DataFrame with the record columns. ``scheme`` (name, folder or compiled) gives the CC/MCC
    tables for severity II/III and the vocabulary codes are matched through (codes outside
    it fall back to matching their text); ``policy`` may restrict ``dip.aux.catalogues``.
    Within a catalogue a case takes the applicable class of highest ``priority``
    (aux_classes.csv). No translation (dx_map) is applied: codes are read as given.
    ``dx_encoded``/``px_encoded``: the fields already encoded by
    :func:`drgsim.codes.encode_field` with this scheme (``keep_empty_field=False``), to
    skip encoding them again (the matcher has them).
    """
    t = tables or load_aux_tables()
    fields = _fields(records_or_fields)
    n = fields.n
    cats = _catalogues(policy)
    ints = fields.ints
    mode = ints["discharge_mode"]
    age_y = ints["age_years"]
    conds: dict[str, np.ndarray] = {
        "any": np.ones(n, bool),
        "death": mode == DEATH_MODE,
        "age_under_1": age_y == 0,
    }
    measures: dict[str, np.ndarray] = {
        "los_days": ints["los_days"], "age_days": ints["age_days"], "age_years": age_y,
    }
    scope = np.ones(n, bool)
    used = {c.condition for c in t.classes if c.catalogue in cats}
    need_cc = bool({"cc", "mcc"} & used)
    if need_cc or "tumour" in cats or "comorbidity" in cats:
        from drgsim.grouper.core import default_threads, load_scheme

        cs = load_scheme(scheme)
        threads = threads or default_threads()
        c_mask, dx_mask, px_mask = _vocab_masks(cs, t)
        dx_all, dx_sec, ptr, ids = _field_bits(
            fields.diagnoses, cs, dx_mask, c_mask, _marker_items(t, "dx"),
            list(t.charlson_prefixes), threads, dx_encoded)
        if need_cc:
            lv = cc_levels(fields.diagnoses, cs, ptr, ids, threads)
            conds["cc"] = lv == 1
            conds["mcc"] = lv == 2
        if "tumour" in cats:
            px_all, _, _, _ = _field_bits(fields.procedures, cs, px_mask, px_mask * 0,
                                          _marker_items(t, "px"), [], threads, px_encoded)
            mk = _bits_to_markers(dx_all | px_all)
            conds.update({m: mk[m] for m in MARKERS[1:]})
            scope = mk["scope"] | mk["metastasis"] | mk["radiotherapy"] | mk["chemotherapy"]
        if "comorbidity" in cats:
            measures["cci"] = _charlson_from_bits(dx_sec, t)
    out: dict[str, np.ndarray] = {}
    for cat in cats:
        cls = np.zeros(n, np.int8)
        best = np.zeros(n, np.int16)  # priority of the class chosen so far
        for c in t.of(cat):
            ok = conds[c.condition].copy()
            if cat == "tumour":
                ok &= scope
            if c.measure:
                v = measures[c.measure]
                ok &= v != ABSENT
                if c.lo is not None:
                    ok &= v >= c.lo
                if c.hi is not None:
                    ok &= v <= c.hi
            take = ok & (c.priority > best)
            cls[take] = c.class_id
            best[take] = c.priority
        out[cat] = cls
    return out


# ---------------------------------------------------------------- fitting

@dataclass(frozen=True)
class AuxParams:
    """The acceptance rule of DIP.md: a coefficient is kept where the packet has at least
    ``min_cases`` cases, the class at least ``min_subgroup_cases``, the packet CV is at
    least ``cv_min`` and the split cuts the CV by at least ``cv_cut`` (a share)."""

    min_cases: int = DEFAULTS["min_cases"]
    min_subgroup_cases: int = DEFAULTS["min_subgroup_cases"]
    cv_min: float = DEFAULTS["cv_min"]
    cv_cut: float = DEFAULTS["cv_cut"]
    catalogues: tuple[str, ...] = CATALOGUES

    @classmethod
    def from_mapping(cls, params: Mapping | AuxParams | None) -> AuxParams:
        """From ``dip.aux`` of a policy (``min_cases``; ``aux_min_cases`` is read too).
        An unknown key or a value out of range is refused, never ignored."""
        if isinstance(params, AuxParams):
            return params
        p = dict(params or {})
        if "aux_min_cases" in p:
            p.setdefault("min_cases", p.pop("aux_min_cases"))
        known = {"min_cases", "min_subgroup_cases", "cv_min", "cv_cut", "catalogues"}
        unknown = sorted(set(p) - known)
        if unknown:
            raise DrgsimError(f"dip.aux: unknown parameter {unknown[0]!r} "
                              f"(known: {', '.join(sorted(known))})")

        def num(key: str, kind: type, lo: float, hi: float) -> Any:
            v = p.get(key, DEFAULTS[key])
            if isinstance(v, bool) or not isinstance(v, (int, float)) or \
                    (kind is int and not float(v).is_integer()) or not lo <= v <= hi:
                raise DrgsimError(f"dip.aux.{key}: expected {'an integer' if kind is int else 'a number'}"
                                  f" in {lo}..{hi}, got {v!r}")
            return kind(v)

        cats = p.get("catalogues", list(CATALOGUES))
        if isinstance(cats, str) or not all(isinstance(c, str) and c in CATALOGUES for c in cats):
            raise DrgsimError(f"dip.aux.catalogues: expected a list from {', '.join(CATALOGUES)},"
                              f" got {cats!r}")
        return cls(num("min_cases", int, 1, 10**9), num("min_subgroup_cases", int, 1, 10**9),
                   num("cv_min", float, 0.0, 100.0), num("cv_cut", float, 0.0, 1.0),
                   tuple(c for c in CATALOGUES if c in cats))


def _group_stats(key: np.ndarray, x: np.ndarray, w: np.ndarray, size: int):
    """(n, weighted mean, weighted population CV) per key 0..size-1 (two-pass variance)."""
    n = np.bincount(key, minlength=size).astype(np.int64)
    sw = np.bincount(key, weights=w, minlength=size)
    swx = np.bincount(key, weights=w * x, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(sw > 0, swx / np.where(sw > 0, sw, 1.0), 0.0)
        d = x - mean[key]
        var = np.bincount(key, weights=w * d * d, minlength=size) / np.where(sw > 0, sw, 1.0)
        cv = np.where(mean > 0, np.sqrt(np.maximum(var, 0.0)) / np.where(mean > 0, mean, 1.0), 0.0)
    return n, mean, cv


def _check_fit_inputs(packet_idx, cost, year_weight, classes, n_packets) -> None:
    n = len(packet_idx)
    for name, a in (("cost", cost), ("year_weight", year_weight)):
        if len(a) != n:
            raise DrgsimError(f"fit_aux: {name} has {len(a)} values, packet_idx {n}")
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise DrgsimError(f"fit_aux: {name} must be finite and >= 0")
    if n and (packet_idx.min() < -1 or packet_idx.max() >= n_packets):
        raise DrgsimError(f"fit_aux: packet_idx outside -1..{n_packets - 1}")
    for cat, c in classes.items():
        if len(c) != n:
            raise DrgsimError(f"fit_aux: classes[{cat!r}] has {len(c)} values, packet_idx {n}")
        if n and (c.min() < 0 or c.max() > 127):
            raise DrgsimError(f"fit_aux: classes[{cat!r}] outside 0..127")


def fit_aux(packet_idx: np.ndarray, cost: np.ndarray, year_weight: np.ndarray,
            classes: Mapping[str, np.ndarray], packet_names: Any,
            params: Mapping | AuxParams | None = None,
            tables: AuxTables | None = None) -> pd.DataFrame:
    """The aux.csv table: per packet, catalogue and class (classes >= 1 present in the
    packet) its cases, year-weighted mean, coefficient and whether the CV rule keeps it.

    ``packet_idx``: per history case, an index into ``packet_names`` (-1: no packet);
    ``cost`` in fen; ``year_weight``: the case's year weight (0 drops the case, e.g. a
    trimmed one). Means and CVs are year-weighted (population CV); ``cv_after`` is the
    case-count-weighted mean of the CVs of all subgroups of the split, the reference
    class 0 included. The acceptance (min_cases, cv_min, cv_cut) is per packet and
    catalogue; min_subgroup_cases is per class.
    """
    import pandas as pd

    t = tables or load_aux_tables()
    prm = AuxParams.from_mapping(params)
    names = np.asarray(packet_names, dtype=object)
    p_all = np.asarray(packet_idx, dtype=np.int64)
    x_all = np.asarray(cost, dtype=np.float64)
    w_all = np.asarray(year_weight, dtype=np.float64)
    cls_all = {k: np.asarray(v, dtype=np.int64) for k, v in classes.items()}
    _check_fit_inputs(p_all, x_all, w_all, cls_all, len(names))
    keep = (p_all >= 0) & (w_all > 0)
    p, x, w = p_all[keep], x_all[keep], w_all[keep]
    P = len(names)
    n_p, mean_p, cv_p = _group_stats(p, x, w, P)
    frames = []
    for cat in CATALOGUES:
        if cat not in cls_all or cat not in prm.catalogues:
            continue
        cls = cls_all[cat][keep]
        defined = t.of(cat)
        K = max(c.class_id for c in defined) + 1
        if len(cls) and cls.max() >= K:
            raise DrgsimError(f"fit_aux: classes[{cat!r}] has class {int(cls.max())}, "
                              f"not in aux_classes.csv")
        key = p * K + cls
        n_g, mean_g, cv_g = _group_stats(key, x, w, P * K)
        n_g, mean_g, cv_g = n_g.reshape(P, K), mean_g.reshape(P, K), cv_g.reshape(P, K)
        with np.errstate(invalid="ignore", divide="ignore"):
            cv_after = (n_g * cv_g).sum(axis=1) / np.where(n_p > 0, n_p, 1)
            cut = np.where(cv_p > 0, (cv_p - cv_after) / np.where(cv_p > 0, cv_p, 1.0), 0.0)
        pk, ck = np.nonzero(n_g[:, 1:])
        ck = ck + 1
        nb = n_p[pk]
        cvb = cv_p[pk]
        reason = np.select(
            [nb < prm.min_cases,
             mean_p[pk] <= 0,
             cvb < prm.cv_min * (1 - CV_RTOL),
             cut[pk] < prm.cv_cut - CV_RTOL,
             n_g[pk, ck] < prm.min_subgroup_cases],
            [1, 2, 3, 4, 5], default=0)
        label = {c.class_id: c.label for c in defined}
        with np.errstate(invalid="ignore", divide="ignore"):
            coef = np.where(mean_p[pk] > 0, mean_g[pk, ck] / np.where(mean_p[pk] > 0,
                                                                       mean_p[pk], 1.0), np.nan)
        frames.append(pd.DataFrame({
            "packet": names[pk], "catalogue": cat,
            "class": np.array([label.get(int(c), "") for c in range(K)], dtype=object)[ck],
            "class_id": ck.astype(np.int64), "n_cases": n_g[pk, ck],
            "mean_cost_fen": mean_g[pk, ck], "coefficient": coef,
            "cv_before": cvb, "cv_after": cv_after[pk],
            "kept": (reason == 0).astype(np.int64),
            "reason": np.asarray(REASONS, dtype=object)[reason],
        }))
    if not frames:
        return pd.DataFrame({c: [] for c in AUX_COLUMNS})
    out = pd.concat(frames, ignore_index=True)
    order = np.lexsort((out["class_id"].to_numpy(),
                        out["catalogue"].map(CATALOGUES.index).to_numpy(),
                        out["packet"].astype(str).to_numpy()))
    return out.iloc[order].reset_index(drop=True)[list(AUX_COLUMNS)]


# ---------------------------------------------------------------- applying

def case_coefficients(packet_idx: np.ndarray, classes: Mapping[str, np.ndarray],
                      aux_table: pd.DataFrame, packet_names: Any = None,
                      tables: AuxTables | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(coefficient float64, which int64) per case: the highest kept coefficient among the
    case's classes in its packet; 1.0 and ``which`` -1 when none applies.

    ``which`` is the position (0-based row) in ``aux_table`` of the row that gave the
    coefficient: it names packet, catalogue and class (:func:`which_labels`). ``packet_idx``
    indexes ``packet_names`` (-1: no packet); without ``packet_names`` it must hold the
    packet codes themselves (strings). Ties go to the catalogue first in ``CATALOGUES``
    (comorbidity, severity, tumour, age), whatever the table's row order; a kept
    coefficient below 1 applies when it is the highest that applies.
    """
    t = tables or load_aux_tables()
    missing = [c for c in ("packet", "catalogue", "class_id", "coefficient", "kept")
               if c not in aux_table.columns]
    if missing:
        raise DrgsimError(f"case_coefficients: the aux table has no column {missing[0]!r}")
    raw = np.asarray(packet_idx)
    if packet_names is None:
        if raw.dtype.kind in "iub":
            raise DrgsimError("case_coefficients: packet_idx holds integers: pass packet_names "
                              "(the packet codes in index order) or the packet codes themselves")
        names, pidx = np.unique(raw.astype(str), return_inverse=True)
        pidx = pidx.astype(np.int64).reshape(-1)
    else:
        names = np.asarray(packet_names, dtype=object).astype(str)
        pidx = raw.astype(np.int64)
    n = len(pidx)
    P = len(names)
    coef = np.ones(n, np.float64)
    which = np.full(n, -1, np.int64)
    if n == 0 or P == 0 or len(aux_table) == 0:
        return coef, which
    kept_pos = np.flatnonzero(pd_numeric(aux_table["kept"]) == 1)
    tab_cat = aux_table["catalogue"].astype(str).to_numpy()[kept_pos]
    tab_pkt = aux_table["packet"].astype(str).to_numpy()[kept_pos]
    tab_cid = pd_numeric(aux_table["class_id"])[kept_pos]
    tab_coef = pd_numeric(aux_table["coefficient"])[kept_pos]
    sorter = np.argsort(names, kind="stable")
    pos = np.minimum(np.searchsorted(names, tab_pkt, sorter=sorter), P - 1)
    tab_p = sorter[pos]
    found = names[tab_p] == tab_pkt
    best = np.full(n, -np.inf)
    valid = (pidx >= 0) & (pidx < P)
    safe_p = np.where(valid, pidx, 0)
    for cat in CATALOGUES:  # in tie-break order: a later catalogue must be strictly higher
        if cat not in classes:
            continue
        K = max(c.class_id for c in t.of(cat)) + 1
        sel = found & (tab_cat == cat) & (tab_cid >= 1) & (tab_cid < K) & np.isfinite(tab_coef)
        lut = np.full((P, K), -np.inf)
        row = np.full((P, K), -1, np.int64)
        cid = tab_cid[sel].astype(np.int64)
        lut[tab_p[sel], cid] = tab_coef[sel]
        row[tab_p[sel], cid] = kept_pos[sel]
        cls = np.asarray(classes[cat], dtype=np.int64)
        if len(cls) != n:
            raise DrgsimError(f"case_coefficients: classes[{cat!r}] has {len(cls)} values, "
                              f"packet_idx {n}")
        ok = valid & (cls >= 1) & (cls < K)
        c0 = np.where(ok, cls, 0)
        v = np.where(ok, lut[safe_p, c0], -np.inf)
        better = v > best
        best = np.where(better, v, best)
        which = np.where(better, row[safe_p, c0], which)
    has = np.isfinite(best)
    coef[has] = best[has]
    return coef, which


def pd_numeric(col: Any) -> np.ndarray:
    """A table column as float64 (text read from a CSV included; unreadable -> NaN)."""
    import pandas as pd

    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)


def which_labels(which: np.ndarray, aux_table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(catalogue, class) label arrays for ``which`` rows of ``aux_table`` ("" for -1)."""
    w = np.asarray(which, dtype=np.int64)
    cats = np.append(aux_table["catalogue"].astype(str).to_numpy(dtype=object), "")
    labs = np.append(aux_table["class"].astype(str).to_numpy(dtype=object), "")
    return cats[w], labs[w]  # -1 picks the appended ""
