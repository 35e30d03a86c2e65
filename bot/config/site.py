"""A [[sites]] entry: what the probe needs of it, in a module of its own so that the probe (and
`certops check URL`) can use it without loading the rest of the config."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Site:
    name: str
    url: str
    hostname: str
    port: int
    path: str
    origins: tuple[str, ...] = ()
    interval: float = 300.0
    warn_days: int = 21
    crit_days: int = 7
    expect_status: tuple[int, ...] = ()  # empty: any 2xx or 3xx answer is fine
    keyword: str | None = None
    timeout: float = 10.0
    host: str | None = None
    ca_file: str | None = None
    failure_threshold: int = 2  # failing rounds in a row before an incident opens
    success_threshold: int = 1  # good rounds in a row before it resolves
    retry_interval: float = 30.0  # seconds to the next round while either count is unconfirmed
    follow_redirects: bool = False  # follow up to 5 redirects and judge the final answer
    # where it is probed from: "local" (the bot itself) and [[agents]] names (docs/agents.md)
    vantage: tuple[str, ...] = ("local",)
    confirm_from: int = 1  # vantage points that must see a failure before the round counts as failing


LOCAL = "local"  # the vantage point of the bot's own probes
