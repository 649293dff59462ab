"""What runs inside Spark's tasks and on the driver between them: core calls only.

Core functions called (the list the distributed engines share):

- grouping: :func:`drgsim.grouper.core.group_arrow` per Arrow batch;
- DIP: ``drgsim.dip.match`` per Arrow batch;
- per hospital partition: :func:`drgsim.settlement.simulate.readmission_lookback`,
  :func:`drgsim.scenarios.prepare.price_partition` (prepare_cases + price + build_cells),
  :func:`drgsim.pricing.cells.points_under`, :func:`drgsim.settlement.run.cell_fund_totals`,
  then, given the settlement, :func:`drgsim.pricing.cells.priced_under`,
  :func:`drgsim.settlement.run.case_payments` and ``Priced.frame()``;
- driver: :func:`drgsim.policy.resolve_year`, :func:`drgsim.settlement.simulate.check_inputs`,
  :func:`drgsim.calibrate.read_weights`, ``Weights.from_frame``,
  :func:`drgsim.scenarios.prepare.check_reference_pv`,
  :func:`drgsim.scenarios.prepare.fund_budgets`,
  :func:`drgsim.scenarios.prepare.hospital_scores`,
  :func:`drgsim.settlement.run.settle_funds`, :func:`drgsim.settlement.run.build_tables`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from drgsim.errors import DrgsimError, RecordsError

ROW = "__drgsim_row"  # the input order, so each hospital's rows keep the single path's order

# one compiled scheme per Python worker: the broadcast is unpickled once, the numba
# kernels (disk-cached) load on the first batch and stay loaded while Spark reuses the worker
_WORKER: dict[str, Any] = {}


def _cached(bc: Any, key: str) -> Any:
    if key not in _WORKER:
        _WORKER[key] = bc.value
    return _WORKER[key]


def group_batches(
    batches: Iterator[pa.RecordBatch], bc: Any, key: str, translate: bool, flags: bool,
    names: bool, threads: int, target: pa.Schema,
) -> Iterator[pa.RecordBatch]:
    """Group each Arrow batch with the broadcast scheme (the single path's group_arrow);
    ``key``: the scheme's hash, under which the worker keeps it."""
    from drgsim.grouper.core import group_arrow

    cs = _cached(bc, key)
    for b in batches:
        t = group_arrow(pa.Table.from_batches([b]), cs, translate, threads, flags, names)
        yield from _conform(t, target).to_batches()


def dip_batches(batches: Iterator[pa.RecordBatch], bc: Any, key: str, target: pa.Schema
                ) -> Iterator[pa.RecordBatch]:
    """Match each Arrow batch to DIP packets with the broadcast scheme and catalogue."""
    from drgsim import dip

    cs, cat = _cached(bc, key)
    for b in batches:
        t = dip.match(pa.Table.from_batches([b]), catalogue=cat, scheme=cs)
        yield from _conform(t, target).to_batches()


def _conform(t: pa.Table, target: pa.Schema) -> pa.Table:
    """The table in Spark's declared Arrow types (metadata dropped: Spark keeps none)."""
    t = t.replace_schema_metadata(None)
    if t.schema.names != target.names:
        raise DrgsimError(f"internal: batch columns {t.schema.names} != {target.names}")
    return t.cast(target) if not t.schema.equals(target) else t


# ----------------------------------------------------------------------------- simulate


@dataclass
class SimSpec:
    """Everything the hospital partitions need, fixed on the driver and broadcast once."""

    policy: Any
    weights_arg: Any
    hosp_df: pd.DataFrame | None
    region_df: pd.DataFrame | None
    columns: dict[str, str] | None
    dcol: str
    hcol: str
    reference_pv: dict[str, float] | None
    year: int = 0
    yp: Any = None
    W: Any = None
    w_df: pd.DataFrame | None = None
    w_src: str = ""
    hids: Any = None  # what price_partition gets (the hospitals table's ids, or the cases')
    hs: np.ndarray | None = None  # the hospital index (sorted ids), as prepare_cases makes it


def driver_inputs(cols: list[str], policy: Any, weights: Any, hospitals: Any, region: Any,
                  columns: dict[str, str] | None, reference_pv: dict[str, float] | None
                  ) -> SimSpec:
    """Read the side tables and find the case columns, before any Spark job."""
    from drgsim.policy import Policy, load_policy
    from drgsim.pricing.cases import _col
    from drgsim.settlement.simulate import read_table

    if weights is None:
        from drgsim.spark import SparkError

        raise SparkError(
            "drgsim.spark.simulate needs weights (a calibrated table or file, e.g. from "
            "drgsim calibrate on the history years): distributed calibration is not built"
        )
    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    hosp_df = read_table(hospitals)[0] if hospitals is not None else None
    if hosp_df is not None and "hospital_id" not in hosp_df.columns:
        raise RecordsError("the hospitals table lacks a hospital_id column")
    region_df = read_table(region)[0] if region is not None else None
    empty = pd.DataFrame(columns=cols)
    dcol = next((c for c in ("discharge_date", "discharge", "disch_date") if c in cols), None)
    if columns and "discharge_date" in columns:
        dcol = columns["discharge_date"]
    if dcol is None:
        raise RecordsError("cases lack a discharge_date column")
    hcol = _col(empty, "hospital_id", columns)
    if hcol is None:
        raise RecordsError("cases lack a hospital_id column")
    return SimSpec(pol, weights, hosp_df, region_df, columns, dcol, hcol, reference_pv)


def _years(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, errors="coerce")


def scan_batches(batches: Iterator[pa.RecordBatch], hcol: str, dcol: str
                 ) -> Iterator[pa.RecordBatch]:
    """Per batch: rows per (hospital, discharge year) and the fewest days from a discharge
    to the next 1 January (the readmission look-back), dates parsed as prepare parses them."""
    for b in batches:
        t = pa.Table.from_batches([b]).select([hcol, dcol]).to_pandas()
        d = _years(t[dcol])
        nxt = pd.to_datetime((d.dt.year + 1).astype("Int64").astype("string") + "-01-01",
                             errors="coerce")
        f = pd.DataFrame({
            "hospital": t[hcol].astype("string"),
            "year": d.dt.year.astype("Int32"),
            "gap": (nxt - d).dt.days.astype("Int32"),
        })
        g = f.groupby(["hospital", "year"], dropna=False, sort=False).agg(
            n=("gap", "size"), gap=("gap", "min")
        ).reset_index()
        yield pa.RecordBatch.from_pandas(g[["hospital", "year", "n", "gap"]], schema=pa.schema(
            [("hospital", pa.string()), ("year", pa.int32()), ("n", pa.int64()),
             ("gap", pa.int32())]), preserve_index=False)


def hospital_index(spec: SimSpec, counts: pd.DataFrame, year: int | None) -> SimSpec:
    """Fix the year, the policy in force, the weights and the hospital index; refuse,
    before pricing, what the single path refuses (:func:`check_inputs`)."""
    from drgsim.calibrate import read_weights
    from drgsim.policy import resolve_year
    from drgsim.pricing.cases import FUNDS
    from drgsim.pricing.core import Weights
    from drgsim.scenarios.prepare import check_reference_pv
    from drgsim.settlement.simulate import (
        SettlementInputError,
        check_inputs,
        needs_reference_pv,
    )
    from drgsim.spark import SparkError

    yrs = pd.to_numeric(counts["year"], errors="coerce")
    if year is None:
        if yrs.isna().all():
            raise RecordsError("no valid discharge dates to find the simulated year")
        year = int(yrs.max())
    yp = resolve_year(spec.policy, year)
    pv = yp.pv
    present = pd.Series(np.repeat(yrs.to_numpy(dtype=np.float64), counts["n"].to_numpy()))
    check_inputs(pv, year, int(counts["n"][yrs == year].sum()), present, spec.hosp_df,
                 spec.region_df)
    in_cases = sorted(set(counts["hospital"][(yrs == year) | yrs.isna()].dropna().astype(str)))
    if spec.hosp_df is not None:
        table = set(spec.hosp_df["hospital_id"].astype("string").dropna())
        if in_cases and not table & set(in_cases):
            raise SettlementInputError(
                f"the hospitals table names none of the {len(in_cases)} hospitals of the "
                f"cases (cases: {', '.join(in_cases[:3])}…; table: "
                f"{', '.join(sorted(table)[:3])}…): check the hospital_id columns"
            )
    if any(pv["budget"][f]["source"] == "history" for f in FUNDS):
        raise SparkError("budget source history prices last year's cases: not built on Spark; "
                         "use source region_table or amount")
    if needs_reference_pv(pv) and spec.reference_pv is None:
        raise SparkError("budgeted_pv: last_year with a floor or ceiling needs last year's "
                         "point value: give reference_pv (not computed on Spark)")
    check_reference_pv(spec.reference_pv, pv)
    if isinstance(spec.weights_arg, pd.DataFrame):
        w_df, w_src = spec.weights_arg, "given"
    else:
        w_df, w_src = read_weights(spec.weights_arg, pv, None), str(spec.weights_arg)
    days = [p["readmission"]["days"] for p in yp.segments if p["readmission"]["enabled"]]
    if spec.hosp_df is not None:
        hids = spec.hosp_df["hospital_id"]
    else:  # every hospital of the year's rows and of last year's look-back rows
        back = (yrs == year - 1) & (counts["gap"] <= (max(days) if days else -1))
        sel = (yrs == year) | yrs.isna() | back.fillna(False)
        hids = pd.Series(sorted(set(counts["hospital"][sel].dropna().astype(str))), dtype=object)
    hs = np.asarray(sorted(pd.Series(hids).astype("string").unique()), dtype=object) \
        if spec.hosp_df is not None else np.asarray(list(hids), dtype=object)
    spec.year, spec.yp = year, yp
    spec.W = Weights.from_frame(w_df, pv["points"]["scale"])
    spec.w_df, spec.w_src = w_df, w_src
    spec.hids, spec.hs = (hids if spec.hosp_df is not None else hs), hs
    return spec


def _priced(table: pa.Table, spec: SimSpec):
    from drgsim.scenarios.prepare import price_partition
    from drgsim.settlement.simulate import readmission_lookback

    df = table.to_pandas()
    df = df.sort_values(ROW, kind="stable").drop(columns=[ROW]).reset_index(drop=True)
    years = _years(df[spec.dcol]).dt.year
    cur = df[(years == spec.year).to_numpy()].reset_index(drop=True)
    bad = df[years.isna().to_numpy()]
    if len(bad):
        cur = pd.concat([cur, bad], ignore_index=True)
    if not len(cur):
        return None
    back = readmission_lookback(df[(years < spec.year).to_numpy()], spec.dcol, spec.year,
                                spec.yp)
    return price_partition(cur, back, spec.W, spec.yp, spec.hosp_df, spec.hids, spec.columns)


TOTALS = pa.schema([("kind", pa.string()), ("h", pa.int32()), ("f", pa.int32()),
                    ("m", pa.int32()), ("points", pa.float64()), ("share", pa.int64()),
                    ("cost", pa.int64()), ("n", pa.int64())])


def totals_hospital(table: pa.Table, spec: SimSpec) -> pa.Table:
    """A hospital partition's hospital × fund × month totals (the settlement input)."""
    from drgsim.pricing.cases import FUNDS
    from drgsim.pricing.cells import points_under
    from drgsim.settlement.run import cell_fund_totals

    got = _priced(table, spec)
    if got is None:
        return TOTALS.empty_table()
    _, pr, cells = got
    tot = cell_fund_totals(cells, points_under(cells, pr, spec.yp))
    c = pr.cases
    hs = np.unique(c.hosp[c.hosp >= 0]).astype(np.int32)
    parts = []
    for f in range(len(FUNDS)):
        t = tot[f]
        hh, mm = np.meshgrid(hs, np.arange(12, dtype=np.int32), indexing="ij")
        k = len(hh.ravel())
        parts.append(pd.DataFrame({
            "kind": "hfm", "h": hh.ravel(), "f": np.int32(f), "m": mm.ravel(),
            "points": t.points[hh, mm].ravel(), "share": t.share_fen[hh, mm].ravel(),
            "cost": t.cost_fen[hh, mm].ravel(), "n": t.cases[hh, mm].ravel(),
        }, index=range(k)))
        parts.append(pd.DataFrame({
            "kind": "out", "h": hs, "f": np.int32(f), "m": np.int32(0), "points": 0.0,
            "share": 0, "cost": t.outside_fen[hs], "n": 0,
        }, index=range(len(hs))))
        parts.append(pd.DataFrame({
            "kind": ["fund"], "h": [-1], "f": [f], "m": [0], "points": [0.0], "share": [0],
            "cost": [0], "n": [int((c.fund == f).sum())],
        }))
    return pa.Table.from_pandas(pd.concat(parts, ignore_index=True), schema=TOTALS,
                                preserve_index=False)


def settle_on_driver(spec: SimSpec, rows: pd.DataFrame) -> tuple[list, dict[str, str]]:
    """Assemble the partitions' totals and settle every fund (single-machine functions)."""
    from drgsim import __version__
    from drgsim.pricing.cases import FUNDS
    from drgsim.scenarios.prepare import fund_budgets, hospital_scores
    from drgsim.settlement.core import FundTotals
    from drgsim.settlement.run import settle_funds
    from drgsim.settlement.simulate import _weights_hash

    H, nF = len(spec.hs), len(FUNDS)
    hfm = rows[rows["kind"] == "hfm"]
    if hfm.duplicated(["h", "f", "m"]).any():  # a hospital split over two partitions
        raise DrgsimError("internal: a hospital's totals came from two partitions")
    pts = np.zeros((nF, H, 12))
    share, cost, n = (np.zeros((nF, H, 12), np.int64) for _ in range(3))
    f_, h_, m_ = (hfm[x].to_numpy(np.int64) for x in ("f", "h", "m"))
    pts[f_, h_, m_] = hfm["points"].to_numpy()  # moved, never summed: the bits of one partition
    share[f_, h_, m_] = hfm["share"].to_numpy()
    cost[f_, h_, m_] = hfm["cost"].to_numpy()
    n[f_, h_, m_] = hfm["n"].to_numpy()
    out_r = rows[rows["kind"] == "out"]
    outside = np.zeros((nF, H), np.int64)
    outside[out_r["f"].to_numpy(np.int64), out_r["h"].to_numpy(np.int64)] = out_r["cost"]
    fr = rows[rows["kind"] == "fund"]
    has_cases = [bool(fr["n"][fr["f"] == f].sum() > 0) for f in range(nF)]
    tot = [FundTotals(FUNDS[f], pts[f], share[f], cost[f], n[f], outside[f]) for f in range(nF)]
    pv = spec.yp.pv
    outside_f = {FUNDS[f]: int(outside[f].sum()) for f in range(nF)}
    budgets = fund_budgets(pv, spec.year, spec.region_df, {}, outside_f, has_cases, 3)
    scores = hospital_scores(spec.hosp_df, spec.hs)
    fs_list = settle_funds(tot, spec.yp, budgets, spec.year, scores, spec.reference_pv)
    pol = spec.policy
    prov = {
        "drgsim.version": __version__,
        "drgsim.engine": "spark",
        "drgsim.policy": pol.name,
        "drgsim.policy_hash": pol.text_hash,
        "drgsim.weights_hash": _weights_hash(spec.w_df),
        "drgsim.weights_source": spec.w_src,
        "drgsim.scheme": pol.scheme,
        "drgsim.year": str(spec.year),
    }
    return fs_list, prov


def case_frame_schema(in_schema: pa.Schema, spec: SimSpec) -> pa.Schema:
    """The Arrow types of ``Priced.frame()`` + ``payment_fen`` (the per-case output)."""
    from drgsim.pricing.cases import _col

    cid = _col(pd.DataFrame(columns=in_schema.names), "case_id", spec.columns)
    cid_t = pa.int64()
    if cid is not None:
        t = in_schema.field(cid).type
        cid_t = pa.int64() if pa.types.is_integer(t) else pa.string()
    s, d, i16 = pa.string(), pa.float64(), pa.int16()
    return pa.schema([
        ("case_id", cid_t), ("hospital_id", s), ("fund", s), ("year", i16), ("month", i16),
        ("drg", s), ("status", s), ("case_type", s), ("pay_status", s), ("weight_level", s),
        ("base_points", d), ("coefficient", d), ("mean_cost_fen", d), ("cost_ratio", d),
        ("k", d), ("premium_points", d), ("factor", d), ("readmission", pa.bool_()),
        ("points", d), ("rw", d), ("los_days", pa.int32()), ("mean_los", d),
        ("in_budget", pa.bool_()), ("cost_fen", pa.int64()), ("patient_share_fen", pa.int64()),
        ("payment_fen", pa.int64()),
    ])


def price_hospital(table: pa.Table, spec: SimSpec, fs_list: list, schema: pa.Schema
                   ) -> pa.Table:
    """A hospital partition's per-case rows with their payments split from the
    broadcast settlement (largest remainder per hospital-month, ties by case id)."""
    from drgsim.pricing.cells import priced_under
    from drgsim.settlement.run import case_payments

    got = _priced(table, spec)
    if got is None:
        return schema.empty_table()
    _, pr, cells = got
    pr = priced_under(pr, cells, spec.yp)
    frame = pr.frame()
    c = pr.cases
    mine = np.zeros(len(c.hospital_ids), bool)
    mine[c.hosp[c.hosp >= 0]] = True
    own = []  # the settlement restricted to this partition's hospitals (the rest: elsewhere)
    for fs in fs_list:
        fs = copy.copy(fs)
        fs.payment_hm = np.where(mine[:, None], fs.payment_hm, 0)
        own.append(fs)
    frame["payment_fen"] = case_payments(pr, own)
    if pa.types.is_string(schema.field("case_id").type):
        frame["case_id"] = frame["case_id"].astype("string")
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)


def settlement_tables(fs_list: list, hs: np.ndarray) -> dict[str, pd.DataFrame]:
    """funds, hospitals, months, ledger from the settlement alone (build_tables on no rows)."""
    from drgsim.pricing.cases import Cases
    from drgsim.pricing.core import Priced
    from drgsim.settlement.run import Settlement, build_tables

    z = np.zeros(0)
    zi = np.zeros(0, np.int64)
    names = np.asarray([""], dtype=object)
    cases = Cases(
        n=0, case_id=zi, tie=zi, hosp=np.zeros(0, np.int32), hospital_ids=hs,
        fund=np.zeros(0, np.int8), year=np.zeros(0, np.int16), month=np.zeros(0, np.int8),
        drg=np.zeros(0, np.int32), drg_names=names, adrg_names=names,
        adrg=np.zeros(0, np.int32), mdc=np.zeros(0, np.int32), mdc_names=names,
        status=np.zeros(0, np.int8), cost_fen=zi, share_fen=zi, los=np.zeros(0, np.int32),
        patient=zi, admit_day=np.zeros(0, np.int32), disch_day=np.zeros(0, np.int32),
        special_flag=np.zeros(0, bool), pay_status=np.zeros(0, np.int8),
    )
    cases.index()
    pr = Priced(cases, np.zeros(0, np.int8), z, z, z, z, z, z, z, z, zi, np.zeros(0, np.int8),
                np.zeros(0, np.int8), np.zeros(0, bool), zi, np.ones(len(hs)), rw=z, mean_los=z)
    t = build_tables(Settlement(pr, fs_list, zi))
    hosp = t["hospitals"].drop(columns=["cmi", "cost_index", "time_index"], errors="ignore")
    return {"funds": t["funds"], "hospitals": hosp, "months": t["months"],
            "ledger": t["ledger"]}


__all__ = ["SimSpec", "group_batches", "price_hospital", "settle_on_driver", "totals_hospital"]

