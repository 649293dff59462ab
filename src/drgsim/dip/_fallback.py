"""Private stand-ins for dip/keys.py and dip/tables.py (owned by dip-catalogue).

Written by dip-match so matching runs before those modules exist; ``drgsim.dip.match``
imports the real ones first and uses these only when they are absent. The lead deletes
this file once dip/keys.py and dip/tables.py are merged.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from drgsim.errors import Problem, ValidationError

LEVEL_CHARS = {"subcategory": 5, "category": 3}


def dx_key(code: str, level: str = "subcategory") -> str:
    """Packet diagnosis key: the part before ``+`` (dagger–asterisk), first 5 (or 3) chars."""
    if level not in LEVEL_CHARS:
        raise ValidationError([Problem("catalogue.csv", None, "dx_level",
                                       f"{level!r}: expected subcategory or category")])
    return str(code).split("+", 1)[0][: LEVEL_CHARS[level]]


_CHAPTERS = (  # ICD-10 chapters by the first three characters (WHO ICD-10, 2019)
    ("A00", "B99", 1), ("C00", "D48", 2), ("D50", "D89", 3), ("E00", "E90", 4),
    ("F00", "F99", 5), ("G00", "G99", 6), ("H00", "H59", 7), ("H60", "H95", 8),
    ("I00", "I99", 9), ("J00", "J99", 10), ("K00", "K93", 11), ("L00", "L99", 12),
    ("M00", "M99", 13), ("N00", "N99", 14), ("O00", "O99", 15), ("P00", "P96", 16),
    ("Q00", "Q99", 17), ("R00", "R99", 18), ("S00", "T98", 19), ("V01", "Y98", 20),
    ("Z00", "Z99", 21), ("U00", "U99", 22),
)


def chapters(keys: Any) -> Any:
    """ICD-10 chapter labels ``CH01``..``CH22`` of keys (``CH00`` outside every chapter)."""
    import numpy as np

    out = []
    for k in keys:
        k3 = str(k)[:3]
        out.append(next((f"CH{ch:02d}" for lo, hi, ch in _CHAPTERS
                         if lo <= k3 <= hi + "\uffff"), "CH00"))
    return np.asarray(out, dtype=object)


def code_types(codes: Any, scheme: Any = None) -> tuple[Any, Any]:
    """Ranks of codes outside the scheme's dictionary: ICD-9-CM-3 87-91 diagnostic, any
    other code therapeutic (the builder's "no rule matched")."""
    import numpy as np

    t = np.asarray([1 if str(c)[:2] in ("87", "88", "89", "90", "91") else 2 for c in codes],
                   dtype=np.int8)
    return t, np.zeros(len(t), bool)


def treatment_types(scheme: Any) -> dict[str, int]:
    """Minimal treatment ranks: the scheme's OR list = surgery (3), ICD-9-CM-3 chapters
    87-91 diagnostic (1), any other procedure code of the scheme therapeutic (2)."""
    from drgsim.grouper.core import load_scheme
    from drgsim.scheme.tables import load_tables

    cs = load_scheme(scheme)
    st = load_tables(str(cs.path)) if getattr(cs, "path", None) else None
    out: dict[str, int] = {}
    if st is not None and "icd9.csv" in st.tables:
        for c in st.tables["icd9.csv"].get("code"):
            out[c] = 1 if c[:2] in ("87", "88", "89", "90", "91") else 2
    if st is not None:
        for c in st.tables["or_procedure.csv"].get("code"):
            out[c] = 3
    return out


@dataclass
class Catalogue:
    """The catalogue folder's tables (see DIP_CONTRACT.md)."""

    meta: dict[str, str]
    packets: pd.DataFrame
    levels: pd.DataFrame = field(default_factory=pd.DataFrame)
    aux: pd.DataFrame = field(default_factory=pd.DataFrame)
    path: Path | None = None


_PACKET_COLS = ("packet", "kind", "dx_key", "procs", "treatment_type", "base", "mean_cost_fen")


def read_catalogue(folder: str | Path) -> Catalogue:
    """Read catalogue.csv and packets.csv (aux.csv, levels.csv when present); one-line errors."""
    d = Path(folder)
    if not (d / "packets.csv").is_file():
        raise ValidationError([Problem(str(d), None, None,
                                       "not a DIP catalogue folder (no packets.csv)")])
    meta: dict[str, str] = {}
    if (d / "catalogue.csv").is_file():
        with (d / "catalogue.csv").open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                meta[str(row.get("key", ""))] = str(row.get("value", ""))
    packets = pd.read_csv(d / "packets.csv", dtype=str, keep_default_na=False)
    missing = [c for c in _PACKET_COLS if c not in packets.columns]
    if missing:
        raise ValidationError([Problem(str(d / "packets.csv"), 1, missing[0], "column missing")])
    for c in ("treatment_type", "base"):
        packets[c] = pd.to_numeric(packets[c], errors="coerce")
    packets["mean_cost_fen"] = pd.to_numeric(packets["mean_cost_fen"], errors="coerce")
    for c in ("treatment_type", "base", "mean_cost_fen"):
        bad = packets[c].isna()
        if bad.any():
            line = int(bad.to_numpy().argmax()) + 2
            raise ValidationError([Problem(str(d / "packets.csv"), line, c, "not a number")])
    opt = {}
    for name in ("levels", "aux"):
        p = d / f"{name}.csv"
        opt[name] = pd.read_csv(p, dtype=str, keep_default_na=False) if p.is_file() else pd.DataFrame()
    return Catalogue(meta, packets, opt["levels"], opt["aux"], d)
