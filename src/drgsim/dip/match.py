"""Match cases to a DIP catalogue's packets (DIP.md "Matching a new case"), like ``drgsim.group``.

Records are read and checked exactly as the DRG grouper does (same fields, same record
checks and statuses); codes become ids once; a numba kernel (:mod:`drgsim.dip.kernels`)
applies the order: core candidates sharing the diagnosis key whose procedure set is
contained in the case's, most procedures matched, then the smallest |cost − packet mean|,
then the smallest packet code; a conservative core packet only when the case has no
qualifying procedure; else the comprehensive packet of the diagnosis category × the case's
highest treatment type, then the coarser prefix, then the ICD-10 chapter; else
``blank_packet``. :mod:`drgsim.dip.reference` is the same in plain Python.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import pyarrow as pa

from drgsim.dip.keys import chapters, code_types, dx_key, treatment_types
from drgsim.errors import DrgsimError, Problem, ValidationError
from drgsim.grouper.core import default_threads, load_scheme
from drgsim.records import RecordFields, check_columns, dataframe_record_table, fields_from_table
from drgsim.scheme.compiled import CompiledScheme
from drgsim.scheme.paths import DEFAULT_SCHEME
from drgsim.scheme.spec import STATUSES

T = TypeVar("T")

#: DIP's own status list: matched, nothing matched, then the grouper's record checks
DIP_STATUSES = ("ok", "blank_packet", "check_failed", "dx_not_mappable", "proc_not_mappable",
                "malformed_row")
KINDS = ("", "core", "comprehensive", "base")
TT_LETTERS = "CDTS"  # treatment type rank 0..3 in comprehensive codes
DIP_OUTPUT_COLUMNS = ("packet", "packet_kind", "aux_catalogue", "aux_class", "aux_coef",
                      "treatment_type", "dip_status", "dx_key")
COST_COLUMNS = ("total_cost", "cost", "total_cost_yuan")  # as drgsim.pricing.cases reads it

# grouper status index -> DIP status index
_STATUS_MAP = np.array([DIP_STATUSES.index(s) if s in DIP_STATUSES else 2 for s in STATUSES],
                       dtype=np.int32)

def chapter(code: str) -> str:
    """ICD-10 chapter label of a code or key as the catalogue builder labels it
    (``K80.1`` → ``CH11``; ``CH00`` outside every chapter)."""
    return str(chapters(np.array([str(code).split("+", 1)[0][:5]], dtype=object))[0])


def fallback_prefixes(code: str) -> tuple[str, str, str]:
    """The comprehensive fallbacks of a principal diagnosis, as the builder folds its key:
    category (3 characters), coarser prefix (2), chapter; a key too short skips a level."""
    key = str(code).split("+", 1)[0]
    return (key[:3] if len(key) >= 3 else "", key[:2] if len(key) >= 2 else "",
            chapter(key) if key else chapter(""))


def comprehensive_code(prefix: str, tt: int) -> str:
    """``Z/<prefix>/<C|D|T|S>`` (DIP_CONTRACT.md)."""
    return f"Z/{prefix}/{TT_LETTERS[tt]}"


# ---------------------------------------------------------------- the catalogue as arrays

class KernelCatalogue(NamedTuple):
    """Arrays the kernel reads (a NamedTuple so numba takes it as one argument)."""

    rank: np.ndarray  # int8 per procedure id: treatment type 0..3
    pdx_key: np.ndarray  # int32 per principal id: diagnosis-key index, -1 not in the catalogue
    pdx_comp: np.ndarray  # int32[principal id, level, type]: comprehensive packet, -1 none
    dk_ptr: np.ndarray  # int64 CSR over keys: core procedural packets (ascending index)
    dk_packets: np.ndarray  # int32
    cons: np.ndarray  # int32 per key: the conservative core packet, -1 none
    pk_ptr: np.ndarray  # int64 CSR over packets: sorted procedure ids
    pk_ids: np.ndarray  # int32
    mean: np.ndarray  # float64 per packet: mean_cost_fen
    base: np.ndarray  # bool per packet


@dataclass
class Prepared:
    """A catalogue compiled against one scheme: kernel arrays plus the labels they index."""

    codes: list[str]  # packet codes, sorted (index = order of codes)
    kinds: np.ndarray  # int8 per packet (K_CORE / K_COMPREHENSIVE / K_BASE)
    packets: Any  # the catalogue's packet table, rows in ``codes`` order
    dx_level: str
    vocab: list[str]  # procedure vocabulary: the scheme's codes, then catalogue-only codes
    index: tuple[np.ndarray, np.ndarray, np.ndarray]
    n_scheme: int
    rank_of: dict[str, int]
    principal: list[str]  # principal vocabulary (scheme codes, then codes met in records)
    key_of: dict[str, int]  # diagnosis key -> index
    comp_of: dict[str, list[int]]  # comprehensive prefix -> packet index per type (-1 none)
    core_by_key: list[list[int]]
    cons_list: list[int]
    proc_ids: list[list[int]]
    mean: np.ndarray
    base: np.ndarray
    pdx_key: np.ndarray
    pdx_comp: np.ndarray
    principal_keys: list[str]  # diagnosis key text per principal id
    kc: KernelCatalogue | None = None
    aux_table: Any = None
    treatment_given: bool = False
    scheme_path: str = ""
    vocab_pos: dict[str, int] = field(default_factory=dict)
    _offset: int = 0

    # The vocabularies grow while matching (codes met in records): one lock per compiled
    # catalogue serialises the growth, so matching one catalogue object from several
    # threads (a Dask worker's) is safe. Not pickled: the engines ship a compiled
    # catalogue to their workers, each copy gets its own.
    def __post_init__(self) -> None:
        self.lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.RLock()

    @property
    def principal_pos(self) -> dict[str, int]:
        """Principal code -> id (scheme codes first; built on first use)."""
        pos = getattr(self, "_pos", None)
        if pos is None or len(pos) < len(self.principal) - 1:
            pos = {c: i for i, c in enumerate(self.principal) if i}
            self._pos = pos
        return pos

    def principal_rows(self, codes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Key index and comprehensive packets for principal codes (per distinct category)."""
        import pandas as pd

        keys_txt = self.principal_keys[self._offset:self._offset + len(codes)]
        keys = pd.Index(list(self.key_of)).get_indexer(keys_txt).astype(np.int32) \
            if self.key_of else np.full(len(codes), -1, np.int32)
        cats = [c.split("+", 1)[0][:3] for c in codes]
        uniq, inv = np.unique(np.array(cats, dtype=object).astype(str), return_inverse=True) \
            if codes else (np.array([], str), np.zeros(0, np.int64))
        per = np.full((len(uniq), 3, 4), -1, np.int32)
        chs = chapters(uniq.astype(object)) if len(uniq) else []
        for u, cat in enumerate(uniq.tolist()):
            pres = (cat if len(cat) >= 3 else "", cat[:2] if len(cat) >= 2 else "", str(chs[u]))
            for lv, pre in enumerate(pres):
                row = self.comp_of.get(pre) if pre else None
                if row is not None:
                    per[u, lv] = row
        return keys, per[inv.reshape(-1)] if len(codes) else np.zeros((0, 3, 4), np.int32)

    def extend_principal(self, new: list[str]) -> None:
        """Add principal codes unknown to the scheme (matched by their text)."""
        self._offset = len(self.principal)
        self.principal_keys += [dx_key(c, self.dx_level) for c in new]
        k, c = self.principal_rows(new)
        self.principal += new
        self.pdx_key = np.concatenate([self.pdx_key, k])
        self.pdx_comp = np.concatenate([self.pdx_comp, c])
        self.kc = None

    def extend_vocab(self, new: list[str]) -> None:
        """Add procedure codes met in records that neither the scheme nor the catalogue has,
        with their treatment type (so a case's type never depends on the dictionary)."""
        from drgsim.codes import codes_index

        self.rank_of.update(zip(new, self.rank_new(new)))
        self.vocab += new
        self.vocab_pos.update({c: len(self.vocab) - len(new) + i for i, c in enumerate(new)})
        self.index = codes_index(self.vocab)
        self.kc = None

    def rank_new(self, codes: list[str]) -> list[int]:
        """Treatment type of codes outside the treatment table: the builder's rules
        (:func:`drgsim.dip.keys.code_types`), or 0 under a table given by the caller."""
        if self.treatment_given or not codes:
            return [int(self.rank_of.get(c, 0)) for c in codes]
        return [int(t) for t in code_types(np.array(codes, dtype=object), self.scheme_path)[0]]

    def kernel(self) -> KernelCatalogue:
        if self.kc is None:
            rank = np.zeros(len(self.vocab), np.int8)
            for i, c in enumerate(self.vocab):
                rank[i] = self.rank_of.get(c, 0)
            dk_ptr = np.zeros(len(self.core_by_key) + 1, np.int64)
            np.cumsum([len(x) for x in self.core_by_key], out=dk_ptr[1:])
            dk_packets = np.array([p for x in self.core_by_key for p in x], np.int32)
            pk_ptr = np.zeros(len(self.proc_ids) + 1, np.int64)
            np.cumsum([len(x) for x in self.proc_ids], out=pk_ptr[1:])
            pk_ids = np.array([p for x in self.proc_ids for p in x], np.int32)
            self.kc = KernelCatalogue(rank, self.pdx_key, self.pdx_comp, dk_ptr, dk_packets,
                                      np.array(self.cons_list, np.int32), pk_ptr, pk_ids,
                                      self.mean, self.base)
        return self.kc


def read_catalogue(folder: str | os.PathLike[str]) -> Any:
    """The catalogue folder, validated (:func:`drgsim.dip.tables.read_catalogue`)."""
    from drgsim.dip.tables import read_catalogue as read

    return read(folder)


def _catalogue(catalogue: Any) -> Any:
    if isinstance(catalogue, (str, os.PathLike)):
        return read_catalogue(catalogue)
    if not hasattr(catalogue, "packets"):
        raise DrgsimError("catalogue: give a catalogue folder or a Catalogue (dip.read_catalogue)")
    return catalogue


def pd_numeric(col: Any) -> np.ndarray:
    """A column as float64, NaN where it is not a number."""
    import pandas as pd

    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _split_procs(text: Any) -> list[str]:
    s = "" if text is None else str(text)
    return sorted({p for p in s.split("+") if p}) if s else []


def prepare(catalogue: Any, scheme: CompiledScheme,
            treatment: dict[str, int] | None = None) -> Prepared:
    """Compile a catalogue against a scheme once (cached on the catalogue object).

    ``treatment`` overrides the procedure treatment types (code → 0..3); default the
    scheme's (:func:`drgsim.dip.keys.treatment_types`)."""
    cat = _catalogue(catalogue)
    key = (scheme.content_hash, id(cat.packets), len(cat.packets),
           None if treatment is None else hash(frozenset(treatment.items())))
    with _PREPARE_LOCK:  # threads matching one catalogue share one compiled copy
        cache = getattr(cat, "_dip_prepared", None)
        if cache is not None and cache[0] == key:
            return cache[1]
        p = _prepare(cat, scheme, treatment)
        try:
            cat._dip_prepared = (key, p)
        except AttributeError:  # pragma: no cover - a frozen object: no cache
            pass
    return p


_PREPARE_LOCK = threading.Lock()


def _bad(cat: Any, row: int | None, column: str | None, message: str) -> ValidationError:
    """One catalogue problem as ``file:line: column: message`` (line of packets.csv)."""
    path = getattr(cat, "path", None)
    where = str(Path(path) / "packets.csv") if path is not None else "catalogue packets"
    return ValidationError([Problem(where, None if row is None else row + 2, column, message)])


def _prepare(cat: Any, scheme: CompiledScheme, treatment: dict[str, int] | None) -> Prepared:
    from drgsim.codes import codes_index

    meta = dict(getattr(cat, "meta", {}) or {})
    dx_level = str(meta.get("dx_level") or "subcategory")
    df = cat.packets
    need = ("packet", "kind", "dx_key", "procs", "base", "mean_cost_fen")
    miss = [c for c in need if c not in df.columns]
    if miss:
        raise _bad(cat, None, miss[0], "column missing")
    codes_col = [str(c) for c in df["packet"].tolist()]
    order = sorted(range(len(codes_col)), key=lambda i: codes_col[i])
    df = df.iloc[order].reset_index(drop=True)
    codes = [codes_col[i] for i in order]
    for i in range(1, len(codes)):
        if codes[i] == codes[i - 1]:
            raise _bad(cat, max(order[i], order[i - 1]), "packet",
                       f"packet {codes[i]!r} appears twice (also line {min(order[i], order[i - 1]) + 2})")
    kinds_txt = [str(k) for k in df["kind"].tolist()]
    for i, k in enumerate(kinds_txt):
        if k not in ("core", "comprehensive"):
            raise _bad(cat, order[i], "kind", f"{k!r}: expected core or comprehensive")
    base = np.array([str(b) in ("1", "1.0", "True", "true") for b in df["base"].tolist()], bool)
    mean = pd_numeric(df["mean_cost_fen"])
    bad = np.flatnonzero(~np.isfinite(mean) | (mean < 0))
    if len(bad):
        raise _bad(cat, order[bad[0]], "mean_cost_fen", "not a non-negative number")
    kinds = np.array([1 if k == "core" else 2 for k in kinds_txt], np.int8)
    kinds[(kinds == 1) & base] = 3

    rank_of = dict(treatment if treatment is not None else treatment_types(str(scheme.path)))
    vocab = list(scheme.codes)
    seen = set(vocab)
    procs = [_split_procs(x) for x in df["procs"].tolist()]
    for ps in procs:
        for c in ps:
            if c not in seen:
                seen.add(c)
                vocab.append(c)
    vid = {c: i for i, c in enumerate(vocab)}
    vid.pop("", None)

    key_of: dict[str, int] = {}
    core_by_key: list[list[int]] = []
    cons_list: list[int] = []
    comp_of: dict[str, list[int]] = {}
    proc_ids: list[list[int]] = []
    for i, (code, kind, k, ps) in enumerate(zip(codes, kinds_txt, df["dx_key"].tolist(), procs)):
        if kind == "comprehensive":
            parts = code.split("/")
            if len(parts) != 3 or parts[0] != "Z" or parts[2] not in TT_LETTERS or not parts[2]:
                raise _bad(cat, order[i], "packet", f"comprehensive packet {code!r} is not "
                           "Z/<prefix>/<C|D|T|S>")
            comp_of.setdefault(parts[1], [-1] * 4)[TT_LETTERS.index(parts[2])] = i
            proc_ids.append([])
            continue
        k = str(k)
        if k not in key_of:
            key_of[k] = len(core_by_key)
            core_by_key.append([])
            cons_list.append(-1)
        j = key_of[k]
        proc_ids.append(sorted(vid[c] for c in ps))
        if ps:
            core_by_key[j].append(i)
        elif cons_list[j] < 0:
            cons_list[j] = i
        else:
            raise _bad(cat, order[i], "procs", f"a second conservative packet for {k!r} "
                       f"(also {codes[cons_list[j]]!r})")
    p = Prepared(codes, kinds, df, dx_level, vocab, codes_index(vocab), len(scheme.codes),
                 rank_of, [], key_of, comp_of, core_by_key, cons_list, proc_ids, mean, base,
                 np.zeros(0, np.int32), np.zeros((0, 3, 4), np.int32), [])
    p.treatment_given = treatment is not None
    p.scheme_path = str(scheme.path)
    p.vocab_pos = {c: i for i, c in enumerate(vocab) if i}
    extra = [c for c in vocab[len(scheme.codes):] if c not in rank_of]
    rank_of.update(zip(extra, p.rank_new(extra)))
    p.extend_principal(list(scheme.codes))
    p.pdx_key[0] = -1  # id 0: "in no table" (the text path decides those rows)
    p.pdx_comp[0] = -1
    return p


# ---------------------------------------------------------------- matching

@dataclass
class MatchResult:
    """Kernel output: packet index (-1 none), kind, treatment type, DIP status, principal id."""

    packet: np.ndarray
    kind: np.ndarray
    treatment_type: np.ndarray
    status: np.ndarray
    principal: np.ndarray
    aux_coef: np.ndarray
    aux_row: np.ndarray  # row of the catalogue's aux table that gave aux_coef, -1 none


def case_costs(table: pa.Table) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Case cost in fen and its validity, from the first cost column present (else none)."""
    name = next((c for c in COST_COLUMNS if c in table.schema.names), None)
    n = table.num_rows
    if name is None:
        return np.zeros(n, np.int64), np.zeros(n, bool), None
    from drgsim.pricing.money import yuan_to_fen

    fen, ok = yuan_to_fen(table.column(name))
    return np.asarray(fen, np.int64), np.asarray(ok, bool) & (np.asarray(fen) >= 0), name


def _principal_ids(fields: RecordFields, dx_ptr: np.ndarray, dx_ids: np.ndarray,
                   prep: Prepared) -> np.ndarray:
    """Each row's principal in the principal vocabulary; codes the scheme lacks go by text."""
    n = fields.n
    has = dx_ptr[1:] > dx_ptr[:-1]
    pdx = np.zeros(n, np.int32)
    pdx[has] = dx_ids[dx_ptr[:-1][has]]
    unknown = np.flatnonzero(has & (pdx == 0))
    if len(unknown):
        import pyarrow.compute as pc

        sub = fields.diagnoses.take(pa.array(unknown))
        first = pc.list_element(pc.split_pattern_regex(sub, "[|,]", max_splits=1), 0)
        texts = first.to_pylist()
        pos = prep.principal_pos
        new = sorted({t for t in texts if t not in pos})
        if new:
            start = len(prep.principal)
            prep.extend_principal(new)
            pos.update({c: start + i for i, c in enumerate(new)})
        pdx[unknown] = [pos[t] for t in texts]
    return pdx


def _learn_procedures(fields: RecordFields, px_ptr: np.ndarray, px_ids: np.ndarray,
                      prep: Prepared) -> bool:
    """Procedure codes in no vocabulary yet (id 0, not empty): add them with their type.
    True when the vocabulary grew (the field is then encoded again, once)."""
    zero = np.flatnonzero(px_ids == 0)
    if not len(zero):
        return False
    rows = np.unique(np.searchsorted(px_ptr, zero, side="right") - 1)
    texts = fields.procedures.take(pa.array(rows)).to_pylist()
    new = sorted({p for t in texts for p in (t or "").replace(",", "|").split("|")
                  if p and p not in prep.vocab_pos})
    if new:
        prep.extend_vocab(new)
    return bool(new)


def match_fields(fields: RecordFields, costs: tuple[np.ndarray, np.ndarray], prep: Prepared,
                 scheme: CompiledScheme, translate: bool = False,
                 threads: int | None = None) -> MatchResult:
    """Match already-read record fields (the kernel entry point for every input type)."""
    from drgsim.codes import encode_field
    from drgsim.dip.kernels import match_kernel
    from drgsim.parallel import parallel_section

    if translate and not scheme.has_translation:
        raise DrgsimError(f"scheme {scheme.name} has no dx_map.csv/proc_map.csv: cannot translate")
    threads = threads or default_threads()
    n = fields.n
    dx_ptr, dx_ids = encode_field(fields.diagnoses, scheme, keep_empty_field=translate,
                                  threads=threads)
    # translation maps scheme ids: catalogue-only codes are then simply not in the map
    index = None if translate else prep.index  # codes keep their ids as the vocabulary grows
    px_ptr, px_ids = encode_field(fields.procedures, scheme, keep_empty_field=False,
                                  threads=threads, index=index)
    with prep.lock:  # the vocabularies grow here; the kernel's arrays are a snapshot
        if not translate:
            _learn_procedures(fields, px_ptr, px_ids, prep)
            if prep.index is not index and (px_ids == 0).any():  # grown, here or by a thread
                px_ptr, px_ids = encode_field(fields.procedures, scheme, keep_empty_field=False,
                                              threads=threads, index=prep.index)
        pdx = _principal_ids(fields, dx_ptr, dx_ids, prep)
        ck = prep.kernel()
    out = MatchResult(np.empty(n, np.int32), np.empty(n, np.int8), np.empty(n, np.int8),
                      np.empty(n, np.int32), np.empty(n, np.int32), np.ones(n, np.float64),
                      np.full(n, -1, np.int64))
    cost, cost_ok = costs
    ints = fields.ints
    with parallel_section(threads) as used:
        n_chunks = max(1, min(n, used * 16))
        match_kernel(scheme.kt, ck, dx_ptr, dx_ids, px_ptr, px_ids, pdx, ints["sex"],
                     ints["age_years"], ints["age_days"], ints["birth_weight_g"], cost, cost_ok,
                     bool(translate), _STATUS_MAP, n_chunks, out.packet, out.kind,
                     out.treatment_type, out.status, out.principal)
    _aux(fields, scheme, prep, out, None if translate else (dx_ptr, dx_ids), threads)
    return out


def aux_available() -> bool:
    """Whether dip-aux's ``case_classes``/``case_coefficients`` are importable."""
    try:
        from drgsim.dip.aux import case_classes, case_coefficients  # noqa: F401
    except ImportError:
        return False
    return True


def _aux(fields: RecordFields, scheme: CompiledScheme, prep: Prepared, out: MatchResult,
         dx_encoded: tuple[np.ndarray, np.ndarray] | None, threads: int) -> None:
    """Auxiliary coefficient per case (DIP.md: the highest kept coefficient that applies,
    :mod:`drgsim.dip.aux`); 1.0 where the catalogue keeps none (its aux.csv reflects the
    policy's auxiliary catalogues at build time)."""
    aux = getattr(prep, "aux_table", None)
    if aux is None or len(aux) == 0 or not aux_available():
        return
    if "kept" in aux.columns and not (pd_numeric(aux["kept"]) == 1).any():
        return
    from drgsim.dip.aux import case_classes, case_coefficients

    classes = case_classes(fields, scheme, threads=threads, dx_encoded=dx_encoded)
    coef, which = case_coefficients(out.packet, classes, aux, packet_names=prep.codes)
    out.aux_coef[:] = np.where(out.packet >= 0, np.asarray(coef, np.float64), 1.0)
    out.aux_row[:] = np.where(out.packet >= 0, np.asarray(which, np.int64), -1)


def _labels(idx: np.ndarray, labels: list[str]) -> pa.Array:
    """Strings from indices (-1 → ""), through a dictionary (cheap for millions of rows)."""
    ids = np.where(idx < 0, len(labels), idx).astype(np.int32)
    ind = pa.Array.from_buffers(pa.int32(), len(ids), [None, pa.py_buffer(np.ascontiguousarray(ids))])
    return pa.DictionaryArray.from_arrays(ind, pa.array([*labels, ""], pa.string())).cast(pa.string())


def result_columns(res: MatchResult, prep: Prepared, cat: Any = None) -> dict[str, pa.Array]:
    """The contract's output columns, in their order."""
    aux = getattr(cat, "aux", None)
    if aux is not None and len(aux) and (res.aux_row >= 0).any():
        aux_cat = _labels(res.aux_row, [str(x) for x in aux["catalogue"].tolist()])
        aux_cls = _labels(res.aux_row, [str(x) for x in aux["class"].tolist()])
    else:
        aux_cat = aux_cls = pa.array(np.full(len(res.packet), ""), pa.string())
    with prep.lock:  # a snapshot: another thread may be growing the list
        keys = list(prep.principal_keys)
    tt = res.treatment_type
    return {
        "packet": _labels(res.packet, prep.codes),
        "packet_kind": _labels(res.kind.astype(np.int32) - 1, list(KINDS[1:])),
        "aux_catalogue": aux_cat,
        "aux_class": aux_cls,
        "aux_coef": pa.array(res.aux_coef, pa.float64()),
        "treatment_type": pa.array(tt, pa.int8(), mask=tt < 0),
        "dip_status": _labels(res.status, list(DIP_STATUSES)),
        "dx_key": _labels(res.principal, keys),
    }


def _kept_malformed(table: pa.Table, res: MatchResult) -> pa.Table:
    """Rows kept by ``--bad-lines keep`` get status ``malformed_row``; drop the private mask."""
    from drgsim.inputs.sources import MALFORMED_COLUMN

    if MALFORMED_COLUMN not in table.schema.names:
        return table
    i = table.schema.get_field_index(MALFORMED_COLUMN)
    bad = np.asarray(table.column(i).to_numpy(zero_copy_only=False), bool)
    res.packet[bad] = -1
    res.kind[bad] = 0
    res.treatment_type[bad] = -1
    res.principal[bad] = -1
    res.aux_coef[bad] = 1.0
    res.aux_row[bad] = -1
    res.status[bad] = DIP_STATUSES.index("malformed_row")
    return table.remove_column(i)


def provenance(cat: Any, scheme: CompiledScheme, translate: bool) -> dict[str, str]:
    meta = dict(getattr(cat, "meta", {}) or {})
    path = getattr(cat, "path", None)
    return {**scheme.provenance, "drgsim.translate": "on" if translate else "off",
            "drgsim.method": "dip",
            "drgsim.dip_catalogue": str(path) if path is not None else "(in memory)",
            "drgsim.dip_built_from": str(meta.get("built_from", "")),
            "drgsim.dip_aux": "on" if aux_available() else "off (drgsim.dip.aux absent: 1.0)"}


def match_arrow_result(table: pa.Table | pa.RecordBatch, cat: Any, scheme: CompiledScheme,
                       translate: bool = False, threads: int | None = None,
                       treatment: dict[str, int] | None = None) -> tuple[pa.Table, MatchResult]:
    """Match an Arrow table: input columns pass through (colliding names become
    ``input_<name>``), the contract's columns are appended; also the raw result."""
    from drgsim.output.names import input_renames

    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    cat = _catalogue(cat)
    prep = prepare(cat, scheme, treatment)
    prep.aux_table = getattr(cat, "aux", None)
    fields = fields_from_table(table)
    cost, ok, cost_col = case_costs(table)
    res = match_fields(fields, (cost, ok), prep, scheme, translate, threads)
    table = _kept_malformed(table, res)
    renames = input_renames(table.schema.names, DIP_OUTPUT_COLUMNS)
    if renames:
        table = table.rename_columns([renames.get(c, c) for c in table.schema.names])
    for name, arr in result_columns(res, prep, cat).items():
        table = table.append_column(name, arr)
    meta = dict(table.schema.metadata or {})
    meta.update({k.encode(): v.encode() for k, v in provenance(cat, scheme, translate).items()})
    absent = list(fields.missing) + ([] if cost_col else ["total_cost"])
    meta[b"drgsim.absent_columns"] = ",".join(absent).encode()
    return table.replace_schema_metadata(meta), res


def match_dataframe(df: Any, cat: Any, scheme: CompiledScheme, translate: bool = False,
                    threads: int | None = None,
                    treatment: dict[str, int] | None = None) -> Any:
    """Match a DataFrame; pass-through columns are the caller's own objects, untouched."""
    import pandas as pd

    from drgsim.output.names import input_renames

    check_columns([str(c) for c in df.columns])
    cat = _catalogue(cat)
    prep = prepare(cat, scheme, treatment)
    prep.aux_table = getattr(cat, "aux", None)
    rt = dataframe_record_table(df)
    fields = fields_from_table(rt)
    cost_col = next((c for c in COST_COLUMNS if c in df.columns), None)
    if cost_col is not None:
        from drgsim.pricing.money import yuan_to_fen

        cost, ok = yuan_to_fen(df[cost_col])
        costs = (np.asarray(cost, np.int64), np.asarray(ok, bool) & (np.asarray(cost) >= 0))
    else:
        costs = (np.zeros(len(df), np.int64), np.zeros(len(df), bool))
    res = match_fields(fields, costs, prep, scheme, translate, threads)
    cols = result_columns(res, prep, cat)
    out = df.rename(columns=input_renames(list(df.columns), list(cols)))
    new = pd.DataFrame({k: v.to_pandas() for k, v in cols.items()})
    new["treatment_type"] = new["treatment_type"].astype("Int8")
    new.index = df.index
    out = pd.concat([out, new], axis=1)
    absent = list(fields.missing) + ([] if cost_col else ["total_cost"])
    out.attrs = {**df.attrs, **provenance(cat, scheme, translate),
                 "drgsim.absent_columns": ",".join(absent)}
    return out


def match(records: T, catalogue: Any, scheme: str | os.PathLike[str] | CompiledScheme = DEFAULT_SCHEME,
          translate: bool = False, threads: int | None = None, *,
          treatment: dict[str, int] | None = None, column_map: Any = None,
          encoding: str | None = None) -> Any:
    """Give each case its DIP packet (DIP.md order and tie-breaks), like ``drgsim.group``.

    ``records``: DataFrame (→ DataFrame), Arrow table or batch (→ Arrow table) or a path
    (→ DataFrame). ``catalogue``: a folder or a Catalogue. Adds packet, packet_kind,
    aux_catalogue, aux_class, aux_coef, treatment_type, dip_status and dx_key; every row
    comes back, in order. The case cost (``total_cost``, yuan) breaks ties on procedure
    count; where it is absent that tie goes to the smallest packet code.
    """
    cs = load_scheme(scheme)
    cat = _catalogue(catalogue)
    pd = sys.modules.get("pandas")
    is_frame = pd is not None and isinstance(records, pd.DataFrame)
    if column_map is not None or not (is_frame or isinstance(records, (pa.Table, pa.RecordBatch))):
        from drgsim.records import read_records

        was_arrow = isinstance(records, (pa.Table, pa.RecordBatch))
        if isinstance(records, pa.RecordBatch):
            records = pa.Table.from_batches([records])
        if is_frame:
            records = pa.Table.from_pandas(records, preserve_index=False)
        table = read_records(records, encoding=encoding, column_map=column_map)
        check_columns(table.schema.names)
        out = match_arrow_result(table, cat, cs, translate, threads, treatment)[0]
        return out if was_arrow else out.to_pandas()
    if is_frame:
        return match_dataframe(records, cat, cs, translate, threads, treatment)
    check_columns(records.schema.names)
    return match_arrow_result(records, cat, cs, translate, threads, treatment)[0]


def catalogue_folder(path: str | os.PathLike[str]) -> Path:
    """A catalogue folder given on the command line, checked to exist."""
    p = Path(path)
    if not p.is_dir():
        raise ValidationError([Problem(str(p), None, None, "no such catalogue folder")])
    return p


@dataclass
class Agreement:
    """How many history cases matching puts back in their build-time packet (issue 19)."""

    cases: int
    same: int
    moves: Any  # DataFrame: build_packet, build_kind, packet, packet_kind, cases (moved only)
    excluded: int = 0  # history rows the build gave no packet (check failed, bad cost, ...)

    @property
    def share(self) -> float:
        return self.same / self.cases if self.cases else 0.0

    def text(self) -> str:
        lines = [f"history put back in its build-time packet: {self.same:,} of {self.cases:,} "
                 f"({self.share:.2%})" + (f"; {self.excluded:,} rows the build excluded, not "
                                          "counted" if self.excluded else "")]
        if len(self.moves):
            by = self.moves.groupby(["build_kind", "packet_kind"])["cases"].sum()
            lines += [f"  {a or 'none'} -> {b or 'none'}: {n:,}" for (a, b), n in by.items()]
        return "\n".join(lines)


def history_agreement(history: Any, assigned: Any, catalogue: Any,
                      scheme: str | os.PathLike[str] | CompiledScheme = DEFAULT_SCHEME,
                      treatment: dict[str, int] | None = None) -> Agreement:
    """Match the history a catalogue was built from and compare with the build's assignment
    (``assigned``: case_id, packet, kind — what ``dip.build`` returns beside the catalogue).
    Containment can move a case from a comprehensive packet to a core one by design."""
    import pandas as pd

    got = match(history, catalogue, scheme, treatment=treatment)
    if isinstance(got, pa.Table):
        got = got.to_pandas()
    a = pd.DataFrame({"case_id": assigned["case_id"].astype(str).to_numpy(),
                      "build_packet": assigned["packet"].astype(str).to_numpy(),
                      "build_kind": assigned["kind"].astype(str).to_numpy()})
    if a["case_id"].duplicated().any():
        raise DrgsimError("history_agreement: case_id repeats in the build's assignment")
    built = a["build_packet"] != ""
    excluded = int((~built).sum())
    a = a[built]
    g = pd.DataFrame({"case_id": got["case_id"].astype(str).to_numpy(),
                      "packet": got["packet"].to_numpy(), "packet_kind": got["packet_kind"].to_numpy()})
    if g["case_id"].duplicated().any():
        raise DrgsimError("history_agreement: case_id repeats in the history")
    j = a.merge(g, on="case_id", how="left")
    if j["packet"].isna().any():
        raise DrgsimError(f"history_agreement: case {j.loc[j['packet'].isna(), 'case_id'].iloc[0]!r} "
                          "of the assignment is not in the history")
    same = j["build_packet"] == j["packet"]
    moved = j[~same].groupby(["build_packet", "build_kind", "packet", "packet_kind"]).size()
    moves = moved.rename("cases").reset_index().sort_values("cases", ascending=False,
                                                             kind="stable").reset_index(drop=True)
    return Agreement(len(j), int(same.sum()), moves, excluded)


class _CallableModule(type(sys)):
    """This module, callable as :func:`match`: importing ``drgsim.dip.match`` makes the
    package attribute ``drgsim.dip.match`` the module (Python's import sets it), so
    ``from drgsim import dip; dip.match(records, cat)`` works whatever was imported first."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return match(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
