"""Settlement by hand: each corridor branch, region corridor, assessment, PV floor; properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drgsim.policy import load_policy
from drgsim.pricing import Weights, prepare_cases, price
from drgsim.pricing.fake import fake_cases, fake_hospitals, fake_weights
from drgsim.settlement import Budget, FundTotals, ledger, settle, settle_fund

FUND_BASIS = {
    "point_value.basis": "fund",
    "assessment.enabled": False,
    "hospital_corridor.enabled": False,
    "hospital_corridor.loss_floor": None,
}


def totals(points, cost, share=(0, 0)) -> FundTotals:
    """Two hospitals, everything in January."""
    H = len(points)
    z = np.zeros((H, 12))
    p, c, s = z.copy(), z.copy().astype(np.int64), z.copy().astype(np.int64)
    p[:, 0], c[:, 0], s[:, 0] = points, cost, share
    return FundTotals("employee", p, s, c, np.ones((H, 12), np.int64), np.zeros(H, np.int64))


def pv(**over):
    return load_policy().with_values({**FUND_BASIS, **over}).at(2024)


def check_ledger(fs):
    led = ledger(fs, np.array(["H1", "H2"]))
    assert led["amount_fen"].sum() == 0
    return led.groupby("line")["amount_fen"].sum()


def test_fund_basis_split():
    # B = 1,000,000 fen over 600 + 400 points: PV = 1,000 fen = 10 yuan a point
    fs = settle_fund(totals([600, 400], [500_000, 500_000]), Budget(1_000_000, 100_000), pv(), 2024)
    assert fs.pv == pytest.approx(10.0)
    assert fs.payment.tolist() == [600_000, 400_000]
    check_ledger(fs)


def test_hospital_corridor_branches():
    p = pv(**{"hospital_corridor.enabled": True, "hospital_corridor.surplus_keep": 0.6})
    fs = settle_fund(totals([600, 400], [500_000, 500_000]), Budget(1_000_000, 100_000), p, 2024)
    # H1 receives 600,000 for 500,000 (120%): beyond 110% it keeps 60%:
    #   clawback = (600,000 - 550,000) x 0.4 = 20,000
    # H2 receives 400,000 (80%): below 90% the reserve refunds half of 450,000 - 400,000 = 25,000
    assert fs.clawback.tolist() == [20_000, 0]
    assert fs.refund.tolist() == [0, 25_000]
    lines = check_ledger(fs)
    # reserve left: 100,000 - 25,000 + 20,000
    assert lines["reserve_remaining"] == -95_000
    # with a loss floor at 85%: only 450,000 - 425,000 is shared: 12,500
    p2 = pv(**{"hospital_corridor.enabled": True, "hospital_corridor.loss_floor": 0.85})
    fs = settle_fund(totals([600, 400], [500_000, 500_000]), Budget(1_000_000, 100_000), p2, 2024)
    assert fs.refund.tolist() == [0, 12_500]
    # inside the band (H1 at 100% of a 600,000 cost): nothing moves
    fs = settle_fund(totals([600, 400], [600_000, 400_000]), Budget(1_000_000, 100_000), p2, 2024)
    assert fs.refund.tolist() == [0, 0] and fs.clawback.tolist() == [0, 0]


def test_region_corridor_overspend_and_surplus():
    p = pv(**{"region_corridor.enabled": True})
    # fund cost E = 1,000,000 > B = 800,000: 200,000 over; the band is 10% x 800,000 = 80,000,
    # of which the fund pays 50% = 40,000 from the reserve: 840,000 is distributed
    fs = settle_fund(totals([600, 400], [500_000, 500_000]), Budget(800_000, 100_000), p, 2024)
    assert fs.region_draw_fen == 40_000 and fs.payment.sum() == 840_000
    lines = check_ledger(fs)
    assert lines["reserve_remaining"] == -60_000
    # under-spend: B = 1,200,000 > E: hospitals keep 50% of 200,000: 1,100,000 distributed
    fs = settle_fund(totals([600, 400], [500_000, 500_000]), Budget(1_200_000, 0), p, 2024)
    assert fs.payment.sum() == 1_100_000
    lines = check_ledger(fs)
    assert lines["budget_remaining"] == -100_000


def test_total_cost_basis_and_floor():
    p = pv(**{"point_value.basis": "total_cost"})
    # PV = (1,000,000 + 200,000) / 1,000 points = 1,200 fen; H1 600 x 1,200 - 150,000 = 570,000
    fs = settle_fund(
        totals([600, 400], [500_000, 500_000], [150_000, 50_000]), Budget(1_000_000, 0), p, 2024
    )
    assert fs.payment.tolist() == [570_000, 430_000]
    # an absolute floor of 13 yuan a point: 1,000 x 1,300 - 200,000 = 1,100,000 paid; the
    # fund adds 100,000 beyond the budget, its own ledger line
    p = pv(
        **{
            "point_value.basis": "total_cost",
            "point_value.bounds.mode": "absolute",
            "point_value.bounds.floor": 13.0,
        }
    )
    fs = settle_fund(
        totals([600, 400], [500_000, 500_000], [150_000, 50_000]), Budget(1_000_000, 0), p, 2024
    )
    assert fs.payment.tolist() == [630_000, 470_000]
    lines = check_ledger(fs)
    assert lines["pv_floor_topup"] == 100_000 and lines["budget_remaining"] == 0


# ---- point value bounds relative to the budgeted point value ---------------------------


def relative(lo=0.9, hi=1.1, given=None, **over):
    """Bounds within -10% / +10% of the budgeted PV (given per fund, or the budget's)."""
    ov = {
        "point_value.bounds.mode": "relative",
        "point_value.bounds.floor": lo,
        "point_value.bounds.ceiling": hi,
    }
    if given is not None:
        ov["point_value.bounds.budgeted_pv"] = "given"
        ov["point_value.bounds.budgeted_pv_yuan"] = {"employee": given}
    else:
        ov["point_value.bounds.budgeted_pv"] = "budget"
    return pv(**ov, **over)


def test_relative_floor_binds():
    # total-cost basis: PV = (B + S) / P = (1,000,000 + 200,000) / 1,000 = 1,200 fen = 12 yuan.
    # Budgeted PV given: 14 yuan (e.g. last year's final PV); floor 0.9 x 14 = 12.6 yuan > 12,
    # so the final PV is 12.6 yuan = 1,260 fen a point:
    #   H1 600 x 1,260 - 150,000 = 606,000; H2 400 x 1,260 - 50,000 = 454,000; 1,060,000 in all
    p = relative(given=14.0, **{"point_value.basis": "total_cost"})
    fs = settle_fund(
        totals([600, 400], [500_000, 500_000], [150_000, 50_000]), Budget(1_000_000, 0), p, 2024
    )
    assert fs.pv_budgeted == 14.0 and fs.pv_floor == pytest.approx(12.6)
    assert fs.pv == pytest.approx(12.6) and fs.pv_bound == "floor"
    assert fs.payment.tolist() == [606_000, 454_000]
    lines = check_ledger(fs)
    # the floor adds 1,060,000 - 1,000,000 = 60,000 beyond the budget: a line of its own
    assert lines["pv_floor_topup"] == 60_000
    assert lines["budget_remaining"] == 0  # 1,000,000 + 60,000 - 1,060,000
    assert "pv_ceiling_withheld" not in lines


def test_relative_ceiling_binds():
    # fund basis: PV = B / P = 1,000,000 / 1,000 = 1,000 fen = 10 yuan. Budgeted PV given:
    # 8 yuan; ceiling 1.1 x 8 = 8.8 yuan < 10: final PV 8.8 yuan = 880 fen a point:
    #   H1 600 x 880 = 528,000; H2 400 x 880 = 352,000; 880,000 in all
    p = relative(given=8.0)
    fs = settle_fund(totals([600, 400], [500_000, 500_000]), Budget(1_000_000, 0), p, 2024)
    assert fs.pv == pytest.approx(8.8) and fs.pv_bound == "ceiling"
    assert fs.payment.tolist() == [528_000, 352_000]
    lines = check_ledger(fs)
    # the ceiling withholds 1,000,000 - 880,000 = 120,000: kept by the fund, its own line
    assert lines["pv_ceiling_withheld"] == -120_000
    assert lines["budget_remaining"] == 0  # 1,000,000 - 120,000 - 880,000
    assert "pv_floor_topup" not in lines


def test_relative_neither_binds():
    # PV 10 yuan; budgeted 10.5: floor 9.45, ceiling 11.55 yuan; 10 lies between them
    p = relative(given=10.5)
    fs = settle_fund(totals([600, 400], [500_000, 500_000]), Budget(1_000_000, 0), p, 2024)
    assert fs.pv == pytest.approx(10.0) and fs.pv_bound == ""
    assert (fs.pv_floor, fs.pv_ceiling) == pytest.approx((9.45, 11.55))
    assert fs.payment.tolist() == [600_000, 400_000]
    lines = check_ledger(fs)
    assert "pv_floor_topup" not in lines and "pv_ceiling_withheld" not in lines
    assert lines["budget_remaining"] == 0


def test_relative_to_the_budget_with_the_region_corridor():
    # budgeted PV = the budget over the points (fund basis): 1,200,000 / 1,000 = 1,200 fen.
    # The region under-spends: fund cost E = 1,000,000 < B = 1,200,000; hospitals keep 50% of
    # the 200,000: D = 1,100,000 and PV = 1,100 fen. The floor 0.95 x 1,200 = 1,140 fen binds:
    #   H1 600 x 1,140 = 684,000; H2 400 x 1,140 = 456,000; 1,140,000 in all
    p = relative(lo=0.95, hi=None, **{"region_corridor.enabled": True})
    fs = settle_fund(totals([600, 400], [500_000, 500_000]), Budget(1_200_000, 0), p, 2024)
    assert fs.distributable_fen == 1_100_000
    assert fs.pv_budgeted == pytest.approx(12.0) and fs.pv == pytest.approx(11.4)
    assert fs.payment.tolist() == [684_000, 456_000]
    lines = check_ledger(fs)
    assert lines["pv_floor_topup"] == 1_140_000 - 1_100_000
    # the budget keeps what the region corridor keeps: 1,200,000 + 40,000 - 1,140,000
    assert lines["budget_remaining"] == -100_000
    # without the region corridor the budget's own PV is the budgeted one: nothing binds
    p = relative(lo=0.95, hi=1.05)
    fs = settle_fund(totals([600, 400], [500_000, 500_000]), Budget(1_200_000, 0), p, 2024)
    assert fs.pv_bound == "" and fs.payment.sum() == 1_200_000


def test_relative_bounds_need_a_budgeted_pv_for_the_fund():
    from drgsim.settlement import BudgetError

    p = relative(given=10.0)
    t = totals([600, 400], [500_000, 500_000])
    t.fund = "resident"  # the policy gives a budgeted PV for employee only
    with pytest.raises(BudgetError, match="no budgeted point value for fund resident"):
        settle_fund(t, Budget(1_000_000, 0), p, 2024)


def test_assessment_withholding():
    p = pv(**{"assessment.enabled": True, "presettlement.prepay_share": 1.0})
    # January's provisional PV = (B / 12) / 1,000 points; H1 due = 600 x that = 50,000; 5% withheld = 2,500
    fs = settle_fund(
        totals([600, 400], [500_000, 500_000]),
        Budget(1_000_000, 0),
        p,
        2024,
        scores=np.array([75.0, 95.0]),
    )
    assert fs.withheld_hm[:, 0].tolist() == [2_500, 1_667]
    # score 75 between 60 (nothing) and 90 (all): half released, half forfeited
    assert fs.released.tolist() == [1_250, 1_667] and fs.forfeited.tolist() == [1_250, 0]
    assert (fs.withheld_hm.sum(1) == fs.released + fs.forfeited).all()
    assert fs.annual.tolist() == [600_000 - 1_250, 400_000]
    assert (fs.prepaid_hm.sum(1) + fs.balance == fs.annual).all()
    lines = check_ledger(fs)
    assert lines["assessment_forfeit"] == -1_250


# ---- properties -------------------------------------------------------------------------


def _run(df, policy, budget_e, budget_r, hospitals, reserve=1_000_000):
    p = policy.at(2024)
    pr = price(
        prepare_cases(df, hospitals["hospital_id"]),
        Weights.from_frame(fake_weights()),
        p,
        hospitals,
    )
    b = {"employee": Budget(budget_e, reserve), "resident": Budget(budget_r, reserve)}
    return settle(pr, p, b, 2024, hospitals["assessment_score"].to_numpy())


PROP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
bases = st.sampled_from(["total_cost", "fund"])


@PROP
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(5, 300),
    b=st.integers(10_000_000, 10**10),
    basis=bases,
    corridors=st.booleans(),
)
def test_budget_paid_exactly(seed, n, b, basis, corridors):
    pol = load_policy().with_values(
        {
            "point_value.basis": basis,
            "assessment.enabled": False,
            "hospital_corridor.enabled": corridors,
        }
    )
    h = fake_hospitals(5)
    s = _run(fake_cases(n, seed=seed), pol, b, b // 2, h)
    t = s.tables()
    for fs in s.funds:
        paid = (
            fs.budget.budget_fen if fs.totals.points.sum() > 0 else 0
        )  # a fund without cases pays nothing
        assert fs.payment.sum() == paid
        assert fs.payment_hm.sum() == paid
    per_case = t["cases"].groupby(["fund", "hospital_id"])["payment_fen"].sum()
    per_h = t["hospitals"].set_index(["fund", "hospital_id"])["payment_fen"]
    assert (per_case.reindex(per_h.index, fill_value=0) == per_h).all()
    led = t["ledger"]
    assert (led.groupby(["fund", "year"])["amount_fen"].sum() == 0).all()
    # hospital lines equal the per-hospital table
    hl = (
        led[led["line"].isin(["prepayment", "annual_balance"])]
        .groupby(["fund", "hospital_id"])["amount_fen"]
        .sum()
    )
    assert (
        -hl.reindex(per_h.index, fill_value=0)
        == t["hospitals"].set_index(["fund", "hospital_id"])["annual_payment_fen"]
    ).all()


@PROP
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(5, 300),
    b=st.integers(10_000_000, 10**10),
    floor=st.none() | st.floats(20, 200),
    ceiling=st.none() | st.floats(20, 200),
    mode=st.sampled_from(["absolute", "relative"]),
    region=st.booleans(),
    overdraw=st.sampled_from(["refuse", "fund_pays"]),
    reserve=st.sampled_from([0, 10_000, 1_000_000]),
)
def test_with_assessment_everything_still_adds_up(
    seed, n, b, floor, ceiling, mode, region, overdraw, reserve
):
    if floor is not None and ceiling is not None and floor > ceiling:
        floor, ceiling = ceiling, floor
    if mode == "relative":  # shares of the budgeted PV: 20..200 -> 0.2..2
        floor, ceiling = (None if x is None else x / 100 for x in (floor, ceiling))
    pol = load_policy().with_values(
        {
            "point_value.bounds.mode": mode,
            "point_value.bounds.floor": floor,
            "point_value.bounds.ceiling": ceiling,
            "point_value.bounds.budgeted_pv": "budget",
            "region_corridor.enabled": region,
            "reserve.overdraw": overdraw,
        }
    )
    s = _run(fake_cases(n, seed=seed), pol, b, b, fake_hospitals(5), reserve)
    for fs in s.funds:
        led = ledger(fs, s.priced.cases.hospital_ids)
        lines = led.groupby("line")["amount_fen"].sum()
        # paid to hospitals + forfeited by assessment + withheld by the ceiling + what the
        # budget keeps = budget + region draw + what the floor adds
        assert fs.annual.sum() + fs.forfeited.sum() - lines.get("pv_ceiling_withheld", 0) - lines[
            "budget_remaining"
        ] == fs.budget.budget_fen + fs.region_draw_fen + lines.get("pv_floor_topup", 0)
        assert lines.get("pv_floor_topup", 0) >= 0 and lines.get("pv_ceiling_withheld", 0) <= 0
        if floor is None and ceiling is None and not region:
            paid = fs.budget.budget_fen if fs.totals.points.sum() > 0 else 0
            assert fs.annual.sum() + fs.forfeited.sum() == paid
        assert (fs.withheld_hm.sum(1) == fs.released + fs.forfeited).all()
        assert (fs.prepaid_hm.sum(1) + fs.balance == fs.annual).all()
        led = ledger(fs, s.priced.cases.hospital_ids)
        assert led["amount_fen"].sum() == 0
        lines = led.groupby("line")["amount_fen"].sum()
        refunds = -lines.get("corridor_refund", 0)
        claws = lines.get("corridor_clawback", 0)
        over = lines.get("reserve_overdraw", 0)
        # reserve draws = corridor refunds (+ the region corridor's draw when it is on),
        # beyond the reserve paid by the fund
        assert (
            lines["reserve"] + lines["reserve_remaining"] + claws + over
            == refunds + fs.region_draw_fen
        )
        # the reserve is never left below zero; only fund_pays lets the fund pay beyond it
        assert lines["reserve_remaining"] <= 0 and over >= 0
        if overdraw == "refuse":
            assert over == 0 and fs.region_draw_fen <= reserve


@PROP
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(5, 200),
    b=st.integers(10_000_000, 10**9),
    extra=st.integers(1, 10**8),
    basis=bases,
)
def test_more_budget_never_lowers_a_payment(seed, n, b, extra, basis):
    pol = load_policy().with_values(
        {
            "point_value.basis": basis,
            "hospital_corridor.enabled": False,
            "assessment.enabled": False,
        }
    )
    h = fake_hospitals(5)
    df = fake_cases(n, seed=seed)
    a = _run(df, pol, b, b, h)
    c = _run(df, pol, b + extra, b + extra, h)
    for fa, fc in zip(a.funds, c.funds, strict=True):
        assert (fc.payment >= fa.payment - 1).all()


@PROP
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(5, 200),
    b=st.integers(10_000_000, 10**9),
    basis=bases,
)
def test_duplicating_cases_and_budget_keeps_point_value(seed, n, b, basis):
    pol = load_policy().with_values({"point_value.basis": basis, "special_review.enabled": False})
    h = fake_hospitals(5)
    df = fake_cases(n, seed=seed)
    dup = df.copy()
    dup["case_id"] = dup["case_id"] + 10**7
    dup["patient_id"] = dup["patient_id"] + 10**7
    a = _run(df, pol, b, b, h)
    c = _run(pd.concat([df, dup], ignore_index=True), pol, 2 * b, 2 * b, h)
    for fa, fc in zip(a.funds, c.funds, strict=True):
        assert fc.pv == pytest.approx(fa.pv, rel=1e-12)


@PROP
@given(seed=st.integers(0, 10_000), n=st.integers(5, 200), perm_seed=st.integers(0, 1000))
def test_permuting_rows_changes_nothing(seed, n, perm_seed):
    pol = load_policy()
    h = fake_hospitals(5)
    df = fake_cases(n, seed=seed)
    perm = df.sample(frac=1.0, random_state=perm_seed).reset_index(drop=True)
    a = _run(df, pol, 10**9, 10**9, h).tables()
    c = _run(perm, pol, 10**9, 10**9, h).tables()
    pa_ = a["cases"].set_index("case_id").sort_index()
    pc_ = c["cases"].set_index("case_id").sort_index()
    assert (pa_["payment_fen"] == pc_["payment_fen"]).all()
    assert (pa_["case_type"] == pc_["case_type"]).all()
    pd.testing.assert_frame_equal(a["hospitals"], c["hospitals"])
    pd.testing.assert_frame_equal(a["ledger"], c["ledger"])


def test_per_diem_outside_budget_is_carved_out():
    from drgsim.settlement import fund_budget

    p = (
        load_policy()
        .with_values(
            {
                "per_diem.enabled": True,
                "per_diem.inside_budget": False,
                "per_diem.rate_yuan": 500.0,
                "special_review.enabled": False,
                "readmission.enabled": False,
                "short_stay.enabled": False,
                "assessment.enabled": False,
                "hospital_corridor.enabled": False,
            }
        )
        .at(2024)
    )
    w = pd.DataFrame(
        {
            "key": ["G2", "all"],
            "level": ["drg", "all"],
            "rw": [1.2, 1.0],
            "points": [120.0, 100.0],
            "mean_cost_fen": [1_200_000, 1_000_000],
        }
    )
    w.attrs["m_all_fen"] = 1_000_000
    df = pd.DataFrame(
        {
            "case_id": [1, 2],
            "hospital_id": "H1",
            "fund": "employee",
            "discharge_date": "2024-05-01",
            "los_days": [70, 7],
            "total_cost": [40000, 12000],
            "patient_share": [3000, 3600],
            "drg": "G2",
            "adrg": "G2",
            "mdc": "MDCX",
            "status": "ok",
        }
    )
    pr = price(prepare_cases(df), Weights.from_frame(w), p)
    # per diem: 500 x 70 days - 3,000 patients' share = 32,000 yuan, paid outside the points
    assert pr.outside_fen.tolist() == [3_200_000, 0]
    p_amt = {**p["budget"]["employee"], "source": "amount", "amount_yuan": 100000.0}
    b = fund_budget(p_amt, "employee", 2024, outside_fen=int(pr.outside_fen.sum()))
    # gross 100,000 yuan less the 5% reserve (5,000) less the per diem carved out (32,000)
    assert b.budget_fen == 10_000_000 - 500_000 - 3_200_000 and b.carve_out_fen == 3_200_000
    s = settle(pr, p, {"employee": b}, 2024)
    assert s.payment_fen.tolist() == [3_200_000, 6_300_000]
    led = ledger(s.funds[0], pr.cases.hospital_ids)
    assert led["amount_fen"].sum() == 0
    assert led.groupby("line")["amount_fen"].sum()["carve_out"] == 3_200_000


def test_refunds_limited_to_the_reserve():
    p = pv(**{"hospital_corridor.enabled": True})
    # H2 would get 25,000 back (see above) but the reserve holds 10,000: it gets 10,000
    fs = settle_fund(totals([600, 400], [500_000, 500_000]), Budget(1_000_000, 10_000), p, 2024)
    assert fs.refund.tolist() == [0, 10_000]
    assert check_ledger(fs)["reserve_remaining"] == 0
    p = pv(**{"hospital_corridor.enabled": True, "reserve.overdraw": "fund_pays"})
    fs = settle_fund(totals([600, 400], [500_000, 500_000]), Budget(1_000_000, 10_000), p, 2024)
    assert fs.refund.tolist() == [0, 25_000]
    lines = check_ledger(fs)
    # the reserve is emptied; the fund pays the 15,000 beyond it on its own line
    assert lines["reserve_remaining"] == 0 and lines["reserve_overdraw"] == 15_000
    assert fs.overdraw_fen == 15_000


def test_fund_without_budget_is_an_error():
    from drgsim.settlement import BudgetError

    h = fake_hospitals(5)
    p = load_policy().at(2024)
    pr = price(
        prepare_cases(fake_cases(50), h["hospital_id"]), Weights.from_frame(fake_weights()), p, h
    )
    with pytest.raises(BudgetError, match="no budget"):
        settle(pr, p, {"employee": Budget(10**8, 0)}, 2024)
