"""Text that came from a server (certificate names, headers, a status line) made safe to print.

A certificate's subject or a Location header can hold anything: ANSI escapes that clear a
terminal or recolour a line, a newline that forges a second result line, a right-to-left
override that reverses a name. Every such character is shown as a Python escape instead, so
what the operator reads is what the server sent, on one line, and JSON still carries a string.
And a thumbprint as every part of certops shortens it.
"""

from __future__ import annotations


def printable(text: str, limit: int | None = None) -> str:
    """`text` with every non-printing character (C0/C1 controls, DEL, format and separator
    characters such as U+202E or U+2028) as `\\x1b`, `\\u202e`...; cut to `limit` characters."""
    if limit is not None and len(text) > limit:
        text = text[:limit]
        cut = True
    else:
        cut = False
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else _escape(ch) for ch in text)
    return f"{text}…" if cut else text


def from_wire(data: bytes, limit: int = 80) -> str:
    """Bytes off the wire for a message: UTF-8 where it is UTF-8, `\\xff` where it is not."""
    cut = len(data) > limit
    shown = printable(data[:limit].decode("utf-8", "backslashreplace"))
    return f"{shown}…" if cut else shown


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def short_thumbprint(thumbprint: str) -> str:
    """A thumbprint where no one compares it (a card's summary line): the first and last four
    characters. Where a person may compare it with IIS Manager or the certificates console (a
    finding, an action's result), it is shown in full, 40 hex characters."""
    return f"{thumbprint[:4]}…{thumbprint[-4:]}" if len(thumbprint) > 8 else thumbprint
