"""The deployment files in deploy/: the systemd unit, the Containerfile and the compose example."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"

# a config line in a comment, such as:  #   bot_token_file = "/run/secrets/slack-bot-token"
_SECTION = re.compile(r"^#\s+(\[\[?[\w.]+\]\]?)\s*$")
_FILE_KEY = re.compile(r'^#\s+(\w+_file) = "([^"]+)"\s*(?:#.*)?$')


def commented_config(text: str, prefix: str) -> dict[str, list[tuple[str, str]]]:
    """The example config lines in a file's comments whose path starts with `prefix`:
    {"[chat.slack]": [("bot_token_file", "slack-bot-token"), ...]}, names relative to `prefix`."""
    found: dict[str, list[tuple[str, str]]] = {}
    section = None
    for line in text.splitlines():
        heading = _SECTION.match(line)
        if heading:
            section = heading[1]
            continue
        entry = _FILE_KEY.match(line)
        if entry and section and entry[2].startswith(prefix + "/"):
            found.setdefault(section, []).append((entry[1], entry[2][len(prefix) + 1 :]))
    return found


CONFIG_TEMPLATE = """\
[[sites]]
name = "www"
url = "https://www.example.com/"
host = "iis01"

[[hosts]]
name = "iis01"
address = "https://iis01.example.com:5986/wsman"
transport = "ntlm"
username = "EXAMPLE\\\\svc-certops"
{hosts}

[chat.slack]
channel = "C0123456789"
{slack}

[policy]
approvers = ["slack:U0123ABCD"]
"""


def config_with_secret_files(lines: dict[str, list[tuple[str, str]]], folder: Path) -> str:
    """A small valid config whose [[hosts]] and [chat.slack] secrets are `lines`, each read
    from a file of that name in `folder` (written here, as systemd or compose would)."""
    assert set(lines) <= {"[[hosts]]", "[chat.slack]"}, sorted(lines)
    rendered = {}
    for section in ("[[hosts]]", "[chat.slack]"):
        parts = []
        for key, name in lines.get(section, []):
            secret = folder / name
            secret.write_text(f"value of {name}\n", encoding="utf-8")
            secret.chmod(0o400)
            parts.append(f'{key} = "{secret}"')
        rendered[section] = "\n".join(parts)
    return CONFIG_TEMPLATE.format(hosts=rendered["[[hosts]]"], slack=rendered["[chat.slack]"])
