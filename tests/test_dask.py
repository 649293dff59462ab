"""drgsim on a local Dask cluster (issue 20): the same results as the single process.

One LocalCluster (2 workers, 1 thread each) per module; a small synthetic region with its
dirty rows. Grouping, simulation (calibrated weights: exact calibration) and a
sweep must equal the single-process path to the fen; pricing month
partitions without the hospital shuffle must differ (and is refused); a group run cut
short re-runs to the same rows. DIP: matching per partition, ``group --method dip --engine
dask`` and the gathered catalogue build equal the single path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed", reason="the dask extra (pip install drgsim[dask]) is absent")

from conftest import synth_region  # noqa: E402

import drgsim  # noqa: E402
from drgsim.distributed import DistributedError, PriceContext, combine, price_partition  # noqa: E402
from drgsim.distributed.partition import ROW, global_hospitals  # noqa: E402

TABLES = ["funds", "hospitals", "months", "ledger", "drgs", "pay_status", "summary"]


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    return synth_region(tmp_path_factory.mktemp("dask") / "region", discharges=2400,
                        hospitals=6, seed=11, workers=1)


@pytest.fixture(scope="module")
def ddf(region):
    import drgsim.dask as dg

    return dg.read_parquet(region[0] / "discharges")


@pytest.fixture(scope="module")
def frame(ddf):
    return ddf.compute().reset_index(drop=True)


@pytest.fixture(scope="module")
def simulated(client, ddf, frame, region):
    import drgsim.dask as dg

    _, hosp, reg = region
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = dg.simulate(ddf, hospitals=hosp, region=reg, client=client)
        ref = drgsim.simulate(frame, hospitals=hosp, region=reg)
    return res, ref


def by_case(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("case_id", kind="stable").reset_index(drop=True)


def test_group_same_as_single_process(client, ddf, frame):
    import drgsim.dask as dg

    a = by_case(dg.group(ddf, client=client).compute())
    b = by_case(drgsim.group(frame))
    assert len(a) == len(frame)
    assert (b["status"] != "ok").any()  # dirty rows are in and keep their statuses
    for col in ("mdc", "adrg", "drg", "status"):
        assert a[col].astype(str).tolist() == b[col].astype(str).tolist(), col


def test_simulate_same_as_single_process_to_the_fen(simulated):
    res, ref = simulated
    for name in TABLES:
        pd.testing.assert_frame_equal(
            res[name].reset_index(drop=True), ref[name].reset_index(drop=True),
            check_dtype=False, obj=name,
        )
    cases = by_case(res["cases"].compute())
    pd.testing.assert_frame_equal(cases, by_case(ref["cases"]), check_dtype=False)
    assert (ref["cases"]["pay_status"] != "ok").any()  # dirty rows priced as the single path
    assert int(cases["payment_fen"].sum()) == int(ref["cases"]["payment_fen"].sum())
    assert res["cases"].attrs["drgsim.weights_source"] == "calibrated"


@pytest.fixture(scope="module")
def prepared(client, ddf, frame, region, simulated):
    """Prepared once on the cluster and once here, with the weights calibrated above."""
    import drgsim.dask as dg

    _, hosp, reg = region
    w = simulated[1]["weights"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (dg.prepare(ddf, weights=w, hospitals=hosp, region=reg, client=client),
                drgsim.prepare(frame, weights=w, hospitals=hosp, region=reg))


def test_sweep_settlement_only_same_as_single_process(prepared):
    grid = drgsim.Grid({"budget.*.growth": [0.02, 0.06], "assessment.withhold_share": [0.0, 0.1]})
    res, ref = (b.sweep(grid) for b in prepared)
    assert len(res.scenarios) == 5  # the baseline and the grid
    assert (res.routes["route"] == "settlement").all()
    for name in ("hospitals", "funds", "scenarios", "routes"):
        pd.testing.assert_frame_equal(getattr(res, name), getattr(ref, name), obj=name)


def test_sweep_function_is_prepare_then_sweep(client, ddf, region, simulated, prepared):
    import drgsim.dask as dg

    _, hosp, reg = region
    grid = drgsim.Grid({"budget.*.growth": [0.03]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = dg.sweep(ddf, grid, weights=simulated[1]["weights"], hospitals=hosp, region=reg,
                       client=client)
    pd.testing.assert_frame_equal(res.funds, prepared[1].sweep(grid).funds)


def test_sweep_repricing_routes_run_on_the_partitions(prepared):
    """Every route re-prices on the partitions (tests/test_distributed_sweep.py covers
    them all); last year's cases themselves stay on the workers."""
    grid = drgsim.Grid({"high_cost.beta": [0.8]})
    res, ref = (b.sweep(grid) for b in prepared)
    pd.testing.assert_frame_equal(res.funds, ref.funds)
    with pytest.raises(DistributedError, match="reference_pv"):
        prepared[0].prev_cases()


def _priced(frame: pd.DataFrame, parts: list[pd.DataFrame], hosp, weights) -> dict:
    from drgsim.policy import load_policy, resolve_year
    from drgsim.pricing.core import Weights

    pol = load_policy(None)
    year = int(pd.to_datetime(frame["discharge_date"]).dt.year.max())
    yp = resolve_year(pol, year)
    W = Weights.from_frame(weights, yp.pv["points"]["scale"])
    ctx = PriceContext(W, yp, year, "discharge_date", hosp)
    pps = [price_partition(p, ctx) for p in parts]
    readmit = sum(int(p.priced.readmit.sum()) for p in pps)
    special = sum(int((p.priced.frame()["case_type"] == "special_review").sum()) for p in pps)
    return {"pps": pps, "readmit": readmit, "special": special}


def straddle(frame: pd.DataFrame) -> pd.DataFrame:
    """The region's readmissions moved across a month end: each original stay and its
    readmission shifted by the same days so the original leaves on its month's last day
    (the synthetic region keeps a readmission in its original's month)."""
    df = frame.copy()
    for c in ("admit_date", "discharge_date"):
        df[c] = pd.to_datetime(df[c])
    fu = df[df["synth_followup"] == "readmission"]
    pos = pd.Index(df["case_id"]).get_indexer(fu["synth_followup_of"])
    for i, j in zip(pos, fu.index, strict=True):
        if i < 0:
            continue
        d = df.at[i, "discharge_date"]
        if d.month == 12:  # would carry the readmission into another year
            continue
        shift = (d + pd.offsets.MonthEnd(0)) - d
        for k in (i, j):
            df.loc[k, ["admit_date", "discharge_date"]] += shift
    return df


def test_month_partitions_without_hospital_shuffle_differ(frame, simulated, region):
    """The guard on the partition boundary: pricing by month (no shuffle by hospital)
    loses readmissions across months and takes the special-review share per month; the
    reduce refuses such partitions."""
    _, hosp, _ = region
    g = drgsim.group(straddle(frame)).assign(**{ROW: np.arange(len(frame))})
    w = simulated[1]["weights"]
    by_hosp = _priced(g, [d for _, d in g.groupby("hospital_id")], hosp, w)
    by_month = _priced(g, [d for _, d in g.groupby(g["discharge_date"].dt.month)], hosp, w)
    assert by_hosp["special"] > 0 and by_hosp["readmit"] > 0
    assert by_month["readmit"] < by_hosp["readmit"]
    assert by_month["special"] != by_hosp["special"]
    summaries = [p.summary() for p in by_month["pps"]]
    with pytest.raises(DistributedError, match="one partition"):
        combine(summaries, global_hospitals(summaries, hosp))


def test_killed_group_run_reruns_to_the_same_rows(client, ddf, tmp_path):
    import drgsim.dask as dg
    from drgsim.output import OutputFolder

    ref = tmp_path / "ref"
    out = tmp_path / "out"
    full = dg.group_to_parquet(ddf, ref, "fp-1", client=client)
    with pytest.raises(DistributedError, match="injected"):
        dg.group_to_parquet(ddf, out, "fp-1", client=client, _fail_after=3)
    assert not (out / "manifest.json").exists()  # incomplete: no manifest
    again = dg.group_to_parquet(ddf, out, "fp-1", client=client)
    assert again["reused"] >= 3
    assert OutputFolder.complete(out, "fp-1") is not None
    assert again["rows"] == full["rows"] == len(ddf)
    assert again["status_counts"] == full["status_counts"]
    a = by_case(pd.read_parquet(out / "data"))
    b = by_case(pd.read_parquet(ref / "data"))
    pd.testing.assert_frame_equal(a, b)
    prov = json.loads((out / "data" / "_drgsim_provenance.json").read_text())
    cs = drgsim.load_scheme("chs_drg_11")
    assert prov == {**cs.provenance, "drgsim.translate": "off"}
    assert sorted(p.name for p in out.glob("data/year=*")) == sorted(
        p.name for p in ref.glob("data/year=*"))


def test_sigkilled_cli_group_reruns_to_a_complete_output(client, region, tmp_path):
    """SIGKILL the CLI mid-write (after its first parts are journalled): no manifest;
    the re-run completes with every row."""
    src = str(region[0] / "discharges")
    out = tmp_path / "out"
    addr = client.scheduler.address
    cmd = [sys.executable, "-c", "from drgsim.cli import main; main()", "group", src, "-o",
           str(out), "--engine", "dask", "--scheduler", addr, "--quiet"]
    env = {**os.environ, "DRGSIM_DASK_SLOW": "0.3"}  # tests: each part waits, so we can kill
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    journal = out / ".drgsim-run.json"
    t0 = time.time()
    while time.time() - t0 < 120:
        if journal.exists() and '"_parts/' in journal.read_text():
            break
        time.sleep(0.1)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (out / "manifest.json").exists()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out / "manifest.json").read_text())
    assert m["rows"] == 2400
    assert len(pd.read_parquet(out / "data")) == 2400


DIP_COLUMNS = ("packet", "packet_kind", "aux_catalogue", "aux_class", "aux_coef",
               "treatment_type", "dip_status", "dx_key")


@pytest.fixture(scope="module")
def catalogue(frame, tmp_path_factory):
    """A catalogue built by ``dip.build`` on the years before the last, and its folder."""
    from drgsim import dip

    year = int(pd.to_datetime(frame["discharge_date"]).dt.year.max())
    cat, _ = dip.build(frame[pd.to_datetime(frame["discharge_date"]).dt.year < year])
    folder = tmp_path_factory.mktemp("dask-dip") / "catalogue"
    dip.write_catalogue(cat, folder)
    return cat, folder


def same_dip(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Every DIP column equal, row for row (by case), the coefficients bit for bit."""
    assert len(a) == len(b)
    for col in DIP_COLUMNS:
        if col == "aux_coef":
            np.testing.assert_array_equal(a[col].to_numpy(float), b[col].to_numpy(float))
        elif col == "treatment_type":  # a nullable int8: float once read back with nulls
            assert a[col].astype("Int64").tolist() == b[col].astype("Int64").tolist(), col
        else:
            assert a[col].astype("string").fillna("<NA>").tolist() == \
                b[col].astype("string").fillna("<NA>").tolist(), col


def test_dip_match_per_partition(client, ddf, frame, catalogue):
    import drgsim.dask as dg
    from drgsim.dip.match import match as dip_match

    cat, folder = catalogue
    a = by_case(dg.match(ddf.repartition(npartitions=5), folder, client=client).compute())
    b = by_case(dip_match(frame, catalogue=cat))
    assert len(a) == len(frame)
    assert (b["dip_status"] != "ok").any() and (b["dip_status"] == "ok").any()  # dirty rows in
    assert (b["packet"] != "").any()
    same_dip(a, b)


def test_cli_group_method_dip_engine_dask_equals_the_single_path(client, region, catalogue,
                                                                  tmp_path):
    """``group --method dip --engine dask``: the partitioned output holds the rows the
    single path's ``group --method dip`` writes, every DIP column equal."""
    from click.testing import CliRunner

    from drgsim.cli import main

    src = str(region[0] / "discharges")
    folder = str(catalogue[1])
    single, out = tmp_path / "single.parquet", tmp_path / "dask"
    r = CliRunner().invoke(main, ["group", src, "--method", "dip", "--catalogue", folder,
                                  "-o", str(single), "--quiet"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["group", src, "--method", "dip", "--catalogue", folder,
                                  "-o", str(out), "--engine", "dask",
                                  "--scheduler", client.scheduler.address])
    assert r.exit_code == 0, r.output
    assert "matched to DIP packets" in r.output
    got = by_case(dg_read(out))
    ref = by_case(pd.read_parquet(single))
    assert (ref["dip_status"] != "ok").any()
    same_dip(got, ref)
    side = json.loads((out / "data" / "_drgsim_provenance.json").read_text())
    assert side["drgsim.method"] == "dip" and side["drgsim.dip_catalogue"] == folder
    r = CliRunner().invoke(main, ["group", src, "--catalogue", folder, "-o",
                                  str(tmp_path / "x"), "--engine", "dask",
                                  "--scheduler", client.scheduler.address])
    assert r.exit_code != 0 and "--catalogue is for --method dip" in r.output


def test_build_catalogue_on_the_cluster_equals_dip_build(client, ddf, frame, region, catalogue):
    """The build by a shuffle by assigned packet gives ``dip.build``'s catalogue table for
    table (and the same history hash), from a frame of many partitions; the per-row
    assignment stays on the workers (more in tests/test_distributed_dip_build.py)."""
    import drgsim.dask as dg
    from drgsim import dip
    from drgsim.distributed.dip import build_columns

    _, hosp, _ = region
    year = int(pd.to_datetime(frame["discharge_date"]).dt.year.max())
    cat, assigned = dg.build_catalogue(ddf.repartition(npartitions=7), hospitals=hosp,
                                       year=year, client=client)
    ref, _ = dip.build(frame, hospitals=hosp, year=year)
    assert cat.meta == ref.meta
    for name in ("packets", "levels", "aux"):
        pd.testing.assert_frame_equal(getattr(cat, name), getattr(ref, name), obj=name,
                                      check_exact=True)
    assert len(cat.levels) and len(cat.aux)  # level means and aux coefficients compared
    assert assigned is None
    cols = build_columns(list(frame.columns))
    assert "total_cost" in cols and "diagnoses" in cols and "patient_id" not in cols


def dg_read(out) -> pd.DataFrame:
    import drgsim.dask as dg

    return dg.read_parquet(out).compute()


def test_cli_simulate_engine_dask_writes_the_single_process_tables(client, region, simulated,
                                                                     tmp_path):
    from click.testing import CliRunner

    from drgsim.cli import main

    root, _, _ = region
    out = tmp_path / "sim"
    r = CliRunner().invoke(main, [
        "simulate", str(root / "discharges"), "--hospitals", str(root / "hospitals.parquet"),
        "--region", str(root / "region.parquet"), "-o", str(out), "--engine", "dask",
        "--scheduler", client.scheduler.address])
    assert r.exit_code == 0, r.output
    for name in ("funds", "hospitals"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / f"{name}.parquet"),
                                      simulated[1][name], check_dtype=False, obj=name)
    assert len(pd.read_parquet(out / "cases.parquet")) == len(simulated[1]["cases"])


def test_cli_refuses_scheduler_without_dask_and_unsupported_options(region, tmp_path):
    from click.testing import CliRunner

    from drgsim.cli import main

    src = str(region[0] / "discharges")
    r = CliRunner().invoke(main, ["group", src, "-o", str(tmp_path / "g.parquet"),
                                  "--scheduler", "tcp://127.0.0.1:1"])
    assert r.exit_code != 0 and "--scheduler needs --engine dask" in r.output
    r = CliRunner().invoke(main, ["group", src, "-o", str(tmp_path / "g"), "--engine", "dask",
                                  "--map", "bingan_shouye"])
    assert r.exit_code != 0 and "--map: not supported with --engine dask" in r.output


def test_dip_policy_refuses_weights_and_a_catalogue_for_drg(client, ddf):
    """DIP pricing on the cluster (tests/test_distributed_dip_money.py): weights are refused
    under a DIP policy, a catalogue under a DRG one, as on one machine."""
    import drgsim.dask as dg
    from drgsim.errors import RecordsError

    with pytest.raises(RecordsError, match="not weights"):
        dg.prepare(ddf, policy="dip_baseline", weights=pd.DataFrame(), client=client)
    with pytest.raises(RecordsError, match="use a DIP policy"):
        dg.prepare(ddf, catalogue="somewhere", client=client)
