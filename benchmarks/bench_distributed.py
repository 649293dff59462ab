"""Distributed engines against the single-process path: records/s, per-partition overhead,
peak memory, and the shuffle-by-hospital cost of pricing.

Prints figures and the machine; asserts nothing. Each engine is a separate block with
its own function; ``main()`` runs every block whose engine is installed. Run:

    python benchmarks/bench_distributed.py                 # 200k rows
    python benchmarks/bench_distributed.py --rows 1000000 --only spark

The input is generated once by the synthetic region generator and cached under
``--cache-dir`` (default ``$TMPDIR/drgsim-bench-cache``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _machine import machine_lines  # noqa: E402


def region_dir(rows: int, cache: Path) -> Path:
    """A synthetic region of ``rows`` discharges over two years (cached)."""
    from drgsim import synth

    out = cache / f"distributed-region-{rows}"
    if not (out / "hospitals.parquet").exists():
        synth.region(out, discharges=rows, hospitals=max(6, rows // 5000),
                     years=(2022, 2023), seed=5)
    return out


def _hwm_mib(pid: int | str = "self") -> float:
    """A process's own peak RSS (VmHWM), MiB: ru_maxrss would carry the parent's across
    fork+exec (benchmarks/bench_grouper.py child_run)."""
    import re

    m = re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) / 1024 if m else float("nan")


def _in_child(call: str, rows: int, cache: Path) -> None:
    """Run ``bench_distributed.<call>`` in a fresh Python (its own peak, printed)."""
    from bench_grouper import child_run

    code = (f"import sys;sys.path.insert(0,{str(Path(__file__).parent)!r});"
            f"import bench_distributed as b;from pathlib import Path;"
            f"b.{call}(b.region_dir({rows},Path({str(cache)!r})),{rows})")
    _, peak = child_run(code)
    print(f"{call.split('_')[1]:<7} peak RSS {peak:>12,.0f} MiB (that process, VmHWM)")


# ----------------------------------------------------------------------------- single


def bench_single(reg: Path, rows: int) -> None:
    """The single-process path: drgsim.group and drgsim.simulate on the same data."""
    import pyarrow.dataset as ds

    import drgsim

    table = ds.dataset(reg / "discharges", partitioning="hive").to_table()
    drgsim.group(table.slice(0, 1000))  # kernels loaded
    t0 = time.perf_counter()
    drgsim.group(table)
    g = time.perf_counter() - t0
    base = drgsim.prepare(reg / "discharges", hospitals=reg / "hospitals.parquet",
                          region=reg / "region.parquet")
    t0 = time.perf_counter()
    drgsim.simulate(reg / "discharges", weights=base.w_df, hospitals=reg / "hospitals.parquet",
                    region=reg / "region.parquet")
    s = time.perf_counter() - t0
    print(f"single  group    {rows / g:>12,.0f} records/s  ({g:.2f} s)")
    print(f"single  simulate {s:>12.2f} s (read, prepare, price, settle; weights given)")
    base.w_df.to_parquet(reg / "weights-bench.parquet")  # the Spark block reuses them


# ----------------------------------------------------------------------------- spark


def _worker_peaks(batches):
    """In a Spark task: this Python worker's pid and own peak RSS (VmHWM)."""
    import os

    import pyarrow as pa

    for _ in batches:
        pass
    yield pa.RecordBatch.from_pydict({"pid": [os.getpid()], "mib": [_hwm_mib()]})


def bench_spark(reg: Path, rows: int) -> None:
    """Spark local[2]: group to partitioned parquet, per-partition overhead, simulate
    (shuffle by hospital, driver settlement); peak RSS of the JVM and of each Python
    worker from their own VmHWM (the driver's is printed by the caller)."""
    import pandas as pd

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark import cloudpickle
    from pyspark.sql import SparkSession

    from drgsim import spark as dsp

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers lack benchmarks/
    s = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "4").getOrCreate())
    s.sparkContext.setLogLevel("ERROR")
    sdf = s.read.parquet(str(reg / "discharges"))
    dsp.group(sdf.limit(100)).count()  # workers warm: the scheme broadcast and kernels loaded
    with tempfile.TemporaryDirectory() as tmp:
        times = {}
        for parts in (2, 2, 64):  # the first run at 2 warms the reading path
            t0 = time.perf_counter()
            dsp.group_to(sdf.repartition(parts), Path(tmp) / f"g{parts}")
            times[parts] = time.perf_counter() - t0
        print(f"spark   group    {rows / times[2]:>12,.0f} records/s  ({times[2]:.2f} s, "
              "2 partitions, to year=/month= parquet)")
        per = (times[64] - times[2]) / 62
        print(f"spark   per-partition overhead {per * 1000:>8,.0f} ms "
              f"(64 vs 2 partitions: {times[64]:.2f} s)")
        w = pd.read_parquet(reg / "weights-bench.parquet")
        t0 = time.perf_counter()
        base = dsp.prepare(sdf, weights=w, hospitals=reg / "hospitals.parquet",
                           region=reg / "region.parquet")
        t1 = time.perf_counter()
        res = dsp.settle(base)
        dsp.write_parquet(res["cases"], Path(tmp) / "cases", ("year", "month"))
        t2 = time.perf_counter()
        print(f"spark   simulate {t2 - t0:>12.2f} s (prepare: scan, shuffle by hospital, "
              f"price, reduce {t1 - t0:.2f} s; settle, price again and pay, cases to "
              f"parquet {t2 - t1:.2f} s; weights given)")
    peaks = (sdf.repartition(8).mapInArrow(_worker_peaks, "pid long, mib double")
             .toPandas().groupby("pid")["mib"].max())
    jvm = s._jvm.java.lang.ProcessHandle.current().pid()
    print(f"spark   peak RSS {_hwm_mib(jvm):>12,.0f} MiB JVM (driver and local executor), "
          f"{peaks.max():,.0f} MiB largest of {len(peaks)} Python worker(s)")
    s.stop()


def _have(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--only", choices=("single", "spark"), default=None)
    ap.add_argument("--cache-dir", type=Path,
                    default=Path(tempfile.gettempdir()) / "drgsim-bench-cache")
    a = ap.parse_args(argv)
    a.cache_dir.mkdir(parents=True, exist_ok=True)
    for line in machine_lines():
        print(line)
    reg = region_dir(a.rows, a.cache_dir)
    print(f"{a.rows:,} rows over 2 years, {reg}")
    _in_child("bench_single", a.rows, a.cache_dir)  # also writes the weights Spark reuses
    if a.only in (None, "spark"):
        if _have("pyspark") and os.system("java -version >/dev/null 2>&1") == 0:
            _in_child("bench_spark", a.rows, a.cache_dir)
        else:
            print("spark   skipped: needs pyspark and a Java runtime")


if __name__ == "__main__":
    main()
