"""Shared fixtures: where ../shared is, and the bundled schemes."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DRGSIM_SHARED", REPO.parent / "shared"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def synth_region(out: Path, *, undated: str | None = None,
                 **kw: Any) -> tuple[Path, Any, Any]:
    """A synthetic region written to ``out`` (``drgsim.synth.region(out, **kw)``) and its
    hospitals and region tables. ``undated``: a discharges month (``year=Y/month=M``) where
    three rows of one hospital lose their discharge date (priced bad_date, never dropped),
    in a region that has the synthesiser's dirty rows too."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    import drgsim.synth

    res = drgsim.synth.region(out, **kw)
    if undated:
        assert sum(res.dirt.values()) > 0
        f = out / "discharges" / undated / "part-0.parquet"
        t = pq.read_table(f).to_pandas()
        rows = t.index[t["hospital_id"] == t["hospital_id"].iloc[0]][:3]
        t.loc[rows, "discharge_date"] = None
        pq.write_table(pa.Table.from_pandas(t, schema=pq.read_schema(f), preserve_index=False),
                       f)
    return out, pd.read_parquet(out / "hospitals.parquet"), pd.read_parquet(
        out / "region.parquet")


def shared_path(*parts: str) -> Path:
    """A path under ../shared; skips the test where it is absent, fails under CI."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        if IN_CI:
            pytest.fail(f"{p} is required under CI=true but is absent")
        pytest.skip(f"{p} absent: ../shared is only beside the checkout in CI and dev machines")
    return p


@pytest.fixture(scope="session", autouse=True)
def _temporary_cache_dir(tmp_path_factory):
    """Compiled schemes go to a per-session temporary cache, never the user's (unless set)."""
    if os.environ.get("DRGSIM_CACHE_DIR"):
        yield
        return
    os.environ["DRGSIM_CACHE_DIR"] = str(tmp_path_factory.mktemp("drgsim-cache"))
    try:
        yield
    finally:
        os.environ.pop("DRGSIM_CACHE_DIR", None)


@pytest.fixture(scope="session")
def chs():
    from drgsim.grouper import load_scheme

    return load_scheme("chs_drg_11")


@pytest.fixture(scope="session")
def chs_tables():
    from drgsim.scheme.paths import resolve_scheme_dir
    from drgsim.scheme.tables import load_tables

    return load_tables(resolve_scheme_dir("chs_drg_11"))


@pytest.fixture(scope="module")
def client():
    """A Dask LocalCluster of 2 workers x 1 thread and its client, one per test module
    (the distributed tests compare it with the single machine)."""
    pytest.importorskip("distributed", reason="the dask extra is absent")
    import warnings

    from distributed import Client, LocalCluster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lc = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
    c = Client(lc)
    yield c
    c.close()
    lc.close()


def _need_spark() -> None:
    """Skip without Java or pyspark; under CI fail instead (``.ci/run`` installs both)."""
    missing = []
    if shutil.which("java") is None:
        missing.append("a Java runtime (java on PATH)")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        missing.append("pyspark (pip install 'drgsim[spark]')")
    if missing:
        if IN_CI:
            pytest.fail(f"Spark tests need {' and '.join(missing)}; .ci/run installs them")
        pytest.skip(f"Spark tests need {' and '.join(missing)}")


@pytest.fixture(scope="session")
def spark():
    """One local Spark session (local[2], two shuffle partitions, no UI) for the whole run:
    the JVM starts once, not once per module; stopped when the test session ends. A module
    that needs another SQL setting sets it with :func:`spark_conf` and puts it back."""
    _need_spark()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers: this interpreter
    from pyspark.sql import SparkSession

    s = (
        SparkSession.builder.master("local[2]")
        .appName("drgsim-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .getOrCreate()
    )
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


@contextlib.contextmanager
def spark_conf(session: Any, settings: dict[str, str]) -> Iterator[Any]:
    """Runtime SQL ``settings`` on the shared session for a block, the previous values (or
    unset) restored after, so one module's setting never leaks into the next module."""
    old = {k: session.conf.get(k, None) for k in settings}
    for k, v in settings.items():
        session.conf.set(k, v)
    try:
        yield session
    finally:
        for k, v in old.items():
            if v is None:
                session.conf.unset(k)
            else:
                session.conf.set(k, v)
