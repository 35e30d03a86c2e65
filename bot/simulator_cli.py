"""The `certops simulator` command line; the serving is in bot.simulator_serve, imported when the
command runs, so that building certops's parser stays cheap."""

from __future__ import annotations

import argparse
from typing import Any

DEFAULT_NAME = "iis-sim"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `simulator` to the certops command line."""
    p = subparsers.add_parser(
        "simulator",
        help="serve a simulated IIS host on 127.0.0.1 (WinRM and TLS) until Ctrl-C",
        description="Serve a simulated IIS host on 127.0.0.1 only: WinRM with Basic or NTLM, and a TLS "
        "server per port of its http.sys bindings. Prints a [[hosts]] block to paste into certops.toml. "
        "Without --scenario or --capture it serves the built-in incident.",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--scenario", metavar="FILE", help="a scenario file (TOML, see docs/simulator.md)")
    source.add_argument("--capture", metavar="FILE", help="a capture file taken with `certops host capture`")
    p.add_argument("--auth", choices=("basic", "ntlm"), default="basic", help="WinRM authentication (default basic)")
    p.add_argument("--port", type=int, default=0, help="WinRM port on 127.0.0.1 (default: a free one)")
    p.add_argument("--name", default=DEFAULT_NAME, help=f"its [[hosts]] name (default {DEFAULT_NAME})")
    p.set_defaults(handler=cmd_simulator)


def cmd_simulator(args: argparse.Namespace) -> Any:
    from bot.simulator_serve import cmd_simulator as serve

    return serve(args)
