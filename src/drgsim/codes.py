"""Codes become integer ids once: split code fields and look them up in the scheme vocabulary.

Splitting follows the scheme README section 3 (``|`` or ``,``; empty pieces kept; an
empty field is no code at all, or one empty piece when translation is on). Id 0 is "in
no table". Lookup is exact: no trimming or case folding.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drgsim.scheme.compiled import CompiledScheme

_PARALLEL_MIN = 200_000


def _split(field: pa.Array, keep_empty_field: bool) -> tuple[np.ndarray, pa.Array]:
    """Offsets (int64[n+1]) and flat pieces of a text field."""
    text = pc.replace_substring(field, ",", "|")
    lists = pc.split_pattern(text, "|")
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(lists)
    if not keep_empty_field:
        empty = pc.equal(field, "").to_numpy(zero_copy_only=False)
        if empty.any():
            # an empty field split into one "" piece: drop it
            keep = np.repeat(~empty, lengths)
            flat = pc.filter(flat, pa.array(keep))
            lengths = np.where(empty, 0, lengths)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets, flat


def _lookup(flat: pa.Array, scheme: CompiledScheme) -> np.ndarray:
    idx = pc.index_in(flat, value_set=scheme.code_lookup())
    return (pc.fill_null(idx, -1).to_numpy(zero_copy_only=False) + 1).astype(np.int32)


def encode_field(field: pa.Array, scheme: CompiledScheme, keep_empty_field: bool = False,
                 threads: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Encode a code field into CSR (offsets, ids). Large inputs are split across threads."""
    n = len(field)
    if threads <= 1 or n < _PARALLEL_MIN:
        offsets, flat = _split(field, keep_empty_field)
        return offsets, _lookup(flat, scheme)
    bounds = np.linspace(0, n, threads + 1).astype(int)
    parts = [field.slice(bounds[i], bounds[i + 1] - bounds[i]) for i in range(threads)]
    with ThreadPoolExecutor(threads) as ex:
        results = list(ex.map(lambda f: encode_field(f, scheme, keep_empty_field, 1), parts))
    offsets = [results[0][0]]
    base = results[0][0][-1]
    for off, _ in results[1:]:
        offsets.append(off[1:] + base)
        base += off[-1]
    return np.concatenate(offsets), np.concatenate([ids for _, ids in results])
