"""The WinRM client against a host that answers slowly, endlessly, hugely or wrongly: every
action ends by its deadline with a named problem, whatever the host does."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from host_actions.errors import HostActionError
from host_actions.inventory import inventory
from host_actions.parsers import JSONRefused, load_json, parse_renewal
from host_actions.scripts import Part
from host_actions.target import Host
from host_actions.winrm_client import (
    CLEANUP_SECONDS,
    GRACE_SECONDS,
    HostSession,
    _output_lines,
    clixml_errors,
    run_in_thread,
)
from tests.fakes.hostile_winrm import HostileWinRM, Mode

PASSWORD_ENV = "CERTOPS_TEST_HOSTILE_PASSWORD"
MIB = 1024 * 1024

Hostile = Callable[..., tuple[HostileWinRM, Host]]


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hostile]:
    started: list[HostileWinRM] = []

    def factory(
        mode: Mode, *, timeout: float = 2.0, max_response_bytes: int = 16 * MIB, **options: object
    ) -> tuple[HostileWinRM, Host]:
        server = HostileWinRM(mode, limit=8.0, **options).start()  # type: ignore[arg-type]
        started.append(server)
        monkeypatch.setenv(PASSWORD_ENV, server.sim.password)
        return server, server.host_config(
            timeout=timeout, max_response_bytes=max_response_bytes, password_env=PASSWORD_ENV
        )

    yield factory
    for server in started:
        server.stop()


def failure(host: Host) -> tuple[HostActionError, float]:
    started = time.monotonic()
    with pytest.raises(HostActionError) as caught:
        inventory(host)
    return caught.value, time.monotonic() - started


# the most an action may take: its deadline, the watchdog's grace, and the cleanup allowance
def latest(host: Host) -> float:
    return host.timeout + max(GRACE_SECONDS, CLEANUP_SECONDS) + 0.5


def test_a_host_that_trickles_its_answer_is_stopped_at_the_deadline(hostile: Hostile) -> None:
    server, host = hostile("trickle", timeout=1.0, interval=0.1)
    error, seconds = failure(host)
    assert error.kind == "timeout"
    assert error.message == "iis-hostile: inventory did not finish within 1 s and was stopped."
    assert seconds < latest(host)
    assert 0 < server.sent < 200  # a few bytes of the status line, nowhere near a whole answer
    assert server.requests[-2:] == ["Signal", "Delete"]  # cleaned up on a fresh connection


def test_a_host_that_trickles_only_the_body_is_stopped_at_the_deadline(hostile: Hostile) -> None:
    server, host = hostile("slow_body", timeout=1.0, interval=0.1)
    error, seconds = failure(host)
    assert error.kind == "timeout"
    assert seconds < latest(host)
    assert server.requests[-2:] == ["Signal", "Delete"]


def test_a_host_that_trickles_every_answer_never_gets_a_shell_open(hostile: Hostile) -> None:
    server, host = hostile("trickle", target="*", timeout=1.0, interval=0.1)
    error, seconds = failure(host)
    assert error.kind == "timeout"
    assert seconds < latest(host)
    assert server.requests == ["Create"]  # no shell, so nothing to clean up


def test_an_endless_chunked_answer_is_refused_at_the_size_limit(hostile: Hostile) -> None:
    server, host = hostile("endless", max_response_bytes=MIB)
    error, _ = failure(host)
    assert error.kind == "too_large"
    assert error.message == (
        "iis-hostile: WinRM sent an answer larger than 1 MiB ([[hosts]] max_response_bytes) and it was refused; "
        "check the host, or raise the limit if such answers are expected."
    )
    assert server.requests[-2:] == ["Signal", "Delete"]


def test_a_huge_answer_that_declares_its_length_is_refused_before_it_is_read(hostile: Hostile) -> None:
    server, host = hostile("huge")
    error, _ = failure(host)
    assert error.kind == "too_large"
    assert "larger than 16 MiB" in error.message
    assert server.sent < 20 * MIB  # of 100 MB offered: what the socket buffers took before the client hung up


def test_a_huge_answer_without_a_length_is_refused_once_it_passes_the_limit(hostile: Hostile) -> None:
    _server, host = hostile("huge_chunked", size=8 * MIB, max_response_bytes=2 * MIB)
    error, _ = failure(host)
    assert error.kind == "too_large"
    assert "larger than 2 MiB" in error.message


def test_output_that_keeps_coming_over_many_receives_is_stopped_at_the_limit(hostile: Hostile) -> None:
    server, host = hostile("output_flood", size=256 * 1024, max_response_bytes=MIB, timeout=5.0)
    error, _ = failure(host)
    assert error.kind == "too_large"
    assert error.message == (
        "iis-hostile: inventory printed more than 1 MiB of output ([[hosts]] max_response_bytes) and was stopped."
    )
    assert server.count("Receive") == 5  # 4 x 256 KiB is the limit itself; the fifth passes it


def test_a_receive_that_answers_running_forever_is_polled_with_backoff(hostile: Hostile) -> None:
    server, host = hostile("running_forever", timeout=2.0)
    error, _ = failure(host)
    assert error.kind == "timeout"
    # 0.05 s doubling to 2 s: about 6 Receives in 2 s; a loop without backoff makes thousands
    assert 3 <= server.count("Receive") <= 12


def test_a_redirect_is_refused_and_nothing_reaches_its_target(hostile: Hostile) -> None:
    server, host = hostile("redirect")
    error, _ = failure(host)
    assert error.kind == "redirected"
    assert error.message == (
        "iis-hostile: WinRM answered with a redirect (HTTP 307), which certops does not follow; "
        "set [[hosts]] address to the WinRM listener itself."
    )
    assert server.decoy_hits == []  # the SOAP body and the credentials went nowhere else


def test_a_redirect_of_a_later_request_is_refused_too(hostile: Hostile) -> None:
    server, host = hostile("redirect", target="Receive")
    error, _ = failure(host)
    assert error.kind == "redirected"
    assert server.decoy_hits == []
    assert server.requests[-2:] == ["Signal", "Delete"]


def test_a_tls_address_answered_in_plain_http_is_a_tls_mismatch(hostile: Hostile) -> None:
    server, host = hostile("plain_http_on_tls")
    error, _ = failure(host)
    port = server.url.split(":")[2].split("/")[0]
    assert error.kind == "tls_mismatch"
    assert error.message == (
        f"iis-hostile: 127.0.0.1:{port} answered in plain HTTP, not TLS; check the address "
        "(https:// is usually port 5986, http:// port 5985)."
    )


def test_a_compressed_answer_is_refused(hostile: Hostile) -> None:
    _server, host = hostile("compressed")
    error, _ = failure(host)
    assert error.kind == "bad_output"
    assert error.message == "iis-hostile: WinRM sent a compressed answer, which certops does not accept."


def test_a_document_nested_50000_deep_is_refused_with_a_sentence(hostile: Hostile) -> None:
    _server, host = hostile("deep_json")
    error, _ = failure(host)
    assert error.kind == "bad_output"
    assert error.message == (
        "iis-hostile: a script printed a document that was not read: it is nested deeper than 64 levels."
    )


def test_a_document_of_600000_values_is_refused_before_it_is_built(hostile: Hostile) -> None:
    _server, host = hostile("wide_json")
    error, _ = failure(host)
    assert error.kind == "bad_output"
    assert error.message.endswith("was not read: it holds more than 500,000 values.")


def test_an_answer_with_nested_entities_is_bad_output(hostile: Hostile) -> None:
    _server, host = hostile("xml_bomb")
    error, _ = failure(host)
    assert error.kind == "bad_output"
    assert error.message == "iis-hostile: WinRM sent an answer that could not be read (it declares a DTD)."


def test_a_second_action_on_the_host_runs_while_the_first_is_stuck(hostile: Hostile) -> None:
    # only the first Receive trickles: the first inventory hangs on it, the second is answered
    server, host = hostile("trickle", times=1, timeout=2.0, interval=0.1)
    stuck = run_in_thread(inventory, host)
    waited = time.monotonic()
    while server.hostile == 0 and time.monotonic() - waited < 2:
        time.sleep(0.01)
    assert server.hostile == 1
    second = run_in_thread(inventory, host).result(timeout=latest(host))
    assert second.certificates
    assert not stuck.done()  # still held by the trickling answer, and no one waited for it
    with pytest.raises(HostActionError) as caught:
        stuck.result(timeout=latest(host))
    assert caught.value.kind == "timeout"


def test_the_watchdog_timer_is_gone_once_the_session_ends(hostile: Hostile) -> None:
    _server, host = hostile("running_forever", timeout=1.0)
    before = set(threading.enumerate())
    with pytest.raises(HostActionError), HostSession(host, "test") as session:
        session.run([Part("certs")])
    timers = [t for t in threading.enumerate() if t not in before and isinstance(t, threading.Timer)]
    for timer in timers:
        timer.join(timeout=1)  # a cancelled timer ends at once; one left armed would wait its time
    assert [t for t in timers if t.is_alive()] == []


# -- JSON from a host ---------------------------------------------------------------------


def test_json_nested_exactly_64_levels_is_read_and_65_is_refused() -> None:
    value = load_json("[" * 64 + "]" * 64)
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    assert depth == 64
    with pytest.raises(JSONRefused, match="nested deeper than 64 levels"):
        load_json(b"[" * 65 + b"]" * 65)


def test_json_nested_50000_deep_is_refused_without_a_recursion_error() -> None:
    with pytest.raises(JSONRefused, match="nested deeper than 64 levels"):
        load_json("{" + '"a":{' * 50_000 + "}" * 50_001)


def test_brackets_and_commas_inside_json_strings_are_data() -> None:
    text = '{"subject": "CN=' + "[" * 100 + '", "sans": ["' + "," * 600_000 + '"]}'
    assert load_json(text)["subject"] == "CN=" + "[" * 100


def test_a_renewal_file_nested_too_deep_is_reported_not_read() -> None:
    renewal = parse_renewal(r"C:\ProgramData\win-acme\x.renewal.json", "[" * 1000 + "]" * 1000, [])
    assert renewal.problem == "not read: it is nested deeper than 64 levels"


# -- answers that cost memory or requests out of proportion to their size ------------------------


def test_an_answer_of_290000_tiny_streams_is_read_without_building_its_tree(hostile: Hostile) -> None:
    # pywinrm's get_command_output_raw would build an element per stream: 190 MB above idle
    server, host = hostile("tiny_streams", timeout=5.0)
    error, seconds = failure(host)
    assert error.kind == "bad_output"
    assert error.message == "iis-hostile: expected results for 4 script(s), got 0."
    assert seconds < 4.0
    assert server.requests[-2:] == ["Signal", "Delete"]


def test_four_million_lines_of_other_output_are_passed_over(hostile: Hostile) -> None:
    _server, host = hostile("many_lines", timeout=5.0)
    error, seconds = failure(host)
    assert error.kind == "bad_output"
    assert error.message == "iis-hostile: expected results for 4 script(s), got 0."
    assert seconds < 3.0


def test_a_receive_that_always_carries_one_byte_is_still_polled_with_backoff(hostile: Hostile) -> None:
    server, host = hostile("tiny_output", timeout=3.0)
    error, _ = failure(host)
    assert error.kind == "timeout"
    # 0.05 s doubling to 2 s: 6 or 7 Receives in 3 s; resetting the pause on any output made 1,700
    assert 4 <= server.count("Receive") <= 10


def test_no_host_gets_more_than_20_receives_a_second(hostile: Hostile) -> None:
    # 8 KiB of output in every answer keeps the pause at its floor, and the floor holds
    server, host = hostile("output_flood", size=8 * 1024, timeout=1.5)
    error, _ = failure(host)
    assert error.kind == "timeout"
    assert 10 <= server.count("Receive") <= 1.5 * 20 + 1


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("attribute_bomb", "it holds a tag longer than 8 KiB"),
        ("deep_xml", "it is nested deeper than 32 levels"),
        ("fault_flood", "it holds more than 10,000 elements"),
    ],
)
def test_an_answer_shaped_to_cost_memory_is_refused_with_a_reason(hostile: Hostile, mode: Mode, why: str) -> None:
    server, host = hostile(mode)
    error, _ = failure(host)
    assert error.kind == "bad_output"
    assert error.message == f"iis-hostile: WinRM sent an answer that could not be read ({why})."
    assert server.requests[-2:] == ["Signal", "Delete"]


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("huge_header_line", "a status or header line longer than 64 KiB"),
        ("many_headers", "more than 100 headers"),
        ("cut_mid_chunk", "the connection closed in the middle of an answer"),
    ],
)
def test_broken_http_from_a_host_that_was_reached_is_named_as_such(hostile: Hostile, mode: Mode, why: str) -> None:
    server, host = hostile(mode)
    error, _ = failure(host)
    assert error.kind == "bad_output"
    assert error.message == f"iis-hostile: the host answered with broken HTTP ({why})."
    assert server.requests[-2:] == ["Signal", "Delete"]  # cleaned up on a fresh connection


def test_an_ntlm_host_that_sends_no_ntlm_challenge_is_an_auth_failure_without_a_traceback(
    hostile: Hostile, caplog: pytest.LogCaptureFixture
) -> None:
    server, host = hostile("no_ntlm_challenge")
    assert host.transport == "ntlm"
    with caplog.at_level(logging.DEBUG, logger="certops.host_actions"):
        error, _ = failure(host)
    assert error.kind == "auth_failed"
    assert error.message == (
        "iis-hostile: WinRM refused NTLM authentication: its HTTP 401 carried no NTLM challenge "
        "(is Negotiate/NTLM enabled for the WinRM service on the host?)."
    )
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    assert len(server.requests) <= 2  # the encryption handshake, refused; no retries


def test_only_lines_that_start_with_the_prefix_are_documents() -> None:
    stdout = b"".join(
        [
            b"noise CERTOPS bm90\r\n",  # the prefix inside another line
            b"  CERTOPS b25l  \r\n",  # leading and trailing blanks
            b"CERTOPS\r\n",  # the prefix without its space
            b"ab\n" * 100_000,
            b"\rCERTOPS dHdv\rCERTOPS dGhyZWU=",  # lone carriage returns end lines too
        ]
    )
    assert list(_output_lines(stdout, b"CERTOPS ")) == [b"CERTOPS b25l", b"CERTOPS dHdv", b"CERTOPS dGhyZWU="]
    assert list(_output_lines(bytearray(stdout), b"CERTOPS ")) == [
        b"CERTOPS b25l",
        b"CERTOPS dHdv",
        b"CERTOPS dGhyZWU=",
    ]


def test_stderr_of_megabytes_gives_a_short_message_quickly() -> None:
    started = time.monotonic()
    assert clixml_errors(b"a\n" * 4_000_000) == "a " * 149 + "a…"  # 300 characters
    # an unclosed <S> a million times: the old non-greedy pattern scanned to the end from each one
    assert clixml_errors(b"#< CLIXML\r\n" + b'<S S="Error">x' * 1_000_000) == ""
    clixml = b"#< CLIXML\r\n" + b'<S S="progress">p</S>' * 500_000 + b'<S S="Error">boom_x000D__x000A_</S>'
    assert clixml_errors(clixml) == "boom"
    assert time.monotonic() - started < 2.0
