"""Where a secret comes from: an environment variable, a file, or NAME_FILE naming a file.

A SecretRef never holds the secret itself, so printing or logging one is always safe. It is a
host_actions.target.Secret, and raises that package's SecretUnavailable, so the WinRM client can
catch it without importing bot.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bot.config import files
from host_actions.target import SecretUnavailable, checked_env_value

__all__ = ["SecretRef", "SecretUnavailable"]


@dataclass(frozen=True)
class SecretRef:
    key_path: str  # config path of the key that names it, for error messages
    env: str | None = None
    file: str | None = None

    def describe(self) -> str:
        if self.env:
            return f"environment variable {self.env} (or {self.env}_FILE)"
        return f"file {self.file}"

    def resolve(self) -> str:
        if self.env:
            value = checked_env_value(self.env, where=f"{self.key_path}: ")
            file_name = f"{self.env}_FILE"
            file_var = os.environ.get(file_name)
            if value and file_var:
                # the container convention: one or the other, never a guess at which one wins
                raise SecretUnavailable(
                    f"{self.key_path}: environment variables {self.env} and {file_name} are both set; "
                    f"unset one of them ({file_name} to use {self.env}, or {self.env} to read the file)"
                )
            if value:
                return value
            if file_var:
                return _read_secret_file(self.key_path, file_var, via=file_name)
            # set to "": a variable left blank, not a missing one
            if self.env in os.environ:
                raise SecretUnavailable(
                    f"{self.key_path}: environment variable {self.env} is set but empty "
                    f"(set it to the secret, or unset it and set {file_name} to a file that holds the secret)"
                )
            if file_name in os.environ:
                raise SecretUnavailable(
                    f"{self.key_path}: environment variable {file_name} is set but empty "
                    "(set it to the path of a file that holds the secret, or unset it)"
                )
            raise SecretUnavailable(
                f"{self.key_path}: environment variable {self.env} is not set "
                f"(set it, or set {self.env}_FILE to a file that holds the secret)"
            )
        assert self.file is not None
        return _read_secret_file(self.key_path, self.file)


def _read_secret_file(key_path: str, file_name: str, via: str = "") -> str:
    """`via`: the variable that named the file, when it was not the config."""
    named = f"{via} names a file that cannot be used: " if via else ""
    try:
        value = files.read_text(file_name, cap=files.SECRET_CAP, what="a secret file").strip()
    except files.FileRefused as exc:
        raise SecretUnavailable(f"{key_path}: {named}{exc}") from None
    if not value:
        raise SecretUnavailable(f"{key_path}: secret file {file_name} is empty; write the secret in it")
    return value
