"""The host actions, one module each. Every value is validated before the first request;
every action opens one shell, runs at most a few commands in it, and verifies its own effect.
`host_actions.registry` names them for the CLI, the buttons, the policy and the audit log.
"""

from host_actions.actions.binding_check import binding_report, verify_binding
from host_actions.actions.diagnosis import diagnose_host
from host_actions.actions.post_renew_step import (
    POST_RENEW_SCRIPT,
    add_post_renew_step,
    post_renew_script_path,
    with_script_step,
)
from host_actions.actions.rebinding import rebind
from host_actions.actions.renewal import RELEVANT_WACS_LINE, renew
from host_actions.actions.repair import repair_store
from host_actions.actions.result import ActionResult
from host_actions.actions.self_heal_install import install_self_heal
from host_actions.actions.task_audit import audit_tasks
from host_actions.actions.task_retire import retire_task

__all__ = [
    "POST_RENEW_SCRIPT",
    "RELEVANT_WACS_LINE",
    "ActionResult",
    "add_post_renew_step",
    "audit_tasks",
    "binding_report",
    "diagnose_host",
    "install_self_heal",
    "post_renew_script_path",
    "rebind",
    "renew",
    "repair_store",
    "retire_task",
    "verify_binding",
    "with_script_step",
]
