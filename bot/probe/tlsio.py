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

READ_SIZE = 64 * 1024
# far more than any real handshake (a long chain is 10-20 KiB) and far less than a timeout's worth
HANDSHAKE_BUDGET = 256 * 1024
# what the server may send after the handshake beyond twice the application data it delivers:
# session tickets, key updates, record headers; an endless stream of them is cut here
OVERHEAD_BUDGET = 256 * 1024


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
