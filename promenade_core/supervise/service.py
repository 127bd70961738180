"""One supervised service: its process, its output, its health and its state.

Every change of status goes through `Service._set`, which checks the transition
table, stamps the time and publishes exactly one event. Commands (start, stop,
restart) run one at a time per service, in the order they came: a queue, never a
"busy" refusal.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any, Protocol

import gevent
import gevent.event
import gevent.queue
from gevent.socket import wait_read

from promenade_core.bus.protocol import Level, StatusObject
from promenade_core.config.choices import StopSignal
from promenade_core.config.model import ServiceConfig
from promenade_core.errors import PromenadeError
from promenade_core.masking import mask_command
from promenade_core.supervise import osproc, policy, ports
from promenade_core.supervise.clock import REAL_CLOCK, Clock
from promenade_core.supervise.dependencies import (
    DependencyState,
    Need,
    Verdict,
    judge,
    waiting_reason,
)
from promenade_core.supervise.logs import LineSplitter
from promenade_core.supervise.osproc import ProcessOps, Spawned
from promenade_core.supervise.readiness import Readiness
from promenade_core.supervise.states import (
    ALIVE,
    STARTABLE,
    TRANSITIONS,
    Health,
    Status,
    check_transition,
)

#: The reason of a service that `promenade start` leaves alone.
MANUAL_START = "autostart: false; start it by hand"
STOPPED_ON_REQUEST = "stopped on request"
COMPLETED = "completed: exited with code 0"
START_SETTLE = 10.0
#: After the main process exits on its own, what it left in its tree gets this long.
STRAGGLER_GRACE = 1.0
READ_SIZE = 65536
#: How long a partial line (a prompt: `(Pdb) `, `Password: `) waits for the rest of
#: its line before the viewers get it as it is.
PROMPT_IDLE = 0.1


class Host(Protocol):
    """What a service needs from its supervisor."""

    ops: ProcessOps

    def service(self, name: str) -> Service: ...
    def environment(self, service: Service) -> dict[str, str]: ...
    def dependency_timeout(self) -> float: ...
    def on_lines(self, service: Service, stream: str, lines: list[str]) -> None: ...
    def on_raw(self, service: Service, stream: str, data: bytes) -> None: ...
    def on_change(self, service: Service) -> None: ...
    def emit(self, message: str, level: Level = "info",
             service: str | None = None) -> None: ...
    def track_group(self, pgid: int, alive: bool) -> None: ...
    def on_started(self, service: Service) -> None: ...
    def on_stopped(self, service: Service) -> None: ...
    def on_updated(self, service: Service, old: ServiceConfig) -> None: ...
    def auto_port(self, service: Service, previous: int | None) -> int | None: ...


class Service:
    def __init__(self, config: ServiceConfig, host: Host, clock: Clock = REAL_CLOCK) -> None:
        self.config = config
        self.host = host
        self.name = config.name
        self.clock = clock
        self.status = Status.STOPPED
        self.health = Health.UNKNOWN
        self.status_since = clock.time()
        self.pid: int | None = None
        self.started_at: float | None = None
        self.restart_count = 0
        self.last_exit_code: int | None = None
        #: why the service is in its status (StatusObject.status_reason)
        self.reason: str | None = None if config.autostart else MANUAL_START
        #: a run in this manager's lifetime exited with code 0 (a task completed)
        self.completed = False
        #: set and replaced at every change of status or health: what a dependant
        #: waiting for this service waits on
        self.changed = gevent.event.Event()
        #: the last exit was a failure the restart policy retries (dependants wait on)
        self._will_retry = False
        #: the current run has been healthy once (an unhealthy one is then "failing")
        self._was_healthy = False
        self._failures = 0
        self._retries_done = 0
        self._stop_requested = False
        self._spawned: Spawned | None = None
        #: `port: auto`: the port picked for the current (or last) run
        self._auto_port: int | None = None
        self._lifecycle: gevent.Greenlet | None = None
        self._readiness: Readiness | None = None
        self._exited = gevent.event.Event()
        self._settled = gevent.event.Event()
        self._settled.set()   # stopped is settled
        self._commands: gevent.queue.Queue = gevent.queue.Queue()
        self._worker = gevent.spawn(self._run_commands)

    # -- state ---------------------------------------------------------------

    def _set(self, status: Status, reason: str | None = None) -> None:
        check_transition(self.status, status)
        self.status = status
        self.reason = reason
        self.status_since = self.clock.time()
        if status in (Status.RUNNING, Status.STOPPED, Status.FAILED, Status.GAVE_UP):
            self._settled.set()
        else:
            self._settled.clear()
        self._notify()
        self.host.on_change(self)

    def _notify(self) -> None:
        """Wake whoever waits on this service's state (dependants)."""
        changed, self.changed = self.changed, gevent.event.Event()
        changed.set()

    def set_reason(self, reason: str | None) -> None:
        """A new reason for the same status (`waiting for db`, `not started: …`)."""
        if reason != self.reason:
            self.reason = reason
            self.host.on_change(self)

    def _set_health(self, value: Health, publish: bool = True) -> None:
        """The one place health changes. `publish=False` when the caller publishes the
        change itself, with the status change it goes with (one event, not two)."""
        if value != self.health:
            self.health = value
            if value == Health.HEALTHY:
                self._was_healthy = True
            self._notify()
            if publish:
                self.host.on_change(self)

    def _say(self, message: str, level: Level = "info") -> None:
        """A manager message about this service (it names it on the bus)."""
        self.host.emit(message, level, service=self.name)

    def describe(self, url: str | None) -> StatusObject:
        """The status object of SPEC.md's /api/status (a frozen snapshot)."""
        running = self.status in ALIVE and self.pid is not None
        return {
            "name": self.name,
            "status": self.status.value,
            "health": self.health.value,
            "pid": self.pid if self.status in ALIVE else None,
            "port": self.port,
            "port_auto": self.config.port_auto,
            "hostname": self.config.hostname,
            "url": url,
            "uptime_seconds": round(self.clock.time() - self.started_at, 1)
            if running and self.started_at else None,
            "restart_count": self.restart_count,
            "last_exit_code": self.last_exit_code,
            "command": self.config.command,
            "depends_on": list(self.config.depends_on),
            "started_at": self.started_at,
            "status_since": self.status_since,
            "cors_proxy_port": self.config.cors_proxy_port if self.config.cors_proxy else None,
            "status_reason": self.status_reason(),
            "conditions": {d: self.config.condition(d) for d in self.config.depends_on},
            "autostart": self.config.autostart,
            "completed": self.completed,
            "ready_check": self.config.ready_check.type if self.config.ready_check else None,
            "profiles": list(self.config.profiles),
        }

    def status_reason(self) -> str | None:
        """Why the service is where it is; while it runs, what its health says."""
        check = self.config.ready_check
        if self.status != Status.RUNNING or check is None:
            return self.reason
        if self.health == Health.WAITING:
            return f"waiting for its ready_check ({check.type})"
        if self.health == Health.UNHEALTHY:
            if self._was_healthy:
                return "unhealthy: its ready_check is failing"
            return f"not healthy after {check.timeout:g} s"
        return None

    def dependency_state(self) -> DependencyState:
        """What a dependant judges this service by (dependencies.judge)."""
        return DependencyState(self.name, self.status, self.health,
                               self.config.ready_check is not None, self.completed,
                               self._will_retry, self.reason)

    def _judge(self, name: str) -> Verdict:
        return judge(self.config.condition(name), self.host.service(name).dependency_state())

    # -- commands (queued, one at a time) ---------------------------------------

    def submit(self, action: Callable[[], Any]) -> gevent.event.AsyncResult:
        result = gevent.event.AsyncResult()
        self._commands.put((action, result))
        return result

    def _run_commands(self) -> None:
        while True:
            action, result = self._commands.get()
            try:
                result.set(action())
            except Exception as exc:  # delivered to whoever waits for the command
                result.set_exception(exc)

    def start(self) -> None:
        """Start unless already up. Waiting for the result is `wait_settled`'s job,
        outside the command queue, so a start waiting on dependencies never holds up a
        stop queued behind it."""
        if self._lifecycle is None and self.status in STARTABLE:
            self._retries_done = 0
            self._failures = 0
            self._start_dependencies()
            self._set(Status.PENDING)
            self._lifecycle = gevent.spawn(self._live)
            if all(self._judge(d).need is Need.MET for d in self.config.depends_on):
                # Nothing to wait for: let the spawn happen before the next queued
                # command, so a start then stop run in that order, visibly.
                self._settled.wait(START_SETTLE)

    def _start_dependencies(self) -> None:
        """Start what this service depends on that is not up and not on its way
        (stopped, failed, gave up): `promenade start api` brings up api's database."""
        for name in self.config.depends_on:
            dep = self.host.service(name)
            if dep.status in STARTABLE and self._judge(name).need is not Need.MET:
                dep.submit(dep.start)

    def wait_settled(self, timeout: float | None = None) -> bool:
        """Wait until running, stopped, failed or given up."""
        return self._settled.wait(timeout)

    def stop(self) -> None:
        """`stop_command` first when there is one, then `stop_signal` to the whole tree,
        `stop_timeout` of grace, then SIGKILL; returns when stopped."""
        self._will_retry = False
        lifecycle = self._lifecycle
        if lifecycle is None:
            if self.status in (Status.FAILED, Status.GAVE_UP):
                self._set(Status.STOPPED, STOPPED_ON_REQUEST)
            return
        spawned = self._spawned
        if self.status in (Status.PENDING, Status.RETRYING) or spawned is None:
            lifecycle.kill()
            self._lifecycle = None
            if self.status != Status.STOPPED:
                self._set(Status.STOPPED, STOPPED_ON_REQUEST)
            return
        self._stop_requested = True
        if self.status in (Status.STARTING, Status.RUNNING):
            self._set(Status.STOPPING)
        self._say(f"stopping {self.name} (pid {spawned.pid})", "debug")
        if self.config.stop_command:
            self._run_stop_command(self.config.stop_command)
        self._signal_and_wait(spawned, self.config.stop_signal)
        lifecycle.join()

    def _run_stop_command(self, command: str) -> None:
        """The user's own way to stop the service (`docker stop pg`): its output joins
        the service's log; it gets `stop_timeout` seconds."""
        timeout = self.config.stop_timeout
        self._say(f"{self.name}: running stop_command", "debug")
        try:
            finished = self.host.ops.run(command, self.config.directory,
                                         self.host.environment(self), timeout,
                                         self.host.track_group)
        except (PromenadeError, OSError, ValueError) as exc:
            self._say(f"{self.name}: stop_command could not run: "
                      f"{spawn_failure(command, exc)}", "warning")
            return
        if finished.lines:
            self.host.on_lines(self, "stdout", finished.lines)
        if finished.code is None:
            self._say(f"{self.name}: stop_command did not finish within {timeout:g} s; "
                      "killed it", "warning")
        elif finished.code != 0:
            self._say(f"{self.name}: stop_command {_exit_words(finished.code)}", "warning")

    def _signal_and_wait(self, spawned: Spawned, stop_signal: StopSignal) -> None:
        if not self.host.ops.tree_alive(spawned):
            return   # the stop_command did it
        self.host.ops.signal_tree(spawned, stop_signal.number)
        if stop_signal is StopSignal.KILL:
            return
        timeout = self.config.stop_timeout
        if not self._wait_tree_gone(spawned, timeout):
            self._say(f"{self.name} did not stop within {timeout:g} s of SIG{stop_signal}; "
                      "sending SIGKILL", "warning")
            self.host.ops.signal_tree(spawned, signal.SIGKILL)

    def _wait_tree_gone(self, spawned: Spawned, timeout: float) -> bool:
        """The whole tree, not just `sh`: its children may ignore SIGTERM, and some may
        have left its process group (`setsid`). Looked at soon after the signal, then
        less often: most services are gone within a few milliseconds, and a fixed 50 ms
        step was most of what `promenade stop SERVICE` took."""
        deadline = self.clock.monotonic() + timeout
        step = 0.002
        while self.host.ops.tree_alive(spawned):
            if self.clock.monotonic() >= deadline:
                return False
            self.clock.sleep(step)
            step = min(step * 2, 0.05)
        return True

    def restart(self) -> None:
        self.stop()
        self.start()

    def reconfigure(self, config: ServiceConfig, restart: bool) -> None:
        """Take a reloaded config: a restart for what the process sees, else in place.

        A service the user had stopped stays stopped; it runs the new config when
        started again.
        """
        old = self.config
        if restart:
            was_up = self.status not in STARTABLE
            self.stop()
            self.config = config
            if was_up:
                self.start()
            return
        self.config = config
        if old.ready_check != config.ready_check and self.status == Status.RUNNING:
            self._stop_readiness()
            self._set_health(Health.WAITING if config.ready_check else Health.UNKNOWN,
                             publish=False)
            self._start_readiness()
        self._notify()
        self.host.on_updated(self, old)
        self.host.on_change(self)

    def close(self) -> None:
        """Forget the service for good (after stop): end its command worker."""
        self._worker.kill(block=False)

    # -- the lifecycle greenlet --------------------------------------------------

    def _live(self) -> None:
        try:
            if not self._wait_dependencies():
                return
            while True:
                decision = self._run_once()
                if decision.retry_in is None:
                    break
                self._set(Status.RETRYING, self.reason)
                self.clock.sleep(decision.retry_in)
                self.restart_count += 1
                self._retries_done += 1
        except Exception as exc:  # a bug: still never leave the service wedged
            self._say(f"{self.name} failed: internal error: {exc!r}", "error")
            settled = next((s for s in (Status.FAILED, Status.STOPPED)
                            if s in TRANSITIONS[self.status]), None)
            if settled is not None:
                self._set(settled)
        finally:
            if gevent.getcurrent() is self._lifecycle:
                self._lifecycle = None

    def _wait_dependencies(self) -> bool:
        """Wait until every dependency meets its condition; False (and `failed`, with
        the reason) when one never can. All share one `dependency_timeout`: after it,
        a list-form dependency is started anyway, as always; a written condition is not
        (the service fails, naming it)."""
        timeout = self.host.dependency_timeout()
        deadline = self.clock.monotonic() + timeout
        announced: set[str] = set()
        while True:
            verdicts = {name: self._judge(name) for name in self.config.depends_on}
            never = next((v for v in verdicts.values() if v.need is Need.NEVER), None)
            if never is not None:
                self._say(f"{self.name} not started: {never.detail}", "error")
                self._set(Status.FAILED, never.detail)
                return False
            waiting = {n: v for n, v in verdicts.items() if v.need is Need.WAIT}
            if not waiting:
                return True
            for name in waiting.keys() - announced:
                self._say(f"{self.name} waiting for {waiting[name].detail}")
            announced |= waiting.keys()
            self.set_reason(waiting_reason([v.detail for v in waiting.values()]))
            left = deadline - self.clock.monotonic()
            if left <= 0:
                return self._dependency_timeout(timeout, waiting)
            self.clock.wait_any([self.host.service(n).changed for n in waiting], left)

    def _dependency_timeout(self, timeout: float, waiting: dict[str, Verdict]) -> bool:
        strict = [n for n in waiting if self.config.condition(n) is not None]
        if strict:
            why = f"{strict[0]} is not {waiting[strict[0]].label} after {timeout:g} s"
            self._say(f"{self.name} not started: {why}", "error")
            self._set(Status.FAILED, why)
            return False
        for name, verdict in waiting.items():
            self._say(f"{self.name}: {name} is not {verdict.label} after {timeout:g} s; "
                      "starting anyway", "warning")
        return True

    def _fail_to_start(self, reason: str) -> policy.ExitDecision:
        self.host.on_lines(self, "stderr", [f"promenade: {reason}"])
        self._say(f"{self.name} could not start: {reason}", "error")
        decision = policy.decide_exit(self.config.restart_policy, -1, False,
                                      self._failures, self._retries_done, 0.0)
        return self._apply_exit(None, decision, f"could not start: {reason}")

    def _run_once(self) -> policy.ExitDecision:
        if self.config.port_auto:   # picked first, so the `starting` event shows it
            self._auto_port = self.host.auto_port(self, self._auto_port)
        self._set(Status.STARTING)
        if self.config.port_auto and self._auto_port is None:
            return self._fail_to_start("no free loopback port found for port: auto")
        port = self.port
        if port is not None and ports.port_in_use(port):
            return self._fail_to_start(ports.describe_port_in_use(port))
        try:
            spawned = self.host.ops.spawn(
                self.config.command, self.config.directory, self.host.environment(self),
                self.config.tty,
            )
        except (PromenadeError, OSError, ValueError) as exc:
            # OSError: out of descriptors, EACCES…; ValueError: a NUL byte for execve.
            # Left to escape, they killed this greenlet and wedged the service in
            # `starting`, deaf to start and to its restart policy.
            return self._fail_to_start(spawn_failure(self.config.command, exc))
        self._begin(spawned)
        code = spawned.wait()
        now = self.clock.time()
        ran_for = now - (self.started_at or now)
        self._end(spawned, code)
        return self._after_exit(code, ran_for)

    def _begin(self, spawned: Spawned) -> None:
        self._spawned = spawned
        self._exited.clear()
        self._stop_requested = False
        self._will_retry = False
        self._was_healthy = False
        self.completed = False
        self.host.track_group(spawned.pid, True)
        self.pid = spawned.pid
        self.started_at = self.clock.time()
        spawned.readers = [
            gevent.spawn(self._read, spawned.stdout, "stdout"),
            gevent.spawn(self._read, spawned.stderr, "stderr"),
        ]
        # published with the status change just below
        self._set_health(Health.WAITING if self.config.ready_check else Health.UNKNOWN,
                         publish=False)
        self._set(Status.RUNNING)
        auto = f", port {self.port} (auto)" if self.config.port_auto else ""
        self._say(f"{self.name} started (pid {spawned.pid}{auto})")
        self._say(_spawn_details(self.name, self.config, spawned), "debug")
        self._start_readiness()
        self.host.on_started(self)

    def _end(self, spawned: Spawned, code: int) -> None:
        """After the main process exits: stragglers in its group go, output is drained."""
        self._exited.set()
        self._stop_readiness()
        if self._stop_requested:
            # stop() is giving the rest of the tree its grace, then SIGKILL: release
            # (which ends the cgroup) only after that.
            grace = self.config.stop_timeout * (2 if self.config.stop_command else 1)
            self._wait_tree_gone(spawned, grace + STRAGGLER_GRACE)
        elif self.host.ops.tree_alive(spawned):
            self.host.ops.signal_tree(spawned, signal.SIGTERM)
            if not self._wait_tree_gone(spawned, STRAGGLER_GRACE):
                self.host.ops.signal_tree(spawned, signal.SIGKILL)
        readers = spawned.readers
        gevent.joinall(readers, timeout=2.0)
        gevent.killall(readers, block=False)
        spawned.close()
        self.host.ops.release(spawned)
        self.host.track_group(spawned.pid, False)
        self._spawned = None
        self.pid = None   # so a later `starting` never shows this run's pid
        self.last_exit_code = code
        # published with the status change that follows (`_apply_exit`)
        self._set_health(Health.UNKNOWN, publish=False)
        self.host.on_stopped(self)

    def _after_exit(self, code: int, ran_for: float) -> policy.ExitDecision:
        """Apply the restart policy's decision; every case is decided in `policy`."""
        decision = policy.decide_exit(
            self.config.restart_policy, code, self._stop_requested,
            self._failures, self._retries_done, ran_for,
        )
        return self._apply_exit(code, decision)

    def _apply_exit(self, code: int | None, decision: policy.ExitDecision,
                    how: str | None = None) -> policy.ExitDecision:
        """Do what `decision` says: the state it leads to (with its reason), and what
        the user is told. `code` is None when the process never started (`how` then
        says why)."""
        self._failures = decision.failures
        self.completed = code == 0 and decision.kind is not policy.ExitKind.REQUESTED
        # known before the status changes, so a dependant never judges a failure that
        # will be retried as final
        self._will_retry = decision.retry_in is not None
        if decision.kind is policy.ExitKind.REQUESTED:
            self._set(decision.status, STOPPED_ON_REQUEST)
            self._say(f"{self.name} stopped")
            return decision
        if decision.kind is policy.ExitKind.CLEAN:
            self._set(decision.status, COMPLETED)
            self._say(f"{self.name} exited with code 0")
            return decision
        message, level = exit_message(_exit_words(code), decision, self._retries_done)
        reason = exit_message(how, decision, self._retries_done)[0] if how else message
        self._set(decision.status, reason)
        self._say(f"{self.name} {message}", level)
        if decision.gave_up:
            self._set(Status.GAVE_UP, reason)
        return decision

    # -- output and health ------------------------------------------------------

    @property
    def port(self) -> int | None:
        """The port of the current run, the one source for everything that follows the
        service (PORT, its ready_check, its CORS proxy, its URL, later the router):
        `port:` as written, or for `port: auto` the one picked at its latest start
        (kept after it stops; None before its first start)."""
        return self._auto_port if self.config.port_auto else self.config.port

    def set_health(self, value: Health) -> None:
        """For the ready_check (readiness.Checked)."""
        self._set_health(value)

    def say(self, message: str, level: Level = "info") -> None:
        self._say(message, level)

    def check_environment(self) -> dict[str, str]:
        """The environment the service's process gets (an exec check runs in it)."""
        return self.host.environment(self)

    def own_child(self, pid: int, alive: bool) -> None:
        """An exec check's command started or ended (`ProcessOps.own_child`)."""
        self.host.ops.own_child(pid, alive)

    def restart_unhealthy(self, reason: str) -> None:
        """The ready_check's `restart_after_failures`: a restart that counts in
        restart_count, queued like any command so it never races a stop."""
        def act() -> None:
            if self.status != Status.RUNNING:
                return   # stopped or restarted meanwhile: nothing to do
            self._say(f"{self.name} restarted ({reason})", "warning")
            self.stop()
            self.restart_count += 1
            self.start()

        self.submit(act)

    def stdin(self) -> tuple[int, bool] | None:
        """The manager's end of the running process's stdin, and whether it is the
        service's pty (`attach`); None while no process runs. Valid until the next
        switch of greenlets: look it up again after any wait."""
        spawned = self._spawned
        if spawned is None or spawned.stdin < 0:
            return None
        return spawned.stdin, spawned.stdin == spawned.stdout

    def _start_readiness(self) -> None:
        if self.config.ready_check is not None:
            self._readiness = Readiness(self, self.config.ready_check)
            self._readiness.start()

    def _stop_readiness(self) -> None:
        if self._readiness is not None:
            self._readiness.stop()
            self._readiness = None

    def _output(self, stream: str, lines: list[str]) -> None:
        """One batch of the service's own output: to the supervisor, and to a check
        that reads output."""
        self.host.on_lines(self, stream, lines)
        if self._readiness is not None:
            self._readiness.lines(lines)

    def _read(self, fd: int, stream: str) -> None:
        """Read a stream until EOF; each read becomes one batch of lines.

        A read that leaves a partial line waits up to PROMPT_IDLE for more; when none
        comes, the partial line is emitted as a line of its own (a prompt such as
        `(Pdb) ` reaches the viewers), and whatever completes it later is a line of its
        own too. Fast output never waits that long between reads, so it is not cut.
        """
        splitter = LineSplitter()
        grown = False
        while True:
            try:
                wait_read(fd, PROMPT_IDLE if splitter.pending else None, _PromptIdle)
                data = os.read(fd, READ_SIZE)
            except _PromptIdle:
                self._output(stream, splitter.flush())
                continue
            except BlockingIOError:
                continue
            except OSError:  # EIO: the pty's other side is closed
                break
            if not data:
                break
            if len(data) < READ_SIZE:
                data = _read_more(fd, data)
            elif not grown:
                osproc.grow_pipe(fd)
                grown = True
            self.host.on_raw(self, stream, data)
            lines = splitter.feed(data)
            if lines:
                self._output(stream, lines)
        rest = splitter.flush()
        if rest:
            self._output(stream, rest)


class _PromptIdle(Exception):
    """No more output came within PROMPT_IDLE after a partial line."""


def _read_more(fd: int, data: bytes) -> bytes:
    """Take what else is already waiting, up to READ_SIZE, into the same batch.

    A pty hands out a flood in pieces of a few KiB; one batch per piece would multiply
    the per-batch costs (JSON, publish, terminal) several times over.
    """
    chunks = [data]
    size = len(data)
    while size < READ_SIZE:
        try:
            more = os.read(fd, READ_SIZE - size)
        except OSError:  # EAGAIN: nothing more now; EIO: seen again at the next read
            break
        if not more:
            break
        chunks.append(more)
        size += len(more)
    return b"".join(chunks) if len(chunks) > 1 else data


def _spawn_details(name: str, config: ServiceConfig, spawned: Spawned) -> str:
    """What `-v` shows of a spawn: what ran (inline secrets masked), where, and how its
    output is read. The cgroup-joining wrapper is named by its cgroup, not its script."""
    output = "pty" if _isatty(spawned.stdout) else "pipes"
    argv = ["/bin/sh", "-c", mask_command(config.command)]
    try:
        pgid: int | str = os.getpgid(spawned.pid)
    except OSError:  # already gone
        pgid = "?"
    where = f", cgroup {spawned.cgroup}" if spawned.cgroup is not None else ""
    return (f"{name} spawned: argv {argv!r}, cwd {config.directory}, pid {spawned.pid}, "
            f"pgid {pgid}{where}, output on {output}")


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def spawn_failure(command: str, exc: Exception) -> str:
    """Why a spawn failed, in the words of `ProcessOps.spawn`'s own errors."""
    if isinstance(exc, PromenadeError):
        return str(exc)
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"spawning {command!r} failed: {detail}"


def exit_message(how: str, decision: policy.ExitDecision,
                 retries: int) -> tuple[str, Level]:
    """`exited with code 3; gave up after 1 retry`: the failure and what follows it,
    as told to the user and kept as the status reason."""
    if decision.retry_in is not None:
        return f"{how}; retrying in {decision.retry_in:g} s", "warning"
    if decision.gave_up:
        return f"{how}; gave up after {retries} {'retry' if retries == 1 else 'retries'}", \
            "error"
    return how, "error"


def _exit_words(code: int | None) -> str:
    if code is None:
        return "failed to start"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
