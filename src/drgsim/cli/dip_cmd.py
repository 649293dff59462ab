"""``drgsim dip``: build a region's DIP packet catalogue from history, validate one."""

from __future__ import annotations

from pathlib import Path

import click

from drgsim.cli.common import console, fail, out_option, scheme_option


@click.group("dip")
def dip() -> None:
    """DIP (按病种分值付费): build and validate a region's packet catalogue.

    \b
    Example:
      drgsim synth -o region/ --discharges 200000
      drgsim dip build region/discharges -o catalogue/ --hospitals region/hospitals.parquet
      drgsim dip validate catalogue/
    """


@dip.command("build")
@click.argument("history", type=click.Path(exists=True))
@out_option
@click.option("--policy", "policy_file", default=None, metavar="FILE|NAME",
              help="Policy YAML with a dip: section, or a bundled name such as dip_baseline "
                   "(default: the build defaults of DIP.md).")
@click.option("--year", type=int, default=None,
              help="Year the catalogue is for; built from the 3 history years before it "
                   "(Y-3..Y-1, weighted 1:2:7; a warning when HISTORY lacks some, refused "
                   "when it has none of them; default: the year after the latest in HISTORY).")
@scheme_option
@click.option("--hospitals", default=None, type=click.Path(exists=True), metavar="FILE",
              help="Hospitals table (hospital_id, level) for the level means C "
                   "(without it: no level means).")
@click.option("--base-packets", default=None, metavar="FILE|demo|none",
              help="List of base packets (CSV with a packet column; default: the demo's list).")
@click.option("--treatment-types", default=None, type=click.Path(exists=True), metavar="FILE",
              help="A region's treatment-type table (columns as data/dip/treatment_types.csv; "
                   "default: the shipped one).")
def build_cmd(history, out, policy_file, year, scheme, hospitals, base_packets,
              treatment_types) -> None:
    """Build a DIP catalogue (packets, scores, level means, auxiliary coefficients) from
    HISTORY (discharges of the history years: parquet file or folder, CSV, .xlsx).

    Writes catalogue.csv, packets.csv, levels.csv, aux.csv, report.txt and manifest.json
    into the -o folder and prints the report.

    \b
    Example:
      drgsim dip build region/discharges -o catalogue/ --hospitals region/hospitals.parquet \\
          --year 2025
      drgsim dip build history.parquet -o catalogue/ --policy dip_baseline
    """
    from drgsim.dip import build, write_catalogue
    from drgsim.dip.tables import FILES, REPORT
    from drgsim.errors import DrgsimError
    from drgsim.output import check_output

    con = console()
    try:
        check_output(out, [history, hospitals, treatment_types], folder=True,
                     writes=[*FILES, REPORT])
        pol = policy_file
        if pol is not None and not Path(pol).exists():
            from drgsim.policy import bundled_policy_path

            pol = bundled_policy_path(pol)
        # the build refuses a year the history has none of (from a parquet history's dates
        # alone, before reading it) and notes the years it lacks (dip.build.catalogue_years)
        cat, _ = build(history, policy=pol, scheme=scheme, hospitals=hospitals, year=year,
                       base_packets=base_packets, treatment_table=treatment_types)
        write_catalogue(cat, out)
    except DrgsimError as exc:
        fail(exc)
        return
    if cat.info.years_note:
        con.print(f"warning: {cat.info.years_note}", markup=False)
    click.echo(cat.report, nl=False)
    con.print(f"wrote {out} ({len(cat.packets):,} packets)")


@dip.command("validate")
@click.argument("path", type=click.Path(), metavar="DIR")
def validate_cmd(path: str) -> None:
    """Check a DIP catalogue folder; print every problem as file:line: column: message.

    \b
    Example:
      drgsim dip validate catalogue/
    """
    from drgsim.dip import validate_catalogue

    con = console()
    problems = validate_catalogue(path)
    if problems:
        for p in problems:
            click.echo(str(p))
        con.print(f"[red]{len(problems)} problem(s)[/]")
        raise SystemExit(1)
    from drgsim.dip import read_catalogue

    cat = read_catalogue(path)
    kinds = cat.packets["kind"].value_counts().to_dict()
    click.echo(f"{path}: OK — DIP {cat.meta['version']}, {len(cat.packets):,} packets "
               f"({kinds.get('core', 0):,} core, {kinds.get('comprehensive', 0):,} "
               f"comprehensive), {len(cat.levels):,} level means, {len(cat.aux):,} aux rows")
