"""Turn a generated block into an Arrow table, mixing in the dirt on the way.

Dirt is drawn from the block's own dirt stream and only overwrites values, so the clean
rows (and the clean twin of each dirty row) are the same at any dirty rate.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drgsim.synth import dirt as D
from drgsim.synth import kernels as K
from drgsim.synth.casemix import SEX_ANY, Catalogue
from drgsim.synth.generate import (
    COLUMNS,
    INT_COLUMNS,
    MONEY_COLUMNS,
    Block,
    _rng,
    money,
)
from drgsim.synth.hospitals import Hospitals
from drgsim.synth.params import FOLLOWUP_KINDS, FUNDS

_FUNDS = pa.array(FUNDS, pa.string())
_FOLLOWUPS = pa.array(FOLLOWUP_KINDS, pa.string())
_DIRT = pa.array(D.DIRT_NAMES, pa.string())
_K = {name: i for i, name in enumerate(D.DIRT_NAMES)}


def _take(values: pa.Array, idx: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    if null is None:
        null = idx < 0
    return values.take(pa.array(np.maximum(idx, 0), pa.int32(), mask=null))


def _mask(m: np.ndarray) -> pa.Array:
    return pa.array(m, pa.bool_())


def _replace(arr: pa.Array, m: np.ndarray, value: pa.Array | pa.Scalar) -> pa.Array:
    if not m.any():
        return arr
    return pc.if_else(_mask(m), value, arr)


def _join(codes: pa.Array, slots: np.ndarray, rows: np.ndarray, target: np.ndarray,
          kind: np.ndarray, lead: np.ndarray) -> pa.Array:
    """``|``-join each row's filled slots; ``rows`` (increasing) get their ``target`` slot
    (among the filled ones) dirtied according to ``kind``."""
    filled = slots >= 0
    counts = filled.sum(axis=1)
    offsets = np.zeros(len(slots) + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    flat = codes.take(pa.array(slots[filled], pa.int32()))
    if len(rows):
        # position of the target slot among the row's filled slots
        pos = offsets[rows] + np.cumsum(filled[rows], axis=1)[np.arange(len(rows)),
                                                              target] - 1
        old = flat.take(pa.array(pos, pa.int64()))
        k = kind
        low = pc.utf8_lower(old)
        ld = _mask(lead)
        pad = pc.if_else(ld, pc.binary_join_element_wise(" ", old, ""),
                         pc.binary_join_element_wise(old, " ", ""))
        unk = pc.binary_join_element_wise(pc.utf8_slice_codeunits(old, 0, -3), "999", "")
        taken = pc.fill_null(pc.is_in(unk, value_set=codes), False)
        unk = pc.if_else(taken, pc.binary_join_element_wise(old, "x999", ""), unk)
        new = pc.if_else(_mask(k == _K["code_lowercase"]), low,
                         pc.if_else(_mask(k == _K["code_padded"]), pad, unk))
        mask = np.zeros(len(flat), bool)
        mask[pos] = True
        flat = pc.replace_with_mask(flat, _mask(mask), new)  # pos is increasing
    lists = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), flat)
    return pc.binary_join(lists, "|")


def _buffers(strings: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and data of a string array (built with offset 0)."""
    _, off, data = strings.buffers()
    return (np.frombuffer(off, np.int32)[: len(strings) + 1],
            np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8))


def _strings(off: np.ndarray, data: np.ndarray) -> pa.Array:
    return pa.StringArray.from_buffers(len(off) - 1, pa.py_buffer(off), pa.py_buffer(data))


def join_fast(codes: pa.Array, slots: np.ndarray, rows: np.ndarray, target: np.ndarray,
              kind: np.ndarray, lead: np.ndarray) -> pa.Array:
    """Like :func:`_join` but for slot-major ``slots`` (S, n); clean rows are joined by a
    numba kernel, the few ``rows`` with code dirt by :func:`_join`."""
    off, data = _buffers(codes)
    out = _strings(*K.join_codes(np.ascontiguousarray(slots), off, data, ord("|")))
    if len(rows):
        dirty = _join(codes, slots[:, rows].T, np.arange(len(rows)), target, kind, lead)
        out = _put(out, rows, dirty)
    return out


def format_ids(values: np.ndarray) -> pa.Array:
    """int64 ids -> their decimal strings."""
    return _strings(*K.format_ints(np.ascontiguousarray(values, dtype=np.int64)))


def _put(arr: pa.Array, rows: np.ndarray, values: pa.Array | str) -> pa.Array:
    """``arr`` with ``rows`` (increasing) replaced by ``values`` (or one string)."""
    if not len(rows):
        return arr
    mask = np.zeros(len(arr), bool)
    mask[rows] = True
    if isinstance(values, str):
        values = pa.array([values] * len(rows), arr.type)
    return pc.replace_with_mask(arr, _mask(mask), values.cast(arr.type))


def block_table(cat: Catalogue, hosp: Hospitals, block: Block, seed: int, dirty_rate: float,
                text: bool) -> pa.Table:
    """The block's rows as a table; ``text=True`` gives CSV-style string record fields."""
    src = block.arrays
    n = block.spec.n
    dx = block.dx_slots
    px = block.proc_slots
    rng = _rng(seed, block.spec, 1)
    eligible = {
        "all": np.ones(n, bool),
        "age0": src["age0"],
        "newborn": src["newborn"],
        "not_age0": ~src["age0"],
        "two_dx": src["n_dx"] >= 2,
        "sex_specific": cat.adrg_sex[src["adrg"]] != SEX_ANY,
    }
    kind = D.choose(rng, n, dirty_rate, eligible, text)
    rows = np.flatnonzero(kind >= 0)
    k = kind[rows]
    u = rng.random((4, len(rows)))

    def sel(name: str) -> np.ndarray:
        return k == _K[name]

    def at(name: str) -> np.ndarray:
        return rows[k == _K[name]]

    # ---- typed dirt: copy a column only when a dirty row changes it ----------------------
    arr = dict(src)
    nulls = {c: block.nulls.get(c, np.zeros(n, bool)) for c in INT_COLUMNS}

    def put(col: str, where: np.ndarray, value: np.ndarray | int) -> None:
        if len(where):
            arr[col] = arr[col].copy()
            arr[col][where] = value
            if col in nulls:
                nulls[col] = nulls[col].copy()
                nulls[col][where] = False

    def null(col: str, where: np.ndarray) -> None:
        if len(where):
            nulls[col] = nulls[col].copy()
            nulls[col][where] = True

    put("sex", at("sex_unknown"), 0)
    put("sex", at("sex_conflict"), 3 - src["sex"][at("sex_conflict")])
    null("sex", at("sex_missing"))
    null("age_years", at("age_missing"))
    null("age_days", at("age0_no_age_days"))
    null("birth_weight_g", at("newborn_no_weight"))
    put("los_days", at("los_negative"), -1 - (u[0][sel("los_negative")] * 5).astype(np.int64))
    null("los_days", at("los_missing"))
    put("los_days", at("los_absurd"), 9999)
    put("discharge_mode", at("discharge_mode_invalid"),
        np.array([0, 7, -1])[(u[0][sel("discharge_mode_invalid")] * 3).astype(np.int64)])
    put("total_cost", at("cost_negative"), -src["total_cost"][at("cost_negative")])
    put("total_cost", at("cost_absurd"),
        np.minimum(src["total_cost"][at("cost_absurd")] * 1000, 99_999_999_999_999))
    put("age_years", at("age_absurd"), np.where(u[0][sel("age_absurd")] < 0.5, -1, 130))
    put("age_days", at("age_days_negative"),
        -1 - (u[0][sel("age_days_negative")] * 30).astype(np.int64))

    # ---- codes: flat lists of code ids, code dirt on the few hit positions, join ------
    n_dx_slots = dx.shape[0]
    code_dirt = sel("code_lowercase") | sel("code_padded") | sel("code_unknown")
    crow = rows[code_dirt]
    ck = k[code_dirt]
    cu = u[:, code_dirt]
    dx_f = dx[:, crow].T >= 0
    px_f = px[:, crow].T >= 0
    n_p = px_f.sum(axis=1)
    use_proc = (ck != _K["code_lowercase"]) & (n_p > 0) & (cu[2] < 0.35)
    r = np.floor(cu[1] * np.where(use_proc, n_p, dx_f.sum(axis=1))).astype(np.int64)
    dx_target = np.argmax(np.cumsum(dx_f, axis=1) > r[:, None], axis=1)
    px_target = np.argmax(np.cumsum(px_f, axis=1) > r[:, None], axis=1)
    lead = cu[3] < 0.5
    empty_id = len(cat.dx_codes)  # index of "" in dx_arrow_ext
    slots = np.full((n_dx_slots + 1, n), -1, np.int64)
    slots[:n_dx_slots] = dx
    slots[0, at("principal_empty")] = empty_id
    dup = at("dx_duplicated")
    if len(dup):
        f = dx[:, dup].T >= 0
        last_sec = n_dx_slots - 1 - np.argmax(f[:, ::-1], axis=1)
        slots[n_dx_slots, dup] = dx[last_sec, dup]
    slots[n_dx_slots, at("dx_trailing_separator")] = empty_id
    d = ~use_proc
    diagnoses = join_fast(cat.dx_arrow_ext, slots, crow[d], dx_target[d], ck[d], lead[d])
    diagnoses = _put(diagnoses, at("dx_empty"), "")
    procedures = join_fast(cat.proc_arrow, px, crow[use_proc], px_target[use_proc],
                       ck[use_proc], lead[use_proc])

    dept = _take(cat.dept_arrow, src["dept"])
    bad = at("dept_invalid")
    if len(bad):
        dept = _put(dept, bad, pa.array(["999999", "内科", "??"]).take(
            pa.array((u[0][sel("dept_invalid")] * 3).astype(np.int32))))

    cols: dict[str, pa.Array] = {}
    cols["case_id"] = format_ids(src["case_id"])
    cols["patient_id"] = format_ids(src["patient_id"])
    cols["hospital_id"] = _take(hosp.arrow_ids, src["hospital"])
    cols["fund"] = _take(_FUNDS, np.where(src["employee"], 0, 1))
    for c, t in INT_COLUMNS.items():
        cols[c] = pa.array(arr[c], t, mask=nulls[c])
    cols["dept"] = dept
    cols["admit_date"] = pa.array(src["admit_date"].astype(np.int32)).view(pa.date32())
    cols["discharge_date"] = pa.array(src["discharge_date"].astype(np.int32)).view(pa.date32())
    cols["diagnoses"] = diagnoses
    cols["procedures"] = procedures
    for c in MONEY_COLUMNS:
        cols[c] = money(arr[c])
    cols["synth_drg"] = _take(cat.drg_arrow, src["drg"])
    fk = src["followup"]
    cols["synth_followup"] = _take(_FOLLOWUPS, fk)
    fu_rows = np.flatnonzero(fk >= 0)
    cols["synth_followup_of"] = _put(pa.nulls(n, pa.string()), fu_rows,
                                     pc.cast(pa.array(src["followup_of"][fu_rows]), pa.string()))
    cols["synth_dirt"] = _take(_DIRT, kind)

    if text:
        for c in list(INT_COLUMNS) + list(MONEY_COLUMNS):
            cols[c] = pc.cast(cols[c], pa.string())
        two = u[0] < 0.5
        for col, name, a_, b_ in (("sex", "sex_text", "M", "男"),
                                  ("age_years", "age_text", "NA", "NA"),
                                  ("birth_weight_g", "weight_text", "3.2kg", "3.2kg"),
                                  ("los_days", "los_text", "4.5", "NA"),
                                  ("discharge_mode", "discharge_mode_text", "死亡", "死亡"),
                                  ("total_cost", "cost_text", "NA", "NA")):
            m = sel(name)
            if m.any():
                vals = pa.array(np.where(two[m], a_, b_).tolist(), pa.string())
                cols[col] = _put(cols[col], rows[m], vals)
    return pa.table([cols[c] for c in COLUMNS], names=list(COLUMNS))
