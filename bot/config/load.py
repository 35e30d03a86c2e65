"""Reads certops.toml, validates every key, and returns a Config or raises ConfigError listing all problems."""

from __future__ import annotations

import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import idna

from bot.config.errors import ConfigError, ConfigIssue
from bot.config.model import (
    HOST_ACTIONS,
    BotSettings,
    Config,
    Host,
    LineSettings,
    Policy,
    Site,
    SlackSettings,
)
from bot.config.reader import Table, quoted
from bot.config.secrets import SecretUnavailable
from host_actions.errors import InvalidParameter
from host_actions.validate import windows_path

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
PRINCIPAL = re.compile(
    r"^(slack:[UW][A-Z0-9]{2,}|slack-group:S[A-Z0-9]{2,}|line:U[0-9a-f]{32}|console:[A-Za-z0-9_.-]+)$"
)
LOG_LEVELS = ("debug", "info", "warning", "error")
TRANSPORTS = ("ntlm", "kerberos", "credssp", "certificate", "basic")
NAME_RULE = "letters, digits, '.', '_' or '-' (at most 63), starting with a letter or digit"


def load_config(path: str | Path) -> Config:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            source,
            [ConfigIssue("", "file not found (copy deploy/certops.example.toml to start one)")],
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [ConfigIssue("", f"cannot read the file: {exc}")]) from None
    return parse_config(text, source, base_dir=Path(path).resolve().parent)


def parse_config(text: str, source: str = "certops.toml", *, base_dir: Path | None = None) -> Config:
    """`base_dir`: where relative file names in the config are looked up (the config's folder)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [ConfigIssue("", f"not valid TOML: {exc}")]) from None
    issues: list[ConfigIssue] = []
    root = Table(data, "", issues)
    bot = _bot(Table(root.raw("bot") or {}, "bot", issues))
    base = base_dir or Path.cwd()
    hosts = _hosts(root.raw("hosts"), issues, base)
    sites = _sites(root.raw("sites"), {h.name for h in hosts}, issues, base)
    chat = Table(root.raw("chat") or {}, "chat", issues)
    slack = _slack(Table(chat.raw("slack"), "chat.slack", issues)) if chat.has("slack") else None
    line = _line(Table(chat.raw("line"), "chat.line", issues)) if chat.has("line") else None
    chat.finish()
    policy = _policy(Table(root.raw("policy") or {}, "policy", issues))
    root.finish()
    if issues:
        raise ConfigError(source, issues)
    return Config(source, bot, tuple(sites), tuple(hosts), slack, line, policy)


def missing_secrets(config: Config) -> list[str]:
    """Every configured secret that cannot be read now, as user-safe sentences."""
    problems = []
    for ref in config.secret_refs():
        try:
            ref.resolve()
        except SecretUnavailable as exc:
            problems.append(str(exc))
    return problems


def _bot(t: Table) -> BotSettings:
    listen = t.string("listen", "127.0.0.1:8080") or "127.0.0.1:8080"
    if split_host_port(listen) is None:
        t.problem("listen", f'must be ADDRESS:PORT such as "127.0.0.1:8080", got {quoted(listen)}')
    settings = BotSettings(
        listen=listen,
        database=t.string("database", "certops.db") or "certops.db",
        log_level=t.choice("log_level", LOG_LEVELS, "info"),
        probe_concurrency=t.whole("probe_concurrency", 50, unit="probes", minimum=1, maximum=2000),
    )
    t.finish()
    return settings


def _array_of_tables(value: Any, name: str, issues: list[ConfigIssue]) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        issues.append(ConfigIssue(name, f"must be written as [[{name}]] tables, got {quoted(value)}"))
        return []
    return value


def _unique_name(t: Table, seen: set[str], kind: str) -> str:
    name = t.string("name", required=True, hint=f" (a short name for this {kind})") or ""
    if name and not NAME.match(name):
        t.problem("name", f"must use {NAME_RULE}, got {quoted(name)}")
    elif name in seen:
        t.problem("name", f'"{name}" is used by another {kind}; names must be unique')
    seen.add(name)
    return name


def _sites(value: Any, host_names: set[str], issues: list[ConfigIssue], base: Path) -> list[Site]:
    sites, seen = [], set[str]()
    for index, item in enumerate(_array_of_tables(value, "sites", issues)):
        t = Table(item, f"sites[{index}]", issues)
        name = _unique_name(t, seen, "site")
        url = t.string("url", required=True, hint=' (e.g. "https://www.example.com/")') or ""
        hostname, port, path = _https_url(t, url)
        origins = t.string_list("origins")
        if len(set(origins)) != len(origins):
            t.problem("origins", "lists the same address twice")
        for i, origin in enumerate(origins):
            if split_host_port(origin, default_port=port) is None:
                t.problem(
                    f"origins[{i}]",
                    'must be an address such as "203.0.113.10", "203.0.113.10:8443" or '
                    f'"[2001:db8::1]:443", got {quoted(origin)}',
                )
        warn = t.whole("warn_days", 21, unit="days", minimum=0, maximum=3650)
        crit = t.whole("crit_days", 7, unit="days", minimum=0, maximum=3650)
        if crit > warn:
            t.problem("crit_days", f"must not be more than warn_days ({warn}), got {crit}")
        statuses = _statuses(t)
        host = t.string("host")
        if host is not None and host not in host_names:
            known = ", ".join(sorted(host_names)) or "none are configured"
            t.problem("host", f'names no [[hosts]] entry: "{host}" (known hosts: {known})')
        sites.append(
            Site(
                name=name,
                url=url,
                hostname=hostname,
                port=port,
                path=path,
                origins=tuple(origins),
                interval=t.seconds("interval", 300.0, minimum=10, maximum=86400),
                warn_days=warn,
                crit_days=crit,
                expect_status=statuses,
                keyword=t.string("keyword"),
                timeout=t.seconds("timeout", 10.0, minimum=0.5, maximum=120),
                host=host,
                ca_file=_existing_file(t, "ca_file", base),
            )
        )
        t.finish()
    return sites


def _https_url(t: Table, url: str) -> tuple[str, int, str]:
    if not url:
        return "", 443, "/"
    try:
        return split_https_url(url)
    except ValueError as exc:
        t.problem("url", str(exc))
        return "", 443, "/"


def split_https_url(url: str) -> tuple[str, int, str]:
    """-> (host name as DNS spells it, port, percent-encoded path and query); ValueError says what is wrong."""
    parts = urlsplit(url)
    try:
        port = 443 if parts.port is None else parts.port
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise ValueError(f"has an invalid port: {quoted(url)}")
    if "@" in parts.netloc:
        raise ValueError("must not contain a user name or password: secrets never go in the config file")
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f'must be an https:// address such as "https://www.example.com/", got {quoted(url)}')
    try:
        # as DNS, SNI and certificates spell it (IDNA 2008 with UTS 46 mapping, as browsers do)
        hostname = idna.encode(parts.hostname, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise ValueError(f"has a host name that is not valid: {quoted(url)}") from None
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~-._")
    if parts.query:
        path += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=~-._?")
    return hostname, port, path


def _statuses(t: Table) -> tuple[int, ...]:
    value = t.raw("expect_status")
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        t.problem("expect_status", f"must be a list of HTTP status codes such as [200, 301], got {quoted(value)}")
        return ()
    codes = []
    for i, code in enumerate(value):
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            t.problem(f"expect_status[{i}]", f"must be an HTTP status code from 100 to 599, got {quoted(code)}")
        else:
            codes.append(code)
    return tuple(codes)


def _existing_file(t: Table, key: str, base: Path) -> str | None:
    """A file that must exist; a relative name is relative to the config file's folder."""
    name = t.string(key)
    if name is None:
        return None
    path = base / name
    if not path.is_file():
        t.problem(key, f"file not found: {path}")
    return str(path)


def _hosts(value: Any, issues: list[ConfigIssue], base: Path) -> list[Host]:
    hosts, seen = [], set[str]()
    for index, item in enumerate(_array_of_tables(value, "hosts", issues)):
        t = Table(item, f"hosts[{index}]", issues)
        name = _unique_name(t, seen, "host")
        address = (
            t.string("address", required=True, hint=' (WinRM endpoint, e.g. "https://iis01.example.com:5986/wsman")')
            or ""
        )
        scheme = urlsplit(address).scheme if address else ""
        if address:
            _no_userinfo(t, "address", address)
        if address and (scheme not in ("http", "https") or not urlsplit(address).hostname):
            t.problem("address", f"must be an http:// or https:// WinRM URL ending in /wsman, got {quoted(address)}")
        transport = t.choice("transport", TRANSPORTS, "ntlm")
        allow_basic = t.boolean("allow_insecure_basic", False)
        if transport == "basic" and scheme == "http" and not allow_basic:
            t.problem(
                "transport",
                "Basic over http:// sends the password in clear; use an https:// address, "
                "another transport, or set allow_insecure_basic = true if you accept that",
            )
        needs_password = transport in ("ntlm", "basic", "credssp")
        username = t.string("username", required=needs_password, hint=f" for transport {transport}")
        password = t.secret("password", required=needs_password, why=f" for transport {transport}")
        cert_file = _existing_file(t, "cert_file", base)
        key_file = _existing_file(t, "key_file", base)
        if transport == "certificate" and not (t.has("cert_file") and t.has("key_file")):
            t.problem("cert_file", "transport certificate needs cert_file and key_file")
        hosts.append(
            Host(
                name=name,
                address=address,
                transport=transport,
                username=username,
                password=password,
                cert_file=cert_file,
                key_file=key_file,
                ca_file=_existing_file(t, "ca_file", base),
                verify_tls=t.boolean("verify_tls", True),
                allow_insecure_basic=allow_basic,
                timeout=t.seconds("timeout", 120.0, minimum=5, maximum=3600),
                wacs_path=_wacs_path(t),
            )
        )
        t.finish()
    return hosts


def _wacs_path(t: Table) -> str:
    default = r"C:\Program Files\win-acme\wacs.exe"
    path = t.string("wacs_path", default) or default
    try:
        windows_path(path)  # the same rule the host actions apply before sending it
        ok = path.lower().endswith("\\wacs.exe")
    except InvalidParameter:
        ok = False
    if not ok:
        t.problem(
            "wacs_path",
            f'must be the full Windows path of wacs.exe, without quotes, &, $, ; or ` (such as "{default}"), '
            f"got {quoted(path)}",
        )
    return path


def _no_userinfo(t: Table, key: str, url: str) -> None:
    if "@" in urlsplit(url).netloc:
        t.problem(key, "must not contain a user name or password: secrets never go in the config file")


def _api_url(t: Table) -> str | None:
    url = t.string("api_url")
    if url is not None and urlsplit(url).scheme not in ("http", "https"):
        t.problem("api_url", f"must be an http:// or https:// URL, got {quoted(url)}")
    elif url is not None:
        _no_userinfo(t, "api_url", url)
    return url


def _slack(t: Table) -> SlackSettings | None:
    mode = t.choice("mode", ("socket", "http"), "socket")
    channel = t.string("channel", required=True, hint=' (channel id such as "C0123456789")')
    bot_token = t.secret("bot_token", required=True)
    app_token = t.secret("app_token", required=mode == "socket", why=" in socket mode")
    signing = t.secret("signing_secret", required=mode == "http", why=" in http mode")
    api_url = _api_url(t)
    t.finish()
    if channel is None or bot_token is None:
        return None
    return SlackSettings(mode, channel, bot_token, app_token, signing, api_url)


def _line(t: Table) -> LineSettings | None:
    to = t.string("to", required=True, hint=" (the group or user id that receives incidents)")
    secret = t.secret("channel_secret", required=True)
    token = t.secret("access_token", required=True)
    api_url = _api_url(t)
    t.finish()
    if to is None or secret is None or token is None:
        return None
    return LineSettings(to, secret, token, api_url)


def _principals(t: Table, key: str) -> tuple[str, ...]:
    values = t.string_list(key)
    for i, value in enumerate(values):
        if not PRINCIPAL.match(value):
            t.problem(
                f"{key}[{i}]",
                'must be "slack:U…", "slack-group:S…", "line:U…" (32 hex digits) or "console:NAME", '
                f"got {quoted(value)}",
            )
    return tuple(values)


def _actions(t: Table, key: str) -> tuple[str, ...]:
    values = t.string_list(key)
    for i, value in enumerate(values):
        if value not in HOST_ACTIONS:
            t.problem(f"{key}[{i}]", f"unknown action {quoted(value)}; actions are {', '.join(HOST_ACTIONS)}")
    return tuple(values)


def _policy(t: Table) -> Policy:
    approvers = _principals(t, "approvers")
    per_action: dict[str, tuple[str, ...]] = {}
    table = Table(t.raw("action_approvers") or {}, t.key_path("action_approvers"), t.issues)
    for action in list(table.data):
        if action in (*HOST_ACTIONS, "mute"):
            per_action[action] = _principals(table, action)
    table.finish()
    policy = Policy(
        approvers=approvers,
        action_approvers=per_action,
        two_person=_actions(t, "two_person"),
        auto_heal=_actions(t, "auto_heal"),
        button_ttl=t.seconds("button_ttl", 1800.0, minimum=60, maximum=86400),
    )
    for action in policy.two_person:
        if action in policy.auto_heal:
            t.problem("auto_heal", f"{action} is also in two_person: choose one (auto_heal would skip both approvals)")
        allowed = policy.action_approvers.get(action, policy.approvers)
        if len(allowed) < 2 and not any(p.startswith("slack-group:") for p in allowed):
            t.problem("two_person", f"{action} needs two different approvers, but only {len(allowed)} may approve it")
    t.finish()
    return policy


def split_host_port(text: str, default_port: int | None = None) -> tuple[str, int] | None:
    """'203.0.113.10', 'h:8443', '[2001:db8::1]:443' -> (host, port); None when malformed."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            return None
    if not port_text:
        if default_port is None:
            return None
        return (host, default_port) if _valid_host(host) else None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536 or not _valid_host(host):
        return None
    return host, int(port_text)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", host)) and ".." not in host
