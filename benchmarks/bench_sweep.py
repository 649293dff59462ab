"""Benchmark: scenario sweeps (issue 18) after ``drgsim.prepare``.

Times, on fake grouped cases (``drgsim.pricing.fake``) with a region table budget:
``prepare`` against one ``simulate``; settlement-only sweeps of 10/100/1,000 scenarios over
both funds, from ``base.sweep(grid)`` until ``res.hospitals`` and ``res.funds`` are built
(overlay validation, budgets and tidy tables included, no monthly arrays); one threshold
re-pricing on the cells; Monte Carlo draws of behaviour assumptions (when
``drgsim.scenarios.behaviour`` is installed); the process's peak memory. Prints figures
and the machine; not a test. Targets (issue 18, 1M cases x 1,000 hospitals, idle 2-core
machine, best of 3): 1,000 settlement-only scenarios <= 1 s; a threshold set <= 25 ms;
1,000 draws <= 5 s; prepare <= 1.5x simulate; peak <= 2 GiB.

    python benchmarks/bench_sweep.py [--cases 1000000] [--hospitals 40,1000]
                                     [--scenarios 10,100,1000] [--draws 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.util
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


def run(n_cases: int, n_hosp: int, n_drgs: int, scen: list[int], draws: int, repeat: int) -> None:
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
    print(f"\n== {n_cases:,} cases x {n_hosp:,} hospitals, {n_drgs} DRGs")
    t_sim, _ = best(lambda: drgsim.simulate(df, **kw), repeat)
    t_prep, base = best(lambda: drgsim.prepare(df, **kw), repeat)
    print(f"simulate          {t_sim:8.3f} s")
    print(f"prepare           {t_prep:8.3f} s   ({t_prep / t_sim:.2f} x simulate; target <= 1.5)")
    for n in scen:
        g = drgsim.Grid(
            {
                "budget.*.growth": {"min": -0.1, "max": 0.1, "count": n},
                "hospital_corridor.loss_share": [0.5],
            }
        )
        t, res = best(lambda g=g: base.sweep(g), repeat)
        print(
            f"sweep settlement  {t:8.3f} s   {n:>5} scenarios (+ baseline), both funds, "
            f"{len(res.hospitals):,} hospital rows; {t / n * 1e3:.2f} ms/scenario"
        )
    pol = overlaid_policy(base.policy, {"high_cost.beta": 0.7, "low_cost.factor": 0.35})
    yp = resolve_year(pol, YEAR)
    t, _ = best(lambda: points_under(base.cells, base.priced, yp), max(repeat, 5))
    print(f"cells re-price    {t * 1e3:8.2f} ms  one threshold set (target <= 25 ms)")
    g = drgsim.Grid({"high_cost.beta": {"min": 0.5, "max": 1.0, "count": 10}})
    t, res = best(lambda: base.sweep(g), repeat)
    print(f"sweep cells       {t:8.3f} s   10 threshold sets, tables included")
    if importlib.util.find_spec("drgsim.scenarios.behaviour") is None:
        print("draws             skipped: drgsim.scenarios.behaviour is not installed here")
    else:
        ov = [
            {
                "behaviour.volume_growth": {"dist": "normal", "mean": 0.03, "sd": 0.01},
                "behaviour.cost_inflation": {"dist": "uniform", "min": 0.0, "max": 0.05},
            }
        ]
        t, res = best(lambda: base.sweep(ov, draws=draws, seed=7), repeat)
        print(f"sweep draws       {t:8.3f} s   {draws} draws x 2 scenarios (target <= 5 s)")
    print(f"peak memory       {peak_gib():8.2f} GiB (process, data included; target <= 2)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--hospitals", default="40,1000")
    ap.add_argument("--drgs", type=int, default=600)
    ap.add_argument("--scenarios", default="10,100,1000")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    for line in machine_lines():
        print(line)
    scen = [int(x) for x in a.scenarios.split(",")]
    for h in [int(x) for x in a.hospitals.split(",")]:
        run(a.cases, h, a.drgs, scen, a.draws, a.repeat)
    np.seterr(all="ignore")


if __name__ == "__main__":
    main()
