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
    # a settlement scenario whose budget comes from last year's spending: summed on the
    # partitions under the baseline's pricing; a recalibrated one: under its own weights
    {"name": "growth", "budget.*.growth": 0.05, "budget.employee.source": "history"},
    {"name": "beta", "high_cost.beta": 0.8},
    {"name": "window", "readmission.days": 30, "readmission.points_factor": 0.6},
    {"name": "inflation", "calibration.inflation": 0.06, "budget.resident.source": "history"},
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


def test_dask_chunk_never_changes_a_result(dask_base, single):
    """Blocks of one draw: more round trips, the same money."""
    eng = dask_base._cache["engine"]
    before = eng.round_trips
    res = dask_base.sweep(BEHAVIOUR, draws=DRAWS, seed=SEED, chunk=1)
    assert eng.round_trips - before > 2 * DRAWS  # a round trip per block of one draw
    same(res, single["draws"])


def test_dask_hospital_in_two_partitions_is_refused(dask_base, monkeypatch):
    eng = dask_base._cache["engine"]
    monkeypatch.setattr(eng, "parts", eng.parts + eng.parts)  # every hospital twice
    with pytest.raises(DistributedError, match="two partitions"):
        dask_base.sweep([{"name": "beta", "high_cost.beta": 0.8}])


def test_rows_not_kept_are_refused_in_one_line(dask_base):
    import copy

    base = copy.copy(dask_base)
    base._cache = {k: v for k, v in dask_base._cache.items() if k != "engine"}
    with pytest.raises(DistributedError, match="keep_rows=True") as e:
        base.sweep([{"name": "beta", "high_cost.beta": 0.8}])
    assert "\n" not in str(e.value)
    assert len(base.sweep([{"name": "growth", "budget.*.growth": 0.05}]).scenarios) == 2


# ---------------------------------------------------------------------------- Spark
def _need_spark() -> None:
    from conftest import IN_CI

    missing = []
    if shutil.which("java") is None:
        missing.append("a Java runtime (java on PATH)")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        missing.append("pyspark (pip install 'drgsim[spark]')")
    if missing:
        if IN_CI:
            pytest.fail(f"Spark tests need {' and '.join(missing)}; .ci/run installs them")
        pytest.skip(f"Spark tests need {' and '.join(missing)}")


@pytest.fixture(scope="module")
def spark():
    _need_spark()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    s = (
        SparkSession.builder.master("local[2]")
        .appName("drgsim-dsweep-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .getOrCreate()
    )
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def spark_base(spark, region):
    from drgsim import spark as dsp

    out, hosp, reg = region
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dsp.prepare(spark.read.parquet(str(out / "discharges")), hospitals=hosp,
                           region=reg)


def test_spark_every_route_equals_the_single_machine(spark_base, single):
    res = spark_base.sweep(SCENARIOS, monthly=True)
    check_routes(res)
    same(res, single["routes"])


def test_spark_behaviour_draws_equal_the_single_machine(spark_base, single):
    eng = spark_base._cache["engine"]
    before = eng.round_trips
    res = spark_base.sweep(BEHAVIOUR, draws=DRAWS, seed=SEED, chunk=3)
    same(res, single["draws"])
    # passes: the beta set, then every LOS set at once; per group its blocks of 3 draws
    # (the first doubles as the check): cells 2, beta+creep 2, one per LOS draw
    assert eng.round_trips - before == 1 + 1 + 2 + 2 + DRAWS
