"""The env_file dotenv grammar: what each line means, and every malformed line reported."""

from __future__ import annotations

import string
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promenade_core.config.dotenv import parse_dotenv, read_env_file
from promenade_core.userfile import UnreadableFile


def parse(text: str) -> dict[str, str]:
    env, problems = parse_dotenv(text, ".env")
    assert problems == [], [str(p) for p in problems]
    return env


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("A=plain", "plain"),
        ("A=", ""),
        ("A = spaced  ", "spaced"),
        ("export A=exported", "exported"),
        ("export\tA=tab", "tab"),
        ("A=two words", "two words"),
        ("A=value # comment", "value"),
        ("A=value\t# comment", "value"),
        ("A=http://x/#anchor", "http://x/#anchor"),
        ("A=#not-a-comment", "#not-a-comment"),
        ("A= # only a comment", ""),
        ("A=x=y", "x=y"),
        ("A='single # kept \\n literal'", "single # kept \\n literal"),
        ("A='quoted'  # comment", "quoted"),
        ('A="double\\nline"', "double\nline"),
        ('A="tab\\tquote\\"slash\\\\dollar\\$"', 'tab\tquote"slash\\dollar$'),
        ('A="unknown \\q escape"', "unknown \\q escape"),
        ('A="# not a comment"', "# not a comment"),
        ('A="it\'s"', "it's"),
        ("A='say \"hi\"'", 'say "hi"'),
        ('A=""', ""),
        ("A=${HOME}", "${HOME}"),
    ],
)
def test_one_line(line: str, value: str) -> None:
    assert parse(line + "\n") == {"A": value}


def test_comments_blank_lines_crlf_bom_and_later_wins() -> None:
    text = "\ufeff# top comment\r\n\r\n  # indented comment\r\nA=1\r\nB=2\r\nA=3\r\n"
    assert parse(text) == {"A": "3", "B": "2"}


def test_quoted_values_may_span_lines() -> None:
    text = "KEY=\"-----BEGIN-----\nabc\n-----END-----\"\nNEXT=1\nS='a\nb'\n"
    assert parse(text) == {"KEY": "-----BEGIN-----\nabc\n-----END-----", "NEXT": "1", "S": "a\nb"}


def test_a_malformed_line_names_file_line_and_expected_form() -> None:
    _, problems = parse_dotenv("A=1\n\nFOO\n", "backend/.env")
    assert [str(p) for p in problems] == [
        "backend/.env:3: malformed line (expected KEY=VALUE)"
    ]


def test_every_bad_line_is_reported_and_good_ones_still_parse() -> None:
    text = 'GOOD=1\nFOO\n1BAD=x\nQ="never closed\nMORE=2\n'
    env, problems = parse_dotenv(text, ".env")
    assert env == {"GOOD": "1"}
    assert [(p.line, p.message) for p in problems] == [
        (2, "malformed line (expected KEY=VALUE)"),
        (3, "invalid variable name: use letters, digits and '_', not starting with a digit"),
        (4, 'Q: the " quote is never closed'),
    ]


@pytest.mark.parametrize(
    ("line", "word"),
    [
        ("A='x' y", "unexpected text after the closing quote"),
        ('A="x"y', "unexpected text after the closing quote"),
        ("MY-KEY=1", "invalid variable name"),
        ("=1", "invalid variable name"),
        ("export", "malformed line"),
    ],
)
def test_bad_lines(line: str, word: str) -> None:
    _, problems = parse_dotenv(line + "\n", ".env")
    assert len(problems) == 1 and word in problems[0].message, problems
    assert problems[0].line == 1


def test_read_env_file_refuses_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match="is a folder, not a regular file"):
        read_env_file(tmp_path, "folder")
    (tmp_path / "bin.env").write_bytes(b"A=\xff\n")
    with pytest.raises(UnreadableFile, match="not UTF-8"):
        read_env_file(tmp_path / "bin.env", "bin.env")
    (tmp_path / "ok.env").write_text("A=1\n")
    assert read_env_file(tmp_path / "ok.env", "ok.env") == ({"A": "1"}, [])


NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
VALUES = st.text(alphabet=string.printable + "é€", max_size=30)


def _double_quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("\r", "\\r").replace("\t", "\\t") + '"'


@given(st.dictionaries(NAMES, VALUES, max_size=8))
def test_double_quoted_values_round_trip(env: dict[str, str]) -> None:
    text = "".join(f"{k}={_double_quoted(v)}\n" for k, v in env.items())
    assert parse(text) == env


# --------------------------------------------------------------------------- issue 10


SECRET = "sk_live_51HxYzSECRETvalue"


@pytest.mark.parametrize(
    "text",
    [
        f'STRIPE_KEY="{SECRET}\nOTHER=1\n',  # the quote is never closed
        f"STRIPE_KEY='{SECRET}' {SECRET}\n",  # text after the closing quote
        f"{SECRET}\n",  # a line that is not KEY=VALUE (a pasted token)
        f"postgres://app:{SECRET}@db/x?sslmode=require\n",  # not a KEY before the `=`
        f"STRIPE_KEY={SECRET}\x00\n",  # a NUL in the value
    ],
)
def test_env_file_syntax_error_does_not_quote_the_secret_value(text: str) -> None:
    """Problems in an env_file quoted the offending text, which is a secret more often than
    not (`unexpected text 'sk_live_…'`, `malformed line 'sk_live_…'`): they name the
    line and the key only."""
    _, problems = parse_dotenv(text, ".env")
    assert len(problems) == 1 and problems[0].line == 1, problems
    assert "sk_live" not in str(problems[0]) and "SECRET" not in str(problems[0])


def test_nul_byte_in_an_env_file_value_is_a_problem_naming_the_key() -> None:
    """A NUL in an env_file value passed, then crashed the spawn ("embedded null byte")."""
    env, problems = parse_dotenv('A=1\nB="x\\0y"\nC=a\x00b\nD=2\n', ".env")
    assert env == {"A": "1", "B": "x\\0y", "D": "2"}
    assert [str(p) for p in problems] == [
        ".env:3: C: the value contains a NUL character, which no environment can hold"]


def test_unclosed_quote_parses_in_linear_time() -> None:
    """An unclosed quote rescanned the growing value at every following line: 2,000
    lines took about 7 s, 20,000 would take ten minutes. A complexity regression test:
    20,000 lines in a few seconds holds on a loaded machine only if parsing is linear."""
    text = 'OPEN="never closed\n' + "LINE_OF_TEXT=with some words in it\n" * 20_000
    started = time.monotonic()
    env, problems = parse_dotenv(text, ".env")
    elapsed = time.monotonic() - started
    assert env == {} and [p.line for p in problems] == [1]
    assert elapsed < 5, f"{elapsed:.1f} s for 20,000 lines"


def test_backslash_at_line_end_escapes_the_newline_inside_double_quotes() -> None:
    """The resumed scan keeps an escape that straddles two lines."""
    assert parse('A="one\\\n" # c\nB=2\n') == {"A": "one\\\n", "B": "2"}
    assert parse('A="x\\\n\\"y"\n') == {"A": 'x\\\n"y'}


@given(st.text(alphabet=st.sampled_from(list("AB=\"'\\# \t\nx\x00export")), max_size=200))
def test_any_text_parses_or_reports_every_value_a_valid_environment_entry(text: str) -> None:
    """The parser never raises, and whatever it accepts can be put in an environment."""
    env, problems = parse_dotenv(text, ".env")
    assert all(p.line and p.line >= 1 for p in problems)
    assert all("\x00" not in k + v and k.isidentifier() for k, v in env.items())
