"""Hostile input files: each case fails before any output with one line naming file (and
line), or is read whole — never a traceback, a half-written output or a harmed input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from drgsim.cli import main
from drgsim.inputs.csvscan import scan_csv
from drgsim.inputs.sources import open_input

ROWS = {"case_id": ["a1", "a2", "a3"], "sex": ["1", "2", "1"], "age_years": ["50", "60", "70"],
        "diagnoses": ["I50.900", "J18.900", "I50.900"], "procedures": ["", "", ""]}
HEADER = "case_id,sex,age_years,diagnoses,dept\n"


def _digest(root: Path) -> dict[str, str]:
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _group(src: Path, out: Path, *args: str):
    """Run ``drgsim group``; check the input is unharmed and a failure leaves no file."""
    before = _digest(src)
    r = CliRunner().invoke(main, ["group", str(src), "-o", str(out), "--quiet", *args])
    assert _digest(src) == before, "the input was changed"
    if r.exit_code != 0:
        assert "Traceback" not in r.output
        leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(out.stem + ".")
                     or p.name.startswith("." + out.name)]
        assert not leftovers, f"a failed run left {leftovers}"
    return r


def _error_line(r) -> str:
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert r.exit_code == 2 and len(lines) == 1, r.output
    return lines[0]


def _folder(tmp_path: Path, n_files: int = 3, name: str = "ds") -> Path:
    root = tmp_path / name
    for m in range(1, n_files + 1):
        d = root / "year=2024" / f"month={m:02d}"
        d.mkdir(parents=True)
        t = pa.table({k: [f"{v}{m}" if k == "case_id" else v for v in vals]
                      for k, vals in ROWS.items()})
        pq.write_table(t, d / "part-0.parquet")
    return root


# ---------------------------------------------------------------- folders and globs

def test_folder_with_a_stray_file_is_an_error_unless_a_glob_leaves_it_out(tmp_path):
    root = _folder(tmp_path)
    (root / "year=2024" / "notes.txt").write_text("not data")
    r = _group(root, tmp_path / "out.parquet")
    assert "notes.txt: not a parquet file" in _error_line(r)
    r = _group(root, tmp_path / "out.parquet", "--glob", "*.parquet")
    assert r.exit_code == 0, r.output
    t = pq.read_table(tmp_path / "out.parquet")
    assert t.num_rows == 9 and t.column("month").to_pylist() == [1] * 3 + [2] * 3 + [3] * 3
    # a glob also selects: one month only
    r = _group(root, tmp_path / "out2.parquet", "--glob", "month=02/*.parquet")
    assert r.exit_code == 0 and pq.read_table(tmp_path / "out2.parquet").num_rows == 3


def test_a_quoted_glob_as_input_is_its_folder_with_glob(tmp_path):
    """'ds/year=2024/month=0[12]/*.parquet' reads as ds/year=2024 --glob 'month=0[12]/*.parquet'
    (it was refused: "Path ... does not exist")."""
    root = _folder(tmp_path)
    before = _digest(root)
    run = lambda *a: CliRunner().invoke(main, ["group", *a, "--quiet"])  # noqa: E731
    r = run(str(root / "year=2024" / "month=0[12]" / "*.parquet"), "-o", str(tmp_path / "o.parquet"))
    assert r.exit_code == 0, r.output
    t = pq.read_table(tmp_path / "o.parquet")
    assert t.num_rows == 6 and t.column("month").to_pylist() == [1] * 3 + [2] * 3
    line = _error_line(run(str(root / "*.parquet"), "--glob", "*.parquet", "-o",
                           str(tmp_path / "p.parquet")))
    assert "INPUT or in --glob, not both" in line
    assert "does not exist" in run(str(root / "nothing.parquet"), "-o",
                                   str(tmp_path / "q.parquet")).output
    assert _digest(root) == before


def test_truncated_parquet_in_a_folder_is_named_before_any_output(tmp_path):
    root = _folder(tmp_path)
    f = root / "year=2024" / "month=03" / "part-0.parquet"
    f.write_bytes(f.read_bytes()[:200])
    r = _group(root, tmp_path / "out.parquet")
    line = _error_line(r)
    assert "month=03/part-0.parquet: not a readable parquet file" in line
    assert not (tmp_path / "out.parquet").exists()


def test_file_missing_a_required_column_is_named(tmp_path):
    root = _folder(tmp_path)
    f = root / "year=2024" / "month=02" / "part-0.parquet"
    pq.write_table(pq.read_table(f).drop(["diagnoses"]), f)
    line = _error_line(_group(root, tmp_path / "out.parquet"))
    assert "month=02/part-0.parquet: required column(s) missing: diagnoses" in line


def test_schemas_are_unified_extra_columns_kept_absent_ones_said(tmp_path):
    root = _folder(tmp_path)
    f1 = root / "year=2024" / "month=01" / "part-0.parquet"
    pq.write_table(pq.read_table(f1).append_column("ward", pa.array(["W1", "W2", "W3"])), f1)
    f2 = root / "year=2024" / "month=02" / "part-0.parquet"
    pq.write_table(pq.read_table(f2).drop(["procedures"]), f2)
    r = _group(root, tmp_path / "out.parquet")
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "'procedures' absent in 1 of 3 files (year=2024/month=02/part-0.parquet)" in out
    assert "'ward' absent in 2 of 3 files" in out
    t = pq.read_table(tmp_path / "out.parquet")
    assert t.column("ward").to_pylist() == ["W1", "W2", "W3"] + [None] * 6
    assert t.column("status").to_pylist() == ["ok"] * 9


def test_types_that_differ_between_files_are_said_even_when_widened(tmp_path):
    """decimal cost in one file, float in another: read as float, and the summary says so."""
    root = _folder(tmp_path)
    for m, typ in ((1, pa.decimal128(14, 2)), (2, pa.float64()), (3, pa.float64())):
        f = root / "year=2024" / f"month={m:02d}" / "part-0.parquet"
        t = pq.read_table(f)
        pq.write_table(t.append_column("total_cost", pa.array([1.5, 2.25, 3.0]).cast(typ)), f)
    r = _group(root, tmp_path / "out.parquet")
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "column 'total_cost' has different types across files (decimal128(14, 2), double): " \
           "read as double" in out
    assert pq.read_table(tmp_path / "out.parquet").column("total_cost").type == pa.float64()


def test_region_root_is_not_a_discharge_dataset(tmp_path):
    region = tmp_path / "region"
    _folder(region, name="discharges")
    pq.write_table(pa.table({"hospital_id": ["H1"], "level": [3]}), region / "hospitals.parquet")
    pq.write_table(pa.table({"region": ["R"], "budget": [1.0]}), region / "region.parquet")
    line = _error_line(_group(region, tmp_path / "out.parquet"))
    assert "not a discharge dataset" in line and "hospitals.parquet" in line
    assert f"{region / 'discharges'}: point at that folder" in line


def test_folder_batches_are_bounded_by_batch_rows(tmp_path):
    """Memory is bounded by the batch: one file, one batch of at most batch_rows at a time."""
    root = _folder(tmp_path, n_files=4)
    src = open_input(root)
    sizes = [b.num_rows for b in src.batches(2)]
    assert max(sizes) <= 2 and sum(sizes) == 12


# ---------------------------------------------------------------- encodings

def _mixed(tmp_path: Path) -> Path:
    p = tmp_path / "mixed.csv"
    body = "".join(f"c{i},1,50,I50.900,心内科\n" for i in range(5)).encode("utf-8")
    p.write_bytes(HEADER.encode() + body + "c5,1,50,I50.900,心内科\n".encode("gbk"))
    return p


def test_one_gbk_line_in_a_utf8_file_is_an_error_naming_line_and_byte(tmp_path):
    p = _mixed(tmp_path)
    line = _error_line(_group(p, tmp_path / "out.csv"))
    offset = p.read_bytes().index("心内科".encode("gbk"))
    assert line.startswith(f"error: {p}:7: mixed encoding")
    assert f"line 7 (byte {offset})" in line
    # a forced strict UTF-8 is refused the same way, before any output
    assert f"{p}:7: not valid UTF-8" in _error_line(_group(p, tmp_path / "out.csv",
                                                           "--encoding", "utf-8"))


def test_a_forced_encoding_that_cannot_decode_names_the_line(tmp_path):
    p = _mixed(tmp_path)  # UTF-8 lines 2-6 do not decode as GBK
    line = _error_line(_group(p, tmp_path / "out.csv", "--encoding", "gbk"))
    assert line.startswith(f"error: {p}:2: not valid gbk (byte "), line


def test_replace_flags_the_rows_it_touched(tmp_path):
    p = _mixed(tmp_path)
    r = _group(p, tmp_path / "out.csv", "--encoding", "utf-8:replace")
    assert r.exit_code == 0, r.output
    t = pacsv.read_csv(tmp_path / "out.csv")
    assert t.column("encoding_replaced").to_pylist() == [False] * 5 + [True]
    assert t.column("dept").to_pylist()[:5] == ["心内科"] * 5
    assert "\ufffd" in t.column("dept")[5].as_py()


def test_replace_on_an_input_that_has_encoding_replaced_keeps_names_unique(tmp_path):
    """Regrouping an output written with :replace: its own column becomes input_..., so the
    parquet stays readable (two 'encoding_replaced' columns made it unreadable)."""
    p = tmp_path / "again.csv"
    body = "".join(f"c{i},1,50,I50.900,心内科,true\n" for i in range(3)).encode("utf-8")
    p.write_bytes(HEADER.replace("\n", ",encoding_replaced\n").encode() + body
                  + "c3,1,50,I50.900,心内科,false\n".encode("gbk"))
    r = _group(p, tmp_path / "out.parquet", "--encoding", "utf-8:replace")
    assert r.exit_code == 0, r.output
    t = pq.read_table(tmp_path / "out.parquet")
    assert t.column("input_encoding_replaced").to_pylist() == ["true"] * 3 + ["false"]
    assert t.column("encoding_replaced").to_pylist() == [False] * 3 + [True]


def test_all_gbk_file_is_gb18030_and_unknown_encoding_is_one_line(tmp_path):
    p = tmp_path / "gbk.csv"
    p.write_bytes((HEADER + "c1,1,50,I50.900,心内科\n").encode("gbk"))
    r = _group(p, tmp_path / "out.csv")
    assert r.exit_code == 0, r.output
    assert pacsv.read_csv(tmp_path / "out.csv").column("dept").to_pylist() == ["心内科"]
    line = _error_line(_group(p, tmp_path / "out2.csv", "--encoding", "klingon"))
    assert "'klingon': unknown encoding" in line


def test_encoding_scan_streams_in_chunks(tmp_path):
    """Chunk boundaries anywhere (even inside a character or a CRLF) change nothing."""
    p = tmp_path / "a.csv"
    rows = [f'c{i},1,"5\r\n0",I50.900,心内科{i}\r\n' for i in range(40)]
    rows[17] = rows[17].replace("心内科", "\u5fc3,").replace(",1,", ",1,1,")  # a bad row
    p.write_bytes(HEADER.replace("\n", "\r\n").encode() + "".join(rows).encode()
                  + "c99,1,50,I50.900,心\r\n".encode("gbk"))
    whole = scan_csv(p)
    assert whole.non_utf8_lines == 1 and whole.utf8_lines == 40 and len(whole.bad) == 1
    for chunk in (1, 2, 3, 7, 64):
        assert scan_csv(p, chunk=chunk) == whole


# ---------------------------------------------------------------- CSV structure

@pytest.mark.parametrize("body, line, words", [
    ("c1,1,50,I50.900,x\nc2,1,50,I50.900,x,extra\n", 3, "6 field(s) where the header has 5"),
    ("c1,1,50,I50.900,x\nc2,1,50\n", 3, "3 field(s) where the header has 5"),
    ('c1,1,50,I50.900,x\nc2,1,50,"I50.900,x\n', 3, "unterminated quote"),
])
def test_malformed_rows_are_an_error_naming_file_and_line(tmp_path, body, line, words):
    p = tmp_path / "in.csv"
    p.write_text(HEADER + body, encoding="utf-8")
    msg = _error_line(_group(p, tmp_path / "out.csv"))
    assert msg.startswith(f"error: {p}:{line}: {words}")


def test_duplicate_header_is_an_error(tmp_path):
    p = tmp_path / "in.csv"
    p.write_text("case_id,sex,age_years,diagnoses,sex\nc1,1,50,I50.900,2\n", encoding="utf-8")
    assert f"{p}:1: duplicate column name 'sex'" in _error_line(_group(p, tmp_path / "o.csv"))


def test_bad_lines_keep_keeps_every_row_in_order_with_its_raw_text(tmp_path):
    p = tmp_path / "in.csv"
    p.write_text(HEADER + "c1,1,50,I50.900,x\nc2,1,50,I50.900,x,extra\n\nc3,1,50,I50.900,y\n"
                 'c4,1,"50,I50.900,z\n', encoding="utf-8")
    r = _group(p, tmp_path / "out.csv", "--bad-lines", "keep")
    assert r.exit_code == 0, r.output
    t = pacsv.read_csv(tmp_path / "out.csv", convert_options=pacsv.ConvertOptions(
        column_types={"case_id": pa.string(), "drg": pa.string()}))
    assert t.column("case_id").to_pylist() == ["c1", "c2", "c3", "c4"]
    assert t.column("status").to_pylist() == ["ok", "malformed_row", "ok", "malformed_row"]
    assert t.column("drg").to_pylist()[1] == "0000"
    assert "__drgsim_malformed" not in t.schema.names
    side = pacsv.read_csv(tmp_path / "out.malformed_rows.csv").to_pylist()
    assert [(s["row"], s["line"]) for s in side] == [(2, 3), (4, 6)]
    assert side[0]["raw_text"] == "c2,1,50,I50.900,x,extra"
    assert side[1]["raw_text"].startswith('c4,1,"50')
    # a later clean run into the same output drops the sidecar, which described the old one
    clean = tmp_path / "clean.csv"
    clean.write_text(HEADER + "c1,1,50,I50.900,x\n", encoding="utf-8")
    assert _group(clean, tmp_path / "out.csv").exit_code == 0
    assert not (tmp_path / "out.malformed_rows.csv").exists()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["a", ",", '"', "\n", "\r\n", "\r", "é", " "]), max_size=40))
def test_scan_finds_the_records_pyarrow_reads(tmp_path_factory, pieces):
    """The pre-scan and pyarrow agree on every record of random quote/comma/newline soup."""
    p = tmp_path_factory.mktemp("soup") / "s.csv"
    p.write_bytes(("x,y\n" + "".join(pieces)).encode())
    scan = scan_csv(p)
    # kept malformed rows and good rows together: every record, once, in file order
    src = open_input(p, bad_lines="keep", require=False)
    rows = [r for b in src.batches(7) for r in b.to_pylist()]
    assert len(rows) == scan.data_rows
    kept = [i for i, r in enumerate(rows) if r.get("__drgsim_malformed")]
    assert kept == [b.index for b in scan.bad]
    if any(b.fields < 0 for b in scan.bad):
        return  # an unterminated quote: never handed to pyarrow
    bad_lines = []
    opts = pacsv.ParseOptions(newlines_in_values=True,
                              invalid_row_handler=lambda row: bad_lines.append(row) or "skip")
    t = pacsv.read_csv(p, parse_options=opts)
    assert t.num_rows == scan.data_rows - len(scan.bad)
    assert len(bad_lines) == len(scan.bad)


# ---------------------------------------------------------------- Excel

def _xlsx(tmp_path: Path) -> Path:
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "cases"
    ws.append(["case_id", "sex", "age_years", "diagnoses", "dept"])
    ws.append(["c1", 1, 50, "I50.900", "心内科"])
    ws.append(["c2", 1, 60, "I50.900", None])
    ws.append(["c3", 2, 70, "J18.900", None])
    ws.merge_cells("E2:E4")  # a department merged over three rows
    other = wb.create_sheet("more")
    other.append(["case_id", "sex", "age_years", "diagnoses"])
    other.append(["m1", 1, 40, "J18.900"])
    wb.create_sheet("blank")
    p = tmp_path / "in.xlsx"
    wb.save(p)
    return p


def test_xlsx_merged_cells_are_filled_and_other_sheets_named(tmp_path):
    p = _xlsx(tmp_path)
    r = _group(p, tmp_path / "out.csv")
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "other non-empty sheet(s) not read: more" in out and "blank" not in out
    t = pacsv.read_csv(tmp_path / "out.csv")
    assert t.column("dept").to_pylist() == ["心内科"] * 3
    assert t.column("xlsx_merged").to_pylist() == ["", "dept", "dept"]
    r = _group(p, tmp_path / "more.csv", "--sheet", "2")
    assert r.exit_code == 0 and pacsv.read_csv(tmp_path / "more.csv").num_rows == 1
    r = _group(p, tmp_path / "more2.csv", "--sheet", "more")
    assert r.exit_code == 0 and pacsv.read_csv(tmp_path / "more2.csv").num_rows == 1
    assert "no sheet 'nope'" in _error_line(_group(p, tmp_path / "x.csv", "--sheet", "nope"))


def test_xlsx_with_its_own_xlsx_merged_column_keeps_names_unique(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    p = _xlsx(tmp_path)
    wb = openpyxl.load_workbook(p)
    wb["cases"]["F1"] = "xlsx_merged"
    wb["cases"]["F2"] = "mine"
    wb.save(p)
    r = _group(p, tmp_path / "out.parquet")
    assert r.exit_code == 0, r.output
    t = pq.read_table(tmp_path / "out.parquet")
    assert t.column("input_xlsx_merged").to_pylist() == ["mine", None, None]
    assert t.column("xlsx_merged").to_pylist() == ["", "dept", "dept"]


def test_xlsx_cell_beyond_the_header_is_named(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    p = _xlsx(tmp_path)
    wb = openpyxl.load_workbook(p)
    wb["cases"]["G3"] = "stray"
    wb.save(p)
    line = _error_line(_group(p, tmp_path / "out.csv"))
    assert "in.xlsx:cases!G3: value 'stray' beyond the header's last column (E" in line


# ---------------------------------------------------------------- empty inputs

@pytest.mark.parametrize("text", ["case_id,sex,age_years,diagnoses\n",
                                  "case_id,sex,age_years,diagnoses"])
def test_header_only_csv_gives_an_empty_output_with_the_columns(tmp_path, text):
    p = tmp_path / "in.csv"
    p.write_text(text, encoding="utf-8")
    r = _group(p, tmp_path / "out.parquet")
    assert r.exit_code == 0, r.output
    t = pq.read_table(tmp_path / "out.parquet")
    assert t.num_rows == 0
    assert t.schema.names == ["case_id", "sex", "age_years", "diagnoses", "mdc", "adrg", "drg",
                              "status"]


def test_zero_row_parquet_gives_an_empty_output_with_the_columns(tmp_path):
    p = tmp_path / "in.parquet"
    pq.write_table(pa.table({k: pa.array([], pa.string()) for k in ROWS}), p)
    r = _group(p, tmp_path / "out.parquet")
    assert r.exit_code == 0, r.output
    t = pq.read_table(tmp_path / "out.parquet")
    assert t.num_rows == 0 and t.schema.names == [*ROWS, "mdc", "adrg", "drg", "status"]


def test_malformed_row_is_paid_like_check_failed_by_default():
    from drgsim.policy import load_policy
    from drgsim.scheme.spec import STATUSES

    assert "malformed_row" in STATUSES
    rules = load_policy().at("2024-06-30")["statuses"]
    assert rules["malformed_row"] == rules["check_failed"] == "review"


def test_xlsx_table_may_start_right_of_column_a(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    for j, (h, v) in enumerate(zip(ROWS, ["c1", 1, 50, "I50.900", ""])):
        ws.cell(3, j + 2, h)
        ws.cell(4, j + 2, v)
    p = tmp_path / "b.xlsx"
    wb.save(p)
    r = _group(p, tmp_path / "out.csv")
    assert r.exit_code == 0, r.output
    assert pacsv.read_csv(tmp_path / "out.csv").column("status").to_pylist() == ["ok"]
    ws["A4"] = "stray"
    wb.save(p)
    assert "b.xlsx:Sheet!A4: value 'stray' left of" in _error_line(_group(p, tmp_path / "o.csv"))


def test_csv_only_options_are_refused_for_other_inputs(tmp_path):
    root = _folder(tmp_path, n_files=1)
    assert "--encoding applies to CSV input only" in _error_line(
        _group(root, tmp_path / "o.parquet", "--encoding", "gbk"))
    assert "--bad-lines applies to CSV input only" in _error_line(
        _group(root, tmp_path / "o.parquet", "--bad-lines", "keep"))
    assert "--sheet: INPUT" in _error_line(_group(root, tmp_path / "o.parquet", "--sheet", "1"))


@pytest.mark.parametrize("args", [["--compare", "nope"],
                                  ["--compare", "dept", "--cost-column", "nope"],
                                  ["--flags", "--hospital-column", "nope"]])
def test_compare_or_cost_column_not_in_the_input_is_refused_before_work(tmp_path, args):
    """It was found after the whole input was grouped and written (and --cost-column was an
    internal KeyError)."""
    p = tmp_path / "in.csv"
    p.write_text(HEADER + "a1,1,50,I50.900,心内科\n", encoding="utf-8")
    line = _error_line(_group(p, tmp_path / "out.csv", *args))
    assert "no column 'nope'" in line and not (tmp_path / "out.csv").exists()
