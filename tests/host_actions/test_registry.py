"""One registry of host actions: the CLI, the buttons, the policy, the recheck and the runner all
read it, and a request's words are checked against each action's parameters before any traffic."""

from __future__ import annotations

import ast
import asyncio
import inspect
from pathlib import Path

import pytest

from bot.config import ConfigError, load_config
from bot.core.model import ActionRequest, RequestState
from bot.services import HostActionRunner
from commands.render import button_for
from host_actions.errors import InvalidParameter
from host_actions.registry import ACTIONS, NAMES, host_action
from host_actions.simulator.scenarios import multi_host_site
from tests.host_actions.conftest import PASSWORD_ENV, SimFactory

REPO = Path(__file__).resolve().parents[2]


def test_every_changing_action_can_say_what_it_would_do_without_doing_it() -> None:
    lacking = [
        a.name for a in ACTIONS.values() if a.changes_host and "what_if" not in inspect.signature(a.runner).parameters
    ]
    assert lacking == []


def test_every_action_a_diagnosis_proposes_is_in_the_registry() -> None:
    tree = ast.parse((REPO / "host_actions" / "diagnose.py").read_text(encoding="utf-8"))
    proposed = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "Proposal"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert proposed
    assert proposed <= set(NAMES)


def test_a_request_s_words_bind_to_the_runner_s_keywords() -> None:
    rebind = host_action("rebind")
    tp = "AB" * 20
    assert rebind.bind(["Shop", tp, "--binding=www.example.net:443", "--shared-socket"]) == {
        "site": "Shop",
        "thumbprint": tp,
        "bindings": ["www.example.net:443"],
        "shared_socket": True,
    }
    assert host_action("renew").bind(["abc", "--force"]) == {"renewal_id": "abc", "force": True}
    assert host_action("renew").bind([]) == {"force": False}
    assert host_action("audit-tasks").bind([]) == {}


@pytest.mark.parametrize(
    ("action", "words", "says"),
    [
        ("repair-store", [], "repair-store takes THUMBPRINT; 0 value(s) given."),
        ("repair-store", ["AB" * 20, "more"], "repair-store takes THUMBPRINT; 2 value(s) given."),
        ("repair-store", ["'; Remove-Item C:\\"], "A thumbprint is 40 hexadecimal characters"),
        ("audit-tasks", ["--force"], "audit-tasks takes no --force; it takes no arguments."),
        ("rebind", ["Shop", "AB" * 20, "--binding="], "--binding needs a value: --binding=BINDING."),
    ],
)
def test_a_wrong_request_is_refused_with_a_sentence_that_says_what_the_action_takes(
    action: str, words: list[str], says: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        host_action(action).bind(words)
    assert says in caught.value.message


def test_an_unknown_action_names_the_actions_there_are() -> None:
    with pytest.raises(InvalidParameter) as caught:
        host_action("reboot")
    assert caught.value.message.startswith(
        "certops has no host action 'reboot'; the actions are diagnose, repair-store"
    )


def test_the_policy_accepts_exactly_the_registry_s_action_names(tmp_path: Path) -> None:
    path = tmp_path / "certops.toml"
    path.write_text(f"[policy]\nauto_heal = {list(NAMES)!r}\n".replace("'", '"'), encoding="utf-8")
    assert load_config(path).policy.auto_heal == NAMES
    path.write_text('[policy]\nauto_heal = ["reboot"]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "unknown action" in caught.value.render()
    assert ", ".join(NAMES) in caught.value.render()


def test_buttons_take_their_label_and_style_from_the_registry() -> None:
    for action in ACTIONS.values():
        request = ActionRequest(
            token="t" * 16, incident_id=None, site=None, host="iis01", action=action.name, args=(), target="x",
            state=RequestState.PENDING, requested_by="u", created_at="", expires_at="", result=None,
        )  # fmt: skip
        button = button_for(request)
        assert button.label == action.label
        assert button.style == ("danger" if action.danger else "primary")


def test_a_button_can_rebind_one_named_binding_through_the_runner(make_sim: SimFactory, tmp_path: Path) -> None:
    model = multi_host_site()
    model.add_cert(["www.example.net", "api.example.net"], days_old=0.5, friendly_name="both")
    both = next(c for c in model.certs if c.friendly_name == "both")
    api = next(c for c in model.certs if c.friendly_name == "api")
    sim, _host = make_sim(model)
    path = tmp_path / "certops.toml"
    path.write_text(
        f'[[hosts]]\nname = "iis01"\naddress = "{sim.url}"\ntransport = "basic"\nusername = "certops"\n'
        f'password_env = "{PASSWORD_ENV}"\nallow_insecure_basic = true\n',
        encoding="utf-8",
    )
    runner = HostActionRunner(load_config(path))
    outcome = asyncio.run(runner.run("iis01", "rebind", ("Shop", both.thumbprint, "--binding=www.example.net:443")))
    assert outcome.ok, outcome.summary
    served = {h.endpoint: h.thumbprint for h in sim.model.http_bindings}
    assert served["www.example.net:443"] == both.thumbprint
    assert served["api.example.net:443"] == api.thumbprint
