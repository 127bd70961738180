"""`*.localhost` hostnames: fine for a service, never written by hostsd (issue 10, point 20)."""

from __future__ import annotations

from pathlib import Path

import pytest

from promenade_core.config.load import load_config
from promenade_core.errors import ConfigError
from promenade_hostsd.hostnames import entry_problem, hostname_problem, resolves_by_itself


def test_config_with_a_dot_localhost_hostname_validates(tmp_path: Path) -> None:
    """`hostname: api.myapp.localhost` was refused as "reserved", though browsers resolve
    it to loopback without /etc/hosts and treat it as a secure context."""
    path = tmp_path / "promenade.yaml"
    path.write_text("services:\n  api:\n    command: a\n    port: 5001\n"
                    "    hostname: api.myapp.localhost\n")
    assert load_config(path).services["api"].hostname == "api.myapp.localhost"


def test_plain_localhost_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "promenade.yaml"
    path.write_text("services:\n  api:\n    command: a\n    port: 5001\n    hostname: localhost\n")
    with pytest.raises(ConfigError, match="'localhost' is reserved"):
        load_config(path)


@pytest.mark.parametrize("name", ["api.localhost", "API.MyApp.LOCALHOST", "a-b.localhost"])
def test_dot_localhost_is_a_hostname_but_needs_no_entry(name: str) -> None:
    assert hostname_problem(name) is None
    assert resolves_by_itself(name)
    assert "needs no hosts entry" in (entry_problem(name) or "")


@pytest.mark.parametrize("name", ["api.test", "localhost.test", "mylocalhost", "api.local"])
def test_other_names_need_an_entry(name: str) -> None:
    assert not resolves_by_itself(name)
    assert entry_problem(name) is None
