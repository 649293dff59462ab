"""Cells for scenario sweeps: cases priced once into hospital × DRG × fund × month cells.

A cell keeps its cases' costs sorted with running sums, so a changed outlier threshold
(k, the low-cost factor, β, the cap) re-prices the cell by binary search without
touching case rows. Cases whose type does not depend on those thresholds (per diem,
special review, ungroupable, readmission, short stay) are kept as fixed points per
hospital × fund × month. Settlement then runs on hospital × fund × month totals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
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
    edges = np.array([t["rw_upto"] for t in tiers[:-1]], dtype=np.float64)
    ks = np.array([t["k"] for t in tiers], dtype=np.float64)
    k = ks[np.searchsorted(edges, cells.rw, side="left")]
    cost = cells.key & ((1 << SHIFT) - 1)
    out = np.empty(len(cells.P), dtype=np.float64)
    _cell_kernel(
        cost,
        cells.cum,
        cells.start,
        cells.P,
        cells.c,
        cells.m,
        k,
        float(low_factor),
        float(beta),
        -1.0 if cap is None else float(cap),
        out,
    )
    return out


@nb.njit(cache=True)
def _cell_kernel(cost, cum, start, P, c, m, k, low, beta, cap, out):  # pragma: no cover - numba
    for j in range(len(P)):
        a, b = start[j], start[j + 1]
        seg = cost[a:b]
        mj = m[j]
        lo_end = a + np.searchsorted(seg, np.ceil(low * mj) - 1, side="right")  # cost < l m
        hi_start = a + np.searchsorted(seg, np.floor(k[j] * mj), side="right")  # cost > k m
        if lo_end > hi_start:
            lo_end = hi_start
        Pc = P[j] * c[j]
        pts = Pc * (hi_start - lo_end) + Pc * (cum[lo_end] - cum[a]) / mj
        end = b
        if cap >= 0.0 and beta > 0.0:
            # a high-cost case reaches the cap when P c + P (cost/m - k) beta >= cap P
            cap_cost = (k[j] + (cap * P[j] - Pc) / (P[j] * beta)) * mj
            end = a + np.searchsorted(seg, np.floor(cap_cost), side="right")
            if end < hi_start:
                end = hi_start
            pts += cap * P[j] * (b - end)
        nh = end - hi_start
        pts += Pc * nh + P[j] * beta * ((cum[end] - cum[hi_start]) / mj - k[j] * nh)
        out[j] = pts


def hfm_points(cells: Cells, pts: np.ndarray) -> np.ndarray:
    """Hospital × fund × month points: cell points summed plus the fixed ones."""
    return np.bincount(cells.hfm, weights=pts, minlength=cells.n_hfm) + cells.fixed_points
