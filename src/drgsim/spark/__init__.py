"""drgsim on Spark: the same compiled scheme, kernels, pricing and settlement, driven by Spark.

A thin adapter: partitioning and I/O only. What runs in a task and on the driver is
:mod:`drgsim.distributed`, the functions the Dask adapter runs too (the Arrow wrapping
for Spark's tasks is :mod:`drgsim.spark.partitions`):

- :func:`group` — ``mapInArrow`` over any partitioning, each Arrow batch through
  :func:`drgsim.distributed.group_table` with the compiled scheme from a broadcast
  (unpickled once per Python worker; numba's disk cache keeps the compiled kernels).
- :func:`prepare` / :func:`simulate` / :func:`sweep` — rows numbered in input order,
  ``groupBy(hospital).applyInArrow``: each hospital's rows priced and built into cells
  by :func:`drgsim.distributed.price_partition`; only its summary (hospital × fund ×
  month totals and sums) reaches the driver (:func:`drgsim.distributed.combine`,
  :func:`drgsim.distributed.driver_prepared`), which settles once
  (:func:`drgsim.distributed.settle_driver`) or sweeps (every route re-priced per group,
  :mod:`drgsim.distributed.sweep`); the
  payments go back in a broadcast and a second pass splits them per case
  (:func:`drgsim.distributed.pay_partition`).
- :func:`dip_build` — the DIP catalogue by a shuffle by assigned packet (per-packet statistics
  by ``groupBy("packet").applyInArrow``; no history rows on the driver).
- :func:`dip_match` / :func:`dip_match_to` — DIP packet matching per batch
  (:func:`drgsim.distributed.dip.match_table`, ``drgsim.dip.match``'s Arrow path).
- :func:`write_parquet` / :func:`group_to` / :func:`dip_match_to` — the Dask writer's
  layout and mechanism (:mod:`drgsim.distributed.output`): ``OUT/data/year=/month=``
  parts moved into place month by month through the fingerprinted journal,
  ``manifest.json`` last, the provenance in ``OUT/data/_drgsim_provenance.json`` (Spark
  drops Arrow schema metadata).

Spark needs a Java runtime (17 or 21) and ``pip install drgsim[spark]``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from drgsim.distributed.sweep import SweepEngine
from drgsim.errors import DrgsimError, OutputError
from drgsim.scheme.paths import DEFAULT_SCHEME

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame

PROVENANCE_FILE = "_drgsim_provenance.json"  # in OUT/data (drgsim.distributed.output)


class SparkError(DrgsimError):
    """Spark is missing, or a Spark run was asked for something it cannot honour."""


def _pyspark():
    try:
        import pyspark  # noqa: F401
        from pyspark.sql import functions as F
    except ImportError as e:  # pragma: no cover - depends on the install
        raise SparkError(
            "drgsim.spark needs pyspark and a Java runtime: pip install 'drgsim[spark]'"
        ) from e
    return F


def _spark_schema(schema: pa.Schema):
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def _arrow_schema(sdf: SparkDataFrame) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(sdf.schema)


# ----------------------------------------------------------------------------- session


@contextlib.contextmanager
def session(master: str | None = None) -> Iterator[Any]:
    """A Spark session on ``master`` (``spark://host:7077``, ``yarn``, ...), else the
    active one, else a local one on every core; a session started here is stopped on exit.
    Python workers run this interpreter unless ``PYSPARK_PYTHON`` says otherwise."""
    _pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        yield active
        return
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    s = (SparkSession.builder.master(master or "local[*]").appName("drgsim")
         .config("spark.ui.enabled", "false").getOrCreate())
    s.sparkContext.setLogLevel("ERROR")
    try:
        yield s
    finally:
        s.stop()


def read_parquet(path: str | os.PathLike[str]) -> SparkDataFrame:
    """A parquet file or hive folder (``year=/month=``) in the active session; the
    folder :func:`write_parquet` wrote (``OUT``) reads as its ``OUT/data``."""
    _pyspark()
    from pyspark.sql import SparkSession

    from drgsim.distributed.output import DATA
    from drgsim.output import MANIFEST

    s = SparkSession.getActiveSession()
    if s is None:
        raise SparkError("no active Spark session: use drgsim.spark.session()")
    p = Path(path)
    if p.is_dir() and (p / DATA).is_dir() and (p / MANIFEST).is_file():
        p = p / DATA  # a partitioned output of group/write_parquet reads as its parts
    return s.read.parquet(str(p))


def is_grouped(path: str | os.PathLike[str]) -> bool:
    """A parquet input written by ``drgsim group``: provenance with a scheme in the
    parquet metadata (single machine), or in the sidecar of a partitioned output
    (``OUT`` or ``OUT/data``, Spark's or Dask's)."""
    import pyarrow.parquet as pq

    from drgsim.distributed.output import DATA, PROVENANCE, read_provenance

    p = Path(path)
    if p.is_dir():
        if (p / PROVENANCE).is_file() or (p / DATA / PROVENANCE).is_file():
            return "drgsim.scheme" in read_provenance(p)
        first = next(iter(sorted(p.rglob("*.parquet"))), None)
        if first is None:
            return False
        p = first
    return b"drgsim.scheme" in (pq.read_schema(p).metadata or {})


# ----------------------------------------------------------------------------- grouping


def group(
    sdf: SparkDataFrame,
    scheme: Any = DEFAULT_SCHEME,
    translate: bool = False,
    *,
    flags: bool = False,
    names: bool = False,
    threads: int = 1,
) -> SparkDataFrame:
    """Group a Spark DataFrame of discharge records: every input column passes through,
    ``mdc``, ``adrg``, ``drg`` and ``status`` appended, as :func:`drgsim.group`.

    ``threads``: numba threads per Spark task (1: Spark's tasks are the parallelism).
    The provenance (scheme, hash, translate) is in :func:`provenance_of` of the result;
    :func:`write_parquet` writes it beside the output.
    """
    _pyspark()
    from drgsim.grouper.core import group_arrow, load_scheme, provenance
    from drgsim.records import check_columns

    cs = load_scheme(scheme)
    check_columns(list(sdf.columns))
    in_schema = _arrow_schema(sdf)
    empty = group_arrow(in_schema.empty_table(), cs, translate, 1, flags, names)
    out_schema = _spark_schema(empty.schema.remove_metadata())
    target = pa.schema([pa.field(f.name, f.type) for f in _arrow_schema_of(out_schema)])
    bc = sdf.sparkSession.sparkContext.broadcast(cs)
    key = "scheme:" + cs.provenance.get("drgsim.scheme_hash", cs.name)
    from drgsim.spark.partitions import group_batches

    def run(batches):
        return group_batches(batches, bc, key, translate, flags, names, threads, target)

    out = sdf.mapInArrow(run, out_schema)
    prov = {**provenance(cs, translate)}
    absent = (empty.schema.metadata or {}).get(b"drgsim.absent_columns", b"").decode()
    prov["drgsim.absent_columns"] = absent
    _PROVENANCE[id(out)] = (out, prov)
    return out


def _arrow_schema_of(spark_schema) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(spark_schema)


# the provenance of a DataFrame this module made (Spark keeps no Arrow metadata)
_PROVENANCE: dict[int, tuple[Any, dict[str, str]]] = {}


def provenance_of(sdf: SparkDataFrame) -> dict[str, str]:
    """The provenance of a DataFrame made by :func:`group` / :func:`simulate` ({} if none)."""
    hit = _PROVENANCE.get(id(sdf))
    return dict(hit[1]) if hit is not None and hit[0] is sdf else {}


def dip_match(
    sdf: SparkDataFrame, catalogue: Any, scheme: Any = DEFAULT_SCHEME, translate: bool = False,
    *, threads: int = 1,
) -> SparkDataFrame:
    """DIP packet matching per batch, as ``drgsim.dip.match`` on an Arrow table (any
    partitioning: a case's packet depends on its own row); scheme and catalogue in one
    broadcast. The provenance is in :func:`provenance_of` of the result."""
    _pyspark()
    from drgsim.distributed.dip import load_catalogue, match_table, provenance
    from drgsim.grouper.core import load_scheme
    from drgsim.records import check_columns

    cs = load_scheme(scheme)
    check_columns(list(sdf.columns))
    cat = load_catalogue(catalogue, cs)  # a malformed catalogue fails here, before any task
    empty = match_table(_arrow_schema(sdf).empty_table(), cat, cs, translate)
    out_schema = _spark_schema(empty.schema.remove_metadata())
    target = _arrow_schema_of(out_schema)
    bc = sdf.sparkSession.sparkContext.broadcast((cs, cat))
    key = f"dip:{uuid.uuid4().hex}"  # a catalogue has no hash: one key per call
    from drgsim.spark.partitions import dip_batches

    def run(batches):
        return dip_batches(batches, bc, key, translate, threads, target)

    out = sdf.mapInArrow(run, out_schema)
    prov = provenance(cat, cs, translate)
    absent = (empty.schema.metadata or {}).get(b"drgsim.absent_columns", b"").decode()
    prov["drgsim.absent_columns"] = absent
    _PROVENANCE[id(out)] = (out, prov)
    return out


def dip_build(
    sdf: SparkDataFrame, policy: Any = None, scheme: Any = DEFAULT_SCHEME, hospitals: Any = None,
    columns: dict[str, str] | None = None, *, order_by: str = "case_id", **build_kw: Any,
) -> tuple[Any, pd.DataFrame]:
    """``drgsim.dip.build`` of a history in Spark, by a shuffle by assigned packet
    (:mod:`drgsim.distributed.dip_build`): years, scan and per-row keys by ``mapInArrow``;
    key counts reduced to the driver, which decides the packets; the key → packet map
    applied per batch; ``groupBy("packet").applyInArrow`` computes each packet's
    statistics; the catalogue assembled on the driver from those (O(keys + packets),
    never history rows). The catalogue equals ``dip.build`` of the same rows in any
    order, so ``order_by`` (kept for callers; still checked to be a build column) no
    longer changes it. Returns (catalogue, None): the per-row assignment is not collected."""
    _pyspark()
    from drgsim.distributed import dip_build as B
    from drgsim.distributed.dip import build_columns

    cols = build_columns(list(sdf.columns), columns)
    if order_by not in cols:
        raise SparkError(f"order_by {order_by!r}: not a column the build reads ({', '.join(cols)})")
    st = B.setup(policy, scheme, hospitals, columns, **build_kw)
    share = B.has_share(cols, columns)
    src = sdf.select(*cols)
    blob = _spark_schema(B.BLOB_SCHEMA)

    def years_of(batches):
        return B.blob_batches(batches, B.years_frame, columns)

    plan = B.plan_of(st, B.unblob(src.mapInArrow(years_of, blob).toArrow()))

    def scan_of(batches):
        return B.blob_batches(batches, B.scan_frame, plan)

    plan, unmatched = B.reduce_scans(plan, B.unblob(src.mapInArrow(scan_of, blob).toArrow()))
    p1 = plan

    def rows_of(batches):
        return B.rows_batches(batches, p1)

    rows = src.mapInArrow(rows_of, _spark_schema(B.ROWS_SCHEMA))
    reds = B.unblob(rows.mapInArrow(B.reduce_batches, blob).toArrow())
    plan, red, kmap, table = B.driver_keys(plan, reds, unmatched, share)

    def assign_of(batches):
        return B.assign_batches(batches, kmap)

    def stats_of(t):
        return B.stats_table(t, plan)

    assigned = rows.mapInArrow(assign_of, _spark_schema(B.ASSIGNED_SCHEMA))
    parts = B.unblob(assigned.groupBy("packet").applyInArrow(stats_of, blob).toArrow())
    return B.driver_catalogue(plan, table, red, parts, share), None


# ----------------------------------------------------------------------------- output

STAGING = ".spark-*.part"  # a run's staging folder inside OUT (hidden; readers skip it)
UNIT = "spark-"  # markers of the month folders a Spark run moved into place


def write_parquet(
    sdf: SparkDataFrame,
    out: str | os.PathLike[str],
    provenance: dict[str, str] | None = None,
    *,
    fingerprint: str | None = None,
    writer: str = "spark.write_parquet",
    status: str | None = None,
    date_col: str | None = "discharge_date",
    _fail_after: int | None = None,
) -> dict[str, Any]:
    """Write ``sdf`` as the Dask writer does (:mod:`drgsim.distributed.output`):
    ``OUT/data/year=YYYY/month=MM/*.parquet`` (keys from the ``year``/``month`` columns,
    else ``date_col``; rows without them under ``__HIVE_DEFAULT_PARTITION__``), the
    provenance in ``OUT/data/_drgsim_provenance.json``, the journal with ``fingerprint``,
    a marker per month folder, ``manifest.json`` last. Returns rows, ``status`` counts,
    month folders written and kept.

    How: Spark writes the months still to do into a staging folder inside ``OUT``
    (``.spark-XXXX.part``), through its own commit protocol, so a retried or speculative
    task never leaves a second copy of its rows; only when the job has committed does the
    driver move each month folder's files into place (one rename per file, atomic on the
    local or mounted file system ``OUT`` must be) and record them and the month's marker
    in the journal. Writing from the tasks straight into ``OUT`` would leave the files of
    failed task attempts beside the good ones, and Spark's partitions are not stable
    across runs (they follow the cluster's cores and split sizes), so a month is the unit
    a re-run can trust. A killed run leaves no manifest; the re-run with the same
    fingerprint keeps the months that were moved and marked, recomputes the rest (the
    Spark job is all or nothing) and ends with the same rows. Another fingerprint
    replaces an earlier output of the same ``writer`` and another writer's output is
    refused (:class:`~drgsim.output.OutputFolder`), as on Dask. ``fingerprint=None``:
    a fresh one, so a re-run reuses nothing. Parts carry no Arrow metadata (Spark drops
    it); the sidecar does (``provenance``, else :func:`provenance_of` ``sdf``).
    """
    F = _pyspark()
    from drgsim.distributed.output import NO_DATE, PartitionedOutput, remove_staging

    if "://" in str(out):
        raise SparkError(
            f"{out}: write_parquet writes to a local (or mounted) folder, where a rename is "
            "atomic; write to a path, then copy"
        )
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target}: exists and is not a folder")
    fp = fingerprint or f"once-{uuid.uuid4().hex}"
    remove_staging(target, STAGING)  # a killed run's (only drgsim's own temporary files)
    po = PartitionedOutput(target, fp, writer=writer).open()  # another writer's: refused
    counts: dict[str, int] = {}

    def add(c: dict[str, int]) -> None:
        for k, v in c.items():
            counts[k] = counts.get(k, 0) + int(v)

    kept: list[str] = []
    for key in po.reusable_units(UNIT):
        rec = po.done(key)
        if rec is not None:
            kept.append(f"{rec['year']}-{rec['month']}")
            add(rec.get("status_counts", {}))
    keyed = _year_month(sdf, date_col)
    if kept:
        key = F.coalesce(F.concat(F.col("year"), F.lit("-"), F.col("month")),
                         F.lit(f"{NO_DATE}-{NO_DATE}"))
        keyed = keyed.where(~key.isin(kept))
    stage = target / f".spark-{uuid.uuid4().hex[:12]}.part"
    written = 0
    try:
        keyed.write.mode("errorifexists").partitionBy("year", "month").parquet(str(stage))
        for d in sorted(stage.glob("year=*/month=*")):
            if not d.is_dir():
                continue
            y, m = d.parent.name.split("=", 1)[1], d.name.split("=", 1)[1]
            rec = po.adopt(f"{UNIT}{y}-{m}", stage, f"{d.parent.name}/{d.name}", status,
                           {"year": y, "month": m})
            add(rec.get("status_counts", {}))
            written += 1
            if _fail_after is not None and written >= _fail_after:  # tests: a run cut short
                raise SparkError(f"injected failure after {written} month folder(s)")
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    info: dict[str, Any] = {"partitions": len(kept) + written, "engine": "spark"}
    if status is not None:
        info["status_counts"] = counts
    po.commit(dict(provenance if provenance is not None else provenance_of(sdf)), info)
    return {"rows": po.rows, "status_counts": counts, "partitions": len(kept) + written,
            "reused": len(kept), "path": target}


def read_provenance(out: str | os.PathLike[str]) -> dict[str, str]:
    """The provenance sidecar of a partitioned output (``OUT`` or ``OUT/data``), Spark's
    or Dask's: the one reader, :func:`drgsim.distributed.output.read_provenance`."""
    from drgsim.distributed.output import read_provenance as read

    return read(out)


def group_to(
    sdf: SparkDataFrame, out: str | os.PathLike[str], scheme: Any = DEFAULT_SCHEME,
    translate: bool = False, *, flags: bool = False, names: bool = False,
    fingerprint: str | None = None, _fail_after: int | None = None,
) -> dict[str, Any]:
    """:func:`group` then :func:`write_parquet` (writer ``group``, counts of ``status``),
    the layout of ``drgsim.dask.group_to_parquet``. Give ``fingerprint`` (the CLI hashes
    the input files and options) so a re-run keeps the months a killed run finished."""
    grouped = group(sdf, scheme, translate, flags=flags, names=names)
    return write_parquet(grouped, out, provenance_of(grouped), fingerprint=fingerprint,
                         writer="group", status="status", _fail_after=_fail_after)


def dip_match_to(
    sdf: SparkDataFrame, out: str | os.PathLike[str], catalogue: Any,
    scheme: Any = DEFAULT_SCHEME, translate: bool = False, *,
    fingerprint: str | None = None, _fail_after: int | None = None,
) -> dict[str, Any]:
    """:func:`dip_match` written as :func:`group_to` writes (writer ``match``, counts of
    ``dip_status``, the sidecar naming the catalogue), as ``drgsim.dask.match_to_parquet``."""
    matched = dip_match(sdf, catalogue, scheme, translate)
    return write_parquet(matched, out, provenance_of(matched), fingerprint=fingerprint,
                         writer="match", status="dip_status", _fail_after=_fail_after)


def _year_month(sdf: SparkDataFrame, date_col: str | None = "discharge_date"
                ) -> SparkDataFrame:
    """``year``/``month`` as the output folders' names, as
    :func:`drgsim.distributed.output.year_month` makes them (``2023``, ``03``): from the
    input's columns, else from ``date_col``; both null (Spark's
    ``__HIVE_DEFAULT_PARTITION__``) when either is missing."""
    F = _pyspark()
    from pyspark.sql.types import StringType

    cols = sdf.columns
    if "year" in cols and "month" in cols:
        # try_cast: a value that is no number is no date, not an error (Spark 3.5 too)
        y, m = F.expr("try_cast(`year` AS BIGINT)"), F.expr("try_cast(`month` AS BIGINT)")
    elif date_col is not None and date_col in cols:
        c = F.col(date_col)
        if isinstance(sdf.schema[date_col].dataType, StringType):
            c = F.try_to_timestamp(c)
        d = F.to_date(c)
        y, m = F.year(d), F.month(d)
    else:
        y = m = F.lit(None)
    ok = y.isNotNull() & m.isNotNull()
    return sdf.withColumns({
        "year": F.when(ok, y.cast("string")),
        "month": F.when(ok, F.lpad(m.cast("string"), 2, "0")),
    })


# ----------------------------------------------------------------------------- pricing


def _arrow_empty(sdf: SparkDataFrame) -> pd.DataFrame:
    """A zero-row pandas frame of ``sdf``'s columns, typed as a partition converts them."""
    return _arrow_schema(sdf).empty_table().to_pandas()


def _case_schema(empty_cases: pd.DataFrame, in_schema: pa.Schema, cid: str | None
                 ) -> pa.Schema:
    """The Arrow types of the per-case rows ``pay_partition`` returns (found on a zero-row
    run on the driver: text columns are strings, ``case_id`` keeps the input's kind)."""
    from drgsim.spark.partitions import BLOB

    fields = []
    for name, dt in empty_cases.dtypes.items():
        if name == "case_id":
            t = in_schema.field(cid).type if cid else pa.int64()
            t = pa.int64() if pa.types.is_integer(t) else pa.string()
        elif dt.kind in "biuf":
            t = pa.from_numpy_dtype(dt)
        else:
            t = pa.string()
        fields.append(pa.field(str(name), t))
    return pa.schema([*fields, pa.field(BLOB, pa.binary())])


def calibrate_weights(sdf: SparkDataFrame, yp: Any, year: int, scheme: Any, dcol: str,
                      columns: dict[str, str] | None, empty: pd.DataFrame) -> pd.DataFrame:
    """Weights calibrated exactly (the single path's ``drgsim.calibrate.calibrate`` with
    ``yp``'s calibration section, bit for bit) on the history years' rows of ``sdf``:
    year counts reduced from ``mapInArrow``, then ``groupBy("drg").applyInArrow`` computes
    each DRG's trimmed partial sums (:mod:`drgsim.distributed.calibrate`). The driver
    collects the per-DRG-unit statistics (O(DRGs)), never rows. ``prepare`` and the
    sweep's recalibration route both call this."""
    F = _pyspark()
    from drgsim.distributed import calibrate as C
    from drgsim.distributed.partition import calibration_columns

    spec = C.spec_of(yp, year)
    src = sdf.select(*calibration_columns(list(empty.columns), columns))

    def count(batches):
        return C.counts_batches(batches, spec, dcol, columns)

    parts = src.mapInArrow(count, _spark_schema(C.COUNTS_SCHEMA)).toPandas()
    counts, before = C.reduce_counts(parts, spec)
    counts_t = tuple(int(x) for x in counts)

    def rows_of(batches):
        return C.rows_batches(batches, spec, columns)

    rows = src.mapInArrow(rows_of, _spark_schema(C.ROWS_SCHEMA))

    def units_of(drgs: list[str] | None, m_all: float | None) -> pd.DataFrame:
        r = rows if drgs is None else rows.filter(F.col("drg").isin(drgs))

        def stats(table):
            return C.units_table(table, spec, counts_t, m_all)

        u = r.groupBy("drg").applyInArrow(stats, _spark_schema(C.UNITS_SCHEMA))
        return C.conform_units(u.toArrow().to_pandas())

    return C.driver_weights(spec, counts, before, units_of, scheme)


def _dip_weights(sdf: SparkDataFrame, catalogue: Any, weights: Any, pol: Any, year: int,
                 columns: dict[str, str] | None, n_hist: int, history: SparkDataFrame,
                 empty: pd.DataFrame) -> tuple[SparkDataFrame, Any, str, Any]:
    """DIP on Spark, before pricing: the catalogue (given, or built from the ``history``
    rows by :func:`dip_build`), the rows matched per batch
    (:func:`dip_match`) unless they carry a ``packet`` column, and the weights from every
    batch's keys in input order (file, row). Returns (matched frame, catalogue, its
    source, weights)."""
    from drgsim.distributed import ROW
    from drgsim.distributed.dip import KEY_COLUMNS, driver_weights
    from drgsim.errors import RecordsError
    from drgsim.pricing.cases import _col
    from drgsim.scenarios.prepare import DIP_NOT_WEIGHTS, dip_catalogue
    from drgsim.spark import partitions as P

    if weights is not None:
        raise RecordsError(DIP_NOT_WEIGHTS)
    FILE = "__drgsim_file"

    def build() -> Any:
        return dip_build(history, policy=pol, scheme=pol.scheme, columns=columns, year=year,
                         order_by=_col(empty, "case_id", columns) or "case_id")[0]

    matched = "packet" in sdf.columns
    cat, src = dip_catalogue(catalogue, matched, pol, year, n_hist, build)
    if not matched:
        sdf = dip_match(sdf, cat, pol.scheme)
    order = [FILE, ROW]
    keyed = sdf.select(*[c for c in KEY_COLUMNS if c in sdf.columns], *order)
    schema = keyed.schema
    target = _arrow_schema(keyed)

    def run(batches):
        return P.key_batches(batches, order, target)

    keys = keyed.mapInArrow(run, schema).toArrow().to_pandas()
    return sdf, cat, src, driver_weights(cat, [keys], order)


def prepare(
    sdf: SparkDataFrame,
    policy: Any = None,
    weights: pd.DataFrame | str | os.PathLike[str] | None = None,
    hospitals: pd.DataFrame | str | os.PathLike[str] | None = None,
    region: pd.DataFrame | str | os.PathLike[str] | None = None,
    year: int | None = None,
    columns: dict[str, str] | None = None,
    grouped: bool | None = None,
    reference_pv: dict[str, float] | None = None,
    catalogue: Any = None,
) -> Any:
    """``drgsim.prepare`` on Spark: a :class:`~drgsim.scenarios.prepare.Prepared` of the
    reduced hospital × fund × month totals (settle it with :func:`settle`, or
    ``.sweep(...)`` on every route: the executors re-price). Arguments as
    :func:`drgsim.prepare`.

    Each hospital's rows (this year's, last year's, rows without a valid date) are
    priced together in one group (``groupBy(hospital).applyInArrow``) by
    :func:`drgsim.distributed.price_partition`. ``weights=None`` calibrates exactly
    (:func:`calibrate_weights`: a ``groupBy("drg")`` of the history years' rows, per-DRG
    partial sums; the driver holds those, O(DRGs), never rows).

    A DIP policy (``method: dip``): rows without a ``packet`` column are matched per batch
    (:func:`dip_match`) with ``catalogue``, or with one built from the history years
    (:func:`dip_build`); the weights are fixed on the driver
    from every batch's keys in input order (:func:`drgsim.distributed.dip.driver_weights`).
    """
    F = _pyspark()
    from drgsim.calibrate import read_weights
    from drgsim.dip.price import dip_frame
    from drgsim.distributed import (
        ROW,
        combine,
        driver_prepared,
    )
    from drgsim.distributed.dip import driver_dip
    from drgsim.distributed.history import driver_history
    from drgsim.distributed.partition import (
        driver_context,
        global_hospitals,
        mean_of_parts,
        partition_keys,
    )
    from drgsim.errors import RecordsError
    from drgsim.policy import Policy, load_policy, resolve_year
    from drgsim.scenarios.prepare import (
        check_catalogue_method,
        check_hospitals_named,
        read_hospitals,
    )
    from drgsim.settlement.simulate import (
        GROUPER_COLUMNS,
        check_inputs,
        read_table,
    )
    from drgsim.spark import partitions as P

    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    check_catalogue_method(catalogue, pol)
    dip = pol.method == "dip"
    if dip:
        grouped = True  # DIP matches packets below; no DRG grouping
    if grouped is None:
        grouped = {"drg", "status"} <= set(sdf.columns)
    # input order (file, then row), so each hospital's rows and calibration's history are
    # put back in the single machine's order; taken on the scan, before any Python stage
    # (input_file_name is unreliable after one), as Spark reads a folder's files largest first
    FILE = "__drgsim_file"
    sdf = sdf.withColumn(ROW, F.monotonically_increasing_id())
    sdf = sdf.withColumn(FILE, F.input_file_name())
    meta: dict[str, str] = {}
    if not grouped:
        for c in GROUPER_COLUMNS:
            if c in sdf.columns:
                sdf = sdf.withColumnRenamed(c, f"hospital_{c}")
        sdf = group(sdf, pol.scheme)
        meta.update(provenance_of(sdf))
    hosp_df = read_hospitals(hospitals)
    region_df = read_table(region)[0] if region is not None else None
    empty = _arrow_empty(sdf.drop(ROW, FILE))
    dcol, hcol = partition_keys(empty, columns)
    sc = sdf.sparkSession.sparkContext

    def scan(batches):
        return P.scan_batches(batches, hcol, dcol)

    counts = (sdf.mapInArrow(scan, "year double, hospital string, n long")
              .groupBy("year", "hospital").agg(F.sum("n").alias("n")).toPandas())
    per_year = counts.groupby("year", dropna=True)["n"].sum()
    if year is None:
        if not len(per_year):
            raise RecordsError("no valid discharge dates to find the simulated year")
        year = int(per_year.index.max())
    yp = resolve_year(pol, year)
    pv = yp.pv
    check_inputs(pv, year, int(per_year.get(float(year), 0)),
                 pd.Series(per_year.index.astype("float64")), hosp_df, region_df)
    check_hospitals_named(hosp_df, counts.loc[counts["year"] == year, "hospital"].dropna())

    def years(lo, hi, undated, cols):
        out = sdf.select(*cols) if cols is not None else sdf
        schema = out.schema
        keep = [*cols] if cols is not None else None

        def run(batches):
            return P.year_filter_batches(batches, dcol, lo, hi, undated, keep)

        return out.mapInArrow(run, schema)

    W = cat = None
    if dip:
        n_hist = int(per_year[per_year.index < year].sum())
        sdf, cat, w_src, W = _dip_weights(sdf, catalogue, weights, pol, year, columns, n_hist,
                                          years(None, year - 1, False, None), empty)
        w_df = W.table
        empty = _arrow_empty(sdf.drop(ROW, FILE))  # the matched columns
    elif weights is None:
        w_df = calibrate_weights(sdf, yp, year, pol.scheme, dcol, columns, empty)
        w_src = "calibrated"
    elif isinstance(weights, pd.DataFrame):
        w_df, w_src = weights, "given"
    else:
        def m_all(batches):
            return P.m_all_batches(batches, columns)

        cols = [c for c in sdf.columns if c not in (ROW, FILE)]
        part = years(None, year - 1, False, cols).mapInArrow(m_all, "s long, n long").toPandas()
        w_df, w_src = read_weights(weights, pv, mean_of_parts(part["s"], part["n"])), str(weights)
    ctx = driver_context(w_df, pv, yp, year, dcol, hosp_df, columns, reference_pv, "Spark",
                         W=W, dip=dip)
    ctx.keep_rows = True  # a sweep's passes rebuild each group's local Prepared
    bc = sc.broadcast(ctx)
    # last year's rows link January readmissions and give last year's spending; older
    # years are not needed for pricing and stay out of the shuffle (DIP: every history
    # year gives PV_b and r)
    kept = (sdf if dip else years(year - 1, None, True, None)).drop(FILE)

    def summary(table):
        return P.summary_group(table, bc.value)

    blobs = kept.groupBy(hcol).applyInArrow(summary, _spark_schema(P.SUMMARY)).collect()
    summaries = [pickle.loads(r[0]) for r in blobs]
    hids = global_hospitals(summaries, hosp_df)
    reduced = combine(summaries, hids)
    priced_cols = dip_frame(empty) if dip else empty
    ref, ratio = driver_history(summaries, yp, year, ctx.W, cat, reference_pv, hosp_df,
                                region_df, columns, priced_cols, dip)
    base = driver_prepared(pol, yp, year, reduced, hids, ctx.W, w_df, w_src, weights, hosp_df,
                           region_df, columns, dcol, meta, ref, priced_cols)
    if dip:
        driver_dip(base, cat, w_src, ratio)
    base._cache["spark"] = {"kept": kept, "ctx": bc, "hids": hids, "hcol": hcol,
                            "empty": empty.assign(**{ROW: np.zeros(0, np.int64)}),
                            "in_schema": _arrow_schema(sdf)}
    base._cache["engine"] = _SparkSweep(hids, kept, hcol, bc, sdf, year, pol.scheme, dcol,
                                        columns, empty)
    return base


class _SparkSweep(SweepEngine):
    """A sweep's jobs as passes over the kept rows: each ``groupBy(hospital)
    .applyInArrow`` re-prices the group's rows (``price_partition``) and runs
    :func:`drgsim.distributed.sweep.run_job` on them; nothing persists between passes, so
    every pass pays the base pricing again (about a second each on a local session)."""

    def __init__(self, hids: np.ndarray, kept: Any, hcol: str, ctx: Any, sdf: Any, year: int,
                 scheme: Any, dcol: str, columns: dict[str, str] | None, empty: pd.DataFrame):
        super().__init__(hids)
        self.kept, self.hcol, self.ctx, self.sdf = kept, hcol, ctx, sdf
        self.year, self.scheme, self.dcol = year, scheme, dcol
        self.columns, self.empty = columns, empty

    def map_job(self, job: Any) -> list[Any]:
        from drgsim.spark import partitions as P

        jb = self.kept.sparkSession.sparkContext.broadcast(job)
        ctx = self.ctx

        def run(table):
            return P.sweep_group(table, ctx.value, jb.value)

        try:
            rows = self.kept.groupBy(self.hcol).applyInArrow(run, _spark_schema(P.SUMMARY)).collect()
        finally:
            jb.unpersist()
        return [pickle.loads(r[0]) for r in rows]

    def calibrate_weights(self, yp: Any) -> pd.DataFrame:
        return calibrate_weights(self.sdf, yp, self.year, self.scheme, self.dcol, self.columns,
                                 self.empty)

    def release(self) -> None:
        """Nothing persists between passes: only the driver's sets are dropped."""
        self.used = False
        super().release()


def settle(base: Any) -> dict[str, Any]:
    """The single settlement of a :func:`prepare` d base: the tables of
    :func:`drgsim.simulate`, the small ones as pandas, ``cases`` a Spark DataFrame (with
    ``payment_fen``; its provenance in :func:`provenance_of`)."""
    F = _pyspark()
    from drgsim.distributed import (
        ROW,
        DistributedError,
        pay_partition,
        payments_of,
        price_partition,
        settle_driver,
    )
    from drgsim.distributed.partition import finish_tables
    from drgsim.pricing.cases import _col
    from drgsim.spark import partitions as P

    d = base._cache.get("spark")
    if d is None:
        raise DistributedError("settle() takes what drgsim.spark.prepare returned")
    tables = settle_driver(base)
    pays = payments_of(tables["_settlement"].funds)
    probe = pay_partition(price_partition(d["empty"], d["ctx"].value), pays, d["hids"])
    schema = _case_schema(probe["cases"], d["in_schema"],
                          _col(d["empty"], "case_id", base.columns))
    kept = d["kept"]
    bc_pay = kept.sparkSession.sparkContext.broadcast(pays)
    ctx, hids = d["ctx"], d["hids"]

    def pay(table):
        return P.pay_group(table, ctx.value, bc_pay.value, hids, schema)

    out = kept.groupBy(d["hcol"]).applyInArrow(pay, _spark_schema(schema)).persist()
    small = [pickle.loads(r[0]) for r in out.where(F.col(P.BLOB).isNotNull())
             .select(P.BLOB).collect()]
    tables = finish_tables(tables, small, base.prov)
    cases = out.where(F.col(P.BLOB).isNull()).drop(P.BLOB, ROW)
    _PROVENANCE[id(cases)] = (cases, dict(base.prov))
    tables["cases"] = cases
    return tables


def simulate(
    sdf: SparkDataFrame,
    policy: Any = None,
    weights: pd.DataFrame | str | os.PathLike[str] | None = None,
    hospitals: pd.DataFrame | str | os.PathLike[str] | None = None,
    region: pd.DataFrame | str | os.PathLike[str] | None = None,
    year: int | None = None,
    columns: dict[str, str] | None = None,
    grouped: bool | None = None,
    reference_pv: dict[str, float] | None = None,
    catalogue: Any = None,
) -> dict[str, Any]:
    """:func:`drgsim.simulate` on Spark (see :func:`prepare`): the same tables, the small
    ones as pandas, ``cases`` a Spark DataFrame (:func:`write_parquet` writes it)."""
    return settle(prepare(sdf, policy, weights, hospitals, region, year, columns, grouped,
                          reference_pv, catalogue))


def sweep(sdf: SparkDataFrame, scenarios: Any, draws: int | None = None,
          seed: int | None = None, monthly: bool = False, chunk: int | None = None,
          **prepare_kw: Any) -> Any:
    """``drgsim.prepare(...).sweep(scenarios)`` on Spark: prepared once (hospital groups
    priced on the executors), every route (cells, rows, recalibration, behaviour draws)
    re-priced on the executors (:mod:`drgsim.distributed.sweep`), every scenario settled
    on the driver: the single machine's result. Each re-pricing is a pass over the kept
    rows that prices them again first: one pass for every re-priced set at once, one per
    recalibration, and per behaviour group one per block of ``chunk`` draws (and one for
    each LOS-change draw)."""
    return prepare(sdf, **prepare_kw).sweep(scenarios, draws=draws, seed=seed,
                                           monthly=monthly, chunk=chunk)


__all__ = [
    "PROVENANCE_FILE",
    "SparkError",
    "calibrate_weights",
    "dip_build",
    "dip_match",
    "dip_match_to",
    "group",
    "group_to",
    "is_grouped",
    "provenance_of",
    "prepare",
    "read_parquet",
    "read_provenance",
    "session",
    "settle",
    "simulate",
    "sweep",
    "write_parquet",
]
