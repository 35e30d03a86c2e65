"""Scenario files: each condition a host can be in is written in TOML, served by a simulator built
from it, and seen by the live diagnosis through pywinrm; a file that cannot be one is refused
with a sentence naming the key path. The complete example in docs/simulator.md is read from the
doc, so the doc cannot rot."""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import re
from pathlib import Path

import pytest

from host_actions import actions
from host_actions.diagnose import Finding, diagnose
from host_actions.inventory import build_inventory, inventory_parts
from host_actions.model import Certificate, Inventory
from host_actions.simulator import HostModel
from host_actions.simulator.model import SCHANNEL_CSP, SOFTWARE_KSP, SYSTEM_IDENTITY, SimCert, Task
from host_actions.simulator.scenario_file import ScenarioError, load_scenario, parse_scenario
from host_actions.target import Host
from tests.host_actions.conftest import SimFactory, offline_results

DOC = Path(__file__).resolve().parents[2] / "docs" / "simulator.md"
WACS = "C:\\Program Files\\win-acme\\wacs.exe"
WACS_TASK = f"""
[[tasks]]
path = '\\'
name = "win-acme renew (acme-v02.api.letsencrypt.org)"
actions = [{{ execute = '{WACS}', arguments = '--renew' }}]
"""
SHOP = """
[[certs]]
id = "shop"
names = ["shop.example.net"]
days_old = 5

[[sites]]
name = "Shop"
bindings = [{ information = "*:443:shop.example.net", ssl_flags = 1, cert = "shop" }]
"""


def codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}


def live(make_sim: SimFactory, text: str) -> tuple[HostModel, Inventory, list[Finding]]:
    """The scenario served by a simulator and diagnosed through pywinrm, as `certops host diagnose` does."""
    model = parse_scenario(text)
    sim, host = make_sim(model)
    inv, findings, _result = actions.diagnose_host(host)
    return sim.model, inv, findings


def cert(inv: Inventory, name: str) -> Certificate:
    found = inv.newest_for(name)
    assert found is not None, name
    return found


def refused(text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, source="s.toml")
    return str(caught.value)


# -- certificates ----------------------------------------------------------------------------


def test_each_key_state_is_seen_by_the_live_key_test(make_sim: SimFactory) -> None:
    states = {
        "ok": "ok",
        "missing_keyset": "missing_keyset",
        "no_key_provider_info": "no_key_provider_info",
        "access_denied": "access_denied",
        "wrong_key": "key_mismatch",
        "user_store": "user_key",
    }
    text = "".join(
        f'[[certs]]\nnames = ["{state.replace("_", "-")}.example.net"]\nkey_state = "{state}"\n' for state in states
    )
    _model, inv, _findings = live(make_sim, text)
    seen = {c.names[0].split(".")[0].replace("-", "_"): c.key_status for c in inv.certificates}
    assert seen == states


@pytest.mark.parametrize(
    ("alg", "provider", "hresult", "link_provider"),
    [
        ("rsa", "capi", "0x80090016", SCHANNEL_CSP),
        ("rsa", "cng", "0x80090014", SOFTWARE_KSP),
        ("ecdsa", None, "0x80004003", SOFTWARE_KSP),
    ],
)
def test_key_algorithm_and_provider_shape_what_a_missing_key_looks_like(
    make_sim: SimFactory, alg: str, provider: str | None, hresult: str, link_provider: str
) -> None:
    kind = f'provider_kind = "{provider}"\n' if provider else ""
    text = f'[[certs]]\nnames = ["k.example.net"]\nkey_alg = "{alg}"\n{kind}key_state = "missing_keyset"\n'
    _model, inv, _findings = live(make_sim, text)
    [c] = inv.certificates
    assert (c.key_algorithm, c.key_status, c.key_hresult, c.provider) == (
        alg.upper(),
        "missing_keyset",
        hresult,
        link_provider,
    )


def test_names_days_left_store_and_friendly_name_are_the_certificates(make_sim: SimFactory) -> None:
    text = '[[certs]]\nnames = ["a.example.net", "b.example.net"]\ndays_left = 3\nstore = "My"\nfriendly_name = "x"\n'
    model, inv, _findings = live(make_sim, text)
    [c] = inv.certificates
    assert c.names == ("a.example.net", "b.example.net")
    assert (c.store, c.friendly_name) == ("My", "x")
    assert c.not_after is not None
    assert abs(c.not_after - (model.now + dt.timedelta(days=3))) < dt.timedelta(seconds=2)


def test_a_key_state_as_system_shows_through_the_hourly_check(make_sim: SimFactory) -> None:
    text = "hourly_check = true\n" + SHOP.replace("days_old = 5", 'days_old = 5\nsystem_key_state = "access_denied"')
    _model, _inv, findings = live(make_sim, text)
    key = next(f for f in findings if f.code == "newest_cert_key_unusable")
    assert (key.evidence["key_status"], key.evidence["as_identity"]) == ("access_denied", SYSTEM_IDENTITY)
    assert "certops_check_failing" in codes(findings)


def test_a_lost_key_stays_broken_after_repair_store(make_sim: SimFactory) -> None:
    model = parse_scenario(SHOP.replace("days_old = 5", 'days_old = 5\nkey_state = "missing_keyset"\nkey_lost = true'))
    _sim, host = make_sim(model)
    result = actions.repair_store(host, model.certs[0].thumbprint)
    assert not result.ok
    assert result.details["after"] == "missing_keyset"


# -- http.sys and IIS bindings ---------------------------------------------------------------


def test_http_sys_entries_of_each_kind_including_an_ipv6_endpoint_are_read(make_sim: SimFactory) -> None:
    text = (
        SHOP
        + """
[[http_bindings]]
kind = "ip"
endpoint = "[2001:db8::1]:443"
cert = "shop"

[[http_bindings]]
kind = "ip"
endpoint = "0.0.0.0:8443"
cert = "shop"
store = "WebHosting"

[[http_bindings]]
kind = "ccs"
endpoint = "443"
"""
    )
    model, inv, _findings = live(make_sim, text)
    tp = model.certs[0].thumbprint
    assert [(b.kind, b.host, b.port, b.thumbprint) for b in inv.ssl_bindings] == [
        ("ip", "2001:db8::1", 443, tp),
        ("ip", "0.0.0.0", 8443, tp),  # noqa: S104 - netsh's wildcard
        ("ccs", None, 443, None),
        ("hostname", "shop.example.net", 443, tp),  # written by the site binding
    ]


def test_site_bindings_with_sni_ccs_and_a_certificate_by_reference_are_read(make_sim: SimFactory) -> None:
    text = SHOP.replace(
        'bindings = [{ information = "*:443:shop.example.net", ssl_flags = 1, cert = "shop" }]',
        """bindings = [
  { protocol = "http", information = "*:80:shop.example.net" },
  { information = "*:443:shop.example.net", ssl_flags = 1, cert = "shop" },
  { information = "*:443:static.example.net", ssl_flags = 3 },
  { information = "10.0.0.5:443:", cert = "shop" },
]""",
    )
    model, inv, findings = live(make_sim, text)
    rows = [(b.protocol, b.ip, b.port, b.host, b.sni, b.ccs, b.thumbprint) for b in inv.site_bindings]
    tp = model.certs[0].thumbprint
    assert rows == [
        ("http", "*", 80, "shop.example.net", False, False, None),
        ("https", "*", 443, "shop.example.net", True, False, tp),
        ("https", "*", 443, "static.example.net", True, True, None),
        ("https", "10.0.0.5", 443, "", False, False, tp),
    ]
    assert ("ip", "10.0.0.5", 443) in [(b.kind, b.host, b.port) for b in inv.ssl_bindings]
    assert codes(findings) == set()


def test_a_binding_whose_hash_getter_throws_is_partly_unreadable_iis(make_sim: SimFactory) -> None:
    text = SHOP.replace('cert = "shop" }', 'cert = "shop", hash_getter_throws = true }')
    _model, _inv, findings = live(make_sim, text)
    [unread] = [f for f in findings if f.code == "iis_unreadable"]
    assert unread.evidence["partial"] is True


def test_an_http_sys_entry_that_differs_from_iis_is_kept_and_judged(make_sim: SimFactory) -> None:
    text = (
        SHOP.replace('id = "shop"', 'id = "old"\ndays_old = 80', 1).replace("days_old = 5\n", "", 1)
        + '\n[[certs]]\nid = "new"\nnames = ["shop.example.net"]\ndays_old = 1\n'
        + '\n[[http_bindings]]\nkind = "hostname"\nendpoint = "shop.example.net:443"\ncert = "old"\n'
    ).replace('cert = "shop"', 'cert = "new"')
    model, _inv, findings = live(make_sim, text)
    [stale] = [f for f in findings if f.code == "binding_not_newest"]
    assert stale.evidence["bound"] == model.certs[0].thumbprint  # http.sys wins, as it serves


def test_an_iis_binding_on_an_ipv6_address_gets_its_http_sys_entry_and_is_judged(make_sim: SimFactory) -> None:
    text = SHOP.replace('"*:443:shop.example.net", ssl_flags = 1', '"[2001:db8::1]:443:"')
    model, inv, findings = live(make_sim, text)
    [b] = inv.site_bindings
    assert (b.ip, b.port, b.host) == ("[2001:db8::1]", 443, "")
    assert [(h.kind, h.host, h.port) for h in inv.ssl_bindings] == [("ip", "2001:db8::1", 443)]
    assert model.http_bindings[0].endpoint == "[2001:db8::1]:443"
    assert findings == []


# -- win-acme --------------------------------------------------------------------------------


RENEWAL = """
[[renewals]]
id = "shopRenewal01"
hosts = ["shop.example.net"]
site = "Shop"
cert = "shop"
"""


def test_a_script_step_whose_file_exists_satisfies_the_post_renew_rule(make_sim: SimFactory) -> None:
    script = "C:\\Program Files\\win-acme\\Scripts\\certops_post_renew.ps1"
    text = f"[files]\n'{script}' = \"# certops-script: certops_post_renew\"\n" + SHOP + RENEWAL
    _m, _i, without = live(make_sim, text)
    _m, _i, present = live(make_sim, text + f"script = '{script}'\n")
    _m, _i, missing = live(make_sim, SHOP + RENEWAL + f"script = '{script}'\n")  # no such file on the host
    assert "renewal_lacks_script_step" in codes(without)
    assert "renewal_lacks_script_step" not in codes(present)
    assert "does not exist" in next(f for f in missing if f.code == "renewal_lacks_script_step").message


def test_a_history_with_a_due_date_string_in_the_past_is_overdue(make_sim: SimFactory) -> None:
    text = SHOP + RENEWAL + "history = [{ success = true, days_ago = 60 }]\n" + WACS_TASK
    _model, _inv, findings = live(make_sim, text)
    assert codes(findings) == {"renewal_overdue", "renewal_lacks_script_step"}


def test_a_due_date_object_from_acme_renewal_info_is_written_and_judged(make_sim: SimFactory) -> None:
    text = (
        'due_date_style = "2.2.3"\n' + SHOP + RENEWAL + "history = [{ success = true, days_ago = 20, ari_due = -10 }]\n"
    )
    model, _inv, findings = live(make_sim, text)
    due = model.renewals[0].data["History"][0]["OrderResults"][0]["DueDate"]
    assert set(due) == {"Start", "End", "Source"}
    assert "renewal_overdue" in codes(findings)


def test_renewal_days_from_settings_json_decide_when_a_renewal_without_a_due_date_is_due(make_sim: SimFactory) -> None:
    history = "history = [{ success = true, days_ago = 40 }]\n"
    text = 'due_date_style = "2.2.3"\n' + SHOP + RENEWAL + history
    _m, _i, default_days = live(make_sim, text)
    _m, _i, thirty_days = live(make_sim, "renewal_days = 30\n" + text)
    assert "renewal_overdue" not in codes(default_days)
    assert "renewal_overdue" in codes(thirty_days)


def test_a_script_step_error_recorded_as_a_success_is_post_renew_step_failed(make_sim: SimFactory) -> None:
    error = "Installation plugin Script encountered an error"
    text = SHOP + RENEWAL + f'history = [{{ success = true, days_ago = 1, error = "{error}" }}]\n'
    _model, _inv, findings = live(make_sim, text)
    assert "renewal_failing" not in codes(findings)
    assert error in next(f for f in findings if f.code == "post_renew_step_failed").message


def test_a_failed_run_is_renewal_failing(make_sim: SimFactory) -> None:
    text = SHOP + RENEWAL + 'history = [{ success = false, days_ago = 1, error = "Authorization failed" }]\n'
    _model, _inv, findings = live(make_sim, text)
    assert "Authorization failed" in next(f for f in findings if f.code == "renewal_failing").message


def test_a_renewal_of_another_acme_server_is_read_from_its_base_uri_folder(make_sim: SimFactory) -> None:
    text = SHOP + RENEWAL + 'base_uri = "https://acme-staging-v02.api.letsencrypt.org/"\n'
    _model, inv, _findings = live(make_sim, text)
    folder = "C:\\ProgramData\\win-acme\\acme-staging-v02.api.letsencrypt.org"
    assert [r.path for r in inv.renewals] == [f"{folder}\\shopRenewal01.renewal.json"]


def test_a_configuration_path_moves_the_renewals_and_is_written_to_settings_json(make_sim: SimFactory) -> None:
    text = "configuration_path = 'D:\\acme'\n" + SHOP + RENEWAL
    _model, inv, _findings = live(make_sim, text)
    assert [r.path for r in inv.renewals] == ["D:\\acme\\acme-v02.api.letsencrypt.org\\shopRenewal01.renewal.json"]


def test_a_running_wacs_shows_in_what_the_winacme_script_prints(make_sim: SimFactory) -> None:
    from host_actions.capture import capture

    _sim, host = make_sim(parse_scenario("wacs_running = true\n" + SHOP + RENEWAL))
    winacme = next(p for p in capture(host)["parts"] if p["name"] == "winacme")["result"]
    assert [p["path"] for p in winacme["wacs_processes"]] == [host.wacs_path]


def test_an_access_denied_folder_under_the_win_acme_root_is_renewals_unreadable(make_sim: SimFactory) -> None:
    locked = "C:\\ProgramData\\win-acme\\locked"
    text = f"access_denied_folders = ['{locked}']\n" + SHOP + RENEWAL + f"path = '{locked}\\shop.renewal.json'\n"
    _model, inv, findings = live(make_sim, text)
    assert inv.renewals == ()
    assert locked in next(f for f in findings if f.code == "renewals_unreadable").message


# -- tasks -----------------------------------------------------------------------------------


def test_a_failing_task_and_one_whose_script_is_gone_are_flagged(make_sim: SimFactory) -> None:
    text = """
[files]
'C:\\jobs\\present.cmd' = "@echo off\\r\\nexit /b 1\\r\\n"

[[tasks]]
path = '\\Ops\\'
name = "Failing"
last_result = 1
last_run = -0.5
actions = [{ execute = 'C:\\jobs\\present.cmd' }]

[[tasks]]
path = '\\Ops\\'
name = "Orphan"
last_result = 0x80070002
actions = [{ execute = "powershell.exe", arguments = '-File C:\\jobs\\gone.ps1', working_directory = 'C:\\jobs' }]
"""
    _model, inv, findings = live(make_sim, text)
    flagged = {f.evidence["task"]: f.code for f in findings}
    assert flagged == {"\\Ops\\Failing": "legacy_task_failing", "\\Ops\\Orphan": "legacy_task_missing_target"}
    failing = next(t for t in inv.tasks if t.name == "Failing")
    assert failing.last_run is not None
    assert abs(failing.last_run - (inv.taken_at - dt.timedelta(days=0.5))) < dt.timedelta(minutes=1)


def test_a_task_with_malformed_xml_is_tasks_unreadable(make_sim: SimFactory) -> None:
    text = "[[tasks]]\npath = '\\'\nname = \"Broken\"\nxml_malformed = true\n"
    _model, inv, findings = live(make_sim, text)
    assert inv.tasks == ()
    assert "tasks_unreadable" in codes(findings)


def test_a_disabled_win_acme_task_is_wacs_task_missing_or_disabled(make_sim: SimFactory) -> None:
    text = SHOP + RENEWAL + WACS_TASK.replace("[[tasks]]", '[[tasks]]\nstate = "Disabled"')
    _model, _inv, findings = live(make_sim, text)
    assert "wacs_task_missing_or_disabled" in codes(findings)


# -- the host --------------------------------------------------------------------------------


def test_on_a_localised_host_a_san_only_name_is_found(make_sim: SimFactory) -> None:
    text = """
localised = true

[[certs]]
id = "fr"
names = ["www.example.fr", "example.fr"]
days_old = 1
key_state = "missing_keyset"

[[sites]]
name = "Site Web par défaut"
bindings = [{ information = "*:443:example.fr", ssl_flags = 1, cert = "fr" }]
"""
    _model, inv, findings = live(make_sim, text)
    assert cert(inv, "example.fr").names == ("www.example.fr", "example.fr")
    assert next(f for f in findings if f.code == "newest_cert_key_unusable").evidence["names"] == [
        "www.example.fr",
        "example.fr",
    ]


@pytest.mark.parametrize(
    ("setting", "iis_error"),
    [('mwa_loads_by = "none"', "could not be loaded"), ("iis_available = false", "Could not load")],
)
def test_iis_that_cannot_be_read_is_iis_unreadable_and_keys_are_still_judged(
    make_sim: SimFactory, setting: str, iis_error: str
) -> None:
    text = setting + "\n" + SHOP.replace("days_old = 5", 'days_old = 5\nkey_state = "missing_keyset"') + RENEWAL
    _model, inv, findings = live(make_sim, text)
    assert not inv.iis_available
    assert iis_error in next(f for f in findings if f.code == "iis_unreadable").message
    assert "newest_cert_key_unusable" in codes(findings)


def test_mwa_loading_by_full_name_still_reads_iis(make_sim: SimFactory) -> None:
    _model, inv, findings = live(make_sim, 'mwa_loads_by = "full_name"\n' + SHOP)
    assert inv.iis_available
    assert findings == []


def test_what_the_next_renewal_does_can_be_stated(make_sim: SimFactory) -> None:
    text = 'next_renewal_key_state = "missing_keyset"\nnext_renewal_key_alg = "ecdsa"\n' + SHOP + RENEWAL + WACS_TASK
    model = parse_scenario(text)
    _sim, host = make_sim(model)
    result = actions.renew(host, "shopRenewal01", force=True)
    assert result.details["new_key_status"] == {result.details["new_certificates"][0]: "missing_keyset"}
    assert model.certs[-1].key_alg == "ecdsa"


def test_the_complete_example_in_the_docs_parses_and_shows_what_the_doc_says(make_sim: SimFactory) -> None:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"### A complete example\n.*?```toml\n(.*?)```", text, re.S)
    assert match, "docs/simulator.md has no complete example"
    _model, inv, findings = live(make_sim, match.group(1))
    assert codes(findings) == {
        "newest_cert_key_unusable",
        "renewal_lacks_script_step",
        "post_renew_step_failed",
        "legacy_task_missing_target",
        "renewals_unreadable",
    }
    assert ("ip", "2001:db8::1", 443) in [(b.kind, b.host, b.port) for b in inv.ssl_bindings]


def _allowed(text: str) -> set[str]:
    """The keys a refusal of an unknown key says are allowed there."""
    return set(refused(text).split("use one of: ", 1)[1].rstrip(".").split(", "))


@pytest.mark.parametrize(
    ("heading", "probes"),
    [
        ("### Top level (the host)", ["nonsense = 1\n"]),
        ("### `[[certs]]`", ["[[certs]]\nnonsense = 1\n"]),
        ("### `[[http_bindings]]`", ["[[http_bindings]]\nnonsense = 1\n"]),
        ("### `[[sites]]`", ["[[sites]]\nnonsense = 1\n", '[[sites]]\nname = "s"\nbindings = [{ nonsense = 1 }]\n']),
        (
            "### `[[renewals]]`",
            ["[[renewals]]\nnonsense = 1\n", '[[renewals]]\nid = "r"\nhosts = ["a"]\nhistory = [{ nonsense = 1 }]\n'],
        ),
        (
            "### `[[tasks]]`",
            ["[[tasks]]\nnonsense = 1\n", "[[tasks]]\npath = '\\'\nname = \"t\"\nactions = [{ nonsense = 1 }]\n"],
        ),
    ],
)
def test_the_doc_lists_every_key_each_table_of_a_scenario_takes(heading: str, probes: list[str]) -> None:
    section = DOC.read_text(encoding="utf-8").split(heading, 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| (`[^|]+`) \|", section, re.M)
    documented = {key for row in rows for key in re.findall(r"`(\w+)`", row)} - {"execute", "arguments"}
    allowed = set().union(*(_allowed(probe) for probe in probes)) - {"execute", "arguments", "working_directory"}
    assert documented == allowed, (
        f"docs/simulator.md, {heading}: add a row for {sorted(allowed - documented)}, "
        f"remove {sorted(documented - allowed)}"
    )


# -- refusals --------------------------------------------------------------------------------


def test_an_unknown_key_is_refused_naming_its_path_and_the_keys_allowed_there() -> None:
    message = refused(SHOP.replace('ssl_flags = 1, cert = "shop"', 'ssl_flags = 1, cert = "shop", colour = "red"'))
    assert message == (
        "s.toml: sites[0].bindings[0].colour is not a key of a site binding; use one of: cert, hash_getter_throws, "
        "http_sys, information, protocol, ssl_flags, store, thumbprint."
    )


def test_every_field_of_the_model_and_parameter_of_its_helpers_is_a_key_so_a_new_one_is_at_once() -> None:
    top = {f.name for f in dataclasses.fields(HostModel) if f.init} - {"now", "log"}
    assert _allowed("nonsense = 1\n") - top == {"description", "renewal_days", "hourly_check"}
    cert_keys = _allowed("[[certs]]\nnonsense = 1\n")
    minted = {"pem", "thumbprint", "subject", "sans", "not_before", "not_after", "issuer", "serial", "der"}
    assert {f.name for f in dataclasses.fields(SimCert)} - minted <= cert_keys
    assert set(inspect.signature(HostModel.add_cert).parameters) - {"self"} <= cert_keys
    renewal_keys = _allowed("[[renewals]]\nnonsense = 1\n")
    assert set(inspect.signature(HostModel.add_renewal).parameters) - {"self", "renewal_id"} <= renewal_keys
    assert {f.name for f in dataclasses.fields(Task)} <= _allowed("[[tasks]]\nnonsense = 1\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('localised = "yes"\n', 's.toml: localised must be true or false, not "yes".'),
        ('mwa_loads_by = "gac"\n', 's.toml: mwa_loads_by must be one of "path", "full_name", "none", not "gac".'),
        ("access_denied_folders = 'C:\\x'\n", "s.toml: access_denied_folders must be a list in brackets"),
        ('[[certs]]\nnames = ["a"]\nkey_state = "broken"\n', "s.toml: certs[0].key_state must be one of"),
        ('[[certs]]\nnames = ["a"]\ndays_old = "old"\n', 's.toml: certs[0].days_old must be a number, not "old".'),
        ('[[certs]]\nnames = "a"\n', 's.toml: certs[0].names must be a list in brackets, such as [...], not "a".'),
        ("[[certs]]\ndays_old = 1\n", "s.toml: certs[0].names is required"),
        ('[[certs]]\nnames = ["a"]\nstore = "Root"\n', 's.toml: certs[0].store must be "My" or "WebHosting"'),
        ('[[certs]]\nnames = ["a"]\ndays_old = 1\ndays_left = 2\n', "s.toml: certs[0].days_left and days_old say"),
        (
            '[[certs]]\nnames = ["a"]\nkey_alg = "ecdsa"\nprovider_kind = "capi"\n',
            "s.toml: certs[0].provider_kind cannot be",
        ),
        (
            '[[sites]]\nname = "S"\nbindings = [{ information = "*:443:a", cert = "nope" }]\n',
            's.toml: sites[0].bindings[0].cert names no certificate "nope"; give the id of a [[certs]] entry',
        ),
        (
            '[[sites]]\nname = "S"\nbindings = [{ information = "443" }]\n',
            's.toml: sites[0].bindings[0].information must be "IP:port:host" as IIS writes it',
        ),
        (
            '[[sites]]\nname = "S"\nbindings = [{ protocol = "https" }]\n',
            "s.toml: sites[0].bindings[0].information is required",
        ),
        (
            '[[http_bindings]]\nkind = "ip"\nendpoint = "0.0.0.0:443"\nthumbprint = "xyz"\n',
            "s.toml: http_bindings[0].thumbprint must be 40 hexadecimal",
        ),
        ('[[renewals]]\nid = "r"\n', "s.toml: renewals[0].hosts is required"),
        (
            '[[renewals]]\nid = "r"\nhosts = ["a"]\nsite = "Nope"\n',
            's.toml: renewals[0].site names no [[sites]] entry "Nope"',
        ),
        (
            '[[renewals]]\nid = "r"\nhosts = ["a"]\nhistory = [{ days_ago = 1 }]\n',
            "s.toml: renewals[0].history[0].success is required",
        ),
        (
            '[[renewals]]\nid = "r"\nhosts = ["a"]\nhistory = [{ sucess = true }]\n',
            "s.toml: renewals[0].history[0].sucess is not a key of a history entry",
        ),
        ('[[tasks]]\npath = "Ops"\nname = "t"\n', "s.toml: tasks[0].path must be a task folder"),
        (
            '[[tasks]]\npath = \'\\\'\nname = "t"\nlast_run = "yesterday"\n',
            "s.toml: tasks[0].last_run must be a date-time",
        ),
        (
            '[[tasks]]\npath = \'\\\'\nname = "t"\nactions = [{ program = "x" }]\n',
            "s.toml: tasks[0].actions[0].program is not a key of a task action",
        ),
        ('[[tasks]]\nname = "t"\n', "s.toml: tasks[0].path is required in a scheduled task; add it."),
        ("certs = 1\n", "s.toml: certs must be a list in brackets"),
        ("[host\n", "s.toml is not valid TOML ("),
    ],
)
def test_a_wrong_type_value_or_reference_is_refused_naming_the_key_path(text: str, message: str) -> None:
    assert refused(text).startswith(message)


def test_a_scenario_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"is not a regular file; give the path of a scenario file \(TOML\)"):
        load_scenario(tmp_path)


def test_a_scenario_file_is_read_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "shop.toml"
    path.write_text(SHOP, encoding="utf-8")
    model = load_scenario(path)
    assert [c.sans for c in model.certs] == [["shop.example.net"]]
    assert diagnose(inventory_offline(model)) == []


def inventory_offline(model: HostModel) -> Inventory:
    host = Host("h", "http://127.0.0.1:1/wsman")
    return build_inventory(host.name, offline_results(model, inventory_parts(host)), now=model.now)
