"""Replicas on PostgreSQL under failover: two `certops run` replicas on one database, N loopback
TLS sites, and the leader SIGKILLed K times (restarted as a follower each time).

Run from the repository root (as root, or with the postgresql and nginx packages installed):

    .venv/bin/python bench/ha.py                        # 10,000 sites, 20 kills
    .venv/bin/python bench/ha.py --sites 500 --kills 5  # a quicker run

It measures, and prints as one table:

- failover: from the kill to the other replica's /healthz saying `leader: true`, and to the
  first probe result it writes (p50 and p99 over the kills);
- duplicates: a site that fails from the start has one incident; its card must be posted once
  across all the kills (Slack stand-in's accepted chat.postMessage calls), as must every other
  incident's, and no host action may run twice (none is configured: the column says so);
- quorum confirmation: two `certops agent` processes (a1, a2, each from its own loopback
  address) and, for each of --quorum-trials, two extra sites on a TLS server of the bench's own,
  `q-local-N` (vantage local only) and `q-quorum-N` (local, a1 and a2, confirm_from = 2), both
  every --quorum-interval; trial N makes its server reset every handshake, and the time to each
  site's incident is taken (p50 / max), before the kills begin (a pair of its own per trial: one
  pair failing again and again would be flapping);
- the database's load per probe round: statements and rows written per site, over the first
  round a new leader runs (every site probed once), from pg_stat_statements (the bench starts a
  PostgreSQL cluster of its own with it preloaded) or, without it, pg_stat_database and
  pg_stat_user_tables counters.

The sites are `s<i>` at https://localhost:PORT/ over --endpoints nginx ports (bench/probe_throughput.py's
nginx config and certificates), with a long --interval (default 5 min: a round of 10,000 sites is 33 probes/s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.probe_throughput import (  # noqa: E402 - after the path set-up above
    _new_ca,
    _new_leaf,
    _write_leaf,
    ensure_packages,
    free_ports,
    nginx_conf,
    wait_listening,
)

PW_ENV = "CERTOPS_BENCH_DB_PASSWORD"
AGENTS = {"a1": "127.0.0.2", "a2": "127.0.0.3"}  # name -> the loopback address it probes from
AGENT_SECRET = "bench-agent-secret-0123456789"  # noqa: S105 - a loopback bench's throwaway secret
SLACK_ENV = {
    "CERTOPS_TEST_SLACK_BOT_TOKEN": "xoxb-test-not-a-real-token",
    "CERTOPS_TEST_SLACK_SIGNING_SECRET": "test-signing-secret-not-real",
}


def log(message: str) -> None:
    print(f"[ha] {message}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


# PostgreSQL ---------------------------------------------------------------------------------------


@dataclass
class Cluster:
    url: str
    password: str
    folder: Path
    statements: bool = False  # pg_stat_statements loaded

    def owner_cmd(self, *command: str) -> list[str]:
        if os.getuid() == 0:
            return ["runuser", "-u", (self.folder / "data").owner(), "--", *command]
        return list(command)

    def psql(self, sql: str) -> str:
        binary = Path((self.folder / "bin").read_text().strip()) / "psql"
        port = self.url.rsplit(":", 1)[1].split("/", 1)[0]
        command = self.owner_cmd(
            str(binary), "-h", str(self.folder), "-p", port, "-U", "certops", "-d", "certops", "-qAt", "-c", sql
        )
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=60).stdout

    def enable_statements(self) -> None:
        """Preloads pg_stat_statements (a restart with the options it was started with)."""
        binary = Path((self.folder / "bin").read_text().strip()) / "pg_ctl"
        try:
            self.psql("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            data, server_log = str(self.folder / "data"), str(self.folder / "server.log")
            command = self.owner_cmd(str(binary), "-D", data, "-l", server_log, "-m", "fast", "-w", "restart")
            # no pipes: the server inherits them, and would hold them open for its whole life
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
            self.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            self.statements = True
        except subprocess.CalledProcessError as exc:
            log(f"pg_stat_statements unavailable ({exc.stderr!r}); counting with pg_stat_database")

    def counters(self) -> dict[str, float]:
        """Statements (or transactions) and rows written so far in the certops database."""
        out: dict[str, float] = {}
        line = self.psql(
            "SELECT xact_commit, "
            "(SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables) "
            "FROM pg_stat_database WHERE datname = 'certops'"
        ).strip()
        commits, rows = line.split("|")
        out["commits"], out["rows"] = float(commits), float(rows)
        if self.statements:
            line = self.psql(
                "SELECT coalesce(sum(calls), 0), "
                "coalesce(sum(rows) FILTER (WHERE query ~* '^\\s*(insert|update|delete)'), 0) "
                "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'certops')"
            ).strip()
            calls, written = line.split("|")
            out["statements"], out["statement_rows"] = float(calls), float(written)
        return out

    def top_statements(self) -> list[tuple[float, float, str]]:
        """(calls, rows, query) of the most called statements so far, for where the load comes from."""
        if not self.statements:
            return []
        out = self.psql(
            "SELECT calls, rows, regexp_replace(left(query, 110), '\\s+', ' ', 'g') FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'certops') "
            "ORDER BY calls DESC LIMIT 25"
        )
        rows = [line.split("|", 2) for line in out.splitlines() if line.count("|") >= 2]
        return [(float(calls), float(written), query) for calls, written, query in rows]

    def reset_statements(self) -> None:
        if self.statements:
            self.psql("SELECT pg_stat_statements_reset()")

    def stat_settle(self) -> None:
        # the statistics collector reports counters at the end of each transaction, batched
        time.sleep(1.5)


def start_cluster() -> Cluster:
    started = subprocess.run(
        [str(REPO_ROOT / "scripts" / "postgres-for-tests"), "start"], capture_output=True, text=True, timeout=300
    )
    if started.returncode != 0:
        raise SystemExit(f"no PostgreSQL: {started.stderr.strip()}")
    found = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
    return Cluster(
        found["CERTOPS_TEST_POSTGRES_URL"],
        found["CERTOPS_TEST_POSTGRES_PASSWORD"],
        Path(found["CERTOPS_TEST_POSTGRES_DIR"]),
    )


# replicas -----------------------------------------------------------------------------------------


@dataclass
class Replica:
    folder: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0
    command: list[str] = field(default_factory=list)  # certops's arguments; default: run with the folder's config

    def start(self) -> None:
        self.runs += 1
        logfile = (self.folder / f"run-{self.runs}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", *(self.command or ["run", "-c", str(self.folder / "certops.toml")])],
            stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT, env=self.env, cwd=REPO_ROOT,
        )  # fmt: skip
        logfile.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=3) as answer:
                return dict(json.loads(answer.read()))
        except urllib.error.HTTPError as exc:
            try:
                return dict(json.loads(exc.read()))
            except ValueError:
                return None
        except (OSError, ValueError):
            return None

    def leads(self) -> bool:
        h = self.health()
        return h is not None and h.get("leader") is True


def config_text(
    cluster: Cluster,
    port: int,
    sites: int,
    endpoints: list[int],
    bad_port: int,
    ca: Path,
    slack_url: str,
    lease: float,
    interval: float,
    quorum: tuple[list[int], Path, float],
) -> str:
    lines = [
        "[bot]",
        f'listen = "127.0.0.1:{port}"',
        f'database = "{cluster.url}"',
        f'database_password_env = "{PW_ENV}"',
        f'leader_lease = "{lease:g}s"',
        'digest_at = ""',
        'renotify = ""',
        "",
        "[chat.slack]",
        'mode = "http"',
        'channel = "C0INCIDENTS"',
        'bot_token_env = "CERTOPS_TEST_SLACK_BOT_TOKEN"',
        'signing_secret_env = "CERTOPS_TEST_SLACK_SIGNING_SECRET"',
        f'api_url = "{slack_url}"',
        "",
    ]
    site = f'interval = "{interval:g}s"\nretry_interval = "{interval:g}s"\nfailure_threshold = 1\ntimeout = 10\n'
    for i in range(sites):
        url = f"https://localhost:{endpoints[i % len(endpoints)]}/"
        lines.append(f'[[sites]]\nname = "s{i}"\nurl = "{url}"\nca_file = "{ca}"\n{site}')
    # the failing site: nothing listens there, so it stays one open incident through every kill
    lines.append(f'[[sites]]\nname = "bad"\nurl = "https://localhost:{bad_port}/"\nca_file = "{ca}"\n{site}')
    q_ports, q_ca, q_interval = quorum
    for name in AGENTS:
        lines.append(
            f'[[agents]]\nname = "{name}"\nsecret_env = "CERTOPS_BENCH_AGENT_SECRET"\nreport_interval = "1m"\n'
        )
    for trial, q_port in enumerate(q_ports):
        q_site = f'url = "https://localhost:{q_port}/"\nca_file = "{q_ca}"\ninterval = "{q_interval:g}s"\n'
        q_site += f'retry_interval = "{q_interval:g}s"\nfailure_threshold = 1\ntimeout = 5\n'
        lines.append(f'[[sites]]\nname = "q-local-{trial}"\n{q_site}vantage = ["local"]\n')
        lines.append(
            f'[[sites]]\nname = "q-quorum-{trial}"\n{q_site}vantage = ["local", "a1", "a2"]\nconfirm_from = 2\n'
        )
    return "\n".join(lines)


# the run ------------------------------------------------------------------------------------------


@dataclass
class Figures:
    failover: list[float] = field(default_factory=list)  # kill -> survivor leads
    first_probe: list[float] = field(default_factory=list)  # kill -> its first probe result written
    cards_posted: int = 0
    bad_incidents: int = 0
    duplicate_cards: int = 0  # over every incident: posts beyond the first
    quorum: dict[str, list[float]] = field(default_factory=dict)  # site -> failure start to its incident
    round_sites: int = 0  # sites the new leader probed in the measured round
    load: dict[str, float] = field(default_factory=dict)
    top: list[tuple[float, float, str]] = field(default_factory=list)  # per site: calls, rows, statement


async def wait(what: str, check: Any, timeout: float, poll: float = 0.1) -> Any:
    """Polls `check` (on a thread: it may block) until it returns something truthy; the event
    loop, which serves the Slack stand-in, keeps running meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"waited {timeout:g}s for {what}")
        await asyncio.sleep(poll)


async def run(args: argparse.Namespace) -> Figures:
    from bot.testbed.pki import MiniCA
    from bot.testbed.tls_servers import Behaviour, Endpoint, TLSServers
    from tests.fakes.slack_api import SlackAPI

    figures = Figures()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="certops-ha-")))
        os.chmod(tmp, 0o755)  # noqa: S103 - nginx's workers (and postgres) read from here
        log("starting PostgreSQL (pg_stat_statements preloaded)")
        cluster = start_cluster()
        stack.callback(
            lambda: subprocess.run([str(REPO_ROOT / "scripts" / "postgres-for-tests"), "stop", str(cluster.folder)])
        )
        cluster.enable_statements()

        ensure_packages()
        ca, ca_key = _new_ca("certops ha bench CA")
        from cryptography.hazmat.primitives import serialization

        ca_pem = tmp / "ca.pem"
        ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        cert, key = _write_leaf(tmp, "leaf", *_new_leaf(ca, ca_key, ["localhost"]))
        ports = free_ports(args.endpoints + 3)
        endpoints, bad_port, replica_ports = ports[: args.endpoints], ports[-3], ports[-2:]
        (tmp / "nginx.conf").write_text(nginx_conf(tmp, endpoints, cert, key, concurrency=256))
        nginx_log = tmp / "nginx.out"
        nginx = subprocess.Popen(
            ["/usr/sbin/nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)],
            stdout=nginx_log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        stack.callback(nginx.wait, 10)
        stack.callback(nginx.terminate)
        wait_listening(endpoints[0], nginx, "nginx", nginx_log)
        q_ca = MiniCA("certops ha bench quorum CA")
        q_servers = stack.enter_context(TLSServers())
        q_leaf = q_ca.issue("localhost")
        q_endpoints = [q_servers.add(Endpoint(q_leaf)) for _ in range(args.quorum_trials)]
        q_config = ([e.port for e in q_endpoints], q_ca.write_ca(tmp / "quorum-ca.pem"), args.quorum_interval)

        async with SlackAPI() as slack:
            env = {
                **os.environ,
                **SLACK_ENV,
                PW_ENV: cluster.password,
                "CERTOPS_BENCH_AGENT_SECRET": AGENT_SECRET,  # the bot's [[agents]] secret_env
                "CERTOPS_AGENT_SECRET": AGENT_SECRET,  # what certops agent reads
                "PYTHONUNBUFFERED": "1",
            }
            replicas = []
            for number, port in enumerate(replica_ports):
                folder = tmp / f"replica-{number}"
                folder.mkdir()
                text = config_text(
                    cluster,
                    port,
                    args.sites,
                    endpoints,
                    bad_port,
                    ca_pem,
                    slack.api_url,
                    args.lease,
                    args.interval,
                    q_config,
                )
                (folder / "certops.toml").write_text(text)
                replicas.append(Replica(folder, port, env))
            for replica in replicas:
                stack.callback(replica.kill)
            from sqlalchemy import create_engine
            from sqlalchemy import text as sql
            from sqlalchemy.pool import NullPool

            from bot.store.location import locate

            engine = create_engine(locate(cluster.url, password=cluster.password).url, poolclass=NullPool)
            stack.callback(engine.dispose)

            def scalar(query: str, **params: Any) -> Any:
                with engine.connect() as connection:
                    return connection.execute(sql(query), params).scalar()

            def probed_since(at: str) -> int:
                try:
                    return int(scalar("SELECT count(DISTINCT site) FROM probe_results WHERE checked_at > :t", t=at))
                except Exception:
                    return 0

            def now_text() -> str:
                return str(scalar("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"))

            total = args.sites + 1 + 2 * args.quorum_trials  # with the failing site and the quorum sites
            log(f"starting two replicas with {args.sites} sites")
            replicas[0].start()
            await wait("replica 0 leading", replicas[0].leads, 120)
            replicas[1].start()
            await wait("replica 1 answering", lambda: replicas[1].health() is not None, 120)
            await wait("the bad site's card", lambda: slack.accepted("chat.postMessage"), args.interval + 60, 0.5)
            bad_id = _incident_of(slack.accepted("chat.postMessage")[0])
            for name, address in AGENTS.items():
                agent = Replica(tmp / f"agent-{name}", 0, env)
                agent.folder.mkdir()
                agent.command = ["agent", "--bot", f"http://127.0.0.1:{replica_ports[1]}", "--name", name]
                agent.command += ["--source-address", address]
                agent.start()
                stack.callback(agent.kill)

            def opened_after(site: str, at: str) -> bool:
                found = scalar("SELECT count(*) FROM incidents WHERE site = :s AND opened_at > :t", s=site, t=at)
                return int(found) > 0

            def open_now(site: str) -> bool:
                return int(scalar("SELECT count(*) FROM incidents WHERE site = :s AND state != 'resolved'", s=site)) > 0

            await wait("both agents reporting", lambda: int(scalar("SELECT count(*) FROM agent_reports")) == 2, 120)
            await asyncio.sleep(args.quorum_interval * 2)  # a round from every vantage point first
            for trial in range(args.quorum_trials):
                # a random moment in the sites' and agents' rounds: the trial before ended on the
                # agents' reports, so starting right after it would always meet them at one phase
                await asyncio.sleep(random.uniform(0, args.quorum_interval))  # noqa: S311 - not secrecy
                started_text = await asyncio.to_thread(now_text)
                q_endpoints[trial].behaviour = Behaviour.RESET_IN_HANDSHAKE
                started = time.monotonic()
                pending = {"local": f"q-local-{trial}", "quorum": f"q-quorum-{trial}"}
                while pending:
                    for kind, site in sorted(pending.items()):
                        if await asyncio.to_thread(opened_after, site, started_text):
                            figures.quorum.setdefault(kind, []).append(time.monotonic() - started)
                            del pending[kind]
                    if time.monotonic() - started > args.quorum_interval * 6 + 60:
                        raise RuntimeError(f"no incident for {pending} in trial {trial + 1}")
                    await asyncio.sleep(0.05)
                q_endpoints[trial].behaviour = Behaviour.OK
                for site in (f"q-local-{trial}", f"q-quorum-{trial}"):
                    await wait(f"{site} resolved", lambda site=site: not open_now(site), args.quorum_interval * 8 + 60)
                log(
                    f"quorum trial {trial + 1}/{args.quorum_trials}: local {figures.quorum['local'][-1]:.2f}s, "
                    f"confirmed from 2 {figures.quorum['quorum'][-1]:.2f}s"
                )

            leader = 0
            for kill in range(args.kills):
                survivor = 1 - leader
                measure = kill == 0
                if measure:
                    await asyncio.to_thread(cluster.stat_settle)
                    await asyncio.to_thread(cluster.reset_statements)
                    before = await asyncio.to_thread(cluster.counters)
                started_text = await asyncio.to_thread(now_text)
                replicas[leader].kill()
                killed = time.monotonic()
                await wait("the survivor leading", replicas[survivor].leads, args.lease * 4 + 30, poll=0.05)
                figures.failover.append(time.monotonic() - killed)
                await wait("its first probe result", lambda since=started_text: probed_since(since) > 0, 120, poll=0.05)
                figures.first_probe.append(time.monotonic() - killed)
                if measure:
                    # each site's job runs once per interval (their first runs spread over it): one
                    # interval after the takeover is one round
                    await asyncio.sleep(args.interval - (time.monotonic() - killed) + figures.failover[-1])
                    figures.round_sites = await asyncio.to_thread(probed_since, started_text)
                    await asyncio.to_thread(cluster.stat_settle)
                    after = await asyncio.to_thread(cluster.counters)
                    figures.load = {k: (after[k] - before[k]) / total for k in after}
                    top = await asyncio.to_thread(cluster.top_statements)
                    figures.top = [(calls / total, rows / total, query) for calls, rows, query in top]
                replicas[leader].start()  # as systemd would: it comes back as a follower
                await wait("the restarted replica answering", lambda r=replicas[leader]: r.health() is not None, 120)
                log(
                    f"kill {kill + 1}/{args.kills}: leads {figures.failover[-1]:.2f}s, "
                    f"probes {figures.first_probe[-1]:.2f}s"
                )
                leader = survivor
                await asyncio.sleep(args.pause)
            await asyncio.sleep(3)
            figures.cards_posted = len([c for c in slack.accepted("chat.postMessage") if _incident_of(c) == bad_id])
            per_incident: dict[str, int] = {}
            for call in slack.accepted("chat.postMessage"):
                if not call.body.get("thread_ts"):
                    per_incident[_incident_of(call)] = per_incident.get(_incident_of(call), 0) + 1
            figures.duplicate_cards = sum(n - 1 for n in per_incident.values())
            figures.bad_incidents = int(scalar("SELECT count(*) FROM incidents WHERE site = 'bad'"))
    return figures


def _incident_of(call: Any) -> str:
    from tests.fakes.slack_api import text_of

    found = re.search(r"INC-\d+", text_of(call.body.get("blocks") or []) + str(call.body.get("text") or ""))
    return found.group(0) if found else "?"


def render(args: argparse.Namespace, f: Figures) -> str:
    rows = [
        ("sites, replicas, kills", f"{args.sites:,} + 1 failing, 2, {args.kills} (lease {args.lease:g} s)"),
        (
            "failover: kill -> survivor leads, p50 / p99",
            f"{pct(f.failover, 0.5):.2f} s / {pct(f.failover, 0.99):.2f} s",
        ),
        (
            "failover: kill -> its first probe result, p50 / p99",
            f"{pct(f.first_probe, 0.5):.2f} s / {pct(f.first_probe, 0.99):.2f} s",
        ),
        (
            "sites probed in the measured round (one interval after a takeover)",
            f"{f.round_sites:,} of {args.sites + 1 + 2 * args.quorum_trials:,}",
        ),
        ("duplicate cards (failing site: cards posted - 1)", f"{f.cards_posted - 1} ({f.bad_incidents} incident)"),
        ("duplicate cards over every incident", f"{f.duplicate_cards}"),
        ("duplicate host actions", "not measured (no host configured)"),
    ]
    local, quorum = f.quorum.get("local", []), f.quorum.get("quorum", [])
    rows += [
        (
            f"failure to incident, local only, p50 / max ({len(local)} trials, interval {args.quorum_interval:g} s)",
            f"{pct(local, 0.5):.2f} s / {max(local, default=float('nan')):.2f} s",
        ),
        (
            "failure to incident, confirm_from = 2 of local+a1+a2, p50 / max",
            f"{pct(quorum, 0.5):.2f} s / {max(quorum, default=float('nan')):.2f} s",
        ),
        ("added latency of quorum confirmation, p50", f"{pct(quorum, 0.5) - pct(local, 0.5):+.2f} s"),
    ]
    load = f.load
    if "statements" in load:
        rows.append(("DB statements per site per round (pg_stat_statements)", f"{load['statements']:.2f}"))
        rows.append(("DB rows written per site per round (pg_stat_statements)", f"{load['statement_rows']:.2f}"))
    if load:
        rows.append(("DB commits per site per round (pg_stat_database)", f"{load['commits']:.2f}"))
        rows.append(("DB rows ins+upd+del per site per round (pg_stat_user_tables)", f"{load['rows']:.2f}"))
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'figure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {name.ljust(width)} | {value} |" for name, value in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--endpoints", type=int, default=50, help="nginx ports the sites are spread over")
    parser.add_argument("--lease", type=float, default=15.0, help="[bot] leader_lease, seconds (default 15)")
    parser.add_argument("--interval", type=float, default=300.0, help="every site's probe interval, seconds")
    parser.add_argument("--pause", type=float, default=5.0, help="seconds between a restart and the next kill")
    parser.add_argument("--quorum-trials", type=int, default=5, help="times the two quorum sites start failing")
    parser.add_argument("--quorum-interval", type=float, default=10.0, help="the quorum sites' interval, seconds")
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print(render(args, figures))
    if figures.top:
        print("\nmost called statements in the measured round, per site: calls, rows written or read, statement")
        for calls, rows, query in figures.top:
            print(f"{calls:7.2f} {rows:7.2f}  {query}")
    raw = {
        "failover": figures.failover,
        "first_probe": figures.first_probe,
        "load": figures.load,
        "quorum": figures.quorum,
    }
    print(json.dumps(raw))
    clean = figures.cards_posted == 1 and figures.bad_incidents == 1 and figures.duplicate_cards == 0
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
