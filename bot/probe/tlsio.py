"""TLS over a plain asyncio TCP stream, through ssl.MemoryBIO, with a byte budget.

asyncio's own TLS transport reads and decrypts whatever the server sends for as long as it
sends it, out of our sight: a server that answers the ClientHello with an endless run of
HelloRequest messages (which OpenSSL skips by design), or follows the handshake with an endless
run of session tickets, keeps the probe's CPU busy until the timeout. Driving the SSLObject
ourselves lets us count every byte the server sends and stop early. It also keeps asyncio from
decoding the certificate into a dict after the handshake, which raised UnicodeDecodeError on a
subjectAltName with invalid UTF-8 and made a certificate problem look like a failed handshake.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

READ_SIZE = 64 * 1024
_DER: int = getattr(getattr(ssl, "_ssl", None), "ENCODING_DER", 2)  # for Certificate.public_bytes
# far more than any real handshake (a long chain is 10-20 KiB) and far less than a timeout's worth
HANDSHAKE_BUDGET = 256 * 1024
# what the server may send after the handshake beyond twice the application data it delivers:
# session tickets, key updates, record headers; an endless stream of them is cut here
OVERHEAD_BUDGET = 256 * 1024
# the handshake's last flight waits for the request (False: sent at once; for a before/after measurement)
COALESCE_FINISHED = True


class TLSFlood(Exception):
    """The server sent more TLS records than a handshake or an answer can need."""


class TLSStream:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        context: ssl.SSLContext,
        server_hostname: str,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.sslobj = context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_hostname)
        self._received = 0  # bytes from the server, all of them
        self._handshake_bytes = 0
        self._delivered = 0  # application bytes handed to the caller
        self._eof = False

    async def handshake(self) -> None:
        """Raises what OpenSSL raises (SSLCertVerificationError included), OSError, or TLSFlood."""
        while True:
            try:
                self.sslobj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                if self._eof:
                    raise ssl.SSLEOFError(ssl.SSL_ERROR_EOF, "the server closed the connection") from None
                await self._pull()
                if self._received > HANDSHAKE_BUDGET:
                    raise TLSFlood(
                        f"the server sent more than {HANDSHAKE_BUDGET // 1024} KiB without completing the TLS handshake"
                    ) from None
        # What is left to send (TLS 1.3: the client's Finished) goes out with the request, which
        # the caller writes next: one write and one segment instead of two
        if not COALESCE_FINISHED:
            self._flush()
        self._handshake_bytes = self._received

    def write(self, data: bytes) -> None:
        self.sslobj.write(data)
        self._flush()

    async def read(self, n: int = READ_SIZE) -> bytes:
        """Up to `n` bytes of application data; b"" once the server has closed."""
        if n <= 0:
            return b""
        while True:
            try:
                data = self.sslobj.read(n)
            except ssl.SSLWantReadError:
                self._flush()  # a key update wants an answer
                if self._eof:
                    return b""
                await self._pull()
                if self._received - self._handshake_bytes > 2 * self._delivered + OVERHEAD_BUDGET:
                    raise TLSFlood(
                        f"the server sent more than {OVERHEAD_BUDGET // 1024} KiB of TLS records carrying no HTTP data"
                    ) from None
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                # many servers (IIS among them) close without close_notify; for reading an
                # answer that is simply the end of it
                return b""
            self._delivered += len(data)
            return data

    def peer_chain(self) -> list[bytes] | None:
        """The certificates the server sent, as DER, its own first; None when not known. Also
        after a handshake that failed verification: OpenSSL keeps the chain it was sent, so the
        certificate that failed is read without a second, non-verifying handshake."""
        # public from Python 3.13 (DER bytes); CPython 3.10-3.12 have it privately (Certificate objects)
        inner: Any = self.sslobj
        private = getattr(inner, "_sslobj", None)
        getter = getattr(inner, "get_unverified_chain", None) or getattr(private, "get_unverified_chain", None)
        if getter is None:
            return None
        try:
            chain = getter()
        except (ssl.SSLError, ValueError):
            return None
        if not chain:
            return None
        try:
            return [c if isinstance(c, bytes) else c.public_bytes(_DER) for c in chain]
        except (ssl.SSLError, ValueError, AttributeError):
            return None

    @property
    def delivered(self) -> int:
        """Application bytes handed to the caller so far: more than 0 once an answer began."""
        return self._delivered

    def abort(self) -> None:
        self._writer.transport.abort()

    async def _pull(self) -> None:
        data = await self._reader.read(READ_SIZE)
        if data:
            self._received += len(data)
            self._incoming.write(data)
        else:
            self._eof = True
            self._incoming.write_eof()

    def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            self._writer.write(pending)
