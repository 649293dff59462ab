"""drgsim on Spark gives the single-process results: grouping, a calibrated simulation and
a settlement sweep to the fen (dirty rows and rows without a valid date included),
the hospital-partition guard, and a killed write re-run to a complete output (the output's
layout and journal: tests/test_spark_output.py); DIP matching
per batch, ``group --method dip --engine spark`` and the collected catalogue build.

The run's one local Spark session (tests/conftest.py: local[2], two shuffle partitions,
no UI) and one Spark ``prepare`` shared by the simulation and sweep tests, to keep the
module short. The tests skip only without Java or pyspark, and never under CI (``.ci/run``
installs Java).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from conftest import synth_region

import drgsim

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """A small synthetic region (two years, dirty rows) where three simulated-year rows
    of one hospital have no discharge date (priced bad_date, never dropped)."""
    return synth_region(tmp_path_factory.mktemp("spark-region"), undated="year=2023/month=03",
                        discharges=1500, hospitals=4, years=(2022, 2023), seed=11)[0]


def _by_case(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("case_id").reset_index(drop=True)


def _same(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    """Every column equal, floats bit for bit."""
    assert list(got.columns) == list(ref.columns)
    assert len(got) == len(ref)
    for c in ref.columns:
        a, b = ref[c], got[c]
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a.to_numpy(), b.to_numpy(), err_msg=c)
        else:
            assert a.astype("string").fillna("<NA>").tolist() == \
                b.astype("string").fillna("<NA>").tolist(), c


def test_shared_session_is_back_on_two_shuffle_partitions(spark):
    """A module's own setting on the run's one session (three shuffle partitions in
    test_distributed_calibrate and test_distributed_dip_build, which run before this module)
    is put back after it, so this module runs as it did on a session of its own."""
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"


def test_group_equals_the_single_path(spark, region):
    from drgsim import spark as dsp

    sdf = spark.read.parquet(str(region / "discharges")).repartition(3)  # any partitioning
    out = dsp.group(sdf)
    got = _by_case(out.toPandas())
    ref = _by_case(drgsim.group(ds.dataset(region / "discharges", partitioning="hive")
                                .to_table()).to_pandas())
    assert len(got) == len(ref) == 1500  # every row back, the dirty ones too
    assert (ref["status"] != "ok").any()
    for c in ("mdc", "adrg", "drg", "status", "total_cost"):
        assert got[c].tolist() == ref[c].tolist(), c
    prov = dsp.provenance_of(out)
    assert prov["drgsim.scheme_hash"] == drgsim.load_scheme().provenance["drgsim.scheme_hash"]


@pytest.fixture(scope="module")
def history_policy(tmp_path_factory):
    """The baseline with the employee fund's budget from last year's cases (source history)."""
    from drgsim.policy.loader import bundled_policy_path

    text = bundled_policy_path().read_text(encoding="utf-8")
    marker = "values: {2019-01-01: region_table}"
    assert marker in text
    p = tmp_path_factory.mktemp("policy") / "history.yaml"
    p.write_text(text.replace(marker, "values: {2019-01-01: history}", 1), encoding="utf-8")
    return p


def _kw(region: Path, policy: Path) -> dict:
    return {"policy": policy, "hospitals": region / "hospitals.parquet",
            "region": region / "region.parquet"}


@pytest.fixture(scope="module")
def single(region, history_policy):
    """The single path's prepare (calibrated, budget source history)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return drgsim.prepare(region / "discharges", **_kw(region, history_policy))


@pytest.fixture(scope="module")
def prepared(spark, region, history_policy, single):
    """One Spark prepare with the same arguments, and the single path's."""
    from drgsim import spark as dsp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = dsp.prepare(spark.read.parquet(str(region / "discharges")),
                           **_kw(region, history_policy))
    return base, single


def test_calibrated_simulation_equals_the_single_path_to_the_fen(prepared):
    from drgsim import spark as dsp

    base, single = prepared
    assert base.w_src == "calibrated"
    pd.testing.assert_frame_equal(base.w_df, single.w_df)  # exact calibration, same order
    assert base.spend == single.spend and base.spend  # budget source history
    res, ref = dsp.settle(base), single.simulate()
    cases, ref_cases = _by_case(res["cases"].toPandas()), _by_case(ref["cases"])
    _same(cases, ref_cases)
    assert (ref_cases["pay_status"] != "ok").any() and ref_cases["readmission"].any()
    assert (ref_cases["case_type"] == "special_review").any()
    undated = ref_cases["pay_status"] == "bad_date"
    assert undated.sum() == 3 and (cases["pay_status"] == "bad_date").sum() == 3
    assert int(cases["payment_fen"].sum()) == int(ref_cases["payment_fen"].sum())
    assert sorted(res) == sorted(ref)
    for name in ("funds", "months", "ledger", "hospitals", "drgs", "pay_status", "summary",
                 "weights"):
        pd.testing.assert_frame_equal(res[name].reset_index(drop=True),
                                      ref[name].reset_index(drop=True), check_dtype=False,
                                      obj=name)
    assert dsp.provenance_of(res["cases"])["drgsim.weights_source"] == "calibrated"


def test_settlement_only_sweep_equals_the_single_path(prepared):
    base, single = prepared
    grid = drgsim.Grid({"budget.*.growth": [0.02, 0.06], "assessment.withhold_share": [0.0, 0.1]})
    res, ref = base.sweep(grid), single.sweep(grid)
    assert len(res.scenarios) == 5
    for name in ("hospitals", "funds", "scenarios", "routes"):
        pd.testing.assert_frame_equal(getattr(res, name), getattr(ref, name), obj=name)
    # the re-pricing routes run on the executors (tests/test_distributed_sweep.py)


def test_month_groups_without_the_hospital_shuffle_would_differ(region, single):
    """The guard on the partition boundary, on Spark's own task function: grouping by
    month instead of by hospital loses a readmission across a month end and takes the
    special-review share per month; the driver's reduce refuses such groups."""
    import pickle

    from drgsim.distributed import ROW, DistributedError, PriceContext, combine
    from drgsim.distributed.partition import global_hospitals
    from drgsim.spark.partitions import summary_group

    g = drgsim.group(ds.dataset(region / "discharges", partitioning="hive").to_table())
    df = g.to_pandas()
    d = pd.to_datetime(df["discharge_date"])
    # by hand: an ok 2023 stay moved to end on 30 April, its readmission (same DRG, same
    # patient and hospital) admitted on 2 May
    i = df.index[(df["status"] == "ok") & (d.dt.year == 2023) & df["patient_id"].notna()][0]
    first = df.loc[[i]].copy()
    first["discharge_date"] = pd.Timestamp("2023-04-30").date()
    first["admit_date"] = pd.Timestamp("2023-04-25").date()
    again = first.assign(case_id="READMIT-1", admit_date=pd.Timestamp("2023-05-02").date(),
                         discharge_date=pd.Timestamp("2023-05-06").date())
    df = pd.concat([df.drop(index=i), first, again], ignore_index=True)
    df[ROW] = np.arange(len(df))
    ctx = PriceContext(single.W, single.yp, single.year, "discharge_date", single.hosp_df)
    month = pd.to_datetime(df["discharge_date"]).dt.month

    def priced(groups):
        sums = [pickle.loads(summary_group(pa.Table.from_pandas(p, preserve_index=False),
                                           ctx).column(0)[0].as_py()) for _, p in groups]
        from drgsim.distributed import price_partition

        frames = pd.concat([price_partition(p, ctx).priced.frame() for _, p in groups])
        return sums, frames.set_index("case_id")

    s_h, by_h = priced(list(df.groupby("hospital_id")))
    s_m, by_m = priced(list(df.groupby(month)))
    assert bool(by_h.loc["READMIT-1", "readmission"])
    assert not bool(by_m.loc["READMIT-1", "readmission"])
    sr = "special_review"
    assert (by_h["case_type"] == sr).sum() != (by_m["case_type"] == sr).sum()
    combine(s_h, global_hospitals(s_h, single.hosp_df))  # hospital groups reduce
    with pytest.raises(DistributedError, match="one partition"):
        combine(s_m, global_hospitals(s_m, single.hosp_df))


KILLED = textwrap.dedent(
    """
    import os, sys, time
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession
    from drgsim import spark as dsp
    s = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "2").getOrCreate())
    g = dsp.group(s.read.parquet(sys.argv[1]).repartition(4))

    def slow(batches):
        for b in batches:
            time.sleep(4)
            yield b

    dsp.write_parquet(g.mapInArrow(slow, g.schema), sys.argv[2], dsp.provenance_of(g),
                      fingerprint="fp-killed", writer="group", status="status")
    print("FINISHED")
    """
)


def test_a_killed_group_run_reruns_to_a_complete_output(spark, region, tmp_path):
    """SIGKILL while Spark's job writes its staging folder: no manifest, nothing under
    OUT/data; the re-run (same fingerprint) removes the staging folder and ends complete
    with every row. (A run cut between month folders: tests/test_spark_output.py.)"""
    from drgsim import spark as dsp
    from drgsim.output import MANIFEST, OutputFolder

    out = tmp_path / "grouped"
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script), str(region / "discharges"), str(out)],
                            env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        # kill once Spark has started writing into the staging folder
        while time.time() < deadline and not any(out.glob(".spark-*.part/_temporary")):
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.2)
        assert any(out.glob(".spark-*.part")), "the write never started"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert b"FINISHED" not in proc.stdout.read()
    assert not (out / MANIFEST).exists()  # an incomplete output never looks complete
    assert not list(out.glob("data/**/*.parquet"))  # nothing moved into place
    assert any(out.glob(".spark-*.part"))  # the killed run's staging folder

    sdf = spark.read.parquet(str(region / "discharges"))
    res = dsp.group_to(sdf, out, fingerprint="fp-killed")  # the re-run
    assert not any(out.glob(".spark-*"))  # leftovers removed
    assert OutputFolder.complete(out, "fp-killed") is not None
    assert res["rows"] == 1500
    side = dsp.read_provenance(out)
    assert side["drgsim.scheme"] == "CHS-DRG"
    again = pd.read_parquet(out / "data")
    ref = drgsim.group(ds.dataset(region / "discharges", partitioning="hive").to_table())
    key = ["case_id", "drg", "status"]
    pd.testing.assert_frame_equal(_by_case(again[key]), _by_case(ref.to_pandas()[key]))
    assert sorted(again["month"].dropna().unique().tolist()) == list(range(1, 13))

    # files drgsim did not write stay, as on Dask: the output is written beside them
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    dsp.group_to(sdf, foreign)
    assert (foreign / "keep.txt").read_text() == "mine"
    assert OutputFolder.complete(foreign) is not None


def test_cli_simulate_engine_spark_writes_the_single_tables(spark, region, history_policy,
                                                           single, tmp_path):
    """``drgsim simulate --engine spark`` (in the active session): the single path's tables."""
    from click.testing import CliRunner

    from drgsim.cli import main

    r = CliRunner().invoke(main, [
        "simulate", str(region / "discharges"), "--policy", str(history_policy),
        "--hospitals", str(region / "hospitals.parquet"), "--region",
        str(region / "region.parquet"), "--engine", "spark", "-o", str(tmp_path)])
    assert r.exit_code == 0, r.output
    ref = single.simulate()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "funds.parquet"), ref["funds"],
                                  check_dtype=False)
    cases = _by_case(pd.read_parquet(tmp_path / "cases.parquet"))
    assert cases["payment_fen"].tolist() == _by_case(ref["cases"])["payment_fen"].tolist()


DIP_COLUMNS = ("packet", "packet_kind", "aux_catalogue", "aux_class", "aux_coef",
               "treatment_type", "dip_status", "dx_key")


@pytest.fixture(scope="module")
def catalogue(region, tmp_path_factory):
    """The region's rows, and a catalogue ``dip.build`` made of the years before the last
    (in memory and as a folder)."""
    from drgsim import dip

    frame = ds.dataset(region / "discharges", partitioning="hive").to_table().to_pandas()
    years = pd.to_datetime(frame["discharge_date"]).dt.year
    cat, _ = dip.build(frame[years < years.max()])
    folder = tmp_path_factory.mktemp("spark-dip") / "catalogue"
    dip.write_catalogue(cat, folder)
    return frame, cat, folder


def test_dip_match_per_batch_equals_the_single_path(spark, region, catalogue):
    from drgsim import spark as dsp
    from drgsim.dip.match import match as dip_match

    frame, cat, folder = catalogue
    sdf = spark.read.parquet(str(region / "discharges")).repartition(3)
    out = dsp.dip_match(sdf, folder)
    a = _by_case(out.toPandas())
    b = _by_case(dip_match(frame, catalogue=cat))
    assert len(a) == len(b) == 1500
    assert (b["dip_status"] != "ok").any() and (b["packet"] != "").any()  # dirty rows in
    for col in DIP_COLUMNS:
        if col == "aux_coef":
            np.testing.assert_array_equal(a[col].to_numpy(float), b[col].to_numpy(float))
        elif col == "treatment_type":  # Spark hands a nullable int8 back as float
            assert a[col].astype("Int64").tolist() == b[col].astype("Int64").tolist(), col
        else:
            assert a[col].astype("string").fillna("<NA>").tolist() == \
                b[col].astype("string").fillna("<NA>").tolist(), col
    assert dsp.provenance_of(out)["drgsim.method"] == "dip"


def test_cli_group_method_dip_engine_spark_equals_the_single_path(spark, region, catalogue,
                                                                   tmp_path):
    """``group --method dip --engine spark`` (the active session): the year=/month= output
    holds the rows the single path's ``group --method dip`` writes, every DIP column equal."""
    from click.testing import CliRunner

    from drgsim import spark as dsp
    from drgsim.cli import main

    _, _, folder = catalogue
    src = str(region / "discharges")
    single, out = tmp_path / "single.parquet", tmp_path / "spark"
    r = CliRunner().invoke(main, ["group", src, "--method", "dip", "--catalogue", str(folder),
                                  "-o", str(single), "--quiet"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["group", src, "--method", "dip", "--catalogue", str(folder),
                                  "-o", str(out), "--engine", "spark"])
    assert r.exit_code == 0, r.output
    got = _by_case(ds.dataset(out / "data", partitioning="hive").to_table().to_pandas())
    ref = _by_case(pd.read_parquet(single))
    assert len(got) == len(ref) == 1500 and (ref["dip_status"] != "ok").any()
    for col in DIP_COLUMNS:
        if col == "aux_coef":
            np.testing.assert_array_equal(got[col].to_numpy(float), ref[col].to_numpy(float))
        elif col == "treatment_type":
            assert got[col].astype("Int64").tolist() == ref[col].astype("Int64").tolist(), col
        else:
            assert got[col].astype("string").fillna("<NA>").tolist() == \
                ref[col].astype("string").fillna("<NA>").tolist(), col
    assert dsp.read_provenance(out)["drgsim.method"] == "dip"
    assert dsp.read_provenance(out)["drgsim.dip_catalogue"] == str(folder)


def test_dip_build_equals_dip_build_of_the_same_rows(spark, region, catalogue):
    """The build by ``groupBy("packet")`` gives ``dip.build``'s catalogue table for table
    (same history hash) for the same rows in any order, from any partitioning."""
    from drgsim import dip
    from drgsim import spark as dsp

    frame = catalogue[0]
    hosp = pd.read_parquet(region / "hospitals.parquet")
    year = int(pd.to_datetime(frame["discharge_date"]).dt.year.max())
    sdf = spark.read.parquet(str(region / "discharges")).repartition(3)
    cat, assigned = dsp.dip_build(sdf, hospitals=hosp, year=year)
    rows = frame.sample(frac=1, random_state=4).reset_index(drop=True)  # any order
    ref, _ = dip.build(rows, hospitals=hosp, year=year)
    assert cat.meta == ref.meta
    for name in ("packets", "levels", "aux"):
        pd.testing.assert_frame_equal(getattr(cat, name), getattr(ref, name), obj=name,
                                      check_exact=True)
    assert len(cat.packets) and len(cat.levels)
    assert assigned is None
