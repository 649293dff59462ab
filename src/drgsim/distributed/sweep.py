"""Every sweep route on a distributed engine: the partitions re-price, the driver settles.

A distributed ``prepare`` leaves each hospital partition's rows, priced cases and cells on
its worker (Dask: in the persisted partition; Spark: rebuilt from the kept rows in every
pass) as a partition-local :class:`~drgsim.scenarios.prepare.Prepared`
(:func:`local_prepared`). The driver's sweep (:func:`drgsim.scenarios.sweep.sweep`, the
single-machine code) asks its :class:`SweepEngine` wherever it would touch the rows or
cells, and the engine sends a job to every partition (:func:`run_job`):

- a **price set** (the cells, rows and recalibrate routes, a LOS change): the partition runs
  the sweep's own ``_price_set`` on its local Prepared, with the weights fixed on the driver
  (recalibrated there through the adapter's ``calibrate_weights``); it returns the totals
  of its own hospitals, which the driver places on the global hospital axis;
- **last year's spending** (budget source history under other weights or pricing): a sum
  of ``history_spending`` per partition (integers, exact);
- a **block of behaviour draws**: the draws' values are drawn and resolved per hospital on
  the driver against every hospital (a level no partition has alone is not an error), the
  partition prices its cells for the block (``prepare_cells`` + ``apply_cells_stacked``),
  the driver places the block's totals as the settlement asks for it (one block at a time,
  as on one machine).

What the cells can or cannot re-price is decided on the driver, on stand-in cells carrying
every partition's cap statistics (the single machine's refusal, word for word). Each
hospital's totals come from exactly one partition, so placing them on the hospital axis
gives the single machine's float points bit for bit. The adapters only map
:func:`run_job` over their partitions (:meth:`SweepEngine.map_job`) and calibrate
(:meth:`SweepEngine.calibrate_weights`).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from drgsim.distributed.partition import DistributedError
from drgsim.errors import DrgsimError
from drgsim.policy import YearPolicy
from drgsim.pricing.cases import FUNDS
from drgsim.pricing.core import Weights
from drgsim.settlement.core import FundTotals

_CACHE = "sweep"  # the partition-local Prepared's cache of re-priced sets (Dask keeps it)


# ---------------------------------------------------------------------------- jobs
@dataclass
class SetSpec:
    """One priced set, as a partition rebuilds it: the scenario (route, policy of the
    year), the driver's weights, the LOS factor of a behaviour draw."""

    key: str
    sc: Any  # a slim drgsim.scenarios.sweep._Scenario (no Policy object)
    W: Weights | None
    los: float | None = None
    keep: bool = False  # keep the set's rows and cells on the partition (behaviour draws)


@dataclass
class SetsJob:
    specs: list[SetSpec]


@dataclass
class SpendJob:
    W: Weights
    pv: dict


@dataclass
class DrawJob:
    """Totals of a block of behaviour draws on one priced set: ``hv`` the per-hospital
    values (draws, H) and ``bounds`` the group's inflation range, on ``hids``."""

    spec: SetSpec
    siblings: dict[str, str]
    yp: YearPolicy
    hids: np.ndarray
    hv: dict[str, np.ndarray]
    bounds: tuple[np.ndarray, np.ndarray] | None


@dataclass
class LastYearJob:
    """Last year's cases of the partition priced under the last-year policy ``p0`` with
    the baseline's weights (``budgeted_pv: last_year`` fixed once per sweep)."""

    W: Weights
    p0: dict
    year: int


@dataclass
class ReleaseJob:
    """Drop the partition's re-priced sets and behaviour cells (the sweep ended)."""


@dataclass
class Failed:
    """A partition's refusal (a :class:`~drgsim.errors.DrgsimError`): its class, args and
    attributes cross to the driver (an exception whose ``__init__`` takes other arguments
    than its ``args`` would not unpickle), where :attr:`error` raises it again."""

    cls: type
    args: tuple
    state: dict

    @classmethod
    def of(cls, e: BaseException) -> Failed:
        return cls(type(e), tuple(e.args), dict(vars(e)))

    @property
    def error(self) -> BaseException:
        e = self.cls.__new__(self.cls)
        e.args = self.args
        vars(e).update(self.state)
        return e


# ---------------------------------------------------------------------------- partition
def local_prepared(
    ctx: Any,
    current: pd.DataFrame,
    history: pd.DataFrame,
    prev_years: pd.Series,
    back: pd.DataFrame,
    cases: Any,
    priced: Any,
    cells: Any,
    spend: dict[str, int],
) -> Any:
    """A partition's own :class:`~drgsim.scenarios.prepare.Prepared`: its rows (this year's,
    last year's, the look-back), priced cases and cells, the context's weights and policy
    year; what the sweep's ``_price_set`` and ``_spend`` read, and nothing global."""
    from drgsim.scenarios.prepare import Prepared, outside_budget

    last = (prev_years == ctx.year - 1).to_numpy()
    return Prepared(
        policy=None,  # type: ignore[arg-type]  # never read on a partition
        year=ctx.year,
        yp=ctx.yp,
        columns=ctx.columns,
        dcol=ctx.dcol,
        history=history[last],  # last year's rows: the look-back and last year's spending
        prev_years=prev_years[last],
        current=current,
        back=back,
        hosp_df=ctx.hosp_df,
        region_df=None,
        w_df=None,  # type: ignore[arg-type]
        w_src="",
        weights_arg=None,
        W=ctx.W,
        cases=cases,
        priced=priced,
        cells=cells,
        spend=dict(spend),
        outside=outside_budget(priced),
        budgets={},
        scores=None,
        reference_pv=None,
        meta={},
    )


def _own(pr: Any) -> tuple[np.ndarray, np.ndarray]:
    """(local indices, ids) of the hospitals with rows in this partition: with a hospitals
    table every partition's axis carries every hospital; only its own are sent back."""
    c = pr.cases
    own = np.unique(c.hosp[c.hosp >= 0]).astype(np.int64)
    return own, np.asarray(c.hospital_ids).astype(str)[own]


def _local_set(local: Any, spec: SetSpec, base_only: bool = False) -> Any:
    """The partition's priced set of ``spec`` (cached when ``spec.keep``); ``base_only``:
    only its rows, cells and weights are needed (cells and settlement sets are the
    prepared ones)."""
    from drgsim.scenarios.sweep import _price_set, _PriceSet

    if spec.los is None and spec.sc.route in ("settlement", "cells") and base_only:
        return _PriceSet([], {}, {}, local.priced, local.cells, local.W)
    cache = local._cache.setdefault(_CACHE, {})
    if spec.key in cache:
        return cache[spec.key]
    mod = None
    if spec.los is not None:
        from drgsim.scenarios.sweep import _behaviour_module

        mod = _behaviour_module()
    ps = _price_set(local, spec.sc, los=spec.los, mod=mod, W=spec.W)
    if spec.keep:
        cache[spec.key] = ps
    return ps


def _set_summary(local: Any, spec: SetSpec) -> dict[str, Any]:
    ps = _local_set(local, spec)
    own, ids = _own(ps.pr if ps.pr is not None else local.priced)
    return {
        "ids": ids,
        "totals": [
            (t.points[own], t.share_fen[own], t.cost_fen[own], t.cases[own], t.outside_fen[own])
            for t in ps.totals
        ],
        "outside": dict(ps.outside),
        "spend": dict(ps.spend or {}),
    }


def _draw_block(local: Any, job: DrawJob) -> dict[str, Any]:
    from drgsim.scenarios.sweep import _behaviour_module

    mod = _behaviour_module()
    ps = _local_set(local, job.spec, base_only=True)
    cache = local._cache.setdefault(_CACHE, {})
    ck = ("cells", job.spec.key)
    bc = cache.get(ck)
    ids = np.asarray(ps.pr.cases.hospital_ids).astype(str)
    if bc is None:
        lv = mod.hospital_levels(ps.pr.cases.hospital_ids, local.hosp_df)
        bc = mod.prepare_cells(ps.pr, ps.cells, ps.W, job.siblings, lv)
        if job.spec.keep or job.spec.key == "base":
            cache[ck] = bc
    pos = pd.Index(job.hids).get_indexer(ids)
    if (pos < 0).any():
        raise DistributedError("a partition priced hospitals outside the hospital axis")
    hv = {k: np.ascontiguousarray(v[:, pos]) for k, v in job.hv.items()}
    bounds = None if job.bounds is None else (job.bounds[0][pos], job.bounds[1][pos])
    t = mod.apply_cells_stacked(bc, {}, None, job.yp, bounds, hv=hv)
    n, H = len(t.points), t.n_hosp
    own, own_ids = _own(ps.pr)

    def mine(a: np.ndarray) -> np.ndarray:
        return np.asarray(a).reshape(n, H, -1)[:, own]

    return {
        "ids": own_ids,
        "points": mine(t.points),
        "cost_fen": mine(t.cost_fen),
        "share_fen": mine(t.share_fen),
        "cases": mine(t.cases),
        "outside_fen": mine(t.outside_fen),
    }


def run_job(local: Any, job: Any) -> Any:
    """One sweep job on one partition's local Prepared (the same function on every
    engine); a refusal comes back as :class:`Failed` and is raised on the driver."""
    from drgsim.scenarios.sweep import _spend

    if local is None:
        raise DistributedError(
            "the partition keeps no rows to re-price: prepare with keep_rows=True"
        )
    try:
        if isinstance(job, ReleaseJob):
            local._cache.pop(_CACHE, None)
            return None
        if isinstance(job, SpendJob):
            return _spend(local, job.W, job.pv)
        if isinstance(job, LastYearJob):
            from drgsim.distributed.history import last_year_part

            return last_year_part(local.prev_cases(), job.W, job.p0, job.year, local.hosp_df)
        if isinstance(job, DrawJob):
            return _draw_block(local, job)
        out: dict[str, Any] = {}
        for spec in job.specs:
            try:
                out[spec.key] = _set_summary(local, spec)
            except DrgsimError as e:
                out[spec.key] = Failed.of(e)
        return out
    except DrgsimError as e:
        return Failed.of(e)


# ---------------------------------------------------------------------------- driver
def _raise_failed(parts: list[Any]) -> None:
    for p in parts:
        if isinstance(p, Failed):
            raise p.error


class _Placer:
    """Puts each partition's own hospitals onto the global hospital axis, refusing a
    hospital two partitions both price (it would be counted twice)."""

    def __init__(self, hids: np.ndarray):
        self.idx = pd.Index(np.asarray(hids).astype(str))
        self.seen = np.zeros(len(hids), bool)

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        pos = self.idx.get_indexer(np.asarray(ids).astype(str))
        if (pos < 0).any():
            raise DistributedError("a partition priced hospitals outside the hospital axis")
        if self.seen[pos].any():
            h = np.asarray(ids)[self.seen[pos]][0]
            raise DistributedError(
                f"hospital {h} is priced in two partitions: pricing needs every row of a "
                "hospital in one partition (shuffle by hospital first)"
            )
        self.seen[pos] = True
        return pos


@dataclass
class DrawCells:
    """The driver's stand-in for one priced set's behaviour cells: the partitions hold
    them; :meth:`draw_totals` prices a block of draws there."""

    eng: SweepEngine
    spec: SetSpec
    siblings: dict[str, str]
    hospital_ids: np.ndarray
    outside_fen: np.ndarray  # per hospital × fund (hospital-major): the cells' per diem

    def draw_totals(self, hv: dict[str, np.ndarray], yp: YearPolicy,
                    bounds: tuple[np.ndarray, np.ndarray] | None) -> Any:
        """The block's totals on the global hospital axis (``behaviour.Totals``)."""
        from drgsim.scenarios.behaviour import Totals

        H = len(self.hospital_ids)
        n = len(next(iter(hv.values())))
        F = len(FUNDS)
        job = DrawJob(self.spec, self.siblings, yp, self.hospital_ids, hv, bounds)
        self.eng.round_trips += 1
        self.eng.used = True
        parts = self.eng.map_job(job)
        _raise_failed(parts)
        out = {
            "points": np.zeros((n, H, F * 12)),
            "cost_fen": np.zeros((n, H, F * 12), np.int64),
            "share_fen": np.zeros((n, H, F * 12), np.int64),
            "cases": np.zeros((n, H, F * 12)),
            "outside_fen": np.zeros((n, H, F), np.int64),
        }
        place = _Placer(self.hospital_ids)
        for p in parts:
            pos = place(p["ids"])
            for k, a in out.items():
                a[:, pos] += p[k]
        return Totals(
            points=out["points"].reshape(n, -1),
            cost_fen=out["cost_fen"].reshape(n, -1),
            share_fen=out["share_fen"].reshape(n, -1),
            cases=out["cases"].reshape(n, -1),
            outside_fen=out["outside_fen"].reshape(n, -1),
            n_hosp=H,
        )


@dataclass
class SweepEngine:
    """The driver's side of a distributed sweep (``DriverPrepared._cache["engine"]``):
    the sweep calls :meth:`price_set`, :meth:`spend`, :meth:`calibrate`,
    :meth:`draw_cells`; an adapter implements :meth:`map_job` (:func:`run_job` on every
    partition, results gathered) and :meth:`calibrate_weights`."""

    hids: np.ndarray
    sets: dict[str, Any] = field(default_factory=dict)  # key -> _PriceSet or the refusal
    specs: dict[str, SetSpec] = field(default_factory=dict)
    weights: dict[str, Weights] = field(default_factory=dict)
    round_trips: int = 0  # jobs sent to the partitions (tests and benchmarks read it)
    used: bool = False  # the partitions may hold re-priced sets of this sweep

    # -- what an adapter implements
    def map_job(self, job: Any) -> list[Any]:
        """:func:`run_job` (``job``) on every partition; the results, one per partition."""
        raise NotImplementedError

    def calibrate_weights(self, yp: YearPolicy) -> pd.DataFrame:
        """Weights calibrated exactly with ``yp``'s calibration on the history rows."""
        raise NotImplementedError

    # -- what the sweep calls
    def last_year_pv(self, base: Any) -> dict[str, float]:
        """Last year's point value per fund (``budgeted_pv: last_year`` in a scenario when
        the baseline fixed none): the partitions price last year's cases, the driver
        settles their totals (the single path's ``last_year_pv`` in two steps)."""
        from drgsim.distributed.history import driver_last_year
        from drgsim.settlement.simulate import last_year_policy

        self.round_trips += 1
        parts = self.map_job(LastYearJob(base.W, last_year_policy(base.pv), base.year))
        _raise_failed(parts)
        return driver_last_year(parts, base.pv, base.year, base.W, base.hosp_df,
                                base.region_df, base.columns, base.current, base.dip_ratio)

    def calibrate(self, sc: Any) -> pd.DataFrame:
        """The recalibrate route's weights (the adapter's ``calibrate_weights``)."""
        return self.calibrate_weights(sc.yp)

    def _spec(self, base: Any, sc: Any, los: float | None) -> SetSpec:
        """The set's spec, with the driver's checks the single machine makes first: what
        the cells cannot re-price (on stand-in cells with every partition's cap
        statistics), the hospital levels, the weights."""
        from drgsim.pricing.cells import points_under
        from drgsim.scenarios.sweep import _set_weights, set_key

        key = set_key(sc, los)
        if key in self.specs:
            return self.specs[key]
        W = None
        if sc.route == "cells" and los is None:
            points_under(base._cache["cells_meta"], base.priced, sc.yp)  # CellsError -> rows
        else:
            W = self.weights.get(sc.key)
            if W is None:
                W = self.weights[sc.key] = _set_weights(base, sc)
        slim = dataclasses.replace(sc, policy=None, behaviour={}, overlay={})
        spec = SetSpec(key, slim, W, los, keep=los is not None or bool(sc.behaviour))
        self.specs[key] = spec
        return spec

    def prefetch(self, base: Any, items: list[tuple[Any, float | None]]) -> None:
        """Price every set of ``items`` (scenario, LOS factor) in one round trip, so the
        sweep's loop finds them; a cells set the cells cannot re-price is priced as rows
        too. Stops at the first refusal on the driver (the loop raises it in order)."""
        from drgsim.pricing.cells import CellsError
        from drgsim.scenarios.sweep import _to_rows, set_key

        todo: dict[str, SetSpec] = {}
        for sc, los in items:
            key = set_key(sc, los)
            if key in self.sets or key in todo:
                continue
            try:
                todo[key] = self._spec(base, sc, los)
            except CellsError as e:
                rows = copy.copy(sc)
                _to_rows(rows, str(e))
                rkey = set_key(rows, los)
                if rkey not in self.sets and rkey not in todo:
                    try:
                        todo[rkey] = self._spec(base, rows, los)
                    except DrgsimError:
                        break
            except DrgsimError:
                break
        if todo:
            self._run(list(todo.values()))

    def _run(self, specs: list[SetSpec]) -> None:
        self.round_trips += 1
        self.used = True
        parts = self.map_job(SetsJob(specs))
        _raise_failed(parts)
        for spec in specs:
            self.sets[spec.key] = self._combine([p[spec.key] for p in parts], spec)

    def _combine(self, parts: list[Any], spec: SetSpec) -> Any:
        from drgsim.scenarios.sweep import _PriceSet

        for p in parts:
            if isinstance(p, Failed):
                return p.error
        H = len(self.hids)
        tot = [FundTotals.zeros(name, H) for name in FUNDS]
        outside = dict.fromkeys(FUNDS, 0)
        spend: dict[str, int] = {}
        place = _Placer(self.hids)
        for p in parts:
            pos = place(p["ids"])
            for t, arrays in zip(tot, p["totals"], strict=True):
                for name, a in zip(
                    ("points", "share_fen", "cost_fen", "cases", "outside_fen"), arrays,
                    strict=True,
                ):
                    getattr(t, name)[pos] += a
            for name in FUNDS:
                outside[name] += p["outside"][name]
            for name, v in p["spend"].items():
                spend[name] = spend.get(name, 0) + v
        return _PriceSet(tot, outside, spend, None, None, spec.W)

    def price_set(self, base: Any, sc: Any, los: float | None) -> Any:
        """The set's totals on the global hospital axis (``_PriceSet`` without rows:
        those stay on the partitions); a refusal is raised as on one machine."""
        spec = self._spec(base, sc, los)
        if spec.key not in self.sets:
            self._run([spec])
        got = self.sets[spec.key]
        if isinstance(got, BaseException):
            raise got
        return got

    def spend(self, W: Weights, pv: dict) -> dict[str, int]:
        """Last year's fund spending under ``W`` and ``pv``: the partitions' sums."""
        self.round_trips += 1
        parts = self.map_job(SpendJob(W, pv))
        _raise_failed(parts)
        out: dict[str, int] = {}
        for p in parts:
            for name, v in p.items():
                out[name] = out.get(name, 0) + v
        return out

    def draw_cells(self, base: Any, pkey: str, sc: Any, ps: Any,
                   siblings: dict[str, str]) -> DrawCells:
        """The stand-in for the behaviour cells of priced set ``pkey`` (``ps``: its
        combined totals, whose per diem outside the budget is the cells')."""
        spec = self.specs.get(pkey)
        if spec is None:  # the prepared set (a settlement scenario's)
            slim = dataclasses.replace(sc, policy=None, behaviour={}, overlay={},
                                       route="settlement", key="base")
            spec = SetSpec("base", slim, base.W, None, keep=True)
        out = np.stack([t.outside_fen for t in ps.totals], axis=1).ravel()
        return DrawCells(self, spec, dict(siblings), self.hids, out)

    def release(self) -> None:
        """Drop the partitions' re-priced sets (the sweep ended) and the driver's."""
        if self.used:
            self.map_job(ReleaseJob())
            self.used = False
        self.sets.clear()
        self.specs.clear()
        self.weights.clear()


__all__ = [
    "DrawCells",
    "DrawJob",
    "Failed",
    "ReleaseJob",
    "SetSpec",
    "SetsJob",
    "SpendJob",
    "SweepEngine",
    "local_prepared",
    "run_job",
]
