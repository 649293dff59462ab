"""Malformed scheme tables fail on load, naming file, line and column.

Each case below breaks one thing in a copy of the valid ``mini`` fixture scheme and states
the words of the error it must produce.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from drgsim.errors import SchemeError
from drgsim.scheme.tables import load_tables

MINI = Path(__file__).parent / "fixtures" / "schemes" / "mini"

# (id, file, line number to replace (1-based) or None to append, new line or None to delete
#  the file, expected message)
BROKEN = [
    ("missing_file", "drg.csv", 0, None, "drg.csv: required table missing"),
    ("missing_key_column", "adrg.csv", 1,
     "rule_id,adrg,mdc,kind,name_zh,dx_match,dx2_match,proc_match,proc2_match,or_proc,"
     "proc_groups,has_proc,age_days_required,weight_required,los_days_min,los_days_max",
     "adrg.csv:1: order: required column is missing"),
    ("unknown_column", "drg.csv", 1, "drg,adrg,order,severity,name_zh,cc_rule,dept_min",
     "drg.csv:1: dept_min: unknown column"),
    ("bad_enum", "adrg.csv", 5, "BR1,BR1,B,2,medical,脑病,primary,,,,,,,,,,",
     "adrg.csv:5: dx_match: 'primary' is not one of principal, any, secondary"),
    ("bad_cc_level", "cc.csv", 2, "J18.900,mcc,7", "cc.csv:2: level: 'mcc' is not one of MCC, CC"),
    ("bad_integer", "drg.csv", 3, "ZZ19,ZZ1,first,9,多发严重创伤,,",
     "drg.csv:3: order: 'first' is not an integer"),
    ("bad_flag", "mdc.csv", 2, "A,MDCA,1,先期分组,,yes,,,,,0,any_proc_or",
     "mdc.csv:2: main_proc_or: 'yes' is not one of 0, 1"),
    ("bad_proc_groups", "adrg.csv", 6, "FA1,FA1,F,1,surgical,心脏手术,,,,,,1&&2,,,,,",
     "adrg.csv:6: proc_groups: '1&&2' is not"),
    ("unknown_group_label", "adrg.csv", 6, "FA1,FA1,F,1,surgical,心脏手术,,,,,,1&4,,,,,",
     "adrg.csv:6: proc_groups: label(s) 4 name no proc_group"),
    ("dangling_adrg", "drg.csv", None, "XX19,XX1,1,9,无,,", "adrg: ADRG 'XX1' is not in adrg.csv"),
    ("duplicate_drg", "drg.csv", None, "BB15,BB1,3,5,重复,,",
     "drg.csv:14: drg: duplicate key 'BB15' (first at line 5)"),
    ("dangling_mdc", "adrg.csv", None, "QR1,QR1,Q,1,medical,血液,principal,,,,,,,,,,",
     "adrg.csv:10: mdc: MDC 'Q' is not in mdc.csv"),
    ("dangling_rule", "adrg_codes.csv", None, "ZZ9,dx,S01.000,",
     "adrg_codes.csv:14: rule_id: rule 'ZZ9' is not in adrg.csv"),
    ("duplicate_code", "adrg_codes.csv", None, "BR1,dx,G40.900,",
     "adrg_codes.csv:14: rule_id,list,code: duplicate key 'BR1/dx/G40.900' (first at line 5)"),
    ("unused_list", "adrg_codes.csv", None, "ZZ1,dx,S01.000,",
     "adrg.csv:3: dx_match: empty, but adrg_codes.csv lists 1 dx codes for rule ZZ1"),
    ("empty_list", "adrg_codes.csv", 13, "FU1,proc,36.0600,",
     "adrg.csv:9: dx_match: tests list 'dx' but adrg_codes.csv has no dx codes for rule FU1"),
    ("min_above_max", "mdc.csv", 5, "F,MDCF,4,循环系统,principal,0,,90,10,,1,any_proc_or",
     "mdc.csv:5: age_years_min: 90 exceeds age_years_max 10"),
    ("ragged_row", "cc.csv", 3, "E11.900,CC", "cc.csv:3: 2 fields where the header has 3"),
    ("empty_key", "cc_exclusion.csv", 2, ",7", "cc_exclusion.csv:2: code: must not be empty"),
    ("mdc_order", "scheme.csv", 5, "mdc_order,ABZF",
     "scheme.csv: mdc_order: 'ABZF' disagrees with mdc.csv order ('AZBF')"),
    ("repeated_rule_order", "adrg.csv", 5, "BR1,BR1,B,1,medical,脑病,principal,,,,,,,,,,",
     "adrg.csv:5: order: order 1 repeated in MDC B (line 4)"),
    ("unknown_table", "weights.csv", None, "drg,rw", "weights.csv: unknown table"),
    # integers beyond what the compiled int64 arrays hold beside their sentinels
    ("int_20_digits", "adrg.csv", 2, "AA1,AA1,A,1,surgical,心脏移植,,,main,,,,,,,,"
     "99999999999999999999", "adrg.csv:2: los_days_max: 99999999999999999999 is out of range"),
    ("int_2_pow_62", "drg.csv", 2, "AA19,AA1,1,9,心脏移植,,4611686018427387904",
     "drg.csv:2: los_days_min: 4611686018427387904 is out of range"),
    ("int_negative_huge", "mdc.csv", 2, "A,MDCA,1,先期分组,,1,,-9223372036854775808,,,0,any_proc_or",
     "mdc.csv:2: age_years_min: -9223372036854775808 is out of range"),
    ("int_order_5000_digits", "drg.csv", 2, "AA19,AA1," + "9" * 5000 + ",9,心脏移植,,",
     "drg.csv:2: order: 999999999999...(5000 digits) is out of range"),
]


def _break(tmp_path: Path, file: str, line: int | None, new: str | None) -> Path:
    folder = tmp_path / "broken"
    shutil.copytree(MINI, folder)
    path = folder / file
    if new is None:
        path.unlink()
    elif line is None:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(new + "\n")
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        lines[line - 1] = new
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_mini_fixture_is_valid():
    load_tables(MINI)


@pytest.mark.parametrize("case,file,line,new,message", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_tables_are_rejected_with_file_line_column(tmp_path, case, file, line, new, message):
    folder = _break(tmp_path, file, line, new)
    with pytest.raises(SchemeError) as err:
        load_tables(folder)
    texts = [str(p) for p in err.value.problems]
    assert any(message in t for t in texts), "\n".join(texts)


def test_every_problem_is_reported_not_only_the_first(tmp_path):
    folder = _break(tmp_path, "cc.csv", 2, "J18.900,mcc,7")
    with (folder / "drg.csv").open("a", encoding="utf-8") as fh:
        fh.write("BB15,BB1,3,5,重复,,\n")
    with pytest.raises(SchemeError) as err:
        load_tables(folder)
    assert len(err.value.problems) >= 2


def test_codes_are_data_never_rejected(tmp_path):
    """Odd but legal codes (lower case x, leading space, dagger forms) load byte for byte."""
    folder = _break(tmp_path, "cc.csv", None, " B06.801+J17.1*,CC,999")
    st = load_tables(folder)
    assert " B06.801+J17.1*" in st["cc.csv"].get("code")


def test_cli_validate_reports_and_exits_nonzero(tmp_path):
    from drgsim.cli import main

    folder = _break(tmp_path, "cc.csv", 2, "J18.900,mcc,7")
    res = CliRunner().invoke(main, ["scheme", "validate", str(folder)])
    assert res.exit_code == 1
    assert "cc.csv:2: level: 'mcc' is not one of MCC, CC" in res.output
    ok = CliRunner().invoke(main, ["scheme", "validate", str(MINI)])
    assert ok.exit_code == 0 and "OK" in ok.output


def test_group_with_broken_scheme_fails_before_grouping(tmp_path):
    import pandas as pd

    import drgsim

    folder = _break(tmp_path, "cc.csv", 2, "J18.900,mcc,7")
    df = pd.DataFrame({"case_id": ["a"], "sex": [1], "age_years": [3], "diagnoses": ["I50.900"]})
    with pytest.raises(SchemeError, match=r"cc.csv:2: level"):
        drgsim.group(df, scheme=folder)


def test_largest_table_integer_validates_and_groups(tmp_path):
    """The range limit is exact: the largest integer accepted compiles and groups."""
    import pandas as pd

    import drgsim
    from drgsim.scheme.tables import INT_LIMIT

    folder = _break(tmp_path, "adrg.csv", 2,
                    f"AA1,AA1,A,1,surgical,心脏移植,,,main,,,,,,,-{INT_LIMIT},{INT_LIMIT}")
    load_tables(folder)
    df = pd.DataFrame({"case_id": ["a"], "sex": [1], "age_years": [60], "los_days": [2**63 - 1],
                       "diagnoses": ["I50.900"], "procedures": ["37.5100"]})
    out = drgsim.group(df, scheme=folder)
    assert out["status"].tolist() == ["ok"]


def test_adrg_without_drgs_is_a_warning_not_an_error(tmp_path):
    """README 4.3 defines the result (the ADRG code): validate lists it, group says it once."""
    import warnings

    import pandas as pd

    import drgsim
    from drgsim.errors import SchemeWarning

    folder = _break(tmp_path, "drg.csv", 2, "")  # drop AA19, the only DRG of AA1
    st = load_tables(folder)
    assert [str(w) for w in st.warnings] == [
        "adrg.csv:2: adrg: ADRG AA1 has no row in drg.csv: its cases get the DRG code AA1 "
        "(scheme README 4.3)"]
    df = pd.DataFrame({"case_id": ["a"], "sex": [1], "age_years": [60],
                       "diagnoses": ["I50.900"], "procedures": ["37.5100"]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = drgsim.group(df, scheme=folder)
        drgsim.group(df, scheme=folder)
    said = [w for w in caught if issubclass(w.category, SchemeWarning)]
    assert len(said) == 1 and "ADRG AA1 has no row in drg.csv" in str(said[0].message)
    assert out[["adrg", "drg", "status"]].values.tolist() == [["AA1", "AA1", "ok"]]


def test_empty_drg_table_is_one_warning(tmp_path):
    folder = _break(tmp_path, "drg.csv", None, None)
    (folder / "drg.csv").write_text("drg,adrg,order,severity,name_zh,cc_rule,los_days_min\n",
                                    encoding="utf-8")
    st = load_tables(folder)
    assert [str(w) for w in st.warnings] == [
        "drg.csv: no DRG rows: every case that matches an ADRG gets the ADRG code as its DRG "
        "(scheme README 4.3)"]


def test_cli_validate_lists_warnings_and_exits_zero(tmp_path):
    from drgsim.cli import main

    folder = _break(tmp_path, "drg.csv", 2, "")
    res = CliRunner().invoke(main, ["scheme", "validate", str(folder)])
    assert res.exit_code == 0, res.output
    assert f"warning: {folder}/adrg.csv:2: adrg: ADRG AA1 has no row in drg.csv" in res.output


def test_cli_group_says_the_scheme_warning_once(tmp_path, monkeypatch):
    from drgsim.cli import main
    from drgsim.scheme import compiled

    monkeypatch.setattr(compiled, "_MEMO", {})  # as in a fresh process
    folder = _break(tmp_path, "drg.csv", 2, "")
    src = tmp_path / "in.csv"
    src.write_text("case_id,sex,age_years,diagnoses,procedures\n"
                   "a,1,60,I50.900,37.5100\nb,2,50,I50.900,37.5100\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["group", str(src), "-o", str(tmp_path / "out.csv"),
                                    "--scheme", str(folder)])
    assert res.exit_code == 0, res.output
    said = [x for x in res.output.splitlines() if x.startswith("warning: scheme")]
    assert len(said) == 1 and "ADRG AA1 has no row in drg.csv" in said[0], res.output
