"""Benchmark: one process against Dask local and Spark local on the same data (issue 20).

One command prints, with the machine, for each engine (``single``: this machine's path,
``dask``: a LocalCluster of ``--workers`` processes × 1 thread, ``spark``: local[workers]):

- **group**: ``--rows`` discharges from month-partitioned parquet on disk (the synthetic
  region, year=/month=) grouped to parquet on disk — ``drgsim group`` (the CLI's streaming
  path, one output file) / ``drgsim.dask.group_to_parquet`` / ``drgsim.spark.group_to``
  (year=/month= parts): wall time, records/s, partitions, peak RSS of the driver and of
  each worker process;
- **overhead**: the fixed cost per partition, fitted from the same ``--overhead-rows`` rows
  grouped as 2 and as 64 files (one partition per file on every engine);
- **price**: simulate (given weights, so calibration is not in the figure) ``--price-rows``
  grouped discharges (2024 and 2025, 2025 simulated): wall time, the shuffle by hospital,
  price + cells + settle, records/s, peak RSS per process, bytes per row;
- a 300M-row-year sizing derived from those per-row costs, labelled as an extrapolation.

    python benchmarks/bench_distributed.py                       # smoke: 200k rows, temp dir
    python benchmarks/bench_distributed.py --rows 25000000 --price-rows 1000000,5000000 \\
        --data-root /work/benchdata --budget 2133 --timeout 900 --spark-memory 8g
                                                    # the issue's size (README, Scale-out)

Data are generated once under ``--data-root`` and reused (``drgsim.synth.region``, seed 1;
see ``make_data``). Each engine × phase runs in its own child process (its own peak
memory, killed with its workers after ``--timeout`` s or when ``--budget`` s are spent);
figures from phases that finished are printed, the others say so. Peak memory is sampled
from /proc (psutil, every 0.2 s, and each process's VmHWM, reset with
``/proc/PID/clear_refs`` at the start of a phase). Prints figures only; not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _machine import machine_lines  # noqa: E402

PY = sys.executable
PRICE_YEARS = (2024, 2025)  # the simulated year and the year before it (readmission look-back)
WEIGHTS_ROWS = 400_000  # a separate small region calibrates the given weights once
OVERHEAD_PARTS = (2, 64)
MIB = 2**20


def log(msg: str) -> None:
    print(msg, flush=True)


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------- data
def _region_once(path: Path, **kw) -> Path:
    """``drgsim.synth.region`` into ``path`` unless it is complete (manifest.json), written
    beside it and renamed, so a killed generation is never reused."""
    if (path / "manifest.json").exists():
        return path
    import drgsim

    tmp = path.parent / f".{path.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    t = time.perf_counter()
    drgsim.synth.region(tmp, seed=kw.pop("seed", 1), **kw)
    os.replace(tmp, path)
    log(f"  generated {path.name}: {kw} in {time.perf_counter() - t:.1f} s")
    return path


def _cli(*argv: str) -> None:
    """``drgsim ARGV`` in a child process (data preparation only, not timed)."""
    subprocess.run([PY, "-c", "from drgsim.cli import main; main()", *argv], check=True,
                   capture_output=True)


def make_data(args) -> dict[str, Path]:
    """Every input, generated once under ``--data-root`` and reused:

    - ``group-N``: ``synth.region(N, hospitals, seed=1)``, 2022-2025, one parquet file per
      month (year=/month=), 1% dirty rows;
    - ``price-N``: ``synth.region(N, hospitals, years=2024-2025, seed=1)``, grouped once with
      ``drgsim group`` and rewritten as year=/month= parquet (``grouped/``);
    - ``weights.parquet``: ``drgsim calibrate --year 2025`` on a separate 400k-row region
      (seed 2), so pricing takes given weights;
    - ``overhead-R-K``: the first R rows of ``group-N`` as K equal files (no hive keys).
    """
    import pyarrow.dataset as ds

    root = Path(args.data_root or Path(tempfile.gettempdir()) / "drgsim-bench-dist")
    root.mkdir(parents=True, exist_ok=True)
    sfx = "" if args.hospitals == 120 else f"-h{args.hospitals}"
    out = {"root": root}
    out["group"] = _region_once(root / f"group-{args.rows}{sfx}", discharges=args.rows,
                                hospitals=args.hospitals)
    out["price"] = {}
    for n in args.price_rows:
        price = _region_once(root / f"price-{n}{sfx}", discharges=n, hospitals=args.hospitals,
                             years=PRICE_YEARS)
        grouped = price / "grouped"
        if not grouped.exists():
            t = time.perf_counter()
            one = price / "grouped.parquet"
            _cli("group", str(price / "discharges"), "-o", str(one), "--quiet")
            tmp = price / ".grouped.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            ds.write_dataset(ds.dataset(one), tmp, format="parquet",
                             partitioning=["year", "month"], partitioning_flavor="hive",
                             max_rows_per_file=4_000_000)
            os.replace(tmp, grouped)
            one.unlink()
            log(f"  grouped {price.name} -> grouped/ in {time.perf_counter() - t:.1f} s")
        out["price"][n] = price
    w = root / f"weights{sfx}.parquet"
    if not w.exists():
        src = _region_once(root / f"weights-src-{WEIGHTS_ROWS}{sfx}", discharges=WEIGHTS_ROWS,
                           hospitals=args.hospitals, seed=2)
        g = src / "grouped.parquet"
        if not g.exists():
            _cli("group", str(src / "discharges"), "-o", str(g), "--quiet")
        _cli("calibrate", str(g), "--year", str(PRICE_YEARS[-1]), "-o", str(w))
        log(f"  calibrated {w.name} on {src.name}")
    out["weights"] = w
    n = min(args.overhead_rows, args.rows)
    for k in OVERHEAD_PARTS:
        d = root / f"overhead-{n}-{k}{sfx}"
        out[f"overhead-{k}"] = d
        if d.exists():
            continue
        import pyarrow.parquet as pq

        t = ds.dataset(out["group"] / "discharges", partitioning="hive").head(n)
        t = t.drop_columns([c for c in ("year", "month") if c in t.column_names])
        tmp = root / f".{d.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        step = -(-n // k)
        for i in range(k):
            pq.write_table(t.slice(i * step, step), tmp / f"part-{i:03d}.parquet")
        os.replace(tmp, d)
    return out


def rows_of(path: Path) -> int:
    import pyarrow.dataset as ds

    return ds.dataset(path, partitioning="hive").count_rows()


def largest_hospital(path: Path) -> int:
    """Rows of the largest hospital (what one hospital partition holds)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    h = ds.dataset(path, partitioning="hive").to_table(columns=["hospital_id"])["hospital_id"]
    return int(pc.max(pc.value_counts(h).field("counts")).as_py())


# ---------------------------------------------------------------------------- peak memory
def _hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Peaks:
    """Peak RSS of every process in this process's tree (driver, workers, JVM): psutil's
    RSS every ``interval`` s and each process's own VmHWM; :meth:`reset` starts a phase
    (``clear_refs`` 5 resets VmHWM to the current RSS, recorded as the process's base)."""

    def __init__(self, interval: float = 0.2) -> None:
        import psutil

        self.psutil = psutil
        self.me = psutil.Process()
        self.roles: dict[int, str] = {}
        self.seen: dict[int, dict] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.interval = interval
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def role(self, p) -> str:
        if p.pid in self.roles:
            return self.roles[p.pid]
        if p.pid == self.me.pid:
            return "driver"
        try:
            cmd = " ".join(p.cmdline())
            name = p.name()
        except self.psutil.Error:
            return "other"
        if "java" in name:
            return "jvm"
        if "pyspark.daemon" in cmd or "pyspark.worker" in cmd:
            par = p.parent()
            return "py-daemon" if par is not None and "java" in par.name() else "worker"
        return "other"

    def _tree(self) -> list:
        try:
            return [self.me, *self.me.children(recursive=True)]
        except self.psutil.Error:
            return [self.me]

    def poll(self) -> None:
        for p in self._tree():
            try:
                rss = p.memory_info().rss
                hwm = _hwm_kib(p.pid) * 1024
            except (self.psutil.Error, OSError):
                continue
            with self.lock:
                rec = self.seen.get(p.pid)
                if rec is None:
                    rec = self.seen[p.pid] = {"role": self.role(p), "peak": 0, "base": rss}
                rec["peak"] = max(rec["peak"], rss, hwm)

    def _loop(self) -> None:
        while not self.stop.wait(self.interval):
            self.poll()

    def reset(self) -> None:
        for p in self._tree():
            try:
                Path(f"/proc/{p.pid}/clear_refs").write_text("5")
            except OSError:
                pass
        with self.lock:
            self.seen = {}
        self.poll()

    def report(self) -> dict[str, list[dict]]:
        """Per role, per process: peak and base (MiB)."""
        self.poll()
        out: dict[str, list[dict]] = {}
        with self.lock:
            for pid, r in sorted(self.seen.items()):
                out.setdefault(r["role"], []).append(
                    {"pid": pid, "peak_mib": round(r["peak"] / MIB), "base_mib":
                     round(r["base"] / MIB)})
        return out


def emit(**kw) -> None:
    """A figure for the parent (one JSON line)."""
    print("RESULT " + json.dumps(kw), flush=True)


# ---------------------------------------------------------------------------- single
def _cli_inproc(*argv: str) -> None:
    from drgsim.cli import main

    main(list(argv), standalone_mode=False)


def single_group(args, data, peaks: Peaks) -> None:
    """``drgsim group FOLDER -o OUT.parquet`` (the CLI's streaming path), in this process."""
    out = Path(tempfile.mkdtemp(dir=args.scratch))
    _cli_inproc("group", str(data["overhead-2"]), "-o", str(out / "warm.parquet"), "--quiet")
    peaks.reset()
    t = time.perf_counter()
    _cli_inproc("group", str(data["group"] / "discharges"), "-o", str(out / "g.parquet"),
                "--quiet")
    emit(phase="group", s=time.perf_counter() - t, rows=args.rows,
         partitions=len(list((data["group"] / "discharges").rglob("*.parquet"))),
         peaks=peaks.report(), note="one output file; --threads default (all cores)")
    shutil.rmtree(out, ignore_errors=True)


def single_overhead(args, data, peaks: Peaks) -> None:
    out = Path(tempfile.mkdtemp(dir=args.scratch))
    _cli_inproc("group", str(data["overhead-2"]), "-o", str(out / "warm.parquet"), "--quiet")
    for k in OVERHEAD_PARTS:
        best = float("inf")
        for r in range(args.repeat):
            t = time.perf_counter()
            _cli_inproc("group", str(data[f"overhead-{k}"]), "-o", str(out / f"{k}-{r}.parquet"),
                        "--quiet")
            best = min(best, time.perf_counter() - t)
        emit(phase="overhead", parts=k, s=best)
    shutil.rmtree(out, ignore_errors=True)


def single_price(args, data, peaks: Peaks) -> None:
    """``drgsim.prepare`` + ``.simulate()`` (what ``drgsim.simulate`` does), timed apart."""
    import drgsim
    from drgsim.settlement.simulate import read_table

    p = data["price"][args.size]
    peaks.reset()
    t0 = time.perf_counter()
    df, _ = read_table(p / "grouped")
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = drgsim.prepare(df, weights=data["weights"], hospitals=p / "hospitals.parquet",
                              region=p / "region.parquet", grouped=True)
        t2 = time.perf_counter()
        tables = base.simulate()
    t3 = time.perf_counter()
    emit(phase="price", s=t3 - t0, rows=len(df), simulated=len(tables["cases"]),
         phases={"read": t1 - t0, "prepare (price + cells)": t2 - t1, "settle": t3 - t2},
         largest_hospital=largest_hospital(p / "grouped"),
         shuffle_s=0.0, peaks=peaks.report())


# ---------------------------------------------------------------------------- Dask
def _dask_cluster(args):
    from distributed import Client, LocalCluster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lc = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None)
    return lc, Client(lc)


def _dask_setup(args, peaks: Peaks, client) -> None:
    import drgsim.dask as dg

    for pid in client.run(os.getpid).values():
        peaks.roles[pid] = "worker"
    t = time.perf_counter()
    dg.scheme_on_workers(client, "chs_drg_11")
    emit(phase="warm", s=time.perf_counter() - t)


def dask_group(args, data, peaks: Peaks) -> None:
    import drgsim.dask as dg
    from drgsim.output import fingerprint

    lc, client = _dask_cluster(args)
    with lc, client:
        _dask_setup(args, peaks, client)
        ddf = dg.read_parquet(data["group"] / "discharges")
        out = Path(tempfile.mkdtemp(dir=args.scratch)) / "grouped"
        peaks.reset()
        t = time.perf_counter()
        res = dg.group_to_parquet(ddf, out, fingerprint(options={"t": time.time()}),
                                  client=client)
        emit(phase="group", s=time.perf_counter() - t, rows=res["rows"],
             partitions=ddf.npartitions, peaks=peaks.report())
        shutil.rmtree(out.parent, ignore_errors=True)


def dask_overhead(args, data, peaks: Peaks) -> None:
    import drgsim.dask as dg
    from drgsim.output import fingerprint

    lc, client = _dask_cluster(args)
    with lc, client:
        _dask_setup(args, peaks, client)
        scratch = Path(tempfile.mkdtemp(dir=args.scratch))
        dg.group_to_parquet(dg.read_parquet(data["overhead-2"]), scratch / "warm",
                            fingerprint(options={"w": 1}), client=client)
        for k in OVERHEAD_PARTS:
            ddf = dg.read_parquet(data[f"overhead-{k}"])
            assert ddf.npartitions == k, (ddf.npartitions, k)
            best = float("inf")
            for r in range(args.repeat):
                t = time.perf_counter()
                dg.group_to_parquet(ddf, scratch / f"{k}-{r}", fingerprint(options={"r": r}),
                                    client=client)
                best = min(best, time.perf_counter() - t)
            t = time.perf_counter()
            ddf.map_partitions(len).compute()
            emit(phase="overhead", parts=k, s=best, len_s=time.perf_counter() - t)
        shutil.rmtree(scratch, ignore_errors=True)


def dask_price(args, data, peaks: Peaks) -> None:
    import drgsim.dask as dg
    from drgsim.calibrate import read_weights
    from drgsim.policy import load_policy, resolve_year

    p = data["price"][args.size]
    w = read_weights(data["weights"], resolve_year(load_policy(None), PRICE_YEARS[-1]).pv)
    lc, client = _dask_cluster(args)
    with lc, client:
        _dask_setup(args, peaks, client)
        g = dg.read_parquet(p / "grouped")
        peaks.reset()
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base = dg.prepare(g, weights=w, hospitals=p / "hospitals.parquet",
                              region=p / "region.parquet", grouped=True, client=client,
                              keep_rows=False)  # as dg.simulate: no sweep follows
            tables = dg.settle(base)
            n_cases = len(tables["cases"])
        s = time.perf_counter() - t
        tim = dict(base._cache["timings"])
        emit(phase="price", s=s, rows=rows_of(p / "grouped"), simulated=n_cases,
             partitions=g.npartitions, phases=tim, shuffle_s=tim.get("shuffle by hospital"),
             largest_hospital=largest_hospital(p / "grouped"),
             peaks=peaks.report())


# ---------------------------------------------------------------------------- Spark
def _spark_session(args):
    os.environ.setdefault("PYSPARK_PYTHON", PY)
    from pyspark.sql import SparkSession

    s = (SparkSession.builder.master(f"local[{args.workers}]")
         .config("spark.ui.enabled", "false")
         .config("spark.driver.memory", args.spark_memory)
         .config("spark.sql.shuffle.partitions", str(2 * args.workers)).getOrCreate())
    s.sparkContext.setLogLevel("ERROR")
    return s


def _spark_warm(s, data) -> None:
    from drgsim import spark as dsp

    t = time.perf_counter()
    dsp.group(s.read.parquet(str(data["overhead-2"]))).write.format("noop").mode(
        "overwrite").save()  # scheme broadcast, kernels loaded in each Python worker
    emit(phase="warm", s=time.perf_counter() - t)


def spark_group(args, data, peaks: Peaks) -> None:
    from drgsim import spark as dsp

    s = _spark_session(args)
    _spark_warm(s, data)
    sdf = s.read.parquet(str(data["group"] / "discharges"))
    out = Path(tempfile.mkdtemp(dir=args.scratch)) / "grouped"
    peaks.reset()
    t = time.perf_counter()
    dsp.group_to(sdf, out)
    emit(phase="group", s=time.perf_counter() - t, rows=args.rows,
         partitions=sdf.rdd.getNumPartitions(), peaks=peaks.report(),
         note=f"spark.driver.memory {args.spark_memory}")
    s.stop()
    shutil.rmtree(out.parent, ignore_errors=True)


def spark_overhead(args, data, peaks: Peaks) -> None:
    from drgsim import spark as dsp

    s = _spark_session(args)
    # one partition per file, as Dask reads them (Spark packs small files otherwise)
    s.conf.set("spark.sql.files.openCostInBytes", str(1 << 30))
    _spark_warm(s, data)
    scratch = Path(tempfile.mkdtemp(dir=args.scratch))
    for k in OVERHEAD_PARTS:
        sdf = s.read.parquet(str(data[f"overhead-{k}"]))
        n = sdf.rdd.getNumPartitions()
        best = float("inf")
        for r in range(args.repeat):
            t = time.perf_counter()
            dsp.group_to(sdf, scratch / f"{k}-{r}")
            best = min(best, time.perf_counter() - t)
        t = time.perf_counter()
        sdf.select("case_id").write.format("noop").mode("overwrite").save()
        emit(phase="overhead", parts=n, s=best, len_s=time.perf_counter() - t)
    s.stop()
    shutil.rmtree(scratch, ignore_errors=True)


def spark_price(args, data, peaks: Peaks) -> None:
    from drgsim import spark as dsp
    from drgsim.calibrate import read_weights
    from drgsim.policy import load_policy, resolve_year

    p = data["price"][args.size]
    w = read_weights(data["weights"], resolve_year(load_policy(None), PRICE_YEARS[-1]).pv)
    s = _spark_session(args)
    _spark_warm(s, data)
    g = s.read.parquet(str(p / "grouped"))
    t = time.perf_counter()
    g.repartition("hospital_id").write.format("noop").mode("overwrite").save()
    shuffle_s = time.perf_counter() - t  # the shuffle alone, every column, before pricing
    peaks.reset()
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = dsp.prepare(g, weights=w, hospitals=p / "hospitals.parquet",
                           region=p / "region.parquet", grouped=True)
        t1 = time.perf_counter()
        tables = dsp.settle(base)
        n_cases = tables["cases"].count()
    t2 = time.perf_counter()
    emit(phase="price", s=t2 - t, rows=rows_of(p / "grouped"), simulated=n_cases,
         partitions=g.rdd.getNumPartitions(),
         phases={"prepare (scan, shuffle, price + cells, reduce)": t1 - t,
                 "settle (shuffle again, price, pay, count)": t2 - t1},
         shuffle_s=shuffle_s, peaks=peaks.report(), largest_hospital=largest_hospital(p / "grouped"),
         note="shuffle_s measured apart (repartition by hospital, noop write); prepare and "
              "settle each shuffle the rows by hospital")
    s.stop()


ENGINES = ("single", "dask", "spark")
PHASES = ("group", "overhead", "price")


def child(engine: str, phase: str, args) -> None:
    """One engine × phase in this (child) process."""
    data = make_data(args)
    peaks = Peaks()
    globals()[f"{engine}_{phase}"](args, data, peaks)
    peaks.stop.set()


# ---------------------------------------------------------------------------- parent
def run_child(engine: str, phase: str, argv: list[str], timeout: float) -> tuple[list, str]:
    """Run one engine × phase; its RESULT lines, and how it ended."""
    cmd = [PY, __file__, *argv, "--child", engine, phase]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    results: list[dict] = []
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the child and its workers (its session)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.start()
    err: list[str] = []
    t_err = threading.Thread(target=lambda: err.extend(p.stderr), daemon=True)
    t_err.start()
    for line in p.stdout:
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            results.append(r)
            log(f"  {engine} {phase}: " + json.dumps(_rounded(r)))
        elif line.strip():
            log(f"  {line.rstrip()}")
    rc = p.wait()
    timer.cancel()
    t_err.join(5)
    if killed.is_set():
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return results, f"killed after {timeout:.0f} s (timeout)"
    if rc != 0:
        tail = "".join(err[-6:]).strip().splitlines()
        return results, "failed: " + (tail[-1] if tail else f"exit {rc}")
    return results, "ok"


def _rounded(r):
    if isinstance(r, float):
        return round(r, 3)
    if isinstance(r, dict):
        return {k: _rounded(v) for k, v in r.items()}
    if isinstance(r, list):
        return [_rounded(v) for v in r]
    return r


def _all(res: dict, engine: str, phase: str) -> list[dict]:
    return [r for r in res.get((engine, phase), []) if r["phase"] == phase.split("-")[0]]


def _one(res: dict, engine: str, phase: str) -> dict | None:
    return next(iter(_all(res, engine, phase)), None)


def _peak(r: dict, role: str) -> list[int]:
    return [x["peak_mib"] for x in r.get("peaks", {}).get(role, [])]


def _over_base(r: dict, roles: tuple[str, ...]) -> int:
    """MiB the processes of ``roles`` grew above their phase-start RSS, summed."""
    return sum(x["peak_mib"] - x["base_mib"] for role in roles
               for x in r.get("peaks", {}).get(role, []))


def report(res: dict, status: dict, args) -> None:
    w = args.workers
    log("\n== group: month-partitioned parquet -> parquet "
        f"({args.rows:,} rows; single: --threads all cores; dask/spark: {w} workers x 1 thread)")
    log(f"{'engine':<7} {'parts':>5} {'wall s':>8} {'rec/s':>10} {'driver MiB':>10} "
        f"{'worker peaks MiB':>18} {'JVM MiB':>8} {'fixed ms/part':>13}")
    fixed = {}
    for e in args.engines:
        ov = {r["parts"]: r["s"] for r in _all(res, e, "overhead")}
        if len(ov) == 2:
            (k1, t1), (k2, t2) = sorted(ov.items())
            fixed[e] = (t2 - t1) / (k2 - k1)
        g = _one(res, e, "group")
        if g is None:
            if "group" in args.phases:
                log(f"{e:<7} {status.get((e, 'group'), 'not run')}")
            continue
        wk = _peak(g, "worker")
        log(f"{e:<7} {g['partitions']:>5} {g['s']:>8.1f} {g['rows'] / g['s']:>10,.0f} "
            f"{max(_peak(g, 'driver') or [0]):>10,} {'/'.join(map(str, wk)) or '-':>18} "
            f"{max(_peak(g, 'jvm') or [0]) or '-':>8} "
            f"{fixed[e] * 1000 if e in fixed else float('nan'):>13.0f}")
    for e in args.engines:
        warm = [f"{k[1]} {r['s']:.1f} s" for k, rs in res.items() if k[0] == e for r in rs
                if r["phase"] == "warm"]
        if warm:
            log(f"  warm-up {e} (scheme to the workers, kernels loaded there; not in the "
                "figures): " + ", ".join(warm))
    n_ov = min(args.overhead_rows, args.rows)
    for e in args.engines:
        ov = sorted((r["parts"], r["s"]) for r in _all(res, e, "overhead"))
        if ov:
            log(f"  overhead {e}: {n_ov:,} rows as " + ", ".join(
                f"{k} partitions {s:.2f} s" for k, s in ov)
                + (f" -> {fixed[e] * 1000:.0f} ms fixed per partition" if e in fixed else ""))
        elif (e, "overhead") in status:
            log(f"  overhead {e}: {status[(e, 'overhead')]}")
    log(f"\n== price: simulate {PRICE_YEARS[0]}-{PRICE_YEARS[1]} grouped parquet "
        f"(rows read; {PRICE_YEARS[1]} simulated), given weights")
    log(f"{'engine':<7} {'rows':>10} {'wall s':>8} {'rec/s':>9} {'shuffle s':>9} {'rest s':>8} "
        f"{'driver MiB':>10} {'worker peaks MiB':>18} {'JVM MiB':>8} {'B/row':>7}")
    per_row: dict[str, list] = {}
    for n in args.price_rows:
        for e in args.engines:
            key = f"price-{n}"
            r = _one(res, e, key)
            if r is None:
                log(f"{e:<7} {n:>10,} {status.get((e, key), 'not run')}")
                continue
            grow = _over_base(r, ("worker",) if e != "single" else ("driver",))
            per_row.setdefault(e, []).append((r["rows"], r["s"], grow * MIB, r))
            wk = _peak(r, "worker")
            sh = r["shuffle_s"] or 0.0
            log(f"{e:<7} {r['rows']:>10,} {r['s']:>8.1f} {r['rows'] / r['s']:>9,.0f} {sh:>9.1f} "
                f"{r['s'] - sh if e != 'spark' else r['s']:>8.1f} "
                f"{max(_peak(r, 'driver') or [0]):>10,} {'/'.join(map(str, wk)) or '-':>18} "
                f"{max(_peak(r, 'jvm') or [0]) or '-':>8} {grow * MIB / r['rows']:>7,.0f}")
            log(f"  {e} phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in r["phases"].items()))
    log("  rest s: price + cells + settle (single: + read); spark: shuffle measured apart "
        "(the wall includes it, twice: prepare and settle each group by hospital). "
        "B/row: RSS growth above the phase start per row read, of the processes that hold the "
        "rows (single: the process; dask, spark: the workers summed; the JVM apart).")
    sizing(res, per_row, args)


def sizing(res: dict, per_row: dict, args) -> None:
    """A 300M-row year from the measured per-row costs (an extrapolation)."""
    year, read, gib = 300e6, 600e6, 2**30
    log("\n== sizing a 300M-row year: EXTRAPOLATION from the per-row costs above, assuming "
        "linear scaling in rows, the synthetic region's case mix, workers like these cores, "
        "no network cost (the shuffle here is local) and given weights")
    for e in args.engines:
        g = _one(res, e, "group")
        if g is not None:
            rate = g["rows"] / g["s"] / 2  # both cores: 2 threads / 2 workers
            peak = max(_peak(g, "worker") or _peak(g, "driver"))
            log(f"  group {e}: {rate:,.0f} rec/s per core -> 300M rows ~{year / rate / 3600:.1f} "
                f"core-hours: ~{year / (rate * 16) / 60:.1f} min on 16 cores, "
                f"~{year / (rate * 64) / 60:.1f} min on 64; ~{peak:,} MiB per worker (bounded "
                "by the partition, not by the year)")
    for e, pts in per_row.items():
        pts.sort()
        rows, s, grow, r = pts[-1]
        if len(pts) >= 2 and pts[-1][0] > pts[0][0]:
            b_row = (pts[-1][2] - pts[0][2]) / (pts[-1][0] - pts[0][0])
            how = f"slope {pts[0][0]:,} -> {rows:,} rows"
        else:
            b_row, how = grow / rows, f"at {rows:,} rows, fixed cost included"
        cores = 1 if e == "single" else args.workers
        rate = rows / s / cores
        if len(pts) >= 2 and pts[-1][0] > pts[0][0] and pts[-1][1] > pts[0][1]:
            per = (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])  # s per row, marginal
            fixed = pts[0][1] - per * pts[0][0]
            rate = 1 / per / cores
            log(f"  price {e}: wall ~ {fixed:.1f} s + {per * 1e6:.1f} us x rows (fit on "
                f"{pts[0][0]:,} and {rows:,} rows); the marginal rate below")
        if e == "single":
            fits = 0.75 * 24 * gib / b_row if b_row > 0 else float("inf")
            log(f"  price single: {b_row:,.0f} B/row ({how}), {rate:,.0f} rows/s -> one "
                f"24 GiB machine (75% usable) holds ~{fits / 1e6:.0f}M rows read; 600M rows "
                f"would need ~{read * b_row / gib:,.0f} GiB in one process")
            continue
        if e == "spark":  # a Python worker holds one hospital group at a time; the JVM spills
            big = r.get("largest_hospital") or 0
            wk = r.get("peaks", {}).get("worker", [])
            grow_w = max([x["peak_mib"] - x["base_mib"] for x in wk] or [0]) * MIB
            per = grow_w / big if big else float("nan")
            log(f"  price spark: {rate:,.0f} rows/s per worker core -> 600M rows read "
                f"~{read / rate / 3600:,.0f} core-hours: ~{read / (rate * 64) / 60:.0f} min on "
                f"64 cores, ~{read / (rate * 256) / 60:.0f} min on 256. Memory per Python "
                f"worker follows the largest hospital group ({big:,} rows here: "
                f"+{grow_w / MIB:,.0f} MiB, ~{per:,.0f} B/row of that hospital), not the year; "
                f"JVM peak {max(_peak(r, 'jvm') or [0]):,} MiB (spark.driver.memory "
                f"{args.spark_memory}; shuffle spills to disk)")
            continue
        tot = read * b_row / gib
        n = max(1, int(-(-tot // 48)))
        log(f"  price {e}: {b_row:,.0f} B/row ({how}), {rate:,.0f} rows/s per worker core -> "
            f"a 300M-row year read with last year ({read / 1e6:.0f}M rows) holds ~{tot:,.0f} "
            f"GiB on the workers (the priced partitions stay there until settled): "
            f">= {n} workers x 64 GiB (48 GiB used each), "
            f"~{read / (rate * n) / 60:.0f} min with 1 core each, "
            f"~{read / (rate * 4 * n) / 60:.0f} min with 4 (if pricing scales per core)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000, help="rows grouped (all years)")
    ap.add_argument("--price-rows", default="200000",
                    help="rows read by pricing (2024 and 2025; 2025 simulated), a comma list "
                         "of sizes run smallest first")
    ap.add_argument("--price-cap", default="",
                    help="largest pricing size per engine, e.g. spark=1000000")
    ap.add_argument("--hospitals", type=int, default=120)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--overhead-rows", type=int, default=128_000)
    ap.add_argument("--repeat", type=int, default=2, help="overhead runs per size (best)")
    ap.add_argument("--data-root", default=None, help="where inputs are generated and reused")
    ap.add_argument("--scratch", default=None, help="where outputs go (removed after)")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per engine x phase")
    ap.add_argument("--budget", type=float, default=None, help="seconds for the whole run")
    ap.add_argument("--spark-memory", default="4g", help="spark.driver.memory (local mode)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.price_rows = sorted(int(x) for x in str(args.price_rows).split(",") if x)
    cap = dict(x.split("=") for x in args.price_cap.split(",") if x)
    args.engines = [e for e in args.engines.split(",") if e]
    args.phases = [p for p in args.phases.split(",") if p]
    if args.scratch is None:
        args.scratch = tempfile.gettempdir()
    if args.child:
        child(*args.child, args)
        return
    t_start = time.perf_counter()
    for line in machine_lines():
        log(line)
    data = make_data(args)
    log(f"data: {data['root']} (group {args.rows:,} rows, price {args.price_rows} rows, "
        f"overhead {min(args.overhead_rows, args.rows):,} rows as {OVERHEAD_PARTS} files)")
    argv = [a for a in sys.argv[1:]]
    res, status = {}, {}
    steps = [(ph, 0) for ph in args.phases if ph != "price"]
    if "price" in args.phases:
        steps += [("price", n) for n in args.price_rows]
    for phase, n in steps:
        for e in args.engines:
            key = (e, f"price-{n}" if n else phase)
            left = args.timeout
            if args.budget is not None:
                left = min(left, args.budget - (time.perf_counter() - t_start))
            why = None
            if n and n > int(cap.get(e, n)):
                why = f"not run (--price-cap {e}={cap[e]})"
            elif n and any(k[0] == e and k[1].startswith("price-") and v != "ok"
                           for k, v in status.items()):
                why = "not run (a smaller size did not complete)"
            elif left < 10:
                why = "not run (budget spent)"
            if why:
                status[key] = why
                log(f"-- {key[0]} {key[1]}: {why}")
                continue
            log(f"-- {key[0]} {key[1]} (load average {loadavg()}, cap {left:.0f} s)")
            t = time.perf_counter()
            res[key], status[key] = run_child(e, phase, [*argv, "--size", str(n)], left)
            log(f"   {status[key]} in {time.perf_counter() - t:.0f} s; load average {loadavg()}")
    report(res, status, args)
    log(f"\nload average at end: {loadavg()}; total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
