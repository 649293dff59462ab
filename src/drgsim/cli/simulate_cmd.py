"""``drgsim simulate``: price and settle a year of cases under a policy."""

from __future__ import annotations

import click

from drgsim.cli.common import (
    check_engine,
    console,
    engine_option,
    fail,
    out_option,
    policy_option,
    policy_with_scheme,
    scheduler_option,
    scheme_override_option,
)
from drgsim.errors import DrgsimError


@click.command("simulate")
@click.argument("cases", type=click.Path(exists=True))
@out_option
@policy_option
@scheme_override_option
@click.option(
    "--weights",
    "weights_file",
    default=None,
    type=click.Path(exists=True),
    help="Weights (from 'drgsim calibrate' or a region's published CSV/parquet); default: calibrated on the history years.",
)
@click.option(
    "--hospitals",
    "hospitals_file",
    default=None,
    type=click.Path(exists=True),
    help="Hospitals table: hospital_id, level, optional coefficient and assessment_score.",
)
@click.option(
    "--region",
    "region_file",
    default=None,
    type=click.Path(exists=True),
    help="Fund figures per fund and year (fund, year, drg_spending) for the budget rule.",
)
@click.option(
    "--year",
    type=int,
    default=None,
    help="Simulated year (default: the latest in CASES; earlier years are history).",
)
@click.option("--grouped", is_flag=True, help="CASES are grouped even without drgsim provenance.")
@click.option(
    "--catalogue",
    "catalogue_dir",
    default=None,
    type=click.Path(exists=True, file_okay=False),
    help="DIP policies (method: dip): the packet catalogue folder ('drgsim dip build'); "
    "default: built from the history years.",
)
@engine_option
@scheduler_option
def simulate(
    cases, out, policy_file, scheme, weights_file, hospitals_file, region_file, year, grouped,
    catalogue_dir, engine, scheduler,
) -> None:
    """Price every case in points, derive the point value from the budget and settle each
    hospital per month and year; write parquet tables, an Excel workbook and plots to DIR,
    and DIR/manifest.json last (a folder without it is incomplete).

    CASES: output of 'drgsim group' (recognised by its provenance, or --grouped) or raw
    records (grouped with --scheme, else the policy's scheme), a file or a folder.

    \b
    Example:
      drgsim simulate grouped.parquet --hospitals hospitals.parquet --region region.parquet -o out/
      drgsim simulate grouped.parquet --weights weights.parquet --year 2024 \\
          --region region.parquet -o out/
      drgsim simulate region/discharges --scheme beijing_2022 --region region.parquet -o out/
      drgsim simulate region/discharges --policy dip_baseline --catalogue cat/ \\
          --region region/region.parquet -o out/    # DIP
      drgsim simulate grouped/ --engine dask --scheduler tcp://10.0.0.5:8786 \\
          --hospitals hospitals.parquet --region region.parquet -o out/

    With --engine dask, CASES (parquet) are priced per hospital partition on the cluster
    and settled on this machine; the tables are the same as without it (the per-case
    table is gathered here to be written). DIP policies too (matched per partition, with
    --catalogue or one built from the history years on the engine).
    """
    check_engine(engine, scheduler, {})
    import warnings

    from drgsim.output import check_output, fingerprint
    from drgsim.report import OUTPUT_FILES, write_outputs
    from drgsim.settlement.simulate import simulate as run

    con = console()
    inputs = [cases, policy_file, weights_file, hospitals_file, region_file]
    if catalogue_dir is not None:  # DIP: DRG runs keep their fingerprints
        inputs.append(catalogue_dir)
    try:
        check_output(out, inputs, folder=True, writes=OUTPUT_FILES)
        opts = {"command": "simulate", "year": year, "grouped": grouped}
        if scheme is not None:  # runs without --scheme keep their fingerprints
            opts["scheme"] = scheme
        fp = fingerprint(inputs, opts)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            policy_file = policy_with_scheme(policy_file, scheme, cases, grouped)
            if engine == "spark":
                tables = _simulate_spark(cases, policy_file, weights_file, hospitals_file,
                                         region_file, year, grouped, scheduler, catalogue_dir)
            elif engine == "dask":
                tables = _simulate_dask(cases, policy_file, weights_file, hospitals_file,
                                        region_file, year, grouped, scheduler, catalogue_dir)
            else:
                tables = run(
                    cases,
                    policy_file,
                    weights_file,
                    hospitals_file,
                    region_file,
                    year,
                    True if grouped else None,
                    catalogue=catalogue_dir,
                )
            paths = write_outputs(tables, out, fp)
        for w in {str(w.message) for w in caught}:
            con.print(f"warning: {w}")
    except DrgsimError as exc:
        fail(exc)
        return
    for _, r in tables["summary"].iterrows():
        if not str(r["item"]).startswith("drgsim."):
            con.print(f"{r['item']}: {r['value']}")
    con.print(f"wrote {len(paths)} files to {out}: " + ", ".join(p.name for p in paths.values()))


def _simulate_dask(cases, policy_file, weights_file, hospitals_file, region_file, year, grouped,
                   scheduler, catalogue=None):
    """``simulate --engine dask``: the same tables, priced on the cluster."""
    try:
        import drgsim.dask as dg
    except ImportError as exc:
        raise DrgsimError(str(exc)) from None
    with dg.cluster(scheduler) as client:
        is_grouped = True if grouped or dg.is_grouped(cases) else False
        tables = dg.simulate(dg.read_parquet(cases), policy_file, weights_file, hospitals_file,
                             region_file, year, grouped=is_grouped, client=client,
                             catalogue=catalogue)
        attrs = tables["cases"].attrs
        tables["cases"] = tables["cases"].compute()
        tables["cases"].attrs = attrs
    return tables


def _simulate_spark(cases, policy_file, weights_file, hospitals_file, region_file, year,
                    grouped, master, catalogue=None):
    """``simulate --engine spark``: the same tables, priced per hospital group on Spark."""
    import drgsim.spark as dsp

    dsp._pyspark()  # SparkError (a DrgsimError) without pyspark
    with dsp.session(master):
        is_grouped = True if grouped or dsp.is_grouped(cases) else None
        tables = dsp.simulate(dsp.read_parquet(cases), policy_file, weights_file,
                              hospitals_file, region_file, year, grouped=is_grouped,
                              catalogue=catalogue)
        prov = dsp.provenance_of(tables["cases"])
        tables["cases"] = tables["cases"].toPandas()
        tables["cases"].attrs = prov
    return tables
