"""`certops demo`: the incident certops exists for, replayed on loopback with no accounts.

A simulated IIS host (WinRM on 127.0.0.1) has just renewed www.example.com, and the renewal
broke the certificate-to-key link: the origin resets every TLS handshake while the CDN edge
keeps answering from cache. The demo types the commands an operator would, in the console
chat adapter: check, heal, press the repair button, status. `--interactive` lets you type.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import sys
import tempfile
from pathlib import Path

from bot.app import build_core
from bot.chat.console import ConsoleAdapter
from bot.config import parse_config
from bot.probe import StaticResolver
from bot.testbed.pki import Leaf
from bot.testbed.tls_servers import Endpoint, TLSServers
from host_actions.simulator import WinRMSimulator
from host_actions.simulator.model import issuer_pem, leaf_key, mint_certificate
from host_actions.simulator.scenarios import incident_host
from host_actions.simulator.tls import ModelTLSServer

# check, heal, approve the repair; heal again for the root fix (the post-renew step), status
SCRIPT = ("/ssl check www", "/ssl heal www", "press 1", "/ssl heal www", "press 4", "/ssl status")
PASSWORD_ENV = "CERTOPS_DEMO_WINRM_PASSWORD"  # noqa: S105 - names the variable holding the simulator's password


def run_demo(*, interactive: bool = False) -> int:
    return asyncio.run(_demo(interactive))


async def _demo(interactive: bool) -> int:
    model = incident_host()
    # the CDN edge presents its own certificate, and answers from cache
    edge_cert = mint_certificate(["www.example.com"], dt.datetime.now(dt.UTC) - dt.timedelta(days=20), 90)
    edge_leaf = Leaf(edge_cert, leaf_key(), ())
    with (
        tempfile.TemporaryDirectory(prefix="certops-demo-") as tmp,
        WinRMSimulator(model) as winrm,
        ModelTLSServer(model) as origin,
        TLSServers() as edges,
    ):
        edge = edges.add(Endpoint(edge_leaf, headers={"CF-Cache-Status": "HIT", "Age": "5400"}))
        ca_file = Path(tmp) / "ca.pem"
        ca_file.write_bytes(issuer_pem())
        os.environ[PASSWORD_ENV] = winrm.password
        config = parse_config(
            f'[bot]\ndatabase = "{Path(tmp) / "demo.db"}"\n'
            f'[[sites]]\nname = "www"\nurl = "https://www.example.com:{edge.port}/"\n'
            f'origins = ["127.0.0.1:{origin.port}"]\nca_file = "{ca_file}"\ntimeout = 3\nhost = "iis01"\n'
            f'[[hosts]]\nname = "iis01"\naddress = "{winrm.url}"\ntransport = "basic"\n'
            f'username = "{winrm.username}"\npassword_env = "{PASSWORD_ENV}"\nallow_insecure_basic = true\n'
            '[policy]\napprovers = ["console:demo"]\n',
            "demo",
        )
        core = build_core(config, resolver=StaticResolver({"www.example.com": "127.0.0.1"}))
        print(__doc__.split("\n\n")[1] if __doc__ else "", end="\n\n")
        stdin = sys.stdin if interactive else io.StringIO("".join(f"{line}\n" for line in SCRIPT))
        console = ConsoleAdapter(core, user="demo", stdin=stdin, echo=not interactive)
        try:
            await console.run()
        finally:
            core.close()
    if not interactive:
        print(
            "\nThat was the whole loop: detected from outside, diagnosed over WinRM, repaired after an "
            "approval, verified from outside.\nRun `certops demo --interactive` to type the commands yourself."
        )
    return 0
