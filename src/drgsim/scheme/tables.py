"""Read and validate a folder of scheme tables.

Every problem is collected as ``file:line: column: message`` and raised together as one
:class:`~drgsim.errors.SchemeError` before any grouping happens. Codes are data: they are
never trimmed, case-folded or rejected.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from drgsim.constants import SATURATE
from drgsim.errors import Problem, SchemeError
from drgsim.scheme.spec import TABLES, TableSpec

_INT = re.compile(r"-?[0-9]+\Z")
# Integers in the tables compile to int64 beside two sentinels (no bound, absent) and are
# compared with record values that saturate at +-SATURATE: a table integer lies strictly
# inside, so nothing that validates can overflow or be confused with a saturated value.
INT_LIMIT = SATURATE - 1


def _int_in_range(value: str) -> bool:
    """``value`` (matching ``_INT``) lies within +-INT_LIMIT (checked on the digits first)."""
    digits = value.lstrip("-").lstrip("0")
    return len(digits) <= 19 and int(value) <= INT_LIMIT and int(value) >= -INT_LIMIT
_LABEL = r"[^&|\s]+"
_EXPR = re.compile(rf"{_LABEL}(&{_LABEL})*(\|{_LABEL}(&{_LABEL})*)*\Z")


@dataclass
class Table:
    """One CSV table: columns as lists of strings, with the line each row starts on."""

    file: str
    columns: dict[str, list[str]]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.lines)

    def get(self, name: str) -> list[str]:
        """A column, or all-empty when the file leaves it out (a missing column = no condition)."""
        col = self.columns.get(name)
        return col if col is not None else [""] * len(self.lines)

    def has(self, name: str) -> bool:
        return name in self.columns


@dataclass
class SchemeTables:
    """All tables of a scheme folder, validated."""

    path: Path
    tables: dict[str, Table]
    content_hash: str
    meta: dict[str, str]
    # valid but worth a look (an ADRG without DRGs): the result is defined, so not an error
    warnings: list[Problem] = field(default_factory=list)

    def __getitem__(self, file: str) -> Table:
        return self.tables[file]

    def __contains__(self, file: str) -> bool:
        return file in self.tables

    @property
    def name(self) -> str:
        return self.meta.get("name", self.path.name)

    @property
    def version(self) -> str:
        return self.meta.get("version", "")


def content_hash(folder: Path) -> str:
    """A hash of the known tables' bytes (file names included): the compiled-cache key."""
    h = hashlib.blake2b(digest_size=16)
    for file in sorted(TABLES):
        p = folder / file
        if p.is_file():
            h.update(file.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _read_csv(path: Path, spec: TableSpec, problems: list[Problem]) -> Table | None:
    rel = path.name
    try:
        fh = path.open(encoding="utf-8", newline="")
        text_reader = csv.reader(fh)
        try:
            header = next(text_reader)
        except StopIteration:
            problems.append(Problem(rel, 1, None, "empty file: a header row is required"))
            return None
    except UnicodeDecodeError as exc:
        problems.append(Problem(rel, None, None, f"not UTF-8 text ({exc.reason})"))
        return None
    except OSError as exc:
        problems.append(Problem(rel, None, None, f"cannot read: {exc.strerror}"))
        return None
    with fh:
        if header and header[0].startswith("\ufeff"):
            header[0] = header[0][1:]
        ok = True
        seen: set[str] = set()
        for name in header:
            if name in seen:
                problems.append(Problem(rel, 1, name, "column appears twice in the header"))
                ok = False
            seen.add(name)
            if name not in spec.names:
                problems.append(
                    Problem(rel, 1, name, "unknown column (not part of the table format; "
                            f"known: {', '.join(spec.names)})")
                )
                ok = False
        for col in spec.columns:
            if col.required and col.name not in seen:
                problems.append(Problem(rel, 1, col.name, "required column is missing"))
                ok = False
        if not ok:
            return None
        columns: dict[str, list[str]] = {name: [] for name in header}
        lists = [columns[name] for name in header]
        lines: list[int] = []
        width = len(header)
        line = 1
        try:
            for row in text_reader:
                start = line + 1
                line = text_reader.line_num
                if not row:
                    continue  # a blank line carries no fact
                if len(row) != width:
                    problems.append(
                        Problem(rel, start, None, f"{len(row)} fields where the header has {width}")
                    )
                    continue
                lines.append(start)
                for target, value in zip(lists, row):
                    target.append(value)
        except (csv.Error, UnicodeDecodeError) as exc:
            problems.append(Problem(rel, line + 1, None, f"malformed CSV: {exc}"))
            return None
    return Table(rel, columns, lines)


def _check_cells(table: Table, spec: TableSpec, problems: list[Problem]) -> None:
    for col in spec.columns:
        if not table.has(col.name):
            continue
        values = table.columns[col.name]
        for value, line in zip(values, table.lines):
            if value == "":
                if col.nonempty:
                    problems.append(Problem(table.file, line, col.name, "must not be empty"))
                continue
            if col.kind == "int":
                if not _INT.match(value):
                    problems.append(
                        Problem(table.file, line, col.name, f"{value!r} is not an integer")
                    )
                elif not _int_in_range(value):
                    shown = value if len(value) <= 30 else f"{value[:12]}...({len(value)} digits)"
                    problems.append(
                        Problem(table.file, line, col.name,
                                f"{shown} is out of range (table integers lie within "
                                f"-{INT_LIMIT} .. {INT_LIMIT})")
                    )
                elif col.min_value is not None and int(value) < col.min_value:
                    problems.append(
                        Problem(table.file, line, col.name, f"{value} is below {col.min_value}")
                    )
            elif col.choices and value not in col.choices:
                problems.append(
                    Problem(table.file, line, col.name,
                            f"{value!r} is not one of {', '.join(col.choices)}")
                )
            elif col.kind == "expr" and not _EXPR.match(value):
                problems.append(
                    Problem(table.file, line, col.name,
                            f"{value!r} is not a '|'-separated list of '&'-joined labels")
                )
    # duplicate keys
    if all(table.has(k) for k in spec.key):
        first: dict[tuple[str, ...], int] = {}
        cols = [table.columns[k] for k in spec.key]
        for i, line in enumerate(table.lines):
            key = tuple(c[i] for c in cols)
            if key in first:
                problems.append(
                    Problem(table.file, line, ",".join(spec.key),
                            f"duplicate key {'/'.join(key)!r} (first at line {first[key]})")
                )
            else:
                first[key] = line
    # bounds: min <= max
    for col in spec.columns:
        if col.name.endswith("_min"):
            hi_name = col.name[:-4] + "_max"
            if table.has(col.name) and table.has(hi_name):
                for lo, hi, line in zip(table.columns[col.name], table.columns[hi_name],
                                        table.lines):
                    if (_INT.match(lo) and _INT.match(hi) and _int_in_range(lo)
                            and _int_in_range(hi) and int(lo) > int(hi)):
                        problems.append(
                            Problem(table.file, line, col.name, f"{lo} exceeds {hi_name} {hi}")
                        )


def _check_references(t: dict[str, Table], meta: dict[str, str], problems: list[Problem]) -> None:
    mdc = t["mdc.csv"]
    mdcs = set(mdc.get("mdc"))
    orders = mdc.get("order")
    seen_order: dict[str, int] = {}
    for o, line in zip(orders, mdc.lines):
        if o in seen_order:
            problems.append(
                Problem("mdc.csv", line, "order", f"order {o} repeated (first at line {seen_order[o]})")
            )
        seen_order.setdefault(o, line)
    seen_label: dict[str, int] = {}
    for lab, line in zip(mdc.get("label"), mdc.lines):
        if lab in seen_label:
            problems.append(Problem("mdc.csv", line, "label", f"label {lab!r} repeated"))
        seen_label.setdefault(lab, line)
    if "mdc_order" in meta and mdc.lines and all(_INT.match(o) for o in orders):
        by_order = "".join(m for _, m in sorted(zip(map(int, orders), mdc.get("mdc"))))
        if meta["mdc_order"] != by_order:
            problems.append(
                Problem("scheme.csv", None, "mdc_order",
                        f"{meta['mdc_order']!r} disagrees with mdc.csv order ({by_order!r})")
            )
    if meta.get("code_translation_default", "off") not in ("on", "off"):
        problems.append(Problem("scheme.csv", None, "code_translation_default", "must be on or off"))
    for key in ("name", "version"):
        if key not in meta:
            problems.append(Problem("scheme.csv", None, key, "required key is missing"))

    # MDC lists
    pdx = t["mdc_principal_dx.csv"]
    regions: dict[str, set[str]] = {}
    for m, region, line in zip(pdx.get("mdc"), pdx.get("trauma_region"), pdx.lines):
        if m not in mdcs:
            problems.append(Problem(pdx.file, line, "mdc", f"MDC {m!r} is not in mdc.csv"))
        if region:
            regions.setdefault(m, set()).add(region)
    for m, k, line in zip(mdc.get("mdc"), mdc.get("min_trauma_regions"), mdc.lines):
        if k and len(regions.get(m, ())) > 63:
            problems.append(Problem("mdc.csv", line, "min_trauma_regions",
                                    f"MDC {m} has more than 63 trauma regions"))

    # ADRG rules
    adrg = t["adrg.csv"]
    rule_line: dict[str, int] = {}
    adrg_mdc: dict[str, tuple[str, int]] = {}
    mdc_order_seen: dict[tuple[str, str], int] = {}
    for i, line in enumerate(adrg.lines):
        rid, code, m, o = (adrg.get(c)[i] for c in ("rule_id", "adrg", "mdc", "order"))
        rule_line.setdefault(rid, line)
        if m not in mdcs:
            problems.append(Problem(adrg.file, line, "mdc", f"MDC {m!r} is not in mdc.csv"))
        prev = adrg_mdc.setdefault(code, (m, line))
        if prev[0] != m:
            problems.append(Problem(adrg.file, line, "mdc",
                                    f"ADRG {code} is in MDC {prev[0]} at line {prev[1]}"))
        if (m, o) in mdc_order_seen:
            problems.append(Problem(adrg.file, line, "order",
                                    f"order {o} repeated in MDC {m} (line {mdc_order_seen[(m, o)]})"))
        mdc_order_seen.setdefault((m, o), line)

    codes = t["adrg_codes.csv"]
    lists: dict[tuple[str, str], int] = {}
    labels: dict[str, set[str]] = {}
    rule_idx = {rid: i for i, rid in enumerate(adrg.get("rule_id"))}
    groups_col = adrg.get("proc_groups")
    for rid, lst, grp, line in zip(codes.get("rule_id"), codes.get("list"),
                                    codes.get("proc_group"), codes.lines):
        if rid not in rule_idx:
            problems.append(Problem(codes.file, line, "rule_id", f"rule {rid!r} is not in adrg.csv"))
            continue
        lists[(rid, lst)] = lists.get((rid, lst), 0) + 1
        if grp:
            if lst != "proc" or not groups_col[rule_idx[rid]]:
                problems.append(Problem(codes.file, line, "proc_group",
                                        f"set, but rule {rid} has no proc_groups for list {lst}"))
            labels.setdefault(rid, set()).add(grp)
    match_cols = {"dx": "dx_match", "dx2": "dx2_match", "proc": "proc_match",
                  "proc2": "proc2_match"}
    for i, line in enumerate(adrg.lines):
        rid = adrg.get("rule_id")[i]
        for lst, col in match_cols.items():
            used = bool(adrg.get(col)[i]) or (lst == "proc" and bool(groups_col[i]))
            if used and not lists.get((rid, lst)):
                problems.append(Problem(adrg.file, line, col,
                                        f"tests list {lst!r} but adrg_codes.csv has no {lst} codes "
                                        f"for rule {rid}"))
            if not used and lists.get((rid, lst)):
                problems.append(Problem(adrg.file, line, col,
                                        f"empty, but adrg_codes.csv lists {lists[(rid, lst)]} {lst} "
                                        f"codes for rule {rid} that no condition would use"))
        expr = groups_col[i]
        if expr and _EXPR.match(expr):
            have = labels.get(rid, set())
            missing = sorted({lab for conj in expr.split("|") for lab in conj.split("&")} - have)
            if missing:
                problems.append(Problem(adrg.file, line, "proc_groups",
                                        f"label(s) {', '.join(missing)} name no proc_group of "
                                        f"rule {rid} in adrg_codes.csv"))
            if len(have) > 64:
                problems.append(Problem(adrg.file, line, "proc_groups", "more than 64 labels"))

    drg = t["drg.csv"]
    adrgs = set(adrg.get("adrg"))
    seen_drg_order: dict[tuple[str, str], int] = {}
    for a, o, line in zip(drg.get("adrg"), drg.get("order"), drg.lines):
        if a not in adrgs:
            problems.append(Problem(drg.file, line, "adrg", f"ADRG {a!r} is not in adrg.csv"))
        if (a, o) in seen_drg_order:
            problems.append(Problem(drg.file, line, "order",
                                    f"order {o} repeated in ADRG {a} (line {seen_drg_order[(a, o)]})"))
        seen_drg_order.setdefault((a, o), line)


def _warnings(t: dict[str, Table]) -> list[Problem]:
    """ADRGs that no DRG row serves: valid (README 4.3 gives them the ADRG code), but said."""
    drg, adrg = t["drg.csv"], t["adrg.csv"]
    if not drg.lines:
        return [Problem(drg.file, None, None,
                        "no DRG rows: every case that matches an ADRG gets the ADRG code as "
                        "its DRG (scheme README 4.3)")]
    served = set(drg.get("adrg"))
    out: list[Problem] = []
    seen: set[str] = set()
    for a, line in zip(adrg.get("adrg"), adrg.lines):
        if a not in served and a not in seen:
            seen.add(a)
            out.append(Problem(adrg.file, line, "adrg",
                               f"ADRG {a} has no row in drg.csv: its cases get the DRG code {a} "
                               "(scheme README 4.3)"))
    return out


def load_tables(folder: str | Path) -> SchemeTables:
    """Read and validate every table of a scheme folder; raise SchemeError listing all problems."""
    folder = Path(folder)
    problems: list[Problem] = []
    tables: dict[str, Table] = {}
    known = set(TABLES)
    for spec in TABLES.values():
        path = folder / spec.file
        if not path.is_file():
            if spec.required_file:
                problems.append(Problem(spec.file, None, None, f"required table missing from {folder}"))
            continue
        table = _read_csv(path, spec, problems)
        if table is not None:
            _check_cells(table, spec, problems)
            tables[spec.file] = table
    for extra in sorted(p.name for p in folder.glob("*.csv")):
        if extra not in known:
            problems.append(Problem(extra, None, None,
                                    "unknown table (not part of the format; would be ignored)"))
    meta: dict[str, str] = {}
    if "scheme.csv" in tables:
        s = tables["scheme.csv"]
        meta = dict(zip(s.get("key"), s.get("value")))
    core = ("mdc.csv", "mdc_principal_dx.csv", "adrg.csv", "adrg_codes.csv", "drg.csv")
    if not problems and all(f in tables for f in core):
        _check_references(tables, meta, problems)
    if problems:
        raise SchemeError(problems, title=f"scheme tables in {folder} failed validation "
                                          f"({len(problems)} problem(s)):")
    return SchemeTables(folder, tables, content_hash(folder), meta, _warnings(tables))
