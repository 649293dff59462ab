"""What a distributed run derives from the history years, per hospital partition and on
the driver: DIP's PV_b and reimbursement ratio r, and last year's point value
(``budgeted_pv: last_year``) when none is given.

Both are the single path's code split in two (:func:`drgsim.dip.price.history_sums` /
:func:`drgsim.scenarios.prepare.dip_point_values`;
:func:`drgsim.settlement.simulate.last_year_totals` /
:func:`~drgsim.settlement.simulate.last_year_settle`): the per-hospital part runs in
:func:`drgsim.distributed.price_partition` on the partition's history rows, the driver
reduces (:func:`driver_history`). Each hospital's sums come from its one partition and are
reduced in an order-free way (integers, ``math.fsum``; totals on one hospital axis), so the
point values are the single path's bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from drgsim.pricing.cases import FUNDS, prepare_cases
from drgsim.pricing.core import Weights, price
from drgsim.settlement.core import FundTotals


def partition_history(history: pd.DataFrame, prev_years: pd.Series, ctx: Any) -> dict[str, Any]:
    """One hospital partition's history parts: DIP's per hospital × year × fund sums of the
    history priced with this year's policy (``ctx.dip``), last year's hospital × month
    totals under the last-year policy (``ctx.last_year``)."""
    out: dict[str, Any] = {}
    hids = ctx.hosp_df["hospital_id"] if ctx.hosp_df is not None else None
    if getattr(ctx, "dip", False) and len(history):
        from drgsim.dip.price import history_sums

        hist = prepare_cases(history, hids, columns=ctx.columns)
        out["dip_sums"] = history_sums(price(hist, ctx.W, ctx.yp.pv, ctx.hosp_df))
    if getattr(ctx, "last_year", None) is not None:
        prev = prepare_cases(history[(prev_years == ctx.year - 1).to_numpy()], hids,
                             columns=ctx.columns)
        out["last_year"] = last_year_part(prev, ctx.W, ctx.last_year, ctx.year, ctx.hosp_df)
    return out


def last_year_part(prev: Any, W: Weights, p0: dict, year: int,
                   hosp_df: pd.DataFrame | None) -> dict[str, Any]:
    """One hospital partition's last-year cases (prepared) priced under the last-year
    policy ``p0``: their hospital × month totals, their hospitals, which funds have a
    payable case (:func:`drgsim.settlement.simulate.last_year_totals`)."""
    from drgsim.settlement.simulate import last_year_totals

    _, totals, present = last_year_totals(prev, W, p0, year, hosp_df)
    return {"hospital_ids": np.asarray(prev.hospital_ids, dtype=object), "totals": totals,
            "present": present}


def driver_last_year(parts: list[dict[str, Any]], pv: dict, year: int, W: Weights,
                     hosp_df: pd.DataFrame | None, region_df: pd.DataFrame | None,
                     columns: dict[str, str] | None, empty: pd.DataFrame,
                     ratio: dict[str, float] | None) -> dict[str, float]:
    """Last year's point value per fund from the partitions' :func:`last_year_part`
    (``last_year_pv`` of the single path, settled once on the driver)."""
    from drgsim.settlement.simulate import last_year_policy, last_year_settle

    if hosp_df is not None:
        ids = pd.Series(hosp_df["hospital_id"]).astype("string").dropna().unique()
    else:
        ids = [h for p in parts for h in p["hospital_ids"]]
    hids = np.asarray(sorted({str(h) for h in ids}), dtype=object)
    present = {name: any(p["present"][name] for p in parts) for name in FUNDS}
    p0 = last_year_policy(pv)
    zero = price(prepare_cases(empty, list(hids), columns=columns), W, p0, hosp_df)
    return last_year_settle(zero, _on_axis(parts, hids), present, p0, region_df, year, ratio)


def _on_axis(parts: list[dict[str, Any]], hids: np.ndarray) -> list[FundTotals]:
    """The partitions' last-year totals added onto the hospital axis ``hids`` (each
    hospital's from its one partition, zeros from the others: its floats unchanged)."""
    H = len(hids)
    idx = pd.Index(hids)
    tot = [FundTotals.zeros(name, H) for name in FUNDS]
    for p in parts:
        pos = idx.get_indexer([str(h) for h in p["hospital_ids"]])
        for t, q in zip(tot, p["totals"], strict=True):
            for name in ("points", "share_fen", "cost_fen", "cases", "outside_fen"):
                getattr(t, name)[pos] += getattr(q, name)
    return tot


def driver_history(
    summaries: list[dict[str, Any]],
    yp: Any,
    year: int,
    W: Weights,
    catalogue: Any,
    reference_pv: dict[str, float] | None,
    hosp_df: pd.DataFrame | None,
    region_df: pd.DataFrame | None,
    columns: dict[str, str] | None,
    empty: pd.DataFrame,
    dip: bool,
) -> tuple[dict[str, float] | None, dict[str, float] | None]:
    """(reference point value, DIP reimbursement ratio) per fund from the partitions'
    history parts, as ``drgsim.prepare`` sets them: PV_b for ``budgeted_pv: history``
    (DIP), last year's point value for ``budgeted_pv: last_year`` when ``reference_pv`` is
    not given (``empty``: a zero-row frame of the priced columns, names the hospitals)."""
    from drgsim.scenarios.prepare import dip_point_values
    from drgsim.settlement.simulate import needs_reference_pv

    pv = yp.pv
    ref, ratio = reference_pv, None
    hist = [s.get("history", {}) for s in summaries]
    if dip:
        sums = [h["dip_sums"] for h in hist if "dip_sums" in h]
        ratio, pv_b = dip_point_values(pv, pd.concat(sums, ignore_index=True) if sums else None,
                                       catalogue)
        if pv["point_value"]["bounds"]["budgeted_pv"] == "history" and reference_pv is None:
            ref = pv_b
    if needs_reference_pv(pv) and reference_pv is None:
        parts = [h["last_year"] for h in hist if "last_year" in h]
        ref = driver_last_year(parts, pv, year, W, hosp_df, region_df, columns, empty, ratio)
    return ref, ratio


__all__ = [
    "driver_history",
    "driver_last_year",
    "last_year_part",
    "partition_history",
]
