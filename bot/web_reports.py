"""`POST /api/report`: the host-side layers report home (docs/report-api.md).

Everything that fails verification is a 401 with one short log line and changes nothing: the
body is read only up to its cap, the host and its secret looked up, the timestamp and signature
checked, and only then is the (host, timestamp, signature) remembered, so a replay is refused
even across a restart. An authentic report that cannot be used is a 400 saying why.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from bot.app import Core
from bot.core.ports import StoreRefused
from bot.reports.model import MAX_BODY, MAX_DEPTH, ReportInvalid, parse_report
from bot.reports.signature import (
    HOST_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature_matches,
    timestamp_problem,
)
from bot.web import Malformed, load_json, refuse
from host_actions.target import SecretUnavailable

PATH = "/api/report"
REPLAY_PLATFORM = "report"  # the seen-events namespace the accepted signatures are kept in


def report_route(core: Core) -> web.RouteDef:
    async def report(request: web.Request) -> web.Response:
        return await _receive(core, request)

    return web.post(PATH, report)


async def _receive(core: Core, request: web.Request) -> web.Response:
    now = core.incidents.clock().timestamp()

    def refused(reason: str) -> web.Response:
        core.metrics.report_refusals.labels(reason).inc()
        return refuse(request, 401, reason, json_body={"error": reason})

    # a body that declares more than the cap was left unread (bot.web.BODY_CAPS); a chunked one was
    # read up to BODY_LIMIT, within the body timeout, and is measured here
    if request.content_length is not None and request.content_length > MAX_BODY:
        return refused("report body over 256 KiB")
    body = await request.read()
    if len(body) > MAX_BODY:
        return refused("report body over 256 KiB")
    host = core.config.host(request.headers.get(HOST_HEADER, ""))
    if host is None:
        return refused("unknown host")
    if host.report_secret is None:
        return refused("host has no report_secret")
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    problem = timestamp_problem(timestamp, now)
    if problem is not None:
        return refused(problem)
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature:
        return refused("no signature")
    try:
        secret = host.report_secret.resolve()
    except SecretUnavailable:
        core.metrics.report_refusals.labels("report secret unavailable").inc()
        return refuse(request, 503, "report secret unavailable", json_body={"error": "report secret unavailable"})
    if not signature_matches(secret, timestamp, body, signature):
        return refused("signature does not match")
    try:
        first = await asyncio.to_thread(
            core.store.first_time, REPLAY_PLATFORM, f"{host.name}:{timestamp}:{signature.lower()}"
        )
    except StoreRefused as exc:
        return refuse(request, 503, "store refused the report", json_body={"error": exc.reason})
    if not first:
        return refused("replayed report")
    try:
        report = parse_report(load_json(body, max_depth=MAX_DEPTH), host.name)
    except (Malformed, ReportInvalid) as exc:
        core.metrics.report_refusals.labels("malformed report").inc()
        return refuse(request, 400, "malformed report", json_body={"error": str(exc)})
    try:
        await asyncio.to_thread(core.reports.receive, report)
    except StoreRefused as exc:
        return refuse(request, 503, "store refused the report", json_body={"error": exc.reason})
    core.metrics.reports.labels(host.name, report.kind, "ok" if report.ok else "failed").inc()
    return web.json_response({"ok": True})
