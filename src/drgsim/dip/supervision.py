"""Supervision flags (违规行为监管辅助目录, DIP.md's last section), for DIP and DRG regions.

Per case, computed only when asked and never changing a group, a packet or a payment (the
pattern of :mod:`drgsim.flags`):

- ``readmission``: admitted within ``readmission.days`` of the discharge of the same
  patient's previous case with the same principal-diagnosis key (at the same hospital when
  ``readmission.same_hospital``), gap = admission day - previous discharge day, 0..days;
- ``split``: admitted within ``split.days`` of the same patient's previous discharge from the
  same hospital, whatever the diagnosis (分解住院);
- ``low_cost``: cost < ``low_cost.ratio`` x the group's mean cost (低标准入院), cases discharged
  by a mode in ``low_cost.exclude_discharge_modes`` (transfer, against advice, death) aside;
- ``long_stay``: LOS > ``long_stay.factor`` x the group's mean LOS;
- ``upcoding``: within a principal diagnosis, a group is *higher-scored* when its score (mean
  cost) is above the diagnosis' case-weighted mean score in the region; a hospital whose share
  of higher-scored cases for a diagnosis exceeds the region's share by more than
  ``upcoding.margin`` (with at least ``upcoding.min_cases`` cases of that diagnosis) has its
  higher-scored cases of that diagnosis flagged; the hospital table compares each hospital's
  higher-scored share with what the region's shares give for its own diagnosis mix.

The group is the DRG (``group="drg"``) or the DIP packet (``group="packet"``); its mean cost
and LOS come from ``means`` (weights or a catalogue) or from the cases themselves (groups
with fewer than ``min_group_cases`` ok cases get no cost or LOS flag). Parameters: the
``supervision:`` section of a policy (:func:`params_from_policy`), every one with a default.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from drgsim.errors import MissingColumnError, Problem, ValidationError
from drgsim.policy.schema import SUPERVISION_FLAGS as FLAGS
from drgsim.pricing.cases import ALIASES as _CASE_ALIASES

#: every parameter of the ``supervision:`` policy section (policy.schema.SUPERVISION_SCHEMA),
#: with its default
DEFAULTS: dict[str, Any] = {
    "flags": list(FLAGS),
    "dx_level": "subcategory",  # principal-diagnosis key: subcategory (K80.1) | category (K80)
    "min_group_cases": 5,
    "readmission": {"days": 15, "same_hospital": True},
    "split": {"days": 1},
    # 0.3: the strict end of DIP.md's 0.3-0.7 (0.5 flags a quarter of the demo region's cases)
    "low_cost": {"ratio": 0.3, "exclude_discharge_modes": [2, 4, 5]},
    "long_stay": {"factor": 2.0},
    "upcoding": {"margin": 0.15, "min_cases": 20},
}

#: input columns by their canonical name -> names accepted for it (the pricing's names)
ALIASES: dict[str, tuple[str, ...]] = {
    k: _CASE_ALIASES.get(k, (k,))
    for k in ("case_id", "patient_id", "hospital_id", "admit_date", "discharge_date",
              "total_cost", "los_days", "diagnoses", "discharge_mode")
}

#: columns each flag reads (besides the group, its status and the hospital)
NEEDS: dict[str, tuple[str, ...]] = {
    "readmission": ("patient_id", "admit_date", "discharge_date", "diagnoses"),
    "split": ("patient_id", "admit_date", "discharge_date"),
    "low_cost": ("total_cost",),
    "long_stay": ("los_days",),
    "upcoding": ("diagnoses",),
}

_TOL = 1e-9  # shares are compared to the margin to this tolerance (0.6 - 0.3 is 0.2999...)


class SupervisionError(ValidationError):
    """Supervision parameters are malformed (unknown key, wrong type, out of range)."""

    kind = "supervision parameters"


# ---- parameters ----------------------------------------------------------------------------
def _merge(base: dict, over: Mapping, path: str, problems: list[Problem], src: str) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        key = f"{path}.{k}" if path else str(k)
        if k not in base:
            problems.append(Problem(src, None, f"supervision.{key}",
                                    f"unknown key (expected one of {', '.join(base)})"))
        elif isinstance(base[k], dict):
            if isinstance(v, Mapping):
                out[k] = _merge(base[k], v, key, problems, src)
            else:
                problems.append(Problem(src, None, f"supervision.{key}", "expected a mapping"))
        else:
            out[k] = v
    return out


def _check(p: dict, problems: list[Problem], src: str) -> None:
    def bad(key: str, msg: str) -> None:
        problems.append(Problem(src, None, f"supervision.{key}", msg))

    def whole(key: str, v: Any, lo: int) -> None:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or v < lo:
            bad(key, f"expected a whole number >= {lo}, got {v!r}")

    def number(key: str, v: Any, lo: float, hi: float | None, lo_open: bool) -> None:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
        ok = ok and (v > lo if lo_open else v >= lo) and (hi is None or v <= hi)
        if not ok:
            rng = f"{'(' if lo_open else '['}{lo}, {hi if hi is not None else 'inf'}" + \
                  ("]" if hi is not None else ")")
            bad(key, f"expected a number in {rng}, got {v!r}")

    fl = p["flags"]
    if not isinstance(fl, (list, tuple)) or any(f not in FLAGS for f in fl):
        bad("flags", f"expected a list of {', '.join(FLAGS)}, got {fl!r}")
    if p["dx_level"] not in ("subcategory", "category"):
        bad("dx_level", f"expected subcategory or category, got {p['dx_level']!r}")
    whole("min_group_cases", p["min_group_cases"], 1)
    whole("readmission.days", p["readmission"]["days"], 0)
    if not isinstance(p["readmission"]["same_hospital"], bool):
        bad("readmission.same_hospital", f"expected true or false, got "
                                         f"{p['readmission']['same_hospital']!r}")
    whole("split.days", p["split"]["days"], 0)
    number("low_cost.ratio", p["low_cost"]["ratio"], 0.0, 1.0, True)
    modes = p["low_cost"]["exclude_discharge_modes"]
    if not isinstance(modes, (list, tuple)) or any(
            isinstance(m, bool) or not isinstance(m, (int, float)) or m != int(m) for m in modes):
        bad("low_cost.exclude_discharge_modes", f"expected a list of mode codes, got {modes!r}")
    number("long_stay.factor", p["long_stay"]["factor"], 0.0, None, True)
    number("upcoding.margin", p["upcoding"]["margin"], 0.0, 1.0, False)
    whole("upcoding.min_cases", p["upcoding"]["min_cases"], 1)


def resolve_params(params: Mapping[str, Any] | None = None, source: str = "<params>") -> dict:
    """The defaults overlaid with ``params`` (a ``supervision:`` mapping), checked: an unknown
    key or a bad value raises :class:`SupervisionError` naming it."""
    problems: list[Problem] = []
    p = _merge(DEFAULTS, params or {}, "", problems, source)
    if not problems:
        _check(p, problems, source)
    if problems:
        raise SupervisionError(problems)
    p["low_cost"]["exclude_discharge_modes"] = [int(m) for m in
                                                p["low_cost"]["exclude_discharge_modes"]]
    return p


def params_from_policy(policy: Any = None, date: Any = None) -> dict:
    """The ``supervision:`` section of a policy (a :class:`~drgsim.policy.Policy`, resolved at
    ``date`` or at its latest date, or an already resolved mapping) over the defaults; a
    policy without the section gives the defaults."""
    if policy is None:
        return resolve_params(None)
    if hasattr(policy, "at") and hasattr(policy, "params"):
        if date is None:
            days = [d for vs in policy.params.values() if isinstance(vs, list) for d, _ in vs]
            date = max(days) if days else "1900-01-01"
        tree = policy.at(date)
        src = getattr(policy, "source", "<policy>")
    else:
        tree, src = policy, "<policy>"
    return resolve_params(tree.get("supervision") or {}, str(src))


# ---- inputs --------------------------------------------------------------------------------
def _col(df: pd.DataFrame, name: str, columns: Mapping[str, str] | None) -> str | None:
    if columns and name in columns:
        c = columns[name]
        if c not in df.columns:
            raise MissingColumnError(f"column {c!r} (given for {name}) is not in the cases")
        return c
    for a in ALIASES.get(name, (name,)):
        if a in df.columns:
            return a
    return None


def required_columns(params: Mapping[str, Any] | None = None) -> dict[str, list[str]]:
    """Canonical input columns the enabled flags read -> the flags that read them."""
    p = resolve_params(params)
    out: dict[str, list[str]] = {"hospital_id": ["every flag"]}
    for f in p["flags"]:
        for c in NEEDS[f]:
            out.setdefault(c, []).append(f)
        if f == "low_cost" and p["low_cost"]["exclude_discharge_modes"]:
            out.setdefault("discharge_mode", []).append(f)
    return out


def dx_key(diagnoses: pd.Series | pa.Array, level: str = "subcategory") -> np.ndarray:
    """Principal-diagnosis key of each case: the first ``|`` piece, its part before ``+``,
    trimmed, first 5 characters (subcategory, ``K80.100x001`` -> ``K80.1``) or 3 (category)."""
    arr = diagnoses if isinstance(diagnoses, (pa.Array, pa.ChunkedArray)) else pa.array(
        pd.Series(diagnoses).astype("string").fillna(""), pa.string())
    first = pc.list_element(pc.split_pattern(pc.fill_null(arr, ""), "|"), 0)
    main = pc.utf8_trim_whitespace(pc.list_element(pc.split_pattern(first, "+"), 0))
    key = pc.utf8_slice_codeunits(main, 0, 5 if level == "subcategory" else 3)
    return np.asarray(key.to_numpy(zero_copy_only=False), dtype=object)


def _num(s: pd.Series) -> np.ndarray:
    """Numbers (ints, floats, Decimals or text) as float64, NaN where not a number."""
    if s.dtype.kind in "iuf":
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    try:  # Decimal objects (parquet money) convert in Arrow, without a Python loop
        return pc.cast(pa.array(s, from_pandas=True), pa.float64()).to_numpy(
            zero_copy_only=False).astype(np.float64)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return pd.to_numeric(s.astype("object"), errors="coerce").to_numpy(dtype=np.float64)


def _days(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    d = pd.to_datetime(s, errors="coerce")
    ok = ~d.isna().to_numpy()
    days = np.zeros(len(s), np.int64)
    days[ok] = d[ok].to_numpy().astype("datetime64[D]").astype(np.int64)
    return days, ok


def _codes(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Factor codes of ids and the ids they stand for; missing or blank ids get -1."""
    v = s.astype("string").str.strip()
    codes, uniq = pd.factorize(v.where(v != ""))
    return codes.astype(np.int64), np.asarray(uniq, dtype=object)


def _tie(case_ids: np.ndarray) -> np.ndarray:
    """Rank of each case id (numerically when every id is a number), the tie-break order."""
    arr = pa.array(case_ids, pa.string())
    try:
        arr = pc.cast(arr, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    order = np.asarray(pc.sort_indices(arr), dtype=np.int64)
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return rank


def link_previous(patient: np.ndarray, hosp: np.ndarray, grp: np.ndarray, admit: np.ndarray,
                  eligible: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """Row of each case's previous case of the same patient, hospital and group (by admit
    day, then ``tie``), -1 none: the linking rule of
    :func:`drgsim.pricing.core.link_readmissions`, vectorised, returning the linked row."""
    n = len(patient)
    prev = np.full(n, -1, np.int64)
    rows = np.flatnonzero(eligible & (patient >= 0))
    if len(rows) < 2:
        return prev
    o = rows[np.lexsort((tie[rows], admit[rows], grp[rows], hosp[rows], patient[rows]))]
    same = ((patient[o[1:]] == patient[o[:-1]]) & (hosp[o[1:]] == hosp[o[:-1]])
            & (grp[o[1:]] == grp[o[:-1]]))
    prev[o[1:][same]] = o[:-1][same]
    return prev


# ---- the flags -------------------------------------------------------------------------------
def _group_means(grp: np.ndarray, ok: np.ndarray, cost: np.ndarray | None,
                 los: np.ndarray | None, names: np.ndarray, means: pd.DataFrame | None,
                 min_cases: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean cost and LOS per group code (NaN: unknown): ``means`` first, else the ok cases."""
    k = len(names)
    m_cost = np.full(k, np.nan)
    m_los = np.full(k, np.nan)
    g = grp[ok]
    n_g = np.bincount(g, minlength=k)
    enough = n_g >= min_cases
    for vals, out in ((cost, m_cost), (los, m_los)):
        if vals is None:
            continue
        v = vals[ok]
        fin = np.isfinite(v)
        s = np.bincount(g[fin], weights=v[fin], minlength=k)
        c = np.bincount(g[fin], minlength=k)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:] = np.where(enough & (c > 0), s / np.maximum(c, 1), np.nan)
    if means is not None and len(means):
        key = "group" if "group" in means else "key" if "key" in means else means.columns[0]
        table = means.drop_duplicates(key).set_index(means[key].astype(str)).reindex(
            pd.Index(names.astype(str)))
        for col, out in (("mean_cost", m_cost), ("mean_los", m_los)):
            if col in table:
                given = pd.to_numeric(table[col], errors="coerce").to_numpy(np.float64)
                out[:] = np.where(np.isfinite(given), given, out)
    return m_cost, m_los


def means_from_table(table: pd.DataFrame, key: str | None = None) -> pd.DataFrame:
    """Group means from a weights table (``key``/``drg`` rows at level drg, ``mean_cost_fen``,
    ``mean_los``) or a DIP catalogue's packets (``packet``, ``mean_cost_fen``): the ``means``
    argument of :func:`flags`, in yuan and days."""
    t = table
    if "level" in t:
        t = t[t["level"].astype(str) == "drg"]
    key = key or next(c for c in ("packet", "key", "drg", "group") if c in t)
    out = pd.DataFrame({"group": t[key].astype(str).to_numpy()})
    if "mean_cost_fen" in t:
        out["mean_cost"] = pd.to_numeric(t["mean_cost_fen"], errors="coerce").to_numpy() / 100
    elif "mean_cost" in t:
        out["mean_cost"] = pd.to_numeric(t["mean_cost"], errors="coerce").to_numpy()
    if "mean_los" in t:
        out["mean_los"] = pd.to_numeric(t["mean_los"], errors="coerce").to_numpy()
    return out


def _fmt(x: np.ndarray, spec: str) -> np.ndarray:
    return np.char.mod(spec, x).astype(object)


def _s(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(str).astype(object)


def flags(df: pd.DataFrame | pa.Table, group: str = "drg",
          params: Mapping[str, Any] | Any | None = None, *, means: pd.DataFrame | None = None,
          columns: Mapping[str, str] | None = None,
          status: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Supervision flags of grouped cases: (per case, per hospital); see the module docstring.

    ``params``: a ``supervision:`` mapping or a policy (its section, see
    :func:`params_from_policy`), over the defaults.
    ``group``: the group column (``drg``, ``adrg`` or DIP's ``packet``); ``status``: its
    status column (default ``dip_status`` for packets when present, else ``status``); only
    ``ok`` cases get cost, LOS and upcoding flags. ``means``: mean cost (yuan) and LOS per
    group (:func:`means_from_table`), preferred to the cases' own means. ``columns`` maps a
    canonical name (``hospital_id``, ``patient_id``, ...) to the frame's column. The per-case
    frame has the input's index and one row per input row; nothing in ``df`` is changed.
    """
    p = params_from_policy(params) if hasattr(params, "at") else resolve_params(params)
    if isinstance(df, pa.Table):
        df = df.to_pandas()
    n = len(df)
    on = set(p["flags"])
    if group not in df.columns:
        raise MissingColumnError(f"supervision: no group column {group!r} in the cases")
    st_col = status or ("dip_status" if group == "packet" and "dip_status" in df.columns
                        else "status")
    if st_col not in df.columns:
        raise MissingColumnError(f"supervision: no status column {st_col!r} in the cases")
    col: dict[str, str | None] = {c: _col(df, c, columns) for c in ALIASES}
    need = required_columns(p)
    missing = [f"{c} (for {', '.join(fl)})" for c, fl in need.items() if col[c] is None]
    if missing:
        raise MissingColumnError(
            "supervision: the cases lack column(s) " + "; ".join(missing)
            + " (turn a flag off with supervision.flags, or map the column)")

    grp_raw = df[group].astype("string").fillna("").to_numpy(dtype=object)
    grp, names = pd.factorize(grp_raw)
    names = np.asarray(names, dtype=object)
    ok = ((df[st_col].astype("string").fillna("") == "ok").to_numpy(dtype=bool)
          & (grp_raw != "") & (grp_raw != "0000"))
    hosp_ids = df[col["hospital_id"]].astype("string").fillna("").to_numpy(dtype=object)
    hosp, hosp_names = _codes(df[col["hospital_id"]])
    case_ids = (df[col["case_id"]].astype("string").fillna("").to_numpy(dtype=object)
                if col["case_id"] else np.arange(n).astype(str).astype(object))
    tie = _tie(case_ids) if col["case_id"] else np.arange(n)
    cost = _num(df[col["total_cost"]]) if col["total_cost"] else None
    los = _num(df[col["los_days"]]) if col["los_days"] else None
    dx = (dx_key(df[col["diagnoses"]], p["dx_level"]) if col["diagnoses"]
          else np.full(n, "", dtype=object))

    hit: dict[str, np.ndarray] = {f: np.zeros(n, bool) for f in FLAGS}
    why: dict[str, np.ndarray] = {}

    # readmission and split admission: the same patient's previous discharge
    if on & {"readmission", "split"}:
        pat = _codes(df[col["patient_id"]])[0]
        adm, adm_ok = _days(df[col["admit_date"]])
        dis, dis_ok = _days(df[col["discharge_date"]])
        dated = adm_ok & dis_ok
        if "readmission" in on:
            d = p["readmission"]["days"]
            dxc = pd.factorize(dx)[0].astype(np.int64)
            h = hosp if p["readmission"]["same_hospital"] else np.zeros(n, np.int64)
            prev = link_previous(pat, h, dxc, adm, dated & (dx != "") & (h >= 0), tie)
            gap = adm - dis[np.maximum(prev, 0)]
            m = (prev >= 0) & (gap >= 0) & (gap <= d)
            hit["readmission"] = m
            i = np.flatnonzero(m)
            where = " at the same hospital" if p["readmission"]["same_hospital"] else ""
            why["readmission"] = ("readmission: admitted " + _s(gap[i]) + " d after case "
                                  + case_ids[prev[i]] + " with the same diagnosis " + dx[i]
                                  + where + f" (<= {d} d)")
        if "split" in on:
            d = p["split"]["days"]
            prev = link_previous(pat, hosp, np.zeros(n, np.int64), adm, dated & (hosp >= 0), tie)
            gap = adm - dis[np.maximum(prev, 0)]
            m = (prev >= 0) & (gap >= 0) & (gap <= d)
            hit["split"] = m
            i = np.flatnonzero(m)
            why["split"] = ("split admission: admitted " + _s(gap[i]) + " d after case "
                            + case_ids[prev[i]] + f" left the same hospital (<= {d} d)")

    m_cost, m_los = _group_means(grp, ok, cost, los, names, means, p["min_group_cases"])
    if "low_cost" in on:
        r = p["low_cost"]["ratio"]
        mc = m_cost[grp]
        m = ok & np.isfinite(cost) & np.isfinite(mc) & (cost < r * mc)
        modes = p["low_cost"]["exclude_discharge_modes"]
        if modes:
            mode = _num(df[col["discharge_mode"]])
            m &= ~np.isin(mode, modes)
        hit["low_cost"] = m
        i = np.flatnonzero(m)
        why["low_cost"] = ("low-threshold admission: cost " + _fmt(cost[i], "%.2f") + " < "
                           + f"{r:g} x mean " + _fmt(mc[i], "%.2f") + " of " + grp_raw[i])
    if "long_stay" in on:
        k = p["long_stay"]["factor"]
        ml = m_los[grp]
        m = ok & np.isfinite(los) & np.isfinite(ml) & (los > k * ml)
        hit["long_stay"] = m
        i = np.flatnonzero(m)
        why["long_stay"] = ("over-long stay: LOS " + _fmt(los[i], "%g") + " d > " + f"{k:g} x "
                            + "mean " + _fmt(ml[i], "%.1f") + " d of " + grp_raw[i])

    up_h = None
    if "upcoding" in on:
        hit["upcoding"], why["upcoding"], up_h = _upcoding(
            ok & (dx != "") & (hosp >= 0), dx, m_cost[grp], hosp, p["upcoding"])

    # ---- per case ----------------------------------------------------------------------------
    out = pd.DataFrame(index=df.index)
    if col["case_id"]:
        out["case_id"] = df[col["case_id"]].to_numpy()  # as given (the reasons use text)
    out["hospital_id"] = hosp_ids
    out[group] = grp_raw
    listed = np.full(n, "", dtype=object)
    reasons = np.full(n, "", dtype=object)
    for f in FLAGS:
        out[f"sv_{f}"] = hit[f]
        i = np.flatnonzero(hit[f])
        if len(i):
            sep = np.where(listed[i] == "", "", ",").astype(object)
            listed[i] = listed[i] + sep + f
            sep = np.where(reasons[i] == "", "", "; ").astype(object)
            reasons[i] = reasons[i] + sep + why[f]
    out["supervision"] = listed
    out["supervision_reasons"] = reasons

    # ---- per hospital ------------------------------------------------------------------------
    hdf = pd.DataFrame({"hospital": hosp_ids, "ok": ok, "any": listed != "",
                        **{f: hit[f] for f in FLAGS}})
    by = hdf.groupby("hospital", sort=True)
    table = pd.DataFrame({"cases": by.size(), "ok_cases": by["ok"].sum()})
    for f in FLAGS:
        if f in on:
            table[f] = by[f].sum()
            table[f"{f}_share"] = table[f] / table["cases"]
    table["flagged"] = by["any"].sum()
    if up_h is not None:
        uh = up_h.set_index(pd.Index(hosp_names[up_h.index.to_numpy()].astype(str)))
        table = table.join(uh, how="left")
        for c in ("upcoding_cases_scored", "upcoding_cells"):
            table[c] = table[c].fillna(0).astype(np.int64)
        table["upcoding_hospital"] = table["upcoding_hospital"].astype("boolean").fillna(False)
        table["upcoding_hospital"] = table["upcoding_hospital"].astype(bool)
    table.index.name = "hospital"
    return out, table.reset_index()


def _upcoding(elig: np.ndarray, dx: np.ndarray, score: np.ndarray, hosp: np.ndarray,
              up: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Upcoding cases, their reasons and the per-hospital figures (index: hospital code)."""
    n = len(dx)
    margin, min_cases = float(up["margin"]), int(up["min_cases"])
    e = elig & np.isfinite(score)
    dxc, dx_names = pd.factorize(dx)
    k = len(dx_names)
    d = dxc[e]
    s = score[e]
    n_d = np.bincount(d, minlength=k)
    mean_d = np.bincount(d, weights=s, minlength=k) / np.maximum(n_d, 1)
    high = np.zeros(n, bool)
    high[e] = s > mean_d[d] + _TOL * np.abs(mean_d[d])  # above the diagnosis' mean
    p_d = np.bincount(d, weights=high[e], minlength=k) / np.maximum(n_d, 1)
    cells = pd.DataFrame({"h": hosp[e], "d": d, "high": high[e]}).groupby(["h", "d"])
    c = cells["high"].agg(["size", "sum"])
    hh = c.index.get_level_values("h").to_numpy()
    dd = c.index.get_level_values("d").to_numpy()
    q = c["sum"].to_numpy() / c["size"].to_numpy()
    flagged_cell = (c["size"].to_numpy() >= min_cases) & (q - p_d[dd] > margin + _TOL)
    # the cases: higher-scored ones in a flagged (hospital, diagnosis) cell
    cell = hosp.astype(np.int64) * max(k, 1) + dxc
    cell_codes = hh.astype(np.int64) * max(k, 1) + dd
    m = e & high & np.isin(cell, cell_codes[flagged_cell])
    i = np.flatnonzero(m)
    qi = q[np.searchsorted(cell_codes, cell[i])]  # groupby sorts cells by (h, d)
    reasons = ("upcoding signal: " + _fmt(100 * qi, "%.1f") + "% of this hospital's "
               + dx[i] + " cases are in higher-scored groups vs " + _fmt(100 * p_d[dxc[i]], "%.1f")
               + f"% in the region (margin {100 * margin:g} points)")
    # per hospital: observed higher-scored share against the region's for its own mix
    hs = pd.DataFrame({"h": hh, "n": c["size"].to_numpy(), "high": c["sum"].to_numpy(),
                       "exp": c["size"].to_numpy() * p_d[dd], "cell": flagged_cell})
    agg = hs.groupby("h").agg(n=("n", "sum"), high=("high", "sum"), exp=("exp", "sum"),
                              cells=("cell", "sum"))
    obs = agg["high"] / agg["n"]
    expd = agg["exp"] / agg["n"]
    per_h = pd.DataFrame({
        "upcoding_cases_scored": agg["n"].astype(np.int64),
        "upcoding_high_share": obs,
        "upcoding_region_share": expd,
        "upcoding_cells": agg["cells"].astype(np.int64),
        "upcoding_hospital": (agg["n"] >= min_cases) & (obs - expd > margin + _TOL),
    })
    return m, reasons, per_h
