"""Choosing what the terminal shows (issue 14, point 4): `start --only/--hide`, and the
keys typed into a real pty while the manager runs in the foreground."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.support import Manager, wait_for, write_script
from tests.support.terminal import PtyTerminal

pytestmark = pytest.mark.timeout(90)
PY = sys.executable
SGR = re.compile(r"\x1b\[[0-9;]*m")

TALKER = """
    import itertools, sys, time
    for i in itertools.count():
        print(f"{sys.argv[1]} {i}", flush=True)
        time.sleep(0.05)
"""
CONFIG = f"""
    manager: {{hosts_management: disabled}}
    services:
      chatty: {{command: {PY} talker.py chatty, tty: false}}
      quiet: {{command: {PY} talker.py quiet, tty: false}}
"""


def shown(text: str, service: str) -> list[str]:
    """The service's own lines on the terminal (not the manager's messages about it)."""
    return re.findall(rf"\[{service}\] {service} \d+", SGR.sub("", text))


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def test_hide_keeps_a_service_off_the_terminal_but_not_out_of_the_logs(
        manager, tmp_path: Path) -> None:
    write_script(tmp_path, "talker.py", TALKER)
    m = manager(CONFIG, args=("--no-ui", "--hide", "chatty"))
    out = wait_for(lambda: len(shown(o := m.output(), "quiet")) >= 10 and o, 20,
                   "quiet's lines on the terminal")
    assert shown(out, "chatty") == []
    assert "chatty started (pid" in out, "the manager's messages about it still show"
    assert len(m.lines("chatty")) >= 5, "its lines are still buffered (logs, dashboard)"
    assert "press ? for keys" not in out, "keys only when stdin is a terminal"


def test_keys_on_a_real_terminal_and_ctrl_c_restores_it(tmp_path: Path) -> None:
    """`?` lists the services with numbers, `h N` hides and shows one, `r N` restarts
    one; Ctrl-Z gives the shell its terminal mode back while suspended and `fg` takes
    cbreak again; Ctrl-C still stops the manager (ISIG kept) and the terminal gets its echo and
    line editing back."""
    write_script(tmp_path, "talker.py", TALKER)
    m = Manager(tmp_path, CONFIG)
    term = PtyTerminal()
    before = termios.tcgetattr(term.master)
    assert before[3] & termios.ICANON and before[3] & termios.ECHO
    m.proc = subprocess.Popen(term.command("start", "--no-ui", "--only", "quiet",
                                           "-c", str(m.path)),
                              pass_fds=[term.slave], env=m.env)
    try:
        wait_for(lambda: "press ? for keys" in term.text(), 30, "the keys' hint")
        during = termios.tcgetattr(term.master)
        assert not during[3] & (termios.ICANON | termios.ECHO)
        assert during[3] & termios.ISIG

        term.type(b"?")
        wait_for(lambda: "1 chatty (hidden)" in (t := term.text()) and "2 quiet\n" in t,
                 10, "the help with numbered services")
        assert shown(term.text(), "chatty") == []          # --only quiet

        term.type(b"h1")
        wait_for(lambda: len(shown(term.text().partition("showing chatty")[2], "chatty"))
                 >= 3, 10, "chatty's lines once shown")
        print(term.text()[-3000:])

        term.type(b"h1")
        wait_for(lambda: "hiding chatty's lines" in term.text(), 10, "the hide")
        mark = len(term.text())
        wait_for(lambda: len(shown(term.text()[mark:], "quiet")) >= 10, 10, "more of quiet")
        after_hide = term.text().partition("hiding chatty's lines")[2]
        assert shown(after_hide, "chatty") == [], after_hide

        pid = m.status("quiet")["pid"]
        term.type(b"r2")
        wait_for(lambda: (s := m.status("quiet"))["status"] == "running" and s["pid"] != pid,
                 20, "quiet restarted")
        assert "restarting quiet" in term.text()

        term.type(b"\x1a")                                  # Ctrl-Z: suspended...
        wait_for(lambda: process_state(m.proc.pid) == "T", 10, "the manager stopped")
        assert termios.tcgetattr(term.master)[3] == before[3], "the shell's mode, back"
        os.killpg(m.proc.pid, signal.SIGCONT)               # ... and `fg`
        wait_for(lambda: not termios.tcgetattr(term.master)[3] & termios.ICANON, 10,
                 "cbreak again after fg")
        term.type(b"l")
        wait_for(lambda: term.text().count("2 quiet\n") >= 2, 10, "keys work again")

        term.type(b"\x03")                                  # Ctrl-C, as typed
        assert m.wait_exit(30) == 0, term.text()[-2000:]
        text = wait_for(lambda: "all services stopped" in (t := term.text()) and t, 10,
                        "the manager's goodbye")
        assert "received SIGINT: stopping every service" in text
        restored = termios.tcgetattr(term.master)
        assert restored[3] == before[3], "echo and line editing are back"
    finally:
        m.cleanup()
        term.close()


def test_no_keys_when_the_output_is_not_the_terminal(tmp_path: Path) -> None:
    """`promenade start > file` (or `| less`) from a terminal: the keys stay the
    shell's (or the pager's), and the terminal's mode is left alone."""
    write_script(tmp_path, "talker.py", TALKER)
    m = Manager(tmp_path, CONFIG)
    term = PtyTerminal()
    before = termios.tcgetattr(term.master)
    m.proc = subprocess.Popen(term.command("start", "--no-ui", "-c", str(m.path),
                                           stdout=str(m.log)),
                              pass_fds=[term.slave], env=m.env)
    try:
        m.wait_output("quiet 3", 30)
        assert "press ? for keys" not in m.output()
        assert termios.tcgetattr(term.master)[3] == before[3]
        term.type(b"h1")
        m.wait_output("chatty 20", 10)    # still shown: the keys were not read
        assert "hiding" not in m.output()
    finally:
        m.cleanup()
        term.close()
