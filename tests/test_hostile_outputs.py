"""Hostile conditions for outputs (issue 16): interruptions, full disks, an -o that names an
input, bad output paths, errors mid-stream, colliding column names, folder re-runs.

Every test checks the exit code and message, that nothing is left half-written (no file at
the target, no temporary file) and that no input or earlier output is harmed. The
interruption tests send real signals to a real ``drgsim group`` subprocess.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from drgsim.cli import main
from drgsim.output import MANIFEST, OutputFolder, check_output
from drgsim.output.folder import JOURNAL
from drgsim.output.names import input_renames

REPO = Path(__file__).resolve().parents[1]


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def leftovers(d: Path) -> list[str]:
    """Temporary files drgsim left behind (``.NAME.XXXX.part.EXT``)."""
    return sorted(p.name for p in d.rglob("*") if p.name.startswith(".") and ".part" in p.name)


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def one_line_error(res, *words: str) -> None:
    """Exit 2 and a single ``error: ...`` line naming ``words``, no traceback."""
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    err = res.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert "Traceback" not in res.output
    for w in words:
        assert w in err, (w, err)


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    """2,000 synthetic discharges, as parquet."""
    from drgsim import synth

    d = tmp_path_factory.mktemp("records")
    t = synth.discharges(2_000, hospitals=10, seed=5, years=(2024,))
    pq.write_table(t, d / "cases.parquet")
    return d / "cases.parquet"


@pytest.fixture(scope="module")
def big(records, tmp_path_factory) -> Path:
    """400,000 rows (the 2,000 tiled): grouped in 1,000-row batches it runs for seconds."""
    d = tmp_path_factory.mktemp("big")
    t = pq.read_table(records)
    pq.write_table(pa.concat_tables([t] * 200), d / "big.parquet", row_group_size=50_000)
    return d / "big.parquet"


@pytest.fixture
def earlier(tmp_path, records) -> Path:
    """A complete output of an earlier run, at the target the next run writes."""
    out = tmp_path / "out" / "grouped.parquet"
    out.parent.mkdir()
    assert run("group", str(records), "-o", str(out), "--quiet").exit_code == 0
    return out


# ------------------------------------------------------------------ interruptions

def _interrupt(sig: int, src: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from drgsim.cli import main; main()", "group", str(src),
         "-o", str(out), "--batch-rows", "1000", "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    # wait until batches are being written to the temporary file, then signal
    while time.monotonic() < deadline and proc.poll() is None:
        parts = [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
        with contextlib.suppress(FileNotFoundError):
            if parts and parts[0].stat().st_size > 0:
                break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_run_keeps_earlier_output(sig, big, earlier):
    before = sha(earlier)
    res = _interrupt(sig, big, earlier)
    assert res.returncode != 0, res
    assert "Traceback" not in res.stderr, res.stderr
    assert sha(earlier) == before  # the earlier complete output, byte for byte
    assert leftovers(earlier.parent) == []
    assert sorted(p.name for p in earlier.parent.iterdir()) == ["grouped.parquet"]


def test_signal_mid_run_leaves_no_file(big, tmp_path):
    out = tmp_path / "new.csv"
    res = _interrupt(signal.SIGTERM, big, out)
    assert res.returncode != 0
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ disk full, errors mid-stream

def test_disk_full_removes_temp_one_line_error(monkeypatch, big, earlier):
    from drgsim.grouper import stream

    real = stream._Writer.write
    calls = []

    def write(self, table):
        calls.append(table.num_rows)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, table)

    monkeypatch.setattr(stream._Writer, "write", write)
    before = sha(earlier)
    res = run("group", str(big), "-o", str(earlier), "--batch-rows", "1000", "--quiet")
    one_line_error(res, "disk full", str(earlier))
    assert len(calls) == 3  # it failed mid-run, after two batches were written
    assert sha(earlier) == before and leftovers(earlier.parent) == []


def test_error_mid_stream_leaves_no_partial_output(tmp_path, records, earlier):
    """A bad CSV line far into the file: whether it is found up front or mid-stream, the
    target is not written and an earlier output stays."""
    csv = tmp_path / "cases.csv"
    t = pa.concat_tables([pq.read_table(records)] * 5)
    pacsv.write_csv(t, csv)
    lines = csv.read_bytes().split(b"\n")
    lines[9_000] = lines[9_000] + b',"extra","fields"'
    csv.write_bytes(b"\n".join(lines))
    before = sha(earlier)
    res = run("group", str(csv), "-o", str(earlier), "--batch-rows", "1000", "--quiet")
    assert res.exit_code != 0
    assert sha(earlier) == before and leftovers(earlier.parent) == []


# ------------------------------------------------------------------ -o that names an input

@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_output_is_input_refused(fmt, tmp_path, records):
    src = tmp_path / f"cases.{fmt}"
    if fmt == "parquet":
        src.write_bytes(records.read_bytes())
    else:
        pacsv.write_csv(pq.read_table(records), src)
    before = sha(src)
    res = run("group", str(src), "-o", str(src), "--quiet")
    one_line_error(res, "is the input")
    assert sha(src) == before and leftovers(tmp_path) == []
    # the same file under another spelling (./, a symlink) is the same file
    (tmp_path / "link").symlink_to(src)
    res = run("group", str(src), "-o", str(tmp_path / "link"), "--quiet")
    one_line_error(res, "is the input")
    assert sha(src) == before


def test_output_inside_input_folder_refused(tmp_path, records):
    folder = tmp_path / "in" / "year=2024"
    folder.mkdir(parents=True)
    (folder / "part-0.parquet").write_bytes(records.read_bytes())
    res = run("group", str(tmp_path / "in"), "-o", str(tmp_path / "in" / "grouped.parquet"),
              "--quiet")
    one_line_error(res, "inside the input folder")
    assert sorted(p.name for p in (tmp_path / "in").rglob("*")) == ["part-0.parquet", "year=2024"]


def test_folder_output_that_would_overwrite_an_input_refused(tmp_path):
    (tmp_path / "cases.parquet").write_bytes(b"x")
    with pytest.raises(Exception, match="a file this command writes there"):
        check_output(tmp_path, [tmp_path / "cases.parquet"], folder=True,
                     writes=["cases.parquet"])
    check_output(tmp_path, [tmp_path / "cases.parquet"], folder=True, writes=["summary.xlsx"])


# ------------------------------------------------------------------ bad -o, before any work

@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if grouping starts (the scheme is loaded) before -o is checked."""
    import drgsim.grouper.core as core

    def boom(*a, **k):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(core, "load_scheme", boom)


def test_read_only_parent_refused_before_work(tmp_path, records, no_work, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: make the probe see a read-only folder
        import tempfile
        import types

        import drgsim.output.check as chk

        def mkstemp(*a, dir=None, **k):  # noqa: A002
            if Path(dir) == ro:
                raise PermissionError(errno.EACCES, "Permission denied")
            return tempfile.mkstemp(*a, dir=dir, **k)

        monkeypatch.setattr(chk, "tempfile", types.SimpleNamespace(mkstemp=mkstemp))
    try:
        res = run("group", str(records), "-o", str(ro / "g.parquet"), "--quiet")
        one_line_error(res, "not writable", str(ro))
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_missing_parent_refused_before_work(tmp_path, records, no_work):
    res = run("group", str(records), "-o", str(tmp_path / "nope" / "g.parquet"), "--quiet")
    one_line_error(res, "does not exist")
    assert not (tmp_path / "nope").exists()


def test_unknown_extension_refused_before_work(tmp_path, records, no_work):
    res = run("group", str(records), "-o", str(tmp_path / "g.xlsx"), "--quiet")
    one_line_error(res, "unknown output format", ".xlsx", ".parquet")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cmd", ["calibrate", "simulate"])
def test_other_commands_check_output_first(cmd, tmp_path, records):
    src = tmp_path / "cases.parquet"
    src.write_bytes(records.read_bytes())
    before = sha(src)
    if cmd == "calibrate":
        res = run("calibrate", str(src), "-o", str(src))
        one_line_error(res, "is the input")
        res = run("calibrate", str(src), "-o", str(tmp_path / "w.txt"))
        one_line_error(res, "unknown output format")
    else:
        res = run("simulate", str(src), "-o", str(src))
        one_line_error(res, "is the input")
        (tmp_path / "x.parquet").write_bytes(b"x")
        res = run("simulate", str(src), "-o", str(tmp_path / "x.parquet"))
        one_line_error(res, "not a folder")
        res = run("simulate", str(tmp_path), "-o", str(tmp_path / "sim"))
        one_line_error(res, "inside the input folder")
    assert sha(src) == before and not (tmp_path / "sim").exists()


# ------------------------------------------------------------------ column names

def test_input_rename_rule():
    assert input_renames(["a", "drg"], ["drg"]) == {"drg": "input_drg"}
    assert input_renames(["drg", "input_drg"], ["drg"]) == {"drg": "input_drg_2"}
    assert input_renames(["drg", "input_drg", "input_drg_2", "mdc"], ["mdc", "drg"]) == {
        "drg": "input_drg_3", "mdc": "input_mdc"}


def test_regroup_of_grouped_output_is_readable(tmp_path, records):
    t = pq.read_table(records)
    t = t.append_column("drg", t.column("synth_drg").cast(pa.string()))
    t = t.append_column("flags", pa.array(["x"] * t.num_rows))
    pq.write_table(t, tmp_path / "in.parquet")
    once, twice = tmp_path / "once.parquet", tmp_path / "twice.parquet"
    for src, dst in ((tmp_path / "in.parquet", once), (once, twice)):
        res = run("group", str(src), "-o", str(dst), "--quiet", "--flags", "--names")
        assert res.exit_code == 0, res.output
    names = pq.read_schema(twice).names
    assert len(names) == len(set(names))
    assert {"input_drg", "input_drg_2", "drg", "input_flags", "input_flags_2", "flags",
            "input_drg_name", "drg_name"} <= set(names)
    back = pq.read_table(twice)
    # the hospital's original column keeps its name; our first run's drg is input_drg_2
    assert back.column("input_drg").equals(t.column("drg"))
    assert back.column("input_drg_2").equals(pq.read_table(once).column("drg"))
    assert back.to_pandas().columns.is_unique
    # the DataFrame path follows the same rule
    from drgsim.grouper import group

    df = group(pq.read_table(once).to_pandas(), flags=True, names=True)
    assert df.columns.is_unique and "input_drg_2" in df.columns


def test_stale_sidecars_removed(tmp_path, records):
    out = tmp_path / "g.csv"
    assert run("group", str(records), "-o", str(out), "--quiet", "--flags").exit_code == 0
    assert (tmp_path / "g.flags_by_flag.csv").exists()
    assert run("group", str(records), "-o", str(out), "--quiet").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.csv"]


# ------------------------------------------------------------------ folders

SYNTH = dict(discharges=3_000, hospitals=5, years=(2023, 2024), seed=3, workers=1)


def _files(d: Path) -> dict[str, str]:
    return {p.relative_to(d).as_posix(): sha(p) for p in sorted(d.rglob("*")) if p.is_file()}


def test_synth_interrupted_has_no_manifest_and_rerun_completes(tmp_path, monkeypatch):
    from drgsim import synth
    from drgsim.synth.region import SyntheticRegion

    fresh = tmp_path / "fresh"
    synth.region(fresh, **SYNTH)
    out = tmp_path / "out"
    real = SyntheticRegion.iter_blocks

    def interrupted(self, *a, **k):
        for i, item in enumerate(real(self, *a, **k)):
            if i == 14:  # after a dozen months were written
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(SyntheticRegion, "iter_blocks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        synth.region(out, **SYNTH)
    assert not (out / MANIFEST).exists() and leftovers(out) == []
    journal = json.loads((out / JOURNAL).read_text())
    finished = sorted(journal["files"])
    assert finished and all(f.startswith("discharges/") for f in finished)
    inode = {f: (out / f).stat().st_ino for f in finished}

    monkeypatch.setattr(SyntheticRegion, "iter_blocks", real)
    synth.region(out, **SYNTH)
    assert _files(out) == _files(fresh)  # byte-identical to an uninterrupted run
    assert {f: (out / f).stat().st_ino for f in finished} == inode  # finished parts reused
    assert OutputFolder.complete(out) is not None


def test_synth_rerun_other_parameters_removes_stale_files(tmp_path):
    from drgsim import synth

    out = tmp_path / "out"
    synth.region(out, **SYNTH)
    (out / "notes.txt").write_text("mine")
    synth.region(out, **{**SYNTH, "years": (2024,)})
    fresh = tmp_path / "fresh"
    synth.region(fresh, **{**SYNTH, "years": (2024,)})
    files = _files(out)
    assert files.pop("notes.txt") and files == _files(fresh)
    assert not (out / "discharges" / "year=2023").exists()
    # a complete folder with the same fingerprint is reused as it is
    m = (out / MANIFEST).stat().st_mtime_ns
    synth.region(out, **{**SYNTH, "years": (2024,)})
    assert (out / MANIFEST).stat().st_mtime_ns == m


def test_simulate_outputs_interrupted_have_no_manifest(tmp_path, monkeypatch):
    import pandas as pd

    import drgsim.report as report

    summary = pd.DataFrame({"item": ["cases"], "value": ["1"]})
    summary.attrs = {"drgsim.version": "test"}
    tables = {"summary": summary, "cases": pd.DataFrame({"a": [1, 2]})}
    out = tmp_path / "sim"
    monkeypatch.setattr(report, "write_plots", lambda t, d: [])
    report.write_outputs(tables, out, "fp1")
    assert OutputFolder.complete(out, "fp1") is not None
    (out / "weights.parquet").write_bytes(b"stale, from an older drgsim")

    def boom(t, d):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_plots", boom)
    with pytest.raises(KeyboardInterrupt):
        report.write_outputs(tables, out, "fp2")
    assert not (out / MANIFEST).exists() and leftovers(out) == []
    assert not (out / "weights.parquet").exists()  # a stale file never sits beside new ones
    monkeypatch.setattr(report, "write_plots", lambda t, d: [])
    report.write_outputs(tables, out, "fp2")
    m = OutputFolder.complete(out, "fp2")
    assert m is not None and {"cases.parquet", "summary.parquet"} <= set(m["files"])
    assert "weights.parquet" not in m["files"]


def test_output_folder_rerun_drops_earlier_files_keeps_others(tmp_path):
    """The generic mechanism, without ``owned`` patterns: only the manifest/journal say
    which files an earlier run wrote."""
    out = tmp_path / "out"
    with OutputFolder(out, "fp1") as f:
        for name in ("a.txt", "sub/b.txt"):
            with f.file(name) as tmp:
                tmp.write_text(name)
        f.commit()
    (out / "mine.txt").write_text("not drgsim's")
    with pytest.raises(RuntimeError, match="stop"), OutputFolder(out, "fp2") as f:
        assert not (out / MANIFEST).exists()  # incomplete from the start
        assert not (out / "a.txt").exists() and not (out / "sub").exists()  # other run's files
        with f.file("a.txt") as tmp:
            tmp.write_text("new a")
        raise RuntimeError("stop")
    assert not (out / MANIFEST).exists() and leftovers(out) == []
    with OutputFolder(out, "fp2") as f:
        assert f.reusable("a.txt") and not f.reusable("sub/b.txt")
        f.keep("a.txt")
        m = json.loads(f.commit().read_text())
    assert sorted(m["files"]) == ["a.txt"] and m["fingerprint"] == "fp2"
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", MANIFEST, "mine.txt"]
    assert (out / "a.txt").read_text() == "new a"


def test_synth_disk_full_one_line_error_no_manifest(tmp_path, monkeypatch):
    from drgsim.synth import writer

    real = writer._MonthWriter._write
    calls = []

    def write(self, table):
        calls.append(1)
        if len(calls) == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, table)

    monkeypatch.setattr(writer._MonthWriter, "_write", write)
    out = tmp_path / "region"
    res = run("synth", "-o", str(out), "--discharges", "3000", "--hospitals", "5",
              "--years", "2024", "--chunk-size", "100", "-q")
    one_line_error(res, "disk full", "no manifest.json")
    assert not (out / MANIFEST).exists() and leftovers(out) == []


def test_output_folder_never_reuses_a_damaged_file(tmp_path):
    out = tmp_path / "out"
    with OutputFolder(out, "fp") as f:
        with f.file("a.txt") as tmp:
            tmp.write_text("aaaa")
        f.commit()
    assert OutputFolder.complete(out, "fp") is not None
    (out / "a.txt").write_text("aaab")  # same size, other bytes
    assert OutputFolder.complete(out, "fp") is None
    with OutputFolder(out, "fp") as f:
        assert not f.reusable("a.txt") and not (out / "a.txt").exists()
        f.commit()


def test_a_folder_of_another_command_is_refused_not_emptied(tmp_path):
    """'simulate -o REGION' deleted a whole synth region (its discharges/ and region table)
    as 'files of an earlier run'; a folder another command wrote is now refused, untouched."""
    from drgsim.errors import OutputError
    from drgsim.output.folder import OutputFolder

    out = tmp_path / "region"
    with OutputFolder(out, "fp-synth", owned=["*.parquet"], writer="synth") as f:
        with f.file("region.parquet") as tmp:
            tmp.write_bytes(b"synth data")
        f.commit({"generator": "drgsim synth"})
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(OutputError, match="holds the output of 'drgsim synth'"):
        OutputFolder(out, "fp-sim", owned=["*.parquet"], writer="simulate").open()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # a manifest of an older drgsim (no 'writer'): the command is read from its fields
    m = json.loads((out / "manifest.json").read_text())
    del m["writer"]
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(OutputError):
        OutputFolder(out, "fp-sim", owned=["*.parquet"], writer="simulate").open()
    # the same command re-running is fine (stale files go, as before)
    OutputFolder(out, "fp-synth-2", owned=["*.parquet"], writer="synth").open()
