"""Vectorized pricing: cases + weights + policy -> per-case case type, points and components.

No Python loop runs over cases: the case type is the first predicate in the policy's
precedence list that holds, and each type's points formula is an array
expression (DOMAIN.md section 3).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numba as nb
import numpy as np
import pandas as pd

from drgsim.errors import DrgsimError
from drgsim.policy.dated import YearPolicy, as_year_policy, constant_year
from drgsim.pricing.cases import DIP_CASE_COLUMNS, PAY_STATUSES, Cases
from drgsim.scheme.spec import STATUSES

CASE_TYPES = (
    "none",
    "normal",
    "high_cost",
    "low_cost",
    "ungroupable",
    "per_diem",
    "special_review",
    "readmission",
    "short_stay",
)
WEIGHT_LEVELS = ("none", "drg", "adrg", "mdc", "all")


class PricingError(DrgsimError):
    """Weights or hospitals cannot be used for pricing (e.g. a weights table without m_all)."""


@dataclass
class Weights:
    """A weights table as arrays: one row per key (DRG, ADRG, MDC or all)."""

    table: pd.DataFrame
    m_all_fen: float
    scale: float
    # DIP: the packet's mean cost at each hospital level (C of the outlier rules): columns
    # key, level, n_cases, mean_cost_fen; a key × level without a row (or with fewer than
    # dip.level_min_cases) takes the key's own mean_cost_fen
    levels: pd.DataFrame | None = None

    @classmethod
    def from_frame(cls, df: pd.DataFrame, scale: float | None = None) -> Weights:
        m_all = df.attrs.get("m_all_fen")
        if (m_all is None or not np.isfinite(m_all)) and "m_all_fen" in df:
            col = pd.to_numeric(df["m_all_fen"], errors="coerce").dropna()
            m_all = float(col.iloc[0]) if len(col) else None
        if (m_all is None or not np.isfinite(m_all)) and "level" in df:
            if (df["level"] == "all").any():  # a table from elsewhere: its rounded 'all' row
                m_all = float(df.loc[df["level"] == "all", "mean_cost_fen"].iloc[0])
                warnings.warn(
                    "weights carry no unrounded all-case mean (m_all_fen): using the 'all' "
                    "row's mean cost, rounded to the fen",
                    stacklevel=2,
                )
        if m_all is None or not np.isfinite(m_all) or m_all <= 0:
            raise PricingError(
                "weights carry no all-case mean cost (column or attrs m_all_fen, or an 'all' row)"
            )
        sc = float(scale or df.attrs.get("scale") or 100)
        t = df.copy()
        if "level" not in t:
            t["level"] = "drg"
        for c in ("per_diem_points", "per_diem_rate_fen", "per_diem_case_rate_fen"):
            if c not in t:
                t[c] = np.nan
        t = t.reset_index(drop=True)
        return cls(t, float(m_all), sc)

    def level_means(
        self, row: np.ndarray, case_level: np.ndarray, min_cases: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per case: the reference mean C at its hospital's level (fen) and True where the
        key's own mean stands in (no level row, or fewer than ``min_cases`` there)."""
        t = self.table
        own = t["mean_cost_fen"].to_numpy(dtype=np.float64)
        m = np.where(row >= 0, own[np.maximum(row, 0)], np.nan)
        fb = np.ones(len(row), dtype=bool)
        lv = self.levels
        if lv is None or not len(lv) or not len(row):
            return m, fb
        lv = lv[pd.to_numeric(lv["n_cases"], errors="coerce").fillna(0) >= min_cases]
        kidx = pd.Index(t["key"].astype(str)).get_indexer(lv["key"].astype(str))
        lv = lv[kidx >= 0]
        kidx = kidx[kidx >= 0]
        levels = np.asarray(sorted(set(lv["level"].map(level_digit))), dtype=object)
        if not len(levels):
            return m, fb
        L = len(levels)
        table = np.full(len(t) * L, np.nan)
        li = pd.Index(levels).get_indexer(lv["level"].map(level_digit))
        table[kidx * L + li] = lv["mean_cost_fen"].to_numpy(dtype=np.float64)
        cl = pd.Index(levels).get_indexer(pd.Series(case_level, dtype=object))
        ok = (row >= 0) & (cl >= 0)
        got = np.full(len(row), np.nan)
        got[ok] = table[row[ok] * L + cl[ok]]
        have = ~np.isnan(got)
        return np.where(have, got, m), ~have

    def lookup(self, cases: Cases, fallback: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per case: row index into the table (-1 none) and the level it was found at."""
        t = self.table
        index = {
            (lv, str(k)): i for i, (lv, k) in enumerate(zip(t["level"], t["key"], strict=True))
        }
        combo = (cases.drg.astype(np.int64) * (len(cases.adrg_names) + 1) + cases.adrg) * (
            len(cases.mdc_names) + 1
        ) + cases.mdc
        uniq, inv = np.unique(combo, return_inverse=True)
        row = np.full(len(uniq), -1, dtype=np.int64)
        lev = np.zeros(len(uniq), dtype=np.int8)
        na, nm = len(cases.adrg_names) + 1, len(cases.mdc_names) + 1
        for j, c in enumerate(uniq):
            m = int(c % nm)
            a = int((c // nm) % na)
            d = int(c // nm // na)
            drg = str(cases.drg_names[d])
            adrg = str(cases.adrg_names[a]) or (drg[:3] if len(drg) >= 3 and drg != "0000" else "")
            mdc = str(cases.mdc_names[m])
            tries = [("drg", drg)] + [
                (f, {"adrg": adrg, "mdc": mdc, "all": "all"}[f]) for f in fallback
            ]
            for lv, key in tries:
                i = index.get((lv, key))
                if i is None and lv == "adrg":
                    i = index.get(("drg", key))  # an ADRG-code DRG priced at its ADRG's level
                if i is not None and key:
                    row[j] = i
                    lev[j] = WEIGHT_LEVELS.index(lv)
                    break
        return row[inv], lev[inv]


def level_digit(x: object) -> str:
    """A hospital level as its digit ("三级", "3", "level 3" -> "3"); "" when none."""
    import re

    s = str(x).replace("三", "3").replace("二", "2").replace("一", "1")
    mt = re.search(r"\d", s)
    return mt.group(0) if mt else ""


def hospital_levels(hospital_ids: np.ndarray, hospitals: pd.DataFrame | None) -> np.ndarray:
    """Each hospital's level digit ("" when the table gives none), in ``hospital_ids`` order."""
    if hospitals is None or "level" not in hospitals or not len(hospital_ids):
        return np.full(len(hospital_ids), "", dtype=object)
    h = hospitals.assign(hospital_id=hospitals["hospital_id"].astype("string"))
    lv = h.drop_duplicates("hospital_id").set_index("hospital_id")["level"]
    lv = lv.reindex(pd.Index(hospital_ids, dtype="string"))
    return np.asarray([level_digit(x) if pd.notna(x) else "" for x in lv], dtype=object)


def outlier_params(pv: dict) -> dict:
    """The outlier thresholds a resolved policy prices with, as the cells re-price them:
    DRG: k by RW tier, low-cost factor, β, cap, strict boundaries; DIP: one tier k =
    dip.outliers.high, low = dip.outliers.low, β = 1, inclusive boundaries as the policy
    says, the extreme multiple (coefficient mode only) and the coefficient switch."""
    cap = pv["caps"]["max_points_multiple"]
    if pv.get("method") == "dip":
        o = pv["dip"]["outliers"]
        return {
            "tiers": [{"rw_upto": None, "k": float(o["high"])}],
            "low": float(o["low"]),
            "beta": 1.0,
            "cap": cap,
            "inclusive": bool(o["inclusive"]),
            "extreme": None
            if o["extreme"] is None or o["extreme_mode"] != "coefficient"
            else float(o["extreme"]),
            "coef_out": bool(o["coef_on_outliers"]),
            "dip": True,
        }
    return {
        "tiers": [dict(t) for t in pv["high_cost"]["tiers"]],
        "low": float(pv["low_cost"]["factor"]),
        "beta": float(pv["high_cost"]["beta"]),
        "cap": cap,
        "inclusive": False,
        "extreme": None,
        "coef_out": True,
        "dip": False,
    }


def outlier_points(
    P: np.ndarray, c: np.ndarray, r: np.ndarray, k: np.ndarray, t: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(normal, low-cost, high-cost points, high-cost premium) per case for thresholds ``t``
    (:func:`outlier_params`). DRG: P c, P c r, P c + P (r − k) β. DIP: base × c, then the
    outliers on Po = base × c (or base alone when coefficients are off on outliers):
    Po r and Po (r − k + 1) = Po + Po (r − k)."""
    Pc = P * c
    if t["dip"]:
        Po = Pc if t["coef_out"] else P
        prem = Po * (r - k) * t["beta"]
        return Pc, Po * r, Po + prem, prem
    prem = P * (r - k) * t["beta"]
    return Pc, Pc * r, Pc + prem, prem


def outlier_masks(
    r: np.ndarray, k: np.ndarray, low: np.ndarray | float, t: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(high, low, extreme-at-coefficient) predicates before precedence: strict (DRG:
    r > k, r < l) or inclusive (DIP.md: r >= k, r <= l); extreme r > e (coefficient mode)."""
    if t["inclusive"]:
        high, lo = r >= k, r <= low
    else:
        high, lo = r > k, r < low
    ext = r > t["extreme"] if t["extreme"] is not None else np.zeros(len(r), bool)
    return high, lo, ext


def hospital_coefficients(
    hospital_ids: np.ndarray,
    hospitals: pd.DataFrame | None,
    pv: dict,
    cost_index: np.ndarray | None = None,
) -> np.ndarray:
    """c_h per hospital: by level, own (table column or cost index), or a blend; band; phase-in."""
    cp = pv["coefficients"]
    n = len(hospital_ids)
    level_c = np.full(n, cp["default"], dtype=np.float64)
    own = np.full(n, np.nan)
    if hospitals is not None and len(hospitals):
        h = hospitals.copy()
        h["hospital_id"] = h["hospital_id"].astype("string")
        h = (
            h.drop_duplicates("hospital_id")
            .set_index("hospital_id")
            .reindex(pd.Index(hospital_ids, dtype="string"))
        )
        if "level" in h:
            lv = (
                h["level"]
                .astype("string")
                .str.replace("三", "3")
                .str.replace("二", "2")
                .str.replace("一", "1")
            ).str.extract(r"(\d)")[0]
            level_c = (
                lv.map({k: v for k, v in cp["by_level"].items()})
                .astype("float64")
                .fillna(cp["default"])
                .to_numpy()
            )
        if "coefficient" in h:
            own = pd.to_numeric(h["coefficient"], errors="coerce").to_numpy(dtype=np.float64)
    if cost_index is not None:
        own = np.where(np.isnan(own), cost_index, own)
    method = cp["method"]
    if method == "level":
        c = level_c
    elif method == "hospital":
        c = np.where(np.isnan(own), level_c, own)
    else:
        w = cp["hospital_weight"]
        c = np.where(np.isnan(own), level_c, w * own + (1 - w) * level_c)
    if cp["band_lower"] is not None:
        c = np.maximum(c, cp["band_lower"])
    if cp["band_upper"] is not None:
        c = np.minimum(c, cp["band_upper"])
    return c + (1.0 - c) * cp["phase_to_one"]


def link_readmissions(cases: Cases, days: int, same: str, eligible: np.ndarray) -> np.ndarray:
    """True for a case admitted within ``days`` of the previous discharge of the same
    patient from the same hospital (and the same ADRG/DRG/MDC, per ``same``): the later
    case is flagged. Uses the by-patient order computed once at load; one numba pass.
    """
    if cases.n == 0:
        return np.zeros(0, dtype=bool)
    grp = {
        "adrg": cases.adrg,
        "drg": cases.drg,
        "mdc": cases.mdc,
        "any": np.zeros(cases.n, np.int32),
    }[same]
    out = np.zeros(cases.n, dtype=bool)
    _readmit_kernel(
        cases.by_patient,
        cases.patient,
        cases.hosp,
        grp.astype(np.int32),
        cases.admit_day,
        cases.disch_day,
        eligible,
        int(days),
        out,
    )
    return out


def link_readmissions_reference(
    cases: Cases, days: int, same: str, eligible: np.ndarray
) -> np.ndarray:
    """Slow, obvious version of :func:`link_readmissions` (for tests): per patient,
    hospital and group, cases by (admit day, case id); a case within ``days`` of the
    previous one's discharge is a readmission."""
    grp = {
        "adrg": cases.adrg,
        "drg": cases.drg,
        "mdc": cases.mdc,
        "any": np.zeros(cases.n, np.int32),
    }[same]
    chains: dict[tuple, list[int]] = {}
    for i in range(cases.n):
        if cases.patient[i] >= 0 and eligible[i]:
            chains.setdefault((cases.patient[i], cases.hosp[i], grp[i]), []).append(i)
    out = np.zeros(cases.n, dtype=bool)
    for rows in chains.values():
        rows.sort(key=lambda i: (cases.admit_day[i], cases.tie[i]))
        for prev, cur in zip(rows, rows[1:], strict=False):
            out[cur] = 0 <= cases.admit_day[cur] - cases.disch_day[prev] <= days
    return out


@nb.njit(cache=True)
def _readmit_kernel(
    order, patient, hosp, grp, admit, disch, eligible, days, out
):  # pragma: no cover
    n = len(order)
    for j in range(1, n):
        i = order[j]
        if patient[i] < 0 or not eligible[i]:
            continue
        k = j - 1
        while k >= 0:  # the same patient's earlier admissions, latest first
            p = order[k]
            if patient[p] != patient[i]:
                break
            if hosp[p] == hosp[i] and grp[p] == grp[i] and eligible[p]:
                gap = admit[i] - disch[p]
                if 0 <= gap <= days:
                    out[i] = True
                break
            k -= 1


def select_special_review(
    cases: Cases, ratio: np.ndarray, candidate: np.ndarray, share: float
) -> np.ndarray:
    """Per hospital, the highest cost ratios among candidates, at most ``share`` of its cases."""
    n_h = np.bincount(cases.hosp[cases.hosp >= 0], minlength=len(cases.hospital_ids))
    limit = np.floor(n_h * share + 1e-9).astype(np.int64)
    idx = np.flatnonzero(candidate)
    if len(idx) == 0:
        return np.zeros(cases.n, dtype=bool)
    h = cases.hosp[idx]
    order = np.lexsort((cases.tie[idx], -ratio[idx], h))
    hs = h[order]
    starts = np.r_[0, np.flatnonzero(hs[1:] != hs[:-1]) + 1]
    rank = np.arange(len(hs)) - np.repeat(starts, np.diff(np.r_[starts, len(hs)]))
    chosen = rank < limit[hs]
    out = np.zeros(cases.n, dtype=bool)
    out[idx[order][chosen]] = True
    return out


@dataclass
class Priced:
    """Per-case pricing results (arrays aligned with the Cases) plus the inputs used."""

    cases: Cases
    case_type: np.ndarray  # int8 index into CASE_TYPES
    points: np.ndarray  # float64
    base_points: np.ndarray
    coefficient: np.ndarray
    mean_cost_fen: np.ndarray
    cost_ratio: np.ndarray
    k: np.ndarray
    premium_points: np.ndarray
    factor: np.ndarray
    weight_row: np.ndarray
    weight_level: np.ndarray
    pay_status: np.ndarray  # int8 index into PAY_STATUSES
    in_budget: np.ndarray  # bool: priced in points inside the fund's budget
    outside_fen: np.ndarray  # int64: paid outside the budget (per diem carved out)
    hosp_coef: np.ndarray  # per hospital
    rw: np.ndarray = None  # type: ignore[assignment]
    mean_los: np.ndarray = None  # type: ignore[assignment]
    pv: dict | None = None  # the resolved policy the cases were priced with (1 January)
    readmit: np.ndarray = None  # type: ignore[assignment]  # bool: the readmission cut applied
    segment: np.ndarray = None  # type: ignore[assignment]  # int16: index into policy.segments
    policy: YearPolicy | None = None  # case-level values per segment (dated values)
    sr_candidate: np.ndarray = None  # type: ignore[assignment]  # special-review candidates
    extreme: np.ndarray = None  # type: ignore[assignment]  # DIP: cost > extreme x C, for review
    level_fallback: np.ndarray = None  # type: ignore[assignment]  # DIP: C is the packet mean

    def __post_init__(self) -> None:
        n = self.cases.n
        if self.readmit is None:
            self.readmit = np.zeros(n, dtype=bool)
        if self.segment is None:
            self.segment = np.zeros(n, dtype=np.int16)
        if self.sr_candidate is None:
            self.sr_candidate = np.zeros(n, dtype=bool)
        if self.extreme is None:
            self.extreme = np.zeros(n, dtype=bool)
        if self.level_fallback is None:
            self.level_fallback = np.zeros(n, dtype=bool)
        if self.policy is None and self.pv is not None:
            self.policy = constant_year(self.pv)

    @property
    def payable(self) -> np.ndarray:
        return self.pay_status == 0

    def frame(self) -> pd.DataFrame:
        """The per-case table a hospital reconciles line by line (money in fen)."""
        c = self.cases
        return pd.DataFrame(
            {
                "case_id": c.case_id,
                # an unknown hospital keeps the id it came with, never another's
                "hospital_id": np.where(
                    c.hosp >= 0,
                    np.asarray(c.hospital_ids, dtype=object)[np.maximum(c.hosp, 0)]
                    if len(c.hospital_ids)
                    else None,
                    c.hosp_raw if c.hosp_raw is not None else None,
                ),
                "fund": np.where(c.fund >= 0, np.array(["employee", "resident", ""])[c.fund], ""),
                "year": c.year,
                "month": c.month.astype(np.int16) + 1,
                "drg": c.drg_names[c.drg],
                "status": np.asarray(STATUSES + ("?",), dtype=object)[c.status],
                "case_type": np.asarray(CASE_TYPES, dtype=object)[self.case_type],
                "pay_status": np.asarray(PAY_STATUSES, dtype=object)[self.pay_status],
                "weight_level": np.asarray(WEIGHT_LEVELS, dtype=object)[self.weight_level],
                "base_points": self.base_points,
                "coefficient": self.coefficient,
                "mean_cost_fen": self.mean_cost_fen,
                "cost_ratio": self.cost_ratio,
                "k": self.k,
                "premium_points": self.premium_points,
                "factor": self.factor,
                "readmission": self.readmit,
                "points": self.points,
                "rw": self.rw,
                "los_days": c.los,
                "mean_los": self.mean_los,
                "in_budget": self.in_budget,
                "cost_fen": c.cost_fen,
                "patient_share_fen": c.share_fen,
                **self._dip_columns(),
            }
        )

    def _dip_columns(self) -> dict:
        """DIP cases: the packet, auxiliary class and status they came with, the extreme
        flag (cost > extreme x C, for expert review) and whether C fell back to the packet
        mean (too few cases at the hospital's level)."""
        if not self.pv or self.pv.get("method") != "dip":
            return {}
        out = {k: v for k, v in self.cases.extra.items() if k in DIP_CASE_COLUMNS}
        out["extreme_review"] = self.extreme
        out["c_level_fallback"] = self.level_fallback
        return out


PRICED_PER_CASE = (
    "case_type",
    "points",
    "base_points",
    "coefficient",
    "mean_cost_fen",
    "cost_ratio",
    "k",
    "premium_points",
    "factor",
    "weight_row",
    "weight_level",
    "pay_status",
    "in_budget",
    "outside_fen",
    "rw",
    "mean_los",
    "readmit",
    "sr_candidate",
    "extreme",
    "level_fallback",
)
CUT_TYPES = ("normal", "high_cost", "low_cost", "short_stay")  # the readmission modifier's


def price(
    cases: Cases,
    weights: Weights,
    pv: dict | YearPolicy,
    hospitals: pd.DataFrame | None = None,
) -> Priced:
    """Price every case.

    ``pv``: a :class:`~drgsim.policy.dated.YearPolicy` (each case priced with the
    case-level values in force on its discharge date) or one resolved policy dict (in
    force all year). Rows marked ``cases.link_only`` (last year's discharges) only serve
    readmission linking and are not priced or returned.
    """
    yp = as_year_policy(pv)
    full = None
    lo = cases.link_only
    if lo is not None and lo.any():
        full, cases = cases, cases.take(~lo)
    seg = yp.segment_of(cases.disch_day) if yp.dated else np.zeros(cases.n, np.int16)
    parts = [_price_segment(cases, weights, p, hospitals, full) for p in yp.segments]
    sr = yp.pv["special_review"]
    if len(parts) > 1 and sr["enabled"] and sr["selection"] == "top_cost_ratio":
        # the share is per hospital and year: select once among every case's own candidates
        cand = np.zeros(cases.n, bool)
        for s_, part in enumerate(parts):
            cand |= (seg == s_) & part.sr_candidate
        special = select_special_review(cases, parts[0].cost_ratio, cand, sr["share"])
        parts = [_price_segment(cases, weights, p, hospitals, full, special) for p in yp.segments]
    out = parts[0]
    for s_, part in enumerate(parts[1:], start=1):  # each case from its segment's pricing
        sel = seg == s_
        for name in PRICED_PER_CASE:
            a = getattr(out, name)
            setattr(out, name, np.where(sel, getattr(part, name), a).astype(a.dtype))
    out.pv, out.policy, out.segment = yp.pv, yp, seg
    return out


def _price_segment(
    cases: Cases,
    weights: Weights,
    pv: dict,
    hospitals: pd.DataFrame | None,
    full: Cases | None,
    special_given: np.ndarray | None = None,
) -> Priced:
    """Price every case with one resolved policy; ``full``: the cases plus last year's
    link-only rows, for readmission linking; ``special_given``: the special-review
    selection made over the whole year (dated values)."""
    n = cases.n
    pay = cases.pay_status.copy()
    # DIP: the catalogue's score scale (blank packets, special review), not points.scale
    scale = weights.scale if pv.get("method") == "dip" else float(pv["points"]["scale"])
    m_all = weights.m_all_fen
    st_rule = pv["statuses"]
    status_name = np.asarray(STATUSES + ("?",), dtype=object)
    s = cases.status
    discounted_ids = [
        i for i, nm in enumerate(STATUSES) if i > 0 and st_rule.get(nm) == "discounted"
    ]
    review_ids = [i for i, nm in enumerate(STATUSES) if i > 0 and st_rule.get(nm) == "review"]
    zero_ids = [i for i, nm in enumerate(STATUSES) if i > 0 and st_rule.get(nm) == "zero"]
    is_ok = s == 0
    is_disc = np.isin(s, discounted_ids)
    held = np.isin(s, review_ids)
    pay[(pay == 0) & held] = PAY_STATUSES.index("held_for_review")
    del status_name

    dip = pv.get("method") == "dip"  # a DIP case key has no pooled fallback
    row, lev = weights.lookup(cases, [] if dip else pv["calibration"]["fallback"])
    t = weights.table
    has_w = (row >= 0) & (len(t) > 0)
    pay[(pay == 0) & is_ok & ~has_w] = PAY_STATUSES.index("no_weight")
    r = np.maximum(row, 0)
    P = np.where(has_w, t["points"].to_numpy(dtype=np.float64)[r], 0.0)
    rw = np.where(has_w, t["rw"].to_numpy(dtype=np.float64)[r], 0.0)
    m = np.where(has_w, t["mean_cost_fen"].to_numpy(dtype=np.float64)[r], np.nan)
    # a group's own daily rate (when its per-diem category has none), on the policy's basis
    pd_pts = t["per_diem_points"].to_numpy(dtype=np.float64)
    pd_rate = t["per_diem_rate_fen"].to_numpy(dtype=np.float64)
    if pv["per_diem"].get("rate_basis") == "mean_of_case_rates":
        own = t["per_diem_case_rate_fen"].to_numpy(dtype=np.float64)
        pd_pts = np.where(np.isnan(own), pd_pts, own / m_all * scale)
        pd_rate = np.where(np.isnan(own), pd_rate, own)
    pdp = np.where(has_w, pd_pts[r], np.nan)
    pdr = np.where(has_w, pd_rate[r], np.nan)
    all_rows = t.index[t["level"] == "all"]
    if len(all_rows):  # per-diem rate of a group without its own: the all-case one
        a = all_rows[0]
        pdp = np.where(np.isnan(pdp), pd_pts[a], pdp)
        pdr = np.where(np.isnan(pdr), pd_rate[a], pdr)

    cat_rate = _per_diem_category_rates(cases, t, pv["per_diem"])
    has_cat = ~np.isnan(cat_rate)  # the category's calibrated rate wins over the group's
    pdr = np.where(has_cat, cat_rate, pdr)
    pdp = np.where(has_cat, cat_rate / m_all * scale, pdp)
    if pv["per_diem"]["rate_yuan"] is not None:
        pdr = np.full(n, float(pv["per_diem"]["rate_yuan"]) * 100.0)
        pdp = pdr / m_all * scale
    cost_index = None
    if pv["coefficients"]["method"] != "level" and len(cases.hospital_ids):
        # the hospital's own coefficient when the table gives none: its cost over the group means
        ok_c = is_ok & has_w & (pay == 0) & (cases.hosp >= 0)
        H = len(cases.hospital_ids)
        num = np.bincount(cases.hosp[ok_c], weights=cases.cost_fen[ok_c], minlength=H)
        den = np.bincount(cases.hosp[ok_c], weights=m[ok_c], minlength=H)
        with np.errstate(divide="ignore", invalid="ignore"):
            cost_index = np.where(den > 0, num / den, np.nan)
    coef_h = hospital_coefficients(cases.hospital_ids, hospitals, pv, cost_index)
    c = (
        np.where(cases.hosp >= 0, coef_h[np.maximum(cases.hosp, 0)], 1.0)
        if len(coef_h)
        else np.ones(n)
    )
    level_fb = np.zeros(n, dtype=bool)
    if dip:  # C: the key's mean at the hospital's level; no coefficient on base packets
        dp = pv["dip"]
        hl = hospital_levels(cases.hospital_ids, hospitals)
        case_lv = (
            np.where(cases.hosp >= 0, hl[np.maximum(cases.hosp, 0)], "")
            if len(hl)
            else np.full(n, "", dtype=object)
        )
        m, level_fb = weights.level_means(row, case_lv, dp["level_min_cases"])
        m = np.where(has_w, m, np.nan)
        level_fb &= has_w
        if "base" in t:
            is_base = has_w & (pd.to_numeric(t["base"]).fillna(0).to_numpy()[r] > 0)
            c = np.where(is_base, 1.0, c)
    cost = cases.cost_fen.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(has_w & (m > 0), cost / m, np.nan)
    r0 = np.where(np.isnan(ratio), 0.0, ratio)  # NaN-free ratio for the formulas

    pl = pv["plausibility"]
    if pl["max_cost_ratio"] is not None:
        ref = np.where(has_w & (m > 0), m, m_all)
        bad = (pay == 0) & (cost > pl["max_cost_ratio"] * ref)
        pay[bad] = PAY_STATUSES.index("implausible_cost")
    if pl["max_los_days"] is not None:
        pay[(pay == 0) & (cases.los > pl["max_los_days"])] = PAY_STATUSES.index("implausible_los")
    op = outlier_params(pv)
    edges = np.array([tr["rw_upto"] for tr in op["tiers"][:-1]], dtype=np.float64)
    ks = np.array([tr["k"] for tr in op["tiers"]], dtype=np.float64)
    k = ks[np.searchsorted(edges, rw, side="left")]
    low_f = op["low"]
    drg_ok = is_ok & has_w
    extreme = np.zeros(n, dtype=bool)
    if dip and dp["outliers"]["extreme"] is not None:  # flagged for expert review
        with np.errstate(invalid="ignore"):
            extreme = drg_ok & (ratio > dp["outliers"]["extreme"])
        if dp["outliers"]["extreme_mode"] == "review":
            pay[(pay == 0) & extreme] = PAY_STATUSES.index("held_for_review")

    # predicates
    pdm = pv["per_diem"]
    mdc_names = np.asarray(cases.mdc_names, dtype=object)
    adrg_names = np.asarray(cases.adrg_names, dtype=object)
    per_diem = np.zeros(n, dtype=bool)
    if pdm["enabled"]:
        in_mdc = np.isin(mdc_names, pdm["mdcs"])[cases.mdc] if len(mdc_names) else np.zeros(n, bool)
        in_adrg = (
            np.isin(adrg_names, pdm["adrgs"])[cases.adrg] if len(adrg_names) else np.zeros(n, bool)
        )
        long = cases.los >= pdm["min_los"] if pdm["min_los"] is not None else np.zeros(n, bool)
        per_diem = drg_ok & (in_mdc | in_adrg | long) & ~np.isnan(pdp)
    sr = pv["special_review"]
    special = np.zeros(n, dtype=bool)
    cand = np.zeros(n, dtype=bool)
    if sr["enabled"]:
        if sr["selection"] == "flag":
            special = drg_ok & cases.special_flag
        else:
            cand = drg_ok & (ratio >= sr["min_cost_ratio"]) & ~per_diem & (pay == 0)
            special = (
                select_special_review(cases, r0, cand, sr["share"])
                if special_given is None
                else special_given
            )
    ra = pv["readmission"]
    modifier = ra.get("mode", "case_type") == "modifier"
    readmit = np.zeros(n, dtype=bool)
    if ra["enabled"]:
        el = drg_ok & (pay == 0)
        if full is None:
            readmit = link_readmissions(cases, ra["days"], ra["same"], el) & drg_ok
        else:  # last year's discharges (link-only rows) can be the earlier stay
            lo = full.link_only
            prow, _ = weights.lookup(full, pv["calibration"]["fallback"])
            el_full = (full.status == 0) & (full.pay_status == 0) & (prow >= 0)
            el_full[~lo] = el
            readmit = link_readmissions(full, ra["days"], ra["same"], el_full)[~lo] & drg_ok
    ss = pv["short_stay"]
    short = (
        drg_ok & (cases.los <= ss["max_los"]) & (cases.los >= 0)
        if ss["enabled"]
        else np.zeros(n, bool)
    )
    with np.errstate(invalid="ignore"):
        high_m, low_m, ext_m = outlier_masks(ratio, k, low_f, op)
    high = drg_ok & high_m & ~ext_m  # extreme at coefficient mode: paid as normal
    low = drg_ok & low_m
    preds = {
        "per_diem": per_diem,
        "special_review": special,
        "ungroupable": is_disc,
        "readmission": readmit & (not modifier),
        "short_stay": short,
        "high_cost": high,
        "low_cost": low,
        "normal": drg_ok,
    }

    # points per type
    pdays = np.minimum(np.maximum(cases.los, 0), pdm["max_days"]).astype(np.float64)
    normal_pts, low_pts, high_pts, premium = outlier_points(P, c, r0, k, op)
    premium = np.where(high, premium, 0.0)
    cap = pv["caps"]["max_points_multiple"]
    blank = pv["dip"]["blank_ratio"] if dip else pv["ungroupable"]["discount"]
    factor = np.ones(n)
    pts = {
        "per_diem": np.where(np.isnan(pdp), 0.0, pdp) * pdays,
        "special_review": cost / m_all * scale,
        "ungroupable": cost / m_all * scale * blank,
        "readmission": normal_pts * ra["points_factor"],
        "short_stay": (normal_pts * np.minimum(r0, 1.0))
        if ss["pricing"] == "low_cost"
        else np.zeros(n),
        "high_cost": high_pts,
        "low_cost": low_pts,
        "normal": normal_pts,
    }
    order = pv["case_types"]["precedence"]
    conds = [preds[t_] for t_ in order]
    # the first type in precedence order wins: write from the last to the first
    case_type = np.zeros(n, dtype=np.int8)
    points = np.zeros(n, dtype=np.float64)
    for t_, cond in zip(reversed(order), reversed(conds), strict=True):
        case_type[cond] = CASE_TYPES.index(t_)
        np.copyto(points, pts[t_], where=cond)
    if cap is not None:
        capped = np.isin(
            case_type,
            [
                CASE_TYPES.index(x)
                for x in ("normal", "high_cost", "low_cost", "readmission", "short_stay")
            ],
        )
        points = np.where(capped, np.minimum(points, cap * P), points)
    if modifier:  # the cut applies to the points the case otherwise gets (after the cap)
        cut = readmit & np.isin(case_type, [CASE_TYPES.index(x) for x in CUT_TYPES])
        points = np.where(cut, points * ra["points_factor"], points)
    else:
        cut = case_type == CASE_TYPES.index("readmission")
    factor = np.where(cut, ra["points_factor"], factor)
    premium = np.where(case_type == CASE_TYPES.index("high_cost"), premium, 0.0)
    zero_st = np.isin(s, zero_ids)
    points = np.where((pay == 0) & ~zero_st, points, 0.0)
    case_type = np.where(pay == 0, case_type, 0).astype(np.int8)

    in_budget = pay == 0
    outside = np.zeros(n, dtype=np.int64)
    if pdm["enabled"] and not pdm["inside_budget"]:
        pdc = (case_type == CASE_TYPES.index("per_diem")) & (pay == 0)
        due = (
            np.floor(np.where(np.isnan(pdr), 0.0, pdr) * pdays + 0.5).astype(np.int64)
            - cases.share_fen
        )
        outside = np.where(pdc, np.maximum(due, 0), 0)
        in_budget &= ~pdc
        points = np.where(pdc, 0.0, points)
    return Priced(
        cases=cases,
        case_type=case_type,
        points=points,
        base_points=P,
        coefficient=c,
        mean_cost_fen=np.where(np.isnan(m), 0.0, m),
        cost_ratio=r0,
        k=k,
        premium_points=premium,
        factor=factor,
        weight_row=row,
        weight_level=lev,
        pay_status=pay,
        in_budget=in_budget,
        outside_fen=outside,
        hosp_coef=coef_h,
        rw=rw,
        mean_los=np.where(has_w, t["mean_los"].to_numpy(dtype=np.float64)[r], np.nan)
        if "mean_los" in t
        else np.full(n, np.nan),
        pv=pv,
        readmit=cut & (pay == 0),
        sr_candidate=cand,
        extreme=extreme,
        level_fallback=level_fb,
    )


def _per_diem_category_rates(cases: Cases, t: pd.DataFrame, pdm: dict) -> np.ndarray:
    """Per case: the calibrated daily rate (fen) of its per-diem category (listed ADRG, else
    listed MDC, else long stay), on the policy's rate basis; NaN without a category row."""
    n = cases.n
    rows = t.index[t["level"] == "per_diem"]
    if n == 0 or not len(rows):
        return np.full(n, np.nan)
    col = "per_diem_rate_fen" if pdm.get("rate_basis") != "mean_of_case_rates" else (
        "per_diem_case_rate_fen"
    )
    rate = dict(zip(t.loc[rows, "key"].astype(str), t.loc[rows, col].astype(float), strict=True))
    adrg_names = np.asarray(cases.adrg_names, dtype=object).astype(str)
    mdc_names = np.asarray(cases.mdc_names, dtype=object).astype(str)
    a_rate = np.array([rate.get(a, np.nan) for a in adrg_names], dtype=np.float64)
    m_rate = np.array([rate.get(m, np.nan) for m in mdc_names], dtype=np.float64)
    a_in = np.isin(adrg_names, list(pdm["adrgs"]))[cases.adrg]
    m_in = np.isin(mdc_names, list(pdm["mdcs"]))[cases.mdc]
    long = cases.los >= pdm["min_los"] if pdm["min_los"] is not None else np.zeros(n, bool)
    long_rate = rate.get("long_stay", np.nan)
    return np.where(
        a_in, a_rate[cases.adrg], np.where(m_in, m_rate[cases.mdc], np.where(long, long_rate, np.nan))
    )


def reprice_thresholds(pr: Priced, segments: list[dict]) -> Priced:
    """The rows re-priced under other outlier thresholds (k tiers, low-cost factor, β, cap;
    ``segments[s]`` for the cases of dated-value segment ``s``): normal, high- and low-cost
    cases change type and points by the formulas of :func:`price`; every other case stays.
    The row twin of re-pricing the cells."""
    import copy

    out = copy.copy(pr)
    n = pr.cases.n
    thr = pr.payable & np.isin(pr.case_type, [CASE_TYPES.index(x) for x in CUT_TYPES[:3]])
    seg = pr.segment if pr.segment is not None else np.zeros(n, np.int16)
    k = pr.k.copy()
    low_f, cap = np.zeros(n), np.full(n, np.inf)
    high, low = np.zeros(n, bool), np.zeros(n, bool)
    pts_n, pts_l, pts_h, premium = (np.zeros(n) for _ in range(4))
    prec = list(pr.pv["case_types"]["precedence"])
    valid = pr.mean_cost_fen > 0
    r0 = pr.cost_ratio
    P, c = pr.base_points, pr.coefficient
    for s_, p in enumerate(segments):
        sel = seg == s_
        t = outlier_params(p)
        edges = np.array([x["rw_upto"] for x in t["tiers"][:-1]], dtype=np.float64)
        ks = np.array([x["k"] for x in t["tiers"]], dtype=np.float64)
        k[sel] = ks[np.searchsorted(edges, pr.rw[sel], side="left")]
        low_f[sel] = t["low"]
        cap[sel] = np.inf if t["cap"] is None else t["cap"]
        h_, l_, e_ = outlier_masks(r0[sel], k[sel], low_f[sel], t)
        high[sel], low[sel] = h_ & ~e_, l_
        a, b_, c2, d = outlier_points(P[sel], c[sel], r0[sel], k[sel], t)
        pts_n[sel], pts_l[sel], pts_h[sel], premium[sel] = a, b_, c2, d
    high &= valid & ("high_cost" in prec)
    low &= valid & ("low_cost" in prec)
    if "high_cost" in prec and "low_cost" in prec:
        if prec.index("low_cost") < prec.index("high_cost"):
            high &= ~low
        else:
            low &= ~high
    premium = np.where(high, premium, 0.0)
    pts = np.where(high, pts_h, np.where(low, pts_l, pts_n))
    pts = np.where(np.isfinite(cap), np.minimum(pts, cap * P), pts) * pr.factor
    ct = np.where(
        high,
        CASE_TYPES.index("high_cost"),
        np.where(low, CASE_TYPES.index("low_cost"), CASE_TYPES.index("normal")),
    )
    out.case_type = np.where(thr, ct, pr.case_type).astype(np.int8)
    out.points = np.where(thr, pts, pr.points)
    out.premium_points = np.where(thr, premium, pr.premium_points)
    out.k = np.where(thr, k, pr.k)
    segs = [copy.deepcopy(x) for x in (pr.policy.segments if pr.policy else [pr.pv])]
    for a, b in zip(segs, segments, strict=False):
        for sec in ("high_cost", "low_cost", "caps"):
            a[sec] = copy.deepcopy(b[sec])
        if "dip" in b:
            a["dip"]["outliers"] = copy.deepcopy(b["dip"]["outliers"])
    if pr.policy is not None:
        out.policy = YearPolicy(pr.policy.year, segs[0], pr.policy.starts, segs, pr.policy.months)
        out.pv = segs[0]
    return out
