"""LINE through the Messaging API: the /line/webhook endpoint, free replies, and few pushes.

What LINE imposes, and how this adapter answers it (facts: shared/facts/chat-scheduler-probe.md §2):
- Events only arrive at a public HTTPS webhook. Every request's X-Line-Signature (base64
  HMAC-SHA256 of the raw body with the channel secret) is checked before anything else
  (`line_refusal`, strict about the header's form), then the body's shapes (`check_body`, with a
  bound on JSON nesting, and no string holding a lone surrogate): a refused request gets 401, an
  authentic but malformed one 400, each with one short log line (method, path, remote address,
  reason; never the body). An event the SDK cannot read (a newer type) is left out silently.
- Nothing in a signature is time-bound, so a captured request could be replayed: every event we
  act on is de-duplicated by its webhookEventId in the store, which also absorbs redeliveries.
- Replies are free but their tokens are single-use and short-lived; pushes count against a small
  monthly quota (a group push counts once per member). So the immediate answer always goes out
  as the reply, a slow follow-up's result is pushed, and when the quota runs low several pushes
  become one summary push (see `QuotaRule`).
- A press in a group may carry no userId; the approval logic then refuses and explains, and the
  refusal, like every private answer, only ever travels as a reply.

The SDK ships no type information (no py.typed), so its objects are `Any` here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from aiohttp import ClientError, web
from linebot.v3.messaging import (  # type: ignore[import-untyped, unused-ignore]
    ApiException,
    AsyncApiClient,
    AsyncMessagingApi,
    Configuration,
    PushMessageRequest,
    ReplyMessageRequest,
    TextMessage,
)
from linebot.v3.webhooks import (  # type: ignore[import-untyped, unused-ignore]
    Event,
    FollowEvent,
    GroupSource,
    JoinEvent,
    MessageEvent,
    PostbackEvent,
    RoomSource,
    TextMessageContent,
    UserSource,
)
from multidict import CIMultiDictProxy

from bot.app import Core
from bot.chat import line_flex
from bot.chat.base import DeliveryError, DeliveryKind, Outgoing, is_transient, parse_retry_after
from bot.config.model import LineSettings
from bot.core.ports import StoreRefused
from bot.logs import WithFields, logger
from bot.web import Malformed, load_json, refuse
from commands.model import Conversation, Outcome, Press, Principal, Reply, Request

log = logger(__name__)
log.addFilter(WithFields(platform="line"))

WEBHOOK_PATH = "/line/webhook"
COMMAND_PREFIX = "/ssl"
REQUEST_TIMEOUT = 15.0  # seconds per LINE API call; the SDK's own default is 5 minutes

if TYPE_CHECKING:
    from bot.chat.base import ChatAdapter


@dataclass(frozen=True)
class QuotaRule:
    """When pushes are collapsed into one summary, to stretch a small monthly quota.

    Before a push, the adapter reads the quota (limit) and this month's consumption. The quota is
    *low* when what is left is under `min_left` messages or under `min_fraction` of the limit,
    whichever is larger. While it is low, the first push to a chat opens a window of
    `window` seconds; every push to that chat in the window joins it, and when it closes they all
    go out as one push request (one quota unit per recipient instead of one per update). An
    unlimited plan (quota type "none") is never low; when nothing is left, pushes are dropped
    with a log line and an audit entry instead of failing one by one.

    Outbox deliveries follow the same rule. A delivery held for a summary is handed over: deliver()
    returns at once and the worker marks the row sent (the worker delivers in order, so waiting
    for the window would keep the very pushes it should gather from joining it); the summary then
    goes out when the window closes, or at stop(). One that finds the quota used up is recorded
    the same way and raises a permanent DeliveryError, so the row is failed, not counted as sent.
    """

    min_left: int = 20
    min_fraction: float = 0.10
    window: float = 60.0

    def is_low(self, limit: int, used: int) -> bool:
        return limit - used < max(self.min_left, self.min_fraction * limit)


@dataclass(frozen=True)
class Inbound:
    """One webhook event this adapter acts on: a /ssl text or a postback."""

    event_id: str | None
    reply_token: str | None
    who: Principal
    where: Conversation
    command: str | None = None  # the text after "/ssl"
    data: str | None = None  # postback data
    joined: bool = False  # the bot was added to this group or room (answered only while `to` is unset)


@dataclass
class _Gathering:
    """Pushes held for one chat while the quota is low, sent together when the window closes."""

    replies: list[Reply]
    remaining: int | None


class _Gate(Enum):
    """What the quota rule decided for one push."""

    SEND = "send"
    HELD = "held"  # joined a summary that goes out when its window closes
    USED_UP = "used up"  # recorded and dropped


class LineAdapter:
    platform = "line"

    def __init__(
        self,
        settings: LineSettings,
        core: Core,
        *,
        quota: QuotaRule | None = None,
        reply_grace: float = 2.0,
        retry_delay: float = 1.0,
    ) -> None:
        """`reply_grace`: how long to wait for a follow-up before replying with the immediate answer.

        A follow-up that finishes within it (a quick probe) is answered in the free reply and
        costs no push at all; a reply token lives about 30 s, so this stays well inside that.
        """
        self.settings = settings
        self.core = core
        self.quota = quota or QuotaRule()
        self.reply_grace = reply_grace
        self.retry_delay = retry_delay
        # Resolved once at construction so a missing secret stops the start, not the first event.
        secret = settings.channel_secret.resolve()
        self._secret = secret.encode()
        host = settings.api_url.rstrip("/") if settings.api_url else None  # None: the SDK's https://api.line.me
        self._configuration = Configuration(access_token=settings.access_token.resolve(), host=host)
        self._client: Any = None
        self._api: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._gathering: dict[str, _Gathering] = {}
        self._summaries: dict[str, asyncio.Task[None]] = {}
        self._stopped = False
        self._closing = False  # stop() has begun: outbox deliveries wait for the next run

    # lifecycle --------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [web.post(WEBHOOK_PATH, self._webhook)]

    async def start(self) -> None:
        self._messaging()
        if self.settings.to is None:
            log.warning(NO_DESTINATION)

    async def stop(self, timeout: float = 10.0) -> None:
        """Finishes events in hand, sends held summaries at once, then closes the HTTP client."""
        self._closing = True  # nothing joins a summary after it has been flushed
        for to, summary in list(self._summaries.items()):
            summary.cancel()  # still waiting for its window to close: send what it holds now
            await self._flush(to)
        await self.idle(timeout)
        self._stopped = True  # a follow-up finishing after this must not reopen the HTTP client
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            await self._client.close()
            self._client = self._api = None

    async def idle(self, timeout: float = 10.0) -> None:
        """Waits until no event, push or summary is in hand (tasks started meanwhile included)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks and loop.time() < deadline:
            await asyncio.wait(set(self._tasks), timeout=deadline - loop.time())

    # the incident destination (ChatAdapter) ----------------------------------------------------

    async def post(self, reply: Reply) -> str | None:
        """Pushes a card to `[chat.line] to`; the reference is LINE's message id (None when held,
        or when `to` is not set: then nothing is pushed)."""
        if self.settings.to is None:
            log.info("LINE: not pushed, [chat.line] to is not set: %s", reply.title)
            return None
        return await self.push(self.settings.to, reply)

    async def update(self, ref: str, reply: Reply) -> None:
        """LINE cannot edit a sent message, so the new state goes out as a push of its own."""
        if self.settings.to is None:
            log.info("LINE: not pushed, [chat.line] to is not set: %s", reply.title)
            return
        await self.push(self.settings.to, reply)

    # the outbox worker's destination -----------------------------------------------------------

    async def deliver(self, message: Outgoing) -> str | None:
        """Pushes to `[chat.line] to` with the row's own retry key, so however often the worker
        retries one row LINE delivers it once (a 409 says an earlier attempt got through).

        LINE cannot edit: a notable EDIT is pushed as a message of its own, a minor one is skipped
        (pushes are counted against the quota). The reference is the pushed message's id, or the
        retry key when LINE did not say (a 409) or the push was held for a quota summary."""
        if message.kind is DeliveryKind.EDIT and not message.notable:
            return message.ref
        if self._closing:
            raise DeliveryError("the LINE adapter is stopping")  # transient: the row waits for the next run
        to = self.settings.to
        if to is None:  # nowhere to push yet: the message is dropped, as start() warned
            log.info("LINE: not pushed, [chat.line] to is not set: %s", message.reply.title)
            return message.ref
        gate = await self._quota_gate(to, message.reply)
        if gate is _Gate.USED_UP:
            raise DeliveryError("LINE monthly message quota is used up", permanent=True)
        if gate is _Gate.HELD:
            return message.ref or message.retry_key
        sent = await self._push_once(to, line_flex.render(message.reply), message.retry_key or str(uuid.uuid4()))
        return message.ref if message.kind is not DeliveryKind.NEW and message.ref else sent

    # webhook ------------------------------------------------------------------------------------

    async def _webhook(self, request: web.Request) -> web.Response:
        raw = await request.read()  # bounded in size (client_max_size) and time (bot.web.WebLimits)
        reason = line_refusal(request.headers, raw, self._secret)
        if reason is not None:
            return refuse(request, 401, reason, text="bad signature")
        try:
            events = sdk_events(check_body(raw))
        except Malformed as exc:
            return refuse(request, 400, exc.reason, text="bad body")
        except (ValueError, KeyError, TypeError, AttributeError):  # check_body should leave none
            return refuse(request, 400, "a body the LINE SDK cannot read", text="bad body")
        note_ids(events)
        recent = [event for event in events if not _too_old(event)]
        if len(recent) < len(events):  # one line, however many: a replayed delivery may carry thousands
            log.warning("ignored %d LINE events sent more than a day ago (a replay?)", len(events) - len(recent))
        items = [item for item in map(self._inbound, recent) if item is not None]
        fresh = await asyncio.to_thread(self._fresh, items)
        if fresh:
            # LINE wants its 200 promptly and redelivers otherwise: the work runs after we answer.
            self._spawn(self._handle_all(fresh), "line-events")
        return web.Response(text="OK")

    def _fresh(self, items: Sequence[Inbound]) -> list[Inbound]:
        """The items not handled before, de-duplicated by event id in the store; one log line
        for those left out and one for those the store could not record, however many."""
        fresh: list[Inbound] = []
        repeated: list[str] = []
        unrecorded: list[str] = []
        refusal = ""
        for item in items:
            if item.event_id is None:
                fresh.append(item)  # very old events carry no id; nothing to de-duplicate on
                continue
            try:
                first = self.core.store.first_time("line", item.event_id)
            except StoreRefused as exc:
                unrecorded.append(item.event_id)
                refusal = exc.reason
                first = True  # the dispatcher answers with the store's refusal
            if first:
                fresh.append(item)
            else:
                repeated.append(item.event_id)
        if unrecorded:
            log.warning("cannot record %d LINE events (the first %s): %s", len(unrecorded), unrecorded[0], refusal)
        if repeated:
            log.info(
                "ignored %d LINE events already handled (replay or redelivery), the first %s",
                len(repeated),
                repeated[0],
            )
        return fresh

    async def _handle_all(self, items: Sequence[Inbound]) -> None:
        for item in items:  # in order: two commands in one delivery are answered in order
            try:
                await self._handle(item)
            except Exception:
                log.exception("LINE event %s failed", item.event_id)

    def _inbound(self, event: Any) -> Inbound | None:
        if self.settings.to is None and isinstance(event, JoinEvent):
            return joined(event)  # no destination yet: the group hears its own id, to copy into the config
        return inbound(event)

    async def _handle(self, item: Inbound) -> None:
        dispatcher = self.core.dispatcher
        if item.joined:
            await self._reply(item, [TextMessage(text=joined_text(item.where.id))], fallback=None)
            return
        if item.command is not None:
            outcome = await dispatcher.command(Request(item.who, item.where, item.command))
        elif item.data == line_flex.CANCEL_DATA:
            return
        elif item.data is not None and (prompt := line_flex.confirm_prompt(item.data)) is not None:
            await self._reply(item, [prompt], fallback=None)
            return
        elif item.data is not None:
            outcome = await dispatcher.press(Press(item.who, item.where, item.data))
        else:
            return
        await self._answer(item, outcome)

    async def _answer(self, item: Inbound, outcome: Outcome) -> None:
        """The free reply first; a slow follow-up's result is pushed, unless it beats `reply_grace`."""
        if outcome.follow_up is None:
            await self._reply(item, line_flex.render(outcome.reply), fallback=outcome.reply)
            return
        loop = asyncio.get_running_loop()
        early: asyncio.Future[Reply] = loop.create_future()

        async def deliver(result: Reply) -> None:
            if not early.done():  # still within the grace: the reply takes it, for free
                early.set_result(result)
                return
            await self._push_result(item, result)

        self.core.worker.submit(outcome.follow_up, deliver)
        result: Reply | None = None
        if self.reply_grace > 0:
            with contextlib.suppress(TimeoutError):
                result = await asyncio.wait_for(asyncio.shield(early), self.reply_grace)
        if result is None and early.cancel():  # from now on `deliver` pushes
            await self._reply(item, line_flex.render(outcome.reply), fallback=outcome.reply)
            return
        result = result or early.result()  # it may have arrived just as the wait ended
        await self._reply(item, line_flex.render(result), fallback=result)

    async def _push_result(self, item: Inbound, result: Reply) -> None:
        if not result.private:
            await self.push(item.where.id, result)
        elif item.who.user_id:
            # private means "for the asker": a 1:1 push, never to the group
            await self.push(item.who.user_id, result)
        else:
            log.info("dropped a private follow-up for an unidentified LINE user (%s)", result.title)

    # sending ------------------------------------------------------------------------------------

    def _messaging(self) -> Any:
        # created lazily inside the running loop: the SDK's aiohttp session binds to it
        if self._api is None:
            self._client = AsyncApiClient(self._configuration)
            self._api = AsyncMessagingApi(self._client)
        return self._api

    async def _reply(self, item: Inbound, messages: list[Any], fallback: Reply | None) -> None:
        """Replies with the event's token; if LINE refuses it (expired), a shared answer is pushed."""
        if item.reply_token and not self._stopped:
            try:
                await self._messaging().reply_message(
                    ReplyMessageRequest(reply_token=item.reply_token, messages=messages[: line_flex.MAX_MESSAGES]),
                    _request_timeout=REQUEST_TIMEOUT,
                )
                return
            except ApiException as exc:
                log.warning(
                    "LINE refused a reply (HTTP %s %s)",
                    exc.status,
                    exc.reason,
                    extra={"status": exc.status, "outcome": "refused"},
                )
            except (ClientError, TimeoutError) as exc:
                log.warning("could not reach LINE to reply (%s)", type(exc).__name__, extra={"outcome": "unreachable"})
        if fallback is not None and not fallback.private:
            await self.push(item.where.id, fallback)
        elif fallback is not None:
            log.info("dropped a private answer that could not be sent as a reply (%s)", fallback.title)

    async def push(self, to: str, reply: Reply) -> str | None:
        """Pushes one reply, or holds it for a summary while the quota is low."""
        if self._stopped:
            log.warning("LINE adapter is stopped: not pushing %s to %s", reply.title, to)
            return None
        if await self._quota_gate(to, reply) is not _Gate.SEND:
            return None
        return await self._send_push(to, line_flex.render(reply))

    async def _quota_gate(self, to: str, reply: Reply) -> _Gate:
        """The quota rule (QuotaRule) for one push: send it now, hold it for a summary, or, when
        nothing is left, record it and drop it."""
        if to in self._gathering:
            self._gathering[to].replies.append(reply)
            return _Gate.HELD
        limit, used = await self._read_quota()
        if to in self._gathering:  # another push opened a window while we read the quota
            self._gathering[to].replies.append(reply)
            return _Gate.HELD
        if limit is not None and used is not None:
            if used >= limit:
                await self._quota_exhausted(to, [reply])
                return _Gate.USED_UP
            if self.quota.is_low(limit, used):
                self._gathering[to] = _Gathering([reply], limit - used)
                self._summaries[to] = self._spawn(self._summarise_later(to), f"line-summary:{to}")
                return _Gate.HELD
        return _Gate.SEND

    async def _read_quota(self) -> tuple[int | None, int | None]:
        """(monthly limit, used this month); (None, None) when unlimited or unreadable.

        Unreadable counts as "not low" on purpose: hiding outcomes to save a quota we cannot
        see would be worse than spending it, and the push itself reports a real exhaustion.
        """
        api = self._messaging()
        try:
            quota = await api.get_message_quota(_request_timeout=REQUEST_TIMEOUT)
            if quota.type != "limited" or quota.value is None:
                return None, None
            consumption = await api.get_message_quota_consumption(_request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            log.warning(
                "could not read the LINE message quota (HTTP %s %s)",
                exc.status,
                exc.reason,
                extra={"status": exc.status, "outcome": "refused"},
            )
            return None, None
        except (ClientError, TimeoutError) as exc:
            log.warning(
                "could not reach LINE to read the message quota (%s)",
                type(exc).__name__,
                extra={"outcome": "unreachable"},
            )
            return None, None
        return int(quota.value), int(consumption.total_usage)

    async def _summarise_later(self, to: str) -> None:
        await asyncio.sleep(self.quota.window)
        await self._flush(to)

    async def _flush(self, to: str) -> None:
        # off the list of waiting windows first: stop() cancels only windows that still wait,
        # never a summary that is already being sent
        self._summaries.pop(to, None)
        gathering = self._gathering.pop(to, None)
        if gathering is not None:
            await self._send_summary(to, gathering)

    async def _send_summary(self, to: str, gathering: _Gathering) -> None:
        replies = gathering.replies
        if len(replies) == 1:
            await self._send_push(to, line_flex.render(replies[0]))
            return
        log.info("LINE quota is low: sending %d updates to %s as one push", len(replies), to)
        await self._send_push(to, line_flex.summary(replies, gathering.remaining))

    async def _quota_exhausted(self, to: str, replies: Sequence[Reply]) -> None:
        titles = "; ".join(r.title for r in replies)
        log.warning("LINE monthly message quota is used up: not pushing to %s (%s)", to, titles)
        detail = f"monthly quota used up: {titles}"[:500]
        await asyncio.to_thread(self.core.store.audit, "certops", "line-push", to, "skipped", detail)

    async def _send_push(self, to: str, messages: list[Any], attempts: int = 3) -> str | None:
        """One push request, retried with the same X-Line-Retry-Key so LINE delivers it at most once."""
        retry_key = str(uuid.uuid4())
        for attempt in range(1, attempts + 1):
            try:
                return await self._push_once(to, messages, retry_key)
            except DeliveryError as exc:
                log.warning(
                    "%s (try %d)",
                    exc,
                    attempt,
                    extra={"attempt": attempt, "outcome": "failed" if exc.permanent else "retrying"},
                )
                if exc.permanent or attempt == attempts:
                    return None
            await asyncio.sleep(self.retry_delay * attempt)
        return None

    async def _push_once(self, to: str, messages: list[Any], retry_key: str) -> str:
        """One push attempt: LINE's id of the first message sent (or the retry key when LINE
        answered 409: it had already accepted this key, so an earlier attempt got through).
        Raises DeliveryError, transient for 429, 5xx and an unreachable LINE."""
        request = PushMessageRequest(to=to, messages=messages[: line_flex.MAX_MESSAGES])
        try:
            response = await self._messaging().push_message(
                request, x_line_retry_key=retry_key, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 409:
                return retry_key
            status = int(exc.status or 0)
            retry_after = parse_retry_after((exc.headers or {}).get("Retry-After"))
            transient = status == 0 or is_transient(status)  # 0: the SDK's own "could not send"
            raise DeliveryError(
                f"LINE refused a push (HTTP {status} {exc.reason})", permanent=not transient, retry_after=retry_after
            ) from None
        except (ClientError, TimeoutError) as exc:
            raise DeliveryError(f"could not reach LINE to push ({type(exc).__name__})") from None
        sent = response.sent_messages
        return str(sent[0].id) if sent else retry_key

    def _spawn(self, work: Awaitable[None], name: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)
        return task


_SIGNATURE = re.compile("[A-Za-z0-9+/]{43}=")  # base64 of the 32 bytes of an HMAC-SHA256


def line_refusal(headers: CIMultiDictProxy[str], body: bytes, secret: bytes) -> str | None:
    """Why this request is not from LINE, as a fixed phrase for the log; None when its
    X-Line-Signature holds. Nothing here can raise: the header is matched against its exact form
    before it is compared."""
    signatures = headers.getall("X-Line-Signature", [])
    if not signatures or not signatures[0]:
        return "no signature"
    if len(signatures) > 1:
        return "signature header repeated"
    if not _SIGNATURE.fullmatch(signatures[0]):
        return "malformed signature"
    expected = base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signatures[0].encode()):
        return "wrong signature"
    return None


def check_body(raw: bytes) -> dict[str, Any]:
    """The body as parsed, once it is a webhook object with an event list whose events have the
    shapes the SDK and `inbound` read; raises Malformed (a fixed reason) otherwise. The JSON goes
    through bot.web.load_json: bounded nesting, and no string with a lone surrogate."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("a body that is not UTF-8") from None
    data = load_json(text)
    if not isinstance(data, dict):
        raise Malformed("a body that is not a JSON object")
    if "destination" in data and not isinstance(data["destination"], str):
        raise Malformed("destination is not a string")
    events = data.get("events")
    if not isinstance(events, list):
        raise Malformed("events is not a list")
    for event in events:
        _check_event(event)
    return data


def sdk_events(data: dict[str, Any]) -> list[Any]:
    """The SDK's models of the events it can read (what its WebhookParser.parse builds, after
    check_body has checked the signature and the shapes). An event it cannot read, of a type newer
    than the SDK or with a field it refuses, is left out, as the SDK's parser would make it an
    UnknownEvent; unlike the parser this logs nothing per event (it would write a line for each
    of thousands, with the event's type, of any length)."""
    events: list[Any] = []
    for event in data["events"]:
        try:
            events.append(Event.from_dict(event))
        except ValueError:
            continue
    return events


_EVENT_STRINGS = ("webhookEventId", "replyToken", "mode")
_EVENT_OBJECTS = {  # object-valued fields, and their string-valued fields
    "source": ("type", "userId", "groupId", "roomId"),
    "message": ("type", "id", "text"),
    "postback": ("data",),
    "deliveryContext": (),
}


def _check_event(event: object) -> None:
    if not isinstance(event, dict):
        raise Malformed("an event that is not an object")
    if not isinstance(event.get("type"), str):
        raise Malformed("an event without a string type")
    if "timestamp" in event:
        sent = event["timestamp"]
        if not isinstance(sent, int) or isinstance(sent, bool):
            raise Malformed("an event timestamp that is not an integer")
        if not 0 <= sent <= MAX_TIMESTAMP_MS:
            raise Malformed("an event timestamp out of range")
    for key in _EVENT_STRINGS:
        if event.get(key) is not None and not isinstance(event[key], str):
            raise Malformed(f"{key} is not a string")
    for key, strings in _EVENT_OBJECTS.items():
        if key not in event or event[key] is None:
            continue
        value = event[key]
        if not isinstance(value, dict):
            raise Malformed(f"{key} is not an object")
        if any(value.get(name) is not None and not isinstance(value[name], str) for name in strings):
            raise Malformed(f"a field of {key} is not a string")


# LINE signs no timestamp header, so a captured request could be replayed once its event id has
# been pruned from the store (after 30 days): events older than this are refused, whatever their id.
MAX_EVENT_AGE_MS = 24 * 3600 * 1000
MAX_TIMESTAMP_MS = 2**53  # milliseconds (the year 287,396): a float holds every integer up to here


def _too_old(event: Any) -> bool:
    sent = getattr(event, "timestamp", None)
    return isinstance(sent, int) and int(time.time() * 1000) - sent > MAX_EVENT_AGE_MS  # in integers: no overflow


def inbound(event: Any) -> Inbound | None:
    """The part of a webhook event this adapter acts on, or None for everything else."""
    where, who = _source(getattr(event, "source", None))
    if where is None or who is None:
        return None
    event_id = getattr(event, "webhook_event_id", None)
    reply_token = getattr(event, "reply_token", None)
    if isinstance(event, MessageEvent) and isinstance(event.message, TextMessageContent):
        command = command_text(event.message.text or "")
        if command is None:
            return None
        return Inbound(event_id, reply_token, who, where, command=command)
    if isinstance(event, PostbackEvent) and event.postback is not None and event.postback.data:
        return Inbound(event_id, reply_token, who, where, data=str(event.postback.data))
    return None


def joined(event: Any) -> Inbound | None:
    """A join event as an item to answer: the bot was added to a group or room."""
    where, who = _source(getattr(event, "source", None))
    if where is None or who is None or not isinstance(event, JoinEvent):
        return None
    event_id, reply_token = getattr(event, "webhook_event_id", None), getattr(event, "reply_token", None)
    return Inbound(event_id, reply_token, who, where, joined=True)


def joined_text(chat_id: str) -> str:
    """What the bot says in a group it joins while [chat.line] to is not set."""
    kind = "room" if chat_id.startswith("R") else "group"
    return (
        f"certops: this {kind}'s id is {chat_id}\n"
        f'To post incidents here, set  to = "{chat_id}"  under [chat.line] in certops.toml and restart certops.'
    )


NO_DESTINATION = (
    "LINE: [chat.line] to is not set, so incidents are not pushed to LINE; add the bot to a group "
    "and it answers there with the group's id to put in the config (commands and buttons work meanwhile)"
)
_JOINED = 'LINE: the bot joined %s; to post incidents there, set [chat.line] to = "%s"'
_FOLLOWED = 'LINE: %s added the bot as a friend; to let them approve, add "line:%s" to [policy]'
MAX_NOTES = 3  # lines note_ids writes for one delivery; a real one brings one join or follow


def note_ids(events: Sequence[Any]) -> None:
    """Logs the ids an operator needs for the config when the bot joins a chat or gains a friend:
    LINE shows group ids nowhere else, and user ids differ per provider. Each id once, and a few
    at most for one delivery (a count for the rest)."""
    notes: dict[tuple[str, str], None] = {}
    for event in events:
        if isinstance(event, JoinEvent):
            where, _ = _source(event.source)
            if where is not None:
                notes[(_JOINED, where.id)] = None
        elif isinstance(event, FollowEvent):
            user_id = getattr(event.source, "user_id", None)
            if user_id:
                notes[(_FOLLOWED, str(user_id))] = None
    for message, value in list(notes)[:MAX_NOTES]:
        log.info(message, value, value)
    if len(notes) > MAX_NOTES:
        log.info("LINE: %d more chats joined or friends added in the same delivery", len(notes) - MAX_NOTES)


def command_text(text: str) -> str | None:
    """Turns "/ssl status www" into "status www"; None when the message is not a /ssl command."""
    stripped = text.strip()
    head = stripped[: len(COMMAND_PREFIX)]
    rest = stripped[len(COMMAND_PREFIX) :]
    if head.lower() != COMMAND_PREFIX or (rest and not rest[0].isspace()):
        return None
    return rest.strip()


def _source(source: Any) -> tuple[Conversation | None, Principal | None]:
    # LINE omits userId for some group and room events: that is Principal(user_id=None), which
    # the approval logic refuses, rather than anything that could be mistaken for a person.
    user_id = getattr(source, "user_id", None) or None
    who = Principal("line", user_id, None)
    if isinstance(source, GroupSource) and source.group_id:
        return Conversation("line", source.group_id, is_group=True), who
    if isinstance(source, RoomSource) and source.room_id:
        return Conversation("line", source.room_id, is_group=True), who
    if isinstance(source, UserSource) and user_id:
        return Conversation("line", user_id, is_group=False), who
    return None, None


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("LINE background task %s failed", task.get_name(), exc_info=task.exception())


if TYPE_CHECKING:

    def _is_a_chat_adapter(adapter: LineAdapter) -> ChatAdapter:
        return adapter  # mypy checks here that LineAdapter satisfies both protocols
