"""Keys in the foreground: `?` help, `l` list, `h N` hide/show, `r N` restart, `a` all.

Only when stdin and stdout are a terminal and the manager is its foreground process
group: not under -d, not in tests, not `promenade start &`, and not `promenade start |
less`, where the pager reads the keys from the same terminal. The terminal goes into cbreak mode:
no echo and no line editing, so a key acts at once, but ISIG stays on, so Ctrl-C still
makes SIGINT and Ctrl-Z SIGTSTP as the shell expects; the saved attributes are put back
when the manager stops, also when it crashes (the manager's `finally` and atexit), and
while it is suspended (Ctrl-Z restores them before stopping, `fg` sets cbreak again).

`KeyParser` is pure (bytes in, actions out) and knows nothing of services; `Keys` reads
stdin in a greenlet and acts through the printer and the supervisor's services.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import termios
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import gevent
from gevent.socket import wait_read

from promenade_core.supervise.terminal import Printer

Kind = Literal["help", "list", "toggle", "restart", "show_all", "prompt", "cancel", "unknown"]
ENTER = "\r\n"
BACKSPACE = "\x7f\x08"
VERBS: dict[str, Kind] = {"h": "toggle", "r": "restart"}
SIMPLE: dict[str, Kind] = {"?": "help", "l": "list", "a": "show_all"}


@dataclass(frozen=True)
class KeyAction:
    kind: Kind
    #: the service's number as typed (1-based), for toggle and restart
    number: int = 0
    #: the verb being prompted for, or the unknown key
    text: str = ""


class KeyParser:
    """Typed keys to actions. `h` and `r` take a service number: it completes as soon
    as no further digit could make a valid number (with 9 services or fewer, one
    digit), else on Enter; any other key cancels it."""

    def __init__(self) -> None:
        self._verb: str | None = None
        self._digits = ""

    def feed(self, data: str, count: int) -> list[KeyAction]:
        """`count`: how many services there are now (numbers run 1..count)."""
        actions: list[KeyAction] = []
        for key in data:
            if key == "\x1b":   # an arrow or function key: its sequence fills the read
                if self._verb is not None:
                    actions.append(self._cancel())
                break
            action = self._key(key, count) if self._verb is None else self._number(key, count)
            if action is not None:
                actions.append(action)
        return actions

    def _key(self, key: str, count: int) -> KeyAction | None:
        if key in SIMPLE:
            return KeyAction(SIMPLE[key])
        if key in VERBS:
            self._verb = key
            return KeyAction("prompt", text=VERBS[key])
        if key in ENTER or key == " ":
            return None   # a habit (spacing the output out), not a command
        return KeyAction("unknown", text=key)

    def _number(self, key: str, count: int) -> KeyAction | None:
        if key.isdigit() and key.isascii():
            self._digits += key
            number = int(self._digits)
            if number == 0 or number * 10 > count:   # no further digit could help
                return self._complete()
            return None
        if key in BACKSPACE:
            self._digits = self._digits[:-1]
            return None
        if key in ENTER and self._digits:
            return self._complete()
        return self._cancel()

    def _complete(self) -> KeyAction:
        assert self._verb is not None
        action = KeyAction(VERBS[self._verb], number=int(self._digits))
        self._verb, self._digits = None, ""
        return action

    def _cancel(self) -> KeyAction:
        self._verb, self._digits = None, ""
        return KeyAction("cancel")


HELP = ("keys: h N hide/show service N · r N restart it · a show all · l list · "
        "? help · Ctrl-C stop")


def service_list(names: list[str], shows: Callable[[str], bool]) -> list[str]:
    """One line per service, numbered as `h` and `r` take them."""
    return [f"{number} {name}{'' if shows(name) else ' (hidden)'}"
            for number, name in enumerate(names, 1)]


def cbreak(attrs: list[Any]) -> list[Any]:
    """`attrs` (termios.tcgetattr's list) with echo and canonical mode off, one byte
    per read, and ISIG, output processing and input mapping left as they were."""
    new = list(attrs)
    new[3] = new[3] & ~(termios.ECHO | termios.ICANON)
    chars = list(new[6])
    chars[termios.VMIN] = 1
    chars[termios.VTIME] = 0
    new[6] = chars
    return new


def in_foreground(fd: int) -> bool:
    """`fd` is a terminal whose foreground process group is ours (reading it or setting
    its mode from the background would stop us with SIGTTIN/SIGTTOU)."""
    try:
        return os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False


class Keys:
    """Reads keys from a terminal in a greenlet and acts on them."""

    def __init__(self, fd: int, printer: Printer, names: Callable[[], list[str]],
                 restart: Callable[[str], None]) -> None:
        self.fd = fd
        self.printer = printer
        self.names = names
        self.restart = restart
        self.parser = KeyParser()
        self._saved: list[Any] | None = None
        self._reader: gevent.Greenlet | None = None
        self._signals: list[Any] = []
        #: the attributes to leave again on `fg` after a Ctrl-Z
        self._resume_with: list[Any] | None = None

    @classmethod
    def for_stdin(cls, printer: Printer, names: Callable[[], list[str]],
                  restart: Callable[[str], None]) -> Keys | None:
        """Keys on stdin when it is our terminal and the output goes there too, started;
        None otherwise."""
        if not (in_foreground(0) and os.isatty(1)):
            return None
        keys = cls(0, printer, names, restart)
        keys.start()
        return keys

    def start(self) -> None:
        saved = termios.tcgetattr(self.fd)
        termios.tcsetattr(self.fd, termios.TCSANOW, cbreak(saved))
        self._saved = saved
        atexit.register(self.restore)
        self._signals = [gevent.signal_handler(signal.SIGTSTP, self._suspend),
                         gevent.signal_handler(signal.SIGCONT, self._resumed)]
        self._reader = gevent.spawn(self._read_loop)
        self.printer.message("press ? for keys (hide or restart a service)")

    def restore(self) -> None:
        """Put the terminal back as it was (TCSANOW: a paused terminal must not keep
        us waiting for its output to drain)."""
        if self._saved is not None:
            with contextlib.suppress(OSError, termios.error):
                termios.tcsetattr(self.fd, termios.TCSANOW, self._saved)
            self._saved = None

    def _suspend(self) -> None:
        """Ctrl-Z: the shell gets its terminal back as it was, then we stop."""
        if self._saved is not None:
            self._resume_with = self._saved
            self.restore()
        os.kill(os.getpid(), signal.SIGSTOP)

    def _resumed(self) -> None:
        """`fg`: cbreak again. After `bg` the terminal is not ours to set: wait for `fg`."""
        saved = self._resume_with
        if saved is not None and in_foreground(self.fd):
            with contextlib.suppress(OSError, termios.error):
                termios.tcsetattr(self.fd, termios.TCSANOW, cbreak(saved))
                self._saved, self._resume_with = saved, None

    def close(self) -> None:
        for handle in self._signals:
            handle.cancel()
        if self._reader is not None:
            self._reader.kill(block=False)
        self.restore()
        atexit.unregister(self.restore)

    def _read_loop(self) -> None:
        while True:
            if self._saved is None:   # suspended, or resumed in the background
                gevent.sleep(0.5)     # reading now would stop us (SIGTTIN)
                continue
            try:
                wait_read(self.fd)
                data = os.read(self.fd, 256)
            except BlockingIOError:
                continue
            except OSError:   # the terminal hung up
                return
            if not data:
                return
            names = self.names()
            for action in self.parser.feed(data.decode(errors="replace"), len(names)):
                self.act(action, names)

    def act(self, action: KeyAction, names: list[str]) -> None:
        say = self.printer.message
        visibility = self.printer.visibility
        if action.kind in ("help", "list"):
            if action.kind == "help":
                say(HELP)
            for line in service_list(names, visibility.shows):
                say(line)
        elif action.kind == "show_all":
            visibility.show_all()
            say("showing every service")
        elif action.kind == "prompt":
            say(f"{'restart' if action.text == 'restart' else 'hide/show'} which service? "
                "type its number (? lists them)")
        elif action.kind == "unknown":
            say(f"no key {action.text!r}: press ? for help")
        elif action.kind in ("toggle", "restart"):
            self._on_service(action, names)

    def _on_service(self, action: KeyAction, names: list[str]) -> None:
        if not 1 <= action.number <= len(names):
            self.printer.message(f"no service {action.number} (? lists them)", "warning")
            return
        name = names[action.number - 1]
        if action.kind == "restart":
            self.printer.message(f"restarting {name}")
            self.restart(name)
        elif self.printer.visibility.toggle(name):
            self.printer.message(f"showing {name}")
        else:
            self.printer.message(f"hiding {name}'s lines (h {action.number} shows them again)")
