"""Case-mix catalogue: what a synthetic case can look like, built from the scheme tables.

The catalogue turns the ADRG rules of a scheme (``adrg.csv``, ``adrg_codes.csv``, ...) into
sampling pools: for every ADRG the principal diagnoses and procedure combinations that
satisfy its rule (and are not captured by an earlier MDC or ADRG), the secondary
diagnoses that make a case CC, MCC or *excluded*, and the group-level cost and LOS
parameters. Everything is numpy arrays so that the block generator can sample millions of
cases without a Python loop over records. The catalogue depends only on the scheme
tables (its own fixed seed), not on the run's seed.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from drgsim.errors import Problem, SchemeError
from drgsim.scheme import resolve_scheme_dir

#: Fixed seed of the catalogue (volumes, base costs): the same scheme gives the same mix.
CATALOGUE_SEED = 20240611

#: ADRGs that carry much more volume than a random draw would give them (common
#: conditions in Chinese inpatient data: pneumonia, stroke, COPD, angina, chemotherapy,
#: cataract, deliveries, ...). Unknown codes are ignored, so a localised scheme still works.
VOLUME_BOOST: dict[str, float] = {
    "ES3": 9, "BR2": 8, "RE1": 7, "OR1": 6, "ET2": 5, "FR3": 5, "CB3": 5, "OB1": 5,
    "IU2": 5, "DT1": 4, "KS1": 4, "FR4": 3, "FV2": 3, "FR2": 3, "FM1": 3, "HC2": 3,
    "GD2": 3, "GW1": 3, "LX1": 3, "GK3": 3, "EX2": 2, "GE1": 2, "IF1": 2, "IF4": 2,
    "BX2": 2, "NE1": 2, "GK2": 2, "XR2": 2, "PU1": 2, "HS2": 1.5, "TR1": 1.5, "JV2": 1.5,
    "GS1": 2, "HU1": 2, "LU1": 2, "FU2": 2, "BV1": 1.5, "IS2": 2, "VR1": 2, "XS1": 1.5,
}

#: Base mean cost (yuan, before calibration) of ADRGs with a well-known price level.
COST_OVERRIDE: dict[str, float] = {
    "AA1": 380000, "AB1": 350000, "AC1": 300000, "AD1": 220000, "AE1": 160000, "AF1": 400000,
    "AG1": 300000, "AG2": 150000, "AH1": 130000, "PB1": 90000, "PC1": 60000, "PJ1": 30000,
    "PK1": 45000, "PR1": 25000, "PS1": 70000, "PS2": 35000, "PS3": 15000, "PS4": 8000,
    "PU1": 3500, "PV1": 5000, "OR1": 4200, "OB1": 7800, "OC1": 5000, "CB3": 6500,
    "CW1": 4500, "GK3": 5500, "GK2": 5000, "FM1": 42000, "IC2": 55000, "IB1": 90000,
    "FB1": 140000, "FB2": 110000, "FC1": 110000, "RE1": 7500, "RC1": 25000,
}

#: Base mean LOS (days, before calibration) where the kind-level default is wrong.
LOS_OVERRIDE: dict[str, float] = {
    "AA1": 40, "AB1": 35, "AC1": 35, "AD1": 30, "AE1": 25, "AF1": 40, "AG1": 35, "AG2": 25,
    "AH1": 28, "PB1": 25, "PC1": 20, "PJ1": 14, "PK1": 18, "PR1": 14, "PS1": 45, "PS2": 28,
    "PS3": 16, "PS4": 9, "PU1": 4, "PV1": 6, "OR1": 3.5, "OB1": 5.5, "OC1": 4, "CB3": 3,
    "CW1": 3, "GK3": 4, "GK2": 4, "RE1": 5, "RC1": 20, "TR1": 28, "TR2": 24, "TS1": 24,
    "XR1": 22, "XR2": 22, "XR3": 20,
}

#: Frequent non-CC comorbidities put at the head of the secondary-diagnosis pool
#: (codes missing from a scheme's dictionary are skipped).
COMMON_COMORBIDITIES = (
    "I10.x00x002", "I10.x00", "E11.900", "E78.500", "I25.103", "K21.000", "K76.000",
    "E03.900", "D64.900", "E79.000", "E66.900", "K29.700", "M47.800", "K80.200", "R73.900",
    "Z86.701", "I67.200", "E14.900", "K21.900",
)

#: ADRGs whose cases may be long-stay per-diem candidates (psychiatry, rehabilitation).
PER_DIEM_PREFIXES = ("TR", "TS", "TT", "TU", "TV", "TW", "XR")

#: A long stay (per-diem candidate) lasts at least this many days.
PER_DIEM_MIN_LOS = 60

SEX_ANY, SEX_MALE, SEX_FEMALE = 0, 1, 2
AGE_ADULT, AGE_OBSTETRIC, AGE_NEONATE, AGE_INFANT, AGE_MALE_OLD, AGE_FEMALE = 0, 1, 2, 3, 4, 5
DOMAIN_GENERAL, DOMAIN_NEONATAL, DOMAIN_OBSTETRIC = 0, 1, 2
KIND_SURGICAL, KIND_NON_OR, KIND_MEDICAL = 0, 1, 2


GUIDE = 256  # guide-table resolution per pool


@dataclass
class Segments:
    """Many weighted pools in flat arrays: pool ``s`` holds ``values[start[s]:start[s+1]]``.

    ``cdf`` is ``s + cumulative share``; a guide table (the first candidate position for
    each of ``GUIDE`` equal slices of [0, 1)) makes exact inverse-CDF sampling a gather
    plus a few vectorized steps instead of a binary search.
    """

    values: np.ndarray
    cdf: np.ndarray
    start: np.ndarray
    guide: np.ndarray
    res: int = GUIDE  # guide-table slices per pool

    @classmethod
    def from_flat(cls, values: np.ndarray, weights: np.ndarray, counts: np.ndarray,
                  res: int = GUIDE) -> Segments:
        """Pools given flat: pool ``s`` is the next ``counts[s]`` values (weights > 0).

        The same pools as :meth:`build`, without a Python loop over them (for many pools)."""
        values = np.asarray(values, dtype=np.int64)
        w = np.asarray(weights, dtype=np.float64)
        counts = np.asarray(counts, dtype=np.int64)
        n_seg = len(counts)
        start = np.zeros(n_seg + 1, np.int64)
        np.cumsum(counts, out=start[1:])
        seg = np.repeat(np.arange(n_seg), counts)
        cs = np.cumsum(w)
        before = np.zeros(n_seg)
        full = counts > 0
        before[full] = cs[start[:-1][full]] - w[start[:-1][full]]
        within = cs - before[seg]
        total = np.zeros(n_seg)
        total[full] = within[start[1:][full] - 1]
        cdf = seg + within / total[seg]
        cdf[start[1:][full] - 1] = np.arange(n_seg)[full] + 1.0
        grid = (np.arange(n_seg)[:, None] + np.arange(res)[None, :] / res).ravel()
        guide = np.searchsorted(cdf, grid, side="right").astype(np.int64)
        return cls(values, cdf, start, guide, res)

    @classmethod
    def build(cls, pools: list[np.ndarray], weights: list[np.ndarray]) -> Segments:
        vals, cdfs, start = [], [], [0]
        for s, (v, w) in enumerate(zip(pools, weights, strict=True)):
            v = np.asarray(v, dtype=np.int64)
            w = np.asarray(w, dtype=np.float64)
            if len(v) and w.sum() > 0:
                c = np.cumsum(w)
                c = c / c[-1]
                c[-1] = 1.0
                cdfs.append(s + c)
                vals.append(v)
                start.append(start[-1] + len(v))
            else:
                start.append(start[-1])
        values = np.concatenate(vals) if vals else np.zeros(0, np.int64)
        cdf = np.concatenate(cdfs) if cdfs else np.zeros(0)
        n_seg = len(pools)
        grid = (np.arange(n_seg)[:, None] + np.arange(GUIDE)[None, :] / GUIDE).ravel()
        guide = np.searchsorted(cdf, grid, side="right").astype(np.int64)
        return cls(values, cdf, np.asarray(start, dtype=np.int64), guide)

    def size(self, s: np.ndarray | int) -> np.ndarray:
        return self.start[np.asarray(s) + 1] - self.start[np.asarray(s)]

    def sample(self, seg: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One value from pool ``seg[i]`` for each ``u[i]`` in [0, 1); -1 for empty pools."""
        from drgsim.synth.kernels import sample

        seg = np.ascontiguousarray(seg, dtype=np.int64)
        out = np.empty(len(seg), np.int64)
        sample(self.values, self.cdf, self.guide, self.start, self.res, seg,
               np.ascontiguousarray(u, dtype=np.float64), out)
        return out


@dataclass
class Catalogue:
    """Everything the block generator samples from, derived from one scheme's tables."""

    scheme_dir: Path
    dx_codes: np.ndarray  # str codes; index = dx id
    proc_codes: np.ndarray
    dx_arrow: pa.Array
    dx_arrow_ext: pa.Array  # dx_arrow plus "" (an empty piece) at index len(dx_codes)
    proc_arrow: pa.Array
    dx_excl: np.ndarray  # exclusion table of the code as a principal (-1 none)
    dx_level: np.ndarray  # 0 none, 1 CC, 2 MCC (as a secondary)
    dx_cc_table: np.ndarray  # its exclusion table as a CC/MCC (-1 none)
    dx_region: np.ndarray  # MDCZ trauma region (-1 none)
    adrg: np.ndarray  # ADRG codes
    adrg_mdc: np.ndarray  # MDC letters
    adrg_kind: np.ndarray  # KIND_*
    adrg_sex: np.ndarray  # SEX_*
    adrg_age: np.ndarray  # AGE_*
    adrg_domain: np.ndarray  # DOMAIN_*
    adrg_volume: np.ndarray  # (3, A) sampling weights by hospital level 三级/二级/一级
    adrg_by_level: Segments  # pool per level of ADRG ids, weighted by adrg_volume
    adrg_cost: np.ndarray  # base mean cost (calibrated)
    adrg_los: np.ndarray  # base mean LOS (calibrated)
    adrg_sigma: np.ndarray  # lognormal sigma of cost
    adrg_per_diem: np.ndarray  # bool: long stays possible
    adrg_weight_band: np.ndarray  # (A, 2) birth weight band for newborn ADRGs (0 = none)
    adrg_days_max: np.ndarray  # age_days upper bound (-1 none)
    drg_codes: np.ndarray  # str
    adrg_drg: np.ndarray  # (A, 3) drg id for severity class none/CC/MCC
    principal: Segments  # pool per ADRG
    combos: Segments  # pool per ADRG of combo ids
    combo_procs: np.ndarray  # (n_combos, 2) proc ids (-1 none)
    second_dx: Segments  # pool per ADRG: a diagnosis the rule needs besides the principal
    zone_second: Segments  # pool per trauma region r: MDCZ codes of other regions
    adrg_needs_second: np.ndarray  # 0 none, 1 from second_dx, 2 trauma second region
    filler_dx: Segments  # pool per domain: secondaries that are neither CC nor MCC
    cc_dx: Segments  # pool per (domain*2 + level-1): CC or MCC secondaries
    safe_cc: Segments  # pool per level-1: CC/MCC codes no principal excludes
    excluded_dx: Segments  # pool per exclusion table: CC/MCC codes that table excludes
    filler_proc: Segments  # pool per principal entry (and a last one with all of them):
    #                        procedures that no rule looks at
    entry_dx: np.ndarray  # dx id of each principal entry (an ADRG's principal pool, flat)
    principal_entry: Segments  # pool per ADRG of principal entry ids (weights of principal)
    entry_combos: Segments  # pool per principal entry: its typical combo ids
    dept_codes: np.ndarray  # (A, 2) dept code for medical / surgical cases
    dept_arrow: pa.Array  # dept_codes.ravel(): index a * 2 + surgical
    drg_arrow: pa.Array
    all_dx: frozenset[str] = field(repr=False, default=frozenset())
    all_proc: frozenset[str] = field(repr=False, default=frozenset())
    cost_scale: float = 1.0
    los_scale: float = 1.0


def _read(folder: Path, name: str) -> pd.DataFrame:
    path = folder / name
    if not path.is_file():
        raise SchemeError([Problem(str(path), None, None, "file missing")])
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _zipf(n: int, s: float) -> np.ndarray:
    return 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s


# MDC letter -> (medical dept, surgical dept) codes in the 6-digit style of 病案首页 exports
_DEPT = {
    "A": ("030100", "040100"), "B": ("030500", "040300"), "C": ("100000", "100000"),
    "D": ("110000", "110000"), "E": ("030200", "040400"), "F": ("030400", "040500"),
    "G": ("030300", "040100"), "H": ("030300", "040100"), "I": ("030600", "040200"),
    "J": ("130000", "040800"), "K": ("030600", "040100"), "L": ("030700", "040600"),
    "M": ("040600", "040600"), "N": ("050100", "050100"), "O": ("050200", "050200"),
    "P": ("070100", "070200"), "Q": ("030800", "040100"), "R": ("190100", "190200"),
    "S": ("060000", "040100"), "T": ("150000", "150000"), "U": ("150000", "150000"),
    "V": ("200000", "040200"), "W": ("040900", "040900"), "X": ("210000", "040100"),
    "Y": ("060000", "040100"), "Z": ("200000", "040200"),
}


#: DIP-like concentration (DIP.md: a city's core packets, diagnosis x procedure set with
#: >= 15 cases, cover most cases): each principal diagnosis of an ADRG is treated with a few
#: typical procedure combinations of that ADRG and gets its extra (filler) procedures from
#: a short list of its own, not from the whole pool.
ENTRY_SEED = CATALOGUE_SEED + 1  # a stream of its own: the older pools stay as they were
#: number of typical combinations of a principal diagnosis (1, 2, ...) and their shares
ENTRY_COMBOS_P = (0.45, 0.30, 0.15, 0.10)
ENTRY_COMBOS_ZIPF = 1.3
#: number of filler procedures a principal diagnosis draws from (1, 2, ...) and their shares
ENTRY_FILLERS_P = (0.35, 0.35, 0.30)
ENTRY_FILLERS_ZIPF = 1.2
ENTRY_RES = 16  # guide-table resolution of the (small) per-entry pools


def _top_k(weights: np.ndarray, k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per row, ``k[r]`` distinct columns drawn without replacement in proportion to
    ``weights[r]`` (Gumbel top-k), in draw order; -1 pads. Zero weights are never drawn."""
    with np.errstate(divide="ignore"):
        keys = np.log(weights) + rng.gumbel(size=weights.shape)
    order = np.argsort(-keys, axis=1, kind="stable")[:, : int(k.max(initial=0))]
    picked = np.take_along_axis(weights, order, axis=1) > 0
    picked &= np.arange(order.shape[1])[None, :] < k[:, None]
    return np.where(picked, order, -1)


def _entry_pools(principal: Segments, combo_pools: list[np.ndarray],
                 fill_ids: np.ndarray) -> tuple[Segments, Segments]:
    """Per principal entry: its typical combos (of its ADRG) and its filler procedures."""
    rng = np.random.default_rng(ENTRY_SEED)
    n_a = len(combo_pools)
    sizes = principal.size(np.arange(n_a))
    entry_adrg = np.repeat(np.arange(n_a), sizes)
    n_e = len(entry_adrg)
    n_c = np.array([len(p) for p in combo_pools], np.int64)
    width = int(n_c.max(initial=1))
    first = np.array([p[0] if len(p) else 0 for p in combo_pools], np.int64)
    # the ADRG's combo popularity (as the ADRG-wide pool), per entry row
    w_adrg = np.where(np.arange(width)[None, :] < n_c[:, None],
                      _zipf(width, 1.1)[None, :], 0.0)
    k = 1 + np.searchsorted(np.cumsum(ENTRY_COMBOS_P), rng.random(n_e) * 0.999999)
    cols = _top_k(w_adrg[entry_adrg], np.minimum(k, n_c[entry_adrg]), rng)
    got = cols >= 0
    combos = (first[entry_adrg][:, None] + cols)[got]
    ranks = np.cumsum(got, axis=1)[got]
    entry_combos = Segments.from_flat(combos, _zipf(cols.shape[1], ENTRY_COMBOS_ZIPF)[ranks - 1],
                                      got.sum(axis=1), ENTRY_RES)
    # filler procedures: a short list per entry, drawn by the pool's overall popularity
    kf = 1 + np.searchsorted(np.cumsum(ENTRY_FILLERS_P), rng.random(n_e) * 0.999999)
    kf = np.minimum(kf, len(fill_ids))
    w_fill = np.broadcast_to(_zipf(len(fill_ids), 1.2), (n_e, len(fill_ids)))
    fcols = _top_k(w_fill, kf, rng)
    fgot = fcols >= 0
    franks = np.cumsum(fgot, axis=1)[fgot]
    # one more pool (index n_e) holds the whole list, for atypical cases
    filler = Segments.from_flat(
        np.concatenate([fill_ids[fcols[fgot]], fill_ids]),
        np.concatenate([_zipf(max(fcols.shape[1], 1), ENTRY_FILLERS_ZIPF)[franks - 1],
                        _zipf(len(fill_ids), 1.2)]),
        np.append(fgot.sum(axis=1), len(fill_ids)), ENTRY_RES)
    return entry_combos, filler


def build_catalogue(scheme: str | os.PathLike[str] = "chs_drg_11") -> Catalogue:
    """Build the (uncalibrated) catalogue of a scheme; see :func:`catalogue` for the cached one."""
    folder = resolve_scheme_dir(scheme)
    rng = np.random.default_rng(CATALOGUE_SEED)
    mdc = _read(folder, "mdc.csv")
    mdx = _read(folder, "mdc_principal_dx.csv")
    adrg = _read(folder, "adrg.csv")
    codes = _read(folder, "adrg_codes.csv")
    drg = _read(folder, "drg.csv")
    cc = _read(folder, "cc.csv")
    excl = _read(folder, "cc_exclusion.csv")
    orp = _read(folder, "or_procedure.csv")
    icd10 = _read(folder, "icd10.csv")
    icd9 = _read(folder, "icd9.csv")
    for col in ("proc2_match", "proc_groups", "or_proc", "dx_match", "proc_match",
                "age_days_max", "weight_g_min", "weight_g_max"):
        if col not in adrg.columns:
            adrg[col] = ""
    if "proc_group" not in codes.columns:
        codes["proc_group"] = ""
    if "trauma_region" not in mdx.columns:
        mdx["trauma_region"] = ""

    # ---- code dictionaries -------------------------------------------------------------
    dx_list = pd.unique(pd.concat([icd10.code, mdx.code, cc.code, excl.code,
                                   codes.loc[codes.list.isin(["dx", "dx2"]), "code"]]))
    dx_list = np.array([c for c in dx_list if c], dtype=object)
    dx_id = {c: i for i, c in enumerate(dx_list)}
    proc_list = pd.unique(pd.concat([icd9.code, orp.code,
                                     codes.loc[codes.list.isin(["proc", "proc2"]), "code"]]))
    proc_list = np.array([c for c in proc_list if c], dtype=object)
    proc_id = {c: i for i, c in enumerate(proc_list)}
    n_dx = len(dx_list)

    tables = {t: i for i, t in enumerate(pd.unique(pd.concat([cc.exclusion_table,
                                                               excl.exclusion_table])))}
    dx_excl = np.full(n_dx, -1, np.int32)
    dx_excl[[dx_id[c] for c in excl.code]] = [tables[t] for t in excl.exclusion_table]
    dx_level = np.zeros(n_dx, np.int8)
    dx_level[[dx_id[c] for c in cc.code]] = np.where(cc.level.to_numpy() == "MCC", 2, 1)
    dx_cc_table = np.full(n_dx, -1, np.int32)
    dx_cc_table[[dx_id[c] for c in cc.code]] = [tables[t] for t in cc.exclusion_table]
    regions = {r: i for i, r in enumerate(sorted(set(mdx.trauma_region) - {""}))}
    dx_region = np.full(n_dx, -1, np.int32)
    zrows = mdx[mdx.trauma_region != ""]
    dx_region[[dx_id[c] for c in zrows.code]] = [regions[r] for r in zrows.trauma_region]
    or_set = set(orp.code)

    mdc_order = list(mdc.sort_values("order", key=lambda s: s.astype(int)).mdc)
    mdc_sets = {m: set(g.code) for m, g in mdx.groupby("mdc")}
    earlier: dict[str, set[str]] = {}
    seen: set[str] = set()
    for m in mdc_order:
        earlier[m] = set(seen)
        if m not in ("A", "Z"):  # A has no diagnosis test; Z needs two trauma regions
            seen |= mdc_sets.get(m, set())
    lists = {k: set(g.code) for k, g in codes.groupby(["rule_id", "list"])}
    proc_listed = set(codes.loc[codes.list.isin(["proc", "proc2"]), "code"])
    mdca_procs = set(codes.loc[codes.rule_id.isin(adrg.loc[adrg.mdc == "A", "rule_id"])
                               & codes.list.isin(["proc", "proc2"]), "code"])

    adrg = adrg.assign(_o=adrg["order"].astype(int),
                       _m=adrg.mdc.map({m: i for i, m in enumerate(mdc_order)}))
    adrg = adrg.sort_values(["_m", "_o"]).reset_index(drop=True)
    drg = drg.assign(_o=drg["order"].astype(int)).sort_values(["adrg", "_o"])

    # sex-specific or newborn codes stay out of the general secondary pools
    special = set().union(*(mdc_sets.get(m, set()) for m in "MNOPZY"))

    # ---- per ADRG pools ----------------------------------------------------------------
    principal_pools, principal_w = [], []
    combo_pools, combo_w = [], []
    combo_procs: list[tuple[int, int]] = []
    second_pools, second_w = [], []
    needs_second, kinds, sexes, ages, domains = [], [], [], [], []
    weight_band, days_max, codes_a, mdcs_a = [], [], [], []
    adrg_drg = []
    seen_dx_in_mdc: dict[str, set[str]] = {}
    seen_proc_in_mdc: dict[str, set[str]] = {}
    general_principals = sorted(
        (mdc_sets.get("E", set()) | mdc_sets.get("F", set()) | mdc_sets.get("B", set()))
        - earlier.get("E", set()) - special)
    for r in adrg.itertuples(index=False):
        rid, a, m = r.rule_id, r.adrg, r.mdc
        kind = (KIND_SURGICAL if a[1] <= "J" else KIND_NON_OR if a[1] <= "Q" else KIND_MEDICAL)
        mset = mdc_sets.get(m, set())
        dx_taken = seen_dx_in_mdc.setdefault(m, set())
        proc_taken = seen_proc_in_mdc.setdefault(m, set())
        dx_rule = lists.get((rid, "dx"), set())
        need2 = 0
        # principal pool
        if m == "A":
            pool = set(general_principals)
        elif r.dx_match == "principal":
            pool = (dx_rule & mset) - earlier[m]
            pool = (pool - dx_taken) or pool
        else:
            pool = (mset - earlier[m]) or mset
            if r.dx_match in ("any", "secondary"):
                need2 = 1
        if m == "Z":
            need2 = 2
        # procedure combos
        combos: list[tuple[int, int]] = []
        proc_rule = lists.get((rid, "proc"), set())
        proc2_rule = lists.get((rid, "proc2"), set())

        def pick(codes_: set[str], k: int, m: str = m, proc_taken: set[str] = proc_taken
                 ) -> list[str]:
            cand = sorted(codes_)
            if m != "A":
                cand = [c for c in cand if c not in mdca_procs] or cand
            fresh = [c for c in cand if c not in proc_taken] or cand
            idx = rng.permutation(len(fresh))[:k]
            return [fresh[i] for i in idx]

        if r.proc_groups:
            # one code per label of a conjunction; conjunctions of more than two labels
            # are skipped (two procedure slots are enough for every other one)
            for conj in r.proc_groups.split("|"):
                labels = conj.split("&")
                if len(labels) > 2:
                    continue
                grp = [set(codes.loc[(codes.rule_id == rid) & (codes.proc_group == lb), "code"])
                       for lb in labels]
                for mc in pick(grp[0], 6):
                    second = proc_id[pick(grp[1], 1)[0]] if len(labels) == 2 else -1
                    combos.append((proc_id[mc], second))
        elif r.proc_match in ("main", "any") and proc_rule:
            mains = pick(proc_rule, 40)
            if r.proc2_match and proc2_rule:
                seconds = pick(proc2_rule, 8)
                for i, mc in enumerate(mains):
                    combos.append((proc_id[mc], proc_id[seconds[i % len(seconds)]]))
            else:
                combos = [(proc_id[mc], -1) for mc in mains]
        elif r.or_proc in ("main", "any"):
            cand = sorted(or_set - mdca_procs - proc_listed) or sorted(or_set)
            idx = rng.permutation(len(cand))[:30]
            combos = [(proc_id[cand[i]], -1) for i in idx]
        else:
            combos = [(-1, -1)]
        pool_l = sorted(pool)
        if pool_l:
            pool_idx = rng.permutation(len(pool_l))[:60]
            principal_pools.append(np.array([dx_id[pool_l[i]] for i in pool_idx]))
            principal_w.append(_zipf(len(pool_idx), 1.45))
        else:
            principal_pools.append(np.zeros(0, np.int64))
            principal_w.append(np.zeros(0))
        base = len(combo_procs)
        combo_procs.extend(combos)
        combo_pools.append(np.arange(base, base + len(combos)))
        combo_w.append(_zipf(len(combos), 1.1))
        if need2 == 1 and dx_rule:
            sec = sorted(dx_rule)
            idx = rng.permutation(len(sec))[:20]
            second_pools.append(np.array([dx_id[sec[i]] for i in idx]))
            second_w.append(_zipf(len(idx), 1.0))
        else:
            second_pools.append(np.zeros(0, np.int64))
            second_w.append(np.zeros(0))
        needs_second.append(need2 if (need2 != 1 or dx_rule) else 0)
        dx_taken |= dx_rule if r.dx_match == "principal" and not r.proc_match and not r.proc_groups else set()
        if r.proc_match == "main":
            proc_taken |= proc_rule
        kinds.append(kind)
        sexes.append(SEX_MALE if m == "M" else SEX_FEMALE if m in "NO" else SEX_ANY)
        ages.append(AGE_NEONATE if m == "P" and a != "PV1" else AGE_INFANT if a == "PV1"
                    else AGE_OBSTETRIC if m == "O" else AGE_MALE_OLD if m == "M"
                    else AGE_FEMALE if m == "N" else AGE_ADULT)
        domains.append(DOMAIN_NEONATAL if m == "P" else DOMAIN_OBSTETRIC if m == "O"
                       else DOMAIN_GENERAL)
        lo = int(r.weight_g_min) if r.weight_g_min else 0
        hi = int(r.weight_g_max) if r.weight_g_max else 0
        weight_band.append((lo, hi))
        days_max.append(int(r.age_days_max) if r.age_days_max else -1)
        codes_a.append(a)
        mdcs_a.append(m)
        ds = drg[drg.adrg == a]
        by_rule = dict(zip(ds.cc_rule, ds.drg, strict=False))
        uncond = ds.drg.iloc[-1] if len(ds) else a
        d_none = uncond
        d_cc = by_rule.get("mcc_or_cc", by_rule.get("cc", uncond))
        d_mcc = by_rule.get("mcc", d_cc)
        adrg_drg.append((d_none, d_cc, d_mcc))

    n_a = len(codes_a)
    codes_a = np.array(codes_a, dtype=object)
    kinds_a = np.array(kinds, np.int8)
    mdcs_arr = np.array(mdcs_a, dtype=object)

    # ---- volumes ---------------------------------------------------------------------
    vol = np.exp(rng.normal(0.0, 1.1, n_a))
    vol *= np.where(kinds_a == KIND_MEDICAL, 1.7, np.where(kinds_a == KIND_NON_OR, 0.8, 0.75))
    factor = {"A": 0.02, "P": 0.35, "Y": 0.03, "Z": 0.15, "W": 0.3, "U": 0.5, "O": 1.2}
    vol *= np.array([factor.get(m, 1.0) for m in mdcs_arr])
    vol *= np.array([VOLUME_BOOST.get(a, 1.0) for a in codes_a])
    vol[[i for i, a in enumerate(codes_a) if a == "AH1"]] *= 4
    empty = np.array([len(p) == 0 for p in principal_pools]) & (mdcs_arr != "A")
    empty |= np.array([len(p) == 0 for p in combo_pools])
    vol[empty] = 0.0

    # ---- base costs and LOS -------------------------------------------------------------
    mu = np.where(kinds_a == KIND_SURGICAL, np.log(19000),
                  np.where(kinds_a == KIND_NON_OR, np.log(11000), np.log(7000)))
    cost = np.exp(mu + rng.normal(0, 0.45, n_a))
    cost *= np.array([{"O": 0.55, "C": 0.6, "Y": 1.5, "Z": 2.5}.get(m, 1.0) for m in mdcs_arr])
    los = np.where(kinds_a == KIND_SURGICAL, 10.5, np.where(kinds_a == KIND_NON_OR, 7.0, 8.5))
    los = los * np.exp(rng.normal(0, 0.25, n_a))
    for i, a in enumerate(codes_a):
        if a in COST_OVERRIDE:
            cost[i] = COST_OVERRIDE[a]
        if a in LOS_OVERRIDE:
            los[i] = LOS_OVERRIDE[a]
    # tertiary hospitals get heavier groups, primary ones lighter (and no transplants)
    rel = cost / np.average(cost, weights=np.maximum(vol, 1e-12))
    volume = np.vstack([vol * rel**0.35, vol, vol * rel**-0.6])
    heavy = (mdcs_arr == "A") | (rel > 6)
    volume[2, heavy] *= 0.02
    volume[2, kinds_a == KIND_SURGICAL] *= 0.5
    sigma = np.where(rel > 3, 0.22, np.where(rel > 1, 0.32, 0.42))
    per_diem = np.array([a.startswith(PER_DIEM_PREFIXES) for a in codes_a]) & (
        kinds_a == KIND_MEDICAL)

    # ---- secondary diagnosis pools ------------------------------------------------------
    def subset(cands: list[str], k: int, s: float) -> tuple[np.ndarray, np.ndarray]:
        idx = rng.permutation(len(cands))[:k]
        return np.array([dx_id[cands[i]] for i in idx], np.int64), _zipf(len(idx), s)

    general_non_cc = sorted(
        c for m in "BEFGKLI" for c in mdc_sets.get(m, set())
        if dx_level[dx_id[c]] == 0 and c not in special)
    neo_non_cc = sorted(c for c in mdc_sets.get("P", set()) if dx_level[dx_id[c]] == 0)
    obs_non_cc = sorted(c for c in mdc_sets.get("O", set()) if dx_level[dx_id[c]] == 0)
    common = [c for c in COMMON_COMORBIDITIES if c in dx_id and dx_level[dx_id[c]] == 0]
    rest_v, rest_w = subset([c for c in general_non_cc if c not in set(common)], 400, 1.0)
    gen_v = np.concatenate([np.array([dx_id[c] for c in common], np.int64), rest_v])
    gen_w = np.concatenate([3.0 * _zipf(len(common), 0.8), rest_w])
    filler = [(gen_v, gen_w), subset(neo_non_cc or general_non_cc, 80, 1.0),
              subset(obs_non_cc or general_non_cc, 80, 1.0)]
    filler_dx = Segments.build([f[0] for f in filler], [f[1] for f in filler])

    cc_codes = list(cc.code)
    cc_pools, cc_w = [], []
    for _dom, allowed in ((DOMAIN_GENERAL, None), (DOMAIN_NEONATAL, mdc_sets.get("P", set())),
                         (DOMAIN_OBSTETRIC, mdc_sets.get("O", set()))):
        for lvl in (1, 2):
            cand = sorted(c for c in cc_codes if dx_level[dx_id[c]] == lvl and c not in special)
            if allowed is not None:
                extra = sorted(c for c in cc_codes if dx_level[dx_id[c]] == lvl and c in allowed)
                cand = extra + cand[:200] if extra else cand
            v, w = subset(cand, 300, 0.9)
            cc_pools.append(v)
            cc_w.append(w)
    cc_dx = Segments.build(cc_pools, cc_w)
    used_tables = set(dx_excl[dx_excl >= 0].tolist())
    safe = []
    for lvl in (1, 2):
        cand = sorted(c for c in cc_codes if dx_level[dx_id[c]] == lvl
                      and dx_cc_table[dx_id[c]] not in used_tables and c not in special)
        if not cand:
            cand = sorted(c for c in cc_codes if dx_level[dx_id[c]] == lvl)
        safe.append(subset(cand, 50, 0.5))
    safe_cc = Segments.build([s[0] for s in safe], [s[1] for s in safe])
    n_tables = len(tables)
    ex_pools: list[list[int]] = [[] for _ in range(n_tables)]
    for c in cc_codes:
        i = dx_id[c]
        if c not in special:
            ex_pools[dx_cc_table[i]].append(i)
    excluded_dx = Segments.build([np.array(p[:50], np.int64) for p in ex_pools],
                                 [np.ones(min(len(p), 50)) for p in ex_pools])
    zone = []
    for reg in range(len(regions)):
        cand = sorted(c for c in mdx.loc[mdx.mdc == "Z", "code"]
                      if dx_region[dx_id[c]] not in (-1, reg))
        zone.append(subset(cand, 60, 1.0) if cand else (np.zeros(0, np.int64), np.zeros(0)))
    zone_second = Segments.build([z[0] for z in zone], [z[1] for z in zone])

    fill_proc = sorted(set(proc_list) - or_set - proc_listed)
    fp_idx = rng.permutation(len(fill_proc))[:40]
    fill_ids = np.array([proc_id[fill_proc[i]] for i in fp_idx], np.int64)
    principal = Segments.build(principal_pools, principal_w)
    entry_combos, filler_proc = _entry_pools(principal, combo_pools, fill_ids)

    drg_codes = np.array(sorted(set(drg.drg) | {x for t in adrg_drg for x in t}), dtype=object)
    drg_id = {d: i for i, d in enumerate(drg_codes)}
    dept = np.array([_DEPT.get(m, ("030100", "040100")) for m in mdcs_arr], dtype=object)
    dept_arrow = pa.array(dept.ravel().tolist(), pa.string())

    return Catalogue(
        scheme_dir=folder,
        dx_codes=dx_list,
        proc_codes=proc_list,
        dx_arrow=pa.array(dx_list.tolist(), pa.string()),
        dx_arrow_ext=pa.array([*dx_list.tolist(), ""], pa.string()),
        proc_arrow=pa.array(proc_list.tolist(), pa.string()),
        dx_excl=dx_excl,
        dx_level=dx_level,
        dx_cc_table=dx_cc_table,
        dx_region=dx_region,
        adrg=codes_a,
        adrg_mdc=mdcs_arr,
        adrg_kind=kinds_a,
        adrg_sex=np.array(sexes, np.int8),
        adrg_age=np.array(ages, np.int8),
        adrg_domain=np.array(domains, np.int8),
        adrg_volume=volume,
        adrg_by_level=Segments.build([np.arange(n_a)] * 3, list(volume)),
        adrg_cost=cost,
        adrg_los=los,
        adrg_sigma=sigma,
        adrg_per_diem=per_diem,
        adrg_weight_band=np.array(weight_band, np.int32),
        adrg_days_max=np.array(days_max, np.int32),
        drg_codes=drg_codes,
        adrg_drg=np.array([[drg_id[x] for x in t] for t in adrg_drg], np.int32),
        principal=principal,
        combos=Segments.build(combo_pools, combo_w),
        combo_procs=np.array(combo_procs, np.int64).reshape(-1, 2),
        second_dx=Segments.build(second_pools, second_w),
        zone_second=zone_second,
        adrg_needs_second=np.array(needs_second, np.int8),
        filler_dx=filler_dx,
        cc_dx=cc_dx,
        safe_cc=safe_cc,
        excluded_dx=excluded_dx,
        filler_proc=filler_proc,
        entry_dx=principal.values,
        principal_entry=Segments(np.arange(len(principal.values), dtype=np.int64),
                                 principal.cdf, principal.start, principal.guide,
                                 principal.res),
        entry_combos=entry_combos,
        dept_codes=dept,
        dept_arrow=dept_arrow,
        drg_arrow=pa.array(drg_codes.tolist(), pa.string()),
        all_dx=frozenset(dx_list.tolist()),
        all_proc=frozenset(proc_list.tolist()),
    )


@functools.lru_cache(maxsize=4)
def catalogue(scheme: str = "chs_drg_11") -> Catalogue:
    """The calibrated catalogue of a scheme (built once per process)."""
    from drgsim.synth.calibrate import calibrate

    cat = build_catalogue(scheme)
    calibrate(cat)
    return cat
