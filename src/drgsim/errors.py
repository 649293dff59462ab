"""Exception classes. Every error drgsim raises on bad input is one of these."""

from __future__ import annotations

from dataclasses import dataclass


class DrgsimError(Exception):
    """Base class of all drgsim errors."""


@dataclass(frozen=True)
class Problem:
    """One problem found while validating a file: ``file:line: field: message``."""

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ValidationError(DrgsimError):
    """A data file (scheme table, policy, mapping, scenario) failed validation.

    ``problems`` lists every problem found, not only the first.
    """

    kind = "file"

    def __init__(self, problems: list[Problem], title: str | None = None):
        self.problems = list(problems)
        if len(self.problems) == 1:  # one problem, one line: it names file and line itself
            only = str(self.problems[0])
            super().__init__(f"{title.rstrip(': ')}: {only}" if title else only)
            return
        head = title or f"{len(self.problems)} problem(s) in {self.kind}"
        lines = [head] + [f"  {p}" for p in self.problems[:200]]
        if len(self.problems) > 200:
            lines.append(f"  ... and {len(self.problems) - 200} more")
        super().__init__("\n".join(lines))


class SchemeError(ValidationError):
    """Scheme tables are missing, malformed or inconsistent."""

    kind = "scheme tables"


class ScenarioError(ValidationError):
    """A scenario file (or folder of them) failed validation: unknown key, wrong type,
    bad distribution, grid axes of unequal length under ``zip``..."""

    kind = "scenario file"


class SchemeNotFoundError(DrgsimError):
    """A scheme name or path does not resolve to a folder of tables."""


class SchemeWarning(UserWarning):
    """Scheme tables are valid but have something worth a look (an ADRG without DRGs)."""


class RecordsError(DrgsimError):
    """Input records cannot be read at all (missing required column, unreadable file)."""


class MissingColumnError(RecordsError):
    """A required input column is absent."""


class OutputError(DrgsimError):
    """An output cannot be written: it names an input, its folder is missing or read-only,
    its format is unknown, or the disk filled up (checked before any work where possible)."""
