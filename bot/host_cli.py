"""`certops host ACTION HOST [ARGS] [--json]`: the host actions on the command line.

Exit codes: 0 done and healthy, 1 done but something needs attention (findings, or the action
did not achieve its effect), 2 the action failed (unreachable, refused, timed out...),
3 the command line or the config is wrong. Errors are one sentence on stderr, no traceback.

It lives in bot, not host_actions, because it reads certops.toml: host_actions stays a leaf
that is handed a Host and never imports bot.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from bot.config import ConfigError, Host, load_config
from host_actions import actions
from host_actions.errors import HostActionError
from host_actions.inventory import inventory
from host_actions.model import Inventory

EXIT_OK, EXIT_ATTENTION, EXIT_FAILED, EXIT_USAGE = 0, 1, 2, 3

Runner = Callable[[Host, argparse.Namespace], "actions.ActionResult | Inventory"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `host` and its actions to the certops command line."""
    host = subparsers.add_parser(
        "host",
        help="run an action on an IIS host over WinRM",
        description="Run one action on a configured IIS host over WinRM. Read-only: inventory, "
        "diagnose, verify-binding, audit-tasks. Changing: repair-store, rebind, renew, retire-task, "
        "add-post-renew-step.",
    )
    _config_option(host)
    actions_parser = host.add_subparsers(dest="host_action", metavar="ACTION", required=True)

    def action(name: str, help_text: str, runner: Runner) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions_parser.add_parser(name, help=help_text, description=help_text)
        p.add_argument("host", metavar="HOST", help="a [[hosts]] name from the config")
        p.add_argument("--json", action="store_true", help="print the result as JSON")
        _config_option(p)
        p.set_defaults(handler=lambda args: run(args, runner))
        return p

    action("inventory", "list certificates, bindings, win-acme renewals and tasks", lambda h, a: inventory(h))
    action("diagnose", "inventory the host and list findings with proposed actions", _diagnose)
    p = action("repair-store", "rebuild a certificate's key link (certutil -repairstore)", _repair)
    p.add_argument("thumbprint", metavar="THUMBPRINT")
    p = action("verify-binding", "check that https bindings use the newest usable certificate", _verify)
    p.add_argument("site", metavar="SITE", nargs="?")
    p = action("rebind", "point a site's https bindings at a certificate", _rebind)
    p.add_argument("site", metavar="SITE")
    p.add_argument("thumbprint", metavar="THUMBPRINT")
    p = action("renew", "run a win-acme renewal now", _renew)
    p.add_argument("renewal", metavar="RENEWAL_ID", nargs="?")
    p.add_argument("--force", action="store_true", help="renew even if not due")
    action("audit-tasks", "audit scheduled tasks outside \\Microsoft\\", lambda h, a: actions.audit_tasks(h))
    p = action("retire-task", "disable a flagged task and rename its scripts", _retire)
    p.add_argument("task", metavar="TASKPATH")
    p = action("add-post-renew-step", "add the certops repair/verify script to a renewal", _add_step)
    p.add_argument("renewal", metavar="RENEWAL_ID")


def _config_option(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a -c given to a parent parser (certops -c FILE host ...) is not overwritten
    parser.add_argument("-c", "--config", default=argparse.SUPPRESS, help="config file (default certops.toml)")


def _diagnose(host: Host, args: argparse.Namespace) -> actions.ActionResult:
    return actions.diagnose_host(host)[2]


def _repair(host: Host, args: argparse.Namespace) -> actions.ActionResult:
    return actions.repair_store(host, args.thumbprint)


def _verify(host: Host, args: argparse.Namespace) -> actions.ActionResult:
    return actions.verify_binding(host, args.site)


def _rebind(host: Host, args: argparse.Namespace) -> actions.ActionResult:
    return actions.rebind(host, args.site, args.thumbprint)


def _renew(host: Host, args: argparse.Namespace) -> actions.ActionResult:
    return actions.renew(host, args.renewal, force=args.force)


def _retire(host: Host, args: argparse.Namespace) -> actions.ActionResult:
    return actions.retire_task(host, args.task)


def _add_step(host: Host, args: argparse.Namespace) -> actions.ActionResult:
    return actions.add_post_renew_step(host, args.renewal)


def run(args: argparse.Namespace, runner: Runner, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    config_path = getattr(args, "config", None) or "certops.toml"
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(exc.render(), file=err)
        return EXIT_USAGE
    host = config.host(args.host)
    if host is None:
        known = ", ".join(h.name for h in config.hosts) or "none"
        print(f'No host named "{args.host}" in {config_path} (known hosts: {known}).', file=err)
        return EXIT_USAGE
    try:
        result = runner(host, args)
    except HostActionError as exc:
        if args.json:
            doc = {"ok": False, "host": host.name, "error": {"kind": exc.kind, "message": exc.message}}
            print(json.dumps(doc), file=out)
        print(exc.message, file=err)
        return EXIT_FAILED
    if isinstance(result, Inventory):
        print(json.dumps(result.to_json(), indent=2) if args.json else render_inventory(result), file=out)
        return EXIT_OK
    print(json.dumps(result.to_json(), indent=2) if args.json else render_result(result), file=out)
    return EXIT_OK if result.ok else EXIT_ATTENTION


def render_result(result: actions.ActionResult) -> str:
    lines = [result.summary]
    details: dict[str, Any] = result.details
    for f in details.get("findings") or ():
        lines.append(f"  [{f['severity']}] {f['code']}: {f['message']}")
        if f.get("proposal"):
            proposal = f["proposal"]
            args = " ".join(_quote(a) for a in proposal["args"])
            lines.append(f"      -> certops host {proposal['action']} {result.host} {args}".rstrip())
    for b in details.get("bindings") or ():
        if isinstance(b, dict):
            lines.append(f"  {b['site']} {b['endpoint']}: {b['status']} (bound {b['bound']}, newest {b['newest']})")
    for t in details.get("tasks") or ():
        flags = "; ".join(f["detail"] for f in t["flags"]) or "ok"
        lines.append(f"  {t['path']} [{t['state']}] last result {t['last_result']} ({t['meaning']}): {flags}")
    for line in details.get("log") or ():
        lines.append(f"  | {line}")
    for line in details.get("diff") or ():
        lines.append(f"  {line}")
    return "\n".join(lines)


def render_inventory(inv: Inventory) -> str:
    lines = [f"{inv.host}: {len(inv.certificates)} certificate(s)"]
    for c in sorted(inv.certificates, key=lambda c: c.not_after or inv.taken_at):
        expires = c.not_after.strftime("%Y-%m-%d") if c.not_after else "?"
        lines.append(f"  {c.store:<10} {c.thumbprint} {c.common_name:<30} expires {expires} key {c.key_status}")
    lines.append(f"http.sys bindings: {len(inv.ssl_bindings)}")
    for b in inv.ssl_bindings:
        lines.append(f"  {b.endpoint:<40} {b.thumbprint or '(none)'} {b.store or ''}")
    lines.append(f"win-acme renewals: {len(inv.renewals)}")
    for r in inv.renewals:
        last = r.last
        state = "never ran" if last is None else ("ok" if last.success else "FAILED")
        steps = ", ".join(s.name for s in r.steps) or "none"
        lines.append(f"  {r.id} {', '.join(r.hosts)}: steps {steps}; last run {state}")
    lines.append(f"scheduled tasks outside \\Microsoft\\: {len(inv.tasks)}")
    return "\n".join(lines)


def _quote(arg: str) -> str:
    return f'"{arg}"' if " " in arg else arg
