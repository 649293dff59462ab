"""drgsim on a Dask cluster: the same compiled scheme, kernels, pricing and settlement.

``pip install drgsim[dask]``. This adapter holds partitioning and I/O only; what runs on a
partition and on the driver is :mod:`drgsim.distributed` (the single-machine functions).

- :func:`group` — ``map_partitions`` over the Arrow path of ``drgsim.group``; the compiled
  scheme is scattered once to every worker and its kernels warmed there first.
- :func:`prepare` / :func:`simulate` / :func:`sweep` — rows numbered in input order, a
  shuffle by hospital, then per hospital partition ``prepare``'s pricing and cells
  (kept on the workers); the hospital × fund × month totals reduce to the driver, which
  settles with the single-machine functions (one settlement, or a sweep whose re-pricing
  runs on the partitions, :mod:`drgsim.distributed.sweep`); the per-case payments are
  split back per partition from
  the broadcast hospital-month payments.
- Weights: given, or calibrated exactly by :func:`calibrate_weights`: a shuffle by DRG,
  per-DRG partial sums per partition, the table assembled on the driver from those
  (O(DRGs), no history rows on the driver).
- :func:`match` / :func:`match_to_parquet` — DIP packet matching per partition
  (:func:`drgsim.distributed.dip.match_frame`, ``drgsim.dip.match``'s Arrow path), the
  catalogue scattered once; :func:`build_catalogue` — the DIP catalogue by a shuffle by
  assigned packet, per-packet statistics per partition (no history rows on the driver).
- DIP policies in :func:`prepare` / :func:`simulate` / :func:`sweep`: matched per
  partition before the hospital shuffle (the catalogue given, or built from the history
  years), weights fixed on the driver (:mod:`drgsim.distributed.dip`), PV_b and the
  reimbursement ratio from per-hospital sums (:mod:`drgsim.distributed.history`), as is
  last year's point value for ``budgeted_pv: last_year`` without ``reference_pv``.

Every function takes ``client=`` (default: the current ``distributed`` client).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from drgsim.distributed.dip import driver_dip
from drgsim.distributed.output import PartitionedOutput, write_part
from drgsim.distributed.partition import (
    ROW,
    DistributedError,
    combine,
    cost_sum_count,
    driver_context,
    driver_prepared,
    finish_tables,
    global_hospitals,
    group_frame,
    mean_of_parts,
    partition_keys,
    pay_partition,
    payments_of,
    price_partition,
    settle_driver,
    status_counts,
)
from drgsim.distributed.sweep import SweepEngine

try:  # the extra: pip install drgsim[dask]
    import dask.dataframe as dd
    from distributed import Client, LocalCluster, as_completed, get_client
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "drgsim.dask needs Dask: pip install 'drgsim[dask]' (dask[dataframe,distributed])"
    ) from _exc


# ---------------------------------------------------------------------------- cluster
@contextmanager
def cluster(scheduler: str | None = None, workers: int | None = None) -> Iterator[Client]:
    """A client on ``scheduler`` (an address such as ``tcp://host:8786``), or on a local
    cluster of ``workers`` processes (default: one per core), one thread each."""
    if scheduler:
        with Client(scheduler) as c:
            yield c
        return
    n = workers or max(1, os.cpu_count() or 1)
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                      dashboard_address=None) as lc, Client(lc) as c:
        yield c


def _client(client: Client | None) -> Client:
    if client is not None:
        return client
    try:
        return get_client()
    except ValueError:
        raise DistributedError(
            "no Dask client: start one (distributed.Client(...)) or pass client="
        ) from None


_SCHEMES: dict[tuple[int, str], Any] = {}


def _warm(cs: Any) -> float:
    """Load the kernels on this worker (numba's disk cache, else a compile); seconds."""
    import time

    import pyarrow as pa

    from drgsim.grouper.core import group_arrow

    t = time.perf_counter()
    one = pa.table({"case_id": ["w"], "principal_dx": ["I10.x00"], "sex": ["1"],
                    "age_years": ["60"], "los_days": ["5"], "diagnoses": [""],
                    "procedures": [""]})
    group_arrow(one, cs, threads=1)
    return time.perf_counter() - t


def scheme_on_workers(client: Client, scheme: Any = "chs_drg_11") -> tuple[Any, Any]:
    """The compiled scheme and its future, scattered once to every worker (kernels warmed
    there), cached per client and scheme content."""
    from drgsim.grouper.core import load_scheme

    cs = load_scheme(scheme)
    key = (id(client), cs.content_hash)
    if key not in _SCHEMES:
        fut = client.scatter(cs, broadcast=True, hash=False)
        workers = list(client.scheduler_info(n_workers=-1)["workers"])
        client.gather([client.submit(_warm, fut, workers=[w], allow_other_workers=False,
                                     pure=False) for w in workers])
        _SCHEMES[key] = fut
    return cs, _SCHEMES[key]


# ---------------------------------------------------------------------------- grouping
def _group_part(df: pd.DataFrame, cs: Any, translate: bool, flags: bool, names: bool
                ) -> pd.DataFrame:
    return group_frame(df, cs, translate, flags, names, threads=1)


def group(ddf: dd.DataFrame, scheme: Any = "chs_drg_11", translate: bool = False,
          flags: bool = False, names: bool = False, client: Client | None = None
          ) -> dd.DataFrame:
    """Group every partition as ``drgsim.group`` groups an Arrow table (lazy): every row
    comes back in its partition with mdc, adrg, drg, status."""
    from drgsim.records import check_columns

    client = _client(client)
    check_columns([str(c) for c in ddf.columns])
    cs, fut = scheme_on_workers(client, scheme)
    meta = group_frame(ddf._meta, cs, translate, flags, names, engine="reference")
    return ddf.map_partitions(_group_part, fut, translate, flags, names, meta=meta)


def _write_grouped(df: pd.DataFrame, root: str, part: int, date_col: str | None,
                   metadata: dict[str, str], status: str = "status") -> dict[str, Any]:
    files = write_part(df, root, part, date_col, metadata)
    return {"files": files, "status_counts": status_counts(df[status])}


def group_to_parquet(ddf: dd.DataFrame, out: str | os.PathLike[str], fingerprint: str,
                     scheme: Any = "chs_drg_11", translate: bool = False, flags: bool = False,
                     names: bool = False, date_col: str | None = "discharge_date",
                     client: Client | None = None, _fail_after: int | None = None
                     ) -> dict[str, Any]:
    """Group and write ``OUT/data/year=/month=/part-N.parquet`` part by part (atomic,
    fingerprinted, manifest last, :mod:`drgsim.distributed.output`); a re-run with the
    same fingerprint keeps the finished parts. Returns rows and status counts."""
    client = _client(client)
    cs, _ = scheme_on_workers(client, scheme)
    grouped = group(ddf, cs, translate, flags, names, client=client)
    prov = {**cs.provenance, "drgsim.translate": "on" if translate else "off"}
    return _write_parts(grouped, out, fingerprint, prov, "group", "status", date_col, client,
                        _fail_after)


def _write_parts(frame: dd.DataFrame, out: str | os.PathLike[str], fingerprint: str,
                 prov: dict[str, str], writer: str, status: str, date_col: str | None,
                 client: Client, _fail_after: int | None) -> dict[str, Any]:
    """Write every partition of ``frame`` (a re-run keeps the finished parts), count the
    ``status`` column, manifest last."""
    from dask import delayed

    po = PartitionedOutput(out, fingerprint, writer=writer).open()
    counts: dict[str, int] = {}

    def add(c: dict[str, int]) -> None:
        for k, v in c.items():
            counts[k] = counts.get(k, 0) + int(v)

    todo = {}
    parts = frame.to_delayed()
    for i, p in enumerate(parts):
        rec = po.done(i)
        if rec is not None:
            add(rec.get("status_counts", {}))
        else:
            todo[i] = delayed(_write_grouped)(p, str(po.path), i, date_col, prov, status)
    futs = client.compute(list(todo.values()))
    by_fut = {f.key: i for f, i in zip(futs, todo, strict=True)}
    finished = 0
    slow = float(os.environ.get("DRGSIM_DASK_SLOW", "0") or 0)  # tests: time to kill a run
    for fut in as_completed(futs):
        res = fut.result()
        po.record(by_fut[fut.key], res["files"], {"status_counts": res["status_counts"]})
        add(res["status_counts"])
        finished += 1
        if slow:
            time.sleep(slow)
        if _fail_after is not None and finished >= _fail_after:  # tests: a run cut short
            raise DistributedError(f"injected failure after {finished} partition(s)")
    po.commit(prov, {"partitions": len(parts), "status_counts": counts})
    return {"rows": po.rows, "status_counts": counts, "partitions": len(parts),
            "reused": len(parts) - len(todo)}


def is_grouped(path: str | os.PathLike[str]) -> bool:
    """A parquet input written by ``drgsim group`` (its provenance in the parquet
    metadata, or the partitioned output's sidecar)."""
    from pathlib import Path

    import pyarrow.parquet as pq

    from drgsim.distributed.output import PROVENANCE

    p = Path(path)
    if p.is_dir():
        if (p / PROVENANCE).is_file() or (p / "data" / PROVENANCE).is_file():
            return True
        first = next(iter(sorted(p.rglob("*.parquet"))), None)
        if first is None:
            return False
        p = first
    meta = pq.read_schema(p).metadata or {}
    return b"drgsim.scheme" in meta


def read_parquet(path: str | os.PathLike[str], **kw: Any) -> dd.DataFrame:
    """A parquet file or hive folder (``year=/month=``) as a Dask frame; the hive keys
    as int32 columns when they are integers, as ``drgsim.read_records`` gives them. The
    folder a distributed ``group`` wrote (``OUT``) reads as its ``OUT/data``."""
    from pathlib import Path

    from drgsim.distributed.output import DATA
    from drgsim.output import MANIFEST

    p = Path(path)
    if p.is_dir() and (p / DATA).is_dir() and (p / MANIFEST).is_file():
        p = p / DATA
    ddf = dd.read_parquet(str(p), **kw)
    for k in ("year", "month"):
        if k in ddf.columns and isinstance(ddf._meta[k].dtype, pd.CategoricalDtype):
            ddf[k] = ddf[k].astype("int32")
    return ddf


# ---------------------------------------------------------------------------- pricing
def _add_row(df: pd.DataFrame, offsets: list[int], partition_info: dict | None = None
             ) -> pd.DataFrame:
    i = partition_info["number"] if partition_info else 0
    return df.assign(**{ROW: np.arange(offsets[i], offsets[i] + len(df), dtype=np.int64)})


def _scan(df: pd.DataFrame, dcol: str, hcol: str) -> dict[str, Any]:
    """One partition's length and its rows per year and hospital (one pass for both)."""
    y = pd.to_datetime(df[dcol], errors="coerce").dt.year
    counts = (pd.DataFrame({"year": y.astype("Float64"), "hospital": df[hcol].astype("string")})
              .groupby(["year", "hospital"], dropna=False).size().rename("n").reset_index())
    return {"len": len(df), "counts": counts}


def _before(df: pd.DataFrame, dcol: str, year: int) -> pd.DataFrame:
    return df[(pd.to_datetime(df[dcol], errors="coerce").dt.year < year).to_numpy()]


def _m_all_partial(df: pd.DataFrame, dcol: str, year: int, columns: Any) -> pd.DataFrame:
    y = pd.to_datetime(df[dcol], errors="coerce").dt.year
    h = df[(y < year).to_numpy()]
    s, n = cost_sum_count(h, columns) if len(h) else (0, 0)
    return pd.DataFrame({"s": [s], "n": [n]})


def calibrate_weights(ddf: dd.DataFrame, yp: Any, year: int, scheme: Any, dcol: str,
                      columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Weights calibrated exactly (the single path's ``drgsim.calibrate.calibrate`` with
    ``yp``'s calibration section, bit for bit) on the rows discharged before ``year``:
    year counts reduced from the partitions, then a shuffle by DRG and per-DRG partial
    sums per partition (:mod:`drgsim.distributed.calibrate`). The driver holds the
    per-DRG-unit statistics (O(DRGs)), never rows. Prepare and the sweep's recalibration
    route both call this."""
    from drgsim.distributed import calibrate as C

    spec = C.spec_of(yp, year)
    meta = pd.DataFrame({"year": np.zeros(0, np.int64), "n": np.zeros(0, np.int64)})
    parts = ddf.map_partitions(C.counts_frame, spec, dcol, columns, meta=meta).compute()
    counts, before = C.reduce_counts(parts, spec)
    counts_t = tuple(int(x) for x in counts)
    rows = ddf.map_partitions(C.rows_frame, spec, columns, meta=C.empty_rows())

    def units_of(drgs: list[str] | None, m_all: float | None) -> pd.DataFrame:
        r = rows if drgs is None else rows[rows["drg"].isin(drgs)]
        u = r.shuffle("drg").map_partitions(C.units_frame, spec, counts_t, m_all,
                                            meta=C.empty_units())
        return C.conform_units(u.compute())

    return C.driver_weights(spec, counts, before, units_of, scheme)


def _summary(pp: Any) -> dict[str, Any]:
    return pp.summary()


def prepare(ddf: dd.DataFrame, policy: Any = None, weights: Any = None, hospitals: Any = None,
            region: Any = None, year: int | None = None, columns: dict[str, str] | None = None,
            grouped: bool | None = None, reference_pv: dict[str, float] | None = None,
            npartitions: int | None = None, client: Client | None = None,
            catalogue: Any = None, keep_rows: bool = True) -> Any:
    """``drgsim.prepare`` on a cluster: the priced partitions stay on the workers, the
    driver holds a :class:`~drgsim.scenarios.prepare.Prepared` of the reduced totals
    (``.simulate()``-like settlement via :func:`simulate`, ``.sweep()`` on every route:
    the partitions re-price, :mod:`drgsim.distributed.sweep`). Arguments as
    :func:`drgsim.prepare`. A DIP policy (``method: dip``): rows without a ``packet`` column
    are matched per partition (:func:`match`) with ``catalogue``, or with one built from
    the history years (:func:`build_catalogue`); the weights are fixed on the driver
    (:func:`drgsim.distributed.dip.driver_weights`). ``keep_rows``: each partition also keeps its rows (this
    year's, last year's) on its worker so a sweep can re-price them (about the rows'
    pandas size more memory per worker; :func:`simulate` does not keep them)."""
    from drgsim.calibrate import read_weights
    from drgsim.distributed.history import driver_history
    from drgsim.errors import RecordsError
    from drgsim.policy import Policy, load_policy, resolve_year
    from drgsim.scenarios.prepare import (
        check_catalogue_method,
        check_hospitals_named,
        read_hospitals,
    )
    from drgsim.settlement.simulate import GROUPER_COLUMNS, check_inputs, read_table

    client = _client(client)
    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    check_catalogue_method(catalogue, pol)
    dip = pol.method == "dip"
    cols = [str(c) for c in ddf.columns]
    if dip:
        grouped = True  # DIP matches packets below; no DRG grouping
    if grouped is None:
        grouped = {"drg", "status"} <= set(cols)
    meta: dict[str, str] = {}
    if not grouped:
        own = {c: f"hospital_{c}" for c in GROUPER_COLUMNS if c in cols}
        cs, _ = scheme_on_workers(client, pol.scheme)
        ddf = group(ddf.rename(columns=own) if own else ddf, cs, client=client)
        meta.update({**cs.provenance, "drgsim.translate": "off"})
    hosp_df = read_hospitals(hospitals)
    region_df = read_table(region)[0] if region is not None else None
    m0 = ddf._meta
    dcol, hcol = partition_keys(m0, columns)

    from dask import delayed

    clock = _Clock()
    scans = client.gather(client.compute([delayed(_scan)(p, dcol, hcol)
                                          for p in ddf.to_delayed()]))
    lengths = [s["len"] for s in scans]
    scan = pd.concat([s["counts"] for s in scans], ignore_index=True)
    offsets = np.r_[0, np.cumsum(lengths)[:-1]].astype(int).tolist()
    ddf = ddf.map_partitions(_add_row, offsets, meta=m0.assign(**{ROW: np.int64(0)}))
    clock.lap("scan (rows, years, hospitals)")
    per_year = scan.groupby("year", dropna=True)["n"].sum()
    if year is None:
        if not len(per_year):
            raise RecordsError("no valid discharge dates to find the simulated year")
        year = int(per_year.index.max())
    yp = resolve_year(pol, year)
    pv = yp.pv
    years_series = pd.Series(per_year.index.astype("float64"))
    check_inputs(pv, year, int(per_year.get(float(year), 0)), years_series, hosp_df, region_df)
    cur_h = scan.loc[scan["year"] == year, "hospital"].dropna().unique()
    check_hospitals_named(hosp_df, cur_h)

    W = cat = None
    if dip:
        n_hist = int(per_year[per_year.index < year].sum())
        ddf, cat, w_src, W = _dip_weights(ddf, catalogue, weights, pol, year, dcol, columns,
                                          n_hist, client)
        w_df = W.table
    elif weights is None:
        w_df = calibrate_weights(ddf, yp, year, pol.scheme, dcol, columns)
        w_src = "calibrated"
    elif isinstance(weights, pd.DataFrame):
        w_df, w_src = weights, "given"
    else:
        part = ddf.map_partitions(_m_all_partial, dcol, year, columns,
                                  meta=pd.DataFrame({"s": pd.Series([], dtype="int64"),
                                                     "n": pd.Series([], dtype="int64")})).compute()
        w_df, w_src = read_weights(weights, pv, mean_of_parts(part["s"], part["n"])), str(weights)
    clock.lap(f"weights ({w_src if w_src in ('calibrated', 'given') else 'file'})")
    ctx = driver_context(w_df, pv, yp, year, dcol, hosp_df, columns, reference_pv, "a cluster",
                         W=W, dip=dip)
    ctx.keep_rows = keep_rows

    shuffled = ddf.shuffle(hcol, npartitions=npartitions or ddf.npartitions)
    part_futs = client.compute(shuffled.to_delayed())
    ctx_f = client.scatter(ctx, broadcast=True, hash=False)
    pp_futs = [client.submit(price_partition, f, ctx_f, pure=False) for f in part_futs]
    from distributed import wait

    wait(part_futs)
    clock.lap("shuffle by hospital")
    summaries = client.gather([client.submit(_summary, p, pure=False) for p in pp_futs])
    del part_futs
    clock.lap("price + cells per partition, gather totals")
    hids = global_hospitals(summaries, hosp_df)
    reduced = combine(summaries, hids)
    empty = _priced_columns(ddf._meta, dip)
    ref, ratio = driver_history(summaries, yp, year, ctx.W, cat, reference_pv, hosp_df,
                                region_df, columns, empty, dip)
    base = driver_prepared(pol, yp, year, reduced, hids, ctx.W, w_df, w_src, weights, hosp_df,
                           region_df, columns, dcol, meta, ref, empty)
    if dip:
        driver_dip(base, cat, w_src, ratio)
    clock.lap("reduce on the driver")
    base._cache["dask"] = {"client": client, "parts": pp_futs, "hids": hids}
    if keep_rows:
        base._cache["engine"] = _DaskSweep(hids, client, pp_futs, ddf, year, pol.scheme, dcol,
                                           columns)
    base._cache["timings"] = clock.laps
    return base


def _priced_columns(meta: pd.DataFrame, dip: bool) -> pd.DataFrame:
    """A zero-row frame of the columns pricing reads (DIP: the matched ones as dip_frame
    turns them), without the row number."""
    from drgsim.dip.price import dip_frame

    m = meta.drop(columns=[ROW]).iloc[0:0]
    return dip_frame(m) if dip else m


def _dip_weights(ddf: dd.DataFrame, catalogue: Any, weights: Any, pol: Any, year: int,
                 dcol: str, columns: dict[str, str] | None, n_hist: int, client: Client
                 ) -> tuple[dd.DataFrame, Any, str, Any]:
    """DIP on the cluster, before pricing: the catalogue (given, or built from the history
    years: :func:`build_catalogue`), the rows matched per partition (:func:`match`) unless
    they carry a ``packet`` column, and the weights from every partition's keys in input
    order. Returns (matched frame, catalogue, its source, weights)."""
    from dask import delayed

    from drgsim.distributed.dip import driver_weights, weight_keys
    from drgsim.errors import RecordsError
    from drgsim.scenarios.prepare import DIP_NOT_WEIGHTS, dip_catalogue

    if weights is not None:
        raise RecordsError(DIP_NOT_WEIGHTS)

    def build() -> Any:
        hist = ddf.map_partitions(_before, dcol, year, meta=ddf._meta)
        return build_catalogue(hist, policy=pol, scheme=pol.scheme, columns=columns,
                               client=client, year=year)[0]

    matched = "packet" in ddf.columns
    cat, src = dip_catalogue(catalogue, matched, pol, year, n_hist, build)
    if not matched:
        ddf = match(ddf, cat, pol.scheme, client=client)
    keys = client.gather(client.compute([delayed(weight_keys)(p, [ROW])
                                         for p in ddf.to_delayed()]))
    return ddf, cat, src, driver_weights(cat, keys, [ROW])


def _local(pp: Any) -> Any:
    return pp.local


def _run_job(pp: Any, job: Any) -> Any:
    from drgsim.distributed.sweep import run_job

    return run_job(pp.local, job)


class _DaskSweep(SweepEngine):
    """A sweep's jobs on the persisted partitions (:func:`drgsim.distributed.sweep.run_job`
    next to each one; its re-priced sets stay in the worker's copy until the sweep ends)."""

    def __init__(self, hids: np.ndarray, client: Client, parts: list[Any], ddf: dd.DataFrame,
                 year: int, scheme: Any, dcol: str, columns: dict[str, str] | None):
        super().__init__(hids)
        self.client, self.parts, self.ddf = client, parts, ddf
        self.year, self.scheme, self.dcol, self.columns = year, scheme, dcol, columns

    def map_job(self, job: Any) -> list[Any]:
        jf = self.client.scatter(job, broadcast=True, hash=False)
        return self.client.gather([self.client.submit(_run_job, p, jf, pure=False)
                                   for p in self.parts])

    def calibrate_weights(self, yp: Any) -> pd.DataFrame:
        return calibrate_weights(self.ddf, yp, self.year, self.scheme, self.dcol, self.columns)


class _Clock:
    """Seconds per phase (``base._cache["timings"]``; the benchmark prints them)."""

    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self.t
        self.t = now


def _small(parts: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {k: v for k, v in parts.items() if k != "cases"}


def _cases(parts: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return parts["cases"].drop(columns=[ROW])


def settle(base: Any) -> dict[str, Any]:
    """The single settlement of a :func:`prepare` d base: the tables of ``drgsim.simulate``,
    ``cases`` a Dask frame (rows grouped by hospital partition, input order inside)."""
    from dask import delayed

    d = base._cache.get("dask")
    if d is None:
        raise DistributedError("settle() takes what drgsim.dask.prepare returned")
    client = d["client"]
    clock = _Clock()
    tables = settle_driver(base)
    clock.lap("settle on the driver")
    pays = client.scatter(payments_of(tables["_settlement"].funds), broadcast=True, hash=False)
    outs = [client.submit(pay_partition, p, pays, d["hids"], pure=False) for p in d["parts"]]
    small = client.gather([client.submit(_small, o, pure=False) for o in outs])
    tables = finish_tables(tables, small, base.prov)
    clock.lap("payments back per partition")
    base._cache.setdefault("timings", {}).update(clock.laps)
    case_futs = [client.submit(_cases, o, pure=False) for o in outs]
    meta = client.submit(lambda df: df.iloc[0:0], case_futs[0]).result() if case_futs else None
    tables["cases"] = dd.from_delayed([delayed(f) for f in case_futs], meta=meta,
                                      verify_meta=False)
    tables["cases"].attrs = dict(base.prov)
    return tables


def simulate(ddf: dd.DataFrame, policy: Any = None, weights: Any = None, hospitals: Any = None,
             region: Any = None, year: int | None = None, columns: dict[str, str] | None = None,
             grouped: bool | None = None, reference_pv: dict[str, float] | None = None,
             npartitions: int | None = None, client: Client | None = None,
             catalogue: Any = None) -> dict[str, Any]:
    """``drgsim.simulate`` on a cluster (see the module docstring): the same tables, the
    small ones as pandas, ``cases`` as a Dask frame."""
    return settle(prepare(ddf, policy, weights, hospitals, region, year, columns, grouped,
                          reference_pv, npartitions, client, catalogue, keep_rows=False))


def sweep(ddf: dd.DataFrame, scenarios: Any, draws: int | None = None, seed: int | None = None,
          monthly: bool = False, chunk: int | None = None, **prepare_kw: Any) -> Any:
    """``drgsim.prepare(...).sweep(scenarios)`` on a cluster: prepared once on the workers,
    every route (cells, rows, recalibration, behaviour draws) re-priced on the partitions
    (:mod:`drgsim.distributed.sweep`), every scenario settled on the driver: the single
    machine's result. A round trip per set of re-priced scenarios and per block of
    ``chunk`` behaviour draws."""
    return prepare(ddf, **prepare_kw).sweep(scenarios, draws=draws, seed=seed, monthly=monthly,
                                           chunk=chunk)


# ---------------------------------------------------------------------------- DIP
def catalogue_on_workers(client: Client, catalogue: Any, scheme: Any = "chs_drg_11"
                         ) -> tuple[Any, Any]:
    """The DIP catalogue (read and compiled against the scheme on the driver: a malformed
    one fails before any work) and its future, scattered once to every worker."""
    from drgsim.distributed.dip import load_catalogue
    from drgsim.grouper.core import load_scheme

    cat = load_catalogue(catalogue, load_scheme(scheme))
    return cat, client.scatter(cat, broadcast=True, hash=False)


def _match_part(df: pd.DataFrame, cat: Any, cs: Any, translate: bool) -> pd.DataFrame:
    from drgsim.distributed.dip import match_frame

    return match_frame(df, cat, cs, translate, threads=1)


def match(ddf: dd.DataFrame, catalogue: Any, scheme: Any = "chs_drg_11",
          translate: bool = False, client: Client | None = None) -> dd.DataFrame:
    """DIP packet matching per partition (lazy), as ``drgsim.dip.match`` on an Arrow table
    (any partitioning: a case's packet depends on its own row); scheme and catalogue
    scattered once to the workers."""
    from drgsim.distributed.dip import match_frame
    from drgsim.records import check_columns

    client = _client(client)
    check_columns([str(c) for c in ddf.columns])
    cs, sfut = scheme_on_workers(client, scheme)
    cat, cfut = catalogue_on_workers(client, catalogue, cs)
    meta = match_frame(ddf._meta, cat, cs, translate)
    return ddf.map_partitions(_match_part, cfut, sfut, translate, meta=meta)


def build_catalogue(ddf: dd.DataFrame, policy: Any = None, scheme: Any = "chs_drg_11",
                    hospitals: Any = None, columns: dict[str, str] | None = None,
                    client: Client | None = None, **build_kw: Any) -> tuple[Any, pd.DataFrame]:
    """``drgsim.dip.build`` of a history on the cluster, by a shuffle by assigned packet
    (:mod:`drgsim.distributed.dip_build`): years, scan and per-row keys per partition; key
    counts reduced to the driver, which decides the packets; the rows shuffled by their
    packet and the per-packet statistics computed per partition; the catalogue assembled
    on the driver from those (O(keys + packets), never history rows). The catalogue equals
    ``dip.build`` of the same rows in any order. Returns (catalogue, None): the per-row
    assignment is not gathered (match the rows against the catalogue instead)."""
    from drgsim.distributed import dip_build as B
    from drgsim.distributed.dip import build_columns

    client = _client(client)
    names = [str(c) for c in ddf.columns]
    cols = build_columns(names, columns)
    st = B.setup(policy, scheme, hospitals, columns, **build_kw)
    share = B.has_share(cols, columns)
    src = ddf[cols]
    blobs = B.empty_blobs()
    years = B.unblob(src.map_partitions(B.years_frame, columns, meta=blobs).compute())
    plan = B.plan_of(st, years)
    scans = B.unblob(src.map_partitions(B.scan_frame, plan, meta=blobs).compute())
    plan, unmatched = B.reduce_scans(plan, scans)
    rows = src.map_partitions(B.rows_frame, plan, meta=B.empty_rows())
    rows = client.persist(rows)
    reds = B.unblob(rows.map_partitions(B.reduce_frame, meta=blobs).compute())
    plan, red, kmap, table = B.driver_keys(plan, reds, unmatched, share)
    assigned = rows.map_partitions(B.assign_frame, kmap, meta=B.empty_assigned())
    stats = assigned.shuffle("packet").map_partitions(B.stats_frame, plan, meta=blobs)
    parts = B.unblob(stats.compute())
    del rows
    return B.driver_catalogue(plan, table, red, parts, share), None


def match_to_parquet(ddf: dd.DataFrame, out: str | os.PathLike[str], fingerprint: str,
                     catalogue: Any, scheme: Any = "chs_drg_11", translate: bool = False,
                     date_col: str | None = "discharge_date", client: Client | None = None,
                     _fail_after: int | None = None) -> dict[str, Any]:
    """:func:`match` written as :func:`group_to_parquet` writes (``OUT/data/year=/month=``,
    atomic parts, manifest last, provenance sidecar); counts of ``dip_status``."""
    from drgsim.distributed.dip import provenance

    client = _client(client)
    cs, _ = scheme_on_workers(client, scheme)
    cat, _ = catalogue_on_workers(client, catalogue, cs)
    matched = match(ddf, cat, cs, translate, client=client)
    return _write_parts(matched, out, fingerprint, provenance(cat, cs, translate), "match",
                        "dip_status", date_col, client, _fail_after)


__all__ = [
    "cluster",
    "is_grouped",
    "group",
    "group_to_parquet",
    "build_catalogue",
    "calibrate_weights",
    "catalogue_on_workers",
    "match",
    "match_to_parquet",
    "prepare",
    "read_parquet",
    "scheme_on_workers",
    "settle",
    "simulate",
    "sweep",
]
