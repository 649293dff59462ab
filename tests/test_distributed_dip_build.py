"""The DIP catalogue built on Dask and Spark by a shuffle by assigned packet equals the
single path's (``dip.build``) table for table, exactly, for version 1.0 and 2.0 keys.

A hand-built history (~570 rows): keys of 14, 15 and 16 cases around the core
threshold, rare keys folding to category, prefix and chapter packets, a big packet with
auxiliary coefficients and level means, ties in cost, dirty rows (bad cost, date, year,
record check), a hospital no table names, patients' share. One LocalCluster (2 workers ×
1 thread) per module and the run's one local Spark session (tests/conftest.py), here
with three shuffle partitions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drgsim import dip
from drgsim.distributed import dip_build as B
from drgsim.distributed.dip import build_columns
from drgsim.distributed.partition import DistributedError

YEAR = 2024
SURG_A, SURG_B = "51.2300", "51.2200"  # surgery
DIAG, THER, ERCP = "87.5400", "99.2500", "51.1000"  # diagnostic, therapeutic, diagnostic

# (principal dx, procedures, cases)
GROUPS = [
    ("K80.100", SURG_A, 15),  # core at the threshold
    ("K80.101", SURG_B, 16),  # core (same key K80.1)
    ("K80.100", f"{SURG_A}|{DIAG}", 14),  # one short: folds to K80 × S
    ("K80.200", SURG_A, 14),  # folds to K80 × S (28 cases: a category fold)
    ("K80.100", "", 220),  # a big conservative core packet: aux, level means
    ("K80.200", DIAG, 5),  # K80 × D: 5 < 10 -> prefix K8 × D
    ("K81.000", ERCP, 6),  # K81 × D: 6 -> prefix K8 × D (11: a prefix fold)
    ("K82.000", THER, 3),  # K82 × T: 3 -> K8 × T: 3 -> chapter CH11 × T
    ("I21.000", f"{SURG_A}|{THER}", 60),  # v2: main + related
    ("I21.000", f"{SURG_A}|{THER}|{DIAG}", 20),
    ("I21.000", f"{DIAG}|{SURG_A}", 16),
    ("J18.900", "", 16),
    ("J18.000", "", 14),  # folds to J18 × C
    ("C34.900", THER, 40),
    ("C34.900", f"{THER}|{DIAG}", 9),
]
SECONDARY = ["", "|E11.900", "|I10.x00", "|N18.500|E11.900", "|C78.000", "|J96.000"]


def history(seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for dx, px, n in GROUPS:
        base = rng.uniform(3_000, 40_000)
        cost = np.round(base * rng.lognormal(0, 0.6, n), 2)
        parts.append(pd.DataFrame({
            "diagnoses": [dx + rng.choice(SECONDARY) for _ in range(n)], "procedures": px,
            "total_cost": cost, "year": rng.choice([2021, 2022, 2023], n, p=[0.2, 0.3, 0.5]),
        }))
    h = pd.concat(parts, ignore_index=True)
    n = len(h)
    h.loc[h.index[:8], "total_cost"] = h["total_cost"].iloc[8:16].to_numpy()  # cost ties
    h["sex"] = rng.choice([1, 2], n)
    h["age_years"] = rng.choice([0, 3, 12, 45, 70, 85], n)
    h["age_days"] = np.where(h["age_years"] == 0, rng.integers(29, 300, n), 0)
    h["los_days"] = rng.integers(1, 30, n)
    h["discharge_mode"] = rng.choice([1, 1, 1, 5], n)
    h["hospital_id"] = rng.choice(["H1", "H2", "H3", "H4", "H9"], n, p=[.3, .3, .2, .15, .05])
    h["patient_share"] = np.round(h["total_cost"] * rng.uniform(0.1, 0.4, n), 2)
    day = pd.Series(rng.integers(1, 28, n)).astype(str).str.zfill(2)
    h["discharge_date"] = h["year"].astype(str) + "-05-" + day  # text dates
    d = h.sample(40, random_state=2).reset_index(drop=True)  # dirty copies: cases unchanged
    kinds = np.arange(40) % 5
    d.loc[kinds == 0, "total_cost"] = -3.0
    d.loc[kinds == 1, "total_cost"] = np.nan
    d.loc[kinds == 2, "discharge_date"] = "2018-05-02"  # outside the history years
    d.loc[kinds == 3, "sex"] = 9  # fails the record check
    d.loc[kinds == 4, "discharge_date"] = "not a date"
    h = pd.concat([h, d], ignore_index=True)
    n = len(h)
    h["case_id"] = [f"c{i:05d}" for i in range(n)]
    return h.drop(columns=["year"]).sample(frac=1, random_state=5).reset_index(drop=True)


HOSPITALS = pd.DataFrame({"hospital_id": ["H1", "H2", "H3", "H4"],
                          "level": ["3", "3", "2", "2"]})
VERSIONS = {
    "v1": {"dip": {"base_packets": "none", "aux": {"min_cases": 30, "cv_min": 0.3}}},
    "v2": {"dip": {"version": "2.0", "base_packets": "none", "related_cost_share": 0.2,
                   "trim": {"rule": "percentile"}}},
}


@pytest.fixture(scope="module")
def hist() -> pd.DataFrame:
    return history()


@pytest.fixture(scope="module")
def single(hist):
    return {k: dip.build(hist, policy=pol, hospitals=HOSPITALS, year=YEAR)[0]
            for k, pol in VERSIONS.items()}


def same(a, b) -> None:
    assert a.meta == b.meta  # m_all, pv_budget, ratio, built_from: exact
    for name in ("packets", "levels", "aux"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True,
                                      obj=name)
    assert a.info.status_counts == b.info.status_counts
    assert a.info.unmatched_proc_codes == b.info.unmatched_proc_codes
    assert a.info.cases_unknown_hospital == b.info.cases_unknown_hospital
    assert a.info.cost_fen == b.info.cost_fen and a.info.core_cost_fen == b.info.core_cost_fen
    assert a.report == b.report


def local_build(frame: pd.DataFrame, policy, parts: int, order: np.ndarray,
                packet_part=None, year: int = YEAR):
    """The engine's steps with pandas: rows in ``order`` cut into ``parts`` partitions;
    after the key assignment, packets to stats partitions by ``packet_part(code)``."""
    st_ = B.setup(policy, "chs_drg_11", HOSPITALS, None, year=year)
    cols = build_columns(list(frame.columns))
    rows_in = frame[cols].iloc[order]
    chunks = [rows_in.iloc[ix] for ix in np.array_split(np.arange(len(rows_in)), parts)]
    years = [b for c in chunks for b in B.unblob(B.years_frame(c, None))]
    plan = B.plan_of(st_, years)
    plan, unm = B.reduce_scans(plan, [b for c in chunks for b in B.unblob(B.scan_frame(c, plan))])
    rows = [B.rows_frame(c, plan) for c in chunks]
    reds = [b for r in rows for b in B.unblob(B.reduce_frame(r))]
    share = B.has_share(cols, None)
    plan, red, kmap, table = B.driver_keys(plan, reds, unm, share)
    assigned = pd.concat([B.assign_frame(r, kmap) for r in rows], ignore_index=True)
    part_of = packet_part or (lambda code: hash(code) % 3)
    key = assigned["packet"].map(part_of)
    stats = [b for _, g in assigned.groupby(key) for b in B.unblob(B.stats_frame(g, plan))]
    return B.driver_catalogue(plan, table, red, stats, share)


# ----------------------------------------------------------------- the single path

def test_the_history_covers_the_edges(single):
    """Core at 15 and 16, folded at 14; category, prefix and chapter folds; level means
    and auxiliary coefficients; version 2.0 keys differ from 1.0."""
    p = single["v1"].packets.set_index("packet")
    assert p.at[f"K80.1/{SURG_A}", "kind"] == "core"
    assert p.at[f"K80.1/{SURG_B}", "kind"] == "core"
    assert f"K80.1/{DIAG}+{SURG_A}" not in p.index  # 14 cases: folded
    assert set(p["fold"]) >= {"", "category", "prefix", "chapter"}
    for cat in single.values():
        assert len(cat.levels) and len(cat.aux)
        assert cat.meta["reimbursement_ratio"] is not None
    assert (single["v1"].aux["kept"] == 1).any()
    assert set(single["v1"].packets["packet"]) != set(single["v2"].packets["packet"])
    assert single["v1"].info.cases_unknown_hospital > 0


@pytest.mark.parametrize("version", list(VERSIONS))
def test_local_steps_equal_the_single_path(hist, single, version):
    got = local_build(hist, VERSIONS[version], 4, np.arange(len(hist)))
    same(got, single[version])


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**31 - 1), parts=st.integers(1, 7), version=st.sampled_from(
    list(VERSIONS)))
def test_any_partitioning_and_row_order_give_the_same_catalogue(hist, single, seed, parts,
                                                                 version):
    rng = np.random.default_rng(seed)
    salt = int(rng.integers(1, 1000))
    got = local_build(hist, VERSIONS[version], parts, rng.permutation(len(hist)),
                      lambda code: (hash(code) + salt) % 4)
    same(got, single[version])


def test_steps_note_a_missing_history_year_as_the_single_path(hist):
    """Without 2022 the catalogue for 2024 is built from the latest three years before it
    there are (the dirty 2018 rows, 2021, 2023): the engines' steps say so in the build
    notes as dip.build does; a year the history has none of is refused at step 1."""
    from drgsim.errors import RecordsError

    lacking = hist[~hist["discharge_date"].str.startswith("2022")].reset_index(drop=True)
    pol = VERSIONS["v1"]
    cat = local_build(lacking, pol, 3, np.arange(len(lacking)))
    note = ("the catalogue for 2024 is built from 2021–2023, but the history lacks 2022: "
            "built from 2018, 2021, 2023 (history has 2018, 2021, 2023)")
    assert cat.meta["years"] == [2018, 2021, 2023]
    assert cat.info.years_note == note and note in cat.report.splitlines()
    same(cat, dip.build(lacking, policy=pol, hospitals=HOSPITALS, year=YEAR)[0])
    assert local_build(hist, pol, 2, np.arange(len(hist))).info.years_note == ""
    with pytest.raises(RecordsError, match="catalogue year 2030: .* history has 2018, "
                                           "2021–2023: choose year 2024"):
        local_build(hist, pol, 2, np.arange(len(hist)), year=2030)


def test_a_packet_split_over_partitions_is_refused(hist):
    calls = iter(range(10**6))

    def split(code):  # every row its own call: the big packet's rows in many partitions
        return next(calls)

    with pytest.raises(DistributedError, match="shuffle by assigned packet"):
        local_build(hist, VERSIONS["v1"], 2, np.arange(len(hist)), split)


# ----------------------------------------------------------------- Dask


@pytest.mark.parametrize("version", list(VERSIONS))
def test_dask_build_catalogue_equals_the_single_path(client, hist, single, version):
    import dask.dataframe as dd

    import drgsim.dask as dg

    ddf = dd.from_pandas(hist.sample(frac=1, random_state=9), npartitions=5)
    cat, assigned = dg.build_catalogue(ddf, policy=VERSIONS[version], hospitals=HOSPITALS,
                                       year=YEAR, client=client)
    assert assigned is None  # the per-row assignment stays on the workers
    same(cat, single[version])


# ----------------------------------------------------------------- Spark


@pytest.fixture(scope="module")
def spark(spark):
    """The shared session (tests/conftest.py) with three shuffle partitions, as this module
    always ran its Spark tests (the others use two); put back after the module."""
    from conftest import spark_conf

    with spark_conf(spark, {"spark.sql.shuffle.partitions": "3"}):
        yield spark


@pytest.mark.parametrize("version", list(VERSIONS))
def test_spark_dip_build_equals_the_single_path(spark, hist, single, version, tmp_path):
    import drgsim.spark as sg

    path = tmp_path / "hist.parquet"
    hist.to_parquet(path, index=False)
    sdf = spark.read.parquet(str(path)).repartition(3)
    cat, assigned = sg.dip_build(sdf, policy=VERSIONS[version], hospitals=HOSPITALS, year=YEAR)
    assert assigned is None
    same(cat, single[version])
