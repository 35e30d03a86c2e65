"""rebind: point exactly the bindings a certificate covers at it, then read them back."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from host_actions import validate
from host_actions.actions.binding_check import binding_report, certs_and_bindings, require_site
from host_actions.actions.result import ActionResult
from host_actions.diagnose import WILDCARD_IP, bound_store, http_sys_binding
from host_actions.errors import HostActionError, InvalidParameter
from host_actions.inventory import require
from host_actions.model import Certificate, Inventory, SiteBinding, a_label
from host_actions.scripts import Part
from host_actions.target import Host
from host_actions.winrm_client import HostSession


def rebind(
    host: Host,
    site: str,
    thumbprint: str,
    *,
    bindings: Sequence[str] | None = None,
    shared_socket: bool = False,
    what_if: bool = False,
) -> ActionResult:
    """Point the https bindings of `site` whose host name the certificate covers (or exactly the
    `bindings` named: "IP:port:host", "host:port" or a host name) at the certificate.

    Never a Central Certificate Store binding (SslFlags & 2: it takes no hash). A non-SNI binding
    whose IP:port socket another binding shares is refused unless `shared_socket` is given, since
    http.sys keeps one certificate per socket. The script replaces each binding (win-acme #371);
    afterwards each changed binding, and each one sharing its socket, is read back and must be
    bound to a certificate that covers its host name.
    """
    site_name, tp = validate.site_name(site), validate.thumbprint(thumbprint)
    named = [_binding_selector(b) for b in bindings or ()]
    with HostSession(host, "rebind") as session:
        before = certs_and_bindings(host, session.run([Part("certs"), Part("bindings")]))
        copies = [c for c in before.certificates if c.thumbprint == tp]  # My and WebHosting may both hold it
        cert = next((c for c in copies if c.usable), copies[0] if copies else None)
        if cert is None or not cert.usable:
            raise HostActionError(
                "script_failed",
                f"{host.name}: refusing to bind {tp}: "
                + ("it is not in My or WebHosting." if cert is None else f"its private key is {cert.key_status}."),
                host=host.name,
            )
        require_site(host, before, site_name)
        selected, skipped = _select_bindings(host, before, site_name, cert, named)
        _refuse_shared_sockets(host, before, selected, shared_socket)
        infos = [b.information for b in selected]
        if what_if:
            return _would_rebind(host, site_name, cert, selected, skipped, session.stats.round_trips)
        results = session.run(
            [
                Part("rebind", {"Site": site_name, "Thumbprint": tp, "Store": cert.store, "Bindings": infos}),
                Part("certs"),
                Part("bindings"),
            ]
        )
        require(results, "rebind", host.name)
        after = certs_and_bindings(host, results[1:])
    checked, problems = _verify_rebind(after, selected, tp)
    hosts = ", ".join(f"{b.host or b.ip}:{b.port}" for b in selected)
    if problems:
        summary = f"{host.name}: after rebinding {site_name} to {tp}: " + " ".join(problems)
    else:
        summary = (
            f"{host.name}: site {site_name} now serves {tp} on {len(selected)} https binding(s) ({hosts}); "
            "each one's certificate covers its host name."
        )
        if skipped:
            summary += f" Left alone: {len(skipped)} binding(s) (" + "; ".join(r["reason"] for r in skipped) + ")."
    return ActionResult(
        "rebind",
        host.name,
        not problems,
        summary,
        {
            "before": binding_report(before, site_name),
            "after": binding_report(after, site_name),
            "changed": infos,
            "skipped": skipped,
            "verified": checked,
            "problems": problems,
        },
        session.stats.round_trips,
    )


def _would_rebind(
    host: Host, site: str, cert: Certificate, selected: list[SiteBinding], skipped: list[dict[str, Any]], trips: int
) -> ActionResult:
    summary = (
        f"Would replace {len(selected)} https binding(s) of site {site} on {host.name} with ones bound to "
        f"{cert.thumbprint} in {cert.store}: " + ", ".join(b.information for b in selected) + "."
    )
    if skipped:
        summary += " Would leave alone: " + "; ".join(r["reason"] for r in skipped) + "."
    details = {"what_if": True, "changed": [b.information for b in selected], "skipped": skipped}
    return ActionResult("rebind", host.name, True, summary, details, trips)


_SELECTOR = re.compile(r"^[^\s'\"`$;|&<>(){}]{1,300}$")


def _binding_selector(value: str) -> str:
    if not isinstance(value, str) or not _SELECTOR.fullmatch(value):
        raise InvalidParameter("A binding is named as IP:port:host, host:port or a host name; this value was refused.")
    return value


def _endpoint(b: SiteBinding) -> str:
    return f"{b.host or b.ip}:{b.port}"


def _named(b: SiteBinding, selector: str) -> bool:
    sel = selector.lower()
    if b.information.lower() == sel or _endpoint(b).lower() == sel:
        return True
    return bool(b.host) and ":" not in sel and b.host == a_label(sel)


def _select_bindings(
    host: Host, inv: Inventory, site: str, cert: Certificate, named: list[str]
) -> tuple[list[SiteBinding], list[dict[str, Any]]]:
    """Which bindings to replace, decided here, not on the host; and which were left alone, why."""
    https = [b for b in inv.site_bindings if b.protocol == "https" and b.site.lower() == site.lower()]
    selected: list[SiteBinding] = []
    skipped: list[dict[str, Any]] = []

    def refuse(sentence: str) -> HostActionError:
        return HostActionError("script_failed", f"{host.name}: refusing to rebind {site}: {sentence}", host=host.name)

    if named:
        for sel in named:
            found = [b for b in https if _named(b, sel)]
            if not found:
                raise refuse(f"it has no https binding {sel}.")
            for b in found:
                if b.ccs:
                    raise refuse(f"{b.information} uses the Central Certificate Store, which takes no hash.")
                if b.host and not cert.covers(b.host):
                    raise refuse(f"certificate {cert.thumbprint} does not cover {b.host}.")
                if b not in selected:
                    selected.append(b)
        return selected, skipped
    # a site bound only without host names (the classic *:443:) serves every name through them
    hostless_site = all(not b.host for b in https if not b.ccs)
    for b in https:
        if b.ccs:
            skipped.append({"binding": b.information, "reason": f"{_endpoint(b)} uses the Central Certificate Store"})
        elif not b.host and hostless_site:
            selected.append(b)
        elif not b.host:
            reason = f"{_endpoint(b)} has no host name; name it to rebind it"
            skipped.append({"binding": b.information, "reason": reason})
        elif not cert.covers(b.host):
            skipped.append({"binding": b.information, "reason": f"the certificate does not cover {b.host}"})
        else:
            selected.append(b)
    if not selected:
        raise refuse(f"certificate {cert.thumbprint} covers the host name of none of its https bindings.")
    return selected, skipped


def _socket(b: SiteBinding) -> tuple[str, int | None]:
    return (WILDCARD_IP if b.ip in ("*", "") else b.ip.strip("[]").lower(), b.port)


def _sharing(inv: Inventory, b: SiteBinding) -> list[SiteBinding]:
    """Other non-SNI bindings (of any site) served by the same http.sys IP:port entry as `b`."""
    if b.sni or b.ccs:
        return []
    return [
        o
        for o in inv.site_bindings
        if o is not b
        and o.protocol == "https"
        and not o.sni
        and not o.ccs
        and _socket(o) == _socket(b)
        and (o.site, o.information) != (b.site, b.information)
    ]


def _refuse_shared_sockets(host: Host, inv: Inventory, selected: list[SiteBinding], allowed: bool) -> None:
    if allowed:
        return
    keys = {(b.site, b.information) for b in selected}
    for b in selected:
        others = [o for o in _sharing(inv, b) if (o.site, o.information) not in keys]
        if others:
            ip, port = _socket(b)
            names = ", ".join(f"{o.site} {_endpoint(o)}" for o in others)
            raise HostActionError(
                "script_failed",
                f"{host.name}: refusing to rebind {b.site} {_endpoint(b)}: it has no SNI, so it shares the "
                f"http.sys socket {ip}:{port} with {names}, which would serve the new certificate too. "
                "Ask for it explicitly (shared socket) to do it anyway.",
                host=host.name,
            )


def _verify_rebind(inv: Inventory, selected: list[SiteBinding], tp: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Each changed binding, and each binding that shares its socket, read back from the host:
    bound to a certificate that covers its host name (and the changed ones to `tp`)."""
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for old in selected:
        now = next((b for b in inv.site_bindings if (b.site, b.information) == (old.site, old.information)), None)
        if now is None:
            problems.append(f"binding {old.information} of {old.site} is gone.")
            continue
        for b, changed in [(now, True), *((o, False) for o in _sharing(inv, now))]:
            if (b.site, b.information) in seen:
                continue
            seen.add((b.site, b.information))
            http_sys = http_sys_binding(inv, b)
            bound = (http_sys.thumbprint if http_sys else None) or b.thumbprint
            current = inv.certificate(bound, bound_store(inv, b)) if bound else None
            covers = None if not b.host else bool(current and current.covers(b.host))
            rows.append(
                {
                    "site": b.site,
                    "binding": b.information,
                    "changed": changed,
                    "iis_hash": b.thumbprint,
                    "http_sys_hash": http_sys.thumbprint if http_sys else None,
                    "covers_host": covers,
                }
            )
            where = f"{b.site} {_endpoint(b)}"
            if changed and (b.thumbprint != tp or (http_sys is not None and http_sys.thumbprint != tp)):
                problems.append(f"{where} is bound to {bound or 'no certificate'}, not {tp}.")
            elif covers is False:
                problems.append(f"{where} is served {bound or 'no certificate'}, which does not cover {b.host}.")
    return rows, problems
