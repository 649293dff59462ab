"""One place for numba's thread settings around parallel kernels.

numba's default (workqueue) threading layer aborts the process when two threads launch
parallel kernels at once, as a threaded Dask scheduler or a user's thread pool would; a
process-wide lock serialises launches (each launch already uses every core it is given).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.RLock()


@contextmanager
def parallel_section(threads: int) -> Iterator[int]:
    """Run parallel kernels on ``threads`` threads (capped at numba's pool); yields the count."""
    import numba

    with _LOCK:
        prev = numba.get_num_threads()
        n = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
        numba.set_num_threads(n)
        try:
            yield n
        finally:
            numba.set_num_threads(prev)
