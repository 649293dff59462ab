"""The demo region's base-packet list (基层病种), generated from the synthetic region.

    python -m drgsim.dip.base_list src/drgsim/data/dip/base_packets_demo.csv

A real region replaces the list with its published one (``--base-packets FILE``).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd

from drgsim.dip.build import build


def make_base_list(out: str | os.PathLike[str], top: int = 30, discharges: int = 1_800_000,
                   seed: int = 0) -> pd.DataFrame:
    """The demo's base-packet list: the ``top`` most frequent conservative core packets among
    cases at 一级 hospitals of the synthetic region (3 history years, ``discharges`` cases)."""
    from drgsim.output import atomic_path
    from drgsim.synth import SyntheticRegion, params

    years = params.DEFAULT_YEARS[:3]
    reg = SyntheticRegion(discharges, params.DEFAULT_HOSPITALS, years, seed,
                          params.DEFAULT_DIRTY_RATE, "chs_drg_11", 1)
    table = reg.discharges_table()
    hosp = reg.hospitals_table().to_pandas()
    cat, assigned = build(table, hospitals=hosp, base_packets="none")
    lv = dict(zip(hosp["hospital_id"].astype(str), hosp["level"].astype(str), strict=True))
    hid = np.asarray(table.column("hospital_id").to_numpy(zero_copy_only=False), dtype=object)
    primary = pd.Series(hid).map(lv).to_numpy(dtype=object) == "一级"
    cons = set(cat.packets.loc[(cat.packets["kind"] == "core") & (cat.packets["procs"] == ""),
                               "packet"])
    pk = assigned["packet"].astype(str).to_numpy()
    sel = primary & np.isin(pk, list(cons))
    counts = pd.Series(pk[sel]).value_counts()
    counts = counts.sort_index().sort_values(ascending=False, kind="stable").head(top)
    df = pd.DataFrame({"packet": counts.index, "n_cases_primary": counts.to_numpy()})
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False)
    return df


if __name__ == "__main__":  # python -m drgsim.dip.base_list OUT
    if len(sys.argv) == 2:
        print(make_base_list(sys.argv[1]).to_string(index=False))
    else:
        print("usage: python -m drgsim.dip.base_list OUT.csv", file=sys.stderr)
        sys.exit(2)
