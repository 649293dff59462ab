"""``drgsim group``: group a file of discharge records into a file."""

from __future__ import annotations

from pathlib import Path

import click

from drgsim.cli.common import (
    _policy_path,
    check_engine,
    console,
    engine_option,
    fail,
    out_option,
    scheduler_option,
    scheme_option,
    threads_option,
)
from drgsim.errors import DrgsimError


@click.command("group")
@click.argument("input_path", metavar="INPUT", callback=lambda c, p, v: _existing_or_glob(v))
@out_option
@scheme_option
@click.option("--translate/--no-translate", default=False, show_default=True,
              help="Apply the scheme's optional code translation (dx_map/proc_map) first.")
@click.option("--encoding", default=None, metavar="NAME[:replace]",
              help="Text encoding of a CSV input (default: detected, UTF-8 or GB18030/GBK; "
                   "a file mixing both is an error). NAME:replace replaces undecodable bytes "
                   "and marks those rows in the column encoding_replaced.")
@click.option("--bad-lines", type=click.Choice(["error", "keep"]), default="error",
              show_default=True,
              help="CSV rows with the wrong number of fields or an unterminated quote: an "
                   "error before any output, or kept with status malformed_row (raw text in "
                   "OUT.malformed_rows.csv).")
@click.option("--glob", "glob", default=None, metavar="PATTERN",
              help="With a folder INPUT: read only the files whose path (relative to the "
                   "folder) matches, e.g. '*.parquet' or 'year=2024/*/*.parquet'. A quoted "
                   "INPUT 'data/*.parquet' is the same as data --glob '*.parquet'.")
@click.option("--sheet", default=None, metavar="NAME|N",
              help="Sheet of an .xlsx INPUT, by name or number from 1 (default: the first).")
@click.option("--map", "column_map", default=None, metavar="FILE|NAME",
              help="Column map (YAML) for Chinese headers and wide code columns; shipped: "
                   "bingan_shouye (病案首页), settlement_list (医保结算清单).")
@click.option("--flags", "with_flags", is_flag=True,
              help="Add a 'flags' column (suspect codes and fields) and print a summary.")
@click.option("--supervision", "with_supervision", is_flag=True,
              help="Supervision flags (readmission, split admission, low-threshold admission, "
                   "over-long stay, upcoding signal; parameters from --policy's supervision: "
                   "section, else the defaults) into OUT.supervision_cases.csv and "
                   "OUT.supervision_by_hospital.csv.")
@click.option("--policy", "policy_file", default=None, type=click.Path(), metavar="FILE|NAME",
              callback=_policy_path,
              help="With --supervision: the policy whose supervision: section sets the flags' "
                   "parameters (a key it leaves out keeps its default).")
@click.option("--names", "with_names", is_flag=True,
              help="Add mdc_name, adrg_name, drg_name (the tables' titles).")
@click.option("--compare", "compare_col", default=None, metavar="COLUMN",
              help="Report agreement of our DRG with the input's own group column.")
@click.option("--hospital-column", default="hospital_id", show_default=True,
              help="Column that names the hospital (flag and agreement summaries).")
@click.option("--cost-column", default=None,
              help="Cost column for --compare (default: total_cost, 住院总费用, ... if present).")
@click.option("--method", type=click.Choice(["drg", "dip"]), default="drg", show_default=True,
              help="drg: CHS-DRG groups; dip: the packets of a DIP catalogue (--catalogue).")
@click.option("--catalogue", "catalogue", default=None, metavar="DIR",
              help="With --method dip: the DIP catalogue folder (drgsim dip build).")
@click.option("--batch-rows", default=1 << 18, show_default=True, type=click.IntRange(1000),
              help="Rows per streamed batch (bounds memory).")
@threads_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
@engine_option
@scheduler_option
def group(input_path, out, scheme, translate, encoding, bad_lines, glob, sheet, column_map,
          with_flags, with_supervision, policy_file, with_names, compare_col, hospital_column,
          cost_column, method, catalogue,
          batch_rows, threads, quiet, engine, scheduler):
    """Group discharge records (parquet, a folder of parquet, CSV or .xlsx) into CHS-DRG groups.

    Every input row comes out, in order, with mdc, adrg, drg and status; the other
    columns pass through. Output format follows the extension of -o (.parquet or .csv).

    \b
    Example:
      drgsim group discharges.parquet -o grouped.parquet
      drgsim group month.csv -o grouped.csv --scheme beijing_2022
      drgsim group 首页.csv --map bingan_shouye --flags --names --compare drg -o out.csv
      drgsim group cases.parquet --method dip --catalogue catalogue/ -o matched.parquet
      drgsim group cases.parquet --supervision --policy my_policy.yaml -o grouped.parquet
      drgsim group discharges/ --engine dask --scheduler tcp://10.0.0.5:8786 -o grouped/

    With --engine dask or spark, INPUT is parquet (a file or a year=/month= folder) and -o a
    folder of parts by year=/month= (atomic; a re-run completes a killed run) with
    _drgsim_provenance.json beside them.
    """
    check_engine(engine, scheduler, {"--encoding": encoding, "--bad-lines keep":
                                     bad_lines == "keep", "--glob": glob, "--sheet": sheet,
                                     "--map": column_map, "--flags": with_flags,
                                     "--compare": compare_col, "--threads": threads,
                                     "--supervision": with_supervision,
                                     "--policy": policy_file})
    if engine == "dask":
        _group_dask(input_path, out, scheme, translate, with_names, scheduler, method,
                    catalogue)
        return
    if engine == "spark":
        _group_spark(input_path, out, scheme, translate, with_names, scheduler, method,
                     catalogue)
        return
    sv = None  # supervision parameters: read and checked before any work
    try:
        if policy_file is not None and not with_supervision:
            raise DrgsimError("--policy is read only by --supervision (its supervision: "
                              "section); grouping itself takes no policy")
        if with_supervision:
            sv = _supervision_params(policy_file)
    except DrgsimError as exc:
        fail(exc)
        return
    if method == "dip" or catalogue is not None:
        _group_dip(input_path, out, scheme, translate, encoding, bad_lines, glob, sheet,
                   column_map, method, catalogue, batch_rows, threads, quiet,
                   {"--flags": with_flags, "--names": with_names, "--compare": compare_col,
                    "--cost-column": cost_column}, sv, hospital_column)
        return
    from drgsim.grouper.core import load_scheme
    from drgsim.grouper.stream import OUTPUT_FORMATS, group_file, input_rows
    from drgsim.output import check_output

    if not (with_flags or compare_col or with_supervision):  # their summaries use pandas
        from drgsim.grouper.tiny import arrow_without_pandas

        arrow_without_pandas()
    con = console()
    try:
        input_path, glob = split_glob_input(input_path, glob)
        check_output(out, [input_path, column_map, scheme], OUTPUT_FORMATS)
        cs = load_scheme(scheme)
        total = input_rows(input_path, glob)
        needs = {"--compare": compare_col} if compare_col else {}
        if compare_col and cost_column:
            needs["--cost-column"] = cost_column
        src_of = click.get_current_context().get_parameter_source("hospital_column")
        if (with_flags or compare_col) and src_of == click.core.ParameterSource.COMMANDLINE:
            needs["--hospital-column"] = hospital_column  # named: not silently left out
        if with_supervision:
            needs.update(_supervision_needs(hospital_column, sv))
        opts = {"bad_lines": bad_lines, "glob": glob, "sheet": sheet, "needs": needs}
        if quiet:
            summary = group_file(input_path, out, cs, translate, batch_rows, threads, encoding,
                                 column_map=column_map, flags=with_flags, names=with_names,
                                 **opts)
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
                                     encoding, progress=lambda k: bar.advance(task, k),
                                     column_map=column_map, flags=with_flags,
                                     names=with_names, **opts)
    except DrgsimError as exc:
        fail(exc)
        return
    _print_counts(con, summary, f"rows grouped -> {out}", "records/s")
    for note in summary.notes:
        con.print(f"  note: {note}", markup=False)
    con.print(f"  provenance: drgsim {cs.provenance['drgsim.version']}, scheme {cs.name} "
              f"{cs.version} (tables {cs.content_hash}), translation "
              f"{'on' if translate else 'off'}"
              + ("" if Path(out).suffix.lower() == ".csv" else "; stored in parquet metadata"))
    written: list[Path] = [Path(p) for p in summary.sidecars]
    try:
        if with_flags:
            written += _flag_report(con, out, hospital_column)
        if compare_col:
            written += _compare_report(con, out, compare_col, hospital_column, cost_column)
        if with_supervision:
            written += _supervision_report(con, out, hospital_column, sv)
    except DrgsimError as exc:
        fail(exc)
    _drop_stale_sidecars(out, written)


def _group_dip(input_path, out, scheme, translate, encoding, bad_lines, glob, sheet, column_map,
               method, catalogue, batch_rows, threads, quiet, drg_only, supervision=None,
               hospital_column="hospital_id") -> None:
    """``group --method dip``: every case gets its packet (drgsim.dip.match), same output
    machinery as DRG grouping (streamed, atomic, provenance), a summary of DIP statuses;
    ``--supervision`` flags (``supervision``: their resolved parameters) by packet as for DRG."""
    from drgsim.dip.match import (
        COST_COLUMNS,
        DIP_STATUSES,
        aux_available,
        catalogue_folder,
        match_arrow_result,
        prepare,
        read_catalogue,
    )
    from drgsim.grouper.core import load_scheme
    from drgsim.grouper.stream import OUTPUT_FORMATS, group_file, input_rows
    from drgsim.output import check_output

    con = console()
    try:
        if method != "dip":
            raise DrgsimError("--catalogue is for --method dip (the DRG grouper has no catalogue)")
        given = [k for k, v in drg_only.items() if v]
        if given:
            raise DrgsimError(f"{', '.join(given)}: DRG options, not available with --method dip")
        if catalogue is None:
            raise DrgsimError("--method dip needs --catalogue DIR (a folder from drgsim dip build)")
        input_path, glob = split_glob_input(input_path, glob)
        folder = catalogue_folder(catalogue)
        check_output(out, [input_path, column_map, scheme, str(folder)], OUTPUT_FORMATS)
        cs = load_scheme(scheme)
        cat = read_catalogue(folder)
        prepare(cat, cs)  # a malformed catalogue fails here, before any output
        seen: dict[str, bool] = {}

        def matcher(batch):
            table, res = match_arrow_result(batch, cat, cs, translate, threads)
            seen["no_cost"] = seen.get("no_cost", False) or not any(
                c in batch.schema.names for c in COST_COLUMNS)
            return table, res.status

        needs = _supervision_needs(hospital_column, supervision) if supervision else {}
        opts = dict(encoding=encoding, column_map=column_map, bad_lines=bad_lines, glob=glob,
                    sheet=sheet, matcher=matcher, status_labels=list(DIP_STATUSES), needs=needs)
        total = input_rows(input_path, glob)
        if quiet:
            summary = group_file(input_path, out, cs, translate, batch_rows, threads, **opts)
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            with Progress(TextColumn("matching"), BarColumn(), MofNCompleteColumn(),
                          console=con, transient=True) as bar:
                task = bar.add_task("match", total=total)
                summary = group_file(input_path, out, cs, translate, batch_rows, threads,
                                     progress=lambda k: bar.advance(task, k), **opts)
    except DrgsimError as exc:
        fail(exc)
        return
    _print_counts(con, summary, f"cases matched to DIP packets -> {out}", "cases/s")
    if seen.get("no_cost"):
        summary.notes.append("no total_cost column: ties on procedure count went to the "
                             "smallest packet code (no |cost - packet mean| tie-break)")
    if not aux_available():
        summary.notes.append("auxiliary catalogues not applied (drgsim.dip.aux absent): "
                             "aux_coef 1.0")
    for note in summary.notes:
        con.print(f"  note: {note}", markup=False)
    con.print(f"  provenance: drgsim {cs.provenance['drgsim.version']}, scheme {cs.name} "
              f"{cs.version}, DIP catalogue {folder} (built from "
              f"{cat.meta.get('built_from', '?') or '?'}), translation "
              f"{'on' if translate else 'off'}", markup=False)
    written = [Path(p) for p in summary.sidecars]
    if supervision:
        try:
            written += _supervision_report(con, out, hospital_column, supervision)
        except DrgsimError as exc:
            fail(exc)
    _drop_stale_sidecars(out, written)


def _engine_dip(method: str, catalogue: str | None, names: bool) -> Path | None:
    """``--method dip`` on an engine: the catalogue folder (None: DRG grouping); the same
    refusals as the single path."""
    if method != "dip":
        if catalogue is not None:
            raise DrgsimError("--catalogue is for --method dip (the DRG grouper has no catalogue)")
        return None
    if names:
        raise DrgsimError("--names: DRG options, not available with --method dip")
    if catalogue is None:
        raise DrgsimError("--method dip needs --catalogue DIR (a folder from drgsim dip build)")
    from drgsim.dip.match import catalogue_folder

    return catalogue_folder(catalogue)


def _group_dask(input_path: str, out: str, scheme: str, translate: bool, names: bool,
                scheduler: str | None, method: str = "drg", catalogue: str | None = None
                ) -> None:
    """``group --engine dask``: partitioned parquet output on a Dask cluster (DRG groups,
    or with ``--method dip`` the catalogue's packets)."""
    from drgsim.grouper.core import load_scheme
    from drgsim.output import check_output, fingerprint

    con = console()
    try:
        folder = _engine_dip(method, catalogue, names)
        check_output(out, [input_path] + ([str(folder)] if folder else []), folder=True)
        cs = load_scheme(scheme)
        try:
            import drgsim.dask as dg
        except ImportError as exc:
            raise DrgsimError(str(exc)) from None
        opts = {"command": "group", "engine": "dask", "scheme": cs.content_hash,
                "translate": translate, "names": names}
        if folder is not None:  # the catalogue's files are hashed as an input
            opts["method"] = "dip"
        fp = fingerprint([input_path] + ([folder] if folder else []), opts)
        with dg.cluster(scheduler) as client:
            ddf = dg.read_parquet(input_path)
            if folder is None:
                res = dg.group_to_parquet(ddf, out, fp, cs, translate, names=names,
                                          client=client)
            else:
                res = dg.match_to_parquet(ddf, out, fp, folder, cs, translate, client=client)
    except DrgsimError as exc:
        fail(exc)
        return
    rows = res["rows"]
    what = "matched to DIP packets" if folder is not None else "grouped"
    con.print(f"[bold]{rows:,}[/] rows {what} -> {out}/ ({res['partitions']} partitions, "
              f"{res['reused']} kept from an earlier run)")
    for status, n in sorted(res["status_counts"].items(), key=lambda kv: -kv[1]):
        con.print(f"  {status:<18} {n:>12,}  {n / max(rows, 1):7.2%}")


def _group_spark(input_path: str, out: str, scheme: str, translate: bool, names: bool,
                 master: str | None, method: str = "drg", catalogue: str | None = None
                 ) -> None:
    """``group --engine spark``: the output of ``--engine dask`` (OUT/data/year=/month=,
    fingerprinted journal, manifest last, provenance in OUT/data/_drgsim_provenance.json),
    DRG groups or with ``--method dip`` the catalogue's packets; a re-run completes a
    killed one."""
    from drgsim.grouper.core import load_scheme
    from drgsim.output import check_output, fingerprint

    con = console()
    try:
        folder = _engine_dip(method, catalogue, names)
        check_output(out, [input_path] + ([str(folder)] if folder else []), folder=True)
        cs = load_scheme(scheme)
        import drgsim.spark as dsp

        dsp._pyspark()  # SparkError (a DrgsimError) without pyspark
        opts = {"command": "group", "engine": "spark", "scheme": cs.content_hash,
                "translate": translate, "names": names}
        if folder is not None:  # the catalogue's files are hashed as an input
            opts["method"] = "dip"
        fp = fingerprint([input_path] + ([folder] if folder else []), opts)
        with dsp.session(master):
            sdf = dsp.read_parquet(input_path)
            if folder is None:
                res = dsp.group_to(sdf, out, cs, translate, names=names, fingerprint=fp)
            else:
                res = dsp.dip_match_to(sdf, out, folder, cs, translate, fingerprint=fp)
    except DrgsimError as exc:
        fail(exc)
        return
    rows = res["rows"]
    what = "matched to DIP packets" if folder is not None else "grouped"
    con.print(f"[bold]{rows:,}[/] rows {what} -> {out}/ ({res['partitions']} month folders, "
              f"{res['reused']} kept from an earlier run)")
    for status, n in sorted(res["status_counts"].items(), key=lambda kv: -kv[1]):
        con.print(f"  {status:<18} {n:>12,}  {n / max(rows, 1):7.2%}")


def _print_counts(con, summary, what: str, unit: str) -> None:
    """Rows, ok share and rate, then each status's count and absent optional columns."""
    rate = summary.rows / summary.seconds if summary.seconds else 0.0
    con.print(f"[bold]{summary.rows:,}[/] {what}  ({summary.grouped_share:.2%} ok, "
              f"{rate:,.0f} {unit})")
    for status, n in sorted(summary.status_counts.items(), key=lambda kv: -kv[1]):
        con.print(f"  {status:<18} {n:>12,}  {n / summary.rows:7.2%}")
    if summary.missing_columns:
        con.print(f"  absent optional columns (all values absent): "
                  f"{', '.join(summary.missing_columns)}")


_GLOB_CHARS = "*?["


def _existing_or_glob(path: str) -> str:
    """INPUT must exist, unless it is a pattern (see :func:`split_glob_input`)."""
    if not Path(path).exists() and not any(c in path for c in _GLOB_CHARS):
        raise click.BadParameter(f"Path {path!r} does not exist.")
    return path


def split_glob_input(path: str, glob: str | None) -> tuple[str, str | None]:
    """A quoted pattern INPUT (``'data/year=2024/*.parquet'``) is its folder (the parts before
    the first one with ``*?[``) with ``--glob`` for the rest; an existing path stays as it is."""
    if Path(path).exists() or not any(c in path for c in _GLOB_CHARS):
        return path, glob
    from drgsim.errors import RecordsError

    if glob is not None:
        raise RecordsError(f"INPUT {path!r} is a pattern: give the pattern in INPUT or in "
                           "--glob, not both")
    parts = Path(path).parts
    k = next(i for i, s in enumerate(parts) if any(c in s for c in _GLOB_CHARS))
    return (str(Path(*parts[:k])) if k else "."), "/".join(parts[k:])


#: files written beside the output (``OUT`` without its extension + suffix)
SIDECARS = (".flags_by_flag.csv", ".flags_by_hospital.csv", ".compare.txt",
            ".compare_moves.csv", ".compare_hospitals.csv", ".malformed_rows.csv",
            ".supervision_cases.csv", ".supervision_by_hospital.csv")


def _drop_stale_sidecars(out: str, written: list[Path]) -> None:
    """A sidecar an earlier run wrote beside this output, which this run did not, would
    describe another output: remove it."""
    for suffix in SIDECARS:
        p = _sidecar(out, suffix)
        if p not in written and p.is_file():
            p.unlink()


def _read_back(out: str, wanted: list[str]):
    """Only the named columns of the grouped output (summaries need a few columns)."""
    import pyarrow as pa

    p = Path(out)
    if p.suffix.lower() == ".csv":
        import pyarrow.csv as pacsv

        with p.open(encoding="utf-8") as fh:
            import csv

            header = next(csv.reader(fh))
        cols = [c for c in dict.fromkeys(wanted) if c in header]
        t = pacsv.read_csv(p, convert_options=pacsv.ConvertOptions(
            include_columns=cols, column_types={c: pa.string() for c in cols},
            strings_can_be_null=False))
    else:
        import pyarrow.parquet as pq

        names = pq.ParquetFile(p).schema_arrow.names
        t = pq.read_table(p, columns=[c for c in dict.fromkeys(wanted) if c in names])
    return t


def _sidecar(out: str, suffix: str) -> Path:
    p = Path(out)
    return p.with_name(p.with_suffix("").name + suffix)


def _write_csv(df, path: Path) -> Path:
    from drgsim.output import atomic_path

    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return path


def _flag_report(con, out: str, hospital: str) -> list[Path]:
    from drgsim.flags import flag_summary

    df = _read_back(out, ["flags", hospital])
    by_flag, by_hosp = flag_summary(df, hospital)
    con.print("[bold]flags[/] (a flag never changes a group):")
    for r in by_flag.itertuples(index=False):
        if r.records:
            con.print(f"  {r.flag:<20} {r.records:>10,}  {r.share:7.2%}")
    written = [_write_csv(by_flag, _sidecar(out, ".flags_by_flag.csv"))]
    if by_hosp is not None:
        written.append(_write_csv(by_hosp, _sidecar(out, ".flags_by_hospital.csv")))
        con.print(f"  by {hospital}: " + ", ".join(
            f"{r['hospital']} {r['flagged']}/{r['records']}" for _, r in by_hosp.head(10).iterrows()))
    con.print("  summary -> " + ", ".join(str(p) for p in written))
    return written


def _compare_report(con, out: str, column: str, hospital: str, cost: str | None) -> list[Path]:
    from drgsim.compare import COST_COLUMNS, compare_groups
    from drgsim.output import write_text

    wanted = [column, f"input_{column}", "mdc", "adrg", "drg", hospital,
              *([cost] if cost else COST_COLUMNS)]
    df = _read_back(out, wanted).to_pandas()
    ag = compare_groups(df, column, hospital=hospital, cost=cost)
    text = ag.text()
    click.echo(text)
    written = [write_text(_sidecar(out, ".compare.txt"), text + "\n"),
               _write_csv(ag.moves, _sidecar(out, ".compare_moves.csv"))]
    if ag.by_hospital is not None:
        written.append(_write_csv(ag.by_hospital, _sidecar(out, ".compare_hospitals.csv")))
    con.print(f"  agreement report -> {_sidecar(out, '.compare.txt')} (+ _moves/_hospitals .csv)")
    return written


def _supervision_params(policy_file: str | None) -> dict:
    """The supervision flags' parameters: the policy's ``supervision:`` section over the
    defaults (no policy: the defaults)."""
    from drgsim.dip.supervision import params_from_policy

    if policy_file is None:
        return params_from_policy(None)
    from drgsim.policy import load_policy

    return params_from_policy(load_policy(policy_file))


def _supervision_needs(hospital: str, params: dict) -> dict[str, str]:
    """Input columns the supervision flags read, checked before any work."""
    from drgsim.dip.supervision import required_columns

    out = {}
    for c, fl in required_columns(params).items():  # one key per column (the message names both)
        name = hospital if c == "hospital_id" else c
        out[f"--supervision ({', '.join(fl)}; column {name})"] = name
    return out


def _supervision_report(con, out: str, hospital: str, params: dict) -> list[Path]:
    from drgsim.dip.supervision import ALIASES, flags

    wanted = [hospital, *ALIASES, "drg", "status", "packet", "dip_status"]
    t = _read_back(out, wanted)
    group = "packet" if "dip_status" in t.schema.names else "drg"
    cases, by_hosp = flags(t.to_pandas(), group, params, columns={"hospital_id": hospital})
    flagged = cases[cases["supervision"] != ""]
    flagged.insert(0, "row", flagged.index)
    written = [_write_csv(flagged, _sidecar(out, ".supervision_cases.csv")),
               _write_csv(by_hosp, _sidecar(out, ".supervision_by_hospital.csv"))]
    p = params
    con.print(f"[bold]supervision flags[/] by {group} (never change a group or payment; "
              f"readmission <= {p['readmission']['days']} d, split <= {p['split']['days']} d, "
              f"low cost < {p['low_cost']['ratio']:g} x mean, long stay > "
              f"{p['long_stay']['factor']:g} x mean LOS, upcoding margin "
              f"{p['upcoding']['margin']:.0%}):")
    n = max(len(cases), 1)
    for c in [c for c in cases.columns if c.startswith("sv_")]:
        k = int(cases[c].sum())
        con.print(f"  {c[3:]:<20} {k:>10,}  {k / n:7.2%}")
    con.print("  flags -> " + ", ".join(str(w) for w in written))
    return written
