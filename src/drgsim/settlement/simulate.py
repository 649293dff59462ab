"""``drgsim.simulate``: grouped (or raw) cases + policy -> priced, settled tables."""

from __future__ import annotations

import copy
import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from drgsim.errors import DrgsimError, RecordsError
from drgsim.policy import Policy, YearPolicy
from drgsim.policy.dated import as_year_policy
from drgsim.pricing.cases import FUNDS, Cases
from drgsim.pricing.core import Weights, price
from drgsim.settlement.core import (
    Budget,
    BudgetError,
    region_spending_fen,
)
from drgsim.settlement.run import settle

GROUPER_COLUMNS = ("mdc", "adrg", "drg", "status")


def read_table(source: Any) -> tuple[pd.DataFrame, dict[str, str]]:
    """A DataFrame, or a parquet/CSV file or folder of them -> (frame, key-value metadata).

    In a CSV, identifiers stay text (hospital 0001 is not the number 1)."""
    if isinstance(source, pd.DataFrame):
        return source, {str(k): str(v) for k, v in source.attrs.items()}
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    id_text = pa_csv.ConvertOptions(
        column_types={c: pa.string() for c in ("hospital_id", "case_id", "patient_id")}
    )
    p = Path(source)
    if not p.exists():
        raise RecordsError(f"{p}: no such file or folder")
    import pyarrow.dataset as ds

    def listed(pattern: str) -> list[Path]:  # as pyarrow's dataset: hidden/_ files skipped
        return sorted(
            f for f in p.rglob(pattern)
            if not any(x.startswith((".", "_")) for x in f.relative_to(p).parts)
        )

    files = (listed("*.parquet") or listed("*.csv")) if p.is_dir() else [p]
    if not files:
        raise RecordsError(f"{p}: no parquet or CSV files")
    if not p.is_dir() and p.suffix.lower() in (".xlsx", ".xlsm"):  # a table kept in Excel
        from drgsim.inputs.excel import read_xlsx

        return read_xlsx(p)[0].to_pandas(), {}
    if not p.is_dir() and p.suffix.lower() == ".csv":  # UTF-8 or GBK, as the case files
        from drgsim.inputs.encoding import arrow_encoding, detect_encoding

        opts = pa_csv.ReadOptions(encoding=arrow_encoding(detect_encoding(p)))
        return pa_csv.read_csv(p, read_options=opts, convert_options=id_text).to_pandas(), {}
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
        file_format = ds.CsvFileFormat(
            read_options=pacsv.ReadOptions(encoding=encs.pop()), convert_options=id_text
        )
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


class NoHospitalsWarning(UserWarning):
    """No hospitals table: every hospital gets the policy's default coefficient and score."""


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
    method = pv["coefficients"]["method"]
    if hospitals is None and method != "hospital":
        warnings.warn(
            NoHospitalsWarning(
                "no hospitals table (--hospitals): every hospital's level coefficient is "
                f"coefficients.default {pv['coefficients']['default']} whatever its level, "
                f"with the default assessment score {pv['assessment']['default_score']}"
            ),
            stacklevel=3,
        )
    if hospitals is not None and "level" not in hospitals.columns and method != "hospital":
        raise SettlementInputError(
            f"the hospitals table has no level column: coefficients.method {method} needs "
            "each hospital's level (else every hospital gets coefficients.default)"
        )
    if hospitals is not None and "coefficient" in hospitals.columns and method == "level":
        raise SettlementInputError(
            "the hospitals table has a coefficient column, but coefficients.method is level: "
            "it would be ignored; set the method to hospital or blend, or drop the column"
        )
    sc_col = next((x for x in ("assessment_score", "score") if hospitals is not None
                   and x in hospitals.columns), None)
    if sc_col:  # a blank score is the default one; an unreadable one must not become it
        raw = hospitals[sc_col].astype("string").str.strip()
        bad_sc = raw.notna() & (raw != "") & pd.to_numeric(raw, errors="coerce").isna()
        if bad_sc.any():
            listed = ", ".join(
                f"{h}: {v!r}" for h, v in zip(
                    hospitals["hospital_id"][bad_sc][:10], raw[bad_sc][:10], strict=True
                )
            )
            raise SettlementInputError(
                f"the hospitals table's {sc_col} is not a number for {int(bad_sc.sum())} "
                f"hospital(s) ({listed}): correct it, or leave it blank for the default score"
            )
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


def last_year_policy(pv: dict) -> dict:
    """The policy last year's point value is settled under: ``pv`` with the point-value
    bounds and the region corridor off."""
    p0 = copy.deepcopy(pv)
    p0["point_value"]["bounds"].update(floor=None, ceiling=None)
    p0["region_corridor"]["enabled"] = False
    return p0


def last_year_totals(
    prev: Cases, weights: Weights, p0: dict, year: int, hospitals: Any = None
) -> tuple[Any, list, dict[str, bool]]:
    """Last year's cases priced under ``p0`` (:func:`last_year_policy`): (priced, hospital ×
    month totals per fund from their cells, per fund whether any case is payable inside
    the budget). Per hospital, so a distributed run sums it per hospital partition."""
    from drgsim.pricing.cells import build_cells, points_under
    from drgsim.settlement.run import cell_fund_totals

    pr = price(prev, weights, p0, hospitals)
    cells = build_cells(pr)
    totals = cell_fund_totals(cells, points_under(cells, pr, as_year_policy(p0, year - 1)))
    present = {
        name: bool((pr.payable & pr.in_budget & (prev.fund == f)).any())
        for f, name in enumerate(FUNDS)
    }
    return pr, totals, present


def last_year_settle(
    pr: Any,
    totals: list,
    present: dict[str, bool],
    p0: dict,
    region: pd.DataFrame | None,
    year: int,
    ratio: dict[str, float] | None = None,
) -> dict[str, float]:
    """Last year's point value per fund from its hospital × month ``totals`` (``pr``: a
    :class:`~drgsim.pricing.core.Priced` naming the totals' hospitals), paying the region
    table's ``drg_spending`` of ``year`` − 1."""
    y = year - 1
    budgets = {}
    for name in FUNDS:
        if not present[name]:
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
    st = settle(pr, p0, budgets, y, totals=totals, ratio=ratio)
    return {fs.fund: float(fs.pv) for fs in st.funds}


def last_year_pv(
    prev: Cases,
    weights: Weights,
    pv: dict,
    region: pd.DataFrame | None,
    year: int,
    hospitals: Any = None,
    ratio: dict[str, float] | None = None,
) -> dict[str, float]:
    """Last year's point value per fund (yuan per point), for ``budgeted_pv: last_year``.
    ``ratio``: the reimbursement ratio per fund (DIP's reimbursement-ratio basis).

    Last year's (``year`` − 1) cases priced with the current weights and policy ``pv``,
    settled with the point-value bounds and the region corridor off, paying the region
    table's ``drg_spending`` of that year (what the fund spent on them). Compute it once
    and pass it to every scenario (``simulate(..., reference_pv=...)``). In two steps,
    :func:`last_year_totals` (per hospital) and :func:`last_year_settle` (global), which a
    distributed run takes on the partitions and the driver.
    """
    p0 = last_year_policy(pv)
    pr, totals, present = last_year_totals(prev, weights, p0, year, hospitals)
    return last_year_settle(pr, totals, present, p0, region, year, ratio)


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
    catalogue: Any = None,
) -> dict[str, pd.DataFrame]:
    """Price and settle one year of cases; the years before it are history.

    ``cases``: grouped cases (``drgsim group`` output, recognised by its provenance or
    ``grouped=True``; a DataFrame with ``drg`` and ``status`` counts as grouped) or raw
    records, grouped here with the policy's scheme. Without ``weights`` they are
    calibrated on the history years. ``reference_pv``: last year's point value per fund
    for ``budgeted_pv: last_year`` (default: computed here by :func:`last_year_pv`).
    ``catalogue``: a DIP policy's packet catalogue (folder or ``Catalogue``; default: built
    from the history years when the cases are not matched yet).
    Inputs that would change the money silently (no cases in the year, unknown hospital
    levels, non-positive fund figures or budgets, a budget source that cannot give the
    budget) raise before any work. Returns tables: cases, hospitals, months, drgs,
    funds, ledger, pay_status, weights, summary (money in integer fen).
    """
    from drgsim.scenarios.prepare import prepare  # one path: prepare once, settle here

    return prepare(
        cases,
        policy,
        weights,
        hospitals,
        region,
        year,
        columns=columns,
        grouped=grouped,
        reference_pv=reference_pv,
        catalogue=catalogue,
    ).simulate()


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
