"""Engine-free parts of DIP on the distributed engines (issue 20): what a gathered build
collects, and the history hash a gathered build must reproduce whatever the chunking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from drgsim.dip.build import History
from drgsim.dip.steps import combine_reductions, conform_rows, reduce_rows, row_hashes
from drgsim.distributed.dip import build_columns


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
