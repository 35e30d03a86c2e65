"""A slow-client driver: many connections to one server, each holding its socket open the way a
slowloris attacker (or a wedged client) does.

Styles:
- "silent": connects and sends nothing.
- "head": sends half a request head, then one more header byte every `interval` seconds, never
  the blank line that ends it.
- "body": sends a whole head announcing a body, then one body byte every `interval` seconds.
- "idle": sends a whole request, reads the answer, and keeps the connection alive doing nothing.

Each connection watches for the server closing it; `open_count()` says how many are still open.
Everything is torn down on exit, and nothing runs longer than the `async with` block.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

Style = Literal["silent", "head", "body", "idle"]


@dataclass
class _Connection:
    writer: asyncio.StreamWriter
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    answered: bytes = b""


class SlowClients:
    def __init__(
        self,
        host: str,
        port: int,
        count: int,
        *,
        style: Style = "head",
        interval: float = 0.2,
        path: str = "/slack/events",
        connect_timeout: float = 5.0,
    ) -> None:
        self.host, self.port, self.count = host, port, count
        self.style, self.interval, self.path = style, interval, path
        self.connect_timeout = connect_timeout
        self.connections: list[_Connection] = []
        self.refused = 0  # connects that failed outright
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> SlowClients:
        await self.open(self.count)
        return self

    async def __aexit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self, count: int) -> None:
        """Opens `count` more connections, a few at a time (a burst larger than the listen
        backlog would only measure the kernel's SYN queue)."""
        batch = 100
        for start in range(0, count, batch):
            await asyncio.gather(*(self._open_one() for _ in range(min(batch, count - start))))

    def open_count(self) -> int:
        return sum(1 for c in self.connections if not c.closed.is_set())

    async def wait_until_closed(self, at_most: int, timeout: float) -> int:
        """Waits until no more than `at_most` connections are open (or `timeout` passes); returns
        how many are open then."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.open_count() > at_most and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return self.open_count()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for connection in self.connections:
            connection.writer.close()
        for connection in self.connections:
            with contextlib.suppress(ConnectionError, OSError):
                await connection.writer.wait_closed()

    async def _open_one(self) -> None:
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError):
            self.refused += 1
            return
        connection = _Connection(writer)
        self.connections.append(connection)
        for work in (self._watch(reader, connection), self._trickle(connection)):
            task = asyncio.ensure_future(work)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _watch(self, reader: asyncio.StreamReader, connection: _Connection) -> None:
        """Marks the connection closed once the server ends it (EOF or reset)."""
        try:
            while chunk := await reader.read(65536):
                connection.answered += chunk
        except (ConnectionError, OSError):
            pass
        connection.closed.set()

    async def _trickle(self, connection: _Connection) -> None:
        writer = connection.writer
        host = f"Host: {self.host}\r\n".encode()
        try:
            if self.style == "silent":
                return
            if self.style == "idle":
                writer.write(b"GET /healthz HTTP/1.1\r\n" + host + b"\r\n")
                return
            if self.style == "head":
                writer.write(f"POST {self.path} HTTP/1.1\r\n".encode() + host + b"X-Slow: ")
            else:
                writer.write(f"POST {self.path} HTTP/1.1\r\n".encode() + host + b"Content-Length: 100000\r\n\r\n")
            while not connection.closed.is_set():
                await asyncio.sleep(self.interval)
                writer.write(b"a")
                await writer.drain()
        except (ConnectionError, OSError):
            connection.closed.set()
