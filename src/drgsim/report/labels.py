"""Chinese labels, kinds and meanings of the output columns, read from data files.

``data/report/columns.csv`` maps each column name to its Chinese label, its kind (which
sets the number format) and its meaning; ``data/report/values.csv`` names coded values
(ledger lines, pay statuses). A new column needs one line there; a column not listed
keeps its English name and gets a format from its dtype.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import pandas as pd

KINDS = ("text", "id", "int", "money", "points", "pv", "ratio", "bool")  # id: a number shown bare (year, month)


@dataclass(frozen=True)
class Column:
    """One column as the workbook shows it."""

    name: str  # as in the tables (money in ``*_fen``)
    zh: str  # '' when the column is not in the label file
    kind: str
    meaning_zh: str = ""
    meaning_en: str = ""

    @property
    def shown(self) -> str:
        """The English name in the workbook: money columns are in yuan there."""
        return self.name[:-4] + "_yuan" if self.kind == "money" and self.name.endswith("_fen") else self.name

    @property
    def header(self) -> str:
        """Two-line bilingual header: Chinese label (with unit) over the English name."""
        if not self.zh:
            return self.shown
        unit = "（元）" if self.kind == "money" else "（元/点）" if self.kind == "pv" else ""
        return f"{self.zh}{unit}\n{self.shown}"


def _read(name: str) -> list[dict[str, str]]:
    text = (resources.files("drgsim") / "data" / "report" / name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@lru_cache(maxsize=1)
def column_labels() -> dict[str, Column]:
    """Every labelled column, by name (the label file, validated)."""
    out: dict[str, Column] = {}
    for i, r in enumerate(_read("columns.csv"), start=2):
        if r["kind"] not in KINDS:
            raise ValueError(f"data/report/columns.csv:{i}: kind {r['kind']!r} not in {KINDS}")
        if r["column"] in out:
            raise ValueError(f"data/report/columns.csv:{i}: {r['column']} listed twice")
        out[r["column"]] = Column(r["column"], r["zh"], r["kind"], r["meaning_zh"], r["meaning_en"])
    return out


@lru_cache(maxsize=1)
def value_labels() -> dict[tuple[str, str], tuple[str, str]]:
    """(column, value) -> (Chinese label, meaning) for coded values."""
    return {(r["column"], r["value"]): (r["zh"], r["meaning_zh"]) for r in _read("values.csv")}


def column(name: str, dtype: object | None = None) -> Column:
    """The label of ``name``; an unlisted column keeps its English name, kind from dtype."""
    known = column_labels().get(name)
    if known is not None:
        return known
    if name.endswith("_fen"):
        kind = "money"
    elif dtype is None:
        kind = "text"
    elif pd.api.types.is_bool_dtype(dtype):
        kind = "bool"
    elif pd.api.types.is_integer_dtype(dtype):
        kind = "int"
    elif pd.api.types.is_float_dtype(dtype):
        kind = "ratio"
    else:
        kind = "text"
    return Column(name, "", kind)


__all__ = ["Column", "column", "column_labels", "value_labels"]
