import asyncio
import os

from tests.fakes.hostile_targets import hostile
from tests.fakes.iis import iis
from tests.fakes.tls import lab

__all__ = ["hostile", "iis", "lab"]

# scripts/test runs the probe tests a second time on uvloop, the loop `certops check` uses
if os.environ.get("CERTOPS_TEST_LOOP") == "uvloop":
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
