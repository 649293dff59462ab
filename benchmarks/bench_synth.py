"""Benchmark the synthetic region generator: rows/s and peak memory, in memory and to parquet.

Each case runs in its own subprocess so that its peak RSS (``ru_maxrss``) is its own.

    python benchmarks/bench_synth.py                      # 1M and 25M rows
    python benchmarks/bench_synth.py --rows 1000000 --workers 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_lines  # noqa: E402


def _child(mode: str, rows: int, workers: int, out: str) -> None:
    """Run one case and print a JSON line (runs in the subprocess)."""
    import resource

    import drgsim.synth as S

    if workers <= 0:  # the defaults: 2 threads in memory; 1 generating + 1 writing to parquet
        workers = min(2, os.cpu_count() or 1) if mode == "memory" else max(
            1, (os.cpu_count() or 1) - 1)
    reg = S.SyntheticRegion(rows, seed=1, workers=workers)
    t = time.perf_counter()
    reg.catalogue  # noqa: B018 - build (and calibrate) the case-mix catalogue first
    catalogue_s = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    if mode == "memory":
        n = 0
        for _, table in reg.iter_blocks():
            n += table.num_rows
    else:
        n = S.write_region(reg, out).rows
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size = 0
    if mode == "parquet":
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    print(json.dumps({"mode": mode, "rows": n, "workers": workers, "wall_s": wall,
                      "cpu_s": cpu, "catalogue_s": catalogue_s, "peak_rss_mib": peak_mib,
                      "bytes": size}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="*", default=[1_000_000, 25_000_000])
    ap.add_argument("--workers", type=int, default=None, help="generator threads (default: 2 in memory, 1 + a writer thread for parquet)")
    ap.add_argument("--modes", nargs="*", default=["memory", "parquet"])
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, rows, workers, out = args.child
        _child(mode, int(rows), int(workers), out)
        return
    workers = args.workers if args.workers is not None else 0
    for line in machine_lines():
        print(line)
    for rows in args.rows:
        for mode in args.modes:
            out = tempfile.mkdtemp(prefix="bench_synth_")
            try:
                res = subprocess.run(
                    [sys.executable, __file__, "--child", mode, str(rows), str(workers), out],
                    check=True, capture_output=True, text=True)
            finally:
                shutil.rmtree(out, ignore_errors=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"{mode:8s} rows={r['rows']:>11,} workers={r['workers']} "
                  f"wall={r['wall_s']:7.2f}s  {r['rows'] / r['wall_s']:>11,.0f} rows/s  "
                  f"cpu={r['cpu_s']:7.2f}s ({r['rows'] / r['cpu_s']:>11,.0f} rows/cpu-s)  "
                  f"peak RSS={r['peak_rss_mib']:7.0f} MiB  catalogue={r['catalogue_s']:.2f}s"
                  + (f"  size={r['bytes'] / 2**20:,.0f} MiB" if r["bytes"] else ""),
                  flush=True)
    print("load average at end:", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
