"""verify-binding: does every https binding use the newest usable certificate?"""

from __future__ import annotations

import datetime as dt
from typing import Any

from host_actions import validate
from host_actions.actions.result import ActionResult
from host_actions.diagnose import bound_store, http_sys_binding, newest_certificate
from host_actions.errors import HostActionError
from host_actions.inventory import build_inventory, inventory_parts, require
from host_actions.model import Inventory
from host_actions.parsers import parse_certificate, parse_netsh_sslcert, parse_site_bindings
from host_actions.target import Host
from host_actions.winrm_client import HostSession


def binding_report(inv: Inventory, site: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for b in inv.site_bindings:
        if b.protocol != "https" or (site and b.site.lower() != site.lower()):
            continue
        http_sys = http_sys_binding(inv, b)
        bound = (http_sys.thumbprint if http_sys else None) or b.thumbprint
        store = bound_store(inv, b)
        current = inv.certificate(bound, store) if bound else None  # the copy in the store it names
        names = [b.host] if b.host else list(current.names if current else ())
        newest = newest_certificate(inv, names, store=store)
        if http_sys is None and not b.ccs:
            status = "no_http_sys_binding"
        elif current is None:
            status = "cert_missing"
        elif not current.usable:
            status = "key_unusable"
        elif newest is not None and newest.thumbprint != current.thumbprint:
            status = "not_newest"
        else:
            status = "ok"
        rows.append(
            {
                "site": b.site,
                "endpoint": f"{b.host or b.ip}:{b.port}",
                "sni": b.sni,
                "bound": bound,
                "iis_hash": b.thumbprint,
                "http_sys_hash": http_sys.thumbprint if http_sys else None,
                "newest": newest.thumbprint if newest else None,
                "status": status,
            }
        )
    return rows


def require_site(host: Host, inv: Inventory, site: str) -> None:
    """Refuses a site name IIS does not know, listing the ones it does (a [[sites]] name is the
    usual mistake)."""
    sites = inv.sites()
    if site.lower() not in (s.lower() for s in sites):
        known = ", ".join(sorted(sites, key=str.lower)) or "none"
        raise HostActionError(
            "script_failed",
            f"{host.name}: IIS has no site named {site}; its sites are: {known}. "
            "SITE is the IIS site name, as IIS Manager shows it.",
            host=host.name,
        )


def verify_binding(host: Host, site: str | None = None) -> ActionResult:
    site_name = validate.site_name(site) if site else None
    parts = inventory_parts(host)
    with HostSession(host, "verify-binding") as session:
        inv = build_inventory(host.name, session.run(parts))
    if site_name:
        require_site(host, inv, site_name)
    rows = binding_report(inv, site_name)
    bad = [r for r in rows if r["status"] != "ok"]
    if not rows:
        summary = f"{host.name}: no https bindings" + (f" on site {site_name}." if site_name else ".")
    elif bad:
        summary = f"{host.name}: {len(bad)} of {len(rows)} https binding(s) need attention: " + ", ".join(
            f"{r['endpoint']} {r['status']}" for r in bad
        )
    else:
        summary = f"{host.name}: all {len(rows)} https binding(s) use the newest usable certificate."
    return ActionResult(
        "verify-binding", host.name, not bad and bool(rows), summary, {"bindings": rows}, session.stats.round_trips
    )


def certs_and_bindings(host: Host, results: list[Any]) -> Inventory:
    certs = require(results, "certs", host.name)
    bindings = require(results, "bindings", host.name)
    try:
        return Inventory(
            host=host.name,
            taken_at=dt.datetime.now(dt.UTC),
            certificates=tuple(parse_certificate(c) for c in certs.get("certs") or ()),
            ssl_bindings=tuple(parse_netsh_sslcert(str(bindings.get("netsh") or ""))),
            site_bindings=tuple(parse_site_bindings(list(bindings.get("sites") or ()))),
            iis_available=bool(bindings.get("iis_available")),
            renewals=(),
            tasks=(),
            services=(),
            wacs_exists=False,
        )
    except (KeyError, TypeError, ValueError):
        raise HostActionError("bad_output", f"{host.name}: unexpected binding data.", host=host.name) from None
