"""Cells for scenario sweeps: cases priced once into hospital × DRG × fund × month cells.

A cell keeps its cases' costs sorted with running sums, so a changed outlier threshold
(k, the low-cost factor, β, the cap) re-prices the cell by binary search without
touching case rows. Cases whose type does not depend on those thresholds (per diem,
special review, ungroupable, readmission, short stay) are kept as fixed points per
hospital × fund × month. Settlement then runs on hospital × fund × month totals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drgsim.pricing.core import CASE_TYPES, Priced

SHIFT = 40  # cost fen below 2**40 (11 billion yuan) per case
THRESHOLD_TYPES = [CASE_TYPES.index(t) for t in ("normal", "high_cost", "low_cost")]


@dataclass
class Cells:
    """Sorted per-cell costs and what re-pricing a cell needs."""

    hfm: np.ndarray  # per cell: (hospital * 2 + fund) * 12 + month
    P: np.ndarray  # base points
    c: np.ndarray  # hospital coefficient
    m: np.ndarray  # reference mean cost (fen)
    rw: np.ndarray
    start: np.ndarray  # offsets into key/cum (len cells + 1)
    key: np.ndarray  # (cell << SHIFT) | cost, sorted
    cum: np.ndarray  # running sum of sorted costs, with a leading 0
    fixed_points: np.ndarray  # per hospital × fund × month: points of threshold-free cases
    n_hfm: int

    @property
    def n(self) -> np.ndarray:
        return np.diff(self.start)


def build_cells(pr: Priced) -> Cells:
    """Group payable in-budget cases into cells once (one sort)."""
    c = pr.cases
    H = len(c.hospital_ids)
    n_hfm = H * 2 * 12
    ok = pr.payable & pr.in_budget
    thr = ok & np.isin(pr.case_type, THRESHOLD_TYPES)
    hfm_all = (c.hosp.astype(np.int64) * 2 + c.fund) * 12 + c.month
    fixed = np.bincount(hfm_all[ok & ~thr], weights=pr.points[ok & ~thr], minlength=n_hfm)
    idx = np.flatnonzero(thr)
    W = int(pr.weight_row.max()) + 1 if len(idx) else 1
    raw = hfm_all[idx] * W + pr.weight_row[idx]
    cell_keys, cell = np.unique(raw, return_inverse=True)
    key = (cell.astype(np.int64) << SHIFT) | c.cost_fen[idx]
    order = np.argsort(key, kind="stable")
    key = key[order]
    srt = idx[order]
    first = np.r_[0, np.flatnonzero(np.diff(key >> SHIFT)) + 1]
    start = np.r_[first, len(key)]
    cum = np.r_[0.0, np.cumsum(c.cost_fen[srt].astype(np.float64))]
    f = srt[first]
    return Cells(
        hfm=(cell_keys // W).astype(np.int64),
        P=pr.base_points[f],
        c=pr.coefficient[f],
        m=pr.mean_cost_fen[f],
        rw=pr.rw[f],
        start=start,
        key=key,
        cum=cum,
        fixed_points=fixed,
        n_hfm=n_hfm,
    )


def cell_points(
    cells: Cells, tiers: list[dict], low_factor: float, beta: float, cap: float | None
) -> np.ndarray:
    """Points of every cell under outlier thresholds, by binary search (no case rows)."""
    ncell = len(cells.P)
    cid = np.arange(ncell, dtype=np.int64) << SHIFT
    edges = np.array([t["rw_upto"] for t in tiers[:-1]], dtype=np.float64)
    ks = np.array([t["k"] for t in tiers], dtype=np.float64)
    k = ks[np.searchsorted(edges, cells.rw, side="left")]
    s0, s1 = cells.start[:-1], cells.start[1:]

    def count_le(x: np.ndarray) -> np.ndarray:  # cases with cost <= x (x integer fen)
        x = np.clip(x, -1, (1 << SHIFT) - 1)
        return np.where(
            x < 0,
            s0,
            np.searchsorted(cells.key, cid | np.maximum(x, 0).astype(np.int64), side="right"),
        )

    m = cells.m
    lo_end = count_le(np.ceil(low_factor * m).astype(np.int64) - 1)  # cost < l m
    hi_start = count_le(np.floor(k * m).astype(np.int64))  # cost > k m from here
    lo_end = np.minimum(lo_end, hi_start)
    Pc = cells.P * cells.c
    n_mid = hi_start - lo_end
    sum_low = cells.cum[lo_end] - cells.cum[s0]
    pts = Pc * n_mid + Pc * sum_low / m
    if cap is None:
        n_high = s1 - hi_start
        sum_high = cells.cum[s1] - cells.cum[hi_start]
        pts += Pc * n_high + cells.P * beta * (sum_high / m - k * n_high)
    else:
        # a high-cost case reaches the cap when P c + P (cost/m - k) beta >= cap P
        cap_cost = np.where(
            beta > 0, (k + (cap * cells.P - Pc) / np.maximum(cells.P * beta, 1e-300)) * m, np.inf
        )
        cap_start = np.maximum(
            count_le(np.floor(np.minimum(cap_cost, 2.0**SHIFT)).astype(np.int64)), hi_start
        )
        n_high = cap_start - hi_start
        sum_high = cells.cum[cap_start] - cells.cum[hi_start]
        pts += Pc * n_high + cells.P * beta * (sum_high / m - k * n_high)
        pts += cap * cells.P * (s1 - cap_start)
    return pts


def hfm_points(cells: Cells, pts: np.ndarray) -> np.ndarray:
    """Hospital × fund × month points: cell points summed plus the fixed ones."""
    return np.bincount(cells.hfm, weights=pts, minlength=cells.n_hfm) + cells.fixed_points
