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


def _pick_sheet(wb, p: Path, sheet: str | int | None):
    """The worksheet named, or numbered from 1, by ``--sheet`` (default: the first)."""
    if sheet is None:
        return wb.worksheets[0]
    if isinstance(sheet, str) and sheet in wb.sheetnames:
        return wb[sheet]
    if isinstance(sheet, int) or (isinstance(sheet, str) and sheet.strip().isdigit()):
        k = int(sheet)
        if 1 <= k <= len(wb.worksheets):
            return wb.worksheets[k - 1]
    raise RecordsError(f"{p}: no sheet {sheet!r} (sheets: {', '.join(wb.sheetnames)}; "
                       "--sheet takes a name or a number from 1)")


def _non_empty(ws) -> bool:
    for r in ws.iter_rows(values_only=True):
        if r and any(c is not None and str(c).strip() for c in r):
            return True
    return False


def _merged_ranges(ws) -> list[tuple[int, int, int, int]]:
    """(min_col, min_row, max_col, max_row) of every merged range, streamed from the XML.

    openpyxl's read-only mode does not expose merged cells; the sheet XML lists them.
    """
    from xml.etree.ElementTree import iterparse

    from openpyxl.utils.cell import range_boundaries

    out = []
    try:
        src = ws._get_source()
    except AttributeError:  # pragma: no cover - a non-read-only sheet
        return [tuple(m.bounds) for m in ws.merged_cells.ranges]
    with src:
        for _, el in iterparse(src, events=("end",)):
            tag = el.tag.rsplit("}", 1)[-1]
            if tag == "mergeCell" and el.get("ref"):
                out.append(tuple(range_boundaries(el.get("ref"))))
            if tag in ("row", "mergeCell", "c"):
                el.clear()
    return out


MERGED_COLUMN = "xlsx_merged"


def read_xlsx(path: str | os.PathLike[str], sheet: str | int | None = None,
              with_notes: bool = False):
    """(table of text columns, {column: bool mask of numeric cells}) for one sheet.

    ``sheet``: a name or a number from 1 (default: the first). Header is the first
    non-empty row; duplicate or blank headers, and a value beyond the header's last
    column, are errors naming the cell. Merged ranges are filled from their top-left
    cell, and the column ``xlsx_merged`` names, per row, the columns so filled.
    With ``with_notes`` also returns warnings (other non-empty sheets, merges).
    """
    try:
        import openpyxl
        from openpyxl.utils import get_column_letter
    except ImportError as exc:  # pragma: no cover - the excel extra is installed in CI
        raise RecordsError("reading .xlsx needs openpyxl: pip install drgsim") from exc
    p = Path(path)
    try:
        wb = openpyxl.load_workbook(p, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds on a bad file
        raise RecordsError(f"{p}: not a readable .xlsx file ({exc})") from exc
    notes: list[str] = []
    try:
        ws = _pick_sheet(wb, p, sheet)
        where = f"{p.name}:{ws.title}!"
        others = [w.title for w in wb.worksheets if w is not ws and _non_empty(w)]
        if others:
            notes.append(f"{p.name}: read sheet {ws.title!r} only; other non-empty sheet(s) "
                         f"not read: {', '.join(others)} (choose with --sheet NAME|N)")
        merges = _merged_ranges(ws)
        rows = ws.iter_rows(min_row=1, min_col=1, values_only=True)
        header = None
        hrow = 0
        for r in rows:
            hrow += 1
            if r and any(c is not None and str(c).strip() for c in r):
                header = [("" if c is None else str(c).strip()) for c in r]
                break
        if header is None:
            raise RecordsError(f"{p}: sheet {ws.title!r} is empty")
        while header and header[-1] == "":
            header.pop()
        lead = next(i for i, h in enumerate(header) if h)  # a table may start right of A
        header = header[lead:]
        seen: set[str] = set()
        for i, h in enumerate(header):
            cell = f"{where}{get_column_letter(lead + i + 1)}{hrow}"
            if not h:
                raise RecordsError(f"{cell}: header cell is blank")
            if h in seen:
                raise RecordsError(f"{cell}: header {h!r} appears twice")
            seen.add(h)
        k = len(header)
        # cells filled from a merged range: (row, col) -> top-left (row, col), 1-based
        fill: dict[tuple[int, int], tuple[int, int]] = {}
        for c0, r0, c1, r1 in merges:
            if r1 <= hrow:
                continue
            for rr in range(max(r0, hrow + 1), r1 + 1):
                for cc in range(c0, c1 + 1):
                    if (rr, cc) != (r0, c0):
                        fill[(rr, cc)] = (r0, c0)
        need = set(fill.values())
        top_left: dict[tuple[int, int], object] = {}
        cols: list[list[str | None]] = [[] for _ in range(k)]
        nums: list[list[bool]] = [[] for _ in range(k)]
        merged_flag: list[str] = []
        rownum = hrow
        for r in rows:
            rownum += 1
            r = tuple(r or ())
            for j in (*range(min(lead, len(r))), *range(lead + k, len(r))):
                v = r[j]
                if v is not None and str(v).strip():
                    side = "left of the header's first" if j < lead else "beyond the header's last"
                    edge = lead + 1 if j < lead else lead + k
                    name = header[0] if j < lead else header[-1]
                    raise RecordsError(f"{where}{get_column_letter(j + 1)}{rownum}: value "
                                       f"{str(v)[:40]!r} {side} column "
                                       f"({get_column_letter(edge)}, {name!r})")
            r = r[lead:lead + k]
            r = r + (None,) * (k - len(r))
            for j, v in enumerate(r):
                if (rownum, lead + j + 1) in need:
                    top_left[(rownum, lead + j + 1)] = v
            filled = []
            if fill:
                r = list(r)
                for j in range(k):
                    src = fill.get((rownum, lead + j + 1))
                    if src is not None and r[j] is None:
                        r[j] = top_left.get(src) if src[0] > hrow else None
                        filled.append(header[j])
            if all(c is None for c in r):
                continue
            for j, v in enumerate(r):
                cols[j].append(_text(v))
                nums[j].append(isinstance(v, (int, float)) and not isinstance(v, bool))
            merged_flag.append("|".join(filled))
    finally:
        wb.close()
    table = pa.table({h: pa.array(c, type=pa.string()) for h, c in zip(header, cols)})
    n_merged = sum(1 for m in merged_flag if m)
    if n_merged:
        # the sheet's own 'xlsx_merged' column (a re-read output) becomes input_xlsx_merged
        from drgsim.output.names import input_renames

        renamed = input_renames(header, [MERGED_COLUMN])
        if renamed:
            table = table.rename_columns([renamed.get(h, h) for h in header])
            header = [renamed.get(h, h) for h in header]
        table = table.append_column(MERGED_COLUMN, pa.array(merged_flag, pa.string()))
        notes.append(f"{p.name}: {n_merged:,} row(s) have cells filled from a merged range's "
                     f"top-left cell (named in column {MERGED_COLUMN})")
    masks = {h: np.array(m, dtype=bool) for h, m in zip(header, nums) if any(m)}
    if with_notes:
        return table, masks, notes
    return table, masks
