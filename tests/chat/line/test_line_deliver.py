"""The LINE adapter as the outbox's destination: deliver() pushes with the outbox row's own
X-Line-Retry-Key (a 409 on a retry means an earlier attempt got through), skips minor edits
(LINE cannot edit, and pushes cost quota), sorts failures into transient and permanent, and
follows the quota rule that command follow-ups follow."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.chat.base import DeliveryError, DeliveryKind, Outgoing
from bot.chat.line import LineAdapter, QuotaRule
from commands.model import Reply, Tone
from tests.chat.destinations import LINE_TO, AuditOnly, bare_core, line_destination
from tests.chat.line.test_line_webhook import words
from tests.fakes.line_api import ACCESS_TOKEN, LineApiStandIn

CARD = Reply("www: certificate expires in 3 days", Tone.WARNING, ("Not after 2030-01-04",), incident_id="INC-0007")
MINOR = Reply("www: certificate expires in 3 days", Tone.WARNING, ("Checked again: no change",), incident_id="INC-0007")
RESOLVED = Reply("Resolved: www", Tone.OK, ("Renewed",), incident_id="INC-0007")

Scenario = Callable[[LineApiStandIn, LineAdapter], Awaitable[None]]


def run(monkeypatch: pytest.MonkeyPatch, scenario: Scenario, **kwargs: Any) -> None:
    async def main() -> None:
        async with line_destination(monkeypatch, **kwargs) as (api, adapter):
            await scenario(api, adapter)

    asyncio.run(main())


async def refused(adapter: LineAdapter, message: Outgoing) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        await adapter.deliver(message)
    return caught.value


def test_a_card_is_pushed_to_the_configured_chat_with_the_rows_retry_key(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(api: LineApiStandIn, adapter: LineAdapter) -> None:
        ref = await adapter.deliver(Outgoing(DeliveryKind.NEW, CARD, retry_key="row-7-key"))
        [push] = api.pushes
        assert push.json["to"] == LINE_TO
        assert push.headers["X-Line-Retry-Key"] == "row-7-key"
        assert "www: certificate expires in 3 days" in words(push)
        assert ref is not None
        assert ref.isdigit()  # LINE's id of the message

    run(monkeypatch, scenario)


def test_a_minor_edit_is_not_pushed_and_keeps_the_cards_ref(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(api: LineApiStandIn, adapter: LineAdapter) -> None:
        ref = await adapter.deliver(Outgoing(DeliveryKind.EDIT, MINOR, "123", retry_key="k", notable=False))
        assert ref == "123"
        assert api.calls == []  # not even the quota was read

    run(monkeypatch, scenario)


def test_a_notable_edit_and_a_renotification_are_pushes_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(api: LineApiStandIn, adapter: LineAdapter) -> None:
        assert await adapter.deliver(Outgoing(DeliveryKind.EDIT, RESOLVED, "123", retry_key="k1")) == "123"
        assert await adapter.deliver(Outgoing(DeliveryKind.THREAD, CARD, "123", retry_key="k2")) == "123"
        assert [p.headers["X-Line-Retry-Key"] for p in api.pushes] == ["k1", "k2"]
        assert "Resolved: www" in words(api.pushes[0])

    run(monkeypatch, scenario)


def test_a_retry_of_a_push_that_got_through_gets_409_and_counts_as_delivered_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario(api: LineApiStandIn, adapter: LineAdapter) -> None:
        api.fail(503, accept=True, times=1)  # LINE takes the push; its answer is lost
        message = Outgoing(DeliveryKind.NEW, CARD, retry_key="row-8-key")
        failure = await refused(adapter, message)
        assert not failure.permanent
        assert await adapter.deliver(message) == "row-8-key"  # 409: the retry key is the reference
        assert [c.status for c in api.push_attempts()] == [503, 409]
        assert [c.headers["X-Line-Retry-Key"] for c in api.push_attempts()] == ["row-8-key"] * 2
        assert len(api.delivered) == 1
        assert api.used == 1

    run(monkeypatch, scenario)


def test_a_rate_limit_is_transient_and_carries_lines_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(api: LineApiStandIn, adapter: LineAdapter) -> None:
        api.fail(429, retry_after=3, times=1)
        failure = await refused(adapter, Outgoing(DeliveryKind.NEW, CARD, retry_key="k"))
        assert not failure.permanent
        assert failure.retry_after == 3.0
        assert str(failure) == "LINE refused a push (HTTP 429 Too Many Requests)"

    run(monkeypatch, scenario)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_transient(monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    async def scenario(api: LineApiStandIn, adapter: LineAdapter) -> None:
        api.fail(status, times=1)
        assert not (await refused(adapter, Outgoing(DeliveryKind.NEW, CARD, retry_key="k"))).permanent
        assert await adapter.deliver(Outgoing(DeliveryKind.NEW, CARD, retry_key="k")) is not None

    run(monkeypatch, scenario)


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_a_refused_push_is_permanent_and_names_no_token(monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    async def scenario(api: LineApiStandIn, adapter: LineAdapter) -> None:
        api.fail(status, times=1)
        failure = await refused(adapter, Outgoing(DeliveryKind.NEW, CARD, retry_key="k"))
        assert failure.permanent
        assert f"HTTP {status}" in str(failure)
        assert ACCESS_TOKEN not in str(failure)

    run(monkeypatch, scenario)


def test_an_unreachable_line_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(api: LineApiStandIn, adapter: LineAdapter) -> None:
        await api.__aexit__(None, None, None)
        failure = await refused(adapter, Outgoing(DeliveryKind.NEW, CARD, retry_key="k"))
        assert not failure.permanent
        assert str(failure).startswith("could not reach LINE to push")

    run(monkeypatch, scenario)


def test_a_used_up_quota_fails_the_delivery_for_good_and_leaves_an_audit_line(monkeypatch: pytest.MonkeyPatch) -> None:
    audit = AuditOnly()

    async def scenario(api: LineApiStandIn, adapter: LineAdapter) -> None:
        api.used = api.quota_limit
        failure = await refused(adapter, Outgoing(DeliveryKind.NEW, CARD, retry_key="k"))
        assert failure.permanent
        assert str(failure) == "LINE monthly message quota is used up"
        assert api.push_attempts() == []
        [(_, event, subject, outcome, detail)] = audit.entries
        assert (event, subject, outcome) == ("line-push", LINE_TO, "skipped")
        assert "www: certificate expires in 3 days" in detail

    run(monkeypatch, scenario, core=bare_core(audit))


def test_while_the_quota_is_low_deliveries_are_handed_to_one_summary_push(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(api: LineApiStandIn, adapter: LineAdapter) -> None:
        api.used = api.quota_limit - 5  # 5 left: under QuotaRule's 20
        refs = [
            await adapter.deliver(Outgoing(DeliveryKind.NEW, CARD, retry_key="k1")),
            await adapter.deliver(Outgoing(DeliveryKind.EDIT, RESOLVED, "k1", retry_key="k2")),
        ]
        assert refs == ["k1", "k1"]  # handed over: the worker may mark both rows sent
        assert api.pushes == []  # held for the window...
        await adapter.stop(timeout=2)  # ...which stop() closes at once
        [summary] = api.pushes
        assert "www: certificate expires in 3 days" in words(summary)
        assert "Resolved: www" in words(summary)

    run(monkeypatch, scenario, quota=QuotaRule(window=30.0))


def test_a_stopping_adapter_refuses_deliveries_as_transient_so_the_rows_wait_for_the_next_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario(api: LineApiStandIn, adapter: LineAdapter) -> None:
        await adapter.stop(timeout=2)
        failure = await refused(adapter, Outgoing(DeliveryKind.NEW, CARD, retry_key="k"))
        assert not failure.permanent
        assert api.calls == []

    run(monkeypatch, scenario)
