"""`promenade attach` driven through a real pty, and the bus commands under it.

The terminal under test is a pty the test owns (tests.support.terminal): what
`promenade attach` writes is read back from its master, keys are typed into it, and
resizing it sends the attach process a real SIGWINCH.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from promenade_core.bus import protocol
from promenade_core.bus.client import BusError, ControlClient, EventSubscriber, wait_joined
from tests.support import PROMENADE, ROOT, Manager, wait_for, write_script
from tests.support.terminal import Terminal

pytestmark = pytest.mark.timeout(90)

#: A service that stops in pdb, then runs on.
DEBUGGEE = """
    import time
    print("before the breakpoint", flush=True)
    breakpoint()
    print("continued", flush=True)
    while True:
        time.sleep(0.05)
"""

#: A service that reports SIGINT and its window size (at start and on SIGWINCH).
SIGNALS = """
    import os, signal, time
    # os.write, not print: a handler that prints while the other one is printing gets
    # "reentrant call" from the buffered stdout and the service dies
    def size(*a):
        os.write(1, b"size %dx%d\\n" % os.get_terminal_size(0)[::-1])
    signal.signal(signal.SIGWINCH, size)
    signal.signal(signal.SIGINT, lambda *a: os.write(1, b"got SIGINT\\n"))
    size()
    while True:
        time.sleep(0.05)
"""

#: "ready" and a prompt in one write: the prompt's line never ends until it is answered.
PROMPT = """
    import sys, time
    sys.stdout.write("ready\\nPassword: ")
    sys.stdout.flush()
    line = sys.stdin.readline()
    print("got %r" % line.strip(), flush=True)
    time.sleep(60)
"""

#: Writes 20,000 numbered lines in 4 KiB writes cut mid-line, as fast as it can.
FLOOD = """
    import os
    data = b"".join(b"line %d\\n" % i for i in range(20000))
    for start in range(0, len(data), 4096):
        os.write(1, data[start:start + 4096])
    os.write(1, b"done\\n")
    import time; time.sleep(60)
"""


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


def _attach(m: Manager, terminals: list[Terminal], *args: str, rows: int = 24,
            cols: int = 80) -> Terminal:
    terminal = Terminal([*PROMENADE, "attach", *args, "-c", str(m.path)], m.env, rows, cols)
    terminals.append(terminal)
    return terminal


def _debuggee(manager: Callable[..., Manager], tmp_path: Path) -> Manager:
    write_script(tmp_path, "debuggee.py", DEBUGGEE)
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          dbg: {{command: {sys.executable} debuggee.py, tty: true}}
    """)
    wait_for(lambda: "(Pdb) " in m.lines("dbg"), 10, "pdb's prompt in dbg's log")
    return m


def test_attach_types_into_pdb_continues_it_and_detaches_leaving_it_running(
        manager: Callable[..., Manager], tmp_path: Path, terminals: list[Terminal]) -> None:
    m = _debuggee(manager, tmp_path)
    pid = m.status("dbg")["pid"]
    term = _attach(m, terminals, "dbg")
    term.wait_screen(b"Ctrl-] detaches")
    before_attrs = None
    shown = len(term.screen)
    # pdb's prompt comes back on a bare Enter: byte for byte, no newline after it
    term.type(b"\r")
    term.wait_screen(b"(Pdb) ", after=shown)
    before_attrs = term.attrs()
    assert not before_attrs[3] & termios.ICANON, "attach put its terminal in raw mode"
    term.type(b"c\r")
    term.wait_screen(b"continued")
    m.wait_status("dbg", "running")
    term.type(b"\x1d")
    assert term.wait_exit() == 0
    assert b"detached" in term.screen
    restored = term.attrs()
    assert restored[3] & termios.ICANON and restored[3] & termios.ECHO, \
        "the terminal was restored when attach ended"
    status = m.status("dbg")
    assert status["status"] == "running" and status["pid"] == pid
    assert "continued" in m.lines("dbg"), "everyone else still sees log lines"


def _signals(manager: Callable[..., Manager], tmp_path: Path) -> Manager:
    write_script(tmp_path, "signals.py", SIGNALS)
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          sig: {{command: {sys.executable} signals.py, tty: true}}
    """)
    m.wait_lines("sig", ["size 50x160"])   # osproc's default window
    return m


def test_ctrl_c_reaches_the_service_as_sigint_and_it_keeps_running(
        manager: Callable[..., Manager], tmp_path: Path, terminals: list[Terminal]) -> None:
    """Ctrl-C typed in attach is the service's own SIGINT (via its terminal); the `sh`
    running its command survives it, so a program that handles it runs on."""
    m = _signals(manager, tmp_path)
    pid = m.status("sig")["pid"]
    term = _attach(m, terminals, "sig")
    term.wait_screen(b"Ctrl-] detaches")
    term.type(b"\x03")
    term.wait_screen(b"got SIGINT")
    term.type(b"\x1d")
    assert term.wait_exit() == 0
    status = m.status("sig")
    assert status["status"] == "running" and status["pid"] == pid


def test_window_size_changes_reach_the_service(
        manager: Callable[..., Manager], tmp_path: Path, terminals: list[Terminal]) -> None:
    m = _signals(manager, tmp_path)
    term = _attach(m, terminals, "sig", rows=33, cols=101)
    term.wait_screen(b"size 33x101")   # attaching passes the size on at once
    term.resize(40, 120)
    term.wait_screen(b"size 40x120")
    term.type(b"\x1d")
    assert term.wait_exit() == 0


def test_second_attach_is_read_only_until_it_takes_over(
        manager: Callable[..., Manager], tmp_path: Path, terminals: list[Terminal]) -> None:
    m = _debuggee(manager, tmp_path)
    first = _attach(m, terminals, "dbg")
    first.wait_screen(b"Ctrl-] detaches")
    second = _attach(m, terminals, "dbg")
    second.wait_screen(b"read-only")
    second.type(b"c\r")           # ignored: the first one has the keyboard
    time.sleep(0.5)
    assert "continued" not in m.lines("dbg")
    third = _attach(m, terminals, "--take-over", "dbg")
    third.wait_screen(b"Ctrl-] detaches")
    third.type(b"c\r")
    third.wait_screen(b"continued")
    second.wait_screen(b"continued")  # read-only clients see the output too
    first.wait_screen(b"took dbg's keyboard", timeout=10)
    for term in (first, second, third):
        term.type(b"\x1d")
        assert term.wait_exit() == 0


def test_prompt_without_newline_reaches_the_logs_within_half_a_second(
        manager: Callable[..., Manager], tmp_path: Path) -> None:
    """A prompt waited for the next newline, which never came: it now reaches the log
    viewers after a short idle, and the answer that completes its line is a line of
    its own."""
    write_script(tmp_path, "prompt.py", PROMPT)
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          ask: {{command: {sys.executable} prompt.py, autostart: false, tty: true}}
    """)
    info = m.info()
    assert info is not None
    arrived: dict[str, float] = {}
    with EventSubscriber(info.events, (protocol.log_topic("ask"),)) as sub, \
            ControlClient(info.control) as bus:
        wait_joined(sub._socket, bus.request)
        bus.request("start", service="ask")
        deadline = time.monotonic() + 10
        while "Password: " not in arrived and time.monotonic() < deadline:
            got = sub.recv(timeout=0.1)
            for line in got[1]["lines"] if got else []:
                arrived[line] = time.monotonic()
    assert list(arrived) == ["ready", "Password: "]
    assert arrived["Password: "] - arrived["ready"] < 0.5
    m.request("input", service="ask", data=base64.b64encode(b"hunter2\n").decode())
    wait_for(lambda: "got 'hunter2'" in m.lines("ask"), 10, "the answer")
    # on its pty, the typed answer is echoed: the rest of the prompt's line, shown as
    # a line of its own
    assert m.lines("ask") == ["ready", "Password: ", "hunter2", "got 'hunter2'"]


def test_fast_output_cut_mid_line_is_not_split_into_fragments(
        manager: Callable[..., Manager], tmp_path: Path) -> None:
    write_script(tmp_path, "flood.py", FLOOD)
    m = manager(f"""
        manager: {{hosts_management: disabled, log_buffer_lines: 30000}}
        services:
          flood: {{command: {sys.executable} flood.py}}
    """)
    wait_for(lambda: (m.lines("flood") or [""])[-1] == "done", 20, "the flood to end")
    assert m.lines("flood") == [f"line {i}" for i in range(20000)] + ["done"]


def test_input_without_lease_is_refused_while_someone_has_the_keyboard(
        manager: Callable[..., Manager], tmp_path: Path) -> None:
    write_script(tmp_path, "echo.py", """
        import sys
        for line in sys.stdin:
            print("echo " + line.strip(), flush=True)
    """)
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          echo: {{command: {sys.executable} echo.py, tty: false}}
    """)
    m.wait_status("echo", "running")

    def send(text: str, **args: object) -> object:
        return m.request("input", service="echo",
                         data=base64.b64encode(text.encode()).decode(), **args)

    send("one\n")
    wait_for(lambda: "echo one" in m.lines("echo"), 10, "the first echo")
    grant = m.request("attach", service="echo")
    assert grant["writer"] is True
    with pytest.raises(BusError) as refused:
        send("two\n")
    assert refused.value.code == protocol.READ_ONLY
    send("three\n", lease=grant["lease"])
    wait_for(lambda: "echo three" in m.lines("echo"), 10, "the third echo")
    with pytest.raises(BusError) as no_pty:
        m.request("resize", service="echo", rows=10, cols=10, lease=grant["lease"])
    assert no_pty.value.code == protocol.NO_TERMINAL
    assert m.request("detach", lease=grant["lease"]) == {"detached": True}
    send("four\n")
    wait_for(lambda: "echo four" in m.lines("echo"), 10, "the fourth echo")
    assert "echo two" not in m.lines("echo")


def test_raw_stream_is_published_only_while_attached(
        manager: Callable[..., Manager], tmp_path: Path) -> None:
    write_script(tmp_path, "ticker.py", """
        import time
        while True:
            print("\\x1b[32mtick\\x1b[0m", flush=True)
            time.sleep(0.05)
    """)
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          tick: {{command: {sys.executable} ticker.py, tty: true}}
    """)
    info = m.info()
    assert info is not None
    with EventSubscriber(info.events, (protocol.raw_topic("tick"),)) as sub, \
            ControlClient(info.control) as bus:
        wait_joined(sub._socket, bus.request)
        assert sub.recv(timeout=0.5) is None, "nothing is published while nobody attached"
        grant = bus.request("attach", service="tick")
        raw = b""
        deadline = time.monotonic() + 5
        # `print` may write the text and its newline in two writes: join the reads
        while b"\x1b[32mtick\x1b[0m\n" not in raw and time.monotonic() < deadline:
            got = sub.recv(timeout=0.5)
            if got is not None:
                topic, message = got
                assert topic == "raw/tick/" and message["stream"] == "stdout"
                raw += protocol.raw_bytes(message)
        assert b"\x1b[32mtick\x1b[0m\n" in raw, raw
        bus.request("detach", lease=grant["lease"])
        time.sleep(0.3)
        while sub.recv(timeout=0.05) is not None:
            pass   # what was in flight
        assert sub.recv(timeout=0.5) is None, "publishing stops at the last detach"


def test_example_script_attaches_sends_a_line_and_prints_the_raw_output(
        manager: Callable[..., Manager], tmp_path: Path) -> None:
    write_script(tmp_path, "reader.py", """
        import sys
        sys.stdout.write("name? ")
        sys.stdout.flush()
        print("\\x1b[1mhello, " + sys.stdin.readline().strip() + "\\x1b[0m", flush=True)
        import time; time.sleep(60)
    """)
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          greeter: {{command: {sys.executable} reader.py}}
    """)
    wait_for(lambda: m.lines("greeter") == ["name? "], 10, "the prompt")
    script = ROOT / "scripts" / "examples" / "attach_feed.py"
    done = subprocess.run([sys.executable, str(script), "greeter", "-c", str(m.path),
                           "--send", "Ada", "--seconds", "1.5"],
                          env=m.env, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert b"\x1b[1mhello, Ada\x1b[0m\n" in done.stdout   # raw: the escapes as written
    assert "hello, Ada" in "".join(m.lines("greeter"))
    assert m.request("attach", service="greeter")["writer"], "it detached when done"
    missing = subprocess.run([sys.executable, str(script), "nope", "-c", str(m.path)],
                             env=m.env, capture_output=True, timeout=30)
    assert missing.returncode == 2 and b"unknown service" in missing.stderr


def test_the_terminal_is_restored_on_sigterm_and_attach_ends_with_its_manager(
        manager: Callable[..., Manager], tmp_path: Path, terminals: list[Terminal]) -> None:
    m = _signals(manager, tmp_path)
    term = _attach(m, terminals, "sig")
    term.wait_screen(b"Ctrl-] detaches")
    assert not term.attrs()[3] & termios.ICANON
    term.proc.terminate()
    assert term.wait_exit() == 128 + 15
    assert term.attrs()[3] & termios.ICANON, "restored after SIGTERM"
    unknown = _attach(m, terminals, "nope")
    assert unknown.wait_exit() == 2 and b"unknown service 'nope'" in unknown.screen
    again = _attach(m, terminals, "sig")
    again.wait_screen(b"Ctrl-] detaches")
    assert m.cli("stop").returncode == 0
    assert again.wait_exit(timeout=15) == 1
    assert b"the manager has exited" in again.screen or b"lost the attachment" in again.screen
    assert again.attrs()[3] & termios.ICANON, "restored when the manager went away"
    gone = _attach(m, terminals, "sig")
    assert gone.wait_exit() == 3   # no manager any more
