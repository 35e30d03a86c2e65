"""The host-side layers (Layer 2 self-heal.ps1, Layer 3 post-renew.ps1), their shared pieces and
deploy/windows' other scripts. PowerShell cannot run here: the scripts are parsed with
tree-sitter-powershell and held, through the parse tree, to docs/report-api.md and to what the
design asks of them (the signer is the documented one; self-heal repairs only with -Repair; no
layer changes a binding; the task is registered as documented)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import tree_sitter
import tree_sitter_powershell

from host_actions.actions.self_heal_install import task_arguments
from host_actions.layers import LAYER_NAMES, layer_script, main, stale_copies, write_copies
from tests.host_actions.test_powershell_scripts import _problems

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "windows"
PS = REPO / "host_actions" / "ps"
DOCS = REPO / "docs"
HOST_SIDE = sorted([*DEPLOY.glob("*.ps1"), *(PS / "layers").glob("*.ps1"), *(PS / "include").glob("*.ps1")])
BLOCKS = {  # each shared piece opens and closes with these lines, once in each script that has it
    "key_test.ps1": re.compile(r"# >>> certops key test.*?# <<< certops key test\n", re.S),
    "report.ps1": re.compile(r"# >>> certops report.*?# <<< certops report\n", re.S),
    "layer_common.ps1": re.compile(r"# >>> certops layer common.*?# <<< certops layer common\n", re.S),
}
PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
Node = tree_sitter.Node


# -- reading the parse tree ------------------------------------------------------------------


def _root(text: str) -> Node:
    return PARSER.parse(text.encode("utf-8")).root_node


def _text(node: Node) -> str:
    return (node.text or b"").decode("utf-8")


def _walk(node: Node) -> Iterator[Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def _of_type(node: Node, kind: str) -> list[Node]:
    return [n for n in _walk(node) if n.type == kind]


def _name(variable: Node) -> str:
    """`$Body`, `${Body}` -> "body" (PowerShell names are case-insensitive)."""
    return _text(variable).lstrip("$").strip("{}").lower()


def _variables(node: Node) -> set[str]:
    return {_name(v) for v in _of_type(node, "variable")}


def _function(root: Node, name: str) -> Node:
    found = [
        f
        for f in _of_type(root, "function_statement")
        if any(_text(c).lower() == name.lower() for c in f.children if c.type == "function_name")
    ]
    assert len(found) == 1, f"{name} is defined {len(found)} times"
    return found[0]


def _body(function: Node) -> Node:
    return next(c for c in function.children if c.type == "script_block")


def _parameters(function: Node) -> set[str]:
    """The names a function takes, declared as `function F($A, $B)` or in a param() block."""
    names: set[str] = set()
    for declaration in [*_of_type(function, "function_parameter_declaration"), *_of_type(function, "param_block")]:
        if _enclosing_function(declaration) == function:
            names |= {_name(p.children[-1]) for p in _of_type(declaration, "script_parameter")}
    return names


def _enclosing_function(node: Node) -> Node | None:
    parent = node.parent
    while parent is not None and parent.type != "function_statement":
        parent = parent.parent
    return parent


def _command_name(command: Node) -> str:
    for child in command.children:
        if child.type == "command_name":
            return _text(child)
        if child.type == "command_name_expr":
            return _text(child)
    return ""


def _commands(node: Node, name: str) -> list[Node]:
    return [c for c in _of_type(node, "command") if _command_name(c).lower() == name.lower()]


def _elements(command: Node) -> list[Node]:
    elements = next((c for c in command.children if c.type == "command_elements"), None)
    return [] if elements is None else [e for e in elements.children if e.type != "command_argument_sep"]


def _switches(command: Node) -> set[str]:
    return {_text(e).lower() for e in _elements(command) if e.type == "command_parameter"}


def _argument(command: Node, parameter: str) -> Node:
    """The value that follows `-Parameter` in a command."""
    elements = _elements(command)
    for i, element in enumerate(elements):
        if element.type == "command_parameter" and _text(element).lower() == parameter.lower():
            assert i + 1 < len(elements), f"{parameter} has no value"
            return elements[i + 1]
    raise AssertionError(f"{_command_name(command)} has no {parameter}")


def _string(node: Node) -> str:
    """The value of a '...' literal (a verbatim string: '' is one quote)."""
    literals = _of_type(node, "verbatim_string_characters")
    assert len(literals) == 1, _text(node)
    return _text(literals[0])[1:-1].replace("''", "'")


def _assignments(root: Node, variable: str) -> list[Node]:
    """The right-hand sides of every `$variable = ...`."""
    found = []
    for a in _of_type(root, "assignment_expression"):
        left = next(c for c in a.children if c.type == "left_assignment_expression")
        if _text(left).lower() == f"${variable}" and any(_text(c) == "=" for c in a.children):
            found.append(a.children[-1])
    return found


def _value(root: Node, node: Node) -> str:
    """A command argument's string: a literal, or a variable assigned one literal in the script."""
    if _of_type(node, "verbatim_string_characters"):
        return _string(node)
    (variable,) = _variables(node)
    (value,) = _assignments(root, variable)
    return _string(value)


def _squash(text: str) -> str:
    return " ".join(text.split())


def _guarded_by(node: Node, variable: str) -> bool:
    """Whether the node lies in the then-block of an `if` whose condition mentions $variable."""
    child, parent = node, node.parent
    while parent is not None:
        if parent.type == "if_statement":
            blocks = [c for c in parent.children if c.type == "statement_block"]
            condition = next(c for c in parent.children if c.type == "pipeline")
            if blocks and blocks[0] == child and variable in _variables(condition):
                return True
        child, parent = parent, parent.parent
    return False


def _doc_block(language: str) -> str:
    found = re.findall(rf"```{language}\n(.*?)```", (DOCS / "report-api.md").read_text(encoding="utf-8"), re.S)
    assert len(found) == 1, f"docs/report-api.md has {len(found)} {language} blocks"
    return str(found[0])


def _hash_keys(node: Node) -> set[str]:
    """The keys of the one hashtable literal directly in `node` (not the ones nested in it)."""
    (table,) = [h for h in _of_type(node, "hash_literal_expression") if not _outer_hashes(h, node)]
    body = next(c for c in table.children if c.type == "hash_literal_body")
    return {_text(e.children[0]).strip("'\"") for e in body.children if e.type == "hash_entry"}


def _outer_hashes(table: Node, within: Node) -> bool:
    parent = table.parent
    while parent is not None and parent != within:
        if parent.type == "hash_literal_expression":
            return True
        parent = parent.parent
    return False


def _entry(table_holder: Node, key: str) -> Node:
    for entry in _of_type(table_holder, "hash_entry"):
        if _text(entry.children[0]).strip("'\"").lower() == key.lower():
            return next(c for c in entry.children if c.type == "pipeline")
    raise AssertionError(f"no hashtable entry {key}")


# -- every script parses, and the copies are what the sources say ---------------------------


def test_the_parse_check_covers_every_host_side_folder() -> None:
    folders = {p.parent.name for p in HOST_SIDE}
    assert folders == {"windows", "layers", "include"}
    assert {p.name for p in DEPLOY.glob("*.ps1")} == {
        "self-heal.ps1",
        "post-renew.ps1",
        "register-self-heal.ps1",
        "setup-winrm.ps1",
    }


@pytest.mark.parametrize("path", HOST_SIDE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_host_side_script_parses_without_error_or_missing_nodes(path: Path) -> None:
    source = path.read_bytes()
    assert _problems(source) == []
    text = source.decode("utf-8")
    assert text.isascii()  # 5.1 reads a BOM-less file as ANSI
    for pwsh_only in ("??", "?.", "-Parallel", "-AsHashtable", "&&", "||"):
        assert pwsh_only not in text


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_each_layer_script_is_standalone_with_every_include_put_in(name: str) -> None:
    text = layer_script(name)
    assert "# certops: include" not in text
    for piece, block in BLOCKS.items():
        found = block.findall(text)
        assert found == [
            (PS / ("layers" if piece == "layer_common.ps1" else "include") / piece).read_text(encoding="utf-8")
        ], piece
    assert "$ProgressPreference = 'SilentlyContinue'" in text
    assert "$ErrorActionPreference = 'Stop'" in text
    assert _problems(text.encode("utf-8")) == []


def test_layer_script_knows_only_the_two_layers() -> None:
    assert LAYER_NAMES == ("self-heal", "post-renew")
    with pytest.raises(KeyError):
        layer_script("layer_common")


def test_the_copies_in_deploy_windows_are_the_layer_scripts_so_no_include_edit_leaves_a_stale_copy() -> None:
    assert stale_copies(DEPLOY) == []
    assert main(["--check", str(DEPLOY)]) == 0
    for name in LAYER_NAMES:
        assert (DEPLOY / f"{name}.ps1").read_bytes() == layer_script(name).encode("utf-8")


def test_the_check_entry_point_fails_on_a_stale_or_missing_copy_and_write_fixes_it(tmp_path: Path) -> None:
    assert main(["--check", str(tmp_path)]) == 1  # nothing there
    assert write_copies(tmp_path) == ["self-heal.ps1", "post-renew.ps1"]
    assert main(["--check", str(tmp_path)]) == 0
    stale = tmp_path / "post-renew.ps1"
    stale.write_text(stale.read_text().replace("certutil", "certutil2"))
    assert main(["--check", str(tmp_path)]) == 1
    assert main(["--write", str(tmp_path)]) == 0
    assert stale_copies(tmp_path) == []


def test_the_key_test_copies_are_key_test_ps1() -> None:
    shared = (PS / "include" / "key_test.ps1").read_text(encoding="utf-8")
    for name in LAYER_NAMES:
        assert BLOCKS["key_test.ps1"].findall((DEPLOY / f"{name}.ps1").read_text(encoding="utf-8")) == [shared]


# -- the signer is the documented one -----------------------------------------------------------


def test_the_powershell_signer_is_the_code_in_docs_report_api() -> None:
    root = _root((PS / "include" / "report.ps1").read_text(encoding="utf-8"))
    signer = _function(root, "Get-CertopsReportSignature")
    body = _body(signer)
    assert _squash(_text(body)) == _squash(_doc_block("powershell"))
    declaration = next(c for c in signer.children if c.type == "function_parameter_declaration")
    assert _squash(_text(declaration)) == "([string]$Secret, [string]$Timestamp, [byte[]]$Body)"
    # and what that code is made of
    (new_object,) = _commands(body, "New-Object")
    assert _text(_elements(new_object)[0]) == "System.Security.Cryptography.HMACSHA256"
    members = [_text(m) for m in _of_type(body, "member_name")]
    assert members.count("UTF8") == 2  # the key and the prefix, both UTF-8
    assert [_text(s) for s in _of_type(body, "expandable_string_literal")] == ['"v1:${Timestamp}:"']
    assert "'x2'" in [_text(s) for s in _of_type(body, "verbatim_string_characters")]
    assert "ComputeHash" in members


def test_send_certops_report_signs_the_very_bytes_it_sends() -> None:
    root = _root((PS / "include" / "report.ps1").read_text(encoding="utf-8"))
    send = _body(_function(root, "Send-CertopsReport"))
    (post,) = _commands(send, "Invoke-WebRequest")
    (sign,) = _commands(send, "Get-CertopsReportSignature")
    (sent,) = _variables(_argument(post, "-Body"))
    assert _variables(_argument(sign, "-Body")) == {sent}
    # those bytes are the JSON encoded once, as UTF-8 without a BOM
    (encoded,) = _assignments(send, sent)
    assert _squash(_text(encoded)).replace(" ", "") == "(New-ObjectText.UTF8Encoding$false).GetBytes($json)"
    (serialised,) = _assignments(send, "json")
    (to_json,) = _commands(serialised, "ConvertTo-Json")
    assert _text(_argument(to_json, "-Depth")) == "8"
    assert {"-compress", "-inputobject"} <= _switches(to_json)
    # the headers carry the timestamp that was signed and the signature made
    (timestamp,) = _variables(_argument(sign, "-Timestamp"))
    assert "[DateTimeOffset]::UtcNow.ToUnixTimeSeconds()" in _text(_assignments(send, timestamp)[0])
    (headers,) = _variables(_argument(post, "-Headers"))
    (table,) = _assignments(send, headers)
    assert _hash_keys(table) == {"X-Certops-Host", "X-Certops-Timestamp", "X-Certops-Signature"}
    assert _variables(_entry(table, "X-Certops-Timestamp")) == {timestamp}
    (signature,) = _variables(_entry(table, "X-Certops-Signature"))
    (signed,) = _assignments(send, signature)
    assert signed.start_byte <= sign.start_byte < sign.end_byte <= signed.end_byte
    # and the request is the documented one
    assert _string(_argument(post, "-ContentType")) == "application/json; charset=utf-8"
    assert _text(_argument(post, "-Method")) == "Post"
    assert _text(_argument(post, "-TimeoutSec")) == "30"
    assert _text(_argument(post, "-MaximumRedirection")) == "0"
    assert "-usebasicparsing" in _switches(post)
    tls = (
        "[Net.ServicePointManager]::SecurityProtocol = "
        "[Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12"
    )
    assert tls in _text(send)
    assert _text(send).index(tls) < _text(send).index("Invoke-WebRequest")


def test_a_failed_post_never_throws_out_of_the_script() -> None:
    root = _root((PS / "include" / "report.ps1").read_text(encoding="utf-8"))
    send = _body(_function(root, "Send-CertopsReport"))
    (post,) = _commands(send, "Invoke-WebRequest")
    tries = [t for t in _of_type(send, "try_statement") if t.start_byte < post.start_byte < t.end_byte]
    assert tries
    assert any(_of_type(t, "catch_clause") for t in tries)
    assert not [s for s in _of_type(send, "flow_control_statement") if _text(s).lower().startswith("throw")]


def test_the_documented_test_vectors_hold_for_the_documented_algorithm() -> None:
    vectors = json.loads((DOCS / "report-api-vectors.json").read_text(encoding="utf-8"))["vectors"]
    assert len(vectors) >= 4
    for v in vectors:
        signed = b"v1:" + v["timestamp"].encode() + b":" + v["body"].encode("utf-8")
        assert "v1=" + hmac.new(v["secret"].encode("utf-8"), signed, hashlib.sha256).hexdigest() == v["signature"]


def test_the_report_has_the_documented_fields() -> None:
    root = _root(layer_script("self-heal"))
    document = json.loads(_doc_block("json"))
    report = _body(_function(root, "ConvertTo-CertopsReport"))
    (returned,) = [s for s in _of_type(report, "flow_control_statement") if _text(s).startswith("return")]
    assert _hash_keys(returned) == set(document)
    check = _body(_function(root, "Test-CertopsCertificate"))
    (checked,) = [a for a in _of_type(check, "invokation_expression") if "$Run.checked.Add" in _text(a)]
    assert _hash_keys(checked) == set(document["checked"][0])
    (binding,) = [a for a in _of_type(check, "invokation_expression") if "$results.Add" in _text(a)]
    assert _hash_keys(binding) == set(document["checked"][0]["bindings"][0])
    key = _body(_function(root, "Test-CertopsCertificateKey"))
    (repaired,) = [a for a in _of_type(key, "invokation_expression") if "$Run.repaired.Add" in _text(a)]
    assert _hash_keys(repaired) == set(document["repaired"][0])
    assert "what = 'key_link'" in _text(repaired)


# -- what each script may do -----------------------------------------------------------------


def test_post_renew_declares_a_mandatory_validated_thumbprint_and_always_may_repair() -> None:
    root = _root(layer_script("post-renew"))
    (block,) = [b for b in root.children if b.type == "param_block"]
    (parameter,) = _of_type(block, "script_parameter")
    assert _name(parameter.children[-1]) == "thumbprint"
    attributes = {
        _text(a.children[1]): a
        for a in _of_type(parameter, "attribute")
        if len(a.children) > 1 and a.children[1].type == "attribute_name"
    }
    assert _squash(_text(attributes["Parameter"])) == "[Parameter(Mandatory = $true)]"
    pattern = _string(attributes["ValidatePattern"])
    assert pattern == "^[0-9A-Fa-f]{40}$"
    assert re.fullmatch(pattern, "7C4F0D8E2B1A9C3D5E6F708192A3B4C5D6E7F809")
    assert not re.fullmatch(pattern, "7C4F0D8E2B1A9C3D5E6F708192A3B4C5D6E7F80")
    assert "[string]" in _text(parameter)
    calls = _commands(root, "Test-CertopsCertificate")
    assert calls
    assert all(_text(_argument(c, "-Repair")) == "$true" for c in calls)
    assert layer_script("post-renew").startswith("# certops-script: certops_post_renew\n")  # what the simulator knows


def test_self_heal_repairs_a_key_link_only_when_run_with_repair() -> None:
    root = _root(layer_script("self-heal"))
    (block,) = [b for b in root.children if b.type == "param_block"]
    (parameter,) = _of_type(block, "script_parameter")
    assert _squash(_text(parameter)) == "[switch]$Repair"
    repairs = [c for c in _commands(root, "certutil.exe") if "-repairstore" in _switches(c)]
    assert len(repairs) == 1
    assert {"-silent"} <= _switches(repairs[0])
    assert _guarded_by(repairs[0], "repair")
    # and $Repair reaches that `if` from the script's switch through every call on the way
    pending, seen = [_enclosing_function(repairs[0])], set()
    while pending:
        function = pending.pop()
        assert function is not None
        name = next(_text(c) for c in function.children if c.type == "function_name")
        if name in seen:
            continue
        seen.add(name)
        assert "repair" in _parameters(function), name
        calls = _commands(root, name)
        assert calls, name
        for call in calls:
            assert "repair" in _variables(next(c for c in call.children if c.type == "command_elements")), _text(call)
            outer = _enclosing_function(call)
            if outer is None:
                assert _text(_argument(call, "-Repair")) == "$Repair.IsPresent"
            else:
                pending.append(outer)
    assert seen == {"Test-CertopsCertificateKey", "Test-CertopsCertificate"}


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_no_layer_ever_changes_a_binding(name: str) -> None:
    root = _root(layer_script(name))
    members = {_text(m).lower() for m in _of_type(root, "member_name")}
    assert not members & {"commitchanges", "createelement", "remove", "setattributevalue"}
    for command in (
        "Set-WebBinding",
        "New-WebBinding",
        "Remove-WebBinding",
        "New-IISSiteBinding",
        "Remove-IISSiteBinding",
    ):
        assert not _commands(root, command)
    for netsh in _commands(root, "netsh.exe"):
        assert [_text(e) for e in _elements(netsh)][:2] == ["http", "show"]
    for assignment in _of_type(root, "left_assignment_expression"):
        assert "certificatehash" not in _text(assignment).lower()


def test_self_heal_keeps_writing_key_verdicts_json_as_the_inventory_reads_it() -> None:
    root = _root(layer_script("self-heal"))
    save = _body(_function(root, "Save-CertopsKeyVerdicts"))
    (state,) = _assignments(save, "state")
    assert _hash_keys(state) == {"at", "identity", "certs", "problems", "notes"}  # host_actions/parsers.py parse_layer2
    assert "'key-verdicts.json'" in _text(save)
    assert "ConvertTo-Json -InputObject $state -Depth 8 -Compress" in _text(save)
    key = _body(_function(root, "Test-CertopsCertificateKey"))
    (tested,) = [a for a in _of_type(key, "assignment_expression") if _text(a).startswith("$Run.tested[$tp]")]
    assert _hash_keys(tested) == {"store", "thumbprint", "has_private_key", "key"}
    events = _commands(root, "Write-EventLog")
    assert sorted(_text(_argument(e, "-EventId")) for e in events) == ["1", "2"]
    assert all(_string(_argument(e, "-Source")) == "certops" for e in events)
    exits = [_text(s) for s in _of_type(root, "flow_control_statement") if _text(s).startswith("exit")]
    assert exits == ["exit 1", "exit 0"]


def test_the_layers_rotate_their_own_logs() -> None:
    common = (PS / "layers" / "layer_common.ps1").read_text(encoding="utf-8")
    assert "$CertopsLogCap = 5MB" in common
    assert "$CertopsLogDays = 14" in common
    assert r"'^(self-heal|post-renew)-[0-9]{8}\.log$'" in common
    assert '(Join-Path $dir "$Kind-$day.log")' in common
    assert "Join-Path $env:ProgramData 'certops\\logs'" in common


def test_register_self_heal_registers_the_documented_task_and_replaces_it() -> None:
    root = _root((DEPLOY / "register-self-heal.ps1").read_text(encoding="utf-8"))
    (register,) = _commands(root, "Register-ScheduledTask")
    assert _value(root, _argument(register, "-TaskPath")) == "\\certops\\"
    assert _value(root, _argument(register, "-TaskName")) == "certops self-heal"
    assert "-force" in _switches(register)  # registering twice leaves one task
    (unregister,) = _commands(root, "Unregister-ScheduledTask")
    assert _value(root, _argument(unregister, "-TaskPath")) == "\\certops\\"
    assert _value(root, _argument(unregister, "-TaskName")) == "certops hourly check"
    (principal,) = _commands(root, "New-ScheduledTaskPrincipal")
    assert _string(_argument(principal, "-UserId")) == "SYSTEM"
    assert _text(_argument(principal, "-RunLevel")) == "Highest"
    (settings,) = _commands(root, "New-ScheduledTaskSettingsSet")
    assert _text(_argument(settings, "-MultipleInstances")) == "IgnoreNew"
    assert _squash(_text(_argument(settings, "-ExecutionTimeLimit"))) == "(New-TimeSpan -Minutes 10)"
    (trigger,) = _commands(root, "New-ScheduledTaskTrigger")
    assert _squash(_text(_argument(trigger, "-RepetitionInterval"))) == "(New-TimeSpan -Minutes $IntervalMinutes)"
    (block,) = [b for b in root.children if b.type == "param_block"]
    interval = next(p for p in _of_type(block, "script_parameter") if _name(p.children[1]) == "intervalminutes")
    assert _squash(_text(interval)).endswith("[int]$IntervalMinutes = 60")
    (action,) = _commands(root, "New-ScheduledTaskAction")
    assert _string(_argument(action, "-Execute")) == "powershell.exe"
    (argument,) = _variables(_argument(action, "-Argument"))
    (first,) = _assignments(root, argument)
    # the same task as certops host install-self-heal registers, so either one finds the other's unchanged
    assert _string(first) == task_arguments(repair=False)
    assert (
        _string(first)
        == '-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "%ProgramData%\\certops\\self-heal.ps1"'
    )
    (script,) = _assignments(root, "script")
    assert _squash(_text(script)) == "Join-Path $dir 'self-heal.ps1'"
    (folder,) = _assignments(root, "dir")
    assert _squash(_text(folder)) == "Join-Path $env:ProgramData 'certops'"
    (repair,) = [a for a in _of_type(root, "assignment_expression") if _text(a) == "$argument += ' -Repair'"]
    assert _guarded_by(repair, "repair")


def test_setup_winrm_takes_one_validated_certificate_and_the_bot_address() -> None:
    root = _root((DEPLOY / "setup-winrm.ps1").read_text(encoding="utf-8"))
    (block,) = [b for b in root.children if b.type == "param_block"]
    parameters = {_name(p.children[-1]): _squash(_text(p)) for p in _of_type(block, "script_parameter")}
    assert parameters["thumbprint"].startswith("[Parameter(Mandatory = $true)][ValidatePattern('^[0-9A-Fa-f]{40}$')]")
    assert parameters["botaddress"].startswith("[Parameter(Mandatory = $true)]")
    (listener,) = _commands(root, "New-WSManInstance")
    assert _squash(_text(_argument(listener, "-SelectorSet"))) == "@{ Address = '*'; Transport = 'HTTPS' }"
    (rule,) = _commands(root, "New-NetFirewallRule")
    assert _text(_argument(rule, "-LocalPort")) == "5986"
    assert _text(_argument(rule, "-RemoteAddress")) == "$BotAddress"
    text = _text(root)
    assert "O=Let's Encrypt" in text  # win-acme's certificates are refused: by issuer,
    assert "*.renewal.json" in text  # and by its renewal files
    assert "LocalAccountTokenFilterPolicy" in text
    assert "$AllowRemoteLocalAdmin" in text
