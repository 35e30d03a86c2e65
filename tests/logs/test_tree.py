"""Every logger of the project is in one tree, `certops.*`: one level, handler or filter on
`certops` covers all of it, and `logger=certops.` finds every line of ours in a log."""

from __future__ import annotations

import ast
import asyncio
import importlib
import logging
import pkgutil
from pathlib import Path

import pytest

from bot.logs import logger, logger_name

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "commands", "host_actions")
# libraries' loggers that certops configures on purpose (a level, a filter), not loggers of its own
LIBRARY_LOGGERS = {"aiohttp.server"}
# modules not importable on their own: alembic runs this one inside a migration
NOT_IMPORTABLE = {"bot.store.migrations.env"}


def sources() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def literal_prefix(node: ast.expr) -> str | None:
    """The text a logger name starts with, when the source says: "certops.x", "certops." + ..., f"certops.{x}"."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return literal_prefix(node.left)
    if isinstance(node, ast.JoinedStr) and node.values:
        return literal_prefix(node.values[0])
    return None


def logger_calls(path: Path) -> list[tuple[int, str, ast.expr | None]]:
    """(line, "getLogger" or "logger", first argument) for each call of either in the file."""
    found: list[tuple[int, str, ast.expr | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
        if name in ("getLogger", "logger"):
            argument = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"), None)
            found.append((node.lineno, name, argument))
    return found


def test_no_module_names_its_logger_getlogger_dunder_name() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sources()
        for line, call, argument in logger_calls(path)
        if call == "getLogger" and isinstance(argument, ast.Name) and argument.id == "__name__"
    ]
    assert found == [], "use bot.logs.logger(__name__) (host_actions: getLogger('certops.' + __name__)):\n" + "\n".join(
        found
    )


def test_every_logger_name_written_in_the_source_is_under_certops() -> None:
    wrong = []
    for path in sources():
        for line, call, argument in logger_calls(path):
            if argument is None:
                continue  # getLogger(): the root logger, which setup_logging configures
            prefix = literal_prefix(argument)
            if call == "logger":
                ok = (isinstance(argument, ast.Name) and argument.id == "__name__") or prefix is not None
            elif prefix is not None:
                ok = prefix == "certops" or prefix.startswith("certops.") or prefix in LIBRARY_LOGGERS
            elif isinstance(argument, ast.Call):
                ok = getattr(argument.func, "id", None) == "logger_name"  # bot.logs.logger itself
            else:
                ok = isinstance(argument, ast.Name) and argument.id != "__name__"  # a relayed name (probe workers)
            if not ok:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {ast.unparse(argument)}")
    assert wrong == [], "\n".join(wrong)


def test_the_scan_sees_each_way_of_naming_a_logger(tmp_path: Path) -> None:
    # the rules above are only as good as this reader
    source = tmp_path / "example.py"
    source.write_text(
        "import logging\nfrom logging import getLogger\nfrom bot.logs import logger\n"
        "a = logging.getLogger(__name__)\n"
        "b = getLogger(name='bot.web')\n"
        "c = logging.getLogger('certops.' + __name__)\n"
        "d = logger(__name__)\n"
        "e = logging.getLogger()\n"
    )
    calls = logger_calls(source)
    assert [(line, call) for line, call, _ in calls] == [
        (4, "getLogger"), (5, "getLogger"), (6, "getLogger"), (7, "logger"), (8, "getLogger"),
    ]  # fmt: skip
    assert [literal_prefix(argument) if argument is not None else None for _, _, argument in calls] == [
        None, "bot.web", "certops.", None, None,
    ]  # fmt: skip


def test_every_module_level_logger_of_every_module_is_under_certops() -> None:
    """The import scan: what the modules hold once imported, whatever way the source built it."""
    wrong, seen = [], 0
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            if info.name in NOT_IMPORTABLE:
                continue
            module = importlib.import_module(info.name)
            for attribute, value in vars(module).items():
                if isinstance(value, logging.LoggerAdapter):
                    value = value.logger
                if isinstance(value, logging.Logger):
                    seen += 1
                    if not (value.name == "certops" or value.name.startswith("certops.")):
                        wrong.append(f"{info.name}.{attribute}: {value.name}")
    assert seen >= 15  # bot.web, bot.outbox, bot.chat.slack's two, host_actions.winrm_client...
    assert wrong == []
    strays = [name for name in logging.Logger.manager.loggerDict if name.split(".")[0] in PACKAGES]
    assert strays == []  # nothing made a logger called bot.x, commands.x or host_actions.x


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("bot", "certops"),
        ("bot.web", "certops.web"),
        ("bot.probe.engine", "certops.probe.engine"),
        ("bot.chat.slack", "certops.chat.slack"),
        ("commands.heal", "certops.commands.heal"),
        ("commands.dispatch", "certops.commands.dispatch"),
        ("host_actions.winrm_client", "certops.host_actions.winrm_client"),
        ("certops.web.refusals", "certops.web.refusals"),
        ("botany", "certops.botany"),  # a prefix of a word is not the bot package
    ],
)
def test_module_names_map_into_the_certops_tree(module: str, name: str) -> None:
    assert logger_name(module) == name
    assert logger(module).name == name


def test_the_fixed_names_and_host_actions_without_bot_are_in_the_tree() -> None:
    from bot.chat.slack import BOLT_LOG
    from bot.web import REFUSALS_LOG
    from host_actions import winrm_client

    assert REFUSALS_LOG.name == "certops.web.refusals"
    assert BOLT_LOG.name == "certops.chat.slack.bolt"
    assert winrm_client.log.name == "certops.host_actions.winrm_client"


def test_a_probe_worker_s_record_reaches_the_bot_with_its_certops_name_and_fields() -> None:
    """Probe workers relay their records by logger name (bot.probe.pool): the name stays in the
    tree and the structured fields go along."""
    from bot.probe import engine, pool

    sent: list[object] = []

    async def relay() -> None:
        forward = pool._Forward(asyncio.get_running_loop(), sent.append)
        made = logging.LogRecord(engine.log.name, logging.WARNING, __file__, 1, "probe of %s", ("www",), None)
        made.__dict__.update(site="www", seconds=1.5, secret="not a field")
        forward.emit(made)
        await asyncio.sleep(0)

    asyncio.run(relay())
    assert sent == [("log", logging.WARNING, "certops.probe.engine", "probe of www", {"site": "www", "seconds": 1.5})]
