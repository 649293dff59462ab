"""DIP on a distributed engine: the single path's matching, one partition at a time.

Catalogue building is a shuffle by assigned packet (:mod:`drgsim.distributed.dip_build`,
running the steps of :mod:`drgsim.dip.steps` that ``drgsim.dip.build`` runs too): the
driver holds key counts and per-packet statistics, never history rows; only the columns
the build reads (:func:`build_columns`) are selected from the input.

A case's packet depends on its own codes and cost only (and the catalogue), so any
partitioning will do: each partition goes through ``drgsim.dip.match``'s Arrow path
(:func:`drgsim.dip.match.match_arrow_result`, what ``drgsim group --method dip`` streams
through), with a catalogue the adapter ships to the workers once (Dask: scattered;
Spark: broadcast). Nothing here re-implements a rule.

DIP pricing (``method: dip``) on an engine: matching per partition (above) before the
hospital shuffle; the weights keyed by packet × auxiliary class are fixed on the driver
from each partition's distinct keys in input order (:func:`weight_keys`,
:func:`driver_weights`: :func:`drgsim.dip.price.dip_weights` of them, the single path's
table row for row) and broadcast; each hospital partition turns its matched rows into what
pricing reads (:func:`drgsim.dip.price.dip_frame`, in
:func:`drgsim.distributed.price_partition`) and prices as for DRG; PV_b and the
reimbursement ratio reduce from per-hospital sums (:mod:`drgsim.distributed.history`).
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


def build_columns(names: list[str], columns: dict[str, str] | None = None) -> list[str]:
    """The input columns ``drgsim.dip.build`` reads (record fields, cost, patients' share,
    discharge date or year, hospital, the malformed-row flag), in input order: what a
    distributed build selects from the input, nothing else."""
    from drgsim.inputs.sources import MALFORMED_COLUMN
    from drgsim.pricing.cases import ALIASES, SHARE_PARTS
    from drgsim.records import RECORD_FIELDS

    want = set(RECORD_FIELDS) | set(SHARE_PARTS) | {MALFORMED_COLUMN, "year"}
    for k in ("total_cost", "patient_share", "discharge_date", "hospital_id"):
        want |= set(ALIASES.get(k, (k,)))
    want |= set((columns or {}).values())
    return [c for c in names if c in want]


def provenance(catalogue: Any, scheme: CompiledScheme, translate: bool) -> dict[str, str]:
    """What a matched output records (scheme, catalogue, its history's hash)."""
    from drgsim.dip.match import provenance as prov

    return prov(catalogue, scheme, translate)


#: the matched columns a pricing key is made of (``dip_status`` says whether one applies)
KEY_COLUMNS = ("packet", "aux_catalogue", "aux_class", "aux_coef", "dip_status")


def weight_keys(df: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """One partition's matched rows that carry a pricing key (status ok), one per distinct
    key columns' values, the first in input order (``order``: the columns giving it)."""
    from drgsim.dip.price import dip_frame

    cols = [c for c in KEY_COLUMNS if c in df.columns]
    ok = (dip_frame(df[cols])["status"] == "ok").to_numpy()
    k = df.loc[ok, [*cols, *order]].sort_values(order, kind="stable")
    return k.drop_duplicates(subset=cols, keep="first")


def driver_weights(catalogue: Any, parts: list[pd.DataFrame], order: list[str]) -> Any:
    """The DIP weights of the whole input from the partitions' :func:`weight_keys`: their
    rows in input order, so :func:`drgsim.dip.price.dip_weights` meets every key where the
    single path meets it first and gives the same table, row for row (and its errors)."""
    from drgsim.dip.price import dip_weights

    k = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*KEY_COLUMNS,
                                                                               *order])
    cols = [c for c in KEY_COLUMNS if c in k.columns]
    k = k.sort_values(order, kind="stable").drop_duplicates(subset=cols, keep="first")
    return dip_weights(catalogue, k.drop(columns=order).reset_index(drop=True))


__all__ = ["KEY_COLUMNS", "build_columns", "driver_weights",
           "load_catalogue", "match_frame", "match_table", "provenance", "weight_keys"]


def driver_dip(base: Any, catalogue: Any, source: str, ratio: dict[str, float] | None) -> None:
    """Give a driver's Prepared what ``drgsim.prepare`` gives a DIP run: the catalogue,
    the reimbursement ratio per fund and their provenance."""
    from drgsim.scenarios.prepare import dip_provenance

    base.catalogue = catalogue
    base.dip_ratio = ratio
    dip_provenance(base.prov, source, ratio)


__all__ += ["driver_dip"]
