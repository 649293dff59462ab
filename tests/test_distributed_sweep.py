"""Every sweep route on Dask and Spark equals the single machine's sweep to the fen.

One small synthetic region with dirty rows (a few hundred discharges a year, 5 hospitals),
calibrated weights (so the recalibrate route runs). The scenarios touch each route: a
settlement key, an outlier threshold (cells), a readmission window and its factor (rows),
a calibration key (recalibrate), behaviour draws on the cells (volume and inflation by
level, coding creep) and a LOS change (the rows per draw). ``drgsim.dask.prepare(...)
.sweep(...)`` and ``drgsim.spark.prepare(...).sweep(...)`` must equal
``drgsim.prepare(...).sweep(...)`` exactly (``assert_frame_equal``: float points bit for
bit). One Dask LocalCluster (2 workers × 1 thread) per module and the run's one local Spark
session (tests/conftest.py).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import synth_region

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
    # below the short stays' points / P: the cells refuse (naming the largest ratio over
    # every hospital, which no single partition knows) and the rows are re-priced
    {"name": "cap", "caps.max_points_multiple": 0.3},
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
    return synth_region(tmp_path_factory.mktemp("dsweep") / "region", discharges=2400,
                        hospitals=5, seed=3, workers=1)


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
        "settlement", "settlement", "cells", "rows", "recalibrate", "rows"]
    assert "the cells cannot re-price them (a cap of 0.3" in res.scenarios["note"].iloc[-1]


# ---------------------------------------------------------------------------- Dask
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


def test_dask_recalibrated_los_change_equals_the_single_machine(dask_base, single):
    """A LOS change on a recalibrated scenario re-prices the rows with its own weights."""
    ov = [{"name": "cal+los", "calibration.inflation": 0.06, "behaviour.los_change": 0.9}]
    res, ref = dask_base.sweep(ov), single["base"].sweep(ov)
    same(res, ref)
    plain = single["base"].sweep([{"name": "los", "behaviour.los_change": 0.9}])
    assert not ref.funds["points"].equals(plain.funds["points"])  # the weights count


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


# ---------------------------------------------------------------------------- in process
def _in_process(frame: pd.DataFrame, parts: list[np.ndarray], w_df, reg):
    """A distributed base without an engine process: the adapters' steps (price each
    partition, reduce, driver_prepared) with :func:`run_job` mapped in this process."""
    from drgsim.distributed import combine, driver_prepared, price_partition
    from drgsim.distributed.partition import ROW, driver_context, global_hospitals
    from drgsim.distributed.sweep import SweepEngine, run_job
    from drgsim.policy import load_policy, resolve_year

    pol = load_policy(None)
    year = int(pd.to_datetime(frame["discharge_date"], errors="coerce").dt.year.max())
    yp = resolve_year(pol, year)
    ctx = driver_context(w_df, yp.pv, yp, year, "discharge_date", None, None, None, "test")
    ctx.keep_rows = True
    df = frame.assign(**{ROW: np.arange(len(frame))})
    pps = [price_partition(df[m], ctx) for m in parts]
    summaries = [p.summary() for p in pps]
    hids = global_hospitals(summaries, None)
    base = driver_prepared(pol, yp, year, combine(summaries, hids), hids, ctx.W, w_df, "given",
                           w_df, None, reg, None, "discharge_date", {}, None, frame.iloc[0:0])

    class InProcess(SweepEngine):
        def map_job(self, job):
            return [run_job(p.local, job) for p in pps]

    base._cache["engine"] = InProcess(hids)
    return base


@pytest.fixture(scope="module")
def no_table(region, single):
    """Without a hospitals table each partition's hospital axis is its own hospitals."""
    out, _, reg = region
    frame = drgsim.group(drgsim.read_records(out / "discharges").to_pandas())
    w = single["base"].w_df
    h = frame["hospital_id"].astype(str)
    parts = [h.isin(["H001", "H004"]).to_numpy(), h.isin(["H002", "H005"]).to_numpy(),
             h.isin(["H003"]).to_numpy()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (_in_process(frame, parts, w, reg),
                drgsim.prepare(frame, weights=w, region=reg), frame, w, reg)


def test_values_by_hospital_resolved_against_every_hospital(no_table):
    """H005 is known only to its partition: each partition is given the values resolved
    on the driver, not asked to find H005 itself."""
    base, ref = no_table[:2]
    ov = [{"name": "h5", "behaviour.volume_growth.by_hospital.H005":
           {"dist": "uniform", "min": 0.0, "max": 0.1}, "behaviour.cost_inflation": 0.02,
           "readmission.days": 20}]
    res = base.sweep(ov, draws=3, seed=1)
    same(res, ref.sweep(ov, draws=3, seed=1))
    with pytest.raises(drgsim.errors.DrgsimError, match="H009"):  # absent everywhere: refused
        base.sweep([{"behaviour.volume_growth.by_hospital.H009": 0.1}])


def test_hospital_split_over_partitions_is_refused(no_table):
    frame, w, reg = no_table[2:]
    m = pd.to_datetime(frame["discharge_date"], errors="coerce").dt.month.fillna(0) <= 6
    with pytest.raises(DistributedError, match="one partition"):
        _in_process(frame, [m.to_numpy(), ~m.to_numpy()], w, reg)


def test_a_partition_refusal_is_raised_on_the_driver_as_its_own_class():
    import pickle

    from drgsim.distributed.sweep import Failed
    from drgsim.errors import Problem, ScenarioError

    e = ScenarioError([Problem("behaviour", None, "los_change", "0 is outside (0, inf)")])
    back = pickle.loads(pickle.dumps(Failed.of(e))).error
    assert type(back) is ScenarioError and str(back) == str(e)
    assert back.problems == e.problems


def test_cli_sweep_engine_dask_takes_repricing_scenario_files(client, region, single, tmp_path):
    """``drgsim sweep --engine dask`` with a scenario file that re-prices rows and draws
    behaviour: the single machine's funds table."""
    from click.testing import CliRunner

    from drgsim.cli import main

    root, _, _ = region
    spec = tmp_path / "rows.yaml"
    spec.write_text(
        "name: rows\ngrid:\n  readmission.days: [20, 30]\nbehaviour:\n"
        "  volume_growth: {dist: uniform, min: 0.0, max: 0.04}\ndraws: {n: 3, seed: 2}\n",
        encoding="utf-8")
    out = tmp_path / "sw"
    r = CliRunner().invoke(main, [
        "sweep", str(root / "discharges"), "--scenarios", str(spec),
        "--hospitals", str(root / "hospitals.parquet"), "--region", str(root / "region.parquet"),
        "-o", str(out), "--engine", "dask", "--scheduler", client.scheduler.address])
    assert r.exit_code == 0, r.output
    ref = single["base"].sweep(spec)
    assert set(ref.routes["route"]) == {"settlement", "rows"}
    got = pd.read_parquet(out / "funds.parquet")
    for c in ("pv", "points", "paid_by_points_fen", "budget_fen"):
        np.testing.assert_array_equal(got[c].to_numpy(), ref.funds[c].to_numpy(), err_msg=c)
