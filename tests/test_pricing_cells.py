"""Cells re-price by binary search exactly as the row-wise pricing does; settle uses them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drgsim.policy import load_policy
from drgsim.pricing import Weights, prepare_cases, price
from drgsim.pricing.cells import (
    CellsError,
    build_cells,
    by_fund,
    cell_points,
    cell_points_at,
    hfm_points,
)
from drgsim.pricing.fake import fake_cases, fake_hospitals, fake_weights
from drgsim.settlement import Budget, settle
from drgsim.settlement.run import all_fund_totals

SCENARIOS = [
    {},
    {
        "high_cost.tiers": [{"rw_upto": 1.0, "k": 2.5}, {"rw_upto": None, "k": 1.8}],
        "high_cost.beta": 0.7,
    },
    {"low_cost.factor": 0.5, "caps.max_points_multiple": None},
    {"caps.max_points_multiple": 3.0},
]


def rowwise_hfm(pr):
    """The slow reference: per-case points summed per hospital × fund × month."""
    c = pr.cases
    ok = pr.payable & pr.in_budget
    hfm = (c.hosp.astype(np.int64) * 2 + c.fund) * 12 + c.month
    return np.bincount(hfm[ok], weights=pr.points[ok], minlength=len(c.hospital_ids) * 24)


@pytest.mark.parametrize("overlay", SCENARIOS)
def test_cells_match_rows(overlay):
    h = fake_hospitals(7)
    c = prepare_cases(fake_cases(3000, n_hosp=7, seed=3), h["hospital_id"])
    w = Weights.from_frame(fake_weights())
    base = price(c, w, load_policy().at(2024), h)
    cells = build_cells(base)
    pv = load_policy().with_values(overlay).at(2024)
    pts = cell_points(
        cells,
        pv["high_cost"]["tiers"],
        pv["low_cost"]["factor"],
        pv["high_cost"]["beta"],
        pv["caps"]["max_points_multiple"],
    )
    expected = rowwise_hfm(price(c, w, pv, h))
    assert hfm_points(cells, pts) == pytest.approx(expected, rel=1e-9, abs=1e-6)
    assert hfm_points(cells, cell_points_at(cells, pv)) == pytest.approx(expected, rel=1e-9)


# ---- random cases and thresholds (hypothesis) -------------------------------------------

tiers_st = st.lists(st.sampled_from([1.2, 1.5, 1.8, 2.0, 2.5, 3.0, 4.0]), min_size=1, max_size=3)
thresholds = st.fixed_dictionaries(
    {
        "ks": tiers_st,
        "low_cost.factor": st.sampled_from([0.2, 0.3, 0.35, 0.4, 0.5, 0.6]),
        "high_cost.beta": st.sampled_from([0.0, 0.5, 0.7, 1.0]),
        "caps.max_points_multiple": st.none() | st.sampled_from([2.0, 3.0, 5.0, 10.0, 20.0]),
    }
)


def overlay_of(th: dict) -> dict:
    edges = [0.8, 2.0]
    ks = th["ks"]
    tiers = [{"rw_upto": edges[i], "k": k} for i, k in enumerate(ks[:-1])]
    tiers.append({"rw_upto": None, "k": ks[-1]})
    return {
        "high_cost.tiers": tiers,
        "low_cost.factor": th["low_cost.factor"],
        "high_cost.beta": th["high_cost.beta"],
        "caps.max_points_multiple": th["caps.max_points_multiple"],
    }


def random_cases(seed: int, n: int, n_hosp: int, boundary: float):
    """Fake cases; a share of them cost exactly l × m or k × m (the thresholds' edges),
    some stay 70 days (per diem) and some are short stays."""
    df = fake_cases(n, n_hosp=n_hosp, seed=seed)
    rng = np.random.default_rng(seed)
    w = fake_weights()
    m = dict(zip(w["key"], w["mean_cost_fen"], strict=True))
    edge = rng.random(n) < boundary
    mult = rng.choice([0.2, 0.3, 0.35, 0.4, 0.5, 0.6, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0], n)
    for i in np.flatnonzero(edge & (df["status"] == "ok").to_numpy()):
        df.loc[i, "total_cost"] = round(m[df.loc[i, "drg"]] * mult[i]) / 100
    long = rng.random(n) < 0.03
    df.loc[long, "los_days"] = 70
    return df


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    th=thresholds,
    seed=st.integers(0, 10_000),
    n=st.integers(1, 600),
    n_hosp=st.integers(1, 8),
    boundary=st.sampled_from([0.0, 0.3]),
    inside=st.booleans(),
    reprice=st.booleans(),
)
def test_cell_totals_equal_sum_of_case_points(th, seed, n, n_hosp, boundary, inside, reprice):
    """For random cases and thresholds the cell totals are the per-case points summed,
    whether the cases were priced with those thresholds (the single simulation) or
    re-priced to them from the baseline's (a sweep)."""
    h = fake_hospitals(n_hosp, seed)
    pol = load_policy().with_values({"per_diem.inside_budget": inside})
    c = prepare_cases(random_cases(seed, n, n_hosp, boundary), h["hospital_id"])
    w = Weights.from_frame(fake_weights())
    pv = pol.with_values(overlay_of(th)).at(2024)
    rows = price(c, w, pv, h)
    expected = rowwise_hfm(rows)
    cells = build_cells(price(c, w, pol.at(2024), h) if reprice else rows)
    got = hfm_points(cells, cell_points_at(cells, pv) if reprice else cell_points(cells))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-6)
    # the integer totals are the rows' too
    ref = all_fund_totals(rows)
    for f, t in enumerate(ref):
        assert np.array_equal(by_fund(cells, cells.cost_fen)[f], t.cost_fen)
        assert np.array_equal(by_fund(cells, cells.share_fen)[f], t.share_fen)
        assert np.array_equal(by_fund(cells, cells.cases)[f], t.cases)
        assert np.array_equal(cells.outside_fen.reshape(-1, 2)[:, f], t.outside_fen)


def test_settlement_consumes_the_cell_totals():
    """``settle`` (the single simulation) takes its points from the cells, exactly."""
    h = fake_hospitals(6)
    pv = load_policy().at(2024)
    pr = price(
        prepare_cases(fake_cases(2000, n_hosp=6, seed=11), h["hospital_id"]),
        Weights.from_frame(fake_weights()),
        pv,
        h,
    )
    b = {"employee": Budget(10**9, 10**7), "resident": Budget(2 * 10**9, 10**7)}
    s = settle(pr, pv, b, 2024, h["assessment_score"].to_numpy())
    pts = by_fund(s.cells, hfm_points(s.cells, cell_points(s.cells)))
    ref = all_fund_totals(pr)
    for fs in s.funds:
        f = ("employee", "resident").index(fs.fund)
        assert np.array_equal(fs.totals.points, pts[f])  # bit for bit: the cells' totals
        assert fs.totals.points == pytest.approx(ref[f].points, rel=1e-9)  # = the rows' sums
        assert np.array_equal(fs.totals.cost_fen, ref[f].cost_fen)
    # and the per-case payments still add up to the hospital-months paid from those totals
    assert s.payment_fen.sum() == sum(int(fs.payment.sum()) for fs in s.funds)


def test_cells_refuse_what_they_cannot_reprice():
    h = fake_hospitals(5)
    c = prepare_cases(fake_cases(1500, seed=4), h["hospital_id"])
    w = Weights.from_frame(fake_weights())
    # high_cost before readmission: a changed k could turn a readmission into a high-cost case
    prec = [
        "per_diem",
        "special_review",
        "ungroupable",
        "high_cost",
        "readmission",
        "short_stay",
        "low_cost",
        "normal",
    ]
    pol = load_policy().with_values(
        {"case_types.precedence": prec, "readmission.mode": "case_type"}
    )
    cells = build_cells(price(c, w, pol.at(2024), h))
    cell_points(cells)  # the thresholds it was priced with: fine
    with pytest.raises(CellsError, match="precedence"):
        cell_points(cells, [{"rw_upto": None, "k": 1.5}])
    # a cap below a short stay's points (P c x min(cost / m, 1)) would change fixed points
    cells = build_cells(price(c, w, load_policy().at(2024), h))
    assert 0 < cells.fixed_cap_ratio <= 1.2
    with pytest.raises(CellsError, match="cap"):
        cell_points(cells, cap=cells.fixed_cap_ratio / 2)
    cell_points(cells, cap=20.0)


@given(
    edges=st.lists(st.one_of(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]),
                             st.floats(0, 10, allow_nan=False)),
                   min_size=0, max_size=12, unique=True),
    rw=st.lists(st.one_of(st.floats(0, 12, allow_nan=False), st.just(float("nan")),
                          st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0])), max_size=40),
)
def test_tier_index_is_searchsorted_left(edges, rw):
    """The few-edges shortcut for a tier lookup equals searchsorted(side="left") exactly,
    RW on an edge (it belongs to the lower tier) and NaN included."""
    from drgsim.pricing.cells import _tier_index

    e = np.array(sorted(edges), dtype=np.float64)
    r = np.array(rw, dtype=np.float64)
    assert np.array_equal(_tier_index(e, r), np.searchsorted(e, r, side="left"))
