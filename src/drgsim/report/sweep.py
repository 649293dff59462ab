"""A sweep's outputs: its tidy tables as parquet, ``sweep.xlsx`` for the bureau meeting
and four plots, written as one folder (manifest last).

Everything is built from the tidy DataFrames of a ``SweepResult`` (``scenarios``,
``routes``, ``hospitals``, ``funds``, ``summary(losing)``, ``provenance``): anything with
those attributes can be reported. Thousands of scenarios stay in parquet; the workbook
holds the summary of every scenario and the per-hospital changes of the few a report
names, within Excel's row limit.
"""

from __future__ import annotations

import json
import math
import os
import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from drgsim.output import OutputFolder, fingerprint
from drgsim.report.workbook import EXCEL_MAX_ROWS, FUND_ZH, _Book, _write_glossary

SWEEP_TABLES = ("scenarios", "routes", "hospitals", "funds", "summary", "months")
SWEEP_PLOTS = ("pv_fan.png", "winners_losers.png", "fund_balance.png", "heatmap.png")
SWEEP_WORKBOOK = "sweep.xlsx"
#: every file write_sweep_outputs may write (an earlier run's file not rewritten is removed)
SWEEP_FILES = (*(f"{t}.parquet" for t in SWEEP_TABLES), SWEEP_WORKBOOK, *SWEEP_PLOTS)
DEFAULT_REPORTED = 5  # scenarios with per-hospital rows in the workbook, unless --report
MAX_WINNER_PANELS = 4
MAX_BARS = 160  # above this, plots draw areas and lines instead of one bar per item
FIXED_COLUMNS = ("scenario", "name", "overlay", "route", "reason", "note")
HOSPITAL_SHEET_COLUMNS = ("scenario", "name", "fund", "hospital_id", "hospital_name", "level",
                          "cases", "points", "cost_fen", "received_fen", "surplus_fen",
                          "delta_fen", "delta_pct")

LABELS = {
    "fan_title": ("点值（元/点）：各情景的抽样分布", "Point value (yuan/point) by scenario over draws"),
    "pv": ("点值（元/点）", "Point value (yuan/point)"),
    "scenario": ("情景", "Scenario"),
    "band90": ("P5–P95", "P5–P95"),
    "band50": ("P25–P75", "P25–P75"),
    "median": ("中位数", "median"),
    "baseline": ("基线", "baseline"),
    "wl_title": ("医院所得较基线变化（两基金合计）", "Change of each hospital's revenue against "
                 "the baseline (both funds)"),
    "change": ("较基线变化（%）", "Change against the baseline (%)"),
    "hospitals": ("医院（按变化排序）", "Hospitals (sorted by change)"),
    "winners": ("增加", "gain"),
    "losers": ("减少", "lose"),
    "threshold": ("亏损阈值", "losing threshold"),
    "fb_title": ("基金结余（万元）按情景", "Fund balance (10k yuan) by scenario"),
    "fb": ("基金结余（万元）", "Fund balance (10k yuan)"),
    "hm_pv": ("点值（元/点）", "Point value (yuan/point)"),
    "hm_change": ("医院较基线变化率中位数（%）", "Median hospital change against the baseline (%)"),
}


class SweepLike(Protocol):
    """What the report needs of a sweep result (``drgsim.scenarios.SweepResult``)."""

    scenarios: pd.DataFrame
    routes: pd.DataFrame
    hospitals: pd.DataFrame
    funds: pd.DataFrame
    provenance: dict[str, str]

    def summary(self, losing: float = -0.02) -> pd.DataFrame: ...


# ----------------------------------------------------------------------------- selection
def parse_report(text: str | int | Sequence[int] | None) -> int | list[int] | None:
    """``--report``: a count (``5``: the first five scenarios after the baseline) or ids
    (``3,7,12``). Raises ValueError for anything else."""
    if text is None or isinstance(text, int):
        return text
    if not isinstance(text, str):
        return [int(x) for x in text]
    s = text.strip()
    try:
        if "," not in s:
            n = int(s)
            if n < 0:
                raise ValueError
            return n
        ids = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{text!r}: give a count (5) or scenario ids (3,7,12)") from None
    if any(i < 0 for i in ids):
        raise ValueError(f"{text!r}: scenario ids are ≥ 0")
    return ids


def reported_scenarios(res: SweepLike, report: int | Sequence[int] | None = None) -> list[int]:
    """The scenarios whose per-hospital changes the workbook shows: the ids ``report``
    names, or the first ``report`` (default 5) after the baseline; cut so the rows fit a
    sheet. Unknown ids raise ValueError."""
    ids = [int(x) for x in res.scenarios["scenario"]]
    if report is None or isinstance(report, int):
        n = DEFAULT_REPORTED if report is None else report
        chosen = [i for i in ids if i != 0][:n] or ids[:1]
    else:
        unknown = [i for i in report if i not in set(ids)]
        if unknown:
            raise ValueError(f"no scenario {', '.join(map(str, unknown))} to report "
                             f"(ids run {min(ids)}..{max(ids)})")
        chosen = list(dict.fromkeys(int(i) for i in report))
    per = max(len(hospital_changes(res, chosen[:1])), 1) if chosen else 1
    fit = max((EXCEL_MAX_ROWS - 1) // per, 1)
    if len(chosen) > fit:
        warnings.warn(f"workbook: per-hospital changes of {fit} of the {len(chosen)} reported "
                      "scenarios fit in a sheet (the parquet table has them all)", stacklevel=2)
        chosen = chosen[:fit]
    return chosen


def axis_columns(scenarios: pd.DataFrame) -> list[str]:
    """The scenarios table's axis columns (one per swept key)."""
    return [c for c in scenarios.columns if c not in FIXED_COLUMNS]


def point_values(funds: pd.DataFrame) -> pd.Series:
    """The point value the settlement used per funds row: ``pv`` (or ``pv_used``) when
    the engine gives it, else the total-cost basis (the baseline policy's basis)."""
    for c in ("pv", "pv_used", "pv_total_cost"):
        if c in funds.columns:
            return pd.to_numeric(funds[c], errors="coerce").astype("float64")
    return pd.Series(np.nan, index=funds.index)


def _names(res: SweepLike) -> pd.Series:
    s = res.scenarios.set_index("scenario")
    return s["name"] if "name" in s.columns else pd.Series(s.index.astype(str), index=s.index)


def hospital_changes(res: SweepLike, ids: Sequence[int]) -> pd.DataFrame:
    """Per-hospital changes of the scenarios ``ids`` for the sheet: the rows as they are
    with one draw; with several, per scenario, fund and hospital the mean over draws and
    P5/P50/P95 of the change."""
    h = res.hospitals
    h = h[h["scenario"].isin(list(ids))]
    keep = [c for c in HOSPITAL_SHEET_COLUMNS if c in h.columns or c == "name"]
    ndraw = h["draw"].nunique() if "draw" in h.columns and len(h) else 1
    if ndraw <= 1:
        d = h.copy()
    else:
        keys = [c for c in ("scenario", "fund", "hospital_id", "hospital_name", "level")
                if c in h.columns]
        g = h.groupby(keys, sort=False, dropna=False, observed=True)
        money = [c for c in ("cases", "points", "cost_fen", "received_fen", "surplus_fen",
                             "delta_fen") if c in h.columns]
        d = g[money].mean()
        for c in money:
            if c.endswith("_fen"):
                d[c] = d[c].round().astype("int64")
        q = g["delta_pct"].quantile([0.05, 0.5, 0.95]).unstack()
        d["delta_pct_p5"], d["delta_pct_p50"], d["delta_pct_p95"] = q[0.05], q[0.5], q[0.95]
        d["draws"] = g.size()
        d = d.reset_index()
        keep = [c for c in keep if c != "delta_pct"] + ["delta_pct_p5", "delta_pct_p50",
                                                        "delta_pct_p95", "draws"]
    d.insert(1, "name", d["scenario"].map(_names(res)))
    d = d[[c for c in keep if c in d.columns]]
    order = {s: i for i, s in enumerate(ids)}
    return d.sort_values(["scenario"], key=lambda s: s.map(order), kind="stable").reset_index(
        drop=True)


# ----------------------------------------------------------------------------- workbook
SWEEP_SHEETS = (
    ("summary", "汇总 summary", "每个情景：点值、基金结余、医院变化率P5/P50/P95（总体与按等级）、"
     "亏损超阈值医院数、DRG付费覆盖率",
     "per scenario: point value, fund balance, P5/P50/P95 of the hospitals' change (overall "
     "and by level), hospitals losing more than the threshold, DRG coverage"),
    ("scenarios", "情景 scenarios", "每个情景的参数取值、参数覆盖与计算路径",
     "each scenario's axis values, overlay and route"),
    ("funds", "基金 funds", "每个情景×抽样×基金：预算、点值、上下限、通道、基金结余",
     "per scenario, draw and fund: budget, point values, bounds, corridor, fund balance"),
    ("hospital_changes", "医院变化 hospitals", "所选情景中每个医院×基金较基线的变化",
     "per hospital and fund: the change against the baseline, for the reported scenarios"),
    ("routes", "路径 routes", "每个情景的计算路径及原因", "each scenario's route and why"),
)


def _json_text(v: Any) -> Any:
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)
    return v


def _sheet_frames(res: SweepLike, summary: pd.DataFrame, ids: list[int]) -> dict[str, Any]:
    names = _names(res)
    scen = res.scenarios.copy()
    for c in axis_columns(scen):
        scen[c] = scen[c].map(_json_text)
    summ = summary.copy()
    if "name" not in summ.columns and "scenario" in summ.columns:
        summ.insert(1, "name", summ["scenario"].map(names))
    funds = res.funds
    note = ""
    if len(funds) > EXCEL_MAX_ROWS - 1:
        funds = funds[funds["scenario"].isin([0, *ids])]
        note = (f"funds sheet: the baseline and the reported scenarios only ({len(funds):,} of "
                f"{len(res.funds):,} rows; funds.parquet has them all)")
    return {"summary": summ, "scenarios": scen, "funds": funds,
            "hospital_changes": hospital_changes(res, ids), "routes": res.routes, "_note": note}


def _overview(res: SweepLike, frames: dict[str, Any], ids: list[int], losing: float,
              plots: dict[str, str]) -> list[tuple]:
    prov = {str(k): str(v) for k, v in (res.provenance or {}).items()}
    rows: list[tuple] = [("section", "运行信息 run")]
    for k, v in sorted(prov.items()):
        rows.append((k, v, "", ""))
    h, f = res.hospitals, res.funds
    ndraw = int(h["draw"].nunique()) if "draw" in h.columns and len(h) else 1
    rows.append(("section", "规模 size"))
    rows.append(("情景数 scenarios", len(res.scenarios), "int", "含基线（编号 0） with the baseline (id 0)"))
    rows.append(("抽样数 draws", ndraw, "int", "每个情景 per scenario"))
    rows.append(("医院数 hospitals", int(h["hospital_id"].nunique()) if len(h) else 0, "int", ""))
    rows.append(("基金 funds", ", ".join(f"{FUND_ZH.get(x, x)} {x}" for x in
                                       dict.fromkeys(f["fund"])) if len(f) else "", "", ""))
    rows.append(("亏损阈值 losing threshold", losing, "ratio",
                 "较基线变化率低于该值的医院计为亏损 hospitals whose change is below it"))
    rows.append(("section", "工作表 sheets"))
    for key, name, zh, en in SWEEP_SHEETS:
        if key in frames:
            rows.append((name, zh, "", en))
    shown = ", ".join(str(i) for i in ids)
    rows.append(("医院变化所列情景 reported scenarios", shown, "",
                 "--report 选择；全部情景见 hospitals.parquet all scenarios are in "
                 "hospitals.parquet"))
    if frames.get("_note"):
        rows.append(("注 note", frames["_note"], "", ""))
    fb = f["fund_balance_fen"] if "fund_balance_fen" in f.columns else pd.Series(dtype="Int64")
    if not len(fb) or fb.isna().all():
        rows.append(("基金结余 fund balance", "未计算 not computed", "",
                     "未提供地区基金收支表 no region table with fund income and other spending"))
    rows.append(("section", "图 plots"))
    for name, what in plots.items():
        rows.append((name, what, "", ""))
    rows.append(("section", "单位 units"))
    rows.append(("金额 money", "元 yuan", "", "两位小数；parquet 文件中为整数“分”（*_fen 列）"
                 " two decimals; parquet files keep integer fen (*_fen columns)"))
    rows.append(("变化率 change", "0.01 = 1%", "", "较基线 against the baseline scenario"))
    rows.append(("点值 point value", "元/点 yuan per point", "", ""))
    return rows


def write_sweep_workbook(res: SweepLike, path: str | os.PathLike[str],
                         report: int | Sequence[int] | None = None, losing: float = -0.02,
                         summary: pd.DataFrame | None = None,
                         plots: dict[str, str] | None = None) -> Path:
    """``sweep.xlsx`` (written atomically): 说明, the summary per scenario, the scenario
    parameters, funds, per-hospital changes of the reported scenarios, routes, 术语."""
    from drgsim.output import atomic_path
    from drgsim.report.workbook import _write_overview

    ids = reported_scenarios(res, report)
    summ = res.summary(losing=losing) if summary is None else summary
    frames = _sheet_frames(res, summ, ids)
    rows = _overview(res, frames, ids, losing, plots or {})
    p = Path(path)
    with atomic_path(p) as tmp:
        book = _Book(tmp)
        try:
            _write_overview(book, rows)
            book.wb.worksheets()[0].write_string(0, 0, "drgsim 情景模拟 scenario sweep",
                                                 book.title)
            shown = []
            for key, name, _, _ in SWEEP_SHEETS:
                d = frames.get(key)
                if d is not None and len(d.columns):
                    shown += book.table(name, d.reset_index(drop=True))
            _write_glossary(book, shown)
        finally:
            book.close()
    return p


# ----------------------------------------------------------------------------- plots
def _quantiles(df: pd.DataFrame, by: list[str], col: str) -> pd.DataFrame:
    g = df.groupby(by, sort=True, observed=True)[col]
    q = g.quantile([0.05, 0.25, 0.5, 0.75, 0.95]).unstack()
    q.columns = ["p5", "p25", "p50", "p75", "p95"]
    q["mean"] = g.mean()
    return q


def hospital_totals(res: SweepLike, ids: Sequence[int]) -> pd.DataFrame:
    """Per scenario, draw and hospital (funds summed): received, change in fen and as a
    share of the baseline's received."""
    h = res.hospitals
    h = h[h["scenario"].isin(list(ids))]
    g = h.groupby(["scenario", "draw", "hospital_id"], sort=True, observed=True)[
        ["received_fen", "delta_fen"]].sum()
    base = g["received_fen"] - g["delta_fen"]
    g["change"] = np.where(base != 0, g["delta_fen"] / base.where(base != 0, 1), np.nan)
    return g.reset_index()


def write_sweep_plots(res: SweepLike, out_dir: str | os.PathLike[str],
                      report: int | Sequence[int] | None = None, losing: float = -0.02,
                      summary: pd.DataFrame | None = None) -> tuple[list[Path], dict[str, str]]:
    """The four plots (PNG, Agg, no pyplot); returns the files written and, per plot
    name, what it shows or why it was not drawn."""
    import matplotlib
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    from drgsim.output import atomic_path
    from drgsim.report import CJKFontWarning, find_cjk_font

    font = find_cjk_font()
    zh = font is not None
    if not zh:
        warnings.warn("no CJK font found (e.g. apt install fonts-noto-cjk): plots use Latin "
                      "labels", CJKFontWarning, stacklevel=2)

    def L(key: str) -> str:
        return LABELS[key][0 if zh else 1]

    def fund_label(f: str) -> str:
        return FUND_ZH.get(f, f) if zh else f

    rc = {"font.sans-serif": [font, "DejaVu Sans"], "axes.unicode_minus": False} if zh else {}
    out = Path(out_dir)
    paths: list[Path] = []
    notes: dict[str, str] = {}
    ids = reported_scenarios(res, report)
    summ = res.summary(losing=losing) if summary is None else summary
    names = _names(res)
    funds = res.funds.assign(_pv=point_values(res.funds))
    fund_list = list(dict.fromkeys(funds["fund"]))
    scen_ids = sorted(int(x) for x in res.scenarios["scenario"])

    def save(fig: Any, name: str, what: str) -> None:
        p = out / name
        with atomic_path(p) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        paths.append(p)
        notes[name] = what

    def ticks(ax: Any, xs: list[int]) -> None:
        if len(xs) <= 12:
            ax.set_xticks(xs)
            ax.set_xticklabels([f"[{i}]\n" + "\n".join(textwrap.wrap(
                str(names.get(i, i)), 24)[:3]) for i in xs], fontsize=6)
        ax.set_xlabel(L("scenario"))

    with matplotlib.rc_context(rc):
        # 1. point value fan chart over draws
        fig = Figure(figsize=(max(7, min(14, 0.5 * len(scen_ids) + 5)), 3.6 * len(fund_list)))
        axes = np.atleast_1d(fig.subplots(len(fund_list), 1, squeeze=False)[:, 0])
        for ax, fund in zip(axes, fund_list, strict=True):
            q = _quantiles(funds[funds["fund"] == fund], ["scenario"], "_pv")
            x = q.index.to_numpy()
            ax.fill_between(x, q["p5"], q["p95"], alpha=0.2, color="#2471A3", label=L("band90"))
            ax.fill_between(x, q["p25"], q["p75"], alpha=0.35, color="#2471A3",
                            label=L("band50"))
            ax.plot(x, q["p50"], marker="o" if len(x) <= 60 else None, color="#1B4F72",
                    label=L("median"))
            if 0 in q.index:
                ax.axhline(q.loc[0, "p50"], color="black", linestyle="--", linewidth=1,
                           label=L("baseline"))
            ax.set_ylabel(L("pv"))
            ax.set_title(fund_label(fund), fontsize=10)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
            ticks(ax, [int(v) for v in x])
        fig.suptitle(L("fan_title"))
        fig.tight_layout()
        save(fig, "pv_fan.png", "point value by scenario: median, P25–P75, P5–P95 over draws")

        # 2. winners and losers per hospital
        panels = [i for i in ids if i != 0][:MAX_WINNER_PANELS] or ids[:1]
        tot = hospital_totals(res, panels)
        fig = Figure(figsize=(10, 3.2 * len(panels)))
        axes = np.atleast_1d(fig.subplots(len(panels), 1, squeeze=False)[:, 0])
        for ax, sid in zip(axes, panels, strict=True):
            t = tot[tot["scenario"] == sid]
            q = t.groupby("hospital_id", observed=True)["change"].quantile(
                [0.05, 0.5, 0.95]).unstack()
            q = q.sort_values(0.5)
            y = q[0.5].to_numpy() * 100
            xs = np.arange(len(q))
            if len(y) <= MAX_BARS:
                ax.bar(xs, y, color=np.where(y < 0, "#C0392B", "#229954"), width=0.85)
            else:  # thousands of hospitals: two filled areas, not thousands of bars
                ax.fill_between(xs, 0, y, where=y < 0, color="#C0392B", step="mid")
                ax.fill_between(xs, 0, y, where=y >= 0, color="#229954", step="mid")
            if t["draw"].nunique() > 1:
                ax.vlines(xs, q[0.05].to_numpy() * 100, q[0.95].to_numpy() * 100,
                          color="grey", linewidth=0.8)
            ax.axhline(losing * 100, color="black", linestyle="--", linewidth=1,
                       label=f"{L('threshold')} {losing:.0%}")
            ax.axhline(0, color="black", linewidth=0.6)
            nw, nl = int((y > 0).sum()), int((y < 0).sum())
            nt = int((y < losing * 100).sum())
            ax.set_title(f"[{sid}] {str(names.get(sid, sid))[:80]}\n{L('winners')} {nw} · "
                         f"{L('losers')} {nl} · {L('threshold')} {losing:.0%}: {nt} "
                         f"/ {len(y)}", fontsize=9)
            ax.set_ylabel(L("change"))
            ax.set_xticks([])
            ax.grid(True, axis="y", alpha=0.3)
            ax.legend(fontsize=7, loc="upper left")
        axes[-1].set_xlabel(L("hospitals"))
        fig.suptitle(L("wl_title"))
        fig.tight_layout()
        save(fig, "winners_losers.png",
             "each hospital's change against the baseline (median over draws, P5–P95 bars) "
             f"in scenarios {', '.join(map(str, panels))}")

        # 3. fund balance by scenario
        fb = (pd.to_numeric(funds["fund_balance_fen"], errors="coerce")
              if "fund_balance_fen" in funds.columns else pd.Series(np.nan, index=funds.index))
        if fb.notna().any():
            fig = Figure(figsize=(max(7, min(14, 0.5 * len(scen_ids) + 5)), 4))
            ax = fig.subplots()
            width = 0.8 / len(fund_list)
            for k, fund in enumerate(fund_list):
                d = funds.assign(_fb=fb / 1e6)[funds["fund"] == fund]
                q = _quantiles(d, ["scenario"], "_fb")
                if len(q) > MAX_BARS // 4:  # many scenarios: a line and its band
                    line = ax.plot(q.index, q["mean"], label=fund_label(fund), linewidth=1)
                    if d["draw"].nunique() > 1:
                        ax.fill_between(q.index, q["p5"], q["p95"], alpha=0.2,
                                        color=line[0].get_color())
                    continue
                x = q.index.to_numpy() + (k - (len(fund_list) - 1) / 2) * width
                ax.bar(x, q["mean"], width=width, label=fund_label(fund))
                if d["draw"].nunique() > 1:
                    ax.vlines(x, q["p5"], q["p95"], color="black", linewidth=0.8)
            ax.axhline(0, color="black", linewidth=0.6)
            ax.set_ylabel(L("fb"))
            ax.set_title(L("fb_title"))
            ax.grid(True, axis="y", alpha=0.3)
            ax.legend(fontsize=8)
            ticks(ax, scen_ids)
            fig.tight_layout()
            save(fig, "fund_balance.png", "fund balance per fund and scenario (mean over "
                 "draws, P5–P95 bars)")
        else:
            notes["fund_balance.png"] = "not drawn: no fund balance (no region table)"

        # 4. heatmap over two grid axes
        scen = res.scenarios[res.scenarios["scenario"] != 0]
        axes_cols = [c for c in axis_columns(scen)
                     if scen[c].map(_json_text).astype(str).nunique() > 1]
        if len(axes_cols) >= 2:
            a, b = axes_cols[:2]
            key = scen[["scenario", a, b]].copy()
            for c in (a, b):
                key[c] = key[c].map(_json_text)
            first = funds[funds["fund"] == fund_list[0]]
            pv = first.groupby("scenario", observed=True)["_pv"].mean()
            key["pv"] = key["scenario"].map(pv)
            metrics = [("pv", f"{L('hm_pv')} {fund_label(fund_list[0])}", "{:.2f}")]
            if "change_p50" in summ.columns:
                key["change"] = key["scenario"].map(
                    summ.set_index("scenario")["change_p50"]) * 100
                metrics.append(("change", L("hm_change"), "{:+.2f}%"))
            fig = Figure(figsize=(6 * len(metrics), 4.8))
            axs = np.atleast_1d(fig.subplots(1, len(metrics), squeeze=False)[0])
            for ax, (m, title, fmt) in zip(axs, metrics, strict=True):
                grid = key.pivot_table(index=a, columns=b, values=m, aggfunc="mean")
                vals = grid.to_numpy(dtype=float)
                norm = None
                if m == "change" and np.isfinite(vals).any():
                    lim = max(float(np.nanmax(np.abs(vals))), 1e-9)
                    norm = TwoSlopeNorm(0.0, -lim, lim)
                im = ax.imshow(vals, aspect="auto", origin="lower", cmap="RdYlGn", norm=norm)
                ax.set_xticks(range(grid.shape[1]))
                ax.set_xticklabels([_tick(v) for v in grid.columns], rotation=30, fontsize=7)
                ax.set_yticks(range(grid.shape[0]))
                ax.set_yticklabels([_tick(v) for v in grid.index], fontsize=7)
                ax.set_xlabel(b)
                ax.set_ylabel(a)
                ax.set_title(title, fontsize=9)
                fig.colorbar(im, ax=ax)
                if vals.size <= 144:
                    for (r, c), v in np.ndenumerate(vals):
                        if not math.isnan(v):
                            ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=7)
            fig.tight_layout()
            others = axes_cols[2:]
            save(fig, "heatmap.png", f"point value and median hospital change over {a} × {b}"
                 + (f" (averaged over {', '.join(others)})" if others else ""))
        else:
            notes["heatmap.png"] = "not drawn: fewer than two grid axes vary"
    return paths, notes


def _tick(v: Any) -> str:
    try:
        return f"{float(v):g}"
    except (TypeError, ValueError):
        return str(v)[:16]


# ----------------------------------------------------------------------------- folder
def write_sweep_outputs(res: SweepLike, out_dir: str | os.PathLike[str],
                        run_fingerprint: str = "", report: int | Sequence[int] | None = None,
                        losing: float = -0.02) -> dict[str, Path]:
    """The sweep's tables as parquet (with provenance), ``sweep.xlsx`` and the plots into
    ``out_dir`` as one unit (:class:`drgsim.output.OutputFolder`, manifest last)."""
    from drgsim.report import write_parquet

    out = Path(out_dir)
    prov = {str(k): str(v) for k, v in (res.provenance or {}).items()}
    folder = OutputFolder(out, run_fingerprint or fingerprint(options=prov), owned=SWEEP_FILES)
    folder.open()
    written: dict[str, Path] = {}
    summ = res.summary(losing=losing)
    tables = {"scenarios": res.scenarios, "routes": res.routes, "hospitals": res.hospitals,
              "funds": res.funds, "summary": summ, "months": getattr(res, "months", None)}
    for name in SWEEP_TABLES:
        t = tables.get(name)
        if isinstance(t, pd.DataFrame):
            d = t.copy()
            for c in axis_columns(d) if name == "scenarios" else []:
                if d[c].map(lambda v: isinstance(v, (dict, list))).any():
                    d[c] = d[c].map(_json_text).astype("string")
            p = out / f"{name}.parquet"
            write_parquet(d, p, {**prov, "drgsim.table": name,
                                 "drgsim.losing_threshold": str(losing)})
            written[name] = p
    plots, notes = write_sweep_plots(res, out, report, losing, summ)
    for p in plots:
        written[p.stem] = p
    written["workbook"] = write_sweep_workbook(res, out / SWEEP_WORKBOOK, report, losing, summ,
                                               notes)
    for p in written.values():
        folder.record(p.name)
    folder.commit({"command": "sweep", "provenance": prov,
                   "scenarios": int(len(res.scenarios)), "plots": notes})
    return written


__all__ = [
    "SWEEP_FILES",
    "hospital_changes",
    "hospital_totals",
    "parse_report",
    "point_values",
    "reported_scenarios",
    "write_sweep_outputs",
    "write_sweep_plots",
    "write_sweep_workbook",
]
