"""On a full disk the watching loop keeps going and says so in one line a minute, not a traceback
per site per round; once there is room, rounds are recorded again."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.core.test_watching import lab_site, round_of, run, start
from tests.fakes.clock import ManualClock
from tests.fakes.tls import Behaviour, Lab
from tests.store.full_disk import full_disk


def test_rounds_on_a_full_disk_log_one_line_without_a_traceback_and_recover(
    lab: Lab, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        endpoint = lab.serve("localhost")
        with full_disk(tmp_path) as disk:
            core, _chat = await start(lab_site(lab, endpoint.port), disk.folder, ManualClock())
            disk.attach(core.store)
            try:
                await round_of(core, "shop")
                [before] = core.store.last_results("shop")
                assert before.problems == ()
                disk.fill()
                caplog.clear()
                with caplog.at_level(logging.INFO, logger="certops"):
                    for _ in range(5):
                        await round_of(core, "shop")
                refusals = [r for r in caplog.records if "not recorded" in r.getMessage()]
                assert len(refusals) == 1, [r.getMessage() for r in caplog.records]
                assert "the disk is full" in refusals[0].getMessage()
                assert not [r for r in caplog.records if r.exc_info], "no traceback for a full disk"
                disk.free()
                endpoint.behaviour = Behaviour.RESET_IN_HANDSHAKE  # so the next recorded round is told apart
                await round_of(core, "shop")
                [after] = core.store.last_results("shop")
                assert [p.code for p in after.problems] == ["tls_handshake_reset"]
            finally:
                core.close()

    run(scenario)
