"""What someone types is quoted back short and inert: no 4,000-character echo, no terminal escape."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fakes.bot import make_core, say, site_config
from tests.fakes.tls import Lab

LONG = "x" * 4000
ESCAPE = "\x1b[2J\x1b[31mred"


@pytest.mark.parametrize(
    "typed",
    [
        f"mute www {LONG}",
        f"check {LONG}",
        f"check https://{LONG}.example/",
        f"{LONG}",
        f"help {LONG}",
        f"ack {LONG}",
        f"renew {LONG}",
        f"mute {LONG} 1h",
        f"mute www {ESCAPE}",
        f"stat{ESCAPE}",
        f"check {ESCAPE}",
    ],
)
def test_a_long_or_escaped_argument_is_answered_with_a_short_inert_sentence(
    typed: str, lab: Lab, tmp_path: Path
) -> None:
    async def scenario() -> None:
        core = make_core(site_config(lab, 1, 1), tmp_path)
        [reply] = await say(core, typed)
        text = " ".join([reply.title, *reply.lines])
        assert len(text) < 400, text
        assert all(c.isprintable() for c in text), text
        assert "ERR-" not in text  # a usage problem, not a failure on certops's side

    asyncio.run(scenario())


def test_an_escaped_argument_is_shown_escaped_not_dropped(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        core = make_core(site_config(lab, 1, 1), tmp_path)
        [reply] = await say(core, f"mute www {ESCAPE}")
        assert '"\\x1b[2J\\x1b[31mred" is not a duration' in reply.title

    asyncio.run(scenario())
