"""A small typed reader over one TOML table that records problems instead of raising.

Each accessor returns a usable default when the value is wrong, so validation continues and
every problem in the file is reported in one go. `finish()` rejects the keys nobody asked for.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from typing import Any

from bot.config import files
from bot.config.errors import ConfigIssue, quoted
from bot.config.secrets import SecretRef

# at most 9 digits a part: no duration needs more, and int() of thousands of digits is refused or slow
_DURATION = re.compile(r"^(?:(\d{1,9})d)?(?:(\d{1,9})h)?(?:(\d{1,9})m)?(?:(\d{1,9})s)?$")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# what Slack, LINE, GitHub, GitLab, OpenAI, AWS and JWTs put in front of their secrets
_TOKEN_PREFIX = re.compile(r"^(xox[a-z]-|xapp-|ghp_|gho_|ghs_|github_pat_|glpat-|sk-|AKIA|eyJ|Bearer\s)", re.I)


def parse_duration(text: str) -> float | None:
    """'90s', '5m', '1h30m', '2d' -> seconds; None when the text is not such a duration."""
    match = _DURATION.match(text.strip().lower())
    if not match or not any(match.groups()):
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return float(days * 86400 + hours * 3600 + minutes * 60 + seconds)


def looks_like_a_token(value: str, *, file_name: bool = False) -> bool:
    """A secret pasted where the name of the variable or file that holds it belongs.

    Variable names are words (CERTOPS_SLACK_BOT_TOKEN); tokens are long runs of letters and
    digits with no word breaks, or carry a vendor's prefix. `file_name`: the value names a file,
    so one that exists, or has an extension ("iis01-password-2024.txt"), is taken as a name."""
    text = value.strip()
    if file_name and (("." in text and not _TOKEN_PREFIX.match(text)) or os.path.lexists(text)):
        return False
    if _TOKEN_PREFIX.match(text):
        return True
    if re.search(r"[\s/\\]", text):
        return False  # a path, or a sentence
    if text.isupper() and ENV_NAME.fullmatch(text):
        return False  # SLACKBOTTOKEN2024 is a shouting name; generated secrets mix cases or are hex
    letters_and_digits = bool(re.search(r"[A-Za-z]", text)) and bool(re.search(r"[0-9]", text))
    if len(text) >= 16 and letters_and_digits and "_" not in text:
        return True
    return len(text) >= 20 and bool(re.search(r"[+=:.-]", text)) and letters_and_digits


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
            self.problem(key, f"must be at least {minimum}{upper} {unit}, got {quoted(value)}{hint}")
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
        elif isinstance(value, int):
            # float() of a number with hundreds of digits overflows; anything this big is out of range
            amount = float(value) if abs(value) <= 10**15 else float("inf")
        elif isinstance(value, float):
            amount = value
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
        """`<base>_env` or `<base>_file`: where a secret lives. Never the secret itself, and no
        message ever shows what was written there if it could be the secret."""
        env_key, file_key = f"{base}_env", f"{base}_file"
        env = self.raw(env_key)
        file = self.raw(file_key)
        if base in self.data:
            self.seen.add(base)
            self.problem(
                base,
                f'secrets are never written in the config file; use {base}_env = "VARIABLE" '
                f'or {base}_file = "/path/to/file"',
            )
            return None
        for key, value in ((env_key, env), (file_key, file)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                self.problem(key, f"must be a non-empty text in quotes, got {quoted(value)}")
                return None
        if env and file:
            self.problem(env_key, f"set {env_key} or {file_key}, not both")
            return None
        if env:
            env = env.strip()
            if looks_like_a_token(env):
                self.problem(
                    env_key,
                    "this looks like a token; give the name of a variable that holds it, "
                    f'such as {env_key} = "CERTOPS_{base.upper()}" (the value is not shown here)',
                )
                return None
            if not ENV_NAME.fullmatch(env):
                self.problem(
                    env_key,
                    "must be the name of an environment variable: letters, digits and _, not starting "
                    f'with a digit, such as "CERTOPS_{base.upper()}" (what is written there is not shown, '
                    "in case it is the secret itself)",
                )
                return None
            return SecretRef(self.key_path(env_key), env=env)
        if file:
            file = file.strip()
            if looks_like_a_token(file, file_name=True):
                self.problem(
                    file_key,
                    "this looks like a token; give the path of a file that holds it, "
                    f'such as {file_key} = "/run/secrets/{base}" (the value is not shown here)',
                )
                return None
            # a file that does not exist yet is for check-config's secrets step; a pipe, a device
            # or a /proc file is never a secret file, on any machine
            problem = files.problem_with(file, cap=files.SECRET_CAP, what="a secret file", must_exist=False)
            if problem:
                self.problem(file_key, problem)
                return None
            return SecretRef(self.key_path(file_key), file=file)
        if required:
            self.problem(env_key, f"is required{why} (or {file_key})")
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
