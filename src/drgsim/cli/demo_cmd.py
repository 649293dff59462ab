"""``drgsim demo``: the whole pipeline on built-in synthetic data, in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from drgsim.cli.common import (
    bundled_specs,
    console,
    fail,
    policy_option,
    policy_with_scheme,
    scheme_option,
    seed_option,
    threads_option,
)
from drgsim.errors import DrgsimError


@click.command("demo")
@click.option("-o", "--out", "out", default="demo_out", show_default=True, type=click.Path(),
              help="Output folder.")
@click.option("--discharges", default=200_000, show_default=True, type=click.IntRange(1000),
              help="Discharges over all years of the synthetic region.")
@click.option("--hospitals", default=40, show_default=True, type=click.IntRange(1),
              help="Hospitals in the synthetic region.")
@seed_option
@scheme_option
@threads_option
@policy_option
@click.option("--method", type=click.Choice(["drg", "dip"]), default="drg", show_default=True,
              help="drg: group and calibrate; dip: build a DIP packet catalogue from the "
                   "history, match, score and settle by packet (policy dip_baseline).")
def demo(out, discharges, hospitals, seed, scheme, threads, policy_file, method):
    """Synthetic region -> group -> calibrate on the history years -> simulate the last year
    -> sweep the bundled example scenarios against the baseline.

    Writes the region, the grouped cases, the simulation's tables, workbook and plots, and
    each sweep's tables, sweep.xlsx and plots (OUT/sweeps/<file>/) under OUT, and prints
    where they are.

    \b
    Example:
      drgsim demo                              # about a minute on 2 cores
      drgsim demo -o /tmp/demo --discharges 1000000 --hospitals 120 --seed 7
      drgsim demo --method dip -o /tmp/dip   # synth -> DIP catalogue -> match -> settle -> sweep
    """
    if method == "dip":
        _demo_dip(out, discharges, hospitals, seed, scheme, policy_file, threads)
        return
    import warnings

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from drgsim import synth
    from drgsim.grouper.core import load_scheme
    from drgsim.grouper.stream import group_file
    from drgsim.output import OutputFolder, check_output, fingerprint

    con = console()
    root = Path(out)
    try:
        check_output(root, [policy_file], folder=True)
        pol = None
        if policy_file:  # a DIP policy would fail only at the sweep, after all the work
            from drgsim.policy import load_policy
            pol = load_policy(policy_file)
            if pol.method != "drg":
                raise DrgsimError(f"policy {pol.name} is method {pol.method}: "
                                  f"run drgsim demo --method {pol.method}")
        # the scenario files, validated against the policy (and overlaying it) before any work
        specs = bundled_specs("drg", pol)
        # OUT/manifest.json is written last: OUT/region and OUT/simulation have their own
        options = {"command": "demo", "discharges": discharges, "hospitals": hospitals,
                   "seed": seed, "scheme": scheme}
        folder = OutputFolder(root, fingerprint([], options), owned=["grouped.parquet"],
                              writer="demo").open()
        cs = load_scheme(scheme)
        cols = (TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn())
        with Progress(*cols, console=con, transient=True) as bar:
            task = bar.add_task("synthesise", total=discharges)
            made = synth.region(root / "region", discharges=discharges, hospitals=hospitals,
                                seed=seed, scheme=scheme,
                                progress=lambda k: bar.advance(task, k))
            task = bar.add_task("group", total=made.rows)
            summary = group_file(root / "region" / "discharges", root / "grouped.parquet", cs,
                                 threads=threads, progress=lambda k: bar.advance(task, k))
            folder.record("grouped.parquet")
        con.print(f"[bold]1. synthetic region[/]: {made.rows:,} discharges, {hospitals} hospitals "
                  f"-> {root / 'region'}")
        con.print(f"[bold]2. grouped[/] with {cs.name} {cs.version}: {summary.rows:,} rows, "
                  f"{summary.grouped_share:.2%} ok "
                  f"({summary.rows / max(summary.seconds, 1e-9):,.0f} records/s) "
                  f"-> {root / 'grouped.parquet'}")
        for status, n in sorted(summary.status_counts.items(), key=lambda kv: -kv[1]):
            con.print(f"     {status:<18} {n:>10,}  {n / summary.rows:7.2%}")

        import drgsim
        from drgsim.report import write_outputs
        from drgsim.report.sweep import write_sweep_outputs
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # prepared once: the simulation and every sweep settle on it
            # priced with the scheme it was grouped with (said when the policy names another)
            policy = policy_with_scheme(policy_file, scheme, str(root / "grouped.parquet"))
            base = drgsim.prepare(root / "grouped.parquet", policy=policy,
                                  hospitals=root / "region" / "hospitals.parquet",
                                  region=root / "region" / "region.parquet")
            tables = base.simulate()
            sim_fp = fingerprint([root / "grouped.parquet", policy_file],
                                 {"command": "demo simulate", **options})
            paths = write_outputs(tables, root / "simulation", sim_fp)
            swept = []
            for spec in specs:
                res = base.sweep(spec)
                sw_fp = fingerprint([root / "grouped.parquet", policy_file, spec.file],
                                    {"command": "demo sweep", **options})
                write_sweep_outputs(res, root / "sweeps" / Path(spec.file).stem, sw_fp)
                swept.append((spec, res))
        folder.commit({**options, "parts": ["region", "grouped.parquet", "simulation",
                                            *(f"sweeps/{Path(s.file).stem}" for s in specs)]})
        for msg in sorted({str(w.message) for w in caught}):
            con.print(f"     warning: {msg}")
        con.print("[bold]3. calibrated[/] weights on the history years and [bold]simulated[/] "
                  "the last year:")
        _print_summary(con, tables)
        con.print(f"[bold]4. outputs[/] in {root / 'simulation'}: "
                  + ", ".join(sorted(p.name for p in paths.values())))
        _print_sweeps(con, root, swept, "example scenarios")
    except DrgsimError as exc:
        fail(exc)


def _print_summary(con: Any, tables: dict[str, Any]) -> None:
    """The simulation's summary items (not its drgsim.* provenance rows)."""
    for _, r in tables["summary"].iterrows():
        if not str(r["item"]).startswith("drgsim."):
            con.print(f"     {r['item']}: {r['value']}")


def _print_sweeps(con: Any, root: Path, swept: list, what: str) -> None:
    """Step 5 of a demo: each bundled scenario file swept, with its summary lines."""
    from drgsim.cli.sweep_cmd import summary_lines

    con.print(f"[bold]5. swept[/] the bundled {what} against the baseline "
              f"-> {root / 'sweeps'}/<file>/ (sweep.xlsx, parquet, plots):")
    for spec, res in swept:
        draws = int(res.hospitals["draw"].nunique()) if len(res.hospitals) else 1
        con.print(f"     {spec.name}: {len(res.scenarios)} scenarios × {draws} draw(s) — "
                  f"{spec.description}")
        for line in summary_lines(res):
            con.print("   " + line, markup=False)


def _demo_dip(out, discharges, hospitals, seed, scheme, policy_file,
              threads=None) -> None:
    """``drgsim demo --method dip``: synthetic region -> DIP catalogue from the history years
    (with its report) -> matched cases -> simulation of the last year -> the bundled DIP
    scenario files swept (data/scenarios/dip_*.yaml: outlier bounds, budget growth ×
    point-value basis with volume growth drawn)."""
    import warnings

    import pandas as pd

    import drgsim
    from drgsim import synth
    from drgsim.output import OutputFolder, atomic_path, check_output, fingerprint
    from drgsim.policy import load_policy
    from drgsim.report import write_outputs
    from drgsim.report.sweep import write_sweep_outputs
    from drgsim.settlement.simulate import read_table

    con = console()
    root = Path(out)
    try:
        pol = load_policy(policy_file or "dip_baseline")
        if pol.method != "dip":
            raise DrgsimError(f"demo --method dip needs a DIP policy; {pol.name} is {pol.method}")
        try:
            from drgsim.dip.build import build
            from drgsim.dip.match import match
            from drgsim.dip.tables import write_catalogue
        except ImportError as exc:
            raise DrgsimError(
                f"demo --method dip needs drgsim.dip (catalogue building and matching): {exc}"
            ) from None
        specs = bundled_specs("dip", pol)  # validated against the policy before any work
        check_output(root, [policy_file], folder=True)
        options = {"command": "demo", "method": "dip", "discharges": discharges,
                   "hospitals": hospitals, "seed": seed, "scheme": scheme}
        folder = OutputFolder(root, fingerprint([policy_file], options),
                              owned=["matched.parquet"], writer="demo").open()
        made = synth.region(root / "region", discharges=discharges, hospitals=hospitals,
                            seed=seed, scheme=scheme)
        con.print(f"[bold]1. synthetic region[/]: {made.rows:,} discharges, {hospitals} "
                  f"hospitals -> {root / 'region'}")
        df, _ = read_table(root / "region" / "discharges")
        hosp = pd.read_parquet(root / "region" / "hospitals.parquet")
        years = pd.to_datetime(df["discharge_date"], errors="coerce").dt.year
        year = int(years.max())
        hist = df[(years < year).to_numpy()]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cat, assigned = build(hist, policy=pol, scheme=scheme, hospitals=hosp)
            write_catalogue(cat, root / "catalogue")
            pk = cat.packets
            n_core = int((pk["kind"] == "core").sum())
            # base packets are core packets; the denominator is the cases the build used
            in_core = int(pk.loc[pk["kind"] == "core", "n_cases"].sum())
            core_share = in_core / max(int(pk["n_cases"].sum()), 1)
            con.print(f"[bold]2. DIP catalogue[/] from {len(hist):,} history cases "
                      f"({', '.join(str(y) for y in sorted(years[years < year].unique()))}): "
                      f"{len(pk):,} packets ({n_core:,} core of which "
                      f"{int(pk.get('base', pd.Series(0)).sum()):,} base, {len(pk) - n_core:,} "
                      f"comprehensive), core packets hold {core_share:.1%} of the history cases "
                      f"-> {root / 'catalogue'}")
            matched = match(df, catalogue=cat, scheme=scheme, threads=threads)
            with atomic_path(root / "matched.parquet") as tmp:
                matched.to_parquet(tmp, index=False)
            folder.record("matched.parquet")
            st = matched["dip_status"].astype(str).value_counts(normalize=True)
            con.print("[bold]3. matched[/] every discharge: "
                      + ", ".join(f"{k} {v:.2%}" for k, v in st.items()))
            base = drgsim.prepare(matched, policy=pol, hospitals=hosp,
                                  region=root / "region" / "region.parquet", catalogue=cat)
            tables = base.simulate()
            paths = write_outputs(tables, root / "simulation",
                                  fingerprint([policy_file], {**options, "part": "simulate"}))
            swept = []
            for spec in specs:
                res = base.sweep(spec)
                write_sweep_outputs(res, root / "sweeps" / Path(spec.file).stem, fingerprint(
                    [policy_file, spec.file], {**options, "part": "sweep"}))
                swept.append((spec, res))
        folder.commit({**options, "parts": ["region", "catalogue", "matched.parquet",
                                            "simulation",
                                            *(f"sweeps/{Path(s.file).stem}" for s in specs)]})
        for msg in sorted({str(w.message) for w in caught}):
            con.print(f"     warning: {msg}")
        ledger_sum = int(tables["ledger"]["amount_fen"].sum())
        con.print(f"[bold]4. simulated[/] {year} by packet (ledger sums to {ledger_sum} fen):")
        _print_summary(con, tables)
        con.print(f"     outputs in {root / 'simulation'}: "
                  + ", ".join(sorted(p.name for p in paths.values())))
        _print_sweeps(con, root, swept, "DIP scenarios")
    except DrgsimError as exc:
        fail(exc)
