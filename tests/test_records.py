"""Reading records: integer fields, code fields, text columns, pass-through, collisions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import drgsim
from drgsim.errors import MissingColumnError
from drgsim.records import code_field, int_field
from drgsim.scheme.compiled import ABSENT

A = ABSENT


@pytest.mark.parametrize("raw,want", [
    (["1", " 2 ", "3.0", "4.5", "NA", "", "3.2kg", "-1", "男", "+5", "0x10", "07"],
     [1, 2, 3, A, A, A, A, -1, A, A, A, 7]),
    (["99999999999999999999999", "-99999999999999999999999"], [2**62, -(2**62)]),
])
def test_int_field_text(raw, want):
    assert int_field(pa.array(raw)).tolist() == want


def test_int_field_typed():
    assert int_field(pa.array([1, None, 3], pa.int64())).tolist() == [1, A, 3]
    assert int_field(pa.array([1.0, 4.5, None, float("nan")])).tolist() == [1, A, A, A]
    assert int_field(pa.array([True, False])).tolist() == [A, A]
    assert int_field(pa.nulls(2)).tolist() == [A, A]


def test_code_field_lists_join_non_null_elements():
    arr = pa.array([["a", None, "b"], None, [], [""], ["", "x"], [None]], pa.list_(pa.string()))
    assert code_field(arr).to_pylist() == ["a|b", "", "", "", "|x", ""]


def test_codes_and_ids_stay_text_from_csv(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("case_id,sex,age_years,dept,diagnoses,procedures,hospital_id,total_cost\n"
                 "007,1,50,030207,I50.900,00.5500,0012,1234.50\n", encoding="utf-8")
    out = drgsim.group(p)
    assert out.loc[0, "case_id"] == "007"
    assert out.loc[0, "dept"] == "030207"
    assert out.loc[0, "procedures"] == "00.5500"
    assert out.loc[0, "hospital_id"] == "0012"
    assert out.loc[0, "total_cost"] == "1234.50"  # pass-through text is untouched


def test_dataframe_in_dataframe_out_passthrough_and_collisions():
    df = pd.DataFrame({
        "case_id": ["a", "b"], "sex": [1, 2], "age_years": [60, 30],
        "diagnoses": ["I50.900", "O80.000"], "drg": ["XX99", "YY99"], "hospital": ["医院甲", "乙"],
    }, index=[10, 20])
    out = drgsim.group(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == [10, 20]
    assert list(out["input_drg"]) == ["XX99", "YY99"]
    assert list(out["hospital"]) == ["医院甲", "乙"]
    assert {"mdc", "adrg", "drg", "status"} <= set(out.columns)
    assert out.attrs["drgsim.scheme"] == "CHS-DRG"


def test_arrow_in_arrow_out_with_provenance():
    t = pa.table({"case_id": ["a"], "sex": [1], "age_years": [60], "diagnoses": ["I50.900"],
                  "status": ["paid"]})
    out = drgsim.group(t)
    assert isinstance(out, pa.Table)
    assert out.column("input_status").to_pylist() == ["paid"]
    meta = out.schema.metadata
    assert meta[b"drgsim.version"] == drgsim.__version__.encode()
    assert len(meta[b"drgsim.scheme_hash"]) == 32


def test_missing_required_column_is_an_error_before_work():
    df = pd.DataFrame({"case_id": ["a"], "sex": [1], "diagnoses": ["I50.900"]})
    with pytest.raises(MissingColumnError, match="age_years"):
        drgsim.group(df)


def test_missing_optional_columns_are_absent_values():
    df = pd.DataFrame({"case_id": ["a", "b"], "sex": [1, 1], "age_years": [60, 0],
                       "diagnoses": ["I50.900", "P07.100"]})
    out = drgsim.group(df)
    # no procedures column: no procedure; no age_days: a newborn fails check 3
    assert out.loc[1, "status"] == "check_failed"
    assert out.loc[0, "status"] == "ok"


def test_parquet_folder_is_one_dataset(tmp_path):
    df = pd.DataFrame({"case_id": [f"c{i}" for i in range(6)], "sex": ["1"] * 6,
                       "age_years": ["50"] * 6, "diagnoses": ["I50.900"] * 6})
    for m in (1, 2):
        d = tmp_path / "ds" / "year=2024" / f"month={m:02d}"
        d.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(df.iloc[(m - 1) * 3: m * 3], preserve_index=False),
                       d / "part.parquet")
    out = drgsim.group(tmp_path / "ds")
    assert sorted(out["case_id"]) == [f"c{i}" for i in range(6)]
    assert (out["status"] == "ok").all()


def test_group_file_streams_parquet_in_batches(tmp_path):
    from drgsim.grouper.stream import group_file

    n = 5000
    df = pd.DataFrame({"case_id": np.arange(n).astype(str), "sex": np.ones(n, int),
                       "age_years": np.full(n, 40), "diagnoses": ["I50.900|J18.900"] * n,
                       "procedures": [""] * n})
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "in.parquet",
                   row_group_size=1000)
    s = group_file(tmp_path / "in.parquet", tmp_path / "out.parquet", batch_rows=1000)
    out = pq.read_table(tmp_path / "out.parquet")
    assert s.rows == n == out.num_rows
    assert out.column("case_id").to_pylist() == df.case_id.tolist()
    assert out.schema.metadata[b"drgsim.scheme_version"] == b"1.1"
    s = group_file(tmp_path / "in.parquet", tmp_path / "out.csv", batch_rows=1000)
    back = pd.read_csv(tmp_path / "out.csv", dtype=str)
    assert len(back) == n and (back["drg"] == out.column("drg").to_pandas()).all()


# ---- the byte kernels agree with the obvious Python reading (scheme README section 3)

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from drgsim.grouper.reference import parse_int, split_codes  # noqa: E402

_int_text = st.one_of(
    st.text(alphabet=" \t-0123456789.x\u3000\xa0", max_size=10),
    st.integers(-(10**17), 10**17).map(str),
    st.integers(-999, 999).map(lambda i: f" {i}.0 "),
    st.text(max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(st.none(), _int_text), min_size=1, max_size=40))
def test_text_integer_kernel_matches_reference(values):
    got = int_field(pa.array(values, pa.string())).tolist()
    want = [parse_int(v) for v in values]
    assert got == [A if w is None else w for w in want]


@settings(max_examples=200, deadline=None)
@given(fields=st.lists(st.one_of(st.none(), st.lists(
    st.sampled_from(["I50.900", "J18.900", "", " ", "i50.900", "中文", "00.5500"]), max_size=5
).map("|".join), st.text(alphabet="|,AI5.0 ", max_size=8)), min_size=1, max_size=30),
    keep_empty=st.booleans())
def test_code_encoding_matches_split_and_lookup(chs, fields, keep_empty):
    from drgsim.codes import encode_field

    arr = code_field(pa.array(fields, pa.string()))
    ptr, ids = encode_field(arr, chs, keep_empty_field=keep_empty, threads=2)
    vocab = {c: i for i, c in enumerate(chs.codes)}
    for i, f in enumerate(arr.to_pylist()):
        want = [vocab.get(c, 0) for c in split_codes(f, keep_empty)]
        assert ids[ptr[i]:ptr[i + 1]].tolist() == want


def test_header_only_input_gives_an_empty_output_with_the_schema(tmp_path):
    from drgsim.grouper.stream import group_file

    (tmp_path / "e.csv").write_text("case_id,sex,age_years,diagnoses\n", encoding="utf-8")
    s = group_file(tmp_path / "e.csv", tmp_path / "e.parquet")
    t = pq.read_table(tmp_path / "e.parquet")
    assert s.rows == 0 and t.num_rows == 0
    assert t.column_names[-4:] == ["mdc", "adrg", "drg", "status"]
    assert "procedures" in s.missing_columns


def test_absent_columns_are_recorded():
    df = pd.DataFrame({"case_id": ["a"], "sex": [1], "age_years": [60], "diagnoses": ["I50.900"]})
    out = drgsim.group(df)
    assert "los_days" in out.attrs["drgsim.absent_columns"].split(",")
    t = drgsim.group(pa.Table.from_pandas(df))
    assert b"procedures" in t.schema.metadata[b"drgsim.absent_columns"]


def test_concurrent_calls_from_threads_are_safe():
    """A threaded scheduler (Dask, a thread pool) may call group() from several threads."""
    from concurrent.futures import ThreadPoolExecutor

    df = pd.DataFrame({"case_id": [str(i) for i in range(3000)], "sex": [1, 2, 1] * 1000,
                       "age_years": [60, 30, 5] * 1000,
                       "diagnoses": ["I50.900|J18.900", "O80.000", "J18.900"] * 1000})
    want = drgsim.group(df)["drg"].tolist()
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda _: drgsim.group(df)["drg"].tolist(), range(8)))
    assert all(r == want for r in results)
