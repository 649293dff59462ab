"""Budgets from exactly the source the policy names, inputs checked before any work, the
reserve with one meaning, assessment after the corridor, point-value bounds on last year's
point value (issue 17)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from test_settlement_golden import EXAMPLE_OVERLAY, HOSPITALS, example_cases

import drgsim
from drgsim.cli import main
from drgsim.errors import DrgsimError
from drgsim.policy import load_policy
from drgsim.pricing import Weights, prepare_cases, price
from drgsim.pricing.fake import fake_cases, fake_hospitals, fake_weights
from drgsim.settlement import Budget, BudgetError, FundTotals, fund_budget, ledger, settle_fund
from drgsim.settlement.core import EmptyFundWarning
from drgsim.settlement.scenarios import settle_fund_fast
from drgsim.settlement.simulate import SettlementInputError, last_year_pv


def bp(**over) -> dict:
    """The baseline's employee budget section, resolved, with overrides."""
    return {**load_policy().at(2024)["budget"]["employee"], **over}


REGION = pd.DataFrame(
    {"fund": ["employee", "resident"], "year": [2023, 2023], "drg_spending": [143.13e6, 2.0e8]}
)


# ---- budget sources ---------------------------------------------------------------------


def test_region_table_budget_arithmetic():
    # 143,130,000 x 1.05 = 150,286,500; reserve 5% = 7,514,325; 142,772,175 yuan
    b = fund_budget(bp(), "employee", 2024, REGION)
    assert (b.gross_fen, b.reserve_fen, b.budget_fen) == (
        15_028_650_000,
        751_432_500,
        14_277_217_500,
    )
    assert b.source == "region_table"
    assert b.arithmetic() == (
        "drg_spending 2023 143.13M × 1.05 = 150.29M − reserve 5% 7.51M − carve-out 0 = 142.77M"
    )


def test_amount_is_the_gross_before_the_reserve():
    # amount_yuan 80,000 is the gross: reserve 5% = 4,000 (or 5,000 given) comes off it
    b = fund_budget(bp(source="amount", amount_yuan=80_000.0), "employee", 2024)
    assert (b.budget_fen, b.reserve_fen) == (7_600_000, 400_000)
    b = fund_budget(
        bp(source="amount", amount_yuan=80_000.0, reserve_yuan=5_000.0), "employee", 2024
    )
    assert (b.budget_fen, b.reserve_fen) == (7_500_000, 500_000)
    assert b.arithmetic() == (
        "amount_yuan 80,000.00 − reserve given 5,000.00 − carve-out 0 = 75,000.00"
    )


@pytest.mark.parametrize(
    "over, region, hist, words",
    [
        (
            {},
            None,
            10**9,
            "budget.employee 2024: source region_table needs drg_spending of fund "
            "employee for 2023: give --region",
        ),
        # the region table lacks the fund: no fallback to the history cases
        ({}, REGION[REGION["fund"] == "resident"], 10**9, "needs drg_spending of fund employee"),
        ({"source": "history"}, REGION, None, "source history needs the 2023 cases"),
        ({"source": "amount"}, REGION, 10**9, "source amount needs a positive amount_yuan"),
        ({"source": "amount", "amount_yuan": 0.0}, None, None, "positive amount_yuan"),
        ({"source": "history"}, None, -5, "spending of fund employee from history is"),
        # the reserve larger than the gross: the budget would be negative
        ({"reserve_yuan": 2.0e8}, REGION, None, "the budget is not positive"),
    ],
)
def test_a_budget_that_cannot_be_made_stops(over, region, hist, words):
    with pytest.raises(BudgetError, match=words) as exc:
        fund_budget(bp(**over), "employee", 2024, region, hist)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("b, r", [(0, 0), (-1_000_000, 0), (1_000_000, -1)])
def test_settle_refuses_a_non_positive_budget(b, r):
    from drgsim.pricing.fake import fake_weights as fw
    from drgsim.settlement import settle

    h = fake_hospitals(4)
    pv = load_policy().at(2024)
    pr = price(
        prepare_cases(fake_cases(50, n_hosp=4), h["hospital_id"]), Weights.from_frame(fw()), pv, h
    )
    budgets = {"employee": Budget(b, r), "resident": Budget(10**8, 0)}
    with pytest.raises(BudgetError, match="budget.employee 2024: the budget must be positive"):
        settle(pr, pv, budgets, 2024)


def test_history_source_counts_only_clean_cases():
    """Last year's spending: cases that pass the record checks, group and are plausible."""
    w = fake_weights(5)
    m = w.set_index("key")["mean_cost_fen"]
    d = "D0001"
    prev = pd.DataFrame(
        {
            "case_id": [1, 2, 3, 4, 5],
            "hospital_id": "H0000",
            "fund": "employee",
            "discharge_date": "2023-06-01",
            "los_days": 5,
            # clean; clean; negative cost; ungroupable; 60 x the group mean (implausible)
            "total_cost": [1000.0, 3000.0, -50.0, 2000.0, m[d] / 100 * 60],
            "patient_share": [300.0, 900.0, 0.0, 600.0, 0.0],
            "drg": [d, d, d, "0000", d],
            "adrg": "D00",
            "mdc": "MDCX",
            "status": ["ok", "ok", "ok", "ungroupable", "ok"],
        }
    )
    cur = prev.assign(case_id=prev["case_id"] + 100, discharge_date="2024-06-01")
    cur = cur.iloc[:2]
    pol = load_policy().with_values(
        {
            "budget.employee.source": "history",
            "budget.resident.source": "amount",
            "budget.resident.amount_yuan": 1000.0,
        }
    )
    with pytest.warns(EmptyFundWarning, match="fund resident has no cases in 2024"):
        t = drgsim.simulate(pd.concat([prev, cur]), policy=pol, weights=w)
    f = t["funds"].set_index("fund")
    # (1,000 - 300) + (3,000 - 900) = 2,800 yuan; x 1.05 = 2,940; less 5% (147) = 2,793
    assert f.loc["employee", "budget_gross_fen"] == 294_000
    assert f.loc["employee", "budget_fen"] == 279_300
    assert f.loc["employee", "budget_arithmetic"] == (
        "history cases' fund spending 2023 2,800.00 × 1.05 = 2,940.00 − reserve 5% 147.00 "
        "− carve-out 0 = 2,793.00"
    )
    # the fund without cases is in the fund table, with zeros, and the summary warns
    assert f.loc["resident", "cases"] == 0 and f.loc["resident", "paid_by_points_fen"] == 0
    assert f.loc["resident", "points"] == 0
    summ = dict(zip(t["summary"]["item"], t["summary"]["value"], strict=True))
    assert summ["resident warning"].startswith("no cases in 2024")
    assert summ["employee budget arithmetic"] == f.loc["employee", "budget_arithmetic"]
    led = t["ledger"]
    assert (led.groupby(["fund", "year"])["amount_fen"].sum() == 0).all()


# ---- inputs checked before any work -----------------------------------------------------


@pytest.fixture(scope="module")
def two_years():
    return pd.concat(
        [
            fake_cases(400, n_hosp=4, seed=y, year=y).assign(
                case_id=lambda d, y=y: d["case_id"] + y * 10**6
            )
            for y in (2023, 2024)
        ],
        ignore_index=True,
    )


def test_unknown_hospital_levels_are_listed(two_years):
    h = fake_hospitals(4)
    h.loc[0, "level"] = "四级"
    h.loc[1, "level"] = None
    with pytest.raises(SettlementInputError, match=r"level\(s\) \(blank\), 四级 that") as exc:
        drgsim.simulate(two_years, hospitals=h, region=REGION, weights=fake_weights())
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("bad", [-143.13e6, 0.0])
def test_non_positive_fund_figures(two_years, bad):
    region = REGION.assign(drg_spending=[bad, 2.0e8])
    with pytest.raises(SettlementInputError, match="fund employee, year 2023 is"):
        drgsim.simulate(
            two_years, hospitals=fake_hospitals(4), region=region, weights=fake_weights()
        )


def test_a_year_without_cases_writes_nothing(tmp_path, two_years):
    cases = tmp_path / "cases.parquet"
    two_years.to_parquet(cases)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main, ["simulate", str(cases), "--grouped", "--year", "2026", "-o", str(out)]
    )
    assert res.exit_code != 0
    assert "no cases discharged in 2026 (cases are discharged in 2023, 2024)" in res.output
    assert "Traceback" not in res.output
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(SettlementInputError, match="no cases discharged in 2026"):
        drgsim.simulate(two_years, year=2026, weights=fake_weights())


def test_a_missing_region_row_stops_the_cli(tmp_path, two_years):
    cases = tmp_path / "cases.parquet"
    two_years.to_parquet(cases)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["simulate", str(cases), "--grouped", "-o", str(out)])
    assert res.exit_code != 0
    assert "budget.employee 2024: source region_table needs drg_spending" in res.output
    assert not out.exists() or not any(out.iterdir())


# ---- the reserve: DOMAIN.md section 7 through simulate --------------------------------------


def test_section_7_through_simulate():
    """amount_yuan 80,000 with a 5,000 yuan reserve: 75,000 distributed; H2's refund is
    drawn from the reserve."""
    w = pd.DataFrame(
        {
            "key": ["G1", "G2", "G3"],
            "level": "drg",
            "rw": [0.5, 1.2, 3.5],
            "points": [50.0, 120.0, 350.0],
            "mean_cost_fen": [500_000, 1_200_000, 3_500_000],
        }
    )
    w.attrs["m_all_fen"] = 1_000_000
    pol = load_policy().with_values(
        {
            **EXAMPLE_OVERLAY,
            "budget.employee.amount_yuan": 80_000.0,
            "budget.employee.reserve_yuan": 5_000.0,
            "budget.resident.source": "amount",
            "budget.resident.amount_yuan": 1_000.0,
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyFundWarning)
        t = drgsim.simulate(example_cases(), policy=pol, weights=w, hospitals=HOSPITALS)
    f = t["funds"].set_index("fund").loc["employee"]
    assert (f["budget_gross_fen"], f["reserve_fen"], f["budget_fen"]) == (
        8_000_000,
        500_000,
        7_500_000,
    )
    assert f["pv_used"] == pytest.approx((75000 + 33420) / 877)
    h = t["hospitals"].set_index("hospital_id")
    assert h["payment_fen"].to_dict() == {"H1": 5_443_361, "H2": 2_056_639}
    assert h.loc["H2", "corridor_refund_fen"] == 141_681
    led = t["ledger"][t["ledger"]["fund"] == "employee"]
    lines = led.groupby("line")["amount_fen"].sum()
    assert lines["reserve"] == 500_000 and lines["corridor_refund"] == -141_681
    assert lines["reserve_remaining"] == -(500_000 - 141_681)  # the refund came from the reserve
    assert lines["budget_remaining"] == 0


def totals(points, cost, share=(0, 0)) -> FundTotals:
    H = len(points)
    z = np.zeros((H, 12))
    p, c, s = z.copy(), z.copy().astype(np.int64), z.copy().astype(np.int64)
    p[:, 0], c[:, 0], s[:, 0] = points, cost, share
    return FundTotals("employee", p, s, c, np.ones((H, 12), np.int64), np.zeros(H, np.int64))


def pv(**over):
    base = {
        "point_value.basis": "fund",
        "assessment.enabled": False,
        "hospital_corridor.enabled": False,
        "hospital_corridor.loss_floor": None,
    }
    return load_policy().with_values({**base, **over}).at(2024)


@pytest.mark.parametrize("settle_one", [settle_fund, settle_fund_fast])
def test_region_draw_capped_at_the_reserve(settle_one):
    # fund cost E = 1,000,000 > B = 800,000; the fund's share of the band is 40,000, but the
    # reserve holds 10,000: refuse -> 10,000 drawn, 810,000 distributed
    t = totals([600, 400], [500_000, 500_000])
    p = pv(**{"region_corridor.enabled": True})
    fs = settle_one(t, Budget(800_000, 10_000), p, 2024)
    assert fs.region_draw_fen == 10_000 and fs.payment.sum() == 810_000 and fs.overdraw_fen == 0
    lines = ledger(fs, np.array(["H1", "H2"])).groupby("line")["amount_fen"].sum()
    assert lines["reserve_remaining"] == 0 and "reserve_overdraw" not in lines
    # fund_pays -> all 40,000 drawn; the fund pays the 30,000 beyond the reserve on its line
    p = pv(**{"region_corridor.enabled": True, "reserve.overdraw": "fund_pays"})
    fs = settle_one(t, Budget(800_000, 10_000), p, 2024)
    assert fs.region_draw_fen == 40_000 and fs.payment.sum() == 840_000
    led = ledger(fs, np.array(["H1", "H2"]))
    assert led["amount_fen"].sum() == 0
    lines = led.groupby("line")["amount_fen"].sum()
    assert lines["reserve_overdraw"] == 30_000 and lines["reserve_remaining"] == 0


@pytest.mark.parametrize("settle_one", [settle_fund, settle_fund_fast])
def test_region_draw_then_refunds_share_the_reserve(settle_one):
    # reserve 50,000: the region draw takes 40,000, H2's refund (half of 450,000 - 420,000
    # received) would be 15,000 but only 10,000 is left
    t = totals([600, 400], [500_000, 500_000])
    p = pv(**{"region_corridor.enabled": True, "hospital_corridor.enabled": True})
    fs = settle_one(t, Budget(800_000, 50_000), p, 2024)
    assert fs.region_draw_fen == 40_000
    assert fs.payment.tolist() == [504_000, 336_000]
    # H2 received 336,000: loss 450,000 - 336,000 = 114,000, half = 57,000 wanted; 10,000 left
    assert fs.refund.tolist() == [0, 10_000]


# ---- assessment after the corridor ---------------------------------------------------------


def assessed(order: str, settle_one=settle_fund):
    p = pv(
        **{
            "assessment.enabled": True,
            "assessment.order": order,
            "presettlement.prepay_share": 1.0,
            "hospital_corridor.enabled": True,
        }
    )
    # A = 600,000 and 400,000 fen for 500,000 of cost each; January's prepayments due
    # 50,000 and 33,333 fen, 5% withheld: 2,500 and 1,667. H2 scores 60: all 1,667 forfeited.
    return settle_one(
        totals([600, 400], [500_000, 500_000]),
        Budget(1_000_000, 100_000),
        p,
        2024,
        scores=np.array([95.0, 60.0]),
    )


@pytest.mark.parametrize("settle_one", [settle_fund, settle_fund_fast])
def test_assessment_after_the_corridor(settle_one):
    fs = assessed("after_corridor", settle_one)
    assert fs.forfeited.tolist() == [0, 1_667]
    # the corridor judges H2's 400,000 before the forfeit: loss 450,000 - 400,000 = 50,000,
    # half refunded = 25,000; the forfeit is taken after and never comes back
    assert fs.refund.tolist() == [0, 25_000]
    assert fs.annual.tolist() == [600_000, 398_333]


@pytest.mark.parametrize("settle_one", [settle_fund, settle_fund_fast])
def test_assessment_before_the_corridor_keeps_the_old_order(settle_one):
    fs = assessed("before_corridor", settle_one)
    # the corridor judges 400,000 - 1,667 = 398,333: loss 51,667, half = 25,833.5 -> 25,834
    # (half-up): 834 fen of the 1,667 forfeit come back as a refund
    assert fs.refund.tolist() == [0, 25_834]
    assert fs.annual.tolist() == [600_000, 398_333]


# ---- point-value bounds on last year's point value ------------------------------------------


@pytest.fixture(scope="module")
def growing_region():
    """2023: 600 cases; 2024: 900 (volume up 50%); the region table's drg_spending of
    2023 is what the fund paid for 2023's clean cases."""
    parts = [
        fake_cases(n, n_hosp=5, seed=y, year=y).assign(
            case_id=lambda d, y=y: d["case_id"] + y * 10**6
        )
        for y, n in ((2023, 600), (2024, 900))
    ]
    df = pd.concat(parts, ignore_index=True)
    prev = parts[0][parts[0]["status"] == "ok"]
    spend = (prev["total_cost"] - prev["patient_share"]).groupby(prev["fund"]).sum()
    region = pd.DataFrame(
        {"fund": spend.index, "year": 2023, "drg_spending": spend.round(2).to_numpy()}
    )
    return df, region


def test_baseline_uses_last_year_and_a_relative_floor_binds(growing_region):
    df, region = growing_region
    h, w = fake_hospitals(5), fake_weights()
    base = load_policy()
    assert base.at(2024)["point_value"]["bounds"]["budgeted_pv"] == "last_year"
    t0 = drgsim.simulate(df, policy=base, weights=w, hospitals=h, region=region)
    floor = base.with_values({"point_value.bounds.floor": 0.9})
    t1 = drgsim.simulate(df, policy=floor, weights=w, hospitals=h, region=region)
    f0, f1 = t0["funds"].set_index("fund"), t1["funds"].set_index("fund")
    # 50% more cases for a budget grown 5%: this year's point value falls well below last year's
    ref = last_year_pv(
        prepare_cases(df[pd.to_datetime(df["discharge_date"]).dt.year == 2023], h["hospital_id"]),
        Weights.from_frame(w),
        base.at(2024),
        region,
        2024,
        h,
    )
    for fund in ("employee", "resident"):
        assert f0.loc[fund, "pv_used"] < 0.9 * ref[fund]
        assert f0.loc[fund, "pv_bound"] == ""
        assert f1.loc[fund, "pv_bound"] == "floor"
        assert f1.loc[fund, "pv_budgeted"] == pytest.approx(ref[fund], rel=1e-12)
        assert f1.loc[fund, "pv_used"] == pytest.approx(0.9 * ref[fund], rel=1e-12)
        assert f1.loc[fund, "pv_floor_topup_fen"] > 0
        assert f1.loc[fund, "pv_budgeted_source"] == "last_year"
    summ = dict(zip(t1["summary"]["item"], t1["summary"]["value"], strict=True))
    assert summ["employee budgeted point value, bounds refer to it (yuan/point)"] == (
        f"{ref['employee']:.4f} (last_year)"
    )
    # last year's PV by hand: (drg_spending 2023 + patients' share) / points of 2023's cases
    pr = price(
        prepare_cases(df[pd.to_datetime(df["discharge_date"]).dt.year == 2023], h["hospital_id"]),
        Weights.from_frame(w),
        base.at(2024),
        h,
    )
    c = pr.cases
    for fi, fund in enumerate(("employee", "resident")):
        m = pr.payable & pr.in_budget & (c.fund == fi)
        spent = round(float(region.set_index("fund").loc[fund, "drg_spending"]) * 100)
        by_hand = (spent + c.share_fen[m].sum()) / pr.points[m].sum() / 100
        assert ref[fund] == pytest.approx(by_hand, rel=1e-9)
    # computed once: passing it in (as a sweep does) gives the same tables
    t2 = drgsim.simulate(df, policy=floor, weights=w, hospitals=h, region=region, reference_pv=ref)
    pd.testing.assert_frame_equal(t1["hospitals"], t2["hospitals"])
    # a different reference moves the floor: the given value is really used
    t3 = drgsim.simulate(
        df,
        policy=floor,
        weights=w,
        hospitals=h,
        region=region,
        reference_pv={k: v * 0.5 for k, v in ref.items()},
    )
    assert (t3["funds"]["pv_bound"] == "").all()
    # a reference the policy does not use is refused, not ignored
    given = floor.with_values(
        {
            "point_value.bounds.budgeted_pv": "given",
            "point_value.bounds.budgeted_pv_yuan": {"employee": 100.0, "resident": 100.0},
        }
    )
    with pytest.raises(BudgetError, match="but the policy's budgeted_pv is given"):
        drgsim.simulate(df, policy=given, weights=w, hospitals=h, region=region, reference_pv=ref)


def test_last_year_needs_the_region_row(growing_region):
    df, region = growing_region
    pol = load_policy().with_values({"point_value.bounds.floor": 0.9})
    # the 2023 region row gives the budget (drg_spending 2023) but the reference needs
    # drg_spending of 2023 too: drop the resident row and ask for an amount budget instead
    pol = pol.with_values(
        {"budget.resident.source": "amount", "budget.resident.amount_yuan": 1.0e6}
    )
    with pytest.raises(DrgsimError, match="last_year, fund resident: needs the region table"):
        drgsim.simulate(
            df,
            policy=pol,
            weights=fake_weights(),
            hospitals=fake_hospitals(5),
            region=region[region["fund"] == "employee"],
        )


def test_region_table_reads_fund_names_as_the_cases_do():
    """职工/居民 or EMPLOYEE in the region table are the funds the cases call so (not a
    missing row); a fund name the engine does not know stops, naming it."""
    want = fund_budget(bp(), "employee", 2024, REGION).budget_fen
    for names in ({"employee": "职工", "resident": "居民"}, {"employee": " EMPLOYEE "}):
        reg = REGION.assign(fund=REGION["fund"].replace(names))
        assert fund_budget(bp(), "employee", 2024, reg).budget_fen == want
    with pytest.raises(BudgetError, match="emplyee"):
        fund_budget(bp(), "employee", 2024, REGION.assign(fund="emplyee"))
