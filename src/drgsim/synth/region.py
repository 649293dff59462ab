"""The synthetic region: plan (rows per month), hospitals, discharges, fund table.

A region is fully determined by its parameters: every month's rows come in fixed-size
blocks (:data:`~drgsim.synth.params.BLOCK_ROWS`) drawn from streams keyed by
``(seed, year, month, block)``, so chunk sizes and thread counts never change the data.
"""

from __future__ import annotations

import calendar
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pyarrow as pa

from drgsim.errors import DrgsimError
from drgsim.synth import params as P
from drgsim.synth.casemix import Catalogue, catalogue
from drgsim.synth.generate import BlockSpec, generate_block
from drgsim.synth.hospitals import Hospitals, make_hospitals
from drgsim.synth.table import block_table

REGION_MONEY = pa.decimal128(18, 2)


class SynthError(DrgsimError, ValueError):
    """Invalid parameters for the synthetic region generator."""


@dataclass(frozen=True)
class MonthPlan:
    """Rows of one month and where they sit in the region."""

    year: int
    year_index: int
    month: int
    rows: int
    gi0: int  # rows before this month

    def blocks(self) -> list[BlockSpec]:
        out = []
        for b, row0 in enumerate(range(0, self.rows, P.BLOCK_ROWS)):
            n = min(P.BLOCK_ROWS, self.rows - row0)
            out.append(BlockSpec(self.year, self.year_index, self.month, b, n, row0,
                                 self.gi0 + row0))
        return out


def plan_months(discharges: int, years: Sequence[int]) -> list[MonthPlan]:
    """Split ``discharges`` over years (volume growth) and months (seasonality, days)."""
    w = []
    first = min(years)
    for y in years:
        yi = y - first
        for m in range(1, 13):
            days = calendar.monthrange(y, m)[1]
            w.append((1 + P.VOLUME_GROWTH) ** yi * P.SEASONALITY[m - 1] * days)
    w = np.asarray(w) / np.sum(w)
    exact = w * discharges
    rows = np.floor(exact).astype(np.int64)
    short = discharges - int(rows.sum())
    rows[np.argsort(-(exact - rows), kind="stable")[:short]] += 1
    out, gi = [], 0
    for i, y in enumerate(y for y in years for _ in range(12)):
        m = i % 12 + 1
        out.append(MonthPlan(y, y - first, m, int(rows[i]), gi))
        gi += int(rows[i])
    return out


@dataclass
class FundTotals:
    """Exact (fen) sums of clean cases' fund shares by (year, fund)."""

    cases: dict[tuple[int, int], int] = field(default_factory=dict)
    fund_fen: dict[tuple[int, int], int] = field(default_factory=dict)
    per_diem_fen: dict[tuple[int, int], int] = field(default_factory=dict)

    def add(self, year: int, employee: np.ndarray, fund_fen: np.ndarray,
            per_diem: np.ndarray) -> None:
        for f, m in ((0, employee), (1, ~employee)):
            key = (year, f)
            self.cases[key] = self.cases.get(key, 0) + int(m.sum())
            self.fund_fen[key] = self.fund_fen.get(key, 0) + int(fund_fen[m].sum())
            self.per_diem_fen[key] = (self.per_diem_fen.get(key, 0)
                                      + int(fund_fen[m & per_diem].sum()))


def _yuan(fen: int) -> Decimal:
    return Decimal(fen).scaleb(-2)


class SyntheticRegion:
    """A seeded synthetic region; nothing is generated until asked for.

    Example::

        reg = SyntheticRegion(discharges=50_000, seed=1)
        for table in reg.iter_discharges(chunk_size=20_000):
            ...
        reg.region_table()
    """

    def __init__(
        self,
        discharges: int = P.DEFAULT_DISCHARGES,
        hospitals: int = P.DEFAULT_HOSPITALS,
        years: Sequence[int] = P.DEFAULT_YEARS,
        seed: int = 0,
        dirty_rate: float = P.DEFAULT_DIRTY_RATE,
        scheme: str | os.PathLike[str] = "chs_drg_11",
        workers: int | None = None,
    ) -> None:
        if discharges < 0:
            raise SynthError(f"discharges must be >= 0, got {discharges}")
        if hospitals < 1:
            raise SynthError(f"hospitals must be >= 1, got {hospitals}")
        if not 0.0 <= dirty_rate <= 1.0:
            raise SynthError(f"dirty_rate must be within [0, 1], got {dirty_rate}")
        years = tuple(sorted(int(y) for y in years))
        if not years or len(set(years)) != len(years) or any(y < 1900 or y > 9999 for y in years):
            raise SynthError(f"years must be distinct calendar years, got {years}")
        if seed < 0 or seed >= 2**64:
            raise SynthError(f"seed must be within [0, 2**64), got {seed}")
        self.discharges = int(discharges)
        self.n_hospitals = int(hospitals)
        self.years = years
        self.seed = int(seed)
        self.dirty_rate = float(dirty_rate)
        self.scheme = str(scheme)
        self.workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        self.months = plan_months(self.discharges, self.years)
        self._hospitals: Hospitals | None = None

    # ---- parts -----------------------------------------------------------------------------
    @property
    def catalogue(self) -> Catalogue:
        return catalogue(self.scheme)

    @property
    def hospitals(self) -> Hospitals:
        if self._hospitals is None:
            self._hospitals = make_hospitals(self.n_hospitals, self.seed)
        return self._hospitals

    def hospitals_table(self) -> pa.Table:
        """One row per hospital: id, name, level, beds, efficiency."""
        return self.hospitals.table()

    def _ordered(self, fn: Callable[[BlockSpec], object],
                 specs: list[BlockSpec]) -> Iterator[object]:
        """``fn`` over ``specs`` in order, ``workers`` at a time, a bounded window ahead."""
        if self.workers <= 1 or len(specs) <= 1:
            for s in specs:
                yield fn(s)
            return
        with ThreadPoolExecutor(self.workers) as ex:
            window: deque = deque()
            it = iter(specs)
            for s in it:
                window.append(ex.submit(fn, s))
                if len(window) > self.workers:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()

    def iter_blocks(self, text: bool = False,
                    totals: FundTotals | None = None) -> Iterator[tuple[MonthPlan, pa.Table]]:
        """Every block as ``(month, table)``, in order; ``totals`` collects fund sums."""
        cat, hosp = self.catalogue, self.hospitals
        specs = [s for m in self.months for s in m.blocks()]
        month_of = {(m.year, m.month): m for m in self.months}

        def make(spec: BlockSpec) -> tuple[BlockSpec, pa.Table, tuple]:
            b = generate_block(cat, hosp, spec, self.seed)
            t = block_table(cat, hosp, b, self.seed, self.dirty_rate, text)
            return spec, t, (b.is_employee, b.fund_fen, b.per_diem)

        for spec, table, acc in self._ordered(make, specs):
            if totals is not None:
                totals.add(spec.year, *acc)
            yield month_of[(spec.year, spec.month)], table

    def iter_discharges(self, chunk_size: int = 100_000,
                        text: bool = False) -> Iterator[pa.Table]:
        """All discharges, in order, as tables of ``chunk_size`` rows (the last shorter)."""
        if chunk_size < 1:
            raise SynthError(f"chunk_size must be >= 1, got {chunk_size}")
        buf: list[pa.Table] = []
        have = 0
        for _, t in self.iter_blocks(text=text):
            buf.append(t)
            have += t.num_rows
            while have >= chunk_size:
                whole = pa.concat_tables(buf)
                yield whole.slice(0, chunk_size)
                rest = whole.slice(chunk_size)
                buf, have = [rest], rest.num_rows
        if have:
            yield pa.concat_tables(buf)

    def discharges_table(self, text: bool = False) -> pa.Table:
        """All discharges in one table (for small regions and tests)."""
        tables = [t for _, t in self.iter_blocks(text=text)]
        if not tables:
            from drgsim.synth.generate import COLUMNS  # noqa: PLC0415

            return pa.table({c: pa.array([], pa.string()) for c in COLUMNS})
        return pa.concat_tables(tables)

    def fund_totals(self) -> FundTotals:
        """Fund sums of the clean cases, without building any table."""
        cat, hosp = self.catalogue, self.hospitals
        totals = FundTotals()
        specs = [s for m in self.months for s in m.blocks()]

        def make(spec: BlockSpec):
            b = generate_block(cat, hosp, spec, self.seed)
            return spec, (b.is_employee, b.fund_fen, b.per_diem)

        for spec, acc in self._ordered(make, specs):
            totals.add(spec.year, *acc)
        return totals

    def region_table(self, totals: FundTotals | None = None) -> pa.Table:
        """One row per fund and year: insured, fund income/spending and their DRG parts.

        ``drg_spending`` is exactly the sum of the clean cases' fund shares; spending is
        ``drg_spending / 0.55`` and income leaves a small surplus (DOMAIN.md).
        """
        totals = totals or self.fund_totals()
        rows: dict[str, list] = {k: [] for k in (
            "year", "fund", "insured", "cases", "fund_income", "fund_spending", "drg_spending",
            "per_diem_spending", "other_spending")}
        per_year = self.discharges / max(len(self.years), 1)
        for y in self.years:
            yi = y - self.years[0]
            insured_all = per_year * P.INSURED_PER_DISCHARGE * (1 + P.INSURED_GROWTH) ** yi
            for f, name in enumerate(P.FUNDS):
                share = P.EMPLOYEE_INSURED_SHARE if f == 0 else 1 - P.EMPLOYEE_INSURED_SHARE
                drg = totals.fund_fen.get((y, f), 0)
                spending = round(drg / P.DRG_SHARE_OF_SPENDING)
                income = round(spending * (1 + P.FUND_SURPLUS[f]))
                rows["year"].append(y)
                rows["fund"].append(name)
                rows["insured"].append(round(insured_all * share))
                rows["cases"].append(totals.cases.get((y, f), 0))
                rows["fund_income"].append(_yuan(income))
                rows["fund_spending"].append(_yuan(spending))
                rows["drg_spending"].append(_yuan(drg))
                rows["per_diem_spending"].append(_yuan(totals.per_diem_fen.get((y, f), 0)))
                rows["other_spending"].append(_yuan(spending - drg))
        money = {k: REGION_MONEY for k in ("fund_income", "fund_spending", "drg_spending",
                                            "per_diem_spending", "other_spending")}
        types = {"year": pa.int32(), "fund": pa.string(), "insured": pa.int64(),
                 "cases": pa.int64(), **money}
        return pa.table({k: pa.array(v, types[k]) for k, v in rows.items()})


def discharges(n: int = 20_000, *, seed: int = 0, dirty_rate: float = P.DEFAULT_DIRTY_RATE,
               hospitals: int = P.DEFAULT_HOSPITALS, years: Sequence[int] = P.DEFAULT_YEARS,
               text: bool = False, scheme: str = "chs_drg_11") -> pa.Table:
    """``n`` synthetic discharges in memory (typed; ``text=True`` for CSV-style fields)."""
    reg = SyntheticRegion(n, hospitals, years, seed, dirty_rate, scheme)
    return reg.discharges_table(text=text)
