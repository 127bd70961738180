"""The bus commands of attach: `attach`, `detach`, `input` and `resize`.

Any local process of the user may send them, as any other command (the bus is the
user's own, in a 0700 folder): every argument is checked here, and the keyboard rule
(rawstream.Leases) decides whose input is taken. Shapes: protocol.COMMANDS.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from promenade_core.bus import protocol
from promenade_core.bus.server import CommandError, Handler
from promenade_core.supervise import keyboard
from promenade_core.supervise.rawstream import Grant, Refused
from promenade_core.supervise.service import Service
from promenade_core.supervise.supervisor import Supervisor


def _optional_text(request: dict[str, Any], key: str) -> str | None:
    value = request.get(key)
    if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 64):
        raise CommandError(protocol.BAD_REQUEST, f'"{key}" must be a short string')
    return value


class AttachCommands:
    """The four handlers, over the supervisor's services and leases."""

    def __init__(self, supervisor: Supervisor,
                 find: Callable[[dict[str, Any]], Service]) -> None:
        self.supervisor = supervisor
        self._find = find

    def table(self) -> dict[str, Handler]:
        return {"attach": self.cmd_attach, "detach": self.cmd_detach,
                "input": self.cmd_input, "resize": self.cmd_resize}

    def cmd_attach(self, request: dict[str, Any]) -> Grant:
        service = self._find(request)
        take, read_only = (request.get(key, False) for key in ("take", "read_only"))
        if not isinstance(take, bool) or not isinstance(read_only, bool):
            raise CommandError(protocol.BAD_REQUEST,
                               '"take" and "read_only" must be true or false')
        lease = _optional_text(request, "lease")
        try:
            return self.supervisor.leases.attach(service.name, lease, take, read_only)
        except Refused as exc:
            raise CommandError(exc.code, exc.message) from None

    def cmd_detach(self, request: dict[str, Any]) -> dict[str, bool]:
        lease = _optional_text(request, "lease")
        if lease is None:
            raise CommandError(protocol.BAD_REQUEST, 'this command needs "lease"')
        return {"detached": self.supervisor.leases.detach(lease)}

    def _keyboard(self, request: dict[str, Any]) -> Service:
        service = self._find(request)
        try:
            self.supervisor.leases.may_type(service.name, _optional_text(request, "lease"))
        except Refused as exc:
            raise CommandError(exc.code, exc.message) from None
        return service

    def cmd_input(self, request: dict[str, Any]) -> dict[str, int]:
        try:
            data = keyboard.decode_input(request.get("data"))
        except ValueError as exc:
            raise CommandError(protocol.BAD_REQUEST, str(exc)) from None
        service = self._keyboard(request)

        def fd() -> int | None:
            stdin = service.stdin()
            return stdin[0] if stdin else None

        first = fd()
        if first is None:
            raise CommandError(protocol.NO_TERMINAL,
                               f"{service.name!r} is not running ({service.status.value})")
        written = 0
        try:
            for step in keyboard.input_steps(data, keyboard.terminal_attrs(first)):
                if isinstance(step, bytes):
                    written += keyboard.write_all(fd, step)
                else:
                    self._signal(service, step)
        except keyboard.Unwritable as exc:
            raise CommandError(protocol.NO_TERMINAL,
                               f"{service.name!r}: {exc} ({written + exc.written} of "
                               f"{len(data)} bytes written)") from None
        return {"written": written}

    def _signal(self, service: Service, sig: int) -> None:
        """What the terminal would send its foreground group: the service's group."""
        if service.pid is not None:
            self.supervisor.ops.signal_group(service.pid, sig)

    def cmd_resize(self, request: dict[str, Any]) -> dict[str, int]:
        try:
            rows, cols = keyboard.window(request.get("rows"), request.get("cols"))
        except ValueError as exc:
            raise CommandError(protocol.BAD_REQUEST, str(exc)) from None
        service = self._keyboard(request)
        stdin = service.stdin()
        if stdin is None or not stdin[1]:
            why = ("is not running" if stdin is None else
                   "has no terminal (tty: false): keys go to its stdin pipe as bytes, "
                   "Ctrl-C included, and no window size is passed on")
            raise CommandError(protocol.NO_TERMINAL, f"{service.name!r} {why}")
        try:
            keyboard.set_window(stdin[0], rows, cols)
        except OSError as exc:
            raise CommandError(protocol.NO_TERMINAL,
                               f"{service.name!r}: could not resize: {exc.strerror}") from None
        self._signal(service, signal.SIGWINCH)
        return {"rows": rows, "cols": cols}
