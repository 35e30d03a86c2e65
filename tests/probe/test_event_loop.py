"""`certops check` runs on uvloop where it is installed; scripts/test runs the probe tests on both
loops, so a problem code that differs between them fails a test."""

from __future__ import annotations

import asyncio
import os

import pytest

from bot import eventloop


def test_the_probe_tests_run_on_the_loop_they_were_asked_to() -> None:
    async def loop_type() -> str:
        return type(asyncio.get_running_loop()).__module__

    module = asyncio.run(loop_type())
    if os.environ.get("CERTOPS_TEST_LOOP") == "uvloop":
        assert module.startswith("uvloop")
    else:
        assert module.startswith("asyncio")


def test_certops_check_chooses_uvloop_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CERTOPS_EVENT_LOOP", raising=False)
    assert eventloop.name() == "uvloop"
    assert eventloop.run(asyncio.sleep(0, "done")) == "done"
    monkeypatch.setenv("CERTOPS_EVENT_LOOP", "asyncio")
    assert eventloop.name() == "asyncio"


def test_an_unknown_event_loop_name_is_refused_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTOPS_EVENT_LOOP", "trio")
    with pytest.raises(eventloop.EventLoopUnavailable, match="must be uvloop or asyncio, not 'trio'"):
        eventloop.loop_factory()
