"""Integer-fen money: reading yuan once (half-up), exact ratios, largest-remainder splits.

Money is read from yuan into integer fen once and stays integer. Totals are split
top-down by largest remainder (ties broken by id) so the parts add up exactly; half-up
is used only for single amounts (a refund, a withheld share).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import numba as nb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

PPM = 1_000_000


def yuan_to_fen(values: object) -> tuple[np.ndarray, np.ndarray]:
    """Yuan amounts (decimal, float, int or text) -> (int64 fen half-up, valid mask).

    Missing or unparsable values are invalid (fen 0). Negative amounts are returned as
    they are (the caller decides); decimals are converted exactly.
    """
    if isinstance(values, pd.Series):
        s = values
        try:
            arr = pa.array(s, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = pa.array(s.astype("string"), from_pandas=True)
    elif isinstance(values, (pa.Array, pa.ChunkedArray)):
        arr = values
    else:
        arr = pa.array(np.asarray(values))
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if pa.types.is_decimal(t):
        prec = min(t.precision + 2, 34)
        scaled = pc.multiply(
            arr.cast(pa.decimal128(prec, t.scale)), pa.scalar(Decimal(100), pa.decimal128(3, 0))
        )
        rounded = pc.round(scaled, 0, round_mode="half_towards_infinity")
        valid = np.asarray(rounded.is_valid())
        fen = np.asarray(rounded.cast(pa.int64()).fill_null(0))
        return fen.astype(np.int64), valid
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t):
        x = np.asarray(arr.cast(pa.float64()).fill_null(np.nan), dtype=np.float64)
        return _float_yuan_to_fen(x)
    # text: exact decimal parse of each distinct string
    strs = arr.cast(pa.string())
    uniq, inv = np.unique(np.asarray(strs.fill_null("")).astype(object), return_inverse=True)
    fen_u = np.zeros(len(uniq), dtype=np.int64)
    ok_u = np.zeros(len(uniq), dtype=bool)
    for i, u in enumerate(uniq):
        text = str(u).strip().replace(",", "")
        if not text:
            continue
        try:
            d = Decimal(text)
        except InvalidOperation:
            continue
        if not d.is_finite():
            continue
        fen_u[i] = int((d * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        ok_u[i] = True
    return fen_u[inv], ok_u[inv]


def _float_yuan_to_fen(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    valid = np.isfinite(x) & (np.abs(x) < 1e15)
    # round to 6 decimals of fen first so 1.005 (stored as 1.00499...) reads as 100.5 fen
    f = np.round(np.where(valid, x, 0.0) * 100.0, 6)
    fen = np.sign(f) * np.floor(np.abs(f) + 0.5)
    return fen.astype(np.int64), valid


def ratio_ppm(r: float) -> int:
    """A ratio as exact integer parts per million (policy ratios have at most 6 decimals)."""
    return int(Decimal(repr(float(r))).scaleb(6).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def mul_ratio_half_up(x: np.ndarray | int, r: float) -> np.ndarray:
    """``x × r`` for integer fen ``x``, rounded half away from zero, in exact integers."""
    ppm = ratio_ppm(r)
    xa = np.asarray(x, dtype=np.int64)
    num = np.abs(xa) * ppm
    q = (2 * num + PPM) // (2 * PPM)
    return np.sign(xa) * q


def seqsum(x: np.ndarray, axis: int) -> np.ndarray:
    """Float sum along ``axis`` in a fixed sequential order (a running sum), so the result
    never depends on the array's shape or on how many scenarios are computed together."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[axis] == 0:
        return np.zeros(x.shape[:axis] + x.shape[axis + 1 :])
    return np.take(np.cumsum(x, axis=axis), -1, axis=axis)


def half_up(x: np.ndarray | float) -> np.ndarray:
    """Round float fen half away from zero (for single amounts, never for sums)."""
    xa = np.round(np.asarray(x, dtype=np.float64), 6)
    return (np.sign(xa) * np.floor(np.abs(xa) + 0.5)).astype(np.int64)


def largest_remainder(quotas: np.ndarray, total: int, ids: np.ndarray | None = None) -> np.ndarray:
    """Integers summing exactly to ``total``, each the floor of its quota or one more.

    The remaining units go to the largest fractional parts; ties go to the smaller id
    (``ids`` default: position). Quotas should sum to about ``total``; any float slack
    is absorbed so the sum is always exact.
    """
    q = np.asarray(quotas, dtype=np.float64)
    n = len(q)
    if n == 0:
        if total != 0:
            raise ValueError(f"cannot split {total} over no parts")
        return np.zeros(0, dtype=np.int64)
    ids = np.arange(n) if ids is None else np.asarray(ids)
    groups = np.zeros(n, dtype=np.int64)
    order = np.lexsort((ids,))
    return grouped_largest_remainder(q, groups, np.array([total], dtype=np.int64), order)


def grouped_largest_remainder(
    quotas: np.ndarray, groups: np.ndarray, totals: np.ndarray, order: np.ndarray
) -> np.ndarray:
    """Largest-remainder split of ``totals[g]`` over the rows of each group ``g``.

    ``order`` is a permutation of the rows in tie-break order (smaller id first); it need
    not be grouped. Every group with a non-zero total must have rows. Fractional parts
    equal to 1e-9 count as ties.
    """
    q = np.round(np.asarray(quotas, dtype=np.float64), 6)
    out = np.empty(len(q), dtype=np.int64)
    _lr_kernel(
        q,
        np.asarray(groups, dtype=np.int64),
        np.asarray(totals, dtype=np.int64),
        np.asarray(order, dtype=np.int64),
        out,
    )
    return out


def largest_remainder_reference(
    quotas: np.ndarray, groups: np.ndarray, totals: np.ndarray, order: np.ndarray
) -> np.ndarray:
    """Slow, obvious version of :func:`grouped_largest_remainder` (for tests)."""
    q = np.round(np.asarray(quotas, dtype=np.float64), 6)
    tie = np.empty(len(order), dtype=np.int64)
    tie[order] = np.arange(len(order))
    out = np.zeros(len(q), dtype=np.int64)
    for g in range(len(totals)):
        rows = [i for i in range(len(q)) if groups[i] == g]
        if not rows:
            continue
        fl = {i: int(np.floor(q[i])) for i in rows}
        rem = int(totals[g]) - sum(fl.values())
        whole, extra = divmod(rem, len(rows))
        ranked = sorted(rows, key=lambda i: (-round(q[i] - fl[i], 9), tie[i]))
        for r, i in enumerate(ranked):
            out[i] = fl[i] + whole + (1 if r < extra else 0)
    return out


@nb.njit(cache=True)
def _lr_kernel(q, groups, totals, order, out):  # pragma: no cover - numba
    n = len(q)
    ng = len(totals)
    cnt = np.zeros(ng + 1, dtype=np.int64)
    for i in range(n):
        cnt[groups[i] + 1] += 1
    for g in range(ng):
        cnt[g + 1] += cnt[g]
    start = cnt.copy()
    rows = np.empty(n, dtype=np.int64)
    for j in range(n):  # counting sort by group, stable in tie order
        i = order[j]
        g = groups[i]
        rows[start[g]] = i
        start[g] += 1
    for g in range(ng):
        a, b = cnt[g], cnt[g + 1]
        m = b - a
        if m == 0:
            if totals[g] != 0:
                raise ValueError("a non-zero total has no rows to go to")
            continue
        base = 0
        for k in range(a, b):
            i = rows[k]
            f = np.floor(q[i])
            out[i] = np.int64(f)
            base += np.int64(f)
        rem = totals[g] - base
        whole = rem // m
        extra = rem - whole * m
        if whole != 0:
            for k in range(a, b):
                out[rows[k]] += whole
        if extra == 0:
            continue
        key = np.empty(m, dtype=np.float64)
        for k in range(a, b):
            i = rows[k]
            key[k - a] = -np.round(q[i] - np.floor(q[i]), 9)
        srt = np.argsort(key, kind="mergesort")  # stable: ties keep the tie order
        for r in range(extra):
            out[rows[a + srt[r]]] += 1
