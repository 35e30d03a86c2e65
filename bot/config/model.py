"""The validated configuration. Everything here has passed `bot.config.load`."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.config.secrets import SecretRef

HOST_ACTIONS = (
    "diagnose",
    "repair-store",
    "verify-binding",
    "rebind",
    "renew",
    "audit-tasks",
    "retire-task",
    "add-post-renew-step",
)


@dataclass(frozen=True)
class BotSettings:
    listen: str = "127.0.0.1:8080"
    database: str = "certops.db"
    log_level: str = "info"
    probe_concurrency: int = 50


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


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    transport: str = "ntlm"
    username: str | None = None
    password: SecretRef | None = None
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    verify_tls: bool = True
    allow_insecure_basic: bool = False
    timeout: float = 120.0
    wacs_path: str = r"C:\Program Files\win-acme\wacs.exe"


@dataclass(frozen=True)
class SlackSettings:
    mode: str
    channel: str
    bot_token: SecretRef
    app_token: SecretRef | None = None
    signing_secret: SecretRef | None = None
    api_url: str | None = None


@dataclass(frozen=True)
class LineSettings:
    to: str
    channel_secret: SecretRef
    access_token: SecretRef
    api_url: str | None = None


@dataclass(frozen=True)
class Policy:
    approvers: tuple[str, ...] = ()
    action_approvers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    two_person: tuple[str, ...] = ()
    auto_heal: tuple[str, ...] = ()
    button_ttl: float = 1800.0


@dataclass(frozen=True)
class Config:
    source: str
    bot: BotSettings = field(default_factory=BotSettings)
    sites: tuple[Site, ...] = ()
    hosts: tuple[Host, ...] = ()
    slack: SlackSettings | None = None
    line: LineSettings | None = None
    policy: Policy = field(default_factory=Policy)

    def site(self, name: str) -> Site | None:
        return next((s for s in self.sites if s.name == name), None)

    def host(self, name: str) -> Host | None:
        return next((h for h in self.hosts if h.name == name), None)

    def secret_refs(self) -> list[SecretRef]:
        refs: list[SecretRef | None] = [h.password for h in self.hosts]
        if self.slack:
            refs += [self.slack.bot_token, self.slack.app_token, self.slack.signing_secret]
        if self.line:
            refs += [self.line.channel_secret, self.line.access_token]
        return [r for r in refs if r is not None]
