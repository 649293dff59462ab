"""Leftovers of a new user's review of the CLI: one error style, one option style across
commands, DIP outputs named as DIP, bundled DIP scenarios, catalogue years said, and
matching from several threads at once."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from drgsim.cli import COMMANDS, main


def _run(args: list[str]):
    return CliRunner().invoke(main, args)


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


# ----------------------------------------------------------------------------- 1. errors
@pytest.mark.parametrize("args", [
    ["simulate", "cases.parquet", "-o", "x", "--bogus"],      # click: unknown option
    ["simulate", "no/such/file.parquet", "-o", "x"],          # click: bad path
    ["simulate", "cases.parquet", "-o", "x", "--policy", "nosuch"],  # click: BadParameter
    ["--bogus"],                                              # click, top level
    ["dip", "build"],                                         # click: missing argument
    ["sweep", "cases.parquet", "-o", "x", "--scheduler", "tcp://h:1"],  # UsageError in code
])
def test_usage_errors_are_one_line_in_drgsims_style(tmp_path, monkeypatch, args) -> None:
    monkeypatch.chdir(tmp_path)
    pd.DataFrame({"case_id": ["1"]}).to_parquet("cases.parquet")
    r = _run(args)
    assert r.exit_code == 2, r.output
    lines = _lines(r.output)
    assert len(lines) == 1, r.output
    assert lines[0].startswith("error: "), r.output
    assert "Traceback" not in r.output and "Usage:" not in r.output


def test_usage_error_names_the_command_help(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = _run(["simulate", "x.parquet", "-o", "x"])
    assert "'drgsim simulate --help'" in r.output, r.output


def test_drgsim_errors_are_one_line_in_the_same_style(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ngrid: {nosuch.key: [1, 2]}\n")
    cases = tmp_path / "cases.parquet"
    pd.DataFrame({"case_id": ["1"]}).to_parquet(cases)
    r = _run(["sweep", str(cases), "--scenarios", str(bad), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    lines = _lines(r.output)
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output


def test_no_arguments_still_show_help() -> None:
    """A group without a subcommand shows its help (click's no_args_is_help), not an error."""
    r = _run(["dip"])
    assert "Usage:" in r.output and "error:" not in r.output


# ----------------------------------------------------------------------------- 2. --scheme
def _all_commands() -> list[list[str]]:
    """Every command and subcommand path, e.g. ['dip', 'build']."""
    import click

    out = []
    for name in sorted(COMMANDS):
        cmd = main.get_command(None, name)  # type: ignore[arg-type]
        if isinstance(cmd, click.Group):
            out += [[name, sub] for sub in sorted(cmd.commands)]
        out.append([name])
    return out


@pytest.mark.parametrize("path", _all_commands(), ids=" ".join)
def test_every_command_help_shows_an_example(path) -> None:
    r = _run([*path, "--help"])
    assert r.exit_code == 0, r.output
    assert "Example" in r.output and "drgsim " in r.output.split("Example", 1)[1], r.output


@pytest.mark.parametrize("command", ["simulate", "sweep", "calibrate"])
def test_simulate_and_sweep_take_scheme(command) -> None:
    r = _run([command, "--help"])
    assert "--scheme" in r.output


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """A small synthetic region (2022-2025): discharges/, hospitals.parquet, region.parquet."""
    from drgsim import synth

    d = tmp_path_factory.mktemp("region") / "region"
    synth.region(d, discharges=2500, hospitals=3, seed=3)
    return d


@pytest.fixture(scope="module")
def grouped_chs(region, tmp_path_factory):
    """The region's records grouped with chs_drg_11 (provenance says so)."""
    from drgsim.grouper.core import load_scheme
    from drgsim.grouper.stream import group_file

    p = tmp_path_factory.mktemp("grouped") / "grouped.parquet"
    group_file(region / "discharges", p, load_scheme("chs_drg_11"), threads=1)
    return p


@pytest.mark.parametrize("command", ["simulate", "sweep", "calibrate"])
def test_scheme_other_than_the_cases_grouping_is_refused(grouped_chs, tmp_path, command):
    extra = ["--grid", "budget.*.growth=0.02,0.03"] if command == "sweep" else []
    out = tmp_path / ("o.parquet" if command == "calibrate" else "o")
    r = _run([command, str(grouped_chs), "--scheme", "beijing_2022", *extra, "-o", str(out)])
    assert r.exit_code == 2, r.output
    lines = _lines(r.output)
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert "beijing_2022" in r.output and "CHS-DRG" in r.output
    assert not out.exists()


def test_scheme_same_as_the_cases_grouping_is_accepted(grouped_chs, tmp_path):
    from drgsim.cli.common import policy_with_scheme

    pol = policy_with_scheme(None, "chs_drg_11", str(grouped_chs))
    assert pol.scheme == "chs_drg_11"


def test_scheme_groups_raw_cases_and_wins_over_the_policys(tmp_path, monkeypatch) -> None:
    """Raw records: --scheme is the scheme they are grouped with (the policy's is replaced,
    said in a warning); without --scheme the policy file is passed unchanged."""
    import drgsim.settlement.simulate as sim

    seen = {}

    def spy(cases, policy, *a, **k):
        seen["policy"] = policy
        raise sim.RecordsError("stop here")

    monkeypatch.setattr(sim, "simulate", spy)
    raw = tmp_path / "raw.parquet"
    pd.DataFrame({"case_id": ["1"]}).to_parquet(raw)
    r = _run(["simulate", str(raw), "--scheme", "beijing_2022", "-o", str(tmp_path / "o")])
    assert "stop here" in r.output
    assert seen["policy"].scheme == "beijing_2022" and seen["policy"].name == "baseline"
    r = _run(["simulate", str(raw), "-o", str(tmp_path / "o")])
    assert seen["policy"] is None
    from drgsim.cli.common import policy_with_scheme

    with pytest.warns(UserWarning, match="--scheme beijing_2022 replaces policy baseline's "
                                          "scheme chs_drg_11"):
        policy_with_scheme(None, "beijing_2022", str(raw))


def test_scheme_with_grouped_flag_and_no_provenance_is_refused(tmp_path) -> None:
    raw = tmp_path / "g.parquet"
    pd.DataFrame({"case_id": ["1"], "drg": ["A"], "status": ["ok"]}).to_parquet(raw)
    r = _run(["simulate", str(raw), "--grouped", "--scheme", "beijing_2022",
              "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--grouped" in r.output, r.output


# ----------------------------------------------------------------------------- 3. packets
@pytest.fixture(scope="module")
def dip_sim(region, tmp_path_factory):
    """``drgsim simulate --policy dip_baseline`` on the small region (catalogue built from
    the history years)."""
    out = tmp_path_factory.mktemp("dipsim") / "sim"
    r = _run(["simulate", str(region / "discharges"), "--policy", "dip_baseline",
              "--region", str(region / "region.parquet"),
              "--hospitals", str(region / "hospitals.parquet"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    return out, r.output


def test_dip_simulate_writes_packets_parquet(dip_sim) -> None:
    out, printed = dip_sim
    assert (out / "packets.parquet").is_file() and not (out / "drgs.parquet").exists()
    assert "packets.parquet" in printed and "drgs.parquet" not in printed
    t = pd.read_parquet(out / "packets.parquet")
    assert "packet" in t.columns and "drg" not in t.columns
    import json

    assert "packets.parquet" in json.loads((out / "manifest.json").read_text())["files"]
    from openpyxl import load_workbook

    sheets = load_workbook(out / "summary.xlsx", read_only=True).sheetnames
    assert "病种 packets" in sheets and "病组 drgs" not in sheets


def test_drg_tables_keep_drgs_parquet(dip_sim, tmp_path) -> None:
    """The same writer on a DRG run's tables (method drg) writes drgs.parquet and the
    病组 sheet, as before."""
    from drgsim.report import write_outputs

    out, _ = dip_sim
    tables = {p.stem: pd.read_parquet(p) for p in out.glob("*.parquet")}
    tables["drgs"] = tables.pop("packets").rename(columns={"packet": "drg"})
    tables["summary"].attrs = {"drgsim.method": "drg", "drgsim.policy": "baseline"}
    paths = write_outputs(tables, tmp_path / "drg")
    assert paths["drgs"].name == "drgs.parquet"
    assert not (tmp_path / "drg" / "packets.parquet").exists()
    assert "drg" in pd.read_parquet(paths["drgs"]).columns
    from openpyxl import load_workbook

    assert "病组 drgs" in load_workbook(paths["workbook"], read_only=True).sheetnames


# ----------------------------------------------------------------------------- 4. DIP creep
CREEP_DIP = """name: creep_on_dip
base: dip_baseline
grid:
  budget.*.growth: [0.03, 0.05]
behaviour:
  volume_growth: 0.02
  coding_creep: {dist: triangular, min: 0.01, mode: 0.02, max: 0.03}
draws: {n: 3, seed: 7}
"""


def test_dip_coding_creep_is_refused_at_its_file_line_and_key(tmp_path) -> None:
    from drgsim.errors import ScenarioError
    from drgsim.scenarios.files import load_scenarios

    f = tmp_path / "creep.yaml"
    f.write_text(CREEP_DIP)
    with pytest.raises(ScenarioError) as e:
        load_scenarios(f)
    assert str(e.value).startswith(f"{f}:7: behaviour.coding_creep: "), str(e.value)
    assert "method dip" in str(e.value)
    # as a grid axis, named with its line too
    f.write_text("name: g\nbase: dip_baseline\ngrid:\n  behaviour.coding_creep: [0.01, 0.02]\n")
    with pytest.raises(ScenarioError, match=rf"{f}:4: behaviour.coding_creep: "):
        load_scenarios(f)


def test_dip_coding_creep_from_a_drg_based_file_under_policy_dip(tmp_path) -> None:
    """A file on the default base swept with --policy dip_baseline: validated against the
    DIP policy, so refused with its file and line (before any work)."""
    from drgsim.cli.sweep_cmd import build_specs
    from drgsim.errors import ScenarioError
    from drgsim.policy import bundled_policy_path

    f = tmp_path / "creep.yaml"
    f.write_text(CREEP_DIP.replace("base: dip_baseline\n", ""))
    with pytest.raises(ScenarioError, match=rf"{f}:6: behaviour.coding_creep: "):
        build_specs(str(f), (), None, None, str(bundled_policy_path("dip_baseline")))


def test_cli_dip_coding_creep_one_line_before_any_work(tmp_path) -> None:
    f = tmp_path / "creep.yaml"
    f.write_text(CREEP_DIP)
    cases = tmp_path / "cases.parquet"
    pd.DataFrame({"case_id": ["1"]}).to_parquet(cases)
    r = _run(["sweep", str(cases), "--scenarios", str(f), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    lines = _lines(r.output)
    assert len(lines) == 1 and lines[0].startswith(f"error: {f}:7: behaviour.coding_creep"), \
        r.output
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- 5. build years
def test_catalogue_years_rule() -> None:
    """Year Y is built from the 3 years before it: all there -> nothing; some missing ->
    a warning naming expected, missing, used and found; none -> refused."""
    from drgsim.dip.build import catalogue_years
    from drgsim.errors import RecordsError

    found = [2022, 2023, 2024, 2025]
    assert catalogue_years(2025, found, [2022, 2023, 2024], 3) is None
    assert catalogue_years(None, found, [2023, 2024, 2025], 3) is None  # default: 2026
    msg = catalogue_years(2024, found, [2022, 2023], 3)
    assert msg == ("the catalogue for 2024 is built from 2021–2023, but the history lacks "
                   "2021: built from 2022–2023 (history has 2022–2025)")
    gap = catalogue_years(2025, [2022, 2024], [2022, 2024], 3)
    assert gap is not None and "lacks 2023" in gap and "2022, 2024" in gap
    with pytest.raises(RecordsError) as e:
        catalogue_years(2030, found, [2023, 2024, 2025], 3)
    assert str(e.value) == ("catalogue year 2030: it is built from the 3 years before it "
                            "(2027–2029), but the history has 2022–2025: choose year 2026 "
                            "(built from 2023–2025) or give the history of 2027–2029")
    with pytest.raises(RecordsError, match="2017–2019.*2022–2025: choose year 2026 .built from "
                                           "2023–2025"):
        catalogue_years(2020, found, [], 3)  # before the history: the hint is still 2026
    with pytest.raises(RecordsError, match="has no dated discharge: give the history of"):
        catalogue_years(2030, [], [], 3)


def test_cli_dip_build_for_a_year_beyond_the_history_is_refused(region, tmp_path,
                                                                 monkeypatch) -> None:
    """Refused before the history is read (its dates are read alone) and again after it
    (any input the early read cannot take), in one line."""
    import importlib

    db = importlib.import_module("drgsim.dip.build")  # the module (drgsim.dip.build: the function)

    def no_read(*a, **k):
        raise AssertionError("read the history before refusing")

    out = tmp_path / "cat"
    with monkeypatch.context() as m:
        m.setattr(db, "read_history", no_read)
        r = _run(["dip", "build", str(region / "discharges"), "-o", str(out), "--year", "2030"])
        assert r.exit_code == 2 and "2027–2029" in r.output, r.output
    monkeypatch.setattr(db, "_date_years", lambda h, c: None)
    r = _run(["dip", "build", str(region / "discharges"), "-o", str(out), "--year", "2030"])
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: catalogue year 2030") and "2022–2025" in r.output, \
        r.output
    assert len(_lines(r.output)) == 1
    assert not out.exists()


def test_cli_dip_build_with_a_missing_year_warns(region, tmp_path) -> None:
    r = _run(["dip", "build", str(region / "discharges"), "-o", str(tmp_path / "c"),
              "--year", "2024"])
    assert r.exit_code == 0, r.output
    assert "warning: the catalogue for 2024 is built from 2021–2023" in " ".join(r.output.split())


# ----------------------------------------------------------------------------- 6. DIP files
def _bundled() -> list:
    from drgsim.scenarios.files import bundled_scenarios_path, load_scenario_files

    return load_scenario_files(bundled_scenarios_path())


def test_there_is_a_bundled_dip_scenario_file() -> None:
    methods = {s.base_policy().method for s in _bundled()}
    assert methods == {"drg", "dip"}


@pytest.fixture(scope="module")
def prepared(region):
    """The small region prepared once per method (DRG: grouped and calibrated; DIP: a
    catalogue built from the history and matched)."""
    import warnings

    import drgsim

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for method, pol in (("drg", "baseline"), ("dip", "dip_baseline")):
            out[method] = drgsim.prepare(region / "discharges", policy=pol,
                                         hospitals=region / "hospitals.parquet",
                                         region=region / "region.parquet")
    return out


@pytest.mark.parametrize("spec", _bundled(), ids=lambda s: s.name)
def test_every_bundled_scenario_file_runs_on_its_method(spec, prepared) -> None:
    import warnings

    import numpy as np

    method = spec.base_policy().method
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = prepared[method].sweep(spec)
    assert len(res.scenarios) == spec.n_scenarios
    assert np.isfinite(res.funds["pv"].to_numpy(dtype=float)).all()
    if spec.draws_n:
        assert res.hospitals["draw"].nunique() == spec.draws_n


def test_dip_files_hold_no_drg_only_keys_or_creep() -> None:
    """Loaded against the DIP policy (method_problems), they load; a DRG-only file does not."""
    from drgsim.errors import ScenarioError
    from drgsim.policy import load_policy
    from drgsim.scenarios.files import load_scenario_files

    dip = load_policy("dip_baseline")
    for s in _bundled():
        if s.base_policy().method == "dip":
            load_scenario_files(s.file, dip)
        elif s.name in ("budget_and_beta", "coding_creep"):
            with pytest.raises(ScenarioError):
                load_scenario_files(s.file, dip)


@pytest.mark.parametrize("name", ["budget_and_beta.yaml", "coding_creep.yaml", ""])
def test_sweep_dip_policy_with_bundled_drg_file_points_to_the_dip_file(tmp_path, name):
    from drgsim.scenarios.files import bundled_scenarios_path

    cases = tmp_path / "cases.parquet"
    pd.DataFrame({"case_id": ["1"]}).to_parquet(cases)
    r = _run(["sweep", str(cases), "--policy", "dip_baseline", "--scenarios",
              str(bundled_scenarios_path() / name), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    lines = _lines(r.output)
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert "dip_outliers.yaml" in r.output and "method dip" in r.output
    assert not (tmp_path / "o").exists()


def test_demo_dip_sweeps_the_bundled_dip_files(tmp_path) -> None:
    import drgsim.cli.demo_cmd as demo

    assert not hasattr(demo, "DIP_SWEEP")  # the in-code list is gone
    out = tmp_path / "d"
    r = _run(["demo", "--method", "dip", "-o", str(out), "--discharges", "1500",
              "--hospitals", "3"])
    assert r.exit_code == 0, r.output
    dip = sorted(Path(s.file).stem for s in _bundled() if s.base_policy().method == "dip")
    assert sorted(p.name for p in (out / "sweeps").iterdir()) == dip
    for stem in dip:
        assert (out / "sweeps" / stem / "manifest.json").is_file()


# ----------------------------------------------------------------------------- 7. threads
def _slices(region, k: int) -> list[pd.DataFrame]:
    """The simulated year's records in k slices, each with principal and procedure codes
    no scheme or catalogue has (so matching grows the vocabularies), distinct per slice."""
    df = pd.read_parquet(region / "discharges")
    df = df[pd.to_datetime(df["discharge_date"]).dt.year == 2025].reset_index(drop=True)
    df["year"] = df["year"].astype(int)
    df["month"] = df["month"].astype(int)
    out = []
    for i, part in enumerate(range(k)):
        s = df.iloc[part::k].copy()
        first = s["diagnoses"].str.split("|", n=1)
        s["diagnoses"] = [f"{f[0]}Q{i}" + (f"|{f[1]}" if len(f) > 1 else "") for f in first]
        s["procedures"] = [f"{p}|99.99{i}{j % 7}".lstrip("|") for j, p in
                           enumerate(s["procedures"].fillna(""))]
        out.append(s.reset_index(drop=True))
    return out


def test_match_from_several_threads_equals_sequential(region, monkeypatch) -> None:
    """One catalogue object matched from several threads at once (as a Dask worker's
    threads do): the vocabularies it grows stay consistent, each result equals matching
    the same records one after another. A pause inside the principal extension widens the
    window two threads would otherwise interleave in."""
    import copy
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import drgsim.dip.match as dm
    from drgsim import dip
    from drgsim.settlement.simulate import read_table

    hist, _ = read_table(region / "discharges")
    hist = hist[pd.to_datetime(hist["discharge_date"]).dt.year < 2025]
    cat, _ = dip.build(hist, policy="dip_baseline")
    fresh = copy.deepcopy(cat)
    slices = _slices(region, 6)
    want = [dip.match(s, catalogue=fresh, threads=1) for s in slices]

    dip.match(slices[0].head(1), catalogue=cat, threads=1)  # compiled once, then shared
    real = dm.Prepared.principal_rows

    def slow(self, codes):
        time.sleep(0.02)
        return real(self, codes)

    monkeypatch.setattr(dm.Prepared, "principal_rows", slow)
    start = threading.Barrier(len(slices))

    def one(s):
        start.wait()
        return dip.match(s, catalogue=cat, threads=1)

    with ThreadPoolExecutor(len(slices)) as ex:
        got = list(ex.map(one, slices))
    cols = ["packet", "packet_kind", "treatment_type", "dip_status", "dx_key", "aux_coef"]
    for g, w in zip(got, want, strict=True):
        pd.testing.assert_frame_equal(g[cols], w[cols])
    prep = cat._dip_prepared[1]
    assert len(prep.vocab) == len(set(prep.vocab))  # no code learnt twice
    assert len(prep.principal) == len(prep.principal_keys) == len(prep.pdx_key)


def test_a_compiled_catalogue_still_pickles(region) -> None:
    """The engines ship a compiled catalogue to their workers: the lock must not stop it."""
    import pickle

    from drgsim import dip
    from drgsim.settlement.simulate import read_table

    hist, _ = read_table(region / "discharges")
    cat, _ = dip.build(hist[pd.to_datetime(hist["discharge_date"]).dt.year < 2025],
                       policy="dip_baseline")
    s = _slices(region, 2)[0]
    a = dip.match(s, catalogue=cat, threads=1)
    back = pickle.loads(pickle.dumps(cat))
    b = dip.match(s, catalogue=back, threads=1)
    pd.testing.assert_frame_equal(a, b)


def test_demo_with_a_policy_of_another_name_sweeps_the_bundled_files(tmp_path) -> None:
    """demo --policy my.yaml (a DRG policy named otherwise) failed at the sweep, after all
    the work: the bundled files' base was 'baseline'. They now overlay the policy given."""
    from drgsim.policy import bundled_policy_path

    pol = tmp_path / "mine.yaml"
    pol.write_text(bundled_policy_path("baseline").read_text(encoding="utf-8")
                   .replace("name: baseline", "name: mine", 1), encoding="utf-8")
    out = tmp_path / "d"
    r = _run(["demo", "-o", str(out), "--discharges", "1500", "--hospitals", "3",
              "--policy", str(pol)])
    assert r.exit_code == 0, r.output
    assert (out / "sweeps" / "budget_and_beta" / "manifest.json").is_file()
