"""Each case type, each precedence conflict and bad input, priced by hand.

Weights: G1 RW 0.5 (50 points, m 5,000 yuan, 5 per-diem points a day), G2 RW 1.2
(120 points, m 12,000), m_all 10,000; one 三级 hospital (c 1.0) unless stated.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from drgsim.policy import load_policy
from drgsim.pricing import Weights, prepare_cases, price
from drgsim.pricing.money import largest_remainder, mul_ratio_half_up, yuan_to_fen

OFF = {
    "special_review.enabled": False,
    "readmission.enabled": False,
    "short_stay.enabled": False,
    "per_diem.enabled": False,
}


def weights() -> Weights:
    w = pd.DataFrame(
        {
            "key": ["G1", "G2", "all"],
            "level": ["drg", "drg", "all"],
            "rw": [0.5, 1.2, 1.0],
            "points": [50.0, 120.0, 100.0],
            "mean_cost_fen": [500_000, 1_200_000, 1_000_000],
            "per_diem_points": [5.0, np.nan, 6.0],
        }
    )
    w.attrs["m_all_fen"] = 1_000_000
    return Weights.from_frame(w)


def cases(rows: list[dict]) -> pd.DataFrame:
    base = {
        "hospital_id": "H1",
        "fund": "employee",
        "admit_date": "2024-03-01",
        "los_days": 7,
        "drg": "G2",
        "adrg": "G2",
        "mdc": "MDCX",
        "status": "ok",
        "patient_share": 0,
    }
    out = []
    for i, r in enumerate(rows):
        d = {**base, "case_id": i + 1, "patient_id": f"p{i}", **r}
        d.setdefault(
            "discharge_date",
            str(np.datetime64(d["admit_date"]) + np.timedelta64(int(d["los_days"]), "D")),
        )
        out.append(d)
    return pd.DataFrame(out)


HOSP = pd.DataFrame({"hospital_id": ["H1", "H2"], "level": ["三级", "二级"]})


def run(rows, overlay=None):
    pv = load_policy().with_values({**OFF, **(overlay or {})}).at(2024)
    pr = price(prepare_cases(cases(rows), HOSP["hospital_id"]), weights(), pv, HOSP)
    f = pr.frame()
    return f["case_type"].tolist(), pr.points, f


def test_normal_high_low():
    types, pts, _ = run([{"total_cost": 12000}, {"total_cost": 30000}, {"total_cost": 3600}])
    assert types == ["normal", "high_cost", "low_cost"]
    # 120; 120 + 120 x (30,000/12,000 - 2) x 1 = 180; 120 x 3,600/12,000 = 36
    assert pts == pytest.approx([120, 180, 36])


def test_coefficient_and_beta():
    _, pts, _ = run([{"hospital_id": "H2", "total_cost": 30000}], {"high_cost.beta": 0.5})
    # 二级 c = 0.85: 120 x 0.85 + 120 x (2.5 - 2) x 0.5 = 102 + 30 = 132
    assert pts == pytest.approx([132])


def test_ungroupable_and_ambiguous():
    types, pts, _ = run(
        [
            {"drg": "0000", "adrg": "", "status": "ungroupable", "total_cost": 8000},
            {"drg": "GQY", "adrg": "", "status": "ambiguous_qy", "total_cost": 5000},
        ]
    )
    assert types == ["ungroupable", "ungroupable"]
    # 8,000/10,000 x 100 x 0.8 = 64; 5,000/10,000 x 100 x 0.8 = 40
    assert pts == pytest.approx([64, 40])


def test_per_diem_and_its_cap():
    ov = {"per_diem.enabled": True}
    types, pts, _ = run(
        [
            {"drg": "G1", "adrg": "G1", "mdc": "MDCT", "los_days": 20, "total_cost": 9000},
            {"drg": "G1", "adrg": "G1", "los_days": 70, "total_cost": 9000},
            {"drg": "G1", "adrg": "G1", "los_days": 200, "total_cost": 9000},
            {"drg": "G2", "los_days": 65, "total_cost": 9000},
        ],
        ov,
    )
    assert types == ["per_diem"] * 4
    # 5 x 20 = 100 (MDCT); 5 x 70 = 350 (LOS >= 60); 5 x min(200, 180) = 900;
    # G2 has no rate of its own: the all-case 6 a day x 65 = 390
    assert pts == pytest.approx([100, 350, 900, 390])


def test_special_review_share_per_hospital():
    ov = {"special_review.enabled": True, "special_review.share": 0.25}
    rows = [
        {"total_cost": 70000},
        {"total_cost": 80000},
        {"total_cost": 12000},
        {"total_cost": 12000},
    ]
    types, pts, _ = run(rows, ov)
    # two candidates (cost/m >= 5) but 25% of 4 cases = 1: the higher ratio (80,000)
    assert types == ["high_cost", "special_review", "normal", "normal"]
    # 80,000 / 10,000 x 100 = 800; the other is high-cost: 120 + 120 x (70,000/12,000 - 2) = 580
    assert pts == pytest.approx([580, 800, 120, 120])


def test_readmission_cut_and_window():
    ov = {"readmission.enabled": True}
    rows = [
        {"patient_id": "A", "admit_date": "2024-03-01", "los_days": 5, "total_cost": 12000},
        {
            "patient_id": "A",
            "admit_date": "2024-03-16",
            "los_days": 5,
            "total_cost": 12000,
        },  # 10 days later
        {"patient_id": "B", "admit_date": "2024-03-01", "los_days": 5, "total_cost": 12000},
        {
            "patient_id": "B",
            "admit_date": "2024-03-27",
            "los_days": 5,
            "total_cost": 12000,
        },  # 21 days later
        {"patient_id": "C", "admit_date": "2024-03-01", "los_days": 5, "total_cost": 12000},
        {
            "patient_id": "C",
            "hospital_id": "H2",
            "admit_date": "2024-03-08",
            "los_days": 5,
            "total_cost": 12000,
        },
    ]
    types, pts, f = run(rows, ov)
    # a modifier, not a case type: the later case stays normal and is flagged and cut
    assert types == ["normal"] * 6
    assert f["readmission"].tolist() == [False, True, False, False, False, False]
    # the later case is cut: 120 x 0.5 = 60; another hospital is not a readmission (102 = 120 x 0.85)
    assert pts == pytest.approx([120, 60, 120, 120, 120, 102])
    assert f["factor"].tolist() == [1, 0.5, 1, 1, 1, 1]


def test_precedence_readmission_that_is_high_cost():
    rows = [
        {"patient_id": "A", "admit_date": "2024-03-01", "los_days": 5, "total_cost": 12000},
        {"patient_id": "A", "admit_date": "2024-03-10", "los_days": 5, "total_cost": 30000},
    ]
    types, pts, f = run(rows, {"readmission.enabled": True})
    # baseline (readmission.mode modifier): a high-cost case whose points are cut:
    # (120 + 120 x (30,000/12,000 - 2)) x 0.5 = 180 x 0.5 = 90 -- the premium survives the cut
    assert types[1] == "high_cost" and pts[1] == pytest.approx(90)
    assert f["premium_points"][1] == pytest.approx(60) and f["readmission"][1]
    old = [
        "per_diem",
        "special_review",
        "ungroupable",
        "readmission",
        "short_stay",
        "high_cost",
        "low_cost",
        "normal",
    ]
    old_mode = {
        "readmission.enabled": True,
        "readmission.mode": "case_type",
        "case_types.precedence": old,
    }
    types, pts, f = run(rows, old_mode)
    # the old behaviour on request: a readmission type before high_cost, normal points cut
    assert types[1] == "readmission" and pts[1] == pytest.approx(60)
    order = [*old[:3], "high_cost", "readmission", *old[4:5], *old[6:]]
    types, pts, _ = run(rows, {**old_mode, "case_types.precedence": order})
    # high_cost first: 120 + 120 x (2.5 - 2) = 180, not cut
    assert types[1] == "high_cost" and pts[1] == pytest.approx(180)


def test_readmission_cut_after_the_cap_and_on_low_cost():
    rows = [
        {"patient_id": "A", "admit_date": "2024-03-01", "los_days": 5, "total_cost": 12000},
        {"patient_id": "A", "admit_date": "2024-03-10", "los_days": 5, "total_cost": 300000},
        {"patient_id": "B", "admit_date": "2024-03-01", "los_days": 5, "total_cost": 12000},
        {"patient_id": "B", "admit_date": "2024-03-10", "los_days": 5, "total_cost": 3600},
    ]
    ov = {"readmission.enabled": True, "caps.max_points_multiple": 10.0}
    types, pts, _ = run(rows, ov)
    # high-cost 120 + 120 x (25 - 2) = 2,880, capped at 1,200, then cut: 600;
    # low-cost 120 x 3,600/12,000 = 36, cut: 18
    assert types == ["normal", "high_cost", "normal", "low_cost"]
    assert pts == pytest.approx([120, 600, 120, 18])


def test_policy_refuses_readmission_mode_against_precedence():
    from drgsim.policy import PolicyError

    with pytest.raises(PolicyError, match="remove readmission from the precedence"):
        load_policy().with_values(
            {"case_types.precedence": ["readmission", "high_cost", "low_cost", "normal"]}
        )
    with pytest.raises(PolicyError, match="list readmission in the precedence"):
        load_policy().with_values({"readmission.mode": "case_type"})


def test_precedence_short_stay_that_is_low_cost():
    rows = [
        {"los_days": 1, "total_cost": 3000},
        {"los_days": 1, "total_cost": 9000},
        {"los_days": 1, "total_cost": 20000},
    ]
    types, pts, _ = run(rows, {"short_stay.enabled": True})
    # short stay wins over low-cost: 120 x min(3,000/12,000, 1) = 30; 120 x 0.75 = 90; 120 x min(1.67, 1) = 120
    assert types == ["short_stay"] * 3
    assert pts == pytest.approx([30, 90, 120])
    types, pts, _ = run(rows, {"short_stay.enabled": True, "short_stay.pricing": "zero"})
    assert pts == pytest.approx([0, 0, 0])


def test_cap():
    _, pts, _ = run([{"total_cost": 300000}], {"caps.max_points_multiple": 10.0})
    # 120 + 120 x (25 - 2) = 2,880, capped at 10 x 120 = 1,200
    assert pts == pytest.approx([1200])


def test_bad_input_listed_never_dropped():
    rows = [
        {"total_cost": None},
        {"total_cost": -5},
        {"hospital_id": "H9", "total_cost": 1000},
        {"drg": "ZZ19", "adrg": "ZZ1", "mdc": "MDCZ", "total_cost": 1000},
        {"status": "check_failed", "drg": "0000", "adrg": "", "total_cost": 1000},
        {"fund": "mystery", "total_cost": 1000},
        {"total_cost": 12000},
    ]
    _, pts, f = run(rows, {"calibration.fallback": ["adrg", "mdc"]})
    assert f["pay_status"].tolist() == [
        "missing_cost",
        "negative_cost",
        "unknown_hospital",
        "no_weight",
        "held_for_review",
        "unknown_fund",
        "ok",
    ]
    assert f["status"].tolist()[4] == "check_failed"  # the grouper's status is kept beside it
    assert pts == pytest.approx([0, 0, 0, 0, 0, 0, 120])
    assert len(f) == len(rows)


def test_yuan_to_fen_all_kinds():
    fen, ok = yuan_to_fen(pd.Series(["1.005", "2", " 3.10 ", "x", "", None, "-1.5"]))
    assert fen.tolist()[:3] == [101, 200, 310] and ok.tolist() == [
        True,
        True,
        True,
        False,
        False,
        False,
        True,
    ]
    assert fen[6] == -150
    fen, ok = yuan_to_fen(pd.Series([1.005, 2.675, np.nan, 0.125]))
    assert fen.tolist() == [101, 268, 0, 13] and ok.tolist() == [True, True, False, True]
    dec = pa.array([Decimal("1.005"), Decimal("12.34"), None], pa.decimal128(14, 3))
    fen, ok = yuan_to_fen(dec)
    assert fen.tolist() == [101, 1234, 0] and ok.tolist() == [True, True, False]


def test_largest_remainder_and_half_up():
    # 100 split 1:1:1 -> 33.33 each: the extra unit goes to the smallest id
    assert largest_remainder(np.array([100 / 3] * 3), 100, np.array([3, 1, 2])).tolist() == [
        33,
        34,
        33,
    ]
    assert largest_remainder(np.array([0.6, 0.4, 1.0]), 2).tolist() == [1, 0, 1]
    assert mul_ratio_half_up(np.array([283_361, 3, -3]), 0.5).tolist() == [141_681, 2, -2]


def test_grouped_largest_remainder_matches_reference():
    from drgsim.pricing.money import grouped_largest_remainder, largest_remainder_reference

    rng = np.random.default_rng(5)
    for _ in range(30):
        g = int(rng.integers(1, 6))
        n = int(rng.integers(g, 60))
        groups = rng.integers(0, g, n)
        groups[:g] = np.arange(g)
        q = np.round(rng.uniform(-50, 500, n), int(rng.integers(0, 3)))  # rounding makes ties
        totals = np.array(
            [int(round(q[groups == k].sum())) + int(rng.integers(-2, 3)) for k in range(g)]
        )
        order = rng.permutation(n)
        got = grouped_largest_remainder(q, groups, totals, order)
        assert (got == largest_remainder_reference(q, groups, totals, order)).all()
        assert (np.bincount(groups, weights=got, minlength=g) == totals).all()


def test_per_diem_fixed_rate():
    ov = {"per_diem.enabled": True, "per_diem.rate_yuan": 500.0}
    _, pts, _ = run([{"drg": "G2", "mdc": "MDCT", "los_days": 20, "total_cost": 9000}], ov)
    # 500 yuan a day = 500 / 10,000 x 100 = 5 points a day; x 20 days
    assert pts == pytest.approx([100])


def test_coefficient_blend_band_phase():
    hosp = HOSP.assign(coefficient=[1.2, np.nan])
    ov = {
        "coefficients.method": "blend",
        "coefficients.hospital_weight": 0.5,
        "coefficients.band_upper": 1.05,
        "coefficients.phase_to_one": 0.5,
    }
    pv = load_policy().with_values({**OFF, **ov}).at(2024)
    rows = [{"total_cost": 12000}, {"hospital_id": "H2", "total_cost": 12000}]
    pr = price(prepare_cases(cases(rows), hosp["hospital_id"]), weights(), pv, hosp)
    # H1: 0.5 x 1.2 + 0.5 x 1.0 = 1.1 -> band 1.05 -> halfway to 1: 1.025 -> 120 x 1.025 = 123
    # H2 has no coefficient of its own: its cost index 12,000/12,000 = 1.0 blended with 0.85
    #   = 0.925 -> halfway to 1: 0.9625 -> 115.5
    assert pr.points == pytest.approx([123, 115.5])


def test_implausible_cost_and_los_held():
    rows = [
        {"total_cost": 12000 * 51},
        {"los_days": 400, "total_cost": 12000},
        {"total_cost": 12000 * 49},
    ]
    _, pts, f = run(rows, {"caps.max_points_multiple": None})
    assert f["pay_status"].tolist() == ["implausible_cost", "implausible_los", "ok"]
    # 49 x m is still paid: 120 + 120 x (49 - 2) = 5,760
    assert pts == pytest.approx([0, 0, 5760])


@pytest.mark.parametrize("same", ["adrg", "drg", "mdc", "any"])
def test_readmission_kernel_matches_reference(same):
    from drgsim.pricing.core import link_readmissions, link_readmissions_reference
    from drgsim.pricing.fake import fake_cases

    df = fake_cases(4000, n_hosp=3, n_drg=8, seed=11)
    df.loc[df.index[::97], "patient_id"] = None  # missing ids link to nothing
    c = prepare_cases(df)
    el = np.random.default_rng(1).random(c.n) < 0.9
    got = link_readmissions(c, 15, same, el)
    assert got.any()
    assert (got == link_readmissions_reference(c, 15, same, el)).all()


def test_statuses_have_one_source():
    """Pricing, the policy schema and the grouper share the grouper's status list."""
    from drgsim.policy.schema import SCHEMA
    from drgsim.pricing import cases as pc
    from drgsim.scheme.spec import STATUSES

    assert pc.STATUSES is STATUSES
    assert tuple(SCHEMA["statuses"]) == STATUSES[1:]


def test_per_diem_priced_at_its_category_rate():
    w = weights().table.copy()
    cat = pd.DataFrame(
        {
            "key": ["MDCT", "long_stay"],
            "level": ["per_diem", "per_diem"],
            "rw": np.nan,
            "points": np.nan,
            "mean_cost_fen": 0,
            "per_diem_rate_fen": [40_000.0, 30_000.0],  # 400 and 300 yuan a day (ratio of sums)
            "per_diem_case_rate_fen": [70_000.0, 35_000.0],  # the mean of case rates
        }
    )
    t = pd.concat([w, cat], ignore_index=True)
    t.attrs["m_all_fen"] = 1_000_000
    W = Weights.from_frame(t)
    rows = [
        {"drg": "G1", "adrg": "G1", "mdc": "MDCT", "los_days": 20, "total_cost": 9000},
        {"drg": "G2", "adrg": "G2", "los_days": 70, "total_cost": 9000},
    ]
    for basis, per_day in (("total_over_days", [4.0, 3.0]), ("mean_of_case_rates", [7.0, 3.5])):
        pv = (
            load_policy()
            .with_values({**OFF, "per_diem.enabled": True, "per_diem.rate_basis": basis})
            .at(2024)
        )
        pr = price(prepare_cases(cases(rows), HOSP["hospital_id"]), W, pv, HOSP)
        # 400 yuan / 10,000 x 100 = 4 points a day x 20 days; the long stay 3 x 70
        assert pr.points == pytest.approx([per_day[0] * 20, per_day[1] * 70]), basis
