"""Synthetic cases against the real grouper: they group, and dirt does what its kind implies.

Every dirty row is compared with its clean twin (the same seed at ``dirty_rate=0``):
record-check dirt gives ``check_failed``/``0000``; dirt in fields no CHS-DRG 1.1 rule reads
keeps the twin's group; a bad code gives what the twin gets with that code replaced by a
code that is in no table; a sex conflict never fails the checks and leaves MDC M/N.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

import drgsim.synth as S
from drgsim.synth.dirt import KIND_BY_NAME

grouper = pytest.importorskip("drgsim.grouper", reason="drgsim.grouper not importable yet")

RESULT = ["mdc", "adrg", "drg", "status"]
UNKNOWN = "NOT.A.CODE"
YEARS = (2023, 2024)


def _group(table: pa.Table | pd.DataFrame) -> pd.DataFrame:
    out = grouper.group(table)
    return out.to_pandas() if isinstance(out, pa.Table) else out


@pytest.fixture(scope="module")
def grouped():
    dirty = S.discharges(60_000, seed=21, dirty_rate=0.25, years=YEARS)
    clean = S.discharges(60_000, seed=21, dirty_rate=0.0, years=YEARS)
    return dirty, _group(dirty), clean, _group(clean)


def test_clean_rows_group_to_real_drgs(grouped):
    _, _, clean, gc = grouped
    ok = (gc.status == "ok") & (gc.drg != "0000")
    assert ok.mean() >= 0.98
    # the generator's intended DRG is what the grouper finds, nearly always
    assert (gc.drg == gc.synth_drg).mean() > 0.99
    assert gc.mdc.nunique() == 26
    assert gc.adrg.nunique() > 300 and gc.drg.nunique() > 450


def test_every_dirty_row_comes_back_in_order(grouped):
    dirty, gd, _, _ = grouped
    assert len(gd) == dirty.num_rows
    assert gd.case_id.tolist() == dirty.column("case_id").to_pylist()


def _expect(kind: str, gd: pd.DataFrame, gc: pd.DataFrame, dirty: pd.DataFrame,
            clean: pd.DataFrame) -> None:
    rows = dirty.index[dirty.synth_dirt == kind]
    assert len(rows), kind
    got, twin = gd.loc[rows, RESULT], gc.loc[rows, RESULT]
    expect = KIND_BY_NAME[kind].expect
    if expect == S.CHECK_FAILED:
        assert (got.status == "check_failed").all(), kind
        assert (got.drg == "0000").all(), kind
    elif expect == S.UNCHANGED:
        pd.testing.assert_frame_equal(got, twin, obj=kind)
    elif expect == S.SEX_CONFLICT:
        assert (got.status != "check_failed").all()
        sex = dirty.loc[rows, "sex"]
        assert not ((sex == 2) & (got.mdc == "MDCM")).any()
        assert not ((sex == 1) & (got.mdc == "MDCN")).any()
        stay = ~twin.mdc.isin(["MDCM", "MDCN"])
        pd.testing.assert_frame_equal(got[stay], twin[stay], obj=kind)
        assert (got.mdc[~stay] != twin.mdc[~stay]).all()
    else:  # a bad code: the twin with that code replaced by an unknown one
        fixed = clean.loc[rows].copy()
        for col in ("diagnoses", "procedures"):
            a = dirty.loc[rows, col].str.split("|")
            b = fixed[col].str.split("|")
            fixed[col] = [
                "|".join(y if x == y else UNKNOWN for x, y in zip(dl, cl, strict=True))
                if dl != cl else "|".join(cl)
                for dl, cl in zip(a, b, strict=True)
            ]
            changed = [dl != cl for dl, cl in zip(a, b, strict=True)]
            assert all(len(dl) == len(cl) for dl, cl in zip(a, b, strict=True))
            if col == "diagnoses" and kind in ("code_lowercase", "principal_empty"):
                assert all(changed)
        want = _group(fixed.drop(columns=RESULT, errors="ignore"))[RESULT]
        want.index = rows
        pd.testing.assert_frame_equal(got, want, obj=kind)


@pytest.mark.parametrize("kind", [k.name for k in S.DIRT_KINDS if not k.text_only])
def test_typed_dirt_does_what_its_kind_implies(grouped, kind):
    dirty, gd, clean, gc = grouped
    _expect(kind, gd, gc, dirty.to_pandas(), clean.to_pandas())


@pytest.fixture(scope="module")
def grouped_text(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_csv")
    S.region(out, discharges=30_000, hospitals=30, years=(2024,), seed=5, dirty_rate=0.3,
             format="csv")
    files = sorted((out / "discharges").rglob("*.csv"))
    dirty = pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False) for f in files],
                      ignore_index=True)
    clean = S.discharges(30_000, seed=5, dirty_rate=0.0, hospitals=30, years=(2024,)).to_pandas()
    assert dirty.case_id.tolist() == clean.case_id.tolist()
    return dirty, _group(dirty), clean, _group(clean)


def test_text_rows_all_come_back(grouped_text):
    dirty, gd, _, _ = grouped_text
    assert len(gd) == len(dirty) and gd.case_id.tolist() == dirty.case_id.tolist()


@pytest.mark.parametrize("kind", [k.name for k in S.DIRT_KINDS
                                  if k.eligible in ("all", "not_age0", "two_dx")])
def test_text_dirt_does_what_its_kind_implies(grouped_text, kind):
    dirty, gd, clean, gc = grouped_text
    d = dirty.copy()
    d["sex"] = pd.to_numeric(d.sex, errors="coerce")
    _expect(kind, gd, gc, d, clean)


def test_text_newborn_dirt_fails_the_checks(grouped_text):
    dirty, gd, _, _ = grouped_text
    for kind in ("weight_text", "newborn_no_weight", "age0_no_age_days"):
        rows = dirty.index[dirty.synth_dirt == kind]
        assert (gd.loc[rows, "status"] == "check_failed").all(), kind
