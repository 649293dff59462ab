"""``drgsim group``: group a file of discharge records into a file."""

from __future__ import annotations

from pathlib import Path

import click

from drgsim.cli.common import console, fail, out_option, scheme_option, threads_option
from drgsim.errors import DrgsimError


@click.command("group")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True))
@out_option
@scheme_option
@click.option("--translate/--no-translate", default=False, show_default=True,
              help="Apply the scheme's optional code translation (dx_map/proc_map) first.")
@click.option("--encoding", default=None, help="Text encoding of a CSV input (default UTF-8).")
@click.option("--batch-rows", default=1 << 20, show_default=True, type=click.IntRange(1000),
              help="Rows per streamed batch (bounds memory).")
@threads_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def group(input_path, out, scheme, translate, encoding, batch_rows, threads, quiet):
    """Group discharge records (parquet, a folder of parquet, or CSV) into CHS-DRG groups.

    Every input row comes out, in order, with mdc, adrg, drg and status; the other
    columns pass through. Output format follows the extension of -o (.parquet or .csv).

    \b
    Example:
      drgsim group discharges.parquet -o grouped.parquet
      drgsim group month.csv -o grouped.csv --scheme beijing_2022
    """
    from drgsim.grouper.core import load_scheme
    from drgsim.grouper.stream import group_file, input_rows

    con = console()
    try:
        cs = load_scheme(scheme)
        total = input_rows(input_path)
        if quiet:
            summary = group_file(input_path, out, cs, translate, batch_rows, threads, encoding)
        else:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            with Progress(TextColumn("grouping"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=con, transient=True) as bar:
                task = bar.add_task("group", total=total)
                summary = group_file(input_path, out, cs, translate, batch_rows, threads,
                                     encoding, progress=lambda k: bar.advance(task, k))
    except DrgsimError as exc:
        fail(exc)
        return
    rate = summary.rows / summary.seconds if summary.seconds else 0.0
    con.print(f"[bold]{summary.rows:,}[/] rows grouped -> {out}  "
              f"({summary.grouped_share:.2%} ok, {rate:,.0f} records/s)")
    for status, n in sorted(summary.status_counts.items(), key=lambda kv: -kv[1]):
        con.print(f"  {status:<18} {n:>12,}  {n / summary.rows:7.2%}")
    if summary.missing_columns:
        con.print(f"  absent optional columns (all values absent): "
                  f"{', '.join(summary.missing_columns)}")
    con.print(f"  provenance: drgsim {cs.provenance['drgsim.version']}, scheme {cs.name} "
              f"{cs.version} (tables {cs.content_hash}), translation "
              f"{'on' if translate else 'off'}"
              + ("" if Path(out).suffix.lower() == ".csv" else "; stored in parquet metadata"))
