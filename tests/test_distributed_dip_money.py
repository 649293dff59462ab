"""DIP pricing, simulation and sweep (every route) on Dask and Spark, and ``budgeted_pv: last_year``
without ``reference_pv`` on the engines (issue 20): every table equal to the single
machine's to the fen, the point values (PV_b, the reimbursement ratio r, last year's point
value) bit for bit.

A small synthetic region of three years with its dirty rows, plus three simulated-year
rows without a discharge date (paid bad_date, never dropped). One Dask LocalCluster
(2 workers × 1 thread) per module and the run's one local Spark session (tests/conftest.py).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import synth_region
from hypothesis import given, settings
from hypothesis import strategies as st

import drgsim
from drgsim.policy import load_policy

TABLES = ["funds", "hospitals", "months", "ledger", "drgs", "pay_status", "summary", "weights"]
LAST_YEAR = {"point_value.bounds.budgeted_pv": "last_year", "point_value.bounds.floor": 0.97,
             "point_value.bounds.ceiling": 1.02, "presettlement.provisional_pv": "monthly_budget"}


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """Three years (2022-2024), six hospitals, the synthesiser's dirty rows, and three
    2024 rows of one hospital without a discharge date."""
    return synth_region(tmp_path_factory.mktemp("dipmoney") / "region", undated="year=2024/month=03",
                        discharges=2400, hospitals=6, years=(2022, 2023, 2024), seed=7,
                        workers=1)


def _same_as_simulate(out, frame, hosp, reg, folder) -> None:
    """A CLI ``simulate`` output folder holds ``drgsim.simulate``'s tables (DIP baseline)."""
    ref = quiet(drgsim.simulate, frame, policy="dip_baseline", hospitals=hosp, region=reg,
                catalogue=folder)
    for name in ("funds", "hospitals", "ledger"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / f"{name}.parquet"), ref[name],
                                      check_dtype=False, obj=name)
    assert len(pd.read_parquet(out / "cases.parquet")) == len(ref["cases"])


@pytest.fixture(scope="module")
def frame(region):
    from drgsim.settlement.simulate import read_table

    return read_table(region[0] / "discharges")[0]


@pytest.fixture(scope="module")
def catalogue(frame, tmp_path_factory):
    """A catalogue ``dip.build`` made of the years before 2024, and its folder."""
    from drgsim import dip

    years = pd.to_datetime(frame["discharge_date"], errors="coerce").dt.year
    cat, _ = dip.build(frame[(years < 2024).to_numpy()], policy=load_policy("dip_baseline"),
                       year=2024)
    folder = tmp_path_factory.mktemp("dipmoney-cat") / "catalogue"
    dip.write_catalogue(cat, folder)
    return cat, folder


def quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def by_case(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("case_id", kind="stable").reset_index(drop=True)


def same_tables(res: dict, ref: dict, cases: pd.DataFrame) -> None:
    """Every table equal to the single path's, the cases row for row, money to the fen."""
    for name in TABLES:
        pd.testing.assert_frame_equal(res[name].reset_index(drop=True),
                                      ref[name].reset_index(drop=True), check_dtype=False,
                                      obj=name)
    got, want = by_case(cases), by_case(ref["cases"])
    pd.testing.assert_frame_equal(got, want, check_dtype=False, obj="cases")
    assert (want["pay_status"] != "ok").any() and (want["pay_status"] == "bad_date").sum() == 3
    assert int(got["payment_fen"].sum()) == int(want["payment_fen"].sum())
    assert int(res["ledger"]["amount_fen"].sum()) == 0


def same_point_values(base, single) -> None:
    """The reference point value and the reimbursement ratio, bit for bit."""
    assert base.reference_pv == single.reference_pv and base.reference_pv
    assert base.dip_ratio == single.dip_ratio
    assert base.prov == single.prov


# ---------------------------------------------------------------------------- engine-free
@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(2022, 2024), st.integers(0, 1),
                          st.floats(1e-3, 1e17, allow_nan=False), st.integers(1, 10**12)),
                min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_point_values_do_not_depend_on_the_order_of_the_hospitals(rows, rnd):
    """PV_b and r from per-hospital sums are the same whatever order the partitions'
    sums arrive in (scores of very different sizes: a plain float sum would differ)."""
    from drgsim.dip.price import HISTORY_SUMS, point_values_of_sums

    sums = pd.DataFrame([(f"H{i}", y, f, 1, c, c // 2, sc) for i, (y, f, sc, c)
                         in enumerate(rows)], columns=list(HISTORY_SUMS))
    sums = sums.astype({"fund": np.int8})
    want = point_values_of_sums(sums, [1, 2, 7])
    order = list(range(len(sums)))
    rnd.shuffle(order)
    assert point_values_of_sums(sums.iloc[order].reset_index(drop=True), [1, 2, 7]) == want


def test_history_sums_per_hospital_in_any_row_order_reduce_to_the_whole(single_built):
    """A hospital partition's history sums, its rows in any order, concatenated in any
    hospital order, give the single path's PV_b and r bit for bit."""
    from drgsim.dip.price import history_point_values, history_sums, point_values_of_sums
    from drgsim.pricing.cases import prepare_cases
    from drgsim.pricing.core import price

    b = single_built
    hids = b.hosp_df["hospital_id"]
    yw = b.pv["dip"]["year_weights"]

    def sums(df):
        return history_sums(price(prepare_cases(df, hids), b.W, b.pv, b.hosp_df))

    whole = history_point_values(price(prepare_cases(b.history, hids), b.W, b.pv, b.hosp_df), yw)
    assert whole == (b.reference_pv, b.dip_ratio)
    rng = np.random.default_rng(3)
    parts = [sums(g.sample(frac=1.0, random_state=rng)) for _, g in
             b.history.groupby(b.history["hospital_id"].astype(str))]
    assert len(parts) > 2
    assert point_values_of_sums(pd.concat(parts[::-1], ignore_index=True), yw) == whole


# ---------------------------------------------------------------------------- Dask
@pytest.fixture(scope="module")
def ddf(client, region):
    import drgsim.dask as dg

    return dg.read_parquet(region[0] / "discharges")


@pytest.fixture(scope="module")
def single_built(frame, region):
    """dip_baseline (PV_b from history, the reimbursement-ratio basis with r from history)
    on one machine, the catalogue built from the history years."""
    _, hosp, reg = region
    return quiet(drgsim.prepare, frame, policy="dip_baseline", hospitals=hosp, region=reg)


@pytest.fixture(scope="module")
def dask_built(client, ddf, region, single_built):
    """The same on the cluster, the catalogue built there."""
    import drgsim.dask as dg

    _, hosp, reg = region
    base = quiet(dg.prepare, ddf, client=client, policy="dip_baseline", hospitals=hosp,
                 region=reg)
    return base, single_built


def test_dask_dip_built_catalogue_equals_the_single_path(dask_built):
    import drgsim.dask as dg

    base, single = dask_built
    assert base.w_src == single.w_src and base.w_src.startswith("built from")
    assert base.pv["point_value"]["basis"] == "reimbursement_ratio"
    assert base.pv["point_value"]["bounds"]["budgeted_pv"] == "history"
    same_point_values(base, single)
    res = dg.settle(base)
    same_tables(res, single.simulate(), res["cases"].compute())


def test_dask_dip_given_catalogue_equals_the_single_path(client, ddf, frame, region, catalogue):
    import drgsim.dask as dg

    _, hosp, reg = region
    cat, folder = catalogue
    kw = {"policy": "dip_baseline", "hospitals": hosp, "region": reg}
    base = quiet(dg.prepare, ddf.repartition(npartitions=5), client=client, catalogue=folder,
                 npartitions=3, **kw)
    single = quiet(drgsim.prepare, frame, catalogue=folder, **kw)
    assert base.w_src == str(folder)
    same_point_values(base, single)
    res = dg.settle(base)
    same_tables(res, single.simulate(), res["cases"].compute())


# a DIP sweep on every route the engines re-price: the cells (outlier bounds), the rows
# (the blank-packet ratio), behaviour draws (volume growth and cost inflation)
DIP_REPRICED = [
    {"name": "high", "dip.outliers.high": 2.5},
    {"name": "blank", "dip.blank_ratio": 0.6},
    {"name": "drawn", "behaviour.volume_growth": {"dist": "normal", "mean": 0.03, "sd": 0.01},
     "behaviour.cost_inflation": 0.02},
]


def same_sweeps(res, ref) -> None:
    for name in ("hospitals", "funds", "scenarios", "routes"):
        pd.testing.assert_frame_equal(getattr(res, name), getattr(ref, name), obj=name)


def test_dask_dip_sweep_equals_the_single_path(dask_built):
    base, single = dask_built
    grid = drgsim.Grid({"budget.*.growth": [0.02, 0.06], "assessment.withhold_share": [0.0, 0.1]})
    res, ref = base.sweep(grid), single.sweep(grid)
    assert len(res.scenarios) == 5 and (res.routes["route"] == "settlement").all()
    same_sweeps(res, ref)
    res, ref = quiet(base.sweep, DIP_REPRICED, draws=3, seed=4), quiet(
        single.sweep, DIP_REPRICED, draws=3, seed=4)
    assert {"cells", "rows"} <= set(res.routes["route"])
    same_sweeps(res, ref)


@pytest.mark.parametrize("policy", ["baseline", "dip_baseline"])
def test_dask_last_year_pv_without_reference_pv(client, ddf, frame, region, policy):
    """``budgeted_pv: last_year`` and no reference_pv: last year's cases priced per
    hospital partition, their totals settled on the driver, as the single path."""
    import drgsim.dask as dg

    _, hosp, reg = region
    kw = {"policy": load_policy(policy).with_values(LAST_YEAR), "hospitals": hosp, "region": reg}
    if policy == "baseline":
        kw["weights"] = quiet(drgsim.prepare, frame, **{**kw, "policy": "baseline"}).w_df
    base = quiet(dg.prepare, ddf, client=client, **kw)
    single = quiet(drgsim.prepare, frame, **kw)
    same_point_values(base, single)
    res, ref = dg.settle(base), single.simulate()
    assert (ref["funds"]["pv_bound"] != "").any()  # the bound binds: last year's PV matters
    same_tables(res, ref, res["cases"].compute())


def _switch_to_last_year(prepare, data, frame, region):
    """A sweep whose scenario turns on ``budgeted_pv: last_year`` on a baseline that fixed
    no last-year point value: the engine prices last year's cases on its partitions and
    settles them once on the driver; the sweep equals the single machine's."""
    _, hosp, reg = region
    kw = {"policy": "baseline", "hospitals": hosp, "region": reg}
    kw["weights"] = quiet(drgsim.prepare, frame, **kw).w_df
    scen = [{"name": "last_year", **LAST_YEAR}]
    base, single = quiet(prepare, data, **kw), quiet(drgsim.prepare, frame, **kw)
    assert base.reference_pv is None and single.reference_pv is None
    got, want = quiet(base.sweep, scen), quiet(single.sweep, scen)
    assert base.reference_pv == single.reference_pv and base.reference_pv
    for name in ("scenarios", "hospitals", "funds"):
        pd.testing.assert_frame_equal(getattr(got, name), getattr(want, name), obj=name)
    assert (want.funds["bound"] != "none").any()  # the bound binds: last year's PV matters


def test_dask_sweep_switches_to_last_year(client, ddf, frame, region):
    import drgsim.dask as dg

    _switch_to_last_year(lambda d, **kw: dg.prepare(d, client=client, **kw), ddf, frame,
                         region)


def test_cli_simulate_and_sweep_dip_engine_dask(client, frame, region, catalogue, tmp_path):
    """``drgsim simulate|sweep --engine dask --policy dip_baseline [--catalogue DIR]``."""
    from click.testing import CliRunner

    from drgsim.cli import main

    root, hosp, reg = region
    src, folder = str(root / "discharges"), str(catalogue[1])
    side = ["--hospitals", str(root / "hospitals.parquet"), "--region",
            str(root / "region.parquet"), "--policy", "dip_baseline"]
    eng = ["--engine", "dask", "--scheduler", client.scheduler.address]
    out = tmp_path / "sim"
    r = CliRunner().invoke(main, ["simulate", src, *side, "--catalogue", folder, "-o", str(out),
                                  *eng])
    assert r.exit_code == 0, r.output
    _same_as_simulate(out, frame, hosp, reg, folder)
    out = tmp_path / "sweep"
    r = CliRunner().invoke(main, ["sweep", src, *side, "--grid", "budget.*.growth=0.02,0.04",
                                  "-o", str(out), *eng])
    assert r.exit_code == 0, r.output
    want = quiet(drgsim.prepare, frame, policy="dip_baseline", hospitals=hosp, region=reg
                 ).sweep(drgsim.Grid({"budget.*.growth": [0.02, 0.04]}))
    got = pd.read_parquet(out / "funds.parquet")
    pd.testing.assert_frame_equal(got[want.funds.columns].reset_index(drop=True),
                                  want.funds.reset_index(drop=True), check_dtype=False)


# ---------------------------------------------------------------------------- Spark


def spark_cases(res: dict) -> pd.DataFrame:
    return res["cases"].toPandas()


@pytest.fixture(scope="module")
def spark_built(spark, region, single_built):
    """dip_baseline on Spark, the catalogue built there from the history years."""
    from drgsim import spark as dsp

    _, hosp, reg = region
    sdf = spark.read.parquet(str(region[0] / "discharges"))
    base = quiet(dsp.prepare, sdf, policy="dip_baseline", hospitals=hosp, region=reg)
    return base, single_built


def test_spark_dip_built_catalogue_equals_the_single_path(spark_built):
    from drgsim import spark as dsp

    base, single = spark_built
    assert base.w_src == single.w_src and base.w_src.startswith("built from")
    same_point_values(base, single)
    res = dsp.settle(base)
    same_tables(res, single.simulate(), spark_cases(res))


def test_spark_dip_sweep_equals_the_single_path(spark_built):
    base, single = spark_built
    grid = drgsim.Grid({"budget.*.growth": [0.02, 0.06]})
    same_sweeps(base.sweep(grid), single.sweep(grid))
    res, ref = quiet(base.sweep, DIP_REPRICED, draws=3, seed=4), quiet(
        single.sweep, DIP_REPRICED, draws=3, seed=4)
    assert {"cells", "rows"} <= set(res.routes["route"])
    same_sweeps(res, ref)


def test_spark_dip_given_catalogue_equals_the_single_path(spark, frame, region, catalogue):
    from drgsim import spark as dsp

    _, hosp, reg = region
    folder = catalogue[1]
    kw = {"policy": "dip_baseline", "hospitals": hosp, "region": reg, "catalogue": folder}
    # input order is the scan's (file, row): the weights table lists the keys in it
    base = quiet(dsp.prepare, spark.read.parquet(str(region[0] / "discharges")), **kw)
    single = quiet(drgsim.prepare, frame, **kw)
    same_point_values(base, single)
    res = dsp.settle(base)
    same_tables(res, single.simulate(), spark_cases(res))


@pytest.mark.parametrize("policy", ["baseline", "dip_baseline"])
def test_spark_last_year_pv_without_reference_pv(spark, frame, region, catalogue, policy):
    from drgsim import spark as dsp

    _, hosp, reg = region
    kw = {"policy": load_policy(policy).with_values(LAST_YEAR), "hospitals": hosp, "region": reg}
    if policy == "baseline":
        kw["weights"] = quiet(drgsim.prepare, frame, **{**kw, "policy": "baseline"}).w_df
    else:
        kw["catalogue"] = catalogue[1]
    base = quiet(dsp.prepare, spark.read.parquet(str(region[0] / "discharges")), **kw)
    single = quiet(drgsim.prepare, frame, **kw)
    same_point_values(base, single)
    res, ref = dsp.settle(base), single.simulate()
    assert (ref["funds"]["pv_bound"] != "").any()
    same_tables(res, ref, spark_cases(res))


def test_spark_sweep_switches_to_last_year(spark, frame, region):
    from drgsim import spark as dsp

    _switch_to_last_year(dsp.prepare, spark.read.parquet(str(region[0] / "discharges")),
                         frame, region)


def test_cli_simulate_dip_engine_spark(spark, frame, region, catalogue, tmp_path):
    """``drgsim simulate --engine spark --policy dip_baseline --catalogue DIR`` (the active
    session) writes the single path's tables."""
    from click.testing import CliRunner

    from drgsim.cli import main

    root, hosp, reg = region
    folder, out = str(catalogue[1]), tmp_path / "sim"
    r = CliRunner().invoke(main, [
        "simulate", str(root / "discharges"), "--hospitals", str(root / "hospitals.parquet"),
        "--region", str(root / "region.parquet"), "--policy", "dip_baseline", "--catalogue",
        folder, "-o", str(out), "--engine", "spark"])
    assert r.exit_code == 0, r.output
    _same_as_simulate(out, frame, hosp, reg, folder)
