"""Keys in the foreground: the pure parser, and the terminal mode they need."""

from __future__ import annotations

import termios

from promenade_core.supervise.keys import KeyAction, KeyParser, cbreak, service_list


def kinds(actions: list[KeyAction]) -> list[tuple[str, int]]:
    return [(a.kind, a.number) for a in actions]


def test_simple_keys() -> None:
    p = KeyParser()
    assert kinds(p.feed("?la", 3)) == [("help", 0), ("list", 0), ("show_all", 0)]
    assert p.feed("\r\n ", 3) == []
    assert p.feed("z", 3) == [KeyAction("unknown", text="z")]


def test_one_digit_completes_with_nine_services_or_fewer() -> None:
    p = KeyParser()
    assert kinds(p.feed("h", 9)) == [("prompt", 0)]
    assert kinds(p.feed("3", 9)) == [("toggle", 3)]
    assert kinds(p.feed("r2", 9)) == [("prompt", 0), ("restart", 2)]


def test_two_digits_wait_for_the_second_or_for_enter() -> None:
    p = KeyParser()
    assert kinds(p.feed("h1", 12)) == [("prompt", 0)]     # 1, 10, 11 or 12?
    assert kinds(p.feed("2", 12)) == [("toggle", 12)]
    assert kinds(p.feed("h1\r", 12)) == [("prompt", 0), ("toggle", 1)]
    assert kinds(p.feed("h5", 12)) == [("prompt", 0), ("toggle", 5)]  # no 50-59


def test_backspace_enter_and_other_keys_in_a_number() -> None:
    p = KeyParser()
    assert kinds(p.feed("h1\x7f\r", 12)) == [("prompt", 0), ("cancel", 0)]
    assert kinds(p.feed("r1\x7f3", 12)) == [("prompt", 0), ("restart", 3)]
    assert kinds(p.feed("hx?", 12)) == [("prompt", 0), ("cancel", 0), ("help", 0)]


def test_an_escape_sequence_is_ignored_whole_and_cancels_a_number() -> None:
    p = KeyParser()
    assert p.feed("\x1b[A", 3) == []
    assert kinds(p.feed("h\x1b[B", 3)) == [("prompt", 0), ("cancel", 0)]
    assert kinds(p.feed("l", 3)) == [("list", 0)]


def test_a_number_out_of_range_is_still_reported_for_the_caller_to_refuse() -> None:
    assert kinds(KeyParser().feed("h7", 3)) == [("prompt", 0), ("toggle", 7)]
    assert kinds(KeyParser().feed("h0", 3)) == [("prompt", 0), ("toggle", 0)]


def test_cbreak_keeps_signals_and_output_processing() -> None:
    """Ctrl-C must still make SIGINT: ISIG stays, only echo and line editing go."""
    lflag = termios.ISIG | termios.ICANON | termios.ECHO | termios.IEXTEN
    chars = [b"\x00"] * 32
    attrs = [termios.ICRNL, termios.OPOST, 0, lflag, 0, 0, chars]
    new = cbreak(attrs)
    assert new[3] & termios.ISIG and new[3] & termios.IEXTEN
    assert not new[3] & (termios.ICANON | termios.ECHO)
    assert new[0] == termios.ICRNL and new[1] == termios.OPOST
    assert new[6][termios.VMIN] == 1 and new[6][termios.VTIME] == 0
    assert attrs[3] == lflag and chars[termios.VMIN] == b"\x00"   # a copy


def test_the_list_numbers_services_and_marks_hidden_ones() -> None:
    assert service_list(["api", "worker"], lambda n: n == "api") == [
        "1 api", "2 worker (hidden)"]
