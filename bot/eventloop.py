"""The event loop certops runs on: uvloop where it is installed (Linux and macOS; it measured
0.77-0.87x the CPU of asyncio's loop per probe), else asyncio's own.

`CERTOPS_EVENT_LOOP=asyncio` chooses asyncio's loop (to compare the two, or to rule uvloop out
of a problem); `CERTOPS_EVENT_LOOP=uvloop` insists on uvloop and fails if it is missing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
CHOICES = ("uvloop", "asyncio")


class EventLoopUnavailable(RuntimeError):
    pass


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None for asyncio's default."""
    wanted = os.environ.get("CERTOPS_EVENT_LOOP", "").strip().lower()
    if wanted and wanted not in CHOICES:
        raise EventLoopUnavailable(f"CERTOPS_EVENT_LOOP must be uvloop or asyncio, not {wanted!r}")
    if wanted == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if wanted == "uvloop":
            raise EventLoopUnavailable("CERTOPS_EVENT_LOOP=uvloop, but uvloop is not installed") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def name() -> str:
    return "asyncio" if loop_factory() is None else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
