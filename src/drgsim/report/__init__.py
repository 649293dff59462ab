"""Writing a simulation's outputs: parquet tables with provenance, an Excel workbook, plots."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from drgsim.output import OutputFolder, atomic_path, fingerprint

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
WORKBOOK_SHEETS = ("summary", "funds", "hospitals", "months", "drgs", "pay_status", "ledger")
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


def _yuan(df: pd.DataFrame) -> pd.DataFrame:
    """Fen columns -> yuan columns (for people reading the workbook)."""
    out = df.copy()
    for c in list(out.columns):
        if c.endswith("_fen"):
            out[c[:-4] + "_yuan"] = out.pop(c) / 100.0
    return out


def write_workbook(tables: dict[str, pd.DataFrame], path: str | os.PathLike[str]) -> Path | None:
    """The summary tables as an Excel workbook (xlsxwriter); None when it is not installed."""
    try:
        import xlsxwriter  # noqa: F401
    except ImportError:
        warnings.warn(
            "xlsxwriter is not installed (pip install drgsim[excel]): no workbook", stacklevel=2
        )
        return None
    p = Path(path)
    with atomic_path(p) as tmp, pd.ExcelWriter(tmp, engine="xlsxwriter") as xw:
        for name in WORKBOOK_SHEETS:
            t = tables.get(name)
            if t is None or not len(t):
                continue
            d = _yuan(t)
            d.attrs = {}
            d.to_excel(xw, sheet_name=name, index=False)
            ws = xw.sheets[name]
            ws.freeze_panes(1, 0)
            for i, c in enumerate(d.columns):
                ws.set_column(i, i, max(10, min(40, len(str(c)) + 2)))
    return p


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
    "pay_title": ("各医院医保支付与费用", "Payment vs cost by hospital"),
    "cost": ("总费用（万元）", "Cost (10k yuan)"),
    "payment": ("医保支付 + 患者自付（万元）", "Fund payment + patients' share (10k yuan)"),
    "fund": {"employee": ("职工医保", "employee"), "resident": ("居民医保", "resident")},
}


def write_plots(tables: dict[str, pd.DataFrame], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Point value by month and payment vs cost by hospital (PNG, Agg backend)."""
    try:
        import matplotlib
    except ImportError:
        warnings.warn(
            "matplotlib is not installed (pip install drgsim[plot]): no plots", stacklevel=2
        )
        return []
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

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
    with plt.rc_context(rc):
        months, funds = tables["months"], tables["funds"]
        fig, ax = plt.subplots(figsize=(8, 4.5))
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
        p = out / "point_value_by_month.png"
        with atomic_path(p) as tmp:
            fig.savefig(tmp, dpi=120)
        plt.close(fig)
        paths.append(p)

        h = tables["hospitals"]
        fig, ax = plt.subplots(figsize=(6, 6))
        for fund, g in h.groupby("fund"):
            name = LABELS["fund"].get(fund, (fund, fund))[0 if zh else 1]
            ax.scatter(
                g["cost_fen"] / 1e6,
                (g["annual_payment_fen"] + g["patient_share_fen"]) / 1e6,
                s=12,
                alpha=0.7,
                label=name,
            )
        if len(h):
            top = (
                float(
                    max(
                        h["cost_fen"].max(),
                        (h["annual_payment_fen"] + h["patient_share_fen"]).max(),
                    )
                )
                / 1e6
            )
            ax.plot([0, top], [0, top], color="grey", linewidth=0.8)
        ax.set_xlabel(L("cost"))
        ax.set_ylabel(L("payment"))
        ax.set_title(L("pay_title"))
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = out / "payment_vs_cost.png"
        with atomic_path(p) as tmp:
            fig.savefig(tmp, dpi=120)
        plt.close(fig)
        paths.append(p)
    return paths


#: every file write_outputs may write (an earlier run's file not rewritten now is removed)
OUTPUT_FILES = (*(f"{t}.parquet" for t in PARQUET_TABLES), "summary.xlsx",
                "point_value_by_month.png", "payment_vs_cost.png")


def write_outputs(
    tables: dict[str, pd.DataFrame], out_dir: str | os.PathLike[str], run_fingerprint: str = ""
) -> dict[str, Path]:
    """Every table as parquet, the workbook and the plots into ``out_dir``; returns the paths.

    Written as one unit (:class:`drgsim.output.OutputFolder`): each file atomically,
    ``manifest.json`` last with ``run_fingerprint`` (default: a hash of the provenance).
    """
    out = Path(out_dir)
    prov = {k: str(v) for k, v in tables["summary"].attrs.items() if str(k).startswith("drgsim.")}
    folder = OutputFolder(out, run_fingerprint or fingerprint(options=prov), owned=OUTPUT_FILES)
    folder.open()
    written: dict[str, Path] = {}
    for name in PARQUET_TABLES:
        if name in tables:
            p = out / f"{name}.parquet"
            write_parquet(tables[name], p, prov)
            written[name] = p
    wb = write_workbook(tables, out / "summary.xlsx")
    if wb is not None:
        written["workbook"] = wb
    for p in write_plots(tables, out):
        written[p.stem] = p
    for p in written.values():
        folder.record(p.name)
    folder.commit({"command": "simulate", "provenance": prov})
    return written


__all__ = [
    "CJKFontWarning",
    "find_cjk_font",
    "write_outputs",
    "write_parquet",
    "write_plots",
    "write_workbook",
]
