"""`POST /api/report`: the host-side layers report home (docs/report-api.md).

Everything that fails verification (bot.web_signed) is a 401 with one short log line and changes
nothing; a replay is refused even across a restart. An authentic report that cannot be used is
a 400 saying why.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from bot.app import Core
from bot.core.ports import StoreRefused
from bot.reports.model import MAX_BODY, MAX_DEPTH, ReportInvalid, parse_report
from bot.reports.signature import HOST_HEADER
from bot.web import Malformed, load_json, refuse
from bot.web_signed import NOT_AUTHENTICATED, Endpoint, Refused, refusal, verified_body
from host_actions.target import Secret

PATH = "/api/report"
REPLAY_PLATFORM = "report"  # the seen-events namespace the accepted signatures are kept in


def report_route(core: Core) -> web.RouteDef:
    async def report(request: web.Request) -> web.Response:
        return await _receive(core, request)

    return web.post(PATH, report)


ENDPOINT = Endpoint(
    cap=MAX_BODY,
    replay_platform=REPLAY_PLATFORM,
    too_large="report body over 256 KiB",
    unavailable="report secret unavailable",
    replayed="replayed report",
)


async def _receive(core: Core, request: web.Request) -> web.Response:
    name = request.headers.get(HOST_HEADER, "")

    def secret_of(sender: str) -> Secret:
        host = core.config.host(sender)
        if host is None:
            raise Refused("unknown host", answer=NOT_AUTHENTICATED)
        if host.report_secret is None:
            raise Refused("host has no report_secret", answer=NOT_AUTHENTICATED)
        return host.report_secret

    try:
        body = await verified_body(
            request, core.store, ENDPOINT, now=core.incidents.clock().timestamp(), sender=name, secret_of=secret_of
        )
    except Refused as refused:
        core.metrics.report_refusals.labels(refused.reason).inc()
        return refusal(request, refused)
    try:
        report = parse_report(load_json(body, max_depth=MAX_DEPTH), name)
    except (Malformed, ReportInvalid) as exc:
        core.metrics.report_refusals.labels("malformed report").inc()
        return refuse(request, 400, "malformed report", json_body={"error": str(exc)})
    try:
        await asyncio.to_thread(core.reports.receive, report)
    except StoreRefused as exc:
        return refuse(request, 503, "store refused the report", json_body={"error": exc.reason})
    core.metrics.reports.labels(name, report.kind, "ok" if report.ok else "failed").inc()
    return web.json_response({"ok": True})
