"""A small typed reader over one TOML table that records problems instead of raising.

Each accessor returns a usable default when the value is wrong, so validation continues and
every problem in the file is reported in one go. `finish()` rejects the keys nobody asked for.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

from bot.config.errors import ConfigIssue
from bot.config.secrets import SecretRef

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> float | None:
    """'90s', '5m', '1h30m', '2d' -> seconds; None when the text is not such a duration."""
    match = _DURATION.match(text.strip().lower())
    if not match or not any(match.groups()):
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return float(days * 86400 + hours * 3600 + minutes * 60 + seconds)


def quoted(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return str(value)


class Table:
    def __init__(self, data: Any, path: str, issues: list[ConfigIssue]) -> None:
        self.path = path
        self.issues = issues
        self.seen: set[str] = set()
        if isinstance(data, dict):
            self.data: dict[str, Any] = data
        else:
            self.data = {}
            self.problem("", f"must be a table, got {quoted(data)}")

    def key_path(self, key: str) -> str:
        if not key:
            return self.path
        return f"{self.path}.{key}" if self.path else key

    def problem(self, key: str, message: str) -> None:
        self.issues.append(ConfigIssue(self.key_path(key), message))

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        self.seen.add(key)
        return self.data.get(key)

    def string(self, key: str, default: str | None = None, *, required: bool = False, hint: str = "") -> str | None:
        value = self.raw(key)
        if value is None:
            if required:
                self.problem(key, f"is required{hint}")
            return default
        if not isinstance(value, str) or not value.strip():
            self.problem(key, f"must be a non-empty text in quotes, got {quoted(value)}")
            return default
        return value.strip()

    def whole(
        self, key: str, default: int, *, unit: str, minimum: int = 0, maximum: int | None = None, hint: str = ""
    ) -> int:
        """`hint`: appended to a too-small or too-large value's message, e.g. what the smallest value means."""
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"must be a whole number of {unit}, got {quoted(value)}")
            return default
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and at most {maximum}" if maximum is not None else ""
            self.problem(key, f"must be at least {minimum}{upper} {unit}, got {value}{hint}")
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(key, f"must be true or false (no quotes), got {quoted(value)}")
            return default
        return value

    def seconds(self, key: str, default: float, *, minimum: float, maximum: float, hint: str = "") -> float:
        """A number of seconds, or a duration text such as "30s", "5m", "1h"; `hint` ends its messages."""
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool):
            amount = None
        elif isinstance(value, int | float):
            amount = float(value)
        elif isinstance(value, str):
            amount = parse_duration(value)
        else:
            amount = None
        if amount is None:
            self.problem(key, f'must be a duration such as "30s", "5m" or "1h", got {quoted(value)}{hint}')
            return default
        if not minimum <= amount <= maximum:
            self.problem(
                key,
                f"must be between {human_seconds(minimum)} and {human_seconds(maximum)}, got {quoted(value)}{hint}",
            )
            return default
        return amount

    def optional_seconds(
        self, key: str, default: float, *, minimum: float, maximum: float, turns_off: str
    ) -> float | None:
        """Like seconds(), but `key = ""` turns `turns_off` off (None), and the messages say so."""
        if self.data.get(key) == "":
            self.seen.add(key)
            return None
        return self.seconds(key, default, minimum=minimum, maximum=maximum, hint=f' (or "" to turn {turns_off} off)')

    def choice(self, key: str, choices: Iterable[str], default: str) -> str:
        options = list(choices)
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, str) or value not in options:
            listed = ", ".join(f'"{o}"' for o in options)
            self.problem(key, f"must be one of {listed}, got {quoted(value)}{did_you_mean(value, options)}")
            return default
        return value

    def string_list(self, key: str) -> list[str]:
        value = self.raw(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(key, f'must be a list such as ["a", "b"], got {quoted(value)}')
            return []
        result: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.problem(f"{key}[{index}]", f"must be a non-empty text, got {quoted(item)}")
            else:
                result.append(item.strip())
        return result

    def secret(self, base: str, *, required: bool, why: str = "") -> SecretRef | None:
        """`<base>_env` or `<base>_file`: where a secret lives. Never the secret itself."""
        env = self.raw(f"{base}_env")
        file = self.raw(f"{base}_file")
        if base in self.data:
            self.seen.add(base)
            self.problem(
                base,
                f'secrets are never written in the config file; use {base}_env = "VARIABLE" '
                f'or {base}_file = "/path/to/file"',
            )
            return None
        for key, value in ((f"{base}_env", env), (f"{base}_file", file)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                self.problem(key, f"must be a non-empty text in quotes, got {quoted(value)}")
                return None
        if env and file:
            self.problem(f"{base}_env", f"set {base}_env or {base}_file, not both")
            return None
        if env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env):
                self.problem(f"{base}_env", f"must be an environment variable name, got {quoted(env)}")
                return None
            return SecretRef(self.key_path(f"{base}_env"), env=env)
        if file:
            return SecretRef(self.key_path(f"{base}_file"), file=file)
        if required:
            self.problem(f"{base}_env", f"is required{why} (or {base}_file)")
        return None

    def finish(self) -> None:
        for key in self.data:
            if key not in self.seen:
                self.problem(key, f"unknown key{did_you_mean(key, sorted(self.seen))}")


def did_you_mean(value: Any, options: list[str]) -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, options, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def human_seconds(value: float) -> str:
    """3600 -> '1h', 90 -> '90s': durations as the config file writes them."""
    if value >= 86400 and value % 86400 == 0:
        return f"{int(value // 86400)}d"
    if value >= 3600 and value % 3600 == 0:
        return f"{int(value // 3600)}h"
    if value >= 60 and value % 60 == 0:
        return f"{int(value // 60)}m"
    return f"{value:g}s"
