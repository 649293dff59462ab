"""simulate() and the calibrate / simulate / policy commands end to end on small data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import drgsim
from drgsim.cli import main
from drgsim.policy import load_policy
from drgsim.pricing.fake import fake_cases, fake_hospitals

# the budget from last year's clean cases (no region table in most tests here)
HISTORY = {"budget.employee.source": "history", "budget.resident.source": "history"}


def hist_policy(**over):
    return load_policy().with_values({**HISTORY, **over})


@pytest.fixture(scope="module")
def region_cases():
    parts = [
        fake_cases(1500, n_hosp=6, seed=y, year=y).assign(
            case_id=lambda d, y=y: d["case_id"] + y * 10**6
        )
        for y in (2021, 2022, 2023, 2024)
    ]
    return pd.concat(parts, ignore_index=True)


def test_simulate_api(region_cases):
    t = drgsim.simulate(region_cases, policy=hist_policy(), hospitals=fake_hospitals(6))
    assert set(t) >= {
        "cases",
        "hospitals",
        "months",
        "drgs",
        "funds",
        "ledger",
        "pay_status",
        "weights",
        "summary",
    }
    assert len(t["cases"]) == (pd.to_datetime(region_cases["discharge_date"]).dt.year == 2024).sum()
    assert (t["ledger"].groupby(["fund", "year"])["amount_fen"].sum() == 0).all()
    f = t["funds"].set_index("fund")
    h = t["hospitals"].groupby("fund")[["payment_fen"]].sum()
    assert (h["payment_fen"] == f.loc[h.index, "budget_fen"]).all()
    assert (f["budget_source"] == "history").all()  # exactly the source the policy names
    assert f["budget_arithmetic"].str.startswith("history cases' fund spending 2023 ").all()
    assert t["cases"].attrs["drgsim.policy_hash"]
    assert {"cmi", "cost_index", "time_index"} <= set(t["hospitals"].columns)
    # settled on the cells' totals; the per-case points add up to them (up to float rounding)
    c = t["cases"][(t["cases"]["pay_status"] == "ok") & t["cases"]["in_budget"]]
    assert c.groupby("fund")["points"].sum().to_dict() == pytest.approx(f["points"].to_dict())
    hp = t["hospitals"].set_index(["fund", "hospital_id"])["points"]
    assert c.groupby(["fund", "hospital_id"])["points"].sum().reindex(hp.index).to_numpy() == (
        pytest.approx(hp.to_numpy(), rel=1e-9)
    )
    summ = dict(zip(t["summary"]["item"], t["summary"]["value"], strict=True))
    assert "employee points settled (cells) / sum of case points" in summ


def test_region_table_budget(region_cases):
    region = pd.DataFrame(
        {
            "fund": ["employee", "resident"],
            "year": [2023, 2023],
            "drg_spending": ["1000000.00", "2000000.00"],
        }
    )
    t = drgsim.simulate(region_cases, hospitals=fake_hospitals(6), region=region)
    f = t["funds"].set_index("fund")
    # 1,000,000 x 1.05 = 1,050,000; less 5% reserve = 997,500 yuan
    assert f.loc["employee", "budget_fen"] == 99_750_000
    assert f.loc["employee", "reserve_fen"] == 5_250_000


def test_cli_end_to_end(tmp_path, region_cases):
    cases = tmp_path / "cases.parquet"
    region_cases.to_parquet(cases)
    hosp = tmp_path / "hospitals.csv"
    fake_hospitals(6).to_csv(hosp, index=False)
    r = CliRunner()
    res = r.invoke(
        main,
        ["calibrate", str(cases), "--grouped", "--year", "2024", "-o", str(tmp_path / "w.parquet")],
    )
    assert res.exit_code == 0, res.output
    meta = pq.read_schema(tmp_path / "w.parquet").metadata
    assert b"drgsim.version" in meta and b"drgsim.m_all_fen" in meta
    out = tmp_path / "out"
    region = tmp_path / "region.csv"
    pd.DataFrame(
        {"fund": ["employee", "resident"], "year": 2023, "drg_spending": [9.0e6, 6.0e6]}
    ).to_csv(region, index=False)
    res = r.invoke(
        main,
        [
            "simulate",
            str(cases),
            "--grouped",
            "--weights",
            str(tmp_path / "w.parquet"),
            "--hospitals",
            str(hosp),
            "--region",
            str(region),
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    for name in ("cases", "hospitals", "months", "drgs", "funds", "ledger", "summary"):
        md = pq.read_schema(out / f"{name}.parquet").metadata
        for k in (
            b"drgsim.version",
            b"drgsim.policy_hash",
            b"drgsim.weights_hash",
            b"drgsim.scheme",
        ):
            assert k in md, (name, k)
    assert (out / "summary.xlsx").exists()
    assert (out / "point_value_by_month.png").exists() and (out / "payment_vs_cost.png").exists()
    led = pd.read_parquet(out / "ledger.parquet")
    assert led["amount_fen"].sum() == 0


def test_policy_commands(tmp_path):
    r = CliRunner()
    res = r.invoke(main, ["policy", "validate"])
    assert res.exit_code == 0 and "ok:" in res.output
    bad = str(Path(__file__).parent / "fixtures" / "policies" / "unknown_key.yaml")
    res = r.invoke(main, ["policy", "validate", bad])
    assert res.exit_code == 2
    assert "unknown_key.yaml:93: high_cost.betta: unknown key" in res.output
    res = r.invoke(main, ["policy", "show", "--date", "2024-01-01"])
    assert res.exit_code == 0 and "point_value" in res.output


@pytest.mark.parametrize(
    "cmd", [["calibrate"], ["simulate"], ["policy"], ["policy", "show"], ["policy", "validate"]]
)
def test_help_has_example(cmd):
    res = CliRunner().invoke(main, [*cmd, "--help"])
    assert res.exit_code == 0 and "Example" in res.output


def test_raw_synthetic_region_end_to_end(tmp_path):
    """Raw records (no drgsim provenance) are grouped on the way; every row is accounted for."""
    synth = pytest.importorskip("drgsim.synth")
    made = tmp_path / "region"
    synth.region(made, discharges=8000, hospitals=6, seed=3)
    raw = pd.read_parquet(made / "discharges")
    t = drgsim.simulate(
        made / "discharges", hospitals=made / "hospitals.parquet", region=made / "region.parquet"
    )
    last = pd.to_datetime(raw["discharge_date"], errors="coerce").dt.year.max()
    n_last = int((pd.to_datetime(raw["discharge_date"], errors="coerce").dt.year == last).sum())
    n_bad = int(pd.to_datetime(raw["discharge_date"], errors="coerce").isna().sum())
    assert len(t["cases"]) == n_last + n_bad  # nothing silently dropped
    assert t["pay_status"]["cases"].sum() == len(t["cases"])
    assert t["cases"].attrs["drgsim.scheme_hash"]  # grouped here, with the scheme's provenance
    assert (t["ledger"].groupby(["fund", "year"])["amount_fen"].sum() == 0).all()
    f = t["funds"].set_index("fund")
    assert (f["budget_source"] == "region_table").all()
    h = t["hospitals"].groupby("fund")["payment_fen"].sum()
    assert (h == f.loc[h.index, "paid_by_points_fen"]).all()


def test_bad_side_tables(region_cases):
    from drgsim.errors import DrgsimError

    with pytest.raises(DrgsimError, match="lacks column"):
        drgsim.simulate(region_cases, region=pd.DataFrame({"fund": ["employee"], "year": [2023]}))
    with pytest.raises(DrgsimError, match="hospital_id"):
        drgsim.simulate(region_cases, hospitals=pd.DataFrame({"id": ["H0000"]}))


def test_plots_warn_once_without_cjk_font(tmp_path, region_cases, monkeypatch):
    import warnings

    import drgsim.report as rep

    t = drgsim.simulate(region_cases, policy=hist_policy(), hospitals=fake_hospitals(6))
    monkeypatch.setattr(rep, "find_cjk_font", lambda: None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = rep.write_plots(t, tmp_path)
    assert len([w for w in caught if issubclass(w.category, rep.CJKFontWarning)]) == 1
    assert all(p.exists() for p in paths)
    monkeypatch.setattr(
        rep, "find_cjk_font", lambda: "DejaVu Sans"
    )  # the Chinese-label branch runs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(rep.write_plots(t, tmp_path)) == 2


def test_bad_rows_get_a_summary_line(region_cases):
    df = region_cases.copy()
    last = df.index[pd.to_datetime(df["discharge_date"]).dt.year == 2024]
    df.loc[last[:3], "total_cost"] = None
    df.loc[last[3:5], "hospital_id"] = "NOPE"
    t = drgsim.simulate(df, policy=hist_policy(), hospitals=fake_hospitals(6))
    ps = t["pay_status"].set_index("pay_status")["cases"]
    assert ps["missing_cost"] == 3 and ps["unknown_hospital"] == 2
    items = t["summary"]["item"].tolist()
    assert "pay_status missing_cost" in items and "pay_status unknown_hospital" in items
    assert len(t["cases"]) == len(last)


def test_relative_point_value_floor_end_to_end(region_cases):
    """Budgeted PV given as 1.2 x last run's PV, floor 0.9 of it: the floor binds, the fund
    adds the difference on its own ledger line and the hospitals get budget + top-up."""
    h = fake_hospitals(6)
    base = drgsim.simulate(region_cases, policy=hist_policy(), hospitals=h)
    base = base["funds"].set_index("fund")
    given = {f: float(base.loc[f, "pv_used"]) * 1.2 for f in base.index}
    pol = hist_policy(
        **{
            "point_value.bounds.mode": "relative",
            "point_value.bounds.floor": 0.9,
            "point_value.bounds.budgeted_pv": "given",
            "point_value.bounds.budgeted_pv_yuan": given,
        }
    )
    t = drgsim.simulate(region_cases, policy=pol, hospitals=h)
    f = t["funds"].set_index("fund")
    assert (f["pv_bound"] == "floor").all()
    assert f["pv_used"].to_dict() == pytest.approx({k: v * 0.9 for k, v in given.items()})
    led = t["ledger"]
    assert (led.groupby(["fund", "year"])["amount_fen"].sum() == 0).all()
    up = led[led["line"] == "pv_floor_topup"].set_index("fund")["amount_fen"]
    assert (up > 0).all() and (up == f.loc[up.index, "pv_floor_topup_fen"]).all()
    paid = t["hospitals"].groupby("fund")["payment_fen"].sum()
    assert (paid == f.loc[paid.index, "budget_fen"] + up.loc[paid.index]).all()
    summ = dict(zip(t["summary"]["item"], t["summary"]["value"], strict=True))
    assert "employee point value held at its floor (yuan)" in summ


def test_read_table_skips_leftover_temporaries(tmp_path):
    """A killed run's hidden ``.part`` file beside the parts is not read as cases."""
    from drgsim.settlement.simulate import read_table

    d = tmp_path / "cases"
    d.mkdir()
    pd.DataFrame({"case_id": [1, 2]}).to_parquet(d / "a.parquet")
    (d / ".a.parquet.x1.part.parquet").write_bytes(b"PAR1 truncated")
    df, _ = read_table(d)
    assert df["case_id"].tolist() == [1, 2]


def test_unknown_hospital_cases_keep_their_own_hospital_id(region_cases):
    """A case of a hospital missing from the hospitals table is listed under its own id
    (paid nothing), never under another hospital's id; it does not count toward another
    hospital's special-review quota either."""
    df = region_cases.copy()
    last = df.index[pd.to_datetime(df["discharge_date"]).dt.year == 2024]
    df.loc[last[3:5], "hospital_id"] = "NOPE"
    t = drgsim.simulate(df, policy=hist_policy(), hospitals=fake_hospitals(6))
    c = t["cases"].set_index("case_id")
    ids = df.loc[last[3:5], "case_id"].tolist()
    assert (c.loc[ids, "hospital_id"] == "NOPE").all()
    assert (c.loc[ids, "pay_status"] == "unknown_hospital").all()
    assert c.loc[ids, "payment_fen"].sum() == 0
    assert "NOPE" not in set(t["hospitals"]["hospital_id"])


def test_a_hospital_listed_twice_is_refused(region_cases):
    """Two rows for one hospital (levels 三级 and 一级) would silently price it at the first
    row's coefficient: the run stops naming it."""
    from drgsim.errors import DrgsimError

    h = fake_hospitals(6)
    hid = h["hospital_id"].iloc[0]
    dup = h.iloc[[0]].assign(level="1")
    with pytest.raises(DrgsimError, match=rf"{hid} \(2 rows\)"):
        drgsim.simulate(region_cases, policy=hist_policy(), hospitals=pd.concat([h, dup]))


def test_hospital_columns_the_coefficient_method_would_ignore_are_refused(region_cases):
    """coefficients.method level with no level column would price every hospital at the
    default coefficient; a coefficient column it does not use would be ignored: both stop."""
    from drgsim.errors import DrgsimError

    h = fake_hospitals(6)
    with pytest.raises(DrgsimError, match="no level column"):
        drgsim.simulate(region_cases, policy=hist_policy(), hospitals=h.drop(columns="level"))
    with pytest.raises(DrgsimError, match="coefficient column.*coefficients.method is level"):
        drgsim.simulate(region_cases, policy=hist_policy(), hospitals=h.assign(coefficient=1.1))
    pol = hist_policy().with_values({"coefficients.method": "hospital"})
    t = drgsim.simulate(region_cases, policy=pol, hospitals=h.assign(coefficient=1.1))
    assert t["cases"]["coefficient"].dropna().tolist() == pytest.approx([1.1] * 1500)


def test_side_tables_in_gbk_csv_or_xlsx(tmp_path, region_cases):
    """A hospitals or region table saved from Excel (GBK CSV, .xlsx) reads like parquet
    (it stopped with an 'internal error' before)."""
    from drgsim.settlement.simulate import read_table

    h = fake_hospitals(6).assign(name="第一人民医院", level="三级")
    gbk, xlsx = tmp_path / "h.csv", tmp_path / "h.xlsx"
    h.to_csv(gbk, index=False, encoding="gbk")
    h.to_excel(xlsx, index=False)
    for f in (gbk, xlsx):
        got = read_table(f)[0]
        assert got["hospital_id"].astype(str).tolist() == h["hospital_id"].tolist()
        assert set(got["name"]) == {"第一人民医院"} and set(got["level"]) == {"三级"}


def test_an_unreadable_assessment_score_is_refused(region_cases):
    """'85分' is not a score: read as blank it would get the default score (full release
    of the withheld money); the run stops naming the hospital. A blank score is the default."""
    from drgsim.errors import DrgsimError

    h = fake_hospitals(6).assign(assessment_score=["85分", "", None, 90, 70, 100])
    hid = h["hospital_id"].iloc[0]
    with pytest.raises(DrgsimError, match=rf"assessment_score.*{hid}: '85分'"):
        drgsim.simulate(region_cases, policy=hist_policy(), hospitals=h)
    h.loc[0, "assessment_score"] = "85"
    drgsim.simulate(region_cases, policy=hist_policy(), hospitals=h)


def test_no_hospitals_table_is_announced(region_cases):
    """Without a hospitals table every hospital is priced at coefficients.default (a 三级
    hospital as 0.85): allowed, but never silent."""
    import warnings

    from drgsim.settlement.simulate import NoHospitalsWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = drgsim.simulate(region_cases, policy=hist_policy())
    msgs = [str(w.message) for w in caught if issubclass(w.category, NoHospitalsWarning)]
    assert len(msgs) == 1 and "coefficients.default 0.85" in msgs[0]
    assert set(t["cases"]["coefficient"].dropna()) == {0.85}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        drgsim.simulate(region_cases, policy=hist_policy(), hospitals=fake_hospitals(6))
    assert not [w for w in caught if issubclass(w.category, NoHospitalsWarning)]


def test_numeric_looking_hospital_ids_in_a_csv_stay_text(tmp_path, region_cases):
    """Hospital codes such as 0001 in a hospitals CSV were read as the integer 1: no case
    matched, every case was unknown_hospital and nothing was paid, without an error."""
    df = region_cases.assign(hospital_id=region_cases["hospital_id"].str.replace("H", "0"))
    h = fake_hospitals(6).assign(hospital_id=lambda d: d["hospital_id"].str.replace("H", "0"))
    f = tmp_path / "hospitals.csv"
    h.to_csv(f, index=False)
    t = drgsim.simulate(df, policy=hist_policy(), hospitals=f)
    assert "unknown_hospital" not in set(t["cases"]["pay_status"])
    # a hospitals table that names none of the cases' hospitals stops, showing both sides
    from drgsim.errors import DrgsimError

    with pytest.raises(DrgsimError, match="names none of the 6 hospitals.*0000.*X0"):
        other = h.assign(hospital_id="X" + h["hospital_id"])
        drgsim.simulate(df, policy=hist_policy(), hospitals=other)


@pytest.mark.parametrize("bad", ["notes.txt", "b.parquet"])
def test_a_stray_or_truncated_file_in_a_cases_folder_is_a_user_error(tmp_path, bad):
    """simulate/calibrate read folders too: a truncated part or a stray file is one line
    naming it, exit 2 (it was an 'internal error', exit 1)."""
    from click.testing import CliRunner

    from drgsim.cli import main

    d = tmp_path / "cases"
    d.mkdir()
    pd.DataFrame({"case_id": [1, 2]}).to_parquet(d / "a.parquet")
    (d / bad).write_bytes(b"PAR1 truncated")
    for cmd in (["calibrate", str(d), "-o", str(tmp_path / "w.parquet")],
                ["simulate", str(d), "-o", str(tmp_path / "sim")]):
        r = CliRunner().invoke(main, cmd)
        assert r.exit_code == 2, r.output
        assert f"error: {d / bad}: " in r.output and "internal error" not in r.output


def test_read_table_reads_a_gb18030_csv_as_group_does(tmp_path):
    """A GB18030 CSV (as 'drgsim synth --format csv --encoding gb18030' writes) came back as
    bytes and simulate then failed with an internal UnicodeDecodeError."""
    from drgsim.errors import RecordsError
    from drgsim.settlement.simulate import read_table

    d = tmp_path / "h"
    d.mkdir()
    (d / "a.csv").write_bytes("hospital_id,level,name\nH1,3,北京医院\n".encode("gb18030"))
    df, _ = read_table(d / "a.csv")
    assert df["name"].tolist() == ["北京医院"]
    df, _ = read_table(d)
    assert df["name"].tolist() == ["北京医院"]
    (d / "b.csv").write_bytes("hospital_id,level,name\nH2,2,协和\n".encode())
    with pytest.raises(RecordsError, match="different encodings"):
        read_table(d)
