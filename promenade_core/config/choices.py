"""The closed sets of words a config may choose from, as Enums.

Each is a `str` Enum whose values are the words of `promenade.yaml` and of the wire, so
JSON, YAML and comparisons with plain strings stay as they were, while code and mypy
see one of a known set instead of any string. Standard library only.
"""

from __future__ import annotations

import enum


class Word(str, enum.Enum):
    """A str Enum that prints as its word, as `enum.StrEnum` does (Python >= 3.11 only):
    a plain `(str, Enum)` shows as `HostsMode.AUTO` in an f-string on 3.11."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class RestartPolicy(Word):
    """What follows a process exit (`promenade_core.supervise.policy` decides)."""

    NEVER = "never"     # a failure stays failed
    ONCE = "once"       # one retry after 1 s, then gave_up
    ALWAYS = "always"   # restart on any exit, backing off 1, 2, 4 … 30 s


class HostsMode(Word):
    """`manager.hosts_management`: who maps service hostnames in /etc/hosts."""

    AUTO = "auto"           # promenade-hostsd does, leased to this manager
    MANUAL = "manual"       # the user does: the manager prints the lines to add
    DISABLED = "disabled"   # nobody: URLs use localhost:PORT


#: `port: auto` (a service's port, besides a number): a free loopback port picked at
#: each start (supervise/autoport.py)
AUTO_PORT = "auto"


def words(choices: type[enum.Enum]) -> tuple[str, ...]:
    """The config words of an Enum, in definition order (for messages and checks)."""
    return tuple(str(member.value) for member in choices)


class Condition(Word):
    """What a `depends_on` entry in mapping form waits for (docker compose's words)."""

    STARTED = "started"                                  # its process is running
    HEALTHY = "healthy"                                  # running and its ready_check passed
    COMPLETED_SUCCESSFULLY = "completed_successfully"    # it ran and exited with code 0


class ReadyType(Word):
    """How a `ready_check` decides that a service is up."""

    HTTP = "http"   # GET path on the port answers 200-399
    TCP = "tcp"     # the port accepts a connection
    EXEC = "exec"   # a command exits 0
    LOG = "log"     # an output line matches a pattern


class StopSignal(Word):
    """`stop_signal`: the signal a stop sends to the service's whole process tree."""

    TERM = "TERM"
    INT = "INT"
    QUIT = "QUIT"
    HUP = "HUP"
    USR1 = "USR1"
    USR2 = "USR2"
    KILL = "KILL"

    @property
    def number(self) -> int:
        import signal

        return int(getattr(signal, f"SIG{self.value}"))
