from __future__ import annotations

import pytest

from bot.cli import main


def test_the_demo_detects_the_broken_renewal_by_itself_and_ends_with_a_verified_repair(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    renewal = out.index("win-acme renews www.example.com")
    card = out.index("reset the connection (TCP RST) during the TLS handshake", renewal)
    press = out.index("An approver (console:demo) presses button")
    resolved = out.index("✔ Resolved: www")
    assert renewal < card < press < resolved
    assert "/ssl" not in out[renewal:press], "nobody typed a command: the scheduler found it"
    assert "the CDN edge still answers" in out[card:press]
    assert "Missing stored keyset" in out[card:press]
    assert "Repair store" in out[card:press]
    assert "repair-store on iis01: done" in out[press:]
    assert "INC-0001 resolved: the newest certificate is served and the handshake works." in out[press:]
    assert "opened by the scheduler (time to detect" in out[resolved:]
    assert "verified from outside and resolved (time to repair" in out[resolved:]
    assert "Traceback" not in out
