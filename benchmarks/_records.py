"""Benchmark records: drawn from the synthetic region generator."""

from __future__ import annotations

import pyarrow as pa


def benchmark_records(n: int, seed: int = 1, text: bool = False) -> tuple[pa.Table, str]:
    """Records for grouping benchmarks: the synthetic region generator (typed parquet-style
    columns, or CSV-style text with ``text=True``)."""
    from drgsim.synth import discharges

    kind = "text" if text else "typed"
    return discharges(n, seed=seed, text=text), f"synthetic region generator, {kind} columns"
