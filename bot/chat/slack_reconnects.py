"""Slack Socket Mode reconnect storms as one log line per attempt.

While Slack (or the network to it) is away, slack_sdk's Socket Mode client logs several lines
for every reconnect attempt, from three loops at once: "Failed to connect (error: ...);
Retrying..." with a whole traceback, "Failed to check the current session (...) or reconnect to
the server", "Failed to receive or enqueue a message", "Failed to retrieve WSS URL", "Failed to
send a ping message", the sessions it abandons, and the Web API client's "A retry handler found"
for each apps.connections.open. `ReconnectStorm` is a logging filter on those loggers: each
attempt becomes one line of its own,

    slack socket mode: reconnecting (attempt 3): ClientConnectorError (ConnectionRefusedError)

on `certops.chat.slack.socket_mode` (fields platform=slack attempt=3 outcome=reconnecting; a
tight loop is held to one line a second by a Throttle), and every other line of the storm is
dropped, or kept at DEBUG when certops logs at DEBUG. The first message on a new connection
writes "slack socket mode: connected again after N failed attempts".

The lines are told by slack_sdk's message templates (slack_sdk 3.x, socket_mode/aiohttp and
async_client); a line the filter does not know passes unchanged. The summary names only error
types and Slack error codes, never the exception's text, which holds the wss:// URL and its
ticket.
"""

from __future__ import annotations

import logging
import re

from bot.logs import Throttle, logger

SUMMARY_LOG = logger("bot.chat.slack.socket_mode")
MIN_GAP = 1.0  # seconds between two attempt lines at the least (slack_sdk waits its ping interval, 10 s)

# slack_sdk's loggers the storm comes through: Bolt hands the socket-mode client its app's
# logger (bot.chat.slack.BOLT_LOG, given below by the adapter); slack_sdk's own names are used
# when a client gets none; the Web API client's for apps.connections.open's retries.
SDK_LOGGERS = (
    "slack_sdk.socket_mode",
    "slack_sdk.socket_mode.aiohttp",
    "slack_sdk.socket_mode.async_client",
    "slack_sdk.web.async_base_client",
)

# A line that is one reconnect attempt failing; the error type is in the record's exception or
# in the text.
_ATTEMPTS = (
    re.compile(r"^Failed to connect \(error: "),  # the connect loop, with exc_info
    re.compile(r"^Failed to check the current session \(.*\(error: (?P<error>\w+)", re.S),  # the monitor
    re.compile(r"^Failed to receive or enqueue a message: (?P<error>\w+)"),  # the receive loop
)
# A line that goes with an attempt: its detail is kept for the attempt's own line.
_DETAIL = re.compile(r"^Failed to retrieve WSS URL: ")
_SLACK_ERROR = re.compile(r"""['"]error['"]: ['"](?P<code>[a-z_]{1,60})['"]""")
# The rest of the storm.
_NOISE = (
    "Failed to send a ping message (",
    "The session (",
    "Received CLOSE event from ",
    "The old session (",
    "Failed to close the old session",
    "The aiohttp client session is closed",
    "The current session (",
    "Rate limited. Retrying in ",
)
_RETRY_HANDLER = "A retry handler found: "


class ReconnectStorm(logging.Filter):
    """The filter; `install()` on the loggers, `remove()` when the adapter stops, `connected()`
    when a message arrives on the socket."""

    def __init__(self, *loggers: logging.Logger, interval: float | None = None) -> None:
        super().__init__()
        self.loggers = [*loggers, *(logging.getLogger(name) for name in SDK_LOGGERS)]
        self.attempts = 0  # failed attempts since the socket last worked
        self.lines = Throttle(SUMMARY_LOG, interval=MIN_GAP if interval is None else interval)
        self._detail: str | None = None

    def install(self) -> None:
        for each in self.loggers:
            each.addFilter(self)

    def remove(self) -> None:
        for each in self.loggers:
            each.removeFilter(self)

    def connected(self) -> None:
        """The socket works (a message arrived on it): an outage that was logged is over."""
        if self.attempts:
            SUMMARY_LOG.warning(
                "slack socket mode: connected again after %d failed attempts",
                self.attempts,
                extra={"platform": "slack", "attempt": self.attempts + 1, "outcome": "connected"},
            )
            self.attempts = 0

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # not ours to judge
            return True
        for pattern in _ATTEMPTS:
            found = pattern.match(text)
            if found:
                self._attempt(record, found.groupdict().get("error"))
                return self._demote(record)
        if _DETAIL.match(text):
            code = _SLACK_ERROR.search(text)
            self._detail = code.group("code") if code else None
            return self._demote(record)
        if text.startswith(_NOISE) or (text.startswith(_RETRY_HANDLER) and "apps.connections.open" in text):
            return self._demote(record)
        return True

    def _attempt(self, record: logging.LogRecord, error: str | None) -> None:
        self.attempts += 1
        cause = error or "an error"
        if record.exc_info and record.exc_info[1] is not None:
            cause = _describe(record.exc_info[1])
        if self._detail:
            cause += f" {self._detail}"
            self._detail = None
        self.lines.warning(
            "reconnecting",
            "slack socket mode: reconnecting (attempt %d): %s",
            self.attempts,
            cause,
            extra={"platform": "slack", "attempt": self.attempts, "outcome": "reconnecting"},
        )

    def _demote(self, record: logging.LogRecord) -> bool:
        """The SDK's own line: kept at DEBUG when certops logs at DEBUG, dropped otherwise."""
        if not SUMMARY_LOG.isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def _describe(exc: BaseException) -> str:
    """`ClientConnectorError (ConnectionRefusedError)`: the exception's type, and the innermost
    cause's type when it is another (aiohttp's os_error, or the __cause__ chain)."""
    name = type(exc).__name__
    inner: BaseException | None = exc
    seen = 0
    while inner is not None and seen < 10:
        nested = getattr(inner, "os_error", None)
        following = nested if isinstance(nested, BaseException) else inner.__cause__
        if following is None:
            break
        inner, seen = following, seen + 1
    if inner is not None and inner is not exc and type(inner).__name__ != name:
        return f"{name} ({type(inner).__name__})"
    return name
