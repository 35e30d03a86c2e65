"""Log output that a request cannot forge, and log lines that a flood cannot multiply.

Every record is written as exactly one line: newlines, carriage returns and every other control
character (and the Unicode line separators and bidi overrides that terminals honour) in the
message, its arguments, an exception's text and a stack are written as visible escapes (`\\n`,
`\\x1b`, `\\u2028`). A request body, a header or an exception message quoting one can therefore
never start a line that looks like certops's own; a traceback reads back with `sed 's/\\\\n/\\n/g'`.

The line is logfmt (`LogfmtFormatter`), or one JSON object (`JSONFormatter`, `[bot] log_format =
"json"`), with the structured fields a log call passes in `extra={...}` (`FIELDS`: host, action,
outcome, seconds, incident...); one-shot commands write a plainer line for the person at the
terminal (`PlainFormatter`). Under journald the timestamp is left to the journal and the line
starts with its syslog priority (`<3>`), which journald reads as the entry's priority.

All of certops logs under one logger tree, `certops.*` (`logger(__name__)`; see `logger_name`).

`Throttle` turns a burst of identical refusals into one line a second per reason, with a count
of the lines it held back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # OneLineFormatter's, for callers of their own

# The structured fields a log line shows, from `extra={...}` on the log call, in this order. Any
# other extra is left out of the line: a field is a name operators can search and graph on, so
# the set is fixed here rather than grown by whatever a call site passes.
FIELDS = (
    "host",  # a [[hosts]] name: iis01
    "site",  # a [[sites]] name: www
    "action",  # a host action: repair-store, renew
    "incident",  # INC-0007
    "platform",  # slack, line, console
    "request",  # an approval request's id
    "attempt",  # which try this was: a delivery, a reconnect
    "status",  # an HTTP status answered by a chat platform or a host
    "outcome",  # how it ended, one word: done, failed, refused, delivered, retrying, timeout
    "seconds",  # how long it took
)

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


# syslog priorities, which journald reads from the start of a line (SyslogLevelPrefix=yes)
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


def priority(levelno: int) -> int:
    """The syslog priority of a logging level: CRITICAL 2, ERROR 3, WARNING 4, INFO 6, DEBUG 7."""
    return next((code for level, code in _PRIORITIES if levelno >= level), 7)


def fields(record: logging.LogRecord) -> dict[str, str | int | float | bool]:
    """The record's structured fields (the `FIELDS` it carries, None ones left out), as plain
    values: numbers and booleans stay themselves (a float not finite becomes text), anything
    else becomes its str()."""
    found: dict[str, str | int | float | bool] = {}
    for name in FIELDS:
        value = record.__dict__.get(name)
        if value is None:
            continue
        if isinstance(value, bool | int):
            found[name] = value
        elif isinstance(value, float):
            found[name] = round(value, 3) if math.isfinite(value) else str(value)
        else:
            found[name] = str(value)
    return found


def _quote_needed(text: str) -> bool:
    return not text or any(c in text for c in ' "=\\') or escape(text) != text


def logfmt_value(value: object) -> str:
    """`value` as a logfmt value: bare when it is one plain word, else in double quotes with `\\`
    and `"` escaped and every control character written as an escape, so it stays on the line and
    a reader can always tell where it ends."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    text = str(value)
    if not _quote_needed(text):
        return text
    return '"' + escape(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


class _StructuredFormatter(logging.Formatter):
    """The parts of a record the structured formats share. `journald`: no timestamp (the journal
    stamps each line itself) and a `<N>` syslog priority at the start of the line."""

    def __init__(self, journald: bool = False) -> None:
        super().__init__()
        self.journald = journald

    def timestamp(self, record: logging.LogRecord) -> str:
        at = dt.datetime.fromtimestamp(record.created, dt.UTC)
        return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"

    def parts(self, record: logging.LogRecord) -> dict[str, str | int | float | bool]:
        """ts (unless under journald), level, logger, msg, the fields, then error/traceback/stack."""
        out: dict[str, str | int | float | bool] = {}
        if not self.journald:
            out["ts"] = self.timestamp(record)
        out["level"] = record.levelname.lower()
        out["logger"] = record.name
        out["msg"] = record.getMessage()
        out.update(fields(record))
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            out["error"] = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            out["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["traceback"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return out

    def prefix(self, record: logging.LogRecord) -> str:
        return f"<{priority(record.levelno)}>" if self.journald else ""


class LogfmtFormatter(_StructuredFormatter):
    """`2026-12-02T06:00:04.123Z level=info logger=certops.outbox msg="card for INC-0007
    delivered to slack" incident=INC-0007 platform=slack seconds=0.21`: the UTC time in
    milliseconds, then key=value pairs; msg is always quoted, other values when they need it."""

    def format(self, record: logging.LogRecord) -> str:
        parts = self.parts(record)
        stamp = parts.pop("ts", None)
        pairs = [f"{key}={logfmt_value(value)}" for key, value in parts.items() if key != "msg"]
        msg = '"' + escape(str(parts["msg"]).replace("\\", "\\\\").replace('"', '\\"')) + '"'
        pairs.insert(2, f"msg={msg}")
        return self.prefix(record) + (f"{stamp} " if stamp else "") + " ".join(pairs)


class JSONFormatter(_StructuredFormatter):
    """One JSON object a line: {"ts", "level", "logger", "msg", the fields, "error",
    "traceback"}. ensure_ascii: every control character and non-ASCII letter is a \\u escape,
    so the object is one line whatever it holds."""

    def format(self, record: logging.LogRecord) -> str:
        return self.prefix(record) + json.dumps(self.parts(record), ensure_ascii=True)


class PlainFormatter(_StructuredFormatter):
    """For a person at a terminal (the one-shot commands): `WARNING certops.probe.engine: the
    message host=iis01`, no timestamp; the fields and any exception follow as logfmt pairs."""

    def format(self, record: logging.LogRecord) -> str:
        parts = self.parts(record)
        level, name, msg = parts.pop("level"), parts.pop("logger"), parts.pop("msg")
        parts.pop("ts", None)
        line = f"{str(level).upper()} {name}: {escape(str(msg))}"
        pairs = "".join(f" {key}={logfmt_value(value)}" for key, value in parts.items())
        return self.prefix(record) + line + pairs


def journal_stream(stream: TextIO) -> bool:
    """Whether `stream` is the journal: systemd sets JOURNAL_STREAM to "DEVICE:INODE" of the
    stream it connected a service's stdout/stderr to. A stream with a descriptor must be that very
    file (a wrapper that redirected stderr to a file or a pipe, or a child that inherited the
    variable, is not writing to the journal); one without (a test's buffer) goes by the variable."""
    value = os.environ.get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        device, inode = (int(part) for part in value.split(":"))
    except ValueError:
        return False
    try:
        stat = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # io.StringIO has no descriptor
        return True
    return (stat.st_dev, stat.st_ino) == (device, inode)


def formatter(fmt: str = "logfmt", journald: bool = False) -> logging.Formatter:
    """The formatter for `fmt`: "logfmt", "json" or "plain"."""
    kinds: dict[str, type[_StructuredFormatter]] = {
        "logfmt": LogfmtFormatter,
        "json": JSONFormatter,
        "plain": PlainFormatter,
    }
    if fmt not in kinds:
        raise ValueError(f'log format must be one of "logfmt", "json", "plain", got {fmt!r}')
    return kinds[fmt](journald=journald)


class _Handler(logging.StreamHandler[TextIO]):
    """The handler setup_logging installs: it knows it may replace its own."""


def logger_name(module: str) -> str:
    """The `certops.*` name for the logger of module `module` (its `__name__`):

    - `bot` -> `certops`, `bot.X` -> `certops.X` (`bot.web` -> `certops.web`, `bot.probe.engine` ->
      `certops.probe.engine`): the bot package is certops itself, so its prefix is dropped;
    - every other project package keeps its name under `certops.`: `commands.heal` ->
      `certops.commands.heal`, `host_actions.winrm_client` -> `certops.host_actions.winrm_client`;
    - a name already under `certops` is left as it is (`certops.web.refusals`).

    So one handler, level or filter on `certops` covers every line the project writes, and the
    libraries' own loggers (`slack_sdk`, `aiohttp`, `winrm`) stay outside the tree.
    """
    if module == "certops" or module.startswith("certops."):
        return module
    if module == "bot" or module.startswith("bot."):
        return "certops" + module[len("bot") :]
    return "certops." + module


def logger(module: str) -> logging.Logger:
    """The logger for module `module` in the `certops.*` tree: `log = logger(__name__)`."""
    return logging.getLogger(logger_name(module))


class WithFields(logging.Filter):
    """Gives every record of the logger it is added to these structured fields, unless the log
    call set them itself: `log.addFilter(WithFields(platform="slack"))` for a whole module."""

    def __init__(self, **fields: object) -> None:
        super().__init__()
        self.fields = fields

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in self.fields.items():
            if record.__dict__.get(name) is None:
                setattr(record, name, value)
        return True


def setup_logging(
    level: int | str = logging.WARNING,
    stream: TextIO | None = None,
    fmt: str = "logfmt",
    journald: bool | None = None,
) -> None:
    """The process's logging: one line per record on stderr (or `stream`), as `fmt` ("logfmt",
    "json", "plain"), without timestamps and with syslog priorities when the stream is the journal
    (`journald` None: see journal_stream). Called again, it replaces the handler it installed
    before (certops run switches to [bot] log_format once the config is read). Like
    logging.basicConfig, it leaves a root logger that has handlers of anyone else's alone."""
    root = logging.getLogger()
    if any(not isinstance(h, _Handler) for h in root.handlers):
        return
    out = stream or sys.stderr
    handler = _Handler(out)
    handler.setFormatter(formatter(fmt, journal_stream(out) if journald is None else journald))
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)


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
        # count, level, message, args, extra
        self._held: dict[str, tuple[int, int, str, tuple[object, ...], Mapping[str, object] | None]] = {}
        self._flushing: dict[str, asyncio.AbstractEventLoop] = {}  # key -> the loop its flush is due on

    def log(self, level: int, key: str, message: str, *args: object, extra: Mapping[str, object] | None = None) -> bool:
        """Logs `message % args` (with the structured fields `extra`) unless `key` went out less
        than `interval` ago; True if it did."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            count = self._held.get(key, (0,))[0]
            self._held[key] = (count + 1, level, message, args, extra)
            self._flush_later(key, last + self.interval - now)
            return False
        self._last[key] = now
        self.flush(key)
        self.logger.log(level, message, *args, extra=extra)
        return True

    def warning(self, key: str, message: str, *args: object, extra: Mapping[str, object] | None = None) -> bool:
        return self.log(logging.WARNING, key, message, *args, extra=extra)

    def held(self, key: str) -> int:
        """Lines held back for `key` and not yet counted in a line."""
        return self._held.get(key, (0,))[0]

    def flush(self, key: str) -> None:
        """Writes the count of lines held back for `key`, with the latest of them, if any."""
        self._flushing.pop(key, None)
        held = self._held.pop(key, None)
        if held is None:
            return
        count, level, message, args, extra = held
        self._last[key] = self.clock()
        self.logger.log(level, message + " (%d such lines held back in the last %g s; this is the latest)",
                        *args, count, self.interval, extra=extra)  # fmt: skip

    def _flush_later(self, key: str, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop to wake us: the next line that goes out carries the count
        if self._flushing.get(key) is loop:
            return  # already due (a flush due on a loop that has since ended is due again here)
        self._flushing[key] = loop
        loop.call_later(max(0.0, delay), self.flush, key)


__all__ = [
    "FIELDS",
    "FORMAT",
    "JSONFormatter",
    "LogfmtFormatter",
    "OneLineFormatter",
    "PlainFormatter",
    "Throttle",
    "WithFields",
    "escape",
    "fields",
    "formatter",
    "journal_stream",
    "logfmt_value",
    "logger",
    "logger_name",
    "priority",
    "setup_logging",
]
