"""`.env`, `${VAR}` and override files against a real manager: what the services get,
and hot reload of an edit to `.env` and to an override file."""

from __future__ import annotations

import subprocess

import pytest

from tests.support import PROMENADE, free_port, wait_for

pytestmark = pytest.mark.timeout(60)


def pids(m) -> dict[str, int | None]:
    return {name: s["pid"] for name, s in m.request("status")["services"].items()}


def test_dotenv_and_interpolation_reach_the_service(manager, tmp_path) -> None:
    (tmp_path / ".env").write_text("GREETING=hello\nWHO=dotenv\n")
    m = manager("""
        manager: {hosts_management: disabled, config_poll_interval: 0.2}
        services:
          api:
            command: echo "$GREETING ${WHO} $${WHO}"; sleep 60
            env: {WHO: own}
    """)
    m.wait_lines("api", ["hello dotenv own"])


def test_an_edit_to_dotenv_restarts_the_services_it_reaches(manager, tmp_path) -> None:
    (tmp_path / ".env").write_text("COLOUR=red\n")
    m = manager("""
        manager: {hosts_management: disabled, config_poll_interval: 0.2}
        services:
          api: {command: 'echo "colour $COLOUR"; sleep 60'}
    """)
    m.wait_lines("api", ["colour red"])
    before = pids(m)["api"]
    (tmp_path / ".env").write_text("COLOUR=blue\n")
    m.wait_output("reload: restarted api (env changed: COLOUR)")
    wait_for(lambda: "colour blue" in m.lines("api"), 10, "the new value")
    assert pids(m)["api"] != before


def test_creating_and_editing_an_override_file_reloads(manager, tmp_path) -> None:
    port, moved = free_port(), free_port()
    m = manager(f"""
        manager: {{hosts_management: disabled, config_poll_interval: 0.2}}
        services:
          api: {{command: sleep 60, port: {port}}}
    """)
    m.wait_status("api", "running")
    override = tmp_path / "promenade.override.yaml"
    override.write_text(f"services:\n  api: {{port: {moved}}}\n"
                        "  extra: {command: sleep 61}\n")
    m.wait_output("reload: started extra; restarted api (port changed")
    assert m.wait_status("api", "running")["port"] == moved
    m.wait_status("extra", "running")
    override.write_text(f"services:\n  api: {{port: {moved}}}\n  extra: {{port: 0}}\n")
    out = m.wait_output("config is invalid")
    assert "promenade.override.yaml:3: services.extra.port: must be a port" in out
    assert m.status("extra")["status"] == "running"     # the old config keeps running


def test_repeated_config_files_reach_a_daemon_and_its_reloads(manager, tmp_path) -> None:
    m = manager("""
        manager: {hosts_management: disabled, config_poll_interval: 0.2}
        services:
          api: {command: 'echo "mode $MODE"; sleep 60', env: {MODE: base}}
    """, start=False)
    mine = tmp_path / "mine.yaml"
    mine.write_text("services:\n  api: {env: {MODE: mine}}\n")
    started = subprocess.run(
        [*PROMENADE, "start", "-d", "--no-ui", "-c", str(m.path), "-c", str(mine), "--wait",
         "--timeout", "30"], env=m.env, capture_output=True, text=True, timeout=60)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        wait_for(lambda: "mode mine" in m.lines("api"), 10, "the merged env")
        mine.write_text("services:\n  api: {env: {MODE: edited}}\n")
        wait_for(lambda: "mode edited" in m.lines("api"), 15, "a reload of mine.yaml")
    finally:
        m.cli("stop")
