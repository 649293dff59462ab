"""``drgsim scheme``: validate and list scheme tables."""

from __future__ import annotations

import click

from drgsim.cli.common import console


@click.group("scheme")
def scheme() -> None:
    """Validate and inspect scheme tables.

    \b
    Example:
      drgsim scheme list
      drgsim scheme validate path/to/my_city_tables
    """


@scheme.command("validate")
@click.argument("path", metavar="NAME|PATH")
def validate(path: str) -> None:
    """Check a folder of scheme tables; print every problem as file:line: column: message.

    \b
    Example:
      drgsim scheme validate grouper_tables/chs_drg_11
    """
    from drgsim.errors import SchemeError, SchemeNotFoundError
    from drgsim.scheme.paths import resolve_scheme_dir
    from drgsim.scheme.tables import load_tables

    con = console()
    try:
        folder = resolve_scheme_dir(path)
        st = load_tables(folder)
    except SchemeNotFoundError as exc:
        con.print(f"error: {exc}")
        raise SystemExit(2) from None
    except SchemeError as exc:
        for p in exc.problems:
            click.echo(f"{folder}/{p}")
        con.print(f"[red]{len(exc.problems)} problem(s)[/]")
        raise SystemExit(1) from None
    rows = ", ".join(f"{k.removesuffix('.csv')} {len(v):,}" for k, v in st.tables.items())
    click.echo(f"{folder}: OK — {st.name} {st.version} (tables {st.content_hash})")
    click.echo(f"  {rows}")


@scheme.command("list")
def list_schemes() -> None:
    """List the bundled schemes.

    \b
    Example:
      drgsim scheme list
    """
    from drgsim.scheme.paths import bundled_schemes, bundled_tables_root

    root = bundled_tables_root()
    for name in bundled_schemes():
        meta = dict(line.rstrip("\n").split(",", 1) for line in
                    (root / name / "scheme.csv").open(encoding="utf-8").readlines()[1:]
                    if "," in line)
        click.echo(f"{name:<16} {meta.get('name', '')} {meta.get('version', '')}")
