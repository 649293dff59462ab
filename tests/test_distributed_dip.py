"""Engine-free parts of DIP on the distributed engines (issue 20): what a gathered build
collects, and the history hash a gathered build must reproduce whatever the chunking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drgsim.dip.build import History
from drgsim.dip.kernels import canonical_order
from drgsim.dip.steps import combine_reductions, conform_rows, reduce_rows, row_hashes
from drgsim.dip.tables import CatalogueError
from drgsim.distributed.dip import build_columns
from drgsim.textkernels import content_hashes


def _h(t: pa.Table, cost=None) -> History:
    n = t.num_rows
    cost = np.zeros(n) if cost is None else np.asarray(cost, float)
    return History(t, n, None, cost, None, np.zeros(n, np.int64), None, None, None)


def _digest(*hs: History) -> str:
    parts = []
    for h in hs:
        h1, h2 = row_hashes(h)
        rows = conform_rows(pd.DataFrame({"h1": h1, "h2": h2, "status": 1, "reason": 0}))
        parts.append(reduce_rows(rows))
    return combine_reductions(parts, False).built_from


def test_history_hash_is_the_rows_not_their_chunking_order_or_partitioning():
    vals = ["a", "bb", None, "", "ccc", "d"] * 3
    one = pa.table({"case_id": pa.array(vals), "diagnoses": pa.array(vals, pa.large_string())})
    wide = pa.array(["zz", *vals, "yy"])  # a sliced chunk: its buffers hold more than its rows
    split = pa.table({
        "case_id": pa.chunked_array([wide.slice(1, 5), pa.array(vals[5:9]), pa.array(vals[9:])]),
        "diagnoses": pa.chunked_array([pa.array(vals[:7]), pa.array(vals[7:])]),
    })
    assert _digest(_h(one)) == _digest(_h(split))
    rev = one.take(pa.array(np.arange(len(vals))[::-1]))  # any row order, any partitioning
    assert _digest(_h(one)) == _digest(_h(rev.slice(0, 7)), _h(rev.slice(7)))
    moved = pa.table({"case_id": pa.array(["ab", "b", *vals[2:]]),  # same bytes, other cut
                      "diagnoses": pa.array(vals)})
    assert _digest(_h(one)) != _digest(_h(moved))
    null = pa.table({"case_id": pa.array(["a", "bb", "", *vals[3:]]), "diagnoses": pa.array(vals)})
    assert _digest(_h(one)) != _digest(_h(null))  # null is not ""
    swap = pa.table({"case_id": pa.array(vals), "diagnoses": pa.array(vals[1:] + vals[:1])})
    assert _digest(_h(one)) != _digest(_h(swap))  # the pairing of a row's values counts
    assert _digest(_h(one)) != _digest(_h(one, cost=np.arange(len(vals))))
    assert _digest(_h(one)) != _digest(_h(one.slice(1)))  # a row fewer


def test_build_columns_are_what_the_build_reads_only():
    names = ["case_id", "patient_id", "hospital_id", "sex", "age_years", "diagnoses",
             "procedures", "total_cost", "self_pay", "discharge_date", "admit_date", "fund",
             "drg", "my_cost"]
    got = build_columns(names, {"total_cost": "my_cost"})
    assert got == ["case_id", "hospital_id", "sex", "age_years", "diagnoses", "procedures",
                   "total_cost", "self_pay", "discharge_date", "my_cost"]


def test_content_hashes_read_values_not_buffers():
    vals = ["K80.1|K81.0", "", None, "超长的中文诊断", "a"]
    plain = content_hashes(pa.array(vals), 1, 2)
    for other in (pa.array(vals, pa.large_string()),
                  pa.chunked_array([pa.array(vals[:2]), pa.array(vals[2:])]),
                  pa.array(["x", *vals]).slice(1)):
        got = content_hashes(other, 1, 2)
        assert (got[0] == plain[0]).all() and (got[1] == plain[1]).all()
    assert plain[0][1] != plain[0][2]  # "" is not null
    assert len(set(plain[0].tolist())) == len(vals) and len(set(plain[1].tolist())) == len(vals)
    assert (content_hashes(pa.array(vals), 1, 3)[0] == plain[0]).all()  # seed 1 alike
    assert not (content_hashes(pa.array(vals), 3, 2)[0] == plain[0]).any()
    x = np.array([np.nan, -0.0, 0.0, 1.5, float("nan")])
    hx = content_hashes(x, 1, 2)[0]
    assert hx[0] == hx[4] and hx[1] == hx[2] and hx[2] != hx[3]
    ints = content_hashes(pa.array([1, 22, None]), 1, 2)[0]  # other types: as their text
    assert (ints == content_hashes(pa.array(["1", "22", None]), 1, 2)[0]).all()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(n=st.integers(0, 300), groups=st.integers(1, 5), costs=st.integers(1, 6),
       shares=st.integers(1, 4), odd=st.sampled_from(["", "fraction", "huge"]),
       seed=st.integers(0, 2**31 - 1))
def test_canonical_order_is_the_lexsort(n, groups, costs, shares, odd, seed):
    """One integer sort plus ties by share orders rows as the three-key lexsort (few values,
    so long runs of ties); fractional or huge costs take the lexsort itself."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    c = rng.integers(0, costs, n).astype(float) * 1000.0
    s = rng.integers(0, shares, n) * 0.25
    if n and odd == "fraction":
        c[rng.integers(0, n)] += 0.5
    if n and odd == "huge":
        c[rng.integers(0, n)] = 2.0**41
    o = canonical_order(g, c, s)
    ref = np.lexsort((s, c, g))
    assert sorted(o.tolist()) == list(range(n))
    for a in (g, c, s):  # the same sequence of values (ties on all three may swap rows)
        assert np.array_equal(a[o], a[ref])


def _part(keys, names, n=1):
    """A reduction part with key counts and the keys' text."""
    return {"n": n, "counts": pd.DataFrame({"key": np.asarray(keys, np.int64),
                                            "n": np.ones(len(keys), np.int64)}),
            "names": pd.DataFrame({"key": np.asarray([k for k, *_ in names], np.int64),
                                   "dx": [d for _, d, _ in names],
                                   "procs": [q for *_, q in names],
                                   "nprocs": np.zeros(len(names), np.int64),
                                   "tt": np.zeros(len(names), np.int64)}),
            "status": np.array([n]), "reason": np.array([0]), "years": {2023: n},
            "unknown_level": 0, "h1": 0, "h2": 0}


def test_key_counts_add_up_whichever_part_named_the_key():
    red = combine_reductions([_part([7, 9], [(7, "K80.1", "")]),
                              _part([9], [(9, "K81.0", "")]),
                              _part([7], [(7, "K80.1", "")])], False)
    assert red.keys[["dx", "n"]].values.tolist() == [["K80.1", 2], ["K81.0", 2]]


def test_two_keys_with_one_hash_are_refused_not_merged():
    with pytest.raises(CatalogueError, match="share a 64-bit hash"):
        combine_reductions([_part([7], [(7, "K80.1", "")]), _part([7], [(7, "K81.0", "")])],
                           False)
    with pytest.raises(CatalogueError, match="named in no part"):
        combine_reductions([_part([7, 8], [(7, "K80.1", "")])], False)
