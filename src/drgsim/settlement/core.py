"""Settlement: budget -> point value -> monthly pre-settlement -> annual settlement -> corridors.

Works on hospital × month totals per fund (the cells' sums), so re-settling after a
change of budget, point-value basis or corridors never touches case rows. All money is
integer fen; totals are split top-down by largest remainder (fund -> hospital -> month
-> case) so every level adds up exactly to the one above.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from drgsim.errors import DrgsimError
from drgsim.pricing.cases import FUND_ALIASES, FUNDS
from drgsim.pricing.money import (
    grouped_largest_remainder,
    half_up,
    mul_ratio_half_up,
    seqsum,
    yuan_to_fen,
)


class BudgetError(DrgsimError):
    """A fund's budget cannot be determined from the source its policy names, or is not positive."""


class EmptyFundWarning(UserWarning):
    """A fund has no cases in the simulated year: it is settled with zeros."""


def _fmt(fen: int) -> str:
    """Money for the budget arithmetic: millions of yuan as ``143.13M``, else yuan."""
    y = fen / 100.0
    if fen == 0:
        return "0"
    return f"{y / 1e6:,.2f}M" if abs(y) >= 1e6 else f"{y:,.2f}"


@dataclass(frozen=True)
class Budget:
    """One fund's DRG budget, adjustment reserve and carve-out, in fen, with where it came from.

    ``budget_fen`` = ``gross_fen`` − ``reserve_fen`` − ``carve_out_fen``; ``gross_fen`` is
    last year's spending × (1 + growth) (``region_table``, ``history``) or ``amount_yuan``.
    """

    budget_fen: int
    reserve_fen: int
    carve_out_fen: int = 0
    source: str = "amount"
    gross_fen: int | None = None  # before the reserve and the carve-out
    base_fen: int | None = None  # last year's spending the growth applies to (None: amount)
    growth: float = 0.0
    base_label: str = ""  # e.g. "drg_spending 2023" or "amount_yuan"
    reserve_label: str = ""  # e.g. "5%" or "given"

    def arithmetic(self) -> str:
        """The budget as arithmetic with its inputs, e.g. ``drg_spending 2023 143.13M × 1.05
        = 150.29M − reserve 5% 7.51M − carve-out 0 = 142.77M``."""
        gross = self.budget_fen + self.reserve_fen + self.carve_out_fen
        if self.gross_fen is not None:
            gross = self.gross_fen
        head = self.base_label or self.source
        if self.base_fen is not None:
            head = f"{head} {_fmt(self.base_fen)} × {1 + self.growth:g} = {_fmt(gross)}"
        else:
            head = f"{head} {_fmt(gross)}"
        res = f"reserve {self.reserve_label} {_fmt(self.reserve_fen)}".replace("  ", " ")
        return f"{head} − {res} − carve-out {_fmt(self.carve_out_fen)} = {_fmt(self.budget_fen)}"


BUDGET_SOURCES = ("region_table", "amount", "history")


@functools.lru_cache(maxsize=4096)
def _fen(x: float) -> int:
    # cached: a sweep asks for the same few amounts (carve-out 0...) thousands of times
    return int(yuan_to_fen(np.array([x]))[0][0])


def region_spending_fen(region: pd.DataFrame | None, fund: str, year: int) -> int | None:
    """The region table's ``drg_spending`` of one fund and year in fen (None: no such row).

    Raises :class:`BudgetError` when the table lacks a column or holds the row twice.
    """
    if region is None:
        return None
    col = next((c for c in ("drg_spending", "drg_spending_yuan") if c in region), None)
    missing = [c for c in ("fund", "year") if c not in region] + ([] if col else ["drg_spending"])
    if missing:
        raise BudgetError(f"the region table lacks column(s) {', '.join(missing)}")
    yrs = pd.to_numeric(region["year"], errors="coerce")
    # fund names as the cases read them (职工/居民, any case); an unknown one stops
    code = region["fund"].astype("string").str.strip().str.lower().map(FUND_ALIASES)
    if code.isna().any():
        bad = sorted({str(x) for x in region["fund"][code.isna()]})
        raise BudgetError(
            f"the region table has fund(s) {', '.join(bad)}: not {' or '.join(FUNDS)} "
            "(职工/居民 accepted)"
        )
    r = region[(code == FUNDS.index(fund)).to_numpy() & (yrs == year).to_numpy()]
    if len(r) > 1:
        raise BudgetError(f"the region table has {len(r)} rows for fund {fund}, year {year}")
    if not len(r):
        return None
    v = pd.to_numeric(r[col], errors="coerce")
    if v.isna().any():
        raise BudgetError(
            f"the region table's drg_spending of fund {fund}, year {year} is not a number"
        )
    return int(yuan_to_fen(v)[0][0])


def fund_budget(
    bp: dict,
    fund: str,
    year: int,
    region: pd.DataFrame | None = None,
    history_spend_fen: int | None = None,
    outside_fen: int = 0,
) -> Budget:
    """The DRG budget of one fund and year from exactly the source the policy names.

    ``region_table``: the region table's ``drg_spending`` of last year; ``history``:
    ``history_spend_fen``, the fund's share of last year's clean cases (see
    :func:`drgsim.settlement.simulate.history_spending`); both × (1 + growth). ``amount``:
    ``amount_yuan``. From that gross (DOMAIN.md §4) the reserve (``reserve_yuan``, else
    ``reserve_share`` × gross) and the carve-out (``carve_out_yuan`` plus what is paid
    outside the budget, e.g. per diem carved out) are taken. A missing or non-positive
    input, or a budget that is not positive, raises :class:`BudgetError` naming the fund,
    the year and what to provide: never a fallback to another source.
    """
    src = bp["source"]
    where = f"budget.{fund} {year}"
    carve = _fen(bp["carve_out_yuan"]) + int(outside_fen)
    base: int | None = None
    growth = float(bp["growth"])
    if src == "amount":
        if bp["amount_yuan"] is None or bp["amount_yuan"] <= 0:
            raise BudgetError(
                f"{where}: source amount needs a positive amount_yuan (the gross DRG budget "
                f"before the reserve), got {bp['amount_yuan']}"
            )
        gross, label, growth = _fen(bp["amount_yuan"]), "amount_yuan", 0.0
    elif src == "region_table":
        base = region_spending_fen(region, fund, year - 1)
        if base is None:
            raise BudgetError(
                f"{where}: source region_table needs drg_spending of fund {fund} for "
                f"{year - 1}: give --region with a row (fund {fund}, year {year - 1}, "
                "drg_spending), or set the source to amount or history"
            )
        label = f"drg_spending {year - 1}"
    elif src == "history":
        base = history_spend_fen
        if base is None:
            raise BudgetError(
                f"{where}: source history needs the {year - 1} cases of fund {fund}: give "
                f"cases discharged in {year - 1}, or set the source to region_table or amount"
            )
        label = f"history cases' fund spending {year - 1}"
    else:
        raise BudgetError(f"{where}: unknown budget source {src!r} ({', '.join(BUDGET_SOURCES)})")
    if base is not None:
        if base <= 0:
            raise BudgetError(
                f"{where}: last year's ({year - 1}) spending of fund {fund} from {src} is "
                f"{_fmt(base)} yuan: it must be positive"
            )
        gross = int(mul_ratio_half_up(base, 1.0 + growth))
    if bp["reserve_yuan"] is not None:
        reserve, rlabel = _fen(bp["reserve_yuan"]), "given"
    else:
        reserve = int(mul_ratio_half_up(gross, bp["reserve_share"]))
        rlabel = f"{bp['reserve_share'] * 100:g}%"
    b = Budget(gross - reserve - carve, reserve, carve, src, gross, base, growth, label, rlabel)
    if b.budget_fen <= 0:
        raise BudgetError(f"{where}: the budget is not positive: {b.arithmetic()}")
    return b


@dataclass
class FundTotals:
    """Hospital × month totals of one fund's in-budget payable cases (the settlement input)."""

    fund: str
    points: np.ndarray  # (H, 12) float
    share_fen: np.ndarray  # (H, 12) int64
    cost_fen: np.ndarray  # (H, 12) int64
    cases: np.ndarray  # (H, 12) int64
    outside_fen: np.ndarray  # (H,) int64 paid outside the budget (carve-out)

    @classmethod
    def zeros(cls, fund: str, H: int) -> FundTotals:
        """Zero totals of ``H`` hospitals (a distributed run adds its partitions onto them)."""
        z = np.zeros((H, 12), np.int64)
        return cls(fund, np.zeros((H, 12)), z.copy(), z.copy(), z.copy(), np.zeros(H, np.int64))


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
    overdraw_fen: int = 0  # what the fund pays beyond the reserve (reserve.overdraw: fund_pays)
    corridor_base: np.ndarray = field(repr=False, default=None)  # what the corridor judged
    # reimbursement-ratio basis (DIP): D / r - patients' share - D, from (+) or back to (-)
    # the reserve; 0 on the other bases
    ratio_residual_fen: int = 0

    @property
    def floor_topup_fen(self) -> int:
        """What the floor pays beyond the amount distributable by points (>= 0)."""
        d = self.distributable_fen + self.ratio_residual_fen
        return self.total_fen - d if self.pv_bound == "floor" else 0

    @property
    def ceiling_withheld_fen(self) -> int:
        """What the ceiling keeps back of the amount distributable by points (>= 0)."""
        d = self.distributable_fen + self.ratio_residual_fen
        return d - self.total_fen if self.pv_bound == "ceiling" else 0


def budgeted_pv(
    bounds: dict,
    fund: str,
    budget_fen: int,
    share_fen: int,
    points: float,
    reference: float | None = None,
) -> float:
    """The budgeted point value (yuan per point) that relative bounds refer to.

    ``budgeted_pv: budget``: the fund's DRG budget B (after reserve and carve-out) over the
    year's points P on the policy's basis, before the region corridor: (B + patients'
    share) / P on the total-cost basis, B / P on the fund basis (``share_fen`` is passed
    as 0 for the fund basis). ``given``: ``budgeted_pv_yuan[fund]``, fixed in advance.
    ``last_year``: ``reference``, last year's point value (:func:`drgsim.settlement.
    simulate.last_year_pv`), computed once and passed in.
    """
    kind = bounds["budgeted_pv"]
    if kind == "history":
        if reference is None or not np.isfinite(reference) or reference <= 0:
            raise BudgetError(
                f"point_value.bounds.budgeted_pv: history needs PV_b of fund {fund} from the "
                "history (year-weighted cost over year-weighted score, "
                "drgsim.dip.price.budget_point_value): give history years, or budgeted_pv: given"
            )
        return float(reference)
    if kind == "given":
        v = (bounds["budgeted_pv_yuan"] or {}).get(fund)
        if v is None:
            raise BudgetError(
                f"point_value.bounds.budgeted_pv_yuan gives no budgeted point value for fund {fund}"
            )
        return float(v)
    if kind == "last_year":
        if reference is None or not np.isfinite(reference) or reference <= 0:
            raise BudgetError(
                f"point_value.bounds.budgeted_pv: last_year needs last year's point value of "
                f"fund {fund}: simulate computes it from last year's cases and the region "
                "table's drg_spending of that year (drgsim.settlement.last_year_pv)"
            )
        return float(reference)
    return (budget_fen + share_fen) / points / 100.0 if points > 0 else 0.0


def reimbursement_ratio(pv: dict, fund: str, history: float | None = None) -> float:
    """r of the reimbursement-ratio basis (NaN on the other bases): the policy's number, or
    with ``dip.point_value.ratio: history`` the fund's ratio from history (``history``:
    :func:`drgsim.dip.price.history_ratio`); a missing or non-positive r raises."""
    if pv["point_value"]["basis"] != "reimbursement_ratio":
        return np.nan
    given = pv.get("dip", {}).get("point_value", {}).get("ratio", "history")
    r = history if given == "history" else given
    if r is None or not np.isfinite(r) or not 0 < r <= 1:
        src = "from history" if given == "history" else "given"
        raise BudgetError(
            f"point_value.basis reimbursement_ratio, fund {fund}: the reimbursement ratio "
            f"{src} is {r}: it must be in (0, 1] (give history years with costs and patients' "
            "shares, or a number in dip.point_value.ratio)"
        )
    return float(r)


def pv_bounds(
    pvp: dict,
    fund: str,
    budget_fen: int,
    share_fen: int,
    points: float,
    reference: float | None = None,
    ratio: float = np.nan,
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
    if pvp["basis"] == "reimbursement_ratio" and bd["budgeted_pv"] == "budget":
        b = budget_fen / ratio / points / 100.0 if points > 0 else 0.0
        return b, (None if lo is None else lo * b), (None if hi is None else hi * b)
    b = budgeted_pv(bd, fund, budget_fen, sub, points, reference)
    return b, (None if lo is None else lo * b), (None if hi is None else hi * b)


def _release_fraction(score: np.ndarray, ap: dict) -> np.ndarray:
    full, zero = ap["full_release_score"], ap["zero_release_score"]
    if full <= zero:
        return (score >= full).astype(np.float64)
    return np.clip((score - zero) / (full - zero), 0.0, 1.0)


def settle_fund(
    tot: FundTotals,
    budget: Budget,
    pv: dict,
    year: int,
    scores: np.ndarray | None = None,
    reference_pv: float | None = None,
    ratio: float | None = None,
) -> FundSettlement:
    """Settle one fund-year from its hospital × month totals (DOMAIN.md section 4).

    Reimbursement-ratio basis (DIP.md): PV = (D / r) / points, the fund paying points × PV
    − patients' share = D / r − S; the difference from D is the ratio residual, drawn from
    the reserve (an overspend, capped at what the reserve holds when overdraw is refused)
    or returned to it. ``ratio``: the fund's r from history (``dip.point_value.ratio:
    history``).

    The slow, obvious reference of :func:`drgsim.settlement.scenarios.settle_scenarios`
    (which ``settle`` uses, one scenario at a time or many at once). ``reference_pv``:
    last year's point value for ``budgeted_pv: last_year``.
    """
    H = tot.points.shape[0]
    P_h = seqsum(tot.points, 1)
    S_h = tot.share_fen.sum(axis=1)
    C_h = tot.cost_fen.sum(axis=1)
    P, S, C = float(seqsum(P_h, 0)), int(S_h.sum()), int(C_h.sum())
    B, R = budget.budget_fen, budget.reserve_fen
    basis = pv["point_value"]["basis"]
    refuse = pv["reserve"]["overdraw"] == "refuse"  # draws capped at what the reserve holds

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
            if refuse:
                region_draw = min(region_draw, R)
            D = B + region_draw

    r = reimbursement_ratio(pv, tot.fund, ratio)
    isr = basis == "reimbursement_ratio"
    resid = 0
    if isr:
        resid = int(half_up(D / r)) - S - D
        if refuse and resid > max(R - region_draw, 0):
            resid = max(R - region_draw, 0)
    Dr = D + resid
    pv_tc = (D + S) / P / 100.0 if P > 0 else 0.0
    pv_f = D / P / 100.0 if P > 0 else 0.0
    pv_used = pv_tc if basis == "total_cost" else pv_f
    if isr:
        pv_used = (Dr + S) / P / 100.0 if P > 0 else 0.0
    pv_b, lo, hi = pv_bounds(pv["point_value"], tot.fund, B, S, P, reference_pv, r)
    clamped, bound = False, ""
    if P > 0 and lo is not None and pv_used < lo:
        pv_used, clamped, bound = lo, True, "floor"
    if P > 0 and hi is not None and pv_used > hi:
        pv_used, clamped, bound = hi, True, "ceiling"
    pv_fen = pv_used * 100.0
    tc_like = basis in ("total_cost", "reimbursement_ratio")
    sub = S if tc_like else 0
    if P <= 0:
        T = 0
    elif clamped:
        T = int(half_up(P * pv_fen - sub))
    else:
        T = Dr

    # fund -> hospital -> month
    share_hm = tot.share_fen if tc_like else np.zeros_like(tot.share_fen)
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
    elif ps["provisional_pv"] == "budgeted":  # e.g. PV_b from history (DIP)
        prov = np.full(12, budgeted_pv(pv["point_value"]["bounds"], tot.fund, 0, 0, 0.0, reference_pv))
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            num = B / 12.0 / r if isr else B / 12.0 + (S_m if basis == "total_cost" else 0)
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

    # hospital corridor, on what the hospital received (fund payment + patients' share):
    # before the assessment's forfeit (after_corridor: the forfeit is never refunded) or
    # after it (before_corridor)
    received = annual + S_h
    after = ap["order"] == "after_corridor"
    base = (A if after else annual) + S_h
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
        below = base < lo_amt
        loss = np.where(below, lo_amt - np.maximum(base, floor_amt), 0)
        refund = np.where(below, mul_ratio_half_up(np.maximum(loss, 0), hc["loss_share"]), 0)
        above = base > hi_amt
        claw = np.where(above, mul_ratio_half_up(base - hi_amt, 1.0 - hc["surplus_keep"]), 0)
        avail = max(R - region_draw - resid + int(claw.sum()), 0)
        want = int(refund.sum())
        if refuse and want > avail:
            # scale down pro rata, split by largest remainder (ties by hospital order)
            refund = grouped_largest_remainder(
                refund * (avail / want), np.zeros(H, np.int64), np.array([avail]), np.arange(H)
            )
    # what the fund pays beyond the reserve (only when draws are not capped)
    overdraw = max(region_draw + resid + int(refund.sum()) - int(claw.sum()) - R, 0)
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
        overdraw_fen=int(overdraw),
        corridor_base=base,
        ratio_residual_fen=int(resid),
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
    patients' share on the total-cost basis); ``pv_ratio_residual`` (reimbursement-ratio
    basis, DIP: what paying D / r − patients' share takes beyond D, a transfer from the
    reserve to the budget; negative when it pays less, returned to the reserve);
    ``reserve_overdraw`` (+, the fund pays what
    region draws and refunds take beyond the reserve, ``reserve.overdraw: fund_pays``) and
    ``reserve_remaining`` (R less refunds and region draws, plus clawbacks and the
    overdraw).
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
    rr = fs.ratio_residual_fen
    if rr:  # a transfer: out of the reserve into the budget (overspend), or back (underspend)
        add("pv_ratio_residual", "reserve", -rr)
        add("pv_ratio_residual", "drg_budget", rr)
    up, held = fs.floor_topup_fen, fs.ceiling_withheld_fen
    if fs.pv_bound == "floor":  # the fund pays beyond the DRG budget to hold the floor
        add("pv_floor_topup", "fund", up)
    if fs.pv_bound == "ceiling":  # the fund keeps what the ceiling withholds
        add("pv_ceiling_withheld", "fund", -held)
    if fs.overdraw_fen:  # the fund pays what the draws take beyond the reserve
        add("reserve_overdraw", "fund", fs.overdraw_fen)
    # what remains, each from its own parts
    add(
        "budget_remaining", "drg_budget", -(B + fs.region_draw_fen + rr + up - held - fs.total_fen)
    )
    add(
        "reserve_remaining",
        "reserve",
        -(
            R
            - int(fs.refund.sum())
            - fs.region_draw_fen
            - rr
            + int(fs.clawback.sum())
            + fs.overdraw_fen
        ),
    )
    return pd.DataFrame(
        rows, columns=["fund", "year", "month", "line", "account", "hospital_id", "amount_fen"]
    ).astype({"month": "Int16", "amount_fen": "int64"})


FUND_INDEX = {f: i for i, f in enumerate(FUNDS)}
