"""DIP as one feature: the seams between the five DIP branches (policy sections, the
compiled scheme, the package's names) and the CLI as a user runs it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from drgsim.policy import PolicyError, bundled_policy_path, load_policy, parse_policy

SUPERVISION = """
supervision:
  readmission:
    days:
      values: {2019-01-01: 20}
  low_cost:
    ratio:
      values: {2019-01-01: 0.4}
    exclude_discharge_modes:
      values: {2019-01-01: [2, 5]}
  flags:
    values: {2019-01-01: [readmission, low_cost]}
"""


def _with(text: str, name: str = "baseline") -> str:
    return bundled_policy_path(name).read_text(encoding="utf-8") + text


@pytest.mark.parametrize("name", ["baseline", "dip_baseline"])
def test_supervision_section_is_read_for_drg_and_dip_policies(name):
    from drgsim.dip.supervision import params_from_policy

    p = params_from_policy(parse_policy(_with(SUPERVISION, name), "p.yaml"))
    assert p["readmission"]["days"] == 20 and p["readmission"]["same_hospital"] is True
    assert p["low_cost"] == {"ratio": 0.4, "exclude_discharge_modes": [2, 5]}
    assert p["flags"] == ["readmission", "low_cost"]
    assert p["split"]["days"] == 1  # a key the section leaves out: the documented default


@pytest.mark.parametrize("bad, key", [
    ("  low_cost:\n    ratio:\n      values: {2019-01-01: 1.5}\n", "supervision.low_cost.ratio"),
    ("  split:\n    dayz:\n      values: {2019-01-01: 2}\n", "supervision.split.dayz"),
    ("  flags:\n    values: {2019-01-01: [readmission, typo]}\n", "supervision.flags"),
    ("  low_cost:\n    exclude_discharge_modes:\n      values: {2019-01-01: [2, x]}\n",
     "supervision.low_cost.exclude_discharge_modes"),
])
def test_a_bad_supervision_value_fails_with_file_and_line(bad, key):
    text = _with("supervision:\n" + bad)
    line = len(text.splitlines()) - (0 if "dayz" in bad else 0)
    with pytest.raises(PolicyError) as e:
        parse_policy(text, "p.yaml")
    msg = str(e.value)
    assert key in msg and "\n" not in msg and "p.yaml:" in msg
    assert f"p.yaml:{line}" in msg or f"p.yaml:{line - 1}" in msg


def test_dip_section_has_no_unread_supervision_keys():
    p = load_policy("dip_baseline")
    assert not [k for k in p.params if k.startswith("dip.supervision")]
    with pytest.raises(PolicyError, match="dip.supervision"):
        parse_policy(_with("", "dip_baseline").replace(
            "  point_value:\n", "  supervision:\n    split_days:\n      values: {2019-01-01: 3}\n"
            "  point_value:\n", 1), "p.yaml")


def test_supervision_keys_have_a_level_and_overlay():
    from drgsim.policy.schema import level_of

    assert level_of("supervision.readmission.days") == "year"
    p = load_policy().with_values({"supervision.split.days": 4})
    from drgsim.dip.supervision import params_from_policy

    assert params_from_policy(p)["split"]["days"] == 4


def test_build_takes_a_compiled_scheme():
    import drgsim.synth as syn
    from drgsim import dip
    from drgsim.grouper.core import load_scheme

    t = syn.discharges(3_000, seed=2, hospitals=4, years=(2022, 2023, 2024))
    cat_a, asg_a = dip.build(t, scheme="chs_drg_11")
    cat_b, asg_b = dip.build(t, scheme=load_scheme("chs_drg_11"))
    pd.testing.assert_frame_equal(cat_a.packets, cat_b.packets)
    assert asg_a.packet.tolist() == asg_b.packet.tolist()


def test_dip_match_is_callable_whatever_was_imported_first(monkeypatch):
    import subprocess
    import sys

    import drgsim.dip.match as M
    from drgsim import dip

    assert dip.match is M and callable(M)
    monkeypatch.setattr(M, "match", lambda *a, **k: ("called", a, k))
    assert dip.match(1, catalogue=2) == ("called", (1,), {"catalogue": 2})
    code = ("from drgsim import dip; f = dip.match; import drgsim.dip.match; "
            "from drgsim.dip import match; print(callable(f), callable(match), f is match)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["True", "True", "True"]


def test_cli_group_supervision_takes_the_policys_section(tmp_path):
    import drgsim.synth as syn
    from drgsim.cli import main

    t = syn.discharges(2_000, seed=4, hospitals=4, years=(2024,))
    src = tmp_path / "in.parquet"
    pq.write_table(t, src)
    pol = tmp_path / "p.yaml"
    pol.write_text(_with(SUPERVISION), encoding="utf-8")
    out = tmp_path / "g.csv"
    r = CliRunner().invoke(main, ["group", str(src), "-o", str(out), "--supervision",
                                  "--policy", str(pol), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "readmission <= 20 d" in r.output and "low cost < 0.4" in r.output
    cases = pd.read_csv(tmp_path / "g.supervision_cases.csv")
    assert len(cases) and not cases.sv_split.any() and not cases.sv_long_stay.any()
    assert set(",".join(cases.supervision).split(",")) <= {"readmission", "low_cost"}
    # --policy without --supervision has nothing to read it: refused in one line
    r = CliRunner().invoke(main, ["group", str(src), "-o", str(tmp_path / "h.csv"),
                                  "--policy", str(pol), "--quiet"])
    assert r.exit_code != 0 and "--supervision" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "h.csv").exists()
    # a bad section fails before any work, naming file and line
    pol.write_text(_with("supervision:\n  split:\n    days:\n      values: {2019-01-01: -1}\n"),
                   encoding="utf-8")
    r = CliRunner().invoke(main, ["group", str(src), "-o", str(tmp_path / "k.csv"),
                                  "--supervision", "--policy", str(pol), "--quiet"])
    assert r.exit_code != 0 and f"{pol}:" in r.output and "supervision.split.days" in r.output
    assert not Path(tmp_path / "k.csv").exists()


def test_supervision_schema_and_defaults_name_the_same_keys():
    from drgsim.dip.supervision import DEFAULTS
    from drgsim.policy.schema import SUPERVISION_SCHEMA

    def keys(tree, pre=""):
        return {k2 for k, v in tree.items()
                for k2 in (keys(v, f"{pre}{k}.") if isinstance(v, dict) else {f"{pre}{k}"})}

    assert keys(DEFAULTS) == keys(SUPERVISION_SCHEMA)
    # every default passes the schema (a default the policy could not state is a bug)
    text = "supervision:\n" + "".join(
        f"  {k}:\n    values: {{2019-01-01: {v!r}}}\n".replace("'", "")
        for k, v in DEFAULTS.items() if not isinstance(v, dict))
    from drgsim.dip.supervision import params_from_policy

    assert params_from_policy(parse_policy(_with(text), "p.yaml")) == params_from_policy(None)


# ---- the CLI on a small synthetic DIP region, as a user runs it ----------------------------
@pytest.fixture(scope="module")
def dip_region(tmp_path_factory):
    import drgsim.synth as syn
    from drgsim.cli import main

    root = tmp_path_factory.mktemp("dipregion")
    syn.region(root / "region", discharges=8_000, hospitals=6, seed=3)
    r = CliRunner().invoke(main, ["dip", "build", str(root / "region" / "discharges"), "-o",
                                  str(root / "cat"), "--hospitals",
                                  str(root / "region" / "hospitals.parquet")])
    assert r.exit_code == 0, r.output
    return root


def _run(*args):
    from drgsim.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_sweep_dip_policy_with_a_bundled_scenario_file(dip_region, tmp_path):
    from drgsim.scenarios.files import bundled_scenarios_path

    reg = dip_region / "region"
    r = _run("sweep", reg / "discharges", "--policy", "dip_baseline", "--catalogue",
             dip_region / "cat", "--hospitals", reg / "hospitals.parquet", "--region",
             reg / "region.parquet", "--scenarios", bundled_scenarios_path() / "pv_floor.yaml",
             "-o", tmp_path / "sw")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "sw" / "manifest.json").exists()
    ledger = pd.read_parquet(tmp_path / "sw" / "ledger.parquet") if (
        tmp_path / "sw" / "ledger.parquet").exists() else None
    if ledger is not None:
        assert ledger.groupby([c for c in ("scenario", "draw") if c in ledger])[
            "amount_fen"].sum().eq(0).all()


def test_the_build_uses_the_groupers_record_checks():
    """One implementation of the record checks (the grouper's): the build's reasons are
    check_failed exactly where drgsim.group says so, and name the field."""
    import drgsim
    import drgsim.synth as syn
    from drgsim import dip
    from drgsim.dip import keys as K
    from drgsim.grouper import kernels as GK

    assert not hasattr(K, "record_checks")
    t = syn.discharges(4_000, seed=9, hospitals=4, years=(2022, 2023, 2024)).to_pandas()
    bad = {0: {"sex": 3}, 1: {"age_years": None}, 2: {"age_years": 0, "age_days": None},
           3: {"age_years": 0, "age_days": 10, "birth_weight_g": None}, 4: {"diagnoses": ""}}
    for i, fix in bad.items():
        for c, v in fix.items():
            t.loc[i, c] = v
    _, asg = dip.build(t)
    g = drgsim.group(t)
    assert ((asg.status == "check_failed") == (g.status == "check_failed")).all()
    assert asg.loc[list(bad), "reason"].tolist() == list(GK.CHECK_FIELDS[1:])


def test_demo_dip_reports_the_catalogues_core_share(tmp_path):
    """The demo's summary line and the catalogue report give the same core share (base
    packets are core packets; rows the build did not use are not in the denominator)."""
    import re

    r = _run("demo", "--method", "dip", "-o", tmp_path / "d", "--discharges", 4000,
             "--hospitals", 5)
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    report = (tmp_path / "d" / "catalogue" / "report.txt").read_text(encoding="utf-8")
    share = re.search(r"cases in core packets: [\d,]+ of [\d,]+ \(([\d.]+%)\)", report).group(1)
    assert f"core packets hold {share} of the history cases" in out
    assert "ledger balance (fen, must be 0): 0" in out
    n_core = re.search(r"core\s+([\d,]+)\s+\(", report).group(1)
    assert f"{n_core} core" in out


def test_a_build_on_a_policy_without_dip_names_the_file_once():
    from drgsim import dip
    from drgsim.dip.build import DipPolicyError

    with pytest.raises(DipPolicyError) as e:
        import drgsim.synth as syn

        dip.build(syn.discharges(1_000, seed=1, hospitals=2, years=(2023, 2024)),
                  policy="baseline")
    src = str(bundled_policy_path("baseline"))
    assert str(e.value) == f"{src}: dip: the policy has no dip section (a DIP build needs " \
                           "one, e.g. dip_baseline)"


def test_policy_show_takes_a_bundled_name():
    r = _run("policy", "show", "dip_baseline", "--date", "2025-01-01")
    assert r.exit_code == 0, r.output
    assert "method" in r.output and "core_threshold" in r.output
    r = _run("policy", "show", "no_such_policy")
    assert r.exit_code != 0 and "neither a file nor a bundled policy" in r.output


def test_supervision_reads_columns_by_the_pricings_names():
    from drgsim.dip import supervision as S
    from drgsim.pricing.cases import ALIASES

    shared = [k for k in S.ALIASES if k in ALIASES]
    assert len(shared) >= 7 and all(S.ALIASES[k] is ALIASES[k] for k in shared)


def test_unmatched_procedure_codes_count_only_the_rows_the_build_uses():
    import pyarrow as pa

    from drgsim.dip import keys as K

    procs = pa.array(["XYZ1|51.2300", "QQQ2", ""])  # codes no treatment-type rule matches
    assert K.proc_keys(procs).unmatched_codes == 2
    assert K.proc_keys(procs, usable=[True, True, True]).unmatched_codes == 2
    assert K.proc_keys(procs, usable=[True, False, True]).unmatched_codes == 1


def test_a_catalogue_built_for_a_run_says_the_history_year_it_lacks():
    """prepare/simulate building its own catalogue from a history without 2022 warns (as
    dip build does), and is quiet when the history has every year."""
    import warnings

    import drgsim
    from drgsim.synth import SyntheticRegion

    reg = SyntheticRegion(6_000, 6, (2021, 2022, 2023, 2024), seed=3, dirty_rate=0.0)
    df = reg.discharges_table().to_pandas()
    hosp = reg.hospitals_table().to_pandas()
    region = reg.region_table().to_pandas()
    year = pd.to_datetime(df["discharge_date"]).dt.year
    with pytest.warns(UserWarning, match="the catalogue for 2024 is built from 2021–2023, "
                                          "but the history lacks 2022"):
        drgsim.prepare(df[year != 2022], policy="dip_baseline", hospitals=hosp, region=region,
                       year=2024)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        drgsim.prepare(df, policy="dip_baseline", hospitals=hosp, region=region, year=2024)
    assert not [w for w in caught if "history lacks" in str(w.message)]
