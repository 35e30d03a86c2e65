"""Parsers against the real samples quoted in facts/windows-host.md (verbatim where published)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from host_actions.parsers import (
    certutil_outcome,
    key_status,
    parse_certutil_store,
    parse_netsh_sslcert,
    parse_renewal,
    parse_time,
    task_result,
    thumbprint_of,
)

# Microsoft IIS docs, "Diagnosing failures with remote administration" (flush-left, as published)
NETSH_IIS_DOCS = (
    "c:\\>netsh http show sslcert \n"
    + """SSL Certificate bindings:
-------------------------
IP:port                 : 0.0.0.0:8172
Certificate Hash        : f06ae62a5275a818338f05ecc80707335be1e204
Application ID          : {00000000-0000-0000-0000-000000000000}
Certificate Store Name: MY
Verify Client Certificate Revocation    : Enabled
Verify Revocation Using Cached Client Certificate Only: Disabled
Usage Check    : Enabled
Revocation Freshness Time: 0
URL Retrieval Timeout   : 0
Ctl Identifier          : (null)
Ctl Store Name          : (null)
DS Mapper Usage    : Disabled
Negotiate Client Certificate    : Disabled
"""
)

# A captured SNI binding from a live IIS host (test fixture quoted in the facts file)
NETSH_SNI = """SSL Certificate bindings:
-------------------------

    Hostname:port                : wiis05.tokentimer-verify.local:10443
    Certificate Hash             : daa61c502810ca0952df77a0d4194c32085b5abd
    Application ID               : {65f12961-a6a1-4736-a36e-af476fd0d37a}
    Certificate Store Name       : My
"""

# Constructed from the facts' note on localised labels (pt-BR "Hash do Certificado"): the same
# structure with Portuguese labels, plus an IPv6 and a CCS block and an older spaced hash.
NETSH_PT_BR = """Associações de certificado SSL:
-------------------------

    IP:porta                     : 10.0.0.1:443
    Hash do Certificado          : D4A17E3B57E48C1166F18394A819EDF770459AC8
    ID do Aplicativo             : {4dc3e181-e14b-4a21-b022-59fc669b0914}
    Nome do Repositório de Certificados : WebHosting

    IP:porta                     : [::]:8443
    Hash do Certificado          : d4 a1 7e 3b 57 e4 8c 11 66 f1 83 94 a8 19 ed f7 70 45 9a c8
    ID do Aplicativo             : {4dc3e181-e14b-4a21-b022-59fc669b0914}
    Nome do Repositório de Certificados : (null)

    Repositório Central de Certificados : 443
    Hash do Certificado          : (null)
    ID do Aplicativo             : {4dc3e181-e14b-4a21-b022-59fc669b0914}
    Nome do Repositório de Certificados : (null)
"""

REPAIRSTORE_OK_SHORT = "CertUtil: -repairstore command completed successfully.\n"
REPAIRSTORE_OK_SECUROSYS = """Cert Hash(sha1): 19f647a3f4e60eabc126d73ef1ef6e9f84224997
  Key Container = myDemoCA
  Provider = Securosys Primus HSM Key Storage Provider
Securosys Primus HSM Key Storage Provider: KeySpec=0
AES256+RSAES_OAEP(RSA:CNG) test skipped
Signature test passed
CertUtil: -repairstore command completed successfully.
"""
EXPORTPFX_FAILED = (
    "CertUtil: -exportPFX command FAILED: 0x80090016 (-2146893802 NTE_BAD_KEYSET)\nCertUtil: Keyset does not exist\n"
)
STORE_KEY_PRESENT_SPACED = """Cert Hash(sha1): 90 da 9f 10 2d 09 1d e2 7a fc 09 2b 72 12 e9 41 18 d5 b7 b2
  Key Container = {5F5DD854-CC3B-4F6F-8B99-89FB55FFB67D}
  Unique container name: 89a3fdb59f7870ac900a6c61cfdea3a0_74659c6a-d4ff-4c5d-acde-0ce27b655f0a
  Provider = Microsoft Enhanced Cryptographic Provider v1.0
Encryption test passed
CertUtil: -store command completed successfully.
"""
STORE_MISSING_KEYSET = """Cert Hash(sha1): 779a97b1d8e492b5bafebc02338845ffdff76ad2
  Key Container = 46f11b4056ad38609b08d1dea6880023_7989b711-2e3f-4107-9aae-fb8df2e3b958
  Provider = Microsoft RSA SChannel Cryptographic Provider
Missing stored keyset
"""
STORE_NO_LINK = """Cert Hash(sha1): 779a97b1d8e492b5bafebc02338845ffdff76ad2
No key provider information
Cannot find the certificate and private key for decryption.
"""


def test_it_reads_the_flush_left_ip_binding_from_the_iis_docs() -> None:
    [b] = parse_netsh_sslcert(NETSH_IIS_DOCS)
    assert (b.kind, b.host, b.port) == ("ip", "0.0.0.0", 8172)  # noqa: S104 - text, not a bind
    assert b.thumbprint == "F06AE62A5275A818338F05ECC80707335BE1E204"
    assert b.store == "MY"
    assert b.app_id == "{00000000-0000-0000-0000-000000000000}"


def test_it_reads_a_captured_sni_binding_with_a_lower_case_hash() -> None:
    [b] = parse_netsh_sslcert(NETSH_SNI)
    assert (b.kind, b.host, b.port, b.store) == ("hostname", "wiis05.tokentimer-verify.local", 10443, "My")
    assert b.thumbprint == "DAA61C502810CA0952DF77A0D4194C32085B5ABD"


def test_it_reads_localised_labels_by_position_and_shape() -> None:
    ip4, ip6, ccs = parse_netsh_sslcert(NETSH_PT_BR)
    assert (ip4.kind, ip4.host, ip4.port, ip4.store) == ("ip", "10.0.0.1", 443, "WebHosting")
    assert ip4.thumbprint == ip6.thumbprint == "D4A17E3B57E48C1166F18394A819EDF770459AC8"
    assert (ip6.host, ip6.port, ip6.store) == ("::", 8443, None)
    assert (ccs.kind, ccs.port, ccs.thumbprint) == ("ccs", 443, None)


def test_an_empty_binding_list_gives_no_bindings() -> None:
    assert parse_netsh_sslcert("\r\nSSL Certificate bindings:\r\n-------------------------\r\n\r\n") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("f06ae62a5275a818338f05ecc80707335be1e204", "F06AE62A5275A818338F05ECC80707335BE1E204"),
        ("90 da 9f 10 2d 09 1d e2 7a fc 09 2b 72 12 e9 41 18 d5 b7 b2", "90DA9F102D091DE27AFC092B7212E94118D5B7B2"),
        ("(null)", None),
        ("f06ae62a5275a818338f05ecc80707335be1e20", None),
        (None, None),
    ],
)
def test_thumbprints_are_normalised_to_the_windows_form(text: str | None, expected: str | None) -> None:
    assert thumbprint_of(text) == expected


def test_it_recognises_certutil_success_in_both_published_forms() -> None:
    assert certutil_outcome(REPAIRSTORE_OK_SHORT, 0) == (True, None)
    assert certutil_outcome(REPAIRSTORE_OK_SECUROSYS, 0) == (True, None)


def test_it_reads_the_hresult_of_a_failed_certutil_command() -> None:
    assert certutil_outcome(EXPORTPFX_FAILED, -2146893802) == (False, "0x80090016")


def test_a_non_zero_exit_without_text_is_a_failure_with_that_code() -> None:
    assert certutil_outcome("", -2146893802) == (False, "0x80090016")


def test_it_reads_key_status_from_certutil_store_output() -> None:
    assert parse_certutil_store(STORE_KEY_PRESENT_SPACED) == {"90DA9F102D091DE27AFC092B7212E94118D5B7B2": "ok"}
    assert parse_certutil_store(STORE_MISSING_KEYSET) == {"779A97B1D8E492B5BAFEBC02338845FFDFF76AD2": "missing_keyset"}
    assert parse_certutil_store(STORE_NO_LINK) == {"779A97B1D8E492B5BAFEBC02338845FFDFF76AD2": "no_key_provider_info"}
    assert parse_certutil_store(REPAIRSTORE_OK_SECUROSYS) == {"19F647A3F4E60EABC126D73EF1EF6E9F84224997": "ok"}


@pytest.mark.parametrize("code", [0, 0x41300, 0x41301, 0x41302, 0x41303])  # 0x41301 = 267009
def test_task_scheduler_status_codes_are_not_failures(code: int) -> None:
    failed, _, _ = task_result(code)
    assert not failed


@pytest.mark.parametrize(
    ("code", "hex_code", "meaning"),
    [
        (1, "0x1", "the program exited with code 1"),
        (2147942402, "0x80070002", "the program or a file it needs was not found"),
        (-2147024894, "0x80070002", "the program or a file it needs was not found"),  # schtasks prints it signed
        (4294967295, "0xFFFFFFFF", "the program exited with code -1 (win-acme's failure code)"),
        (0x8004131F, "0x8004131F", "an instance was already running"),
        (0x41306, "0x41306", "terminated by a user"),
    ],
)
def test_failing_task_results_are_named(code: int, hex_code: str, meaning: str) -> None:
    assert task_result(code) == (True, hex_code, meaning)


def test_times_are_read_from_iso_and_from_powershell_5_dates() -> None:
    assert parse_time("2026-11-28T08:32:00.1234567Z") == dt.datetime(2026, 11, 28, 8, 32, 0, 123456, dt.UTC)
    assert parse_time("\\/Date(1720919582928)\\/") == dt.datetime(2024, 7, 14, 1, 13, 2, 928000, dt.UTC)
    assert parse_time("not a date") is None


@pytest.mark.parametrize(
    ("has_key", "key", "status"),
    [
        (True, {"signed": True}, "ok"),
        (True, {"hresult": "0x80090016"}, "missing_keyset"),
        (False, {}, "no_key_provider_info"),
        (True, {"hresult": "0x80070005"}, "access_denied"),
        (True, {"hresult": "0x80090010"}, "access_denied"),
        (True, {"hresult": "0x80004005"}, "error"),
        (True, {}, "error"),
    ],
)
def test_key_test_facts_become_a_key_status(has_key: bool, key: dict[str, object], status: str) -> None:
    assert key_status(has_key, key) == status


def _renewal_text(installation: list[dict[str, object]], history: list[dict[str, object]]) -> str:
    return json.dumps(
        {
            "Id": "r1",
            "FriendlyName": "[IIS] www.dummy.nl",
            "TargetPluginOptions": {"IncludeHosts": ["www.dummy.nl"], "Plugin": "54deb3ee-b5df-4381-8485-fe386054055b"},
            "StorePluginOptions": [{"StoreName": "WebHosting", "Plugin": "e30adc8e-d756-4e16-a6f2-450f784b1a97"}],
            "InstallationPluginOptions": installation,
            "History": history,
        }
    )


def test_it_names_installation_steps_from_their_plugin_guids() -> None:
    # win-acme/win-acme#1165: the IIS step as users posted it
    text = _renewal_text([{"SiteId": 2, "Plugin": "ea6a5be3-f8de-4d27-a6bd-750b619b2ee2"}], [])
    r = parse_renewal("C:\\ProgramData\\win-acme\\x\\r1.renewal.json", text, [])
    assert [s.name for s in r.steps] == ["IIS"]
    assert (r.store_name, r.store_plugins, r.hosts) == ("WebHosting", ("CertificateStore",), ("www.dummy.nl",))
    assert r.problem is None


def test_script_fields_under_the_iis_guid_are_not_a_script_step() -> None:
    # win-acme/win-acme#852: a hand-edited file puts Script fields under the IIS plugin GUID
    step = {
        "Script": "C:\\Open\\win-acme.v2.1.5.742.x64.pluggable\\Scripts\\ImportSSTP.ps1",
        "ScriptParameters": '"{CertThumbprint}"',
        "Plugin": "ea6a5be3-f8de-4d27-a6bd-750b619b2ee2",
    }
    r = parse_renewal("C:\\x\\r1.renewal.json", _renewal_text([step], []), [])
    assert [s.name for s in r.steps] == ["IIS"]
    assert r.steps[0].script is not None


def test_it_reads_legacy_history_entries_and_order_results() -> None:
    history = [
        {
            "Date": "2024-01-01T09:00:00+00:00",
            "Success": True,
            "Thumbprint": "f06ae62a5275a818338f05ecc80707335be1e204",
            "ExpireDate": "2024-03-31T09:00:00+00:00",
        },
        {
            "Date": "2024-03-01T09:00:00+00:00",
            "Success": False,
            "ErrorMessages": ["Authorization failed"],
            "OrderResults": [{"Name": "main", "Success": False, "ErrorMessages": ["Authorization failed"]}],
        },
    ]
    r = parse_renewal("C:\\x\\r1.renewal.json", _renewal_text([], history), [])
    first, last = r.history
    assert first.thumbprint == "F06AE62A5275A818338F05ECC80707335BE1E204"
    assert first.expires == dt.datetime(2024, 3, 31, 9, tzinfo=dt.UTC)
    assert (last.success, last.errors) == (False, ("Authorization failed",))


def test_a_renewal_whose_id_differs_from_its_file_name_is_flagged() -> None:
    r = parse_renewal("C:\\x\\other.renewal.json", _renewal_text([], []), [])
    assert r.problem == "its Id differs from its file name, so win-acme ignores it"


def test_a_renewal_file_that_is_not_json_is_flagged_not_fatal() -> None:
    assert parse_renewal("C:\\x\\r1.renewal.json", "{", []).problem == "not valid JSON"
