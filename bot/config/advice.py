"""What `certops check-config` says beyond "valid": settings that do nothing in this setup
(warnings), and secrets that can be read but are of the wrong kind (errors).

A warning names the key and says why it does nothing; it never changes the exit code. Everything
here reads a Config that has already passed `bot.config.load`, and never shows a secret's value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.config.model import Config
from bot.config.secrets import SecretUnavailable
from host_actions.target import Secret

EXAMPLE = "deploy/certops.example.toml"

# identities by the chat they press buttons in; a console identity presses in `certops run --console`
_PLATFORM_OF_PREFIX = {"slack:": "slack", "slack-group:": "slack", "line:": "line"}


def plural(count: int, word: str, many: str | None = None) -> str:
    """1 -> "1 host", 2 -> "2 hosts" (`many` for a word whose plural is not word + "s")."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


@dataclass(frozen=True)
class Advice:
    key: str  # the config path the warning is about; "" for the file as a whole
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


def warnings(config: Config) -> list[Advice]:
    """Settings that are valid but do nothing in this setup, each with its key and the reason."""
    found: list[Advice] = []
    found += _empty(config)
    found += _actions_without_hosts(config)
    found += _approvers_without_chat(config)
    found += _chats_nobody_can_press(config)
    found += _host_keys_unused(config)
    found += _slack_keys_unused(config)
    found += _reports_unreachable(config)
    if config.line is not None and config.line.to is None:
        found.append(
            Advice(
                "chat.line.to",
                "not set: incidents are not pushed to LINE. Add the bot to the group that should get them: "
                'it answers there with the group\'s id, to copy into to = "C…"',
            )
        )
    return found


def _reports_unreachable(config: Config) -> list[Advice]:
    secrets = [i for i, h in enumerate(config.hosts) if h.report_secret is not None]
    if not secrets or config.bot.public_url:
        return []
    return [
        Advice(
            "bot.public_url",
            f"not set, though report_secret is set for {plural(len(secrets), 'host')}: certops host "
            "install-self-heal and add-post-renew-step cannot tell a host where to send its reports. "
            "Set it to the address the hosts reach certops at, such as "
            'public_url = "https://certops.example.com" (docs/report-api.md)',
        )
    ]


def _empty(config: Config) -> list[Advice]:
    if config.sites or config.hosts or config.slack or config.line:
        return []
    return [
        Advice(
            "",
            "the config is empty: certops has nothing to probe. Add a [[sites]] table for each website "
            '(name = "www" and url = "https://www.example.com/"), then [[hosts]] for its IIS servers '
            f"and [chat.slack] or [chat.line]; {EXAMPLE} has every key with a comment",
        )
    ]


def _actions_without_hosts(config: Config) -> list[Advice]:
    if config.hosts:
        return []
    policy = config.policy
    why = "no [[hosts]] are configured, so no host action is ever proposed or run"
    found = [
        Advice(f"policy.auto_heal[{i}]", f"{action} does nothing: {why}") for i, action in enumerate(policy.auto_heal)
    ]
    found += [
        Advice(f"policy.two_person[{i}]", f"{action} does nothing: {why}") for i, action in enumerate(policy.two_person)
    ]
    found += [
        Advice(f"policy.action_approvers.{action}", f"does nothing: {why}")
        for action in policy.action_approvers
        if action != "mute"  # /ssl mute needs no host
    ]
    return found


def _approvers_without_chat(config: Config) -> list[Advice]:
    configured = {name for name, part in (("slack", config.slack), ("line", config.line)) if part is not None}
    found = []
    for key, identities in _approver_lists(config):
        for i, identity in enumerate(identities):
            platform = _platform(identity)
            if platform is not None and platform not in configured:
                found.append(
                    Advice(
                        f"{key}[{i}]",
                        f"{identity} can never press a button or run a command: there is no [chat.{platform}] table",
                    )
                )
    return found


def _chats_nobody_can_press(config: Config) -> list[Advice]:
    if not config.hosts:
        return []  # buttons are offered for host actions only: without hosts there is nothing to press
    found = []
    for platform, part in (("slack", config.slack), ("line", config.line)):
        if part is None:
            continue
        if not any(_platform(p) == platform for _key, identities in _approver_lists(config) for p in identities):
            prefixes = '"slack:U…" or "slack-group:S…"' if platform == "slack" else '"line:U…"'
            found.append(
                Advice(
                    f"chat.{platform}",
                    f"nobody can press its buttons: [policy] approvers lists no {platform} identity "
                    f"({prefixes}), so every repair proposed there waits for an approver it cannot have",
                )
            )
    return found


def _host_keys_unused(config: Config) -> list[Advice]:
    found = []
    for index, host in enumerate(config.hosts):
        key = f"hosts[{index}]"
        if host.allow_insecure_basic and not (host.transport == "basic" and host.address.startswith("http://")):
            found.append(
                Advice(
                    f"{key}.allow_insecure_basic",
                    "does nothing: it only allows transport basic over an http:// address, and this host uses "
                    f"{host.transport} over {host.address.partition(':')[0]}://",
                )
            )
        if host.transport != "certificate":
            for name, value in (("cert_file", host.cert_file), ("key_file", host.key_file)):
                if value is not None:
                    found.append(
                        Advice(
                            f"{key}.{name}",
                            f'does nothing: it is read for transport "certificate" only, and this host uses '
                            f'"{host.transport}"',
                        )
                    )
    return found


def _slack_keys_unused(config: Config) -> list[Advice]:
    slack = config.slack
    if slack is None:
        return []
    if slack.mode == "socket" and slack.signing_secret is not None:
        return [
            Advice(
                slack.signing_secret.key_path,
                "does nothing in socket mode: Slack signs only the requests of http mode",
            )
        ]
    if slack.mode == "http" and slack.app_token is not None:
        return [
            Advice(
                slack.app_token.key_path,
                "does nothing in http mode: the app-level token opens socket mode connections only",
            )
        ]
    return []


def _approver_lists(config: Config) -> Iterable[tuple[str, tuple[str, ...]]]:
    yield "policy.approvers", config.policy.approvers
    for action, identities in config.policy.action_approvers.items():
        yield f"policy.action_approvers.{action}", identities


def _platform(identity: str) -> str | None:
    return next((p for prefix, p in _PLATFORM_OF_PREFIX.items() if identity.startswith(prefix)), None)


# secrets ----------------------------------------------------------------------------------------

BOT_PREFIX = "xoxb-"
APP_PREFIX = "xapp-"
_SLACK_KINDS = (
    ("xoxb-", "a bot token"),
    ("xapp-", "an app-level token"),
    ("xoxp-", "a user token"),
    ("xoxe-", "a refresh token"),
    ("xox", "a Slack token of another kind"),
)
_ROTATED = "xoxe."  # token rotation: "xoxe.xoxb-…" is still a bot token


@dataclass(frozen=True)
class SecretProblems:
    unreadable: tuple[str, ...] = ()  # cannot be read now (not set, set but empty, both set, a bad file)
    wrong_kind: tuple[str, ...] = ()  # read, but a Slack token of another kind

    def all(self) -> list[str]:
        return [*self.unreadable, *self.wrong_kind]


def secret_problems(config: Config) -> SecretProblems:
    """Every configured secret that cannot be read now, or holds a Slack token of the wrong kind,
    as user-safe sentences (a kind is named by its public prefix, never by the value)."""
    expected: dict[str, tuple[str | None, str]] = {}  # key path -> (prefix, where to find it)
    if config.slack is not None:
        slack = config.slack
        expected[slack.bot_token.key_path] = (
            BOT_PREFIX,
            "the Bot User OAuth Token, under OAuth & Permissions in the Slack app's settings",
        )
        if slack.app_token is not None:
            expected[slack.app_token.key_path] = (
                APP_PREFIX,
                "an app-level token with the connections:write scope, under Basic Information",
            )
        if slack.signing_secret is not None:
            expected[slack.signing_secret.key_path] = (None, "the Signing Secret, under Basic Information")
    unreadable, wrong_kind = [], []
    for ref in config.secret_refs():
        try:
            value = ref.resolve()
        except SecretUnavailable as exc:
            unreadable.append(str(exc))
            continue
        key = getattr(ref, "key_path", "")
        if key in expected:
            problem = _wrong_slack_kind(key, ref, value, *expected[key])
            if problem:
                wrong_kind.append(problem)
    return SecretProblems(tuple(unreadable), tuple(wrong_kind))


def _wrong_slack_kind(key: str, ref: Secret, value: str, prefix: str | None, where: str) -> str | None:
    """Only a value with another Slack prefix is refused: a value with none may be a stand-in."""
    value = value.strip().removeprefix(_ROTATED)
    if prefix is not None and value.startswith(prefix):
        return None
    found, kind = next(((start, name) for start, name in _SLACK_KINDS if value.startswith(start)), ("", ""))
    if not kind:
        return None
    head = f"{key}: " if key else ""
    if prefix is None:
        return (
            f"{head}{ref.describe()} holds {kind} ({found}…), not a signing secret: give {where} "
            "(32 hexadecimal characters)"
        )
    return f"{head}{ref.describe()} holds {kind} ({found}…) where one starting with {prefix} belongs: give {where}"
