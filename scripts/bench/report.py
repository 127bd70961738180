"""Medians, the markdown table with ratios to the best peer and targets, and the charts.

Every row is one metric; a cell is the median over the rounds of that manager's runs.
A cell without a number says why: `timeout` (cut off), `hung` (did not exit when
asked), `error` (see raw.json), `—` (not applicable). The ratio column is Promenade's
median over the best peer's (baselines are shown, not ranked); the target column is
issue 16's goal for Promenade and whether the median meets it: a value, or a ratio
to the best peer (`≤ 1.0x best`) or to one named peer (`≤ 1.0x honcho`).
"""

from __future__ import annotations

import json
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import charts as charting
import scen_router


def flatten(result: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        elif not isinstance(value, list):
            flat[f"{prefix}{key}"] = value
    return flat


@dataclass(frozen=True)
class Metric:
    scenario: str
    key: str
    label: str
    fmt: str = "{:.3g}"
    lower: bool = True
    target: float | None = None
    ratio: bool = True
    #: a goal as a ratio of Promenade's median to the best peer's (or `versus`'s)
    target_ratio: float | None = None
    versus: str | None = None


METRICS = [
    Metric("flood", "wall_s", "Flood {lines:,} lines: launch → last line out (s)",
           target_ratio=1.0),
    Metric("flood", "first_to_last_s", "Flood: first → last line out (s)", target=0.5),
    Metric("flood", "cpu_s", "Flood: manager CPU (s)"),
    Metric("flood", "missing", "Flood: lines missing", "{:.0f}", target=0, ratio=False),
    Metric("flood", "unstamped", "Flood: lines without a timestamp", "{:.0f}", target=0,
           ratio=False),
    Metric("integrity", "missing", "2 floods at once: lines missing", "{:.0f}", target=0,
           ratio=False),
    Metric("integrity", "duplicated", "2 floods at once: lines duplicated", "{:.0f}",
           target=0, ratio=False),
    Metric("integrity", "broken", "2 floods at once: lines broken mid-line", "{:.0f}",
           target=0, ratio=False),
    Metric("stalled", "service_s", "Flood {lines:,} lines, manager's stdout never read: "
           "service done (s)", target=2.0),
    Metric("latency", "stdout.p50_ms", "Line → manager output, p50 (ms), {rate:,} lines/s + flood"),
    Metric("latency", "stdout.p99_ms", "Line → manager output, p99 (ms)", target=2.0),
    Metric("observed", "stdout.p99_ms", "Line → manager output, p99 (ms), with a bus "
           "subscriber and a WebSocket client attached", ratio=False),
    Metric("observed", "bus.p50_ms", "Line → bus subscriber, p50 (ms)", ratio=False),
    Metric("observed", "bus.p99_ms", "Line → bus subscriber, p99 (ms)", target=2.0,
           ratio=False),
    Metric("observed", "ws.p50_ms", "Line → WebSocket client, p50 (ms)", ratio=False),
    Metric("observed", "ws.p99_ms", "Line → WebSocket client, p99 (ms)", target=10.0,
           ratio=False),
    Metric("latency", "stdout.quiet_missing", "Quiet lines lost to the flood (output)",
           "{:.0f}", target=0, ratio=False),
    Metric("observed", "bus.quiet_missing", "Quiet lines lost to the flood (bus)", "{:.0f}",
           target=0, ratio=False),
    Metric("observed", "ws.quiet_missing", "Quiet lines lost to the flood (WebSocket)",
           "{:.0f}", target=0, ratio=False),
    Metric("latency", "stdout.quiet_broken", "Quiet lines broken mid-line (output)", "{:.0f}",
           target=0, ratio=False),
    Metric("latency", "flood_lines_per_s", "Flood lines/s out during the latency run",
           "{:,.0f}", lower=False),
    Metric("spawn", "spawn_s", "{services} services: launch → all spawned (s)"),
    Metric("http", "http_ready_s", "{services} HTTP services: launch → all ports accepting (s)",
           target_ratio=1.0, versus="honcho"),
    Metric("idle", "cpu_pct", "Idle CPU, {services} services over {idle_s:g} s (%)", "{:.3f}",
           target=0.05),
    Metric("idle", "pss_mb", "PSS of all manager processes (MB)", "{:.1f}", target=40.0),
    Metric("idle", "processes", "Manager processes", "{:.0f}", ratio=False),
    Metric("stop", "stop_s", "Stop {services} well-behaved services (s)", target=0.3),
    Metric("stop", "left_behind", "Service processes left after that stop", "{:.0f}",
           target=0, ratio=False),
    Metric("stop-stubborn", "stop_s", "Stop with one service ignoring SIGTERM (s)",
           ratio=False),
    Metric("stop-stubborn", "left_behind", "TERM-ignoring processes left behind", "{:.0f}",
           target=0, ratio=False),
    Metric("orphans", "stop_survivors", "Orphans of `sh -c 'sleep & sleep & wait'` after a stop",
           "{:.0f}", target=0, ratio=False),
    Metric("orphans", "kill_survivors", "Orphans 2.5 s after SIGKILL of the manager", "{:.0f}",
           target=0, ratio=False),
    Metric("bus", "bus_lines_per_s", "Flood of {lines:,} lines: lines/s to a bus subscriber",
           "{:,.0f}", lower=False, ratio=False),
    Metric("bus", "bus_messages_per_s", "Bus messages/s during the flood", "{:,.0f}",
           lower=False, ratio=False),
    Metric("bus", "bus_lost", "Flood lines the bus subscriber missed", "{:.0f}", target=0,
           ratio=False),
    Metric("memory", "growth_mb",
           "PSS growth, {memory_s:g} s flood + stalled bus sub + stalled tab (MB)", "{:.1f}",
           target=20.0, ratio=False),
    Metric("cli", "status.median_ms", "CLI `status`, {services} services running: median wall, "
           "interpreter start included (ms)", target=80.0),
    Metric("cli", "status.p90_ms", "CLI `status`: p90 (ms)", ratio=False),
    Metric("cli", "status.cpu_median_ms", "CLI `status`: CPU user+sys, median (ms)"),
    Metric("cli", "logs.median_ms", "CLI `logs -n 10` (pm2: `logs --lines 10 --nostream`): "
           "median (ms)", target=80.0),
    Metric("cli", "logs.p90_ms", "CLI `logs -n 10`: p90 (ms)", ratio=False),
    Metric("cli", "logs.cpu_median_ms", "CLI `logs -n 10`: CPU user+sys, median (ms)"),
    Metric("cli", "stop.median_ms", "CLI `stop SERVICE`, until it is stopped: median (ms)",
           target=80.0),
    Metric("cli", "stop.p90_ms", "CLI `stop SERVICE`: p90 (ms)", ratio=False),
    Metric("cli", "stop.cpu_median_ms", "CLI `stop SERVICE`: CPU user+sys, median (ms)"),
]

PROMENADE = "promenade"
LEGEND = (
    "Medians over the rounds. † lost lines in that flood, so its time is not ranked. "
    "`timeout`: cut off; `hung`: did not exit within 15 s of SIGTERM; `error`: see "
    "raw.json; `—`: not applicable. The ratio is Promenade's median over the best "
    "peer's (baselines are not ranked): above 1 is worse for times, below 1 is worse "
    "for rates."
)


def median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [v for r in runs if isinstance(v := flatten(r).get(key), int | float)
              and not isinstance(v, bool)]
    return statistics.median(values) if values else None


def _why_empty(runs: list[dict[str, Any]], metric: Metric) -> str:
    if not runs or not any(metric.key in flatten(r) or "error" in r for r in runs):
        return "—"
    if any("error" in r for r in runs):
        return "error"
    if any(r.get("timed_out") for r in runs):
        rate = median(runs, "lines_per_s")
        return f"timeout ({rate / 1000:.0f}k lines/s)" if rate else "timeout"
    if metric.key.endswith("stop_s") and any(r.get("stop_s", 0) is None for r in runs):
        return "hung"
    return "—"


SPEED_KEYS = ("wall_s", "first_to_last_s", "cpu_s")


def lossy(raw: dict, metric: Metric, name: str) -> bool:
    """A flood time of a manager that lost lines: shown with †, never the best."""
    if metric.scenario not in ("flood", "integrity") or metric.key not in SPEED_KEYS:
        return False
    return bool(median(raw.get(metric.scenario, {}).get(name, []), "missing"))


def cell(raw: dict[str, dict[str, list[dict[str, Any]]]], metric: Metric, name: str) -> str:
    runs = raw.get(metric.scenario, {}).get(name, [])
    value = median(runs, metric.key)
    if value is None:
        return _why_empty(runs, metric)
    text = f"{value:,.0f}" if abs(value) >= 1000 else metric.fmt.format(value)
    return text + (" †" if lossy(raw, metric, name) else "")


def best_peer(raw: dict, metric: Metric, peers: list[str]) -> tuple[str, float] | None:
    scored = [(n, v) for n in peers if not lossy(raw, metric, n)
              and (v := median(raw.get(metric.scenario, {}).get(n, []), metric.key)) is not None]
    if not scored:
        return None
    pick = min if metric.lower else max
    return pick(scored, key=lambda item: item[1])


def _ratio_target(metric: Metric, value: float | None, best: tuple[str, float] | None,
                  raw: dict) -> str:
    """`≤ 1.0x best` (or `x honcho`): judged on Promenade's median over the peer's."""
    assert metric.target_ratio is not None
    against = best
    if metric.versus is not None:
        theirs = median(raw.get(metric.scenario, {}).get(metric.versus, []), metric.key)
        against = (metric.versus, theirs) if theirs is not None else None
    sign = "≤" if metric.lower else "≥"
    goal = f"{sign} {metric.target_ratio:g}x {metric.versus or 'best'}"
    if value is None or against is None or against[1] <= 0:
        return f"{goal} ?"
    if lossy(raw, metric, PROMENADE):
        return f"{goal} ❌ (lines lost)"
    ratio = value / against[1]
    met = ratio <= metric.target_ratio if metric.lower else ratio >= metric.target_ratio
    return f"{goal} {'✅' if met else '❌'}"


def _target(metric: Metric, value: float | None) -> str:
    if metric.target is None:
        return ""
    sign = "≤" if metric.lower else "≥"
    if value is None:
        return f"{sign} {metric.fmt.format(metric.target)} ?"
    met = value <= metric.target if metric.lower else value >= metric.target
    return f"{sign} {metric.fmt.format(metric.target)} {'✅' if met else '❌'}"


HEADLINE = {
    ("flood", "wall_s"), ("flood", "first_to_last_s"), ("flood", "cpu_s"), ("flood", "missing"),
    ("integrity", "broken"), ("latency", "stdout.p99_ms"), ("observed", "bus.p99_ms"),
    ("observed", "ws.p99_ms"), ("http", "http_ready_s"), ("idle", "cpu_pct"),
    ("idle", "pss_mb"), ("stop", "stop_s"), ("orphans", "kill_survivors"),
    ("memory", "growth_mb"), ("cli", "status.median_ms"), ("cli", "logs.median_ms"),
    ("cli", "stop.median_ms"),
}


def table(raw: dict, names: list[str], peers: list[str], sizes: dict[str, Any],
          targets: bool, only: set[tuple[str, str]] | None = None) -> str:
    """The markdown table; targets are judged only at the full sizes they are set for."""
    header = ["Metric", *[f"**{n}**" if n == PROMENADE else n for n in names],
              "Promenade / best peer"] + (["Target (Promenade)"] if targets else [])
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for metric in METRICS:
        if only is not None and (metric.scenario, metric.key) not in only:
            continue
        if not any(raw.get(metric.scenario, {}).get(n) for n in names):
            continue
        cells = [cell(raw, metric, n) for n in names]
        if all(c == "—" for c in cells):
            continue
        ours = median(raw.get(metric.scenario, {}).get(PROMENADE, []), metric.key)
        ratio = ""
        best = best_peer(raw, metric, peers)
        if metric.ratio and ours is not None and best and best[1] > 0:
            ratio = f"{ours / best[1]:.2f} ({best[0]})"
        label = metric.label.format(**sizes)
        judged = (_ratio_target(metric, ours, best, raw) if metric.target_ratio is not None
                  else _target(metric, ours))
        verdict = [judged] if targets else []
        rows.append("| " + " | ".join([label, *cells, ratio, *verdict]) + " |")
    return "\n".join(rows) if len(rows) > 2 else ""  # a run of the router alone


def router_table(raw: dict, sizes: dict[str, Any]) -> str:
    """The router's own table (routes are its columns, not managers), from the medians
    of each route's rounds; empty when the run had no router measurement."""
    by_route = {route: runs for route, runs in raw.get("router", {}).items()
                if route in scen_router.ROUTES}
    if not by_route or "error" in by_route.get("router", [{}])[0]:
        return ""
    medians = {route: {key: value for key in runs[0]
                       if (value := median(runs, key)) is not None}
               for route, runs in by_route.items() if runs and "error" not in runs[0]}
    result = {"routes": medians, "concurrency": scen_router.CONCURRENCY,
              "big_mb": sizes.get("router_mb")}
    notes = [n for extra in raw["router"].get("_notes", []) for n in extra.get("notes", [])]
    caddy = next((x["caddy"] for x in raw["router"].get("_notes", []) if x.get("caddy")), None)
    lines = [scen_router.table(result), "",
             "Medians over the rounds. Ratios: the router's median over the other route's; "
             "above 1 is slower for latencies, below 1 is slower for rates."
             + (f" Caddy {caddy}, `reverse_proxy` with `tls internal`." if caddy else "")]
    lines += [f"Note: {note}." for note in dict.fromkeys(notes)]
    return "\n".join(lines)


#: The scale scenario's rows (its own table: the columns are the numbers of services).
SCALE_ROWS = [
    ("start_s", "Start all: launch → every service up, checks healthy (s)", "{:.3g}", True),
    ("spawn_s", "Launch → every sleeper's own code ran (s)", "{:.3g}", True),
    ("status_s", "`promenade status`, wall (s)", "{:.3g}", True),
    ("status_running", "Services `promenade status` lists running", "{:.0f}", False),
    ("idle_cpu_pct", "Idle CPU of the manager processes (%)", "{:.3f}", True),
    ("pss_mb", "PSS of all manager processes (MB)", "{:.1f}", True),
    ("stop_s", "Stop all: SIGTERM → manager exited (s)", "{:.3g}", True),
    ("left_behind", "Service processes left after the stop", "{:.0f}", False),
]


def scale_sizes(runs: list[dict[str, Any]]) -> list[int]:
    """The numbers of services the scale runs measured, smallest first."""
    return sorted({int(k) for r in runs for k in r if k.isdigit()})


def scale_growth(small: tuple[int, float], large: tuple[int, float]) -> float | None:
    """How a step grew against the services: (large / small value) / (large / small N).
    1 is linear; above 1 grows faster than the number of services."""
    (n0, v0), (n1, v1) = small, large
    return (v1 / v0) / (n1 / n0) if v0 > 0 and n0 > 0 and n1 > n0 else None


def scale_table(raw: dict) -> str:
    """Metric by number of services, medians over the rounds; empty without a run."""
    runs = raw.get("scale", {}).get(PROMENADE, [])
    sizes = scale_sizes(runs)
    if not sizes:
        return ""
    first, last = sizes[0], sizes[-1]
    header = ["Scale (Promenade)", *[f"{n} services" for n in sizes],
              f"growth {first}→{last} over services growth (1 = linear)"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, label, fmt, grows in SCALE_ROWS:
        values = {n: median(runs, f"{n}.{key}") for n in sizes}
        cells = [("—" if any(str(n) not in r for r in runs) else "error") if v is None
                 else fmt.format(v) for n, v in values.items()]
        a, b = values[first], values[last]
        ratio = scale_growth((first, a), (last, b)) if grows and a and b else None
        rows.append("| " + " | ".join([label, *cells, "" if ratio is None
                                       else f"{ratio:.2f}"]) + " |")
    return "\n".join(rows)


SCALE_LEGEND = (
    "Medians over the rounds; each size is one manager run (N - 10 sleepers and 10 HTTP "
    "services with an `http` ready_check probing every 0.2 s; fewer HTTP ones below 100), "
    "dashboard on, router off. Growth: the largest size's value over the smallest's, "
    "divided by the ratio of their numbers of services: 1 is linear, below 1 grows "
    "slower than the services (fixed costs), above 1 faster."
)


def errors(raw: dict) -> list[str]:
    return [f"{scenario} {name}: {r['error']}"
            for scenario, by_name in raw.items() for name, runs in by_name.items()
            for r in runs if "error" in r]


def peer_version(tools: Any, name: str, exe: str) -> str | None:
    path = tools.peer(exe)
    if path is None:
        return None
    if name in ("pm2", "concurrently"):
        package = Path(path).resolve().parents[1] / "package.json"
        while package.parent != package.parent.parent and not package.exists():
            package = package.parent.parent / "package.json"
        try:
            return str(json.loads(package.read_text())["version"])
        except (OSError, KeyError, ValueError):
            return None
    python = Path(path).with_name("python")
    probe = subprocess.run([str(python), "-c", f"import importlib.metadata as m; "
                            f"print(m.version({name!r}))"], capture_output=True, text=True)
    return probe.stdout.strip() or None


def _environment(env: dict[str, Any]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items() if v)
    skipped = "; ".join(f"{k}: {v}" for k, v in env.get("skipped", {}).items())
    load = lambda x: "/".join(f"{v:.2f}" for v in x)  # noqa: E731
    lines = [
        f"- {env.get('date')}, {env.get('cpus')} CPUs, Linux {env.get('kernel')}, "
        f"Python {env.get('python')}; {env.get('rounds')} rounds, "
        f"{env.get('duration_s')} s in all.",
        f"- Load average at start {load(env['load_at_start'])}, at end "
        f"{load(env['load_at_end'])} (1/5/15 min).",
        f"- Peers: {versions or 'none'}.",
    ]
    if skipped:
        lines.append(f"- Skipped: {skipped}.")
    return "\n".join(lines)


def write(out: Path, raw: dict, names: list[str], env: dict[str, Any], charts: bool,
          targets: bool) -> str:
    peers = [n for n in names if not n.startswith(PROMENADE)
             and n not in ("cat>/dev/null", "python-lines")]
    text = table(raw, names, peers, env["sizes"], targets)
    problems = errors(raw)
    body = ["# Promenade benchmark results", "", _environment(env), ""]
    body += [text, "", LEGEND, ""] if text else []
    routing = router_table(raw, env["sizes"])
    if routing:
        body += ["## Through the router", "", routing, ""]
        text = f"{text}\n\n{routing}" if text else routing
    scaled = scale_table(raw)
    if scaled:
        body += ["## Scale", "", scaled, "", SCALE_LEGEND, ""]
        text = f"{text}\n\n{scaled}" if text else scaled
    if problems:
        body += ["## Errors", "", *[f"- {p}" for p in problems], ""]
    headline = table(raw, names, peers, env["sizes"], targets, HEADLINE)
    (out / "headline.md").write_text(headline + "\n\n" + LEGEND + "\n")
    made = charting.draw(out, raw, names) if charts else []
    body += [f"![{p.stem}]({p.name})" for p in made]
    (out / "results.md").write_text("\n".join(body) + "\n")
    return text
