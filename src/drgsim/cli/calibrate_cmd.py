"""``drgsim calibrate``: relative weights and base points from history."""

from __future__ import annotations

import click

from drgsim.cli.common import (
    console,
    fail,
    out_option,
    policy_option,
    policy_with_scheme,
    scheme_override_option,
)
from drgsim.errors import DrgsimError


@click.command("calibrate")
@click.argument("history", type=click.Path(exists=True))
@out_option
@click.option(
    "--year",
    type=int,
    default=None,
    help="Year the weights are for (default: the year after the latest in HISTORY).",
)
@policy_option
@scheme_override_option
@click.option(
    "--weights",
    "weights_file",
    default=None,
    type=click.Path(exists=True),
    help="A region's published weights (CSV/parquet: drg and rw or points; optional mean_cost) to validate and convert instead.",
)
@click.option(
    "--grouped", is_flag=True, help="HISTORY is grouped cases even without drgsim provenance."
)
def calibrate(history, out, year, policy_file, scheme, weights_file, grouped) -> None:
    """Calibrate DRG weights (n, mean, CV, RW, base points, reference mean, per-diem rate) from history.

    HISTORY: grouped cases (output of 'drgsim group') or raw records (grouped on the way
    with --scheme, else the policy's scheme); the years before --year are used, weighted
    and inflated as the policy says.

    \b
    Example:
      drgsim calibrate grouped.parquet --year 2024 -o weights.parquet
      drgsim calibrate grouped.parquet --weights published.csv -o weights.parquet
      drgsim calibrate region/discharges --scheme beijing_2022 -o weights.parquet
    """
    import pandas as pd

    from drgsim import __version__
    from drgsim.calibrate import calibrate as run_calibrate
    from drgsim.calibrate import quality_summary, read_weights, write_weights
    from drgsim.output import check_output
    from drgsim.policy import load_policy, resolve_year
    from drgsim.settlement.simulate import (
        GROUPER_COLUMNS,
        file_hash,
        per_diem_categories_of,
        read_table,
    )

    con = console()
    try:
        check_output(out, [history, weights_file, policy_file], (".parquet", ".pq"))
        pol = policy_with_scheme(policy_file, scheme, history, grouped)
        pol = pol if scheme is not None else load_policy(policy_file)
        df, meta = read_table(history)
        if not (grouped or "drgsim.scheme" in meta):
            from drgsim.grouper import group

            df = df.rename(columns={c: f"hospital_{c}" for c in GROUPER_COLUMNS if c in df.columns})
            df = group(df, scheme=pol.scheme)
            meta.update({str(k): str(v) for k, v in df.attrs.items()})
        if "discharge_date" not in df.columns:
            from drgsim.errors import RecordsError

            raise RecordsError(f"{history}: no discharge_date column (it dates the history "
                               "years)")
        years = pd.to_datetime(df["discharge_date"], errors="coerce").dt.year
        y = year or int(years.max()) + 1
        pv = per_diem_categories_of(resolve_year(pol, y))  # 1 January; every per-diem category
        if weights_file:
            hist = df[(years < y).to_numpy() & (df["status"] == "ok").to_numpy()]
            m_all = None
            if len(hist):
                from drgsim.pricing.money import yuan_to_fen

                m_all = float(yuan_to_fen(hist["total_cost"])[0].mean())
            w = read_weights(weights_file, pv, m_all)
        else:
            w = run_calibrate(df, pv, y, scheme=pol.scheme)
        prov = {
            "drgsim.version": __version__,
            "drgsim.policy_hash": pol.text_hash,
            "drgsim.scheme": meta.get("drgsim.scheme", pol.scheme),
            "drgsim.scheme_hash": meta.get("drgsim.scheme_hash", ""),
            "drgsim.history_hash": file_hash(history),
        }
        if weights_file:
            prov["drgsim.weights_hash"] = file_hash(weights_file)
        write_weights(w, out, prov)
    except DrgsimError as exc:
        fail(exc)
        return
    q = quality_summary(w)
    con.print(
        f"weights for {y}: {q['drgs']} DRGs ({q['drgs_own_weight']} own, {q['drgs_fallback']} by fallback), "
        f"m_all {q['m_all_yuan']:,.2f} yuan, RIV {q['riv'] if q['riv'] is not None else float('nan'):.3f}, "
        f"median CV {q['median_cv']:.3f}, CV > 1: {q['groups_cv_above_1']}"
    )
    con.print(f"wrote {out}")
