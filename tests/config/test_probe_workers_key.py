"""[bot] probe_workers: one worker process per usable core by default (CERTOPS_PROBE_WORKERS may
set that default), a chosen count from 1 to 64, and a clear refusal naming the key otherwise."""

from __future__ import annotations

import os

import pytest

from bot.config import ConfigError, parse_config
from bot.config.model import BotSettings, usable_cores


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return [str(issue) for issue in caught.value.issues]


def test_left_out_it_is_one_worker_per_usable_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CERTOPS_PROBE_WORKERS", raising=False)
    assert parse_config("").bot.probe_workers == min(64, usable_cores())
    assert BotSettings().probe_workers == min(64, usable_cores())


def test_the_cores_counted_are_those_this_process_may_run_on() -> None:
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)


def test_the_environment_may_set_the_default_and_the_config_still_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTOPS_PROBE_WORKERS", "3")
    assert parse_config("").bot.probe_workers == 3
    assert parse_config("[bot]\nprobe_workers = 1\n").bot.probe_workers == 1


@pytest.mark.parametrize("count", [1, 2, 64])
def test_a_count_from_1_to_64_is_taken(count: int) -> None:
    assert parse_config(f"[bot]\nprobe_workers = {count}\n").bot.probe_workers == count


@pytest.mark.parametrize("value", ["0", "65", "-1"])
def test_a_count_out_of_range_is_refused_with_the_range(value: str) -> None:
    assert problems(f"[bot]\nprobe_workers = {value}\n") == [
        f"bot.probe_workers: must be at least 1 and at most 64 worker processes, got {value} "
        "(1 probes in the bot's own process; leave it out for one per core)"
    ]


@pytest.mark.parametrize(("value", "shown"), [('"2"', '"2"'), ("2.5", "2.5"), ("true", "true")])
def test_a_value_that_is_not_a_whole_number_is_refused(value: str, shown: str) -> None:
    assert problems(f"[bot]\nprobe_workers = {value}\n") == [
        f"bot.probe_workers: must be a whole number of worker processes, got {shown}"
    ]


@pytest.mark.parametrize("value", ["0", "many", "100", "²"])
def test_a_bad_default_in_the_environment_is_refused_naming_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERTOPS_PROBE_WORKERS", value)
    assert problems("") == [
        "bot.probe_workers: the default from the environment variable CERTOPS_PROBE_WORKERS must be a "
        f"whole number from 1 to 64, got {value!r}"
    ]
    assert parse_config("[bot]\nprobe_workers = 2\n").bot.probe_workers == 2  # unused when the key is set
