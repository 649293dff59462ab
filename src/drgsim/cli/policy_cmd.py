"""``drgsim policy``: validate a payment policy file and show its values at a date."""

from __future__ import annotations

import json

import click

from drgsim.cli.common import _policy_path, fail
from drgsim.errors import DrgsimError


@click.group("policy")
def policy() -> None:
    """Validate and show payment policies (dated YAML parameters).

    \b
    Example:
      drgsim policy validate my_city.yaml
      drgsim policy show --date 2025-01-01
      drgsim policy show dip_baseline
    """


@policy.command("validate")
@click.argument("files", nargs=-1, type=click.Path(exists=True))
def validate(files) -> None:
    """Validate policy files; every problem is printed as file:line: key: message.

    \b
    Example:
      drgsim policy validate my_city.yaml
    """
    from drgsim.policy import bundled_policy_path, load_policy

    bad = 0
    for f in files or [str(bundled_policy_path())]:
        try:
            p = load_policy(f)
            click.echo(f"ok: {f} ({len(p.params)} parameters, hash {p.text_hash})")
        except DrgsimError as exc:
            click.echo(str(exc), err=True)
            bad += 1
    if bad:
        raise SystemExit(2)


@policy.command("show")
@click.argument("file", required=False, type=click.Path(), metavar="[FILE|NAME]",
                callback=_policy_path)
@click.option(
    "--date", "date", default=None, help="Date the values are in force (YYYY-MM-DD; default today)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
def show(file, date, as_json) -> None:
    """Show every parameter's value in force on a date (default: the bundled baseline).

    \b
    Example:
      drgsim policy show --date 2025-01-01
      drgsim policy show my_city.yaml --json
    """
    import datetime as dt
    import io

    from ruamel.yaml import YAML

    from drgsim.policy import load_policy

    try:
        p = load_policy(file)
        values = p.at(date or dt.date.today())
    except DrgsimError as exc:
        fail(exc)
        return
    if as_json:
        click.echo(json.dumps(values, indent=2, ensure_ascii=False))
        return
    buf = io.StringIO()
    y = YAML()
    y.default_flow_style = None
    y.dump(values, buf)
    click.echo(f"# {p.name} ({p.source}) in force on {date or dt.date.today()}")
    click.echo(buf.getvalue())
