"""Reads certops.toml, validates every key, and returns a Config or raises ConfigError listing all problems."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from tzlocal.windows_tz import win_tz

from bot.config import files, toml_hints
from bot.config.errors import ConfigError, ConfigIssue, quoted
from bot.config.model import (
    DIGEST_AT,
    HOST_ACTIONS,
    LOCAL,
    MAX_PROBE_WORKERS,
    Agent,
    BotSettings,
    Config,
    Host,
    LineSettings,
    Maintenance,
    Policy,
    Site,
    SlackSettings,
    TimeOfDay,
    cron_trigger,
    default_probe_workers,
    redact_url,
)
from bot.config.reader import Table, did_you_mean, human_seconds
from bot.config.secrets import SecretUnavailable
from bot.config.urls import NAME, split_host_port, split_https_url
from host_actions.errors import InvalidParameter
from host_actions.validate import windows_path

PRINCIPAL = re.compile(
    r"^(slack:[UW][A-Z0-9]{2,}|slack-group:S[A-Z0-9]{2,}|line:U[0-9a-f]{32}|console:[A-Za-z0-9_.-]+)$"
)
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("logfmt", "json")
TRANSPORTS = ("ntlm", "kerberos", "credssp", "certificate", "basic")
NAME_RULE = "letters, digits, '.', '_' or '-' (at most 63), starting with a letter or digit"
TIME_OF_DAY = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")
ONE_OFF_EXAMPLE = 'start = "2026-12-24T22:00:00+01:00" and end = "2026-12-26T06:00:00+01:00"'
REPEATING_EXAMPLE = 'cron = "0 2 * * sun" and duration = "2h"'
# far beyond what certops.toml needs ([[sites]] holding an inline table holding a list is 3),
# far below where tomllib recurses too deep or, for dotted keys, slows down quadratically
MAX_NESTING = 100
MAX_KEY_PARTS = 100
_TOML_MARK = re.compile(r"[#\"'\[\]{}.=,\n]")
_LONG_NUMBER = re.compile(r"[0-9_]{4300,}")


def load_config(path: str | Path) -> Config:
    source = str(path)
    try:
        text = files.read_text(path, cap=files.CONFIG_CAP, what="a config file")
    except files.FileRefused as exc:
        if exc.missing:
            fix = "file not found (copy deploy/certops.example.toml to start one)"
            raise ConfigError(source, [ConfigIssue("", fix)]) from None
        raise ConfigError(source, [ConfigIssue("", f"cannot be used as the config: {exc}")]) from None
    return parse_config(text, source, base_dir=Path(path).resolve().parent)


def parse_config(text: str, source: str = "certops.toml", *, base_dir: Path | None = None) -> Config:
    """`base_dir`: where relative file names in the config are looked up (the config's folder)."""
    data = _toml(text, source)
    issues: list[ConfigIssue] = []
    for name in toml_hints.ARRAYS_OF_TABLES:  # [sites] where [[sites]] belongs: one problem that says so
        if isinstance(data.get(name), dict):
            at = toml_hints.single_bracket_line(text, name)
            issues.append(ConfigIssue(name, (f"line {at}: " if at else "") + toml_hints.one_table(name)))
            data[name] = None
    root = Table(data, "", issues)
    bot = _bot(Table(root.raw("bot") or {}, "bot", issues))
    base = base_dir or Path.cwd()
    hosts = _hosts(root.raw("hosts"), issues, base)
    agents = _agents(root.raw("agents"), issues)
    sites = _sites(root.raw("sites"), {h.name for h in hosts}, issues, base, agent_names=[a.name for a in agents])
    chat = Table(root.raw("chat") or {}, "chat", issues)
    slack = _slack(Table(chat.raw("slack"), "chat.slack", issues)) if chat.has("slack") else None
    line = _line(Table(chat.raw("line"), "chat.line", issues)) if chat.has("line") else None
    chat.finish()
    policy = _policy(Table(root.raw("policy") or {}, "policy", issues))
    maintenance = _maintenance(root.raw("maintenance"), [s.name for s in sites], bot.tz(), issues)
    root.finish()
    if issues:  # nothing half-built escapes: every problem, or a whole Config
        raise ConfigError(source, issues)
    if bot.public_url:  # the one address every host's scripts report to
        hosts = [dataclasses.replace(h, report_url=f"{bot.public_url}/api/report") for h in hosts]
    return Config(source, bot, tuple(sites), tuple(hosts), slack, line, policy, tuple(maintenance), tuple(agents))


def _toml(text: str, source: str) -> dict[str, Any]:
    def refuse(message: str) -> ConfigError:
        return ConfigError(source, [ConfigIssue("", message)])

    if len(text) > files.CONFIG_CAP:
        raise refuse(f"is {len(text):,} characters long, and a config file may be at most {files.CONFIG_CAP:,}")
    problem = _nesting_problem(text)
    if problem:
        raise refuse(problem)
    long_number = _LONG_NUMBER.search(text)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise refuse(f"not valid TOML: {toml_hints.decode_hint(text, str(exc))}") from None
    except RecursionError:  # nesting the scan above did not see, and tomllib could not follow
        raise refuse(
            "not valid for certops: values are nested too deeply; no setting needs more than 3 levels"
        ) from None
    except ValueError as exc:  # Python refuses int() of more than 4300 digits
        if long_number is None:
            raise refuse(f"not valid TOML: {str(exc)[:200]}") from None
        line = text.count("\n", 0, long_number.start()) + 1
        raise refuse(
            f"line {line}: a number has more than 4300 digits; no setting needs one that long, so shorten it"
        ) from None


def _nesting_problem(text: str) -> str | None:
    """A quick scan of brackets and dotted keys outside strings and comments, before tomllib."""
    few_brackets = text.count("[") + text.count("{") <= MAX_NESTING
    if few_brackets and all(line.count(".") < MAX_KEY_PARTS for line in text.split("\n")):
        return None  # every config anyone writes: no need to walk it (a key never spans lines)
    depth, dots, line, at = 0, 0, 1, 0
    while True:
        mark = _TOML_MARK.search(text, at)
        if mark is None:
            return None
        at, char = mark.start(), mark[0]
        if char == "#":
            at = _end_of_line(text, at)
            continue
        if char in "\"'":
            end = _string_end(text, at)
            line += text.count("\n", at, end)
            at = end
            continue
        if char in "[{":
            depth += 1
            dots = 0
            if depth > MAX_NESTING:
                return (
                    f"line {line}: values are nested more than {MAX_NESTING} deep; "
                    "no certops setting needs more than 3 levels, so flatten them"
                )
        elif char in "]}":
            depth = max(0, depth - 1)
        elif char == ".":
            dots += 1
            if dots >= MAX_KEY_PARTS:
                return (
                    f"line {line}: a key has more than {MAX_KEY_PARTS} dotted parts; "
                    "certops keys have at most 3 (such as chat.slack.channel), so shorten it"
                )
        else:  # "=", "," or a new line: a new key or value starts
            dots = 0
            if char == "\n":
                line += 1
        at += 1


def _end_of_line(text: str, at: int) -> int:
    end = text.find("\n", at)
    return len(text) if end < 0 else end


def _string_end(text: str, at: int) -> int:
    """The index just past the string that starts at `at` (or the end of its line if unclosed)."""
    quote = text[at]
    basic = quote == '"'
    if text.startswith(quote * 3, at):
        closer, start, stop = quote * 3, at + 3, len(text)
    else:
        closer, start, stop = quote, at + 1, _end_of_line(text, at)
    search = start
    while True:
        found = text.find(closer, search, stop)
        if found < 0:
            return stop
        backslashes = 0
        while basic and found - backslashes - 1 >= start and text[found - backslashes - 1] == "\\":
            backslashes += 1
        if backslashes % 2 == 0:
            end = found + len(closer)
            while len(closer) == 3 and end < len(text) and text[end] == quote and end - found < 5:
                end += 1  # up to two more quotes belong to the string's content
            return end
        search = found + 1


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
    # port 0: the system picks a free port (the demo and tests); a real deployment names its port
    if split_host_port(listen, any_port=True) is None:
        t.problem("listen", f'must be ADDRESS:PORT such as "127.0.0.1:8080", got {quoted(listen)}')
    settings = BotSettings(
        listen=listen,
        database=_database(t),
        database_password=t.secret("database_password", required=False),
        log_level=t.choice("log_level", LOG_LEVELS, "info"),
        log_format=t.choice("log_format", LOG_FORMATS, "logfmt"),
        probe_concurrency=t.whole("probe_concurrency", 50, unit="probes", minimum=1, maximum=2000),
        probe_workers=_probe_workers(t),
        digest_at=_digest_at(t),
        timezone=_timezone(t),
        heartbeat_url=_heartbeat_url(t),
        public_url=_public_url(t),
        renotify=t.optional_seconds(
            "renotify", 4 * 3600.0, minimum=300, maximum=7 * 86400, turns_off="re-notification"
        ),
        flap_limit=t.whole("flap_limit", 4, unit="state changes per hour", minimum=1, maximum=1000),
        leader_lease=t.seconds("leader_lease", 15.0, minimum=3, maximum=300),
    )
    t.finish()
    return settings


def _database(t: Table) -> str:
    database = t.string("database", "certops.db") or "certops.db"
    if ":" in database.partition("://")[2].partition("/")[0].rpartition("@")[0]:  # user:password@
        t.problem(
            "database",
            "must not contain a password: secrets never go in the config file; write "
            '"postgresql://USER@HOST/DATABASE" and set database_password_env or database_password_file',
        )
    return database


def _probe_workers(t: Table) -> int:
    default = 1
    if t.raw("probe_workers") is None:  # only then does the default (maybe from the environment) count
        try:
            default = default_probe_workers()
        except ValueError as exc:
            t.problem("probe_workers", str(exc))
    return t.whole(
        "probe_workers",
        default,
        unit="worker processes",
        minimum=1,
        maximum=MAX_PROBE_WORKERS,
        hint=" (1 probes in the bot's own process; leave it out for one per core)",
    )


def _digest_at(t: Table) -> TimeOfDay | None:
    value = t.raw("digest_at")
    if value is None:
        return DIGEST_AT
    if value == "":
        return None
    if isinstance(value, dt.time) and value.tzinfo is None and not (value.second or value.microsecond):
        return TimeOfDay(value.hour, value.minute)  # written without quotes: digest_at = 09:00:00
    match = TIME_OF_DAY.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        t.problem(
            "digest_at",
            'must be a time of day "HH:MM" on the 24-hour clock, such as "09:00" or "17:30" '
            f'(or "" to turn the digest off), got {quoted(value)}',
        )
        return DIGEST_AT
    return TimeOfDay(int(match[1]), int(match[2]))


def _timezone(t: Table) -> str | None:
    name = t.string("timezone")
    if name is None:
        return None
    try:
        ZoneInfo(name)
        return name
    except (ZoneInfoNotFoundError, ValueError):
        pass
    known = available_timezones()
    if name in win_tz:  # a Windows admin may well type the name Windows shows
        fix = f' (that is the Windows name; write "{win_tz[name]}")'
    elif not known:
        fix = " (no time zone database was found: install the tzdata package)"
    else:
        fix = did_you_mean(name, sorted(known))
    t.problem(
        "timezone",
        'must be an IANA time zone name such as "Europe/Berlin", "America/New_York" or "UTC" '
        f"(leave it out to use this machine's zone), got {quoted(name)}{fix}",
    )
    return None


def _public_url(t: Table) -> str | None:
    url = t.string("public_url")
    if url is None:
        return None
    parts = _split_url(t, "public_url", url)
    if parts is None:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        t.problem(
            "public_url",
            "must be the http:// or https:// address the Windows hosts reach certops at, such as "
            f'"https://certops.example.com" (their reports go to its /api/report), got {quoted(url)}',
        )
        return None
    return url.rstrip("/")


def _heartbeat_url(t: Table) -> str | None:
    url = t.string("heartbeat_url")
    if url is None:
        return None
    parts = _split_url(t, "heartbeat_url", url, shown=_redacted(url))
    if parts is None:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # never the whole URL: its path may be the monitor's secret token
        t.problem(
            "heartbeat_url",
            'must be an http:// or https:// URL such as "https://hc-ping.com/YOUR-CHECK-ID", '
            f"got {quoted(redact_url(url))}",
        )
        return None
    return url


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


def _sites(
    value: Any, host_names: set[str], issues: list[ConfigIssue], base: Path, *, agent_names: list[str] | None = None
) -> list[Site]:
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
        # 5s at the least: the demo probes every few seconds; real sites keep the 5m default
        interval = t.seconds("interval", 300.0, minimum=5, maximum=86400)
        vantage = _vantage(t, agent_names or [])
        sites.append(
            Site(
                name=name,
                url=url,
                hostname=hostname,
                port=port,
                path=path,
                origins=tuple(origins),
                interval=interval,
                warn_days=warn,
                crit_days=crit,
                expect_status=statuses,
                keyword=t.string("keyword"),
                timeout=t.seconds("timeout", 10.0, minimum=0.5, maximum=120),
                host=host,
                ca_file=_existing_file(t, "ca_file", base),
                failure_threshold=t.whole(
                    "failure_threshold",
                    2,
                    unit="failing probe rounds in a row",
                    minimum=1,
                    maximum=100,
                    hint=" (1 opens an incident at the first failing round)",
                ),
                success_threshold=t.whole(
                    "success_threshold",
                    1,
                    unit="good probe rounds in a row",
                    minimum=1,
                    maximum=100,
                    hint=" (1 resolves an incident at the first good round)",
                ),
                retry_interval=_retry_interval(t, interval),
                follow_redirects=t.boolean("follow_redirects", False),
                vantage=vantage,
                confirm_from=_confirm_from(t, vantage),
            )
        )
        t.finish()
    return sites


def _vantage(t: Table, agent_names: list[str]) -> tuple[str, ...]:
    """[[sites]] vantage: where the site is probed from, "local" (the bot) and [[agents]] names."""
    if not t.has("vantage"):
        return (LOCAL,)
    names = t.string_list("vantage")
    if not names and isinstance(t.raw("vantage"), list):
        t.problem("vantage", f'must name at least one vantage point, such as ["{LOCAL}"] (the bot itself)')
        return (LOCAL,)
    if len(set(names)) != len(names):
        t.problem("vantage", "lists the same vantage point twice")
    known = [LOCAL, *agent_names]
    for i, name in enumerate(names):
        if name not in known:
            agents = ", ".join(f'"{a}"' for a in agent_names) or "none are configured"
            t.problem(
                f"vantage[{i}]",
                f'names no vantage point: {quoted(name)}{did_you_mean(name, known)}; use "{LOCAL}" for the bot '
                f"itself or the name of an [[agents]] entry (agents: {agents})",
            )
    return tuple(dict.fromkeys(names)) or (LOCAL,)


def _confirm_from(t: Table, vantage: tuple[str, ...]) -> int:
    if not t.has("confirm_from"):
        return 1
    count = t.whole(
        "confirm_from",
        1,
        unit="vantage points",
        minimum=1,
        maximum=max(1, len(vantage)),
        hint=f" (vantage lists {len(vantage)}: add vantage points or lower confirm_from)",
    )
    return min(count, len(vantage))


def _agents(value: Any, issues: list[ConfigIssue]) -> list[Agent]:
    """[[agents]]: the probe agents (`certops agent`) and the secrets they sign with."""
    agents, seen = [], set[str]()
    for index, item in enumerate(_array_of_tables(value, "agents", issues)):
        t = Table(item, f"agents[{index}]", issues)
        name = _unique_name(t, seen, "agent")
        if name == LOCAL:
            t.problem("name", f'"{LOCAL}" names the bot\'s own probes; give the agent another name, such as "tokyo"')
        secret = t.secret("secret", required=True, why=" (the secret the agent signs its requests with)")
        interval = t.seconds("report_interval", Agent.report_interval, minimum=2, maximum=86400)
        if secret is not None:
            agents.append(Agent(name, secret, interval))
        t.finish()
    return agents


def _retry_interval(t: Table, interval: float) -> float:
    # left out: 30s, but never longer than the site's own interval (a 5s demo site retries every 5s)
    retry = t.seconds("retry_interval", min(30.0, interval), minimum=5, maximum=86400)
    if retry > interval:
        t.problem(
            "retry_interval",
            f"must not be longer than interval ({human_seconds(interval)}), got {quoted(t.raw('retry_interval'))}",
        )
        return interval
    return retry


def _https_url(t: Table, url: str) -> tuple[str, int, str]:
    if not url:
        return "", 443, "/"
    try:
        return split_https_url(url)
    except ValueError as exc:
        t.problem("url", str(exc))
        return "", 443, "/"


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
    """A regular file that must exist; a relative name is relative to the config file's folder.

    ssl and WinRM read these later with no limit of their own: a named pipe would hang them."""
    name = t.string(key)
    if name is None:
        return None
    path = base / name
    problem = files.problem_with(path, cap=files.CERT_CAP, what="a certificate or key file")
    if problem:
        t.problem(key, problem)
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
        parts = _split_url(t, "address", address) if address else None
        scheme = parts.scheme if parts else ""
        if parts and (scheme not in ("http", "https") or not parts.hostname):
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
                check_interval=t.seconds("check_interval", Host.check_interval, minimum=60, maximum=7 * 86400),
                renewal_grace=t.seconds("renewal_grace", Host.renewal_grace, minimum=0, maximum=30 * 86400),
                max_response_bytes=t.whole(
                    "max_response_bytes",
                    Host.max_response_bytes,
                    unit="bytes",
                    minimum=64 * 1024,
                    maximum=1024 * 1024 * 1024,
                    hint=" (the default, 16 MiB, is ample for every action)",
                ),
                report_secret=t.secret("report_secret", required=False),
                report_interval=t.seconds("report_interval", Host.report_interval, minimum=10, maximum=7 * 86400),
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


def _redacted(url: str) -> str:
    """redact_url() that never raises: an unreadable URL keeps its scheme and host part only."""
    try:
        return redact_url(url)
    except ValueError:
        head = "/".join(url.split("/", 3)[:3])
        return f"{head}/…" if len(head) < len(url) else head


def _split_url(t: Table, key: str, url: str, *, shown: str | None = None) -> SplitResult | None:
    """The URL's parts, or None after one problem: not a URL, a user name or password, a bad port.

    `shown`: what messages quote of the URL (its password is masked in any case)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed "[" of an IPv6 address
        t.problem(
            key,
            "is not a URL that can be read (an IPv6 address goes in brackets, such as "
            f'"https://[2001:db8::1]/"), got {quoted(shown or url)}',
        )
        return None
    if "@" in parts.netloc:
        t.problem(key, "must not contain a user name or password: secrets never go in the config file")
        return None
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        t.problem(key, f"has an invalid port: {quoted(shown or url)}")
        return None
    return parts


def _api_url(t: Table) -> str | None:
    url = t.string("api_url")
    if url is None:
        return None
    parts = _split_url(t, "api_url", url)
    if parts is not None and (parts.scheme not in ("http", "https") or not parts.hostname):
        t.problem("api_url", f"must be an http:// or https:// URL, got {quoted(url)}")
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
    # optional at first: without it incidents are not pushed, and the bot names each group it joins
    to = t.string("to")
    secret = t.secret("channel_secret", required=True)
    token = t.secret("access_token", required=True)
    api_url = _api_url(t)
    t.finish()
    if secret is None or token is None:
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
        people=_people(t),
        rate_per_person=_per_minute(t, "rate_per_person", 6, "per person"),
        rate_per_host=_per_minute(t, "rate_per_host", 20, "to one host, whoever asks"),
    )
    for action in policy.two_person:
        if action in policy.auto_heal:
            t.problem("auto_heal", f"{action} is also in two_person: choose one (auto_heal would skip both approvals)")
        allowed = policy.action_approvers.get(action, policy.approvers)
        people = {policy.person(p) for p in allowed}
        if len(people) < 2 and not any(p.startswith("slack-group:") for p in allowed):
            t.problem("two_person", f"{action} needs two different approvers, but only {len(people)} may approve it")
    t.finish()
    return policy


def _per_minute(t: Table, key: str, default: int, whom: str) -> int:
    hint = f" (commands that reach a host, {whom})"
    return t.whole(key, default, unit="commands per minute", minimum=1, maximum=1000, hint=hint)


def _people(t: Table) -> dict[str, str]:
    """[policy.people] alice = ["slack:U…", "line:U…"] -> {identity: "alice"}."""
    table = Table(t.raw("people") or {}, t.key_path("people"), t.issues)
    people: dict[str, str] = {}
    for person in list(table.data):
        if not isinstance(person, str) or not NAME.match(person):
            table.problem(str(person), f"a person's name must use {NAME_RULE}")
            table.seen.add(person)
            continue
        for identity in _principals(table, person):
            if identity.startswith("slack-group:"):
                table.problem(person, f"lists {identity}: a group is not one person's identity")
            elif people.setdefault(identity, person) != person:
                table.problem(person, f"lists {identity}, which is already {people[identity]}'s")
    table.finish()
    return people


def _maintenance(value: Any, site_names: list[str], tz: dt.tzinfo, issues: list[ConfigIssue]) -> list[Maintenance]:
    windows = []
    for index, item in enumerate(_array_of_tables(value, "maintenance", issues)):
        t = Table(item, f"maintenance[{index}]", issues)
        before = len(issues)
        sites = _window_sites(t, site_names)
        reason = t.string("reason", required=True, hint=' (shown in chat, e.g. "monthly patching")') or ""
        one_off = t.has("start") or t.has("end")
        repeating = t.has("cron") or t.has("duration")
        start = end = None
        cron, duration = None, None  # both stay None in a one-off window
        if one_off and repeating:
            for key in ("start", "end", "cron", "duration"):
                t.raw(key)  # one problem for the table, not four unknown keys
            t.problem(
                "",
                f"use start and end (one window) or cron and duration (a repeating window), not both: "
                f"either {ONE_OFF_EXAMPLE}, or {REPEATING_EXAMPLE}",
            )
        elif one_off:
            start, end = _moment(t, "start"), _moment(t, "end")
            if start is not None and end is not None and end <= start:
                t.problem("end", f"must be after start ({start.isoformat()}), got {end.isoformat()}")
        elif repeating:
            cron = _cron(t, tz)
            duration = t.seconds("duration", 3600.0, minimum=60, maximum=7 * 86400)
            if not t.has("duration"):
                t.problem("duration", 'is required with cron: how long each window lasts, such as "2h"')
        else:
            t.problem(
                "",
                f"needs start and end (one window, such as {ONE_OFF_EXAMPLE}) "
                f"or cron and duration (a repeating window, such as {REPEATING_EXAMPLE})",
            )
        t.finish()
        if len(issues) == before:  # a window with a problem is never built: the whole config is refused
            windows.append(Maintenance(sites, reason, start, end, cron, duration, tz))
    return windows


def _window_sites(t: Table, site_names: list[str]) -> tuple[str, ...]:
    if not t.has("sites"):
        t.problem("sites", 'is required: the names of the [[sites]] this window covers, or ["*"] for every site')
        return ()
    before = len(t.issues)
    names = t.string_list("sites")
    if len(t.issues) > before:
        return ()
    if not names:
        t.problem("sites", 'must name at least one [[sites]] entry, or be ["*"] for every site')
    elif "*" in names and len(names) > 1:
        t.problem("sites", '"*" already means every site: write ["*"] alone, or list site names')
    for i, name in enumerate(names):
        if name != "*" and name not in site_names:
            hint = did_you_mean(name, site_names) or f" (known sites: {', '.join(site_names) or 'none are configured'})"
            t.problem(f"sites[{i}]", f'names no [[sites]] entry: "{name}"{hint}')
    return tuple(names)


def _moment(t: Table, key: str) -> dt.datetime | None:
    """A date and time with its UTC offset: in quotes (ISO 8601) or written bare, as TOML allows."""
    value = t.raw(key)
    if value is None:
        other = "end" if key == "start" else "start"
        t.problem(key, f"is required with {other}, such as {ONE_OFF_EXAMPLE}")
        return None
    moment: Any = value
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())  # 3.11 reads "Z" as well as "+01:00"
        except ValueError:
            moment = None
    if isinstance(moment, dt.datetime) and moment.utcoffset() is not None:
        return moment
    t.problem(
        key,
        'must be a date and time with its UTC offset, such as "2026-12-24T22:00:00+01:00" or '
        f'"2026-12-24T21:00:00Z", got {quoted(value)}',
    )
    return None


def _cron(t: Table, tz: dt.tzinfo) -> str | None:
    rule = t.string("cron", required=True, hint=f" with duration, such as {REPEATING_EXAMPLE}")
    if rule is None:
        return None
    fields = rule.split()
    if len(fields) == 5 and re.search(r"[0-9]", re.sub(r"/[0-9]+", "", fields[4])):
        # crontab counts 0 as Sunday, APScheduler 3 as Monday: a number would silently pick the wrong day
        t.problem(
            "cron",
            "write the day of the week as a name (sun, mon, tue, wed, thu, fri, sat, or a range such as mon-fri): "
            f"day numbers mean different days to crontab and to certops, got {quoted(rule)}",
        )
        return None
    try:
        trigger = cron_trigger(rule, tz)
    except ValueError as exc:
        t.problem(
            "cron",
            'must be a crontab rule "MINUTE HOUR DAY MONTH WEEKDAY" such as "0 2 * * sun" (02:00 every Sunday), '
            f"got {quoted(rule)}: {exc}",
        )
        return None
    if trigger.get_next_fire_time(None, dt.datetime.now(dt.UTC)) is None:
        t.problem("cron", f"never matches a date (such as February 30), got {quoted(rule)}")
        return None
    return rule
