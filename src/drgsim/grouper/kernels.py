"""The CHS-DRG grouping kernel: pure numba functions over integer arrays.

Records arrive as CSR arrays of code ids (``dx_ptr``/``dx_ids``, ``px_ptr``/``px_ids``)
and int64 fields where ``ABSENT`` marks a missing value; the scheme arrives as a
:class:`~drgsim.scheme.compiled.KernelTables`. The algorithm is section 4 of the scheme
README, one record at a time inside a parallel loop over chunks of records.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from drgsim.scheme.compiled import ABSENT, NO_MAX, NO_MIN

# status ids (drgsim.scheme.spec.STATUSES)
OK, UNGROUPABLE, AMBIGUOUS, CHECK_FAILED, DX_UNMAPPABLE, PX_UNMAPPABLE = range(6)

# membership flag bits per rule: dx list (principal, any, secondary), dx2 list (same),
# proc list (main, any), proc2 list (main, any)
_DX_BASE = (0, 3)
_PX_BASE = (6, 8)


@njit(inline="always")
def _bound_fails(v, lo, hi):
    """A bound that exists fails when the field is absent or outside [lo, hi]."""
    if lo == NO_MIN and hi == NO_MAX:
        return False
    return v == ABSENT or v < lo or v > hi


@njit(inline="always")
def _dx_test(flags, base, how):
    # how: 1 principal, 2 any, 3 secondary  -> bit base + how - 1
    return (flags >> (base + how - 1)) & 1


@njit(inline="always")
def _effective(kt, dx, nd, want_mcc):
    """Some secondary is an MCC (or CC) not excluded by the principal's exclusion table."""
    if nd == 0:
        return False
    t0 = kt.code_pdx_table[dx[0]]
    for k in range(1, nd):
        x = dx[k]
        lvl = kt.code_mcc[x] if want_mcc else kt.code_cc[x]
        if lvl and not (t0 >= 0 and kt.code_cc_table[x] == t0):
            return True
    return False


@njit(inline="always")
def _translate(target, lst, n):
    """Scheme README 4.1: in-place translation, an earlier position holding x gets t."""
    for i in range(n):
        x = lst[i]
        t = target[x]
        if t != x:
            j = 0
            while lst[j] != x:
                j += 1
            lst[j] = t


#: the field each record check (scheme README 4.2) tests, by :func:`check_reason`'s value
CHECK_FIELDS = ("", "sex", "age_years", "age_days", "birth_weight_g", "diagnoses")


@njit(inline="always")
def check_reason(nd, sex, age_y, age_d, weight):
    """Scheme README 4.2 record checks, first failure wins: 0 passes, else the index into
    :data:`CHECK_FIELDS` of the field that fails (``nd``: the record's diagnosis count)."""
    if sex != 1 and sex != 2:
        return 1
    if age_y == ABSENT:
        return 2
    if age_y == 0 and age_d == ABSENT:
        return 3
    if age_y == 0 and age_d <= 28 and weight == ABSENT:
        return 4
    if nd == 0:
        return 5
    return 0


@njit(cache=True, nogil=True)
def check_reasons(nd, sex, age_y, age_d, weight):
    """:func:`check_reason` of every record (int8 array), for callers that read the fields
    without grouping (the DIP catalogue build)."""
    n = sex.shape[0]
    out = np.zeros(n, dtype=np.int8)
    for i in range(n):
        out[i] = check_reason(nd[i], sex[i], age_y[i], age_d[i], weight[i])
    return out


@njit(inline="always")
def record_checks(kt, dx, nd, px, npx, sex, age_y, age_d, weight, translate):
    """Scheme README 4.1 translation (in place) and 4.2 record checks: OK or the failing
    status. Shared by every method that groups records (DRG here, DIP in drgsim.dip)."""
    if translate:
        for k in range(nd):
            if kt.code_dx_target[dx[k]] < 0:
                return DX_UNMAPPABLE
        for k in range(npx):
            if kt.code_px_target[px[k]] < 0:
                return PX_UNMAPPABLE
        _translate(kt.code_dx_target, dx, nd)
        _translate(kt.code_px_target, px, npx)
    if check_reason(nd, sex, age_y, age_d, weight) != 0:
        return CHECK_FAILED
    return OK


@njit(inline="always")
def group_one(kt, dx, nd, px, npx, sex, age_y, age_d, weight, los, translate, flags, gmask,
              touched, out):
    """Group one record; writes (mdc index+1, adrg index+1, drg out id, status) into out."""
    out[0] = 0
    out[1] = 0
    out[2] = 0
    st = record_checks(kt, dx, nd, px, npx, sex, age_y, age_d, weight, translate)
    if st != OK:
        out[3] = st
        return

    # gather list memberships of every code into per-rule flags
    nt = 0
    for k in range(nd):
        c = dx[k]
        for e in range(kt.mem_ptr[c], kt.mem_ptr[c + 1]):
            kind = kt.mem_kind[e]
            if kind > 1:
                continue
            r = kt.mem_rule[e]
            if flags[r] == 0 and gmask[r] == 0:
                touched[nt] = r
                nt += 1
            b = 3 * kind
            bits = np.uint16(1 << (b + 1))
            if k == 0:
                bits |= np.uint16(1 << b)
            else:
                bits |= np.uint16(1 << (b + 2))
            flags[r] |= bits
    for k in range(npx):
        c = px[k]
        for e in range(kt.mem_ptr[c], kt.mem_ptr[c + 1]):
            kind = kt.mem_kind[e]
            if kind < 2:
                continue
            r = kt.mem_rule[e]
            if flags[r] == 0 and gmask[r] == 0:
                touched[nt] = r
                nt += 1
            b = 6 + 2 * (kind - 2)
            bits = np.uint16(1 << (b + 1))
            if k == 0:
                bits |= np.uint16(1 << b)
            flags[r] |= bits
            g = kt.mem_gbit[e]
            if g >= 0:
                gmask[r] |= np.uint64(1) << np.uint64(g)

    main_or = npx > 0 and kt.code_or[px[0]]
    any_or = False
    for k in range(npx):
        if kt.code_or[px[k]]:
            any_or = True
            break
    pdx = dx[0]

    nm = kt.mdc_dx_match.shape[0]
    for m in range(nm):
        # MDC entry
        dm = kt.mdc_dx_match[m]
        bit = np.uint32(1) << np.uint32(m)
        if dm == 1:
            if (kt.code_mdc_mask[pdx] & bit) == 0:
                continue
        elif dm == 2:
            hit = False
            for k in range(nd):
                if kt.code_mdc_mask[dx[k]] & bit:
                    hit = True
                    break
            if not hit:
                continue
        if kt.mdc_main_or[m] and not main_or:
            continue
        if kt.mdc_sex[m] != 0 and sex != kt.mdc_sex[m]:
            continue
        if _bound_fails(age_y, kt.mdc_age_min[m], kt.mdc_age_max[m]):
            continue
        need = kt.mdc_min_regions[m]
        if need > 0:
            slot = kt.mdc_region_slot[m]
            regs = np.uint64(0)
            for k in range(nd):
                c = dx[k]
                if kt.code_mdc_mask[c] & bit:
                    rg = kt.region[slot, c]
                    if rg >= 0:
                        regs |= np.uint64(1) << np.uint64(rg)
            cnt = 0
            while regs:
                regs &= regs - np.uint64(1)
                cnt += 1
            if cnt < need:
                continue
        # ADRG rules of this MDC, in order
        for r in range(kt.mdc_rule_start[m], kt.mdc_rule_end[m]):
            f = flags[r]
            how = kt.rule_dx[r]
            if how and not _dx_test(f, 0, how):
                continue
            how = kt.rule_dx2[r]
            if how and not _dx_test(f, 3, how):
                continue
            how = kt.rule_proc[r]
            if how and not ((f >> (6 + how - 1)) & 1):
                continue
            how = kt.rule_proc2[r]
            if how and not ((f >> (8 + how - 1)) & 1):
                continue
            how = kt.rule_or[r]
            if how == 1 and not main_or:
                continue
            if how == 2 and not any_or:
                continue
            if how == 3 and any_or:
                continue
            if kt.rule_has_proc[r] and npx == 0:
                continue
            s0 = kt.rule_pg_start[r]
            s1 = kt.rule_pg_end[r]
            if s1 > s0:
                g = gmask[r]
                okg = False
                for s in range(s0, s1):
                    msk = kt.pg_masks[s]
                    if (g & msk) == msk:
                        okg = True
                        break
                if not okg:
                    continue
            if kt.rule_age_days_req[r] and age_d == ABSENT:
                continue
            if kt.rule_weight_req[r] and (weight == ABSENT or weight == 0):
                continue
            rb = kt.rule_bounds[r]
            if _bound_fails(age_d, rb[0], rb[1]) or _bound_fails(weight, rb[2], rb[3]):
                continue
            if _bound_fails(age_y, rb[4], rb[5]) or _bound_fails(los, rb[6], rb[7]):
                continue
            # the rule matched: choose the DRG
            a = kt.rule_adrg[r]
            out[0] = m + 1
            out[1] = a + 1
            out[3] = OK
            has_mcc = -1
            has_cc = -1
            chosen = -1
            for d in range(kt.adrg_drg_start[a], kt.adrg_drg_end[a]):
                rule = kt.drg_cc_rule[d]
                if rule == 1 or rule == 2:
                    if has_mcc < 0:
                        has_mcc = 1 if _effective(kt, dx, nd, True) else 0
                if rule == 2 or rule == 3:
                    if has_cc < 0:
                        has_cc = 1 if _effective(kt, dx, nd, False) else 0
                if rule == 1 and has_mcc == 0:
                    continue
                if rule == 3 and has_cc == 0:
                    continue
                if rule == 2 and has_mcc == 0 and has_cc == 0:
                    continue
                db = kt.drg_bounds[d]
                if _bound_fails(nd, db[0], db[1]):
                    continue
                if _bound_fails(age_y, db[2], db[3]) or _bound_fails(los, db[4], db[5]):
                    continue
                chosen = d
                break
            if chosen >= 0:
                out[2] = 1 + chosen
            else:
                out[2] = 1 + kt.drg_cc_rule.shape[0] + a  # no DRG matched: the ADRG code
            for i in range(nt):
                flags[touched[i]] = 0
                gmask[touched[i]] = 0
            return
        if kt.mdc_qy[m] and any_or:
            out[0] = m + 1
            out[2] = 1 + kt.drg_cc_rule.shape[0] + kt.adrg_drg_start.shape[0] + m
            out[3] = AMBIGUOUS
            for i in range(nt):
                flags[touched[i]] = 0
                gmask[touched[i]] = 0
            return
    for i in range(nt):
        flags[touched[i]] = 0
        gmask[touched[i]] = 0
    out[3] = UNGROUPABLE


@njit(inline="always")
def record_codes(dx_ptr, dx_ids, px_ptr, px_ids, i, dxbuf, pxbuf):
    """Record ``i``'s diagnosis and procedure ids copied into the reusable buffers (grown
    when too small): (dxbuf, nd, pxbuf, npx). Shared by the DRG and DIP kernels."""
    d0 = dx_ptr[i]
    nd = dx_ptr[i + 1] - d0
    p0 = px_ptr[i]
    npx = px_ptr[i + 1] - p0
    if nd > dxbuf.shape[0]:
        dxbuf = np.empty(2 * nd, dtype=np.int32)
    if npx > pxbuf.shape[0]:
        pxbuf = np.empty(2 * npx, dtype=np.int32)
    for k in range(nd):
        dxbuf[k] = dx_ids[d0 + k]
    for k in range(npx):
        pxbuf[k] = px_ids[p0 + k]
    return dxbuf, nd, pxbuf, npx


@njit(parallel=True, cache=True, nogil=True)
def group_kernel(kt, dx_ptr, dx_ids, px_ptr, px_ids, sex, age_y, age_d, weight, los,
                 translate, n_chunks, out_mdc, out_adrg, out_drg, out_status):
    """Group every record; outputs are indices into the scheme's label tables."""
    n = sex.shape[0]
    n_rules = kt.rule_adrg.shape[0]
    step = (n + n_chunks - 1) // n_chunks
    for ch in prange(n_chunks):
        lo = ch * step
        hi = min(n, lo + step)
        flags = np.zeros(n_rules, dtype=np.uint16)
        gmask = np.zeros(n_rules, dtype=np.uint64)
        touched = np.empty(n_rules, dtype=np.int32)
        out = np.zeros(4, dtype=np.int32)
        dxbuf = np.empty(64, dtype=np.int32)
        pxbuf = np.empty(64, dtype=np.int32)
        for i in range(lo, hi):
            dxbuf, nd, pxbuf, npx = record_codes(dx_ptr, dx_ids, px_ptr, px_ids, i, dxbuf,
                                                 pxbuf)
            group_one(kt, dxbuf, nd, pxbuf, npx, sex[i], age_y[i], age_d[i], weight[i],
                      los[i], translate, flags, gmask, touched, out)
            out_mdc[i] = out[0]
            out_adrg[i] = out[1]
            out_drg[i] = out[2]
            out_status[i] = out[3]
