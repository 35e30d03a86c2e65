"""The fix for the TOML mistakes a Windows admin makes first, said in the message.

In double quotes a backslash starts an escape sequence, so `username = "CONTOSO\\svc-certops"`
is not TOML at all (`\\s` is no escape) and `"C:\\Users"` asks for a `\\U` escape. And `[sites]`
declares one table where each site is a `[[sites]]` table of its own.
"""

from __future__ import annotations

import re

from bot.config.errors import quoted

_AT_LINE = re.compile(r"\(at line (\d+), column \d+\)")
_ESCAPE_ERRORS = ("Unescaped '\\'", "Invalid hex value", "Invalid escape", "Unterminated string")
# key = "value" on one line, maybe with a comment after it
_KEY_VALUE = re.compile(r'^\s*(?P<key>[A-Za-z0-9_.-]+)\s*=\s*"(?P<value>[^"]*)"\s*(?:#.*)?$')
ARRAYS_OF_TABLES = ("sites", "hosts", "agents")


def decode_hint(text: str, message: str) -> str:
    """What tomllib said, with the line first and the fix after it, for a backslash in double
    quotes (and, after any error, for a [sites] or [hosts] written with one bracket)."""
    found = _AT_LINE.search(message)
    line_number = int(found[1]) if found else None
    line = _line(text, line_number) if line_number else ""
    head = f"line {line_number}: " if line_number else ""
    if "\\" in line and any(message.startswith(start) for start in _ESCAPE_ERRORS):
        return f"{head}{_backslash_fix(line)} (tomllib: {message})"
    for name in ARRAYS_OF_TABLES:
        single = single_bracket_line(text, name)
        if single is not None:
            return f"{message}; line {single}: {one_table(name)}"
    return message


def _backslash_fix(line: str) -> str:
    why = "in double quotes a backslash starts an escape sequence (such as \\n or \\u00e9)"
    pair = _KEY_VALUE.match(line)
    if pair is None or "'" in pair["value"]:
        return (
            f"{why}: write a Windows user name or path in single quotes, such as "
            "username = 'CONTOSO\\svc-certops', or double each backslash: \"CONTOSO\\\\svc-certops\""
        )
    key, value = pair["key"], pair["value"]
    doubled = value.replace("\\", "\\\\")
    return (
        f"{why}: write {key} = '{_shown(value)}' (single quotes keep every backslash as it is), "
        f'or double each backslash: {key} = "{_shown(doubled)}"'
    )


def _shown(value: str) -> str:
    return quoted(value)[1:-1]  # short, on one line, no control characters; without quoted()'s quotes


def single_bracket_line(text: str, name: str) -> int | None:
    """The line of `[name]` written with one bracket, if there is one."""
    found = re.search(rf"^[ \t]*\[[ \t]*{name}[ \t]*\][ \t]*(?:#.*)?$", text, re.MULTILINE)
    return text.count("\n", 0, found.start()) + 1 if found else None


def one_table(name: str) -> str:
    singular = name.removesuffix("s")
    return (
        f"[{name}] declares one table, and each {singular} is a [[{name}]] table of its own: "
        f"write [[{name}]] (two brackets) before each {singular}"
    )


def _line(text: str, number: int) -> str:
    lines = text.split("\n")
    return lines[number - 1] if 0 < number <= len(lines) else ""
