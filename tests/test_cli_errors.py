"""Every error reaches the person as one line: user mistakes exit 2, internal errors say so.

The handling is central (``drgsim.cli.LazyGroup.invoke``), so these cases use whichever
command is handy; ``--debug`` or ``DRGSIM_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

import drgsim.policy
from drgsim.cli import main
from drgsim.errors import RecordsError


def _lines(text: str) -> list[str]:
    return [x for x in text.splitlines() if x.strip()]


def _boom(exc: BaseException):
    def raiser(*a, **k):
        raise exc

    return raiser


def test_internal_error_is_one_line_asking_for_a_report(monkeypatch):
    monkeypatch.delenv("DRGSIM_DEBUG", raising=False)
    monkeypatch.setattr(drgsim.policy, "load_policy", _boom(ZeroDivisionError("oops")))
    res = CliRunner().invoke(main, ["policy", "validate"])
    assert res.exit_code == 1
    (line,) = _lines(res.output)
    assert line.startswith("internal error") and "ZeroDivisionError: oops" in line
    assert "report" in line and "--debug" in line
    assert "Traceback" not in res.output


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(monkeypatch, how):
    monkeypatch.setattr(drgsim.policy, "load_policy", _boom(ZeroDivisionError("oops")))
    args = ["policy", "validate"]
    if how == "flag":
        monkeypatch.delenv("DRGSIM_DEBUG", raising=False)
        args = ["--debug", *args]
    else:
        monkeypatch.setenv("DRGSIM_DEBUG", "1")
    res = CliRunner().invoke(main, args)
    assert isinstance(res.exception, ZeroDivisionError)  # re-raised: Python prints it


def test_drgsim_error_anywhere_is_one_line_exit_2(monkeypatch):
    monkeypatch.delenv("DRGSIM_DEBUG", raising=False)
    monkeypatch.setattr(drgsim.policy, "load_policy", _boom(RecordsError("x.csv:3: bad")))
    # policy show catches DrgsimError itself; policy validate prints and exits 2: both 1 line
    for cmd in (["policy", "show"], ["policy", "validate"]):
        res = CliRunner().invoke(main, cmd)
        assert res.exit_code == 2, res.output
        assert len(_lines(res.output)) == 1 and "x.csv:3: bad" in res.output


def test_os_error_naming_a_file_is_a_user_error(monkeypatch):
    monkeypatch.delenv("DRGSIM_DEBUG", raising=False)
    err = PermissionError(13, "Permission denied", "/nope/out.csv")
    monkeypatch.setattr(drgsim.policy, "load_policy", _boom(err))
    res = CliRunner().invoke(main, ["policy", "validate"])
    assert res.exit_code == 2
    assert _lines(res.output) == ["error: /nope/out.csv: Permission denied"]


def test_keyboard_interrupt_is_one_line_exit_130(monkeypatch):
    monkeypatch.delenv("DRGSIM_DEBUG", raising=False)
    monkeypatch.setattr(drgsim.policy, "load_policy", _boom(KeyboardInterrupt()))
    res = CliRunner().invoke(main, ["policy", "validate"])
    assert res.exit_code == 130
    assert _lines(res.output) == ["interrupted"]


def test_unknown_encoding_is_one_line(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("case_id,sex,age_years,diagnoses\na,1,30,I10.x00\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["group", str(f), "-o", str(tmp_path / "o.csv"),
                                    "--encoding", "no-such-codec"])
    assert res.exit_code == 2, res.output
    assert "unknown encoding" in res.output and "no-such-codec" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "o.csv").exists()


def test_real_process_prints_no_traceback(tmp_path):
    """Through a real interpreter, as a user runs it: stderr is the one line, nothing else."""
    f = tmp_path / "gbk.yaml"
    f.write_bytes("name: 基线\n".encode("gbk"))
    env = {k: v for k, v in __import__("os").environ.items() if k != "DRGSIM_DEBUG"}
    p = subprocess.run([sys.executable, "-c", "from drgsim.cli import main; main()",
                        "policy", "show", str(f)], capture_output=True, text=True, env=env)
    assert p.returncode == 2
    assert _lines(p.stderr) == [f"error: {f}:1: not UTF-8 text: byte 0xbb at byte offset 6 "
                                "(save the file as UTF-8; GBK/GB18030 files are not accepted)"]


def test_sigterm_unwinding_exits_143(monkeypatch):
    from drgsim.output.signals import Terminated

    monkeypatch.delenv("DRGSIM_DEBUG", raising=False)
    monkeypatch.setattr(drgsim.policy, "load_policy", _boom(Terminated(15)))
    res = CliRunner().invoke(main, ["policy", "validate"])
    assert res.exit_code == 143
    assert _lines(res.output) == ["terminated by signal SIGTERM"]
