"""Cells re-price by binary search exactly as the row-wise pricing does."""

from __future__ import annotations

import numpy as np
import pytest

from drgsim.policy import load_policy
from drgsim.pricing import Weights, prepare_cases, price
from drgsim.pricing.cells import build_cells, cell_points, hfm_points
from drgsim.pricing.fake import fake_cases, fake_hospitals, fake_weights

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
