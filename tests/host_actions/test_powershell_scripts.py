"""The .ps1 files cannot run here; they are parsed with tree-sitter-powershell and checked for
the conventions the design asks for."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import tree_sitter
import tree_sitter_powershell

from host_actions.scripts import MARKER, SCRIPT_NAMES, script_marker, script_text
from host_actions.simulator import contract

PS_DIR = resources.files("host_actions").joinpath("ps")
ALL_SCRIPTS = sorted(p.name for p in PS_DIR.iterdir() if p.name.endswith(".ps1"))


def _problems(source: bytes) -> list[str]:
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    tree = parser.parse(source)
    found: list[str] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            found.append(f"{node.type} at line {node.start_point[0] + 1}")
        stack.extend(node.children)
    return found


def test_every_script_the_code_runs_is_shipped() -> None:
    assert {f"{n}.ps1" for n in (*SCRIPT_NAMES, "bootstrap")} == set(ALL_SCRIPTS)


@pytest.mark.parametrize("name", ALL_SCRIPTS)
def test_each_script_parses_without_error_or_missing_nodes(name: str) -> None:
    assert _problems(PS_DIR.joinpath(name).read_bytes()) == []


def test_the_parser_check_does_catch_a_broken_script() -> None:
    assert _problems(b"foreach ($x in @(1,2) {\n  $x\n") != []


@pytest.mark.parametrize("name", ALL_SCRIPTS)
def test_each_script_names_itself_on_its_first_line(name: str) -> None:
    text = PS_DIR.joinpath(name).read_text(encoding="utf-8")
    assert text.startswith(MARKER)
    assert script_marker(text) == name.removesuffix(".ps1")


@pytest.mark.parametrize("name", ALL_SCRIPTS)
def test_each_script_silences_progress_and_stops_on_errors(name: str) -> None:
    text = PS_DIR.joinpath(name).read_text(encoding="utf-8")
    assert "$ProgressPreference = 'SilentlyContinue'" in text
    assert "$ErrorActionPreference = 'Stop'" in text


@pytest.mark.parametrize("name", ALL_SCRIPTS)
def test_scripts_are_ascii_and_windows_powershell_friendly(name: str) -> None:
    text = PS_DIR.joinpath(name).read_text(encoding="utf-8")
    assert text.isascii()  # 5.1 reads BOM-less files as ANSI
    for pwsh_only in ("??", "?.", "-Parallel", "ConvertFrom-Json -AsHashtable", "&&", "||"):
        assert pwsh_only not in text


def test_every_value_parameter_of_an_action_script_is_validated_in_the_script_too() -> None:
    free_text = {"NewText", "ScriptText"}  # written as file content, never executed or parsed as code
    for name in SCRIPT_NAMES:
        for spec in contract.params_of(name).values():
            if spec.name in free_text or spec.name == "Force":
                continue
            assert spec.pattern or spec.choices, f"{name}.{spec.name} has no ValidatePattern/ValidateSet"


def test_no_script_builds_code_from_its_parameters() -> None:
    for name in SCRIPT_NAMES:
        text = script_text(name)
        assert "Invoke-Expression" not in text
        assert "iex " not in text
        assert "[ScriptBlock]::Create" not in text
    # the bootstrap is the one place that compiles text, and only the job's fixed script texts
    assert script_text("bootstrap").count("[ScriptBlock]::Create($part.script)") == 1


DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "windows"


@pytest.mark.parametrize("path", sorted(DEPLOY_DIR.glob("*.ps1")), ids=lambda p: p.name)
def test_the_host_side_layer_scripts_parse_too(path: Path) -> None:
    assert _problems(path.read_bytes()) == []
    text = path.read_text(encoding="utf-8")
    assert text.isascii()
    assert "$ProgressPreference = 'SilentlyContinue'" in text
