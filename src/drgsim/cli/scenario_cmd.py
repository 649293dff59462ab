"""``drgsim scenario``: validate scenario files and show what they change."""

from __future__ import annotations

import json

import click

from drgsim.cli.common import fail
from drgsim.errors import DrgsimError


@click.group("scenario")
def scenario() -> None:
    """Validate and show scenario files (a sweep written down as YAML).

    \b
    Example:
      drgsim scenario validate budget_growth.yaml
      drgsim scenario show scenarios/
    """


@scenario.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
def validate(paths) -> None:
    """Validate scenario files (or folders of them; default: the bundled examples); every
    problem is printed as file:line: key: message.

    \b
    Example:
      drgsim scenario validate budget_growth.yaml
      drgsim scenario validate my_scenarios/
    """
    from drgsim.scenarios.files import bundled_scenarios_path, load_scenario_files

    bad = 0
    for path in paths or [str(bundled_scenarios_path())]:
        try:
            specs = load_scenario_files(path)
        except DrgsimError as exc:
            click.echo(str(exc), err=True)
            bad += 1
            continue
        for s in specs:
            draws = f", {s.draws_n} draws (seed {s.seed})" if s.draws_n else ""
            click.echo(f"ok: {s.file} ({s.name}: {s.n_scenarios} scenarios with the "
                       f"baseline{draws})")
    if bad:
        raise SystemExit(2)


def _fmt(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, default=str)
    return str(v)


@scenario.command("show")
@click.argument("path", type=click.Path(exists=True))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1),
              help="Show at most this many scenarios per file.")
def show(path, limit) -> None:
    """Show each scenario's effective values that differ from the baseline policy, its
    behaviour assumptions and draws.

    \b
    Example:
      drgsim scenario show budget_growth.yaml
      drgsim scenario show src/drgsim/data/scenarios/ --limit 5
    """
    from drgsim.scenarios.files import changes, load_scenario_files

    try:
        specs = load_scenario_files(path)
        for s in specs:
            policy = s.base_policy()
            overlays = s.overlays()
            click.echo(f"# {s.name} ({s.file}): base {s.base}, {len(overlays)} scenarios "
                       "with the baseline")
            if s.description:
                click.echo(f"# {s.description}")
            if s.grid:
                axes = ", ".join(f"{k} ({len(v)})" for k, v in s.grid.items())
                click.echo(f"grid: {axes}" + (f"; zipped: {s.zip}" if s.zip else ""))
            for i, (name, overlay) in enumerate(overlays[:limit]):
                click.echo(f"[{i}] {name}")
                rows = changes(policy, overlay)
                if not rows and i == 0:
                    click.echo("    (the baseline policy)")
                elif not rows:
                    click.echo("    (same values as the baseline)")
                for key, day, was, new in rows:
                    when = f" from {day}" if day else ""
                    click.echo(f"    {key}: {_fmt(was)} -> {_fmt(new)}{when}")
                for key in overlay:
                    if key.startswith("behaviour."):
                        click.echo(f"    {key}: {_fmt(overlay[key])} (behaviour)")
            if len(overlays) > limit:
                click.echo(f"... and {len(overlays) - limit} more (--limit)")
            for name, v in s.behaviour.items():
                click.echo(f"behaviour {name}: {_fmt(v)}")
            if s.draws_n:
                click.echo(f"draws: {s.draws_n}, seed {s.seed}")
    except DrgsimError as exc:
        fail(exc)
