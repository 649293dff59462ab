"""Scenario files: a sweep written down as YAML, validated before any work.

```yaml
name: budget_and_beta
base: baseline            # bundled policy name or a path (relative to this file)
set:  {high_cost.beta: 0.9, presettlement.prepay_share: {2024-07-01: 0.8}}
grid: {budget.*.growth: [0.02, 0.04, 0.06], point_value.bounds.floor: "0.85:0.95:0.05"}
zip:  [[keyA, keyB]]      # axes that vary together
behaviour: {volume_growth: {dist: normal, mean: 0.03, sd: 0.01}}
draws: {n: 100, seed: 7}
```

Every problem is collected and raised as one :class:`ScenarioError`, each line
``file:line: key: message`` (unknown keys get a "did you mean" from the policy's keys).
The file is read with the safe YAML rules: UTF-8, size and depth bounded, no anchors
or aliases.
"""

from __future__ import annotations

import datetime as dt
import difflib
import fnmatch
import itertools
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drgsim.errors import Problem, ScenarioError, ValidationError
from drgsim.policy.loader import Policy, PolicyError, load_policy
from drgsim.policy.schema import Param

TOP_KEYS = ("name", "description", "base", "set", "grid", "zip", "behaviour", "draws")
DRAWS_KEYS = ("n", "seed")
MAX_SCENARIOS = 100_000  # per file, after expanding the grid
MAX_DRAWS = 100_000
MAX_BYTES = 1024 * 1024  # scenario files are a few hundred bytes
MAX_DEPTH = 16
SUFFIXES = (".yaml", ".yml")

# distribution -> (required parameters, optional parameters)
DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "uniform": (("min", "max"), ()),
    "normal": (("mean", "sd"), ("min", "max")),
    "lognormal": (("mean", "sd"), ("min", "max")),
    "triangular": (("min", "mode", "max"), ()),
}


@dataclass
class ScenarioSpec:
    """One validated scenario file.

    ``set``: dotted key -> value, or dated values ``{"2024-07-01": 0.8}``, applied to every
    scenario but the baseline; ``grid``: axis key -> the list of its values (ranges
    expanded; keys may hold ``*`` and ``behaviour.`` keys are behaviour assumptions);
    ``zip``: groups of axes that vary together; ``behaviour``: name -> number or
    distribution; ``draws_n``/``seed``: the Monte Carlo draws.
    """

    name: str
    base: str = "baseline"
    set: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    zip: list[list[str]] = field(default_factory=list)
    behaviour: dict[str, Any] = field(default_factory=dict)
    draws_n: int | None = None
    seed: int | None = None
    file: str = ""
    description: str = ""

    def base_policy(self) -> Policy:
        """The policy the scenarios overlay (bundled name, or a path relative to the file)."""
        return load_policy(_base_source(self.base, self.file))

    def __post_init__(self) -> None:
        if not isinstance(self.grid, GridAxes):
            self.grid = GridAxes(dict(self.grid or {}), self)

    def to_grid(self) -> Any:
        """The ``grid`` axes as a :class:`drgsim.Grid` (the sweep adds ``set`` and the
        behaviour to every scenario but the baseline); ``spec.grid()`` is the same, and
        ``spec.grid`` also reads as the axes dict."""
        from drgsim.scenarios.grid import Grid

        return Grid(dict(self.grid), zip=[list(z) for z in self.zip] or False)

    def shape(self) -> list[int]:
        """Lengths of the independent blocks of the grid (a zipped group counts once)."""
        zipped = {k for z in self.zip for k in z}
        return [len(self.grid[z[0]]) for z in self.zip] + [
            len(v) for k, v in self.grid.items() if k not in zipped]

    def overlays(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, overlay) per scenario, baseline ``{}`` first; ``*`` keys kept as written.

        The expansion the sweep makes (Cartesian product of the axes, a zipped group
        varying together, ``set`` in every scenario but the baseline; the behaviour, also
        on every scenario but the baseline, is left out); ``drgsim scenario show`` uses it.
        """
        groups: list[list[str]] = [list(z) for z in self.zip]
        zipped = {k for z in groups for k in z}
        groups += [[k] for k in self.grid if k not in zipped]
        blocks = [[{k: self.grid[k][i] for k in g} for i in range(len(self.grid[g[0]]))]
                  for g in groups]
        out: list[tuple[str, dict[str, Any]]] = [("baseline", {})]
        for combo in itertools.product(*blocks):
            point: dict[str, Any] = {}
            for part in combo:
                point.update(part)
            label = ", ".join(f"{k}={_short(v)}" for k, v in point.items())
            out.append((f"{self.name}: {label}" if label else self.name, {**self.set, **point}))
        return out

    @property
    def n_scenarios(self) -> int:
        """Scenarios including the baseline."""
        return 1 + math.prod(self.shape())


class GridAxes(dict):
    """A spec's ``grid`` axes (a dict, key -> values); calling it gives them as a
    :class:`drgsim.Grid` (the contract's ``spec.grid()``)."""

    def __init__(self, axes: dict[str, list[Any]], spec: ScenarioSpec):
        super().__init__(axes)
        self._spec = spec

    def __call__(self) -> Any:
        return self._spec.to_grid()


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dict):
        return json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)
    return str(v)


def _base_source(base: str, file: str) -> str:
    """A base policy name as load_policy takes it: bundled name, else relative to the file."""
    p = Path(base)
    if not p.is_absolute() and file and (Path(file).parent / p).exists():
        return str(Path(file).parent / p)
    return base


# ----------------------------------------------------------------------------- YAML
def _load_yaml(path: Path) -> Any:
    """The file's YAML with ruamel line info, under the shared safe rules
    (:mod:`drgsim.yamlsafe`: UTF-8, size and depth bounded, no anchors or aliases)."""
    from drgsim.yamlsafe import load_yaml_file

    try:
        return load_yaml_file(path, ScenarioError, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH)
    except ValueError as exc:  # a date-looking scalar that is no date (2024-02-30)
        problems = []
        text = path.read_text(encoding="utf-8", errors="replace")
        for i, row in enumerate(text.splitlines(), 1):
            for m in re.finditer(r"\b(\d{4}-\d{1,2}-\d{1,2})\b", row):
                try:
                    dt.date.fromisoformat(m.group(1))
                except ValueError:
                    problems.append(Problem(str(path), i, None,
                                            f"{m.group(1)!r} is not a date YYYY-MM-DD"))
        raise ScenarioError(problems or [Problem(str(path), None, None, str(exc))]) from None


def _line(node: Any, key: Any = None) -> int | None:
    try:
        if key is not None:
            return int(node.lc.key(key)[0]) + 1
    except Exception:
        pass
    try:
        return int(node.lc.line) + 1
    except Exception:
        return None


def _item_line(node: Any, i: int) -> int | None:
    try:
        return int(node.lc.item(i)[0]) + 1
    except Exception:
        return _line(node)


def _plain(v: Any) -> Any:
    """ruamel containers -> plain dict/list; dates -> ISO text."""
    if isinstance(v, dict):
        return {_plain_key(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dt.datetime):
        return v.date().isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, str):
        return str(v)
    return v


def _plain_key(k: Any) -> str:
    if isinstance(k, dt.datetime):
        return k.date().isoformat()
    if isinstance(k, dt.date):
        return k.isoformat()
    return str(k)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _did_you_mean(word: str, choices: list[str]) -> str:
    near = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {near[0]}?)" if near else ""


# ----------------------------------------------------------------------------- keys
def _map_entries(policy: Policy) -> dict[str, list[str]]:
    """Dict-valued parameters (``coefficients.by_level``) -> their entries."""
    from drgsim.policy.loader import _spec_for

    out: dict[str, list[str]] = {}
    for key, values in policy.params.items():
        spec = _spec_for(key)
        if spec is not None and spec.kind == "map_float":
            names: set[str] = set()
            for _, v in values:
                names.update(str(x) for x in (v or {}))
            out[key] = sorted(names)
    return out


def policy_keys(policy: Policy) -> list[str]:
    """Every key a scenario may set: the policy's dotted keys and dict-valued entries."""
    keys = list(policy.params)
    for k, names in _map_entries(policy).items():
        keys += [f"{k}.{n}" for n in names]
    return sorted(keys)


def _wildcards(keys: list[str], entries: dict[str, list[str]]) -> list[str]:
    """Keys with their fund (or dict entry) written as ``*``: suggestions for a typo."""
    from drgsim.policy.schema import FUNDS

    out = {f"{k}.*" for k in entries}
    for k in keys:
        parts = k.split(".")
        for i, p in enumerate(parts):
            if p in FUNDS:
                out.add(".".join(parts[:i] + ["*"] + parts[i + 1:]))
    return sorted(out)


LEVEL_ALIASES = {"三级": "3", "二级": "2", "一级": "1"}  # coefficients.by_level.三级


def expand_key(key: str, policy: Policy) -> list[str]:
    """The concrete keys a scenario key stands for (``*`` matches one part: a fund or a
    dict entry; ``三级`` names the entry ``3``). Raises KeyError with a message (and a
    suggestion) for an unknown key."""
    keys = policy_keys(policy)
    entries = _map_entries(policy)
    if "*" in key:
        n = key.count(".")
        hits = [k for k in keys if k.count(".") == n and fnmatch.fnmatchcase(k, key)]
        if hits:
            return hits
    elif key in keys:
        return [key]
    else:
        parent, _, entry = key.rpartition(".")
        if parent in entries:
            alias = LEVEL_ALIASES.get(entry)
            if alias in entries[parent]:
                return [f"{parent}.{alias}"]
            raise KeyError(f"unknown entry {entry!r} of {parent} "
                           f"(it has {', '.join(entries[parent]) or 'none'})")
    raise KeyError("unknown key" + _did_you_mean(key, keys + _wildcards(keys, entries)))


def _checked_key(key: str, policy: Policy) -> list[str]:
    """:func:`expand_key`, then the sweep's own key check (so a file that validates is a
    file the sweep takes). KeyError with the message otherwise."""
    from drgsim.scenarios.grid import GridError, check_keys

    concrete = expand_key(key, policy)
    try:
        check_keys([key], policy)
    except GridError as exc:
        raise KeyError("; ".join(p.message for p in exc.problems)) from None
    return concrete


def _param(key: str, policy: Policy) -> Param:
    from drgsim.policy.loader import _spec_for

    spec = _spec_for(key)
    if spec is not None:
        return spec
    parent = key.rpartition(".")[0]
    if parent in _map_entries(policy):
        return Param("float", f"entry of {parent}")
    raise KeyError(key)


def _looks_dated(v: Any) -> bool:
    if not isinstance(v, dict) or not v:
        return False
    for k in v:
        if isinstance(k, dt.date):
            continue
        try:
            dt.date.fromisoformat(str(k))
        except ValueError:
            return False
    return True


def _is_dated(value: Any, spec: Param) -> bool:
    """Dated values ``{date: value}`` rather than one value (a dict-valued parameter's
    dated values hold dicts)."""
    if not _looks_dated(value):
        return False
    return spec.kind != "map_float" or all(isinstance(x, dict) or x is None
                                           for x in value.values())


def check_value(key: str, value: Any, policy: Policy, file: str, line: int | None,
                problems: list[Problem]) -> Any:
    """One value (or dated values) of a concrete key checked against the schema."""
    from drgsim.policy.loader import _check_value

    spec = _param(key, policy)
    if _is_dated(value, spec):
        out = {}
        for d, x in value.items():
            out[_plain_key(d)] = _check_value(spec, _plain(x), file, _line(value, d) or line,
                                              key, problems)
        return out
    return _check_value(spec, _plain(value), file, line, key, problems)


def apply_overlay(policy: Policy, overlay: dict[str, Any]) -> Policy:
    """``policy`` with a scenario's overlay, exactly as the sweep overlays it
    (:func:`drgsim.scenarios.grid.overlaid_policy`: ``*`` keys expanded, dict entries
    merged into their dict, dated values from their dates; behaviour keys ignored)."""
    from drgsim.scenarios.grid import overlaid_policy

    return overlaid_policy(policy, overlay)


ALWAYS = "1900-01-01"  # an undated overlay value holds from before any policy date


def _in_force(values: list[tuple[dt.date, Any]], day: str) -> Any:
    chosen = None
    for d, v in values:
        if d.isoformat() <= day:
            chosen = v
    return chosen


def changes(policy: Policy, overlay: dict[str, Any]) -> list[tuple[str, str, Any, Any]]:
    """What an overlay changes: (key, from date or '' for always, the baseline's value
    then, the new value), only where the value differs from the baseline's."""
    new = apply_overlay(policy, overlay)
    out = []
    for k in sorted(new.params):
        base = policy.params.get(k, [])
        if new.params[k] == base:
            continue
        first = base[0][0].isoformat() if base else ALWAYS
        for d, v in new.params[k]:
            day = d.isoformat()
            if day == first and len(base) == 1:  # from the policy's first date: always
                day = ALWAYS
            was = _in_force(base, day) if day != ALWAYS else (base[-1][1] if base else None)
            if day == ALWAYS and len(base) > 1:  # a dated history, replaced by one value
                out.append((k, "", {b.isoformat(): x for b, x in base}, v))
            elif isinstance(v, dict) and isinstance(was, dict):
                for e in sorted(set(v) | set(was)):
                    if v.get(e) != was.get(e):
                        out.append((f"{k}.{e}", "" if day == ALWAYS else day, was.get(e),
                                    v.get(e)))
            elif v != was:
                out.append((k, "" if day == ALWAYS else day, was, v))
    return out


# ----------------------------------------------------------------------------- values
def expand_range(v: Any) -> list[float] | None:
    """``{min, max, count}`` or ``"a:b:step"`` -> the values (None when ``v`` is neither).
    Raises ValueError with a message for a malformed range."""
    if isinstance(v, dict) and "min" in v and "max" in v and "count" in v:
        extra = set(v) - {"min", "max", "count"}
        if extra:
            raise ValueError(f"a range has only min, max, count (not {', '.join(sorted(extra))})")
        lo, hi, n = v["min"], v["max"], v["count"]
        if not (_is_num(lo) and _is_num(hi)):
            raise ValueError("a range's min and max are numbers")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"a range's count is a whole number ≥ 1, not {n!r}")
        if lo > hi:
            raise ValueError(f"a range's min {lo:g} is above its max {hi:g}")
        if n == 1:
            return [float(lo)]
        return [round(lo + (hi - lo) * i / (n - 1), 12) for i in range(n)]
    if isinstance(v, str) and v.count(":") == 2:
        try:
            a, b, s = (float(x) for x in v.split(":"))
        except ValueError:
            raise ValueError(f"{v!r} is not a range a:b:step of numbers") from None
        if s <= 0:
            raise ValueError(f"{v!r}: the step must be positive")
        if b < a:
            raise ValueError(f"{v!r}: the end is below the start")
        n = int(math.floor((b - a) / s + 1e-9)) + 1
        if n > MAX_SCENARIOS:
            raise ValueError(f"{v!r} has {n:,} values, more than {MAX_SCENARIOS:,}")
        return [round(a + i * s, 12) for i in range(n)]
    return None


def check_behaviour(name: str, value: Any, file: str, line: int | None,
                    problems: list[Problem]) -> Any:
    """A behaviour assumption: its name (``volume_growth.by_level.三级``) and a number or a
    distribution (uniform, normal, lognormal, triangular; bounds min/max clip), checked
    with line numbers and suggestions here, then by the behaviour module's own rules."""
    key = f"behaviour.{name}"

    def bad(msg: str) -> None:
        problems.append(Problem(file, line, key, msg))

    from drgsim.scenarios.behaviour import BY, NAMES, parse_behaviour

    parts = name.split(".")
    if parts[0] not in NAMES:
        bad("unknown behaviour assumption" + _did_you_mean(parts[0], list(NAMES))
            + f" (one of {', '.join(NAMES)})")
        return None
    if len(parts) > 1:
        splits = BY[parts[0]]
        if len(parts) != 3 or parts[1] not in splits:
            how = " or ".join(f"{parts[0]}.{s}.NAME" for s in splits) or "no split"
            bad(f"{parts[0]} is split as {how}")
            return None

    def final(v: Any) -> Any:  # the behaviour module's own rules (domains, bounds)
        try:
            parse_behaviour({name: v}, file)
        except ScenarioError as exc:
            for p in exc.problems:
                bad(p.message)
            return None
        return v

    if _is_num(value):
        return final(float(value))
    if not isinstance(value, dict):
        bad(f"expected a number or a distribution {{dist: normal, mean: .., sd: ..}}, "
            f"got {type(_plain(value)).__name__} {_plain(value)!r}")
        return None
    d = _plain(value)
    dist = d.get("dist")
    if dist not in DISTRIBUTIONS:
        bad(f"dist {dist!r} is not one of {', '.join(DISTRIBUTIONS)}"
            + (_did_you_mean(str(dist), list(DISTRIBUTIONS)) if isinstance(dist, str) else ""))
        return None
    need, opt = DISTRIBUTIONS[dist]
    allowed = ("dist", *need, *opt)
    ok = True
    for k, x in d.items():
        if k not in allowed:
            bad(f"{dist}: unknown parameter {k!r}" + _did_you_mean(k, list(allowed))
                + f" ({dist} takes {', '.join(need + opt)})")
            ok = False
        elif k != "dist" and not _is_num(x):
            bad(f"{dist}: {k} must be a number, got {x!r}")
            ok = False
    for k in need:
        if k not in d:
            bad(f"{dist}: {k} is missing ({dist} takes {', '.join(need + opt)})")
            ok = False
    if not ok:
        return None
    n0 = len(problems)
    if "sd" in d and d["sd"] < 0:
        bad(f"{dist}: sd must be ≥ 0, got {d['sd']:g}")
    if "min" in d and "max" in d and d["min"] > d["max"]:
        bad(f"{dist}: min {d['min']:g} is above max {d['max']:g}")
    if dist == "triangular" and not d["min"] <= d["mode"] <= d["max"]:
        bad(f"triangular: mode {d['mode']:g} is not between min and max")
    return final(d) if len(problems) == n0 else None


# ----------------------------------------------------------------------------- loading
def parse_scenarios(doc: Any, file: str, policy: Policy | None = None) -> ScenarioSpec:
    """Validate a loaded scenario document (see the module docstring)."""
    problems: list[Problem] = []

    def bad(line: int | None, key: str | None, msg: str) -> None:
        problems.append(Problem(file, line, key, msg))

    if not isinstance(doc, dict):
        raise ScenarioError([Problem(file, 1, None, "a scenario file is a mapping "
                                     f"(keys {', '.join(TOP_KEYS)})")])
    for k in doc:
        if k not in TOP_KEYS:
            bad(_line(doc, k), str(k), "unknown key" + _did_you_mean(str(k), list(TOP_KEYS))
                + f" (a scenario file has {', '.join(TOP_KEYS)})")
    name = doc.get("name", Path(file).stem)
    if not isinstance(name, str) or not name.strip():
        bad(_line(doc, "name"), "name", f"expected text, got {name!r}")
        name = Path(file).stem
    desc = doc.get("description", "")
    if not isinstance(desc, str):
        bad(_line(doc, "description"), "description", "expected text")
        desc = ""
    base = doc.get("base", "baseline")
    if not isinstance(base, str) or not base:
        bad(_line(doc, "base"), "base", f"expected a policy name or path, got {base!r}")
        base = "baseline"
    if policy is None:
        try:
            policy = load_policy(_base_source(base, file))
        except PolicyError as exc:
            first = exc.problems[0] if exc.problems else exc
            raise ScenarioError([Problem(file, _line(doc, "base"), "base",
                                         f"base policy {base!r}: {first}")]) from None

    sets: dict[str, Any] = {}
    node = doc.get("set", {}) or {}
    if not isinstance(node, dict):
        bad(_line(doc, "set"), "set", "expected a mapping of dotted keys to values")
        node = {}
    for key, value in node.items():
        line = _line(node, key)
        key = str(key)
        if key.startswith("behaviour."):
            bad(line, key, "behaviour assumptions go under behaviour:, not set:")
            continue
        try:
            concrete = _checked_key(key, policy)
        except KeyError as exc:
            bad(line, key, exc.args[0])
            continue
        n0 = len(problems)
        for k in concrete:
            check_value(k, value, policy, file, line, problems)
            if len(problems) > n0:
                problems[n0:] = [Problem(p.file, p.line, key, p.message) for p in problems[n0:]]
                break
        else:
            sets[key] = _plain(value)
    set_ok = len(problems) == 0
    if set_ok and sets:
        try:
            apply_overlay(policy, sets)
        except ValidationError as exc:
            for p in exc.problems:
                bad(_line(node, p.field) if p.field in node else _line(doc, "set"),
                    p.field or "set", p.message)

    grid: dict[str, list[Any]] = {}
    node = doc.get("grid", {}) or {}
    if not isinstance(node, dict):
        bad(_line(doc, "grid"), "grid", "expected a mapping of keys to lists of values")
        node = {}
    for key, value in node.items():
        line = _line(node, key)
        key = str(key)
        if key in sets:
            bad(line, key, "set and grid both give this key: keep one")
            continue
        try:
            vals = expand_range(_plain(value))
        except ValueError as exc:
            bad(line, key, str(exc))
            continue
        if vals is None:
            if not isinstance(value, list):
                bad(line, key, "expected a list of values, {min, max, count} or 'a:b:step', "
                    f"got {type(_plain(value)).__name__} {_plain(value)!r}")
                continue
            if not value:
                bad(line, key, "an axis needs at least one value")
                continue
            vals = list(value)
        n0 = len(problems)
        if key.startswith("behaviour."):
            out = []
            for i, v in enumerate(vals):
                at = _item_line(value, i) if isinstance(value, list) else line
                x = check_behaviour(key[len("behaviour."):], v, file, at, problems)
                if not _is_num(v) and len(problems) == n0:
                    bad(at, key, "a behaviour axis lists fixed numbers (a distribution goes "
                        "under behaviour:)")
                out.append(x)
                if len(problems) > n0:
                    break
            if len(problems) == n0:
                grid[key] = out
            continue
        try:
            concrete = _checked_key(key, policy)
        except KeyError as exc:
            bad(line, key, exc.args[0])
            continue
        out = []
        for i, v in enumerate(vals):
            at = _item_line(value, i) if isinstance(value, list) else line
            for k in concrete:
                check_value(k, v, policy, file, at, problems)
                if len(problems) > n0:
                    break
            if len(problems) > n0:
                problems[n0:] = [Problem(p.file, p.line, key, p.message) for p in problems[n0:]]
                break
            out.append(_plain(v))
            if set_ok:
                try:
                    apply_overlay(policy, {**sets, key: _plain(v)})
                except ValidationError as exc:
                    for p in exc.problems:
                        bad(at, key, f"{_short(_plain(v))}: {p.field}: {p.message}")
                    break
        if len(problems) == n0:
            if len(set(json.dumps(x, sort_keys=True, default=str) for x in out)) < len(out):
                bad(line, key, "a value is listed twice")
            else:
                grid[key] = out

    zips: list[list[str]] = []
    node = doc.get("zip", []) or []
    if not isinstance(node, list):
        bad(_line(doc, "zip"), "zip", "expected a list of lists of grid keys ([[a, b]])")
        node = []
    seen: dict[str, int] = {}
    for i, group in enumerate(node):
        at = _item_line(node, i)
        if not isinstance(group, list) or len(group) < 2 or not all(
                isinstance(k, str) for k in group):
            bad(at, "zip", f"group {i + 1}: expected a list of two or more grid keys")
            continue
        ok = True
        for k in group:
            if k not in _grid_keys(doc):
                bad(at, "zip", f"{k!r} is not a grid key" + _did_you_mean(k, _grid_keys(doc)))
                ok = False
            elif k in seen:
                bad(at, "zip", f"{k!r} is in two zip groups ({seen[k]} and {i + 1})")
                ok = False
        if not ok:
            continue
        for k in group:
            seen[k] = i + 1
        lens = {k: len(grid[k]) for k in group if k in grid}
        if len(set(lens.values())) > 1:
            bad(at, "zip", "grid axes of unequal length under zip: "
                + ", ".join(f"{k} has {n}" for k, n in lens.items()))
            continue
        zips.append([str(k) for k in group])

    behaviour: dict[str, Any] = {}
    node = doc.get("behaviour", {}) or {}
    if not isinstance(node, dict):
        bad(_line(doc, "behaviour"), "behaviour", "expected a mapping of assumptions "
            "(volume_growth, cost_inflation, coding_creep, los_change)")
        node = {}
    for key, value in node.items():
        line = _line(node, key)
        if f"behaviour.{key}" in grid:
            bad(line, f"behaviour.{key}", "given both as a grid axis and under behaviour:")
            continue
        n0 = len(problems)
        x = check_behaviour(str(key), value, file, line, problems)
        if len(problems) == n0:
            behaviour[str(key)] = x

    draws_n: int | None = None
    seed: int | None = None
    node = doc.get("draws")
    if node is not None:
        if _is_num(node) and isinstance(node, int):
            node = {"n": node}
        if not isinstance(node, dict):
            bad(_line(doc, "draws"), "draws", "expected {n: NUMBER, seed: NUMBER}")
        else:
            for k in node:
                if k not in DRAWS_KEYS:
                    bad(_line(node, k), f"draws.{k}", "unknown key"
                        + _did_you_mean(str(k), list(DRAWS_KEYS)) + " (draws has n, seed)")
            n = node.get("n")
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_DRAWS:
                bad(_line(node, "n"), "draws.n", f"expected a whole number 1..{MAX_DRAWS:,}, "
                    f"got {n!r}")
            else:
                draws_n = int(n)
            s = node.get("seed", None)
            if s is not None and (not isinstance(s, int) or isinstance(s, bool) or s < 0):
                bad(_line(node, "seed"), "draws.seed", f"expected a whole number ≥ 0, got {s!r}")
            elif s is not None:
                seed = int(s)
    has_dist = any(isinstance(v, dict) for v in behaviour.values())
    if has_dist and draws_n is None:
        bad(_line(doc, "behaviour"), "draws", "a distribution needs draws: {n: .., seed: ..}")
    if has_dist and seed is None and draws_n is not None:
        bad(_line(doc, "draws"), "draws.seed", "give a seed: the same seed gives the same draws")

    problems += method_problems(doc, policy, file)
    spec = ScenarioSpec(str(name), str(base), sets, grid, zips, behaviour, draws_n, seed,
                        file, desc)
    if not problems and spec.n_scenarios > MAX_SCENARIOS:
        bad(_line(doc, "grid"), "grid", f"{spec.n_scenarios:,} scenarios, more than "
            f"{MAX_SCENARIOS:,}: split the file or zip axes")
    problems = list(dict.fromkeys(problems))
    if problems:
        title = f"{len(problems)} problem(s) in scenario file {file}" if len(problems) > 1 else None
        raise ScenarioError(problems, title=title)
    return spec


def method_problems(doc: Any, policy: Policy, file: str) -> list[Problem]:
    """Keys the base policy's method cannot honour, each at its file, line and key, so a
    sweep refuses them before any work: under method dip, coding creep (a packet has no
    more severe sibling) and the DRG-only sections (high_cost, low_cost, ungroupable,
    calibration, points: DIP prices with dip.* and its catalogue)."""
    if policy.method != "dip" or not isinstance(doc, dict):
        return []
    from drgsim.pricing.cells import DRG_ONLY
    from drgsim.scenarios.behaviour import DIP_NO_CREEP

    out: list[Problem] = []
    for sec in ("set", "grid", "behaviour"):
        node = doc.get(sec)
        if not isinstance(node, dict):
            continue
        for k in node:
            key = str(k) if sec != "behaviour" else f"behaviour.{k}"
            if key.split(".")[:2] == ["behaviour", "coding_creep"]:
                out.append(Problem(file, _line(node, k), key, DIP_NO_CREEP))
            elif key.split(".")[0] in DRG_ONLY:
                out.append(Problem(file, _line(node, k), key, (
                    f"{key.split('.')[0]} does not apply to method dip (policy {policy.name}): "
                    "its outliers are dip.outliers.*, a blank packet dip.blank_ratio, scores "
                    "the catalogue's")))
    return out


def _grid_keys(doc: Any) -> list[str]:
    g = doc.get("grid") if isinstance(doc, dict) else None
    return [str(k) for k in g] if isinstance(g, dict) else []


def bundled_scenarios_path() -> Path:
    """The example scenario files shipped in ``drgsim/data/scenarios``."""
    from importlib import resources

    return Path(str(resources.files("drgsim") / "data" / "scenarios"))


def scenario_files(path: str | os.PathLike[str]) -> list[Path]:
    """The scenario files a path names: the file, or a folder's ``*.yaml``/``*.yml``
    (sorted; names starting with ``.`` or ``_`` skipped)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in SUFFIXES
                       and not f.name.startswith((".", "_")))
        if not files:
            raise ScenarioError([Problem(str(p), None, None,
                                         "no scenario files (*.yaml, *.yml) in this folder")])
        return files
    if not p.exists():
        raise ScenarioError([Problem(str(p), None, None, "no such file or folder")])
    return [p]


def load_scenarios(path: str | os.PathLike[str],
                   policy: Policy | None = None) -> ScenarioSpec | list[ScenarioSpec]:
    """A scenario file -> its :class:`ScenarioSpec`; a folder -> one spec per file (every
    problem of every file in one :class:`ScenarioError`)."""
    specs = load_scenario_files(path, policy)
    return specs if Path(path).is_dir() else specs[0]


def load_scenario_files(path: str | os.PathLike[str],
                        policy: Policy | None = None) -> list[ScenarioSpec]:
    """Every scenario file a path names, validated (see :func:`load_scenarios`)."""
    problems: list[Problem] = []
    specs: list[ScenarioSpec] = []
    names: dict[str, str] = {}
    for f in scenario_files(path):
        try:
            doc = _load_yaml(f)
            spec = parse_scenarios(doc, str(f), policy)
        except ScenarioError as exc:
            problems += exc.problems
            continue
        if spec.name in names:
            problems.append(Problem(str(f), _line(doc, "name"), "name",
                                    f"{spec.name!r} is also the name in {names[spec.name]}"))
            continue
        names[spec.name] = str(f)
        specs.append(spec)
    if problems:
        files = {p.file for p in problems}
        where = f"scenario file {next(iter(files))}" if len(files) == 1 else "scenario files"
        title = f"{len(problems)} problem(s) in {where}" if len(problems) > 1 else None
        raise ScenarioError(problems, title=title)
    return specs


__all__ = [
    "ScenarioSpec",
    "apply_overlay",
    "bundled_scenarios_path",
    "changes",
    "check_behaviour",
    "expand_key",
    "expand_range",
    "load_scenario_files",
    "load_scenarios",
    "method_problems",
    "parse_scenarios",
    "policy_keys",
    "scenario_files",
]
