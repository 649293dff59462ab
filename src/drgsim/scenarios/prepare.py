"""``drgsim.prepare``: everything a simulation does before settling, done once.

Reading and splitting the years, calibrating (or taking) the weights, preparing and
pricing the cases, building the cells, the budget inputs, the assessment scores and last
year's point value are computed once into a :class:`Prepared`; ``Prepared.simulate()`` is
the single settlement (``drgsim.simulate`` is ``prepare(...).simulate()``), and
``Prepared.sweep(...)`` settles many scenarios on the same preparation.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from drgsim import __version__
from drgsim.calibrate import calibrate, read_weights
from drgsim.errors import RecordsError
from drgsim.policy import Policy, YearPolicy, load_policy, resolve_year
from drgsim.pricing.cases import FUNDS, Cases, _col, prepare_cases
from drgsim.pricing.cells import Cells, build_cells
from drgsim.pricing.core import Priced, Weights, price
from drgsim.settlement.core import Budget, BudgetError, EmptyFundWarning, fund_budget
from drgsim.settlement.run import settle
from drgsim.settlement.simulate import (
    GROUPER_COLUMNS,
    SettlementInputError,
    _weights_hash,
    check_inputs,
    history_spending,
    last_year_pv,
    needs_reference_pv,
    per_diem_categories_of,
    read_table,
    readmission_lookback,
    summary_table,
)

DIP_NOT_WEIGHTS = (
    "DIP scores come from the packet catalogue: give --catalogue (or none to build it from "
    "the history), not weights"
)


def check_catalogue_method(catalogue: Any, pol: Policy) -> None:
    """A catalogue given with a DRG policy is refused (never silently unused)."""
    if catalogue is not None and pol.method != "dip":
        raise RecordsError(
            f"a DIP catalogue was given, but policy {pol.name} has method {pol.method}: "
            "use a DIP policy (e.g. dip_baseline)"
        )


@dataclass
class Prepared:
    """One simulated year prepared for settlement: cases priced, cells built, budget
    inputs and scores fixed. Settle it once (:meth:`simulate`) or under many scenarios
    (:meth:`sweep`)."""

    policy: Policy
    year: int
    yp: YearPolicy
    columns: dict[str, str] | None
    dcol: str
    history: pd.DataFrame  # the years before ``year`` (calibration, last year's cases)
    prev_years: pd.Series  # discharge year of each history row
    current: pd.DataFrame  # the simulated year's rows (and rows without a valid date)
    back: pd.DataFrame  # last year's discharges inside the readmission window
    hosp_df: pd.DataFrame | None
    region_df: pd.DataFrame | None
    w_df: pd.DataFrame
    w_src: str
    weights_arg: Any  # what ``weights`` was (None: calibrated; a frame; a path)
    W: Weights
    cases: Cases  # prepared current-year rows plus the readmission look-back rows
    priced: Priced
    cells: Cells
    spend: dict[str, int]  # last year's fund spending (budget source history)
    outside: dict[str, int]  # per diem paid outside the budget, per fund
    budgets: dict[str, Budget]
    scores: np.ndarray | None
    reference_pv: dict[str, float] | None
    meta: dict[str, str]
    prov: dict[str, str] = field(default_factory=dict)
    catalogue: Any = None  # DIP (method dip): the catalogue the cases were matched with
    dip_ratio: dict[str, float] | None = None  # DIP: the reimbursement ratio r per fund
    _prev: Cases | None = None  # last year's prepared cases, on demand
    _cache: dict = field(default_factory=dict, repr=False)

    def fund_totals(self) -> list:
        """The baseline's hospital × month totals per fund from the cells (computed once)."""
        if "totals" not in self._cache:
            from drgsim.settlement.run import cell_fund_totals

            self._cache["totals"] = cell_fund_totals(self.cells)
        return self._cache["totals"]

    def fund_share_all_cases(self) -> dict[str, int]:
        """Per fund, cost less the patients' share of every simulated case (the DRG
        coverage denominator; computed once)."""
        if "all_share" not in self._cache:
            c = self.priced.cases
            self._cache["all_share"] = {
                name: int((c.cost_fen[c.fund == f] - c.share_fen[c.fund == f]).sum())
                for f, name in enumerate(FUNDS)
            }
        return self._cache["all_share"]

    @property
    def hospital_ids(self) -> np.ndarray:
        """The hospitals of the settlement's hospital axis."""
        if "hospital_ids" in self._cache:
            return self._cache["hospital_ids"]
        return self.priced.cases.hospital_ids

    @property
    def pv(self) -> dict:
        """The baseline policy resolved on 1 January."""
        return self.yp.pv

    def prev_cases(self) -> Cases | None:
        """Last year's cases, prepared (for the history budget source and last year's PV)."""
        if self._prev is None:
            prev_df = self.history[(self.prev_years == self.year - 1).to_numpy()]
            hids = self.hosp_df["hospital_id"] if self.hosp_df is not None else None
            self._prev = prepare_cases(prev_df, hids, columns=self.columns)
        return self._prev

    def simulate(self) -> dict[str, pd.DataFrame]:
        """The single settlement and its tables (what ``drgsim.simulate`` returns)."""
        st = settle(
            self.priced,
            self.yp,
            self.budgets,
            self.year,
            self.scores,
            cells=self.cells,
            reference_pv=self.reference_pv,
            ratio=self.dip_ratio,
        )
        tables = st.tables()
        tables["weights"] = self.w_df
        if self.hosp_df is not None:  # names and levels beside hospital ids
            tables["hospital_info"] = self.hosp_df.copy()
        tables["summary"] = summary_table(tables, self.prov)
        for t in tables.values():
            t.attrs = {
                **{k: v for k, v in t.attrs.items() if isinstance(v, (str, int, float))},
                **self.prov,
            }
        return tables

    def sweep(
        self,
        scenarios: Any,
        draws: int | None = None,
        seed: int | None = None,
        monthly: bool = False,
        chunk: int | None = None,
    ) -> Any:
        """Settle every scenario of ``scenarios`` (a :class:`~drgsim.scenarios.grid.Grid`,
        a list of overlays, a DataFrame, a scenario spec or file) on this preparation:
        a :class:`~drgsim.scenarios.sweep.SweepResult`."""
        from drgsim.scenarios.sweep import sweep

        return sweep(self, scenarios, draws=draws, seed=seed, monthly=monthly, chunk=chunk)


def prepare(
    cases: Any,
    policy: Policy | str | os.PathLike[str] | None = None,
    weights: pd.DataFrame | str | os.PathLike[str] | None = None,
    hospitals: pd.DataFrame | str | os.PathLike[str] | None = None,
    region: pd.DataFrame | str | os.PathLike[str] | None = None,
    year: int | None = None,
    columns: dict[str, str] | None = None,
    grouped: bool | None = None,
    reference_pv: dict[str, float] | None = None,
    catalogue: Any = None,
) -> Prepared:
    """Read, split, calibrate, price and build cells once for one simulated year.

    Arguments as :func:`drgsim.simulate`; inputs that would change the money silently
    raise here, before any settlement. With a DIP policy (``method: dip``) the cases are
    priced by packet instead of DRG (:mod:`drgsim.dip.price`): cases without a ``packet``
    column are matched here with ``catalogue`` (a folder or a ``Catalogue``), or with a
    catalogue built from the history years when none is given.
    """
    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    df, meta = read_table(cases)
    dip = pol.method == "dip"
    check_catalogue_method(catalogue, pol)
    is_grouped = grouped
    if dip:
        is_grouped = True  # DIP matches packets below; no DRG grouping
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
    hosp_df = read_hospitals(hospitals)
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
    current, history, prev_years = split_years(df, years, year)
    cur_mask = (years == year).to_numpy()
    hist_mask = (years < year).to_numpy()
    yp = resolve_year(pol, year)  # each key at its level: case, month or year (README)
    pv = yp.pv
    cat = cat_src = None
    if dip:
        if weights is not None:
            raise RecordsError(DIP_NOT_WEIGHTS)
        df, cat, cat_src = _dip_match(df, hist_mask, catalogue, pol, year, columns)
        current, history, prev_years = split_years(df, years, year)
    check_inputs(pv, year, int(cur_mask.sum()), years, hosp_df, region_df)
    hcol = _col(current, "hospital_id", columns)
    if hcol is not None:
        check_hospitals_named(hosp_df, current[hcol].astype("string").dropna().unique())

    hist_cases = prepare_cases(history, columns=columns) if len(history) and not dip else None
    if dip:
        from drgsim.dip.price import dip_weights

        W = dip_weights(cat, df)
        w_df, w_src = W.table, cat_src
    elif weights is None:
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
    if not dip:
        W = Weights.from_frame(w_df, pv["points"]["scale"])

    check_reference_pv(reference_pv, pv)
    base = Prepared(
        policy=pol,
        year=year,
        yp=yp,
        columns=columns,
        dcol=dcol,
        history=history,
        prev_years=prev_years,
        current=current,
        back=history.iloc[0:0],
        hosp_df=hosp_df,
        region_df=region_df,
        w_df=w_df,
        w_src=w_src,
        weights_arg=weights,
        W=W,
        cases=None,  # type: ignore[arg-type]
        priced=None,  # type: ignore[arg-type]
        cells=None,  # type: ignore[arg-type]
        spend={},
        outside={},
        budgets={},
        scores=None,
        reference_pv=reference_pv,
        meta=meta,
    )
    base.catalogue = cat
    if dip:
        _dip_point_values(base, cat, reference_pv)
    need_hist = any(pv["budget"][f]["source"] == "history" for f in FUNDS)
    need_ref = needs_reference_pv(pv) and reference_pv is None
    prev = base.prev_cases() if need_hist or need_ref else None
    if need_hist and prev is not None:
        base.spend = history_spending(prev, W, pv, hosp_df)
    if need_ref and prev is not None:
        base.reference_pv = last_year_pv(
            prev, W, pv, region_df, year, hosp_df, ratio=base.dip_ratio
        )

    # last year's discharges inside the readmission window link January readmissions
    base.back = readmission_lookback(history, dcol, year, yp)
    base.cases, base.priced, base.cells = price_rows(current, base.back, W, yp, hosp_df, columns)
    pr = base.priced
    c = pr.cases
    base.outside = outside_budget(pr)
    present = {name: bool((c.fund == f).any()) for f, name in enumerate(FUNDS)}
    base.budgets = fund_budgets(pv, year, region_df, base.spend, base.outside, present)
    base.scores = hospital_scores(hosp_df, c.hospital_ids)
    base.prov = run_provenance(pol, w_df, w_src, meta, year)
    if dip:
        dip_provenance(base.prov, str(cat_src), base.dip_ratio)
    return base


def read_hospitals(hospitals: Any) -> pd.DataFrame | None:
    """The hospitals table (a frame or a file), one row per hospital_id, or None."""
    hosp_df = read_table(hospitals)[0] if hospitals is not None else None
    if hosp_df is not None and "hospital_id" not in hosp_df.columns:
        where = "" if isinstance(hospitals, pd.DataFrame) else f"{hospitals}: "
        raise RecordsError(f"{where}the hospitals table lacks a hospital_id column")
    if hosp_df is not None:  # a second row would be dropped silently, with its level
        n_rows = hosp_df["hospital_id"].astype("string").str.strip().value_counts()
        dups = n_rows[n_rows > 1]
        if len(dups):
            listed = ", ".join(f"{h} ({n} rows)" for h, n in sorted(dups.items())[:10])
            raise RecordsError(
                f"the hospitals table lists {len(dups)} hospital(s) more than once: {listed}; "
                "keep one row per hospital_id"
            )
    return hosp_df


def check_hospitals_named(hosp_df: pd.DataFrame | None, in_cases: Any) -> None:
    """Refuse a hospitals table that names none of the cases' hospitals (e.g. codes 0001
    read as numbers 1): every case would be ``unknown_hospital``."""
    if hosp_df is None:
        return
    table = set(hosp_df["hospital_id"].astype("string").dropna())
    in_cases = sorted({str(h) for h in in_cases})
    if in_cases and not table & set(in_cases):
        raise SettlementInputError(
            f"the hospitals table names none of the {len(in_cases)} hospitals of the "
            f"cases (cases: {', '.join(in_cases[:3])}…; table: "
            f"{', '.join(sorted(table)[:3])}…): check the hospital_id columns"
        )


def split_years(
    df: pd.DataFrame, years: pd.Series, year: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """(current, history, history's years): the simulated year's rows, then the rows
    without a valid date (kept, paid as bad_date, never dropped); the years before."""
    hist_mask = (years < year).to_numpy()
    current = df[(years == year).to_numpy()].reset_index(drop=True)
    bad_year = df[years.isna().to_numpy()]
    if len(bad_year):
        current = pd.concat([current, bad_year], ignore_index=True)
    return current, df[hist_mask], years[hist_mask]


def price_rows(
    current: pd.DataFrame,
    back: pd.DataFrame,
    W: Weights,
    yp: YearPolicy,
    hosp_df: pd.DataFrame | None,
    columns: dict[str, str] | None,
) -> tuple[Cases, Priced, Cells]:
    """Prepare, price and build the cells of the simulated year's rows (``back``: last
    year's look-back rows, linking only). Everything here is per hospital, so a
    distributed run calls it once per hospital partition (:mod:`drgsim.distributed`)."""
    hids = hosp_df["hospital_id"] if hosp_df is not None else None
    cases = cases_with_lookback(current, back, hids, columns)
    pr = price(cases, W, yp, hosp_df)
    return cases, pr, build_cells(pr)


def outside_budget(pr: Priced) -> dict[str, int]:
    """Per fund, the per diem paid outside the budget (fen; a sum, so partitions add)."""
    c = pr.cases
    return {
        name: int(pr.outside_fen[(c.fund == f) & pr.payable & ~pr.in_budget].sum())
        for f, name in enumerate(FUNDS)
    }


def fund_budgets(
    pv: dict,
    year: int,
    region_df: pd.DataFrame | None,
    spend: dict[str, int],
    outside: dict[str, int],
    present: dict[str, bool],
) -> dict[str, Budget]:
    """Each fund's budget; a fund without cases (``present``) is warned about."""
    budgets = {}
    for name in FUNDS:
        budgets[name] = fund_budget(
            pv["budget"][name], name, year, region_df, spend.get(name), outside[name]
        )
        if not present[name]:
            warnings.warn(
                EmptyFundWarning(
                    f"fund {name} has no cases in {year}: it is settled with zero points and "
                    f"pays nothing; its budget ({budgets[name].arithmetic()}) stays unspent"
                ),
                stacklevel=3,
            )
    return budgets


def run_provenance(
    pol: Policy, w_df: pd.DataFrame, w_src: str, meta: dict[str, str], year: int
) -> dict[str, str]:
    """What a run's tables carry about how they were made."""
    return {
        "drgsim.version": __version__,
        "drgsim.policy": pol.name,
        "drgsim.policy_hash": pol.text_hash,
        "drgsim.weights_hash": _weights_hash(w_df),
        "drgsim.weights_source": w_src,
        "drgsim.scheme": meta.get("drgsim.scheme", pol.scheme),
        "drgsim.scheme_hash": meta.get("drgsim.scheme_hash", ""),
        "drgsim.year": str(year),
        "drgsim.method": pol.method,
    }


def _dip_module(mod: str, what: str) -> Any:
    """``drgsim.dip.<mod>``, or a one-line error when this installation lacks it."""
    import importlib

    from drgsim.dip.price import DipPricingError

    try:
        return importlib.import_module(f"drgsim.dip.{mod}")
    except ImportError as e:
        raise DipPricingError(
            f"{what} needs drgsim.dip.{mod}, which this installation lacks ({e}): give "
            "cases already matched (drgsim group --method dip) and their --catalogue"
        ) from None


def dip_catalogue(
    catalogue: Any,
    matched: bool,
    pol: Policy,
    year: int,
    n_history: int,
    build: Any,
) -> tuple[Any, str]:
    """The catalogue a DIP run prices with and its source: ``catalogue`` (a folder is
    read); cases already ``matched`` (a ``packet`` column) need it given; else
    ``build()`` builds one from the ``n_history`` rows before ``year`` (the single path on
    its frame, an engine on its partitions). Its scale is checked and an in-sample
    catalogue warned about, the same on every path."""
    from drgsim.dip.price import DipPricingError

    cat, src = catalogue, "given"
    if isinstance(catalogue, (str, os.PathLike)):
        reader = _dip_module("tables", "reading a DIP catalogue")
        cat, src = reader.read_catalogue(catalogue), str(catalogue)
    if matched and cat is None:
        raise DipPricingError(
            "the cases are matched to DIP packets (a packet column): give the catalogue "
            "they were matched with (--catalogue DIR)"
        )
    if cat is None:
        if not n_history:
            raise DipPricingError(
                f"no history before {year} to build a DIP catalogue from: give --catalogue DIR"
            )
        cat = build()
        src = f"built from {n_history:,} history cases"
        note = getattr(getattr(cat, "info", None), "years_note", "")
        if note:  # the build weighted other years than the policy's: said, not silent
            warnings.warn(note, stacklevel=2)
    _check_scale(cat, pol, year)
    return cat, src


def _dip_match(
    df: pd.DataFrame,
    hist_mask: np.ndarray,
    catalogue: Any,
    pol: Policy,
    year: int,
    columns: dict[str, str] | None,
) -> tuple[pd.DataFrame, Any, str]:
    """DIP cases as pricing reads them (:func:`drgsim.dip.price.dip_frame`) and the catalogue:
    matched cases (a ``packet`` column) are taken as they are, with their catalogue; raw
    cases are matched with ``catalogue``, or with one built from the history rows."""
    from drgsim.dip.price import dip_frame

    def build() -> Any:
        return _dip_module("build", "building a DIP catalogue").build(
            df[hist_mask], policy=pol, scheme=pol.scheme, columns=columns, year=year
        )[0]

    matched = "packet" in df.columns
    cat, src = dip_catalogue(catalogue, matched, pol, year, int(hist_mask.sum()), build)
    if matched:
        return dip_frame(df), cat, src
    match = _dip_module("match", "matching DIP packets").match
    return dip_frame(match(df, catalogue=cat, scheme=pol.scheme)), cat, src


def _check_scale(cat: Any, pol: Policy, year: int) -> None:
    """A catalogue scored on another scale than the policy's dip.score_scale is refused."""
    from drgsim.dip.price import DipPricingError

    want = resolve_year(pol, year).pv["dip"]["score_scale"]
    got = (getattr(cat, "meta", None) or {}).get("score_scale")
    if got is not None and int(got) != int(want):
        raise DipPricingError(
            f"the DIP catalogue scores x{got} but the policy's dip.score_scale is {want}: "
            "rebuild the catalogue with this policy, or set dip.score_scale to match"
        )
    years = (getattr(cat, "meta", None) or {}).get("years")
    if isinstance(years, list) and years and max(int(y) for y in years) >= int(year):
        # said aloud: scores from the simulated year's own cases are in-sample
        warnings.warn(f"the DIP catalogue was built from years {','.join(map(str, years))}, "
                      f"which include the simulated year {year} (in-sample scores): build "
                      f"it with drgsim dip build --year {year}", stacklevel=2)


def _dip_point_values(base: Prepared, cat: Any, reference_pv: dict[str, float] | None) -> None:
    """PV_b (``budgeted_pv: history``) and the reimbursement ratio r per fund from the
    matched history, priced with this year's policy (so the same cases count as in the
    simulated year: payable, inside the budget): :func:`dip_point_values`."""
    from drgsim.dip.price import history_sums

    sums = None
    if len(base.history):  # the history priced like the simulated year (same clean cases)
        hids = base.hosp_df["hospital_id"] if base.hosp_df is not None else None
        hist = prepare_cases(base.history, hids, columns=base.columns)
        sums = history_sums(price(hist, base.W, base.pv, base.hosp_df))
    base.dip_ratio, pv_b = dip_point_values(base.pv, sums, cat)
    if base.pv["point_value"]["bounds"]["budgeted_pv"] == "history" and reference_pv is None:
        base.reference_pv = pv_b


def dip_point_values(
    pv: dict, sums: pd.DataFrame | None, cat: Any
) -> tuple[dict[str, float], dict[str, float]]:
    """(r, PV_b) per fund from the history's :func:`~drgsim.dip.price.history_sums` (one
    frame's, or every hospital partition's concatenated; None without history rows); a fund
    the history does not give takes the catalogue's own pv_budget and reimbursement_ratio
    (from the history it was built on)."""
    from drgsim.dip.price import point_values_of_sums

    pv_b: dict[str, float] = {}
    r: dict[str, float] = {}
    if sums is not None:
        pv_b, r = point_values_of_sums(sums, pv["dip"]["year_weights"])
    meta = getattr(cat, "meta", {}) or {}
    for f in FUNDS:
        if f not in pv_b and meta.get("pv_budget") not in (None, ""):
            pv_b[f] = float(meta["pv_budget"])
        if f not in r and meta.get("reimbursement_ratio") not in (None, ""):
            r[f] = float(meta["reimbursement_ratio"])
    return r, pv_b


def dip_provenance(prov: dict[str, str], source: str, ratio: dict[str, float] | None) -> None:
    """What a DIP run's tables carry beside :func:`run_provenance`: the catalogue's source
    and the reimbursement ratio per fund."""
    prov["drgsim.catalogue"] = str(source)
    if ratio:
        prov["drgsim.reimbursement_ratio"] = ", ".join(
            f"{k} {v:.6f}" for k, v in sorted(ratio.items())
        )


def check_reference_pv(reference_pv: dict[str, float] | None, pv: dict) -> None:
    """A given last-year point value is never silently unused, nor given for a non-fund."""
    if reference_pv is None:
        return
    if pv["point_value"]["bounds"]["budgeted_pv"] not in ("last_year", "history"):
        raise BudgetError(
            "reference_pv is last year's point value (or PV_b) for "
            "point_value.bounds.budgeted_pv: last_year (history), but the policy's budgeted_pv is "
            f"{pv['point_value']['bounds']['budgeted_pv']}"
        )
    if set(reference_pv) - set(FUNDS):
        raise BudgetError(
            f"reference_pv: {', '.join(sorted(set(reference_pv) - set(FUNDS)))} is not a "
            f"fund ({', '.join(FUNDS)})"
        )


def cases_with_lookback(
    current: pd.DataFrame, back: pd.DataFrame, hids: Any, columns: dict[str, str] | None
) -> Cases:
    """The simulated year's rows prepared, with last year's look-back rows for linking only."""
    return prepare_cases(
        pd.concat([current, back], ignore_index=True) if len(back) else current,
        hids,
        columns=columns,
        link_only=np.r_[np.zeros(len(current), bool), np.ones(len(back), bool)],
    )


def hospital_scores(hosp_df: pd.DataFrame | None, hospital_ids: np.ndarray) -> np.ndarray | None:
    """Each hospital's assessment score (NaN: none), in the cases' hospital order."""
    if hosp_df is None:
        return None
    sc_col = next((x for x in ("assessment_score", "score") if x in hosp_df.columns), None)
    if not sc_col:
        return None
    s = hosp_df.assign(hospital_id=hosp_df["hospital_id"].astype(str)).set_index("hospital_id")[
        sc_col
    ]
    return (
        pd.to_numeric(s, errors="coerce")
        .reindex(hospital_ids.astype(str))
        .to_numpy(dtype=np.float64)
    )


__all__ = ["Prepared", "prepare"]
