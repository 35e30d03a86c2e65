"""renew: a win-acme renewal, then a fresh inventory to see what it changed."""

from __future__ import annotations

import re

from host_actions import validate
from host_actions.actions.binding_check import binding_report
from host_actions.actions.result import ActionResult
from host_actions.diagnose import diagnose
from host_actions.errors import HostActionError, InvalidParameter
from host_actions.inventory import build_inventory, inventory_parts, require
from host_actions.scripts import Part
from host_actions.target import Host
from host_actions.winrm_client import HostSession

RELEVANT_WACS_LINE = re.compile(
    r"\[(EROR|ERR|WARN|WRN|FATL|FTL)\]|Script |Renewing|Installing|Store with|Updating|encountered an error",
    re.I,
)  # the console with --verbose writes [EROR]/[WARN]/[FATL]; the log file writes [ERR]/[WRN]/[FTL]


def renew(host: Host, renewal_id: str | None = None, *, force: bool = False) -> ActionResult:
    rid = validate.renewal_id(renewal_id) if renewal_id else ""
    wacs = validate.windows_path(host.wacs_path)
    if not wacs.lower().endswith("\\wacs.exe"):
        raise InvalidParameter("wacs_path must name wacs.exe.")
    parts = inventory_parts(host)
    with HostSession(host, "renew") as session:
        before = build_inventory(host.name, session.run(parts))
        if rid and before.renewal(rid) is None:
            raise HostActionError(
                "script_failed", f"{host.name}: win-acme has no renewal with id {rid}.", host=host.name
            )
        if not before.wacs_exists:
            raise HostActionError("script_failed", f"{host.name}: wacs.exe is not at {wacs}.", host=host.name)
        results = session.run([Part("renew", {"WacsPath": wacs, "RenewalId": rid, "Force": force}), *parts])
        run = require(results, "renew", host.name)
        after = build_inventory(host.name, results[1:])
    exit_code = int(run.get("exit") or 0)
    lines = [ln.strip() for ln in str(run.get("output") or "").splitlines() if RELEVANT_WACS_LINE.search(ln)]
    new_certs = [c for c in after.certificates if before.certificate(c.thumbprint) is None]
    ok = exit_code == 0
    summary = f"{host.name}: wacs.exe exited with {exit_code}" + (
        f"; new certificate(s): {', '.join(c.thumbprint for c in new_certs)}." if new_certs else "; no new certificate."
    )
    return ActionResult(
        "renew",
        host.name,
        ok,
        summary,
        {
            "exit_code": exit_code,
            "log": lines[-30:],
            "new_certificates": [c.thumbprint for c in new_certs],
            "new_key_status": {c.thumbprint: c.key_status for c in new_certs},
            "bindings_before": binding_report(before),
            "bindings_after": binding_report(after),
            "findings_after": [f.to_json() for f in diagnose(after)],
        },
        session.stats.round_trips,
    )
