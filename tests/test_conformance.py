"""The grouper reproduces every labelled record of ../shared/conformance, for every scheme."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from conftest import SHARED, shared_path

import drgsim

FIELDS = ("mdc", "adrg", "drg", "status")


def _corpora() -> list[tuple[str, bool]]:
    """(relative path, translate) for every corpus present; a placeholder when none is."""
    root = SHARED / "conformance"
    found = [(p.name, False) for p in sorted(root.glob("*_public.csv"))]
    found += [(f"translate/{p.name}", True) for p in sorted((root / "translate").glob("*_public.csv"))]
    return found or [("chs_drg_11_public.csv", False)]


def _read_all_text(path) -> pa.Table:
    header = path.open(encoding="utf-8").readline().strip().split(",")
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types={c: pa.string() for c in header}, strings_can_be_null=False))


def _scheme_of(rel: str) -> str:
    return rel.split("/")[-1].removesuffix("_public.csv")


def _assert_agrees(out: pd.DataFrame, rel: str) -> None:
    bad = pd.Series(False, index=out.index)
    for f in FIELDS:
        bad |= out[f].astype(str).values != out[f"expected_{f}"].fillna("").astype(str).values
    if bad.any():
        cols = ["case_id", "diagnoses", "procedures", *FIELDS, *(f"expected_{f}" for f in FIELDS)]
        pytest.fail(f"{rel}: {int(bad.sum())} of {len(out)} rows disagree:\n"
                    f"{out.loc[bad, cols].head(10).to_string()}")


@pytest.mark.parametrize("rel,translate", _corpora())
def test_corpus_agrees_row_for_row(rel, translate):
    path = shared_path("conformance", rel)
    scheme = shared_path("schemes", _scheme_of(rel))  # the shared tables, not our copy
    out = drgsim.group(_read_all_text(path), scheme=scheme, translate=translate).to_pandas()
    assert len(out) == sum(1 for _ in path.open(encoding="utf-8")) - 1
    _assert_agrees(out, rel)


@pytest.mark.parametrize("rel,translate", _corpora())
def test_corpus_through_csv_reader_and_bundled_tables(rel, translate):
    """The same corpus read by drgsim's own CSV reader, grouped with the bundled copy."""
    path = shared_path("conformance", rel)
    out = drgsim.group(path, scheme=_scheme_of(rel), translate=translate)
    _assert_agrees(out, rel)


def test_list_typed_codes_group_like_joined_text():
    """Arrow list<string> code columns are read as their non-null elements joined by '|'."""
    path = shared_path("conformance", "chs_drg_11_public.csv")
    t = _read_all_text(path)
    lists = {}
    for f in ("diagnoses", "procedures"):
        col = t.column(f).to_pylist()
        lists[f] = pa.array([None if s == "" else s.split("|") for s in col],
                            type=pa.list_(pa.string()))
    # a null or [""] element list is an empty field either way; make some nulls explicit
    tl = t.set_column(t.schema.get_field_index("diagnoses"), "diagnoses", lists["diagnoses"])
    tl = tl.set_column(tl.schema.get_field_index("procedures"), "procedures", lists["procedures"])
    a = drgsim.group(t, scheme="chs_drg_11").select(list(FIELDS)).to_pandas()
    b = drgsim.group(tl, scheme="chs_drg_11").select(list(FIELDS)).to_pandas()
    pd.testing.assert_frame_equal(a, b)


def test_every_shared_scheme_has_a_corpus_and_validates():
    from drgsim.scheme.tables import load_tables

    root = shared_path("schemes")
    for folder in sorted(p for p in root.iterdir() if (p / "scheme.csv").exists()):
        load_tables(folder)
        assert (SHARED / "conformance" / f"{folder.name}_public.csv").exists(), folder.name


def test_bundled_tables_are_the_shared_tables():
    """grouper_tables/ ships the shared scheme tables byte for byte."""
    from drgsim.scheme.paths import resolve_scheme_dir
    from drgsim.scheme.tables import content_hash

    root = shared_path("schemes")
    for folder in sorted(p for p in root.iterdir() if (p / "scheme.csv").exists()):
        assert content_hash(resolve_scheme_dir(folder.name)) == content_hash(folder), folder.name
