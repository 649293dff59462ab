"""DIP through the one pricing engine: a catalogue and matched cases -> the Weights and the
case frame :func:`drgsim.pricing.price` takes (../shared/DIP.md "Scores", "Outliers").

A case is priced by its **case key** ``packet`` × auxiliary class: the key's base score is
the packet's score × the case's auxiliary coefficient (DIP.md: RW × aux coef), its reference
mean is the packet's mean at the hospital's level ``C`` (``levels.csv``; the packet mean when
a level has fewer than ``dip.level_min_cases``), base packets carry no hospital coefficient.
Statuses: ``ok`` → ok; ``blank_packet`` → priced like the DRG path's ``ungroupable`` status
(``cost / M × scale × dip.blank_ratio``); the record-check reasons keep their names.
Point values from history: :func:`budget_point_value` (PV_b) and :func:`history_ratio` (r);
:func:`history_sums` per hospital × year × fund, reduced by :func:`point_values_of_sums`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from drgsim.errors import DrgsimError
from drgsim.pricing.cases import FUNDS
from drgsim.pricing.core import Weights
from drgsim.scheme.spec import STATUSES

MATCH_COLUMNS = ("packet", "aux_class", "aux_coef", "dip_status")  # required of matched cases
DIP_STATUS_AS = {"ok": "ok", "blank_packet": "ungroupable"}  # else the record-check reason
KEY_SEP = "#"


class DipPricingError(DrgsimError):
    """Matched cases or a catalogue cannot be priced (a missing column, an unknown packet,
    one case key with two auxiliary coefficients)."""


def case_keys(packet: pd.Series, aux_catalogue: pd.Series | None, aux_class: pd.Series) -> pd.Series:
    """The pricing key of each case: ``packet`` alone, or ``packet#catalogue:class`` when an
    auxiliary coefficient applies (``K80.1/51.2300#severity:III``); "" for no packet."""
    p = packet.astype("string").fillna("")
    cl = aux_class.astype("string").fillna("")
    cat = (
        aux_catalogue.astype("string").fillna("")
        if aux_catalogue is not None
        else pd.Series("", index=p.index, dtype="string")
    )
    tag = (cat + ":" + cl).where(cl != "", "")
    return (p + (KEY_SEP + tag).where(tag != "", "")).where(p != "", "")


def _check_matched(df: pd.DataFrame) -> None:
    missing = [c for c in MATCH_COLUMNS if c not in df.columns]
    if missing:
        raise DipPricingError(
            f"DIP cases lack column(s) {', '.join(missing)}: match them first "
            "(drgsim group --method dip --catalogue DIR, or drgsim.dip.match)"
        )


def dip_frame(matched: pd.DataFrame) -> pd.DataFrame:
    """Matched DIP cases as the frame pricing reads: ``drg`` = the case key, ``status`` =
    the DIP status mapped (``blank_packet`` → ``ungroupable``), ``adrg``/``mdc`` empty; the
    DIP columns stay beside them (they reach ``Priced.frame()``). Never drops a row."""
    _check_matched(matched)
    out = matched.copy()
    for c in ("drg", "adrg", "mdc", "status"):  # a DRG grouping beside: not what DIP prices
        if c in out.columns:
            out = out.drop(columns=c)
    ds = out["dip_status"].astype("string").fillna("")
    mapped = ds.map(lambda s: DIP_STATUS_AS.get(s, s if s in STATUSES else "check_failed"))
    out["status"] = mapped.astype("string")
    has_cat = "aux_catalogue" in out.columns
    keys = case_keys(out["packet"], out["aux_catalogue"] if has_cat else None, out["aux_class"])
    out["drg"] = keys.where(out["status"] == "ok", "")
    out["adrg"] = ""
    out["mdc"] = ""
    return out


def _meta(cat: Any, key: str) -> Any:
    meta = getattr(cat, "meta", None) or {}
    if key not in meta or meta[key] in (None, ""):
        raise DipPricingError(f"the DIP catalogue gives no {key} (catalogue.csv)")
    return meta[key]


def dip_weights(catalogue: Any, matched: pd.DataFrame, scale: float | None = None) -> Weights:
    """Weights keyed by case key: per key the packet's score × the auxiliary coefficient
    (``points``), RW × coefficient (``rw``), the packet mean (``mean_cost_fen``) and ``base``;
    ``levels``: the packet's means per hospital level, for each key of the packet.
    ``catalogue``: a :class:`drgsim.dip.Catalogue` (meta, packets, levels)."""
    _check_matched(matched)
    pk = catalogue.packets.copy()
    pk["packet"] = pk["packet"].astype(str)
    if pk["packet"].duplicated().any():
        dup = pk.loc[pk["packet"].duplicated(), "packet"].iloc[0]
        raise DipPricingError(f"the DIP catalogue lists packet {dup!r} twice (packets.csv)")
    sc = float(scale or _meta(catalogue, "score_scale"))
    m_all = float(_meta(catalogue, "m_all_fen"))
    fr = dip_frame(matched)
    ok = (fr["status"] == "ok").to_numpy()
    k = pd.DataFrame(
        {
            "key": fr["drg"][ok].astype(str).to_numpy(),
            "packet": fr["packet"][ok].astype(str).to_numpy(),
            "aux_coef": pd.to_numeric(fr["aux_coef"][ok], errors="coerce").fillna(1.0).to_numpy(),
        }
    ).drop_duplicates()
    two = k["key"].duplicated(keep=False)
    if two.any():
        raise DipPricingError(
            f"case key {k.loc[two, 'key'].iloc[0]!r} comes with two auxiliary coefficients: "
            "one packet × auxiliary class has one coefficient"
        )
    unknown = sorted(set(k["packet"]) - set(pk["packet"]))
    if unknown:
        raise DipPricingError(
            f"{len(unknown)} matched packet(s) are not in the catalogue ({', '.join(unknown[:5])}): "
            "match with the same catalogue"
        )
    t = k.merge(pk, on="packet", how="left")
    base = pd.to_numeric(t["base"], errors="coerce").fillna(0) if "base" in t else 0
    table = pd.DataFrame(
        {
            "level": "drg",
            "key": t["key"],
            "packet": t["packet"],
            # the published score (rw x scale, 4 dp) x the auxiliary coefficient
            "points": pd.to_numeric(t["score"]).to_numpy() * t["aux_coef"].to_numpy()
            if "score" in t and sc == float(_meta(catalogue, "score_scale"))
            else pd.to_numeric(t["rw"]).to_numpy() * sc * t["aux_coef"].to_numpy(),
            "rw": pd.to_numeric(t["rw"]).to_numpy() * t["aux_coef"].to_numpy(),
            "mean_cost_fen": pd.to_numeric(t["mean_cost_fen"]).to_numpy(),
            "aux_coef": t["aux_coef"],
            "base": np.asarray(base, dtype=np.int8),
        }
    )
    if not len(table):  # no case has a packet: one row no case key can match keeps the
        # table's arrays indexable (pricing reads them by row)
        table = pd.DataFrame(
            {"level": ["drg"], "key": ["\x00"], "packet": [""], "points": [0.0], "rw": [0.0],
             "mean_cost_fen": [m_all], "aux_coef": [1.0], "base": np.zeros(1, np.int8)}
        )
    lv = getattr(catalogue, "levels", None)
    levels = None
    if lv is not None and len(lv):
        lv = lv.assign(packet=lv["packet"].astype(str))
        levels = table[["key", "packet"]].merge(lv, on="packet", how="inner")[
            ["key", "level", "n_cases", "mean_cost_fen"]
        ]
    table.attrs["m_all_fen"] = m_all
    w = Weights.from_frame(table, sc)
    w.levels = levels
    return w


def _year_weights(years: np.ndarray, weights: list[float]) -> dict[int, float]:
    """The weight of each history year present (newest gets the last weight), normalised."""
    ys = sorted({int(y) for y in years})
    if len(ys) > len(weights):
        raise DipPricingError(
            f"history has {len(ys)} years ({', '.join(map(str, ys))}) but dip.year_weights "
            f"gives {len(weights)} weight(s)"
        )
    w = list(weights)[len(weights) - len(ys) :]
    tot = float(sum(w))
    if tot <= 0:
        raise DipPricingError("dip.year_weights sum to 0 over the history years")
    return {y: x / tot for y, x in zip(ys, w, strict=True)}


HISTORY_SUMS = ("hospital", "year", "fund", "n", "cost_fen", "fund_pay_fen", "score")


def _cell_sums(
    names: np.ndarray,
    hosp: np.ndarray,
    year: np.ndarray,
    fund: np.ndarray,
    cost_fen: np.ndarray,
    share_fen: np.ndarray,
    score: np.ndarray,
) -> pd.DataFrame:
    """Per hospital × year × fund: cases, Σ cost, Σ (cost − share) (integer fen, exact) and
    Σ score (float, ``np.bincount`` adds each cell's cases one after the other in the order
    given, so a hospital's cell is the same sum whether its rows come alone or with others')."""
    yrs = np.asarray(year, dtype=np.int64)
    uy, yi = np.unique(yrs, return_inverse=True)
    H, Y, F = len(names) + 1, len(uy), len(FUNDS)
    cell = ((np.asarray(hosp, np.int64) + 1) * Y + yi) * F + np.asarray(fund, np.int64)
    size = H * Y * F

    def bc(w: np.ndarray | None) -> np.ndarray:
        return np.bincount(cell, weights=w, minlength=size)

    n = bc(None)
    cost = np.rint(bc(np.asarray(cost_fen, np.float64))).astype(np.int64)  # < 2**53 fen
    fpay = np.rint(bc(np.asarray(cost_fen, np.float64) - np.asarray(share_fen, np.float64)))
    sc = bc(np.asarray(score, np.float64))
    keep = np.flatnonzero(n > 0)
    h, rest = np.divmod(keep, Y * F)
    y, f = np.divmod(rest, F)
    label = np.r_[np.array([""], dtype=object), np.asarray(names, dtype=object)]
    return pd.DataFrame({
        "hospital": label[h].astype(str), "year": uy[y].astype(np.int64),
        "fund": f.astype(np.int8), "n": n[keep].astype(np.int64), "cost_fen": cost[keep],
        "fund_pay_fen": fpay[keep].astype(np.int64), "score": sc[keep],
    }, columns=list(HISTORY_SUMS))


def history_sums(pr: Any) -> pd.DataFrame:
    """The parts of PV_b and r of the history cases priced with the simulated year's policy
    (a :class:`~drgsim.pricing.core.Priced`): per hospital × year × fund sums of the cases
    pricing pays by score (matched to a packet or blank, payable, inside the budget;
    implausible costs held out as in the simulated year), the scores added in case-id order.
    A hospital's sums depend on its own rows only, in whatever order they come, so a distributed run computes them per hospital partition and
    :func:`point_values_of_sums` reduces them as the single path does."""
    c = pr.cases
    ok = pr.payable & pr.in_budget & (c.fund >= 0) & (pr.points > 0)
    o = c.tie_order[ok[c.tie_order]]  # case-id order: the rows' order never moves a last bit
    return _cell_sums(c.hospital_ids, c.hosp[o], c.year[o], c.fund[o], c.cost_fen[o],
                      c.share_fen[o], pr.points[o])


def _by_year(sums: pd.DataFrame, f: int, col: str) -> dict[int, float | int]:
    """Σ ``col`` of fund ``f`` per year across hospitals: integers exactly, the float score
    correctly rounded (``math.fsum``), so the hospitals' order never moves a last bit."""
    import math

    s = sums[sums["fund"] == f]
    out: dict[int, float | int] = {}
    for y, g in s.groupby("year", sort=True):
        v = g[col].to_numpy()
        out[int(y)] = math.fsum(v.tolist()) if v.dtype.kind == "f" else int(v.sum())
    return out


def _fund_ratios(sums: pd.DataFrame, w: dict[int, float], num: str, den: str,
                 scale: float = 1.0) -> dict[str, float]:
    """Per fund, Σ_y w_y·``num``_y / Σ_y w_y·``den``_y / ``scale`` (years in order; funds
    whose denominator is not positive left out)."""
    out = {}
    for f, name in enumerate(FUNDS):
        n, d = (_by_year(sums, f, c) for c in (num, den))
        bottom = sum(w.get(y, 0.0) * d[y] for y in sorted(d))
        if bottom > 0:
            out[name] = float(sum(w.get(y, 0.0) * n[y] for y in sorted(n))) / bottom / scale
    return out


def _pv_b(sums: pd.DataFrame, w: dict[int, float]) -> dict[str, float]:
    """PV_b per fund: weighted cost (yuan) over weighted score."""
    return _fund_ratios(sums, w, "cost_fen", "score", 100.0)


def _ratio(sums: pd.DataFrame, w: dict[int, float]) -> dict[str, float]:
    """The reimbursement ratio r per fund: weighted fund payments over weighted cost."""
    return _fund_ratios(sums, w, "fund_pay_fen", "cost_fen")


def point_values_of_sums(
    sums: pd.DataFrame, year_weights: list[float]
) -> tuple[dict[str, float], dict[str, float]]:
    """(PV_b, r) per fund from :func:`history_sums` (of one frame, or of many hospital
    partitions concatenated, in any order): the years present weighted by
    ``year_weights``; a fund without scored cases is absent."""
    s = sums[sums["n"] > 0]
    if not len(s):
        return {}, {}
    w = _year_weights(s["year"].to_numpy(), year_weights)
    return _pv_b(s, w), _ratio(s, w)


def budget_point_value(
    cost_fen: np.ndarray,
    score: np.ndarray,
    year: np.ndarray,
    fund: np.ndarray,
    year_weights: list[float],
) -> dict[str, float]:
    """PV_b per fund (yuan per point, DIP.md): Σ_y w_y cost_y / Σ_y w_y score_y over the
    history cases that have a score (w = ``year_weights`` of the years present, normalised;
    ``fund``: 0 employee, 1 resident). A fund without scored cases is absent."""
    w = _year_weights(year, year_weights)
    m = (np.asarray(score) > 0) & (np.asarray(fund) >= 0)
    z = np.zeros(int(m.sum()), np.int64)
    sums = _cell_sums(np.array([]), z - 1, np.asarray(year)[m], np.asarray(fund)[m],
                      np.asarray(cost_fen)[m], z, np.asarray(score)[m])
    return _pv_b(sums, w)


def history_ratio(
    cost_fen: np.ndarray,
    share_fen: np.ndarray,
    year: np.ndarray,
    fund: np.ndarray,
    year_weights: list[float],
) -> dict[str, float]:
    """The reimbursement ratio r per fund (DIP.md): the history DIP cases' fund payment
    (cost − patients' share) over their total cost, years weighted like the scores."""
    w = _year_weights(year, year_weights)
    m = np.asarray(fund) >= 0
    z = np.zeros(int(m.sum()), np.int64)
    sums = _cell_sums(np.array([]), z - 1, np.asarray(year)[m], np.asarray(fund)[m],
                      np.asarray(cost_fen)[m], np.asarray(share_fen)[m], z.astype(np.float64))
    return _ratio(sums, w)


def history_point_values(pr: Any, year_weights: list[float]) -> tuple[dict[str, float], dict[str, float]]:
    """(PV_b, r) per fund from the history cases priced with the simulated year's policy
    (a :class:`~drgsim.pricing.core.Priced`): :func:`history_sums` reduced by
    :func:`point_values_of_sums` (the same two steps a distributed run takes)."""
    return point_values_of_sums(history_sums(pr), year_weights)
