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
import random
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
        # a lone UTF-16 surrogate, escaped in JSON: valid JSON, but no text that can be stored or logged
        signed("a trigger_id with a lone surrogate", _payload_body(slack_press(trigger_id="\ud800"))),
        signed("a user id with a lone surrogate", _payload_body(slack_press(user={"id": "\ud800"}))),
        signed("an action value with a lone surrogate", _payload_body(slack_press(actions=[
            {"action_id": "certops_btn_0", "block_id": "b", "value": "\udfff", "type": "button"}]))),
        signed("a key with a lone surrogate", _payload_body(slack_press(**{"\udc00": "x"}))),
        signed("a JSON command whose text has a lone surrogate", json.dumps(
            {"command": "/ssl", "text": "\ud800", "user_id": "U0ALICE", "channel_id": "C0CERTOPS"}).encode(), JSON),
        signed("a form field that is an encoded surrogate", slack_command() + b"&text=%ED%A0%80"),
        signed("a form field that is not UTF-8", slack_command() + b"&text=%FF"),
        signed("a NaN in a payload", _payload_body('{"type": "block_actions", "x": NaN}')),
        signed("a number out of range", _payload_body('{"type": "block_actions", "x": 1e999}')),
        signed("an empty body", b""),
        signed("an empty JSON body", b"", JSON),
        signed("a view_submission with a numeric callback_id", _payload_body(
            {"type": "view_submission", "user": {"id": "U"}, "view": {"type": "modal", "callback_id": 5}})),
        signed("a view_submission whose view has no type", _payload_body(
            {"type": "view_submission", "user": {"id": "U"}, "view": {"callback_id": "modal"}})),
    ]  # fmt: skip


def slack_payloads(response_url: str = "http://127.0.0.1:9/hook") -> dict[str, dict[str, Any]]:
    """One well-formed body of each kind slack_bolt tells apart (request/payload_utils.py), as
    Slack's documentation shows them, cut down to the fields Bolt or certops read and a few more.
    Interactive payloads travel as a form's payload field, the rest as JSON (`slack_body`)."""
    now = f"{time.time():.6f}"
    team = {"id": "T0TEST", "domain": "certops-test", "enterprise_id": "E0TEST"}
    user = {"id": "U0ALICE", "username": "u0alice", "name": "u0alice", "team_id": "T0TEST"}
    channel = {"id": "C0CERTOPS", "name": "ops"}
    view = {
        "id": "V0TEST",
        "team_id": "T0TEST",
        "type": "modal",
        "blocks": [{"type": "input", "block_id": "b", "element": {"type": "plain_text_input", "action_id": "a"}}],
        "private_metadata": "",
        "callback_id": "certops_modal",
        "state": {"values": {"b": {"a": {"type": "plain_text_input", "value": "x"}}}},
        "hash": "1.abc",
        "title": {"type": "plain_text", "text": "certops"},
        "previous_view_id": None,
        "root_view_id": "V0TEST",
        "app_id": "A0TEST",
        "app_installed_team_id": "T0TEST",
        "bot_id": "B0TEST",
    }
    authorizations = [
        {"enterprise_id": None, "team_id": "T0TEST", "user_id": "U0BOT", "is_bot": True, "is_enterprise_install": False}
    ]

    def event(inner: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "token": "legacy",
            "team_id": "T0TEST",
            "api_app_id": "A0TEST",
            "event": {"event_ts": now, **inner},
            "type": "event_callback",
            "event_id": "Ev0TEST",
            "event_time": int(time.time()),
            "authorizations": authorizations,
            "is_ext_shared_channel": False,
            **extra,
        }

    message = {"type": "message", "user": "U0BOB", "text": "hi", "ts": "1.2", "team": "T0TEST"}
    return {
        "block_actions": slack_press(response_url=response_url),
        "block_actions in a modal": {
            **slack_press(response_url=response_url, container={"type": "view", "view_id": "V0TEST"}),
            "view": view,
            "channel": None,
        },
        "block_actions of a workflow function": {
            **slack_press(response_url=response_url),
            "function_data": {"execution_id": "Fx0TEST", "function": {"callback_id": "f"}, "inputs": {}},
            "bot_access_token": "xwfp-test",
        },
        "view_submission": {
            "type": "view_submission",
            "team": team,
            "user": user,
            "api_app_id": "A0TEST",
            "token": "legacy",
            "trigger_id": f"{time.time_ns()}.1.x",
            "view": view,
            "response_urls": [
                {"block_id": "b", "action_id": "a", "channel_id": "C0CERTOPS", "response_url": response_url}
            ],
            "is_enterprise_install": False,
            "enterprise": None,
        },
        "view_closed": {
            "type": "view_closed",
            "team": team,
            "user": user,
            "view": view,
            "api_app_id": "A0TEST",
            "is_cleared": False,
        },
        "shortcut": {
            "type": "shortcut",
            "token": "legacy",
            "action_ts": now,
            "team": team,
            "user": user,
            "is_enterprise_install": False,
            "enterprise": None,
            "callback_id": "certops_shortcut",
            "trigger_id": f"{time.time_ns()}.1.x",
        },
        "message_action": {
            "type": "message_action",
            "callback_id": "certops_message_shortcut",
            "trigger_id": f"{time.time_ns()}.1.x",
            "response_url": response_url,
            "team": team,
            "channel": channel,
            "user": user,
            "message": message,
            "message_ts": "1.2",
        },
        "block_suggestion": {
            "type": "block_suggestion",
            "user": user,
            "container": {"type": "view", "view_id": "V0TEST"},
            "api_app_id": "A0TEST",
            "token": "legacy",
            "action_id": "a",
            "block_id": "b",
            "value": "x",
            "team": team,
            "view": view,
        },
        "interactive_message": {
            "type": "interactive_message",
            "actions": [{"name": "approve", "type": "button", "value": "yes"}],
            "callback_id": "certops_attachment",
            "team": team,
            "channel": channel,
            "user": user,
            "action_ts": now,
            "message_ts": "1.2",
            "attachment_id": "1",
            "token": "legacy",
            "original_message": message,
            "response_url": response_url,
            "trigger_id": f"{time.time_ns()}.1.x",
        },
        "dialog_submission": {
            "type": "dialog_submission",
            "token": "legacy",
            "action_ts": now,
            "team": team,
            "user": user,
            "channel": channel,
            "submission": {"name": "x"},
            "callback_id": "certops_dialog",
            "response_url": response_url,
            "state": "dialog state",
        },
        "dialog_cancellation": {
            "type": "dialog_cancellation",
            "token": "legacy",
            "action_ts": now,
            "team": team,
            "user": user,
            "channel": channel,
            "callback_id": "certops_dialog",
            "response_url": response_url,
            "state": "dialog state",
        },
        "dialog_suggestion": {
            "type": "dialog_suggestion",
            "token": "legacy",
            "action_ts": now,
            "team": team,
            "user": user,
            "channel": channel,
            "name": "x",
            "value": "y",
            "callback_id": "certops_dialog",
            "state": "dialog state",
        },
        "workflow_step_edit": {
            "type": "workflow_step_edit",
            "token": "legacy",
            "action_ts": now,
            "team": team,
            "user": user,
            "callback_id": "certops_step",
            "trigger_id": f"{time.time_ns()}.1.x",
            "workflow_step": {"workflow_id": "W", "step_id": "s", "inputs": {}, "outputs": []},
        },
        "app_mention event": event(
            {"type": "app_mention", "user": "U0BOB", "text": "<@U0BOT> hi", "ts": "1.2", "channel": "C0CERTOPS"}
        ),
        "message event in a DM thread": event(
            {**message, "channel": "D0TEST", "channel_type": "im", "thread_ts": "1.1", "user_team": "T0TEST"}
        ),
        "message_changed event": event(
            {
                "type": "message",
                "subtype": "message_changed",
                "channel": "C0CERTOPS",
                "message": message,
                "previous_message": message,
                "hidden": True,
            }
        ),
        "reaction_added event": event(
            {
                "type": "reaction_added",
                "user": "U0BOB",
                "reaction": "eyes",
                "item": {"type": "message", "channel": "C0CERTOPS", "ts": "1.2"},
                "item_user": "U0BOT",
            }
        ),
        "function_executed event": event(
            {
                "type": "function_executed",
                "function": {"id": "Fn0", "callback_id": "f", "title": "f"},
                "inputs": {},
                "function_execution_id": "Fx0TEST",
                "workflow_execution_id": "Wx0",
                "bot_access_token": "xwfp-test",
            }
        ),
        "assistant_thread_started event": event(
            {
                "type": "assistant_thread_started",
                "assistant_thread": {
                    "user_id": "U0BOB",
                    "context": {"channel_id": "C0CERTOPS"},
                    "channel_id": "D0TEST",
                    "thread_ts": "1.1",
                },
            }
        ),
        "app_uninstalled event": event({"type": "app_uninstalled"}),
        "event in a shared channel": event(
            {**message, "channel": "C0CERTOPS", "user_team": "T0OTHER"},
            is_ext_shared_channel=True,
            context_team_id="T0TEST",
            enterprise_id="E0TEST",
        ),
        "url_verification": {
            "token": "legacy",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            "type": "url_verification",
        },
        "/ssl command as JSON": {
            "command": "/ssl",
            "text": "help",
            "user_id": "U0ALICE",
            "user_name": "u0alice",
            "channel_id": "C0CERTOPS",
            "team_id": "T0TEST",
            "response_url": response_url,
            "trigger_id": f"{time.time_ns()}.1.x",
        },
    }


INTERACTIVE = ("block_", "view_", "shortcut", "message_action", "interactive_message", "dialog_", "workflow_step_edit")


def slack_body(name: str, payload: Any) -> tuple[bytes, bytes]:
    """A payload of `slack_payloads` as Slack would send it: (body, content type)."""
    if name.startswith(INTERACTIVE):
        return _payload_body(payload), FORM
    return json.dumps(payload).encode(), JSON


# Keys that Bolt or certops read somewhere in a body, and values of every JSON type.
BOLT_KEYS = (
    "type", "view", "event", "actions", "authorizations", "response_urls", "response_url", "team", "user",
    "enterprise", "channel", "callback_id", "action_id", "block_id", "workflow_step", "function_data", "function",
    "function_execution_id", "execution_id", "bot_access_token", "is_ext_shared_channel", "is_enterprise_install",
    "message", "previous_message", "item", "assistant_thread", "thread_ts", "message_ts", "command", "challenge",
    "user_team", "team_id", "enterprise_id", "user_id", "channel_id", "app_installed_team_id", "ssl_check",
    "trigger_id", "container", "blocks", "elements", "value", "id", "text", "inputs", "subtype", "bot_id",
)  # fmt: skip
ODD_VALUES: tuple[Any, ...] = (
    5, 0, -1, 1.5, 10**400, -(2**64), True, False, None, "", "x", "1", "workflow_step", "block_actions",
    "view_submission", "event_callback", "function_executed", "/ssl", "certops_btn_0", "im", "E0", "T0",
    [], [None], [1], ["x"], [{}], [[]], {}, {"id": 5}, {"type": 5}, {"callback_id": 5}, {"id": None}, {"a": {"b": []}},
    {"type": "actions", "elements": "x"},
)  # fmt: skip


def mutate(value: Any, rng: random.Random) -> Any:
    """A copy of `value` with one change somewhere, at any depth: a field (one Bolt reads, more
    often than not) replaced by a value of another type or dropped, one of BOLT_KEYS added to an
    object, or a list's item replaced, added or the list emptied."""
    copy = json.loads(json.dumps(value))
    containers: list[dict[str, Any] | list[Any]] = []
    stack: list[Any] = [copy]
    while stack:
        node = stack.pop()
        if isinstance(node, dict | list):
            containers.append(node)
            stack.extend(node.values() if isinstance(node, dict) else node)
    target = rng.choice(containers)
    odd = rng.choice(ODD_VALUES)
    if isinstance(target, list):
        roll = rng.random()
        if target and roll < 0.6:
            target[rng.randrange(len(target))] = odd
        elif roll < 0.8:
            target.append(odd)
        else:
            target.clear()
        return copy
    read = [key for key in target if key in BOLT_KEYS]
    roll = rng.random()
    if target and roll < 0.7:
        key = rng.choice(read if read and rng.random() < 0.8 else list(target))
        if rng.random() < 0.3:
            del target[key]
        else:
            target[key] = odd
    else:
        target[rng.choice(BOLT_KEYS)] = odd
    return copy


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
        signed("a webhookEventId with a lone surrogate", _line_body([line_event(webhookEventId="\ud800x")])),
        signed("a userId with a lone surrogate", _line_body([line_event(source={"type": "user", "userId": "\udc00"})])),
        signed("a command with a lone surrogate", _line_body([line_event(
            message={"type": "text", "id": "1", "text": "/ssl status \ud800"})])),
        signed("a key with a lone surrogate", _line_body([line_event(**{"\ud800": 1})])),
        signed("a destination with a lone surrogate", json.dumps({"destination": "\udbff", "events": []}).encode()),
        signed("a timestamp out of range", _line_body([line_event()]).replace(b'"mode"', b'"x": 1e999, "mode"')),
        signed("a NaN", b'{"destination": "Ubot", "events": [], "x": NaN}'),
        signed("an empty body", b""),
        signed("a body that is JSON null", b"null"),
        signed("a timestamp of 400 digits", _line_body([line_event(timestamp=10**400)])),
        signed("a negative timestamp", _line_body([line_event(timestamp=-1)])),
    ]  # fmt: skip
