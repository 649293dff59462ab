"""drgsim on Spark: the same compiled scheme, kernels, pricing and settlement, driven by Spark.

A thin adapter: it holds partitioning and I/O only. Every rule runs in the core functions
the single-process path runs (listed in :mod:`drgsim.spark.partitions`):

- :func:`group` — ``mapInArrow`` over any partitioning, each Arrow batch through
  :func:`drgsim.grouper.core.group_arrow` with the compiled scheme from a broadcast
  (unpickled once per Python worker; Spark reuses workers, and numba's disk cache keeps
  the compiled kernels, so a partition never compiles).
- :func:`simulate` — a shuffle by hospital (``groupBy(hospital).applyInArrow``): each
  hospital's rows are priced and built into cells by
  :func:`drgsim.scenarios.prepare.price_partition`; only the hospital × fund × month
  totals reach the driver, which settles with
  :func:`drgsim.settlement.run.settle_funds`; the payments go back in a broadcast and a
  second pass over the hospital partitions splits them per case
  (:func:`drgsim.settlement.run.case_payments`).
- :func:`dip_match` — DIP packet matching per batch (``drgsim.dip.match``).
- :func:`write_parquet` — partitioned parquet (``year=/month=``) written into a hidden
  temporary folder beside the target and renamed onto it when complete, with the
  provenance in a sidecar ``_drgsim_provenance.json`` (Spark drops Arrow schema metadata).

Spark needs a Java runtime (17 or 21) and ``pip install drgsim[spark]``.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from drgsim.errors import DrgsimError, OutputError
from drgsim.scheme.paths import DEFAULT_SCHEME

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame

PROVENANCE_FILE = "_drgsim_provenance.json"
SIDE_FORMAT = "drgsim-spark-1"


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
    sdf: SparkDataFrame, catalogue: Any, scheme: Any = DEFAULT_SCHEME
) -> SparkDataFrame:
    """DIP packet matching per batch, ``drgsim.dip.match(records, catalogue=..., scheme=...)``
    (any partitioning: a case's packet depends on its own codes only)."""
    _pyspark()
    try:
        from drgsim import dip
    except ImportError as e:
        raise SparkError("DIP matching needs drgsim.dip (not installed in this drgsim)") from e
    from drgsim.grouper.core import load_scheme

    cs = load_scheme(scheme)
    cat = catalogue if not isinstance(catalogue, (str, os.PathLike)) else dip.read_catalogue(
        catalogue
    )
    empty = dip.match(_arrow_schema(sdf).empty_table(), catalogue=cat, scheme=cs)
    out_schema = _spark_schema(empty.schema.remove_metadata())
    target = _arrow_schema_of(out_schema)
    bc = sdf.sparkSession.sparkContext.broadcast((cs, cat))
    key = f"dip:{uuid.uuid4().hex}"  # a catalogue has no hash: one key per call
    from drgsim.spark.partitions import dip_batches

    def run(batches):
        return dip_batches(batches, bc, key, target)

    return sdf.mapInArrow(run, out_schema)


# ----------------------------------------------------------------------------- output


def write_parquet(
    sdf: SparkDataFrame,
    out: str | os.PathLike[str],
    partition_by: tuple[str, ...] = ("year", "month"),
    provenance: dict[str, str] | None = None,
) -> Path:
    """Write ``sdf`` as partitioned parquet under the local folder ``out``, atomically.

    Spark writes into a hidden temporary folder beside ``out`` (``.NAME.XXXX.part``);
    the sidecar ``_drgsim_provenance.json`` (provenance, partitioning, the part files)
    is written last, then the folder is renamed onto ``out``. A killed job leaves only
    the temporary folder, which the next write removes: ``out`` is either the earlier
    complete output or the new complete one. An existing ``out`` that drgsim did not
    write (no sidecar) is refused, never replaced.
    """
    _pyspark()
    target = Path(out)
    if "://" in str(out):
        raise SparkError(
            f"{out}: write_parquet writes to a local (or mounted) folder, where a rename is "
            "atomic; write to a path, then copy"
        )
    if target.exists() and not (target / PROVENANCE_FILE).exists():
        if not target.is_dir() or any(target.iterdir()):
            raise OutputError(
                f"{target}: exists and is not a drgsim Spark output (no {PROVENANCE_FILE}): "
                "choose another folder"
            )
    missing = [c for c in partition_by if c not in sdf.columns]
    if missing:
        raise SparkError(f"cannot partition the output by {', '.join(missing)}: no such column")
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*.part"):  # a killed run's leftovers
        shutil.rmtree(stale, ignore_errors=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.part"
    try:
        sdf.write.mode("errorifexists").partitionBy(*partition_by).parquet(str(tmp))
        from drgsim import __version__
        from drgsim.output import write_text

        files = sorted(
            p.relative_to(tmp).as_posix()
            for p in tmp.rglob("*.parquet")
            if not any(x.startswith((".", "_")) for x in p.relative_to(tmp).parts)
        )
        side = {
            "format": SIDE_FORMAT,
            "drgsim_version": __version__,
            "partition_by": list(partition_by),
            "provenance": dict(provenance or {}),
            "files": files,
        }
        write_text(tmp / PROVENANCE_FILE, json.dumps(side, indent=2, ensure_ascii=False) + "\n")
        if target.exists():
            old = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.old.part"
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_provenance(out: str | os.PathLike[str]) -> dict[str, Any]:
    """The sidecar of a :func:`write_parquet` output."""
    return json.loads((Path(out) / PROVENANCE_FILE).read_text(encoding="utf-8"))


def group_to(
    sdf: SparkDataFrame, out: str | os.PathLike[str], scheme: Any = DEFAULT_SCHEME,
    translate: bool = False, *, flags: bool = False, names: bool = False,
) -> Path:
    """:func:`group` then :func:`write_parquet` partitioned by ``year``/``month`` (taken
    from the input's columns, else from ``discharge_date``; rows without a readable date
    go to Spark's ``__HIVE_DEFAULT_PARTITION__``)."""
    F = _pyspark()
    grouped = group(sdf, scheme, translate, flags=flags, names=names)
    prov = provenance_of(grouped)
    cols = grouped.columns
    if "year" not in cols or "month" not in cols:
        if "discharge_date" not in cols:
            raise SparkError("the records have neither year/month columns nor discharge_date")
        d = F.to_date(F.col("discharge_date"))
        if "year" not in cols:
            grouped = grouped.withColumn("year", F.year(d))
        if "month" not in cols:
            grouped = grouped.withColumn("month", F.month(d))
    return write_parquet(grouped, out, ("year", "month"), prov)


# ----------------------------------------------------------------------------- simulation


@dataclass
class SparkSimulation:
    """A simulated year on Spark: per-case rows (a Spark DataFrame) and the settlement."""

    cases: SparkDataFrame  # priced cases with payment_fen (Priced.frame() + payment_fen)
    funds: list  # FundSettlement per settled fund (drgsim.settlement.core)
    hospital_ids: np.ndarray
    year: int
    provenance: dict[str, str] = field(default_factory=dict)
    _tables: dict[str, pd.DataFrame] | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        """The driver-side tables of :func:`drgsim.simulate` that need no case rows:
        ``funds``, ``hospitals`` (without CMI and the cost/time indices, which are case
        aggregates), ``months``, ``ledger``."""
        if self._tables is None:
            from drgsim.spark.partitions import settlement_tables

            self._tables = settlement_tables(self.funds, self.hospital_ids)
        return self._tables

    def write(self, out: str | os.PathLike[str]) -> Path:
        """The per-case rows as parquet partitioned by year/month, provenance beside them."""
        return write_parquet(self.cases, out, ("year", "month"), self.provenance)


def simulate(
    sdf: SparkDataFrame,
    policy: Any = None,
    weights: pd.DataFrame | str | os.PathLike[str] | None = None,
    hospitals: pd.DataFrame | str | os.PathLike[str] | None = None,
    region: pd.DataFrame | str | os.PathLike[str] | None = None,
    year: int | None = None,
    columns: dict[str, str] | None = None,
    reference_pv: dict[str, float] | None = None,
) -> SparkSimulation:
    """Price and settle one year of cases on Spark, as :func:`drgsim.simulate` does.

    Records are grouped first (:func:`group`) unless they carry ``drg`` and ``status``.
    Pricing and cells run per hospital (a shuffle: readmissions, special review and
    cost indices are per hospital and year, so month partitions cannot be priced
    alone); settlement runs on the driver from the hospital × fund × month totals.
    ``weights`` must be given (a calibrated table or file): distributed calibration is
    not built, and it is refused rather than done on a sample. Budget sources and
    bounds that need last year's cases priced (``source: history``, ``budgeted_pv:
    last_year`` with a floor or ceiling and no ``reference_pv``) are refused likewise.
    """
    F = _pyspark()
    from drgsim.spark.partitions import (
        case_frame_schema,
        driver_inputs,
        hospital_index,
        price_hospital,
        scan_batches,
        settle_on_driver,
        totals_hospital,
    )

    if not {"drg", "status"} <= set(sdf.columns):
        from drgsim.policy import load_policy
        from drgsim.settlement.simulate import GROUPER_COLUMNS

        pol = policy if not isinstance(policy, (str, os.PathLike, type(None))) else load_policy(
            policy
        )
        for c in GROUPER_COLUMNS:
            if c in sdf.columns:
                sdf = sdf.withColumnRenamed(c, f"hospital_{c}")
        sdf = group(sdf, pol.scheme)
        policy = pol
    spec = driver_inputs(list(sdf.columns), policy, weights, hospitals, region, columns,
                         reference_pv)
    sdf = sdf.withColumn("__drgsim_row", F.monotonically_increasing_id())
    spark = sdf.sparkSession
    # pass 0: years and hospitals present, classified by the same date parsing as prepare
    scan_schema = "hospital string, year int, n long, gap int"

    def scan(batches):
        return scan_batches(batches, spec.hcol, spec.dcol)

    counts = (
        sdf.mapInArrow(scan, scan_schema)
        .groupBy("hospital", "year")
        .agg(F.sum("n").alias("n"), F.min("gap").alias("gap"))
        .toPandas()
    )
    spec = hospital_index(spec, counts, year)
    bc = spark.sparkContext.broadcast(spec)
    keep = sdf
    dtype = dict(sdf.dtypes).get(spec.dcol, "")
    if dtype in ("date", "timestamp", "timestamp_ntz"):  # prune older years before the shuffle
        keep = sdf.filter(F.col(spec.dcol).isNull() | (F.year(spec.dcol) >= spec.year - 1))
    by_h = keep.groupBy(spec.hcol)
    tot_schema = "kind string, h int, f int, m int, points double, share long, cost long, n long"

    def totals(table):
        return totals_hospital(table, bc.value)

    rows = by_h.applyInArrow(totals, tot_schema).toPandas()
    fs_list, prov = settle_on_driver(spec, rows)
    bc_fs = spark.sparkContext.broadcast(fs_list)
    arrow_out = case_frame_schema(_arrow_schema(sdf), spec)
    out_schema = _spark_schema(arrow_out)

    def pay(table):
        return price_hospital(table, bc.value, bc_fs.value, arrow_out)

    cases = by_h.applyInArrow(pay, out_schema)
    _PROVENANCE[id(cases)] = (cases, prov)
    return SparkSimulation(cases, fs_list, spec.hs, spec.year, prov)


__all__ = [
    "PROVENANCE_FILE",
    "SparkError",
    "SparkSimulation",
    "dip_match",
    "group",
    "group_to",
    "provenance_of",
    "read_provenance",
    "simulate",
    "write_parquet",
]
