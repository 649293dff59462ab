"""DOMAIN.md section 7 reproduced to the fen: points, point value, payments, corridor, ledger."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drgsim.policy import load_policy
from drgsim.pricing import Weights, prepare_cases, price
from drgsim.settlement import Budget, settle

# the example switches off everything it does not use
EXAMPLE_OVERLAY = {
    "special_review.enabled": False,
    "readmission.enabled": False,
    "short_stay.enabled": False,
    "per_diem.enabled": False,
    "caps.max_points_multiple": None,
    "assessment.enabled": False,
    "hospital_corridor.loss_floor": None,
    "budget.employee.source": "amount",
    "budget.employee.amount_yuan": 75000.0,
    "budget.employee.reserve_yuan": 5000.0,
}


def example_weights() -> Weights:
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
    return Weights.from_frame(w)


def example_cases() -> pd.DataFrame:
    cost = [4800, 30000, 34000, 3600, 4000, 16000, 11000, 8000]
    return pd.DataFrame(
        {
            "case_id": [1, 2, 3, 4, 5, 6, 7, 8],
            "patient_id": [f"p{i}" for i in range(8)],
            "hospital_id": ["H1"] * 4 + ["H2"] * 4,
            "fund": "employee",
            "admit_date": "2024-03-01",
            "discharge_date": "2024-03-08",
            "los_days": 7,
            "total_cost": cost,
            "patient_share": [round(x * 0.3, 2) for x in cost],  # patients pay 30%
            "drg": ["G1", "G2", "G3", "G2", "G1", "G1", "G2", "0000"],
            "adrg": ["G1", "G2", "G3", "G2", "G1", "G1", "G2", ""],
            "mdc": "MDCX",
            "status": ["ok"] * 7 + ["ungroupable"],
        }
    )


HOSPITALS = pd.DataFrame({"hospital_id": ["H1", "H2"], "level": ["3", "2"]})


@pytest.fixture(scope="module")
def result():
    pv = load_policy().with_values(EXAMPLE_OVERLAY).at(2024)
    cases = prepare_cases(example_cases(), HOSPITALS["hospital_id"])
    pr = price(cases, example_weights(), pv, HOSPITALS)
    budget = Budget(budget_fen=7_500_000, reserve_fen=500_000)
    st = settle(pr, pv, {"employee": budget}, 2024)
    return pr, st, st.tables()


def test_points_by_hand(result):
    pr, _, _ = result
    # 50; 120 + 120*(30000/12000 - 2) = 180; 350; 120*3600/12000 = 36;
    # 50*0.85 = 42.5; 42.5 + 50*(16000/5000 - 3) = 52.5; 120*0.85 = 102; 8000/10000*100*0.8 = 64
    assert pr.points == pytest.approx([50, 180, 350, 36, 42.5, 52.5, 102, 64])
    types = pr.frame()["case_type"].tolist()
    assert types == [
        "normal",
        "high_cost",
        "normal",
        "low_cost",
        "normal",
        "high_cost",
        "normal",
        "ungroupable",
    ]


def test_point_value_and_payments(result):
    _, st, t = result
    fs = st.funds[0]
    # PV = (75,000 + 33,420) / 877 yuan per point
    assert fs.pv == pytest.approx((75000 + 33420) / 877)
    assert fs.pv_fund == pytest.approx(75000 / 877)
    h = t["hospitals"].set_index("hospital_id")
    # H1 54,433.614... -> 5,443,361 fen; H2 20,566.385... -> 2,056,639 fen (largest remainder)
    assert h.loc["H1", "payment_fen"] == 5_443_361
    assert h.loc["H2", "payment_fen"] == 2_056_639
    assert h["payment_fen"].sum() == 7_500_000
    # per-case payments add up to the hospitals'
    assert t["cases"].groupby("hospital_id")["payment_fen"].sum().to_dict() == {
        "H1": 5_443_361,
        "H2": 2_056_639,
    }


def test_corridor(result):
    _, _, t = result
    h = t["hospitals"].set_index("hospital_id")
    # H1 receives 76,153.61 for 72,400 (105.2%): inside 90-110%, keeps the surplus
    assert h.loc["H1", "corridor_refund_fen"] == 0 and h.loc["H1", "corridor_clawback_fen"] == 0
    # H2: 3,510,000 - 3,226,639 = 283,361 fen below 90%; half = 141,680.5 -> 141,681 (half-up)
    assert h.loc["H2", "corridor_refund_fen"] == 141_681


def test_ledger(result):
    _, st, t = result
    led = t["ledger"]
    assert led["amount_fen"].sum() == 0
    lines = led.groupby("line")["amount_fen"].sum()
    assert lines["budget"] == 7_500_000
    assert lines["reserve"] == 500_000  # the reserve stated by this test
    assert lines["corridor_refund"] == -141_681
    assert lines["budget_remaining"] == 0  # a budget-derived PV spends it all
    assert lines["reserve_remaining"] == -(500_000 - 141_681)
    # per hospital: prepayments + annual balance = annual payment
    hl = (
        led[led["account"] == "hospital"]
        .groupby(["hospital_id", "line"])["amount_fen"]
        .sum()
        .unstack(fill_value=0)
    )
    h = t["hospitals"].set_index("hospital_id")
    paid = -(hl["prepayment"] + hl["annual_balance"])
    assert paid.to_dict() == h["annual_payment_fen"].to_dict() == {"H1": 5_443_361, "H2": 2_056_639}
    # reserve draws (reserve in - reserve left) = corridor refunds
    assert lines["reserve"] + lines["reserve_remaining"] == -lines["corridor_refund"]


def test_monthly_presettlement(result):
    _, st, _ = result
    fs = st.funds[0]
    # all cases in March: provisional PV = (75,000/12 + 33,420) / 877; prepay 90% of the due
    prov = (75000 / 12 + 33420) / 877
    assert fs.provisional_pv[2] == pytest.approx(prov)
    due_h2 = 261 * prov * 100 - 1_170_000
    assert fs.prepaid_hm[1, 2] == int(np.floor(max(due_h2, 0) * 0.9 + 0.5))
    assert (fs.prepaid_hm.sum(1) + fs.balance == fs.annual).all()
