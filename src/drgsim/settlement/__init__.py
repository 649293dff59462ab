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
from drgsim.settlement.run import (
    Settlement,
    all_fund_totals,
    build_tables,
    cell_fund_totals,
    fund_totals,
    settle,
)
from drgsim.settlement.scenarios import ScenarioParams, settle_scenarios

__all__ = [
    "Budget",
    "BudgetError",
    "FundSettlement",
    "FundTotals",
    "ScenarioParams",
    "Settlement",
    "all_fund_totals",
    "build_tables",
    "cell_fund_totals",
    "fund_budget",
    "fund_totals",
    "ledger",
    "settle",
    "settle_fund",
    "settle_scenarios",
]
