"""The finance office's workbook: ``summary.xlsx`` with an overview sheet first (说明),
one sheet per result table (numbers stored as numbers, money in yuan with two decimals,
bilingual headers, hospital name and level beside every hospital id) and a glossary (术语).

xlsxwriter is imported here only, when a workbook is written, so grouping never loads it.
"""

from __future__ import annotations

import math
import os
import unicodedata
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from drgsim.output import atomic_path
from drgsim.report.labels import Column, column, value_labels

OVERVIEW = "说明"
GLOSSARY = "术语"
# (table, sheet name, what the sheet holds: Chinese, English)
SHEETS = (
    ("funds", "基金 funds", "每个基金：预算、调节金、点值、支付与通道合计",
     "per fund: budget, reserve, point values, payments and corridor totals"),
    ("hospitals", "医院 hospitals", "每个医院×基金：点数、费用、预付、清算、考核、通道、盈亏、CMI",
     "per hospital and fund: points, cost, prepayments, settlement, assessment, corridor, "
     "surplus, CMI"),
    ("months", "月度 months", "每个医院×基金×月份：点数、预结算点值、预付与预留",
     "per hospital, fund and month: points, provisional point value, prepayment, deposit"),
    ("drgs", "病组 drgs", "每个病组×基金：病例数、点数、支付、费用、高低倍率病例",
     "per DRG and fund: cases, points, payment, cost, outliers"),
    ("pay_status", "支付状态 pay_status", "未能正常支付的病例数与费用（按原因）",
     "cases not paid normally, by reason"),
    ("ledger", "台账 ledger", "资金台账：来源为正、支出为负，每个基金年度合计为0",
     "the ledger: sources +, uses −, sums to 0 per fund and year"),
    ("weights", "权重 weights", "病组权重：例均费用、RW、基准点数、床日标准",
     "weights: mean cost, RW, base points, per-diem rates"),
)
# a DIP run's sheet for its ``drgs`` table (by packet, column ``packet``)
DIP_SHEET = ("drgs", "病种 packets", "每个病种×基金：病例数、分值、支付、费用、高低倍率病例",
             "per DIP packet and fund: cases, points (scores), payment, cost, outliers")
NUMBER_FORMATS = {
    "id": "0",
    "int": "#,##0",
    "money": "#,##0.00",
    "points": "#,##0.0000",
    "pv": "#,##0.0000",
    "ratio": "0.0000",
}
ID_COLUMNS = {"fund", "year", "hospital_id", "hospital_name", "hospital_level", "month", "drg",
              "packet", "key", "pay_status"}
EXCEL_MAX_ROWS = 1_048_576
FUND_ZH = {"employee": "职工医保", "resident": "居民医保"}


def _yuan(fen: float | int) -> str:
    return f"{fen / 100:,.2f}"


def budget_arithmetic(f: Mapping[str, Any]) -> str:
    """One line: how a fund's DRG budget was reached, from its row in the funds table.

    Uses the settlement's own ``budget_arithmetic`` when the funds table carries one;
    otherwise rebuilds it from the budget, reserve and carve-out (today's semantics: a
    rule's reserve comes out of the gross, an amount's is held beside it).
    """
    given = f.get("budget_arithmetic")
    if isinstance(given, str) and given:
        return given
    B, R, X = int(f["budget_fen"]), int(f["reserve_fen"]), int(f["carve_out_fen"])
    src = str(f.get("budget_source", ""))
    if src.startswith("rule"):
        line = (f"{src} = {_yuan(B + R + X)} − reserve {_yuan(R)} − carve-out {_yuan(X)}"
                f" = {_yuan(B)} yuan")
    else:
        line = (f"{src}: {_yuan(B + X)} − carve-out {_yuan(X)} = {_yuan(B)} yuan;"
                f" reserve {_yuan(R)} held beside it")
    D = f.get("distributable_fen")
    if D is not None and not pd.isna(D) and int(D) != B:
        line += f"; distributable {_yuan(int(D))} (region corridor draw {_yuan(int(D) - B)})"
    return line


def hospital_info(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """hospital_id -> hospital_name, hospital_level from the hospitals table the run was
    given (``tables['hospital_info']``); empty when it was given none."""
    h = tables.get("hospital_info")
    out = pd.DataFrame(columns=["hospital_name", "hospital_level"], dtype=object)
    if h is None or "hospital_id" not in h.columns:
        return out
    name = next((c for c in ("hospital_name", "name", "医院名称") if c in h.columns), None)
    level = next((c for c in ("hospital_level", "level", "医院等级") if c in h.columns), None)
    ids = h["hospital_id"].astype(str)
    out = pd.DataFrame(
        {
            "hospital_name": h[name].astype(object).to_numpy() if name else None,
            "hospital_level": h[level].astype(object).to_numpy() if level else None,
        },
        index=pd.Index(ids, name="hospital_id"),
    )
    return out[~out.index.duplicated()]


def with_hospital_info(df: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """``df`` with hospital_name and hospital_level right after its hospital_id."""
    if "hospital_id" not in df.columns:
        return df
    d = df.drop(columns=[c for c in ("hospital_name", "hospital_level") if c in df.columns])
    ids = d["hospital_id"].astype("string")
    at = list(d.columns).index("hospital_id") + 1
    for i, c in enumerate(("hospital_name", "hospital_level")):
        vals = ids.map(info[c]).astype(object)
        d.insert(at + i, c, vals.where(vals.notna(), None))
    return d


def _cells(s: pd.Series, kind: str) -> list[Any]:
    """A column as Python values for the sheet (None for missing); money fen -> yuan."""
    if kind in NUMBER_FORMATS:
        x = pd.to_numeric(s, errors="coerce").astype("float64").to_numpy()
        if kind == "money":
            x = np.round(x / 100.0, 2)
        return [None if math.isnan(v) else v for v in x.tolist()]
    if kind == "bool":
        return [None if pd.isna(v) else bool(v) for v in s.tolist()]
    return [None if (v is None or (not isinstance(v, str) and pd.isna(v))) else str(v)
            for v in s.tolist()]


def _width(text: str) -> int:
    """Display width: CJK characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _shown(v: Any, kind: str) -> str:
    if v is None:
        return ""
    if kind == "money":
        return f"{v:,.2f}"
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "id":
        return f"{v:.0f}"
    if kind in ("points", "pv"):
        return f"{v:,.4f}"
    if kind == "ratio":
        return f"{v:.4f}"
    return str(v)


class _Book:
    """The open workbook and its cell formats."""

    def __init__(self, path: Path) -> None:
        import xlsxwriter

        self.wb = xlsxwriter.Workbook(str(path))
        self.header = self.wb.add_format(
            {"bold": True, "text_wrap": True, "valign": "top", "bg_color": "#DDEBF7",
             "bottom": 1}
        )
        self.num = {k: self.wb.add_format({"num_format": v}) for k, v in NUMBER_FORMATS.items()}
        self.title = self.wb.add_format({"bold": True, "font_size": 14})
        self.section = self.wb.add_format({"bold": True, "bg_color": "#DDEBF7"})
        self.wrap = self.wb.add_format({"text_wrap": True, "valign": "top"})

    def table(self, name: str, df: pd.DataFrame) -> list[Column]:
        """One table as a sheet: bilingual header, formats by kind, frozen, filtered."""
        ws = self.wb.add_worksheet(name)
        cols = [column(str(c), df[c].dtype) for c in df.columns]
        n = min(len(df), EXCEL_MAX_ROWS - 1)
        if n < len(df):
            warnings.warn(f"workbook sheet {name}: only the first {n:,} of {len(df):,} rows fit "
                          "in Excel (the parquet table has them all)", stacklevel=3)
        ws.set_row(0, 32)
        for j, c in enumerate(cols):
            ws.write_string(0, j, c.header, self.header)
            vals = _cells(df.iloc[:n, j], c.kind)
            fmt = self.num.get(c.kind)
            if c.kind in NUMBER_FORMATS:
                for i, v in enumerate(vals, start=1):
                    if v is not None:
                        ws.write_number(i, j, v, fmt)
                probe = [v for v in (max((v for v in vals if v is not None), default=None),
                                     min((v for v in vals if v is not None), default=None))]
            elif c.kind == "bool":
                for i, v in enumerate(vals, start=1):
                    if v is not None:
                        ws.write_boolean(i, j, v)
                probe = ["FALSE"]
            else:
                for i, v in enumerate(vals, start=1):
                    if v is not None:
                        ws.write_string(i, j, v)
                probe = list({v for v in vals[:5000] if v is not None})
            head = max(_width(part) for part in c.header.split("\n"))
            body = max((_width(_shown(v, c.kind)) for v in probe), default=0)
            ws.set_column(j, j, min(max(head, body, 6) + 2, 48))
        ids = 0
        while ids < len(cols) and cols[ids].name in ID_COLUMNS:
            ids += 1
        ws.freeze_panes(1, ids)
        ws.autofilter(0, 0, max(n, 1), max(len(cols) - 1, 0))
        return cols

    def close(self) -> None:
        self.wb.close()


def _overview_rows(tables: Mapping[str, pd.DataFrame], sheets: list[tuple[str, str, str]],
                   has_info: bool) -> list[tuple]:
    """The 说明 sheet as rows: ('section', title) or (item, value, unit, note)."""
    prov = {str(k): str(v) for k, v in tables["summary"].attrs.items()}
    rows: list[tuple] = [("section", "运行信息 run")]
    year = prov.get("drgsim.year", "")
    for key, label, note in (
        ("drgsim.policy", "政策 policy", ""),
        ("drgsim.policy_hash", "政策文件哈希 policy hash", "sha256 of the policy text"),
        ("drgsim.year", "模拟年度 year", "earlier years are history"),
        ("drgsim.scheme", "分组方案 scheme", ""),
        ("drgsim.scheme_hash", "分组方案表哈希 scheme table hash", "sha256 of the scheme tables"),
        ("drgsim.weights_source", "权重来源 weights source", "calibrated: on the history years"),
        ("drgsim.weights_hash", "权重哈希 weights hash", ""),
        ("drgsim.version", "drgsim 版本 version", ""),
    ):
        v: Any = prov.get(key, "")
        if key == "drgsim.year" and year.isdigit():
            v = int(year)
        rows.append((label, v, "", note))
    if not has_info:
        rows.append(("医院表 hospitals table", "未提供 not given", "",
                     "hospital name and level are blank"))

    funds = tables.get("funds")
    if funds is not None and len(funds):
        rows.append(("section", "预算 budget"))
        for _, f in funds.iterrows():
            fz = f"{FUND_ZH.get(f['fund'], f['fund'])} {f['fund']}"
            rows.append((f"{fz} 预算算式 budget arithmetic", budget_arithmetic(f), "", ""))
            for c in ("budget_gross_fen", "budget_fen", "reserve_fen", "carve_out_fen",
                      "distributable_fen", "region_draw_fen", "reserve_overdraw_fen"):
                if c in f:
                    lab = column(c)
                    rows.append((f"{fz} {lab.zh} {lab.shown}", round(int(f[c]) / 100, 2),
                                 "money", lab.meaning_zh))
        rows.append(("section", "点值 point values"))
        for _, f in funds.iterrows():
            fz = f"{FUND_ZH.get(f['fund'], f['fund'])} {f['fund']}"
            for c in ("pv_used", "pv_total_cost_basis", "pv_fund_basis", "pv_budgeted",
                      "pv_floor", "pv_ceiling"):
                if c in f and not pd.isna(f[c]):
                    lab = column(c)
                    rows.append((f"{fz} {lab.zh} {lab.shown}", float(f[c]), "pv", lab.meaning_zh))
            if "pv_bound" in f and str(f["pv_bound"] or ""):
                moved = int(f.get("pv_floor_topup_fen", 0)) - int(f.get("pv_ceiling_withheld_fen", 0))
                rows.append((f"{fz} 点值触及{value_labels().get(('pv_bound', f['pv_bound']), ('',))[0]}"
                             f" held at its {f['pv_bound']}", round(moved / 100, 2), "money",
                             "基金补足(+)或留存(−) fund top-up (+) or withheld (−)"))

    rows.append(("section", "病例与台账 cases and ledger"))
    cases = tables.get("cases")
    if cases is not None:
        rows.append(("病例数 cases", len(cases), "int", "simulated year, every row kept"))
    ps = tables.get("pay_status")
    if ps is not None:
        for _, r in ps.iterrows():
            zh = value_labels().get(("pay_status", str(r["pay_status"])), ("", ""))[0]
            rows.append((f"支付状态 {zh} {r['pay_status']}：病例数 cases", int(r["cases"]), "int", ""))
            rows.append((f"支付状态 {zh} {r['pay_status']}：医疗总费用 cost_yuan",
                         round(int(r["cost_fen"]) / 100, 2), "money", ""))
    led = tables.get("ledger")
    if led is not None and len(led):
        rows.append(("台账合计 ledger balance", round(int(led["amount_fen"].sum()) / 100, 2),
                     "money", "每个基金年度必须为0 must be 0 per fund and year"))

    rows.append(("section", "单位 units"))
    rows.append(("金额 money", "元 yuan", "",
                 "两位小数；parquet 文件中为整数“分”（*_fen 列，1 元 = 100 分）"
                 " two decimals; parquet files keep integer fen (*_fen columns)"))
    rows.append(("点值 point value", "元/点 yuan per point", "", ""))
    rows.append(("点数 points", "点 points", "", "基准点数×系数 base points × coefficient"))
    rows.append(("住院日 length of stay", "天 days", "", ""))
    rows.append(("section", "工作表 sheets"))
    for name, zh, en in sheets:
        rows.append((name, zh, "", en))
    rows.append((GLOSSARY, "列名与取值的中英文对照和含义", "", "column names and coded values"))
    summ = tables["summary"]
    rest = summ[~summ["item"].astype(str).str.startswith("drgsim.")]
    if len(rest):
        rows.append(("section", "运行摘要 run summary (summary.parquet, as printed)"))
        for _, r in rest.iterrows():
            v = _as_number(r["value"])
            rows.append((str(r["item"]), v, "ratio" if isinstance(v, float) else "", ""))

    return rows


def _as_number(v: Any) -> Any:
    """'1,234.50' -> 1234.5, '12' -> 12; anything else unchanged (text stays text)."""
    s = str(v).replace(",", "").strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        x = float(s)
    except ValueError:
        return str(v)
    return x if math.isfinite(x) else str(v)


def _write_overview(book: _Book, rows: list[tuple]) -> None:
    ws = book.wb.add_worksheet(OVERVIEW)
    ws.write_string(0, 0, "drgsim 模拟结果 simulation results", book.title)
    ws.write_row(2, 0, ["项目 item", "值 value", "说明 note"], book.header)
    r = 3
    for row in rows:
        if row[0] == "section":
            ws.merge_range(r, 0, r, 2, row[1], book.section)
        else:
            item, v, kind, note = row
            ws.write_string(r, 0, item)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                ws.write_number(r, 1, v, book.num.get(kind))  # no kind: General
            else:
                ws.write_string(r, 1, str(v), book.wrap)
            if note:
                ws.write_string(r, 2, note)
        r += 1
    ws.set_column(0, 0, 52)
    ws.set_column(1, 1, 60, book.wrap)
    ws.set_column(2, 2, 70)
    ws.freeze_panes(3, 0)


def _write_glossary(book: _Book, shown: list[Column]) -> None:
    ws = book.wb.add_worksheet(GLOSSARY)
    head = ["中文 label", "工作表列名 workbook column", "parquet 列名 parquet column", "单位 unit",
            "含义", "meaning"]
    ws.write_row(0, 0, head, book.header)
    unit = {"money": "元 yuan (parquet: 分 fen)", "pv": "元/点 yuan per point",
            "points": "点 points"}
    seen: set[str] = set()
    r = 1
    for c in shown:
        if c.name in seen:
            continue
        seen.add(c.name)
        ws.write_row(r, 0, [c.zh, c.shown, c.name, unit.get(c.kind, ""), c.meaning_zh, c.meaning_en])
        r += 1
    ws.autofilter(0, 0, r - 1, len(head) - 1)
    r += 1
    ws.write_row(r, 0, ["取值 value", "列 column", "代码 code", "", "含义", ""], book.header)
    r += 1
    for (col, val), (zh, meaning) in value_labels().items():
        ws.write_row(r, 0, [zh, col, val, "", meaning])
        r += 1
    for j, w in enumerate((22, 30, 30, 24, 56, 64)):
        ws.set_column(j, j, w)
    ws.freeze_panes(1, 0)


def write_workbook(
    tables: Mapping[str, pd.DataFrame], path: str | os.PathLike[str]
) -> Path:
    """The result tables as ``path`` (xlsx, written atomically): 说明 first, one sheet per
    table, 术语 last. Money in yuan (two decimals); the parquet tables stay in fen."""
    info = hospital_info(tables)
    frames = []
    summary = tables.get("summary")
    dip = summary is not None and str(summary.attrs.get("drgsim.method", "drg")) == "dip"
    for key, name, zh, en in SHEETS:
        t = tables.get(key)
        if t is None or not len(t):
            continue
        if dip and key == "drgs":  # by packet, as packets.parquet
            _, name, zh, en = DIP_SHEET
            t = t.rename(columns={"drg": "packet"})
        d = with_hospital_info(t, info) if key != "weights" else t
        frames.append((name, zh, en, d))
    p = Path(path)
    with atomic_path(p) as tmp:
        book = _Book(tmp)
        try:
            _write_overview(
                book, _overview_rows(tables, [(n, z, e) for n, z, e, _ in frames], len(info) > 0)
            )
            shown: list[Column] = []
            for name, _, _, d in frames:
                shown += book.table(name, d)
            _write_glossary(book, shown)
        finally:
            book.close()
    return p


__all__ = ["SHEETS", "budget_arithmetic", "hospital_info", "with_hospital_info", "write_workbook"]
