"""Explain one case's DIP packet: candidates tried, containment, the tie-break, fallbacks.

Built on :class:`drgsim.dip.reference.ReferenceMatcher` (DIP.md's order line by line, held
to the kernel by a property test), so every decision shown is the reference's own; text
for a terminal or a dict/JSON for programs, like ``drgsim explain`` for DRG.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from drgsim.dip.match import TT_LETTERS, _catalogue, prepare
from drgsim.dip.reference import ReferenceMatcher, packets_from_table
from drgsim.errors import DrgsimError
from drgsim.grouper.explain import RECORD_KEYS, _explainer, _record_from_file
from drgsim.grouper.reference import parse_int, split_codes
from drgsim.scheme.paths import DEFAULT_SCHEME

TT_NAMES = ("conservative 保守治疗", "diagnostic 诊断性操作", "therapeutic 治疗性操作",
            "surgery 相关手术")
DIP_KEYS = (*RECORD_KEYS, "total_cost")


@dataclass
class DipExplanation:
    """One case's matching path: ``to_dict()``/``to_json()`` for programs, ``text()`` for people."""

    data: dict[str, Any]

    @property
    def result(self) -> dict[str, Any]:
        return self.data["result"]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.data, ensure_ascii=False, indent=indent)

    def text(self) -> str:
        d = self.data
        cost = "—" if d["cost_fen"] is None else f"{d['cost_fen'] / 100:,.2f} yuan"
        lines = [f"case {d['case_id'] or '(no id)'} · DIP catalogue {d['catalogue']} · scheme "
                 f"{d['scheme']} · translation {'on' if d['translate'] else 'off'}",
                 f"  DX: {' | '.join(d['diagnoses']) or '(none)'}",
                 f"  PX: {' | '.join(f'{p} [{TT_LETTERS[t]}]' for p, t in d['procedures']) or '(none)'}",
                 f"  cost: {cost}"]
        for why in d["checks"]:
            lines.append(f"record check: {why}")
        r = d["result"]
        if r["status"] not in ("ok", "blank_packet"):
            lines.append(f"result: {r['status']} (the DRG grouper's record checks)")
            return "\n".join(lines)
        tt = r["treatment_type"]
        lines.append(f"diagnosis key {r['dx_key']} · treatment type {TT_LETTERS[tt]} "
                     f"({TT_NAMES[tt]}; highest over the procedures)")
        core = d["core_candidates"]
        if tt == 0:
            lines.append("no qualifying procedure: only a conservative core packet applies — "
                         + (d["conservative"] or "none for this key"))
        elif not core:
            lines.append("core procedural candidates with this key: none")
        else:
            lines.append("core candidates with this key (containment: every procedure of the "
                         "packet among the case's):")
            for c in core:
                miss = [p for p in c["procs"] if p not in c["case_procs"]]
                dist = "" if c["distance_fen"] is None else \
                    f", |cost - mean| {c['distance_fen'] / 100:,.2f}"
                lines.append(f"  {c['packet']}: {len(c['procs'])} procedure(s), mean "
                             f"{c['mean_fen'] / 100:,.2f}{dist} — "
                             + ("contained" if c["contained"] else f"not contained (missing "
                                                                   f"{', '.join(miss)})"))
            if d["tie_break"]:
                lines.append(f"  chosen by: {d['tie_break']}")
        comp = d["comprehensive"]
        if comp is not None:
            lines.append("comprehensive packets tried: " + ", ".join(comp["tried"])
                         + (f" → {comp['level']}" if comp["level"] else " → none"))
        lines.append(f"result: {r['packet'] or '(blank packet)'} · {r['kind'] or '—'} · "
                     f"{r['status']}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


def explain(record: dict | None = None, catalogue: Any = None,
            scheme: str | os.PathLike[str] = DEFAULT_SCHEME, translate: bool = False, *,
            source: str | os.PathLike[str] | None = None, case_id: str | None = None,
            column_map: Any = None, encoding: str | None = None,
            treatment: dict[str, int] | None = None, **fields: Any) -> DipExplanation:
    """Explain how one case gets its DIP packet (record as a dict, keyword fields, or
    ``source=FILE, case_id=ID``); ``total_cost`` (yuan) is the case cost for tie-breaks."""
    from drgsim.grouper.core import load_scheme
    from drgsim.pricing.money import yuan_to_fen

    if catalogue is None:
        raise DrgsimError("explain --method dip needs a catalogue (--catalogue DIR)")
    if source is not None:
        if case_id is None:
            raise DrgsimError("explain(source=...) needs case_id")
        record = _record_from_file(source, case_id, column_map, encoding)
    record = {**(record or {}), **fields}
    unknown = [k for k in fields if k not in DIP_KEYS]
    if unknown:
        raise DrgsimError(f"unknown record field(s): {', '.join(unknown)} "
                          f"(fields: {', '.join(DIP_KEYS)})")
    cs = load_scheme(scheme)
    cat = _catalogue(catalogue)
    prep = prepare(cat, cs, treatment)
    checker = _explainer(str(cs.path))
    ref = ReferenceMatcher(packets_from_table(prep.packets), prep.rank_of, checker, prep.dx_level)
    cost_fen = None
    if record.get("total_cost") not in (None, ""):
        import pyarrow as pa

        fen, ok = yuan_to_fen(pa.array([str(record["total_cost"])]))
        cost_fen = int(fen[0]) if ok[0] and fen[0] >= 0 else None
    px = split_codes(record.get("procedures"), keep_empty_field=False)
    with prep.lock:  # the matcher may grow the same vocabulary from another thread
        unknown = sorted({p for p in px if p and p not in prep.vocab_pos})
        if unknown and not translate:  # typed as the matcher types them
            prep.extend_vocab(unknown)
    m = ref.match(record, cost_fen, translate)
    case_procs = set(px)
    core = []
    for c in m.steps.get("core", []):
        dist = None if cost_fen is None else abs(cost_fen - c["mean"])
        core.append({"packet": c["packet"], "procs": c["procs"], "case_procs": sorted(case_procs),
                     "mean_fen": c["mean"], "distance_fen": dist, "contained": c["contained"]})
    path = getattr(cat, "path", None)
    data = {
        "case_id": "" if record.get("case_id") is None else str(record.get("case_id")),
        "catalogue": str(path) if path is not None else "(in memory)",
        "scheme": f"{cs.name} {cs.version}".strip(), "translate": translate,
        "fields": {f: parse_int(record.get(f)) for f in ("sex", "age_years", "age_days",
                                                         "birth_weight_g", "los_days")},
        "diagnoses": split_codes(record.get("diagnoses"), keep_empty_field=translate),
        "procedures": [[p, prep.rank_of.get(p, 0)] for p in px],
        "cost_fen": cost_fen,
        "checks": [t for t in m.trail if t.startswith("check ")],
        "core_candidates": core,
        "conservative": m.steps.get("conservative"),
        "tie_break": m.steps.get("tie_break"),
        "comprehensive": m.steps.get("comprehensive"),
        "trail": m.trail,
        "result": {"packet": m.packet, "kind": m.kind, "status": m.status, "dx_key": m.dx_key,
                   "treatment_type": m.treatment_type},
    }
    return DipExplanation(data)
