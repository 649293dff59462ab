"""The batch path through the CLI: warm start on a tiny CSV, and N rows parquet -> parquet
against two I/O floors.

Prints figures and the machine, with the load average beside every figure (other work on
the machine skews them); asserts nothing (targets live in the README). Each figure is the
median of ``--repeat`` runs; ``cpu`` is the child's user+sys CPU time, less sensitive to
a busy machine than the wall time. Run:

    python benchmarks/bench_batch.py                       # 20-row CSV, 5M rows
    python benchmarks/bench_batch.py --rows 500000 --repeat 3
    python benchmarks/bench_batch.py --rows 0              # the tiny start only

The N-row input is generated once by the synthetic region generator and cached (under
``--cache-dir``, default ``$TMPDIR/drgsim-bench-cache``).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))

from _machine import machine_lines  # noqa: E402

OUTPUTS = ("mdc", "adrg", "drg", "status")


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def drgsim_cmd() -> list[str]:
    """The installed ``drgsim`` script beside this Python, else the CLI module."""
    exe = Path(sys.executable).with_name("drgsim")
    if exe.is_file():
        return [str(exe)]
    return [sys.executable, "-c", "from drgsim.cli import main; main()"]


def timed_child(cmd: list[str], src: str | None = None) -> tuple[float, float]:
    """(wall seconds, user+sys CPU seconds) of one subprocess run (``src``: PYTHONPATH)."""
    env = {**os.environ, "PYTHONPATH": src} if src else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def median_runs(fn, repeat: int) -> tuple[float, list[float], list[str]]:
    """Median wall time of ``fn`` (which may return its own ``(wall,)``), runs, loads."""
    walls, loads = [], []
    for _ in range(repeat):
        loads.append(f"{os.getloadavg()[0]:.1f}")
        t0 = time.perf_counter()
        got = fn()
        walls.append(got[0] if isinstance(got, tuple) else time.perf_counter() - t0)
    return statistics.median(walls), walls, loads


def fmt_runs(walls: list[float], loads: list[str]) -> str:
    return "runs " + " ".join(f"{w:.2f}" for w in walls) + "; 1-min load before each " + " ".join(loads)


def mib(p: Path) -> str:
    return f"{p.stat().st_size / 2**20:,.1f} MiB"


# ---------------------------------------------------------------- a. tiny CSV, warm start

def inproc_figure(fn, repeat: int) -> tuple[float, float, str]:
    """(median wall, median process CPU, runs text) of an in-process function."""
    cpus: list[float] = []

    def run():
        c = time.process_time()
        t0 = time.perf_counter()
        fn()
        cpus.append(time.process_time() - c)
        return (time.perf_counter() - t0,)

    med, walls, loads = median_runs(run, repeat)
    return med, statistics.median(cpus), fmt_runs(walls, loads)


def cli_figure(label: str, cmd: list[str], repeat: int, rows: int, src: str | None = None,
               target: str = "", warm_cmd: list[str] | None = None) -> tuple[float, float]:
    """Median of ``repeat`` warm runs of a CLI command (after one untimed run of
    ``warm_cmd``, default the command itself)."""
    timed_child(warm_cmd or cmd, src)  # untimed: warms numba's, the scheme's, the reference's caches
    cpus: list[float] = []

    def run():
        wall, cpu = timed_child(cmd, src)
        cpus.append(cpu)
        return (wall,)

    med, walls, loads = median_runs(run, repeat)
    cpu = statistics.median(cpus)
    rate = f"  ({rows / med / 1e6:.2f} M records/s)" if rows > 10_000 else ""
    print(f"  {label:<22} {med:6.2f} s wall, {cpu:6.2f} s cpu{rate}  {target}")
    print(f"  {'':<22} {fmt_runs(walls, loads)}")
    return med, cpu


def bench_tiny(tmp: Path, rows: int, repeat: int, baseline: str | None) -> None:
    from drgsim.synth import discharges

    print(f"\n== a. CLI warm start: {rows} rows CSV -> CSV, end to end as a subprocess ==")
    tiny = tmp / "tiny.csv"
    import pyarrow.csv as pacsv

    pacsv.write_csv(discharges(rows, seed=1, text=True), tiny)
    out = tmp / "tiny_out.csv"
    cmd = [*drgsim_cmd(), "group", str(tiny), "-o", str(out)]
    print(f"  command: drgsim group tiny.csv -o tiny_out.csv   ({load()})")
    cli_figure("warm start:", cmd, repeat, rows, target="(target <= 0.5 s wall)")
    if baseline:
        cli_figure(f"baseline {baseline}:", cmd, repeat, rows, baseline)
    help_med, _, _ = median_runs(lambda: timed_child([*drgsim_cmd(), "--help"]), repeat)
    print(f"  drgsim --help: {help_med:5.2f} s   ({load()})")


# ---------------------------------------------------------------- b. N rows parquet

def make_input(rows: int, seed: int, cache: Path) -> Path:
    """N rows from the synthetic region generator, typed parquet, row groups of 1M (cached)."""
    from drgsim.synth import SyntheticRegion

    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"batch_{rows}_seed{seed}.parquet"
    if path.is_file():
        return path
    t0 = time.perf_counter()
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    writer = None
    n = 0
    blocks: list[pa.Table] = []

    def flush() -> None:
        nonlocal writer
        table = pa.concat_tables(blocks)
        blocks.clear()
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
        writer.write_table(table, row_group_size=1 << 20)

    for _, table in SyntheticRegion(rows, seed=seed).iter_blocks():
        blocks.append(table)
        n += table.num_rows
        if sum(b.num_rows for b in blocks) >= 1 << 20:
            flush()
    if blocks:
        flush()
    writer.close()
    os.replace(tmp, path)
    print(f"  generated {n:,} rows in {time.perf_counter() - t0:.1f} s -> {path}")
    return path


def drgsim_writer_settings(first: pa.Table) -> dict:
    """The parquet writer settings drgsim's streaming output uses for this first batch."""
    try:
        from drgsim.grouper.batchio import parquet_write_options
    except ImportError:  # trees before bench_batch hard-code zstd
        return {"compression": "zstd"}
    return parquet_write_options(first)


def describe(settings: dict) -> str:
    dic = settings.get("use_dictionary", True)
    dic = f"{len(dic)} columns" if isinstance(dic, list) else dic
    return f"compression={settings.get('compression', 'snappy')}, dictionary={dic}"


def floor_table(src: Path, extra: pa.Table, dst: Path) -> None:
    """Physical floor: read the whole file as one table, append four string columns,
    write it back with pyarrow's default writer settings."""
    t = pq.read_table(src)
    for name in extra.column_names:
        t = t.append_column(name, extra.column(name))
    pq.write_table(t, dst)


def floor_stream(src: Path, extra: pa.Table, dst: Path, batch_rows: int,
                 settings: dict | None = None, compression: str | None = None) -> dict:
    """Streaming floor: read batches, append four string columns, write each batch in a
    background thread (as drgsim does), with drgsim's writer settings (or ``settings``)."""
    pf = pq.ParquetFile(src, pre_buffer=False)
    writer = None
    start = 0
    with ThreadPoolExecutor(1) as pool:
        pending = None
        for batch in pf.iter_batches(batch_size=batch_rows):
            t = pa.Table.from_batches([batch])
            for name in extra.column_names:
                t = t.append_column(name, extra.column(name).slice(start, t.num_rows))
            start += t.num_rows
            if writer is None:
                settings = dict(settings or drgsim_writer_settings(t))
                if compression:
                    settings["compression"] = compression
                writer = pq.ParquetWriter(dst, t.schema, **settings)
            if pending is not None:
                pending.result()
            pending = pool.submit(writer.write_table, t)
        if pending is not None:
            pending.result()
    writer.close()
    return settings


def bench_big(tmp: Path, rows: int, seed: int, repeat: int, cache: Path, codecs: list[str],
              baseline: str | None) -> None:
    print(f"\n== b. {rows:,} rows parquet -> parquet through the CLI, start included ==")
    src = make_input(rows, seed, cache)
    print(f"  input: {mib(src)}, {pq.ParquetFile(src).metadata.num_row_groups} row groups, "
          f"{pq.ParquetFile(src).metadata.num_columns} columns (synthetic region generator, "
          f"seed {seed})")
    out = tmp / "grouped.parquet"
    cmd = [*drgsim_cmd(), "group", str(src), "-o", str(out), "--quiet"]
    print(f"  command: drgsim group in.parquet -o grouped.parquet --quiet   ({load()})")
    small = tmp / "warm.parquet"  # the untimed warm-up run: a slice beyond the tiny path
    pq.write_table(pq.ParquetFile(src).read_row_group(0).slice(0, 5000), small)
    warm = [*drgsim_cmd(), "group", str(small), "-o", str(tmp / "warm_out.parquet"), "--quiet"]
    t_cli, c_cli = cli_figure("drgsim group:", cmd, repeat, rows, warm_cmd=warm)
    out_base = tmp / "grouped_baseline.parquet"
    if baseline:
        cli_figure(f"baseline {baseline}:", [*cmd[:-2], str(out_base), "--quiet"], repeat, rows,
                   baseline, warm_cmd=warm)

    extra = pq.read_table(out, columns=list(OUTPUTS))  # the four string columns to append
    from drgsim.grouper.stream import DEFAULT_BATCH_ROWS

    f1 = tmp / "floor_table.parquet"
    t_f1, c_f1, runs = inproc_figure(lambda: floor_table(src, extra, f1), repeat)
    print(f"  (i) physical floor:  {t_f1:6.2f} s wall, {c_f1:6.2f} s cpu   read_table + 4 string "
          f"columns + write_table, pyarrow defaults   {runs}")
    f2 = tmp / "floor_stream.parquet"
    first = pa.Table.from_batches(
        [next(pq.ParquetFile(src).iter_batches(batch_size=DEFAULT_BATCH_ROWS))])
    for name in extra.column_names:
        first = first.append_column(name, extra.column(name).slice(0, first.num_rows))
    settings = drgsim_writer_settings(first)
    t_f2, c_f2, runs = inproc_figure(
        lambda: floor_stream(src, extra, f2, DEFAULT_BATCH_ROWS, settings), repeat)
    print(f"  (ii) streaming floor: {t_f2:5.2f} s wall, {c_f2:6.2f} s cpu   batches of "
          f"{DEFAULT_BATCH_ROWS:,}, background writer, drgsim's writer settings "
          f"({describe(settings)})   {runs}")
    print(f"  ratio to (i):  {t_cli / t_f1:5.2f}x wall, {c_cli / c_f1:5.2f}x cpu   (target <= 1.3x)")
    print(f"  ratio to (ii): {t_cli / t_f2:5.2f}x wall, {c_cli / c_f2:5.2f}x cpu")
    print(f"  output sizes: drgsim {mib(out)}, floor (i) {mib(f1)}, floor (ii) {mib(f2)}; "
          f"input {mib(src)}" + (f"; baseline {mib(out_base)}" if baseline else ""))
    if codecs:
        print(f"  writer compression, streaming floor (ii) with each codec, median of {repeat}:")
        for codec in codecs:
            dst = tmp / f"codec_{codec}.parquet"
            t, c, runs = inproc_figure(
                lambda codec=codec, dst=dst: floor_stream(
                    src, extra, dst, DEFAULT_BATCH_ROWS, settings, codec), repeat)
            print(f"    {codec:<8} {t:6.2f} s wall, {c:6.2f} s cpu  {mib(dst):>12}   {runs}")
            dst.unlink()
    for p in (out, f1, f2, out_base):
        p.unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny-rows", type=int, default=20, help="rows of the tiny CSV (0: skip)")
    ap.add_argument("--rows", type=int, default=5_000_000, help="rows of the parquet run (0: skip)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per figure (the median is printed)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--codecs", default="zstd,snappy,lz4",
                    help="writer codecs to compare on the streaming floor ('' to skip)")
    ap.add_argument("--cache-dir", type=Path,
                    default=Path(tempfile.gettempdir()) / "drgsim-bench-cache",
                    help="where the generated input is kept between runs")
    ap.add_argument("--baseline-src", default=None, metavar="DIR",
                    help="also time the CLI with PYTHONPATH=DIR (e.g. another checkout's src)")
    args = ap.parse_args()
    for line in machine_lines():
        print(line)
    tmp = Path(tempfile.mkdtemp(prefix="drgsim-bench-batch-"))
    try:
        if args.tiny_rows:
            bench_tiny(tmp, args.tiny_rows, args.repeat, args.baseline_src)
        if args.rows:
            bench_big(tmp, args.rows, args.seed, args.repeat, args.cache_dir,
                      [c for c in args.codecs.split(",") if c], args.baseline_src)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload average at end: {load()}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
