"""Leftovers of a new user's review of the CLI: one error style, one option style across
commands, DIP outputs named as DIP, bundled DIP scenarios, catalogue years said, and
matching from several threads at once."""
from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from drgsim.cli import main


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
