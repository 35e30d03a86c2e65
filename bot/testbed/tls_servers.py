"""Loopback TLS servers with chosen misbehaviour, for the demo, benchmarks and tests.

Each endpoint listens on 127.0.0.1 and a free port. Its behaviour is read on every new
connection, so a test (or the host simulator) can break and repair an endpoint while it runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import ssl
import struct
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Self

from bot.testbed.pki import Leaf


class Behaviour(StrEnum):
    OK = "ok"
    RESET_IN_HANDSHAKE = "reset_in_handshake"  # reads the ClientHello, then RST (SO_LINGER 0)
    CLOSE_IN_HANDSHAKE = "close_in_handshake"  # reads the ClientHello, then an orderly close
    SILENT = "silent"  # accepts and never says a word
    PLAIN_HTTP = "plain_http"  # a plain HTTP server on the TLS port
    ALERT = "alert"  # refuses the handshake with a handshake_failure alert
    SILENT_AFTER_HANDSHAKE = "silent_after_handshake"  # TLS works, HTTP never answers


@dataclass
class Request:
    method: str
    path: str
    host: str | None
    sni: str | None


@dataclass
class Endpoint:
    leaf: Leaf
    behaviour: Behaviour = Behaviour.OK
    status: int = 200
    head_status: int | None = None  # e.g. 405 to refuse HEAD
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"<html><body>certops test page</body></html>"
    sni_leaves: dict[str, Leaf] = field(default_factory=dict)  # per-SNI certificates
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    # called before each connection is served, so a model (the host simulator) can decide what
    # this endpoint does now: which certificate it serves, whether its key link is broken
    on_connect: Callable[[Endpoint], None] | None = None
    # what it does for connections from these source addresses instead (a network that sees the
    # site differently: a firewall, a broken route), e.g. {"127.0.0.2": Behaviour.RESET_IN_HANDSHAKE}
    behaviour_from: dict[str, Behaviour] = field(default_factory=dict)


class LoopbackServers:
    """Listeners on 127.0.0.1 (a free port each), the connections they accepted and a scratch
    folder; a context manager that closes them all on exit."""

    def __init__(self, prefix: str) -> None:
        self._listeners: list[socket.socket] = []
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._dir = tempfile.TemporaryDirectory(prefix=prefix)

    def _listen(self, backlog: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(backlog)
        self._listeners.append(listener)
        return listener

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stopping.set()
        for listener in self._listeners:
            with contextlib.suppress(OSError):
                listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()
        self._dir.cleanup()


class TLSServers(LoopbackServers):
    """Context manager that runs every added endpoint until exit."""

    def __init__(self) -> None:
        super().__init__("certops-tls-")
        self._endpoints: list[Endpoint] = []
        self._seen_sni: dict[int, str | None] = {}
        self._contexts: dict[tuple[int, ...], ssl.SSLContext] = {}

    def add(self, endpoint: Endpoint) -> Endpoint:
        listener = self._listen(128)
        endpoint.port = listener.getsockname()[1]
        self._endpoints.append(endpoint)
        threading.Thread(target=self._accept_loop, args=(listener, endpoint), daemon=True, name="tls-accept").start()
        return endpoint

    def _context(self, endpoint: Endpoint) -> ssl.SSLContext:
        # cached per set of certificates, which a test may swap while the server runs
        key = (id(endpoint), id(endpoint.leaf), *(id(v) for v in endpoint.sni_leaves.values()))
        with self._lock:
            if key not in self._contexts:
                self._contexts[key] = self._new_context(endpoint)
            return self._contexts[key]

    def _new_context(self, endpoint: Endpoint) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.num_tickets = 0  # every probe is a full handshake anyway
        self._load(ctx, endpoint.leaf, "default")
        by_name = {}
        for name, leaf in endpoint.sni_leaves.items():
            sub = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._load(sub, leaf, name)
            by_name[name] = sub
        seen = self._seen_sni

        def on_sni(sslobj: ssl.SSLObject | ssl.SSLSocket, name: str | None, _c: ssl.SSLContext) -> int | None:
            seen[id(sslobj)] = name
            if endpoint.behaviour is Behaviour.ALERT:
                return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
            if name in by_name:
                sslobj.context = by_name[name]
            return None

        ctx.sni_callback = on_sni
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def _load(self, ctx: ssl.SSLContext, leaf: Leaf, stem: str) -> None:
        cert, key = leaf.write(Path(self._dir.name), f"{id(leaf)}-{stem}")
        ctx.load_cert_chain(cert, key)

    def _accept_loop(self, listener: socket.socket, endpoint: Endpoint) -> None:
        while not self._stopping.is_set():
            try:
                conn, peer = listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delay on small answers
            with self._lock:
                self._conns.add(conn)
            behaviour = endpoint.behaviour_from.get(str(peer[0]))
            args = (conn, endpoint if behaviour is None else dataclasses.replace(endpoint, behaviour=behaviour))
            threading.Thread(target=self._serve, args=args, daemon=True, name="tls-conn").start()

    def _serve(self, conn: socket.socket, endpoint: Endpoint) -> None:
        try:
            self._handle(conn, endpoint)
        except (OSError, ssl.SSLError, ValueError):
            pass  # the prober hung up, or we were told to misbehave: both are expected here
        finally:
            with self._lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _hold_until_closed(self, conn: socket.socket) -> None:
        """Say nothing, read whatever comes, and return once the client hangs up (or we stop)."""
        conn.settimeout(0.2)
        while not self._stopping.is_set():
            try:
                if not conn.recv(4096):
                    return
            except TimeoutError:
                continue

    def _handle(self, conn: socket.socket, endpoint: Endpoint) -> None:
        if endpoint.on_connect is not None:
            endpoint.on_connect(endpoint)
        behaviour = endpoint.behaviour
        conn.settimeout(30)
        if behaviour is Behaviour.SILENT:
            self._hold_until_closed(conn)
            return
        if behaviour in (Behaviour.RESET_IN_HANDSHAKE, Behaviour.CLOSE_IN_HANDSHAKE):
            conn.recv(4096)  # the ClientHello
            if behaviour is Behaviour.RESET_IN_HANDSHAKE:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            return
        if behaviour is Behaviour.PLAIN_HTTP:
            conn.recv(4096)
            conn.sendall(
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n"
                b"Connection: close\r\n\r\nplain http\n"
            )
            return
        ctx = self._context(endpoint)
        with ctx.wrap_socket(conn, server_side=True) as tls:
            sni = self._seen_sni.pop(id(tls), None)
            if behaviour is Behaviour.SILENT_AFTER_HANDSHAKE:
                self._hold_until_closed(tls)
                return
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = tls.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            host = next(
                (v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:]) if k.lower() == "host"),
                None,
            )
            endpoint.requests.append(Request(method, path, host, sni))
            status = endpoint.status
            if method == "HEAD" and endpoint.head_status is not None:
                status = endpoint.head_status
            body = b"" if method == "HEAD" else endpoint.body
            extra = "".join(f"{k}: {v}\r\n" for k, v in endpoint.headers.items())
            tls.sendall(
                f"HTTP/1.1 {status} Test\r\nContent-Type: text/html\r\n"
                f"Content-Length: {len(endpoint.body)}\r\n{extra}Connection: close\r\n\r\n".encode()
                + body
            )
            with contextlib.suppress(OSError, ssl.SSLError):
                tls.unwrap()
