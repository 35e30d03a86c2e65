"""Just enough HTTP/1.1 for a probe: one request per connection, the answer's head, and the body
when a keyword is checked.

Everything here reads bytes a possibly hostile server chose, so every length is bounded before
it is used, numbers are ASCII digits of bounded length (str.isdigit accepts superscripts and
int() refuses more than 4300 digits), and whatever does not parse is an HTTPProtocolError with a
sentence for the operator, never another exception. The work is bounded by what is read, not only
by what is kept: a chunked body of endless one-byte chunks keeps nothing much, so its framing and
its chunks are counted too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from bot import __version__
from bot.probe.text import from_wire, printable

MAX_HEAD = 64 * 1024  # one answer's status line and header fields
MAX_FIELDS = 256
MAX_INTERIM = 10  # 1xx answers (100 Continue, 103 Early Hints) before the real one
MAX_CHUNK_LINE = 1024
MAX_BODY = 2 * 1024 * 1024  # a keyword past the first 2 MiB is not looked for
# what a chunked body may take on the wire, framing (chunk-size lines, extensions, CRLFs) and all,
# and how many chunks it may have: far more than a real page needs for MAX_BODY, far less than a
# timeout's worth of one-byte chunks
MAX_CHUNKED_WIRE = 2 * MAX_BODY + 64 * 1024
MAX_CHUNKS = 100_000
USER_AGENT = f"certops/{__version__} (TLS probe)"

_STATUS_LINE = re.compile(rb"HTTP/[0-9]\.[0-9] ([0-9]{3})(?:[ \t](.*))?", re.DOTALL)
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")  # 15 hex digits (leading zeros aside): more than MAX_BODY needs
_DIGITS = re.compile(r"[0-9]{1,18}")
_OWS = b" \t"


class HTTPProtocolError(Exception):
    pass


CUT_SHORT = "the server closed the connection in the middle of its answer"


class Source(Protocol):
    """Where the answer's bytes come from: a TLSStream, or an asyncio.StreamReader in tests."""

    async def read(self, n: int) -> bytes: ...


@dataclass(frozen=True)
class Answer:
    status: int
    # lower-case names; repeated headers joined with ", "; each value read as UTF-8 where it is
    # UTF-8, else as Latin-1 (so every byte is kept, and shown)
    headers: dict[str, str]
    body: bytes
    raw_headers: dict[str, bytes] = field(default_factory=dict)  # the same, as the bytes sent


def build_request(method: str, hostname: str, port: int, path: str) -> bytes:
    host = hostname if ":" not in hostname else f"[{hostname}]"
    if port != 443:
        host = f"{host}:{port}"
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode("ascii")


async def read_answer(source: Source, *, want_body: bool, method: str) -> Answer:
    buffer = _Buffer(source)
    interim = 0
    while True:
        answer = await _read_head(buffer, first=interim == 0)
        if answer.status == 101:
            raise HTTPProtocolError("the server switched protocols (101) although the probe did not ask it to")
        if not 100 <= answer.status < 200:
            break
        interim += 1  # 1xx answers (103 Early Hints...) come before the real one
        if interim > MAX_INTERIM:
            raise HTTPProtocolError(f"the server sent more than {MAX_INTERIM} interim (1xx) answers and no real one")
    if want_body and method != "HEAD" and answer.status not in (204, 304):
        return Answer(answer.status, answer.headers, await _read_body(buffer, answer.headers), answer.raw_headers)
    return answer


def content_length(headers: dict[str, str]) -> int | None:
    """The Content-Length, or None when there is none; HTTPProtocolError when it is not a number
    or repeated with different values."""
    raw = headers.get("content-length")
    if raw is None:
        return None
    values = {v.strip() for v in raw.split(",")}
    for value in values:
        if not _DIGITS.fullmatch(value):
            raise HTTPProtocolError(f"the Content-Length header is not a number: '{printable(raw, 60)}'")
    if len(values) > 1:
        raise HTTPProtocolError(f"the answer has conflicting Content-Length headers: '{printable(raw, 60)}'")
    return int(values.pop())


class _Buffer:
    def __init__(self, source: Source) -> None:
        self._source = source
        self._data = bytearray()
        self._eof = False

    async def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = await self._source.read(64 * 1024)
        if not chunk:
            self._eof = True
            return False
        self._data += chunk
        return True

    async def line(self, limit: int) -> bytes | None:
        """The next line with its LF; what is left, without one, at the end of the stream;
        None when it would be longer than `limit` bytes."""
        scanned = 0
        while True:
            end = self._data.find(b"\n", scanned)
            if end >= 0:
                if end + 1 > limit:
                    return None
                line = bytes(self._data[: end + 1])
                del self._data[: end + 1]
                return line
            if len(self._data) > limit:
                return None
            scanned = len(self._data)
            if not await self._fill():
                rest = bytes(self._data)
                self._data.clear()
                return rest

    async def exactly(self, n: int) -> bytes:
        """`n` bytes, or fewer if the stream ends first."""
        while len(self._data) < n and await self._fill():
            pass
        out = bytes(self._data[:n])
        del self._data[:n]
        return out

    async def some(self, n: int) -> bytes:
        if not self._data and not await self._fill():
            return b""
        out = bytes(self._data[:n])
        del self._data[:n]
        return out


async def _read_head(buffer: _Buffer, *, first: bool) -> Answer:
    remaining = MAX_HEAD
    too_large = f"the answer's header is larger than {MAX_HEAD // 1024} KiB"

    async def next_line(started: bool) -> bytes:
        nonlocal remaining
        line = await buffer.line(remaining)
        if line is None:
            raise HTTPProtocolError(too_large)
        remaining -= len(line)
        if not line.endswith(b"\n"):
            if not line and not started and first:
                raise HTTPProtocolError("the server closed the connection without answering")
            raise HTTPProtocolError(CUT_SHORT)
        return line[:-2] if line.endswith(b"\r\n") else line[:-1]

    status_line = await next_line(started=False)
    match = _STATUS_LINE.fullmatch(status_line)
    if match is None:
        if status_line.startswith(b"HTTP/"):
            raise HTTPProtocolError(
                f"malformed status line '{from_wire(status_line, 60)}': the status code must be three ASCII digits"
            )
        raise HTTPProtocolError(f"not an HTTP answer: '{from_wire(status_line, 60)}'")
    status = int(match.group(1))
    if not 100 <= status <= 599:
        raise HTTPProtocolError(f"status code {status} is outside 100-599")

    fields: list[list[bytes]] = []
    while True:
        line = await next_line(started=True)
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            if not fields:
                raise HTTPProtocolError(f"malformed header line: '{from_wire(line, 60)}'")
            if b"\r" in line or b"\0" in line:  # a continuation is part of the value: the same rules
                raise HTTPProtocolError(f"control character in header '{from_wire(fields[-1][0], 40)}'")
            fields[-1][1] += b" " + line.strip(_OWS)  # obsolete line folding: a space, says RFC 9112
            continue
        name, sep, value = line.partition(b":")
        name = name.rstrip(_OWS)
        if not sep or not _TOKEN.fullmatch(name):
            raise HTTPProtocolError(f"malformed header line: '{from_wire(line, 60)}'")
        if b"\r" in value or b"\0" in value:
            raise HTTPProtocolError(f"control character in header '{from_wire(name, 40)}'")
        fields.append([name, value.strip(_OWS)])
        if len(fields) > MAX_FIELDS:
            raise HTTPProtocolError(f"the answer has more than {MAX_FIELDS} header fields")

    raw: dict[str, bytes] = {}
    for raw_name, raw_value in fields:
        key = raw_name.decode("ascii").lower()
        raw[key] = raw[key] + b", " + raw_value if key in raw else raw_value
    return Answer(status, {key: _text(value) for key, value in raw.items()}, b"", raw)


def _text(value: bytes) -> str:
    """A header value as text: UTF-8 when it is valid UTF-8 (a Location of /café sent as UTF-8
    must not turn into /cafÃ©), else Latin-1, which reads any byte."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


async def _read_body(buffer: _Buffer, headers: dict[str, str]) -> bytes:
    codings = [c.strip().lower() for c in headers.get("transfer-encoding", "").split(",") if c.strip()]
    if codings and codings[-1] == "chunked":
        return await _read_chunked(buffer)
    if not codings:  # with another transfer coding the body ends when the server closes (RFC 9112)
        length = content_length(headers)
        if length is not None:
            wanted = min(length, MAX_BODY)
            exact = await buffer.exactly(wanted)
            if len(exact) < wanted:
                raise HTTPProtocolError(
                    f"{CUT_SHORT} (after {len(exact):,} of the {length:,} bytes its Content-Length announced)"
                )
            return exact
    body = bytearray()
    while len(body) < MAX_BODY:  # no length given: the body ends when the server closes
        chunk = await buffer.some(MAX_BODY - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


async def _read_chunked(buffer: _Buffer) -> bytes:
    body = bytearray()
    wire = 0  # bytes read for the body, framing included
    chunks = 0
    while len(body) < MAX_BODY:
        size_line = await buffer.line(MAX_CHUNK_LINE)
        if size_line is None:
            raise HTTPProtocolError(f"malformed chunked body: a chunk-size line is longer than {MAX_CHUNK_LINE} bytes")
        if not size_line.endswith(b"\n"):
            raise HTTPProtocolError(f"{CUT_SHORT} (its chunked body ended before the last chunk)")
        wire += len(size_line)
        digits = size_line.split(b";", 1)[0].strip(b" \t\r\n")
        significant = digits.lstrip(b"0") or digits[:1]  # "0002" is 2, "000" the last chunk
        if not _CHUNK_SIZE.fullmatch(significant):
            raise HTTPProtocolError(f"malformed chunked body: chunk size '{from_wire(digits, 40)}' is not hexadecimal")
        size = int(significant, 16)
        if size == 0:
            break
        chunks += 1
        if chunks > MAX_CHUNKS:
            raise HTTPProtocolError(f"the answer's chunked body has more than {MAX_CHUNKS:,} chunks")
        wanted = min(size, MAX_BODY - len(body))
        data = await buffer.exactly(wanted)
        body += data
        wire += len(data)
        if len(data) < wanted:
            raise HTTPProtocolError(f"{CUT_SHORT} (in the middle of a chunk of its body)")
        if len(body) >= MAX_BODY:
            break
        end = await buffer.line(MAX_CHUNK_LINE)
        if end is None or end.strip(b"\r\n"):
            raise HTTPProtocolError("malformed chunked body: a chunk is longer than its size says")
        if not end.endswith(b"\n"):
            raise HTTPProtocolError(f"{CUT_SHORT} (its chunked body ended before the last chunk)")
        wire += len(end)
        if wire > MAX_CHUNKED_WIRE:
            raise HTTPProtocolError(
                f"the answer's chunked body is larger than {MAX_CHUNKED_WIRE // 1024:,} KiB with its framing "
                f"(chunk-size lines and extensions) for {len(body):,} bytes of content"
            )
    return bytes(body[:MAX_BODY])
