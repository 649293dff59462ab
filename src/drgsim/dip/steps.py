"""The DIP catalogue build as steps an engine can distribute (``dip.build`` runs the same).

1. **Years** (any partition): :func:`history_years`, the distinct valid discharge years;
   the driver fixes the catalogue year and the history years (:func:`make_plan`).
2. **Scan** (any partition): :func:`scan_sums` — per procedure code the partial sums of
   the version 2.0 cost estimate (whole fen, so exact in any order) and the codes no
   treatment rule matched; the driver reduces them (:func:`reduce_scans`).
3. **Rows** (any partition): :func:`case_rows` — one row per history row, all numbers:
   status, year, cost, share, hospital level id, a 64-bit hash of the packet key
   (diagnosis key, procedure set, its size, treatment type), auxiliary classes (all
   row-local) and two 64-bit hashes of the row; the key's text rides only on the part's
   first usable row of each key. :func:`reduce_rows` — usable rows per key hash, the
   named keys, status counts, the hash sums, added up over partitions
   (:func:`combine_reductions`, which refuses two keys with one hash).
4. **Driver**: :func:`decide_packets` — core packets and comprehensive folds decided from
   the key counts (no rows), the packets sorted by code; the key hash → packet index map
   is applied per row (:func:`assign_rows`).
5. **Shuffle by assigned packet**, then :func:`packet_statistics` per partition: trim,
   year-weighted mean and CV, level means, auxiliary coefficients (all per packet: a
   comprehensive packet pools many keys, so the packet, not the key, is the shuffle key),
   and per packet × year partial sums. Float sums run in one canonical order: rows sorted
   by (packet, year, cost, share) inside the packet; ties have equal contributions.
6. **Driver**: :func:`assemble` — the all-case mean, scores, base packets, budget point
   value and reimbursement ratio from the per-packet sums summed in packet-code order.

``built_from`` is order-free: the SHA-256 of the row count and the sums modulo 2**64 of
two 64-bit hashes per row (case_id, diagnoses, procedures by their UTF-8 bytes; cost,
year, share by value; :func:`drgsim.textkernels.content_hashes`), so any partitioning,
chunking and row order of the same rows give the same value. It is a fingerprint of the
history, not a cryptographic seal.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from drgsim.dip import keys as K
from drgsim.dip.tables import CatalogueError
from drgsim.errors import Problem

CLASS_CATALOGUES = ("comorbidity", "severity", "tumour", "age")
#: the per-row frame of step 3 (column -> dtype). ``key``: a 64-bit hash of the row's
#: packet key (diagnosis key, procedure set, its size, treatment type); the key's text
#: (``dx``, ``procs``, ``nprocs``) only on the part's first usable row of that key (null
#: elsewhere), so rows stay numbers and the reduction still names every key.
#: ``level``: index into ``Plan.levels`` (-1 unknown).
ROW_DTYPES: dict[str, str] = {
    "status": "int8", "reason": "int8", "year": "int64", "cost": "float64",
    "share": "float64", "level": "int64", "key": "int64", "tt": "int8",
    "dx": "object", "procs": "object", "nprocs": "int64",
    **{f"cls_{c}": "int64" for c in CLASS_CATALOGUES},
    "h1": "int64", "h2": "int64",
}
#: what travels from step 4 to step 5 (the shuffle by ``packet``, an index into the
#: packets sorted by code, ``Plan.packets``)
ASSIGNED_DTYPES: dict[str, str] = {
    "year": "int64", "cost": "float64", "share": "float64", "level": "int64",
    **{f"cls_{c}": "int64" for c in CLASS_CATALOGUES}, "packet": "int64",
}
_SEEDS = (0x243F6A8885A308D3, 0x13198A2E03707344)  # the row hashes' seeds (pi's digits)
_KEY_SEEDS = (0xA4093822299F31D0, 0x082EFA98EC4E6C89)
MASK64 = (1 << 64) - 1


@dataclass
class Plan:
    """What every partition needs, fixed on the driver (small; shipped to workers)."""

    p: dict
    year: int | None
    years: list[int]
    yw: list[float]  # normalised
    scheme: Any
    rules: K.TreatmentRules
    columns: Any
    lv_map: dict[str, str]
    blist: list[str] | None
    code_costs: dict[str, float] | None = None
    year_counts: list[int] = field(default_factory=list)  # usable rows per history year
    levels: list[str] = field(default_factory=list)  # hospital levels, sorted (row ids)
    packets: list[str] = field(default_factory=list)  # packet codes, sorted (row ids)
    years_note: str = ""  # the history lacks some of the catalogue's years (build notes)


# ---------------------------------------------------------------- 1 years

def history_years(h: Any) -> np.ndarray:
    """Distinct valid discharge years of a history part (``History``)."""
    return np.unique(h.year[h.year >= 0]).astype(np.int64)


def read_inputs(policy: Any = None, scheme: Any = "chs_drg_11", hospitals: Any = None,
                columns: Any = None, *, year: int | None = None, base_packets: Any = None,
                treatment_table: Any = None) -> dict[str, Any]:
    """What the build reads before the history: the treatment-type table, the policy, the
    base-packet list (each validated, so a malformed table stops before any work)."""
    import os
    from collections.abc import Mapping

    from drgsim.dip.build import read_base_list, resolve_params

    rules = K.read_treatment_rules(treatment_table)
    if isinstance(policy, (str, os.PathLike)):
        from drgsim.policy import load_policy

        policy = load_policy(policy)
    dated = policy is not None and not isinstance(policy, Mapping)  # a Policy: at the year
    blist = None
    if base_packets is not None or not dated:
        src = base_packets if base_packets is not None else resolve_params(policy)["base_packets"]
        blist = read_base_list(src)
    return {"policy": policy, "scheme": scheme, "hospitals": hospitals, "columns": columns,
            "year": year, "base_packets": base_packets, "rules": rules, "blist": blist}


def plan_of(st: dict[str, Any], years: list[Any]) -> Plan:
    """Step 1 on the driver: the plan from every part's distinct years."""
    seen = np.concatenate([np.asarray(y, np.int64) for y in years]) if years else \
        np.zeros(0, np.int64)
    return make_plan(seen, st["policy"], st["year"], st["base_packets"], st["blist"],
                     st["rules"], st["scheme"], st["hospitals"], st["columns"])


def make_plan(years_seen: np.ndarray, policy: Any, year: int | None, base_packets: Any,
              blist: list[str] | None, rules: K.TreatmentRules, scheme: Any, hospitals: Any,
              columns: Any) -> Plan:
    """The build's parameters at the catalogue year and the history years (DIP.md); a
    history lacking some of the years is noted, one lacking all refused (before any work)."""
    from drgsim.dip.build import _hospital_levels, catalogue_years, read_base_list, resolve_params

    years_all = np.unique(np.asarray(years_seen, np.int64))
    if year is None:
        year = int(years_all.max()) + 1 if len(years_all) else None
    p = resolve_params(policy, year)
    if base_packets is not None:
        p["base_packets"] = base_packets
    yw_all = [float(x) for x in p["year_weights"]]
    before = years_all[years_all < year] if year is not None else years_all
    years = [int(y) for y in before[-len(yw_all):]]
    note = catalogue_years(year, years_all.tolist(), years, len(yw_all)) or ""
    yw = yw_all[-len(years):] if years else []
    tot = sum(yw)
    yw = [w / tot for w in yw] if tot else yw
    if blist is None:
        blist = read_base_list(p["base_packets"])
    lv_map = _hospital_levels(hospitals)
    levels = sorted({str(v) for v in lv_map.values() if v != ""})
    return Plan(p, year, years, yw, scheme, rules, columns, lv_map, blist, levels=levels,
                years_note=note)


# ---------------------------------------------------------------- 2 scan

def _status(h: Any, plan: Plan) -> tuple[np.ndarray, np.ndarray, Any]:
    """(status code per row, record-check reason per row, record fields); once per History
    and history years."""
    from drgsim.dip.build import BUILD_STATUSES
    from drgsim.grouper.kernels import check_reasons
    from drgsim.records import fields_from_table

    key = ("status", tuple(plan.years))
    if key in h.memo:
        return h.memo[key]
    fields = fields_from_table(h.table)
    n_dx = np.asarray(pc.binary_length(fields.diagnoses).fill_null(0), dtype=np.int64)
    ints = fields.ints
    reason = check_reasons(n_dx, ints["sex"], ints["age_years"], ints["age_days"],
                           ints["birth_weight_g"])
    status = np.zeros(h.n, dtype=np.int8)

    def flag(mask: np.ndarray, name: str) -> None:
        status[(status == 0) & mask] = BUILD_STATUSES.index(name)

    flag(h.malformed, "malformed_row")
    flag(reason > 0, "check_failed")
    flag(np.isnan(h.cost_fen), "missing_cost")
    flag(h.cost_fen < 0, "negative_cost")
    flag(h.year < 0, "bad_date")
    flag(~np.isin(h.year, plan.years), "outside_years")
    h.memo[key] = status, reason, fields
    return status, reason, fields


def _pieces(h: Any, fields: Any, plan: Plan) -> dict[str, Any]:
    """The qualifying procedure pieces of a History's rows (once per History and scheme)."""
    key = ("pieces", id(plan.scheme), id(plan.rules))
    if key not in h.memo:
        h.memo[key] = K.qualifying_pieces(fields.procedures, plan.scheme, plan.rules)
    return h.memo[key]


def scan_sums(h: Any, plan: Plan) -> dict[str, Any]:
    """Step 2 on a history part: the 2.0 cost-estimate partial sums and unmatched codes."""
    status, _, fields = _status(h, plan)
    usable = status == 0
    q = _pieces(h, fields, plan)
    sums = None
    if plan.p["version"] == "2.0":
        cost = np.where(usable, h.cost_fen, 0.0)
        sums = K.procedure_cost_sums(q["cl"].n, q["row"], q["code"], q["vocab"], cost, usable)
    return {"sums": sums, "unmatched": set(K.unmatched_codes(q, usable).tolist())}


def reduce_scans(plan: Plan, scans: list[dict[str, Any]]) -> tuple[Plan, int]:
    """The plan with the 2.0 estimates, and the number of unmatched distinct codes."""
    if plan.p["version"] == "2.0":
        parts = [s["sums"] for s in scans if s["sums"] is not None]
        plan.code_costs = K.procedure_estimates(pd.concat(parts, ignore_index=True)) \
            if parts else {}
    unmatched: set[str] = set()
    for s in scans:
        unmatched |= s["unmatched"]
    return plan, len(unmatched)


# ---------------------------------------------------------------- 3 rows

def _combined(cols: list[Any], seeds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Two 64-bit hashes per row of several columns' values (content, in column order)."""
    from drgsim.textkernels import content_hashes

    acc1 = acc2 = None
    for i, col in enumerate(cols):
        v1, v2 = content_hashes(col, *seeds)
        if acc1 is None:
            acc1, acc2 = v1, v2
            continue
        mul = np.uint64(1000003 + 2 * i)  # position-dependent: the pairing of values counts
        acc1 = acc1 * mul ^ v1
        acc2 = acc2 * mul ^ v2
    return acc1, acc2


def row_hashes(h: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two 64-bit hashes per row of what the catalogue is built from (as int64): case_id,
    diagnoses and procedures by content, cost, year and share by value, combined in that
    order (one numba pass per column over the Arrow buffers)."""
    cols: list[Any] = [h.table.column(name) for name in ("case_id", "diagnoses", "procedures")
                       if name in h.table.schema.names]
    cols += [np.asarray(h.cost_fen, np.float64), np.asarray(h.year, np.int64)]
    if h.share_fen is not None:
        cols.append(np.asarray(h.share_fen, np.float64))
    h1, h2 = _combined(cols, _SEEDS)
    return h1.view(np.int64), h2.view(np.int64)


def _set_names(pk: K.ProcKeys, rows: np.ndarray) -> pa.Array:
    """The procedure set of each of ``rows`` as its codes joined by "+" ("" for none)."""
    lo, hi = pk.ptr[rows], pk.ptr[rows + 1]
    ln = hi - lo
    off = np.zeros(len(rows) + 1, np.int32)
    np.cumsum(ln, out=off[1:])
    flat = np.arange(int(off[-1]), dtype=np.int64) - np.repeat(off[:-1] - lo, ln)
    vocab = pa.array(pk.vocab.astype(str).tolist() if len(pk.vocab) else [], pa.string())
    codes = vocab.take(pa.array(pk.codes[flat].astype(np.int64)))
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(off), codes), "+")


def case_rows(h: Any, plan: Plan) -> pd.DataFrame:
    """Step 3: one row per history row (any partition), all row-local."""
    from drgsim.textkernels import content_hashes

    status, reason, fields = _status(h, plan)
    usable = status == 0
    p = plan.p
    n = h.n
    dx_ids, dx_all = K.dx_key_ids(fields.diagnoses, p["dx_level"], principal=True)
    cost_all = np.where(usable, h.cost_fen, 0.0)
    pk = K.proc_keys(fields.procedures, p["version"], plan.scheme, plan.rules, cost=cost_all,
                     usable=usable, related_cost_share=float(p["related_cost_share"]),
                     code_costs=plan.code_costs if p["version"] == "2.0" else None,
                     pieces=_pieces(h, fields, plan))
    tt = pk.treatment.astype(np.int8)
    # the part's distinct keys among usable rows (integers), hashed and named once each
    at = np.flatnonzero(usable)
    sid = pk.set_id[at]
    combo = (dx_ids[at] * (int(sid.max(initial=-1)) + 2) + (sid + 1)) * 8 + tt[at]
    kid, _ = pd.factorize(combo)  # ids in order of first appearance
    seen = np.maximum.accumulate(kid) if len(kid) else kid
    first = at[kid > np.concatenate([[-1], seen[:-1]])] if len(kid) else at
    k_dx = np.asarray(dx_all, object)[dx_ids[first]] if len(first) else np.zeros(0, object)
    procs_text = _set_names(pk, first)
    k_procs = np.asarray(procs_text.to_numpy(zero_copy_only=False), dtype=object)
    k_n = (pk.ptr[first + 1] - pk.ptr[first]).astype(np.int64)
    dx_hash = content_hashes(pa.array(list(dx_all), pa.string()), *_KEY_SEEDS)[0]
    khash = _combined([dx_hash[dx_ids[first]], procs_text, k_n, tt[first]], _KEY_SEEDS)[0] \
        .view(np.int64)
    key = np.zeros(n, np.int64)
    key[at] = khash[kid] if len(kid) else 0
    dx = np.full(n, None, dtype=object)
    procs = np.full(n, None, dtype=object)
    nprocs = np.zeros(n, np.int64)
    dx[first], procs[first], nprocs[first] = k_dx, k_procs, k_n
    level = np.full(n, -1, dtype=np.int64)
    if plan.levels and n and len(h.hosp_names):
        lid = {v: i for i, v in enumerate(plan.levels)}
        per_h = pd.Series(h.hosp_names, dtype=object).map(plan.lv_map).map(lid) \
            .fillna(-1).to_numpy(np.int64)
        level = np.where(h.hosp_id >= 0, per_h[np.maximum(h.hosp_id, 0)], -1)
    cls = {c: np.zeros(n, np.int64) for c in CLASS_CATALOGUES}
    if usable.any():
        from drgsim.dip.aux import case_classes
        from drgsim.records import RecordFields

        # the usable rows' fields, filtered from those already read (not a second reading)
        keep = pa.array(usable)
        sub = RecordFields(n=len(at), ints={k: v[usable] for k, v in fields.ints.items()},
                           diagnoses=fields.diagnoses.filter(keep),
                           procedures=fields.procedures.filter(keep), missing=fields.missing)
        got = case_classes(sub, plan.scheme, policy={"dip": {"aux": p["aux"]}})
        for c, v in got.items():
            cls[c][usable] = v
    h1, h2 = row_hashes(h)
    share = h.share_fen if h.share_fen is not None else np.full(n, np.nan)
    cols = {
        "status": status.astype(np.int8), "reason": np.asarray(reason, np.int8),
        "year": np.asarray(h.year, np.int64), "cost": np.asarray(h.cost_fen, np.float64),
        "share": np.asarray(share, np.float64), "level": level, "key": key, "tt": tt,
        "dx": dx, "procs": procs, "nprocs": nprocs,
        **{f"cls_{c}": v for c, v in cls.items()}, "h1": h1, "h2": h2,
    }
    return _frame(cols, ROW_DTYPES)


def _frame(cols: dict[str, Any], dtypes: dict[str, str]) -> pd.DataFrame:
    """A frame of exactly ``dtypes`` (text stays ``object``, as engines hand it back)."""
    return pd.DataFrame({c: pd.Series(cols[c], dtype=t) if t == "object" else
                         np.asarray(cols[c], dtype=t) for c, t in dtypes.items()}, copy=False)


def conform_rows(df: pd.DataFrame, dtypes: dict[str, str] | None = None) -> pd.DataFrame:
    """Rows in :data:`ROW_DTYPES` (or ``dtypes``), whatever an engine made of them (also the
    zero-row meta); a column ``df`` lacks is zeros (None for text)."""
    dtypes = ROW_DTYPES if dtypes is None else dtypes
    if list(df.columns) == list(dtypes) and all(str(df[c].dtype) == t for c, t in
                                                dtypes.items()):
        return df.reset_index(drop=True)
    cols = {}
    for c, t in dtypes.items():
        if c not in df:
            cols[c] = np.zeros(len(df), t) if t != "object" else np.full(len(df), None, object)
        elif t == "object":  # nulls stay None (an engine may give NaN or pd.NA)
            v = df[c].to_numpy(dtype=object, na_value=None)
            cols[c] = v
        else:
            cols[c] = df[c].to_numpy(dtype=t)
    return _frame(cols, dtypes)


def reduce_rows(rows: pd.DataFrame) -> dict[str, Any]:
    """Step 3's reduction on a rows part: usable rows per key hash and the text of the keys
    named in the part, status and reason counts, usable rows per year, unknown-hospital
    rows, the hash sums (all integers)."""
    from drgsim.dip.build import BUILD_STATUSES
    from drgsim.grouper.kernels import CHECK_FIELDS

    ok = rows["status"].to_numpy() == 0
    vc = pd.Series(rows["key"].to_numpy(np.int64)[ok]).value_counts(sort=False)
    kh, kn = vc.index.to_numpy(np.int64), vc.to_numpy(np.int64)
    named = rows["dx"].notna().to_numpy()
    names = pd.DataFrame({
        "key": rows["key"].to_numpy(np.int64)[named],
        "dx": rows["dx"].to_numpy(object)[named], "procs": rows["procs"].to_numpy(object)[named],
        "nprocs": rows["nprocs"].to_numpy(np.int64)[named],
        "tt": rows["tt"].to_numpy(np.int64)[named],
    })
    h1 = int(rows["h1"].to_numpy().view(np.uint64).sum(dtype=np.uint64))
    h2 = int(rows["h2"].to_numpy().view(np.uint64).sum(dtype=np.uint64))
    yv = pd.Series(rows["year"].to_numpy(np.int64)[ok]).value_counts(sort=False)
    yr, yn = yv.index.to_numpy(np.int64), yv.to_numpy(np.int64)
    return {
        "n": len(rows), "counts": pd.DataFrame({"key": kh, "n": kn.astype(np.int64)}),
        "names": names,
        "status": np.bincount(rows["status"].to_numpy(np.int64), minlength=len(BUILD_STATUSES)),
        "reason": np.bincount(rows["reason"].to_numpy(np.int64), minlength=len(CHECK_FIELDS)),
        "years": dict(zip(yr.tolist(), yn.tolist(), strict=True)),
        "unknown_level": int((rows["level"].to_numpy()[ok] < 0).sum()), "h1": h1, "h2": h2,
    }


def _named_keys(parts: list[dict[str, Any]]) -> pd.DataFrame:
    """Every part's key counts added up, with each key's text (dx, procs, nprocs, tt, key,
    n; by key hash). Refuses two keys with one hash (never silently merged)."""
    counts = pd.concat([p["counts"] for p in parts], ignore_index=True)
    counts = counts.groupby("key", sort=True)["n"].sum().reset_index()
    names = pd.concat([p["names"] for p in parts], ignore_index=True)
    first = names.drop_duplicates("key").reset_index(drop=True)
    at = pd.Index(first["key"].to_numpy(np.int64)).get_indexer(names["key"].to_numpy(np.int64))
    same = np.ones(len(names), bool)
    for c in ("dx", "procs", "nprocs", "tt"):  # every part's text of a key is the first's
        same &= names[c].to_numpy(object) == first[c].to_numpy(object)[at]
    if not same.all():
        i = int(np.flatnonzero(~same)[0])
        two = [names.iloc[i], first.iloc[at[i]]]
        raise CatalogueError([Problem("<history>", None, "packet",
                                      "two packet keys share a 64-bit hash ("
                                      + " and ".join(f"{r['dx']}/{r['procs']}" for r in two)
                                      + "); the build cannot tell them apart")])
    where = pd.Index(first["key"].to_numpy(np.int64)).get_indexer(counts["key"].to_numpy(np.int64))
    if (where < 0).any():
        raise CatalogueError([Problem("<history>", None, "packet",
                                      "a key counted in the rows was named in no part")])
    named = first.iloc[where].reset_index(drop=True)
    return pd.DataFrame({
        "dx": named["dx"].to_numpy(object), "procs": named["procs"].to_numpy(object),
        "nprocs": named["nprocs"].to_numpy(np.int64), "tt": named["tt"].to_numpy(np.int64),
        "key": counts["key"].to_numpy(np.int64), "n": counts["n"].to_numpy(np.int64),
    })


@dataclass
class Reduced:
    n: int
    keys: pd.DataFrame
    status: np.ndarray
    reason: np.ndarray
    years: dict[int, int]
    unknown_level: int
    built_from: str
    unmatched: int = 0


def combine_reductions(parts: list[dict[str, Any]], has_share: bool) -> Reduced:
    """Add up :func:`reduce_rows` of every partition (order-free)."""
    keys = _named_keys(parts)
    years: dict[int, int] = {}
    for p in parts:
        for y, c in p["years"].items():
            years[int(y)] = years.get(int(y), 0) + int(c)
    n = sum(int(p["n"]) for p in parts)
    h1 = sum(p["h1"] for p in parts) & MASK64
    h2 = sum(p["h2"] for p in parts) & MASK64
    digest = hashlib.sha256(f"dip-history-v3;rows={n};share={int(has_share)};"
                            f"h1={h1:016x};h2={h2:016x}".encode()).hexdigest()
    return Reduced(n, keys, np.sum([p["status"] for p in parts], axis=0),
                   np.sum([p["reason"] for p in parts], axis=0), years,
                   sum(p["unknown_level"] for p in parts), digest)


# ---------------------------------------------------------------- 4 assignment

def _first_of(gid: np.ndarray) -> np.ndarray:
    """The first position of each id of ``gid`` (ids numbered in order of first appearance,
    as ``pd.factorize`` gives them)."""
    if not len(gid):
        return np.zeros(0, np.int64)
    seen = np.maximum.accumulate(gid)
    return np.flatnonzero(gid > np.concatenate([[-1], seen[:-1]]))


def assign_keys(keys: pd.DataFrame, p: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Core packets and comprehensive folds from the key counts (DIP.md "Core vs
    comprehensive"): (key map: dx, procs, nprocs, tt, key -> packet and ``pid``, its index in
    the packets; the packets' key columns, sorted by code). A (dx, procs) key with
    ``core_threshold`` cases is a core packet (its treatment type: the highest among its
    cases); the rest fold by category × type, then a coarser prefix × type (each kept at
    ``comprehensive_min_cases``), then chapter × type (all kept). Works on integer ids of
    the keys' text; labels are made per distinct diagnosis key."""
    thr, cmin = int(p["core_threshold"]), int(p["comprehensive_min_cases"])
    k = keys.reset_index(drop=True)
    dx = k["dx"].to_numpy(object)
    procs = k["procs"].to_numpy(object)
    nprocs = k["nprocs"].to_numpy(np.int64)
    tt = k["tt"].to_numpy(np.int64)
    n = k["n"].to_numpy(np.int64)
    dxc, dxu = pd.factorize(dx)
    dxu = np.asarray(dxu, dtype=object).astype(str) if len(dxu) else np.zeros(0, str)
    prc, pru = pd.factorize(procs)
    comp = (dxc.astype(np.int64) * (len(pru) + 1) + prc) * (int(nprocs.max(initial=0)) + 1) \
        + nprocs
    gid, _ = pd.factorize(comp)  # one id per (dx, procs, nprocs)
    ng = int(gid.max(initial=-1)) + 1
    n_g = np.bincount(gid, weights=n, minlength=ng).astype(np.int64)
    tt_g = np.zeros(ng, np.int64)
    np.maximum.at(tt_g, gid, tt)
    first = _first_of(gid)
    core_g = (n_g >= thr) & (dxu[dxc[first]] != "") if ng else np.zeros(0, bool)
    cg = np.flatnonzero(core_g)
    cr = first[cg]  # a row of each core key
    c_dx, c_procs = dx[cr], procs[cr]
    has_p = c_procs != ""
    codes = np.where(has_p, c_dx + "/" + c_procs, c_dx) if len(cr) else np.zeros(0, object)
    packets = [pd.DataFrame({
        "packet": pd.Series(codes, dtype=object), "kind": "core",
        "dx_key": pd.Series(c_dx, dtype=object), "procs": pd.Series(c_procs, dtype=object),
        "n_procs": nprocs[cr], "treatment_type": np.where(has_p, tt_g[cg], 0).astype(np.int64),
        "fold": "",
    })]
    code_of_g = np.full(ng, None, dtype=object)
    code_of_g[cg] = codes
    pk = code_of_g[gid] if len(gid) else np.zeros(0, object)
    rest = ~core_g[gid] if len(gid) else np.zeros(0, bool)
    labels = {  # over the distinct diagnosis keys only
        "category": np.asarray([s[:3] if len(s) >= 3 else "" for s in dxu], dtype=object),
        "prefix": np.asarray([s[:2] if len(s) >= 2 else "" for s in dxu], dtype=object),
        "chapter": K.chapters(dxu),
    }
    for fold in ("category", "prefix", "chapter"):
        if not rest.any():
            break
        lab = labels[fold]
        if fold != "chapter":
            lab = np.where(dxu == "", "", lab).astype(object)
        lid_u, lnames = pd.factorize(lab, sort=True)
        lnames = np.asarray(lnames, dtype=object)
        lid = lid_u[dxc]
        idx = np.flatnonzero(rest & (lab[dxc] != ""))
        if not len(idx):
            continue
        g = lid[idx] * 4 + tt[idx]
        tot = np.bincount(g, weights=n[idx], minlength=len(lnames) * 4).astype(np.int64)
        present = np.bincount(g, minlength=len(lnames) * 4) > 0
        kept = np.flatnonzero(present & ((tot >= cmin) if fold != "chapter" else True))
        fcodes = np.asarray([f"Z/{lnames[u // 4]}/{K.TREATMENT_LETTERS[u % 4]}" for u in
                             kept.tolist()], dtype=object)
        packets.append(pd.DataFrame({
            "packet": pd.Series(fcodes, dtype=object), "kind": "comprehensive",
            "dx_key": pd.Series(lnames[kept // 4], dtype=object), "procs": "",
            "n_procs": np.zeros(len(kept), np.int64),
            "treatment_type": (kept % 4).astype(np.int64), "fold": fold,
        }))
        code_of = np.full(len(lnames) * 4, None, dtype=object)
        code_of[kept] = fcodes
        hit = code_of[g]
        has = pd.notna(hit)
        pk[idx[has]] = hit[has]
        rest[idx[has]] = False
    assert not rest.any()  # the chapter fold keeps every group
    table = pd.concat(packets, ignore_index=True)
    dup = table["packet"].duplicated()
    if dup.any():
        raise CatalogueError([Problem("<history>", None, "packet",
                                      f"two keys make the packet code "
                                      f"{table.loc[dup, 'packet'].iloc[0]!r}")])
    table = table.sort_values("packet", kind="stable").reset_index(drop=True)
    kmap = k[["dx", "procs", "nprocs", "tt", "key"]].copy()
    kmap["packet"] = pd.Series(pk, dtype=object)
    kmap["pid"] = pd.Index(table["packet"].to_numpy(object)).get_indexer(pk).astype(np.int64)
    return kmap, table


def decide_packets(plan: Plan, red: Reduced) -> tuple[Plan, pd.DataFrame, pd.DataFrame]:
    """Step 4 on the driver: the plan with the year counts and packet codes, the key map
    (key hash -> ``pid``, the packet's index in the sorted packets) and the packets."""
    plan = finish_plan(plan, red)
    kmap, table = assign_keys(red.keys, plan.p)
    plan.packets = table["packet"].astype(str).tolist()
    return plan, kmap[["key", "pid"]], table  # what every partition needs (no text)


def assign_rows(rows: pd.DataFrame, kmap: pd.DataFrame) -> pd.DataFrame:
    """Step 4 per row (any partition): the usable rows with their packet (``pid``), in
    :data:`ASSIGNED_DTYPES`."""
    ok = rows["status"].to_numpy() == 0
    at = pd.Index(kmap["key"].to_numpy(np.int64)).get_indexer(rows["key"].to_numpy(np.int64)[ok])
    if (at < 0).any():
        raise CatalogueError([Problem("<history>", None, "packet",
                                      "a key was not in the key counts (the map was made from "
                                      "other rows)")])
    cols = {c: rows[c].to_numpy()[ok] for c in ASSIGNED_DTYPES if c != "packet"}
    cols["packet"] = kmap["pid"].to_numpy(np.int64)[at]
    return _frame(cols, ASSIGNED_DTYPES)


# ---------------------------------------------------------------- 5 per packet

def _case_weights(year: np.ndarray, plan: Plan) -> np.ndarray:
    """Per-case weight ``w_y / n_y`` with the whole history's usable counts per year."""
    out = np.zeros(len(year), dtype=np.float64)
    for y, wy, k in zip(plan.years, plan.yw, plan.year_counts, strict=True):
        if k:
            out[year == y] = float(wy) / k
    return out


def packet_statistics(rows: pd.DataFrame, plan: Plan) -> dict[str, Any]:
    """Step 5 on the rows of whole packets (one, a shuffle partition's, all): per packet
    its counts, trimmed year-weighted mean, CV and the sums the driver adds; per packet ×
    level its level mean; its auxiliary coefficients; per packet × year the case count,
    cost and fund sums. Rows in canonical order first (so any partitioning agrees)."""
    from drgsim.calibrate import trim_mask
    from drgsim.dip.aux import fit_aux
    from drgsim.dip.build import _trim_spec, weighted_stats
    from drgsim.dip.kernels import canonical_order

    p = plan.p
    pid = rows["packet"].to_numpy(np.int64)
    present = np.unique(pid)  # the packets here, in code order (pids are code ranks)
    lut = np.zeros(int(present.max(initial=-1)) + 1, np.int64)
    lut[present] = np.arange(len(present))
    pcode = lut[pid]
    codes = np.asarray(plan.packets, dtype=object)[present]
    yr0 = rows["year"].to_numpy(np.int64)
    c0 = rows["cost"].to_numpy(np.float64)
    s0 = np.nan_to_num(rows["share"].to_numpy(np.float64))
    ny = max(len(plan.years), 1)
    yi0 = np.zeros(len(yr0), np.int64)  # year index into plan.years (usable rows are in it)
    for i, y in enumerate(plan.years[1:], 1):
        yi0[yr0 == y] = i
    o = canonical_order(pcode * ny + yi0, c0, s0)  # by packet, year, cost, share
    packet = pcode[o].astype(np.int64)
    yr, cost, share = yr0[o], c0[o], s0[o]
    ng = len(codes)
    w = _case_weights(yr, plan)
    keep = trim_mask(packet, cost, _trim_spec(p["trim"]))
    emptied = np.bincount(packet[keep], minlength=ng) == 0 if ng else np.zeros(0, bool)
    if emptied.any():  # a trim that removes a whole packet (a narrow rule): keep it whole
        keep |= emptied[packet]
    n_cases = np.bincount(packet, minlength=ng)
    _, mean, cv = weighted_stats(packet[keep], ng, cost[keep], w[keep])
    n_trim = np.bincount(packet[keep], minlength=ng)
    stats = pd.DataFrame({
        "packet": pd.Series(codes, dtype=object), "n_cases": n_cases.astype(np.int64),
        "n_trimmed": n_trim.astype(np.int64), "mean_cost_fen": mean, "cv": cv,
        "sw": np.bincount(packet[keep], weights=w[keep], minlength=ng),
        "swc": np.bincount(packet[keep], weights=w[keep] * cost[keep], minlength=ng),
        "emptied": emptied,
    })
    # per packet × year (every usable case, as the budget point value reads them)
    yi = yi0[o]
    gy = packet * ny + yi
    years = pd.DataFrame({
        "packet": pd.Series(np.repeat(codes, ny), dtype=object),
        "year": np.tile(np.asarray(plan.years if plan.years else [0], np.int64), ng),
        "n": np.bincount(gy, minlength=ng * ny).astype(np.int64),
        "cost": np.bincount(gy, weights=cost, minlength=ng * ny),
        "fund": np.bincount(gy, weights=cost - share, minlength=ng * ny),
    })
    years = years[years["n"] > 0].reset_index(drop=True)
    # level means C per packet × hospital level (base packets dropped by the driver)
    lid = rows["level"].to_numpy(np.int64)[o]
    known = lid >= 0
    levels = None
    if plan.lv_map and known.any():
        lnames = np.asarray(plan.levels, dtype=object)
        nl = len(lnames)
        g = packet * nl + lid
        n_l = np.bincount(g[known], minlength=ng * nl)
        sel = keep & known
        _, m_l, _ = weighted_stats(g[sel], ng * nl, cost[sel], w[sel])
        okl = (n_l >= int(p["level_min_cases"])) & np.isfinite(m_l) & (m_l > 0)
        ids = np.flatnonzero(okl)
        levels = pd.DataFrame({"packet": codes[ids // nl], "level": lnames[ids % nl],
                               "n_cases": n_l[ids].astype(np.int64), "mean_cost_fen": m_l[ids]})
    classes = {c: rows[f"cls_{c}"].to_numpy(np.int64)[o] for c in CLASS_CATALOGUES}
    classes = {c: v for c, v in classes.items() if c in p["aux"]["catalogues"]}
    aux = fit_aux(packet, cost, np.where(keep, w, 0.0), classes, codes, params=p["aux"])
    return {"stats": stats, "years": years, "levels": levels, "aux": aux,
            "known": bool(known.any())}


def check_whole_packets(parts: list[dict[str, Any]]) -> None:
    """Refuse statistics where one packet's rows were in several partitions (its trim and
    means would be a part's): every packet must come from one call."""
    from drgsim.distributed.partition import DistributedError

    allp = pd.concat([s["stats"]["packet"] for s in parts], ignore_index=True)
    dup = allp[allp.duplicated()]
    if len(dup):
        raise DistributedError(
            f"DIP build: the rows of packet {dup.iloc[0]!r} (and {dup.nunique() - 1} more) "
            "were in several partitions; the build needs a shuffle by assigned packet")


# ---------------------------------------------------------------- 6 driver

def assemble(plan: Plan, table: pd.DataFrame, red: Reduced, parts: list[dict[str, Any]],
             has_share: bool, aux_note: str) -> Any:
    """The catalogue from the per-packet statistics (O(packets), never rows)."""
    from drgsim import __version__
    from drgsim.dip.aux import AUX_COLUMNS as FIT_COLUMNS
    from drgsim.dip.build import BUILD_STATUSES, BuildInfo
    from drgsim.dip.tables import AUX_COLUMNS, FORMAT, Catalogue
    from drgsim.grouper.kernels import CHECK_FIELDS

    check_whole_packets(parts)
    p = plan.p
    info = BuildInfo(rows=red.n)
    info.unmatched_proc_codes = red.unmatched
    if plan.years_note:  # said in the report on every path, and for a caller to print
        info.years_note = plan.years_note
        info.notes.append(plan.years_note)
    st = pd.concat([s["stats"] for s in parts], ignore_index=True).sort_values(
        "packet", kind="stable").reset_index(drop=True)
    assert st["packet"].tolist() == table["packet"].tolist()
    n_empty = int(st["emptied"].sum())
    if n_empty:
        info.notes.append(f"{n_empty} packet(s) lost every case to the trim rule "
                          "and are scored on all their cases")
    m_all = float(st["swc"].to_numpy().sum() / st["sw"].to_numpy().sum())
    if not m_all > 0:
        raise CatalogueError([Problem("<history>", None, "total_cost",
                                      "the all-case mean cost is 0: no scores can be made")])
    mean = st["mean_cost_fen"].to_numpy(np.float64)
    rw = mean / m_all
    scale = int(p["score_scale"])
    score = np.round(rw * scale, 4)
    codes = table["packet"].to_numpy(object)
    is_base = np.isin(codes, plan.blist) & (table["kind"].to_numpy() == "core") & \
        (table["procs"].to_numpy() == "")
    info.base_missing = sorted(set(plan.blist) - set(codes[is_base].tolist()))
    packets = table[["packet", "kind", "dx_key", "procs", "n_procs", "treatment_type",
                     "fold"]].copy()
    packets["base"] = is_base.astype(np.int64)
    packets["n_cases"] = st["n_cases"].to_numpy(np.int64)
    packets["n_trimmed"] = st["n_trimmed"].to_numpy(np.int64)
    packets["mean_cost_fen"] = mean
    packets["rw"] = rw
    packets["score"] = score
    packets["cv"] = st["cv"].to_numpy(np.float64)

    levels = pd.DataFrame(columns=["packet", "level", "n_cases", "mean_cost_fen"])
    if plan.lv_map:
        info.cases_unknown_hospital = red.unknown_level
        got = [s["levels"] for s in parts if s["levels"] is not None]
        if got:
            lv = pd.concat(got, ignore_index=True)
            levels = lv[~lv["packet"].isin(set(codes[is_base].tolist()))]
            levels = levels.sort_values(["packet", "level"], kind="stable").reset_index(
                drop=True)
    else:
        info.notes.append("no hospitals table: no level means (every level uses the packet "
                          "mean C)")

    info.aux_note = aux_note
    auxs = [s["aux"] for s in parts]
    nonempty = [a for a in auxs if len(a)]
    aux = pd.concat(nonempty, ignore_index=True)[list(FIT_COLUMNS)] if nonempty else auxs[0]
    if aux is None:
        aux = pd.DataFrame(columns=list(AUX_COLUMNS))
    elif len(aux):
        aux = aux.sort_values(["packet", "catalogue", "class_id"], kind="stable").reset_index(
            drop=True)

    # budget point value and reimbursement ratio, from per packet × year sums in packet order
    yrs = pd.concat([s["years"] for s in parts], ignore_index=True).sort_values(
        ["packet", "year"], kind="stable").reset_index(drop=True)
    years = plan.years
    yw_arr = np.asarray(plan.yw)
    yi = np.searchsorted(np.asarray(years, np.int64), yrs["year"].to_numpy(np.int64))
    pscore = pd.Series(score, index=codes)
    ys = yrs["n"].to_numpy(np.float64) * pscore.reindex(yrs["packet"]).to_numpy(np.float64)
    cost_y = np.bincount(yi, weights=yrs["cost"].to_numpy(), minlength=len(years))
    score_y = np.bincount(yi, weights=ys, minlength=len(years))
    pv_b = float((yw_arr * cost_y).sum() / 100.0 / (yw_arr * score_y).sum())
    ratio = None
    if has_share:
        fund_y = np.bincount(yi, weights=yrs["fund"].to_numpy(), minlength=len(years))
        ratio = float((yw_arr * fund_y).sum() / (yw_arr * cost_y).sum())
    else:
        info.notes.append("no patient-share columns in the history: reimbursement_ratio "
                          "unknown (the policy must give point_value.ratio)")
    meta = {
        "format": FORMAT, "version": p["version"], "dx_level": p["dx_level"],
        "score_scale": scale, "m_all_fen": m_all, "core_threshold": int(p["core_threshold"]),
        "comprehensive_min_cases": int(p["comprehensive_min_cases"]),
        "aux_min_cases": int(p["aux"]["min_cases"]), "level_min_cases": int(p["level_min_cases"]),
        "years": list(years), "year_weights": list(plan.yw), "pv_budget": pv_b,
        "reimbursement_ratio": ratio, "built_from": red.built_from,
        "drgsim_version": __version__,
    }
    cat = Catalogue(meta, _fresh(packets), _fresh(levels), _fresh(aux))
    info.status_counts = {s: int(c) for s, c in zip(BUILD_STATUSES, red.status, strict=True)
                          if c}
    info.reason_counts = {r: int(c) for r, c in zip(CHECK_FIELDS, red.reason, strict=True)
                          if c and r}
    kind = pd.Series(table["kind"].to_numpy(object), index=codes)
    info.cost_fen = float(yrs["cost"].sum())
    info.core_cost_fen = float(yrs.loc[(kind.reindex(yrs["packet"]) == "core").to_numpy(),
                                       "cost"].sum())
    cat.info = info  # type: ignore[attr-defined]
    from drgsim.dip.report import build_report

    cat.report = build_report(cat, info)
    return cat


def _fresh(df: pd.DataFrame) -> pd.DataFrame:
    """A table built anew from its columns' values, so its dtypes are what a frame of
    those values gets (text as pandas infers it), whatever the concatenation went through."""
    out = {}
    for c in df.columns:
        col = df[c]
        text = col.dtype == object or pd.api.types.is_string_dtype(col.dtype)
        out[c] = col.to_numpy(dtype=object) if text else col.to_numpy()
    return pd.DataFrame(out, columns=list(df.columns))


def finish_plan(plan: Plan, red: Reduced) -> Plan:
    """The plan with the whole history's usable counts per year (the case weights);
    refuses a history with no usable case."""
    if not int(red.status[0]) if len(red.status) else True:
        raise CatalogueError([Problem("<history>", None, None,
                                      "no usable case (every row failed a check or has no "
                                      "cost/date)")])
    plan.year_counts = [int(red.years.get(y, 0)) for y in plan.years]
    return plan


AUX_NOTE = "auxiliary coefficients fitted by drgsim.dip.aux on the trimmed, year-weighted cases"
