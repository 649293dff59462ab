"""Weights from history: RW, base points, reference mean costs, per-diem rates, fallbacks.

History years are inflated to the simulated year, trimmed per group, weighted by year
(e.g. 1:2:7, each year counting by its weight regardless of its volume), and every DRG
the scheme can emit gets a row: its own when it has ``min_cases``, else its ADRG's pooled
one, then its MDC's, then the all-case one (the policy's ``fallback`` order).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from drgsim.errors import Problem, ValidationError
from drgsim.pricing.cases import prepare_cases
from drgsim.pricing.money import yuan_to_fen


class WeightsError(ValidationError):
    """A weights table (published or calibrated) is malformed."""

    kind = "weights table"


WEIGHT_COLUMNS = [
    "key",
    "level",
    "source",
    "adrg",
    "mdc",
    "n",
    "mean_cost_fen",
    "cv",
    "rw",
    "points",
    "mean_los",
    "per_diem_rate_fen",
    "per_diem_points",
    "per_diem_case_rate_fen",
    "m_all_fen",
]
PER_DIEM_LEVEL = "per_diem"  # rows of per-diem categories: key = MDC label, ADRG or LONG_STAY
LONG_STAY = "long_stay"
PER_DIEM_RATES = ("per_diem_rate_fen", "per_diem_case_rate_fen")


def scheme_drgs(scheme: str | os.PathLike[str] = "chs_drg_11") -> pd.DataFrame:
    """Every DRG of a scheme with its ADRG and MDC label (from drg.csv, adrg.csv, mdc.csv)."""
    from drgsim.scheme import resolve_scheme_dir

    d = Path(resolve_scheme_dir(scheme))
    drg = pd.read_csv(d / "drg.csv", dtype=str, usecols=["drg", "adrg"])
    adrg = pd.read_csv(d / "adrg.csv", dtype=str, usecols=["adrg", "mdc"]).drop_duplicates("adrg")
    mdc = pd.read_csv(d / "mdc.csv", dtype=str, usecols=["mdc", "label"])
    out = drg.merge(adrg, on="adrg", how="left").merge(mdc, on="mdc", how="left")
    # an ADRG whose DRGs all carry conditions emits its own code as the DRG (README 4.3)
    extra = adrg.merge(mdc, on="mdc", how="left").assign(drg=lambda x: x["adrg"])
    out = pd.concat([out, extra[~extra["drg"].isin(out["drg"])]], ignore_index=True)
    return out[["drg", "adrg", "label"]].rename(columns={"label": "mdc"})


def _stats(key: np.ndarray, cost: np.ndarray, w: np.ndarray, los: np.ndarray) -> pd.DataFrame:
    """Weighted n, mean, CV, mean LOS and daily cost per key (LOS NaN = not counted)."""
    lv = ~np.isnan(los)
    l0 = np.where(lv, los, 0.0)
    pdv = lv & (l0 > 0)
    df = pd.DataFrame(
        {
            "key": key,
            "c": cost,
            "w": w,
            "wc": w * cost,
            "wcc": w * cost * cost,
            "wl": np.where(lv, w * l0, 0.0),
            "wln": np.where(lv, w, 0.0),
            "wd": np.where(pdv, w * cost / np.maximum(l0, 1), 0.0),
            "wdn": np.where(pdv, w, 0.0),
            "wdc": np.where(pdv, w * cost, 0.0),
            "wdd": np.where(pdv, w * l0, 0.0),
        }
    )
    g = df.groupby("key", sort=True).agg(
        n=("c", "size"),
        sw=("w", "sum"),
        swc=("wc", "sum"),
        swcc=("wcc", "sum"),
        swl=("wl", "sum"),
        swln=("wln", "sum"),
        swd=("wd", "sum"),
        swdn=("wdn", "sum"),
        swdc=("wdc", "sum"),
        swdd=("wdd", "sum"),
    )
    mean = g["swc"] / g["sw"]
    var = np.maximum(g["swcc"] / g["sw"] - mean * mean, 0.0)
    return pd.DataFrame(
        {
            "n": g["n"],
            "mean_cost_fen": mean,
            "cv": np.sqrt(var) / mean,
            "mean_los": (g["swl"] / g["swln"]).where(g["swln"] > 0),
            # a group's own daily rate (used only when its per-diem category has none):
            # on both bases, like the category rates
            "per_diem_rate_fen": (g["swdc"] / g["swdd"]).where(g["swdd"] > 0),
            "per_diem_case_rate_fen": (g["swd"] / g["swdn"]).where(g["swdn"] > 0),
        }
    )


def per_diem_category(
    adrg: np.ndarray, mdc: np.ndarray, los: np.ndarray, pdm: dict
) -> np.ndarray:
    """Per-diem category of each case (object array; '' = not per-diem eligible): its ADRG
    when listed, else its MDC when listed, else ``long_stay`` when LOS >= ``min_los``."""
    out = np.full(len(adrg), "", dtype=object)
    long = (los >= pdm["min_los"]) if pdm["min_los"] is not None else np.zeros(len(los), bool)
    out[long] = LONG_STAY
    in_mdc = np.isin(mdc, list(pdm["mdcs"]))
    out[in_mdc] = mdc[in_mdc]
    in_adrg = np.isin(adrg, list(pdm["adrgs"]))
    out[in_adrg] = adrg[in_adrg]
    return out


def per_diem_rates(
    adrg: np.ndarray, mdc: np.ndarray, cost: np.ndarray, los: np.ndarray, w: np.ndarray, pdm: dict
) -> pd.DataFrame:
    """Daily rates per per-diem category from its eligible cases (``cost`` inflated, ``w``
    the year weights; cases without a valid LOS of at least a day are left out):
    ``per_diem_rate_fen`` = sum of w x cost / sum of w x bed-days (ratio of sums),
    ``per_diem_case_rate_fen`` = weighted mean of cost / bed-days, and the mean cost."""
    ok = ~np.isnan(los) & (np.nan_to_num(los) >= 1)
    cat = per_diem_category(adrg, mdc, np.where(ok, los, -1), pdm)
    sel = ok & (cat != "")
    if not sel.any():
        return pd.DataFrame(
            columns=["n", "mean_cost_fen", "per_diem_rate_fen", "per_diem_case_rate_fen"]
        )
    d = pd.DataFrame(
        {
            "key": cat[sel],
            "w": w[sel],
            "wc": w[sel] * cost[sel],
            "wd": w[sel] * los[sel],
            "wr": w[sel] * cost[sel] / los[sel],
        }
    )
    g = d.groupby("key", sort=True).agg(
        n=("w", "size"), sw=("w", "sum"), swc=("wc", "sum"), swd=("wd", "sum"), swr=("wr", "sum")
    )
    return pd.DataFrame(
        {
            "n": g["n"],
            "mean_cost_fen": g["swc"] / g["sw"],
            "per_diem_rate_fen": g["swc"] / g["swd"],
            "per_diem_case_rate_fen": g["swr"] / g["sw"],
        }
    )


def trim_mask(group: np.ndarray, cost: np.ndarray, tp: dict) -> np.ndarray:
    """Keep cases inside each group's percentile range (or mean ± k SD), for any key.

    ``group``: one key per case (integer ids, or labels factorised once here); ``tp``:
    ``{"method": "percentile"|"sd"|"none", "lower", "upper", "sd"}`` as the policy's
    ``calibration.trimming``. Vectorised (sort and bincount, no per-group loop), with the
    same arithmetic as pandas: linear-interpolated quantiles, SD with ddof=1 (0 for one case).
    """
    n = len(cost)
    if tp["method"] == "none" or n == 0:
        return np.ones(n, dtype=bool)
    g = np.asarray(group)
    if g.dtype.kind not in "iu":
        g = pd.factorize(g)[0]
    g = g.astype(np.int64, copy=False)
    c = np.asarray(cost, dtype=np.float64)
    ng = int(g.max()) + 1
    cnt = np.bincount(g, minlength=ng)
    if tp["method"] == "percentile":
        order = np.lexsort((c, g))
        v = c[order]
        start = np.zeros(ng, dtype=np.int64)
        np.cumsum(cnt[:-1], out=start[1:])

        def q(p: float) -> np.ndarray:
            pos = (np.maximum(cnt, 1) - 1) * float(p)
            fl = np.floor(pos).astype(np.int64)
            ce = np.minimum(fl + 1, np.maximum(cnt, 1) - 1)
            frac = pos - fl
            lo_v = v[np.minimum(start + fl, n - 1)]
            hi_v = v[np.minimum(start + ce, n - 1)]
            return lo_v + (hi_v - lo_v) * frac

        lo, hi = q(tp["lower"])[g], q(tp["upper"])[g]
    else:
        mu = np.bincount(g, weights=c, minlength=ng) / np.maximum(cnt, 1)
        dev = c - mu[g]
        ss = np.bincount(g, weights=dev * dev, minlength=ng)
        sd = np.where(cnt > 1, np.sqrt(ss / np.maximum(cnt - 1, 1)), 0.0)
        lo, hi = (mu - tp["sd"] * sd)[g], (mu + tp["sd"] * sd)[g]
    return (c >= lo) & (c <= hi)


_trim_mask = trim_mask  # the old private name


def year_case_weights(year: np.ndarray, years: list[int], weights: list[float]) -> np.ndarray:
    """Per-case weight ``w_y / n_y``: each history year counts by its weight (e.g. 1:2:7,
    oldest to newest) regardless of its volume; cases outside ``years`` get 0."""
    yr = np.asarray(year, dtype=np.int64)
    out = np.zeros(len(yr), dtype=np.float64)
    for y, wy in zip(years, weights, strict=True):  # a loop over years, not records
        m = yr == y
        k = int(m.sum())
        if k:
            out[m] = float(wy) / k
    return out


def calibrate(
    history: pd.DataFrame,
    pv: dict,
    year: int,
    scheme: str | os.PathLike[str] | None = "chs_drg_11",
    columns: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Weights for ``year`` from the history years before it (``pv``: policy at ``year``).

    Returns one row per key and level (drg, adrg, mdc, all); ``attrs`` carry ``m_all_fen``,
    ``scale``, ``riv`` (reduction in variance by the DRGs) and the years used.
    """
    cp = pv["calibration"]
    scale = float(pv["points"]["scale"])
    c = prepare_cases(history, columns=columns)
    hy = cp["history_years"]
    years = list(range(year - hy, year))
    yw = list(cp["year_weights"])[-hy:]
    yw = [1.0] * (hy - len(yw)) + yw
    use = (c.status == 0) & (c.pay_status == 0) & np.isin(c.year, years) & (c.cost_fen >= 0)
    if not use.any():
        raise WeightsError(
            [Problem("<history>", None, None, f"no usable grouped cases in {years[0]}-{years[-1]}")]
        )
    yr = c.year[use].astype(np.int64)
    cost = c.cost_fen[use] * (1.0 + cp["inflation"]) ** (year - yr)
    wy = year_case_weights(yr, years, yw)
    drg = c.drg_names[c.drg[use]].astype(str)
    adrg = c.adrg_names[c.adrg[use]].astype(str)
    adrg = np.where(adrg == "", pd.Series(drg).str[:3].to_numpy(), adrg)
    mdc = c.mdc_names[c.mdc[use]].astype(str)
    los = c.los[use].astype(np.float64)
    max_los = pv["plausibility"]["max_los_days"]
    los[(los < 0) | ((los > max_los) if max_los is not None else False)] = (
        np.nan
    )  # absurd LOS: not counted

    keep = trim_mask(drg, cost, cp["trimming"])
    cost_t, w_t, los_t = cost[keep], wy[keep], los[keep]
    d_t, a_t, m_t = drg[keep], adrg[keep], mdc[keep]
    if cp["all_case_mean_yuan"] is not None:
        m_all = float(yuan_to_fen(np.array([cp["all_case_mean_yuan"]]))[0][0])
    else:
        m_all = float((w_t * cost_t).sum() / w_t.sum())

    by_drg = _stats(d_t, cost_t, w_t, los_t)
    # per-diem rates per category, from the eligible cases: not cost-trimmed (long stays are
    # what a trim cuts), but without the cases pricing would hold as implausible (cost above
    # max_cost_ratio x the group's mean, LOS above max_los_days)
    plaus = np.ones(len(cost), dtype=bool)
    if pv["plausibility"]["max_cost_ratio"] is not None:
        ref = by_drg["mean_cost_fen"].reindex(drg).to_numpy()
        ref = np.where(np.isnan(ref), m_all, ref)
        plaus = cost <= pv["plausibility"]["max_cost_ratio"] * ref
    pd_rates = per_diem_rates(
        adrg[plaus], mdc[plaus], cost[plaus], los[plaus], wy[plaus], pv["per_diem"]
    )
    by_adrg = _stats(a_t, cost_t, w_t, los_t)
    by_mdc = _stats(m_t, cost_t, w_t, los_t)
    by_all = _stats(np.array(["all"] * len(cost_t)), cost_t, w_t, los_t)

    # reduction in variance explained by the DRGs (weighted, trimmed)
    mu_g = by_drg["mean_cost_fen"].reindex(d_t).to_numpy()
    mu = (w_t * cost_t).sum() / w_t.sum()
    sst = (w_t * (cost_t - mu) ** 2).sum()
    riv = float(1.0 - (w_t * (cost_t - mu_g) ** 2).sum() / sst) if sst > 0 else float("nan")

    drg_map = pd.DataFrame({"drg": drg, "adrg": adrg, "mdc": mdc}).drop_duplicates("drg")
    if scheme is not None:
        sd = scheme_drgs(scheme)
        drg_map = pd.concat([drg_map, sd[~sd["drg"].isin(drg_map["drg"])]], ignore_index=True)
    drg_map = drg_map[(drg_map["drg"] != "0000") & ~drg_map["drg"].str.endswith("QY")]

    mc = cp["min_cases"]
    pools = {"adrg": by_adrg, "mdc": by_mdc, "all": by_all}
    rows = []
    for r in drg_map.itertuples(index=False):
        src, st = None, None
        if r.drg in by_drg.index and by_drg.at[r.drg, "n"] >= mc:
            src, st = "drg", by_drg.loc[r.drg]
        else:
            for fb in cp["fallback"]:
                key = {"adrg": r.adrg, "mdc": r.mdc, "all": "all"}[fb]
                tab = pools[fb]
                if (
                    isinstance(key, str)
                    and key in tab.index
                    and tab.at[key, "n"] >= (mc if fb != "all" else 1)
                ):
                    src, st = fb, tab.loc[key]
                    break
        if st is None:
            continue  # no fallback reaches it: priced rows will say no_weight
        n_own = int(by_drg.at[r.drg, "n"]) if r.drg in by_drg.index else 0
        rows.append(
            {
                "key": r.drg,
                "level": "drg",
                "source": src,
                "adrg": r.adrg,
                "mdc": r.mdc,
                "n": n_own,
                **{k: st[k] for k in ("mean_cost_fen", "cv", "mean_los", *PER_DIEM_RATES)},
            }
        )
    for lvl, tab in (("adrg", by_adrg), ("mdc", by_mdc), ("all", by_all)):
        for key, st in tab.iterrows():
            if lvl != "all" and st["n"] < mc:
                continue
            rows.append(
                {
                    "key": key,
                    "level": lvl,
                    "source": lvl,
                    "adrg": key if lvl == "adrg" else "",
                    "mdc": key if lvl == "mdc" else "",
                    "n": int(st["n"]),
                    **{k: st[k] for k in ("mean_cost_fen", "cv", "mean_los", *PER_DIEM_RATES)},
                }
            )
    for key, st in pd_rates.iterrows():
        rows.append(
            {
                "key": key,
                "level": PER_DIEM_LEVEL,
                "source": PER_DIEM_LEVEL,
                "adrg": "",
                "mdc": "",
                "n": int(st["n"]),
                "mean_cost_fen": st["mean_cost_fen"],
                "cv": np.nan,
                "mean_los": np.nan,
                "per_diem_rate_fen": st["per_diem_rate_fen"],
                "per_diem_case_rate_fen": st["per_diem_case_rate_fen"],
            }
        )
    out = pd.DataFrame(rows)
    out["n"] = out["n"].astype(np.int64)
    out["mean_cost_fen"] = np.floor(out["mean_cost_fen"] + 0.5).astype(np.int64)
    out["rw"] = out["mean_cost_fen"] / m_all
    out["points"] = out["rw"] * scale
    out["per_diem_points"] = out["per_diem_rate_fen"] / m_all * scale
    if "per_diem_case_rate_fen" not in out:
        out["per_diem_case_rate_fen"] = np.nan
    # the all-case mean, unrounded, in a column: the table alone reproduces the payments
    out["m_all_fen"] = float(m_all)
    out = out[WEIGHT_COLUMNS]
    out.attrs.update({"m_all_fen": m_all, "scale": scale, "riv": riv, "years": years, "year": year})
    return out


def quality_summary(weights: pd.DataFrame) -> dict:
    """Grouping quality: RIV, groups with own weights, median CV, groups above CV 1."""
    d = weights[(weights["level"] == "drg") & (weights["source"] == "drg")]
    return {
        "riv": weights.attrs.get("riv"),
        "m_all_yuan": weights.attrs.get("m_all_fen", np.nan) / 100,
        "drgs": int((weights["level"] == "drg").sum()),
        "drgs_own_weight": len(d),
        "drgs_fallback": int(((weights["level"] == "drg") & (weights["source"] != "drg")).sum()),
        "median_cv": float(d["cv"].median()) if len(d) else float("nan"),
        "groups_cv_above_1": int((d["cv"] > 1).sum()),
    }


def read_weights(
    path: str | os.PathLike[str], pv: dict, m_all_fen: float | None = None
) -> pd.DataFrame:
    """A region's published weights (CSV or parquet: ``drg`` and ``rw`` or ``points``;
    optional ``mean_cost`` in yuan), validated, in the calibrated table's shape.

    A calibrated weights parquet (with ``level``) is returned as it is. Without
    ``mean_cost``, m = RW × m_all (the policy's ``all_case_mean_yuan``, else ``m_all_fen``).
    ADRG rows are the mean RW of their DRGs (the first three characters).
    """
    p = Path(path)
    file = str(p)
    if p.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        tab = pq.read_table(p)
        meta = {k.decode(): v.decode() for k, v in (tab.schema.metadata or {}).items()}
        df = tab.to_pandas()
        if "level" in df.columns and "mean_cost_fen" in df.columns:
            m = _table_m_all(df, meta)
            if m is None:
                raise WeightsError(
                    [
                        Problem(
                            file,
                            None,
                            "m_all_fen",
                            "a weights table without its all-case mean cost (column m_all_fen "
                            "or metadata drgsim.m_all_fen): write it with drgsim calibrate",
                        )
                    ]
                )
            df.attrs["m_all_fen"] = m
            df.attrs["scale"] = float(meta.get("drgsim.scale", pv["points"]["scale"]))
            return df
        first_line = None
    elif p.suffix.lower() in (".xlsx", ".xlsm"):  # a bureau's published workbook
        from drgsim.inputs.excel import read_xlsx

        df = read_xlsx(p)[0].to_pandas().fillna("")
        first_line = None
    else:  # UTF-8 or GBK/GB18030, as the case files
        from drgsim.inputs.encoding import detect_encoding

        df = pd.read_csv(p, dtype=str, keep_default_na=False, encoding=detect_encoding(p))
        first_line = 2
    problems: list[Problem] = []

    def line(i: int) -> int | None:
        return None if first_line is None else first_line + i

    if "drg" not in df.columns or not ({"rw", "points"} & set(df.columns)):
        raise WeightsError([Problem(file, 1, None, "needs a drg column and rw or points")])
    scale = float(pv["points"]["scale"])
    drg = df["drg"].astype(str).str.strip()
    val_col = "rw" if "rw" in df.columns else "points"
    val = pd.to_numeric(df[val_col], errors="coerce")
    for i in np.flatnonzero(val.isna() | (val <= 0)):
        problems.append(
            Problem(file, line(i), val_col, f"{df[val_col].iloc[i]!r} is not a positive number")
        )
    for i in np.flatnonzero(drg.duplicated().to_numpy()):
        problems.append(Problem(file, line(i), "drg", f"{drg.iloc[i]!r} is listed twice"))
    for i in np.flatnonzero((drg == "").to_numpy()):
        problems.append(Problem(file, line(i), "drg", "empty"))
    rw = val if val_col == "rw" else val / scale
    if cp_m := pv["calibration"]["all_case_mean_yuan"]:
        m_all_fen = float(yuan_to_fen(np.array([cp_m]))[0][0])
    mean_cost = None
    if "mean_cost" in df.columns:
        mc_fen, ok = yuan_to_fen(df["mean_cost"])
        for i in np.flatnonzero(~ok | (mc_fen <= 0)):
            problems.append(
                Problem(
                    file,
                    line(i),
                    "mean_cost",
                    f"{df['mean_cost'].iloc[i]!r} is not a positive amount",
                )
            )
        mean_cost = mc_fen.astype(np.float64)
        if m_all_fen is None:
            with np.errstate(divide="ignore", invalid="ignore"):
                m_all_fen = float(np.nanmedian(mean_cost / rw.to_numpy()))
    if m_all_fen is None or not np.isfinite(m_all_fen):
        problems.append(
            Problem(
                file,
                None,
                None,
                "no all-case mean cost: set calibration.all_case_mean_yuan, "
                "give mean_cost, or give history cases",
            )
        )
    if problems:
        raise WeightsError(problems)
    if mean_cost is None:
        mean_cost = np.floor(rw.to_numpy() * m_all_fen + 0.5)
    out = pd.DataFrame(
        {
            "key": drg,
            "level": "drg",
            "source": "published",
            "adrg": drg.str[:3],
            "mdc": "",
            "n": 0,
            "mean_cost_fen": mean_cost.astype(np.int64),
            "cv": np.nan,
            "rw": rw.to_numpy(),
            "points": rw.to_numpy() * scale,
            "mean_los": np.nan,
            "per_diem_rate_fen": np.nan,
            "per_diem_points": np.nan,
            "per_diem_case_rate_fen": np.nan,
            "m_all_fen": float(m_all_fen),
        }
    )
    ad = (
        out.groupby("adrg")
        .agg(rw=("rw", "mean"), mean_cost_fen=("mean_cost_fen", "mean"))
        .reset_index()
    )
    ad = ad.assign(
        key=ad["adrg"],
        level="adrg",
        source="published_adrg_mean",
        mdc="",
        n=0,
        cv=np.nan,
        points=ad["rw"] * scale,
        mean_los=np.nan,
        per_diem_rate_fen=np.nan,
        per_diem_points=np.nan,
        per_diem_case_rate_fen=np.nan,
        m_all_fen=float(m_all_fen),
    )
    ad["mean_cost_fen"] = np.floor(ad["mean_cost_fen"] + 0.5).astype(np.int64)
    out = pd.concat([out, ad[WEIGHT_COLUMNS]], ignore_index=True)[WEIGHT_COLUMNS]
    out.attrs.update({"m_all_fen": float(m_all_fen), "scale": scale})
    return out


def _table_m_all(df: pd.DataFrame, meta: dict[str, str]) -> float | None:
    """The unrounded all-case mean of a drgsim weights table: its m_all_fen column, else
    the parquet metadata (older files); never the rounded 'all' row."""
    if "m_all_fen" in df.columns:
        v = pd.to_numeric(df["m_all_fen"], errors="coerce").dropna()
        if len(v) and np.isfinite(v.iloc[0]) and v.iloc[0] > 0:
            return float(v.iloc[0])
    try:
        m = float(meta.get("drgsim.m_all_fen", "nan"))
    except ValueError:
        return None
    return m if np.isfinite(m) and m > 0 else None


def write_weights(
    weights: pd.DataFrame, path: str | os.PathLike[str], provenance: dict[str, str]
) -> None:
    """Weights parquet with m_all, scale, RIV and provenance in the key-value metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.Table.from_pandas(weights, preserve_index=False)
    meta = dict(t.schema.metadata or {})
    extra = {f"drgsim.{k}": str(v) for k, v in weights.attrs.items()}
    extra.update(provenance)
    meta.update({k.encode(): str(v).encode() for k, v in extra.items()})
    from drgsim.output import atomic_path

    with atomic_path(path) as tmp:  # never a half-written weights file
        pq.write_table(t.replace_schema_metadata(meta), tmp)


__all__ = [
    "WeightsError",
    "calibrate",
    "quality_summary",
    "read_weights",
    "scheme_drgs",
    "trim_mask",
    "write_weights",
    "year_case_weights",
]
