"""Policy loader: the bundled baseline validates; each broken fixture fails with its words."""

from __future__ import annotations

from pathlib import Path

import pytest

from drgsim.errors import ValidationError
from drgsim.policy import PolicyError, load_policy, parse_policy

FIX = Path(__file__).parent / "fixtures" / "policies"

# fixture file -> (line, key or None, words of the message)
BROKEN = {
    "unknown_key.yaml": (93, "high_cost.betta", "unknown key"),
    "wrong_type.yaml": (98, "low_cost.factor", "expected a number"),
    "date_out_of_order.yaml": (18, "calibration.inflation.values", "out of order"),
    "bad_enum.yaml": (220, "point_value.basis", "is not one of total_cost, fund"),
    "duplicate_key.yaml": (103, None, "duplicate key"),
    "out_of_range.yaml": (258, "presettlement.prepay_share", "above the maximum"),
    "bad_date.yaml": (21, None, "is not a date"),
    # relative mode: 90 (a percent) where a share of the budgeted point value (0.9) is meant
    "bad_pv_bounds.yaml": (
        232,
        "point_value.bounds.floor",
        "90 is not a share of the budgeted point value",
    ),
    "pv_bounds_crossed.yaml": (232, "point_value.bounds.floor", "floor 1.1 is above ceiling 0.9"),
    "pv_budgeted_missing.yaml": (
        254,
        "point_value.bounds.budgeted_pv_yuan",
        "budgeted_pv: given need budgeted_pv_yuan per fund",
    ),
    # hostile files (tests/test_yaml_safety.py): refused before any schema check
    "gbk_encoded.yaml": (47, None, "not UTF-8 text"),
    "billion_laughs.yaml": (2, None, "YAML anchor &lol0 is not allowed"),
}


def test_baseline_loads_and_resolves():
    p = load_policy()
    v = p.at(2024)
    assert v["points"]["scale"] == 100
    assert v["high_cost"]["tiers"][-1] == {"rw_upto": None, "k": 1.5}
    assert v["case_types"]["precedence"][-1] == "normal"
    assert v["budget"]["employee"]["source"] == "region_table"
    assert len(p.text_hash) == 16


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_fixture(name):
    line, key, words = BROKEN[name]
    with pytest.raises(PolicyError) as exc:
        load_policy(FIX / name)
    assert isinstance(exc.value, ValidationError)
    hits = [p for p in exc.value.problems if words in p.message]
    assert hits, str(exc.value)
    assert hits[0].line == line
    assert hits[0].field == key
    assert f"{name}:{line}:" in str(exc.value)


def test_every_fixture_is_tested():
    assert {p.name for p in FIX.glob("*.yaml")} == set(BROKEN)


def test_dated_values_resolve_by_date():
    text = load_policy().source
    src = (
        Path(text)
        .read_text()
        .replace(
            "  beta:\n    values: {2019-01-01: 1.0}",
            "  beta:\n    values: {2019-01-01: 1.0, 2025-07-01: 0.8}",
        )
    )
    p = parse_policy(src, "dated.yaml")
    assert p.at("2025-06-30")["high_cost"]["beta"] == 1.0
    assert p.at("2025-07-01")["high_cost"]["beta"] == 0.8
    assert p.at(2025)["high_cost"]["beta"] == 0.8


def test_missing_value_before_first_date():
    with pytest.raises(PolicyError, match="no value in force"):
        load_policy().at("2018-12-31")


def test_overlay_validated():
    p = load_policy().with_values({"high_cost.beta": 0.7, "point_value.basis": "fund"})
    assert p.at(2024)["high_cost"]["beta"] == 0.7
    with pytest.raises(PolicyError, match="unknown key"):
        load_policy().with_values({"high_cost.bta": 0.7})
    with pytest.raises(PolicyError, match="not one of"):
        load_policy().with_values({"point_value.basis": "both"})


def test_missing_key_and_bad_tiers():
    src = Path(load_policy().source).read_text()
    broken = src.replace("        - {rw_upto: null, k: 1.5}\n", "").replace(
        "  beta:\n    values: {2019-01-01: 1.0}\n", ""
    )
    with pytest.raises(PolicyError) as exc:
        parse_policy(broken, "b.yaml")
    msgs = str(exc.value)
    assert "high_cost.beta: missing" in msgs
    assert "last tier must have rw_upto null" in msgs


def test_cross_check_names_a_line():
    src = (
        Path(load_policy().source)
        .read_text()
        .replace(
            "  lower:\n    values: {2019-01-01: 0.9}", "  lower:\n    values: {2019-01-01: 1.3}"
        )
    )
    with pytest.raises(PolicyError) as exc:
        parse_policy(src, "x.yaml")
    p = exc.value.problems[0]
    assert p.field == "hospital_corridor" and "lower must not exceed upper" in p.message
    assert p.line is not None and "upper:" in src.splitlines()[p.line - 1]


def test_point_value_bounds_resolve_and_overlays_are_cross_checked():
    v = load_policy().at(2024)["point_value"]["bounds"]
    assert v == {
        "mode": "relative",
        "floor": None,
        "ceiling": None,
        "budgeted_pv": "last_year",
        "budgeted_pv_yuan": None,
    }
    p = load_policy().with_values(
        {
            "point_value.bounds.floor": 0.9,
            "point_value.bounds.ceiling": 1.1,
            "point_value.bounds.budgeted_pv": "given",
            "point_value.bounds.budgeted_pv_yuan": {"employee": 118.5, "resident": 96.0},
        }
    )
    assert p.at(2024)["point_value"]["bounds"]["budgeted_pv_yuan"]["resident"] == 96.0
    # a scenario overlay obeys the rules across parameters too
    with pytest.raises(PolicyError, match="floor 1.1 is above ceiling 0.9"):
        load_policy().with_values(
            {"point_value.bounds.floor": 1.1, "point_value.bounds.ceiling": 0.9}
        )
    with pytest.raises(PolicyError, match="'staff' is not a fund"):
        load_policy().with_values({"point_value.bounds.budgeted_pv_yuan": {"staff": 100.0}})
