"""Slack adapter: /ssl commands and approval buttons through Bolt's AsyncApp.

AsyncApp runs on the bot's own event loop (aiohttp), so a listener is a coroutine that acks and
returns; nothing slow ever runs in it. Slow follow-ups go to core.worker and come back as
chat.update of the bot's own card (response_url is limited to 5 uses in 30 minutes, so it is only
used for answers meant for one person).

In http mode every request is verified here before Bolt sees it (`slack_refusal`: the v0 HMAC
signature over the raw body and a timestamp within 5 minutes, both headers parsed strictly and
bounded), then its body is parsed the way Bolt would parse it and checked for the shapes Bolt and
our listeners read, for every payload type Bolt tells apart (`parse_body`). A request that fails
verification is answered 401, an authentic one that is malformed 400, and an authentic one for
no listener of ours (a shortcut, a modal, an event) an empty 200; each with one short log line
(method, path, remote address, reason; never the body) and nothing else: no audit line, no Web
API call, no traceback. Bolt is handed the checked body itself, as JSON signed afresh with the
same secret under the request's timestamp (`signed_for_bolt`), so what it parses is what was
checked; it verifies that signature, which then always holds. Its own refusal would log the whole
body at INFO, and its loggers are kept at WARNING for that reason. In socket mode Slack
authenticates the connection instead (the app-level token), and there is no HTTP route at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import WSMessage, web
from multidict import CIMultiDictProxy
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.chat.base import ChatSetupError, DeliveryError, DeliveryKind, Outgoing, is_transient, parse_retry_after
from bot.chat.slack_blocks import ACTION_PREFIX, Rendered, escape, render, render_copy
from bot.chat.slack_reconnects import ReconnectStorm
from bot.config import SlackSettings
from bot.core.ports import StoreRefused
from bot.logs import WithFields, logger
from bot.web import Malformed, load_json, refuse
from commands.model import Conversation, Outcome, Press, Principal, Reply, Request, Tone

if TYPE_CHECKING:
    from bot.app import Core
    from bot.chat.base import ChatAdapter

log = logger(__name__)
log.addFilter(WithFields(platform="slack"))
# Bolt's own loggers: its signature check logs the whole refused body at INFO (50 unsigned 1 MB
# requests were 50 MB of log), so they stay at WARNING whatever the root level is.
BOLT_LOG = logging.getLogger("certops.chat.slack.bolt")
BOLT_LOG.setLevel(logging.WARNING)
BOLT_LOG.addFilter(WithFields(platform="slack"))  # Bolt copies it onto the loggers it makes

EVENTS_PATH = "/slack/events"
ACK_BUDGET = 2.0  # seconds we wait for the core before acking anyway; Slack gives up at 3
GROUP_CACHE_SECONDS = 60.0  # user group membership: fresh enough for approvals, few API calls
STOP_GRACE = 5.0  # seconds stop() waits for answers already on their way
SOCKET_PING_INTERVAL = 10.0  # seconds between the socket client's pings, and between its reconnect attempts
MAX_CARDS = 500  # cards remembered for in-place updates (oldest forgotten first)
# Answers to a token check that no retry will change: stop and tell the operator.
PERMANENT_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "not_allowed_token_type"}
)


# What a Web API call raises when Slack says no or cannot be reached; logged by error code only.
API_FAILURES = (SlackClientError, aiohttp.ClientError, OSError, TimeoutError)

# Outbox deliveries (deliver()):
DELIVERY_TIMEOUT = 10.0  # seconds per Web API call; the shared session's own default is 5 minutes
# ok=false answers that another try may change; every other error code is permanent (a missing
# channel, a revoked token, a message Slack refuses as too long stay so however often we ask)
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# chat.update of a card someone deleted (or that the bot may no longer edit): post a fresh card
CARD_GONE_ERRORS = frozenset({"message_not_found", "cant_update_message"})
# A re-notification goes under the card and to the channel too: a thread reply alone notifies only
# those who follow the thread, and re-notifying is about reaching people who have not reacted.
THREAD_BROADCAST = True
# Each delivered post carries its outbox key as message metadata, so a retry whose earlier attempt
# got no answer finds it with conversations.history instead of posting it twice.
METADATA_EVENT = "certops_message"
LOOKUP_MARGIN = 300.0  # seconds before the first attempt searched too: Slack's clock is not ours
LOOKUP_LIMIT = 200  # messages per page
LOOKUP_PAGES = 3  # a busier channel than that in the crash window gets the post again


class SlackSetupError(ChatSetupError):
    """Slack cannot work with this configuration (a wrong or revoked token); the message names
    where the token came from, never the token."""


@dataclass
class Card:
    """A message the bot posted and keeps editing: what it shows, the buttons already pressed
    (not offered again), and the progress/result of each press."""

    reply: Reply | None  # what certops rendered; None for a card known only from Slack's copy
    copy: dict[str, Any] = field(default_factory=dict)  # Slack's copy of the message, when reply is None
    pressed: set[str] = field(default_factory=set)
    statuses: dict[str, list[Reply]] = field(default_factory=dict)  # per button: the decision, the latest
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def note(self, token: str, status: Reply) -> None:
        # Keep the first note (who approved) next to the latest (running… / done), so the card
        # keeps saying who approved what after the result arrives.
        self.pressed.add(token)
        first = self.statuses.get(token, [status])[0]
        self.statuses[token] = [first] if first is status else [first, status]

    def render(self) -> Rendered:
        notes = [note for per_button in self.statuses.values() for note in per_button]
        if self.reply is not None:
            reply = self.reply
            if any(note.resolved for note in notes) and not reply.resolved:
                # the card's headline must not keep saying "needs repair" once the incident is closed
                reply = replace(reply, title=f"Resolved: {reply.title}", tone=Tone.OK)
            return render(reply, hidden=self.pressed, statuses=notes)
        blocks, text = self.copy.get("blocks") or [], str(self.copy.get("text") or "")
        return render_copy(blocks, text, hidden=self.pressed, statuses=notes)


class SlackAdapter:
    platform = "slack"

    def __init__(self, settings: SlackSettings, core: Core) -> None:
        self.settings = settings
        self.core = core
        base_url = settings.api_url or AsyncWebClient.BASE_URL
        bot_token, signing_secret = settings.bot_token.resolve(), _signing_secret(settings)  # may raise: first
        # One connection pool for every Web API call: without it slack_sdk opens a new session,
        # and so a new TLS connection to slack.com, for each call. Needs the running loop, as
        # build_core does; stop() closes it.
        self._session = aiohttp.ClientSession()
        self.client = AsyncWebClient(token=bot_token, base_url=_with_slash(base_url), session=self._session)
        # The outbox worker owns retries and their timing: this client retries nothing itself, so a
        # 429 or a dropped connection reaches deliver() at once instead of being slept on inside a
        # call (slack_sdk's default only retries dropped connections today; this keeps it so).
        self._delivery = AsyncWebClient(
            token=bot_token, base_url=_with_slash(base_url), session=self._session, retry_handlers=[]
        )
        self._bot_token = bot_token
        self._signing_secret = signing_secret.encode()
        self._auth: AuthorizeResult | None = None
        self.app = AsyncApp(
            # Bolt names its loggers after the app and sets their level: "certops" would be the
            # root of certops's own tree, so the app is named after its own logger instead
            name=BOLT_LOG.name,
            client=self.client,
            signing_secret=signing_secret,
            authorize=self._authorizer(),
            process_before_response=False,  # the HTTP 200 leaves as soon as ack() is called
            logger=BOLT_LOG,  # Bolt hands its level to every logger it makes
        )
        self.app.command("/ssl")(self._on_command)
        self.app.action({"type": "block_actions", "action_id": _ACTION_ID})(self._on_press)
        self._cards: OrderedDict[str, Card] = OrderedDict()
        self._lookup_refused: set[str] = set()  # error codes of history lookups already logged
        self._groups: dict[str, tuple[float, set[str]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._listening: set[asyncio.Task[Any]] = set()
        self._socket: AsyncSocketModeHandler | None = None
        self._storm: ReconnectStorm | None = None  # the socket client's reconnect lines, one per attempt
        core.approvals.group_members = self.group_members  # so "slack-group:S…" approvers work

    # lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Checks the tokens (a wrong one stops the start with a clear message), then in socket
        mode connects in the background; http mode needs nothing more than routes()."""
        await self._check("auth.test", self.client.auth_test(), self.settings.bot_token.describe())
        if self.settings.mode != "socket":
            return
        if self.settings.app_token is None:
            raise SlackSetupError("chat.slack: socket mode needs app_token_env or app_token_file")
        app_token = self.settings.app_token.resolve()
        # Bolt's socket client retries every failure forever, a revoked token included; ask once
        # ourselves so that a wrong app token is reported instead of retried silently.
        opened = self.client.apps_connections_open(app_token=app_token)
        await self._check("apps.connections.open", opened, self.settings.app_token.describe())
        self._socket = AsyncSocketModeHandler(
            self.app, app_token, web_client=self.client, ping_interval=SOCKET_PING_INTERVAL
        )
        self._storm = ReconnectStorm(BOLT_LOG)
        self._storm.install()
        self._socket.client.on_message_listeners.append(self._socket_message)
        # In the background: while Slack is unreachable the client keeps retrying, and the rest
        # of the bot (LINE, the web endpoints, probes) must not wait for it.
        self._spawn(_typed(self._socket.connect_async)())

    async def _socket_message(self, _message: WSMessage) -> None:
        if self._storm is not None:
            self._storm.connected()

    def _authorizer(self) -> Callable[[], Awaitable[AuthorizeResult]]:
        """Who the bot is, for Bolt. Bolt would otherwise call auth.test inside the first request,
        before the ack: a slow Slack then costs the 3-second deadline. start() fills this in.
        (A plain function: Bolt passes arguments by the names it sees, and would not know `self`.)"""

        async def authorize() -> AuthorizeResult:
            if self._auth is None:
                response = await asyncio.wait_for(self.client.auth_test(), timeout=2)
                self._auth = AuthorizeResult.from_auth_test_response(
                    bot_token=self._bot_token, auth_test_response=response
                )
            return self._auth

        return authorize

    async def _check(self, method: str, call: Awaitable[object], where: str) -> None:
        try:
            response = await call
            if method == "auth.test" and isinstance(response, AsyncSlackResponse):
                self._auth = AuthorizeResult.from_auth_test_response(
                    bot_token=self._bot_token, auth_test_response=response
                )
        except SlackApiError as exc:
            code = _api_error(exc)
            if code in PERMANENT_ERRORS:
                raise SlackSetupError(f"Slack refused the token from {where} ({method}: {code})") from None
            log.warning("Slack %s failed (%s); certops carries on and retries on use", method, code)
        except API_FAILURES as exc:
            log.warning("Slack is not reachable now (%s: %s); certops carries on", method, type(exc).__name__)

    async def stop(self) -> None:
        """Stops taking requests, gives answers already acked a moment to reach Slack (the user
        saw "On it"; the card should follow), then closes the connections."""
        if self._socket is not None:
            await _typed(self._socket.close_async)()
            self._socket = None
        if self._storm is not None:
            self._storm.remove()
            self._storm = None
        busy = self._listening | self._tasks
        if busy:
            await asyncio.wait(busy, timeout=STOP_GRACE)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=STOP_GRACE)
        await self._session.close()

    def routes(self) -> list[web.RouteDef]:
        if self.settings.mode != "http":
            return []
        return [web.post(EVENTS_PATH, self._handle_http)]

    async def _handle_http(self, request: web.Request) -> web.Response:
        raw = await request.read()  # bounded in size (client_max_size) and time (bot.web.WebLimits)
        reason = slack_refusal(request.headers, raw, self._signing_secret, time.time())
        if reason == "no signature" and _is_ssl_check(raw):
            # Slack's certificate check of the URL: Bolt answers it unsigned too, with nothing
            return web.Response(text="")
        if reason is not None:
            return refuse(request, 401, reason, json_body={"error": "invalid request"})
        try:
            _, data = parse_body(raw, request.content_type)
        except Malformed as exc:
            return refuse(request, 400, exc.reason, json_body={"error": "malformed request"})
        if not for_certops(data):
            return refuse(request, 200, "a request certops has no listener for", text="")
        timestamp = request.headers["X-Slack-Request-Timestamp"]  # slack_refusal found exactly one
        body, signature = signed_for_bolt(data, timestamp, self._signing_secret)
        headers: dict[str, str | Sequence[str]] = {name.lower(): value for name, value in request.headers.items()}
        headers.update({"content-type": "application/json", "x-slack-signature": signature})
        try:
            bolt_request = AsyncBoltRequest(body=body, query=request.query_string, headers=headers)
        except Exception:  # parse_body should leave nothing that Bolt's context builder trips on
            return refuse(request, 400, "a body Bolt cannot read", json_body={"error": "malformed request"})
        return await to_aiohttp_response(await self.app.async_dispatch(bolt_request))

    # ChatAdapter: posts to the incident channel ---------------------------------------------

    async def post(self, reply: Reply) -> str | None:
        return await self._post_card(self.settings.channel, reply)

    async def update(self, ref: str, reply: Reply) -> None:
        card = self._card(ref, reply)
        async with card.lock:
            card.reply, card.pressed, card.statuses = reply, set(), {}
            await self._edit(ref, card.render())

    # Destination: the outbox worker's deliveries -------------------------------------------

    async def deliver(self, message: Outgoing) -> str | None:
        """NEW posts a card to the incident channel, EDIT replaces the card at `ref` (or posts a
        fresh one when that card is gone), THREAD replies under it. Raises DeliveryError."""
        if message.kind is DeliveryKind.EDIT and message.ref:
            try:
                await self._deliver_edit(message.ref, message.reply)
                return message.ref
            except _SlackFailure as exc:
                if exc.code not in CARD_GONE_ERRORS:
                    raise
                log.info("the Slack card %s is gone (%s): posting it afresh", message.ref, exc.code)
                self._cards.pop(message.ref, None)
        channel, thread_ts = self.settings.channel, None
        if message.kind is DeliveryKind.THREAD and message.ref:
            channel, _, thread_ts = message.ref.partition(":")
        if message.tried_since is not None and message.key:
            # chat.postMessage has no idempotency key: an earlier attempt's post is found by its tag
            found = await self._posted_before(channel, message.key, message.tried_since, thread_ts)
            if found is not None and thread_ts is None:
                ref = f"{channel}:{found}"
                await self._deliver_edit(ref, message.reply)  # it may show an older step of the card
                return ref
            if found is not None:
                return message.ref
        posted = await self._deliver_post(channel, message.reply, message.key, thread_ts)
        return message.ref if thread_ts else posted

    async def _deliver_post(self, channel: str, reply: Reply, key: str, thread_ts: str | None) -> str:
        rendered = render(reply)
        response = await _delivered(
            "chat.postMessage",
            self._delivery.chat_postMessage(
                channel=channel,
                text=rendered.text,
                blocks=rendered.blocks,
                thread_ts=thread_ts,
                reply_broadcast=THREAD_BROADCAST if thread_ts else None,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"key": key}} if key else None,
            ),
        )
        return self._posted(response, channel, reply)  # so a press on it renders as _post_card's cards do

    async def _posted_before(self, channel: str, key: str, since: dt.datetime, thread_ts: str | None) -> str | None:
        """The ts of the bot's own message tagged `key` since `since` (in the thread when one is
        named), or None. When Slack will not tell (a missing history scope), None too: the post
        goes out again, at least once, and the log says which scope would prevent that."""
        oldest = f"{since.timestamp() - LOOKUP_MARGIN:.6f}"
        method = "conversations.replies" if thread_ts else "conversations.history"
        cursor: str | None = None
        for _ in range(LOOKUP_PAGES):
            if thread_ts:
                call = self._delivery.conversations_replies(
                    channel=channel,
                    ts=thread_ts,
                    oldest=oldest,
                    cursor=cursor,
                    limit=LOOKUP_LIMIT,
                    include_all_metadata=True,
                )
            else:
                call = self._delivery.conversations_history(
                    channel=channel, oldest=oldest, cursor=cursor, limit=LOOKUP_LIMIT, include_all_metadata=True
                )
            try:
                response = await _delivered(method, call)
            except _SlackFailure as exc:
                if not exc.permanent:
                    raise  # Slack's own trouble: the post would not land now either
                if exc.code not in self._lookup_refused:
                    self._lookup_refused.add(exc.code)
                    fix = "; add the channels:history and groups:history scopes" if exc.code == "missing_scope" else ""
                    log.warning(
                        "Slack %s refused (%s): a message whose earlier attempt got no answer is posted "
                        "again, and may show twice%s",
                        method,
                        exc.code,
                        fix,
                    )
                return None
            data = response.data if isinstance(response.data, dict) else {}
            for found in data.get("messages") or ():
                if self._tagged(found, key):
                    return str(found.get("ts"))
            cursor = str((data.get("response_metadata") or {}).get("next_cursor") or "") or None
            if cursor is None:
                return None
        return None

    def _tagged(self, message: object, key: str) -> bool:
        if not isinstance(message, dict):
            return False
        metadata = message.get("metadata")
        if not isinstance(metadata, dict) or metadata.get("event_type") != METADATA_EVENT:
            return False
        payload = metadata.get("event_payload")
        if not isinstance(payload, dict) or payload.get("key") != key:
            return False
        # another app could tag a message so: only the bot's own counts, when the bot knows who it is
        own = self._auth.bot_user_id if self._auth is not None else None
        return own is None or message.get("user") == own

    async def _deliver_edit(self, ref: str, reply: Reply) -> None:
        # As update(): the core's card is the whole truth, so earlier press notes make way for it.
        card = self._card(ref, reply)
        async with card.lock:  # a press being marked on the same card waits, and is not lost half-way
            card.reply, card.pressed, card.statuses = reply, set(), {}
            rendered = card.render()
            channel, _, ts = ref.partition(":")
            call = self._delivery.chat_update(channel=channel, ts=ts, text=rendered.text, blocks=rendered.blocks)
            await _delivered("chat.update", call)

    async def group_members(self, group_id: str) -> set[str]:
        """Members of a Slack user group, cached briefly; an API failure denies (empty set)."""
        cached = self._groups.get(group_id)
        now = time.monotonic()
        if cached and cached[0] > now:
            return cached[1]
        try:
            response = await self.client.usergroups_users_list(usergroup=group_id)
        except API_FAILURES as exc:
            log.warning("usergroups.users.list %s failed: %s", group_id, _api_error(exc))
            return set()
        members = {str(u) for u in response.get("users") or []}
        self._groups[group_id] = (now + GROUP_CACHE_SECONDS, members)
        return members

    # /ssl -----------------------------------------------------------------------------------

    async def _on_command(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        with self._in_flight():
            await self._handle_command(ack, body, respond)

    async def _handle_command(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        if not await self._first_time(body.get("trigger_id")):
            await ack()  # a redelivered command: the first delivery already answered
            return
        channel = _text(body.get("channel_id"))
        request = Request(
            Principal("slack", _text(body.get("user_id")) or None, _text(body.get("user_name")) or None),
            Conversation("slack", channel, is_group=not channel.startswith("D")),
            _text(body.get("text")),
        )
        pending = asyncio.ensure_future(self.core.dispatcher.command(request))
        done, _ = await asyncio.wait({pending}, timeout=ACK_BUDGET)
        if not done:
            # The core promised to be fast; if it is not, still ack in time and answer later.
            await ack(text=f"Working on /ssl {escape(request.text.strip())}…", response_type="ephemeral")
            self._spawn(self._answer_late(pending, channel, respond))
            return
        try:
            outcome = pending.result()
        except Exception:  # the dispatcher answers its own errors; this is a last resort
            log.exception("/ssl failed before it could be answered")
            await ack(text="Sorry, certops could not handle that; the operators' log has the details.")
            return
        reply = outcome.reply
        if outcome.follow_up is None or reply.private:
            rendered = render(reply)
            await ack(
                text=rendered.text,
                blocks=rendered.blocks,
                response_type="ephemeral" if reply.private else "in_channel",
            )
            if outcome.follow_up is not None:
                self.core.worker.submit(outcome.follow_up, lambda result: self._respond(respond, result, True))
            return
        await ack(text=f"On it: /ssl {escape(request.text.strip())}", response_type="ephemeral")
        await self._card_with_follow_up(outcome, channel, respond)

    async def _answer_late(self, pending: Awaitable[Outcome], channel: str, respond: AsyncRespond) -> None:
        try:
            outcome = await pending
        except Exception:
            log.exception("a late /ssl answer failed")
            await self._respond(respond, Reply("Sorry, that command failed on certops's side.", Tone.CRITICAL), False)
            return
        if outcome.reply.private:
            await self._respond(respond, outcome.reply, replace=False)
            if outcome.follow_up is not None:
                self.core.worker.submit(outcome.follow_up, lambda result: self._respond(respond, result, True))
            return
        await self._card_with_follow_up(outcome, channel, respond)

    async def _card_with_follow_up(self, outcome: Outcome, channel: str, respond: AsyncRespond) -> None:
        """Posts the reply as the bot's own card, then lets the worker's result replace it."""
        ref = await self._post_card(channel, outcome.reply)
        if ref is None:
            # Not in that channel (or a DM the bot cannot post to): fall back to response_url,
            # two of its five uses.
            await self._respond(respond, outcome.reply, replace=False, public=True)
            if outcome.follow_up is not None:
                self.core.worker.submit(outcome.follow_up, lambda result: self._respond(respond, result, False, True))
            return
        if outcome.follow_up is not None:
            card_ref = ref
            self.core.worker.submit(outcome.follow_up, lambda result: self.update(card_ref, result))

    # buttons --------------------------------------------------------------------------------

    async def _on_press(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        with self._in_flight():
            await self._handle_press(ack, body, respond)

    async def _handle_press(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()  # at once: the press may need a user group lookup before it is decided
        if not await self._first_time(body.get("trigger_id")):
            return
        # parse_body checked these shapes in http mode; socket mode's come from Slack unchecked
        user = _object(body.get("user"))
        container = _object(body.get("container"))
        channel = _text(_object(body.get("channel")).get("id")) or _text(container.get("channel_id"))
        actions = body.get("actions")
        token = _text(_object(actions[0]).get("value")) if isinstance(actions, list) and actions else ""
        press = Press(
            Principal("slack", _text(user.get("id")) or None, _text(user.get("username") or user.get("name")) or None),
            Conversation("slack", channel, is_group=not channel.startswith("D")),
            token,
        )
        outcome = await self.core.dispatcher.press(press)
        ts = _text(container.get("message_ts"))
        if outcome.reply.private or not channel or not ts or container.get("is_ephemeral") is True:
            # A refusal is for the presser alone; an ephemeral card can only be edited through
            # response_url.
            await self._respond(respond, outcome.reply, replace=not outcome.reply.private)
            if outcome.follow_up is not None:
                self.core.worker.submit(outcome.follow_up, lambda result: self._respond(respond, result, True))
            return
        ref = f"{channel}:{ts}"
        if ref not in self._cards:
            # A card from before a restart (or posted by another replica): rebuild it from the
            # copy of the message the press carries; without one, the status becomes the card.
            message = body.get("message")
            card = Card(None, message) if isinstance(message, dict) and message.get("blocks") else Card(outcome.reply)
            self._remember(ref, card)
        await self._mark(ref, token, outcome.reply, respond)
        if outcome.follow_up is not None:
            self.core.worker.submit(outcome.follow_up, lambda result: self._mark(ref, token, result, respond))

    async def _mark(self, ref: str, token: str, status: Reply, respond: AsyncRespond) -> None:
        """Shows a press's progress or result on its card, and stops offering that button."""
        card = self._cards.get(ref) or self._remember(ref, Card(status))  # forgotten meanwhile: start over
        async with card.lock:
            if card.reply is not status:
                card.note(token, status)
            rendered = card.render()
            if not await self._edit(ref, rendered):
                # e.g. a card that reached the channel through response_url, which the bot
                # token may not edit: replace it the way it came
                await self._respond(respond, rendered, replace=True, public=True)

    # Web API --------------------------------------------------------------------------------

    async def _post_card(self, channel: str, reply: Reply) -> str | None:
        rendered = render(reply)
        try:
            response = await self.client.chat_postMessage(channel=channel, text=rendered.text, blocks=rendered.blocks)
        except API_FAILURES as exc:
            log.warning("chat.postMessage to %s failed: %s", channel, _api_error(exc))
            return None
        return self._posted(response, channel, reply)

    def _posted(self, response: AsyncSlackResponse, channel: str, reply: Reply) -> str:
        """The card reference Slack's answer names ("channel:ts"), remembered with what it shows."""
        ref = f"{response.get('channel') or channel}:{response.get('ts')}"
        self._remember(ref, Card(reply))
        return ref

    def _card(self, ref: str, reply: Reply) -> Card:
        return self._cards.get(ref) or self._remember(ref, Card(reply))

    async def _edit(self, ref: str, rendered: Rendered) -> bool:
        channel, _, ts = ref.partition(":")
        try:
            await self.client.chat_update(channel=channel, ts=ts, text=rendered.text, blocks=rendered.blocks)
        except API_FAILURES as exc:
            log.warning("chat.update of %s failed: %s", ref, _api_error(exc))
            return False
        return True

    async def _respond(
        self, respond: AsyncRespond, reply: Reply | Rendered, replace: bool, public: bool = False
    ) -> None:
        rendered = reply if isinstance(reply, Rendered) else render(reply)
        try:
            await respond(
                text=rendered.text,
                blocks=rendered.blocks,
                response_type="in_channel" if public else "ephemeral",
                replace_original=replace,
            )
        except Exception as exc:  # the response_url may have expired or been used up
            log.warning("response_url answer failed: %s", type(exc).__name__)

    # helpers --------------------------------------------------------------------------------

    async def _first_time(self, trigger_id: object) -> bool:
        """Slack may redeliver a socket-mode envelope that was acked late; each trigger_id
        (one per command or press) is handled once."""
        if not trigger_id:
            return True
        try:
            return await asyncio.to_thread(self.core.store.first_time, "slack", f"trigger:{trigger_id}")
        except StoreRefused as exc:
            log.warning("cannot record Slack trigger %s: %s", trigger_id, exc.reason)
            return True  # the dispatcher answers with the store's refusal

    @contextlib.contextmanager
    def _in_flight(self) -> Iterator[None]:
        """Bolt runs each listener as a task of its own; stop() waits for these."""
        task = asyncio.current_task()
        if task is not None:
            self._listening.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._listening.discard(task)

    def _remember(self, ref: str, card: Card) -> Card:
        self._cards[ref] = card
        self._cards.move_to_end(ref)
        while len(self._cards) > MAX_CARDS:
            self._cards.popitem(last=False)
        return card

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a background Slack task failed: %s", type(task.exception()).__name__)


_ACTION_ID = re.compile(f"^{re.escape(ACTION_PREFIX)}")


# http mode: verification and body shapes -------------------------------------------------------

SIGNATURE_WINDOW = 5 * 60  # seconds between Slack's timestamp and our clock, either way
# Unix seconds in ASCII digits: int() alone takes "+17_0", Arabic-Indic digits and 5,000 digits
_TIMESTAMP = re.compile("[0-9]{1,12}")
_SIGNATURE = re.compile("v0=[0-9a-f]{64}")


def slack_refusal(headers: CIMultiDictProxy[str], body: bytes, secret: bytes, now: float) -> str | None:
    """Why this request is not from Slack, as a fixed phrase for the log; None when its v0
    signature holds. Nothing here can raise: each header is matched against its exact form first."""
    timestamps = headers.getall("X-Slack-Request-Timestamp", [])
    signatures = headers.getall("X-Slack-Signature", [])
    if not timestamps and not signatures:
        return "no signature"
    if len(timestamps) != 1 or len(signatures) != 1:
        return "signature headers missing or repeated"
    timestamp, signature = timestamps[0], signatures[0]
    if not _TIMESTAMP.fullmatch(timestamp):
        return "malformed timestamp"
    if abs(now - int(timestamp)) > SIGNATURE_WINDOW:
        return "timestamp outside the 5-minute window"
    if not _SIGNATURE.fullmatch(signature):
        return "malformed signature"
    mac = hmac.new(secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    if not hmac.compare_digest("v0=" + mac.hexdigest(), signature):
        return "wrong signature"
    return None


# What Bolt reads of a body before and while it dispatches one (slack_bolt 1.30: the context
# builder in request/internals.py, the payload tests and pickers in request/payload_utils.py, the
# built-in middleware, the listener matchers, the arguments every listener and error handler is
# given, and the unhandled-request log line), and what our listeners read, with the types they
# assume. Every rule holds at the top of the body and inside every object of _NESTED, at any depth:
# Bolt's extractors look for the same keys again inside each of them.
_STRINGS = ("type", "command", "text", "trigger_id", "response_url", "user_id", "user_name", "channel_id",
            "team_id", "enterprise_id", "thread_ts", "message_ts", "callback_id", "action_id", "block_id",
            "challenge", "function_execution_id", "execution_id", "bot_access_token", "user_team",
            "app_installed_team_id")  # fmt: skip
_OBJECTS = ("container", "message", "previous_message", "item", "assistant_thread", "function_data")
_OBJECTS_NOT_NULL = ("view", "event", "function")  # read as body["view"][...] or body.get("event", {}).get(...)
_OBJECTS_OR_IDS = ("user", "team", "enterprise", "channel")  # Bolt takes either form; null too
_LISTS_OF_OBJECTS = ("actions", "authorizations", "response_urls")
# objects Bolt looks inside (each authorization and response_url too; an action's fields differ:
# its "text" is an object, and parse_body checks what is read of it)
_NESTED = ("event", "message", "previous_message", "item", "assistant_thread", "view", "function_data",
           *_OBJECTS_OR_IDS)  # fmt: skip
_NESTED_LISTS = ("authorizations", "response_urls")
# payload types whose first action Bolt takes for the action (payload_utils.to_action)
_WITH_ACTIONS = ("block_actions", "interactive_message")


def parse_body(raw: bytes, content_type: str) -> tuple[str, dict[str, Any]]:
    """The body as text and as parsed, with every shape Bolt and our listeners rely on checked;
    raises Malformed. JSON as Bolt tells it (slack_bolt.request.internals.parse_body: that content
    type, or a body that starts with "{"); a form is an interactive payload when it has a payload
    field (Bolt's own test, the word anywhere in the body, would take "/ssl status payload-api"
    for one: Bolt is handed what this returns, see `signed_for_bolt`). Form fields are decoded
    strictly; JSON goes through bot.web.load_json: no nesting depth raises RecursionError, and no
    string holds a lone surrogate."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("a body that is not UTF-8") from None
    if not text:
        raise Malformed("an empty body")  # Slack always sends one
    try:
        if content_type == "application/json" or text.startswith("{"):
            data: Any = load_json(text)
        else:
            fields = _form(text)
            data = load_json(fields["payload"]) if "payload" in fields else fields
    except UnicodeDecodeError:
        raise Malformed("a form field that is not UTF-8") from None
    if not isinstance(data, dict):
        raise Malformed("a payload that is not a JSON object")
    _check_shapes(data)
    kind = data.get("type")
    if kind in _WITH_ACTIONS:
        actions = data.get("actions")
        if not actions:
            raise Malformed("a button press without actions")  # Bolt takes the first one
        for action in actions:
            # a block action has an action_id (Bolt matches it), an attachment's action a name
            if not isinstance(action.get("action_id", None if kind == "block_actions" else ""), str):
                raise Malformed("an action without a string action_id")
            if any(key in action and not isinstance(action[key], str) for key in ("value", "block_id")):
                raise Malformed("an action value or block_id that is not a string")
    if kind == "block_actions":
        user = data.get("user")
        if not isinstance(user, dict) or not isinstance(user.get("id"), str):
            raise Malformed("a button press without a user object")  # Slack always sends one; it names the approver
        if isinstance(data.get("message"), dict):
            _check_card_copy(data["message"])
    if kind == "workflow_step_edit" and "callback_id" in data and "workflow_step" not in data:
        raise Malformed("a workflow step payload without its step")  # payload_utils.to_step reads it
    view = data.get("view")
    if isinstance(view, dict) and "callback_id" in view:
        if not isinstance(view.get("type"), str):
            raise Malformed("a view without a string type")  # payload_utils.is_workflow_step_save reads it
        if kind == "view_submission" and view["type"] == "workflow_step" and "workflow_step" not in data:
            raise Malformed("a workflow step payload without its step")
    return text, data


def _form(text: str) -> dict[str, str]:
    """Form fields as Bolt reads them (the last of a repeated name wins), except that a
    percent-escape that is not UTF-8 raises UnicodeDecodeError instead of becoming U+FFFD."""
    return dict(parse_qsl(text, keep_blank_values=True, errors="strict"))


def _check_shapes(data: dict[str, Any]) -> None:
    for key in _OBJECTS:
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise Malformed(f"{key} is not an object")
    for key in _OBJECTS_NOT_NULL:
        if key in data and not isinstance(data[key], dict):
            raise Malformed(f"{key} is not an object")
    for key in _OBJECTS_OR_IDS:
        value = data.get(key)
        if value is not None and not isinstance(value, dict | str):
            raise Malformed(f"{key} is not an object or an id")
        if isinstance(value, dict) and "id" in value and not isinstance(value["id"], str):
            raise Malformed(f"{key}.id is not a string")
    for key in _STRINGS:
        if data.get(key) is not None and not isinstance(data[key], str):
            raise Malformed(f"{key} is not a string")
    for key in _LISTS_OF_OBJECTS:
        if key in data and not (isinstance(data[key], list) and all(isinstance(item, dict) for item in data[key])):
            raise Malformed(f"{key} is not a list of objects")
    if any(not isinstance(item.get("response_url"), str) for item in data.get("response_urls", [])):
        raise Malformed("response_urls without a string response_url")  # Bolt reads the first one's
    for key in _NESTED:
        if isinstance(data.get(key), dict):
            _check_shapes(data[key])  # as deep as load_json allows, no deeper
    for key in _NESTED_LISTS:
        for item in data.get(key, []):
            _check_shapes(item)


def _check_card_copy(message: dict[str, Any]) -> None:
    """What render_copy reads of Slack's copy of a card: a list of blocks, and the buttons of
    its actions blocks with their values."""
    blocks = message.get("blocks")
    if blocks is None:
        return
    if not isinstance(blocks, list) or not all(isinstance(block, dict) for block in blocks):
        raise Malformed("message blocks that are not a list of objects")
    for block in blocks:
        if block.get("type") != "actions":
            continue
        elements = block.get("elements")
        if elements is None:
            continue
        if not isinstance(elements, list) or not all(isinstance(element, dict) for element in elements):
            raise Malformed("block elements that are not a list of objects")
        if any(not isinstance(element.get("value", ""), str) for element in elements):
            raise Malformed("a button value that is not a string")


def for_certops(data: dict[str, Any]) -> bool:
    """Whether Bolt hands this checked body to one of our listeners (/ssl, a certops button) or
    answers it itself (Slack's URL verification and certificate check). Anything else is a
    request for a feature certops does not have: Bolt would answer it 404 and log a long
    suggestion of code to write."""
    if data.get("command") == "/ssl" or data.get("type") == "url_verification" or data.get("ssl_check") == "1":
        return True
    if data.get("type") == "block_actions":
        return _ACTION_ID.search(data["actions"][0]["action_id"]) is not None  # parse_body checked these
    return False


def signed_for_bolt(data: dict[str, Any], timestamp: str, secret: bytes) -> tuple[str, str]:
    """The checked body as the JSON text Bolt is handed, with its v0 signature under the request's
    own (verified) timestamp. Bolt then parses exactly what parse_body checked, whatever the
    form: its own parse of a form body takes any body with the word "payload" in it for an
    interactive payload, so "/ssl status payload-api" would reach no listener."""
    text = json.dumps(data, ensure_ascii=False)
    mac = hmac.new(secret, b"v0:" + timestamp.encode() + b":" + text.encode(), hashlib.sha256)
    return text, "v0=" + mac.hexdigest()


def _is_ssl_check(raw: bytes) -> bool:
    if len(raw) > 1024:
        return False
    return dict(parse_qsl(raw.decode("utf-8", "replace"))).get("ssl_check") == "1"


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _typed(method: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """Bolt's socket-mode handler methods carry no annotations; this states what they are."""
    return method


def _with_slash(url: str) -> str:
    # AsyncWebClient appends the method name to base_url as is
    return url if url.endswith("/") else url + "/"


def _signing_secret(settings: SlackSettings) -> str:
    if settings.signing_secret is not None:
        secret = settings.signing_secret.resolve()
        if secret:
            return secret
    if settings.mode == "http":
        raise SlackSetupError("chat.slack: http mode needs signing_secret_env or signing_secret_file")
    # Socket mode serves no HTTP route; a random secret still guarantees that no request could
    # ever verify against an empty key.
    return secrets.token_hex(32)


class _SlackFailure(DeliveryError):
    """A delivery Slack answered with an error code (kept so deliver() can tell a deleted card)."""

    def __init__(self, message: str, code: str, *, permanent: bool, retry_after: float | None) -> None:
        super().__init__(message, permanent=permanent, retry_after=retry_after)
        self.code = code


async def _delivered(method: str, call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
    """One Web API call for deliver(), with its own deadline; every failure as a DeliveryError."""
    try:
        async with asyncio.timeout(DELIVERY_TIMEOUT):
            return await call
    except SlackApiError as exc:
        raise _classified(method, exc.response) from None
    except API_FAILURES as exc:  # unreachable, reset, timed out: the next try may well work
        raise DeliveryError(f"Slack {method}: {type(exc).__name__}") from None


def _classified(method: str, response: AsyncSlackResponse) -> _SlackFailure:
    status = int(response.status_code or 0)
    data = response.data if isinstance(response.data, dict) else {}  # a 5xx may come with an HTML page
    code = str(data.get("error") or f"HTTP {status}")[:80]
    headers = response.headers or {}
    retry_after = parse_retry_after(next((str(v) for k, v in headers.items() if k.lower() == "retry-after"), None))
    transient = is_transient(status) or code in TRANSIENT_ERRORS
    return _SlackFailure(f"Slack {method}: {code}", code, permanent=not transient, retry_after=retry_after)


def _api_error(exc: Exception) -> str:
    """The Slack error code only: the exception text may quote request data."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or "error")
    return type(exc).__name__


if TYPE_CHECKING:

    def _is_a_chat_adapter(adapter: SlackAdapter) -> ChatAdapter:
        return adapter  # mypy checks here that SlackAdapter satisfies bot.chat.base.ChatAdapter


__all__ = [
    "EVENTS_PATH",
    "SlackAdapter",
    "SlackSetupError",
    "for_certops",
    "parse_body",
    "signed_for_bolt",
    "slack_refusal",
]
