"""What two schemes' tables differ in, and how many records change group because of it.

A city comparing its localisation with the national scheme wants the differences as
rules, not as a byte diff: MDCs, ADRGs and DRGs added, removed or changed (conditions,
order, number of rules), code lists grown or shrunk, CC/MCC and exclusion changes. Every
difference is one row of a table (``SchemeDiff.table()``); ``text()`` is the readable
report with the structural highlights first.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from drgsim.scheme.paths import resolve_scheme_dir
from drgsim.scheme.tables import SchemeTables, Table, load_tables

_RULE_COLS = ["dx_match", "dx2_match", "proc_match", "proc2_match", "or_proc", "proc_groups",
              "has_proc", "age_days_required", "age_days_min", "age_days_max", "weight_required",
              "weight_g_min", "weight_g_max", "age_years_min", "age_years_max", "los_days_min",
              "los_days_max"]
_BOUND_COLS = ("age_years_min", "age_years_max", "los_days_min", "los_days_max", "min_dx_count")


@dataclass(frozen=True)
class Change:
    """One difference: area (table), key, kind (added/removed/changed) and a detail."""

    area: str
    key: str
    change: str
    detail: str


@dataclass
class SchemeDiff:
    """All differences between scheme A and scheme B (B relative to A)."""

    a: str
    b: str
    changes: list[Change] = field(default_factory=list)
    highlights: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([c.__dict__ for c in self.changes],
                            columns=["area", "key", "change", "detail"])

    def counts(self) -> pd.DataFrame:
        t = self.table()
        if t.empty:
            return pd.DataFrame(columns=["area", "added", "removed", "changed"])
        c = t.groupby(["area", "change"]).size().unstack(fill_value=0)
        for k in ("added", "removed", "changed"):
            if k not in c:
                c[k] = 0
        return c[["added", "removed", "changed"]].reset_index()

    def text(self, per_area: int = 15) -> str:
        lines = [f"scheme diff: {self.a} -> {self.b}"]
        if not self.changes:
            lines.append("  the tables are identical in every rule")
            return "\n".join(lines)
        lines.append("highlights:")
        lines += [f"  - {h}" for h in self.highlights] or ["  (none)"]
        lines.append("changes by area (added / removed / changed):")
        for r in self.counts().itertuples(index=False):
            lines.append(f"  {r.area:<18} {r.added:>7,} {r.removed:>7,} {r.changed:>7,}")
        t = self.table()
        for area, g in t.groupby("area", sort=False):
            lines.append(f"{area}:")
            for r in g.head(per_area).itertuples(index=False):
                lines.append(f"  {r.change:<8} {r.key:<14} {r.detail}")
            if len(g) > per_area:
                lines.append(f"  ... and {len(g) - per_area:,} more (see the table)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "highlights": self.highlights,
                "changes": [c.__dict__ for c in self.changes]}


def _rows(t: Table) -> list[dict[str, str]]:
    cols = list(t.columns)
    return [dict(zip(cols, vals)) for vals in zip(*(t.columns[c] for c in cols))] if cols else []


def _tables(x: str | os.PathLike[str] | SchemeTables) -> SchemeTables:
    return x if isinstance(x, SchemeTables) else load_tables(resolve_scheme_dir(x))


def _fmt(d: dict[str, str], cols: list[str]) -> str:
    return ", ".join(f"{c}={d.get(c, '')!r}" for c in cols if d.get(c, ""))


def _row_changes(ra: dict[str, str], rb: dict[str, str], skip: set[str]) -> list[str]:
    keys = [k for k in dict.fromkeys([*ra, *rb]) if k not in skip]
    return [f"{k}: {ra.get(k, '') or '∅'} -> {rb.get(k, '') or '∅'}"
            for k in keys if ra.get(k, "") != rb.get(k, "")]


def _set_change(area: str, key: str, a: set[str], b: set[str], out: list[Change],
                sample: int = 5) -> None:
    add, rem = sorted(b - a), sorted(a - b)
    if not add and not rem:
        return
    parts = []
    if add:
        parts.append(f"+{len(add)} ({', '.join(add[:sample])}{', ...' if len(add) > sample else ''})")
    if rem:
        parts.append(f"-{len(rem)} ({', '.join(rem[:sample])}{', ...' if len(rem) > sample else ''})")
    kind = "added" if not rem and not a else "removed" if not add and not b else "changed"
    out.append(Change(area, key, kind, f"{len(a):,} -> {len(b):,} codes: " + " ".join(parts)))


def diff_schemes(a: str | os.PathLike[str] | SchemeTables,
                 b: str | os.PathLike[str] | SchemeTables) -> SchemeDiff:
    """Compare two schemes' tables rule by rule (B relative to A)."""
    ta, tb = _tables(a), _tables(b)
    out: list[Change] = []
    hl: list[str] = []
    d = SchemeDiff(f"{ta.name} {ta.version} ({ta.path.name})", f"{tb.name} {tb.version} ({tb.path.name})",
                   out, hl)

    # scheme.csv
    for k in sorted(set(ta.meta) | set(tb.meta)):
        if k.startswith("source_") or k == "licence":
            continue
        if ta.meta.get(k, "") != tb.meta.get(k, ""):
            out.append(Change("scheme", k, "changed", f"{ta.meta.get(k, '')!r} -> {tb.meta.get(k, '')!r}"))

    # mdc.csv
    ma = {r["mdc"]: r for r in _rows(ta["mdc.csv"])}
    mb = {r["mdc"]: r for r in _rows(tb["mdc.csv"])}
    for k in sorted(set(ma) | set(mb)):
        if k not in mb:
            out.append(Change("mdc", f"MDC{k}", "removed", ma[k].get("name_zh", "")))
        elif k not in ma:
            out.append(Change("mdc", f"MDC{k}", "added", mb[k].get("name_zh", "")))
        else:
            ch = _row_changes(ma[k], mb[k], set())
            if ch:
                out.append(Change("mdc", f"MDC{k}", "changed", "; ".join(ch)))
    qy = [f"MDC{k}" for k, r in mb.items() if r.get("qy_enabled") == "1" and ma.get(k, {}).get("qy_enabled") != "1"]
    if qy:
        hl.append(f"QY enabled in {', '.join(qy)}")

    # mdc_principal_dx.csv
    def mdc_lists(t: SchemeTables) -> dict[str, set[str]]:
        res: dict[str, set[str]] = {}
        for m, c in zip(t["mdc_principal_dx.csv"].get("mdc"), t["mdc_principal_dx.csv"].get("code")):
            res.setdefault(m, set()).add(c)
        return res

    la, lb = mdc_lists(ta), mdc_lists(tb)
    for k in sorted(set(la) | set(lb)):
        _set_change("mdc_dx_list", f"MDC{k}", la.get(k, set()), lb.get(k, set()), out)

    # adrg.csv: by ADRG, rules in order
    def adrgs(t: SchemeTables) -> dict[str, list[dict[str, str]]]:
        res: dict[str, list[dict[str, str]]] = {}
        for r in _rows(t["adrg.csv"]):
            res.setdefault(r["adrg"], []).append(r)
        for rs in res.values():
            rs.sort(key=lambda r: int(r["order"]))
        return res

    aa, ab = adrgs(ta), adrgs(tb)
    multi = []
    for k in sorted(set(aa) | set(ab)):
        if k not in ab:
            out.append(Change("adrg", k, "removed", aa[k][0].get("name_zh", "")))
            continue
        if k not in aa:
            out.append(Change("adrg", k, "added", f"{ab[k][0].get('name_zh', '')}; "
                                                  f"{len(ab[k])} rule(s)"))
            continue
        ra, rb = aa[k], ab[k]
        if len(ra) != len(rb):
            ids = ", ".join(f"{r['rule_id']}@{r['order']}" for r in rb)
            out.append(Change("adrg", k, "changed", f"rules: {len(ra)} -> {len(rb)} ({ids})"))
            if len(rb) > 1:
                multi.append(f"{k} ({len(rb)} rules)")
        for i in range(max(len(ra), len(rb))):
            x = ra[i] if i < len(ra) else None
            y = rb[i] if i < len(rb) else None
            if y is None:
                out.append(Change("adrg", x["rule_id"], "removed", "rule: " + _fmt(x, _RULE_COLS)))
                continue
            if x is None:
                out.append(Change("adrg", y["rule_id"], "added",
                                  f"rule at order {y['order']}: " + _fmt(y, _RULE_COLS)))
                continue
            ch = _row_changes(x, y, {"rule_id", "kind"})
            if ch:
                out.append(Change("adrg", y["rule_id"] if len(rb) > 1 else k, "changed", "; ".join(ch)))
    if multi:
        hl.append("several rules per ADRG: " + ", ".join(multi))
    sec = sorted({r["rule_id"] for rs in ab.values() for r in rs if r.get("dx2_match") == "secondary"}
                 - {r["rule_id"] for rs in aa.values() for r in rs if r.get("dx2_match") == "secondary"})
    if sec:
        hl.append(f"secondary-diagnosis lists (dx2_match=secondary) in {len(sec)} rule(s): "
                  f"{', '.join(sec[:12])}{', ...' if len(sec) > 12 else ''}")
    newcols = [c for c in tb["adrg.csv"].columns if c not in ta["adrg.csv"].columns]
    if newcols:
        hl.append(f"adrg.csv has new condition columns: {', '.join(newcols)}")

    # adrg_codes.csv: by ADRG and list (union over an ADRG's rules)
    def code_lists(t: SchemeTables, rule_adrg: dict[str, str]) -> dict[tuple[str, str], set[str]]:
        res: dict[tuple[str, str], set[str]] = {}
        c = t["adrg_codes.csv"]
        for rid, lst, code in zip(c.get("rule_id"), c.get("list"), c.get("code")):
            res.setdefault((rule_adrg.get(rid, rid), lst), set()).add(code)
        return res

    ca = code_lists(ta, {r["rule_id"]: k for k, rs in aa.items() for r in rs})
    cb = code_lists(tb, {r["rule_id"]: k for k, rs in ab.items() for r in rs})
    for key in sorted(set(ca) | set(cb)):
        if key[0] in aa and key[0] in ab:
            _set_change("adrg_codes", f"{key[0]}.{key[1]}", ca.get(key, set()), cb.get(key, set()), out)

    # drg.csv
    da = {r["drg"]: r for r in _rows(ta["drg.csv"])}
    db = {r["drg"]: r for r in _rows(tb["drg.csv"])}
    for k in sorted(set(da) | set(db)):
        if k not in db:
            out.append(Change("drg", k, "removed", da[k].get("name_zh", "")))
        elif k not in da:
            cond = _fmt(db[k], ["cc_rule", *_BOUND_COLS])
            out.append(Change("drg", k, "added", f"{db[k].get('name_zh', '')}"
                                                 + (f" [{cond}]" if cond else "")))
        else:
            ch = _row_changes(da[k], db[k], {"severity"})
            if ch:
                out.append(Change("drg", k, "changed", "; ".join(ch)))
    los = sorted(k for k, r in db.items() if r.get("los_days_min") or r.get("los_days_max"))
    if los:
        hl.append(f"LOS-split DRGs ({len(los)}): {', '.join(los[:15])}{', ...' if len(los) > 15 else ''}")
    age = sorted(k for k, r in db.items() if (r.get("age_years_min") or r.get("age_years_max"))
                 and not (da.get(k, {}).get("age_years_min") or da.get(k, {}).get("age_years_max")))
    if age:
        hl.append(f"age-split DRGs ({len(age)}): {', '.join(age[:15])}{', ...' if len(age) > 15 else ''}")
    by_adrg: dict[str, list[dict[str, str]]] = {}
    for r in db.values():
        by_adrg.setdefault(r["adrg"], []).append(r)
    no_uncond = sorted(k for k, rs in by_adrg.items()
                       if not any(not r.get("cc_rule") and not any(r.get(c) for c in _BOUND_COLS)
                                  for r in rs))
    if no_uncond:
        hl.append(f"ADRGs without an unconditional DRG (a record can get the ADRG code as DRG): "
                  f"{', '.join(no_uncond)}")
    odd = sorted(k for k in set(db) - set(da) if k[3:4] not in ("1", "3", "5", "9") or len(k) != 4)
    if odd:
        hl.append(f"new DRG suffixes beyond 1/3/5/9: {', '.join(odd[:15])}{', ...' if len(odd) > 15 else ''}")

    # cc.csv and cc_exclusion.csv
    cca = {r["code"]: (r["level"], r.get("exclusion_table", "")) for r in _rows(ta["cc.csv"])}
    ccb = {r["code"]: (r["level"], r.get("exclusion_table", "")) for r in _rows(tb["cc.csv"])}
    for k in sorted(set(cca) | set(ccb)):
        if k not in ccb:
            out.append(Change("cc", k, "removed", f"was {cca[k][0]} (table {cca[k][1]})"))
        elif k not in cca:
            out.append(Change("cc", k, "added", f"{ccb[k][0]} (table {ccb[k][1]})"))
        elif cca[k] != ccb[k]:
            out.append(Change("cc", k, "changed", f"{cca[k][0]}/table {cca[k][1]} -> "
                                                  f"{ccb[k][0]}/table {ccb[k][1]}"))
    ea = dict(zip(ta["cc_exclusion.csv"].get("code"), ta["cc_exclusion.csv"].get("exclusion_table")))
    eb = dict(zip(tb["cc_exclusion.csv"].get("code"), tb["cc_exclusion.csv"].get("exclusion_table")))
    for k in sorted(set(ea) | set(eb)):
        if k not in eb:
            out.append(Change("cc_exclusion", k, "removed", f"was table {ea[k]}"))
        elif k not in ea:
            out.append(Change("cc_exclusion", k, "added", f"table {eb[k]}"))
        elif ea[k] != eb[k]:
            out.append(Change("cc_exclusion", k, "changed", f"table {ea[k]} -> {eb[k]}"))

    # code sets
    for file, area in (("or_procedure.csv", "or_procedure"), ("icd10.csv", "icd10"), ("icd9.csv", "icd9")):
        if file in ta and file in tb:
            _set_change(area, file, set(ta[file].get("code")), set(tb[file].get("code")), out)
    return d


@dataclass
class RecordsDiff:
    """How records move between the two schemes' groups."""

    a: str
    b: str
    rows: int
    changed_drg: int
    changed_adrg: int
    changed_status: int
    moves: pd.DataFrame  # drg_a, drg_b, records

    def text(self, top: int = 15) -> str:
        n = self.rows or 1
        lines = [f"records: {self.rows:,} grouped with both schemes",
                 f"  DRG changes for {self.changed_drg:,} ({self.changed_drg / n:.2%}); "
                 f"ADRG for {self.changed_adrg:,} ({self.changed_adrg / n:.2%}); "
                 f"status for {self.changed_status:,} ({self.changed_status / n:.2%})",
                 f"top moves ({self.a} -> {self.b}):"]
        for r in self.moves.head(top).itertuples(index=False):
            lines.append(f"  {r.drg_a:<6} -> {r.drg_b:<6} {r.records:>9,}")
        return "\n".join(lines)


def diff_records(a: str | os.PathLike[str], b: str | os.PathLike[str], records: Any,
                 column_map: Any = None) -> RecordsDiff:
    """Group the same records with both schemes and count the moves."""
    from drgsim.grouper.core import group
    from drgsim.records import read_records

    table = read_records(records, column_map=column_map)
    ga = group(table, a)
    gb = group(table, b)
    da, db = ga.column("drg").to_pylist(), gb.column("drg").to_pylist()
    aa, ab = ga.column("adrg").to_pylist(), gb.column("adrg").to_pylist()
    sa, sb = ga.column("status").to_pylist(), gb.column("status").to_pylist()
    moves = Counter((x, y) for x, y in zip(da, db) if x != y)
    mv = pd.DataFrame([(x, y, c) for (x, y), c in moves.most_common()],
                      columns=["drg_a", "drg_b", "records"])
    return RecordsDiff(str(a), str(b), len(da), sum(x != y for x, y in zip(da, db)),
                       sum(x != y for x, y in zip(aa, ab)), sum(x != y for x, y in zip(sa, sb)), mv)
