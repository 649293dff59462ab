"""Benchmark: scenario sweeps (issue 18) after ``drgsim.prepare``.

Times, on fake grouped cases (``drgsim.pricing.fake``) with a region table budget:
``prepare`` against one ``simulate``; settlement-only sweeps of 10/100/1,000 scenarios over
both funds, from ``base.sweep(grid)`` until ``res.hospitals`` and ``res.funds`` are built
(overlay validation, budgets and tidy tables included, no monthly arrays); one threshold
re-pricing on the cells; 10/100/1,000 Monte Carlo draws of volume and inflation, per-level
inflation and coding creep; each sweep's own peak memory (the process's high-water mark
reset before it, so data and simulate are not counted) and the process's. Prints
figures, the machine and the load average at each step; not a test. Targets (issue 18, 1M cases x 1,000 hospitals, idle 2-core
machine, best of 3): 1,000 settlement-only scenarios <= 1 s; a threshold set <= 25 ms;
1,000 draws <= 5 s; prepare <= 1.5x simulate; peak <= 2 GiB.

    python benchmarks/bench_sweep.py [--cases 1000000] [--hospitals 40,1000]
                                     [--scenarios 10,100,1000] [--draws 10,100,1000]
                                     [--repeat 3] [--skip-simulate]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from _machine import machine_lines  # noqa: E402

YEAR = 2024


def best(fn, repeat):
    ts, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return min(ts), out


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


PEAK = [0.0]  # the process's peak over every step (a reset forgets the earlier ones)


def hwm_reset() -> bool:
    """Reset this process's peak RSS (Linux: clear_refs 5), so a peak is one step's."""
    PEAK[0] = max(PEAK[0], peak_gib())
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def hwm_gib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def run(
    n_cases: int,
    n_hosp: int,
    n_drgs: int,
    scen: list[int],
    draws: list[int],
    repeat: int,
    skip_simulate: bool,
) -> None:
    import drgsim
    from drgsim.policy import resolve_year
    from drgsim.pricing.cells import points_under
    from drgsim.pricing.fake import fake_cases, fake_hospitals, fake_weights
    from drgsim.scenarios.grid import overlaid_policy

    df = fake_cases(n_cases, n_hosp=n_hosp, n_drg=n_drgs, seed=1, year=YEAR)
    hosp = fake_hospitals(n_hosp)
    w = fake_weights(n_drgs)
    spend = float((df["total_cost"] - df["patient_share"]).sum())
    region = pd.DataFrame(
        {
            "fund": ["employee", "resident"] * 2,
            "year": [YEAR - 1, YEAR - 1, YEAR, YEAR],
            "drg_spending": [spend * 0.4, spend * 0.6] * 2,
            "fund_income": [spend * 0.8, spend * 1.2] * 2,
            "other_spending": [spend * 0.3, spend * 0.5] * 2,
        }
    )
    kw = dict(weights=w, hospitals=hosp, region=region)
    print(f"\n== {n_cases:,} cases x {n_hosp:,} hospitals, {n_drgs} DRGs ({load()})")
    t_prep, base = best(lambda: drgsim.prepare(df, **kw), repeat)
    print(f"cells             {len(base.cells.P):,} cells over {len(base.cells.cost):,} cases")
    if skip_simulate:
        print(f"prepare           {t_prep:8.3f} s")
    else:
        t_sim, _ = best(lambda: drgsim.simulate(df, **kw), repeat)
        print(f"simulate          {t_sim:8.3f} s")
        print(
            f"prepare           {t_prep:8.3f} s   ({t_prep / t_sim:.2f} x simulate; target <= 1.5)"
        )
    for n in scen:
        g = drgsim.Grid(
            {
                "budget.*.growth": {"min": -0.1, "max": 0.1, "count": n},
                "hospital_corridor.loss_share": [0.5],
            }
        )
        base.sweep(g)  # warm (numba kernels loaded from their cache)
        reset = hwm_reset()
        t, res = best(lambda g=g: base.sweep(g), repeat)
        mem = f"; peak {hwm_gib():.2f} GiB" if reset else ""
        print(
            f"sweep settlement  {t:8.3f} s   {n:>5} scenarios (+ baseline), both funds, "
            f"{len(res.hospitals):,} hospital rows; {t / n * 1e3:.2f} ms/scenario{mem} "
            f"({load()})"
        )
        del res
    pol = overlaid_policy(base.policy, {"high_cost.beta": 0.7, "low_cost.factor": 0.35})
    yp = resolve_year(pol, YEAR)
    t, _ = best(lambda: points_under(base.cells, base.priced, yp), max(repeat, 5))
    print(f"cells re-price    {t * 1e3:8.2f} ms  one threshold set (target <= 25 ms)")
    g = drgsim.Grid({"high_cost.beta": {"min": 0.5, "max": 1.0, "count": 10}})
    t, res = best(lambda: base.sweep(g), repeat)
    print(f"sweep cells       {t:8.3f} s   10 threshold sets, tables included")
    if importlib.util.find_spec("drgsim.scenarios.behaviour") is None:
        print("draws             skipped: drgsim.scenarios.behaviour is not installed here")
        return
    kinds = {
        "volume+inflation": {
            "behaviour.volume_growth": {"dist": "normal", "mean": 0.03, "sd": 0.01},
            "behaviour.cost_inflation": {"dist": "uniform", "min": 0.0, "max": 0.05},
        },
        "per-level infl.": {
            "behaviour.cost_inflation.by_level.三级": {"dist": "uniform", "min": 0.0, "max": 0.06},
            "behaviour.cost_inflation.by_level.二级": {"dist": "normal", "mean": 0.02, "sd": 0.01},
        },
        "coding creep": {"behaviour.coding_creep": {"dist": "uniform", "min": 0.0, "max": 0.05}},
    }
    for label, ov in kinds.items():
        for n in draws:
            base.sweep([ov], draws=2, seed=7)  # warm
            reset = hwm_reset()
            t, res = best(lambda ov=ov, n=n: base.sweep([ov], draws=n, seed=7), repeat)
            mem = f"; peak {hwm_gib():.2f} GiB" if reset else ""
            print(
                f"sweep draws       {t:8.3f} s   {label}: {n:>5} draws (x 2 scenarios, "
                f"{len(res.hospitals):,} hospital rows){mem}; target 1,000 <= 5 s ({load()})"
            )
            del res
    PEAK[0] = max(PEAK[0], peak_gib())
    print(f"peak memory       {PEAK[0]:8.2f} GiB (process, data and simulate included)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--hospitals", default="40,1000")
    ap.add_argument("--drgs", type=int, default=600)
    ap.add_argument("--scenarios", default="10,100,1000")
    ap.add_argument("--draws", default="10,100,1000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-simulate", action="store_true", help="time prepare only")
    a = ap.parse_args()
    for line in machine_lines():
        print(line)
    scen = [int(x) for x in a.scenarios.split(",")]
    draws = [int(x) for x in a.draws.split(",")]
    for h in [int(x) for x in a.hospitals.split(",")]:
        run(a.cases, h, a.drgs, scen, draws, a.repeat, a.skip_simulate)
    np.seterr(all="ignore")


if __name__ == "__main__":
    main()
