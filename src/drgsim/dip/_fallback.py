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
