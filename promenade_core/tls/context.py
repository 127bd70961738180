"""`server_context(store)`: one TLS listening socket that serves every local name.

The client's SNI picks the certificate: the callback gets (or mints) the leaf for that
name and switches the connection to a per-name `SSLContext`, cached, so a name costs one
mint and one `load_cert_chain` for the life of the process. A client that sends no SNI
(an IP address in the URL; browsers and curl always send it for a name) gets the leaf
for `default_name` (`localhost`). A name this CA must not sign, or one `accept` turns
down (the router: a name no manager registered), fails the handshake with the TLS alert
`unrecognized_name`, and `on_refused` is told why, so the failure can be logged clearly
instead of surfacing only as a client's "handshake failure".
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable

from promenade_core.errors import PromenadeError
from promenade_core.tls.leaf import LeafStore
from promenade_core.tls.names import DEFAULT_NAME, normalise

Accept = Callable[[str], bool]
OnRefused = Callable[[str, str], None]


def _ignore(_name: str, _reason: str) -> None:
    return None


def _base_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])  # the router speaks HTTP/1.1 (h11)
    return context


class SniContexts:
    """The per-name contexts, made on first use; safe from threads and greenlets."""

    def __init__(self, store: LeafStore, accept: Accept | None = None,
                 on_refused: OnRefused = _ignore) -> None:
        self.store = store
        self.accept = accept
        self.on_refused = on_refused
        self._lock = threading.Lock()
        self._contexts: dict[str, tuple[ssl.SSLContext, object]] = {}

    def for_name(self, name: str) -> ssl.SSLContext:
        """The context holding `name`'s leaf; PromenadeError when it cannot have one."""
        clean = self.store.check(name)
        if self.accept is not None and not self.accept(clean):
            raise PromenadeError(f"{clean!r} is not a name served here")
        leaf = self.store.get(clean)  # cheap when cached; re-minted when due
        with self._lock:
            cached = self._contexts.get(clean)
            if cached is not None and cached[1] is leaf:
                return cached[0]
            context = _base_context()
            context.load_cert_chain(leaf.path)
            self._contexts[clean] = (context, leaf)
            return context

    def callback(self, conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                 _initial: ssl.SSLContext) -> int | None:
        """The `sni_callback`: None to go on, an alert number to fail the handshake."""
        name = normalise(server_name) if server_name else DEFAULT_NAME
        try:
            conn.context = self.for_name(name)
        except (PromenadeError, OSError, ssl.SSLError) as exc:
            self.on_refused(name, str(exc))
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        return None


def server_context(store: LeafStore, default_name: str = DEFAULT_NAME,
                   accept: Accept | None = None,
                   on_refused: OnRefused = _ignore) -> ssl.SSLContext:
    """A server context whose SNI callback serves each name its own leaf.

    The outer context holds `default_name`'s leaf too, for clients that never reach the
    callback with a name. Wrap a listening socket with it (`wrap_socket(...,
    server_side=True)`), or hand it to gevent's `StreamServer(ssl_context=...)`."""
    contexts = SniContexts(store, accept, on_refused)
    context = _base_context()
    context.load_cert_chain(store.get(default_name).path)
    context.sni_callback = contexts.callback
    return context
