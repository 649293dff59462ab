"""Parquet writer settings for the streaming path (``drgsim group`` parquet -> parquet).

The writer is the slowest stage of ``drgsim group`` parquet -> parquet (it encodes every
pass-through column again), so its settings matter more than anything the grouper does:

- **zstd** at pyarrow's default level (1): ~10% more writer CPU than snappy or lz4, a
  file ~38% smaller, and the fastest end to end of the three (``benchmarks/bench_batch.py``
  compares them; figures in the README).
- **dictionary encoding only where it pays**: pyarrow dictionary-encodes every column by
  default and, for a column of mostly distinct values (case ids, diagnoses, amounts),
  builds a dictionary per row group only to give it up at the page-size limit. Columns
  whose first batch has few distinct values keep it; the others are written plain. On
  the synthetic region's 31 columns the writer's CPU per 1M rows went from 1.61 s to
  0.85 s, and the file from 54.2 to 46.5 MiB.
"""

from __future__ import annotations

import pyarrow as pa

PARQUET_COMPRESSION = "zstd"
# A column is dictionary-encoded when its first batch has at most this share of distinct
# values (and at most DICT_MAX_VALUES of them): such a dictionary is small and shrinks data.
DICT_MAX_SHARE = 0.10
DICT_MAX_VALUES = 1 << 16


def dictionary_columns(table: pa.Table) -> list[str]:
    """Columns worth dictionary-encoding, judged on ``table`` (the first batch)."""
    import pyarrow.compute as pc

    n = table.num_rows
    limit = min(DICT_MAX_VALUES, max(1, int(n * DICT_MAX_SHARE)))
    keep = []
    for i, f in enumerate(table.schema):
        t = f.type
        if pa.types.is_dictionary(t):
            keep.append(f.name)
            continue
        if pa.types.is_nested(t) or pa.types.is_boolean(t):
            continue
        try:
            distinct = pc.count_distinct(table.column(i), mode="all").as_py()
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            keep.append(f.name)  # pyarrow's default for a type we cannot count
            continue
        if distinct <= limit:
            keep.append(f.name)
    return keep


def parquet_write_options(first: pa.Table) -> dict:
    """``pq.ParquetWriter`` keyword arguments for a stream whose first batch is ``first``."""
    return {"compression": PARQUET_COMPRESSION, "use_dictionary": dictionary_columns(first)}
