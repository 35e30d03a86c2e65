"""The docs cite only files that exist, and pyproject.toml declares every library shipped code imports."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("bot", "commands", "host_actions")
# the repository's own top-level folders: a backticked `bench/x.py` or `tests/...` is a path in it
_NOT_SOURCE = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__", "build"}
TOP_FOLDERS = tuple(
    sorted(p.name for p in REPO.iterdir() if p.is_dir() and p.name not in _NOT_SOURCE and "egg-info" not in p.name)
)
_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_PATH = re.compile(r"^(?:\.\.?/)*[\w.*-]+(?:/[\w.*-]*)*")
_PLACEHOLDER = re.compile(r"[<>…]|\bN\b|X{2,}")


def documents() -> list[Path]:
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "bench" / "README.md"]
    return docs + sorted((REPO / "deploy").glob("**/README.md"))


def cited_paths(doc: Path) -> list[tuple[str, Path]]:
    """(as written, where it points) for each repository path the document cites: a relative
    link (from the document's folder), and a backticked word that starts with one of the
    repository's folders (from the root) or with ../ (from the document's folder)."""
    text = doc.read_text(encoding="utf-8")
    found: list[tuple[str, Path]] = []
    for link in _LINK.findall(text):
        if "://" in link or link.startswith(("#", "mailto:")):
            continue
        target = link.split("#")[0]
        if target:
            found.append((link, doc.parent / target))
    for span in _CODE.findall(text):
        for word in span.split():
            match = _PATH.match(word.strip("(\"'"))
            if match is None or "/" not in match[0]:
                continue
            path = match[0].rstrip(".")
            if path.startswith("../"):
                found.append((path, doc.parent / path))
            elif path.split("/")[0] in TOP_FOLDERS:
                found.append((path, REPO / path))
    return found


def exists(path: Path) -> bool:
    """A file, a folder, a glob's match, or `dir/module.Name` (a Python module and a name in it)."""
    resolved = path.resolve()
    if REPO not in (resolved, *resolved.parents):
        return False  # outside the repository: a reader of the repository does not have it
    if "*" in path.name:
        return any(path.parent.glob(path.name))
    if resolved.exists():
        return True
    module = resolved.parent / (resolved.name.split(".")[0] + ".py")
    return "." in resolved.name and module.is_file()


def test_every_repository_path_the_docs_cite_exists() -> None:
    missing = []
    checked = 0
    for doc in documents():
        for written, path in cited_paths(doc):
            checked += 1
            if _PLACEHOLDER.search(written):
                continue
            if not exists(path):
                missing.append(f"{doc.relative_to(REPO)}: {written}")
    assert checked > 40  # the scan finds the docs' many citations, so an empty pass proves nothing
    assert missing == []


def test_the_scan_catches_a_path_that_does_not_exist_and_one_outside_the_repository(tmp_path: Path) -> None:
    doc = REPO / "docs" / "policy.md"
    fake = tmp_path / "x.md"
    fake.write_text("See `tests/no_such_test.py`, [this](gone.md) and `../../elsewhere/notes.md`.\n")
    cited = cited_paths(fake)
    assert [w for w, _ in cited] == ["gone.md", "tests/no_such_test.py", "../../elsewhere/notes.md"]
    assert not any(exists(p) for _, p in cited)
    assert exists(doc)


def test_the_readme_says_the_bot_runs_on_linux_or_macos_and_the_hosts_on_windows() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "runs on Linux or macOS (it uses `fcntl` locks and Unix signals)" in readme
    assert "the hosts it\nmanages run Windows" in readme


# dependencies -----------------------------------------------------------------------------------


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(extra: str | None = None) -> set[str]:
    """The distribution names in [project] dependencies (or in that optional extra)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    names = set()
    for requirement in requirements:
        match = re.match(r"[A-Za-z0-9._-]+", requirement)
        assert match, requirement
        names.add(_normal(match[0]))
    return names


def third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> the shipped files that import it (at any depth, in functions too)."""
    found: dict[str, set[str]] = {}
    for package in SHIPPED:
        for file in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in SHIPPED:
                        found.setdefault(top, set()).add(str(file.relative_to(REPO)))
    return found


def test_every_third_party_library_shipped_code_imports_is_declared_in_dependencies() -> None:
    distributions = importlib.metadata.packages_distributions()  # spnego -> pyspnego, linebot -> line-bot-sdk
    wanted = declared()
    undeclared = []
    imports = third_party_imports()
    for module, files in sorted(imports.items()):
        owners = {_normal(d) for d in distributions.get(module, [])}
        assert owners, f"{module} (imported by {sorted(files)}) is not installed"
        if not owners & wanted:
            undeclared.append(f"{module} ({' or '.join(sorted(owners))}), imported by {', '.join(sorted(files))}")
    assert {"spnego", "winrm", "linebot", "slack_bolt", "sqlalchemy"} <= set(imports)  # the scan sees them
    assert undeclared == []


def test_the_dev_extras_hold_no_library_nothing_uses() -> None:
    assert "trustme" not in declared("dev")
    this = Path(__file__).resolve()
    users = [
        str(f.relative_to(REPO))
        for folder in ("bot", "commands", "host_actions", "tests", "bench", "scripts")
        for f in (REPO / folder).rglob("*")
        if f.is_file()
        and f.suffix in (".py", "")
        and f.resolve() != this
        and "trustme" in f.read_text(encoding="utf-8", errors="replace")
    ]
    assert users == []


def test_the_operations_guide_documents_healthz_and_every_reason_it_gives_for_a_503() -> None:
    guide = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    section = guide[guide.index("## `GET /healthz`") :]
    section = section[: section.index("\n## ", 1)]
    code = (REPO / "bot" / "web.py").read_text(encoding="utf-8")
    for reason in (
        "the scheduler is not running",
        "the database does not answer",
        "chat messages have waited too long to be delivered",
    ):
        assert reason in code  # what health() says today
        assert reason in section
    assert "the database cannot be written (the disk is full)" in section  # Database.write_problem()
    for field in ("status", "problems", "follow_ups_running", "outbox_pending", "outbox_errors"):
        assert f'"{field}"' in code
        assert f"`{field}`" in section
    assert "**HTTP 503**" in section
    assert "**HTTP 200**" in section
