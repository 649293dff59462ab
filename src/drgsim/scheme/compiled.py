"""Compile validated scheme tables into integer-coded arrays for the grouping kernel.

Codes become integer ids once (id 0 is "in no table"); every rule condition becomes a
small integer or a bound; code lists become a per-code CSR of (rule, list) memberships.
The compiled arrays are cached on disk keyed by the tables' content hash, the drgsim
version and a hash of the compiler's own source: a cache written by other code is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from drgsim import __version__
from drgsim.constants import ABSENT  # noqa: F401  (re-exported for the kernels)
from drgsim.errors import SchemeWarning
from drgsim.scheme.spec import STATUSES
from drgsim.scheme.tables import SchemeTables, load_tables

# Integer fields: an absent value (drgsim.constants.ABSENT), and "no bound".
NO_MIN = np.iinfo(np.int64).min
NO_MAX = np.iinfo(np.int64).max

DX_MATCH = {"": 0, "principal": 1, "any": 2, "secondary": 3}
PROC_MATCH = {"": 0, "main": 1, "any": 2}
OR_PROC = {"": 0, "main": 1, "any": 2, "none": 3}
CC_RULE = {"": 0, "mcc": 1, "mcc_or_cc": 2, "cc": 3}
LIST_KIND = {"dx": 0, "dx2": 1, "proc": 2, "proc2": 3}

CACHE_FORMAT = 4
# The modules whose code decides the compiled arrays: their source is part of the cache key.
COMPILER_MODULES = ("compiled.py", "spec.py", "tables.py", "../constants.py")


class KernelTables(NamedTuple):
    """The arrays the numba kernel reads (a NamedTuple so numba takes it as one argument)."""

    # per code id
    code_mdc_mask: np.ndarray  # uint32: bit m set when the code is in MDC m's list (m = order index)
    code_or: np.ndarray  # bool: in or_procedure.csv
    code_mcc: np.ndarray  # bool
    code_cc: np.ndarray  # bool
    code_cc_table: np.ndarray  # int32: exclusion table of a CC/MCC code (-2: none)
    code_pdx_table: np.ndarray  # int32: exclusion table as principal (-1: none)
    code_dx_target: np.ndarray  # int32: dx_map target id (-1: not a key)
    code_px_target: np.ndarray  # int32: proc_map target id (-1: not a key)
    mem_ptr: np.ndarray  # int64[n_codes+1]: CSR of list memberships
    mem_rule: np.ndarray  # int32: rule index
    mem_kind: np.ndarray  # int8: 0 dx, 1 dx2, 2 proc, 3 proc2
    mem_gbit: np.ndarray  # int8: proc_group bit, -1 none
    region: np.ndarray  # int8[n_trauma_slots, n_codes]: trauma region, -1 none
    # per MDC, in evaluation order
    mdc_dx_match: np.ndarray  # int8: 0 none, 1 principal, 2 any
    mdc_main_or: np.ndarray  # bool
    mdc_sex: np.ndarray  # int64: 0 no condition
    mdc_age_min: np.ndarray
    mdc_age_max: np.ndarray
    mdc_min_regions: np.ndarray  # int64: 0 none
    mdc_region_slot: np.ndarray  # int32: row of `region`, -1 none
    mdc_qy: np.ndarray  # bool: QY rule active
    mdc_rule_start: np.ndarray  # int32: rules of MDC m are start[m]..end[m]
    mdc_rule_end: np.ndarray
    # per rule, sorted by (MDC order, rule order)
    rule_adrg: np.ndarray  # int32: ADRG index
    rule_dx: np.ndarray  # int8: DX_MATCH
    rule_dx2: np.ndarray
    rule_proc: np.ndarray  # int8: PROC_MATCH
    rule_proc2: np.ndarray
    rule_or: np.ndarray  # int8: OR_PROC
    rule_has_proc: np.ndarray  # bool
    rule_age_days_req: np.ndarray  # bool
    rule_weight_req: np.ndarray  # bool
    rule_bounds: np.ndarray  # int64[n_rules, 8]: age_days, weight_g, age_years, los_days (min,max)
    rule_pg_start: np.ndarray  # int32: proc_groups conjunction masks pg_masks[start:end]
    rule_pg_end: np.ndarray
    pg_masks: np.ndarray  # uint64
    # per ADRG
    adrg_drg_start: np.ndarray  # int32: DRGs of ADRG a are start[a]..end[a] (in order)
    adrg_drg_end: np.ndarray
    # per DRG, sorted by (ADRG, order)
    drg_cc_rule: np.ndarray  # int8: CC_RULE
    drg_bounds: np.ndarray  # int64[n_drgs, 6]: min_dx_count (min, NO_MAX), age_years, los_days


@dataclass
class CompiledScheme:
    """A scheme ready for the kernel: code vocabulary, kernel arrays and output labels."""

    name: str
    version: str
    content_hash: str
    path: str
    codes: list[str]  # id -> code; id 0 is the "in no table" id
    kt: KernelTables
    mdc_letters: list[str]  # by evaluation order
    mdc_labels: list[str]
    adrg_codes: list[str]  # ADRG index -> code
    drg_codes: list[str]  # DRG index (sorted by ADRG, order) -> code
    has_translation: bool
    translation_default: bool
    warnings: list[str] = field(default_factory=list)  # SchemeTables.warnings, as text
    _lookup: object = field(default=None, repr=False)

    # Output label tables: the kernel returns indices into these.
    @property
    def out_mdc(self) -> list[str]:
        return ["", *self.mdc_labels]

    @property
    def out_adrg(self) -> list[str]:
        return ["", *self.adrg_codes]

    @property
    def out_drg(self) -> list[str]:
        """0 = ``0000``; then DRGs; then ADRG codes (no DRG matched); then ``<letter>QY``."""
        return ["0000", *self.drg_codes, *self.adrg_codes, *[m + "QY" for m in self.mdc_letters]]

    @property
    def out_status(self) -> list[str]:
        return list(STATUSES)

    @property
    def provenance(self) -> dict[str, str]:
        return {
            "drgsim.version": __version__,
            "drgsim.scheme": self.name,
            "drgsim.scheme_version": self.version,
            "drgsim.scheme_hash": self.content_hash,
        }

    def code_lookup(self):
        """A pyarrow array of the vocabulary (without id 0) for vectorised string -> id lookup."""
        if self._lookup is None:
            import pyarrow as pa

            self._lookup = pa.array(self.codes[1:], type=pa.string())
        return self._lookup


def _ints(values: list[str], empty: int) -> np.ndarray:
    return np.array([int(v) if v != "" else empty for v in values], dtype=np.int64)


def compile_tables(st: SchemeTables) -> CompiledScheme:
    """Turn validated tables into integer arrays (pure; no caching)."""
    t = st.tables
    # --- vocabulary: every code that any table holds ---
    vocab: dict[str, int] = {"": 0}  # the empty piece is in no table: it shares id 0
    codes: list[str] = [""]

    def cid(code: str) -> int:
        i = vocab.get(code)
        if i is None:
            i = vocab[code] = len(codes)
            codes.append(code)
        return i

    for file in ("mdc_principal_dx.csv", "adrg_codes.csv", "cc.csv", "cc_exclusion.csv",
                 "or_procedure.csv", "icd10.csv", "icd9.csv", "dx_map.csv", "proc_map.csv"):
        if file in t:
            for c in t[file].get("code"):
                cid(c)
    for file in ("dx_map.csv", "proc_map.csv"):
        if file in t:
            for c in t[file].get("target"):
                cid(c)
    n = len(codes)

    # --- MDCs in evaluation order ---
    mdc = t["mdc.csv"]
    order = np.argsort(_ints(mdc.get("order"), 0), kind="stable")
    letters = [mdc.get("mdc")[i] for i in order]
    labels = [mdc.get("label")[i] for i in order]
    m_index = {m: k for k, m in enumerate(letters)}
    nm = len(letters)
    if nm > 32:
        raise ValueError("more than 32 MDCs are not supported by the bitmask encoding")

    def col(name: str, mapping=None, empty=0, dtype=np.int64):
        raw = [mdc.get(name)[i] for i in order]
        if mapping is not None:
            return np.array([mapping[v] for v in raw], dtype=dtype)
        return np.array([int(v) if v else empty for v in raw], dtype=dtype)

    mdc_dx_match = col("dx_match", {"": 0, "principal": 1, "any": 2}, dtype=np.int8)
    mdc_main_or = col("main_proc_or", {"": False, "0": False, "1": True}, dtype=np.bool_)
    mdc_sex = col("sex", empty=0)
    mdc_age_min = col("age_years_min", empty=NO_MIN)
    mdc_age_max = col("age_years_max", empty=NO_MAX)
    mdc_min_regions = col("min_trauma_regions", empty=0)
    mdc_qy = col("qy_enabled", {"": False, "0": False, "1": True}, dtype=np.bool_)

    code_mdc_mask = np.zeros(n, dtype=np.uint32)
    pdx = t["mdc_principal_dx.csv"]
    slots = {m: s for s, m in enumerate(letters[k] for k in range(nm) if mdc_min_regions[k] > 0)}
    region = np.full((max(len(slots), 1), n), -1, dtype=np.int8)
    region_ids: dict[tuple[str, str], int] = {}
    for m, c, r in zip(pdx.get("mdc"), pdx.get("code"), pdx.get("trauma_region")):
        i = vocab[c]
        code_mdc_mask[i] |= np.uint32(1 << m_index[m])
        if r and m in slots:
            rid = region_ids.setdefault((m, r), sum(1 for k in region_ids if k[0] == m))
            region[slots[m], i] = rid
    mdc_region_slot = np.array([slots.get(m, -1) for m in letters], dtype=np.int32)

    # --- ADRG rules, sorted by (MDC order, rule order) ---
    adrg = t["adrg.csv"]
    rule_order = _ints(adrg.get("order"), 0)
    keys = sorted(range(len(adrg)), key=lambda i: (m_index[adrg.get("mdc")[i]], rule_order[i]))
    rule_ids = [adrg.get("rule_id")[i] for i in keys]
    r_index = {r: k for k, r in enumerate(rule_ids)}
    nr = len(keys)
    adrg_list: list[str] = []
    a_index: dict[str, int] = {}
    for i in keys:
        a = adrg.get("adrg")[i]
        if a not in a_index:
            a_index[a] = len(adrg_list)
            adrg_list.append(a)

    def rcol(name: str, mapping: dict[str, int], dtype=np.int8) -> np.ndarray:
        raw = adrg.get(name)
        return np.array([mapping[raw[i]] for i in keys], dtype=dtype)

    flag = {"": 0, "0": 0, "1": 1}
    rule_bounds = np.empty((nr, 8), dtype=np.int64)
    for j, f in enumerate(("age_days", "weight_g", "age_years", "los_days")):
        lo, hi = adrg.get(f + "_min"), adrg.get(f + "_max")
        rule_bounds[:, 2 * j] = [int(lo[i]) if lo[i] else NO_MIN for i in keys]
        rule_bounds[:, 2 * j + 1] = [int(hi[i]) if hi[i] else NO_MAX for i in keys]
    mdc_rule_start = np.zeros(nm, dtype=np.int32)
    mdc_rule_end = np.zeros(nm, dtype=np.int32)
    rule_mdc = np.array([m_index[adrg.get("mdc")[i]] for i in keys], dtype=np.int32)
    for m in range(nm):
        idx = np.flatnonzero(rule_mdc == m)
        if idx.size:
            mdc_rule_start[m], mdc_rule_end[m] = idx[0], idx[-1] + 1

    # proc_groups: labels -> bits per rule; expression -> conjunction masks
    codes_t = t["adrg_codes.csv"]
    gbits: dict[str, dict[str, int]] = {}
    for r, g in zip(codes_t.get("rule_id"), codes_t.get("proc_group")):
        if g:
            bits = gbits.setdefault(r, {})
            bits.setdefault(g, len(bits))
    pg_masks: list[int] = []
    rule_pg_start = np.zeros(nr, dtype=np.int32)
    rule_pg_end = np.zeros(nr, dtype=np.int32)
    groups_raw = adrg.get("proc_groups")
    for k, i in enumerate(keys):
        rule_pg_start[k] = len(pg_masks)
        expr = groups_raw[i]
        if expr:
            bits = gbits.get(rule_ids[k], {})
            for conj in expr.split("|"):
                mask = 0
                for lab in conj.split("&"):
                    mask |= 1 << bits[lab]
                pg_masks.append(mask)
        rule_pg_end[k] = len(pg_masks)

    # code-list memberships as CSR by code id
    mem_code = np.array([vocab[c] for c in codes_t.get("code")], dtype=np.int64)
    mem_rule = np.array([r_index[r] for r in codes_t.get("rule_id")], dtype=np.int32)
    mem_kind = np.array([LIST_KIND[x] for x in codes_t.get("list")], dtype=np.int8)
    mem_gbit = np.array(
        [gbits[r][g] if g else -1 for r, g in zip(codes_t.get("rule_id"), codes_t.get("proc_group"))],
        dtype=np.int8,
    )
    srt = np.argsort(mem_code, kind="stable")
    mem_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(mem_code, minlength=n), out=mem_ptr[1:])

    # --- DRGs sorted by (ADRG index, order) ---
    drg = t["drg.csv"]
    d_order = _ints(drg.get("order"), 0)
    dkeys = sorted(range(len(drg)), key=lambda i: (a_index[drg.get("adrg")[i]], d_order[i]))
    drg_list = [drg.get("drg")[i] for i in dkeys]
    drg_adrg = np.array([a_index[drg.get("adrg")[i]] for i in dkeys], dtype=np.int32)
    na = len(adrg_list)
    adrg_drg_start = np.zeros(na, dtype=np.int32)
    adrg_drg_end = np.zeros(na, dtype=np.int32)
    for a in range(na):
        idx = np.flatnonzero(drg_adrg == a)
        if idx.size:
            adrg_drg_start[a], adrg_drg_end[a] = idx[0], idx[-1] + 1
    ccr = drg.get("cc_rule")
    drg_cc_rule = np.array([CC_RULE[ccr[i]] for i in dkeys], dtype=np.int8)
    drg_bounds = np.empty((len(dkeys), 6), dtype=np.int64)
    mdx = drg.get("min_dx_count")
    drg_bounds[:, 0] = [int(mdx[i]) if mdx[i] else NO_MIN for i in dkeys]
    drg_bounds[:, 1] = NO_MAX
    for j, f in enumerate(("age_years", "los_days"), start=1):
        lo, hi = drg.get(f + "_min"), drg.get(f + "_max")
        drg_bounds[:, 2 * j] = [int(lo[i]) if lo[i] else NO_MIN for i in dkeys]
        drg_bounds[:, 2 * j + 1] = [int(hi[i]) if hi[i] else NO_MAX for i in dkeys]

    # --- CC / MCC and exclusions (table ids are opaque strings) ---
    table_ids: dict[str, int] = {}
    code_mcc = np.zeros(n, dtype=np.bool_)
    code_cc = np.zeros(n, dtype=np.bool_)
    code_cc_table = np.full(n, -2, dtype=np.int32)
    cc = t["cc.csv"]
    for c, level, tab in zip(cc.get("code"), cc.get("level"), cc.get("exclusion_table")):
        i = vocab[c]
        (code_mcc if level == "MCC" else code_cc)[i] = True
        if tab:
            code_cc_table[i] = table_ids.setdefault(tab, len(table_ids))
    code_pdx_table = np.full(n, -1, dtype=np.int32)
    ex = t["cc_exclusion.csv"]
    for c, tab in zip(ex.get("code"), ex.get("exclusion_table")):
        code_pdx_table[vocab[c]] = table_ids.setdefault(tab, len(table_ids))

    code_or = np.zeros(n, dtype=np.bool_)
    for c in t["or_procedure.csv"].get("code"):
        code_or[vocab[c]] = True

    def target(file: str) -> np.ndarray:
        out = np.full(n, -1, dtype=np.int32)
        if file in t:
            for c, tg in zip(t[file].get("code"), t[file].get("target")):
                out[vocab[c]] = vocab[tg]
        out[0] = -1  # the empty piece is never a key
        return out

    kt = KernelTables(
        code_mdc_mask=code_mdc_mask,
        code_or=code_or,
        code_mcc=code_mcc,
        code_cc=code_cc,
        code_cc_table=code_cc_table,
        code_pdx_table=code_pdx_table,
        code_dx_target=target("dx_map.csv"),
        code_px_target=target("proc_map.csv"),
        mem_ptr=mem_ptr,
        mem_rule=mem_rule[srt],
        mem_kind=mem_kind[srt],
        mem_gbit=mem_gbit[srt],
        region=region,
        mdc_dx_match=mdc_dx_match,
        mdc_main_or=mdc_main_or,
        mdc_sex=mdc_sex,
        mdc_age_min=mdc_age_min,
        mdc_age_max=mdc_age_max,
        mdc_min_regions=mdc_min_regions,
        mdc_region_slot=mdc_region_slot,
        mdc_qy=mdc_qy,
        mdc_rule_start=mdc_rule_start,
        mdc_rule_end=mdc_rule_end,
        rule_adrg=np.array([a_index[adrg.get("adrg")[i]] for i in keys], dtype=np.int32),
        rule_dx=rcol("dx_match", DX_MATCH),
        rule_dx2=rcol("dx2_match", DX_MATCH),
        rule_proc=rcol("proc_match", PROC_MATCH),
        rule_proc2=rcol("proc2_match", PROC_MATCH),
        rule_or=rcol("or_proc", OR_PROC),
        rule_has_proc=rcol("has_proc", flag, np.bool_),
        rule_age_days_req=rcol("age_days_required", flag, np.bool_),
        rule_weight_req=rcol("weight_required", flag, np.bool_),
        rule_bounds=rule_bounds,
        rule_pg_start=rule_pg_start,
        rule_pg_end=rule_pg_end,
        pg_masks=np.array(pg_masks, dtype=np.uint64),
        adrg_drg_start=adrg_drg_start,
        adrg_drg_end=adrg_drg_end,
        drg_cc_rule=drg_cc_rule,
        drg_bounds=drg_bounds,
    )
    return CompiledScheme(
        name=st.name,
        version=st.version,
        content_hash=st.content_hash,
        path=str(st.path),
        codes=codes,
        kt=kt,
        mdc_letters=letters,
        mdc_labels=labels,
        adrg_codes=adrg_list,
        drg_codes=drg_list,
        has_translation="dx_map.csv" in t and "proc_map.csv" in t,
        translation_default=st.meta.get("code_translation_default", "off") == "on",
        warnings=[str(w) for w in st.warnings],
    )


# ---------------------------------------------------------------- cache

def cache_dir() -> Path:
    """Where compiled schemes are cached (``DRGSIM_CACHE_DIR``, else ~/.cache/drgsim)."""
    env = os.environ.get("DRGSIM_CACHE_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "drgsim"
    return base / "schemes"


def _save(cs: CompiledScheme, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": CACHE_FORMAT,
        "name": cs.name,
        "version": cs.version,
        "content_hash": cs.content_hash,
        "mdc_letters": cs.mdc_letters,
        "mdc_labels": cs.mdc_labels,
        "adrg_codes": cs.adrg_codes,
        "drg_codes": cs.drg_codes,
        "has_translation": cs.has_translation,
        "translation_default": cs.translation_default,
        "warnings": cs.warnings,
        "drgsim_version": __version__,
        "compiler_hash": compiler_hash(),
    }
    arrays = {f"kt_{k}": v for k, v in cs.kt._asdict().items()}
    from drgsim.output import atomic_path

    # renamed onto path when complete; an error or Ctrl-C removes it (no stray cache files)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, meta=np.array(json.dumps(meta)),
                 codes=np.array(cs.codes, dtype=str), **arrays)


def _load(path: Path, folder: Path) -> CompiledScheme | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if (meta.get("format") != CACHE_FORMAT or meta.get("drgsim_version") != __version__
                    or meta.get("compiler_hash") != compiler_hash()):
                return None  # written by other code: rebuild
            kt = KernelTables(**{k: z[f"kt_{k}"] for k in KernelTables._fields})
            codes = [str(c) for c in z["codes"]]
    except Exception:  # a corrupt or stale cache is rebuilt, never trusted
        return None
    return CompiledScheme(
        name=meta["name"], version=meta["version"], content_hash=meta["content_hash"],
        path=str(folder), codes=codes, kt=kt, mdc_letters=meta["mdc_letters"],
        mdc_labels=meta["mdc_labels"], adrg_codes=meta["adrg_codes"],
        drg_codes=meta["drg_codes"], has_translation=meta["has_translation"],
        translation_default=meta["translation_default"], warnings=list(meta["warnings"]),
    )


_COMPILER_HASH: list[str] = []


def compiler_hash() -> str:
    """A hash of the compiler's source (``COMPILER_MODULES``): new code, new cache key."""
    if not _COMPILER_HASH:
        h = hashlib.blake2b(digest_size=8)
        here = Path(__file__).parent
        for name in COMPILER_MODULES:
            h.update(name.encode())
            h.update((here / name).read_bytes())
        _COMPILER_HASH.append(h.hexdigest())
    return _COMPILER_HASH[0]


def cache_key(tables_hash: str) -> str:
    """The compiled-cache key: the tables' content, the drgsim version and the compiler."""
    blob = f"{CACHE_FORMAT}|{tables_hash}|{__version__}|{compiler_hash()}".encode()
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


_MEMO: dict[str, CompiledScheme] = {}


def _say_warnings(cs: CompiledScheme) -> None:
    """Say a scheme's warnings once per process (the scheme is memoised after this)."""
    if not cs.warnings:
        return
    more = (f" (and {len(cs.warnings) - 1} more: 'drgsim scheme validate {cs.path}' lists them)"
            if len(cs.warnings) > 1 else "")
    warnings.warn(SchemeWarning(f"scheme {cs.name} {cs.version}: {cs.warnings[0]}{more}"),
                  stacklevel=3)


def compile_scheme(folder: str | Path, use_cache: bool = True) -> CompiledScheme:
    """Load, validate and compile a scheme folder, reusing the on-disk cache when the
    tables' content, the drgsim version and the compiler's source all match."""
    from drgsim.scheme.tables import content_hash

    folder = Path(folder).resolve()
    h = cache_key(content_hash(folder))
    if h in _MEMO:
        return _MEMO[h]
    path = cache_dir() / f"{h}.npz"
    cs = _load(path, folder) if use_cache and path.is_file() else None
    if cs is None:
        cs = compile_tables(load_tables(folder))
        if use_cache:
            try:
                _save(cs, path)
            except OSError:
                pass  # a read-only home still groups, just without the cache
    _say_warnings(cs)
    _MEMO[h] = cs
    return cs
