"""A TCP relay on 127.0.0.1 that can be cut as a network partition is (tests/ha: a replica and
PostgreSQL; tests/agents: an agent and the bot)."""

from __future__ import annotations

import asyncio
import threading


class Partition:
    """A TCP relay to 127.0.0.1:`upstream`, run on a thread of its own, that can be
    cut as a network partition is: while cut, no byte passes either way (nothing is refused or
    reset, the peers just hear nothing) and new connections hang. Healed, a connection that had
    bytes held across the cut is closed (its peers' TCP would have given up), others go on."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.open = asyncio.Event()
        self.held = 0  # bytes that arrived while cut
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="db-partition", daemon=True)

    def __enter__(self) -> Partition:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def cut(self) -> None:
        self.loop.call_soon_threadsafe(self.open.clear)

    def heal(self) -> None:
        self.loop.call_soon_threadsafe(self.open.set)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.open.set()
        server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        server.close()
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()  # the pumps close both ends of their connections
        if tasks:
            self.loop.run_until_complete(asyncio.wait(tasks, timeout=5))

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.open.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pump(reader, up_writer, writer), self._pump(up_reader, writer, up_writer))

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, other: asyncio.StreamWriter
    ) -> None:
        try:
            while data := await source.read(65536):
                if not self.open.is_set():
                    self.held += len(data)
                    await self.open.wait()
                    break  # held across the cut: dropped
                sink.write(data)
                await sink.drain()
        except OSError:
            pass
        finally:
            for end in (sink, other):
                end.close()
