"""A slow, obvious DIP matcher: DIP.md "Matching a new case" line by line, over strings.

One record at a time, straight from the catalogue's packet rows; the record checks are
the DRG reference grouper's own (:meth:`ReferenceGrouper.record_checks`). Tests hold the
numba kernel (:mod:`drgsim.dip.kernels`) to it; :mod:`drgsim.dip.explain` builds on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drgsim.dip.match import TT_LETTERS, chapter, dx_key
from drgsim.grouper.reference import ReferenceGrouper, parse_int, split_codes


@dataclass
class Packet:
    code: str
    kind: str  # core | comprehensive
    dx_key: str
    procs: frozenset[str]
    base: bool
    mean: float


@dataclass
class Match:
    """One case's result and the trail of decisions behind it."""

    packet: str = ""
    kind: str = ""
    treatment_type: int | None = None
    status: str = "ok"
    dx_key: str = ""
    trail: list[str] = field(default_factory=list)
    steps: dict[str, Any] = field(default_factory=dict)  # structured, for explain


def packets_from_table(df: Any) -> list[Packet]:
    """Packet rows of a catalogue's packets table."""
    out = []
    for r in df.to_dict("records"):
        procs = str(r.get("procs") or "")
        out.append(Packet(str(r["packet"]), str(r["kind"]), str(r["dx_key"]),
                          frozenset(p for p in procs.split("+") if p),
                          str(r.get("base", "0")) in ("1", "1.0", "True", "true"),
                          float(r["mean_cost_fen"])))
    return out


class ReferenceMatcher:
    """DIP.md's matching order over plain Python objects."""

    def __init__(self, packets: list[Packet], ranks: dict[str, int], checker: ReferenceGrouper,
                 dx_level: str = "subcategory"):
        self.packets = packets
        self.by_code = {p.code: p for p in packets}
        self.ranks = ranks
        self.checker = checker
        self.dx_level = dx_level

    def match(self, record: dict, cost_fen: int | None, translate: bool = False) -> Match:
        """Match one record given as a dict of raw fields; ``cost_fen`` None = unknown."""
        res = Match()
        rec = {f: parse_int(record.get(f)) for f in
               ("sex", "age_years", "age_days", "birth_weight_g", "los_days")}
        dx = split_codes(record.get("diagnoses"), keep_empty_field=translate)
        px = split_codes(record.get("procedures"), keep_empty_field=False)
        status, why = self.checker.record_checks(rec, dx, px, translate)
        if why:
            res.trail.append(why)
        if status != "ok":
            res.status = status
            return res
        key = dx_key(dx[0], self.dx_level)
        res.dx_key = key
        case = set(px)
        tt = max((self.ranks.get(p, 0) for p in px), default=0)
        res.treatment_type = tt
        res.trail.append(f"diagnosis key {key}; treatment type {tt} ({TT_LETTERS[tt]})")
        core = [p for p in self.packets if p.kind == "core" and p.dx_key == key]
        res.steps["core"] = [{"packet": p.code, "procs": sorted(p.procs), "mean": p.mean,
                              "contained": p.procs <= case} for p in core if p.procs]
        if tt == 0:
            cons = [p for p in core if not p.procs]
            res.steps["conservative"] = cons[0].code if cons else None
            if cons:
                res.trail.append(f"no qualifying procedure: conservative core packet {cons[0].code}")
                res.packet, res.kind = cons[0].code, "base" if cons[0].base else "core"
                return res
            res.trail.append("no qualifying procedure and no conservative core packet for the key")
        else:
            hits = [p for p in core if p.procs and p.procs <= case]
            res.trail.append(f"core candidates contained in the case: "
                             f"{', '.join(p.code for p in hits) or 'none'}")
            if hits:
                def rank(p: Packet) -> tuple:
                    d = abs(float(cost_fen) - p.mean) if cost_fen is not None else 0.0
                    return (-len(p.procs), d, p.code)

                hits.sort(key=rank)
                best = hits[0]
                res.steps["tie_break"] = _tie_level(hits, rank)
                res.packet, res.kind = best.code, "core"
                res.trail.append(f"chosen {best.code} ({res.steps['tie_break']})")
                return res
        tried = []
        for level, pre in zip(("category", "prefix", "chapter"), _prefixes(dx[0])):
            code = f"Z/{pre}/{TT_LETTERS[tt]}"
            tried.append(code if pre else f"({level}: none)")
            if pre and code in self.by_code and self.by_code[code].kind == "comprehensive":
                res.steps["comprehensive"] = {"tried": tried, "level": level}
                res.packet, res.kind = code, "comprehensive"
                res.trail.append(f"comprehensive {code} (tried {', '.join(tried)})")
                return res
        res.steps["comprehensive"] = {"tried": tried, "level": None}
        res.status = "blank_packet"
        res.trail.append(f"no comprehensive packet (tried {', '.join(tried)}): blank packet")
        return res


def _prefixes(code: str) -> tuple[str, str, str]:
    """Category, coarser prefix, chapter of the code's part before "+"; a part too short
    for a level has no label there (as the builder folds)."""
    key = code.split("+", 1)[0]
    return (key[:3] if len(key) >= 3 else "", key[:2] if len(key) >= 2 else "", chapter(key))


def _tie_level(hits: list[Packet], rank: Any) -> str:
    """Which rule decided between the contained candidates."""
    if len(hits) == 1:
        return "only candidate"
    a, b = rank(hits[0]), rank(hits[1])
    if a[0] != b[0]:
        return "most procedures matched"
    if a[1] != b[1]:
        return "smallest |cost - packet mean|"
    return "smallest packet code"
