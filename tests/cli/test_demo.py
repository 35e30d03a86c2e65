from __future__ import annotations

import pytest

from bot.cli import main


def test_the_demo_replays_the_incident_from_detection_to_verified_repair(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    check = out.index("> /ssl check www")
    heal = out.index("> /ssl heal www")
    repair = out.index("> press 1")
    assert check < heal < repair
    assert "answered from a CDN cache" in out[check:heal]
    assert "reset the connection (TCP RST) during the TLS handshake" in out[check:heal]
    assert "Missing stored keyset" in out[heal:repair]
    assert "[1] Repair store" in out[heal:repair]
    assert "repair-store on iis01: done" in out[repair:]
    assert "INC-0001 resolved: the newest certificate is served and the handshake works." in out[repair:]
    assert "now runs C:\\Program Files\\win-acme\\Scripts\\certops_post_renew.ps1 after the IIS step" in out
    assert "Traceback" not in out
