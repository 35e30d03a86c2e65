"""`certops host ACTION HOST [ARGS] [--json]`: the host actions on the command line, built from
`host_actions.registry`.

A changing action obeys the rules a chat button does: it asks for confirmation (or `--yes`),
offers `--what-if` (every read-only check, and what it would change, changing nothing), and is
written to the audit log as `cli:USER` before it runs and with its outcome after; if the audit log
cannot be written, nothing runs.

Exit codes: 0 done and healthy, 1 done but something needs attention (findings, or the action
did not achieve its effect), 2 the action failed (unreachable, refused, timed out...),
3 the command line or the config is wrong, or the change was not confirmed. Errors are one
sentence on stderr, no traceback.

It lives in bot, not host_actions, because it reads certops.toml: host_actions stays a leaf
that is handed a Host and never imports bot.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bot.config import Config, ConfigError, Host, load_config
from bot.logs import escape
from host_actions.errors import HostActionError
from host_actions.registry import ACTIONS, HostAction

if TYPE_CHECKING:  # imported where used: `certops check` builds this parser and must stay light
    from host_actions.actions import ActionResult
    from host_actions.model import Inventory

EXIT_OK, EXIT_ATTENTION, EXIT_FAILED, EXIT_USAGE = 0, 1, 2, 3
Parser = argparse.ArgumentParser


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `host` and its actions to the certops command line."""
    reading = ", ".join(["inventory", *(a.name for a in ACTIONS.values() if not a.changes_host)])
    changing = ", ".join(a.name for a in ACTIONS.values() if a.changes_host)
    host = subparsers.add_parser(
        "host",
        help="run an action on an IIS host over WinRM",
        description=f"Run one action on a configured IIS host over WinRM. Read-only: {reading}. "
        f"Changing (asks for confirmation, or --yes; --what-if shows what it would change): {changing}.",
    )
    _config_option(host)
    sub = host.add_subparsers(dest="host_action", metavar="ACTION", required=True)
    p = _parser(sub, "inventory", "list certificates, bindings, win-acme renewals and tasks")
    p.set_defaults(handler=lambda args: run_inventory(args))
    p = _parser(sub, "capture", "save what the read-only scripts print on the host as one JSON file", json=False)
    p.add_argument("-o", "--output", metavar="FILE", help="where to write it (default HOST-capture-TIME.json)")
    p.set_defaults(handler=lambda args: run_capture(args))
    for action in ACTIONS.values():
        p = _parser(sub, action.name, action.help + (" (changes the host)" if action.changes_host else ""))
        if action.name == "diagnose":
            p.add_argument("--capture", metavar="FILE", help="judge a capture offline instead (HOST may be left out)")
            p.set_defaults(handler=lambda args: run_diagnose(args))
            continue
        for param in action.params:
            if param.kind == "positional":
                p.add_argument(param.name, metavar=param.metavar, help=param.help)
            elif param.kind == "optional":
                p.add_argument(param.name, metavar=param.metavar, nargs="?", help=param.help)
            elif param.kind == "switch":
                p.add_argument(param.word, dest=param.name, action="store_true", help=param.help)
            else:
                p.add_argument(param.word, dest=param.name, metavar=param.metavar, action="append", help=param.help)
        if action.changes_host:
            p.add_argument("-y", "--yes", action="store_true", help="run without asking for confirmation")
            p.add_argument("--what-if", action="store_true", help="say what it would change, and change nothing")
        p.set_defaults(handler=lambda args, action=action: run_action(args, action))


def _parser(sub: argparse._SubParsersAction, name: str, help_text: str, *, json: bool = True) -> Parser:  # type: ignore[type-arg]
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    nargs = "?" if name == "diagnose" else None  # diagnose --capture FILE needs no host
    p.add_argument("host", metavar="HOST", nargs=nargs, help="a [[hosts]] name from the config")
    if json:
        p.add_argument("--json", action="store_true", help="print the result as JSON")
    _config_option(p)
    return p


def _config_option(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a -c given to a parent parser (certops -c FILE host ...) is not overwritten
    parser.add_argument("-c", "--config", default=argparse.SUPPRESS, help="config file (default certops.toml)")


def words(args: argparse.Namespace, action: HostAction) -> list[str]:
    """The command line's values as a request carries them (registry.HostAction.bind reads them)."""
    found: list[str] = []
    for param in action.params:
        value = getattr(args, param.name, None)
        if param.kind in ("positional", "optional") and value is not None:
            found.append(value)
        elif param.kind == "switch" and value:
            found.append(param.word)
        elif param.kind == "option":
            found += [f"{param.word}={v}" for v in value or ()]
    return found


def cli_user() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return "cli:" + escape(name)[:64]


class _Refused(Exception):
    """The change was not confirmed or could not be audited: nothing ran."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def run_action(
    args: argparse.Namespace, action: HostAction, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    loaded = _config_and_host(args, err)
    if isinstance(loaded, int):
        return loaded
    config, host = loaded
    given = words(args, action)
    what_if = bool(getattr(args, "what_if", False))
    try:
        action.bind(given)  # a bad value is refused before anything is asked or sent
    except HostActionError as exc:
        return _failed(args, host, exc, EXIT_USAGE, out, err)
    subject = f"{action.name} {' '.join(given) or host.name} on {host.name}"
    change = action.changes_host and not what_if
    try:
        if change:
            how = "--yes" if args.yes else _confirmed(action, host.name, given, err)
            _audit(config, "approve", subject, "approved", f"at the command line ({how})")
        result = action.run(host, given, what_if=what_if)
    except _Refused as refused:
        print(refused, file=err)
        return refused.code
    except HostActionError as exc:
        if change:
            _audit_after(config, subject, "failed", f"{exc.kind}: {exc.message}", err)
        return _failed(args, host, exc, EXIT_FAILED, out, err)
    if change:
        _audit_after(config, subject, "ok" if result.ok else "failed", result.summary, err)
    print(json.dumps(result.to_json(), indent=2) if args.json else render_result(result), file=out)
    return EXIT_OK if result.ok else EXIT_ATTENTION


def _confirmed(action: HostAction, host: str, given: list[str], err: TextIO) -> str:
    command = suggested(action.name, host, given)
    if not sys.stdin.isatty():
        raise _Refused(
            f"{command} changes {host}: confirm with --yes (or see what it would change with --what-if). "
            "Nothing was run.",
            EXIT_USAGE,
        )
    print(f"{command} changes {host}. Run it? Type yes: ", end="", file=err, flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise _Refused("Not confirmed; nothing was run.", EXIT_USAGE)
    return "confirmed at the terminal"


def _audit(config: Config, event: str, subject: str, outcome: str, detail: str) -> None:
    from bot.store import StoreError, append_audit  # SQLAlchemy: only when a change is audited

    try:
        password = config.bot.database_password
        append_audit(
            config.bot.database,
            cli_user(),
            event,
            subject,
            outcome,
            detail,
            password=password.resolve() if password else None,
        )
    except (StoreError, OSError) as exc:
        raise _Refused(
            f"certops cannot write the audit log in {config.bot.database} ({exc}); nothing was run. "
            "Check [bot] database and that this user may write it.",
            EXIT_FAILED,
        ) from None


def _audit_after(config: Config, subject: str, outcome: str, detail: str, err: TextIO) -> None:
    """The outcome of a change that ran: a failure to record it is said, never hidden."""
    try:
        _audit(config, "run", subject, outcome, detail)
    except _Refused:
        print(f"The action ran, but its outcome could not be written to the audit log in {config.bot.database}.",
              file=err)  # fmt: skip


def _failed(args: argparse.Namespace, host: Host, exc: HostActionError, code: int, out: TextIO, err: TextIO) -> int:
    if args.json:
        doc = {"ok": False, "host": host.name, "error": {"kind": exc.kind, "message": exc.message}}
        print(json.dumps(doc), file=out)
    print(exc.message, file=err)
    return code


def run_diagnose(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """diagnose a live host, or judge a capture offline exactly as the live host would be judged
    (with the host's renewal_grace when HOST names one in the config)."""
    out, err = out or sys.stdout, err or sys.stderr
    if not args.capture:
        if args.host is None:
            print("certops host diagnose: give HOST, or --capture FILE to judge a capture.", file=err)
            return EXIT_USAGE
        return run_action(args, ACTIONS["diagnose"], out, err)
    from host_actions.capture import CaptureError, diagnose_capture, load_capture

    grace = None
    if args.host is not None:
        loaded = _config_and_host(args, err)
        if isinstance(loaded, int):
            return loaded
        grace = dt.timedelta(seconds=loaded[1].renewal_grace)
    try:
        doc = load_capture(args.capture)
        _inv, _findings, result = diagnose_capture(doc) if grace is None else diagnose_capture(doc, overdue_grace=grace)
    except (CaptureError, HostActionError) as exc:
        print(str(exc), file=err)
        return EXIT_USAGE if isinstance(exc, CaptureError) else EXIT_FAILED
    print(json.dumps(result.to_json(), indent=2) if args.json else render_result(result), file=out)
    return EXIT_OK if result.ok else EXIT_ATTENTION


def run_capture(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The read-only scripts' output, saved as one file (0600: not secret, but a description of
    the host) that `certops simulator --capture` and `diagnose --capture` read."""
    out, err = out or sys.stdout, err or sys.stderr
    loaded = _config_and_host(args, err)
    if isinstance(loaded, int):
        return loaded
    from host_actions.capture import CaptureError, capture, dump_capture

    host = loaded[1]
    try:
        doc = capture(host)
    except (HostActionError, CaptureError) as exc:
        print(str(exc), file=err)
        return EXIT_FAILED
    path = Path(args.output or f"{host.name}-capture-{doc['taken_at'][:19].replace(':', '')}.json")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(dump_capture(doc))
    except OSError as exc:
        print(f"certops host capture: cannot write {path} ({exc.strerror}); give another -o FILE.", file=err)
        return EXIT_FAILED
    removed = f" ({len(doc['removed'])} secret(s) cut out)" if doc["removed"] else ""
    print(
        f"{host.name}: wrote {path}{removed}. It holds no private key and not the WinRM password; "
        "read the scheduled tasks' scripts in it before you send it.",
        file=out,
    )
    return EXIT_OK


def run_inventory(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    loaded = _config_and_host(args, err)
    if isinstance(loaded, int):
        return loaded
    _config, host = loaded
    try:
        from host_actions.inventory import inventory

        inv = inventory(host)
    except HostActionError as exc:
        return _failed(args, host, exc, EXIT_FAILED, out, err)
    print(json.dumps(inv.to_json(), indent=2) if args.json else render_inventory(inv), file=out)
    return EXIT_OK


def _config_and_host(args: argparse.Namespace, err: TextIO) -> tuple[Config, Host] | int:
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
    return config, host


def render_result(result: ActionResult) -> str:
    lines = [result.summary]
    details: dict[str, Any] = result.details
    for f in details.get("findings") or ():
        lines.append(f"  [{f['severity']}] {f['code']}: {f['message']}")
        if f.get("proposal"):
            proposal = f["proposal"]
            lines.append(f"      -> {suggested(proposal['action'], result.host, proposal['args'])}")
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


def suggested(action: str, host: str, args: list[str]) -> str:
    """A command to copy into a shell: every word quoted as the shell needs (a task path keeps
    its backslashes, a site name its spaces)."""
    return shlex.join(["certops", "host", action, host, *args])
