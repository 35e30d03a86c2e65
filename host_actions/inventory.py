"""Inventory: one shell, one command, four scripts (certs, bindings, win-acme, tasks)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from host_actions import validate
from host_actions.audit import parse_tasks
from host_actions.errors import HostActionError
from host_actions.model import Inventory
from host_actions.parsers import (
    parse_certificate,
    parse_layer2,
    parse_netsh_sslcert,
    parse_site_bindings,
    parse_winacme_renewals,
    prefer_layer2,
)
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


# Parts the diagnosis can do without: their failure becomes a finding, not a failed diagnosis.
OPTIONAL_PARTS = ("bindings", "winacme", "tasks")


def _optional(results: list[PartResult], name: str, host: str) -> tuple[dict[str, Any] | None, str | None]:
    """The part's document, or None and why not (the script failed or returned no document)."""
    try:
        return require(results, name, host), None
    except HostActionError as exc:
        if exc.kind == "bad_output" and not any(r.name == name for r in results):
            raise
        return None, exc.message


def _errors(doc: dict[str, Any], *keys: str) -> tuple[str, ...]:
    out = []
    for e in doc.get("errors") or ():
        if isinstance(e, dict):
            where = next((str(e[k]) for k in keys if e.get(k)), "")
            out.append(f"{where}: {e.get('error')}" if where else str(e.get("error")))
        elif e:
            out.append(str(e))
    return tuple(dict.fromkeys(out))


def build_inventory(host: str, results: list[PartResult], now: dt.datetime | None = None) -> Inventory:
    certs_doc = require(results, "certs", host)  # without certificates there is nothing to judge
    docs = {name: _optional(results, name, host) for name in OPTIONAL_PARTS}
    bindings, bindings_failed = docs["bindings"]
    winacme, winacme_failed = docs["winacme"]
    tasks_doc, tasks_failed = docs["tasks"]
    taken_at = now or dt.datetime.now(dt.UTC)
    try:
        report, verdicts = parse_layer2(certs_doc.get("layer2"))
        certs = tuple(
            prefer_layer2(cert, report, verdicts.get(cert.thumbprint), taken_at)
            for cert in (parse_certificate(c) for c in certs_doc.get("certs") or ())
        )
        tasks, services = parse_tasks(tasks_doc) if tasks_doc is not None else ([], [])
        renewals = parse_winacme_renewals(winacme or {}, tuple(tasks))  # each tagged with its base URI
        bindings = bindings or {}
        return Inventory(
            host=host,
            taken_at=taken_at,
            certificates=certs,
            ssl_bindings=tuple(parse_netsh_sslcert(str(bindings.get("netsh") or ""))),
            site_bindings=tuple(parse_site_bindings(list(bindings.get("sites") or ()))),
            iis_available=bool(bindings.get("iis_available")),
            renewals=renewals,
            tasks=tuple(tasks),
            services=tuple(services),
            wacs_exists=bool((winacme or {}).get("wacs_exists")),
            iis_error=bindings_failed or bindings.get("iis_error") or None,
            iis_errors=_errors(bindings, "binding", "site"),
            tasks_available=tasks_doc is not None,
            tasks_errors=(tasks_failed,) if tasks_failed else _errors(tasks_doc or {}, "task"),
            renewals_available=winacme is not None,
            renewals_errors=(winacme_failed,) if winacme_failed else _errors(winacme or {}, "path"),
            layer2=report,
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        raise HostActionError(
            "bad_output", f"{host}: the inventory scripts returned data in an unexpected shape.", host=host
        ) from None
