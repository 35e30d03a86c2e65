"""A reader for certops's logfmt lines, strict enough to catch a line the formatter got wrong."""

from __future__ import annotations

import re

# an optional journald priority, an optional timestamp, then key=value pairs: a bare value
# holds no space, quote, = or backslash; a quoted one holds any character but an unescaped quote
LINE = re.compile(
    r"^(?:<(?P<priority>[0-7])>)?(?:(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) )?"
    r'(?P<pairs>[a-z_]+=(?:"(?:[^"\\]|\\.)*"|[^\s"=\\]+)(?: [a-z_]+=(?:"(?:[^"\\]|\\.)*"|[^\s"=\\]+))*)$'
)
PAIR = re.compile(r'([a-z_]+)=(?:"((?:[^"\\]|\\.)*)"|([^\s"=\\]+))')


def parse(line: str) -> dict[str, str]:
    """The line's pairs (quoted values with their escapes left as written), and "ts" and
    "priority" when it has them; AssertionError when it is not one logfmt record."""
    found = LINE.match(line)
    assert found, f"not a logfmt line: {line!r}"
    pairs: dict[str, str] = {}
    for pair in PAIR.finditer(found["pairs"]):
        key, quoted, bare = pair.group(1), pair.group(2), pair.group(3)
        pairs[key] = quoted if quoted is not None else bare
    for extra in ("ts", "priority"):
        if found[extra]:
            pairs[extra] = found[extra]
    return pairs


def unescape(value: str) -> str:
    """A quoted value as the text it stands for: \\n, \\t, \\r, \\xNN, \\uNNNN, \\" and \\\\."""
    named = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] in "xu":
            return chr(int(code[1:], 16))
        return named[code]

    return re.sub(r'\\(x[0-9a-f]{2}|u[0-9a-f]{4}|[nrt"\\])', one, value)
