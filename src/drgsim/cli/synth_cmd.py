"""``drgsim synth``: write a synthetic region (a thin layer over :func:`drgsim.synth.region`)."""

from __future__ import annotations

import sys

import click

from drgsim.synth import params as P


def _parse_years(value: str) -> tuple[int, ...]:
    """``2022-2025`` or ``2022,2023`` (or a mix) -> (2022, 2023, ...)."""
    years: list[int] = []
    try:
        for part in value.replace(" ", "").split(","):
            if not part:
                continue
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                years.extend(range(lo, hi + 1))
            else:
                years.append(int(part))
    except ValueError as e:
        raise click.BadParameter(f"expected years like 2022-2025 or 2022,2023; got {value!r}") from e
    if not years:
        raise click.BadParameter("no year given")
    return tuple(years)


@click.command("synth", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-o", "--out", "out", required=True, type=click.Path(file_okay=False),
              help="Output folder (created).")
@click.option("--discharges", "n", type=click.IntRange(min=0), default=P.DEFAULT_DISCHARGES,
              show_default=True, help="Total discharges over all years.")
@click.option("--hospitals", type=click.IntRange(min=1), default=P.DEFAULT_HOSPITALS,
              show_default=True, help="Number of hospitals.")
@click.option("--years", default=f"{P.DEFAULT_YEARS[0]}-{P.DEFAULT_YEARS[-1]}",
              show_default=True, help="Years, e.g. 2022-2025 or 2023,2024.")
@click.option("--seed", type=click.IntRange(min=0, max=2**64 - 1), default=0, show_default=True,
              help="Random seed; same seed and arguments give byte-identical files.")
@click.option("--dirty-rate", type=click.FloatRange(0.0, 1.0), default=P.DEFAULT_DIRTY_RATE,
              show_default=True, help="Share of malformed rows (kind in column synth_dirt).")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet",
              show_default=True, help="parquet (typed) or csv (text, carries every dirt kind).")
@click.option("--encoding", default="utf-8", show_default=True,
              help="CSV encoding, e.g. gb18030.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=262_144, show_default=True,
              help="Rows per parquet row group / CSV write; does not change the data.")
@click.option("--scheme", default="chs_drg_11", show_default=True,
              help="Scheme whose tables the case mix is drawn from.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def synth(out: str, n: int, hospitals: int, years: str, seed: int, dirty_rate: float, fmt: str,
          encoding: str, chunk_size: int, scheme: str, quiet: bool) -> None:
    """Generate a synthetic region: discharges, hospitals and a fund table per year.

    \b
    Writes OUT/discharges/year=YYYY/month=MM/part-0.parquet (or .csv),
    OUT/hospitals.*, OUT/region.* and, last, OUT/manifest.json (a folder without it is
    incomplete). Re-running with the same arguments reuses what is already there.

    \b
    Example:
      drgsim synth -o demo_region                      # ~600k discharges a year, 2022-2025
      drgsim synth -o small --discharges 50000 --hospitals 20 --years 2023-2024 --seed 7
      drgsim synth -o dirty --format csv --encoding gb18030 --dirty-rate 0.05
    """
    from drgsim.cli.common import fail
    from drgsim.errors import DrgsimError
    from drgsim.output import check_output
    from drgsim.synth import SynthError, region

    year_list = _parse_years(years)
    show = not quiet and sys.stderr.isatty()
    try:
        check_output(out, [scheme], folder=True)
        if show:
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task("generating", total=n)
                res = region(out, discharges=n, hospitals=hospitals, years=year_list, seed=seed,
                             dirty_rate=dirty_rate, format=fmt, encoding=encoding,
                             chunk_size=chunk_size, scheme=scheme,
                             progress=lambda k: bar.advance(task, k))
        else:
            res = region(out, discharges=n, hospitals=hospitals, years=year_list, seed=seed,
                         dirty_rate=dirty_rate, format=fmt, encoding=encoding,
                         chunk_size=chunk_size, scheme=scheme)
    except SynthError as e:
        raise click.UsageError(str(e)) from e
    except DrgsimError as e:  # the output folder (not writable, disk full)
        fail(e)
    dirty = sum(res.dirt.values())
    click.echo(f"wrote {res.rows:,} discharges ({dirty:,} dirty) for {hospitals} hospitals, "
               f"years {year_list[0]}-{year_list[-1]} to {res.out}")
