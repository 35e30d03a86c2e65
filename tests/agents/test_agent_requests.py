"""The agents' endpoints refuse what is not signed by a configured agent with 401 and change
nothing; an authentic request that cannot be used is a 400. The agent itself holds no store and
no chat code, and the config says what is wrong with a vantage point or a quorum."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bot.config import ConfigError, parse_config
from bot.reports.signature import AGENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tests.agents.harness import REPO, SECRETS, config_text, running_bot
from tests.fakes.tls import Lab


def signed(agent: str, secret: str, body: bytes = b"", at: float | None = None) -> dict[str, str]:
    stamp = str(int(at if at is not None else time.time()))
    return {AGENT_HEADER: agent, TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(secret, stamp, body)}


def test_unsigned_wrongly_signed_stale_unknown_and_replayed_agent_requests_are_refused_with_401(
    lab: Lab, tmp_path: Path
) -> None:
    endpoint = lab.serve("127.0.0.1")

    async def main() -> None:
        text = config_text(lab, endpoint.port, vantage='["local", "tokyo"]', confirm_from=1)
        async with running_bot(text, tmp_path) as bot, httpx.AsyncClient(base_url=bot.url) as client:
            work = "/api/agent/work"
            tokyo = SECRETS["tokyo"]
            refused = {
                "unsigned": await client.get(work),
                "unknown agent": await client.get(work, headers=signed("osaka", tokyo)),
                "another agent's secret": await client.get(work, headers=signed("tokyo", SECRETS["frankfurt"])),
                "a timestamp an hour old": await client.get(
                    work, headers=signed("tokyo", tokyo, at=time.time() - 3600)
                ),
                "signed over another body": await client.post(
                    "/api/agent/results", content=b'{"agent":"tokyo","results":[]}', headers=signed("tokyo", tokyo)
                ),
            }
            assert {name: r.status_code for name, r in refused.items()} == dict.fromkeys(refused, 401)
            assert bot.core.store.agent_reports() == {}  # none of them counts as the agent reporting

            headers = signed("tokyo", tokyo)
            good = await client.get(work, headers=headers)
            assert good.status_code == 200
            (site,) = good.json()["sites"]
            assert (site["name"], site["url"], site["interval"], site["timeout"]) == (
                "www",
                f"https://127.0.0.1:{endpoint.port}/",
                5.0,
                3.0,
            )
            assert site["ca_pem"] == Path(lab.ca_file).read_text()  # the CA as text, never a path or a secret
            assert "secret" not in json.dumps(good.json())
            replayed = await client.get(work, headers=headers)
            assert (replayed.status_code, replayed.json()) == (401, {"error": "replayed agent request"})

            body = json.dumps({"agent": "frankfurt", "results": []}).encode()
            other = await client.post("/api/agent/results", content=body, headers=signed("tokyo", tokyo, body))
            assert other.status_code == 400  # authentic, but for another agent than it signs as
            body = json.dumps({"agent": "tokyo", "results": [{"site": "www", "results": [{"site": "www"}]}]}).encode()
            garbled = await client.post("/api/agent/results", content=body, headers=signed("tokyo", tokyo, body))
            assert (garbled.status_code, garbled.json()) == (400, {"error": "a result that is not a probe result"})
            assert bot.core.store.vantage_results() == []
            assert bot.chat.delivered == []

    asyncio.run(main())


def test_the_agent_imports_neither_the_store_nor_the_chat_adapters_nor_their_libraries() -> None:
    code = (
        "import sys, bot.agent, bot.cli\n"
        "bad = ('bot.store', 'bot.chat', 'bot.app', 'bot.outbox', 'sqlalchemy', 'alembic', 'slack_bolt', "
        "'slack_sdk', 'linebot', 'psycopg')\n"
        "print(sorted(m for m in sys.modules if m.startswith(bad)))\n"
    )
    found = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


def test_certops_agent_refuses_to_start_without_its_secret_or_with_a_plain_http_bot_elsewhere(
    tmp_path: Path,
) -> None:
    def agent(*args: str, secret: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin", **({"CERTOPS_AGENT_SECRET": secret} if secret else {})}
        command = [sys.executable, "-m", "bot.cli", "agent", *args]
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=30, check=False)

    missing = agent("--bot", "https://certops.example.com", "--name", "tokyo")
    assert missing.returncode == 2
    assert "the environment variable CERTOPS_AGENT_SECRET holding the agent's secret is not set" in missing.stderr
    plain = agent("--bot", "http://certops.example.com", "--name", "tokyo", secret="s")
    assert plain.returncode == 2
    assert "--bot must be the bot's https:// address" in plain.stderr


AGENT = '[[agents]]\nname = "tokyo"\nsecret_env = "CERTOPS_T_TOKYO"\n'
SITE = '[[sites]]\nname = "www"\nurl = "https://www.example.com/"\n'


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            AGENT + SITE + 'vantage = ["local", "tokio"]\n',
            'sites[0].vantage[1]: names no vantage point: "tokio" (did you mean "tokyo"?); use "local" for the '
            'bot itself or the name of an [[agents]] entry (agents: "tokyo")',
        ),
        (
            AGENT + SITE + 'vantage = ["local", "tokyo"]\nconfirm_from = 3\n',
            "sites[0].confirm_from: must be at least 1 and at most 2 vantage points, got 3 "
            "(vantage lists 2: add vantage points or lower confirm_from)",
        ),
        (
            '[[agents]]\nname = "tokyo"\n' + SITE,
            "agents[0].secret_env: is required (the secret the agent signs its requests with) (or secret_file)",
        ),
        (
            '[[agents]]\nname = "local"\nsecret_env = "X_SECRET"\n' + SITE,
            'agents[0].name: "local" names the bot\'s own probes; give the agent another name, such as "tokyo"',
        ),
    ],
)
def test_the_config_says_which_vantage_key_is_wrong_and_how_to_fix_it(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "t.toml")
    assert problem in [f"{i.path}: {i.message}" for i in raised.value.issues]


def test_a_site_without_vantage_keeps_the_local_default_and_agents_are_read() -> None:
    config = parse_config(AGENT + SITE + '[[sites]]\nname = "api"\nurl = "https://api.example.com/"\n'
                          'vantage = ["tokyo"]\n', "t.toml")  # fmt: skip
    assert [(s.vantage, s.confirm_from) for s in config.sites] == [(("local",), 1), (("tokyo",), 1)]
    assert [(a.name, a.report_interval) for a in config.agents] == [("tokyo", 120.0)]
