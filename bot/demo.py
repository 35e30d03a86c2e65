"""`certops demo`: a small estate on loopback, including the incident certops exists for.

Three sites, each with a CDN edge (the public name) and an origin. "shop" replays the incident:
its origin resets every TLS handshake (a renewal broke the certificate-to-key link) while the
edge keeps answering from cache. Nothing leaves this machine.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from bot.config import parse_config
from bot.probe import StaticResolver, probe_many, worst_status
from bot.probe.report import render_line
from bot.probe.targets import site_targets
from bot.testbed.pki import MiniCA
from bot.testbed.tls_servers import Behaviour, Endpoint, TLSServers

CACHE_HIT = {"CF-Cache-Status": "HIT", "Age": "5400"}


def run_demo() -> int:
    ca = MiniCA("certops demo root")
    with tempfile.TemporaryDirectory(prefix="certops-demo-") as tmp, TLSServers() as servers:
        ca_file = ca.write_ca(Path(tmp) / "ca.pem")
        plan = {
            # site: (edge endpoint, origin endpoint)
            "www": (
                Endpoint(ca.issue("www.example.test", days_left=62.5), headers={"CF-Cache-Status": "DYNAMIC"}),
                Endpoint(ca.issue("www.example.test", days_left=62.5)),
            ),
            "shop": (
                Endpoint(ca.issue("shop.example.test", days_left=2.5), headers=CACHE_HIT),
                Endpoint(ca.issue("shop.example.test", days_left=89.5), behaviour=Behaviour.RESET_IN_HANDSHAKE),
            ),
            "blog": (
                Endpoint(ca.issue("blog.example.test", days_left=5.5)),
                Endpoint(ca.issue("blog.example.test", days_left=5.5)),
            ),
        }
        lines = []
        for name, (edge, origin) in plan.items():
            servers.add(edge)
            servers.add(origin)
            lines.append(
                f'[[sites]]\nname = "{name}"\nurl = "https://{name}.example.test:{edge.port}/"\n'
                f'origins = ["127.0.0.1:{origin.port}"]\nca_file = "{ca_file}"\ntimeout = 3\n'
            )
        config = parse_config("\n".join(lines), "demo")
        targets = [t for site in config.sites for t in site_targets(site)]
        resolver = StaticResolver({f"{name}.example.test": "127.0.0.1" for name in plan})
        results = asyncio.run(probe_many(targets, resolver=resolver))

    print("certops demo: three sites on loopback, each probed through its CDN edge and at its origin.\n")
    for result in results:
        print(render_line(result))
    print(
        f"\nWorst status: {worst_status(results).value.upper()}. "
        "The shop origin resets every TLS handshake while its edge still answers from cache:\n"
        "the incident certops exists for. `certops check --help` probes your own sites."
    )
    return 0
