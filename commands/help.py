from __future__ import annotations

from commands.context import Context
from commands.model import Field, Outcome, Reply, Request
from commands.registry import COMMANDS, UsageError, command, shown


@command("help", "help [command]", max_args=1)
async def help_command(ctx: Context, request: Request, args: list[str]) -> Outcome:
    """Lists the commands, or explains one: /ssl help heal."""
    if args:
        spec = COMMANDS.get(args[0])
        if spec is None:
            raise UsageError(f"There is no /ssl {shown(args[0])}. Try /ssl help.")
        return Outcome(Reply(f"/ssl {spec.usage}", lines=tuple(spec.help.splitlines()), private=True))
    fields = tuple(Field(f"/ssl {c.usage}", c.summary) for c in COMMANDS.values())
    return Outcome(Reply("certops commands", fields=fields, private=True))
