"""Settlement: budget -> point value -> monthly pre-settlement -> annual settlement -> corridors.

Works on hospital × month totals per fund (the cells' sums), so re-settling after a
change of budget, point-value basis or corridors never touches case rows. All money is
integer fen; totals are split top-down by largest remainder (fund -> hospital -> month
-> case) so every level adds up exactly to the one above.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from drgsim.errors import DrgsimError
from drgsim.pricing.cases import FUNDS
from drgsim.pricing.money import (
    grouped_largest_remainder,
    half_up,
    mul_ratio_half_up,
    seqsum,
    yuan_to_fen,
)


class BudgetError(DrgsimError):
    """A fund's budget cannot be determined (rule source without last year's spending...)."""


@dataclass(frozen=True)
class Budget:
    """One fund's DRG budget, adjustment reserve and carve-out, in fen, with where it came from."""

    budget_fen: int
    reserve_fen: int
    carve_out_fen: int = 0
    source: str = "amount"


def fund_budget(
    bp: dict,
    fund: str,
    year: int,
    region: pd.DataFrame | None = None,
    history_spend_fen: int | None = None,
    outside_fen: int = 0,
) -> Budget:
    """The DRG budget of one fund and year from the policy's budget section.

    ``rule``: last year's ``drg_spending`` (region table, else the history cases' fund
    spending) × (1 + growth), less the reserve share and the carve-out (including what is
    paid outside the budget, e.g. per diem when it is carved out). ``amount``: as given.
    """
    carve = int(yuan_to_fen(np.array([bp["carve_out_yuan"]]))[0][0]) + int(outside_fen)
    if bp["source"] == "amount":
        if bp["amount_yuan"] is None:
            raise BudgetError(f"budget.{fund}: source is amount but amount_yuan is null")
        gross = int(yuan_to_fen(np.array([bp["amount_yuan"]]))[0][0])
        if bp["reserve_yuan"] is not None:
            reserve = int(yuan_to_fen(np.array([bp["reserve_yuan"]]))[0][0])
        else:
            reserve = int(mul_ratio_half_up(gross, bp["reserve_share"]))
        return Budget(gross - carve, reserve, carve, "amount")
    last = None
    src = ""
    if region is not None and len(region):
        col = next((c for c in ("drg_spending", "drg_spending_yuan") if c in region), None)
        missing = [c for c in ("fund", "year") if c not in region] + (
            [] if col else ["drg_spending"]
        )
        if missing:
            raise BudgetError(
                f"budget.{fund}: the region table lacks column(s) {', '.join(missing)}"
            )
        if col is not None:
            r = region[
                (region["fund"].astype(str) == fund) & (region["year"].astype(int) == year - 1)
            ]
            if len(r):
                last = int(yuan_to_fen(r[col].iloc[[0]])[0][0])
                src = f"region drg_spending {year - 1}"
    if last is None and history_spend_fen is not None and history_spend_fen > 0:
        last, src = int(history_spend_fen), f"history cases' fund spending {year - 1}"
    if last is None:
        raise BudgetError(
            f"budget.{fund}: the rule needs last year's ({year - 1}) drg_spending: give --region "
            "with fund, year, drg_spending, or history cases, or set source: amount"
        )
    gross = int(mul_ratio_half_up(last, 1.0 + bp["growth"]))
    reserve = (
        int(yuan_to_fen(np.array([bp["reserve_yuan"]]))[0][0])
        if bp["reserve_yuan"] is not None
        else int(mul_ratio_half_up(gross, bp["reserve_share"]))
    )
    return Budget(gross - reserve - carve, reserve, carve, f"rule: {src} x (1 + {bp['growth']})")


@dataclass
class FundTotals:
    """Hospital × month totals of one fund's in-budget payable cases (the settlement input)."""

    fund: str
    points: np.ndarray  # (H, 12) float
    share_fen: np.ndarray  # (H, 12) int64
    cost_fen: np.ndarray  # (H, 12) int64
    cases: np.ndarray  # (H, 12) int64
    outside_fen: np.ndarray  # (H,) int64 paid outside the budget (carve-out)


@dataclass
class FundSettlement:
    """Everything settled for one fund and year; arrays are per hospital (H) or (H, 12)."""

    fund: str
    year: int
    budget: Budget
    distributable_fen: int
    region_draw_fen: int
    pv_total_cost: float  # yuan per point
    pv_fund: float
    pv: float  # the one used
    total_fen: int  # distributed by points (after floor/ceiling)
    payment: np.ndarray  # A_h
    payment_hm: np.ndarray  # (H, 12)
    provisional_pv: np.ndarray  # (12,) yuan per point
    gross_prepay_hm: np.ndarray
    withheld_hm: np.ndarray
    prepaid_hm: np.ndarray
    released: np.ndarray
    forfeited: np.ndarray
    annual: np.ndarray  # payment after assessment
    balance: np.ndarray
    refund: np.ndarray
    clawback: np.ndarray
    received: np.ndarray
    totals: FundTotals
    quota_hm: np.ndarray = field(repr=False, default=None)
    pv_budgeted: float = np.nan  # yuan per point; NaN when no relative bound needs it
    pv_floor: float = np.nan  # the floor and ceiling in force, yuan per point (NaN: none)
    pv_ceiling: float = np.nan
    pv_bound: str = ""  # "floor" or "ceiling" when one binds

    @property
    def floor_topup_fen(self) -> int:
        """What the floor pays beyond the amount distributable by points (>= 0)."""
        return self.total_fen - self.distributable_fen if self.pv_bound == "floor" else 0

    @property
    def ceiling_withheld_fen(self) -> int:
        """What the ceiling keeps back of the amount distributable by points (>= 0)."""
        return self.distributable_fen - self.total_fen if self.pv_bound == "ceiling" else 0


def budgeted_pv(bounds: dict, fund: str, budget_fen: int, share_fen: int, points: float) -> float:
    """The budgeted point value (yuan per point) that relative bounds refer to.

    ``budgeted_pv: budget``: the fund's DRG budget B (after reserve and carve-out) over the
    year's points P on the policy's basis, before the region corridor: (B + patients'
    share) / P on the total-cost basis, B / P on the fund basis (``share_fen`` is passed
    as 0 for the fund basis). ``given``: ``budgeted_pv_yuan[fund]``, fixed in advance.
    """
    if bounds["budgeted_pv"] == "given":
        v = (bounds["budgeted_pv_yuan"] or {}).get(fund)
        if v is None:
            raise BudgetError(
                f"point_value.bounds.budgeted_pv_yuan gives no budgeted point value for fund {fund}"
            )
        return float(v)
    return (budget_fen + share_fen) / points / 100.0 if points > 0 else 0.0


def pv_bounds(
    pvp: dict, fund: str, budget_fen: int, share_fen: int, points: float
) -> tuple[float, float | None, float | None]:
    """(budgeted PV or NaN, floor, ceiling) in yuan per point for one fund-year.

    ``pvp``: the policy's ``point_value`` section. Absolute bounds are taken as they are;
    relative ones are shares of :func:`budgeted_pv`.
    """
    bd = pvp["bounds"]
    lo, hi = bd["floor"], bd["ceiling"]
    if bd["mode"] != "relative" or (lo is None and hi is None):
        return np.nan, lo, hi
    sub = share_fen if pvp["basis"] == "total_cost" else 0
    b = budgeted_pv(bd, fund, budget_fen, sub, points)
    return b, (None if lo is None else lo * b), (None if hi is None else hi * b)


def _release_fraction(score: np.ndarray, ap: dict) -> np.ndarray:
    full, zero = ap["full_release_score"], ap["zero_release_score"]
    if full <= zero:
        return (score >= full).astype(np.float64)
    return np.clip((score - zero) / (full - zero), 0.0, 1.0)


def settle_fund(
    tot: FundTotals, budget: Budget, pv: dict, year: int, scores: np.ndarray | None = None
) -> FundSettlement:
    """Settle one fund-year from its hospital × month totals (DOMAIN.md section 4).

    The slow, obvious reference of :func:`drgsim.settlement.scenarios.settle_scenarios`
    (which ``settle`` uses, one scenario at a time or many at once).
    """
    H = tot.points.shape[0]
    P_h = seqsum(tot.points, 1)
    S_h = tot.share_fen.sum(axis=1)
    C_h = tot.cost_fen.sum(axis=1)
    P, S, C = float(seqsum(P_h, 0)), int(S_h.sum()), int(C_h.sum())
    B = budget.budget_fen
    basis = pv["point_value"]["basis"]

    # region corridor: the amount distributed by points
    D, region_draw = B, 0
    rc = pv["region_corridor"]
    if rc["enabled"]:
        E = C - S  # the fund's share of the cost of the eligible cases
        if E < B:
            D = E + int(mul_ratio_half_up(B - E, rc["surplus_keep"]))
        elif E > B:
            shared = min(E - B, int(mul_ratio_half_up(B, rc["overspend_band"])))
            region_draw = int(mul_ratio_half_up(shared, rc["overspend_fund_share"]))
            D = B + region_draw

    pv_tc = (D + S) / P / 100.0 if P > 0 else 0.0
    pv_f = D / P / 100.0 if P > 0 else 0.0
    pv_used = pv_tc if basis == "total_cost" else pv_f
    pv_b, lo, hi = pv_bounds(pv["point_value"], tot.fund, B, S, P)
    clamped, bound = False, ""
    if P > 0 and lo is not None and pv_used < lo:
        pv_used, clamped, bound = lo, True, "floor"
    if P > 0 and hi is not None and pv_used > hi:
        pv_used, clamped, bound = hi, True, "ceiling"
    pv_fen = pv_used * 100.0
    sub = S if basis == "total_cost" else 0
    if P <= 0:
        T = 0
    elif clamped:
        T = int(half_up(P * pv_fen - sub))
    else:
        T = D

    # fund -> hospital -> month
    share_hm = tot.share_fen if basis == "total_cost" else np.zeros_like(tot.share_fen)
    q_hm = tot.points * pv_fen - share_hm
    q_h = seqsum(q_hm, 1)
    hid = np.arange(H)
    A = (
        grouped_largest_remainder(q_h, np.zeros(H, np.int64), np.array([T]), hid)
        if H
        else np.zeros(0, np.int64)
    )
    A_hm = grouped_largest_remainder(
        q_hm.ravel(), np.repeat(hid, 12), A, np.arange(H * 12)
    ).reshape(H, 12)

    # monthly pre-settlement
    ps = pv["presettlement"]
    P_m = seqsum(tot.points, 0)
    S_m = tot.share_fen.sum(axis=0)
    if ps["provisional_pv"] == "fixed" and ps["provisional_pv_yuan"] is not None:
        prov = np.full(12, float(ps["provisional_pv_yuan"]))
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            num = B / 12.0 + (S_m if basis == "total_cost" else 0)
            prov = np.where(P_m > 0, num / P_m / 100.0, 0.0)
    due = tot.points * prov[None, :] * 100.0 - share_hm
    gross = half_up(np.maximum(due, 0.0) * ps["prepay_share"])
    ap = pv["assessment"]
    if ap["enabled"]:
        withheld = mul_ratio_half_up(gross, ap["withhold_share"])
        sc = (
            np.full(H, ap["default_score"])
            if scores is None
            else np.where(np.isnan(scores), ap["default_score"], scores)
        )
        W = withheld.sum(axis=1)
        released = half_up(W * _release_fraction(sc, ap))
    else:
        withheld = np.zeros_like(gross)
        W = np.zeros(H, np.int64)
        released = np.zeros(H, np.int64)
    forfeited = W - released
    prepaid = gross - withheld
    annual = A - forfeited
    balance = annual - prepaid.sum(axis=1)

    # hospital corridor, on what the hospital received (fund payment + patients' share)
    received = annual + S_h
    hc = pv["hospital_corridor"]
    refund = np.zeros(H, np.int64)
    claw = np.zeros(H, np.int64)
    if hc["enabled"]:
        lo_amt = mul_ratio_half_up(C_h, hc["lower"])
        hi_amt = mul_ratio_half_up(C_h, hc["upper"])
        floor_amt = (
            mul_ratio_half_up(C_h, hc["loss_floor"])
            if hc["loss_floor"] is not None
            else np.zeros(H, np.int64)
        )
        below = received < lo_amt
        loss = np.where(below, lo_amt - np.maximum(received, floor_amt), 0)
        refund = np.where(below, mul_ratio_half_up(np.maximum(loss, 0), hc["loss_share"]), 0)
        above = received > hi_amt
        claw = np.where(above, mul_ratio_half_up(received - hi_amt, 1.0 - hc["surplus_keep"]), 0)
        avail = max(budget.reserve_fen - region_draw + int(claw.sum()), 0)
        want = int(refund.sum())
        if hc["refunds_within_reserve"] and want > avail:
            # scale down pro rata, split by largest remainder (ties by hospital order)
            refund = grouped_largest_remainder(
                refund * (avail / want), np.zeros(H, np.int64), np.array([avail]), np.arange(H)
            )
    return FundSettlement(
        fund=tot.fund,
        year=year,
        budget=budget,
        distributable_fen=int(D),
        region_draw_fen=int(region_draw),
        pv_total_cost=pv_tc,
        pv_fund=pv_f,
        pv=pv_used,
        total_fen=int(T),
        payment=A,
        payment_hm=A_hm,
        provisional_pv=prov,
        gross_prepay_hm=gross,
        withheld_hm=withheld,
        prepaid_hm=prepaid,
        released=released,
        forfeited=forfeited,
        annual=annual,
        balance=balance,
        refund=refund.astype(np.int64),
        clawback=claw.astype(np.int64),
        received=received,
        totals=tot,
        quota_hm=q_hm,
        pv_budgeted=pv_b,
        pv_floor=np.nan if lo is None else lo,
        pv_ceiling=np.nan if hi is None else hi,
        pv_bound=bound,
    )


def ledger(fs: FundSettlement, hospital_ids: np.ndarray) -> pd.DataFrame:
    """The journal of one fund-year: signed fen per line; sources +, uses -; sums to 0.

    Lines: ``budget`` (+B), ``reserve`` (+R), ``carve_out`` (+X) are sources; each
    hospital's monthly ``prepayment`` and ``annual_balance``, its ``assessment_forfeit``
    (kept by the fund), ``corridor_refund`` (from the reserve) and ``corridor_clawback`` (+,
    back to the reserve), ``per_diem_outside`` payments; ``pv_floor_topup`` (+, from the
    fund beyond the DRG budget: what paying at the point-value floor costs over the amount
    distributable by points) or ``pv_ceiling_withheld`` (−, kept by the fund: what the
    ceiling holds back of it); ``budget_remaining`` (B plus region draws and the floor's
    top-up, less the ceiling's withholding, less the final PV × all points, less the
    patients' share on the total-cost basis) and ``reserve_remaining`` (R less refunds and
    region draws, plus clawbacks).
    """
    rows: list[tuple] = []
    f, y = fs.fund, fs.year
    B, R, X = fs.budget.budget_fen, fs.budget.reserve_fen, int(fs.totals.outside_fen.sum())

    def add(
        line: str, account: str, amount: int, month: int | None = None, hosp: str | None = None
    ) -> None:
        rows.append((f, y, month, line, account, hosp, int(amount)))

    add("budget", "drg_budget", B)
    add("reserve", "reserve", R)
    if X:
        add("carve_out", "carve_out", X)
    H = len(hospital_ids)
    for h in range(H):
        hid = str(hospital_ids[h])
        for mo in range(12):
            v = int(fs.prepaid_hm[h, mo])
            if v:
                add("prepayment", "hospital", -v, mo + 1, hid)
        add("annual_balance", "hospital", -int(fs.balance[h]), None, hid)
        if fs.forfeited[h]:
            add("assessment_forfeit", "fund", -int(fs.forfeited[h]), None, hid)
        if fs.refund[h]:
            add("corridor_refund", "hospital", -int(fs.refund[h]), None, hid)
        if fs.clawback[h]:
            add("corridor_clawback", "hospital", int(fs.clawback[h]), None, hid)
        if fs.totals.outside_fen[h]:
            add("per_diem_outside", "hospital", -int(fs.totals.outside_fen[h]), None, hid)
    if fs.region_draw_fen:  # a transfer: out of the reserve, into the DRG budget
        add("region_corridor_draw", "reserve", -fs.region_draw_fen)
        add("region_corridor_draw", "drg_budget", fs.region_draw_fen)
    up, held = fs.floor_topup_fen, fs.ceiling_withheld_fen
    if fs.pv_bound == "floor":  # the fund pays beyond the DRG budget to hold the floor
        add("pv_floor_topup", "fund", up)
    if fs.pv_bound == "ceiling":  # the fund keeps what the ceiling withholds
        add("pv_ceiling_withheld", "fund", -held)
    # what remains, each from its own parts
    add("budget_remaining", "drg_budget", -(B + fs.region_draw_fen + up - held - fs.total_fen))
    add(
        "reserve_remaining",
        "reserve",
        -(R - int(fs.refund.sum()) - fs.region_draw_fen + int(fs.clawback.sum())),
    )
    return pd.DataFrame(
        rows, columns=["fund", "year", "month", "line", "account", "hospital_id", "amount_fen"]
    ).astype({"month": "Int16", "amount_fen": "int64"})


FUND_INDEX = {f: i for i, f in enumerate(FUNDS)}
