"""--compare: agreement of our groups with the hospital's own, overall and per hospital."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import drgsim
from drgsim.cli import main
from drgsim.compare import compare_groups
from drgsim.errors import MissingColumnError

EXPORTS = Path(__file__).parent / "fixtures" / "exports"


@pytest.fixture(scope="module")
def grouped() -> pd.DataFrame:
    # the export's own DRG column (DRG编码) collides with ours and is kept as input_drg
    return drgsim.group(EXPORTS / "bingan_shouye_gbk.csv", column_map="bingan_shouye")


def test_agreement_numbers(grouped):
    a = compare_groups(grouped, "drg")
    assert a.column == "input_drg" and a.ours == "drg"
    assert a.rows == len(grouped) == 34
    moved = grouped["input_drg"] != grouped["drg"]
    assert a.equal == int((~moved).sum()) == 29
    assert a.share_equal == pytest.approx(29 / 34)
    # every disagreement is FR19 (theirs) -> our DRG, with the records' cost
    assert set(a.moves["theirs"]) == {"FR19"}
    assert a.moves["records"].sum() == 5
    cost = pd.to_numeric(grouped.loc[moved, "total_cost"]).sum()
    assert a.moves["cost"].sum() == pytest.approx(cost)
    assert a.cost_column == "total_cost"
    h = a.by_hospital.set_index("hospital")
    assert h["records"].sum() == 34 and h["equal"].sum() == 29
    assert "FR19 -> " in a.text() and "by hospital:" in a.text()
    assert a.to_dict()["share_equal"] == pytest.approx(29 / 34)


def test_missing_column_is_an_error(grouped):
    with pytest.raises(MissingColumnError, match="no column 'nope'"):
        compare_groups(grouped, "nope")


def test_cli_compare_prints_and_writes(tmp_path):
    out = tmp_path / "g.csv"
    r = CliRunner().invoke(main, ["group", str(EXPORTS / "settlement_list.xlsx"), "--map",
                                  "settlement_list", "--compare", "drg", "--flags", "-o", str(out),
                                  "--quiet"])
    assert r.exit_code == 0, r.output
    assert "29 of 34 records equal (85.29%)" in r.output
    assert (tmp_path / "g.compare.txt").read_text(encoding="utf-8").startswith("agreement of drg")
    moves = pd.read_csv(tmp_path / "g.compare_moves.csv")
    assert moves["records"].sum() == 5
    hosp = pd.read_csv(tmp_path / "g.compare_hospitals.csv")
    assert set(hosp["hospital"]) == {"H01", "H02", "H03"}
    byflag = pd.read_csv(tmp_path / "g.flags_by_flag.csv")
    assert "cc_excluded" in set(byflag["flag"])
    assert (tmp_path / "g.flags_by_hospital.csv").exists()
