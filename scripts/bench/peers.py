"""How each manager under test is configured and launched for a list of services.

Every manager runs in the foreground with its merged output on stdout (a pipe the
harness reads) and is stopped by SIGTERM to its top process, as `docker stop` or a
`kill PID` would. Each service is a command line: managers that run commands through
a shell (Promenade, honcho, concurrently) get it as it is; those that exec an argv
(supervisor, circus, pm2) get it split as a shell would, as their users write it.
The benchmark's commands need no shell syntax except the orphan tree, which is
`sh -c '...'` itself. (Debian's dash does not exec the last command of `sh -c`, so
wrapping argv managers in a shell would leave them signalling the shell only.)

Settings are the managers' defaults except where the benchmark needs comparability:
no restarts, child output to stdout, a 5 s stop grace where configurable (Promenade's
own grace), runtime files inside the run's folder.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

GRACE_S = 5


def free_port() -> int:
    """A loopback port free right now (the kernel's pick; tiny race accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Service:
    """A service as a shell command line; `argv` is it split the way a shell would."""

    name: str
    command: str
    port: int | None = None
    #: Promenade's `ready_check` for a service with a port (YAML flow mapping)
    ready: str = "{type: tcp}"

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.command)


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    stop_signal: int = signal.SIGTERM
    #: For Promenade: where observers find it (config path, dashboard port).
    config: Path | None = None
    web_port: int | None = None
    #: Folders outside the run folder to remove when the run is over.
    scratch: tuple[Path, ...] = ()


Builder = Callable[[Sequence["Service"], Path, "Tools"], Launch]


@dataclass(frozen=True)
class Manager:
    """A manager (or a baseline) the benchmark can run.

    `kind` is "manager" for real peers and Promenade, "baseline" for the floors
    (`cat > /dev/null`, a bare Python line reader) that only take part in the floods.
    `stamp` is a regex a line's prefix must match for it to count as timestamped.
    """

    name: str
    kind: str
    build: Builder
    stamp: re.Pattern[bytes] | None = None
    output: bool = True

    def prepare(self, services: Sequence[Service], folder: Path, tools: Tools) -> Launch:
        folder.mkdir(parents=True, exist_ok=True)
        return self.build(services, folder, tools)


@dataclass(frozen=True)
class Tools:
    """Where the executables live; `None` means not installed (the peer is skipped)."""

    bench_python: str
    promenade: list[str] | None
    peers_bin: Path
    npm_bin: Path
    workloads: Path

    def peer(self, name: str) -> str | None:
        for folder in (self.peers_bin, self.npm_bin):
            path = folder / name
            if path.exists():
                return str(path)
        return None


def _promenade(ui: bool, tty: bool = False) -> Builder:
    """Promenade as configured by default (plain pipes, as every peer uses), or with
    `tty: true` (a pty per stream, for programs that need a terminal)."""

    def build(services: Sequence[Service], folder: Path, tools: Tools) -> Launch:
        port = free_port()
        lines = [
            "manager:",
            f"  port: {port}",
            "  hosts_management: disabled",
            "services:",
        ]
        for svc in services:
            lines += [f"  {svc.name}:", f"    command: {json.dumps(svc.command)}"]
            lines.append("    restart_policy: never")
            if tty:
                lines.append("    tty: true")
            if svc.port is not None:
                lines += [f"    port: {svc.port}", f"    ready_check: {svc.ready}"]
        config = folder / "promenade.yaml"
        config.write_text("\n".join(lines) + "\n")
        assert tools.promenade is not None
        argv = [*tools.promenade, "start", "-c", str(config), "--port", str(port)]
        if not ui:
            argv.append("--no-ui")
        # The run folder is too deep for ZeroMQ's 107-character ipc paths.
        runtime = Path(tempfile.mkdtemp(prefix="pmb-"))
        # The router is one per user, shared by every project and already up on a
        # developer's machine; with a fresh runtime folder per run, each run would
        # start a cold one (its imports competing with the services). It has a
        # scenario of its own (`router`); here, as for the peers, there is none.
        env = {"XDG_RUNTIME_DIR": str(runtime), "NO_COLOR": "1", "PROMENADE_ROUTER": "0",
               # the log files go into the run's folder, removed with it
               "XDG_STATE_HOME": str(folder / "state")}
        return Launch(argv, env, config=config, web_port=port if ui else None,
                      scratch=(runtime,))

    return build


def _honcho(services: Sequence[Service], folder: Path, tools: Tools) -> Launch:
    procfile = folder / "Procfile"
    procfile.write_text("".join(f"{svc.name}: {svc.command}\n" for svc in services))
    honcho = tools.peer("honcho")
    assert honcho is not None
    return Launch([honcho, "-f", str(procfile), "-d", str(folder), "start", "--no-colour"])


def _supervisor(services: Sequence[Service], folder: Path, tools: Tools) -> Launch:
    lines = [
        "[supervisord]",
        "nodaemon=true",
        f"logfile={folder / 'supervisord.log'}",
        f"pidfile={folder / 'supervisord.pid'}",
        f"childlogdir={folder}",
        "user=root" if os.geteuid() == 0 else "",
    ]
    for svc in services:
        lines += [
            "",
            f"[program:{svc.name}]",
            "command=" + svc.command.replace("%", "%%"),
            "stdout_logfile=/dev/stdout",
            "stdout_logfile_maxbytes=0",
            "redirect_stderr=true",
            "autorestart=false",
            "startsecs=0",
            f"stopwaitsecs={GRACE_S}",
        ]
    config = folder / "supervisord.conf"
    config.write_text("\n".join(lines) + "\n")
    supervisord = tools.peer("supervisord")
    assert supervisord is not None
    return Launch([supervisord, "-c", str(config)])


def _circus(services: Sequence[Service], folder: Path, tools: Tools) -> Launch:
    lines = [
        "[circus]",
        f"endpoint = ipc://{folder / 'ctl.sock'}",
        f"pubsub_endpoint = ipc://{folder / 'pub.sock'}",
        "statsd = False",
        "check_delay = 1",
    ]
    for svc in services:
        lines += [
            "",
            f"[watcher:{svc.name}]",
            "cmd = " + svc.command,
            "copy_env = True",
            "respawn = False",
            f"graceful_timeout = {GRACE_S}",
            "stdout_stream.class = StdoutStream",
            "stderr_stream.class = StdoutStream",
        ]
    config = folder / "circus.ini"
    config.write_text("\n".join(lines) + "\n")
    circusd = tools.peer("circusd")
    assert circusd is not None
    return Launch([circusd, str(config)])


def _pm2(services: Sequence[Service], folder: Path, tools: Tools) -> Launch:
    apps = [
        {
            "name": svc.name,
            "script": svc.argv[0],
            "args": svc.argv[1:],
            "interpreter": "none",
            "autorestart": False,
            "kill_timeout": GRACE_S * 1000,
            "cwd": str(folder),
        }
        for svc in services
    ]
    config = folder / "ecosystem.json"
    config.write_text(json.dumps({"apps": apps}, indent=1))
    runtime = tools.peer("pm2-runtime")
    assert runtime is not None
    return Launch([runtime, "start", str(config)], {"PM2_HOME": str(folder / "pm2home")})


def _concurrently(services: Sequence[Service], folder: Path, tools: Tools) -> Launch:
    conc = tools.peer("concurrently")
    assert conc is not None
    names = ",".join(svc.name for svc in services)
    argv = [conc, "--no-color", "-n", names, "--kill-timeout", str(GRACE_S * 1000)]
    return Launch(argv + [svc.command for svc in services])


def _devnull(services: Sequence[Service], folder: Path, tools: Tools) -> Launch:
    inner = " & ".join(svc.command for svc in services)
    return Launch(["/bin/sh", "-c", f"( {inner} & wait ) | cat > /dev/null"])


def _relay(services: Sequence[Service], folder: Path, tools: Tools) -> Launch:
    pairs = [part for svc in services for part in (svc.name, svc.command)]
    return Launch([tools.bench_python, "-S", "-E", str(tools.workloads), "relay", *pairs])


PROMENADE_STAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[[\w.-]+\] ")

MANAGERS: dict[str, Manager] = {
    m.name: m
    for m in (
        Manager("promenade", "manager", _promenade(ui=True), PROMENADE_STAMP),
        Manager("promenade-noui", "manager", _promenade(ui=False), PROMENADE_STAMP),
        Manager("promenade-tty", "manager", _promenade(ui=True, tty=True), PROMENADE_STAMP),
        Manager("honcho", "manager", _honcho),
        Manager("supervisor", "manager", _supervisor),
        Manager("circus", "manager", _circus),
        Manager("pm2", "manager", _pm2),
        Manager("concurrently", "manager", _concurrently),
        Manager("cat>/dev/null", "baseline", _devnull, output=False),
        Manager("python-lines", "baseline", _relay),
    )
}

PEER_EXECUTABLES = {
    "honcho": "honcho",
    "supervisor": "supervisord",
    "circus": "circusd",
    "pm2": "pm2-runtime",
    "concurrently": "concurrently",
}


def missing_reason(name: str, tools: Tools) -> str | None:
    """Why a manager cannot run here, or None when it can."""
    if name.startswith("promenade"):
        return None if tools.promenade else "promenade is not installed in the project venv"
    exe = PEER_EXECUTABLES.get(name)
    if exe is not None and tools.peer(exe) is None:
        return f"{exe} is not installed in scripts/bench/.peers (run scripts/bench/run)"
    if name == "cat>/dev/null" and shutil.which("cat") is None:
        return "cat not found"
    return None
