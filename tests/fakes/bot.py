"""A whole bot for tests: the real Core (store, approvals, prober, host runner, dispatcher)
around loopback TLS servers, with a config written the way an operator would write it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from bot.app import Core, build_core
from bot.config import parse_config
from bot.core.model import Cause, Incident, Severity
from commands.model import Conversation, Outcome, Press, Principal, Reply, Request
from tests.fakes.tls import Lab

APPROVER = Principal("slack", "UAPPROVER1", "Ada")
SECOND_APPROVER = Principal("slack", "UAPPROVER2", "Grace")
BYSTANDER = Principal("slack", "UBYSTANDER", "Bob")
CHANNEL = Conversation("slack", "C0TEST")


def site_config(lab: Lab, public_port: int, origin_port: int, *, extra: str = "", policy: str = "") -> str:
    return (
        f'[[sites]]\nname = "www"\nurl = "https://localhost:{public_port}/"\n'
        f'origins = ["127.0.0.1:{origin_port}"]\nca_file = "{lab.ca_file}"\ntimeout = 3\n{extra}'
        '[policy]\napprovers = ["slack:UAPPROVER1", "slack:UAPPROVER2", "console:tester"]\n'
        f'button_ttl = "1m"\n{policy}'
    )


def make_core(config_text: str, tmp_path: Path) -> Core:
    """Call inside the test's event loop."""
    return build_core(parse_config(config_text, "test.toml"), database=str(tmp_path / "certops.db"))


async def settle(outcome: Outcome) -> list[Reply]:
    """What an adapter would show: the immediate reply, then the follow-up's."""
    replies = [outcome.reply]
    if outcome.follow_up is not None:
        replies.append(await outcome.follow_up())
    return replies


async def say(core: Core, text: str, who: Principal = APPROVER) -> list[Reply]:
    return await settle(await core.dispatcher.command(Request(who, CHANNEL, text)))


async def press(core: Core, token: str, who: Principal = APPROVER) -> list[Reply]:
    return await settle(await core.dispatcher.press(Press(who, CHANNEL, token)))


SIM_PASSWORD_ENV = "CERTOPS_TEST_SIM_PASSWORD"


def host_config(sim_url: str, username: str, name: str = "iis01") -> str:
    """A [[hosts]] entry for the WinRM simulator (Basic over loopback http, allowed explicitly)."""
    return (
        f'[[hosts]]\nname = "{name}"\naddress = "{sim_url}"\ntransport = "basic"\nusername = "{username}"\n'
        f'password_env = "{SIM_PASSWORD_ENV}"\nallow_insecure_basic = true\ntimeout = 10\n'
    )


def open_incident(core: Core, site: str = "www", summary: str = "TLS handshake reset at origin") -> Incident:
    """An open incident, as the probes would have opened it."""
    incident, _ = core.store.open_incident(
        subject=site,
        problem="tls_handshake_reset",
        fields={"severity": Severity.CRITICAL, "summary": summary, "site": site},
        at=dt.datetime.now(dt.UTC),
        reason=summary,
        actor="probe",
    )
    return incident


def resolve_incident(core: Core, incident_id: str) -> None:
    core.incidents.resolve(incident_id, "verified from outside", Cause.PROBE)


def audit_events(core: Core, *fields: str) -> list[tuple[str, ...]]:
    """The audit log as tuples of the named fields, oldest first."""
    return [tuple(str(getattr(entry, name)) for name in fields) for entry in core.store.audit_log()]
