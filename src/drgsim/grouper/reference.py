"""A slow, obvious grouper: section 4 of the scheme README, line by line, over strings.

It reads the validated tables directly (no compiled arrays) and is used by tests and
benchmarks as the reference the numba kernel must agree with. It also returns the
decision trail, which ``explain`` builds on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from drgsim.scheme.tables import SchemeTables

_INT = re.compile(r"\s*(-?[0-9]+)(\.0+)?\s*\Z")


def parse_int(value) -> int | None:
    """Scheme README section 3: an integer literal (or N.0) is that integer, else absent."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and value not in (float("inf"), float("-inf")) \
            and value.is_integer() else None
    m = _INT.match(str(value))
    return int(m.group(1)) if m else None


def split_codes(value, keep_empty_field: bool) -> list[str]:
    """Split a code field on ``|`` and ``,``, keeping empty pieces."""
    text = "" if value is None else str(value)
    if text == "" and not keep_empty_field:
        return []
    return text.replace(",", "|").split("|")


@dataclass
class Result:
    mdc: str = ""
    adrg: str = ""
    drg: str = "0000"
    status: str = "ungroupable"
    trail: list[str] = field(default_factory=list)


class ReferenceGrouper:
    """The README algorithm over string tables, one record at a time."""

    def __init__(self, st: SchemeTables):
        t = st.tables
        rows = lambda f: [dict(zip(t[f].columns, vals)) for vals in zip(*t[f].columns.values())] \
            if t[f].columns else []  # noqa: E731
        self.mdcs = sorted(rows("mdc.csv"), key=lambda r: int(r["order"]))
        self.mdc_list: dict[str, dict[str, str]] = {}
        for r in rows("mdc_principal_dx.csv"):
            self.mdc_list.setdefault(r["mdc"], {})[r["code"]] = r.get("trauma_region", "")
        self.rules: dict[str, list[dict[str, str]]] = {}
        for r in rows("adrg.csv"):
            self.rules.setdefault(r["mdc"], []).append(r)
        for rs in self.rules.values():
            rs.sort(key=lambda r: int(r["order"]))
        self.lists: dict[tuple[str, str], dict[str, str]] = {}
        for r in rows("adrg_codes.csv"):
            self.lists.setdefault((r["rule_id"], r["list"]), {})[r["code"]] = r.get("proc_group", "")
        self.drgs: dict[str, list[dict[str, str]]] = {}
        for r in rows("drg.csv"):
            self.drgs.setdefault(r["adrg"], []).append(r)
        for ds in self.drgs.values():
            ds.sort(key=lambda r: int(r["order"]))
        self.cc = {r["code"]: (r["level"], r.get("exclusion_table", "")) for r in rows("cc.csv")}
        self.excl = {r["code"]: r["exclusion_table"] for r in rows("cc_exclusion.csv")}
        self.or_proc = set(t["or_procedure.csv"].get("code"))
        self.dx_map = dict(zip(t["dx_map.csv"].get("code"), t["dx_map.csv"].get("target"))) \
            if "dx_map.csv" in t else {}
        self.px_map = dict(zip(t["proc_map.csv"].get("code"), t["proc_map.csv"].get("target"))) \
            if "proc_map.csv" in t else {}

    # -- helpers
    @staticmethod
    def _bound(v: int | None, lo: str, hi: str) -> bool:
        if not lo and not hi:
            return True
        if v is None:
            return False
        return (not lo or v >= int(lo)) and (not hi or v <= int(hi))

    def effective(self, level: str, dx: list[str]) -> bool:
        t0 = self.excl.get(dx[0]) if dx else None
        for x in dx[1:]:
            lv = self.cc.get(x)
            if lv and lv[0] == level and not (t0 is not None and lv[1] == t0):
                return True
        return False

    @staticmethod
    def _translate(mapping: dict[str, str], lst: list[str]) -> None:
        for i in range(len(lst)):
            x = lst[i]
            t = mapping[x]
            if t != x:
                lst[lst.index(x)] = t

    def _dx_test(self, how: str, codes: dict[str, str], dx: list[str]) -> bool:
        if how == "principal":
            return bool(dx) and dx[0] in codes
        if how == "any":
            return any(x in codes for x in dx)
        return any(x in codes for x in dx[1:])  # secondary

    def _rule_matches(self, r: dict[str, str], rec: dict, dx: list[str], px: list[str]) -> str:
        """'' when the rule matches, else the first condition that failed."""
        rid = r["rule_id"]
        for col, lst in (("dx_match", "dx"), ("dx2_match", "dx2")):
            how = r.get(col, "")
            if how and not self._dx_test(how, self.lists.get((rid, lst), {}), dx):
                return f"{col}={how}"
        for col, lst in (("proc_match", "proc"), ("proc2_match", "proc2")):
            how = r.get(col, "")
            codes = self.lists.get((rid, lst), {})
            if how == "main" and not (px and px[0] in codes):
                return f"{col}=main"
            if how == "any" and not any(p in codes for p in px):
                return f"{col}=any"
        how = r.get("or_proc", "")
        if how == "main" and not (px and px[0] in self.or_proc):
            return "or_proc=main"
        if how == "any" and not any(p in self.or_proc for p in px):
            return "or_proc=any"
        if how == "none" and any(p in self.or_proc for p in px):
            return "or_proc=none"
        if r.get("has_proc") == "1" and not px:
            return "has_proc"
        expr = r.get("proc_groups", "")
        if expr:
            codes = self.lists.get((rid, "proc"), {})
            got = {codes[p] for p in px if p in codes and codes[p]}
            if not any(set(conj.split("&")) <= got for conj in expr.split("|")):
                return f"proc_groups={expr}"
        if r.get("age_days_required") == "1" and rec["age_days"] is None:
            return "age_days_required"
        if r.get("weight_required") == "1" and not rec["birth_weight_g"]:
            return "weight_required"
        for f, key in (("age_days", "age_days"), ("weight_g", "birth_weight_g"),
                       ("age_years", "age_years"), ("los_days", "los_days")):
            if not self._bound(rec[key], r.get(f + "_min", ""), r.get(f + "_max", "")):
                return f"{f} bounds"
        return ""

    def _mdc_enters(self, m: dict[str, str], rec: dict, dx: list[str], px: list[str]) -> str:
        lst = self.mdc_list.get(m["mdc"], {})
        how = m.get("dx_match", "")
        if how == "principal" and not (dx and dx[0] in lst):
            return "principal not in list"
        if how == "any" and not any(x in lst for x in dx):
            return "no diagnosis in list"
        if m.get("main_proc_or") == "1" and not (px and px[0] in self.or_proc):
            return "main procedure not OR"
        if m.get("sex") and rec["sex"] != int(m["sex"]):
            return f"sex != {m['sex']}"
        if not self._bound(rec["age_years"], m.get("age_years_min", ""), m.get("age_years_max", "")):
            return "age_years bounds"
        k = m.get("min_trauma_regions", "")
        if k:
            regions = {lst[x] for x in set(dx) if x in lst and lst[x]}
            if len(regions) < int(k):
                return f"{len(regions)} trauma region(s) < {k}"
        return ""

    def record_checks(self, rec: dict, dx: list[str], px: list[str],
                      translate: bool) -> tuple[str, str]:
        """README 4.1 translation (dx/px in place) and 4.2 checks: (status, trail line).

        Shared by every method that groups records (DRG here, DIP in drgsim.dip)."""
        if translate:
            if any(x not in self.dx_map for x in dx):
                return "dx_not_mappable", ""
            if any(p not in self.px_map for p in px):
                return "proc_not_mappable", ""
            self._translate(self.dx_map, dx)
            self._translate(self.px_map, px)
        checks = (
            (rec["sex"] not in (1, 2), "check 1: sex not 1 or 2"),
            (rec["age_years"] is None, "check 2: age_years absent"),
            (rec["age_years"] == 0 and rec["age_days"] is None, "check 3: age 0 without age_days"),
            (rec["age_years"] == 0 and rec["age_days"] is not None and rec["age_days"] <= 28
             and rec["birth_weight_g"] is None, "check 4: newborn without birth weight"),
            (not dx, "check 5: no diagnosis"),
        )
        for failed, why in checks:
            if failed:
                return "check_failed", why
        return "ok", (f"translated: DX={dx} PX={px}" if translate else "")

    def group(self, record: dict, translate: bool = False) -> Result:
        """Group one record given as a dict of raw field values."""
        res = Result()
        rec = {f: parse_int(record.get(f)) for f in
               ("sex", "age_years", "age_days", "birth_weight_g", "los_days")}
        dx = split_codes(record.get("diagnoses"), keep_empty_field=translate)
        px = split_codes(record.get("procedures"), keep_empty_field=False)
        status, why = self.record_checks(rec, dx, px, translate)
        if why:
            res.trail.append(why)
        if status != "ok":
            res.status = status
            return res
        for m in self.mdcs:
            why = self._mdc_enters(m, rec, dx, px)
            if why:
                res.trail.append(f"{m['label']}: skipped ({why})")
                continue
            res.trail.append(f"{m['label']}: entered")
            for r in self.rules.get(m["mdc"], []):
                why = self._rule_matches(r, rec, dx, px)
                if why:
                    continue
                res.trail.append(f"  rule {r['rule_id']} matched")
                res.mdc, res.adrg, res.status = m["label"], r["adrg"], "ok"
                for d in self.drgs.get(r["adrg"], []):
                    rule = d.get("cc_rule", "")
                    ok = (
                        (rule == "mcc" and self.effective("MCC", dx))
                        or (rule == "cc" and self.effective("CC", dx))
                        or (rule == "mcc_or_cc" and (self.effective("MCC", dx)
                                                     or self.effective("CC", dx)))
                        or rule == ""
                    )
                    ok = ok and self._bound(len(dx), d.get("min_dx_count", ""), "")
                    ok = ok and self._bound(rec["age_years"], d.get("age_years_min", ""),
                                            d.get("age_years_max", ""))
                    ok = ok and self._bound(rec["los_days"], d.get("los_days_min", ""),
                                            d.get("los_days_max", ""))
                    if ok:
                        res.drg = d["drg"]
                        return res
                res.drg = r["adrg"]
                res.trail.append("  no DRG matched: the ADRG code is the DRG")
                return res
            if m.get("qy_enabled") == "1" and any(p in self.or_proc for p in px):
                res.mdc, res.adrg, res.drg, res.status = m["label"], "", m["mdc"] + "QY", "ambiguous_qy"
                return res
            res.trail.append(f"{m['label']}: no ADRG rule matched, falling through")
        return res
