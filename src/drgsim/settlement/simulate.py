"""``drgsim.simulate``: grouped (or raw) cases + policy -> priced, settled tables."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from drgsim import __version__
from drgsim.calibrate import calibrate, read_weights
from drgsim.errors import RecordsError
from drgsim.policy import Policy, YearPolicy, load_policy, resolve_year
from drgsim.pricing.cases import FUNDS, prepare_cases
from drgsim.pricing.core import Weights, price
from drgsim.settlement.core import fund_budget
from drgsim.settlement.run import settle

GROUPER_COLUMNS = ("mdc", "adrg", "drg", "status")


def read_table(source: Any) -> tuple[pd.DataFrame, dict[str, str]]:
    """A DataFrame, or a parquet/CSV file or folder of them -> (frame, key-value metadata)."""
    if isinstance(source, pd.DataFrame):
        return source, {str(k): str(v) for k, v in source.attrs.items()}
    p = Path(source)
    if not p.exists():
        raise RecordsError(f"{p}: no such file or folder")
    import pyarrow.dataset as ds

    files = (sorted(p.rglob("*.parquet")) or sorted(p.rglob("*.csv"))) if p.is_dir() else [p]
    if not files:
        raise RecordsError(f"{p}: no parquet or CSV files")
    fmt = "csv" if files[0].suffix.lower() == ".csv" else "parquet"
    part = "hive" if p.is_dir() else None
    tab = ds.dataset(
        str(p) if p.is_dir() else [str(f) for f in files], format=fmt, partitioning=part
    ).to_table()
    meta = {}
    if fmt == "parquet":
        import pyarrow.parquet as pq

        md = pq.read_schema(files[0]).metadata or {}
        meta = {k.decode(): v.decode() for k, v in md.items() if not k.startswith(b"pandas")}
    return tab.to_pandas(), meta


def file_hash(path: str | os.PathLike[str] | None) -> str:
    """Short sha256 of a file (or of a folder's files), '' without one."""
    if path is None:
        return ""
    p = Path(path)
    h = hashlib.sha256()
    for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _weights_hash(w: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(w, index=False).values.tobytes()).hexdigest()[
        :16
    ]


def simulate(
    cases: Any,
    policy: Policy | str | os.PathLike[str] | None = None,
    weights: pd.DataFrame | str | os.PathLike[str] | None = None,
    hospitals: pd.DataFrame | str | os.PathLike[str] | None = None,
    region: pd.DataFrame | str | os.PathLike[str] | None = None,
    year: int | None = None,
    grouped: bool | None = None,
    columns: dict[str, str] | None = None,
) -> dict[str, pd.DataFrame]:
    """Price and settle one year of cases; the years before it are history.

    ``cases``: grouped cases (``drgsim group`` output, recognised by its provenance or
    ``grouped=True``; a DataFrame with ``drg`` and ``status`` counts as grouped) or raw
    records, grouped here with the policy's scheme. Without ``weights`` they are
    calibrated on the history years. Returns tables: cases, hospitals, months, drgs,
    funds, ledger, pay_status, weights, summary (money in integer fen).
    """
    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    df, meta = read_table(cases)
    is_grouped = grouped
    if is_grouped is None:
        if isinstance(cases, pd.DataFrame):
            is_grouped = "drgsim.scheme" in meta or {"drg", "status"} <= set(df.columns)
        else:
            is_grouped = "drgsim.scheme" in meta
    if not is_grouped:
        from drgsim.grouper import group

        own = {c: f"hospital_{c}" for c in GROUPER_COLUMNS if c in df.columns}
        df = group(df.rename(columns=own), scheme=pol.scheme)
        meta.update({str(k): str(v) for k, v in df.attrs.items()})
    hosp_df = read_table(hospitals)[0] if hospitals is not None else None
    if hosp_df is not None and "hospital_id" not in hosp_df.columns:
        raise RecordsError("the hospitals table lacks a hospital_id column")
    region_df = read_table(region)[0] if region is not None else None

    dcol = next((c for c in ("discharge_date", "discharge", "disch_date") if c in df.columns), None)
    if columns and "discharge_date" in columns:
        dcol = columns["discharge_date"]
    if dcol is None:
        raise RecordsError("cases lack a discharge_date column")
    years = pd.to_datetime(df[dcol], errors="coerce").dt.year
    if year is None:
        if years.isna().all():
            raise RecordsError("no valid discharge dates to find the simulated year")
        year = int(years.max())
    cur_mask = (years == year).to_numpy()
    history = df[(years < year).to_numpy()]
    current = df[cur_mask].reset_index(drop=True)
    bad_year = df[years.isna().to_numpy()]
    if len(bad_year):  # kept in the output with pay_status bad_date, never dropped
        current = pd.concat([current, bad_year], ignore_index=True)
    yp = resolve_year(pol, year)  # each key at its level: case, month or year (README)
    pv = yp.pv

    hist_cases = prepare_cases(history, columns=columns) if len(history) else None
    if weights is None:
        if hist_cases is None:
            raise RecordsError(f"no history before {year} to calibrate weights on: give weights")
        w_df = calibrate(
            history, per_diem_categories_of(yp), year, scheme=pol.scheme, columns=columns
        )
        w_src = "calibrated"
    elif isinstance(weights, pd.DataFrame):
        w_df, w_src = weights, "given"
    else:
        m_all = None
        if hist_cases is not None:
            ok = (hist_cases.status == 0) & (hist_cases.pay_status == 0)
            m_all = float(hist_cases.cost_fen[ok].mean()) if ok.any() else None
        w_df, w_src = read_weights(weights, pv, m_all), str(weights)
    W = Weights.from_frame(w_df, pv["points"]["scale"])

    hids = hosp_df["hospital_id"] if hosp_df is not None else None
    # last year's discharges inside the readmission window link January readmissions
    back = readmission_lookback(history, dcol, year, yp)
    c = prepare_cases(
        pd.concat([current, back], ignore_index=True) if len(back) else current,
        hids,
        columns=columns,
        link_only=np.r_[np.zeros(len(current), bool), np.ones(len(back), bool)],
    )
    pr = price(c, W, yp, hosp_df)
    c = pr.cases

    budgets = {}
    for f, name in enumerate(FUNDS):
        if not ((c.fund == f).any()):
            continue
        spend = None
        if hist_cases is not None:
            hm = (
                (hist_cases.fund == f)
                & (hist_cases.year == year - 1)
                & (hist_cases.pay_status == 0)
            )
            spend = int((hist_cases.cost_fen[hm] - hist_cases.share_fen[hm]).sum())
        outside = int(pr.outside_fen[(c.fund == f) & pr.payable & ~pr.in_budget].sum())
        budgets[name] = fund_budget(pv["budget"][name], name, year, region_df, spend, outside)

    scores = None
    if hosp_df is not None:
        sc_col = next((x for x in ("assessment_score", "score") if x in hosp_df.columns), None)
        if sc_col:
            s = hosp_df.assign(hospital_id=hosp_df["hospital_id"].astype(str)).set_index(
                "hospital_id"
            )[sc_col]
            scores = (
                pd.to_numeric(s, errors="coerce")
                .reindex(c.hospital_ids.astype(str))
                .to_numpy(dtype=np.float64)
            )
    st = settle(pr, yp, budgets, year, scores)
    tables = st.tables()
    tables["weights"] = w_df
    if hosp_df is not None:  # names and levels beside hospital ids in the workbook and plots
        tables["hospital_info"] = hosp_df.copy()
    prov = {
        "drgsim.version": __version__,
        "drgsim.policy": pol.name,
        "drgsim.policy_hash": pol.text_hash,
        "drgsim.weights_hash": _weights_hash(w_df),
        "drgsim.weights_source": w_src,
        "drgsim.scheme": meta.get("drgsim.scheme", pol.scheme),
        "drgsim.scheme_hash": meta.get("drgsim.scheme_hash", ""),
        "drgsim.year": str(year),
    }
    tables["summary"] = summary_table(tables, prov)
    for t in tables.values():
        t.attrs = {**{k: v for k, v in t.attrs.items() if isinstance(v, (str, int, float))}, **prov}
    return tables


def readmission_lookback(history: pd.DataFrame, dcol: str, year: int, yp: YearPolicy) -> pd.DataFrame:
    """Last year's discharges a case of ``year`` can be a readmission of: those within the
    longest readmission window (in days) before 1 January."""
    days = [p["readmission"]["days"] for p in yp.segments if p["readmission"]["enabled"]]
    if not days or not len(history):
        return history.iloc[0:0]
    d = pd.to_datetime(history[dcol], errors="coerce")
    lo = pd.Timestamp(year, 1, 1) - pd.Timedelta(days=max(days))
    return history[((d >= lo) & (d.dt.year == year - 1)).to_numpy()]


def per_diem_categories_of(yp: YearPolicy) -> dict:
    """The 1 January policy with the per-diem MDCs and ADRGs listed on any day of the year,
    so calibration gives every category the year prices a rate."""
    import copy

    pv = copy.deepcopy(yp.pv)
    for key in ("mdcs", "adrgs"):
        seen = [x for p in yp.segments for x in p["per_diem"][key]]
        pv["per_diem"][key] = list(dict.fromkeys(seen))
    return pv


def summary_table(t: dict[str, pd.DataFrame], prov: dict[str, str]) -> pd.DataFrame:
    """Key figures as (item, value) rows, one place to read a run's result."""
    rows = [(k, v) for k, v in prov.items()]
    cases = t["cases"]
    rows.append(("cases", len(cases)))
    for _, r in t["pay_status"].iterrows():
        rows.append(
            (
                f"pay_status {r['pay_status']}",
                f"{r['cases']} cases, cost {r['cost_fen'] / 100:,.2f} yuan",
            )
        )
    inb = cases[(cases["pay_status"] == "ok") & cases["in_budget"]]
    for _, f in t["funds"].iterrows():
        rows.append(
            (f"{f['fund']} budget (yuan)", f"{f['budget_fen'] / 100:,.2f} ({f['budget_source']})")
        )
        # settled on the cells' totals; the per-case points explain them (equal up to float)
        row_pts = float(inb.loc[inb["fund"] == f["fund"], "points"].sum())
        rows.append(
            (
                f"{f['fund']} points settled (cells) / sum of case points",
                f"{f['points']:,.4f} / {row_pts:,.4f}",
            )
        )
        rows.append((f"{f['fund']} point value (yuan/point)", f"{f['pv_used']:.4f}"))
        rows.append(
            (
                f"{f['fund']} PV total-cost / fund basis",
                f"{f['pv_total_cost_basis']:.4f} / {f['pv_fund_basis']:.4f}",
            )
        )
        if f["pv_bound"]:
            moved = f["pv_floor_topup_fen"] or -f["pv_ceiling_withheld_fen"]
            rows.append(
                (
                    f"{f['fund']} point value held at its {f['pv_bound']} (yuan)",
                    f"{moved / 100:+,.2f} (budgeted PV {f['pv_budgeted']:.4f})",
                )
            )
    led = t["ledger"]
    if len(led):
        rows.append(("ledger balance (fen, must be 0)", int(led["amount_fen"].sum())))
    return pd.DataFrame(rows, columns=["item", "value"]).astype({"value": str})
