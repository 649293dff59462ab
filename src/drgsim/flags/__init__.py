"""Flags: short codes that point a coder at suspect records, computed only when asked.

A flag never changes a group. Each flag's rule is a row of
``drgsim/data/edits/flags.csv`` (and the sex/age edits of ``sex_age_edits.csv``); the
checks are vectorised over whole columns (Arrow and numpy), with no loop over records.
"""

from drgsim.flags.engine import (
    FlagRule,
    FlagsError,
    compute_flags,
    flag_rules,
    flag_summary,
    flags_for_record,
)

__all__ = ["FlagRule", "FlagsError", "compute_flags", "flag_rules", "flag_summary",
           "flags_for_record"]
