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
    for w in st.warnings:  # valid, and grouped as the README says, but worth a look
        click.echo(f"warning: {folder}/{w}")
    if st.warnings:
        con.print(f"[yellow]{len(st.warnings)} warning(s)[/]")


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


@scheme.command("diff")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option("--records", "records", default=None, type=click.Path(exists=True),
              help="Group these records with both schemes: cases that change group, top moves.")
@click.option("--map", "column_map", default=None, metavar="FILE|NAME",
              help="Column map for --records (see 'drgsim group --help').")
@click.option("-o", "--out", "out", default=None, type=click.Path(),
              help="Write every difference as a table (.csv or .json).")
@click.option("--per-area", default=15, show_default=True, help="Detail lines per area in the report.")
def diff(a: str, b: str, records: str | None, column_map: str | None, out: str | None,
         per_area: int) -> None:
    """What two schemes' tables differ in: MDCs, ADRGs, DRGs, code lists, CC/MCC, exclusions.

    \b
    Example:
      drgsim scheme diff chs_drg_11 beijing_2022
      drgsim scheme diff chs_drg_11 my_city/ --records cases.parquet -o diff.csv
    """
    import json
    from pathlib import Path

    from drgsim.cli.common import fail
    from drgsim.errors import DrgsimError
    from drgsim.scheme.diff import diff_records, diff_schemes

    try:
        from drgsim.output import atomic_path, check_output, write_text

        if out:
            check_output(out, [a, b, records], (".csv", ".json"))
        d = diff_schemes(a, b)
        click.echo(d.text(per_area=per_area))
        if out:
            p = Path(out)
            if p.suffix.lower() == ".json":
                write_text(p, json.dumps(d.to_dict(), ensure_ascii=False, indent=1))
            else:
                with atomic_path(p) as tmp:
                    d.table().to_csv(tmp, index=False)
            click.echo(f"table of {len(d.changes):,} differences -> {p}")
        if records:
            click.echo(diff_records(a, b, records, column_map=column_map).text())
    except DrgsimError as exc:
        fail(exc)
