"""The synthetic region looks like a DIP region (issue 19): packets concentrate as in a city.

Packet key = principal diagnosis subcategory (5 characters, part before ``+``) x the
order-free set of procedures; core = >= 15 cases (DIP.md). The full default region (2.4M
discharges, 120 hospitals, history 2022-2024: 1.76M cases) measures 104,620 keys, 9,650 core
packets, 88.0% of cases in core packets (``python -m drgsim.synth.concentration``); before
the per-diagnosis procedure pools it was 303,938 keys, 10,582 core, 70.3%. The test below
runs a reduced region (400k discharges) whose figures a regression would move.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drgsim.synth import params as P
from drgsim.synth.casemix import (
    ENTRY_COMBOS_P,
    ENTRY_FILLERS_P,
    Segments,
    catalogue,
)
from drgsim.synth.concentration import concentration, packet_keys, region_concentration


def test_packet_key_is_subcategory_times_order_free_procedure_set():
    dx = pa.array(["K80.100x001|I10.x00", "K80.101+M14.2*|E11.900", "K80.1", "K80.200", None,
                   " K80.100"])
    px = pa.array(["51.2300|51.2200", "51.2200|51.2300|51.2300", "", "51.2300|51.2200", "",
                   "51.2200 | 51.2300"])
    k = packet_keys(dx, px)
    rows = [tuple(r) for r in k.itertuples(index=False)]
    assert rows[0] == rows[1] == rows[5]  # order, repeats, dagger part, blanks do not matter
    assert rows[2] != rows[0]  # conservative: the diagnosis alone
    assert rows[2][1:] == (-1, -1)
    assert rows[3][1:] == rows[0][1:] and rows[3][0] != rows[0][0]  # K80.2 is another dx key
    assert k.dx.nunique() == 3  # K80.1, K80.2 and "" (missing)


def test_core_threshold_is_inclusive():
    dx = pa.array(["A01.0"] * 15 + ["B02.1"] * 14 + ["C03.2"] * 16)
    px = pa.array(["11.11"] * 15 + ["22.22"] * 14 + [""] * 16)
    c = concentration(dx, px, core_threshold=15)
    assert (c.cases, c.packets, c.core_packets, c.core_cases) == (45, 3, 2, 31)
    assert c.conservative_core == 1
    assert c.core_share == pytest.approx(31 / 45)
    assert concentration(dx, px, core_threshold=16).core_packets == 1


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(1, 9), max_size=6), min_size=1, max_size=8),
       st.integers(0, 2**32 - 1))
def test_flat_segments_sample_like_built_ones(weights, seed):
    pools = [np.arange(len(w)) + 100 * s for s, w in enumerate(weights)]
    ws = [np.array(w, float) for w in weights]
    built = Segments.build(pools, ws)
    flat = Segments.from_flat(np.concatenate(pools), np.concatenate(ws),
                              np.array([len(w) for w in weights]), res=8)
    rng = np.random.default_rng(seed)
    seg = rng.integers(-1, len(weights), 500)
    u = rng.random(500)
    assert np.array_equal(built.sample(seg, u), flat.sample(seg, u))


def test_each_principal_diagnosis_has_a_few_typical_procedure_sets():
    cat = catalogue()
    n_a = len(cat.adrg)
    entries = cat.principal_entry
    n_e = len(cat.entry_dx)
    assert np.array_equal(cat.entry_dx[entries.values], cat.principal.values)
    entry_adrg = np.repeat(np.arange(n_a), entries.size(np.arange(n_a)))
    sizes = cat.entry_combos.size(np.arange(n_e))
    adrg_combos = cat.combos.size(np.arange(n_a))
    assert (sizes >= 1).all() or (adrg_combos[entry_adrg[sizes == 0]] == 0).all()
    assert sizes.max() <= len(ENTRY_COMBOS_P)
    # a typical combination is one of the ADRG's own (so the case still groups to it)
    lo = cat.combos.start[entry_adrg]
    own = cat.combos.values[lo]  # combos of an ADRG are consecutive ids
    seg = np.repeat(np.arange(n_e), sizes)
    vals = cat.entry_combos.values
    assert ((vals >= own[seg]) & (vals < own[seg] + adrg_combos[entry_adrg][seg])).all()
    # filler procedures: a short list per entry, plus one pool with the whole list
    fsizes = cat.filler_proc.size(np.arange(n_e + 1))
    assert fsizes[:-1].min() >= 1 and fsizes[:-1].max() <= len(ENTRY_FILLERS_P)
    whole = set(cat.filler_proc.values[cat.filler_proc.start[n_e]:].tolist())
    assert set(cat.filler_proc.values.tolist()) == whole and len(whole) >= 20
    assert 0 < P.ATYPICAL_PROC_SHARE < 0.3


def test_reduced_region_concentrates_like_a_dip_region():
    # 400k discharges over 2022-2025, history 2022-2024 (294,101 cases): 36,441 keys,
    # 2,634 core packets, 75.0% of cases in them. The generator before issue 19 gave
    # 82,318 keys, 2,016 core packets, 55.5%.
    c = region_concentration(400_000, (2022, 2023, 2024, 2025), (2022, 2023, 2024),
                             hospitals=120, seed=0)
    assert c.cases == 294_101
    assert 0.70 <= c.core_share <= 0.82
    assert 2_200 <= c.core_packets <= 3_300
    assert c.packets <= 0.16 * c.cases
    assert 0.25 <= c.conservative_core / c.core_packets <= 0.5
