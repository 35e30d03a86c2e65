"""The parameter contract of each script, read from its own param() block.

The simulator applies it as PowerShell would (ValidateSet, ValidatePattern, Mandatory, unknown
names), so a Python caller that passes something a script would reject fails in tests too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from host_actions.scripts import script_text


@dataclass(frozen=True)
class ParamSpec:
    name: str
    mandatory: bool
    pattern: str | None
    choices: tuple[str, ...] | None


@cache
def params_of(script: str) -> dict[str, ParamSpec]:
    text = script_text(script)
    block = re.search(r"^param\((.*?)^\)", text, re.S | re.M) or re.search(r"^param\((.*?)\)\s*$", text, re.M)
    if block is None:
        return {}
    specs = {}
    for decl in re.split(r",\s*\n", block.group(1)):
        name = _declared_name(decl)
        if name is None:
            continue
        pattern = re.search(r"ValidatePattern\('((?:[^']|'')*)'\)", decl)
        choices = re.search(r"ValidateSet\(([^)]*)\)", decl)
        spec = ParamSpec(
            name=name,
            mandatory="Mandatory = $true" in decl,
            pattern=pattern.group(1).replace("''", "'") if pattern else None,
            choices=tuple(re.findall(r"'([^']*)'", choices.group(1))) if choices else None,
        )
        specs[spec.name] = spec
    return specs


def _declared_name(decl: str) -> str | None:
    """The variable a declaration binds: what is left once strings, (...) and [...] are gone."""
    bare = re.sub(r"'(?:[^']|'')*'|\"[^\"]*\"", "", decl)
    for bracket in (r"\([^()]*\)", r"\[[^\[\]]*\]"):
        while re.search(bracket, bare):
            bare = re.sub(bracket, "", bare)
    match = re.search(r"\$(\w+)", bare)
    return match.group(1) if match else None


def check(script: str, params: Mapping[str, Any]) -> str | None:
    """PowerShell's parameter-binding error for these params, or None when they bind."""
    specs = params_of(script)
    for name in params:
        if name not in specs:
            return f"A parameter cannot be found that matches parameter name '{name}'."
    for spec in specs.values():
        if spec.name not in params:
            if spec.mandatory:
                return f"Missing an argument for parameter '{spec.name}'."
            continue
        value = params[spec.name]
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, bool):
                continue
            text = str(item)
            if spec.choices and text.lower() not in (c.lower() for c in spec.choices):
                return f"Cannot validate argument on parameter '{spec.name}'."
            # ValidatePattern matches case-insensitively, as PowerShell does
            if spec.pattern and not re.search(spec.pattern, text, re.I):
                return f"Cannot validate argument on parameter '{spec.name}'."
    return None
