"""Behaviour assumptions on a DIP region (issues 18, 19): volume growth and cost inflation
re-priced on the DIP cells (inclusive 0.5C/2C boundaries, the 5C extreme zone, per-cell
multipliers) equal their row definitions, and pricing itself where it can express them; a
sweep equals a loop of single simulations of the transformed cases, to the fen; LOS change
takes the rows route; coding creep is refused (DIP packets have no severity siblings).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_dip_money import HOSP, PACKET, cases, catalogue, dip_pv, random_rows
from test_sweep_behaviour import assert_totals_equal
from test_sweep_core import FUND_COLS, HOSP_COLS

import drgsim
from drgsim.dip.price import dip_frame, dip_weights
from drgsim.errors import ScenarioError
from drgsim.policy import load_policy
from drgsim.pricing.cases import prepare_cases
from drgsim.pricing.cells import build_cells
from drgsim.pricing.core import CASE_TYPES, price
from drgsim.scenarios.behaviour import (
    apply_cells,
    apply_cells_stacked,
    apply_rows,
    draw_values,
    hospital_levels,
    parse_behaviour,
    prepare_cells,
    rows_frame,
)
from drgsim.scenarios.sweep import SweepError

MODES = [
    {},
    {"dip.outliers.extreme_mode": "coefficient"},
    {"dip.outliers.coef_on_outliers": False, "dip.outliers.extreme_mode": "coefficient"},
    {"dip.outliers.inclusive": False},
    {"dip.outliers.extreme_mode": "review", "caps.max_points_multiple": 3.0},
]
VALUES = [
    {"cost_inflation": 0.25},
    {"cost_inflation": -0.3},
    {"volume_growth": 0.04, "cost_inflation": 0.11},
    {"cost_inflation": 0.05, "cost_inflation.by_level.三级": 0.6},
    {"volume_growth.by_level.一级": -0.2, "volume_growth.by_hospital.H3": 0.3333},
]


def priced_w(rows: list[tuple], pv: dict | None = None):
    """test_dip_money's ``priced`` with the weights it priced with."""
    df = cases(rows)
    W = dip_weights(catalogue(), df)
    c = prepare_cases(dip_frame(df), HOSP["hospital_id"])
    return price(c, W, pv or dip_pv(), HOSP), W


def _bc(pr, W):
    lv = hospital_levels(pr.cases.hospital_ids, HOSP)
    return prepare_cells(pr, build_cells(pr), W, {}, lv), lv


@pytest.mark.parametrize("mode", MODES, ids=lambda m: ",".join(f"{k}={v}" for k, v in m.items()))
@pytest.mark.parametrize("values", VALUES, ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()))
def test_dip_cells_equal_rows(mode, values):
    pr, W = priced_w(random_rows(7), dip_pv(**mode))
    bc, lv = _bc(pr, W)
    rows = apply_rows(pr, W, values, {}, lv)
    assert_totals_equal(apply_cells(bc, values), rows)
    base = apply_rows(pr, W, {}, {}, lv)
    assert np.abs(rows.points - base.points).max() > 1.0  # the behaviour did something


# 三级 (H3): C = 24,000 yuan, base 200, coefficient 1. Inflation 25% takes each cost to the
# boundary it is named after, or 5 fen either side of it (4 fen before: exact in fen after).
EDGE = [
    (9_600.00, "low_cost", 100.0),  # 12,000 = 0.5 C: low-cost (inclusive)
    (9_599.96, "low_cost", 200 * 959_996 / 1_920_000),
    (9_600.04, "normal", 200.0),
    (38_400.00, "high_cost", 200.0),  # 48,000 = 2 C: high-cost (inclusive), 200 x (2 - 2 + 1)
    (38_399.96, "normal", 200.0),
    (96_000.00, "high_cost", 800.0),  # 120,000 = 5 C: not beyond 5 C, high-cost
    (96_000.04, "normal", 200.0),  # beyond 5 C: extreme, paid as normal (coefficient mode)
]


def test_inflation_moves_cases_across_the_inclusive_boundaries_and_the_extreme_zone():
    pv = dip_pv(**{"dip.outliers.extreme_mode": "coefficient", "special_review.enabled": False})
    rows = [("H3", PACKET, c) for c, _, _ in EDGE]
    pr, W = priced_w(rows, pv)
    # observed: 0.4 C low, 1.6 C normal, 4 C high (and just above, high too)
    assert [CASE_TYPES[t] for t in pr.case_type] == [
        "low_cost", "low_cost", "low_cost", "normal", "normal", "high_cost", "high_cost",
    ]  # fmt: skip
    bc, lv = _bc(pr, W)
    vals = {"cost_inflation": 0.25}
    fr = rows_frame(pr, W, vals, {}, lv)
    assert list(fr["case_type"]) == [t for _, t, _ in EDGE]
    np.testing.assert_allclose(fr["points"], [p for _, _, p in EDGE], rtol=1e-12)
    # one case per month: every cell total is one case's points, by hand
    cells = apply_cells(bc, vals)
    got = cells.points.reshape(3, 2, 12)[2, 0, : len(EDGE)]
    np.testing.assert_allclose(got, [p for _, _, p in EDGE], rtol=1e-12)
    # the row definition is pricing the inflated costs afresh (weights and C unchanged)
    fresh, _ = priced_w([("H3", PACKET, round(c * 1.25, 2)) for c, _, _ in EDGE], pv)
    assert [CASE_TYPES[t] for t in fresh.case_type] == [t for _, t, _ in EDGE]
    np.testing.assert_allclose(fresh.points, [p for _, _, p in EDGE], rtol=1e-12)
    # under the default mode the extreme case is paid by the high-cost formula
    hp, _ = priced_w(rows, dip_pv(**{"special_review.enabled": False}))
    fr2 = rows_frame(hp, W, vals, {}, lv)
    assert fr2["case_type"].iloc[-1] == "high_cost"
    assert fr2["points"].iloc[-1] == pytest.approx(200 * (9_600_004 / 1_920_000 - 1), rel=1e-12)
    # draws straddling the boundaries, at once and alone
    drawn = {"cost_inflation": np.array([0.2, 0.25, 0.3, 0.25 - 1e-7, 0.25 + 1e-7])}
    st = apply_cells_stacked(bc, drawn, lv)
    for d in range(5):
        one = apply_cells(bc, drawn, draw=d)
        assert np.array_equal(one.points, st.points[d])
        assert_totals_equal(one, apply_rows(pr, W, drawn, {}, lv, draw=d))
    assert not np.array_equal(st.points[1], st.points[3])  # the boundary is felt


def test_dip_draws_at_once_equal_each_draw_alone(monkeypatch):
    import drgsim.scenarios.behaviour as beh

    pr, W = priced_w(random_rows(3), dip_pv(**{"dip.outliers.extreme_mode": "coefficient"}))
    bc, lv = _bc(pr, W)
    spec = {
        "cost_inflation": {"dist": "uniform", "min": -0.4, "max": 0.8},
        "volume_growth.by_level.二级": {"dist": "normal", "mean": 0.03, "sd": 0.05, "min": -0.5},
    }
    drawn = draw_values(parse_behaviour(spec), draws=24, seed=5)
    st = apply_cells_stacked(bc, drawn, lv)
    monkeypatch.setattr(beh, "DRAW_BLOCK", 5)
    small = apply_cells_stacked(bc, drawn, lv)
    fi = 1.0 + beh.hospital_values_draws(drawn, bc.hospital_ids, lv)["cost_inflation"]
    ranged = apply_cells_stacked(bc, drawn, lv, None, (fi.min(0) * 0.9, fi.max(0) * 1.1))
    for a, b, c in zip(
        (st.points, st.cost_fen, st.share_fen),
        (small.points, small.cost_fen, small.share_fen),
        (ranged.points, ranged.cost_fen, ranged.share_fen),
        strict=True,
    ):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    for d in range(24):
        one = apply_cells(bc, drawn, draw=d)
        assert np.array_equal(one.points, st.points[d]), d
        assert np.array_equal(one.cost_fen, st.cost_fen[d])
    for d in (0, 11, 23):
        assert_totals_equal(apply_cells(bc, drawn, draw=d), apply_rows(pr, W, drawn, {}, lv, draw=d))
    # and the draws do move cases between types
    lo, hi = int(np.argmin(drawn["cost_inflation"])), int(np.argmax(drawn["cost_inflation"]))
    ta = rows_frame(pr, W, drawn, {}, lv, draw=lo)["case_type"].to_numpy()
    tb = rows_frame(pr, W, drawn, {}, lv, draw=hi)["case_type"].to_numpy()
    assert (ta != tb).sum() > 20


# ------------------------------------------------------------------ the sweep, end to end

POLICY_OVERLAY = {
    **{f"budget.{f}.source": "amount" for f in ("employee", "resident")},
    **{f"budget.{f}.amount_yuan": 4_000_000.0 for f in ("employee", "resident")},
    "special_review.enabled": False,  # selected on observed costs: kept by the definition
    "dip.outliers.extreme_mode": "coefficient",
}


def dip_region(seed: int = 11) -> pd.DataFrame:
    """Two years of matched DIP cases (2023 history, 2024 simulated); costs in multiples
    of 4 yuan so that +25% and ×2 are exact in fen per case as well as per total."""
    rng = np.random.default_rng(seed)
    frames = []
    for yr in (2023, 2024):
        rows = [(h, p, float(4 * round(c / 4)), *rest) for h, p, c, *rest in random_rows(seed + yr, 500)]
        df = cases(rows)
        df["discharge_date"] = [
            f"{yr}-{m:02d}-{d:02d}"
            for m, d in zip(rng.integers(1, 13, len(df)), rng.integers(1, 28, len(df)), strict=True)
        ]
        df["case_id"] = df["case_id"] + (yr - 2023) * 10_000
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _simulate(df: pd.DataFrame) -> dict:
    pol = load_policy("dip_baseline").with_values(POLICY_OVERLAY)
    return drgsim.prepare(df, policy=pol, hospitals=HOSP, catalogue=catalogue()).simulate()


def _inflated(df: pd.DataFrame, f: float, hospitals: list[str] | None = None) -> pd.DataFrame:
    out = df.copy()
    sel = out["discharge_date"].str.startswith("2024")
    if hospitals is not None:
        sel &= out["hospital_id"].isin(hospitals)
    for c in ("total_cost", "patient_share"):
        v = out.loc[sel, c] * (1 + f)
        assert np.allclose(v * 100, np.round(v * 100), rtol=0, atol=1e-6)  # exact in fen
        out.loc[sel, c] = np.round(v, 2)
    return out


def _doubled(df: pd.DataFrame) -> pd.DataFrame:
    cur = df[df["discharge_date"].str.startswith("2024")]
    return pd.concat([df, cur.assign(case_id=cur["case_id"] + 100_000)], ignore_index=True)


def assert_scenario_is(res, s: int, t: dict) -> None:
    """Scenario ``s`` of the sweep equals one simulation's tables: every fen, points to
    float rounding (the cells sum C + L x factor, the simulation the inflated costs)."""
    h = res.hospitals[res.hospitals["scenario"] == s]
    h = h[h["cases"] > 0].sort_values(["fund", "hospital_id"]).reset_index(drop=True)
    th = t["hospitals"].sort_values(["fund", "hospital_id"]).reset_index(drop=True)
    assert list(h["hospital_id"]) == list(th["hospital_id"])
    for c in HOSP_COLS:
        if c in ("points", "cases"):
            np.testing.assert_allclose(h[c].to_numpy(float), th[c].to_numpy(float), rtol=1e-11)
        else:
            assert (h[c].to_numpy() == th[c].to_numpy()).all(), c
    f = res.funds[res.funds["scenario"] == s].set_index("fund")
    tf = t["funds"].set_index("fund")
    for a, b in FUND_COLS.items():
        if a.startswith("pv"):
            np.testing.assert_allclose(list(f.loc[tf.index, a]), list(tf[b]), rtol=1e-11)
        else:
            assert list(f.loc[tf.index, a]) == list(tf[b]), a


@pytest.fixture(scope="module")
def dip_sweep():
    df = dip_region()
    pol = load_policy("dip_baseline").with_values(POLICY_OVERLAY)
    base = drgsim.prepare(df, policy=pol, hospitals=HOSP, catalogue=catalogue())
    return df, base


def test_sweep_fixed_behaviour_equals_single_simulations(dip_sweep):
    df, base = dip_sweep
    res = base.sweep(
        [
            {"behaviour.cost_inflation": 0.25},
            {"behaviour.volume_growth": 1.0},
            {"behaviour.cost_inflation.by_level.三级": 0.25},
            {"behaviour.cost_inflation": 0.25, "dip.outliers.high": 2.5},
        ]
    )
    assert all("applied on the cells" in r for r in res.routes["reason"].iloc[1:])
    assert_scenario_is(res, 0, _simulate(df))
    assert_scenario_is(res, 1, _simulate(_inflated(df, 0.25)))
    assert_scenario_is(res, 2, _simulate(_doubled(df)))
    assert_scenario_is(res, 3, _simulate(_inflated(df, 0.25, ["H3"])))
    pol = load_policy("dip_baseline").with_values({**POLICY_OVERLAY, "dip.outliers.high": 2.5})
    t4 = drgsim.prepare(  # PV_b is fixed once per sweep: the baseline's (as in test_sweep_core)
        _inflated(df, 0.25), policy=pol, hospitals=HOSP, catalogue=catalogue(),
        reference_pv=base.reference_pv,
    ).simulate()  # fmt: skip
    assert_scenario_is(res, 4, t4)
    # inflation did move cases across the thresholds here
    a = res.hospitals[res.hospitals["scenario"] == 0]["points"].sum()
    b = res.hospitals[res.hospitals["scenario"] == 1]["points"].sum()
    assert abs(b - a) > 10.0


def test_sweep_draws_equal_their_fixed_values(dip_sweep):
    _, base = dip_sweep
    beh = {
        "cost_inflation": {"dist": "uniform", "min": -0.3, "max": 0.6},
        "volume_growth.by_level.一级": {"dist": "normal", "mean": 0.02, "sd": 0.05, "min": -0.5},
    }
    ov = [{f"behaviour.{k}": v for k, v in beh.items()}]
    a = base.sweep(ov, draws=4, seed=9)
    b = base.sweep(ov, draws=4, seed=9, chunk=2)
    pd.testing.assert_frame_equal(a.hospitals, b.hospitals)
    pd.testing.assert_frame_equal(a.funds, b.funds)
    vals = draw_values(parse_behaviour(beh), draws=4, seed=9)
    for d in (0, 3):
        one = base.sweep([{f"behaviour.{k}": float(v[d]) for k, v in vals.items()}])
        for got, want in ((a.hospitals, one.hospitals), (a.funds, one.funds)):
            x = got[(got["scenario"] == 1) & (got["draw"] == d)].drop(columns="draw")
            y = want[want["scenario"] == 1].drop(columns="draw")
            pd.testing.assert_frame_equal(x.reset_index(drop=True), y.reset_index(drop=True))


def test_sweep_los_change_takes_the_rows_route(dip_sweep):
    from drgsim.scenarios.behaviour import apply_los

    df, base = dip_sweep
    res = base.sweep([{"behaviour.los_change": 0.5}])
    assert res.routes.loc[1, "route"] == "rows"
    assert "LOS" in res.scenarios["note"].iloc[1] or "LOS" in res.routes.loc[1, "reason"]
    cur = df["discharge_date"].str.startswith("2024")
    moved = pd.concat([df[~cur], apply_los(df[cur], 0.5)], ignore_index=True)
    assert_scenario_is(res, 1, _simulate(moved))


def test_coding_creep_refused_on_dip(dip_sweep):
    _, base = dip_sweep
    with pytest.raises(SweepError, match="coding_creep is not defined for method dip") as e:
        base.sweep([{"behaviour.coding_creep": 0.02}])
    assert "\n" not in str(e.value)
    pr, W = priced_w(random_rows(2))
    with pytest.raises(ScenarioError, match="no more severe sibling"):
        prepare_cells(pr, build_cells(pr), W, {PACKET: "X"})
