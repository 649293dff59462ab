"""Agreement between our groups and the groups a hospital submitted with its records.

The check a medical-insurance bureau runs on hospital-submitted DRGs: the share of
records where both agree, the most frequent disagreements (their DRG -> ours, with the
records' count and cost) and the same per hospital.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from drgsim.errors import MissingColumnError

COST_COLUMNS = ("total_cost", "cost", "住院总费用", "总费用", "医疗费总额")


@dataclass
class Agreement:
    """The result of :func:`compare_groups`."""

    column: str
    ours: str
    rows: int
    equal: int
    moves: pd.DataFrame  # theirs, ours, records, cost, share (of all rows), disagreements only
    by_hospital: pd.DataFrame | None = None
    cost_column: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def share_equal(self) -> float:
        return self.equal / self.rows if self.rows else 0.0

    def to_dict(self, top: int = 20) -> dict[str, Any]:
        """Plain data (JSON-ready) for programs."""
        return {
            "column": self.column, "ours": self.ours, "rows": self.rows, "equal": self.equal,
            "share_equal": self.share_equal, "cost_column": self.cost_column,
            "top_disagreements": json.loads(self.moves.head(top).to_json(orient="records",
                                                                       force_ascii=False)),
            "by_hospital": None if self.by_hospital is None else json.loads(
                self.by_hospital.to_json(orient="records", force_ascii=False)),
        }

    def text(self, top: int = 10) -> str:
        """A readable report for a terminal or a text file."""
        lines = [f"agreement of {self.ours} with {self.column}: {self.equal:,} of {self.rows:,} "
                 f"records equal ({self.share_equal:.2%})"]
        if len(self.moves):
            cost = self.cost_column is not None
            lines.append(f"top disagreements (theirs -> ours){', cost from ' + self.cost_column if cost else ''}:")
            lines.append(f"  {'theirs':<8} {'ours':<8} {'records':>9} {'share':>7}"
                         + (f" {'cost':>14}" if cost else ""))
            for r in self.moves.head(top).itertuples(index=False):
                lines.append(f"  {r.theirs:<8} {r.ours:<8} {r.records:>9,} {r.share:>7.2%}"
                             + (f" {r.cost:>14,.2f}" if cost else ""))
        if self.by_hospital is not None and len(self.by_hospital):
            lines.append("by hospital:")
            lines.append(f"  {'hospital':<14} {'records':>9} {'equal':>9} {'share':>7}  top disagreement")
            for r in self.by_hospital.itertuples(index=False):
                lines.append(f"  {str(r.hospital):<14} {r.records:>9,} {r.equal:>9,} "
                             f"{r.share_equal:>7.2%}  {r.top_disagreement}")
        lines.extend(self.notes)
        return "\n".join(lines)


def resolve_column(columns: list[str], column: str) -> str:
    """The hospital's group column: ``input_<name>`` when it collided with our output."""
    if f"input_{column}" in columns:
        return f"input_{column}"
    if column in columns and column not in ("mdc", "adrg", "drg", "status"):
        return column
    raise MissingColumnError(f"--compare {column}: no column {column!r} (or input_{column}) in "
                             f"the grouped records (columns: {', '.join(columns)})")


def compare_groups(df: pd.DataFrame, column: str, ours: str | None = None,
                   hospital: str | None = "hospital_id", cost: str | None = None) -> Agreement:
    """Compare a hospital-submitted group column with ours (``drg`` unless ``ours`` given).

    ``column`` may name the input column as it was before grouping (``drg``): a column
    that collided with our outputs is read from ``input_drg``. ``ours`` defaults to the
    output of the same name (``mdc``/``adrg``/``drg``), else ``drg``.
    """
    cols = [str(c) for c in df.columns]
    theirs_col = resolve_column(cols, column)
    base = column.removeprefix("input_")
    ours = ours or (base if base in ("mdc", "adrg", "drg") else "drg")
    theirs = df[theirs_col].fillna("").astype(str).str.strip()
    mine = df[ours].fillna("").astype(str)
    eq = theirs.to_numpy(dtype=object) == mine.to_numpy(dtype=object)
    cost_col = cost or next((c for c in COST_COLUMNS if c in cols), None)
    costs = pd.to_numeric(df[cost_col], errors="coerce").fillna(0.0) if cost_col else None
    d = pd.DataFrame({"theirs": theirs.replace("", "(blank)"), "ours": mine.replace("", "(blank)")})
    d["cost"] = costs.values if costs is not None else 0.0
    dis = d[~eq]
    moves = (dis.groupby(["theirs", "ours"], sort=False)
             .agg(records=("cost", "size"), cost=("cost", "sum")).reset_index()
             .sort_values(["records", "cost", "theirs", "ours"],
                          ascending=[False, False, True, True], ignore_index=True))
    moves["share"] = moves["records"] / len(d) if len(d) else 0.0
    by_h = None
    if hospital and hospital in cols:
        h = df[hospital].fillna("").astype(str).values
        g = pd.DataFrame({"hospital": h, "equal": eq})
        by_h = g.groupby("hospital").agg(records=("equal", "size"), equal=("equal", "sum"))
        by_h["share_equal"] = by_h["equal"] / by_h["records"]
        top = (pd.DataFrame({"hospital": h[~eq], "move": (dis["theirs"] + " -> " + dis["ours"]).values})
               .groupby(["hospital", "move"]).size().reset_index(name="n")
               .sort_values(["hospital", "n", "move"], ascending=[True, False, True])
               .drop_duplicates("hospital").set_index("hospital"))
        by_h["top_disagreement"] = [f"{top.loc[x, 'move']} ({top.loc[x, 'n']})" if x in top.index
                                    else "" for x in by_h.index]
        by_h = by_h.reset_index().astype({"equal": int})
    return Agreement(column=theirs_col, ours=ours, rows=len(d), equal=int(eq.sum()),
                     moves=moves, by_hospital=by_h, cost_column=cost_col)
