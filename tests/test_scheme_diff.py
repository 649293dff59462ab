"""scheme diff: chs_drg_11 -> beijing_2022 lists the differences the Beijing README names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from drgsim.cli import main
from drgsim.scheme.diff import diff_records, diff_schemes


@pytest.fixture(scope="module")
def bj():
    return diff_schemes("chs_drg_11", "beijing_2022")


def test_beijing_differences_named_in_its_readme(bj):
    hl = "\n".join(bj.highlights)
    # several rules per ADRG: AH1, IB1, WB1, WR1
    assert "several rules per ADRG: AH1 (3 rules), IB1 (2 rules), WB1 (2 rules), WR1 (2 rules)" in hl
    # secondary-diagnosis lists (dx2_match = secondary): AH1_1, WB1_2, WR1_2, OR1
    for rid in ("AH1_1", "WB1_2", "WR1_2", "OR1"):
        assert rid in hl
    # LOS-split DRGs and ADRGs without an unconditional DRG (RC1, RC2, RE1)
    assert "LOS-split DRGs" in hl and "RC12" in hl
    assert "ADRGs without an unconditional DRG (a record can get the ADRG code as DRG): RC1, RC2, RE1" in hl
    # DRG suffixes beyond 1/3/5/9, age-bounded DRGs
    for d in ("CD1D", "DC2D", "IT2B", "IT2C"):
        assert d in hl
    t = bj.table()
    row = t[(t.area == "adrg") & (t.key == "AH1")].iloc[0]
    assert row.change == "changed" and "rules: 1 -> 3" in row.detail
    assert ((t.area == "drg") & (t.key == "RC12") & (t.change == "added")).any()
    assert "los_days_min" in t[(t.area == "drg") & (t.key == "RC12")].iloc[0].detail


def test_code_list_cc_and_exclusion_changes(bj):
    t = bj.table()
    assert set(t.area) >= {"adrg", "adrg_codes", "drg", "cc", "cc_exclusion", "mdc_dx_list",
                           "or_procedure"}
    assert ((t.area == "cc") & (t.key == "J68.200") & (t.change == "changed")).any()
    assert ((t.area == "adrg_codes") & (t.key == "AH1.proc")).any()
    c = bj.counts().set_index("area")
    assert c.loc["drg"].sum() > 0
    text = bj.text()
    assert text.startswith("scheme diff: CHS-DRG 1.1") and "highlights:" in text


def test_identical_schemes_have_no_difference():
    d = diff_schemes("chs_drg_11", "chs_drg_11")
    assert d.changes == [] and "identical" in d.text()


def test_records_moves():
    src = Path(__file__).parent / "fixtures" / "exports" / "cases_utf8.csv"
    r = diff_records("chs_drg_11", "beijing_2022", src)
    df = pd.read_csv(src, dtype=str, keep_default_na=False)
    assert r.rows == len(df)
    assert r.changed_drg == r.moves["records"].sum() > 0
    assert "top moves" in r.text()


def test_cli_scheme_diff(tmp_path):
    out = tmp_path / "d.csv"
    src = Path(__file__).parent / "fixtures" / "exports" / "cases_utf8.csv"
    r = CliRunner().invoke(main, ["scheme", "diff", "chs_drg_11", "beijing_2022", "-o", str(out),
                                  "--records", str(src)])
    assert r.exit_code == 0, r.output
    assert "several rules per ADRG" in r.output and "top moves" in r.output
    t = pd.read_csv(out)
    assert list(t.columns) == ["area", "key", "change", "detail"] and len(t) > 100
    assert "Example:" in CliRunner().invoke(main, ["scheme", "diff", "--help"]).output
