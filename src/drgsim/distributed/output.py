"""Partitioned parquet output of a distributed run, written part by part through drgsim.output.

Layout like the synthetic region's input: ``OUT/data/year=YYYY/month=MM/part-NNNNN.parquet``
(``OUT/data`` reads back as one dataset: ``pd.read_parquet(OUT/data)``, Dask, Spark), rows
without a valid date under ``year=__HIVE_DEFAULT_PARTITION__`` (pandas cannot read those
null keys yet: ``pyarrow.dataset.dataset(OUT/data, partitioning="hive")`` or
:func:`drgsim.dask.read_parquet` do), the ``year`` and ``month`` columns in the path only,
as hive readers expect. Each worker writes its parts
atomically (:func:`drgsim.output.atomic_path`); the driver records them in the folder's
journal (:class:`~drgsim.output.OutputFolder`: fingerprint of the inputs and options),
then a marker ``_parts/part-NNNNN.json`` listing the partition's files, and writes
``manifest.json`` last. A killed run leaves no manifest; the re-run with the same
fingerprint keeps every partition whose marker and files are intact and writes the rest,
so it ends with the same rows as an uninterrupted run.

An engine with its own commit protocol (Spark) writes a run's hive folders into a
staging folder instead, and the driver moves each ``year=/month=`` folder's files into
place (:meth:`PartitionedOutput.adopt`: one rename per file, then the folder's marker), so
the units a re-run keeps are whole months.

``data/_drgsim_provenance.json`` beside the parts (readers skip ``_`` files) carries what parquet metadata carries in a
single-machine output (drgsim version, scheme and its hash, translation, policy), because
engines such as Spark drop Arrow schema metadata when they write.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from drgsim.output import OutputFolder, atomic_path

PROVENANCE = "_drgsim_provenance.json"
DATA = "data"  # the parts' folder inside OUT (OUT itself also holds manifest.json)
NO_DATE = "__HIVE_DEFAULT_PARTITION__"
OWNED = (f"{DATA}/year=*.parquet", "_parts/*.json", f"{DATA}/{PROVENANCE}")


def part_name(part: int) -> str:
    return f"part-{part:05d}.parquet"


def year_month(df: pd.DataFrame, date_col: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Each row's output folder keys: the ``year``/``month`` columns when the input had
    them (hive keys), else from ``date_col``; "" when neither gives a date."""
    if "year" in df.columns and "month" in df.columns:
        y = pd.to_numeric(df["year"], errors="coerce")
        m = pd.to_numeric(df["month"], errors="coerce")
    elif date_col is not None and date_col in df.columns:
        d = pd.to_datetime(df[date_col], errors="coerce")
        y, m = d.dt.year, d.dt.month
    else:
        n = len(df)
        return np.full(n, NO_DATE, dtype=object), np.full(n, NO_DATE, dtype=object)
    ok = (y.notna() & m.notna()).to_numpy()
    ys = np.where(ok, y.fillna(0).astype(np.int64).astype(str), NO_DATE)
    ms = np.where(ok, m.fillna(0).astype(np.int64).map("{:02d}".format), NO_DATE)
    return np.asarray(ys, dtype=object), np.asarray(ms, dtype=object)


def write_part(
    df: pd.DataFrame,
    root: str | os.PathLike[str],
    part: int,
    date_col: str | None = "discharge_date",
    metadata: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Write one partition's rows under ``root/data`` (on a worker): one atomic file per
    year/month it holds. Returns ``[{"name": path relative to root, "rows": n}]``."""
    ys, ms = year_month(df, date_col)
    body = df.drop(columns=[c for c in ("year", "month") if c in df.columns])
    keys = pd.DataFrame({"y": ys, "m": ms})
    out = []
    for (y, m), idx in keys.groupby(["y", "m"], sort=True).indices.items():
        rel = f"{DATA}/year={y}/month={m}/{part_name(part)}"
        table = pa.Table.from_pandas(body.iloc[idx], preserve_index=False)
        if metadata:
            meta = dict(table.schema.metadata or {})
            meta.update({k.encode(): str(v).encode() for k, v in metadata.items()})
            table = table.replace_schema_metadata(meta)
        target = Path(root) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            pq.write_table(table, tmp)
        out.append({"name": rel, "rows": int(len(idx))})
    return out


class PartitionedOutput:
    """The driver's side of a partitioned output (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], fingerprint: str, writer: str):
        self.path = Path(path)
        self.folder = OutputFolder(path, fingerprint, owned=OWNED, writer=writer)
        self.rows = 0

    def open(self) -> PartitionedOutput:
        self.folder.open()
        return self

    @staticmethod
    def marker(part: int | str) -> str:
        """The marker's name: ``_parts/part-NNNNN.json`` for a numbered partition,
        ``_parts/KEY.json`` for a named unit (e.g. a Spark month folder)."""
        return f"_parts/part-{part:05d}.json" if isinstance(part, int) else f"_parts/{part}.json"

    def reusable_units(self, prefix: str) -> list[str]:
        """Keys of the named units (markers ``_parts/PREFIX*.json``) an earlier run with
        the same fingerprint finished; :meth:`done` then checks their files."""
        d = self.path / "_parts"
        names = sorted(f.name for f in d.glob(f"{prefix}*.json")) if d.is_dir() else []
        return [n[: -len(".json")] for n in names if self.folder.reusable(f"_parts/{n}")]

    def done(self, part: int | str) -> dict[str, Any] | None:
        """The marker of partition ``part`` (its files kept) when an earlier run with the
        same fingerprint finished it completely, else None."""
        name = self.marker(part)
        if not self.folder.reusable(name):
            return None
        try:
            rec = json.loads((self.path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        files = rec.get("files", [])
        if not all(self.folder.reusable(f["name"]) for f in files):
            return None
        for f in files:
            self.folder.keep(f["name"])
            self.rows += int(f["rows"])
        self.folder.keep(name)
        return rec

    def record(self, part: int | str, files: list[dict[str, Any]], extra: dict | None = None) -> None:
        """Record a partition's files (written by a worker), then its marker (with
        ``extra``, e.g. status counts, so a re-run that keeps the part still has them)."""
        for f in files:
            self.folder.record(f["name"])
            self.rows += int(f["rows"])
        with self.folder.file(self.marker(part)) as tmp:
            Path(tmp).write_text(
                json.dumps({"files": files, **dict(extra or {})}, indent=1), encoding="utf-8"
            )

    def adopt(self, unit: str, staged: str | os.PathLike[str], rel: str,
               status: str | None = None, extra: dict | None = None) -> dict[str, Any]:
        """Move the parquet files an engine wrote (and committed) into ``staged/rel``
        (``rel`` = ``year=Y/month=M``) to ``data/rel``, each by one rename (atomic on one
        file system), record them, then the unit's marker with their rows and ``status``
        counts (read back from the files, so a task retried by the engine never counts
        twice). Returns the marker's record."""
        src = Path(staged) / rel
        files: list[dict[str, Any]] = []
        counts: dict[str, int] = {}
        for f in sorted(src.iterdir()):
            if f.name.startswith((".", "_")):
                continue  # the engine's checksums and markers
            if not f.is_file() or f.suffix != ".parquet":
                from drgsim.errors import OutputError

                raise OutputError(f"{f}: not a parquet part; the engine wrote something "
                                  "this output cannot record")
            name = f"{DATA}/{rel}/{f.name}"
            pf = pq.ParquetFile(f)
            rows = int(pf.metadata.num_rows)
            if status is not None and rows:
                from drgsim.distributed.partition import status_counts

                for k, v in status_counts(pf.read(columns=[status]).column(0)
                                          .to_numpy(zero_copy_only=False)).items():
                    counts[k] = counts.get(k, 0) + v
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, target)
            files.append({"name": name, "rows": rows})
        rec = {**dict(extra or {}), **({"status_counts": counts} if status is not None else {})}
        self.record(unit, files, rec)
        return {"files": files, **rec}

    def commit(self, provenance: dict[str, str], info: dict[str, Any] | None = None) -> Path:
        """The provenance sidecar, then ``manifest.json`` last."""
        with self.folder.file(f"{DATA}/{PROVENANCE}") as tmp:
            Path(tmp).write_text(
                json.dumps(provenance, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
                encoding="utf-8",
            )
        return self.folder.commit({"rows": self.rows, **dict(info or {})})


def remove_staging(path: str | os.PathLike[str], pattern: str) -> None:
    """Remove staging folders (``pattern`` under ``path``) a killed run left behind."""
    p = Path(path)
    if p.is_dir():
        for d in p.glob(pattern):
            shutil.rmtree(d, ignore_errors=True)


def read_provenance(path: str | os.PathLike[str]) -> dict[str, str]:
    """The provenance sidecar of a partitioned output folder (``OUT`` or ``OUT/data``)."""
    p = Path(path)
    f = p / PROVENANCE if (p / PROVENANCE).is_file() else p / DATA / PROVENANCE
    return json.loads(f.read_text(encoding="utf-8"))


__all__ = [
    "DATA",
    "NO_DATE",
    "PROVENANCE",
    "PartitionedOutput",
    "read_provenance",
    "remove_staging",
    "write_part",
    "year_month",
]
