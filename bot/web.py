"""The bot's HTTP endpoints on [bot] listen: chat webhooks from the adapters, /healthz and /metrics.

The server faces the internet (LINE and Slack's http mode need a public URL), so it guards its
own resources (see `WebLimits`): a connection must send a complete request head within
`head_timeout` and its body within `body_timeout`, an idle keep-alive connection is closed after
`idle_timeout`, and no more than `max_connections` are open at once, well below the process's
file-descriptor limit. At the limit the connection that has waited longest without a request is
closed to make room, so /healthz and a real webhook still get through while slow clients hold
every other slot. Each kind of refusal writes at most one log line a second (`bot.logs.Throttle`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import socket
import sys
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bot.app import Core
from bot.config import split_host_port
from bot.logs import Throttle, logger
from bot.metrics import CONTENT_TYPE

log = logger(__name__)


async def start_web(core: Core, routes: list[web.RouteDef]) -> web.AppRunner:
    app = web.Application(client_max_size=BODY_LIMIT)

    async def healthz(_request: web.Request) -> web.Response:
        report = await health(core)
        return web.json_response(report, status=200 if report["status"] == "ok" else 503)

    async def metrics(_request: web.Request) -> web.Response:
        body = await asyncio.to_thread(core.metrics.render)  # the live gauges read the database
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    # imported here: these modules import this one (refuse, load_json)
    from bot.reports.model import MAX_BODY
    from bot.web_agents import agent_routes
    from bot.web_reports import PATH, report_route

    app.add_routes(
        [web.get("/healthz", healthz), web.get("/metrics", metrics), report_route(core), *agent_routes(core), *routes]
    )
    app[BODY_CAPS] = {PATH: MAX_BODY}
    parsed = split_host_port(core.config.bot.listen, any_port=True)  # 0: a port the system picks
    assert parsed is not None  # validated with the config
    descriptors = raise_fd_limit()
    if descriptors is not None and connection_bound(descriptors) < MAX_CONNECTIONS:
        log.warning(
            "the process may open only %d files: the web server takes at most %d connections at once "
            "(raise LimitNOFILE in the systemd unit)",
            descriptors,
            connection_bound(descriptors),
        )
    runner, _port = await serve_app(app, parsed[0], parsed[1], limits=WebLimits())
    return runner


DB_TIMEOUT = 2.0
_HEALTH_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="certops-healthz")


async def health(core: Core) -> dict[str, Any]:
    """`ok` only while the scheduler runs, the database answers and the outbox is not stuck;
    each failing check is named, so a load balancer's 503 says why."""
    problems: list[str] = []
    if core.leading and not core.watcher.running:  # a replica that does not lead answers chat only
        problems.append("the scheduler is not running")
    pending: int | None = None
    try:
        # on a thread of its own: behind the probes' database work in the shared pool, the
        # answer would say more about the queue than about the database
        loop = asyncio.get_running_loop()
        pending = await asyncio.wait_for(loop.run_in_executor(_HEALTH_THREAD, core.store.pending_count), DB_TIMEOUT)
    except Exception as exc:  # any failure to answer is the point of the check
        problems.append(f"the database does not answer ({type(exc).__name__})")
    if core.outbox.stuck:
        problems.append("chat messages have waited too long to be delivered")
    write_problem = core.store.write_problem()  # set by a failed write, cleared by the next good one
    if write_problem:
        problems.append(write_problem)
    return {
        "status": "ok" if not problems else "failing",
        "problems": problems,
        "follow_ups_running": core.worker.busy,
        "outbox_pending": pending,
        "outbox_errors": core.outbox.permanent_errors(),
        "leader": core.leading,
        **({"replica": core.elector.holder} if core.elector is not None else {}),
    }


# --- the web server's own limits ----------------------------------------------------------------

BODY_LIMIT = 1024 * 1024  # bytes; Slack and LINE send a few KB
MAX_CONNECTIONS = 1024  # a chat bot behind a reverse proxy needs a handful; this is for a flood
FD_LIMIT_WANTED = 65536  # what start_web asks for when the hard limit allows (deploy/certops.service)
BACKLOG = 128  # connections the kernel queues before accept(), as aiohttp's own sites
MAX_JSON_DEPTH = 64  # real payloads nest far less (rich-text blocks inside a Slack message: about a dozen)


@dataclass(frozen=True)
class WebLimits:
    """How long a connection may take, and how many may be open at once.

    head_timeout: seconds from connect (or from the first byte after an answer) to a complete
        request head; a slowloris client that trickles header bytes is closed then.
    body_timeout: seconds from a complete head to the whole body.
    idle_timeout: seconds a kept-alive connection may wait, after an answer, for its next
        request; also bounds a client that does not read its answer.
    max_connections: None for `connection_bound()` of the current file-descriptor limit.
    """

    head_timeout: float = 10.0
    body_timeout: float = 10.0
    idle_timeout: float = 15.0
    max_connections: int | None = None


def connection_bound(descriptors: int) -> int:
    """Connections the web server may hold with `descriptors` files allowed. The rest stays free:
    BACKLOG for the sockets asyncio accepts in one go before the guard sees any of them, and a
    quarter (64 to 256) for the database, the probes, WinRM and the chat APIs; so accept() does
    not run out of descriptors while the bound holds."""
    reserve = BACKLOG + max(64, min(256, descriptors // 4))
    return max(1, min(MAX_CONNECTIONS, descriptors - reserve))


def fd_limit() -> int | None:
    """The soft RLIMIT_NOFILE, or None where there is no such thing (or no limit at all)."""
    if sys.platform == "win32":
        return None
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def raise_fd_limit(wanted: int = FD_LIMIT_WANTED) -> int | None:
    """Raises the soft file-descriptor limit towards `wanted`, as far as the hard limit allows
    (a systemd unit without LimitNOFILE starts with a soft limit of 1024); returns the limit now,
    None for none."""
    if sys.platform == "win32":
        return None
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the file-descriptor limit from %d to %d: %s", soft, target, exc)
    return fd_limit()


async def serve_app(
    app: web.Application, host: str, port: int, *, limits: WebLimits | None = None
) -> tuple[web.AppRunner, int]:
    """Serves `app` on host:port under `limits` and returns the runner and the port bound (port 0
    picks a free one: the tests' stand-ins and the benchmarks use that)."""
    limits = limits or WebLimits()
    bound = limits.max_connections
    if bound is None:
        descriptors = fd_limit()
        bound = MAX_CONNECTIONS if descriptors is None else connection_bound(descriptors)
    sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    guard = _Guard(limits, bound)
    app.middlewares.insert(0, guard.middleware)  # outermost: it times the body before any handler reads it
    app[_REFUSALS] = guard.refusals
    # aiohttp's own keep-alive timer (which also runs from connect) is a backstop that never
    # fires before ours; access_log=None: a line per request would let any client write the log
    backstop = limits.idle_timeout + limits.head_timeout
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=backstop)
    await runner.setup()
    _quiet_accept_errors(asyncio.get_running_loop())
    _quiet_bad_heads()
    await _GuardedSite(runner, sock, guard).start()
    return runner, int(sock.getsockname()[1])


def refuse(
    request: web.Request, status: int, reason: str, *, text: str | None = None, json_body: Any = None
) -> web.Response:
    """The answer to a request certops will not act on, with one short log line (method, path,
    remote address, reason; never the body or a header's value). `reason` must be a fixed phrase:
    it keys the throttle that keeps a flood of refusals to one line a second per reason."""
    where = _where(request)
    request.config_dict.get(_REFUSALS, _fallback_refusals).warning(
        f"{request.method} {where} {reason}",
        "refused %s %s from %s: %s (HTTP %d)",
        request.method,
        where,
        request.remote,
        reason,
        status,
        extra={"status": status, "outcome": "refused"},
    )
    if json_body is not None:
        return web.json_response(json_body, status=status)
    return web.Response(status=status, text=text if text is not None else reason)


def _where(request: web.Request) -> str:
    """The route's own path, never the one the client wrote (which may be anything)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


class Malformed(ValueError):
    """An authentic request whose body certops cannot use (answered 400); `reason` is a fixed
    phrase, never text from the request."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TooDeep(Malformed):
    """JSON nested deeper than MAX_JSON_DEPTH."""

    def __init__(self) -> None:
        super().__init__("JSON nested too deep")


class _OutOfRange(ValueError):
    """A JSON number no float holds (1e999): raised from inside json.loads."""


# A UTF-16 surrogate on its own. json.loads joins an escaped pair ("\\ud83d\\ude00") into the one
# character it stands for, so any surrogate left in a parsed string came alone: it cannot be
# encoded as UTF-8 (the database, the log, the chat APIs all refuse it), so no text holds one.
_SURROGATE = re.compile("[\\ud800-\\udfff]")


def load_json(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads for a request body: every failure raises Malformed with a fixed reason. Nesting
    beyond `max_depth` raises TooDeep instead of RecursionError (and nothing deeper reaches code
    that walks it); NaN, Infinity and numbers out of a float's range are refused (they are not
    JSON, and would turn into values no JSON encoder writes back); so is a string, key or value,
    holding a lone surrogate escape ("\\ud800"), which would fail later, wherever the text is
    encoded."""
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:  # the C decoder stops at the interpreter's recursion limit
        raise TooDeep() from None
    except _OutOfRange:
        raise Malformed("a JSON number out of range") from None
    except ValueError:  # JSONDecodeError, an integer of more than 4,300 digits, NaN
        raise Malformed("JSON that does not parse") from None
    if isinstance(value, str):
        _check_text(value)
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise TooDeep()
        if isinstance(node, dict):
            for key in node:
                _check_text(key)
            children: Any = node.values()
        else:
            children = node
        for child in children:
            if isinstance(child, str):
                _check_text(child)
            elif isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return value


def _check_text(text: str) -> None:
    if not text.isascii() and _SURROGATE.search(text):
        raise Malformed("a JSON string with a lone surrogate")


def _no_constant(name: str) -> Any:
    raise ValueError(name)  # NaN, Infinity, -Infinity


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _OutOfRange(text[:20])
    return number


REFUSALS_LOG = logging.getLogger("certops.web.refusals")
# Each server keeps its own throttles (several run in one process in tests); refuse() finds its
# server's through the app, and falls back to this one for an app served some other way.
_REFUSALS = web.AppKey("certops_refusals", Throttle)
# routes whose bodies are capped below BODY_LIMIT: path -> bytes; a request that declares more is
# handed to its handler unread, for the route's own refusal (POST /api/report answers 401)
BODY_CAPS = web.AppKey("certops_body_caps", dict[str, int])


def _over_own_cap(request: web.Request) -> bool:
    cap = request.config_dict.get(BODY_CAPS, {}).get(_where(request))
    return cap is not None and request.content_length is not None and request.content_length > cap


_fallback_refusals = Throttle(REFUSALS_LOG)


class _State(Enum):
    HEAD = "waiting for a request head"
    BODY = "waiting for a request body"
    BUSY = "handling a request"
    IDLE = "idle between requests"


class _Connection(asyncio.Protocol):
    """Stands between the transport and aiohttp's protocol for one connection, passing every call
    through, so the guard sees each connection arrive, go quiet and end."""

    def __init__(self, guard: _Guard, inner: Callable[[], asyncio.Protocol]) -> None:
        self.guard = guard
        self.make_inner = inner
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.state = _State.HEAD
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport: asyncio's, or uvloop's (which implements it without subclassing it)
        self.transport = cast(asyncio.Transport, transport)
        if not self.guard.admit(self):
            return
        self.inner = self.make_inner()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.inner is None:
            return
        if self.state is _State.IDLE:
            self.guard.wait_for_head(self)  # the next request has begun: its head has head_timeout
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.forget(self)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    @property
    def peer(self) -> str:
        peername = self.transport.get_extra_info("peername") if self.transport is not None else None
        return str(peername[0]) if isinstance(peername, tuple) and peername else "?"

    def shut(self) -> None:
        """Closes at once: politely when nothing waits to be written, else by reset (a client
        that does not read must not keep the descriptor)."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size():
            self.transport.abort()
        else:
            self.transport.close()


class _Guard:
    """Every open connection with its state and deadline; enforces WebLimits."""

    def __init__(self, limits: WebLimits, bound: int) -> None:
        self.limits = limits
        self.bound = bound
        self.log = Throttle(log)
        self.refusals = Throttle(REFUSALS_LOG)
        self.open: set[_Connection] = set()
        self.waiting: OrderedDict[_Connection, None] = OrderedDict()  # not in a request, longest first
        self.by_transport: dict[asyncio.BaseTransport, _Connection] = {}
        self.factory: Callable[[], asyncio.Protocol] | None = None

    def protocol(self) -> asyncio.Protocol:
        assert self.factory is not None
        return _Connection(self, self.factory)

    def admit(self, conn: _Connection) -> bool:
        if len(self.open) >= self.bound:
            if self.waiting:
                oldest, _ = self.waiting.popitem(last=False)
                self.log.warning(
                    "evict",
                    "%d connections open, the most allowed: closed one from %s that was %s",
                    len(self.open),
                    oldest.peer,
                    oldest.state.value,
                )
                self._drop(oldest)
            else:
                self.log.warning(
                    "full",
                    "%d connections open, the most allowed, all handling requests: refused one from %s",
                    len(self.open),
                    conn.peer,
                )
                assert conn.transport is not None
                conn.transport.abort()
                return False
        assert conn.transport is not None
        self.open.add(conn)
        self.by_transport[conn.transport] = conn
        self.wait_for_head(conn)
        return True

    def wait_for_head(self, conn: _Connection) -> None:
        self._enter(conn, _State.HEAD, self.limits.head_timeout)

    def busy(self, conn: _Connection) -> None:
        self._enter(conn, _State.BUSY, None)

    def reading_body(self, conn: _Connection) -> None:
        # evictable like a head still coming: otherwise heads sent without their bodies would hold
        # every slot, and /healthz with them (the body's own deadline is the middleware's)
        self._enter(conn, _State.BODY, None, evictable=True)

    def idle(self, conn: _Connection) -> None:
        self._enter(conn, _State.IDLE, self.limits.idle_timeout)

    def forget(self, conn: _Connection) -> None:
        self._drop(conn)

    def _enter(self, conn: _Connection, state: _State, timeout: float | None, *, evictable: bool = False) -> None:
        if conn not in self.open:
            return
        conn.state = state
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        self.waiting.pop(conn, None)
        if timeout is not None or evictable:
            self.waiting[conn] = None
        if timeout is not None:
            conn.timer = asyncio.get_running_loop().call_later(timeout, self._expired, conn)

    def _expired(self, conn: _Connection) -> None:
        conn.timer = None
        if conn.state is _State.HEAD:
            self.log.warning(
                "head",
                "closed a connection from %s that sent no complete request head within %g s",
                conn.peer,
                self.limits.head_timeout,
            )
        self._drop(conn)

    def _drop(self, conn: _Connection) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        self.waiting.pop(conn, None)
        self.open.discard(conn)
        if conn.transport is not None:
            self.by_transport.pop(conn.transport, None)
        conn.shut()

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        conn = self.by_transport.get(request.transport) if request.transport is not None else None
        try:
            if request.body_exists and not _over_own_cap(request):
                if conn is not None:
                    self.reading_body(conn)
                try:
                    async with asyncio.timeout(self.limits.body_timeout):
                        await request.read()  # kept by aiohttp: the handler's own read() gets it at once
                except TimeoutError:
                    self.log.warning(
                        "body",
                        "closed a connection from %s whose request body did not arrive within %g s",
                        request.remote,
                        self.limits.body_timeout,
                    )
                    if conn is not None:
                        self._drop(conn)
                    return web.Response(status=408)
                except web.HTTPRequestEntityTooLarge:
                    where = _where(request)
                    self.refusals.warning(f"{request.method} {where} too large",
                                      "refused %s %s from %s: a body over %d bytes (HTTP 413)",
                                      request.method, where, request.remote, request.client_max_size)  # fmt: skip
                    raise
                except (ConnectionError, web.RequestPayloadError) as exc:
                    # left mid-body, or a broken chunked encoding: aiohttp would log a traceback
                    # for each, and a client can make as many as it likes
                    self.log.log(
                        logging.INFO,
                        "broken body",
                        "dropped a request from %s whose body broke off (%s)",
                        request.remote,
                        type(exc).__name__,
                    )
                    if conn is not None:
                        self._drop(conn)
                    return web.Response(status=400)
            if conn is not None:
                self.busy(conn)
            return await handler(request)
        finally:
            if conn is not None:
                self.idle(conn)


class _BadHeads(logging.Filter):
    """aiohttp logs a malformed request head (a 1 MB URL, 100,000 headers, a NUL in a name) at
    ERROR with a traceback, one per request: any client could fill the log. It has already
    answered 400; one throttled line a second says so instead."""

    def __init__(self) -> None:
        super().__init__()
        self.lines = Throttle(REFUSALS_LOG)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        # the words before aiohttp's first colon: what is wrong, without the client's bytes
        reason = (exc.message or type(exc).__name__).strip().partition(":")[0][:80]
        self.lines.warning(
            "bad head", "refused a malformed request head (%s): %s (HTTP 400)", type(exc).__name__, reason
        )
        return False


def _quiet_bad_heads() -> None:
    """One filter on aiohttp's logger, the latest server's (tests start many in one process)."""
    server_log = logging.getLogger("aiohttp.server")
    for old in [f for f in server_log.filters if isinstance(f, _BadHeads)]:
        server_log.removeFilter(old)
    server_log.addFilter(_BadHeads())


class _GuardedSite(web.SockSite):
    """aiohttp's SockSite, with each connection's protocol wrapped by the guard."""

    def __init__(self, runner: web.AppRunner, sock: socket.socket, guard: _Guard) -> None:
        super().__init__(runner, sock)
        self._guarded_runner = runner
        self._guarded_sock = sock
        self._guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner, as SockSite.start does
        server = self._guarded_runner.server
        assert server is not None
        self._guard.factory = server
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._guard.protocol, sock=self._guarded_sock, backlog=BACKLOG)


class _AcceptErrors:
    """The event loop's exception handler, but asyncio's "socket.accept() out of system resource"
    (a full descriptor table: it comes with a traceback for every failed accept, thousands a
    second) becomes one short line a second. Anything else goes where it went before."""

    def __init__(self, previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None) -> None:
        self.previous = previous
        self.log = Throttle(log)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            exc = context.get("exception")
            self.log.warning(
                "accept",
                "cannot accept a connection (%s); asyncio retries in a second",
                exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__,
            )
            return
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)


def _quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    previous = loop.get_exception_handler()
    if not isinstance(previous, _AcceptErrors):
        loop.set_exception_handler(_AcceptErrors(previous))
