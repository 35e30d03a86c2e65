"""Approval buttons over real HTTP: block_actions presses are acked at once; the card is edited in
place; refusals are private and leave only an audit line; an action runs once. Approved actions
run for real, through pywinrm, on host iis01: the WinRM simulator (`sim`), in the state of the
mission's incident (a renewed certificate whose key link is broken)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import urlencode

import pytest

from bot.store import ActionRequest
from commands.model import Button, Reply, Tone
from host_actions.simulator import Faults, WinRMSimulator
from tests.chat.slack.harness import Bot, press_payload, running_bot, simulated_host
from tests.fakes.slack_api import text_of


def broken_thumbprint(sim: WinRMSimulator) -> str:
    """The renewed certificate on the simulated host, whose private key link is broken."""
    return next(c.thumbprint for c in sim.model.certs if c.key_state != "ok")


def key_state(sim: WinRMSimulator, thumbprint: str) -> str:
    return next(c.key_state for c in sim.model.certs if c.thumbprint == thumbprint)


def args_for(sim: WinRMSimulator, action: str) -> tuple[str, ...]:
    """Arguments as certops proposes them, for what is really on the simulated host."""
    if action == "repair-store":
        return (broken_thumbprint(sim),)
    if action == "renew":
        return (sim.model.renewals[0].id, "--force")
    return ()  # verify-binding: every https binding of the host


def request_for(bot: Bot, sim: WinRMSimulator, action: str = "repair-store", ttl: float = 1800.0) -> ActionRequest:
    args = args_for(sim, action)
    return bot.core.store.create_request(
        incident_id=None,
        site=None,
        host="iis01",
        action=action,
        args=args,
        target=" ".join(args) or "iis01",
        requested_by="slack:U0ALICE",
        ttl=ttl,
    )


async def card_with(bot: Bot, *requests: ActionRequest) -> str:
    """Posts an incident card offering the requests as buttons, as the outbox would."""
    buttons = tuple(Button(r.action, f"act:{r.token}", "primary", confirm=f"{r.action} on {r.host}?") for r in requests)
    ref = await bot.adapter.post(
        Reply("www: needs repair", Tone.CRITICAL, ("Missing stored keyset",), buttons=buttons, incident_id="INC-0001")
    )
    assert ref is not None
    return ref


def runs_and_refusals(bot: Bot) -> list[tuple[str, str]]:
    return [(a["event"], a["outcome"]) for a in bot.audit()]


def repairs(sim: WinRMSimulator) -> int:
    """How many times certutil -repairstore ran on the simulated host."""
    return sim.scripts_run.count("repair_store")


def test_an_approvers_press_updates_the_card_in_place_and_runs_the_action(tmp_path: Path, sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path, sim=sim) as bot:
            repair, verify = request_for(bot, sim), request_for(bot, sim, "verify-binding")
            thumbprint = repair.args[0]
            ref = await card_with(bot, repair, verify)

            status, body, seconds = await bot.press(f"act:{repair.token}", ref)
            assert (status, body) == (200, "")
            assert seconds < 1.0

            updates = await bot.api.wait_for("chat.update", 2)
            assert [u.body["ts"] for u in updates] == [ref.split(":")[1]] * 2
            card = bot.api.only_message()
            assert card.edits == 2
            text = card.block_text()
            assert "www: needs repair" in text  # the card stays what it was...
            assert "Running repair-store on iis01" in text_of(updates[0].body["blocks"])  # the press's progress...
            assert "repair-store on iis01: done" in text  # ...then its result, as the host reported it
            assert f"iis01: repaired the key link of {thumbprint}" in text
            assert card.button_values() == [f"act:{verify.token}"]  # the pressed button is gone
            assert repairs(sim) == 1
            assert key_state(sim, thumbprint) == "ok"
            assert sim.model.log == [f"certutil -repairstore WebHosting {thumbprint}"]
            assert bot.api.calls_to("response_url") == []
            assert runs_and_refusals(bot) == [("approve", "approved"), ("run", "ok")]

    asyncio.run(scenario())


def test_a_presser_who_is_not_an_approver_gets_a_polite_private_answer_and_only_an_audit_line(
    tmp_path: Path, sim: WinRMSimulator
) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path, groups={"S0OPS": ["U0CAROL"]}, sim=sim) as bot:
            ref = await card_with(bot, request := request_for(bot, sim))

            status, _, _ = await bot.press(f"act:{request.token}", ref, user="U0MALLORY")
            assert status == 200

            [answer] = await bot.api.wait_for("response_url")
            assert answer.body["response_type"] == "ephemeral"
            assert answer.body["replace_original"] is False
            assert "not on the approver list for repair-store" in answer.body["text"]
            assert bot.api.calls_to("chat.update") == []
            assert sim.requests == []  # not even a WinRM shell was opened
            assert runs_and_refusals(bot) == [("press", "refused")]
            assert bot.audit()[0]["actor"] == "slack:U0MALLORY"
            assert bot.core.store.request(request.token).state == "pending"  # type: ignore[union-attr]

    asyncio.run(scenario())


def test_an_expired_button_is_refused_privately_and_never_runs(tmp_path: Path, sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path, sim=sim) as bot:
            ref = await card_with(bot, request := request_for(bot, sim, ttl=-60))

            await bot.press(f"act:{request.token}", ref)

            [answer] = await bot.api.wait_for("response_url")
            assert answer.body["response_type"] == "ephemeral"
            assert "This button expired" in answer.body["text"]
            assert bot.api.calls_to("chat.update") == []
            assert sim.requests == []
            assert [a["detail"] for a in bot.audit()] == ["button expired"]

    asyncio.run(scenario())


def test_a_second_press_while_the_first_runs_does_not_run_the_action_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(sim: WinRMSimulator) -> None:
        async with running_bot(tmp_path, sim=sim) as bot:
            ref = await card_with(bot, request := request_for(bot, sim))

            answers = await asyncio.gather(
                bot.press(f"act:{request.token}", ref, user="U0ALICE"),
                bot.press(f"act:{request.token}", ref, user="U0BOB"),
            )
            assert [a[0] for a in answers] == [200, 200]

            [refusal] = await bot.api.wait_for("response_url")
            assert refusal.body["response_type"] == "ephemeral"
            assert "already running" in refusal.body["text"]  # the host is still busy with the first
            await bot.api.wait_for("chat.update", 2)
            await bot.core.worker.drain()
            assert repairs(sim) == 1
            assert key_state(sim, request.args[0]) == "ok"
            assert bot.core.store.request(request.token).state == "done"  # type: ignore[union-attr]

            await bot.press(f"act:{request.token}", ref, user="U0BOB")  # and once more, after it finished
            answers_after = await bot.api.wait_for("response_url", 2)
            assert "already ran" in answers_after[-1].body["text"]
            assert repairs(sim) == 1

    # every WinRM command takes 0.2 s on the host, so the second press lands while the first runs
    with simulated_host(monkeypatch, faults=Faults(script_seconds=0.2)) as sim:
        asyncio.run(scenario(sim))


def test_a_two_person_action_waits_for_a_second_different_approver(tmp_path: Path, sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path, sim=sim) as bot:
            certs_before = len(sim.model.certs)
            ref = await card_with(bot, request := request_for(bot, sim, "renew"))

            await bot.press(f"act:{request.token}", ref, user="U0ALICE")
            await bot.press(f"act:{request.token}", ref, user="U0ALICE")  # the same person again
            first, again = await bot.api.wait_for("response_url", 2)
            assert "(1 of 2); waiting for a different approver" in first.body["text"]
            assert "(1 of 2)" in again.body["text"]
            assert sim.requests == []
            assert bot.api.calls_to("chat.update") == []

            await bot.press(f"act:{request.token}", ref, user="U0BOB")
            await bot.api.wait_for("chat.update", 2)
            await bot.core.worker.drain()
            assert sim.scripts_run.count("renew") == 1
            assert len(sim.model.certs) == certs_before + 1  # win-acme installed a new certificate
            assert "Approved by slack:U0ALICE, slack:U0BOB" in bot.api.only_message().block_text()

    asyncio.run(scenario())


def test_a_member_of_an_approver_user_group_may_approve_and_membership_is_cached(
    tmp_path: Path, sim: WinRMSimulator
) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path, groups={"S0OPS": ["U0CAROL"]}, sim=sim) as bot:
            first, second = request_for(bot, sim), request_for(bot, sim, "verify-binding")
            ref = await card_with(bot, first, second)

            await bot.press(f"act:{first.token}", ref, user="U0CAROL")
            await bot.api.wait_for("chat.update", 2)
            await bot.press(f"act:{second.token}", ref, user="U0CAROL")
            await bot.api.wait_for("chat.update", 4)
            await bot.core.worker.drain()

            assert [(a["event"], a["subject"], a["outcome"]) for a in bot.audit() if a["event"] == "run"] == [
                ("run", f"repair-store {first.target} on iis01", "ok"),
                ("run", "verify-binding iis01 on iis01", "ok"),
            ]
            assert repairs(sim) == 1
            # the binding check ran after the repair, on the same host: the key link is whole again
            assert "all 2 https binding(s) use the newest usable certificate" in bot.api.only_message().block_text()
            [lookup] = bot.api.calls_to("usergroups.users.list")
            assert lookup.body["usergroup"] == "S0OPS"
            assert bot.api.only_message().button_values() == []

    asyncio.run(scenario())


def test_a_redelivered_press_is_handled_once(tmp_path: Path, sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path, sim=sim) as bot:
            ref = await card_with(bot, request := request_for(bot, sim))
            channel, _, ts = ref.partition(":")
            payload = press_payload(
                f"act:{request.token}", channel, ts, user="U0ALICE", response_url=bot.api.response_url()
            )
            body = urlencode({"payload": json.dumps(payload)})

            assert (await bot.send(body))[0] == 200
            assert (await bot.send(body))[0] == 200
            await bot.api.wait_for("chat.update", 2)
            await bot.core.worker.drain()

            assert repairs(sim) == 1
            assert bot.api.calls_to("response_url") == []  # the copy was dropped silently
            assert runs_and_refusals(bot) == [("approve", "approved"), ("run", "ok")]

    asyncio.run(scenario())


def test_a_card_from_before_a_restart_is_rebuilt_from_slacks_copy_and_keeps_its_other_buttons(
    tmp_path: Path, sim: WinRMSimulator
) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path, sim=sim) as bot:
            repair, verify = request_for(bot, sim), request_for(bot, sim, "verify-binding")
            ref = await card_with(bot, repair, verify)
            bot.adapter._cards.clear()  # what a restart forgets
            posted = bot.api.only_message()
            copy = {"type": "message", "ts": posted.ts, "text": posted.text, "blocks": posted.blocks}

            await bot.press(f"act:{repair.token}", ref, message=copy)

            await bot.api.wait_for("chat.update", 2)
            await bot.core.worker.drain()
            card = bot.api.only_message()
            text = card.block_text()
            assert "www: needs repair" in text
            assert "Missing stored keyset" in text
            assert "Approved by slack:U0ALICE. Running repair-store on iis01" in text
            assert "repair-store on iis01: done" in text
            assert card.button_values() == [f"act:{verify.token}"]
            assert repairs(sim) == 1
            assert key_state(sim, repair.args[0]) == "ok"

    asyncio.run(scenario())


def test_a_press_on_a_card_from_before_a_restart_without_a_copy_still_shows_progress_and_result(
    tmp_path: Path, sim: WinRMSimulator
) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path, sim=sim) as bot:
            ref = await card_with(bot, request := request_for(bot, sim))
            bot.adapter._cards.clear()  # what a restart forgets

            await bot.press(f"act:{request.token}", ref)

            await bot.api.wait_for("chat.update", 2)
            await bot.core.worker.drain()
            card = bot.api.only_message()
            assert card.text.startswith("Approved by slack:U0ALICE. Running repair-store on iis01")
            assert "repair-store on iis01: done" in card.block_text()
            assert card.button_values() == []
            assert repairs(sim) == 1
            assert key_state(sim, request.args[0]) == "ok"

    asyncio.run(scenario())


def test_a_card_the_bot_token_cannot_edit_is_replaced_through_response_url(tmp_path: Path, sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path, sim=sim) as bot:
            request = request_for(bot, sim)
            ref = f"C0ELSEWHERE:{1_600_000_000}.000100"  # not a message chat.update knows

            await bot.press(f"act:{request.token}", ref)

            replaced = await bot.api.wait_for("response_url", 2)
            assert [r.body["replace_original"] for r in replaced] == [True, True]
            assert "Running repair-store" in replaced[0].body["text"]
            assert "repair-store on iis01: done" in replaced[1].body["text"]
            assert repairs(sim) == 1
            assert key_state(sim, request.args[0]) == "ok"

    asyncio.run(scenario())


def test_when_slack_cannot_list_a_user_group_its_members_are_refused(tmp_path: Path, sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path, groups={}, sim=sim) as bot:  # S0OPS unknown: no_such_subteam
            ref = await card_with(bot, request := request_for(bot, sim))

            await bot.press(f"act:{request.token}", ref, user="U0CAROL")

            [answer] = await bot.api.wait_for("response_url")
            assert "not on the approver list" in answer.body["text"]
            assert sim.requests == []
            assert len(bot.api.calls_to("usergroups.users.list")) == 1

    asyncio.run(scenario())


def test_a_signed_press_with_a_made_up_token_is_refused_privately(tmp_path: Path, sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path, sim=sim) as bot:
            ref = await card_with(bot, request_for(bot, sim))

            await bot.press("act:made-up-token", ref, user="U0ALICE")

            [answer] = await bot.api.wait_for("response_url")
            assert answer.body["response_type"] == "ephemeral"
            assert "not one certops knows" in answer.body["text"]
            assert bot.api.calls_to("chat.update") == []
            assert sim.requests == []
            assert [(a["event"], a["outcome"], a["detail"]) for a in bot.audit()] == [
                ("press", "refused", "unknown button")
            ]

    asyncio.run(scenario())
