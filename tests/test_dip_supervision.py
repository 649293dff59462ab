"""Supervision flags (DIP.md's last section): each flag on hand-worked cases at its boundary.

Every flag is computed only when asked and never changes the input (group, packet, payment).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from drgsim.dip import supervision as S
from drgsim.errors import MissingColumnError

D0 = dt.date(2024, 1, 1)


def _case(cid, patient="P0", hospital="H1", admit=0, los=3, cost=1000.0, dx="A01.000",
          drg="AA1", status="ok", mode=1, **extra):
    return {"case_id": cid, "patient_id": patient, "hospital_id": hospital,
            "admit_date": D0 + dt.timedelta(days=admit),
            "discharge_date": D0 + dt.timedelta(days=admit + los), "los_days": los,
            "total_cost": cost, "diagnoses": dx, "discharge_mode": mode, "drg": drg,
            "status": status, **extra}


def _flags(rows, params=None, **kw):
    df = pd.DataFrame(rows)
    cases, hosp = S.flags(df, kw.pop("group", "drg"), params, **kw)
    return cases.set_index("case_id") if "case_id" in cases else cases, hosp


def _only(flag: str) -> dict:
    return {"flags": [flag]}


# ---- readmission for the same condition --------------------------------------------------
def test_readmission_boundary_same_dx_key_same_hospital():
    rows = [
        _case(1, "P1", admit=0, los=5, dx="K80.100x001"),  # discharged day 5
        _case(2, "P1", admit=20, los=2, dx="K80.101|I10.x00"),  # gap 15: same key K80.1
        _case(3, "P2", admit=0, los=5, dx="K80.100"),
        _case(4, "P2", admit=21, los=2, dx="K80.100"),  # gap 16
        _case(5, "P3", admit=0, los=5, dx="K80.100"),
        _case(6, "P3", admit=8, los=2, dx="K80.200"),  # another key
        _case(7, "P4", admit=0, los=5, dx="K80.100"),
        _case(8, "P4", admit=5, los=2, dx="K80.1+M14.2*", hospital="H2"),  # other hospital
        _case(9, "P5", admit=0, los=5, dx="K80.100"),
        _case(10, "P5", admit=5, los=2, dx="K80.100"),  # gap 0
        _case(11, "P6", admit=0, los=5, dx="K80.100"),
        _case(12, "P6", admit=4, los=2, dx="K80.100"),  # overlapping stays: gap -1
    ]
    cases, hosp = _flags(rows, _only("readmission"))
    got = cases.index[cases.sv_readmission].tolist()
    assert got == [2, 10]
    assert cases.loc[2, "supervision_reasons"] == (
        "readmission: admitted 15 d after case 1 with the same diagnosis K80.1 at the same "
        "hospital (<= 15 d)")
    assert cases.loc[2, "supervision"] == "readmission"
    # another hospital counts when same_hospital is off; the window is a parameter
    cases, _ = _flags(rows, {"flags": ["readmission"],
                             "readmission": {"same_hospital": False, "days": 16}})
    assert cases.index[cases.sv_readmission].tolist() == [2, 4, 8, 10]
    # the category level joins K80.1 and K80.2
    cases, _ = _flags(rows, {"flags": ["readmission"], "dx_level": "category"})
    assert 6 in cases.index[cases.sv_readmission]
    assert hosp.set_index("hospital").loc["H1", "readmission"] == 2


def test_readmission_links_to_the_latest_earlier_case_of_the_same_key():
    rows = [_case(1, "P1", admit=0, los=2, dx="J18.000"),
            _case(2, "P1", admit=10, los=2, dx="I21.000"),  # other key in between
            _case(3, "P1", admit=16, los=2, dx="J18.001")]  # 14 d after case 1
    cases, _ = _flags(rows, _only("readmission"))
    assert cases.index[cases.sv_readmission].tolist() == [3]
    assert "after case 1 " in cases.loc[3, "supervision_reasons"]


# ---- split admissions ----------------------------------------------------------------------
def test_split_admission_boundary():
    rows = [
        _case(1, "P1", admit=0, los=5, dx="A01.000"),
        _case(2, "P1", admit=6, los=2, dx="B02.000"),  # gap 1, same hospital, any dx
        _case(3, "P2", admit=0, los=5),
        _case(4, "P2", admit=7, los=2),  # gap 2
        _case(5, "P3", admit=0, los=5),
        _case(6, "P3", admit=5, los=2, hospital="H2"),  # gap 0, other hospital
    ]
    cases, hosp = _flags(rows, _only("split"))
    assert cases.index[cases.sv_split].tolist() == [2]
    assert cases.loc[2, "supervision_reasons"] == (
        "split admission: admitted 1 d after case 1 left the same hospital (<= 1 d)")
    cases, _ = _flags(rows, {"flags": ["split"], "split": {"days": 2}})
    assert cases.index[cases.sv_split].tolist() == [2, 4]
    assert "readmission" not in hosp.columns  # a flag not asked for is not reported


# ---- low-threshold admissions ----------------------------------------------------------------
def test_low_cost_boundary_against_given_means():
    means = pd.DataFrame({"group": ["AA1"], "mean_cost": [1000.0], "mean_los": [5.0]})
    rows = [_case(1, cost=299.99), _case(2, cost=300.00), _case(3, cost=100.0, mode=5),
            _case(4, cost=100.0, status="check_failed"), _case(5, cost=100.0, drg="ZZ9")]
    cases, _ = _flags(rows, _only("low_cost"), means=means)
    assert cases.index[cases.sv_low_cost].tolist() == [1]  # 300.00 = 0.3 x 1000: not below
    assert cases.loc[1, "supervision_reasons"] == (
        "low-threshold admission: cost 299.99 < 0.3 x mean 1000.00 of AA1")
    # deaths are set aside by default, not when the list is empty; ZZ9 has no mean (1 case)
    cases, _ = _flags(rows, {"flags": ["low_cost"],
                             "low_cost": {"exclude_discharge_modes": [], "ratio": 0.5}},
                      means=means)
    assert cases.index[cases.sv_low_cost].tolist() == [1, 2, 3]


def test_low_cost_against_the_cases_own_means_needs_min_group_cases():
    costs = [100.0, 1000.0, 1000.0, 1000.0, 1900.0]  # mean 1000: 100 < 300
    rows = [_case(i + 1, patient=f"P{i}", cost=c) for i, c in enumerate(costs)]
    cases, _ = _flags(rows, _only("low_cost"))
    assert cases.index[cases.sv_low_cost].tolist() == [1]
    cases, _ = _flags(rows, {"flags": ["low_cost"], "min_group_cases": 6})
    assert not cases.sv_low_cost.any()


def test_means_from_weights_and_from_a_catalogue():
    weights = pd.DataFrame({"key": ["AA1", "AA", "all"], "level": ["drg", "adrg", "all"],
                            "mean_cost_fen": [100_000.0, 5.0, 7.0], "mean_los": [5.0, 1.0, 1.0]})
    m = S.means_from_table(weights)
    assert m.to_dict("records") == [{"group": "AA1", "mean_cost": 1000.0, "mean_los": 5.0}]
    cases, _ = _flags([_case(1, cost=299.99), _case(2, los=11)],
                      {"flags": ["low_cost", "long_stay"]}, means=m)
    assert cases.supervision.tolist() == ["low_cost", "long_stay"]
    packets = pd.DataFrame({"packet": ["K80.1", "Z/K80/S"], "mean_cost_fen": [250_000.0, 1.0]})
    assert S.means_from_table(packets).mean_cost.tolist() == [2500.0, 0.01]


# ---- over-long stays -----------------------------------------------------------------------
def test_long_stay_boundary():
    means = pd.DataFrame({"group": ["AA1"], "mean_cost": [1000.0], "mean_los": [5.0]})
    rows = [_case(1, los=10), _case(2, los=11), _case(3, los=40, status="ungroupable")]
    cases, _ = _flags(rows, _only("long_stay"), means=means)
    assert cases.index[cases.sv_long_stay].tolist() == [2]  # 10 = 2 x 5 is not above
    assert cases.loc[2, "supervision_reasons"] == "over-long stay: LOS 11 d > 2 x mean 5.0 d of AA1"
    cases, _ = _flags(rows, {"flags": ["long_stay"], "long_stay": {"factor": 1.9}}, means=means)
    assert cases.index[cases.sv_long_stay].tolist() == [1, 2]


# ---- upcoding signal -------------------------------------------------------------------------
def _upcoding_rows():
    # diagnosis K35.8: group LO (mean 1000) and HI (mean 2000); region mean score
    # (6 x 1000 + 2 x 2000) / 8 = 1250, so HI is higher-scored; region share 2/8 = 0.25.
    # H1: 2 of 4 in HI (0.5); H2: 0 of 4.
    rows, k = [], 0
    for h, groups in (("H1", ["HI", "HI", "LO", "LO"]), ("H2", ["LO"] * 4)):
        for g in groups:
            k += 1
            rows.append(_case(k, patient=f"P{k}", hospital=h, dx="K35.800", drg=g))
    means = pd.DataFrame({"group": ["LO", "HI"], "mean_cost": [1000.0, 2000.0]})
    return rows, means


def test_upcoding_boundary_is_strictly_above_the_margin():
    rows, means = _upcoding_rows()
    up = {"flags": ["upcoding"], "upcoding": {"margin": 0.25, "min_cases": 4}}
    cases, hosp = _flags(rows, up, means=means)
    assert not cases.sv_upcoding.any()  # 0.50 - 0.25 = 0.25: not above the margin
    up["upcoding"]["margin"] = 0.24
    cases, hosp = _flags(rows, up, means=means)
    assert cases.index[cases.sv_upcoding].tolist() == [1, 2]  # H1's higher-scored cases
    assert cases.loc[1, "supervision_reasons"] == (
        "upcoding signal: 50.0% of this hospital's K35.8 cases are in higher-scored groups "
        "vs 25.0% in the region (margin 24 points)")
    h = hosp.set_index("hospital")
    assert h.loc["H1", "upcoding_high_share"] == 0.5 and h.loc["H1", "upcoding_region_share"] == 0.25
    assert h.loc["H1", "upcoding_cells"] == 1 and bool(h.loc["H1", "upcoding_hospital"])
    assert not bool(h.loc["H2", "upcoding_hospital"]) and h.loc["H2", "upcoding"] == 0
    up["upcoding"]["min_cases"] = 5  # H1 has only 4 cases of K35.8
    cases, hosp = _flags(rows, up, means=means)
    assert not cases.sv_upcoding.any() and not hosp.upcoding_hospital.any()


def test_a_group_at_the_diagnosis_mean_is_not_higher_scored():
    # LO 1000, MID 1500, HI 2000; region mean of K35.8 = (2 x 1000 + 4 x 1500 + 2 x 2000) / 8
    # = 1500 = MID: only HI is higher-scored (region share 2/8); H1 codes MID only (share 0),
    # H2 codes LO, HI, LO, HI (share 0.5 > 0.25 + 0.2).
    rows = [_case(k, patient=f"P{k}", hospital=h, dx="K35.800", drg=g) for k, (h, g) in
            enumerate([("H1", "MID")] * 4 + [("H2", "LO"), ("H2", "HI")] * 2, start=1)]
    means = pd.DataFrame({"group": ["LO", "MID", "HI"], "mean_cost": [1000.0, 1500.0, 2000.0]})
    cases, hosp = _flags(rows, {"flags": ["upcoding"],
                                "upcoding": {"margin": 0.2, "min_cases": 4}}, means=means)
    assert cases.index[cases.sv_upcoding].tolist() == [6, 8]
    assert hosp.set_index("hospital").loc["H1", "upcoding_high_share"] == 0.0


def test_upcoding_on_dip_packets_uses_dip_status():
    rows, means = _upcoding_rows()
    for r in rows:
        r["packet"] = "K35.8/47.0100" if r["drg"] == "HI" else "K35.8"
        r["dip_status"] = "ok"
        r["status"] = "check_failed"  # the DRG status is not the DIP one
    means = means.assign(group=["K35.8", "K35.8/47.0100"])
    cases, _ = _flags(rows, {"flags": ["upcoding"], "upcoding": {"margin": 0.2, "min_cases": 4}},
                      group="packet", means=means)
    assert cases.index[cases.sv_upcoding].tolist() == [1, 2]
    assert "packet" in cases.columns


# ---- flags never change anything -------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40), st.integers(0, 12),
                          st.integers(1, 5000), st.sampled_from(["AA1", "BB1", "CC1"]),
                          st.sampled_from(["ok", "ok", "check_failed"])),
                min_size=1, max_size=40))
def test_flags_never_change_the_cases(rows):
    df = pd.DataFrame([_case(i, patient=f"P{p}", admit=a, los=los, cost=float(c), drg=g,
                             status=s, points=float(c) / 10, payment_yuan=float(c) * 0.9)
                       for i, (p, a, los, c, g, s) in enumerate(rows)])
    df.index = df.index * 3 + 7  # an index of its own
    before = df.copy(deep=True)
    cases, hosp = S.flags(df, "drg", {"min_group_cases": 1,
                                      "upcoding": {"min_cases": 1, "margin": 0.0}})
    pd.testing.assert_frame_equal(df, before)
    assert cases.index.equals(df.index)
    assert (cases["drg"] == df["drg"]).all()
    assert not {"points", "payment_yuan", "status"} & set(cases.columns)
    listed = cases.supervision.str.len() > 0
    any_flag = cases[[f"sv_{f}" for f in S.FLAGS]].any(axis=1)
    assert (listed == any_flag).all()
    assert hosp.cases.sum() == len(df) and (hosp.flagged == hosp.hospital.map(
        cases.groupby("hospital_id")["supervision"].apply(lambda s: (s != "").sum()))).all()


def test_linking_matches_pricing_readmission_links():
    from drgsim.pricing.cases import prepare_cases
    from drgsim.pricing.core import link_readmissions

    rng = np.random.default_rng(5)
    n = 400
    df = pd.DataFrame({
        "case_id": rng.permutation(n) + 1000,
        "patient_id": rng.integers(0, 60, n).astype(str),
        "hospital_id": rng.choice(["H1", "H2"], n),
        "fund": "employee",
        "admit_date": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 120, n), "D"),
        "los_days": rng.integers(0, 10, n),
        "total_cost": 1000.0,
        "drg": rng.choice(["AA1", "BB1"], n),
        "status": "ok",
    })
    df["discharge_date"] = df.admit_date + pd.to_timedelta(df.los_days, "D")
    cases = prepare_cases(df)
    want = link_readmissions(cases, 15, "drg", np.ones(n, bool))
    hosp, _ = S._codes(df.hospital_id)
    grp = pd.factorize(df.drg)[0]
    adm, _ = S._days(df.admit_date)
    dis, _ = S._days(df.discharge_date)
    prev = S.link_previous(S._codes(df.patient_id)[0], hosp, grp, adm, np.ones(n, bool),
                           S._tie(df.case_id.astype(str).to_numpy(dtype=object)))
    gap = adm - dis[np.maximum(prev, 0)]
    got = (prev >= 0) & (gap >= 0) & (gap <= 15)
    assert want.any() and np.array_equal(got, want)


# ---- parameters and inputs -------------------------------------------------------------------
def test_parameters_default_and_refuse_what_they_cannot_honour():
    p = S.resolve_params(None)
    assert p["readmission"]["days"] == 15 and p["low_cost"]["ratio"] == 0.3
    assert S.params_from_policy({"method": "drg"}) == p  # a policy without the section
    from drgsim.policy import load_policy

    assert S.params_from_policy(load_policy()) == p
    assert S.flags(pd.DataFrame([_case(1)]), "drg", load_policy())[0].supervision.tolist() == [""]
    assert S.params_from_policy({"supervision": {"split": {"days": 2}}})["split"]["days"] == 2
    for bad, where in (({"readmission": {"dayz": 3}}, "supervision.readmission.dayz"),
                       ({"low_cost": {"ratio": 0.0}}, "supervision.low_cost.ratio"),
                       ({"low_cost": {"ratio": 1.5}}, "supervision.low_cost.ratio"),
                       ({"split": {"days": -1}}, "supervision.split.days"),
                       ({"split": {"days": 1.5}}, "supervision.split.days"),
                       ({"flags": ["readmission", "typo"]}, "supervision.flags"),
                       ({"upcoding": 3}, "supervision.upcoding"),
                       ({"readmission": {"same_hospital": "yes"}},
                        "supervision.readmission.same_hospital")):
        with pytest.raises(S.SupervisionError) as e:
            S.resolve_params(bad)
        assert where in str(e.value) and "\n" not in str(e.value)


def test_a_missing_column_is_named_not_skipped():
    df = pd.DataFrame([_case(1)]).drop(columns=["patient_id"])
    with pytest.raises(MissingColumnError, match=r"patient_id \(for readmission, split\)"):
        S.flags(df, "drg")
    cases, _ = S.flags(df, "drg", {"flags": ["low_cost", "long_stay", "upcoding"]})
    assert len(cases) == 1
    with pytest.raises(MissingColumnError, match="packet"):
        S.flags(pd.DataFrame([_case(1)]), "packet")


def test_cli_group_supervision_writes_sidecars(tmp_path):
    import drgsim.synth as syn
    from drgsim.cli import main

    t = syn.discharges(3_000, seed=4, hospitals=5, years=(2024,))
    src = tmp_path / "in.parquet"
    import pyarrow.parquet as pq

    pq.write_table(t, src)
    out = tmp_path / "g.csv"
    res = CliRunner().invoke(main, ["group", str(src), "-o", str(out), "--supervision",
                                    "--quiet"])
    assert res.exit_code == 0, res.output
    assert "supervision flags by drg" in res.output
    by_case = pd.read_csv(tmp_path / "g.supervision_cases.csv")
    by_hosp = pd.read_csv(tmp_path / "g.supervision_by_hospital.csv")
    assert len(by_case) > 0 and (by_case.supervision.str.len() > 0).all()
    assert by_hosp.cases.sum() == 3_000
    grouped = pd.read_csv(out)
    assert not any(c.startswith("sv_") for c in grouped.columns)  # the output is untouched
    # a run without --supervision drops the earlier run's sidecars
    res = CliRunner().invoke(main, ["group", str(src), "-o", str(out), "--quiet"])
    assert res.exit_code == 0 and not (tmp_path / "g.supervision_cases.csv").exists()
    # a column the flags read is checked before any work, in one line
    pq.write_table(t.drop_columns(["patient_id"]), tmp_path / "nopat.parquet")
    res = CliRunner().invoke(main, ["group", str(tmp_path / "nopat.parquet"), "-o",
                                    str(tmp_path / "h.csv"), "--supervision", "--quiet"])
    assert res.exit_code != 0 and "patient_id" in res.output
    assert not (tmp_path / "h.csv").exists()
