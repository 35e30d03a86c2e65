"""Captures: what the inventory scripts printed on a host, taken through pywinrm against the
simulator, judged offline as the live host is judged, and refused with a sentence when a file
cannot be one. The saved captures under tests/captures/ are described in their README."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from host_actions import actions
from host_actions.capture import (
    MAX_CAPTURE_BYTES,
    CaptureError,
    capture,
    diagnose_capture,
    dump_capture,
    load_capture,
    parse_capture,
    script_sha256,
)
from host_actions.diagnose import Finding
from host_actions.inventory import INVENTORY_SCRIPTS
from host_actions.simulator import HostModel
from host_actions.simulator.model import issuer_pem, sim_cert
from host_actions.simulator.scenario_file import StandInTLSServer, model_from_capture
from host_actions.simulator.scenarios import healthy_host, incident_host, multi_host_site
from tests.host_actions.conftest import SimFactory

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
PEM_KEY = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n"
)


def codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}


def _write(tmp_path: Path, doc: Any, name: str = "capture.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else dump_capture(doc), encoding="utf-8")
    return path


# -- taking one ------------------------------------------------------------------------------


def test_a_capture_through_pywinrm_holds_what_each_inventory_script_printed(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    doc = capture(host)
    assert (doc["format"], doc["format_version"], doc["host"]) == ("certops-capture", 1, host.name)
    assert [p["name"] for p in doc["parts"]] == list(INVENTORY_SCRIPTS)
    assert all(p["ok"] and p["error"] is None for p in doc["parts"])
    assert doc["scripts"] == {name: script_sha256(name) for name in INVENTORY_SCRIPTS}
    assert doc["parts"][2]["params"] == {"WacsPath": host.wacs_path}
    certs = doc["parts"][0]["result"]["certs"]
    assert {c["thumbprint"] for c in certs} == {c.thumbprint for c in sim.model.certs}
    assert all(c["raw"] for c in certs)  # RawData, so names can be read from it later
    assert doc["removed"] == []
    assert sim.scripts_run == list(INVENTORY_SCRIPTS)  # one command, read-only scripts only


def test_a_capture_holds_no_private_key_no_password_and_not_the_hosts_address(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    text = dump_capture(capture(host))
    assert "PRIVATE KEY" not in text
    assert sim.password not in text
    assert sim.url not in text
    assert "127.0.0.1" not in text


def test_a_private_key_and_the_password_in_a_tasks_script_are_cut_out_and_the_task_still_audited(
    make_sim: SimFactory,
) -> None:
    model = incident_host()
    secret_script = "C:\\jobs\\deploy-cert.ps1"
    model.add_task("Deploy cert", "powershell.exe", f"-File {secret_script}", last_result=1)
    sim, host = make_sim(model)
    model.files[secret_script.lower()] = f"$pw = '{sim.password}'\r\n$key = @'\r\n{PEM_KEY}'@\r\nexit 1\r\n"
    doc = capture(host)
    text = dump_capture(doc)
    assert "PRIVATE KEY" not in text
    assert sim.password not in text
    assert any(r.endswith("a private key") and ".text" in r for r in doc["removed"])
    assert any(r.endswith("the WinRM password") for r in doc["removed"])
    _inv, findings, _result = diagnose_capture(parse_capture(doc))
    assert "\\Deploy cert" in {f.evidence.get("task") for f in findings}


def test_a_private_key_block_cut_short_by_the_16_kib_limit_is_dropped_too(make_sim: SimFactory) -> None:
    model = healthy_host()
    model.add_task("Half", "powershell.exe", "-File C:\\jobs\\half.ps1")
    model.files["c:\\jobs\\half.ps1"] = "# first lines\r\n-----BEGIN RSA PRIVATE KEY-----\r\nMIIEowIBAAKCAQEA"
    _sim, host = make_sim(model)
    assert "PRIVATE KEY" not in dump_capture(capture(host))


def test_secret_fields_of_a_renewal_file_are_emptied_and_the_rest_kept(make_sim: SimFactory) -> None:
    model = healthy_host()
    model.renewals[0].data["StorePluginOptions"][0]["PfxPassword"] = "pfx-Secret-2024"
    _sim, host = make_sim(model)
    doc = capture(host)
    text = dump_capture(doc)
    assert "pfx-Secret-2024" not in text
    renewal = json.loads(doc["parts"][2]["result"]["renewals"][0]["text"])
    assert renewal["StorePluginOptions"][0]["PfxPassword"] == "[removed by certops]"
    assert renewal["Id"] == "shopRenewal01"
    assert doc["removed"] == ["winacme.renewals[0].text: PfxPassword"]


# -- judging one -----------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", [incident_host, healthy_host, multi_host_site])
def test_diagnose_capture_gives_what_diagnose_host_gives_on_the_same_simulated_host(
    make_sim: SimFactory, tmp_path: Path, scenario: Any
) -> None:
    _sim, host = make_sim(scenario())
    _live_inv, live_findings, live = actions.diagnose_host(host)
    doc = load_capture(_write(tmp_path, capture(host)))
    _inv, findings, result = diagnose_capture(doc)
    assert [f.to_json() for f in findings] == [f.to_json() for f in live_findings]
    assert (result.action, result.ok, result.summary, result.details) == (
        live.action,
        live.ok,
        live.summary,
        live.details,
    )
    assert result.round_trips == 0  # judged offline


def test_the_saved_incident_capture_is_judged_as_the_incident() -> None:
    doc = load_capture(CAPTURES / "incident.json")
    _inv, findings, result = diagnose_capture(doc)
    assert codes(findings) == {"newest_cert_key_unusable", "renewal_lacks_script_step", "legacy_task_missing_target"}
    assert not result.ok
    key = next(f for f in findings if f.code == "newest_cert_key_unusable")
    assert key.proposal is not None
    assert key.proposal.action == "repair-store"


def test_the_saved_localised_capture_has_names_only_in_rawdata_and_still_finds_them() -> None:
    doc = load_capture(CAPTURES / "localised.json")
    printed = doc.document("certs")["certs"]  # type: ignore[index]
    assert [c["sans"] for c in printed] == [["www.example.fr"]]  # what DnsNameList shows on a French server
    inv, findings, _result = diagnose_capture(doc)
    [cert] = inv.certificates
    assert cert.names == ("www.example.fr", "example.fr")  # read from RawData
    assert "no_https_binding" not in codes(findings)
    key = next(f for f in findings if f.code == "newest_cert_key_unusable")
    assert key.evidence["names"] == ["www.example.fr", "example.fr"]


def test_a_capture_is_judged_at_the_time_it_was_taken() -> None:
    doc = load_capture(CAPTURES / "incident.json")
    inv, _findings, _result = diagnose_capture(doc)
    assert inv.taken_at == doc.taken_at


# -- a simulated host rebuilt from one ------------------------------------------------------


def test_a_host_rebuilt_from_a_capture_is_diagnosed_as_the_captured_host(make_sim: SimFactory) -> None:
    _sim, host = make_sim(incident_host())
    doc = parse_capture(capture(host))
    _inv, captured, _result = diagnose_capture(doc)
    _sim2, rebuilt_host = make_sim(model_from_capture(doc))
    _inv2, live, _result2 = actions.diagnose_host(rebuilt_host)
    assert [f.to_json() for f in live] == [f.to_json() for f in captured]


def test_a_host_rebuilt_from_the_localised_capture_keeps_thumbprints_names_and_key_states() -> None:
    doc = load_capture(CAPTURES / "localised.json")
    model = model_from_capture(doc)
    printed = doc.document("certs")["certs"]  # type: ignore[index]
    assert [c.thumbprint for c in model.certs] == [c["thumbprint"] for c in printed]
    assert model.localised
    assert model.certs[0].sans == ["www.example.fr", "example.fr"]
    assert model.certs[0].key_state == "missing_keyset"
    assert [s.name for s in model.sites] == ["Site Web par défaut"]


def _thumbprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - Windows thumbprints are SHA-1


def _served(port: int, name: str) -> x509.Certificate:
    context = ssl.create_default_context(cadata=issuer_pem().decode())
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _real_host() -> HostModel:
    """A host whose certificate the simulator did not mint: its key is not one the simulator has,
    as with every certificate of a real host."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example.net")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Real CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=5))
        .not_valid_after(now + dt.timedelta(days=85))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("shop.example.net"), x509.DNSName("shop.example")]), False
        )
        .sign(key, hashes.SHA256())
    )
    model = HostModel()
    sim = sim_cert(cert, "WebHosting", "ok")
    model.certs.append(sim)
    model.bind_site("Shop", "shop.example.net", sim)
    return model


def test_tls_for_a_captured_host_serves_a_stand_in_with_the_names_and_dates_of_the_captured_certificate(
    make_sim: SimFactory,
) -> None:
    _sim, host = make_sim(_real_host())
    model = model_from_capture(parse_capture(capture(host)))
    [captured] = model.certs
    with StandInTLSServer(model) as server:
        served = _served(server.port, "shop.example.net")
    sans = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == captured.sans
    assert served.not_valid_after_utc == captured.not_after
    assert served.not_valid_before_utc == captured.not_before
    assert served.issuer.rfc4514_string() == "CN=Simulated Issuer R3"
    assert _thumbprint(served) != captured.thumbprint  # not the captured certificate: its key is not here


def test_tls_for_a_captured_host_resets_the_handshake_while_the_key_link_is_broken() -> None:
    model = model_from_capture(load_capture(CAPTURES / "incident.json"))
    with StandInTLSServer(model) as server, pytest.raises((ConnectionError, ssl.SSLError)):
        _served(server.port, "www.example.com")


def test_a_model_of_the_simulators_own_certificates_is_served_as_it_is() -> None:
    model = HostModel()
    cert = model.add_cert(["a.example.net"], days_old=1)
    model.bind_site("A", "a.example.net", cert)
    with StandInTLSServer(model) as server:
        served = _served(server.port, "a.example.net")
    assert _thumbprint(served) == cert.thumbprint


# -- refusing a file ------------------------------------------------------------------------


def _good() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((CAPTURES / "incident.json").read_text(encoding="utf-8"))
    return doc


def test_a_truncated_capture_is_refused_with_a_sentence(tmp_path: Path) -> None:
    text = dump_capture(_good())
    with pytest.raises(CaptureError, match=r"is not complete JSON \(was it cut short\?\); send or copy the whole"):
        load_capture(_write(tmp_path, text[: len(text) // 2]))


def test_an_oversized_capture_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as f:
        f.truncate(MAX_CAPTURE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(CaptureError, match=r"is more than 33,554,432 bytes, more than a certops capture file"):
        load_capture(path)


def test_a_capture_of_another_format_version_is_refused_with_what_to_do(tmp_path: Path) -> None:
    doc = _good() | {"format_version": 2}
    with pytest.raises(CaptureError, match=r"is capture format version 2, and this certops reads version 1; read it"):
        load_capture(_write(tmp_path, doc))


def test_a_file_that_is_not_a_capture_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match=r'is not a certops capture \(its format is "other"'):
        load_capture(_write(tmp_path, json.dumps({"format": "other"})))


def test_a_capture_holding_a_private_key_is_refused(tmp_path: Path) -> None:
    doc = _good()
    doc["parts"][3]["result"]["tasks"][0]["actions"][0]["arguments"] = PEM_KEY
    with pytest.raises(CaptureError, match=r"is refused because it holds what looks like a private key"):
        load_capture(_write(tmp_path, doc))


def test_a_capture_with_an_unknown_part_is_refused(tmp_path: Path) -> None:
    doc = _good()
    doc["parts"][0]["name"] = "rebind"
    with pytest.raises(CaptureError, match=r'has parts\[0\] named "rebind", not one of certs, bindings'):
        load_capture(_write(tmp_path, doc))


def test_a_folder_a_pipe_or_a_missing_file_is_refused_without_hanging(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match=r"is not a regular file; give the path of a certops capture file"):
        load_capture(tmp_path)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(CaptureError, match=r"is not a regular file"):
        load_capture(pipe)
    with pytest.raises(CaptureError, match=r"file not found"):
        load_capture(tmp_path / "missing.json")
