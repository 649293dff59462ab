"""DIP on a distributed engine: the single path's matching, one partition at a time.

A case's packet depends on its own codes and cost only (and the catalogue), so any
partitioning will do: each partition goes through ``drgsim.dip.match``'s Arrow path
(:func:`drgsim.dip.match.match_arrow_result`, what ``drgsim group --method dip`` streams
through), with a catalogue the adapter ships to the workers once (Dask: scattered;
Spark: broadcast). Nothing here re-implements a rule.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa

from drgsim.scheme.compiled import CompiledScheme


def load_catalogue(catalogue: Any, scheme: CompiledScheme) -> Any:
    """The catalogue (a folder is read and validated) compiled against ``scheme`` on the
    driver, so a malformed catalogue fails before any partition runs."""
    from drgsim.dip.match import _catalogue, prepare

    cat = _catalogue(catalogue)
    prepare(cat, scheme)
    return cat


def match_table(table: pa.Table, catalogue: Any, scheme: CompiledScheme,
                translate: bool = False, threads: int = 1) -> pa.Table:
    """Match one Arrow partition exactly as ``drgsim.dip.match`` matches an Arrow table."""
    from drgsim.dip.match import match_arrow_result

    return match_arrow_result(table, catalogue, scheme, translate, threads)[0]


def match_frame(df: pd.DataFrame, catalogue: Any, scheme: CompiledScheme,
                translate: bool = False, threads: int = 1) -> pd.DataFrame:
    """Match one pandas partition on the Arrow path (every partition writes the same
    parquet schema, as :func:`drgsim.distributed.group_frame`)."""
    from drgsim.distributed.partition import _keep_arrow

    out = match_table(pa.Table.from_pandas(df, preserve_index=False), catalogue, scheme,
                      translate, threads)
    res = out.to_pandas(types_mapper=_keep_arrow)
    res["treatment_type"] = res["treatment_type"].astype("Int8")  # as dip.match on a frame
    res.index = df.index
    return res


def provenance(catalogue: Any, scheme: CompiledScheme, translate: bool) -> dict[str, str]:
    """What a matched output records (scheme, catalogue, its history's hash)."""
    from drgsim.dip.match import provenance as prov

    return prov(catalogue, scheme, translate)


__all__ = ["load_catalogue", "match_frame", "match_table", "provenance"]
