"""Pricing: grouped cases + weights + policy -> case types and points (DOMAIN.md section 3)."""

from drgsim.pricing.cases import PAY_STATUSES, Cases, prepare_cases
from drgsim.pricing.core import (
    CASE_TYPES,
    Priced,
    PricingError,
    Weights,
    hospital_coefficients,
    price,
)

__all__ = [
    "CASE_TYPES",
    "PAY_STATUSES",
    "Cases",
    "Priced",
    "PricingError",
    "Weights",
    "hospital_coefficients",
    "prepare_cases",
    "price",
]
