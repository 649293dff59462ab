"""Small random grouped-case tables for property tests and benchmarks (not a region model)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def fake_weights(n_drg: int = 50, seed: int = 0, m_all_yuan: float = 10_000.0) -> pd.DataFrame:
    """A weights table of ``n_drg`` DRGs (keys D0001...) with an 'all' row."""
    rng = np.random.default_rng(seed)
    rw = np.round(rng.lognormal(0.0, 0.7, n_drg), 4)
    keys = [f"D{i:03d}1" for i in range(n_drg)]
    m = np.floor(rw * m_all_yuan * 100 + 0.5).astype(np.int64)
    w = pd.DataFrame(
        {
            "key": keys + ["all"],
            "level": ["drg"] * n_drg + ["all"],
            "rw": np.r_[rw, 1.0],
            "points": np.r_[rw, 1.0] * 100,
            "mean_cost_fen": np.r_[m, int(m_all_yuan * 100)],
            "mean_los": 8.0,
            "per_diem_rate_fen": 80_000.0,
            "per_diem_points": 80_000.0 / (m_all_yuan * 100) * 100,
        }
    )
    w.attrs["m_all_fen"] = m_all_yuan * 100
    return w


def fake_cases(
    n: int, n_hosp: int = 5, n_drg: int = 50, seed: int = 0, year: int = 2024
) -> pd.DataFrame:
    """Random grouped cases: both funds, 12 months, some readmissions, 2% ungroupable."""
    rng = np.random.default_rng(seed)
    w = fake_weights(n_drg, 0)
    d = rng.integers(0, n_drg, n)
    cost = np.round(w["mean_cost_fen"].to_numpy()[d] / 100 * rng.lognormal(0, 0.6, n), 2)
    day = rng.integers(0, 360, n)
    los = np.maximum(1, rng.poisson(7, n))
    admit = np.datetime64(f"{year}-01-01") + day
    disch = admit + los
    disch = np.minimum(disch, np.datetime64(f"{year}-12-31"))
    ungroup = rng.random(n) < 0.02
    hosp = rng.integers(0, n_hosp, n)
    patient = rng.integers(0, max(1, n // 3), n)
    # about 5% are follow-ups of an earlier case: same patient, hospital and DRG, 0-30 days later
    fu = np.flatnonzero(rng.random(n) < 0.05)
    src = rng.integers(0, n, len(fu))
    keep = src != fu
    fu, src = fu[keep], src[keep]
    patient[fu], hosp[fu], d[fu], ungroup[fu] = patient[src], hosp[src], d[src], ungroup[src]
    admit[fu] = np.minimum(
        disch[src] + rng.integers(0, 31, len(fu)), np.datetime64(f"{year}-12-31")
    )
    disch[fu] = np.minimum(admit[fu] + los[fu], np.datetime64(f"{year}-12-31"))
    drg = np.asarray(w["key"].to_numpy()[d], dtype=object)
    drg[ungroup] = "0000"
    status = np.where(ungroup, "ungroupable", "ok")
    return pd.DataFrame(
        {
            "case_id": np.arange(1, n + 1),
            "patient_id": patient,
            "hospital_id": np.char.add("H", np.char.zfill(hosp.astype(str), 4)),
            "fund": np.where(rng.random(n) < 0.4, "employee", "resident"),
            "admit_date": admit,
            "discharge_date": disch,
            "los_days": (disch - admit).astype(np.int64),
            "total_cost": cost,
            "patient_share": np.round(cost * 0.3, 2),
            "drg": drg,
            "adrg": [x[:3] if x != "0000" else "" for x in drg],
            "mdc": "MDCX",
            "status": status,
        }
    )


def fake_hospitals(n_hosp: int = 5, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "hospital_id": [f"H{i:04d}" for i in range(n_hosp)],
            "level": rng.choice(["三级", "二级", "一级"], n_hosp),
            "assessment_score": np.round(rng.uniform(70, 100, n_hosp), 1),
        }
    )
