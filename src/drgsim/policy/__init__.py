"""Payment policy as data: dated YAML parameters, a strict schema, values resolved at a date."""

from drgsim.policy.dated import YearPolicy, as_year_policy, resolve_year
from drgsim.policy.loader import (
    BASELINE,
    Policy,
    PolicyError,
    bundled_policy_path,
    load_policy,
    parse_policy,
)
from drgsim.policy.schema import LEVELS, SCHEMA, Param, level_of

__all__ = [
    "BASELINE",
    "LEVELS",
    "SCHEMA",
    "YearPolicy",
    "as_year_policy",
    "level_of",
    "resolve_year",
    "Param",
    "Policy",
    "PolicyError",
    "bundled_policy_path",
    "load_policy",
    "parse_policy",
]
