"""Load, validate and resolve dated policy files.

The loader collects every problem as ``file:line: key: message`` and raises one
:class:`PolicyError` before any work is done. Values are resolved at a date.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from drgsim.errors import Problem, ValidationError
from drgsim.errors import Problem as _Problem
from drgsim.policy.schema import (
    ANY_METHOD_SECTIONS,
    FUNDS,
    LEAF_META,
    METHODS,
    OPTIONAL_SECTIONS,
    SCHEMA,
    TOP_META,
    Param,
)
from drgsim.yamlsafe import decode_utf8, load_yaml, read_yaml_bytes


class PolicyError(ValidationError):
    """A policy file failed validation (unknown key, wrong type, dates out of order...)."""

    kind = "policy"


BASELINE = "baseline"


def bundled_policy_path(name: str = BASELINE) -> Path:
    """Path of a policy shipped in ``drgsim/data/policies``."""
    return Path(str(resources.files("drgsim") / "data" / "policies" / f"{name}.yaml"))


@dataclass
class Policy:
    """A validated policy: per dotted key, its dated values in ascending date order."""

    name: str
    source: str
    params: dict[str, list[tuple[dt.date, Any]]]
    scheme: str = "chs_drg_11"
    text_hash: str = ""

    @property
    def method(self) -> str:
        """``drg`` or ``dip`` (the file's top-level ``method``; kept as an undated key)."""
        v = self.params.get("method")
        return str(v[0][1]) if v else "drg"

    def at(self, date: dt.date | str | int) -> dict[str, Any]:
        """Nested dict of every parameter's value in force on ``date`` (a year means 31 Dec)."""
        day = _as_date(date)
        out: dict[str, Any] = {}
        for key, values in self.params.items():
            chosen = None
            found = False
            for d, v in values:
                if d <= day:
                    chosen, found = v, True
            if not found:
                raise PolicyError(
                    [Problem(self.source, None, key, f"no value in force on {day.isoformat()}")]
                )
            node = out
            parts = key.split(".")
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = copy.deepcopy(chosen)
        return out

    def with_values(self, overlay: dict[str, Any], date: dt.date | str = "1900-01-01") -> Policy:
        """A copy where each dotted key gets a value from ``date`` on, validated first."""
        problems: list[Problem] = []
        params = copy.deepcopy(self.params)
        day = _as_date(date)
        for key, value in overlay.items():
            spec = _spec_for(key)
            if spec is None:
                problems.append(Problem("<overlay>", None, key, "unknown key"))
                continue
            if key.split(".")[0] in OPTIONAL_SECTIONS and key not in params:
                problems.append(
                    Problem("<overlay>", None, key, f"the policy's method {self.method} has no such section")
                )
                continue
            v = _check_value(spec, value, "<overlay>", None, key, problems)
            kept = [(d, x) for d, x in params.get(key, []) if d < day]
            params[key] = kept + [(day, v)]
        if not problems:  # rules across parameters hold for the overlaid policy too
            _cross_checks(params, "<overlay>", problems)
        if problems:
            raise PolicyError(problems)
        return Policy(self.name + "+overlay", self.source, params, self.scheme, self.digest(params))

    def digest(self, params: dict | None = None) -> str:
        """Content hash of the resolved parameter tree (stable across formatting)."""
        p = self.params if params is None else params
        blob = json.dumps(
            {k: [(d.isoformat(), v) for d, v in vs] for k, vs in sorted(p.items())},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _as_date(x: dt.date | str | int) -> dt.date:
    if isinstance(x, dt.datetime):
        return x.date()
    if isinstance(x, dt.date):
        return x
    if isinstance(x, int):
        return dt.date(x, 12, 31)
    return dt.date.fromisoformat(str(x))


def _spec_for(key: str) -> Param | None:
    node: Any = {**SCHEMA, **OPTIONAL_SECTIONS, **ANY_METHOD_SECTIONS}
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, Param) else None


def _line(mapping: Any, key: Any) -> int | None:
    try:
        return int(mapping.lc.key(key)[0]) + 1
    except Exception:
        try:
            return int(mapping.lc.line) + 1
        except Exception:
            return None


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_value(
    spec: Param, v: Any, file: str, line: int | None, key: str, problems: list[Problem]
) -> Any:
    """Check one value against its Param; return it normalised (plain Python types)."""

    def bad(msg: str) -> None:
        problems.append(Problem(file, line, key, msg))

    if v is None:
        if not spec.nullable:
            bad("null is not allowed")
        return None
    k = spec.kind
    if k == "float":
        if not _is_num(v):
            bad(f"expected a number, got {type(v).__name__} {v!r}")
            return None
        v = float(v)
    elif k == "int":
        if not isinstance(v, int) or isinstance(v, bool):
            bad(f"expected an integer, got {type(v).__name__} {v!r}")
            return None
        v = int(v)
    elif k == "bool":
        if not isinstance(v, bool):
            bad(f"expected true or false, got {v!r}")
        return bool(v)
    elif k == "float_or_enum":  # a word among the choices, or a number in [lo, hi]
        if isinstance(v, str):
            if v not in spec.choices:
                bad(f"{v!r} is neither a number nor one of {', '.join(spec.choices)}")
            return str(v)
        if not _is_num(v):
            bad(f"expected a number or one of {', '.join(spec.choices)}, got {v!r}")
            return None
        v = float(v)
    elif k in ("str", "enum"):
        if not isinstance(v, str):
            bad(f"expected text, got {type(v).__name__} {v!r}")
            return None
        if k == "enum" and v not in spec.choices:
            bad(f"{v!r} is not one of {', '.join(spec.choices)}")
        return str(v)
    elif k in ("list_enum", "list_str"):
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            bad("expected a list of text values")
            return []
        if k == "list_enum":
            for x in v:
                if x not in spec.choices:
                    bad(f"{x!r} is not one of {', '.join(spec.choices)}")
            if len(set(v)) != len(v):
                bad("a value is listed twice")
        return [str(x) for x in v]
    elif k == "list_int":
        if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool)
                                              for x in v):
            bad("expected a list of whole numbers")
            return []
        return [int(x) for x in v]
    elif k == "list_float":
        if not isinstance(v, list) or not v or not all(_is_num(x) and x >= 0 for x in v):
            bad("expected a non-empty list of non-negative numbers")
            return []
        return [float(x) for x in v]
    elif k == "map_float":
        if not isinstance(v, dict) or not all(_is_num(x) for x in v.values()):
            bad("expected a mapping of names to numbers")
            return {}
        return {str(a): float(b) for a, b in v.items()}
    elif k == "tiers":
        if not isinstance(v, list) or not v:
            bad("expected a non-empty list of tiers")
            return []
        out = []
        prev = -1.0
        for i, t in enumerate(v):
            if not isinstance(t, dict) or set(t) != set(spec.tier_keys):
                bad(f"tier {i + 1}: expected exactly the keys {', '.join(spec.tier_keys)}")
                continue
            up, kk = t["rw_upto"], t["k"]
            if up is not None and (not _is_num(up) or up <= prev):
                bad(f"tier {i + 1}: rw_upto must be a number above the previous tier's")
                continue
            if not _is_num(kk) or kk <= 0:
                bad(f"tier {i + 1}: k must be a positive number")
                continue
            if up is None and i != len(v) - 1:
                bad(f"tier {i + 1}: only the last tier may have rw_upto null")
            prev = float(up) if up is not None else prev
            out.append({"rw_upto": None if up is None else float(up), "k": float(kk)})
        if out and out[-1]["rw_upto"] is not None:
            bad("the last tier must have rw_upto null (covers every RW)")
        return out
    if spec.lo is not None and v < spec.lo:
        bad(f"{v} is below the minimum {spec.lo}")
    if spec.hi is not None and v > spec.hi:
        bad(f"{v} is above the maximum {spec.hi}")
    return v


def _walk(
    node: Any,
    schema: dict,
    prefix: str,
    file: str,
    problems: list[Problem],
    params: dict,
    skip: tuple = (),
    partial: bool = False,
) -> None:
    """Check a section against its schema into ``params``; ``partial``: keys may be left out
    (an optional section whose reader holds the defaults)."""
    if not isinstance(node, dict):
        problems.append(Problem(file, _line(node, None), prefix or None, "expected a mapping"))
        return
    for key, child in node.items():
        if key in skip:
            continue
        line = _line(node, key)
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in schema:
            problems.append(
                Problem(file, line, path, f"unknown key (expected one of {', '.join(schema)})")
            )
            continue
        spec = schema[key]
        if isinstance(spec, dict):
            _walk(child, spec, path, file, problems, params, partial=partial)
        else:
            _leaf(child, spec, path, file, line, problems, params)
    for key in () if partial else schema:
        if key not in node:
            path = f"{prefix}.{key}" if prefix else str(key)
            problems.append(Problem(file, _line(node, None), path, "missing"))


def _leaf(
    node: Any,
    spec: Param,
    path: str,
    file: str,
    line: int | None,
    problems: list[Problem],
    params: dict,
) -> None:
    if not isinstance(node, dict) or "values" not in node:
        problems.append(
            Problem(file, line, path, "expected a mapping with 'values: {YYYY-MM-DD: value}'")
        )
        return
    for k in node:
        if k not in LEAF_META:
            problems.append(
                Problem(
                    file,
                    _line(node, k),
                    f"{path}.{k}",
                    f"unknown key (expected one of {', '.join(LEAF_META)})",
                )
            )
    values = node["values"]
    vline = _line(node, "values")
    if not isinstance(values, dict) or not values:
        problems.append(
            Problem(
                file, vline, f"{path}.values", "expected a non-empty mapping of dates to values"
            )
        )
        return
    out: list[tuple[dt.date, Any]] = []
    prev: dt.date | None = None
    for d, v in values.items():
        dline = _line(values, d)
        day: dt.date | None
        if isinstance(d, dt.datetime):
            day = d.date()
        elif isinstance(d, dt.date):
            day = d
        else:
            try:
                day = dt.date.fromisoformat(str(d))
            except ValueError:
                problems.append(
                    Problem(file, dline, f"{path}.values", f"{d!r} is not a date YYYY-MM-DD")
                )
                continue
        if prev is not None and day <= prev:
            problems.append(
                Problem(
                    file,
                    dline,
                    f"{path}.values",
                    f"date {day.isoformat()} is out of order (after {prev.isoformat()})",
                )
            )
        prev = day
        out.append((day, _check_value(spec, _plain(v), file, dline, path, problems)))
        params.setdefault(VALUE_LINES, {}).setdefault(path, []).append((day, dline))
    params[path] = sorted(out, key=lambda x: x[0])
    params.setdefault(LINES, {})[path] = line


def _plain(v: Any) -> Any:
    """ruamel containers -> plain dict/list (recursively)."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


LINES = "\x00lines"  # path -> line, kept beside the parameters while validating
VALUE_LINES = "\x00value_lines"  # path -> [(date, line of that dated value)]


def _cross_checks(params: dict, file: str, problems: list[Problem]) -> None:
    """Rules that involve several parameters, checked on every dated value."""
    lines = params.get(LINES, {})

    def Problem(file: str, _line: int | None, key: str, msg: str) -> _Problem:  # noqa: N802
        at = lines.get(f"{key}.upper") or lines.get(key)
        return _Problem(file, at, key, msg)

    def vals(k: str) -> list:
        return [v for _, v in params.get(k, [])]

    for lo, hi in zip(
        vals("calibration.trimming.lower"), vals("calibration.trimming.upper"), strict=False
    ):
        if lo is not None and hi is not None and lo >= hi:
            problems.append(
                Problem(file, None, "calibration.trimming", "lower must be below upper")
            )
    for lo, hi in zip(
        vals("hospital_corridor.lower"), vals("hospital_corridor.upper"), strict=False
    ):
        if lo is not None and hi is not None and lo > hi:
            problems.append(Problem(file, None, "hospital_corridor", "lower must not exceed upper"))
    for prec in vals("case_types.precedence"):
        if prec and prec[-1] != "normal":
            problems.append(Problem(file, None, "case_types.precedence", "must end with 'normal'"))
    for day, (mode, prec) in _in_force(params, ["readmission.mode", "case_types.precedence"]):
        if mode is None or prec is None:
            continue
        if mode == "modifier" and "readmission" in prec:
            problems.append(
                Problem(
                    file,
                    None,
                    "case_types.precedence",
                    "readmission.mode is modifier (the cut applies to whatever type the case "
                    f"is): remove readmission from the precedence (in force {day.isoformat()})",
                )
            )
        if mode == "case_type" and "readmission" not in prec:
            problems.append(
                Problem(
                    file,
                    None,
                    "case_types.precedence",
                    "readmission.mode is case_type: list readmission in the precedence "
                    f"(in force {day.isoformat()})",
                )
            )
    _bounds_checks(params, file, problems)
    _method_checks(params, file, problems)


def _method_checks(params: dict, file: str, problems: list[Problem]) -> None:
    """DIP-only choices refused under method drg; the pre-settlement's budgeted point value
    needs a budgeted point value that exists before the year's points."""
    lines = params.get(LINES, {})
    method = params.get("method", [(None, "drg")])[0][1]
    for key, word in (
        ("point_value.basis", "reimbursement_ratio"),
        ("point_value.bounds.budgeted_pv", "history"),
    ):
        if method != "dip" and any(v == word for _, v in params.get(key, [])):
            problems.append(
                _Problem(file, lines.get(key), key, f"{word} needs method: dip (is {method})")
            )
    for day, (low, high, ext) in _in_force(
        params, ["dip.outliers.low", "dip.outliers.high", "dip.outliers.extreme"]
    ):
        if low is None or high is None:
            continue
        if not low < high or (ext is not None and ext < high):
            problems.append(
                _Problem(
                    file,
                    lines.get("dip.outliers.high"),
                    "dip.outliers",
                    f"needs low < high <= extreme (low {low}, high {high}, extreme {ext}; in "
                    f"force {day.isoformat()})",
                )
            )
    for day, (prov, kind) in _in_force(
        params, ["presettlement.provisional_pv", "point_value.bounds.budgeted_pv"]
    ):
        if prov == "budgeted" and kind == "budget":
            problems.append(
                _Problem(
                    file,
                    lines.get("presettlement.provisional_pv"),
                    "presettlement.provisional_pv",
                    "budgeted needs point_value.bounds.budgeted_pv given, last_year or history "
                    f"(budget depends on the year's own points; in force {day.isoformat()})",
                )
            )


def _in_force(params: dict, keys: list[str]) -> list[tuple[dt.date, list]]:
    """For every date on which one of ``keys`` changes: the values of all of them then."""
    days = sorted({d for k in keys for d, _ in params.get(k, [])})
    out = []
    for day in days:
        row = []
        for k in keys:
            v = None
            for d, x in params.get(k, []):
                if d <= day:
                    v = x
            row.append(v)
        out.append((day, row))
    return out


def _bounds_checks(params: dict, file: str, problems: list[Problem]) -> None:
    """Point-value floor and ceiling: units by mode, order, and the budgeted point value.

    Each problem names the line of the dated value in force on the date it arises.
    """
    b = "point_value.bounds."
    keys = [b + k for k in ("mode", "floor", "ceiling", "budgeted_pv", "budgeted_pv_yuan")]
    seen: set[tuple[str, str]] = set()
    day = dt.date.min

    def bad(key: str, msg: str) -> None:
        at = params.get(LINES, {}).get(key)
        for d, ln in params.get(VALUE_LINES, {}).get(key, []):
            if d <= day:
                at = ln
        if (key, msg) not in seen:
            seen.add((key, msg))
            problems.append(Problem(file, at, key, msg))

    for day, (mode, lo, hi, src, given) in _in_force(params, keys):  # bad() reads day
        on = f" (in force on {day.isoformat()})"
        if mode == "relative":
            for name, v in (("floor", lo), ("ceiling", hi)):
                if v is not None and not 0 < v <= 2:
                    bad(
                        b + name,
                        f"{v:g} is not a share of the budgeted point value: in relative mode "
                        f"floor and ceiling lie between 0 and 2 (0.9 = 10% below it){on}",
                    )
            if src == "given" and (lo is not None or hi is not None) and not given:
                bad(
                    b + "budgeted_pv_yuan",
                    "relative bounds with budgeted_pv: given need budgeted_pv_yuan per fund "
                    f"(e.g. {{employee: 118.5, resident: 96.0}}){on}",
                )
        if lo is not None and hi is not None and lo > hi:
            bad(b + "floor", f"floor {lo:g} is above ceiling {hi:g}{on}")
        for fund, v in (given or {}).items():
            if fund not in FUNDS:
                bad(b + "budgeted_pv_yuan", f"{fund!r} is not a fund ({', '.join(FUNDS)})")
            elif v <= 0:
                bad(b + "budgeted_pv_yuan", f"{fund}: {v:g} is not a positive point value")


def load_policy(source: str | os.PathLike[str] | None = None) -> Policy:
    """Load and validate a policy file (default: the bundled baseline).

    Raises :class:`PolicyError` listing every problem as ``file:line: key: message``.
    """
    if source is None or str(source) == BASELINE:
        path = bundled_policy_path()
    else:
        path = Path(source)
        if not path.exists() and bundled_policy_path(str(source)).exists():
            path = bundled_policy_path(str(source))
    file = str(path)
    text = decode_utf8(read_yaml_bytes(path, PolicyError), file, PolicyError)
    return parse_policy(text, file)


def parse_policy(text: str, file: str = "<policy>") -> Policy:
    """Validate policy YAML text (see :func:`load_policy`)."""
    try:  # size, depth, aliases, duplicate keys and syntax: one file:line problem
        doc = load_yaml(text, file, PolicyError)
    except ValueError as e:  # a timestamp-looking key that is not a real date
        probs = []
        for i, row in enumerate(text.splitlines(), 1):
            for m in re.finditer(r"\b(\d{4}-\d{1,2}-\d{1,2})\b", row):
                try:
                    dt.date.fromisoformat(m.group(1))
                except ValueError:
                    probs.append(Problem(file, i, None, f"{m.group(1)!r} is not a date YYYY-MM-DD"))
        raise PolicyError(probs or [Problem(file, None, None, str(e))]) from None
    problems: list[Problem] = []
    if not isinstance(doc, dict):
        raise PolicyError([Problem(file, 1, None, "a policy file is a mapping of sections")])
    params: dict[str, list[tuple[dt.date, Any]]] = {}
    for k in TOP_META:
        if k in doc and not isinstance(doc[k], str):
            problems.append(Problem(file, _line(doc, k), k, "expected text"))
    if "extends" in doc:
        problems.append(
            Problem(
                file,
                _line(doc, "extends"),
                "extends",
                "not supported yet: copy the baseline and edit it",
            )
        )
    method = doc.get("method", "drg")
    if method not in METHODS:
        problems.append(
            Problem(file, _line(doc, "method"), "method", f"{method!r} is not one of {', '.join(METHODS)}")
        )
    params["method"] = [(dt.date(1900, 1, 1), str(method))]
    _walk(doc, SCHEMA, "", file, problems, params, skip=TOP_META + tuple(OPTIONAL_SECTIONS) + tuple(ANY_METHOD_SECTIONS))
    for sec, sec_schema in ANY_METHOD_SECTIONS.items():
        if sec in doc:
            _walk(doc[sec], sec_schema, sec, file, problems, params, partial=True)
    if method == "dip" and "dip" not in doc:
        problems.append(Problem(file, 1, "dip", "missing (method dip needs the dip section)"))
    elif "dip" in doc and method != "dip":
        problems.append(
            Problem(file, _line(doc, "dip"), "dip", f"a dip section needs method: dip (is {method})")
        )
    elif "dip" in doc:
        _walk(doc["dip"], OPTIONAL_SECTIONS["dip"], "dip", file, problems, params)
    _cross_checks(params, file, problems)
    params.pop(LINES, None)
    params.pop(VALUE_LINES, None)
    if problems:
        title = f"{len(problems)} problem(s) in policy {file}" if len(problems) > 1 else None
        raise PolicyError(problems, title=title)
    name = str(doc.get("name", Path(file).stem))
    scheme = str(doc.get("scheme", "chs_drg_11"))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Policy(name, file, params, scheme, digest)
