"""Dated values applied by date: one simulated year's policy as case, month and year levels.

Every key has a level (:data:`drgsim.policy.schema.LEVELS`): case-level keys take the value
in force on each case's discharge date, month-level keys the value on the first day of the
month, year-level keys the value on 1 January. :class:`YearPolicy` holds the year-level
values once (``pv``), the case-level values per *segment* (the days on which any case-level
key changes inside the year start a new segment) and the month-level values per month, so
pricing and settlement resolve parameters as arrays by segment or month index.
"""

from __future__ import annotations

import copy
import datetime as dt
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drgsim.policy.loader import Policy
from drgsim.policy.schema import level_of

EPOCH = dt.date(1970, 1, 1)


class PolicyDateWarning(UserWarning):
    """A year- or month-level value dated inside the year: it waits for the next 1 January
    or first of the month, by the rule, and is announced rather than silently deferred."""


def _day(d: dt.date) -> int:
    return (d - EPOCH).days


def _set(tree: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for p in parts[:-1]:
        node = node[p]
    node[parts[-1]] = copy.deepcopy(value)


def _get(tree: dict, key: str) -> Any:
    node = tree
    for p in key.split("."):
        node = node[p]
    return node


@dataclass
class YearPolicy:
    """One simulated year's resolved policy.

    ``pv``: every key at 1 January (what year-level code reads); ``segments[s]``: ``pv``
    with the case-level keys in force from ``starts[s]`` (days since 1970-01-01; the
    first is 1 January); ``months[m]``: ``pv`` with the month-level keys in force on the
    first day of month ``m + 1``.
    """

    year: int
    pv: dict
    starts: np.ndarray
    segments: list[dict]
    months: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.months:
            self.months = [self.pv] * 12

    @property
    def dated(self) -> bool:
        """True when some case-level value changes inside the year."""
        return len(self.segments) > 1

    def segment_of(self, day: np.ndarray) -> np.ndarray:
        """Segment index (int16) of each discharge day; days before 1 January -> segment 0."""
        s = np.searchsorted(self.starts, np.asarray(day, dtype=np.int64), side="right") - 1
        return np.maximum(s, 0).astype(np.int16)

    def start_dates(self) -> list[str]:
        return [str(np.datetime64(int(d), "D")) for d in self.starts]


def constant_year(pv: dict, year: int = 1970) -> YearPolicy:
    """A resolved policy dict taken as in force all year (one segment, 12 equal months)."""
    return YearPolicy(year, pv, np.array([_day(dt.date(year, 1, 1))], np.int64), [pv])


def as_year_policy(p: YearPolicy | dict, year: int = 1970) -> YearPolicy:
    """``p`` as a :class:`YearPolicy` (a plain resolved dict holds all year)."""
    return p if isinstance(p, YearPolicy) else constant_year(p, year)


def _with_keys_at(pv: dict, policy: Policy, day: dt.date, keys: list[str]) -> dict:
    """``pv`` (the 1 January values) with ``keys`` taken as in force on ``day``."""
    at = policy.at(day)
    out = copy.deepcopy(pv)
    for k in keys:
        _set(out, k, _get(at, k))
    return out


def resolve_year(policy: Policy, year: int) -> YearPolicy:
    """The policy of simulated ``year`` with every key applied at its level."""
    jan1 = dt.date(year, 1, 1)
    pv = policy.at(jan1)
    late = []
    for k, dated in policy.params.items():
        lv = level_of(k)
        for d, _ in dated:
            if lv == "year" and jan1 < d <= dt.date(year, 12, 31):
                late.append(f"{k} {d} (year level: from {year + 1})")
            elif lv == "month" and d.year == year and d.day != 1:
                nxt = dt.date(year + d.month // 12, d.month % 12 + 1, 1)
                late.append(f"{k} {d} (month level: from {nxt})")
    if late:
        warnings.warn(
            PolicyDateWarning(
                f"policy {policy.name}: value(s) dated inside {year} that apply later: "
                + "; ".join(late)
            ),
            stacklevel=2,
        )
    case_keys = [k for k in policy.params if level_of(k) == "case"]
    month_keys = [k for k in policy.params if level_of(k) == "month"]
    changes = sorted(
        {
            d
            for k in case_keys
            for d, _ in policy.params[k]
            if jan1 < d <= dt.date(year, 12, 31)
        }
    )
    starts = [jan1, *changes]
    segments = []
    for s in starts:
        segments.append(pv if s == jan1 else _with_keys_at(pv, policy, s, case_keys))
    months = []
    for m in range(1, 13):
        first = dt.date(year, m, 1)
        if m == 1 or not any(jan1 < d <= first for k in month_keys for d, _ in policy.params[k]):
            months.append(pv)
        else:
            months.append(_with_keys_at(pv, policy, first, month_keys))
    return YearPolicy(year, pv, np.array([_day(s) for s in starts], np.int64), segments, months)


__all__ = ["PolicyDateWarning", "YearPolicy", "as_year_policy", "constant_year", "resolve_year"]
