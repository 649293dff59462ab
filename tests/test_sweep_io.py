"""Scenario files, the scenario/sweep CLI and the sweep's workbook and plots (issue 18).

The report is built from the tidy tables the sweep contract fixes, so it is tested here on a
small hand-made result; the end-to-end CLI sweep needs the engine (drgsim.prepare).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drgsim.cli import main
from drgsim.errors import ScenarioError, ValidationError
from drgsim.scenarios.files import (
    changes,
    expand_range,
    load_scenario_files,
    load_scenarios,
)

pytestmark = pytest.mark.filterwarnings("ignore:no CJK font found")

BUNDLED = Path(__file__).resolve().parents[1] / "src" / "drgsim" / "data" / "scenarios"


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as ei:
        load_scenarios(path)
    return [str(p) for p in ei.value.problems]


# ----------------------------------------------------------------------------- files
GOOD = """\
name: budget_and_beta
set:
  high_cost.beta: 0.9
  presettlement.prepay_share: {2024-07-01: 0.8}
grid:
  budget.*.growth: [0.02, 0.04, 0.06]
  point_value.bounds.floor: "0.85:0.95:0.05"
behaviour:
  volume_growth: {dist: normal, mean: 0.03, sd: 0.01}
draws: {n: 100, seed: 7}
"""


def test_good_file_loads(tmp_path):
    s = load_scenarios(write(tmp_path, GOOD))
    assert isinstance(s, type(load_scenario_files(tmp_path)[0]))
    assert s.name == "budget_and_beta"
    assert s.set == {"high_cost.beta": 0.9, "presettlement.prepay_share": {"2024-07-01": 0.8}}
    assert s.grid == {"budget.*.growth": [0.02, 0.04, 0.06],
                      "point_value.bounds.floor": [0.85, 0.9, 0.95]}
    assert s.behaviour == {"volume_growth": {"dist": "normal", "mean": 0.03, "sd": 0.01}}
    assert (s.draws_n, s.seed) == (100, 7)
    assert s.n_scenarios == 1 + 9
    overlays = s.overlays()
    assert overlays[0] == ("baseline", {})
    assert overlays[1][1] == {"high_cost.beta": 0.9,
                              "presettlement.prepay_share": {"2024-07-01": 0.8},
                              "budget.*.growth": 0.02, "point_value.bounds.floor": 0.85}
    g = s.grid()  # the contract's Grid of the axes (the sweep adds set and behaviour)
    assert g.values() == {"budget.*.growth": [0.02, 0.04, 0.06],
                          "point_value.bounds.floor": [0.85, 0.9, 0.95]}


def test_changes_show_only_what_differs(tmp_path):
    s = load_scenarios(write(tmp_path, GOOD))
    rows = changes(s.base_policy(), s.overlays()[1][1])
    got = {(k, d): (was, new) for k, d, was, new in rows}
    assert got[("budget.employee.growth", "")] == (0.05, 0.02)
    assert got[("budget.resident.growth", "")] == (0.05, 0.02)
    assert got[("presettlement.prepay_share", "2024-07-01")] == (0.9, 0.8)
    assert ("point_value.bounds.ceiling", "") not in got  # unchanged keys are not listed
    assert changes(s.base_policy(), {}) == []


def test_zip_varies_together(tmp_path):
    s = load_scenarios(write(tmp_path, """\
name: z
grid:
  budget.*.growth: [0.02, 0.04]
  high_cost.beta: [0.8, 1.0]
  low_cost.factor: [0.3, 0.4, 0.5]
zip: [[budget.*.growth, high_cost.beta]]
"""))
    assert s.n_scenarios == 1 + 2 * 3
    pairs = {(o["budget.*.growth"], o["high_cost.beta"]) for _, o in s.overlays()[1:]}
    assert pairs == {(0.02, 0.8), (0.04, 1.0)}


KEYS = ("high_cost.beta", "low_cost.factor", "budget.*.growth", "hospital_corridor.lower")


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lengths=st.lists(st.integers(1, 3), min_size=1, max_size=4), zipped=st.booleans())
def test_file_expands_as_the_sweeps_grid(tmp_path, lengths, zipped):
    """The file's scenarios (shown by `scenario show`) are the sweep's Grid's, in order."""
    from drgsim.scenarios.grid import Grid

    axes = {k: [round(0.1 + 0.1 * i + 0.01 * j, 2) for i in range(n)]
            for j, (k, n) in enumerate(zip(KEYS, lengths, strict=False))}
    keys = list(axes)
    z = [keys[:2]] if zipped and len(keys) >= 2 and len(axes[keys[0]]) == len(axes[keys[1]]) \
        else []
    text = "name: g\ngrid:\n" + "".join(f"  {k}: {v}\n" for k, v in axes.items())
    if z:
        text += f"zip: [[{z[0][0]}, {z[0][1]}]]\n"
    spec = load_scenarios(write(tmp_path, text))
    ours = [o for _, o in spec.overlays()]
    theirs = Grid(axes, zip=z or False).scenarios()
    assert ours == theirs
    assert spec.n_scenarios == len(theirs)
    assert spec.grid().scenarios() == theirs


def test_dict_entry_and_level_alias(tmp_path):
    s = load_scenarios(write(tmp_path, "name: c\nset: {coefficients.by_level.三级: 1.05}\n"))
    rows = changes(s.base_policy(), s.overlays()[1][1])
    assert rows == [("coefficients.by_level.3", "", 1.0, 1.05)]


def test_ranges():
    assert expand_range({"min": 0.8, "max": 1.0, "count": 3}) == [0.8, 0.9, 1.0]
    assert expand_range("0.02:0.06:0.02") == [0.02, 0.04, 0.06]
    assert expand_range([1, 2]) is None
    with pytest.raises(ValueError, match="step must be positive"):
        expand_range("1:2:0")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("name: x\nset:\n  budget.growth: 0.03\n",
         "s.yaml:3: budget.growth: unknown key (did you mean budget.*.growth?)"),
        ("name: x\nset:\n  high_cost.betta: 0.9\n",
         "s.yaml:3: high_cost.betta: unknown key (did you mean high_cost.beta?)"),
        ("name: x\nset:\n  high_cost.beta: high\n",
         "s.yaml:3: high_cost.beta: expected a number, got str 'high'"),
        ("name: x\ngrid:\n  budget.*.growth: [0.02, yes]\n",
         "s.yaml:3: budget.*.growth: expected a number, got str 'yes'"),
        ("name: x\ngrid:\n  high_cost.beta: 0.9\n",
         "s.yaml:3: high_cost.beta: expected a list of values, {min, max, count} or "
         "'a:b:step', got float 0.9"),
        ("name: x\nbehaviour:\n  volume_growth: {dist: gaussian, mean: 0.03, sd: 0.01}\n"
         "draws: {n: 5, seed: 1}\n",
         "s.yaml:3: behaviour.volume_growth: dist 'gaussian' is not one of uniform, normal, "
         "lognormal, triangular"),
        ("name: x\nbehaviour:\n  coding_creep: {dist: normal, mean: 0.02, sd: -1}\n"
         "draws: {n: 5, seed: 1}\n",
         "s.yaml:3: behaviour.coding_creep: normal: sd must be ≥ 0, got -1"),
        ("name: x\nbehaviour:\n  cost_inflation: {dist: triangular, min: 0, mode: 0.5, "
         "max: 0.2}\ndraws: {n: 5, seed: 1}\n",
         "s.yaml:3: behaviour.cost_inflation: triangular: mode 0.5 is not between min and max"),
        ("name: x\nbehaviour:\n  coding_creep: 1.5\n",
         "s.yaml:3: behaviour.coding_creep: 1.5 is outside [0, 1]"),
        ("name: x\nbehaviour:\n  los_change: {dist: lognormal, mean: -1, sd: 0.1}\n"
         "draws: {n: 5, seed: 1}\n",
         "s.yaml:3: behaviour.los_change: lognormal: mean (of the value) must be > 0"),
        ("name: x\nbehaviour:\n  volume_growth: {dist: normal, mean: 0.03, sd: 0.01}\n",
         "s.yaml:2: draws: a distribution needs draws: {n: .., seed: ..}"),
        ("name: x\nbehaviour:\n  volume_grwth: 0.03\n",
         "s.yaml:3: behaviour.volume_grwth: unknown behaviour assumption (did you mean "
         "volume_growth?) (one of volume_growth, cost_inflation, coding_creep, los_change)"),
        ("name: x\ngrid:\n  budget.*.growth: [0.02, 0.04]\n  high_cost.beta: [0.8, 0.9, 1]\n"
         "zip:\n  - [budget.*.growth, high_cost.beta]\n",
         "s.yaml:6: zip: grid axes of unequal length under zip: budget.*.growth has 2, "
         "high_cost.beta has 3"),
        ("name: x\nsett: {high_cost.beta: 0.9}\n",
         "s.yaml:2: sett: unknown key (did you mean set?) (a scenario file has name, "
         "description, base, set, grid, zip, behaviour, draws)"),
        ("name: x\ndraws: {n: 0, seed: 1}\n",
         "s.yaml:2: draws.n: expected a whole number 1..100,000, got 0"),
        ("name: x\nset:\n  point_value.bounds.floor: 1.2\n  point_value.bounds.ceiling: 1.1\n",
         "floor 1.2 is above ceiling 1.1"),
        ("name: x\nset:\n  coefficients.by_level.四级: 1.0\n",
         "s.yaml:3: coefficients.by_level.四级: unknown entry '四级' of coefficients.by_level"),
    ],
)
def test_errors_name_file_line_key(tmp_path, text, expected):
    got = problems(write(tmp_path, text))
    assert any(expected in p for p in got), got
    assert all(p.startswith(str(tmp_path / "s.yaml") + ":") for p in got), got


def test_every_problem_is_collected(tmp_path):
    got = problems(write(tmp_path, "name: x\nset:\n  budget.growth: 0.03\n"
                                   "  high_cost.beta: high\ndraws: {n: 3, sed: 1}\n"))
    assert len(got) == 3, got


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: &a x\nset: {high_cost.beta: 0.9}\n", "anchor"),
        ("a: &a [1]\nb: *a\n", "anchor"),
        ("name: x\nname: y\n", "duplicate key"),
        ("name: x\nset:\n  presettlement.prepay_share: {2024-02-30: 0.8}\n",
         "s.yaml:3: '2024-02-30' is not a date YYYY-MM-DD"),
        ("name: [x\n", "not valid YAML"),
        ("set: " + "[" * 40 + "]" * 40 + "\n", "nested more than"),
    ],
)
def test_unsafe_or_broken_yaml(tmp_path, text, message):
    got = problems(write(tmp_path, text))
    assert len(got) == 1 and message in got[0], got


def test_size_bounded(tmp_path):
    p = write(tmp_path, "name: x\n" + "# padding\n" * 200_000)
    got = problems(p)
    assert "limit" in got[0] or "larger" in got[0], got


def test_scenario_error_is_a_validation_error():
    assert issubclass(ScenarioError, ValidationError)
    assert ScenarioError.kind == "scenario file"


def test_folder_is_many_specs_and_names_are_unique(tmp_path):
    write(tmp_path, "name: a\nset: {high_cost.beta: 0.9}\n", "a.yaml")
    write(tmp_path, "name: b\ngrid: {high_cost.beta: [0.8, 1.0]}\n", "b.yml")
    write(tmp_path, "ignored", "_notes.yaml")
    specs = load_scenarios(tmp_path)
    assert [s.name for s in specs] == ["a", "b"]
    write(tmp_path, "name: a\n", "c.yaml")
    got = problems(tmp_path)
    assert got == [f"{tmp_path / 'c.yaml'}:1: name: 'a' is also the name in "
                   f"{tmp_path / 'a.yaml'}"]


def test_readme_example_is_valid(tmp_path):
    readme = (BUNDLED.parents[3] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Scenarios and sweeps", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    spec = load_scenarios(write(tmp_path, example))
    assert spec.n_scenarios == 1 + 2 * 3 and spec.draws_n == 100


def test_bundled_scenarios_are_valid():
    specs = load_scenario_files(BUNDLED)
    assert len(specs) >= 3
    assert any(s.draws_n for s in specs)


# ----------------------------------------------------------------------------- CLI
def test_cli_validate_and_show(tmp_path):
    runner = CliRunner()
    good = write(tmp_path, GOOD, "good.yaml")
    r = runner.invoke(main, ["scenario", "validate", str(good)])
    assert r.exit_code == 0, r.output
    assert "10 scenarios" in r.output
    r = runner.invoke(main, ["scenario", "show", str(good), "--limit", "2"])
    assert r.exit_code == 0, r.output
    assert "budget.employee.growth: 0.05 -> 0.02" in r.output
    assert "presettlement.prepay_share: 0.9 -> 0.8 from 2024-07-01" in r.output
    assert "point_value.bounds.ceiling" not in r.output
    assert "... and 8 more" in r.output
    r = runner.invoke(main, ["scenario", "validate"])  # the bundled examples
    assert r.exit_code == 0 and r.output.count("ok: ") >= 3, r.output
    bad = write(tmp_path, "name: x\nset:\n  budget.growth: 0.03\n", "bad.yaml")
    r = runner.invoke(main, ["scenario", "validate", str(bad)])
    assert r.exit_code == 2
    assert f"{bad}:3: budget.growth: unknown key (did you mean budget.*.growth?)" in r.output
    assert "Traceback" not in r.output
    r = runner.invoke(main, ["scenario", "show", str(bad)])
    assert r.exit_code == 2 and r.output.startswith("error: "), r.output


def test_cli_help_has_examples():
    runner = CliRunner()
    for args in (["scenario", "--help"], ["scenario", "validate", "--help"],
                 ["scenario", "show", "--help"], ["sweep", "--help"]):
        r = runner.invoke(main, args)
        assert r.exit_code == 0, r.output
        assert "Example" in r.output, args


# ----------------------------------------------------------------------------- report
@dataclass
class FakeSweep:
    """The tidy tables of a SweepResult, built by hand (the report's only input)."""

    scenarios: pd.DataFrame
    routes: pd.DataFrame
    hospitals: pd.DataFrame
    funds: pd.DataFrame
    provenance: dict[str, str] = field(default_factory=dict)

    def summary(self, losing: float = -0.02) -> pd.DataFrame:
        h = self.hospitals
        g = h.groupby("scenario")["delta_pct"]
        f = self.funds.groupby("scenario")
        return pd.DataFrame({
            "pv": f["pv_total_cost"].mean(),
            "fund_balance_fen": f["fund_balance_fen"].mean(),
            "change_p5": g.quantile(0.05), "change_p50": g.quantile(0.5),
            "change_p95": g.quantile(0.95),
            "n_losing": h[h["delta_pct"] < losing].groupby("scenario")["hospital_id"].nunique()
            .reindex(g.size().index, fill_value=0),
            "drg_coverage": 0.7,
        }).reset_index()


def fake_sweep(draws: int = 3, hospitals: int = 6, balance: bool = True) -> FakeSweep:
    rng = np.random.default_rng(5)
    axes = [(None, None)] + [(g, b) for g in (0.02, 0.04) for b in (0.8, 1.0)]
    scen = pd.DataFrame({
        "scenario": range(len(axes)),
        "name": ["baseline"] + [f"g={g}, beta={b}" for g, b in axes[1:]],
        "budget.*.growth": [a for a, _ in axes], "high_cost.beta": [b for _, b in axes],
        "overlay": [json.dumps({} if g is None else {"budget.*.growth": g,
                                                      "high_cost.beta": b}) for g, b in axes],
        "route": ["settlement"] + ["cells"] * 4,
    })
    rows, frows = [], []
    base_recv = {}
    for s, (g, b) in enumerate(axes):
        for d in range(draws):
            for fund in ("employee", "resident"):
                pv = 10.0 * (1 + (g or 0.05)) + rng.normal(0, 0.1)
                frows.append({"scenario": s, "draw": d, "fund": fund,
                              "budget_fen": int(1e9 * (1 + (g or 0.05))),
                              "budget_arithmetic": "x", "reserve_fen": 5_000_000,
                              "pv_total_cost": pv, "pv_fund": pv * 0.8, "bound": "none",
                              "floor_topup_fen": 0, "ceiling_withheld_fen": 0,
                              "refunds_fen": 100, "clawbacks_fen": 50, "forfeited_fen": 0,
                              "fund_balance_fen": (int(rng.integers(-5e8, 5e8)) if balance
                                                   else pd.NA)})
                for i in range(hospitals):
                    recv = int(1e8 * (i + 1) * (1 + (g or 0.05)) * (b or 1.0)
                               + rng.integers(-1e6, 1e6))
                    if s == 0:
                        base_recv[(d, fund, i)] = recv
                    delta = recv - base_recv[(d, fund, i)]
                    rows.append({
                        "scenario": s, "draw": d, "fund": fund, "hospital_id": f"H{i:02d}",
                        "hospital_name": f"医院{i}", "level": "三级" if i < 2 else "二级",
                        "cases": 100 + i, "points": 1000.5 * (i + 1), "cost_fen": recv,
                        "payment_fen": recv, "annual_payment_fen": recv, "withheld_fen": 0,
                        "forfeited_fen": 0, "corridor_refund_fen": 0,
                        "corridor_clawback_fen": 0, "received_fen": recv, "surplus_fen": 0,
                        "delta_fen": delta, "delta_pct": delta / base_recv[(d, fund, i)]})
    funds = pd.DataFrame(frows)
    funds["fund_balance_fen"] = funds["fund_balance_fen"].astype("Int64")
    return FakeSweep(scen, pd.DataFrame({"scenario": scen["scenario"], "route": scen["route"],
                                         "reason": "test"}),
                     pd.DataFrame(rows).astype({c: "category" for c in (  # as the engine
                         "fund", "hospital_id", "hospital_name", "level")}), funds,
                     {"drgsim.version": "test", "drgsim.policy": "baseline"})


def test_report_writes_tables_workbook_plots(tmp_path):
    import openpyxl
    import pyarrow.parquet as pq

    from drgsim.report.sweep import write_sweep_outputs

    res = fake_sweep()
    out = tmp_path / "sweep"
    written = write_sweep_outputs(res, out, report=[2, 4])
    names = {p.name for p in written.values()}
    assert {"scenarios.parquet", "hospitals.parquet", "funds.parquet", "summary.parquet",
            "routes.parquet", "sweep.xlsx", "pv_fan.png", "winners_losers.png",
            "fund_balance.png", "heatmap.png"} <= names
    for p in written.values():
        assert p.stat().st_size > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == names
    meta = pq.read_schema(out / "hospitals.parquet").metadata
    assert meta[b"drgsim.policy"] == b"baseline"
    assert pd.read_parquet(out / "hospitals.parquet").shape[0] == len(res.hospitals)

    wb = openpyxl.load_workbook(out / "sweep.xlsx")
    assert wb.sheetnames[0] == "说明" and wb.sheetnames[-1] == "术语"
    summ = wb["汇总 summary"]
    head = [c.value for c in summ[1]]
    assert any("\nchange_p50" in (h or "") for h in head), head
    assert summ.max_row == 1 + len(res.scenarios)
    col = next(i for i, h in enumerate(head) if h.endswith("\npv"))
    assert all(isinstance(r[col].value, float) for r in summ.iter_rows(min_row=2))
    hs = wb["医院变化 hospitals"]
    hhead = [c.value for c in hs[1]]
    ids = {r[0].value for r in hs.iter_rows(min_row=2)}
    assert ids == {2, 4}  # the reported scenarios only
    # three draws: per hospital the mean and P5/P50/P95 over draws
    assert any(h.endswith("\ndelta_pct_p50") for h in hhead), hhead
    assert hs.max_row == 1 + 2 * 2 * 6
    dcol = next(i for i, h in enumerate(hhead) if h.endswith("\ndelta_yuan"))
    assert all(isinstance(r[dcol].value, (int, float)) for r in hs.iter_rows(min_row=2))
    # money in yuan in the sheet, fen in parquet
    d = res.hospitals
    want = d[(d.scenario == 2) & (d.fund == "employee") & (d.hospital_id == "H00")]
    first = next(r for r in hs.iter_rows(min_row=2) if r[0].value == 2)
    assert first[dcol].value == pytest.approx(round(want["delta_fen"].mean()) / 100, abs=0.01)


def test_report_single_draw_and_no_fund_balance(tmp_path):
    import openpyxl

    from drgsim.report.sweep import write_sweep_outputs

    res = fake_sweep(draws=1, balance=False)
    written = write_sweep_outputs(res, tmp_path / "o")
    names = {p.name for p in written.values()}
    assert "fund_balance.png" not in names and "heatmap.png" in names
    wb = openpyxl.load_workbook(tmp_path / "o" / "sweep.xlsx")
    text = " ".join(str(c.value) for row in wb["说明"].iter_rows() for c in row)
    assert "not drawn: no fund balance" in text and "未计算 not computed" in text
    hs = wb["医院变化 hospitals"]
    # the default: the first five scenarios after the baseline (here 4), rows as they are
    assert {r[0].value for r in hs.iter_rows(min_row=2)} == {1, 2, 3, 4}
    assert any(str(c.value).endswith("\ndelta_pct") for c in hs[1])


def test_report_selection():
    from drgsim.report.sweep import parse_report, reported_scenarios

    res = fake_sweep(draws=1)
    assert parse_report("2") == 2
    assert parse_report("3,1") == [3, 1]
    with pytest.raises(ValueError, match="give a count"):
        parse_report("two")
    assert reported_scenarios(res, 2) == [1, 2]
    assert reported_scenarios(res, [3, 1]) == [3, 1]
    with pytest.raises(ValueError, match="no scenario 9"):
        reported_scenarios(res, [9])


def test_report_respects_excel_row_limit(monkeypatch):
    import drgsim.report.sweep as rs

    res = fake_sweep(draws=1)
    monkeypatch.setattr(rs, "EXCEL_MAX_ROWS", 1 + 2 * 12 + 5)  # room for two scenarios
    with pytest.warns(UserWarning, match="2 of the 4 reported"):
        assert rs.reported_scenarios(res, 4) == [1, 2]


# ----------------------------------------------------------------------------- end to end
YEAR = 2024


@pytest.fixture(scope="module")
def small_region(tmp_path_factory):
    """Three years of fake priced cases over six hospitals, as the CLI reads them."""
    from drgsim.pricing.fake import fake_cases, fake_hospitals, fake_weights

    root = tmp_path_factory.mktemp("region")
    parts = [fake_cases(500, n_hosp=6, seed=y, year=y).assign(
        case_id=lambda d, y=y: d["case_id"] + y * 10**6) for y in (YEAR - 2, YEAR - 1, YEAR)]
    pd.concat(parts, ignore_index=True).to_parquet(root / "cases.parquet")
    fake_hospitals(6).assign(name=lambda d: "hospital " + d["hospital_id"]).to_parquet(
        root / "hospitals.parquet")
    w = fake_weights()
    w.assign(m_all_fen=float(w.attrs["m_all_fen"])).to_parquet(root / "weights.parquet")
    rows = []
    for y in (YEAR - 1, YEAR):
        rows.append(("employee", y, 3_000_000.0, 9_000_000.0, 4_000_000.0))
        rows.append(("resident", y, 4_500_000.0, 12_000_000.0, 6_500_000.0))
    pd.DataFrame(rows, columns=["fund", "year", "drg_spending", "fund_income",
                                "other_spending"]).to_parquet(root / "region.parquet")
    return root


def sweep_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["sweep", str(root / "cases.parquet"), "--grouped",
            "--weights", str(root / "weights.parquet"),
            "--hospitals", str(root / "hospitals.parquet"),
            "--region", str(root / "region.parquet"), "-o", str(out), *extra]


def test_cli_sweep_grid_end_to_end(small_region, tmp_path):
    import openpyxl

    out = tmp_path / "out"
    r = CliRunner().invoke(main, sweep_args(small_region, out, "--grid",
                                            "budget.*.growth=0.02,0.06",
                                            "--grid", "high_cost.beta=0.8,1.0",
                                            "--report", "2", "--monthly"))
    assert r.exit_code == 0, r.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"scenarios.parquet", "hospitals.parquet", "funds.parquet", "summary.parquet",
            "sweep.xlsx", "pv_fan.png", "winners_losers.png", "fund_balance.png",
            "heatmap.png"} <= set(manifest["files"])
    scen = pd.read_parquet(out / "scenarios.parquet")
    assert len(scen) == 1 + 4
    months = pd.read_parquet(out / "months.parquet")  # --monthly
    assert set(months["scenario"]) == set(range(5))
    h = pd.read_parquet(out / "hospitals.parquet")
    assert (h.loc[h["scenario"] == 0, "delta_fen"] == 0).all()
    wb = openpyxl.load_workbook(out / "sweep.xlsx")
    hs = wb["医院变化 hospitals"]
    assert {r[0].value for r in hs.iter_rows(min_row=2)} == {1, 2}
    assert wb["汇总 summary"].max_row == 1 + 5


def test_cli_sweep_scenario_folder(small_region, tmp_path):
    sc = tmp_path / "sc"
    sc.mkdir()
    write(sc, "name: growth\ngrid: {budget.*.growth: [0.02, 0.04]}\n", "growth.yaml")
    write(sc, "name: ../../floor\nset: {point_value.bounds.floor: 0.95}\n", "floor.yaml")
    out = tmp_path / "out"
    r = CliRunner().invoke(main, sweep_args(small_region, out, "--scenarios", str(sc)))
    assert r.exit_code == 0, r.output
    top = json.loads((out / "manifest.json").read_text())
    assert top["parts"] == ["floor", "growth"]  # the files' names, sorted, never the
    assert not (tmp_path / "floor").exists()    # scenario names (free text) as paths
    for name, n in (("growth", 3), ("floor", 2)):
        assert (out / name / "manifest.json").exists()
        assert len(pd.read_parquet(out / name / "scenarios.parquet")) == n
        assert f"{name}/sweep.xlsx" in top["files"]


def test_cli_sweep_errors_are_one_line(small_region, tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, sweep_args(small_region, tmp_path / "o", "--grid",
                                       "budget.growth=0.02,0.04"))
    assert r.exit_code == 2
    assert "budget.growth: unknown key (did you mean budget.*.growth?)" in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "o").exists()
    r = runner.invoke(main, sweep_args(small_region, tmp_path / "o"))
    assert r.exit_code == 2 and "give --scenarios FILE|DIR or --grid" in r.output
    r = runner.invoke(main, sweep_args(small_region, tmp_path / "o", "--grid",
                                       "high_cost.beta=0.8", "--report", "x"))
    assert r.exit_code == 2 and "give a count" in r.output
    r = runner.invoke(main, sweep_args(small_region, tmp_path / "o", "--grid",
                                       "high_cost.beta=0.8", "--report", "1,7"))
    assert r.exit_code == 2 and "--report: no scenario 7 to report (ids run 0..1)" in r.output, r.output
    assert "Traceback" not in r.output and not (tmp_path / "o" / "manifest.json").exists()


def test_cli_sweep_file_with_draws(small_region, tmp_path):
    import openpyxl

    f = write(tmp_path, "name: creep\ngrid: {budget.*.growth: [0.03, 0.05]}\n"
                        "behaviour:\n  coding_creep: {dist: uniform, min: 0.01, max: 0.03}\n"
                        "draws: {n: 40, seed: 3}\n", "creep.yaml")
    out = tmp_path / "out"
    r = CliRunner().invoke(main, sweep_args(small_region, out, "--scenarios", str(f),
                                            "--draws", "4"))
    assert r.exit_code == 0, r.output
    h = pd.read_parquet(out / "hospitals.parquet")
    assert sorted(h["draw"].unique()) == [0, 1, 2, 3]  # --draws overrides the file's 40
    wb = openpyxl.load_workbook(out / "sweep.xlsx")
    head = [c.value for c in wb["医院变化 hospitals"][1]]
    assert any(str(x).endswith("\ndelta_pct_p95") for x in head), head


def test_cli_sweep_refuses_a_base_other_than_policy(small_region, tmp_path):
    from drgsim.policy import bundled_policy_path

    other = tmp_path / "city.yaml"
    other.write_text(bundled_policy_path().read_text(encoding="utf-8"), encoding="utf-8")
    f = write(tmp_path, "name: x\nbase: city.yaml\ngrid: {high_cost.beta: [0.8]}\n", "x.yaml")
    r = CliRunner().invoke(main, sweep_args(small_region, tmp_path / "o", "--scenarios", str(f),
                                            "--policy", str(bundled_policy_path())))
    assert r.exit_code == 2
    assert "base: 'city.yaml' is not --policy" in r.output, r.output


def test_sweep_of_a_folder_says_one_sweep_per_file(tmp_path):
    """``base.sweep(folder)`` with several files is refused in one line, not a type error."""
    import shutil

    import drgsim
    from drgsim.scenarios.sweep import SweepError, _load_spec

    src = Path(drgsim.__file__).parent / "data" / "scenarios"
    for f in sorted(src.glob("*.yaml"))[:2]:
        shutil.copy(f, tmp_path / f.name)
    with pytest.raises(SweepError, match="one sweep per file"):
        _load_spec(tmp_path)
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(sorted(src.glob("*.yaml"))[0], one)
    assert not isinstance(_load_spec(one), list)
