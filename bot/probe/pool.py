"""Probe workers: the probing spread over processes with an event loop each, so that a bot on N
cores can use them all (one Python process does its TLS handshakes on one core at a time).

Only the probing moves. The scheduler, the incident core and the gate ([bot] probe_concurrency)
stay in the bot's process: the pool takes a slot of the caller's gate for each probe it sends
and gives it back when the answer arrives, so the bound on probes in flight holds across all
workers, and a site's run is still one awaited call in the bot's process (one at a time, jitter
and thresholds as before).

A worker is `python -c "from bot.probe.pool import serve; serve()"`, started with asyncio's
subprocess support (fork and exec at once: the bot's process has threads, so no bare fork).
Frames go both ways as a 4-byte big-endian length and a pickle: (number, ProbeTarget) down its
stdin; ("ready",), ("result", number, ProbeResult) and ("log", level, logger, text, fields) up a private
copy of its stdout (fd 1 itself points at stderr, so a stray print can't corrupt a frame). Only
frames from processes this module started, running this code, are unpickled.

What can go wrong with a worker:
- it dies (killed, crashed): the probes it had in flight run again at once on another worker
  (each probe at most once more: a target that kills every worker it meets fails as
  probe_error), and it is restarted, with a growing pause if it dies right after starting;
- it stops answering: a probe's answer is awaited for the probe's own timeout plus MARGIN, then
  the probe fails as probe_error and the worker is ended (and restarted like a dead one);
- the bot's process goes away (even by SIGKILL): the worker's stdin closes and it exits; on
  Linux the kernel also kills it then (PR_SET_PDEATHSIG), should it be stuck.
Workers ignore SIGINT and SIGTERM: a Ctrl-C or systemd's stop reaches the whole group, and the
bot's process ends its workers itself once its last probes are answered (close()).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import logging
import os
import pickle
import signal
import sys
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bot.logs import fields, logger
from bot.probe.engine import SystemResolver, failed_probe, probe
from bot.probe.model import ProbeResult, ProbeTarget

log = logger(__name__)

MARGIN = 5.0  # seconds beyond a probe's own timeout before its worker counts as stuck
RERUNS = 1  # times a probe runs again after the worker it was on died
BALANCE_SLACK = 4  # a site stays on its own worker unless that one has this many more in flight
START_TIMEOUT = 30.0  # how long start() waits for the workers to be ready
CLOSE_TIMEOUT = 10.0  # how long close() lets the workers finish before killing them
EXIT_GRACE = 2.0  # how long a worker whose pipe closed has to exit before it is killed
QUICK_DEATH = 2.0  # a worker dead this soon after starting is restarted after a pause
MAX_PAUSE = 30.0
MAX_FRAME = 64 * 1024 * 1024  # no real frame is near this: a bigger length means a garbled pipe
_HEADER = 4
_PR_SET_PDEATHSIG = 1
_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding the `bot` package


class WorkerLost(Exception):
    """The worker a probe was sent to died before answering."""


def _frame(message: object) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(body).to_bytes(_HEADER, "big") + body


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    size = int.from_bytes(await reader.readexactly(_HEADER), "big")
    if size > MAX_FRAME:
        raise ValueError(f"a frame of {size:,} bytes")
    return pickle.loads(await reader.readexactly(size))  # noqa: S301 - from our own child process


class _Batch:
    """Frames put in one turn of the event loop leave in one write: under load that is one
    syscall and one wake-up of the other side for many probes, instead of one per probe."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.write = write
        self.loop = asyncio.get_running_loop()
        self.frames: list[bytes] = []

    def put(self, message: object) -> None:
        if not self.frames:
            self.loop.call_soon(self.flush)
        self.frames.append(_frame(message))

    def flush(self) -> None:
        data, self.frames = b"".join(self.frames), []
        if data:
            self.write(data)


# --------------------------------------------------------------------------- the bot's side


class _Worker:
    def __init__(self, slot: int, proc: asyncio.subprocess.Process, started: float) -> None:
        self.slot = slot
        self.proc = proc
        self.started = started
        self.pending: dict[int, asyncio.Future[ProbeResult]] = {}
        self.accepting = True
        self.answered = 0
        self.reason: str | None = None  # why the pool ended it, when it did
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        assert proc.stdin is not None
        # no drain: the gate bounds what is queued here to a few hundred bytes per probe in flight
        self._out = _Batch(proc.stdin.write)

    def send(self, number: int, target: ProbeTarget) -> asyncio.Future[ProbeResult]:
        future: asyncio.Future[ProbeResult] = asyncio.get_running_loop().create_future()
        self.pending[number] = future
        self._out.put((number, target))
        return future

    def close_pipe(self) -> None:
        """What was put goes first; then the worker reads the end of its pipe and exits."""
        assert self.proc.stdin is not None
        self._out.flush()
        self.proc.stdin.close()

    def end(self, reason: str) -> None:
        self.accepting = False
        self.reason = self.reason or reason
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    def lose_pending(self) -> int:
        lost, self.pending = self.pending, {}
        for future in lost.values():
            if not future.done():
                future.set_exception(WorkerLost())
        return sum(1 for f in lost.values() if not f.cancelled())


class ProbePool:
    """`workers` probe processes behind one probe_many (the contract of engine.probe_many: every
    target probed, results in target order, at most as many at once as the gate allows).

    Name lookups happen in the workers with the system's resolver: a Resolver object can't cross
    into another process, so whoever needs a custom one probes in process (SiteProber does)."""

    def __init__(self, workers: int, *, on_restart: Callable[[], None] | None = None, margin: float = MARGIN) -> None:
        if workers < 1:
            raise ValueError("a probe pool needs at least one worker")
        self.workers = workers
        self.margin = margin
        self.on_restart = on_restart
        self._slots: list[_Worker | None] = [None] * workers
        self._keepers: list[asyncio.Task[None]] = []
        self._numbers = itertools.count()
        self._lock = asyncio.Lock()
        self._arrived = asyncio.Event()  # replaced each time a worker starts; waiters keep theirs
        self._closing = asyncio.Event()
        self._closed = False

    # lifecycle --------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    async def start(self) -> None:
        """Starts the workers and waits (bounded) until each is ready or has died trying;
        probe_many starts them itself when needed. Idempotent."""
        async with self._lock:
            if self._keepers or self.closed:
                return
            first: list[asyncio.Future[_Worker]] = []
            loop = asyncio.get_running_loop()
            for slot in range(self.workers):
                spawned: asyncio.Future[_Worker] = loop.create_future()
                first.append(spawned)
                keeper = asyncio.create_task(self._keep(slot, spawned), name=f"probe-worker-{slot}")
                self._keepers.append(keeper)
            await asyncio.wait(first, timeout=START_TIMEOUT)
            readies = [f.result().ready for f in first if f.done() and not f.cancelled() and not f.exception()]
            if readies:
                await asyncio.wait(readies, timeout=START_TIMEOUT)

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Lets the workers answer what they have in flight (bounded by `timeout`), then ends them
        and waits until every one is gone: no child process outlives this."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        for worker in self._live():
            worker.accepting = False
            worker.close_pipe()  # a worker ends when its pipe closes
        if self._keepers:
            _done, late = await asyncio.wait(self._keepers, timeout=timeout)
            if late:
                for worker in self._live():
                    worker.end("was still busy when the pool closed")
                await asyncio.wait(self._keepers)

    # probing ----------------------------------------------------------------------------------

    async def probe_many(
        self,
        targets: Sequence[ProbeTarget],
        *,
        concurrency: int = 50,
        gate: asyncio.Semaphore | None = None,
        on_result: Callable[[ProbeResult], None] | None = None,
    ) -> list[ProbeResult]:
        """Probe every target on the workers, at most `concurrency` at a time (or as a `gate`
        shared with other callers allows); results come back in target order."""
        if not self._keepers:
            await self.start()
        gate = gate or asyncio.Semaphore(concurrency)

        async def one(target: ProbeTarget) -> ProbeResult:
            async with gate:
                result = await self._probe(target)
            if on_result is not None:
                on_result(result)
            return result

        return list(await asyncio.gather(*(one(t) for t in targets)))

    async def _probe(self, target: ProbeTarget) -> ProbeResult:
        bound = target.timeout + self.margin
        for _attempt in range(1 + RERUNS):
            worker = await self._worker_for(target, bound)
            if worker is None:
                break  # closed, or no worker came up in time
            future = worker.send(next(self._numbers), target)
            try:
                async with asyncio.timeout(bound):
                    return await future
            except WorkerLost:
                continue  # at once, on another worker: the dead one accepts nothing any more
            except TimeoutError:
                worker.end(f"did not answer a probe of {target.url} within {bound:g} s")
                break
        return failed_probe(target)

    async def _worker_for(self, target: ProbeTarget, wait: float) -> _Worker | None:
        deadline = asyncio.get_running_loop().time() + wait
        while not self.closed:
            worker = self._choose(target)
            if worker is not None:
                return worker
            arrived = self._arrived
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), left)
        return None

    def _choose(self, target: ProbeTarget) -> _Worker | None:
        """The site's own worker (a stable hash of its name: its CA file's context and the like
        stay warm there), unless another has clearly less in flight."""
        live = [w for w in self._live() if w.accepting]
        if not live:
            return None
        key = (target.site or target.hostname).encode("utf-8", "surrogateescape")
        own = self._slots[zlib.crc32(key) % self.workers]
        least = min(live, key=lambda w: len(w.pending))
        if own is not None and own.accepting and len(own.pending) <= len(least.pending) + BALANCE_SLACK:
            return own
        return least

    def _live(self) -> list[_Worker]:
        return [w for w in self._slots if w is not None]

    # what tests, benchmarks and operators look at ------------------------------------------------

    def pids(self) -> list[int]:
        """The workers' process ids, by slot (a slot that is restarting is left out)."""
        return [w.proc.pid for w in self._live()]

    def in_flight(self) -> dict[int, int]:
        """Probes awaiting an answer, by worker pid."""
        return {w.proc.pid: len(w.pending) for w in self._live()}

    def answered(self) -> dict[int, int]:
        """Probes answered so far, by worker pid (live workers only)."""
        return {w.proc.pid: w.answered for w in self._live()}

    # keeping a slot filled --------------------------------------------------------------------

    async def _keep(self, slot: int, spawned: asyncio.Future[_Worker]) -> None:
        """Runs a worker in `slot` until the pool closes, restarting it whenever it ends."""
        try:
            await self._keep_filled(slot, spawned)
        finally:
            if not spawned.done():  # closed before it ever started: start() must not wait for it
                spawned.cancel()

    async def _keep_filled(self, slot: int, spawned: asyncio.Future[_Worker]) -> None:
        loop = asyncio.get_running_loop()
        quick_deaths = 0
        while not self.closed:
            try:
                worker = await self._spawn(slot)
            except Exception as exc:  # no memory, no such executable: the slot keeps trying
                log.error("probe worker %d could not be started: %s", slot, exc)
                if not spawned.done():
                    spawned.set_exception(exc)
                quick_deaths += 1
                await self._pause(quick_deaths)
                continue
            if not spawned.done():
                spawned.set_result(worker)
            if self.closed:  # close() came while it started: it gets no work, only the end of its pipe
                worker.close_pipe()
            self._slots[slot] = worker
            self._arrived.set()
            self._arrived = asyncio.Event()
            await self._read(worker)
            # its pipe closed: whatever it had in flight runs again elsewhere before anything else
            worker.accepting = False
            self._slots[slot] = None
            lost = worker.lose_pending()
            if not worker.ready.done():
                worker.ready.set_result(None)
            if not self.closed:
                try:  # a dead worker's pipe closes a moment before its exit is known
                    await asyncio.wait_for(asyncio.shield(worker.proc.wait()), EXIT_GRACE)
                except TimeoutError:
                    worker.end("closed its pipe but kept running")  # deaf: it can't be used again
            code = await worker.proc.wait()
            if self.closed:
                return
            how = worker.reason or _exit_text(code)
            log.warning(
                "probe worker %d (pid %d) %s; restarting it; %d probe(s) it had in flight run again on another worker",
                slot, worker.proc.pid, how, lost,
            )  # fmt: skip
            if self.on_restart is not None:
                self.on_restart()
            quick_deaths = quick_deaths + 1 if loop.time() - worker.started < QUICK_DEATH else 0
            if quick_deaths:
                await self._pause(quick_deaths)

    async def _pause(self, deaths: int) -> None:
        """A worker that can't start (a broken install, no memory) must not be respawned in a
        tight loop; close() cuts the pause short."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), min(MAX_PAUSE, 0.25 * 2**deaths))

    async def _spawn(self, slot: int) -> _Worker:
        env = dict(os.environ)
        # the worker must import this very code, wherever the bot was started from
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH", "")) if p)
        level = logging.getLogger().getEffectiveLevel()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from bot.probe.pool import serve; serve()", str(os.getpid()), str(level),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env, limit=1024 * 1024,
        )  # fmt: skip
        return _Worker(slot, proc, asyncio.get_running_loop().time())

    async def _read(self, worker: _Worker) -> None:
        """Takes the worker's frames until its pipe closes (it exited, or was killed)."""
        assert worker.proc.stdout is not None
        while True:
            try:
                message = await _read_frame(worker.proc.stdout)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            except Exception as exc:  # a garbled pipe: nothing more from it can be trusted
                worker.end(f"sent a frame that could not be read ({type(exc).__name__})")
                return
            kind = message[0]
            if kind == "result":
                future = worker.pending.pop(message[1], None)
                worker.answered += 1
                if future is not None and not future.done():
                    future.set_result(message[2])
            elif kind == "log":
                _level, name, text, extra = message[1:]  # the record's logger and structured fields kept
                logging.getLogger(name).log(_level, "%s (probe worker pid %d)", text, worker.proc.pid, extra=extra)
            elif kind == "ready" and not worker.ready.done():
                worker.ready.set_result(None)


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


# --------------------------------------------------------------------------- the worker's side


def serve() -> None:
    """A worker's whole life (argv: the bot's pid, the log level); see the module's docstring."""
    parent, level = int(sys.argv[1]), int(sys.argv[2])
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    upstream = os.dup(1)
    os.dup2(2, 1)  # print() and any library's chatter go to stderr, never into a frame
    from bot import eventloop  # here: the bot's process never needs it for the pool

    try:
        eventloop.run(_serve(upstream, parent, level))
    finally:
        # a name lookup may still hold one of the resolver's threads: it must not hold the exit
        sys.stderr.flush()
        os._exit(0)


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this process when the bot's goes, even if this one is stuck."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it went before the line above took effect
        os._exit(0)


class _Upstream(asyncio.Protocol):
    def __init__(self) -> None:
        self.gone = asyncio.Event()

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone.set()


class _Forward(logging.Handler):
    """The worker's log records, sent to the bot's process to be logged there as its own."""

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Callable[[object], None]) -> None:
        super().__init__()
        self.loop = loop
        self.send = send
        self.texts = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + self.texts.formatException(record.exc_info)
            # a record may come from a resolver thread: only the loop's thread writes the pipe
            self.loop.call_soon_threadsafe(self.send, ("log", record.levelno, record.name, text, fields(record)))
        except Exception:
            self.handleError(record)


async def _serve(upstream: int, parent: int, level: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", buffering=0))
    transport, link = await loop.connect_write_pipe(_Upstream, os.fdopen(upstream, "wb", buffering=0))

    def write(data: bytes) -> None:
        if not transport.is_closing():
            transport.write(data)

    out = _Batch(write)
    send = out.put

    root = logging.getLogger()
    root.handlers[:] = [_Forward(loop, send)]
    root.setLevel(level)
    resolver = SystemResolver()  # shared by every probe, as engine.probe_many shares one
    tasks: set[asyncio.Task[None]] = set()

    async def one(number: int, target: ProbeTarget) -> None:
        try:
            result = await probe(target, resolver=resolver)
        except Exception:  # probe() catches its own failures; this is belt and braces
            log.exception("probe of %s failed inside a probe worker", target.url)
            result = failed_probe(target)
        try:
            send(("result", number, result))
        except Exception:  # a result that does not pickle is a bug of ours: still answer the bot
            log.exception("the result of probing %s could not be sent", target.url)
            send(("result", number, failed_probe(target)))

    send(("ready",))
    while not link.gone.is_set():
        try:
            number, target = await _read_frame(reader)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, pickle.UnpicklingError):
            break  # the pipe closed: the pool is closing, or the bot's process is gone
        task = asyncio.create_task(one(number, target))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks and os.getppid() == parent and not link.gone.is_set():
        await asyncio.wait(tasks)  # the pool is closing: answer what is in flight (each bounded)
    out.flush()
    for _ in range(100):  # the last answers must leave before os._exit (at most a second)
        if link.gone.is_set() or not transport.get_write_buffer_size():
            break
        await asyncio.sleep(0.01)
