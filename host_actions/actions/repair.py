"""repair-store: `certutil -repairstore`, then the key test again."""

from __future__ import annotations

from typing import Any

from host_actions import validate
from host_actions.actions.result import ActionResult, tail
from host_actions.errors import HostActionError
from host_actions.inventory import require
from host_actions.model import Certificate
from host_actions.parsers import certutil_outcome, parse_certificate, parse_certutil_store
from host_actions.scripts import Part
from host_actions.target import Host
from host_actions.winrm_client import HostSession


def repair_store(host: Host, thumbprint: str, *, what_if: bool = False) -> ActionResult:
    tp = validate.thumbprint(thumbprint)
    with HostSession(host, "repair-store") as session:
        before = _one_cert(host, session.run([Part("certs", {"Thumbprint": tp})]), tp)
        if what_if:
            return ActionResult(
                "repair-store",
                host.name,
                True,
                f"Would run certutil -repairstore {before.store} {tp} on {host.name} (its key is now "
                f"{before.key_status}), then test the key again.",
                {"what_if": True, "thumbprint": tp, "store": before.store, "before": before.key_status},
                session.stats.round_trips,
            )
        results = session.run(
            [Part("repair_store", {"Store": before.store, "Thumbprint": tp}), Part("certs", {"Thumbprint": tp})]
        )
        repair = require(results, "repair_store", host.name)
        after = _one_cert(host, results[1:], tp)
    output = str(repair.get("repair_output") or "")
    certutil_ok, hresult = certutil_outcome(output, int(repair.get("repair_exit") or 0))
    view = parse_certutil_store(str(repair.get("store_output") or "")).get(tp)
    ok = after.usable
    if ok:
        summary = f"{host.name}: repaired the key link of {tp} in {before.store} ({before.key_status} -> ok)."
    else:
        summary = (
            f"{host.name}: certutil -repairstore {'ran' if certutil_ok else 'failed'}"
            + (f" ({hresult})" if hresult else "")
            + f"; the key of {tp} is still {after.key_status}."
        )
    return ActionResult(
        "repair-store",
        host.name,
        ok,
        summary,
        {
            "thumbprint": tp,
            "store": before.store,
            "before": before.key_status,
            "after": after.key_status,
            "certutil_ok": certutil_ok,
            "certutil_hresult": hresult,
            "certutil_view": view,
            "certutil_output": tail(output, 20),
        },
        session.stats.round_trips,
    )


def _one_cert(host: Host, results: list[Any], tp: str) -> Certificate:
    doc = require(results, "certs", host.name)
    certs = [parse_certificate(c) for c in doc.get("certs") or ()]
    if not certs:
        raise HostActionError(
            "script_failed", f"{host.name}: certificate {tp} is in neither My nor WebHosting.", host=host.name
        )
    # the same thumbprint in My and WebHosting has a key link per copy: repair (and judge) the
    # copy whose key does not work, not whichever store certs.ps1 listed first
    return next((c for c in certs if not c.usable), certs[0])
