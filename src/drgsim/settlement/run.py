"""Settle priced cases per fund and assemble the output tables and the ledger."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from drgsim.policy.dated import YearPolicy, as_year_policy
from drgsim.pricing.cases import FUNDS
from drgsim.pricing.cells import (
    Cells,
    build_cells,
    by_fund,
    cell_points,
    hfm_points,
    points_under,
    priced_under,
)
from drgsim.pricing.core import CASE_TYPES, Priced
from drgsim.pricing.money import grouped_largest_remainder
from drgsim.settlement.core import (
    Budget,
    BudgetError,
    FundSettlement,
    FundTotals,
    ledger,
)
from drgsim.settlement.scenarios import settle_fund_fast


def cell_fund_totals(cells: Cells, points_hfm: np.ndarray | None = None) -> list[FundTotals]:
    """Hospital × month totals per fund from the cells (the settlement's input).

    ``points_hfm``: hospital × fund × month points of a scenario
    (``hfm_points(cells, cell_points(cells, ...))``); default: the thresholds the cases
    were priced with. The integer sums (cost, patients' share, cases, per diem outside the
    budget) are the cells' own.
    """
    if points_hfm is None:
        points_hfm = hfm_points(cells, cell_points(cells))
    pts, share = by_fund(cells, points_hfm), by_fund(cells, cells.share_fen)
    cost, n = by_fund(cells, cells.cost_fen), by_fund(cells, cells.cases)
    outside = cells.outside_fen.reshape(cells.n_hosp, len(FUNDS)).T
    return [
        FundTotals(
            FUNDS[f],
            np.ascontiguousarray(pts[f]),
            np.ascontiguousarray(share[f]),
            np.ascontiguousarray(cost[f]),
            np.ascontiguousarray(n[f]),
            np.ascontiguousarray(outside[f]),
        )
        for f in range(len(FUNDS))
    ]


def all_fund_totals(pr: Priced) -> list[FundTotals]:
    """Hospital × month sums per fund of the per-case points and amounts, row by row.

    The slow, obvious reference of :func:`cell_fund_totals` (which ``settle`` uses).
    """
    c = pr.cases
    H = len(c.hospital_ids)
    F = len(FUNDS)
    ok = pr.payable & (c.fund >= 0)
    inb = ok & pr.in_budget
    cell = ((c.fund.astype(np.int64) * H + c.hosp) * 12 + c.month)[inb]
    size = F * H * 12

    def bc(w: np.ndarray | None) -> np.ndarray:
        return np.bincount(cell, weights=None if w is None else w[inb], minlength=size).reshape(
            F, H, 12
        )

    share, cost, n = bc(c.share_fen), bc(c.cost_fen), bc(None)  # integer sums: exact in any order
    # float points summed in case-id order, so permuting the rows cannot move a last bit
    o = c.tie_order[inb[c.tie_order]]
    cell_o = ((c.fund.astype(np.int64) * H + c.hosp) * 12 + c.month)[o]
    pts = np.bincount(cell_o, weights=pr.points[o], minlength=size).reshape(F, H, 12)
    out_sel = ok & ~pr.in_budget
    outside = np.bincount(
        c.fund[out_sel].astype(np.int64) * H + c.hosp[out_sel],
        weights=pr.outside_fen[out_sel],
        minlength=F * H,
    ).reshape(F, H)
    # fen sums stay exact in float64 below 2**53 fen (90 trillion yuan)
    return [
        FundTotals(
            FUNDS[f],
            pts[f],
            np.rint(share[f]).astype(np.int64),
            np.rint(cost[f]).astype(np.int64),
            n[f].astype(np.int64),
            np.rint(outside[f]).astype(np.int64),
        )
        for f in range(F)
    ]


def fund_totals(pr: Priced, f: int, cells: Cells | None = None) -> FundTotals:
    """Hospital × month totals of one fund, from the cells (built here when not given)."""
    return cell_fund_totals(build_cells(pr) if cells is None else cells)[f]


@dataclass
class Settlement:
    """All funds' settlements of one year plus the per-case payments."""

    priced: Priced
    funds: list[FundSettlement]
    payment_fen: np.ndarray  # per case
    cells: Cells | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        return build_tables(self)


def case_payments(pr: Priced, fs_list: list[FundSettlement]) -> np.ndarray:
    """Split each hospital-month payment over its cases by largest remainder (ties by case id)."""
    c = pr.cases
    pay = np.where(pr.payable & ~pr.in_budget, pr.outside_fen, 0).astype(np.int64)
    H = len(c.hospital_ids)
    if not fs_list or H == 0:
        return pay
    fidx = np.array([FUNDS.index(fs.fund) for fs in fs_list])
    slot = np.full(len(FUNDS), -1, dtype=np.int64)
    slot[fidx] = np.arange(len(fs_list))
    fsl = np.where(c.fund >= 0, slot[np.maximum(c.fund, 0)], -1)
    mask = pr.payable & pr.in_budget & (fsl >= 0)
    sel = np.flatnonzero(mask)
    if len(sel) == 0:
        return pay
    pv_fen = np.array([fs.pv * 100.0 for fs in fs_list])
    sub = np.array([_basis(fs) in ("total_cost", "reimbursement_ratio") for fs in fs_list])
    fs_row = fsl[sel]
    q = pr.points[sel] * pv_fen[fs_row] - np.where(sub[fs_row], c.share_fen[sel], 0)
    cell = (fs_row * H + c.hosp[sel]) * 12 + c.month[sel]
    totals = np.concatenate([fs.payment_hm.reshape(H * 12) for fs in fs_list])
    pos = np.full(c.n, -1, dtype=np.int64)
    pos[sel] = np.arange(len(sel))
    order = pos[c.tie_order]
    pay[sel] = grouped_largest_remainder(q, cell, totals, order[order >= 0])
    return pay


def _basis(fs: FundSettlement) -> str:
    return fs.basis if hasattr(fs, "basis") else "total_cost"


def settle(
    pr: Priced,
    pv: dict | YearPolicy,
    budgets: dict[str, Budget],
    year: int,
    scores: np.ndarray | None = None,
    cells: Cells | None = None,
    reference_pv: dict[str, float] | None = None,
    totals: list[FundTotals] | None = None,
    ratio: dict[str, float] | None = None,
) -> Settlement:
    """Settle every fund that has a budget; per-case payments split from the hospital-months.

    The one-scenario case of the sweeps: the cases' points reach the settlement as
    hospital × fund × month totals of the cells (:mod:`drgsim.pricing.cells`, built here
    unless given). ``pv`` (a :class:`YearPolicy`, or one resolved dict in force all year)
    gives the settlement parameters; outlier thresholds that differ from those the cases
    were priced with are re-priced through the cells, any other pricing parameter that
    differs raises (:func:`~drgsim.pricing.cells.points_under`).
    ``reference_pv``: last year's point value per fund, for ``budgeted_pv: last_year``
    (:func:`drgsim.settlement.simulate.last_year_pv`), or PV_b from history for
    ``budgeted_pv: history`` (DIP). ``ratio``: each fund's reimbursement ratio from history
    (DIP's reimbursement-ratio basis with ``dip.point_value.ratio: history``).
    ``totals``: the hospital × month totals per fund, already summed elsewhere (a
    distributed run prices and sums per hospital partition, :mod:`drgsim.distributed`);
    ``pr`` then only names the hospitals and its cases are not paid here.
    """
    out = []
    yp = as_year_policy(pv, year)
    pv = yp.pv
    if totals is None:
        cells = build_cells(pr) if cells is None else cells
        all_tot = cell_fund_totals(cells, points_under(cells, pr, yp))
        pr = priced_under(pr, cells, yp)  # the rows under the thresholds the cells used
    else:
        all_tot = list(totals)
    for name, b in budgets.items():
        if b.budget_fen <= 0 or b.reserve_fen < 0:
            raise BudgetError(
                f"budget.{name} {year}: the budget must be positive and the reserve not "
                f"negative (budget {b.budget_fen} fen, reserve {b.reserve_fen} fen)"
            )
    for f, name in enumerate(FUNDS):
        if name not in budgets and all_tot[f].cases.sum() > 0:
            raise BudgetError(
                f"fund {name} has {int(all_tot[f].cases.sum())} payable cases but no budget"
            )
    for f, name in enumerate(FUNDS):
        if name not in budgets:
            continue
        tot = all_tot[f]
        ref = None if reference_pv is None else reference_pv.get(name)
        rr = None if ratio is None else ratio.get(name)
        fs = settle_fund_fast(tot, budgets[name], pv, year, scores, yp.months, ref, rr)
        fs.basis = pv["point_value"]["basis"]  # type: ignore[attr-defined]
        fs.budgeted_kind = pv["point_value"]["bounds"]["budgeted_pv"]  # type: ignore[attr-defined]
        out.append(fs)
    return Settlement(pr, out, case_payments(pr, out), cells)


def outlier_flags(cases: pd.DataFrame) -> pd.DataFrame:
    """The cases with 0/1 columns ``_high_cost``/``_low_cost``, so the DRG table counts them
    with a plain groupby sum (a Python lambda per group cost ~0.4 s on 1,800 DRGs)."""
    t = cases["case_type"]
    return cases.assign(_high_cost=(t == "high_cost").astype(np.int64),
                        _low_cost=(t == "low_cost").astype(np.int64))


def build_tables(st: Settlement) -> dict[str, pd.DataFrame]:
    """Per-case, per-hospital, per-month, per-DRG, per-fund tables and the ledger."""
    pr = st.priced
    c = pr.cases
    hids = c.hospital_ids
    cases = pr.frame()
    cases["payment_fen"] = st.payment_fen

    hosp_rows, month_rows, fund_rows, ledgers = [], [], [], []
    for fs in st.funds:
        t = fs.totals
        H = len(hids)
        P_h, C_h, S_h = t.points.sum(1), t.cost_fen.sum(1), t.share_fen.sum(1)
        hosp_rows.append(
            pd.DataFrame(
                {
                    "fund": fs.fund,
                    "year": fs.year,
                    "hospital_id": hids,
                    "cases": t.cases.sum(1),
                    "points": P_h,
                    "cost_fen": C_h,
                    "patient_share_fen": S_h,
                    "payment_fen": fs.payment,
                    "withheld_fen": fs.withheld_hm.sum(1),
                    "released_fen": fs.released,
                    "forfeited_fen": fs.forfeited,
                    "annual_payment_fen": fs.annual,
                    "prepaid_fen": fs.prepaid_hm.sum(1),
                    "balance_fen": fs.balance,
                    "corridor_refund_fen": fs.refund,
                    "corridor_clawback_fen": fs.clawback,
                    "per_diem_outside_fen": t.outside_fen,
                    "received_fen": fs.received + fs.refund - fs.clawback,
                }
            )
        )
        hosp_rows[-1]["surplus_fen"] = hosp_rows[-1]["received_fen"] - hosp_rows[-1]["cost_fen"]
        hh, mm = np.meshgrid(np.arange(H), np.arange(12), indexing="ij")
        month_rows.append(
            pd.DataFrame(
                {
                    "fund": fs.fund,
                    "year": fs.year,
                    "hospital_id": hids[hh.ravel()] if H else [],
                    "month": mm.ravel() + 1,
                    "cases": t.cases.ravel(),
                    "points": t.points.ravel(),
                    "provisional_pv": fs.provisional_pv[mm.ravel()],
                    "gross_prepayment_fen": fs.gross_prepay_hm.ravel(),
                    "withheld_fen": fs.withheld_hm.ravel(),
                    "prepaid_fen": fs.prepaid_hm.ravel(),
                    "final_payment_fen": fs.payment_hm.ravel(),
                }
            )
        )
        fund_rows.append(
            {
                "fund": fs.fund,
                "year": fs.year,
                "budget_fen": fs.budget.budget_fen,
                "budget_source": fs.budget.source,
                "budget_arithmetic": fs.budget.arithmetic(),
                "budget_gross_fen": fs.budget.budget_fen
                + fs.budget.reserve_fen
                + fs.budget.carve_out_fen,
                "cases": int(t.cases.sum()),
                "reserve_fen": fs.budget.reserve_fen,
                "carve_out_fen": fs.budget.carve_out_fen,
                "distributable_fen": fs.distributable_fen,
                "region_draw_fen": fs.region_draw_fen,
                "points": float(t.points.sum()),
                "patient_share_fen": int(t.share_fen.sum()),
                "cost_fen": int(t.cost_fen.sum()),
                "pv_total_cost_basis": fs.pv_total_cost,
                "pv_fund_basis": fs.pv_fund,
                "pv_used": fs.pv,
                "pv_budgeted": fs.pv_budgeted,
                # what the budgeted PV is (budget, given, last_year); "" when no bound uses it
                "pv_budgeted_source": ""
                if np.isnan(fs.pv_budgeted)
                else getattr(fs, "budgeted_kind", ""),
                "pv_floor": fs.pv_floor,
                "pv_ceiling": fs.pv_ceiling,
                "pv_bound": fs.pv_bound,
                "pv_floor_topup_fen": fs.floor_topup_fen,
                "pv_ceiling_withheld_fen": fs.ceiling_withheld_fen,
                "paid_by_points_fen": fs.total_fen,
                "corridor_refunds_fen": int(fs.refund.sum()),
                "corridor_clawbacks_fen": int(fs.clawback.sum()),
                "forfeited_fen": int(fs.forfeited.sum()),
                "reserve_overdraw_fen": fs.overdraw_fen,
                "pv_basis": _basis(fs),
                "pv_ratio_residual_fen": fs.ratio_residual_fen,
            }
        )
        ledgers.append(ledger(fs, hids))
    hospitals = pd.concat(hosp_rows, ignore_index=True) if hosp_rows else pd.DataFrame()
    if len(hospitals):
        hospitals = hospitals[
            (hospitals["cases"] > 0) | (hospitals["per_diem_outside_fen"] != 0)
        ].reset_index(drop=True)
        hospitals = _indices(hospitals, cases)
    months = pd.concat(month_rows, ignore_index=True) if month_rows else pd.DataFrame()
    if len(months):
        months = months[months["cases"] > 0].reset_index(drop=True)
    drgs = (
        outlier_flags(cases[cases["pay_status"] == "ok"])
        .groupby(["fund", "drg"], observed=True)
        .agg(
            cases=("case_id", "size"),
            points=("points", "sum"),
            payment_fen=("payment_fen", "sum"),
            cost_fen=("cost_fen", "sum"),
            base_points=("base_points", "first"),
            high_cost=("_high_cost", "sum"),
            low_cost=("_low_cost", "sum"),
        )
        .reset_index()
    )
    return {
        "cases": cases,
        "hospitals": hospitals,
        "months": months,
        "drgs": drgs,
        "funds": pd.DataFrame(fund_rows),
        "ledger": pd.concat(ledgers, ignore_index=True) if ledgers else pd.DataFrame(),
        "pay_status": summarize_pay_status(cases),
    }


def _indices(hosp: pd.DataFrame, cases: pd.DataFrame) -> pd.DataFrame:
    """CMI (mean RW), 费用消耗指数 (cost over the group means) and 时间消耗指数 (LOS over
    the group mean LOS), over each hospital's DRG-priced cases."""
    ok = cases[(cases["pay_status"] == "ok") & (cases["rw"] > 0)]
    cols = ["cmi", "cost_index", "time_index"]
    if not len(ok):
        for col in cols:
            hosp[col] = np.nan
        return hosp
    ok = ok.assign(
        exp_los=ok["mean_los"].where((ok["mean_los"] > 0) & (ok["los_days"] >= 0)),
        los=ok["los_days"].where((ok["mean_los"] > 0) & (ok["los_days"] >= 0)),
    )
    agg = ok.groupby(["fund", "hospital_id"]).agg(
        cmi=("rw", "mean"),
        cost=("cost_fen", "sum"),
        expected=("mean_cost_fen", "sum"),
        los=("los", "sum"),
        exp_los=("exp_los", "sum"),
    )
    agg["cost_index"] = agg["cost"] / agg["expected"]
    agg["time_index"] = agg["los"] / agg["exp_los"].where(agg["exp_los"] > 0)
    return hosp.merge(agg[cols].reset_index(), on=["fund", "hospital_id"], how="left")


def summarize_pay_status(cases: pd.DataFrame) -> pd.DataFrame:
    """One line per pay_status: cases and cost, so nothing leaves the money unseen."""
    g = cases.groupby("pay_status").agg(cases=("case_id", "size"), cost_fen=("cost_fen", "sum"))
    return g.reset_index().sort_values("pay_status").reset_index(drop=True)


__all__ = [
    "CASE_TYPES",
    "Settlement",
    "all_fund_totals",
    "build_tables",
    "case_payments",
    "cell_fund_totals",
    "fund_totals",
    "settle",
]
