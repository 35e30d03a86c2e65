"""The bot's HTTP endpoints on [bot] listen: chat webhooks from the adapters, /healthz and /metrics."""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from bot.app import Core
from bot.config import split_host_port
from bot.metrics import CONTENT_TYPE


async def start_web(core: Core, routes: list[web.RouteDef]) -> web.AppRunner:
    app = web.Application(client_max_size=1024 * 1024)

    async def healthz(_request: web.Request) -> web.Response:
        report = await health(core)
        return web.json_response(report, status=200 if report["status"] == "ok" else 503)

    async def metrics(_request: web.Request) -> web.Response:
        body = await asyncio.to_thread(core.metrics.render)  # the live gauges read the database
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    app.add_routes([web.get("/healthz", healthz), web.get("/metrics", metrics), *routes])
    parsed = split_host_port(core.config.bot.listen, any_port=True)  # 0: a port the system picks
    assert parsed is not None  # validated with the config
    runner, _port = await serve_app(app, parsed[0], parsed[1])
    return runner


DB_TIMEOUT = 2.0
_HEALTH_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="certops-healthz")


async def health(core: Core) -> dict[str, Any]:
    """`ok` only while the scheduler runs, the database answers and the outbox is not stuck;
    each failing check is named, so a load balancer's 503 says why."""
    problems: list[str] = []
    if not core.watcher.running:
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
    return {
        "status": "ok" if not problems else "failing",
        "problems": problems,
        "follow_ups_running": core.worker.busy,
        "outbox_pending": pending,
        "outbox_errors": core.outbox.permanent_errors(),
    }


async def serve_app(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serves `app` on host:port and returns the runner and the port bound (port 0 picks a free
    one: the tests' stand-ins and the benchmarks use that)."""
    sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner, int(sock.getsockname()[1])
