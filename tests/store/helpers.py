"""Builders and a thread race for the store contract suite."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import TypeVar

from bot.core.model import Incident, IncidentState
from bot.probe import ProbeResult, ProbeTarget, Problem, Severity
from bot.probe.model import HTTPInfo, TLSInfo
from bot.store import SqlStore

T0 = dt.datetime(2025, 1, 31, 9, 0, tzinfo=dt.UTC)
T = TypeVar("T")


def minutes(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def race(threads: int, call: Callable[[int], T]) -> list[T]:
    """Runs `call(i)` on `threads` threads released at the same moment; their answers in order."""
    start = Barrier(threads)

    def run(i: int) -> T:
        start.wait()
        return call(i)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(run, range(threads)))


def probe_result(
    site: str = "www", *, via: str = "public", origin: str | None = None, problems: tuple[Problem, ...] = ()
) -> ProbeResult:
    target = ProbeTarget(
        url=f"https://{site}.example.com/",
        hostname=f"{site}.example.com",
        port=443,
        connect_host=origin,
        connect_port=443 if origin else None,
        site=site,
        via=via,
    )
    return ProbeResult(
        target=target,
        address=origin or "192.0.2.10",
        problems=problems,
        certificate=None,
        tls=TLSInfo("TLSv1.3", "TLS_AES_128_GCM_SHA256"),
        http=HTTPInfo(200, "GET", 12.5),
        elapsed_ms=40.0,
        checked_at="2025-01-31T09:00:00Z",
    )


EXPIRED = Problem("cert_expired", Severity.CRITICAL, "the certificate expired 2 days ago")


def open_one(store: SqlStore, subject: str = "www", *, at: dt.datetime = T0, **fields: object) -> Incident:
    incident, created = store.open_incident(
        subject=subject,
        problem="cert_expired",
        fields={"severity": "critical", "summary": "the certificate expired", "site": subject, **fields},
        at=at,
        reason="3 failed probes",
        actor="probe",
    )
    assert created
    assert incident.state is IncidentState.OPEN
    return incident
