"""Just enough HTTP/1.1 for a probe: one request per connection, the answer's head, and the body
when a keyword is checked."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot import __version__

MAX_HEAD = 64 * 1024
MAX_BODY = 2 * 1024 * 1024  # a keyword past the first 2 MiB is not looked for
USER_AGENT = f"certops/{__version__} (TLS probe)"


class HTTPProtocolError(Exception):
    pass


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes


def build_request(method: str, hostname: str, port: int, path: str) -> bytes:
    host = hostname if ":" not in hostname else f"[{hostname}]"
    if port != 443:
        host = f"{host}:{port}"
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode("ascii")


async def read_answer(reader: asyncio.StreamReader, *, want_body: bool, method: str) -> Answer:
    while True:
        answer = await _read_head(reader)
        if not 100 <= answer.status < 200:
            break  # 1xx answers (103 Early Hints...) come before the real one
    if want_body and method != "HEAD" and answer.status not in (204, 304):
        return Answer(answer.status, answer.headers, await _read_body(reader, answer.headers))
    return answer


async def _read_head(reader: asyncio.StreamReader) -> Answer:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HTTPProtocolError("the answer's header is larger than 64 KiB") from None
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise HTTPProtocolError("the server closed the connection without answering") from None
        raise HTTPProtocolError("the server closed the connection in the middle of its answer") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise HTTPProtocolError(f"not an HTTP answer: {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HTTPProtocolError(f"malformed header line: {line[:60]!r}")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return Answer(int(parts[1]), headers, b"")


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    length = headers.get("content-length")
    if length is not None and length.strip().isdigit():
        try:
            return await reader.readexactly(min(int(length), MAX_BODY))
        except asyncio.IncompleteReadError as exc:
            return exc.partial
    body = bytearray()
    while len(body) < MAX_BODY:  # no length given: the body ends when the server closes
        chunk = await reader.read(MAX_BODY - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while len(body) < MAX_BODY:
        size_line = await reader.readline()
        if not size_line:
            break
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            raise HTTPProtocolError("malformed chunked body") from None
        if size == 0:
            break
        try:
            body += await reader.readexactly(min(size, MAX_BODY - len(body)))
            if len(body) >= MAX_BODY:
                break
            await reader.readexactly(2)
        except asyncio.IncompleteReadError as exc:
            body += exc.partial
            break
    return bytes(body[:MAX_BODY])
