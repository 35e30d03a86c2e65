"""Inventory: one shell, one command, four scripts (certs, bindings, win-acme, tasks)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from host_actions import validate
from host_actions.audit import parse_tasks
from host_actions.errors import HostActionError
from host_actions.model import Inventory
from host_actions.parsers import parse_certificate, parse_netsh_sslcert, parse_renewal, parse_site_bindings
from host_actions.scripts import Part
from host_actions.target import Host
from host_actions.winrm_client import HostSession, PartResult

INVENTORY_SCRIPTS = ("certs", "bindings", "winacme", "tasks")


def inventory_parts(host: Host) -> list[Part]:
    return [
        Part("certs"),
        Part("bindings"),
        Part("winacme", {"WacsPath": validate.windows_path(host.wacs_path)}),
        Part("tasks"),
    ]


def inventory(host: Host) -> Inventory:
    """Everything diagnose needs from one host, read-only."""
    parts = inventory_parts(host)  # validates before any traffic
    with HostSession(host, "inventory") as session:
        return build_inventory(host.name, session.run(parts))


def read_inventory(session: HostSession) -> Inventory:
    """An inventory inside a session another action already opened."""
    return build_inventory(session.host.name, session.run(inventory_parts(session.host)))


def require(results: list[PartResult], name: str, host: str) -> dict[str, Any]:
    """The result document of one part, or a script_failed error naming what went wrong."""
    part = next((r for r in results if r.name == name), None)
    if part is None:
        raise HostActionError("bad_output", f"{host}: no result from the {name} script.", host=host)
    if not part.ok:
        raise HostActionError(
            "script_failed",
            f"{host}: the {name} script failed: {part.error or 'no message'}"
            + (f" ({part.hresult})" if part.hresult else ""),
            host=host,
        )
    if not isinstance(part.result, dict):
        raise HostActionError("bad_output", f"{host}: the {name} script returned no document.", host=host)
    return part.result


def build_inventory(host: str, results: list[PartResult], now: dt.datetime | None = None) -> Inventory:
    docs = {name: require(results, name, host) for name in INVENTORY_SCRIPTS}
    try:
        certs = tuple(parse_certificate(c) for c in docs["certs"].get("certs") or ())
        bindings = docs["bindings"]
        renewals = tuple(
            parse_renewal(str(r["path"]), str(r["text"]), list(r.get("scripts") or ()))
            for r in docs["winacme"].get("renewals") or ()
        )
        tasks, services = parse_tasks(docs["tasks"])
        return Inventory(
            host=host,
            taken_at=now or dt.datetime.now(dt.UTC),
            certificates=certs,
            ssl_bindings=tuple(parse_netsh_sslcert(str(bindings.get("netsh") or ""))),
            site_bindings=tuple(parse_site_bindings(list(bindings.get("sites") or ()))),
            iis_available=bool(bindings.get("iis_available")),
            renewals=renewals,
            tasks=tuple(tasks),
            services=tuple(services),
            wacs_exists=bool(docs["winacme"].get("wacs_exists")),
            iis_error=bindings.get("iis_error") or None,
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        raise HostActionError(
            "bad_output", f"{host}: the inventory scripts returned data in an unexpected shape.", host=host
        ) from None
