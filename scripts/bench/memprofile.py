"""Where Promenade's memory goes: PSS per process, and what each import group costs.

    .venv/bin/python scripts/bench/memprofile.py idle [--services 20] [--router]
    .venv/bin/python scripts/bench/memprofile.py processes PID
    .venv/bin/python scripts/bench/memprofile.py imports

`idle` starts a manager of its own (N `sleep` services, the dashboard on, a temp runtime
folder, no hostsd, the router off unless `--router`), waits until the dashboard answers
and the start-up has settled, prints each manager process's PSS split into anonymous
memory (the heap: Python objects, what imports build) and file-backed pages (code and
shared libraries, which other processes running the same files share), then stops it.
`processes PID` prints the same for a running manager (PID from `manager.json`).

`imports` measures, each in a fresh interpreter, the anonymous memory that every import
group adds on top of the ones before it, in the order the manager and the web process
import them, plus the groups that only some configs need (alone, over a bare
interpreter). Anonymous memory is what a Python process cannot share with another
one: it is what the README's memory paragraph is about. Run it with .pyc files present
(`python -m compileall`): compiling from source leaves garbage behind and distorts
the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import procs  # noqa: E402

SETTLE_S = 3.0
START_LIMIT_S = 30.0
FIELDS = ("Pss", "Pss_Anon", "Pss_File")


@dataclass(frozen=True)
class Usage:
    """One process's proportional set size, in KiB, from /proc/PID/smaps_rollup."""

    pid: int
    role: str
    pss: int
    anon: int
    file: int


def smaps_rollup(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                key, _, rest = line.partition(":")
                if key in FIELDS:
                    values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values


def role(pid: int) -> str:
    """What a manager-side process is, from its command line."""
    cmd = procs.cmdline(pid)
    if "promenade_web" in cmd:
        return "web process"
    if "reaper" in cmd:
        return "reaper"
    if "promenade_core.router" in cmd:
        return "router (one per user)"
    return "manager" if "promenade" in cmd else cmd[:40]


def usage(pid: int) -> Usage:
    values = smaps_rollup(pid)
    return Usage(pid, role(pid), values.get("Pss", 0), values.get("Pss_Anon", 0),
                 values.get("Pss_File", 0))


def children(pid: int) -> list[int]:
    found = []
    for other in procs.all_pids():
        try:
            with open(f"/proc/{other}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        if int(text[text.rfind(")") + 2:].split()[1]) == pid:
            found.append(other)
    return found


def manager_processes(pid: int) -> list[int]:
    """The manager and its children that are not services (they run `sh -c`)."""
    return [pid, *(child for child in children(pid)
                   if not procs.cmdline(child).startswith("/bin/sh -c"))]


def table(rows: list[Usage]) -> str:
    lines = [f"{'process':<24}{'pid':>8}{'PSS MB':>9}{'anon MB':>9}{'file MB':>9}"]
    for row in rows:
        lines.append(f"{row.role:<24}{row.pid:>8}{row.pss / 1024:>9.1f}"
                     f"{row.anon / 1024:>9.1f}{row.file / 1024:>9.1f}")
    total = [sum(getattr(row, name) for row in rows) / 1024 for name in ("pss", "anon", "file")]
    lines.append(f"{'total':<32}{total[0]:>9.1f}{total[1]:>9.1f}{total[2]:>9.1f}")
    return "\n".join(lines)


# -- a manager of our own --------------------------------------------------------------


def write_config(folder: Path, services: int, port: int) -> Path:
    lines = ["manager:", f"  port: {port}", "  hosts_management: disabled", "services:"]
    for number in range(services):
        lines += [f"  s{number}:", "    command: sleep 100000", "    restart_policy: never",
                  "    env: {BENCH_SVC: '1'}"]
    path = folder / "promenade.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def idle(services: int, router: bool, settle: float) -> int:
    folder = Path(tempfile.mkdtemp(prefix="pmem-"))
    port = free_port()
    config = write_config(folder, services, port)
    token = secrets.token_hex(6)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(folder), "NO_COLOR": "1",
           "PROMENADE_ROUTER": "1" if router else "0", "BENCH_RUN": token,
           "PROMENADE_HOSTSD_SOCKET": str(folder / "no-hostsd.sock")}
    promenade = Path(sys.executable).with_name("promenade")
    proc = subprocess.Popen([str(promenade), "start", "-c", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        if not wait_for_port(port, START_LIMIT_S):
            print("the dashboard did not answer", file=sys.stderr)
            return 1
        time.sleep(settle)
        rows = [usage(pid) for pid in procs.run_processes(token, proc.pid).manager]
        print(f"{services} idle services, dashboard on, router {'on' if router else 'off'}")
        print(table(rows))
        return 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            pass
        procs.kill_run(token, proc.pid)
        shutil.rmtree(folder, ignore_errors=True)


# -- import groups ----------------------------------------------------------------------

#: (label, statements), imported in this order in one interpreter: the manager's path.
MANAGER_GROUPS = [
    ("gevent + zmq.green", "import gevent, gevent.event, gevent.subprocess, zmq.green"),
    ("click + the CLI", "import promenade_cli.main, promenade_cli.start_cmd"),
    ("yaml + marshmallow (config)", "import yaml, marshmallow"),
    ("promenade_core.manager", "import promenade_core.manager, "
     "promenade_core.supervise.terminal, promenade_core.supervise.visibility"),
]
#: The web process's path, monkey-patched first as promenade_web/__main__.py does.
WEB_GROUPS = [
    ("gevent (patched) + zmq.green", "from gevent import monkey; monkey.patch_all(); "
     "import gevent.pywsgi, zmq.green"),
    ("flask (werkzeug, jinja2)", "import flask"),
    ("flask_sock (simple_websocket, wsproto)", "import flask_sock"),
    ("promenade_web", "import promenade_web.serve"),
]
#: What only some configs need, each over a bare interpreter.
OPTIONAL_GROUPS = [
    ("watchfiles (anyio)", "import watchfiles"),
    ("cryptography.x509 (tls, CA)", "import cryptography.x509"),
    ("h11 (CORS proxy)", "import h11"),
    ("orjson", "import orjson"),
    ("multiprocessing", "import multiprocessing"),
]

PROBE = """
import gc, json, sys
def anon():
    with open('/proc/self/smaps_rollup') as rollup:
        for line in rollup:
            if line.startswith('Anonymous:'):
                return int(line.split()[1])
    return 0
results = [anon()]
modules = [len(sys.modules)]
for code in json.loads(sys.argv[1]):
    exec(code, {})
    gc.collect()
    results.append(anon())
    modules.append(len(sys.modules))
print(json.dumps([results, modules]))
"""


def probe(statements: list[str]) -> tuple[list[int], list[int]]:
    """Anonymous KiB and module counts after each statement, in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(statements)],
                         check=True, capture_output=True, text=True).stdout
    anon, modules = json.loads(out)
    return anon, modules


def group_rows(groups: list[tuple[str, str]], chained: bool) -> list[str]:
    lines = []
    if chained:
        anon, modules = probe([code for _, code in groups])
        lines.append(f"  {'bare interpreter':<42}{anon[0] / 1024:>7.1f} MB "
                     f"{modules[0]:>5} modules")
        for index, (label, _) in enumerate(groups, start=1):
            lines.append(f"  + {label:<40}{(anon[index] - anon[index - 1]) / 1024:>7.1f} MB "
                         f"{modules[index] - modules[index - 1]:>5} modules")
        lines.append(f"  {'= anonymous after imports':<42}{anon[-1] / 1024:>7.1f} MB "
                     f"{modules[-1]:>5} modules")
        return lines
    for label, code in groups:
        anon, modules = probe([code])
        lines.append(f"  {label:<42}{(anon[1] - anon[0]) / 1024:>7.1f} MB "
                     f"{modules[1] - modules[0]:>5} modules")
    return lines


def imports() -> int:
    print("manager, in import order (anonymous memory added)")
    print("\n".join(group_rows(MANAGER_GROUPS, chained=True)))
    print("web process, in import order")
    print("\n".join(group_rows(WEB_GROUPS, chained=True)))
    print("each alone over a bare interpreter (needed only by some configs)")
    print("\n".join(group_rows(OPTIONAL_GROUPS, chained=False)))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("idle", help="start a manager with idle services and measure it")
    run.add_argument("--services", type=int, default=20)
    run.add_argument("--router", action="store_true", help="let it use the router")
    run.add_argument("--settle", type=float, default=SETTLE_S)
    running = sub.add_parser("processes", help="measure a running manager")
    running.add_argument("pid", type=int)
    sub.add_parser("imports", help="the anonymous memory of each import group")
    args = parser.parse_args()
    if args.command == "idle":
        return idle(args.services, args.router, args.settle)
    if args.command == "processes":
        print(table([usage(pid) for pid in manager_processes(args.pid)]))
        return 0
    return imports()


if __name__ == "__main__":
    sys.exit(main())
