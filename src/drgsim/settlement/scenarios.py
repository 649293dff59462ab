"""Settlement over scenario × hospital × month totals, all scenarios at once.

The single simulation is the one-scenario case of this code (``settle`` calls it with
S = 1); :func:`drgsim.settlement.core.settle_fund` is the slow, obvious reference it is
tested against. Every per-scenario parameter (budget, reserve, point-value basis and
bounds, pre-settlement, assessment, corridors) is an array over scenarios.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from drgsim.pricing.money import PPM, grouped_largest_remainder, half_up, seqsum
from drgsim.settlement.core import (
    Budget,
    FundSettlement,
    FundTotals,
    budgeted_pv,
    reimbursement_ratio,
)

CHUNK = 64  # scenarios settled together


def _ppm(r: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(r, dtype=np.float64) * PPM).astype(np.int64)


def mul_half_up(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``x × r`` (integer fen × ratio, broadcast), half away from zero, exact integers."""
    xa = np.asarray(x, dtype=np.int64)
    num = np.abs(xa) * _ppm(r)
    return np.sign(xa) * ((2 * num + PPM) // (2 * PPM))


@dataclass
class ScenarioParams:
    """Settlement parameters of S scenarios, one array entry per scenario."""

    total_cost: np.ndarray  # bool: total-cost basis (else fund basis)
    floor: np.ndarray  # yuan per point, or a share of the budgeted PV if relative; NaN = none
    ceiling: np.ndarray
    rc_on: np.ndarray
    rc_keep: np.ndarray
    rc_band: np.ndarray
    rc_fund: np.ndarray
    prepay: np.ndarray  # (S,) or (S, 12): month-level (first day of each month)
    prov_fixed: np.ndarray  # yuan per point, NaN = monthly budget; (S,) or (S, 12)
    as_on: np.ndarray
    withhold: np.ndarray
    default_score: np.ndarray
    full_score: np.ndarray
    zero_score: np.ndarray
    hc_on: np.ndarray
    hc_lower: np.ndarray
    hc_upper: np.ndarray
    hc_share: np.ndarray
    hc_floor: np.ndarray  # NaN = none
    hc_keep: np.ndarray
    reserve_cap: np.ndarray  # bool: draws capped at what the reserve holds (overdraw: refuse)
    relative: np.ndarray = None  # type: ignore[assignment]  # bool: bounds are shares
    budgeted_pv: np.ndarray = None  # type: ignore[assignment]  # given, yuan; NaN = B / P
    forfeit_after: np.ndarray = None  # type: ignore[assignment]  # bool: corridor before forfeit
    # reimbursement-ratio basis (DIP): r per scenario; NaN = the total-cost or fund basis
    ratio: np.ndarray = None  # type: ignore[assignment]
    prov_budgeted: np.ndarray = None  # type: ignore[assignment]  # bool (S, 12): provisional = budgeted PV

    def __post_init__(self) -> None:
        S_ = len(self.total_cost)
        if self.relative is None:
            self.relative = np.zeros(S_, dtype=bool)
        if self.budgeted_pv is None:
            self.budgeted_pv = np.full(S_, np.nan)
        if self.forfeit_after is None:
            self.forfeit_after = np.ones(S_, dtype=bool)
        if self.ratio is None:
            self.ratio = np.full(S_, np.nan)
        if self.prov_budgeted is None:
            self.prov_budgeted = np.zeros(S_, dtype=bool)
        for name in ("prepay", "prov_fixed"):  # month-level values: one per month
            v = np.asarray(getattr(self, name), dtype=np.float64)
            setattr(self, name, np.repeat(v[:, None], 12, axis=1) if v.ndim == 1 else v)
        pb = np.asarray(self.prov_budgeted, dtype=bool)
        self.prov_budgeted = np.repeat(pb[:, None], 12, axis=1) if pb.ndim == 1 else pb

    @classmethod
    def from_policies(
        cls,
        pvs: list[dict],
        fund: str | None = None,
        months: list[list[dict]] | None = None,
        reference_pv: float | None = None,
        ratio: float | None = None,
    ) -> ScenarioParams:
        """Parameters of the policies ``pvs`` (resolved), for the fund ``fund`` (which
        picks the given budgeted point value of relative bounds). ``months[s]``: scenario
        ``s``'s policy resolved on the first day of each month, for the month-level keys
        (pre-settlement share, provisional point value); default ``pvs[s]`` all year.
        ``reference_pv``: last year's point value of the fund, for ``budgeted_pv:
        last_year`` (computed once by :func:`drgsim.settlement.simulate.last_year_pv`, the
        same for every scenario); for ``budgeted_pv: history`` (DIP) it is PV_b from the
        history. ``ratio``: the fund's reimbursement ratio from history, for the
        reimbursement-ratio basis with ``dip.point_value.ratio: history``."""
        sp = cls._from_policies(pvs, fund, reference_pv, ratio)
        if months is not None:

            def prov(p: dict) -> float:
                ps = p["presettlement"]
                fixed = ps["provisional_pv"] == "fixed" and ps["provisional_pv_yuan"] is not None
                return float(ps["provisional_pv_yuan"]) if fixed else np.nan

            sp.prepay = np.array(
                [[m["presettlement"]["prepay_share"] for m in ms] for ms in months]
            )
            sp.prov_fixed = np.array([[prov(m) for m in ms] for ms in months])
            sp.prov_budgeted = np.array(
                [[m["presettlement"]["provisional_pv"] == "budgeted" for m in ms] for ms in months]
            )
        return sp

    @classmethod
    def _from_policies(
        cls,
        pvs: list[dict],
        fund: str | None = None,
        reference_pv: float | None = None,
        ratio: float | None = None,
    ) -> ScenarioParams:

        def arr(f, dtype=np.float64):
            return np.array([f(p) for p in pvs], dtype=dtype)

        def opt(v):
            return np.nan if v is None else float(v)

        def rel(p):
            b = p["point_value"]["bounds"]
            return b["mode"] == "relative" and (b["floor"] is not None or b["ceiling"] is not None)

        def prov_b(p):
            return p["presettlement"]["provisional_pv"] == "budgeted"

        def given(p):
            if not (rel(p) or prov_b(p)) or p["point_value"]["bounds"]["budgeted_pv"] == "budget":
                return np.nan
            return budgeted_pv(p["point_value"]["bounds"], str(fund), 0, 0, 0.0, reference_pv)

        def rr(p):
            return reimbursement_ratio(p, str(fund), ratio)

        return cls(
            total_cost=arr(lambda p: p["point_value"]["basis"] == "total_cost", bool),
            floor=arr(lambda p: opt(p["point_value"]["bounds"]["floor"])),
            ceiling=arr(lambda p: opt(p["point_value"]["bounds"]["ceiling"])),
            relative=arr(rel, bool),
            budgeted_pv=arr(given),
            rc_on=arr(lambda p: p["region_corridor"]["enabled"], bool),
            rc_keep=arr(lambda p: p["region_corridor"]["surplus_keep"]),
            rc_band=arr(lambda p: p["region_corridor"]["overspend_band"]),
            rc_fund=arr(lambda p: p["region_corridor"]["overspend_fund_share"]),
            prepay=arr(lambda p: p["presettlement"]["prepay_share"]),
            prov_fixed=arr(
                lambda p: (
                    opt(p["presettlement"]["provisional_pv_yuan"])
                    if p["presettlement"]["provisional_pv"] == "fixed"
                    else np.nan
                )
            ),
            as_on=arr(lambda p: p["assessment"]["enabled"], bool),
            withhold=arr(lambda p: p["assessment"]["withhold_share"]),
            default_score=arr(lambda p: p["assessment"]["default_score"]),
            full_score=arr(lambda p: p["assessment"]["full_release_score"]),
            zero_score=arr(lambda p: p["assessment"]["zero_release_score"]),
            hc_on=arr(lambda p: p["hospital_corridor"]["enabled"], bool),
            hc_lower=arr(lambda p: p["hospital_corridor"]["lower"]),
            hc_upper=arr(lambda p: p["hospital_corridor"]["upper"]),
            hc_share=arr(lambda p: p["hospital_corridor"]["loss_share"]),
            hc_floor=arr(lambda p: opt(p["hospital_corridor"]["loss_floor"])),
            hc_keep=arr(lambda p: p["hospital_corridor"]["surplus_keep"]),
            reserve_cap=arr(lambda p: p["reserve"]["overdraw"] == "refuse", bool),
            forfeit_after=arr(lambda p: p["assessment"]["order"] == "after_corridor", bool),
            ratio=arr(rr),
            prov_budgeted=arr(prov_b, bool),
        )


def settle_scenarios(
    points: np.ndarray,
    share_fen: np.ndarray,
    cost_fen: np.ndarray,
    budget_fen: np.ndarray,
    reserve_fen: np.ndarray,
    sp: ScenarioParams,
    scores: np.ndarray | None = None,
    monthly: bool = True,
) -> dict[str, np.ndarray]:
    """Settle S scenarios of one fund-year at once.

    ``points``, ``share_fen``, ``cost_fen``: (S, H, 12) or (H, 12) (shared by all
    scenarios); ``budget_fen``, ``reserve_fen``: (S,). Returns arrays with a leading S.
    ``monthly=False`` leaves out the final payment split over months (``payment_hm``,
    ``quota_hm``), which nothing else depends on (sweeps without monthly arrays).
    """
    S_ = len(budget_fen)
    if S_ > CHUNK:  # bounded memory: blocks of scenarios, results stacked
        parts = []
        for a in range(0, S_, CHUNK):
            sl = slice(a, a + CHUNK)
            sub = ScenarioParams(**{k: v[sl] for k, v in sp.__dict__.items()})
            pick = lambda x, sl=sl: x[sl] if np.ndim(x) == 3 else x  # noqa: E731
            sc = scores[sl] if scores is not None and np.ndim(scores) == 2 else scores
            parts.append(
                settle_scenarios(
                    pick(points),
                    pick(share_fen),
                    pick(cost_fen),
                    budget_fen[sl],
                    reserve_fen[sl],
                    sub,
                    sc,
                    monthly,
                )
            )
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    shape = (S_, *np.shape(points)[-2:])
    # totals shared by every scenario (2-D inputs) are summed once and broadcast: the
    # sums run in the same order either way, so they are the same to the last bit
    shared = np.ndim(points) == 2 and np.ndim(share_fen) == 2 and np.ndim(cost_fen) == 2
    pts = np.broadcast_to(np.asarray(points, dtype=np.float64), shape)
    shr = np.broadcast_to(np.asarray(share_fen, dtype=np.int64), shape)
    cst = np.broadcast_to(np.asarray(cost_fen, dtype=np.int64), shape)
    H = pts.shape[1]
    B = np.asarray(budget_fen, dtype=np.int64)
    R = np.asarray(reserve_fen, dtype=np.int64)
    one = slice(0, 1) if shared else slice(None)
    P_h = np.broadcast_to(seqsum(pts[one], 2), (S_, H))
    S_h = np.broadcast_to(shr[one].sum(2), (S_, H))
    C_h = np.broadcast_to(cst[one].sum(2), (S_, H))
    P, S, C = seqsum(P_h, 1), S_h.sum(1), C_h.sum(1)
    tc = sp.total_cost

    # region corridor
    E = C - S
    under = sp.rc_on & (E < B)
    over = sp.rc_on & (E > B)
    D_under = E + mul_half_up(np.maximum(B - E, 0), sp.rc_keep)
    shared = np.minimum(np.maximum(E - B, 0), mul_half_up(B, sp.rc_band))
    draw = np.where(over, mul_half_up(shared, sp.rc_fund), 0)
    draw = np.where(sp.reserve_cap, np.minimum(draw, R), draw)  # overdraw: refuse
    D = np.where(under, D_under, B + draw)

    # reimbursement-ratio basis (DIP): the fund pays D / r - S, which differs from D by the
    # residual, drawn from the reserve (capped at what it holds when overdraw is refused)
    # or returned to it
    isr = ~np.isnan(sp.ratio)
    rr = np.where(isr, sp.ratio, 1.0)
    resid = np.where(isr, half_up(D / rr) - S - D, 0).astype(np.int64)
    cap_r = sp.reserve_cap & isr & (resid > np.maximum(R - draw, 0))
    resid = np.where(cap_r, np.maximum(R - draw, 0), resid)
    Dr = D + resid
    tc_like = tc | isr  # points x PV - patients' share

    # point value, both bases; floor and ceiling
    pos = P > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        pv_tc = np.where(pos, (D + S) / P / 100.0, 0.0)
        pv_f = np.where(pos, D / P / 100.0, 0.0)
        pv_r = np.where(pos, (Dr + S) / P / 100.0, 0.0)
    pv = np.where(isr, pv_r, np.where(tc, pv_tc, pv_f))
    # relative bounds: shares of the budgeted PV (given, or the budget over the points on
    # the basis, before the region corridor)
    with np.errstate(divide="ignore", invalid="ignore"):
        pv_b = np.where(pos, (B + np.where(tc, S, 0)) / P / 100.0, 0.0)
        pv_b = np.where(isr & pos, B / rr / P / 100.0, pv_b)
    pv_b = np.where(np.isnan(sp.budgeted_pv), pv_b, sp.budgeted_pv)
    pv_b = np.where(sp.relative, pv_b, np.nan)
    floor = np.where(sp.relative, sp.floor * pv_b, sp.floor)
    ceiling = np.where(sp.relative, sp.ceiling * pv_b, sp.ceiling)
    lo_hit = pos & ~np.isnan(floor) & (pv < np.nan_to_num(floor, nan=-np.inf))
    pv = np.where(lo_hit, floor, pv)
    hi_hit = pos & ~np.isnan(ceiling) & (pv > np.nan_to_num(ceiling, nan=np.inf))
    pv = np.where(hi_hit, ceiling, pv)
    clamped = lo_hit | hi_hit
    sub = np.where(tc_like, S, 0)
    T = np.where(~pos, 0, np.where(clamped, half_up(P * pv * 100.0 - sub), Dr)).astype(np.int64)

    # fund -> hospital -> month, per scenario
    P_m = np.broadcast_to(seqsum(pts[one], 1), (S_, 12))
    S_m = np.broadcast_to(shr[one].sum(1), (S_, 12))
    with np.errstate(divide="ignore", invalid="ignore"):
        num = np.where(
            isr[:, None],
            B[:, None] / 12.0 / rr[:, None],
            B[:, None] / 12.0 + np.where(tc[:, None], S_m, 0),
        )
        prov_b = np.where(P_m > 0, num / P_m / 100.0, 0.0)
    prov_b = np.where(sp.prov_budgeted, sp.budgeted_pv[:, None], prov_b)  # e.g. PV_b (DIP)
    prov = np.where(np.isnan(sp.prov_fixed), prov_b, sp.prov_fixed)
    if monthly:
        share_hm = np.where(tc_like[:, None, None], shr, 0)
        q_hm = pts * (pv * 100.0)[:, None, None] - share_hm
        q_h = seqsum(q_hm, 2)
        # monthly pre-settlement
        due = pts * prov[:, None, :] * 100.0 - share_hm
        gross = half_up(np.maximum(due, 0.0) * sp.prepay[:, None, :])
        withheld = np.where(
            sp.as_on[:, None, None], mul_half_up(gross, sp.withhold[:, None, None]), 0
        )
        prepaid = gross - withheld
        W, prepaid_h = withheld.sum(2), prepaid.sum(2)
    else:  # the same arithmetic fused over months: no (S, H, 12) array is built
        q_h, W, prepaid_h = (np.empty((S_, H)), *(np.empty((S_, H), np.int64) for _ in "wp"))
        _month_kernel(
            np.ascontiguousarray(pts if np.ndim(points) == 3 else pts[:1]),
            np.ascontiguousarray(shr if np.ndim(share_fen) == 3 else shr[:1]),
            pv * 100.0,
            np.asarray(tc_like, dtype=np.bool_),
            np.ascontiguousarray(prov, dtype=np.float64),
            np.ascontiguousarray(sp.prepay, dtype=np.float64),
            np.asarray(sp.as_on, dtype=np.bool_),
            _ppm(np.where(sp.as_on, sp.withhold, 0.0)),
            q_h,
            W,
            prepaid_h,
        )
    n_sh = S_ * H
    A = grouped_largest_remainder(
        q_h.ravel(), np.repeat(np.arange(S_), H), T, np.arange(n_sh)
    ).reshape(S_, H)
    A_hm = (
        grouped_largest_remainder(
            q_hm.ravel(), np.repeat(np.arange(n_sh), 12), A.ravel(), np.arange(n_sh * 12)
        ).reshape(S_, H, 12)
        if monthly
        else None
    )
    sc = np.broadcast_to(np.nan if scores is None else scores, (S_, H)).astype(np.float64)
    sc = np.where(np.isnan(sc), sp.default_score[:, None], sc)
    full, zero = sp.full_score[:, None], sp.zero_score[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(
            full <= zero,
            (sc >= full).astype(np.float64),
            np.clip((sc - zero) / (full - zero), 0.0, 1.0),
        )
    released = np.where(sp.as_on[:, None], half_up(W * frac), 0)
    forfeited = W - released
    annual = A - forfeited
    balance = annual - prepaid_h

    # hospital corridor: on the payment before the assessment's forfeit (forfeit_after) or
    # after it
    received = annual + S_h
    base = np.where(sp.forfeit_after[:, None], A, annual) + S_h
    on = sp.hc_on[:, None]
    lo_amt = mul_half_up(C_h, sp.hc_lower[:, None])
    hi_amt = mul_half_up(C_h, sp.hc_upper[:, None])
    floor_amt = np.where(
        np.isnan(sp.hc_floor)[:, None], 0, mul_half_up(C_h, np.nan_to_num(sp.hc_floor)[:, None])
    )
    below = on & (base < lo_amt)
    loss = np.where(below, lo_amt - np.maximum(base, floor_amt), 0)
    refund = np.where(below, mul_half_up(np.maximum(loss, 0), sp.hc_share[:, None]), 0)
    above = on & (base > hi_amt)
    claw = np.where(above, mul_half_up(base - hi_amt, 1.0 - sp.hc_keep[:, None]), 0)
    avail = np.maximum(R - draw - resid + claw.sum(1), 0)
    want = refund.sum(1)
    cut = sp.hc_on & sp.reserve_cap & (want > avail)
    if cut.any():
        rows = np.flatnonzero(cut)
        q = (refund[rows] * (avail[rows] / want[rows])[:, None]).ravel()
        refund[rows] = grouped_largest_remainder(
            q, np.repeat(np.arange(len(rows)), H), avail[rows], np.arange(len(rows) * H)
        ).reshape(len(rows), H)
    overdraw = np.maximum(draw + resid + refund.sum(1) - claw.sum(1) - R, 0)
    out = {
        "ratio_residual": resid,
        "overdraw": overdraw.astype(np.int64),
        "corridor_base": base,
        "distributable": D,
        "region_draw": draw,
        "pv_total_cost": pv_tc,
        "pv_fund": pv_f,
        "pv": pv,
        "total": T,
        "payment": A,
        "provisional_pv": prov,
        "withheld_h": W,
        "prepaid_h": prepaid_h,
        "released": released,
        "forfeited": forfeited,
        "annual": annual,
        "balance": balance,
        "refund": refund.astype(np.int64),
        "clawback": claw.astype(np.int64),
        "received": received,
        "pv_budgeted": pv_b,
        "pv_floor": floor,
        "pv_ceiling": ceiling,
        "pv_bound": np.where(hi_hit, 2, np.where(lo_hit, 1, 0)).astype(np.int8),
    }
    if monthly:
        out.update(
            payment_hm=A_hm,
            quota_hm=q_hm,
            gross_prepay_hm=gross,
            withheld_hm=withheld,
            prepaid_hm=prepaid,
        )
    return out


@nb.njit(cache=True)
def _month_kernel(
    pts, shr, pvx, tc, prov, prepay, as_on, wppm, q_h, W_h, pre_h
):  # pragma: no cover - numba
    """Per scenario × hospital, over the 12 months in order: the quota summed as
    :func:`seqsum` does, and the pre-settlement withheld and prepaid sums, by the very
    expressions (and roundings) of the monthly arrays. ``pts``, ``shr``: (S, H, 12) or
    (1, H, 12) shared; ``pvx``: the point value × 100; ``wppm``: the withheld share in
    millionths (0 where the assessment is off)."""
    S, H = q_h.shape
    stacked_p = pts.shape[0] > 1
    stacked_s = shr.shape[0] > 1
    for s in range(S):
        sp_ = s if stacked_p else 0
        ss_ = s if stacked_s else 0
        x = pvx[s]
        for h in range(H):
            q = 0.0
            w_sum = 0
            pre = 0
            for m in range(12):
                p = pts[sp_, h, m]
                sh = np.float64(shr[ss_, h, m]) if tc[s] else 0.0
                v = p * x - sh
                q = v if m == 0 else q + v
                due = p * prov[s, m] * 100.0 - sh
                g = (due if due > 0.0 else 0.0) * prepay[s, m]
                g = np.rint(g * 1e6) / 1e6  # half_up: rounded to 6 places first
                gi = np.int64(np.floor(abs(g) + 0.5))
                if g < 0.0:
                    gi = -gi
                wi = 0
                if as_on[s]:
                    num = abs(gi) * wppm[s]
                    wi = (2 * num + PPM) // (2 * PPM)
                    if gi < 0:
                        wi = -wi
                w_sum += wi
                pre += gi - wi
            q_h[s, h] = q
            W_h[s, h] = w_sum
            pre_h[s, h] = pre


def settle_fund_fast(
    tot: FundTotals,
    budget: Budget,
    pv: dict,
    year: int,
    scores: np.ndarray | None = None,
    months: list[dict] | None = None,
    reference_pv: float | None = None,
    ratio: float | None = None,
) -> FundSettlement:
    """One fund-year as the one-scenario case of :func:`settle_scenarios` (``months``: the
    policy on the first day of each month, for the month-level keys; default ``pv``)."""
    r = settle_scenarios(
        tot.points,
        tot.share_fen,
        tot.cost_fen,
        np.array([budget.budget_fen]),
        np.array([budget.reserve_fen]),
        ScenarioParams.from_policies(
            [pv], tot.fund, None if months is None else [months], reference_pv, ratio
        ),
        scores,
    )
    return FundSettlement(
        fund=tot.fund,
        year=year,
        budget=budget,
        distributable_fen=int(r["distributable"][0]),
        region_draw_fen=int(r["region_draw"][0]),
        pv_total_cost=float(r["pv_total_cost"][0]),
        pv_fund=float(r["pv_fund"][0]),
        pv=float(r["pv"][0]),
        total_fen=int(r["total"][0]),
        payment=r["payment"][0],
        payment_hm=r["payment_hm"][0],
        provisional_pv=r["provisional_pv"][0],
        gross_prepay_hm=r["gross_prepay_hm"][0],
        withheld_hm=r["withheld_hm"][0],
        prepaid_hm=r["prepaid_hm"][0],
        released=r["released"][0],
        forfeited=r["forfeited"][0],
        annual=r["annual"][0],
        balance=r["balance"][0],
        refund=r["refund"][0],
        clawback=r["clawback"][0],
        received=r["received"][0],
        totals=tot,
        quota_hm=r["quota_hm"][0],
        pv_budgeted=float(r["pv_budgeted"][0]),
        pv_floor=float(r["pv_floor"][0]),
        pv_ceiling=float(r["pv_ceiling"][0]),
        pv_bound=("", "floor", "ceiling")[int(r["pv_bound"][0])],
        overdraw_fen=int(r["overdraw"][0]),
        corridor_base=r["corridor_base"][0],
        ratio_residual_fen=int(r["ratio_residual"][0]),
    )
