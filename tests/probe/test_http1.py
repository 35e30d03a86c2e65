"""The probe's HTTP/1.1 reader, fed the bytes a server would send."""

from __future__ import annotations

import asyncio

import pytest

from bot.probe.http1 import Answer, HTTPProtocolError, build_request, read_answer


def read(raw: bytes, *, want_body: bool = True, method: str = "GET") -> Answer:
    async def go() -> Answer:
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        return await read_answer(reader, want_body=want_body, method=method)

    return asyncio.run(go())


def test_a_chunked_body_is_reassembled_for_the_keyword_check() -> None:
    answer = read(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHello\r\n7; ext=1\r\n, world\r\n0\r\n\r\n"
    )
    assert answer.body == b"Hello, world"


def test_repeated_headers_are_joined_and_names_lower_cased() -> None:
    answer = read(b"HTTP/1.1 301 Moved\r\nX-Cache: MISS\r\nx-cache: HIT\r\nContent-Length: 0\r\n\r\n")
    assert answer.status == 301
    assert answer.headers["x-cache"] == "MISS, HIT"


def test_a_body_without_length_is_read_until_the_server_closes() -> None:
    assert read(b"HTTP/1.0 200 OK\r\n\r\nall of it").body == b"all of it"


def test_head_answers_carry_no_body_even_with_a_content_length() -> None:
    assert read(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", method="HEAD").body == b""


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "closed the connection without answering"),
        (b"HTTP/1.1 200 OK\r\nContent-", "in the middle of its answer"),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP answer"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line"),
    ],
)
def test_what_is_not_http_is_named(raw: bytes, message: str) -> None:
    with pytest.raises(HTTPProtocolError, match=message):
        read(raw)


def test_the_request_carries_the_real_host_and_asks_to_close() -> None:
    assert build_request("HEAD", "www.example.com", 443, "/").startswith(
        b"HEAD / HTTP/1.1\r\nHost: www.example.com\r\n"
    )
    assert b"Host: shop.example.com:8443\r\n" in build_request("GET", "shop.example.com", 8443, "/x")
    assert b"Connection: close\r\n" in build_request("GET", "a", 443, "/")


def test_an_early_hints_answer_is_skipped_for_the_real_one() -> None:
    answer = read(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert (answer.status, answer.body) == (200, b"ok")


def test_a_body_without_length_arriving_in_pieces_is_read_to_the_end() -> None:
    async def go() -> Answer:
        reader = asyncio.StreamReader()
        reader.feed_data(b"HTTP/1.0 200 OK\r\n\r\nfirst part, ")

        async def later() -> None:
            await asyncio.sleep(0.01)
            reader.feed_data(b"then the keyword")
            reader.feed_eof()

        task = asyncio.create_task(later())
        answer = await read_answer(reader, want_body=True, method="GET")
        await task
        return answer

    assert asyncio.run(go()).body == b"first part, then the keyword"


def test_chunks_with_long_extensions_are_cut_by_the_bytes_their_framing_takes() -> None:
    # 4,000 one-byte chunks of about 1 KiB each: few enough chunks, but 4 MiB of framing for 4 KB
    chunk = b"1;" + b"x" * 1000 + b"\r\na\r\n"
    with pytest.raises(HTTPProtocolError, match="chunked body is larger than 4,160 KiB with its framing"):
        read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 5000 + b"0\r\n\r\n")


def test_more_than_100_000_chunks_are_refused_however_small() -> None:
    with pytest.raises(HTTPProtocolError, match="more than 100,000 chunks"):
        read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1\r\na\r\n" * 100_001 + b"0\r\n\r\n")


def test_100_000_chunks_are_still_read() -> None:
    answer = read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1\r\na\r\n" * 100_000 + b"0\r\n\r\n")
    assert answer.body == b"a" * 100_000


def test_a_body_of_2_mib_in_ordinary_chunks_is_read_up_to_its_cap() -> None:
    chunk = b"4000\r\n" + b"y" * 0x4000 + b"\r\n"
    answer = read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 200 + b"0\r\n\r\n")
    assert len(answer.body) == 2 * 1024 * 1024


def test_header_values_are_read_as_utf8_where_they_are_utf8_and_kept_as_sent() -> None:
    answer = read(b"HTTP/1.1 302 Found\r\nLocation: /caf\xc3\xa9\r\nX-Old: caf\xe9\r\nContent-Length: 0\r\n\r\n")
    assert (answer.headers["location"], answer.headers["x-old"]) == ("/caf\u00e9", "caf\u00e9")
    assert answer.raw_headers["location"] == b"/caf\xc3\xa9"
    assert answer.raw_headers["x-old"] == b"caf\xe9"
