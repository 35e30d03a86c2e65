"""Hostile TLS and HTTP targets on loopback: servers that answer with malformed, endless or
booby-trapped bytes, and certificates whose text fields carry escapes or invalid UTF-8.

They exist to show that every way a target can misbehave ends as a named problem, not as
certops's own failure. Each connection is cut after CONNECTION_SECONDS whatever the prober does,
and an endless answer is a generator that stops when the prober hangs up, so no test can hang.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bot.testbed.pki import Leaf, MiniCA
from bot.testbed.tls_servers import LoopbackServers

CONNECTION_SECONDS = 5.0
HOST = "www.example.test"

Answer = bytes | Callable[[], Iterable[bytes]]


@dataclass
class Target:
    port: int = 0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)  # the request heads read

    def seen(self) -> list[bytes]:
        return list(self.requests)


class HostileServers(LoopbackServers):
    """Context manager running every added target until exit, each on 127.0.0.1 and a free port."""

    def __init__(self, ca: MiniCA) -> None:
        super().__init__("certops-hostile-")
        self.ca = ca
        self.ca_file = str(ca.write_ca(Path(self._dir.name) / "ca.pem"))

    # --- what a target does -----------------------------------------------------------------

    def http(self, answer: Answer, *, leaf: Leaf | None = None) -> Target:
        """A working TLS handshake, then `answer` as the raw bytes of the HTTP answer."""
        context = self._context(leaf or self.ca.issue(HOST))
        target = Target()

        def handle(conn: socket.socket) -> None:
            with context.wrap_socket(conn, server_side=True) as tls:
                head = _read_head(tls)
                if not head:
                    return  # the prober hung up without asking (a certificate it refused)
                target.requests.append(head)
                self._send(tls, answer)

        return self._add(target, handle)

    def routes(self, answers: dict[str, bytes], *, leaf: Leaf | None = None) -> Target:
        """Like http(), with the answer chosen by the request's path (for redirect chains)."""
        context = self._context(leaf or self.ca.issue(HOST))
        target = Target()

        def handle(conn: socket.socket) -> None:
            with context.wrap_socket(conn, server_side=True) as tls:
                head = _read_head(tls)
                if not head:
                    return
                target.requests.append(head)
                path = head.split(b" ", 2)[1].decode("latin-1") if head.count(b" ") >= 2 else "/"
                self._send(tls, answers.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))

        return self._add(target, handle)

    def ticket_flood(self, tickets: int = 1_000_000) -> Target:
        """A TLS 1.3 server that follows its handshake with an endless stream of session tickets:
        records the client must decrypt and parse, none of which is HTTP."""
        context = self._context(self.ca.issue(HOST))
        context.num_tickets = tickets

        def handle(conn: socket.socket) -> None:
            with context.wrap_socket(conn, server_side=True) as tls:
                _read_head(tls)

        return self._add(Target(), handle)

    def raw(self, answer: Answer) -> Target:
        """No TLS at all: read the ClientHello, then send `answer` (e.g. endless TLS records)."""

        def handle(conn: socket.socket) -> None:
            conn.recv(16384)
            self._send(conn, answer)

        return self._add(Target(), handle)

    # --- plumbing ---------------------------------------------------------------------------

    def _context(self, leaf: Leaf) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.num_tickets = 0
        stem = f"{id(leaf)}"
        cert, key = leaf.write(Path(self._dir.name), stem)
        context.load_cert_chain(cert, key)
        return context

    def _add(self, target: Target, handle: Callable[[socket.socket], None]) -> Target:
        listener = self._listen(64)
        target.port = listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(listener, target, handle), daemon=True).start()
        return target

    def _accept(self, listener: socket.socket, target: Target, handle: Callable[[socket.socket], None]) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            target.connections += 1
            conn.settimeout(CONNECTION_SECONDS)
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn, handle), daemon=True).start()

    def _serve(self, conn: socket.socket, handle: Callable[[socket.socket], None]) -> None:
        # a watchdog closes the socket at the deadline, even when the handler is blocked in send
        timer = threading.Timer(CONNECTION_SECONDS, lambda: _close(conn))
        timer.start()
        try:
            handle(conn)
        except (OSError, ssl.SSLError, ValueError):
            pass  # the prober hung up on us, which is what it is meant to do
        finally:
            timer.cancel()
            with self._lock:
                self._conns.discard(conn)
            _close(conn)

    def _send(self, conn: socket.socket | ssl.SSLSocket, answer: Answer) -> None:
        deadline = time.monotonic() + CONNECTION_SECONDS
        pieces: Iterable[bytes] = [answer] if isinstance(answer, bytes) else answer()
        for piece in pieces:
            if self._stopping.is_set() or time.monotonic() > deadline:
                return
            conn.sendall(piece)
        if isinstance(conn, ssl.SSLSocket):
            with contextlib.suppress(OSError, ssl.SSLError):
                conn.unwrap()


def _close(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.close()


def _read_head(conn: socket.socket | ssl.SSLSocket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            break
        head += chunk
    return head.split(b"\r\n\r\n", 1)[0]


# --- answers --------------------------------------------------------------------------------


def endless(piece: bytes, first: bytes = b"") -> Callable[[], Iterator[bytes]]:
    """An answer that repeats `piece` until the prober hangs up (or the connection's deadline)."""

    def pieces() -> Iterator[bytes]:
        if first:
            yield first
        batch = piece * max(1, 16384 // max(1, len(piece)))
        while True:
            yield batch

    return pieces


def stalling(first: bytes) -> Callable[[], Iterator[bytes]]:
    """An answer that sends `first` and then nothing more, holding the connection open until the
    prober hangs up (or the connection's deadline): an answer that began and never finished."""

    def pieces() -> Iterator[bytes]:
        yield first
        while True:
            time.sleep(0.05)
            yield b""  # _send checks for the end between pieces

    return pieces


def endless_hello_requests() -> Iterator[bytes]:
    """Plaintext TLS records full of HelloRequest messages, forever. A client in the middle of its
    handshake must skip a HelloRequest (RFC 5246 7.4.1.1) and OpenSSL does, so nothing in OpenSSL
    stops this stream: only a byte budget does."""
    record = b"\x16\x03\x03\x40\x00" + b"\x00\x00\x00\x00" * 4096  # 16 KiB: 4096 empty HelloRequests
    batch = record * 4
    while True:
        yield batch


# --- certificates ---------------------------------------------------------------------------


def leaf_with(
    ca: MiniCA,
    *,
    common_name: str,
    dns_names: tuple[str, ...],
    replace: dict[bytes, bytes] | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> Leaf:
    """A leaf from `ca` whose DER has `replace` applied (same lengths) and is signed again:
    the way to get bytes no certificate library would write, such as invalid UTF-8 in a SAN, or
    a date before 1950 (write it from 2050 on, a GeneralizedTime, and replace its year)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(days=30))
        .not_valid_after(not_after or now + dt.timedelta(days=60))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), False)
        .sign(ca.key, hashes.SHA256())
    )
    if replace:
        tbs = cert.tbs_certificate_bytes
        for old, new in replace.items():
            assert len(old) == len(new), old
            assert old in tbs, old
            tbs = tbs.replace(old, new)
        signature = ca.key.sign(tbs, ec.ECDSA(hashes.SHA256()))
        algorithm = _der(0x30, _der(0x06, bytes.fromhex("2a8648ce3d040302")))  # ecdsa-with-SHA256
        der = _der(0x30, tbs + algorithm + _der(0x03, b"\x00" + signature))
        cert = x509.load_der_x509_certificate(der)
    return Leaf(cert, key, ())


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


@pytest.fixture
def hostile() -> Iterator[HostileServers]:
    """A fresh set of hostile targets with their own CA (`ca_file`), stopped after the test."""
    with HostileServers(MiniCA()) as servers:
        yield servers
