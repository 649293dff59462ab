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
    import pandas as pd

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
        early = _history_years(history) if year is not None else None
        if early:  # a year the history cannot build is refused before the build
            catalogue_years(year, early, [], _n_years(pol, year, early))
        cat, assigned = build(history, policy=pol, scheme=scheme, hospitals=hospitals,
                              year=year, base_packets=base_packets,
                              treatment_table=treatment_types)
        found = sorted(int(y) for y in pd.unique(assigned["year"]) if y >= 0)
        said = catalogue_years(year, found, [int(y) for y in cat.meta["years"]],
                               _n_years(pol, year, found))
        write_catalogue(cat, out)
    except DrgsimError as exc:
        fail(exc)
        return
    if said:
        con.print(f"warning: {said}", markup=False)
    click.echo(cat.report, nl=False)
    con.print(f"wrote {out} ({len(cat.packets):,} packets)")


def _years(ys: list[int]) -> str:
    """2022–2025 for consecutive years, else 2022, 2024."""
    if not ys:
        return "none"
    if ys == list(range(ys[0], ys[-1] + 1)) and len(ys) > 1:
        return f"{ys[0]}–{ys[-1]}"
    return ", ".join(str(y) for y in ys)


def _history_years(history: str) -> list[int] | None:
    """The history's discharge years from its date column alone (parquet file or folder);
    None where that cannot be read cheaply (CSV, Excel, other columns: the build says)."""
    import numpy as np

    p = Path(history)
    if not (p.is_dir() or p.suffix.lower() == ".parquet"):
        return None
    try:
        import pyarrow.dataset as ds

        from drgsim.dip.build import _years_of

        d = ds.dataset(str(p), format="parquet", partitioning="hive" if p.is_dir() else None)
        if "discharge_date" not in d.schema.names:
            return None
        y = _years_of(d.to_table(columns=["discharge_date"]).column(0))
    except Exception:  # noqa: BLE001 - unreadable here: the build reads and names it
        return None
    return sorted(int(v) for v in np.unique(y) if v >= 0)


def _n_years(policy: object, year: int | None, found: list[int]) -> int:
    """How many history years the catalogue weights (len of dip year_weights, 1:2:7)."""
    from drgsim.dip.build import resolve_params
    from drgsim.policy import load_policy

    pol = load_policy(policy) if isinstance(policy, (str, Path)) else policy
    at = year if year is not None else (found[-1] + 1 if found else None)
    return len(resolve_params(pol, at)["year_weights"])


def catalogue_years(year: int | None, found: list[int], used: list[int], n: int) -> str | None:
    """The catalogue for year Y is built from the n years before it (Y-3..Y-1 with 1:2:7).
    None when the history has them all; a warning naming the years expected, found and
    used when some are missing (the build weighted the latest years before Y there are);
    refused (:class:`RecordsError`) when none of them is in the history (e.g. --year 2030
    on 2022–2025), which would score a year from history years it does not name."""
    from drgsim.errors import RecordsError

    y = year if year is not None else (found[-1] + 1 if found else None)
    if y is None:
        return None
    want = list(range(y - n, y))
    missing = [x for x in want if x not in found]
    if not missing:
        return None
    if len(missing) == len(want):
        before = [x for x in found if x < y][-n:]
        hint = (f"give --year {found[-1] + 1} (built from {_years(before)})" if found
                else "give history")
        raise RecordsError(
            f"--year {y}: its catalogue is built from the {n} years before it ({_years(want)}), "
            f"but the history has {_years(found)}: {hint}, or the history of {_years(want)}")
    return (f"the catalogue for {y} is built from {_years(want)}, but the history lacks "
            f"{_years(missing)}: built from {_years(used)} (history has {_years(found)})")


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
