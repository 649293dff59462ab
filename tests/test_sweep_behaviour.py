"""Behaviour assumptions: the cells reproduce the row definitions to the fen; the row
definitions are what pricing itself gives where it can express them; draws are seeded."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drgsim.errors import ScenarioError, ValidationError
from drgsim.policy import load_policy
from drgsim.policy.dated import resolve_year
from drgsim.pricing import Weights, prepare_cases, price
from drgsim.pricing.cells import build_cells, cell_points_at, hfm_points
from drgsim.pricing.fake import fake_cases, fake_hospitals, fake_weights
from drgsim.scenarios.behaviour import (
    Behaviour,
    Totals,
    apply_cells,
    apply_cells_draws,
    apply_cells_stacked,
    apply_los,
    apply_rows,
    draw_values,
    hospital_levels,
    hospital_values,
    parse_behaviour,
    prepare_cells,
    route,
    rows_frame,
    severity_path,
    severity_siblings,
    stack_fund,
)
from drgsim.settlement.scenarios import ScenarioParams, mul_half_up, settle_scenarios

# ---- a small region whose DRGs come in ADRG families (Dnn1, Dnn3, Dnn5) -------------


def family_region(n: int = 3000, n_hosp: int = 6, seed: int = 3):
    """Fake cases and weights with DRG codes renamed into families of three severities,
    the scheme's ``drg.csv`` of those families, and the siblings it gives."""
    h = fake_hospitals(n_hosp, seed)
    w = fake_weights(30)
    old = w["key"].tolist()
    new = [k if k == "all" else f"D{i // 3:02d}{'135'[i % 3]}" for i, k in enumerate(old)]
    w["key"] = new
    df = fake_cases(n, n_hosp=n_hosp, n_drg=30, seed=seed)
    df["drg"] = df["drg"].map(dict(zip(old, new, strict=True))).fillna(df["drg"])
    df["adrg"] = [x[:3] if x != "0000" else "" for x in df["drg"]]
    long = np.random.default_rng(seed).random(n) < 0.03  # per-diem stays (min_los 60)
    df.loc[long, "los_days"] = 70
    drg_csv = pd.DataFrame(
        {
            "drg": [k for k in new if k != "all"],
            "adrg": [k[:3] for k in new if k != "all"],
            "order": [{"1": 1, "3": 2, "5": 3}[k[3]] for k in new if k != "all"],
            "cc_rule": [{"1": "mcc", "3": "mcc_or_cc", "5": ""}[k[3]] for k in new if k != "all"],
        }
    )
    return h, w, df, severity_siblings(drg_csv)


@pytest.fixture(scope="module")
def region():
    h, w, df, sib = family_region()
    w = w[w["key"] != "D043"].reset_index(drop=True)  # priced at the all-case row: no creep
    pol = load_policy()
    c = prepare_cases(df, h["hospital_id"])
    W = Weights.from_frame(w)
    pr = price(c, W, pol.at(2024), h)
    cells = build_cells(pr)
    lv = hospital_levels(c.hospital_ids, h)
    return {"pr": pr, "cells": cells, "W": W, "sib": sib, "lv": lv, "h": h, "df": df, "pol": pol}


FIXED = [
    {},
    {"volume_growth": 0.04},
    {"volume_growth": -0.15, "volume_growth.by_level.三级": 0.1},
    {"volume_growth.by_hospital.H0002": 0.333333},
    {"cost_inflation": 0.3},
    {"cost_inflation": -0.25},
    {"cost_inflation": 0.05, "cost_inflation.by_level.一级": 0.5},
    {"coding_creep": 0.02},
    {"coding_creep": 0.7, "coding_creep.by_level.一级": 0.0},
    {"volume_growth": 0.031, "cost_inflation": 0.047, "coding_creep": 0.5},
]


def assert_totals_equal(a: Totals, b: Totals) -> None:
    """Points to float rounding; every fen exactly; the settlement's money exactly."""
    assert a.points == pytest.approx(b.points, rel=1e-9, abs=1e-6)
    assert np.array_equal(a.cost_fen, b.cost_fen)
    assert np.array_equal(a.share_fen, b.share_fen)
    assert np.array_equal(a.outside_fen, b.outside_fen)
    assert a.cases == pytest.approx(b.cases, rel=1e-12)
    for f in (0, 1):
        pa, sa, ca = a.fund(f)
        pb, sb, cb = b.fund(f)
        budget = np.array([int((ca.sum() - sa.sum()) * 0.93)])
        sp = ScenarioParams.from_policies([load_policy().at(2024)], ("employee", "resident")[f])
        ra = settle_scenarios(pa, sa, ca, budget, np.array([10**6]), sp)
        rb = settle_scenarios(pb, sb, cb, budget, np.array([10**6]), sp)
        for k in ("payment_hm", "received", "annual", "prepaid_hm", "refund", "clawback"):
            assert np.array_equal(ra[k], rb[k]), k


@pytest.mark.parametrize("values", FIXED, ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()))
def test_cells_equal_rows(region, values):
    r = region
    bc = prepare_cells(r["pr"], r["cells"], r["W"], r["sib"], r["lv"])
    rows = apply_rows(r["pr"], r["W"], values, r["sib"], r["lv"])
    cells = apply_cells(bc, values)
    assert_totals_equal(cells, rows)
    if values:  # the behaviour did something
        base = apply_rows(r["pr"], r["W"], {}, r["sib"], r["lv"])
        assert np.abs(rows.points - base.points).max() > 1.0


def test_rows_frame_sums_to_the_row_totals(region):
    r = region
    vals = {"volume_growth": 0.05, "cost_inflation": 0.2, "coding_creep": 0.3}
    fr = rows_frame(r["pr"], r["W"], vals, r["sib"], r["lv"])
    tot = apply_rows(r["pr"], r["W"], vals, r["sib"], r["lv"])
    ids = list(r["pr"].cases.hospital_ids)
    hfm = (fr["hospital_id"].map(ids.index) * 2 + (fr["fund"] == "resident")) * 12
    hfm = (hfm + fr["month"] - 1).to_numpy()
    got = np.bincount(hfm, weights=fr["count"] * fr["points"], minlength=len(ids) * 24)
    assert got == pytest.approx(tot.points, rel=1e-9)
    assert np.bincount(hfm, weights=fr["count"], minlength=len(ids) * 24) == pytest.approx(
        tot.cases, rel=1e-12
    )
    assert (fr["priced_as"] != fr["drg"]).sum() > 100  # creeping rows


def test_one_prepared_cells_many_values(region):
    """The cells' cache (cell parameters per thresholds set, points per inflation and
    thresholds) never serves a stale result."""
    r = region
    bc = prepare_cells(r["pr"], r["cells"], r["W"], r["sib"], r["lv"])
    other = r["pol"].with_values({"high_cost.beta": 0.5}).at(2024)
    for vals, pol in [
        ({"cost_inflation": 0.1, "coding_creep": 0.2}, None),
        ({"cost_inflation": 0.2, "coding_creep": 0.2}, None),
        ({"cost_inflation": 0.1, "coding_creep": 0.6, "volume_growth": 0.1}, None),
        ({"cost_inflation": 0.1, "coding_creep": 0.6}, other),
        ({"cost_inflation.by_level.三级": 0.1}, other),
        ({}, None),
    ]:
        rows = apply_rows(r["pr"], r["W"], vals, r["sib"], r["lv"], policy=pol)
        assert_totals_equal(apply_cells(bc, vals, policy=pol), rows)
    assert len(bc.cache) == 2 + 5  # 2 threshold sets; 5 (inflation, thresholds) pairs


def test_what_does_not_creep(region):
    """D043 has no weight of its own (priced at the all-case row) and D045's sibling is
    D043: neither creeps; D041's sibling-less top level neither."""
    r = region
    pr = r["pr"]
    drg = pr.cases.drg_names[pr.cases.drg]
    keep = np.isin(drg, ["D043", "D045", "D041"])
    assert keep.sum() > 30
    assert (pr.weight_level[drg == "D043"] == 4).all()  # WEIGHT_LEVELS.index("all")
    sub = dataclasses.replace(pr, pay_status=np.where(keep, pr.pay_status, 1).astype(np.int8))
    none = apply_rows(sub, r["W"], {}, r["sib"], r["lv"]).points
    full = apply_rows(sub, r["W"], {"coding_creep": 1.0}, r["sib"], r["lv"]).points
    assert full == pytest.approx(none, rel=1e-12)
    bc = prepare_cells(sub, build_cells(sub), r["W"], r["sib"], r["lv"])
    assert not bc.has_sib.any()
    assert apply_cells(bc, {"coding_creep": 1.0}).points == pytest.approx(none, rel=1e-12)


def test_cells_equal_rows_per_diem_outside_the_budget(region):
    r = region
    pol = r["pol"].with_values({"per_diem.inside_budget": False}).at(2024)
    pr = price(prepare_cases(r["df"], r["h"]["hospital_id"]), r["W"], pol, r["h"])
    assert pr.outside_fen.sum() > 0
    bc = prepare_cells(pr, build_cells(pr), r["W"], r["sib"], r["lv"])
    vals = {"volume_growth": 0.07, "cost_inflation": 0.2, "coding_creep": 0.1}
    rows = apply_rows(pr, r["W"], vals, r["sib"], r["lv"])
    assert_totals_equal(apply_cells(bc, vals), rows)
    none = apply_rows(pr, r["W"], {}, r["sib"], r["lv"])
    assert np.array_equal(rows.outside_fen, mul_half_up(none.outside_fen, 1.07))


def test_groups_without_a_reference_mean(region):
    """A group with mean cost 0: its cases are normal at any cost, its short stays paid 0."""
    r = region
    w = r["W"].table.copy()
    w.loc[w["key"] == "D021", "mean_cost_fen"] = 0
    W = Weights.from_frame(w)
    df = r["df"].copy()
    df.loc[df["drg"].isin(["D021", "D025"]) & (df["case_id"] % 2 == 0), "los_days"] = 1
    pr = price(prepare_cases(df, r["h"]["hospital_id"]), W, r["pol"].at(2024), r["h"])
    drg = pr.cases.drg_names[pr.cases.drg]
    assert ((drg == "D021") & (pr.case_type == 8)).sum() > 3  # short stays, no mean
    bc = prepare_cells(pr, build_cells(pr), W, r["sib"], r["lv"])
    for vals in ({}, {"cost_inflation": 0.5, "coding_creep": 0.4}):
        assert_totals_equal(apply_cells(bc, vals), apply_rows(pr, W, vals, r["sib"], r["lv"]))


def test_no_behaviour_is_the_priced_rows(region):
    """With no assumption the row definition is the pricing's own per-case points."""
    pr = region["pr"]
    c = pr.cases
    ok = pr.payable & pr.in_budget
    hfm = (c.hosp.astype(np.int64) * 2 + c.fund) * 12 + c.month
    expected = np.bincount(hfm[ok], weights=pr.points[ok], minlength=len(c.hospital_ids) * 24)
    got = apply_rows(pr, region["W"], {}, region["sib"], region["lv"])
    assert got.points == pytest.approx(expected, rel=1e-12, abs=1e-9)
    assert np.array_equal(got.cost_fen, region["cells"].cost_fen)
    assert np.array_equal(got.share_fen, region["cells"].share_fen)
    cells = region["cells"]
    assert got.points == pytest.approx(hfm_points(cells, cell_points_at(cells, pr.pv)), rel=1e-12)


def test_cells_equal_rows_under_other_and_dated_thresholds(region):
    """Behaviours combine with re-priced outlier thresholds, dated ones included."""
    r = region
    h, w, df = r["h"], r["W"], r["df"]
    over = {"high_cost.beta": 0.7, "low_cost.factor": 0.5, "caps.max_points_multiple": 20.0}
    pol = r["pol"].with_values(
        {"high_cost.tiers": [{"rw_upto": None, "k": 2.0}]}, date="2024-07-01"
    )
    c = prepare_cases(df, h["hospital_id"])
    pr = price(c, w, resolve_year(pol, 2024), h)  # two dated-value segments
    cells = build_cells(pr)
    assert len(cells.built_segments) == 2
    bc = prepare_cells(pr, cells, w, r["sib"], r["lv"])
    target = resolve_year(pol.with_values(over), 2024)
    vals = {"volume_growth": 0.02, "cost_inflation": 0.4, "coding_creep": 0.3}
    assert_totals_equal(
        apply_cells(bc, vals, policy=target),
        apply_rows(pr, w, vals, r["sib"], r["lv"], policy=target),
    )


# ---- the row definitions are what pricing gives where pricing can express them ------


def _simple_policy():
    """No selection that depends on cost or DRG beyond the outlier thresholds."""
    return load_policy().with_values(
        {
            "special_review.enabled": False,
            "plausibility.max_cost_ratio": None,
            "per_diem.enabled": False,
            "short_stay.enabled": False,
        }
    )


def _totals_of(pr) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = pr.cases
    ok = pr.payable & pr.in_budget
    hfm = (c.hosp.astype(np.int64) * 2 + c.fund) * 12 + c.month
    n = len(c.hospital_ids) * 24
    return (
        np.bincount(hfm[ok], weights=pr.points[ok], minlength=n),
        np.rint(np.bincount(hfm[ok], weights=c.cost_fen[ok], minlength=n)).astype(np.int64),
        np.rint(np.bincount(hfm[ok], weights=c.share_fen[ok], minlength=n)).astype(np.int64),
    )


def test_volume_growth_of_one_is_every_case_twice():
    h, w, df, sib = family_region(seed=5)
    pol = _simple_policy().with_values({"readmission.enabled": False}).at(2024)
    W = Weights.from_frame(w)
    pr = price(prepare_cases(df, h["hospital_id"]), W, pol, h)
    twice = pd.concat([df, df.assign(case_id=df["case_id"] + len(df))], ignore_index=True)
    pr2 = price(prepare_cases(twice, h["hospital_id"]), W, pol, h)
    lv = hospital_levels(pr.cases.hospital_ids, h)
    got = apply_rows(pr, W, {"volume_growth": 1.0}, sib, lv)
    pts, cost, share = _totals_of(pr2)
    assert got.points == pytest.approx(pts, rel=1e-12)
    assert np.array_equal(got.cost_fen, cost) and np.array_equal(got.share_fen, share)


def test_cost_inflation_of_one_is_every_cost_doubled():
    """Doubling keeps fen integer and m / 2 exact: pricing the doubled costs must give the
    row definition (case types moving across k and the low-cost factor) bit for bit."""
    h, w, df, sib = family_region(seed=6)
    pol = _simple_policy().with_values({"short_stay.enabled": True}).at(2024)
    W = Weights.from_frame(w)
    pr = price(prepare_cases(df, h["hospital_id"]), W, pol, h)
    doubled = df.assign(total_cost=df["total_cost"] * 2, patient_share=df["patient_share"] * 2)
    pr2 = price(prepare_cases(doubled, h["hospital_id"]), W, pol, h)
    assert (pr2.case_type != pr.case_type).sum() > 50  # cases moved across thresholds
    lv = hospital_levels(pr.cases.hospital_ids, h)
    got = apply_rows(pr, W, {"cost_inflation": 1.0}, sib, lv)
    pts, cost, share = _totals_of(pr2)
    assert got.points == pytest.approx(pts, rel=1e-12)
    assert np.array_equal(got.cost_fen, cost) and np.array_equal(got.share_fen, share)
    bc = prepare_cells(pr, build_cells(pr), W, sib, lv)
    assert_totals_equal(apply_cells(bc, {"cost_inflation": 1.0}), got)


def test_full_coding_creep_is_every_case_coded_one_level_up():
    h, w, df, sib = family_region(seed=7)
    pol = _simple_policy().at(2024)
    W = Weights.from_frame(w)
    pr = price(prepare_cases(df, h["hospital_id"]), W, pol, h)
    up = df.assign(drg=df["drg"].map(lambda d: sib.get(d, d)))
    assert (up["drg"] != df["drg"]).mean() > 0.5
    pr2 = price(prepare_cases(up, h["hospital_id"]), W, pol, h)
    lv = hospital_levels(pr.cases.hospital_ids, h)
    got = apply_rows(pr, W, {"coding_creep": 1.0}, sib, lv)
    pts, cost, share = _totals_of(pr2)
    assert got.points == pytest.approx(pts, rel=1e-12)
    assert np.array_equal(got.cost_fen, cost)
    # and a share s is the mix of none and all
    none = apply_rows(pr, W, {}, sib, lv).points
    half = apply_rows(pr, W, {"coding_creep": 0.25}, sib, lv).points
    assert half == pytest.approx(0.75 * none + 0.25 * got.points, rel=1e-12)
    assert np.abs(got.points - none).max() > 10.0  # the siblings' weights differ


def test_hand_worked_creep_and_volume():
    """One hospital, one DRG family, three cases: the arithmetic written out."""
    w = pd.DataFrame(
        {
            "key": ["A011", "A013", "A015", "all"],
            "level": ["drg", "drg", "drg", "all"],
            "rw": [2.0, 1.5, 1.0, 1.0],
            "points": [200.0, 150.0, 100.0, 100.0],
            "mean_cost_fen": [2_000_000, 1_500_000, 1_000_000, 1_000_000],
            "mean_los": 8.0,
        }
    )
    w.attrs["m_all_fen"] = 1_000_000.0
    df = pd.DataFrame(
        {
            "case_id": [1, 2, 3],
            "patient_id": [1, 2, 3],
            "hospital_id": "H1",
            "fund": "employee",
            "admit_date": pd.to_datetime(["2024-03-01"] * 3),
            "discharge_date": pd.to_datetime(["2024-03-08"] * 3),
            "los_days": 7,
            "total_cost": [10_000.00, 40_000.00, 12_345.67],  # 1.0 m, 4.0 m (high), 0.823 m
            "patient_share": [3_000.00, 100.00, 0.01],
            "drg": ["A015", "A015", "A013"],
            "adrg": "A01",
            "mdc": "MDCX",
            "status": "ok",
        }
    )
    h = pd.DataFrame({"hospital_id": ["H1"], "level": ["三级"]})
    pol = (
        _simple_policy()
        .with_values(
            {
                "coefficients.method": "level",
                "coefficients.default": 1.0,
                "coefficients.by_level": {"3": 1.0, "2": 1.0, "1": 1.0},
                "coefficients.phase_to_one": 0.0,
                "coefficients.band_lower": None,
                "coefficients.band_upper": None,
                "high_cost.tiers": [{"rw_upto": None, "k": 3.0}],
                "high_cost.beta": 1.0,
                "low_cost.factor": 0.4,
                "caps.max_points_multiple": None,
                "readmission.enabled": False,
            }
        )
        .at(2024)
    )
    W = Weights.from_frame(w)
    pr = price(prepare_cases(df, ["H1"]), W, pol, h)
    sib = {"A015": "A013", "A013": "A011"}
    # own DRGs: 100 (normal) + 100 + 100 (4.0 - 3) = 200 (high) + 150 (ratio 0.823: normal)
    assert pr.points.tolist() == pytest.approx([100.0, 200.0, 150.0])
    # s = 0.5 at the siblings: case 1 at A013 ratio 0.667 -> 150; case 2 at A013 ratio
    # 2.667 -> normal 150; case 3 at A011 ratio 0.617 -> 200
    # points = 0.5 (100 + 200 + 150) + 0.5 (150 + 150 + 200) = 475; volume 1.1 -> 522.5
    got = apply_rows(pr, W, {"coding_creep": 0.5, "volume_growth": 0.1}, sib, None)
    assert got.points.sum() == pytest.approx(522.5)
    assert got.points[2] == pytest.approx(522.5)  # hospital 0, employee, March
    # cost 62,345.67 yuan x 1.1 = 68,580.237 -> 6,858,024 fen; share 3,100.01 x 1.1 ->
    # 341,001.1 -> 341,001 fen
    assert got.cost_fen[2] == 6_858_024 and got.share_fen[2] == 341_001
    bc = prepare_cells(pr, build_cells(pr), W, sib, None)
    assert_totals_equal(apply_cells(bc, {"coding_creep": 0.5, "volume_growth": 0.1}), got)
    # cost inflation 0.5: case 1 ratio 1.5 normal 100; case 2 ratio 6 -> 100 + 100 x 3 =
    # 400; case 3 ratio 1.235 -> 150: 650
    assert apply_rows(pr, W, {"cost_inflation": 0.5}, sib, None).points.sum() == pytest.approx(650)
    # the same, case by case
    fr = rows_frame(pr, W, {"coding_creep": 0.5, "volume_growth": 0.1}, sib, None)
    assert fr["case_id"].tolist() == [1, 1, 2, 2, 3, 3]
    assert fr["priced_as"].tolist() == ["A015", "A013", "A015", "A013", "A013", "A011"]
    assert fr["count"].tolist() == pytest.approx([0.55] * 6)
    assert fr["points"].tolist() == pytest.approx([100, 150, 200, 150, 150, 200])
    assert fr["case_type"].tolist()[2:4] == ["high_cost", "normal"]
    fr = rows_frame(pr, W, {"cost_inflation": 0.5}, sib, None)
    assert fr["cost_fen"].tolist() == pytest.approx([1_500_000, 6_000_000, 1_851_850.5])
    assert fr["case_type"].tolist() == ["normal", "high_cost", "normal"]
    assert fr["count"].tolist() == [1.0, 1.0, 1.0]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 500),
    n_hosp=st.integers(1, 6),
    g=st.floats(-0.5, 1.0),
    f=st.floats(-0.6, 2.0),
    s=st.floats(0.0, 1.0),
    inside=st.booleans(),
    k=st.sampled_from([1.5, 2.0, 3.0]),
    low=st.sampled_from([0.3, 0.5, 0.8]),
    beta=st.sampled_from([0.5, 1.0]),
)
def test_cells_equal_rows_random(seed, n, n_hosp, g, f, s, inside, k, low, beta):
    h, w, df, sib = family_region(n, n_hosp, seed)
    W = Weights.from_frame(w)
    pol = load_policy().with_values({"per_diem.inside_budget": inside})
    pr = price(prepare_cases(df, h["hospital_id"]), W, pol.at(2024), h)
    lv = hospital_levels(pr.cases.hospital_ids, h)
    vals = {"volume_growth": g, "cost_inflation": f, "coding_creep": s}
    vals = {key: round(v, 6) for key, v in vals.items()}
    target = pol.with_values(
        {
            "high_cost.tiers": [{"rw_upto": None, "k": k}],
            "low_cost.factor": low,
            "high_cost.beta": beta,
        }
    ).at(2024)
    bc = prepare_cells(pr, build_cells(pr), W, sib, lv)
    assert_totals_equal(apply_cells(bc, vals), apply_rows(pr, W, vals, sib, lv))
    assert_totals_equal(
        apply_cells(bc, vals, policy=target), apply_rows(pr, W, vals, sib, lv, policy=target)
    )


# ---- draws ---------------------------------------------------------------------------

MC = {
    "volume_growth": {"dist": "normal", "mean": 0.03, "sd": 0.01, "min": 0.0, "max": 0.045},
    "cost_inflation": {"dist": "lognormal", "mean": 0.04, "sd": 0.02},
    "coding_creep": {"dist": "triangular", "min": 0.0, "mode": 0.02, "max": 0.1},
    "volume_growth.by_level.三级": {"dist": "uniform", "min": 0.01, "max": 0.05},
    "los_change": 0.9,
}


def test_same_seed_same_draws_and_keys_independent():
    a = draw_values(parse_behaviour(MC), draws=500, seed=7)
    b = draw_values(parse_behaviour(MC), draws=500, seed=7)
    c = draw_values(parse_behaviour(MC), draws=500, seed=8)
    for k in MC:
        assert np.array_equal(a[k], b[k])
        assert a[k].shape == (500,)
    assert not np.array_equal(a["volume_growth"], c["volume_growth"])
    same = draw_values(
        {"coding_creep": MC["coding_creep"], "coding_creep.by_level.x": MC["coding_creep"]}, 50, 7
    )
    assert not np.array_equal(same["coding_creep"], same["coding_creep.by_level.x"])  # own streams
    fewer = {k: v for k, v in MC.items() if k != "coding_creep"}
    d = draw_values(fewer, draws=500, seed=7)
    assert np.array_equal(d["cost_inflation"], a["cost_inflation"])  # other keys untouched
    assert np.array_equal(draw_values(MC, draws=10, seed=7)["coding_creep"], a["coding_creep"][:10])


def test_distribution_moments_and_bounds():
    n = 40_000
    v = draw_values(
        {
            "volume_growth": {"dist": "normal", "mean": 0.03, "sd": 0.01},
            "cost_inflation": {"dist": "lognormal", "mean": 0.05, "sd": 0.02},
            "coding_creep": {"dist": "triangular", "min": 0.0, "mode": 0.03, "max": 0.09},
            "volume_growth.by_level.一级": {"dist": "uniform", "min": -0.1, "max": 0.1},
            "cost_inflation.by_level.三级": {
                "dist": "normal",
                "mean": 0.03,
                "sd": 0.05,
                "min": 0.0,
                "max": 0.06,
            },
        },
        draws=n,
        seed=1,
    )
    assert v["volume_growth"].mean() == pytest.approx(0.03, abs=3e-4)
    assert v["volume_growth"].std() == pytest.approx(0.01, rel=0.03)
    assert v["cost_inflation"].mean() == pytest.approx(0.05, rel=0.02)  # value-scale mean
    assert v["cost_inflation"].std() == pytest.approx(0.02, rel=0.05)
    assert v["cost_inflation"].min() > 0
    assert v["coding_creep"].mean() == pytest.approx(0.04, abs=1e-3)
    assert 0 <= v["coding_creep"].min() and v["coding_creep"].max() <= 0.09
    u = v["volume_growth.by_level.一级"]
    assert u.mean() == pytest.approx(0.0, abs=2e-3) and -0.1 <= u.min() and u.max() <= 0.1
    clipped = v["cost_inflation.by_level.三级"]
    assert clipped.min() == 0.0 and clipped.max() == 0.06  # bounds clip (and are reached)
    assert (clipped == 0.0).mean() == pytest.approx(0.274, abs=0.02)  # P(N(.03,.05) < 0)
    for x in v.values():  # kept to millionths
        assert np.array_equal(x, np.round(x, 6))


@settings(max_examples=40, deadline=None)
@given(
    dist=st.sampled_from(["uniform", "normal", "lognormal", "triangular"]),
    a=st.floats(0.0, 0.5),
    width=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**32 - 1),
)
def test_draws_stay_in_their_bounds(dist, a, width, seed):
    lo, hi = round(a, 6), round(a + width, 6)
    spec = {
        "uniform": {"dist": "uniform", "min": lo, "max": hi},
        "normal": {"dist": "normal", "mean": a, "sd": 0.2, "min": lo, "max": hi},
        "lognormal": {"dist": "lognormal", "mean": a + 0.01, "sd": 0.3, "min": lo, "max": hi},
        "triangular": {"dist": "triangular", "min": lo, "mode": (lo + hi) / 2, "max": hi},
    }[dist]
    v = draw_values({"coding_creep": spec}, draws=300, seed=seed)["coding_creep"]
    assert v.min() >= lo and v.max() <= hi
    assert np.array_equal(
        v, draw_values({"coding_creep": spec}, draws=300, seed=seed)["coding_creep"]
    )


def test_expected_values_without_draws():
    v = draw_values(MC)
    assert v["volume_growth"].tolist() == [0.03]
    assert v["cost_inflation"].tolist() == [0.04]
    assert v["coding_creep"].tolist() == [0.04]
    assert v["volume_growth.by_level.三级"].tolist() == [0.03]
    assert v["los_change"].tolist() == [0.9]
    clip = draw_values({"volume_growth": {"dist": "normal", "mean": 0.1, "sd": 1, "max": 0.05}})
    assert clip["volume_growth"].tolist() == [0.05]


def test_draw_outside_the_domain_is_refused():
    with pytest.raises(ScenarioError, match=r"volume_growth: draw \d+ is .* outside \(-1, inf\)"):
        draw_values({"volume_growth": {"dist": "normal", "mean": 0.0, "sd": 2.0}}, 200, seed=1)
    with pytest.raises(ScenarioError, match="draws: must be an integer >= 1"):
        draw_values({"volume_growth": 0.1}, draws=0)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"volume_grwth": 0.1}, "volume_grwth: unknown behaviour (did you mean volume_growth?)"),
        ({"volume_growth": "4%"}, "volume_growth: expected a number or a distribution"),
        ({"volume_growth": True}, "volume_growth: expected a number"),
        (
            {"cost_inflation": {"dist": "gamma", "k": 1}},
            "cost_inflation: unknown distribution 'gamma'",
        ),
        ({"cost_inflation": {"dist": "normal", "mean": 0.1}}, "cost_inflation: normal: missing sd"),
        (
            {"cost_inflation": {"dist": "normal", "mean": 0.1, "sd": 0.1, "lo": 0}},
            "cost_inflation: normal: unknown parameter(s) lo",
        ),
        ({"coding_creep": {"dist": "uniform", "min": 0.2, "max": 0.1}}, "min 0.2 is above max 0.1"),
        (
            {"coding_creep": {"dist": "triangular", "min": 0, "mode": 2, "max": 1}},
            "mode 2 is outside",
        ),
        ({"coding_creep": {"dist": "normal", "mean": 0, "sd": -1}}, "sd must be >= 0"),
        (
            {"cost_inflation": {"dist": "lognormal", "mean": -0.1, "sd": 0.1}},
            "mean (of the value) must be > 0",
        ),
        ({"coding_creep": 1.5}, "coding_creep: 1.5 is outside [0, 1]"),
        (
            {"coding_creep": {"dist": "uniform", "min": -0.1, "max": 0.1}},
            "[-0.1, 0.1] is outside [0, 1]",
        ),
        ({"volume_growth": -1}, "volume_growth: -1 is outside (-1, inf)"),
        ({"los_change": 0}, "los_change: 0 is outside (0, inf)"),
        ({"volume_growth.by_levl.三级": 0.1}, "volume_growth.by_levl.三级: malformed key"),
        ({"coding_creep.by_hospital.H1": 0.1}, "coding_creep.by_hospital.H1: malformed key"),
        (
            {"volume_growth": {"dist": "normal", "mean": float("nan"), "sd": 1}},
            "mean must be a finite number",
        ),
    ],
)
def test_malformed_behaviour_names_key_and_problem(spec, words):
    with pytest.raises(ScenarioError) as e:
        parse_behaviour(spec, source="scen.yaml")
    assert isinstance(e.value, ValidationError)
    msg = str(e.value)
    assert f"scen.yaml: {next(iter(spec))}: " in msg  # file: key: message
    assert words in msg


def test_every_problem_is_reported_at_once():
    with pytest.raises(ScenarioError) as e:
        parse_behaviour({"volume_growth": -2, "coding_creep": 3, "foo": 1})
    assert len(e.value.problems) == 3


def test_nested_and_prefixed_keys():
    b = parse_behaviour(
        {
            "behaviour.volume_growth": {"all": 0.01, "by_level": {"三级": 0.02, "二级": 0.03}},
            "cost_inflation": {"by_level": {"一级": {"dist": "uniform", "min": 0, "max": 0.1}}},
        }
    )
    assert isinstance(b, Behaviour)
    assert sorted(b.items) == [
        "cost_inflation.by_level.一级",
        "volume_growth",
        "volume_growth.by_level.三级",
        "volume_growth.by_level.二级",
    ]
    assert not b.needs_rows and parse_behaviour({"los_change": 0.9}).needs_rows
    assert route(b)[0] == "cells" and route(parse_behaviour({"los_change": 0.9}))[0] == "rows"
    assert route(parse_behaviour({"los_change": 1.0}))[0] == "cells"
    assert route(parse_behaviour(None)) == ("settlement", "")


def test_draws_stack_for_the_settlement(region):
    r = region
    bc = prepare_cells(r["pr"], r["cells"], r["W"], r["sib"], r["lv"])
    drawn = draw_values(MC, draws=4, seed=3)
    tots = apply_cells_draws(bc, {k: v for k, v in drawn.items() if k != "los_change"})
    pts, share, cost = stack_fund(tots, 1)
    assert pts.shape == (4, len(r["pr"].cases.hospital_ids), 12)
    one = apply_cells(bc, drawn, draw=2)
    assert np.array_equal(pts[2], one.fund(1)[0]) and np.array_equal(cost[2], one.fund(1)[2])
    assert not np.array_equal(pts[0], pts[1])


def test_hospital_values_most_specific_wins():
    ids = np.array(["A", "B", "C", "D"], dtype=object)
    lv = np.array(["三级", "3级", "二级", ""], dtype=object)
    hv = hospital_values(
        {
            "volume_growth": 0.01,
            "volume_growth.by_level.三级": np.array([0.5, 0.02]),
            "volume_growth.by_hospital.B": 0.07,
            "coding_creep.by_level.2": 0.3,
        },
        ids,
        lv,
        draw=1,
    )
    assert hv["volume_growth"].tolist() == [0.02, 0.07, 0.01, 0.01]
    assert hv["coding_creep"].tolist() == [0.0, 0.0, 0.3, 0.0]
    assert hv["cost_inflation"].tolist() == [0.0] * 4
    with pytest.raises(ScenarioError, match="no hospital has level '四级'"):
        hospital_values({"volume_growth.by_level.四级": 0.1}, ids, lv)
    with pytest.raises(ScenarioError, match="no hospital 'Z'"):
        hospital_values({"volume_growth.by_hospital.Z": 0.1}, ids, lv)


# ---- severity siblings ---------------------------------------------------------------


def test_siblings_of_chs_drg_11():
    s = severity_siblings("chs_drg_11")
    # hand-checked in grouper_tables/chs_drg_11/drg.csv
    assert s["PK15"] == "PK13" and s["PK13"] == "PK11"  # 5 -> 3 -> 1
    assert s["AH15"] == "AH11"  # no AH13: 5 -> 1
    assert s["PC15"] == "PC13"  # no PC11: 5 -> 3
    assert s["PS25"] == "PS21"
    for top in ("PK11", "AH11", "PC13", "AA19", "PS39"):  # most severe, or not split
        assert top not in s
    assert severity_path(s, "PK15") == ["PK15", "PK13", "PK11"]
    assert all(k[:3] == v[:3] for k, v in s.items())  # always inside the ADRG
    assert len(s) == 252  # every DRG with a split condition above it


def test_siblings_follow_the_condition_not_the_code():
    t = pd.DataFrame(
        {
            "drg": ["X011", "X015", "X013", "Y015", "Y019"],
            "adrg": ["X01", "X01", "X01", "Y01", "Y01"],
            "order": [1, 3, 2, 2, 1],
            "cc_rule": ["mcc", "", "mcc_or_cc", "", ""],
        }
    )
    assert severity_siblings(t) == {"X015": "X013", "X013": "X011"}
    t2 = t.assign(los_days_min=["", "", "5", "", ""])  # a different split: not a sibling
    assert severity_siblings(t2) == {"X015": "X011"}
    # equal levels (cc and mcc_or_cc): the one tried last before it
    tie = pd.DataFrame(
        {
            "drg": ["Z011", "Z012", "Z013", "Z015"],
            "adrg": "Z01",
            "order": [1, 2, 3, 4],
            "cc_rule": ["mcc", "mcc_or_cc", "cc", ""],
        }
    )
    assert severity_siblings(tie) == {"Z015": "Z013", "Z013": "Z011", "Z012": "Z011"}
    with pytest.raises(ScenarioError, match="unknown rule 'severe'"):
        severity_siblings(t.assign(cc_rule=["severe", "", "", "", ""]))


# ---- LOS change ----------------------------------------------------------------------


def test_los_change_half_up_minimum_one():
    df = pd.DataFrame(
        {
            "case_id": [1, 2, 3, 4, 5],
            "admit_date": pd.to_datetime(["2024-01-01"] * 5),
            "discharge_date": pd.to_datetime(
                ["2024-01-11", "2024-01-06", "2024-01-02", "2024-01-11", None]
            ),
            "los_days": [10, 5, 1, 10, 3],
        }
    )
    out = apply_los(df, 0.9)
    # 10 x 0.9 = 9; 5 x 0.9 = 4.5 -> 5 (half up, exactly); 1 x 0.9 = 0.9 -> 1; 3 -> 2.7 -> 3
    assert out["los_days"].tolist() == [9, 5, 1, 9, 3]
    assert out["admit_date"].iloc[0] == pd.Timestamp("2024-01-02")
    assert out["admit_date"].iloc[1] == pd.Timestamp("2024-01-01")
    assert out["admit_date"].iloc[4] == pd.Timestamp("2024-01-01")  # no discharge: kept
    assert apply_los(df, 0.3)["los_days"].tolist() == [3, 2, 1, 3, 1]  # 1.5 -> 2; 0.3 -> 1
    assert df["los_days"].tolist() == [10, 5, 1, 10, 3]  # a copy
    with pytest.raises(ScenarioError, match="los_change"):
        apply_los(df, -1.0)


def test_los_change_goes_through_pricing(region):
    """Shorter stays make more short-stay cases once the rows are priced again."""
    h, df, W = region["h"], region["df"], region["W"]
    pol = region["pol"].at(2024)
    base = price(prepare_cases(df, h["hospital_id"]), W, pol, h)
    short = price(prepare_cases(apply_los(df, 0.2), h["hospital_id"]), W, pol, h)
    st_ = 8  # CASE_TYPES.index("short_stay")
    assert (short.case_type == st_).sum() > (base.case_type == st_).sum()


WIDE = {  # wide enough that many cells' cases change type between draws
    "cost_inflation": {"dist": "uniform", "min": -0.4, "max": 0.9},
    "cost_inflation.by_level.一级": {"dist": "normal", "mean": 0.1, "sd": 0.3, "min": -0.5},
    "volume_growth": {"dist": "triangular", "min": -0.1, "mode": 0.02, "max": 0.2},
    "coding_creep": {"dist": "uniform", "min": 0.0, "max": 0.6},
}


def _fields(t):
    return (t.points, t.cost_fen, t.share_fen, t.cases, t.outside_fen)


def test_draws_at_once_equal_each_draw_alone(region, monkeypatch):
    """Every draw priced with all the others (in any block size) is, to the last bit, that
    draw priced alone; and its money is its row definition's, to the fen."""
    import drgsim.scenarios.behaviour as beh

    r = region
    drawn = draw_values(parse_behaviour(WIDE), draws=40, seed=11)
    other = r["pol"].with_values({"high_cost.beta": 0.6, "low_cost.factor": 0.5}).at(2024)
    for pol in (None, other):
        bc = prepare_cells(r["pr"], r["cells"], r["W"], r["sib"], r["lv"])
        stacked = apply_cells_stacked(bc, drawn, policy=pol)
        monkeypatch.setattr(beh, "DRAW_BLOCK", 3)
        small = apply_cells_stacked(bc, drawn, policy=pol)
        monkeypatch.setattr(beh, "DRAW_BLOCK", 256)
        fi = 1.0 + beh.hospital_values_draws(drawn, bc.hospital_ids, r["lv"])["cost_inflation"]
        wide = (fi.min(0) * 0.9, fi.max(0) * 1.1)  # the range of a larger run
        ranged = [
            apply_cells_stacked(bc, {k: v[a : a + 7] for k, v in drawn.items()}, None, pol, wide)
            for a in range(0, 40, 7)
        ]
        for i, (a, b) in enumerate(zip(_fields(stacked), _fields(small), strict=True)):
            assert np.array_equal(a, b)
            assert np.array_equal(a, np.concatenate([_fields(t)[i] for t in ranged]))
        for d in range(40):
            one = apply_cells(bc, drawn, policy=pol, draw=d)
            for a, b in zip(_fields(one), _fields(stacked), strict=True):
                assert np.array_equal(a, b[d]), d
        for d in (0, 7, 23, 39):
            rows = apply_rows(r["pr"], r["W"], drawn, r["sib"], r["lv"], policy=pol, draw=d)
            assert_totals_equal(apply_cells(bc, drawn, policy=pol, draw=d), rows)


def test_draws_move_cases_across_thresholds(region):
    """The draws above do move cases between types (so the per-draw search is exercised):
    the row definition's case types differ between the lowest and the highest inflation."""
    r = region
    drawn = draw_values(parse_behaviour(WIDE), draws=40, seed=11)
    lo, hi = int(np.argmin(drawn["cost_inflation"])), int(np.argmax(drawn["cost_inflation"]))
    fa = rows_frame(r["pr"], r["W"], drawn, r["sib"], r["lv"], draw=lo)
    fb = rows_frame(r["pr"], r["W"], drawn, r["sib"], r["lv"], draw=hi)
    assert (fa["case_type"].to_numpy() != fb["case_type"].to_numpy()).sum() > 20
