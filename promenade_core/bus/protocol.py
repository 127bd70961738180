"""The bus wire format: topics, message shapes, commands and error codes.

Standard library only, imported by the supervisor, the web process, the CLI and users'
scripts. Every JSON message on the `events` PUB socket is one frame pair
`[topic, json]` and carries `v` (this VERSION) and `seq` (one counter per manager,
strictly increasing). Every message but log batches also carries `run_id`, the id of
this manager run (also in `manager.json`, `ping`, `logs` and `snapshot`): seq starts
again at 0 when a manager restarts, and only the run id tells that from a gap.

Topics (subscribe by prefix):
- `log/<service>/`  {"v", "seq", "first_seq", "service", "stream", "timestamp",
  "lines": [...]} — the lines of one read of one stream (a large read is split into
  messages of at most 16 KiB that share its timestamp); line i has seq first_seq+i,
  `seq` is the last line's; all share the read's timestamp.
- `state/<service>/` {"v", "seq", "service", "status": <status object>} — one per
  transition, per health change, and when `hostname_mapped` (the hostname leads to
  this machine now: the web process trusts it as a local origin only then) changes.
- `config/` {"v", "seq", "event": "reloaded"|"invalid", ...}
- `manager/` {"v", "seq", "event": "started"|"stopping"|"message", "message": str,
  "level": "debug"|"info"|"warning"|"error", "service": name or null} — `service` names
  the service a message is about (null when about none), so clients never parse prose.

Control (`control`, REQ clients): request {"cmd": NAME, ...}; reply
{"ok": true, "result": ...} or {"ok": false, "error": {"code", "message"}}.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Protocol

# Re-exported: the masking rules were born here, and user scripts may import them.
from promenade_core.masking import MASK, SECRET_MARKERS, is_secret_key, mask_env  # noqa: F401

VERSION = 1

#: How much a manager message matters: `debug` reaches the bus only with `-v`; the
#: dashboard shows `warning` and `error` as toasts.
Level = Literal["debug", "info", "warning", "error"]


class Emit(Protocol):
    """Tell the user something: the terminal and the `manager/` topic."""

    def __call__(self, message: str, level: Level = "info",
                 service: str | None = None) -> None: ...

MAX_REQUEST_BYTES = 64 * 1024

LOG_PREFIX = "log/"
STATE_PREFIX = "state/"
CONFIG_TOPIC = "config/"
MANAGER_TOPIC = "manager/"
#: `sync/<token>` markers answer the `sync` command; they carry no new seq.
SYNC_PREFIX = "sync/"

# Stable error codes: scripts branch on these, never on messages.
UNKNOWN_SERVICE = "unknown_service"
UNKNOWN_COMMAND = "unknown_command"
BAD_REQUEST = "bad_request"
CONFIG_INVALID = "config_invalid"
SHUTTING_DOWN = "shutting_down"
INTERNAL = "internal_error"
TIMEOUT = "timeout"

#: Every control command and what it takes; `promenade_core.control` implements them.
COMMANDS: dict[str, str] = {
    "ping": "{} -> {pid, version, seq, run_id}",
    "status": "{} -> status document (SPEC.md's /api/status)",
    "service": "{service} -> one status object",
    "start": "{service, wait=true} -> status object once started (or at once with wait=false)",
    "stop": "{service, wait=true} -> status object once stopped",
    "restart": "{service, wait=true} -> status object once started again",
    "restart_all": "{} -> {services: [names]}",
    "logs": "{service?|services?, tail?, since?} -> {seq, run_id, lines: [{seq, timestamp, "
    "service, stream, line}]}",
    "config": "{} -> {path, last_modified, error, config: {...}}",
    "reload": "{dry_run=false} -> {changed, actions: [...], summary, error}",
    "snapshot": "{} -> {seq, run_id, services: {name: status}, logs: {name: [line, ...]}}",
    "sync": "{token} -> {}; publishes a marker on sync/<token> so a subscriber knows it is joined",
    "gap": "{count} -> {}; a subscriber reports messages it lost (shown in status as bus.dropped)",
    "shutdown": "{} -> {stopping: true}; the manager then stops every service and exits",
}


def log_topic(service: str) -> str:
    return f"{LOG_PREFIX}{service}/"


def state_topic(service: str) -> str:
    return f"{STATE_PREFIX}{service}/"


try:  # orjson encodes a 650-line batch ~35x faster; the log path depends on it
    import orjson
except ImportError:  # pragma: no cover - a user script without it still works
    orjson = None  # type: ignore[assignment]


def encode(message: dict[str, Any]) -> bytes:
    if orjson is not None:
        return orjson.dumps(message)
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def decode(data: bytes) -> Any:
    if orjson is not None:
        return orjson.loads(data)
    return json.loads(data)


def ok(result: Any) -> dict[str, Any]:
    return {"ok": True, "result": result}


def error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


def log_entries(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Expand a batched `log/` message into one dict per line, each with its own seq."""
    first = message["first_seq"]
    return [
        {
            "seq": first + i,
            "timestamp": message["timestamp"],
            "service": message["service"],
            "stream": message["stream"],
            "line": line,
        }
        for i, line in enumerate(message["lines"])
    ]

