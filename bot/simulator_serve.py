"""`certops simulator`: one simulated IIS host on 127.0.0.1 only, WinRM (Basic or NTLM) and a TLS
server per port of its http.sys bindings, built from a scenario file, a capture or the built-in
incident (docs/simulator.md). It prints a `[[hosts]]` block for certops.toml (the password is in
a 0600 file it names, removed when it stops) and runs until Ctrl-C or SIGTERM.

bot.simulator_cli defines the command line and imports this module only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from host_actions.capture import CaptureError, load_capture
from host_actions.simulator import HostModel, WinRMSimulator
from host_actions.simulator.model import issuer_pem
from host_actions.simulator.scenario_file import ScenarioError, StandInTLSServer, load_scenario, model_from_capture
from host_actions.simulator.scenarios import incident_host

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 2, 3


# -- simulator -------------------------------------------------------------------------------


@dataclass
class _Served:
    label: str
    model: HostModel


def _model(args: argparse.Namespace) -> _Served:
    if args.scenario:
        return _Served(f"scenario {args.scenario}", load_scenario(args.scenario))
    if args.capture:
        doc = load_capture(args.capture)
        return _Served(f"capture of {doc.host} taken {doc.taken_at:%Y-%m-%d %H:%M} UTC", model_from_capture(doc))
    return _Served("the built-in incident (host_actions.simulator.scenarios.incident_host)", incident_host())


def cmd_simulator(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    if not 0 <= args.port <= 65535:
        print("certops simulator: --port must be between 1 and 65535 (or 0 for a free one).", file=err)
        return EXIT_USAGE
    try:
        served = _model(args)
    except (ScenarioError, CaptureError) as exc:
        print(f"certops simulator: {exc}", file=err)
        return EXIT_USAGE
    folder = Path(tempfile.mkdtemp(prefix="certops-sim-"))  # 0700: the password file sits in it
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda _s, _f: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _serve(args, served, folder, stop, out, err)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(folder, ignore_errors=True)


def _serve(
    args: argparse.Namespace, served: _Served, folder: Path, stop: threading.Event, out: TextIO, err: TextIO
) -> int:
    password = secrets.token_urlsafe(24)  # a new one each run: it is only good while this runs
    password_file = folder / "winrm-password"
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(password)
    ca_file = folder / "simulated-issuer.pem"
    ca_file.write_bytes(issuer_pem())
    sim = WinRMSimulator(served.model, port=args.port, password=password, auth=args.auth)
    try:
        sim.start()
    except OSError as exc:
        print(
            f"certops simulator: cannot listen on 127.0.0.1:{args.port} ({exc.strerror}); "
            "choose another --port or leave it out.",
            file=err,
        )
        return EXIT_FAILED
    tls = [StandInTLSServer(served.model, binding_port=p) for p in _tls_ports(served.model)]
    for server in tls:
        server.start()
    try:
        print(_banner(args, served, sim, tls, password_file, ca_file), file=out, flush=True)
        print("certops simulator: running; Ctrl-C or SIGTERM stops it.", file=err, flush=True)
        while not stop.wait(0.5):  # a timeout, so the signal handler runs promptly on every platform
            pass
    finally:
        for server in tls:
            server.stop()
        sim.stop()
    print("certops simulator: stopped.", file=err, flush=True)
    return EXIT_OK


def _tls_ports(model: HostModel) -> list[int]:
    ports = set()
    for b in model.http_bindings:
        port = b.endpoint.rpartition(":")[2]
        if b.kind in ("ip", "hostname") and port.isdigit():
            ports.add(int(port))
    return sorted(ports)


def _toml(value: str) -> str:
    # a JSON string is a TOML basic string: the same quotes and escapes
    return json.dumps(value)


def _banner(
    args: argparse.Namespace,
    served: _Served,
    sim: WinRMSimulator,
    tls: list[StandInTLSServer],
    password_file: Path,
    ca_file: Path,
) -> str:
    lines = [
        f"# certops simulator: {served.label}",
        f"# WinRM ({args.auth}) at {sim.url}; paste this into certops.toml:",
        "",
        "[[hosts]]",
        f"name = {_toml(args.name)}",
        f"address = {_toml(sim.url)}",
        f"transport = {_toml(args.auth)}",
        f"username = {_toml(sim.username)}",
        f"password_file = {_toml(str(password_file))}",
    ]
    if args.auth == "basic":
        lines.append("allow_insecure_basic = true  # Basic over http://, on loopback only")
    lines += [f"wacs_path = {_toml(served.model.wacs_path)}", 'timeout = "30s"', ""]
    for server in tls:
        port = str(server.binding_port)
        names = sorted(
            {
                name
                for b in served.model.http_bindings
                if b.kind == "hostname"
                for name, _sep, bound in [b.endpoint.rpartition(":")]
                if bound == port
            }
        )
        lines.append(f"# TLS for the http.sys bindings on port {server.binding_port}: 127.0.0.1:{server.port}")
        for name in names:
            lines.append(
                f"#   certops check https://{name}:{server.port}/ --resolve {name}:{server.port}:127.0.0.1 "
                f"--ca-file {ca_file}"
            )
    return "\n".join(lines)


# -- capture ---------------------------------------------------------------------------------
