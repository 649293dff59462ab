"""The ``drgsim`` command line: a thin layer over the Python API.

Commands live in their own modules and are imported only when invoked, so that
``drgsim --help`` starts fast. To add a command, add one line to ``COMMANDS``.
"""

from __future__ import annotations

from importlib import import_module

import click

from drgsim import __version__

# command name -> ("module", "click command attribute", "one-line help")
COMMANDS: dict[str, tuple[str, str, str]] = {
    "calibrate": ("drgsim.cli.calibrate_cmd", "calibrate", "Calibrate DRG weights and base points from history."),
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
    """A click group whose subcommands are imported on first use."""

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


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="drgsim")
def main() -> None:
    """drgsim: group discharges (CHS-DRG), price them in points and simulate budgets.

    \b
    Example:
      drgsim demo                      # synthetic region -> grouped cases -> summary
      drgsim group cases.parquet -o grouped.parquet
      drgsim scheme validate grouper_tables/chs_drg_11
    """
    from drgsim.output.signals import install_signal_handlers

    install_signal_handlers()  # SIGTERM unwinds like Ctrl-C: no half-written output
