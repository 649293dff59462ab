"""Explain one record: the grouper's decision path, with the tables' Chinese titles.

Built on :class:`drgsim.grouper.reference.ReferenceGrouper` (README section 4 line by
line over the string tables), so every pass/fail here is the reference's own test; this
module adds the evidence (which list and code matched, which condition failed, which
secondaries counted as MCC/CC and which were excluded by which table) and renders it as
text for a terminal or as a dict/JSON for programs. Per record, in Python: for a coder's
question, not for a year of data (use ``drgsim.group`` for that).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from drgsim.errors import DrgsimError, RecordsError
from drgsim.grouper.reference import ReferenceGrouper, parse_int, split_codes
from drgsim.scheme.paths import DEFAULT_SCHEME, resolve_scheme_dir

RECORD_KEYS = ("case_id", "sex", "age_years", "age_days", "birth_weight_g", "dept", "los_days",
               "discharge_mode", "diagnoses", "procedures")


class Explainer(ReferenceGrouper):
    """The reference grouper plus titles and evidence for every decision."""

    def __init__(self, st):
        super().__init__(st)
        t = st.tables
        self.scheme_name = f"{st.name} {st.version}".strip()
        self.folder = str(st.path)
        self.dx_names = dict(zip(t["icd10.csv"].get("code"), t["icd10.csv"].get("name_zh"))) \
            if "icd10.csv" in t else {}
        self.px_names = dict(zip(t["icd9.csv"].get("code"), t["icd9.csv"].get("name_zh"))) \
            if "icd9.csv" in t else {}
        for c, n in zip(t["or_procedure.csv"].get("code"), t["or_procedure.csv"].get("name_zh")):
            self.px_names.setdefault(c, n)
        self.adrg_names: dict[str, str] = {}
        for rs in self.rules.values():
            for r in rs:
                self.adrg_names.setdefault(r["adrg"], r.get("name_zh", ""))
        self.drg_names = {d["drg"]: d.get("name_zh", "") for ds in self.drgs.values() for d in ds}

    # ---------------------------------------------------------------- evidence
    def _hits(self, how: str, codes: dict[str, str], seq: list[str], kind: str) -> list[str]:
        if how in ("principal", "main"):
            return [seq[0]] if seq and seq[0] in codes else []
        if how == "secondary":
            seq = seq[1:]
        return list(dict.fromkeys(x for x in seq if x in codes))

    def _rule_evidence(self, r: dict[str, str], dx: list[str], px: list[str]) -> list[dict]:
        """What made a matched rule match: list, position and code(s)."""
        rid = r["rule_id"]
        ev = []
        for col, lst, seq in (("dx_match", "dx", dx), ("dx2_match", "dx2", dx),
                              ("proc_match", "proc", px), ("proc2_match", "proc2", px)):
            how = r.get(col, "")
            if how:
                ev.append({"test": col, "how": how, "list": lst,
                           "codes": self._hits(how, self.lists.get((rid, lst), {}), seq, lst)})
        how = r.get("or_proc", "")
        if how:
            hits = self._hits(how if how != "none" else "any", dict.fromkeys(self.or_proc), px, "px")
            ev.append({"test": "or_proc", "how": how, "list": "or_procedure.csv", "codes": hits})
        if r.get("proc_groups"):
            codes = self.lists.get((rid, "proc"), {})
            got = sorted({codes[p] for p in px if p in codes and codes[p]})
            ev.append({"test": "proc_groups", "how": r["proc_groups"], "list": "proc",
                       "codes": got})
        for k in ("has_proc", "age_days_required", "weight_required"):
            if r.get(k) == "1":
                ev.append({"test": k, "how": "1", "list": "", "codes": []})
        for f in ("age_days", "weight_g", "age_years", "los_days"):
            lo, hi = r.get(f + "_min", ""), r.get(f + "_max", "")
            if lo or hi:
                ev.append({"test": f"{f} bounds", "how": f"{lo or '-inf'}..{hi or 'inf'}",
                           "list": "", "codes": []})
        if not ev:
            ev.append({"test": "none", "how": "no condition (always matches)", "list": "",
                       "codes": []})
        return ev

    def _fail_text(self, why: str, r: dict[str, str], dx: list[str], px: list[str]) -> str:
        col, _, how = why.partition("=")
        pdx = dx[0] if dx else "(none)"
        main = px[0] if px else "(none)"
        lst = {"dx_match": "dx", "dx2_match": "dx2", "proc_match": "proc",
               "proc2_match": "proc2"}.get(col)
        if lst:
            where = {"principal": f"principal {pdx}", "any": "no diagnosis",
                     "secondary": "no secondary diagnosis", "main": f"main procedure {main}"}
            if col.startswith("proc") and how == "any":
                return f"no procedure in list {lst}"
            w = where.get(how, how)
            return f"{w} not in list {lst}" if how in ("principal", "main") else f"{w} in list {lst}"
        if col == "or_proc":
            return {"main": f"main procedure {main} not in or_procedure.csv",
                    "any": "no procedure in or_procedure.csv",
                    "none": "a procedure is in or_procedure.csv (rule needs none)"}[how]
        if col == "has_proc":
            return "no procedure"
        if col == "proc_groups":
            return f"procedure groups do not satisfy {how}"
        if col == "age_days_required":
            return "age_days absent"
        if col == "weight_required":
            return "birth_weight_g absent or 0"
        return why

    def _cc_detail(self, dx: list[str]) -> dict[str, Any]:
        t0 = self.excl.get(dx[0]) if dx else None
        items = []
        for i, x in enumerate(dx[1:], start=1):
            lv = self.cc.get(x)
            item = {"position": i, "code": x, "name": self.dx_names.get(x, ""),
                    "level": lv[0] if lv else "", "table": lv[1] if lv else "",
                    "counted": False, "excluded_by": ""}
            if lv:
                if t0 is not None and lv[1] == t0:
                    item["excluded_by"] = (f"exclusion table {t0} of principal {dx[0]} "
                                           f"(cc_exclusion.csv)")
                else:
                    item["counted"] = True
            items.append(item)
        return {"principal": dx[0] if dx else "", "principal_table": t0 or "",
                "secondaries": items,
                "effective_mcc": self.effective("MCC", dx), "effective_cc": self.effective("CC", dx)}

    # ---------------------------------------------------------------- the walk
    def explain(self, record: dict, translate: bool = False) -> dict[str, Any]:
        """The decision path of one record as plain data (see :class:`Explanation`)."""
        rec = {f: parse_int(record.get(f)) for f in
               ("sex", "age_years", "age_days", "birth_weight_g", "los_days")}
        dx = split_codes(record.get("diagnoses"), keep_empty_field=translate)
        px = split_codes(record.get("procedures"), keep_empty_field=False)
        out: dict[str, Any] = {
            "case_id": "" if record.get("case_id") is None else str(record.get("case_id")),
            "scheme": self.scheme_name, "translate": translate,
            "fields": rec,
            "diagnoses": [{"code": x, "name": self.dx_names.get(x, "")} for x in dx],
            "procedures": [{"code": p, "name": self.px_names.get(p, "")} for p in px],
            "translation": None, "checks": [], "mdcs": [], "drgs": [], "cc": None,
            "result": {"mdc": "", "adrg": "", "drg": "0000", "status": "ungroupable"},
        }
        res = out["result"]
        if translate:
            bad = next((x for x in dx if x not in self.dx_map), None)
            if bad is not None:
                out["translation"] = {"unmappable": bad, "field": "diagnoses"}
                res["status"] = "dx_not_mappable"
                return self._finish(out)
            bad = next((p for p in px if p not in self.px_map), None)
            if bad is not None:
                out["translation"] = {"unmappable": bad, "field": "procedures"}
                res["status"] = "proc_not_mappable"
                return self._finish(out)
            before_dx, before_px = list(dx), list(px)
            self._translate(self.dx_map, dx)
            self._translate(self.px_map, px)
            out["translation"] = {"diagnoses": [[a, b] for a, b in zip(before_dx, dx) if a != b],
                                  "procedures": [[a, b] for a, b in zip(before_px, px) if a != b],
                                  "dx": list(dx), "px": list(px)}
        checks = (
            (1, "sex is 1 or 2", rec["sex"] in (1, 2)),
            (2, "age_years present", rec["age_years"] is not None),
            (3, "age_years 0 needs age_days", not (rec["age_years"] == 0 and rec["age_days"] is None)),
            (4, "newborn (age 0, age_days <= 28) needs birth_weight_g",
             not (rec["age_years"] == 0 and rec["age_days"] is not None and rec["age_days"] <= 28
                  and rec["birth_weight_g"] is None)),
            (5, "some diagnosis", bool(dx)),
        )
        for n, text, ok in checks:
            out["checks"].append({"check": n, "rule": text, "passed": ok})
            if not ok:
                res["status"] = "check_failed"
                return self._finish(out)
        out["cc"] = self._cc_detail(dx)
        for m in self.mdcs:
            step = {"mdc": m["label"], "name": m.get("name_zh", ""), "entered": False,
                    "why": "", "rules": [], "outcome": ""}
            out["mdcs"].append(step)
            why = self._mdc_enters(m, rec, dx, px)
            if why:
                step["why"] = self._mdc_why(why, m, dx, px)
                step["outcome"] = "skipped"
                continue
            step["entered"] = True
            step["why"] = self._mdc_entry_text(m, dx, px)
            for r in self.rules.get(m["mdc"], []):
                why = self._rule_matches(r, rec, dx, px)
                rs = {"rule_id": r["rule_id"], "adrg": r["adrg"], "name": r.get("name_zh", ""),
                      "matched": not why}
                if why:
                    rs["failed"] = self._fail_text(why, r, dx, px)
                    step["rules"].append(rs)
                    continue
                rs["evidence"] = self._rule_evidence(r, dx, px)
                step["rules"].append(rs)
                step["outcome"] = f"ADRG {r['adrg']}"
                res.update(mdc=m["label"], adrg=r["adrg"], status="ok")
                for d in self.drgs.get(r["adrg"], []):
                    ok, text = self._drg_ok(d, rec, dx)
                    out["drgs"].append({"drg": d["drg"], "name": d.get("name_zh", ""),
                                        "condition": text, "matched": ok})
                    if ok:
                        res["drg"] = d["drg"]
                        return self._finish(out)
                res["drg"] = r["adrg"]
                out["drgs"].append({"drg": r["adrg"], "name": self.adrg_names.get(r["adrg"], ""),
                                    "condition": "no DRG matched: the ADRG code is the DRG",
                                    "matched": True})
                return self._finish(out)
            if m.get("qy_enabled") == "1" and any(p in self.or_proc for p in px):
                res.update(mdc=m["label"], adrg="", drg=m["mdc"] + "QY", status="ambiguous_qy")
                step["outcome"] = "QY: no ADRG rule matched and a procedure is an OR procedure"
                return self._finish(out)
            step["outcome"] = "no ADRG rule matched: falling through to the next MDC"
        return self._finish(out)

    def _drg_ok(self, d: dict[str, str], rec: dict, dx: list[str]) -> tuple[bool, str]:
        rule = d.get("cc_rule", "")
        mcc, cc = self.effective("MCC", dx), self.effective("CC", dx)
        parts, ok = [], True
        if rule == "mcc":
            ok, parts = mcc, [f"effective MCC ({'yes' if mcc else 'no'})"]
        elif rule == "cc":
            ok, parts = cc, [f"effective CC ({'yes' if cc else 'no'})"]
        elif rule == "mcc_or_cc":
            ok, parts = mcc or cc, [f"effective MCC or CC ({'yes' if mcc or cc else 'no'})"]
        for key, lo_c, hi_c, val in (("diagnoses", "min_dx_count", "", len(dx)),
                                     ("age_years", "age_years_min", "age_years_max", rec["age_years"]),
                                     ("los_days", "los_days_min", "los_days_max", rec["los_days"])):
            lo, hi = d.get(lo_c, ""), d.get(hi_c, "") if hi_c else ""
            if lo or hi:
                b = self._bound(val, lo, hi)
                ok = ok and b
                parts.append(f"{key} {lo or '-inf'}..{hi or 'inf'} "
                             f"({'absent' if val is None else val}: {'yes' if b else 'no'})")
        return ok, "; ".join(parts) or "no condition"

    def _mdc_why(self, why: str, m: dict[str, str], dx: list[str], px: list[str]) -> str:
        if why == "principal not in list":
            return f"principal {dx[0] if dx else '(none)'} not in {m['label']}'s diagnosis list"
        if why == "main procedure not OR":
            return f"main procedure {px[0] if px else '(none)'} not in or_procedure.csv"
        return why

    def _mdc_entry_text(self, m: dict[str, str], dx: list[str], px: list[str]) -> str:
        parts = []
        lst = self.mdc_list.get(m["mdc"], {})
        if m.get("dx_match") == "principal":
            parts.append(f"principal {dx[0]} in the MDC's diagnosis list")
        elif m.get("dx_match") == "any":
            parts.append("a diagnosis in the MDC's list")
        if m.get("main_proc_or") == "1":
            parts.append(f"main procedure {px[0]} is an OR procedure")
        if m.get("sex"):
            parts.append(f"sex {m['sex']}")
        if m.get("age_years_min") or m.get("age_years_max"):
            parts.append(f"age_years {m.get('age_years_min') or '-inf'}..{m.get('age_years_max') or 'inf'}")
        if m.get("min_trauma_regions"):
            regions = sorted({lst[x] for x in set(dx) if x in lst and lst[x]})
            parts.append(f"{len(regions)} trauma regions ({', '.join(regions)}) >= "
                         f"{m['min_trauma_regions']}")
        return "; ".join(parts) or "no entry condition"

    def _finish(self, out: dict[str, Any]) -> dict[str, Any]:
        res = out["result"]
        res["mdc_name"] = next((m.get("name_zh", "") for m in self.mdcs if m["label"] == res["mdc"]), "")
        res["adrg_name"] = self.adrg_names.get(res["adrg"], "")
        res["drg_name"] = self.drg_names.get(res["drg"], self.adrg_names.get(res["drg"], ""))
        return out


@lru_cache(maxsize=4)
def _explainer(folder: str) -> Explainer:
    from drgsim.scheme.tables import load_tables

    return Explainer(load_tables(folder))


@dataclass
class Explanation:
    """One record's decision path: ``to_dict()``/``to_json()`` for programs, ``text()`` for people."""

    data: dict[str, Any]
    flags: list[str] = field(default_factory=list)

    @property
    def result(self) -> dict[str, str]:
        return self.data["result"]

    def to_dict(self) -> dict[str, Any]:
        return {**self.data, "flags": list(self.flags)}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    def text(self) -> str:
        """Terminal text. The trail stops at the MDC that decided, as the grouper does, so
        every MDC listed was tried."""
        d = self.data
        f = d["fields"]
        show = lambda v: "—" if v is None else str(v)  # noqa: E731
        lines = [f"case {d['case_id'] or '(no id)'} · scheme {d['scheme']} · translation "
                 f"{'on' if d['translate'] else 'off'}",
                 f"record: sex {show(f['sex'])}, age {show(f['age_years'])} y "
                 f"({show(f['age_days'])} d), birth weight {show(f['birth_weight_g'])} g, "
                 f"LOS {show(f['los_days'])}"]
        dxs = " | ".join(f"{x['code'] or '(empty)'} {x['name']}".strip() for x in d["diagnoses"])
        pxs = " | ".join(f"{x['code'] or '(empty)'} {x['name']}".strip() for x in d["procedures"])
        lines.append(f"  DX: {dxs or '(none)'}")
        lines.append(f"  PX: {pxs or '(none)'}")
        tr = d["translation"]
        if tr:
            if "unmappable" in tr:
                lines.append(f"translation: {tr['field']} code {tr['unmappable']!r} is not in the map")
            else:
                ch = [f"{a}→{b}" for a, b in tr["diagnoses"] + tr["procedures"]]
                lines.append(f"translation: {', '.join(ch) or 'no code changed'}")
        if d["checks"]:
            lines.append("checks: " + "  ".join(f"{c['check']} {c['rule']} {'✓' if c['passed'] else '✗'}"
                                                for c in d["checks"]))
        if d["mdcs"]:
            lines.append("MDCs in order:")
        for m in d["mdcs"]:
            if not m["entered"]:
                lines.append(f"  {m['mdc']} {m['name']}: skipped — {m['why']}")
                continue
            lines.append(f"  {m['mdc']} {m['name']}: entered — {m['why']}")
            for r in m["rules"]:
                if r["matched"]:
                    ev = "; ".join(
                        f"{e['test']}={e['how']}" + (f" [{e['list']}: {', '.join(e['codes'])}]"
                                                     if e["codes"] else "")
                        for e in r["evidence"])
                    lines.append(f"    {r['rule_id']} {r['name']}: matched — {ev}")
                else:
                    lines.append(f"    {r['rule_id']} {r['name']}: no — {r['failed']}")
            if m["outcome"].startswith("no ADRG"):
                lines.append(f"    → {m['outcome']}")
        if d["drgs"]:
            lines.append(f"DRGs of {d['result']['adrg']} in order:")
            for g in d["drgs"]:
                lines.append(f"  {g['drg']} {g['name']}: {g['condition']} → "
                             f"{'chosen' if g['matched'] else 'no'}")
        cc = d["cc"]
        if cc and cc["secondaries"]:
            lines.append(f"MCC/CC (principal {cc['principal'] or '(empty)'}, exclusion table "
                         f"{cc['principal_table'] or 'none'}):")
            for s in cc["secondaries"]:
                if not s["level"]:
                    lines.append(f"  {s['code'] or '(empty)'} {s['name']}: not a CC/MCC")
                elif s["counted"]:
                    lines.append(f"  {s['code']} {s['name']}: {s['level']} (table {s['table']}) counts")
                else:
                    lines.append(f"  {s['code']} {s['name']}: {s['level']} (table {s['table']}) "
                                 f"excluded by {s['excluded_by']}")
        r = d["result"]
        title = " ".join(x for x in (r.get("drg_name"),) if x)
        lines.append(f"result: {r['mdc'] or '—'} / {r['adrg'] or '—'} / {r['drg']} {title} · "
                     f"{r['status']}")
        lines.append(f"flags: {', '.join(self.flags) if self.flags else '(none)'}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


def _record_from_file(source: str | os.PathLike[str], case_id: str, column_map: Any = None,
                      encoding: str | None = None) -> dict:
    import pyarrow.compute as pc

    from drgsim.records import read_records

    t = read_records(source, encoding=encoding, column_map=column_map)
    if "case_id" not in t.schema.names:
        raise RecordsError(f"{source}: no case_id column")
    ids = pc.cast(t.column("case_id"), "string")
    hit = pc.indices_nonzero(pc.fill_null(pc.equal(ids, str(case_id)), False))
    if len(hit) == 0:
        raise RecordsError(f"{source}: no record with case_id {case_id!r}")
    row = t.slice(hit[0].as_py(), 1).to_pylist()[0]
    return row


def explain(record: dict | None = None, scheme: str | os.PathLike[str] = DEFAULT_SCHEME,
            translate: bool = False, *, source: str | os.PathLike[str] | None = None,
            case_id: str | None = None, flags: bool = True, column_map: Any = None,
            encoding: str | None = None, **fields: Any) -> Explanation:
    """Explain how one record is grouped.

    Give the record as a dict (``{"sex": 1, "age_years": 60, "diagnoses": "I21.000|E11.900"}``),
    as keyword fields, or as ``source=FILE, case_id=ID`` (any input ``drgsim.group`` reads,
    with ``column_map`` if needed). Returns an :class:`Explanation`.

    >>> e = explain(sex=1, age_years=56, diagnoses="I10.x10|K07.008")
    >>> e.result["drg"], e.result["status"]
    ('FV25', 'ok')
    """
    if source is not None:
        if case_id is None:
            raise DrgsimError("explain(source=...) needs case_id")
        record = _record_from_file(source, case_id, column_map, encoding)
    record = {**(record or {}), **fields}
    unknown = [k for k in fields if k not in RECORD_KEYS]
    if unknown:
        raise DrgsimError(f"unknown record field(s): {', '.join(unknown)} "
                          f"(fields: {', '.join(RECORD_KEYS)})")
    ex = _explainer(str(resolve_scheme_dir(scheme)))
    data = ex.explain(record, translate)
    got: list[str] = []
    if flags:
        from drgsim.flags.engine import flags_for_record
        from drgsim.grouper.core import load_scheme

        got = flags_for_record(record, load_scheme(scheme))
    return Explanation(data, got)
