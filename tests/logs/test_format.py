"""The log line: logfmt by default, one JSON object with [bot] log_format = "json", the
structured fields of the log call, every record on one line whatever it holds, and under
journald no timestamp but a syslog priority."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import pytest

from bot.logs import (
    JSONFormatter,
    LogfmtFormatter,
    PlainFormatter,
    Throttle,
    WithFields,
    journal_stream,
    logfmt_value,
    priority,
    setup_logging,
)
from tests.fakes.hostile_requests import FORGED_LINE
from tests.logs.logfmt import parse, unescape

HOSTILE = 'a "quoted" x=1\nlevel=error logger=certops.fake msg="forged"\r\x1b[31mred\x1b[0m\u2028end'
WHEN = 1796191204.123  # 2026-12-02T06:00:04.123Z


def record(
    msg: str = "card for %s delivered to %s",
    args: tuple[object, ...] = ("INC-0007", "slack"),
    level: int = logging.INFO,
    name: str = "certops.outbox",
    exc: BaseException | None = None,
    **extra: object,
) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    made = logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)
    made.created = WHEN
    made.__dict__.update(extra)
    return made


def raised(text: str) -> BaseException:
    try:
        raise ValueError(text)
    except ValueError as exc:
        return exc


# logfmt --------------------------------------------------------------------------------------


def test_logfmt_is_the_issue_s_line_with_the_fields_of_the_call() -> None:
    line = LogfmtFormatter().format(record(incident="INC-0007", platform="slack", seconds=0.2104, outcome="delivered"))
    assert line == (
        '2026-12-02T06:00:04.123Z level=info logger=certops.outbox msg="card for INC-0007 delivered to slack" '
        "incident=INC-0007 platform=slack outcome=delivered seconds=0.21"
    )


def test_logfmt_shows_every_known_field_in_a_fixed_order_and_ignores_unknown_extras() -> None:
    line = LogfmtFormatter().format(
        record(
            seconds=2.0,
            outcome="done",
            status=503,
            attempt=3,
            request="R-12",
            platform="line",
            incident="INC-0001",
            action="repair-store",
            site="www",
            host="iis01",
            round_trips=6,  # not a field: left out
            password="hunter2",  # nor this: extras are never dumped wholesale
            ok=True,
        )
    )
    pairs = parse(line)
    assert list(pairs)[:3] == ["level", "logger", "msg"]
    assert list(pairs)[3:-1] == [
        "host", "site", "action", "incident", "platform", "request", "attempt", "status", "outcome", "seconds",
    ]  # fmt: skip
    assert pairs["seconds"] == "2"
    assert pairs["attempt"] == "3"
    assert pairs["status"] == "503"
    assert "hunter2" not in line
    assert "round_trips" not in line
    assert "ok=" not in line


def test_logfmt_leaves_out_a_field_that_is_none_and_writes_booleans_and_odd_floats_as_words() -> None:
    pairs = parse(LogfmtFormatter().format(record(host=None, outcome=True, seconds=float("nan"))))
    assert "host" not in pairs
    assert pairs["outcome"] == "true"
    assert pairs["seconds"] == "nan"


def test_logfmt_quotes_and_escapes_a_field_with_spaces_quotes_equals_and_control_characters() -> None:
    line = LogfmtFormatter().format(record(host=HOSTILE, site="plain-word", action=""))
    assert "\n" not in line
    assert "\r" not in line
    assert "\x1b" not in line
    assert "\u2028" not in line
    pairs = parse(line)  # the forged "level=error" stayed inside the quoted value
    assert pairs["level"] == "info"
    assert pairs["logger"] == "certops.outbox"
    assert unescape(pairs["host"]) == HOSTILE
    assert pairs["site"] == "plain-word"  # bare: nothing in it needs quotes
    assert 'action=""' in line
    assert logfmt_value("C:\\certs") == '"C:\\\\certs"'  # a backslash is quoted, so an escape is never ambiguous


def test_logfmt_escapes_the_message_and_its_arguments() -> None:
    line = LogfmtFormatter().format(record("refused a request from %s", ("10.0.0.1" + FORGED_LINE + HOSTILE,)))
    assert line.count("\n") == 0
    pairs = parse(line)
    assert unescape(pairs["msg"]) == "refused a request from 10.0.0.1" + FORGED_LINE + HOSTILE
    assert set(pairs) == {"ts", "level", "logger", "msg"}


def test_an_exception_goes_in_error_and_traceback_fields_on_the_same_line() -> None:
    line = LogfmtFormatter().format(
        record("could not read %s", ("a timestamp",), logging.ERROR, exc=raised("9" + FORGED_LINE), host="iis01")
    )
    assert line.count("\n") == 0
    pairs = parse(line)
    assert pairs["msg"] == "could not read a timestamp"
    assert pairs["host"] == "iis01"
    assert unescape(pairs["error"]) == "ValueError: 9" + FORGED_LINE
    traceback = unescape(pairs["traceback"])
    assert traceback.startswith("Traceback (most recent call last):\n")
    assert traceback.endswith("ValueError: 9" + FORGED_LINE)
    assert [key for key in pairs if key != "ts"][-2:] == ["error", "traceback"]


def test_a_stack_goes_in_a_stack_field() -> None:
    made = record()
    made.stack_info = "Stack (most recent call last):\n  File x, line 1"
    pairs = parse(LogfmtFormatter().format(made))
    assert unescape(pairs["stack"]) == made.stack_info


# JSON ----------------------------------------------------------------------------------------


def test_json_is_one_object_a_line_with_ts_level_logger_msg_and_the_fields() -> None:
    line = JSONFormatter().format(record(incident="INC-0007", platform="slack", seconds=0.2104, attempt=2, junk="x"))
    assert json.loads(line) == {
        "ts": "2026-12-02T06:00:04.123Z",
        "level": "info",
        "logger": "certops.outbox",
        "msg": "card for INC-0007 delivered to slack",
        "incident": "INC-0007",
        "platform": "slack",
        "attempt": 2,
        "seconds": 0.21,
    }


def test_json_escapes_every_control_character_so_the_object_stays_on_one_line() -> None:
    line = JSONFormatter().format(
        record("body: %s", (HOSTILE,), logging.ERROR, exc=raised(FORGED_LINE), host=HOSTILE, seconds=float("inf"))
    )
    assert line.isascii()
    assert line.isprintable()
    doc = json.loads(line)
    assert doc["msg"] == "body: " + HOSTILE
    assert doc["host"] == HOSTILE
    assert doc["seconds"] == "inf"  # JSON has no infinity: text rather than an invalid document
    assert doc["error"] == "ValueError: " + FORGED_LINE
    assert doc["traceback"].startswith("Traceback (most recent call last):\n")


# journald ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "code"),
    [(logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4), (logging.ERROR, 3), (logging.CRITICAL, 2)],
)
def test_levels_map_to_syslog_priorities(level: int, code: int) -> None:
    assert priority(level) == code


def test_under_journald_there_is_no_timestamp_and_the_line_starts_with_its_priority() -> None:
    made = record(level=logging.WARNING, host="iis01")
    logfmt = LogfmtFormatter(journald=True).format(made)
    assert logfmt == '<4>level=warning logger=certops.outbox msg="card for INC-0007 delivered to slack" host=iis01'
    as_json = JSONFormatter(journald=True).format(made)
    assert as_json.startswith("<4>{")
    assert "ts" not in json.loads(as_json[3:])
    plain = PlainFormatter(journald=True).format(made)
    assert plain == "<4>WARNING certops.outbox: card for INC-0007 delivered to slack host=iis01"


@contextmanager
def fresh_root() -> Iterator[logging.Logger]:
    """The root logger without pytest's handlers (added for each phase of a test, so this runs
    inside the test), as a process starts; put back afterwards."""
    root = logging.getLogger()
    saved, saved_level = root.handlers[:], root.level
    for handler in saved:
        root.removeHandler(handler)
    try:
        yield root
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(saved_level)


def logged_through_setup(fmt: str, stream: TextIO | None = None) -> str:
    out: TextIO = stream if stream is not None else io.StringIO()
    setup_logging(logging.INFO, stream=out, fmt=fmt)
    logging.getLogger("certops.tests").warning("disk is %s", "full", extra={"host": "iis01"})
    logging.getLogger().handlers[0].flush()
    return out.getvalue() if isinstance(out, io.StringIO) else ""


def test_journal_stream_in_the_environment_removes_the_timestamp(monkeypatch: pytest.MonkeyPatch) -> None:
    with fresh_root():
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
        assert parse(logged_through_setup("logfmt").rstrip("\n"))["ts"]
        monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
        text = logged_through_setup("logfmt")
        as_json = logged_through_setup("json")
    assert text == '<4>level=warning logger=certops.tests msg="disk is full" host=iis01\n'
    assert as_json.startswith("<4>{")
    assert "ts" not in json.loads(as_json[3:])


def test_journal_stream_counts_only_for_the_file_it_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """systemd names the stream by device and inode: a stream that is another file (stderr
    redirected by a wrapper, a child that inherited the variable) keeps its timestamps."""
    journal, other = tmp_path / "journal", tmp_path / "other"
    with fresh_root(), journal.open("w") as to_journal, other.open("w") as to_other:
        stat = os.fstat(to_journal.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
        assert journal_stream(to_journal)
        assert not journal_stream(to_other)
        logged_through_setup("logfmt", to_journal)
        logged_through_setup("logfmt", to_other)
    assert journal.read_text() == '<4>level=warning logger=certops.tests msg="disk is full" host=iis01\n'
    assert parse(other.read_text().rstrip("\n"))["ts"]
    monkeypatch.setenv("JOURNAL_STREAM", "not numbers")
    assert not journal_stream(io.StringIO())


# setup ---------------------------------------------------------------------------------------


def test_setup_logging_switches_format_by_replacing_only_its_own_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    foreign = logging.StreamHandler(io.StringIO())
    with fresh_root() as root:
        setup_logging(logging.WARNING, stream=first, fmt="plain", journald=False)
        logging.getLogger("certops.tests").warning("one")
        setup_logging("INFO", stream=second, fmt="json", journald=False)  # certops run, once it read the config
        logging.getLogger("certops.tests").info("two")
        handlers, level = root.handlers[:], root.level
        root.addHandler(foreign)
        setup_logging(logging.DEBUG, stream=io.StringIO(), fmt="logfmt")  # someone else's handler: left alone
        kept, level_kept = foreign in root.handlers, root.level
        root.handlers.clear()
        with pytest.raises(ValueError, match="log format"):
            setup_logging(logging.INFO, fmt="xml")
    assert first.getvalue() == "WARNING certops.tests: one\n"
    assert json.loads(second.getvalue())["msg"] == "two"
    assert len(handlers) == 1
    assert level == logging.INFO
    assert kept
    assert level_kept == logging.INFO


def test_plain_is_level_logger_and_message_then_the_fields() -> None:
    line = PlainFormatter().format(record(level=logging.WARNING, exc=raised("bad\nthing"), host="iis 01"))
    assert line.startswith('WARNING certops.outbox: card for INC-0007 delivered to slack host="iis 01" error=')
    assert line.count("\n") == 0


# the fields' helpers -------------------------------------------------------------------------


def test_with_fields_gives_a_module_s_records_their_field_unless_the_call_set_it() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogfmtFormatter())
    log = logging.getLogger("certops.tests.with_fields")
    log.addHandler(handler)
    log.propagate = False
    log.addFilter(WithFields(platform="line"))
    try:
        log.warning("pushed")
        log.warning("pushed", extra={"platform": "console"})
    finally:
        log.removeHandler(handler)
        log.propagate = True
    assert [parse(line)["platform"] for line in stream.getvalue().splitlines()] == ["line", "console"]


def test_a_throttled_line_keeps_its_fields_and_so_does_the_count_of_held_back_ones() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogfmtFormatter())
    log = logging.getLogger("certops.tests.throttle")
    log.addHandler(handler)
    log.propagate = False
    now = [0.0]
    try:
        throttle = Throttle(log, interval=1.0, clock=lambda: now[0])
        for attempt in (1, 2, 3):
            throttle.warning("k", "refused (%d)", attempt, extra={"platform": "slack", "attempt": attempt})
        now[0] = 5.0
        throttle.warning("k", "refused (%d)", 4, extra={"platform": "slack", "attempt": 4})
    finally:
        log.removeHandler(handler)
        log.propagate = True
    lines = [parse(line) for line in stream.getvalue().splitlines()]
    assert [(line["attempt"], line["platform"]) for line in lines] == [("1", "slack"), ("3", "slack"), ("4", "slack")]
    assert lines[1]["msg"].startswith("refused (3) (2 such lines held back")
