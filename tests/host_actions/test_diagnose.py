"""The judgement rules, on inventories built from host models without any network."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from host_actions.diagnose import FINDING_CODES, Finding, diagnose
from host_actions.inventory import build_inventory, inventory_parts
from host_actions.model import Inventory
from host_actions.simulator import HostModel
from host_actions.simulator.model import Renewal
from host_actions.simulator.scenarios import healthy_host, incident_host, large_host
from tests.host_actions.conftest import offline_results

WACS = "C:\\Program Files\\win-acme\\wacs.exe"


def inventory_of(model: HostModel) -> Inventory:
    from bot.config import Host

    host = Host("h", "http://127.0.0.1:1/wsman", wacs_path=WACS)
    return build_inventory("h", offline_results(model, inventory_parts(host)), now=model.now)


def codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}


def test_a_healthy_host_has_no_findings() -> None:
    assert diagnose(inventory_of(healthy_host())) == []


def test_a_large_healthy_host_has_no_findings() -> None:
    assert diagnose(inventory_of(large_host(certs=20, bindings=5, tasks=6))) == []


def test_the_incident_host_has_the_three_findings_of_the_story() -> None:
    findings = diagnose(inventory_of(incident_host()))
    assert codes(findings) == {"newest_cert_key_unusable", "renewal_lacks_script_step", "legacy_task_missing_target"}
    key = next(f for f in findings if f.code == "newest_cert_key_unusable")
    assert key.severity == "critical"
    assert key.evidence["key_status"] == "missing_keyset"


def test_a_certificate_with_no_key_link_proposes_repair_store() -> None:
    model = healthy_host()
    model.certs[0].key_state = "no_key_provider_info"
    [finding] = diagnose(inventory_of(model))
    assert finding.code == "newest_cert_key_unusable"
    assert finding.proposal is not None
    assert finding.proposal.action == "repair-store"
    assert "no link to a private key" in finding.message


def test_an_access_denied_key_is_reported_without_proposing_repair_store() -> None:
    model = healthy_host()
    model.certs[0].key_state = "access_denied"
    [finding] = diagnose(inventory_of(model))
    assert finding.proposal is None


def test_a_binding_to_an_older_certificate_proposes_rebind_to_the_newest() -> None:
    model = healthy_host()
    newer = model.add_cert(["shop.example.net"], days_old=1)
    # the renewal installed it (its last success names it), but the binding was not moved
    model.renewals[0].data["History"].append(model.history_entry(True, newer.thumbprint, days_ago=1))
    [finding] = diagnose(inventory_of(model))
    assert finding.code == "binding_not_newest"
    assert finding.proposal is not None
    assert finding.proposal.args == ("Shop", newer.thumbprint)
    assert finding.proposal.command("iis01") == f"certops host rebind iis01 Shop {newer.thumbprint}"


def test_a_binding_to_a_deleted_certificate_proposes_rebind() -> None:
    model = healthy_host()
    bound = model.certs[0]
    replacement = model.add_cert(["shop.example.net"], days_old=1)
    model.certs.remove(bound)
    found = {f.code: f for f in diagnose(inventory_of(model))}
    assert found["binding_cert_missing"].proposal is not None
    assert found["binding_cert_missing"].proposal.args == ("Shop", replacement.thumbprint)


def test_a_renewal_name_without_an_https_binding_is_reported() -> None:
    model = healthy_host()
    model.renewals[0].data["TargetPluginOptions"]["IncludeHosts"].append("admin.example.net")
    assert "no_https_binding" in codes(diagnose(inventory_of(model)))


@dataclass
class _Cert:
    sha1: str


@dataclass
class _Target:
    hostname: str


@dataclass
class _Probe:
    target: _Target
    certificate: _Cert | None


def test_the_wire_serving_an_older_certificate_is_served_not_newest() -> None:
    model = healthy_host()
    probe = _Probe(_Target("shop.example.net"), _Cert("ab" * 20))
    [finding] = diagnose(inventory_of(model), probe)
    assert finding.code == "served_not_newest"
    assert finding.evidence["served"] == "AB" * 20


def test_the_wire_serving_the_newest_certificate_is_fine() -> None:
    model = healthy_host()
    probe = _Probe(_Target("shop.example.net"), _Cert(model.certs[0].thumbprint.lower()))
    assert diagnose(inventory_of(model), probe) == []


def _renewal(model: HostModel) -> Renewal:
    return model.renewals[0]


def test_a_failed_last_renewal_is_renewal_failing_with_its_error() -> None:
    model = healthy_host()
    _renewal(model).data["History"].append(model.history_entry(False, "", days_ago=1, error="Authorization failed"))
    [finding] = diagnose(inventory_of(model))
    assert finding.code == "renewal_failing"
    assert finding.message.endswith(": Authorization failed")
    assert finding.proposal is not None
    assert finding.proposal.args == ("shopRenewal01",)


def test_a_renewal_past_its_due_date_is_overdue() -> None:
    model = healthy_host()
    _renewal(model).data["History"] = [model.history_entry(True, model.certs[0].thumbprint, days_ago=60)]
    assert "renewal_overdue" in codes(diagnose(inventory_of(model)))


def test_a_script_step_whose_file_is_missing_counts_as_lacking() -> None:
    model = healthy_host()
    model.files.clear()
    model.files[model.wacs_path.lower()] = ""
    [finding] = diagnose(inventory_of(model))
    assert finding.code == "renewal_lacks_script_step"
    assert "which does not exist" in finding.message


def test_script_fields_hand_written_under_the_iis_plugin_count_as_lacking() -> None:
    model = incident_host()
    _renewal(model).data["InstallationPluginOptions"][0]["Script"] = "C:\\x.ps1"
    finding = next(f for f in diagnose(inventory_of(model)) if f.code == "renewal_lacks_script_step")
    assert "sit under the IIS plugin" in finding.message


def test_a_missing_or_disabled_wacs_task_is_reported() -> None:
    model = healthy_host()
    model.tasks[0].state = "Disabled"
    assert codes(diagnose(inventory_of(model))) == {"wacs_task_missing_or_disabled"}
    model.tasks.clear()
    assert codes(diagnose(inventory_of(model))) == {"wacs_task_missing_or_disabled"}


def test_a_legacy_task_that_only_fails_is_legacy_task_failing() -> None:
    model = healthy_host()
    model.add_task("Nightly", "powershell.exe", "-Command Get-Date", last_result=1)
    [finding] = diagnose(inventory_of(model))
    assert finding.code == "legacy_task_failing"
    assert finding.proposal is not None
    assert finding.proposal.args == ("\\Nightly",)


def test_tasks_that_are_ready_running_disabled_or_never_run_are_not_failing() -> None:
    model = healthy_host()
    for code in (0x41300, 0x41301, 0x41302, 0x41303):
        model.add_task(f"T{code:x}", "powershell.exe", "-Command Get-Date", last_result=code)
    assert diagnose(inventory_of(model)) == []


def test_a_disabled_legacy_task_is_left_alone() -> None:
    model = incident_host()
    model.task("\\SSL-PostRenew").state = "Disabled"  # type: ignore[union-attr]
    assert "legacy_task_missing_target" not in codes(diagnose(inventory_of(model)))


def test_the_finding_codes_are_the_ones_the_issue_lists() -> None:
    assert set(FINDING_CODES) == {
        "newest_cert_key_unusable",
        "binding_not_newest",
        "binding_cert_missing",
        "no_https_binding",
        "served_not_newest",
        "renewal_failing",
        "renewal_overdue",
        "renewal_lacks_script_step",
        "post_renew_step_failed",
        "wacs_task_missing_or_disabled",
        "legacy_task_failing",
        "legacy_task_missing_target",
        "iis_unreadable",
        "tasks_unreadable",
        "renewals_unreadable",
        "certops_check_failing",
    }


def test_a_host_whose_iis_cannot_be_read_says_so_instead_of_flagging_bindings() -> None:
    model = healthy_host()
    model.iis_available = False
    [finding] = diagnose(inventory_of(model))
    assert finding.code == "iis_unreadable"
    assert finding.message.endswith("Could not load file or assembly 'Microsoft.Web.Administration'")


def test_findings_serialise_to_json_with_their_proposal() -> None:
    finding = diagnose(inventory_of(incident_host()), now=dt.datetime.now(dt.UTC))[0]
    doc = finding.to_json()
    assert doc["proposal"]["action"] == "repair-store"
    assert isinstance(doc["evidence"]["names"], list)
