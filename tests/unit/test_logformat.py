"""How the manager's own events and the colour decision look (logformat, pure)."""

from __future__ import annotations

import io

import pytest

from promenade_core.logformat import Formatter, strip_ansi, wants_colour

T = "2024-01-15T10:23:45.123Z"


def test_manager_message_without_colour() -> None:
    assert Formatter(colour=False).message(T, "api started (pid 12)", "warning") == (
        f"{T} [promenade] api started (pid 12)\n")


@pytest.mark.parametrize(("level", "start"), [("info", ""), ("debug", ""),
                                              ("warning", "\x1b[33m"), ("error", "\x1b[1;31m")])
def test_manager_message_colour_by_level(level: str, start: str) -> None:
    line = Formatter(colour=True).message(T, "text", level)
    body = f"{start}text\x1b[0m" if start else "text"
    assert line == f"{T} \x1b[1m[promenade]\x1b[0m {body}\n"
    assert strip_ansi(line) == f"{T} [promenade] text\n"


def test_manager_message_cleans_what_it_quotes() -> None:
    """An event may quote a service's command or name: no escape of it reaches the
    terminal, not even colour."""
    line = Formatter(colour=True).message(T, "bad command '\x1b]0;title\x07x\x1b[31mred'")
    assert line == f"{T} \x1b[1m[promenade]\x1b[0m bad command 'xred'\n"


def test_each_service_keeps_its_colour() -> None:
    fmt = Formatter(colour=True)
    first = fmt.block("api", "stdout", T, ["a"])
    fmt.block("web", "stdout", T, ["b"])
    assert fmt.block("api", "stdout", T, ["c"]).split(" ")[1] == first.split(" ")[1]
    assert fmt.block("web", "stdout", T, ["d"]).split(" ")[1] != first.split(" ")[1]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert wants_colour(Tty()) is True
    assert wants_colour(io.StringIO()) is False
    closed = io.StringIO()
    closed.close()  # isatty() on a closed stream raises ValueError
    assert wants_colour(closed) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert wants_colour(Tty()) is False
