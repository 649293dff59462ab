"""Weights calibration: hand-computed RW, year weights, inflation, trimming and fallbacks."""

from __future__ import annotations

import pandas as pd
import pytest

from drgsim.calibrate import WeightsError, calibrate, quality_summary, read_weights, scheme_drgs
from drgsim.policy import load_policy

PLAIN = {
    "calibration.history_years": 2,
    "calibration.year_weights": [1.0, 3.0],
    "calibration.inflation": 0.0,
    "calibration.trimming.method": "none",
    "calibration.min_cases": 2,
}


def hist(rows):
    df = pd.DataFrame(rows, columns=["drg", "adrg", "mdc", "year", "cost"])
    n = len(df)
    return pd.DataFrame(
        {
            "case_id": range(n),
            "hospital_id": "H1",
            "fund": "employee",
            "discharge_date": df["year"].astype(str) + "-06-01",
            "los_days": 5,
            "total_cost": df["cost"],
            "drg": df["drg"],
            "adrg": df["adrg"],
            "mdc": df["mdc"],
            "status": "ok",
        }
    )


def test_year_weighted_means_and_fallback():
    h = hist(
        [
            ("GB11", "GB1", "MDCG", 2022, 1000),
            ("GB11", "GB1", "MDCG", 2022, 3000),
            ("GB11", "GB1", "MDCG", 2023, 2000),
            ("GB11", "GB1", "MDCG", 2023, 4000),
            ("GB13", "GB1", "MDCG", 2023, 10000),  # thin: takes GB1's pooled weight
        ]
    )
    pv = load_policy().with_values(PLAIN).at(2024)
    w = calibrate(h, pv, 2024, scheme=None)
    # year 2022 has 2 cases (weight 1/2 each), 2023 has 3 (weight 3/3 each)
    # all-case mean = (0.5*1000 + 0.5*3000 + 2000 + 4000 + 10000) / (1 + 3) = 4,500 yuan
    assert w.attrs["m_all_fen"] == pytest.approx(450_000)
    d = w[w["level"] == "drg"].set_index("key")
    # GB11 = (0.5*1000 + 0.5*3000 + 2000 + 4000) / 3 = 2,666.67 -> RW 0.5926
    assert d.at["GB11", "mean_cost_fen"] == 266_667
    assert d.at["GB11", "rw"] == pytest.approx(266_667 / 450_000)
    assert d.at["GB11", "points"] == pytest.approx(266_667 / 450_000 * 100)
    # GB13 has 1 case < min_cases 2: ADRG GB1's pooled mean = all of them = 4,500
    assert d.at["GB13", "source"] == "adrg"
    assert d.at["GB13", "mean_cost_fen"] == 450_000
    q = quality_summary(w)
    assert q["drgs_fallback"] == 1


def test_inflation_and_trimming():
    rows = [("GB11", "GB1", "MDCG", 2023, c) for c in (100, 200, 300, 400, 100000)]
    h = hist(rows)
    pv = (
        load_policy()
        .with_values(
            {
                **PLAIN,
                "calibration.inflation": 0.1,
                "calibration.trimming.method": "percentile",
                "calibration.trimming.lower": 0.0,
                "calibration.trimming.upper": 0.8,
            }
        )
        .at(2024)
    )
    w = calibrate(h, pv, 2024, scheme=None)
    d = w[w["level"] == "drg"].set_index("key")
    # 80th percentile of (110,220,330,440,110000) cuts the 110000; mean of the rest x 1.1 = 275
    assert d.at["GB11", "mean_cost_fen"] == 27_500
    assert d.at["GB11", "n"] == 4


def test_scheme_drgs_all_get_weights():
    sd = scheme_drgs("chs_drg_11")
    assert {"drg", "adrg", "mdc"} <= set(sd.columns)
    h = hist([("GB11", "GB1", "MDCG", 2023, 1000 + i) for i in range(3)])
    pv = load_policy().with_values(PLAIN).at(2024)
    w = calibrate(h, pv, 2024)
    keys = set(w.loc[w["level"] == "drg", "key"])
    assert set(sd["drg"]) <= keys  # every DRG the grouper can emit, via the 'all' fallback
    assert "GB1" in keys  # ADRG-code DRGs too


def test_published_weights(tmp_path):
    f = tmp_path / "w.csv"
    f.write_text("drg,rw\nGB11,1.5\nGB13,0.5\n")
    pv = load_policy().with_values({"calibration.all_case_mean_yuan": 10000.0}).at(2024)
    w = read_weights(f, pv)
    d = w.set_index(["level", "key"])
    assert d.loc[("drg", "GB11"), "mean_cost_fen"] == 1_500_000
    assert d.loc[("adrg", "GB1"), "rw"] == pytest.approx(1.0)
    bad = tmp_path / "bad.csv"
    bad.write_text("drg,rw\nGB11,x\nGB11,-1\n")
    with pytest.raises(WeightsError) as e:
        read_weights(bad, pv)
    s = str(e.value)
    assert "bad.csv:2: rw: 'x' is not a positive number" in s
    assert "bad.csv:3: drg: 'GB11' is listed twice" in s


def test_per_diem_rates_ratio_of_sums_per_category():
    """Per-diem rates per listed category, from eligible cases only, inflated like the weights."""
    rows = [
        # psychiatric (MDCT, listed): 3,000 yuan / 10 days, 1,000 / 1 day, 6,000 / 30 days
        ("TR11", "TR1", "MDCT", 2023, 3000, 10),
        ("TR11", "TR1", "MDCT", 2023, 1000, 1),
        ("TR13", "TR1", "MDCT", 2023, 6000, 30),
        # a long stay of another group (LOS >= 60): 14,000 / 70 days
        ("GB11", "GB1", "MDCG", 2023, 14000, 70),
        # not eligible: a short GB11 stay; an MDCT case without a valid LOS
        ("GB11", "GB1", "MDCG", 2023, 9000, 3),
        ("TR11", "TR1", "MDCT", 2023, 5000, -1),
    ]
    h = hist([r[:5] for r in rows]).assign(los_days=[r[5] for r in rows])
    pv = load_policy().with_values({**PLAIN, "calibration.inflation": 0.1}).at(2024)
    w = calibrate(h, pv, 2024, scheme=None)
    pd_rows = w[w["level"] == "per_diem"].set_index("key")
    assert set(pd_rows.index) == {"MDCT", "long_stay"}
    # ratio of sums: (3,000 + 1,000 + 6,000) / (10 + 1 + 30) days x 1.1 = 268.29 yuan a day
    assert pd_rows.at["MDCT", "per_diem_rate_fen"] == pytest.approx(10_000 / 41 * 1.1 * 100)
    # the mean of case rates (300, 1,000, 200) x 1.1 = 550 yuan a day: the short stay pulls it up
    assert pd_rows.at["MDCT", "per_diem_case_rate_fen"] == pytest.approx(500 * 1.1 * 100)
    assert pd_rows.at["MDCT", "n"] == 3
    assert pd_rows.at["long_stay", "per_diem_rate_fen"] == pytest.approx(200 * 1.1 * 100)
    m_all = w.attrs["m_all_fen"]
    assert pd_rows.at["MDCT", "per_diem_points"] == pytest.approx(10_000 / 41 * 110 / m_all * 100)
    # the unrounded all-case mean travels in the table itself
    assert (w["m_all_fen"] == m_all).all()


def test_drgsim_weights_table_without_m_all_refused(tmp_path):
    h = hist([("GB11", "GB1", "MDCG", 2023, 1000 + i) for i in range(3)])
    pv = load_policy().with_values(PLAIN).at(2024)
    w = calibrate(h, pv, 2024, scheme=None).drop(columns="m_all_fen")
    f = tmp_path / "w.parquet"
    w.to_parquet(f)
    with pytest.raises(WeightsError, match="all-case mean cost"):
        read_weights(f, pv)


def test_per_diem_rates_leave_out_implausible_costs():
    # 60 psychiatric stays of 100 yuan a day and one of 1,000,000 yuan: 60.6 x the group's
    # mean (16,491 yuan), above plausibility.max_cost_ratio 50 -- pricing would hold it
    rows = [("TR11", "TR1", "MDCT", 2023, 100)] * 60 + [("TR11", "TR1", "MDCT", 2023, 1_000_000)]
    h = hist(rows).assign(los_days=[1] * 60 + [10])
    pv = load_policy().with_values(PLAIN).at(2024)
    w = calibrate(h, pv, 2024, scheme=None).set_index(["level", "key"])
    assert w.loc[("per_diem", "MDCT"), "per_diem_rate_fen"] == pytest.approx(10_000)
    assert w.loc[("per_diem", "MDCT"), "n"] == 60


def test_published_weights_in_gbk_csv_and_xlsx(tmp_path):
    """A bureau's weights often come as a GBK CSV or an .xlsx: both read like the UTF-8
    CSV (they stopped with an 'internal error' before)."""
    pv = load_policy().with_values({"calibration.all_case_mean_yuan": 10000.0}).at(2024)
    ref = tmp_path / "w.csv"
    ref.write_text("drg,rw,名称\nGB11,1.5,胃切除\nGB13,0.5,胃切除\n", encoding="utf-8")
    want = read_weights(ref, pv).set_index(["level", "key"])["mean_cost_fen"]
    gbk = tmp_path / "w_gbk.csv"
    gbk.write_bytes(ref.read_text(encoding="utf-8").encode("gbk"))
    xlsx = tmp_path / "w.xlsx"
    pd.DataFrame({"drg": ["GB11", "GB13"], "rw": [1.5, 0.5]}).to_excel(xlsx, index=False)
    for f in (gbk, xlsx):
        got = read_weights(f, pv).set_index(["level", "key"])["mean_cost_fen"]
        pd.testing.assert_series_equal(got, want)


@pytest.mark.parametrize("drop", ["discharge_date", "total_cost"])
def test_history_without_a_column_calibrate_needs_is_one_line(tmp_path, drop):
    """It was 'internal error: KeyError', exit 1."""
    from click.testing import CliRunner

    from drgsim.cli import main

    cols = {"case_id": ["a", "b"], "sex": ["1", "2"], "age_years": ["50", "60"],
            "diagnoses": ["I50.900", "J18.900"], "discharge_date": ["2023-03-01"] * 2,
            "total_cost": ["1000", "2000"]}
    del cols[drop]
    src = tmp_path / "h.csv"
    pd.DataFrame(cols).to_csv(src, index=False)
    r = CliRunner().invoke(main, ["calibrate", str(src), "-o", str(tmp_path / "w.parquet")])
    assert r.exit_code == 2 and r.output.startswith("error: ") and drop in r.output, r.output
