"""The bus: events feed, control commands and errors, the snapshot join."""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

from promenade_core.bus import protocol
from promenade_core.bus.client import (
    BusError,
    ControlClient,
    EventSubscriber,
    await_subscription,
    follow,
    open_events,
)
from tests.support import free_port, stubborn_manager, wait_for, write_script

PY = sys.executable
pytestmark = pytest.mark.timeout(90)

BASIC = """
    manager: {hosts_management: disabled}
    services:
      a: {command: "echo a-line; sleep 60"}
      b: {command: "sleep 60", depends_on: [a]}
"""


def raw_request(endpoint: str, payload: bytes, timeout: float = 5.0) -> dict | None:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send(payload)
        if not sock.poll(int(timeout * 1000)):
            return None
        return json.loads(sock.recv())
    finally:
        sock.close()


def test_manager_json_describes_the_instance(manager) -> None:
    m = manager(BASIC)
    info = m.info()
    data = json.loads((info.runtime_dir / "manager.json").read_text())
    assert set(data) >= {"pid", "version", "config_path", "events", "control",
                         "dashboard_url", "started_at"}
    assert data["pid"] == m.proc.pid and data["dashboard_url"] is None
    assert data["config_path"] == str(m.path)
    assert (info.runtime_dir.stat().st_mode & 0o777) == 0o700


def test_every_run_has_an_id_in_manager_json_replies_and_events(manager) -> None:
    """seq starts again at 0 when a manager restarts, and nothing told a client that
    the run had changed: a follower went silent. Each run now has an id."""
    m = manager(BASIC)
    info = m.info()
    run_id = json.loads((info.runtime_dir / "manager.json").read_text())["run_id"]
    assert len(run_id) == 32 and info.run_id == run_id
    assert m.request("ping")["run_id"] == run_id
    assert m.request("snapshot")["run_id"] == run_id
    assert m.request("status")["run_id"] == run_id
    with EventSubscriber(info.events, ("state/",)) as sub, ControlClient(info.control) as bus:
        await_subscription(sub, bus)
        bus.request("restart", service="b", wait=False)
        got = sub.recv(timeout=10)
    assert got is not None and got[1]["run_id"] == run_id
    m.signal(2)
    assert m.wait_exit() == 0
    again = manager(BASIC)
    assert again.info().run_id not in ("", run_id)


def test_every_read_command(manager) -> None:
    m = manager(BASIC)
    m.wait_status("b", "running")
    wait_for(lambda: m.lines("a") == ["a-line"], what="a's line")
    ping = m.request("ping")
    assert ping["pid"] == m.proc.pid and ping["seq"] > 0
    status = m.request("status")
    assert list(status["services"]) == ["a", "b"]
    assert status["config_path"] == str(m.path) and status["manager_uptime_seconds"] >= 0
    assert status["bus"]["dropped"] == 0
    for key in ("name", "status", "health", "pid", "port", "hostname", "url",
                "uptime_seconds", "restart_count", "last_exit_code", "cpu_percent",
                "memory_bytes"):
        assert key in status["services"]["a"], key
    assert m.request("service", service="a")["pid"] == status["services"]["a"]["pid"]
    logs = m.request("logs", services=["a"], tail=10)
    assert [m_["lines"] for m_ in logs["messages"]] == [["a-line"]]
    # replayed lines come as messages of the live log/ shape
    assert set(logs["messages"][0]) == {"v", "seq", "first_seq", "service", "stream",
                                        "timestamp", "lines"}
    assert logs["messages"][0]["service"] == "a"
    seq = logs["messages"][0]["seq"]
    assert logs["messages"][0]["first_seq"] == seq
    assert m.request("logs", service="a", since=seq)["messages"] == []
    config = m.request("config")
    assert config["path"] == str(m.path) and "a" in config["config"]["services"]
    snap = m.request("snapshot")
    a_logs = [msg for msg in snap["logs"] if msg["service"] == "a"]
    assert snap["seq"] >= seq and a_logs[0]["lines"] == ["a-line"]
    assert m.request("reload", dry_run=True)["summary"] == "reload: no changes"
    m.request("gap", count=3)
    assert m.request("status")["bus"]["dropped"] == 3


def test_error_codes(manager) -> None:
    m = manager(BASIC)
    info = m.info()
    with ControlClient(info.control, timeout=5) as bus:
        for cmd, args, code in [
            ("service", {"service": "apii"}, protocol.UNKNOWN_SERVICE),
            ("stop", {"service": "nope"}, protocol.UNKNOWN_SERVICE),
            ("logs", {"services": ["zz"]}, protocol.UNKNOWN_SERVICE),
            ("frobnicate", {}, protocol.UNKNOWN_COMMAND),
            ("service", {}, protocol.BAD_REQUEST),
            ("service", {"service": 5}, protocol.BAD_REQUEST),
            ("logs", {"tail": "ten"}, protocol.BAD_REQUEST),
            ("logs", {"since": True}, protocol.BAD_REQUEST),
            ("start", {"service": "a", "wait": "yes"}, protocol.BAD_REQUEST),
        ]:
            with pytest.raises(BusError) as err:
                bus.request(cmd, **args)
            assert err.value.code == code, (cmd, args, err.value.message)
        with pytest.raises(BusError, match="known: a, b"):
            bus.request("service", service="apii")
    for payload, needle in [(b"{not json", "not valid JSON"), (b"[1, 2]", "JSON object"),
                            (b'{"cmd": 7}', "string"), (b"\xff\xfe", "not valid JSON"),
                            (b'{"cmd": "ping", "x": "' + b"y" * 70000 + b'"}', "limit")]:
        reply = raw_request(info.control, payload)
        assert reply is not None and reply["ok"] is False, payload[:20]
        assert reply["error"]["code"] == protocol.BAD_REQUEST and needle in reply["error"][
            "message"]
    # Over the wire limit: libzmq drops that peer; the manager carries on.
    assert raw_request(info.control, b"x" * (2 * 1024 * 1024), timeout=1.0) is None
    assert m.request("ping")["pid"] == m.proc.pid


def test_slow_stop_does_not_delay_ping(manager, tmp_path: Path) -> None:
    m = stubborn_manager(manager, tmp_path)
    info = m.info()
    done: list[dict] = []

    def stop() -> None:
        with ControlClient(info.control, timeout=20) as bus:
            done.append(bus.request("stop", service="stubborn"))

    stopper = threading.Thread(target=stop)
    stopper.start()
    wait_for(lambda: m.status("stubborn")["status"] == "stopping", what="stopping")
    with ControlClient(info.control, timeout=5) as bus:
        for _ in range(5):
            began = time.monotonic()
            bus.request("ping")
            assert time.monotonic() - began < 0.5
    stopper.join(20)
    assert done and done[0]["status"] == "stopped"


def test_commands_on_one_service_are_queued_in_order(manager) -> None:
    m = manager("""
        services:
          s: {command: sleep 60}
    """)
    m.wait_status("s", "running")
    info = m.info()
    results: dict[str, dict] = {}

    def run(cmd: str) -> None:
        with ControlClient(info.control, timeout=20) as bus:
            results[cmd] = bus.request(cmd, service="s")

    threads = [threading.Thread(target=run, args=(c,)) for c in ("restart", "stop")]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join(20)
    assert results["restart"]["status"] == "running"
    assert results["stop"]["status"] == "stopped"
    assert m.status("s")["status"] == "stopped"


def test_state_events_carry_v_seq_and_the_status_object(manager) -> None:
    m = manager("""
        services:
          s: {command: sleep 60}
    """)
    m.wait_status("s", "running")
    info = m.info()
    with EventSubscriber(info.events, ("state/s/",)) as sub, \
            ControlClient(info.control) as bus:
        await_subscription(sub, bus)
        bus.request("stop", service="s")
        events = []
        while (got := sub.recv(timeout=1.0)) is not None:
            if got[0].startswith("state/"):
                events.append(got)
    statuses = [msg["status"]["status"] for _, msg in events]
    assert statuses == ["stopping", "stopped"]
    assert all(topic == "state/s/" and msg["v"] == 1 for topic, msg in events)
    seqs = [msg["seq"] for _, msg in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert events[-1][1]["status"]["last_exit_code"] == -15


def test_snapshot_join_sees_every_line_exactly_once(manager, tmp_path: Path) -> None:
    write_script(tmp_path, "count.py", """
        import sys, time
        i = 0
        while True:
            for _ in range(50):
                print(i)
                i += 1
            sys.stdout.flush()
            time.sleep(0.002)
    """)
    m = manager(f"""
        manager: {{log_buffer_lines: 100000}}
        services:
          count: {{command: {PY} count.py, tty: false}}
    """)
    wait_for(lambda: len(m.lines("count")) > 2000, what="a backlog")
    info = m.info()
    seen: list[int] = []
    deadline = time.monotonic() + 2.0
    for kind, item in follow(info, services=["count"]):
        assert kind == "log", (kind, item)
        assert item["seq"] == item["first_seq"] + len(item["lines"]) - 1
        seen.extend(int(line) for line in item["lines"])
        if time.monotonic() > deadline and len(seen) > 5000:
            break
    assert seen[0] == 0
    assert seen == list(range(len(seen))), "a line is missing or repeated"


def test_manager_json_advertises_the_tcp_feed_for_scripts(manager) -> None:
    """manager.json did not say where `bus_tcp` was: a script had to parse the config.
    It now holds `events_tcp` (and the token `open_events` uses with it)."""
    port = free_port()
    m = manager(f"""
        manager: {{bus_tcp: "127.0.0.1:{port}"}}
        services:
          s: {{command: "sleep 60"}}
    """)
    m.wait_status("s", "running")
    info = m.info()
    assert info.events_tcp == f"tcp://127.0.0.1:{port}"
    with open_events(info, ("manager/",), tcp=True) as sub, \
            ControlClient(info.control) as bus:
        await_subscription(sub, bus)
        bus.request("stop", service="s")
        got = sub.recv(timeout=5)
    assert got is not None and got[0] == "manager/" and got[1]["v"] == 1


def test_tcp_feed_gives_nothing_without_the_token(manager) -> None:
    """bus_tcp had no authentication: any local user received every log line and
    state event. A subscriber must now give the manager's token (from manager.json)."""
    port = free_port()
    m = manager(f"""
        manager: {{bus_tcp: "127.0.0.1:{port}"}}
        services:
          s: {{command: "sleep 60"}}
    """)
    m.wait_status("s", "running")
    info = m.info()
    manager_json = json.loads((info.runtime_dir / "manager.json").read_text())
    assert manager_json["events_tcp"] == f"tcp://127.0.0.1:{port}"
    token = manager_json["events_tcp_token"]
    assert token and len(token) >= 32
    endpoint = f"tcp://127.0.0.1:{port}"
    strangers = [EventSubscriber(endpoint), EventSubscriber(endpoint, token="wrong" + token)]
    good = EventSubscriber(endpoint, token=token)
    try:
        with ControlClient(info.control) as bus:
            await_subscription(good, bus)   # the right token joins
            for _ in range(3):
                bus.request("restart", service="s")
        got = good.recv(timeout=5)
        assert got is not None and got[0].startswith(("state/", "manager/")), got
        for sub in strangers:
            assert sub.recv(timeout=1.0) is None, "a subscriber without the token got events"
    finally:
        for sub in [*strangers, good]:
            sub.close()


def test_shutdown_command_stops_everything(manager) -> None:
    m = manager(BASIC)
    m.wait_status("b", "running")
    assert m.request("shutdown") == {"stopping": True}
    assert m.wait_exit(20) == 0
    assert "shutdown requested over the bus" in m.output()


def test_a_stalled_subscriber_loses_messages_not_the_supervisor(manager, tmp_path: Path) -> None:
    write_script(tmp_path, "burst.py", """
        import sys, time
        for _ in range(8000):  # one message each: more than the queues between us hold
            sys.stdout.write("x" * 200 + "\\n")
            sys.stdout.flush()
            time.sleep(0.0001)
        while True:
            print("tick", flush=True)
            time.sleep(0.05)
    """)
    m = manager(f"""
        services:
          burst: {{command: {PY} burst.py, tty: false}}
          quiet: {{command: "sleep 60"}}
    """, start=False)
    m.path.write_text(m.path.read_text().replace("burst: {", "burst: {depends_on: [quiet], "))
    m.start()
    m.wait_status("quiet", "running")
    info = m.info()
    feed = follow(info, rcvhwm=1, idle=5)
    kinds = [next(feed)[0]]        # joined; now stall while the burst runs
    wait_for(lambda: "tick" in m.lines("burst"), what="the burst in the buffer")
    time.sleep(0.5)
    deadline = time.monotonic() + 20
    for kind, _item in feed:
        kinds.append(kind)
        if kind == "gap" or time.monotonic() > deadline:
            break
    feed.close()
    assert "gap" in kinds
    assert m.request("status")["bus"]["dropped"] > 0
    assert m.request("ping")["pid"] == m.proc.pid


def test_a_subscriber_that_fell_behind_still_gets_the_end_of_a_burst(
        manager, tmp_path: Path) -> None:
    """The PUB socket drops a lagging subscriber's newest messages: follow() fetches what
    the manager's buffer still holds, so it ends on the burst's last line although
    nothing comes after it, and counts every other line in a gap."""
    write_script(tmp_path, "burst.py", """
        import os, sys, time
        while not os.path.exists("go"):
            time.sleep(0.02)
        for i in range(8000):  # one message each: more than the queues between us hold
            sys.stdout.write(f"line {i} " + "x" * 200 + "\\n")
            sys.stdout.flush()
            time.sleep(0.0001)
        print("burst done", flush=True)
        time.sleep(600)  # quiet: no later line reveals a lost end
    """)
    m = manager(f"services:\n  burst: {{command: {PY} burst.py}}\n")
    m.wait_status("burst", "running")
    feed = follow(m.info(), services=["burst"], rcvhwm=1, idle=10)
    # The feed joins at the first next(), which waits for a line: start the burst after.
    go = threading.Timer(0.5, (tmp_path / "go").write_text, ("",))
    go.start()
    kind, first = next(feed)
    got, missed, seqs = len(first["lines"]), 0, [(first["first_seq"], first["seq"])]
    wait_for(lambda: "burst done" in m.lines("burst"), 20, "the burst's end in the buffer")
    last = first["lines"]
    for kind, item in feed:
        if kind == "gap":
            missed += item["missed"]
        elif kind == "log":
            got += len(item["lines"])
            seqs.append((item["first_seq"], item["seq"]))
            last = item["lines"]
            if last[-1] == "burst done":
                break
    feed.close()
    assert last[-1] == "burst done", (got, missed)
    assert missed > 0, "nothing was dropped: the test did not overrun the queues"
    assert all(a[1] < b[0] for a, b in itertools.pairwise(seqs)), "a line came twice"
    assert got + missed == 8001, (got, missed)
