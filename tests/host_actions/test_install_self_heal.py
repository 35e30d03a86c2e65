"""install-self-heal end to end: pywinrm -> WS-Man simulator -> the host model, and back; the
command line; and the report secret, which goes to the host in the job on stdin and nowhere else."""

from __future__ import annotations

import argparse
import base64
import dataclasses
import inspect
import json
import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import tree_sitter
import tree_sitter_powershell

from bot.config import Host
from bot.host_cli import register
from bot.store import open_store
from host_actions import actions
from host_actions.actions import layer_files, self_heal_install
from host_actions.actions.layer_files import SECRET_PATTERN, SELF_HEAL_TASK, Hidden, interval_minutes
from host_actions.actions.self_heal_install import OLD_TASK, task_arguments
from host_actions.errors import HostActionError
from host_actions.inventory import inventory
from host_actions.layers import layer_script
from host_actions.registry import host_action
from host_actions.scripts import decode_job, script_text
from host_actions.simulator import Faults, HostModel, WinRMSimulator, contract
from host_actions.simulator.scenarios import incident_host
from host_actions.simulator.scripts import HANDLERS
from host_actions.target import EnvSecret
from tests.host_actions.conftest import PASSWORD_ENV, SimFactory

SECRET_ENV = "CERTOPS_TEST_REPORT_SECRET"
SECRET = "9f2c1e7d4b8a6f3e0d5c2b1a7e9f4d8c-report-secret"
URL = "https://certops.example.com/api/report"
FOLDER = "C:\\ProgramData\\certops"
KEY = f"{FOLDER}\\report.key"
LOCKED = "S-1-5-18:FullControl:Allow,S-1-5-32-544:FullControl:Allow"


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return SECRET


def reporting(host: Host, *, interval: float = 3600.0) -> Host:
    return dataclasses.replace(host, report_url=URL, report_secret=EnvSecret(SECRET_ENV), report_interval=interval)


def with_old_layer2(model: HostModel | None = None) -> HostModel:
    model = model or incident_host()
    model.add_certops_task()  # \certops\certops hourly check and its certops-hourly-check.ps1
    return model


def _state(model: HostModel) -> str:
    return json.dumps(
        {
            "files": model.files,
            "acls": model.file_acls,
            "tasks": [(t.full_path, t.state, [a.arguments for a in t.actions]) for t in model.tasks],
            "log": model.log,
        },
        sort_keys=True,
    )


def _self_heal_tasks(model: HostModel) -> list[Any]:
    return [t for t in model.tasks if t.full_path.lower() == SELF_HEAL_TASK.lower()]


# -- installing -----------------------------------------------------------------------------


def test_install_writes_the_script_and_the_report_files_locked_and_registers_one_task(
    make_sim: SimFactory, secret: str
) -> None:
    sim, host = make_sim(incident_host())
    result = actions.install_self_heal(reporting(host, interval=1800))
    assert result.ok, result.summary
    files = sim.model.files
    assert files[f"{FOLDER}\\self-heal.ps1".lower()] == layer_script("self-heal")
    assert json.loads(files[f"{FOLDER}\\report.json".lower()]) == {"url": URL, "host": "iis-sim"}
    assert files[KEY.lower()] == secret
    for name in ("", "\\self-heal.ps1", "\\report.json", "\\report.key"):
        assert sim.model.file_acls[(FOLDER + name).lower()] == LOCKED, name
    [task] = _self_heal_tasks(sim.model)
    assert task.user == "SYSTEM"
    assert [(a.execute, a.arguments) for a in task.actions] == [
        (
            "powershell.exe",
            '-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "%ProgramData%\\certops\\self-heal.ps1"',
        )
    ]
    assert (task.run_level, task.every_minutes, task.multiple_instances, task.time_limit_minutes) == (
        "Highest",
        30.0,
        "IgnoreNew",
        10.0,
    )
    assert result.details["changed"] is True
    outcomes = {c["item"]: c["outcome"] for c in result.details["changes"]}
    assert outcomes == {
        FOLDER: "created",
        f"{FOLDER}\\report.json": "written",
        KEY: "written",
        f"{FOLDER}\\self-heal.ps1": "written",
        SELF_HEAL_TASK: "created",
    }
    written = next(c for c in result.details["changes"] if c["item"].endswith("self-heal.ps1"))
    assert written["sha256_before"] is None
    assert written["sha256_after"] == layer_files.sha256(layer_script("self-heal"))
    assert "report.key: written (the secret is not shown)" in result.summary
    assert "every 30 min as SYSTEM, check only" in result.summary
    assert sim.requests.count("Create") == 1
    assert sim.requests.count("Command") == 2  # the read, then the writes with the read again


def test_a_second_install_reports_every_item_unchanged_and_sends_no_write(make_sim: SimFactory, secret: str) -> None:
    sim, host = make_sim(with_old_layer2())
    host = reporting(host)
    assert actions.install_self_heal(host).ok
    before, ran = _state(sim.model), len(sim.scripts_run)
    again = actions.install_self_heal(host)
    assert again.ok
    assert again.details["changed"] is False
    assert {c["outcome"] for c in again.details["changes"]} == {"unchanged"}
    assert again.summary == (
        "iis-sim: self-heal is already installed as asked (every 60 min as SYSTEM, check only); nothing changed."
    )
    assert sim.scripts_run[ran:] == ["layer_state"]  # one read, nothing written
    assert _state(sim.model) == before
    assert len(_self_heal_tasks(sim.model)) == 1


def test_install_with_repair_changes_only_the_task_s_arguments(make_sim: SimFactory, secret: str) -> None:
    sim, host = make_sim(incident_host())
    host = reporting(host)
    assert actions.install_self_heal(host).ok
    files = dict(sim.model.files)
    result = host_action("install-self-heal").run(host, ["--repair"])
    assert result.ok, result.summary
    [task] = _self_heal_tasks(sim.model)
    assert task.actions[0].arguments == task_arguments(True)
    assert task.actions[0].arguments.endswith('self-heal.ps1" -Repair')
    assert sim.model.files == files
    assert (
        "\\certops\\certops self-heal: updated (-Repair added); unchanged: report.json, report.key, self-heal.ps1"
        in (result.summary)
    )
    back = actions.install_self_heal(host, repair=False)
    assert "updated (-Repair removed)" in back.summary
    assert _self_heal_tasks(sim.model)[0].actions[0].arguments == task_arguments(False)


def test_install_removes_the_old_hourly_check_task_and_its_script_and_says_so(
    make_sim: SimFactory, secret: str
) -> None:
    sim, host = make_sim(with_old_layer2())
    assert sim.model.task(OLD_TASK) is not None
    result = actions.install_self_heal(reporting(host))
    assert result.ok, result.summary
    assert sim.model.task(OLD_TASK) is None
    assert not sim.model.file_exists(f"{FOLDER}\\certops-hourly-check.ps1")
    assert "\\certops\\certops hourly check: removed (self-heal replaces it)" in result.summary
    assert "certops-hourly-check.ps1: removed (only the old task ran it)" in result.summary
    # the folder the old installer made inherits ProgramData's ACL (Users may read): locked now
    assert "the folder: locked (its permissions were not SYSTEM and Administrators only)" in result.summary
    assert [t.full_path for t in sim.model.tasks if t.path == "\\certops\\"] == [SELF_HEAL_TASK]


def test_a_task_changed_by_hand_is_registered_again_and_the_result_says_what_differed(
    make_sim: SimFactory, secret: str
) -> None:
    sim, host = make_sim(incident_host())
    host = reporting(host)
    actions.install_self_heal(host)
    [task] = _self_heal_tasks(sim.model)
    task.state, task.every_minutes, task.run_level = "Disabled", 5.0, "Limited"
    result = actions.install_self_heal(host)
    assert result.ok, result.summary
    assert "updated (its privileges; its schedule (every 5 min); it was disabled)" in result.summary
    [task] = _self_heal_tasks(sim.model)
    assert (task.state, task.every_minutes, task.run_level) == ("Ready", 60.0, "Highest")


def test_a_new_report_secret_rewrites_report_key_and_nothing_else(
    make_sim: SimFactory, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, host = make_sim(incident_host())
    host = reporting(host)
    actions.install_self_heal(host)
    monkeypatch.setenv(SECRET_ENV, "a-rotated-secret-0000000000000000")
    result = actions.install_self_heal(host)
    assert result.ok, result.summary
    assert sim.model.files[KEY.lower()] == "a-rotated-secret-0000000000000000"
    assert "report.key: written (it holds another secret; the secret is not shown)" in result.summary
    assert "unchanged: report.json, self-heal.ps1, \\certops\\certops self-heal" in result.summary


def test_a_stale_self_heal_script_is_written_again(make_sim: SimFactory, secret: str) -> None:
    sim, host = make_sim(incident_host())
    host = reporting(host)
    actions.install_self_heal(host)
    sim.model.files[f"{FOLDER}\\self-heal.ps1".lower()] = "# an older self-heal.ps1\r\n"
    result = actions.install_self_heal(host)
    change = next(c for c in result.details["changes"] if c["item"].endswith("self-heal.ps1"))
    assert (change["outcome"], change["detail"]) == ("written", "its content differs")
    assert change["sha256_before"] == layer_files.sha256("# an older self-heal.ps1\r\n")
    assert sim.model.files[f"{FOLDER}\\self-heal.ps1".lower()] == layer_script("self-heal")


def test_a_write_the_host_did_not_make_is_reported_not_claimed(
    make_sim: SimFactory, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, host = make_sim(with_old_layer2())
    monkeypatch.setitem(HANDLERS, "install_self_heal", lambda model, params: {"script_written": True})
    result = actions.install_self_heal(reporting(host))
    assert not result.ok
    assert result.summary.startswith("iis-sim: self-heal was installed (")
    assert f"{FOLDER}\\self-heal.ps1 is not as wanted (new)" in result.summary
    assert f"{SELF_HEAL_TASK} is not as wanted (created)" in result.summary
    assert f"{OLD_TASK} is still there" in result.summary
    assert len(result.details["problems"]) == 4
    assert sim.model.files[KEY.lower()] == secret  # report_config did its part


@pytest.mark.parametrize(("seconds", "minutes"), [(3600, 60), (1800, 30), (90, 2), (10, 1), (0, 1), (7 * 86400, 10080)])
def test_the_interval_is_report_interval_in_whole_minutes_and_at_least_one(seconds: float, minutes: int) -> None:
    assert interval_minutes(seconds) == minutes
    assert re.search(contract.params_of("install_self_heal")["IntervalMinutes"].pattern or "", str(minutes))


def test_inventory_and_diagnosis_see_the_new_task_as_certops_s_own(make_sim: SimFactory, secret: str) -> None:
    _sim, host = make_sim(with_old_layer2())
    actions.install_self_heal(reporting(host))
    inv = inventory(host)
    [task] = [t for t in inv.tasks if t.path == SELF_HEAL_TASK]
    assert task.is_certops
    assert not task.is_wacs
    assert [f.exists for a in task.actions for f in a.files] == [True, True]  # powershell.exe, self-heal.ps1
    assert not any(t.path == OLD_TASK for t in inv.tasks)
    findings = actions.diagnose_host(host)[1]
    assert not [f for f in findings if f.evidence.get("task") == SELF_HEAL_TASK]
    audited = actions.audit_tasks(host).details["tasks"]
    assert next(t for t in audited if t["path"] == SELF_HEAL_TASK)["flags"] == []


# -- what-if ----------------------------------------------------------------------------------


def test_what_if_says_what_would_change_changes_nothing_and_sends_no_secret(make_sim: SimFactory, secret: str) -> None:
    sim, host = make_sim(with_old_layer2())
    before = _state(sim.model)
    result = host_action("install-self-heal").run(reporting(host), [], what_if=True)
    assert result.ok
    assert result.details["what_if"] is True
    assert result.details["changed"] is False
    assert result.summary.startswith("Would install self-heal on iis-sim (every 60 min as SYSTEM, check only)")
    assert "report.key: would be written (the secret is not shown)" in result.summary
    assert "self-heal.ps1: would be written (new)" in result.summary
    assert "\\certops\\certops self-heal: would be created" in result.summary
    assert "\\certops\\certops hourly check: would be removed" in result.summary
    assert _state(sim.model) == before
    assert sim.scripts_run == ["layer_state"]
    assert secret not in json.dumps(_everything_sent(sim))


def test_what_if_after_an_install_says_nothing_would_change(make_sim: SimFactory, secret: str) -> None:
    _sim, host = make_sim(incident_host())
    host = reporting(host)
    actions.install_self_heal(host)
    result = actions.install_self_heal(host, what_if=True)
    assert result.summary == (
        "iis-sim: self-heal is installed as asked (every 60 min as SYSTEM, check only); nothing would change."
    )


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "with_secret", "says"),
    [
        (None, True, ["[bot] public_url"]),
        (URL, False, ["report_secret_env or report_secret_file in the [[hosts]] entry for iis-sim"]),
        (None, False, ["[bot] public_url", "report_secret_env or report_secret_file"]),
    ],
)
def test_without_report_url_or_secret_install_is_refused_before_anything_is_sent(
    make_sim: SimFactory, secret: str, url: str | None, with_secret: bool, says: list[str]
) -> None:
    sim, host = make_sim(incident_host())
    host = dataclasses.replace(host, report_url=url, report_secret=EnvSecret(SECRET_ENV) if with_secret else None)
    for what_if in (False, True):
        with pytest.raises(HostActionError) as caught:
            actions.install_self_heal(host, what_if=what_if)
        assert caught.value.message.startswith("iis-sim: install-self-heal needs ")
        assert caught.value.message.endswith("Nothing was sent to the host.")
        for key in says:
            assert key in caught.value.message
    assert sim.requests == []


def test_an_unreadable_report_secret_is_refused_before_anything_is_sent_naming_where_it_was_looked_for(
    make_sim: SimFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    sim, host = make_sim(incident_host())
    with pytest.raises(HostActionError) as caught:
        actions.install_self_heal(reporting(host))
    assert caught.value.message == (
        f"iis-sim: the report secret is not available (environment variable {SECRET_ENV}); nothing was sent."
    )
    assert sim.requests == []


def test_a_secret_the_host_script_would_refuse_is_refused_here_without_quoting_it(
    make_sim: SimFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "caf\u00e9-not-ascii-secret")
    sim, host = make_sim(incident_host())
    with pytest.raises(HostActionError) as caught:
        actions.install_self_heal(reporting(host))
    assert "must be printable ASCII" in caught.value.message
    assert "caf" not in caught.value.message
    assert sim.requests == []


@pytest.mark.parametrize(
    ("faults", "kind"), [(Faults(reject_all=True), "auth_failed"), (Faults(garbled=True), "bad_output")]
)
def test_install_reports_a_host_failure_as_its_kind(
    make_sim: SimFactory, secret: str, faults: Faults, kind: str
) -> None:
    _sim, host = make_sim(faults=faults)
    with pytest.raises(HostActionError) as caught:
        actions.install_self_heal(reporting(host))
    assert caught.value.kind == kind
    assert secret not in caught.value.message


# -- the secret -------------------------------------------------------------------------------


def _streams(body: bytes, name: str) -> list[tuple[str, bytes]]:
    """(CommandId, decoded bytes) of every rsp:Stream with that Name in a SOAP body."""
    if not body.strip().startswith(b"<"):
        return []
    root = ET.fromstring(body)  # noqa: S314 - what pywinrm and the loopback simulator sent each other
    out = []
    for el in root.iter("{http://schemas.microsoft.com/wbem/wsman/1/windows/shell}Stream"):
        if el.get("Name") == name:
            out.append((el.get("CommandId", ""), base64.b64decode(el.text or "")))
    return out


def _everything_sent(sim: WinRMSimulator) -> dict[str, Any]:
    """What crossed the wire, every layer of base64 taken off: each command's stdin as the job it
    carries, the command lines, and what the host printed."""
    stdin: dict[str, bytes] = {}
    out: dict[str, Any] = {"jobs": [], "other_requests": [], "answers": []}
    for exchange in sim.wire:
        sends = _streams(exchange.body, "stdin")
        for command_id, data in sends:
            stdin[command_id] = stdin.get(command_id, b"") + data
        if not sends:
            out["other_requests"].append(exchange.body.decode("utf-8", "replace"))
        for _command_id, data in _streams(exchange.answer, "stdout"):
            for line in data.decode("ascii", "replace").split():
                if line != "CERTOPS":
                    try:
                        out["answers"].append(base64.b64decode(line).decode("utf-8", "replace"))
                    except ValueError:
                        out["answers"].append(line)
        out["answers"].append(exchange.answer.decode("utf-8", "replace"))
    out["jobs"] = [decode_job(data) for data in stdin.values()]
    return out


def test_the_secret_is_sent_only_in_the_job_on_stdin_to_report_config(make_sim: SimFactory, secret: str) -> None:
    sim, host = make_sim(incident_host())
    actions.install_self_heal(reporting(host))
    sent = _everything_sent(sim)
    assert secret not in json.dumps(sent["other_requests"])  # not in a command line, nor anywhere else
    assert secret not in json.dumps(sent["answers"])  # the host never prints it back
    carrying = [
        (part["name"], name)
        for job in sent["jobs"]
        for part in job
        for name, value in part["params"].items()
        if secret in json.dumps(value)
    ]
    assert carrying == [("report_config", "ReportKey")]
    digest = layer_files.sha256(secret)
    assert [p["params"]["ReportKeySha256"] for job in sent["jobs"] for p in job if p["name"] == "layer_state"] == [
        digest,
        digest,
    ]


def test_the_secret_is_in_no_result_log_line_or_repr(
    make_sim: SimFactory, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    sim, host = make_sim(incident_host())
    host = reporting(host)
    caplog.set_level(logging.DEBUG)
    results = [
        actions.install_self_heal(host, what_if=True),
        actions.install_self_heal(host),
        actions.install_self_heal(host),
        actions.install_self_heal(host, repair=True),
        actions.add_post_renew_step(host, "mZ3Yk1fWbkW0yJbqv7NfVw", what_if=True),
        actions.add_post_renew_step(host, "mZ3Yk1fWbkW0yJbqv7NfVw"),
    ]
    shown = json.dumps([r.to_json() for r in results]) + repr(results)
    assert secret not in shown
    assert layer_files.sha256(secret) not in shown  # nor its digest
    assert caplog.records  # the sessions did log
    assert secret not in caplog.text
    assert secret not in repr([r.__dict__ for r in caplog.records])
    assert secret not in json.dumps(sim.model.log)
    assert sim.model.files[KEY.lower()] == secret  # it did reach the host


def test_the_hidden_secret_is_sent_as_itself_but_never_shown() -> None:
    hidden = Hidden(SECRET)
    assert json.dumps({"ReportKey": hidden}) == json.dumps({"ReportKey": SECRET})
    for shown in (repr(hidden), str(hidden), f"{hidden}", "%s" % hidden, repr({"k": hidden})):  # noqa: UP031
        assert SECRET not in shown
    settings = layer_files.report_settings(
        Host("h", "https://h:5986/wsman", report_url=URL, report_secret=_Fixed(f"  {SECRET}\n"))
    )
    assert settings is not None
    assert settings.secret == SECRET  # surrounding white space stripped, as the scripts and the bot do
    assert SECRET not in repr(settings)


@dataclasses.dataclass(frozen=True)
class _Fixed:
    value: str

    def resolve(self) -> str:
        return self.value

    def describe(self) -> str:
        return "a test value"


# -- the scripts ------------------------------------------------------------------------------


def test_the_scripts_validate_the_values_as_python_does() -> None:
    specs = contract.params_of("report_config")
    assert specs["ReportKey"].pattern == "^" + SECRET_PATTERN.pattern + "$"
    assert specs["ReportJson"].pattern == "^" + layer_files.REPORT_JSON_PATTERN.pattern + "$"
    arguments = contract.params_of("install_self_heal")["Arguments"].pattern or ""
    for repair in (False, True):
        assert re.fullmatch(arguments.strip("^$"), task_arguments(repair))
    assert not re.search(arguments, task_arguments(False) + " -Force")


def test_the_task_register_self_heal_ps1_registers_by_hand_is_the_one_install_self_heal_wants() -> None:
    text = (Path(__file__).resolve().parents[2] / "deploy" / "windows" / "register-self-heal.ps1").read_text("utf-8")
    [by_hand] = re.findall(r"^\$argument = '([^']+)'$", text, re.M)
    assert by_hand == task_arguments(False)
    assert "$argument += ' -Repair'" in text
    assert "-RepetitionDuration (New-TimeSpan -Days 3650)" in text  # taken as "for ever"
    doc = {
        "state": "Ready",
        "user": "SYSTEM",
        "run_level": "Highest",
        "actions": [{"execute": "powershell.exe", "arguments": by_hand}],
        "triggers": [{"enabled": True, "every_minutes": 60.0, "for_minutes": 3650 * 24 * 60.0}],
        "multiple_instances": "IgnoreNew",
        "time_limit_minutes": 10.0,
    }
    assert self_heal_install.task_differences(doc, task_arguments(False), 60) == []


def test_the_install_script_registers_the_task_as_the_contract_says() -> None:
    text = script_text("install_self_heal")
    for needed in (
        "-UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest",
        "-MultipleInstances IgnoreNew -ExecutionTimeLimit (New-TimeSpan -Minutes 10)",
        "-Execute 'powershell.exe' -Argument $Arguments",
        "-TaskPath '\\certops\\' -TaskName 'certops self-heal'",
        "-Force",
        "Unregister-ScheduledTask -TaskPath '\\certops\\' -TaskName 'certops hourly check' -Confirm:$false",
    ):
        assert needed in text, needed
    # the files are created with their ACL and only then written; the secret is never printed
    locked = script_text("report_config")
    assert "[IO.File]::Create($temp, 4096, [IO.FileOptions]::None, $acl)" in locked
    assert "[IO.Directory]::CreateDirectory($Dir, $acl)" in locked
    assert "written = @($written)" in locked
    assert "$ReportKey" not in locked.split("@{ folder")[-1]


@pytest.mark.parametrize("name", ["layer_state", "report_config", "install_self_heal"])
def test_the_scripts_with_their_include_put_in_parse_as_powershell(name: str) -> None:
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    tree = parser.parse(script_text(name).encode("utf-8"))
    stack, broken = [tree.root_node], []
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            broken.append(node.start_point[0] + 1)
        stack.extend(node.children)
    assert broken == []
    assert "# certops: include" not in script_text(name)


def test_the_action_is_in_the_registry_with_what_if_and_a_repair_switch() -> None:
    action = host_action("install-self-heal")
    assert (action.label, action.changes_host, action.rechecked) == ("Install self-heal", True, False)
    assert action.bind([]) == {"repair": False}
    assert action.bind(["--repair"]) == {"repair": True}
    assert action.usage() == "[--repair]"
    assert "what_if" in inspect.signature(action.runner).parameters
    assert action.runner is self_heal_install.install_self_heal


# -- the command line -------------------------------------------------------------------------


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="certops")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def _config(tmp_path: Path, url: str, *, public_url: bool = True) -> str:
    path = tmp_path / "certops.toml"
    path.write_text(
        f'[bot]\ndatabase = "{tmp_path / "state.db"}"\n'
        + ('public_url = "https://certops.example.com"\n' if public_url else "")
        + f'\n[[hosts]]\nname = "iis01"\naddress = "{url}"\ntransport = "basic"\nusername = "certops"\n'
        f'password_env = "{PASSWORD_ENV}"\nallow_insecure_basic = true\ntimeout = "10s"\n'
        f'report_secret_env = "{SECRET_ENV}"\nreport_interval = "30m"\n',
        encoding="utf-8",
    )
    return str(path)


def test_certops_host_install_self_heal_what_if_prints_what_it_would_do_and_changes_nothing(
    make_sim: SimFactory, secret: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, _host = make_sim(with_old_layer2())
    before = _state(sim.model)
    code = _cli(["host", "install-self-heal", "iis01", "--what-if", "-c", _config(tmp_path, sim.url)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.startswith("Would install self-heal on iis01 (every 30 min as SYSTEM, check only)")
    assert "report.key: would be written (the secret is not shown)" in captured.out
    assert _state(sim.model) == before
    assert not (tmp_path / "state.db").exists()  # a what-if is not audited
    assert secret not in captured.out + captured.err


def test_certops_host_install_self_heal_yes_installs_and_audits_without_the_secret(
    make_sim: SimFactory, secret: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, _host = make_sim(incident_host())
    config = _config(tmp_path, sim.url)
    code = _cli(["host", "install-self-heal", "iis01", "--repair", "--yes", "--json", "-c", config])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads(captured.out)
    assert doc["ok"] is True
    assert doc["details"]["repair"] is True
    assert doc["details"]["interval_minutes"] == 30
    assert json.loads(sim.model.files[f"{FOLDER}\\report.json".lower()])["url"] == URL
    [task] = _self_heal_tasks(sim.model)
    assert task.actions[0].arguments == task_arguments(True)
    store = open_store(tmp_path / "state.db")
    entries = [(e.event, e.subject, e.outcome, e.detail) for e in store.audit_log()]
    store.close()
    assert [e[:3] for e in entries] == [
        ("approve", "install-self-heal --repair on iis01", "approved"),
        ("run", "install-self-heal --repair on iis01", "ok"),
    ]
    assert secret not in json.dumps(entries) + captured.out + captured.err
    assert _cli(["host", "install-self-heal", "iis01", "--repair", "--yes", "-c", config]) == 0
    assert "nothing changed" in capsys.readouterr().out


def test_certops_host_install_self_heal_without_public_url_says_which_key_and_sends_nothing(
    make_sim: SimFactory, secret: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, _host = make_sim(incident_host())
    code = _cli(["host", "install-self-heal", "iis01", "--yes", "-c", _config(tmp_path, sim.url, public_url=False)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("iis01: install-self-heal needs [bot] public_url")
    assert sim.requests == []
