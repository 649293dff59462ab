"""A ledger test that can fail: every line recomputed from the case and hospital tables.

The engine's ledger sums to 0 by construction, so identities between its own lines prove
little (a refund altered to 999,999 fen still satisfies them). Here each line is computed
again, in plain Python, from the per-case table (points, cost, patients' share, month,
hospital) and the hospital table (assessment scores) with the policy's rules (DOMAIN.md
§4), and compared line by line; altering any single line by one fen is detected.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from test_settlement_golden import example_cases, example_weights

from drgsim.policy import load_policy
from drgsim.pricing import prepare_cases, price
from drgsim.settlement import Budget, settle

HOSPITALS = pd.DataFrame(
    {
        "hospital_id": ["H1", "H2", "H3"],
        "level": ["3", "2", "1"],
        "assessment_score": [95.0, 70.0, np.nan],  # H3 has none: the default score
    }
)


def cases() -> pd.DataFrame:
    df = example_cases()
    extra = pd.DataFrame(
        {
            "case_id": [9, 10],
            "patient_id": ["p9", "p10"],
            "hospital_id": ["H3", "H3"],
            "fund": "employee",
            "admit_date": ["2024-05-01", "2024-11-01"],
            "discharge_date": ["2024-05-09", "2024-11-09"],
            "los_days": 8,
            "total_cost": [20000.0, 4500.0],
            "patient_share": [6000.0, 1350.0],
            "drg": ["G3", "G1"],
            "adrg": ["G3", "G1"],
            "mdc": "MDCX",
            "status": "ok",
        }
    )
    df = pd.concat([df, extra], ignore_index=True)
    months = ["2024-01-20", "2024-02-20", "2024-02-21", "2024-07-02", "2024-03-03", "2024-03-09",
              "2024-09-30", "2024-12-01", "2024-05-09", "2024-11-09"]  # fmt: skip
    df["discharge_date"] = months
    df["admit_date"] = (pd.to_datetime(df["discharge_date"]) - pd.Timedelta(days=7)).astype(str)
    return df


SETTINGS = {
    "special_review.enabled": False,
    "readmission.enabled": False,
    "short_stay.enabled": False,
    "per_diem.enabled": False,
    "caps.max_points_multiple": None,
    "hospital_corridor.surplus_keep": 0.6,
    "region_corridor.enabled": True,
}

SCENARIOS = {
    # overspend: the region corridor draws on the reserve; H2 gets a refund, H3 a clawback,
    # H2 forfeits part of its withheld share
    "region_draw": ({}, Budget(7_000_000, 500_000)),
    # an absolute point-value floor above the budget's point value: the fund tops up
    "floor": (
        {"point_value.bounds.mode": "absolute", "point_value.bounds.floor": 135.0},
        Budget(7_000_000, 500_000),
    ),
    # the reserve too small for the draws, the fund pays the excess
    "overdraw": ({"reserve.overdraw": "fund_pays"}, Budget(7_000_000, 200_000)),
}


def run(name: str):
    over, budget = SCENARIOS[name]
    pv = load_policy().with_values({**SETTINGS, **over}).at(2024)
    pr = price(prepare_cases(cases(), HOSPITALS["hospital_id"]), example_weights(), pv, HOSPITALS)
    st = settle(pr, pv, {"employee": budget}, 2024, HOSPITALS["assessment_score"].to_numpy())
    return pv, budget, st.tables()


# ---- the recomputation, independent of the engine -----------------------------------------


def ppm(r: float) -> Fraction:
    return Fraction(round(r * 1_000_000), 1_000_000)


def mul_half_up(x: int, r: float) -> int:
    """Integer fen × ratio, half away from zero."""
    v = Fraction(x) * ppm(r)
    return int(math.copysign(math.floor(abs(v) + Fraction(1, 2)), v)) if v else 0


def round_half_up(x: float) -> int:
    x = round(x, 6)
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def split(quotas: dict, total: int) -> dict:
    """Largest remainder: floors, then one more fen to the largest fractional parts
    (ties to the earlier key)."""
    q = {k: round(v, 6) for k, v in quotas.items()}
    out = {k: math.floor(v) for k, v in q.items()}
    left = total - sum(out.values())
    keys = list(q)
    order = sorted(keys, key=lambda k: (-(q[k] - math.floor(q[k])), keys.index(k)))
    for i in range(abs(left)):
        out[order[i % len(order)]] += 1 if left > 0 else -1
    return out


def expected_ledger(pv: dict, budget: Budget, cases: pd.DataFrame, hospitals: pd.DataFrame):
    """Every ledger line of the one fund, keyed (line, account, hospital, month)."""
    c = cases[(cases["pay_status"] == "ok") & cases["in_budget"]]
    hs = sorted(c["hospital_id"].unique())
    P_h = {h: sum(c.loc[c["hospital_id"] == h, "points"]) for h in hs}
    S_h = {h: int(c.loc[c["hospital_id"] == h, "patient_share_fen"].sum()) for h in hs}
    C_h = {h: int(c.loc[c["hospital_id"] == h, "cost_fen"].sum()) for h in hs}
    P, S, C = sum(P_h.values()), sum(S_h.values()), sum(C_h.values())
    B, R = budget.budget_fen, budget.reserve_fen
    refuse = pv["reserve"]["overdraw"] == "refuse"

    # region corridor: the fund's cost over the budget is shared inside the band
    E = C - S
    rc = pv["region_corridor"]
    draw = 0
    if E > B:
        draw = mul_half_up(
            min(E - B, mul_half_up(B, rc["overspend_band"])), rc["overspend_fund_share"]
        )
        draw = min(draw, R) if refuse else draw
    D = B + draw  # (the examples overspend)
    pv_yuan = (D + S) / P / 100  # total-cost basis
    bd = pv["point_value"]["bounds"]
    topup = 0
    T = D
    if bd["mode"] == "absolute" and bd["floor"] is not None and pv_yuan < bd["floor"]:
        pv_yuan = bd["floor"]
        T = round_half_up(P * pv_yuan * 100 - S)
        topup = T - D
    A = split({h: P_h[h] * pv_yuan * 100 - S_h[h] for h in hs}, T)

    # monthly pre-settlement: provisional PV = (B / 12 + the month's share) / its points
    ps, ap = pv["presettlement"], pv["assessment"]
    prepaid, withheld = {}, {h: 0 for h in hs}
    for mo in range(1, 13):
        cm = c[c["month"] == mo]
        if not len(cm):
            continue
        prov = (B / 12 + int(cm["patient_share_fen"].sum())) / sum(cm["points"]) / 100
        for h in hs:
            ch = cm[cm["hospital_id"] == h]
            if not len(ch):
                continue
            due = sum(ch["points"]) * prov * 100 - int(ch["patient_share_fen"].sum())
            gross = round_half_up(max(due, 0.0) * ps["prepay_share"])
            w = mul_half_up(gross, ap["withhold_share"])
            withheld[h] += w
            prepaid[(h, mo)] = gross - w
    score = hospitals.set_index("hospital_id")["assessment_score"].fillna(ap["default_score"])
    full, zero = ap["full_release_score"], ap["zero_release_score"]
    forfeit = {}
    for h in hs:
        frac = min(max((score[h] - zero) / (full - zero), 0.0), 1.0)
        forfeit[h] = withheld[h] - round_half_up(withheld[h] * frac)
    annual = {h: A[h] - forfeit[h] for h in hs}

    # hospital corridor on the payment before the forfeit (after_corridor)
    hc = pv["hospital_corridor"]
    refund, claw = {}, {}
    for h in hs:
        got = A[h] + S_h[h]
        lo, hi = mul_half_up(C_h[h], hc["lower"]), mul_half_up(C_h[h], hc["upper"])
        floor_amt = mul_half_up(C_h[h], hc["loss_floor"])
        refund[h] = mul_half_up(lo - max(got, floor_amt), hc["loss_share"]) if got < lo else 0
        claw[h] = mul_half_up(got - hi, 1 - hc["surplus_keep"]) if got > hi else 0
    avail = max(R - draw + sum(claw.values()), 0)
    if refuse and sum(refund.values()) > avail:
        want = sum(refund.values())
        refund = split({h: refund[h] * avail / want for h in hs}, avail)
    overdraw = max(draw + sum(refund.values()) - sum(claw.values()) - R, 0)

    out = {("budget", "drg_budget", None, None): B, ("reserve", "reserve", None, None): R}
    for h in hs:
        for mo in range(1, 13):
            if prepaid.get((h, mo)):
                out[("prepayment", "hospital", h, mo)] = -prepaid[(h, mo)]
        paid_before = sum(v for (hh, _), v in prepaid.items() if hh == h)
        out[("annual_balance", "hospital", h, None)] = -(annual[h] - paid_before)
        if forfeit[h]:
            out[("assessment_forfeit", "fund", h, None)] = -forfeit[h]
        if refund[h]:
            out[("corridor_refund", "hospital", h, None)] = -refund[h]
        if claw[h]:
            out[("corridor_clawback", "hospital", h, None)] = claw[h]
    if draw:
        out[("region_corridor_draw", "reserve", None, None)] = -draw
        out[("region_corridor_draw", "drg_budget", None, None)] = draw
    if topup:
        out[("pv_floor_topup", "fund", None, None)] = topup
    if overdraw:
        out[("reserve_overdraw", "fund", None, None)] = overdraw
    # what is left of the budget and of the reserve
    out[("budget_remaining", "drg_budget", None, None)] = -(B + draw + topup - sum(A.values()))
    out[("reserve_remaining", "reserve", None, None)] = -(
        R - draw - sum(refund.values()) + sum(claw.values()) + overdraw
    )
    return out


def as_dict(led: pd.DataFrame) -> dict:
    out = {}
    for r in led.itertuples(index=False):
        key = (
            r.line,
            r.account,
            None if pd.isna(r.hospital_id) else str(r.hospital_id),
            None if pd.isna(r.month) else int(r.month),
        )
        assert key not in out, key
        out[key] = int(r.amount_fen)
    return out


def mismatches(led: pd.DataFrame, expected: dict) -> list:
    got = as_dict(led)
    return [k for k in set(got) | set(expected) if got.get(k) != expected.get(k)]


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def scenario(request):
    pv, budget, t = run(request.param)
    return request.param, pv, budget, t


def test_every_line_recomputed(scenario):
    name, pv, budget, t = scenario
    exp = expected_ledger(pv, budget, t["cases"], HOSPITALS)
    assert mismatches(t["ledger"], exp) == []
    lines = {k[0] for k in exp}
    # each scenario exercises the lines it is there for
    common = {"prepayment", "annual_balance", "assessment_forfeit", "corridor_clawback"}
    want = {
        "region_draw": {"region_corridor_draw", "corridor_refund"},  # refunds scaled down
        "floor": {"pv_floor_topup"},
        "overdraw": {"reserve_overdraw", "corridor_refund"},
    }[name]
    assert common | want <= lines


def test_altering_any_line_by_one_fen_is_detected(scenario):
    _, pv, budget, t = scenario
    exp = expected_ledger(pv, budget, t["cases"], HOSPITALS)
    led = t["ledger"]
    for i in range(len(led)):
        for delta in (1, -1):
            bad = led.copy()
            bad.loc[bad.index[i], "amount_fen"] += delta
            assert mismatches(bad, exp), (led.iloc[i].to_dict(), delta)


def test_the_refund_altered_to_999_999_fen_is_detected():
    """The issue's example: every identity of the old tests still held after this."""
    pv, budget, t = run("region_draw")
    exp = expected_ledger(pv, budget, t["cases"], HOSPITALS)
    led = t["ledger"].copy()
    i = led.index[(led["line"] == "corridor_refund") & (led["hospital_id"] == "H1")][0]
    old = int(led.loc[i, "amount_fen"])
    led.loc[i, "amount_fen"] = -999_999
    # keep the ledger summing to 0, as a careless fix would: move the difference to the
    # reserve's remainder
    j = led.index[led["line"] == "reserve_remaining"][0]
    led.loc[j, "amount_fen"] -= -999_999 - old
    assert led["amount_fen"].sum() == 0
    assert ("corridor_refund", "hospital", "H1", None) in mismatches(led, exp)
