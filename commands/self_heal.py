from __future__ import annotations

from commands.common import admit, find_host
from commands.context import Context, FindingView
from commands.model import Outcome, Reply, Request, Tone
from commands.proposals import offer
from commands.registry import UsageError, command
from host_actions.layer_config import SELF_HEAL_TASK, interval_minutes, missing_report_settings

USAGE = "install-self-heal <host> [--repair]"


@command("install-self-heal", USAGE, min_args=1, max_args=2)
async def install_self_heal(ctx: Context, request: Request, args: list[str]) -> Outcome:
    """Offers to install the self-heal task (Layer 2) on a host, for an approver to press.

    The task runs as SYSTEM every report_interval, tests the key and the binding of every https
    site on the host, and reports to certops ([bot] public_url), signed with the host's
    report_secret; with --repair it also repairs broken key links. Nothing changes on the host
    until an approver presses the button; installing again changes only what differs."""
    host = find_host(ctx, args[0])
    extra = [a.lower() for a in args[1:]]
    if extra not in ([], ["--repair"]):
        raise UsageError(f"Usage: /ssl {USAGE}")
    missing = missing_report_settings(host)
    if missing:
        return Outcome(
            Reply(
                f"Self-heal cannot be installed on {host.name} yet",
                Tone.WARNING,
                (f"It reports to certops, so the config needs {' and '.join(missing)}.", "Nothing was proposed."),
                private=True,
            )
        )
    await admit(ctx, request.who, host.name, "install-self-heal")
    repair = bool(extra)
    what = (
        f"Install {SELF_HEAL_TASK} on {host.name}: every {interval_minutes(host.report_interval)} min as SYSTEM, "
        + ("checks and repairs broken key links" if repair else "checks and reports, repairs nothing")
        + ", and reports to certops."
    )
    proposal = FindingView("install_self_heal", "info", what, "install-self-heal", tuple(extra))
    buttons, notes = await offer(ctx, [proposal], host=host.name, site=None, incident_id=None, who=request.who)
    return Outcome(Reply(f"Self-heal on {host.name}", Tone.INFO, (what, *notes), buttons=tuple(buttons)))
