"""Calibration of the synthetic region against DOMAIN.md's figures (issue 11).

One mid-size sample (120k clean cases over the default four years); tolerances are wide
enough for sampling noise at that size, narrow enough to catch a broken parameter.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import drgsim.synth as S
from drgsim.scheme import resolve_scheme_dir


@pytest.fixture(scope="module")
def sample():
    reg = S.SyntheticRegion(120_000, seed=12, dirty_rate=0.0)
    df = reg.discharges_table().to_pandas()
    h = reg.hospitals_table().to_pandas()
    df["level"] = df.hospital_id.map(dict(zip(h.hospital_id, h.level, strict=True)))
    df["cost"] = df.total_cost.astype(float)
    df["fund_share"] = (df.total_cost - df.deductible - df.coinsurance - df.self_pay).astype(float)
    return df


def test_mean_cost_and_los(sample):
    assert sample.cost.mean() == pytest.approx(10_300, rel=0.05)
    assert sample.los_days.mean() == pytest.approx(8.8, rel=0.05)
    # LOS follows cost
    assert np.corrcoef(np.log(sample.cost), np.log(sample.los_days.clip(lower=1)))[0, 1] > 0.4


def test_level_mix(sample):
    share = sample.level.value_counts(normalize=True)
    assert 0.40 < share["三级"] < 0.65 and 0.30 < share["二级"] < 0.50 and 0.02 < share["一级"] < 0.12
    cost = sample.groupby("level").cost.mean()
    assert cost["三级"] > cost["二级"] > cost["一级"]
    # tertiary hospitals treat heavier groups, not just dearer ones: compare group means
    gm = sample.groupby("synth_drg").cost.transform("mean")
    assert gm[sample.level == "三级"].mean() > 1.3 * gm[sample.level == "一级"].mean()


def test_outlier_shares(sample):
    gm = sample.groupby("synth_drg").cost.transform("mean")
    rw = gm / sample.cost.mean()
    k = np.where(rw <= 1, 3.0, np.where(rw <= 3, 2.0, 1.5))
    high = (sample.cost > k * gm).mean()
    low = (sample.cost < 0.4 * gm).mean()
    assert 0.01 <= high <= 0.03
    assert 0.05 <= low <= 0.10


def test_cc_mcc_and_exclusion_shares(sample):
    """Recompute every case's effective CC/MCC from the scheme tables themselves."""
    folder = resolve_scheme_dir("chs_drg_11")
    cc = pd.read_csv(folder / "cc.csv", dtype=str, keep_default_na=False)
    ex = pd.read_csv(folder / "cc_exclusion.csv", dtype=str, keep_default_na=False)
    level = dict(zip(cc.code, cc.level, strict=True))
    table = dict(zip(cc.code, cc.exclusion_table, strict=True))
    principal_table = dict(zip(ex.code, ex.exclusion_table, strict=True))
    dx = sample.diagnoses.str.split("|")
    t0 = dx.str[0].map(principal_table)
    long = dx.str[1:].explode().dropna().to_frame("code")
    long["t0"] = t0.reindex(long.index)
    long["level"] = long.code.map(level)
    long["excluded"] = long.code.map(table) == long.t0
    eff = long[long.level.notna() & ~long.excluded]
    mcc = eff.index[eff.level == "MCC"].unique()
    cc_any = eff.index.unique()
    excl_only = long.index[long.level.notna() & long.excluded].unique().difference(cc_any)
    n = len(sample)
    assert 0.07 < len(mcc) / n < 0.16
    assert 0.15 < (len(cc_any) - len(mcc)) / n < 0.32
    assert len(excl_only) / n > 0.02
    # the intended DRG's severity suffix agrees with the tables where the ADRG splits
    split = sample.synth_drg.str[3].isin(["1", "3", "5"])
    has_cc = sample.index.isin(cc_any)
    assert (sample.synth_drg[split & sample.index.isin(mcc)].str[3] != "5").all()
    assert (sample.synth_drg[split & ~has_cc].str[3] == "5").all()


def test_deaths_transfers_newborns_per_diem(sample):
    mode = sample.discharge_mode.value_counts(normalize=True)
    assert 0.005 < mode[5] < 0.03 and 0.01 < mode[2] < 0.04
    newborn = (sample.age_years == 0) & (sample.age_days <= 28)
    assert 0.005 < newborn.mean() < 0.04
    long_psych = sample.synth_drg.str[:2].isin(["TR", "TS", "XR"]) & (sample.los_days >= 60)
    assert 0.001 < long_psych.mean() < 0.02


def test_funds_follow_domain_proportions(sample):
    fund = sample.groupby("fund").fund_share.sum()
    assert fund["employee"] / fund.sum() == pytest.approx(174.44 / 431.08, abs=0.04)
    inpol = (sample.total_cost - sample.self_pay).astype(float)
    for name, rate in (("employee", 0.80), ("resident", 0.70)):
        m = sample.fund == name
        assert sample.fund_share[m].sum() / inpol[m].sum() == pytest.approx(rate, abs=0.04)


def test_principal_diagnoses_concentrate(sample):
    sub = sample.diagnoses.str.split("|").str[0].str[:5]
    share = sub.value_counts(normalize=True).cumsum()
    top = int((share < 0.6).sum()) + 1
    assert 50 < top < 600  # a few hundred subcategories carry most cases
    assert sub.nunique() > 2_000  # and a long tail


def test_seasonality(sample):
    month = pd.to_datetime(sample.discharge_date).dt.month.value_counts()
    assert month[2] < 0.9 * month.drop(2).mean()
