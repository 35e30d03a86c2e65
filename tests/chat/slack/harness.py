"""A whole certops core with its Slack adapter in http mode, served on 127.0.0.1 port 0, talking
to the Slack stand-in; requests reach it over real HTTP, signed with the real algorithm. Approved
host actions run for real, through pywinrm, against the WinRM simulator as host iis01."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from bot.app import Core, build_core
from bot.chat.slack import EVENTS_PATH, SlackAdapter
from bot.config import parse_config
from bot.core.model import Incident
from bot.probe import Resolver
from bot.web import serve_app
from host_actions.simulator import Faults, HostModel, WinRMSimulator
from host_actions.simulator.scenarios import incident_host
from tests.fakes.bot import SIM_PASSWORD_ENV, host_config, open_incident
from tests.fakes.slack_api import SIGNING_SECRET, Call, SlackAPI

CHANNEL = "C0CERTOPS"
ENV = {
    "CERTOPS_TEST_SLACK_BOT_TOKEN": "xoxb-test-not-a-real-token",
    "CERTOPS_TEST_SLACK_APP_TOKEN": "xapp-test-not-a-real-token",
    "CERTOPS_TEST_SLACK_SIGNING_SECRET": SIGNING_SECRET,
}
_triggers = itertools.count(1)


def config_text(api_url: str, *, mode: str = "http", sites: str = "", policy: str = "") -> str:
    return f"""
{sites}
[chat.slack]
mode = "{mode}"
channel = "{CHANNEL}"
bot_token_env = "CERTOPS_TEST_SLACK_BOT_TOKEN"
app_token_env = "CERTOPS_TEST_SLACK_APP_TOKEN"
signing_secret_env = "CERTOPS_TEST_SLACK_SIGNING_SECRET"
api_url = "{api_url}"

[policy]
approvers = ["slack:U0ALICE", "slack:U0BOB", "slack-group:S0OPS"]
two_person = ["renew"]
{policy}
"""


def site_toml(name: str, port: int, ca_file: str) -> str:
    return f'[[sites]]\nname = "{name}"\nurl = "https://localhost:{port}/"\nca_file = "{ca_file}"\ntimeout = 3\n'


@contextmanager
def simulated_host(
    monkeypatch: pytest.MonkeyPatch, model: HostModel | None = None, *, faults: Faults | None = None
) -> Iterator[WinRMSimulator]:
    """The IIS host as a WinRM simulator (the mission's incident unless told otherwise), with its
    password in the environment variable that host_config() names. Pass it to running_bot(sim=...)."""
    with WinRMSimulator(model or incident_host(), faults=faults) as sim:
        monkeypatch.setenv(SIM_PASSWORD_ENV, sim.password)
        yield sim


@dataclass
class Bot:
    api: SlackAPI
    core: Core
    adapter: SlackAdapter
    url: str
    session: aiohttp.ClientSession
    calls_at_start: int = 0

    def new_calls(self) -> list[Call]:
        """Web API calls since the bot started (start() checks the tokens)."""
        return self.api.calls[self.calls_at_start :]

    async def send(
        self,
        body: str,
        *,
        sign: bool = True,
        secret: str = SIGNING_SECRET,
        timestamp: float | None = None,
        content_type: str = "application/x-www-form-urlencoded",
    ) -> tuple[int, str, float]:
        """POSTs a raw body to /slack/events; returns status, body text and seconds to the answer."""
        headers = {"Content-Type": content_type}
        if sign:
            ts = str(int(time.time() if timestamp is None else timestamp))
            headers["X-Slack-Request-Timestamp"] = ts
            headers["X-Slack-Signature"] = sign_body(secret, ts, body)
        started = time.perf_counter()
        async with self.session.post(self.url, data=body.encode(), headers=headers) as response:
            text = await response.text()
            return response.status, text, time.perf_counter() - started

    async def command(self, text: str, *, user: str = "U0ALICE", **kwargs: Any) -> tuple[int, str, float]:
        return await self.send(command_body(text, user=user, response_url=self.api.response_url()), **kwargs)

    async def press(
        self, token: str, ref: str, *, user: str = "U0ALICE", message: dict[str, Any] | None = None, **kwargs: Any
    ) -> tuple[int, str, float]:
        channel, _, ts = ref.partition(":")
        payload = press_payload(token, channel, ts, user=user, response_url=self.api.response_url(), message=message)
        return await self.send(urlencode({"payload": json.dumps(payload)}), **kwargs)

    def open_incident(self, subject: str = "www", summary: str = "TLS handshake reset at origin") -> Incident:
        """An open incident, as the probes would have opened it."""
        return open_incident(self.core, subject, summary)

    def audit(self) -> list[dict[str, Any]]:
        """The audit log as plain dicts (the store returns AuditEntry rows)."""
        return [dataclasses.asdict(entry) for entry in self.core.store.audit_log()]


def sign_body(secret: str, timestamp: str, body: str) -> str:
    """Slack's v0 signature, made by slack_sdk's own implementation of it."""
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    assert signature is not None
    return signature


def command_body(text: str, *, user: str, response_url: str, trigger_id: str | None = None) -> str:
    return urlencode(command_fields(text, user=user, response_url=response_url, trigger_id=trigger_id))


def command_fields(text: str, *, user: str, response_url: str, trigger_id: str | None = None) -> dict[str, str]:
    return {
        "token": "legacy-verification-token-unused",
        "team_id": "T0TEST",
        "team_domain": "certops-test",
        "channel_id": CHANNEL,
        "channel_name": "ops",
        "user_id": user,
        "user_name": user.lower(),
        "command": "/ssl",
        "text": text,
        "api_app_id": "A0TEST",
        "response_url": response_url,
        "trigger_id": trigger_id or f"{next(_triggers)}.42.abcdef",
    }


def press_payload(
    token: str,
    channel: str,
    ts: str,
    *,
    user: str,
    response_url: str,
    trigger_id: str | None = None,
    message: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A block_actions payload as Slack sends it; `message` is Slack's copy of the card."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0TEST"},
        "api_app_id": "A0TEST",
        "token": "legacy-verification-token-unused",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": trigger_id or f"{next(_triggers)}.42.abcdef",
        "team": {"id": "T0TEST", "domain": "certops-test"},
        "channel": {"id": channel, "name": "ops"},
        "message": message or {"type": "message", "ts": ts, "text": "card"},
        "response_url": response_url,
        "actions": [
            {
                "action_id": "certops_btn_0",
                "block_id": "b0",
                "value": token,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


@asynccontextmanager
async def running_bot(
    tmp_path: Path,
    *,
    mode: str = "http",
    sites: str = "",
    policy: str = "",
    groups: dict[str, list[str]] | None = None,
    not_member_of: tuple[str, ...] = (),
    sim: WinRMSimulator | None = None,
    resolver: Resolver | None = None,
) -> AsyncIterator[Bot]:
    """http mode: the adapter's routes on an aiohttp server at 127.0.0.1 port 0.
    socket mode: the adapter dials the stand-in's WebSocket, as it would dial Slack.
    sim: the WinRM simulator the config names as host iis01; actions run on it over pywinrm."""
    async with SlackAPI(groups=groups, not_member_of=not_member_of) as api:
        hosts = host_config(sim.url, sim.username) if sim is not None else ""
        config = parse_config(config_text(api.api_url, mode=mode, sites=sites + hosts, policy=policy))
        core = build_core(config, database=str(tmp_path / "certops.db"), resolver=resolver)
        assert config.slack is not None
        adapter = SlackAdapter(config.slack, core)
        app = web.Application()
        app.add_routes(adapter.routes())
        runner, port = await serve_app(app, "127.0.0.1", 0)
        try:
            await adapter.start()
            if mode == "socket":
                await api.wait_for_socket()
            async with aiohttp.ClientSession() as session:
                url = f"http://127.0.0.1:{port}{EVENTS_PATH}"
                yield Bot(api, core, adapter, url, session, len(api.calls))
        finally:  # the order certops run uses: no new requests, follow-ups deliver, then close
            await runner.cleanup()
            await core.worker.drain(timeout=5)
            await adapter.stop()
            core.close()
