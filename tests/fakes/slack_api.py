"""A Slack stand-in on 127.0.0.1 (port 0): the Web API methods certops calls, response_url
endpoints, and a Socket Mode WebSocket, recording every call it receives.

It speaks the real wire protocol (slack_sdk's AsyncWebClient, Bolt's respond() and the
socket-mode client talk to it unchanged) and keeps the messages it was asked to post and edit,
so tests assert on what a Slack user would see.

Outages are scripted with `fail()`: an HTTP status (503, 429 with Retry-After) or a Slack error
code in an ok=false answer, for some calls, for a while, or until `recover()`. Failed calls are
recorded too (with their status and error); `accepted()` lists only those Slack carried out.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from bot.web import serve_app

BOT_TOKEN = "xoxb-test-not-a-real-token"
APP_TOKEN = "xapp-test-not-a-real-token"
SIGNING_SECRET = "test-signing-secret-not-real"


@dataclass
class Call:
    method: str  # "chat.update", or "response_url" for answers sent to a response_url
    body: dict[str, Any]
    token: str | None = None
    at: float = field(default_factory=time.monotonic)
    status: int = 200  # the HTTP status answered
    error: str | None = None  # the error code of an ok=false answer


@dataclass
class Failure:
    """A scripted outage: how to answer matching calls, and for how long."""

    status: int = 200  # 503, 429, ...; 200 with `error` is how Slack refuses most things
    error: str | None = None  # the ok=false error code; None with a 5xx answers a bare HTML page
    retry_after: float | None = None  # the Retry-After header, in seconds
    methods: frozenset[str] | None = None  # None: every Web API method
    times: int | None = None  # how many calls; None: until `until` or recover()
    until: float | None = None  # on the stand-in's clock
    delay: float = 0.0  # real seconds before answering; with neither status nor error, then answer as usual
    # with `delay`: carry the call out at once and hold only the answer (a post that lands even
    # though its caller, dying meanwhile, never hears so)
    answer_late: bool = False

    def matches(self, method: str, now: float) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        if self.until is not None and now >= self.until:
            return False
        return self.times is None or self.times > 0


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    edits: int = 0
    thread_ts: str | None = None  # the parent's ts, for a reply in a thread
    metadata: dict[str, Any] | None = None  # as chat.postMessage's `metadata` gave it
    user: str = "U0BOT"  # who posted it (auth.test's user_id: the bot)
    broadcast: bool = False  # a thread reply also sent to the channel

    def block_text(self) -> str:
        return text_of(self.blocks)

    def button_values(self) -> list[str]:
        return [
            e["value"]
            for b in self.blocks
            if b.get("type") == "actions"
            for e in b.get("elements", [])
            if e.get("type") == "button"
        ]


class SlackAPI:
    def __init__(
        self,
        *,
        groups: dict[str, list[str]] | None = None,
        not_member_of: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.groups = groups or {}
        self.not_member_of = set(not_member_of)
        self.clock = clock  # what fail(seconds=...) counts in: a test's own clock keeps outages sleep-free
        self.failures: list[Failure] = []
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], Message] = {}
        self._last_ts = 0.0
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.url = ""

    # lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> SlackAPI:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{id}", self._response_url)
        app.router.add_get("/socket", self._socket)
        self._runner, port = await serve_app(app, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in self._sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self) -> str:
        return f"{self.url}/response/{uuid.uuid4().hex}"

    # scripted outages ------------------------------------------------------------------------

    def fail(
        self,
        status: int = 200,
        *,
        error: str | None = None,
        retry_after: float | None = None,
        methods: Iterable[str] | None = None,
        times: int | None = None,
        seconds: float | None = None,
        delay: float = 0.0,
        answer_late: bool = False,
    ) -> Failure:
        """From now on, answer matching calls this way: `times` calls, for `seconds` on the
        stand-in's clock, or until recover(). Outages queue up: the first one still in force
        answers, so fail(503, seconds=300) then fail(429, retry_after=2, times=1) is a five-minute
        outage followed by one rate limit. fail(delay=...) alone is a slow Slack that still works."""
        failure = Failure(
            status,
            error,
            retry_after,
            frozenset(methods) if methods is not None else None,
            times,
            self.clock() + seconds if seconds is not None else None,
            delay,
            answer_late,
        )
        self.failures.append(failure)
        return failure

    def recover(self) -> None:
        self.failures.clear()

    def delete(self, channel: str, ts: str) -> None:
        """Someone deleted the message: a chat.update of it gets message_not_found."""
        del self.messages[(channel, ts)]

    def _failure(self, method: str) -> Failure | None:
        now = self.clock()
        self.failures = [f for f in self.failures if f.until is None or now < f.until]
        self.failures = [f for f in self.failures if f.times is None or f.times > 0]
        failure = next((f for f in self.failures if f.matches(method, now)), None)
        if failure is not None and failure.times is not None:
            failure.times -= 1
        return failure

    # what was received ----------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def accepted(self, method: str) -> list[Call]:
        """The calls to `method` that Slack carried out (neither a scripted outage nor an error)."""
        return [c for c in self.calls_to(method) if c.status == 200 and c.error is None]

    async def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[Call]:
        async def enough() -> list[Call]:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.calls_to(method)) >= count)
            return self.calls_to(method)

        return await asyncio.wait_for(enough(), timeout)

    def message(self, channel: str, ts: str) -> Message:
        return self.messages[(channel, ts)]

    def only_message(self) -> Message:
        [message] = self.messages.values()
        return message

    # Socket Mode ----------------------------------------------------------------------------

    async def wait_for_socket(self, timeout: float = 10.0) -> None:
        async def connected() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: bool(self._sockets))

        await asyncio.wait_for(connected(), timeout)

    async def socket_send(self, kind: str, payload: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Sends one envelope the way Slack does and returns the app's ack (envelope_id and,
        for commands, the response payload)."""
        envelope_id = uuid.uuid4().hex
        ack: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = ack
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload, "accepts_response_payload": True}
        await self._sockets[-1].send_str(json.dumps(envelope))
        return await asyncio.wait_for(ack, timeout)

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0TEST"}}))
        async with self._changed:
            self._sockets.append(ws)
            self._changed.notify_all()
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                data = json.loads(msg.data)
                future = self._acks.pop(str(data.get("envelope_id")), None)
                if future is not None and not future.done():
                    future.set_result(data)
        return ws

    # Web API --------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await _body(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") or str(body.get("token") or "") or None
        call = Call(method, body, token)
        await self._record(call)
        failure = self._failure(method)
        if failure is not None and failure.answer_late:
            answer = self._answer(call)
            await asyncio.sleep(failure.delay)
            return answer
        if failure is not None and failure.delay:
            await asyncio.sleep(failure.delay)
        if failure is not None and (failure.status != 200 or failure.error is not None):
            return _scripted(call, failure)
        return self._answer(call)

    def _answer(self, call: Call) -> web.Response:
        method, body, token = call.method, call.body, call.token
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != expected:
            call.error = "invalid_auth"
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            call.error = "unknown_method"
            return web.json_response({"ok": False, "error": "unknown_method"})
        result: dict[str, Any] = handler(body)
        if not result.get("ok"):
            call.error = str(result.get("error"))
        return web.json_response(result)

    async def _response_url(self, request: web.Request) -> web.Response:
        await self._record(Call("response_url", await request.json()))
        return web.Response(text="ok")

    async def _record(self, call: Call) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    def _auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://certops-test.slack.com/",
            "team": "certops test",
            "user": "certops",
            "team_id": "T0TEST",
            "user_id": "U0BOT",
            "bot_id": "B0BOT",
        }

    def _apps_connections_open(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": self.url.replace("http://", "ws://") + "/socket"}

    def _next_ts(self) -> str:
        # Slack's ts is its clock at posting, unique per channel; conversations.history's `oldest` compares with it
        self._last_ts = max(time.time(), self._last_ts + 0.000001)
        return f"{self._last_ts:.6f}"

    def _chat_postMessage(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = str(body.get("channel"))
        if channel in self.not_member_of:
            return {"ok": False, "error": "not_in_channel"}
        ts = self._next_ts()
        metadata = body.get("metadata")
        if isinstance(metadata, str):  # form-encoded calls carry it as a JSON string
            metadata = json.loads(metadata)
        thread_ts = str(body["thread_ts"]) if body.get("thread_ts") else None
        broadcast = str(body.get("reply_broadcast")).lower() in ("true", "1")
        message = Message(
            channel, ts, str(body.get("text") or ""), _blocks(body), 0, thread_ts, metadata, "U0BOT", broadcast
        )
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": message.text, "ts": ts}}

    def _conversations_history(self, body: dict[str, Any]) -> dict[str, Any]:
        """Newest first, top-level messages (and replies also sent to the channel), in pages."""
        channel = str(body.get("channel"))
        found = [m for m in self.messages.values() if m.channel == channel and (m.thread_ts is None or m.broadcast)]
        return self._page(sorted(found, key=lambda m: -float(m.ts)), body)

    def _conversations_replies(self, body: dict[str, Any]) -> dict[str, Any]:
        """The parent, then its replies, oldest first."""
        channel, parent = str(body.get("channel")), str(body.get("ts"))
        if (channel, parent) not in self.messages:
            return {"ok": False, "error": "thread_not_found"}
        found = [m for m in self.messages.values() if m.channel == channel and parent in (m.ts, m.thread_ts)]
        return self._page(sorted(found, key=lambda m: float(m.ts)), body)

    def _page(self, found: list[Message], body: dict[str, Any]) -> dict[str, Any]:
        if str(body.get("channel")) in self.not_member_of:
            return {"ok": False, "error": "not_in_channel"}
        oldest = float(body.get("oldest") or 0)
        found = [m for m in found if float(m.ts) > oldest]
        start, limit = int(body.get("cursor") or 0), int(body.get("limit") or 100)
        with_metadata = str(body.get("include_all_metadata")).lower() in ("true", "1")
        page = [
            {"type": "message", "ts": m.ts, "user": m.user, "text": m.text, "thread_ts": m.thread_ts}
            | ({"metadata": m.metadata} if with_metadata and m.metadata else {})
            for m in found[start : start + limit]
        ]
        more = start + limit < len(found)
        return {
            "ok": True,
            "messages": page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _chat_update(self, body: dict[str, Any]) -> dict[str, Any]:
        key = (str(body.get("channel")), str(body.get("ts")))
        message = self.messages.get(key)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message.text, message.blocks = str(body.get("text") or ""), _blocks(body)
        message.edits += 1
        return {"ok": True, "channel": key[0], "ts": key[1], "text": message.text}

    def _chat_postEphemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message_ts": self._next_ts()}

    def _usergroups_users_list(self, body: dict[str, Any]) -> dict[str, Any]:
        group = str(body.get("usergroup"))
        if group not in self.groups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": self.groups[group]}


def _scripted(call: Call, failure: Failure) -> web.Response:
    call.status, call.error = failure.status, failure.error or f"HTTP {failure.status}"
    headers = {"Retry-After": f"{failure.retry_after:g}"} if failure.retry_after is not None else None
    if failure.error is None and failure.status >= 500:
        # what a load balancer in front of Slack answers: no JSON at all
        return web.Response(
            status=failure.status, text="<html>Service Unavailable</html>", headers=headers, content_type="text/html"
        )
    return web.json_response(
        {"ok": False, "error": failure.error or "ratelimited"}, status=failure.status, headers=headers
    )


async def _body(request: web.Request) -> dict[str, Any]:
    body: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body.update(await request.json())
    elif request.can_read_body:
        body.update(await request.post())
    return body


def _blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = body.get("blocks") or []
    if isinstance(blocks, str):  # form-encoded calls carry blocks as a JSON string
        blocks = json.loads(blocks)
    return list(blocks)


def text_of(blocks: object) -> str:
    """Every visible string of some blocks (or a JSON string of them), for assertions."""
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    return "\n".join(_strings(blocks))


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() if k not in ("type", "action_id", "value", "style") for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []
