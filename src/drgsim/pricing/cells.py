"""Cells: cases priced once into hospital × DRG × fund × month cells; totals from the cells.

A cell is also keyed by the dated-value period of its cases (case-level values change on
the day a policy dates them, :mod:`drgsim.policy.dated`) and by the readmission flag, so
its coefficient, readmission factor and thresholds are one per cell.

This is how every settlement gets its points, the single simulation (``settle``) as the
one-scenario case and the scenario sweeps alike; row pricing (:func:`~drgsim.pricing.core.price`)
stays the per-case explanation and the slow reference the cells are tested against.

- **Threshold cases** (case type normal, high-cost or low-cost): what they are depends on
  the outlier thresholds. A cell keeps its cases' costs sorted with running sums, so the
  cell's points under any thresholds (k by RW tier, the low-cost factor, β, the cap) are
  found by binary search with the very predicates row pricing uses (``cost / m > k``,
  ``cost / m < l``, points above ``cap × P``) and a few sums, without touching case rows.
- **Readmissions** (``readmission.mode: modifier``) stay threshold cases: the cell's
  points are multiplied by its factor after the cap, as row pricing does.
- **Fixed cases** (per diem inside the budget, special review, ungroupable/ambiguous,
  short stay, readmission as a case type, statuses paid zero): their points do not depend on those
  thresholds. They enter as one adjustment per hospital × fund × month, computed once
  from the row points (summed in case-id order, so row order never moves a last bit).
  Re-pricing is exact for them as long as (a) every such type comes before high_cost and
  low_cost in the precedence (else a changed k or l could move a case between a fixed type
  and a threshold type) and (b) a changed cap does not reach a readmission's or short
  stay's points; :func:`cell_points` raises :class:`CellsError` instead of differing
  silently when either is violated.
- Per-diem cases paid **outside** the budget carry no points; their fen are kept per
  hospital × fund (``outside_fen``) for the carve-out. Rows that are not payable carry
  nothing.

The integer sums the settlement needs beside the points (cost, patients' share, cases)
are kept per hospital × fund × month too, so settlement runs on these totals alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np

from drgsim.errors import DrgsimError
from drgsim.policy.dated import YearPolicy, as_year_policy
from drgsim.pricing.core import (
    CASE_TYPES,
    Priced,
    PricingError,
    outlier_params,
    reprice_thresholds,
)

THRESHOLD_TYPES = [CASE_TYPES.index(t) for t in ("normal", "high_cost", "low_cost")]
FIXED_TYPES = ("per_diem", "special_review", "ungroupable", "readmission", "short_stay")
FIXED_CAPPED = [CASE_TYPES.index(t) for t in ("readmission", "short_stay")]  # capped, fixed
THRESHOLD_KEYS = ("tiers", "low", "beta", "cap")
# DIP (method dip) prices a cell keyed by hospital × packet × auxiliary class × fund × month:
# its own reference mean C (the packet's mean at the hospital's level), coefficient (1 for
# base packets), inclusive boundaries and DIP's outlier formulas (pricing.core.outlier_params)
N_FUNDS = 2
MONTHS = 12


class CellsError(DrgsimError):
    """Cells cannot re-price these thresholds exactly (re-price the rows instead)."""


@dataclass
class Cells:
    """Sorted per-cell costs and what re-pricing a cell needs, plus per-hfm totals.

    ``hfm`` = (hospital × 2 + fund) × 12 + month indexes the per-hospital-fund-month arrays.
    """

    hfm: np.ndarray  # per cell
    P: np.ndarray  # base points
    c: np.ndarray  # coefficient of the cell's cases (hospital and dated-value segment)
    m: np.ndarray  # reference mean cost (fen)
    rw: np.ndarray
    seg: np.ndarray  # per cell: dated-value segment (index into built_segments)
    f: np.ndarray  # per cell: readmission factor (1, or points_factor for readmitted cases)
    start: np.ndarray  # offsets into cost/cum (len cells + 1)
    cost: np.ndarray  # int64 fen, sorted inside each cell
    cum: np.ndarray  # running sum of ``cost`` (float64, exact below 2**53 fen), leading 0
    fixed_points: np.ndarray  # per hfm: points of the fixed cases
    share_fen: np.ndarray  # per hfm, int64: patients' share of payable in-budget cases
    cost_fen: np.ndarray  # per hfm, int64
    cases: np.ndarray  # per hfm, int64
    outside_fen: np.ndarray  # per hospital × fund, int64: per diem paid outside the budget
    n_hosp: int
    built_segments: list[dict]  # per segment, the thresholds priced with: tiers, low, beta, cap
    starts: np.ndarray  # first day of each segment (days since 1970-01-01)
    low_first: bool  # low_cost before high_cost in the precedence
    has_high: bool
    has_low: bool
    fixed_before_thresholds: bool  # every fixed type precedes high_cost and low_cost
    fixed_cap_ratio: float  # largest points / P among fixed capped cases (readmission...)
    fixed_cap_bound: bool  # some fixed capped case sits at the built cap

    @property
    def built(self) -> dict:
        """The thresholds of the first segment (all of them when nothing is dated)."""
        return self.built_segments[0]

    @property
    def n(self) -> np.ndarray:
        return np.diff(self.start)

    @property
    def n_hfm(self) -> int:
        return self.n_hosp * N_FUNDS * MONTHS


def _thresholds(pv: dict) -> dict:
    """The outlier thresholds of a resolved policy (DRG or DIP): tiers, low, beta, cap and
    the DIP keys inclusive, extreme, coef_out (:func:`~drgsim.pricing.core.outlier_params`)."""
    return outlier_params(pv)


def build_cells(pr: Priced) -> Cells:
    """Group payable in-budget cases into cells once (one sort) and sum the rest per hfm."""
    if pr.pv is None:
        raise CellsError("cells need the policy the cases were priced with (Priced.pv)")
    c = pr.cases
    H = len(c.hospital_ids)
    n_hfm = H * N_FUNDS * MONTHS
    ok = pr.payable & pr.in_budget & (c.hosp >= 0) & (c.fund >= 0)
    hfm_all = (c.hosp.astype(np.int64) * N_FUNDS + c.fund) * MONTHS + c.month
    thr = ok & np.isin(pr.case_type, THRESHOLD_TYPES)
    fixed = ok & ~thr

    def per_hfm(mask: np.ndarray, w: np.ndarray | None) -> np.ndarray:
        return np.bincount(hfm_all[mask], weights=None if w is None else w[mask], minlength=n_hfm)

    o = c.tie_order[fixed[c.tie_order]]  # fixed points summed in case-id order
    fixed_points = np.bincount(hfm_all[o], weights=pr.points[o], minlength=n_hfm)
    # integer sums: exact in float64 below 2**53 fen (90 trillion yuan)
    share = np.rint(per_hfm(ok, c.share_fen)).astype(np.int64)
    cost_t = np.rint(per_hfm(ok, c.cost_fen)).astype(np.int64)
    n_cases = per_hfm(ok, None).astype(np.int64)
    out_sel = pr.payable & ~pr.in_budget & (c.hosp >= 0) & (c.fund >= 0)
    outside = np.rint(
        np.bincount(
            c.hosp[out_sel].astype(np.int64) * N_FUNDS + c.fund[out_sel],
            weights=pr.outside_fen[out_sel],
            minlength=H * N_FUNDS,
        )
    ).astype(np.int64)

    idx = np.flatnonzero(thr)
    yp = pr.policy
    n_seg = len(yp.segments)
    if len(idx):
        wr = pr.weight_row[idx].astype(np.int64)
        W = int(wr.max()) + 1
        # a cell: hospital x fund x month x dated-value segment x readmission flag x weight row
        sub = pr.segment[idx].astype(np.int64) * 2 + pr.readmit[idx]
        raw = (hfm_all[idx] * (2 * n_seg) + sub) * W + wr
        cst = c.cost_fen[idx].astype(np.int64)
        shift = max(1, int(cst.max()).bit_length())
        if shift + max(1, int(raw.max()).bit_length()) <= 63:
            key = np.sort((raw << shift) | cst)  # one sort of packed (cell, cost) keys
            raw_s, cost_s = key >> shift, key & ((1 << shift) - 1)
        else:
            order = np.lexsort((cst, raw))
            raw_s, cost_s = raw[order], cst[order]
        first = np.r_[0, np.flatnonzero(np.diff(raw_s)) + 1]
        start = np.r_[first, len(raw_s)].astype(np.int64)
        cell_raw = raw_s[first]
        wrow = cell_raw % W
        hs = cell_raw // W
        hfm, sub_c = hs // (2 * n_seg), hs % (2 * n_seg)
        # per cell from its cases (equal inside a cell): coefficient and readmission factor
        cell_of = np.searchsorted(cell_raw, raw)  # each threshold case's cell
        # and base points, reference mean and RW (a DIP key's mean C depends on the
        # hospital's level, which the cell's hospital fixes)
        cc, fc_ = np.ones(len(cell_raw)), np.ones(len(cell_raw))
        cc[cell_of], fc_[cell_of] = pr.coefficient[idx], pr.factor[idx]
        P, m, rw = (np.zeros(len(cell_raw)) for _ in range(3))
        P[cell_of], m[cell_of], rw[cell_of] = (
            pr.base_points[idx],
            pr.mean_cost_fen[idx],
            pr.rw[idx],
        )
        del wrow
        seg_c, f_c = sub_c // 2, fc_
    else:
        cost_s = np.zeros(0, np.int64)
        start = np.zeros(1, np.int64)
        hfm = seg_c = np.zeros(0, np.int64)
        P = m = rw = cc = f_c = np.zeros(0)
    cum = np.r_[0.0, np.cumsum(cost_s.astype(np.float64))]

    pv = pr.pv
    prec = list(pv["case_types"]["precedence"])
    th = [prec.index(t) for t in ("high_cost", "low_cost") if t in prec]
    first_thr = min(th) if th else len(prec)
    fixed_before = all(prec.index(t) < first_thr for t in FIXED_TYPES if t in prec)
    built = [_thresholds(p) for p in yp.segments]
    # fixed capped cases (short stay; readmission as a case type): points before the cut / P
    fc = fixed & np.isin(pr.case_type, FIXED_CAPPED) & (pr.base_points > 0) & (pr.factor > 0)
    ratio = pr.points[fc] / (pr.base_points[fc] * pr.factor[fc]) if fc.any() else np.zeros(0)
    caps = np.array([np.inf if b["cap"] is None else b["cap"] for b in built])
    at_cap = ratio >= caps[pr.segment[fc]] * (1 - 1e-12) if len(ratio) else np.zeros(0, bool)
    return Cells(
        hfm=hfm.astype(np.int64),
        P=np.asarray(P, np.float64),
        c=np.asarray(cc, np.float64),
        m=np.asarray(m, np.float64),
        rw=np.asarray(rw, np.float64),
        seg=np.asarray(seg_c, np.int64),
        f=np.asarray(f_c, np.float64),
        start=start,
        cost=cost_s.astype(np.int64),
        cum=cum,
        fixed_points=fixed_points,
        share_fen=share,
        cost_fen=cost_t,
        cases=n_cases,
        outside_fen=outside,
        n_hosp=H,
        built_segments=built,
        starts=np.asarray(yp.starts, np.int64),
        low_first="low_cost" in prec
        and "high_cost" in prec
        and prec.index("low_cost") < prec.index("high_cost"),
        has_high="high_cost" in prec,
        has_low="low_cost" in prec,
        fixed_before_thresholds=fixed_before,
        fixed_cap_ratio=float(ratio.max()) if len(ratio) else 0.0,
        fixed_cap_bound=bool(at_cap.any()),
    )


def _check_repriceable(cells: Cells, thr: list[dict]) -> None:
    for b, t in zip(cells.built_segments, thr, strict=True):
        moved = [dict(x) for x in t["tiers"]] != b["tiers"] or float(t["low"]) != b["low"]
        if moved and not cells.fixed_before_thresholds:
            raise CellsError(
                "the precedence puts high_cost or low_cost before a fixed case type, so a "
                "changed k or low-cost factor can move cases between types: re-price the rows"
            )
        cap = t["cap"]
        if cap != b["cap"]:
            lo = np.inf if cap is None else float(cap)
            if cells.fixed_cap_bound or lo < cells.fixed_cap_ratio:
                raise CellsError(
                    f"a cap of {cap} changes short-stay (or readmission-type) points, which "
                    f"cells keep fixed (largest is {cells.fixed_cap_ratio:.4g} x P, built with "
                    f"cap {b['cap']}): re-price the rows"
                )


def cell_points(
    cells: Cells,
    tiers: list[dict] | None = None,
    low_factor: float | None = None,
    beta: float | None = None,
    cap: float | None | str = "built",
) -> np.ndarray:
    """Points of every cell under outlier thresholds, by binary search (no case rows).

    A threshold given applies to every dated-value segment; one left out keeps, per
    segment, the value the cases were priced with (``cells.built_segments``); ``cap=None``
    means no cap. Raises :class:`CellsError` when the fixed cases would not stay fixed.
    """
    thr = []
    for b in cells.built_segments:
        thr.append(
            {
                **b,  # the DIP keys (inclusive, extreme, coefficient switch) as built
                "tiers": b["tiers"] if tiers is None else tiers,
                "low": b["low"] if low_factor is None else float(low_factor),
                "beta": b["beta"] if beta is None else float(beta),
                "cap": b["cap"] if isinstance(cap, str) else cap,
            }
        )
    return _cell_points_segments(cells, thr)


def _tier_index(edges: np.ndarray, rw: np.ndarray) -> np.ndarray:
    """``np.searchsorted(edges, rw, side="left")`` (the number of edges below each RW),
    by one comparison per edge when there are few: a tier table has two or three edges,
    and a binary search per cell costs 8 ms on a million cells."""
    if len(edges) > 8:
        return np.searchsorted(edges, rw, side="left")
    idx = np.zeros(len(rw), dtype=np.intp)
    for e in edges:
        idx += rw > e
    nan = np.isnan(rw)
    if nan.any():  # searchsorted sorts NaN after every edge
        idx[nan] = len(edges)
    return idx


def cell_params(
    cells: Cells, rw: np.ndarray, P: np.ndarray, thr: list[dict]
) -> tuple[np.ndarray, ...]:
    """Per cell what :func:`_cell_kernel` prices with under thresholds ``thr[s]`` (segment
    ``s``), for base points ``P`` and RW ``rw`` (the cells' own, or a sibling's for coding
    creep): k, low, β, cap (−1: none), extreme (−1: none), inclusive, and the multipliers
    Pc (normal), Lo (low-cost × r), Hb, Hp (high-cost Hb + Hp (r − k) β). DRG: Lo = Hb =
    P c, Hp = P, strict, no extreme zone; DIP: Lo = Hb = Hp = Po (P c, or P with the
    coefficient switched off on outliers). One place, shared with the behaviour kernels."""
    nc = len(P)
    k = np.empty(nc, dtype=np.float64)
    low, beta, cap, ext = (np.empty(nc) for _ in range(4))
    incl = np.zeros(nc, dtype=np.bool_)
    Pc = P * cells.c
    # DRG: Pc r; Pc + P (r - k) β. Shared until a DIP segment writes them (read-only below).
    Lo, Hb, Hp = Pc, Pc, np.asarray(P, dtype=np.float64)
    copied = False
    for s_, t in enumerate(thr):
        t = {"inclusive": False, "extreme": None, "coef_out": True, "dip": False, **t}
        # one segment (nothing dated): whole-array fills, no per-segment mask
        sel = slice(None) if len(thr) == 1 else cells.seg == s_
        edges = np.array([x["rw_upto"] for x in t["tiers"][:-1]], dtype=np.float64)
        ks = np.array([x["k"] for x in t["tiers"]], dtype=np.float64)
        k[sel] = ks[_tier_index(edges, rw[sel])]
        low[sel], beta[sel] = float(t["low"]), float(t["beta"])
        cap[sel] = -1.0 if t["cap"] is None else float(t["cap"])
        ext[sel] = -1.0 if t["extreme"] is None else float(t["extreme"])
        incl[sel] = bool(t["inclusive"])
        if t["dip"]:  # DIP: Po r and Po + Po (r - k), Po = base x c or base alone
            if not copied:
                Lo, Hb, Hp = Pc.copy(), Pc.copy(), np.array(P, dtype=np.float64)
                copied = True
            Po = Pc[sel] if t["coef_out"] else P[sel]
            Lo[sel], Hb[sel], Hp[sel] = Po, Po, Po
    return k, low, beta, cap, ext, incl, Pc, Lo, Hb, Hp


def _cell_points_segments(cells: Cells, thr: list[dict]) -> np.ndarray:
    """Cell points with thresholds per dated-value segment (``thr[s]`` for segment ``s``)."""
    _check_repriceable(cells, thr)
    nc = len(cells.P)
    k, low, beta, cap, ext, incl, Pc, Lo, Hb, Hp = cell_params(cells, cells.rw, cells.P, thr)
    out = np.empty(nc, dtype=np.float64)
    _cell_kernel(
        cells.cost,
        cells.cum,
        cells.start,
        cells.P,
        Pc,
        Lo,
        Hb,
        Hp,
        cells.m,
        k,
        low,
        beta,
        cap,
        ext,
        incl,
        cells.f,
        cells.has_high,
        cells.has_low,
        cells.low_first,
        out,
    )
    return out


def cell_points_at(cells: Cells, pv: dict | YearPolicy) -> np.ndarray:
    """:func:`cell_points` under the thresholds of a resolved policy: a dict (in force all
    year) or a :class:`YearPolicy` whose change days are among those the cells were built
    with (else :class:`CellsError`: a change inside a built segment needs the rows)."""
    if not isinstance(pv, YearPolicy):
        return _cell_points_segments(cells, [_thresholds(pv)] * len(cells.built_segments))
    return _cell_points_segments(cells, [_thresholds(p) for p in segments_on(cells, pv)])


def segments_on(cells: Cells, yp: YearPolicy) -> list[dict]:
    """``yp``'s resolved values for each of the cells' segments (exact only when every
    change day of ``yp`` starts one of the cells' segments)."""
    if len(cells.starts) == 1 and not yp.dated:
        return [yp.segments[0]]
    new = np.asarray(yp.starts, np.int64)
    missing = [d for d in new[1:] if d not in set(cells.starts.tolist())]
    if missing:
        days = ", ".join(str(np.datetime64(int(d), "D")) for d in missing)
        raise CellsError(
            f"the policy changes case-level values on {days}, inside what the cases were "
            "priced with as one period: price the cases with this policy"
        )
    idx = np.maximum(np.searchsorted(new, cells.starts, side="right") - 1, 0)
    return [yp.segments[i] for i in idx]


@nb.njit(cache=True)
def _first(cost, a, b, m, mode, thr, Lo, Hb, Hp, k, beta):  # pragma: no cover - numba
    """First index in [a, b) whose case satisfies the (monotone in cost) predicate.

    mode 0: cost / m > thr; 1: cost / m >= thr (a high-cost case, or a case that is not
    low-cost, strict or inclusive); 2: Lo × (cost / m) > thr (a low-cost case above the
    cap); 3: Hb + Hp × (cost / m − k) × β > thr (a high-cost case above the cap).
    The expressions are those of row pricing, so both classify every case alike.
    """
    lo, hi = a, b
    while lo < hi:
        mid = (lo + hi) // 2
        r = cost[mid] / m
        if mode == 0:
            hit = r > thr
        elif mode == 1:
            hit = r >= thr
        elif mode == 2:
            hit = Lo * r > thr
        else:
            hit = Hb + Hp * (r - k) * beta > thr
        if hit:
            hi = mid
        else:
            lo = mid + 1
    return lo


@nb.njit(cache=True)
def _cell_kernel(
    cost, cum, start, P, Pc_, Lo_, Hb_, Hp_, m, k, low_, beta_, cap_, ext_, incl, f,
    has_high, has_low, low_first, out,
):  # pragma: no cover - numba
    for j in range(len(P)):
        a, b = start[j], start[j + 1]
        Pj, mj = P[j], m[j]
        low, beta, cap = low_[j], beta_[j], cap_[j]
        Pc, Lo, Hb, Hp = Pc_[j], Lo_[j], Hb_[j], Hp_[j]
        capP = cap * Pj
        if not (mj > 0.0):  # no reference cost: every case is normal (as in row pricing)
            pn = min(Pc, capP) if cap >= 0.0 else Pc
            out[j] = pn * (b - a) * f[j]
            continue
        # strict (DRG): low r < l, high r > k; inclusive (DIP.md): low r <= l, high r >= k
        lo_mode = 0 if incl[j] else 1  # the first case that is not low-cost
        hi_mode = 1 if incl[j] else 0  # the first high-cost case
        lo_end = _first(cost, a, b, mj, lo_mode, low, Lo, Hb, Hp, k[j], beta) if has_low else a
        hi_start = _first(cost, a, b, mj, hi_mode, k[j], Lo, Hb, Hp, k[j], beta) if has_high else b
        if lo_end > hi_start:  # both predicates hold: the first in the precedence wins
            if low_first:
                hi_start = lo_end
            else:
                lo_end = hi_start
        # extreme at coefficient mode (DIP): beyond ext × C, paid as normal
        ex = b
        if ext_[j] >= 0.0:
            ex = _first(cost, max(hi_start, lo_end), b, mj, 0, ext_[j], Lo, Hb, Hp, k[j], beta)
        # normal
        pn = Pc
        if cap >= 0.0 and capP < Pc:
            pn = capP
        pts = pn * (hi_start - lo_end + b - ex)
        # low-cost: Lo × cost / m, capped
        lc = lo_end
        if cap >= 0.0:
            lc = _first(cost, a, lo_end, mj, 2, capP, Lo, Hb, Hp, k[j], beta)
            pts += capP * (lo_end - lc)
        pts += Lo * (cum[lc] - cum[a]) / mj
        # high-cost: Hb + Hp (cost / m - k) β, capped
        hc = ex
        if cap >= 0.0:
            hc = _first(cost, hi_start, ex, mj, 3, capP, Lo, Hb, Hp, k[j], beta)
            pts += capP * (ex - hc)
        nh = hc - hi_start
        pts += Hb * nh + Hp * beta * ((cum[hc] - cum[hi_start]) / mj - k[j] * nh)
        out[j] = pts * f[j]  # the readmission cut, after the cap (as in row pricing)


def hfm_points(cells: Cells, pts: np.ndarray) -> np.ndarray:
    """Hospital × fund × month points: cell points summed (in cell order) plus the fixed ones."""
    return np.bincount(cells.hfm, weights=pts, minlength=cells.n_hfm) + cells.fixed_points


def by_fund(cells: Cells, per_hfm: np.ndarray) -> np.ndarray:
    """A per-hfm array as (fund, hospital, month)."""
    return per_hfm.reshape(cells.n_hosp, N_FUNDS, MONTHS).transpose(1, 0, 2)


# Pricing parameters a settlement must not silently ignore. The outlier thresholds are
# re-priced through the cells; any other difference means pricing the cases again.
PRICING_SECTIONS = (
    "points",
    "coefficients",
    "case_types",
    "statuses",
    "high_cost",
    "low_cost",
    "ungroupable",
    "per_diem",
    "special_review",
    "readmission",
    "short_stay",
    "caps",
    "plausibility",
    "calibration.fallback",
    "method",
    "dip.outliers",
    "dip.blank_ratio",
    "dip.level_min_cases",
)
REPRICED = {
    "high_cost.tiers": "tiers",
    "high_cost.beta": "beta",
    "low_cost.factor": "low",
    "caps.max_points_multiple": "cap",
    "dip.outliers.high": "tiers",
    "dip.outliers.low": "low",
}
DRG_ONLY = ("high_cost", "low_cost", "ungroupable", "calibration", "points")  # unused by dip


def _flat(tree: Any, prefix: str) -> dict[str, Any]:
    if isinstance(tree, dict) and not (prefix and _is_leaf_map(prefix)):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: tree}


def _is_leaf_map(key: str) -> bool:
    return key in ("coefficients.by_level",)


def pricing_differences(built: dict, new: dict) -> list[str]:
    """Dotted pricing keys whose values differ between two resolved policies. Under method
    dip a change of a DRG-only key (high_cost, low_cost, ungroupable, calibration) is
    refused: DIP prices with dip.* and would otherwise ignore it."""
    out = []
    for sec in PRICING_SECTIONS:
        a = _flat(_get(built, sec), sec)
        b = _flat(_get(new, sec), sec)
        out += [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if built.get("method") == "dip" and new.get("method") == "dip":
        unused = [k for k in out if k.split(".")[0] in DRG_ONLY]
        if unused:
            raise PricingError(
                f"{', '.join(unused)} do(es) not apply to method dip (its outliers are "
                "dip.outliers.*, a blank packet dip.blank_ratio, scores the catalogue's): "
                "change those instead"
            )
    return out


def _get(tree: dict, key: str) -> Any:
    node: Any = tree
    for p in key.split("."):
        node = node.get(p) if isinstance(node, dict) else None
    return node


def points_under(cells: Cells, pr: Priced, policy: dict | YearPolicy) -> np.ndarray:
    """Hospital × fund × month points of the cases under ``policy``'s pricing parameters.

    Outlier thresholds (k tiers, β, low-cost factor, cap) that differ from those the cases
    were priced with are re-priced through the cells; any other pricing parameter that
    differs raises :class:`~drgsim.pricing.core.PricingError` naming it, never ignored.
    """
    new = segments_on(cells, as_year_policy(policy))
    built = pr.policy.segments if pr.policy is not None else [pr.pv]
    seg_built = [built[min(i, len(built) - 1)] for i in range(len(cells.built_segments))]
    other = sorted(
        {k for b, n in zip(seg_built, new, strict=True) for k in pricing_differences(b, n)}
        - set(REPRICED)
    )
    if other:
        raise PricingError(
            "the policy's pricing parameter(s) "
            + ", ".join(other)
            + " differ from those the cases were priced with, and only outlier thresholds "
            "(high_cost.tiers, high_cost.beta, low_cost.factor, caps.max_points_multiple; "
            "DIP: dip.outliers.high, dip.outliers.low) "
            "re-price through the cells: price the cases with this policy"
        )
    return hfm_points(cells, _cell_points_segments(cells, [_thresholds(p) for p in new]))


def priced_under(pr: Priced, cells: Cells, policy: dict | YearPolicy) -> Priced:
    """The per-case rows under ``policy``'s outlier thresholds (the same ones
    :func:`points_under` gives the cells), so case points still explain the money."""
    new = segments_on(cells, as_year_policy(policy))
    built = pr.policy.segments if pr.policy is not None else [pr.pv]
    if all(_thresholds(a) == _thresholds(b) for a, b in zip(built, new, strict=False)):
        return pr
    return reprice_thresholds(pr, new)
