"""The keys that bound what one person, one host and one answer can cost are read and checked."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, parse_config

SLACK = "slack:U0ADA"
LINE = "line:U0123456789abcdef0123456789abcdef"
MINIMAL = '[[sites]]\nname = "www"\nurl = "https://www.example.com/"\n'
HOST = (
    '[[hosts]]\nname = "iis01"\naddress = "https://iis01.example.com:5986/wsman"\n'
    'username = "svc"\npassword_env = "IIS01_PASSWORD"\n'
)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return [str(issue) for issue in caught.value.issues]


def test_the_defaults_follow_no_redirect_and_cap_an_answer_at_16_mib() -> None:
    config = parse_config(MINIMAL + HOST)
    assert config.sites[0].follow_redirects is False
    assert config.hosts[0].max_response_bytes == 16 * 1024 * 1024
    assert (config.policy.rate_per_person, config.policy.rate_per_host) == (6, 20)
    assert config.policy.people == {}


def test_the_keys_are_read_when_given() -> None:
    config = parse_config(
        MINIMAL + "follow_redirects = true\n" + HOST + "max_response_bytes = 1048576\n"
        "[policy]\nrate_per_person = 2\nrate_per_host = 5\n"
    )
    assert config.sites[0].follow_redirects is True
    assert config.hosts[0].max_response_bytes == 1048576
    assert (config.policy.rate_per_person, config.policy.rate_per_host) == (2, 5)


def test_an_answer_cap_too_small_to_hold_a_diagnosis_is_refused() -> None:
    found = problems(MINIMAL + HOST + "max_response_bytes = 1000\n")
    assert len(found) == 1
    assert found[0].startswith("hosts[0].max_response_bytes: must be at least 65536")


def test_people_map_each_identity_to_one_person() -> None:
    config = parse_config(f'[policy.people]\nalice = ["{SLACK}", "{LINE}"]\nbob = ["console:bob"]\n')
    assert config.policy.person(SLACK) == config.policy.person(LINE) == "alice"
    assert config.policy.person("console:bob") == "bob"
    assert config.policy.person("slack:U0OTHER") == "slack:U0OTHER"


def test_one_identity_claimed_by_two_people_is_refused() -> None:
    found = problems(f'[policy.people]\nalice = ["{SLACK}"]\nbob = ["{SLACK}"]\n')
    assert found == [f"policy.people.bob: lists {SLACK}, which is already alice's"]


def test_a_group_is_not_a_persons_identity() -> None:
    found = problems('[policy.people]\nops = ["slack-group:S0OPS"]\n')
    assert found == ["policy.people.ops: lists slack-group:S0OPS: a group is not one person's identity"]


def test_one_person_with_two_identities_cannot_satisfy_a_two_person_rule() -> None:
    text = f'[policy]\napprovers = ["{SLACK}", "{LINE}"]\ntwo_person = ["rebind"]\n'
    assert parse_config(text).policy.two_person == ("rebind",)
    found = problems(text + f'[policy.people]\nalice = ["{SLACK}", "{LINE}"]\n')
    assert found == ["policy.two_person: rebind needs two different approvers, but only 1 may approve it"]
