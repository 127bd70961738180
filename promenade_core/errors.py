"""One family of errors for everything a user can get wrong.

The CLI prints `Error: <message>` and exits with `exit_code`; library code never
calls sys.exit.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NO_MANAGER = 3


class PromenadeError(Exception):
    """Base of every error shown to a user."""

    exit_code = EXIT_FAILURE


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a config file, with where it is."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(PromenadeError):
    """A config that cannot be used; carries every problem found, not just the first."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class NoManagerError(PromenadeError):
    """No running manager answers for this config."""

    exit_code = EXIT_NO_MANAGER


class UnknownServiceError(PromenadeError):
    exit_code = EXIT_USAGE
