"""POST /api/report through the bot's real web server on loopback: signed reports open, update
and resolve incidents and tell the channel about repairs; unsigned, wrongly signed, stale,
replayed, oversized and unknown-host reports are refused with 401 and change nothing; an
authentic report that cannot be used is a 400 that says why."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Core, build_core
from bot.config import parse_config
from bot.core.model import IncidentState
from bot.reports.signature import headers, sign
from bot.web import start_web
from tests.fakes.destination import RecordingDestination

SECRET = "4f1c0a9e7d3b2a18c6e5f4d3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a291807"
THUMB = "7C4F0D8E2B1A9C3D5E6F708192A3B4C5D6E7F809"


def config_text(port: int, tmp_path: Path) -> str:
    return (
        f'[bot]\nlisten = "127.0.0.1:{port}"\ndatabase = "{tmp_path / "certops.db"}"\n'
        'public_url = "https://certops.example.test"\n'
        '[[hosts]]\nname = "iis01"\naddress = "https://iis01.example.test:5986/wsman"\n'
        'username = "svc"\npassword_env = "CERTOPS_T_REPORT_PW"\nreport_secret_env = "CERTOPS_T_REPORT_SECRET"\n'
        '[[hosts]]\nname = "iis02"\naddress = "https://iis02.example.test:5986/wsman"\n'
        'username = "svc"\npassword_env = "CERTOPS_T_REPORT_PW"\n'
        '[[sites]]\nname = "www"\nurl = "https://localhost:1/"\nhost = "iis01"\n'
    )


@dataclass
class Bot:
    core: Core
    url: str
    chat: RecordingDestination
    session: aiohttp.ClientSession

    async def post(self, body: bytes, head: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        sent = headers("iis01", SECRET, body, time.time()) if head is None else head
        async with self.session.post(self.url, data=body, headers=sent) as answer:
            return answer.status, await answer.json()

    async def delivered(self) -> list[str]:
        for _ in range(100):
            if await asyncio.to_thread(self.core.store.pending_count) == 0:
                break
            await asyncio.sleep(0.02)
        return [m.reply.title for m in self.chat.delivered]

    def state(self) -> tuple[object, ...]:
        """Everything a refused report must leave as it was."""
        store = self.core.store
        return (
            store.host_reports(),
            [i.id for i in store.incidents()],
            len(store.audit_log(1000)),
            store.pending_count(),
            store.first_time("probe-of-state", "x"),  # a fresh id each time: seen_events must still take it
        )


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTOPS_T_REPORT_PW", "pw")
    monkeypatch.setenv("CERTOPS_T_REPORT_SECRET", SECRET)


@asynccontextmanager
async def running_bot(tmp_path: Path) -> AsyncIterator[Bot]:
    core = build_core(parse_config(config_text(0, tmp_path), "test.toml"))
    chat = RecordingDestination()
    core.attach(chat)
    core.outbox.start()
    runner = await start_web(core, [])
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            yield Bot(core, f"http://127.0.0.1:{port}/api/report", chat, session)
    finally:
        await runner.cleanup()
        await core.outbox.stop()
        core.close()


def run(tmp_path: Path, test: Callable[[Bot], Awaitable[None]]) -> None:
    async def main() -> None:
        async with running_bot(tmp_path) as bot:
            await test(bot)

    asyncio.run(main())


def report(**fields: Any) -> bytes:
    doc = {
        "host": "iis01",
        "kind": "self-heal",
        "started": "2026-12-02T06:00:00Z",
        "finished": "2026-12-02T06:00:03Z",
        "ok": True,
        "checked": [
            {
                "thumbprint": THUMB,
                "store": "WebHosting",
                "names": ["www.example.test"],
                "key_ok": True,
                "bindings": [{"binding": "www.example.test:443", "thumbprint": THUMB, "ok": True}],
            }
        ],
        "repaired": [],
        "errors": [],
        **fields,
    }
    return json.dumps(doc).encode()


def test_a_signed_report_is_kept_audited_and_shown_in_status(tmp_path: Path, env: None) -> None:
    async def test(bot: Bot) -> None:
        assert await bot.post(report()) == (200, {"ok": True})
        (kept,) = bot.core.store.host_reports("iis01")
        assert (kept.kind, kept.ok, kept.report["checked"][0]["thumbprint"]) == ("self-heal", True, THUMB)
        (entry,) = [e for e in bot.core.store.audit_log() if e.event == "report"]
        assert (entry.actor, entry.subject, entry.outcome) == ("host:iis01", "self-heal on iis01", "ok")
        assert "checked 1 certificate(s) and 1 binding(s)" in entry.detail
        assert bot.core.store.open_incidents() == []
        assert b'certops_reports_total{host="iis01",kind="self-heal",outcome="ok"} 1.0' in bot.core.metrics.render()

    run(tmp_path, test)


def test_a_failed_report_opens_an_incident_for_the_host_a_second_updates_it_and_an_ok_one_resolves_it(
    tmp_path: Path, env: None
) -> None:
    async def test(bot: Bot) -> None:
        problem = f"www.example.test:443 is bound to 1A2B…9F00, not the newest certificate {THUMB[:4]}…{THUMB[-4:]}"
        assert (await bot.post(report(ok=False, errors=[problem])))[0] == 200
        (incident,) = bot.core.store.open_incidents()
        assert (incident.subject, incident.problem, incident.host) == (
            "report:iis01:self-heal",
            "self_heal_failed",
            "iis01",
        )
        assert incident.summary == f"iis01: the self-heal task reports {problem}"
        assert f"🔴 {problem}" in incident.details
        assert "sites on iis01: www" in incident.details
        assert await bot.delivered() == [incident.summary]

        assert (await bot.post(report(ok=False, errors=[problem, "WebHosting could not be opened"])))[0] == 200
        (again,) = bot.core.store.open_incidents()
        assert again.id == incident.id
        assert again.summary.endswith("(and 1 more)")

        assert (await bot.post(report(ok=True)))[0] == 200
        closed = bot.core.store.incident(incident.id)
        assert closed is not None
        assert closed.state is IncidentState.RESOLVED
        assert closed.resolution == "The self-heal task on iis01 reports that nothing is wrong any more."

    run(tmp_path, test)


def test_a_repair_is_posted_to_the_channel_even_when_the_run_succeeded(tmp_path: Path, env: None) -> None:
    async def test(bot: Bot) -> None:
        repaired = [{"thumbprint": THUMB, "store": "WebHosting", "what": "key_link", "detail": "certutil -repairstore"}]
        assert (await bot.post(report(ok=True, repaired=repaired)))[0] == 200
        assert await bot.delivered() == [
            "iis01 healed itself: repaired the key link of 7C4F…F809 in WebHosting (self-heal at 06:00 UTC)"
        ]
        assert bot.core.store.open_incidents() == []

    run(tmp_path, test)


def test_a_failed_post_renew_step_opens_its_own_incident(tmp_path: Path, env: None) -> None:
    async def test(bot: Bot) -> None:
        body = report(kind="post-renew", ok=False, errors=["key still unusable after certutil -repairstore"])
        assert (await bot.post(body))[0] == 200
        (incident,) = bot.core.store.open_incidents()
        assert (incident.subject, incident.problem) == ("report:iis01:post-renew", "post_renew_failed")
        assert incident.summary.startswith("iis01: the post-renew step reports key still unusable")

    run(tmp_path, test)


def _at(timestamp: str, body: bytes) -> dict[str, str]:
    return {"X-Certops-Timestamp": timestamp, "X-Certops-Signature": sign(SECRET, timestamp, body)}


def _forged(body: bytes) -> list[tuple[str, bytes, dict[str, str]]]:
    now = int(time.time())
    good = headers("iis01", SECRET, body, now)
    stale, future = str(now - 301), str(now + 301)
    return [
        ("no headers at all", body, {}),
        ("no signature", body, {k: v for k, v in good.items() if k != "X-Certops-Signature"}),
        ("a wrong signature", body, {**good, "X-Certops-Signature": sign("another secret", str(now), body)}),
        ("the signature of another body", body, {**good, "X-Certops-Signature": sign(SECRET, str(now), b"{}")}),
        ("a signature without its scheme", body, {**good, "X-Certops-Signature": good["X-Certops-Signature"][3:]}),
        ("a non-ASCII signature", body, {**good, "X-Certops-Signature": "v1=" + "é" * 64}),
        ("an unknown host", body, {**good, "X-Certops-Host": "iis99"}),
        ("a host without a report secret", body, {**good, "X-Certops-Host": "iis02"}),
        ("a stale timestamp", body, {**good, **_at(stale, body)}),
        ("a timestamp from the future", body, {**good, **_at(future, body)}),
        ("superscript digits", body, {**good, "X-Certops-Timestamp": "¹⁷⁶⁴⁶⁵⁵²⁰⁰"}),
        ("a 400-digit timestamp", body, {**good, "X-Certops-Timestamp": "9" * 400}),
        ("a timestamp in milliseconds", body, {**good, "X-Certops-Timestamp": str(now * 1000)}),
        ("a body changed after signing", body + b" ", good),
    ]  # fmt: skip


@pytest.mark.parametrize("case", [c[0] for c in _forged(b"{}")])
def test_a_report_that_fails_verification_is_refused_with_401_and_changes_nothing(
    tmp_path: Path, env: None, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def test(bot: Bot) -> None:
        body = report(ok=False, errors=["BODY-MARKER"])
        _name, sent, head = next(c for c in _forged(body) if c[0] == case)
        before = bot.state()
        with caplog.at_level(logging.INFO):
            status, answer = await bot.post(sent, head)
        assert status == 401
        assert set(answer) == {"error"}
        if case in ("an unknown host", "a host without a report secret"):
            assert answer == {"error": "not authenticated"}  # which names exist is not for strangers
        assert bot.state()[:4] == before[:4]
        refusals = [r for r in caplog.records if r.name == "certops.web.refusals"]
        assert len(refusals) == 1
        assert "BODY-MARKER" not in caplog.text
        assert SECRET not in caplog.text

    run(tmp_path, test)


def test_a_replayed_report_is_refused_even_after_a_restart(tmp_path: Path, env: None) -> None:
    body = report(ok=False, errors=["once"])
    head = headers("iis01", SECRET, body, time.time())

    async def first(bot: Bot) -> None:
        assert (await bot.post(body, head))[0] == 200
        assert await bot.post(body, head) == (401, {"error": "replayed report"})

    async def after_restart(bot: Bot) -> None:
        before = bot.state()
        assert await bot.post(body, head) == (401, {"error": "replayed report"})
        assert bot.state()[:4] == before[:4]
        (incident,) = bot.core.store.open_incidents()  # still the one the first delivery opened
        assert incident.summary == "iis01: the self-heal task reports once"

    run(tmp_path, first)
    run(tmp_path, after_restart)


@pytest.mark.parametrize("chunked", [False, True], ids=["with Content-Length", "chunked"])
def test_a_body_over_256_kib_is_refused_before_it_is_read_whole(tmp_path: Path, env: None, chunked: bool) -> None:
    async def test(bot: Bot) -> None:
        body = report(errors=["x" * 1000] * 300)
        assert len(body) > 256 * 1024
        head = headers("iis01", SECRET, body, time.time())
        before = bot.state()

        async def pieces() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 65536):
                yield body[start : start + 65536]

        data: Any = pieces() if chunked else body
        async with bot.session.post(bot.url, data=data, headers=head) as answer:
            assert (answer.status, await answer.json()) == (401, {"error": "report body over 256 KiB"})
        assert bot.state()[:4] == before[:4]

    run(tmp_path, test)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not json", "JSON that does not parse"),
        (b"[1, 2]", "the report must be a JSON object"),
        (b"[" * 50 + b"]" * 50, "JSON nested too deep"),
        (report(host="iis02"), "host must be the X-Certops-Host header's 'iis01'"),
        (report(kind="hourly"), 'kind must be "self-heal" or "post-renew"'),
        (report(ok="yes"), "ok must be true or false"),
        (report(started="06:00"), "started must be an ISO 8601 time in UTC such as 2026-12-02T06:00:00Z"),
        (report(started="2026-12-02T06:00:00"), "started must be an ISO 8601 time in UTC"),
        (report(finished="2026-12-02T05:00:00Z"), "finished is before started"),
        (report(checked={"thumbprint": THUMB}), "checked must be a list"),
        (report(checked=[{"store": "My"}]), "checked[0].thumbprint is missing"),
        (report(errors=["x"] * 101), "errors has more than 100 entries"),
        (report(errors=["x" * 2001]), "errors[0] is longer than 2000 characters"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_an_authentic_report_that_cannot_be_used_is_a_400_that_says_why(
    tmp_path: Path, env: None, body: bytes, why: str
) -> None:
    async def test(bot: Bot) -> None:
        status, answer = await bot.post(body)
        assert status == 400
        assert why in answer["error"]
        assert bot.core.store.host_reports() == []
        assert bot.core.store.open_incidents() == []

    run(tmp_path, test)


def test_certops_run_takes_a_signed_report_and_refuses_its_replay_and_an_unsigned_one(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    path = tmp_path / "certops.toml"
    path.write_text(config_text(port, tmp_path))
    env = {**os.environ, "CERTOPS_T_REPORT_PW": "pw", "CERTOPS_T_REPORT_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run", "-c", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def post(body: bytes, head: dict[str, str]) -> int:
        request = urllib.request.Request(f"{base}/api/report", data=body, headers=head, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - loopback http
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=2).close()  # noqa: S310
                break
            except urllib.error.HTTPError:
                break  # 503 while warming up still means it listens
            except OSError:
                time.sleep(0.1)
        body = report(ok=False, errors=["UNSEEN-IN-LOG key unusable"])
        head = headers("iis01", SECRET, body, time.time())
        assert post(body, head) == 200
        assert post(body, head) == 401
        assert post(body, {"Content-Type": "application/json"}) == 401
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:  # noqa: S310
            metrics = answer.read().decode()
        assert 'certops_reports_total{host="iis01",kind="self-heal",outcome="failed"} 1.0' in metrics
        assert 'certops_report_refusals_total{reason="replayed report"} 1.0' in metrics
        assert 'certops_report_refusals_total{reason="unknown host"} 1.0' in metrics
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=60)
    refusals = [line for line in err.splitlines() if "refused POST /api/report" in line]
    assert len(refusals) == 2, err
    assert "UNSEEN-IN-LOG" not in err
    assert SECRET not in err
