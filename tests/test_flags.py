"""Flags: one test per flag (a record that raises it and a near miss that does not);
no flag ever changes a group; the summary by flag and by hospital."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import SHARED

import drgsim
from drgsim.flags import flag_rules, flag_summary

BASE = dict(case_id="x", sex="1", age_years="50", age_days="", birth_weight_g="", dept="",
            los_days="5", discharge_mode="1", diagnoses="I10.x10", procedures="")


def flags_of(scheme="chs_drg_11", **kw) -> list[str]:
    rec = {**BASE, **kw}
    t = pa.table({k: pa.array([v], pa.string()) for k, v in rec.items()})
    return list(drgsim.group(t, scheme, flags=True).column("flags")[0].as_py())


# flag -> (fields that raise it, fields of a near miss that must not)
CASES = {
    "dx_absent": (dict(diagnoses=""), dict(diagnoses="I10.x10")),
    "dx_principal_empty": (dict(diagnoses="|I10.x10"), dict(diagnoses="I10.x10|")),
    "proc_main_empty": (dict(procedures="|36.0700"), dict(procedures="36.0700|")),
    "dx_unknown": (dict(diagnoses="I10.x10|Q99.ZZZ"), dict(diagnoses="I10.x10|E11.900")),
    # the x of I10.x10 is legitimately lower-case: upper-casing it is a near match
    "dx_near_match": (dict(diagnoses="I10.X10"), dict(diagnoses="I10.x10")),
    "proc_unknown": (dict(procedures="99.99zz"), dict(procedures="36.0700")),
    "proc_near_match": (dict(procedures=" 36.0700"), dict(procedures="36.0700")),
    "sex_absent": (dict(sex="男"), dict(sex="1")),
    "sex_invalid": (dict(sex="0"), dict(sex="2", diagnoses="I10.x10")),
    "age_absent": (dict(age_years="NA"), dict(age_years="0", age_days="100")),
    "age_absurd": (dict(age_years="130"), dict(age_years="120")),
    "age_days_absent": (dict(age_years="0", age_days=""), dict(age_years="1", age_days="")),
    "age_days_absurd": (dict(age_years="0", age_days="-3"), dict(age_years="0", age_days="365")),
    "weight_absent": (dict(age_years="0", age_days="10", birth_weight_g="3.2kg"),
                      dict(age_years="0", age_days="40", birth_weight_g="")),
    "weight_absurd": (dict(birth_weight_g="50"), dict(birth_weight_g="100")),
    "los_absent": (dict(los_days=""), dict(los_days="0")),
    "los_absurd": (dict(los_days="-1"), dict(los_days="3650")),
    # N80 (endometriosis) is female-only in the edit table; a male principal conflicts,
    # the same code as a secondary does not
    "dx_sex_conflict": (dict(sex="1", diagnoses="N80.100"), dict(sex="1", diagnoses="I10.x10|N80.100")),
    "dx_age_conflict": (dict(age_years="30", diagnoses="P22.000"),
                        dict(age_years="0", age_days="3", birth_weight_g="3000", diagnoses="P22.000")),
    # I50.900x002 is an MCC; with principal I34.000x001 it shares exclusion table 95
    "cc_excluded": (dict(diagnoses="I34.000x001|I50.900x002"), dict(diagnoses="I10.x10|I50.900x002")),
}


def test_every_flag_has_a_case():
    assert set(CASES) | {"code_numeric"} == {r.flag for r in flag_rules()}
    for r in flag_rules():
        assert r.description, r.flag


@pytest.mark.parametrize("flag", list(CASES))
def test_flag_raised_and_near_miss(flag):
    hit, miss = CASES[flag]
    assert flag in flags_of(**hit)
    assert flag not in flags_of(**miss)


def test_more_age_and_sex_edits():
    assert "dx_age_conflict" in flags_of(sex="2", age_years="8", diagnoses="O80.000")
    assert "dx_age_conflict" not in flags_of(sex="2", age_years="28", diagnoses="O80.000")
    assert "dx_sex_conflict" in flags_of(sex="2", diagnoses="N40.x00")
    assert "dx_sex_conflict" not in flags_of(sex="0", diagnoses="N40.x00")  # sex unknown: sex_invalid
    assert flags_of() == []  # a clean record: empty list


def test_code_numeric_flag():
    from drgsim.flags.engine import compute_flags
    from drgsim.records import fields_from_table

    t = pa.table({k: pa.array([v, v], pa.string()) for k, v in BASE.items()})
    m = compute_flags(fields_from_table(t), drgsim.load_scheme(), np.array([True, False]))
    assert m["code_numeric"].tolist() == [True, False]


def test_unknown_procedure_uses_or_list_too(tmp_path):
    """A code in or_procedure.csv but not in icd9.csv is not unknown."""
    from drgsim.scheme.paths import resolve_scheme_dir

    src = resolve_scheme_dir("chs_drg_11")
    dst = tmp_path / "s"
    shutil.copytree(src, dst)
    lines = (dst / "icd9.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (dst / "icd9.csv").write_text("".join(x for x in lines if not x.startswith("00.5500,")),
                                  encoding="utf-8")
    assert "proc_unknown" not in flags_of(scheme=str(dst), procedures="00.5500")
    assert "proc_unknown" in flags_of(scheme=str(dst), procedures="00.5599zz")


def _corpora() -> list[Path]:
    return sorted((SHARED / "conformance").glob("*_public.csv"))


@pytest.mark.parametrize("path", [Path(__file__).parent / "fixtures" / "exports" / "cases_utf8.csv",
                                  *_corpora()], ids=lambda p: p.name)
def test_flags_never_change_a_group(path):
    scheme = "beijing_2022" if path.name.startswith("beijing") else "chs_drg_11"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    plain = drgsim.group(df, scheme)
    flagged = drgsim.group(df, scheme, flags=True, names=True)
    for f in ("mdc", "adrg", "drg", "status"):
        assert plain[f].tolist() == flagged[f].tolist()
    n_flagged = flagged["flags"].map(len).gt(0).sum()
    assert 0 < n_flagged < len(df)


def test_summary_by_flag_and_hospital():
    g = drgsim.group(Path(__file__).parent / "fixtures" / "exports" / "cases_utf8.csv", flags=True)
    by_flag, by_hosp = flag_summary(g, "hospital_id")
    assert list(by_flag["flag"])[:-1] == [r.flag for r in flag_rules()]
    anyrow = by_flag.set_index("flag").loc["(any)"]
    assert anyrow["records"] == int(g["flags"].map(len).gt(0).sum())
    assert set(by_hosp["hospital"]) == {"H01", "H02", "H03"}
    assert by_hosp["records"].sum() == len(g)
    assert by_hosp["cc_excluded"].sum() == by_flag.set_index("flag").loc["cc_excluded", "records"]


def test_plain_grouping_never_loads_flags():
    """Flags cost nothing unless asked: plain grouping does not even import them."""
    import subprocess
    import sys

    src = Path(__file__).parent / "fixtures" / "exports" / "cases_utf8.csv"
    code = ("import sys, drgsim; drgsim.group(sys.argv[1]); "
            "print('drgsim.flags' in sys.modules, 'drgsim.grouper.extras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(src)], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
