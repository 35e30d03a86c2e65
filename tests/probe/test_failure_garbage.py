"""A failed probe costs no more memory than a good one: it leaves no exception, traceback or frame
for the cycle collector (each one held a probe's buffers, about 70 KiB, until a full collection)."""

from __future__ import annotations

import asyncio
import gc
import types
from collections import Counter
from collections.abc import Iterator

import pytest

from bot.probe import probe_many
from tests.fakes.tls import Behaviour, Endpoint, Lab, MiniCA
from tests.probe.helpers import HOST, target

HEAVY = (BaseException, types.TracebackType, types.FrameType)


def _left_behind(
    lab: Lab, code: str | None, *, names: tuple[str, ...] = (HOST,), ca: MiniCA | None = None, **kwargs: object
) -> Counter[str]:
    """What ten probes of one endpoint leave to the cycle collector, by type; each probe must
    have ended with `code` first (None: healthy)."""
    endpoint = lab.servers.add(Endpoint((ca or lab.ca).issue(*names), **kwargs))  # type: ignore[arg-type]
    targets = [target(lab, endpoint)] * 10
    asyncio.run(probe_many(targets[:2]))  # warm: first-use caches are not garbage
    gc.collect()
    with _saving_garbage() as garbage:
        results = asyncio.run(probe_many(targets))
        gc.collect()
        heavy = Counter(type(o).__name__ for o in garbage if isinstance(o, HEAVY))
    assert [r.problems[0].code if r.problems else None for r in results] == [code] * 10
    return heavy


@pytest.fixture(autouse=True)
def _collector_back_on() -> Iterator[None]:
    yield
    gc.set_debug(0)
    gc.enable()


class _saving_garbage:
    def __enter__(self) -> list[object]:
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        return gc.garbage

    def __exit__(self, *exc: object) -> None:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_a_good_probe_leaves_no_exception_traceback_or_frame(lab: Lab) -> None:
    assert _left_behind(lab, None) == Counter()


def test_an_untrusted_certificate_leaves_no_exception_traceback_or_frame(lab: Lab) -> None:
    assert _left_behind(lab, "cert_untrusted", ca=MiniCA("stranger root")) == Counter()


def test_a_reset_handshake_leaves_no_exception_traceback_or_frame(lab: Lab) -> None:
    assert _left_behind(lab, "tls_handshake_reset", behaviour=Behaviour.RESET_IN_HANDSHAKE) == Counter()


def test_plain_http_on_the_tls_port_leaves_no_exception_traceback_or_frame(lab: Lab) -> None:
    assert _left_behind(lab, "tls_protocol_error", behaviour=Behaviour.PLAIN_HTTP) == Counter()


def test_a_wrong_name_and_an_alert_leave_no_exception_traceback_or_frame(lab: Lab) -> None:
    assert _left_behind(lab, "cert_hostname_mismatch", names=("other.test",)) == Counter()
    assert _left_behind(lab, "tls_alert", behaviour=Behaviour.ALERT) == Counter()


def test_a_server_that_stops_answering_after_the_handshake_leaves_nothing_heavy(lab: Lab) -> None:
    assert _left_behind(lab, "http_timeout", behaviour=Behaviour.SILENT_AFTER_HANDSHAKE) == Counter()
