"""The bot's HTTP endpoints on [bot] listen: chat webhooks from the adapters, and /healthz."""

from __future__ import annotations

import socket

from aiohttp import web

from bot.app import Core
from bot.config import split_host_port


async def start_web(core: Core, routes: list[web.RouteDef]) -> web.AppRunner:
    app = web.Application(client_max_size=1024 * 1024)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "follow_ups_running": core.worker.busy})

    app.add_routes([web.get("/healthz", healthz), *routes])
    parsed = split_host_port(core.config.bot.listen)
    assert parsed is not None  # validated with the config
    runner, _port = await serve_app(app, parsed[0], parsed[1])
    return runner


async def serve_app(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serves `app` on host:port and returns the runner and the port bound (port 0 picks a free
    one: the tests' stand-ins and the benchmarks use that)."""
    sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner, int(sock.getsockname()[1])
