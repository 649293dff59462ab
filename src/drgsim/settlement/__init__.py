"""Settlement: budget, point value, pre-settlement, annual settlement, corridors, ledger."""

from drgsim.settlement.core import (
    Budget,
    BudgetError,
    EmptyFundWarning,
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
    "EmptyFundWarning",
    "FundSettlement",
    "FundTotals",
    "ScenarioParams",
    "Settlement",
    "all_fund_totals",
    "build_tables",
    "cell_fund_totals",
    "fund_budget",
    "fund_totals",
    "history_spending",
    "last_year_pv",
    "ledger",
    "settle",
    "settle_fund",
    "settle_scenarios",
]


def __getattr__(name: str) -> object:
    """``last_year_pv`` and ``history_spending`` live beside ``simulate`` (imported lazily)."""
    if name in ("last_year_pv", "history_spending", "SettlementInputError"):
        from drgsim.settlement import simulate as _sim

        return getattr(_sim, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
