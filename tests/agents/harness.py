"""A real bot (the in-process Core behind start_web on 127.0.0.1:0) and real `certops agent`
subprocesses on loopback. A site that fails "from one network only" is a TLS server that resets
handshakes from chosen source addresses: each agent probes from its own address on 127/8
(`--source-address`), the bot from 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bot.app import Core, build_core
from bot.config import parse_config
from bot.web import start_web
from tests.fakes.destination import RecordingDestination
from tests.fakes.tls import Lab

SECRETS = {"tokyo": "tokyo-secret-0123456789", "frankfurt": "frankfurt-secret-0123456789"}
SOURCES = {"tokyo": "127.0.0.2", "frankfurt": "127.0.0.3"}
REPO = Path(__file__).resolve().parents[2]
AGENT = [sys.executable, "-m", "bot.cli", "agent"]


def config_text(lab: Lab, port: int, *, vantage: str, confirm_from: int, report_interval: str = "1m") -> str:
    agents = "".join(
        f'[[agents]]\nname = "{name}"\nsecret_env = "CERTOPS_T_AGENT_{name.upper()}"\n'
        f'report_interval = "{report_interval}"\n'
        for name in SECRETS
    )
    return (
        '[bot]\nlisten = "127.0.0.1:0"\ndigest_at = ""\nrenotify = ""\n'
        f"{agents}"
        f'[[sites]]\nname = "www"\nurl = "https://127.0.0.1:{port}/"\nca_file = "{lab.ca_file}"\n'
        f'interval = "5s"\ntimeout = 3\nfailure_threshold = 1\nvantage = {vantage}\nconfirm_from = {confirm_from}\n'
        '[policy]\napprovers = ["slack:UAPPROVER1"]\n'
    )


@dataclass
class Bot:
    core: Core
    url: str
    chat: RecordingDestination
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def start_agent(self, name: str, tmp_path: Path) -> subprocess.Popen[bytes]:
        log = tmp_path / f"agent-{name}.log"
        env = {**os.environ, "CERTOPS_AGENT_SECRET": SECRETS[name]}
        with log.open("wb") as stderr:  # the child has its own copy of the descriptor
            process = subprocess.Popen(
                [*AGENT, "--bot", self.url, "--name", name, "--source-address", SOURCES[name]],
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self.agents[name] = process
        self.logs[name] = log
        return process

    def log_of(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    async def until(self, what: str, check: Callable[[], bool], timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {n}:\n{self.log_of(n)[-2000:]}" for n in self.logs)
                raise AssertionError(f"waited {timeout:g} s for {what}; delivered {self.titles()}\n{logs}")
            await asyncio.sleep(0.2)

    def titles(self) -> list[str]:
        return self.chat.titles()

    def reported(self, agent: str) -> bool:
        return any(v.vantage == agent for v in self.core.store.vantage_results("www"))


@asynccontextmanager
async def running_bot(text: str, tmp_path: Path) -> AsyncIterator[Bot]:
    for name, secret in SECRETS.items():
        os.environ[f"CERTOPS_T_AGENT_{name.upper()}"] = secret
    core = build_core(parse_config(text, "test.toml"), database=str(tmp_path / "certops.db"))
    chat = RecordingDestination()
    core.attach(chat)
    runner = await start_web(core, [])
    port = runner.addresses[0][1]
    bot = Bot(core, f"http://127.0.0.1:{port}", chat)
    await core.start()
    try:
        yield bot
    finally:
        for process in bot.agents.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in bot.agents.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        await core.stop()
        await runner.cleanup()
        core.close()


async def rounds(bot: Bot, count: int) -> None:
    """Waits for `count` more rounds of www at the bot."""
    for _ in range(count):
        before = bot.core.store.site_health("www").last_checked_at
        await bot.until(
            "the next round of www",
            lambda before=before: bot.core.store.site_health("www").last_checked_at not in (None, before),
        )
