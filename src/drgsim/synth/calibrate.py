"""Scale the catalogue's costs and LOS so the default region meets DOMAIN.md's means."""

from __future__ import annotations

import numpy as np

from drgsim.synth import params as P
from drgsim.synth.casemix import Catalogue
from drgsim.synth.generate import BlockSpec, generate_block
from drgsim.synth.hospitals import make_hospitals

CALIBRATION_SEED = 97
CALIBRATION_ROWS = 120_000


def sample_means(cat: Catalogue, rows: int = CALIBRATION_ROWS) -> tuple[float, float]:
    """Mean cost (yuan) and LOS of clean cases of a default-sized region, all years."""
    hosp = make_hospitals(P.DEFAULT_HOSPITALS, CALIBRATION_SEED)
    costs, los = [], []
    n_years = len(P.DEFAULT_YEARS)
    per = rows // n_years
    for yi, year in enumerate(P.DEFAULT_YEARS):
        spec = BlockSpec(year, yi, 6, 0, per, 0, yi * per)
        b = generate_block(cat, hosp, spec, CALIBRATION_SEED)
        costs.append(b.arrays["total_cost"] / 100.0)
        los.append(b.arrays["los_days"])
    return float(np.concatenate(costs).mean()), float(np.concatenate(los).mean())


def calibrate(cat: Catalogue) -> None:
    """Set ``cost_scale`` and ``los_scale`` in place (a few fixed-point steps)."""
    for _ in range(3):
        cost, los = sample_means(cat)
        cat.cost_scale *= P.TARGET_MEAN_COST / cost
        cat.los_scale *= P.TARGET_MEAN_LOS / los
