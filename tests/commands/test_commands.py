"""The /ssl commands through the real dispatcher, store and prober, against loopback TLS servers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from commands.model import Press, Tone
from tests.fakes.bot import APPROVER, BYSTANDER, CHANNEL, audit_events, make_core, open_incident, say, site_config
from tests.fakes.tls import Behaviour, Lab


def test_help_lists_every_command_from_the_handlers_docstrings(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        core = make_core(site_config(lab, 1, 1), tmp_path)
        [reply] = await say(core, "help")
        usages = [f.label for f in reply.fields]
        assert usages == [
            "/ssl ack <incident>", "/ssl audit <host>", "/ssl check <site|url>", "/ssl heal <site>",
            "/ssl help [command]", "/ssl mute <site> <duration>", "/ssl renew <site|host>",
            "/ssl install-self-heal <host> [--repair]", "/ssl status [site]",
        ]  # fmt: skip
        heal = next(f for f in reply.fields if f.label == "/ssl heal <site>")
        assert heal.value.startswith("Probes the site, diagnoses its IIS host")
        [detail] = await say(core, "help heal")
        assert "Nothing changes on the host until an approver presses a button" in " ".join(detail.lines)

    asyncio.run(scenario())


def test_usage_errors_are_answered_at_once_with_the_usage(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        core = make_core(site_config(lab, 1, 1), tmp_path)
        [reply] = await say(core, "heal")
        assert (reply.title, reply.private) == ("Usage: /ssl heal <site>", True)
        [reply] = await say(core, "stauts")
        assert reply.title == 'There is no /ssl stauts. (did you mean "status"?) Try /ssl help.'
        [reply] = await say(core, "check wwww")
        assert reply.title.startswith('No site named "wwww". (did you mean "www"?)')

    asyncio.run(scenario())


def test_check_probes_the_public_name_and_the_origin_and_names_the_reset(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        edge = lab.serve("localhost", headers={"CF-Cache-Status": "HIT"})
        origin = lab.serve("localhost", behaviour=Behaviour.RESET_IN_HANDSHAKE)
        core = make_core(site_config(lab, edge.port, origin.port), tmp_path)
        first, result = await say(core, "check www")
        assert first.title == "Checking www…"
        assert (result.title, result.tone) == ("www: CRITICAL", Tone.CRITICAL)
        assert "answered from a CDN cache" in result.lines[0]
        assert "origin 127.0.0.1" in result.lines[1]
        assert "reset the connection (TCP RST)" in result.lines[1]

    asyncio.run(scenario())


def test_status_probes_sites_never_probed_and_then_shows_days_left(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        endpoint = lab.serve("localhost", days_left=40.5)
        core = make_core(site_config(lab, endpoint.port, endpoint.port), tmp_path)
        first, later = await say(core, "status")
        assert "not probed yet" in first.lines[0]
        assert later.title == "TLS status: 1 site, 1 ok"
        assert "🟢 www · 40 days left" in later.lines[0]
        [again] = await say(core, "status")  # results are stored: no second probe needed
        assert again.lines == later.lines
        [detail] = await say(core, "status www")
        assert detail.title == "www: OK"
        assert len(detail.lines) == 2

    asyncio.run(scenario())


def test_ack_marks_an_open_incident_and_is_audited(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        core = make_core(site_config(lab, 1, 1), tmp_path)
        incident = open_incident(core, "www", "TLS handshake reset at origin")
        [reply] = await say(core, f"ack {incident.id.lower()}")
        assert reply.title == f"{incident.id} acknowledged by Ada."
        [again] = await say(core, f"ack {incident.id}")
        assert again.title == f"{incident.id} is already acked."
        assert audit_events(core, "actor", "event", "outcome") == [
            ("slack:UAPPROVER1", "command", "received"),
            ("slack:UAPPROVER1", "ack", "done"),
            ("slack:UAPPROVER1", "command", "received"),
            ("slack:UAPPROVER1", "ack", "refused"),
        ]
        acked = core.store.incident(incident.id)
        assert acked is not None
        assert (acked.state, acked.acked_by) == ("acked", "slack:UAPPROVER1")

    asyncio.run(scenario())


def test_only_approvers_may_mute_a_site(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        core = make_core(site_config(lab, 1, 1), tmp_path)
        [refused] = await say(core, "mute www 2h", who=BYSTANDER)
        assert (refused.title, refused.private) == ("Sorry, only approvers may mute a site.", True)
        assert core.store.muted_until("www") is None
        [done] = await say(core, "mute www 2h")
        assert done.title.startswith("www muted until")
        assert core.store.muted_until("www") is not None
        [bad] = await say(core, "mute www forever")
        assert bad.title == '"forever" is not a duration from 1m to 7d, such as 30m, 2h or 1d.'

    asyncio.run(scenario())


def test_only_approvers_may_check_an_address_that_is_not_a_configured_site(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        core = make_core(site_config(lab, 1, 1), tmp_path)
        [refused] = await say(core, "check https://10.0.0.5:22/", who=BYSTANDER)
        assert refused.title == "Only approvers may check an address that is not a configured site."
        [bad] = await say(core, "check https://www.example.com:99999/")
        assert bad.title == 'https://www.example.com:99999/: has an invalid port: "https://www.example.com:99999/"'
        assert bad.private

    asyncio.run(scenario())


def test_a_failure_on_our_side_answers_only_the_asker_with_a_reference(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        core = make_core(site_config(lab, 1, 1), tmp_path)
        core.store.close()  # the database is gone from under the bot
        [reply] = await say(core, "status")
        assert reply.private
        assert reply.tone is Tone.CRITICAL
        assert reply.title.startswith("Sorry, /ssl status failed on certops's side (reference ERR-")
        assert "Traceback" not in reply.title
        outcome = await core.dispatcher.press(Press(APPROVER, CHANNEL, "act:whatever"))
        assert outcome.reply.private
        assert outcome.follow_up is None

    asyncio.run(scenario())


def test_status_names_the_worst_problem_of_a_site_first(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        edge = lab.serve("localhost", headers={"CF-Cache-Status": "HIT"})
        origin = lab.serve("localhost", behaviour=Behaviour.RESET_IN_HANDSHAKE)
        core = make_core(site_config(lab, edge.port, origin.port), tmp_path)
        _, overview = await say(core, "status")
        assert overview.title == "TLS status: 1 site, 1 critical"
        assert "· the server reset the connection (TCP RST) during the TLS handshake (+1 more)" in overview.lines[0]

    asyncio.run(scenario())
