"""`GET /api/agent/work` and `POST /api/agent/results`: the probe agents (`certops agent`) pull the
sites they probe and post what they saw (docs/agents.md).

Both are signed as `/api/report` is (bot.reports.signature), with `X-Certops-Agent` naming the
agent instead of `X-Certops-Host`; the work request signs the empty body. Everything that fails
verification is a 401 with one short log line and changes nothing; the (agent, timestamp,
signature) of each accepted request is remembered, so a replay is refused even across a restart.
An authentic request that cannot be used is a 400 saying why.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from bot.agent import RESULTS_PATH, WORK_PATH
from bot.app import Core
from bot.config import Site
from bot.config.files import FileRefused, read_text
from bot.config.model import Agent
from bot.core.agents import AgentDesk, AgentRound
from bot.core.ports import StoreRefused
from bot.probe import ProbeResult, result_from_json
from bot.probe.targets import site_targets
from bot.reports.model import MAX_DEPTH
from bot.reports.signature import AGENT_HEADER
from bot.web import Malformed, load_json, refuse
from bot.web_signed import NOT_AUTHENTICATED, Endpoint, Refused, refusal, verified_body
from host_actions.target import Secret

REPLAY_PLATFORM = "agent"  # the seen-events namespace the accepted signatures are kept in
MAX_BODY = 1024 * 1024  # bot.web.BODY_LIMIT: a larger body is refused before it reaches the handler
MAX_ROUNDS = 10_000  # site rounds in one post
MAX_RESULTS = 64  # paths in one site's round (the public name and its origins)
CA_PEM_CAP = 512 * 1024  # a site's ca_file sent to agents as PEM text; a larger one is not sent
WORK_POLL = 60.0  # seconds between an agent's work requests, at most


def agent_routes(core: Core) -> list[web.RouteDef]:
    async def work(request: web.Request) -> web.Response:
        return await _work(core, request)

    async def results(request: web.Request) -> web.Response:
        return await _results(core, request)

    return [web.get(WORK_PATH, work), web.post(RESULTS_PATH, results)]


ENDPOINT = Endpoint(
    cap=MAX_BODY,
    replay_platform=REPLAY_PLATFORM,
    too_large="agent request body over 1 MiB",
    unavailable="agent secret unavailable",
    replayed="replayed agent request",
)


async def _verified(core: Core, request: web.Request) -> tuple[Agent, bytes] | web.Response:
    """The agent that signed the request and its body, or the answer that refuses it."""
    found: list[Agent] = []

    def secret_of(sender: str) -> Secret:
        agent = core.config.agent(sender)
        if agent is None:
            raise Refused("unknown agent", answer=NOT_AUTHENTICATED)
        found.append(agent)
        return agent.secret

    sender = request.headers.get(AGENT_HEADER, "")
    try:
        body = await verified_body(
            request, core.store, ENDPOINT, now=core.incidents.clock().timestamp(), sender=sender, secret_of=secret_of
        )
    except Refused as refused:
        return refusal(request, refused)
    return found[0], body


def _desk(core: Core) -> AgentDesk:
    assert core.agents is not None  # build_core makes one
    return core.agents


async def _work(core: Core, request: web.Request) -> web.Response:
    verified = await _verified(core, request)
    if isinstance(verified, web.Response):
        return verified
    agent, _body = verified
    desk = _desk(core)
    try:
        await asyncio.to_thread(desk.seen, agent.name)
    except StoreRefused as exc:
        return refuse(request, 503, "store refused the request", json_body={"error": exc.reason})
    sites = [await asyncio.to_thread(site_work, site) for site in desk.sites_for(agent.name)]
    poll = min(WORK_POLL, agent.report_interval)
    return web.json_response({"agent": agent.name, "poll": poll, "sites": sites})


def site_work(site: Site) -> dict[str, Any]:
    """What an agent needs to probe the site as the bot does: its fields, never a secret."""
    work: dict[str, Any] = {
        "name": site.name,
        "url": site.url,
        "origins": list(site.origins),
        "interval": site.interval,
        "timeout": site.timeout,
        "warn_days": site.warn_days,
        "crit_days": site.crit_days,
        "expect_status": list(site.expect_status),
        "keyword": site.keyword,
        "follow_redirects": site.follow_redirects,
        "ca_pem": None,
    }
    if site.ca_file is not None:
        try:
            work["ca_pem"] = read_text(site.ca_file, cap=CA_PEM_CAP, what="a CA file sent to probe agents")
        except FileRefused as exc:
            work["ca_problem"] = str(exc)
    return work


async def _results(core: Core, request: web.Request) -> web.Response:
    verified = await _verified(core, request)
    if isinstance(verified, web.Response):
        return verified
    agent, body = verified
    try:
        rounds = parse_results(load_json(body, max_depth=MAX_DEPTH), agent.name)
    except Malformed as exc:
        return refuse(request, 400, "malformed agent results", json_body={"error": exc.reason})
    desk = _desk(core)
    known = {s.name for s in desk.sites_for(agent.name)}
    accepted = [r for r in rounds if r.site in known]
    try:
        await asyncio.to_thread(desk.receive, agent.name, accepted)
    except StoreRefused as exc:
        return refuse(request, 503, "store refused the results", json_body={"error": exc.reason})
    core.metrics.agent_rounds.labels(agent.name).inc(len(accepted))
    sites = {s.name: s for s in desk.sites_for(agent.name)}
    for found in accepted:
        # only the site's own paths become series: an agent cannot name hosts of its own choosing
        paths = {(t.via, t.hostname, t.connect_host) for t in site_targets(sites[found.site])}
        own = [r for r in found.results if (r.target.via, r.target.hostname, r.target.connect_host) in paths]
        core.metrics.observe_probes(own, vantage=agent.name)
    return web.json_response({"ok": True, "accepted": len(accepted), "ignored": len(rounds) - len(accepted)})


def parse_results(data: Any, agent: str) -> list[AgentRound]:
    """{"agent": name, "results": [{"site": name, "results": [ProbeResult JSON, ...]}, ...]};
    Malformed says what is wrong (a fixed phrase)."""
    if not isinstance(data, dict) or data.get("agent") != agent:
        raise Malformed("agent results for another agent than the header names")
    entries = data.get("results")
    if not isinstance(entries, list) or len(entries) > MAX_ROUNDS:
        raise Malformed(f"results must be a list of at most {MAX_ROUNDS} site rounds")
    rounds = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("site"), str):
            raise Malformed("each site round needs a site name")
        found = entry.get("results")
        if not isinstance(found, list) or not 0 < len(found) <= MAX_RESULTS:
            raise Malformed(f"each site round needs 1 to {MAX_RESULTS} results")
        rounds.append(AgentRound(entry["site"], tuple(_result(r, entry["site"]) for r in found)))
    return rounds


def _result(data: Any, site: str) -> ProbeResult:
    if not isinstance(data, dict) or data.get("site") != site:
        raise Malformed("a result for another site than its round names")
    try:
        result = result_from_json(data)
        result.to_json()  # every field it needs is there, of a usable type
    except (KeyError, TypeError, ValueError, AttributeError):
        raise Malformed("a result that is not a probe result") from None
    return result
