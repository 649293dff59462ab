"""Input side: peak memory of a folder of monthly files against one file, and the cost of
the CSV pre-scan (encoding + structure) that runs before any output.

Prints figures and the machine; asserts nothing. Run:

    python benchmarks/bench_inputs.py                # 2M rows, 12 files vs 1 file; 1M-row CSV
    python benchmarks/bench_inputs.py --rows 5000000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))

from _machine import machine_lines  # noqa: E402
from _records import benchmark_records  # noqa: E402
from bench_grouper import child_run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000, help="rows for the memory runs")
    ap.add_argument("--csv-rows", type=int, default=1_000_000, help="rows of the pre-scan CSV")
    args = ap.parse_args()
    for line in machine_lines():
        print(line)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        base, how = benchmark_records(min(args.rows, 200_000))
        per = args.rows // 12
        month = pa.concat_tables([base] * (per // base.num_rows + 1)).slice(0, per)
        for m in range(1, 13):
            f = d / "months" / f"month={m:02d}" / "part-0.parquet"
            f.parent.mkdir(parents=True)
            pq.write_table(month, f)
        pq.write_table(pa.concat_tables([month] * 12), d / "one.parquet")
        print(f"records: {how}; {per * 12:,} rows as 12 monthly files and as one file")
        for name in ("months", "one.parquet"):
            code = (f"from drgsim.grouper.stream import group_file;"
                    f"group_file({str(d / name)!r}, {str(d / 'out.parquet')!r})")
            wall, peak = child_run(code)
            print(f"  group {name:<12} peak RSS {peak:7,.0f} MiB  wall {wall:6.1f} s")
        csv = d / "m.csv"
        pacsv.write_csv(pa.concat_tables([month] * (args.csv_rows // per + 1))
                        .slice(0, args.csv_rows), csv)
        from drgsim.inputs.csvscan import scan_csv

        scan_csv(csv)  # compile / warm the page cache
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            scan_csv(csv)
            times.append(time.perf_counter() - t0)
        size = csv.stat().st_size / 2**20
        print(f"CSV pre-scan: {args.csv_rows:,} rows, {size:,.0f} MiB: best {min(times):.2f} s "
              f"({size / min(times):,.0f} MiB/s, one core)")


if __name__ == "__main__":
    main()
