"""Read an ``.xlsx`` extract into Arrow, every cell as text, numeric code cells remembered.

Excel holds at most about a million rows, so this reader is for extracts, not the full
year. Cells become text exactly as shown for text cells; a number becomes its plain
decimal text (``3.0`` -> ``3``). Excel often stores codes typed by hand as numbers
(``93.3901`` loses nothing, ``38.50`` loses its last zero), so for code columns the
reader keeps a per-row "some code cell was numeric" mask: the ``code_numeric`` flag,
never a silent reformat.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from drgsim.errors import RecordsError

# Private column carrying the "a code cell was numeric" mask into flags; never written out.
NUMERIC_CODE_COLUMN = "__drgsim_numeric_code"


def _text(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    return str(v)


def read_xlsx(path: str | os.PathLike[str], sheet: str | None = None
              ) -> tuple[pa.Table, dict[str, np.ndarray]]:
    """(table of text columns, {column: bool mask of numeric cells}) for the first sheet.

    Header is the first non-empty row; duplicate or blank headers are an error that
    names the cell.
    """
    try:
        import openpyxl
    except ImportError as exc:  # pragma: no cover - the excel extra is installed in CI
        raise RecordsError("reading .xlsx needs openpyxl: pip install 'drgsim[excel]'") from exc
    p = Path(path)
    try:
        wb = openpyxl.load_workbook(p, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds on a bad file
        raise RecordsError(f"{p}: not a readable .xlsx file ({exc})") from exc
    try:
        ws = wb[sheet] if sheet else wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header = None
        for r in rows:
            if r and any(c is not None and str(c).strip() for c in r):
                header = [("" if c is None else str(c).strip()) for c in r]
                break
        if header is None:
            raise RecordsError(f"{p}: the sheet is empty")
        while header and header[-1] == "":
            header.pop()
        seen: set[str] = set()
        for i, h in enumerate(header):
            if not h:
                raise RecordsError(f"{p}: header cell {i + 1} is blank")
            if h in seen:
                raise RecordsError(f"{p}: header {h!r} appears twice")
            seen.add(h)
        k = len(header)
        cols: list[list[str | None]] = [[] for _ in range(k)]
        nums: list[list[bool]] = [[] for _ in range(k)]
        for r in rows:
            if r is None or all(c is None for c in r):
                continue
            r = tuple(r[:k]) + (None,) * (k - len(r))
            for j, v in enumerate(r):
                cols[j].append(_text(v))
                nums[j].append(isinstance(v, (int, float)) and not isinstance(v, bool))
    finally:
        wb.close()
    table = pa.table({h: pa.array(c, type=pa.string()) for h, c in zip(header, cols)})
    masks = {h: np.array(m, dtype=bool) for h, m in zip(header, nums) if any(m)}
    return table, masks
