"""Heartbeats under a fake clock: a host whose self-heal task has reported and then stays silent
for twice its report_interval gets an incident, the next report resolves it; a host that never
reported shows as "Layer 2 not installed" in /ssl status and opens nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.app import Core, build_core
from bot.config import parse_config
from bot.core.model import IncidentState
from bot.reports.model import parse_report
from tests.fakes.bot import say
from tests.fakes.clock import ManualClock
from tests.fakes.destination import RecordingDestination

CONFIG = (
    '[[hosts]]\nname = "iis01"\naddress = "https://iis01.example.test:5986/wsman"\nusername = "svc"\n'
    'password_env = "CERTOPS_T_HB_PW"\nreport_secret_env = "CERTOPS_T_HB_SECRET"\nreport_interval = "{interval}"\n'
    '[[hosts]]\nname = "iis02"\naddress = "https://iis02.example.test:5986/wsman"\nusername = "svc"\n'
    'password_env = "CERTOPS_T_HB_PW"\nreport_secret_env = "CERTOPS_T_HB_SECRET"\n'
    '[[sites]]\nname = "www"\nurl = "https://localhost:1/"\nhost = "iis01"\n'
    '[policy]\napprovers = ["slack:UAPPROVER1"]\n'
)


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTOPS_T_HB_PW", "pw")
    monkeypatch.setenv("CERTOPS_T_HB_SECRET", "s")


def make_core(tmp_path: Path, clock: ManualClock, interval: str = "1h", text: str | None = None) -> Core:
    config = parse_config(text or CONFIG.format(interval=interval), "t.toml")
    return build_core(config, database=str(tmp_path / "c.db"), clock=clock)


def a_report(clock: ManualClock, ok: bool = True) -> dict[str, object]:
    at = clock().strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"host": "iis01", "kind": "self-heal", "started": at, "finished": at, "ok": ok}


@pytest.mark.parametrize(("interval", "seconds", "every"), [("1h", 3600, "hourly"), ("10m", 600, "every-10 min")])
def test_a_self_heal_task_silent_for_twice_its_interval_opens_an_incident_and_its_next_report_resolves_it(
    tmp_path: Path, interval: str, seconds: int, every: str
) -> None:

    async def main() -> None:
        clock = ManualClock()
        core = make_core(tmp_path, clock, interval)
        core.attach(RecordingDestination())
        try:
            core.reports.receive(parse_report(a_report(clock), "iis01"))
            last = clock()
            clock.advance(2 * seconds)  # exactly twice the interval: not yet
            await core.watcher.tick()
            assert core.store.open_incidents() == []
            clock.advance(1)
            await core.watcher.tick()
            (incident,) = core.store.open_incidents()
            assert (incident.subject, incident.problem, incident.host) == ("silent:iis01", "self_heal_silent", "iis01")
            assert incident.summary == f"the {every} self-heal task on iis01 has not reported since {last:%H:%M} UTC"
            assert "sites on iis01: www" in incident.details
            await core.watcher.tick()  # still silent: the same incident, not a second one
            assert [i.id for i in core.store.open_incidents()] == [incident.id]

            core.reports.receive(parse_report(a_report(clock), "iis01"))
            closed = core.store.incident(incident.id)
            assert closed is not None
            assert closed.state is IncidentState.RESOLVED
            assert closed.resolution == "The self-heal task on iis01 reports again."
        finally:
            core.close()

    asyncio.run(main())


def test_a_host_that_never_reported_is_shown_as_layer_2_not_installed_and_opens_nothing(
    tmp_path: Path,
) -> None:

    async def main() -> None:
        clock = ManualClock()
        core = make_core(tmp_path, clock)
        try:
            core.reports.receive(parse_report(a_report(clock, ok=False), "iis01"))
            clock.advance(30 * 86400)
            await core.watcher.tick()
            assert {i.subject for i in core.store.open_incidents()} == {"report:iis01:self-heal", "silent:iis01"}
            replies = await say(core, "status")
            lines = replies[-1].lines  # after the never-probed site was probed
            (iis01,) = [line for line in lines if line.startswith("🖥 iis01")]
            (iis02,) = [line for line in lines if line.startswith("🖥 iis02")]
            assert "Layer 2 reported failed at 2026-12-01 08:30 UTC" in iis01
            assert "has not reported since 08:30 UTC" in iis01
            assert iis02 == "🖥 iis02 · Layer 2 not installed"
            detail = await say(core, "status www")
            fields = {f.label: f.value for f in detail[-1].fields}
            assert fields["Layer 2"] == "Layer 2 reported failed at 2026-12-01 08:30 UTC"
        finally:
            core.close()

    asyncio.run(main())


def test_heartbeats_survive_a_restart(tmp_path: Path) -> None:
    config = parse_config(CONFIG.format(interval="1h"), "t.toml")

    async def main() -> None:
        clock = ManualClock()
        core = build_core(config, database=str(tmp_path / "c.db"), clock=clock)
        core.reports.receive(parse_report(a_report(clock), "iis01"))
        core.close()
        clock.advance(7201)
        core = build_core(config, database=str(tmp_path / "c.db"), clock=clock)
        try:
            await core.watcher.tick()
            assert [i.subject for i in core.store.open_incidents()] == ["silent:iis01"]
        finally:
            core.close()
        core = build_core(config, database=str(tmp_path / "c.db"), clock=clock)  # reconcile keeps it
        try:
            assert [i.subject for i in core.store.open_incidents()] == ["silent:iis01"]
        finally:
            core.close()

    asyncio.run(main())


def test_report_subjects_of_a_host_removed_from_the_config_are_closed_at_start(
    tmp_path: Path,
) -> None:

    async def main() -> None:
        clock = ManualClock()
        core = make_core(tmp_path, clock)
        core.reports.receive(parse_report(a_report(clock, ok=False), "iis01"))
        core.close()
        without = (
            CONFIG.format(interval="1h")
            .split('[[hosts]]\nname = "iis02"')[0]
            .replace('name = "iis01"', 'name = "iis03"')
            .replace('host = "iis01"', 'host = "iis03"')
        )
        core = make_core(tmp_path, clock, text=without + '[[sites]]\nname = "x"\nurl = "https://localhost:1/"\n')
        try:
            assert core.store.open_incidents() == []
            (closed,) = core.store.incidents()
            assert closed.resolution == "Closed without verification: iis01 is no longer in the config."
        finally:
            core.close()

    asyncio.run(main())


def test_the_report_vectors_match_the_documented_algorithm_and_openssl(tmp_path: Path) -> None:
    import hashlib
    import hmac
    import shutil
    import subprocess

    from bot.reports.signature import sign

    doc = json.loads((Path(__file__).resolve().parents[2] / "docs/report-api-vectors.json").read_text("utf-8"))
    assert len(doc["vectors"]) >= 4
    openssl = shutil.which("openssl")
    for vector in doc["vectors"]:
        body = vector["body"].encode()
        message = b"v1:" + vector["timestamp"].encode() + b":" + body
        by_hand = "v1=" + hmac.new(vector["secret"].encode(), message, hashlib.sha256).hexdigest()
        assert sign(vector["secret"], vector["timestamp"], body) == by_hand == vector["signature"]
        if openssl:  # an implementation that is not Python's
            path = tmp_path / "message"
            path.write_bytes(message)
            out = subprocess.run(
                [openssl, "dgst", "-sha256", "-mac", "HMAC", "-macopt", f"hexkey:{vector['secret'].encode().hex()}",
                 str(path)], capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            assert out.strip().endswith(vector["signature"][3:])


def test_check_config_warns_when_hosts_have_a_report_secret_but_the_bot_no_public_url() -> None:
    from bot.config.advice import warnings

    config = parse_config(CONFIG.format(interval="1h"), "t.toml")
    (advice,) = [a for a in warnings(config) if a.key == "bot.public_url"]
    assert "report_secret is set for 2 hosts" in advice.message
    with_url = parse_config('[bot]\npublic_url = "https://certops.example.test"\n' + CONFIG.format(interval="1h"), "t")
    assert [a for a in warnings(with_url) if a.key == "bot.public_url"] == []
    assert with_url.hosts[0].report_url == "https://certops.example.test/api/report"
