"""Group records: read fields -> encode codes -> run the kernel -> attach labelled columns."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pyarrow as pa

from drgsim.errors import DrgsimError
from drgsim.parallel import parallel_section
from drgsim.records import (
    OUTPUT_COLUMNS,
    RecordFields,
    check_columns,
    dataframe_record_table,
    fields_from_table,
    read_records,
)
from drgsim.scheme.compiled import CompiledScheme, compile_scheme
from drgsim.scheme.paths import DEFAULT_SCHEME, resolve_scheme_dir

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")


def load_scheme(scheme: str | os.PathLike[str] | CompiledScheme = DEFAULT_SCHEME) -> CompiledScheme:
    """A compiled scheme from a bundled name, a folder path, or an already compiled one."""
    if isinstance(scheme, CompiledScheme):
        return scheme
    return compile_scheme(resolve_scheme_dir(scheme))


def default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, int(os.environ.get("DRGSIM_THREADS", "0") or 0) or 64))


@dataclass
class GroupResult:
    """Kernel output for one batch: indices into the scheme's label tables."""

    mdc: np.ndarray
    adrg: np.ndarray
    drg: np.ndarray
    status: np.ndarray

    def arrow_columns(self, scheme: CompiledScheme) -> dict[str, pa.Array]:
        """Dictionary-encoded label columns (cheap to build, written as plain strings)."""
        out = {}
        for name, idx, labels in (
            ("mdc", self.mdc, scheme.out_mdc),
            ("adrg", self.adrg, scheme.out_adrg),
            ("drg", self.drg, scheme.out_drg),
            ("status", self.status, scheme.out_status),
        ):
            # from the buffer: pa.array(ndarray) would import numpy.ma (~50 ms of a tiny start)
            idx = np.ascontiguousarray(idx, dtype=np.int32)
            ids = pa.Array.from_buffers(pa.int32(), len(idx), [None, pa.py_buffer(idx)])
            d = pa.DictionaryArray.from_arrays(ids, pa.array(labels, pa.string()))
            out[name] = d.cast(pa.string())
        return out


def group_fields(fields: RecordFields, scheme: CompiledScheme, translate: bool = False,
                 threads: int | None = None, engine: str = "kernel") -> GroupResult:
    """Group already-read record fields (the kernel entry point for every input type).

    ``engine``: ``kernel`` (numba), ``reference`` (the Python reference grouper) or
    ``auto`` (the reference for tiny batches, see :mod:`drgsim.grouper.tiny`).
    """

    if translate and not scheme.has_translation:
        raise DrgsimError(f"scheme {scheme.name} has no dx_map.csv/proc_map.csv: cannot translate")
    from drgsim.grouper.tiny import choose_engine

    if choose_engine(engine, fields.n) == "reference":
        from drgsim.grouper.tiny import group_reference

        return group_reference(fields, scheme, translate)
    from drgsim.codes import encode_field

    threads = threads or default_threads()
    dx_ptr, dx_ids = encode_field(fields.diagnoses, scheme, keep_empty_field=translate, threads=threads)
    px_ptr, px_ids = encode_field(fields.procedures, scheme, keep_empty_field=False, threads=threads)
    return run_kernel(scheme, dx_ptr, dx_ids, px_ptr, px_ids, fields.ints, translate, threads)


def run_kernel(scheme: CompiledScheme, dx_ptr, dx_ids, px_ptr, px_ids, ints: dict[str, np.ndarray],
               translate: bool, threads: int) -> GroupResult:
    """Run the numba kernel over encoded arrays."""
    from drgsim.grouper.kernels import group_kernel

    n = len(dx_ptr) - 1
    out = GroupResult(*(np.empty(n, dtype=np.int32) for _ in range(4)))
    with parallel_section(threads) as used:
        n_chunks = max(1, min(n, used * 16))
        group_kernel(scheme.kt, dx_ptr, dx_ids, px_ptr, px_ids, ints["sex"], ints["age_years"],
                     ints["age_days"], ints["birth_weight_g"], ints["los_days"], bool(translate),
                     n_chunks, out.mdc, out.adrg, out.drg, out.status)
    return out


def output_name_map(names: list[str]) -> dict[str, str]:
    """Input columns that collide with our outputs are kept as ``input_<name>`` (``_2``,
    ``_3``, ... when that is taken too): output names are always unique."""
    from drgsim.output.names import input_renames

    return input_renames(names, OUTPUT_COLUMNS)


def group_arrow(table: pa.Table | pa.RecordBatch, scheme: CompiledScheme, translate: bool = False,
                threads: int | None = None, flags: bool = False, names: bool = False) -> pa.Table:
    """Group an Arrow table: every input column passes through, outputs appended."""
    return group_arrow_result(table, scheme, translate, threads, flags, names, engine="kernel")[0]


def group_arrow_result(table: pa.Table | pa.RecordBatch, scheme: CompiledScheme,
                       translate: bool = False,
                       threads: int | None = None, flags: bool = False,
                       names: bool = False, engine: str = "auto") -> tuple[pa.Table, GroupResult]:
    """Like :func:`group_arrow`, also returning the kernel's raw result (for summaries).

    ``flags``/``names`` add the ``flags`` list column and the title columns (issue 13).
    ``engine="auto"`` (the streaming path) groups a tiny batch with the reference grouper
    when the numba kernels are not loaded yet (:mod:`drgsim.grouper.tiny`).
    """
    from drgsim.grouper.tiny import choose_engine

    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    engine = choose_engine(engine, table.num_rows)
    if engine == "reference":
        from drgsim.grouper.tiny import fields_py

        fields = fields_py(table)  # the same rules without the numba text kernel
    else:
        fields = fields_from_table(table)
    res = group_fields(fields, scheme, translate, threads, engine)
    table = _kept_malformed(table, res)
    renames = output_name_map(table.schema.names)
    if renames:
        table = table.rename_columns([renames.get(c, c) for c in table.schema.names])
    for name, arr in res.arrow_columns(scheme).items():
        table = table.append_column(name, arr)
    if flags or names or "__drgsim_numeric_code" in table.schema.names:
        from drgsim.grouper.extras import decorate

        table = decorate(table, fields, scheme, flags, names)  # record columns: not renamed
    meta = dict(table.schema.metadata or {})
    meta.update({k.encode(): v.encode() for k, v in provenance(scheme, translate).items()})
    meta[b"drgsim.absent_columns"] = ",".join(fields.missing).encode()
    return table.replace_schema_metadata(meta), res


def _kept_malformed(table: pa.Table, res: GroupResult) -> pa.Table:
    """Rows kept by ``--bad-lines keep`` get status ``malformed_row``; drop the private mask."""
    from drgsim.inputs.sources import MALFORMED_COLUMN
    from drgsim.scheme.spec import STATUSES

    if MALFORMED_COLUMN not in table.schema.names:
        return table
    i = table.schema.get_field_index(MALFORMED_COLUMN)
    bad = np.asarray(table.column(i).to_numpy(zero_copy_only=False), bool)
    res.mdc[bad] = res.adrg[bad] = res.drg[bad] = 0
    res.status[bad] = STATUSES.index("malformed_row")
    return table.remove_column(i)


def group_dataframe(df: pd.DataFrame, scheme: CompiledScheme, translate: bool = False,
                    threads: int | None = None, flags: bool = False,
                    names: bool = False) -> pd.DataFrame:
    """Group a DataFrame; pass-through columns are the caller's own objects, untouched."""
    import pandas as pd

    check_columns([str(c) for c in df.columns])
    fields = fields_from_table(dataframe_record_table(df))
    res = group_fields(fields, scheme, translate, threads)
    cols = res.arrow_columns(scheme)
    if flags or names:
        from drgsim.grouper.extras import decorate

        extra = decorate(pa.table(cols), fields_from_table(dataframe_record_table(df)), scheme,
                         flags, names)
        cols = {c: extra.column(c) for c in extra.schema.names}
    from drgsim.output.names import input_renames

    out = df.rename(columns=input_renames(list(df.columns), list(cols)))
    new = pd.DataFrame({k: v.to_pandas() for k, v in cols.items()})
    new.index = df.index
    out = pd.concat([out, new], axis=1)
    out.attrs = {**df.attrs, **provenance(scheme, translate),
                 "drgsim.absent_columns": ",".join(fields.missing)}
    return out


def provenance(scheme: CompiledScheme, translate: bool) -> dict[str, str]:
    return {**scheme.provenance, "drgsim.translate": "on" if translate else "off"}


def group(records: T, scheme: str | os.PathLike[str] | CompiledScheme = DEFAULT_SCHEME,
          translate: bool = False, threads: int | None = None, *, flags: bool = False,
          names: bool = False, column_map: Any = None, encoding: str | None = None) -> Any:
    """Group discharge records into CHS-DRG groups.

    ``records``: a pandas DataFrame (returns a DataFrame), an Arrow table or batch (returns
    an Arrow table) or a path to parquet/CSV (UTF-8 or GBK/GB18030, detected)/.xlsx/a folder
    of parquet (returns a DataFrame).
    Adds ``mdc``, ``adrg``, ``drg`` and ``status``; every input row comes back, in order.
    ``flags=True`` adds a ``flags`` list column, ``names=True`` the tables' titles;
    ``column_map`` (a YAML path or a shipped map name) renames/joins/maps input columns.
    """
    cs = load_scheme(scheme)
    # a DataFrame can only come from an imported pandas (the Arrow paths never import it)
    pd = sys.modules.get("pandas")
    is_frame = pd is not None and isinstance(records, pd.DataFrame)
    if column_map is not None:
        was_arrow = isinstance(records, (pa.Table, pa.RecordBatch))
        if isinstance(records, pa.RecordBatch):
            records = pa.Table.from_batches([records])
        if is_frame:
            records = pa.Table.from_pandas(records, preserve_index=False)
        table = read_records(records, encoding=encoding, column_map=column_map)
        check_columns(table.schema.names)
        out = group_arrow(table, cs, translate, threads, flags, names)
        return out if was_arrow else out.to_pandas()
    if is_frame:
        return group_dataframe(records, cs, translate, threads, flags, names)
    if isinstance(records, (pa.Table, pa.RecordBatch)):
        check_columns(records.schema.names)
        return group_arrow(records, cs, translate, threads, flags, names)
    table = read_records(records, encoding=encoding)
    check_columns(table.schema.names)
    return group_arrow(table, cs, translate, threads, flags, names).to_pandas()


@dataclass
class GroupSummary:
    """Counts over a grouping run, for the CLI and reports."""

    rows: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    missing_columns: tuple[str, ...] = ()
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # about the input (absent columns, ...)
    sidecars: list[str] = field(default_factory=list)  # files written beside the output

    def add(self, status: np.ndarray, labels: list[str]) -> None:
        self.rows += len(status)
        counts = np.bincount(status, minlength=len(labels))
        for lab, c in zip(labels, counts):
            if c:
                self.status_counts[lab] = self.status_counts.get(lab, 0) + int(c)

    @property
    def grouped_share(self) -> float:
        return self.status_counts.get("ok", 0) / self.rows if self.rows else 0.0
