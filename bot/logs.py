"""Log output that a request cannot forge, and log lines that a flood cannot multiply.

Every record is written as exactly one line: newlines, carriage returns and every other control
character (and the Unicode line separators and bidi overrides that terminals honour) in the
message, its arguments, an exception's text and a stack are written as visible escapes (`\\n`,
`\\x1b`, `\\u2028`). A request body, a header or an exception message quoting one can therefore
never start a line that looks like certops's own; a traceback reads back with `sed 's/\\\\n/\\n/g'`.

`Throttle` turns a burst of identical refusals into one line a second per reason, with a count
of the lines it held back.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in [*range(0x00, 0x20), *range(0x7F, 0xA0)]:  # C0, DEL and C1 (NEL among them)
        table[code] = _NAMED.get(chr(code), f"\\x{code:02x}")
    # line and paragraph separators, and the bidi controls that reorder what a terminal shows
    for code in [0x2028, 0x2029, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]:
        table[code] = f"\\u{code:04x}"
    return table


_ESCAPES = _escape_table()


def escape(text: str) -> str:
    """`text` with every control character written as a visible escape: one line, whatever it held."""
    return text.translate(_ESCAPES)


class OneLineFormatter(logging.Formatter):
    """Formats as usual, then escapes the whole record (exception and stack text included), so a
    record is always one line."""

    def format(self, record: logging.LogRecord) -> str:
        return escape(super().format(record))


def setup_logging(level: int = logging.WARNING, stream: TextIO | None = None) -> None:
    """The process's logging: one escaped line per record on stderr (or `stream`). Like
    logging.basicConfig, it leaves a root logger that already has handlers alone."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(OneLineFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])


class Throttle:
    """At most one line per `interval` seconds for each key. Lines held back are not lost: when
    the interval ends, one more line gives the latest of them with the count (on the running
    event loop; without one, the next line that goes out carries the count). Keys are a fixed set
    chosen by the caller (a reason, never a value from a request), so the table stays small."""

    def __init__(
        self, logger: logging.Logger, interval: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, tuple[int, int, str, tuple[object, ...]]] = {}  # count, level, message, args
        self._flushing: dict[str, asyncio.AbstractEventLoop] = {}  # key -> the loop its flush is due on

    def log(self, level: int, key: str, message: str, *args: object) -> bool:
        """Logs `message % args` unless `key` went out less than `interval` ago; True if it did."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            count = self._held.get(key, (0,))[0]
            self._held[key] = (count + 1, level, message, args)
            self._flush_later(key, last + self.interval - now)
            return False
        self._last[key] = now
        self.flush(key)
        self.logger.log(level, message, *args)
        return True

    def warning(self, key: str, message: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, message, *args)

    def held(self, key: str) -> int:
        """Lines held back for `key` and not yet counted in a line."""
        return self._held.get(key, (0,))[0]

    def flush(self, key: str) -> None:
        """Writes the count of lines held back for `key`, with the latest of them, if any."""
        self._flushing.pop(key, None)
        held = self._held.pop(key, None)
        if held is None:
            return
        count, level, message, args = held
        self._last[key] = self.clock()
        self.logger.log(level, message + " (%d such lines held back in the last %g s; this is the latest)",
                        *args, count, self.interval)  # fmt: skip

    def _flush_later(self, key: str, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop to wake us: the next line that goes out carries the count
        if self._flushing.get(key) is loop:
            return  # already due (a flush due on a loop that has since ended is due again here)
        self._flushing[key] = loop
        loop.call_later(max(0.0, delay), self.flush, key)


__all__ = ["FORMAT", "OneLineFormatter", "Throttle", "escape", "setup_logging"]
