"""Settle many scenarios on one preparation, each routed by what its overlay touches.

- **settlement**: budget, reserve, point-value basis and bounds, pre-settlement,
  assessment, corridors: straight to :func:`~drgsim.settlement.scenarios.settle_scenarios`
  on the prepared cells' totals, every such scenario at once.
- **cells**: outlier thresholds (k tiers, β, low-cost factor, cap): the cells re-priced by
  binary search once per distinct set (:func:`~drgsim.pricing.cells.points_under`).
- **rows**: every other pricing key (coefficients, per diem, readmission, special review,
  short stay, ungroupable, statuses, precedence, plausibility, points): the case rows
  re-priced once per distinct set; also where the cells raise
  :class:`~drgsim.pricing.cells.CellsError` (the route says so).
- **recalibrate**: calibration keys, with calibrated weights: the weights recalibrated
  once per distinct set, then the rows re-priced.

Each group of scenarios sharing a pricing is then settled together, vectorized over
scenarios. Last year's point value (``budgeted_pv: last_year``) is fixed once per sweep.

On a distributed preparation (``drgsim.dask`` / ``drgsim.spark``) the rows and cells stay on
the partitions: wherever this module would touch them it asks the preparation's engine
(``base._cache["engine"]``, :class:`drgsim.distributed.sweep.SweepEngine`), which runs this
module's own ``_price_set`` / ``_spend`` on every partition's rows and places the totals on
the hospital axis; behaviour draws are resolved per hospital here and priced there.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from drgsim.calibrate import calibrate
from drgsim.errors import DrgsimError, Problem
from drgsim.policy import Policy, YearPolicy
from drgsim.policy.loader import PolicyError
from drgsim.pricing.cases import FUNDS
from drgsim.pricing.cells import (
    PRICING_SECTIONS,
    REPRICED,
    CellsError,
    _get,
    build_cells,
    points_under,
    pricing_differences,
)
from drgsim.pricing.core import Weights, price
from drgsim.pricing.money import yuan_to_fen
from drgsim.scenarios.grid import (
    Grid,
    GridError,
    as_overlays,
    check_keys,
    overlaid_year,
    split_behaviour,
    to_json,
)
from drgsim.scenarios.prepare import Prepared, cases_with_lookback
from drgsim.settlement.core import (
    Budget,
    BudgetError,
    FundTotals,
    fund_budget,
    region_spending_fen,
)
from drgsim.settlement.run import cell_fund_totals
from drgsim.settlement.scenarios import CHUNK, ScenarioParams, settle_scenarios
from drgsim.settlement.simulate import (
    SettlementInputError,
    history_spending,
    last_year_pv,
    needs_reference_pv,
    per_diem_categories_of,
    readmission_lookback,
    unknown_levels,
)

ROUTES = ("settlement", "cells", "rows", "recalibrate")
SETTLEMENT_SECTIONS = (
    "budget",
    "reserve",
    "point_value",
    "presettlement",
    "assessment",
    "hospital_corridor",
    "region_corridor",
)


class SweepError(DrgsimError):
    """A scenario the sweep cannot honour (named), refused before any settlement."""


@dataclass
class _Scenario:
    overlay: dict
    name: str
    policy: Policy
    yp: YearPolicy
    behaviour: dict
    route: str = "settlement"
    reason: str = ""
    key: str = ""  # the pricing set it shares with other scenarios


@dataclass
class _PriceSet:
    """Hospital × month totals per fund of one pricing, with what budgets need of it."""

    totals: list[FundTotals]
    outside: dict[str, int]
    spend: dict[str, int] | None
    pr: Any = None  # the priced rows, cells and weights it came from (behaviour needs them)
    cells: Any = None
    W: Any = None
    lazy: tuple[_DrawGroup, int] | None = None  # one draw of a group priced when settled


@dataclass
class _DrawGroup:
    """Draws of one scenario's behaviour on one set of priced cells: their totals are
    priced block by block as they are settled (all draws' totals are never held at once)."""

    mod: Any
    bc: Any
    values: dict[str, np.ndarray]  # per key, one value per draw of the group (or one: fixed)
    hosp_level: np.ndarray
    yp: YearPolicy
    bounds: tuple[np.ndarray, np.ndarray] | None = None  # per hospital, inflation range
    memo: tuple[tuple[int, ...], Any] | None = None  # a distributed block priced in advance

    def totals(self, js: np.ndarray) -> Any:
        """The behaviour module's stacked totals of the group's draws ``js``; on a
        distributed run (``bc`` the engine's stand-in) the partitions price them, with
        the per-hospital values resolved here against every hospital."""
        if self.memo is not None and self.memo[0] == tuple(js.tolist()):
            t, self.memo = self.memo[1], None
            return t
        dv = {k: v[np.minimum(js, len(v) - 1)] for k, v in self.values.items()}
        if hasattr(self.bc, "draw_totals"):
            hv = self.mod.hospital_values_draws(dv, self.bc.hospital_ids, self.hosp_level)
            return self.bc.draw_totals(hv, self.yp, self.bounds)
        return self.mod.apply_cells_stacked(self.bc, dv, self.hosp_level, self.yp, self.bounds)


@dataclass
class SweepResult:
    """Tidy tables with a scenario axis (money in integer fen); see the module docs."""

    scenarios: pd.DataFrame
    routes: pd.DataFrame
    hospitals: pd.DataFrame
    funds: pd.DataFrame
    months: pd.DataFrame | None = None
    provenance: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    coverage_base_fen: int = 0  # fund share (cost − patients' share) of all simulated cases

    def summary(self, losing: float = -0.02) -> pd.DataFrame:
        """Per scenario: point values, fund balance, P5/P50/P95 of hospital change (over
        both funds; overall and P50 by level), hospitals losing more than ``losing`` (a
        share, e.g. −0.02), and DRG coverage (fund payments by points over the fund
        share of every simulated inpatient case). Averages over draws."""
        return summarize(self, losing)


def _is_settlement_key(k: str) -> bool:
    return k.split(".")[0] in SETTLEMENT_SECTIONS


def _pricing_view(yp: YearPolicy) -> list:
    return [yp.starts.tolist(), [{s: _get(p, s) for s in PRICING_SECTIONS} for p in yp.segments]]


def _classify(base: Prepared, sc: _Scenario, calibrated: bool) -> None:
    """The scenario's route and the key of its pricing set."""
    keys = [k for k in sc.overlay if not k.startswith("behaviour.")]
    creep = [k for k in sc.behaviour if k.split(".")[0] == "coding_creep"]
    if base.pv.get("method") == "dip" and creep:
        raise SweepError(f"scenario {sc.name!r}: {_behaviour_module().DIP_NO_CREEP}")
    if all(_is_settlement_key(k) for k in keys):
        sc.route, sc.key = "settlement", "base"
        sc.reason = "settlement-only keys: " + (", ".join(keys) or "none (baseline)")
        return
    calib = _get(sc.yp.pv, "calibration") != _get(base.pv, "calibration")
    if calib and base.pv.get("method") == "dip":  # DIP scores come from its catalogue
        raise SweepError(
            f"scenario {sc.name!r}: calibration keys do not apply to method dip (its scores "
            "come from the packet catalogue, dip.*)"
        )
    # the fallback order is read by pricing too: given weights just re-price the rows
    cal_keys = sorted(
        k
        for k in pricing_differences_calib(base.pv, sc.yp.pv)
        if calibrated or k != "calibration.fallback"
    )
    if calib and cal_keys:
        if not calibrated:
            raise SweepError(
                f"scenario {sc.name!r}: {', '.join(cal_keys)} change the calibration, but the "
                f"weights were given ({base.w_src}), not calibrated: prepare without weights "
                "to sweep calibration parameters"
            )
        sc.route = "recalibrate"
        sc.reason = "calibration keys recalibrate the weights: " + ", ".join(cal_keys)
        sc.key = "cal:" + json.dumps(
            [_get(sc.yp.pv, "calibration"), _pricing_view(sc.yp)], sort_keys=True, default=str
        )
        return
    same_days = np.array_equal(sc.yp.starts, base.yp.starts)
    diff = sorted(
        {
            k
            for a, b in zip(base.yp.segments, sc.yp.segments, strict=False)
            for k in pricing_differences(a, b)
        }
    )
    if not diff and same_days:
        sc.route, sc.key = "settlement", "base"
        sc.reason = "no pricing value differs from the baseline: " + ", ".join(keys)
        return
    if same_days and set(diff) <= set(REPRICED):
        sc.route = "cells"
        sc.reason = "outlier thresholds re-priced on the cells: " + ", ".join(diff)
        sc.key = "cells:" + json.dumps(
            [[{k: _get(p, k) for k in REPRICED} for p in sc.yp.segments]],
            sort_keys=True,
            default=str,
        )
        return
    sc.route = "rows"
    why = ", ".join(diff) if diff else "case-level values change on other days"
    sc.reason = "pricing keys re-price the rows: " + why
    sc.key = "rows:" + json.dumps(_pricing_view(sc.yp), sort_keys=True, default=str)


def pricing_differences_calib(a: dict, b: dict) -> list[str]:
    from drgsim.pricing.cells import _flat

    fa, fb = _flat(a.get("calibration"), "calibration"), _flat(b.get("calibration"), "calibration")
    return [k for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def _load_spec(scenarios: Any) -> Any:
    from pathlib import Path

    if isinstance(scenarios, (str, Path)):
        if importlib.util.find_spec("drgsim.scenarios.files") is None:
            raise SweepError(f"{scenarios}: scenario files need drgsim.scenarios.files")
        from drgsim.scenarios import files  # type: ignore[attr-defined]

        spec = files.load_scenarios(scenarios)
        if isinstance(spec, list):  # a folder: one sweep per file, as `drgsim sweep` does
            if len(spec) != 1:
                raise SweepError(
                    f"{scenarios}: a folder of {len(spec)} scenario files is one sweep per "
                    "file: sweep each file (drgsim sweep --scenarios FOLDER does this)"
                )
            spec = spec[0]
        return spec
    return scenarios


def _check_spec_base(base: Prepared, spec: Any) -> None:
    """A scenario file's ``base`` policy must be the one the preparation priced with."""
    from pathlib import Path

    want = getattr(spec, "base", None)
    if not want:
        return
    pol = base.policy
    names = {pol.name, Path(pol.source).stem, str(Path(pol.source).resolve())}
    if str(want) not in names and str(Path(str(want)).resolve()) not in names:
        raise SweepError(
            f"{getattr(spec, 'file', '') or 'the scenario spec'}: base {want} is not the policy "
            f"this preparation used ({pol.name}, {pol.source}): prepare with policy={want}"
        )


def _expand_spec(spec: Any) -> tuple[Any, int | None, int | None]:
    """A scenario spec (``.grid()``, ``set``, ``behaviour``, ``draws_n``, ``seed``) as a
    list of overlays: its ``set`` and behaviour on every scenario but the baseline."""
    grid = spec.grid() if callable(getattr(spec, "grid", None)) else Grid({})
    ov, names, _ = as_overlays(grid)
    common = dict(getattr(spec, "set", None) or {})
    common.update(
        {f"behaviour.{k}": v for k, v in (getattr(spec, "behaviour", None) or {}).items()}
    )
    out = [{**common, **o, "name": n} for o, n in zip(ov[1:], names[1:], strict=True)]
    if not out and common:
        out = [{**common, "name": getattr(spec, "name", "scenario")}]
    return out, getattr(spec, "draws_n", None), getattr(spec, "seed", None)


def sweep(
    base: Prepared,
    scenarios: Any,
    draws: int | None = None,
    seed: int | None = None,
    monthly: bool = False,
    chunk: int | None = None,
) -> SweepResult:
    """Settle every scenario on ``base``; see :class:`SweepResult` and the module docs.

    ``chunk``: scenarios settled together (default the settlement's block size); it
    bounds memory and never changes a result.
    """
    scenarios = _load_spec(scenarios)
    if not isinstance(scenarios, (Grid, list, tuple, dict, pd.DataFrame)):
        _check_spec_base(base, scenarios)
        scenarios, d_n, d_seed = _expand_spec(scenarios)
        draws = draws if draws is not None else d_n
        seed = seed if seed is not None else d_seed
    overlays, names, axes = as_overlays(scenarios)
    check_keys([k for o in overlays for k in o], base.policy)  # every typo, one line

    scs: list[_Scenario] = []
    for o, n in zip(overlays, names, strict=True):
        pol_keys, beh = split_behaviour(o)
        try:
            pol, yp = overlaid_year(base.policy, base.yp, pol_keys)
        except PolicyError as e:
            raise GridError(
                [Problem(f"scenario {n!r}", None, p.field, p.message) for p in e.problems]
            ) from None
        scs.append(_Scenario(o, n, pol, yp, beh))
    has_beh = any(s.behaviour for s in scs)
    mod = _behaviour_module() if has_beh else None  # refuses clearly when absent
    if draws is not None and draws > 1 and not has_beh:
        raise SweepError(
            f"draws={draws}: no scenario has a behaviour assumption (behaviour.*) to draw"
        )
    behaviours = {}
    if mod is not None:  # validated before any work
        for i, sc in enumerate(scs):
            if sc.behaviour:
                b = mod.parse_behaviour(sc.behaviour)
                behaviours[i] = (b, mod.draw_values(b, draws, seed))
    n_draws = int(draws) if has_beh and draws is not None else 1

    calibrated = base.w_src == "calibrated"
    for sc in scs:
        _classify(base, sc, calibrated)

    eng = _engine(base)
    ref = base.reference_pv
    if ref is None and any(needs_reference_pv(s.yp.pv) for s in scs):
        # fixed once per sweep, with the baseline's pricing (on an engine, its partitions)
        if eng is not None:
            ref = eng.last_year_pv(base)
        else:
            ref = last_year_pv(base.prev_cases(), base.W, base.pv, base.region_df, base.year,
                               base.hosp_df, ratio=base.dip_ratio)
        base.reference_pv = ref

    try:
        return _sweep_sets(base, scs, names, axes, behaviours, n_draws, mod, ref, chunk,
                           monthly, eng)
    finally:
        if eng is not None:
            eng.release()  # the partitions' re-priced sets and behaviour cells


def _engine(base: Prepared) -> Any:
    """The distributed engine whose partitions hold ``base``'s rows and cells (None on
    one machine): :class:`drgsim.distributed.sweep.SweepEngine`."""
    return base._cache.get("engine")


def _sweep_sets(
    base: Prepared,
    scs: list[_Scenario],
    names: list[str],
    axes: list[str],
    behaviours: dict[int, tuple[Any, dict[str, np.ndarray]]],
    n_draws: int,
    mod: Any,
    ref: dict[str, float] | None,
    chunk: int | None,
    monthly: bool,
    eng: Any,
) -> SweepResult:
    """Price every distinct set (on a distributed run, every set at once on the
    partitions first), build the units, budgets, settle and tabulate."""
    if eng is not None:  # every distinct set priced on the partitions in one round trip
        eng.prefetch(base, [(sc, None) for sc in scs if sc.route != "settlement"])
    # one pricing per distinct set; a cells set the cells cannot re-price goes to the rows
    sets: dict[str, _PriceSet] = {}
    failed: dict[str, str] = {}
    for sc in scs:
        if sc.key in failed:
            _to_rows(sc, failed[sc.key])
        if sc.key in sets:
            _fill_spend(base, sc, sets[sc.key])
            continue
        try:
            sets[sc.key] = _price_set(base, sc)
        except CellsError as e:
            failed[sc.key] = str(e)
            _to_rows(sc, str(e))
            if sc.key not in sets:
                sets[sc.key] = _price_set(base, sc)

    units, tsets = _units(base, scs, sets, behaviours, n_draws, mod, chunk or CHUNK)
    budgets = _budgets(base, scs, units, tsets)
    out = _settle_all(base, scs, units, tsets, budgets, ref, chunk or CHUNK, monthly)
    return _tables(base, scs, names, axes, units, budgets, out, n_draws, monthly)


def _units(
    base: Prepared,
    scs: list[_Scenario],
    sets: dict[str, _PriceSet],
    behaviours: dict[int, tuple[Any, dict[str, np.ndarray]]],
    n_draws: int,
    mod: Any,
    chunk: int = CHUNK,
) -> tuple[list[tuple[int, int, str]], dict[str, _PriceSet]]:
    """(scenario, draw, totals key) per unit, scenario-major, and the totals per key: a
    scenario without behaviour shares its pricing set's totals in every draw; one with
    behaviour gets the behaviour module's cells totals per draw (rows first for LOS)."""
    tsets = dict(sets)
    units: list[tuple[int, int, str]] = []
    if not behaviours:
        return [(i, 0, sc.key) for i, sc in enumerate(scs)], tsets

    hosp_level = mod.hospital_levels(base.hospital_ids, base.hosp_df)
    creep = any(k.startswith("coding_creep") for b, _ in behaviours.values() for k in b.items)
    siblings = mod.severity_siblings(base.policy.scheme) if creep else {}
    prepared: dict[str, Any] = {}
    eng = _engine(base)
    if eng is not None:  # every LOS change's rows re-priced in one round trip
        eng.prefetch(
            base,
            [
                (scs[i], _los_of(v, d))
                for i, (b, v) in behaviours.items()
                if b.needs_rows
                for d in range(n_draws)
            ],
        )
    for i, sc in enumerate(scs):
        if i not in behaviours:
            units += [(i, d, sc.key) for d in range(n_draws)]
            continue
        b, vals = behaviours[i]
        keys = ", ".join(b.items)
        if b.needs_rows:
            sc.route = "rows"
            sc.reason += f"; behaviour {keys}: a LOS change re-prices the rows (cells hold no LOS)"
        else:
            sc.reason += f"; behaviour {keys} applied on the cells"
        # draws grouped by the priced rows they need (one group unless LOS changes); each
        # group's draws priced on the cells at once
        groups: dict[str, list[int]] = {}
        for d in range(n_draws):
            pkey = sc.key
            if b.needs_rows:  # a LOS change re-prices the rows (cells hold no LOS)
                x = _los_of(vals, d)
                pkey = set_key(sc, x)
                if pkey not in tsets:
                    tsets[pkey] = _price_set(base, sc, los=x, mod=mod)
            groups.setdefault(pkey, []).append(d)
        for pkey, ds in groups.items():
            ps = tsets[pkey]
            if pkey not in prepared:  # distributed: the partitions prepare their cells
                prepared[pkey] = (
                    eng.draw_cells(base, pkey, sc, ps, siblings)
                    if eng is not None
                    else mod.prepare_cells(ps.pr, ps.cells, ps.W, siblings, hosp_level)
                )
            idx = np.array(ds)
            dv = {k: v[np.minimum(idx, len(v) - 1)] for k, v in vals.items()}
            bc = prepared[pkey]
            g = mod.hospital_values_draws(dv, bc.hospital_ids, hosp_level, len(ds))
            fi = 1.0 + g["cost_inflation"]
            grp = _DrawGroup(mod, bc, dv, hosp_level, sc.yp, (fi.min(0), fi.max(0)))
            if eng is None:
                grp.totals(np.zeros(1, np.int64))  # refuses what the cells cannot price, now
            else:  # the first block the settlement asks for, priced now (one round trip)
                js0 = np.arange(min(chunk, len(ds)))
                grp.memo = (tuple(js0.tolist()), grp.totals(js0))
            cells_out = bc.outside_fen if eng is not None else bc.cells.outside_fen
            out_hf = mod._money_draws(cells_out, 1.0 + g["volume_growth"])
            out_f = out_hf.reshape(len(ds), -1, len(FUNDS)).sum(1).tolist()
            for j, d in enumerate(ds):
                tkey = f"{pkey}|scenario={i}|draw={d}"
                tsets[tkey] = _PriceSet(
                    [], dict(zip(FUNDS, out_f[j], strict=True)), ps.spend, lazy=(grp, j)
                )
                units.append((i, d, tkey))
    units.sort(key=lambda u: (u[0], u[1]))  # scenario-major, draws in order
    return units, tsets


def _fill_spend(base: Prepared, sc: _Scenario, ps: _PriceSet) -> None:
    """A set shared by scenarios of different budget sources (the key is the pricing):
    last year's spending, once one of them takes its budget from it."""
    if not ps.spend and any(sc.yp.pv["budget"][f]["source"] == "history" for f in FUNDS):
        ps.spend = _spend(base, ps.W if ps.W is not None else base.W, sc.yp.pv)


def _los_of(vals: dict[str, np.ndarray], d: int) -> float:
    """Draw ``d``'s LOS factor (a fixed value holds in every draw)."""
    v = vals["los_change"]
    return float(v[min(d, len(v) - 1)])


def set_key(sc: _Scenario, los: float | None = None) -> str:
    """The key of the priced set a scenario (with LOS factor ``los``) shares with others."""
    return sc.key if los is None else f"{sc.key}|los={los!r}"


def _to_rows(sc: _Scenario, why: str) -> None:
    sc.route = "rows"
    sc.reason += f"; the cells cannot re-price them ({why}): the rows are re-priced"
    sc.key = "rows:" + json.dumps(_pricing_view(sc.yp), sort_keys=True, default=str)


def _behaviour_module() -> Any:
    if importlib.util.find_spec("drgsim.scenarios.behaviour") is None:
        raise SweepError(
            "behaviour.* keys (volume growth, cost inflation, coding creep, LOS change) need "
            "drgsim.scenarios.behaviour, which this installation lacks"
        )
    return importlib.import_module("drgsim.scenarios.behaviour")


def _price_set(
    base: Prepared,
    sc: _Scenario,
    los: float | None = None,
    mod: Any = None,
    W: Weights | None = None,
) -> _PriceSet:
    """Totals of the scenario's pricing: the prepared cells, re-priced cells or rows
    (``los``: the cases' LOS changed by this factor first, by the behaviour module).

    ``W``: the weights the rows are priced with, fixed by the caller (a distributed
    partition runs this on its own rows with the driver's weights); default
    :func:`_set_weights`. On a distributed driver the partitions price the set."""
    need_hist = any(sc.yp.pv["budget"][f]["source"] == "history" for f in FUNDS)
    keep = (base.priced, base.cells, base.W)
    if sc.route == "settlement" and los is None:
        spend = base.spend if base.spend or not need_hist else _spend(base, base.W, base.pv)
        return _PriceSet(base.fund_totals(), dict(base.outside), spend, *keep)
    eng = _engine(base)
    if eng is not None:  # the same code, on each partition's rows (drgsim.distributed.sweep)
        return eng.price_set(base, sc, los)
    if sc.route == "cells" and los is None:
        pts = points_under(base.cells, base.priced, sc.yp)  # CellsError -> rows
        spend = base.spend if base.spend or not need_hist else _spend(base, base.W, base.pv)
        return _PriceSet(cell_fund_totals(base.cells, pts), dict(base.outside), spend, *keep)
    pv = sc.yp.pv
    if W is None:
        W = _set_weights(base, sc)
    back = readmission_lookback(base.history, base.dcol, base.year, sc.yp)
    cases = base.cases
    if los is not None:  # every simulated case's LOS changed (look-back rows link only)
        hids = base.hosp_df["hospital_id"] if base.hosp_df is not None else None
        cur = mod.apply_los(base.current, los, base.columns)
        cases = cases_with_lookback(cur, back, hids, base.columns)
    elif len(back) != len(base.back):  # another readmission window: other look-back rows
        hids = base.hosp_df["hospital_id"] if base.hosp_df is not None else None
        cases = cases_with_lookback(base.current, back, hids, base.columns)
        if not np.array_equal(cases.hospital_ids, base.cases.hospital_ids):
            raise SweepError(
                f"scenario {sc.name!r}: its readmission window brings hospitals the baseline "
                "does not have: give a hospitals table"
            )
    pr = price(cases, W, sc.yp, base.hosp_df)
    cells = build_cells(pr)
    c = pr.cases
    outside = {
        name: int(pr.outside_fen[(c.fund == f) & pr.payable & ~pr.in_budget].sum())
        for f, name in enumerate(FUNDS)
    }
    spend = _spend(base, W, pv) if need_hist else {}
    pts = points_under(cells, pr, sc.yp)
    return _PriceSet(cell_fund_totals(cells, pts), outside, spend, pr, cells, W)


def _set_weights(base: Prepared, sc: _Scenario) -> Weights:
    """The weights a scenario's rows are re-priced with: recalibrated (``recalibrate``;
    on a distributed driver through the engine's calibration), rescaled (another
    ``points.scale``) or the prepared ones; a hospital level its coefficients do not
    list is refused first."""
    pv = sc.yp.pv
    if base.hosp_df is not None and "level" in base.hosp_df.columns:
        bad = unknown_levels(base.hosp_df, pv["coefficients"]["by_level"])
        if bad:
            raise SettlementInputError(
                f"scenario {sc.name!r}: the hospitals table has level(s) {', '.join(bad)} that "
                "its coefficients.by_level does not list"
            )
    if sc.key.startswith("cal:"):  # (a LOS change relabels the route "rows", not the key)
        eng = _engine(base)
        if eng is not None:
            w_df = eng.calibrate(sc)
        else:
            w_df = calibrate(
                base.history,
                per_diem_categories_of(sc.yp),
                base.year,
                scheme=base.policy.scheme,
                columns=base.columns,
            )
        return Weights.from_frame(w_df, pv["points"]["scale"])
    if pv["points"]["scale"] != base.pv["points"]["scale"]:
        return Weights.from_frame(base.w_df, pv["points"]["scale"])
    return base.W


def _spend(base: Prepared, W: Weights, pv: dict) -> dict[str, int]:
    """Last year's fund spending under ``W`` and ``pv`` (budget source history); on a
    distributed driver, the partitions' sums."""
    eng = _engine(base)
    if eng is not None:
        return eng.spend(W, pv)
    prev = base.prev_cases()
    return history_spending(prev, W, pv, base.hosp_df) if prev is not None else {}


def _budgets(
    base: Prepared,
    scs: list[_Scenario],
    units: list[tuple[int, int, str]],
    tsets: dict[str, _PriceSet],
) -> dict[str, list[Budget]]:
    """Each unit's budget per fund: the single path's ``fund_budget`` once per distinct
    set of inputs (budget parameters, last year's spending, per diem carved out)."""
    out: dict[str, list[Budget]] = {f: [] for f in FUNDS}
    memo: dict[tuple, Budget] = {}
    bps: dict[int, list[str]] = {}
    region_base: dict[str, int | None] = {}
    for s_, _, tkey in units:
        sc = scs[s_]
        ps = tsets[tkey]
        if s_ not in bps:
            bps[s_] = [
                json.dumps(sc.yp.pv["budget"][n], sort_keys=True, default=str) for n in FUNDS
            ]
        for f, name in enumerate(FUNDS):
            spend = (ps.spend or {}).get(name)
            key = (name, bps[s_][f], spend, ps.outside[name])
            b = memo.get(key)
            if b is None:
                bp = sc.yp.pv["budget"][name]
                try:
                    b = _fund_budget(base, bp, name, spend, ps.outside[name], region_base)
                except BudgetError as e:
                    raise BudgetError(f"scenario {sc.name!r}: {e}") from None
                if b.budget_fen <= 0 or b.reserve_fen < 0:
                    raise BudgetError(
                        f"scenario {sc.name!r}: budget.{name} {base.year}: the budget must be "
                        f"positive and the reserve not negative ({b.arithmetic()})"
                    )
                memo[key] = b
            out[name].append(b)
    return out


def _fund_budget(
    base: Prepared,
    bp: dict,
    name: str,
    spend: int | None,
    outside: int,
    region_base: dict[str, int | None],
) -> Budget:
    """``fund_budget``, with the region table's last-year spending read once per fund: the
    region_table source is the history arithmetic on that base, relabelled."""
    if bp["source"] != "region_table":
        return fund_budget(bp, name, base.year, base.region_df, spend, outside)
    if name not in region_base:
        region_base[name] = region_spending_fen(base.region_df, name, base.year - 1)
    got = region_base[name]
    if got is None or got <= 0:  # the single path's own error
        return fund_budget(bp, name, base.year, base.region_df, spend, outside)
    b = fund_budget({**bp, "source": "history"}, name, base.year, None, got, outside)
    return dataclasses.replace(b, source="region_table", base_label=f"drg_spending {base.year - 1}")


DRAW_CHUNK = CHUNK  # draws of one behaviour group priced and settled together: arrays
# of a few MB, which the allocator reuses (fresh pages cost more than the arithmetic)
HM_KEYS = ("payment_hm", "gross_prepay_hm", "withheld_hm", "prepaid_hm")
H_KEYS = (
    "payment",
    "released",
    "forfeited",
    "annual",
    "balance",
    "refund",
    "clawback",
    "received",
)
S_KEYS = (
    "distributable",
    "region_draw",
    "pv_total_cost",
    "pv_fund",
    "pv",
    "total",
    "pv_budgeted",
    "pv_floor",
    "pv_ceiling",
    "pv_bound",
    "overdraw",
)


def _settle_all(
    base: Prepared,
    scs: list[_Scenario],
    units: list[tuple[int, int, str]],
    tsets: dict[str, _PriceSet],
    budgets: dict[str, list[Budget]],
    ref: dict[str, float] | None,
    chunk: int,
    monthly: bool,
) -> dict[str, dict[str, np.ndarray]]:
    """Per fund, arrays over units (scenario × draw): (U,) figures, (U, H) hospital sums,
    and the hospital-month arrays only when ``monthly``. Units sharing totals are settled
    together on shared arrays; others on stacked (U, H, 12) arrays; behaviour draws in
    blocks, each block's totals priced on the cells just before it is settled."""
    U = len(units)
    H = len(base.hospital_ids)
    F = len(FUNDS)
    order = sorted(range(U), key=lambda u: (units[u][2], u))  # shared totals together
    first = {}
    for u in order:
        first.setdefault(units[u][2], u)
    order.sort(key=lambda u: (first[units[u][2]], u))
    blocks: list[tuple[np.ndarray, Any]] = []
    plain = [u for u in order if tsets[units[u][2]].lazy is None]
    blocks += [(np.array(plain[a : a + chunk]), None) for a in range(0, len(plain), chunk)]
    groups: dict[int, tuple[_DrawGroup, list[tuple[int, int]]]] = {}
    for u in order:
        lz = tsets[units[u][2]].lazy
        if lz is not None:
            groups.setdefault(id(lz[0]), (lz[0], []))[1].append((u, lz[1]))
    step = chunk  # DRAW_CHUNK by default: arrays of a few MB, which the allocator reuses
    for g, lst in groups.values():
        for a in range(0, len(lst), step):
            part = lst[a : a + step]
            blocks.append((np.array([u for u, _ in part]), (g, np.array([j for _, j in part]))))

    out: dict[str, dict[str, np.ndarray]] = {}
    # hospital arrays live in (U, F, H) arrays, each fund a view: the tables read them whole
    per_h = (*H_KEYS, "withheld", "prepaid", "cost", "share", "outside", "points", "cases")
    full = {
        k: np.zeros((U, F, H), np.float64 if k in ("points", "cases") else np.int64) for k in per_h
    }
    out["_full"] = full  # type: ignore[assignment]
    ress: list[dict[str, np.ndarray]] = []
    for f in range(F):
        res: dict[str, np.ndarray] = {
            k: np.zeros(U, np.float64 if k.startswith("pv") and k != "pv_bound" else np.int64)
            for k in S_KEYS
        }
        res["pv_bound"] = np.zeros(U, np.int8)
        res["provisional_pv"] = np.zeros((U, 12))
        for k in per_h:
            res[k] = full[k][:, f, :]
        if monthly:
            for k in HM_KEYS:
                res[k] = np.zeros((U, H, 12), np.int64)
            res["points_hm"] = np.zeros((U, H, 12))
            res["cases_hm"] = np.zeros((U, H, 12))
        ress.append(res)
    Bs = [np.array([b.budget_fen for b in budgets[n]], np.int64) for n in FUNDS]
    Rs = [np.array([b.reserve_fen for b in budgets[n]], np.int64) for n in FUNDS]
    for idx, lz in blocks:
        if lz is None:
            keys = list(dict.fromkeys(units[u][2] for u in idx))
            per_f = []
            for f in range(F):
                if len(keys) == 1:
                    t = tsets[keys[0]].totals[f]
                    per_f.append((t.points, t.share_fen, t.cost_fen))
                else:
                    ts = [tsets[units[u][2]].totals[f] for u in idx]
                    per_f.append(
                        tuple(np.stack([getattr(t, a) for t in ts]) for a in _TOT)  # type: ignore[arg-type]
                    )
            for key in keys:  # the totals each unit was settled on
                us = [u for u in idx if units[u][2] == key]
                for f in range(F):
                    t = tsets[key].totals[f]
                    _sums(ress[f], us, t.points, t.cost_fen, t.share_fen, t.cases, monthly)
                    ress[f]["outside"][us] = t.outside_fen
        else:
            g, js = lz
            t = g.totals(js)
            n = len(js)
            P4, S4, C4, N4 = (
                np.asarray(x).reshape(n, H, F, 12)
                for x in (t.points, t.share_fen, t.cost_fen, t.cases)
            )
            O3 = np.asarray(t.outside_fen).reshape(n, H, F)
            per_f = [(P4[:, :, f], S4[:, :, f], C4[:, :, f]) for f in range(F)]
            for f in range(F):
                _sums(ress[f], idx, P4[:, :, f], C4[:, :, f], S4[:, :, f], N4[:, :, f], monthly)
                ress[f]["outside"][idx] = O3[:, :, f]
        for f, name in enumerate(FUNDS):
            res = ress[f]
            pts, shr, cst = per_f[f]
            r_ref = None if ref is None else ref.get(name)
            sps = [scs[units[u][0]].yp for u in idx]
            sp = ScenarioParams.from_policies(
                [y.pv for y in sps],
                name,
                [y.months for y in sps],
                r_ref,
                (base.dip_ratio or {}).get(name),  # DIP: reimbursement ratio from history
            )
            r = settle_scenarios(pts, shr, cst, Bs[f][idx], Rs[f][idx], sp, base.scores, monthly)
            for k in S_KEYS:
                res[k][idx] = r[k]
            res["provisional_pv"][idx] = r["provisional_pv"]
            for k in H_KEYS:
                res[k][idx] = r[k]
            res["withheld"][idx] = r["withheld_h"]
            res["prepaid"][idx] = r["prepaid_h"]
            if monthly:
                for k in HM_KEYS:
                    res[k][idx] = r[k]
    for f, name in enumerate(FUNDS):
        res = ress[f]
        # the ledger's identity in every unit: hospitals are paid what is distributed by
        # points, less the forfeits, through prepayments and the annual balance
        paid = res["prepaid"].sum(1) + res["balance"].sum(1)
        bad = (paid != res["total"] - res["forfeited"].sum(1)) | (
            res["payment"].sum(1) != res["total"]
        )
        if bad.any():
            u = int(np.flatnonzero(bad)[0])
            raise DrgsimError(
                f"fund {name}, scenario {scs[units[u][0]].name!r}: money does not add up"
            )
        out[name] = res
    return out


_TOT = ("points", "share_fen", "cost_fen")


def _sums(
    res: dict[str, np.ndarray],
    us: Any,
    pts: np.ndarray,
    cost: np.ndarray,
    share: np.ndarray,
    cases: np.ndarray,
    monthly: bool,
) -> None:
    """The hospital sums (and, ``monthly``, the months) of the totals units ``us`` were
    settled on: (H, 12) shared by them, or (len(us), H, 12)."""
    res["points"][us] = pts.sum(-1)
    res["cost"][us] = cost.sum(-1)
    res["share"][us] = share.sum(-1)
    res["cases"][us] = cases.sum(-1)
    if monthly:
        res["points_hm"][us] = pts
        res["cases_hm"][us] = cases


def _hospital_info(base: Prepared, hids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    names = np.full(len(hids), None, dtype=object)
    levels = np.full(len(hids), None, dtype=object)
    h = base.hosp_df
    if h is not None:
        t = h.assign(hospital_id=h["hospital_id"].astype(str)).drop_duplicates("hospital_id")
        t = t.set_index("hospital_id").reindex(hids.astype(str))
        col = next((c for c in ("hospital_name", "name") if c in t.columns), None)
        if col:
            names = t[col].to_numpy(dtype=object)
        if "level" in t.columns:
            levels = t["level"].to_numpy(dtype=object)
    return names, levels


def _region_balance_inputs(base: Prepared) -> tuple[dict[str, int] | None, str]:
    """fund_income − other_spending of the simulated year per fund, in fen, or why not."""
    r = base.region_df
    need = ("fund", "year", "fund_income", "other_spending")
    if r is None:
        return None, "no region table: the fund balance is absent"
    missing = [c for c in need if c not in r.columns]
    if missing:
        return None, f"the region table lacks {', '.join(missing)}: the fund balance is absent"
    yrs = pd.to_numeric(r["year"], errors="coerce")
    out = {}
    for name in FUNDS:
        row = r[(r["fund"].astype(str) == name) & (yrs == base.year)]
        if len(row) != 1:
            return None, (
                f"the region table has {len(row)} row(s) of fund {name}, year {base.year}: "
                "the fund balance is absent"
            )
        inc, ok1 = yuan_to_fen(row["fund_income"])
        oth, ok2 = yuan_to_fen(row["other_spending"])
        if not (ok1.all() and ok2.all()):
            return (
                None,
                f"fund {name}, year {base.year}: fund_income or other_spending is not a number",
            )
        out[name] = int(inc[0]) - int(oth[0])
    return out, ""


def _tables(
    base: Prepared,
    scs: list[_Scenario],
    names: list[str],
    axes: list[str],
    units: list[tuple[int, int, str]],
    budgets: dict[str, list[Budget]],
    out: dict[str, dict[str, np.ndarray]],
    n_draws: int,
    monthly: bool,
) -> SweepResult:
    S, F, U = len(scs), len(FUNDS), len(units)
    s_of = np.array([u[0] for u in units])
    d_of = np.array([u[1] for u in units])
    base_unit = {v[1]: j for j, v in enumerate(units) if v[0] == 0}
    b_of = np.array([base_unit[d] for d in range(n_draws)])[d_of]  # baseline unit, same draw
    hids = base.hospital_ids
    H = len(hids)
    hn, hl = _hospital_info(base, hids)
    notes: list[str] = []

    def stack(k: str) -> np.ndarray:  # (U, F, H)
        return out["_full"][k]  # type: ignore[index]

    cases, outside = stack("cases"), stack("outside")
    if np.array_equal(cases, np.rint(cases)):  # whole cases unless volume grew
        cases = cases.astype(np.int64)
    keep_fh = ((cases > 0) | (outside != 0)).any(0)  # (F, H): rows every scenario shows
    received = stack("received") + stack("refund") - stack("clawback")
    ref = received[b_of]
    delta = received - ref
    with np.errstate(divide="ignore", invalid="ignore"):
        dpct = np.where(ref != 0, delta / ref.astype(np.float64), np.nan)
    cost = stack("cost")
    every = bool(keep_fh.all())
    # row (u, f, h) of the flattened (U, F, H) arrays: its index columns without meshgrids
    fh = np.flatnonzero(keep_fh.ravel())  # kept (f, h) pairs, the same in every unit
    n_fh = len(fh)
    f_codes = (fh // H).astype(np.int8)
    h_codes = fh % H
    u_col = np.repeat(np.arange(U), n_fh)

    def col(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a).reshape(U, F * H)
        return a.ravel() if every else a[:, fh].ravel()

    hosp = pd.DataFrame(
        {
            "scenario": s_of[u_col],
            "draw": d_of[u_col],
            "fund": pd.Categorical.from_codes(np.tile(f_codes, U), FUNDS, validate=False),
            "hospital_id": _cat(hids, h_codes, U),
            "hospital_name": _cat(hn, h_codes, U),
            "level": _cat(hl, h_codes, U),
            "cases": col(cases),
            "points": col(stack("points")),
            "cost_fen": col(cost),
            "patient_share_fen": col(stack("share")),
            "payment_fen": col(stack("payment")),
            "withheld_fen": col(stack("withheld")),
            "released_fen": col(stack("released")),
            "forfeited_fen": col(stack("forfeited")),
            "annual_payment_fen": col(stack("annual")),
            "prepaid_fen": col(stack("prepaid")),
            "balance_fen": col(stack("balance")),
            "corridor_refund_fen": col(stack("refund")),
            "corridor_clawback_fen": col(stack("clawback")),
            "per_diem_outside_fen": col(outside),
            "received_fen": col(received),
            "surplus_fen": col(received - cost),
            "delta_fen": col(delta),
            "delta_pct": col(dpct),
        },
        copy=False,  # the columns are this sweep's own arrays: no copy into blocks
    )

    all_share = base.fund_share_all_cases()  # fund share of every simulated case
    base_tot = dict(zip(FUNDS, base.fund_totals(), strict=True))
    bal_in, why = _region_balance_inputs(base)
    if why:
        notes.append(why)
    frows = []
    for name in FUNDS:
        r = out[name]
        T, D = r["total"], r["distributable"]
        bound = r["pv_bound"]
        refunds, claws = r["refund"].sum(1), r["clawback"].sum(1)
        outs = r["outside"].sum(1)
        forfeited = r["forfeited"].sum(1)
        cash = r["prepaid"].sum(1) + r["balance"].sum(1) + refunds - claws + outs
        b = budgets[name]
        fb = (
            pd.array(bal_in[name] - cash, dtype="Int64")
            if bal_in is not None
            else pd.array([pd.NA] * U, dtype="Int64")
        )
        frows.append(
            pd.DataFrame(
                {
                    "scenario": s_of,
                    "draw": d_of,
                    "fund": name,
                    "budget_fen": [x.budget_fen for x in b],
                    "budget_source": [x.source for x in b],
                    "budget_arithmetic": [x.arithmetic() for x in b],
                    "reserve_fen": [x.reserve_fen for x in b],
                    "carve_out_fen": [x.carve_out_fen for x in b],
                    "cases": _whole(r["cases"].sum(1)),
                    "points": r["points"].sum(1),
                    "cost_fen": r["cost"].sum(1),
                    "patient_share_fen": r["share"].sum(1),
                    "distributable_fen": D,
                    "region_draw_fen": r["region_draw"],
                    "pv_total_cost": r["pv_total_cost"],
                    "pv_fund": r["pv_fund"],
                    "pv": r["pv"],
                    "pv_budgeted": r["pv_budgeted"],
                    "bound": np.asarray(["none", "floor", "ceiling"], dtype=object)[bound],
                    "floor_topup_fen": np.where(bound == 1, T - D, 0),
                    "ceiling_withheld_fen": np.where(bound == 2, D - T, 0),
                    "paid_by_points_fen": T,
                    "refunds_fen": refunds,
                    "clawbacks_fen": claws,
                    "forfeited_fen": forfeited,
                    "reserve_overdraw_fen": r["overdraw"],
                    "per_diem_outside_fen": outs,
                    # the DRG-coverage denominator: behaviour moves the in-budget part
                    "fund_share_all_cases_fen": all_share[name]
                    + (r["cost"].sum(1) - r["share"].sum(1))
                    - int(base_tot[name].cost_fen.sum() - base_tot[name].share_fen.sum()),
                    "hospital_cash_fen": cash,
                    "fund_balance_fen": fb,
                }
            )
        )
    funds = pd.concat(frows, ignore_index=True).sort_values(["scenario", "draw", "fund"])
    funds = funds.reset_index(drop=True)

    months = None
    if monthly:
        mrows = []
        for name in FUNDS:
            r = out[name]
            ss, hh, mm = np.meshgrid(np.arange(U), np.arange(H), np.arange(12), indexing="ij")
            m = pd.DataFrame(
                {
                    "scenario": s_of[ss.ravel()],
                    "draw": d_of[ss.ravel()],
                    "fund": name,
                    "hospital_id": hids[hh.ravel()],
                    "month": mm.ravel() + 1,
                    "cases": _whole(r["cases_hm"].ravel()),
                    "points": r["points_hm"].ravel(),
                    "provisional_pv": r["provisional_pv"][ss.ravel(), mm.ravel()],
                    "gross_prepayment_fen": r["gross_prepay_hm"].ravel(),
                    "withheld_fen": r["withheld_hm"].ravel(),
                    "prepaid_fen": r["prepaid_hm"].ravel(),
                    "final_payment_fen": r["payment_hm"].ravel(),
                }
            )
            mrows.append(m[m["cases"] > 0])
        months = pd.concat(mrows, ignore_index=True)

    sc_tab = pd.DataFrame(
        {
            "scenario": np.arange(S),
            "name": names,
            **{a: [s.overlay.get(a) for s in scs] for a in axes},
            "overlay": [to_json(s.overlay) for s in scs],
            "route": [s.route for s in scs],
            "note": [s.reason for s in scs],
        }
    )
    routes = pd.DataFrame(
        {
            "scenario": np.arange(S),
            "route": [s.route for s in scs],
            "reason": [s.reason for s in scs],
        }
    )
    cov = sum(all_share.values())
    prov = {**base.prov, "drgsim.sweep_scenarios": str(S), "drgsim.sweep_draws": str(n_draws)}
    if base.reference_pv:
        prov["drgsim.reference_pv"] = json.dumps(base.reference_pv)
    return SweepResult(sc_tab, routes, hosp, funds, months, prov, notes, cov)


def _cat(values: np.ndarray, idx: np.ndarray, reps: int) -> pd.Categorical:
    """``values[idx]`` repeated ``reps`` times as a categorical (one entry per hospital,
    not per row)."""
    codes, uniq = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    small = np.int16 if len(uniq) < 2**15 else np.int32
    return pd.Categorical.from_codes(np.tile(codes[idx].astype(small), reps), uniq, validate=False)


def _whole(x: np.ndarray) -> np.ndarray:
    return x.astype(np.int64) if np.array_equal(x, np.rint(x)) else x


def summarize(res: SweepResult, losing: float = -0.02) -> pd.DataFrame:
    """See :meth:`SweepResult.summary`."""
    f = res.funds
    h = res.hospitals
    g = f.groupby(["scenario", "draw"])
    per = pd.DataFrame(
        {
            "points": g["points"].sum(),
            "paid": g["paid_by_points_fen"].sum(),
            "all_share": g["fund_share_all_cases_fen"].sum(),
            "pvp": (f["pv"] * f["points"]).groupby([f["scenario"], f["draw"]]).sum(),
            "fund_balance_fen": g["fund_balance_fen"].sum(min_count=len(f["fund"].unique())),
        }
    )
    per["pv"] = per["pvp"] / per["points"].where(per["points"] > 0)
    per["drg_coverage"] = per["paid"] / per["all_share"].where(per["all_share"] > 0)
    pvf = f.pivot_table(index=["scenario", "draw"], columns="fund", values="pv")
    for c in pvf.columns:
        per[f"pv_{c}"] = pvf[c]
    # a hospital's change over both funds against the baseline, per draw
    hh = h.groupby(["scenario", "draw", "hospital_id"], as_index=False).agg(
        received=("received_fen", "sum"), level=("level", "first")
    )
    b = hh[hh["scenario"] == 0].set_index(["draw", "hospital_id"])["received"]
    base_rec = b.reindex(pd.MultiIndex.from_frame(hh[["draw", "hospital_id"]])).to_numpy()
    hh["change"] = np.where(base_rec != 0, (hh["received"] - base_rec) / base_rec, np.nan)
    q = hh.groupby("scenario")["change"]
    agg = pd.DataFrame(
        {
            "change_p5": q.quantile(0.05),
            "change_p50": q.quantile(0.5),
            "change_p95": q.quantile(0.95),
        }
    )
    for lv, part in hh.groupby("level", dropna=True):
        qq = part.groupby("scenario")["change"]
        for name, x in (("p5", 0.05), ("p50", 0.5), ("p95", 0.95)):
            agg[f"change_{name}_{lv}"] = qq.quantile(x)
    n_draws = hh.groupby("scenario")["draw"].nunique()
    agg["n_losing"] = (hh["change"] < losing).groupby(hh["scenario"]).sum() / n_draws
    mean = per.groupby(level="scenario").mean(numeric_only=True)
    out = pd.DataFrame({"scenario": res.scenarios["scenario"], "name": res.scenarios["name"]})
    out["route"] = res.scenarios["route"]
    for c in ["pv", *[c for c in mean.columns if c.startswith("pv_")]]:
        out[c] = out["scenario"].map(mean[c])
    fbal = per["fund_balance_fen"].groupby(level="scenario").mean()
    out["fund_balance_fen"] = pd.array(
        out["scenario"].map(fbal).round().astype("Float64"), dtype="Int64"
    )
    for c in agg.columns:
        out[c] = out["scenario"].map(agg[c])
    out["n_losing"] = out["n_losing"].fillna(0)
    out["drg_coverage"] = out["scenario"].map(mean["drg_coverage"])
    return out


__all__ = ["ROUTES", "SweepError", "SweepResult", "summarize", "sweep"]
