"""``drgsim explain``: the decision path of one record, for a coder."""

from __future__ import annotations

import click

from drgsim.cli.common import fail, scheme_option
from drgsim.errors import DrgsimError


@click.command("explain")
@click.argument("input_path", metavar="[FILE]", required=False, type=click.Path(exists=True))
@click.option("--case-id", default=None, help="The record of FILE to explain.")
@click.option("--dx", "diagnoses", default=None, help="Diagnoses, |-joined; the first is the principal.")
@click.option("--px", "procedures", default=None, help="Procedures, |-joined; the first is the main one.")
@click.option("--sex", default=None, help="1 male, 2 female.")
@click.option("--age", "age_years", default=None, help="Age in years.")
@click.option("--age-days", default=None, help="Age in days (needed when age is 0).")
@click.option("--weight", "birth_weight_g", default=None, help="Birth weight in grams (newborns).")
@click.option("--los", "los_days", default=None, help="Length of stay in days.")
@scheme_option
@click.option("--translate/--no-translate", default=False, show_default=True,
              help="Apply the scheme's optional code translation first.")
@click.option("--map", "column_map", default=None, metavar="FILE|NAME",
              help="Column map for FILE (see 'drgsim group --help').")
@click.option("--encoding", default=None, help="Text encoding of a CSV FILE (default: detected).")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@click.option("--method", type=click.Choice(["drg", "dip"]), default="drg", show_default=True,
              help="drg: the DRG grouper's path; dip: the DIP packet match (--catalogue).")
@click.option("--catalogue", default=None, metavar="DIR",
              help="With --method dip: the DIP catalogue folder.")
@click.option("--cost", "total_cost", default=None,
              help="With --method dip: the case cost in yuan (breaks ties on procedure count).")
def explain(input_path, case_id, diagnoses, procedures, sex, age_years, age_days,
            birth_weight_g, los_days, scheme, translate, column_map, encoding, as_json, method,
            catalogue, total_cost):
    """Explain how one record is grouped: checks, MDCs tried, ADRG rules, MCC/CC, DRG, flags.

    Give the record's fields as options, or a FILE and --case-id.

    \b
    Example:
      drgsim explain --sex 1 --age 67 --dx "I21.000|E11.900" --px "36.0700"
      drgsim explain grouped.parquet --case-id pub-000145 --json
      drgsim explain 首页.csv --map bingan_shouye --case-id 2024000123
      drgsim explain --method dip --catalogue cat/ --sex 1 --age 50 --dx K80.100x001 \\
          --px "51.2300" --cost 12000
    """
    if method == "dip" or catalogue is not None or total_cost is not None:
        _explain_dip(input_path, case_id, scheme, translate, column_map, encoding, as_json,
                     method, catalogue, total_cost,
                     dict(diagnoses=diagnoses, procedures=procedures, sex=sex,
                          age_years=age_years, age_days=age_days, birth_weight_g=birth_weight_g,
                          los_days=los_days))
        return
    from drgsim.grouper.explain import explain as run

    fields = {k: v for k, v in dict(diagnoses=diagnoses, procedures=procedures, sex=sex,
                                     age_years=age_years, age_days=age_days,
                                     birth_weight_g=birth_weight_g, los_days=los_days).items()
              if v is not None}
    try:
        if input_path:
            if not case_id:
                raise click.UsageError("FILE needs --case-id")
            e = run(scheme=scheme, translate=translate, source=input_path, case_id=case_id,
                    column_map=column_map, encoding=encoding, **fields)
        else:
            if "diagnoses" not in fields:
                raise click.UsageError("give --dx (and --sex, --age, ...) or FILE --case-id")
            e = run(scheme=scheme, translate=translate, **fields)
    except DrgsimError as exc:
        fail(exc)
        return
    click.echo(e.to_json() if as_json else e.text())


def _explain_dip(input_path, case_id, scheme, translate, column_map, encoding, as_json, method,
                 catalogue, total_cost, fields) -> None:
    """``explain --method dip``: candidates tried, containment, tie-break, fallbacks."""
    fields = {k: v for k, v in fields.items() if v is not None}
    if total_cost is not None:
        fields["total_cost"] = total_cost
    try:
        if method != "dip":
            raise DrgsimError("--catalogue and --cost are for --method dip")
        if catalogue is None:
            raise DrgsimError("--method dip needs --catalogue DIR (a folder from drgsim dip build)")
        from drgsim.dip.explain import explain as run
        from drgsim.dip.match import catalogue_folder, read_catalogue

        cat = read_catalogue(catalogue_folder(catalogue))
        if input_path:
            if not case_id:
                raise click.UsageError("FILE needs --case-id")
            e = run(catalogue=cat, scheme=scheme, translate=translate, source=input_path,
                    case_id=case_id, column_map=column_map, encoding=encoding, **fields)
        else:
            if "diagnoses" not in fields:
                raise click.UsageError("give --dx (and --sex, --age, --px, --cost) or FILE --case-id")
            e = run(catalogue=cat, scheme=scheme, translate=translate, **fields)
    except DrgsimError as exc:
        fail(exc)
        return
    click.echo(e.to_json() if as_json else e.text())
