"""Codes become integer ids once: split code fields and look them up in the scheme vocabulary.

Splitting follows the scheme README section 3 (``|`` or ``,``; empty pieces kept; an
empty field is no code at all, or one empty piece when translation is on). Id 0 is "in
no table". Lookup is exact, byte for byte: no trimming or case folding.

The work runs in numba kernels straight over the Arrow string buffers: one pass counts
the pieces, one pass hashes each piece into an open-addressing table of the vocabulary.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from drgsim.parallel import parallel_section
from drgsim.scheme.compiled import CompiledScheme
from drgsim.textkernels import build_table, count_pieces, fill_ids, string_buffers


def vocab_index(scheme: CompiledScheme) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hash table, vocabulary offsets, vocabulary bytes), built once per scheme."""
    cached = getattr(scheme, "_vocab_index", None)
    if cached is None:
        arr = pa.array(scheme.codes, type=pa.string())
        voff, vdata = string_buffers(arr)
        cached = (build_table(voff, vdata), voff, vdata)
        scheme._vocab_index = cached
    return cached


def codes_index(codes: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hash table, offsets, bytes) over any vocabulary (id 0 = ``codes[0]`` is never found)."""
    voff, vdata = string_buffers(pa.array(codes, type=pa.string()))
    return build_table(voff, vdata), voff, vdata


def encode_field(field: pa.Array, scheme: CompiledScheme | None, keep_empty_field: bool = False,
                 threads: int = 2, index: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Encode a text code field into CSR (offsets int64[n+1], ids int32).

    ``index`` (from :func:`codes_index`) replaces the scheme's vocabulary, e.g. the scheme's
    codes extended by a DIP catalogue's (ids of the scheme's codes unchanged)."""
    table, voff, vdata = index if index is not None else vocab_index(scheme)
    offsets, data = string_buffers(field)
    n = len(field)
    with parallel_section(threads) as used:
        n_chunks = max(1, min(n, used * 8))
        counts = count_pieces(offsets, data, keep_empty_field, n_chunks)
        ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        ids = np.empty(ptr[-1], dtype=np.int32)
        fill_ids(offsets, data, ptr, table, voff, vdata, n_chunks, ids)
    return ptr, ids
