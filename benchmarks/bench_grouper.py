"""Grouping performance on this machine: encoding, kernel, end to end, memory, CLI start.

Prints figures and the machine; asserts nothing (targets live in the README). Run:

    python benchmarks/bench_grouper.py              # 1M rows + 25M streamed
    python benchmarks/bench_grouper.py --big 0      # skip the 25M run
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))

from _machine import machine_lines  # noqa: E402
from _records import benchmark_records  # noqa: E402

from drgsim.codes import encode_field  # noqa: E402
from drgsim.grouper.core import load_scheme, run_kernel  # noqa: E402
from drgsim.records import fields_from_table  # noqa: E402


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def child_run(code: str) -> tuple[float, float]:
    """Run python code in a fresh process; (wall seconds, that process's peak RSS in MiB)."""
    # VmHWM is this process's own high-water mark; ru_maxrss would also count the parent's
    # RSS at fork time (Linux keeps it across exec), which made the figure the benchmark's.
    code += (";import resource,re;from pathlib import Path as _P;"
             "_s=_P('/proc/self/status');_m=_s.exists() and re.search(r'VmHWM:\\s+(\\d+)',"
             "_s.read_text());"
             "print('PEAK', int(_m.group(1)) if _m else "
             "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak = 0.0
    for line in proc.stdout.splitlines():
        if line.startswith("PEAK "):
            peak = int(line.split()[1]) / 1024
        else:
            print(line)
    return wall, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--big", type=int, default=25_000_000, help="rows of the streamed run (0: skip)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    n = args.rows
    for line in machine_lines():
        print(line)
    tmp = Path(tempfile.mkdtemp(prefix="drgsim-bench-"))
    table, source = benchmark_records(n, args.seed)
    print(f"records: {n:,} ({source})")
    src = tmp / "in.parquet"
    pq.write_table(table, src, row_group_size=1 << 20, compression="zstd")

    cs = load_scheme("chs_drg_11")
    f = fields_from_table(table)
    dx = encode_field(f.diagnoses, cs, threads=2)
    px = encode_field(f.procedures, cs, threads=2)
    res = run_kernel(cs, *dx, *px, f.ints, False, 2)  # warm (compiles if needed)
    print(f"grouped ok: {np.mean(res.status == 0):.2%}")
    print("\n== encoding codes (strings -> ids, diagnoses + procedures) ==")
    for th in (1, 2):
        t = best(lambda th=th: (encode_field(f.diagnoses, cs, threads=th),
                                encode_field(f.procedures, cs, threads=th)))
        print(f"  {th} thread(s): {n / t / 1e6:6.2f} M records/s   (target >= 5 on both cores)")
    t = best(lambda: fields_from_table(table))
    print(f"  integer fields from {table.column('sex').type}: {n / t / 1e6:6.2f} M records/s")
    print("\n== grouping kernel (ids -> groups) ==")
    for th in (1, 2):
        t = best(lambda th=th: run_kernel(cs, *dx, *px, f.ints, False, th))
        print(f"  {th} thread(s): {n / t / 1e6:6.2f} M records/s   (target >= 4 per thread, >= 8 on both)")

    print("\n== end to end, parquet -> parquet ==")
    from drgsim.grouper.stream import DEFAULT_BATCH_ROWS, group_file

    out = tmp / "out.parquet"
    group_file(src, out)
    t_e2e = best(lambda: group_file(src, out))
    grouped = pq.read_table(out).select(["mdc", "adrg", "drg", "status"])

    def io_floor() -> None:
        # read the same input and write an output of the same shape, without grouping
        pf = pq.ParquetFile(src, pre_buffer=False)  # as drgsim reads it
        writer = None
        start = 0
        for batch in pf.iter_batches(batch_size=DEFAULT_BATCH_ROWS):
            t = pa.Table.from_batches([batch])
            for name in grouped.column_names:
                t = t.append_column(name, grouped.column(name).slice(start, t.num_rows))
            start += t.num_rows
            if writer is None:
                writer = pq.ParquetWriter(tmp / "floor.parquet", t.schema, compression="zstd")
            writer.write_table(t)
        writer.close()

    t_floor = best(io_floor)
    print(f"  drgsim group:  {t_e2e:6.2f} s  ({n / t_e2e / 1e6:.2f} M records/s)")
    print(f"  I/O floor:     {t_floor:6.2f} s  (read + write the same shape and batches of "
          f"{DEFAULT_BATCH_ROWS:,} rows, no grouping)")
    print(f"  ratio:         {t_e2e / t_floor:6.2f}x   (target <= 1.6x)")
    wall, peak = child_run(
        "from drgsim.grouper.stream import group_file;"
        f"group_file({str(src)!r}, {str(tmp / 'out2.parquet')!r})")
    print(f"  fresh process: {wall:6.2f} s wall incl. start-up, peak RSS {peak:,.0f} MiB")

    print("\n== CLI start (cached kernels and compiled scheme) ==")
    tiny = tmp / "tiny.csv"
    tiny.write_text("case_id,sex,age_years,diagnoses,procedures\n1,1,50,I50.900,\n", encoding="utf-8")
    exe = str(Path(sys.executable).with_name("drgsim"))
    for label, cmd in (("drgsim --help", [exe, "--help"]),
                       ("drgsim group tiny.csv", [exe, "group", str(tiny), "-o",
                                                  str(tmp / "tiny_out.csv"), "--quiet"])):
        subprocess.run(cmd, check=True, capture_output=True)
        t = best(lambda cmd=cmd: subprocess.run(cmd, check=True, capture_output=True))
        print(f"  {label:<24} {t:5.2f} s   (target <= 1 s)")

    if args.big:
        print(f"\n== {args.big:,} rows streamed, parquet -> parquet ==")
        big = tmp / "big.parquet"
        writer = pq.ParquetWriter(big, table.schema, compression="zstd")
        left = args.big
        while left > 0:
            k = min(left, n)
            writer.write_table(table.slice(0, k), row_group_size=1 << 20)
            left -= k
        writer.close()
        print(f"  input: {big.stat().st_size / 2**20:,.0f} MiB ({args.big // n} copies of the "
              f"{n:,} records, row groups of 1M)")
        wall, peak = child_run(
            "from drgsim.grouper.stream import group_file;"
            f"s = group_file({str(big)!r}, {str(tmp / 'big_out.parquet')!r});"
            "print(f'  rows {s.rows:,} in {s.seconds:.1f} s: {s.rows / s.seconds / 1e6:.2f} M records/s')")
        print(f"  peak RSS {peak:,.0f} MiB (target <= 2048), wall {wall:.1f} s")
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
