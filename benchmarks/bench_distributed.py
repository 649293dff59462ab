"""Benchmark: one process against a distributed engine on the same synthetic region (issue 20).

For each engine: grouping (records/s, peak memory per worker, per-partition overhead) and
simulation (records/s of the simulated year, the shuffle by hospital that pricing needs,
peak memory per worker). The single process runs in a child (``drgsim group`` /
``drgsim.simulate``); Dask on a LocalCluster of ``--workers`` processes, one thread each.
Prints figures and the machine; not a test.

    python benchmarks/bench_distributed.py [--rows 200000] [--hospitals 40] [--workers 2]
                                           [--data DIR] [--engines single,dask,spark]
    python benchmarks/bench_distributed.py --rows 25000000      # the issue's size

Each engine is one function ``bench_<engine>(args, data) -> dict`` (Dask below; the Spark
block is kept apart for the spark adapter), so the engines share the data and the table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _machine import machine_lines  # noqa: E402

PY = sys.executable


def child_peak_mib() -> float:
    """Largest peak RSS of the children waited for so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def make_data(args) -> Path:
    """The synthetic region (generated once per size and seed, or --data)."""
    if args.data:
        return Path(args.data)
    root = Path(tempfile.gettempdir()) / f"drgsim-bench-dist-{args.rows}-{args.hospitals}"
    if not (root / "manifest.json").exists():
        import drgsim

        t = time.perf_counter()
        drgsim.synth.region(root, discharges=args.rows, hospitals=args.hospitals, seed=1)
        print(f"synthetic region: {args.rows:,} rows in {time.perf_counter() - t:.1f} s -> {root}")
    return root


def current_rows(data: Path) -> int:
    import pyarrow.dataset as ds

    d = ds.dataset(data / "discharges", partitioning="hive")
    year = max(int(f.name.split("=")[1]) for f in (data / "discharges").glob("year=*"))
    return d.count_rows(filter=ds.field("year") == year)


# ---------------------------------------------------------------------------- single process
def bench_single(args, data: Path) -> dict:
    """``drgsim group`` and ``drgsim.simulate`` in child processes (their peak RSS)."""
    out = Path(tempfile.mkdtemp()) / "grouped.parquet"
    env = {**os.environ}
    t = time.perf_counter()
    subprocess.run([PY, "-c", "from drgsim.cli import main; main()", "group",
                    str(data / "discharges"), "-o", str(out), "--quiet"], check=True, env=env,
                   capture_output=True)
    g_s = time.perf_counter() - t
    g_peak = child_peak_mib()
    code = (
        "import time, warnings, json; warnings.simplefilter('ignore'); import drgsim\n"
        f"t = time.perf_counter(); drgsim.simulate({str(out)!r}, "
        f"hospitals={str(data / 'hospitals.parquet')!r}, region={str(data / 'region.parquet')!r})\n"
        "print(json.dumps({'s': time.perf_counter() - t}))\n"
    )
    r = subprocess.run([PY, "-c", code], check=True, env=env, capture_output=True, text=True)
    s_s = json.loads(r.stdout.strip().splitlines()[-1])["s"]
    return {"group_s": g_s, "group_peak_mib": g_peak, "simulate_s": s_s,
            "simulate_peak_mib": child_peak_mib(), "workers": 1}


# ---------------------------------------------------------------------------- Dask
def _worker_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_dask(args, data: Path) -> dict:
    """``drgsim.dask`` on a LocalCluster: scheme scatter + kernel warm-up, grouping to
    partitioned parquet, the shuffle by hospital alone, then ``simulate``."""
    from distributed import Client, LocalCluster, wait

    import drgsim.dask as dg
    from drgsim.output import fingerprint

    res: dict = {"workers": args.workers}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lc = LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None)
    with lc, Client(lc) as client:
        t = time.perf_counter()
        dg.scheme_on_workers(client, "chs_drg_11")
        res["warm_s"] = time.perf_counter() - t
        ddf = dg.read_parquet(data / "discharges")
        res["partitions"] = ddf.npartitions
        t = time.perf_counter()
        ddf.map_partitions(len).compute()
        res["per_partition_ms"] = (time.perf_counter() - t) / ddf.npartitions * 1000
        out = Path(tempfile.mkdtemp()) / "grouped"
        t = time.perf_counter()
        dg.group_to_parquet(ddf, out, fingerprint(options={"bench": time.time()}), client=client)
        res["group_s"] = time.perf_counter() - t
        res["group_peak_mib"] = max(client.run(_worker_peak_mib).values())
        g = dg.read_parquet(out)
        t = time.perf_counter()
        shuffled = client.persist(g.shuffle("hospital_id"))
        wait(shuffled)
        res["shuffle_s"] = time.perf_counter() - t
        del shuffled
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base = dg.prepare(g, hospitals=data / "hospitals.parquet",
                              region=data / "region.parquet", grouped=True, client=client)
            tables = dg.settle(base)
            len(tables["cases"])
        res["simulate_s"] = time.perf_counter() - t
        print("  dask simulate phases (s): " + ", ".join(
            f"{k} {v:.1f}" for k, v in base._cache["timings"].items()))
        res["simulate_peak_mib"] = max(client.run(_worker_peak_mib).values())
    return res


# ---------------------------------------------------------------------------- Spark
def _hwm_mib(pid: int | str = "self") -> float:
    """A process's own peak RSS (VmHWM, MiB): ru_maxrss would carry the parent's RSS
    across fork+exec (see bench_grouper.child_run)."""
    import re

    m = re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) / 1024 if m else float("nan")


def _spark_worker_peaks(batches):
    """In a Spark task: this Python worker's pid and own peak RSS (VmHWM)."""
    import pyarrow as pa

    for _ in batches:
        pass
    yield pa.RecordBatch.from_pydict({"pid": [os.getpid()], "mib": [_hwm_mib()]})


def _spark_count(batches):
    import pyarrow as pa

    yield pa.RecordBatch.from_pydict({"n": [sum(b.num_rows for b in batches)]})


def _spark_run(data: str, workers: int) -> dict:
    """The Spark block's body, in its own process (so its VmHWM is the driver's)."""
    os.environ.setdefault("PYSPARK_PYTHON", PY)
    from pyspark import cloudpickle
    from pyspark.sql import SparkSession

    from drgsim import spark as dsp

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers lack benchmarks/
    data_p = Path(data)
    s = (SparkSession.builder.master(f"local[{workers}]").config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", str(2 * workers)).getOrCreate())
    s.sparkContext.setLogLevel("ERROR")

    def peaks() -> float:
        p = (s.range(0, 8 * workers, numPartitions=8 * workers)
             .mapInArrow(_spark_worker_peaks, "pid long, mib double").toPandas())
        return float(p.groupby("pid")["mib"].max().max())

    res: dict = {"workers": workers}
    sdf = s.read.parquet(str(data_p / "discharges"))
    t = time.perf_counter()
    dsp.group(sdf.limit(100)).count()  # scheme broadcast, kernels loaded per worker
    res["warm_s"] = time.perf_counter() - t
    n = sdf.rdd.getNumPartitions()
    res["partitions"] = n
    t = time.perf_counter()
    sdf.select("case_id").mapInArrow(_spark_count, "n long").collect()
    res["per_partition_ms"] = (time.perf_counter() - t) / n * 1000
    out = Path(tempfile.mkdtemp()) / "grouped"
    t = time.perf_counter()
    dsp.group_to(sdf, out)
    res["group_s"] = time.perf_counter() - t
    res["group_peak_mib"] = peaks()
    g = dsp.read_parquet(out)  # OUT/data: the parts (OUT also holds manifest.json)
    t = time.perf_counter()
    g.repartition("hospital_id").write.format("noop").mode("overwrite").save()
    res["shuffle_s"] = time.perf_counter() - t
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = dsp.prepare(g, hospitals=data_p / "hospitals.parquet",
                           region=data_p / "region.parquet", grouped=True)
        res["prepare_s"] = time.perf_counter() - t
        dsp.settle(base)["cases"].count()
    res["simulate_s"] = time.perf_counter() - t
    res["simulate_peak_mib"] = peaks()
    res["jvm_peak_mib"] = _hwm_mib(s._jvm.java.lang.ProcessHandle.current().pid())
    s.stop()
    res["driver_peak_mib"] = _hwm_mib()
    return res


def bench_spark(args, data: Path) -> dict:
    """``drgsim.spark`` on local[workers], in a child process: kernels warmed per worker,
    grouping to partitioned parquet, the shuffle by hospital alone, then ``prepare``
    (calibration on the driver) and ``settle``. Peaks from each process's own VmHWM:
    Python workers (in a task), the JVM (driver and local executor), the driver."""
    code = (f"import sys, json; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "import bench_distributed as b; "
            f"print('RESULT ' + json.dumps(b._spark_run({str(data)!r}, {args.workers})))")
    r = subprocess.run([PY, "-c", code], check=True, capture_output=True, text=True)
    line = next(x for x in r.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


ENGINES = {"single": bench_single, "dask": bench_dask, "spark": bench_spark}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--hospitals", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data", default=None, help="an existing synthetic region folder")
    ap.add_argument("--engines", default=",".join(ENGINES))
    args = ap.parse_args()
    for line in machine_lines():
        print(line)
    data = make_data(args)
    n_cur = current_rows(data)
    print(f"rows {args.rows:,} (simulated year {n_cur:,}), hospitals {args.hospitals}")
    rows = []
    for name in args.engines.split(","):
        fn = ENGINES.get(name) or globals().get(f"bench_{name}")
        if fn is None:
            print(f"{name}: no benchmark here")
            continue
        r = fn(args, data)
        rows.append((name, r))
        print(f"{name}: " + json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                         for k, v in r.items()}))
    print(f"\n{'engine':<8} {'group rec/s':>12} {'peak/worker':>12} {'simulate rec/s':>15} "
          f"{'peak/worker':>12} {'shuffle s':>10} {'ms/partition':>13}")
    for name, r in rows:
        print(f"{name:<8} {args.rows / r['group_s']:>12,.0f} {r['group_peak_mib']:>9,.0f} MiB "
              f"{args.rows / r['simulate_s']:>15,.0f} {r['simulate_peak_mib']:>9,.0f} MiB "
              f"{r.get('shuffle_s', float('nan')):>10.1f} "
              f"{r.get('per_partition_ms', float('nan')):>13.1f}")
    print("simulate rec/s counts every row read (history years included), as group does")


if __name__ == "__main__":
    main()
