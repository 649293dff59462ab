"""Writing a simulation's outputs: parquet tables with provenance, an Excel workbook, plots.

xlsxwriter and matplotlib are core dependencies but are imported only inside the writers,
so that grouping (and ``import drgsim``) never loads them.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from drgsim.output import OutputFolder, atomic_path, fingerprint
from drgsim.report.workbook import SHEETS, budget_arithmetic, hospital_info, write_workbook

PARQUET_TABLES = (
    "cases",
    "hospitals",
    "months",
    "drgs",
    "funds",
    "ledger",
    "pay_status",
    "summary",
    "weights",
)
WORKBOOK_SHEETS = tuple(t for t, *_ in SHEETS)  # tables that get a sheet of their own
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans CJK TC",
    "Noto Sans SC",
    "Noto Serif CJK SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Heiti SC",
    "STHeiti",
    "AR PL UMing CN",
    "Droid Sans Fallback",
)


class CJKFontWarning(UserWarning):
    """No CJK font found: plots use Latin labels."""


def write_parquet(
    df: pd.DataFrame, path: str | os.PathLike[str], provenance: dict[str, str]
) -> None:
    """One table as parquet with drgsim provenance in the key-value metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = df.copy()
    d.attrs = {}
    for c in d.columns:
        if d[c].dtype == object:
            d[c] = d[c].astype("string")
    t = pa.Table.from_pandas(d, preserve_index=False)
    meta = dict(t.schema.metadata or {})
    meta.update({k.encode(): str(v).encode() for k, v in provenance.items()})
    with atomic_path(path) as tmp:
        pq.write_table(t.replace_schema_metadata(meta), tmp)


def find_cjk_font() -> str | None:
    """Name of an installed font that renders Chinese, or None."""
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    for n in CJK_FONTS:
        if n in names:
            return n
    for n in sorted(names):
        if "CJK" in n or "Hei" in n or "Han Sans" in n:
            return n
    return None


LABELS = {
    "pv_title": ("点值（元/点）按月", "Point value (yuan per point) by month"),
    "month": ("月份", "Month"),
    "pv": ("点值（元/点）", "Point value (yuan/point)"),
    "provisional": ("月度预结算点值", "provisional (monthly)"),
    "final": ("年度清算点值", "final (annual)"),
    "pay_title": (
        "医院收入与费用之比（医保支付＋个人负担，两基金合计）",
        "Hospital revenue / cost (fund payment + patients' share, both funds)",
    ),
    "before": ("不含费用通道调节", "before corridor transfers"),
    "after": ("含通道超支补偿与结余追回", "after corridor refunds and clawbacks"),
    "cost": ("医疗总费用（万元）", "Cost (10k yuan)"),
    "cost_log": ("医疗总费用（万元，对数坐标）", "Cost (10k yuan, log scale)"),
    "ratio": ("收入 ÷ 费用（%）", "Revenue / cost (%)"),
    "break_even": ("盈亏平衡线 100%", "break-even 100%"),
    "losing": ("亏损医院", "hospitals below break-even"),
    "moved": ("通道调节（自左图起）", "corridor transfer (from the left panel)"),
    "fund": {"employee": ("职工医保", "employee"), "resident": ("居民医保", "resident")},
}
# hospital level -> (Chinese, Latin label, colour, marker)
LEVELS = {
    "3": ("三级医院", "Level 3 (tertiary)", "#C0392B", "o"),
    "2": ("二级医院", "Level 2 (secondary)", "#2471A3", "s"),
    "1": ("一级医院", "Level 1 (primary)", "#229954", "^"),
    "?": ("等级未知", "level unknown", "#7F7F7F", "x"),
}


def level_key(level: object) -> str:
    """'三级' / '3级' / 'level 3' -> '3'; anything unrecognised -> '?'."""
    s = "" if level is None or (not isinstance(level, str) and pd.isna(level)) else str(level)
    for k, zh in (("3", "三"), ("2", "二"), ("1", "一")):
        if zh in s or k in s:
            return k
    return "?"


def hospital_revenue(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per hospital (funds summed): cost, revenue before and after the corridor, level."""
    h = tables["hospitals"]
    refund = h.get("corridor_refund_fen", 0)
    claw = h.get("corridor_clawback_fen", 0)
    if "received_fen" in h:
        after = h["received_fen"]
    else:
        after = h["annual_payment_fen"] + h["patient_share_fen"] + refund - claw
    d = pd.DataFrame(
        {
            "hospital_id": h["hospital_id"].astype(str),
            "cost_fen": h["cost_fen"],
            "after_fen": after,
            "before_fen": after - refund + claw,
        }
    )
    g = d.groupby("hospital_id", sort=True).sum()
    info = hospital_info(tables)
    g["level"] = [level_key(info["hospital_level"].get(i)) for i in g.index]
    return g


def write_plots(tables: dict[str, pd.DataFrame], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Point value by month, and each hospital's revenue over cost by level before and
    after the corridor transfers (PNG, Agg backend)."""
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: the caller's backend is left alone

    font = find_cjk_font()
    zh = font is not None
    if not zh:
        warnings.warn(
            "no CJK font found (e.g. apt install fonts-noto-cjk): plots use Latin labels",
            CJKFontWarning,
            stacklevel=2,
        )

    def L(key: str, sub: str | None = None) -> str:
        v = LABELS[key] if sub is None else LABELS[key][sub]  # type: ignore[index]
        return v[0] if zh else v[1]

    rc = {"font.sans-serif": [font, "DejaVu Sans"], "axes.unicode_minus": False} if zh else {}
    out = Path(out_dir)
    paths = []

    def save(fig, name: str) -> None:
        p = out / name
        with atomic_path(p) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        paths.append(p)

    with matplotlib.rc_context(rc):
        months, funds = tables["months"], tables["funds"]
        fig = Figure(figsize=(8, 4.5))
        ax = fig.subplots()
        for _, f in funds.iterrows():
            m = months[months["fund"] == f["fund"]].groupby("month")["provisional_pv"].first()
            name = LABELS["fund"].get(f["fund"], (f["fund"], f["fund"]))[0 if zh else 1]
            line = ax.plot(m.index, m.values, marker="o", label=f"{name} {L('provisional')}")
            ax.axhline(
                f["pv_used"],
                linestyle="--",
                color=line[0].get_color(),
                label=f"{name} {L('final')}",
            )
        ax.set_xlabel(L("month"))
        ax.set_ylabel(L("pv"))
        ax.set_title(L("pv_title"))
        ax.set_xticks(range(1, 13))
        ax.legend(fontsize=8)
        fig.tight_layout()
        save(fig, "point_value_by_month.png")

        g = hospital_revenue(tables)
        g = g[g["cost_fen"] > 0]
        fig = Figure(figsize=(12, 5.5))
        axes = fig.subplots(1, 2, sharex=True, sharey=True)
        x = g["cost_fen"].to_numpy(dtype=np.float64) / 1e6
        cost = g["cost_fen"].to_numpy(dtype=np.float64)
        y0 = g["before_fen"].to_numpy(dtype=np.float64) / cost * 100
        for ax, col, sub in ((axes[0], "before_fen", "before"), (axes[1], "after_fen", "after")):
            y = g[col].to_numpy(dtype=np.float64) / cost * 100
            if col == "after_fen":  # each hospital's move from the left panel
                moved = y != y0
                if moved.any():
                    ax.vlines(x[moved], y0[moved], y[moved], color="grey", linewidth=1,
                              alpha=0.7, label=L("moved"), zorder=1)
            for k, (lz, ll, colour, marker) in LEVELS.items():
                m = (g["level"] == k).to_numpy()
                if m.any():
                    ax.scatter(x[m], y[m], s=30 if len(x) <= 200 else 12, alpha=0.8,
                               color=colour, marker=marker,
                               label=f"{lz if zh else ll} ({int(m.sum())})")
            ax.axhline(100, color="black", linestyle="--", linewidth=1, label=L("break_even"))
            ax.set_title(f"{L(sub)}\n{L('losing')}: {int((y < 100).sum())} / {len(y)}",
                         fontsize=10)
            ax.set_xlabel(L("cost"))
            ax.grid(True, alpha=0.3)
            if len(x) and x.min() > 0 and x.max() / x.min() > 20:  # sizes span decades
                ax.set_xscale("log")
                ax.set_xlabel(L("cost_log"))
        axes[0].set_ylabel(L("ratio"))
        handles, labels = axes[1].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9,
                   frameon=False)
        fig.suptitle(L("pay_title"))
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        save(fig, "payment_vs_cost.png")
    return paths


#: every file write_outputs may write (an earlier run's file not rewritten now is removed);
#: a DIP run's per-packet table is packets.parquet (``drgs`` in the tables, column ``packet``)
OUTPUT_FILES = (*(f"{t}.parquet" for t in PARQUET_TABLES), "packets.parquet", "summary.xlsx",
                "point_value_by_month.png", "payment_vs_cost.png")


def is_dip(tables: dict[str, pd.DataFrame]) -> bool:
    """Tables of a DIP run (the provenance's method): their per-group table is by packet."""
    return str(tables["summary"].attrs.get("drgsim.method", "drg")) == "dip"


def as_packets(drgs: pd.DataFrame) -> pd.DataFrame:
    """A DIP run's ``drgs`` table as written: its key column named ``packet``."""
    return drgs.rename(columns={"drg": "packet"})


def write_outputs(
    tables: dict[str, pd.DataFrame], out_dir: str | os.PathLike[str], run_fingerprint: str = ""
) -> dict[str, Path]:
    """Every table as parquet, the workbook and the plots into ``out_dir``; returns the paths.

    Written as one unit (:class:`drgsim.output.OutputFolder`): each file atomically,
    ``manifest.json`` last with ``run_fingerprint`` (default: a hash of the provenance).
    """
    out = Path(out_dir)
    prov = {k: str(v) for k, v in tables["summary"].attrs.items() if str(k).startswith("drgsim.")}
    folder = OutputFolder(out, run_fingerprint or fingerprint(options=prov), owned=OUTPUT_FILES,
                          writer="simulate")
    folder.open()
    written: dict[str, Path] = {}
    dip = is_dip(tables)
    for name in PARQUET_TABLES:
        if name in tables:
            t = tables[name]
            if dip and name == "drgs":  # a DIP run's table is by packet: named so
                p = out / "packets.parquet"
                t = as_packets(t)
            else:
                p = out / f"{name}.parquet"
            write_parquet(t, p, prov)
            written[name] = p
    written["workbook"] = write_workbook(tables, out / "summary.xlsx")
    for p in write_plots(tables, out):
        written[p.stem] = p
    for p in written.values():
        folder.record(p.name)
    folder.commit({"command": "simulate", "provenance": prov})
    return written


__all__ = [
    "CJKFontWarning",
    "budget_arithmetic",
    "find_cjk_font",
    "hospital_revenue",
    "level_key",
    "write_outputs",
    "write_parquet",
    "write_plots",
    "write_workbook",
]
