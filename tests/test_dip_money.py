"""DIP scoring and settlement through the one engine (issue 19, ../shared/DIP.md).

Hand-made catalogues and matched cases (the contract's columns), hand-worked numbers:
each outlier branch at its exact boundary and one fen either side, the level-mean
fallback, base packets without the hospital coefficient, blank packets, PV_b, the
reimbursement-ratio point value and its residual ledger line, conservation, and the cells'
re-pricing against row pricing.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drgsim.dip.price import (
    DipPricingError,
    budget_point_value,
    dip_frame,
    dip_weights,
    history_point_values,
    history_ratio,
)
from drgsim.policy import load_policy, resolve_year
from drgsim.policy.loader import PolicyError, parse_policy
from drgsim.pricing.cases import prepare_cases
from drgsim.pricing.cells import build_cells, cell_points, hfm_points, points_under
from drgsim.pricing.core import CASE_TYPES, price, reprice_thresholds
from drgsim.settlement.core import Budget, FundTotals, ledger, settle_fund
from drgsim.settlement.scenarios import settle_fund_fast

PACKET = "K80.1/51.2300"
BASE = "J18.0"
COMP = "Z/K80/S"
HOSP = pd.DataFrame({"hospital_id": ["H1", "H2", "H3"], "level": ["一级", "二级", "三级"]})


def catalogue(levels: pd.DataFrame | None = None) -> SimpleNamespace:
    """M = 10,000 yuan; K80.1/51.2300 RW 2 (mean 20,000; 三级 C 24,000 from 20 cases,
    二级 15,000 from 3 cases); J18.0 a base packet RW 0.5; Z/K80/S comprehensive RW 3."""
    packets = pd.DataFrame(
        {
            "packet": [PACKET, BASE, COMP],
            "kind": ["core", "core", "comprehensive"],
            "base": [0, 1, 0],
            "mean_cost_fen": [2_000_000.0, 500_000.0, 3_000_000.0],
            "rw": [2.0, 0.5, 3.0],
            "score": [200.0, 50.0, 300.0],
        }
    )
    if levels is None:
        levels = pd.DataFrame(
            {
                "packet": [PACKET, PACKET, COMP],
                "level": ["三级", "二级", "三级"],
                "n_cases": [20, 3, 40],
                "mean_cost_fen": [2_400_000.0, 1_500_000.0, 3_300_000.0],
            }
        )
    return SimpleNamespace(
        meta={"score_scale": 100, "m_all_fen": 1_000_000.0},
        packets=packets,
        levels=levels,
        aux=pd.DataFrame(),
        path=None,
    )


def dip_pv(**overlay) -> dict:
    pol = load_policy("dip_baseline")
    if overlay:
        pol = pol.with_values(overlay)
    return resolve_year(pol, 2024).pv


def cases(rows: list[tuple]) -> pd.DataFrame:
    """rows: (hospital, packet, cost yuan[, dip_status, aux_class, aux_coef, fund])."""
    out = []
    for i, r in enumerate(rows):
        h, p, cost = r[:3]
        status = r[3] if len(r) > 3 else "ok"
        cl = r[4] if len(r) > 4 else ""
        coef = r[5] if len(r) > 5 else 1.0
        fund = r[6] if len(r) > 6 else "employee"
        out.append(
            {
                "case_id": i + 1,
                "hospital_id": h,
                "fund": fund,
                "discharge_date": f"2024-{1 + i % 12:02d}-15",
                "total_cost": cost,
                "patient_share": round(cost * 0.3, 2),
                "los_days": 5,
                "packet": p if status == "ok" else "",
                "packet_kind": "core" if status == "ok" else "",
                "aux_catalogue": "severity" if cl else "",
                "aux_class": cl,
                "aux_coef": coef,
                "dip_status": status,
            }
        )
    return pd.DataFrame(out)


def priced(rows: list[tuple], pv: dict | None = None, cat=None):
    df = cases(rows)
    W = dip_weights(cat or catalogue(), df)
    c = prepare_cases(dip_frame(df), HOSP["hospital_id"])
    return price(c, W, pv or dip_pv(), HOSP)


def types(pr) -> list[str]:
    return [CASE_TYPES[t] for t in pr.case_type]


# --- outlier branches at their exact boundaries (三级: C = 24,000 yuan, base 200, c 1.0) ---


def test_low_boundary_inclusive_and_one_fen_either_side():
    pr = priced([("H3", PACKET, 12_000.00), ("H3", PACKET, 11_999.99), ("H3", PACKET, 12_000.01)])
    assert types(pr) == ["low_cost", "low_cost", "normal"]
    assert pr.points[0] == pytest.approx(100.0, abs=1e-9)  # 200 x 12,000 / 24,000
    assert pr.points[1] == pytest.approx(200 * 11_999.99 / 24_000, abs=1e-9)
    assert pr.points[2] == 200.0
    assert (pr.mean_cost_fen == 2_400_000).all()


def test_high_boundary_inclusive_and_one_fen_either_side():
    pr = priced([("H3", PACKET, 48_000.00), ("H3", PACKET, 47_999.99), ("H3", PACKET, 48_000.01)])
    assert types(pr) == ["high_cost", "normal", "high_cost"]
    assert pr.points[0] == pytest.approx(200.0, abs=1e-9)  # 200 x (2 - 2 + 1)
    assert pr.points[1] == 200.0
    assert pr.points[2] == pytest.approx(200 * (48_000.01 / 24_000 - 1), abs=1e-9)


def test_strict_boundaries_when_not_inclusive():
    pv = dip_pv(**{"dip.outliers.inclusive": False})
    pr = priced([("H3", PACKET, 12_000.00), ("H3", PACKET, 48_000.00)], pv)
    assert types(pr) == ["normal", "normal"]
    assert list(pr.points) == [200.0, 200.0]


def test_extreme_boundary_flag_and_modes():
    rows = [("H3", PACKET, 120_000.00), ("H3", PACKET, 120_000.01), ("H3", PACKET, 119_999.99)]
    pr = priced(rows)  # extreme_mode high_cost: flagged, paid by the high-cost formula
    assert list(pr.extreme) == [False, True, False]  # > 5C, strictly
    assert types(pr) == ["high_cost"] * 3
    assert pr.points[0] == pytest.approx(800.0, abs=1e-9)  # 200 x (5 - 2 + 1)
    assert pr.points[1] == pytest.approx(200 * (120_000.01 / 24_000 - 1), abs=1e-9)
    rv = priced(rows, dip_pv(**{"dip.outliers.extreme_mode": "review"}))
    assert list(rv.pay_status != 0) == [False, True, False]  # held for review, paid 0
    assert rv.points[1] == 0.0 and rv.points[0] == pytest.approx(800.0)
    co = priced(rows, dip_pv(**{"dip.outliers.extreme_mode": "coefficient"}))
    assert types(co) == ["high_cost", "normal", "high_cost"]
    assert co.points[1] == 200.0  # base x coefficient
    fr = pr.frame()
    assert list(fr["extreme_review"]) == [False, True, False]
    assert list(fr["packet"]) == [PACKET] * 3


def test_level_mean_fallback_and_coefficient_switch_on_outliers():
    # 二级 has 3 cases < level_min_cases 10: C = the packet mean 20,000; c = 0.85
    rows = [("H2", PACKET, 20_000), ("H2", PACKET, 40_000), ("H2", PACKET, 10_000)]
    pr = priced(rows)
    assert (pr.mean_cost_fen == 2_000_000).all() and pr.level_fallback.all()
    assert types(pr) == ["normal", "high_cost", "low_cost"]
    np.testing.assert_allclose(pr.points, [170.0, 170.0, 85.0])  # 200 x .85 x (1, 1, .5)
    off = priced(rows, dip_pv(**{"dip.outliers.coef_on_outliers": False}))
    np.testing.assert_allclose(off.points, [170.0, 200.0, 100.0])  # outliers without c
    # with level_min_cases 3 the 二级 mean (15,000) is C: 40,000 is high, 10,000 normal
    lv = priced(rows, dip_pv(**{"dip.level_min_cases": 3}))
    assert (lv.mean_cost_fen == 1_500_000).all() and not lv.level_fallback.any()
    assert types(lv) == ["normal", "high_cost", "normal"]
    np.testing.assert_allclose(lv.points, [170.0, 170.0 * (40_000 / 15_000 - 1), 170.0])
    h3 = priced([("H3", PACKET, 24_000)])
    assert not h3.level_fallback.any()


def test_base_packet_has_no_hospital_coefficient():
    pr = priced([("H1", BASE, 5_000), ("H3", BASE, 5_000), ("H1", PACKET, 20_000)])
    np.testing.assert_allclose(pr.points, [50.0, 50.0, 140.0])  # 一级 c 0.7 only on PACKET
    np.testing.assert_allclose(pr.coefficient, [1.0, 1.0, 0.7])


def test_blank_packet_and_aux_coefficient():
    pr = priced([("H3", "", 8_000, "blank_packet"), ("H3", PACKET, 24_000, "ok", "III", 1.2)])
    assert types(pr) == ["ungroupable", "normal"]
    assert pr.points[0] == pytest.approx(56.0)  # 8,000 / 10,000 x 100 x 0.7
    assert pr.points[1] == pytest.approx(240.0)  # 200 x 1.2
    assert pr.rw[1] == pytest.approx(2.4)
    ch = priced([("H3", "", 8_000, "check_failed")])
    assert ch.points[0] == 0.0 and ch.pay_status[0] != 0  # record checks held for review


def test_bad_matched_inputs_are_refused():
    df = cases([("H3", PACKET, 1000), ("H3", PACKET, 1000, "ok", "III", 1.2)])
    with pytest.raises(DipPricingError, match="lack column"):
        dip_weights(catalogue(), df.drop(columns=["aux_coef"]))
    df2 = df.assign(aux_catalogue="severity", aux_class="III", aux_coef=[1.1, 1.2])
    with pytest.raises(DipPricingError, match="two auxiliary coefficients"):
        dip_weights(catalogue(), df2)
    with pytest.raises(DipPricingError, match="not in the catalogue"):
        dip_weights(catalogue(), df.assign(packet="X99.9"))


def test_special_review_share_is_five_per_mille():
    assert dip_pv()["special_review"]["share"] == 0.005
    # 200 cases at one hospital: 1 special review among the extreme ones
    rows = [("H3", PACKET, 24_000)] * 198 + [("H3", PACKET, 200_000), ("H3", PACKET, 300_000)]
    pr = priced(rows)
    t = types(pr)
    assert t.count("special_review") == 1 and t[-1] == "special_review"
    assert pr.points[-1] == pytest.approx(300_000 / 10_000 * 100)


# --- policy ---


def test_policy_method_and_dip_section_validation():
    base = load_policy()
    assert base.method == "drg" and load_policy("dip_baseline").method == "dip"
    from pathlib import Path

    text = Path(load_policy("dip_baseline").source).read_text(encoding="utf-8")
    with pytest.raises(PolicyError, match=r"dip_x.yaml:\d+: dip.outliers.low"):
        parse_policy(text.replace("values: {2019-01-01: 0.5}\n    high:", "values: {2019-01-01: -1}\n    high:"), "dip_x.yaml")
    with pytest.raises(PolicyError, match="needs the dip section"):
        parse_policy(text.split("\ndip:\n")[0], "dip_y.yaml")
    drg = text.replace("method: dip", "method: drg")
    with pytest.raises(PolicyError, match="needs method: dip"):
        parse_policy(drg, "dip_z.yaml")
    with pytest.raises(PolicyError, match="has no such section"):
        base.with_values({"dip.blank_ratio": 0.5})
    with pytest.raises(PolicyError, match="neither a number"):
        load_policy("dip_baseline").with_values({"dip.point_value.ratio": "last"})


# --- point values ---


def test_pv_b_year_weighted_hand_worked():
    # years 2021, 2022, 2023 weighted 0.1, 0.2, 0.7; one employee case a year
    cost = np.array([1_000_000, 2_000_000, 3_000_000])  # fen
    score = np.array([100.0, 100.0, 200.0])
    year = np.array([2021, 2022, 2023])
    fund = np.zeros(3, np.int8)
    pv = budget_point_value(cost, score, year, fund, [0.1, 0.2, 0.7])
    # (0.1 x 10,000 + 0.2 x 20,000 + 0.7 x 30,000) / (10 + 20 + 140) = 26,000 / 170
    assert pv == {"employee": pytest.approx(26_000 / 170)}
    # two years present take the two newest weights, renormalised (0.2, 0.7)
    pv2 = budget_point_value(cost[1:], score[1:], year[1:], fund[1:], [0.1, 0.2, 0.7])
    assert pv2["employee"] == pytest.approx((0.2 * 20_000 + 0.7 * 30_000) / (20 + 140))
    r = history_ratio(cost, np.array([300_000, 600_000, 600_000]), year, fund, [1, 2, 7])
    assert r["employee"] == pytest.approx((0.1 * 7 + 0.2 * 14 + 0.7 * 24) / 26)


def test_history_point_values_from_matched_history():
    df = cases([("H3", PACKET, 24_000), ("H3", PACKET, 36_000), ("H1", BASE, 5_000)])
    df["discharge_date"] = ["2022-03-01", "2023-03-01", "2023-05-01"]
    pr = priced(list(zip(df["hospital_id"], df["packet"], df["total_cost"], strict=True)))
    pr.cases.year[:] = [2022, 2023, 2023]
    pv_b, r = history_point_values(pr, [0.1, 0.2, 0.7])
    w22, w23 = 0.2 / 0.9, 0.7 / 0.9
    want = (w22 * 24_000 + w23 * 41_000) / (w22 * 200 + w23 * 250)
    assert pv_b["employee"] == pytest.approx(want)
    assert r["employee"] == pytest.approx(0.7)


def totals(points, share, cost, fund="employee") -> FundTotals:
    H = len(points)
    sp = lambda v: np.tile(np.asarray(v, np.float64)[:, None] / 12, (1, 12))  # noqa: E731
    P = sp(points)
    S = np.zeros((H, 12), np.int64)
    C = np.zeros((H, 12), np.int64)
    S[:, 0], C[:, 0] = share, cost
    return FundTotals(fund, P, S, C, np.ones((H, 12), np.int64), np.zeros(H, np.int64))


def ratio_pv(r: float = 0.8, **kw) -> dict:
    ov = {
        "dip.point_value.ratio": r,
        "hospital_corridor.enabled": False,
        "assessment.enabled": False,
        "point_value.bounds.budgeted_pv": "given",
        "point_value.bounds.budgeted_pv_yuan": {"employee": 100.0, "resident": 100.0},
    }
    ov.update(kw)
    return dip_pv(**ov)


def test_ratio_basis_hand_worked_underspend():
    # B 10,000 yuan, r 0.8, patients' share 3,000: the fund pays 10,000/0.8 - 3,000 = 9,500
    tot = totals([600.0, 400.0], [200_000, 100_000], [900_000, 600_000])
    b = Budget(1_000_000, 200_000)
    fs = settle_fund(tot, b, ratio_pv(), 2024)
    assert fs.pv == pytest.approx(1_250_000 / 1000 / 100)  # (B / r) / points = 12.5 yuan
    assert fs.total_fen == 950_000 and fs.ratio_residual_fen == -50_000
    assert fs.payment.sum() == 950_000
    assert list(fs.payment) == [550_000, 400_000]  # 600 x 1,250 - 2,000 yuan; 400 x 1,250 - 1,000
    lg = ledger(fs, np.array(["H1", "H2"]))
    assert lg["amount_fen"].sum() == 0
    res = lg[lg["line"] == "pv_ratio_residual"].set_index("account")["amount_fen"]
    assert res["reserve"] == 50_000 and res["drg_budget"] == -50_000  # back to the reserve
    rem = lg[lg["line"] == "reserve_remaining"]["amount_fen"].iloc[0]
    assert rem == -250_000  # the reserve ends with its 2,000 yuan plus the 500 returned
    fast = settle_fund_fast(tot, b, ratio_pv(), 2024)
    assert fast.ratio_residual_fen == -50_000 and list(fast.payment) == list(fs.payment)


def test_ratio_basis_overspend_drawn_from_reserve_under_its_cap():
    tot = totals([600.0, 400.0], [60_000, 40_000], [900_000, 600_000])  # S = 1,000 yuan
    # the fund pays 12,500 - 1,000 = 11,500: 1,500 over B, drawn from a reserve of 2,000
    fs = settle_fund(tot, Budget(1_000_000, 200_000), ratio_pv(), 2024)
    assert fs.ratio_residual_fen == 150_000 and fs.total_fen == 1_150_000
    assert fs.overdraw_fen == 0
    lg = ledger(fs, np.array(["H1", "H2"]))
    assert lg["amount_fen"].sum() == 0
    # a reserve of 1,000 refuses the rest: the draw stops at 1,000, the PV follows
    fs2 = settle_fund(tot, Budget(1_000_000, 100_000), ratio_pv(), 2024)
    assert fs2.ratio_residual_fen == 100_000 and fs2.total_fen == 1_100_000
    assert fs2.pv == pytest.approx((1_100_000 + 100_000) / 1000 / 100)
    assert ledger(fs2, np.array(["H1", "H2"]))["amount_fen"].sum() == 0
    # fund_pays: the full 1,500 is paid, the fund covering 500 beyond the reserve
    fp = ratio_pv(**{"reserve.overdraw": "fund_pays"})
    fs3 = settle_fund(tot, Budget(1_000_000, 100_000), fp, 2024)
    assert fs3.ratio_residual_fen == 150_000 and fs3.overdraw_fen == 50_000
    assert ledger(fs3, np.array(["H1", "H2"]))["amount_fen"].sum() == 0
    for f_slow, pvx, bx in ((fs2, ratio_pv(), 100_000), (fs3, fp, 100_000)):
        f_fast = settle_fund_fast(tot, Budget(1_000_000, bx), pvx, 2024)
        assert f_fast.total_fen == f_slow.total_fen
        assert f_fast.ratio_residual_fen == f_slow.ratio_residual_fen
        assert f_fast.overdraw_fen == f_slow.overdraw_fen


def test_ratio_from_history_and_provisional_from_pv_b():
    pv = ratio_pv(
        r="history",
        **{
            "point_value.bounds.budgeted_pv": "history",
            "presettlement.provisional_pv": "budgeted",
        },
    )
    tot = totals([600.0, 400.0], [200_000, 100_000], [900_000, 600_000])
    fs = settle_fund(tot, Budget(1_000_000, 200_000), pv, 2024, reference_pv=11.0, ratio=0.8)
    assert fs.ratio_residual_fen == -50_000
    np.testing.assert_allclose(fs.provisional_pv, 11.0)  # PV_b feeds the pre-settlement
    with pytest.raises(Exception, match="reimbursement ratio"):
        settle_fund(tot, Budget(1_000_000, 200_000), pv, 2024, reference_pv=11.0, ratio=None)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 5_000), min_size=1, max_size=5),
    st.floats(0.3, 1.0),
    st.integers(10_000, 10_000_000),
    st.integers(0, 2_000_000),
    st.floats(0.0, 0.6),
    st.booleans(),
    st.booleans(),
    st.sampled_from([None, 0.9]),
)
def test_ratio_basis_conserves_money(pts, r, B, R, share_frac, refuse, corridor, floor):
    H = len(pts)
    cost = [int(1_000 * p + 50_000) for p in pts]
    share = [int(c * share_frac) for c in cost]
    tot = totals(pts, share, cost)
    pv = ratio_pv(
        r,
        **{
            "reserve.overdraw": "refuse" if refuse else "fund_pays",
            "hospital_corridor.enabled": corridor,
            "assessment.enabled": True,
            "point_value.bounds.floor": floor,
        },
    )
    b = Budget(B, R)
    fs = settle_fund(tot, b, pv, 2024)
    lg = ledger(fs, np.array([f"H{i}" for i in range(H)]))
    assert lg["amount_fen"].sum() == 0
    assert fs.payment.sum() == fs.total_fen
    fast = settle_fund_fast(tot, b, pv, 2024)
    assert fast.total_fen == fs.total_fen
    assert fast.ratio_residual_fen == fs.ratio_residual_fen
    assert list(fast.refund) == list(fs.refund)
    if sum(pts) > 0 and fs.pv_bound == "":
        want = int(np.floor(B / r + 0.5)) - sum(share) - B
        if refuse:
            want = min(want, R)
        assert fs.ratio_residual_fen == want


# --- cells: re-pricing equals row pricing for DIP ---


def random_rows(seed: int, n: int = 400) -> list[tuple]:
    rng = np.random.default_rng(seed)
    hs = rng.choice(["H1", "H2", "H3"], n)
    ps = rng.choice([PACKET, BASE, COMP], n)
    mean = {PACKET: 20_000, BASE: 5_000, COMP: 30_000}
    cost = np.round([mean[p] * rng.choice([0.25, 0.5, 1.0, 2.0, 2.4, 5.0, 6.0]) for p in ps], 2)
    cost = np.where(rng.random(n) < 0.5, np.round(cost * rng.uniform(0.4, 3, n), 2), cost)
    fund = rng.choice(["employee", "resident"], n)
    cl = rng.choice(["", "III"], n)
    return [
        (h, p, float(c), "ok", k, 1.3 if k else 1.0, f)
        for h, p, c, f, k in zip(hs, ps, cost, fund, cl, strict=True)
    ]


def row_hfm(pr) -> np.ndarray:
    c = pr.cases
    H = len(c.hospital_ids)
    ok = pr.payable & pr.in_budget
    hfm = (c.hosp.astype(np.int64) * 2 + c.fund) * 12 + c.month
    return np.bincount(hfm[ok], weights=pr.points[ok], minlength=H * 24)


@pytest.mark.parametrize(
    "overlay",
    [
        {},
        {"dip.outliers.inclusive": False},
        {"dip.outliers.coef_on_outliers": False},
        {"dip.outliers.extreme_mode": "coefficient"},
        {"dip.outliers.extreme_mode": "review", "caps.max_points_multiple": 3.0},
    ],
)
def test_cells_equal_rows_for_dip(overlay):
    rows = random_rows(7)
    pv = dip_pv(**overlay)
    pr = priced(rows, pv)
    cells = build_cells(pr)
    np.testing.assert_allclose(hfm_points(cells, cell_points(cells)), row_hfm(pr), rtol=1e-12, atol=1e-9)
    # other DIP outlier thresholds: cells re-priced == rows re-priced == priced afresh
    new = dip_pv(**{**overlay, "dip.outliers.low": 0.6, "dip.outliers.high": 2.4})
    via_cells = points_under(cells, pr, new)
    fresh = priced(rows, new)
    np.testing.assert_allclose(via_cells, row_hfm(fresh), rtol=1e-12, atol=1e-9)
    rp = reprice_thresholds(pr, [new])
    np.testing.assert_allclose(rp.points, fresh.points, rtol=1e-12, atol=1e-9)
    assert list(rp.case_type) == list(fresh.case_type)


def test_drg_only_keys_refused_under_dip():
    rows = random_rows(3, 60)
    pr = priced(rows)
    cells = build_cells(pr)
    with pytest.raises(Exception, match="do\\(es\\) not apply to method dip"):
        points_under(cells, pr, dip_pv(**{"low_cost.factor": 0.3}))


# --- end to end: prepare / simulate / sweep on matched DIP cases ---


def region_rows(seed: int = 11) -> pd.DataFrame:
    """Two years of matched DIP cases (2023 history, 2024 simulated) at three hospitals."""
    rng = np.random.default_rng(seed)
    frames = []
    for yr in (2023, 2024):
        df = cases(random_rows(seed + yr, 600))
        df["discharge_date"] = [
            f"{yr}-{m:02d}-{d:02d}" for m, d in zip(rng.integers(1, 13, len(df)), rng.integers(1, 28, len(df)), strict=True)
        ]
        df["case_id"] = df["case_id"] + (yr - 2023) * 10_000
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def test_prepare_simulate_sweep_dip_region():
    import drgsim

    df = region_rows()
    amount = {f"budget.{f}.source": "amount" for f in ("employee", "resident")}
    amount.update({f"budget.{f}.amount_yuan": 4_000_000.0 for f in ("employee", "resident")})
    pol = load_policy("dip_baseline").with_values(amount)
    base = drgsim.prepare(df, policy=pol, hospitals=HOSP, catalogue=catalogue())
    assert base.dip_ratio["employee"] == pytest.approx(0.7)  # patients pay 30% everywhere
    assert set(base.reference_pv) == {"employee", "resident"}  # PV_b from the 2023 cases
    t = base.simulate()
    assert t["ledger"]["amount_fen"].sum() == 0
    funds = t["funds"].set_index("fund")
    assert (funds["pv_basis"] == "reimbursement_ratio").all()
    assert (funds["pv_ratio_residual_fen"] != 0).all()
    cs = t["cases"]
    assert {"packet", "aux_class", "dip_status", "extreme_review"} <= set(cs.columns)
    assert cs["payment_fen"].sum() == funds["paid_by_points_fen"].sum()
    # months prepaid at PV_b
    months = t["months"]
    pvb = base.reference_pv["employee"]
    assert np.allclose(months[months["fund"] == "employee"]["provisional_pv"], pvb)
    res = base.sweep([{"dip.outliers.high": 2.5}, {"dip.outliers.low": 0.4}, {"budget.employee.amount_yuan": 3_000_000.0}])
    assert len(res.scenarios) == 4  # the baseline first
    assert "re-priced on the cells" in res.scenarios["note"].iloc[1]
    f0 = res.funds[(res.funds["scenario"] == 0)].set_index("fund")
    assert f0.loc["employee", "pv"] == pytest.approx(funds.loc["employee", "pv_used"], rel=1e-12)
    f1 = res.funds[(res.funds["scenario"] == 1)].set_index("fund")
    new = drgsim.prepare(
        df, policy=pol.with_values({"dip.outliers.high": 2.5}), hospitals=HOSP, catalogue=catalogue()
    ).simulate()["funds"].set_index("fund")
    assert f1.loc["employee", "pv"] == pytest.approx(new.loc["employee", "pv_used"], rel=1e-12)
    with pytest.raises(Exception, match="not apply to method dip"):
        base.sweep([{"high_cost.beta": 0.5}])


def test_last_year_pv_on_a_dip_region():
    import drgsim

    df = region_rows(5)
    ov = {
        "point_value.bounds.budgeted_pv": "last_year",
        "point_value.bounds.floor": 0.9,
        "presettlement.provisional_pv": "monthly_budget",
    }
    region = pd.DataFrame(
        {"fund": ["employee", "resident"] * 2, "year": [2023, 2023, 2022, 2022],
         "drg_spending": [3_000_000.0, 3_000_000.0, 2_800_000.0, 2_800_000.0]}
    )
    base = drgsim.prepare(
        df, policy=load_policy("dip_baseline").with_values(ov), hospitals=HOSP,
        region=region, catalogue=catalogue(),
    )
    assert base.reference_pv["employee"] > 0
    assert base.simulate()["ledger"]["amount_fen"].sum() == 0


def test_cli_simulate_dip_policy_errors_in_one_line(tmp_path):
    from click.testing import CliRunner

    from drgsim.cli import main

    p = tmp_path / "matched.csv"
    region_rows(3).to_csv(p, index=False)
    r = CliRunner().invoke(main, ["simulate", str(p), "--policy", "dip_baseline", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    assert "give the catalogue they were matched with" in r.output
    assert "Traceback" not in r.output
    r2 = CliRunner().invoke(main, ["simulate", str(p), "--policy", "no_such", "-o", str(tmp_path / "o")])
    assert r2.exit_code == 2 and "neither a file nor a bundled policy" in r2.output


def test_outlier_order_and_scale_are_checked():
    with pytest.raises(PolicyError, match="low < high <= extreme"):
        load_policy("dip_baseline").with_values({"dip.outliers.extreme": 1.5})
    import drgsim

    cat = catalogue()
    cat.meta["score_scale"] = 1000
    with pytest.raises(DipPricingError, match="scores x1000"):
        drgsim.prepare(region_rows(2), policy="dip_baseline", hospitals=HOSP, catalogue=cat)
