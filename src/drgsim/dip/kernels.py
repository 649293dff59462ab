"""The DIP matching kernel: pure numba over integer ids (DIP.md "Matching a new case").

Codes are ids once (:mod:`drgsim.codes`); the catalogue is compiled once into arrays
(:class:`drgsim.dip.match.CompiledCatalogue`): packets sorted by code (so the smallest
index is the smallest code), core procedural packets grouped by diagnosis key (CSR) with
their procedure-id sets sorted, one conservative packet per key, and per principal code
the comprehensive packet for each fallback level and treatment type. The record checks
are the DRG grouper's own (:func:`drgsim.grouper.kernels.record_checks`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from drgsim.grouper.kernels import OK, record_checks, record_codes

# DIP statuses (drgsim.dip.match.DIP_STATUSES); the grouper's check statuses map onto them
ST_OK, ST_BLANK = 0, 1
# packet kinds (drgsim.dip.match.KINDS)
K_NONE, K_CORE, K_COMPREHENSIVE, K_BASE = 0, 1, 2, 3
N_LEVELS = 3  # comprehensive fallbacks: category, coarser prefix, chapter


@njit(inline="always")
def _sort_unique(buf, n):
    """Insertion sort of buf[:n] then drop repeats; returns the new length (n is small)."""
    for i in range(1, n):
        x = buf[i]
        j = i - 1
        while j >= 0 and buf[j] > x:
            buf[j + 1] = buf[j]
            j -= 1
        buf[j + 1] = x
    m = 0
    for i in range(n):
        if m == 0 or buf[i] != buf[m - 1]:
            buf[m] = buf[i]
            m += 1
    return m


@njit(inline="always")
def _contained(pk_ids, a, b, case, m):
    """Sorted set pk_ids[a:b] ⊆ sorted set case[:m] (one merge pass)."""
    j = 0
    for k in range(a, b):
        x = pk_ids[k]
        while j < m and case[j] < x:
            j += 1
        if j == m or case[j] != x:
            return False
        j += 1
    return True


@njit(inline="always")
def match_one(ck, pid, px, npx, cost, cost_ok, out):
    """Match one checked case: principal id ``pid``, procedure ids px[:npx] (sorted,
    unique). Writes (packet index or -1, kind, treatment type, status)."""
    tt = 0
    for k in range(npx):
        r = ck.rank[px[k]]
        if r > tt:
            tt = r
    out[2] = tt
    out[3] = ST_OK
    dk = ck.pdx_key[pid]
    if dk >= 0:
        if tt == 0:
            c = ck.cons[dk]
            if c >= 0:
                out[0] = c
                out[1] = K_BASE if ck.base[c] else K_CORE
                return
        else:
            best = -1
            best_n = -1
            best_d = 0.0
            for e in range(ck.dk_ptr[dk], ck.dk_ptr[dk + 1]):
                c = ck.dk_packets[e]  # ascending index = ascending code
                n = ck.pk_ptr[c + 1] - ck.pk_ptr[c]
                if n < best_n:
                    continue
                if not _contained(ck.pk_ids, ck.pk_ptr[c], ck.pk_ptr[c + 1], px, npx):
                    continue
                d = abs(np.float64(cost) - ck.mean[c]) if cost_ok else 0.0
                if n > best_n or d < best_d:  # equal count and distance: the earlier code stays
                    best = c
                    best_n = n
                    best_d = d
            if best >= 0:
                out[0] = best
                out[1] = K_CORE
                return
    for lv in range(N_LEVELS):
        c = ck.pdx_comp[pid, lv, tt]
        if c >= 0:
            out[0] = c
            out[1] = K_COMPREHENSIVE
            return
    out[0] = -1
    out[1] = K_NONE
    out[3] = ST_BLANK


@njit(parallel=True, cache=True, nogil=True)
def match_kernel(kt, ck, dx_ptr, dx_ids, px_ptr, px_ids, pdx, sex, age_y, age_d, weight,
                 cost, cost_ok, translate, status_map, n_chunks,
                 out_packet, out_kind, out_tt, out_status, out_pid):
    """Match every record; ``pdx`` is the principal's id in the catalogue's principal
    vocabulary (used without translation), ``status_map`` maps grouper statuses to DIP's."""
    n = sex.shape[0]
    step = (n + n_chunks - 1) // n_chunks
    for ch in prange(n_chunks):
        lo = ch * step
        hi = min(n, lo + step)
        out = np.zeros(4, dtype=np.int32)
        dxbuf = np.empty(64, dtype=np.int32)
        pxbuf = np.empty(64, dtype=np.int32)
        for i in range(lo, hi):
            dxbuf, nd, pxbuf, npx = record_codes(dx_ptr, dx_ids, px_ptr, px_ids, i, dxbuf,
                                                 pxbuf)
            st = record_checks(kt, dxbuf, nd, pxbuf, npx, sex[i], age_y[i], age_d[i],
                               weight[i], translate)
            if st != OK:
                out_packet[i] = -1
                out_kind[i] = K_NONE
                out_tt[i] = -1
                out_status[i] = status_map[st]
                out_pid[i] = -1
                continue
            pid = dxbuf[0] if translate else pdx[i]
            m = _sort_unique(pxbuf, npx)
            match_one(ck, pid, pxbuf, m, cost[i], cost_ok[i], out)
            out_packet[i] = out[0]
            out_kind[i] = out[1]
            out_tt[i] = out[2]
            out_status[i] = out[3]
            out_pid[i] = pid


# ---------------------------------------------------------------- catalogue build

@njit(cache=True, nogil=True)
def _sort_runs(order, comp, share):
    """Within each run of equal ``comp`` along ``order``, order the rows by ``share``."""
    n = order.shape[0]
    i = 0
    while i < n:
        j = i + 1
        while j < n and comp[order[j]] == comp[order[i]]:
            j += 1
        if j - i > 1:
            run = order[i:j].copy()
            sub = np.argsort(share[run], kind="mergesort")
            for a in range(j - i):
                order[i + a] = run[sub[a]]
        i = j


def canonical_order(group: np.ndarray, cost: np.ndarray, share: np.ndarray) -> np.ndarray:
    """The rows ordered by (group, cost, share), as ``np.lexsort((share, cost, group))`` but
    by one integer sort when the costs are whole fen in [0, 2**40) and the groups fit the
    rest of 63 bits (what the build's rows carry); ties on all three stay in any order
    (their contributions to every sum are equal). ``share`` without NaN."""
    g = np.asarray(group, np.int64)
    c = np.asarray(cost, np.float64)
    n = len(c)
    if n == 0:
        return np.zeros(0, np.int64)
    ci = c.astype(np.int64)
    if not (c.min() >= 0 and ci.max() < 2**40 and g.min() >= 0 and g.max() < 2**23
            and np.array_equal(ci, c)):
        return np.lexsort((share, c, g))
    comp = (g << 40) | ci
    order = np.argsort(comp)
    _sort_runs(order, comp, np.asarray(share, np.float64))
    return order
