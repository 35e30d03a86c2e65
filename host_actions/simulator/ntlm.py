"""NTLM for the WS-Management simulator: the HTTP handshake and WinRM message encryption.

pywinrm's "ntlm" transport (requests_ntlm over pyspnego) first POSTs an empty body, gets a 401
with `WWW-Authenticate: Negotiate`, then sends the NTLM Negotiate and Authenticate messages on
the same kept-alive connection. Over http:// every later request and answer is sealed with the
connection's NTLM session keys and framed as MIME, as [MS-WSMV] 2.2.9.1.1 describes and
winrm/encryption.py writes and reads:

    --Encrypted Boundary\\r\\n
    \\tContent-Type: application/HTTP-SPNEGO-session-encrypted\\r\\n
    \\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=<plaintext length>\\r\\n
    --Encrypted Boundary\\r\\n
    \\tContent-Type: application/octet-stream\\r\\n
    <4-byte little-endian signature length><16-byte NTLM signature><RC4-sealed SOAP>
    --Encrypted Boundary--\\r\\n

The acceptor is pyspnego's pure-Python NTLM server. It reads the accounts it knows only from a
file named by the NTLM_USER_FILE environment variable (`DOMAIN:USER:PASSWORD` lines), at
construction and again when it checks the Authenticate message. Each simulator writes its own
file and points the variable at it only around those two calls, under a process-wide lock, and
puts the old value back at once, so nothing leaks into other tests or other simulators.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import struct
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import spnego
from spnego.exceptions import SpnegoError

PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
BOUNDARY = b"--Encrypted Boundary"
ENCRYPTED_CONTENT_TYPE = f'multipart/encrypted;protocol="{PROTOCOL}";boundary="Encrypted Boundary"'
_OCTET_STREAM = b"\tContent-Type: application/octet-stream\r\n"
_SCHEMES = ("Negotiate", "NTLM")
_ENV = "NTLM_USER_FILE"
_ENV_LOCK = threading.Lock()
# what pyspnego raises for a malformed token, a wrong password, an unknown user or a bad signature
_BAD_TOKEN = (SpnegoError, ValueError, struct.error)


class SealError(ValueError):
    """A body that is not a well-formed, correctly signed WinRM encrypted message."""


@dataclass
class ConnectionAuth:
    """NTLM state of one TCP connection: NTLM authenticates connections, not requests."""

    context: spnego.ContextProxy | None = None
    authenticated: bool = False


@dataclass(frozen=True)
class Step:
    """What the handshake says to one request."""

    status: int  # 401 to continue or refuse; 200 when the connection is now authenticated
    www_authenticate: str | None = None
    refused: bool = False  # credentials were offered and turned down


class NTLMAcceptor:
    """Checks NTLM handshakes against one account, which it keeps in a private file."""

    def __init__(self, username: str, password: str) -> None:
        if any(ch in username + password for ch in ":\r\n"):
            # the credential file is colon-separated, one account a line
            raise ValueError("the NTLM simulator needs a user name and password without ':' or line breaks")
        domain, _, user = username.rpartition("\\")
        fd, self.path = tempfile.mkstemp(prefix="certops-sim-ntlm-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp: mode 0600
            handle.write(f"{domain}:{user}:{password}\n")

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def step(self, conn: ConnectionAuth, authorization: str | None, *, refuse: bool = False) -> Step:
        """Advance the connection's handshake by one Authorization header (or its absence).

        `refuse` answers the Authenticate message with 401 whatever it proves (Faults.reject_all).
        """
        scheme, token = _parse_authorization(authorization)
        if scheme is None or token is None:
            conn.context, conn.authenticated = None, False
            return Step(401, "Negotiate", refused=authorization is not None)
        if conn.context is None or conn.context.complete:
            # an NTLM Negotiate message starts a new handshake, even on an authenticated connection
            conn.authenticated = False
            try:
                with self._user_file():
                    conn.context = spnego.server(protocol="ntlm", options=spnego.NegotiateOptions.use_ntlm)
                    challenge = conn.context.step(token)
            except _BAD_TOKEN:
                conn.context = None
                return Step(401, scheme, refused=True)
            return Step(401, f"{scheme} {base64.b64encode(challenge or b'').decode('ascii')}")
        try:
            with self._user_file():
                conn.context.step(token)
        except _BAD_TOKEN:  # wrong password, unknown user, tampered message
            conn.context = None
            return Step(401, scheme, refused=True)
        if refuse or not conn.context.complete:
            conn.context = None
            return Step(401, scheme, refused=True)
        conn.authenticated = True
        return Step(200)

    @contextlib.contextmanager
    def _user_file(self) -> Iterator[None]:
        with _ENV_LOCK:
            previous = os.environ.get(_ENV)
            os.environ[_ENV] = self.path
            try:
                yield
            finally:
                if previous is None:
                    del os.environ[_ENV]
                else:
                    os.environ[_ENV] = previous


def is_encrypted(content_type: str | None) -> bool:
    value = (content_type or "").replace(" ", "").lower()
    return value.startswith("multipart/encrypted;") and f'protocol="{PROTOCOL.lower()}"' in value


def unseal(context: spnego.ContextProxy, body: bytes) -> bytes:
    """The SOAP text of an encrypted request; SealError if the framing or the signature is wrong."""
    opening, closing = BOUNDARY + b"\r\n", BOUNDARY + b"--\r\n"
    if not body.startswith(opening) or not body.endswith(closing):
        raise SealError("not a multipart/encrypted body")
    meta, sep, rest = body[len(opening) : -len(closing)].partition(opening)
    length = re.search(rb"Length=(\d+)", meta)
    if not sep or length is None or f"Content-Type: {PROTOCOL}".encode() not in meta:
        raise SealError("the encrypted body has no header part")
    if not rest.startswith(_OCTET_STREAM):
        raise SealError("the encrypted body has no octet-stream part")
    stream = rest[len(_OCTET_STREAM) :]
    if len(stream) < 4:
        raise SealError("the encrypted stream is too short")
    signature_length = struct.unpack("<i", stream[:4])[0]
    if not 0 < signature_length <= len(stream) - 4:
        raise SealError("the encrypted stream has a bad signature length")
    header, sealed = stream[4 : 4 + signature_length], stream[4 + signature_length :]
    try:
        plain = context.unwrap_winrm(header, sealed)
    except _BAD_TOKEN as exc:
        raise SealError("the encrypted stream does not verify") from exc
    if len(plain) != int(length.group(1)):
        raise SealError("the decrypted length differs from the declared one")
    return plain


def seal(context: spnego.ContextProxy, payload: bytes) -> bytes:
    """An answer framed and sealed the way winrm/encryption.py reads it."""
    wrapped = context.wrap_winrm(payload)
    stream = struct.pack("<i", len(wrapped.header)) + wrapped.header + wrapped.data
    return (
        BOUNDARY + b"\r\n"
        b"\tContent-Type: " + PROTOCOL.encode() + b"\r\n"
        b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" + str(len(payload)).encode() + b"\r\n"
        + BOUNDARY + b"\r\n" + _OCTET_STREAM + stream + BOUNDARY + b"--\r\n"
    )  # fmt: skip


def _parse_authorization(header: str | None) -> tuple[str | None, bytes | None]:
    if not header:
        return None, None
    scheme, _, value = header.strip().partition(" ")
    match = next((s for s in _SCHEMES if s.lower() == scheme.lower()), None)
    if match is None or not value.strip():
        return None, None
    try:
        return match, base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        return match, None
