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


# --scheme on simulate/sweep: no default, so that only a scheme the person names overrides
# the policy's (the bundled policies name chs_drg_11)
scheme_override_option = click.option(
    "--scheme", default=None, metavar="NAME|PATH",
    help="Scheme that groups (DRG) or matches (DIP) raw CASES, in place of the policy's "
         "'scheme:' (said in a warning when they differ). Refused when CASES were grouped "
         "with another scheme (their provenance says which).",
)


def cases_provenance(cases: str) -> dict[str, str]:
    """drgsim's provenance of a cases file or folder (parquet key-value metadata, or a
    partitioned output's sidecar); {} for CSV/Excel or records without any."""
    import json

    import pyarrow.parquet as pq

    from drgsim.distributed.output import DATA, PROVENANCE

    p = Path(cases)
    if p.is_dir():
        for side in (p / PROVENANCE, p / DATA / PROVENANCE):
            if side.is_file():
                return {str(k): str(v) for k, v in json.loads(side.read_text("utf-8")).items()}
        p = next(iter(sorted(f for f in p.rglob("*.parquet")
                             if not f.name.startswith((".", "_")))), p)
    if p.is_file() and p.suffix.lower() == ".parquet":
        try:
            meta = pq.read_schema(p).metadata or {}
        except Exception:  # noqa: BLE001 - a broken file is named later, by the reader
            return {}
        return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in meta.items()
                if k.startswith(b"drgsim.")}
    return {}


def policy_with_scheme(policy_file: str | None, scheme: str | None, cases: str,
                       grouped: bool = False):
    """The policy to run with when ``--scheme`` is given: the policy's scheme replaced by it.

    --scheme wins over the policy's ``scheme:`` (a warning says so when they differ);
    CASES grouped with another scheme (provenance, or ``--grouped`` without provenance,
    where the scheme is unknown) are refused: a run never mixes two schemes silently.
    Without --scheme the policy file is returned unchanged.
    """
    if scheme is None:
        return policy_file
    import dataclasses
    import warnings

    from drgsim.grouper.core import load_scheme
    from drgsim.policy import load_policy

    pol = load_policy(policy_file)
    cs = load_scheme(scheme)  # an unknown scheme: SchemeNotFoundError, one line
    meta = cases_provenance(cases)
    if "drgsim.scheme" in meta:
        theirs, their_hash = meta["drgsim.scheme"], meta.get("drgsim.scheme_hash", "")
        same = their_hash == cs.content_hash if their_hash else theirs == cs.name
        if not same:
            raise DrgsimError(
                f"{cases} was grouped with scheme {theirs!r} (its provenance), not --scheme "
                f"{scheme} ({cs.name}): drop --scheme, or group the raw records again with "
                f"--scheme {scheme}")
    elif grouped:
        raise DrgsimError(f"--grouped and --scheme {scheme}: the scheme CASES were grouped "
                          "with is unknown (no provenance); drop --scheme, or give the raw "
                          "records")
    if pol.scheme != str(scheme) and load_scheme(pol.scheme).content_hash != cs.content_hash:
        warnings.warn(f"--scheme {scheme} replaces policy {pol.name}'s scheme {pol.scheme}",
                      stacklevel=2)
    return dataclasses.replace(pol, scheme=str(scheme))


def bundled_specs(method: str, policy=None) -> list:
    """The bundled example scenario files for a method (drg or dip: their ``base`` policy's
    method), validated against ``policy`` when given (its keys, its method) and then
    overlaying it."""
    from drgsim.scenarios.files import bundled_scenarios_path, load_scenario_files

    files = [s.file for s in load_scenario_files(bundled_scenarios_path())
             if s.base_policy().method == method]
    if policy is None:
        return [load_scenario_files(f)[0] for f in files]
    specs = [load_scenario_files(f, policy)[0] for f in files]
    for s in specs:
        s.base = str(policy.source)
    return specs
