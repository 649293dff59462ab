"""A new user's pass over the CLI: options that cannot be honoured are refused, not ignored."""
from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from drgsim.cli import main
from drgsim.cli.sweep_cmd import build_specs
from drgsim.errors import ScenarioError


def test_sweep_seed_without_draws_is_refused() -> None:
    """--seed with nothing drawn would be silently ignored: refuse it, naming --seed."""
    with pytest.raises(ScenarioError, match="--seed"):
        build_specs(None, ("budget.*.growth=0.02,0.04",), None, 5, None)
    # with draws the seed is used
    specs = build_specs(None, ("behaviour.volume_growth=0.01,0.02",), 3, 5, None)
    assert specs[0].seed == 5 and specs[0].draws_n == 3


def test_sweep_seed_without_draws_cli_one_line(tmp_path) -> None:
    cases = tmp_path / "cases.parquet"
    pd.DataFrame({"case_id": ["1"]}).to_parquet(cases)
    r = CliRunner().invoke(main, ["sweep", str(cases), "--grid", "budget.*.growth=0.02,0.04",
                                  "--seed", "5", "-o", str(tmp_path / "out")])
    assert r.exit_code != 0
    assert "--seed" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "out").exists()


def test_dip_build_names_the_hospitals_file_and_missing_column(tmp_path) -> None:
    """A hospitals table without level: the error names the file and the column."""
    from drgsim.dip.build import _hospital_levels
    from drgsim.errors import MissingColumnError

    p = tmp_path / "region.parquet"
    pd.DataFrame({"hospital_id": ["H1"], "fund": ["employee"]}).to_parquet(p)
    with pytest.raises(MissingColumnError, match=r"region\.parquet: no column level"):
        _hospital_levels(str(p))
    assert _hospital_levels(pd.DataFrame({"hospital_id": ["H1"], "level": ["三级"]})) == \
        {"H1": "三级"}


def test_demo_drg_refuses_a_dip_policy_before_any_work(tmp_path) -> None:
    """demo (DRG) with --policy dip_baseline ran synth, grouping and simulation and then
    failed at the sweep; it is refused first, pointing at --method dip."""
    out = tmp_path / "demo"
    r = CliRunner().invoke(main, ["demo", "--policy", "dip_baseline", "-o", str(out),
                                  "--discharges", "1000", "--hospitals", "2"])
    assert r.exit_code != 0
    assert "--method dip" in r.output and "Traceback" not in r.output
    assert not (out / "region").exists()


def test_demo_dip_honours_threads(tmp_path, monkeypatch) -> None:
    """--threads was silently dropped by demo --method dip: matching must receive it."""
    import drgsim.dip.match as dm

    seen = {}
    real = dm.match

    def spy(*a, **k):
        seen["threads"] = k.get("threads")
        return real(*a, **k)

    monkeypatch.setattr(dm, "match", spy)
    r = CliRunner().invoke(main, ["demo", "--method", "dip", "-o", str(tmp_path / "d"),
                                  "--discharges", "2000", "--hospitals", "3", "--threads", "1"])
    assert "threads" in seen, r.output
    assert seen["threads"] == 1


def test_catalogue_from_the_simulated_year_is_said(recwarn) -> None:
    """README's flow (dip build, then simulate the latest year) scored 2025 with a catalogue
    built from 2023-2025 without a word: in-sample scores must be warned about."""
    from types import SimpleNamespace

    from drgsim.policy import load_policy
    from drgsim.scenarios.prepare import _check_scale

    pol = load_policy("dip_baseline")
    with pytest.warns(UserWarning, match="include the simulated year 2025"):
        _check_scale(SimpleNamespace(meta={"years": [2023, 2024, 2025]}), pol, 2025)
    recwarn.clear()
    _check_scale(SimpleNamespace(meta={"years": [2022, 2023, 2024]}), pol, 2025)
    assert not [w for w in recwarn if "simulated year" in str(w.message)]


def test_hospitals_file_without_hospital_id_is_named(tmp_path) -> None:
    """--hospitals region.parquet by mistake: the one-line error names the file."""
    from drgsim.errors import RecordsError
    from drgsim.scenarios.prepare import read_hospitals

    p = tmp_path / "region.parquet"
    pd.DataFrame({"fund": ["employee"], "year": [2025]}).to_parquet(p)
    with pytest.raises(RecordsError, match=r"region\.parquet: .*hospital_id"):
        read_hospitals(str(p))


def test_explain_help_example_keeps_its_line_break() -> None:
    """A lone backslash in the docstring joined the DIP example's two lines with a run of
    spaces; the example must show the continuation a shell accepts."""
    r = CliRunner().invoke(main, ["explain", "--help"])
    assert "K80.100x001 \\\n" in r.output
    assert "K80.100x001    " not in r.output


@pytest.mark.parametrize("cmd", ["simulate", "sweep"])
def test_help_examples_give_the_region_the_budget_needs(cmd) -> None:
    """The bundled policies' budgets come from the region table: an example without
    --region stops with 'give --region' when copied as written."""
    r = CliRunner().invoke(main, [cmd, "--help"])
    block = r.output.split("Example:")[1].split("\n\n")[0].replace("\\\n", " ")
    examples = [ln for ln in block.splitlines() if ln.strip().startswith("drgsim")]
    assert examples
    for ex in examples:
        assert "--region" in ex, ex
