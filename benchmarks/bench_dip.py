"""Benchmark DIP: building a catalogue from 3 history years in memory (target ≤ 5 s for
3 × 600k cases; reading parquet is not timed).

The synthetic history is generated once and cached as parquet (``--data``); each benchmark
reads it, then times only the in-memory work. Add a benchmark by writing a function
``bench_<name>(table, hospitals, args) -> list[str]`` and listing it in ``BENCHES``.

    python benchmarks/bench_dip.py                    # 3 years x 600k cases
    python benchmarks/bench_dip.py --rows 300000 --only build
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_lines  # noqa: E402

YEARS = (2021, 2022, 2023)


def history(rows: int, seed: int, data: Path):
    """The synthetic history (3 years) and its hospitals, read from the cache (generated once)."""
    import pyarrow.parquet as pq

    f = data / f"dip_history_{rows}_{seed}.parquet"
    fh = data / f"dip_hospitals_{rows}_{seed}.parquet"
    if not f.exists() or not fh.exists():
        from drgsim.output import atomic_path
        from drgsim.synth import SyntheticRegion

        t = time.perf_counter()
        reg = SyntheticRegion(rows, 120, YEARS, seed, 0.01, "chs_drg_11", max(1, os.cpu_count() or 1))
        with atomic_path(f) as tmp:
            pq.write_table(reg.discharges_table(), tmp)
        with atomic_path(fh) as tmp:
            pq.write_table(reg.hospitals_table(), tmp)
        print(f"generated {rows:,} rows in {time.perf_counter() - t:.1f} s -> {f}")
    return pq.read_table(f), pq.read_table(fh).to_pandas()


def _timed(fn: Callable[[], object], repeat: int) -> tuple[list[float], list[float], object]:
    """Wall and CPU seconds of each run (CPU time shows the work when the machine is busy)."""
    times, cpu, out = [], [], None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return times, cpu, out


def bench_build(table, hospitals, args) -> list[str]:
    """drgsim.dip.build on the whole history, in memory (the catalogue, not its files)."""
    from drgsim import dip

    dip.build(table.slice(0, 20_000), hospitals=hospitals)  # warm up (numba, imports)
    times, cpu, (cat, _) = _timed(lambda: dip.build(table, hospitals=hospitals), args.repeat)
    p = cat.packets
    core = p["kind"] == "core"
    share = p.loc[core, "n_cases"].sum() / max(1, p["n_cases"].sum())
    cost_line = next((ln for ln in cat.report.splitlines() if ln.startswith("cost in core")), "")
    return [
        f"build: {cost_line}",
        f"build: {table.num_rows:,} rows -> {len(p):,} packets ({int(core.sum()):,} core covering "
        f"{share:.1%} of cases, {int((~core).sum()):,} comprehensive), "
        f"{len(cat.levels):,} level means",
        f"build: best {min(times):.2f} s, median {statistics.median(times):.2f} s over "
        f"{len(times)} runs ({table.num_rows / min(times) / 1e6:.2f} M rows/s), CPU "
        f"{min(cpu):.2f} s (the hash of the history runs in a second thread); target ≤ 5 s "
        f"for 1.8M rows: {'met' if min(times) <= 5.0 * table.num_rows / 1_800_000 else 'NOT met'}",
    ]


BENCHES: dict[str, Callable] = {"build": bench_build}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_800_000, help="history rows over 3 years")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=None, choices=sorted(BENCHES))
    ap.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "drgsim-bench-dip"),
                    help="folder caching the generated history (parquet)")
    args = ap.parse_args(argv)
    for line in machine_lines():
        print(line)
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    table, hospitals = history(args.rows, args.seed, data)
    print(f"read {table.num_rows:,} rows in {time.perf_counter() - t:.1f} s (not timed below)")
    for name in args.only or list(BENCHES):
        for line in BENCHES[name](table, hospitals, args):
            print(line)


if __name__ == "__main__":
    main()
