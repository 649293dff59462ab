"""Behaviour assumptions (DOMAIN.md §5): volume growth, cost inflation, coding creep, LOS.

Each assumption is a number or a distribution (:mod:`drgsim.scenarios.draws`). Each is
defined on the priced case rows first (:func:`apply_rows`, the slow reference, an
expected-value transform; :func:`rows_frame` shows it case by case) and reproduced on the
cells (:func:`prepare_cells` once, then :func:`apply_cells` per value) without copying a
case row; the two agree on every hospital × fund × month total (points to float rounding,
fen exactly).

Keys (a ``behaviour.`` prefix is accepted): ``volume_growth``, ``cost_inflation``,
``coding_creep``, each also ``<key>.by_level.<level>`` (``volume_growth`` also
``.by_hospital.<id>``), and ``los_change``. For a hospital the most specific value given
applies (by hospital, else by its level, else overall, else none). Levels match the
hospitals table's ``level`` as written or by their digit (三级 = 3级 = 3).

Exact definitions, per case of hospital h (g, f, s: h's values):

- **Volume growth g** (> −1): the case counts 1 + g times: its points × (1 + g); the
  hospital × fund × month fen totals (cost, patients' share) and the per-diem fen paid
  outside the budget (per hospital × fund) are ``half_up(total × (1 + g))``, rounded once
  per total; the case count × (1 + g) (a float).
- **Cost inflation f** (> −1): the case's cost × (1 + f), weights and reference means
  unchanged. Its cost ratio is computed as ``cost / (m / (1 + f))`` (one expression for
  rows and cells), so normal, high- and low-cost cases move across the outlier thresholds
  (k, low-cost factor, cap) exactly as pricing moves them. Short stays priced as low cost
  are re-priced (P × c × min(ratio, 1), capped); special-review and ungroupable points,
  proportional to cost, × (1 + f). The fen totals (cost and patients' share per hospital ×
  fund × month) are ``half_up(total × (1 + g) × (1 + f))``. Which cases are per diem,
  special review, short stay, readmissions or held as implausible is decided on the
  observed costs and kept, as are the hospitals' coefficients and the per-diem fen paid
  outside the budget (a daily rate, not a cost).
- **Coding creep s** (0 ≤ s ≤ 1): a normal, high- or low-cost case priced with its own
  DRG's weight, whose DRG has a more severe sibling (:func:`severity_siblings`) with a
  DRG-level weight, counts 1 − s at its own DRG and s at the sibling, where it is priced
  with the sibling's points, reference mean and RW (so its k tier) under the same
  coefficient, thresholds and readmission factor. Cost, patients' share and the case count
  do not move. Other case types (per diem, special review, ungroupable, short stay,
  readmission as a type) and cases priced at a fallback weight (ADRG, MDC, all) do not creep.
- **DIP regions** (``method: dip``): the same definitions on packets, with DIP's outlier
  rules (:func:`~drgsim.pricing.core.outlier_params`): the reference mean is the packet's
  level mean C, the boundaries inclusive (r ≤ low, r ≥ high) unless the policy says
  otherwise, outliers priced on base × c (or base alone with ``coef_on_outliers`` off),
  and at ``extreme_mode: coefficient`` a case beyond ``extreme`` × C is paid as normal, so
  inflation moves cases into and out of that zone too; at ``review`` the held cases are
  those held on the observed costs (kept, like special review). Rows and cells share the
  formulas (``outlier_masks``/``outlier_points``; ``cells.cell_params``). Coding creep is
  refused (:data:`DIP_NO_CREEP`): a packet has no more severe sibling.
- **LOS change x** (> 0): every case's LOS becomes ``max(1, half_up(los × x))`` and its
  admission date moves to discharge − LOS (:func:`apply_los`); the cases are then priced
  again (the rows route: cells hold no LOS).

All values are kept to millionths (the settlement's ratio resolution); a fen total is
multiplied by ``(1 + g)(1 + f)`` with :func:`~drgsim.settlement.scenarios.mul_half_up`
(the factor taken to millionths, the product in exact integers, half away from zero).
The cells re-price once per distinct cost inflation and thresholds (cached), so draws of
volume growth or coding creep alone cost a few array operations per hospital.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np
import pandas as pd

from drgsim.errors import Problem, ScenarioError
from drgsim.policy.dated import YearPolicy, as_year_policy
from drgsim.pricing.cells import (
    MONTHS,
    N_FUNDS,
    THRESHOLD_TYPES,
    Cells,
    CellsError,
    _check_repriceable,
    _first,
    _thresholds,
    build_cells,
    cell_params,
    segments_on,
)
from drgsim.pricing.core import (
    CASE_TYPES,
    WEIGHT_LEVELS,
    Priced,
    Weights,
    outlier_masks,
    outlier_points,
)
from drgsim.pricing.money import PPM
from drgsim.scenarios.draws import Dist, key_rng, parse_dist
from drgsim.settlement.scenarios import _ppm, mul_half_up

NAMES = ("volume_growth", "cost_inflation", "coding_creep", "los_change")
BY = {
    "volume_growth": ("by_level", "by_hospital"),
    "cost_inflation": ("by_level",),
    "coding_creep": ("by_level",),
    "los_change": (),
}
# (low, high, low inclusive, high inclusive)
DOMAIN = {
    "volume_growth": (-1.0, np.inf, False, False),
    "cost_inflation": (-1.0, np.inf, False, False),
    "coding_creep": (0.0, 1.0, True, True),
    "los_change": (0.0, np.inf, False, False),
}
LINEAR_TYPES = [CASE_TYPES.index(t) for t in ("special_review", "ungroupable")]
SHORT = CASE_TYPES.index("short_stay")
NORMAL, HIGH, LOW = (CASE_TYPES.index(t) for t in ("normal", "high_cost", "low_cost"))
CACHE_SIZE = 16  # cell parameter sets kept per BehaviourCells (distinct thresholds)
SEVERITY_RANK = {"": 0, "cc": 1, "mcc_or_cc": 1, "mcc": 2}
OTHER_CONDITIONS = (
    "min_dx_count",
    "age_years_min",
    "age_years_max",
    "los_days_min",
    "los_days_max",
)


# why coding creep is refused on a DIP region (one line, for the sweep and the API)
DIP_NO_CREEP = (
    "coding_creep is not defined for method dip: a DIP packet has no more severe sibling "
    "in CHS-DRG's sense (its severity is an auxiliary class of the same packet)"
)


def _refuse_dip_creep(pr: Priced, siblings: Mapping[str, str]) -> None:
    if siblings and pr.pv is not None and pr.pv.get("method") == "dip":
        raise ScenarioError([Problem("behaviour", None, "coding_creep", DIP_NO_CREEP)])


# ----------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Behaviour:
    """Validated assumptions: canonical key (``volume_growth.by_level.三级``) -> Dist."""

    items: dict[str, Dist]
    source: str = "behaviour"

    def __bool__(self) -> bool:
        return bool(self.items)

    @property
    def needs_rows(self) -> bool:
        """True when the cases must be priced again (a LOS change other than 1)."""
        d = self.items.get("los_change")
        return d is not None and not (d.fixed and d.params["value"] == 1.0)


def _domain_text(name: str) -> str:
    lo, hi, li, hi_in = DOMAIN[name]
    return f"{'[' if li else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"


def _in_domain(name: str, v: np.ndarray | float) -> np.ndarray:
    lo, hi, li, hi_in = DOMAIN[name]
    v = np.asarray(v, dtype=np.float64)
    ok_lo = v >= lo if li else v > lo
    ok_hi = v <= hi if hi_in else v < hi
    return ok_lo & ok_hi


def _flatten(spec: Mapping[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in spec.items():
        k = str(k)
        if k.startswith("behaviour."):
            k = k[len("behaviour.") :]
        if (
            isinstance(v, Mapping)
            and "dist" not in v
            and set(map(str, v)) & {"by_level", "by_hospital", "all"}
        ):
            for sub, sv in v.items():
                sub = str(sub)
                if sub == "all":
                    out.append((k, sv))
                elif isinstance(sv, Mapping) and "dist" not in sv:
                    out += [(f"{k}.{sub}.{e}", x) for e, x in sv.items()]
                else:
                    out.append((f"{k}.{sub}", sv))
        else:
            out.append((k, v))
    return out


def parse_behaviour(
    spec: Mapping[str, Any] | Behaviour | None, source: str = "behaviour"
) -> Behaviour:
    """Validate a behaviour mapping (dotted keys, or nested ``by_level``/``by_hospital``
    mappings); all problems are collected into one :class:`~drgsim.errors.ScenarioError`
    naming each key (``source`` is the file name used in the messages)."""
    if isinstance(spec, Behaviour):
        return spec
    if spec is None:
        return Behaviour({}, source)
    if not isinstance(spec, Mapping):
        raise ScenarioError(
            [Problem(source, None, "behaviour", f"expected a mapping, got {spec!r}")]
        )
    problems: list[Problem] = []
    items: dict[str, Dist] = {}
    for key, v in _flatten(spec):
        parts = key.split(".")
        name = parts[0]
        if name not in NAMES:
            near = difflib.get_close_matches(name, NAMES, n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]}?)" if near else f" (one of: {', '.join(NAMES)})"
            problems.append(Problem(source, None, key, f"unknown behaviour{hint}"))
            continue
        if len(parts) > 1 and (len(parts) < 3 or parts[1] not in BY[name] or not parts[2]):
            allowed = ", ".join(f"{name}.{b}.<name>" for b in BY[name]) or "no sub-keys"
            problems.append(
                Problem(source, None, key, f"malformed key (allowed: {name}, {allowed})")
            )
            continue
        key = ".".join([parts[0], parts[1], ".".join(parts[2:])]) if len(parts) > 1 else name
        if key in items:
            problems.append(Problem(source, None, key, "given twice"))
            continue
        try:
            d = parse_dist(key, v, source)
        except ScenarioError as e:
            problems += e.problems
            continue
        if d.fixed:
            bad = not _in_domain(name, d.params["value"])
        else:  # a finite bound (min/max, or uniform/triangular ends) must lie in the domain
            bad = any(np.isfinite(x) and not _in_domain(name, x) for x in (d.lo, d.hi))
        if bad:
            what = f"{d.params['value']:g}" if d.fixed else f"[{d.lo:g}, {d.hi:g}]"
            problems.append(Problem(source, None, key, f"{what} is outside {_domain_text(name)}"))
            continue
        items[key] = d
    if problems:
        raise ScenarioError(problems)
    return Behaviour(items, source)


def draw_values(
    b: Behaviour | Mapping[str, Any], draws: int | None = None, seed: int | None = None
) -> dict[str, np.ndarray]:
    """Key -> values (shape ``(draws,)``; ``(1,)`` of expected values without ``draws``).

    The same seed gives the same draws (no seed means seed 0); each key has its own stream
    (:func:`~drgsim.scenarios.draws.key_rng`). A draw outside the key's domain (e.g. a
    volume growth ≤ −1 from an unbounded normal) raises :class:`ScenarioError`.
    """
    b = parse_behaviour(b) if not isinstance(b, Behaviour) else b
    out: dict[str, np.ndarray] = {}
    problems: list[Problem] = []
    if draws is not None and (isinstance(draws, bool) or int(draws) != draws or draws < 1):
        raise ScenarioError(
            [Problem(b.source, None, "draws", f"must be an integer >= 1, got {draws!r}")]
        )
    for key, d in b.items.items():
        if draws is None:
            v = np.array([d.expected()])
        else:
            v = d.draw(key_rng(0 if seed is None else seed, key), int(draws))
        name = key.split(".")[0]
        bad = np.flatnonzero(~_in_domain(name, v))
        if len(bad):
            i = int(bad[0])
            problems.append(
                Problem(
                    b.source,
                    None,
                    key,
                    f"draw {i} is {v[i]:g}, outside {_domain_text(name)}: bound the distribution",
                )
            )
        out[key] = v
    if problems:
        raise ScenarioError(problems)
    return out


# ------------------------------------------------------------------- per-hospital values


def _level_code(x: Any) -> str:
    s = str(x).strip()
    t = s.replace("三", "3").replace("二", "2").replace("一", "1")
    m = re.search(r"\d", t)
    return m.group(0) if m else s


def hospital_levels(hospital_ids: np.ndarray, hospitals: pd.DataFrame | None) -> np.ndarray:
    """The ``level`` of each hospital (aligned with ``hospital_ids``; "" when unknown)."""
    if hospitals is None or "level" not in hospitals or not len(hospital_ids):
        return np.full(len(hospital_ids), "", dtype=object)
    h = hospitals.assign(hospital_id=hospitals["hospital_id"].astype("string"))
    lv = h.drop_duplicates("hospital_id").set_index("hospital_id")["level"]
    got = lv.reindex(pd.Index(hospital_ids, dtype="string"))
    return got.astype(object).where(got.notna(), "").to_numpy(dtype=object)


def hospital_values(
    values: Mapping[str, float | np.ndarray],
    hospital_ids: np.ndarray,
    hosp_level: np.ndarray | None = None,
    draw: int = 0,
) -> dict[str, np.ndarray]:
    """Per hospital (aligned with ``hospital_ids``) g, f, s: name -> (H,) float64 (0 when
    not given); ``los_change`` is not per hospital. A level or hospital no hospital has
    raises :class:`ScenarioError` (it could not be honoured)."""

    def val(v: float | np.ndarray) -> np.ndarray:
        a = np.asarray(v, dtype=np.float64)
        return a.reshape(1) if a.ndim == 0 else a[draw : draw + 1]

    one = {k: val(v) for k, v in values.items()}
    return {k: v[0] for k, v in hospital_values_draws(one, hospital_ids, hosp_level).items()}


def hospital_values_draws(
    values: Mapping[str, float | np.ndarray],
    hospital_ids: np.ndarray,
    hosp_level: np.ndarray | None = None,
    n_draws: int | None = None,
) -> dict[str, np.ndarray]:
    """:func:`hospital_values` of every draw at once: name -> (draws, H) float64. A value
    of one entry (a fixed assumption) holds in every draw; ``n_draws`` default: the longest."""
    H = len(hospital_ids)
    D = n_draws or max((np.size(v) for v in values.values()), default=1)
    lv = (
        np.full(H, "", dtype=object) if hosp_level is None else np.asarray(hosp_level, dtype=object)
    )
    codes = np.array([_level_code(x) for x in lv], dtype=object)
    ids = np.asarray(hospital_ids).astype(str)
    out = {n: np.zeros((D, H)) for n in ("volume_growth", "cost_inflation", "coding_creep")}
    problems: list[Problem] = []

    def val(v: float | np.ndarray) -> np.ndarray:
        a = np.atleast_1d(np.asarray(v, dtype=np.float64))
        return np.broadcast_to(a[:D] if len(a) >= D else a[:1], (D,))[:, None]

    for sub in ("", "by_level"):  # overall, then levels, then hospitals (most specific wins)
        for key, v in values.items():
            parts = key.split(".", 2)
            if parts[0] not in out or (parts[1] if len(parts) == 3 else "") != sub:
                continue
            if not sub:
                out[parts[0]][:] = val(v)
            else:
                sel = (codes == _level_code(parts[2])) | (lv == parts[2])
                if not sel.any():
                    known = ", ".join(sorted({str(x) for x in lv if x != ""})) or "none"
                    problems.append(
                        Problem(
                            "behaviour",
                            None,
                            key,
                            f"no hospital has level {parts[2]!r} (levels: {known})",
                        )
                    )
                out[parts[0]][:, sel] = val(v)
    for key, v in values.items():
        parts = key.split(".", 2)
        if parts[0] in out and len(parts) == 3 and parts[1] == "by_hospital":
            sel = ids == parts[2]
            if not sel.any():
                problems.append(
                    Problem("behaviour", None, key, f"no hospital {parts[2]!r} in the cases")
                )
            out[parts[0]][:, sel] = val(v)
    if problems:
        raise ScenarioError(problems)
    return out


# -------------------------------------------------------------------------- siblings


def _drg_rows(scheme: Any) -> list[dict[str, str]]:
    if hasattr(scheme, "tables") and "drg.csv" in scheme:
        t = scheme["drg.csv"]
        names = list(t.columns)
        return [{c: t.get(c)[i] for c in names} for i in range(len(t))]
    if isinstance(scheme, pd.DataFrame):
        return scheme.fillna("").astype(str).to_dict("records")
    from drgsim.scheme.paths import resolve_scheme_dir

    path = resolve_scheme_dir(scheme) / "drg.csv"
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def severity_siblings(scheme: Any) -> dict[str, str]:
    """DRG -> its more severe sibling in the same ADRG, from the scheme's ``drg.csv``.

    A DRG's sibling is, among the DRGs of its ADRG with the same other split conditions
    (dx count, age, LOS bounds), the one whose ``cc_rule`` needs the next CC/MCC level
    (none < cc = mcc_or_cc < mcc); among equals the one tried last before it. In CHS-DRG 1.1:
    xx5 -> xx3 -> xx1, or xx5 -> xx1 when the ADRG has no xx3; none for ADRGs not split
    (xx9) or for their most severe DRG. ``scheme``: a bundled name, a folder, loaded
    :class:`~drgsim.scheme.tables.SchemeTables`, or the ``drg.csv`` frame.
    """
    rows = _drg_rows(scheme)
    by_adrg: dict[tuple, list[dict[str, str]]] = {}
    for r in rows:
        rule = (r.get("cc_rule") or "").strip()
        if rule not in SEVERITY_RANK:
            raise ScenarioError(
                [Problem("drg.csv", None, "cc_rule", f"unknown rule {rule!r} of {r.get('drg')}")]
            )
        other = tuple((r.get(c) or "").strip() for c in OTHER_CONDITIONS)
        by_adrg.setdefault((r["adrg"], other), []).append(r)
    out: dict[str, str] = {}
    for group in by_adrg.values():
        for r in group:
            rk = SEVERITY_RANK[(r.get("cc_rule") or "").strip()]
            up = [x for x in group if SEVERITY_RANK[(x.get("cc_rule") or "").strip()] > rk]
            if not up:
                continue
            best = min(SEVERITY_RANK[(x.get("cc_rule") or "").strip()] for x in up)
            cands = [x for x in up if SEVERITY_RANK[(x.get("cc_rule") or "").strip()] == best]
            pick = max(cands, key=lambda x: int(x.get("order") or 0))
            out[r["drg"]] = pick["drg"]
    return out


def sibling_rows(weights: Weights, siblings: Mapping[str, str]) -> np.ndarray:
    """Per weights-table row: the DRG-level row of its DRG's sibling, or -1."""
    t = weights.table
    drg_row = {
        str(k): i for i, (k, lv) in enumerate(zip(t["key"], t["level"], strict=True)) if lv == "drg"
    }
    out = np.full(len(t), -1, dtype=np.int64)
    for k, i in drg_row.items():
        s = siblings.get(k)
        if s is not None and s in drg_row:
            out[i] = drg_row[s]
    return out


# ------------------------------------------------------------------------------- totals


@dataclass
class Totals:
    """What the settlement needs, per hospital × fund × month (``hfm``) and per hospital
    × fund (``outside_fen``); see :class:`~drgsim.pricing.cells.Cells` for the layout."""

    points: np.ndarray  # float64 per hfm
    cost_fen: np.ndarray  # int64 per hfm
    share_fen: np.ndarray  # int64 per hfm
    cases: np.ndarray  # float64 per hfm (volume growth makes counts fractional)
    outside_fen: np.ndarray  # int64 per hospital × fund
    n_hosp: int

    def fund(self, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(points, share_fen, cost_fen) of fund ``f`` as (H, 12), for ``settle_scenarios``."""

        def pick(x: np.ndarray) -> np.ndarray:
            return x.reshape(self.n_hosp, N_FUNDS, MONTHS)[:, f, :]

        return pick(self.points), pick(self.share_fen), pick(self.cost_fen)


def _factors(hv: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return 1.0 + hv["volume_growth"], 1.0 + hv["cost_inflation"], hv["coding_creep"]


def _money(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Fen totals × per-total ratio, half away from zero (exact integers)."""
    return mul_half_up(np.asarray(x, np.int64), r).astype(np.int64)


def _money_draws(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """:func:`_money` of totals ``x`` (hospital-major, ``len(x) / H`` per hospital) under
    per-draw, per-hospital ratios ``r`` (draws, H): (draws, len(x)), one pass."""
    x = np.ascontiguousarray(x, dtype=np.int64)
    out = np.empty((r.shape[0], len(x)), np.int64)
    _money_kernel(x, _ppm(r), len(x) // max(r.shape[1], 1), out)
    return out


@nb.njit(cache=True)
def _money_kernel(x, ppm, per, out):  # pragma: no cover - numba
    """``mul_half_up`` element by element: sign(x) × ((2 |x| ppm + PPM) // (2 PPM))."""
    D, H = ppm.shape
    for d in range(D):
        for h in range(H):
            p = ppm[d, h]
            for i in range(h * per, (h + 1) * per):
                v = x[i]
                q = (2 * abs(v) * p + PPM) // (2 * PPM)
                out[d, i] = -q if v < 0 else q


def _thr_segments(policy: dict | YearPolicy | None, pr: Priced) -> YearPolicy:
    if policy is None:
        return pr.policy if pr.policy is not None else as_year_policy(pr.pv)
    return as_year_policy(policy)


# ------------------------------------------------------------------ rows (the reference)


def _row_threshold_points(
    cost: np.ndarray,
    P: np.ndarray,
    c: np.ndarray,
    m_eff: np.ndarray,
    rw: np.ndarray,
    factor: np.ndarray,
    seg: np.ndarray,
    segments: list[dict],
    prec: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Points and case type of normal/high/low-cost cases by the formulas of pricing
    (:func:`~drgsim.pricing.core.outlier_masks`, :func:`~drgsim.pricing.core.outlier_points`):
    DRG strict, DIP inclusive with its extreme zone at coefficient mode paid as normal."""
    n = len(cost)
    k, cap = np.zeros(n), np.full(n, np.inf)
    valid = m_eff > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(valid, cost / np.where(valid, m_eff, 1.0), 0.0)
    high, low = np.zeros(n, bool), np.zeros(n, bool)
    pts_n, pts_l, pts_h = np.zeros(n), np.zeros(n), np.zeros(n)
    for s_, p in enumerate(segments):
        sel = seg == s_
        t = _thresholds(p)
        edges = np.array([x["rw_upto"] for x in t["tiers"][:-1]], dtype=np.float64)
        ks = np.array([x["k"] for x in t["tiers"]], dtype=np.float64)
        k[sel] = ks[np.searchsorted(edges, rw[sel], side="left")]
        cap[sel] = np.inf if t["cap"] is None else t["cap"]
        h_, l_, e_ = outlier_masks(r[sel], k[sel], float(t["low"]), t)
        high[sel], low[sel] = h_ & ~e_, l_
        pts_n[sel], pts_l[sel], pts_h[sel], _ = outlier_points(P[sel], c[sel], r[sel], k[sel], t)
    high &= valid & ("high_cost" in prec)
    low &= valid & ("low_cost" in prec)
    if "high_cost" in prec and "low_cost" in prec:
        if prec.index("low_cost") < prec.index("high_cost"):
            high &= ~low
        else:
            low &= ~high
    pts = np.where(high, pts_h, np.where(low, pts_l, pts_n))
    pts = np.where(np.isfinite(cap), np.minimum(pts, cap * P), pts)
    types = np.where(high, HIGH, np.where(low, LOW, NORMAL)).astype(np.int8)
    return pts * factor, types


def _row_short_points(
    cost: np.ndarray,
    P: np.ndarray,
    c: np.ndarray,
    m_eff: np.ndarray,
    factor: np.ndarray,
    seg: np.ndarray,
    segments: list[dict],
) -> np.ndarray:
    cap = np.full(len(cost), np.inf)
    for s_, p in enumerate(segments):
        cp = p["caps"]["max_points_multiple"]
        cap[seg == s_] = np.inf if cp is None else cp
    valid = m_eff > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(valid, cost / np.where(valid, m_eff, 1.0), 0.0)
    pts = np.where(valid, P * c * np.minimum(r, 1.0), 0.0)
    return np.where(np.isfinite(cap), np.minimum(pts, cap * P), pts) * factor


def _short_priced_low(pr: Priced) -> bool:
    return (
        pr.pv is not None
        and pr.pv["short_stay"]["enabled"]
        and pr.pv["short_stay"]["pricing"] == "low_cost"
    )


def _row_cases(
    pr: Priced,
    weights: Weights,
    values: Mapping[str, float | np.ndarray],
    siblings: Mapping[str, str],
    hosp_level: np.ndarray | None,
    policy: dict | YearPolicy | None,
    draw: int,
) -> dict[str, Any]:
    """Every case by the row definitions: per-case arrays (see :func:`apply_rows`)."""
    _refuse_dip_creep(pr, siblings)
    c = pr.cases
    hv = hospital_values(values, c.hospital_ids, hosp_level, draw)
    vol, infl, creep = _factors(hv)
    ok = pr.payable & pr.in_budget & (c.hosp >= 0) & (c.fund >= 0)
    h = np.maximum(c.hosp, 0)
    vol_c, infl_c, creep_c = vol[h], infl[h], creep[h]
    thr = ok & np.isin(pr.case_type, THRESHOLD_TYPES)
    yp = _thr_segments(policy, pr)
    seg = yp.segment_of(c.disch_day) if yp.dated else np.zeros(c.n, np.int16)
    prec = list(pr.pv["case_types"]["precedence"])
    cost = c.cost_fen.astype(np.float64)
    m_eff = pr.mean_cost_fen / infl_c
    own, own_type = _row_threshold_points(
        cost, pr.base_points, pr.coefficient, m_eff, pr.rw, pr.factor, seg, yp.segments, prec
    )
    # coding creep: the sibling's points, reference mean and RW
    srow = sibling_rows(weights, siblings)
    wr = pr.weight_row
    sib = np.where(
        thr & (wr >= 0) & (pr.weight_level == WEIGHT_LEVELS.index("drg")),
        srow[np.maximum(wr, 0)],
        -1,
    )
    has_sib = sib >= 0
    t = weights.table
    si = np.maximum(sib, 0)
    sP = np.where(has_sib, t["points"].to_numpy(np.float64)[si], pr.base_points)
    sm = np.where(has_sib, t["mean_cost_fen"].to_numpy(np.float64)[si], pr.mean_cost_fen)
    srw = np.where(has_sib, t["rw"].to_numpy(np.float64)[si], pr.rw)
    at_sib, sib_type = _row_threshold_points(
        cost, sP, pr.coefficient, sm / infl_c, srw, pr.factor, seg, yp.segments, prec
    )
    # own-DRG points of every case: threshold types re-priced, fixed types by their rule
    fixed = ok & ~thr
    lin = fixed & np.isin(pr.case_type, LINEAR_TYPES)
    short = fixed & (pr.case_type == SHORT) & _short_priced_low(pr)
    own_pts = np.where(thr, own, pr.points)
    own_pts = np.where(lin, pr.points * infl_c, own_pts)
    if short.any():
        sp = _row_short_points(
            cost, pr.base_points, pr.coefficient, m_eff, pr.factor, seg, yp.segments
        )
        own_pts = np.where(short, sp, own_pts)
    return {
        "ok": ok,
        "vol": vol,
        "infl": infl,
        "vol_c": vol_c,
        "infl_c": infl_c,
        "creep_c": creep_c,
        "own_pts": np.where(ok, own_pts, 0.0),
        "own_type": np.where(thr, own_type, pr.case_type).astype(np.int8),
        "has_sib": has_sib,
        "sib_row": sib,
        "at_sib": at_sib,
        "sib_type": sib_type,
    }


def apply_rows(
    pr: Priced,
    weights: Weights,
    values: Mapping[str, float | np.ndarray],
    siblings: Mapping[str, str],
    hosp_level: np.ndarray | None = None,
    policy: dict | YearPolicy | None = None,
    draw: int = 0,
) -> Totals:
    """The reference: every case transformed by its definition (module docstring), then
    summed per hospital × fund × month in case-id order. ``policy``: outlier thresholds
    to price under (default: those the cases were priced with). Slow on purpose."""
    c = pr.cases
    H = len(c.hospital_ids)
    n_hfm = H * N_FUNDS * MONTHS
    r = _row_cases(pr, weights, values, siblings, hosp_level, policy, draw)
    ok, vol, infl, vol_c, s = r["ok"], r["vol"], r["infl"], r["vol_c"], r["creep_c"]
    pts = np.where(r["has_sib"], (1.0 - s) * r["own_pts"] + s * r["at_sib"], r["own_pts"])
    pts = pts * vol_c

    hfm = (c.hosp.astype(np.int64) * N_FUNDS + c.fund) * MONTHS + c.month
    o = c.tie_order[ok[c.tie_order]]
    points = np.bincount(hfm[o], weights=pts[o], minlength=n_hfm)
    cases = np.bincount(hfm[o], weights=vol_c[o], minlength=n_hfm)
    cost_t = np.bincount(hfm[o], weights=c.cost_fen[o].astype(np.float64), minlength=n_hfm)
    share_t = np.bincount(hfm[o], weights=c.share_fen[o].astype(np.float64), minlength=n_hfm)
    ratio = np.repeat(vol * infl, N_FUNDS * MONTHS)
    out_sel = pr.payable & ~pr.in_budget & (c.hosp >= 0) & (c.fund >= 0)
    outside = np.bincount(
        c.hosp[out_sel].astype(np.int64) * N_FUNDS + c.fund[out_sel],
        weights=pr.outside_fen[out_sel].astype(np.float64),
        minlength=H * N_FUNDS,
    )
    return Totals(
        points=points,
        cost_fen=_money(np.rint(cost_t), ratio),
        share_fen=_money(np.rint(share_t), ratio),
        cases=cases,
        outside_fen=_money(np.rint(outside), np.repeat(vol, N_FUNDS)),
        n_hosp=H,
    )


def rows_frame(
    pr: Priced,
    weights: Weights,
    values: Mapping[str, float | np.ndarray],
    siblings: Mapping[str, str],
    hosp_level: np.ndarray | None = None,
    policy: dict | YearPolicy | None = None,
    draw: int = 0,
) -> pd.DataFrame:
    """The row definitions as a table, to explain a scenario case by case: one row per
    payable in-budget case at its own DRG, plus one at its sibling for a creeping case;
    ``count`` (1 + g, split 1 − s / s), the scaled ``cost_fen`` and
    ``patient_share_fen`` (× (1 + f), not rounded), the ``case_type`` and the ``points``
    of one count. ``count × points`` summed per hospital × fund × month is
    :func:`apply_rows`' points; the fen totals there are rounded once per total."""
    c = pr.cases
    r = _row_cases(pr, weights, values, siblings, hosp_level, policy, draw)
    ok, s = r["ok"], r["creep_c"]
    creeps = ok & r["has_sib"] & (s > 0)
    own_i = np.flatnonzero(ok)
    sib_i = np.flatnonzero(creeps)
    idx = np.r_[own_i, sib_i]
    at_sib = np.r_[np.zeros(len(own_i), bool), np.ones(len(sib_i), bool)]
    share_of = np.where(r["has_sib"], 1.0 - s, 1.0)
    count = r["vol_c"][idx] * np.where(at_sib, s[idx], share_of[idx])
    keys = weights.table["key"].astype(str).to_numpy()
    drg = np.asarray(c.drg_names, dtype=object)[c.drg[idx]]
    priced_as = np.where(at_sib, keys[np.maximum(r["sib_row"][idx], 0)], drg)
    out = pd.DataFrame(
        {
            "case_id": c.case_id[idx],
            "hospital_id": np.asarray(c.hospital_ids, dtype=object)[c.hosp[idx]],
            "fund": np.array(["employee", "resident"], dtype=object)[c.fund[idx]],
            "month": c.month[idx].astype(np.int16) + 1,
            "drg": drg,
            "priced_as": priced_as,
            "count": count,
            "cost_fen": c.cost_fen[idx] * r["infl_c"][idx],
            "patient_share_fen": c.share_fen[idx] * r["infl_c"][idx],
            "case_type": np.asarray(CASE_TYPES, dtype=object)[
                np.where(at_sib, r["sib_type"][idx], r["own_type"][idx])
            ],
            "points": np.where(at_sib, r["at_sib"][idx], r["own_pts"][idx]),
        }
    )
    order = np.lexsort((at_sib, c.tie[idx]))
    return out.iloc[order].reset_index(drop=True)


# ------------------------------------------------------------------------------ cells


@dataclass
class BehaviourCells:
    """What re-pricing the behaviours on the cells needs beside the cells, built once."""

    cells: Cells
    hosp: np.ndarray  # per cell: hospital index
    has_sib: np.ndarray  # per cell: creeps to a sibling
    sib_P: np.ndarray  # per cell: the sibling's points, mean, RW (own where none)
    sib_m: np.ndarray
    sib_rw: np.ndarray
    fixed_other: np.ndarray  # per hfm: fixed points that depend neither on cost nor DRG
    fixed_linear: np.ndarray  # per hfm: special-review and ungroupable points (∝ cost)
    short: Cells | None  # short stays priced as low cost, as cells of their own
    short_hosp: np.ndarray
    hospital_ids: np.ndarray
    hosp_level: np.ndarray | None
    cache: dict = dataclasses.field(default_factory=dict)  # see _priced_cells_draws


def _cell_weight_rows(pr: Priced, cells: Cells) -> np.ndarray:
    """Per cell: its weight row (cells key on it; recomputed with build_cells' key)."""
    c = pr.cases
    ok = pr.payable & pr.in_budget & (c.hosp >= 0) & (c.fund >= 0)
    idx = np.flatnonzero(ok & np.isin(pr.case_type, THRESHOLD_TYPES))
    if not len(idx):
        return np.zeros(0, np.int64)
    hfm = (c.hosp[idx].astype(np.int64) * N_FUNDS + c.fund[idx]) * MONTHS + c.month[idx]
    wr = pr.weight_row[idx].astype(np.int64)
    W = int(wr.max()) + 1
    n_seg = len(pr.policy.segments) if pr.policy is not None else 1
    sub = pr.segment[idx].astype(np.int64) * 2 + pr.readmit[idx]
    raw = np.sort((hfm * (2 * n_seg) + sub) * W + wr)  # np.unique, by a sort (faster here)
    raw = raw[np.r_[True, raw[1:] != raw[:-1]]]
    wrow = raw % W
    if len(raw) != len(cells.P) or not np.array_equal(raw // W // (2 * n_seg), cells.hfm):
        raise CellsError("the cells do not match the priced cases they were said to be built from")
    return wrow


def prepare_cells(
    pr: Priced,
    cells: Cells,
    weights: Weights,
    siblings: Mapping[str, str],
    hosp_level: np.ndarray | None = None,
) -> BehaviourCells:
    """Once per priced case set: each cell's sibling weight, the fixed points split by
    how they respond to cost, and the short stays as cells (sorted costs)."""
    _refuse_dip_creep(pr, siblings)
    c = pr.cases
    H = len(c.hospital_ids)
    n_hfm = H * N_FUNDS * MONTHS
    wrow = _cell_weight_rows(pr, cells)
    t = weights.table
    srow = sibling_rows(weights, siblings)
    own_drg = np.zeros(len(t), bool)
    own_drg[: len(t)] = (t["level"] == "drg").to_numpy()
    # a cell's cases are priced at their own DRG's weight when the weight row is DRG-level
    # and the cases' weight_level says so (a DRG row reached as an ADRG fallback does not)
    ok = pr.payable & pr.in_budget & (c.hosp >= 0) & (c.fund >= 0)
    thr = ok & np.isin(pr.case_type, THRESHOLD_TYPES)
    fallback_rows = np.unique(pr.weight_row[thr & (pr.weight_level != WEIGHT_LEVELS.index("drg"))])
    ok_rows = own_drg.copy()
    ok_rows[fallback_rows[fallback_rows >= 0]] = False
    sib = np.where(ok_rows[wrow], srow[wrow], -1) if len(wrow) else np.zeros(0, np.int64)
    has = sib >= 0
    si = np.maximum(sib, 0)
    sP = np.where(has, t["points"].to_numpy(np.float64)[si], cells.P)
    sm = np.where(has, t["mean_cost_fen"].to_numpy(np.float64)[si], cells.m)
    srw = np.where(has, t["rw"].to_numpy(np.float64)[si], cells.rw)

    hfm_all = (c.hosp.astype(np.int64) * N_FUNDS + c.fund) * MONTHS + c.month
    fixed = ok & ~thr
    lin = fixed & np.isin(pr.case_type, LINEAR_TYPES)
    # short stays without a reference mean are paid P × c × min(0, 1) = 0 at any cost
    short = fixed & (pr.case_type == SHORT) & _short_priced_low(pr) & (pr.mean_cost_fen > 0)
    other = fixed & ~lin & ~short
    o = c.tie_order

    def sum_of(mask: np.ndarray) -> np.ndarray:
        oo = o[mask[o]]
        return np.bincount(hfm_all[oo], weights=pr.points[oo], minlength=n_hfm)

    short_cells = None
    short_hosp = np.zeros(0, np.int64)
    if short.any():
        pr2 = dataclasses.replace(
            pr,
            case_type=np.where(short, CASE_TYPES.index("normal"), 0).astype(np.int8),
            pay_status=np.where(short, 0, 1).astype(np.int8),
        )
        sc = build_cells(pr2)
        short_cells = dataclasses.replace(
            sc,
            has_high=False,
            has_low=True,
            low_first=True,
            fixed_before_thresholds=True,
            fixed_cap_bound=False,
            fixed_cap_ratio=0.0,
        )
        short_hosp = sc.hfm // (N_FUNDS * MONTHS)
    return BehaviourCells(
        cells=cells,
        hosp=cells.hfm // (N_FUNDS * MONTHS),
        has_sib=has,
        sib_P=sP,
        sib_m=sm,
        sib_rw=srw,
        fixed_other=sum_of(other),
        fixed_linear=sum_of(lin),
        short=short_cells,
        short_hosp=short_hosp,
        hospital_ids=np.asarray(c.hospital_ids),
        hosp_level=hosp_level,
    )


def _cell_params(
    cells: Cells, rw: np.ndarray, thr: list[dict], P: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """Per cell k (by ``rw``'s tier), low-cost factor, β, cap (−1: none), extreme (−1:
    none), inclusive, and the multipliers Pc, Lo, Hb, Hp for base points ``P`` (default the
    cells' own): :func:`~drgsim.pricing.cells.cell_params`, as ``cell_points`` sets them."""
    _check_repriceable(cells, thr)
    return cell_params(cells, rw, cells.P if P is None else P, thr)


@nb.njit(cache=True)
def _positions(
    cost, a, b, mj, Pj, Lo, Hb, Hp, kj, low, beta, cap, ext, incl, has_high, has_low, low_first
):  # pragma: no cover - numba
    """Where a cell's sorted costs change case type, as ``_cell_kernel`` finds them: the
    end of the low-cost cases, the start of the high-cost ones, the ends of the capped
    low-cost and the start of the capped high-cost, and the start of the extreme zone
    (DIP at coefficient mode: paid as normal; ``b`` without one)."""
    capP = cap * Pj
    lo_mode = 0 if incl else 1  # the first case that is not low-cost (strict or inclusive)
    hi_mode = 1 if incl else 0  # the first high-cost case
    lo_end = _first(cost, a, b, mj, lo_mode, low, Lo, Hb, Hp, kj, beta) if has_low else a
    hi_start = _first(cost, a, b, mj, hi_mode, kj, Lo, Hb, Hp, kj, beta) if has_high else b
    if lo_end > hi_start:  # both predicates hold: the first in the precedence wins
        if low_first:
            hi_start = lo_end
        else:
            lo_end = hi_start
    ex = b
    if ext >= 0.0:
        ex = _first(cost, max(hi_start, lo_end), b, mj, 0, ext, Lo, Hb, Hp, kj, beta)
    lc = lo_end
    hc = ex
    if cap >= 0.0:
        lc = _first(cost, a, lo_end, mj, 2, capP, Lo, Hb, Hp, kj, beta)
        hc = _first(cost, hi_start, ex, mj, 3, capP, Lo, Hb, Hp, kj, beta)
    return lo_end, hi_start, lc, hc, ex


@nb.njit(cache=True)
def _linear(
    cum, a, b, m0, Pj, Pc, Lo, Hb, Hp, kj, beta, cap, fj, lo_end, hi_start, lc, hc, ex
):  # pragma: no cover - numba
    """A cell's points at positions found by :func:`_positions` as ``C + L × factor``:
    with the cases' types fixed, low-cost and high-cost points are linear in the cost
    factor (``Lo × Σcost × factor / m``, ``Hb n + Hp β (Σcost × factor / m − k n)``);
    normal and extreme-zone cases pay ``Pc`` (capped)."""
    capP = cap * Pj
    pn = Pc
    if cap >= 0.0 and capP < Pc:
        pn = capP
    C = pn * (hi_start - lo_end + b - ex)
    if cap >= 0.0:
        C += capP * (lo_end - lc) + capP * (ex - hc)
    nh = hc - hi_start
    C += Hb * nh - Hp * beta * kj * nh
    L = (Lo * (cum[lc] - cum[a]) + Hp * beta * (cum[hc] - cum[hi_start])) / m0
    return C * fj, L * fj


@nb.njit(cache=True)
def _cell_draws(
    cost, cum, a, b, Pj, Pc, Lo, Hb, Hp, m0, kj, low, beta, cap, ext, incl, fj, hh, hl, lf, fi,
    out,
):  # pragma: no cover - numba
    """One cell's points in every draw (``fi``: the draws' inflation factors of its
    hospital) into ``out``. The cases' types are found once when the smallest and the
    largest factor give the same (the predicates are monotone in the factor; each is
    ``cost / (m / factor)``, row pricing's expression), else per draw."""
    D = len(fi)
    if not (m0 > 0.0):  # no reference cost: every case is normal (as in row pricing)
        pn = min(Pc, cap * Pj) if cap >= 0.0 else Pc
        v = pn * (b - a) * fj
        for d in range(D):
            out[d] = v
        return
    fmin, fmax = fi[0], fi[0]
    for d in range(1, D):
        fmin = min(fmin, fi[d])
        fmax = max(fmax, fi[d])
    p0 = _positions(
        cost, a, b, m0 / fmin, Pj, Lo, Hb, Hp, kj, low, beta, cap, ext, incl, hh, hl, lf
    )
    p1 = _positions(
        cost, a, b, m0 / fmax, Pj, Lo, Hb, Hp, kj, low, beta, cap, ext, incl, hh, hl, lf
    )
    if p0 == p1:
        C, L = _linear(cum, a, b, m0, Pj, Pc, Lo, Hb, Hp, kj, beta, cap, fj, *p0)
        for d in range(D):
            out[d] = C + L * fi[d]
        return
    for d in range(D):
        p = _positions(
            cost, a, b, m0 / fi[d], Pj, Lo, Hb, Hp, kj, low, beta, cap, ext, incl, hh, hl, lf
        )
        C, L = _linear(cum, a, b, m0, Pj, Pc, Lo, Hb, Hp, kj, beta, cap, fj, *p)
        out[d] = C + L * fi[d]


@nb.njit(cache=True)
def _draws_kernel(
    cost, cum, start, hfm, hosp, f, P, m, prm, P2, m2, prm2, two, low, beta, cap, ext, incl,
    has_high, has_low, low_first, fiT, own, dlt, pre, pC, pL, pre2, pC2, pL2,
):  # pragma: no cover - numba
    """Every cell in every draw: its points summed into ``own[hfm, draw]`` in cell order
    (as ``np.bincount`` sums them), and for cells with ``two`` (creeping) what pricing at
    the second weights (``P2``, ``m2``; ``prm2``) adds, into ``dlt``. ``prm``: per cell the
    rows k, Pc, Lo, Hb, Hp (:func:`_cell_params`). ``fiT``: (H, draws). Cells with ``pre``
    (``pre2``) set keep their types over every draw: ``C + L × factor`` from ``pC``,
    ``pL`` (:func:`_stable_kernel`), with no search."""
    D = fiT.shape[1]
    t1 = np.empty(D)
    t2 = np.empty(D)
    for j in range(len(P)):
        a, b = start[j], start[j + 1]
        fi = fiT[hosp[j]]
        if pre[j]:
            for d in range(D):
                t1[d] = pC[j] + pL[j] * fi[d]
        else:
            _cell_draws(
                cost, cum, a, b, P[j], prm[1, j], prm[2, j], prm[3, j], prm[4, j], m[j],
                prm[0, j], low[j], beta[j], cap[j], ext[j], incl[j], f[j],
                has_high, has_low, low_first, fi, t1,
            )  # fmt: skip
        row = own[hfm[j]]
        for d in range(D):
            row[d] += t1[d]
        if two[j]:
            if pre2[j]:
                for d in range(D):
                    t2[d] = pC2[j] + pL2[j] * fi[d]
            else:
                _cell_draws(
                    cost, cum, a, b, P2[j], prm2[1, j], prm2[2, j], prm2[3, j], prm2[4, j],
                    m2[j], prm2[0, j], low[j], beta[j], cap[j], ext[j], incl[j], f[j],
                    has_high, has_low, low_first, fi, t2,
                )  # fmt: skip
            row2 = dlt[hfm[j]]
            for d in range(D):
                row2[d] += t2[d] - t1[d]


@nb.njit(cache=True)
def _stable_kernel(
    cost, cum, start, hosp, f, P, m, prm, low, beta, cap, ext, incl,
    has_high, has_low, low_first, fmin, fmax, pre, pC, pL,
):  # pragma: no cover - numba
    """Per cell: whether its cases keep their types for every factor in its hospital's
    [``fmin``, ``fmax``] (the types at both ends agree; the predicates are monotone in
    the factor), and then its ``C``, ``L`` (:func:`_linear`), found once for all draws."""
    for j in range(len(P)):
        m0 = m[j]
        if not (m0 > 0.0):
            continue  # priced without a search anyway
        a, b = start[j], start[j + 1]
        h = hosp[j]
        Pj = P[j]
        kj, Pc, Lo, Hb, Hp = prm[0, j], prm[1, j], prm[2, j], prm[3, j], prm[4, j]
        p0 = _positions(
            cost, a, b, m0 / fmin[h], Pj, Lo, Hb, Hp, kj, low[j], beta[j], cap[j], ext[j],
            incl[j], has_high, has_low, low_first,
        )  # fmt: skip
        p1 = _positions(
            cost, a, b, m0 / fmax[h], Pj, Lo, Hb, Hp, kj, low[j], beta[j], cap[j], ext[j],
            incl[j], has_high, has_low, low_first,
        )  # fmt: skip
        if p0 == p1:
            pre[j] = True
            pC[j], pL[j] = _linear(
                cum, a, b, m0, Pj, Pc, Lo, Hb, Hp, kj, beta[j], cap[j], f[j], *p0
            )


DRAW_BLOCK = 256  # distinct inflations priced together (bounds the kernel's buffers)


def _params_of(
    cells: Cells, rw: np.ndarray, thr: list[dict], P: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """:func:`_cell_params` packed for the kernels: (rows k, Pc, Lo, Hb, Hp as a (5, n)
    array, low, β, cap, extreme, inclusive)."""
    k, low, beta, cap, ext, incl, Pc, Lo, Hb, Hp = _cell_params(cells, rw, thr, P)
    M = np.ascontiguousarray(np.stack([k, Pc, Lo, Hb, Hp]).reshape(5, len(k)))
    return M, low, beta, cap, ext, incl


def _stable_all(
    bc: BehaviourCells, own_p: tuple, sib_p: tuple, short_p: Any, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, ...]:
    """:func:`_stable_kernel` for the cells at their own DRG, at the sibling's weights,
    and for the short-stay cells: (flags, C, L) three times."""
    cells = bc.cells

    def one(cl: Cells, hosp: np.ndarray, P, m, prm: tuple) -> tuple[np.ndarray, ...]:
        n = len(cl.P)
        out = (np.zeros(n, np.bool_), np.zeros(n), np.zeros(n))
        _stable_kernel(
            cl.cost, cl.cum, cl.start, hosp, cl.f, P, m, *prm,
            cl.has_high, cl.has_low, cl.low_first, lo, hi, *out,
        )  # fmt: skip
        return out

    own = one(cells, bc.hosp, cells.P, cells.m, own_p)
    sib = one(cells, bc.hosp, bc.sib_P, bc.sib_m, (sib_p[0], *own_p[1:]))
    if bc.short is None:
        short = (np.zeros(0, np.bool_), np.zeros(0), np.zeros(0))
    else:
        sh = bc.short
        short = one(sh, bc.short_hosp, sh.P, sh.m, short_p)
    return (*own, *sib, *short)


def _short_thresholds(thr: list[dict]) -> list[dict]:
    """Short stays priced as low cost: P c min(r, 1), a strict low-cost factor of 1 on
    P c with no extreme zone, under DRG and DIP alike (pricing's ``normal × min(r, 1)``)."""
    return [{**t, "low": 1.0, "inclusive": False, "extreme": None, "dip": False} for t in thr]


def _priced_cells_draws(
    bc: BehaviourCells,
    infl: np.ndarray,
    thr: list[dict],
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per draw and hfm at inflation factors ``infl`` (draws, H) and thresholds ``thr``:
    the points without creep (threshold cells at their own DRG, fixed points, short
    stays) and what a full creep adds (sibling minus own, creeping cells). Each distinct row of factors is priced once
    (draws of volume or creep alone re-price no cell); cells in one kernel pass per block
    of draws, no loop over draws in Python."""
    cells = bc.cells
    n_hfm = cells.n_hfm
    D, H = infl.shape
    rows = np.ascontiguousarray(infl).view(np.dtype((np.void, H * 8))).ravel()
    _, first, inv = np.unique(rows, return_index=True, return_inverse=True)
    uniq, inv = (infl[first], inv.ravel()) if len(first) < D or D == 1 else (infl, None)
    key = json.dumps(thr, sort_keys=True, default=str)
    prm = bc.cache.get(("params", key))
    if prm is None:
        own_p = _params_of(cells, cells.rw, thr)
        sib_p = _params_of(cells, bc.sib_rw, thr, bc.sib_P)
        short_p = None
        if bc.short is not None:
            short_p = _params_of(bc.short, bc.short.rw, _short_thresholds(thr))
        prm = (own_p, sib_p, short_p)
        if len(bc.cache) >= CACHE_SIZE:
            bc.cache.pop(next(iter(bc.cache)))
        bc.cache[("params", key)] = prm
    own_p, sib_p, short_p = prm
    nc = len(cells.P)
    ns = 0 if bc.short is None else len(bc.short.P)
    none = (np.zeros(nc, np.bool_), np.zeros(nc), np.zeros(nc))
    pre = (*none, *none, np.zeros(ns, np.bool_), np.zeros(ns), np.zeros(ns))
    if bounds is not None:  # cells whose types hold over every draw of the group: once
        lo, hi = (np.ascontiguousarray(x, dtype=np.float64) for x in bounds)
        pkey = ("stable", key, lo.tobytes(), hi.tobytes())
        pre = bc.cache.get(pkey)
        if pre is None:
            pre = _stable_all(bc, own_p, sib_p, short_p, lo, hi)
            if len(bc.cache) >= CACHE_SIZE:
                bc.cache.pop(next(iter(bc.cache)))
            bc.cache[pkey] = pre
    U_ = len(uniq)
    one_key = ("one", key, uniq.tobytes()) if U_ == 1 else None
    if one_key is not None and one_key in bc.cache:  # draws of volume or creep alone
        own1, dlt1 = bc.cache[one_key]
        return np.broadcast_to(own1, (D, n_hfm)), np.broadcast_to(dlt1, (D, n_hfm))
    own_u = np.empty((U_, n_hfm))
    dlt_u = np.zeros((U_, n_hfm))
    lin = bc.fixed_linear.reshape(H, N_FUNDS * MONTHS)
    for a in range(0, U_, DRAW_BLOCK):
        blk = uniq[a : a + DRAW_BLOCK]
        fiT = np.ascontiguousarray(blk.T)
        own = np.zeros((n_hfm, len(blk)))
        dlt = np.zeros((n_hfm, len(blk)))
        _draws_kernel(
            cells.cost, cells.cum, cells.start, cells.hfm, bc.hosp, cells.f,
            cells.P, cells.m, own_p[0], bc.sib_P, bc.sib_m, sib_p[0], bc.has_sib,
            *own_p[1:], cells.has_high, cells.has_low, cells.low_first,
            fiT, own, dlt, *pre[:6],
        )  # fmt: skip
        o = own.T + bc.fixed_other
        o = (o.reshape(len(blk), H, -1) + lin * blk[:, :, None]).reshape(len(blk), n_hfm)
        if bc.short is not None:
            sh = bc.short
            so = np.zeros((n_hfm, len(blk)))
            _draws_kernel(
                sh.cost, sh.cum, sh.start, sh.hfm, bc.short_hosp, sh.f,
                sh.P, sh.m, short_p[0], sh.P, sh.m, short_p[0],
                np.zeros(len(sh.P), np.bool_), *short_p[1:],
                sh.has_high, sh.has_low, sh.low_first,
                fiT, so, np.zeros((0, 0)), *pre[6:], *pre[6:],
            )  # fmt: skip
            o = o + so.T
        own_u[a : a + len(blk)] = o
        if bc.has_sib.any():
            dlt_u[a : a + len(blk)] = dlt.T
    if one_key is not None:
        if len(bc.cache) >= CACHE_SIZE:
            bc.cache.pop(next(iter(bc.cache)))
        bc.cache[one_key] = (own_u, dlt_u)
        return np.broadcast_to(own_u, (D, n_hfm)), np.broadcast_to(dlt_u, (D, n_hfm))
    if inv is None:
        return own_u, dlt_u
    return own_u[inv], dlt_u[inv]


def apply_cells(
    bc: BehaviourCells,
    values: Mapping[str, float | np.ndarray],
    hosp_level: np.ndarray | None = None,
    policy: dict | YearPolicy | None = None,
    draw: int = 0,
) -> Totals:
    """:func:`apply_rows` on the cells: the cells re-priced with the deflated reference
    means (cost inflation) and the siblings' weights (coding creep), scaled by volume; no
    case row is touched. ``policy``: outlier thresholds (default: as built). Raises
    :class:`~drgsim.pricing.cells.CellsError` where the cells cannot re-price exactly."""

    def one(v: float | np.ndarray) -> np.ndarray:
        a = np.asarray(v, dtype=np.float64)
        return a.reshape(1) if a.ndim == 0 else a[draw : draw + 1]

    t = apply_cells_stacked(bc, {k: one(v) for k, v in values.items()}, hosp_level, policy)
    return Totals(
        t.points[0], t.cost_fen[0], t.share_fen[0], t.cases[0], t.outside_fen[0], t.n_hosp
    )


def apply_cells_stacked(
    bc: BehaviourCells,
    drawn: Mapping[str, np.ndarray],
    hosp_level: np.ndarray | None = None,
    policy: dict | YearPolicy | None = None,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
    hv: Mapping[str, np.ndarray] | None = None,
) -> Totals:
    """:func:`apply_cells` of every draw of ``drawn`` at once: a :class:`Totals` whose
    arrays have a leading draw axis (draws, hfm) and (draws, hospital × fund); each draw
    equals :func:`apply_cells` of that draw to the last bit. ``bounds``: per hospital the
    smallest and largest inflation factor of every draw to come (blocks of one Monte Carlo
    run): the cells that keep their types over that range are found once. ``hv``: the
    per-hospital values (:func:`hospital_values_draws`) already resolved, e.g. on a
    distributed run's driver against every hospital (a partition holds only some)."""
    cells = bc.cells
    H = cells.n_hosp
    lv = bc.hosp_level if hosp_level is None else hosp_level
    hv = hospital_values_draws(drawn, bc.hospital_ids, lv) if hv is None else hv
    vol, infl, creep = _factors(hv)  # (draws, H)
    if policy is None:
        thr = list(cells.built_segments)
    else:
        thr = [_thresholds(p) for p in segments_on(cells, as_year_policy(policy))]
    own_h, dlt_h = _priced_cells_draws(bc, infl, thr, bounds)
    D, n_hfm = own_h.shape
    per = (D, H, N_FUNDS * MONTHS)  # per hospital factors broadcast over its hfm
    total = own_h.reshape(per) + creep[:, :, None] * dlt_h.reshape(per)
    ratio = vol * infl  # per hospital, as the per-hfm product (the same two factors)
    return Totals(
        points=(total * vol[:, :, None]).reshape(D, n_hfm),
        cost_fen=_money_draws(cells.cost_fen, ratio),
        share_fen=_money_draws(cells.share_fen, ratio),
        cases=(cells.cases.reshape(H, -1) * vol[:, :, None]).reshape(D, n_hfm),
        outside_fen=_money_draws(cells.outside_fen, vol),
        n_hosp=H,
    )


def apply_cells_draws(
    bc: BehaviourCells,
    drawn: Mapping[str, np.ndarray],
    hosp_level: np.ndarray | None = None,
    policy: dict | YearPolicy | None = None,
) -> list[Totals]:
    """:func:`apply_cells` for every draw of ``drawn`` (from :func:`draw_values`), all
    draws priced at once (:func:`apply_cells_stacked`); one :class:`Totals` view per draw."""
    t = apply_cells_stacked(bc, drawn, hosp_level, policy)
    return [
        Totals(t.points[d], t.cost_fen[d], t.share_fen[d], t.cases[d], t.outside_fen[d], H)
        for d, H in ((d, t.n_hosp) for d in range(len(t.points)))
    ]


def stack_fund(totals: list[Totals], fund: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points, share_fen, cost_fen) of ``fund`` as (draws, H, 12) arrays, the shape
    :func:`~drgsim.settlement.scenarios.settle_scenarios` takes."""
    parts = [t.fund(fund) for t in totals]
    return tuple(np.stack([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


def route(b: Behaviour) -> tuple[str, str]:
    """The route a behaviour needs and why: ``("rows", ...)`` for a LOS change, else
    ``("cells", ...)`` when any assumption is given, ``("settlement", "")`` for none."""
    if b.needs_rows:
        return "rows", "los_change: the cases are priced again (cells hold no LOS)"
    if b:
        return "cells", "behaviour on the cells: " + ", ".join(sorted(b.items))
    return "settlement", ""


# -------------------------------------------------------------------------------- LOS


def apply_los(
    cases: pd.DataFrame, factor: float, columns: dict[str, str] | None = None
) -> pd.DataFrame:
    """The cases with every LOS ``max(1, half_up(los × factor))`` (exact: the factor kept
    to millionths) and the admission date moved to discharge − LOS; a copy. Rows without a
    LOS or a discharge date keep theirs. The result is priced again (the rows route)."""
    from drgsim.pricing.cases import _col

    if not _in_domain("los_change", factor):
        raise ScenarioError(
            [Problem("behaviour", None, "los_change", f"{factor:g} is outside (0, inf)")]
        )
    out = cases.copy()
    lcol = _col(out, "los_days", columns)
    dcol = _col(out, "discharge_date", columns)
    acol = _col(out, "admit_date", columns)
    disch = pd.to_datetime(out[dcol], errors="coerce") if dcol else None
    if lcol is not None:
        los = pd.to_numeric(out[lcol], errors="coerce")
    elif acol is not None and disch is not None:
        los = (disch - pd.to_datetime(out[acol], errors="coerce")).dt.days
    else:
        raise ScenarioError(
            [
                Problem(
                    "behaviour", None, "los_change", "the cases have no LOS and no admission date"
                )
            ]
        )
    q = int(round(float(factor) * 1_000_000))
    have = (los.notna() & (los >= 0)).to_numpy()
    li = los.fillna(0).clip(lower=0).to_numpy(dtype=np.float64).astype(np.int64)
    new = np.maximum(1, (2 * li * q + 1_000_000) // 2_000_000)  # half-up, exact integers
    if lcol is not None:
        col = pd.array(np.where(have, new, 0), dtype="Int64")
        col[~have] = pd.NA
        out[lcol] = col if (~have).any() else new
    if acol is not None and disch is not None:
        ok = have & disch.notna().to_numpy()
        moved = disch - pd.to_timedelta(np.where(ok, new, 0), unit="D")
        col = (
            out[acol].astype(object)
            if not pd.api.types.is_datetime64_any_dtype(out[acol])
            else out[acol]
        )
        col = col.copy()
        col[ok] = moved[ok]
        out[acol] = col
    return out


def severity_path(siblings: Mapping[str, str], drg: str) -> list[str]:
    """``drg`` and its ever more severe siblings (for explanations: ['PK15', 'PK13', 'PK11'])."""
    out = [drg]
    while out[-1] in siblings and siblings[out[-1]] not in out:
        out.append(siblings[out[-1]])
    return out
