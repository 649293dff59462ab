"""Engine-free parts of DIP on the distributed engines (issue 20): what a gathered build
collects, and the history hash a gathered build must reproduce whatever the chunking."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from drgsim.dip.build import History, _sha256_history
from drgsim.distributed.dip import build_columns


def _h(t: pa.Table) -> History:
    n = t.num_rows
    return History(t, n, None, np.zeros(n), None, np.zeros(n, np.int64), None, None, None)


def test_history_hash_is_the_values_not_the_chunking():
    vals = ["a", "bb", None, "", "ccc", "d"] * 3
    one = pa.table({"case_id": pa.array(vals), "diagnoses": pa.array(vals, pa.large_string())})
    wide = pa.array(["zz", *vals, "yy"])  # a sliced chunk: its buffers hold more than its rows
    split = pa.table({
        "case_id": pa.chunked_array([wide.slice(1, 5), pa.array(vals[5:9]), pa.array(vals[9:])]),
        "diagnoses": pa.chunked_array([pa.array(vals[:7]), pa.array(vals[7:])]),
    })
    assert _sha256_history(_h(one)) == _sha256_history(_h(split))
    moved = pa.table({"case_id": pa.array(["ab", "b", *vals[2:]]),  # same bytes, other cut
                      "diagnoses": pa.array(vals)})
    assert _sha256_history(_h(one)) != _sha256_history(_h(moved))
    null = pa.table({"case_id": pa.array(["a", "bb", "", *vals[3:]]), "diagnoses": pa.array(vals)})
    assert _sha256_history(_h(one)) != _sha256_history(_h(null))  # null is not ""


def test_build_columns_are_what_the_build_reads_only():
    names = ["case_id", "patient_id", "hospital_id", "sex", "age_years", "diagnoses",
             "procedures", "total_cost", "self_pay", "discharge_date", "admit_date", "fund",
             "drg", "my_cost"]
    got = build_columns(names, {"total_cost": "my_cost"})
    assert got == ["case_id", "hospital_id", "sex", "age_years", "diagnoses", "procedures",
                   "total_cost", "self_pay", "discharge_date", "my_cost"]
