"""Spark's partitioned output is Dask's: the same layout (``OUT/data/year=/month=``), the
same provenance sidecar and manifest, the same journal and fingerprint rules, so a run cut
short between month folders re-runs to the rows of an uninterrupted one, another
fingerprint replaces an output as on Dask, another writer's output is refused, and the
input is never touched.

The run's one local Spark session (tests/conftest.py: local[2]) and one
in-process Dask client (the Dask writer's reference output).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import drgsim
from drgsim.output import MANIFEST, OutputFolder


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """A small synthetic region (one year, dirty rows) and the sha256 of its files."""
    out = tmp_path_factory.mktemp("spark-out") / "region"
    drgsim.synth.region(out, discharges=900, hospitals=3, years=(2023,), seed=5, workers=1)
    return out


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dask_client():
    """An in-process Dask client: the Dask writer's reference outputs."""
    pytest.importorskip("distributed", reason="the dask extra is absent")
    from distributed import Client

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Client(processes=False, n_workers=1, threads_per_worker=1,
                    dashboard_address=None) as client:
            yield client


@pytest.fixture(scope="module")
def dask_out(region, dask_client, tmp_path_factory):
    """``drgsim.dask.group_to_parquet`` of the region: the layout Spark's must equal."""
    import drgsim.dask as dg

    out = tmp_path_factory.mktemp("dask-out") / "grouped"
    res = dg.group_to_parquet(dg.read_parquet(region / "discharges"), out, "fp-dask",
                              client=dask_client)
    return out, res


def _rows(out: Path, hive: bool = False) -> pd.DataFrame:
    """``pd.read_parquet(OUT/data)`` by case; ``hive``: through pyarrow's dataset, which
    reads the undated rows' folder (pandas' reader cannot yet unify its null keys)."""
    df = (ds.dataset(out / "data", partitioning="hive").to_table().to_pandas() if hive
          else pd.read_parquet(out / "data"))
    return df.sort_values("case_id", kind="stable").reset_index(drop=True)


def _months(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.glob("data/year=*/month=*"))


def _same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same columns and values, row for row (Spark hands some types back otherwise:
    compared as text, floats exactly)."""
    assert sorted(a.columns) == sorted(b.columns)
    assert len(a) == len(b)
    for c in b.columns:
        x, y = a[c], b[c]
        if x.dtype.kind == "f" or y.dtype.kind == "f":
            assert x.astype(float).fillna(-1e300).tolist() == \
                y.astype(float).fillna(-1e300).tolist(), c
        else:
            assert x.astype("string").fillna("<NA>").tolist() == \
                y.astype("string").fillna("<NA>").tolist(), c


def test_layout_provenance_and_manifest_equal_dask(spark, region, dask_out, tmp_path):
    from drgsim import spark as dsp
    from drgsim.distributed.output import read_provenance

    ref, dres = dask_out
    before = _hashes(region / "discharges")
    out = tmp_path / "grouped"
    res = dsp.group_to(dsp.read_parquet(region / "discharges").repartition(3), out,
                       fingerprint="fp-spark")
    assert _hashes(region / "discharges") == before  # the input untouched
    assert _months(out) == _months(ref)
    _same_rows(_rows(out), _rows(ref))
    assert res["rows"] == dres["rows"] == 900
    assert res["status_counts"] == dres["status_counts"]
    assert (out / "data" / "_drgsim_provenance.json").is_file()
    assert not (out / "_drgsim_provenance.json").exists()
    side, dside = read_provenance(out), read_provenance(ref)
    assert dsp.read_provenance(out) == side
    # Dask's keys with Dask's values; Spark's adds the absent optional columns, as the
    # single path's parquet metadata has them (Spark's parts carry no metadata at all)
    assert {k: side[k] for k in dside} == dside
    assert set(side) - set(dside) == {"drgsim.absent_columns"}
    single = drgsim.group(ds.dataset(region / "discharges", partitioning="hive").to_table())
    meta = {k.decode(): v.decode() for k, v in single.schema.metadata.items()
            if k.startswith(b"drgsim.")}
    assert {k: meta[k] for k in side} == side
    assert pq.read_schema(next((out / "data").rglob("*.parquet"))).metadata is None or \
        b"drgsim.scheme" not in pq.read_schema(next((out / "data").rglob("*.parquet"))).metadata
    m, dm = (json.loads((p / MANIFEST).read_text()) for p in (out, ref))
    for k in ("rows", "status_counts", "writer"):
        assert m[k] == dm[k], k
    assert m["fingerprint"] == "fp-spark"
    assert OutputFolder.complete(out, "fp-spark") is not None
    parts = {n for n in m["files"] if n.endswith(".parquet")}
    assert parts == {p.relative_to(out).as_posix() for p in out.rglob("*.parquet")}
    assert "data/_drgsim_provenance.json" in m["files"]
    markers = sorted(n for n in m["files"] if n.startswith("_parts/"))
    assert len(markers) == len(_months(out)) == m["partitions"]
    assert not list(out.glob(".spark-*")) and not (out / ".drgsim-run.json").exists()
    assert dsp.is_grouped(out) and dsp.is_grouped(out / "data")
    assert dsp.read_parquet(out).count() == 900  # OUT reads as OUT/data


def test_rows_without_year_month_or_date_land_where_dask_puts_them(spark, region,
                                                                   dask_client, tmp_path):
    """An input without year/month columns: the folders come from discharge_date, and
    undated rows go under year=__HIVE_DEFAULT_PARTITION__/month=... on both engines."""
    import drgsim.dask as dg
    from drgsim import spark as dsp

    flat = tmp_path / "flat.parquet"
    t = ds.dataset(region / "discharges", partitioning="hive").to_table()
    df = t.drop_columns(["year", "month"]).to_pandas()
    df.loc[df.index[:4], "discharge_date"] = None
    df.to_parquet(flat, index=False)
    a, b = tmp_path / "spark", tmp_path / "dask"
    dsp.group_to(dsp.read_parquet(flat), a, fingerprint="fp")
    dg.group_to_parquet(dg.read_parquet(flat), b, "fp", client=dask_client)
    undated = "data/year=__HIVE_DEFAULT_PARTITION__/month=__HIVE_DEFAULT_PARTITION__"
    assert _months(a) == _months(b) and undated in _months(a)
    _same_rows(_rows(a, hive=True), _rows(b, hive=True))
    assert len(pd.read_parquet(a / undated)) == 4
    # cut after the last folder (the undated one sorts last): the re-run keeps them all
    c, n = tmp_path / "cut", len(_months(a))
    with pytest.raises(dsp.SparkError, match="injected"):
        dsp.group_to(dsp.read_parquet(flat), c, fingerprint="fp", _fail_after=n)
    res = dsp.group_to(dsp.read_parquet(flat), c, fingerprint="fp")
    assert res["reused"] == res["partitions"] == n and res["rows"] == 900
    _same_rows(_rows(c, hive=True), _rows(a, hive=True))


def test_a_run_cut_between_months_reruns_to_the_same_rows(spark, region, tmp_path):
    from drgsim import spark as dsp

    sdf = dsp.read_parquet(region / "discharges")
    ref, out = tmp_path / "ref", tmp_path / "out"
    full = dsp.group_to(sdf, ref, fingerprint="fp-1")
    with pytest.raises(dsp.SparkError, match="injected"):
        dsp.group_to(sdf, out, fingerprint="fp-1", _fail_after=3)
    assert not (out / MANIFEST).exists()  # incomplete: no manifest
    assert (out / ".drgsim-run.json").exists()
    assert len(list(out.glob("_parts/*.json"))) == 3
    assert not list(out.glob(".spark-*"))  # the staging folder went with the failure
    # a SIGKILL between a file's rename and its journal entry leaves an unrecorded part:
    # the re-run must drop it, not read its rows twice
    kept = sorted(out.glob("data/year=*/month=*/*.parquet"))[0]
    shutil.copy(kept, kept.parent / "part-99999-stray.c000.snappy.parquet")
    again = dsp.group_to(sdf, out, fingerprint="fp-1")
    assert not list(out.rglob("part-99999-stray*"))
    assert again["reused"] == 3 and again["partitions"] == full["partitions"] > 3
    assert OutputFolder.complete(out, "fp-1") is not None
    assert again["rows"] == full["rows"] == 900
    assert again["status_counts"] == full["status_counts"]
    pd.testing.assert_frame_equal(_rows(out), _rows(ref))
    assert _months(out) == _months(ref)
    m = json.loads((out / MANIFEST).read_text())
    assert m["rows"] == 900 and m["status_counts"] == full["status_counts"]
    listed = {n for n in m["files"] if n.endswith(".parquet")}
    assert listed == {p.relative_to(out).as_posix() for p in out.rglob("*.parquet")}


def test_another_fingerprint_replaces_and_another_writer_is_refused(spark, region, dask_out,
                                                                      tmp_path):
    """As on Dask (one OutputFolder): a new fingerprint of the same command replaces the
    output whole (no part of the old one stays), files drgsim did not write stay, and an
    output of another command is refused before anything is deleted."""
    from drgsim import spark as dsp
    from drgsim.errors import OutputError

    sdf = dsp.read_parquet(region / "discharges")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    dsp.group_to(sdf, out, fingerprint="fp-a")
    old = {p.relative_to(out).as_posix() for p in out.rglob("*.parquet")}
    res = dsp.group_to(sdf, out, fingerprint="fp-b")
    assert res["reused"] == 0
    new = {p.relative_to(out).as_posix() for p in out.rglob("*.parquet")}
    assert not old & new  # every part rewritten (Spark's names differ per run)
    assert OutputFolder.complete(out, "fp-b") is not None
    assert len(_rows(out)) == 900
    assert (out / "notes.txt").read_text() == "mine"
    # the Dask writer's folder follows the same rule: a Spark run replaces it
    dask_copy = tmp_path / "dask"
    shutil.copytree(dask_out[0], dask_copy)
    dsp.group_to(sdf, dask_copy, fingerprint="fp-c")
    assert not list(dask_copy.rglob("part-?????.parquet"))  # Dask's part names gone
    _same_rows(_rows(dask_copy), _rows(dask_out[0]))
    # another writer's output is refused, and left complete
    before = _hashes(out)
    with pytest.raises(OutputError, match="drgsim group"):
        dsp.write_parquet(sdf, out, {"x": "y"}, fingerprint="fp-x")
    assert _hashes(out) == before
    assert OutputFolder.complete(out, "fp-b") is not None


def test_cli_group_engine_spark_reruns_keep_every_month(spark, region, tmp_path):
    """``drgsim group --engine spark -o OUT`` (in the active session) writes the layout;
    the same command again keeps every month (same fingerprint); the input untouched."""
    from click.testing import CliRunner

    from drgsim.cli import main

    src = region / "discharges"
    before = _hashes(src)
    out = tmp_path / "cli"
    cmd = ["group", str(src), "-o", str(out), "--engine", "spark"]
    r = CliRunner().invoke(main, cmd)
    assert r.exit_code == 0, r.output
    assert "900 rows grouped" in r.output and "0 kept" in r.output
    n = len(_months(out))
    r = CliRunner().invoke(main, cmd)
    assert r.exit_code == 0, r.output
    assert f"{n} kept from an earlier run" in r.output
    assert _hashes(src) == before
    assert len(_rows(out)) == 900
    side = json.loads((out / "data" / "_drgsim_provenance.json").read_text())
    assert side["drgsim.scheme_hash"] == drgsim.load_scheme().provenance["drgsim.scheme_hash"]
