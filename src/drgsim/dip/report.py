"""The build report of a DIP catalogue: packets by kind, coverage of core packets, CV per
packet, which auxiliary coefficients were kept and why (text for the terminal and a file)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from drgsim.dip.tables import Catalogue

TREATMENT = ("conservative", "diagnostic", "therapeutic", "surgery")


def _pct(a: float, b: float) -> str:
    return f"{100.0 * a / b:.1f}%" if b else "n/a"


def build_report(cat: Catalogue, info: Any = None, top_cv: int = 15) -> str:
    """The report text of a catalogue (``info``: the build's :class:`BuildInfo`, if any)."""
    p = cat.packets
    m = cat.meta
    lines = [f"DIP catalogue {m.get('version')} ({m.get('dx_level')} × procedures), "
             f"years {','.join(str(y) for y in m.get('years', []))} weighted "
             f"{','.join(f'{w:g}' for w in m.get('year_weights', []))}"]
    if info is not None:
        lines.append(f"history rows: {info.rows:,}; used: {info.status_counts.get('ok', 0):,}")
        for s, c in info.status_counts.items():
            if s != "ok":
                why = ""
                if s == "check_failed" and info.reason_counts:
                    why = " (" + ", ".join(f"{r} {c2:,}" for r, c2 in
                                           info.reason_counts.items()) + ")"
                lines.append(f"  not used: {s} {c:,}{why}")
    n_all = int(p["n_cases"].sum())
    core = p["kind"] == "core"
    base = p["base"] == 1
    cons = core & (p["procs"] == "")
    lines.append("")
    lines.append("packets by kind:")
    lines.append(f"  core           {int(core.sum()):>7,}  ({int(cons.sum()):,} conservative, "
                 f"{int((core & ~cons).sum()):,} procedural; {int(base.sum()):,} base)")
    for fold in ("category", "prefix", "chapter"):
        k = int(((p["kind"] == "comprehensive") & (p["fold"] == fold)).sum())
        lines.append(f"  comprehensive  {k:>7,}  by {fold} × treatment type")
    lines.append(f"  total          {len(p):>7,}")
    lines.append("")
    lines.append(f"cases in core packets: {int(p.loc[core, 'n_cases'].sum()):,} of {n_all:,} "
                 f"({_pct(p.loc[core, 'n_cases'].sum(), n_all)})")
    if info is not None and info.cost_fen:
        lines.append(f"cost in core packets: {_pct(info.core_cost_fen, info.cost_fen)} of "
                     f"{info.cost_fen / 100:,.2f} yuan")
    lines.append(f"thresholds: core ≥ {m.get('core_threshold')} cases, comprehensive ≥ "
                 f"{m.get('comprehensive_min_cases')} (else a coarser fold), level mean ≥ "
                 f"{m.get('level_min_cases')}")
    lines.append(f"all-case mean m = {m.get('m_all_fen', float('nan')) / 100:,.2f} yuan; "
                 f"score = RW × {m.get('score_scale')}")
    r = m.get("reimbursement_ratio")
    lines.append(f"budget point value PV_b = {m.get('pv_budget', float('nan')):.4f} yuan/point; "
                 f"reimbursement ratio r = {'unknown' if r is None else f'{r:.4f}'}")
    cvs = p["cv"].to_numpy(dtype=float)
    w = p["n_cases"].to_numpy(dtype=float)
    ok = np.isfinite(cvs)
    if ok.any():
        lines.append("")
        lines.append(f"CV per packet: median {np.median(cvs[ok]):.3f}, case-weighted mean "
                     f"{np.average(cvs[ok], weights=w[ok]):.3f}, packets with CV ≥ 1: "
                     f"{int((cvs[ok] >= 1).sum()):,}")
        worst = p[ok].sort_values(["cv", "packet"], ascending=[False, True]).head(top_cv)
        lines.append(f"  highest CV ({len(worst)}):")
        for row in worst.itertuples(index=False):
            lines.append(f"    {row.packet:<32} n={row.n_cases:<6} CV {row.cv:.3f}")
    lines.append("")
    lines.append(f"levels: {len(cat.levels):,} packet × level means"
                 + (f" over {cat.levels['level'].nunique()} levels" if len(cat.levels) else ""))
    a = cat.aux
    lines.append("")
    if len(a):
        kept = a["kept"].astype(int) == 1
        lines.append(f"auxiliary coefficients: {int(kept.sum()):,} kept of {len(a):,} tried "
                     f"(min cases {m.get('aux_min_cases')}, CV ≥ 0.7 and a cut ≥ 20% as DIP.md)")
        for catname, g in a.groupby("catalogue", sort=True):
            k = g["kept"].astype(int) == 1
            reasons = g.loc[~k, "reason"].value_counts()
            why = "; ".join(f"{rr}: {c:,}" for rr, c in reasons.items())
            lines.append(f"  {catname:<12} kept {int(k.sum()):,} of {len(g):,}"
                         + (f" — not kept: {why}" if why else ""))
    else:
        lines.append("auxiliary coefficients: none")
    if info is not None:
        if info.aux_note:
            lines.append(f"  {info.aux_note}")
        if info.unmatched_proc_codes:
            lines.append(f"procedure codes no treatment-type rule matched (counted as "
                         f"therapeutic): {info.unmatched_proc_codes:,}")
        if info.cases_unknown_hospital:
            lines.append(f"cases of hospitals not in the hospitals table (no level mean): "
                         f"{info.cases_unknown_hospital:,}")
        if info.base_missing:
            lines.append(f"base-list packets not core conservative packets here: "
                         f"{len(info.base_missing)} ({', '.join(info.base_missing[:10])}"
                         f"{', ...' if len(info.base_missing) > 10 else ''})")
        for note in info.notes:
            lines.append(note)
    return "\n".join(lines) + "\n"


def cv_table(cat: Catalogue) -> pd.DataFrame:
    """Packet, kind, cases and CV, highest CV first (for a closer look than the report)."""
    return cat.packets[["packet", "kind", "n_cases", "cv"]].sort_values(
        ["cv", "packet"], ascending=[False, True]).reset_index(drop=True)
