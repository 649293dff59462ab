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
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from drgsim.dip import keys as K
from drgsim.dip.tables import FORMAT, Catalogue, CatalogueError  # noqa: F401 (re-exported)
from drgsim.errors import MissingColumnError, Problem, ValidationError
from drgsim.grouper.kernels import CHECK_FIELDS

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
    #: the history lacks some of the years the catalogue is built from (also in ``notes``)
    years_note: str = ""
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


def _span(ys: list[int]) -> str:
    """Sorted years in runs: 2018, 2021–2023 (2022, 2024: no run)."""
    runs: list[list[int]] = []
    for y in ys:
        if runs and y == runs[-1][-1] + 1:
            runs[-1].append(y)
        else:
            runs.append([y])
    return ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs) or "none"


def catalogue_years(year: int | None, found: list[int], used: list[int], n: int) -> str | None:
    """The rule for the history years: the catalogue for year Y is built from the n years
    before it (Y-3..Y-1 weighted 1:2:7; ``year`` None: the year after the latest ``found``).
    None when the history has them all; a warning naming the years expected, missing, used
    (the latest n before Y there are) and found when some are missing; refused
    (:class:`~drgsim.errors.RecordsError`) when the history has none of them, which would
    score a year from history years it does not name."""
    from drgsim.errors import RecordsError

    found = sorted(int(x) for x in found)
    y = year if year is not None else (found[-1] + 1 if found else None)
    if y is None:
        return None
    want = list(range(y - n, y))
    missing = [x for x in want if x not in found]
    if not missing:
        return None
    if len(missing) == len(want):
        hint = (f"choose year {found[-1] + 1} (built from {_span(found[-n:])}) or give"
                if found else "give")
        has = _span(found) if found else "no dated discharge"
        raise RecordsError(
            f"catalogue year {y}: it is built from the {n} years before it ({_span(want)}), "
            f"but the history has {has}: {hint} the history of {_span(want)}")
    return (f"the catalogue for {y} is built from {_span(want)}, but the history lacks "
            f"{_span(missing)}: built from {_span(used)} (history has {_span(found)})")


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
    #: what one step derived from these rows and the next may reuse (the single path runs
    #: the scan and the rows step on one History; an engine makes one per partition pass)
    memo: dict = field(default_factory=dict, repr=False, compare=False)


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


def _date_years(history: Any, columns: Mapping[str, str] | None) -> np.ndarray | None:
    """The distinct discharge years of a parquet history (file or folder) from its date
    column alone, so a catalogue year it cannot build is refused before the whole history
    is read; None where that is not cheap (other inputs, no date column: the build reads)."""
    if not isinstance(history, (str, os.PathLike)):
        return None
    p = Path(history)
    if not (p.is_dir() or p.suffix.lower() == ".parquet"):
        return None
    try:
        import pyarrow.dataset as ds

        d = ds.dataset(str(p), format="parquet", partitioning="hive" if p.is_dir() else None)
        name = _col(d.schema.names, "discharge_date", columns)
        if name is None:
            return None
        y = _years_of(d.to_table(columns=[name]).column(0))
    except Exception:  # noqa: BLE001 - unreadable here: read_history reads and names it
        return None
    return np.unique(y[y >= 0])


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
    latest in ``history``, as ``drgsim calibrate``). A history lacking some of those years
    is said in the build notes (``cat.info.years_note``, ``cat.report``); one lacking all
    of them is refused (:func:`catalogue_years`).
    """
    from drgsim.dip.steps import plan_of, read_inputs

    # every table and parameter file is read and validated before the history (no work
    # is done on a history that a malformed table would stop later)
    st = read_inputs(policy, scheme, hospitals, columns, year=year, base_packets=base_packets,
                     treatment_table=treatment_table)
    early = _date_years(history, columns) if year is not None else None
    if early is not None:  # a year the history has none of is refused before reading it
        plan_of(st, [early])
    h = read_history(history, columns)
    return _build(h, st)


def _build(h: History, st: dict[str, Any]) -> tuple[Catalogue, pd.DataFrame]:
    """The build's steps (:mod:`drgsim.dip.steps`) on one history: the very functions a
    distributed engine runs per partition and on the driver, here on one part."""
    from drgsim.dip import steps as S

    plan = S.plan_of(st, [S.history_years(h)])
    plan, unmatched = S.reduce_scans(plan, [S.scan_sums(h, plan)])
    rows = S.case_rows(h, plan)
    has_share = h.share_fen is not None
    red = S.combine_reductions([S.reduce_rows(rows)], has_share)
    red.unmatched = unmatched
    plan, kmap, table = S.decide_packets(plan, red)
    arows = S.assign_rows(rows, kmap)
    cat = S.assemble(plan, table, red, [S.packet_statistics(arows, plan)], has_share,
                     S.AUX_NOTE)
    # per history row: its packet or why none
    codes = cat.packets["packet"].to_numpy(object)
    usable = rows["status"].to_numpy() == 0
    kinds = np.asarray(["", "core", "comprehensive", "base"], dtype=object)
    kind_of_packet = np.where(cat.packets["base"].to_numpy() == 1, 3,
                              np.where(cat.packets["kind"].to_numpy() == "core", 1, 2))
    at = arows["packet"].to_numpy(np.int64)  # index into the packets sorted by code
    pcode = np.full(h.n, len(codes), dtype=np.int64)  # the last category: "" (no packet)
    pcode[usable] = at
    kcode = np.zeros(h.n, dtype=np.int64)
    kcode[usable] = kind_of_packet[at]
    assigned = pd.DataFrame({
        "case_id": h.case_id,
        "packet": pd.Categorical.from_codes(pcode, categories=pd.Index(
            np.append(codes, ""), dtype=object)),
        "kind": pd.Categorical.from_codes(kcode, categories=kinds),
        "year": h.year,
        "status": pd.Categorical.from_codes(rows["status"].to_numpy(np.int64),
                                            categories=list(BUILD_STATUSES)),
        "reason": pd.Categorical.from_codes(rows["reason"].to_numpy(np.int64),
                                            categories=list(CHECK_FIELDS)),
    })
    return cat, assigned
