"""What the host-side layers need from the config before certops can install them: where they
report and with which secret, and how often the self-heal task runs. No network code: the chat
commands read it to say what is missing before they offer a button (host_actions.actions.layer_files
does the installing side)."""

from __future__ import annotations

from host_actions.target import Host

FOLDER = "%ProgramData%\\certops"  # where the layers and their report configuration live on a host
SELF_HEAL_TASK = "\\certops\\certops self-heal"  # Layer 2's task (install-self-heal)


def interval_minutes(seconds: float) -> int:
    """report_interval as the self-heal task's repetition: whole minutes (half up), at least one."""
    return max(1, int(seconds / 60 + 0.5))


def missing_report_settings(host: Host, *, explain: bool = True) -> list[str]:
    """The config keys to set before the host's layers can report; [] when both are set."""
    missing = []
    if not host.report_url:
        missing.append(
            '[bot] public_url (the address the hosts reach certops at, e.g. "https://certops.example.com")'
            if explain
            else "[bot] public_url"
        )
    if host.report_secret is None:
        missing.append(
            f"report_secret_env or report_secret_file in the [[hosts]] entry for {host.name} (the secret its "
            "reports are signed with; make one with openssl rand -hex 32)"
            if explain
            else f"report_secret_env (or report_secret_file) for {host.name}"
        )
    return missing
