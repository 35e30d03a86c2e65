"""Prometheus metrics for GET /metrics. Label names follow blackbox_exporter's where the
meaning is the same; one registry per bot, so tests and several bots in one process don't mix."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from bot.probe import ProbeResult
from bot.probe.certinfo import parse_iso_utc

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series double every counter for no use
        self.registry = CollectorRegistry()
        self.paths = PathGauges()
        self.problems = Counter(
            "certops_probe_problems",
            "Problems found by probes, by problem code and where they were probed from",
            ["site", "code", "vantage"],
            registry=self.registry,
        )
        self.host_actions = Counter(
            "certops_host_actions",
            "Host actions run, by outcome (ok, failed, stale, error)",
            ["host", "action", "outcome"],
            registry=self.registry,
        )
        self.scheduler_lag = Histogram(
            "certops_scheduler_lag_seconds",
            "How late a scheduled job started after its planned time",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.scheduler_skipped = Counter(
            "certops_scheduler_skipped",
            "Scheduled runs skipped because the previous run of the same job was still going (a backlog)",
            registry=self.registry,
        )
        self.heartbeat_failures = Counter(
            "certops_heartbeat_failures", "Failed pings of [bot] heartbeat_url", registry=self.registry
        )
        self.probe_worker_restarts = Counter(
            "certops_probe_worker_restarts",
            "Probe worker processes restarted after they died or stopped answering ([bot] probe_workers)",
            registry=self.registry,
        )

        self.reports = Counter(
            "certops_reports",
            "Reports of the hosts' own scripts accepted on /api/report, by kind and whether the run was ok",
            ["host", "kind", "outcome"],
            registry=self.registry,
        )
        self.agent_rounds = Counter(
            "certops_agent_rounds",
            "Site rounds accepted from probe agents on /api/agent/results (buffered ones count when they arrive)",
            ["agent"],
            registry=self.registry,
        )
        self.report_refusals = Counter(
            "certops_report_refusals",
            "Requests to /api/report refused (401, 400 or 503), by reason",
            ["reason"],
            registry=self.registry,
        )

    def observe_probes(self, results: Sequence[ProbeResult], vantage: str = "local") -> None:
        """`vantage`: where they were probed from, "local" (the bot) or a probe agent's name."""
        for result in results:
            site = result.target.site or result.target.hostname
            labels = (site, result.target.via, result.address or "", vantage)
            self.paths.set("certops_probe_success", labels, 0 if result.status.value in ("critical", "unknown") else 1)
            self.paths.set("certops_probe_duration_seconds", labels, result.elapsed_ms / 1000)
            if result.certificate is not None:
                not_after = parse_iso_utc(result.certificate.not_after).timestamp()
                self.paths.set("certops_cert_expiry_timestamp_seconds", labels, not_after)
            for problem in result.problems:
                self.problems.labels(site, problem.code, vantage).inc()

    def add_gauges(self, gauges: Callable[[], dict[str, tuple[str, float]]]) -> None:
        """Values read at scrape time (open incidents, outbox depth): name -> (help, value)."""
        self.registry.register(_Live(gauges))

    def render(self) -> bytes:
        return generate_latest(self.registry) + self.paths.render().encode()


PATH_GAUGES = {
    "certops_probe_success": "1 if the last probe of this path got a good answer",
    "certops_probe_duration_seconds": "How long the last probe of this path took",
    "certops_cert_expiry_timestamp_seconds": "notAfter of the leaf certificate served on this path, Unix seconds",
}


class PathGauges:
    """The per-path gauges (site, via, address, vantage), kept as exposition lines rendered when a probe
    sets them. At 10,000 sites they are 30,000 samples: prometheus-client formats every sample at
    each scrape (about 0.4 s holding the GIL, which stalled /healthz), this joins strings. Same
    text format, labels in prometheus-client's (sorted) order."""

    def __init__(self) -> None:
        self._lines: dict[str, dict[tuple[str, str, str, str], str]] = {name: {} for name in PATH_GAUGES}
        self._lock = threading.Lock()

    def set(self, name: str, labels: tuple[str, str, str, str], value: float) -> None:
        site, via, address, vantage = (_escape(v) for v in labels)
        number = floatToGoString(value)  # type: ignore[no-untyped-call]  # formatted as prometheus-client does
        line = f'{name}{{address="{address}",site="{site}",vantage="{vantage}",via="{via}"}} {number}\n'
        with self._lock:
            self._lines[name][labels] = line

    def render(self) -> str:
        with self._lock:
            parts = [
                f"# HELP {name} {PATH_GAUGES[name]}\n# TYPE {name} gauge\n" + "".join(lines.values())
                for name, lines in self._lines.items()
            ]
        return "".join(parts)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Live:
    def __init__(self, gauges: Callable[[], dict[str, tuple[str, float]]]) -> None:
        self.gauges = gauges

    def collect(self) -> list[Metric]:
        families: list[Metric] = []
        for name, (help_text, value) in self.gauges().items():
            if name.endswith("_total"):
                families.append(CounterMetricFamily(name.removesuffix("_total"), help_text, value=value))
            else:
                families.append(GaugeMetricFamily(name, help_text, value=value))
        return families

    def describe(self) -> list[Metric]:
        return []  # values are read at scrape time; nothing to check at registration
