"""Optional output columns, computed only when asked: ``flags`` and the tables' titles.

Kept apart from the grouping path so that plain grouping pays nothing for them: flags
are vectorised over the batch's already-read fields, titles are a dictionary lookup on
the label columns.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drgsim.records import RecordFields
from drgsim.scheme.compiled import CompiledScheme

NAME_COLUMNS = ("mdc_name", "adrg_name", "drg_name")


@lru_cache(maxsize=8)
def scheme_titles(folder: str, content_hash: str = "") -> dict[str, dict[str, str]]:
    """{'mdc': label -> title, 'adrg': code -> title, 'drg': code -> title} from the tables.

    A DRG that is its ADRG's code (no DRG matched, scheme README 4.3) takes the ADRG title.
    """
    def rows(file: str) -> list[dict[str, str]]:
        p = Path(folder) / file
        with p.open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))

    mdc = {r["label"]: r.get("name_zh", "") for r in rows("mdc.csv")}
    adrg: dict[str, str] = {}
    for r in rows("adrg.csv"):
        adrg.setdefault(r["adrg"], r.get("name_zh", ""))
    drg = dict(adrg)
    drg.update({r["drg"]: r.get("name_zh", "") for r in rows("drg.csv")})
    return {"mdc": mdc, "adrg": adrg, "drg": drg}


def _lookup(labels: pa.Array, mapping: dict[str, str]) -> pa.Array:
    keys = pa.array(list(mapping), pa.string())
    vals = pa.array(list(mapping.values()), pa.string())
    idx = pc.index_in(labels, value_set=keys)
    return pc.fill_null(pc.take(vals, idx), "")


def name_columns(table: pa.Table, scheme: CompiledScheme) -> dict[str, pa.Array]:
    """``mdc_name``, ``adrg_name``, ``drg_name`` for a grouped table."""
    t = scheme_titles(scheme.path, scheme.content_hash)
    out = {}
    for col, key in (("mdc_name", "mdc"), ("adrg_name", "adrg"), ("drg_name", "drg")):
        arr = table.column(key)
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        out[col] = _lookup(arr.cast(pa.string()), t[key])
    return out


def decorate(table: pa.Table, fields: RecordFields, scheme: CompiledScheme,
             flags: bool = False, names: bool = False) -> pa.Table:
    """Append ``flags`` and/or the title columns; drop the private numeric-cell mask."""
    from drgsim.inputs.excel import NUMERIC_CODE_COLUMN
    from drgsim.output.names import rename_inputs

    numeric = None
    if NUMERIC_CODE_COLUMN in table.schema.names:
        i = table.schema.get_field_index(NUMERIC_CODE_COLUMN)
        numeric = np.asarray(table.column(i).to_numpy(zero_copy_only=False), bool)
        table = table.remove_column(i)
        if not flags and numeric.any():
            import warnings

            warnings.warn(f"{int(numeric.sum()):,} record(s) have a diagnosis/procedure cell stored "
                          "as a number in the .xlsx (its text may have lost zeros); group with "
                          "flags (--flags) to see which: flag code_numeric", stacklevel=3)
    if flags:
        from drgsim.flags.engine import compute_flags, flags_column

        table = table.rename_columns(rename_inputs(table.schema.names, ["flags"]))
        masks = compute_flags(fields, scheme, numeric)
        table = table.append_column("flags", flags_column(masks, table.num_rows))
    if names:
        for c, arr in name_columns(table, scheme).items():
            table = table.rename_columns(rename_inputs(table.schema.names, [c]))
            table = table.append_column(c, arr)
    return table
