"""DIP catalogue building: keys, thresholds, folds, scores, tables (hand-worked examples)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drgsim import dip
from drgsim.calibrate import trim_mask, year_case_weights
from drgsim.dip import keys as K
from drgsim.dip.build import DipPolicyError, build, resolve_params
from drgsim.dip.tables import CatalogueError

# treatment types of the codes used below (checked in test_treatment_types)
SURG_A, SURG_B = "51.2300", "51.2200"  # on the operating-room list: surgery
DIAG = "87.5400"  # imaging: diagnostic
THER = "99.2500"  # chemotherapy injection: therapeutic
ERCP = "51.1000"  # diagnostic procedure on the biliary tract, not an OR procedure

NO_BASE = {"base_packets": "none"}


def hist(rows: list[tuple], share: float | None = 0.3) -> pd.DataFrame:
    """rows: (principal dx, procedures '|'-joined, cost yuan, year[, hospital])."""
    out = []
    for i, r in enumerate(rows):
        dx, px, cost, year = r[:4]
        hosp = r[4] if len(r) > 4 else "H1"
        out.append({"case_id": f"c{i:05d}", "sex": 1, "age_years": 50, "diagnoses": dx,
                    "procedures": px, "total_cost": float(cost),
                    "discharge_date": f"{year}-06-01", "hospital_id": hosp})
    df = pd.DataFrame(out)
    if share is not None:
        df["patient_share"] = df["total_cost"] * share
    return df


def policy(**kw) -> dict:
    return {"dip": {**NO_BASE, **kw}}


def n_of(cat, code: str) -> int:
    p = cat.packets.set_index("packet")
    return int(p.at[code, "n_cases"]) if code in p.index else 0


# ---------------------------------------------------------------- keys

def test_treatment_types():
    t, matched = K.code_types(np.array([SURG_A, SURG_B, DIAG, THER, ERCP, "xyz"], object))
    assert t.tolist() == [3, 3, 1, 2, 1, 2]  # xyz: no rule -> therapeutic, and says so
    assert matched.tolist() == [True] * 5 + [False]
    tt = K.treatment_types("chs_drg_11")
    assert tt[SURG_A] == 3 and tt[DIAG] == 1
    assert set(tt.values()) <= {1, 2, 3}


def test_treatment_table_errors(tmp_path):
    f = tmp_path / "tt.csv"
    f.write_text("rule,code_from,code_to,type,note\nrange,01.10,01.19,X,bad\n"
                 "range,02.00,01.00,T,reversed\n", encoding="utf-8")
    with pytest.raises(K.TreatmentTableError) as e:
        K.read_treatment_rules(f)
    msgs = [str(p) for p in e.value.problems]
    assert msgs[0] == f"{f}:2: type: 'X' is not one of C, D, T, S"
    assert msgs[1].startswith(f"{f}:3: code_to: ")
    # checked before any work: the history is not even read
    with pytest.raises(K.TreatmentTableError):
        build(tmp_path / "no-such-history.parquet", treatment_table=f)
    with pytest.raises(CatalogueError, match="no-base.csv"):
        build(tmp_path / "no-such-history.parquet", base_packets=tmp_path / "no-base.csv")


def test_dx_keys_and_dagger_asterisk():
    assert K.dx_key("K80.100x001") == "K80.1"
    assert K.dx_key("K80.100x001", "category") == "K80"
    assert K.dx_key("A18.001+M49.0*") == "A18.0"  # the part before '+' counts
    assert K.dx_key("A17+G01*") == "A17"  # ... also where it is shorter than the key
    assert K.dx_key("A17+G01*", "category") == "A17"
    got = K.dx_keys(pa.array(["A18.001+M49.0*|E11.900", "K80.100x001,I10.x00", "", None,
                              "A17+G01*|I10"]), principal=True)
    assert got.tolist() == ["A18.0", "K80.1", "", "", "A17"]


def test_v1_keys_order_free_and_deduplicated():
    px = pa.array([f"{SURG_A}|{SURG_B}", f"{SURG_B}|{SURG_A}|{SURG_B}", SURG_A, "", DIAG])
    pk = K.proc_keys(px, "1.0")
    assert pk.codes_of(0) == [SURG_B, SURG_A] == pk.codes_of(1)
    assert pk.set_id[0] == pk.set_id[1] != pk.set_id[2]
    assert pk.set_id[3] == -1  # no procedure: conservative
    assert pk.treatment.tolist() == [3, 3, 3, 0, 1]
    # two sets of the same size ending in the same code are still two sets
    pk2 = K.proc_keys(pa.array([f"{SURG_B}|{SURG_A}", f"{ERCP}|{SURG_A}", f"{SURG_A}|{ERCP}"]))
    assert pk2.set_id[0] != pk2.set_id[1] == pk2.set_id[2]


def test_v2_main_and_related_by_estimated_cost_share():
    # relative procedure costs from history: SURG_A alone 10000, DIAG alone 500, THER alone 3000
    px = pa.array([SURG_A, DIAG, THER,
                   f"{SURG_A}|{DIAG}|{THER}",  # shares 10000/13500, 500/13500, 3000/13500
                   f"{SURG_A}|{DIAG}",  # DIAG share 500/10500 = 4.8% < 10%: main alone
                   f"{THER}|{SURG_A}"])  # main = the first listed: THER; SURG_A 77% related
    cost = np.array([10000.0, 500.0, 3000.0, 13000.0, 10400.0, 13000.0])
    pk = K.proc_keys(px, "2.0", cost=cost, related_cost_share=0.10)
    assert pk.codes_of(3) == sorted([SURG_A, THER])
    assert pk.codes_of(4) == [SURG_A]
    assert pk.codes_of(5) == sorted([SURG_A, THER])
    v1 = K.proc_keys(px, "1.0")
    assert v1.codes_of(3) == sorted([SURG_A, DIAG, THER]) and v1.codes_of(4) == sorted([SURG_A, DIAG])
    # the share rule: a related procedure at 4.8% joins when the threshold is 4%
    pk4 = K.proc_keys(px, "2.0", cost=cost, related_cost_share=0.04)
    assert pk4.codes_of(4) == sorted([SURG_A, DIAG])


def test_procedure_costs_estimate_and_fallback():
    # codes 0, 1, 2; code 2 never alone: its equal part of the cases listing it
    row = np.array([0, 1, 2, 2, 3, 3, 3])
    code = np.array([0, 1, 0, 2, 0, 1, 2])
    cost = np.array([900.0, 300.0, 1200.0, 1500.0])
    est = K.procedure_costs(4, row, code, 3, cost, np.ones(4, bool))
    assert est[0] == 900.0 and est[1] == 300.0  # the mean cost of its cases alone
    assert est[2] == pytest.approx((1200 / 2 + 1500 / 3) / 2)  # 550: equal parts, averaged
    # unusable cases (failed checks, out of years) teach nothing
    est2 = K.procedure_costs(4, row, code, 3, cost, np.array([False, True, True, True]))
    assert est2[0] == pytest.approx((1200 / 2 + 1500 / 3) / 2)


def test_v2_related_tie_takes_the_smaller_code():
    # DIAG and ERCP cost the same (500 alone each): the related one is the smaller code
    px = pa.array([SURG_A, DIAG, ERCP, f"{SURG_A}|{ERCP}|{DIAG}"])
    cost = np.array([2000.0, 500.0, 500.0, 3000.0])
    pk = K.proc_keys(px, "2.0", cost=cost)
    assert pk.codes_of(3) == sorted([SURG_A, min(DIAG, ERCP)])


def test_v1_vs_v2_packets_in_a_build():
    rows = [("K80.100", f"{SURG_A}|{DIAG}", 10400, 2023)] * 3 + [("K80.100", SURG_A, 10000, 2023)] * 3
    rows += [("K80.100", DIAG, 500, 2023)] * 3
    c1, _ = build(hist(rows), policy(core_threshold=3))
    c2, _ = build(hist(rows), policy(core_threshold=3, version="2.0"))
    assert set(c1.packets["packet"]) == {f"K80.1/{SURG_A}+{DIAG}".replace(
        f"{SURG_A}+{DIAG}", "+".join(sorted([SURG_A, DIAG]))), f"K80.1/{SURG_A}", f"K80.1/{DIAG}"}
    # 2.0: DIAG carries 4.8% of the estimated cost: the case keys by its main procedure
    assert n_of(c2, f"K80.1/{SURG_A}") == 6 and c2.meta["version"] == "2.0"


# ---------------------------------------------------------------- thresholds and folds

@pytest.mark.parametrize("n,core", [(14, False), (15, True), (16, True)])
def test_core_threshold_edges(n, core):
    rows = [("K80.100", SURG_A, 10000, 2023)] * n + [("J18.000", "", 5000, 2023)] * 20
    cat, a = build(hist(rows), policy(core_threshold=15, comprehensive_min_cases=10))
    code = f"K80.1/{SURG_A}"
    assert (code in set(cat.packets["packet"])) == core
    if core:
        assert n_of(cat, code) == n
    else:  # 14 cases: folded into their category × surgery
        assert n_of(cat, "Z/K80/S") == 14
        assert cat.packets.set_index("packet").at["Z/K80/S", "fold"] == "category"
    assert (a["packet"] == ("J18.0")).sum() == 20


def test_folding_category_prefix_chapter():
    rows = (
        [("K80.100", "", 1000, 2023)] * 3 + [("K80.200", "", 1000, 2023)] * 3  # K80: 6 -> category
        + [("K80.100", SURG_A, 9000, 2023)] * 2  # K80 × surgery: 2 -> prefix K8 × S (with K81)
        + [("K81.000", SURG_B, 9000, 2023)] * 3  # K8 × S: 5 -> prefix
        + [("K81.000", "", 1000, 2023)] * 2 + [("K82.000", "", 1000, 2023)] * 2  # K8 × C: 4
        + [("J18.000", "", 1000, 2023)]  # J18 alone: chapter X (CH10) × C
        + [("K83.000", THER, 1000, 2023)]  # K8 × T: 1 -> chapter CH11 × T
    )
    cat, a = build(hist(rows), policy(core_threshold=15, comprehensive_min_cases=5))
    p = cat.packets.set_index("packet")
    assert p.at["Z/K80/C", "n_cases"] == 6 and p.at["Z/K80/C", "fold"] == "category"
    assert p.at["Z/K8/S", "n_cases"] == 5 and p.at["Z/K8/S", "fold"] == "prefix"
    # K81 × C (2) and K82 × C (2) are 4 at prefix K8 < 5: to chapter 11 × C
    assert p.at["Z/CH11/C", "n_cases"] == 4 and p.at["Z/CH11/C", "fold"] == "chapter"
    assert p.at["Z/CH10/C", "n_cases"] == 1
    assert p.at["Z/CH11/T", "n_cases"] == 1 and p.at["Z/CH11/T", "treatment_type"] == 2
    assert int(p["n_cases"].sum()) == len(rows)
    assert (p["kind"] == "comprehensive").all()


def test_short_and_odd_keys_never_collide(tmp_path):
    # "A1" (a malformed 2-character code) skips the category fold; its prefix fold is A1's,
    # shared with A10/A11 but one packet, not two with the same code
    rows = [("A1", "", 1000, 2023)] * 4 + [("A10.000", "", 1000, 2023)] * 2
    rows += [("A11.000", "", 1000, 2023)] * 2 + [("", "", 1000, 2023)] * 1
    rows += [("|A10.000", "", 1000, 2023)] * 2  # an empty first piece: no key, chapter fold
    rows += [(" A10.000", "", 1000, 2023)] * 4  # a stray space is part of the code, kept as is
    cat, a = build(hist(rows), policy(core_threshold=15, comprehensive_min_cases=4))
    p = cat.packets.set_index("packet")
    assert p.at["Z/A1/C", "n_cases"] == 8 and p.at["Z/A1/C", "fold"] == "prefix"
    assert p.at["Z/CH00/C", "n_cases"] == 2  # the empty principal (the empty field fails checks)
    assert (a["status"] == "check_failed").sum() == 1
    assert p.at["Z/ A1/C", "n_cases"] == 4
    dip.write_catalogue(cat, tmp_path / "c")  # and the folder validates as written
    assert dip.read_catalogue(tmp_path / "c").packets["packet"].tolist() == sorted(p.index)


# ---------------------------------------------------------------- scores

def test_year_weighting_hand_worked():
    # each year counts by its weight regardless of its volume: a case weighs w_y / n_y with
    # n_y the region's cases of year y. 2021: K80.1 1000; 2022: K80.1 2000; 2023: K80.1 3000
    # and 5000, J18.0 6600 -> weights 0.1, 0.2, 0.7/3 (x3)
    rows = [("K80.100", "", 1000, 2021), ("K80.100", "", 2000, 2022),
            ("K80.100", "", 3000, 2023), ("K80.100", "", 5000, 2023),
            ("J18.000", "", 6600, 2023)]
    cat, _ = build(hist(rows), policy(core_threshold=1, trim={"rule": "none"}))
    p = cat.packets.set_index("packet")
    k80 = (0.1 * 1000 + 0.2 * 2000 + 0.7 / 3 * (3000 + 5000)) / (0.1 + 0.2 + 0.7 / 3 * 2)
    assert k80 == pytest.approx(3086.9565217391)  # the arithmetic, by hand
    assert p.at["K80.1", "mean_cost_fen"] == pytest.approx(k80 * 100, rel=1e-12)
    m_all = 0.1 * 1000 + 0.2 * 2000 + 0.7 * (3000 + 5000 + 6600) / 3  # weights sum to 1
    assert cat.meta["m_all_fen"] == pytest.approx(m_all * 100, rel=1e-12)
    assert p.at["K80.1", "rw"] == pytest.approx(k80 / m_all, rel=1e-12)
    assert p.at["K80.1", "score"] == round(k80 / m_all * 100, 4)
    assert cat.meta["years"] == [2021, 2022, 2023]
    w = year_case_weights(np.array([2021, 2023, 2023, 2020]), [2021, 2022, 2023], [0.1, 0.2, 0.7])
    assert w.tolist() == [0.1, 0.35, 0.35, 0.0]


def test_trimming_mean_plus_3sd():
    # 20 cases at 1000 and one at 100000: mean 5714.3, SD 21603 -> upper bound 70524: trimmed
    rows = [("K80.100", "", 1000, 2023)] * 20 + [("K80.100", "", 100000, 2023)]
    cat, _ = build(hist(rows), policy(core_threshold=15))
    p = cat.packets.set_index("packet")
    assert p.at["K80.1", "n_cases"] == 21 and p.at["K80.1", "n_trimmed"] == 20
    assert p.at["K80.1", "mean_cost_fen"] == pytest.approx(100000.0)
    assert p.at["K80.1", "cv"] == pytest.approx(0.0)
    cat2, _ = build(hist(rows), policy(core_threshold=15, score_scale=1000, trim={"k": 5}))
    assert cat2.packets.set_index("packet").at["K80.1", "n_trimmed"] == 21  # 5 SD keeps it


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(1, 60)), min_size=1, max_size=80),
       st.sampled_from(["percentile", "sd"]))
def test_trim_mask_matches_pandas(pairs, method):
    """The vectorised trimming is pandas' groupby quantile / std, case for case."""
    g = np.array([f"g{a}" for a, _ in pairs], dtype=object)
    c = np.array([float(b) for _, b in pairs])
    tp = {"method": method, "lower": 0.1, "upper": 0.9, "sd": 1.0}
    s = pd.Series(c).groupby(g)
    if method == "percentile":
        lo = s.transform(lambda x: x.quantile(0.1))
        hi = s.transform(lambda x: x.quantile(0.9))
    else:
        mu, sd = s.transform("mean"), s.transform("std").fillna(0.0)
        lo, hi = mu - sd, mu + sd
    want = ((pd.Series(c) >= lo) & (pd.Series(c) <= hi)).to_numpy()
    assert (trim_mask(g, c, tp) == want).all()


def test_trim_mask_hand_worked():
    # 1, 2, 3: mean 2, SD (ddof=1) 1 -> [1, 3] at one SD keeps all three (bounds inclusive)
    sd = {"method": "sd", "sd": 1.0}
    assert trim_mask(np.zeros(3, int), np.array([1.0, 2.0, 3.0]), sd).all()
    # one case: SD 0, kept; percentile 25-75 of 1..5 is [2, 4]
    assert trim_mask(np.zeros(1, int), np.array([7.0]), sd).all()
    pc = {"method": "percentile", "lower": 0.25, "upper": 0.75}
    got = trim_mask(np.array([0, 0, 0, 0, 0, 1]), np.array([5.0, 1, 3, 2, 4, 9]), pc)
    assert got.tolist() == [False, False, True, True, True, True]


def test_levels_pv_budget_and_ratio():
    # packet K80.1: level A (H1) 10 cases at 1000, level B (H2) 10 at 3000; one year
    rows = [("K80.100", "", 1000, 2023, "H1")] * 10 + [("K80.100", "", 3000, 2023, "H2")] * 10
    rows += [("K80.100", "", 2000, 2023, "H3")] * 3  # level B, but level B has 13 cases then
    hosp = pd.DataFrame({"hospital_id": ["H1", "H2", "H3"], "level": ["三级", "二级", "二级"]})
    cat, _ = build(hist(rows, share=0.25), policy(core_threshold=15, level_min_cases=10,
                                                  trim={"rule": "none"}), hospitals=hosp)
    lv = cat.levels.set_index("level")
    assert lv.at["三级", "mean_cost_fen"] == pytest.approx(100000.0)
    assert lv.at["二级", "mean_cost_fen"] == pytest.approx((30000 + 6000) / 13 * 100)
    assert lv.at["二级", "n_cases"] == 13
    # one packet only: every case scores 100 (RW 1); PV_b = cost / score in yuan
    total = 10 * 1000 + 10 * 3000 + 3 * 2000
    assert cat.meta["pv_budget"] == pytest.approx(total / (23 * 100.0), rel=1e-12)
    assert cat.meta["reimbursement_ratio"] == pytest.approx(0.75, rel=1e-12)
    cat2, _ = build(hist(rows, share=0.25), policy(core_threshold=15, level_min_cases=11),
                    hospitals=hosp)
    assert cat2.levels["level"].tolist() == ["二级"]  # 三级 has 10 < 11 cases: no row
    cat3, _ = build(hist(rows, share=None), policy(core_threshold=15))
    assert cat3.meta["reimbursement_ratio"] is None and "reimbursement_ratio unknown" in cat3.report


def test_pv_budget_weights_years():
    # 2022: two cases of 1000 (score 50 each: RW .5); 2023: one case of 3000 (score 150)
    rows = [("K80.100", "", 1000, 2022)] * 2 + [("K81.000", "", 3000, 2023)]
    cat, _ = build(hist(rows), policy(core_threshold=1, trim={"rule": "none"},
                                      year_weights=[0.3, 0.7]))
    p = cat.packets.set_index("packet")
    s1, s2 = p.at["K80.1", "score"], p.at["K81.0", "score"]
    want = (0.3 * 2000 + 0.7 * 3000) / (0.3 * 2 * s1 + 0.7 * s2)
    assert cat.meta["pv_budget"] == pytest.approx(want, rel=1e-12)


# ---------------------------------------------------------------- history years

def _years_hist(years: list[int]) -> pd.DataFrame:
    return hist([("K80.100", "", 1000 + 100 * i, y) for i, y in enumerate(years)
                 for _ in range(3)])


def test_history_with_every_year_has_no_years_note():
    cat, _ = build(_years_hist([2021, 2022, 2023]), policy(core_threshold=1), year=2024)
    assert cat.info.years_note == "" and "lacks" not in cat.report
    assert cat.meta["years"] == [2021, 2022, 2023]


def test_history_lacking_a_year_is_said_in_the_catalogue():
    # 2024 is built from 2021–2023 (1:2:7); the history has 2020, 2021, 2023: the build
    # takes the latest three before 2024 (2020, 2021, 2023), and says so
    cat, _ = build(_years_hist([2020, 2021, 2023]), policy(core_threshold=1), year=2024)
    note = ("the catalogue for 2024 is built from 2021–2023, but the history lacks 2022: "
            "built from 2020–2021, 2023 (history has 2020–2021, 2023)")
    assert cat.meta["years"] == [2020, 2021, 2023]
    assert cat.info.years_note == note and note in cat.info.notes
    assert note in cat.report.splitlines()
    # the default year (the one after the latest) is checked the same way
    dflt, _ = build(_years_hist([2021, 2023]), policy(core_threshold=1))
    assert dflt.info.years_note == ("the catalogue for 2024 is built from 2021–2023, but the "
                                    "history lacks 2022: built from 2021, 2023 (history has "
                                    "2021, 2023)")


def test_history_lacking_every_year_is_refused(tmp_path, monkeypatch):
    import importlib

    from drgsim.errors import RecordsError

    want = ("catalogue year 2030: it is built from the 3 years before it (2027–2029), but the "
            "history has 2021–2023: choose year 2024 (built from 2021–2023) or give the "
            "history of 2027–2029")
    h = _years_hist([2021, 2022, 2023])
    with pytest.raises(RecordsError) as e:
        build(h, policy(core_threshold=1), year=2030)
    assert str(e.value) == want
    f = tmp_path / "h.parquet"  # a parquet history: refused from its dates alone, same words
    h.to_parquet(f)

    def no_read(*a, **k):
        raise AssertionError("read the whole history before refusing")

    monkeypatch.setattr(importlib.import_module("drgsim.dip.build"), "read_history", no_read)
    with pytest.raises(RecordsError) as e:
        build(f, policy(core_threshold=1), year=2030)
    assert str(e.value) == want


def test_base_packets_and_no_levels(tmp_path):
    f = tmp_path / "base.csv"
    f.write_text("packet\nK80.1\nJ06.9\n", encoding="utf-8")
    rows = [("K80.100", "", 1000, 2023, "H1")] * 15 + [("K81.000", "", 1000, 2023, "H1")] * 15
    hosp = pd.DataFrame({"hospital_id": ["H1"], "level": ["一级"]})
    cat, a = build(hist(rows), policy(core_threshold=15, level_min_cases=1), hospitals=hosp,
                   base_packets=f)
    p = cat.packets.set_index("packet")
    assert p.at["K80.1", "base"] == 1 and p.at["K81.0", "base"] == 0
    assert cat.levels["packet"].tolist() == ["K81.0"]  # 同病同价: no level mean for a base packet
    assert set(a.loc[a["packet"] == "K80.1", "kind"]) == {"base"}
    assert "J06.9" in cat.report  # a listed packet that is not in this catalogue is named
    bad = tmp_path / "bad.csv"
    bad.write_text("packet\nK80.1/51.2300\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"bad.csv:2: packet: "):
        build(hist(rows), policy(), base_packets=bad)


def test_record_checks_exclude_rows_with_reasons():
    df = hist([("K80.100", "", 1000, 2023)] * 6)
    df["sex"] = [1, 0, 1, 1, 1, 1]
    df["age_years"] = pd.array([50, 50, None, 0, 0, 50], dtype="Int64")
    df["age_days"] = pd.array([None, None, None, None, 10, None], dtype="Int64")
    df.loc[5, "total_cost"] = -1.0
    cat, a = build(df, policy(core_threshold=1))
    assert a["status"].tolist() == ["ok", "check_failed", "check_failed", "check_failed",
                                    "check_failed", "negative_cost"]
    assert a["reason"].tolist() == ["", "sex", "age_years", "age_days", "birth_weight_g", ""]
    assert a["packet"].tolist() == ["K80.1", "", "", "", "", ""]
    assert int(cat.packets["n_cases"].sum()) == 1


def test_record_checks_agree_with_the_grouper():
    from drgsim.grouper import group
    from drgsim.synth import discharges

    t = discharges(3000, seed=3, dirty_rate=0.3)
    g = group(t)
    _, a = build(t, policy(core_threshold=1))
    drg_failed = np.asarray(g.column("status").to_pylist()) == "check_failed"
    assert drg_failed.any()
    assert ((a["status"] == "check_failed").to_numpy() == drg_failed).all()


def test_policy_refused_when_unknown_or_inconsistent():
    with pytest.raises(DipPolicyError, match="dip.core_treshold: unknown key"):
        resolve_params({"dip": {"core_treshold": 10}})
    with pytest.raises(DipPolicyError, match="proc_mode"):
        resolve_params({"version": "1.0", "proc_mode": "main_related"})
    with pytest.raises(DipPolicyError, match="score_scale"):
        resolve_params({"score_scale": 10})
    assert resolve_params({"outliers": {"low": 0.5}})["core_threshold"] == 15  # read elsewhere


# ---------------------------------------------------------------- every case one packet

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["K80.100", "K80.200", "K81.000", "J18.000",
                                           "A18.001+M49.0*", "C34.100", "Z51.100"]),
                          st.lists(st.sampled_from([SURG_A, SURG_B, DIAG, THER, ERCP]),
                                   max_size=3),
                          st.integers(-5, 20000), st.sampled_from([2021, 2022, 2023])),
                min_size=1, max_size=120),
       st.integers(1, 6), st.integers(1, 6), st.sampled_from(["1.0", "2.0"]),
       st.sampled_from([0.5, 1.0, 3.0]))
def test_every_case_exactly_one_packet(rows, thr, cmin, version, k):
    df = hist([(dx, "|".join(px), cost, y) for dx, px, cost, y in rows])
    if not (df["total_cost"] > 0).any():
        with pytest.raises(CatalogueError):
            build(df, policy(core_threshold=thr))
        return
    try:
        cat, a = build(df, policy(core_threshold=thr, comprehensive_min_cases=cmin,
                                  version=version, trim={"k": k}))
    except CatalogueError as e:  # the trim kept only zero costs: refused, not divided by 0
        assert "all-case mean cost is 0" in str(e)
        return
    ok = (a["status"] == "ok").to_numpy()
    assert len(a) == len(df) and (a["case_id"].to_numpy() == df["case_id"].to_numpy()).all()
    assert (a.loc[ok, "packet"].astype(str) != "").all()
    assert (a.loc[~ok, "packet"].astype(str) == "").all()
    codes = set(cat.packets["packet"])
    assert set(a.loc[ok, "packet"].astype(str)) <= codes
    counts = a.loc[ok, "packet"].astype(str).value_counts()
    p = cat.packets.set_index("packet")
    assert (p["n_cases"] == counts.reindex(p.index).fillna(0).astype(int)).all()
    assert int(p["n_cases"].sum()) == int(ok.sum())
    # a key with thr cases is core; a core packet has at least thr cases
    assert (p.loc[p["kind"] == "core", "n_cases"] >= thr).all()
    assert (p["n_trimmed"] <= p["n_cases"]).all() and (p["n_trimmed"] >= 1).all()


# ---------------------------------------------------------------- the folder

@pytest.fixture(scope="module")
def small_catalogue(tmp_path_factory):
    rows = [("K80.100", SURG_A, 10000 + i, 2023, "H1") for i in range(20)]
    rows += [("K80.100", "", 3000 + i, 2022, "H2") for i in range(20)]
    rows += [("J18.000", DIAG, 5000, 2023, "H1")] * 3
    hosp = pd.DataFrame({"hospital_id": ["H1", "H2"], "level": ["三级", "二级"]})
    cat, _ = build(hist(rows), policy(level_min_cases=5), hospitals=hosp)
    d = tmp_path_factory.mktemp("cat") / "catalogue"
    dip.write_catalogue(cat, d)
    return cat, d


def test_roundtrip(small_catalogue):
    cat, d = small_catalogue
    assert dip.validate_catalogue(d) == []
    back = dip.read_catalogue(d)
    pd.testing.assert_frame_equal(back.packets, cat.packets, check_dtype=False)
    pd.testing.assert_frame_equal(back.levels, cat.levels, check_dtype=False)
    assert back.meta["m_all_fen"] == cat.meta["m_all_fen"]
    assert back.meta["years"] == [2022, 2023]
    assert back.meta["year_weights"] == pytest.approx([0.2 / 0.9, 0.7 / 0.9], rel=1e-12)
    assert back.packet_index().get_indexer(["K80.1", "nope"]).tolist()[1] == -1
    assert "packets by kind" in (d / "report.txt").read_text(encoding="utf-8")


def _edit(src, dst, name, line_no, col, value):
    import shutil

    shutil.copytree(src, dst)
    (dst / "manifest.json").unlink()
    f = dst / name
    lines = f.read_text(encoding="utf-8").splitlines()
    head = lines[0].split(",")
    cells = lines[line_no - 1].split(",")
    cells[head.index(col)] = value
    lines[line_no - 1] = ",".join(cells)
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("name,line,col,value,msg", [
    ("packets.csv", 3, "score", "1.5", "packets.csv:3: score: 1.5 is not rw × 100"),
    ("packets.csv", 2, "kind", "odd", "packets.csv:2: kind: 'odd' is not core or comprehensive"),
    ("packets.csv", 2, "n_trimmed", "999", "packets.csv:2: n_trimmed: 999 is more than n_cases"),
    ("levels.csv", 2, "packet", "X99.9", "levels.csv:2: packet: 'X99.9' is not in packets.csv"),
    ("catalogue.csv", 3, "value", "3.0", "catalogue.csv:3: value: version: '3.0' is not 1.0"),
])
def test_validate_names_file_line_column(small_catalogue, tmp_path, name, line, col, value, msg):
    _, d = small_catalogue
    bad = tmp_path / "bad"
    _edit(d, bad, name, line, col, value)
    problems = [str(p) for p in dip.validate_catalogue(bad)]
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{bad / name.split(':')[0]}:{msg.split(':', 1)[1]}"), problems
    with pytest.raises(CatalogueError) as e:
        dip.read_catalogue(bad)
    assert "\n" not in str(e.value)  # one problem, one line


def test_validate_hand_edit_breaks_manifest(small_catalogue, tmp_path):
    import shutil

    _, d = small_catalogue
    shutil.copytree(d, tmp_path / "c")
    with open(tmp_path / "c" / "packets.csv", "a", encoding="utf-8") as fh:
        fh.write("\n")
    problems = [str(p) for p in dip.validate_catalogue(tmp_path / "c")]
    assert len(problems) == 1 and "manifest.json" in problems[0]


def test_cli_build_and_validate(tmp_path):
    from click.testing import CliRunner

    from drgsim.cli import main

    rows = [("K80.100", SURG_A, 10000 + i, 2023) for i in range(20)]
    h = tmp_path / "h.parquet"
    hist(rows).to_parquet(h)
    out = tmp_path / "cat"
    r = CliRunner().invoke(main, ["dip", "build", str(h), "-o", str(out), "--base-packets",
                                  "none"])
    assert r.exit_code == 0, r.output
    assert "packets by kind" in r.output and (out / "manifest.json").exists()
    r = CliRunner().invoke(main, ["dip", "validate", str(out)])
    assert r.exit_code == 0 and "OK" in r.output
    (out / "manifest.json").unlink()
    (out / "aux.csv").write_text("packet,oops\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["dip", "validate", str(out)])
    assert r.exit_code == 1 and f"{out / 'aux.csv'}:1: header must be" in r.output
    r = CliRunner().invoke(main, ["dip", "build", str(tmp_path / "h.parquet"), "-o",
                                  str(tmp_path / "c2"), "--base-packets", str(tmp_path / "no.csv")])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1


def test_lazy_exports():
    assert callable(dip.build) and dip.Catalogue is not None
    with pytest.raises(AttributeError):
        dip.nothing  # noqa: B018


# ---------------------------------------------------------------- byte kernels vs Python

_TEXT = st.text(alphabet=st.sampled_from(list("AK80.1x9+|,*中 ")), max_size=14)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), _TEXT), max_size=12), st.sampled_from(["subcategory",
                                                                             "category"]))
def test_dx_key_kernel_matches_python(fields, level):
    import re

    got = K.dx_keys(pa.array(fields, pa.string()), level, principal=True).tolist()
    want = [K.dx_key(re.split(r"[|,]", f or "")[0], level) for f in fields]
    assert got == want


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), _TEXT), max_size=12))
def test_split_codes_matches_python(fields):
    import re

    cl = K.split_codes(pa.array(fields, pa.string()))
    got = [(int(r), int(p), cl.vocab[i]) for r, p, i in zip(cl.row, cl.pos, cl.ids, strict=True)]
    want = [(r, p, c) for r, f in enumerate(fields) if f
            for p, c in enumerate(re.split(r"[|,]", f)) if c]
    assert got == want


def test_column_map_and_missing_columns():
    from drgsim.errors import MissingColumnError

    df = hist([("K80.100", "", 1000, 2023)] * 3).rename(columns={"total_cost": "fee",
                                                                  "discharge_date": "out_day"})
    cat, _ = build(df, policy(core_threshold=1), columns={"total_cost": "fee",
                                                           "discharge_date": "out_day"})
    assert cat.packets["mean_cost_fen"].tolist() == pytest.approx([100000.0], rel=1e-12)
    with pytest.raises(MissingColumnError, match="total_cost"):
        build(df, policy(core_threshold=1))
    with pytest.raises(MissingColumnError, match="'nope'"):
        build(df, policy(), columns={"total_cost": "nope"})
