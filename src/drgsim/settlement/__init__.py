"""Settlement: budget, point value, pre-settlement, annual settlement, corridors, ledger."""

from drgsim.settlement.core import (
    Budget,
    BudgetError,
    FundSettlement,
    FundTotals,
    fund_budget,
    ledger,
    settle_fund,
)
from drgsim.settlement.run import Settlement, build_tables, fund_totals, settle
from drgsim.settlement.scenarios import ScenarioParams, settle_scenarios

__all__ = [
    "Budget",
    "BudgetError",
    "FundSettlement",
    "FundTotals",
    "ScenarioParams",
    "Settlement",
    "build_tables",
    "fund_budget",
    "fund_totals",
    "ledger",
    "settle",
    "settle_fund",
    "settle_scenarios",
]
