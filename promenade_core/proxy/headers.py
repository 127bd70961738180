"""The CORS proxy's decisions about headers: who may call, what goes upstream, what comes
back. Pure functions over h11-style header lists, so every rule is tested without a socket.

Why the proxy echoes the Origin instead of sending `*`: a browser rejects `*` on a request
made with credentials (cookies), and the point of the proxy is that a page on one local
port can call a service on another exactly as it would in production, cookies included.
Echoing is only safe because the Origin was checked first (local origins only, as for the
dashboard), which is why `Vary: Origin` always goes with it.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from promenade_core.origins import is_local_host_header, is_local_origin

Header = tuple[bytes, bytes]

# RFC 9110 7.6.1: meaningful for one connection only, never forwarded as they are.
HOP_BY_HOP = frozenset(
    {b"connection", b"proxy-connection", b"keep-alive", b"te", b"transfer-encoding", b"upgrade"}
)
# A `Connection: content-length` from a client must not strip the framing h11 relies on.
NEVER_STRIPPED = frozenset({b"content-length", b"transfer-encoding", b"host"})
# Readable by a page without being exposed (Fetch standard, CORS-safelisted response headers).
SAFELISTED_RESPONSE = frozenset(
    {
        b"cache-control",
        b"content-language",
        b"content-length",
        b"content-type",
        b"expires",
        b"last-modified",
        b"pragma",
        b"set-cookie",  # forbidden to pages anyway
    }
)
COMMON_METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS")
PREFLIGHT_MAX_AGE = b"600"


@dataclass(frozen=True)
class Refusal:
    """A request the proxy answers itself instead of forwarding."""

    status: int
    code: str
    message: str
    #: The connection cannot carry another request after this answer.
    close: bool = False

    def body(self) -> bytes:
        return json_error(self.code, self.message)


@dataclass(frozen=True)
class Page:
    """A whole response the relay gives itself, not from a service (the router's pages)."""

    status: int
    content_type: bytes
    body: bytes
    headers: tuple[Header, ...] = ()


def json_error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def normalize_origins(origins: Iterable[str]) -> tuple[str, ...]:
    """Config spellings (`http://App.test:3000/`) in the form browsers send."""
    return tuple(o if o == "*" else o.strip().rstrip("/").lower() for o in origins)


class _LazyNames:
    """The mapped hostnames (configured ones that lead to loopback now, see
    promenade_core.hosts.mapped_names) and any extra, asked for only when a name is not
    plainly local."""

    def __init__(self, source: Callable[[], Iterable[str]], extra: Iterable[str] = ()) -> None:
        self._source = source
        self._extra = extra

    def __iter__(self) -> Iterator[str]:
        yield from self._source()
        yield from self._extra


@dataclass(frozen=True)
class ProxyPolicy:
    """Everything a request is judged by; replaced whole on reconfigure, read once per request."""

    service: str
    upstream_host: str
    upstream_port: int
    allow_origins: tuple[str, ...]
    managed_hostnames: Callable[[], Iterable[str]]
    check_host: bool
    #: The router's relay: the first hop from the browser, over HTTPS; client-sent
    #: X-Forwarded-* are replaced rather than trusted, and the proto is https.
    edge: bool = False
    #: Apply the CORS policy (the CORS proxy always does; the router only for a route of
    #: a `cors_proxy` service). Without it the relay is transparent: no preflight
    #: answers, the service's own CORS headers pass untouched.
    cors: bool = True
    #: How to tell the client that the service did not answer (the router's page, with
    #: the request's Accept header); None: the JSON `Refusal` body.
    lost_page: Callable[[Refusal, bytes | None], Page] | None = None

    def origin_allowed(self, origin: str) -> bool:
        if "*" in self.allow_origins or origin.lower() in self.allow_origins:
            return True
        return is_local_origin(origin, _LazyNames(self.managed_hostnames))

    def host_allowed(self, host: str) -> bool:
        """The DNS-rebinding guard: the proxy answers to local names only.

        Names of the allowed origins count as local: a user who trusts
        `http://dev.example.test:3000` may well reach the proxy by that name too. With
        `*` any origin may read responses anyway, so the guard has nothing left to guard.
        """
        if not self.check_host or "*" in self.allow_origins:
            return True
        origin_hosts = (urlsplit(o).hostname or "" for o in self.allow_origins)
        return is_local_host_header(host, _LazyNames(self.managed_hostnames, origin_hosts))

    def refusal(self, method: bytes, headers: Sequence[Header]) -> Refusal | None:
        """Why this request is answered by the proxy with an error, or None to go on."""
        if method == b"CONNECT":
            return Refusal(405, "method_not_allowed", "the CORS proxy does not tunnel CONNECT")
        if has_header(headers, b"content-length") and has_header(headers, b"transfer-encoding"):
            # RFC 9112 6.1: ambiguous framing is how requests get smuggled past a proxy;
            # where this request ends is unknown, so the connection must close after it.
            return Refusal(400, "bad_request", "both Content-Length and Transfer-Encoding set",
                           close=True)
        host = header_value(headers, b"host")
        if host is not None and not self.host_allowed(host.decode("latin-1")):
            return Refusal(
                403,
                "host_refused",
                f"host {host.decode('latin-1')!r} is not a local name; the CORS proxy of "
                f"service {self.service!r} answers only local names (DNS-rebinding guard)",
            )
        origin = header_value(headers, b"origin") if self.cors else None
        if origin is not None and not self.origin_allowed(origin.decode("latin-1")):
            return Refusal(
                403,
                "origin_refused",
                f"origin {origin.decode('latin-1')!r} may not call service {self.service!r} "
                "through its CORS proxy: only local origins are allowed; add it to the "
                "service's cors_allow_origins to allow it",
            )
        return None

    @property
    def upstream_address(self) -> str:
        """`host:port` as in a URL (`[::1]:5001`): the default Host and error messages."""
        host = f"[{self.upstream_host}]" if ":" in self.upstream_host else self.upstream_host
        return f"{host}:{self.upstream_port}"

    def unavailable(self, reason: str) -> Refusal:
        return Refusal(
            502,
            "upstream_unavailable",
            f"service {self.service!r} is not answering on {self.upstream_address} ({reason})",
        )

    def bad_upstream(self, reason: str) -> Refusal:
        return Refusal(
            502,
            "upstream_protocol_error",
            f"service {self.service!r} sent an invalid HTTP response ({reason})",
        )


def is_loopback_host(host: str) -> bool:
    """Whether a listen address is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def header_value(headers: Sequence[Header], name: bytes) -> bytes | None:
    """The first value of a header; `name` lower-case."""
    for raw, value in headers:
        if raw.lower() == name:
            return value
    return None


def has_header(headers: Sequence[Header], name: bytes) -> bool:
    return header_value(headers, name) is not None


def connection_tokens(headers: Sequence[Header]) -> frozenset[bytes]:
    """Lower-case tokens of every Connection header."""
    tokens: set[bytes] = set()
    for raw, value in headers:
        if raw.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return frozenset(tokens)


def wants_upgrade(headers: Sequence[Header]) -> bool:
    return b"upgrade" in connection_tokens(headers) and has_header(headers, b"upgrade")


def is_preflight(method: bytes, headers: Sequence[Header]) -> bool:
    return (
        method == b"OPTIONS"
        and has_header(headers, b"origin")
        and has_header(headers, b"access-control-request-method")
    )


def _end_to_end(headers: Sequence[Header], keep_upgrade: bool) -> Iterator[Header]:
    tokens = connection_tokens(headers) - NEVER_STRIPPED
    for raw, value in headers:
        name = raw.lower()
        if (name == b"upgrade" and keep_upgrade) or (name not in HOP_BY_HOP and name not in tokens):
            yield raw, value


def end_to_end_headers(headers: Sequence[Header]) -> list[Header]:
    """Without the hop-by-hop ones (`100 Continue`, `103 Early Hints` pass like this)."""
    return list(_end_to_end(headers, keep_upgrade=False))


def upstream_request_headers(
    headers: Sequence[Header], client_ip: str, upstream: str, edge: bool = False
) -> list[Header]:
    """The client's headers as the service should see them.

    The Host stays the one the browser used (dev servers build absolute URLs from it);
    X-Forwarded-For is appended to, Proto and Host are set by us. At the `edge` (the
    router, reached over HTTPS straight from the browser) a client-sent X-Forwarded-For
    is a lie nobody vouches for: it is replaced, and the proto is https.
    """
    upgrade = wants_upgrade(headers)
    out: list[Header] = []
    forwarded_for: list[bytes] = []
    host: bytes | None = None
    for raw, value in _end_to_end(headers, keep_upgrade=upgrade):
        name = raw.lower()
        if name == b"x-forwarded-for":
            if not edge:
                forwarded_for.append(value)
        elif name in (b"x-forwarded-proto", b"x-forwarded-host"):
            continue
        else:
            if name == b"host":
                host = value
            out.append((raw, value))
    chunked = header_value(headers, b"transfer-encoding")
    if chunked is not None:
        out.append((b"Transfer-Encoding", chunked))  # h11 frames the body by it
    if upgrade:
        out.append((b"Connection", b"Upgrade"))
    if host is None:
        host = upstream.encode()
        out.append((b"Host", host))
    forwarded_for.append(client_ip.encode())
    out.append((b"X-Forwarded-For", b", ".join(forwarded_for)))
    out.append((b"X-Forwarded-Proto", b"https" if edge else b"http"))
    out.append((b"X-Forwarded-Host", host))
    return out


def _merged_vary(values: list[bytes]) -> bytes:
    tokens = [t.strip() for v in values for t in v.split(b",") if t.strip()]
    if b"*" in tokens:
        return b"*"
    if b"origin" not in {t.lower() for t in tokens}:
        tokens.append(b"Origin")
    return b", ".join(tokens)


def client_response_headers(
    headers: Sequence[Header], origin: bytes | None, switching: bool = False
) -> list[Header]:
    """The service's response headers with its CORS headers replaced by ours.

    Every header the service sent is exposed to the page by name (`*` does not work with
    credentials). Framing headers are dropped: h11 chooses the framing towards the client.
    """
    out: list[Header] = []
    vary: list[bytes] = []
    exposed: dict[bytes, bytes] = {}
    chunked = has_header(headers, b"transfer-encoding")
    for raw, value in _end_to_end(headers, keep_upgrade=switching):
        name = raw.lower()
        if name.startswith(b"access-control-") or (chunked and name == b"content-length"):
            continue
        if name == b"vary":
            vary.append(value)
            continue
        if name not in SAFELISTED_RESPONSE:
            exposed.setdefault(name, raw)
        out.append((raw, value))
    if switching:
        out.append((b"Connection", b"Upgrade"))
    out.append((b"Vary", _merged_vary(vary)))
    if origin is not None:
        out.extend(cors_headers(origin))
        if exposed:
            out.append((b"Access-Control-Expose-Headers", b", ".join(exposed.values())))
    return out


def passthrough_response_headers(headers: Sequence[Header], switching: bool = False
                                 ) -> list[Header]:
    """The service's response headers as they are, CORS included, minus the hop-by-hop
    ones and a Content-Length that a chunked body makes meaningless (h11 frames)."""
    chunked = has_header(headers, b"transfer-encoding")
    out = [(raw, value) for raw, value in _end_to_end(headers, keep_upgrade=switching)
           if not (chunked and raw.lower() == b"content-length")]
    if switching:
        out.append((b"Connection", b"Upgrade"))
    return out


def cors_headers(origin: bytes) -> list[Header]:
    """What lets a page on `origin` read a response, with or without credentials."""
    return [
        (b"Access-Control-Allow-Origin", origin),
        (b"Access-Control-Allow-Credentials", b"true"),
    ]


def preflight_headers(headers: Sequence[Header]) -> list[Header]:
    """The proxy's own answer to a preflight: allow what the page asked for."""
    origin = header_value(headers, b"origin") or b""
    requested = (header_value(headers, b"access-control-request-method") or b"").strip()
    methods = [requested] if requested else []
    methods += [m for m in COMMON_METHODS if m != requested]
    out = [
        *cors_headers(origin),
        (b"Access-Control-Allow-Methods", b", ".join(methods)),
        (b"Access-Control-Max-Age", PREFLIGHT_MAX_AGE),
        (
            b"Vary",
            b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    ]
    asked_headers = header_value(headers, b"access-control-request-headers")
    if asked_headers:
        out.append((b"Access-Control-Allow-Headers", asked_headers))
    if (header_value(headers, b"access-control-request-private-network") or b"") == b"true":
        out.append((b"Access-Control-Allow-Private-Network", b"true"))
    return out
