"""The details a real host gets right or wrong: certutil without UI, IPv6 bindings, %VAR% paths,
one thumbprint in two stores, staging and non-serverAuth certificates, wildcard names in the
hourly check, what retire-task may rename, native stderr, Constrained Language Mode, and a Send
the host answers with an OperationTimeout. Host-side cases go through pywinrm against the
simulator; parsers are fed real sample outputs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import pytest

from bot.config import Host
from host_actions import actions
from host_actions.diagnose import Finding, diagnose, http_sys_binding
from host_actions.errors import HostActionError
from host_actions.inventory import build_inventory, inventory, inventory_parts
from host_actions.model import Inventory
from host_actions.parsers import chain_trusted, parse_netsh_sslcert, parse_site_bindings
from host_actions.scripts import script_text
from host_actions.simulator import Faults, HostModel
from host_actions.simulator.model import SimCert
from host_actions.simulator.scenarios import LEGACY_SCRIPT, POST_RENEW, healthy_host
from host_actions.simulator.scripts import hourly_check
from tests.host_actions.conftest import SimFactory, offline_results

REPO = Path(__file__).resolve().parents[2]
PS_DIR = REPO / "host_actions" / "ps"
SELF_HEAL = REPO / "deploy" / "windows" / "self-heal.ps1"
ALL_PS = sorted([*PS_DIR.glob("*.ps1"), *(REPO / "deploy" / "windows").glob("*.ps1")])
DAY = dt.date(2026, 11, 28)


def codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}


def offline(model: HostModel) -> Inventory:
    host = Host("h", "http://127.0.0.1:1/wsman", wacs_path=model.wacs_path)
    return build_inventory("h", offline_results(model, inventory_parts(host)), now=model.now)


# -- 1. certutil -silent ---------------------------------------------------------------------------


def test_every_certutil_repairstore_call_is_silent_so_no_prompt_can_block_the_session() -> None:
    calls = [
        (p.name, line.strip())
        for p in ALL_PS
        for line in p.read_text(encoding="utf-8").splitlines()
        if re.search(r"&\s*certutil(\.exe)?\s", line)
    ]
    assert any("-repairstore" in line for _, line in calls)
    assert [(name, line) for name, line in calls if "-silent" not in line] == []


# -- 2. IPv6 bindings ------------------------------------------------------------------------------

NETSH_IPV6 = (
    "\r\nSSL Certificate bindings:\r\n-------------------------\r\n\r\n"
    "    IP:port                      : [2001:db8::1]:443\r\n"
    "    Certificate Hash             : 0a1b2c3d4e5f60718293a4b5c6d7e8f901234567\r\n"
    "    Application ID               : {4dc3e181-e14b-4a21-b022-59fc669b0914}\r\n"
    "    Certificate Store Name       : WebHosting\r\n"
    "    Verify Client Certificate Revocation : Enabled\r\n\r\n"
    "    IP:port                      : [::]:443\r\n"
    "    Certificate Hash             : 1a1b2c3d4e5f60718293a4b5c6d7e8f901234567\r\n"
    "    Application ID               : {4dc3e181-e14b-4a21-b022-59fc669b0914}\r\n"
    "    Certificate Store Name       : MY\r\n\r\n"
)


def test_ipv6_binding_information_is_read_as_address_port_and_host() -> None:
    sites = [
        {
            "name": "Shop",
            "id": 1,
            "bindings": [
                {"protocol": "https", "binding_information": "[2001:db8::1]:443:www.example.com", "ssl_flags": 1},
                {"protocol": "https", "binding_information": "[::]:8443:", "ssl_flags": 0},
                {"protocol": "https", "binding_information": "*:443:shop.example.com", "ssl_flags": 1},
            ],
        }
    ]
    got = [(b.ip, b.port, b.host) for b in parse_site_bindings(sites)]
    assert got == [("[2001:db8::1]", 443, "www.example.com"), ("[::]", 8443, ""), ("*", 443, "shop.example.com")]


def test_netsh_ipv6_entries_are_ip_endpoints_with_their_port() -> None:
    got = [(b.kind, b.host, b.port, b.store) for b in parse_netsh_sslcert(NETSH_IPV6)]
    assert got == [("ip", "2001:db8::1", 443, "WebHosting"), ("ip", "::", 443, "MY")]


def test_an_ipv6_iis_binding_is_matched_to_its_http_sys_entry(make_sim: SimFactory) -> None:
    model = HostModel()
    cert = model.add_cert(["v6.example.com"], days_old=5)
    model.bind_site("V6", "v6.example.com", cert, sni=False, ip="[2001:DB8:0::1]")
    _, host = make_sim(model)
    inv = inventory(host)
    binding = next(b for b in inv.site_bindings if b.protocol == "https")
    entry = http_sys_binding(inv, binding)
    assert (binding.port, binding.host) == (443, "v6.example.com")
    assert entry is not None
    assert entry.thumbprint == cert.thumbprint
    assert codes(diagnose(inv)) & {"binding_cert_missing", "binding_not_newest", "no_https_binding"} == set()


def test_an_all_unassigned_binding_is_served_by_the_ipv6_wildcard_when_there_is_no_ipv4_one() -> None:
    model = HostModel()
    cert = model.add_cert(["shop.example.com"], days_old=5)
    model.bind_site("Shop", "shop.example.com", cert, sni=False)
    model.http_bindings[0].endpoint = "[::]:443"  # only an IPv6 wildcard entry
    inv = offline(model)
    binding = next(b for b in inv.site_bindings if b.protocol == "https")
    entry = http_sys_binding(inv, binding)
    assert entry is not None
    assert entry.host == "::"


# -- 3. %VAR% in paths -----------------------------------------------------------------------------


def test_a_task_program_and_script_under_percent_variables_are_found_once_expanded(make_sim: SimFactory) -> None:
    model = HostModel()
    model.files["c:\\program files\\tool\\tool.exe"] = ""
    model.add_task(
        "Tool",
        "%ProgramFiles%\\Tool\\tool.exe",
        "-File %ProgramData%\\jobs\\nightly.ps1",
        path="\\Ops\\",
        last_result=1,
        script=("C:\\ProgramData\\jobs\\nightly.ps1", "Write-Output 'nightly'\r\n"),
    )
    _, host = make_sim(model)
    tasks = {t["path"]: t for t in actions.audit_tasks(host).details["tasks"]}
    assert [f["code"] for f in tasks["\\Ops\\Tool"]["flags"]] == ["failing"]


def test_a_variable_the_host_cannot_expand_is_not_reported_as_a_missing_file(make_sim: SimFactory) -> None:
    model = HostModel()
    model.add_task("Odd", "powershell.exe", "-File %CERTOPS_NOT_SET%\\x.ps1", path="\\Ops\\")
    _, host = make_sim(model)
    tasks = {t["path"]: t for t in actions.audit_tasks(host).details["tasks"]}
    assert tasks["\\Ops\\Odd"]["flags"] == []


def test_a_renewal_script_named_with_programfiles_is_not_reported_missing(make_sim: SimFactory) -> None:
    model = healthy_host()
    step = model.renewals[0].data["InstallationPluginOptions"][1]
    step["Script"] = "%ProgramFiles%\\win-acme\\Scripts\\certops_post_renew.ps1"
    assert model.file_exists(POST_RENEW)
    _, host = make_sim(model)
    assert "renewal_lacks_script_step" not in codes(diagnose(inventory(host)))


# -- 4. one thumbprint in My and WebHosting --------------------------------------------------------


def _in_both_stores(model: HostModel, *, broken: str) -> SimCert:
    """The certificate in WebHosting, bound from there, and a copy in My listed first (as
    certs.ps1 lists My first); the copy in `broken` has lost its key."""
    web = model.add_cert(["www.example.com"], days_old=3, store="WebHosting")
    model.bind_site("Shop", "www.example.com", web)
    my = dataclasses.replace(web, store="My")
    model.certs.insert(0, my)
    (web if broken == "WebHosting" else my).key_state = "missing_keyset"
    return web


def test_a_binding_is_judged_by_the_key_of_the_copy_in_the_store_it_names(make_sim: SimFactory) -> None:
    model = HostModel()
    web = _in_both_stores(model, broken="WebHosting")
    _, host = make_sim(model)
    finding = next(f for f in diagnose(inventory(host)) if f.code == "newest_cert_key_unusable")
    assert finding.evidence["thumbprint"] == web.thumbprint
    assert finding.evidence["store"] == "WebHosting"


def test_a_broken_copy_in_the_store_no_binding_names_raises_no_alarm(make_sim: SimFactory) -> None:
    model = HostModel()
    _in_both_stores(model, broken="My")
    _, host = make_sim(model)
    assert "newest_cert_key_unusable" not in codes(diagnose(inventory(host)))


def test_repair_store_repairs_the_copy_whose_key_is_broken(make_sim: SimFactory) -> None:
    model = HostModel()
    web = _in_both_stores(model, broken="WebHosting")
    sim, host = make_sim(model)
    result = actions.repair_store(host, web.thumbprint)
    assert result.ok
    assert result.details["store"] == "WebHosting"
    assert sim.model.log == [f"certutil -repairstore WebHosting {web.thumbprint}"]


def test_verify_binding_judges_the_copy_in_the_store_the_binding_names(make_sim: SimFactory) -> None:
    model = HostModel()
    _in_both_stores(model, broken="WebHosting")
    _, host = make_sim(model)
    [row] = actions.verify_binding(host, "Shop").details["bindings"]
    assert row["status"] == "key_unusable"  # the copy in My is healthy, but the binding serves WebHosting's
    model_ok = HostModel()
    _in_both_stores(model_ok, broken="My")
    _, host_ok = make_sim(model_ok)
    [row_ok] = actions.verify_binding(host_ok, "Shop").details["bindings"]
    assert row_ok["status"] == "ok"


def test_rebind_binds_the_copy_whose_key_works(make_sim: SimFactory) -> None:
    model = HostModel()
    web = _in_both_stores(model, broken="My")  # My is listed first, and its key is gone
    sim, host = make_sim(model)
    result = actions.rebind(host, "Shop", web.thumbprint)
    assert result.ok, result.summary
    assert [(h.thumbprint, h.store) for h in sim.model.http_bindings] == [(web.thumbprint, "WebHosting")]


# -- 5. staging and non-serverAuth certificates are never "newest" --------------------------------


def test_a_staging_certificate_is_never_the_newest_nor_proposed_for_a_rebind(make_sim: SimFactory) -> None:
    model = HostModel()
    prod = model.add_cert(["www.example.com"], days_old=20)
    model.add_cert(["www.example.com"], days_old=1, staging=True)
    model.bind_site("Shop", "www.example.com", prod)
    _, host = make_sim(model)
    inv = inventory(host)
    assert inv.newest_for("www.example.com") == inv.certificate(prod.thumbprint)
    assert codes(diagnose(inv)) & {"binding_not_newest", "newest_cert_key_unusable"} == set()


def test_a_certificate_without_server_auth_is_never_the_newest(make_sim: SimFactory) -> None:
    model = HostModel()
    prod = model.add_cert(["www.example.com"], days_old=20)
    model.add_cert(["www.example.com"], days_old=1, server_auth=False)
    model.bind_site("Shop", "www.example.com", prod)
    _, host = make_sim(model)
    inv = inventory(host)
    assert inv.newest_for("www.example.com") == inv.certificate(prod.thumbprint)
    assert "binding_not_newest" not in codes(diagnose(inv))


def test_the_renewals_last_successful_thumbprint_wins_over_a_later_certificate(make_sim: SimFactory) -> None:
    model = HostModel()
    renewed = model.add_cert(["www.example.com"], days_old=10)
    model.add_cert(["www.example.com"], days_old=1, friendly_name="imported by hand")
    model.bind_site("Shop", "www.example.com", renewed)
    model.add_renewal("r1", ["www.example.com"], 1, thumbprint=renewed.thumbprint, script=POST_RENEW)
    model.files[POST_RENEW.lower()] = ""
    _, host = make_sim(model)
    inv = inventory(host)
    assert inv.newest_for("www.example.com") == inv.certificate(renewed.thumbprint)
    assert "binding_not_newest" not in codes(diagnose(inv))


@pytest.mark.parametrize(
    ("issuer", "status", "staging"),
    [
        ("CN=(STAGING) Artificial Apricot R3,O=(STAGING) Let's Encrypt,C=US", [], True),
        ("CN=Fake LE Intermediate X1", [], True),
        ("CN=Private CA", ["UntrustedRoot"], True),
        ("CN=Private CA", ["PartialChain", "RevocationStatusUnknown"], True),
        ("CN=R11,O=Let's Encrypt,C=US", ["NotTimeValid"], False),
        ("CN=R11,O=Let's Encrypt,C=US", [], False),
    ],
)
def test_staging_is_told_by_issuer_name_or_by_a_chain_to_no_trusted_root(
    issuer: str, status: list[str], staging: bool
) -> None:
    cert = offline(healthy_host()).certificates[0]
    judged = dataclasses.replace(
        cert, issuer=issuer, chain_trusted=chain_trusted({"built": not status, "status": status})
    )
    assert judged.is_staging is staging
    assert chain_trusted(None) is None
    assert chain_trusted({"built": False, "error": "x"}) is None


# -- 6. wildcard names in the hourly check ---------------------------------------------------------


def test_the_hourly_check_takes_a_wildcard_certificate_for_one_label() -> None:
    model = HostModel()
    wildcard = model.add_cert(["*.example.com"], days_old=5)
    model.bind_site("Shop", "www.example.com", wildcard)
    assert hourly_check(model) == 0
    deeper = HostModel()
    deeper.bind_site("Deep", "a.b.example.com", deeper.add_cert(["*.example.com"], days_old=5))
    assert hourly_check(deeper) == 1  # a wildcard covers one label only


def test_the_self_heal_script_matches_wildcards_skips_staging_and_reads_ipv6_bindings() -> None:
    text = SELF_HEAL.read_text(encoding="utf-8")  # Layer 2, which replaced certops-hourly-check.ps1
    assert "-contains $name" not in text  # exact-only matching missed every wildcard certificate
    assert "Test-CertopsCoversAll $_.Names $names" in text
    assert r"'^(\[[^\]]*\]|[^:]*):([0-9]+):(.*)$'" in text  # IPv6 binding information
    assert "Test-CertopsServerCert $_.Cert" in text
    assert "-split ':'" not in text


def test_the_hourly_check_never_picks_a_staging_certificate() -> None:
    model = HostModel()
    prod = model.add_cert(["www.example.com"], days_old=20)
    model.add_cert(["www.example.com"], days_old=1, staging=True, key_state="missing_keyset")
    model.bind_site("Shop", "www.example.com", prod)
    assert hourly_check(model) == 0
    assert model.log == []  # nothing "repaired"


# -- 7. retire-task ------------------------------------------------------------------------------


def _with_neighbours(model: HostModel) -> None:
    """Next to \\SSL-PostRenew (flagged): another task running the same script, a renewal whose
    Script step is a second script of the legacy task, and a third script under Program Files."""
    shared = "C:\\scripts\\shared.ps1"
    hook = "C:\\scripts\\hook.ps1"
    tool = "C:\\Program Files\\Tool\\cleanup.ps1"
    for path in (shared, hook, tool):
        model.files[path.lower()] = "Write-Output 'x'\r\n"
    task = model.task("\\SSL-PostRenew")
    assert task is not None
    task.actions[0].arguments += f' {shared} {hook} "{tool}"'
    model.add_task("Other", "powershell.exe", f"-File {shared}", path="\\Ops\\")
    model.renewals[0].data["InstallationPluginOptions"].append(
        {"Script": hook, "ScriptParameters": "{CertThumbprint}", "Plugin": "3bb22c70-358d-4251-86bd-11858363d913"}
    )


def test_retire_task_leaves_alone_what_another_task_a_renewal_or_program_files_uses(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    _with_neighbours(sim.model)
    result = actions.retire_task(host, "\\SSL-PostRenew", today=DAY)
    assert result.ok
    assert [r["from"] for r in result.details["renamed"]] == [LEGACY_SCRIPT]
    reasons = {x["path"]: x["reason"] for x in result.details["left_alone"]}
    assert reasons["C:\\scripts\\shared.ps1"] == "task \\Ops\\Other runs it too"
    assert "win-acme renewal" in reasons["C:\\scripts\\hook.ps1"]
    assert "Program Files" in reasons["C:\\Program Files\\Tool\\cleanup.ps1"]
    for path in reasons:
        assert sim.model.file_exists(path)
    assert "Left alone: C:\\scripts\\shared.ps1 (task \\Ops\\Other runs it too)" in result.summary


def test_retire_task_never_renames_under_the_windows_folder_whatever_the_path_spells(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    sneaky = "C:\\scripts\\..\\Windows\\System32\\logon.ps1"
    sim.model.files[sneaky.lower()] = "x"
    task = sim.model.task("\\SSL-PostRenew")
    assert task is not None
    task.actions[0].arguments += f" {sneaky}"
    result = actions.retire_task(host, "\\SSL-PostRenew", today=DAY)
    assert [x["path"] for x in result.details["left_alone"]] == [sneaky]
    assert "%windir%" in result.details["left_alone"][0]["reason"]


def test_the_retire_script_itself_refuses_a_path_under_program_files(make_sim: SimFactory) -> None:
    from host_actions.scripts import Part
    from host_actions.winrm_client import HostSession

    sim, host = make_sim()
    tool = "C:\\Program Files\\Tool\\x.ps1"
    sim.model.files[tool.lower()] = "x"
    params = {"TaskFolder": "\\", "TaskName": "SSL-PostRenew", "Scripts": [tool], "Date": "20261128"}
    with HostSession(host, "test") as session:
        [done] = session.run([Part("retire_task", params)])
    assert done.result["renamed"] == []
    assert done.result["skipped"][0]["path"] == tool
    assert sim.model.file_exists(tool)


def test_retire_task_what_if_says_exactly_what_it_would_do_and_changes_nothing(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    _with_neighbours(sim.model)
    files, tasks = dict(sim.model.files), [dataclasses.asdict(t) for t in sim.model.tasks]
    result = actions.retire_task(host, "\\SSL-PostRenew", today=DAY, what_if=True)
    assert result.ok
    assert result.details["what_if"] is True
    assert result.summary.startswith(
        "Would disable \\SSL-PostRenew on iis-sim and rename C:\\scripts\\ssl-post-renew.ps1 to "
        "ssl-post-renew.ps1.deprecated.20261128. Left alone: C:\\scripts\\shared.ps1"
    )
    assert result.details["would_rename"] == [{"from": LEGACY_SCRIPT, "to": LEGACY_SCRIPT + ".deprecated.20261128"}]
    assert (sim.model.files, [dataclasses.asdict(t) for t in sim.model.tasks]) == (files, tasks)
    assert "retire_task" not in sim.scripts_run
    assert sim.model.log == []


def test_retire_task_keeps_its_old_call_and_renames_when_nothing_else_uses_the_script(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    result = actions.retire_task(host, "\\SSL-PostRenew")
    assert result.ok
    assert result.details["what_if"] is False
    assert result.details["left_alone"] == []
    assert sim.model.task("\\SSL-PostRenew").state == "Disabled"  # type: ignore[union-attr]


def test_retire_task_renames_nothing_when_some_tasks_could_not_be_read(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    sim.model.add_task("Broken", "cmd.exe", path="\\Ops\\").xml_malformed = True
    result = actions.retire_task(host, "\\SSL-PostRenew", today=DAY)
    assert result.ok
    assert result.details["renamed"] == []
    assert "could not be read" in result.details["left_alone"][0]["reason"]
    assert sim.model.file_exists(LEGACY_SCRIPT)


# -- 8. native stderr ------------------------------------------------------------------------------


def test_every_netsh_and_certutil_call_merges_stderr_under_continue() -> None:
    wrong = []
    for path in ALL_PS:
        preference = None
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            set_to = re.match(r"\s*\$ErrorActionPreference\s*=\s*'(\w+)'", line)
            if set_to:
                preference = set_to.group(1)
            if re.search(r"&\s*(netsh|certutil)(\.exe)?\s", line) and ("2>&1" not in line or preference != "Continue"):
                wrong.append(f"{path.name}:{number}")
    assert wrong == []


# -- 9. Constrained Language Mode ------------------------------------------------------------------


def test_a_constrained_language_host_is_a_clear_error_saying_what_to_do(make_sim: SimFactory) -> None:
    model = healthy_host()
    model.language_mode = "ConstrainedLanguage"
    _, host = make_sim(model)
    with pytest.raises(HostActionError) as caught:
        inventory(host)
    assert caught.value.kind == "constrained_language"
    assert "ConstrainedLanguage mode" in caught.value.message
    assert "FullLanguage" in caught.value.message


def test_the_bootstrap_checks_the_language_mode_before_it_reads_the_job() -> None:
    text = script_text("bootstrap")
    check = text.index("$ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage'")
    assert check < text.index("$input")
    assert "CERTOPS-LANGUAGE-MODE " in text
    assert "exit 3" in text


# -- 10. Send answered with OperationTimeout -------------------------------------------------------


def test_a_send_the_host_answers_with_operation_timeout_is_sent_again(make_sim: SimFactory) -> None:
    sim, host = make_sim(healthy_host(), faults=Faults(send_timeouts=2))
    inv = inventory(host)
    assert inv.certificates
    assert sim.requests.count("Send") == 3


def test_sends_that_keep_timing_out_end_as_a_timeout_after_three_attempts(make_sim: SimFactory) -> None:
    sim, host = make_sim(healthy_host(), faults=Faults(send_timeouts=99))
    with pytest.raises(HostActionError) as caught:
        inventory(host)
    assert caught.value.kind == "timeout"
    assert "did not take the job on stdin" in caught.value.message
    assert sim.requests.count("Send") == 3
    assert sim.requests[-1] == "Delete"  # the shell is still cleaned up
