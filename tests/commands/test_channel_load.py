"""What anyone in the channel can do to the approvers and to a production host: a bystander's
/ssl heal leaves the approvers' buttons alone, a burst of commands reaches the host once and
then meets a polite rate limit, and one person with two ids is one approver."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.app import Core, build_core
from bot.config import parse_config
from bot.core.actions import about_site
from bot.core.model import RequestState
from bot.probe import StaticResolver
from commands.common import requester
from commands.model import Principal, Reply, Request
from tests.fakes.bot import APPROVER, BYSTANDER, CHANNEL, SECOND_APPROVER, audit_events, press, say
from tests.fakes.clock import ManualClock
from tests.fakes.iis import SimulatedIIS

RESOLVER = StaticResolver({"www.example.com": "127.0.0.1"})
ADA_ON_LINE = Principal("line", "U0123456789abcdef0123456789abcdef", "Ada (LINE)")
CAROL = Principal("slack", "UCAROL", "Carol")


def core_for(iis: SimulatedIIS, tmp_path: Path, clock: ManualClock, policy: str = "") -> Core:
    text = iis.config(policy=policy).replace('"console:tester"]', f'"console:tester", "{ADA_ON_LINE.key}"]')
    return build_core(parse_config(text, "test.toml"), database=str(tmp_path / "db"), resolver=RESOLVER, clock=clock)


def inventory_reads(iis: SimulatedIIS) -> int:
    """Diagnoses (and renewal reads) that reached the host: each runs the win-acme script once."""
    return iis.winrm.scripts_run.count("winacme")


def states(core: Core, card: Reply) -> list[str]:
    found = [core.store.request(b.token.removeprefix("act:")) for b in card.buttons]
    return [r.state.value if r else "missing" for r in found]


def test_a_bystanders_heal_leaves_the_approvers_buttons_working_and_says_what_waits(
    iis: SimulatedIIS, tmp_path: Path
) -> None:
    async def scenario() -> None:
        core = core_for(iis, tmp_path, ManualClock())
        _, card = await say(core, "heal www", APPROVER)
        assert card.buttons
        assert card.incident_id
        [answer] = await say(core, "heal www", BYSTANDER)
        assert answer.title == (
            # the legacy task's button is on the host's own card, not www's
            f"2 repairs for www are already waiting for approval ({card.incident_id}); buttons stay with the approvers."
        )
        assert (answer.private, answer.buttons, answer.incident_id) == (True, (), card.incident_id)
        assert any(line.startswith("Repair store ") and "proposed by slack:UAPPROVER1" in line for line in answer.lines)
        assert inventory_reads(iis) == 1
        assert states(core, card) == ["pending"] * len(card.buttons)
        _, result = await press(core, card.buttons[0].token, APPROVER)
        assert result.title == "repair-store on iis01: done"
        assert ("slack:UBYSTANDER", "heal", "waiting") in audit_events(core, "actor", "event", "outcome")

    asyncio.run(scenario())


def test_a_bystanders_heal_racing_an_approvers_never_voids_the_approvers_buttons(
    iis: SimulatedIIS, tmp_path: Path
) -> None:
    async def scenario() -> None:
        core = core_for(iis, tmp_path, ManualClock())
        mine = await core.dispatcher.command(Request(APPROVER, CHANNEL, "heal www"))
        theirs = await core.dispatcher.command(Request(BYSTANDER, CHANNEL, "heal www"))
        assert mine.follow_up is not None
        assert theirs.follow_up is not None
        card, _their_card = await asyncio.gather(mine.follow_up(), theirs.follow_up())
        assert len(card.buttons) == 3
        assert states(core, card) == ["pending"] * 3
        assert inventory_reads(iis) == 1  # the two heals shared one diagnosis

    asyncio.run(scenario())


def test_an_approvers_heal_brings_fresh_buttons_from_the_diagnosis_a_minute_old_at_most(
    iis: SimulatedIIS, tmp_path: Path
) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        core = core_for(iis, tmp_path, clock)
        _, first = await say(core, "heal www", APPROVER)
        clock.advance(30)
        _, second = await say(core, "heal www", SECOND_APPROVER)
        assert inventory_reads(iis) == 1
        assert states(core, first) == ["superseded"] * 3
        assert states(core, second) == ["pending"] * 3
        clock.advance(31)
        _, third = await say(core, "heal www", APPROVER)
        assert inventory_reads(iis) == 2
        assert states(core, third) == ["pending"] * 3

    asyncio.run(scenario())


def test_a_burst_of_100_heals_from_a_bystander_diagnoses_the_host_once_and_is_answered_politely(
    iis: SimulatedIIS, tmp_path: Path
) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        core = core_for(iis, tmp_path, clock)
        outcomes = await asyncio.gather(
            *(core.dispatcher.command(Request(BYSTANDER, CHANNEL, "heal www")) for _ in range(100))
        )
        admitted = [o.follow_up for o in outcomes if o.follow_up is not None]
        refused = [o.reply for o in outcomes if o.follow_up is None]
        assert len(admitted) == 6  # [policy] rate_per_person's default
        assert {(r.title, r.private) for r in refused} == {
            (
                "Sorry, you have already run 6 commands that reach a host in the last minute "
                "([policy] rate_per_person); please try again in 60 seconds.",
                True,
            )
        }
        cards = await asyncio.gather(*(follow_up() for follow_up in admitted))
        assert inventory_reads(iis) == 1
        assert len({tuple(b.token for b in card.buttons) for card in cards}) == 1  # one set of buttons
        [incident] = core.store.open_incidents("www")
        # two on www's card; the legacy task's is on the host's own card
        assert [r.state for r in core.store.requests_for(incident.id)] == [RequestState.PENDING] * 2

        clock.advance(61)
        [again] = await say(core, "heal www", BYSTANDER)
        assert again.title.endswith("buttons stay with the approvers.")
        assert inventory_reads(iis) == 1

    asyncio.run(scenario())


def test_one_person_with_a_slack_and_a_line_id_cannot_be_both_approvers_of_a_two_person_action(
    iis: SimulatedIIS, tmp_path: Path
) -> None:
    async def scenario() -> None:
        policy = f'two_person = ["repair-store"]\n[policy.people]\nada = ["{APPROVER.key}", "{ADA_ON_LINE.key}"]\n'
        core = core_for(iis, tmp_path, ManualClock(), policy)
        _, card = await say(core, "heal www", APPROVER)
        repair = card.buttons[0].token
        [first] = await press(core, repair, APPROVER)
        assert first.title == "Approved by Ada (1 of 2); waiting for a different approver."
        [refused] = await press(core, repair, ADA_ON_LINE)
        assert refused.title == (
            "Sorry, slack:UAPPROVER1 already approved this and [policy.people] says that is you too (ada); "
            "repair-store needs a second, different person."
        )
        assert refused.private
        assert "repair_store" not in iis.winrm.scripts_run
        assert (ADA_ON_LINE.key, "approve", "refused") in audit_events(core, "actor", "event", "outcome")
        approved, result = await press(core, repair, SECOND_APPROVER)
        assert approved.title.startswith("Approved by slack:UAPPROVER1, slack:UAPPROVER2. Running repair-store")
        assert result.title == "repair-store on iis01: done"

    asyncio.run(scenario())


def test_the_rate_limit_counts_a_person_across_their_ids_and_says_when_to_try_again(
    iis: SimulatedIIS, tmp_path: Path
) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        policy = f'rate_per_person = 3\n[policy.people]\nada = ["{APPROVER.key}", "{ADA_ON_LINE.key}"]\n'
        core = core_for(iis, tmp_path, clock, policy)

        async def renew(who: Principal) -> str:
            return (await core.dispatcher.command(Request(who, CHANNEL, "renew iis01"))).reply.title

        assert [await renew(APPROVER), await renew(ADA_ON_LINE)] == ["Looking up renewals on iis01…"] * 2
        clock.advance(20)
        assert await renew(APPROVER) == "Looking up renewals on iis01…"
        limited = (
            "Sorry, you have already run 3 commands that reach a host in the last minute "
            "([policy] rate_per_person); please try again in {}."
        )
        assert await renew(ADA_ON_LINE) == limited.format("40 seconds")
        assert await renew(SECOND_APPROVER) == "Looking up renewals on iis01…"  # another person
        clock.advance(39.5)
        assert await renew(APPROVER) == limited.format("1 second")
        clock.advance(0.5)
        assert await renew(ADA_ON_LINE) == "Looking up renewals on iis01…"
        assert iis.winrm.requests == []  # proposing a renewal of a host never reached it

    asyncio.run(scenario())


def test_a_busy_host_is_left_alone_whoever_asks_but_the_bots_own_check_still_runs(
    iis: SimulatedIIS, tmp_path: Path
) -> None:
    async def scenario() -> None:
        core = core_for(iis, tmp_path, ManualClock(), "rate_per_host = 3\n")
        for who in (APPROVER, SECOND_APPROVER, BYSTANDER):
            assert (await say(core, "renew iis01", who))[0].title == "Looking up renewals on iis01…"
        [refused] = await say(core, "renew iis01", CAROL)
        assert refused.title == (
            "Sorry, iis01 has already had 3 commands that reach a host in the last minute ([policy] rate_per_host); "
            "please try again in 60 seconds."
        )
        [audit] = await say(core, "audit iis01", CAROL)
        assert audit.title == refused.title
        assert iis.winrm.requests == []
        await core.watcher.check_host("iis01")  # scheduled work is not a command
        assert inventory_reads(iis) == 1
        assert ("slack:UCAROL", "renew", "refused") in audit_events(core, "actor", "event", "outcome")

    asyncio.run(scenario())


def test_an_approver_over_their_limit_can_still_press_a_repair(iis: SimulatedIIS, tmp_path: Path) -> None:
    async def scenario() -> None:
        core = core_for(iis, tmp_path, ManualClock(), "rate_per_person = 1\n")
        _, card = await say(core, "heal www", APPROVER)
        [limited] = await say(core, "heal www", APPROVER)
        assert limited.title.startswith("Sorry, you have already run 1 command that reaches a host")
        _, result = await press(core, card.buttons[0].token, APPROVER)
        assert result.title == "repair-store on iis01: done"

    asyncio.run(scenario())


def test_a_sender_the_platform_did_not_name_cannot_pass_for_the_bot(iis: SimulatedIIS, tmp_path: Path) -> None:
    async def scenario() -> None:
        core = core_for(iis, tmp_path, ManualClock())
        _, card = await say(core, "heal www", APPROVER)
        impostor = Principal("line", None, "certops")  # a LINE group message without a userId
        [answer] = await say(core, "heal www", impostor)
        assert answer.title.endswith("buttons stay with the approvers.")
        # even a proposal it got in before the card (the store's own rule) keeps the buttons
        diagnosis = await core.hosts.diagnose("iis01", None)
        www = core.config.site("www")
        assert www is not None
        requests, _ = await core.flows.propose(
            [f for f in diagnosis.findings if about_site(f, www)],
            host="iis01", site="www", incident_id=card.incident_id, requester=requester(impostor),
        )  # fmt: skip
        site_buttons = [b.token for b in card.buttons if (r := core.store.request(b.token[4:])) and r.site == "www"]
        assert [f"act:{r.token}" for r in requests] == site_buttons
        assert states(core, card) == ["pending"] * 3

    asyncio.run(scenario())
