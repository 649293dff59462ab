"""Dirty rows: the kinds of malformed values real exports carry (conformance README).

Each kind says what the grouper must do with it, against the row's clean twin:

- ``check_failed``: the row fails a record check (scheme README section 4.2): status
  ``check_failed``, DRG ``0000``;
- ``unchanged``: the dirt is in a field no CHS-DRG 1.1 rule reads (LOS, dept, discharge
  mode, costs, an adult's age or age in days, a repeated secondary, a trailing separator):
  the group of the clean twin;
- ``bad_code``: one code is changed into a code that is in no table (lower case, padded,
  unknown, an empty principal): what the twin gets with that code replaced by an unknown
  code;
- ``sex_conflict``: a sex-specific case (MDC M, N, O) with the other sex: never
  ``check_failed``; it cannot stay in MDC M or N.

Text kinds (``text_only``) need text columns and are drawn only for CSV output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHECK_FAILED = "check_failed"
UNCHANGED = "unchanged"
BAD_CODE = "bad_code"
SEX_CONFLICT = "sex_conflict"


@dataclass(frozen=True)
class DirtKind:
    """One kind of dirt: its name, what it implies for grouping, and where it can go."""

    name: str
    expect: str
    text_only: bool
    eligible: str  # "all", "age0", "newborn", "not_age0", "two_dx", "sex_specific"
    description: str


DIRT_KINDS: tuple[DirtKind, ...] = (
    DirtKind("sex_unknown", CHECK_FAILED, False, "all", "sex 0 (unknown)"),
    DirtKind("sex_missing", CHECK_FAILED, False, "all", "sex empty"),
    DirtKind("sex_text", CHECK_FAILED, True, "all", "sex given as text (M, 男)"),
    DirtKind("age_missing", CHECK_FAILED, False, "all", "age_years empty"),
    DirtKind("age_text", CHECK_FAILED, True, "all", "age_years as text (NA)"),
    DirtKind("age0_no_age_days", CHECK_FAILED, False, "age0", "age 0 without age_days"),
    DirtKind("newborn_no_weight", CHECK_FAILED, False, "newborn", "newborn without birth weight"),
    DirtKind("weight_text", CHECK_FAILED, True, "newborn", "birth weight as text (3.2kg)"),
    DirtKind("dx_empty", CHECK_FAILED, False, "all", "empty diagnosis field"),
    DirtKind("los_negative", UNCHANGED, False, "all", "negative LOS"),
    DirtKind("los_missing", UNCHANGED, False, "all", "LOS empty"),
    DirtKind("los_absurd", UNCHANGED, False, "all", "LOS of 9999 days"),
    DirtKind("los_text", UNCHANGED, True, "all", "LOS as text (4.5, NA)"),
    DirtKind("dept_invalid", UNCHANGED, False, "all", "department code unknown"),
    DirtKind("discharge_mode_invalid", UNCHANGED, False, "all", "discharge mode 0, 7 or -1"),
    DirtKind("discharge_mode_text", UNCHANGED, True, "all", "discharge mode as text (死亡)"),
    DirtKind("cost_negative", UNCHANGED, False, "all", "negative total cost"),
    DirtKind("cost_absurd", UNCHANGED, False, "all", "total cost 1000 times too high"),
    DirtKind("cost_text", UNCHANGED, True, "all", "total cost as text (NA)"),
    DirtKind("age_absurd", UNCHANGED, False, "not_age0", "age -1 or 130 (not an infant)"),
    DirtKind("age_days_negative", UNCHANGED, False, "not_age0", "negative age_days (adult)"),
    DirtKind("dx_duplicated", UNCHANGED, False, "two_dx", "a secondary diagnosis repeated"),
    DirtKind("dx_trailing_separator", UNCHANGED, False, "all", "a trailing | in diagnoses"),
    DirtKind("code_lowercase", BAD_CODE, False, "all", "a diagnosis code in lower case"),
    DirtKind("code_padded", BAD_CODE, False, "all", "a code with a stray space"),
    DirtKind("code_unknown", BAD_CODE, False, "all", "a code that exists in no table"),
    DirtKind("principal_empty", BAD_CODE, False, "two_dx", "empty principal (|I71.200)"),
    DirtKind("sex_conflict", SEX_CONFLICT, False, "sex_specific",
             "male with a female/pregnancy condition or vice versa"),
)
KIND_BY_NAME = {k.name: k for k in DIRT_KINDS}
DIRT_NAMES = tuple(k.name for k in DIRT_KINDS)


def kinds_for(text: bool) -> tuple[DirtKind, ...]:
    """The dirt kinds a format can carry (typed parquet columns cannot hold text)."""
    return tuple(k for k in DIRT_KINDS if text or not k.text_only)


def choose(rng: np.random.Generator, n: int, rate: float, eligible: dict[str, np.ndarray],
           text: bool) -> np.ndarray:
    """Dirt kind index into :data:`DIRT_KINDS` per row (-1 clean), uniform over eligible kinds."""
    u_dirty = rng.random(n)
    u_kind = rng.random(n)
    out = np.full(n, -1, np.int64)
    rows = np.flatnonzero(u_dirty < rate)
    if not len(rows):
        return out
    allowed = [i for i, k in enumerate(DIRT_KINDS) if text or not k.text_only]
    elig = np.column_stack([eligible[DIRT_KINDS[i].eligible][rows] for i in allowed])
    cum = np.cumsum(elig, axis=1)
    pick = np.floor(u_kind[rows] * cum[:, -1]).astype(np.int64)
    col = (cum <= pick[:, None]).sum(axis=1)
    out[rows] = np.asarray(allowed)[np.minimum(col, len(allowed) - 1)]
    return out
