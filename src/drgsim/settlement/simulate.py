"""``drgsim.simulate``: grouped (or raw) cases + policy -> priced, settled tables."""

from __future__ import annotations

import copy
import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from drgsim import __version__
from drgsim.calibrate import calibrate, read_weights
from drgsim.errors import DrgsimError, RecordsError
from drgsim.policy import Policy, YearPolicy, load_policy, resolve_year
from drgsim.pricing.cases import FUNDS, Cases, prepare_cases
from drgsim.pricing.core import Weights, price
from drgsim.settlement.core import (
    Budget,
    BudgetError,
    EmptyFundWarning,
    fund_budget,
    region_spending_fen,
)
from drgsim.settlement.run import settle

GROUPER_COLUMNS = ("mdc", "adrg", "drg", "status")


def read_table(source: Any) -> tuple[pd.DataFrame, dict[str, str]]:
    """A DataFrame, or a parquet/CSV file or folder of them -> (frame, key-value metadata)."""
    if isinstance(source, pd.DataFrame):
        return source, {str(k): str(v) for k, v in source.attrs.items()}
    p = Path(source)
    if not p.exists():
        raise RecordsError(f"{p}: no such file or folder")
    import pyarrow as pa
    import pyarrow.dataset as ds

    def listed(pattern: str) -> list[Path]:  # as pyarrow's dataset: hidden/_ files skipped
        return sorted(
            f for f in p.rglob(pattern)
            if not any(x.startswith((".", "_")) for x in f.relative_to(p).parts)
        )

    files = (listed("*.parquet") or listed("*.csv")) if p.is_dir() else [p]
    if not files:
        raise RecordsError(f"{p}: no parquet or CSV files")
    fmt = "csv" if files[0].suffix.lower() == ".csv" else "parquet"
    part = "hive" if p.is_dir() else None
    if fmt == "parquet":  # a stray or truncated file is the user's, named in one line
        from drgsim.inputs.sources import _footer, list_folder

        if p.is_dir():
            strays: list[Path] = []
            files = list_folder(p, strays=strays)
            if strays:
                raise RecordsError(f"{strays[0]}: not a parquet file, in the input folder {p} "
                                   "(move it out)")
        for f in files:
            _footer(f)
    file_format: Any = fmt
    if fmt == "csv":  # the encoding as 'group' detects it (UTF-8 or GB18030), one for all files
        import pyarrow.csv as pacsv

        from drgsim.inputs.encoding import arrow_encoding, detect_encoding

        encs = {arrow_encoding(detect_encoding(f)) for f in files}
        if len(encs) > 1:
            raise RecordsError(f"{p}: CSV files in different encodings ({', '.join(sorted(encs))})"
                               "; convert them to one")
        file_format = ds.CsvFileFormat(read_options=pacsv.ReadOptions(encoding=encs.pop()))
    try:
        tab = ds.dataset(
            str(p) if p.is_dir() else [str(f) for f in files], format=file_format,
            partitioning=part,
        ).to_table()
    except (pa.ArrowException, OSError) as exc:
        raise RecordsError(f"{p}: cannot be read: {str(exc).splitlines()[0]}") from None
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


class SettlementInputError(DrgsimError):
    """A side table or the simulated year cannot be settled (no cases in the year, unknown
    hospital levels, non-positive fund figures); raised before any work."""


LEVEL_DIGITS = {"三": "3", "二": "2", "一": "1"}


def unknown_levels(hospitals: pd.DataFrame, by_level: dict) -> list[str]:
    """Hospital levels (as written) that the policy's ``coefficients.by_level`` does not
    list, blank ones as ``(blank)``; the pricing reads 三/二/一 as 3/2/1."""
    lv = hospitals["level"].astype("string")
    norm = lv
    for k, v in LEVEL_DIGITS.items():
        norm = norm.str.replace(k, v)
    digit = norm.str.extract(r"(\d)")[0]
    bad = ~digit.isin([str(k) for k in by_level])
    return sorted({"(blank)" if pd.isna(x) or not str(x).strip() else str(x) for x in lv[bad]})


def check_inputs(
    pv: dict,
    year: int,
    n_current: int,
    years_present: pd.Series,
    hospitals: pd.DataFrame | None,
    region: pd.DataFrame | None,
) -> None:
    """Refuse, before any work, what would silently change the money: a year without
    cases, hospital levels the policy gives no coefficient, non-positive fund figures."""
    if n_current == 0:
        have = sorted({int(y) for y in years_present.dropna().unique()})
        span = f"cases are discharged in {', '.join(map(str, have))}" if have else "no dates"
        raise SettlementInputError(f"no cases discharged in {year} ({span}): choose --year")
    if hospitals is not None and "level" in hospitals.columns:
        bad = unknown_levels(hospitals, pv["coefficients"]["by_level"])
        if bad:
            known = ", ".join(str(k) for k in pv["coefficients"]["by_level"])
            raise SettlementInputError(
                f"the hospitals table has level(s) {', '.join(bad)} that "
                f"coefficients.by_level does not list ({known}; 三/二/一级 read as 3/2/1): "
                "correct the levels or add them to the policy"
            )
    if region is not None and len(region):
        col = next((c for c in ("drg_spending", "drg_spending_yuan") if c in region), None)
        if col is not None and {"fund", "year"} <= set(region.columns):
            v = pd.to_numeric(region[col], errors="coerce")
            bad_rows = region[~(v > 0)]
            if len(bad_rows):
                r = bad_rows.iloc[0]
                raise SettlementInputError(
                    f"the region table's drg_spending of fund {r['fund']}, year {r['year']} is "
                    f"{r[col]}: fund figures must be positive numbers "
                    f"({len(bad_rows)} such row(s))"
                )


def history_spending(prev: Cases, weights: Weights, pv: dict, hospitals: Any = None) -> dict:
    """Last year's fund spending per fund in fen, for ``budget.*.source: history``.

    Counts the cases that pass the record checks, group (status ok) and pass the
    plausibility rules judged against the current weights (priced with them): their
    cost less the patients' share. A fund without such cases is absent.
    """
    if prev.n == 0:
        return {}
    pr = price(prev, weights, pv, hospitals)
    ok = pr.payable & (prev.status == 0)
    out = {}
    for f, name in enumerate(FUNDS):
        m = ok & (prev.fund == f)
        if m.any():
            out[name] = int((prev.cost_fen[m] - prev.share_fen[m]).sum())
    return out


def last_year_pv(
    prev: Cases,
    weights: Weights,
    pv: dict,
    region: pd.DataFrame | None,
    year: int,
    hospitals: Any = None,
) -> dict[str, float]:
    """Last year's point value per fund (yuan per point), for ``budgeted_pv: last_year``.

    Last year's (``year`` − 1) cases priced with the current weights and policy ``pv``,
    settled with the point-value bounds and the region corridor off, paying the region
    table's ``drg_spending`` of that year (what the fund spent on them). Compute it once
    and pass it to every scenario (``simulate(..., reference_pv=...)``).
    """
    y = year - 1
    p0 = copy.deepcopy(pv)
    p0["point_value"]["bounds"].update(floor=None, ceiling=None)
    p0["region_corridor"]["enabled"] = False
    pr = price(prev, weights, p0, hospitals)
    budgets = {}
    for f, name in enumerate(FUNDS):
        if not (pr.payable & pr.in_budget & (prev.fund == f)).any():
            raise BudgetError(
                f"point_value.bounds.budgeted_pv: last_year, fund {name}: no payable cases "
                f"discharged in {y} to compute last year's point value: give the {y} cases, "
                "or use budgeted_pv: given with budgeted_pv_yuan"
            )
        spent = region_spending_fen(region, name, y)
        if spent is None or spent <= 0:
            raise BudgetError(
                f"point_value.bounds.budgeted_pv: last_year, fund {name}: needs the region "
                f"table's drg_spending of fund {name} for {y} (--region), or use "
                "budgeted_pv: given with budgeted_pv_yuan"
            )
        budgets[name] = Budget(spent, 0, source="region_table", base_label=f"drg_spending {y}")
    st = settle(pr, p0, budgets, y)
    return {fs.fund: float(fs.pv) for fs in st.funds}


def needs_reference_pv(pv: dict) -> bool:
    """True when relative point-value bounds refer to last year's point value."""
    b = pv["point_value"]["bounds"]
    return (
        b["mode"] == "relative"
        and (b["floor"] is not None or b["ceiling"] is not None)
        and b["budgeted_pv"] == "last_year"
    )


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
    reference_pv: dict[str, float] | None = None,
) -> dict[str, pd.DataFrame]:
    """Price and settle one year of cases; the years before it are history.

    ``cases``: grouped cases (``drgsim group`` output, recognised by its provenance or
    ``grouped=True``; a DataFrame with ``drg`` and ``status`` counts as grouped) or raw
    records, grouped here with the policy's scheme. Without ``weights`` they are
    calibrated on the history years. ``reference_pv``: last year's point value per fund
    for ``budgeted_pv: last_year`` (default: computed here by :func:`last_year_pv`).
    Inputs that would change the money silently (no cases in the year, unknown hospital
    levels, non-positive fund figures or budgets, a budget source that cannot give the
    budget) raise before any work. Returns tables: cases, hospitals, months, drgs,
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
    check_inputs(pv, year, int(cur_mask.sum()), years, hosp_df, region_df)

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

    if reference_pv is not None:  # never silently unused
        if pv["point_value"]["bounds"]["budgeted_pv"] != "last_year":
            raise BudgetError(
                "reference_pv is last year's point value for point_value.bounds.budgeted_pv: "
                f"last_year, but the policy's budgeted_pv is "
                f"{pv['point_value']['bounds']['budgeted_pv']}"
            )
        if set(reference_pv) - set(FUNDS):
            raise BudgetError(
                f"reference_pv: {', '.join(sorted(set(reference_pv) - set(FUNDS)))} is not a "
                f"fund ({', '.join(FUNDS)})"
            )
    hids = hosp_df["hospital_id"] if hosp_df is not None else None
    prev = None
    need_hist = any(pv["budget"][f]["source"] == "history" for f in FUNDS)
    need_ref = needs_reference_pv(pv) and reference_pv is None
    if need_hist or need_ref:
        prev_df = history[(years[years < year] == year - 1).to_numpy()]
        prev = prepare_cases(prev_df, hids, columns=columns)
    spend = history_spending(prev, W, pv, hosp_df) if need_hist and prev is not None else {}
    if need_ref and prev is not None:
        reference_pv = last_year_pv(prev, W, pv, region_df, year, hosp_df)

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
        outside = int(pr.outside_fen[(c.fund == f) & pr.payable & ~pr.in_budget].sum())
        budgets[name] = fund_budget(
            pv["budget"][name], name, year, region_df, spend.get(name), outside
        )
        if not (c.fund == f).any():
            warnings.warn(
                EmptyFundWarning(
                    f"fund {name} has no cases in {year}: it is settled with zero points and "
                    f"pays nothing; its budget ({budgets[name].arithmetic()}) stays unspent"
                ),
                stacklevel=2,
            )

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
    st = settle(pr, yp, budgets, year, scores, reference_pv=reference_pv)
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
        rows.append((f"{f['fund']} budget arithmetic", f["budget_arithmetic"]))
        if f["cases"] == 0:
            rows.append((f"{f['fund']} warning", f"no cases in {f['year']}: nothing paid"))
        if f["reserve_overdraw_fen"]:
            rows.append(
                (
                    f"{f['fund']} reserve overdrawn, paid by the fund (yuan)",
                    f"{f['reserve_overdraw_fen'] / 100:,.2f}",
                )
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
        if f["pv_budgeted_source"]:
            rows.append(
                (
                    f"{f['fund']} budgeted point value, bounds refer to it (yuan/point)",
                    f"{f['pv_budgeted']:.4f} ({f['pv_budgeted_source']})",
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
