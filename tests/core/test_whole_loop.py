"""The whole loop through the real chat adapters: a site breaks on the simulated IIS host, the
scheduler's rounds confirm it, one card reaches Slack (then is edited in place) and LINE, the
host is diagnosed over WinRM, a press repairs it, and both chats end with the card resolved."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.app import build_core
from bot.chat.line import LineAdapter, QuotaRule
from bot.chat.slack import SlackAdapter
from bot.config import parse_config
from bot.core.model import IncidentState
from tests.chat.destinations import LINE_TO, SLACK_CHANNEL, line_config, set_env, slack_config
from tests.core.test_watching import RESOLVER, deliver_due
from tests.fakes.bot import APPROVER, press
from tests.fakes.clock import ManualClock
from tests.fakes.iis import SimulatedIIS
from tests.fakes.line_api import LineApiStandIn
from tests.fakes.slack_api import SlackAPI


def test_a_broken_site_reaches_slack_and_line_once_and_both_end_resolved_after_a_press(
    iis: SimulatedIIS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        async with SlackAPI() as slack_api, LineApiStandIn(quota_type="none") as line_api:
            text = iis.config() + slack_config(slack_api.api_url) + line_config(line_api.url)
            clock = ManualClock()
            core = build_core(
                parse_config(text, "test.toml"), database=str(tmp_path / "db"), resolver=RESOLVER, clock=clock
            )
            assert core.config.slack is not None
            assert core.config.line is not None
            slack = SlackAdapter(core.config.slack, core)
            line = LineAdapter(core.config.line, core, quota=QuotaRule(window=0.1))
            await slack.start()
            await line.start()
            core.attach(slack)
            core.attach(line)
            try:
                await core.watcher.probe_site("www")
                await core.watcher.idle()
                await deliver_due(core)
                assert slack_api.accepted("chat.postMessage") == []  # one failed round is not an incident
                clock.advance(30)
                await core.watcher.probe_site("www")
                await core.watcher.idle()
                await deliver_due(core)

                [incident] = core.store.open_incidents()
                [post] = slack_api.accepted("chat.postMessage")
                assert post.body["channel"] == SLACK_CHANNEL
                channel, ts = core.store.card_ref(incident.id, "slack").split(":")  # type: ignore[union-attr]
                card = slack_api.message(channel, ts)
                assert "Missing stored keyset" in card.block_text()
                buttons = card.button_values()
                assert buttons, "the proposed repairs are buttons on the card"
                first_pushes = list(line_api.pushes)
                assert first_pushes
                assert all(json.loads(json.dumps(c.json))["to"] == LINE_TO for c in first_pushes)

                clock.advance(300)
                await core.watcher.probe_site("www")  # still broken: the same card, no second post
                await core.watcher.idle()
                await deliver_due(core)
                assert len(slack_api.accepted("chat.postMessage")) == 1

                repair = next(r for r in core.store.requests_for(incident.id) if r.action == "repair-store")
                assert f"act:{repair.token}" in buttons
                _approved, result = await press(core, f"act:{repair.token}", who=APPROVER)
                assert result.resolved
                await deliver_due(core)

                closed = core.store.incident(incident.id)
                assert closed is not None
                assert closed.state is IncidentState.RESOLVED
                assert len(slack_api.accepted("chat.postMessage")) == 1
                final = slack_api.message(channel, ts)
                assert final.text.startswith("Resolved: ") or "Resolved: " in final.block_text()
                assert final.button_values() == []
                last_push = json.dumps(line_api.pushes[-1].json)
                assert "Resolved" in last_push
                keys = [c.headers.get("X-Line-Retry-Key") for c in line_api.pushes]
                assert len(set(keys)) == len(keys), "each message has a retry key of its own"
            finally:
                await core.outbox.stop()
                await slack.stop()
                await line.stop()
                core.close()

    asyncio.run(scenario())
