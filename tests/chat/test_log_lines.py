"""The log is one line per record whatever a request put into it, and a flood of refusals is one
line a second per reason with a count of the rest."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Iterator

import pytest

from bot.logs import OneLineFormatter, Throttle, escape, setup_logging
from tests.fakes.hostile_requests import FORGED_LINE

RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ")


@pytest.fixture
def log_text() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing through certops's formatter into a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("tests.log_lines")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_a_newline_in_a_logged_value_cannot_start_a_line_of_its_own(
    log_text: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = log_text
    logger.warning("refused a request from %s", "10.0.0.1" + FORGED_LINE)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert RECORD_START.match(lines[0])
    assert "\\n2025-01-01 00:00:00,000 WARNING bot.chat.slack: approved" in lines[0]


def test_control_characters_line_separators_and_bidi_overrides_are_written_as_escapes() -> None:
    assert escape("a\rb\x1b[31mc\x00d\x7fe\x85f\u2028g\u2029h\u202ei\tj") == (
        "a\\rb\\x1b[31mc\\x00d\\x7fe\\x85f\\u2028g\\u2029h\\u202ei\\tj"
    )
    assert escape("plain ASCII, é, 日本語, C:\\certs") == "plain ASCII, é, 日本語, C:\\certs"


def test_an_exception_whose_message_carries_a_forged_line_still_logs_as_one_line(
    log_text: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = log_text
    try:
        int("9" + FORGED_LINE)
    except ValueError:
        logger.exception("could not read a timestamp")
    text = stream.getvalue()
    assert text.count("\n") == 1  # the record's own end of line, nothing else
    assert "Traceback (most recent call last):\\n" in text
    assert "could not read a timestamp" in text


def test_setup_logging_installs_the_one_line_formatter_on_a_fresh_root_logger() -> None:
    root = logging.getLogger()
    saved, saved_level = root.handlers[:], root.level
    for handler in saved:
        root.removeHandler(handler)
    stream = io.StringIO()
    try:
        setup_logging(logging.INFO, stream=stream)
        logging.getLogger("tests.log_lines.setup").info("body: %s", "x\r\ny")
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(saved_level)
    assert stream.getvalue().endswith('logger=tests.log_lines.setup msg="body: x\\r\\ny"\n')  # logfmt by default


def test_a_burst_of_one_refusal_is_one_line_then_one_line_with_the_count(
    log_text: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = log_text

    async def burst() -> None:
        throttle = Throttle(logger, interval=0.2)
        sent = [throttle.warning("wrong signature", "refused POST /x from %s: wrong signature", "1.2.3.4")
                for _ in range(500)]  # fmt: skip
        assert sent.count(True) == 1
        assert throttle.held("wrong signature") == 499
        throttle.warning("no signature", "refused POST /x from %s: no signature", "1.2.3.4")  # another key
        await asyncio.sleep(0.5)  # the held count goes out when the interval ends
        assert throttle.held("wrong signature") == 0

    asyncio.run(burst())
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].endswith("refused POST /x from 1.2.3.4: wrong signature")
    assert lines[1].endswith("refused POST /x from 1.2.3.4: no signature")
    assert lines[2].endswith("wrong signature (499 such lines held back in the last 0.2 s; this is the latest)")


def test_without_an_event_loop_the_next_line_carries_the_held_count(
    log_text: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = log_text
    now = [0.0]
    throttle = Throttle(logger, interval=1.0, clock=lambda: now[0])
    for _ in range(3):
        throttle.warning("k", "refused")
    now[0] = 5.0
    throttle.warning("k", "refused")
    lines = stream.getvalue().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        "refused",
        "refused (2 such lines held back in the last 1 s; this is the latest)",
        "refused",
    ]
