"""What a real Windows host tells certops, read right: the key test (RSA and ECDSA, CAPI and CNG,
a key that is someone else's, a key in a user store, which account tested it), names from
RawData on non-English Windows, one unreadable object not blinding the diagnosis, and certops's
own hourly task. Host-side cases go through pywinrm against the simulator."""

from __future__ import annotations

import base64
import datetime as dt
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from host_actions import actions
from host_actions.diagnose import Finding, diagnose
from host_actions.inventory import build_inventory, inventory, inventory_parts
from host_actions.layers import layer_script
from host_actions.model import Inventory
from host_actions.parsers import key_status, parse_certificate
from host_actions.scripts import script_text
from host_actions.simulator import HostModel
from host_actions.simulator.model import SYSTEM_IDENTITY, WINRM_IDENTITY, mint_certificate
from host_actions.simulator.scenarios import POST_RENEW, healthy_host, incident_host
from host_actions.simulator.scripts import TASK_XML_ERROR, hourly_check
from host_actions.winrm_client import PartResult
from tests.host_actions.conftest import SimFactory, offline_results

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "windows"
KEY_TEST = re.compile(r"# >>> certops key test.*?# <<< certops key test\n", re.S)


def codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}


def key_finding(findings: list[Finding]) -> Finding:
    return next(f for f in findings if f.code == "newest_cert_key_unusable")


def shop(model: HostModel) -> Inventory:
    return build_inventory("h", offline_results(model, inventory_parts(_host())), now=model.now)


def _host():  # type: ignore[no-untyped-def]
    from bot.config import Host

    return Host("h", "http://127.0.0.1:1/wsman", wacs_path="C:\\Program Files\\win-acme\\wacs.exe")


# -- point 1: the key test -------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["rsa", "ecdsa"])
def test_a_key_link_to_another_existing_key_is_a_key_mismatch_not_healthy(make_sim: SimFactory, alg: str) -> None:
    model = HostModel()
    cert = model.add_cert(["shop.example.net"], days_old=5, key_alg=alg, key_state="wrong_key")  # type: ignore[arg-type]
    model.bind_site("Shop", "shop.example.net", cert)
    _sim, host = make_sim(model)
    inv = inventory(host)
    assert inv.certificates[0].key_status == "key_mismatch"
    finding = key_finding(diagnose(inv))
    assert "not this certificate's key" in finding.message
    assert finding.proposal is not None
    assert finding.proposal.action == "repair-store"


def test_a_signature_the_public_key_does_not_verify_is_a_mismatch() -> None:
    facts = {"opened": True, "signed": True, "verified": False, "is_machine_key": True}
    assert key_status(True, facts) == "key_mismatch"
    assert key_status(True, {**facts, "verified": True}) == "ok"


def test_every_script_that_tests_a_key_uses_the_one_shared_key_test() -> None:
    blocks = {
        "certs.ps1": KEY_TEST.findall(script_text("certs")),
        "layer post-renew": KEY_TEST.findall(layer_script("post-renew")),
        "self-heal.ps1": KEY_TEST.findall((DEPLOY / "self-heal.ps1").read_text(encoding="utf-8")),
        "post-renew.ps1": KEY_TEST.findall((DEPLOY / "post-renew.ps1").read_text(encoding="utf-8")),
    }
    assert all(len(found) == 1 for found in blocks.values()), blocks.keys()
    assert len({found[0] for found in blocks.values()}) == 1
    block = blocks["certs.ps1"][0]
    for needed in ("GetECDsaPrivateKey", "GetECDsaPublicKey", "GetRSAPublicKey", "VerifyData", "IsMachineKey"):
        assert needed in block
    # the RSA-only test that "repaired" every healthy ECDSA key is gone
    assert "GetRSAPrivateKey($c)" not in layer_script("post-renew")


def test_an_ecdsa_renewal_with_a_healthy_key_is_not_repaired_by_the_post_renew_step(make_sim: SimFactory) -> None:
    model = healthy_host()
    model.files[POST_RENEW.lower()] = layer_script("post-renew")
    model.next_renewal_key_alg = "ecdsa"
    sim, host = make_sim(model)
    result = actions.renew(host, "shopRenewal01", force=True)
    assert set(result.details["new_key_status"].values()) == {"ok"}
    assert not any(line.startswith("certutil") for line in sim.model.log)


def test_a_healthy_capi_rsa_key_opened_through_cng_is_found_in_rsa_machinekeys(make_sim: SimFactory) -> None:
    _sim, host = make_sim(healthy_host())
    [cert] = inventory(host).certificates
    assert (cert.key_status, cert.key_algorithm, cert.key_file_exists, cert.is_machine_key) == ("ok", "RSA", True, True)
    facts = {
        "signed": True,
        "verified": True,
        "is_machine_key": True,
        "files": [{"folder": "RSA\\MachineKeys", "exists": True}, {"folder": "Keys", "exists": False}],
    }
    assert key_status(True, facts) == "ok"


def test_a_key_in_a_user_store_is_useless_to_iis(make_sim: SimFactory) -> None:
    model = healthy_host()
    model.certs[0].key_state = "user_store"
    _sim, host = make_sim(model)
    finding = key_finding(diagnose(inventory(host)))
    assert finding.evidence["key_status"] == "user_key"
    assert "user's key store" in finding.message
    assert finding.proposal is None  # certutil -repairstore cannot move a key into the machine store


@pytest.mark.parametrize(
    ("alg", "provider", "hresult"),
    [("rsa", "cng", "0x80090014"), ("ecdsa", "cng", "0x80004003"), ("rsa", "capi", "0x80090016")],
)
def test_a_missing_key_of_any_type_is_missing_keyset_not_a_generic_error(
    make_sim: SimFactory, alg: str, provider: str, hresult: str
) -> None:
    model = HostModel()
    cert = model.add_cert(
        ["shop.example.net"],
        days_old=5,
        key_alg=alg,  # type: ignore[arg-type]
        provider_kind=provider,  # type: ignore[arg-type]
        key_state="missing_keyset",
    )
    model.bind_site("Shop", "shop.example.net", cert)
    _sim, host = make_sim(model)
    [seen] = inventory(host).certificates
    assert (seen.key_status, seen.key_hresult) == ("missing_keyset", hresult)


def test_a_key_whose_container_exists_but_does_not_open_is_not_called_missing() -> None:
    facts = {"signed": False, "hresult": "0x80090014", "container_exists": True, "link": {"machine_keyset": True}}
    assert key_status(True, facts) == "key_unopenable"
    assert key_status(True, {**facts, "container_exists": False}) == "missing_keyset"


def test_each_key_verdict_says_which_account_it_holds_for(make_sim: SimFactory) -> None:
    model = healthy_host()
    model.certs[0].key_state = "access_denied"
    _sim, host = make_sim(model)
    finding = key_finding(diagnose(inventory(host)))
    assert finding.evidence["as_identity"] == WINRM_IDENTITY
    assert finding.evidence["key_source"] == "winrm"
    assert f"tested as {WINRM_IDENTITY}" in finding.message


def test_the_hourly_tasks_verdict_as_system_wins_over_the_winrm_accounts(make_sim: SimFactory) -> None:
    model = healthy_host()
    model.add_certops_task()
    model.certs[0].key_state = "access_denied"  # the WinRM account may not read the key file
    model.certs[0].system_key_state = "ok"  # schannel (SYSTEM) can
    assert hourly_check(model) == 0
    _sim, host = make_sim(model)
    inv = inventory(host)
    [cert] = inv.certificates
    assert (cert.key_status, cert.key_source, cert.as_identity) == ("ok", "layer2", SYSTEM_IDENTITY)
    assert cert.winrm_key_status == "access_denied"
    assert "newest_cert_key_unusable" not in codes(diagnose(inv))


def test_a_key_that_works_for_the_admin_but_not_for_system_is_flagged_as_system(make_sim: SimFactory) -> None:
    model = healthy_host()
    model.add_certops_task()
    model.certs[0].system_key_state = "access_denied"
    assert hourly_check(model) == 1
    _sim, host = make_sim(model)
    finding = key_finding(diagnose(inventory(host)))
    assert (finding.evidence["key_status"], finding.evidence["as_identity"]) == ("access_denied", SYSTEM_IDENTITY)


def test_a_stale_hourly_verdict_does_not_win() -> None:
    model = healthy_host()
    model.certs[0].system_key_state = "access_denied"
    real_now = model.now
    model.now = real_now - dt.timedelta(hours=3)
    hourly_check(model)
    model.now = real_now
    [cert] = shop(model).certificates
    assert (cert.key_status, cert.key_source) == ("ok", "winrm")


def test_an_hourly_verdict_about_another_key_link_does_not_win() -> None:
    model = healthy_host()
    model.certs[0].system_key_state = "access_denied"
    hourly_check(model)
    results = offline_results(model, inventory_parts(_host()))
    certs = results[0].result["certs"]
    certs[0]["key"]["link"]["container"] = "relinked-since"  # e.g. certutil -repairstore ran after it
    [cert] = build_inventory("h", results, now=model.now).certificates
    assert cert.key_source == "winrm"


# -- point 2: names from RawData ---------------------------------------------------------------


def test_on_a_localised_host_a_san_only_name_is_still_found(make_sim: SimFactory) -> None:
    model = HostModel(localised=True)
    cert = model.add_cert(["www.example.com", "example.com"], days_old=1, key_state="missing_keyset")
    model.bind_site("Default Web Site", "example.com", cert)  # a name only the SAN carries
    _sim, host = make_sim(model)
    inv = inventory(host)
    assert inv.newest_for("example.com") is not None
    assert key_finding(diagnose(inv)).evidence["names"] == ["www.example.com", "example.com"]


def test_names_eku_issuer_and_dates_are_read_from_rawdata_not_from_powershell() -> None:
    cert = mint_certificate(["a.example", "b.example"], dt.datetime(2026, 1, 1, tzinfo=dt.UTC), 90)
    der = cert.public_bytes(serialization.Encoding.DER)
    import hashlib

    doc = {
        "store": "My",
        "thumbprint": hashlib.sha1(der).hexdigest().upper(),  # noqa: S324
        "raw": base64.b64encode(der).decode(),
        "subject": "CN=a.example",
        "sans": ["a.example"],  # what DnsNameList gives on a French server
        "not_before": None,
        "not_after": "garbled",
        "issuer": "",
        "has_private_key": False,
    }
    parsed = parse_certificate(doc)
    assert parsed.names == ("a.example", "b.example")
    assert parsed.eku == ("1.3.6.1.5.5.7.3.1",)
    assert parsed.issuer == "CN=Simulated Issuer R3"
    assert parsed.not_after == dt.datetime(2026, 4, 1, tzinfo=dt.UTC)


def test_rawdata_of_another_certificate_is_not_trusted() -> None:
    cert = mint_certificate(["a.example", "b.example"], dt.datetime(2026, 1, 1, tzinfo=dt.UTC), 90)
    raw = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    doc = {"thumbprint": "AB" * 20, "raw": raw, "sans": ["c.example"], "has_private_key": False}
    assert parse_certificate(doc).names == ("c.example",)


def test_names_are_compared_as_a_labels(make_sim: SimFactory) -> None:
    model = HostModel()
    cert = model.add_cert(["xn--bcher-kva.example"], days_old=1, key_state="missing_keyset")
    model.bind_site("Books", "bücher.example", cert)  # IIS and DnsNameList may hold the U-label
    _sim, host = make_sim(model)
    inv = inventory(host)
    assert inv.certificates[0].covers("BÜCHER.example.")
    assert key_finding(diagnose(inv)).evidence["names"] == ["xn--bcher-kva.example"]


# -- point 5: one bad object does not blind the diagnosis -------------------------------------


def test_a_task_with_malformed_xml_leaves_the_other_tasks_audited(make_sim: SimFactory) -> None:
    model = incident_host()
    model.add_task("Broken", "cmd.exe").xml_malformed = True
    _sim, host = make_sim(model)
    findings = diagnose(inventory(host))
    assert {"tasks_unreadable", "legacy_task_missing_target", "newest_cert_key_unusable"} <= codes(findings)
    unread = next(f for f in findings if f.code == "tasks_unreadable")
    assert TASK_XML_ERROR in unread.message


def test_a_tasks_script_that_fails_outright_is_tasks_unreadable_and_no_wacs_task_is_called_missing() -> None:
    model = healthy_host()
    results = offline_results(model, inventory_parts(_host()))
    results[3] = PartResult("tasks", False, None, error="Access is denied.", hresult="0x80070005")
    inv = build_inventory("h", results, now=model.now)
    assert codes(diagnose(inv)) == {"tasks_unreadable"}


def test_a_binding_whose_hash_getter_throws_is_reported_and_the_others_are_checked(make_sim: SimFactory) -> None:
    model = healthy_host()
    newer = model.add_cert(["shop.example.net"], days_old=1)
    # the renewal installed it (its last success names it), but the binding was not moved
    model.renewals[0].data["History"].append(model.history_entry(True, newer.thumbprint, days_ago=1))
    other = model.add_cert(["blog.example.net"], days_old=1)
    model.bind_site("Blog", "blog.example.net", other)
    model.sites[1].bindings[-1].hash_getter_throws = True
    _sim, host = make_sim(model)
    findings = diagnose(inventory(host))
    assert codes(findings) == {"iis_unreadable", "binding_not_newest"}
    unread = next(f for f in findings if f.code == "iis_unreadable")
    assert unread.evidence["partial"] is True
    assert next(f for f in findings if f.code == "binding_not_newest").evidence["newest"] == newer.thumbprint


def test_iis_is_read_when_microsoft_web_administration_loads_only_by_full_name(make_sim: SimFactory) -> None:
    model = healthy_host()
    model.mwa_loads_by = "full_name"
    _sim, host = make_sim(model)
    inv = inventory(host)
    assert inv.iis_available
    assert diagnose(inv) == []


def test_when_microsoft_web_administration_does_not_load_keys_and_renewals_are_still_judged(
    make_sim: SimFactory,
) -> None:
    model = incident_host()
    model.mwa_loads_by = "none"
    _sim, host = make_sim(model)
    findings = diagnose(inventory(host))
    assert {"iis_unreadable", "newest_cert_key_unusable", "renewal_lacks_script_step"} <= codes(findings)


def test_an_access_denied_folder_under_the_win_acme_root_is_a_finding_not_a_failure(make_sim: SimFactory) -> None:
    model = healthy_host()
    model.add_renewal("hidden01", ["shop.example.net"], 1, thumbprint=model.certs[0].thumbprint)
    model.renewals[-1].path = "C:\\ProgramData\\win-acme\\locked\\hidden01.renewal.json"
    model.access_denied_folders.append("C:\\ProgramData\\win-acme\\locked")
    _sim, host = make_sim(model)
    inv = inventory(host)
    assert [r.id for r in inv.renewals] == ["shopRenewal01"]
    [finding] = diagnose(inv)
    assert finding.code == "renewals_unreadable"
    assert "locked" in finding.message


# -- point 6: certops's own hourly task --------------------------------------------------------


def test_certops_own_hourly_task_is_not_a_legacy_task_and_its_result_is_reported(make_sim: SimFactory) -> None:
    model = healthy_host()
    model.add_certops_task()
    model.certs[0].system_key_state = "access_denied"
    assert hourly_check(model) == 1  # it exits 1 while a problem remains
    _sim, host = make_sim(model)
    findings = diagnose(inventory(host))
    assert "legacy_task_failing" not in codes(findings)
    [check] = [f for f in findings if f.code == "certops_check_failing"]
    assert check.evidence["last_result"] == "0x1"
    assert "still unusable" in check.message
    audited = {t["path"]: t for t in actions.audit_tasks(host).details["tasks"]}
    assert audited["\\certops\\certops hourly check"]["last_result"] == "0x1"
    assert audited["\\certops\\certops hourly check"]["flags"] == []
