"""The `certops` command line."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from bot import __version__, eventloop
from bot.config.errors import ConfigError
from bot.probe import ProbeResult, ProbeTarget, probe_many, worst_status
from bot.probe.plugin import render_plugin
from bot.probe.targets import TargetError, parse_resolve, site_targets, url_target

if TYPE_CHECKING:  # the whole config loads only for the commands that read one (not `check URL`)
    from bot.config import Config

EXIT_UNKNOWN = 3  # monitoring-plugin convention for usage and internal errors
DEFAULT_CONFIG = "certops.toml"
log = logging.getLogger("certops")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNKNOWN, f"{self.prog}: error: {message}\n")


# Commands whose module registers them, in the order --help lists them. Imported only when built:
# `certops check`, run once per site by a monitoring system, loads none of them.
REGISTERED = {
    "simulator": "bot.simulator_cli",
    "agent": "bot.agent",
    "host": "bot.host_cli",
    "audit": "bot.audit_cli",
    "db": "bot.db_cli",
}

COMMANDS = frozenset({"check-config", "check", "run", "demo", *REGISTERED})


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command, or only `command` (the one named on the command line: its usage, help and
    errors are the same either way, and the other commands' modules are not loaded)."""
    parser = _Parser(
        prog="certops",
        description="Keeps TLS certificates on Windows/IIS websites honest.",
    )
    parser.add_argument("--version", action="version", version=f"certops {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in ("check-config", "check", *REGISTERED, "run", "demo"):
        if command is None or name == command:
            if name in REGISTERED:
                importlib.import_module(REGISTERED[name]).register(sub)
            else:
                OWN[name](sub)
    return parser


def _add_check_config(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("check-config", help="validate the config file and the secrets it names")
    p.add_argument("-c", "--config", default="certops.toml", help="config file (default certops.toml)")
    p.add_argument("--no-secrets", action="store_true", help="do not check that secrets can be read")
    p.set_defaults(handler=cmd_check_config)


def _add_check(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "check",
        help="probe URLs or configured sites once, from outside",
        description=(
            "Probe each URL (or each configured site, at its public name and at each origin): "
            "fresh TCP connection, TLS handshake with the real SNI, the certificate on the wire, "
            "one HTTP request. Exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."
        ),
    )
    p.add_argument("urls", nargs="*", metavar="URL", help="https:// addresses to probe")
    p.add_argument("-c", "--config", help="probe the sites of this config file (default: certops.toml, without URLs)")
    p.add_argument("--site", action="append", default=[], help="with -c: only this site (repeatable)")
    p.add_argument(
        "--resolve",
        action="append",
        default=[],
        metavar="HOST:PORT:ADDR",
        help="connect to ADDR for HOST:PORT, sending HOST as SNI and Host (like curl)",
    )
    p.add_argument("--ca-file", help="trust only the CA certificates in this PEM file")
    p.add_argument("--warn-days", type=int, default=21, help="warn when fewer days are left (default 21)")
    p.add_argument("--crit-days", type=int, default=7, help="critical when fewer days are left (default 7)")
    p.add_argument("--timeout", type=_duration, default=10.0, help='time per probe: 10, "5s", "1m" (default 10 s)')
    p.add_argument(
        "--follow-redirects",
        action="store_true",
        help="follow up to 5 redirects and judge the final answer (with -c: [[sites]] follow_redirects)",
    )
    p.add_argument("--concurrency", type=int, help="probes at once (default 50, or [bot] probe_concurrency)")
    p.add_argument("--json", action="store_true", help="print a JSON array (schema: docs/probe-json.md)")
    p.set_defaults(handler=cmd_check)


def _add_run(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "run",
        help="run the bot: chat adapters and web endpoints",
        description="Starts the configured chat adapters and the web endpoints on [bot] listen. "
        "Refuses to start, listing the problems, when the config is invalid or a secret is missing.",
    )
    p.add_argument("-c", "--config", default="certops.toml", help="config file (default certops.toml)")
    p.add_argument("--console", action="store_true", help="also take commands on this terminal")
    p.set_defaults(handler=cmd_run)


def _add_demo(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="replay the incident on loopback: detect, diagnose, repair, verify")
    p.add_argument("--interactive", action="store_true", help="type the commands yourself")
    p.set_defaults(handler=cmd_demo)


OWN = {"check-config": _add_check_config, "check": _add_check, "run": _add_run, "demo": _add_demo}


def main(argv: Sequence[str] | None = None) -> int:
    from bot.logs import setup_logging  # one escaped line per record: a request cannot forge a log line

    setup_logging(logging.WARNING, fmt="plain")  # for a person at a terminal; certops run switches to logfmt/json
    argv = list(sys.argv[1:] if argv is None else argv)
    named = argv[0] if argv and argv[0] in COMMANDS else None
    parser = build_parser(named)
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_UNKNOWN
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return EXIT_UNKNOWN
    except Exception:
        log.exception("internal error")
        print("certops: internal error; the log above says where it happened.", file=sys.stderr)
        return EXIT_UNKNOWN


def cmd_check_config(args: argparse.Namespace) -> int:
    from bot.config import load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    from bot.config.advice import plural, secret_problems, warnings

    for advice in warnings(config):  # valid, but does nothing here: said, and the exit code stays
        print(f"warning: {advice}")
    problems = None if args.no_secrets else secret_problems(config)
    secrets = problems.all() if problems else []
    if problems and secrets:
        print(
            f"{config.source}: the file is valid, but {plural(len(secrets), 'secret')} cannot be "
            f"{'used' if problems.wrong_kind else 'read'}:",
            file=sys.stderr,
        )
        for line in secrets:
            print(f"  {line}", file=sys.stderr)
        return 2
    print(
        f"{config.source}: OK ({plural(len(config.sites), 'site')}, {plural(len(config.hosts), 'host')}, "
        f"chat: {', '.join(_chats(config)) or 'console only'})"
    )
    from bot.store import resolved_database_path  # the store's libraries are not needed by `check`

    print(f"database: {resolved_database_path(config.bot.database)}")
    return 0


def _chats(config: Config) -> list[str]:
    return [name for name, part in (("slack", config.slack), ("line", config.line)) if part]


def _duration(text: str) -> float:
    """--timeout as the config spells durations ("5s", "1m") or plain seconds (2.5)."""
    try:
        return float(text)
    except ValueError:
        from bot.config.reader import parse_duration

        seconds = parse_duration(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: give seconds (10) or a unit (5s, 1m)")
    return seconds


def cmd_check(args: argparse.Namespace) -> int:
    if args.urls and args.config:
        print("certops check: give URLs, or -c FILE for the configured sites (not both).", file=sys.stderr)
        return EXIT_UNKNOWN
    if args.site and args.urls:
        print("certops check: --site picks configured sites; it does not go with URLs.", file=sys.stderr)
        return EXIT_UNKNOWN
    if not args.urls and not args.config:
        # like every other command: the configured sites of certops.toml
        if not Path(DEFAULT_CONFIG).exists():
            wanted = "--site picks sites from a config" if args.site else "give URLs to probe"
            print(
                f"certops check: {wanted}, or -c FILE for configured sites ({DEFAULT_CONFIG} is not here).",
                file=sys.stderr,
            )
            return EXIT_UNKNOWN
        args.config = DEFAULT_CONFIG
    if not 0 <= args.crit_days <= args.warn_days:
        print("certops check: --crit-days must be between 0 and --warn-days.", file=sys.stderr)
        return EXIT_UNKNOWN
    if args.timeout <= 0:
        print("certops check: --timeout must be more than 0 seconds.", file=sys.stderr)
        return EXIT_UNKNOWN
    if args.ca_file is not None:
        # read now, with the config's bounded reader: a named pipe or a device must not hang
        # the probes or end in a traceback
        from bot.probe.trust import ca_file_problem

        problem = ca_file_problem(args.ca_file)
        if problem:
            print(f"certops check: --ca-file: {problem}", file=sys.stderr)
            return EXIT_UNKNOWN
    concurrency = args.concurrency
    try:
        if args.config:
            from bot.config import load_config

            config = load_config(args.config)
            targets = _config_targets(config, args.site)
            concurrency = concurrency or config.bot.probe_concurrency
        else:
            resolves = [parse_resolve(r) for r in args.resolve]
            targets = [
                url_target(
                    u,
                    resolves,
                    warn_days=args.warn_days,
                    crit_days=args.crit_days,
                    timeout=args.timeout,
                    ca_file=args.ca_file,
                    follow_redirects=args.follow_redirects,
                )
                for u in args.urls
            ]
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_UNKNOWN
    except TargetError as exc:
        print(f"certops check: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    if concurrency is not None and concurrency < 1:
        print("certops check: --concurrency must be at least 1.", file=sys.stderr)
        return EXIT_UNKNOWN
    results = eventloop.run(_run_probes(targets, concurrency or 50, sys.stderr))
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=2))
    else:
        print(render_plugin(results))
    return worst_status(results).exit_code


def cmd_run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from bot.config import load_config, missing_secrets
    from bot.runner import serve
    from bot.store import StoreBusy, StoreError, resolved_database_path

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        print("certops run: not starting until the config is fixed.", file=sys.stderr)
        return 2
    secrets = missing_secrets(config)
    if secrets:
        print(f"certops run: not starting: {len(secrets)} secret(s) cannot be read:", file=sys.stderr)
        for line in secrets:
            print(f"  {line}", file=sys.stderr)
        return 2
    from bot.logs import setup_logging

    setup_logging(config.bot.log_level.upper(), fmt=config.bot.log_format)  # [bot] log_format from here on
    logging.getLogger().setLevel(config.bot.log_level.upper())
    print(f"certops run: database {resolved_database_path(config.bot.database)}", file=sys.stderr)
    try:
        # uvloop where installed, as certops check and the probe workers (CERTOPS_EVENT_LOOP=asyncio: asyncio's)
        return eventloop.run(serve(config, console=args.console))
    except eventloop.EventLoopUnavailable as exc:
        print(f"certops run: not starting: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the port is taken, the database folder is not writable...
        print(f"certops run: cannot start: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except StoreBusy as exc:
        print(f"certops run: not starting: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"certops run: not starting: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        print(f"certops run: cannot open the database {config.bot.database}: {reason}", file=sys.stderr)
        return 2


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo  # the demo's servers are not needed by any other command

    return run_demo(interactive=args.interactive)


def _config_targets(config: Config, names: list[str]) -> list[ProbeTarget]:
    for name in names:
        if config.site(name) is None:
            from bot.config.reader import did_you_mean

            known = [s.name for s in config.sites]
            raise TargetError(f'no site named "{name}" in {config.source}{did_you_mean(name, known)}')
    sites = [s for s in config.sites if not names or s.name in names]
    if not sites:
        raise TargetError(f"{config.source} has no [[sites]] to probe")
    return [t for s in sites for t in site_targets(s)]


async def _run_probes(targets: list[ProbeTarget], concurrency: int, progress: TextIO) -> list[ProbeResult]:
    done = 0
    show = progress.isatty() and len(targets) > 1

    def tick(_result: ProbeResult) -> None:
        nonlocal done
        done += 1
        if show:
            progress.write(f"\rprobed {done}/{len(targets)}")
            progress.flush()

    results = await probe_many(targets, concurrency=concurrency, on_result=tick)
    if show:
        progress.write("\r" + " " * 30 + "\r")
    return results


if __name__ == "__main__":
    raise SystemExit(main())
