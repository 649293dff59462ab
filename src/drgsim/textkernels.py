"""Byte-level numba kernels over Arrow string buffers: code splitting, vocabulary hashing
and integer parsing. Pure functions over arrays; callers in ``codes`` and ``records``."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit, prange

from drgsim.constants import ABSENT, SATURATE

_PIPE = np.uint8(ord("|"))
_COMMA = np.uint8(ord(","))


@njit(inline="always")
def _hash(data, lo, hi):
    h = np.uint64(14695981039346656037)
    for k in range(lo, hi):
        h ^= np.uint64(data[k])
        h *= np.uint64(1099511628211)
    return h


@njit(inline="always")
def _find(table, voff, vdata, data, lo, hi):
    """Id of bytes data[lo:hi] in the vocabulary, 0 when absent."""
    mask = np.uint64(table.shape[0] - 1)
    slot = _hash(data, lo, hi) & mask
    n = hi - lo
    while True:
        cid = table[slot]
        if cid < 0:
            return 0
        a = voff[cid]
        if voff[cid + 1] - a == n:
            same = True
            for k in range(n):
                if vdata[a + k] != data[lo + k]:
                    same = False
                    break
            if same:
                return cid
        slot = (slot + np.uint64(1)) & mask


@njit(cache=True)
def build_table(voff, vdata):
    """Open-addressing hash table (power-of-two size, -1 empty) over vocabulary ids >= 1."""
    n = voff.shape[0] - 1
    size = 1
    while size < 2 * n + 2:
        size *= 2
    table = np.full(size, -1, dtype=np.int32)
    mask = np.uint64(size - 1)
    for cid in range(1, n):
        slot = _hash(vdata, voff[cid], voff[cid + 1]) & mask
        while table[slot] >= 0:
            slot = (slot + np.uint64(1)) & mask
        table[slot] = cid
    return table


@njit(parallel=True, cache=True, nogil=True)
def count_pieces(offsets, data, keep_empty_field, n_chunks):
    n = offsets.shape[0] - 1
    counts = np.zeros(n, dtype=np.int64)
    step = (n + n_chunks - 1) // n_chunks
    for ch in prange(n_chunks):
        for i in range(ch * step, min(n, (ch + 1) * step)):
            lo = offsets[i]
            hi = offsets[i + 1]
            if lo == hi and not keep_empty_field:
                continue
            c = 1
            for k in range(lo, hi):
                b = data[k]
                if b == _PIPE or b == _COMMA:
                    c += 1
            counts[i] = c
    return counts


@njit(parallel=True, cache=True, nogil=True)
def fill_ids(offsets, data, ptr, table, voff, vdata, n_chunks, out):
    n = offsets.shape[0] - 1
    step = (n + n_chunks - 1) // n_chunks
    for ch in prange(n_chunks):
        for i in range(ch * step, min(n, (ch + 1) * step)):
            j = ptr[i]
            if ptr[i + 1] == j:
                continue
            start = offsets[i]
            hi = offsets[i + 1]
            for k in range(start, hi):
                b = data[k]
                if b == _PIPE or b == _COMMA:
                    out[j] = _find(table, voff, vdata, data, start, k)
                    j += 1
                    start = k + 1
            out[j] = _find(table, voff, vdata, data, start, hi)


_MINUS = np.uint8(ord("-"))
_DOT = np.uint8(ord("."))
_ZERO = np.uint8(ord("0"))


@njit(inline="always")
def _is_space(b):
    return b == 32 or (9 <= b <= 13)


@njit(parallel=True, cache=True, nogil=True)
def parse_ints(offsets, data, valid, n_chunks, out, slow):
    """Scheme README section 3 integers: trimmed ``-?[0-9]+`` (or ``N.0``) else ABSENT.

    Fields with non-ASCII bytes are marked in ``slow`` for the caller (Unicode spaces).
    """
    n = offsets.shape[0] - 1
    step = (n + n_chunks - 1) // n_chunks
    for ch in prange(n_chunks):
        for i in range(ch * step, min(n, (ch + 1) * step)):
            out[i] = ABSENT
            if not valid[i]:
                continue
            lo = offsets[i]
            hi = offsets[i + 1]
            nonascii = False
            for k in range(lo, hi):
                if data[k] >= 128:
                    nonascii = True
                    break
            if nonascii:
                slow[i] = True
                continue
            while lo < hi and _is_space(data[lo]):
                lo += 1
            while hi > lo and _is_space(data[hi - 1]):
                hi -= 1
            neg = False
            if lo < hi and data[lo] == _MINUS:
                neg = True
                lo += 1
            # optional ".0+" suffix
            end = hi
            for k in range(lo, hi):
                if data[k] == _DOT:
                    end = k
                    break
            if end < hi:
                if end + 1 == hi:
                    continue
                zeros = True
                for k in range(end + 1, hi):
                    if data[k] != _ZERO:
                        zeros = False
                        break
                if not zeros:
                    continue
            if end == lo:
                continue
            digits = True
            v = 0
            for k in range(lo, end):
                d = np.int64(data[k]) - 48
                if d < 0 or d > 9:
                    digits = False
                    break
                if v > SATURATE // 10:
                    v = SATURATE + 1
                else:
                    v = v * 10 + d
            if not digits:
                continue
            if v > SATURATE:
                v = SATURATE
            out[i] = -v if neg else v


def string_buffers(field: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (int64, rebased to 0) and bytes of a string array without nulls."""
    if field.null_count:
        field = field.fill_null("")
    if pa.types.is_large_string(field.type):
        otype = np.int64
    else:
        otype = np.int32
    _, obuf, dbuf = field.buffers()
    offsets = np.frombuffer(obuf, dtype=otype, count=len(field) + 1, offset=field.offset * np.dtype(otype).itemsize)
    data = np.frombuffer(dbuf, dtype=np.uint8) if dbuf is not None else np.zeros(0, np.uint8)
    return offsets.astype(np.int64), data


# ---------------------------------------------------------------- content hashes

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_FNV = np.uint64(1099511628211)


@njit(inline="always")
def mix64(z):
    """splitmix64's finaliser: every input bit moves every output bit."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(parallel=True, cache=True, nogil=True)
def hash_strings(offsets, data, valid, seed1, seed2, n_chunks, out1, out2):
    """Two 64-bit hashes per string (FNV-1a over the bytes from two seeds, then the length,
    finished by :func:`mix64`); a null (``valid`` False) hashes apart from every string."""
    n = offsets.shape[0] - 1
    step = (n + n_chunks - 1) // n_chunks
    for ch in prange(n_chunks):
        for i in range(ch * step, min(n, (ch + 1) * step)):
            if not valid[i]:
                out1[i] = mix64(seed1 ^ np.uint64(0x6E756C6C6E756C6C))
                out2[i] = mix64(seed2 ^ np.uint64(0x6E756C6C6E756C6C))
                continue
            a = seed1
            b = seed2
            for k in range(offsets[i], offsets[i + 1]):
                v = np.uint64(data[k])
                a = (a ^ v) * _FNV
                b = (b ^ v) * _FNV
            ln = np.uint64(offsets[i + 1] - offsets[i])
            out1[i] = mix64(a ^ (ln * _M1))
            out2[i] = mix64(b ^ (ln * _M2))


@njit(parallel=True, cache=True, nogil=True)
def hash_words(words, seed1, seed2, out1, out2):
    """Two 64-bit hashes per 64-bit word (numbers as their bits)."""
    for i in prange(words.shape[0]):
        out1[i] = mix64(words[i] ^ seed1)
        out2[i] = mix64(mix64(words[i]) ^ seed2)


def content_hashes(col: pa.Array | pa.ChunkedArray | np.ndarray, seed1: int, seed2: int,
                   n_chunks: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Two uint64 hashes per value of a column, by content only: text by its UTF-8 bytes
    (any Arrow string type, chunking or slicing; other Arrow types as their text), numbers
    by value (NaN one value, -0.0 as 0.0)."""
    s1, s2 = np.uint64(seed1), np.uint64(seed2)
    if isinstance(col, np.ndarray):
        if col.dtype.kind == "f":
            x = np.asarray(col, np.float64)
            words = (np.where(np.isnan(x), np.nan, x) + 0.0).view(np.uint64)
        else:
            words = np.ascontiguousarray(col.astype(np.int64)).view(np.uint64)
        o1, o2 = np.empty(len(words), np.uint64), np.empty(len(words), np.uint64)
        hash_words(words, s1, s2, o1, o2)
        return o1, o2
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    outs1, outs2 = [], []
    for a in chunks:
        if not (pa.types.is_string(a.type) or pa.types.is_large_string(a.type)):
            a = a.cast(pa.string())
        valid = np.asarray(a.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)
        offsets, data = string_buffers(a)
        o1, o2 = np.empty(len(a), np.uint64), np.empty(len(a), np.uint64)
        hash_strings(offsets, data, valid, s1, s2, n_chunks, o1, o2)
        outs1.append(o1)
        outs2.append(o2)
    if not outs1:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    return np.concatenate(outs1), np.concatenate(outs2)
