"""Answers as real servers write them, read by h11 through the probe's own TLS: what HTTP/1.1
allows is read (no false CRITICAL), what it forbids is http_error with a sentence, and a keyword is
found in the page's text whatever charset the page is written in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from bot.probe import ProbeResult
from bot.probe.http1 import Answer, page_charset, page_contains, page_text, read_answer
from tests.fakes.hostile_targets import HostileServers, Target
from tests.probe.helpers import probe_hostile


def probe_of(servers: HostileServers, target: Target, **overrides: object) -> ProbeResult:
    return probe_hostile(servers, target.port, **{"timeout": 3.0, **overrides})


def codes(result: ProbeResult) -> list[str]:
    return [p.code for p in result.problems]


def read(raw: bytes, *, method: str = "GET") -> Answer:
    async def go() -> Answer:
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        return await read_answer(reader, want_body=method == "GET", method=method)

    return asyncio.run(go())


def page(body: bytes, content_type: str = "text/html") -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode("latin-1")
        + body
    )


# --- what HTTP/1.1 allows is read ----------------------------------------------------------------

FOLDED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html;\r\n charset=utf-8\r\nX-Note: first\r\n\tsecond\r\n"
    b"Content-Length: 7\r\n\r\nWelcome"
)


@pytest.mark.parametrize("keyword", [None, "Welcome"], ids=["HEAD", "GET with a keyword"])
def test_a_folded_header_line_is_read_and_is_no_critical(hostile: HostileServers, keyword: str | None) -> None:
    assert codes(probe_of(hostile, hostile.http(FOLDED), keyword=keyword)) == []


def test_a_folded_header_line_is_joined_with_a_space() -> None:
    answer = read(FOLDED)
    assert answer.headers["x-note"] == "first second"
    assert answer.headers["content-type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize("keyword", [None, "Welcome"], ids=["HEAD", "GET with a keyword"])
def test_an_answer_with_bare_lf_line_ends_is_read(hostile: HostileServers, keyword: str | None) -> None:
    answer = b"HTTP/1.1 200 OK\nContent-Type: text/html\nContent-Length: 7\n\nWelcome"
    result = probe_of(hostile, hostile.http(answer), keyword=keyword)
    assert codes(result) == []
    assert result.http is not None
    assert result.http.status == 200


def test_early_hints_before_a_head_answer_with_a_content_length_do_not_wait_for_a_body(
    hostile: HostileServers,
) -> None:
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    target = hostile.http(hints + b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n")
    started = time.monotonic()
    result = probe_of(hostile, target)
    assert codes(result) == []
    assert time.monotonic() - started < 2.0  # not the timeout's worth of waiting for 99 bytes


# --- what it forbids is http_error with a sentence ------------------------------------------------


@pytest.mark.parametrize("keyword", [None, "ok"], ids=["HEAD", "GET with a keyword"])
def test_a_four_digit_status_code_is_http_error(hostile: HostileServers, keyword: str | None) -> None:
    result = probe_of(hostile, hostile.http(b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok"), keyword=keyword)
    assert codes(result) == ["http_error"]
    assert result.problems[0].message == (
        "malformed status line 'HTTP/1.1 2000 OK': the status code must be three ASCII digits"
    )


@pytest.mark.parametrize("keyword", [None, "ok"], ids=["HEAD", "GET with a keyword"])
def test_conflicting_content_lengths_are_http_error_also_for_a_head_answer(
    hostile: HostileServers, keyword: str | None
) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"
    result = probe_of(hostile, hostile.http(answer), keyword=keyword)
    assert codes(result) == ["http_error"]
    assert result.problems[0].message == "the answer has conflicting Content-Length headers: '2, 3'"


def test_conflicting_content_lengths_next_to_another_transfer_coding_are_not_read_to_the_end(
    hostile: HostileServers,
) -> None:
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"
    result = probe_of(hostile, hostile.http(answer), keyword="ok")
    assert codes(result) == ["http_error"]
    assert "Transfer-Encoding 'gzip' is not one the probe reads" in result.problems[0].message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n", "malformed header line: 'X-A : 1'"),
        (b"HTTP/1.1 200 OK\r\n folded: first\r\n\r\n", "malformed header line: ' folded: first'"),
        (b"HTTP/1.1 200 OK\r\nX-A: a\x0bb\r\n\r\n", "control character in header 'X-A'"),
        (b"HTTP/1.1 200 OK\r\r\n\r\n", "control character in the status line 'HTTP/1.1 200 OK\\x0d'"),
        (b"HTTP/1.1 099 Odd\r\n\r\n", "status code 99 is outside 100-599"),
    ],
    ids=["a space before the colon", "a fold before any field", "a vertical tab", "a bare CR", "status 099"],
)
def test_what_h11_refuses_in_a_head_is_named_in_a_sentence(hostile: HostileServers, raw: bytes, message: str) -> None:
    result = probe_of(hostile, hostile.http(raw), keyword="ok")
    assert codes(result) == ["http_error"]
    assert result.problems[0].message == message


# --- the keyword, in the page's text ---------------------------------------------------------------

CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked(body: bytes, size: int) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return CHUNKED + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def test_a_keyword_split_across_chunks_is_found(hostile: HostileServers) -> None:
    body = "<p>ようこそ、Welcome to the shop</p>".encode()
    target = hostile.http(chunked(body, 5))  # 5-byte chunks cut the keyword, and its characters, apart
    assert codes(probe_of(hostile, target, keyword="ようこそ、Welcome")) == []
    assert codes(probe_of(hostile, target, keyword="Goodbye")) == ["keyword_missing"]


def test_a_chunked_body_sent_in_pieces_is_read_whole(hostile: HostileServers) -> None:
    def pieces() -> Iterator[bytes]:
        yield CHUNKED + b"8\r\nWel"
        time.sleep(0.05)
        yield b"come \r\n"  # the chunk's data and its CRLF in another TLS record
        time.sleep(0.05)
        yield b"7\r\nto the \r\n4\r\nshop\r\n0\r\n\r\n"

    assert codes(probe_of(hostile, hostile.http(pieces), keyword="Welcome to the shop")) == []


JAPANESE = "<html><body><h1>ようこそ、株式会社サンプルのホームページへ</h1></body></html>"
KEYWORD = "株式会社サンプル"


@pytest.mark.parametrize(
    ("codec", "label"),
    [("cp932", "Shift_JIS"), ("cp932", "shift_jis"), ("euc_jp", "EUC-JP"), ("cp932", "Windows-31J")],
)
def test_a_japanese_keyword_is_found_on_a_page_whose_content_type_names_its_charset(
    hostile: HostileServers, codec: str, label: str
) -> None:
    target = hostile.http(page(JAPANESE.encode(codec), f"text/html; charset={label}"))
    assert codes(probe_of(hostile, target, keyword=KEYWORD)) == []
    assert codes(probe_of(hostile, target, keyword="別の会社")) == ["keyword_missing"]


@pytest.mark.parametrize(
    ("codec", "meta"),
    [
        ("cp932", '<meta charset="Shift_JIS">'),
        ("euc_jp", "<META CHARSET=euc-jp>"),
        ("cp932", '<meta http-equiv="Content-Type" content="text/html; charset=shift_jis">'),
        ("euc_jp", "<meta http-equiv='content-type' content='text/html;charset=EUC-JP'>"),
    ],
    ids=["meta charset Shift_JIS", "META CHARSET=euc-jp", "http-equiv Shift_JIS", "http-equiv EUC-JP"],
)
def test_a_japanese_keyword_is_found_on_a_page_whose_meta_tag_alone_names_its_charset(
    hostile: HostileServers, codec: str, meta: str
) -> None:
    html = f"<html><head><title>x</title>{meta}</head><body>{JAPANESE}</body></html>"
    target = hostile.http(page(html.encode(codec)))  # Content-Type: text/html, no charset
    assert codes(probe_of(hostile, target, keyword=KEYWORD)) == []


def test_a_chinese_keyword_is_found_on_a_big5_page(hostile: HostileServers) -> None:
    body = "<html><body>歡迎光臨，臺灣範例公司</body></html>".encode("big5")
    target = hostile.http(page(body, "text/html; charset=big5"))
    assert codes(probe_of(hostile, target, keyword="臺灣範例公司")) == []


@pytest.mark.parametrize("label", ["x-no-such-charset", "base64", "rot13", "idna"])
def test_an_unknown_or_unusable_charset_falls_back_to_utf8(hostile: HostileServers, label: str) -> None:
    target = hostile.http(page(JAPANESE.encode(), f"text/html; charset={label}"))
    assert codes(probe_of(hostile, target, keyword=KEYWORD)) == []


def test_the_content_types_charset_wins_over_a_meta_tag() -> None:
    body = ('<meta charset="utf-8">' + JAPANESE).encode("euc_jp")
    answer = Answer(200, {"content-type": "text/html; charset=euc-jp"}, body)
    assert page_charset(answer) == "euc_jp"
    assert KEYWORD in page_text(answer)


def test_a_meta_tag_past_the_first_4_kib_is_not_looked_for() -> None:
    body = b"<!--" + b"x" * 5000 + b"-->" + b'<meta charset="euc-jp">' + JAPANESE.encode("euc_jp")
    assert page_charset(Answer(200, {}, body)) == "utf-8"


def test_a_byte_order_mark_decides_before_any_label() -> None:
    answer = Answer(200, {"content-type": "text/html; charset=shift_jis"}, "\ufeff".encode() + JAPANESE.encode())
    assert page_text(answer) == JAPANESE


def test_bytes_the_charset_cannot_read_do_not_hide_the_rest_of_the_page() -> None:
    body = b"\x80\xc3 \xff " + "Welcome ようこそ".encode()
    assert page_text(Answer(200, {"content-type": "text/html; charset=utf-8"}, body)).endswith("Welcome ようこそ")


@pytest.mark.parametrize(
    "body",
    [
        "Welcome ようこそ".encode(),
        b"\xe3\x81Welcome \xe3\x82\x88\xe3\x81\x86\xe3\x81\x93\xe3\x81\x9d\xe3",
        b"\xf0\x9f\x98Welcome\xc0\xaf \xe3\x82\x88\xe3\x81\x86\xe3\x81\x93\xe3\x81\x9d",
        b"Welcome \xe3\x82\x88\xe3\x81\x86\xe3\x81\x93\xe3",  # the keyword's last character cut short
    ],
    ids=["clean", "cut characters around it", "an overlong slash next to it", "cut inside it"],
)
def test_a_utf8_page_searched_as_bytes_gives_the_answer_its_text_gives(body: bytes) -> None:
    answer = Answer(200, {"content-type": "text/html; charset=utf-8"}, body)
    for keyword in ("Welcome ようこそ", "ようこそ", "Welcome", "\ufffd", "e \u3088"):
        assert page_contains(answer, keyword) == (keyword in page_text(answer)), keyword
