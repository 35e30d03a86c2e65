"""Every host action by name: what it is called on a button, whether it changes the host, whether
it is diagnosed again before it runs, its parameters, and the function that runs it.

The CLI builds its subcommands from this table, the chat side labels its buttons from it, the
config checks `[policy]` action names against it and the audit log describes runs with it, so an
action is added (or renamed) in one place.

A request carries its arguments as strings (they are stored with the button): positional values
in order, a switch as its own word (`--force`), an option as `--name=value` (repeatable).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import import_module
from typing import TYPE_CHECKING, Any, Literal

from host_actions import validate
from host_actions.errors import InvalidParameter
from host_actions.target import Host

if TYPE_CHECKING:
    from host_actions.actions import ActionResult

ParamKind = Literal["positional", "optional", "switch", "option"]


@dataclass(frozen=True)
class Param:
    name: str  # the runner's keyword
    metavar: str  # how the CLI and the help text show it
    help: str
    kind: ParamKind = "positional"
    check: Callable[[str], str] | None = None  # refuses a bad value before anything is sent
    typed: str = ""  # a switch or option as typed, when not the keyword's: --binding for bindings

    @property
    def word(self) -> str:
        """The switch or option as typed: --shared-socket, --binding."""
        return self.typed or "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class HostAction:
    name: str
    label: str  # the button's text
    help: str  # one line for --help and the docs
    changes_host: bool
    rechecked: bool  # its target can go stale while a button waits: diagnose again right before
    params: tuple[Param, ...]
    runs: str  # "module:function": imported when it first runs, so that reading the table is cheap
    danger: bool = False  # shown as a dangerous button and confirmed twice over

    @property
    def runner(self) -> Callable[..., ActionResult]:
        module, _, name = self.runs.partition(":")
        runner: Callable[..., ActionResult] = getattr(import_module(module), name)
        return runner

    def bind(self, args: Sequence[str]) -> dict[str, Any]:
        """The runner's keyword arguments from a request's words; InvalidParameter names what is wrong."""
        positional = [p for p in self.params if p.kind in ("positional", "optional")]
        values: dict[str, Any] = {p.name: [] for p in self.params if p.kind == "option"}
        values.update({p.name: False for p in self.params if p.kind == "switch"})
        given: list[str] = []
        for arg in args:
            if not arg.startswith("--"):
                given.append(arg)
                continue
            word, _, value = arg.partition("=")
            param = next((p for p in self.params if p.word == word and p.kind in ("switch", "option")), None)
            if param is None:
                raise InvalidParameter(f"{self.name} takes no {word}; it takes {self.usage() or 'no arguments'}.")
            if param.kind == "switch":
                values[param.name] = True
            else:
                values[param.name].append(_checked(param, value))
        required = [p for p in positional if p.kind == "positional"]
        if not len(required) <= len(given) <= len(positional):
            raise InvalidParameter(f"{self.name} takes {self.usage() or 'no arguments'}; {len(given)} value(s) given.")
        for param, value in zip(positional, given, strict=False):
            values[param.name] = _checked(param, value)
        return values

    def run(self, host: Host, args: Sequence[str], *, what_if: bool = False) -> ActionResult:
        """Runs the action (blocking: call it on a WinRM worker thread). With `what_if`, a changing
        action does every read-only check and says what it would change, changing nothing."""
        values = self.bind(args)
        if what_if and self.changes_host:
            values["what_if"] = True
        return self.runner(host, **values)

    def usage(self) -> str:
        words = []
        for p in self.params:
            if p.kind == "positional":
                words.append(p.metavar)
            elif p.kind == "optional":
                words.append(f"[{p.metavar}]")
            elif p.kind == "switch":
                words.append(f"[{p.word}]")
            else:
                words.append(f"[{p.word}={p.metavar} ...]")
        return " ".join(words)


def _checked(param: Param, value: str) -> str:
    if param.kind == "option" and not value:
        raise InvalidParameter(f"{param.word} needs a value: {param.word}={param.metavar}.")
    return param.check(value) if param.check else value


THUMBPRINT = Param("thumbprint", "THUMBPRINT", "the certificate's SHA-1 thumbprint (40 hex digits)",
                   check=validate.thumbprint)  # fmt: skip
TASK_PATH = Param("task_path", "TASKPATH", "the task's full path, e.g. \\SSL-PostRenew", check=validate.task_path)
RENEWAL_ID = Param("renewal_id", "RENEWAL_ID", "the win-acme renewal id", check=validate.renewal_id)
IIS_SITE_HELP = "the IIS site name as IIS Manager shows it (not the [[sites]] name); an unknown one lists the sites"


ACTIONS: Mapping[str, HostAction] = {
    a.name: a
    for a in (
        HostAction(
            "diagnose",
            "Diagnose",
            "inventory the host and list findings with proposed actions",
            changes_host=False,
            rechecked=False,
            params=(),
            runs="host_actions.actions.diagnosis:diagnosis_result",
        ),
        HostAction(
            "repair-store",
            "Repair store",
            "rebuild a certificate's key link (certutil -repairstore), then test the key again",
            changes_host=True,
            rechecked=True,
            params=(THUMBPRINT,),
            runs="host_actions.actions:repair_store",
        ),
        HostAction(
            "verify-binding",
            "Verify binding",
            "check that https bindings use the newest usable certificate",
            changes_host=False,
            rechecked=False,
            params=(Param("site", "SITE", IIS_SITE_HELP, "optional", validate.site_name),),
            runs="host_actions.actions:verify_binding",
        ),
        HostAction(
            "rebind",
            "Fix binding",
            "point the https bindings of an IIS site whose host names the certificate covers at it",
            changes_host=True,
            rechecked=True,
            params=(
                Param("site", "SITE", IIS_SITE_HELP, check=validate.site_name),
                THUMBPRINT,
                Param(
                    "bindings",
                    "BINDING",
                    "only this binding (IP:port:host, host:port or a host name; repeatable)",
                    "option",
                    typed="--binding",
                ),
                Param("shared_socket", "", "also a binding without SNI whose IP:port other bindings share", "switch"),
            ),
            runs="host_actions.actions:rebind",
        ),
        HostAction(
            "renew",
            "Renew now",
            "run a win-acme renewal now",
            changes_host=True,
            rechecked=False,
            params=(
                replace(RENEWAL_ID, kind="optional", help="the win-acme renewal id (every due renewal without it)"),
                Param("force", "", "renew even if not due (needs RENEWAL_ID)", "switch"),
            ),
            runs="host_actions.actions:renew",
            danger=True,
        ),
        HostAction(
            "audit-tasks",
            "Audit tasks",
            "audit the scheduled tasks outside \\Microsoft\\",
            changes_host=False,
            rechecked=False,
            params=(),
            runs="host_actions.actions:audit_tasks",
        ),
        HostAction(
            "retire-task",
            "Disable legacy task",
            "disable a task the audit flagged and rename the scripts only it uses",
            changes_host=True,
            rechecked=False,
            params=(TASK_PATH,),
            runs="host_actions.actions:retire_task",
            danger=True,
        ),
        HostAction(
            "add-post-renew-step",
            "Add post-renew step",
            "add the certops repair-and-verify script (Layer 3, it reports each run) to a renewal, after its IIS step",
            changes_host=True,
            rechecked=False,
            params=(RENEWAL_ID,),
            runs="host_actions.actions:add_post_renew_step",
        ),
        HostAction(
            "install-self-heal",
            "Install self-heal",
            "install the self-heal task (Layer 2): a check as SYSTEM every report_interval that reports to certops",
            changes_host=True,
            rechecked=False,
            params=(
                Param(
                    "repair",
                    "",
                    "let the task also repair broken key links (self-heal.ps1 -Repair: certutil -repairstore)",
                    "switch",
                ),
            ),
            runs="host_actions.actions.self_heal_install:install_self_heal",
        ),
    )
}
NAMES: tuple[str, ...] = tuple(ACTIONS)


def host_action(name: str) -> HostAction:
    """The action called `name`; InvalidParameter lists the actions there are."""
    action = ACTIONS.get(name)
    if action is None:
        raise InvalidParameter(f"certops has no host action {name!r}; the actions are {', '.join(NAMES)}.")
    return action


def label(name: str) -> str:
    action = ACTIONS.get(name)
    return action.label if action else name


__all__ = ["ACTIONS", "NAMES", "HostAction", "Param", "host_action", "label"]
