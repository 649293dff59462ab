"""Scenario sweeps (issue 18): prepare once, route each scenario, settle all at once.

Every route is checked against the slow obvious path: a loop of single simulations of
the same overlaid policy, to the fen.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import drgsim
from drgsim.policy import load_policy
from drgsim.pricing.fake import fake_cases, fake_hospitals, fake_weights
from drgsim.scenarios.grid import Grid, GridError, check_keys, overlaid_policy
from drgsim.scenarios.sweep import SweepError

YEAR = 2024


def _region() -> pd.DataFrame:
    rows = []
    for y in (YEAR - 1, YEAR):
        rows.append(("employee", y, 3_000_000.0, 9_000_000.0, 4_000_000.0))
        rows.append(("resident", y, 4_500_000.0, 12_000_000.0, 6_500_000.0))
    return pd.DataFrame(
        rows, columns=["fund", "year", "drg_spending", "fund_income", "other_spending"]
    )


@pytest.fixture(scope="module")
def data():
    parts = [
        fake_cases(700, n_hosp=6, seed=y, year=y).assign(
            case_id=lambda d, y=y: d["case_id"] + y * 10**6
        )
        for y in (YEAR - 2, YEAR - 1, YEAR)
    ]
    hosp = fake_hospitals(6).assign(name=lambda d: "hospital " + d["hospital_id"])
    return pd.concat(parts, ignore_index=True), hosp, _region()


@pytest.fixture(scope="module")
def base(data):
    cases, hosp, region = data
    return drgsim.prepare(cases, weights=fake_weights(), hospitals=hosp, region=region)


HOSP_COLS = [
    "cases",
    "points",
    "cost_fen",
    "payment_fen",
    "withheld_fen",
    "forfeited_fen",
    "annual_payment_fen",
    "prepaid_fen",
    "balance_fen",
    "corridor_refund_fen",
    "corridor_clawback_fen",
    "per_diem_outside_fen",
    "received_fen",
    "surplus_fen",
]
FUND_COLS = {  # sweep column -> simulate's funds column
    "budget_fen": "budget_fen",
    "reserve_fen": "reserve_fen",
    "budget_arithmetic": "budget_arithmetic",
    "pv": "pv_used",
    "pv_total_cost": "pv_total_cost_basis",
    "pv_fund": "pv_fund_basis",
    "paid_by_points_fen": "paid_by_points_fen",
    "refunds_fen": "corridor_refunds_fen",
    "clawbacks_fen": "corridor_clawbacks_fen",
    "forfeited_fen": "forfeited_fen",
    "floor_topup_fen": "pv_floor_topup_fen",
    "ceiling_withheld_fen": "pv_ceiling_withheld_fen",
}


def assert_same_as_simulate(res, s: int, tables: dict) -> None:
    """Scenario ``s`` of a sweep equals one simulation's tables, to the fen."""
    h = res.hospitals[(res.hospitals["scenario"] == s)]
    h = h[(h["cases"] > 0) | (h["per_diem_outside_fen"] != 0)]
    h = h.sort_values(["fund", "hospital_id"]).reset_index(drop=True)
    t = tables["hospitals"].sort_values(["fund", "hospital_id"]).reset_index(drop=True)
    assert len(h) == len(t)
    assert (h["hospital_id"].to_numpy() == t["hospital_id"].to_numpy()).all()
    for c in HOSP_COLS:
        if c == "points":  # float: the cells' sums, identical in the same order
            np.testing.assert_array_equal(h[c].to_numpy(), t[c].to_numpy())
        else:
            assert (h[c].to_numpy() == t[c].to_numpy()).all(), c
    f = res.funds[res.funds["scenario"] == s].set_index("fund")
    tf = tables["funds"].set_index("fund")
    for a, b in FUND_COLS.items():
        assert list(f.loc[tf.index, a]) == list(tf[b]), a
    # the fund balance's cash is what the ledger pays hospitals
    led = tables["ledger"]
    cash = -led[led["account"] == "hospital"].groupby("fund")["amount_fen"].sum()
    assert (f.loc[cash.index, "hospital_cash_fen"] == cash).all()


def simulate_overlay(data, overlay, base, **kw):
    cases, hosp, region = data
    pol = overlaid_policy(load_policy(), overlay) if overlay else load_policy()
    kw.setdefault("weights", fake_weights())
    return drgsim.simulate(
        cases,
        policy=pol,
        hospitals=hosp,
        region=region,
        reference_pv=base.reference_pv,
        **kw,
    )


def test_prepare_then_simulate_is_simulate(data, base):
    cases, hosp, region = data
    a = base.simulate()
    b = drgsim.simulate(cases, weights=fake_weights(), hospitals=hosp, region=region)
    for k in ("hospitals", "funds", "ledger", "months"):
        pd.testing.assert_frame_equal(a[k], b[k])


def test_baseline_scenario_reproduces_simulate(data, base):
    res = base.sweep(Grid({"budget.*.growth": [0.03, 0.07]}))
    assert res.scenarios.loc[0, "name"] == "baseline"
    assert_same_as_simulate(res, 0, base.simulate())
    b = res.hospitals[res.hospitals["scenario"] == 0]
    assert (b["delta_fen"] == 0).all()
    assert b["hospital_name"].str.startswith("hospital H").all()
    assert b["level"].notna().all()


ROUTE_CASES = {
    "settlement": [
        {"budget.*.growth": 0.08, "point_value.basis": "fund"},
        {"hospital_corridor.loss_share": 0.3, "presettlement.prepay_share": {"2024-07-01": 0.7}},
        {"point_value.bounds.floor": 0.97, "point_value.bounds.ceiling": 1.01},
        {"region_corridor.enabled": True, "budget.resident.growth": -0.2},
    ],
    "cells": [
        {"high_cost.beta": 0.7},
        {"low_cost.factor": 0.45, "caps.max_points_multiple": 4.0},
        {
            "high_cost.tiers": [
                {"rw_upto": 1.0, "k": 2.5},
                {"rw_upto": 3.0, "k": 1.8},
                {"rw_upto": None, "k": 1.4},
            ]
        },
    ],
    "rows": [
        {"coefficients.by_level.二级": 0.95},
        {"readmission.points_factor": 0.3, "ungroupable.discount": 0.6},
        {"high_cost.beta": {"2024-07-01": 0.6}},  # a change inside the year: the rows
    ],
}


@pytest.mark.parametrize("route", list(ROUTE_CASES))
def test_route_equals_loop_of_simulations(data, base, route):
    overlays = ROUTE_CASES[route]
    res = base.sweep(overlays)
    assert (res.routes["route"].iloc[1:] == route).all(), res.routes
    for s, ov in enumerate(overlays, start=1):
        assert_same_as_simulate(res, s, simulate_overlay(data, ov, base))


def test_cells_error_falls_back_to_rows(data):
    cases, hosp, region = data
    prec = [
        "high_cost",
        "per_diem",
        "special_review",
        "ungroupable",
        "short_stay",
        "low_cost",
        "normal",
    ]
    pol = load_policy().with_values({"case_types.precedence": prec})
    b = drgsim.prepare(cases, policy=pol, weights=fake_weights(), hospitals=hosp, region=region)
    ov = {"low_cost.factor": 0.2}
    res = b.sweep([ov])
    assert res.routes.loc[1, "route"] == "rows"
    assert "cells cannot re-price" in res.routes.loc[1, "reason"]
    t = drgsim.simulate(
        cases,
        policy=overlaid_policy(pol, ov),
        weights=fake_weights(),
        hospitals=hosp,
        region=region,
        reference_pv=b.reference_pv,
    )
    assert_same_as_simulate(res, 1, t)


def test_recalibrate_route(data):
    cases, hosp, region = data
    b = drgsim.prepare(cases, hospitals=hosp, region=region)
    ovs = [{"calibration.inflation": 0.08}, {"calibration.fallback": ["mdc", "all"]}]
    res = b.sweep(ovs)
    assert list(res.routes["route"]) == ["settlement", "recalibrate", "recalibrate"]
    for s, ov in enumerate(ovs, start=1):
        t = drgsim.simulate(
            cases,
            policy=overlaid_policy(load_policy(), ov),
            hospitals=hosp,
            region=region,
            reference_pv=b.reference_pv,
        )
        assert_same_as_simulate(res, s, t)
    assert_same_as_simulate(res, 0, b.simulate())


def test_calibration_keys_refused_with_given_weights(base):
    with pytest.raises(SweepError, match="weights were given"):
        base.sweep([{"calibration.inflation": 0.08}])


def conserved(res) -> None:
    f = res.funds
    h = res.hospitals
    hs = h.groupby(["scenario", "draw", "fund"])[
        ["payment_fen", "prepaid_fen", "balance_fen", "forfeited_fen", "annual_payment_fen"]
    ].sum()
    f = f.set_index(["scenario", "draw", "fund"])
    # every fen distributed by points reaches a hospital, the forfeits stay with the fund
    assert (hs["payment_fen"] == f.loc[hs.index, "paid_by_points_fen"]).all()
    assert (hs["prepaid_fen"] + hs["balance_fen"] == hs["annual_payment_fen"]).all()
    assert (hs["annual_payment_fen"] + hs["forfeited_fen"] == hs["payment_fen"]).all()
    assert (f["forfeited_fen"].loc[hs.index] == hs["forfeited_fen"]).all()
    # the point value is bounded only through explicit lines
    d = f["paid_by_points_fen"] - f["distributable_fen"]
    assert (d == f["floor_topup_fen"] - f["ceiling_withheld_fen"]).all()
    # fund balance = income − other spending − cash to hospitals
    cash = (
        hs["prepaid_fen"]
        + hs["balance_fen"]
        + h.groupby(["scenario", "draw", "fund"])[["corridor_refund_fen", "per_diem_outside_fen"]]
        .sum()
        .sum(axis=1)
        - h.groupby(["scenario", "draw", "fund"])["corridor_clawback_fen"].sum()
    )
    assert (f.loc[cash.index, "hospital_cash_fen"] == cash).all()
    inc = {"employee": 500_000_000, "resident": 550_000_000}
    fb = f["fund_balance_fen"].astype("int64")
    exp = f.index.get_level_values("fund").map(inc).to_numpy() - f["hospital_cash_fen"]
    assert (fb.to_numpy() == exp.to_numpy()).all()


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    growth=st.lists(st.floats(-0.3, 0.3), min_size=1, max_size=3),
    beta=st.lists(st.sampled_from([0.5, 0.8, 1.0]), min_size=1, max_size=2, unique=True),
    floor=st.lists(st.sampled_from([None, 0.9, 0.99, 1.02]), min_size=1, max_size=2, unique=True),
    basis=st.sampled_from(["total_cost", "fund"]),
    rc=st.booleans(),
)
def test_conservation_in_every_scenario(base, growth, beta, floor, basis, rc):
    g = Grid(
        {
            "budget.*.growth": [round(x, 4) for x in growth],
            "high_cost.beta": beta,
            "point_value.bounds.floor": floor,
            "point_value.basis": [basis],
            "region_corridor.enabled": [rc],
        }
    )
    res = base.sweep(g)
    assert len(res.scenarios) == 1 + len(growth) * len(beta) * len(floor)
    conserved(res)


def test_chunking_changes_nothing(base):
    g = Grid({"budget.*.growth": "0.0:0.1:0.02", "high_cost.beta": [0.8, 1.0]})
    a = base.sweep(g)
    for chunk in (1, 5):
        b = base.sweep(g, chunk=chunk)
        pd.testing.assert_frame_equal(a.hospitals, b.hospitals)
        pd.testing.assert_frame_equal(a.funds, b.funds)


def test_monthly_only_on_request(base):
    a = base.sweep([{"high_cost.beta": 0.8}])
    assert a.months is None
    b = base.sweep([{"high_cost.beta": 0.8}], monthly=True)
    m = b.months
    t = base.simulate()["months"]
    m0 = m[m["scenario"] == 0].sort_values(["fund", "hospital_id", "month"])
    t = t.sort_values(["fund", "hospital_id", "month"])
    assert (m0["final_payment_fen"].to_numpy() == t["final_payment_fen"].to_numpy()).all()
    assert (m0["prepaid_fen"].to_numpy() == t["prepaid_fen"].to_numpy()).all()
    s = m.groupby(["scenario", "fund", "hospital_id"])["final_payment_fen"].sum()
    h = b.hospitals.set_index(["scenario", "fund", "hospital_id"])["payment_fen"]
    assert (s == h.loc[s.index]).all()


def test_summary(base):
    res = base.sweep(Grid({"budget.*.growth": [-0.1, 0.1]}))
    s = res.summary(losing=-0.02)
    assert list(s["scenario"]) == [0, 1, 2]
    assert s.loc[0, "change_p50"] == 0 and s.loc[0, "n_losing"] == 0
    assert s.loc[1, "change_p50"] < 0 < s.loc[2, "change_p50"]
    assert s.loc[1, "n_losing"] > 0
    assert s.loc[1, "pv_employee"] < s.loc[0, "pv_employee"] < s.loc[2, "pv_employee"]
    assert s.loc[1, "fund_balance_fen"] > s.loc[0, "fund_balance_fen"]
    assert 0 < s.loc[0, "drg_coverage"] < 1.5
    assert {"change_p50_三级", "change_p5_二级", "change_p5", "change_p95"} <= set(s.columns)


def test_fund_balance_absent_without_region_columns(data):
    cases, hosp, region = data
    b = drgsim.prepare(
        cases,
        weights=fake_weights(),
        hospitals=hosp,
        region=region.drop(columns=["fund_income"]),
    )
    res = b.sweep([{"budget.*.growth": 0.02}])
    assert res.funds["fund_balance_fen"].isna().all()
    assert any("fund balance is absent" in n for n in res.notes)


# ------------------------------------------------------------------ grids and keys


def test_grid_forms():
    g = Grid({"a.b": {"min": 0, "max": 1, "count": 3}, "c": "1:2:0.5"})
    assert g.scenarios()[0] == {}
    assert len(g.scenarios()) == 1 + 9
    z = Grid({"a.b": [1, 2, 3], "c": [4, 5, 6], "d": [7, 8]}, zip=[["a.b", "c"]])
    assert len(z.scenarios()) == 1 + 6
    assert z.scenarios()[1] == {"a.b": 1, "c": 4, "d": 7}
    with pytest.raises(GridError, match="differ in length"):
        Grid({"a": [1, 2], "b": [1, 2, 3]}, zip=True).scenarios()
    with pytest.raises(GridError, match="min <= max"):
        Grid({"a": {"min": 2, "max": 1, "count": 3}}).scenarios()
    with pytest.raises(GridError, match="step > 0"):
        Grid({"a": "1:2:0"}).scenarios()


def test_star_expands_over_funds_and_entries():
    pol = load_policy()
    assert check_keys(["budget.*.growth"], pol) == [
        "budget.employee.growth",
        "budget.resident.growth",
    ]
    assert check_keys(["coefficients.by_level.*"], pol) == [
        "coefficients.by_level.3",
        "coefficients.by_level.2",
        "coefficients.by_level.1",
    ]
    p = overlaid_policy(pol, {"coefficients.by_level.*": 0.9, "budget.*.growth": 0.01})
    at = p.at("2024-03-01")
    assert at["coefficients"]["by_level"] == {"3": 0.9, "2": 0.9, "1": 0.9}
    assert at["budget"]["employee"]["growth"] == at["budget"]["resident"]["growth"] == 0.01


@pytest.mark.parametrize(
    ("key", "hint"),
    [("budget.growth", "budget.*.growth"), ("high_cost.bta", "high_cost.beta")],
)
def test_unknown_key_did_you_mean(base, key, hint):
    with pytest.raises(GridError) as e:
        base.sweep(Grid({key: [0.1, 0.2]}))
    msg = str(e.value)
    assert "\n" not in msg and key in msg and f"did you mean {hint}?" in msg


def test_bad_value_names_the_scenario(base):
    with pytest.raises(GridError, match="high_cost.beta.*above the maximum"):
        base.sweep([{"high_cost.beta": 3.0}])


def test_behaviour_keys_refused_without_the_module(base):
    import importlib.util

    if importlib.util.find_spec("drgsim.scenarios.behaviour") is not None:
        pytest.skip("the behaviour module is installed")
    with pytest.raises(SweepError, match="behaviour"):
        base.sweep([{"behaviour.volume_growth": 0.04}])
    with pytest.raises(SweepError, match="draws"):
        base.sweep([{"high_cost.beta": 0.8}], draws=10, seed=1)


# ------------------------------------------------------- behaviour (with sweep-behaviour's module)

needs_behaviour = pytest.mark.skipif(
    __import__("importlib").util.find_spec("drgsim.scenarios.behaviour") is None,
    reason="drgsim.scenarios.behaviour is not installed on this branch",
)


@needs_behaviour
def test_fixed_behaviour_equals_its_row_definition(base):
    from drgsim.scenarios import behaviour as mod
    from drgsim.settlement.scenarios import ScenarioParams, settle_scenarios

    ov = {"behaviour.volume_growth": 0.04, "behaviour.cost_inflation": 0.03, "high_cost.beta": 0.8}
    res = base.sweep([ov])
    conserved(res)
    yp = drgsim.policy.resolve_year(overlaid_policy(load_policy(), ov), YEAR)
    lv = mod.hospital_levels(base.priced.cases.hospital_ids, base.hosp_df)
    vals = {"volume_growth": np.array([0.04]), "cost_inflation": np.array([0.03])}
    t = mod.apply_rows(base.priced, base.W, vals, {}, lv, yp)
    f = res.funds[res.funds["scenario"] == 1].set_index("fund")
    for fi, name in enumerate(("employee", "resident")):
        pts, shr, cst = t.fund(fi)
        sp = ScenarioParams.from_policies(
            [yp.pv], name, [yp.months], (base.reference_pv or {}).get(name)
        )
        r = settle_scenarios(
            pts,
            shr,
            cst,
            np.array([f.loc[name, "budget_fen"]]),
            np.array([f.loc[name, "reserve_fen"]]),
            sp,
            base.scores,
        )
        h = res.hospitals[(res.hospitals["scenario"] == 1) & (res.hospitals["fund"] == name)]
        rec = (r["received"] + r["refund"] - r["clawback"])[0]
        ids = list(base.priced.cases.hospital_ids)
        assert (h["received_fen"].to_numpy() == rec[[ids.index(x) for x in h["hospital_id"]]]).all()


@needs_behaviour
def test_los_change_equals_simulating_changed_cases(data, base):
    from drgsim.scenarios import behaviour as mod

    cases, hosp, region = data
    res = base.sweep([{"behaviour.los_change": 0.8}])
    assert res.routes.loc[1, "route"] == "rows"
    t = drgsim.simulate(
        mod.apply_los(cases, 0.8),
        weights=fake_weights(),
        hospitals=hosp,
        region=region,
        reference_pv=base.reference_pv,
    )
    assert_same_as_simulate(res, 1, t)


@needs_behaviour
def test_draws_seeded_and_chunking(base):
    ov = [{"behaviour.volume_growth": {"dist": "normal", "mean": 0.03, "sd": 0.01}}]
    a = base.sweep(ov, draws=6, seed=3)
    b = base.sweep(ov, draws=6, seed=3, chunk=4)
    c = base.sweep(ov, draws=6, seed=4)
    pd.testing.assert_frame_equal(a.funds, b.funds)
    pd.testing.assert_frame_equal(a.hospitals, b.hospitals)
    assert not a.funds["pv"].equals(c.funds["pv"])
    assert a.funds["draw"].nunique() == 6
    conserved(a)


def test_fast_overlay_equals_the_general_path():
    from drgsim.policy import resolve_year
    from drgsim.scenarios.grid import overlaid_year

    pol = load_policy().with_values(
        {"high_cost.beta": 0.9, "presettlement.prepay_share": 0.8}, "2024-07-01"
    )
    yp = resolve_year(pol, YEAR)
    for ov in (
        {"budget.*.growth": 0.02, "presettlement.prepay_share": 0.7},
        {"low_cost.factor": 0.35, "coefficients.default": 0.8},
        {"high_cost.beta": {"2024-03-01": 0.5}},
        {"coefficients.by_level.2": 0.9},
        {"high_cost.beta": 0.7},  # the baseline's only case-level change day goes
    ):
        _, fast = overlaid_year(pol, yp, ov)
        slow = resolve_year(overlaid_policy(pol, ov), YEAR)
        assert fast.pv == slow.pv
        assert fast.segments == slow.segments and fast.months == slow.months
        assert np.array_equal(fast.starts, slow.starts)


def test_scenario_spec_duck_typed(base):
    from dataclasses import dataclass, field

    @dataclass
    class Spec:  # the shape of sweep-io's ScenarioSpec
        name: str = "s"
        base: str = "baseline"
        set: dict = field(default_factory=lambda: {"high_cost.beta": 0.9})
        behaviour: dict = field(default_factory=dict)
        draws_n: int | None = None
        seed: int | None = None
        file: str = "s.yaml"

        def grid(self):
            return Grid({"budget.*.growth": [0.01, 0.03]})

    res = base.sweep(Spec())
    assert list(res.scenarios["name"])[0] == "baseline"
    assert len(res.scenarios) == 3
    assert res.scenarios["high_cost.beta"].isna().tolist() == [True, False, False]
    assert list(res.scenarios["high_cost.beta"].iloc[1:]) == [0.9, 0.9]
    assert list(res.routes["route"]) == ["settlement", "cells", "cells"]
    with pytest.raises(SweepError, match="base other is not the policy"):
        base.sweep(Spec(base="other"))


@needs_behaviour
def test_draws_equal_their_fixed_values_in_any_chunks(base):
    """Each draw of inflation, creep and per-level volume is, row by row, the sweep of its
    drawn values as fixed assumptions; blocks of draws settled together change nothing."""
    from drgsim.scenarios.behaviour import draw_values, parse_behaviour

    beh = {
        "cost_inflation": {"dist": "uniform", "min": -0.3, "max": 0.6},
        "coding_creep": {"dist": "uniform", "min": 0.0, "max": 0.5},
        "volume_growth.by_level.三级": {"dist": "normal", "mean": 0.02, "sd": 0.05, "min": -0.5},
    }
    ov = [{f"behaviour.{k}": v for k, v in beh.items()}]
    a = base.sweep(ov, draws=5, seed=9)
    b = base.sweep(ov, draws=5, seed=9, chunk=2)
    pd.testing.assert_frame_equal(a.hospitals, b.hospitals)
    pd.testing.assert_frame_equal(a.funds, b.funds)
    vals = draw_values(parse_behaviour(beh), draws=5, seed=9)
    for d in (0, 3):
        one = base.sweep([{f"behaviour.{k}": float(v[d]) for k, v in vals.items()}])
        for got, want in ((a.hospitals, one.hospitals), (a.funds, one.funds)):
            x = got[(got["scenario"] == 1) & (got["draw"] == d)].drop(columns="draw")
            y = want[want["scenario"] == 1].drop(columns="draw")
            pd.testing.assert_frame_equal(x.reset_index(drop=True), y.reset_index(drop=True))
    conserved(a)
