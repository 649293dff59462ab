"""Benchmark records: the synthetic region generator when available, else codes sampled
from the scheme's own tables (the fallback the foundation issue allows)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from drgsim.scheme.paths import resolve_scheme_dir
from drgsim.scheme.tables import load_tables


def sampled_records(n: int, seed: int = 1, scheme: str = "chs_drg_11") -> pa.Table:
    """n records whose codes are drawn from the scheme's lists (vectorised)."""
    st = load_tables(resolve_scheme_dir(scheme))
    rng = np.random.default_rng(seed)
    pdx = np.array(sorted(set(st["mdc_principal_dx.csv"].get("code"))), dtype=object)
    sdx = np.array(sorted(set(st["cc.csv"].get("code")) | set(pdx[:5000])), dtype=object)
    codes = st["adrg_codes.csv"]
    px = np.array(sorted({c for c, lst in zip(codes.get("code"), codes.get("list"))
                          if lst.startswith("proc")}), dtype=object)
    n_sdx = rng.integers(0, 6, n)
    n_px = np.where(rng.random(n) < 0.45, rng.integers(1, 4, n), 0)
    dx_pieces = np.empty(n, dtype=object)
    px_pieces = np.empty(n, dtype=object)
    p = pdx[rng.integers(0, len(pdx), n)]
    s = sdx[rng.integers(0, len(sdx), (n, 5))]
    q = px[rng.integers(0, len(px), (n, 3))]
    join = "|".join
    for k in range(6):
        m = n_sdx == k
        dx_pieces[m] = [join(r) for r in np.column_stack([p[m], s[m, :k]])] if k else p[m]
    for k in range(4):
        m = n_px == k
        px_pieces[m] = [join(r) for r in q[m, :k]] if k else ""
    age = rng.integers(0, 95, n)
    return pa.table({
        "case_id": pa.array(np.char.add("c", np.arange(n).astype(str))),
        "sex": pa.array(rng.integers(1, 3, n).astype(str)),
        "age_years": pa.array(age.astype(str)),
        "age_days": pa.array(np.where(age == 0, rng.integers(0, 365, n), age * 365).astype(str)),
        "birth_weight_g": pa.array(np.where(age == 0, rng.integers(800, 4500, n), 0).astype(str)),
        "dept": pa.array(np.full(n, "0301")),
        "los_days": pa.array(rng.integers(1, 30, n).astype(str)),
        "discharge_mode": pa.array(np.full(n, "1")),
        "diagnoses": pa.array(dx_pieces.tolist(), pa.string()),
        "procedures": pa.array(px_pieces.tolist(), pa.string()),
    })


def benchmark_records(n: int, seed: int = 1, text: bool = False) -> tuple[pa.Table, str]:
    """Records for grouping benchmarks: the synthetic region generator (typed parquet-style
    columns, or CSV-style text with ``text=True``)."""
    from drgsim.synth import discharges

    kind = "text" if text else "typed"
    return discharges(n, seed=seed, text=text), f"synthetic region generator, {kind} columns"
