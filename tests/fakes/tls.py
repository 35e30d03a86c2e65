"""Loopback TLS servers and a private CA for the probe tests (the same stand-ins the demo uses)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.testbed.pki import MiniCA
from bot.testbed.tls_servers import Behaviour, Endpoint, TLSServers

__all__ = ["Behaviour", "Endpoint", "Lab", "MiniCA", "TLSServers"]


@dataclass
class Lab:
    ca: MiniCA
    ca_file: str
    servers: TLSServers

    def serve(self, *names: str, days_left: float = 60, **kwargs: object) -> Endpoint:
        leaf = self.ca.issue(*(names or ("www.example.test",)), days_left=days_left)
        return self.servers.add(Endpoint(leaf, **kwargs))  # type: ignore[arg-type]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    ca = MiniCA()
    with TLSServers() as servers:
        yield Lab(ca, str(ca.write_ca(tmp_path / "ca.pem")), servers)
