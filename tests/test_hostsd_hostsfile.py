"""The hosts file model: unmanaged bytes survive exactly, our lines come and go cleanly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promenade_hostsd import hostsfile
from promenade_hostsd.hostsfile import Entry, parse, render, unmanaged_names

SAMPLE = (
    b"# /etc/hosts: static table\n"
    b"127.0.0.1\tlocalhost\n"
    b"::1     localhost ip6-localhost ip6-loopback   # v6\n"
    b"\n"
    b"10.0.0.5 github.com  gh   \n"
    b"127.0.1.1 mybox"
)

API = Entry("api.local", "api")
WEB = Entry("web.promenade-test", "web", "127.0.0.2")


def test_entry_lines_match_documented_format_and_add_v6_for_dot_local() -> None:
    assert API.lines() == [b"127.0.0.1  api.local  # promenade:api",
                           b"::1  api.local  # promenade:api"]
    assert WEB.lines() == [b"127.0.0.2  web.promenade-test  # promenade:web"]


@pytest.mark.parametrize("original", [SAMPLE, SAMPLE + b"\n", b"", b"\n", b"a\r\nb\r\n", b"x"])
def test_add_then_remove_gives_back_the_original_bytes(original: bytes) -> None:
    added = render(original, [API, WEB])
    unmanaged, entries = parse(added)
    assert unmanaged == original
    assert entries == [API, WEB]
    assert render(unmanaged, []) == original


def test_added_lines_end_the_file_and_unmanaged_lines_keep_their_place() -> None:
    text = render(SAMPLE + b"\n", [WEB]).decode()
    assert text == SAMPLE.decode() + "\n127.0.0.2  web.promenade-test  # promenade:web\n"
    text = render(SAMPLE, [WEB]).decode()
    assert text == SAMPLE.decode() + "\n127.0.0.2  web.promenade-test  # promenade:web"


def test_our_lines_in_the_middle_are_found_and_the_rest_kept() -> None:
    data = b"a b\n127.0.0.1  x.test  # promenade:x\nc d\n"
    assert parse(data) == (b"a b\nc d\n", [Entry("x.test", "x")])


@pytest.mark.parametrize("line", [
    b"127.0.0.1 api.local # promenade:api",         # not our spacing: a hand-written line
    b"127.0.0.1  api.local  # promenade:api extra",
    b"10.1.2.3  api.local  # promenade:api",        # not loopback: never ours
    b"127.0.0.1  bad_name  # promenade:api",
    b"127.0.0.1  api.local  # promenade:a.b",
    b"127.00.0.1  api.local  # promenade:api",
    b" 127.0.0.1  api.local  # promenade:api",
])
def test_lines_that_only_resemble_ours_are_unmanaged(line: bytes) -> None:
    assert parse(line + b"\n") == (line + b"\n", [])


def test_unmanaged_names_include_aliases_and_skip_comments() -> None:
    names = unmanaged_names(SAMPLE)
    assert {"localhost", "ip6-localhost", "github.com", "gh", "mybox"} <= names
    assert "v6" not in names and "/etc/hosts:" not in names and "127.0.0.1" not in names


_line = st.text(st.characters(min_codepoint=1, max_codepoint=0x2FF, blacklist_characters="\n"),
                max_size=40)
_unmanaged = st.lists(_line, max_size=8).map(lambda lines: "\n".join(lines).encode())
_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_last = st.sampled_from(["local", "test", "x1", "dev-box"])  # never all digits
_entry = st.builds(
    Entry,
    st.tuples(st.lists(_label, max_size=2), _last).map(lambda t: ".".join([*t[0], t[1]])),
    st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True),
    st.sampled_from(["127.0.0.1", "127.0.0.2", "::1"]),
)


@given(_unmanaged, st.lists(_entry, max_size=5, unique_by=lambda e: (e.hostname, e.service)))
def test_parse_render_keeps_unmanaged_bytes_exactly(unmanaged: bytes, entries: list[Entry]) -> None:
    assert parse(unmanaged) == (unmanaged, [])
    assert render(unmanaged, []) == unmanaged
    written = render(unmanaged, entries)
    assert parse(written) == (unmanaged, entries)
    assert render(*parse(written)) == written


@given(st.binary(max_size=300))
def test_any_bytes_without_our_lines_survive(data: bytes) -> None:
    unmanaged, entries = parse(data)
    if not entries:
        assert unmanaged == data
    assert parse(render(unmanaged, entries))[0] == unmanaged


def test_write_is_atomic_and_keeps_mode_and_owner(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_bytes(b"old\n")
    os.chmod(hosts, 0o604)
    os.chown(hosts, 65534, 65534)
    before = hosts.stat().st_ino
    hostsfile.write(str(hosts), b"new\n")
    st_ = hosts.stat()
    assert hosts.read_bytes() == b"new\n"
    assert st_.st_ino != before, "expected a rename, not an in-place write"
    assert (st_.st_mode & 0o777, st_.st_uid, st_.st_gid) == (0o604, 65534, 65534)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts"]


def test_write_through_a_symlink_keeps_the_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"old\n")
    (tmp_path / "hosts").symlink_to(tmp_path / "real")
    hostsfile.write(str(tmp_path / "hosts"), b"shorter")
    assert (tmp_path / "hosts").is_symlink()
    assert (tmp_path / "real").read_bytes() == b"shorter"


@pytest.mark.skipif(not shutil.which("unshare") or os.geteuid() != 0, reason="needs root unshare")
def test_write_falls_back_in_place_on_a_bind_mount(tmp_path: Path) -> None:
    """A bind-mounted hosts file (containers) refuses rename with EBUSY."""
    source, target = tmp_path / "source", tmp_path / "hosts"
    source.write_bytes(b"a much longer original line\n")
    target.write_bytes(b"")
    code = (f"from promenade_hostsd import hostsfile; "
            f"hostsfile.write({str(target)!r}, b'new\\n'); print(open({str(target)!r}).read())")
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         'mount --bind "$1" "$2" && exec "$3" -c "$4"', "sh", source, target, sys.executable,
         code],
        capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "new\n\n"
    assert source.read_bytes() == b"new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts", "source"]
