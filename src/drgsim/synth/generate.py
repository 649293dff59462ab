"""Generate one fixed-size block of discharges, fully vectorized.

Every block draws from its own random streams, keyed by ``(seed, year, month, block)``,
so a block's rows do not depend on how blocks are grouped into chunks, and the dirt
stream is separate from the clean one: the same call with ``dirty_rate=0`` gives every
dirty row's clean twin. Money is computed in integer fen, so sums are exact.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from drgsim.synth import kernels as K
from drgsim.synth import params as P
from drgsim.synth.casemix import (
    AGE_ADULT,
    AGE_INFANT,
    AGE_NEONATE,
    KIND_SURGICAL,
    PER_DIEM_MIN_LOS,
    SEX_ANY,
    Catalogue,
)
from drgsim.synth.hospitals import Hospitals

N_FILL_DX = 6  # filler secondary slots
N_FILL_PROC = 2
_EPOCH = dt.date(1970, 1, 1)

#: output column order of the discharges table
COLUMNS = (
    "case_id", "patient_id", "hospital_id", "fund", "sex", "age_years", "age_days",
    "birth_weight_g", "dept", "admit_date", "discharge_date", "los_days", "discharge_mode",
    "diagnoses", "procedures", "total_cost", "drug_cost", "consumable_cost", "exam_cost",
    "service_cost", "deductible", "coinsurance", "self_pay", "synth_drg", "synth_followup",
    "synth_followup_of", "synth_dirt",
)
MONEY_COLUMNS = ("total_cost", "drug_cost", "consumable_cost", "exam_cost", "service_cost",
                 "deductible", "coinsurance", "self_pay")
INT_COLUMNS = {"sex": pa.int16(), "age_years": pa.int32(), "age_days": pa.int32(),
               "birth_weight_g": pa.int32(), "los_days": pa.int32(),
               "discharge_mode": pa.int16()}
MONEY_TYPE = pa.decimal128(14, 2)


@dataclass(frozen=True)
class BlockSpec:
    """Where a block sits: its month, its index in the month and its first row."""

    year: int
    year_index: int
    month: int
    block: int
    n: int
    row0: int  # first row's index within the month
    gi0: int  # first row's index within the whole region (for patient ids)


@dataclass
class Block:
    """A generated block: the clean state as arrays, before dirt and arrow conversion."""

    spec: BlockSpec
    arrays: dict[str, np.ndarray]
    nulls: dict[str, np.ndarray]
    dx_slots: np.ndarray  # (S, n) dx ids, -1 empty (slot-major)
    proc_slots: np.ndarray  # (2 + N_FILL_PROC, n) proc ids, -1 empty
    fund_fen: np.ndarray
    per_diem: np.ndarray
    is_employee: np.ndarray


def _rng(seed: int, spec: BlockSpec, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(
        [seed & 0xFFFFFFFF, seed >> 32, spec.year, spec.month, spec.block, stream])))


def money(fen: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """int64 fen -> decimal128(14, 2) yuan, exactly (two's complement 128-bit words)."""
    fen = np.ascontiguousarray(fen, dtype=np.int64)
    words = np.empty((len(fen), 2), dtype=np.int64)
    words[:, 0] = fen
    words[:, 1] = fen >> 63
    validity = None
    nulls = 0
    if null is not None and null.any():
        validity = pa.py_buffer(np.packbits(~null, bitorder="little"))
        nulls = int(null.sum())
    return pa.Array.from_buffers(MONEY_TYPE, len(fen), [validity, pa.py_buffer(words)],
                                 null_count=nulls)


def _days(d: dt.date) -> int:
    return (d - _EPOCH).days


def generate_block(cat: Catalogue, hosp: Hospitals, spec: BlockSpec, seed: int) -> Block:
    """Draw the clean rows of one block."""
    rng = _rng(seed, spec, 0)
    n = spec.n
    a_cat = cat
    # ---- hospital, ADRG, principal, procedures ------------------------------------------
    h = hosp.sample(rng.random(n))
    level = hosp.level[h].astype(np.int64)
    a = a_cat.adrg_by_level.sample(level, rng.random(n))
    # a principal "entry" (the diagnosis within its ADRG's pool) carries its own typical
    # procedure combinations and filler procedures (DIP-like concentration, casemix.py)
    # except an atypical few, whose procedures come from the whole ADRG's pools
    entry = a_cat.principal_entry.sample(a, rng.random(n))
    u_c = rng.random(n)
    t = P.ATYPICAL_PROC_SHARE
    atypical = u_c < t
    combo = a_cat.entry_combos.sample(np.where(atypical, -1, entry), (u_c - t) / (1 - t))
    at = np.flatnonzero(atypical)
    combo[at] = a_cat.combos.sample(a[at], u_c[at] / t)

    # ---- follow-up admissions: row 2k+1 may follow row 2k ----------------------------
    idx = np.arange(n)
    fu = (idx % 2 == 1) & (rng.random(n) < 2 * P.FOLLOWUP_SHARE)
    fkind = np.searchsorted(np.cumsum(P.FOLLOWUP_P), rng.random(n), side="right")
    fkind = np.minimum(fkind, len(P.FOLLOWUP_KINDS) - 1)
    u_other_h = rng.random(n)
    src = np.where(fu, idx - 1, idx)
    fu &= a_cat.adrg_age[a[src]] != AGE_NEONATE
    fu &= a_cat.adrg_age[a[src]] != AGE_INFANT
    # another ADRG only between unconstrained ADRGs, another hospital only with >1 hospital
    constrained = (a_cat.adrg_sex[a] != SEX_ANY) | (a_cat.adrg_age[a] != AGE_ADULT)
    other_adrg = fu & (fkind == 3)
    bad = other_adrg & (constrained | constrained[src] | (a == a[src]))
    fkind[bad] = 0
    if len(hosp) < 2:
        fkind[fu & (fkind == 2)] = 0
    copy_case = fu & (fkind != 3)
    a = np.where(copy_case, a[src], a)
    entry = np.where(copy_case, entry[src], entry)
    atypical = np.where(copy_case, atypical[src], atypical)
    combo = np.where(copy_case, combo[src], combo)
    pdx = np.where(entry >= 0, a_cat.entry_dx[np.maximum(entry, 0)], -1)
    h_other = (h[src] + 1 + (u_other_h * max(len(hosp) - 1, 1)).astype(np.int64)) % len(hosp)
    h = np.where(fu, np.where(fkind == 2, h_other, h[src]), h)
    level = hosp.level[h].astype(np.int64)
    fkind = np.where(fu, fkind, -1)

    mdc_kind = a_cat.adrg_kind[a]

    # ---- demographics -------------------------------------------------------------------
    u = rng.random((6, n))
    zn = rng.standard_normal((2, n))
    nb_exp = rng.exponential(2.5, n)
    sex, age, age_days, weight = (np.empty(n, np.int64) for _ in range(4))
    age0, newborn, employee = (np.empty(n, np.bool_) for _ in range(3))
    K.demographics(a, fu, a_cat.adrg_sex, a_cat.adrg_age, a_cat.adrg_days_max,
                   a_cat.adrg_weight_band, u, zn, nb_exp, P.EMPLOYEE_ADULT_SHARE,
                   sex, age, age0, age_days, newborn, weight, employee)
    gi = spec.gi0 + idx
    pid_num = np.where(fu, gi - 1, gi)
    pid_num = (pid_num * 7_919_113 + 1_234_567) % 10_000_000_000 + 10_000_000_000

    # ---- secondary diagnoses and severity --------------------------------------------
    t0 = a_cat.dx_excl[np.maximum(pdx, 0)]
    t0 = np.where(pdx >= 0, t0, -1)
    dom = a_cat.adrg_domain[a].astype(np.int64)
    age_f = np.where(age >= 65, 1.3, np.where(age < 18, 0.5, 1.0))
    p_mcc = P.LEVEL_MCC[level] * age_f
    p_cc = P.LEVEL_CC[level] * age_f
    us = rng.random(n)
    cls = np.where(us < p_mcc, 2, np.where(us < p_mcc + p_cc, 1,
                   np.where(us < p_mcc + p_cc + P.EXCLUDED_SHARE, 3, 0)))
    sev = np.full(n, -1, np.int64)
    want = (cls == 1) | (cls == 2)
    pool = dom * 2 + np.where(cls == 2, 1, 0)
    for _ in range(3):
        todo = np.flatnonzero(want & (sev < 0))
        u_r = rng.random(n)
        cand = a_cat.cc_dx.sample(pool[todo], u_r[todo])
        ok = (cand >= 0) & ((t0[todo] < 0) | (a_cat.dx_cc_table[np.maximum(cand, 0)] != t0[todo]))
        sev[todo[ok]] = cand[ok]
    u_r = rng.random(n)
    todo = np.flatnonzero(want & (sev < 0))
    sev[todo] = a_cat.safe_cc.sample(cls[todo] - 1, u_r[todo])
    u_r = rng.random(n)
    ex = np.flatnonzero((cls == 3) & (t0 >= 0))
    sev[ex] = a_cat.excluded_dx.sample(t0[ex], u_r[ex])
    need = a_cat.adrg_needs_second[a]
    second = np.full(n, -1, np.int64)
    u_r = rng.random(n)
    w1 = np.flatnonzero(need == 1)
    second[w1] = a_cat.second_dx.sample(a[w1], u_r[w1])
    u_r = rng.random(n)
    w2 = np.flatnonzero(need == 2)
    reg = a_cat.dx_region[np.maximum(pdx[w2], 0)]
    second[w2] = a_cat.zone_second.sample(np.where(reg >= 0, reg, -1), u_r[w2])
    lam = np.clip(1.3 + 0.025 * (age - 40), 0.3, 3.5)
    n_fill = np.empty(n, np.int64)
    K.poisson(lam, np.exp(-lam), rng.random(n), N_FILL_DX, n_fill)
    # filler slots (slot-major): never a repeat of the principal, the rule's second code or
    # an earlier filler
    fill = np.empty((N_FILL_DX, n), np.int64)
    fd = a_cat.filler_dx
    K.fill_codes(n_fill, dom, pdx, second, rng.random((N_FILL_DX, n)), fd.values, fd.cdf,
                 fd.guide, fd.res, fill)
    second = np.where(second == pdx, -1, second)
    sev = np.where((sev == pdx) | (sev == second), -1, sev)
    dx_slots = np.vstack([pdx, second, sev, fill])  # slot-major (S, n)
    # effective CC/MCC as the grouper sees it (fillers are never CC/MCC)
    eff = np.zeros(n, np.int64)
    for code in (second, sev):
        c = np.maximum(code, 0)
        lvl = np.where(code >= 0, a_cat.dx_level[c], 0)
        counts = (lvl > 0) & ((t0 < 0) | (a_cat.dx_cc_table[c] != t0))
        eff = np.maximum(eff, np.where(counts, lvl, 0))
    drg = a_cat.adrg_drg[a, eff]

    # ---- procedures ------------------------------------------------------------------
    cp = a_cat.combo_procs[np.maximum(combo, 0)]
    cp[combo < 0] = -1
    has_main = cp[:, 0] >= 0
    n_fp = np.where(rng.random(n) < np.where(has_main, 0.55, 0.4),
                    1 + (rng.random(n) < 0.3), 0)
    n_fp = np.where(entry >= 0, n_fp, 0)
    fp = np.empty((N_FILL_PROC, n), np.int64)
    fpool = a_cat.filler_proc  # a short list per principal entry
    fill_pool = np.where(atypical, len(a_cat.entry_dx), np.maximum(entry, 0))  # last: whole
    K.fill_codes(n_fp, fill_pool, cp[:, 0], cp[:, 1], rng.random((N_FILL_PROC, n)),
                 fpool.values, fpool.cdf, fpool.guide, fpool.res, fp)
    proc_slots = np.vstack([cp[:, 0], cp[:, 1], fp])
    surgical = has_main & (mdc_kind == KIND_SURGICAL)

    # ---- discharge mode, LOS, cost ------------------------------------------------------
    zc = rng.standard_normal(n)
    ze = rng.standard_normal(n)
    um = rng.random((9, n))
    ls_exp = rng.exponential(45.0, n)
    infl = (1 + P.INFLATION) ** spec.year_index
    mode = np.empty(n, np.int64)
    cost = np.empty(n, np.float64)
    los = np.empty(n, np.int64)
    sigma = a_cat.adrg_sigma[a]
    ez = np.exp(sigma * zc - sigma**2 / 2)
    el = np.exp(0.42 * (0.75 * zc + 0.66 * ze) - 0.09)
    K.cost_los(a, eff, level, h, ez, el, um, ls_exp, a_cat.adrg_cost, a_cat.adrg_los,
               a_cat.adrg_sigma, a_cat.adrg_per_diem, hosp.efficiency, P.SEVERITY_COST,
               P.SEVERITY_LOS, P.LEVEL_COST, P.LEVEL_LOS, np.cumsum(P.DISCHARGE_P),
               P.DISCHARGE_MODES, P.DEATH_EXTRA_MCC, P.LOW_SHARE_EARLY_EXIT, P.LOW_SHARE,
               P.HIGH_SHARE, P.LONG_STAY_SHARE, P.PER_DIEM_COST[0], P.PER_DIEM_COST[1],
               float(PER_DIEM_MIN_LOS), infl, a_cat.cost_scale, a_cat.los_scale,
               mode, cost, los)

    # ---- dates: discharge in this month; a follow-up's admission after its index case ----
    first = dt.date(spec.year, spec.month, 1)
    nxt = dt.date(spec.year + (spec.month == 12), spec.month % 12 + 1, 1)
    n_days = (nxt - first).days
    gap = np.where(fkind == 1, P.READMIT_DAYS + 1,
                   1 + np.floor(rng.random(n) * P.READMIT_DAYS)).astype(np.int64)
    ddis = np.floor(rng.random(n) * n_days).astype(np.int64)
    # pair (2k, 2k+1): index discharged on d, follow-up admitted on d + gap
    nxt_i = np.minimum(idx + 1, n - 1)
    pair_first = np.zeros(n, bool)
    pair_first[:-1] = fu[1:]
    los_f = np.minimum(los[nxt_i], np.maximum(n_days - 1 - gap[nxt_i], 1))
    room = np.maximum(n_days - gap[nxt_i] - los_f, 1)
    d_index = np.floor(rng.random(n) * room).astype(np.int64)
    ddis = np.where(pair_first, d_index, ddis)
    los = np.where(fu, np.minimum(los, np.maximum(n_days - 1 - gap, 1)), los)
    adm_f = ddis[src] + gap
    ddis = np.where(fu, np.minimum(adm_f + los, n_days - 1), ddis)
    los = np.where(fu, ddis - adm_f, los)
    los = np.maximum(los, 0)
    discharge = _days(first) + ddis
    admit = discharge - los

    # ---- money (fen) ---------------------------------------------------------------------
    total = np.empty(n, np.int64)
    parts = np.empty((n, 3), np.int64)
    service, self_pay, ded, coins, fund_fen = (np.empty(n, np.int64) for _ in range(5))
    K.money(cost, mdc_kind, P.COST_SHARES, rng.standard_normal((3, n)), rng.standard_normal(n),
            P.SELF_PAY_SHARE, employee, level, P.DEDUCTIBLE, P.REIMBURSE,
            total, parts, service, self_pay, ded, coins, fund_fen)
    per_diem = a_cat.adrg_per_diem[a] & (los >= PER_DIEM_MIN_LOS)

    dept_col = a * 2 + surgical.astype(np.int64)
    month_base = spec.year * 10_000_000_000 + spec.month * 100_000_000
    arrays = {
        "case_id": month_base + spec.row0 + idx + 1,
        "patient_id": pid_num,
        "hospital": h,
        "employee": employee,
        "sex": sex,
        "age_years": age,
        "age_days": age_days,
        "birth_weight_g": weight,
        "dept": dept_col,
        "admit_date": admit,
        "discharge_date": discharge,
        "los_days": los,
        "discharge_mode": mode,
        "total_cost": total,
        "drug_cost": parts[:, 0],
        "consumable_cost": parts[:, 1],
        "exam_cost": parts[:, 2],
        "service_cost": service,
        "deductible": ded,
        "coinsurance": coins,
        "self_pay": self_pay,
        "drg": drg,
        "adrg": a,
        "followup": fkind,
        "followup_of": np.where(fu, month_base + spec.row0 + idx, 0),
        "newborn": newborn & (age_days <= 28),
        "age0": age0,
        "n_dx": (dx_slots >= 0).sum(axis=0),
        "n_proc": (proc_slots >= 0).sum(axis=0),
    }
    nulls = {
        "age_days": ~age0,
        "birth_weight_g": ~(newborn & (age_days <= 28)),
    }
    return Block(spec, arrays, nulls, dx_slots, proc_slots, fund_fen, per_diem,
                 employee)
