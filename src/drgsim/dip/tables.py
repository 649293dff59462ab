"""The DIP catalogue folder: write, read and validate its tables (DIP_CONTRACT.md).

``catalogue.csv`` (key,value), ``packets.csv``, ``levels.csv``, ``aux.csv``, ``report.txt``
and ``manifest.json``, written as one unit through :class:`drgsim.output.OutputFolder`.
Reading validates every table first and reports every problem as
``file:line: column: message``; nothing is half-read.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from drgsim.errors import Problem, ValidationError

FORMAT = "drgsim-dip-1"
META_KEYS = (
    "format", "version", "dx_level", "score_scale", "m_all_fen", "core_threshold",
    "comprehensive_min_cases", "aux_min_cases", "level_min_cases", "years", "year_weights",
    "pv_budget", "reimbursement_ratio", "built_from", "drgsim_version",
)
PACKET_COLUMNS = (
    "packet", "kind", "dx_key", "procs", "n_procs", "treatment_type", "fold", "base",
    "n_cases", "n_trimmed", "mean_cost_fen", "rw", "score", "cv",
)
PACKET_OPTIONAL = ("name_zh",)
LEVEL_COLUMNS = ("packet", "level", "n_cases", "mean_cost_fen")
AUX_COLUMNS = (
    "packet", "catalogue", "class", "class_id", "n_cases", "mean_cost_fen", "coefficient",
    "cv_before", "cv_after", "kept", "reason",
)
AUX_CATALOGUES = ("comorbidity", "severity", "tumour", "age")
KINDS = ("core", "comprehensive")
FOLDS = ("", "category", "prefix", "chapter")
FILES = ("catalogue.csv", "packets.csv", "levels.csv", "aux.csv")
REPORT = "report.txt"
_LETTERS = "CDTS"
_COMP = re.compile(r"^Z/([^/]+)/([CDTS])$")


class CatalogueError(ValidationError):
    """A DIP catalogue folder is missing, malformed or inconsistent."""

    kind = "DIP catalogue"


@dataclass
class Catalogue:
    """A region's DIP catalogue: settings (``meta``) and its tables as DataFrames."""

    meta: dict[str, Any]
    packets: pd.DataFrame
    levels: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=LEVEL_COLUMNS))
    aux: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=AUX_COLUMNS))
    path: Path | None = None
    report: str = ""  # the build report (text), when built or read with the folder

    def packet_index(self) -> pd.Index:
        """Packet codes as an index: ``packet_index().get_indexer(codes)`` gives rows (-1 none)."""
        return pd.Index(self.packets["packet"].to_numpy(dtype=object))

    @property
    def m_all_fen(self) -> float:
        return float(self.meta["m_all_fen"])


# ---------------------------------------------------------------- writing

def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return "" if math.isnan(f) else repr(f)
    if isinstance(v, (list, tuple)):
        return ",".join(_fmt(x) for x in v)
    return str(v)


def _csv_text(df: pd.DataFrame, cols: tuple[str, ...]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    arrays = [df[c].to_numpy(dtype=object) if c in df.columns else np.full(len(df), "", object)
              for c in cols]
    for row in zip(*arrays, strict=True):  # catalogue rows (thousands), not records
        w.writerow([_fmt(v) for v in row])
    return buf.getvalue()


def catalogue_texts(cat: Catalogue) -> dict[str, str]:
    """The text of each table file of ``cat``."""
    meta = io.StringIO()
    w = csv.writer(meta, lineterminator="\n")
    w.writerow(("key", "value"))
    for k in META_KEYS:
        w.writerow((k, _fmt(cat.meta.get(k))))
    pcols = PACKET_COLUMNS + tuple(c for c in PACKET_OPTIONAL if c in cat.packets.columns)
    return {
        "catalogue.csv": meta.getvalue(),
        "packets.csv": _csv_text(cat.packets, pcols),
        "levels.csv": _csv_text(cat.levels, LEVEL_COLUMNS),
        "aux.csv": _csv_text(cat.aux, AUX_COLUMNS),
    }


def write_catalogue(cat: Catalogue, out_dir: str | os.PathLike[str],
                    report: str | None = None) -> Path:
    """Write ``cat`` as a catalogue folder (atomic files, ``manifest.json`` last); returns it.

    The tables are validated after writing, as a reader would see them: a catalogue that
    would not read back is refused (:class:`CatalogueError`), and the folder stays incomplete.
    """
    from drgsim.output import OutputFolder, fingerprint

    texts = catalogue_texts(cat)
    rep = report if report is not None else cat.report
    if rep:
        texts[REPORT] = rep if rep.endswith("\n") else rep + "\n"
    fp = fingerprint((), {"tables": {k: hash_text(v) for k, v in texts.items()}})
    out = Path(out_dir)
    with OutputFolder(out, fp, owned=[*FILES, REPORT], writer="dip build") as folder:
        for name, text in texts.items():
            with folder.file(name) as tmp:
                Path(tmp).write_text(text, encoding="utf-8")
        problems = validate_catalogue(out, require_manifest=False)
        if problems:
            raise CatalogueError(problems, title=f"{out}: the built catalogue does not validate")
        folder.commit({"format": FORMAT, "packets": int(len(cat.packets))})
    cat.path = out
    return out


def hash_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- reading and validation

def _rows(path: Path, problems: list[Problem]) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line, cells) of a CSV file; an unreadable file is one problem."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        problems.append(Problem(str(path), None, None, "missing"))
        return [], []
    except (OSError, UnicodeDecodeError) as e:
        problems.append(Problem(str(path), None, None, f"cannot read ({e})"))
        return [], []
    rd = csv.reader(io.StringIO(text))
    try:
        header = next(rd)
    except StopIteration:
        problems.append(Problem(str(path), 1, None, "empty file (no header)"))
        return [], []
    out = []
    last = rd.line_num
    for cells in rd:
        line = last + 1
        last = rd.line_num
        if not cells or not any(c.strip() for c in cells):
            continue
        out.append((line, cells))
    return header, out


def _header(file: str, header: list[str], want: tuple[str, ...], optional: tuple[str, ...],
            problems: list[Problem]) -> bool:
    if header[: len(want)] != list(want) or any(c not in optional for c in header[len(want):]):
        problems.append(Problem(file, 1, None, f"header must be {','.join(want)}"
                                + (f" (then optionally {','.join(optional)})" if optional else "")
                                + f", found {','.join(header)}"))
        return False
    return True


class _Row:
    """Typed access to one CSV row, collecting problems as ``file:line: column: message``."""

    def __init__(self, file: str, line: int, header: list[str], cells: list[str],
                 problems: list[Problem]):
        self.file, self.line, self.problems = file, line, problems
        self.ok = True
        if len(cells) != len(header):
            self.bad(None, f"{len(cells)} cells, the header has {len(header)}")
        self.v = dict(zip(header, cells, strict=False))  # exact: codes are byte for byte

    def bad(self, col: str | None, msg: str) -> None:
        self.problems.append(Problem(self.file, self.line, col, msg))
        self.ok = False

    def s(self, col: str) -> str:
        return self.v.get(col, "")

    def int(self, col: str, lo: int | None = None, hi: int | None = None) -> int | None:
        t = self.s(col)
        try:
            x = int(t)
        except ValueError:
            self.bad(col, f"{t!r} is not an integer")
            return None
        if (lo is not None and x < lo) or (hi is not None and x > hi):
            rng = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
            self.bad(col, f"{x} is outside {rng}")
            return None
        return x

    def float(self, col: str, positive: bool = False, empty_ok: bool = False) -> float | None:
        t = self.s(col)
        if t == "" and empty_ok:
            return math.nan
        try:
            x = float(t)
        except ValueError:
            self.bad(col, f"{t!r} is not a number")
            return None
        if not math.isfinite(x) or (positive and x <= 0) or x < 0:
            self.bad(col, f"{t!r} must be a {'positive' if positive else 'non-negative'} number")
            return None
        return x


def _meta(d: Path, problems: list[Problem]) -> dict[str, Any]:
    file = str(d / "catalogue.csv")
    header, rows = _rows(d / "catalogue.csv", problems)
    if not header:
        return {}
    if header != ["key", "value"]:
        problems.append(Problem(file, 1, None, f"header must be key,value, found {','.join(header)}"))
        return {}
    raw: dict[str, tuple[int, str]] = {}
    for line, cells in rows:
        k = cells[0].strip()
        v = cells[1].strip() if len(cells) > 1 else ""
        if len(cells) != 2:
            problems.append(Problem(file, line, "value", f"{len(cells)} cells, want 2"))
        if k not in META_KEYS:
            problems.append(Problem(file, line, "key", f"unknown key {k!r}"))
        elif k in raw:
            problems.append(Problem(file, line, "key", f"{k!r} appears twice"))
        else:
            raw[k] = (line, v)
    meta: dict[str, Any] = {}
    for k in META_KEYS:
        if k not in raw:
            problems.append(Problem(file, None, "key", f"{k!r} is missing"))
            continue
        line, v = raw[k]

        def bad(msg: str, line: int = line, k: str = k) -> None:
            problems.append(Problem(file, line, "value", f"{k}: {msg}"))

        if k == "format":
            if v != FORMAT:
                bad(f"{v!r} is not {FORMAT}")
            meta[k] = v
        elif k == "version":
            if v not in ("1.0", "2.0"):
                bad(f"{v!r} is not 1.0 or 2.0")
            meta[k] = v
        elif k == "dx_level":
            if v not in ("subcategory", "category"):
                bad(f"{v!r} is not subcategory or category")
            meta[k] = v
        elif k == "score_scale":
            if v not in ("100", "1000"):
                bad(f"{v!r} is not 100 or 1000")
            meta[k] = int(v) if v in ("100", "1000") else None
        elif k in ("core_threshold", "comprehensive_min_cases", "aux_min_cases",
                   "level_min_cases"):
            try:
                meta[k] = int(v)
                if meta[k] < 1:
                    bad(f"{v!r} must be at least 1")
            except ValueError:
                bad(f"{v!r} is not an integer")
        elif k in ("m_all_fen", "pv_budget", "reimbursement_ratio"):
            if v == "" and k == "reimbursement_ratio":
                meta[k] = None  # unknown from history: the policy must give it
                continue
            try:
                x = float(v)
            except ValueError:
                bad(f"{v!r} is not a number")
                continue
            if not math.isfinite(x) or x <= 0 or (k == "reimbursement_ratio" and x > 1):
                bad(f"{v!r} must be a positive number" + (" ≤ 1" if k == "reimbursement_ratio"
                                                           else ""))
            meta[k] = x
        elif k == "years":
            try:
                meta[k] = [int(x) for x in v.split(",")]
            except ValueError:
                bad(f"{v!r} is not a comma-separated list of years")
        elif k == "year_weights":
            try:
                meta[k] = [float(x) for x in v.split(",")]
                if any(w < 0 for w in meta[k]) or sum(meta[k]) <= 0:
                    bad(f"{v!r}: weights must be non-negative, not all zero")
            except ValueError:
                bad(f"{v!r} is not a comma-separated list of numbers")
        else:
            meta[k] = v
    if isinstance(meta.get("years"), list) and isinstance(meta.get("year_weights"), list) \
            and len(meta["years"]) != len(meta["year_weights"]):
        problems.append(Problem(file, raw["year_weights"][0], "value",
                                "year_weights: one weight per year of 'years'"))
    return meta


def _packets(d: Path, meta: dict, problems: list[Problem]) -> tuple[pd.DataFrame, dict[str, int]]:
    file = str(d / "packets.csv")
    header, rows = _rows(d / "packets.csv", problems)
    if not header or not _header(file, header, PACKET_COLUMNS, PACKET_OPTIONAL, problems):
        return pd.DataFrame(columns=PACKET_COLUMNS), {}
    recs: list[dict] = []
    seen: dict[str, int] = {}
    m_all = meta.get("m_all_fen")
    scale = meta.get("score_scale")
    for line, cells in rows:
        r = _Row(file, line, header, cells, problems)
        code, kind = r.s("packet"), r.s("kind")
        if not code:
            r.bad("packet", "empty")
        elif code in seen:
            r.bad("packet", f"{code!r} is listed twice (first at line {seen[code]})")
        else:
            seen[code] = line
        if kind not in KINDS:
            r.bad("kind", f"{kind!r} is not core or comprehensive")
        procs = r.s("procs")
        n_procs = r.int("n_procs", 0)
        tt = r.int("treatment_type", 0, 3)
        base = r.int("base", 0, 1)
        fold = r.s("fold")
        dxk = r.s("dx_key")
        plist = procs.split("+") if procs else []
        if n_procs is not None and n_procs != len(plist):
            r.bad("n_procs", f"{n_procs} but procs lists {len(plist)}")
        if plist and (plist != sorted(plist) or len(set(plist)) != len(plist) or "" in plist):
            r.bad("procs", f"{procs!r}: codes must be distinct and sorted")
        if fold not in FOLDS:
            r.bad("fold", f"{fold!r} is not empty, category, prefix or chapter")
        if kind == "core" and code:
            want = dxk + ("/" + procs if procs else "")
            if code != want:
                r.bad("packet", f"{code!r}: a core packet's code is dx_key[/procs], {want!r}")
            if fold:
                r.bad("fold", "a core packet has no fold")
            if not procs and tt not in (None, 0):
                r.bad("treatment_type", "a conservative packet has treatment_type 0")
            if procs and tt == 0:
                r.bad("treatment_type", "a procedural packet has treatment_type ≥ 1")
        if kind == "comprehensive" and code:
            m = _COMP.match(code)
            if not m:
                r.bad("packet", f"{code!r}: a comprehensive packet's code is Z/<prefix>/<C|D|T|S>")
            else:
                if m.group(1) != dxk:
                    r.bad("dx_key", f"{dxk!r} but the code's prefix is {m.group(1)!r}")
                if tt is not None and _LETTERS[tt] != m.group(2):
                    r.bad("treatment_type", f"{tt} but the code says {m.group(2)}")
            if procs:
                r.bad("procs", "a comprehensive packet lists no procedures")
            if not fold:
                r.bad("fold", "a comprehensive packet names its fold")
        if base == 1 and (kind != "core" or procs):
            r.bad("base", "only a conservative core packet can be a base packet")
        n = r.int("n_cases", 0)
        nt = r.int("n_trimmed", 0)
        if n is not None and nt is not None and nt > n:
            r.bad("n_trimmed", f"{nt} is more than n_cases {n}")
        mean = r.float("mean_cost_fen")  # a packet of zero-cost cases scores 0
        rw = r.float("rw")
        score = r.float("score")
        cv = r.float("cv", empty_ok=True)
        if mean is not None and rw is not None and isinstance(m_all, float):
            if not math.isclose(rw, mean / m_all, rel_tol=1e-9):
                r.bad("rw", f"{rw!r} is not mean_cost_fen / m_all_fen = {mean / m_all!r}")
        if rw is not None and score is not None and isinstance(scale, int):
            if abs(score - round(rw * scale, 4)) > 1e-9 * max(1.0, score):
                r.bad("score", f"{score!r} is not rw × {scale} rounded to 4 places "
                               f"({round(rw * scale, 4)!r})")
        recs.append({"packet": code, "kind": kind, "dx_key": dxk, "procs": procs,
                     "n_procs": n_procs, "treatment_type": tt, "fold": fold, "base": base,
                     "n_cases": n, "n_trimmed": nt, "mean_cost_fen": mean, "rw": rw,
                     "score": score, "cv": cv, **({"name_zh": r.s("name_zh")}
                                                  if "name_zh" in header else {})})
    df = pd.DataFrame(recs, columns=list(PACKET_COLUMNS) + [c for c in PACKET_OPTIONAL
                                                             if c in header])
    return df, seen


def _levels(d: Path, packets: pd.DataFrame, seen: dict[str, int], meta: dict,
            problems: list[Problem]) -> pd.DataFrame:
    file = str(d / "levels.csv")
    header, rows = _rows(d / "levels.csv", problems)
    if not header or not _header(file, header, LEVEL_COLUMNS, (), problems):
        return pd.DataFrame(columns=LEVEL_COLUMNS)
    base = set(packets.loc[packets["base"] == 1, "packet"]) if len(packets) else set()
    lmin = meta.get("level_min_cases")
    recs, pairs = [], {}
    for line, cells in rows:
        r = _Row(file, line, header, cells, problems)
        p, lv = r.s("packet"), r.s("level")
        if p not in seen:
            r.bad("packet", f"{p!r} is not in packets.csv")
        elif p in base:
            r.bad("packet", f"{p!r} is a base packet: no level means (同病同价)")
        if not lv:
            r.bad("level", "empty")
        if (p, lv) in pairs:
            r.bad("level", f"{p!r} × {lv!r} is listed twice (first at line {pairs[(p, lv)]})")
        pairs[(p, lv)] = line
        n = r.int("n_cases", 1)
        if n is not None and isinstance(lmin, int) and n < lmin:
            r.bad("n_cases", f"{n} is below level_min_cases {lmin}")
        mean = r.float("mean_cost_fen", positive=True)
        recs.append({"packet": p, "level": lv, "n_cases": n, "mean_cost_fen": mean})
    return pd.DataFrame(recs, columns=list(LEVEL_COLUMNS))


def _aux(d: Path, seen: dict[str, int], problems: list[Problem]) -> pd.DataFrame:
    file = str(d / "aux.csv")
    header, rows = _rows(d / "aux.csv", problems)
    if not header or not _header(file, header, AUX_COLUMNS, (), problems):
        return pd.DataFrame(columns=AUX_COLUMNS)
    recs = []
    ids: dict[tuple[str, int], str] = {}
    keys: dict[tuple[str, str, str], int] = {}
    for line, cells in rows:
        r = _Row(file, line, header, cells, problems)
        p, cat, cls = r.s("packet"), r.s("catalogue"), r.s("class")
        if p not in seen:
            r.bad("packet", f"{p!r} is not in packets.csv")
        if cat not in AUX_CATALOGUES:
            r.bad("catalogue", f"{cat!r} is not one of {', '.join(AUX_CATALOGUES)}")
        if not cls:
            r.bad("class", "empty")
        cid = r.int("class_id", 1)
        if cid is not None and cls:
            prev = ids.setdefault((cat, cid), cls)
            if prev != cls:
                r.bad("class_id", f"{cid} is {prev!r} elsewhere in catalogue {cat}")
        if (p, cat, cls) in keys:
            r.bad("class", f"{p!r} × {cat} × {cls!r} is listed twice (line {keys[(p, cat, cls)]})")
        keys[(p, cat, cls)] = line
        n = r.int("n_cases", 0)
        mean = r.float("mean_cost_fen", positive=True, empty_ok=True)
        coef = r.float("coefficient", positive=True, empty_ok=True)
        kept = r.int("kept", 0, 1)
        if kept == 1 and (coef is None or (isinstance(coef, float) and math.isnan(coef))):
            r.bad("coefficient", "a kept coefficient needs a value")
        recs.append({"packet": p, "catalogue": cat, "class": cls, "class_id": cid,
                     "n_cases": n, "mean_cost_fen": mean, "coefficient": coef,
                     "cv_before": r.float("cv_before", empty_ok=True),
                     "cv_after": r.float("cv_after", empty_ok=True), "kept": kept,
                     "reason": r.s("reason")})
    return pd.DataFrame(recs, columns=list(AUX_COLUMNS))


def _load(d: Path, require_manifest: bool) -> tuple[Catalogue | None, list[Problem]]:
    problems: list[Problem] = []
    if not d.is_dir():
        return None, [Problem(str(d), None, None, "not a folder (a DIP catalogue is a folder "
                                                  "written by 'drgsim dip build')")]
    if require_manifest:
        from drgsim.output import OutputFolder

        if (d / "manifest.json").exists() and OutputFolder.complete(d) is None:
            problems.append(Problem(str(d / "manifest.json"), None, None,
                                    "a listed file is missing or changed since it was written "
                                    "(edited by hand? run 'drgsim dip validate' after edits "
                                    "and remove manifest.json)"))
        elif not (d / "manifest.json").exists() and (d / ".drgsim-run.json").exists():
            problems.append(Problem(str(d), None, None, "incomplete: a build was interrupted"))
    meta = _meta(d, problems)
    packets, seen = _packets(d, meta, problems)
    levels = _levels(d, packets, seen, meta, problems)
    aux = _aux(d, seen, problems)
    if problems:
        return None, problems
    for c in ("n_procs", "treatment_type", "base", "n_cases", "n_trimmed"):
        packets[c] = packets[c].astype(np.int64)
    for c in ("mean_cost_fen", "rw", "score", "cv"):
        packets[c] = packets[c].astype(np.float64)
    levels["n_cases"] = levels["n_cases"].astype(np.int64)
    levels["mean_cost_fen"] = levels["mean_cost_fen"].astype(np.float64)
    for c in ("class_id", "n_cases", "kept"):
        aux[c] = aux[c].astype(np.int64)
    for c in ("mean_cost_fen", "coefficient", "cv_before", "cv_after"):
        aux[c] = aux[c].astype(np.float64)
    rep = (d / REPORT).read_text(encoding="utf-8") if (d / REPORT).exists() else ""
    return Catalogue(meta, packets, levels, aux, d, rep), []


def validate_catalogue(path: str | os.PathLike[str], require_manifest: bool = True
                       ) -> list[Problem]:
    """Every problem of a catalogue folder (empty list = valid), ``file:line: column: msg``."""
    return _load(Path(path), require_manifest)[1]


def read_catalogue(path: str | os.PathLike[str]) -> Catalogue:
    """Read a catalogue folder, validated first (:class:`CatalogueError` lists every problem)."""
    cat, problems = _load(Path(path), True)
    if problems or cat is None:
        raise CatalogueError(problems)
    return cat
