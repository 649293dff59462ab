"""Scenario-vectorized settlement equals the scalar reference, scenario by scenario."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drgsim.policy import load_policy
from drgsim.settlement import Budget, FundTotals, settle_fund
from drgsim.settlement.scenarios import ScenarioParams, settle_fund_fast, settle_scenarios

FIELDS = (
    "payment",
    "payment_hm",
    "gross_prepay_hm",
    "withheld_hm",
    "prepaid_hm",
    "released",
    "forfeited",
    "annual",
    "balance",
    "refund",
    "clawback",
    "received",
)


def _bounds(draw_mode: str, lo: float | None, hi: float | None, given: float | None) -> dict:
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    ov = {
        "point_value.bounds.mode": draw_mode,
        "point_value.bounds.floor": lo,
        "point_value.bounds.ceiling": hi,
    }
    if draw_mode == "relative" and given is not None:
        ov["point_value.bounds.budgeted_pv"] = "given"
        ov["point_value.bounds.budgeted_pv_yuan"] = {"employee": given}
    else:
        ov["point_value.bounds.budgeted_pv"] = "budget"
    return ov


bounds = st.one_of(
    st.builds(
        _bounds,
        st.just("absolute"),
        st.none() | st.floats(30, 150),
        st.none() | st.floats(30, 150),
        st.none(),
    ),
    st.builds(
        _bounds,
        st.just("relative"),
        st.none() | st.floats(0.5, 1.2),
        st.none() | st.floats(0.8, 1.5),
        st.none() | st.floats(30, 150),
    ),
)
overlays = st.fixed_dictionaries(
    {
        "point_value.basis": st.sampled_from(["total_cost", "fund"]),
        "region_corridor.enabled": st.booleans(),
        "region_corridor.surplus_keep": st.sampled_from([0.0, 0.3, 0.5, 1.0]),
        "presettlement.prepay_share": st.sampled_from([0.85, 0.9, 1.0]),
        "presettlement.provisional_pv": st.sampled_from(["monthly_budget", "fixed"]),
        "presettlement.provisional_pv_yuan": st.sampled_from([None, 95.5]),
        "assessment.enabled": st.booleans(),
        "hospital_corridor.enabled": st.booleans(),
        "hospital_corridor.lower": st.sampled_from([0.8, 0.9]),
        "hospital_corridor.loss_floor": st.none() | st.sampled_from([0.5, 0.7]),
        "hospital_corridor.surplus_keep": st.sampled_from([0.4, 1.0]),
        "reserve.overdraw": st.sampled_from(["refuse", "fund_pays"]),
        "assessment.order": st.sampled_from(["after_corridor", "before_corridor"]),
    }
)


def random_totals(seed: int, H: int) -> FundTotals:
    rng = np.random.default_rng(seed)
    pts = rng.gamma(2.0, 500.0, (H, 12)) * (rng.random((H, 12)) < 0.9)
    cost = np.rint(pts * rng.uniform(60, 140, (H, 1)) * 100).astype(np.int64)
    share = np.rint(cost * 0.3).astype(np.int64)
    return FundTotals(
        "employee", pts, share, cost, np.ones((H, 12), np.int64), np.zeros(H, np.int64)
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ov=overlays,
    bd=bounds,
    seed=st.integers(0, 10_000),
    H=st.integers(1, 12),
    b=st.integers(10**6, 10**10),
    r=st.integers(0, 10**8),
)
def test_fast_equals_reference(ov, bd, seed, H, b, r):
    ov = {**ov, **bd}
    if (
        ov["presettlement.provisional_pv"] == "fixed"
        and ov["presettlement.provisional_pv_yuan"] is None
    ):
        ov["presettlement.provisional_pv"] = "monthly_budget"
    pv = load_policy().with_values(ov).at(2024)
    tot = random_totals(seed, H)
    scores = np.random.default_rng(seed).uniform(50, 100, H)
    ref = settle_fund(tot, Budget(b, r), pv, 2024, scores)
    got = settle_fund_fast(tot, Budget(b, r), pv, 2024, scores)
    for f in FIELDS:
        assert np.array_equal(getattr(ref, f), getattr(got, f)), f
    assert (
        ref.pv == got.pv
        and ref.total_fen == got.total_fen
        and ref.region_draw_fen == got.region_draw_fen
        and ref.pv_bound == got.pv_bound
        and ref.overdraw_fen == got.overdraw_fen
    )
    np.testing.assert_array_equal(
        [ref.pv_budgeted, ref.pv_floor, ref.pv_ceiling],
        [got.pv_budgeted, got.pv_floor, got.pv_ceiling],
    )


def test_many_scenarios_at_once_equal_one_by_one():
    tot = random_totals(3, 20)
    base = load_policy()
    pvs = [
        base.with_values({"point_value.basis": basis, "hospital_corridor.lower": lo}).at(2024)
        for basis in ("total_cost", "fund")
        for lo in (0.8, 0.9)
    ]
    budgets = np.array([5 * 10**8, 6 * 10**8, 7 * 10**8, 8 * 10**8])
    reserves = np.full(4, 10**7)
    many = settle_scenarios(
        tot.points,
        tot.share_fen,
        tot.cost_fen,
        budgets,
        reserves,
        ScenarioParams.from_policies(pvs),
    )
    for s, pv in enumerate(pvs):
        one = settle_fund(tot, Budget(int(budgets[s]), int(reserves[s])), pv, 2024)
        assert np.array_equal(many["payment"][s], one.payment)
        assert np.array_equal(many["refund"][s], one.refund)
        assert many["payment"][s].sum() == budgets[s]


def test_chunked_scenarios_equal_unchunked(monkeypatch):
    import drgsim.settlement.scenarios as sc

    tot = random_totals(5, 7)
    pvs = [
        load_policy().with_values({"hospital_corridor.lower": lo}).at(2024)
        for lo in np.linspace(0.7, 0.95, 9)
    ]
    budgets = np.linspace(10**8, 2 * 10**8, 9).astype(np.int64)
    args = (
        tot.points,
        tot.share_fen,
        tot.cost_fen,
        budgets,
        np.full(9, 10**6),
        sc.ScenarioParams.from_policies(pvs),
    )
    whole = sc.settle_scenarios(*args)
    monkeypatch.setattr(sc, "CHUNK", 2)
    chunked = sc.settle_scenarios(*args)
    for k in whole:
        assert np.array_equal(whole[k], chunked[k], equal_nan=whole[k].dtype.kind == "f"), k


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    H=st.integers(1, 12),
    b=st.integers(10**6, 10**10),
    lower=st.sampled_from([0.8, 0.9, 1.0]),
    keep=st.sampled_from([0.4, 1.0]),
)
def test_a_forfeit_is_never_refunded(seed, H, b, lower, keep):
    """after_corridor: the corridor's refunds and clawbacks are those of the same year
    without the assessment, whatever the scores; the forfeit comes off after them."""
    tot = random_totals(seed, H)
    scores = np.random.default_rng(seed).uniform(0, 100, H)
    over = {
        "hospital_corridor.enabled": True,
        "hospital_corridor.lower": lower,
        "hospital_corridor.surplus_keep": keep,
        "reserve.overdraw": "fund_pays",  # no cap: the refunds are the corridor's own
    }
    on = load_policy().with_values({**over, "assessment.enabled": True}).at(2024)
    off = load_policy().with_values({**over, "assessment.enabled": False}).at(2024)
    a = settle_fund_fast(tot, Budget(b, 10**6), on, 2024, scores)
    z = settle_fund_fast(tot, Budget(b, 10**6), off, 2024, scores)
    assert np.array_equal(a.refund, z.refund) and np.array_equal(a.clawback, z.clawback)
    assert np.array_equal(a.annual, z.annual - a.forfeited)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ovs=st.lists(st.tuples(overlays, bounds), min_size=1, max_size=5),
    seed=st.integers(0, 10_000),
    H=st.integers(1, 12),
    stacked=st.booleans(),
)
def test_without_monthly_arrays_the_same_money(ovs, seed, H, stacked):
    """The sweep's path (months fused in one kernel, no hospital-month array) gives every
    figure of the monthly path, to the fen and to the last bit of the point values."""
    pvs = []
    for ov, bd in ovs:
        ov = {**ov, **bd}
        if ov["presettlement.provisional_pv_yuan"] is None:
            ov["presettlement.provisional_pv"] = "monthly_budget"
        pvs.append(load_policy().with_values(ov).at(2024))
    S = len(pvs)
    rng = np.random.default_rng(seed)
    if stacked:  # one set of totals per scenario (draws), negative quotas included
        parts = [random_totals(seed + s, H) for s in range(S)]
        pts = np.stack([p.points for p in parts]) * rng.choice([1e-3, 1.0, 1e3])
        share = np.stack([p.share_fen for p in parts])
        cost = np.stack([p.cost_fen for p in parts])
    else:
        t = random_totals(seed, H)
        pts, share, cost = t.points, t.share_fen, t.cost_fen
    b = rng.integers(10**6, 10**10, S)
    r = rng.integers(0, 10**8, S)
    sp = ScenarioParams.from_policies(pvs, "employee")
    scores = rng.uniform(50, 100, H)
    a = settle_scenarios(pts, share, cost, b, r, sp, scores, monthly=True)
    z = settle_scenarios(pts, share, cost, b, r, sp, scores, monthly=False)
    assert set(a) - set(z) == {
        "payment_hm",
        "quota_hm",
        "gross_prepay_hm",
        "withheld_hm",
        "prepaid_hm",
    }
    for k, v in z.items():
        assert np.array_equal(a[k], v, equal_nan=v.dtype.kind == "f"), k
    assert np.array_equal(z["withheld_h"], a["withheld_hm"].sum(2))
    assert np.array_equal(z["prepaid_h"], a["prepaid_hm"].sum(2))
