"""`certops demo`: the incident certops exists for, replayed on loopback with no accounts.

A simulated IIS host (WinRM on 127.0.0.1) serves www.example.com behind a CDN edge that answers
from cache. The scheduler probes it every few seconds. Then win-acme renews the certificate and
breaks the certificate-to-key link: the origin resets every TLS handshake. Nobody types a command:
the scheduler sees the resets, confirms them, opens the incident, diagnoses the host over WinRM
and posts the card with its buttons to the console chat. A demo approver presses Repair store
(with --interactive you press it: `press N`), certutil runs on the host, the bot re-probes from
outside and resolves the incident once the newest certificate is served.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bot.app import Core, build_core
from bot.chat.console import ConsoleAdapter
from bot.config import parse_config
from bot.core.model import Incident, RequestState
from bot.probe import StaticResolver
from bot.probe.text import short_thumbprint
from bot.testbed.pki import Leaf
from bot.testbed.tls_servers import Endpoint, TLSServers
from host_actions.simulator import WinRMSimulator
from host_actions.simulator.model import issuer_pem, leaf_key, mint_certificate
from host_actions.simulator.scenarios import before_renewal_host, renew_breaking_the_key_link
from host_actions.simulator.tls import ModelTLSServer

PASSWORD_ENV = "CERTOPS_DEMO_WINRM_PASSWORD"  # noqa: S105 - names the variable holding the simulator's password
INTERVAL = 5  # seconds between probes; the retry after a first failure comes as soon
DEADLINE = 55.0  # the whole story must fit in a minute
T = TypeVar("T")


def run_demo(*, interactive: bool = False) -> int:
    return asyncio.run(_demo(interactive))


async def _demo(interactive: bool) -> int:
    model = before_renewal_host()
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
            f'[bot]\ndatabase = "{Path(tmp) / "demo.db"}"\nlisten = "127.0.0.1:0"\ndigest_at = ""\n'
            f'[[sites]]\nname = "www"\nurl = "https://www.example.com:{edge.port}/"\n'
            f'origins = ["127.0.0.1:{origin.port}"]\nca_file = "{ca_file}"\ntimeout = 3\nhost = "iis01"\n'
            f'interval = "{INTERVAL}s"\nretry_interval = "5s"\nfailure_threshold = 2\n'
            f'[[hosts]]\nname = "iis01"\naddress = "{winrm.url}"\ntransport = "basic"\n'
            f'username = "{winrm.username}"\npassword_env = "{PASSWORD_ENV}"\nallow_insecure_basic = true\n'
            '[policy]\napprovers = ["console:demo"]\n',
            "demo",
        )
        core = build_core(config, resolver=StaticResolver({"www.example.com": "127.0.0.1"}))
        print(__doc__.split("\n\n")[1] if __doc__ else "", end="\n\n")
        stdin = sys.stdin if interactive else io.StringIO("")
        console = ConsoleAdapter(core, user="demo", stdin=stdin, echo=not interactive)
        core.attach(console)
        await core.start()
        try:
            resolved = await _story(core, console, winrm, interactive)
        finally:
            await core.stop()
            core.close()
    return 0 if resolved else 1


async def _story(core: Core, console: ConsoleAdapter, winrm: WinRMSimulator, interactive: bool) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    store = core.store
    say = print
    say("The scheduler is probing www (public name through the CDN, and the origin) every 5 s.")
    await _until(lambda: bool(store.last_results("www")), deadline)
    await asyncio.sleep(1)
    with winrm.lock:
        thumbprint = renew_breaking_the_key_link(winrm.model)
    broke_at = dt.datetime.now(dt.UTC)
    say(
        f"{broke_at:%H:%M:%S} win-acme renews www.example.com: the new certificate {short_thumbprint(thumbprint)} "
        "is bound, but its key link is broken. Nobody types anything now."
    )
    incident = await _until(lambda: _diagnosed(core), deadline)
    if incident is None:
        say("The incident was not opened and diagnosed in time.")
        return False
    button = await _until(lambda: _repair_button(core, console, incident.id), deadline)
    if button is None:
        say("No Repair store button was offered.")
        return False
    if interactive:
        say(f"Type `press {button}` to approve Repair store, as an approver would.")
        reader = loop.create_task(console.run())
    else:
        say(f"An approver (console:demo) presses button {button}, Repair store.")
        await console.handle(f"press {button}")
        reader = None
    final = await _until(lambda: _resolved(core, incident.id), deadline)
    if reader is not None:
        reader.cancel()
    await core.worker.drain()
    await asyncio.sleep(0.5)  # let the outbox show the resolved card
    if final is None:
        say("The incident was not resolved in time.")
        return False
    detect = (final.opened_at - broke_at).total_seconds()
    repair = ((final.resolved_at or final.opened_at) - final.opened_at).total_seconds()
    say("Timeline:")
    say(f"  {broke_at:%H:%M:%S} the renewal broke the key link")
    say(f"  {final.opened_at:%H:%M:%S} {final.id} opened by the scheduler (time to detect {detect:.1f} s)")
    if final.acted_at:
        say(f"  {final.acted_at:%H:%M:%S} repair-store ran on iis01 after an approval")
    if final.resolved_at:
        say(f"  {final.resolved_at:%H:%M:%S} verified from outside and resolved (time to repair {repair:.1f} s)")
    say(
        "That was the whole loop, with no typed command: detected from outside, diagnosed over WinRM, "
        "repaired after an approval, verified from outside."
    )
    return True


async def _until(check: Callable[[], T | None], deadline: float) -> T | None:
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        found = await asyncio.to_thread(check)
        if found:
            return found
        await asyncio.sleep(0.2)
    return None


def _diagnosed(core: Core) -> Incident | None:
    return next((i for i in core.store.open_incidents("www") if i.diagnosis), None)


def _repair_button(core: Core, console: ConsoleAdapter, incident_id: str) -> int | None:
    tokens = {
        f"act:{r.token}"
        for r in core.store.requests_for(incident_id)
        if r.action == "repair-store" and r.state is RequestState.PENDING
    }
    return next((n for n, token in console.buttons.items() if token in tokens), None)


def _resolved(core: Core, incident_id: str) -> Incident | None:
    incident = core.store.incident(incident_id)
    return incident if incident is not None and not incident.is_open else None
