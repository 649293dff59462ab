"""The tiny-input path (reference grouper, no numba) gives what the kernel path gives, and
the streaming writer's settings keep every row and value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from conftest import SHARED, shared_path
from hypothesis import given, settings
from hypothesis import strategies as st

from drgsim.grouper import tiny
from drgsim.grouper.batchio import dictionary_columns
from drgsim.grouper.core import group_arrow_result, load_scheme
from drgsim.records import fields_from_table

FIX = Path(__file__).parent / "fixtures"
OUT = ("mdc", "adrg", "drg", "status")


def _all_text(path: Path) -> pa.Table:
    header = path.open(encoding="utf-8").readline().strip().split(",")
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types={c: pa.string() for c in header}, strings_can_be_null=False))


def _assert_engines_agree(table: pa.Table, scheme, translate: bool) -> None:
    """Reference and kernel engines: same read fields, same result arrays, same output."""
    a, ra = group_arrow_result(table, scheme, translate, engine="reference")
    b, rb = group_arrow_result(table, scheme, translate, engine="kernel")
    fa, fb = tiny.fields_py(table), fields_from_table(table)
    for k in fb.ints:
        np.testing.assert_array_equal(fa.ints[k], fb.ints[k], err_msg=k)
    assert fa.diagnoses.equals(fb.diagnoses) and fa.procedures.equals(fb.procedures)
    for name in OUT:
        x, y = getattr(ra, name), getattr(rb, name)
        bad = np.flatnonzero(x != y)
        assert not len(bad), (f"{name}: {len(bad)} of {len(x)} rows differ, first "
                              f"{table.slice(int(bad[0]), 1).to_pylist()}")
    assert a.equals(b)


def _corpora() -> list[tuple[str, bool]]:
    root = SHARED / "conformance"
    found = [(p.name, False) for p in sorted(root.glob("*_public.csv"))]
    found += [(f"translate/{p.name}", True) for p in sorted((root / "translate").glob("*_public.csv"))]
    return found or [("chs_drg_11_public.csv", False)]


@pytest.mark.parametrize("rel,translate", _corpora())
def test_reference_engine_equals_kernel_on_conformance_corpus(rel, translate):
    path = shared_path("conformance", rel)
    scheme = load_scheme(shared_path("schemes", rel.split("/")[-1].removesuffix("_public.csv")))
    table = _all_text(path)
    table = table.drop_columns([c for c in table.column_names if c.startswith("expected_")])
    _assert_engines_agree(table, scheme, translate)


@pytest.mark.parametrize("translate", [False, True])
def test_reference_engine_equals_kernel_on_hand_worked_fixture(translate):
    t = _all_text(FIX / "mini_cases.csv")
    t = t.filter(pc.equal(t.column("translate"), "1" if translate else "0"))
    t = t.drop_columns(["translate", "why", *OUT])
    _assert_engines_agree(t, load_scheme(FIX / "schemes" / "mini"), translate)


@pytest.mark.parametrize("name", ["cases_utf8.csv", "cases_gbk.csv"])
def test_reference_engine_equals_kernel_on_export_fixtures(name):
    from drgsim.records import read_records

    _assert_engines_agree(read_records(FIX / "exports" / name), load_scheme("chs_drg_11"), False)


def test_typed_and_odd_fields_agree(chs):
    """Typed columns (ints, floats, decimals, lists, dictionaries) and odd text."""
    import decimal

    t = pa.table({
        "case_id": ["a", "b", "c", "d", "e", "f"],
        "sex": pa.array([1, 2, None, 1, 2, 1], pa.int8()),
        "age_years": pa.array([0.0, 45.0, 30.5, None, float("inf"), 2.0 ** 70]),
        "age_days": pa.array([decimal.Decimal("27"), decimal.Decimal("28.0"), None,
                              decimal.Decimal("29.50"), decimal.Decimal("3"), None]),
        "birth_weight_g": pa.array(["2500", " 1800 ", "３2", "\u30003200\u3000", "-0", "9" * 30]),
        "los_days": pa.array(["1", "2", "3", "4", "5", "6"]).dictionary_encode(),
        "diagnoses": pa.array([["P07.300", "P22.000"], ["I50.900", None], None, [], ["J18.900"],
                               ["I21.000", "I50.900", "N17.900"]], pa.list_(pa.string())),
        "procedures": pa.array([None, "", "00.6601", "36.0700,88.5601", "||", "39.9500"]),
    })
    _assert_engines_agree(t, chs, False)


_PIECE = st.sampled_from([*"0123456789-. \t\n\r\x0b\x0c\x1c\x1fx+", "\u3000", "１", "\u00a0",
                          "0" * 20, "9" * 20, "4611686018427387904", ".0", ".00"])
_TEXT = st.lists(_PIECE, max_size=8).map("".join)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(st.none(), _TEXT), min_size=1, max_size=40))
def test_python_integer_parser_equals_the_text_kernel(values):
    from drgsim.records import _int_text

    arr = pa.array(values, pa.string())
    np.testing.assert_array_equal(tiny.int_text_py(arr), _int_text(arr), err_msg=repr(values))


def test_engine_choice(monkeypatch):
    monkeypatch.delenv("DRGSIM_TINY_ROWS", raising=False)
    monkeypatch.delitem(sys.modules, "drgsim.grouper.kernels", raising=False)
    assert tiny.choose_engine("auto", tiny.TINY_ROWS) == "reference"
    assert tiny.choose_engine("auto", tiny.TINY_ROWS + 1) == "kernel"
    assert tiny.choose_engine("kernel", 1) == "kernel"
    monkeypatch.setenv("DRGSIM_TINY_ROWS", "0")
    assert tiny.choose_engine("auto", 1) == "kernel"
    monkeypatch.setenv("DRGSIM_TINY_ROWS", "50")
    assert tiny.choose_engine("auto", 50) == "reference"
    monkeypatch.setitem(sys.modules, "drgsim.grouper.kernels", object())
    assert tiny.choose_engine("auto", 1) == "kernel"  # once loaded, the kernel is faster
    with pytest.raises(ValueError):
        tiny.choose_engine("numba", 1)


def test_reference_cache_is_rebuilt_when_unreadable(monkeypatch, tmp_path, chs):
    monkeypatch.setenv("DRGSIM_CACHE_DIR", str(tmp_path))
    t = _all_text(FIX / "exports" / "cases_utf8.csv")
    want = group_arrow_result(t, chs, engine="kernel")[0]
    assert group_arrow_result(t, chs, engine="reference")[0].equals(want)
    (cached,) = tmp_path.glob("schemes/*.reference-*.sqlite")
    cached.write_bytes(b"not a database")
    assert group_arrow_result(t, chs, engine="reference")[0].equals(want)
    assert cached.read_bytes()[:15] == b"SQLite format 3"


def _cli_group(tmp_path: Path, src: Path, out: Path, tiny_rows: str | None) -> str:
    """Run ``drgsim group`` in a fresh process; return which heavy modules it loaded."""
    env = {**os.environ, "DRGSIM_CACHE_DIR": os.environ.get("DRGSIM_CACHE_DIR",
                                                             str(tmp_path / "cache"))}
    env.pop("DRGSIM_TINY_ROWS", None)
    if tiny_rows is not None:
        env["DRGSIM_TINY_ROWS"] = tiny_rows
    code = ("import sys\nfrom drgsim.cli import main\n"
            f"sys.argv = ['drgsim', 'group', {str(src)!r}, '-o', {str(out)!r}, '--quiet']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(','.join(m for m in ('numba', 'pandas') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True)
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_cli_tiny_input_loads_neither_numba_nor_pandas_and_matches_the_kernel(tmp_path, suffix):
    src = FIX / "exports" / "cases_utf8.csv"
    fast, slow = tmp_path / f"fast{suffix}", tmp_path / f"slow{suffix}"
    assert _cli_group(tmp_path, src, fast, None) == ""
    assert _cli_group(tmp_path, src, slow, "0") == "numba"
    if suffix == ".csv":
        assert fast.read_bytes() == slow.read_bytes()
    else:
        assert pq.read_table(fast).equals(pq.read_table(slow))


# ---------------------------------------------------------------- batch-path helpers

def test_dictionary_only_for_few_distinct_values():
    n = 10_000
    t = pa.table({"id": [str(i) for i in range(n)], "sex": ["1", "2"] * (n // 2),
                  "cost": np.arange(n, dtype=np.float64), "flags": [["a"]] * n})
    assert dictionary_columns(t) == ["sex"]


def test_streamed_parquet_output_reads_back_whole(tmp_path):
    from drgsim.grouper.stream import group_file
    from drgsim.records import read_records

    src = read_records(FIX / "exports" / "cases_utf8.csv")
    big = pa.concat_tables([src] * (3000 // src.num_rows + 1))
    pq.write_table(big, tmp_path / "in.parquet")
    s = group_file(tmp_path / "in.parquet", tmp_path / "out.parquet", batch_rows=1000)
    out = pq.read_table(tmp_path / "out.parquet")
    assert s.rows == out.num_rows == big.num_rows
    assert out.select(big.column_names).equals(big)
    want = group_arrow_result(big, load_scheme(), engine="kernel")[0]
    assert out.select(list(OUT)).equals(want.select(list(OUT)))


# ---------------------------------------------------------------- CSV pre-scan in Python

_CSV_BYTES = st.lists(st.sampled_from([b"a", b"1", b",", b'"', b'""', b"\n", b"\r\n", b"\r",
                                       "中".encode(), "中".encode("gbk"), b"\xe4\xb8", b"\xff",
                                       b"\xef\xbb\xbf", b" "]), max_size=60).map(b"".join)


@settings(max_examples=200, deadline=None)
@given(data=_CSV_BYTES, chunk=st.sampled_from([3, 7, 1 << 16]))
def test_python_csv_scan_equals_the_compiled_scan(tmp_path_factory, data, chunk):
    from drgsim.inputs.csvscan import scan_csv

    p = tmp_path_factory.mktemp("scan") / "x.csv"
    p.write_bytes(b"h1,h2\n" + data)
    assert scan_csv(p, chunk, compiled=False) == scan_csv(p, chunk, compiled=True)


@pytest.mark.parametrize("name", ["cases_utf8.csv", "cases_gbk.csv", "bingan_shouye_gbk.csv"])
def test_python_csv_scan_equals_the_compiled_scan_on_fixtures(name):
    from drgsim.inputs.csvscan import scan_csv

    p = FIX / "exports" / name
    assert scan_csv(p, compiled=False) == scan_csv(p, compiled=True)


def test_arrow_without_pandas_keeps_to_pandas_working():
    """After the shim is told "no pandas", pyarrow still converts to pandas when asked."""
    code = ("import sys\nfrom drgsim.grouper.tiny import arrow_without_pandas\n"
            "arrow_without_pandas()\nimport pyarrow as pa\n"
            "t = pa.table({'a': [1, 2]})\nassert 'pandas' not in sys.modules\n"
            "df = t.to_pandas()\nassert list(df['a']) == [1, 2]\nprint('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "ok", proc.stderr
