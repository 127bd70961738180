"""What service output may reach the developer's terminal (`logformat.terminal_safe`)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promenade_core.logformat import Formatter, terminal_safe

ESC, BEL, ST = "\x1b", "\x07", "\x1b\\"
SGR = re.compile(r"\x1b\[[0-9;:]*m")

#: (what it is, hostile text, what remains) — the same with colour on and off.
HOSTILE = [
    ("OSC 52 clipboard write, BEL", f"a{ESC}]52;c;ZWNobyBoaQ=={BEL}b", "ab"),
    ("OSC 52 clipboard write, ST", f"a{ESC}]52;c;ZWNobyBoaQ=={ST}b", "ab"),
    ("window title", f"{ESC}]0;pwned{BEL}text", "text"),
    ("OSC 8 hyperlink", f"{ESC}]8;;http://evil.test{ST}click{ESC}]8;;{ST}", "click"),
    ("cursor up + erase line", f"{ESC}[1A{ESC}[2Khidden", "hidden"),
    ("cursor position", f"{ESC}[10;20Hx", "x"),
    ("private mode (hide cursor)", f"{ESC}[?25lx", "x"),
    ("SGR-looking with a private marker", f"{ESC}[?1mx", "x"),
    ("SGR-looking with an intermediate", f"{ESC}[1 mx", "x"),
    ("8-bit CSI", "a\x9b2Jb", "ab"),
    ("8-bit CSI cursor up", "\x9b1A\x9b2Kx", "x"),
    ("8-bit OSC to 8-bit ST", "a\x9d52;c;Zm9v\x9cb", "ab"),
    ("8-bit OSC to BEL", "a\x9d0;title\x07b", "ab"),
    ("DCS string", f"a{ESC}P+q544e{ST}b", "ab"),
    ("8-bit DCS", "a\x90qstuff\x9cb", "ab"),
    ("APC string", f"a{ESC}_Gf=100;AAAA{ST}b", "ab"),
    ("PM and SOS strings", f"a{ESC}^pm{ST}{ESC}Xsos{ST}b", "ab"),
    ("full reset", f"a{ESC}cb", "ab"),
    ("save cursor, charset", f"{ESC}7{ESC}(Bx{ESC}8", "x"),
    ("BEL", "ding\x07", "ding"),
    ("backspace overwrite", "safe\x08\x08\x08\x08evil", "safeevil"),
    ("carriage return overwrite", "safe\revil", "safeevil"),
    ("DEL and NUL", "a\x7fb\x00c", "abc"),
    ("every other C1 control", "".join(chr(c) for c in range(0x80, 0xA0)
                                       if c not in (0x90, 0x98, 0x9B, 0x9D, 0x9E, 0x9F)) + "x",
     "x"),
    ("lone ESC at the end", f"x{ESC}", "x"),
    ("CSI cut short", f"x{ESC}[12", "x"),
    ("unterminated OSC runs to the end", f"x{ESC}]0;title without end", "x"),
    ("OSC ended by another escape", f"{ESC}]0;t{ESC}[2Jx", "x"),
    ("vertical tab and form feed", "a\x0bb\x0cc", "abc"),
]


@pytest.mark.parametrize("colour", [True, False])
@pytest.mark.parametrize(("what", "text", "expected"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_terminal_safe_drops_every_control_but_sgr(what: str, text: str, expected: str,
                                                   colour: bool) -> None:
    """Service output could set the clipboard, the title, hide earlier lines (cursor-up
    + erase), print lying links, ring the bell: only SGR colours may reach a terminal."""
    assert terminal_safe(text, colour) == expected, what


@pytest.mark.parametrize("sgr", [f"{ESC}[31m", f"{ESC}[1;38;5;208m", f"{ESC}[38:2::255:0:0m",
                                 f"{ESC}[m", f"{ESC}[0m"])
def test_terminal_safe_keeps_sgr_only_with_colour(sgr: str) -> None:
    assert terminal_safe(f"{sgr}red{ESC}[0m", colour=True) == f"{sgr}red{ESC}[0m"
    assert terminal_safe(f"{sgr}red{ESC}[0m", colour=False) == "red"


def test_terminal_safe_keeps_text_tabs_newlines_and_unicode() -> None:
    text = "naïve\tcafé — 日本語 ✓ \u00a0nbsp\nnext line"
    assert terminal_safe(text, colour=True) == text
    assert terminal_safe(text, colour=False) == text


def test_unterminated_string_does_not_swallow_the_next_line() -> None:
    """A block is sanitised joined: an OSC left open on one line must end at the newline,
    or it would hide every following line of the block."""
    assert terminal_safe(f"a{ESC}]0;open\nb\x9dopen\nc", colour=False) == "a\nb\nc"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("hostile", [
    f"{ESC}[" + "1;" * 200_000,                 # CSI without a final byte
    f"{ESC}[" * 200_000,                        # CSIs each cut short by the next
    f"{ESC}]" + "x" * 400_000,                  # unterminated OSC
    f"{ESC}]" * 200_000,                        # OSCs each ended by the next
    "\x9d" * 400_000,                           # 8-bit OSCs
    "\x9b" + "0" * 400_000 + "\x9b",            # 8-bit CSI, long parameters
    (f"{ESC}[31" + " " * 50) * 10_000,          # SGR-looking, then intermediates, no final
    (f"{ESC}" + " " * 40) * 10_000,             # escapes with long intermediates
])
def test_terminal_safe_is_linear_on_hostile_input(hostile: str) -> None:
    """A regex that backtracks would take minutes (or forever) on these; linear takes ms.
    Whatever the input, nothing but printable text and SGR may come out."""
    for colour in (True, False):
        out = terminal_safe(hostile, colour)
        assert not any(ord(ch) < 0x20 and ch not in "\t\n" for ch in out.replace(f"{ESC}[31m", ""))


def test_formatter_block_sanitises_lines_and_keeps_colours() -> None:
    """`promenade start` and `promenade logs` both print through Formatter.block."""
    lines = [f"{ESC}]52;c;aGk={BEL}{ESC}[32mok{ESC}[0m", f"{ESC}[1A{ESC}[2Kbad\x9b2J\x07\x08"]
    coloured = Formatter(colour=True).block("api", "stdout", "T", lines)
    assert "]52" not in coloured and "[1A" not in coloured and "\x9b" not in coloured
    assert f"{ESC}[32mok{ESC}[0m" in coloured and "\x07" not in coloured
    plain = Formatter(colour=False).block("api", "stdout", "T", lines)
    assert plain == "T [api] ok\nT [api] bad\n"


_ALPHABET = "\x1b\x9b\x9d\x90\x9c\x07\x08\r\n\t\x00\x7f\x85[]P_^X\\;:0123m?HJK A é"


@settings(max_examples=400, deadline=None)
@given(text=st.text(alphabet=_ALPHABET, max_size=60), colour=st.booleans())
def test_nothing_but_text_and_sgr_ever_comes_out(text: str, colour: bool) -> None:
    """Whatever a service prints, every ESC left starts a complete SGR sequence (and
    only with colour), and no other control character is left but TAB and LF."""
    out = terminal_safe(text, colour)
    rest = SGR.sub("", out) if colour else out
    assert not any((ord(ch) < 0x20 and ch not in "\t\n") or 0x7F <= ord(ch) <= 0x9F
                   for ch in rest), (text, out)
    assert terminal_safe(out, colour) == out  # sanitising twice changes nothing
