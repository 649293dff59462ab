"""Files as they come: GBK CSV and .xlsx group like UTF-8; column maps; broken maps."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner

import drgsim
from drgsim.cli import main
from drgsim.inputs import detect_encoding, load_map
from drgsim.inputs.colmap import ColumnMapError, apply_map, parse_map
from drgsim.records import read_records

EXPORTS = Path(__file__).parent / "fixtures" / "exports"
MAPS = Path(__file__).parent / "fixtures" / "maps"
OUT = ["case_id", "mdc", "adrg", "drg", "status"]


@pytest.fixture(scope="module")
def utf8() -> pd.DataFrame:
    return drgsim.group(EXPORTS / "cases_utf8.csv")


def test_fixture_rows_match_their_labels(utf8):
    for f in ("mdc", "adrg", "drg", "status"):
        assert (utf8[f].astype(str) == utf8[f"expected_{f}"].fillna("").astype(str)).all()


@pytest.mark.parametrize("name", ["cases_gbk.csv", "cases.xlsx"])
def test_gbk_and_xlsx_group_exactly_like_utf8(utf8, name):
    other = drgsim.group(EXPORTS / name)
    pd.testing.assert_frame_equal(other[OUT].astype(str), utf8[OUT].astype(str))
    # Chinese text in a pass-through column comes back intact
    assert other["dept"].tolist() == utf8["dept"].tolist()
    assert "心血管内科" in set(other["dept"])


def test_encoding_detection(tmp_path):
    assert detect_encoding(EXPORTS / "cases_gbk.csv") == "gb18030"
    assert detect_encoding(EXPORTS / "cases_utf8.csv") == "utf-8"
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + (EXPORTS / "cases_utf8.csv").read_bytes())
    assert detect_encoding(bom) == "utf-8-sig"
    t = read_records(bom)
    assert t.schema.names[0] == "case_id"  # the BOM is not part of the first header


def test_cli_explicit_encoding(tmp_path, utf8):
    out = tmp_path / "g.csv"
    r = CliRunner().invoke(main, ["group", str(EXPORTS / "cases_gbk.csv"), "--encoding", "gbk",
                                  "-o", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert got["drg"].tolist() == utf8["drg"].tolist()
    assert got["dept"].tolist() == utf8["dept"].tolist()


@pytest.mark.parametrize("name,mapping", [("bingan_shouye_gbk.csv", "bingan_shouye"),
                                          ("settlement_list.xlsx", "settlement_list")])
def test_wide_chinese_export_through_each_shipped_map(utf8, name, mapping):
    got = drgsim.group(EXPORTS / name, column_map=mapping)
    assert got["case_id"].tolist() == utf8["case_id"].tolist()
    pd.testing.assert_frame_equal(got[OUT].astype(str), utf8[OUT].astype(str))
    # 男/女 became 1/2, text discharge modes became codes, the codes were joined in order
    assert got["sex"].tolist() == utf8["sex"].fillna("").astype(str).tolist()
    assert got["discharge_mode"].tolist() == utf8["discharge_mode"].astype(str).tolist()
    assert got["diagnoses"].tolist() == utf8["diagnoses"].tolist()
    assert got["procedures"].fillna("").tolist() == utf8["procedures"].fillna("").tolist()
    # the hospital's own DRG collided with ours: kept as input_drg
    assert "input_drg" in got.columns and (got["input_drg"] != got["drg"]).sum() == 5


def test_cli_group_with_map(tmp_path):
    out = tmp_path / "g.parquet"
    r = CliRunner().invoke(main, ["group", str(EXPORTS / "bingan_shouye_gbk.csv"), "--map",
                                  "bingan_shouye", "-o", str(out), "--quiet", "--names"])
    assert r.exit_code == 0, r.output
    g = pd.read_parquet(out)
    assert {"mdc_name", "adrg_name", "drg_name"} <= set(g.columns)
    row = g.set_index("case_id").loc["pub-000008"]
    assert (row["drg"], row["drg_name"]) == ("FV25", "高血压，不伴并发症或合并症")
    assert row["mdc_name"] == "循环系统疾病及功能障碍"


def _wide(rows: list[dict]) -> pa.Table:
    cols = sorted({k for r in rows for k in r}, key=lambda c: (c[:2], c))
    return pa.table({c: pa.array([r.get(c, "") for r in rows], pa.string()) for c in cols})


def test_join_keeps_empty_principal_and_skips_blank_secondaries():
    cm = load_map("bingan_shouye")
    t = _wide([
        {"病案号": "a", "性别": "男", "年龄": "50", "主要诊断编码": "I10.x10", "其他诊断编码1": "", "其他诊断编码2": "E11.900",
         "主要手术操作编码": "", "其他手术操作编码1": ""},
        {"病案号": "b", "性别": "男", "年龄": "50", "主要诊断编码": " ", "其他诊断编码1": "I10.x10", "其他诊断编码2": "",
         "主要手术操作编码": "", "其他手术操作编码1": "36.0700"},
        {"病案号": "c", "性别": "男", "年龄": "50", "主要诊断编码": "", "其他诊断编码1": "", "其他诊断编码2": "",
         "主要手术操作编码": "36.0700", "其他手术操作编码1": ""},
    ])
    out = apply_map(t, cm)
    assert out.column("diagnoses").to_pylist() == ["I10.x10|E11.900", "|I10.x10", ""]
    assert out.column("procedures").to_pylist() == ["", "|36.0700", "36.0700"]
    flags = drgsim.group(out, flags=True).column("flags").to_pylist()
    assert "dx_principal_empty" not in flags[0] and "dx_principal_empty" in flags[1]
    assert "proc_main_empty" in flags[1] and "proc_main_empty" not in flags[2]
    assert "dx_absent" in flags[2]


def test_rest_as_explicit_list_and_numbered_order():
    cm = parse_map("join:\n  diagnoses:\n    first: P\n    rest: [S2, S1]\n", "m.yaml")
    t = pa.table({"P": ["A"], "S1": ["B"], "S2": ["C"]})
    assert apply_map(t, cm).column("diagnoses").to_pylist() == ["A|C|B"]
    cm = parse_map("join:\n  diagnoses:\n    first: P\n    rest: S{n}\n", "m.yaml")
    t = pa.table({"P": ["A"], "S10": ["J"], "S2": ["C"], "S1": ["B"]})
    assert apply_map(t, cm).column("diagnoses").to_pylist() == ["A|B|C|J"]


def test_missing_principal_column_is_named():
    from drgsim.errors import RecordsError

    with pytest.raises(RecordsError, match="主要诊断编码"):
        apply_map(pa.table({"病案号": ["x"]}), load_map("bingan_shouye"))


@pytest.mark.parametrize("file,line,key,words", [
    ("bad_unknown_key.yaml", 4, "colums", "unknown key"),
    ("bad_rest_pattern.yaml", 5, "join.diagnoses.rest", "must contain {n}"),
    ("bad_duplicate_key.yaml", 4, None, "duplicate key"),
    ("bad_join_target.yaml", 6, "join.operations", "only join into diagnoses or procedures"),
    ("bad_values.yaml", 6, "values.sex.男", "plain text or numbers"),
    ("bad_values.yaml", 7, "values.discharge_mode", "non-empty mapping"),
    ("bad_target_twice.yaml", 4, "columns.住院号", "already the target"),
])
def test_malformed_map_rejected_with_file_line_key(file, line, key, words):
    with pytest.raises(ColumnMapError) as ei:
        load_map(MAPS / file)
    probs = [p for p in ei.value.problems if words in p.message]
    assert probs, str(ei.value)
    p = probs[0]
    assert p.file.endswith(file) and p.line == line and p.field == key
    assert f"{file}:{line}: " in str(ei.value)


def test_shipped_maps_are_valid_and_listed():
    from drgsim.inputs import shipped_maps

    assert {"bingan_shouye", "settlement_list"} <= set(shipped_maps())
    for name in shipped_maps():
        cm = load_map(name)
        assert set(cm.join) == {"diagnoses", "procedures"}
        assert cm.values["sex"]["男"] == "1" and cm.values["sex"]["女"] == "2"


def test_numeric_xlsx_code_cell_is_flagged_not_hidden(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["case_id", "sex", "age_years", "diagnoses", "procedures"])
    ws.append(["n1", 1, 60, "I10.x10", 38.5])  # a procedure typed as a number: 38.50 lost a zero
    ws.append(["t1", 1, 60, "I10.x10", "38.5000"])  # near miss: the same code stored as text
    p = tmp_path / "n.xlsx"
    wb.save(p)
    g = drgsim.group(p, flags=True)
    assert g["procedures"].tolist() == ["38.5", "38.5000"]
    assert "code_numeric" in list(g["flags"][0]) and "code_numeric" not in list(g["flags"][1])
    assert "__drgsim_numeric_code" not in g.columns
    # without flags the private mask never reaches the output either
    with pytest.warns(UserWarning, match="code_numeric"):
        assert "__drgsim_numeric_code" not in drgsim.group(p).columns


@pytest.mark.parametrize("name", ["bingan_shouye", "settlement_list"])
def test_shipped_example_files_group_through_their_maps(name):
    from importlib import resources

    ex = Path(str(resources.files("drgsim") / "data" / "maps" / f"{name}.example.csv"))
    g = drgsim.group(ex, column_map=name)
    assert g["drg"].tolist() == g["input_drg"].tolist() == ["RA19", "ZC15", "PR13"]


def test_encoding_detected_past_an_ascii_start(tmp_path):
    p = tmp_path / "late.csv"
    p.write_bytes(b"case_id,sex,age_years,diagnoses,dept\n" + b"1,1,50,I10.x10,A\n" * 70000
                  + "2,2,40,I10.x10,心内科\n".encode("gbk"))
    assert detect_encoding(p) == "gb18030"
    g = drgsim.group(p)
    assert g["dept"].iloc[-1] == "心内科" and g["drg"].iloc[-1] == g["drg"].iloc[0]


def test_numeric_code_cells_warn_without_flags(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    wb.active.append(["case_id", "sex", "age_years", "diagnoses", "procedures"])
    wb.active.append(["n1", 1, 60, "I10.x10", 38.5])
    p = tmp_path / "n.xlsx"
    wb.save(p)
    with pytest.warns(UserWarning, match="stored as a number"):
        drgsim.group(p)


def test_header_only_export_through_a_map_gives_an_empty_output(tmp_path):
    """A header-only file still goes through the map: an empty output with mapped columns."""
    import pyarrow.parquet as pq

    from drgsim.grouper.stream import group_file
    from drgsim.inputs.colmap import shipped_maps

    example = shipped_maps()["bingan_shouye"].with_name("bingan_shouye.example.csv")
    header = example.read_text(encoding="utf-8").splitlines()[0]
    (tmp_path / "empty.csv").write_text(header + "\n", encoding="utf-8")
    s = group_file(tmp_path / "empty.csv", tmp_path / "out.parquet", column_map="bingan_shouye")
    t = pq.read_table(tmp_path / "out.parquet")
    assert s.rows == 0 and t.num_rows == 0
    assert {"diagnoses", "procedures", "drg", "status"} <= set(t.column_names)
