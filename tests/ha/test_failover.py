"""Failover of two `certops run` replicas on one PostgreSQL database, watched from outside: the
Slack stand-in's call log (http mode, so a button press may land on either replica), the WinRM
simulator's command log, each replica's /healthz and the database itself.

- the leader SIGKILLed while a card is on its way to Slack;
- the replica running an approved repair SIGKILLed mid-action;
- the database stopped and started again under both replicas;
- the leader cut off from the database (a TCP relay that stops passing bytes, as a partition).

PostgreSQL comes from scripts/postgres-for-tests (scripts/test starts it); without it these tests
are skipped, saying why. The database restart test starts a cluster of its own (it restarts it).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from bot.store.location import locate
from host_actions.simulator import WinRMSimulator
from host_actions.simulator.model import issuer_pem
from host_actions.simulator.tls import ModelTLSServer
from tests.chat.slack.harness import CHANNEL
from tests.cli.test_crash_recovery import (
    CHAT_ENV,
    POLICY,
    Certops,
    SlowAfterRepair,
    broken_key_link_host,
    free_port,
    iis_site_toml,
    incident_of,
    press,
    repairs,
    site_toml,
    slack_toml,
)
from tests.fakes.bot import SIM_PASSWORD_ENV
from tests.fakes.partition import Partition
from tests.fakes.slack_api import Call, SlackAPI
from tests.fakes.tls import Behaviour, Endpoint, Lab
from tests.store.postgres import fresh_database, password, server_url

ROOT = Path(__file__).resolve().parents[2]
LEASE = 3.0  # [bot] leader_lease of these replicas
PW_ENV = "CERTOPS_TEST_REPLICA_DB_PASSWORD"
POLL = 0.1
T = TypeVar("T")


# the replicas ------------------------------------------------------------------------------------


def replica_config(url: str, port: str) -> str:
    """A replica's [bot] table; `port` may be "{port}", filled in by Replicas."""
    # no digest and no re-notification: a test's messages are the incident's own
    return (
        f'[bot]\nlisten = "127.0.0.1:{port}"\ndatabase = "{url}"\ndatabase_password_env = "{PW_ENV}"\n'
        f'leader_lease = "{LEASE:g}s"\ndigest_at = ""\nrenotify = ""\nprobe_workers = 1\n'
    )


async def health(port: int) -> dict[str, Any] | None:
    """The replica's /healthz (200 or 503), or None when it does not answer within 4 s."""
    try:
        timeout = aiohttp.ClientTimeout(total=4)
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(f"http://127.0.0.1:{port}/healthz") as a:
            return dict(await a.json())
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


class Replicas:
    """Two `certops run` processes, each with its own config (its port, maybe its own way to the
    database), the same sites and the same database."""

    def __init__(self, tmp_path: Path, configs: list[str], env: dict[str, str]) -> None:
        self.bots: list[Certops] = []
        self.ports: list[int] = []
        for number, config in enumerate(configs):
            folder = tmp_path / f"replica-{number}"
            folder.mkdir()
            port = free_port()
            self.ports.append(port)
            self.bots.append(Certops(folder, config.replace("{port}", str(port)), env))

    def logs(self) -> str:
        return "\n".join(f"--- replica {n} ---\n{bot.log(25)}" for n, bot in enumerate(self.bots))

    async def until(
        self,
        what: str,
        check: Callable[[], Awaitable[T | None]],
        timeout: float = 20.0,
        seen: Callable[[], object] | None = None,
    ) -> T:
        """Polls `check` until it returns something truthy; fails after `timeout` seconds, or
        when a replica that should be running has exited, quoting both replicas' logs (and what
        `seen` says)."""
        deadline = time.monotonic() + timeout
        while True:
            value = await check()
            if value:
                return value
            for bot in self.bots:
                bot.check_alive(what)
            if time.monotonic() > deadline:
                found = f"; found {seen()!r}" if seen is not None else ""
                raise AssertionError(f"waited {timeout:g}s for {what}{found}:\n{self.logs()}")
            await asyncio.sleep(POLL)

    async def roles(self) -> list[bool] | None:
        """Each replica's `leader`, once every running one answers and exactly one leads."""
        found = [await health(port) for port, bot in zip(self.ports, self.bots, strict=True) if bot.proc is not None]
        if any(h is None for h in found):
            return None
        leaders = [bool(h["leader"]) for h in found if h is not None]
        return leaders if leaders.count(True) == 1 else None

    async def leader(self, timeout: float = 30.0) -> int:
        roles = await self.until("exactly one leader", self.roles, timeout)
        return roles.index(True)

    async def leads(self, number: int) -> bool:
        h = await health(self.ports[number])
        return h is not None and h["leader"] is True

    def stop(self) -> None:
        for bot in self.bots:
            bot.ensure_dead()


@contextmanager
def replicas(tmp_path: Path, configs: list[str], env: dict[str, str]) -> Iterator[Replicas]:
    pair = Replicas(tmp_path, configs, env)
    try:
        yield pair
    finally:
        pair.stop()


class Rows:
    """The database, read from outside, one short connection per query."""

    def __init__(self, url: str, pw: str) -> None:
        self.engine: Engine = create_engine(
            locate(url, password=pw).url, poolclass=NullPool, connect_args={"connect_timeout": 3}
        )

    def all(self, sql: str, **params: object) -> list[tuple[Any, ...]]:
        with self.engine.connect() as connection:
            return [tuple(r) for r in connection.execute(text(sql), params)]

    def incidents(self) -> list[tuple[Any, ...]]:
        return self.all("SELECT id, site, state FROM incidents ORDER BY seq")

    def outbox(self) -> list[tuple[Any, ...]]:
        return self.all("SELECT seq, platform, kind, incident_id, state FROM outbox ORDER BY seq")

    def cards(self) -> list[tuple[Any, ...]]:
        return self.all("SELECT incident_id, state, attempts FROM outbox WHERE kind = 'card' ORDER BY seq")

    def card_refs(self) -> list[tuple[Any, ...]]:
        return self.all("SELECT incident_id, ref FROM card_refs WHERE platform = 'slack' ORDER BY incident_id")

    def request(self, action: str) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                text("SELECT * FROM action_requests WHERE action = :a ORDER BY created_at DESC"), {"a": action}
            ).first()
        return None if row is None else dict(row._mapping)

    def audit(self) -> list[tuple[Any, ...]]:
        return self.all("SELECT actor, event, subject, outcome, detail FROM audit ORDER BY seq")

    def close(self) -> None:
        self.engine.dispose()


@contextmanager
def database() -> Iterator[tuple[str, str, Rows]]:
    """A new database on the test server: its URL, password and a reader."""
    with fresh_database() as url:
        pw = password()
        assert pw is not None, "scripts/postgres-for-tests gives its server a password"
        rows = Rows(url, pw)
        try:
            yield url, pw, rows
        finally:
            rows.close()


def posts(slack: SlackAPI) -> list[Call]:
    return slack.accepted("chat.postMessage")


def cards_by_incident(slack: SlackAPI) -> dict[str, int]:
    counted: dict[str, int] = {}
    for call in posts(slack):
        incident = incident_of(call.body["blocks"])
        counted[incident] = counted.get(incident, 0) + 1
    return counted


async def sleep_checking(pair: Replicas, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for bot in pair.bots:
            bot.check_alive("a quiet while")
        await asyncio.sleep(POLL)


# a. the leader killed mid-delivery -----------------------------------------------------------


def test_a_leader_killed_while_slack_holds_the_card_leaves_it_to_the_survivor_who_posts_it_once(
    lab: Lab, tmp_path: Path
) -> None:
    """Slack holds every chat.postMessage for 4 s and then refuses it (503): the card is in flight
    when the leader dies, and Slack never carried that post out. The survivor takes the row over
    and posts it: one accepted post, one card reference, the row sent."""

    async def scenario() -> None:
        site = lab.serve("localhost", behaviour=Behaviour.RESET_IN_HANDSHAKE)
        with database() as (url, pw, rows):
            async with SlackAPI() as slack:
                slack.fail(503, methods=["chat.postMessage"], delay=4)
                config = replica_config(url, "{port}") + site_toml("www", site.port, lab.ca_file)
                with replicas(tmp_path, [config + slack_toml(slack)] * 2, {**CHAT_ENV, PW_ENV: pw}) as pair:
                    for bot in pair.bots:
                        bot.start()
                    first = await pair.leader()

                    async def in_flight() -> bool:
                        return bool(slack.calls_to("chat.postMessage"))

                    await pair.until("the card's post held by Slack", in_flight)
                    [(incident_id, _, state)] = rows.incidents()
                    assert state == "open"
                    assert rows.cards() == [(incident_id, "pending", 0)]  # taken, not yet marked
                    pair.bots[first].kill()
                    killed_at = time.monotonic()
                    slack.recover()  # the held call is still refused; the next ones are taken

                    async def delivered() -> bool:
                        return [c[:2] for c in rows.cards()] == [(incident_id, "sent")]

                    await pair.until("the survivor delivering the card", delivered, timeout=LEASE * 4 + 8)
                    took = time.monotonic() - killed_at
                    assert await pair.leads(1 - first)
                    await sleep_checking(pair, 2)  # nothing more goes out

                    attempted = slack.calls_to("chat.postMessage")
                    [post] = posts(slack)
                    assert len(attempted) == 2  # the held one (refused) and the survivor's
                    assert attempted[0].status == 503
                    assert incident_of(post.body["blocks"]) == incident_id
                    assert post.at > killed_at
                    [message] = slack.messages.values()
                    assert rows.card_refs() == [(incident_id, f"{CHANNEL}:{message.ts}")]
                    assert cards_by_incident(slack) == {incident_id: 1}
                    assert took <= LEASE * 4 + 8

    asyncio.run(scenario())


def test_a_card_slack_took_just_before_the_leader_died_is_found_by_the_survivor_and_not_posted_again(
    lab: Lab, tmp_path: Path
) -> None:
    """The crash window of an at-least-once outbox: Slack carries the post out, but the leader dies
    before it hears so and saves the card's reference. chat.postMessage has no idempotency key, so
    every post carries its outbox key as message metadata, and the row records that an attempt
    began: the survivor, taking over a row tried before, looks in the channel's history first,
    finds the card by its tag, and edits it. One card; the resolution edits that same card."""

    async def scenario() -> None:
        site = lab.serve("localhost", behaviour=Behaviour.RESET_IN_HANDSHAKE)
        with database() as (url, pw, rows):
            async with SlackAPI() as slack:
                # carried out at once, answered only after the leader is gone
                slack.fail(delay=LEASE * 4, answer_late=True, methods=["chat.postMessage"], times=1)
                config = replica_config(url, "{port}") + site_toml("www", site.port, lab.ca_file)
                with replicas(tmp_path, [config + slack_toml(slack)] * 2, {**CHAT_ENV, PW_ENV: pw}) as pair:
                    for bot in pair.bots:
                        bot.start()
                    first = await pair.leader()

                    async def in_flight() -> bool:
                        return bool(slack.calls_to("chat.postMessage"))

                    await pair.until("the card's post held by Slack", in_flight)
                    [(incident_id, _, _)] = rows.incidents()
                    pair.bots[first].kill()

                    async def delivered() -> bool:
                        return [c[1] for c in rows.cards()] == ["sent"]

                    await pair.until("the survivor settling the card", delivered, LEASE * 4 + 8)
                    await sleep_checking(pair, 2)
                    site.behaviour = Behaviour.OK  # resolved: an edit, to the one card

                    async def resolved() -> bool:
                        return rows.incidents()[0][2] == "resolved" and len(slack.accepted("chat.update")) >= 2

                    await pair.until("the resolution edited into the card", resolved, timeout=20)

                    assert cards_by_incident(slack) == {incident_id: 1}
                    assert len(slack.calls_to("chat.postMessage")) == 1  # the survivor posted nothing
                    assert slack.accepted("conversations.history")
                    [card] = slack.messages.values()
                    assert rows.card_refs() == [(incident_id, f"{CHANNEL}:{card.ts}")]
                    assert {u.body["ts"] for u in slack.accepted("chat.update")} == {card.ts}

    asyncio.run(scenario())


# b. the replica running an approved repair killed mid-action ---------------------------------


def test_a_replica_killed_mid_repair_never_runs_it_twice_and_the_leader_cards_it_as_interrupted(
    tmp_path: Path,
) -> None:
    """The press lands on the follower (http mode: Slack posts to any replica), which claims the
    request (compare-and-set) and runs the repair itself; it is killed while the host is still
    answering. certutil -repairstore ran once. The surviving leader sees that the replica running
    it is gone (no lease claim for two leases) and fails the request as interrupted, audited,
    without waiting for that replica to come back; a second press, on the leader, is refused as
    interrupted, and the card says so, even when the incident resolved meanwhile."""

    async def scenario() -> None:
        model = broken_key_link_host()
        faults = SlowAfterRepair(model, seconds=30)
        ca_file = tmp_path / "sim-ca.pem"
        ca_file.write_bytes(issuer_pem())
        with database() as (url, pw, rows), WinRMSimulator(model, faults=faults) as sim, ModelTLSServer(model) as tls:
            async with SlackAPI() as slack, aiohttp.ClientSession() as http:
                config = replica_config(url, "{port}")
                config += iis_site_toml(tls, ca_file, sim) + slack_toml(slack) + POLICY
                env = {**CHAT_ENV, PW_ENV: pw, SIM_PASSWORD_ENV: sim.password}
                with replicas(tmp_path, [config, config], env) as pair:
                    for bot in pair.bots:
                        bot.start()
                    leader = await pair.leader()
                    follower = 1 - leader

                    async def repair_button() -> tuple[str, str] | None:
                        request = rows.request("repair-store")
                        if request is None or request["state"] != "pending":
                            return None
                        value = f"act:{request['token']}"
                        shown = [m.ts for m in slack.messages.values() if value in m.button_values()]
                        return (value, shown[0]) if shown else None

                    value, ts = await pair.until("a card with a Repair store button", repair_button, timeout=30)
                    request = rows.request("repair-store")
                    assert request is not None
                    token, subject = request["token"], f"repair-store {request['target']} on iis01"
                    events = f"http://127.0.0.1:{pair.ports[follower]}/slack/events"
                    assert await press(http, events, slack, value, ts) == 200

                    async def repair_under_way() -> bool:
                        request = rows.request("repair-store")
                        return request is not None and request["state"] == "running" and bool(repairs(model))

                    await pair.until("the repair running on the host", repair_under_way)
                    pair.bots[follower].kill()
                    faults.armed = False  # the host answers promptly again
                    assert ("slack:U0ALICE", "approve", subject, "approved") in [a[:4] for a in rows.audit()]

                    # the leader settles the run of a replica gone for two leases, on its own
                    killed_at = time.monotonic()

                    async def marked_failed() -> bool:
                        request = rows.request("repair-store")
                        return request is not None and request["state"] == "failed"

                    await pair.until("the repair failed as interrupted", marked_failed, LEASE * 5)
                    assert time.monotonic() - killed_at <= LEASE * 2 + LEASE / 3 + 3.0
                    pair.bots[follower].start()  # as systemd restarts a replica that died
                    failed = rows.request("repair-store")
                    assert failed is not None
                    assert str(failed["result"]).startswith("interrupted")
                    assert ("certops", "run", subject, "failed", "interrupted") in rows.audit()
                    assert await pair.leads(leader)  # the restarted replica follows

                    # the same button pressed again, on the leader this time
                    answers = len(slack.calls_to("response_url"))
                    leader_events = f"http://127.0.0.1:{pair.ports[leader]}/slack/events"
                    assert await press(http, leader_events, slack, value, ts) == 200

                    async def refusal() -> Call | None:
                        later = slack.calls_to("response_url")[answers:]
                        return later[0] if later else None

                    answer = await pair.until("the answer to the second press", refusal)
                    assert "interrupted" in str(answer.body.get("text"))
                    await sleep_checking(pair, 2)
                    card = slack.message(CHANNEL, ts).block_text()

                # once on the host, before the kill; never after
                assert repairs(model) == [f"certutil -repairstore WebHosting {request['target']}"]
                assert sim.scripts_run.count("repair_store") == 1
                [final] = rows.all("SELECT state, result FROM action_requests WHERE token = :t", t=token)
                assert final[0] == "failed"
                assert len(posts(slack)) == 1  # one card, edited in place
                assert "interrupted" in card

    asyncio.run(scenario())


# c. the database restarted ----------------------------------------------------------------------


@dataclass
class Cluster:
    """A PostgreSQL cluster of this test's own (scripts/postgres-for-tests), stopped and started."""

    url: str
    password: str
    folder: Path

    def _pg_ctl(self, *args: str) -> None:
        binary = Path((self.folder / "bin").read_text().strip()) / "pg_ctl"
        command = [str(binary), "-D", str(self.folder / "data"), *args]
        if os.getuid() == 0:  # as root the script runs the server as its owner
            owner = (self.folder / "data").owner()
            command = ["runuser", "-u", owner, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def stop(self) -> None:
        # postmaster.opts holds the options it was started with (its port above all)
        self._options = shlex.split((self.folder / "data" / "postmaster.opts").read_text())[1:]
        self._pg_ctl("-m", "fast", "-w", "stop")

    def start(self) -> None:
        options = shlex.join(self._options)
        self._pg_ctl("-l", str(self.folder / "server.log"), "-w", "-t", "30", "start", "-o", options)


@contextmanager
def own_cluster() -> Iterator[Cluster]:
    server_url()  # skipped, saying why, where there is no PostgreSQL to test on
    # in a directory of the script's own making: the server's owner (as root, the postgres user)
    # must be able to reach it, which pytest's tmp_path does not allow
    started = subprocess.run(
        [str(ROOT / "scripts" / "postgres-for-tests"), "start"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert started.returncode == 0, started.stderr
    found = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
    folder = Path(found["CERTOPS_TEST_POSTGRES_DIR"])
    try:
        yield Cluster(found["CERTOPS_TEST_POSTGRES_URL"], found["CERTOPS_TEST_POSTGRES_PASSWORD"], folder)
    finally:
        subprocess.run([str(ROOT / "scripts" / "postgres-for-tests"), "stop", str(folder)], timeout=60)


def test_both_replicas_ride_out_a_database_restart_and_one_leads_again_with_nothing_lost(
    lab: Lab, tmp_path: Path
) -> None:
    """PostgreSQL stopped (pg_ctl stop -m fast) for longer than the lease, then started again:
    both replicas' /healthz fail meanwhile (and neither leads), and after it both are ok without a
    restart of their own, exactly one leads, every incident and outbox row from before is there
    as it was, and a site that broke during the outage gets its one card."""

    async def scenario() -> None:
        www = lab.serve("localhost", behaviour=Behaviour.RESET_IN_HANDSHAKE)
        shop = lab.serve("localhost")
        with own_cluster() as cluster:
            rows = Rows(cluster.url, cluster.password)
            async with SlackAPI() as slack:
                config = replica_config(cluster.url, "{port}")
                config += site_toml("www", www.port, lab.ca_file) + site_toml("shop", shop.port, lab.ca_file)
                config += slack_toml(slack)
                env = {**CHAT_ENV, PW_ENV: cluster.password}
                with replicas(tmp_path, [config, config], env) as pair:
                    for bot in pair.bots:
                        bot.start()
                    await pair.leader()

                    async def www_carded() -> bool:
                        return [c[1] for c in rows.cards()] == ["sent"]

                    await pair.until("the card of www", www_carded, timeout=30)
                    before_incidents, before_outbox = rows.incidents(), rows.outbox()
                    pids = [bot.proc.pid for bot in pair.bots if bot.proc is not None]

                    cluster.stop()
                    shop.behaviour = Behaviour.RESET_IN_HANDSHAKE

                    async def both_failing() -> list[dict[str, Any]] | None:
                        found = [await health(port) for port in pair.ports]
                        down = [h for h in found if h is not None and h["status"] == "failing" and not h["leader"]]
                        return down if len(down) == 2 else None

                    down = await pair.until("both replicas failing, neither leading", both_failing, LEASE * 4)
                    assert all(any("database" in p for p in h["problems"]) for h in down), down
                    await sleep_checking(pair, LEASE)
                    assert await both_failing()
                    cluster.start()

                    async def both_ok() -> list[bool] | None:
                        found = [await health(port) for port in pair.ports]
                        if any(h is None or h["status"] != "ok" for h in found):
                            return None
                        leaders = [bool(h["leader"]) for h in found if h is not None]
                        return leaders if leaders.count(True) == 1 else None

                    await pair.until("both ok again, one leading", both_ok, timeout=LEASE * 4 + 10)

                    async def shop_carded() -> bool:
                        sites = {site: state for _, site, state in rows.incidents()}
                        return sites.get("shop") == "open" and all(c[1] == "sent" for c in rows.cards())

                    await pair.until("the card of shop, broken during the outage", shop_carded, timeout=30)
                    await sleep_checking(pair, 2)
                    assert [bot.proc.pid for bot in pair.bots if bot.proc is not None] == pids
                    assert [bot.runs for bot in pair.bots] == [1, 1]
                    assert await both_ok()

                    after = rows.incidents()
                    assert after[: len(before_incidents)] == before_incidents
                    assert [i[1] for i in after] == ["www", "shop"]
                    assert rows.outbox()[: len(before_outbox)] == before_outbox
                    counted = cards_by_incident(slack)
                    assert sorted(counted.values()) == [1, 1]
                    assert set(counted) == {i[0] for i in after}
            rows.close()

    asyncio.run(scenario())


# d. the leader cut off from the database ------------------------------------------------------


def test_a_leader_cut_off_from_the_database_stops_probing_and_delivering_and_one_leader_remains(
    lab: Lab, tmp_path: Path
) -> None:
    """Replica 0 leads and reaches PostgreSQL through a relay that is then cut for five leases
    (the server itself keeps running for replica 1). Replica 0 stops leading on its own clock
    (healthz: leader false, or no answer) and starts no probe and sends nothing to Slack from
    then on; replica 1 takes over, probes and edits the card when the site heals. After the cut
    heals replica 0 stays a follower: exactly one leader. Each replica probes its own endpoint
    (the same site on two ports) and talks to its own Slack stand-in (sharing one set of
    messages), so every probe and every chat call is counted per replica."""

    async def scenario() -> None:
        # the same site, as each replica reaches it
        endpoints = [lab.serve("localhost", behaviour=Behaviour.RESET_IN_HANDSHAKE) for _ in range(2)]
        probes: list[list[float]] = [[], []]
        for number, endpoint in enumerate(endpoints):

            def seen(_endpoint: Endpoint, number: int = number) -> None:
                probes[number].append(time.monotonic())

            endpoint.on_connect = seen
        with database() as (url, pw, rows):
            db_port = int(url.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
            async with SlackAPI() as slack0, SlackAPI() as slack1:
                slack1.messages = slack0.messages  # one Slack, two doors (ts: the wall clock, unique)
                stand_ins = [slack0, slack1]
                with Partition(db_port) as partition:
                    urls = [url.replace(f":{db_port}/", f":{partition.port}/"), url]
                    configs = [
                        replica_config(urls[n], "{port}")
                        + site_toml("www", endpoints[n].port, lab.ca_file)
                        + slack_toml(stand_ins[n])
                        for n in range(2)
                    ]
                    with replicas(tmp_path, configs, {**CHAT_ENV, PW_ENV: pw}) as pair:
                        pair.bots[0].start()

                        async def first_leads() -> bool:
                            return await pair.leads(0)

                        await pair.until("replica 0 leading", first_leads, timeout=30)
                        pair.bots[1].start()
                        assert await pair.leader() == 0

                        async def carded() -> bool:
                            return [c[1] for c in rows.cards()] == ["sent"] and bool(posts(slack0))

                        await pair.until("the card, from replica 0", carded, timeout=30)
                        [(incident_id, _, _)] = rows.incidents()

                        partition.cut()
                        cut_at = time.monotonic()

                        async def deposed() -> bool:
                            h = await health(pair.ports[0])
                            return h is None or h["leader"] is False

                        await pair.until("replica 0 no longer leading", deposed, timeout=LEASE * 2)
                        deposed_at = time.monotonic()

                        async def took_over() -> bool:
                            return await pair.leads(1)

                        await pair.until("replica 1 leading", took_over, timeout=LEASE * 4)
                        took_over_at = time.monotonic()
                        calls0 = len(slack0.calls)
                        for endpoint in endpoints:
                            endpoint.behaviour = Behaviour.OK  # the site heals: an edit of the card

                        async def resolved_by_replica_1() -> bool:
                            return bool(slack1.accepted("chat.update"))

                        await pair.until("replica 1 editing the card", resolved_by_replica_1, timeout=20)
                        left = LEASE * 5 - (time.monotonic() - cut_at)
                        await sleep_checking(pair, max(0.0, left))
                        healed_at = time.monotonic()
                        partition.heal()
                        await sleep_checking(pair, LEASE * 2)
                        roles = await pair.roles()
                        assert roles == [False, True], roles
                        assert await health(pair.ports[0]) is not None

                        # replica 0: a probe it had started may finish; none starts after it stopped leading
                        assert [t for t in probes[0] if t > deposed_at + 0.5] == []
                        assert len(slack0.calls) == calls0  # nothing said to Slack while cut, nor after
                        assert [c for c in slack0.calls if c.at > deposed_at] == []
                        # replica 1 probed meanwhile, and only once it led
                        assert [t for t in probes[1] if t < took_over_at - 1.0] == []
                        assert [t for t in probes[1] if took_over_at <= t < healed_at]
                        assert deposed_at - cut_at <= LEASE  # before its lease had run out
                        assert rows.incidents() == [(incident_id, "www", "resolved")]
                        assert len(posts(slack0)) + len(posts(slack1)) == 1
                        assert [c for c in slack1.calls if c.method.startswith("chat.") and c.at < took_over_at] == []

    asyncio.run(scenario())


__all__ = ["Partition", "Replicas", "Rows", "health", "replica_config"]
