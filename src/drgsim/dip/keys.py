"""DIP packet keys: diagnosis keys, treatment types, procedure combinations (versions 1.0, 2.0).

Everything is vectorised: code fields are split once by Arrow, codes become integer ids once
(a dictionary per field), and keys are built from sorted integer arrays; no Python loop
runs over records. Packet code strings are made only for the distinct keys.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from drgsim.errors import Problem, ValidationError

#: treatment type ranks, lowest to highest (DIP.md): letters used in packet codes
TREATMENT_LETTERS = ("C", "D", "T", "S")
TREATMENT_NAMES = ("conservative", "diagnostic", "therapeutic", "surgery")
CONSERVATIVE, DIAGNOSTIC, THERAPEUTIC, SURGERY = range(4)
DX_LEVELS = {"subcategory": 5, "category": 3}

TREATMENT_TABLE = Path(__file__).resolve().parent.parent / "data" / "dip" / "treatment_types.csv"


class TreatmentTableError(ValidationError):
    """The treatment-type table (data/dip/treatment_types.csv or a region's) is malformed."""

    kind = "treatment-type table"


# ---------------------------------------------------------------- code fields

@dataclass
class CodeLists:
    """A code field split into pieces: row of each piece, its id into ``vocab``, its
    position within the row (0 = first listed). Empty pieces are dropped."""

    n: int
    row: np.ndarray  # int64 per piece
    ids: np.ndarray  # int32 per piece, into vocab
    pos: np.ndarray  # int32 per piece
    vocab: np.ndarray  # object array of distinct codes

    def counts(self) -> np.ndarray:
        return np.bincount(self.row, minlength=self.n)


@njit(cache=True, nogil=True)
def _count_pieces(offsets, data, counts):
    """Non-empty pieces of each ``|``/``,``-joined field."""
    for i in range(offsets.shape[0] - 1):
        c, run = 0, 0
        for k in range(offsets[i], offsets[i + 1]):
            b = data[k]
            if b == 124 or b == 44:
                if run:
                    c += 1
                run = 0
            else:
                run += 1
        if run:
            c += 1
        counts[i] = c


@njit(cache=True, nogil=True)
def _fill_pieces(offsets, data, ptr, row, pos, start, length):
    for i in range(offsets.shape[0] - 1):
        j, p, run, s0 = ptr[i], 0, 0, offsets[i]
        for k in range(offsets[i], offsets[i + 1] + 1):
            end = k == offsets[i + 1]
            if end or data[k] == 124 or data[k] == 44:
                if run:
                    row[j], pos[j], start[j], length[j] = i, p, s0, run
                    j += 1
                p += 1  # the position counts empty pieces too, as the field lists them
                run = 0
                s0 = k + 1
            else:
                run += 1


def _plain_strings(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous ``string`` array, nulls as "" (what the byte kernels read)."""
    if isinstance(a, pa.ChunkedArray):
        a = a.combine_chunks()
    a = pc.fill_null(a, "")
    return a.cast(pa.string()) if pa.types.is_large_string(a.type) else a


def split_codes(field: pa.Array | pa.ChunkedArray) -> CodeLists:
    """Split a ``|``/``,``-joined code field (scheme README 3) and encode the codes once:
    one byte pass (numba) over the Arrow buffers, one dictionary encoding of the pieces."""
    from drgsim.textkernels import string_buffers

    field = _plain_strings(field)
    n = len(field)
    offsets, data = string_buffers(field)
    counts = np.empty(n, dtype=np.int64)
    _count_pieces(offsets, data, counts)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    m = int(ptr[-1])
    row = np.empty(m, dtype=np.int64)
    pos = np.empty(m, dtype=np.int32)
    start = np.empty(m, dtype=np.int64)
    length = np.empty(m, dtype=np.int64)
    _fill_pieces(offsets, data, ptr, row, pos, start, length)
    out_off = np.zeros(m + 1, dtype=np.int32)
    np.cumsum(length, out=out_off[1:])
    out = np.empty(int(out_off[-1]), dtype=np.uint8)
    _gather(data, start, length, out_off, out)
    flat = pa.StringArray.from_buffers(m, pa.py_buffer(out_off), pa.py_buffer(out))
    enc = pc.dictionary_encode(flat)
    ids = np.asarray(enc.indices, dtype=np.int32) if m else np.zeros(0, np.int32)
    vocab = np.asarray(enc.dictionary.to_pylist(), dtype=object)
    return CodeLists(n, row, ids, pos, vocab)


def dx_key(code: str, level: str = "subcategory") -> str:
    """The diagnosis key of one code: the part before ``+`` (dagger–asterisk), then the first
    5 characters (subcategory, ``K80.100x001`` → ``K80.1``) or 3 (category, ``K80``)."""
    return code.split("+", 1)[0][: DX_LEVELS[level]]


def principal_dx(diagnoses: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The first code of each diagnoses field ('' when empty)."""
    if isinstance(diagnoses, pa.ChunkedArray):
        diagnoses = diagnoses.combine_chunks()
    first = pc.extract_regex(pc.fill_null(diagnoses, ""), r"^(?P<c>[^|,]*)")
    return pc.fill_null(pc.struct_field(first, [0]), "")


@njit(cache=True, nogil=True)
def _key_spans(offsets, data, nchars, first_only, start, length):
    """Per string: the bytes of its key: from the start (of the first code when
    ``first_only``) to the first ``+`` (or ``|``/``,`` ending the first code), at most
    ``nchars`` characters (UTF-8 aware)."""
    for i in range(offsets.shape[0] - 1):
        lo, hi = offsets[i], offsets[i + 1]
        k, chars = lo, 0
        while k < hi:
            b = data[k]
            if b == 43 or (first_only and (b == 124 or b == 44)):  # '+', '|', ','
                break
            if (b & 0xC0) != 0x80:  # the first byte of a character
                if chars == nchars:
                    break
                chars += 1
            k += 1
        start[i] = lo
        length[i] = k - lo


@njit(cache=True, nogil=True)
def _gather(data, start, length, out_off, out):
    for i in range(start.shape[0]):
        o = out_off[i]
        for j in range(length[i]):
            out[o + j] = data[start[i] + j]


def dx_key_ids(arr: pa.Array | pa.ChunkedArray | np.ndarray | list, level: str = "subcategory",
               principal: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """:func:`dx_key` over an array, as (int64 id per entry, distinct keys): one byte pass
    (numba) over the Arrow buffers and one dictionary encoding, no Python loop. With
    ``principal=True`` the input is whole diagnoses fields and their first code is keyed."""
    from drgsim.textkernels import string_buffers

    if level not in DX_LEVELS:
        raise ValueError(f"dx_level {level!r}: one of {', '.join(DX_LEVELS)}")
    a = arr if isinstance(arr, (pa.Array, pa.ChunkedArray)) else pa.array(list(arr), pa.string())
    a = _plain_strings(a)
    n = len(a)
    offsets, data = string_buffers(a)
    start = np.empty(n, dtype=np.int64)
    length = np.empty(n, dtype=np.int64)
    _key_spans(offsets, data, DX_LEVELS[level], principal, start, length)
    out_off = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(length, out=out_off[1:])
    out = np.empty(int(out_off[-1]), dtype=np.uint8)
    _gather(data, start, length, out_off, out)
    key = pa.StringArray.from_buffers(n, pa.py_buffer(out_off), pa.py_buffer(out))
    enc = pc.dictionary_encode(key)
    ids = np.asarray(enc.indices, dtype=np.int64) if n else np.zeros(0, np.int64)
    names = np.asarray(enc.dictionary.to_pylist(), dtype=object)
    return ids, names


def dx_keys(arr: pa.Array | pa.ChunkedArray | np.ndarray | list, level: str = "subcategory",
            principal: bool = False) -> np.ndarray:
    """:func:`dx_key` over an array of codes (object array of keys)."""
    ids, names = dx_key_ids(arr, level, principal)
    return names[ids] if len(ids) else np.zeros(0, dtype=object)


_CHAPTERS = (  # ICD-10 chapters by the first three characters (WHO ICD-10, 2019)
    ("A00", "B99", 1), ("C00", "D48", 2), ("D50", "D89", 3), ("E00", "E90", 4),
    ("F00", "F99", 5), ("G00", "G99", 6), ("H00", "H59", 7), ("H60", "H95", 8),
    ("I00", "I99", 9), ("J00", "J99", 10), ("K00", "K93", 11), ("L00", "L99", 12),
    ("M00", "M99", 13), ("N00", "N99", 14), ("O00", "O99", 15), ("P00", "P96", 16),
    ("Q00", "Q99", 17), ("R00", "R99", 18), ("S00", "T98", 19), ("V01", "Y98", 20),
    ("Z00", "Z99", 21), ("U00", "U99", 22),
)


def chapters(keys: np.ndarray) -> np.ndarray:
    """ICD-10 chapter label (``CH01``..``CH22``; ``CH00`` outside every chapter) of diagnosis
    keys, by their first three characters."""
    k3 = np.asarray([str(k)[:3] for k in keys], dtype=object)  # over distinct keys only
    out = np.full(len(k3), "CH00", dtype=object)
    for lo, hi, ch in _CHAPTERS:
        m = (k3 >= lo) & (k3 <= hi + "\uffff") if len(k3) else np.zeros(0, bool)
        out[m & (out == "CH00")] = f"CH{ch:02d}"
    return out


# ---------------------------------------------------------------- treatment types

@dataclass(frozen=True)
class TreatmentRules:
    """The rules of a treatment-type table, in order (first match wins)."""

    codes: dict[str, int]
    or_list_rank: int | None  # where the or_list rule sits (its position in ``order``)
    order: tuple[tuple[str, str, str, int], ...]  # (rule, from, to, type)
    file: str


_RANGE = re.compile(r"^\d{2}\.\d{2}$")


def read_treatment_rules(path: str | os.PathLike[str] | None = None) -> TreatmentRules:
    """Read and validate a treatment-type table; every problem as ``file:line: column: msg``."""
    p = Path(path) if path is not None else TREATMENT_TABLE
    file = str(p)
    problems: list[Problem] = []
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise TreatmentTableError([Problem(file, None, None, f"cannot read ({e.strerror or e})")]) from e
    rows = list(csv.reader(text.splitlines()))
    want = ["rule", "code_from", "code_to", "type", "note"]
    if not rows or rows[0][:4] != want[:4]:
        raise TreatmentTableError([Problem(file, 1, None, f"header must be {','.join(want)}")])
    codes: dict[str, int] = {}
    order: list[tuple[str, str, str, int]] = []
    or_at = None
    for i, r in enumerate(rows[1:], start=2):
        if not r or not any(x.strip() for x in r):
            continue
        r = (r + [""] * 5)[:5]
        rule, lo, hi, typ = r[0].strip(), r[1].strip(), r[2].strip(), r[3].strip()
        if typ not in TREATMENT_LETTERS:
            problems.append(Problem(file, i, "type", f"{typ!r} is not one of C, D, T, S"))
            continue
        t = TREATMENT_LETTERS.index(typ)
        if rule == "code":
            if not lo:
                problems.append(Problem(file, i, "code_from", "a code rule needs the code"))
            elif lo in codes:
                problems.append(Problem(file, i, "code_from", f"{lo!r} is listed twice"))
            else:
                codes[lo] = t
        elif rule == "or_list":
            if or_at is not None:
                problems.append(Problem(file, i, "rule", "or_list appears twice"))
            or_at = len(order)
            order.append(("or_list", "", "", t))
        elif rule == "range":
            for col, v in (("code_from", lo), ("code_to", hi)):
                if not _RANGE.match(v):
                    problems.append(Problem(file, i, col, f"{v!r} is not NN.NN"))
            if _RANGE.match(lo) and _RANGE.match(hi) and lo > hi:
                problems.append(Problem(file, i, "code_to", f"{hi!r} is below code_from {lo!r}"))
            order.append(("range", lo, hi, t))
        else:
            problems.append(Problem(file, i, "rule", f"{rule!r} is not code, or_list or range"))
    if problems:
        raise TreatmentTableError(problems)
    return TreatmentRules(codes, or_at, tuple(order), file)


@lru_cache(maxsize=8)
def _or_list(scheme_dir: str) -> frozenset[str]:
    f = Path(scheme_dir) / "or_procedure.csv"
    if not f.exists():
        return frozenset()
    with open(f, encoding="utf-8") as fh:
        return frozenset(r["code"] for r in csv.DictReader(fh))


def _scheme_dir(scheme: Any) -> str | None:
    """The folder of a scheme given by name, folder or compiled (its ``path``), or None."""
    if scheme is None:
        return None
    from drgsim.scheme import resolve_scheme_dir
    from drgsim.scheme.compiled import CompiledScheme

    if isinstance(scheme, CompiledScheme):
        scheme = scheme.path
    return str(resolve_scheme_dir(scheme))


def code_types(codes: np.ndarray, scheme: Any = "chs_drg_11",
               rules: TreatmentRules | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(type rank int8, matched bool) for distinct procedure codes: the first rule of the
    table that matches; a code no rule matches is therapeutic (``matched`` False)."""
    rules = rules or read_treatment_rules()
    codes = np.asarray(codes, dtype=object)
    n = len(codes)
    out = np.full(n, -1, dtype=np.int8)
    sdir = _scheme_dir(scheme)
    orl = _or_list(sdir) if sdir else frozenset()
    head = np.asarray([str(c)[:5] for c in codes], dtype=object)  # distinct codes only
    well_formed = np.asarray([bool(_RANGE.match(h)) for h in head], dtype=bool)
    in_or = (np.asarray([str(c) in orl for c in codes], dtype=bool) if orl
             else np.zeros(n, bool))
    if rules.codes:
        exact = np.asarray([rules.codes.get(str(c), -1) for c in codes], dtype=np.int8)
        out = np.where(exact >= 0, exact, out).astype(np.int8)
    for rule, lo, hi, t in rules.order:
        free = out < 0
        if not free.any():
            break
        if rule == "or_list":
            m = in_or
        else:
            m = (head >= lo) & (head <= hi) & well_formed
        out[free & m] = t
    matched = out >= 0
    out[~matched] = THERAPEUTIC
    return out, matched


def treatment_types(scheme: Any = "chs_drg_11",
                    rules: TreatmentRules | None = None) -> dict[str, int]:
    """Treatment type rank of every code of the scheme's procedure dictionary (icd9.csv)."""
    sdir = _scheme_dir(scheme)
    with open(Path(sdir) / "icd9.csv", encoding="utf-8") as fh:
        codes = np.asarray([r["code"] for r in csv.DictReader(fh)], dtype=object)
    t, _ = code_types(codes, scheme, rules)
    return dict(zip(codes.tolist(), t.tolist(), strict=True))


# ---------------------------------------------------------------- packet keys

@dataclass
class ProcKeys:
    """Per record: the procedures that make its packet key, as a CSR of sorted vocabulary
    ranks (``ptr``/``codes``), its treatment type, and the distinct procedure-set id."""

    ptr: np.ndarray  # int64[n+1]
    codes: np.ndarray  # int32 ranks into vocab (sorted vocabulary: rank order = text order)
    vocab: np.ndarray  # sorted object array
    treatment: np.ndarray  # int8 per record: highest type over all its procedures, 0 none
    set_id: np.ndarray  # int64 per record: -1 conservative, else id of its procedure set
    unmatched_codes: int  # distinct codes of usable records no treatment rule matched

    def codes_of(self, row: int) -> list[str]:
        return self.vocab[self.codes[self.ptr[row]:self.ptr[row + 1]]].tolist()


def _sorted_vocab(cl: CodeLists) -> tuple[np.ndarray, np.ndarray]:
    """Vocabulary sorted by text and the piece ids remapped to ranks in it."""
    order = np.argsort(cl.vocab.astype(str), kind="stable") if len(cl.vocab) else np.zeros(0, int)
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return cl.vocab[order], rank[cl.ids] if len(cl.ids) else cl.ids


def _set_ids(n: int, row: np.ndarray, code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct sets of codes per row (``row``/``code`` sorted by row then code, deduplicated):
    (ptr, set id per row, -1 for an empty set). Exact: the id of a row's first j codes is
    factorised from (id of its first j-1 codes, j-th code), slot by slot, then with the count."""
    import pandas as pd

    cnt = np.bincount(row, minlength=n)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(cnt, out=ptr[1:])
    sid = np.full(n, -1, dtype=np.int64)
    if len(row) == 0:
        return ptr, sid
    slot = np.arange(len(row), dtype=np.int64) - ptr[row]
    v = int(code.max()) + 1
    prefix = np.zeros(n, dtype=np.int64)  # id of each row's codes so far
    for j in range(int(cnt.max())):  # a loop over slots (the widest set), not records
        sel = np.flatnonzero(slot == j)
        r = row[sel]
        ids, _ = pd.factorize(prefix[r] * v + code[sel])
        prefix[r] = ids
    has = cnt > 0
    full, _ = pd.factorize(prefix[has] * (int(cnt.max()) + 1) + cnt[has])
    sid[has] = full
    return ptr, sid


def qualifying_pieces(procedures: pa.Array | pa.ChunkedArray, scheme: Any = "chs_drg_11",
                      rules: TreatmentRules | None = None) -> dict[str, Any]:
    """Each record's qualifying procedures (type ≥ diagnostic), sorted by vocabulary rank,
    deduplicated (the earliest listed position kept), with the treatment type of each
    record (highest over all its procedures) and the sorted vocabulary."""
    cl = split_codes(procedures)
    vocab, rank = _sorted_vocab(cl)
    types, matched = code_types(vocab, scheme, rules)
    t_piece = types[rank] if len(rank) else np.zeros(0, np.int8)
    treatment = np.zeros(cl.n, dtype=np.int8)
    if len(rank):
        np.maximum.at(treatment, cl.row, t_piece)
    q = t_piece >= DIAGNOSTIC
    row, code, pos = cl.row[q], rank[q], cl.pos[q]
    # sort by (row, code), drop repeated codes within a row (keep the earliest position)
    # pieces come row by row in listed order: a stable sort on (row, code) keeps positions
    o = np.argsort(row * (len(vocab) + 1) + code, kind="stable")
    row, code, pos = row[o], code[o], pos[o]
    dup = np.zeros(len(row), dtype=bool)
    dup[1:] = (row[1:] == row[:-1]) & (code[1:] == code[:-1])
    return {"cl": cl, "vocab": vocab, "rank": rank, "matched": matched,
            "treatment": treatment, "row": row[~dup], "code": code[~dup], "pos": pos[~dup]}


def unmatched_codes(q: dict[str, Any], usable: np.ndarray | None) -> np.ndarray:
    """The distinct codes of ``usable`` records that no treatment rule matched."""
    cl, rank, vocab = q["cl"], q["rank"], q["vocab"]
    listed = np.ones(len(vocab), bool)
    if usable is not None and len(rank):
        listed[:] = False
        listed[rank[np.asarray(usable, bool)[cl.row]]] = True
    return vocab[~q["matched"] & listed]


def proc_keys(procedures: pa.Array | pa.ChunkedArray, version: str = "1.0",
              scheme: Any = "chs_drg_11",
              rules: TreatmentRules | None = None, cost: np.ndarray | None = None,
              usable: np.ndarray | None = None, related_cost_share: float = 0.10,
              code_costs: Any = None, pieces: dict[str, Any] | None = None) -> ProcKeys:
    """The procedure part of each record's packet key.

    Version ``1.0``: every qualifying procedure (treatment type ≥ diagnostic), order-free,
    deduplicated. Version ``2.0``: the main procedure (the first qualifying one listed, the
    record's 主要手术操作) plus at most one related procedure: the other qualifying procedure
    with the largest estimated cost share, kept when that share ≥ ``related_cost_share``
    (see :func:`procedure_costs` for how the share is estimated: records carry no
    per-procedure cost). ``cost``/``usable`` are needed for 2.0 (the history the estimate
    is made from), unless ``code_costs`` (code -> estimate, reduced over a whole history by
    :func:`procedure_cost_sums` / :func:`procedure_estimates`) is given. Records whose
    procedures are all conservative key by diagnosis alone. ``pieces``: the
    :func:`qualifying_pieces` of ``procedures`` when the caller has them already.
    """
    q = pieces if pieces is not None else qualifying_pieces(procedures, scheme, rules)
    cl, vocab = q["cl"], q["vocab"]
    row, code, pos = q["row"], q["code"], q["pos"]
    if version == "2.0":
        if code_costs is not None:
            rel = pd.Series(vocab, dtype=object).map(code_costs).fillna(0.0).to_numpy(
                np.float64) if len(vocab) else np.zeros(0)
        else:
            if cost is None:
                raise ValueError("version 2.0 keys need the history's costs (related_cost_share)")
            use = np.ones(cl.n, bool) if usable is None else np.asarray(usable, bool)
            rel = procedure_costs(cl.n, row, code, len(vocab), np.asarray(cost, float), use)
        row, code = _main_related(row, code, pos, rel, related_cost_share)
    elif version != "1.0":
        raise ValueError(f"version {version!r}: 1.0 or 2.0")
    ptr, sid = _set_ids(cl.n, row, code)
    return ProcKeys(ptr, code.astype(np.int32), vocab, q["treatment"], sid,
                    len(unmatched_codes(q, usable)))


def procedure_cost_sums(n: int, row: np.ndarray, code: np.ndarray, vocab: np.ndarray,
                        cost: np.ndarray, usable: np.ndarray) -> pd.DataFrame:
    """Partial sums for :func:`procedure_estimates`: per procedure code and number ``k``
    of qualifying procedures of the case, the usable cases listing it (``n``) and their
    cost sum (``s``, whole fen: exact in any order). Added up over any partitions."""
    k = np.bincount(row, minlength=n)
    ok = np.asarray(usable, bool)[row]
    kk = k[row[ok]].astype(np.int64)
    key = code[ok].astype(np.int64) * (int(kk.max()) + 1 if len(kk) else 1) + kk
    u, inv = np.unique(key, return_inverse=True)
    width = int(kk.max()) + 1 if len(kk) else 1
    return pd.DataFrame({
        "code": pd.Series(vocab[u // width] if len(u) else np.zeros(0, object), dtype=object),
        "k": (u % width).astype(np.int64),
        "n": np.bincount(inv.reshape(-1), minlength=len(u)).astype(np.int64),
        "s": np.bincount(inv.reshape(-1), weights=cost[row[ok]], minlength=len(u)),
    })


def procedure_estimates(sums: pd.DataFrame) -> dict[str, float]:
    """Estimated relative cost per code from (possibly many partitions') partial sums:
    the mean cost of its cases alone (k = 1); else the mean of its equal parts (cost / k),
    summed by k in ascending order, so any partitioning gives the same float."""
    t = sums.groupby(["code", "k"], sort=True)[["n", "s"]].sum().reset_index()
    if not len(t):
        return {}
    code_id, names = pd.factorize(t["code"].to_numpy(object), sort=True)
    m = len(names)
    kk = t["k"].to_numpy(np.int64)
    n = t["n"].to_numpy(np.float64)
    s = t["s"].to_numpy(np.float64)
    alone = kk == 1
    n_alone = np.bincount(code_id[alone], weights=n[alone], minlength=m)
    s_alone = np.bincount(code_id[alone], weights=s[alone], minlength=m)
    n_any = np.bincount(code_id, weights=n, minlength=m)
    s_part = np.bincount(code_id, weights=s / np.maximum(kk, 1), minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = np.where(n_alone > 0, s_alone / np.maximum(n_alone, 1),
                       np.where(n_any > 0, s_part / np.maximum(n_any, 1), 0.0))
    return dict(zip(np.asarray(names, object).tolist(), est.tolist(), strict=True))


def procedure_costs(n: int, row: np.ndarray, code: np.ndarray, n_codes: int, cost: np.ndarray,
                    usable: np.ndarray) -> np.ndarray:
    """Estimated relative cost of each procedure code, from history (no per-procedure cost in
    the records): the mean cost of usable cases where it is the only qualifying procedure;
    for a code never alone, the mean cost of the cases listing it divided by their mean
    number of qualifying procedures (its equal part). 0 for a code no usable case lists.
    Computed from order-free partial sums (:func:`procedure_cost_sums`), as an engine does."""
    ids = np.arange(n_codes, dtype=np.int64)
    est = procedure_estimates(procedure_cost_sums(n, row, code, ids.astype(object),
                                                  np.asarray(cost, float), usable))
    return np.asarray([est.get(i, 0.0) for i in range(n_codes)], dtype=np.float64)


def _main_related(row: np.ndarray, code: np.ndarray, pos: np.ndarray, rel: np.ndarray,
                  share_min: float) -> tuple[np.ndarray, np.ndarray]:
    """Version 2.0: per row keep the main procedure (smallest position) and the other one
    with the largest estimated share of the row's procedure cost when ≥ ``share_min``
    (ties: the smaller code). Input sorted by (row, code); output likewise."""
    if len(row) == 0:
        return row, code
    n = int(row.max()) + 1
    c = rel[code]
    tot = np.bincount(row, weights=c, minlength=n)
    share = np.where(tot[row] > 0, c / np.where(tot[row] > 0, tot[row], 1), 0.0)
    # main: smallest position per row
    o = np.lexsort((pos, row))
    first = np.ones(len(o), bool)
    first[1:] = row[o][1:] != row[o][:-1]
    is_main = np.zeros(len(row), bool)
    is_main[o[first]] = True
    # related: among the others, the largest share then the smallest code
    cand = np.flatnonzero(~is_main)
    o2 = cand[np.lexsort((code[cand], -share[cand], row[cand]))]
    f2 = np.ones(len(o2), bool)
    f2[1:] = row[o2][1:] != row[o2][:-1]
    best = o2[f2]
    keep = is_main.copy()
    keep[best[share[best] >= share_min]] = True
    return row[keep], code[keep]
