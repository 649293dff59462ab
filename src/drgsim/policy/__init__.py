"""Payment policy as data: dated YAML parameters, a strict schema, values resolved at a date."""

from drgsim.policy.loader import (
    BASELINE,
    Policy,
    PolicyError,
    bundled_policy_path,
    load_policy,
    parse_policy,
)
from drgsim.policy.schema import SCHEMA, Param

__all__ = [
    "BASELINE",
    "SCHEMA",
    "Param",
    "Policy",
    "PolicyError",
    "bundled_policy_path",
    "load_policy",
    "parse_policy",
]
