"""Hostile requests for the bot's webhooks: unsigned, badly signed, and signed but malformed.

Each request goes out over a raw socket, so a header can carry any bytes (non-ASCII, invalid
UTF-8, 5,000 digits, twice the same name) and arrives exactly as written. Every exchange has a
deadline of its own: a server that never answers makes `send` return status 0, not hang.

The cases are what the issue reports and what an attacker would try next; each names the answer
it should get (401 for anything that fails verification, 400 for an authentic but malformed
body, 413 for one over the size limit).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

FORM = b"application/x-www-form-urlencoded"
JSON = b"application/json"
DEEP = 50_000  # the nesting the issue reports: far past Python's recursion limit
FORGED_LINE = "\n2025-01-01 00:00:00,000 WARNING bot.chat.slack: approved repair-store on iis01 by U0ALICE\n"
MEGABYTE_BODY = 1_000_000  # under the web server's 1 MiB body limit, so it reaches the handler
_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@dataclass(frozen=True)
class Hostile:
    name: str
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    expect: int  # the status a hardened server answers


@dataclass(frozen=True)
class Answer:
    status: int  # 0: closed or timed out without an answer
    body: bytes


async def send(
    host: str, port: int, path: str, case: Hostile, *, timeout: float = 5.0, method: bytes = b"POST"
) -> Answer:
    """One request on a connection of its own (Connection: close), answered within `timeout`."""
    head = [method + b" " + path.encode() + b" HTTP/1.1", b"Host: " + host.encode(), b"Connection: close"]
    head.append(b"Content-Length: " + str(len(case.body)).encode())
    head += [name + b": " + value for name, value in case.headers]
    raw = b"\r\n".join(head) + b"\r\n\r\n" + case.body
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(raw)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()  # a server may answer (413, 401) and close before the body is in
                answer = await reader.read()
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
    except (TimeoutError, ConnectionError):
        return Answer(0, b"")
    status_line, _, rest = answer.partition(b"\r\n")
    parts = status_line.split(b" ")
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return Answer(status, rest.partition(b"\r\n\r\n")[2])


async def send_all(
    host: str, port: int, path: str, cases: list[Hostile], *, timeout: float = 5.0
) -> list[tuple[Hostile, Answer]]:
    return [(case, await send(host, port, path, case, timeout=timeout)) for case in cases]


def deep_json(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


# Slack ------------------------------------------------------------------------------------------


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 signature: hex HMAC-SHA256 of "v0:{timestamp}:{body}" with the signing secret."""
    mac = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return "v0=" + mac.hexdigest()


def slack_signed(secret: str, body: bytes, content_type: bytes = FORM) -> tuple[tuple[bytes, bytes], ...]:
    ts = str(int(time.time()))
    return (
        (b"Content-Type", content_type),
        (b"X-Slack-Request-Timestamp", ts.encode()),
        (b"X-Slack-Signature", slack_signature(secret, ts, body).encode()),
    )


def slack_command(text: str = "help", user: str = "U0ALICE") -> bytes:
    return urlencode(
        {"command": "/ssl", "text": text, "user_id": user, "user_name": user.lower(), "channel_id": "C0CERTOPS",
         "team_id": "T0TEST", "response_url": "http://127.0.0.1:9/hook", "trigger_id": f"{time.time_ns()}.1.x"}
    ).encode()  # fmt: skip


def slack_press(**changes: Any) -> dict[str, Any]:
    """A block_actions payload for a certops button; `changes` replace top-level keys (None drops one)."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "U0ALICE", "username": "u0alice"},
        "team": {"id": "T0TEST"},
        "api_app_id": "A0TEST",
        "container": {"type": "message", "message_ts": "1.2", "channel_id": "C0CERTOPS", "is_ephemeral": False},
        "channel": {"id": "C0CERTOPS"},
        "trigger_id": f"{time.time_ns()}.1.x",
        "response_url": "http://127.0.0.1:9/hook",
        "actions": [{"action_id": "certops_btn_0", "block_id": "b0", "value": "act:nothing", "type": "button"}],
    }
    for key, value in changes.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


def _payload_body(payload: Any) -> bytes:
    return urlencode({"payload": payload if isinstance(payload, str) else json.dumps(payload)}).encode()


def unsigned_slack(secret: str) -> list[Hostile]:
    """Requests that must all fail verification: 401, one short log line, nothing else."""
    body = slack_command()
    now = str(int(time.time()))
    good = slack_signature(secret, now, body).encode()

    def with_headers(name: str, ts: bytes | None, sig: bytes | None, payload: bytes = body) -> Hostile:
        headers = [(b"Content-Type", FORM)]
        if ts is not None:
            headers.append((b"X-Slack-Request-Timestamp", ts))
        if sig is not None:
            headers.append((b"X-Slack-Signature", sig))
        return Hostile(name, payload, tuple(headers), 401)

    def odd(name: str, ts: str) -> Hostile:
        """A timestamp Python's int() reads as now, signed as sent: only a strict check refuses it."""
        return with_headers(name, ts.encode(), slack_signature(secret, ts, body).encode())

    stale = str(int(time.time()) - 400)
    future = str(int(time.time()) + 400)
    forged = ("text=help" + FORGED_LINE).encode()
    return [
        with_headers("no signature headers", None, None),
        with_headers("signed with another secret", now.encode(), slack_signature(secret + "x", now, body).encode()),
        with_headers("a body changed after signing", now.encode(), good, body + b"&user_id=U0ALICE"),
        with_headers("a non-numeric timestamp", b"abc", good),
        with_headers("a 400-digit timestamp", b"9" * 400, good),
        with_headers("a 5,000-digit timestamp", b"9" * 5000, good),
        with_headers("a negative timestamp", b"-1", good),
        odd("a timestamp in Arabic-Indic digits", now.translate(_ARABIC_INDIC)),
        odd("a timestamp with a plus sign", "+" + now),
        odd("a timestamp with underscores", now[:4] + "_" + now[4:]),
        odd("a timestamp with leading zeros", "0" * 20 + now),
        with_headers("an empty timestamp", b"", good),
        with_headers(
            "a timestamp older than five minutes", stale.encode(), slack_signature(secret, stale, body).encode()
        ),
        with_headers("a timestamp five minutes ahead", future.encode(), slack_signature(secret, future, body).encode()),
        with_headers("a non-ASCII signature", now.encode(), "v0=é".encode() + b"0" * 62),
        with_headers("a signature that is not UTF-8", now.encode(), b"v0=\xff\xfe" + b"0" * 62),
        with_headers("a v1 signature", now.encode(), b"v1" + good[2:]),
        with_headers("a short signature", now.encode(), b"v0=abc"),
        with_headers("an 8,000-character signature", now.encode(), b"v0=" + b"a" * 8000),
        with_headers("an upper-case signature", now.encode(), b"v0=" + good[3:].upper()),
        Hostile(
            "the signature header twice",
            body,
            (
                (b"Content-Type", FORM),
                (b"X-Slack-Request-Timestamp", now.encode()),
                (b"X-Slack-Signature", b"v0=" + b"0" * 64),
                (b"X-Slack-Signature", good),
            ),
            401,
        ),
        with_headers("an unsigned body that forges a log line", now.encode(), b"v0=" + b"0" * 64, forged),
        with_headers("an unsigned 1 MB body", now.encode(), b"v0=" + b"0" * 64, b"text=" + b"A" * MEGABYTE_BODY),
        with_headers("an unsigned body nested 50,000 deep", None, None, _payload_body(deep_json())),
        Hostile("an unsigned 2 MB body", b"x" * 2_000_000, ((b"Content-Type", FORM),), 413),
    ]


def malformed_slack(secret: str) -> list[Hostile]:
    """Correctly signed requests with bodies no certops listener can use: 400, one short line."""

    def signed(name: str, body: bytes, content_type: bytes = FORM) -> Hostile:
        return Hostile(name, body, slack_signed(secret, body, content_type), 400)

    nested: dict[str, Any] = {}
    node = nested
    for _ in range(100):
        node["a"] = {}
        node = node["a"]
    return [
        signed("a payload that is not JSON", _payload_body("{not json")),
        signed("a payload that is a JSON array", _payload_body([1, 2])),
        signed("a payload that is a JSON string", _payload_body("x")),
        signed("a payload that is a JSON number", _payload_body(7)),
        signed("actions that are an object", _payload_body(slack_press(actions={"value": "x"}))),
        signed("actions that are a string", _payload_body(slack_press(actions="x"))),
        signed("actions that are an empty list", _payload_body(slack_press(actions=[]))),
        signed("an action that is a string", _payload_body(slack_press(actions=["x"]))),
        signed("an action value that is an object", _payload_body(slack_press(actions=[{"value": {"a": 1}}]))),
        signed("a user that is a string", _payload_body(slack_press(user="U0ALICE"))),
        signed("a user id that is a list", _payload_body(slack_press(user={"id": ["U0ALICE"]}))),
        signed("a container that is a string", _payload_body(slack_press(container="x"))),
        signed("a channel that is a list", _payload_body(slack_press(channel=["C0CERTOPS"]))),
        signed("a message that is a string", _payload_body(slack_press(message="x"))),
        signed("a trigger_id that is an object", _payload_body(slack_press(trigger_id={"a": 1}))),
        signed("a type that is a number", _payload_body(slack_press(type=1))),
        signed("a payload nested 50,000 deep", _payload_body(deep_json())),
        signed("a payload nested 100 deep", _payload_body(slack_press(view=nested))),
        signed("a JSON body nested 50,000 deep", deep_json().encode(), JSON),
        signed("a JSON body that is an array", b"[1, 2]", JSON),
        signed("a JSON body that is not JSON", b"{nope", JSON),
        signed("a body that is not UTF-8", b"command=%2Fssl&text=\xff\xfe", FORM),
    ]


# LINE -------------------------------------------------------------------------------------------


def line_signature(secret: str, body: bytes) -> str:
    """LINE's X-Line-Signature: base64 HMAC-SHA256 of the raw body with the channel secret."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def line_event(**changes: Any) -> dict[str, Any]:
    """A /ssl help text message event; `changes` replace keys (None drops one)."""
    event: dict[str, Any] = {
        "type": "message",
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "webhookEventId": f"01HOSTILE{time.time_ns()}",
        "deliveryContext": {"isRedelivery": False},
        "replyToken": "reply-token-hostile",
        "source": {"type": "user", "userId": "U" + "a" * 32},
        "message": {"type": "text", "id": "1", "quoteToken": "q", "text": "/ssl help"},
    }
    for key, value in changes.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return event


def _line_body(events: Any) -> bytes:
    return json.dumps({"destination": "Ubot", "events": events}).encode()


def unsigned_line(secret: str) -> list[Hostile]:
    body = _line_body([line_event()])
    good = line_signature(secret, body).encode()

    def with_signature(name: str, sig: bytes | None, payload: bytes = body, twice: bool = False) -> Hostile:
        headers = [(b"Content-Type", JSON)]
        if sig is not None:
            headers.append((b"X-Line-Signature", sig))
        if twice:
            headers.append((b"X-Line-Signature", good))
        return Hostile(name, payload, tuple(headers), 401)

    forged = json.dumps({"destination": FORGED_LINE, "events": []}).encode()
    return [
        with_signature("no signature", None),
        with_signature("an empty signature", b""),
        with_signature("signed with another secret", line_signature(secret + "x", body).encode()),
        with_signature("the signature of another body", line_signature(secret, b"{}").encode()),
        with_signature("a signature that is not base64", b"garbage"),
        with_signature("a non-ASCII signature", "é".encode() + good[2:]),
        with_signature("a signature that is not UTF-8", b"\xff\xfe" + good[2:]),
        with_signature("an 8,000-character signature", b"A" * 8000),
        with_signature("the signature header twice", b"A" * 43 + b"=", twice=True),
        with_signature("an unsigned body that forges a log line", b"A" * 43 + b"=", forged),
        with_signature("an unsigned 1 MB body", b"A" * 43 + b"=", b'{"x":"' + b"A" * MEGABYTE_BODY + b'"}'),
        with_signature("an unsigned body nested 50,000 deep", b"A" * 43 + b"=", deep_json().encode()),
        with_signature("an unsigned body that is not UTF-8", b"A" * 43 + b"=", b"\xff\xfe"),
    ]


def malformed_line(secret: str) -> list[Hostile]:
    def signed(name: str, body: bytes) -> Hostile:
        return Hostile(
            name, body, ((b"Content-Type", JSON), (b"X-Line-Signature", line_signature(secret, body).encode())), 400
        )

    deep_field = line_event(message={"type": "text", "id": "1", "text": "/ssl help", "x": json.loads(deep_json(100))})
    return [
        signed("a body that is not JSON", b"{nope"),
        signed("a body that is a JSON array", b"[]"),
        signed("events that are an object", _line_body({"a": line_event()})),
        signed("events that are a string", _line_body("events")),
        signed("events missing", b'{"destination": "Ubot"}'),
        signed("an event that is a number", _line_body([1])),
        signed("a source that is a string", _line_body([line_event(source="U" + "a" * 32)])),
        signed("a message that is a string", _line_body([line_event(message="/ssl help")])),
        signed("a postback that is a list", _line_body([line_event(type="postback", message=None, postback=[1])])),
        signed("an event type that is a number", _line_body([line_event(type=7)])),
        signed("an event without a type", _line_body([line_event(type=None)])),
        signed("a webhookEventId that is a list", _line_body([line_event(webhookEventId=["x"])])),
        signed("a timestamp that is a string", _line_body([line_event(timestamp="soon")])),
        signed("a destination that is an object", json.dumps({"destination": {}, "events": []}).encode()),
        signed("a body nested 50,000 deep", deep_json().encode()),
        signed("an event nested 100 deep", _line_body([deep_field])),
        signed("a body that is not UTF-8", b'{"events": [], "destination": "\xff"}'),
    ]
