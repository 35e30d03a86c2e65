"""A whole LINE bot on loopback: the real Core and LineAdapter behind an aiohttp web app, the LINE
API stand-in, and a client that signs webhooks with the channel secret exactly as LINE does."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.app import Core, build_core
from bot.chat.line import WEBHOOK_PATH, LineAdapter, QuotaRule
from bot.config import parse_config
from bot.store import ActionRequest
from bot.web import serve_app
from tests.fakes.line_api import ACCESS_TOKEN, LineApiStandIn

CHANNEL_SECRET = "0123456789abcdef0123456789abcdef"
SECRET_ENV = "CERTOPS_TEST_LINE_CHANNEL_SECRET"
TOKEN_ENV = "CERTOPS_TEST_LINE_ACCESS_TOKEN"

APPROVER = "U" + "a" * 32
SECOND_APPROVER = "U" + "b" * 32
BYSTANDER = "U" + "c" * 32
GROUP = "C" + "1" * 32
ROOM = "R" + "2" * 32

_ids = itertools.count(1)


def sign(body: bytes, secret: str = CHANNEL_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def source(user: str | None = APPROVER, group: str | None = None, room: str | None = None) -> dict[str, str]:
    if group:
        return {"type": "group", "groupId": group, **({"userId": user} if user else {})}
    if room:
        return {"type": "room", "roomId": room, **({"userId": user} if user else {})}
    assert user is not None
    return {"type": "user", "userId": user}


def _event(kind: str, src: dict[str, str], event_id: str | None, **extra: Any) -> dict[str, Any]:
    n = next(_ids)
    return {
        "type": kind,
        "mode": "active",
        "timestamp": int(time.time() * 1000) + n,
        "webhookEventId": event_id or f"01HTESTEVENT{n:014d}",
        "deliveryContext": {"isRedelivery": False},
        "replyToken": f"reply-token-{n}",
        "source": src,
        **extra,
    }


def text_event(text: str, src: dict[str, str] | None = None, event_id: str | None = None) -> dict[str, Any]:
    message = {"type": "text", "id": str(next(_ids)), "quoteToken": "q", "text": text}
    return _event("message", src or source(), event_id, message=message)


def postback_event(data: str, src: dict[str, str] | None = None, event_id: str | None = None) -> dict[str, Any]:
    return _event("postback", src or source(), event_id, postback={"data": data})


def config_text(api_url: str, sites: str = "", policy: str = "", to: str | None = GROUP) -> str:
    """`to`: None leaves [chat.line] to out, as a first config may."""
    to_line = f'to = "{to}"\n' if to else ""
    return (
        f"{sites}"
        f"[chat.line]\n{to_line}"
        f'channel_secret_env = "{SECRET_ENV}"\naccess_token_env = "{TOKEN_ENV}"\n'
        f'api_url = "{api_url}"\n'
        f'[policy]\napprovers = ["line:{APPROVER}", "line:{SECOND_APPROVER}"]\n{policy}'
    )


def site_text(name: str, port: int, ca_file: str) -> str:
    return f'[[sites]]\nname = "{name}"\nurl = "https://localhost:{port}/"\nca_file = "{ca_file}"\ntimeout = 3\n'


@dataclass
class LineBot:
    core: Core
    adapter: LineAdapter
    api: LineApiStandIn
    url: str
    http: aiohttp.ClientSession

    async def post(self, body: bytes, signature: str | None) -> int:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Line-Signature"] = signature
        async with self.http.post(self.url, data=body, headers=headers) as response:
            await response.read()
            return response.status

    async def deliver(self, *events: dict[str, Any], settle: bool = True) -> int:
        """Posts the events the way LINE does (signed with the channel secret) and waits for the work."""
        body = json.dumps({"destination": "Ubot", "events": list(events)}).encode()
        status = await self.post(body, sign(body))
        if settle:
            await self.settle()
        return status

    async def settle(self, timeout: float = 10.0) -> None:
        """Until the adapter and the core's worker have nothing left in hand."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            await self.adapter.idle(max(0.0, deadline - loop.time()))
            if not self.core.worker.busy and not self.adapter._tasks:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the LINE bot did not settle")

    def request(self, *, ttl: float = 600.0, site: str | None = None, action: str = "repair-store") -> ActionRequest:
        """An approval button's request, as /ssl heal would make it (host iis01 is not configured,
        so an approved run fails fast and harmlessly: what matters is that it runs once)."""
        return self.core.store.create_request(
            incident_id=None,
            site=site,
            host="iis01",
            action=action,
            args=("3A" * 20,),
            target="3A" * 20,
            requested_by="test",
            ttl=ttl,
        )

    def audit(self) -> list[dict[str, Any]]:
        """The audit log as plain dicts (the store returns AuditEntry rows)."""
        return [dataclasses.asdict(entry) for entry in self.core.store.audit_log(1000)]


@asynccontextmanager
async def line_bot(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    sites: str = "",
    quota: QuotaRule | None = None,
    reply_grace: float = 0.0,
    to: str | None = GROUP,
) -> AsyncIterator[LineBot]:
    monkeypatch.setenv(SECRET_ENV, CHANNEL_SECRET)
    monkeypatch.setenv(TOKEN_ENV, ACCESS_TOKEN)
    async with LineApiStandIn() as api:
        config = parse_config(config_text(api.url, sites, to=to), "test.toml")
        assert config.line is not None
        core = build_core(config, database=str(tmp_path / "certops.db"))
        adapter = LineAdapter(
            config.line, core, quota=quota or QuotaRule(window=0.3), reply_grace=reply_grace, retry_delay=0.01
        )
        await adapter.start()
        app = web.Application()
        app.add_routes(adapter.routes())
        runner, port = await serve_app(app, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
        try:
            async with aiohttp.ClientSession() as http:
                yield LineBot(core, adapter, api, url, http)
        finally:
            await core.worker.drain(5)
            await adapter.stop()
            await runner.cleanup()
            core.close()
