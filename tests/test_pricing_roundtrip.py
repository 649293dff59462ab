"""Every weights table drgsim writes can be given back with --weights and reproduces the
payments to the fen (issue 17): through the API, through pandas, through the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import drgsim
from drgsim.cli import main
from drgsim.pricing.fake import fake_cases, fake_hospitals


@pytest.fixture(scope="module")
def region_cases():
    parts = [
        fake_cases(700, n_hosp=4, seed=y, year=y).assign(
            case_id=lambda d, y=y: d["case_id"] + y * 10**6
        )
        for y in (2022, 2023, 2024)
    ]
    df = pd.concat(parts, ignore_index=True)
    # some psychiatric long stays so per-diem category rows are in the weights
    psy = df.index[::23]
    df.loc[psy, "mdc"] = "MDCT"
    return df


# the budget source is explicit: the region table's spending of the year before
REGION = pd.DataFrame(
    {"fund": ["employee", "resident"], "year": 2023, "drg_spending": [9.0e6, 6.0e6]}
)


def _pay(t: dict) -> pd.Series:
    return t["cases"].set_index("case_id")["payment_fen"]


def test_weights_round_trip_api_and_pandas(tmp_path, region_cases):
    from drgsim.report import write_parquet

    h = fake_hospitals(4)
    first = drgsim.simulate(region_cases, region=REGION, hospitals=h)
    w = first["weights"]
    assert (w["level"] == "per_diem").any() and w["m_all_fen"].notna().all()
    f = tmp_path / "weights.parquet"
    write_parquet(w, f, {"drgsim.version": "x"})  # as simulate and demo write it
    again = drgsim.simulate(region_cases, region=REGION, hospitals=h, weights=f)
    assert _pay(again).equals(_pay(first))
    via_pandas = drgsim.simulate(region_cases, region=REGION, hospitals=h, weights=pd.read_parquet(f))
    assert _pay(via_pandas).equals(_pay(first))
    # the in-memory table itself, with its attrs dropped (a copy, a CSV-free hand-off)
    bare = w.copy()
    bare.attrs = {}
    assert _pay(drgsim.simulate(region_cases, region=REGION, hospitals=h, weights=bare)).equals(_pay(first))


def test_weights_round_trip_cli(tmp_path, region_cases):
    cases = tmp_path / "cases.parquet"
    region_cases.to_parquet(cases)
    hosp = tmp_path / "hospitals.csv"
    fake_hospitals(4).to_csv(hosp, index=False)
    region = tmp_path / "region.csv"
    REGION.to_csv(region, index=False)
    r = CliRunner()
    common = ["--hospitals", str(hosp), "--region", str(region), "--grouped"]
    res = r.invoke(main, ["simulate", str(cases), "-o", str(tmp_path / "a"), *common])
    assert res.exit_code == 0, res.output
    res = r.invoke(
        main,
        ["calibrate", str(cases), "--grouped", "--year", "2024", "-o", str(tmp_path / "w.parquet")],
    )
    assert res.exit_code == 0, res.output
    base = pd.read_parquet(tmp_path / "a" / "cases.parquet").set_index("case_id")["payment_fen"]
    for i, wf in enumerate((tmp_path / "a" / "weights.parquet", tmp_path / "w.parquet")):
        out = tmp_path / f"b{i}"
        res = r.invoke(
            main, ["simulate", str(cases), "-o", str(out), "--weights", str(wf), *common]
        )
        assert res.exit_code == 0, res.output
        got = pd.read_parquet(out / "cases.parquet").set_index("case_id")["payment_fen"]
        assert np.array_equal(got.to_numpy(), base.to_numpy()), wf.name
