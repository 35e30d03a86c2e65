"""Hostile targets: every way a server can misbehave ends as a named problem of the target,
never as certops's own failure (probe_error, status unknown), and ends early where a server
could otherwise keep the probe busy until its timeout."""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import json
import re
import socket
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import bot.probe
from bot.probe import PROBLEM_CODES, ProbeResult, ProbeTarget, Severity, StaticResolver, Status, probe
from bot.probe.certinfo import UnreadableCertificate, inspect_certificate
from bot.probe.failures import describe_connect_error
from bot.probe.report import render_line
from bot.probe.text import printable
from bot.testbed.pki import MiniCA
from tests.fakes.hostile_targets import (
    CONNECTION_SECONDS,
    HOST,
    HostileServers,
    Target,
    endless,
    endless_hello_requests,
    leaf_with,
    stalling,
)
from tests.probe.helpers import probe_hostile

OTHER = "other.example.test"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def probe_of(servers: HostileServers, target: Target, **overrides: object) -> ProbeResult:
    return probe_hostile(servers, target.port, **overrides)


def codes(result: ProbeResult) -> list[str]:
    return [p.code for p in result.problems]


def redirect(location: str, status: int = 302) -> bytes:
    return f"HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode("latin-1")


# --- malformed HTTP: http_error with a sentence ---------------------------------------------

CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
MALFORMED = [
    # Latin-1 superscripts are single bytes that str.isdigit accepts and int() refuses
    ("superscript digits in the status code", b"HTTP/1.1 2\xb900 OK\r\n\r\n", "three ASCII digits"),
    ("UTF-8 superscript digits in the status code", "HTTP/1.1 2\u00b900 OK\r\n\r\n".encode(), "three ASCII digits"),
    ("a 5,000-digit status code", b"HTTP/1.1 " + b"2" * 5000 + b" OK\r\n\r\n", "three ASCII digits"),
    ("a status code outside 100-599", b"HTTP/1.1 999 Odd\r\n\r\n", "outside 100-599"),
    ("not HTTP at all", b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP answer"),
    ("superscript digits in Content-Length", b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nok", "not a number"),
    ("UTF-8 superscript digits in Content-Length",
     "HTTP/1.1 200 OK\r\nContent-Length: \u00b2\r\n\r\nok".encode(), "not a number"),
    ("a 5,000-digit Content-Length", b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
     "not a number"),
    ("conflicting Content-Length headers", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
     "conflicting"),
    ("a chunk size of -1", CHUNKED + b"-1\r\nok\r\n0\r\n\r\n", "not hexadecimal"),
    ("a chunk size with an underscore", CHUNKED + b"1_0\r\n", "not hexadecimal"),
    ("a 100 KB chunk-size line", CHUNKED + b"1" * 100_000 + b"\r\n", "longer than 1024"),
    ("a chunk longer than its size", CHUNKED + b"1\r\nok\r\n0\r\n\r\n", "longer than its size"),
    ("a header line without a colon", b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line"),
    ("a header name with a space", b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "malformed header line"),
    ("a NUL in a header value", b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n", "control character"),
    ("300 header fields", b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 300 + b"\r\n", "more than 256 header fields"),
    ("a 101 nobody asked for", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", "switched protocols"),
    ("a close in the middle of the head", b"HTTP/1.1 200 OK\r\nContent-", "in the middle of its answer"),
    ("a body shorter than its Content-Length", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nok",
     "in the middle of its answer (after 2 of the 100 bytes"),
    ("a chunked body cut before its last chunk", CHUNKED + b"2\r\nok\r\n", "in the middle of its answer"),
    ("a chunked body cut inside a chunk", CHUNKED + b"9\r\nok", "in the middle of its answer"),
    ("a NUL in a folded header line", b"HTTP/1.1 200 OK\r\nX-A: a\r\n \x00b\r\n\r\nok", "control character"),
    ("a CR in a folded header line", b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\rc\r\n\r\nok", "control character"),
    ("a close before any answer", b"", "without answering"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "sentence"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_a_malformed_answer_is_http_error_with_a_sentence(hostile: HostileServers, raw: bytes, sentence: str) -> None:
    result = probe_of(hostile, hostile.http(raw), keyword="ok")
    assert codes(result) == ["http_error"]
    assert sentence in result.problems[0].message
    assert result.status is Status.CRITICAL
    assert result.certificate is not None  # the handshake worked: what was served is still known


def test_an_endless_stream_of_1xx_answers_is_cut_after_ten(hostile: HostileServers) -> None:
    result = probe_of(hostile, hostile.http(endless(b"HTTP/1.1 100 Continue\r\n\r\n")), timeout=5.0)
    assert codes(result) == ["http_error"]  # not http_timeout: it stopped long before the timeout
    assert "more than 10 interim (1xx) answers" in result.problems[0].message


def test_a_few_early_hints_before_the_answer_are_fine(hostile: HostileServers) -> None:
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" * 10
    result = probe_of(hostile, hostile.http(hints + OK), keyword="ok")
    assert codes(result) == []


def test_an_endless_header_is_cut_at_64_kib(hostile: HostileServers) -> None:
    result = probe_of(hostile, hostile.http(endless(b"a", first=b"HTTP/1.1 200 OK\r\nX-Long: ")), timeout=5.0)
    assert codes(result) == ["http_error"]
    assert "larger than 64 KiB" in result.problems[0].message


def test_a_chunk_size_with_leading_zeros_is_read_as_its_value(hostile: HostileServers) -> None:
    answer = CHUNKED + b"00000000000000002\r\nok\r\n0000000000000000000\r\n\r\n"
    assert codes(probe_of(hostile, hostile.http(answer), keyword="ok")) == []


def test_an_endless_stream_of_one_byte_chunks_is_cut_by_counting_its_chunks(hostile: HostileServers) -> None:
    target = hostile.http(endless(b"1\r\na\r\n", first=CHUNKED))
    timeout = CONNECTION_SECONDS - 1  # the probe's timeout comes before the server's own end
    result = probe_of(hostile, target, keyword="zz", timeout=timeout)
    assert codes(result) == ["http_error"]  # not http_timeout: it stopped at a count, not a clock
    assert "more than 100,000 chunks" in result.problems[0].message


def test_an_answer_that_stops_arriving_midway_is_said_to_have_begun(hostile: HostileServers) -> None:
    target = hostile.http(stalling(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nok"))
    result = probe_of(hostile, target, keyword="ok", timeout=1.0)
    assert codes(result) == ["http_timeout"]
    assert "the answer began to arrive but did not finish within 1 s" in result.problems[0].message


def test_an_answer_that_never_begins_is_no_http_answer(hostile: HostileServers) -> None:
    result = probe_of(hostile, hostile.http(stalling(b"")), timeout=1.0)
    assert codes(result) == ["http_timeout"]
    assert "no HTTP answer within 1 s" in result.problems[0].message


def test_an_endless_body_is_read_up_to_its_cap_and_then_judged(hostile: HostileServers) -> None:
    result = probe_of(hostile, hostile.http(endless(b"x", first=b"HTTP/1.1 200 OK\r\n\r\n")), keyword="ok", timeout=5.0)
    assert codes(result) == ["keyword_missing"]  # not http_timeout: reading stopped at MAX_BODY


@pytest.mark.parametrize("age", [b"\xb9", "\u00b9".encode(), b"9" * 5000], ids=["latin-1", "utf-8", "5000 digits"])
def test_an_age_that_is_not_ascii_digits_claims_no_cache_hit(hostile: HostileServers, age: bytes) -> None:
    result = probe_of(hostile, hostile.http(b"HTTP/1.1 200 OK\r\nAge: " + age + b"\r\nContent-Length: 0\r\n\r\n"))
    assert codes(result) == []
    assert result.http is not None
    assert "age" in result.http.cache


def test_a_status_line_with_terminal_escapes_is_shown_escaped(hostile: HostileServers) -> None:
    result = probe_of(hostile, hostile.http(b"\x1b[2J\x1b]0;owned\x07 HTTP/1.1 200 OK\r\n\r\n"))
    assert codes(result) == ["http_error"]
    message = result.problems[0].message
    assert "\x1b" not in message
    assert "\\x1b[2J" in message


# --- TLS that never ends -------------------------------------------------------------------


def test_an_endless_stream_of_session_tickets_is_cut_early(hostile: HostileServers) -> None:
    result = probe_of(hostile, hostile.ticket_flood(), timeout=5.0)
    assert codes(result) == ["tls_protocol_error"]  # not http_timeout: it stopped long before
    assert "carrying no HTTP data" in result.problems[0].message
    assert result.certificate is not None


def test_an_endless_stream_of_handshake_records_is_cut_early(hostile: HostileServers) -> None:
    result = probe_of(hostile, hostile.raw(endless_hello_requests), timeout=5.0)
    assert codes(result) == ["tls_protocol_error"]  # not tls_handshake_timeout
    assert "without completing the TLS handshake" in result.problems[0].message


# --- certificates with hostile text ----------------------------------------------------------


def dated(servers: HostileServers, not_before: str, not_after: str) -> Target:
    """A server whose certificate has these dates, written as GeneralizedTime (YYYYMMDDHHMMSSZ)
    even before 1950, which no certificate library writes: each is set from 2050 on and then
    replaced by its bytes."""
    stand_in = {
        "not_before": dt.datetime(2050, 1, 1, tzinfo=dt.UTC),
        "not_after": dt.datetime(2098, 1, 1, tzinfo=dt.UTC),
    }
    replace = {
        b"20500101000000Z": not_before.encode(),
        b"20980101000000Z": not_after.encode(),
    }
    leaf = leaf_with(servers.ca, common_name=HOST, dns_names=(HOST,), replace=replace, **stand_in)
    return servers.http(OK, leaf=leaf)


@pytest.mark.parametrize("not_after", ["00510101000000Z", "09991231235959Z"], ids=["year 51", "year 999"])
def test_a_certificate_that_expired_before_year_1000_is_cert_expired(hostile: HostileServers, not_after: str) -> None:
    result = probe_of(hostile, dated(hostile, "00500101000000Z", not_after))
    assert codes(result) == ["cert_expired"]
    assert result.certificate is not None
    assert result.certificate.not_after == f"{not_after[:4]}-{not_after[4:6]}-{not_after[6:8]}T" + (
        f"{not_after[8:10]}:{not_after[10:12]}:{not_after[12:14]}Z"
    )
    assert f"expired on {result.certificate.not_after[:10]}" in result.problems[0].message


def test_a_certificate_valid_from_year_51_to_9999_is_judged_by_its_dates(hostile: HostileServers) -> None:
    result = probe_of(hostile, dated(hostile, "00510101000000Z", "99991231235959Z"))
    assert codes(result) == []
    assert result.certificate is not None
    assert (result.certificate.not_before, result.certificate.not_after) == (
        "0051-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    )


def test_a_certificate_not_valid_before_year_9999_is_cert_not_yet_valid(hostile: HostileServers) -> None:
    result = probe_of(hostile, dated(hostile, "99990101000000Z", "99991231235959Z"))
    assert codes(result) == ["cert_not_yet_valid"]
    assert "9999-01-01T00:00:00Z" in result.problems[0].message


def invalid_utf8_san(servers: HostileServers, *also: str) -> Target:
    leaf = leaf_with(
        servers.ca, common_name=HOST, dns_names=("zzzz.example.test", *also), replace={b"zzzz": b"\xff\xfe\xc0\x80"}
    )
    return servers.http(OK, leaf=leaf)


def test_a_san_with_invalid_utf8_is_a_certificate_problem_not_a_handshake_failure(hostile: HostileServers) -> None:
    result = probe_of(hostile, invalid_utf8_san(hostile))
    assert codes(result) == ["cert_malformed", "cert_hostname_mismatch"]
    assert "not plain ASCII" in result.problems[0].message
    assert result.certificate is not None
    assert result.certificate.sans == ("\\xff\\xfe\\xc0\\x80.example.test",)
    assert result.tls is not None


def test_a_malformed_san_next_to_the_right_name_is_still_reported(hostile: HostileServers) -> None:
    result = probe_of(hostile, invalid_utf8_san(hostile, HOST))
    assert codes(result) == ["cert_malformed"]
    assert result.status is Status.CRITICAL  # browsers refuse such a certificate


def test_a_common_name_with_terminal_escapes_is_printed_escaped_on_one_line(hostile: HostileServers) -> None:
    leaf = leaf_with(hostile.ca, common_name="\x1b[2J\x1b[31mowned\nOK       fake line", dns_names=("\x1b[2Jx.test",))
    result = probe_of(hostile, hostile.http(OK, leaf=leaf))
    assert result.certificate is not None
    assert result.certificate.subject == "CN=\\x1b[2J\\x1b[31mowned\\x0aOK       fake line"
    line = render_line(result)
    assert "\x1b" not in line
    assert "\n" not in line
    assert "\\x1b[2Jx.test" in line  # the mismatch names what the certificate is for, escaped
    text = json.dumps(result.to_json())
    assert "\x1b" not in text
    assert json.loads(text)["certificate"]["subject"] == result.certificate.subject


def test_a_subject_with_invalid_utf8_is_read_tolerantly() -> None:
    # OpenSSL refuses to serve such a certificate, so it is read here without a server
    leaf = leaf_with(
        MiniCA(), common_name="zzzz.example.test", dns_names=(HOST,), replace={b"zzzz": b"\xff\xfe\xc0\x80"}
    )
    info, malformed = inspect_certificate(leaf.cert.public_bytes(serialization.Encoding.DER), dt.datetime.now(dt.UTC))
    assert info.subject == "CN=\\xff\\xfe\\xc0\\x80.example.test"
    assert info.sans == (HOST,)
    assert malformed == ["its subject holds a string that is not valid for its type"]


def test_a_certificate_that_cannot_be_parsed_at_all_still_has_its_thumbprint() -> None:
    with pytest.raises(UnreadableCertificate) as caught:
        inspect_certificate(b"\x30\x03\x02\x01\x00", dt.datetime.now(dt.UTC))
    assert len(caught.value.sha1) == 40


def test_printable_escapes_controls_bidi_overrides_and_line_separators() -> None:
    assert printable("a\x1b[0m\r\n\t\x7f\x9b\u202e\u2028b") == "a\\x1b[0m\\x0d\\x0a\\x09\\x7f\\x9b\\u202e\\u2028b"
    assert printable("www.example.com") == "www.example.com"
    assert printable("x" * 10, 4) == "xxxx…"


# --- unreachable networks and hosts ---------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "network_unreachable"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "host_unreachable"),
        (OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"), "connect_error"),
        (OSError(errno.ECONNABORTED, "Software caused connection abort"), "connect_error"),
        (OSError(9999, None), "connect_error"),
        (OSError("no errno at all"), "connect_error"),
        (RuntimeError("something else"), "connect_error"),
    ],
)
def test_every_failed_connect_gets_a_registered_problem_code(error: BaseException, code: str) -> None:
    named, message = describe_connect_error(error)
    assert named == code
    assert PROBLEM_CODES[named] is Severity.CRITICAL
    assert message


def test_an_unreachable_network_is_a_critical_named_problem() -> None:
    # Linux refuses a TCP connect to a multicast address with ENETUNREACH before sending any
    # packet: a real unreachable-network errno without traffic leaving this machine
    with socket.socket() as sock:
        found = sock.connect_ex(("224.0.0.1", 9))
    if found != errno.ENETUNREACH:
        pytest.skip(f"this system answers a TCP connect to multicast with errno {found}, not ENETUNREACH")
    target = ProbeTarget(url=f"https://{HOST}/", hostname=HOST, port=9, connect_host="224.0.0.1", timeout=2.0)
    result = asyncio.run(probe(target))
    assert codes(result) == ["network_unreachable"]
    assert result.status is Status.CRITICAL
    assert "224.0.0.1:9" in result.problems[0].message


# --- redirects ------------------------------------------------------------------------------


def test_a_redirect_within_the_site_is_fine_by_default(hostile: HostileServers) -> None:
    target = hostile.http(redirect("/login?next=%2F"))
    result = probe_of(hostile, target)
    assert codes(result) == []
    assert result.http is not None
    assert result.http.location == f"https://{HOST}:{target.port}/login?…"  # the query is not shown
    assert result.http.redirects == ()


def test_a_redirect_to_another_host_is_a_warning_that_says_where(hostile: HostileServers) -> None:
    result = probe_of(hostile, hostile.http(redirect("https://login.evil.test/phish")))
    assert [(p.code, p.severity) for p in result.problems] == [("redirect_elsewhere", Severity.WARNING)]
    assert "https://login.evil.test/phish" in result.problems[0].message
    assert result.status is Status.WARNING


def test_a_backslash_in_a_location_is_read_as_a_browser_reads_it(hostile: HostileServers) -> None:
    # "/\evil.test/x" is "//evil.test/x" to a browser: another host, not a path on this one
    result = probe_of(hostile, hostile.http(redirect("/\\evil.test/x")))
    assert [p.code for p in result.problems] == ["redirect_elsewhere"]
    assert "https://evil.test/x" in result.problems[0].message


def test_a_redirect_to_plain_http_is_a_warning(hostile: HostileServers) -> None:
    result = probe_of(hostile, hostile.http(redirect(f"http://{HOST}/")))
    assert codes(result) == ["redirect_elsewhere"]
    assert "plain HTTP" in result.problems[0].message


def test_a_redirect_to_itself_is_a_loop_even_unfollowed(hostile: HostileServers) -> None:
    result = probe_of(hostile, hostile.http(redirect("/")))
    assert codes(result) == ["redirect_loop"]
    assert result.status is Status.CRITICAL


def test_a_redirect_without_location_is_http_status(hostile: HostileServers) -> None:
    result = probe_of(hostile, hostile.http(b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n"))
    assert codes(result) == ["http_status"]
    assert "no Location header" in result.problems[0].message


def test_a_location_that_is_no_url_is_http_error(hostile: HostileServers) -> None:
    result = probe_of(hostile, hostile.http(redirect("https://exa mple.test/\x1b[2J")))
    assert codes(result) == ["http_error"]
    assert "\x1b" not in result.problems[0].message
    assert "not a usable URL" in result.problems[0].message


def raw_redirect(location: bytes, status: int = 302) -> bytes:
    return b"HTTP/1.1 %d Moved\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % (status, location)


@pytest.mark.parametrize(
    "location",
    [
        b"https://www.example.test:0/",
        b"https://[v1.x]/",
        b"https://[vF.anything]:443/",
        b"https://[::1%25eth0]/",
        b"https://[not-an-address]/",
        b"https://www.ex\xc3\xa9mple.test\xff/",
    ],
    ids=["port 0", "IPvFuture", "IPvFuture with a port", "an IPv6 zone", "a name in brackets", "invalid UTF-8 host"],
)
def test_a_location_with_an_impossible_host_or_port_is_no_usable_url(hostile: HostileServers, location: bytes) -> None:
    for follow in (False, True):
        result = probe_of(hostile, hostile.http(raw_redirect(location)), follow_redirects=follow)
        assert codes(result) == ["http_error"], location
        assert "not a usable URL" in result.problems[0].message


def test_a_location_folded_onto_a_line_with_a_nul_is_refused(hostile: HostileServers) -> None:
    answer = (
        b"HTTP/1.1 301 Moved\r\nLocation: https://www.example.test/a\r\n \x00\x1b[31mX\r\nContent-Length: 0\r\n\r\n"
    )
    result = probe_of(hostile, hostile.http(answer))
    assert codes(result) == ["http_error"]
    assert "control character in header 'Location'" in result.problems[0].message


@pytest.mark.parametrize(
    ("location", "asked"),
    [
        (b"/caf\xc3\xa9?q=\xc3\xa9", b"/caf%C3%A9?q=%C3%A9"),  # UTF-8: each byte encoded once
        (b"/caf\xe9", b"/caf%E9"),  # not UTF-8: the server's own byte, encoded
        (b"/\xe2\x82\xac%20x", b"/%E2%82%AC%20x"),  # what was encoded already stays as it is
    ],
    ids=["UTF-8", "Latin-1", "mixed"],
)
def test_a_location_with_non_ascii_bytes_is_asked_for_with_those_bytes_percent_encoded(
    hostile: HostileServers, location: bytes, asked: bytes
) -> None:
    target = hostile.routes({"/": raw_redirect(location), asked.decode(): OK})
    result = probe_of(hostile, target, follow_redirects=True, keyword="ok")
    assert codes(result) == []
    assert target.seen()[1].split(b" ")[1] == asked


IDN = "xn--vil-9la.test"  # évil.test in A-labels (UTS 46)


def test_a_location_to_a_utf8_idn_host_names_it_in_a_labels_not_mojibake(hostile: HostileServers) -> None:
    result = probe_of(hostile, hostile.http(raw_redirect("https://évil.test/login".encode())))
    assert codes(result) == ["redirect_elsewhere"]
    assert f"https://{IDN}/login" in result.problems[0].message
    assert "Ã" not in result.problems[0].message


def test_a_followed_redirect_to_a_utf8_idn_host_goes_there_by_its_a_labels(hostile: HostileServers) -> None:
    other = hostile.http(OK, leaf=hostile.ca.issue(IDN))
    start = hostile.http(raw_redirect(f"https://évil.test:{other.port}/".encode()))
    resolver = StaticResolver({HOST: "127.0.0.1", IDN: "127.0.0.1"})
    result = probe_of(hostile, start, connect_host=None, resolver=resolver, follow_redirects=True)
    assert codes(result) == []
    assert result.http is not None
    assert result.http.redirects == (f"https://{IDN}:{other.port}/",)
    assert f"Host: {IDN}:{other.port}\r\n".encode() in other.seen()[0] + b"\r\n"


def test_an_expected_redirect_is_accepted_wherever_it_points(hostile: HostileServers) -> None:
    target = hostile.http(redirect("https://sso.example.net/"))
    assert codes(probe_of(hostile, target, expect_status=(302,))) == []
    result = probe_of(hostile, target, expect_status=(200,))
    assert codes(result) == ["http_status"]
    assert "HTTP 302 to https://sso.example.net/ (expected 200)" in result.problems[0].message


def test_follow_redirects_judges_the_final_answer_on_fresh_connections(hostile: HostileServers) -> None:
    target = hostile.routes({"/": redirect("/a"), "/a": redirect("/b%20c", 301), "/b%20c": OK})
    result = probe_of(hostile, target, follow_redirects=True, keyword="ok")
    assert codes(result) == []
    assert result.http is not None
    assert (result.http.status, result.http.method) == (200, "GET")
    assert result.http.redirects == (f"https://{HOST}:{target.port}/a", f"https://{HOST}:{target.port}/b%20c")
    assert [h.split(b" ")[1] for h in target.seen()] == [b"/", b"/a", b"/b%20c"]
    assert target.connections == 3


def test_follow_redirects_names_a_missing_keyword_on_the_final_page(hostile: HostileServers) -> None:
    target = hostile.routes({"/": redirect("/a"), "/a": OK})
    assert codes(probe_of(hostile, target, follow_redirects=True, keyword="Welcome")) == ["keyword_missing"]


def test_a_location_with_spaces_and_newline_escapes_cannot_split_the_request(hostile: HostileServers) -> None:
    target = hostile.routes({"/": redirect("/a b%0d%0aX-Injected: 1")})
    probe_of(hostile, target, follow_redirects=True)
    assert target.seen()[1].startswith(b"HEAD /a%20b%0d%0aX-Injected:%201 HTTP/1.1\r\n")
    assert b"\r\nX-Injected" not in target.seen()[1]


def test_a_followed_redirect_loop_is_redirect_loop(hostile: HostileServers) -> None:
    target = hostile.routes({"/": redirect("/a"), "/a": redirect("/")})
    result = probe_of(hostile, target, follow_redirects=True)
    assert codes(result) == ["redirect_loop"]
    assert target.connections == 2


def test_more_than_five_redirects_is_too_many_redirects(hostile: HostileServers) -> None:
    chain = {"/": redirect("/1"), **{f"/{i}": redirect(f"/{i + 1}") for i in range(1, 10)}}
    target = hostile.routes(chain)
    result = probe_of(hostile, target, follow_redirects=True)
    assert codes(result) == ["too_many_redirects"]
    assert target.connections == 6
    assert result.http is not None
    assert len(result.http.redirects) == 5


def public(servers: HostileServers, target: Target, **overrides: object) -> ProbeResult:
    resolver = StaticResolver({HOST: "127.0.0.1", OTHER: "127.0.0.1"})
    return probe_of(servers, target, connect_host=None, resolver=resolver, **overrides)


def test_a_public_probe_follows_to_another_site_with_its_own_name_and_certificate(hostile: HostileServers) -> None:
    other = hostile.http(OK, leaf=hostile.ca.issue(OTHER))
    start = hostile.http(redirect(f"https://{OTHER}:{other.port}/home"))
    result = public(hostile, start, follow_redirects=True)
    assert codes(result) == []
    assert result.http is not None
    assert result.http.redirects == (f"https://{OTHER}:{other.port}/home",)
    assert f"Host: {OTHER}:{other.port}".encode() in other.seen()[0]
    assert result.certificate is not None
    assert result.certificate.sans == (HOST,)  # the probed site's certificate, as before


def test_another_sites_wrong_certificate_is_named_after_the_redirect(hostile: HostileServers) -> None:
    other = hostile.http(OK, leaf=hostile.ca.issue("elsewhere.test"))
    start = hostile.http(redirect(f"https://{OTHER}:{other.port}/"))
    result = public(hostile, start, follow_redirects=True)
    assert codes(result) == ["cert_hostname_mismatch"]
    assert result.problems[0].message.startswith(f"after the redirect to https://{OTHER}:{other.port}/: ")
    assert other.seen() == []  # a browser stops at the certificate, and so do we


def test_another_site_that_is_down_is_named_after_the_redirect(hostile: HostileServers) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    start = hostile.http(redirect(f"https://{OTHER}:{closed}/"))
    result = public(hostile, start, follow_redirects=True)
    assert codes(result) == ["connect_refused"]
    assert "after the redirect to" in result.problems[0].message


def test_an_origin_probe_does_not_leave_its_origin(hostile: HostileServers) -> None:
    other = hostile.http(OK, leaf=hostile.ca.issue(OTHER))
    start = hostile.http(redirect(f"https://{OTHER}:{other.port}/"))
    result = probe_of(hostile, start, follow_redirects=True)
    assert codes(result) == ["redirect_elsewhere"]
    assert "stays on that address" in result.problems[0].message
    assert other.connections == 0


def test_the_json_carries_the_location_and_the_redirects_followed(hostile: HostileServers) -> None:
    target = hostile.routes({"/": redirect("/a"), "/a": redirect("https://away.test/")})
    data = probe_of(hostile, target, follow_redirects=True).to_json()
    assert data["http"]["redirects"] == [f"https://{HOST}:{target.port}/a"]
    assert data["http"]["location"] == "https://away.test/"
    assert [p["code"] for p in data["problems"]] == ["redirect_elsewhere"]


def test_every_problem_code_the_probe_can_report_is_registered() -> None:
    # an unregistered code once raised KeyError and turned "the origin is down" into "unknown"
    source = "\n".join(p.read_text() for p in Path(bot.probe.__file__).parent.glob("*.py"))
    used = set(re.findall(r'(?:add|_Failed|problem)\(\s*"([a-z_]+)"', source))
    used |= set(re.findall(r'return "([a-z_]+)", ', source))
    assert {"connect_error", "network_unreachable", "host_unreachable", "redirect_elsewhere"} <= used
    assert used <= set(PROBLEM_CODES)
