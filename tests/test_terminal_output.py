"""What a service's output can do to the developer's terminal, end to end."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from promenade_core import runtime
from promenade_core.supervise import osproc
from tests.support import PROMENADE, isolated_env, wait_for, write_script
from tests.support.terminal import PtyTerminal

pytestmark = pytest.mark.timeout(90)
PY = sys.executable

HOSTILE = (
    b"HOSTILE"
    b" \x1b]52;c;cHduZWQ=\x07"                        # OSC 52: write the clipboard
    b" \x1b]0;PWNED-TITLE\x1b\\"                      # window title
    b" \x1b[1A\x1b[2K"                                # cursor up + erase that line
    b" \x1b]8;;http://evil.test/\x1b\\link\x1b]8;;\x1b\\"  # OSC 8 hyperlink
    b" \xc2\x9b2J"                                    # U+009B: 8-bit CSI (erase screen)
    b" \xc2\x9d0;C1-TITLE\x07"                        # U+009D: 8-bit OSC
    b" bell\x07 back\x08\x08space"
    b" \x1b[31mred\x1b[0m END\n"
)
SGR = re.compile(r"\x1b\[[0-9;:]*m")


def controls_left(text: str) -> list[str]:
    """Every control character still in `text` once SGR sequences are taken out."""
    return [hex(ord(ch)) for ch in SGR.sub("", text)
            if (ord(ch) < 0x20 and ch not in "\t\n") or 0x7F <= ord(ch) <= 0x9F]


def test_service_output_cannot_drive_the_terminal(tmp_path: Path) -> None:
    """Regression: `promenade start` and `promenade logs` on a terminal passed OSC 52
    (clipboard write), title changes, cursor-up/erase-line (hiding earlier lines),
    OSC 8 hyperlinks, 8-bit C1 CSI/OSC, BEL and backspace from a service's output
    straight to the developer's terminal (C1, BEL and BS even with NO_COLOR). Only SGR
    colours may pass, and with NO_COLOR not even those."""
    write_script(tmp_path, "hostile.py", f"""
        import sys, time
        sys.stdout.buffer.write({HOSTILE!r})
        sys.stdout.buffer.flush()
        time.sleep(600)
    """)
    config = tmp_path / "promenade.yaml"
    config.write_text("manager: {hosts_management: disabled}\n"
                      f"services:\n  hostile: {{command: {PY} hostile.py, tty: false}}\n")
    env = isolated_env(tmp_path)
    out = PtyTerminal()
    proc = subprocess.Popen([*PROMENADE, "start", "--no-ui", "-c", str(config)],
                            stdin=subprocess.DEVNULL, stdout=out.slave, stderr=out.slave,
                            env=env, start_new_session=True)
    try:
        start_out = wait_for(lambda: "END" in (t := out.text()) and t, 30,
                             "the hostile line in the manager's terminal output")
        line = next(ln for ln in start_out.splitlines() if "HOSTILE" in ln)
        assert controls_left(start_out) == [], line
        assert "PWNED-TITLE" not in line and "C1-TITLE" not in line
        assert "\x1b[31mred\x1b[0m" in line, "SGR colours still reach the terminal"

        for no_colour in (False, True):
            logs_env = {**env, "NO_COLOR": "1"} if no_colour else env
            logs_out = PtyTerminal()
            try:
                subprocess.run([*PROMENADE, "logs", "hostile", "-c", str(config)],
                               stdin=subprocess.DEVNULL, stdout=logs_out.slave,
                               stderr=logs_out.slave, env=logs_env, timeout=60, check=True)
                text = wait_for(lambda o=logs_out: "END" in (t := o.text()) and t, 10,
                                "the hostile line in `promenade logs`")
            finally:
                logs_out.close()
            assert controls_left(text) == [], text
            if no_colour:
                assert "\x1b" not in text and " red END" in text
            else:
                assert "\x1b[31mred\x1b[0m" in text
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        osproc.kill_pids([pid for pid, _, _ in
                          osproc.find_leftovers(runtime.instance_id(config))])
        out.close()
