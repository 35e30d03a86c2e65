"""Slack ack latency under load: /ssl commands sent to the http mode while 20 slow host actions run.

Run from the repository root:

    .venv/bin/python bench/chat_ack.py                 # 20 s of commands at 20/s (about 25 s in all)
    .venv/bin/python bench/chat_ack.py --rate 50       # a busier channel
    .venv/bin/python bench/chat_ack.py --json          # the same, machine-readable

What it does (issue 4, "Benchmark"):

* a child process runs the bot as production does: build_core, SlackAdapter in http mode behind
  an aiohttp server on 127.0.0.1 port 0, a Slack Web API stand-in (tests/fakes/slack_api.py) and
  one loopback TLS site for `/ssl check` to probe;
* 20 IIS hosts, iis00 to iis19, are WinRM simulators (host_actions/simulator), each in the state
  of the mission's incident (a renewed certificate whose key link is broken), each taking 10 s per
  WinRM command (Faults(script_seconds=10)), so one repair-store (three commands) takes about 30 s;
  the config names them as [[hosts]], timeout 120 s;
* 20 approval buttons (repair-store, one per host) are pressed over signed HTTP; each approved
  action runs for real through pywinrm on the bot's host-action threads, so 20 slow actions are
  running;
* meanwhile this process sends signed `/ssl status`, `/ssl check www` and `/ssl help` at a fixed
  rate (open loop, as users type) and measures the time to each HTTP 200;
* it prints p50, p99 and max, and the missed acks (non-200, or later than Slack's 3 seconds);
  then the child lets the slow actions finish on their hosts (a repair-store is several WinRM
  commands of 10 s each: the host is diagnosed again, repaired, then read back), their results go
  to their cards, and the child stops.

Client and bot are separate processes so the client's own work is not charged to the bot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.fakes.slack_api (the tests package is not installed)

import aiohttp  # noqa: E402 - after the path set-up above
from slack_sdk.signature import SignatureVerifier  # noqa: E402

SLOW_ACTIONS = 20
ACTION_SECONDS = 10.0  # each WinRM command on a simulated host: a repair-store is three of them, ~30 s
HOST_TIMEOUT = 120  # the [[hosts]] timeout, per WinRM session: more than its commands take
SIM_PASSWORD_ENV = "CERTOPS_BENCH_SIM_PASSWORD"  # noqa: S105 - the name of a variable, not a secret
SLACK_ACK_DEADLINE = 3.0
TARGET_P99 = 0.300
COMMANDS = ("status", "check www", "help")


# the bot (child process) ------------------------------------------------------------------


async def serve(workdir: Path) -> None:
    from aiohttp import web

    from bot.app import build_core
    from bot.chat.slack import EVENTS_PATH, SlackAdapter
    from bot.config import parse_config
    from bot.testbed.pki import MiniCA
    from bot.testbed.tls_servers import Endpoint, TLSServers
    from bot.web import serve_app
    from commands.model import Button, Reply, Tone
    from host_actions.simulator import Faults, WinRMSimulator
    from host_actions.simulator.scenarios import incident_host
    from tests.fakes.slack_api import SlackAPI

    ca = MiniCA()
    ca_file = ca.write_ca(workdir / "ca.pem")
    with TLSServers() as servers, ExitStack() as hosts:
        site = servers.add(Endpoint(ca.issue("localhost", days_left=60)))
        sims = [
            hosts.enter_context(WinRMSimulator(incident_host(), faults=Faults(script_seconds=ACTION_SECONDS)))
            for _ in range(SLOW_ACTIONS)
        ]
        os.environ[SIM_PASSWORD_ENV] = sims[0].password  # every simulator has the same made-up one
        tokens: list[str] = []

        def running() -> int:
            """Approved repairs whose job the simulated host has started and not yet answered."""
            states = [core.store.request(t).state for t in tokens]  # type: ignore[union-attr]
            return sum(1 for sim, state in zip(sims, states, strict=True) if sim.scripts_run and state == "running")

        def repaired() -> int:
            return sum(1 for sim in sims if all(c.key_state == "ok" for c in sim.model.certs))

        async with SlackAPI() as api:
            config = parse_config(_config(api.api_url, site.port, str(ca_file), sims))
            core = build_core(config, database=str(workdir / "bench.db"))
            assert config.slack is not None
            adapter = SlackAdapter(config.slack, core)
            await adapter.start()
            app = web.Application()
            app.add_routes(adapter.routes())
            runner, port = await serve_app(app, "127.0.0.1", 0)
            presses = []
            for i, sim in enumerate(sims):
                broken = next(c.thumbprint for c in sim.model.certs if c.key_state != "ok")
                request = core.store.create_request(
                    incident_id=None,
                    site=None,
                    host=f"iis{i:02d}",  # one request per host: a second one for the same host would supersede it
                    action="repair-store",
                    args=(broken,),
                    target=broken,
                    requested_by="slack:U0ALICE",
                    ttl=600,
                )
                tokens.append(request.token)
                ref = await adapter.post(
                    Reply(f"bench card {i}", Tone.CRITICAL, buttons=(Button("Repair", f"act:{request.token}"),))
                )
                presses.append({"token": f"act:{request.token}", "ref": ref})
            _tell(
                {"url": f"http://127.0.0.1:{port}{EVENTS_PATH}", "presses": presses, "response_url": api.response_url()}
            )
            started = time.monotonic()
            while running() < SLOW_ACTIONS and time.monotonic() - started < 10:
                await asyncio.sleep(0.05)
            _tell({"running": running()})
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the client is done
            _tell({"still_running": running(), "commands_audited": len(core.store.audit_log(100_000))})
            # the slow actions finish on their hosts; their results still go to their cards
            await runner.cleanup()  # the order certops run uses: no new requests,
            await core.worker.drain(timeout=HOST_TIMEOUT + 30)  # follow-ups deliver through the adapter,
            await adapter.stop()  # then the adapter closes its connections
            _tell({"repaired": repaired()})
            core.close()


def _config(api_url: str, port: int, ca_file: str, sims: list[Any]) -> str:
    hosts = "".join(
        f'[[hosts]]\nname = "iis{i:02d}"\naddress = "{sim.url}"\ntransport = "basic"\n'
        f'username = "{sim.username}"\npassword_env = "{SIM_PASSWORD_ENV}"\nallow_insecure_basic = true\n'
        f"timeout = {HOST_TIMEOUT}\n\n"
        for i, sim in enumerate(sims)
    )
    return f"""
[[sites]]
name = "www"
url = "https://localhost:{port}/"
ca_file = "{ca_file}"
timeout = 3

{hosts}
[chat.slack]
mode = "http"
channel = "C0BENCH"
bot_token_env = "CERTOPS_BENCH_SLACK_BOT_TOKEN"
signing_secret_env = "CERTOPS_BENCH_SLACK_SIGNING_SECRET"
api_url = "{api_url}"

[policy]
approvers = ["slack:U0ALICE"]
"""


def _tell(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


# the client (this process) ------------------------------------------------------------------


class Client:
    def __init__(self, session: aiohttp.ClientSession, url: str, secret: str, response_url: str) -> None:
        self.session, self.url, self.response_url = session, url, response_url
        self.verifier = SignatureVerifier(secret)
        self.seq = 0

    async def send(self, body: str) -> tuple[int, float]:
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": self.verifier.generate_signature(timestamp=ts, body=body) or "",
        }
        started = time.perf_counter()
        try:
            async with self.session.post(self.url, data=body.encode(), headers=headers) as response:
                await response.read()
                return response.status, time.perf_counter() - started
        except aiohttp.ClientError:
            return 0, time.perf_counter() - started

    def command(self, text: str) -> str:
        self.seq += 1
        return urlencode(
            {
                "team_id": "T0TEST",
                "channel_id": "C0BENCH",
                "user_id": "U0ALICE",
                "user_name": "alice",
                "command": "/ssl",
                "text": text,
                "response_url": self.response_url,
                "trigger_id": f"bench.{self.seq}",
            }
        )

    def press(self, token: str, ref: str) -> str:
        self.seq += 1
        channel, _, ts = ref.partition(":")
        payload = {
            "type": "block_actions",
            "user": {"id": "U0ALICE", "username": "alice"},
            "team": {"id": "T0TEST"},
            "container": {"type": "message", "message_ts": ts, "channel_id": channel},
            "channel": {"id": channel},
            "trigger_id": f"bench.{self.seq}",
            "response_url": self.response_url,
            "actions": [{"action_id": "certops_btn_0", "value": token, "type": "button"}],
        }
        return urlencode({"payload": json.dumps(payload)})


async def load(child: subprocess.Popen[str], secret: str, seconds: float, rate: float) -> dict[str, Any]:
    assert child.stdout is not None
    hello = json.loads(child.stdout.readline())
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:
        client = Client(session, hello["url"], secret, hello["response_url"])
        press_results = await asyncio.gather(
            *(client.send(client.press(p["token"], p["ref"])) for p in hello["presses"])
        )
        running = json.loads(await asyncio.to_thread(child.stdout.readline))["running"]
        results: list[tuple[int, float]] = []
        pending: list[asyncio.Task[None]] = []

        async def one(text: str) -> None:
            results.append(await client.send(client.command(text)))

        started = time.perf_counter()
        n = 0
        while (elapsed := time.perf_counter() - started) < seconds:
            target = n / rate
            if target > elapsed:
                await asyncio.sleep(target - elapsed)
            pending.append(asyncio.create_task(one(COMMANDS[n % len(COMMANDS)])))
            n += 1
        await asyncio.gather(*pending)
    assert child.stdin is not None
    child.stdin.close()
    bye = json.loads(child.stdout.readline())
    done = json.loads(await asyncio.to_thread(child.stdout.readline))  # once the slow actions have finished
    latencies = sorted(t for _, t in results)
    missed = sum(1 for status, t in results if status != 200 or t > SLACK_ACK_DEADLINE)
    return {
        "slow_actions_pressed": sum(1 for s, _ in press_results if s == 200),
        "slow_actions_running_at_start": running,
        "slow_actions_running_at_end": bye["still_running"],
        "slow_actions_repaired_on_hosts": done["repaired"],
        "commands": len(results),
        "rate_per_s": rate,
        "seconds": seconds,
        "p50_ms": round(_pct(latencies, 50) * 1000, 1),
        "p90_ms": round(_pct(latencies, 90) * 1000, 1),
        "p99_ms": round(_pct(latencies, 99) * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        "missed_acks": missed,
        "non_200": sum(1 for status, _ in results if status != 200),
    }


def _pct(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to send commands (default 20)")
    parser.add_argument("--rate", type=float, default=20.0, help="commands per second (default 20)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--serve", metavar="DIR", help=argparse.SUPPRESS)  # the child's role
    args = parser.parse_args()
    secret = "bench-signing-secret-not-real"  # noqa: S105 - made up for this local run
    env = {
        **os.environ,
        "CERTOPS_BENCH_SLACK_BOT_TOKEN": "xoxb-test-not-a-real-token",
        "CERTOPS_BENCH_SLACK_SIGNING_SECRET": secret,
    }
    if args.serve:
        asyncio.run(serve(Path(args.serve)))
        return 0
    with tempfile.TemporaryDirectory(prefix="certops-bench-") as workdir:
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", workdir],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        try:
            figures = asyncio.run(load(child, secret, args.seconds, args.rate))
        finally:
            if child.stdin and not child.stdin.closed:
                child.stdin.close()
            child.wait(timeout=HOST_TIMEOUT + 60)
    verdict = figures["p99_ms"] < TARGET_P99 * 1000 and figures["missed_acks"] == 0
    if args.json:
        print(json.dumps({**figures, "target_met": verdict}, indent=2))
    else:
        print(
            f"{figures['commands']} /ssl commands at {args.rate:g}/s for {args.seconds:g} s, while "
            f"{figures['slow_actions_running_at_start']} slow host actions ran "
            f"({figures['slow_actions_running_at_end']} still running at the end)"
        )
        print(
            f"time to HTTP 200: p50 {figures['p50_ms']} ms, p90 {figures['p90_ms']} ms, "
            f"p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms"
        )
        print(f"missed 3-second acks: {figures['missed_acks']} (non-200 answers: {figures['non_200']})")
        print(f"target (p99 < {TARGET_P99 * 1000:g} ms, no missed ack): {'met' if verdict else 'NOT met'}")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
