"""Procfiles into services (promenade_cli/procfile.py): the formats honcho and foreman
accept (`name: command`, `#` comments, blank lines, `$PORT`), and every line that cannot
be converted as written reported with its line number."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from promenade_cli.procfile import (
    ProcfileService,
    base_port_from,
    escape_interpolation,
    parse_procfile,
    sanitise_name,
)
from promenade_core.config.interpolate import interpolate

HEROKU = """\
# Procfile for the shop
web: bundle exec rails s -p $PORT
worker: bundle exec sidekiq -C config/sidekiq.yml

clock:   python clock.py --every 5m
release: ./bin/migrate
"""


def test_the_usual_procfile() -> None:
    result = parse_procfile(HEROKU)
    assert result.services == (
        ProcfileService("web", "bundle exec rails s -p $PORT", 5000, 2),
        ProcfileService("worker", "bundle exec sidekiq -C config/sidekiq.yml", None, 3),
        ProcfileService("clock", "python clock.py --every 5m", None, 5),
        ProcfileService("release", "./bin/migrate", None, 6),
    )
    assert result.notes == ()


def test_ports_follow_foreman_and_honcho_5000_plus_100_per_process() -> None:
    """The port is the process's position, whether or not the earlier ones use PORT,
    so each service gets the port it had under foreman."""
    text = "web: a $PORT\nworker: b\napi: c --port=${PORT}\ndocs: d ${PORT:-8000}\n"
    ports = {s.name: s.port for s in parse_procfile(text).services}
    assert ports == {"web": 5000, "worker": None, "api": 5200, "docs": 5300}


def test_port_base_from_dotenv() -> None:
    assert parse_procfile("web: a $PORT\nb: b $PORT\n", base_port=3000).services[1].port \
        == 3100
    assert base_port_from({"PORT": "3000"}) == 3000
    for bad in ({}, {"PORT": ""}, {"PORT": "x"}, {"PORT": "0"}, {"PORT": "70000"},
                {"PORT": "٣٠٠٠"}):
        assert base_port_from(bad) == 5000


def test_a_port_past_65535_is_reported_not_invented() -> None:
    result = parse_procfile("a: x $PORT\nb: y $PORT\n", base_port=65500)
    assert [s.port for s in result.services] == [65500, None]
    assert result.notes == ("Procfile:2: 'b': uses $PORT but 65500 + 100 * 1 is not a port; "
                            "add `port:` by hand",)


def test_port_detection_is_the_variable_not_a_prefix() -> None:
    services = parse_procfile("a: echo $PORTAL $PORT_X\nb: echo $HOST:$PORT/x\n").services
    assert [s.port for s in services] == [None, 5100]


def test_whitespace_around_the_colon_and_in_the_line() -> None:
    result = parse_procfile("web:rackup\n  api  :  gunicorn app:app -b 0.0.0.0:$PORT  \n"
                            "\tdocs:\tmkdocs serve\n")
    assert [(s.name, s.command) for s in result.services] == [
        ("web", "rackup"), ("api", "gunicorn app:app -b 0.0.0.0:$PORT"),
        ("docs", "mkdocs serve")]
    assert result.notes == ("Procfile:2: 'api': space before the colon accepted (honcho and "
                            "foreman ignore this line)",)


def test_comments_blank_lines_crlf_and_bom() -> None:
    text = "\ufeff# top\r\n\r\n   # indented comment\r\nweb: run # shell comment kept\r\n"
    result = parse_procfile(text)
    assert [(s.name, s.command, s.line) for s in result.services] == [
        ("web", "run # shell comment kept", 4)]
    assert result.notes == ()


def test_what_cannot_be_converted_is_reported_with_its_line() -> None:
    text = ("web: one\n"
            "bundle exec rails s -b 0.0.0.0:3000\n"   # no name
            "worker:\n"                                # no command
            "web: two\n"                               # duplicate
            "...: dots\n"                              # nothing left of the name
            "just words\n")
    result = parse_procfile(text, "app/Procfile")
    assert [(s.name, s.command) for s in result.services] == [("web", "one")]
    assert result.notes == (
        "app/Procfile:2: skipped 'bundle exec rails s -b 0.0.0.0:3000': not `name: command`",
        "app/Procfile:3: skipped 'worker': no command after the colon",
        "app/Procfile:4: skipped 'web': the name is already used on line 1",
        "app/Procfile:5: skipped '...': a name needs letters, digits, '_' or '-'",
        "app/Procfile:6: skipped 'just words': not `name: command`",
    )


def test_names_are_made_valid_and_collisions_caught() -> None:
    result = parse_procfile("web.1: a\nweb-1: b\nmy+worker: c\n")
    assert [s.name for s in result.services] == ["web-1", "my-worker"]
    assert result.notes == (
        "Procfile:1: 'web.1' renamed 'web-1': names use only letters, digits, '_' and '-'",
        "Procfile:2: skipped 'web-1': the name is already used on line 1",
        "Procfile:3: 'my+worker' renamed 'my-worker': names use only letters, digits, '_' "
        "and '-'",
    )


def test_sanitise_name() -> None:
    assert sanitise_name("web") == "web"
    assert sanitise_name("Web_2-x") == "Web_2-x"
    assert sanitise_name("a..b") == "a-b"
    assert sanitise_name(".hidden.") == "hidden"
    assert sanitise_name("é") == ""


def test_a_long_skipped_line_is_shortened() -> None:
    note = parse_procfile("x" * 200).notes[0]
    assert len(note) < 110 and note.endswith("…': not `name: command`")


def test_commands_are_escaped_for_interpolation() -> None:
    command = parse_procfile("web: echo ${PORT:-5000} $$ $HOME ${X}\n").services[0].command
    assert command == "echo $${PORT:-5000} $$$ $HOME $${X}"   # a `$` before `{` or `$` doubled


@given(st.text(alphabet="${}:-?+ab_ \\'\"", max_size=40))
def test_escaping_gives_the_shell_the_procfile_text_back(text: str) -> None:
    """What the shell gets after promenade.yaml's interpolation is the Procfile's text,
    whatever `$`, braces and operators it holds (and nothing is looked up)."""
    def nothing_is_set(name: str) -> str | None:
        raise AssertionError(f"{name} was looked up")

    assert interpolate(escape_interpolation(text), nothing_is_set) == text


def test_empty_and_comment_only_procfiles_give_nothing() -> None:
    assert parse_procfile("").services == ()
    assert parse_procfile("# nothing\n\n").notes == ()
