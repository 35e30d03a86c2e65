"""Chat adapters as outbox destinations, alone: each adapter talks to its stand-in over loopback
HTTP, without the rest of the bot. Deliveries need nothing of the core but somewhere to write an
audit line (LINE's quota rule), so `core` is a small stand-in unless a test passes more."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from bot.chat.console import ConsoleAdapter
from bot.chat.line import LineAdapter, QuotaRule
from bot.chat.slack import SlackAdapter
from bot.config import parse_config
from tests.fakes.line_api import ACCESS_TOKEN, LineApiStandIn
from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET, SlackAPI

SLACK_CHANNEL = "C0OUTBOX"
LINE_TO = "C" + "9" * 32
SLACK_TOKEN_ENV = "CERTOPS_TEST_OUTBOX_SLACK_TOKEN"
SLACK_SECRET_ENV = "CERTOPS_TEST_OUTBOX_SLACK_SECRET"
LINE_SECRET_ENV = "CERTOPS_TEST_OUTBOX_LINE_SECRET"
LINE_TOKEN_ENV = "CERTOPS_TEST_OUTBOX_LINE_TOKEN"


@dataclass
class AuditOnly:
    """The one store call a delivery may make: LINE records pushes a used-up quota dropped."""

    entries: list[tuple[str, str, str, str, str]] = field(default_factory=list)

    def audit(self, actor: str, event: str, subject: str, outcome: str, detail: str = "") -> None:
        self.entries.append((actor, event, subject, outcome, detail))


def bare_core(store: Any = None, dispatcher: Any = None) -> Any:
    """What an adapter's constructor and deliver() touch of the Core, and nothing more."""
    return SimpleNamespace(store=store or AuditOnly(), approvals=SimpleNamespace(), dispatcher=dispatcher)


def set_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SLACK_TOKEN_ENV, BOT_TOKEN)
    monkeypatch.setenv(SLACK_SECRET_ENV, SIGNING_SECRET)
    monkeypatch.setenv(LINE_SECRET_ENV, "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv(LINE_TOKEN_ENV, ACCESS_TOKEN)


def slack_config(api_url: str) -> str:
    return (
        f'[chat.slack]\nmode = "http"\nchannel = "{SLACK_CHANNEL}"\nbot_token_env = "{SLACK_TOKEN_ENV}"\n'
        f'signing_secret_env = "{SLACK_SECRET_ENV}"\napi_url = "{api_url}"\n'
    )


def line_config(api_url: str) -> str:
    return (
        f'[chat.line]\nto = "{LINE_TO}"\nchannel_secret_env = "{LINE_SECRET_ENV}"\n'
        f'access_token_env = "{LINE_TOKEN_ENV}"\napi_url = "{api_url}"\n'
    )


def slack_adapter(api: SlackAPI, core: Any = None) -> SlackAdapter:
    """Call inside the event loop (the adapter opens its HTTP session there); stop() it after."""
    settings = parse_config(slack_config(api.api_url), "test.toml").slack
    assert settings is not None
    return SlackAdapter(settings, core or bare_core())


async def line_adapter(api: LineApiStandIn, core: Any = None, quota: QuotaRule | None = None) -> LineAdapter:
    settings = parse_config(line_config(api.url), "test.toml").line
    assert settings is not None
    adapter = LineAdapter(settings, core or bare_core(), quota=quota or QuotaRule(window=0.3), retry_delay=0.01)
    await adapter.start()
    return adapter


@asynccontextmanager
async def slack_destination(
    monkeypatch: pytest.MonkeyPatch, *, core: Any = None, clock: Callable[[], float] = time.monotonic
) -> AsyncIterator[tuple[SlackAPI, SlackAdapter]]:
    set_env(monkeypatch)
    async with SlackAPI(clock=clock) as api:
        adapter = slack_adapter(api, core)
        try:
            yield api, adapter
        finally:
            await adapter.stop()


@asynccontextmanager
async def line_destination(
    monkeypatch: pytest.MonkeyPatch,
    *,
    core: Any = None,
    quota: QuotaRule | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[tuple[LineApiStandIn, LineAdapter]]:
    set_env(monkeypatch)
    async with LineApiStandIn(clock=clock) as api:
        adapter = await line_adapter(api, core, quota)
        try:
            yield api, adapter
        finally:
            await adapter.stop(timeout=2)


def console_destination(dispatcher: Any = None) -> tuple[io.StringIO, ConsoleAdapter]:
    out = io.StringIO()
    return out, ConsoleAdapter(bare_core(dispatcher=dispatcher), user="tester", stdin=io.StringIO(), stdout=out)
