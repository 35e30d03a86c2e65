"""`certops agent`: a probe agent on another network (docs/agents.md).

It holds no database and no chat tokens: it pulls the sites it probes from the bot
(`GET /api/agent/work`), probes each at its interval with the bot's own probe engine, and posts
the results back (`POST /api/agent/results`), every request signed with the agent's own secret
as /api/report is. While the bot cannot be reached it keeps probing: results wait in a bounded
buffer (the oldest are dropped first, with a count in the log) and go out when the bot answers
again. Every HTTP call has a deadline; SIGTERM ends it after the round in flight.

This module must not import the store or the chat adapters (tests/agents checks it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import ipaddress
import json
import logging
import os
import signal
import ssl
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bot.config.files import SECRET_CAP, FileRefused, read_text
from bot.config.site import Site
from bot.config.urls import NAME, split_https_url
from bot.probe import ProbeResult, probe_many
from bot.probe.engine import failed_probe
from bot.probe.targets import site_targets
from bot.reports.signature import AGENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

if TYPE_CHECKING:  # httpx loads with the agent itself, not with every certops command
    import httpx

log = logging.getLogger("certops.agent")

SECRET_ENV = "CERTOPS_AGENT_SECRET"  # noqa: S105 - the name of a variable, not a secret
WORK_PATH = "/api/agent/work"
RESULTS_PATH = "/api/agent/results"
HTTP_TIMEOUT = 10.0  # seconds for any one request to the bot, connect to last byte
WORK_POLL = 60.0  # seconds between work requests, unless the bot asks for less
MAX_BACKOFF = 60.0
BUFFER_ROUNDS = 10_000  # site rounds kept while the bot cannot be reached
BATCH_ROUNDS = 200
BATCH_BYTES = 900 * 1024  # below the bot's 1 MiB body limit
CONCURRENCY = 50


class AgentError(Exception):
    """A problem with how the agent was started; the message says what to fix."""


@dataclasses.dataclass
class _Work:
    site: Site
    due: float  # loop time of the next round
    running: bool = False


class Agent:
    def __init__(
        self,
        bot: str,
        name: str,
        secret: str,
        *,
        ca_file: str | None = None,
        source_address: str | None = None,
        buffer_rounds: int = BUFFER_ROUNDS,
    ) -> None:
        self.bot = bot.rstrip("/")
        self.name = name
        self.secret = secret
        self.source_address = source_address
        self.buffer: deque[dict[str, Any]] = deque()
        self.buffer_rounds = buffer_rounds
        self.dropped = 0
        self.work: dict[str, _Work] = {}
        self.poll = WORK_POLL
        self.stopping = asyncio.Event()
        self._last_stamp = 0
        self._ca_dir = tempfile.TemporaryDirectory(prefix="certops-agent-")
        self._gate = asyncio.Semaphore(CONCURRENCY)
        self._probes: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()  # a round ended, or new work came
        self._kept = asyncio.Event()  # a round was buffered
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        import httpx

        self.client = httpx.AsyncClient(timeout=HTTP_TIMEOUT, verify=verify, follow_redirects=False, trust_env=False)

    # the loop ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Probes the due rounds; fetching work and posting results run beside it, so a bot that
        hangs (each request waits out its deadline) never holds a round back."""
        log.info("probe agent %s reporting to %s", self.name, self.bot)
        beside = [asyncio.ensure_future(self._fetch_loop()), asyncio.ensure_future(self._post_loop())]
        loop = asyncio.get_running_loop()
        try:
            while not self.stopping.is_set():
                self._start_due_rounds(loop.time())
                wake = min((w.due for w in self.work.values() if not w.running), default=loop.time() + 1.0)
                await self._pause(max(0.05, min(wake - loop.time(), 1.0)))
        finally:
            for task in beside:
                task.cancel()
            await asyncio.gather(*beside, return_exceptions=True)
            await self._finish()

    async def _fetch_loop(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            if await self._fetch_work():
                failures = 0
                self._wake.set()  # new sites are due now
                await self._sleep(self.poll)
            else:
                failures += 1
                await self._sleep(_backoff(failures, self.poll))

    async def _post_loop(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            if not self.buffer:
                self._kept.clear()
                await self._wait_for_stop_or(self._kept)
                continue
            if await self._post_results():
                failures = 0
            else:
                failures += 1
                await self._sleep(_backoff(failures, MAX_BACKOFF))

    async def _pause(self, seconds: float) -> None:
        """Until a round ends or work arrives (self._wake), stop, or `seconds`."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wait_for_stop_or(self._wake)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stopping.wait()

    async def _wait_for_stop_or(self, event: asyncio.Event) -> None:
        stop = asyncio.ensure_future(self.stopping.wait())
        other = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait([stop, other], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            other.cancel()

    async def _finish(self) -> None:
        """At SIGTERM: the probes in flight end, and what they found is posted once, briefly."""
        if self._probes:
            await asyncio.wait(set(self._probes), timeout=HTTP_TIMEOUT)
        if self.buffer:
            with contextlib.suppress(Exception):
                await self._post_results()
        if self.buffer:
            log.warning("stopping with %d site round(s) not delivered", len(self.buffer))
        await self.client.aclose()
        self._ca_dir.cleanup()

    def stop(self) -> None:
        self.stopping.set()

    # work ----------------------------------------------------------------------------------------

    async def _fetch_work(self) -> bool:
        import httpx

        try:
            response = await self._request("GET", WORK_PATH, b"")
        except (httpx.HTTPError, TimeoutError) as exc:  # TimeoutError: the whole call's own deadline
            log.warning("cannot fetch work from the bot (%s); probing the sites known so far", _why(exc))
            return False
        if response.status_code != 200:
            log.warning("the bot refused the work request (HTTP %d: %s)", response.status_code, _error(response))
            return False
        try:
            data = response.json()
            sites = [self._site(item) for item in data["sites"]]
            self.poll = max(1.0, min(WORK_POLL, float(data.get("poll") or WORK_POLL)))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("the bot's work answer cannot be used (%s)", type(exc).__name__)
            return False
        now = asyncio.get_running_loop().time()
        fresh: dict[str, _Work] = {}
        for site in sites:
            known = self.work.get(site.name)
            if known is not None and known.site == site:
                fresh[site.name] = known
            else:
                fresh[site.name] = _Work(site, now if known is None else min(known.due, now + site.interval))
        added = set(fresh) - set(self.work)
        if added or set(self.work) - set(fresh):
            log.info("probing %d site(s) for the bot", len(fresh))
        self.work = fresh
        return True

    def _site(self, item: dict[str, Any]) -> Site:
        url = str(item["url"])
        hostname, port, path = split_https_url(url)
        return Site(
            name=str(item["name"]),
            url=url,
            hostname=hostname,
            port=port,
            path=path,
            origins=tuple(str(o) for o in item.get("origins") or ()),
            interval=max(5.0, float(item["interval"])),
            warn_days=int(item.get("warn_days", 21)),
            crit_days=int(item.get("crit_days", 7)),
            expect_status=tuple(int(s) for s in item.get("expect_status") or ()),
            keyword=str(item["keyword"]) if item.get("keyword") else None,
            timeout=max(0.5, min(120.0, float(item.get("timeout") or 10.0))),
            ca_file=self._ca_file(item),
            follow_redirects=bool(item.get("follow_redirects")),
        )

    def _ca_file(self, item: dict[str, Any]) -> str | None:
        """The site's CA certificates, as the bot sent them, in a file of this agent's own."""
        pem = item.get("ca_pem")
        if pem is None and not item.get("ca_problem"):
            return None
        text = str(pem or "")  # the bot could not read its file: an empty one fails the same way here
        path = Path(self._ca_dir.name) / (hashlib.sha256(text.encode()).hexdigest()[:32] + ".pem")
        if not path.exists():
            path.write_text(text, encoding="utf-8")
        return str(path)

    # probes ----------------------------------------------------------------------------------------

    def _start_due_rounds(self, now: float) -> None:
        for work in self.work.values():
            if work.running or work.due > now:
                continue
            work.running = True
            work.due = now + work.site.interval
            task = asyncio.ensure_future(self._round(work))
            self._probes.add(task)
            task.add_done_callback(self._probes.discard)

    async def _round(self, work: _Work) -> None:
        site = work.site
        try:
            targets = [dataclasses.replace(t, source_address=self.source_address) for t in site_targets(site)]
            try:
                results = await probe_many(targets, gate=self._gate)
            except Exception:
                log.exception("probing %s raised; recorded as probe_error", site.name)
                results = [failed_probe(t) for t in targets]
            self._keep(site.name, results)
        except Exception:
            log.exception("the site %s from the bot cannot be probed", site.name)
        finally:
            work.running = False
            self._wake.set()

    def _keep(self, site: str, results: Sequence[ProbeResult]) -> None:
        self.buffer.append({"site": site, "results": [r.to_json() for r in results]})
        self._kept.set()
        over = len(self.buffer) - self.buffer_rounds
        if over > 0:
            for _ in range(over):
                self.buffer.popleft()
            self.dropped += over
            log.warning(
                "the bot has not taken results for a while: dropped the %d oldest site round(s) "
                "(%d in all; the buffer keeps %d)",
                over,
                self.dropped,
                self.buffer_rounds,
            )

    # results ---------------------------------------------------------------------------------------

    async def _post_results(self) -> bool:
        """Posts the oldest rounds in one batch; True when the bot took them (or refused them for
        good: a batch it calls malformed would never be taken)."""
        batch: list[dict[str, Any]] = []
        size = 0
        for entry in self.buffer:
            length = len(json.dumps(entry))
            if batch and (len(batch) >= BATCH_ROUNDS or size + length > BATCH_BYTES):
                break
            batch.append(entry)
            size += length
        body = json.dumps({"agent": self.name, "results": batch}, separators=(",", ":")).encode()
        import httpx

        try:
            response = await self._request("POST", RESULTS_PATH, body)
        except (httpx.HTTPError, TimeoutError) as exc:  # TimeoutError: the whole call's own deadline
            log.warning("cannot post results to the bot (%s); %d site round(s) wait", _why(exc), len(self.buffer))
            return False
        if response.status_code == 200 or response.status_code == 400:
            if response.status_code == 400:
                log.error("the bot refused %d site round(s) as malformed: %s", len(batch), _error(response))
            # rounds kept meanwhile went to the right and drops came off the left: what is left of
            # the batch is the buffer's head
            sent = {id(entry) for entry in batch}
            while self.buffer and id(self.buffer[0]) in sent:
                self.buffer.popleft()
            return True
        log.warning("the bot refused the results (HTTP %d: %s)", response.status_code, _error(response))
        return False

    async def _request(self, method: str, path: str, body: bytes) -> httpx.Response:
        stamp = int(time.time())
        if stamp <= self._last_stamp:  # a new second for each request: the bot refuses a repeated signature
            await asyncio.sleep(self._last_stamp + 1 - time.time())
            stamp = int(time.time())
        self._last_stamp = stamp
        headers = {
            AGENT_HEADER: self.name,
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(self.secret, str(stamp), body),
        }
        if body:
            headers["Content-Type"] = "application/json"
        async with asyncio.timeout(HTTP_TIMEOUT + 1):  # the whole call, whatever httpx's own timeouts do
            return await self.client.request(method, self.bot + path, content=body or None, headers=headers)


def _backoff(failures: int, ceiling: float) -> float:
    return float(min(ceiling, MAX_BACKOFF, 2 ** min(failures, 6)))


def _why(exc: Exception) -> str:
    return type(exc).__name__


def _error(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error"))[:200]
    except (ValueError, AttributeError):
        return "no reason given"


# the command line ---------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `agent` to the certops command line."""
    p = subparsers.add_parser(
        "agent",
        help="run a probe agent: probe the sites the bot names from this network, report over HTTPS",
        description="Pulls its sites from the bot, probes each at its interval and posts the results back, "
        "each request signed with the agent's secret ([[agents]] in the bot's config). Holds no database "
        "and no chat tokens. See docs/agents.md.",
    )
    p.add_argument("--bot", required=True, metavar="URL", help="the bot's [bot] public_url, https://…")
    p.add_argument("--name", required=True, help="this agent's [[agents]] name, e.g. tokyo")
    secret = p.add_mutually_exclusive_group()
    secret.add_argument("--secret-env", metavar="VAR", help=f"the variable holding the secret (default {SECRET_ENV})")
    secret.add_argument("--secret-file", metavar="PATH", help="a file holding the secret")
    p.add_argument("--ca-file", help="trust only the CA certificates in this PEM file for the bot's HTTPS")
    p.add_argument(
        "--source-address",
        metavar="ADDR",
        help="connect to sites from this local address (a probe machine with several networks)",
    )
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(handler=cmd_agent)


def cmd_agent(args: argparse.Namespace) -> int:
    from bot.logs import setup_logging

    try:
        bot = _bot_url(args.bot)
        if not NAME.match(args.name):
            raise AgentError(f"--name {args.name!r}: use letters, digits, '.', '_' or '-'")
        secret = _secret(args.secret_env, args.secret_file)
        source = _source_address(args.source_address)
        agent = Agent(bot, args.name, secret, ca_file=args.ca_file, source_address=source)
    except (AgentError, ssl.SSLError, OSError) as exc:
        print(f"certops agent: not starting: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level.upper(), fmt="logfmt")
    logging.getLogger().setLevel(args.log_level.upper())

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C still raises KeyboardInterrupt
                loop.add_signal_handler(signum, agent.stop)
        await agent.run()

    asyncio.run(main())
    log.info("probe agent %s stopped", args.name)
    return 0


def _bot_url(text: str) -> str:
    """https:// always, but for a bot on this machine's own loopback (behind no proxy)."""
    parts = urlsplit(text)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return text
    loopback = host == "localhost"
    with contextlib.suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    if parts.scheme == "http" and loopback:
        return text
    raise AgentError(f"--bot must be the bot's https:// address, such as https://certops.example.com, got {text!r}")


def _secret(env: str | None, file: str | None) -> str:
    if file:
        try:
            value = read_text(file, cap=SECRET_CAP, what="a secret file").strip()
        except FileRefused as exc:
            raise AgentError(str(exc)) from None
        if not value:
            raise AgentError(f"the secret file {file} is empty")
        return value
    name = env or SECRET_ENV
    value = os.environ.get(name, "").strip()
    if not value:
        raise AgentError(f"the environment variable {name} holding the agent's secret is not set")
    return value


def _source_address(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise AgentError(f"--source-address {text!r} is not an IP address") from None
