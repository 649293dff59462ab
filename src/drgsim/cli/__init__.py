"""The ``drgsim`` command line: a thin layer over the Python API.

Commands live in their own modules and are imported only when invoked, so that
``drgsim --help`` starts fast. To add a command, add one line to ``COMMANDS``.
"""

from __future__ import annotations

import os
import sys
import warnings
from importlib import import_module

import click

from drgsim import __version__

# command name -> ("module", "click command attribute", "one-line help")
COMMANDS: dict[str, tuple[str, str, str]] = {
    "calibrate": ("drgsim.cli.calibrate_cmd", "calibrate", "Calibrate DRG weights and base points from history."),
    "dip": ("drgsim.cli.dip_cmd", "dip", "Build and validate a DIP packet catalogue from history."),
    "demo": ("drgsim.cli.demo_cmd", "demo", "Run the whole pipeline on built-in demo data."),
    "explain": ("drgsim.cli.explain_cmd", "explain", "Explain how one record is grouped (the decision path)."),
    "group": ("drgsim.cli.group_cmd", "group", "Group discharge records into CHS-DRG groups."),
    "policy": ("drgsim.cli.policy_cmd", "policy", "Validate and show payment policies."),
    "scenario": ("drgsim.cli.scenario_cmd", "scenario", "Validate and show scenario files (sweeps as YAML)."),
    "scheme": ("drgsim.cli.scheme_cmd", "scheme", "Validate and inspect scheme tables."),
    "simulate": ("drgsim.cli.simulate_cmd", "simulate", "Price and settle a year of cases under a policy."),
    "sweep": ("drgsim.cli.sweep_cmd", "sweep", "Sweep scenarios over a year of cases against the baseline."),
    "synth": ("drgsim.cli.synth_cmd", "synth", "Generate a synthetic region (discharges, hospitals, funds)."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use; click's own errors
    (usage, bad option values) are printed in drgsim's style, one line (see :func:`_one_line`)."""

    def main(self, args=None, prog_name=None, *a, **k):
        # the program is 'drgsim' however it was started (python -c, -m, a test runner)
        return super().main(args, prog_name or self.name, *a, **k)

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        try:  # drgsim's own options and the command name: parsed before invoke
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.exceptions.ClickException as exc:
            raise _one_line(exc) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        module, attr, _ = entry
        return getattr(import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        """Run the command; every error reaches the person as one line (see :func:`_report`)."""
        debug = bool(ctx.params.get("debug")) or _debug_env()
        shown = warnings.showwarning
        if not debug:
            warnings.showwarning = _one_line_warning
        try:
            return super().invoke(ctx)
        except click.exceptions.ClickException as exc:
            raise _one_line(exc) from None  # click prints it with exc.show, exits with its code
        except (click.exceptions.Exit, click.Abort):
            raise
        except SystemExit:
            raise
        except BrokenPipeError:
            raise  # `drgsim ... | head`: click quiets it
        except BaseException as exc:  # noqa: BLE001 - the one place that turns errors into lines
            if debug:
                raise
            _report(exc)
        finally:
            warnings.showwarning = shown


ISSUES = "the drgsim issue tracker"


def _one_line(exc: click.exceptions.ClickException) -> click.exceptions.ClickException:
    """click's errors as drgsim prints its own: ``error: message`` on one line of stderr,
    with where to read the help for usage errors; click keeps the exit code (2 for usage).
    A group called without a command keeps showing its help."""
    no_args = getattr(click.exceptions, "NoArgsIsHelpError", None)  # click >= 8.2
    if no_args is not None and isinstance(exc, no_args):
        return exc

    def show(file=None) -> None:
        msg = " ".join(exc.format_message().split())
        if msg[:1].isupper() and msg[1:2].islower():  # "No such option" -> "no such option"
            msg = msg[0].lower() + msg[1:]
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        click.echo(f"error: {msg}{hint}", err=True)

    exc.show = show  # type: ignore[method-assign]
    return exc


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings on the command line: ``warning: message``, one line, no source excerpt."""
    click.echo(f"warning: {message}", err=True)


def _debug_env() -> bool:
    return os.environ.get("DRGSIM_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def _report(exc: BaseException) -> None:
    """One line on stderr and an exit code; never a traceback (that is ``--debug``).

    Exit 2: a user mistake (a drgsim error, a file the OS refuses); 128 + signal number when
    interrupted (130 Ctrl-C, 143 SIGTERM); 1: an internal error, which says so and asks for
    a report.
    """
    from drgsim.errors import DrgsimError

    if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, or SIGTERM/SIGHUP (output.signals)
        signum = getattr(exc, "signum", 2)
        click.echo(f"\n{exc}" if signum != 2 and str(exc) else "\ninterrupted", err=True)
        sys.exit(128 + signum)
    if isinstance(exc, DrgsimError):
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if isinstance(exc, OSError) and exc.filename is not None:
        where = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
        click.echo(f"error: {where}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    if isinstance(exc, MemoryError):
        click.echo("error: out of memory (for group: try a smaller --batch-rows)", err=True)
        sys.exit(1)
    what = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    click.echo(f"internal error (a bug in drgsim {__version__}): {what} — please report it on "
               f"{ISSUES} with the command you ran; 'drgsim --debug ...' or DRGSIM_DEBUG=1 "
               "shows the traceback", err=True)
    sys.exit(1)


@click.group("drgsim", cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="drgsim")
@click.option("--debug", is_flag=True, default=False,
              help="Show the full traceback of an error (also DRGSIM_DEBUG=1).")
def main(debug: bool = False) -> None:
    """drgsim: group discharges (CHS-DRG), price them in points and simulate budgets.

    \b
    Example:
      drgsim demo                      # synthetic region -> grouped cases -> summary
      drgsim group cases.parquet -o grouped.parquet
      drgsim scheme validate grouper_tables/chs_drg_11
    """
    from drgsim.output.signals import install_signal_handlers

    install_signal_handlers()  # SIGTERM unwinds like Ctrl-C: no half-written output
