"""Options and output helpers shared by every command (one CLI style across commands)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from drgsim.errors import DrgsimError

scheme_option = click.option(
    "--scheme", default="chs_drg_11", show_default=True, metavar="NAME|PATH",
    help="Bundled scheme name (see 'drgsim scheme list') or a folder of scheme tables.",
)
out_option = click.option("-o", "--out", "out", required=True, type=click.Path(),
                          help="Output path.")
seed_option = click.option("--seed", default=1, show_default=True, type=int,
                           help="Random seed (same seed, same output).")
def _policy_path(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A policy file, or the name of a bundled policy (baseline, dip_baseline)."""
    if value is None or Path(value).exists():
        return value
    from drgsim.policy.loader import bundled_policy_path

    bundled = bundled_policy_path(value)
    if bundled.exists():
        return str(bundled)
    raise click.BadParameter(f"{value!r} is neither a file nor a bundled policy", ctx, param)


policy_option = click.option(
    "--policy", "policy_file", default=None, type=click.Path(), metavar="FILE|NAME",
    callback=_policy_path,
    help="Policy YAML, or a bundled policy's name (baseline, dip_baseline; default: the "
         "bundled baseline; see 'drgsim policy show').",
)
threads_option = click.option("--threads", default=None, type=click.IntRange(1, 256),
                              help="Worker threads (default: all cores).")


def fail(exc: Exception) -> None:
    """Print a drgsim error for a person and exit non-zero (no traceback for bad input)."""
    click.echo(f"error: {exc}", err=True)
    sys.exit(2 if isinstance(exc, DrgsimError) else 1)


def console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)

engine_option = click.option(
    "--engine", type=click.Choice(["local", "dask", "spark"]), default="local",
    show_default=True,
    help="local: this process. dask: a Dask cluster (pip install 'drgsim[dask]'), the one "
         "at --scheduler, else a local cluster of one worker per core. spark: a Spark "
         "session (pip install 'drgsim[spark]' and Java), the master at --scheduler, else "
         "local[*].",
)
scheduler_option = click.option(
    "--scheduler", default=None, metavar="ADDRESS",
    help="Address of a running Dask scheduler (e.g. tcp://10.0.0.5:8786) for --engine dask; "
         "the Spark master (e.g. spark://10.0.0.5:7077, yarn) for --engine spark.",
)


def check_engine(engine: str, scheduler: str | None, refused: dict[str, object]) -> None:
    """--scheduler only with --engine dask or spark; options a distributed path cannot
    honour are refused (``refused``: option -> its value when given), never ignored."""
    if scheduler and engine not in ("dask", "spark"):
        raise click.UsageError("--scheduler needs --engine dask or spark")
    if engine in ("dask", "spark"):
        given = [k for k, v in refused.items() if v]
        if given:
            raise click.UsageError(f"{', '.join(given)}: not supported with --engine {engine}")
