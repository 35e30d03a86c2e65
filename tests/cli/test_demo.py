from __future__ import annotations

import pytest

from bot.cli import main


def test_the_demo_shows_the_incident_an_origin_reset_hidden_behind_a_cache_hit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    shop = [line for line in lines if line.startswith(("OK", "WARNING", "CRITICAL")) and "shop.example.test" in line]
    assert len(shop) == 2
    assert "via public" in shop[0]
    assert "answered from a CDN cache" in shop[0]
    assert "via origin" in shop[1]
    assert "reset the connection (TCP RST) during the TLS handshake" in shop[1]
    assert any(line.startswith("OK") and "www.example.test via origin" in line for line in lines)
