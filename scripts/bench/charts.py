"""PNG charts of the medians (matplotlib, installed in the bench environment only).

One figure per theme plus `summary.png`, the one the README shows. Bars are medians;
the thin marks are the individual rounds, so the spread is visible. Missing values
(timeouts, hangs) are drawn as a hatched bar at the axis top with their label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PROMENADE_COLOUR = "#1f6feb"
PEER_COLOUR = "#8c959f"
BASELINE_COLOUR = "#d0d7de"
BASELINES = ("cat>/dev/null", "python-lines")

#: (file, title, [(scenario, key, axis label, log scale)])
FIGURES = [
    ("flood", "Flood of 1M lines", [
        ("flood", "wall_s", "launch → last line (s)", True),
        ("flood", "cpu_s", "manager CPU (s)", True),
    ]),
    ("latency", "A quiet line's delay while another service floods", [
        ("latency", "stdout.p50_ms", "p50 to manager output (ms)", True),
        ("latency", "stdout.p99_ms", "p99 to manager output (ms)", True),
    ]),
    ("startup", "Start-up with 20 services", [
        ("spawn", "spawn_s", "all spawned (s)", False),
        ("http", "http_ready_s", "all HTTP ports accepting (s)", False),
    ]),
    ("idle", "Idle with 20 services", [
        ("idle", "cpu_pct", "CPU (%)", False),
        ("idle", "pss_mb", "PSS of manager processes (MB)", False),
    ]),
    ("stop", "Stopping", [
        ("stop", "stop_s", "20 well-behaved services (s)", False),
        ("stop-stubborn", "stop_s", "one ignores SIGTERM (s)", False),
    ]),
    ("cli", "CLI commands against a manager with 20 services (median wall, ms)", [
        ("cli", "status.median_ms", "status", False),
        ("cli", "logs.median_ms", "logs -n 10 (pm2: --lines 10 --nostream)", False),
        ("cli", "stop.median_ms", "stop SERVICE", False),
    ]),
]
SUMMARY = [
    ("flood", "wall_s", "Flood 1M lines: launch → last line (s)", True),
    ("latency", "stdout.p99_ms", "p99 line delay during a flood (ms)", True),
    ("http", "http_ready_s", "20 HTTP services ready (s)", False),
    ("idle", "cpu_pct", "Idle CPU, 20 services (%)", False),
    ("idle", "pss_mb", "Manager PSS (MB)", False),
    ("stop", "stop_s", "Stop 20 services (s)", False),
]


def _values(raw: dict, scenario: str, key: str, name: str) -> list[float]:
    from report import flatten

    out = []
    for run in raw.get(scenario, {}).get(name, []):
        value = flatten(run).get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out.append(float(value))
    return out


def _panel(ax: Any, raw: dict, names: list[str], scenario: str, key: str, label: str,
           log: bool) -> bool:
    import statistics

    shown = [n for n in names if raw.get(scenario, {}).get(n)]
    if not shown:
        return False
    medians = [statistics.median(v) if (v := _values(raw, scenario, key, n)) else None
               for n in shown]
    top = max([m for m in medians if m is not None] or [1.0])
    for i, (name, med) in enumerate(zip(shown, medians, strict=True)):
        colour = (PROMENADE_COLOUR if name.startswith("promenade")
                  else BASELINE_COLOUR if name in BASELINES else PEER_COLOUR)
        runs = raw[scenario][name]
        if med is None:
            why = "timeout" if any(r.get("timed_out") for r in runs) else "n/a"
            ax.bar(i, top * 1.1, color="white", edgecolor=colour, hatch="//")
            ax.text(i, top * 1.1, why, ha="center", va="bottom", fontsize=7)
            continue
        lost = scenario in ("flood", "integrity") and _median_missing(runs)
        ax.bar(i, med, color=colour, hatch="xx" if lost else None, edgecolor="white")
        ax.plot([i] * len(v := _values(raw, scenario, key, name)), v, "_", color="black",
                markersize=10)
        text = f"{med:,.0f}" if med >= 1000 else f"{med:.3g}"
        ax.text(i, med, text + (" †" if lost else ""), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(shown)), shown, rotation=35, ha="right", fontsize=8)
    ax.set_title(label, fontsize=9)
    if log and top > 0 and all(m is None or m > 0 for m in medians):
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    return True


def _median_missing(runs: list[dict[str, Any]]) -> bool:
    import statistics

    values = [r["missing"] for r in runs if isinstance(r.get("missing"), int)]
    return bool(values) and statistics.median(values) > 0


SCALE_PANELS = [
    ("start_s", "start all: launch → every service up (s)"),
    ("stop_s", "stop all: SIGTERM → manager exited (s)"),
    ("idle_cpu_pct", "idle CPU of the manager processes (%)"),
    ("pss_mb", "PSS of all manager processes (MB)"),
]


def _extend(n0: float, v0: float, n1: float, v1: float) -> Any:
    """The straight line through (n0, v0) and (n1, v1)."""
    slope = (v1 - v0) / (n1 - n0)
    return lambda n: v0 + slope * (n - n0)


def draw_scale(out: Path, raw: dict[str, Any], plt: Any) -> Path | None:
    """`scale.png`: each step against the number of services (medians joined, rounds as
    dots), with the slope between the two smallest sizes extended (dashed): a step
    whose larger size lands well above it grows faster than linearly (fixed costs make
    a line from zero useless as the reference)."""
    import statistics

    from report import scale_sizes

    runs = raw.get("scale", {}).get("promenade", [])
    sizes = scale_sizes(runs)
    if len(sizes) < 2:
        return None
    fig, axes = plt.subplots(1, len(SCALE_PANELS), figsize=(4.2 * len(SCALE_PANELS), 3.8))
    for ax, (key, label) in zip(axes, SCALE_PANELS, strict=True):
        points = {n: [float(v) for r in runs
                      if isinstance(v := r.get(str(n), {}).get(key), int | float)]
                  for n in sizes}
        shown = [n for n in sizes if points[n]]
        medians = [statistics.median(points[n]) for n in shown]
        for n in shown:
            ax.plot([n] * len(points[n]), points[n], ".", color=PEER_COLOUR)
        ax.plot(shown, medians, "o-", color=PROMENADE_COLOUR)
        if len(shown) >= 3:
            line = _extend(shown[0], medians[0], shown[1], medians[1])
            ax.plot(shown[1:], [line(n) for n in shown[1:]], "--", color=PEER_COLOUR,
                    linewidth=1, label=f"{shown[0]}→{shown[1]}'s slope, extended")
            ax.legend(fontsize=7)
        for n, med in zip(shown, medians, strict=True):
            ax.annotate(f"{med:.3g}", (n, med), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=7)
        ax.set_xticks(sizes)
        ax.set_xlabel("services", fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.set_ylim(bottom=0)
    fig.suptitle("Promenade with 20, 100 and 200 services (medians; dots = rounds)",
                 fontsize=11)
    fig.tight_layout()
    path = out / "scale.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def draw(out: Path, raw: dict[str, Any], names: list[str]) -> list[Path]:
    """Write the PNGs; returns them (none when matplotlib is not installed)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    summary = out / "summary.png"
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    for ax, (scenario, key, label, log) in zip(axes.flat, SUMMARY, strict=True):
        if not _panel(ax, raw, names, scenario, key, label, log):
            ax.set_visible(False)
    fig.suptitle("Promenade and its peers (medians, marks = rounds; lower is better; "
                 "† hatched = lost lines)", fontsize=11)
    fig.tight_layout()
    fig.savefig(summary, dpi=110)
    plt.close(fig)
    made.append(summary)
    for stem, title, panels in FIGURES:
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4))
        drawn = [
            _panel(ax, raw, names, scenario, key, label, log)
            for ax, (scenario, key, label, log) in zip(axes, panels, strict=True)
        ]
        if any(drawn):
            fig.suptitle(title, fontsize=11)
            fig.tight_layout()
            path = out / f"{stem}.png"
            fig.savefig(path, dpi=100)
            made.append(path)
        plt.close(fig)
    scaled = draw_scale(out, raw, plt)
    if scaled is not None:
        made.append(scaled)
    return made
