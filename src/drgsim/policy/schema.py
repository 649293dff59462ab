"""The policy schema: every parameter a payment policy may set, its type and allowed values.

A policy file is a tree of sections whose leaves are dated parameters
(``values: {YYYY-MM-DD: value}``, like OpenFisca). The tree below is the whole
vocabulary: a key that is not here is an error, so a typo never silently means "default".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drgsim.scheme.spec import STATUSES


@dataclass(frozen=True)
class Param:
    """One dated leaf: its kind, whether it may be null, and what the value may be."""

    kind: str  # float, int, bool, str, enum, list_enum, list_float, list_int, list_str, map_float, tiers
    doc: str = ""
    nullable: bool = False
    choices: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None
    tier_keys: tuple[str, ...] = field(default=())


def ratio(doc: str, nullable: bool = False) -> Param:
    return Param("float", doc, nullable, lo=0.0, hi=1.0)


def pos(doc: str, nullable: bool = False) -> Param:
    return Param("float", doc, nullable, lo=0.0)


STATUS_RULES = ("discounted", "review", "zero")
CASE_TYPES = (
    "per_diem",
    "special_review",
    "ungroupable",
    "readmission",
    "short_stay",
    "high_cost",
    "low_cost",
    "normal",
)
FUNDS = ("employee", "resident")

_BUDGET = {
    "source": Param(
        "enum",
        "where last year's spending comes from, used as named or the run stops: region_table "
        "= the region table's drg_spending of last year x (1 + growth); history = the fund's "
        "share of last year's cases that pass the record checks, group and pass the "
        "plausibility rules under the current weights, x (1 + growth); amount = amount_yuan",
        choices=("region_table", "amount", "history"),
    ),
    "amount_yuan": pos(
        "the gross DRG fund budget in yuan before the reserve and carve-out (source amount)",
        nullable=True,
    ),
    "growth": Param(
        "float", "growth of last year's DRG spending (region_table, history)", lo=-0.5, hi=1.0
    ),
    "reserve_share": ratio(
        "share of the gross budget (after growth, or amount_yuan) set aside as the adjustment "
        "reserve (调剂金) and taken off the budget"
    ),
    "reserve_yuan": pos(
        "explicit reserve amount in yuan, taken off the gross (overrides reserve_share)",
        nullable=True,
    ),
    "carve_out_yuan": pos("amount paid outside DRG (FFS, out-of-region) taken off the budget"),
}

SCHEMA: dict[str, Any] = {
    "calibration": {
        "history_years": Param(
            "int", "number of history years before the simulated year", lo=1, hi=10
        ),
        "year_weights": Param(
            "list_float", "weights of the history years, oldest to newest (e.g. 1:2:7)"
        ),
        "inflation": Param(
            "float",
            "yearly cost inflation used to bring older years to the simulated year",
            lo=-0.5,
            hi=1.0,
        ),
        "trimming": {
            "method": Param(
                "enum", "outlier trimming inside each group", choices=("percentile", "sd", "none")
            ),
            "lower": ratio("lower percentile kept (percentile method)"),
            "upper": ratio("upper percentile kept (percentile method)"),
            "sd": pos("mean +- sd x SD kept (sd method)"),
        },
        "min_cases": Param("int", "minimum cases for a group to get its own weight", lo=1),
        "fallback": Param(
            "list_enum",
            "pooled levels tried, in order, for thin or missing groups",
            choices=("adrg", "mdc", "all"),
        ),
        "all_case_mean_yuan": pos(
            "all-case mean cost m_all; null = computed from history", nullable=True
        ),
    },
    "points": {
        "scale": Param("int", "base points = RW x scale (100 or 1000)", lo=1),
    },
    "coefficients": {
        "method": Param("enum", "hospital coefficient c_h", choices=("level", "hospital", "blend")),
        "by_level": Param("map_float", "coefficient per hospital level"),
        "default": pos("coefficient of a hospital whose level is not listed"),
        "hospital_weight": ratio("weight of the hospital's own coefficient in a blend"),
        "band_lower": pos("lowest coefficient allowed", nullable=True),
        "band_upper": pos("highest coefficient allowed", nullable=True),
        "phase_to_one": ratio("share of the way from the coefficient to 1.0 (同病同价 phase-in)"),
    },
    "case_types": {
        "precedence": Param(
            "list_enum", "ordered case types: the first that applies wins", choices=CASE_TYPES
        ),
    },
    "statuses": {
        s: Param("enum", f"how a `{s}` case is paid", choices=STATUS_RULES)
        for s in STATUSES[1:]  # every grouper status but ok
    },
    "high_cost": {
        "tiers": Param(
            "tiers", "k by RW tier: cost > k x m is high-cost", tier_keys=("rw_upto", "k")
        ),
        "beta": ratio("premium factor beta on the excess"),
    },
    "low_cost": {
        "factor": ratio("cost < factor x m is low-cost"),
    },
    "ungroupable": {
        "discount": ratio("discount d on cost / m_all x scale"),
    },
    "per_diem": {
        "enabled": Param("bool"),
        "mdcs": Param("list_str", "MDC labels paid per diem (e.g. MDCT psychiatry)"),
        "adrgs": Param("list_str", "ADRGs paid per diem"),
        "min_los": Param("int", "any case with LOS >= this is paid per diem", nullable=True, lo=1),
        "max_days": Param("int", "days paid per diem at most (cap)", lo=1),
        "inside_budget": Param(
            "bool", "true: priced in points inside the budget; false: paid outside and carved out"
        ),
        "rate_yuan": pos(
            "fixed daily rate in yuan for every per-diem case; null = calibrated per category",
            nullable=True,
        ),
        "rate_basis": Param(
            "enum",
            "calibrated daily rate of a per-diem category (each listed MDC or ADRG, and long "
            "stays): total_over_days = total cost / total bed-days of its eligible history "
            "cases (ratio of sums); mean_of_case_rates = the mean of each case's cost per day",
            choices=("total_over_days", "mean_of_case_rates"),
        ),
    },
    "special_review": {
        "enabled": Param("bool"),
        "share": ratio("at most this share of each hospital's cases"),
        "min_cost_ratio": pos("candidates: cost / m at least this"),
        "selection": Param(
            "enum",
            "top_cost_ratio: highest cost ratios; flag: the cases' special_review column",
            choices=("top_cost_ratio", "flag"),
        ),
    },
    "readmission": {
        "enabled": Param("bool"),
        "days": Param("int", "admitted within this many days of the previous discharge", lo=0),
        "same": Param(
            "enum", "same patient, hospital and ...", choices=("adrg", "drg", "mdc", "any")
        ),
        "points_factor": ratio("the later case's points are multiplied by this"),
        "mode": Param(
            "enum",
            "modifier: the factor cuts the points the case otherwise gets (normal, high-cost, "
            "low-cost, short stay); case_type: readmission is a case type in the precedence "
            "(points = normal points x factor; the first type that applies wins)",
            choices=("modifier", "case_type"),
        ),
    },
    "short_stay": {
        "enabled": Param("bool"),
        "max_los": Param("int", "LOS <= this is a short stay", lo=0),
        "pricing": Param("enum", "low_cost: P x c x min(cost/m, 1)", choices=("low_cost", "zero")),
    },
    "caps": {
        "max_points_multiple": pos(
            "points capped at this multiple of the group's base points", nullable=True
        ),
    },
    "budget": {f: dict(_BUDGET) for f in FUNDS},
    "reserve": {
        "overdraw": Param(
            "enum",
            "draws on the adjustment reserve (region corridor, then hospital-corridor refunds "
            "less clawbacks) beyond what it holds: refuse = capped at what it holds (refunds "
            "scaled down pro rata); fund_pays = paid in full, the fund pays the excess on its "
            "own ledger line (reserve_overdraw)",
            choices=("refuse", "fund_pays"),
        ),
    },
    "point_value": {
        "basis": Param(
            "enum",
            "total_cost: (budget + patients' share) / points; fund: budget / points; "
            "reimbursement_ratio (DIP, method: dip): (budget / r) / points with r = "
            "dip.point_value.ratio, the fund paying points x PV - patients' share; what that "
            "pays beyond the budget (or short of it) is its own ledger line (pv_ratio_residual), "
            "drawn from (returned to) the reserve",
            choices=("total_cost", "fund", "reimbursement_ratio"),
        ),
        "bounds": {
            "mode": Param(
                "enum",
                "absolute: floor and ceiling in yuan per point; relative: shares of the "
                "budgeted point value (floor 0.9, ceiling 1.1 = within +-10% of it)",
                choices=("absolute", "relative"),
            ),
            "floor": pos("lowest final point value (yuan, or share of the budgeted)", True),
            "ceiling": pos("highest final point value (yuan, or share of the budgeted)", True),
            "budgeted_pv": Param(
                "enum",
                "what relative bounds are relative to: budget = the fund's DRG budget (after "
                "reserve and carve-out) over the year's points on the policy's basis, before "
                "the region corridor (binds only with the region corridor); given = "
                "budgeted_pv_yuan, fixed in advance; last_year = last year's point value: last "
                "year's cases priced with the current weights and policy, bounds off, paid the "
                "region table's drg_spending of that year; history (DIP) = PV_b, the history's "
                "year-weighted cost over its year-weighted score (DIP.md), per fund",
                choices=("budget", "given", "last_year", "history"),
            ),
            "budgeted_pv_yuan": Param(
                "map_float",
                "budgeted point value per fund in yuan (budgeted_pv: given), e.g. last year's "
                "final point value or the published annual budgeted point value",
                nullable=True,
            ),
        },
    },
    "presettlement": {
        "prepay_share": ratio("share of each month's provisional payment prepaid"),
        "provisional_pv": Param(
            "enum",
            "monthly_budget: the month's budget/12 over its points; fixed: provisional_pv_yuan; "
            "budgeted: the budgeted point value of point_value.bounds.budgeted_pv (e.g. PV_b "
            "from history, DIP)",
            choices=("monthly_budget", "fixed", "budgeted"),
        ),
        "provisional_pv_yuan": pos("provisional point value in yuan (fixed)", nullable=True),
    },
    "assessment": {
        "enabled": Param("bool"),
        "withhold_share": ratio(
            "share of each monthly prepayment withheld for the annual assessment"
        ),
        "default_score": Param("float", "score of a hospital without one", lo=0, hi=100),
        "full_release_score": Param(
            "float", "score at or above which all of the withheld is released", lo=0, hi=100
        ),
        "zero_release_score": Param(
            "float", "score at or below which all of the withheld is forfeited", lo=0, hi=100
        ),
        "order": Param(
            "enum",
            "after_corridor: the hospital corridor judges the payment before the forfeit, "
            "which is taken after and never refunded; before_corridor: the corridor judges "
            "the payment after the forfeit (part of a forfeit can come back as a refund)",
            choices=("after_corridor", "before_corridor"),
        ),
    },
    "hospital_corridor": {
        "enabled": Param("bool"),
        "lower": pos("received / cost below this: the fund shares the loss (超支分担)"),
        "upper": pos(
            "received / cost above this: the surplus beyond is partly recovered (结余留用)"
        ),
        "loss_share": ratio("share of the loss below lower x cost the reserve refunds"),
        "loss_floor": pos("no sharing of the loss below this ratio x cost", nullable=True),
        "surplus_keep": ratio("share of the surplus beyond upper x cost the hospital keeps"),
    },
    "plausibility": {
        "max_cost_ratio": pos(
            "cost above this multiple of the group's mean (m_all when ungrouped): held for review",
            nullable=True,
        ),
        "max_los_days": Param("int", "LOS above this: held for review", nullable=True, lo=1),
    },
    "region_corridor": {
        "enabled": Param("bool"),
        "surplus_keep": ratio(
            "share of the region's under-spend (budget - fund cost) hospitals keep"
        ),
        "overspend_band": ratio("overspend up to this share of the budget is shared"),
        "overspend_fund_share": ratio("share of the overspend inside the band the fund pays"),
    },
}

METHODS = ("drg", "dip")
AUX_CATALOGUES = ("comorbidity", "severity", "tumour", "age")

# DIP (按病种分值付费, ../shared/DIP.md): present exactly when the policy's method is dip.
DIP_SCHEMA: dict[str, Any] = {
    "version": Param("enum", "packet keys: 1.0 all procedures; 2.0 main + related", choices=("1.0", "2.0")),
    "dx_level": Param(
        "enum",
        "principal-diagnosis key: subcategory (first 5 characters, K80.1) or category (K80)",
        choices=("subcategory", "category"),
    ),
    "proc_mode": Param(
        "enum",
        "all: every procedure, order-free (1.0); main_related: main + related procedure (2.0)",
        choices=("all", "main_related"),
    ),
    "related_cost_share": ratio("a related procedure forms its own packet at this cost share"),
    "core_threshold": Param("int", "a key with at least this many history cases is core", lo=1),
    "comprehensive_min_cases": Param(
        "int", "a comprehensive packet with fewer cases folds into a coarser prefix", lo=1
    ),
    "score_scale": Param("int", "score = RW x scale (100 or 1000)", lo=1),
    "trim": {
        "rule": Param("enum", "trimming inside a packet", choices=("sd", "percentile", "none")),
        "k": pos("sd: mean +- k SD kept"),
        "lower": ratio("percentile: lower percentile kept"),
        "upper": ratio("percentile: upper percentile kept"),
    },
    "year_weights": Param("list_float", "history years' weights, oldest to newest (1:2:7)"),
    "aux": {
        "catalogues": Param(
            "list_enum", "auxiliary catalogues applied", choices=AUX_CATALOGUES
        ),
        "min_cases": Param("int", "a packet needs this many cases to be split", lo=1),
        "min_subgroup_cases": Param(
            "int", "a subgroup needs this many cases for a coefficient", lo=1
        ),
        "cv_min": pos("a packet's CV must be at least this for a split"),
        "cv_cut": ratio("the split must cut the CV by at least this share"),
    },
    "level_min_cases": Param(
        "int",
        "a packet's mean at a hospital level (C) needs this many cases at that level; fewer: "
        "the packet mean",
        lo=1,
    ),
    "outliers": {
        "low": pos("low outlier: cost <= low x C (score = base x cost / C)"),
        "high": pos("high outlier: cost >= high x C (score = base x (cost / C - high + 1))"),
        "extreme": pos("extreme: cost > extreme x C, flagged for review", nullable=True),
        "inclusive": Param(
            "bool", "true: the boundaries belong to the outliers (<= low, >= high), as DIP.md"
        ),
        "extreme_mode": Param(
            "enum",
            "an extreme case: high_cost = flagged and paid by the high-cost formula until "
            "reviewed; review = held for review (paid 0, listed); coefficient = paid base x "
            "coefficient",
            choices=("high_cost", "review", "coefficient"),
        ),
        "coef_on_outliers": Param(
            "bool", "the hospital coefficient multiplies low and high outliers' scores too"
        ),
    },
    "blank_ratio": ratio("a blank packet (空白病组) scores cost / M x scale x this"),
    "point_value": {
        "ratio": Param(
            "float_or_enum",
            "reimbursement ratio r of point_value.basis reimbursement_ratio: history = DIP "
            "cases' fund payment over their total cost in the history, year-weighted, per "
            "fund; or a number in (0, 1]",
            choices=("history",),
            lo=0.0,
            hi=1.0,
        ),
    },
}
OPTIONAL_SECTIONS = {"dip": DIP_SCHEMA}  # required with method dip, refused with method drg

SUPERVISION_FLAGS = ("readmission", "split", "low_cost", "long_stay", "upcoding")

# Supervision flags (drgsim.dip.supervision; DIP.md's last section), for drg and dip policies
# alike. The section and each of its keys are optional: a key left out takes the default of
# drgsim.dip.supervision.DEFAULTS (the flags are computed only when asked, never paid on).
SUPERVISION_SCHEMA: dict[str, Any] = {
    "flags": Param("list_enum", "flags computed", choices=SUPERVISION_FLAGS),
    "dx_level": Param(
        "enum", "principal-diagnosis key: subcategory (K80.1) or category (K80)",
        choices=("subcategory", "category"),
    ),
    "min_group_cases": Param(
        "int", "a group's own mean cost and LOS need this many ok cases", lo=1
    ),
    "readmission": {
        "days": Param("int", "readmitted for the same condition within N days", lo=0),
        "same_hospital": Param("bool", "the readmission is at the same hospital"),
    },
    "split": {
        "days": Param("int", "split admission: admitted within N days of a discharge", lo=0),
    },
    "low_cost": {
        "ratio": Param("float", "low-threshold admission: cost below this x group mean",
                       lo=0.0, hi=1.0),
        "exclude_discharge_modes": Param(
            "list_int", "discharge modes never flagged low-cost (transfer, against advice, death)"
        ),
    },
    "long_stay": {"factor": pos("over-long stay: LOS above this x the group's mean LOS")},
    "upcoding": {
        "margin": ratio("a hospital's higher-scored share above the region's by more than this"),
        "min_cases": Param("int", "cases of a diagnosis a hospital needs for the signal", lo=1),
    },
}
ANY_METHOD_SECTIONS = {"supervision": SUPERVISION_SCHEMA}  # optional, partial, any method

# When a dated value applies (README "Dated values"): case-level keys take the value in
# force on each case's discharge date, month-level keys on the first day of the month,
# year-level keys on 1 January of the simulated year. Keyed by dotted prefix; the longest
# matching prefix wins.
LEVELS: dict[str, str] = {
    "calibration": "year",
    "points": "year",
    "coefficients": "case",
    "case_types": "year",
    "statuses": "year",
    "high_cost": "case",
    "low_cost": "case",
    "ungroupable": "case",
    "per_diem": "case",
    "special_review": "year",
    "readmission": "case",
    "short_stay": "case",
    "caps": "case",
    "budget": "year",
    "reserve": "year",
    "point_value": "year",
    "presettlement": "month",
    "assessment": "year",
    "hospital_corridor": "year",
    "region_corridor": "year",
    "plausibility": "year",
    "method": "year",
    "dip": "year",
    "dip.outliers": "case",
    "dip.blank_ratio": "case",
    "supervision": "year",
}


def level_of(key: str) -> str:
    """``case``, ``month`` or ``year``: when the dated values of the dotted ``key`` apply."""
    parts = key.split(".")
    for i in range(len(parts), 0, -1):
        lv = LEVELS.get(".".join(parts[:i]))
        if lv is not None:
            return lv
    raise KeyError(f"{key}: no level")


TOP_META = ("name", "description", "scheme", "extends", "method")
LEAF_META = ("values", "description", "unit", "reference")
