"""The env_file dotenv grammar: what each line means, and every malformed line reported."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promenade_core.envfile import parse_dotenv, read_env_file


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
        "backend/.env:3: malformed line 'FOO' (expected KEY=VALUE)"
    ]


def test_every_bad_line_is_reported_and_good_ones_still_parse() -> None:
    text = 'GOOD=1\nFOO\n1BAD=x\nQ="never closed\nMORE=2\n'
    env, problems = parse_dotenv(text, ".env")
    assert env == {"GOOD": "1"}
    assert [(p.line, p.message) for p in problems] == [
        (2, "malformed line 'FOO' (expected KEY=VALUE)"),
        (3, "invalid variable name '1BAD': use letters, digits and '_', not starting with a digit"),
        (4, 'Q: the " quote is never closed'),
    ]


@pytest.mark.parametrize(
    ("line", "word"),
    [
        ("A='x' y", "unexpected text 'y'"),
        ('A="x"y', "unexpected text 'y'"),
        ("MY-KEY=1", "invalid variable name 'MY-KEY'"),
        ("=1", "invalid variable name ''"),
        ("export", "malformed line 'export'"),
    ],
)
def test_bad_lines(line: str, word: str) -> None:
    _, problems = parse_dotenv(line + "\n", ".env")
    assert len(problems) == 1 and word in problems[0].message, problems
    assert problems[0].line == 1


def test_read_env_file_reports_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    env, problems = read_env_file(tmp_path, "folder")
    assert env == {} and "cannot read env file" in problems[0].message
    (tmp_path / "bin.env").write_bytes(b"A=\xff\n")
    _, problems = read_env_file(tmp_path / "bin.env", "bin.env")
    assert "not UTF-8" in problems[0].message
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
