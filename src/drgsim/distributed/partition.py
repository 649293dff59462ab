"""Per-partition functions and the driver's reduce, shared by the Dask and Spark adapters.

Each function here calls the single-machine code (grouper, ``prepare``'s per-hospital
``price_rows``, ``settle``, ``case_payments``); nothing is re-implemented. See the package
docstring for what runs where and why.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from drgsim.errors import DrgsimError
from drgsim.policy import Policy, YearPolicy
from drgsim.pricing.cases import FUNDS, _col, prepare_cases
from drgsim.pricing.cells import Cells, build_cells
from drgsim.pricing.core import Priced, Weights, price
from drgsim.scheme.compiled import CompiledScheme
from drgsim.settlement.core import FundSettlement, FundTotals

#: global input row number, added before the shuffle: rows of a hospital are put back in
#: input order inside their partition, so every per-hospital order (case-id ties, sums of
#: float points) is the single machine's
ROW = "__drgsim_row"


def partition_keys(frame: pd.DataFrame, columns: dict[str, str] | None) -> tuple[str, str]:
    """The discharge-date and hospital columns a distributed run scans and shuffles by
    (``frame``: the cases' columns, e.g. an empty frame of their schema); a missing one
    is a :class:`~drgsim.errors.RecordsError` naming it."""
    from drgsim.errors import RecordsError

    dcol = next((c for c in ("discharge_date", "discharge", "disch_date") if c in frame.columns),
                None)
    if columns and "discharge_date" in columns:
        dcol = columns["discharge_date"]
    if dcol is None:
        raise RecordsError("cases lack a discharge_date column")
    hcol = _col(frame, "hospital_id", columns)
    if hcol is None:
        raise RecordsError("cases lack a hospital_id column: a distributed run partitions "
                           "by hospital")
    return dcol, hcol


class DistributedError(DrgsimError):
    """A distributed run cannot give the single machine's result (partitioning, an
    unsupported route); raised before any money is computed."""


# ---------------------------------------------------------------------------- grouping
def group_table(
    table: pa.Table,
    scheme: CompiledScheme,
    translate: bool = False,
    flags: bool = False,
    names: bool = False,
    threads: int = 1,
    engine: str = "kernel",
) -> pa.Table:
    """Group one Arrow partition exactly as ``drgsim.group`` groups an Arrow table."""
    from drgsim.grouper.core import group_arrow_result

    return group_arrow_result(table, scheme, translate, threads, flags, names, engine=engine)[0]


def group_frame(
    df: pd.DataFrame,
    scheme: CompiledScheme,
    translate: bool = False,
    flags: bool = False,
    names: bool = False,
    threads: int = 1,
    engine: str = "kernel",
) -> pd.DataFrame:
    """Group one pandas partition on the Arrow path (``engine="reference"``: the Python
    grouper, used for an empty meta partition so a driver never compiles kernels)."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    out = group_table(table, scheme, translate, flags, names, threads, engine)
    res = out.to_pandas(types_mapper=_keep_arrow)
    res.index = df.index
    return res


def _keep_arrow(t: pa.DataType) -> Any:
    """Arrow types pandas would turn into Python objects (decimals, dates, lists) stay
    Arrow-backed, so every partition writes the same parquet schema."""
    if (pa.types.is_decimal(t) or pa.types.is_temporal(t) or pa.types.is_list(t)
            or pa.types.is_large_list(t) or pa.types.is_struct(t)):
        return pd.ArrowDtype(t)
    return None


def status_counts(status: Any) -> dict[str, int]:
    """Rows per grouping status of one partition (the only thing grouping reduces)."""
    s = pd.Series(np.asarray(status, dtype=object))
    return {str(k): int(v) for k, v in s.value_counts().items()}


def calibration_columns(cols: list[str], columns: dict[str, str] | None) -> list[str]:
    """The case columns :func:`drgsim.calibrate.calibrate` reads through ``prepare_cases``
    (grouping result, cost and patients' share, fund, dates, LOS, hospital): what the
    engines read for the shuffle by DRG (:mod:`drgsim.distributed.calibrate`), not the
    codes."""
    from drgsim.pricing.cases import SHARE_PARTS

    empty = pd.DataFrame(columns=cols)
    names = ("hospital_id", "fund", "discharge_date", "admit_date", "los_days", "total_cost",
             "patient_share", "drg", "adrg", "mdc", "status")
    found = [_col(empty, n, columns) for n in names]
    return [c for c in cols if c in found or c in SHARE_PARTS]


# ---------------------------------------------------------------------------- pricing
@dataclass
class PriceContext:
    """What every hospital partition needs, broadcast once: weights, the year's policy."""

    W: Weights
    yp: YearPolicy
    year: int
    dcol: str
    hosp_df: pd.DataFrame | None = None
    columns: dict[str, str] | None = None
    spend: bool = False  # also sum last year's spending (budget source history)
    dip: bool = False  # DIP: matched rows, priced by packet; history sums for PV_b and r
    last_year: dict | None = None  # the last-year policy: sum last year's totals under it
    keep_rows: bool = False  # keep the partition's rows for a sweep to re-price


@dataclass
class PartitionPriced:
    """One hospital partition priced: kept on its worker; the driver gathers
    :meth:`summary` only."""

    priced: Priced
    cells: Cells
    totals: list[FundTotals]
    rows: np.ndarray  # ROW of each priced case (input order), -1 when absent
    hospitals_seen: list[str]  # every hospital id in the partition's rows, any year
    spend: dict[str, int] = field(default_factory=dict)
    history: dict[str, Any] = field(default_factory=dict)  # distributed.history's parts
    local: Any = None  # the partition-local Prepared a sweep re-prices (keep_rows)

    def summary(self) -> dict[str, Any]:
        """The small part the driver reduces (hospital × fund × month totals and sums)."""
        from drgsim.scenarios.prepare import outside_budget

        c = self.priced.cases
        return {
            "hospital_ids": np.asarray(c.hospital_ids, dtype=object),
            "totals": self.totals,
            "outside": outside_budget(self.priced),
            "all_share": {
                name: int((c.cost_fen[c.fund == f] - c.share_fen[c.fund == f]).sum())
                for f, name in enumerate(FUNDS)
            },
            "present": {name: bool((c.fund == f).any()) for f, name in enumerate(FUNDS)},
            "spend": self.spend,
            "history": self.history,
            "hospitals_seen": self.hospitals_seen,
            "n": int(c.n),
            # what decides if the cells can re-price a cap (the driver's stand-in cells)
            "cells_cap": (float(self.cells.fixed_cap_ratio), bool(self.cells.fixed_cap_bound)),
        }


def price_partition(df: pd.DataFrame, ctx: PriceContext) -> PartitionPriced:
    """Prepare, price and build the cells of one hospital partition (all its years:
    last year's rows link January readmissions and give last year's spending)."""
    from drgsim.scenarios.prepare import price_rows, split_years
    from drgsim.settlement.run import cell_fund_totals
    from drgsim.settlement.simulate import history_spending, readmission_lookback

    if ROW in df.columns:
        df = df.sort_values(ROW, kind="stable")
    if ctx.dip:  # the matched columns as pricing reads them, row by row (dip_frame)
        from drgsim.dip.price import dip_frame

        df = dip_frame(df)
    years = pd.to_datetime(df[ctx.dcol], errors="coerce").dt.year
    current, history, prev_years = split_years(df, years, ctx.year)
    back = readmission_lookback(history, ctx.dcol, ctx.year, ctx.yp)
    cases, pr, cells = price_rows(current, back, ctx.W, ctx.yp, ctx.hosp_df, ctx.columns)
    spend: dict[str, int] = {}
    if ctx.spend:
        prev_df = history[(prev_years == ctx.year - 1).to_numpy()]
        hids = ctx.hosp_df["hospital_id"] if ctx.hosp_df is not None else None
        prev = prepare_cases(prev_df, hids, columns=ctx.columns)
        spend = history_spending(prev, ctx.W, ctx.yp.pv, ctx.hosp_df)
    hcol = _col(df, "hospital_id", ctx.columns)
    seen = sorted({str(h) for h in df[hcol].dropna().unique()}) if hcol else []
    rows = current[ROW].to_numpy(np.int64) if ROW in current.columns else np.full(len(current), -1)
    from drgsim.distributed.history import partition_history

    hist = partition_history(history, prev_years, ctx) if ctx.dip or ctx.last_year else {}
    local = None
    if ctx.keep_rows:
        from drgsim.distributed.sweep import local_prepared

        local = local_prepared(ctx, current, history, prev_years, back, cases, pr, cells, spend)
    return PartitionPriced(pr, cells, cell_fund_totals(cells), rows, seen, spend, hist, local)



def check_disjoint(summaries: list[dict[str, Any]]) -> None:
    """Refuse partitions that share a hospital: pricing is per hospital and year
    (readmissions across months, the special-review share, cost indices, tie-breaks), so a
    hospital split over partitions would be priced differently from the single machine."""
    owner: dict[str, int] = {}
    for i, s in enumerate(summaries):
        for h in s["hospitals_seen"]:
            j = owner.setdefault(h, i)
            if j != i:
                raise DistributedError(
                    f"hospital {h} has rows in partitions {j} and {i}: pricing needs every row "
                    "of a hospital in one partition (shuffle by hospital first)"
                )


def global_hospitals(summaries: list[dict[str, Any]], hosp_df: pd.DataFrame | None) -> np.ndarray:
    """The settlement's hospital axis: the hospitals table's, else every partition's, sorted
    as :func:`~drgsim.pricing.cases.prepare_cases` sorts them."""
    if hosp_df is not None:
        ids = pd.Series(hosp_df["hospital_id"]).astype("string").unique()
    else:
        ids = [h for s in summaries for h in s["hospital_ids"]]
    return np.asarray(sorted({str(h) for h in ids if h is not pd.NA}), dtype=object)


def combine(summaries: list[dict[str, Any]], hids: np.ndarray) -> dict[str, Any]:
    """Add the partitions' summaries onto the hospital axis ``hids``: totals per fund, and
    per fund the per diem outside the budget, the fund share of all cases, last year's
    spending. Each hospital's figures come from its one partition (others add zeros), so
    the float points are the single machine's bit for bit."""
    check_disjoint(summaries)
    H = len(hids)
    idx = pd.Index(hids)
    tot = [FundTotals.zeros(name, H) for name in FUNDS]
    out: dict[str, Any] = {
        "outside": dict.fromkeys(FUNDS, 0),
        "all_share": dict.fromkeys(FUNDS, 0),
        "present": dict.fromkeys(FUNDS, False),
        "spend": {},
        "n": 0,
        "cells_cap": (0.0, False),
    }
    for s in summaries:
        pos = idx.get_indexer([str(h) for h in s["hospital_ids"]])
        if (pos < 0).any():  # never: a partition's hospitals are the table's or the union
            raise DistributedError("a partition priced hospitals outside the hospital axis")
        for t, p in zip(tot, s["totals"], strict=True):
            for name in ("points", "share_fen", "cost_fen", "cases", "outside_fen"):
                getattr(t, name)[pos] += getattr(p, name)
        for name in FUNDS:
            out["outside"][name] += s["outside"][name]
            out["all_share"][name] += s["all_share"][name]
            out["present"][name] |= s["present"][name]
        for name, v in s["spend"].items():
            out["spend"][name] = out["spend"].get(name, 0) + v
        out["n"] += s["n"]
        r, b = s.get("cells_cap", (0.0, False))
        out["cells_cap"] = (max(out["cells_cap"][0], r), out["cells_cap"][1] or b)
    out["totals"] = tot
    return out


# ---------------------------------------------------------------------------- driver
class _OnWorkers:
    """Stands for the case rows or cells that stay on the workers: any use is refused."""

    def __init__(self, what: str):
        self._what = what

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise DistributedError(
            f"the {self._what} stay on the workers of a distributed run: the sweep re-prices "
            "them there (drgsim.distributed.sweep), which needs the rows kept: prepare with "
            "drgsim.dask.prepare(..., keep_rows=True) (the default) or drgsim.spark.prepare"
        )


def _driver_prepared_cls() -> type:
    from drgsim.scenarios.prepare import Prepared

    class DriverPrepared(Prepared):
        """A :class:`Prepared` whose rows and cells stay on the workers: the driver
        holds the reduced hospital × fund × month totals."""

        def prev_cases(self) -> Any:
            raise DistributedError(
                "last year's cases stay on the workers of a distributed run: give "
                "reference_pv (last year's point value per fund) for budgeted_pv: last_year"
            )

    return DriverPrepared


def driver_prepared(
    policy: Policy,
    yp: YearPolicy,
    year: int,
    reduced: dict[str, Any],
    hids: np.ndarray,
    W: Weights,
    w_df: pd.DataFrame,
    w_src: str,
    weights_arg: Any,
    hosp_df: pd.DataFrame | None,
    region_df: pd.DataFrame | None,
    columns: dict[str, str] | None,
    dcol: str,
    meta: dict[str, str],
    reference_pv: dict[str, float] | None,
    empty: pd.DataFrame,
) -> Any:
    """The driver's :class:`~drgsim.scenarios.prepare.Prepared` from the reduced totals:
    budgets, scores and provenance by the single-machine functions; ``empty``: a zero-row
    frame of the cases' columns (names the hospitals in the settlement tables)."""
    from drgsim.scenarios.prepare import fund_budgets, hospital_scores, run_provenance

    pv = yp.pv
    zero = price(prepare_cases(empty, list(hids), columns=columns), W, yp, hosp_df)
    budgets = fund_budgets(
        pv, year, region_df, reduced["spend"], reduced["outside"], reduced["present"]
    )
    base = _driver_prepared_cls()(
        policy=policy,
        year=year,
        yp=yp,
        columns=columns,
        dcol=dcol,
        history=empty,
        prev_years=pd.Series([], dtype="Int64"),
        current=empty,
        back=empty,
        hosp_df=hosp_df,
        region_df=region_df,
        w_df=w_df,
        w_src=w_src,
        weights_arg=weights_arg,
        W=W,
        cases=_OnWorkers("case rows"),  # type: ignore[arg-type]
        priced=zero,
        cells=_OnWorkers("cells (sorted costs per hospital × DRG × fund × month)"),  # type: ignore[arg-type]
        spend=dict(reduced["spend"]),
        outside=dict(reduced["outside"]),
        budgets=budgets,
        scores=hospital_scores(hosp_df, hids),
        reference_pv=reference_pv,
        meta=meta,
    )
    base.prov = run_provenance(policy, w_df, w_src, meta, year)
    # stand-in cells: no cell, every partition's cap statistics, so the sweep refuses on
    # the driver exactly what the single machine's cells cannot re-price
    ratio, bound = reduced.get("cells_cap", (0.0, False))
    meta_cells = dataclasses.replace(
        build_cells(zero), fixed_cap_ratio=ratio, fixed_cap_bound=bound
    )
    base._cache.update(
        totals=reduced["totals"], all_share=dict(reduced["all_share"]), hospital_ids=hids,
        cells_meta=meta_cells,
    )
    return base


def settle_driver(base: Any) -> dict[str, pd.DataFrame]:
    """The single settlement on the driver from the reduced totals (``settle`` with
    ``totals``): funds, hospitals, months, ledger; the per-case tables are empty here and
    filled from the partitions (:func:`pay_partition`, :func:`finish_tables`)."""
    from drgsim.settlement.run import settle

    st = settle(
        base.priced,
        base.yp,
        base.budgets,
        base.year,
        base.scores,
        reference_pv=base.reference_pv,
        totals=base.fund_totals(),
        ratio=base.dip_ratio,
    )
    tables = st.tables()
    tables["weights"] = base.w_df
    if base.hosp_df is not None:
        tables["hospital_info"] = base.hosp_df.copy()
    tables["_settlement"] = st  # type: ignore[assignment]
    return tables


@dataclass
class FundPay:
    """What the per-case split back needs of one fund's settlement (broadcast)."""

    fund: str
    pv: float
    basis: str
    payment_hm: np.ndarray  # (H, 12) on the global hospital axis


def payments_of(funds: list[FundSettlement]) -> list[FundPay]:
    """The hospital-month payments to broadcast to the partitions."""
    return [
        FundPay(fs.fund, fs.pv, getattr(fs, "basis", "total_cost"), fs.payment_hm)
        for fs in funds
    ]


def pay_partition(
    pp: PartitionPriced, pays: list[FundPay], hids: np.ndarray
) -> dict[str, pd.DataFrame]:
    """Split each hospital-month payment over the partition's cases (``case_payments``,
    largest remainder, ties by case id) and the per-case parts of the tables: the cases,
    the hospitals' indices (CMI, cost and time indices), partial DRG and pay-status sums."""
    from drgsim.settlement.run import (
        _indices,
        case_payments,
        outlier_flags,
        summarize_pay_status,
    )

    pr = pp.priced
    c = pr.cases
    pos = pd.Index(hids).get_indexer([str(h) for h in c.hospital_ids])
    # with a hospitals table every partition carries every hospital: only its own are paid
    mine = np.zeros(len(pos), bool)
    mine[np.unique(c.hosp[c.hosp >= 0])] = True
    local = [
        FundPay(p.fund, p.pv, p.basis, np.where(mine[:, None], p.payment_hm[pos], 0))
        for p in pays
    ]
    cases = pr.frame()
    cases["payment_fen"] = case_payments(pr, local)  # type: ignore[arg-type]
    stub = cases.loc[cases["pay_status"] == "ok", ["fund", "hospital_id"]].drop_duplicates()
    idx = _indices(stub.reset_index(drop=True), cases)
    # the DRG table's aggregates as settlement.run.build_tables computes them, per partition
    # (plus each DRG's first row, so the combined base_points is the first in input order);
    # tests/test_dask.py compares the combined table with the single process's
    ok = outlier_flags(cases[cases["pay_status"] == "ok"]).assign(
        **{ROW: pp.rows[cases["pay_status"] == "ok"]})
    drgs = (
        ok.groupby(["fund", "drg"], observed=True)
        .agg(
            cases=("case_id", "size"),
            points=("points", "sum"),
            payment_fen=("payment_fen", "sum"),
            cost_fen=("cost_fen", "sum"),
            base_points=("base_points", "first"),
            high_cost=("_high_cost", "sum"),
            low_cost=("_low_cost", "sum"),
            first_row=(ROW, "first"),
        )
        .reset_index()
    )
    inb = cases[(cases["pay_status"] == "ok") & cases["in_budget"]]
    fund_points = inb.groupby("fund")["points"].sum().reset_index()
    cases[ROW] = pp.rows
    return {
        "cases": cases,
        "indices": idx,
        "drgs": drgs,
        "pay_status": summarize_pay_status(cases),
        "fund_points": fund_points,
    }


def finish_tables(
    tables: dict[str, pd.DataFrame], parts: list[dict[str, pd.DataFrame]], prov: dict[str, str]
) -> dict[str, pd.DataFrame]:
    """Put the partitions' per-case parts into the driver's tables (cases stay apart)."""
    from drgsim.settlement.simulate import summary_table

    tables.pop("_settlement", None)
    cols = ["cmi", "cost_index", "time_index"]
    idx = pd.concat([p["indices"] for p in parts], ignore_index=True)
    hosp = tables["hospitals"]
    if len(hosp):
        hosp = hosp.drop(columns=cols).merge(
            idx[["fund", "hospital_id", *cols]], on=["fund", "hospital_id"], how="left"
        )
    tables["hospitals"] = hosp
    d = pd.concat([p["drgs"] for p in parts], ignore_index=True)
    if len(d):
        first = d.sort_values("first_row", kind="stable").groupby(["fund", "drg"])[
            "base_points"
        ].first()
        d = (
            d.groupby(["fund", "drg"], observed=True)[
                ["cases", "points", "payment_fen", "cost_fen", "high_cost", "low_cost"]
            ]
            .sum()
            .join(first)
            .reset_index()
        )
        d = d[["fund", "drg", "cases", "points", "payment_fen", "cost_fen", "base_points",
               "high_cost", "low_cost"]]
    tables["drgs"] = d
    ps = pd.concat([p["pay_status"] for p in parts], ignore_index=True)
    tables["pay_status"] = (
        ps.groupby("pay_status", as_index=False)[["cases", "cost_fen"]].sum()
        .sort_values("pay_status").reset_index(drop=True)
    )
    # the summary compares the settled points with the sum of case points per fund
    fp = pd.concat([p["fund_points"] for p in parts], ignore_index=True)
    stand_in = fp.assign(pay_status="ok", in_budget=True)
    n_cases = int(tables["pay_status"]["cases"].sum())
    summary = summary_table({**tables, "cases": stand_in}, prov)
    summary.loc[summary["item"] == "cases", "value"] = str(n_cases)
    tables["summary"] = summary
    for t in tables.values():
        t.attrs = {
            **{k: v for k, v in t.attrs.items() if isinstance(v, (str, int, float))},
            **prov,
        }
    return tables


__all__ = [
    "ROW",
    "DistributedError",
    "FundPay",
    "PartitionPriced",
    "PriceContext",
    "calibration_columns",
    "check_disjoint",
    "combine",
    "cost_sum_count",
    "driver_context",
    "driver_prepared",
    "finish_tables",
    "global_hospitals",
    "mean_of_parts",
    "group_frame",
    "group_table",
    "pay_partition",
    "payments_of",
    "price_partition",
    "settle_driver",
    "status_counts",
]


def cost_sum_count(df: pd.DataFrame, columns: dict[str, str] | None) -> tuple[int, int]:
    """Cost (fen) and count of the grouped, payable cases of one partition of history:
    the parts of the all-case mean a published weights file without mean costs needs
    (as ``prepare`` takes it), summed on the driver by :func:`mean_of_parts`."""
    c = prepare_cases(df, columns=columns)
    ok = (c.status == 0) & (c.pay_status == 0)
    return int(c.cost_fen[ok].sum()), int(ok.sum())


def mean_of_parts(s: Any, n: Any) -> float | None:
    """The all-case mean (fen) from the partitions' cost sums and counts."""
    n_ok = int(np.sum(n))
    return int(np.sum(s)) / n_ok if n_ok else None


def driver_context(w_df: pd.DataFrame, pv: dict, yp: YearPolicy, year: int, dcol: str,
                   hosp_df: pd.DataFrame | None, columns: dict[str, str] | None,
                   reference_pv: dict[str, float] | None, engine: str,
                   W: Weights | None = None, dip: bool = False) -> PriceContext:
    """What every hospital partition is priced with, fixed on the driver: the weights
    (``W``: DIP's, from the catalogue), the reference point value checked, whether last
    year's spending is summed (budget source history), last year's totals (for
    ``budgeted_pv: last_year`` without ``reference_pv``), DIP's history sums."""
    from drgsim.scenarios.prepare import check_reference_pv
    from drgsim.settlement.simulate import last_year_policy, needs_reference_pv

    if W is None:
        W = Weights.from_frame(w_df, pv["points"]["scale"])
    check_reference_pv(reference_pv, pv)
    last = last_year_policy(pv) if needs_reference_pv(pv) and reference_pv is None else None
    need_hist = any(pv["budget"][f]["source"] == "history" for f in FUNDS)
    return PriceContext(W, yp, year, dcol, hosp_df, columns, spend=need_hist, dip=dip,
                        last_year=last)
