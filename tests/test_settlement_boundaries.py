"""Boundaries of the case types (DOMAIN.md §3), row by row and through the cells.

The tiers: RW ≤ 1: k = 3; 1 < RW ≤ 3: k = 2; RW > 3: k = 1.5. A DRG with RW exactly on a
tier edge takes the lower tier's k. High-cost is ``cost > k × m``: a case at exactly
``k × m`` is normal; low-cost is ``cost < l × m``: a case at exactly ``l × m`` is normal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drgsim.policy import load_policy
from drgsim.pricing import Weights, prepare_cases, price
from drgsim.pricing.cells import build_cells
from drgsim.settlement.run import all_fund_totals, cell_fund_totals

W = pd.DataFrame(
    {
        "key": ["E1", "E3", "G3"],
        "level": "drg",
        "rw": [1.0, 3.0, 3.5],  # E1, E3 exactly on the tier edges
        "points": [100.0, 300.0, 350.0],
        "mean_cost_fen": [1_000_000, 3_000_000, 3_500_000],
    }
)
W.attrs["m_all_fen"] = 1_000_000

# (drg, cost in yuan, expected type, expected points by hand)
CASES = [
    # RW 1.0 is in the first tier (k 3): 2.5 x m is normal (with k 2 it would be high)
    ("E1", 25_000.00, "normal", 100.0),
    # exactly k x m = 3 x 10,000: normal; one fen more: high, 100 + 100 x (3.000001 - 3)
    ("E1", 30_000.00, "normal", 100.0),
    ("E1", 30_000.01, "high_cost", 100.0 + 100.0 * (3_000_001 / 1_000_000 - 3)),
    # RW 3.0 is in the second tier (k 2): 1.8 x m is normal (with k 1.5 it would be high)
    ("E3", 54_000.00, "normal", 300.0),
    # exactly 2 x 30,000: normal; one fen more: high
    ("E3", 60_000.00, "normal", 300.0),
    ("E3", 60_000.01, "high_cost", 300.0 + 300.0 * (6_000_001 / 3_000_000 - 2)),
    # RW 3.5 > 3: k 1.5; exactly 1.5 x 35,000 = 52,500 is normal
    ("G3", 52_500.00, "normal", 350.0),
    ("G3", 52_500.01, "high_cost", 350.0 + 350.0 * (5_250_001 / 3_500_000 - 1.5)),
    # low-cost below 0.4 x m: exactly 0.4 x 10,000 is normal; one fen less is low
    ("E1", 4_000.00, "normal", 100.0),
    ("E1", 3_999.99, "low_cost", 100.0 * 399_999 / 1_000_000),
]


@pytest.fixture(scope="module", params=["month_each", "one_month"])
def priced(request):
    n = len(CASES)
    months = range(1, n + 1) if request.param == "month_each" else [1] * n
    df = pd.DataFrame(
        {
            "case_id": np.arange(1, n + 1),
            "patient_id": [f"p{i}" for i in range(n)],
            "hospital_id": "H1",
            "fund": "employee",
            # one case a month (each cell holds one case), or all in January (the cells'
            # binary search runs over several costs on both sides of each threshold)
            "discharge_date": [f"2024-{m:02d}-15" for m in months],
            "los_days": 5,
            "total_cost": [c[1] for c in CASES],
            "patient_share": 0.0,
            "drg": [c[0] for c in CASES],
            "adrg": [c[0] for c in CASES],
            "mdc": "MDCX",
            "status": "ok",
        }
    )
    pv = (
        load_policy()
        .with_values(
            {
                "special_review.enabled": False,
                "readmission.enabled": False,
                "short_stay.enabled": False,
                "per_diem.enabled": False,
                "caps.max_points_multiple": None,
            }
        )
        .at(2024)
    )
    hosp = pd.DataFrame({"hospital_id": ["H1"], "level": ["3"]})
    return price(prepare_cases(df, ["H1"]), Weights.from_frame(W), pv, hosp)


def test_tier_edges_and_thresholds_row_by_row(priced):
    f = priced.frame()
    assert f["k"].tolist()[:6] == [3.0, 3.0, 3.0, 2.0, 2.0, 2.0]
    assert f["case_type"].tolist() == [c[2] for c in CASES]
    assert priced.points == pytest.approx([c[3] for c in CASES], rel=1e-12)


def test_tier_edges_and_thresholds_through_the_cells(priced):
    """The settlement's cells (binary search over sorted costs) put each case on the same
    side of every threshold as the rows. (At exactly k × m the high-cost formula gives the
    normal points, so only the row test above can see that side of the high threshold; the
    low-cost threshold moves money and is pinned here too.)"""
    cells = build_cells(priced)
    by_cells = cell_fund_totals(cells)[0].points[0]
    by_rows = all_fund_totals(priced)[0].points[0]
    hand = np.bincount(priced.cases.month, weights=[c[3] for c in CASES], minlength=12)
    assert by_cells == pytest.approx(hand, rel=1e-12)
    assert by_cells == pytest.approx(by_rows, rel=1e-12)
