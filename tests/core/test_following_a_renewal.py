"""A renewal outlives one WinRM deadline (win-acme's task may run for minutes): the approved
press follows the scheduled task to its end, showing each answer on the card, and never starts a
second run."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.core.model import RequestState, Step
from commands.render import card
from tests.core.test_watching import run, start
from tests.fakes.bot import open_incident
from tests.fakes.clock import ManualClock
from tests.fakes.iis import SimulatedIIS

RENEWAL = "mZ3Yk1fWbkW0yJbqv7NfVw"  # the incident host's renewal


def test_an_approved_renewal_is_followed_to_its_end_and_the_card_shows_its_progress(
    iis: SimulatedIIS, tmp_path: Path
) -> None:
    iis.model.renew_task_polls = 3  # the task still runs for three more reads after it starts
    # a short deadline: each WinRM call returns at once, saying the task still runs
    config = iis.config().replace("timeout = 10\n", "timeout = 5\n")

    async def scenario() -> None:
        core, _chat = await start(config, tmp_path, ManualClock())
        core.flows.follow_every = 0.01
        incident = open_incident(core)
        request = core.store.create_request(
            incident_id=incident.id, site=None, host="iis01", action="renew", args=(RENEWAL, "--force"),
            target=RENEWAL, requested_by="slack:UAPPROVER1", ttl=600.0,
        )  # fmt: skip
        assert core.store.start_request(request.token) == "started"
        running = asyncio.create_task(core.flows.run(request, "slack:UAPPROVER1"))
        cards: list[str] = []  # the card as a reader would see it while the renewal runs
        while not running.done():
            cards.append(str(card(core.store, core.store.incident(incident.id))))  # type: ignore[arg-type]
            await asyncio.sleep(0.005)
        result = await running
        assert result.ok, result.summary
        assert any("still running" in shown for shown in cards)
        progress = [t for t in core.store.transitions(incident.id) if t.step is Step.RUNNING]
        assert len([t for t in progress if "still running" in t.reason]) == 3
        done = core.store.request(request.token)
        assert done is not None
        assert done.state is RequestState.DONE
        assert [line for line in iis.model.log if line.startswith("start \\certops\\")] == [
            f'start \\certops\\certops renew {RENEWAL}: --renew --baseuri "https://acme-v02.api.letsencrypt.org/" '
            f"--id {RENEWAL} --force --verbose"
        ]
        final = str(card(core.store, core.store.incident(incident.id)))  # type: ignore[arg-type]
        assert final.count("running ") == 1  # one "running" in the timeline, not one per look
        assert "still running" not in final  # the result replaced the progress
        core.close()

    run(scenario)


def test_a_renewal_still_running_after_the_follow_limit_ends_the_press_as_not_done(
    iis: SimulatedIIS, tmp_path: Path
) -> None:
    iis.model.renew_task_polls = 10**6
    config = iis.config().replace("timeout = 10\n", "timeout = 5\n")

    async def scenario() -> None:
        core, _chat = await start(config, tmp_path, ManualClock())
        core.flows.follow_every, core.flows.follow_limit = 0.01, 2
        request = core.store.create_request(
            incident_id=None, site=None, host="iis01", action="renew", args=(RENEWAL, "--force"),
            target=RENEWAL, requested_by="slack:UAPPROVER1", ttl=600.0,
        )  # fmt: skip
        assert core.store.start_request(request.token) == "started"
        result = await core.flows.run(request, "slack:UAPPROVER1")
        assert not result.ok
        assert "still running" in result.summary
        failed = core.store.request(request.token)
        assert failed is not None
        assert failed.state is RequestState.FAILED
        core.close()

    run(scenario)
