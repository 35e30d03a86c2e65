"""Two `certops run` replicas on one PostgreSQL database: exactly one leads (it probes and
delivers), both answer /healthz, and when the leader is killed with SIGKILL mid-incident the other
takes over within the lease, without a second card or a lost one.

PostgreSQL comes from scripts/postgres-for-tests (scripts/test starts it); without it these tests
are skipped, saying why."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine, text

from bot.store.location import locate
from tests.cli.test_crash_recovery import CHAT_ENV, Certops, eventually, free_port, site_toml, slack_toml
from tests.fakes.slack_api import SlackAPI
from tests.fakes.tls import Behaviour, Lab
from tests.store.postgres import fresh_database, password

LEASE = 3.0
PW_ENV = "CERTOPS_TEST_REPLICA_DB_PASSWORD"


def health(port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return dict(json.loads(answer.read()))
    except urllib.error.HTTPError as exc:
        return dict(json.loads(exc.read()))
    except OSError:
        return None


def replica_config(url: str, port: int) -> str:
    return (
        f'[bot]\nlisten = "127.0.0.1:{port}"\ndatabase = "{url}"\ndatabase_password_env = "{PW_ENV}"\n'
        f'leader_lease = "{LEASE:g}s"\ndigest_at = ""\nrenotify = ""\nprobe_workers = 1\n'
    )


def test_one_of_two_replicas_leads_and_a_killed_leader_is_replaced_within_the_lease_without_a_second_card(
    lab: Lab, tmp_path: Path
) -> None:
    with fresh_database() as url:
        pw = password()
        assert pw is not None, "scripts/postgres-for-tests gives its server a password"
        engine = create_engine(locate(url, password=pw).url)

        def cards() -> list[str]:
            with engine.connect() as connection:
                return [
                    r[0] for r in connection.execute(text("SELECT state FROM outbox WHERE kind = 'card' ORDER BY seq"))
                ]

        def incidents() -> list[tuple[str, str]]:
            with engine.connect() as connection:
                return [tuple(r) for r in connection.execute(text("SELECT id, state FROM incidents ORDER BY seq"))]

        async def scenario() -> None:
            site = lab.serve("localhost", behaviour=Behaviour.RESET_IN_HANDSHAKE)
            async with SlackAPI() as slack:
                ports = [free_port(), free_port()]
                bots = []
                for number, port in enumerate(ports):
                    folder = tmp_path / f"replica-{number}"
                    folder.mkdir()
                    config = replica_config(url, port) + site_toml("www", site.port, lab.ca_file) + slack_toml(slack)
                    bots.append(Certops(folder, config, {**CHAT_ENV, PW_ENV: pw}))
                try:
                    for bot in bots:
                        bot.start()

                    def roles() -> list[object] | None:
                        found = [health(port) for port in ports]
                        if any(h is None for h in found):
                            return None
                        leaders = [h["leader"] for h in found if h is not None]
                        return leaders if leaders.count(True) == 1 else None

                    leaders = await eventually(bots[0], "one leader among two replicas", roles, timeout=30)
                    assert sorted(map(str, leaders)) == ["False", "True"]
                    first = leaders.index(True)
                    leader, follower = bots[first], bots[1 - first]
                    # the follower is healthy without a scheduler: it answers chat
                    follower_health = health(ports[1 - first])
                    assert follower_health is not None
                    assert (follower_health["status"], follower_health["leader"]) == ("ok", False)

                    await eventually(leader, "the incident's card delivered", lambda: cards() == ["sent"], 30)
                    [(incident_id, state)] = incidents()
                    assert state == "open"

                    leader.kill()
                    killed_at = time.monotonic()

                    def took_over() -> bool:
                        h = health(ports[1 - first])
                        return h is not None and h["leader"] is True

                    await eventually(follower, "the other replica leading", took_over, timeout=LEASE * 4)
                    takeover = time.monotonic() - killed_at
                    assert takeover <= LEASE + LEASE / 3 + 2.0, f"took {takeover:.1f} s"
                    # it probes on: the site still fails, the incident stays the one incident,
                    # and its card is not posted again
                    await asyncio.sleep(6)
                    assert incidents() == [(incident_id, "open")]
                    assert len(slack.accepted("chat.postMessage")) == 1
                    with urllib.request.urlopen(f"http://127.0.0.1:{ports[1 - first]}/metrics", timeout=5) as a:
                        assert "certops_leader 1.0" in a.read().decode()
                finally:
                    for bot in bots:
                        bot.ensure_dead()
                    engine.dispose()

        asyncio.run(scenario())
