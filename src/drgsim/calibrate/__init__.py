"""Weights from history: RW, base points, reference mean costs, per-diem rates, fallbacks.

History years are inflated to the simulated year, trimmed per group, weighted by year
(e.g. 1:2:7, each year counting by its weight regardless of its volume), and every DRG
the scheme can emit gets a row: its own when it has ``min_cases``, else its ADRG's pooled
one, then its MDC's, then the all-case one (the policy's ``fallback`` order).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from drgsim.errors import Problem, ValidationError
from drgsim.pricing.cases import prepare_cases
from drgsim.pricing.money import yuan_to_fen


class WeightsError(ValidationError):
    """A weights table (published or calibrated) is malformed."""

    kind = "weights table"


WEIGHT_COLUMNS = [
    "key",
    "level",
    "source",
    "adrg",
    "mdc",
    "n",
    "mean_cost_fen",
    "cv",
    "rw",
    "points",
    "mean_los",
    "per_diem_rate_fen",
    "per_diem_points",
    "per_diem_case_rate_fen",
    "m_all_fen",
]
PER_DIEM_LEVEL = "per_diem"  # rows of per-diem categories: key = MDC label, ADRG or LONG_STAY
LONG_STAY = "long_stay"
PER_DIEM_RATES = ("per_diem_rate_fen", "per_diem_case_rate_fen")


def scheme_drgs(scheme: str | os.PathLike[str] = "chs_drg_11") -> pd.DataFrame:
    """Every DRG of a scheme with its ADRG and MDC label (from drg.csv, adrg.csv, mdc.csv)."""
    from drgsim.scheme import resolve_scheme_dir

    d = Path(resolve_scheme_dir(scheme))
    drg = pd.read_csv(d / "drg.csv", dtype=str, usecols=["drg", "adrg"])
    adrg = pd.read_csv(d / "adrg.csv", dtype=str, usecols=["adrg", "mdc"]).drop_duplicates("adrg")
    mdc = pd.read_csv(d / "mdc.csv", dtype=str, usecols=["mdc", "label"])
    out = drg.merge(adrg, on="adrg", how="left").merge(mdc, on="mdc", how="left")
    # an ADRG whose DRGs all carry conditions emits its own code as the DRG (README 4.3)
    extra = adrg.merge(mdc, on="mdc", how="left").assign(drg=lambda x: x["adrg"])
    out = pd.concat([out, extra[~extra["drg"].isin(out["drg"])]], ignore_index=True)
    return out[["drg", "adrg", "label"]].rename(columns={"label": "mdc"})


def per_diem_category(
    adrg: np.ndarray, mdc: np.ndarray, los: np.ndarray, pdm: dict
) -> np.ndarray:
    """Per-diem category of each case (object array; '' = not per-diem eligible): its ADRG
    when listed, else its MDC when listed, else ``long_stay`` when LOS >= ``min_los``."""
    out = np.full(len(adrg), "", dtype=object)
    long = (los >= pdm["min_los"]) if pdm["min_los"] is not None else np.zeros(len(los), bool)
    out[long] = LONG_STAY
    in_mdc = np.isin(mdc, list(pdm["mdcs"]))
    out[in_mdc] = mdc[in_mdc]
    in_adrg = np.isin(adrg, list(pdm["adrgs"]))
    out[in_adrg] = adrg[in_adrg]
    return out


def trim_mask(group: np.ndarray, cost: np.ndarray, tp: dict) -> np.ndarray:
    """Keep cases inside each group's percentile range (or mean ± k SD), for any key.

    ``group``: one key per case (integer ids, or labels factorised once here); ``tp``:
    ``{"method": "percentile"|"sd"|"none", "lower", "upper", "sd"}`` as the policy's
    ``calibration.trimming``. Vectorised (sort and bincount, no per-group loop), with the
    same arithmetic as pandas: linear-interpolated quantiles, SD with ddof=1 (0 for one case).
    """
    n = len(cost)
    if tp["method"] == "none" or n == 0:
        return np.ones(n, dtype=bool)
    g = np.asarray(group)
    if g.dtype.kind not in "iu":
        g = pd.factorize(g)[0]
    g = g.astype(np.int64, copy=False)
    c = np.asarray(cost, dtype=np.float64)
    ng = int(g.max()) + 1
    cnt = np.bincount(g, minlength=ng)
    if tp["method"] == "percentile":
        order = np.lexsort((c, g))
        v = c[order]
        start = np.zeros(ng, dtype=np.int64)
        np.cumsum(cnt[:-1], out=start[1:])

        def q(p: float) -> np.ndarray:
            pos = (np.maximum(cnt, 1) - 1) * float(p)
            fl = np.floor(pos).astype(np.int64)
            ce = np.minimum(fl + 1, np.maximum(cnt, 1) - 1)
            frac = pos - fl
            lo_v = v[np.minimum(start + fl, n - 1)]
            hi_v = v[np.minimum(start + ce, n - 1)]
            return lo_v + (hi_v - lo_v) * frac

        lo, hi = q(tp["lower"])[g], q(tp["upper"])[g]
    else:
        mu = np.bincount(g, weights=c, minlength=ng) / np.maximum(cnt, 1)
        dev = c - mu[g]
        ss = np.bincount(g, weights=dev * dev, minlength=ng)
        sd = np.where(cnt > 1, np.sqrt(ss / np.maximum(cnt - 1, 1)), 0.0)
        lo, hi = (mu - tp["sd"] * sd)[g], (mu + tp["sd"] * sd)[g]
    return (c >= lo) & (c <= hi)


_trim_mask = trim_mask  # the old private name


def year_case_weights(year: np.ndarray, years: list[int], weights: list[float]) -> np.ndarray:
    """Per-case weight ``w_y / n_y``: each history year counts by its weight (e.g. 1:2:7,
    oldest to newest) regardless of its volume; cases outside ``years`` get 0."""
    yr = np.asarray(year, dtype=np.int64)
    out = np.zeros(len(yr), dtype=np.float64)
    for y, wy in zip(years, weights, strict=True):  # a loop over years, not records
        m = yr == y
        k = int(m.sum())
        if k:
            out[m] = float(wy) / k
    return out


# ------------------------------------------------------------------ the split calibration
# calibrate() is four steps, each usable on its own so a distributed engine runs the same
# code (drgsim.distributed.calibrate): (a) calibration_rows, per row on any partition;
# (b) year_counts, integer partial counts reduced by addition; (c) key_statistics, per-DRG
# partial sums on the rows of whole DRGs (trimming is per DRG, and every pooled level is a
# sum over trimmed DRG rows, so a shuffle by DRG keeps what a DRG and its fallbacks need);
# (d) assemble, the driver's weights table from those sums (O(keys), never rows).
# Float sums run in one canonical order both paths share: rows sorted by
# (drg, adrg, mdc, year, cost, LOS) inside a DRG, summed sequentially (np.bincount), then
# units summed in sorted key order; so the table is bit for bit the same however the rows
# were partitioned or ordered.

ROW_COLUMNS = ["drg", "adrg", "mdc", "year", "cost_fen", "los"]
UNIT_KEYS = ["drg", "adrg", "mdc", "pdcat"]
#: trimmed-case sums per unit (the DRG, ADRG, MDC and all-case statistics)
TRIM_SUMS = ["sw", "swc", "swcc", "swl", "swln", "swd", "swdn", "swdc", "swdd", "sse"]
#: per-diem sums per unit (eligible, plausible cases, not cost-trimmed)
PD_SUMS = ["psw", "pswc", "pswd", "pswr"]
UNIT_COLUMNS = [*UNIT_KEYS, "n", *TRIM_SUMS, "pn", *PD_SUMS, "pending", "part"]


@dataclass(frozen=True)
class CalSpec:
    """What calibration reads from the policy at ``year`` (small; shipped to partitions)."""

    year: int
    years: tuple[int, ...]
    year_weights: tuple[float, ...]
    inflation: float
    trimming: dict
    max_los: float | None
    max_cost_ratio: float | None
    per_diem: dict
    m_all_given: float | None  # fen, from calibration.all_case_mean_yuan
    min_cases: int
    fallback: tuple[str, ...]
    scale: float


def calibration_spec(pv: dict, year: int) -> CalSpec:
    """The calibration parameters of policy ``pv`` for weights of ``year``."""
    cp = pv["calibration"]
    hy = cp["history_years"]
    yw = list(cp["year_weights"])[-hy:]
    yw = [1.0] * (hy - len(yw)) + yw
    m_given = None
    if cp["all_case_mean_yuan"] is not None:
        m_given = float(yuan_to_fen(np.array([cp["all_case_mean_yuan"]]))[0][0])
    return CalSpec(
        year=int(year),
        years=tuple(range(year - hy, year)),
        year_weights=tuple(float(x) for x in yw),
        inflation=float(cp["inflation"]),
        trimming=dict(cp["trimming"]),
        max_los=pv["plausibility"]["max_los_days"],
        max_cost_ratio=pv["plausibility"]["max_cost_ratio"],
        per_diem=dict(pv["per_diem"]),
        m_all_given=m_given,
        min_cases=int(cp["min_cases"]),
        fallback=tuple(cp["fallback"]),
        scale=float(pv["points"]["scale"]),
    )


def empty_rows() -> pd.DataFrame:
    """A zero-row frame of :func:`calibration_rows`' columns and types."""
    return pd.DataFrame(
        {
            "drg": pd.Series([], dtype=object),
            "adrg": pd.Series([], dtype=object),
            "mdc": pd.Series([], dtype=object),
            "year": np.zeros(0, np.int64),
            "cost_fen": np.zeros(0, np.int64),
            "los": np.zeros(0, np.float64),
        }
    )


def calibration_rows(
    history: pd.DataFrame, spec: CalSpec, columns: dict[str, str] | None = None
) -> pd.DataFrame:
    """(a) The usable cases of any part of a history (grouped ok, payable, in the history
    years, cost >= 0) as DRG, ADRG (the DRG's first three characters when empty), MDC,
    year, cost in fen and LOS (NaN when absurd): row-local, so any partition can do it."""
    if not len(history):
        return empty_rows()
    c = prepare_cases(history, columns=columns)
    use = (
        (c.status == 0) & (c.pay_status == 0) & np.isin(c.year, spec.years) & (c.cost_fen >= 0)
    )
    # names per distinct code (small arrays), then taken per row: no per-row string work
    dn = np.asarray([str(x) for x in c.drg_names], dtype=object)
    an = np.asarray([str(x) for x in c.adrg_names], dtype=object)
    mn = np.asarray([str(x) for x in c.mdc_names], dtype=object)
    dcode, acode = c.drg[use].astype(np.int64), c.adrg[use].astype(np.int64)
    na = max(len(an), 1)
    pairs, inv = np.unique(dcode * na + acode, return_inverse=True)
    pa_, pd_ = an[pairs % na], dn[pairs // na]
    pa_ = np.asarray([a if a != "" else d[:3] for a, d in zip(pa_, pd_, strict=True)],
                     dtype=object)  # per distinct (DRG, ADRG) pair
    los = c.los[use].astype(np.float64)
    bad = los < 0
    if spec.max_los is not None:
        bad |= los > spec.max_los
    los[bad] = np.nan  # absurd LOS: not counted
    return pd.DataFrame(
        {
            "drg": pd.Series(dn[dcode], dtype=object),
            "adrg": pd.Series(pa_[inv.reshape(-1)], dtype=object),
            "mdc": pd.Series(mn[c.mdc[use]], dtype=object),
            "year": c.year[use].astype(np.int64),
            "cost_fen": c.cost_fen[use].astype(np.int64),
            "los": los,
        }
    )


def year_counts(rows: pd.DataFrame, spec: CalSpec) -> np.ndarray:
    """(b) Usable cases per history year (int64, one per ``spec.years``): partial counts
    of any partitions add up to the whole history's."""
    yi = np.searchsorted(np.asarray(spec.years), rows["year"].to_numpy(np.int64))
    return np.bincount(yi, minlength=len(spec.years)).astype(np.int64)[: len(spec.years)]


def _year_weight_of(year: np.ndarray, spec: CalSpec, counts: np.ndarray) -> np.ndarray:
    """Per-case weight ``w_y / n_y`` from the whole history's year counts."""
    per = np.zeros(len(spec.years), dtype=np.float64)
    for i, (wy, k) in enumerate(zip(spec.year_weights, counts, strict=True)):  # per year
        if k:
            per[i] = float(wy) / int(k)
    return per[np.searchsorted(np.asarray(spec.years), year)]


def _level_sums(ids: np.ndarray, size: int, tab: pd.DataFrame, cols: list[str]) -> dict:
    """Sequential sums of ``tab``'s columns per level id (units in their given order)."""
    return {c: np.bincount(ids, weights=tab[c].to_numpy(np.float64), minlength=size)
            for c in cols}


def key_statistics(
    rows: pd.DataFrame, spec: CalSpec, counts: np.ndarray, m_all: float | None = None
) -> pd.DataFrame:
    """(c) Partial sums per unit (DRG × ADRG × MDC × per-diem category) of the rows of
    whole DRGs (any set of them: one, a shuffle partition's, all).

    Trimming is per DRG; the plausibility of a per-diem case is against its DRG's trimmed
    mean. A DRG whose every case the trim removed has no mean: its cases are checked
    against the all-case mean ``m_all``; without it (``None``, not given by the policy and
    not yet reduced) its per-diem sums are left out and the unit is marked ``pending``
    for a second call once the driver knows ``m_all``.
    """
    if not len(rows):
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in UNIT_COLUMNS})
    # the canonical order: rows by (DRG, ADRG, MDC, year, cost, LOS), names by sorted codes
    dcode, dnames = pd.factorize(rows["drg"].to_numpy(object), sort=True)
    acode, anames = pd.factorize(rows["adrg"].to_numpy(object), sort=True)
    mcode, mnames = pd.factorize(rows["mdc"].to_numpy(object), sort=True)
    yr0 = rows["year"].to_numpy(np.int64)
    cf0 = rows["cost_fen"].to_numpy(np.int64)
    los0 = rows["los"].to_numpy(np.float64)
    o = np.lexsort((los0, cf0, yr0, mcode, acode, dcode))  # NaN LOS last, as argsort
    did = dcode[o].astype(np.int64)
    aid, mid = acode[o].astype(np.int64), mcode[o].astype(np.int64)
    adrg = np.asarray(anames, dtype=object)[aid]
    mdc = np.asarray(mnames, dtype=object)[mid]
    yr = yr0[o]
    cost = cf0[o] * (1.0 + spec.inflation) ** (spec.year - yr)
    los = los0[o]
    w = _year_weight_of(yr, spec, counts)
    ok = ~np.isnan(los) & (np.nan_to_num(los) >= 1)
    pdcat = per_diem_category(adrg, mdc, np.where(ok, los, -1), spec.per_diem)
    pdcat[~ok] = ""
    pcode, pnames = pd.factorize(pdcat, sort=True)
    # units in sorted key order: one integer key per (DRG, ADRG, MDC, category) codes
    na, nm, npc = len(anames), len(mnames), max(len(pnames), 1)
    ukey = ((did * na + aid) * nm + mid) * npc + pcode.astype(np.int64)
    ukeys, uid = np.unique(ukey, return_inverse=True)
    uid = uid.reshape(-1).astype(np.int64)
    nu = len(ukeys)
    nd = len(dnames)
    udid = ukeys // (na * nm * npc)
    units = pd.DataFrame({
        "drg": pd.Series(np.asarray(dnames, dtype=object)[udid], dtype=object),
        "adrg": pd.Series(np.asarray(anames, dtype=object)[ukeys // (nm * npc) % na],
                          dtype=object),
        "mdc": pd.Series(np.asarray(mnames, dtype=object)[ukeys // npc % nm], dtype=object),
        "pdcat": pd.Series(np.asarray(pnames, dtype=object)[ukeys % npc] if len(pnames)
                           else np.full(nu, "", dtype=object), dtype=object),
    })

    keep = trim_mask(did, cost, spec.trimming)
    k = keep.astype(np.float64)
    lv = ~np.isnan(los)
    l0 = np.where(lv, los, 0.0)
    pdv = lv & (l0 > 0)
    kw = k * w
    parts = {
        "sw": kw,
        "swc": kw * cost,
        "swcc": kw * cost * cost,
        "swl": np.where(lv, kw * l0, 0.0),
        "swln": np.where(lv, kw, 0.0),
        "swd": np.where(pdv, kw * cost / np.maximum(l0, 1), 0.0),
        "swdn": np.where(pdv, kw, 0.0),
        "swdc": np.where(pdv, kw * cost, 0.0),
        "swdd": np.where(pdv, kw * l0, 0.0),
    }
    units["n"] = np.bincount(uid[keep], minlength=nu).astype(np.int64)
    for c, v in parts.items():
        units[c] = np.bincount(uid, weights=v, minlength=nu)
    # each DRG's trimmed mean from its units' sums, in unit order (as assemble sums them)
    dn = np.bincount(udid, weights=units["n"].to_numpy(np.float64), minlength=nd)
    dsw = np.bincount(udid, weights=units["sw"].to_numpy(), minlength=nd)
    dswc = np.bincount(udid, weights=units["swc"].to_numpy(), minlength=nd)
    with np.errstate(invalid="ignore", divide="ignore"):
        dmean = np.where(dn > 0, dswc / dsw, np.nan)
    mu_g = dmean[did]
    units["sse"] = np.bincount(uid, weights=np.where(keep, w * (cost - np.nan_to_num(mu_g)) ** 2,
                                                     0.0), minlength=nu)
    # per-diem sums: eligible cases, not cost-trimmed, but without the ones pricing would
    # hold as implausible (cost above max_cost_ratio x the DRG's mean)
    elig = pdcat != ""
    pending = np.zeros(nd, dtype=bool)
    if spec.max_cost_ratio is not None:
        ref = mu_g
        no_mean = np.isnan(ref)
        m = m_all if m_all is not None else spec.m_all_given
        if m is None:
            pending = np.bincount(did[no_mean & elig], minlength=nd) > 0
            ref = np.where(no_mean, np.inf, ref)  # not counted: pending below
        else:
            ref = np.where(no_mean, m, ref)
        elig = elig & (cost <= spec.max_cost_ratio * ref) & ~pending[did]
    e = elig.astype(np.float64)
    units["pn"] = np.bincount(uid[elig], minlength=nu).astype(np.int64)
    safe_los = np.where(elig, los, 1.0)
    for c, v in {"psw": e * w, "pswc": e * w * cost, "pswd": e * w * safe_los,
                 "pswr": e * w * cost / safe_los}.items():
        units[c] = np.bincount(uid, weights=v, minlength=nu)
    units["pending"] = pending[udid]
    # a token per call: the driver checks that each DRG's units come from one call (one
    # partition), as a DRG's trim and means need all its rows
    units["part"] = np.int64(secrets.randbits(62))
    return units[UNIT_COLUMNS]


def pending_drgs(units: pd.DataFrame) -> list[str]:
    """DRGs whose per-diem sums wait for the all-case mean (see :func:`key_statistics`)."""
    return sorted(set(units.loc[units["pending"].astype(bool), "drg"]))


def resolve_pending(units: pd.DataFrame, again: pd.DataFrame) -> pd.DataFrame:
    """Units with the pending DRGs' units replaced by ``again`` (those DRGs' rows through
    :func:`key_statistics` with the all-case mean)."""
    drop = units["drg"].isin(set(again["drg"]))
    return pd.concat([units[~drop], again], ignore_index=True)


def _sorted_units(units: pd.DataFrame) -> pd.DataFrame:
    u = units.sort_values(UNIT_KEYS, kind="stable").reset_index(drop=True)
    if u.duplicated(UNIT_KEYS).any() or (u.groupby("drg")["part"].nunique() > 1).any():
        raise ValueError("calibration units of one DRG from several partitions: a DRG's "
                         "rows must be together (shuffle by DRG)")
    return u


def _level_table(u: pd.DataFrame, key: np.ndarray) -> pd.DataFrame:
    """Weighted n, mean, CV, mean LOS and daily cost per key from trimmed unit sums (units
    in sorted order; keys with no trimmed case left out), indexed by the sorted key."""
    ids, names = pd.factorize(key, sort=True)
    ids = ids.astype(np.int64)
    g = _level_sums(ids, len(names), u, ["n", *TRIM_SUMS])
    g = pd.DataFrame(g, index=pd.Index(names, dtype=object, name="key"))
    g = g[g["n"] > 0]
    mean = g["swc"] / g["sw"]
    var = np.maximum(g["swcc"] / g["sw"] - mean * mean, 0.0)
    return pd.DataFrame(
        {
            "n": g["n"].astype(np.int64),
            "mean_cost_fen": mean,
            "cv": np.sqrt(var) / mean,
            "mean_los": (g["swl"] / g["swln"]).where(g["swln"] > 0),
            # a group's own daily rate (used only when its per-diem category has none):
            # on both bases, like the category rates
            "per_diem_rate_fen": (g["swdc"] / g["swdd"]).where(g["swdd"] > 0),
            "per_diem_case_rate_fen": (g["swd"] / g["swdn"]).where(g["swdn"] > 0),
            "sse": g["sse"],
            "sw": g["sw"],
        }
    )


def all_case_mean(units: pd.DataFrame, spec: CalSpec) -> float:
    """The all-case mean (fen): the policy's, else the year-weighted trimmed mean, summed
    over units in sorted order."""
    if spec.m_all_given is not None:
        return spec.m_all_given
    u = _sorted_units(units)
    z = np.zeros(len(u), np.int64)
    sw = np.bincount(z, weights=u["sw"].to_numpy(np.float64), minlength=1)[0]
    swc = np.bincount(z, weights=u["swc"].to_numpy(np.float64), minlength=1)[0]
    return float(swc / sw)


def _per_diem_table(u: pd.DataFrame) -> pd.DataFrame:
    """Daily rates per per-diem category from the units' per-diem sums (sorted order):
    ``per_diem_rate_fen`` = sum of w x cost / sum of w x bed-days (ratio of sums),
    ``per_diem_case_rate_fen`` = weighted mean of cost / bed-days, and the mean cost."""
    e = u[u["pdcat"] != ""]
    ids, names = pd.factorize(e["pdcat"].to_numpy(object), sort=True)
    g = _level_sums(ids.astype(np.int64), len(names), e, ["pn", *PD_SUMS])
    g = pd.DataFrame(g, index=pd.Index(names, dtype=object, name="key"))
    g = g[g["pn"] > 0]
    return pd.DataFrame(
        {
            "n": g["pn"].astype(np.int64),
            "mean_cost_fen": g["pswc"] / g["psw"],
            "per_diem_rate_fen": g["pswc"] / g["pswd"],
            "per_diem_case_rate_fen": g["pswr"] / g["psw"],
        }
    )


def assemble(
    units: pd.DataFrame,
    spec: CalSpec,
    scheme: str | os.PathLike[str] | None = "chs_drg_11",
) -> pd.DataFrame:
    """(d) The weights table from the units' sums (no pending units left): one row per
    DRG (its own statistics at ``min_cases``, else the policy's fallback order), per ADRG,
    MDC and all-case pool, and per per-diem category. The driver holds O(keys) here."""
    if units["pending"].astype(bool).any():
        raise ValueError("calibration units still pending the all-case mean")
    u = _sorted_units(units)
    m_all = all_case_mean(u, spec)
    scale = spec.scale
    by_drg = _level_table(u, u["drg"].to_numpy(object))
    by_adrg = _level_table(u, u["adrg"].to_numpy(object))
    by_mdc = _level_table(u, u["mdc"].to_numpy(object))
    by_all = _level_table(u, np.full(len(u), "all", dtype=object))
    pd_rates = _per_diem_table(u)

    # reduction in variance explained by the DRGs (weighted, trimmed): within-DRG sums of
    # squares over the total, the total by the between/within decomposition (per-DRG sums)
    mu = float(by_all["mean_cost_fen"].iloc[0]) if len(by_all) else float("nan")
    sse = np.bincount(np.zeros(len(by_drg), np.int64), weights=by_drg["sse"].to_numpy(),
                      minlength=1)[0]
    between = by_drg["sw"].to_numpy() * (by_drg["mean_cost_fen"].to_numpy() - mu) ** 2
    sst = sse + np.bincount(np.zeros(len(by_drg), np.int64), weights=between, minlength=1)[0]
    riv = float(1.0 - sse / sst) if sst > 0 else float("nan")

    # each DRG's ADRG and MDC: the first in sorted order (a DRG seen with several, in dirty
    # data, takes its smallest), then the scheme's DRGs the history never saw
    drg_map = u[["drg", "adrg", "mdc"]].drop_duplicates("drg")
    if scheme is not None:
        sd = scheme_drgs(scheme)
        drg_map = pd.concat([drg_map, sd[~sd["drg"].isin(drg_map["drg"])]], ignore_index=True)
    drg_map = drg_map[(drg_map["drg"] != "0000") & ~drg_map["drg"].str.endswith("QY")]

    mc = spec.min_cases
    pools = {"adrg": by_adrg, "mdc": by_mdc, "all": by_all}
    rows = []
    for r in drg_map.itertuples(index=False):  # a loop over DRGs, not records
        src, st = None, None
        if r.drg in by_drg.index and by_drg.at[r.drg, "n"] >= mc:
            src, st = "drg", by_drg.loc[r.drg]
        else:
            for fb in spec.fallback:
                key = {"adrg": r.adrg, "mdc": r.mdc, "all": "all"}[fb]
                tab = pools[fb]
                if (
                    isinstance(key, str)
                    and key in tab.index
                    and tab.at[key, "n"] >= (mc if fb != "all" else 1)
                ):
                    src, st = fb, tab.loc[key]
                    break
        if st is None:
            continue  # no fallback reaches it: priced rows will say no_weight
        n_own = int(by_drg.at[r.drg, "n"]) if r.drg in by_drg.index else 0
        rows.append(
            {
                "key": r.drg,
                "level": "drg",
                "source": src,
                "adrg": r.adrg,
                "mdc": r.mdc,
                "n": n_own,
                **{k: st[k] for k in ("mean_cost_fen", "cv", "mean_los", *PER_DIEM_RATES)},
            }
        )
    for lvl, tab in (("adrg", by_adrg), ("mdc", by_mdc), ("all", by_all)):
        for key, st in tab.iterrows():
            if lvl != "all" and st["n"] < mc:
                continue
            rows.append(
                {
                    "key": key,
                    "level": lvl,
                    "source": lvl,
                    "adrg": key if lvl == "adrg" else "",
                    "mdc": key if lvl == "mdc" else "",
                    "n": int(st["n"]),
                    **{k: st[k] for k in ("mean_cost_fen", "cv", "mean_los", *PER_DIEM_RATES)},
                }
            )
    for key, st in pd_rates.iterrows():
        rows.append(
            {
                "key": key,
                "level": PER_DIEM_LEVEL,
                "source": PER_DIEM_LEVEL,
                "adrg": "",
                "mdc": "",
                "n": int(st["n"]),
                "mean_cost_fen": st["mean_cost_fen"],
                "cv": np.nan,
                "mean_los": np.nan,
                "per_diem_rate_fen": st["per_diem_rate_fen"],
                "per_diem_case_rate_fen": st["per_diem_case_rate_fen"],
            }
        )
    out = pd.DataFrame(rows)
    out["n"] = out["n"].astype(np.int64)
    out["mean_cost_fen"] = np.floor(out["mean_cost_fen"] + 0.5).astype(np.int64)
    out["rw"] = out["mean_cost_fen"] / m_all
    out["points"] = out["rw"] * scale
    out["per_diem_points"] = out["per_diem_rate_fen"] / m_all * scale
    if "per_diem_case_rate_fen" not in out:
        out["per_diem_case_rate_fen"] = np.nan
    # the all-case mean, unrounded, in a column: the table alone reproduces the payments
    out["m_all_fen"] = float(m_all)
    out = out[WEIGHT_COLUMNS]
    out.attrs.update({"m_all_fen": m_all, "scale": scale, "riv": riv,
                      "years": list(spec.years), "year": spec.year})
    return out


def no_usable_cases(spec: CalSpec) -> WeightsError:
    """The error when no history case is usable for calibration."""
    return WeightsError(
        [Problem("<history>", None, None,
                 f"no usable grouped cases in {spec.years[0]}-{spec.years[-1]}")]
    )


def calibrate(
    history: pd.DataFrame,
    pv: dict,
    year: int,
    scheme: str | os.PathLike[str] | None = "chs_drg_11",
    columns: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Weights for ``year`` from the history years before it (``pv``: policy at ``year``).

    Returns one row per key and level (drg, adrg, mdc, all); ``attrs`` carry ``m_all_fen``,
    ``scale``, ``riv`` (reduction in variance by the DRGs) and the years used. The four
    steps a distributed engine runs the same way (:mod:`drgsim.distributed.calibrate`).
    """
    spec = calibration_spec(pv, year)
    rows = calibration_rows(history, spec, columns)
    counts = year_counts(rows, spec)
    if not counts.sum():
        raise no_usable_cases(spec)
    units = key_statistics(rows, spec, counts)
    pend = pending_drgs(units)
    if pend:
        m_all = all_case_mean(units, spec)
        again = key_statistics(rows[rows["drg"].isin(pend)], spec, counts, m_all)
        units = resolve_pending(units, again)
    return assemble(units, spec, scheme)


def quality_summary(weights: pd.DataFrame) -> dict:
    """Grouping quality: RIV, groups with own weights, median CV, groups above CV 1."""
    d = weights[(weights["level"] == "drg") & (weights["source"] == "drg")]
    return {
        "riv": weights.attrs.get("riv"),
        "m_all_yuan": weights.attrs.get("m_all_fen", np.nan) / 100,
        "drgs": int((weights["level"] == "drg").sum()),
        "drgs_own_weight": len(d),
        "drgs_fallback": int(((weights["level"] == "drg") & (weights["source"] != "drg")).sum()),
        "median_cv": float(d["cv"].median()) if len(d) else float("nan"),
        "groups_cv_above_1": int((d["cv"] > 1).sum()),
    }


def read_weights(
    path: str | os.PathLike[str], pv: dict, m_all_fen: float | None = None
) -> pd.DataFrame:
    """A region's published weights (CSV or parquet: ``drg`` and ``rw`` or ``points``;
    optional ``mean_cost`` in yuan), validated, in the calibrated table's shape.

    A calibrated weights parquet (with ``level``) is returned as it is. Without
    ``mean_cost``, m = RW × m_all (the policy's ``all_case_mean_yuan``, else ``m_all_fen``).
    ADRG rows are the mean RW of their DRGs (the first three characters).
    """
    p = Path(path)
    file = str(p)
    if p.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        tab = pq.read_table(p)
        meta = {k.decode(): v.decode() for k, v in (tab.schema.metadata or {}).items()}
        df = tab.to_pandas()
        if "level" in df.columns and "mean_cost_fen" in df.columns:
            m = _table_m_all(df, meta)
            if m is None:
                raise WeightsError(
                    [
                        Problem(
                            file,
                            None,
                            "m_all_fen",
                            "a weights table without its all-case mean cost (column m_all_fen "
                            "or metadata drgsim.m_all_fen): write it with drgsim calibrate",
                        )
                    ]
                )
            df.attrs["m_all_fen"] = m
            df.attrs["scale"] = float(meta.get("drgsim.scale", pv["points"]["scale"]))
            return df
        first_line = None
    elif p.suffix.lower() in (".xlsx", ".xlsm"):  # a bureau's published workbook
        from drgsim.inputs.excel import read_xlsx

        df = read_xlsx(p)[0].to_pandas().fillna("")
        first_line = None
    else:  # UTF-8 or GBK/GB18030, as the case files
        from drgsim.inputs.encoding import detect_encoding

        df = pd.read_csv(p, dtype=str, keep_default_na=False, encoding=detect_encoding(p))
        first_line = 2
    problems: list[Problem] = []

    def line(i: int) -> int | None:
        return None if first_line is None else first_line + i

    if "drg" not in df.columns or not ({"rw", "points"} & set(df.columns)):
        raise WeightsError([Problem(file, 1, None, "needs a drg column and rw or points")])
    scale = float(pv["points"]["scale"])
    drg = df["drg"].astype(str).str.strip()
    val_col = "rw" if "rw" in df.columns else "points"
    val = pd.to_numeric(df[val_col], errors="coerce")
    for i in np.flatnonzero(val.isna() | (val <= 0)):
        problems.append(
            Problem(file, line(i), val_col, f"{df[val_col].iloc[i]!r} is not a positive number")
        )
    for i in np.flatnonzero(drg.duplicated().to_numpy()):
        problems.append(Problem(file, line(i), "drg", f"{drg.iloc[i]!r} is listed twice"))
    for i in np.flatnonzero((drg == "").to_numpy()):
        problems.append(Problem(file, line(i), "drg", "empty"))
    rw = val if val_col == "rw" else val / scale
    if cp_m := pv["calibration"]["all_case_mean_yuan"]:
        m_all_fen = float(yuan_to_fen(np.array([cp_m]))[0][0])
    mean_cost = None
    if "mean_cost" in df.columns:
        mc_fen, ok = yuan_to_fen(df["mean_cost"])
        for i in np.flatnonzero(~ok | (mc_fen <= 0)):
            problems.append(
                Problem(
                    file,
                    line(i),
                    "mean_cost",
                    f"{df['mean_cost'].iloc[i]!r} is not a positive amount",
                )
            )
        mean_cost = mc_fen.astype(np.float64)
        if m_all_fen is None:
            with np.errstate(divide="ignore", invalid="ignore"):
                m_all_fen = float(np.nanmedian(mean_cost / rw.to_numpy()))
    if m_all_fen is None or not np.isfinite(m_all_fen):
        problems.append(
            Problem(
                file,
                None,
                None,
                "no all-case mean cost: set calibration.all_case_mean_yuan, "
                "give mean_cost, or give history cases",
            )
        )
    if problems:
        raise WeightsError(problems)
    if mean_cost is None:
        mean_cost = np.floor(rw.to_numpy() * m_all_fen + 0.5)
    out = pd.DataFrame(
        {
            "key": drg,
            "level": "drg",
            "source": "published",
            "adrg": drg.str[:3],
            "mdc": "",
            "n": 0,
            "mean_cost_fen": mean_cost.astype(np.int64),
            "cv": np.nan,
            "rw": rw.to_numpy(),
            "points": rw.to_numpy() * scale,
            "mean_los": np.nan,
            "per_diem_rate_fen": np.nan,
            "per_diem_points": np.nan,
            "per_diem_case_rate_fen": np.nan,
            "m_all_fen": float(m_all_fen),
        }
    )
    ad = (
        out.groupby("adrg")
        .agg(rw=("rw", "mean"), mean_cost_fen=("mean_cost_fen", "mean"))
        .reset_index()
    )
    ad = ad.assign(
        key=ad["adrg"],
        level="adrg",
        source="published_adrg_mean",
        mdc="",
        n=0,
        cv=np.nan,
        points=ad["rw"] * scale,
        mean_los=np.nan,
        per_diem_rate_fen=np.nan,
        per_diem_points=np.nan,
        per_diem_case_rate_fen=np.nan,
        m_all_fen=float(m_all_fen),
    )
    ad["mean_cost_fen"] = np.floor(ad["mean_cost_fen"] + 0.5).astype(np.int64)
    out = pd.concat([out, ad[WEIGHT_COLUMNS]], ignore_index=True)[WEIGHT_COLUMNS]
    out.attrs.update({"m_all_fen": float(m_all_fen), "scale": scale})
    return out


def _table_m_all(df: pd.DataFrame, meta: dict[str, str]) -> float | None:
    """The unrounded all-case mean of a drgsim weights table: its m_all_fen column, else
    the parquet metadata (older files); never the rounded 'all' row."""
    if "m_all_fen" in df.columns:
        v = pd.to_numeric(df["m_all_fen"], errors="coerce").dropna()
        if len(v) and np.isfinite(v.iloc[0]) and v.iloc[0] > 0:
            return float(v.iloc[0])
    try:
        m = float(meta.get("drgsim.m_all_fen", "nan"))
    except ValueError:
        return None
    return m if np.isfinite(m) and m > 0 else None


def write_weights(
    weights: pd.DataFrame, path: str | os.PathLike[str], provenance: dict[str, str]
) -> None:
    """Weights parquet with m_all, scale, RIV and provenance in the key-value metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.Table.from_pandas(weights, preserve_index=False)
    meta = dict(t.schema.metadata or {})
    extra = {f"drgsim.{k}": str(v) for k, v in weights.attrs.items()}
    extra.update(provenance)
    meta.update({k.encode(): str(v).encode() for k, v in extra.items()})
    from drgsim.output import atomic_path

    with atomic_path(path) as tmp:  # never a half-written weights file
        pq.write_table(t.replace_schema_metadata(meta), tmp)


__all__ = [
    "WeightsError",
    "calibrate",
    "quality_summary",
    "read_weights",
    "scheme_drgs",
    "trim_mask",
    "write_weights",
    "year_case_weights",
]
