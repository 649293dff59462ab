"""Numba kernels for the per-row parts of block generation that numpy does slowly.

They consume random numbers drawn beforehand by numpy (so the block's random streams, and
hence the data, stay defined by :mod:`drgsim.synth.generate`), and loop once over the rows
instead of making dozens of passes over temporary arrays.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _draw(values, cdf, guide, res, seg, u):
    pos = guide[seg * res + int(u * res)]
    x = seg + u
    while cdf[pos] <= x:
        pos += 1
    return values[pos]


@njit(cache=True, nogil=True)
def poisson(lam, p0, u, cap, out):
    """Poisson counts by inverse CDF (one uniform each), capped at ``cap``; ``p0`` is
    ``exp(-lam)`` (computed by numpy, which vectorizes it)."""
    for i in range(len(lam)):
        p = p0[i]
        f = p
        k = 0
        while u[i] >= f and k < cap:
            k += 1
            p *= lam[i] / k
            f += p
        out[i] = k


@njit(cache=True, nogil=True)
def fill_codes(n_fill, pool, avoid1, avoid2, u, values, cdf, guide, res, out):
    """``out[k, i]``: the k-th filler code of row i from pool ``pool[i]``, or -1.

    A filler that repeats ``avoid1[i]``, ``avoid2[i]`` or an earlier filler is dropped.
    """
    n_slots, n = out.shape
    for i in range(n):
        for k in range(n_slots):
            out[k, i] = -1
            if k >= n_fill[i]:
                continue
            c = _draw(values, cdf, guide, res, pool[i], u[k, i])
            if c == avoid1[i] or c == avoid2[i]:
                continue
            dup = False
            for j in range(k):
                if out[j, i] == c:
                    dup = True
            if not dup:
                out[k, i] = c


@njit(cache=True, nogil=True)
def money(cost, kind, shares_base, z, zself, self_mean, employee, level, deductible, reimburse,
          total, parts, service, self_pay, ded, coins, fund):
    """Split each case's cost (yuan) into fen: parts, patient share and fund share.

    ``parts[i]`` = drugs, consumables, exams (floored); services take the rest, so the parts
    always add up to the total exactly.
    """
    n = len(cost)
    for i in range(n):
        t = np.rint(cost[i] * 100.0)
        if t < 10_000.0:
            t = 10_000.0
        tot = np.int64(t)
        total[i] = tot
        k = kind[i]
        if k > 2:
            k = 2
        rest = 1.0 - (shares_base[k, 0] + shares_base[k, 1] + shares_base[k, 2])
        if rest < 0.05:
            rest = 0.05
        s0 = shares_base[k, 0] * np.exp(0.25 * z[0, i])
        s1 = shares_base[k, 1] * np.exp(0.25 * z[1, i])
        s2 = shares_base[k, 2] * np.exp(0.25 * z[2, i])
        norm = s0 + s1 + s2 + rest
        s0 /= norm
        s1 /= norm
        s2 /= norm
        p0 = np.int64(np.floor(tot * s0))
        p1 = np.int64(np.floor(tot * s1))
        p2 = np.int64(np.floor(tot * s2))
        parts[i, 0] = p0
        parts[i, 1] = p1
        parts[i, 2] = p2
        service[i] = tot - p0 - p1 - p2
        sh = self_mean * np.exp(0.6 * zself[i] - 0.18) + 0.1 * s1
        if sh > 0.45:
            sh = 0.45
        sp = np.int64(np.rint(tot * sh))
        self_pay[i] = sp
        inpol = tot - sp
        f = 0 if employee[i] else 1
        d = deductible[f, level[i]] * 100
        if d > inpol:
            d = inpol
        ded[i] = d
        c = np.int64(np.rint((inpol - d) * (1.0 - reimburse[f, level[i]])))
        coins[i] = c
        fund[i] = inpol - d - c


@njit(cache=True, nogil=True)
def join_codes(slots, code_off, code_data, sep):
    """``sep``-join each row's codes as Arrow buffers; ``slots[k, i]`` is row i's k-th code
    id into a string dictionary (-1: none)."""
    s, n = slots.shape
    off = np.empty(n + 1, np.int32)
    off[0] = 0
    for i in range(n):
        length = 0
        first = True
        for k in range(s):
            c = slots[k, i]
            if c >= 0:
                if not first:
                    length += 1
                length += code_off[c + 1] - code_off[c]
                first = False
        off[i + 1] = off[i] + length
    data = np.empty(off[n], np.uint8)
    for i in range(n):
        p = off[i]
        first = True
        for k in range(s):
            c = slots[k, i]
            if c >= 0:
                if not first:
                    data[p] = sep
                    p += 1
                for b in range(code_off[c], code_off[c + 1]):
                    data[p] = code_data[b]
                    p += 1
                first = False
    return off, data


_PAIRS = np.array([ord(c) for i in range(100) for c in f"{i:02d}"], np.uint8)


def format_ints(values):
    """Non-negative integers (< 10**18) as decimal strings, as Arrow offset and data buffers."""
    return _format_ints(values, _PAIRS)


@njit(cache=True, nogil=True)
def _format_ints(values, pairs):
    n = len(values)
    off = np.empty(n + 1, np.int32)
    off[0] = 0
    for i in range(n):
        v = values[i]
        d = 1
        p = 10
        while d < 18 and v >= p:
            p *= 10
            d += 1
        off[i + 1] = off[i] + d
    data = np.empty(off[n], np.uint8)
    for i in range(n):
        v = values[i]
        p = off[i + 1] - 1
        end = off[i]
        while p - 1 >= end:  # two digits at a time
            r = v % 100
            v //= 100
            data[p] = pairs[2 * r + 1]
            data[p - 1] = pairs[2 * r]
            p -= 2
        if p >= end:
            data[p] = 48 + v % 10
    return off, data


@njit(cache=True, nogil=True)
def sample(values, cdf, guide, start, res, seg, u, out):
    """``out[i]``: a draw from pool ``seg[i]`` (inverse CDF with a guide table); -1 when the
    pool is empty or ``seg[i] < 0``."""
    for i in range(len(seg)):
        s = seg[i]
        if s < 0 or start[s + 1] == start[s]:
            out[i] = -1
        else:
            out[i] = _draw(values, cdf, guide, res, s, u[i])


@njit(cache=True, nogil=True)
def cost_los(a, eff, level, h, ez, el, um, ls_exp, adrg_cost, adrg_los, adrg_sigma,
             adrg_per_diem, efficiency, sev_cost, sev_los, level_cost, level_los, mode_cdf,
             modes, death_extra, low_early, low_share, high_share, long_share, per_day_lo,
             per_day_hi, min_long, infl, cost_scale, los_scale, mode_out, cost_out, los_out):
    """Discharge mode, cost (yuan) and LOS (days) of each case; see generate.py for the model.

    ``ez`` and ``el`` are the lognormal factors of cost and LOS (numpy computes the exps)."""
    n = len(a)
    n_modes = len(modes)
    for i in range(n):
        m = 0
        while m < n_modes - 1 and um[0, i] >= mode_cdf[m]:
            m += 1
        if eff[i] == 2 and um[8, i] < death_extra:
            m = 4
        mode = modes[m]
        mode_out[i] = mode
        ai = a[i]
        e = efficiency[h[i]]
        cost = (adrg_cost[ai] * sev_cost[eff[i]] * level_cost[level[i]] * e * infl
                * ez[i] * cost_scale)
        los = (adrg_los[ai] * sev_los[eff[i]] * level_los[level[i]] * np.sqrt(e)
               * el[i] * los_scale)
        early = (mode == 2 or mode == 4 or mode == 5) and um[2, i] < low_early
        low = early or um[1, i] < low_share
        if low:
            cost *= 0.1 + 0.32 * um[4, i]
            los *= 0.15 + 0.35 * um[5, i]
        elif um[3, i] < high_share:
            cost *= 2.3 + 2.5 * um[4, i]
            los *= 1.5 + um[5, i]
        if adrg_per_diem[ai] and um[6, i] < long_share and not low:
            los = min_long + np.floor(ls_exp[i])
            cost = los * (per_day_lo + (per_day_hi - per_day_lo) * um[7, i]) \
                * level_cost[level[i]] * infl
        cost_out[i] = cost
        r = np.rint(los)
        los_out[i] = np.int64(r) if r > 1 else 1


@njit(cache=True, nogil=True)
def demographics(a, fu, adrg_sex, adrg_age, adrg_days_max, band, u, zn, nb_exp, emp_share,
                 sex, age, age0, age_days, newborn, weight, employee):
    """Sex, age, age in days, birth weight and fund of each case by its ADRG's profile
    (profiles: 0 adult, 1 obstetric, 2 neonate, 3 infant, 4 male, 5 female); a follow-up
    row (``fu[i]``) is the patient of row i - 1."""
    for i in range(len(a)):
        ai = a[i]
        prof = adrg_age[ai]
        s = adrg_sex[ai]
        if s == 0:
            s = 1 if u[0, i] < 0.52 else 2
        g = min(max(57.0 + 17.0 * zn[0, i], 18.0), 98.0)
        if u[1, i] < 0.09:
            g = 1.0 + 17.0 * u[2, i]
        if prof == 1:
            g = min(max(29.0 + 5.0 * zn[1, i], 16.0), 48.0)
        elif prof == 4:
            g = min(max(62.0 + 14.0 * zn[0, i], 18.0), 95.0)
        elif prof == 5:
            g = min(max(46.0 + 14.0 * zn[0, i], 16.0), 90.0)
        nb = prof == 2
        zero = nb or prof == 3 or (prof == 0 and u[1, i] > 0.985)
        if zero:
            g = 0.0
        if nb:
            dmax = adrg_days_max[ai] if adrg_days_max[ai] >= 0 else 28
            d = min(np.floor(nb_exp[i]), dmax)
        else:
            d = 29.0 + np.floor(u[3, i] * 336.0)
        lo = band[ai, 0] if band[ai, 0] > 0 else (600 if band[ai, 1] > 0 else 2500)
        hi = band[ai, 1] if band[ai, 1] > 0 else 4300
        weight[i] = np.int64(lo + (hi - lo + 1) * u[4, i])
        if fu[i] and i > 0:
            sex[i] = sex[i - 1]
            age[i] = age[i - 1]
            age0[i] = age0[i - 1]
            age_days[i] = age_days[i - 1]
            newborn[i] = newborn[i - 1]
            employee[i] = employee[i - 1]
        else:
            sex[i] = s
            age[i] = np.int64(g)
            age0[i] = zero
            age_days[i] = np.int64(d)
            newborn[i] = nb
            employee[i] = age[i] >= 18 and u[5, i] < emp_share and not zero
