"""The socket side: who is calling (SO_PEERCRED), what they may do, and leases.

A closed set of ops, each decoded and checked before anything is touched. Every change
happens under one lock: read the file afresh, check, render, write; so a refusal writes
nothing and concurrent clients never interleave. `listen` binds loopback 443 or 80 for
the router (only root may bind below 1024) and passes the socket with the reply.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import itertools
import json
import os
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple

from promenade_hostsd import hostsfile
from promenade_hostsd.hostnames import entry_problem
from promenade_hostsd.hostsfile import SERVICE_RE, Entry
from promenade_hostsd.state import Owned, StateDir, folder_problem

MAX_REQUEST = 4096
MAX_ENTRIES_PER_USER = 256
MAX_CONNECTIONS_PER_USER = 64
FIELDS = {"add": {"op", "service", "hostname", "persist", "address"}, "list": {"op"},
          "remove": {"op", "service", "persist"}, "clear": {"op", "persist"}, "ping": {"op"},
          "listen": {"op", "port", "address"}}
LISTEN_PORTS, LISTEN_ADDRESSES = (443, 80), ("127.0.0.1", "::1")


class Refused(Exception):
    """Refused(code, message): a clear no, with nothing written."""


class Peer(NamedTuple):
    pid: int | None  # None where the kernel does not say (getpeereid)
    uid: int


def peer_of(conn: socket.socket) -> Peer:
    """The kernel's word on who connected, never anything the client says."""
    if hasattr(socket, "SO_PEERCRED"):
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", creds)
        return Peer(pid, uid)
    import ctypes.util  # macOS and the BSDs: getpeereid(2)
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    uid, gid = ctypes.c_uint32(), ctypes.c_uint32()
    if libc.getpeereid(conn.fileno(), ctypes.byref(uid), ctypes.byref(gid)) != 0:
        raise OSError(ctypes.get_errno(), "getpeereid failed")
    return Peer(None, int(uid.value))


def listen_target(req: dict[str, Any]) -> tuple[str, int]:
    """The (address, port) a `listen` asks for: loopback 443 or 80, nothing else."""
    address, port = req.get("address", "127.0.0.1"), req.get("port")
    if type(port) is not int or port not in LISTEN_PORTS:
        raise Refused("invalid_port", f"port {port!r} is not 443 or 80: hostsd binds no other")
    if address not in LISTEN_ADDRESSES:
        raise Refused("invalid_address", f"address {address!r} is not 127.0.0.1 or ::1")
    return address, port


def listen(path: str, group: str, log: Callable[[str], None]) -> socket.socket:
    """Bind without ever being world-reachable; refuse to steal a live hostsd's socket."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o755, exist_ok=True)
    if os.path.lexists(path):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(path) == 0:
                raise SystemExit(f"another promenade-hostsd is listening on {path}")
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old_umask)
    try:
        os.chown(path, -1, grp.getgrnam(group).gr_gid)  # KeyError: no such group, or ''
        os.chmod(path, 0o660)
        log(f"listening on {path} (mode 0660, group {group!r})")
    except KeyError:
        log(f"group {group!r} not found: {path} is root-only (mode 0600); "
            "`sudo promenade hosts install` creates it and lets users in")
    listener.listen(64)
    return listener


class Hostsd:
    def __init__(self, hosts_file: str, state: StateDir, timeout: float,
                 log: Callable[[str], None]) -> None:
        self.hosts_file, self.state, self.timeout, self.log = hosts_file, state, timeout, log
        self.lock = threading.Lock()
        self.owned: list[Owned] = []
        self.held: dict[tuple[str, int], tuple[socket.socket, int | None, Peer]] = {}
        self.connections: Counter[int] = Counter()
        self.ids = itertools.count(1)
        self.stopping = False

    def _read(self) -> tuple[bytes, bytes, list[Entry]]:
        with open(self.hosts_file, "rb") as f:
            data = f.read()
        return (data, *hostsfile.parse(data))

    def _commit(self, data: bytes, unmanaged: bytes, owned: list[Owned]) -> None:
        """Write the file, then the state; `self.owned` changes only once both are done."""
        rendered = hostsfile.render(unmanaged, [o.entry for o in owned])
        if rendered != data:
            self.state.backup(data)
            hostsfile.write(self.hosts_file, rendered)
        if [o for o in owned if o.lease is None] != [o for o in self.owned if o.lease is None]:
            self.state.save(owned)
        self.owned = owned

    def start(self) -> None:
        """Keep persisted entries still in the file; drop every lease of an earlier run.

        Refused (SystemExit) when others could write in the hosts file's folder, where the
        temp file of every write goes."""
        if problem := folder_problem(os.path.dirname(os.path.realpath(self.hosts_file))):
            raise SystemExit(f"unsafe --hosts-file: {problem}")
        with self.lock:
            data, unmanaged, found = self._read()
            present = {(e.hostname, e.service) for e in found}
            self.owned = persisted = self.state.load()
            kept = [o for o in persisted if (o.entry.hostname, o.entry.service) in present]
            self._commit(data, unmanaged, kept)
            self.log(f"started on {self.hosts_file}: {len(kept)} persisted entries kept, "
                     f"{len(found) - len(kept)} stale entries removed")

    def drop_lease(self, lease: int | None) -> None:
        """A connection closed (or we are stopping: lease None drops every lease). Its
        sockets are shut down, which stops them listening in every process holding a copy
        (one open file description): a leaked copy keeps no port. Stopping, like SIGKILL,
        only closes our copies."""
        with self.lock:
            self.stopping = self.stopping or lease is None
            for key in [k for k, (_, by, _) in self.held.items() if lease in (None, by)]:
                sock = self.held.pop(key)[0]
                if lease is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                self.log(f"lease {lease or 'all'} ended: released {key[0]} port {key[1]}")
            kept = [o for o in self.owned if o.lease is None or (lease and o.lease != lease)]
            if len(kept) != len(self.owned):
                gone = [o.entry.hostname for o in self.owned if o not in kept]
                try:
                    self._commit(*self._read()[:2], kept)
                    self.log(f"lease {lease or 'all'} ended: removed {', '.join(gone)}")
                except OSError as exc:
                    self.log(f"could not remove {', '.join(gone)}: {exc}")

    def dispatch(self, peer: Peer, conn_id: int, line: bytes) -> dict[str, Any]:
        try:
            try:
                req = json.loads(line)
            except (ValueError, RecursionError) as exc:  # [[[[… nests past the limit
                raise Refused("bad_request", f"malformed JSON: {exc}") from None
            if not isinstance(req, dict):
                raise Refused("bad_request", "a request is a JSON object with an 'op'")
            op = req.get("op")
            if not isinstance(op, str) or op not in FIELDS:
                raise Refused("unknown_op", f"unknown op {op!r}; use one of {', '.join(FIELDS)}")
            if extra := sorted(set(req) - FIELDS[op]):
                raise Refused("bad_request", f"unknown field(s) {extra} for op {op!r}")
            if not isinstance(persist := req.get("persist", False), bool):
                raise Refused("bad_request", f"'persist' must be true or false, not {persist!r}")
            handler = getattr(self, f"op_{op}")
            return {"ok": True, **handler(peer, None if persist else conn_id, req)}
        except Refused as exc:
            return {"ok": False, "error": {"code": exc.args[0], "message": exc.args[1]}}
        except OSError as exc:
            self.log(f"uid {peer.uid}: {self.hosts_file}: {exc}")
            message = f"could not update {self.hosts_file}: {exc.strerror or exc}"
            return {"ok": False, "error": {"code": "io_error", "message": message}}

    @staticmethod
    def _service(req: dict[str, Any]) -> str:
        service = req.get("service")
        if not isinstance(service, str) or not SERVICE_RE.fullmatch(service):
            raise Refused("invalid_service", f"service {service!r} must be 1-64 letters, "
                          "digits, '_' or '-'")
        return service

    def op_ping(self, peer: Peer, lease: int | None, req: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True, "uid": peer.uid, "version": 1}

    def op_list(self, peer: Peer, lease: int | None, req: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return {"entries": [{**o.entry.__dict__, "uid": o.uid, "persist": o.lease is None,
                                 "mine": o.uid == peer.uid} for o in self.owned]}

    def op_add(self, peer: Peer, lease: int | None, req: dict[str, Any]) -> dict[str, Any]:
        service, uid = self._service(req), peer.uid
        hostname, address = req.get("hostname"), req.get("address", "127.0.0.1")
        for code, problem in (("invalid_hostname", entry_problem(hostname)),
                              ("invalid_address", hostsfile.loopback_problem(address))):
            if problem:
                raise Refused(code, problem)
        entry = Entry(str(hostname).lower(), service, address)
        key = (uid, lease, service)
        with self.lock:
            if self.stopping:
                raise Refused("stopping", "promenade-hostsd is stopping")
            data, unmanaged, _ = self._read()
            if entry.hostname in hostsfile.unmanaged_names(unmanaged) | {
                    socket.gethostname().lower()}:
                raise Refused("reserved", f"hostname {hostname!r} is this machine's name or "
                              f"already in {self.hosts_file} outside promenade: pick another")
            for o in self.owned:
                if o.entry.hostname == entry.hostname and (o.uid, o.lease, o.entry.service) != key:
                    if o.uid != uid:
                        raise Refused("taken", f"hostname {hostname!r} is mapped by another user")
                    if o.lease is None and lease is not None:
                        return {"service": service, "hostname": entry.hostname, "persist": True}
                    raise Refused("taken", f"hostname {hostname!r} is already mapped by your "
                                  f"service {o.entry.service!r} (another project?)")
            new = Owned(entry, uid, lease)
            owned = [new if (o.uid, o.lease, o.entry.service) == key else o for o in self.owned]
            if new not in owned:
                if sum(o.uid == uid for o in owned) >= MAX_ENTRIES_PER_USER:
                    raise Refused("too_many", f"at most {MAX_ENTRIES_PER_USER} entries per user")
                owned.append(new)
            if owned != self.owned:
                self._commit(data, unmanaged, owned)
                self.log(f"uid {uid}: mapped {entry.hostname} -> {address} for {service!r} "
                         f"({'persisted' if lease is None else f'lease {lease}'})")
        return {"service": service, "hostname": entry.hostname, "persist": lease is None}

    def _remove(self, uid: int, lease: int | None, match: Callable[[Owned], bool]) -> list[str]:
        with self.lock:
            mine = [o for o in self.owned if o.uid == uid and o.lease == lease and match(o)]
            if mine:
                self._commit(*self._read()[:2], [o for o in self.owned if o not in mine])
                self.log(f"uid {uid}: removed {', '.join(o.entry.hostname for o in mine)}")
            return [o.entry.hostname for o in mine]

    def op_remove(self, peer: Peer, lease: int | None, req: dict[str, Any]) -> dict[str, Any]:
        service = self._service(req)
        return {"removed": self._remove(peer.uid, lease, lambda o: o.entry.service == service)}

    def op_clear(self, peer: Peer, lease: int | None, req: dict[str, Any]) -> dict[str, Any]:
        return {"removed": self._remove(peer.uid, lease, lambda o: True)}

    def op_listen(self, peer: Peer, lease: int | None, req: dict[str, Any]) -> dict[str, Any]:
        """One holder per address and port, named to the next by pid. create_server sets
        SO_REUSEADDR, IPV6_V6ONLY for ::1 (never dual-stack); close-on-exec is PEP 446's."""
        key = address, port = listen_target(req)
        with self.lock:
            if self.stopping:
                raise Refused("stopping", "promenade-hostsd is stopping")
            if key in self.held:
                holder = self.held[key][2]
                raise Refused("busy", f"{address} port {port} is held by pid {holder.pid} (uid "
                              f"{holder.uid}) until its connection to promenade-hostsd closes")
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            try:
                sock = socket.create_server(key, family=family, backlog=128)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise Refused("busy", f"{address} port {port} is in use by a program "
                                  "outside promenade-hostsd") from None
                raise Refused("unavailable", f"cannot listen on {address} port {port}: "
                              f"{exc.strerror or exc}") from None
            self.held[key] = (sock, lease, peer)
            self.log(f"uid {peer.uid} (pid {peer.pid}): listening on {address} port {port}")
        return {"address": address, "port": port, "fds": [sock.fileno()]}

    def serve(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError as exc:  # out of file descriptors, say: wait, never die
                self.log(f"accept failed: {exc}")
                time.sleep(0.5)
                continue
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        """One connection, one lease."""
        with conn, contextlib.suppress(OSError):
            peer, conn_id = peer_of(conn), next(self.ids)
            with self.lock:
                self.connections[peer.uid] += 1
                crowded = self.connections[peer.uid] > MAX_CONNECTIONS_PER_USER
            try:
                if crowded:
                    _reply(conn, "too_many", f"at most {MAX_CONNECTIONS_PER_USER} connections")
                else:
                    self._converse(conn, peer, conn_id)
            finally:
                with self.lock:
                    self.connections[peer.uid] -= 1
                self.drop_lease(conn_id)

    def _converse(self, conn: socket.socket, peer: Peer, conn_id: int) -> None:
        """Each request must be complete within `timeout`, counted from the connect for
        the first and from its first byte for later ones: dripping a byte a second cannot
        hold a thread. Between requests a lease may stay quiet for days (connections per
        user are capped instead)."""
        deadline: float | None = time.monotonic() + self.timeout
        buffer = b""
        while True:
            line, newline, rest = buffer.partition(b"\n")
            if len(line) > MAX_REQUEST:
                return _reply(conn, "too_large", f"over {MAX_REQUEST} bytes")
            if newline:
                buffer, deadline = rest, None
                reply = self.dispatch(peer, conn_id, line)  # `fds`: sent with it, SCM_RIGHTS
                fds, data = reply.pop("fds", []), json.dumps(reply).encode() + b"\n"
                conn.sendall(data[socket.send_fds(conn, [data], fds) if fds else 0:])
                continue
            if deadline is None and buffer:
                deadline = time.monotonic() + self.timeout
            try:  # settimeout(0) would mean non-blocking: keep a tiny positive floor
                conn.settimeout(None if deadline is None else
                                max(deadline - time.monotonic(), 0.001))
                chunk = conn.recv(8192)
            except TimeoutError:
                return _reply(conn, "timeout", f"no complete request within {self.timeout:g} s")
            if not chunk:
                return None  # closed, maybe halfway through a request
            buffer += chunk


def _reply(conn: socket.socket, code: str, message: str) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps({"ok": False, "error": {"code": code, "message": message}})
                     .encode() + b"\n")
