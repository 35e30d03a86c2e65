"""Which package may import which: read from the source with `ast`, so an import hidden inside a
function or under TYPE_CHECKING counts too. A failure lists every offending file:line and import.

    host_actions  leaf: WinRM and IIS only, handed a Host
    bot.probe, bot.config  no commands, core, chat or store
    bot.core      decisions: may use probe, config and host_actions, never an adapter or the store
    commands      chat-independent: no adapters, store, runner, scheduler, web or chat SDKs
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Import:
    file: Path
    line: int
    module: str  # the dotted name as imported: "bot.store", or "bot.store.Incident" for a from-import

    def __str__(self) -> str:
        return f"{self.file.relative_to(REPO)}:{self.line}: {self.module}"


def imports_of(path: Path) -> list[Import]:
    return imports_in(path.read_text(encoding="utf-8"), path)


def imports_in(source: str, path: Path) -> list[Import]:
    """Every module a file imports, anywhere in it, in line order; relative imports resolved."""
    package = list(path.relative_to(REPO).parts[:-1])  # the same for a module and for __init__.py
    found = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            found += [Import(path, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - (node.level - 1)]
                base = ".".join([*parent, *([base] if base else [])])
            # `from bot import store` imports bot.store: name each imported name under its module
            found += [
                Import(path, node.lineno, base if alias.name == "*" else f"{base}.{alias.name}") for alias in node.names
            ]
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            argument = node.args[0]
            assert isinstance(argument, ast.Constant)
            found.append(Import(path, node.lineno, str(argument.value)))
    return sorted(found, key=lambda imp: imp.line)


def _is_dynamic_import(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return (
        name in ("import_module", "__import__")
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


def files_under(folder: str) -> list[Path]:
    files = sorted((REPO / folder).rglob("*.py"))
    assert files, f"no Python files under {folder}/: was it moved? update tests/test_layers.py"
    return files


def violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        str(imp)
        for path in files_under(folder)
        for imp in imports_of(path)
        if any(imp.module == f or imp.module.startswith(f + ".") for f in forbidden)
    ]


def report(folder: str, forbidden: tuple[str, ...]) -> str:
    found = violations(folder, forbidden)
    return f"{folder}/ must not import {', '.join(forbidden)}; found {len(found)}:\n  " + "\n  ".join(found)


def test_host_actions_imports_nothing_from_bot_or_commands() -> None:
    forbidden = ("bot", "commands")
    assert not violations("host_actions", forbidden), report("host_actions", forbidden)


def test_bot_core_imports_no_commands_chat_store_runner_scheduler_web_or_outbox() -> None:
    forbidden = ("commands", "bot.chat", "bot.store", "bot.runner", "bot.scheduler", "bot.web", "bot.outbox")
    assert not violations("bot/core", forbidden), report("bot/core", forbidden)


def test_commands_import_no_chat_adapter_store_runner_scheduler_web_outbox_or_chat_sdk() -> None:
    forbidden = (
        "bot.chat",
        "bot.runner",
        "bot.scheduler",
        "bot.web",
        "bot.outbox",
        "bot.store",
        "slack_bolt",
        "slack_sdk",
        "linebot",
    )
    assert not violations("commands", forbidden), report("commands", forbidden)


def test_bot_probe_imports_nothing_from_commands_core_chat_or_store() -> None:
    forbidden = ("commands", "bot.core", "bot.chat", "bot.store")
    assert not violations("bot/probe", forbidden), report("bot/probe", forbidden)


def test_bot_config_imports_nothing_from_commands_core_chat_or_store() -> None:
    forbidden = ("commands", "bot.core", "bot.chat", "bot.store")
    assert not violations("bot/config", forbidden), report("bot/config", forbidden)


def test_the_import_reader_sees_imports_in_functions_under_type_checking_relative_and_dynamic() -> None:
    # the rules above are only as good as this reader: a blind spot would pass them silently
    source = (
        "from typing import TYPE_CHECKING\n"
        "import bot.store as s\n"
        "if TYPE_CHECKING:\n"
        "    from bot.chat.base import ChatAdapter\n"
        "def later() -> None:\n"
        "    from bot import runner\n"
        "    import importlib\n"
        "    importlib.import_module('bot.web')\n"
        "from . import sibling\n"
        "from ..probe import model\n"
    )
    found = [(imp.line, imp.module) for imp in imports_in(source, REPO / "bot" / "core" / "example.py")]
    assert found == [
        (1, "typing.TYPE_CHECKING"),
        (2, "bot.store"),
        (4, "bot.chat.base.ChatAdapter"),
        (6, "bot.runner"),
        (7, "importlib"),
        (8, "bot.web"),
        (9, "bot.core.sibling"),
        (10, "bot.probe.model"),
    ]
