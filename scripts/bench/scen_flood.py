"""Flood scenarios: how fast a burst of lines gets through a manager, at what CPU cost,
and whether every line arrives whole, once.

`flood` runs one service (or two, for integrity) that writes numbered 100-byte lines
and exits, and times from launching the manager to the last line read from its
stdout, so the figure includes the manager's own start-up, as a user would see it.
`stalled` runs the same flood while nobody reads the manager's stdout (a terminal
paused with Ctrl-S, a pager that stopped reading) and times the service alone.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from peers import Manager, Service
from runner import Chunks, Context, ManagerRun

FILL = b":" + b"x" * 87
#: After the services are done, this long without a new line means the rest is lost.
STALL_S = 2.0


def service_cpu(done_files: list[Path]) -> float:
    total = 0.0
    for path in done_files:
        if path.exists():
            total += float(json.loads(path.read_text())["cpu"])
    return total


def integrity(data: bytes, tags: list[str], per: int, stamp: re.Pattern[bytes] | None) -> dict:
    """Count lines missing, duplicated, broken mid-line, and (Promenade) unstamped.

    A line is intact when, from its `@@` marker on, it is exactly the 99 bytes the
    flood wrote; anything else carrying a marker was cut or interleaved.
    """
    intact = {tag.encode(): bytearray(per + 1) for tag in tags}
    damaged = {tag.encode(): bytearray(per + 1) for tag in tags}
    broken = unstamped = valid = 0
    for line in data.split(b"\n"):
        at = line.find(b"@@")
        if at < 0:
            continue
        payload = line[at:]
        tag = payload[2:3]
        digits = payload[3:11]
        seq = int(digits) if digits.isdigit() and len(digits) == 8 else 0
        broken_here = len(payload) != 99 or payload[11:] != FILL
        if tag not in intact or not 1 <= seq <= per:
            broken += 1  # cut before its number: it also counts as missing
        elif broken_here:
            broken += 1
            damaged[tag][seq] = 1  # it arrived, damaged: broken, not missing
        else:
            valid += 1
            intact[tag][seq] = 1
            if stamp is not None and not stamp.fullmatch(line, 0, at):
                unstamped += 1
    unique = sum(per + 1 - c.count(0) for c in intact.values())
    arrived = sum(
        per + 1 - bytes(a | b for a, b in zip(intact[t], damaged[t], strict=True)).count(0)
        for t in intact
    )
    result = {"missing": per * len(tags) - arrived, "duplicated": valid - unique,
              "broken": broken}
    if stamp is not None:
        result["unstamped"] = unstamped
    return result


def _read_flood(run: ManagerRun, markers: list[bytes], expected: int, done: list[Path],
                timeout: float) -> dict[str, Any]:
    chunks = Chunks(run.fd)
    kept: list[bytes] = []
    seen = 0
    first = last = None
    last_data = time.monotonic()
    deadline = run.t0 + timeout
    timed_out = False
    while seen < expected:
        got = chunks.read(0.05)
        now = time.monotonic()
        if got is not None:
            data = got[1]
            kept.append(data)
            last_data = now
            count = sum(data.count(marker) for marker in markers)
            if count:
                first = first or now
                last = now
                seen += count
        elif chunks.eof:
            break
        if now > deadline:
            timed_out = True
            break
        if now - last_data > STALL_S and all(path.exists() for path in done):
            break
    return {"first": first, "last": last, "seen": seen, "data": b"".join(kept),
            "timed_out": timed_out}


def flood(ctx: Context, manager: Manager, lines: int, tags: list[str],
          timeout: float) -> dict[str, Any]:
    """One flood run; `tags` has one letter per flooding service."""
    scratch = ctx.scratch("flood")
    per = lines // len(tags)
    done = [scratch / f"{tag}.done" for tag in tags]
    services = [
        Service(f"flood{tag.lower()}", ctx.py("flood", tag, per, path))
        for tag, path in zip(tags, done, strict=True)
    ]
    label = "flood" if len(tags) == 1 else "integrity"
    with ManagerRun(ctx, manager, services, label) as run:
        if not manager.output:
            finished = run.wait_exit(timeout)
            wall = (run.exited_at - run.t0) if run.exited_at else None
            return {"wall_s": wall, "cpu_s": run.cpu_s(service_cpu(done)),
                    "lines_out": lines if finished else None, "timed_out": not finished}
        got = _read_flood(run, [b"@@" + t.encode() for t in tags], per * len(tags), done,
                          timeout)
        if not got["timed_out"]:  # a cut-off manager is killed: its stop is not measured
            run.stop()
        cpu = run.cpu_s(service_cpu(done))
    first, last = got["first"], got["last"]
    cut = got["timed_out"]
    result: dict[str, Any] = {
        "wall_s": None if cut or last is None else last - run.t0,
        "first_s": None if first is None else first - run.t0,
        "first_to_last_s": None if cut or first is None or last is None else last - first,
        "lines_out": got["seen"],
        "cpu_s": None if got["timed_out"] else cpu,  # a cut-off run's CPU is partial
        "timed_out": got["timed_out"],
    }
    if got["timed_out"] and first is not None and last is not None and last > first:
        result["lines_per_s"] = got["seen"] / (last - first)
    result.update(integrity(got["data"], tags, per, manager.stamp))
    if cut:
        result["missing"] = None  # not lost: never written before the cut-off
    return result


#: A manager that passes its terminal's pace on to its services never finishes a
#: stalled flood; this is how long it is given.
STALLED_TIMEOUT_S = 10.0


def stalled(ctx: Context, manager: Manager, lines: int) -> dict[str, Any]:
    """The flood while the manager's stdout is a pipe nobody reads: from launch until
    the service has written its last line (its done file), or `timed_out`."""
    scratch = ctx.scratch("stalled")
    done = scratch / "S.done"
    with ManagerRun(ctx, manager, [Service("floods", ctx.py("flood", "S", lines, done))],
                    "stalled") as run:
        deadline = run.t0 + STALLED_TIMEOUT_S
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        finished = done.exists()
        wall = time.monotonic() - run.t0 if finished else None
    return {"service_s": wall, "timed_out": not finished}
