"""How a log line looks on a terminal: `2024-01-15T10:23:45.123Z [api] [stderr] text`.

Pure text in, text out, standard library only: `promenade start` (through the terminal
writer, supervise/terminal.py) and `promenade logs` print through the same Formatter, and
the CLI imports this without loading gevent. Service output is untrusted, so every line
passes `terminal_safe` before it reaches the user's terminal.
"""

from __future__ import annotations

import os
import re
from typing import TextIO

#: The sequences ECMA-48 starts with ESC (see `terminal_safe`). Each pattern is a literal
#: introducer, then runs of disjoint character classes and at most one optional
#: character: a failed attempt never backtracks, so matching is linear, and the literal
#: first character lets the regex engine skip plain text quickly.
_AFTER_ESC = (
    r"\[[0-?]*[ -/]*[@-~]?"                      # CSI (SGR included), or one cut short
    r"|[]PX^_][^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"  # OSC DCS SOS PM APC strings
    r"|[ -/]*[0-~]?"                             # other escapes, a lone ESC
)
ESC_ALL = re.compile(r"\x1b(?:" + _AFTER_ESC + ")")
#: The same but SGR (the lookahead scans one parameter run: still linear).
ESC_BUT_SGR = re.compile(r"\x1b(?!\[[0-9;:]*m)(?:" + _AFTER_ESC + ")")
#: Their 8-bit forms: CSI U+009B, and DCS SOS OSC PM APC strings (U+0090 U+0098 U+009D-F).
C1_SEQUENCES = re.compile(
    r"\x9b[0-?]*[ -/]*[@-~]?|[\x90\x98\x9d-\x9f][^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
)
#: Single control characters left after the sequences are gone: C0 but TAB, LF and ESC
#: (every ESC left starts a kept SGR), DEL, C1.
_CONTROL_CHARS = dict.fromkeys([*range(0x00, 0x09), *range(0x0B, 0x1B), *range(0x1C, 0x20),
                                *range(0x7F, 0xA0)])
PALETTE = (36, 33, 32, 35, 34, 96, 93, 92, 95, 94)
RESET = "\x1b[0m"
LEVEL_COLOURS = {"info": "", "warning": "\x1b[33m", "error": "\x1b[1;31m"}


def wants_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def terminal_safe(text: str, colour: bool) -> str:
    """`text` (a service's output) made safe to write to the user's terminal.

    Service output is untrusted: a terminal obeys what it receives, so a line could set
    the clipboard (OSC 52), the window title (OSC 0/2), move the cursor and erase lines
    already printed (CSI A, CSI K), print links that lie about their target (OSC 8),
    ring the bell or reset the terminal (ESC c). What is KEPT:

    - printable characters (anything not listed below, including all of Unicode above
      U+009F), TAB, and LF (the line separator of a block of lines);
    - with `colour`, SGR sequences in their 7-bit form `ESC [ params m` whose
      parameters are only digits, `;` and `:` (colours and bold, underline ...).

    Everything else is REMOVED, whole, as ECMA-48 delimits it:

    - CSI: `ESC [` or U+009B, parameter bytes 0x30-0x3F, intermediate bytes 0x20-0x2F,
      one final byte 0x40-0x7E (a sequence cut short by another character loses its
      introducer and the bytes read so far);
    - control strings: OSC (`ESC ]`, U+009D), DCS (`ESC P`, U+0090), SOS (`ESC X`,
      U+0098), PM (`ESC ^`, U+009E), APC (`ESC _`, U+009F), up to and including their
      terminator: ST (`ESC \\`, U+009C) or BEL; an ESC ends the string as it does in a
      terminal's parser, and an unterminated string runs to the end of its line;
    - other escape sequences: ESC, intermediates 0x20-0x2F, one final byte 0x30-0x7E
      (`ESC 7`, `ESC ( B`, `ESC c`), and a lone ESC;
    - every other C0 control (U+0000-U+001F but TAB and LF: BEL, BS, CR, ...), DEL and
      every C1 control (U+0080-U+009F).

    Three linear passes: ESC sequences, their 8-bit forms (only in non-ASCII text), then
    single characters; a hostile line of any length costs time in proportion to its
    length, and plain text costs about one copy.
    """
    if "\x1b" in text:
        text = (ESC_BUT_SGR if colour else ESC_ALL).sub("", text)
    if not text.isascii():  # O(1) in CPython: C1 characters are not ASCII
        text = C1_SEQUENCES.sub("", text)
    return text.translate(_CONTROL_CHARS)


def strip_ansi(text: str) -> str:
    """`text` without any control sequence, SGR included (for output without colour)."""
    return terminal_safe(text, colour=False)


class Formatter:
    """`2024-01-15T10:23:45.123Z [api] [stderr] text`, the service name in its colour."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour
        self._names: dict[str, str] = {}

    def _label(self, service: str) -> str:
        label = self._names.get(service)
        if label is None:
            label = f"[{service}]"
            if self.colour:
                colour = PALETTE[len(self._names) % len(PALETTE)]
                label = f"\x1b[{colour}m{label}{RESET}"
            self._names[service] = label
        return label

    def block(self, service: str, stream: str, timestamp: str, lines: list[str]) -> str:
        """Many lines of one stream sharing a timestamp, as one string (the hot path)."""
        prefix = f"{timestamp} {self._label(service)} "
        if stream == "stderr":
            prefix += "[stderr] "
        # One regex call per read, on the lines alone (no SGR of our prefixes to skip);
        # it cleans each line as it would alone, an unterminated string ends at "\n".
        body = terminal_safe("\n".join(lines), self.colour)
        if self.colour and "\x1b" in body:
            body = body.replace("\n", RESET + "\n") + RESET
        body = body.replace("\n", "\n" + prefix)
        return f"{prefix}{body}\n"

    def message(self, timestamp: str, text: str, level: str = "info") -> str:
        """A manager event (`api started (pid 123)`) as one line, coloured by level."""
        label = "[promenade]"
        text = terminal_safe(text, colour=False)  # may quote a service's command or name
        if self.colour:
            label = f"\x1b[1m{label}{RESET}"
            if LEVEL_COLOURS.get(level):
                text = f"{LEVEL_COLOURS[level]}{text}{RESET}"
        return f"{timestamp} {label} {text}\n"
