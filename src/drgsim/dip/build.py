"""Build a region's DIP catalogue from its history (DIP.md "Catalogue" and "Scores").

Record checks first (the DRG path's, same reasons); then packet keys (diagnosis key ×
procedure combination), core packets at ``core_threshold``, the rest folded into
comprehensive packets (category × treatment type, then a coarser prefix, then the ICD-10
chapter), base packets from a shipped list, scores from trimmed year-weighted means, level
means, auxiliary coefficients (:mod:`drgsim.dip.aux`, when present), and the budget point
value and reimbursement ratio from the same history. Vectorised: no loop over records.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from drgsim.calibrate import trim_mask, year_case_weights
from drgsim.dip import keys as K
from drgsim.dip.tables import FORMAT, Catalogue, CatalogueError
from drgsim.errors import MissingColumnError, Problem, ValidationError
from drgsim.grouper.kernels import CHECK_FIELDS, check_reasons

#: the build's parameters and their defaults (the ``dip:`` section of a DIP policy)
DEFAULTS: dict[str, Any] = {
    "version": "1.0",
    "dx_level": "subcategory",
    "proc_mode": None,  # derived from version: 1.0 -> all, 2.0 -> main_related
    "related_cost_share": 0.10,
    "core_threshold": 15,
    # chosen: two thirds of the core threshold. A comprehensive packet pools keys that are
    # each too rare, so it is already heterogeneous; 10 cases keep most folds at the
    # category level instead of pushing them to a chapter, while the newest year (weight
    # 0.7) still rests on several cases.
    "comprehensive_min_cases": 10,
    "score_scale": 100,
    "trim": {"rule": "sd", "k": 3.0, "lower": 0.05, "upper": 0.95},
    "year_weights": [0.1, 0.2, 0.7],
    "aux": {"catalogues": ["comorbidity", "severity", "tumour", "age"], "min_cases": 30,
            "min_subgroup_cases": 5, "cv_min": 0.7, "cv_cut": 0.2},
    # chosen: a level mean C needs 10 cases of that level, else the packet mean is used
    "level_min_cases": 10,
    "base_packets": "demo",  # "demo" = data/dip/base_packets_demo.csv, a path, or "none"
}
#: keys of a DIP policy section that other parts read (pricing, matching)
OTHER_KEYS = {"outliers", "blank_ratio", "special_review_share", "point_value",
              "method", "hospital_coefficient"}
BASE_LIST = Path(__file__).resolve().parent.parent / "data" / "dip" / "base_packets_demo.csv"
BUILD_STATUSES = ("ok", "check_failed", "malformed_row", "missing_cost", "negative_cost",
                  "bad_date", "outside_years")
HOSPITAL_LEVELS_FALLBACK = "fallback"


class DipPolicyError(ValidationError):
    """A DIP build parameter is unknown or out of range (refused, never ignored)."""

    kind = "DIP policy"


@dataclass
class BuildInfo:
    """What the build saw and decided, for the report (not part of the catalogue tables)."""

    rows: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    reason_counts: dict[str, int] = field(default_factory=dict)
    unmatched_proc_codes: int = 0
    cases_unknown_hospital: int = 0
    base_missing: list[str] = field(default_factory=list)
    aux_note: str = ""
    notes: list[str] = field(default_factory=list)
    cost_fen: float = 0.0
    core_cost_fen: float = 0.0


# ---------------------------------------------------------------- parameters

def _problem(key: str, msg: str, source: str = "<dip policy>") -> DipPolicyError:
    return DipPolicyError([Problem(source, None, f"dip.{key}" if key else "dip", msg)])


def resolve_params(policy: Any = None, year: int | None = None) -> dict[str, Any]:
    """The build parameters: DEFAULTS overlaid by ``policy`` (None; a dict: the ``dip:``
    section or a tree holding one; a :class:`~drgsim.policy.Policy`; a policy file path).
    Unknown keys and bad values are refused."""
    sec: Mapping[str, Any] | None
    if policy is None:
        sec = {}
    elif isinstance(policy, Mapping):
        sec = policy.get("dip", policy) if "dip" in policy else policy
    else:
        from drgsim.policy import Policy, load_policy

        pol = policy if isinstance(policy, Policy) else load_policy(policy)
        day = dt.date(year if year is not None else dt.date.today().year, 1, 1)
        tree = pol.at(day)
        if "dip" not in tree:
            raise _problem("", "the policy has no dip section (a DIP build needs one, e.g. "
                               "dip_baseline)", str(pol.source))
        sec = tree["dip"]
    p = copy.deepcopy(DEFAULTS)
    for k, v in dict(sec).items():
        if k in OTHER_KEYS:
            continue
        if k not in DEFAULTS:
            raise _problem(k, "unknown key (the build cannot honour it)")
        if isinstance(DEFAULTS[k], dict) and isinstance(v, Mapping):
            for kk, vv in v.items():
                if kk not in DEFAULTS[k]:
                    raise _problem(f"{k}.{kk}", "unknown key (the build cannot honour it)")
                p[k][kk] = vv
        else:
            p[k] = v
    p["version"] = str(p["version"])
    mode = p["proc_mode"]
    want = {"1.0": "all", "2.0": "main_related"}.get(p["version"])
    if want is None:
        raise _problem("version", f"{p['version']!r} is not 1.0 or 2.0")
    if mode is not None and mode != want:
        raise _problem("proc_mode", f"{mode!r} does not go with version {p['version']} "
                                    f"({want})")
    p["proc_mode"] = want
    if p["dx_level"] not in K.DX_LEVELS:
        raise _problem("dx_level", f"{p['dx_level']!r} is not subcategory or category")
    if p["score_scale"] not in (100, 1000):
        raise _problem("score_scale", f"{p['score_scale']!r} is not 100 or 1000")
    for k in ("core_threshold", "comprehensive_min_cases", "level_min_cases"):
        if not isinstance(p[k], (int, np.integer)) or isinstance(p[k], bool) or p[k] < 1:
            raise _problem(k, f"{p[k]!r} is not a whole number ≥ 1")
    if not (0.0 <= float(p["related_cost_share"]) <= 1.0):
        raise _problem("related_cost_share", f"{p['related_cost_share']!r} is not in [0, 1]")
    yw = p["year_weights"]
    if not isinstance(yw, (list, tuple)) or not yw or any(float(w) < 0 for w in yw) \
            or sum(float(w) for w in yw) <= 0:
        raise _problem("year_weights", f"{yw!r}: a list of non-negative weights, oldest first")
    tr = p["trim"]
    if tr["rule"] not in ("sd", "percentile", "none"):
        raise _problem("trim.rule", f"{tr['rule']!r} is not sd, percentile or none")
    return p


def _trim_spec(tr: dict) -> dict:
    """The DIP ``trim`` section as calibrate's trimming spec (one trimming for both)."""
    return {"method": tr["rule"], "sd": float(tr["k"]), "lower": float(tr["lower"]),
            "upper": float(tr["upper"])}


# ---------------------------------------------------------------- input

@dataclass
class History:
    """The columns of a history the build reads, as arrays (one entry per input row)."""

    table: pa.Table
    n: int
    case_id: pd.Series
    cost_fen: np.ndarray  # float; NaN when missing
    share_fen: np.ndarray | None  # patients' share; None when the input has no such column
    year: np.ndarray  # int64; -1 when the date is bad
    hosp_id: np.ndarray  # int64 per row into hosp_names; -1 none
    hosp_names: np.ndarray  # object
    malformed: np.ndarray  # bool


def _col(names: list[str], name: str, columns: Mapping[str, str] | None) -> str | None:
    from drgsim.pricing.cases import ALIASES

    if columns and name in columns:
        if columns[name] not in names:
            raise MissingColumnError(f"column {columns[name]!r} (given for {name}) is not in "
                                     "the history")
        return columns[name]
    for a in ALIASES.get(name, (name,)):
        if a in names:
            return a
    return None


def _years_of(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Year of each discharge date (date, timestamp or text); -1 when unreadable."""
    a = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if pa.types.is_date(a.type) or pa.types.is_timestamp(a.type):
        y = pc.year(a)
    else:
        s = pd.to_datetime(pd.Series(a.to_pandas()), errors="coerce")
        return np.where(s.isna(), -1, s.dt.year.fillna(-1)).astype(np.int64)
    return np.asarray(pc.fill_null(y, -1), dtype=np.int64)


def read_history(history: Any, columns: Mapping[str, str] | None = None) -> History:
    """A history (path, DataFrame or Arrow table) as the arrays the build needs."""
    from drgsim.inputs.sources import MALFORMED_COLUMN
    from drgsim.pricing.cases import SHARE_PARTS
    from drgsim.pricing.money import yuan_to_fen
    from drgsim.records import check_columns, read_records

    table = read_records(history)
    names = table.schema.names
    rename = {}
    for k, v in (columns or {}).items():
        if v not in names:
            raise MissingColumnError(f"column {v!r} (given for {k}) is not in the history")
        if k in ("case_id", "sex", "age_years", "age_days", "birth_weight_g", "diagnoses",
                 "procedures"):
            rename[v] = k
    if rename:
        table = table.rename_columns([rename.get(c, c) for c in names])
        names = table.schema.names
    check_columns(names)
    n = table.num_rows
    cost_col = _col(names, "total_cost", columns)
    date_col = _col(names, "discharge_date", columns)
    if cost_col is None:
        raise MissingColumnError("the history lacks total_cost (aliases: cost, total_cost_yuan)")
    if date_col is None and "year" not in names:
        raise MissingColumnError("the history lacks discharge_date (it dates the history years)")
    fen, ok = yuan_to_fen(table.column(cost_col))
    cost = np.where(ok, fen.astype(np.float64), np.nan)
    # the patients' share only feeds the ratio r (a float): read as float yuan, not to the fen
    share = None
    sc = _col(names, "patient_share", columns)
    parts = [sc] if sc is not None else [c for c in SHARE_PARTS if c in names]
    if parts:
        share = np.zeros(n)
        for c in parts:
            col = table.column(c)
            try:
                f = pc.cast(col, pa.float64(), safe=False)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                f = pa.array(pd.to_numeric(pd.Series(col.to_pandas()), errors="coerce"))
            share += np.nan_to_num(np.asarray(pc.fill_null(f, 0.0), dtype=np.float64)) * 100.0
    if date_col is not None:
        year = _years_of(table.column(date_col))
    else:
        year = np.asarray(pc.fill_null(pc.cast(table.column("year"), pa.int64(), safe=False), -1),
                          dtype=np.int64)
    hc = _col(names, "hospital_id", columns)
    if hc:
        enc = pc.dictionary_encode(table.column(hc).combine_chunks().cast(pa.string()))
        hid = np.asarray(pc.fill_null(enc.indices, -1), dtype=np.int64)
        hnames = np.asarray(enc.dictionary.to_pylist(), dtype=object)
    else:
        hid, hnames = np.full(n, -1, dtype=np.int64), np.zeros(0, dtype=object)
    mal = (np.asarray(table.column(MALFORMED_COLUMN).to_numpy(zero_copy_only=False), bool)
           if MALFORMED_COLUMN in names else np.zeros(n, bool))
    cid = table.column("case_id").to_pandas(types_mapper=pd.ArrowDtype)  # no Python objects
    return History(table, n, cid, cost, share, year, hid, hnames, mal)


def _hospital_levels(hospitals: Any) -> dict[str, str]:
    """hospital_id -> level from a hospitals table (DataFrame, Arrow table or file)."""
    if hospitals is None:
        return {}
    if isinstance(hospitals, Mapping):
        return {str(k): str(v) for k, v in hospitals.items()}
    where = "the hospitals table"
    if isinstance(hospitals, pa.Table):
        df = hospitals.to_pandas()
    elif isinstance(hospitals, pd.DataFrame):
        df = hospitals
    else:
        p = Path(hospitals)
        where = str(p)
        df = pd.read_parquet(p) if p.suffix.lower() in (".parquet", ".pq") else \
            pd.read_csv(p, dtype=str, keep_default_na=False)
    missing = [c for c in ("hospital_id", "level") if c not in df.columns]
    if missing:  # name the file and the columns: the user must know which input to fix
        raise MissingColumnError(f"{where}: no column {', '.join(missing)} (a hospitals table "
                                 "needs hospital_id and level)")
    return dict(zip(df["hospital_id"].astype(str), df["level"].astype(str), strict=True))


def _sha256_history(h: History) -> str:
    """sha256 over the columns the catalogue is built from (stable for the same rows)."""
    d = hashlib.sha256()
    for name in ("case_id", "diagnoses", "procedures"):
        if name in h.table.schema.names:  # the values, not the buffers: any chunking hashes alike
            col = h.table.column(name)
            chunks = [c if pa.types.is_large_string(c.type) else c.cast(pa.large_string())
                      for c in col.chunks]
            for c in chunks:  # the text bytes of the chunk's own slice
                offs = np.frombuffer(c.buffers()[1], np.int64)[c.offset:c.offset + len(c) + 1]
                if c.buffers()[2] is not None and len(offs):
                    d.update(memoryview(c.buffers()[2])[int(offs[0]):int(offs[-1])])
            for c in chunks:  # then every value's length (-1: null)
                d.update(np.asarray(pc.fill_null(pc.binary_length(c), -1), np.int64).tobytes())
    for arr in (h.cost_fen, h.year, h.share_fen):
        if arr is not None:
            d.update(np.ascontiguousarray(arr).tobytes())
    return d.hexdigest()


# ---------------------------------------------------------------- keys and folding

def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, uniq = pd.factorize(pd.Series(values, dtype=object), sort=True)
    return codes.astype(np.int64), np.asarray(uniq, dtype=object)


@dataclass
class Assignment:
    """Per usable case: its packet row; and the packets table's key columns."""

    packet: np.ndarray  # int64 per case, index into ``codes``
    codes: np.ndarray  # object
    kind: np.ndarray  # object: core | comprehensive
    dx_key: np.ndarray
    procs: np.ndarray
    n_procs: np.ndarray
    treatment: np.ndarray
    fold: np.ndarray


def assign_packets(dx_ids: np.ndarray, dx_all: np.ndarray, pk: K.ProcKeys, rows: np.ndarray,
                   p: dict) -> Assignment:
    """Give each usable case (``rows`` into the history) exactly one packet: its own key when
    the key has ``core_threshold`` cases, else the comprehensive fold that reaches
    ``comprehensive_min_cases``: category × type, then coarser prefix × type, then
    chapter × type (kept whatever its size, so nothing is left over). ``dx_ids`` index the
    distinct diagnosis keys ``dx_all`` per history row."""
    thr, cmin = int(p["core_threshold"]), int(p["comprehensive_min_cases"])
    dx_id, dx_names = np.asarray(dx_ids)[rows], np.asarray(dx_all, dtype=object)
    sid = pk.set_id[rows]
    tt = pk.treatment[rows].astype(np.int64)
    # the key: (dx, procedure set); conservative cases key by diagnosis alone
    key = dx_id * (int(sid.max()) + 2 if len(sid) else 1) + (sid + 1)
    inv, uk = pd.factorize(key)  # hash-based: no sort over the cases
    cnt = np.bincount(inv, minlength=len(uk))
    first = np.full(len(uk), len(key), dtype=np.int64)
    np.minimum.at(first, inv, np.arange(len(key), dtype=np.int64))
    core_key = cnt >= thr
    core_key &= dx_names[dx_id[first]] != ""  # an empty principal code never makes a packet
    is_core = core_key[inv]
    packet = np.full(len(rows), -1, dtype=np.int64)
    # core packets: one per qualifying key, codes made for those keys only
    ck = np.flatnonzero(core_key)
    codes, kinds, dxk, procs, nprocs, ttype, folds = [], [], [], [], [], [], []
    for r in first[ck]:  # over core keys (thousands), not records
        d = str(dx_names[dx_id[r]])
        pl = pk.codes_of(int(rows[r])) if sid[r] >= 0 else []
        ps = "+".join(pl)
        codes.append(d + ("/" + ps if ps else ""))
        kinds.append("core")
        dxk.append(d)
        procs.append(ps)
        nprocs.append(len(pl))
        ttype.append(int(tt[r]) if pl else 0)
        folds.append("")
    kmap = np.full(len(uk), -1, dtype=np.int64)
    kmap[ck] = np.arange(len(ck))
    packet[is_core] = kmap[inv[is_core]]
    # comprehensive folds
    rest = ~is_core
    dnames = dx_names.astype(str)
    # a key shorter than a fold's prefix skips that fold (so labels of two folds never meet)
    prefixes = {
        "category": np.asarray([s[:3] if len(s) >= 3 else "" for s in dnames], dtype=object),
        "prefix": np.asarray([s[:2] if len(s) >= 2 else "" for s in dnames], dtype=object),
        "chapter": K.chapters(dnames),
    }  # over the distinct keys only
    for fold in ("category", "prefix", "chapter"):
        if not rest.any():
            break
        # labels of the distinct keys, then per case by index (no per-case strings)
        lab_of = prefixes[fold]
        if fold != "chapter":
            lab_of = np.where(dnames == "", "", lab_of).astype(object)
        lid_of, gnames = _factorize(lab_of)
        empty = np.flatnonzero(gnames == "")
        lid = lid_of[dx_id]
        idx = np.flatnonzero(rest & ~np.isin(lid, empty))
        if len(idx) == 0:
            continue
        gid = lid[idx]
        g = gid * 4 + tt[idx]
        ug, ginv, gcnt = np.unique(g, return_inverse=True, return_counts=True)  # non-core only
        keep = gcnt >= cmin if fold != "chapter" else np.ones(len(ug), bool)
        base = len(codes)
        kept = np.flatnonzero(keep)
        for u in ug[kept]:  # over folds, not records
            pre, t = str(gnames[u // 4]), int(u % 4)
            codes.append(f"Z/{pre}/{K.TREATMENT_LETTERS[t]}")
            kinds.append("comprehensive")
            dxk.append(pre)
            procs.append("")
            nprocs.append(0)
            ttype.append(t)
            folds.append(fold)
        gmap = np.full(len(ug), -1, dtype=np.int64)
        gmap[kept] = base + np.arange(len(kept))
        got = gmap[ginv]
        hit = got >= 0
        packet[idx[hit]] = got[hit]
        rest[idx[hit]] = False
    assert not rest.any()  # the chapter fold keeps every group
    codes_a = np.asarray(codes, dtype=object)
    if len(set(codes)) != len(codes):
        dup = pd.Series(codes).loc[pd.Series(codes).duplicated()].iloc[0]
        raise CatalogueError([Problem("<history>", None, "packet",
                                      f"two keys make the packet code {dup!r}")])
    return Assignment(packet, codes_a, np.asarray(kinds, object), np.asarray(dxk, object),
                      np.asarray(procs, object), np.asarray(nprocs, np.int64),
                      np.asarray(ttype, np.int64), np.asarray(folds, object))


# ---------------------------------------------------------------- scores

def weighted_stats(group: np.ndarray, ng: int, cost: np.ndarray, w: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cases, year-weighted mean, weighted CV) per group id, by bincount."""
    n = np.bincount(group, minlength=ng)
    sw = np.bincount(group, weights=w, minlength=ng)
    swc = np.bincount(group, weights=w * cost, minlength=ng)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = swc / sw
        dev = cost - mean[group]
        var = np.bincount(group, weights=w * dev * dev, minlength=ng) / sw
        cv = np.sqrt(np.maximum(var, 0.0)) / mean
    return n, mean, cv


def read_base_list(source: Any) -> list[str]:
    """Packet codes of a base-packet list (CSV with a ``packet`` column)."""
    if source is None or source == "none":
        return []
    path = BASE_LIST if source == "demo" else Path(source)
    file = str(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as e:
        raise CatalogueError([Problem(file, None, None, f"cannot read ({e})")]) from e
    if "packet" not in df.columns:
        raise CatalogueError([Problem(file, 1, None, "needs a packet column")])
    problems = []
    for i, c in enumerate(df["packet"].str.strip()):
        if not c or "/" in c:
            problems.append(Problem(file, i + 2, "packet",
                                    f"{c!r}: a base packet is a conservative packet (a "
                                    "diagnosis key, no '/')"))
    if problems:
        raise CatalogueError(problems)
    return df["packet"].str.strip().tolist()


def _fit_aux(h: History, usable: np.ndarray, packet: np.ndarray, cost: np.ndarray,
             w: np.ndarray, keep: np.ndarray, codes: np.ndarray, p: dict,
             scheme: Any) -> tuple[pd.DataFrame | None, str]:
    """Auxiliary coefficients by :mod:`drgsim.dip.aux` (``case_classes`` then ``fit_aux``)
    on the usable cases, trimmed cases left out (weight 0); None when that module is absent."""
    try:
        from drgsim.dip.aux import case_classes, fit_aux
    except ImportError:
        return None, ("no auxiliary coefficients: drgsim.dip.aux is not installed in this "
                      "build (aux.csv is written empty; every case's coefficient is 1)")
    from drgsim.records import fields_from_table

    fields = fields_from_table(h.table.filter(pa.array(usable)))
    classes = case_classes(fields, scheme, policy={"dip": {"aux": p["aux"]}})
    aux = fit_aux(packet, cost, np.where(keep, w, 0.0), classes, codes, params=p["aux"])
    return aux, ("auxiliary coefficients fitted by drgsim.dip.aux on the trimmed, "
                 "year-weighted cases")


def build(history: Any, policy: Any = None, scheme: Any = "chs_drg_11", hospitals: Any = None,
          columns: Mapping[str, str] | None = None, *, year: int | None = None,
          base_packets: Any = None, treatment_table: str | os.PathLike[str] | None = None,
          ) -> tuple[Catalogue, pd.DataFrame]:
    """Build a DIP catalogue from ``history`` (path, DataFrame or Arrow table of discharges).

    Returns the catalogue and, per history row in order, ``case_id``, ``packet``, ``kind``
    (core | comprehensive | base | "" when excluded), ``year``, ``status`` (ok, or why the
    row built nothing: the record check's ``check_failed`` with ``reason``, a bad cost, date
    or a year outside the weighted years). ``year``: the year the catalogue is for; the
    history years are the ``len(year_weights)`` years before it (default: the year after the
    latest in ``history``, as ``drgsim calibrate``).
    """
    # every table and parameter file is read and validated before the history (no work
    # is done on a history that a malformed table would stop later)
    rules = K.read_treatment_rules(treatment_table)
    if isinstance(policy, (str, os.PathLike)):
        from drgsim.policy import load_policy

        policy = load_policy(policy)
    dated = policy is not None and not isinstance(policy, Mapping)  # a Policy: at the year
    blist = None
    if base_packets is not None or not dated:
        src = base_packets if base_packets is not None else resolve_params(policy)["base_packets"]
        blist = read_base_list(src)
    h = read_history(history, columns)
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1)  # sha256 releases the GIL: the history's hash runs beside
    digest = pool.submit(_sha256_history, h)  # the build
    try:
        return _build(h, digest, policy, scheme, hospitals, year, base_packets, rules, blist)
    finally:
        pool.shutdown(wait=True)


def _build(h: History, digest: Any, policy: Any, scheme: Any, hospitals: Any,
           year: int | None, base_packets: Any, rules: K.TreatmentRules,
           blist: list[str] | None) -> tuple[Catalogue, pd.DataFrame]:
    years_all = np.unique(h.year[h.year >= 0])
    if year is None:
        year = int(years_all.max()) + 1 if len(years_all) else None
    p = resolve_params(policy, year)
    if base_packets is not None:
        p["base_packets"] = base_packets
    info = BuildInfo(rows=h.n)

    # record checks first (scheme README 4.2, as the DRG path), then money and dates
    from drgsim.records import fields_from_table

    fields = fields_from_table(h.table)
    # the grouper's own record checks (the reason = the field that fails); a diagnoses field
    # counts as many codes as the grouper reads in it (none only when empty)
    n_dx = np.asarray(pc.binary_length(fields.diagnoses).fill_null(0), dtype=np.int64)
    ints = fields.ints
    reason = check_reasons(n_dx, ints["sex"], ints["age_years"], ints["age_days"],
                           ints["birth_weight_g"])
    status = np.zeros(h.n, dtype=np.int8)

    def flag(mask: np.ndarray, name: str) -> None:
        status[(status == 0) & mask] = BUILD_STATUSES.index(name)

    flag(h.malformed, "malformed_row")
    flag(reason > 0, "check_failed")
    flag(np.isnan(h.cost_fen), "missing_cost")
    flag(h.cost_fen < 0, "negative_cost")
    flag(h.year < 0, "bad_date")
    yw_all = [float(x) for x in p["year_weights"]]
    before = years_all[years_all < year] if year is not None else years_all
    years = [int(y) for y in before[-len(yw_all):]]
    yw = yw_all[-len(years):] if years else []
    flag(~np.isin(h.year, years), "outside_years")
    usable = status == 0
    if not usable.any():
        raise CatalogueError([Problem("<history>", None, None,
                                      "no usable case (every row failed a check or has no "
                                      "cost/date)")])
    tot = sum(yw)
    yw = [w / tot for w in yw]

    # keys
    dx_ids, dx_all = K.dx_key_ids(fields.diagnoses, p["dx_level"], principal=True)
    rows = np.flatnonzero(usable)
    cost_all = np.where(usable, h.cost_fen, 0.0)
    pk = K.proc_keys(fields.procedures, p["version"], scheme, rules, cost=cost_all,
                     usable=usable, related_cost_share=float(p["related_cost_share"]))
    info.unmatched_proc_codes = pk.unmatched_codes
    a = assign_packets(dx_ids, dx_all, pk, rows, p)
    cost = h.cost_fen[rows]
    yr = h.year[rows]
    w = year_case_weights(yr, years, yw)
    keep = trim_mask(a.packet, cost, _trim_spec(p["trim"]))
    ng = len(a.codes)
    emptied = np.bincount(a.packet[keep], minlength=ng) == 0
    if emptied.any():  # a trim that removes a whole packet (a narrow rule): keep it whole
        keep |= emptied[a.packet]
        info.notes.append(f"{int(emptied.sum())} packet(s) lost every case to the trim rule "
                          "and are scored on all their cases")
    n_cases = np.bincount(a.packet, minlength=ng)
    _, mean, cv = weighted_stats(a.packet[keep], ng, cost[keep], w[keep])
    n_trim = np.bincount(a.packet[keep], minlength=ng)
    m_all = float((w[keep] * cost[keep]).sum() / w[keep].sum())
    if not m_all > 0:
        raise CatalogueError([Problem("<history>", None, "total_cost",
                                      "the all-case mean cost is 0: no scores can be made")])
    rw = mean / m_all
    scale = int(p["score_scale"])
    score = np.round(rw * scale, 4)

    # base packets: listed codes that are conservative core packets here
    if blist is None:  # a Policy object: its dip section is known only at the history's year
        blist = read_base_list(p["base_packets"])
    is_base = np.isin(a.codes, blist) & (a.kind == "core") & (a.procs == "")
    info.base_missing = sorted(set(blist) - set(a.codes[is_base].tolist()))
    packets = pd.DataFrame({
        "packet": a.codes, "kind": a.kind, "dx_key": a.dx_key, "procs": a.procs,
        "n_procs": a.n_procs, "treatment_type": a.treatment, "fold": a.fold,
        "base": is_base.astype(np.int64), "n_cases": n_cases.astype(np.int64),
        "n_trimmed": n_trim.astype(np.int64), "mean_cost_fen": mean, "rw": rw,
        "score": score, "cv": cv,
    })

    # level means C per packet × hospital level (none for base packets)
    lv_map = _hospital_levels(hospitals)
    levels = pd.DataFrame(columns=["packet", "level", "n_cases", "mean_cost_fen"])
    if lv_map:
        lv_of = pd.Series(h.hosp_names, dtype=object).map(lv_map).to_numpy(dtype=object)
        lnames = np.asarray(sorted({x for x in lv_of if isinstance(x, str)}), dtype=object)
        lid_of = pd.Index(lnames).get_indexer(lv_of) if len(lv_of) else np.zeros(0, np.int64)
        hr = h.hosp_id[rows]
        lid = np.where(hr >= 0, lid_of[np.maximum(hr, 0)] if len(lid_of) else -1, -1)
        known = lid >= 0
        info.cases_unknown_hospital = int((~known).sum())
        if known.any():
            nl = len(lnames)
            g = a.packet * nl + lid
            n_l = np.bincount(g[known], minlength=ng * nl)
            sel = keep & known
            _, m_l, _ = weighted_stats(g[sel], ng * nl, cost[sel], w[sel])
            ok = (n_l >= int(p["level_min_cases"])) & np.isfinite(m_l) & (m_l > 0)
            ok &= np.repeat(~is_base, nl)
            ids = np.flatnonzero(ok)
            levels = pd.DataFrame({"packet": a.codes[ids // nl], "level": lnames[ids % nl],
                                   "n_cases": n_l[ids].astype(np.int64),
                                   "mean_cost_fen": m_l[ids]})
    else:
        info.notes.append("no hospitals table: no level means (every level uses the packet "
                          "mean C)")

    # auxiliary coefficients
    aux, info.aux_note = _fit_aux(h, usable, a.packet, cost, w, keep, a.codes, p, scheme)
    from drgsim.dip.tables import AUX_COLUMNS

    if aux is None:
        aux = pd.DataFrame(columns=list(AUX_COLUMNS))
    elif len(aux):
        aux = aux.sort_values(["packet", "catalogue", "class_id"], kind="stable").reset_index(
            drop=True)

    # budget point value and reimbursement ratio from the same history (DIP.md)
    cscore = score[a.packet]
    yw_arr = np.asarray(yw)
    yi = np.searchsorted(np.asarray(years), yr)
    cost_y = np.bincount(yi, weights=cost, minlength=len(years))
    score_y = np.bincount(yi, weights=cscore, minlength=len(years))
    pv_b = float((yw_arr * cost_y).sum() / 100.0 / (yw_arr * score_y).sum())
    ratio = None
    if h.share_fen is not None:
        fund_y = np.bincount(yi, weights=cost - h.share_fen[rows], minlength=len(years))
        ratio = float((yw_arr * fund_y).sum() / (yw_arr * cost_y).sum())
    else:
        info.notes.append("no patient-share columns in the history: reimbursement_ratio "
                          "unknown (the policy must give point_value.ratio)")

    from drgsim import __version__

    meta = {
        "format": FORMAT, "version": p["version"], "dx_level": p["dx_level"],
        "score_scale": scale, "m_all_fen": m_all, "core_threshold": int(p["core_threshold"]),
        "comprehensive_min_cases": int(p["comprehensive_min_cases"]),
        "aux_min_cases": int(p["aux"]["min_cases"]), "level_min_cases": int(p["level_min_cases"]),
        "years": years, "year_weights": yw, "pv_budget": pv_b, "reimbursement_ratio": ratio,
        "built_from": digest.result(), "drgsim_version": __version__,
    }
    packets = packets.sort_values("packet", kind="stable").reset_index(drop=True)
    levels = levels.sort_values(["packet", "level"], kind="stable").reset_index(drop=True)
    cat = Catalogue(meta, packets, levels, aux)

    # per history row: its packet or why none
    kinds = np.asarray(["", "core", "comprehensive", "base"], dtype=object)
    kind_of_packet = np.where(is_base, 3, np.where(a.kind == "core", 1, 2))
    pcode = np.full(h.n, len(a.codes), dtype=np.int64)  # the last category: "" (no packet)
    pcode[rows] = a.packet
    kcode = np.zeros(h.n, dtype=np.int64)
    kcode[rows] = kind_of_packet[a.packet]
    assigned = pd.DataFrame({
        "case_id": h.case_id,
        "packet": pd.Categorical.from_codes(pcode, categories=pd.Index(
            np.append(a.codes, ""), dtype=object)),
        "kind": pd.Categorical.from_codes(kcode, categories=kinds),
        "year": h.year,
        "status": pd.Categorical.from_codes(status.astype(np.int64),
                                            categories=list(BUILD_STATUSES)),
        "reason": pd.Categorical.from_codes(reason.astype(np.int64),
                                            categories=list(CHECK_FIELDS)),
    })
    info.status_counts = {s: int(c) for s, c in zip(BUILD_STATUSES, np.bincount(
        status, minlength=len(BUILD_STATUSES)), strict=True) if c}
    info.reason_counts = {r: int(c) for r, c in zip(CHECK_FIELDS, np.bincount(
        reason, minlength=len(CHECK_FIELDS)), strict=True) if c and r}
    info.cost_fen = float(cost.sum())
    info.core_cost_fen = float(cost[a.kind[a.packet] == "core"].sum())
    cat.info = info  # type: ignore[attr-defined]
    from drgsim.dip.report import build_report

    cat.report = build_report(cat, info)
    return cat, assigned
