"""Hostile YAML (policies, column maps): refused fast, in one line naming file and line.

Every YAML drgsim reads goes through :mod:`drgsim.yamlsafe`: no anchors or aliases (a
"billion laughs" never expands), a depth limit checked on the event stream (no
RecursionError), a size limit checked before reading, and UTF-8 only (a GBK file is named
with the line and byte offset of its first non-UTF-8 byte).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from drgsim.cli import main
from drgsim.inputs.colmap import ColumnMapError, load_map
from drgsim.policy import PolicyError, load_policy
from drgsim.yamlsafe import MAX_BYTES, MAX_DEPTH, YamlError, load_yaml

FIX = Path(__file__).parent / "fixtures"
LAUGHS = FIX / "policies" / "billion_laughs.yaml"
GBK = FIX / "policies" / "gbk_encoded.yaml"


def _one_line_problem(exc: pytest.ExceptionInfo, where: str, words: str) -> None:
    text = str(exc.value)
    assert "\n" not in text, text
    assert text.startswith(where), text
    assert words in text, text


def test_billion_laughs_policy_rejected_fast_with_file_line():
    t0 = time.perf_counter()
    with pytest.raises(PolicyError) as exc:
        load_policy(LAUGHS)
    assert time.perf_counter() - t0 < 5  # rejected before expansion; no timing target here
    _one_line_problem(exc, f"{LAUGHS}:2:", "YAML anchor &lol0 is not allowed")


def test_alias_without_anchor_line_is_named():
    with pytest.raises(YamlError) as exc:
        load_yaml("a: 1\nb: [1, 2]\nc: *nowhere\n", "x.yaml")
    assert "x.yaml:3:" in str(exc.value)


@pytest.mark.parametrize("text,line", [
    ("x: " + "[" * 10_000 + "]" * 10_000 + "\n", 1),
    ("x: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n", 1),
    ("".join("  " * i + f"k{i}:\n" for i in range(300)) + "  " * 300 + "v\n", MAX_DEPTH + 1),
])
def test_deep_nesting_is_one_line_not_recursion_error(tmp_path, text, line):
    f = tmp_path / "deep.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as exc:
        load_policy(f)
    _one_line_problem(exc, f"{f}:{line}:", f"nested more than {MAX_DEPTH} levels deep")


def test_depth_at_the_limit_is_fine():
    doc = load_yaml("x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n", "ok.yaml")
    assert "x" in doc


def test_oversized_file_refused_before_reading(tmp_path):
    f = tmp_path / "big.yaml"
    f.write_bytes(b"a: '" + b"x" * MAX_BYTES + b"'\n")
    with pytest.raises(PolicyError) as exc:
        load_policy(f)
    _one_line_problem(exc, f"{f}:", "larger than the")


def test_gbk_policy_names_line_and_byte_offset():
    raw = GBK.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        offset, line = e.start, raw.count(b"\n", 0, e.start) + 1
    with pytest.raises(PolicyError) as exc:
        load_policy(GBK)
    _one_line_problem(exc, f"{GBK}:{line}:", f"not UTF-8 text: byte 0x{raw[offset]:02x} at "
                                             f"byte offset {offset}")


def test_utf8_bom_policy_is_fine(tmp_path):
    from drgsim.policy import bundled_policy_path

    f = tmp_path / "bom.yaml"
    f.write_bytes(b"\xef\xbb\xbf" + bundled_policy_path().read_bytes())
    assert load_policy(f).params


@pytest.mark.parametrize("name,line,words", [
    ("bad_alias.yaml", 2, "YAML anchor &cols is not allowed"),
    ("bad_gbk.yaml", 3, "not UTF-8 text"),
])
def test_hostile_column_maps(name, line, words):
    f = FIX / "maps" / name
    with pytest.raises(ColumnMapError) as exc:
        load_map(f)
    _one_line_problem(exc, f"{f}:{line}:", words)


def test_existing_line_numbers_kept():
    """ruamel's line numbers still reach the schema messages (duplicate key, unknown key)."""
    with pytest.raises(PolicyError) as exc:
        load_policy(FIX / "policies" / "duplicate_key.yaml")
    assert "duplicate_key.yaml:" in str(exc.value) and "duplicate key" in str(exc.value)


@pytest.mark.parametrize("path", [LAUGHS, GBK])
def test_cli_policy_validate_one_line_exit_2(path):
    res = CliRunner().invoke(main, ["policy", "validate", str(path)])
    assert res.exit_code == 2
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(str(path)), res.output
    assert "Traceback" not in res.output
