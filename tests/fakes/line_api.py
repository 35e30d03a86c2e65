"""A LINE Messaging API stand-in on 127.0.0.1 (port 0) that records every call.

It answers the endpoints certops uses the way LINE documents them
(developers.line.biz/en/reference/messaging-api/): reply tokens work once, pushes count against
a settable monthly quota (once per recipient: a group counts each member), a repeated
X-Line-Retry-Key gets 409, an exhausted quota gets 429, and a wrong bearer token gets 401.
Point the SDK at it with `[chat.line] api_url = stand_in.url`.

Outages are scripted with `fail()`: a status (503, 429 with Retry-After, 400...) for some pushes,
for a while, or until `recover()`; `accept=True` makes LINE take the push and lose the answer
(the case X-Line-Retry-Key exists for). `delivered` lists the pushes LINE actually took.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

from bot.web import serve_app

ACCESS_TOKEN = "test-line-access-token"


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    status: int = 200
    accepted: bool = False  # LINE took the push (whatever it answered)


@dataclass
class Failure:
    """A scripted outage of the push endpoint (or of `path`)."""

    status: int = 503
    retry_after: float | None = None  # the Retry-After header, in seconds
    times: int | None = None  # how many calls; None: until `until` or recover()
    until: float | None = None  # on the stand-in's clock
    accept: bool = False  # take the push, then answer `status` anyway (a lost response)
    path: str = "/v2/bot/message/push"

    def active(self, path: str, now: float) -> bool:
        return path == self.path and (self.until is None or now < self.until) and (self.times is None or self.times > 0)


@dataclass
class LineApiStandIn:
    access_token: str = ACCESS_TOKEN
    quota_type: str = "limited"  # "none" for an unlimited plan
    quota_limit: int = 200
    used: int = 0
    members: dict[str, int] = field(default_factory=dict)  # group id -> member count (default 1)
    fail_pushes: int = 0  # answer this many pushes with 500 before accepting
    clock: Callable[[], float] = time.monotonic  # what fail(seconds=...) counts in
    failures: list[Failure] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    url: str = ""
    _used_reply_tokens: set[str] = field(default_factory=set)
    _retry_keys: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None

    # what tests look at ------------------------------------------------------------------------

    def on(self, path: str) -> list[Call]:
        """Calls to a path that LINE accepted (status 200)."""
        return [c for c in self.calls if c.path == path and c.status == 200]

    @property
    def replies(self) -> list[Call]:
        return self.on("/v2/bot/message/reply")

    @property
    def pushes(self) -> list[Call]:
        return self.on("/v2/bot/message/push")

    def sent(self) -> list[Call]:
        return [c for c in self.calls if c.path in ("/v2/bot/message/reply", "/v2/bot/message/push")]

    @property
    def delivered(self) -> list[Call]:
        """Pushes LINE took, those whose answer was lost included."""
        return [c for c in self.calls if c.path == "/v2/bot/message/push" and c.accepted]

    def push_attempts(self) -> list[Call]:
        return [c for c in self.calls if c.path == "/v2/bot/message/push"]

    # scripted outages --------------------------------------------------------------------------

    def fail(
        self,
        status: int = 503,
        *,
        retry_after: float | None = None,
        times: int | None = None,
        seconds: float | None = None,
        accept: bool = False,
        path: str = "/v2/bot/message/push",
    ) -> Failure:
        """From now on, answer calls to `path` with `status`: `times` calls, for `seconds` on the
        stand-in's clock, or until recover(). The first outage still in force answers."""
        until = self.clock() + seconds if seconds is not None else None
        failure = Failure(status, retry_after, times, until, accept, path)
        self.failures.append(failure)
        return failure

    def recover(self) -> None:
        self.failures.clear()

    def _failure(self, path: str) -> Failure | None:
        now = self.clock()
        self.failures = [f for f in self.failures if f.until is None or now < f.until]
        self.failures = [f for f in self.failures if f.times is None or f.times > 0]
        failure = next((f for f in self.failures if f.active(path, now)), None)
        if failure is not None and failure.times is not None:
            failure.times -= 1
        return failure

    # server ------------------------------------------------------------------------------------

    async def __aenter__(self) -> LineApiStandIn:
        app = web.Application()
        app.router.add_post("/v2/bot/message/reply", self._reply)
        app.router.add_post("/v2/bot/message/push", self._push)
        app.router.add_get("/v2/bot/message/quota", self._quota)
        app.router.add_get("/v2/bot/message/quota/consumption", self._consumption)
        self._runner, port = await serve_app(app, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _record(self, request: web.Request) -> Call:
        body = await request.read()
        call = Call(request.method, request.path, dict(request.headers), await request.json() if body else None)
        self.calls.append(call)
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            call.status = 401
        return call

    def _answer(
        self, call: Call, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> web.Response:
        call.status = status
        return web.json_response(payload, status=status, headers=headers)

    def _scripted(self, call: Call, failure: Failure) -> web.Response:
        headers = {"Retry-After": f"{failure.retry_after:g}"} if failure.retry_after is not None else None
        message = "Too many requests" if failure.status == 429 else "Scripted failure"
        return self._answer(call, failure.status, {"message": message}, headers)

    async def _reply(self, request: web.Request) -> web.Response:
        call = await self._record(request)
        if call.status == 401:
            return self._answer(call, 401, {"message": "Authentication failed"})
        token = call.json.get("replyToken", "")
        messages = call.json.get("messages", [])
        if not 1 <= len(messages) <= 5:
            return self._answer(call, 400, {"message": "The request body has 1 error(s)"})
        if not token or token in self._used_reply_tokens or token.startswith("expired"):
            return self._answer(call, 400, {"message": "Invalid reply token"})
        self._used_reply_tokens.add(token)
        return self._answer(call, 200, {"sentMessages": [self._sent() for _ in messages]})

    async def _push(self, request: web.Request) -> web.Response:
        call = await self._record(request)
        if call.status == 401:
            return self._answer(call, 401, {"message": "Authentication failed"})
        messages = call.json.get("messages", [])
        if not 1 <= len(messages) <= 5:
            return self._answer(call, 400, {"message": "The request body has 1 error(s)"})
        key = request.headers.get("X-Line-Retry-Key")
        if key and key in self._retry_keys:
            return self._answer(call, 409, {"message": "The retry key is already accepted"})
        if self.fail_pushes > 0:
            self.fail_pushes -= 1
            return self._answer(call, 500, {"message": "Internal error"})
        failure = self._failure(request.path)
        if failure is not None and not failure.accept:
            return self._scripted(call, failure)
        cost = self.members.get(call.json.get("to", ""), 1)
        if self.quota_type == "limited" and self.used + cost > self.quota_limit:
            return self._answer(call, 429, {"message": "You have reached your monthly limit."})
        if key:
            self._retry_keys.add(key)
        self.used += cost
        call.accepted = True
        if failure is not None:  # taken, but the answer is lost on the way back
            return self._scripted(call, failure)
        return self._answer(call, 200, {"sentMessages": [self._sent() for _ in messages]})

    async def _quota(self, request: web.Request) -> web.Response:
        call = await self._record(request)
        if call.status == 401:
            return self._answer(call, 401, {"message": "Authentication failed"})
        if (failure := self._failure(request.path)) is not None:
            return self._scripted(call, failure)
        payload: dict[str, Any] = {"type": self.quota_type}
        if self.quota_type == "limited":
            payload["value"] = self.quota_limit
        return self._answer(call, 200, payload)

    async def _consumption(self, request: web.Request) -> web.Response:
        call = await self._record(request)
        if call.status == 401:
            return self._answer(call, 401, {"message": "Authentication failed"})
        return self._answer(call, 200, {"totalUsage": self.used})

    @staticmethod
    def _sent() -> dict[str, str]:
        return {"id": str(uuid.uuid4().int)[:18], "quoteToken": uuid.uuid4().hex}
