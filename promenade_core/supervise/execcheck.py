"""One run of an exec ready_check's command, judged: a side command (`children`) in
the service's directory and environment, killed with its group at its timeout.

Its stdout is discarded and its stderr read only for its last line (what `-v` shows of
a failed check): neither goes into the service's log, where a check every 2 s would
bury the service's own lines.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from pathlib import Path

from promenade_core.logformat import strip_ansi
from promenade_core.masking import mask_command
from promenade_core.supervise.children import SideCommand
from promenade_core.supervise.health import ProbeResult

#: Characters of a command or a stderr line shown in a check's detail.
SHOWN_MAX = 120


def shorten(text: str, limit: int = SHOWN_MAX) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def shown(command: str) -> str:
    """The command as a detail quotes it: inline secrets masked, kept short."""
    return repr(shorten(mask_command(command)))


def last_line(data: bytes) -> str:
    """The last non-blank line of what the command wrote to stderr, safe to print
    (escape codes and control characters dropped, inline secrets masked, shortened)."""
    for raw in reversed(data.decode(errors="replace").splitlines()):
        text = strip_ansi(raw).strip()
        if text:
            return shorten(mask_command(text))
    return ""


def exit_detail(command: str, code: int, stderr: str) -> str:
    """What a finished command says about the check (`-v`, a restart's reason)."""
    if code < 0:
        try:
            how = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
    else:
        how = f"exited with code {code}"
    return f"exec {shown(command)}: {how}" + (f": {stderr}" if stderr and code else "")


def spawn_failure(command: str, cwd: Path, exc: Exception) -> ProbeResult:
    """A command that could not be started (the folder is gone, out of processes or
    descriptors, a NUL byte in the environment): a failed check, never an exception."""
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return ProbeResult(False, f"exec {shown(command)}: could not run /bin/sh in {cwd}: "
                              f"{detail}")


def run_check(command: str, cwd: Path, env: Mapping[str, str]) -> SideCommand:
    """Spawn the check's command (stdout discarded, stderr kept for its last line);
    raises OSError or ValueError when it cannot be (`spawn_failure`)."""
    return SideCommand(command, cwd, env, keep_stdout=False)


def check_result(run: SideCommand, timeout: float) -> ProbeResult:
    """Wait up to `timeout` seconds for the check's exit; healthy on code 0."""
    code = run.wait(timeout)
    if code is None:
        return ProbeResult(False, f"exec {shown(run.command)}: still running after "
                                  f"{timeout:g} s; killed")
    stderr = last_line(run.output)
    run.close()
    return ProbeResult(code == 0, exit_detail(run.command, code, stderr))
