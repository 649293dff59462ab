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
import resource
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


def _rss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


# ----------------------------------------------------------------------------- single


def bench_single(reg: Path, rows: int) -> dict[str, float]:
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
    print(f"single  peak RSS {_rss_mib(resource.RUSAGE_SELF):>12,.0f} MiB")
    return {"w": base.w_df}


# ----------------------------------------------------------------------------- spark


def bench_spark(reg: Path, rows: int, weights=None) -> None:
    """Spark local[2]: group to partitioned parquet, per-partition overhead, simulate."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from drgsim import spark as dsp

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
        if weights is not None:
            t0 = time.perf_counter()
            res = dsp.simulate(sdf, weights=weights, hospitals=reg / "hospitals.parquet",
                               region=reg / "region.parquet")
            res.write(Path(tmp) / "cases")
            t = time.perf_counter() - t0
            print(f"spark   simulate {t:>12.2f} s (scan, 2 shuffles by hospital, driver "
                  "settlement, cases to parquet)")
    s.stop()
    print(f"spark   peak RSS {_rss_mib(resource.RUSAGE_SELF):>12,.0f} MiB driver, "
          f"{_rss_mib(resource.RUSAGE_CHILDREN):,.0f} MiB largest child (JVM or Python worker)")


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
    single = bench_single(reg, a.rows) if a.only in (None, "single", "spark") else {}
    if a.only in (None, "spark"):
        if _have("pyspark") and os.system("java -version >/dev/null 2>&1") == 0:
            bench_spark(reg, a.rows, single.get("w"))
        else:
            print("spark   skipped: needs pyspark and a Java runtime")


if __name__ == "__main__":
    main()
