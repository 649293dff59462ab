"""Open an input before any work: every check that can fail is made here, up front.

:func:`open_input` lists the files of a folder (or ``--glob``), reads every parquet
footer, unifies their schemas, scans a CSV once for its encoding and structure, reads an
``.xlsx`` sheet — and raises a one-line :class:`RecordsError` naming the file (and line)
for anything wrong. Only then does :meth:`InputSource.batches` stream the rows, one file
and one batch at a time, so memory is bounded by the batch whatever the layout.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drgsim.errors import MissingColumnError, RecordsError

# Private column: True on a row kept by ``--bad-lines keep`` (the grouper gives it the
# status ``malformed_row``); never written out.
MALFORMED_COLUMN = "__drgsim_malformed"
# Output column added by ``--encoding X:replace``: True where a byte was replaced.
REPLACED_COLUMN = "encoding_replaced"
BAD_LINES = ("error", "keep")
_SHOW = 5  # problems listed in one error message


@dataclass
class InputSource:
    """An input that passed every up-front check; :meth:`batches` streams its rows."""

    path: Path
    kind: str  # parquet, dataset, csv, xlsx
    schema: pa.Schema  # columns of every batch, before a column map
    num_rows: int | None
    notes: list[str] = field(default_factory=list)  # said in the run summary
    malformed: list[Any] = field(default_factory=list)  # BadRecords kept (CSV)
    column_map: Any = None
    encoding: str | None = None
    _gen: Callable[[int], Iterator[pa.RecordBatch]] | None = None
    _xlsx: tuple[pa.Table, dict[str, np.ndarray]] | None = None

    def batches(self, batch_rows: int = 1 << 20) -> Iterator[pa.RecordBatch]:
        """The rows, batch by batch, column map applied."""
        if self._xlsx is not None:
            table, numeric = self._xlsx
            if self.column_map is not None:
                from drgsim.inputs.colmap import apply_map

                table = apply_map(table, self.column_map, numeric)
            else:
                from drgsim.inputs.colmap import numeric_code_mask

                table = numeric_code_mask(table, numeric)
            yield from table.to_batches(max_chunksize=batch_rows)
            return
        assert self._gen is not None
        for batch in self._gen(batch_rows):
            if self.column_map is not None:
                from drgsim.inputs.colmap import apply_map

                yield from apply_map(pa.Table.from_batches([batch]), self.column_map).to_batches()
            else:
                yield batch

    def empty_table(self) -> pa.Table:
        """No rows, the columns a batch would have (an empty input's output schema)."""
        t = self.schema.empty_table()
        if self.column_map is not None:
            from drgsim.inputs.colmap import apply_map

            t = apply_map(t, self.column_map)
        return t

    def write_malformed(self, dst: str | os.PathLike[str]) -> Path | None:
        """Write the kept malformed rows' raw text to ``<dst stem>.malformed_rows.csv``."""
        if not self.malformed:
            return None
        from drgsim.inputs.csvscan import read_ranges
        from drgsim.output import atomic_open

        d = Path(dst)
        side = d.with_name(d.with_suffix("").name + ".malformed_rows.csv")
        enc = self.encoding or "utf-8"
        with atomic_open(side, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["row", "line", "byte_offset", "problem", "raw_text"])
            for r in self.malformed:
                raw = read_ranges(self.path, [(r.start, r.end)])[0]
                w.writerow([r.index + 1, r.line, r.start, r.message(self.schema_fields),
                            raw.decode(enc, errors="replace").rstrip("\r\n")])
        return side

    @property
    def schema_fields(self) -> int:
        return len([n for n in self.schema.names if n not in (MALFORMED_COLUMN, REPLACED_COLUMN)])


def kind_of(path: Path) -> str:
    """parquet, csv, xlsx or dataset (a folder) from the path; others are an error."""
    if path.is_dir():
        return "dataset"
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith((".parquet", ".pq")):
        return "parquet"
    if suffixes.endswith((".csv", ".csv.gz", ".txt", ".tsv")):
        return "csv"
    if suffixes.endswith(".xlsx"):
        return "xlsx"
    raise RecordsError(f"{path}: unknown file type (expected .parquet, .csv, .xlsx or a folder "
                       "of parquet)")


def open_input(path: str | os.PathLike[str], encoding: str | None = None,
               bad_lines: str = "error", glob: str | None = None, sheet: str | int | None = None,
               column_map: Any = None, require: bool = True) -> InputSource:
    """Check an input up front and return it ready to stream (see the module docstring).

    ``require``: a required record column missing (in any file) is an error here.
    """
    from drgsim.records import check_columns

    p = Path(path)
    if not p.exists():
        raise RecordsError(f"{p}: no such file or folder")
    if bad_lines not in BAD_LINES:
        raise RecordsError(f"--bad-lines {bad_lines!r}: expected one of {', '.join(BAD_LINES)}")
    cm = None
    if column_map is not None:
        from drgsim.inputs.colmap import load_map

        cm = load_map(column_map)
    kind = kind_of(p)
    if glob is not None and kind != "dataset":
        raise RecordsError(f"--glob {glob!r}: INPUT must be a folder, not the file {p}")
    if sheet is not None and kind != "xlsx":
        raise RecordsError(f"--sheet: INPUT {p} is not an .xlsx file")
    if kind != "csv" and (encoding is not None or bad_lines != "error"):
        what = "--encoding" if encoding is not None else "--bad-lines"
        raise RecordsError(f"{what} applies to CSV input only, not to {p}")
    if kind == "dataset":
        src = _folder_source(p, glob, cm, require)
    elif kind == "parquet":
        src = _parquet_source(p)
    elif kind == "xlsx":
        from drgsim.inputs.excel import read_xlsx

        table, numeric, notes = read_xlsx(p, sheet, with_notes=True)
        src = InputSource(p, kind, table.schema, table.num_rows, notes=notes,
                          _xlsx=(table, numeric))
    else:
        src = _csv_source(p, encoding, bad_lines)
    src.column_map = cm
    if require and kind != "dataset":
        names = src.empty_table().schema.names
        try:
            check_columns(names)
        except MissingColumnError as exc:
            raise MissingColumnError(f"{p}: {exc}") from None
    return src


# ---------------------------------------------------------------- parquet

def _footer(p: Path):
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(p, pre_buffer=False)
        return pf, pf.schema_arrow
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise RecordsError(f"{p}: not a readable parquet file (corrupt or truncated: "
                           f"{str(exc).splitlines()[0]})") from None


def _parquet_source(p: Path) -> InputSource:
    pf, schema = _footer(p)

    def gen(batch_rows: int) -> Iterator[pa.RecordBatch]:
        # pre_buffer=False: with pre-buffering pyarrow keeps every row group's read buffers
        # until the file is closed, so memory grew with the file (1.8 GiB for 25M rows).
        try:
            yield from pf.iter_batches(batch_size=batch_rows)
        except (OSError, pa.ArrowException) as exc:
            raise RecordsError(f"{p}: unreadable data ({str(exc).splitlines()[0]})") from None

    return InputSource(p, "parquet", schema, pf.metadata.num_rows, _gen=gen)


def _stray_error(root: Path, q: Path, glob: str | None) -> RecordsError:
    how = (f"--glob {glob!r} selects it" if glob else
           "remove it, or select files with --glob '*.parquet'")
    return RecordsError(f"{q}: not a parquet file, in the input folder {root} ({how})")


def list_folder(root: Path, glob: str | None = None,
                strays: list[Path] | None = None) -> list[Path]:
    """The parquet files of a folder (sorted; hidden ``.``/``_`` names skipped).

    Any other file is an error naming it (or, given ``strays``, appended there), unless
    ``glob`` (matched against the path relative to the folder, from the right, like
    :meth:`PurePath.match`) leaves it out.
    """
    files = []
    for q in sorted(root.rglob("*")):
        rel = q.relative_to(root)
        if any(part.startswith((".", "_")) for part in rel.parts) or q.is_dir():
            continue
        if glob is not None and not PurePosixPath(rel.as_posix()).match(glob):
            continue
        if q.suffix.lower() not in (".parquet", ".pq"):
            if strays is None:
                raise _stray_error(root, q, glob)
            strays.append(q)
            continue
        files.append(q)
    if not files and strays:
        raise _stray_error(root, strays[0], glob)
    if not files:
        raise RecordsError(f"{root}: folder holds no .parquet files"
                           + (f" matching --glob {glob!r}" if glob else ""))
    return files


def _hive(root: Path, f: Path) -> dict[str, str]:
    return dict(part.split("=", 1) for part in f.relative_to(root).parent.parts if "=" in part)


def _unify(types: list[pa.DataType]) -> pa.DataType:
    if all(t == types[0] for t in types):
        return types[0]
    try:
        return pa.unify_schemas([pa.schema([pa.field("x", t)]) for t in types],
                                promote_options="permissive").field("x").type
    except (pa.ArrowException, TypeError):
        return pa.string()


def _few(paths: list[Path], root: Path) -> str:
    names = [str(q.relative_to(root)) for q in paths[:3]]
    return ", ".join(names) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def _folder_source(root: Path, glob: str | None, cm: Any, require: bool) -> InputSource:
    from drgsim.records import RECORD_FIELDS, REQUIRED_FIELDS

    strays: list[Path] = []
    files = list_folder(root, glob, strays)
    schemas: dict[Path, pa.Schema] = {}
    parts: dict[Path, dict[str, str]] = {}
    rows = 0
    for f in files:
        pf, sch = _footer(f)
        rows += pf.metadata.num_rows
        parts[f] = {k: v for k, v in _hive(root, f).items() if k not in sch.names}
        schemas[f] = sch
    # hive partition keys: int32 when every value is a small integer (as pyarrow infers)
    keys = list(dict.fromkeys(k for f in files for k in parts[f]))
    ptype = {k: pa.int32() if all(re.fullmatch(r"-?\d{1,9}", parts[f].get(k, "0"))
                                  for f in files) else pa.string() for k in keys}

    def names_of(f: Path) -> list[str]:
        names = list(schemas[f].names) + list(parts[f])
        if cm is not None:
            from drgsim.inputs.colmap import apply_map

            names = apply_map(pa.table({n: pa.array([], pa.string()) for n in names}), cm
                              ).schema.names
        return names

    if require:
        lacking = {f: [c for c in REQUIRED_FIELDS if c not in names_of(f)] for f in files}
        lacking = {f: m for f, m in lacking.items() if m}
        if lacking:
            strangers = [f for f, m in lacking.items() if len(m) == len(REQUIRED_FIELDS)]
            if strangers:
                good = [f for f in files if f not in lacking]
                hint = ""
                if good:
                    common = Path(os.path.commonpath([str(f.parent) for f in good]))
                    rel = common.relative_to(root).parts
                    top = root / rel[0] if rel else root
                    if not any(top in f.parents for f in strangers):
                        common = top  # keep the hive levels below it (year=..., month=...)
                    hint = f"; the discharge records are under {common}: point at that folder"
                elif (root / "discharges").is_dir():
                    hint = f"; did you mean {root / 'discharges'}?"
                raise RecordsError(
                    f"{root}: not a discharge dataset: {_few(strangers, root)} "
                    f"{'has' if len(strangers) == 1 else 'have'} none of the record columns "
                    f"({', '.join(REQUIRED_FIELDS)}){hint}")
            f, m = next(iter(lacking.items()))
            raise MissingColumnError(
                f"{f}: required column(s) missing: {', '.join(m)} (required: "
                f"{', '.join(REQUIRED_FIELDS)}; found: {', '.join(names_of(f)) or 'none'})"
                + (f"; {len(lacking) - 1} more file(s) lack required columns"
                   if len(lacking) > 1 else ""))
    if strays:  # after the footers: "not a discharge dataset" says more than a stray file
        raise _stray_error(root, strays[0], glob)
    # the unified schema: columns in order of first appearance, types unified
    order: dict[str, list[pa.DataType]] = {}
    for f in files:
        for fld in schemas[f]:
            order.setdefault(fld.name, []).append(fld.type)
        for k in parts[f]:
            order.setdefault(k, []).append(ptype[k])
    unified = pa.schema([pa.field(n, _unify(ts)) for n, ts in order.items()])
    notes = []
    for name, ts in order.items():
        absent = [f for f in files if name not in schemas[f].names and name not in parts[f]]
        if absent:
            what = ("optional record column" if name in RECORD_FIELDS else "column")
            notes.append(f"{what} {name!r} absent in {len(absent)} of {len(files)} files "
                         f"({_few(absent, root)}): read as absent (null) there")
        kinds = sorted({str(t) for t in ts})
        if len(kinds) > 1:  # widened (e.g. decimal + double -> double) or text: said either way
            as_ = "text" if unified.field(name).type == pa.string() else unified.field(name).type
            notes.append(f"column {name!r} has different types across files "
                         f"({', '.join(kinds)}): read as {as_}")

    def conform(batch: pa.RecordBatch, f: Path) -> pa.RecordBatch:
        n = batch.num_rows
        cols = []
        for fld in unified:
            if fld.name in batch.schema.names:
                col = batch.column(fld.name)
                if col.type != fld.type:
                    try:
                        col = pc.cast(col, fld.type)
                    except (pa.ArrowException, TypeError) as exc:
                        raise RecordsError(f"{f}: column {fld.name!r} ({col.type}) cannot be "
                                           f"read as {fld.type}: {exc}") from None
            elif fld.name in parts[f]:
                v = parts[f][fld.name]
                col = pa.array([int(v) if fld.type == pa.int32() else v] * n, fld.type)
            else:
                col = pa.nulls(n, fld.type)
            cols.append(col)
        return pa.RecordBatch.from_arrays(cols, schema=unified)

    def gen(batch_rows: int) -> Iterator[pa.RecordBatch]:
        # one file open at a time, one batch in flight: memory bounded by the batch
        for f in files:
            pf, _ = _footer(f)
            try:
                for b in pf.iter_batches(batch_size=batch_rows):
                    yield conform(b, f)
            except (OSError, pa.ArrowException) as exc:
                raise RecordsError(f"{f}: unreadable data ({str(exc).splitlines()[0]})") from None
            finally:
                pf.close()

    return InputSource(root, "dataset", unified, rows, notes=notes, _gen=gen)


# ---------------------------------------------------------------- CSV

def _header(p: Path, scan, enc: str) -> list[str]:
    from drgsim.inputs.csvscan import read_ranges

    raw = read_ranges(p, [(0, scan.header_end)])[0]
    text = raw.decode(enc, errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    names = next(csv.reader(io.StringIO(text)), [])
    seen: dict[str, int] = {}
    for i, h in enumerate(names):
        if h in seen:
            raise RecordsError(f"{p}:1: duplicate column name {h!r} (columns {seen[h] + 1} "
                               f"and {i + 1})")
        seen[h] = i
    return names


def _placeholder(raw: bytes, enc: str, width: int) -> list[str]:
    """A malformed record's fields, padded or cut to the header's width (best effort)."""
    text = raw[: 1 << 16].decode(enc, errors="replace").rstrip("\r\n")
    try:
        fields = next(csv.reader(io.StringIO(text)), [])
    except csv.Error:
        fields = text.split(",")
    return (fields + [""] * width)[:width]


def _first_undecodable(p: Path, enc: str) -> tuple[int, int] | None:
    """(line, byte offset) of the first byte ``enc`` cannot decode: a forced encoding's
    error then names the line (only on that error; ASCII-compatible, so lines split)."""
    from drgsim.inputs.csvscan import open_bytes

    pos = 0
    with open_bytes(p) as fh:
        for n, line in enumerate(fh, 1):
            try:
                line.decode(enc)
            except UnicodeDecodeError as e:
                return n, pos + e.start
            pos += len(line)
    return None


def _mark_replaced(batch: pa.RecordBatch) -> pa.RecordBatch:
    mask = None
    for col in batch.columns:
        if pa.types.is_string(col.type):
            m = pc.fill_null(pc.match_substring(col, "\ufffd"), False)
            mask = m if mask is None else pc.or_(mask, m)
    if mask is None:
        mask = pa.array(np.zeros(batch.num_rows, bool))
    return pa.RecordBatch.from_arrays([*batch.columns, mask],
                                      [*batch.schema.names, REPLACED_COLUMN])


def _csv_source(p: Path, encoding: str | None, bad_lines: str) -> InputSource:
    from drgsim.inputs.csvscan import FilteredStream, read_ranges, scan_csv
    from drgsim.inputs.encoding import (
        arrow_encoding,
        ascii_compatible,
        classify,
        is_utf8,
        parse_encoding,
    )

    spec = parse_encoding(encoding)
    notes: list[str] = []
    if spec.name is not None and not ascii_compatible(spec.name):
        raise RecordsError(f"--encoding {spec.name}: only encodings that keep ASCII bytes as "
                           "they are (UTF-8, GB18030, GBK, ...) can be read; convert the file")
    try:
        scan = scan_csv(p)
    except (OSError, EOFError) as exc:
        raise RecordsError(f"{p}: cannot read ({exc})") from None
    if scan.size == 0 or (scan.header_fields == 0 and not scan.bad):
        raise RecordsError(f"{p}: empty file (no header line)")
    if spec.name is None:
        enc = classify(p, scan)
    else:
        enc = spec.name
        if spec.errors == "strict" and is_utf8(enc) and scan.non_utf8_lines:
            ln, off = scan.non_utf8_examples[0]
            raise RecordsError(
                f"{p}:{ln}: not valid UTF-8 (byte {off}); {scan.non_utf8_lines:,} line(s) like "
                f"it (first: {', '.join(str(x[0]) for x in scan.non_utf8_examples)}); use "
                "--encoding utf-8:replace to replace the bad bytes, or the file's encoding")
        if not is_utf8(enc) and scan.utf8_lines and not scan.non_utf8_lines:
            notes.append(f"--encoding {enc} forced, although every non-ASCII line of {p.name} "
                         "is valid UTF-8")
        if is_utf8(enc) and scan.bom:
            enc = "utf-8-sig"
        if spec.replace:
            bad_txt = (f"; {scan.non_utf8_lines:,} line(s) are not valid UTF-8"
                       if is_utf8(enc) else "")
            notes.append(f"--encoding {spec.name}:replace: undecodable bytes become U+FFFD; "
                         f"rows holding one are marked in column {REPLACED_COLUMN}{bad_txt}")
    if scan.bad and scan.bad[0].index < 0:
        raise RecordsError(f"{p}:1: unterminated quote in the header line")
    names = _header(p, scan, enc)
    if spec.replace:  # the file's own 'encoding_replaced' (a regrouped output) is kept aside
        from drgsim.output.names import rename_inputs

        names = rename_inputs(names, [REPLACED_COLUMN])
    width = scan.header_fields
    if scan.bad and bad_lines == "error":
        first = scan.bad[0]
        more = [f"{p.name}:{b.line}" for b in scan.bad[1:_SHOW]]
        extra = (f" (and {len(scan.bad) - 1:,} more malformed row(s)"
                 + (f": {', '.join(more)}" if more else "")
                 + (", ..." if len(scan.bad) > _SHOW else "") + ")") if len(scan.bad) > 1 else ""
        raise RecordsError(f"{p}:{first.line}: {first.message(width)}{extra}; "
                           "--bad-lines keep keeps such rows with status malformed_row")
    bad = scan.bad
    kept = bad if bad_lines == "keep" else []
    if kept:
        notes.append(f"{len(kept):,} malformed row(s) kept with status malformed_row "
                     f"(first: line {kept[0].line}); raw text in the .malformed_rows.csv sidecar")
    fields = [pa.field(n, pa.string()) for n in names]
    if spec.replace:
        fields.append(pa.field(REPLACED_COLUMN, pa.bool_()))
    if kept:
        fields.append(pa.field(MALFORMED_COLUMN, pa.bool_()))
    schema = pa.schema(fields)
    n_good = scan.data_rows - len(bad)

    def good_batches(batch_rows: int) -> Iterator[pa.RecordBatch]:
        import pyarrow.csv as pacsv

        if n_good <= 0:
            return
        decode = (enc, "replace") if spec.replace else None
        stream = FilteredStream(p, [(b.start, b.end) for b in bad], start=scan.header_end,
                                decode=decode)
        read = pacsv.ReadOptions(column_names=names, block_size=1 << 24,
                                 encoding="utf-8" if decode else arrow_encoding(enc))
        parse = pacsv.ParseOptions(newlines_in_values=True)
        convert = pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                       strings_can_be_null=False,
                                       quoted_strings_can_be_null=False)
        try:
            reader = pacsv.open_csv(stream, read_options=read, parse_options=parse,
                                    convert_options=convert)
            for b in reader:
                if b.num_rows:
                    yield b
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            where = _first_undecodable(p, enc) if isinstance(exc, UnicodeDecodeError) else None
            what = (f"{p}:{where[0]}: not valid {enc} (byte offset {where[1]}" if where
                    else f"{p}: {str(exc).splitlines()[0]} (encoding {enc}")
            raise RecordsError(f"{what}; --encoding NAME:replace replaces undecodable "
                               "bytes)") from None
        finally:
            stream.close()

    def gen(batch_rows: int) -> Iterator[pa.RecordBatch]:
        pending = list(kept)
        raws = read_ranges(p, [(b.start, min(b.end, b.start + (1 << 16))) for b in pending])
        k = 0  # next kept row
        done = 0  # rows yielded (good and kept)
        good_seen = 0

        def finish(b: pa.RecordBatch, malformed: bool) -> pa.RecordBatch:
            if spec.replace:
                b = _mark_replaced(b)
            if kept:
                flag = pa.array(np.full(b.num_rows, malformed))
                b = pa.RecordBatch.from_arrays([*b.columns, flag], schema=schema)
            return b

        def kept_row(i: int) -> pa.RecordBatch:
            vals = _placeholder(raws[i], enc, width)
            return pa.RecordBatch.from_arrays([pa.array([v], pa.string()) for v in vals],
                                              names=names)

        for b in good_batches(batch_rows):
            good_seen += b.num_rows
            pos = 0
            pieces = []
            while pos < b.num_rows:
                take = b.num_rows - pos
                if k < len(pending):
                    take = min(take, pending[k].index - done)
                if take > 0:
                    pieces.append(finish(b.slice(pos, take), False))
                    pos += take
                    done += take
                progressed = take > 0
                while k < len(pending) and pending[k].index == done:
                    pieces.append(finish(kept_row(k), True))
                    k += 1
                    done += 1
                    progressed = True
                if not progressed:
                    raise RecordsError(f"{p}: internal error: malformed rows out of order; "
                                       "please report this file's layout")
            if len(pieces) == 1:
                yield pieces[0]
            else:
                yield from pa.Table.from_batches(pieces).combine_chunks().to_batches()
        while k < len(pending):
            yield finish(kept_row(k), True)
            k += 1
        if good_seen != n_good:
            raise RecordsError(f"{p}: internal error: the CSV reader found {good_seen:,} rows "
                               f"where the scan found {n_good:,}; please report this file's "
                               "layout")

    return InputSource(p, "csv", schema, scan.data_rows - (len(bad) - len(kept)), notes=notes,
                       malformed=kept, encoding=enc, _gen=gen)
