"""`certops run` as a real process, killed with SIGKILL at each step of an incident and started
again on the same database: nothing is lost, nothing is sent twice, nothing is run twice.

The chat stand-ins, the TLS endpoints and the WinRM simulator run in this test process; certops
runs in a child process and is watched from outside only: the stand-ins' call logs, the
simulator's command log, and the SQLite file read through a read-only connection.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urlencode

import aiohttp

from host_actions.simulator import Faults, HostModel, WinRMSimulator
from host_actions.simulator.model import issuer_pem
from host_actions.simulator.tls import ModelTLSServer
from tests.chat.line.harness import CHANNEL_SECRET, GROUP, SECRET_ENV, TOKEN_ENV
from tests.chat.slack.harness import CHANNEL, ENV, press_payload, sign_body
from tests.fakes.bot import SIM_PASSWORD_ENV, host_config
from tests.fakes.line_api import ACCESS_TOKEN, LineApiStandIn
from tests.fakes.slack_api import SIGNING_SECRET, Call, SlackAPI, text_of
from tests.fakes.tls import Behaviour, Lab

ROOT = Path(__file__).resolve().parents[2]
POLL = 0.1
CHAT = ("chat.postMessage", "chat.update")
APPROVER = "U0ALICE"
T = TypeVar("T")


# the certops process ---------------------------------------------------------------------------


class Certops:
    """`certops run -c FILE`, started and SIGKILLed as often as a test likes, on one database.
    Each run writes its own log file, quoted when a wait fails."""

    def __init__(self, tmp_path: Path, config: str, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.config = tmp_path / "certops.toml"
        self.config.write_text(config)
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self._log: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.tmp_path / f"certops-run-{self.runs}.log"

    def start(self) -> None:
        assert self.proc is None, "already running"
        self.runs += 1
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run", "-c", str(self.config)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT,
        )  # fmt: skip

    def kill(self) -> None:
        """SIGKILL: no signal handler, no shutdown, no flush; as a power cut or the OOM killer."""
        proc = self.proc
        assert proc is not None, "not running"
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        returncode = proc.wait(timeout=10)
        self._close()
        assert returncode == -signal.SIGKILL, f"certops had already exited ({returncode}):\n{self.log()}"

    def restart(self) -> None:
        self.kill()
        self.start()

    def ensure_dead(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self._close()

    def _close(self) -> None:
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def check_alive(self, what: str) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"certops exited ({self.proc.returncode}) while waiting for {what}:\n{self.log()}")

    def log(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def listening_port(self) -> int | None:
        """The port the run's web server bound for [bot] listen = "127.0.0.1:0", read from /proc."""
        assert self.proc is not None
        pid = self.proc.pid
        try:
            inodes = set()
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
            table = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
        except OSError:
            return None
        for line in table:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                return int(local.rsplit(":", 1)[1], 16)
        return None


@contextmanager
def certops(tmp_path: Path, config: str, env: dict[str, str]) -> Iterator[Certops]:
    bot = Certops(tmp_path, config, env)
    bot.start()
    try:
        yield bot
    finally:
        bot.ensure_dead()


async def eventually(bot: Certops, what: str, check: Callable[[], T | None], timeout: float = 20.0) -> T:
    """Polls `check` every 0.1 s until it returns something truthy; fails, quoting the run's
    log, after `timeout` seconds or as soon as certops has exited."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        bot.check_alive(what)
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g}s for {what}; certops said:\n{bot.log()}")
        await asyncio.sleep(POLL)


# the database, read from outside ---------------------------------------------------------------


class Database:
    """The SQLite file certops writes, read through a read-only connection opened per query."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self, sql: str, *params: object) -> list[sqlite3.Row]:
        if not self.path.exists():
            return []
        connection = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=2)
        try:
            connection.row_factory = sqlite3.Row
            return connection.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # the first run is still migrating
                return []
            raise
        finally:
            connection.close()

    def incidents(self, site: str | None = None) -> list[sqlite3.Row]:
        if site is None:
            return self.rows("SELECT * FROM incidents ORDER BY seq")
        return self.rows("SELECT * FROM incidents WHERE site = ? ORDER BY seq", site)

    def outbox(self, platform: str | None = None) -> list[sqlite3.Row]:
        if platform is None:
            return self.rows("SELECT * FROM outbox ORDER BY seq")
        return self.rows("SELECT * FROM outbox WHERE platform = ? ORDER BY seq", platform)

    def pending(self, platform: str | None = None) -> list[sqlite3.Row]:
        return [row for row in self.outbox(platform) if row["state"] == "pending"]

    def request(self, action: str) -> sqlite3.Row | None:
        rows = self.rows("SELECT * FROM action_requests WHERE action = ? ORDER BY created_at", action)
        return rows[-1] if rows else None

    def audit(self) -> list[tuple[str, str, str, str, str]]:
        return [
            (r["actor"], r["event"], r["subject"], r["outcome"], r["detail"])
            for r in self.rows("SELECT * FROM audit ORDER BY seq")
        ]


# configs --------------------------------------------------------------------------------------


def free_port() -> int:
    """A port the system just handed out. (certops would pick one itself with port 0, but
    `certops run` cannot start on port 0 today: see the port 0 test at the end.)"""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bot_toml(database: Path) -> str:
    # no digest and no re-notification: a test's messages are the incident's own
    listen = f"127.0.0.1:{free_port()}"
    return f'[bot]\nlisten = "{listen}"\ndatabase = "{database}"\ndigest_at = ""\nrenotify = ""\n'


def site_toml(name: str, port: int, ca_file: str, extra: str = "") -> str:
    return (
        f'[[sites]]\nname = "{name}"\nurl = "https://localhost:{port}/"\nca_file = "{ca_file}"\ntimeout = 3\n'
        f'interval = "5s"\nretry_interval = "5s"\nfailure_threshold = 1\n{extra}'
    )


def slack_toml(api: SlackAPI) -> str:
    return (
        f'[chat.slack]\nmode = "http"\nchannel = "{CHANNEL}"\nbot_token_env = "CERTOPS_TEST_SLACK_BOT_TOKEN"\n'
        f'signing_secret_env = "CERTOPS_TEST_SLACK_SIGNING_SECRET"\napi_url = "{api.api_url}"\n'
    )


def line_toml(line: LineApiStandIn) -> str:
    return (
        f'[chat.line]\nto = "{GROUP}"\nchannel_secret_env = "{SECRET_ENV}"\naccess_token_env = "{TOKEN_ENV}"\n'
        f'api_url = "{line.url}"\n'
    )


POLICY = f'[policy]\napprovers = ["slack:{APPROVER}"]\n'
CHAT_ENV = {**ENV, SECRET_ENV: CHANNEL_SECRET, TOKEN_ENV: ACCESS_TOKEN}


# what Slack saw ---------------------------------------------------------------------------------


def incident_of(blocks: object) -> str:
    """The incident a card is about (its id is on every card, in a field and in the footer)."""
    found = set(re.findall(r"INC-\d{4}", text_of(blocks)))
    assert len(found) == 1, f"a card names one incident, not {found}"
    return str(found.pop())


def accepted_chat(api: SlackAPI) -> list[Call]:
    """The posts and edits Slack carried out, in the order it received them."""
    return [c for c in api.calls if c.method in CHAT and c.status == 200 and c.error is None]


def posts_by_ts(api: SlackAPI) -> list[str]:
    """The ts of each message posted, oldest first (the stand-in numbers them in order)."""
    return [m.ts for m in sorted(api.messages.values(), key=lambda m: float(m.ts))]


def check_cards_before_their_edits(api: SlackAPI) -> dict[str, str]:
    """One post per incident, and every edit made after its own card was posted, to that card.
    Returns incident id -> the card's ts."""
    posted = iter(posts_by_ts(api))
    cards: dict[str, str] = {}
    for call in accepted_chat(api):
        incident = incident_of(call.body["blocks"])
        if call.method == "chat.postMessage":
            assert incident not in cards, f"a second card for {incident}"
            cards[incident] = next(posted)
        else:
            assert cards.get(incident) == call.body["ts"], f"an edit of {incident} before (or beside) its card"
    return cards


# the IIS host ---------------------------------------------------------------------------------


def broken_key_link_host() -> HostModel:
    """The mission's incident under the name `localhost` (a name that resolves offline): the
    renewal installed a certificate whose key link is broken, and bound it."""
    model = HostModel()
    old = model.add_cert(["localhost"], days_old=80, friendly_name="old")
    new = model.add_cert(["localhost"], days_old=0.1, key_state="missing_keyset", friendly_name="renewed")
    model.bind_site("Default Web Site", "localhost", new)
    model.add_renewal(
        "mZ3Yk1fWbkW0yJbqv7NfVw",
        ["localhost"],
        1,
        thumbprint=new.thumbprint,
        history=[
            model.history_entry(True, old.thumbprint, days_ago=80),
            model.history_entry(True, new.thumbprint, days_ago=0.1),
        ],
    )
    model.add_wacs_task()
    return model


class SlowAfterRepair(Faults):
    """The simulator's slow-command switch, thrown by the host itself: every command answers at
    once until certutil -repairstore has run; from then on (while `armed`) each takes `seconds`,
    so the repair has happened on the host and certops is still waiting to hear so."""

    def __init__(self, model: HostModel, seconds: float) -> None:
        super().__init__()
        self.model = model
        self.seconds = seconds
        self.armed = True

    @property
    def script_seconds(self) -> float:
        return self.seconds if self.armed and repairs(self.model) else 0.0

    @script_seconds.setter
    def script_seconds(self, _value: float) -> None:
        pass  # Faults.__init__ sets the field; this switch ignores it


def repairs(model: HostModel) -> list[str]:
    return [line for line in list(model.log) if line.startswith("certutil -repairstore")]


def iis_site_toml(tls: ModelTLSServer, ca_file: Path, sim: WinRMSimulator) -> str:
    """Site www, served by the simulated host's TLS endpoint (public name and origin), on host iis01."""
    extra = f'origins = ["127.0.0.1:{tls.port}"]\nhost = "iis01"\n'
    return site_toml("www", tls.port, str(ca_file), extra) + host_config(sim.url, sim.username)


async def press(http: aiohttp.ClientSession, url: str, api: SlackAPI, value: str, ts: str) -> int:
    """A block_actions request as Slack sends it when APPROVER presses the button `value` on the
    card at `ts` (with Slack's copy of the card), signed with the real v0 algorithm."""
    card = api.message(CHANNEL, ts)
    message = {"type": "message", "ts": ts, "text": card.text, "blocks": card.blocks}
    payload = press_payload(value, CHANNEL, ts, user=APPROVER, response_url=api.response_url(), message=message)
    body = urlencode({"payload": json.dumps(payload)})
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": sign_body(SIGNING_SECRET, stamp, body),
    }
    async with http.post(url, data=body.encode(), headers=headers) as response:
        await response.read()
        return response.status


def run(scenario: Callable[[], Any]) -> None:
    asyncio.run(scenario())


# 1. after the transition, before delivery ---------------------------------------------------------


def test_a_card_written_but_not_yet_delivered_when_certops_is_killed_is_posted_once_after_the_restart(
    lab: Lab, tmp_path: Path
) -> None:
    async def scenario() -> None:
        site = lab.serve("localhost", behaviour=Behaviour.RESET_IN_HANDSHAKE)
        db = Database(tmp_path / "state.db")
        async with SlackAPI() as slack, LineApiStandIn() as line:
            slack.fail(503, methods=["chat.postMessage"])  # Slack is down: the card stays pending
            line.fail(503, retry_after=3, accept=True)  # LINE takes the push, the answer is lost
            config = (
                bot_toml(db.path) + site_toml("www", site.port, lab.ca_file) + slack_toml(slack) + line_toml(line)
            ) + POLICY
            with certops(tmp_path, config, CHAT_ENV) as bot:

                def tried_and_pending() -> sqlite3.Row | None:
                    incidents = db.incidents("www")
                    rows = db.outbox()
                    if not incidents or {r["platform"] for r in rows if r["attempts"] >= 1} != {"slack", "line"}:
                        return None
                    return incidents[0]

                incident = await eventually(bot, "the incident and a failed try on each chat", tried_and_pending)
                bot.kill()

                incident_id = incident["id"]
                rows = db.outbox()
                assert [(r["platform"], r["kind"], r["incident_id"], r["state"]) for r in rows] == [
                    ("slack", "card", incident_id, "pending"),
                    ("line", "card", incident_id, "pending"),
                ]
                assert slack.accepted("chat.postMessage") == []
                assert slack.calls_to("chat.postMessage"), "a delivery was tried before the kill"
                assert len(line.delivered) == 1  # LINE has it, certops does not know

                slack.recover()
                line.recover()
                bot.start()
                await eventually(bot, "both cards delivered", lambda: db.outbox() and not db.pending())

                [post] = slack.accepted("chat.postMessage")
                assert incident_of(post.body["blocks"]) == incident_id
                [card] = slack.messages.values()
                assert [r["ref"] for r in db.rows("SELECT ref FROM card_refs WHERE platform = 'slack'")] == [
                    f"{CHANNEL}:{card.ts}"
                ]
                # LINE: the retry after the restart reused the row's retry key and got 409
                attempts = line.push_attempts()
                assert len({c.headers["X-Line-Retry-Key"] for c in attempts}) == 1
                assert attempts[-1].status == 409
                assert len(line.delivered) == 1
                assert [r["state"] for r in db.outbox()] == ["sent", "sent"]

                # killed again with the card delivered; the site heals while certops is down
                bot.kill()
                site.behaviour = Behaviour.OK
                bot.start()

                def resolved_and_delivered() -> bool:
                    [row] = db.incidents("www")
                    return row["state"] == "resolved" and not db.pending()

                await eventually(bot, "the incident resolved and its card edited", resolved_and_delivered)
                bot.kill()

            # the edit went to the card posted by the previous run: one card, edited in place
            assert len(slack.accepted("chat.postMessage")) == 1
            updates = slack.accepted("chat.update")
            assert updates, "the resolution is an edit of the card"
            assert {u.body["ts"] for u in updates} == {card.ts}
            assert slack.message(CHANNEL, card.ts).block_text().count("Resolved") >= 1
            check_cards_before_their_edits(slack)
            # LINE cannot edit: the resolution is a second push, with a retry key of its own
            assert len(line.delivered) == 2
            assert len({c.headers["X-Line-Retry-Key"] for c in line.delivered}) == 2
            assert {r["state"] for r in db.outbox()} <= {"sent", "superseded"}
            sent = [r for r in db.outbox() if r["state"] == "sent"]
            assert len([r for r in sent if r["platform"] == "slack"]) == len(accepted_chat(slack))

    run(scenario)


# 2. a chat outage that outlasts a restart -------------------------------------------------------


def test_through_an_outage_a_rate_limit_and_a_kill_every_message_is_delivered_once_and_in_order(
    lab: Lab, tmp_path: Path
) -> None:
    async def scenario() -> None:
        www = lab.serve("localhost", behaviour=Behaviour.RESET_IN_HANDSHAKE)
        shop = lab.serve("localhost")
        db = Database(tmp_path / "state.db")
        async with SlackAPI() as slack:
            config = (
                bot_toml(db.path)
                + site_toml("www", www.port, lab.ca_file)
                + site_toml("shop", shop.port, lab.ca_file)
                + slack_toml(slack)
                + POLICY
            )
            with certops(tmp_path, config, CHAT_ENV) as bot:

                def www_card_sent() -> bool:
                    rows = db.outbox("slack")
                    return bool(rows) and all(r["state"] == "sent" for r in rows)

                await eventually(bot, "the card of www", www_card_sent)
                [www_incident] = db.incidents("www")

                # Slack goes down; meanwhile www heals and shop breaks
                slack.fail(503, methods=CHAT)
                outage_from = max(r["seq"] for r in db.outbox())
                www.behaviour = Behaviour.OK
                shop.behaviour = Behaviour.RESET_IN_HANDSHAKE

                def retrying() -> bool:
                    return any(r["seq"] > outage_from and r["attempts"] >= 1 for r in db.pending("slack"))

                await eventually(bot, "news held back by the outage", retrying)
                bot.kill()
                before_restart = len(slack.calls)
                bot.start()

                def refused_after_restart() -> bool:
                    return any(c.status == 503 for c in slack.calls[before_restart:])

                await eventually(bot, "a retry after the restart", refused_after_restart)
                # the outage ends with one rate limit, then Slack takes everything
                slack.recover()
                slack.fail(429, error="ratelimited", retry_after=1, times=1, methods=CHAT)

                def all_delivered() -> bool:
                    shop_open = [i for i in db.incidents("shop") if i["state"] == "open"]
                    [www_now] = db.incidents("www")
                    return bool(shop_open) and www_now["state"] == "resolved" and not db.pending()

                await eventually(bot, "every message delivered", all_delivered, timeout=30)
                bot.kill()

            [shop_incident] = db.incidents("shop")
            cards = check_cards_before_their_edits(slack)
            assert list(cards) == [www_incident["id"], shop_incident["id"]]  # posted in the order they opened
            assert len(slack.messages) == 2
            assert "Resolved" in slack.message(CHANNEL, cards[www_incident["id"]]).block_text()
            assert "Resolved" not in slack.message(CHANNEL, cards[shop_incident["id"]]).block_text()
            refusals = [c.status for c in slack.calls if c.method in CHAT and c.status != 200]
            assert set(refusals) == {503, 429}
            assert refusals.count(429) == 1
            # exactly once: each row marked sent is one message Slack carried out, in the same order;
            # the rest were folded into a newer edit of the same card
            rows = db.outbox("slack")
            assert {r["state"] for r in rows} <= {"sent", "superseded"}
            sent = sorted((r for r in rows if r["state"] == "sent"), key=lambda r: r["sent_at"])
            assert [r["incident_id"] for r in sent] == [incident_of(c.body["blocks"]) for c in accepted_chat(slack)]

    run(scenario)


# 3. during an approved host action ---------------------------------------------------------------


def test_a_repair_killed_while_it_runs_is_failed_as_interrupted_audited_and_never_run_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        model = broken_key_link_host()
        faults = SlowAfterRepair(model, seconds=30)
        ca_file = tmp_path / "sim-ca.pem"
        ca_file.write_bytes(issuer_pem())
        db = Database(tmp_path / "state.db")
        with WinRMSimulator(model, faults=faults) as sim, ModelTLSServer(model) as tls:
            async with SlackAPI() as slack, aiohttp.ClientSession() as http:
                config = bot_toml(db.path) + iis_site_toml(tls, ca_file, sim) + slack_toml(slack) + POLICY
                env = {**CHAT_ENV, SIM_PASSWORD_ENV: sim.password}
                with certops(tmp_path, config, env) as bot:

                    def repair_button() -> tuple[str, str] | None:
                        request = db.request("repair-store")
                        if request is None or request["state"] != "pending":
                            return None
                        value = f"act:{request['token']}"
                        shown = [m.ts for m in slack.messages.values() if value in m.button_values()]
                        return (value, shown[0]) if shown else None

                    value, ts = await eventually(bot, "a card with a Repair store button", repair_button)
                    port = await eventually(bot, "certops listening", bot.listening_port)
                    events = f"http://127.0.0.1:{port}/slack/events"
                    token = value.removeprefix("act:")
                    request = db.request("repair-store")
                    assert request is not None
                    subject = f"repair-store {request['target']} on iis01"

                    assert await press(http, events, slack, value, ts) == 200

                    def repair_under_way() -> bool:
                        request = db.request("repair-store")
                        return request is not None and request["state"] == "running" and bool(repairs(model))

                    await eventually(bot, "the repair running on the host", repair_under_way)
                    bot.kill()
                    faults.armed = False  # the host answers promptly again

                    killed = db.request("repair-store")
                    assert killed is not None
                    assert (killed["token"], killed["state"]) == (token, "running")
                    assert (f"slack:{APPROVER}", "approve", subject, "approved") in [a[:4] for a in db.audit()]

                    bot.start()

                    def marked_failed() -> sqlite3.Row | None:
                        request = db.request("repair-store")
                        return request if request is not None and request["state"] == "failed" else None

                    failed = await eventually(bot, "the interrupted repair marked failed", marked_failed)
                    assert failed["result"].startswith("interrupted")
                    assert ("certops", "run", subject, "failed", "interrupted") in db.audit()

                    # the same button, pressed again after the restart
                    port = await eventually(bot, "certops listening again", bot.listening_port)
                    answers = len(slack.calls_to("response_url"))
                    assert await press(http, f"http://127.0.0.1:{port}/slack/events", slack, value, ts) == 200

                    def refusal() -> Call | None:
                        later = slack.calls_to("response_url")[answers:]
                        return later[0] if later else None

                    answer = await eventually(bot, "the answer to the second press", refusal)
                    assert "interrupted" in str(answer.body.get("text"))
                    refused = (f"slack:{APPROVER}", "press", subject, "refused", "request is failed")
                    await eventually(bot, "the refusal audited", lambda: refused in db.audit())
                    bot.kill()

                # certutil -repairstore ran once: before the kill, never after
                assert repairs(model) == [f"certutil -repairstore WebHosting {request['target']}"]
                assert sim.scripts_run.count("repair_store") == 1
                [final] = db.rows("SELECT state, result FROM action_requests WHERE token = ?", token)
                assert final["state"] == "failed"
                assert final["result"].startswith("interrupted")

    run(scenario)


# between the opening and the diagnosis --------------------------------------------------------------


def test_an_incident_whose_diagnosis_was_cut_short_by_a_kill_is_diagnosed_after_the_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        model = broken_key_link_host()
        faults = Faults(script_seconds=30)  # the host is slow to answer: the diagnosis on opening hangs
        ca_file = tmp_path / "sim-ca.pem"
        ca_file.write_bytes(issuer_pem())
        db = Database(tmp_path / "state.db")
        with WinRMSimulator(model, faults=faults) as sim, ModelTLSServer(model) as tls:
            async with SlackAPI() as slack:
                config = bot_toml(db.path) + iis_site_toml(tls, ca_file, sim) + slack_toml(slack) + POLICY
                env = {**CHAT_ENV, SIM_PASSWORD_ENV: sim.password}
                with certops(tmp_path, config, env) as bot:

                    def diagnosing() -> sqlite3.Row | None:
                        incidents = db.incidents("www")
                        return incidents[0] if incidents and "certs" in sim.scripts_run else None

                    opened = await eventually(bot, "the incident opened and its host being diagnosed", diagnosing)
                    bot.kill()
                    assert json.loads(opened["diagnosis"]) == []
                    faults.script_seconds = 0.0  # the host answers promptly again
                    bot.start()

                    def diagnosed() -> bool:
                        [incident] = db.incidents("www")
                        request = db.request("repair-store")
                        return bool(json.loads(incident["diagnosis"])) and request is not None

                    # two probe rounds after the restart see the open incident failing
                    what = "the open incident diagnosed, with its Repair store button"
                    await eventually(bot, what, diagnosed, timeout=12)
                    await eventually(
                        bot,
                        "the card showing the Repair store button",
                        lambda: any(m.button_values() for m in slack.messages.values()),
                    )
                    bot.kill()

    run(scenario)


# [bot] listen with port 0 ----------------------------------------------------------------------


def test_certops_run_told_to_listen_on_port_0_serves_on_a_port_the_system_picks(tmp_path: Path) -> None:
    async def scenario() -> None:
        database = tmp_path / "state.db"
        # the config check accepts port 0 ("asks the system for a free port when listening")
        with certops(tmp_path, f'[bot]\nlisten = "127.0.0.1:0"\ndatabase = "{database}"\n', {}) as bot:
            port = await eventually(bot, "certops listening on the port it was given", bot.listening_port)
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as answer:
                assert answer.status == 200
                assert (await answer.json())["status"] == "ok"
            bot.kill()

    run(scenario)
