"""Every `certops ...` command the README and the docs show runs.

The commands are read from README.md, docs/*.md and deploy/**/README.md: each line of a shell
code block (```sh, ```bash, ```shell, ```console with its `$ ` prompts, and bare ```), each
`$ certops` line elsewhere, and each inline `certops ...` code span (there only when the next
word is a real subcommand: `certops console (console:alice)` is a prompt's text). A command is
found where a word `certops` (or a path ending in /bin/certops) is followed by a subcommand,
also behind wrappers such as `podman exec certops certops audit` or `podman run ... certops
check-config`.

Each one is checked without touching the network:

- its subcommand words must name real subcommands (read from the CLI's own parser), and
  `certops <those words> --help` must exit 0 and print its usage (all the --help runs in one
  subprocess of this venv's Python, through `bot.cli.main`, to keep the test fast);
- every option the doc writes (`--since`, `-c`) must appear in that --help output (for a
  placeholder subcommand such as `certops host ACTION`, in the help of one of its subcommands);
- the cheap, safe ones really run against local fixtures in a temporary folder: `--version`,
  `check-config` of the example config, `host diagnose --capture`, and `audit` of an empty
  database, each as a subprocess of this venv's `certops` console script.

Placeholders (`HOST`, `<HOST>`, `iis01`, `...`) are fine: only the subcommand words and the
option names are held to the CLI.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "deploy" / "certops.example.toml"
CAPTURE = REPO / "tests" / "captures" / "incident.json"
SHELL_FENCES = {"", "sh", "shell", "bash", "console", "shell-session"}
PROMPTS = ("$ ", "# ")  # in ```console blocks, only prompt lines are commands; the rest is output
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
_INLINE = re.compile(r"(?<!`)`([^`\n]+(?:\n[^`\n]+)?)`(?!`)")
_REDIRECT = re.compile(r"(?<!\S)\d*>>?(?:&\d+|\s*[^\s;&|]+)")
_COMMENT = re.compile(r"(?:^|\s)#.*$")
_HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?")
_SEPARATOR = re.compile(r"^[;&|]+$")
_SUBCOMMAND = re.compile(r"^[a-z][a-z0-9-]*$")
_PLACEHOLDER = re.compile(r"^(<[^>]*>|[A-Z][A-Z0-9_-]*|\.\.\.|…)$")
HELP_TIMEOUT = 60


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "deploy").glob("**/README.md"))]


@dataclass(frozen=True)
class DocCommand:
    doc: str  # the document, relative to the repository
    line: int
    text: str  # the command as written
    words: tuple[str, ...]  # what follows `certops`

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}: certops {' '.join(self.words)}"


# finding the commands --------------------------------------------------------------------------


def _children(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _is_certops(word: str) -> bool:
    return word == "certops" or word.endswith("/bin/certops")


def _names_a_container(segment: list[str], i: int) -> bool:
    """`docker compose exec -T certops cat x`: after `exec` (and its switches), `certops` is the
    container or service, and what follows is the program run in it."""
    before = [w for w in segment[:i] if not w.startswith("-")]
    return bool(before) and before[-1] == "exec"


def _tokens(line: str) -> list[str]:
    line = _COMMENT.sub("", _REDIRECT.sub(" ", line))
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: the words are still good enough to find a command
        return line.split()


def _segments(tokens: list[str]) -> Iterator[list[str]]:
    """The simple commands of a line, split at ;, &&, || and | outside [ ] (where | means "or")."""
    depth, current = 0, list[str]()
    for token in tokens:
        if depth == 0 and _SEPARATOR.match(token):
            yield current
            current = []
            continue
        depth = max(0, depth + token.count("[") - token.count("]"))
        current.append(token)
    yield current


def certops_words(line: str, first: frozenset[str] | None = None) -> list[tuple[str, ...]]:
    """The words after `certops` of each certops command in one shell line. `first`: the words
    that may follow `certops` (inline code spans, where `certops console (console:alice)` is the
    text of a prompt, not a command); None: any subcommand-like word."""
    found = []
    for segment in _segments(_tokens(line)):
        for i, word in enumerate(segment):
            if not _is_certops(word) or i + 1 >= len(segment):
                continue
            after = segment[i + 1]
            if _is_certops(after) or _names_a_container(segment, i):
                continue  # `podman exec certops certops audit`: the container's name, then the command
            if after in ("--help", "-h", "--version") or (
                _SUBCOMMAND.match(after) and (first is None or after in first)
            ):
                words = [w.strip("[]") for w in segment[i + 1 :]]
                found.append(tuple(w for w in words if w and w != "|"))
                break
    return found


def _shell_lines(block: list[tuple[int, str]], lang: str) -> Iterator[tuple[int, str]]:
    """(line number, command) of a shell code block: continuations joined, heredoc bodies skipped."""
    pending: tuple[int, str] | None = None
    heredoc: str | None = None
    for number, raw in block:
        if heredoc is not None:
            if raw.strip() == heredoc:
                heredoc = None
            continue
        text = raw.strip()
        if pending is None:
            if lang == "console":
                if not text.startswith(PROMPTS):
                    continue
                text = text[2:]
            elif text.startswith("$ "):
                text = text[2:]
            pending = (number, text)
        else:
            pending = (pending[0], pending[1] + " " + text)
        if pending[1].endswith("\\"):
            pending = (pending[0], pending[1][:-1])
            continue
        marker = _HEREDOC.search(pending[1])
        if marker:
            heredoc = marker[1]
        yield pending
        pending = None
    if pending is not None:
        yield pending


def commands_in(path: Path, text: str | None = None) -> list[DocCommand]:
    name = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    found: list[tuple[int, str, bool]] = []  # (line, command, inline)
    prose: list[str] = []
    fence: str | None = None
    lang = ""
    block: list[tuple[int, str]] = []
    for number, line in enumerate(lines, 1):
        opening = _FENCE.match(line)
        if fence is None and opening:
            fence, lang, block = opening[1], opening[2].lower(), []
            prose.append("")
            continue
        if fence is not None:
            prose.append("")
            if line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
                if lang in SHELL_FENCES:
                    found += [(n, command, False) for n, command in _shell_lines(block, lang)]
                fence = None
            else:
                block.append((number, line))
            continue
        prose.append(line)
        if line.lstrip().startswith("$ certops") or line.lstrip().startswith("$ .venv/bin/certops"):
            found.append((number, line.lstrip()[2:], False))
    joined = "\n".join(prose)
    for match in _INLINE.finditer(joined):
        span = match[1].replace("\n", " ").strip()
        first = span.split(" ", 1)[0]
        if _is_certops(first):
            found.append((joined.count("\n", 0, match.start()) + 1, span, True))
    subcommands = frozenset(_children(build_parser()))
    commands: list[DocCommand] = []
    for number, command, inline in sorted(found):
        for words in certops_words(command, subcommands if inline else None):
            found_one = DocCommand(name, number, command, words)
            if all(c.id != found_one.id for c in commands):  # the same command twice on a line
                commands.append(found_one)
    return commands


ALL = [c for doc in documents() for c in commands_in(doc)]


# checking them ---------------------------------------------------------------------------------


@dataclass
class Plan:
    """What a doc command claims: its subcommand words, the options each parser along the way
    must know, and whether a placeholder stands for a subcommand."""

    path: tuple[str, ...]
    options: list[tuple[tuple[str, ...], str]] = field(default_factory=list)  # (parser's path, option)
    any_child: bool = False  # `certops host ACTION`: a placeholder where a subcommand goes
    problem: str | None = None


def plan(words: tuple[str, ...], root: argparse.ArgumentParser | None = None) -> Plan:
    parser = root or build_parser()
    path: list[str] = []
    result = Plan(())
    i = 0
    while True:
        children = _children(parser)
        while i < len(words) and words[i].startswith("-") and len(words[i]) > 1:
            option = words[i].split("=", 1)[0]
            result.options.append((tuple(path), option))
            action = parser._option_string_actions.get(option)
            i += 1
            if action is not None and action.nargs != 0 and "=" not in words[i - 1]:
                i += 1  # its value
        if not children or i >= len(words):
            break
        word = words[i]
        i += 1
        if word in children:
            path.append(word)
            parser = children[word]
        elif _PLACEHOLDER.match(word):
            result.any_child = True
            break
        else:
            shown = " ".join(["certops", *path])
            result.problem = f"`{shown}` has no subcommand {word!r}; it has: {', '.join(children)}"
            break
    result.path = tuple(path)
    owner = tuple(path) + (("*",) if result.any_child else ())
    for word in words[i:]:
        if word.startswith("-") and len(word) > 1 and not word[1:].replace(".", "").isdigit():
            if word == "--":
                break
            result.options.append((owner, word.split("=", 1)[0]))
    return result


def help_paths(parsed: Plan, root: argparse.ArgumentParser) -> list[tuple[str, ...]]:
    """The parsers whose --help a plan needs: every one along its path, and in any_child mode each
    subcommand of the last."""
    paths = [parsed.path[:k] for k in range(len(parsed.path) + 1)]
    if parsed.any_child:
        parser = root
        for word in parsed.path:
            parser = _children(parser)[word]
        paths += [(*parsed.path, child) for child in _children(parser)]
    return paths


def knows(help_text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text) is not None


def certops_command() -> list[str]:
    script = Path(sys.executable).with_name("certops")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "bot.cli"]


def quiet_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without any CERTOPS_ variable of the machine's, so the runs do not depend on it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTOPS_")}
    env["CERTOPS_PROBE_WORKERS"] = "1"
    env.update(extra or {})
    return env


# every --help in one Python process: one import of certops instead of one per subcommand
_HELPS = """
import contextlib, io, json, sys
from bot.cli import main
answers = []
for path in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([*path, "--help"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    answers.append([path, code, out.getvalue(), err.getvalue()])
print(json.dumps(answers))
"""


def helps(paths: list[tuple[str, ...]], cwd: Path, env: dict[str, str]) -> dict[tuple[str, ...], Help]:
    done = subprocess.run(
        [sys.executable, "-c", _HELPS, json.dumps(paths)],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(REPO)},  # this checkout's certops, from any folder
        capture_output=True,
        text=True,
        timeout=HELP_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=True,
    )
    return {tuple(path): Help(code, out, err) for path, code, out, err in json.loads(done.stdout)}


@dataclass(frozen=True)
class Help:
    returncode: int
    stdout: str
    stderr: str


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*certops_command(), *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=HELP_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def example_secrets() -> dict[str, str]:
    """A stand-in value for each variable the example config's *_env keys name."""
    values = {}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key.endswith("_env") and isinstance(value, str):
                    values[value] = {
                        "bot_token_env": "xoxb-docs-test",
                        "app_token_env": "xapp-docs-test",
                        "signing_secret_env": "0123456789abcdef0123456789abcdef",
                    }.get(key, "docs-test-secret")
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(tomllib.loads(EXAMPLE.read_text(encoding="utf-8")))
    return values


# the safe ones that really run: (doc command) -> argv to run in the fixture folder, or None


def real_run(command: DocCommand, parsed: Plan) -> tuple[list[str], str] | None:
    """(argv, what to check) for a command that is safe and cheap to run for real here."""
    words = list(command.words)
    if any(_PLACEHOLDER.match(w) for w in words):
        return None
    config = _value(words, "-c", "--config")
    if parsed.path == () and "--version" in words:
        return ["--version"], "version"
    if parsed.path == ("check-config",) and config in ("certops.toml", "deploy/certops.example.toml"):
        return ["check-config", "-c", "certops.toml", *(["--no-secrets"] if "--no-secrets" in words else [])], "ok"
    if parsed.path == ("host", "diagnose") and _value(words, "--capture") and words.count("--capture") == 1:
        argv = [w if w != _value(words, "--capture") else "capture.json" for w in words]
        return argv, "findings"
    if parsed.path == ("audit",) and config in ("certops.toml", None):
        argv = [w for w in words if w not in ("-c", "--config", "certops.toml")]
        return [*argv, "-c", "certops.toml"], "json" if "--json" in words else "audit"
    return None


def _value(words: list[str], *names: str) -> str | None:
    for i, word in enumerate(words):
        if word in names and i + 1 < len(words):
            return words[i + 1]
        for name in names:
            if name.startswith("--") and word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


@dataclass
class Results:
    helps: dict[tuple[str, ...], Help]
    real: dict[tuple[str, ...], subprocess.CompletedProcess[str]]  # by argv: each one runs once
    plans: dict[str, Plan]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Results:
    """Every --help and every real run the docs need, at once, in parallel."""
    root = build_parser()
    folder = tmp_path_factory.mktemp("docs-commands")
    shutil.copy(EXAMPLE, folder / "certops.toml")
    shutil.copy(CAPTURE, folder / "capture.json")
    from bot.store import open_store

    store = open_store(folder / "certops.db")  # what `certops run` would have made: migrated
    store.audit("slack:U0123ABCD", "command", "/ssl status", "received", "C0123456789")
    store.close()
    env = quiet_environment(example_secrets())
    plans = {c.id: plan(c.words, root) for c in ALL}
    paths = sorted({p for parsed in plans.values() if not parsed.problem for p in help_paths(parsed, root)})
    argvs = {tuple(r[0]) for c in ALL if not plans[c.id].problem and (r := real_run(c, plans[c.id])) is not None}
    with ThreadPoolExecutor(max_workers=max(2, min(6, os.cpu_count() or 2))) as pool:
        help_job = pool.submit(helps, paths, folder, env)
        real_jobs = {argv: pool.submit(run, list(argv), folder, env) for argv in sorted(argvs)}
        return Results(help_job.result(), {argv: job.result() for argv, job in real_jobs.items()}, plans)


def test_the_docs_show_commands_for_every_subcommand() -> None:
    """The scan finds the docs' commands, so an empty pass proves nothing."""
    assert len(ALL) > 40
    shown = {c.words[0] for c in ALL if c.words}
    assert {"check-config", "check", "run", "host", "audit", "simulator", "demo"} <= shown
    for doc in ("docs/install.md", "docs/upgrade.md", "docs/backup.md", "README.md"):
        assert any(c.doc == doc for c in ALL), doc


@pytest.mark.parametrize("command", ALL, ids=[c.id for c in ALL])
def test_a_command_in_the_docs_runs(command: DocCommand, results: Results) -> None:
    parsed = results.plans[command.id]
    assert parsed.problem is None, f"{command.doc}:{command.line}: {command.text}\n{parsed.problem}"
    helps = results.helps
    usage = " ".join(["certops", *parsed.path])
    done = helps[parsed.path]
    assert done.returncode == 0, f"`{usage} --help` failed ({done.returncode}):\n{done.stderr}"
    assert done.stdout.startswith(f"usage: {usage}"), done.stdout[:200]
    unknown = []
    for owner, option in parsed.options:
        if owner and owner[-1] == "*":
            texts = [h.stdout for p, h in helps.items() if len(p) == len(owner) and p[:-1] == owner[:-1]]
        else:
            texts = [helps[owner].stdout]
        if not any(knows(text, option) for text in texts):
            unknown.append(f"{option} (not in `{' '.join(['certops', *owner])} --help`)")
    assert unknown == [], f"{command.doc}:{command.line}: {command.text}"
    planned = real_run(command, parsed)
    if planned is None:
        return
    argv, expect = planned
    outcome = results.real[tuple(argv)]
    where = f"{command.doc}:{command.line}: certops {' '.join(argv)}\n{outcome.stdout}\n{outcome.stderr}"
    if expect == "version":
        assert outcome.returncode == 0, where
        assert re.match(r"certops \d+\.\d+", outcome.stdout), where
    elif expect == "ok":
        assert outcome.returncode == 0, where
        assert "certops.toml: OK (" in outcome.stdout, where
    elif expect == "findings":
        assert outcome.returncode == 1, where  # done, and findings need attention
        assert "newest_cert_key_unusable" in outcome.stdout, where
    elif expect == "json":
        assert outcome.returncode == 0, where
        assert isinstance(json.loads(outcome.stdout), list), where
    else:
        assert outcome.returncode == 0, where


# the checker catches what it is for ----------------------------------------------------------


def test_commands_are_found_in_blocks_prompts_and_spans_and_nowhere_else(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    text = "\n".join(
        [
            "Run `certops check-config -c certops.toml` first; `certops_check_failing` is a code.",
            "```sh",
            "sudo /opt/certops/bin/certops audit --since 1d \\",
            "    --json | jq .",
            "journalctl -u certops --since today",
            "podman exec certops certops host diagnose iis01 2>&1 > out.txt   # a comment",
            "docker compose exec -T certops cat certops-backup.db > certops-backup.db",
            "podman run --rm --name certops -v certops-state:/var/lib/certops certops check-config -c /x.toml",
            "cat > x.toml <<'EOF'",
            "certops run",
            "EOF",
            "```",
            "```console",
            "$ certops --version",
            "certops 0.1.0",
            "certops audit: no entries",
            "```",
            "```powershell",
            "certops host inventory iis01",
            "```",
            "```",
            "certops simulator [--scenario FILE | --capture FILE] [--auth basic|ntlm]",
            "```",
        ]
    )
    found = [(c.line, c.words) for c in commands_in(doc, text)]
    assert found == [
        (1, ("check-config", "-c", "certops.toml")),
        (3, ("audit", "--since", "1d", "--json")),
        (6, ("host", "diagnose", "iis01")),
        (8, ("check-config", "-c", "/x.toml")),
        (14, ("--version",)),
        (22, ("simulator", "--scenario", "FILE", "--capture", "FILE", "--auth", "basic", "ntlm")),
    ]


def test_a_subcommand_that_does_not_exist_is_named() -> None:
    parsed = plan(("host", "frobnicate", "iis01"))
    assert parsed.problem is not None
    assert "`certops host` has no subcommand 'frobnicate'" in parsed.problem


def test_options_are_held_to_the_parser_they_are_given_to() -> None:
    parsed = plan(("host", "-c", "x.toml", "repair-store", "HOST", "TP", "--yes", "--no-such"))
    assert parsed.problem is None
    assert parsed.path == ("host", "repair-store")
    assert parsed.options == [
        (("host",), "-c"),
        (("host", "repair-store"), "--yes"),
        (("host", "repair-store"), "--no-such"),
    ]
    placeholder = plan(("host", "ACTION", "HOST", "-c", "certops.toml", "--json"))
    assert placeholder.any_child
    assert placeholder.options == [(("host", "*"), "-c"), (("host", "*"), "--json")]
    help_text = "  -c CONFIG, --config CONFIG  config file\n  --json  print JSON\n  --no-secrets  skip"
    assert knows(help_text, "-c")
    assert knows(help_text, "--json")
    assert not knows(help_text, "--no")  # a prefix of another option is not that option
    assert not knows(help_text, "--yes")


# what the docs show around the commands ----------------------------------------------------------


def test_the_readme_links_every_docs_page() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Documentation") :]
    section = section[: section.index("\n## ", 1)]
    missing = [p.name for p in sorted((REPO / "docs").glob("*.md")) if f"](docs/{p.name})" not in section]
    assert missing == []


def test_the_readme_shows_the_demo_and_test_commands_the_scripts_and_ci_run() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first = readme[: readme.index("\n## ")]
    assert "scripts/demo " in first
    assert "scripts/test " in first
    assert "certops demo" in (REPO / "scripts" / "demo").read_text(encoding="utf-8")
    assert "pytest" in (REPO / "scripts" / "test").read_text(encoding="utf-8")
    assert re.search(r"^exec scripts/test$", (REPO / ".ci" / "run").read_text(encoding="utf-8"), re.M)


def test_the_complete_configs_in_the_docs_are_valid() -> None:
    """A ```toml block with a [[sites]] table, in the pages about the config, is a whole config:
    it must load as written. (docs/simulator.md's TOML is a scenario file, not a config.)"""
    from bot.config import ConfigError
    from bot.config.load import parse_config

    checked, problems = 0, []
    for doc in [
        REPO / "README.md",
        *(REPO / "docs" / n for n in ("configure.md", "install.md", "slack.md", "line.md")),
    ]:
        text = doc.read_text(encoding="utf-8")
        for block in re.findall(r"^```toml\n(.*?)^```", text, re.M | re.S):
            if not re.search(r"^\[\[sites\]\]\s*$", block, re.M):
                continue
            checked += 1
            try:
                parse_config(block, str(doc.relative_to(REPO)), base_dir=REPO)
            except ConfigError as exc:
                problems.append(exc.render())
    assert checked >= 1
    assert problems == []


_TABLE = re.compile(r"^\s*#?\s*\[\[?([a-z][a-z0-9_.]*)\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"^\s*#?\s*([a-z][a-z0-9_]*)\s*=\s*\S")
# tables whose keys are names the operator chooses (people, actions), not settings
_NAMED_ENTRIES = {"policy.people", "policy.action_approvers"}


def example_keys() -> set[tuple[str, str]]:
    """(table, key) for every key deploy/certops.example.toml shows, commented out or not."""
    keys, table = set(), ""
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        header = _TABLE.match(line)
        if header:
            table = header[1]
            continue
        key = _KEY.match(line)
        if key and table and table not in _NAMED_ENTRIES:
            keys.add((table, key[1]))
    return keys


def test_every_key_of_the_example_config_is_documented() -> None:
    """configure.md (or, for the chat tables, slack.md and line.md) names each key in backticks."""
    pages = {
        "chat.slack": REPO / "docs" / "slack.md",
        "chat.line": REPO / "docs" / "line.md",
    }
    configure = (REPO / "docs" / "configure.md").read_text(encoding="utf-8")
    keys = example_keys()
    assert {("bot", "listen"), ("hosts", "report_interval"), ("chat.slack", "channel")} <= keys
    missing = []
    for table, key in sorted(keys):
        page = pages.get(table)
        text = page.read_text(encoding="utf-8") if page else configure
        if not re.search(rf"`{re.escape(key)}`|\b{re.escape(key)} = ", text):
            missing.append(f"[{table}] {key} (in {page.name if page else 'configure.md'})")
    assert missing == []


def test_the_config_page_names_every_action_policy_may_list() -> None:
    from bot.config.model import HOST_ACTIONS

    configure = (REPO / "docs" / "configure.md").read_text(encoding="utf-8")
    section = configure[configure.index("## `[policy]`") :]
    section = section[: section.index("\n## ", 1)]
    assert [a for a in HOST_ACTIONS if f"`{a}`" not in section] == []
