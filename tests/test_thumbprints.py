"""Thumbprints in full (40 hex characters, as IIS Manager and the certificates console show them)
where a person compares them, and shortened the same way everywhere else."""

from __future__ import annotations

import re

from bot.core.describe import short_thumb
from bot.probe.text import short_thumbprint
from host_actions.diagnose import diagnose
from host_actions.inventory import build_inventory
from host_actions.scripts import Part
from host_actions.simulator.scenarios import incident_host
from tests.host_actions.conftest import offline_results

TP = "ABC4DED6F68B8F5C189CC35705BC26790AA9D9F6"


def test_a_finding_names_each_certificate_by_its_whole_thumbprint() -> None:
    model = incident_host()
    parts = [Part("certs"), Part("bindings"), Part("winacme", {"WacsPath": model.wacs_path}), Part("tasks")]
    findings = diagnose(build_inventory("iis01", offline_results(model, parts)))
    newest = max(model.certs, key=lambda c: c.not_before).thumbprint
    message = next(f.message for f in findings if f.code == "newest_cert_key_unusable")
    assert newest in message
    assert "…" not in message


def test_a_short_thumbprint_is_the_same_four_and_four_everywhere() -> None:
    assert short_thumbprint(TP) == "ABC4…D9F6"
    assert short_thumb(TP) == short_thumbprint(TP)
    assert re.fullmatch(r"[0-9A-F]{4}…[0-9A-F]{4}", short_thumbprint(TP))
    assert short_thumbprint("ABCD") == "ABCD"
