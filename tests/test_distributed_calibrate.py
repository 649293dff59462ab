"""Exact calibration on Dask and Spark by a shuffle by DRG equals the single path bit for bit.

A hand-built grouped history (a few thousand rows): DRGs at and around ``min_cases`` (9-13
cases, before and after the 5-95% trim), thin DRGs falling back to their ADRG, MDC or the
all-case pool, a DRG the percentile trim empties while its long stays are per-diem
eligible (judged against the all-case mean: the second, pending pass), per-diem MDC and
ADRG categories, implausible costs, ties, and dirty rows (unknown status, negative or
missing cost, bad dates, unknown fund, absurd LOS, years outside the history, empty
ADRG, a DRG seen under two MDCs). One LocalCluster (2 workers × 1 thread) per module and the
run's one local Spark session (tests/conftest.py), here with three shuffle partitions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drgsim.calibrate import calibrate, calibration_rows, key_statistics, year_counts
from drgsim.policy import load_policy
from drgsim.policy.dated import resolve_year
from drgsim.settlement.simulate import per_diem_categories_of

YEAR = 2024
SCHEME = "chs_drg_11"

# (drg, adrg, mdc, cases): sizes around min_cases 10 before/after the trim
GROUPS = [
    ("GB11", "GB1", "MDCG", 400), ("GB13", "GB1", "MDCG", 9), ("GB15", "GB1", "MDCG", 3),
    ("GR11", "GR1", "MDCG", 12), ("GR13", "GR1", "MDCG", 13), ("GR15", "GR1", "MDCG", 14),
    ("GU19", "GU1", "MDCG", 13), ("GZ19", "GZ1", "MDCG", 1),
    ("FM19", "FM1", "MDCF", 250), ("FR21", "FR2", "MDCF", 2), ("FR23", "FR2", "MDCF", 8),
    ("ES21", "ES2", "MDCE", 300), ("ES23", "ES2", "MDCE", 20), ("EZ19", "EZ1", "MDCE", 4),
    ("TR11", "TR1", "MDCT", 60), ("TR19", "TR1", "MDCT", 2), ("TS19", "TS1", "MDCT", 9),
    ("IC29", "IC2", "MDCI", 150), ("IZ19", "IZ1", "MDCI", 2), ("IU19", "IU1", "MDCI", 5),
    ("XR19", "XR1", "MDCX", 1), ("XJ19", "XJ1", "MDCX", 2),
]


def history(seed: int = 7) -> pd.DataFrame:
    """The grouped history: clean cases of GROUPS over 2020-2023 plus dirty rows."""
    rng = np.random.default_rng(seed)
    parts = []
    for drg, adrg, mdc, n in GROUPS:
        base = rng.uniform(2_000, 40_000)
        cost = np.round(base * rng.lognormal(0, 0.5, n), 2)
        los = rng.integers(1, 25, n)
        if drg in ("FR21", "IZ19", "XJ19"):  # two cases: the trim empties it; long stays
            los[:] = [70, 90]
        if drg == "TR11":
            los[:10] = rng.integers(60, 120, 10)
        parts.append(pd.DataFrame({
            "drg": drg, "adrg": adrg, "mdc": mdc, "total_cost": cost, "los_days": los,
            "year": rng.choice([2021, 2022, 2023], n, p=[0.2, 0.3, 0.5]),
        }))
    h = pd.concat(parts, ignore_index=True)
    h.loc[h.sample(30, random_state=1).index, "los_days"] = 75  # long stays in any group
    h.loc[h.index[:6], "total_cost"] = h["total_cost"].iloc[6:12].to_numpy()  # ties
    gb = h.index[h["drg"] == "GB11"]
    h.loc[gb[:3], "total_cost"] = 9_000_000.0  # implausible (> 50 x the mean): no per-diem
    h.loc[gb[:3], "los_days"] = 80
    h.loc[gb[3:5], "total_cost"] = 0.0  # zero cost: usable
    h.loc[h.index[h["drg"] == "ES23"][:2], "mdc"] = "MDCZ"  # one DRG under two MDCs
    h.loc[h.index[h["drg"] == "IU19"], "adrg"] = ""  # empty ADRG: its DRG's first three
    h["status"] = "ok"
    h["fund"] = "employee"
    n = len(h)
    dirty = rng.choice(n, 80, replace=False)
    kinds = np.arange(80) % 8
    h.loc[dirty[kinds == 0], "status"] = "check_failed"
    h.loc[dirty[kinds == 1], "status"] = "nonsense"
    h.loc[dirty[kinds == 2], "total_cost"] = -5.0
    h.loc[dirty[kinds == 3], "total_cost"] = np.nan
    h.loc[dirty[kinds == 4], "fund"] = "martian"
    h.loc[dirty[kinds == 5], "los_days"] = 999  # absurd LOS: not counted, the case is
    h.loc[dirty[kinds == 6], "los_days"] = -1
    h.loc[dirty[kinds == 7], "year"] = 2019  # before the history years
    day = pd.Series(rng.integers(1, 28, n)).astype(str).str.zfill(2)
    h["discharge_date"] = h["year"].astype(str) + "-03-" + day
    h.loc[dirty[:5], "discharge_date"] = "not a date"
    h["hospital_id"] = rng.choice(["H1", "H2", "H3"], n)
    h["case_id"] = np.arange(n)
    h = h.drop(columns=["year"])
    return h.sample(frac=1, random_state=3).reset_index(drop=True)  # DRGs interleaved


POLICIES = {
    "baseline": {},
    "sd_trim": {"calibration.trimming.method": "sd", "calibration.trimming.sd": 2.0,
                "per_diem.adrgs": ["GR1"]},
    "given_mean": {"calibration.all_case_mean_yuan": 9876.54, "calibration.min_cases": 5},
    "no_trim": {"calibration.trimming.method": "none", "calibration.inflation": 0.0,
                "calibration.fallback": ["mdc"]},
}


def year_policy(name: str):
    return resolve_year(load_policy().with_values(POLICIES[name]), YEAR)


@pytest.fixture(scope="module")
def hist() -> pd.DataFrame:
    return history()


@pytest.fixture(scope="module")
def single(hist):
    return {k: calibrate(hist, per_diem_categories_of(year_policy(k)), YEAR, scheme=SCHEME)
            for k in POLICIES}


def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert a.attrs["m_all_fen"] == b.attrs["m_all_fen"]
    ra, rb = a.attrs["riv"], b.attrs["riv"]
    assert ra == rb or (np.isnan(ra) and np.isnan(rb))


# ----------------------------------------------------------------- the single path


def test_the_history_covers_the_edges(hist, single):
    """The fixture exercises what it claims: pending DRGs, fallbacks at every level,
    DRGs just under and over min_cases, per-diem categories, dirty rows left out."""
    from drgsim.calibrate import pending_drgs
    from drgsim.distributed.calibrate import spec_of

    spec = spec_of(year_policy("baseline"), YEAR)
    rows = calibration_rows(hist, spec)
    assert len(rows) < len(hist) - 50  # the dirty rows are not calibration cases
    units = key_statistics(rows, spec, year_counts(rows, spec))
    pend = set(pending_drgs(units))  # two-case DRGs the 5-95% trim empties
    assert len(pend) >= 2 and pend <= {"FR21", "IZ19", "TR19", "XJ19"}
    w = single["baseline"]
    d = w[w["level"] == "drg"].set_index("key")
    assert {"drg", "adrg", "mdc", "all"} <= set(d["source"])
    own = d.loc[[g[0] for g in GROUPS]]
    assert set(own.loc[own["source"] == "drg", "n"]) >= {10, 11}  # at min_cases and above
    assert 9 in set(own.loc[own["source"] != "drg", "n"])  # just under: a pooled weight
    pdm = w[w["level"] == "per_diem"].set_index("key")
    assert {"MDCT", "long_stay"} <= set(pdm.index)
    assert "GR1" in set(single["sd_trim"].query("level == 'per_diem'")["key"])


def test_calibration_does_not_depend_on_row_order(hist, single):
    """The canonical order inside a DRG: any permutation of the rows, the same bits."""
    for k, want in single.items():
        shuffled = hist.sample(frac=1, random_state=99).reset_index(drop=True)
        got = calibrate(shuffled, per_diem_categories_of(year_policy(k)), YEAR, scheme=SCHEME)
        same(got, want)


def test_per_drg_statistics_need_the_whole_drg(hist, single):
    """The partition boundary: per-DRG statistics of rows split by anything but the DRG
    are refused (halves of the rows; or by MDC, which splits the DRG seen under two MDCs
    into units that do not overlap), while any split by DRG gives the single table."""
    from drgsim.calibrate import assemble
    from drgsim.distributed.calibrate import check_whole_drgs, driver_weights, spec_of
    from drgsim.distributed.partition import DistributedError

    spec = spec_of(year_policy("no_trim"), YEAR)
    rows = calibration_rows(hist, spec)
    counts = year_counts(rows, spec)

    def units_by(key: pd.Series) -> pd.DataFrame:
        return pd.concat([key_statistics(g, spec, counts) for _, g in rows.groupby(key)],
                         ignore_index=True)

    halves = units_by(pd.Series(np.arange(len(rows)) * 2 // len(rows), index=rows.index))
    by_mdc = units_by(rows["mdc"])
    assert not by_mdc.duplicated(["drg", "adrg", "mdc", "pdcat"]).any()
    for units in (halves, by_mdc):
        with pytest.raises(DistributedError, match="ES23|shuffle by DRG"):
            check_whole_drgs(units)
        with pytest.raises(ValueError, match="shuffle by DRG"):
            assemble(units, spec, SCHEME)
    by_drg = units_by(rows["drg"].map(lambda d: hash(d) % 3))
    got = driver_weights(spec, counts, 1, lambda drgs, m: by_drg, SCHEME)
    same(got, single["no_trim"])


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), parts=st.integers(1, 6),
       name=st.sampled_from(list(POLICIES)))
def test_any_partitioning_by_drg_gives_the_single_table(hist, single, seed, parts, name):
    """Property: rows of whole DRGs spread over any number of partitions, in any order
    inside each, give the single path's table bit for bit (pending pass included)."""
    from drgsim.distributed.calibrate import driver_weights, spec_of

    rng = np.random.default_rng(seed)
    spec = spec_of(year_policy(name), YEAR)
    rows = calibration_rows(hist, spec)
    counts = year_counts(rows, spec)
    drgs = sorted(set(rows["drg"]))
    home = dict(zip(drgs, rng.integers(0, parts, len(drgs)), strict=True))
    part = rows["drg"].map(home).to_numpy()
    chunks = [rows[part == i].sample(frac=1, random_state=int(rng.integers(1 << 30)))
              for i in range(parts)]

    def units_of(want, m_all):
        out = []
        for c in chunks:
            c = c if want is None else c[c["drg"].isin(want)]
            out.append(key_statistics(c, spec, counts, m_all))
        return pd.concat(out, ignore_index=True)

    same(driver_weights(spec, counts, 1, units_of, SCHEME), single[name])


# ----------------------------------------------------------------- Dask


@pytest.mark.parametrize("name", list(POLICIES))
def test_dask_calibrate_weights_equal_the_single_path(client, hist, single, name):
    import dask.dataframe as dd

    import drgsim.dask as dg

    ddf = dd.from_pandas(hist, npartitions=5)
    got = dg.calibrate_weights(ddf, year_policy(name), YEAR, SCHEME, "discharge_date")
    same(got, single[name])


def test_dask_calibrate_weights_refuse_an_empty_history(client, hist):
    import dask.dataframe as dd

    import drgsim.dask as dg
    from drgsim.calibrate import WeightsError
    from drgsim.errors import RecordsError

    late = hist.assign(discharge_date="2024-05-01")
    with pytest.raises(RecordsError, match="no history before 2024"):
        dg.calibrate_weights(dd.from_pandas(late, npartitions=2), year_policy("baseline"),
                             YEAR, SCHEME, "discharge_date")
    bad = hist.assign(status="check_failed")
    with pytest.raises(WeightsError, match="no usable grouped cases"):
        dg.calibrate_weights(dd.from_pandas(bad, npartitions=2), year_policy("baseline"),
                             YEAR, SCHEME, "discharge_date")


# ----------------------------------------------------------------- Spark


@pytest.fixture(scope="module")
def spark(spark):
    """The shared session (tests/conftest.py) with three shuffle partitions, as this module
    always ran its Spark tests (the others use two); put back after the module."""
    from conftest import spark_conf

    with spark_conf(spark, {"spark.sql.shuffle.partitions": "3"}):
        yield spark


def test_spark_session_has_this_modules_three_shuffle_partitions(spark):
    """The module's setting reaches the run's shared session (tests/conftest.py)."""
    assert spark.conf.get("spark.sql.shuffle.partitions") == "3"


@pytest.mark.parametrize("name", ["baseline", "sd_trim", "given_mean"])
def test_spark_calibrate_weights_equal_the_single_path(spark, hist, single, name):
    import drgsim.spark as sg

    sdf = spark.createDataFrame(hist).repartition(3)
    empty = sg._arrow_empty(sdf)
    got = sg.calibrate_weights(sdf, year_policy(name), YEAR, SCHEME, "discharge_date", None,
                               empty)
    same(got, single[name])
