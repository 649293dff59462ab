"""DIP pricing, simulation and sweep on Dask and Spark, and ``budgeted_pv: last_year``
without ``reference_pv`` on the engines (issue 20): every table equal to the single
machine's to the fen, the point values (PV_b, the reimbursement ratio r, last year's point
value) bit for bit.

A small synthetic region of three years with its dirty rows, plus three simulated-year
rows without a discharge date (paid bad_date, never dropped). One Dask LocalCluster
(2 workers × 1 thread) and one local Spark session per module.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import drgsim
from drgsim.policy import load_policy

TABLES = ["funds", "hospitals", "months", "ledger", "drgs", "pay_status", "summary", "weights"]
LAST_YEAR = {"point_value.bounds.budgeted_pv": "last_year", "point_value.bounds.floor": 0.97,
             "point_value.bounds.ceiling": 1.02, "presettlement.provisional_pv": "monthly_budget"}


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """Three years (2022-2024), six hospitals, the synthesiser's dirty rows, and three
    2024 rows of one hospital without a discharge date."""
    out = tmp_path_factory.mktemp("dipmoney") / "region"
    res = drgsim.synth.region(out, discharges=2400, hospitals=6, years=(2022, 2023, 2024),
                              seed=7, workers=1)
    assert sum(res.dirt.values()) > 0
    f = out / "discharges" / "year=2024" / "month=03" / "part-0.parquet"
    t = pq.read_table(f).to_pandas()
    rows = t.index[t["hospital_id"] == t["hospital_id"].iloc[0]][:3]
    t.loc[rows, "discharge_date"] = None
    pq.write_table(pa.Table.from_pandas(t, schema=pq.read_schema(f), preserve_index=False), f)
    return out, pd.read_parquet(out / "hospitals.parquet"), pd.read_parquet(out / "region.parquet")


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
def ddf(client, region):
    import drgsim.dask as dg

    return dg.read_parquet(region[0] / "discharges")


@pytest.fixture(scope="module")
def dask_built(client, ddf, frame, region):
    """dip_baseline (PV_b from history, the reimbursement-ratio basis with r from history),
    the catalogue built on the cluster from the history years."""
    import drgsim.dask as dg

    _, hosp, reg = region
    kw = {"policy": "dip_baseline", "hospitals": hosp, "region": reg}
    return quiet(dg.prepare, ddf, client=client, **kw), quiet(drgsim.prepare, frame, **kw)


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
