"""Nothing typed at the console ends the bot: odd button numbers, huge lines, bytes that are not
UTF-8, control characters and an unfinished last line each get a short answer (or none), and
the next command is read as usual. Input arrives through a real pipe, as from a terminal."""

from __future__ import annotations

import asyncio
import io
import os
import re
import threading
from pathlib import Path

import pytest

from bot.chat.console import LINE_LIMIT, ConsoleAdapter
from tests.fakes.bot import make_core, site_config
from tests.fakes.tls import Lab

NO_BUTTON = "the numbers are in [brackets] on the cards (type: press N)."
HELP_TITLE = "ℹ certops commands"


def run_console(lab: Lab, tmp_path: Path, data: bytes) -> str:
    """Everything the console printed while reading `data`, then end of input."""

    async def scenario() -> str:
        core = make_core(site_config(lab, 1, 1), tmp_path)
        read_end, write_end = os.pipe()

        def feed() -> None:
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(data)

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        out = io.StringIO()
        with io.TextIOWrapper(os.fdopen(read_end, "rb"), encoding="utf-8") as stdin:
            console = ConsoleAdapter(core, user="tester", stdin=stdin, stdout=out)
            try:
                await asyncio.wait_for(console.run(), 20)
            finally:
                core.store.close()
        writer.join(2)
        return out.getvalue()

    return asyncio.run(scenario())


def answers(printed: str) -> list[str]:
    """The first line printed after each prompt."""
    chunks = re.split(r"(?:^|\n)> ", printed)[1:]
    # a blank line is answered by the next prompt alone: "> > ⚠ …"
    return [line for chunk in chunks if (line := re.sub(r"^(> )+", "", chunk.split("\n", 1)[0]))]


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("press ²", "²"),
        ("press ١", "١"),  # an Arabic-Indic one: a digit to str.isdigit(), not a button number
        ("press 9" + "9" * 4000, "9" * 40),
        ("press -1", "-1"),
        ("press 1 2", "1 2"),
        ("press", "?"),
    ],
    ids=["superscript two", "arabic-indic one", "4001 digits", "negative", "two numbers", "no number"],
)
def test_press_with_no_such_button_is_answered_and_the_next_command_runs(
    lab: Lab, tmp_path: Path, typed: str, shown: str
) -> None:
    printed = run_console(lab, tmp_path, f"{typed}\nhelp\n".encode())
    assert answers(printed)[:2] == [f"No button {shown}; {NO_BUTTON}", HELP_TITLE]


def test_a_line_longer_than_the_limit_is_refused_whole_and_the_next_line_is_read(lab: Lab, tmp_path: Path) -> None:
    printed = run_console(lab, tmp_path, b"press " + b"9" * 1_000_000 + b"\nhelp\n")
    assert answers(printed)[:2] == [
        f"That line is longer than {LINE_LIMIT:,} characters; commands are short. Type /ssl help.",
        HELP_TITLE,
    ]
    assert max(len(line) for line in printed.splitlines()) < 200


def test_a_huge_last_line_without_a_newline_is_refused_and_the_console_ends_cleanly(lab: Lab, tmp_path: Path) -> None:
    printed = run_console(lab, tmp_path, b"status\n" + b"y" * 100_000)
    assert (
        answers(printed)[-1]
        == f"That line is longer than {LINE_LIMIT:,} characters; commands are short. Type /ssl help."
    )


def test_bytes_that_are_not_utf8_are_answered_and_the_console_keeps_reading(lab: Lab, tmp_path: Path) -> None:
    printed = run_console(lab, tmp_path, b"caf\xe9 \xff\xfe\nhelp\n")
    assert answers(printed)[:2] == ["⚠ There is no /ssl caf\ufffd. Try /ssl help.", HELP_TITLE]


def test_control_characters_typed_never_reach_the_terminal(lab: Lab, tmp_path: Path) -> None:
    printed = run_console(lab, tmp_path, b"\x1b[2J\x1b]0;owned\x07frob\x00nicate\nsta\x08tus\n")
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", printed)
    assert answers(printed)[0].startswith("⚠ There is no /ssl [2J]0;ownedfrobnicate.")
    assert answers(printed)[1] == "⚠ TLS status: 1 site, 1 unknown"


def test_an_unfinished_last_line_is_run_and_then_the_console_ends(lab: Lab, tmp_path: Path) -> None:
    printed = run_console(lab, tmp_path, b"help")
    assert answers(printed) == [HELP_TITLE]


def test_blank_lines_and_unknown_words_get_a_short_answer_or_none(lab: Lab, tmp_path: Path) -> None:
    printed = run_console(lab, tmp_path, b"\n   \t \nfrobnicate\n/ssl\nQUIT\nhelp\n")
    assert answers(printed) == [
        "⚠ There is no /ssl frobnicate. Try /ssl help.",
        HELP_TITLE,  # /ssl alone is /ssl help
    ]  # QUIT ends the console: the help after it is never read
