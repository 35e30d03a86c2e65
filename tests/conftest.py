import asyncio
import os

from tests.fakes.hostile_targets import hostile
from tests.fakes.iis import iis
from tests.fakes.tls import lab

__all__ = ["hostile", "iis", "lab"]

# a test's bot probes in its own process unless its config sets [bot] probe_workers: one worker
# process per core for every bot a test builds would make the suite slow (and the `certops run`
# tests inherit this); tests/probe/test_pool.py and tests/config cover the default itself
os.environ.setdefault("CERTOPS_PROBE_WORKERS", "1")

# scripts/test runs the probe tests a second time on uvloop, the loop `certops check` uses
if os.environ.get("CERTOPS_TEST_LOOP") == "uvloop":
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
