"""What producers build matches the wire's TypedDicts at run time too, and the config
Enums still read and print as the plain words of the YAML and the wire."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from promenade_core.bus import protocol
from promenade_core.config.choices import HostsMode, RestartPolicy, words
from promenade_core.config.fields import Choice
from promenade_core.config.load import ServiceConfig
from promenade_core.errors import ConfigError, Problem
from promenade_core.hosts.client import HostsManager
from promenade_core.supervise.reload_plan import ReloadAction, ServiceChange
from promenade_core.supervise.reloader import error_document
from promenade_core.supervise.service import Service


def _service() -> Service:
    config = ServiceConfig(
        name="api", command="serve", directory=Path("/"), port=8000, hostname=None, env={},
        own_env={}, env_file=None, depends_on=("db",), restart_policy=RestartPolicy.ONCE,
        ready_check=None,
    )
    return Service(config, cast(Any, object()))


def test_service_describe_has_exactly_the_status_objects_own_fields() -> None:
    doc = _service().describe("http://localhost:8000")
    assert set(doc) == set(protocol.StatusObject.__required_keys__)
    assert doc["status"] == "stopped" and doc["health"] == "unknown"
    assert type(doc["status"]) is str and doc["depends_on"] == ["db"]


def test_the_supervisors_additions_are_the_optional_fields() -> None:
    assert protocol.StatusObject.__optional_keys__ == {
        "hostname_mapped", "cpu_percent", "memory_bytes"}


def test_replies_match_their_shapes() -> None:
    ok = protocol.ok({"x": 1})
    error = protocol.error(protocol.BAD_REQUEST, "nope")
    assert set(ok) == set(protocol.OkReply.__required_keys__)
    assert set(error) == set(protocol.ErrorReply.__required_keys__)
    assert set(error["error"]) == set(protocol.ErrorInfo.__required_keys__)


def test_config_error_document_matches_its_shape() -> None:
    exc = ConfigError([Problem("promenade.yaml", 3, "services.api", "bad"),
                       Problem("promenade.yaml", 9, "manager.port", "worse")])
    doc = error_document(exc)
    assert set(doc) == set(protocol.ConfigErrorDoc.__required_keys__)
    assert doc["line"] == 3 and len(doc["problems"]) == 2


def test_a_reload_change_goes_on_the_wire_as_a_plain_word() -> None:
    # a plain word, as older callers (and tests) pass it
    change = ServiceChange("api", cast(ReloadAction, "restart"), ("command changed",))
    assert change.action is ReloadAction.RESTART
    doc = change.to_dict()
    assert set(doc) == set(protocol.ReloadChange.__required_keys__)
    assert type(doc["action"]) is str and doc["action"] == "restart"


def test_manager_messages_always_name_level_and_service() -> None:
    assert {"event", "level", "service"} <= protocol.ManagerMessage.__required_keys__


@pytest.mark.parametrize("member", [*RestartPolicy, *HostsMode, *ReloadAction])
def test_choices_print_and_encode_as_their_word(member: Any) -> None:
    word = member.value
    assert f"{member}" == str(member) == word == member
    assert json.loads(json.dumps({"k": member})) == {"k": word}
    assert protocol.decode(protocol.encode({"k": member})) == {"k": word}


def test_the_schema_loads_a_choice_as_its_enum_member() -> None:
    field = Choice(RestartPolicy)
    assert field.check("always") is RestartPolicy.ALWAYS
    assert words(HostsMode) == ("auto", "manual", "disabled")


def test_hosts_manager_takes_a_mode_word_or_member_and_refuses_others() -> None:
    def emit(message: str, level: protocol.Level = "info",
             service: str | None = None) -> None:
        pass

    assert HostsManager("manual", "/nowhere", emit).mode is HostsMode.MANUAL
    assert HostsManager(HostsMode.DISABLED, "/nowhere", emit).mode is HostsMode.DISABLED
    with pytest.raises(ValueError, match="hosts_management must be one of"):
        HostsManager("sometimes", "/nowhere", emit)
