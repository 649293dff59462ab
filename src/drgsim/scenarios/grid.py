"""Scenario grids and overlays: which policies a sweep settles.

A scenario is an *overlay*: dotted policy keys with a value, or dated values
(``{"2024-07-01": 0.8}``: from that day on), applied to the dated baseline policy and
validated as a policy file is (:meth:`drgsim.policy.Policy.with_values`). A :class:`Grid`
expands axes of values into overlays (Cartesian by default, zipped on request); ``*`` in
a key expands over the funds and over the entries of dict-valued parameters
(``coefficients.by_level.*``). Keys starting with ``behaviour.`` are behaviour assumptions
(DOMAIN.md §5), not policy keys. Unknown keys fail in one line with a "did you mean".
"""

from __future__ import annotations

import datetime as dt
import difflib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from drgsim.errors import DrgsimError, Problem, ValidationError
from drgsim.policy.dated import YearPolicy, resolve_year
from drgsim.policy.loader import Policy, PolicyError, _check_value, _cross_checks, _spec_for
from drgsim.policy.schema import FUNDS, SCHEMA, Param, level_of

BEHAVIOUR = "behaviour."
LEVEL_ALIASES = {"三": "3", "二": "2", "一": "1"}


class GridError(ValidationError):
    """Scenario keys or values that cannot make scenarios (unknown key, bad range, unequal
    zipped axes); one line naming the key and, for a typo, the nearest known key."""

    kind = "scenarios"

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        DrgsimError.__init__(self, "; ".join(str(p) for p in self.problems))


def _leaves(tree: dict, prefix: str = "") -> dict[str, Param]:
    out: dict[str, Param] = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, Param):
            out[key] = v
        else:
            out.update(_leaves(v, key))
    return out


LEAVES = _leaves(SCHEMA)


def known_keys() -> list[str]:
    """Every settable dotted key, with ``budget.*.x`` for the per-fund ones."""
    keys = set(LEAVES)
    for k in LEAVES:
        parts = k.split(".")
        if len(parts) > 2 and parts[1] in FUNDS:
            keys.add(".".join([parts[0], "*", *parts[2:]]))
    return sorted(keys)


def _suggest(key: str) -> str:
    cands = known_keys()
    best = difflib.get_close_matches(key, cands, n=1, cutoff=0.5)
    if not best:  # a key missing its fund: budget.growth -> budget.*.growth
        tail = key.split(".")[-1]
        same = [c for c in cands if c.split(".")[-1] == tail and "*" in c]
        best = same[:1]
    return f" (did you mean {best[0]}?)" if best else ""


def _entry_key(key: str) -> tuple[str, str] | None:
    """``coefficients.by_level.三级`` -> (``coefficients.by_level``, ``3``): an entry of a
    dict-valued parameter; None when ``key`` is not one."""
    parent, _, entry = key.rpartition(".")
    spec = LEAVES.get(parent)
    if spec is None or spec.kind != "map_float" or not entry:
        return None
    if parent == "coefficients.by_level":
        e = entry
        for k, v in LEVEL_ALIASES.items():
            e = e.replace(k, v)
        m = re.fullmatch(r"(\d)(级)?", e)
        entry = m.group(1) if m else entry
    return parent, entry


def expand_key(key: str, policy: Policy | None = None) -> list[str]:
    """The concrete keys a grid key stands for (``*`` over funds or dict entries)."""
    if key.startswith(BEHAVIOUR) or "*" not in key:
        return [key]
    parts = key.split(".")
    i = parts.index("*")
    head = ".".join(parts[:i])
    if head == "budget" or (head == "point_value.bounds.budgeted_pv_yuan"):
        subs = list(FUNDS)
    elif LEAVES.get(head) is not None and LEAVES[head].kind == "map_float":
        if policy is None:
            raise GridError([Problem("<scenarios>", None, key, "needs the policy to expand *")])
        vals = [v for _, v in policy.params.get(head, []) if v]
        subs = list(dict.fromkeys(k for v in vals for k in v))
        if not subs:
            raise GridError(
                [Problem("<scenarios>", None, key, f"{head} has no entries to expand * over")]
            )
    else:
        raise GridError(
            [
                Problem(
                    "<scenarios>",
                    None,
                    key,
                    "* expands over funds (budget.*) or the "
                    "entries of a dict-valued parameter (coefficients.by_level.*)",
                )
            ]
        )
    out = []
    for s in subs:
        out += expand_key(".".join([*parts[:i], s, *parts[i + 1 :]]), policy)
    return out


def check_keys(keys: Any, policy: Policy | None = None) -> list[str]:
    """Check scenario keys against the policy schema; returns the concrete keys.

    Raises :class:`GridError` (one line) naming every unknown key with the nearest known
    one. ``behaviour.*`` keys are checked by the behaviour module when it is installed.
    """
    problems, out = [], []
    for key in keys:
        key = str(key)
        if key.startswith(BEHAVIOUR):
            out.append(key)
            continue
        try:
            concrete = expand_key(key, policy)
        except GridError as e:
            problems += e.problems
            continue
        for k in concrete:
            if _spec_for(k) is None and _entry_key(k) is None:
                problems.append(Problem("<scenarios>", None, k, "unknown key" + _suggest(k)))
            else:
                out.append(k)
    if problems:
        raise GridError(problems)
    return out


# ---------------------------------------------------------------- values and axes


def _is_date(x: Any) -> bool:
    if isinstance(x, (dt.date, pd.Timestamp)):
        return True
    try:
        dt.date.fromisoformat(str(x))
        return True
    except ValueError:
        return False


def is_dated(v: Any) -> bool:
    """A dict of ``{date: value}`` (a change on a day), not a dict-valued parameter."""
    return isinstance(v, dict) and bool(v) and all(_is_date(k) for k in v)


def axis_values(key: str, spec: Any) -> list[Any]:
    """An axis's values: a list, ``{min, max, count}`` or ``"a:b:step"`` (b included)."""
    if isinstance(spec, dict) and {"min", "max", "count"} <= set(spec) and not is_dated(spec):
        extra = set(spec) - {"min", "max", "count"}
        try:
            lo, hi, n = float(spec["min"]), float(spec["max"]), spec["count"]
            ok = isinstance(n, (int, np.integer)) and n >= 1 and lo <= hi and not extra
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise GridError(
                [
                    Problem(
                        "<scenarios>",
                        None,
                        key,
                        f"{spec}: a range is {{min, max, count}} "
                        "with min <= max and a whole count >= 1",
                    )
                ]
            )
        return [round(float(x), 12) for x in np.linspace(lo, hi, int(n))]
    if isinstance(spec, str) and spec.count(":") == 2:
        try:
            a, b, step = (float(x) for x in spec.split(":"))
        except ValueError:
            a = b = step = math.nan
        if not (step > 0 and a <= b):
            raise GridError(
                [
                    Problem(
                        "<scenarios>",
                        None,
                        key,
                        f"{spec!r}: a range is 'a:b:step' with a <= b and step > 0",
                    )
                ]
            )
        n = int(math.floor((b - a) / step + 1e-9)) + 1
        return [round(a + i * step, 12) for i in range(n)]
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise GridError([Problem("<scenarios>", None, key, "an axis needs values")])
        return list(spec)
    if isinstance(spec, np.ndarray):
        return spec.tolist()
    return [spec]


@dataclass
class Grid:
    """Axes of scenario values: Cartesian by default; ``zip=True`` zips every axis,
    ``zip=[[a, b], ...]`` zips each group (groups Cartesian with the other axes).

    ``Grid({"budget.*.growth": [0.02, 0.04], "high_cost.beta": "0.8:1.0:0.1"})``.
    """

    axes: dict[str, Any]
    zip: bool | list[list[str]] = False
    names: list[str] = field(default_factory=list)

    def values(self) -> dict[str, list[Any]]:
        return {k: axis_values(k, v) for k, v in self.axes.items()}

    def scenarios(self) -> list[dict]:
        """The overlays (axis key -> value), the baseline ``{}`` first."""
        vals = self.values()
        groups: list[list[str]]
        if self.zip is True:
            groups = [list(vals)]
        elif self.zip:
            groups = [list(g) for g in self.zip]
        else:
            groups = []
        problems = []
        zipped = set()
        for g in groups:
            for k in g:
                if k not in vals:
                    problems.append(
                        Problem("<scenarios>", None, k, "zip names a key the grid does not have")
                    )
                if k in zipped:
                    problems.append(Problem("<scenarios>", None, k, "zipped twice"))
                zipped.add(k)
            lens = {k: len(vals[k]) for k in g if k in vals}
            if len(set(lens.values())) > 1:
                problems.append(
                    Problem(
                        "<scenarios>",
                        None,
                        ", ".join(g),
                        "zipped axes differ in length ("
                        + ", ".join(f"{k}: {n}" for k, n in lens.items())
                        + ")",
                    )
                )
        if problems:
            raise GridError(problems)
        blocks: list[list[dict]] = []
        for g in groups:
            blocks.append(
                [dict(zip(g, row, strict=True)) for row in zip(*(vals[k] for k in g), strict=True)]
            )
        for k, v in vals.items():
            if k not in zipped:
                blocks.append([{k: x} for x in v])
        out: list[dict] = [{}]
        for combo in itertools.product(*blocks):
            o: dict = {}
            for part in combo:
                o.update(part)
            out.append({k: o[k] for k in self.axes if k in o})
        return out


def scenario_name(overlay: dict) -> str:
    """A short readable name: ``key=value, ...`` (``baseline`` for no change)."""
    if not overlay:
        return "baseline"
    return ", ".join(f"{k}={_show(v)}" for k, v in overlay.items())


def _show(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_show(x)}" for k, x in v.items()) + "}"
    return str(v)


def to_json(overlay: dict) -> str:
    """The overlay as JSON text (dates as ISO strings)."""
    return json.dumps(overlay, ensure_ascii=False, sort_keys=False, default=str)


def as_overlays(scenarios: Any) -> tuple[list[dict], list[str], list[str]]:
    """Any accepted ``scenarios`` -> (overlays with the baseline first, names, axis keys)."""
    names: list[str] = []
    if isinstance(scenarios, Grid):
        ov = scenarios.scenarios()
        axes = list(scenarios.axes)
        names = list(scenarios.names)
    elif isinstance(scenarios, pd.DataFrame):
        axes = [str(c) for c in scenarios.columns if c != "name"]
        ov = [{}]
        for _, row in scenarios.iterrows():
            ov.append({k: _plain(row[k]) for k in axes if not _missing(row[k])})
        if "name" in scenarios.columns:
            names = ["baseline", *[str(x) for x in scenarios["name"]]]
    elif isinstance(scenarios, dict):
        return as_overlays(Grid(scenarios))
    elif isinstance(scenarios, (list, tuple)):
        ov = [{}]
        given = []
        for i, o in enumerate(scenarios):
            if not isinstance(o, dict):
                raise GridError(
                    [Problem("<scenarios>", None, f"[{i}]", "an overlay is a dict of dotted keys")]
                )
            o = dict(o)
            given.append(str(o.pop("name")) if "name" in o else None)
            ov.append(o)
        axes = list(dict.fromkeys(k for o in ov for k in o))
        if any(g is not None for g in given):
            names = [
                "baseline",
                *[g or scenario_name(o) for g, o in zip(given, ov[1:], strict=True)],
            ]
    else:
        raise GridError(
            [
                Problem(
                    "<scenarios>",
                    None,
                    None,
                    f"cannot make scenarios of a "
                    f"{type(scenarios).__name__}: give a Grid, a list of "
                    "overlays, a DataFrame or a scenario file",
                )
            ]
        )
    if len(ov) > 1 and ov[1] == {}:  # the baseline given explicitly
        ov = ov[1:]
        names = names[1:] if names else names
    if len(names) != len(ov):
        names = [scenario_name(o) for o in ov]
    names[0] = "baseline" if not ov[0] else names[0]
    return ov, names, axes


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


# ---------------------------------------------------------------- overlay -> policy


def split_behaviour(overlay: dict) -> tuple[dict, dict]:
    """(policy keys, behaviour assumptions without the ``behaviour.`` prefix)."""
    pol = {k: v for k, v in overlay.items() if not k.startswith(BEHAVIOUR)}
    beh = {k[len(BEHAVIOUR) :]: v for k, v in overlay.items() if k.startswith(BEHAVIOUR)}
    return pol, beh


def overlaid_policy(policy: Policy, overlay: dict) -> Policy:
    """The baseline with the overlay's policy keys, validated (behaviour keys ignored here).

    Plain values hold from the start; dated values ``{date: value}`` from their day on.
    Entries of dict-valued parameters (``coefficients.by_level.3``) replace that entry of
    the value in force.
    """
    pol_keys, _ = split_behaviour(overlay)
    if not pol_keys:
        return policy
    concrete: dict[str, Any] = {}
    for k, v in pol_keys.items():
        for c in check_keys([k], policy):
            concrete[c] = v
    by_day: dict[str, dict[str, Any]] = {}
    entries: dict[tuple[str, str], dict[str, float]] = {}
    for k, v in concrete.items():
        dated = (
            {str(pd.Timestamp(d).date()): x for d, x in v.items()}
            if is_dated(v)
            else {"1900-01-01": v}
        )
        ent = _entry_key(k) if _spec_for(k) is None else None
        for day, x in dated.items():
            if ent is None:
                by_day.setdefault(day, {})[k] = x
            else:
                entries.setdefault((day, ent[0]), {})[ent[1]] = x
    out = policy
    for day in sorted(by_day):
        out = out.with_values(by_day[day], day)
    for (day, parent), ents in sorted(entries.items()):
        if day == "1900-01-01":  # the entry changed in every value of the parameter
            days = [d for d, _ in out.params[parent]]
        else:
            days = [dt.date.fromisoformat(day)]
        for d in days:
            node: Any = out.at(d)
            for p in parent.split("."):
                node = node[p]
            out = out.with_values({parent: {**(node or {}), **ents}}, d)
    return out


def _put(tree: dict, values: dict[str, Any]) -> dict:
    """``tree`` with the dotted keys set, copying only the dicts along their paths."""
    out = dict(tree)
    for key, v in values.items():
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            node[p] = dict(node[p])
            node = node[p]
        node[parts[-1]] = v
    return out


def overlaid_year(policy: Policy, yp: YearPolicy, overlay: dict) -> tuple[Policy, YearPolicy]:
    """The overlaid policy and its resolved year, as ``overlaid_policy`` then
    ``resolve_year`` give them. Plain values of schema keys (in force all year, so the
    same in every segment and month) are validated as ``with_values`` does and set on the
    baseline's resolved year without copying the whole policy; dated values and entries
    of dict-valued parameters take the general path."""
    pol_keys, _ = split_behaviour(overlay)
    if not pol_keys:
        return policy, yp
    concrete: dict[str, Any] = {}
    for k, v in pol_keys.items():
        for c in check_keys([k], policy):
            # a case-level value set all year in a year the baseline splits into dated
            # segments may merge them: the general path resolves the segments afresh
            merge = yp.dated and level_of(c) == "case"
            if is_dated(v) or _spec_for(c) is None or merge:
                pol = overlaid_policy(policy, overlay)
                return pol, resolve_year(pol, yp.year)
            concrete[c] = v
    problems: list[Problem] = []
    params = dict(policy.params)
    vals = {}
    for k, v in concrete.items():
        vals[k] = _check_value(_spec_for(k), v, "<overlay>", None, k, problems)  # type: ignore[arg-type]
        params[k] = [(dt.date(1900, 1, 1), vals[k])]
    if not problems:
        _cross_checks(params, "<overlay>", problems)
    if problems:
        raise PolicyError(problems)
    pol = Policy(policy.name + "+overlay", policy.source, params, policy.scheme, "")
    pv = _put(yp.pv, vals)
    segs = [pv if s is yp.pv else _put(s, vals) for s in yp.segments]
    months = [pv if m is yp.pv else _put(m, vals) for m in yp.months]
    return pol, YearPolicy(yp.year, pv, yp.starts, segs, months)


__all__ = [
    "Grid",
    "GridError",
    "as_overlays",
    "axis_values",
    "check_keys",
    "expand_key",
    "known_keys",
    "overlaid_policy",
    "overlaid_year",
    "scenario_name",
    "split_behaviour",
]
