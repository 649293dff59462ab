"""Sentinels shared by the readers, the compiled scheme and the kernels."""

import numpy as np

# An integer field that is absent (empty, non-numeric, not whole).
ABSENT = np.iinfo(np.int64).min
# Integers beyond this saturate: still present, still outside every table bound.
SATURATE = 2**62
