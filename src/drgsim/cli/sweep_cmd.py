"""``drgsim sweep``: prepare a year of cases once, sweep scenarios, compare with the baseline."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from drgsim.cli.common import (
    check_engine,
    console,
    engine_option,
    fail,
    out_option,
    policy_option,
    policy_with_scheme,
    scheduler_option,
    scheme_override_option,
)
from drgsim.errors import DrgsimError, Problem, ScenarioError


def summary_lines(res, losing: float = -0.02, limit: int = 10) -> list[str]:
    """Per scenario after the baseline (at most ``limit``): point value, the hospitals'
    change P5/P50/P95 against the baseline and how many lose more than ``losing``."""
    summ = res.summary(losing=losing)
    rest = summ[summ["scenario"] != 0]
    out = []
    for _, r in rest.head(limit).iterrows():
        out.append(f"  [{int(r['scenario'])}] {str(r.get('name', ''))[:56]:<56} "
                   f"pv {float(r['pv']):9.4f}  change P5/P50/P95 {r['change_p5']:+.2%} / "
                   f"{r['change_p50']:+.2%} / {r['change_p95']:+.2%}  "
                   f"losing {int(r['n_losing'])}")
    if len(rest) > limit:
        out.append(f"  ... and {len(rest) - limit} more (summary.parquet, sweep.xlsx)")
    return out


def parse_grid_options(items: tuple[str, ...]) -> dict[str, object]:
    """``--grid KEY=V1,V2`` (or ``KEY=a:b:step``) -> grid axes; values read as YAML
    scalars (numbers, null, true/false, text)."""
    import io

    from ruamel.yaml import YAML

    axes: dict[str, object] = {}
    problems = []
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key or not text.strip():
            problems.append(Problem("--grid", None, key or None,
                                    f"{item!r}: expected KEY=V1,V2 or KEY=a:b:step"))
            continue
        if key in axes:
            problems.append(Problem("--grid", None, key, "given twice"))
            continue
        if text.count(":") == 2 and "," not in text:
            axes[key] = text.strip()
            continue
        vals = []
        for part in text.split(","):
            try:
                vals.append(YAML(typ="safe").load(io.StringIO(part.strip())))
            except Exception:
                vals.append(part.strip())
        axes[key] = vals
    if problems:
        raise ScenarioError(problems)
    return axes


def build_specs(scenarios: str | None, grid: tuple[str, ...], draws: int | None,
                seed: int | None, policy_file: str | None) -> list:
    """The scenario specs to sweep: from --scenarios (a file or a folder: one spec per file)
    with the --grid axes added to each, or from --grid alone; --draws/--seed override."""
    from drgsim.policy import load_policy
    from drgsim.scenarios.files import load_scenario_files, parse_scenarios

    cli_axes = parse_grid_options(grid)
    if scenarios is None and not cli_axes:
        raise ScenarioError([Problem("drgsim sweep", None, None,
                                     "give --scenarios FILE|DIR or --grid KEY=V1,V2")])
    policy = load_policy(policy_file) if policy_file else None
    if scenarios is None:
        doc = {"name": "grid", "grid": cli_axes}
        specs = [parse_scenarios(doc, "--grid", policy)]
    else:
        try:
            specs = load_scenario_files(scenarios, policy)
        except ScenarioError as exc:
            raise _bundled_for_drg(exc, scenarios, policy) from None
        if cli_axes:
            out = []
            for s in specs:
                clash = sorted(set(cli_axes) & (set(s.grid) | set(s.set)))
                if clash:
                    raise ScenarioError([Problem(s.file, None, k, "also given by --grid")
                                         for k in clash])
                doc = {"name": s.name, "base": s.base, "set": s.set,
                       "grid": {**dict(s.grid), **cli_axes},
                       "zip": s.zip, "behaviour": s.behaviour}
                if s.draws_n:
                    doc["draws"] = {"n": s.draws_n, "seed": s.seed}
                spec = parse_scenarios(doc, s.file, policy)
                spec.description = s.description
                out.append(spec)
            specs = out
    if seed is not None and draws is None and not any(s.draws_n for s in specs):
        # a seed with nothing drawn would be ignored: refuse it (nothing silent)
        raise ScenarioError([Problem("--seed", None, None,
                                     "nothing is drawn: give --draws N (or draws: in the "
                                     "scenario file) with a behaviour distribution")])
    for s in specs:
        if draws is not None:
            s.draws_n = draws
        if seed is not None:
            s.seed = seed
        if s.draws_n and s.seed is None:
            raise ScenarioError([Problem(s.file, None, "draws.seed",
                                         "give --seed: the same seed gives the same draws")])
    return specs


def _bundled_for_drg(exc: ScenarioError, scenarios: str, policy) -> ScenarioError:
    """A bundled DRG scenario file refused under a DIP policy: one line, its first problem
    and the bundled DIP scenario files to use instead."""
    from drgsim.cli.common import bundled_specs
    from drgsim.scenarios.files import bundled_scenarios_path

    p = Path(scenarios).resolve()
    bundled = bundled_scenarios_path().resolve()
    if policy is None or policy.method != "dip" or bundled not in (p, p.parent):
        return exc
    first = exc.problems[0]
    more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
    dip = ", ".join(str(Path(s.file)) for s in bundled_specs("dip"))
    return ScenarioError([Problem(first.file, first.line, first.field, (
        f"{first.message}{more}; this bundled scenario file is for DRG: for policy "
        f"{policy.name} (method dip) use the bundled DIP scenarios {dip}"))])


def base_policy(specs: list, policy_file: str | None) -> str | None:
    """The one policy every spec overlays: --policy, else the specs' common ``base``."""
    from drgsim.scenarios.files import _base_source

    bases = {_base_source(s.base, s.file) for s in specs}
    if policy_file:
        clash = [s for s in specs if s.base != "baseline"
                 and Path(_base_source(s.base, s.file)).resolve() != Path(policy_file).resolve()]
        if clash:  # never overlay another policy than the file names, silently
            raise ScenarioError([Problem(s.file, None, "base", f"{s.base!r} is not --policy "
                                         f"{policy_file}: drop one of them") for s in clash])
        return policy_file
    if len(bases) > 1:
        raise ScenarioError([Problem(s.file, None, "base", f"{s.base!r}: the scenario files "
                                     "of one sweep overlay one base policy (or give --policy)")
                             for s in specs])
    base = bases.pop()
    return None if base == "baseline" else base


@click.command("sweep")
@click.argument("cases", type=click.Path(exists=True))
@click.option("--scenarios", "scenarios", default=None, type=click.Path(exists=True),
              metavar="FILE|DIR", help="Scenario YAML file, or a folder of them (one sweep "
              "per file, each in OUT/<file name without .yaml>/).")
@click.option("--grid", "grid", multiple=True, metavar="KEY=V1,V2",
              help="A grid axis (repeatable): values, or a:b:step; '*' expands over funds.")
@click.option("--draws", default=None, type=click.IntRange(1, 100_000),
              help="Monte Carlo draws of the behaviour assumptions (overrides the file's).")
@click.option("--seed", default=None, type=int,
              help="Seed of the draws (same seed, same draws; overrides the file's).")
@out_option
@policy_option
@scheme_override_option
@click.option("--weights", "weights_file", default=None, type=click.Path(exists=True),
              help="Weights (default: calibrated on the history years).")
@click.option("--hospitals", "hospitals_file", default=None, type=click.Path(exists=True),
              help="Hospitals table: hospital_id, level, optional coefficient, name.")
@click.option("--region", "region_file", default=None, type=click.Path(exists=True),
              help="Fund figures per fund and year (budget source; fund balance).")
@click.option("--year", type=int, default=None,
              help="Simulated year (default: the latest in CASES).")
@click.option("--report", "report", default=None, metavar="N|IDS",
              help="Scenarios with per-hospital rows in sweep.xlsx: a count (first N after "
              "the baseline, default 5) or ids '3,7,12'. Parquet has them all.")
@click.option("--monthly", is_flag=True,
              help="Also write months.parquet (scenario × draw × fund × hospital × month).")
@click.option("--grouped", is_flag=True, help="CASES are grouped even without drgsim provenance.")
@click.option("--catalogue", "catalogue_dir", default=None,
              type=click.Path(exists=True, file_okay=False),
              help="DIP policies (method: dip): the packet catalogue folder; default: built "
                   "from the history years.")
@click.option("--losing", default=-0.02, show_default=True, type=float,
              help="A hospital whose change against the baseline is below this is losing.")
@engine_option
@scheduler_option
def sweep(cases, scenarios, grid, draws, seed, out, policy_file, scheme, weights_file,
          hospitals_file, region_file, year, report, monthly, grouped, losing, catalogue_dir, engine,
          scheduler) -> None:
    """Prepare CASES once (weights, pricing, cells, budgets), settle every scenario and
    compare each hospital and fund with the baseline; write parquet tables, sweep.xlsx and
    plots to OUT, and OUT/manifest.json last (a folder without it is incomplete).

    \b
    Example:
      drgsim sweep grouped.parquet --scenarios budget.yaml --region region.parquet -o out/
      drgsim sweep grouped.parquet --grid 'budget.*.growth=0.02,0.04,0.06' \\
          --grid high_cost.beta=0.8,1.0 --hospitals hospitals.parquet \\
          --region region.parquet -o out/
      drgsim sweep grouped.parquet --scenarios my_scenarios/ --draws 200 --seed 7 \\
          --region region.parquet -o out/
      drgsim sweep region/discharges --policy dip_baseline --catalogue cat/ \\
          --scenarios pv_floor.yaml --region region/region.parquet -o out/    # DIP
      drgsim sweep grouped/ --engine dask --grid 'budget.*.growth=0.02,0.04' \\
          --region region.parquet -o out/

    With --engine dask or spark, CASES (parquet) are prepared per hospital partition on the
    cluster, every re-pricing (thresholds, other pricing keys, recalibration, behaviour
    draws) runs there too, and the scenarios are settled on this machine: the same tables
    as without --engine. budgeted_pv: last_year needs reference_pv there (not a CLI option).
    """
    check_engine(engine, scheduler, {})
    import warnings

    import drgsim
    from drgsim.output import OutputFolder, check_output, fingerprint
    from drgsim.report.sweep import (
        SWEEP_FILES,
        parse_report,
        reported_scenarios,
        write_sweep_outputs,
    )

    con = console()
    inputs = [cases, scenarios, policy_file, weights_file, hospitals_file, region_file]
    if catalogue_dir is not None:  # DIP: DRG runs keep their fingerprints
        inputs.append(catalogue_dir)
    try:
        try:
            chosen = parse_report(report)
        except ValueError as exc:
            raise ScenarioError([Problem("--report", None, None, str(exc))]) from None
        specs = build_specs(scenarios, grid, draws, seed, policy_file)
        folder_mode = scenarios is not None and Path(scenarios).is_dir()
        # in folder mode each file's sweep goes to OUT/<file stem>/ (a safe, unique name)
        parts = [Path(s.file).stem for s in specs]
        writes = tuple(f"{d}/{f}" for d in parts for f in SWEEP_FILES) if folder_mode \
            else SWEEP_FILES
        check_output(out, inputs, folder=True, writes=writes)
        options = {"command": "sweep", "grid": list(grid), "draws": draws, "seed": seed,
                   "year": year, "report": report, "losing": losing, "grouped": grouped,
                   "monthly": monthly}
        if scheme is not None:  # runs without --scheme keep their fingerprints
            options["scheme"] = scheme
        fp = fingerprint(inputs, options)
        with warnings.catch_warnings(record=True) as caught, _engine(engine, scheduler) as dg:
            warnings.simplefilter("always")
            policy = policy_with_scheme(base_policy(specs, policy_file), scheme, cases,
                                        grouped)
            for s in specs:  # a file on the default base overlays --policy (as base_policy)
                if policy_file and s.base == "baseline":
                    s.base = policy_file
            if dg is not None:
                base = dg.prepare(dg.read_parquet(cases), policy=policy,
                                  weights=weights_file, hospitals=hospitals_file,
                                  region=region_file, year=year,
                                  grouped=True if grouped or dg.is_grouped(cases) else False,
                                  catalogue=catalogue_dir)
            else:
                base = drgsim.prepare(cases, policy=policy,
                                      weights=weights_file, hospitals=hospitals_file,
                                      region=region_file, year=year,
                                      grouped=True if grouped else None,
                                      catalogue=catalogue_dir)
            root = Path(out)
            top = OutputFolder(root, fp, owned=[f"{d}/*" for d in parts]).open() \
                if folder_mode else None
            for s, part in zip(specs, parts, strict=True):
                res = base.sweep(s, draws=s.draws_n, seed=s.seed, monthly=monthly)
                try:  # unknown --report ids: a user error, before anything is written
                    reported_scenarios(res, chosen)
                except ValueError as exc:
                    raise ScenarioError([Problem("--report", None, None, str(exc))]) from None
                dest = root / part if folder_mode else root
                paths = write_sweep_outputs(res, dest, fingerprint(inputs, {
                    **options, "spec": s.name}), report=chosen, losing=losing)
                n = len(res.scenarios)
                nd = int(res.hospitals["draw"].nunique()) if len(res.hospitals) else 1
                con.print(f"{s.name}: {n} scenarios × {nd} draw(s) -> {dest}: "
                          + ", ".join(sorted(p.name for p in paths.values())))
                for line in summary_lines(res, losing):
                    con.print(line, markup=False)
                fb = res.funds.get("fund_balance_fen")
                if fb is None or fb.isna().all():
                    con.print("  fund balance: not computed (it needs fund_income and "
                              "other_spending in the --region table)", markup=False)
                if top is not None:
                    for p in sorted(dest.iterdir()):
                        if p.is_file() and not p.name.startswith("."):
                            top.record(f"{part}/{p.name}")
            if top is not None:
                top.commit({**options, "parts": parts})
        for w in sorted({str(w.message) for w in caught}):
            con.print(f"warning: {w}")
    except DrgsimError as exc:
        fail(exc)


@contextlib.contextmanager
def _engine(engine: str, scheduler: str | None):
    """``drgsim.dask`` with a client for --engine dask, ``drgsim.spark`` with a session
    for --engine spark (None for this process)."""
    if engine == "spark":
        import drgsim.spark as dsp

        dsp._pyspark()  # SparkError (a DrgsimError) without pyspark
        with dsp.session(scheduler):
            yield dsp
        return
    if engine != "dask":
        yield None
        return
    try:
        import drgsim.dask as dg
    except ImportError as exc:
        raise DrgsimError(str(exc)) from None
    with dg.cluster(scheduler):
        yield dg
