"""Shared fixtures: where ../shared is, and the bundled schemes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DRGSIM_SHARED", REPO.parent / "shared"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


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
