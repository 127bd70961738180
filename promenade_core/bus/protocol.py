"""The bus wire format: topics, message shapes, commands and error codes.

Standard library only, imported by the supervisor, the web process, the CLI and users'
scripts. Every JSON message on the `events` PUB socket is one frame pair
`[topic, json]` and carries `v` (this VERSION) and `seq` (one counter per manager,
strictly increasing). Every message but log batches also carries `run_id`, the id of
this manager run (also in `manager.json`, `ping`, `logs` and `snapshot`): seq starts
again at 0 when a manager restarts, and only the run id tells that from a gap.

Topics (subscribe by prefix; `parse_topic` splits one into kind and service):
- `log/<service>/`  {"v", "seq", "first_seq", "service", "stream", "timestamp",
  "lines": [...]} — the lines of one read of one stream (a large read is split into
  messages of at most 16 KiB that share its timestamp); line i has seq first_seq+i,
  `seq` is the last line's; all share the read's timestamp. The `logs` and `snapshot`
  replies carry the buffered lines as messages of this very shape (one per buffered
  read, the oldest possibly trimmed at the `since`/`tail` boundary by raising
  `first_seq` and dropping lines from the front), so replay and live take one path.

  Byte-level contract: `encode(log_message(...))` writes the keys in the order above,
  `lines` last, and a log message's header fields are a service name, a stream name,
  a timestamp and integers (none can hold `"lines":[`). `log_header(body)` relies on
  it to read seq, first_seq and service from the raw bytes without decoding the lines
  (the web process fans a flood out that way); tests/unit/test_log_messages.py pins it.
- `state/<service>/` {"v", "seq", "service", "status": <status object>} — one per
  transition, per health change, and when `hostname_mapped` (the hostname leads to
  this machine now: the web process trusts it as a local origin only then) changes.
- `config/` {"v", "seq", "event": "reloaded"|"invalid", ...} — no "changed" event: the
  watcher reloads at the poll that sees the change, so `reloaded` or `invalid` is the
  news (a half-written file is retried silently, and a change that alters nothing, a
  comment, publishes nothing).
- `raw/<service>/` {"v", "seq", "service", "stream", "data"} — the bytes of one read
  of one stream exactly as the service wrote them (colours, cursor movement, a prompt
  without a newline), base64 in `data`. Published only while a client is attached to
  the service (the `attach` command), and without a seq of its own: `seq` is the
  latest one already given, so followers of the whole feed see neither a gap nor a
  duplicate. One message per read (at most 64 KiB of bytes).
- `manager/` {"v", "seq", "event": "started"|"stopping"|"message", "message": str,
  "level": "debug"|"info"|"warning"|"error", "service": name or null} — `service` names
  the service a message is about (null when about none), so clients never parse prose.

Control (`control`, REQ clients): request {"cmd": NAME, ...}; reply
{"ok": true, "result": ...} or {"ok": false, "error": {"code", "message"}}.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal, Protocol, TypedDict

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
RAW_PREFIX = "raw/"
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
#: `input`/`resize`: another attached client has the keyboard
READ_ONLY = "read_only"
#: the lease given expired (not renewed in time) or is not for this service
NOT_ATTACHED = "not_attached"
#: `input`/`resize`: the service has no process now (or, for resize, no pty)
NO_TERMINAL = "no_terminal"
BUSY = "busy"

#: Every control command and what it takes; `promenade_core.control` implements them.
COMMANDS: dict[str, str] = {
    "ping": "{} -> {pid, version, seq, run_id}",
    "status": "{} -> status document (SPEC.md's /api/status)",
    "service": "{service} -> one status object",
    "start": "{service, wait=true} -> status object once started (or at once with wait=false)",
    "stop": "{service, wait=true} -> status object once stopped",
    "restart": "{service, wait=true} -> status object once started again",
    "restart_all": "{} -> {services: [names]}",
    "logs": "{service?|services?, tail?, since?, until?} -> {seq, run_id, messages: [log "
    "message, ...]} (oldest first; the lines newer than since and up to until, at most "
    "the last tail of them)",
    "config": "{} -> {path, last_modified, error, config: {...}}",
    "reload": "{dry_run=false} -> {changed, actions: [...], summary, error}",
    "snapshot": "{} -> {seq, run_id, services: {name: status}, logs: [log message, ...]}",
    "sync": "{token} -> {}; publishes a marker on sync/<token> so a subscriber knows it is joined",
    "gap": "{count} -> {}; a subscriber reports messages it lost (shown in status as bus.dropped)",
    "shutdown": "{} -> {stopping: true}; the manager then stops every service and exits",
    "wait": "{services?: [names] | null, timeout_seconds?: s} -> {ok, timed_out, failed: "
    "[{service, status, status_reason, verdict}], waiting: [...], services: {name: status}}"
    "; blocks until every named service (default: every autostart one) is up (running, "
    "healthy where it has a ready_check, a task completed with code 0), one fails, gives "
    "up or was never started, or timeout_seconds (default 120, at most 3600) pass. Give "
    "the request itself a longer timeout than timeout_seconds",
    "attach": "{service, lease?, take=false, read_only=false} -> {lease, writer, attached, "
    "lease_seconds}; "
    "starts publishing the service's raw output on raw/<service>/ (subscribe first, see "
    "the topic). Send it again with the lease within lease_seconds to keep it (every few "
    "seconds); `writer` says whether this lease has the keyboard: the first attach gets "
    "it, a later one is read-only unless take=true (the other one then turns read-only); "
    "a read_only lease never holds the keyboard",
    "detach": "{lease} -> {detached: bool}; raw output stops when the last lease is gone",
    "input": "{service, data (base64, at most 64 KiB decoded), lease?} -> {written: n}; "
    "writes to the service's stdin (its pty with tty: true: Ctrl-C is byte 3 and becomes "
    "SIGINT). Needs the lease that has the keyboard while anyone is attached; without a "
    "lease it is accepted only when nobody is (error read_only otherwise)",
    "resize": "{service, rows, cols, lease?} -> {rows, cols}; sets the window size of the "
    "service's pty (TIOCSWINSZ; its programs get SIGWINCH); same keyboard rule as input",
}

#: The `wait` command's timeout when none is given, and the largest it takes (seconds).
DEFAULT_WAIT = 120.0
MAX_WAIT = 3600.0


# --------------------------------------------------------------------------- shapes
# The wire's messages as TypedDicts: producers (supervisor, control, publisher) and
# consumers (bus client, web hub/API/stream, CLI) name the same type, so mypy checks
# one against the other. (Two-step classes stand in for `NotRequired`, which
# Python 3.10's typing lacks.)


class _StatusCore(TypedDict):
    name: str
    status: str                 # a `states.Status` value
    health: str                 # a `states.Health` value
    pid: int | None
    #: the port of the current (or last) run: `port:` as written, or the one picked
    #: for `port: auto` (None before an auto service's first start)
    port: int | None
    port_auto: bool             # `port: auto`: the port is picked at each start
    hostname: str | None
    url: str | None
    uptime_seconds: float | None
    restart_count: int
    last_exit_code: int | None  # minus the signal number when killed
    command: str                # inline secrets masked by the supervisor
    depends_on: list[str]
    started_at: float | None
    status_since: float
    cors_proxy_port: int | None
    #: why the service is in its status, in words: `waiting for db (healthy)`,
    #: `dependency migrate exited with code 1`, `exited with code 3; gave up after 1 retry`
    status_reason: str | None
    #: each dependency's written condition (`started`, `healthy`,
    #: `completed_successfully`), or None for the list form (running, and healthy when
    #: it has a ready_check)
    conditions: dict[str, str | None]
    autostart: bool
    #: a run in this manager's lifetime exited with code 0 (how tasks are judged)
    completed: bool
    ready_check: str | None     # the ready_check's type, None without one
    #: the service's `profiles` (empty: it is in none, and always active)
    profiles: list[str]


class StatusObject(_StatusCore, total=False):
    """One service's status (SPEC.md's status response); the supervisor adds the
    fields below to what the service itself knows."""

    hostname_mapped: bool       # the hostname leads to this machine now
    cpu_percent: float | None
    memory_bytes: int | None


class BusCounters(TypedDict):
    seq: int
    dropped: int


class StatusDocument(TypedDict):
    """The `status` command's result (GET /api/status)."""

    services: dict[str, StatusObject]
    config_path: str
    config_last_modified: str | None
    config_error: ConfigErrorDoc | None
    manager_uptime_seconds: float
    manager_pid: int
    run_id: str
    version: str
    dashboard_url: str | None
    bus: BusCounters
    #: the profiles `promenade start` activated (`--profile`, PROMENADE_PROFILES)
    profiles: list[str]


class ConfigErrorDoc(TypedDict):
    """Why the config on disk is not the one running (its first problem, then all)."""

    file: str
    line: int | None
    key: str | None
    message: str
    problems: list[str]


class _Envelope(TypedDict):
    v: int
    seq: int


class _Event(_Envelope, total=False):
    run_id: str                 # on every event but log batches


class LogMessage(_Envelope):
    """`log/<service>/`: the lines of one read of one stream; line i has seq
    first_seq + i, `seq` is the last line's."""

    first_seq: int
    service: str
    stream: str                 # "stdout" | "stderr"
    timestamp: str
    lines: list[str]


class RawMessage(_Envelope):
    """`raw/<service>/`: one read's bytes as written, base64 (raw_bytes decodes)."""

    service: str
    stream: str                 # "stdout" | "stderr"
    data: str


class StateBody(TypedDict):
    service: str
    status: StatusObject


class StateMessage(StateBody, _Event):
    """`state/<service>/`: one per transition, health change or hostname_mapped change."""


class ReloadChange(TypedDict):
    service: str
    action: str                 # a `reload_plan.ReloadAction` value
    reasons: list[str]


class ConfigBody(TypedDict, total=False):
    event: Literal["reloaded", "invalid"]
    summary: str                # reloaded
    actions: dict[str, Any] | list[ReloadChange]   # reloaded: the plan (or [])
    error: ConfigErrorDoc       # invalid


class ConfigMessage(ConfigBody, _Event):
    """`config/`: a reload was applied, or the file on disk is invalid."""


class _ManagerCore(TypedDict):
    event: Literal["started", "stopping", "message"]
    level: Level
    service: str | None         # the service the message is about; None: none


class ManagerBody(_ManagerCore, total=False):
    message: str
    pid: int                    # started


class ManagerMessage(ManagerBody, _Event):
    """`manager/`: the manager's own messages; `service` and `level` say what about and
    how much it matters, so no client parses the prose."""


#: What `Publisher.publish` takes (it adds the envelope: v, seq, run_id).
EventBody = StateBody | ConfigBody | ManagerBody


class ErrorInfo(TypedDict):
    code: str                   # one of the stable codes above
    message: str


class OkReply(TypedDict):
    ok: Literal[True]
    result: Any                 # the command's result (see COMMANDS)


class ErrorReply(TypedDict):
    ok: Literal[False]
    error: ErrorInfo


Reply = OkReply | ErrorReply


class PingResult(TypedDict):
    pid: int
    version: str
    seq: int
    run_id: str


class RestartAllResult(TypedDict):
    services: list[str]


class ConfigDocument(TypedDict):
    """The `config` command's result (GET /api/config), env secrets masked."""

    path: str
    last_modified: str | None
    error: ConfigErrorDoc | None
    config: dict[str, Any]


class ReloadResult(TypedDict, total=False):
    """The `reload` command's result (POST /api/reload)."""

    changed: bool
    dry_run: bool
    error: ConfigErrorDoc | None
    summary: str
    actions: dict[str, Any]     # the plan: changes, manager_changes, buffer_resize


class WaitEntry(TypedDict):
    """One service a `wait` reports on (failed, or still waiting at the timeout)."""

    service: str
    status: str                 # the status, or "removed" (gone from the config)
    status_reason: str | None
    #: "failed" (failed, gave up, removed), "not_started" (stopped, never completed:
    #: it needs a start) or "pending" (still on its way); waiting.Verdict's values
    verdict: str


class WaitResult(TypedDict):
    """The `wait` command's result (GET /api/wait's body).

    `ok` is true once every service is up. A failed, given-up or never-started service
    ends the wait at once, listed in `failed`; when the timeout passes first,
    `timed_out` is true and `waiting` lists the services not up yet. `services` holds
    the named services' status objects as they were at the end.
    """

    ok: bool
    timed_out: bool
    failed: list[WaitEntry]
    waiting: list[WaitEntry]
    services: dict[str, StatusObject]


class ShutdownResult(TypedDict):
    stopping: bool


# Each command's request fields (all optional on the wire: the handlers type-check them,
# requests being untrusted input).
class Request(TypedDict):
    cmd: str


class ServiceRequest(Request, total=False):
    """`service`, `start`, `stop`, `restart`."""

    service: str
    wait: bool


class RestartAllRequest(Request, total=False):
    wait: bool


class LogsRequest(Request, total=False):
    service: str
    services: list[str]
    tail: int
    since: int
    until: int


class ReloadRequest(Request, total=False):
    dry_run: bool


class WaitRequest(Request, total=False):
    #: the services to wait for; absent or null: every autostart service
    services: list[str] | None
    #: seconds, > 0 and at most MAX_WAIT (default DEFAULT_WAIT). Not `timeout`: that
    #: is the keyword ControlClient.request takes for the reply's own timeout
    timeout_seconds: float


class SyncRequest(Request, total=False):
    token: str


class GapRequest(Request, total=False):
    count: int


def log_topic(service: str) -> str:
    return f"{LOG_PREFIX}{service}/"


def state_topic(service: str) -> str:
    return f"{STATE_PREFIX}{service}/"


def raw_topic(service: str) -> str:
    return f"{RAW_PREFIX}{service}/"


def raw_message(service: str, stream: str, data: bytes, seq: int) -> RawMessage:
    """One `raw/` message; `seq` is the feed's latest, not a new one."""
    import base64  # here, not at the top: the CLI's every command imports this module

    return {"v": VERSION, "seq": seq, "service": service, "stream": stream,
            "data": base64.b64encode(data).decode("ascii")}


def raw_bytes(message: Mapping[str, Any]) -> bytes:
    """The bytes of a `raw/` message (b"" when it holds none or is malformed)."""
    import base64
    import binascii

    data = message.get("data")
    if not isinstance(data, str):
        return b""
    try:
        return base64.b64decode(data, validate=True)
    except (ValueError, binascii.Error):
        return b""


try:  # orjson encodes a 650-line batch ~35x faster; the log path depends on it
    import orjson
except ImportError:  # pragma: no cover - a user script without it still works
    orjson = None  # type: ignore[assignment]


def encode(message: Mapping[str, Any]) -> bytes:
    if orjson is not None:
        return orjson.dumps(message)
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def decode(data: bytes) -> Any:
    if orjson is not None:
        return orjson.loads(data)
    return json.loads(data)


def ok(result: Any) -> OkReply:
    return {"ok": True, "result": result}


def error(code: str, message: str) -> ErrorReply:
    return {"ok": False, "error": {"code": code, "message": message}}


def parse_topic(topic: str) -> tuple[str, str | None]:
    """`("log", "api")` for `log/api/`, `("config", None)` for `config/`, `("sync",
    token)` for `sync/<token>`; the kind is the topic's first part, whatever it is."""
    kind, _, rest = topic.partition("/")
    service = rest[:-1] if rest.endswith("/") else rest
    return kind, service or None


def log_message(service: str, first_seq: int, timestamp: str, stream: str,
                lines: list[str]) -> dict[str, Any]:
    """One `log/` message; its key order (`lines` last) is the contract of log_header."""
    return {
        "v": VERSION,
        "seq": first_seq + len(lines) - 1,
        "first_seq": first_seq,
        "service": service,
        "stream": stream,
        "timestamp": timestamp,
        "lines": lines,
    }


_LINES_KEY = b'"lines":['


def log_header(body: bytes) -> dict[str, Any] | None:
    """A raw log message's fields but its lines (`lines` comes out empty), read without
    decoding the lines; None when `body` is not shaped as log_message writes it."""
    cut = body.find(_LINES_KEY)
    if cut <= 0:
        return None
    try:
        header = decode(body[:cut] + b'"lines":[]}')
    except ValueError:
        return None
    if not isinstance(header, dict) or not all(
            type(header.get(key)) is int for key in ("seq", "first_seq")) or not isinstance(
            header.get("service"), str):
        return None
    return header


def log_after(message: dict[str, Any], seq: int) -> dict[str, Any] | None:
    """`message` without its lines up to `seq` (the replay boundary): the message
    itself when all are newer, None when none is."""
    if message["seq"] <= seq:
        return None
    if message["first_seq"] > seq:
        return message
    skip = seq - message["first_seq"] + 1
    return {**message, "first_seq": seq + 1, "lines": message["lines"][skip:]}


#: A subscriber fetches what the PUB socket dropped (`logs` with since/until) at most
#: this often: when a flood overruns its queue at every message, a request per gap
#: would slow it further.
REPAIR_INTERVAL = 0.05
#: ...and at most this many lines at a time (the newest).
REPAIR_LINES = 20_000


def repair_request(since: int, until: int | None) -> dict[str, Any]:
    """The `logs` arguments that fetch back what a subscriber missed after seq `since`
    (up to `until`): every service's lines (what no buffer holds is the loss), the
    newest REPAIR_LINES at most."""
    args: dict[str, Any] = {"since": since, "tail": REPAIR_LINES}
    if until is not None:
        args["until"] = until
    return args


def log_until(message: dict[str, Any], seq: int) -> dict[str, Any] | None:
    """`message` without its lines newer than `seq`: the message itself when none is,
    None when every line is."""
    if message["first_seq"] > seq:
        return None
    if message["seq"] <= seq:
        return message
    keep = seq - message["first_seq"] + 1
    return {**message, "seq": seq, "lines": message["lines"][:keep]}


def log_between(message: dict[str, Any], since: int | None,
                until: int | None) -> dict[str, Any] | None:
    """`message` cut to the lines after `since` and up to `until` (None: no bound)."""
    cut: dict[str, Any] | None = message
    if since is not None:
        cut = log_after(message, since)
    if cut is not None and until is not None:
        cut = log_until(cut, until)
    return cut


def log_tail(messages: list[dict[str, Any]], count: int | None) -> list[dict[str, Any]]:
    """The messages (in seq order) holding the last `count` lines: the oldest one kept
    may be trimmed. None keeps everything."""
    if count is None:
        return messages
    out: list[dict[str, Any]] = []
    left = count
    for message in reversed(messages):
        if left <= 0:
            break
        lines = message["lines"]
        if len(lines) > left:
            message = {**message, "first_seq": message["seq"] - left + 1,
                       "lines": lines[len(lines) - left:]}
        out.append(message)
        left -= len(message["lines"])
    out.reverse()
    return out


class SeqTracker:
    """Gap accounting on the feed: seq is one counter across all topics, so a subscriber
    to the whole feed sees every number; a jump is messages the PUB socket dropped.

    `last` is the newest seq already had (a snapshot's), or None when unknown (nothing
    counts as lost until the next message sets it).
    """

    def __init__(self, last: int | None = None) -> None:
        self.last = last

    def reset(self) -> None:
        """Forget the position: the feed's seqs are not all visible for a while."""
        self.last = None

    def old(self, seq: int) -> bool:
        """True for a message the snapshot (or an earlier message) already covered."""
        return self.last is not None and seq <= self.last

    def advance(self, seq: int, first_seq: int | None = None) -> int:
        """Take a message (a log message's lines are first_seq..seq); returns how many
        messages were lost just before it (0 when none). A seq of 0 (a message without
        one) moves nothing."""
        first = seq if first_seq is None else first_seq
        missed = first - self.last - 1 if self.last is not None and seq else 0
        if seq:
            self.last = max(seq, self.last or 0)
        return max(missed, 0)
