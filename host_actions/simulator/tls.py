"""A loopback TLS server that serves what the model's http.sys bindings say, as schannel would.

SNI picks the binding (Hostname:port first, then 0.0.0.0:port, as http.sys does); the bound
certificate is served; when that certificate's key link is broken the TCP connection is reset
during the handshake - the incident's symptom. Repairs made over WinRM show up at once.
"""

from __future__ import annotations

import socket
import ssl
import struct
import tempfile
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from host_actions.simulator import model as model_module
from host_actions.simulator.model import HostModel, SimCert


class ModelTLSServer:
    def __init__(self, model: HostModel, *, binding_port: int = 443) -> None:
        self.model = model
        self.binding_port = binding_port  # the port the model's bindings name
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="certops-sim-tls-")
        self._contexts: dict[str, ssl.SSLContext] = {}
        self.handshakes: list[tuple[str | None, str]] = []  # (SNI, "served:THUMBPRINT" or "reset")

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def start(self) -> ModelTLSServer:
        self._listener.settimeout(0.05)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._listener.close()
        self._dir.cleanup()

    def __enter__(self) -> ModelTLSServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def bound_certificate(self, server_name: str | None) -> SimCert | None:
        bindings = self.model.http_bindings
        if server_name:
            endpoint = f"{server_name.lower()}:{self.binding_port}"
            for b in bindings:
                if b.kind == "hostname" and b.endpoint.lower() == endpoint:
                    return self.model.cert(b.thumbprint)
        for b in bindings:
            if b.kind == "ip" and b.endpoint == f"0.0.0.0:{self.binding_port}":
                return self.model.cert(b.thumbprint)
        return None

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                hello = conn.recv(16384, socket.MSG_PEEK)
            except OSError:
                return
            name = server_name_of(hello)
            cert = self.bound_certificate(name)
            if cert is None or cert.key_state != "ok":
                self.handshakes.append((name, "reset"))
                # SO_LINGER 0: close() sends RST, which is what clients saw in the incident
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            self.handshakes.append((name, f"served:{cert.thumbprint}"))
            try:
                with self._context(cert).wrap_socket(conn, server_side=True) as tls:
                    tls.recv(4096)
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            except (OSError, ssl.SSLError):
                return

    def _context(self, cert: SimCert) -> ssl.SSLContext:
        context = self._contexts.get(cert.thumbprint)
        if context is None:
            folder = Path(self._dir.name)
            cert_file = folder / f"{cert.thumbprint}.pem"
            key_file = folder / f"leaf-{cert.key_alg}.key"
            cert_file.write_bytes(cert.pem)
            key_file.write_bytes(
                model_module.leaf_key(cert.key_alg).private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert_file, key_file)
            self._contexts[cert.thumbprint] = context
        return context


def server_name_of(hello: bytes) -> str | None:
    """The SNI host name in a TLS ClientHello, or None."""
    try:
        if hello[0] != 22 or hello[5] != 1:  # handshake record, ClientHello
            return None
        pos = 5 + 4 + 2 + 32
        pos += 1 + hello[pos]  # session id
        pos += 2 + int.from_bytes(hello[pos : pos + 2], "big")  # cipher suites
        pos += 1 + hello[pos]  # compression methods
        end = pos + 2 + int.from_bytes(hello[pos : pos + 2], "big")
        pos += 2
        while pos + 4 <= end:
            kind = int.from_bytes(hello[pos : pos + 2], "big")
            length = int.from_bytes(hello[pos + 2 : pos + 4], "big")
            if kind == 0:  # server_name: list length, name type, name length, name
                size = int.from_bytes(hello[pos + 7 : pos + 9], "big")
                return hello[pos + 9 : pos + 9 + size].decode("ascii").lower()
            pos += 4 + length
    except (IndexError, UnicodeDecodeError):
        return None
    return None
