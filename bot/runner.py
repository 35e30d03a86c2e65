"""`certops run`: the long-running bot process."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from aiohttp import web

from bot.app import Core, build_core
from bot.chat.base import ChatAdapter, ChatSetupError
from bot.chat.console import ConsoleAdapter
from bot.config import Config
from bot.logs import logger
from bot.web import start_web

log = logger(__name__)


def chat_adapters(core: Core) -> tuple[list[ChatAdapter], list[web.RouteDef]]:
    """The configured chat platforms, and the web routes they need on [bot] listen."""
    adapters: list[ChatAdapter] = []
    routes: list[web.RouteDef] = []
    config = core.config
    if config.slack is not None:
        from bot.chat.slack import SlackAdapter

        slack = SlackAdapter(config.slack, core)
        adapters.append(slack)
        routes += slack.routes()
    if config.line is not None:
        from bot.chat.line import LineAdapter  # each SDK is imported only when its platform is configured

        line = LineAdapter(config.line, core)
        adapters.append(line)
        routes += line.routes()
    return adapters, routes


# The event loop shares the GIL with the database and /metrics threads. At the default 5 ms a
# thread holds it, a request that needs a few dozen hand-overs (any /healthz) waited up to 0.6 s
# behind a /metrics render of 10,000 sites; at 1 ms the loop gets its turn five times as often.
SWITCH_INTERVAL = 0.001


async def serve(config: Config, *, console: bool = False) -> int:
    sys.setswitchinterval(SWITCH_INTERVAL)
    core = build_core(config)
    try:
        adapters, routes = chat_adapters(core)
        runner = await start_web(core, routes)
    except BaseException:
        core.close()
        raise
    log.info("certops is listening on %s", config.bot.listen)
    try:
        for adapter in adapters:
            try:
                await adapter.start()
            except ChatSetupError as exc:
                log.error("%s", exc)
                print(f"certops run: not starting: {exc}", file=sys.stderr)
                return 2
            core.attach(adapter)
        shell = ConsoleAdapter(core) if console else None
        if shell is not None:
            core.attach(shell)
        await core.start()
        if shell is not None:
            await shell.run()
        else:
            await _until_stopped()
    finally:
        await core.stop()
        for adapter in adapters:
            with contextlib.suppress(Exception):
                await adapter.stop()
        await runner.cleanup()
        core.close()
    return 0


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("certops is stopping")
