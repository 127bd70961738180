"""The benchmark's entry point (called by `scripts/bench/run`): run every scenario for
Promenade and its peers, alternating, and write the table and charts.

Rounds alternate managers (the order rotates each round) so that a slow minute on a
shared machine does not land on one manager only; the table shows medians over the
rounds. `--smoke` is the CI guard: tiny sizes, Promenade and the baselines only, one
round, no charts, under ~30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402
import scen_bus  # noqa: E402
import scen_cli  # noqa: E402
import scen_flood  # noqa: E402
import scen_idle  # noqa: E402
import scen_latency  # noqa: E402
import scen_lifecycle  # noqa: E402
import scen_router  # noqa: E402
import scen_scale  # noqa: E402
from peers import MANAGERS, Manager, Tools, missing_reason  # noqa: E402
from runner import Context, make_svcbin  # noqa: E402

DEFAULT_MANAGERS = [
    "promenade", "promenade-tty", "honcho", "supervisor", "circus", "pm2", "concurrently",
    "cat>/dev/null", "python-lines",
]
SCENARIOS = ["flood", "integrity", "stalled", "latency", "observed", "spawn", "http", "idle",
             "stop", "stop-stubborn", "orphans", "bus", "memory", "router", "cli", "scale"]


@dataclass(frozen=True)
class Sizes:
    lines: int
    latency_s: float
    rate: int
    services: int
    idle_s: float
    memory_s: float
    flood_timeout: float
    idle_settle: float
    router_s: float  # per route and load, in each round
    router_mb: int  # the download through the router
    router_peers: bool  # Caddy too
    scale: tuple[int, ...]  # services in each run of the scale scenario
    scale_idle_s: float  # its idle window, at each size
    cli_runs: int = 20  # timed runs of each CLI command


FULL = Sizes(1_000_000, 4.0, 1000, 20, 30.0, 10.0, 20.0, 5.0, 2.0, 64, True, (20, 100, 200), 10.0)
QUICK = Sizes(200_000, 2.0, 1000, 20, 10.0, 5.0, 20.0, 3.0, 1.0, 32, True, (20, 100, 200), 5.0)
SMOKE = Sizes(20_000, 1.0, 500, 5, 1.0, 1.0, 20.0, 0.5, 0.2, 4, False, (5, 10), 1.0,
              cli_runs=3)

#: Which managers take part: baselines only in the floods, Promenade alone in its own.
APPLIES: dict[str, Callable[[Manager], bool]] = {
    "flood": lambda m: True,
    "integrity": lambda m: m.output,
    # managers that print their services' output; the baselines would just block
    "stalled": lambda m: m.output and m.kind == "manager",
    "observed": lambda m: m.name.startswith("promenade"),
    "bus": lambda m: m.name.startswith("promenade"),
    "memory": lambda m: m.name.startswith("promenade"),
    "scale": lambda m: m.name == "promenade",
    # not a manager's measurement: it runs once a round when Promenade takes part
    "router": lambda m: m.name == "promenade",
    # managers with a command line that talks to a running instance
    "cli": lambda m: m.name in scen_cli.SETUPS,
}
#: `tty: true` changes only how output is read: it takes part where output is measured.
TTY_ONLY_IN = {"flood", "integrity", "stalled", "latency", "observed", "bus"}


def applies(scenario: str, manager: Manager) -> bool:
    if manager.name == "promenade-tty" and scenario not in TTY_ONLY_IN:
        return False
    rule = APPLIES.get(scenario, lambda m: m.kind == "manager")
    return rule(manager)


def run_one(ctx: Context, scenario: str, manager: Manager, sizes: Sizes) -> dict[str, Any]:
    if scenario == "flood":
        return scen_flood.flood(ctx, manager, sizes.lines, ["F"], sizes.flood_timeout)
    if scenario == "integrity":
        return scen_flood.flood(ctx, manager, sizes.lines, ["A", "B"], sizes.flood_timeout)
    if scenario == "stalled":
        return scen_flood.stalled(ctx, manager, sizes.lines)
    if scenario in ("latency", "observed"):
        # Peers and Promenade alike are timed without extra readers; `observed` adds
        # Promenade's bus subscriber and WebSocket client in a run of its own.
        observed = scenario == "observed" and ctx.observer_python is not None
        return scen_latency.latency(ctx, manager, sizes.latency_s, sizes.rate, observed)
    if scenario == "spawn":
        return scen_lifecycle.spawn(ctx, manager, sizes.services)
    if scenario == "http":
        return scen_lifecycle.http_ready(ctx, manager, sizes.services)
    if scenario == "stop":
        return scen_lifecycle.stop(ctx, manager, sizes.services)
    if scenario == "stop-stubborn":
        return scen_lifecycle.stop(ctx, manager, 1, stubborn=1)
    if scenario == "orphans":
        after_stop = scen_lifecycle.orphans(ctx, manager, kill=False)
        after_kill = scen_lifecycle.orphans(ctx, manager, kill=True)
        return {**{f"stop_{k}": v for k, v in after_stop.items()},
                **{f"kill_{k}": v for k, v in after_kill.items()}}
    if scenario == "bus":
        return scen_bus.bus_throughput(ctx, manager, sizes.lines)
    if scenario == "memory":
        return scen_bus.memory_bound(ctx, manager, sizes.memory_s)
    if scenario == "cli":
        return scen_cli.cli(ctx, manager, sizes.services, sizes.cli_runs)
    if scenario == "scale":
        return scen_scale.scale(ctx, manager, sizes.scale, sizes.scale_idle_s, sizes.idle_settle)
    raise ValueError(f"unknown scenario {scenario!r}")


def _guarded(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:  # a broken manager must not stop the other measurements
        return {"error": f"{type(exc).__name__}: {exc}"}


def _brief(result: dict[str, Any]) -> str:
    flat = report.flatten(result)
    parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in flat.items()]
    return " ".join(parts)[:220]


def run_rounds(ctx: Context, managers: list[Manager], scenarios: list[str], sizes: Sizes,
               rounds: int) -> dict[str, dict[str, list[dict[str, Any]]]]:
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {s: {} for s in scenarios}
    for number in range(rounds):
        shift = number % len(managers)
        order = managers[shift:] + managers[:shift]
        for scenario in scenarios:
            chosen = [m for m in order if applies(scenario, m)]
            if scenario == "idle":
                results = _guarded(partial(scen_idle.idle, ctx, chosen, sizes.services,
                                           sizes.idle_s, sizes.idle_settle))
                for manager in chosen:
                    one = results.get(manager.name, results) if "error" not in results else results
                    raw[scenario].setdefault(manager.name, []).append(one)
                    print(f"[{number + 1}/{rounds}] idle {manager.name}: {_brief(one)}",
                          file=sys.stderr, flush=True)
                continue
            if scenario == "router":
                if chosen:
                    _router_round(ctx, sizes, raw[scenario], f"[{number + 1}/{rounds}]")
                continue
            for manager in chosen:
                started = time.monotonic()
                one = _guarded(partial(run_one, ctx, scenario, manager, sizes))
                raw[scenario].setdefault(manager.name, []).append(one)
                print(f"[{number + 1}/{rounds}] {scenario} {manager.name} "
                      f"({time.monotonic() - started:.1f} s): {_brief(one)}",
                      file=sys.stderr, flush=True)
    return raw


def _router_round(ctx: Context, sizes: Sizes, into: dict[str, list[dict[str, Any]]],
                  tag: str) -> None:
    """One router measurement; each route's metrics join that route's runs (an error
    lands on `router`, where report.errors finds it)."""
    result = _guarded(partial(scen_router.router, ctx, sizes.router_s, sizes.router_mb,
                              sizes.router_peers))
    routes = {"router": result} if "error" in result else result["routes"]
    for route, one in routes.items():
        into.setdefault(route, []).append(one)
    into.setdefault("_notes", []).append({"notes": result.get("notes", []),
                                          "caddy": result.get("caddy")})
    print(f"{tag} router: {_brief(routes)}", file=sys.stderr, flush=True)


def _tools(args: argparse.Namespace) -> Tools:
    promenade = shlex.split(args.promenade) if args.promenade else None
    if promenade and args.observer_python:
        probe = subprocess.run([args.observer_python, "-c", "import promenade_cli.main"],
                               capture_output=True)
        if probe.returncode != 0:
            promenade = None
    peers = HERE / ".peers"
    return Tools(
        bench_python=sys.executable,
        promenade=promenade,
        peers_bin=peers / "venv" / "bin",
        npm_bin=peers / "npm" / "node_modules" / ".bin",
        workloads=HERE / "workloads.py",
    )


def environment(tools: Tools) -> dict[str, Any]:
    versions = {}
    for name, exe in (("honcho", "honcho"), ("supervisor", "supervisord"),
                      ("circus", "circusd"), ("pm2", "pm2-runtime"),
                      ("concurrently", "concurrently")):
        versions[name] = report.peer_version(tools, name, exe)
    return {
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "load_at_start": os.getloadavg(),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench/run", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="CI guard: tiny, Promenade only")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, shorter idle")
    parser.add_argument("--runs", type=int, help="rounds (default 3; 1 with --smoke)")
    parser.add_argument("--managers", help=f"comma list (default {','.join(DEFAULT_MANAGERS)}; "
                        f"also promenade-noui)")
    parser.add_argument("--scenarios", help=f"comma list (default all: {','.join(SCENARIOS)})")
    parser.add_argument("--lines", type=int, help="flood size (default 1,000,000)")
    parser.add_argument("--flood-timeout", type=float, help="seconds before a flood is cut off")
    parser.add_argument("--out", type=Path, help="results folder (default scripts/bench/results)")
    parser.add_argument("--no-charts", action="store_true")
    parser.add_argument("--report", type=Path, metavar="RAW_JSON",
                        help="only rebuild the table and charts from a raw.json")
    parser.add_argument("--promenade", default="", help="command that runs promenade")
    parser.add_argument("--observer-python", default="",
                        help="Python with promenade_core, pyzmq and wsproto (the project venv)")
    return parser.parse_args(argv)


def _choose(text: str | None, default: list[str], known: list[str], what: str) -> list[str]:
    chosen = [x.strip() for x in text.split(",")] if text else default
    unknown = [x for x in chosen if x not in known]
    if unknown:
        raise SystemExit(f"unknown {what} {unknown!r}; choose from {', '.join(known)}")
    return chosen


def _exit_on_term(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so every ManagerRun's cleanup still runs."""
    raise SystemExit(128 + signum)


def rebuild(raw_json: Path, out: Path | None, charts: bool) -> int:
    """Table and charts again from a saved run (after a change to the report)."""
    saved = json.loads(raw_json.read_text())
    env, raw = saved["environment"], saved["results"]
    names = list(dict.fromkeys(n for scenario, by_name in raw.items() for n in by_name
                               if scenario != "router"))  # its names are routes
    names.sort(key=lambda n: DEFAULT_MANAGERS.index(n) if n in DEFAULT_MANAGERS else 99)
    # runs saved before a size was added lack its key: judge the sizes they have
    full = json.loads(json.dumps(vars(FULL)))  # as saved: tuples become lists
    targets = all(full.get(key) == value for key, value in env["sizes"].items())
    out = out or raw_json.parent
    out.mkdir(parents=True, exist_ok=True)
    print(report.write(out, raw, names, env, charts, targets))
    return 0


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _exit_on_term)
    args = parse(argv)
    if args.report:
        return rebuild(args.report, args.out, not args.no_charts)
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    sizes = Sizes(**{**vars(sizes),
                     **({"lines": args.lines} if args.lines else {}),
                     **({"flood_timeout": args.flood_timeout} if args.flood_timeout else {})})
    default = ["promenade", "cat>/dev/null", "python-lines"] if args.smoke else DEFAULT_MANAGERS
    names = _choose(args.managers, default, list(MANAGERS), "managers")
    scenarios = _choose(args.scenarios, SCENARIOS, SCENARIOS, "scenarios")
    if args.smoke and not args.scenarios:
        # integrity is flood's code with two services; stop-stubborn waits out a 5 s grace
        scenarios = [s for s in SCENARIOS if s not in ("integrity", "stop-stubborn")]
    rounds = args.runs or (1 if args.smoke else 3)
    tools = _tools(args)
    skipped = {n: r for n in names if (r := missing_reason(n, tools))}
    for name, reason in skipped.items():
        print(f"skipping {name}: {reason}", file=sys.stderr)
    managers = [MANAGERS[n] for n in names if n not in skipped]
    work = HERE / ".work" / time.strftime("%Y%m%d-%H%M%S")
    ctx = Context(work, tools, args.observer_python or None)
    make_svcbin(ctx)
    env = environment(tools)
    started = time.monotonic()
    raw = run_rounds(ctx, managers, scenarios, sizes, rounds)
    env["load_at_end"] = os.getloadavg()
    env["duration_s"] = round(time.monotonic() - started, 1)
    env["sizes"] = vars(sizes)
    env["rounds"] = rounds
    env["skipped"] = skipped
    out = args.out or (work / "results" if args.smoke else HERE / "results")
    env["smoke"] = args.smoke
    out.mkdir(parents=True, exist_ok=True)
    (out / "raw.json").write_text(json.dumps({"environment": env, "results": raw}, indent=1))
    table = report.write(out, raw, [m.name for m in managers], env,
                         charts=not (args.no_charts or args.smoke), targets=sizes == FULL)
    print(table)
    problems = report.errors(raw)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    failed = bool(args.smoke and problems)
    if failed:
        print(f"kept {work} for a look", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
