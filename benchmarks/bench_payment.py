"""Benchmark: pricing + settlement of 1M cases for 1,000 hospitals, and re-settlement.

Targets (issue 12): pricing + settlement <= 0.5 s after load on 2 cores, readmission
linking included (pricing = the rows, which explain each case, and the cells whose totals
the settlement consumes); re-settling after a settlement-parameter change <= 50 ms. Prints
figures and the machine; not a test.

    python benchmarks/bench_payment.py [--cases 1000000] [--hospitals 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _machine import machine_lines  # noqa: E402


def best(fn, repeat):
    ts = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return min(ts), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--hospitals", type=int, default=1000)
    ap.add_argument("--drgs", type=int, default=600)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()

    from drgsim.policy import load_policy
    from drgsim.pricing import Weights, prepare_cases, price
    from drgsim.pricing.cells import build_cells, cell_points, hfm_points
    from drgsim.pricing.fake import fake_cases, fake_hospitals, fake_weights
    from drgsim.settlement import Budget, fund_totals, settle, settle_fund
    from drgsim.settlement.run import case_payments

    for line in machine_lines():
        print(line)
    t = time.perf_counter()
    df = fake_cases(a.cases, n_hosp=a.hospitals, n_drg=a.drgs, seed=1)
    hosp = fake_hospitals(a.hospitals)
    w = Weights.from_frame(fake_weights(a.drgs))
    t_gen = time.perf_counter() - t
    t = time.perf_counter()
    cases = prepare_cases(df, hosp["hospital_id"])
    t_load = time.perf_counter() - t
    print(
        f"{a.cases:,} cases, {a.hospitals:,} hospitals, {a.drgs} DRGs; generate {t_gen:.2f} s, "
        f"load (code columns, yuan -> fen) {t_load:.2f} s"
    )

    pv = load_policy().at(2024)
    budgets = {
        "employee": Budget(40_000_000_000, 2_000_000_000),
        "resident": Budget(60_000_000_000, 3_000_000_000),
    }
    scores = hosp["assessment_score"].to_numpy()
    settle(price(cases, w, pv, hosp), pv, budgets, 2024, scores)  # warm numba and caches
    t_price, pr = best(lambda: price(cases, w, pv, hosp), a.repeat)
    t_cells, cells = best(lambda: build_cells(pr), a.repeat)
    t_settle, st = best(lambda: settle(pr, pv, budgets, 2024, scores, cells=cells), a.repeat)
    print(f"pricing rows (all case types, readmission linking): {t_price * 1e3:7.1f} ms")
    print(
        f"cells (hospital x DRG x fund x month, one sort) and per-hfm totals: {t_cells * 1e3:7.1f} ms "
        f"({len(cells.P):,} cells)"
    )
    print(
        "settlement (2 funds: cell points, PV, pre-settlement, annual, corridors, per-case split): "
        f"{t_settle * 1e3:7.1f} ms"
    )
    total = t_price + t_cells + t_settle
    print(f"pricing + cells + settlement after load: {total * 1e3:7.1f} ms  (target <= 500 ms)")
    t_index, _ = best(cases.index, a.repeat)
    print(
        f"  orders built at load (case id; patient, admit day for readmissions): {t_index * 1e3:.1f} ms; "
        f"counting them too: {(total + t_index) * 1e3:.1f} ms"
    )
    n_read = int(pr.readmit.sum())  # a modifier: cut cases of any type
    print(f"  readmissions cut {n_read:,}, pay_status ok {int(pr.payable.sum()):,}")

    # re-settlement after a settlement-parameter change: hospital x month totals only
    tots = [fund_totals(pr, f, cells) for f in (0, 1)]
    pv2 = (
        load_policy()
        .with_values(
            {
                "point_value.basis": "fund",
                "hospital_corridor.lower": 0.85,
                "region_corridor.enabled": True,
            }
        )
        .at(2024)
    )
    b2 = {k: Budget(int(v.budget_fen * 1.03), v.reserve_fen) for k, v in budgets.items()}

    def resettle():
        return [settle_fund(t, b2[t.fund], pv2, 2024, scores) for t in tots]

    resettle()
    t_re, fss = best(resettle, max(a.repeat, 5))
    print(
        f"re-settlement (budget +3%, fund basis, corridors changed; hospital x month): {t_re * 1e3:7.1f} ms "
        "(target <= 50 ms)"
    )
    from drgsim.settlement.scenarios import ScenarioParams, settle_scenarios

    sp1 = ScenarioParams.from_policies([pv2])
    t1 = tots[1]

    def one():
        return settle_scenarios(
            t1.points,
            t1.share_fen,
            t1.cost_fen,
            np.array([b2["resident"].budget_fen]),
            np.array([b2["resident"].reserve_fen]),
            sp1,
            scores,
        )

    one()
    t_one, _ = best(one, max(a.repeat, 5))
    print(f"  vectorized settlement, one scenario of one fund: {t_one * 1e3:.1f} ms")
    for S in (100, 1000):
        spS = ScenarioParams.from_policies([pv2] * S)
        bS = (b2["resident"].budget_fen * np.linspace(0.9, 1.1, S)).astype(np.int64)
        rS = np.full(S, b2["resident"].reserve_fen)
        tS, _ = best(
            lambda spS=spS, bS=bS, rS=rS: settle_scenarios(
                t1.points, t1.share_fen, t1.cost_fen, bS, rS, spS, scores
            ),
            1,
        )
        print(
            f"  {S:,} budget scenarios x {a.hospitals:,} hospitals x 12 months at once: {tS * 1e3:.0f} ms"
        )
    t_cp, _ = best(lambda: case_payments(pr, fss), a.repeat)
    print(f"  + re-splitting payments to the {a.cases:,} cases: {t_cp * 1e3:7.1f} ms")

    # scenario sweep building block: the same cells re-priced by binary search
    hc = pv["high_cost"]
    tiers = [{"rw_upto": 1.0, "k": 2.5}, {"rw_upto": None, "k": 1.8}]
    t_rep, _ = best(
        lambda: hfm_points(cells, cell_points(cells, tiers, 0.5, hc["beta"], 10.0)),
        max(a.repeat, 5),
    )
    print(f"cells: re-price new outlier thresholds {t_rep * 1e3:.2f} ms per scenario")


if __name__ == "__main__":
    main()
