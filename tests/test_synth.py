"""Synthetic region generator: determinism, layout, money, readmissions, CLI (issue 11)."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import drgsim.synth as S
from drgsim.synth.generate import MONEY_COLUMNS
from drgsim.synth.region import plan_months

YEARS = (2023, 2024)


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _read(folder: Path) -> pa.Table:
    t = ds.dataset(folder / "discharges", format="parquet", partitioning="hive").to_table()
    return t.sort_by([("case_id", "ascending")])


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "a"
    S.region(out, discharges=30_000, hospitals=40, years=YEARS, seed=7, dirty_rate=0.05,
             chunk_size=5_000)
    return out


def test_same_seed_gives_byte_identical_files(small, tmp_path):
    again = tmp_path / "b"
    S.region(again, discharges=30_000, hospitals=40, years=YEARS, seed=7, dirty_rate=0.05,
             chunk_size=5_000)
    assert _digest(small) == _digest(again)


def test_other_chunk_size_and_workers_give_same_rows(small, tmp_path):
    other = tmp_path / "c"
    S.region(other, discharges=30_000, hospitals=40, years=YEARS, seed=7, dirty_rate=0.05,
             chunk_size=777, workers=1)
    assert _read(small).equals(_read(other))
    assert (small / "region.parquet").read_bytes() == (other / "region.parquet").read_bytes()
    # row groups really differ, so the test compares something
    f = "discharges/year=2023/month=03/part-0.parquet"
    assert pq.ParquetFile(small / f).num_row_groups < pq.ParquetFile(other / f).num_row_groups


def test_other_seed_gives_other_rows(small, tmp_path):
    other = tmp_path / "d"
    S.region(other, discharges=30_000, hospitals=40, years=YEARS, seed=8, dirty_rate=0.05)
    a, b = _read(small), _read(other)
    assert a.num_rows == b.num_rows
    assert a.column("diagnoses") != b.column("diagnoses")


def test_layout_and_types(small):
    months = sorted(p.parent.name for p in (small / "discharges").rglob("part-0.parquet"))
    assert len(months) == 24 and months[0] == "month=01"
    assert {p.name for p in small.iterdir()} == {"discharges", "hospitals.parquet",
                                                 "region.parquet", "manifest.json"}
    t = pq.read_table(small / "discharges/year=2024/month=12/part-0.parquet")
    schema = t.schema
    for c in MONEY_COLUMNS:
        assert schema.field(c).type == pa.decimal128(14, 2)
    assert schema.field("discharge_date").type == pa.date32()
    assert schema.field("sex").type == pa.int16()
    assert schema.field("diagnoses").type == pa.string()
    dd = t.column("discharge_date").to_pandas()
    assert (pd.to_datetime(dd).dt.month == 12).all() and (pd.to_datetime(dd).dt.year == 2024).all()
    manifest = json.loads((small / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["rows"] == 30_000 == sum(manifest["rows_per_month"].values())
    h = pq.read_table(small / "hospitals.parquet").to_pandas()
    assert len(h) == 40 and set(h.level) == {"三级", "二级", "一级"} and h.name.is_unique


def test_plan_sums_to_n_and_follows_seasonality():
    plan = plan_months(1_000_003, (2022, 2023))
    assert sum(m.rows for m in plan) == 1_000_003
    rows = {(m.year, m.month): m.rows for m in plan}
    assert rows[(2022, 2)] < rows[(2022, 1)] and rows[(2023, 1)] > rows[(2022, 1)]
    gi = [m.gi0 for m in plan]
    assert gi == sorted(gi) and gi[0] == 0


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 3_000), chunk=st.integers(1, 2_000), seed=st.integers(0, 2**64 - 1),
       rate=st.floats(0, 1))
def test_chunking_never_changes_rows(n, chunk, seed, rate):
    reg = S.SyntheticRegion(n, hospitals=5, years=(2024,), seed=seed, dirty_rate=rate)
    whole = reg.discharges_table()
    parts = list(reg.iter_discharges(chunk_size=chunk))
    assert all(p.num_rows == chunk for p in parts[:-1])
    assert whole.num_rows == n
    if n:
        assert pa.concat_tables(parts).equals(whole)
    assert len(set(whole.column("case_id").to_pylist())) == n


@pytest.fixture(scope="module")
def twins():
    dirty = S.discharges(40_000, seed=3, dirty_rate=0.2, years=YEARS)
    clean = S.discharges(40_000, seed=3, dirty_rate=0.0, years=YEARS)
    return dirty, clean


def test_dirt_only_touches_dirty_rows(twins):
    dirty, clean = twins
    is_dirty = dirty.column("synth_dirt").is_valid().to_numpy(zero_copy_only=False)
    assert 0.17 < is_dirty.mean() < 0.23
    assert clean.column("synth_dirt").null_count == clean.num_rows
    keep = pa.array(~is_dirty)
    assert dirty.filter(keep).drop_columns(["synth_dirt"]).equals(
        clean.filter(keep).drop_columns(["synth_dirt"]))
    kinds = set(pc.unique(dirty.column("synth_dirt").drop_null()).to_pylist())
    typed = {k.name for k in S.DIRT_KINDS if not k.text_only}
    assert kinds == typed


def test_money_adds_up(twins):
    _, clean = twins
    f = {c: np.array(clean.column(c).cast(pa.float64()).to_numpy()) * 100 for c in MONEY_COLUMNS}
    fen = {c: np.rint(v).astype(np.int64) for c, v in f.items()}
    parts = fen["drug_cost"] + fen["consumable_cost"] + fen["exam_cost"] + fen["service_cost"]
    assert (parts == fen["total_cost"]).all()
    patient = fen["deductible"] + fen["coinsurance"] + fen["self_pay"]
    assert (patient <= fen["total_cost"]).all() and (patient >= 0).all()
    assert (fen["total_cost"] > 0).all()


def test_region_table_is_the_sum_of_clean_fund_shares(twins):
    reg = S.SyntheticRegion(40_000, years=YEARS, seed=3, dirty_rate=0.2)
    table = reg.region_table().to_pandas()
    _, clean = twins
    df = clean.select(["fund", "discharge_date", *MONEY_COLUMNS]).to_pandas()
    df["year"] = pd.to_datetime(df.discharge_date).dt.year
    df["share"] = df.total_cost - df.deductible - df.coinsurance - df.self_pay
    sums = df.groupby(["year", "fund"]).share.sum()
    assert len(table) == 2 * len(YEARS)
    for row in table.itertuples():
        assert row.drg_spending == sums[(row.year, row.fund)]  # exact Decimal
        assert row.fund_spending == row.drg_spending + row.other_spending
        assert Decimal(0) < row.per_diem_spending < row.drg_spending
        assert row.fund_income > row.fund_spending  # a small surplus
        ratio = float(row.drg_spending / row.fund_spending)
        assert abs(ratio - 0.55) < 1e-6
    # the dirty rate does not change the fund table
    other = S.SyntheticRegion(40_000, years=YEARS, seed=3, dirty_rate=0.0).region_table()
    assert other.equals(reg.region_table())


def test_followups_are_the_same_patient(twins):
    _, clean = twins
    df = clean.select(["case_id", "patient_id", "hospital_id", "admit_date", "discharge_date",
                       "synth_drg", "synth_followup", "synth_followup_of"]).to_pandas()
    fu = df[df.synth_followup.notna()]
    assert 0.02 < len(fu) / len(df) < 0.07
    first = df.set_index("case_id").loc[fu.synth_followup_of]
    same_patient = fu.patient_id.to_numpy() == first.patient_id.to_numpy()
    assert same_patient.all()
    gap = (pd.to_datetime(fu.admit_date).to_numpy()
           - pd.to_datetime(first.discharge_date).to_numpy()) / np.timedelta64(1, "D")
    same_h = fu.hospital_id.to_numpy() == first.hospital_id.to_numpy()
    same_adrg = fu.synth_drg.str[:3].to_numpy() == first.synth_drg.str[:3].to_numpy()
    kind = fu.synth_followup.to_numpy()
    r = kind == "readmission"
    assert r.mean() > 0.4
    assert ((gap >= 1) & (gap <= 15) & same_h & same_adrg)[r].all()
    n16 = kind == "near_16_days"
    assert ((gap == 16) & same_h & same_adrg)[n16].all() and n16.any()
    oh = kind == "near_other_hospital"
    assert ((gap <= 15) & ~same_h & same_adrg)[oh].all() and oh.any()
    oa = kind == "near_other_adrg"
    assert ((gap <= 15) & same_h & ~same_adrg)[oa].all() and oa.any()
    # patient ids are otherwise unique
    assert df.patient_id.nunique() == len(df) - len(fu)


def test_demographics_are_consistent(twins):
    _, clean = twins
    df = clean.select(["sex", "age_years", "age_days", "birth_weight_g", "los_days",
                       "admit_date", "discharge_date", "synth_drg"]).to_pandas()
    mdc = df.synth_drg.str[0]
    assert (df.sex[mdc == "M"] == 1).all()
    assert (df.sex[mdc.isin(["N", "O"])] == 2).all()
    newborn = (df.age_years == 0) & (df.age_days <= 28)
    assert newborn.sum() > 100
    assert df.birth_weight_g[newborn].notna().all()
    assert (df.age_days.notna() == (df.age_years == 0)).all()
    assert (df.synth_drg[mdc == "P"].str[:3] != "PV1").sum() <= newborn.sum()
    assert ((pd.to_datetime(df.discharge_date) - pd.to_datetime(df.admit_date)).dt.days
            == df.los_days).all()


def test_csv_gb18030_carries_text_dirt(tmp_path):
    out = tmp_path / "csv"
    res = S.region(out, discharges=20_000, hospitals=20, years=(2024,), seed=4, dirty_rate=0.3,
                   format="csv", encoding="gb18030")
    files = sorted((out / "discharges").rglob("*.csv"))
    assert len(files) == 12
    df = pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False, encoding="gb18030")
                    for f in files])
    assert len(df) == res.rows == 20_000
    kinds = set(df.synth_dirt) - {""}
    assert {k.name for k in S.DIRT_KINDS} - kinds <= {"weight_text", "newborn_no_weight",
                                                       "age0_no_age_days", "sex_conflict"}
    assert set(df.sex[df.synth_dirt == "sex_text"]) <= {"M", "男"}
    assert (df.total_cost[df.synth_dirt == "cost_text"] == "NA").all()
    h = pd.read_csv(out / "hospitals.csv", encoding="gb18030")
    assert h.level.isin(["三级", "二级", "一级"]).all()


def test_bad_arguments_raise_specific_errors(tmp_path):
    with pytest.raises(S.SynthError, match="dirty_rate"):
        S.SyntheticRegion(10, dirty_rate=1.5)
    with pytest.raises(S.SynthError, match="hospitals"):
        S.SyntheticRegion(10, hospitals=0)
    with pytest.raises(S.SynthError, match="format"):
        S.region(tmp_path, discharges=10, format="xlsx")
    with pytest.raises(S.SynthError, match="encoding"):
        S.region(tmp_path, discharges=10, format="csv", encoding="no-such-codec")


def test_cli_writes_a_region(tmp_path):
    from drgsim.cli import main

    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(main, ["synth", "-o", str(out), "--discharges", "5000", "--hospitals",
                               "12", "--years", "2023-2024", "--seed", "9", "-q"])
    assert res.exit_code == 0, res.output
    assert "5,000 discharges" in res.output
    again = S.region(tmp_path / "api", discharges=5000, hospitals=12, years=(2023, 2024), seed=9,
                     chunk_size=262_144)
    assert _digest(out) == _digest(again.out)
    help_text = runner.invoke(main, ["synth", "--help"]).output
    assert "Example" in help_text and "--dirty-rate" in help_text
    bad = runner.invoke(main, ["synth", "-o", str(out), "--years", "2025-2023"])
    assert bad.exit_code != 0 and "years" in bad.output


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=50),
       st.lists(st.booleans(), min_size=50, max_size=50))
def test_money_is_exact_decimal(fen, null):
    from drgsim.synth.generate import money

    arr = money(np.array(fen, np.int64), np.array(null[: len(fen)]))
    want = [None if m else Decimal(v).scaleb(-2) for v, m in zip(fen, null, strict=False)]
    assert arr.type == pa.decimal128(14, 2) or len(fen) == 0
    assert arr.to_pylist() == want


@settings(max_examples=20, deadline=None)
@given(st.lists(st.lists(st.floats(0.01, 100), min_size=0, max_size=6), min_size=1,
                max_size=5), st.integers(0, 2**32 - 1))
def test_segment_sampling_stays_in_pool_and_follows_weights(weights, seed):
    from drgsim.synth.casemix import Segments

    pools = [np.arange(len(w)) + 100 * s for s, w in enumerate(weights)]
    seg = Segments.build(pools, [np.array(w) for w in weights])
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(weights), 20_000)
    got = seg.sample(which, rng.random(20_000))
    for s, w in enumerate(weights):
        g = got[which == s]
        if not w:
            assert (g == -1).all()
            continue
        assert set(g.tolist()) <= set(pools[s].tolist())
        share = np.bincount(g - 100 * s, minlength=len(w)) / max(len(g), 1)
        assert np.abs(share - np.array(w) / sum(w)).max() < 0.05
