"""Remake the capture files in this folder (see README.md): `.venv/bin/python tests/captures/make_captures.py`.

Each capture is taken as `certops host capture` takes one, through pywinrm against a WinRMSimulator
on 127.0.0.1; the localised one is then edited the way a French Windows prints its certificates.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from host_actions.capture import capture, dump_capture
from host_actions.simulator import HostModel, WinRMSimulator
from host_actions.simulator.scenarios import incident_host

HERE = Path(__file__).resolve().parent
PASSWORD_ENV = "CERTOPS_CAPTURE_SIM_PASSWORD"


def take(model: HostModel, name: str) -> dict[str, Any]:
    with WinRMSimulator(model) as sim:
        os.environ[PASSWORD_ENV] = sim.password
        return capture(sim.host_config(name, password_env=PASSWORD_ENV))


def localised_host() -> HostModel:
    """A French server: the renewed certificate covers www.example.fr and example.fr, IIS binds
    example.fr (a name only the SAN carries), and its key link is broken."""
    model = HostModel()
    cert = model.add_cert(["www.example.fr", "example.fr"], days_old=1, key_state="missing_keyset")
    model.bind_site("Site Web par défaut", "example.fr", cert)
    model.add_wacs_task()
    return model


def as_french_windows(doc: dict[str, Any]) -> dict[str, Any]:
    """The hand edit: DnsNameList on a French Windows PowerShell 5.1 finds no SAN ("Nom DNS="
    is not "DNS Name="), so `sans` is the subject CN alone; the names stay in RawData."""
    certs = next(p for p in doc["parts"] if p["name"] == "certs")["result"]["certs"]
    for cert in certs:
        cert["sans"] = [cert["subject"].removeprefix("CN=")]
        cert["friendly_name"] = "Certificat renouvelé"
    return doc


def main() -> None:
    (HERE / "incident.json").write_text(dump_capture(take(incident_host(), "iis01")), encoding="utf-8")
    localised = as_french_windows(take(localised_host(), "iis-fr"))
    (HERE / "localised.json").write_text(dump_capture(localised), encoding="utf-8")


if __name__ == "__main__":
    main()
