"""The bot's HTTP endpoints on [bot] listen: chat webhooks from the adapters, and /healthz."""

from __future__ import annotations

from aiohttp import web

from bot.app import Core
from bot.config import split_host_port


async def start_web(core: Core, routes: list[web.RouteDef]) -> web.AppRunner:
    app = web.Application(client_max_size=1024 * 1024)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "follow_ups_running": core.worker.busy})

    app.add_routes([web.get("/healthz", healthz), *routes])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    parsed = split_host_port(core.config.bot.listen)
    assert parsed is not None  # validated with the config
    await web.TCPSite(runner, parsed[0], parsed[1]).start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port actually bound (the config may say port 0 in tests)."""
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    raise RuntimeError("the web server is not listening")
