"""Just enough HTTP/1.1 for a probe: one request per connection, the answer's head, and the body
when a keyword is checked, parsed by h11 (the HTTP/1.1 engine httpx uses).

The probe keeps its own sockets and TLS (tlsio.TLSStream: the exact SNI, the address connected
to, RST vs FIN vs timeout) and hands h11 the bytes TLSStream.read() returns; h11 says what they
mean. Everything here reads bytes a possibly hostile server chose, so the work stays bounded by
our own limits, whatever h11 would accept: the head (h11's max_incomplete_event_size), the
header fields, the 1xx answers, the body kept for the keyword, and for a chunked body the bytes
its framing takes and the number of its chunks. Whatever h11 refuses is an HTTPProtocolError
with a sentence for the operator, never another exception: h11 says only "illegal header line",
so the head it refused is read again here to name what is wrong with it.

A keyword is looked for in the page's text (page_contains, page_text): the body decoded by the
charset its Content-Type names, else by a <meta> tag near its start, else as UTF-8.
"""

from __future__ import annotations

import codecs
import functools
import re
from dataclasses import dataclass, field
from typing import Protocol

import h11

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
READ_SIZE = 64 * 1024
USER_AGENT = f"certops/{__version__} (TLS probe)"

CUT_SHORT = "the server closed the connection in the middle of its answer"


class HTTPProtocolError(Exception):
    pass


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


@functools.cache
def _request_event(method: str) -> h11.Request:
    # stands for the request build_request wrote, of which h11 needs the method alone (a HEAD
    # answer has no body); events are immutable, so one serves every connection
    return h11.Request(method=method, target="/", headers=[("Host", "probe")])


async def read_answer(source: Source, *, want_body: bool, method: str) -> Answer:
    received: list[bytes] = []  # what came for the head (b"" for the end), kept to read it again
    # First a connection that has sent nothing, which h11 lets read one answer (it is how a server
    # answers 400 to a request it could not read): a request event costs a third of the parse.
    # It cannot take a 1xx answer, and it stops at anything h11 refuses; then the head is read
    # again by a connection that sent the request, which h11 needs for the rest: 1xx answers, its
    # errors, and a HEAD answer's framing (whose body is never read here).
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    data = await source.read(READ_SIZE)  # before h11 is asked, or it looks at nothing first
    conn.receive_data(data)
    received.append(data)
    event = await _head(conn, source, received, bare=True)
    if event is None:
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        conn.send(_request_event(method))  # EndOfMessage is not needed to read the answer
        for data in received:
            conn.receive_data(data)
        event = await _head(conn, source, received, bare=False)
        assert event is not None
    _check_fields(event)
    status = event.status_code
    if status > 599:
        raise HTTPProtocolError(f"status code {status} is outside 100-599")
    raw: dict[str, bytes] = {}
    for name, value in event.headers.raw_items():  # values without surrounding whitespace
        key = name.decode("ascii").lower()  # a token: ASCII, says h11
        raw[key] = raw[key] + b", " + value if key in raw else value
    headers = {key: _text(value) for key, value in raw.items()}
    if not want_body or method == "HEAD" or status in (204, 304):
        return Answer(status, headers, b"", raw)
    return Answer(status, headers, await _read_body(conn, source, headers), raw)


_SWITCHED = "the server switched protocols (101) although the probe did not ask it to"


async def _head(conn: h11.Connection, source: Source, received: list[bytes], *, bare: bool) -> h11.Response | None:
    """The real answer's head, after any 1xx ones; None when a bare connection cannot read it."""
    interim = 0
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            if bare and exc.error_status_hint != 431:
                return None
            raise HTTPProtocolError(_head_problem(exc, b"".join(received))) from None
        if event is h11.NEED_DATA:
            data = await source.read(READ_SIZE)
            conn.receive_data(data)  # b"" is the end of the stream, which h11 judges
            received.append(data)
            continue
        if isinstance(event, h11.Response):
            return event
        if bare or not isinstance(event, h11.InformationalResponse):
            return None  # a bare connection sees the end of an empty stream as ConnectionClosed
        _check_fields(event)
        if event.status_code == 101:  # h11 refuses it too, but says only "no pending proposal"
            raise HTTPProtocolError(_SWITCHED)
        interim += 1  # 1xx answers (103 Early Hints...) come before the real one
        if interim > MAX_INTERIM:
            raise HTTPProtocolError(f"the server sent more than {MAX_INTERIM} interim (1xx) answers and no real one")


def _check_fields(event: h11.InformationalResponse | h11.Response) -> None:
    if len(event.headers) > MAX_FIELDS:
        raise HTTPProtocolError(f"the answer has more than {MAX_FIELDS} header fields")


def _text(value: bytes) -> str:
    """A header value as text: UTF-8 when it is valid UTF-8 (a Location of /café sent as UTF-8
    must not turn into /cafÃ©), else Latin-1, which reads any byte."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


async def _read_body(conn: h11.Connection, source: Source, headers: dict[str, str]) -> bytes:
    chunked = headers.get("transfer-encoding") == "chunked"  # h11 refuses any other coding
    body = bytearray()
    received = 0  # body bytes, also those past MAX_BODY
    chunks = 0
    in_chunk = False  # the last data ended inside a chunk
    closed = False
    # bytes read for a chunked body, framing included: what followed the head in its last read
    wire = len(conn.trailing_data[0]) if chunked else 0
    while len(body) < MAX_BODY:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise HTTPProtocolError(_body_problem(exc, closed, chunked, in_chunk, received, headers)) from None
        if isinstance(event, h11.Data):
            data = event.data
            received += len(data)
            body += data
            if chunked:
                in_chunk = not event.chunk_end
                if event.chunk_end:  # exact; chunk_start is not when a chunk's size and data come apart
                    chunks += 1
                    if chunks > MAX_CHUNKS:
                        raise HTTPProtocolError(f"the answer's chunked body has more than {MAX_CHUNKS:,} chunks")
            continue
        if event is not h11.NEED_DATA:
            break  # EndOfMessage: the body is complete
        if chunked:
            pending = conn.trailing_data[0]  # an incomplete chunk-size line, a CRLF, or trailers
            if len(pending) > MAX_CHUNK_LINE and b"\r\n" not in pending:
                raise HTTPProtocolError(
                    f"malformed chunked body: a chunk-size line is longer than {MAX_CHUNK_LINE} bytes"
                )
        data = await source.read(READ_SIZE)
        conn.receive_data(data)
        closed = not data
        if chunked:
            wire += len(data)
            if wire > MAX_CHUNKED_WIRE:
                raise HTTPProtocolError(
                    f"the answer's chunked body is larger than {MAX_CHUNKED_WIRE // 1024:,} KiB with its framing "
                    f"(chunk-size lines and extensions) for {len(body):,} bytes of content"
                )
    return bytes(body[:MAX_BODY])


def _body_problem(
    exc: h11.RemoteProtocolError, closed: bool, chunked: bool, in_chunk: bool, received: int, headers: dict[str, str]
) -> str:
    if closed:
        if chunked:
            where = (
                "in the middle of a chunk of its body" if in_chunk else "its chunked body ended before the last chunk"
            )
            return f"{CUT_SHORT} ({where})"
        length = headers.get("content-length", "")
        if length.isascii() and length.isdigit():  # h11 has checked it: 1 to 20 ASCII digits
            return f"{CUT_SHORT} (after {received:,} of the {int(length):,} bytes its Content-Length announced)"
        return CUT_SHORT
    reason = str(exc)  # h11's own words, used only to choose ours
    if reason.startswith("malformed chunk footer"):
        return "malformed chunked body: a chunk is longer than its size says"
    if reason.startswith("illegal chunk header"):
        return "malformed chunked body: a chunk size is not hexadecimal"
    if reason.startswith("illegal header line"):
        return "malformed chunked body: a trailer field after its last chunk is malformed"
    return "malformed chunked body"


# --- naming what h11 refused in a head ----------------------------------------------------------

# h11's status line: one SP each side of the code, a reason without controls other than HTAB
_STATUS_LINE = re.compile(rb"HTTP/[0-9]\.[0-9] ([0-9]{3})(?: (?:[ \t]|[^\x00\s])*)?")
_STATUS_START = re.compile(rb"HTTP/[0-9]\.[0-9][ \t]+([^ \t]*)")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(rb"[^\x00\s]+(?:[ \t]+[^\x00\s]+)*")  # h11's field-content, obs-text included
_DIGITS = re.compile(rb"[0-9]{1,20}")  # h11's bound for Content-Length
_OWS = b" \t"


def _head_problem(exc: h11.RemoteProtocolError, data: bytes) -> str:
    """A sentence for a head h11 refused: `data` is all that came before (interim answers
    included), read again line by line (LF or CRLF, as h11 reads them) to find the first line
    h11 could not take. h11's own words are only a last resort, without the bytes they quote."""
    if exc.error_status_hint == 431:  # h11: "Receive buffer too long" (the head is incomplete)
        return f"the answer's header is larger than {MAX_HEAD // 1024} KiB"
    if not data:
        return "the server closed the connection without answering"
    *lines, rest = data.split(b"\n")
    status_due = True
    fields: list[list[bytes]] = []
    status = 0
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
        if status_due:
            found = _status_problem(line)
            if isinstance(found, str):
                return found
            status, status_due, fields = found, False, []
            continue
        if not line:
            found_field = _fields_problem(fields)
            if found_field:
                return found_field
            if status == 101:
                return _SWITCHED
            if status >= 200:
                break  # the head of the real answer is fine: h11 refused something we cannot name
            status_due = True
            continue
        if line[:1] in (b" ", b"\t"):
            if not fields:
                return f"malformed header line: '{from_wire(line, 60)}'"
            fields[-1][1] += b" " + line.strip(_OWS)  # obsolete line folding: a space, says RFC 9112
            continue
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.fullmatch(name):
            return f"malformed header line: '{from_wire(line, 60)}'"
        fields.append([name, value.strip(_OWS)])
    else:
        if status_due and rest and not (rest.startswith(b"HTTP/") or b"HTTP/".startswith(rest)):
            return f"not an HTTP answer: '{from_wire(rest, 60)}'"
        return CUT_SHORT
    return f"the answer's head breaks the rules of HTTP/1.1 ({_h11_words(exc)})"


def _status_problem(line: bytes) -> str | int:
    """The status code, or why the status line is refused."""
    match = _STATUS_LINE.fullmatch(line)
    if match is None:
        start = _STATUS_START.match(line)
        if start is None:
            if line.startswith(b"HTTP/"):
                return f"malformed status line '{from_wire(line, 60)}'"
            return f"not an HTTP answer: '{from_wire(line, 60)}'"
        if not re.fullmatch(rb"[0-9]{3}", start.group(1)):
            return f"malformed status line '{from_wire(line, 60)}': the status code must be three ASCII digits"
        if re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", line):
            return f"control character in the status line '{from_wire(line, 60)}'"
        return f"malformed status line '{from_wire(line, 60)}'"
    status = int(match.group(1))
    if not 100 <= status <= 599:
        return f"status code {status} is outside 100-599"
    return status


def _fields_problem(fields: list[list[bytes]]) -> str | None:
    lengths: set[bytes] = set()
    sent: list[bytes] = []  # the Content-Length values, as sent
    codings = 0
    for name, value in fields:
        if value and not _VALUE.fullmatch(value):
            return f"control character in header '{from_wire(name, 40)}'"
        lower = name.lower()
        if lower == b"content-length":
            sent.append(value)
            shown = printable(_text(b", ".join(sent)), 60)
            parts = {part.strip(_OWS) for part in value.split(b",")}
            if not all(_DIGITS.fullmatch(part) for part in parts):
                return f"the Content-Length header is not a number: '{shown}'"
            lengths |= parts
            if len(lengths) > 1:
                return f"the answer has conflicting Content-Length headers: '{shown}'"
        elif lower == b"transfer-encoding":
            codings += 1
            if codings > 1 or value.lower() != b"chunked":
                return (
                    f"the answer's Transfer-Encoding '{printable(_text(value), 60)}' is not one the probe "
                    "reads (only chunked, once)"
                )
    return None


def _h11_words(exc: h11.RemoteProtocolError) -> str:
    return printable(str(exc).split(":", 1)[0], 80)


# --- the page's text, for the keyword -----------------------------------------------------------

# WHATWG reads a <meta> charset in the first 1024 bytes; pages with a long head put it later, and
# a missed charset is a false keyword_missing, so a little more is read
SNIFF_BYTES = 4096
_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]{1,40})""", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta\s[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]{1,40})""", re.IGNORECASE)
# labels browsers read differently from Python (the WHATWG Encoding Standard): a page labelled
# Shift_JIS by a Windows tool holds Windows-31J characters (①, ㈱), one labelled gb2312 GBK ones,
# one labelled iso-8859-1 windows-1252 ones
_LABELS = {
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "csshiftjis": "cp932",
    "windows-31j": "cp932",
    "x-euc-jp": "euc_jp",
    "gb2312": "gbk",
    "gb_2312": "gbk",
    "gb_2312-80": "gbk",
    "csgb2312": "gbk",
    "x-gbk": "gbk",
    "chinese": "gbk",
    "big5": "big5hkscs",
    "x-x-big5": "big5hkscs",
    "cn-big5": "big5hkscs",
    "csbig5": "big5hkscs",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "l1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
}
# Python codecs that are no page's encoding (or that only raise), read as UTF-8 instead
_NOT_PAGES = {"idna", "punycode", "raw-unicode-escape", "unicode-escape", "undefined", "utf-7"}


@functools.lru_cache(maxsize=256)
def _codec(label: str, from_meta: bool) -> str | None:
    """The Python codec for a charset label, or None for an unknown or unusable one."""
    label = label.strip().lower()
    name = _LABELS.get(label, label)
    try:
        info = codecs.lookup(name)
        b"".decode(info.name)  # a bytes-to-bytes codec (base64, zlib) is refused here
    except (LookupError, UnicodeError, ValueError):
        return None
    if info.name in _NOT_PAGES:
        return None
    if from_meta and info.name.startswith("utf-16"):
        return "utf-8"  # a meta tag readable as ASCII cannot be UTF-16, says the HTML standard
    return info.name


def page_charset(answer: Answer) -> str:
    """The codec a page is read with: a byte-order mark, else the Content-Type's charset, else a
    <meta charset> or <meta http-equiv="Content-Type" content="...; charset=..."> in the first
    bytes of the body, else UTF-8 (also for a name no codec has)."""
    body = answer.body
    if body.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    match = _CHARSET_PARAM.search(answer.headers.get("content-type", ""))
    if match:
        found = _codec(match.group(1), from_meta=False)
        if found:
            return found
    meta = _META_CHARSET.search(body, 0, SNIFF_BYTES)
    if meta:
        found = _codec(meta.group(1).decode("ascii"), from_meta=True)
        if found:
            return found
    return "utf-8"


def page_contains(answer: Answer, keyword: str) -> bool:
    """Whether the page's text (page_text) holds `keyword`. A UTF-8 page is searched as bytes,
    which gives the same answer (UTF-8 resynchronises after any bad byte, and each character has
    one encoding) without decoding up to 2 MiB: most pages are UTF-8, and the search costs what
    it did before pages were decoded."""
    codec = page_charset(answer)
    if codec == "utf-8" and "\ufffd" not in keyword:  # U+FFFD is what bad bytes decode to
        try:
            return keyword.encode("utf-8") in answer.body
        except UnicodeEncodeError:  # a lone surrogate, which no decoded page holds either
            return False
    return keyword in page_text(answer, codec)


def page_text(answer: Answer, codec: str | None = None) -> str:
    """The body as text, decoded as page_charset says (or `codec`, which it said already); a byte
    the charset cannot read is U+FFFD."""
    codec = codec or page_charset(answer)
    try:
        return answer.body.decode(codec, "replace")
    except (LookupError, UnicodeError):  # a codec that refuses "replace"
        return answer.body.decode("utf-8", "replace")
