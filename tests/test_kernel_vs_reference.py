"""The numba kernel agrees with the slow reference grouper on random records."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import drgsim
from drgsim.grouper.reference import ReferenceGrouper


@pytest.fixture(scope="module")
def ref(chs_tables):
    return ReferenceGrouper(chs_tables)


@pytest.fixture(scope="module")
def pools(chs_tables):
    t = chs_tables.tables
    dx = sorted(set(t["mdc_principal_dx.csv"].get("code")) | set(t["cc.csv"].get("code")))
    px = sorted(set(t["adrg_codes.csv"].get("code")) - set(dx))
    return dx, px


@settings(max_examples=40, deadline=None)
@given(data=st.data(), translate=st.booleans())
def test_kernel_matches_reference(ref, pools, data, translate):
    dx_pool, px_pool = pools
    dx_code = st.one_of(st.sampled_from(dx_pool), st.sampled_from(["", "X", "i50.900"]))
    px_code = st.one_of(st.sampled_from(px_pool), st.just(""))
    rows = data.draw(st.lists(st.fixed_dictionaries({
        "case_id": st.just("r"),
        "sex": st.sampled_from(["1", "2", "0", ""]),
        "age_years": st.sampled_from(["0", "1", "30", "70", "", "x"]),
        "age_days": st.sampled_from(["", "5", "28", "29", "-3", "400"]),
        "birth_weight_g": st.sampled_from(["", "0", "800", "1800", "3200", "3.2kg"]),
        "los_days": st.sampled_from(["", "1", "8", "30"]),
        "diagnoses": st.lists(dx_code, max_size=6).map("|".join),
        "procedures": st.lists(px_code, max_size=4).map("|".join),
    }), min_size=20, max_size=60))
    df = pd.DataFrame(rows)
    out = drgsim.group(df, translate=translate)
    for i, row in enumerate(rows):
        r = ref.group(row, translate=translate)
        got = tuple(out.iloc[i][["mdc", "adrg", "drg", "status"]])
        assert got == (r.mdc, r.adrg, r.drg, r.status), f"{row}\n" + "\n".join(r.trail)
