"""CLI latency: the commands people type against a running manager, timed the way
hyperfine times them (hyperfine itself does not install here).

With N idle services up, each command runs a few untimed warm-up times (page cache,
the manager's first answer), then `runs` timed times; a run's wall time is
`time.perf_counter()` around `subprocess.run`, interpreter start-up included, its
stdout thrown away and its stderr read (and shown when it fails). A run that exits
non-zero is an error, never a fast sample. Each run's CPU time (user + sys of the
command and whatever it waited for, from RUSAGE_CHILDREN) is kept too: on a shared
machine it moves less with the load than the wall time does.

- Promenade: `promenade status`, `promenade logs -n 10`, `promenade stop sNN`, run in
  the project's folder with no `-c` (the config lookup a user gets).
- supervisor: `supervisorctl status`, `supervisorctl stop sNN` over a unix socket.
- pm2: `pm2 status`, `pm2 logs --lines 10 --nostream`, `pm2 stop sNN` against a pm2
  daemon (`pm2 start ecosystem.json`, PM2_HOME in the run's folder, `pm2 kill` at the
  end).

Every timed stop stops a running service: the stops take the services in turn, and
once every one is stopped, one untimed command starts them all again.
"""

from __future__ import annotations

import dataclasses
import math
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peers import Launch, Manager, Service, Tools
from runner import Context, ManagerRun, SpawnWatch
from scen_lifecycle import SETTLE_S, START_LIMIT_S, _up_services

#: Untimed runs of each command before the timed ones.
WARMUP = 3
#: One command run longer than this is broken, not slow.
RUN_LIMIT_S = 60.0


class CommandFailed(Exception):
    """A run exited non-zero (or not at all): the measurement is void."""


def summarize(samples_ms: Sequence[float], cpu_ms: Sequence[float]) -> dict[str, float]:
    """Wall: min, median, p90 (nearest rank), mean and sample standard deviation; CPU:
    the median; all in ms."""
    ordered = sorted(samples_ms)
    rank = max(1, math.ceil(0.9 * len(ordered)))
    return {
        "min_ms": ordered[0],
        "median_ms": statistics.median(ordered),
        "p90_ms": ordered[rank - 1],
        "mean_ms": statistics.fmean(ordered),
        "stddev_ms": statistics.stdev(ordered) if len(ordered) > 1 else 0.0,
        "cpu_median_ms": statistics.median(cpu_ms),
        "runs": len(ordered),
    }


def _children_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def run_once(argv: Sequence[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """One run's wall and CPU time in ms; CommandFailed when it exits non-zero."""
    cpu = _children_cpu_ms()
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=env, cwd=cwd, timeout=RUN_LIMIT_S)
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"`{' '.join(argv)}` did not finish within {RUN_LIMIT_S:g} s"
                            ) from None
    elapsed = (time.perf_counter() - start) * 1000
    cpu = _children_cpu_ms() - cpu
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip()[-300:]
        raise CommandFailed(f"`{' '.join(argv)}` exited {done.returncode}: {tail}")
    return elapsed, cpu


def time_command(argv: Callable[[], Sequence[str]], env: dict[str, str], cwd: Path,
                 runs: int, before: Callable[[], None] = lambda: None) -> dict[str, float]:
    """Warm-up, then `runs` timed runs; `argv()` gives each run's command line and
    `before()` runs untimed before each (both may change from run to run)."""
    for _ in range(WARMUP):
        before()
        run_once(argv(), env, cwd)
    walls, cpus = [], []
    for _ in range(runs):
        before()
        wall, cpu = run_once(argv(), env, cwd)
        walls.append(wall)
        cpus.append(cpu)
    return summarize(walls, cpus)


@dataclass
class Rotation:
    """Which service the next timed stop takes: each in turn, every one running when
    its stop is timed; once all are stopped, `restart()` starts them again (untimed)."""

    names: list[str]
    restart: Callable[[], object]
    position: int = 0

    def current(self) -> str:
        return self.names[self.position % len(self.names)]

    def before(self) -> None:
        if self.position and self.position % len(self.names) == 0:
            self.restart()

    def argv(self, stop: Callable[[str], Sequence[str]]) -> Callable[[], Sequence[str]]:
        def next_stop() -> Sequence[str]:
            name = self.current()
            self.position += 1
            return stop(name)
        return next_stop


@dataclass(frozen=True)
class Cli:
    """One manager's command line against its running instance."""

    env: dict[str, str]
    cwd: Path
    #: "status", "logs": argv (a manager without one has no key)
    reads: dict[str, list[str]]
    stop: Callable[[str], list[str]]
    start: Callable[[list[str]], list[str]]
    #: run at the end, before the run's processes are killed (pm2's daemon)
    close: list[str] | None = None


def measure(cli: Cli, names: list[str], runs: int) -> dict[str, Any]:
    """The reads first (every service is still running for them), then the stops."""
    result: dict[str, Any] = {}
    for name, argv in cli.reads.items():
        result[name] = time_command(lambda argv=argv: argv, cli.env, cli.cwd, runs)
    rotation = Rotation(names, lambda: run_once(cli.start(names), cli.env, cli.cwd))
    result["stop"] = time_command(rotation.argv(cli.stop), cli.env, cli.cwd, runs,
                                  rotation.before)
    return result


# ----------------------------------------------------------------------- the managers

def _promenade(base: Manager) -> Manager:
    """Promenade as the other scenarios run it, its log files in the run's folder."""
    def build(services: Sequence[Service], folder: Path, tools: Tools) -> Launch:
        launch = base.build(services, folder, tools)
        return dataclasses.replace(launch, env={**launch.env,
                                                "XDG_STATE_HOME": str(folder / "state")})
    return dataclasses.replace(base, build=build)


def _promenade_cli(run: ManagerRun, tools: Tools) -> Cli:
    promenade = tools.promenade or []
    return Cli(run.env, run.folder,
               {"status": [*promenade, "status"], "logs": [*promenade, "logs", "-n", "10"]},
               lambda name: [*promenade, "stop", name],
               lambda names: [*promenade, "start", *names])


def _supervisor(base: Manager) -> Manager:
    """supervisord as the other scenarios run it, plus the control socket that
    supervisorctl talks to (in /tmp: the run folder is too deep for a socket path)."""
    def build(services: Sequence[Service], folder: Path, tools: Tools) -> Launch:
        launch = base.build(services, folder, tools)
        sockets = Path(tempfile.mkdtemp(prefix="pmb-"))
        sock = sockets / "supervisor.sock"
        with (folder / "supervisord.conf").open("a") as conf:
            conf.write(f"\n[unix_http_server]\nfile={sock}\n\n"
                       f"[supervisorctl]\nserverurl=unix://{sock}\n\n"
                       "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = "
                       "supervisor.rpcinterface:make_main_rpcinterface\n")
        return dataclasses.replace(launch, scratch=(*launch.scratch, sockets))
    return dataclasses.replace(base, build=build)


def _supervisor_cli(run: ManagerRun, tools: Tools) -> Cli:
    ctl = [tools.peer("supervisorctl") or "supervisorctl", "-c",
           str(run.folder / "supervisord.conf")]
    return Cli(run.env, run.folder, {"status": [*ctl, "status"]},
               lambda name: [*ctl, "stop", name], lambda names: [*ctl, "start", "all"])


def _pm2(base: Manager) -> Manager:
    """The other scenarios' pm2 apps, started in pm2's daemon (`pm2 start`), which the
    `pm2` command talks to; `pm2-runtime` would exit once every app is stopped."""
    def build(services: Sequence[Service], folder: Path, tools: Tools) -> Launch:
        launch = base.build(services, folder, tools)
        pm2 = tools.peer("pm2") or "pm2"
        return dataclasses.replace(launch, argv=[pm2, *launch.argv[1:]])
    return dataclasses.replace(base, build=build, output=False)


def _pm2_cli(run: ManagerRun, tools: Tools) -> Cli:
    pm2 = tools.peer("pm2") or "pm2"
    return Cli(run.env, run.folder,
               {"status": [pm2, "status"], "logs": [pm2, "logs", "--lines", "10", "--nostream"]},
               lambda name: [pm2, "stop", name], lambda names: [pm2, "start", "all"],
               close=[pm2, "kill"])


#: name: (the manager as this scenario runs it, its command line, the tool it needs)
SETUPS: dict[str, tuple[Callable[[Manager], Manager],
                        Callable[[ManagerRun, Tools], Cli], str | None]] = {
    "promenade": (_promenade, _promenade_cli, None),
    "supervisor": (_supervisor, _supervisor_cli, "supervisorctl"),
    "pm2": (_pm2, _pm2_cli, "pm2"),
}


def cli(ctx: Context, manager: Manager, count: int, runs: int) -> dict[str, Any]:
    """`count` idle services up, then every command of the manager's CLI timed."""
    adapt, make_cli, tool = SETUPS[manager.name]
    if tool is not None and ctx.tools.peer(tool) is None:
        return {"note": f"{tool} is not installed in scripts/bench/.peers"}
    watch = SpawnWatch(ctx.scratch("cli") / "up.fifo")
    services = _up_services(ctx, watch, count)
    try:
        with ManagerRun(ctx, adapt(manager), services, "cli") as run:
            run.drain()
            command = make_cli(run, ctx.tools)
            try:
                if watch.wait(count, START_LIMIT_S) is None:
                    return {"error": f"only {len(watch.seen)} of {count} services started"}
                time.sleep(SETTLE_S)
                return {**measure(command, [s.name for s in services], runs),
                        "services": count}
            finally:
                if command.close is not None:
                    subprocess.run(command.close, env=command.env, cwd=command.cwd,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, timeout=RUN_LIMIT_S,
                                   check=False)
    finally:
        watch.close()
