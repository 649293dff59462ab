"""Finance-ready outputs: core dependencies loaded lazily, the workbook a finance office can
use as it is (numbers as numbers, yuan, bilingual headers, names and levels, 说明 and 术语),
the payment-vs-cost plot by level before and after the corridor, and the demo writing them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import openpyxl  # a core dependency: no skip
import pandas as pd
import pytest
from click.testing import CliRunner

import drgsim
from drgsim.pricing.fake import fake_cases, fake_hospitals

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")


ROOT = Path(__file__).resolve().parents[1]
OUTPUT_LIBS = ("matplotlib", "xlsxwriter", "openpyxl")
CORE_DEPENDENCIES = {
    "numpy",
    "pandas",
    "numba",
    "pyarrow",
    "click",
    "rich",
    "ruamel.yaml",
    "xlsxwriter",
    "openpyxl",
    "matplotlib",
}
NAMES = ["东城区人民医院", "西城区中医院", "南湖区中心医院", "北山区人民医院", "河口区中医院",
         "青松镇卫生院"]


def _hospitals() -> pd.DataFrame:
    return fake_hospitals(6).assign(name=NAMES)


# last year's DRG spending per fund (yuan): the budget's source, tight enough that the
# hospital corridor refunds some losses
REGION = pd.DataFrame(
    {"fund": ["employee", "resident"], "year": [2023, 2023], "drg_spending": [5.5e6, 8.0e6]}
)


@pytest.fixture(scope="module")
def region_cases() -> pd.DataFrame:
    parts = [
        fake_cases(1500, n_hosp=6, seed=y, year=y).assign(
            case_id=lambda d, y=y: d["case_id"] + y * 10**6
        )
        for y in (2022, 2023, 2024)
    ]
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def run(region_cases, tmp_path_factory):
    """One simulation and its outputs written to disk."""
    from drgsim.report import write_outputs

    t = drgsim.simulate(region_cases, hospitals=_hospitals(), region=REGION)
    out = tmp_path_factory.mktemp("report")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths = write_outputs(t, out)
    return t, out, paths


# --- core install, lazy imports --------------------------------------------------------------


def test_core_dependency_list():
    """Workbook, .xlsx reading and plots are part of `pip install drgsim`, not extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {re.split(r"[\s<>=!~\[;]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    assert names == CORE_DEPENDENCIES
    extras = project["optional-dependencies"]
    assert extras.get("excel", []) == [] and extras.get("plot", []) == []  # back-compat aliases


def _runner(code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(drgsim.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_group_does_not_import_output_libraries(tmp_path):
    """`drgsim group` on a small CSV runs without loading matplotlib, xlsxwriter or openpyxl."""
    src = ROOT / "tests" / "fixtures" / "exports" / "cases_utf8.csv"
    out = tmp_path / "grouped.csv"
    code = f"""
import json, sys
from drgsim.cli import main
try:
    main(["group", {str(src)!r}, "-o", {str(out)!r}, "--quiet"])
except SystemExit as e:
    code = e.code
print(json.dumps({{"code": code, "loaded": sorted(m for m in {OUTPUT_LIBS!r} if m in sys.modules)}}))
"""
    got = _runner(code)
    assert got["code"] in (0, None)
    assert out.exists() and len(pd.read_csv(out)) == 34  # it really grouped
    assert got["loaded"] == []


def test_report_module_imports_lazily():
    """Importing the report package (as simulate/demo do) loads none of them either."""
    code = f"""
import json, sys
import drgsim.report, drgsim.report.workbook
print(json.dumps({{"loaded": sorted(m for m in {OUTPUT_LIBS!r} if m in sys.modules)}}))
"""
    assert _runner(code)["loaded"] == []


# --- the workbook ----------------------------------------------------------------------------


def _sheet(wb, prefix: str):
    return next(ws for ws in wb.worksheets if ws.title.startswith(prefix))


def _frame(ws) -> tuple[list[str], list[list]]:
    rows = list(ws.iter_rows(values_only=True))
    return [str(h) for h in rows[0]], [list(r) for r in rows[1:]]


def test_workbook_sheets_in_order(run):
    _, out, paths = run
    assert paths["workbook"] == out / "summary.xlsx"
    wb = openpyxl.load_workbook(out / "summary.xlsx")
    assert wb.sheetnames == ["说明", "基金 funds", "医院 hospitals", "月度 months", "病组 drgs",
                             "支付状态 pay_status", "台账 ledger", "权重 weights", "术语"]


def test_workbook_numbers_are_numbers_money_in_yuan(run):
    t, out, _ = run
    wb = openpyxl.load_workbook(out / "summary.xlsx")
    for ws in wb.worksheets[1:-1]:
        head, rows = _frame(ws)
        assert rows, ws.title
        for j, h in enumerate(head):
            en = h.split("\n")[-1]
            vals = [r[j] for r in rows if r[j] is not None]
            if en.endswith("_yuan") or en in ("cases", "points", "year", "pv_used", "cmi"):
                assert all(isinstance(v, (int, float)) for v in vals), (ws.title, h)
                cells = [c for c in list(ws.iter_cols(min_col=j + 1, max_col=j + 1, min_row=2))[0]
                         if c.value is not None]
                if en.endswith("_yuan"):
                    assert {c.number_format for c in cells} == {"#,##0.00"}, (ws.title, h)
    # the hospitals sheet holds the hospitals table's fen as yuan, to the fen
    head, rows = _frame(_sheet(wb, "医院"))
    got = pd.DataFrame(rows, columns=[h.split("\n")[-1] for h in head])
    h = t["hospitals"]
    for c in ("annual_payment_fen", "cost_fen", "corridor_refund_fen", "surplus_fen"):
        yuan = got[c[:-4] + "_yuan"].to_numpy(dtype=float)
        assert (abs(yuan * 100 - h[c].to_numpy()) < 0.5).all(), c
    assert got["points"].tolist() == pytest.approx(h["points"].tolist(), rel=1e-15)


def test_workbook_headers_bilingual(run):
    _, out, _ = run
    wb = openpyxl.load_workbook(out / "summary.xlsx")
    head, _ = _frame(_sheet(wb, "医院"))
    assert head[:5] == ["基金\nfund", "年度\nyear", "医院编码\nhospital_id",
                        "医院名称\nhospital_name", "医院等级\nhospital_level"]
    assert "年度清算支付（元）\nannual_payment_yuan" in head
    head, _ = _frame(_sheet(wb, "基金"))
    assert "清算点值（元/点）\npv_used" in head


def test_workbook_name_and_level_beside_every_hospital_id(run):
    _, out, _ = run
    names = _hospitals().set_index("hospital_id")
    wb = openpyxl.load_workbook(out / "summary.xlsx")
    seen = 0
    for ws in wb.worksheets:
        head, rows = _frame(ws)
        en = [h.split("\n")[-1] for h in head]
        if "hospital_id" not in en:
            continue
        j = en.index("hospital_id")
        assert en[j + 1 : j + 3] == ["hospital_name", "hospital_level"], ws.title
        for r in rows:
            if r[j] is None:  # fund-level ledger lines
                assert r[j + 1] is None and r[j + 2] is None
                continue
            assert r[j + 1] == names.loc[r[j], "name"] and r[j + 2] == names.loc[r[j], "level"]
            seen += 1
    assert seen > 100


def test_workbook_frozen_filtered_and_sized(run):
    _, out, _ = run
    wb = openpyxl.load_workbook(out / "summary.xlsx")
    for ws in wb.worksheets[1:-1]:
        assert ws.freeze_panes is not None and ws.freeze_panes.endswith("2"), ws.title
        assert ws.auto_filter.ref and ws.auto_filter.ref.startswith("A1:"), ws.title
    ws = _sheet(wb, "医院")
    assert ws.freeze_panes == "F2"  # ids, name and level stay in view
    # the name column is wide enough for the longest name (CJK characters take two columns)
    assert ws.column_dimensions["D"].width >= 2 * max(len(n) for n in NAMES)


def test_overview_sheet(run):
    from drgsim.report import budget_arithmetic

    t, out, _ = run
    wb = openpyxl.load_workbook(out / "summary.xlsx")
    ws = wb["说明"]
    rows = {r[0]: r[1] for r in ws.iter_rows(min_row=4, values_only=True) if r[0]}
    prov = t["summary"].attrs
    assert rows["政策 policy"] == "baseline"
    assert rows["模拟年度 year"] == 2024
    assert rows["政策文件哈希 policy hash"] == prov["drgsim.policy_hash"]
    assert rows["权重来源 weights source"] == "calibrated"
    assert rows["drgsim 版本 version"] == drgsim.__version__
    assert "分组方案表哈希 scheme table hash" in rows
    for _, f in t["funds"].iterrows():
        fz = {"employee": "职工医保 employee", "resident": "居民医保 resident"}[f["fund"]]
        line = rows[f"{fz} 预算算式 budget arithmetic"]
        assert line and line == budget_arithmetic(f)
        assert rows[f"{fz} DRG预算 budget_yuan"] == pytest.approx(f["budget_fen"] / 100, abs=0.005)
        assert rows[f"{fz} 清算点值 pv_used"] == pytest.approx(f["pv_used"], rel=1e-12)
    assert rows["台账合计 ledger balance"] == 0
    assert rows["金额 money"] == "元 yuan"
    assert "术语" in rows


def test_budget_arithmetic_line():
    from drgsim.report import budget_arithmetic

    f = {"budget_fen": 14_276_700, "reserve_fen": 751_400, "carve_out_fen": 0,
         "distributable_fen": 14_276_700,
         "budget_source": "rule: region drg_spending 2023 x (1 + 0.05)"}
    assert budget_arithmetic(f) == (
        "rule: region drg_spending 2023 x (1 + 0.05) = 150,281.00 − reserve 7,514.00"
        " − carve-out 0.00 = 142,767.00 yuan")
    assert budget_arithmetic({**f, "budget_arithmetic": "given line"}) == "given line"


def test_glossary_and_unknown_columns(region_cases, tmp_path):
    """Every shown column is in 术语; a column without a label keeps its English name and
    still gets a format from its name or dtype."""
    from drgsim.report import write_workbook

    t = drgsim.simulate(region_cases, hospitals=_hospitals(), region=REGION)
    t["hospitals"] = t["hospitals"].assign(new_thing_fen=12345, new_ratio=0.5, new_note="x")
    write_workbook(t, tmp_path / "w.xlsx")
    wb = openpyxl.load_workbook(tmp_path / "w.xlsx")
    head, rows = _frame(_sheet(wb, "医院"))
    j = head.index("new_thing_yuan")
    assert rows[0][j] == 123.45
    assert _sheet(wb, "医院").cell(row=2, column=j + 1).number_format == "#,##0.00"
    assert "new_ratio" in head and "new_note" in head
    gl = [r for r in wb["术语"].iter_rows(min_row=2, values_only=True) if r[1]]
    shown = {r[1] for r in gl}
    for ws in wb.worksheets[1:-1]:
        for h in _frame(ws)[0]:
            assert h.split("\n")[-1] in shown, (ws.title, h)
    label = {r[1]: r[0] for r in gl}
    assert label["hospital_id"] == "医院编码" and label["annual_payment_yuan"] == "年度清算支付"


def test_workbook_without_hospitals_table(region_cases, tmp_path):
    from drgsim.report import write_workbook

    t = drgsim.simulate(region_cases, region=REGION)
    write_workbook(t, tmp_path / "w.xlsx")
    wb = openpyxl.load_workbook(tmp_path / "w.xlsx")
    head, rows = _frame(_sheet(wb, "医院"))
    assert head[3:5] == ["医院名称\nhospital_name", "医院等级\nhospital_level"]
    assert all(r[3] is None and r[4] is None for r in rows)
    notes = {r[0]: r[1] for r in wb["说明"].iter_rows(min_row=4, values_only=True) if r[0]}
    assert notes["医院表 hospitals table"] == "未提供 not given"


def test_workbook_write_is_atomic(run, tmp_path, monkeypatch):
    """A failure while writing leaves the earlier workbook as it was and no stray file."""
    import drgsim.report.workbook as wbm

    t, _, _ = run
    target = tmp_path / "summary.xlsx"
    target.write_bytes(b"earlier")

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(wbm, "_write_glossary", boom)
    with pytest.raises(RuntimeError):
        wbm.write_workbook(t, target)
    assert target.read_bytes() == b"earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.xlsx"]


# --- plots -----------------------------------------------------------------------------------


def test_level_key():
    from drgsim.report import level_key

    assert [level_key(v) for v in ("三级", "三级甲等", "3级", "二级", "一级", "Level 1")] == [
        "3", "3", "3", "2", "1", "1"]
    assert level_key(None) == "?" and level_key("社区") == "?" and level_key(float("nan")) == "?"


def test_payment_vs_cost_before_and_after_corridor(run):
    from drgsim.report import hospital_revenue

    t, out, _ = run
    g = hospital_revenue(t)
    h = t["hospitals"].groupby("hospital_id")
    refund = h["corridor_refund_fen"].sum()
    claw = h["corridor_clawback_fen"].sum()
    assert (refund + claw > 0).any()  # the corridor moved money in this run
    assert ((g["after_fen"] - g["before_fen"]) == (refund - claw).reindex(g.index)).all()
    assert (g["after_fen"] == h["received_fen"].sum().reindex(g.index)).all()
    lv = _hospitals().set_index("hospital_id")["level"].map({"三级": "3", "二级": "2", "一级": "1"})
    assert (g["level"] == lv.reindex(g.index)).all()
    for name in ("payment_vs_cost.png", "point_value_by_month.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the demo from the core install ----------------------------------------------------------


@pytest.mark.slow
def test_demo_writes_workbook_and_plots(tmp_path):
    """`drgsim demo` (core dependencies only) writes the workbook and both plots, with at
    most one warning about the CJK font."""
    from drgsim.cli import main
    from drgsim.report import find_cjk_font

    out = tmp_path / "demo"
    res = CliRunner().invoke(main, ["demo", "-o", str(out), "--discharges", "3000",
                                    "--hospitals", "6", "--threads", "1"])
    assert res.exit_code == 0, res.output
    sim = out / "simulation"
    for name in ("summary.xlsx", "payment_vs_cost.png", "point_value_by_month.png"):
        assert (sim / name).stat().st_size > 0, name
    assert "not installed" not in res.output
    cjk = res.output.count("no CJK font")
    assert cjk == (0 if find_cjk_font() else 1)
    wb = openpyxl.load_workbook(sim / "summary.xlsx")
    head, rows = _frame(_sheet(wb, "医院"))
    j = [h.split("\n")[-1] for h in head].index("annual_payment_yuan")
    assert rows and all(isinstance(r[j], (int, float)) for r in rows)
    assert all(r[3] for r in rows)  # the synthetic region's hospital names
