"""The compiled-scheme cache is keyed by code as well as tables: other code, rebuilt."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from drgsim.scheme import compiled

MINI = Path(__file__).parent / "fixtures" / "schemes" / "mini"


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """A private cache dir, an empty memo, and a counter of real compilations."""
    monkeypatch.setenv("DRGSIM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(compiled, "_MEMO", {})
    calls = []
    real = compiled.compile_tables

    def counting(st):
        calls.append(st.path)
        return real(st)

    monkeypatch.setattr(compiled, "compile_tables", counting)
    folder = tmp_path / "mini"
    shutil.copytree(MINI, folder)
    return folder, calls


def _cached_files() -> list[Path]:
    return sorted(compiled.cache_dir().glob("*.npz"))


def test_tests_use_a_temporary_cache_dir():
    assert "DRGSIM_CACHE_DIR" in __import__("os").environ
    assert not str(compiled.cache_dir()).startswith(str(Path.home() / ".cache"))


def test_warm_cache_is_reused(fresh, monkeypatch):
    folder, calls = fresh
    compiled.compile_scheme(folder)
    monkeypatch.setattr(compiled, "_MEMO", {})
    compiled.compile_scheme(folder)
    assert len(calls) == 1 and len(_cached_files()) == 1


def test_changed_compiler_rebuilds_the_cache(fresh, monkeypatch):
    folder, calls = fresh
    a = compiled.compile_scheme(folder)
    monkeypatch.setattr(compiled, "_MEMO", {})
    monkeypatch.setattr(compiled, "_COMPILER_HASH", ["0123456789abcdef"])  # "new code"
    b = compiled.compile_scheme(folder)
    assert len(calls) == 2, "a cache written by other compiler code was trusted"
    assert len(_cached_files()) == 2
    assert a.codes == b.codes


def test_changed_version_rebuilds_the_cache(fresh, monkeypatch):
    folder, calls = fresh
    compiled.compile_scheme(folder)
    monkeypatch.setattr(compiled, "_MEMO", {})
    monkeypatch.setattr(compiled, "__version__", "99.0.0")
    compiled.compile_scheme(folder)
    assert len(calls) == 2


def test_cache_file_from_other_code_under_our_key_is_rebuilt(fresh, monkeypatch):
    """Even at the right file name, a cache whose stamp names other code is not trusted."""
    folder, calls = fresh
    compiled.compile_scheme(folder)
    (path,) = _cached_files()
    monkeypatch.setattr(compiled, "_MEMO", {})
    with monkeypatch.context() as m:  # rewrite the file as "other code" would have
        m.setattr(compiled, "_COMPILER_HASH", ["other"])
        cs = compiled.compile_tables(compiled.load_tables(folder))
        cs.kt = cs.kt._replace(code_cc=~cs.kt.code_cc)  # arrays that code would make
        compiled._save(cs, path)
    out = compiled.compile_scheme(folder)
    assert len(calls) == 3  # first build, the forged one, the rebuild
    assert (out.kt.code_cc == compiled.compile_tables(compiled.load_tables(folder)).kt.code_cc).all()


def test_compiler_hash_covers_the_compiler_modules():
    assert "compiled.py" in compiled.COMPILER_MODULES and "tables.py" in compiled.COMPILER_MODULES
    h = compiled.compiler_hash()
    assert len(h) == 16 and h == compiled.compiler_hash()


def test_an_interrupted_cache_write_leaves_no_file(fresh, monkeypatch):
    """Ctrl-C while the cache is written left a '.tmp<pid>' file (megabytes) in the cache."""
    folder, _ = fresh

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(compiled.np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compiled.compile_scheme(folder)
    left = [p.name for p in compiled.cache_dir().iterdir()] if compiled.cache_dir().exists() else []
    assert left == []
