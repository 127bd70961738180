"""The decisions under attach: leases and the keyboard, request checks, the raw
message, the CLI's key and terminal handling. No processes, sockets or sleeps."""

from __future__ import annotations

import base64
import signal
import termios

import pytest

from promenade_cli.attach_cmd import DETACH, keyboard_notice, raw_attrs, split_detach
from promenade_core.bus import protocol
from promenade_core.supervise import keyboard
from promenade_core.supervise.logs import LineSplitter
from promenade_core.supervise.rawstream import LEASE_SECONDS, MAX_LEASES, Leases, Refused


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _leases() -> tuple[Leases, Clock]:
    clock = Clock()
    ids = iter(f"lease{i}" for i in range(1000))
    return Leases(clock, lambda: next(ids)), clock


def test_nobody_attached_means_nothing_is_watched() -> None:
    leases, _ = _leases()
    assert not leases.watched("api")


def test_first_attach_has_the_keyboard_and_a_second_is_read_only() -> None:
    leases, _ = _leases()
    first = leases.attach("api")
    second = leases.attach("api")
    assert (first["writer"], second["writer"]) == (True, False)
    assert second["attached"] == 2 and leases.watched("api") and not leases.watched("web")
    leases.may_type("api", first["lease"])
    with pytest.raises(Refused) as refused:
        leases.may_type("api", second["lease"])
    assert refused.value.code == protocol.READ_ONLY


def test_take_over_moves_the_keyboard_and_the_other_sees_it_at_renewal() -> None:
    leases, _ = _leases()
    first = leases.attach("api")
    second = leases.attach("api", take=True)
    assert second["writer"]
    assert leases.attach("api", first["lease"])["writer"] is False


def test_keyboard_passes_to_the_next_renewal_when_its_holder_leaves() -> None:
    leases, _ = _leases()
    first = leases.attach("api")
    second = leases.attach("api")
    assert leases.detach(first["lease"]) is True
    assert leases.detach(first["lease"]) is False
    assert leases.attach("api", second["lease"])["writer"] is True


def test_a_lease_not_renewed_expires_and_publishing_stops() -> None:
    leases, clock = _leases()
    grant = leases.attach("api")
    clock.now += LEASE_SECONDS - 1
    leases.attach("api", grant["lease"])          # renewed in time
    clock.now += LEASE_SECONDS - 1
    assert leases.watched("api")
    clock.now += 2
    assert not leases.watched("api")
    with pytest.raises(Refused) as gone:
        leases.attach("api", grant["lease"])
    assert gone.value.code == protocol.NOT_ATTACHED


def test_input_without_a_lease_only_while_nobody_has_the_keyboard() -> None:
    leases, _ = _leases()
    leases.may_type("api", None)
    grant = leases.attach("api")
    with pytest.raises(Refused):
        leases.may_type("api", None)
    leases.detach(grant["lease"])
    leases.may_type("api", None)


def test_a_lease_is_for_its_own_service_only() -> None:
    leases, _ = _leases()
    grant = leases.attach("api")
    with pytest.raises(Refused) as wrong:
        leases.may_type("web", grant["lease"])
    assert wrong.value.code == protocol.NOT_ATTACHED


def test_leases_per_service_are_capped() -> None:
    leases, _ = _leases()
    for _ in range(MAX_LEASES):
        leases.attach("api")
    with pytest.raises(Refused):
        leases.attach("api")
    leases.attach("web")


def test_forget_ends_a_removed_services_leases() -> None:
    leases, _ = _leases()
    grant = leases.attach("api")
    leases.forget("api")
    assert not leases.watched("api")
    assert not leases.detach(grant["lease"])


@pytest.mark.parametrize("value", [None, 3, "not base64!", "A" * 200_000])
def test_bad_input_data_is_refused_with_a_reason(value: object) -> None:
    with pytest.raises(ValueError, match='"data"'):
        keyboard.decode_input(value)


def test_input_data_is_base64_bytes() -> None:
    assert keyboard.decode_input(base64.b64encode(b"c\r\x03").decode()) == b"c\r\x03"


@pytest.mark.parametrize("rows, cols", [(0, 80), (24, 0), (24, "80"), (True, 80),
                                        (24, keyboard.MAX_SIDE + 1), (None, None)])
def test_bad_window_sizes_are_refused(rows: object, cols: object) -> None:
    with pytest.raises(ValueError):
        keyboard.window(rows, cols)


def test_raw_message_carries_bytes_and_no_new_seq() -> None:
    data = b"\x1b[32m(Pdb) \xff"
    message = protocol.raw_message("api", "stdout", data, 41)
    assert message["seq"] == 41 and protocol.raw_bytes(message) == data
    assert protocol.parse_topic(protocol.raw_topic("api")) == ("raw", "api")
    assert protocol.raw_bytes({"data": "%%%"}) == b""
    assert protocol.raw_bytes({}) == b""


def test_ctrl_close_bracket_detaches_and_what_came_before_it_is_sent() -> None:
    assert split_detach(b"abc") == (b"abc", False)
    assert split_detach(b"c\r" + bytes([DETACH]) + b"ignored") == (b"c\r", True)
    assert split_detach(bytes([DETACH])) == (b"", True)


def test_raw_attrs_pass_every_key_and_keep_newline_mapping_on_output() -> None:
    cc = [b"\x00"] * 32
    attrs = [termios.ICRNL | termios.IXON, termios.OPOST | termios.ONLCR, termios.CS7,
             termios.ECHO | termios.ICANON | termios.ISIG, 0, 0, cc]
    raw = raw_attrs(attrs)
    assert not raw[0] & (termios.ICRNL | termios.IXON)
    assert raw[1] == termios.OPOST | termios.ONLCR
    assert raw[2] & termios.CSIZE == termios.CS8
    assert not raw[3] & (termios.ECHO | termios.ICANON | termios.ISIG)
    assert raw[6][termios.VMIN] == 1 and attrs[6] is cc, "the saved attributes are untouched"


def test_keyboard_notices_say_what_changed_once() -> None:
    assert keyboard_notice("api", True, None) is None
    assert "read-only" in (keyboard_notice("api", False, None) or "")
    assert "took" in (keyboard_notice("api", False, True) or "")
    assert "keyboard now" in (keyboard_notice("api", True, False) or "")
    assert keyboard_notice("api", False, False) is None


def test_splitter_says_when_a_partial_line_waits() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"ready\n(Pdb) ") == ["ready"]
    assert splitter.pending
    assert splitter.flush() == ["(Pdb) "]
    assert not splitter.pending


def _attrs(lflag: int) -> list[object]:
    cc: list[object] = [b"\x00"] * 32
    cc[termios.VINTR] = b"\x03"
    cc[termios.VQUIT] = b"\x1c"
    return [0, 0, 0, lflag, 0, 0, cc]


def test_interrupt_and_quit_keys_are_followed_by_their_signals_with_isig() -> None:
    steps = keyboard.input_steps(b"ab\x03cd\x1c", _attrs(termios.ISIG))
    assert steps == [b"ab\x03", signal.SIGINT, b"cd\x1c", signal.SIGQUIT]


def test_without_isig_or_on_a_pipe_ctrl_c_is_a_plain_byte() -> None:
    assert keyboard.input_steps(b"a\x03b", _attrs(0)) == [b"a\x03b"]
    assert keyboard.input_steps(b"a\x03b", None) == [b"a\x03b"]


def test_a_disabled_interrupt_character_sends_nothing() -> None:
    attrs = _attrs(termios.ISIG)
    attrs[6][termios.VINTR] = b"\x00"   # type: ignore[index]
    assert keyboard.input_steps(b"\x03\x00", attrs) == [b"\x03\x00"]


def test_a_read_only_lease_never_holds_the_keyboard() -> None:
    leases, _ = _leases()
    viewer = leases.attach("api", read_only=True)
    assert viewer["writer"] is False and leases.watched("api")
    typist = leases.attach("api")
    assert typist["writer"] is True
    assert leases.attach("api", viewer["lease"], take=True)["writer"] is False
    leases.detach(typist["lease"])
    assert leases.attach("api", viewer["lease"])["writer"] is False
    leases.may_type("api", None)   # nobody has the keyboard
