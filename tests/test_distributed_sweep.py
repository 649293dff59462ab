"""Every sweep route on Dask and Spark equals the single machine's sweep to the fen.

One small synthetic region with dirty rows (a few hundred discharges a year, 5 hospitals),
calibrated weights (so the recalibrate route runs). The scenarios touch each route: a
settlement key, an outlier threshold (cells), a readmission window and its factor (rows),
a calibration key (recalibrate), behaviour draws on the cells (volume and inflation by
level, coding creep) and a LOS change (the rows per draw). ``drgsim.dask.prepare(...)
.sweep(...)`` and ``drgsim.spark.prepare(...).sweep(...)`` must equal
``drgsim.prepare(...).sweep(...)`` exactly (``assert_frame_equal``: float points bit for
bit). One Dask LocalCluster (2 workers × 1 thread) and one local Spark session per module.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import drgsim
from drgsim.distributed import DistributedError

SEED = 5
DRAWS = 4
TABLES = ("scenarios", "routes", "hospitals", "funds", "months")

SCENARIOS = [
    {"name": "base"},
    {"name": "growth", "budget.*.growth": 0.05},
    {"name": "beta", "high_cost.beta": 0.8},
    {"name": "window", "readmission.days": 30, "readmission.points_factor": 0.6},
    {"name": "inflation", "calibration.inflation": 0.06},
]
BEHAVIOUR = [
    {"name": "base"},
    {
        "name": "cells",
        "behaviour.volume_growth": {"all": 0.01, "by_level": {"三级": {"dist": "uniform",
                                                                     "min": 0.0, "max": 0.06}}},
        "behaviour.cost_inflation": {"by_level": {"二级": {"dist": "normal", "mean": 0.03,
                                                          "sd": 0.01}}},
        "behaviour.coding_creep": {"dist": "triangular", "min": 0.01, "mode": 0.02, "max": 0.04},
    },
    {"name": "beta+creep", "high_cost.beta": 0.8, "behaviour.coding_creep": 0.02},
    {"name": "los", "behaviour.los_change": {"dist": "uniform", "min": 0.85, "max": 1.0}},
]


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    out = tmp_path_factory.mktemp("dsweep") / "region"
    drgsim.synth.region(out, discharges=2400, hospitals=5, seed=3, workers=1)
    hosp = pd.read_parquet(out / "hospitals.parquet")
    reg = pd.read_parquet(out / "region.parquet")
    return out, hosp, reg


@pytest.fixture(scope="module")
def single(region):
    """The single machine's preparation (calibrated) and its sweeps."""
    out, hosp, reg = region
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = drgsim.prepare(out / "discharges", hospitals=hosp, region=reg)
        return {
            "base": base,
            "routes": base.sweep(SCENARIOS, monthly=True),
            "draws": base.sweep(BEHAVIOUR, draws=DRAWS, seed=SEED),
        }


def same(got, ref, tables=TABLES) -> None:
    for name in tables:
        a, b = getattr(got, name), getattr(ref, name)
        if b is None:
            assert a is None, name
            continue
        pd.testing.assert_frame_equal(a, b, obj=name)


def check_routes(res) -> None:
    assert res.scenarios["route"].tolist() == [
        "settlement", "settlement", "cells", "rows", "recalibrate"]


# ---------------------------------------------------------------------------- Dask
@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed", reason="the dask extra is absent")
    from distributed import Client, LocalCluster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lc = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
    c = Client(lc)
    yield c
    c.close()
    lc.close()


@pytest.fixture(scope="module")
def dask_base(client, region):
    import drgsim.dask as dg

    out, hosp, reg = region
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ddf = dg.read_parquet(out / "discharges")
        return dg.prepare(ddf, hospitals=hosp, region=reg, client=client, npartitions=3)


def test_dask_every_route_equals_the_single_machine(dask_base, single):
    res = dask_base.sweep(SCENARIOS, monthly=True)
    check_routes(res)
    same(res, single["routes"])


def test_dask_behaviour_draws_equal_the_single_machine(dask_base, single):
    res = dask_base.sweep(BEHAVIOUR, draws=DRAWS, seed=SEED)
    assert (res.hospitals["draw"].nunique(), len(res.scenarios)) == (DRAWS, len(BEHAVIOUR))
    same(res, single["draws"])
    # the draws moved the money: a test that would pass on the baseline's totals proves nothing
    f = res.funds.groupby("scenario")["points"].std()
    assert (f.loc[[1, 3]] > 0).all()
