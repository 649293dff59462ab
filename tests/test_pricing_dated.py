"""Dated values by level, readmission linking into last year, and settle never ignoring
the pricing parameters it is given (issue 17)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_pricing import HOSP, OFF, cases, weights  # noqa: I001

from drgsim.policy import load_policy, resolve_year
from drgsim.pricing import PricingError, Weights, prepare_cases, price
from drgsim.pricing.cells import CellsError, build_cells, cell_points_at, hfm_points
from drgsim.pricing.fake import fake_cases, fake_hospitals, fake_weights
from drgsim.settlement import Budget, settle, settle_fund
from drgsim.settlement.run import all_fund_totals, case_payments
from drgsim.settlement.scenarios import settle_fund_fast

JULY = {
    "high_cost.tiers": [{"rw_upto": 1.0, "k": 2.5}, {"rw_upto": None, "k": 1.8}],
    "high_cost.beta": 0.7,
    "low_cost.factor": 0.5,
    "caps.max_points_multiple": 4.0,
    "coefficients.by_level": {"3": 1.05, "2": 0.9, "1": 0.75},
    "readmission.points_factor": 0.6,
    "presettlement.prepay_share": 0.8,
}
BUDGETS = {"employee": Budget(10**9, 10**7), "resident": Budget(2 * 10**9, 10**7)}


def test_levels_resolve_by_date():
    pol = load_policy().with_values(JULY, date="2024-07-01")
    yp = resolve_year(pol, 2024)
    assert yp.start_dates() == ["2024-01-01", "2024-07-01"]
    assert [s["high_cost"]["beta"] for s in yp.segments] == [1.0, 0.7]
    assert yp.pv["high_cost"]["beta"] == 1.0  # year-level readers see 1 January
    assert [m["presettlement"]["prepay_share"] for m in yp.months] == [0.9] * 6 + [0.8] * 6
    # a year-level key dated 1 July waits for next year; a case-level one on 15 March starts
    # a segment of its own
    pol = load_policy().with_values({"point_value.basis": "fund"}, date="2024-07-01")
    pol = pol.with_values({"low_cost.factor": 0.3}, date="2024-03-15")
    yp = resolve_year(pol, 2024)
    assert yp.pv["point_value"]["basis"] == "total_cost" and len(yp.segments) == 2
    assert yp.segments[1]["point_value"]["basis"] == "total_cost"
    assert yp.segment_of(np.array([19796, 19797])).tolist() == [0, 1]  # 14 / 15 March 2024


def test_value_dated_1_july_applies_to_cases_discharged_from_then():
    pol = load_policy().with_values(OFF).with_values({"high_cost.beta": 0.5}, date="2024-07-01")
    rows = [
        {"admit_date": "2024-06-20", "los_days": 5, "total_cost": 30000},  # out 25 June
        {"admit_date": "2024-06-28", "los_days": 5, "total_cost": 30000},  # out 3 July
    ]
    pr = price(prepare_cases(cases(rows)), weights(), resolve_year(pol, 2024), HOSP)
    # 120 + 120 x (2.5 - 2) x 1 = 180 before; x 0.5 from 1 July: 150
    assert pr.points == pytest.approx([180, 150])
    assert pr.segment.tolist() == [0, 1]


def _region(n=3000, seed=3):
    h = fake_hospitals(7)
    return h, prepare_cases(fake_cases(n, n_hosp=7, seed=seed), h["hospital_id"])


def test_dated_change_settles_the_same_through_cells_and_rows():
    """A change dated 1 July: the settled money from the cells' totals equals the money
    from the rows' own totals, to the fen, month by month and case by case."""
    h, c = _region()
    w = Weights.from_frame(fake_weights())
    yp = resolve_year(load_policy().with_values(JULY, date="2024-07-01"), 2024)
    pr = price(c, w, yp, h)
    assert pr.readmit.any() and (pr.segment == 1).any()
    s = settle(pr, yp, BUDGETS, 2024, h["assessment_score"].to_numpy())
    rows = all_fund_totals(pr)
    for fs in s.funds:
        f = ("employee", "resident").index(fs.fund)
        sc = h["assessment_score"].to_numpy()
        ref = settle_fund_fast(rows[f], BUDGETS[fs.fund], yp.pv, 2024, sc, yp.months)
        assert fs.totals.points == pytest.approx(rows[f].points, rel=1e-12)
        for name in ("payment_hm", "gross_prepay_hm", "withheld_hm", "refund", "clawback"):
            assert np.array_equal(getattr(fs, name), getattr(ref, name)), name
        # without the months, the scalar reference misses the 1 July share
        flat = settle_fund(rows[f], BUDGETS[fs.fund], yp.pv, 2024, sc)
        assert not np.array_equal(flat.gross_prepay_hm, fs.gross_prepay_hm)
        # July on is prepaid at 80%, January to June at 90% (month-level, first of the month)
        g, p = fs.gross_prepay_hm, fs.prepaid_hm + fs.withheld_hm
        assert np.array_equal(g, p)
        due = np.maximum(fs.totals.points * fs.provisional_pv[None, :] * 100 - (
            fs.totals.share_fen
        ), 0)
        share = np.r_[[0.9] * 6, [0.8] * 6]
        assert np.abs(g - due * share[None, :]).max() <= 0.5 + 1e-6
    # the rows priced the July cases with July's values: the coefficient, the cut
    july = pr.segment == 1
    lvl3 = pr.coefficient[july & (pr.base_points > 0)]
    assert set(np.round(lvl3, 4)) <= {1.05, 0.9, 0.75}
    assert set(np.unique(pr.factor[july & pr.readmit])) == {0.6}
    assert set(np.unique(pr.factor[~july & pr.readmit])) == {0.5}
    assert s.payment_fen.sum() == sum(int(fs.payment.sum()) for fs in s.funds)


def test_cells_reprice_dated_thresholds_only_on_their_own_segments():
    h, c = _region(2000, 5)
    w = Weights.from_frame(fake_weights())
    pol = load_policy().with_values({"high_cost.beta": 0.8}, date="2024-07-01")
    dated = price(c, w, resolve_year(pol, 2024), h)
    cells = build_cells(dated)
    # another July value re-prices exactly on the July segment
    pol2 = load_policy().with_values({"low_cost.factor": 0.5}, date="2024-07-01")
    got = hfm_points(cells, cell_points_at(cells, resolve_year(pol2, 2024)))
    want = all_fund_totals(price(c, w, resolve_year(pol2, 2024), h))
    got_f = got.reshape(-1, 2, 12).transpose(1, 0, 2)
    for f in range(2):
        assert got_f[f] == pytest.approx(want[f].points, rel=1e-9, abs=1e-9)
    # cells priced as one period cannot take a change inside it
    flat = build_cells(price(c, w, load_policy().at(2024), h))
    with pytest.raises(CellsError, match="2024-07-01"):
        cell_points_at(flat, resolve_year(pol2, 2024))


def test_cells_match_rows_with_readmissions_under_new_thresholds():
    h, c = _region(3000, 8)
    w = Weights.from_frame(fake_weights())
    base = price(c, w, load_policy().at(2024), h)
    assert base.readmit.sum() > 20
    # readmitted threshold cases of every type
    types = set(base.frame().loc[base.readmit, "case_type"])
    assert {"normal", "high_cost", "low_cost"} <= types
    cells = build_cells(base)
    # new thresholds; the readmission factor stays the cells' per-cell one (0.5)
    pv_same_cut = load_policy().with_values(
        {k: v for k, v in JULY.items() if k.startswith(("high", "low", "caps"))}
    ).at(2024)
    got = hfm_points(cells, cell_points_at(cells, pv_same_cut)).reshape(-1, 2, 12)
    want = all_fund_totals(price(c, w, pv_same_cut, h))
    for f in range(2):
        assert got.transpose(1, 0, 2)[f] == pytest.approx(want[f].points, rel=1e-9, abs=1e-9)


def test_settle_reprices_thresholds_it_is_given():
    """A β = 0.8 policy given to settle re-prices (through the cells and the rows), exactly
    as pricing the cases with it."""
    h, c = _region(2500, 9)
    w = Weights.from_frame(fake_weights())
    pv = load_policy().at(2024)
    pv8 = load_policy().with_values({"high_cost.beta": 0.8}).at(2024)
    base = price(c, w, pv, h)
    s1 = settle(base, pv, BUDGETS, 2024)
    s8 = settle(base, pv8, BUDGETS, 2024)
    fresh = settle(price(c, w, pv8, h), pv8, BUDGETS, 2024)
    assert not np.array_equal(s1.payment_fen, s8.payment_fen)
    assert np.array_equal(s8.payment_fen, fresh.payment_fen)
    assert s8.priced.points == pytest.approx(fresh.priced.points, rel=1e-12)
    assert np.array_equal(case_payments(s8.priced, s8.funds), s8.payment_fen)


def test_settle_refuses_pricing_parameters_it_cannot_reprice():
    h, c = _region(800, 10)
    w = Weights.from_frame(fake_weights())
    base = price(c, w, load_policy().at(2024), h)
    other = load_policy().with_values(
        {"coefficients.by_level": {"3": 1.0, "2": 0.9, "1": 0.7}, "ungroupable.discount": 0.7}
    )
    with pytest.raises(PricingError, match=r"coefficients\.by_level, ungroupable\.discount"):
        settle(base, other.at(2024), BUDGETS, 2024)


def test_readmission_links_into_last_year():
    rows = [
        # a December discharge, then a January admission 10 days later: a readmission
        {"patient_id": "A", "admit_date": "2023-12-20", "los_days": 5, "total_cost": 12000},
        {"patient_id": "A", "admit_date": "2024-01-04", "los_days": 5, "total_cost": 30000},
        # 20 days later: outside the 15-day window
        {"patient_id": "B", "admit_date": "2023-12-10", "los_days": 2, "total_cost": 12000},
        {"patient_id": "B", "admit_date": "2024-01-01", "los_days": 5, "total_cost": 12000},
    ]
    df = cases(rows)
    df["patient_id"] = ["A", "A", "B", "B"]
    c = prepare_cases(df, HOSP["hospital_id"], link_only=np.array([True, False, True, False]))
    pv = load_policy().with_values({**OFF, "readmission.enabled": True}).at(2024)
    pr = price(c, weights(), pv, HOSP)
    assert pr.cases.n == 2 and pr.cases.case_id.tolist() == [2, 4]  # last year's only link
    # high-cost 180, cut: 90; the other normal
    assert pr.points == pytest.approx([90, 120])
    assert pr.readmit.tolist() == [True, False]


def test_simulate_picks_last_years_discharges_for_linking():
    from drgsim.settlement.simulate import readmission_lookback

    hist = pd.DataFrame(
        {"discharge_date": ["2023-06-01", "2023-12-16", "2023-12-17", "2022-12-31"]}
    )
    yp = resolve_year(load_policy(), 2024)  # a 15-day window: from 17 December
    back = readmission_lookback(hist, "discharge_date", 2024, yp)
    assert back["discharge_date"].tolist() == ["2023-12-17"]


def test_every_key_has_a_level():
    from drgsim.policy import level_of

    levels = {k: level_of(k) for k in load_policy().params}
    assert set(levels.values()) == {"case", "month", "year"}
    assert levels["high_cost.beta"] == "case" and levels["presettlement.prepay_share"] == "month"
    assert levels["point_value.bounds.floor"] == "year"


# ---- random dated changes: cells and rows agree (hypothesis) ------------------------------

dated_overlay = st.fixed_dictionaries(
    {
        "high_cost.beta": st.sampled_from([0.0, 0.5, 1.0]),
        "low_cost.factor": st.sampled_from([0.3, 0.4, 0.6]),
        "caps.max_points_multiple": st.none() | st.sampled_from([3.0, 10.0]),
        "readmission.points_factor": st.sampled_from([0.3, 0.5, 1.0]),
        "coefficients.by_level": st.sampled_from(
            [{"3": 1.0, "2": 0.85, "1": 0.7}, {"3": 1.1, "2": 0.95, "1": 0.8}]
        ),
        "per_diem.inside_budget": st.booleans(),
    }
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ov=dated_overlay,
    day=st.sampled_from(["2024-02-01", "2024-07-01", "2024-07-15", "2024-12-31"]),
    seed=st.integers(0, 10_000),
    n=st.integers(1, 500),
)
def test_dated_cells_equal_rows(ov, day, seed, n):
    """For a random case-level change on a random day, the cells' hospital × fund × month
    points are the rows' points summed (each case priced with the values of its date)."""
    h = fake_hospitals(4, seed)
    c = prepare_cases(fake_cases(n, n_hosp=4, seed=seed), h["hospital_id"])
    w = Weights.from_frame(fake_weights())
    yp = resolve_year(load_policy().with_values(ov, date=day), 2024)
    pr = price(c, w, yp, h)
    cells = build_cells(pr)
    got = hfm_points(cells, cell_points_at(cells, yp)).reshape(-1, 2, 12).transpose(1, 0, 2)
    for f, t in enumerate(all_fund_totals(pr)):
        assert got[f] == pytest.approx(t.points, rel=1e-9, abs=1e-9)


def test_special_review_share_is_one_selection_over_the_year():
    """Psychiatry stops being per diem on 1 July: a March MDCT case is per diem (no special
    review candidate), an August case is the hospital's one special review (5% of 20)."""
    pol = (
        load_policy()
        .with_values({**OFF, "special_review.enabled": True, "per_diem.enabled": True})
        .with_values({"per_diem.mdcs": []}, date="2024-07-01")
    )
    rows = [
        {"drg": "G1", "adrg": "G1", "mdc": "MDCT", "admit_date": "2024-03-01",
         "total_cost": 45000},
        {"admit_date": "2024-08-01", "total_cost": 72000},
    ] + [{"admit_date": "2024-05-01", "total_cost": 12000}] * 18
    pr = price(prepare_cases(cases(rows)), weights(), resolve_year(pol, 2024), HOSP)
    types = pr.frame()["case_type"].tolist()
    assert types[:2] == ["per_diem", "special_review"]
    # 72,000 / 10,000 x 100 = 720 points
    assert pr.points[1] == pytest.approx(720)


def test_a_year_or_month_level_value_dated_inside_the_year_is_announced():
    """A year-level key dated 1 July waits for next year and a month-level key dated 15
    March for 1 April: by the rule, but never silently (one warning naming key, date and
    when it applies). A case-level change, or a change on the 1st of a month, warns nothing."""
    import warnings

    from drgsim.policy.dated import PolicyDateWarning

    pol = load_policy().with_values({"budget.employee.growth": 0.1}, date="2024-07-01")
    pol = pol.with_values({"presettlement.prepay_share": 0.8}, date="2024-03-15")
    pol = pol.with_values({"high_cost.beta": 0.5}, date="2024-05-20")
    pol = pol.with_values({"presettlement.prepay_share": 0.85}, date="2024-06-01")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yp = resolve_year(pol, 2024)
    msgs = [str(w.message) for w in caught if issubclass(w.category, PolicyDateWarning)]
    assert len(msgs) == 1, msgs
    assert "budget.employee.growth 2024-07-01 (year level: from 2025)" in msgs[0]
    assert "presettlement.prepay_share 2024-03-15 (month level: from 2024-04-01)" in msgs[0]
    assert "beta" not in msgs[0] and "2024-06-01" not in msgs[0]
    assert yp.pv["budget"]["employee"]["growth"] == 0.05  # the rule itself is unchanged
