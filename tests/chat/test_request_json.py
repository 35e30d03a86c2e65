"""bot.web.load_json, which both chat adapters parse their webhooks with: every JSON text it
accepts can be stored, logged and sent on; every one it refuses raises Malformed with a fixed
reason (answered 400)."""

from __future__ import annotations

import json

import pytest

from bot.web import Malformed, TooDeep, load_json


@pytest.mark.parametrize(
    "text",
    [
        '{"webhookEventId": "\\ud800x"}',  # a high surrogate alone
        '{"userId": "\\udc00"}',  # a low one alone
        '{"text": "ok \\udfff\\ud800"}',  # a pair in the wrong order
        '{"\\ud800": 1}',  # in a key
        '{"events": [{"source": {"userId": ["a", "\\udbff"]}}]}',  # deep in a list
        '"\\ud800"',  # the whole document
    ],
)
def test_a_lone_surrogate_anywhere_in_a_json_body_is_malformed(text: str) -> None:
    with pytest.raises(Malformed) as raised:
        load_json(text)
    assert raised.value.reason == "a JSON string with a lone surrogate"
    with pytest.raises(Malformed):
        load_json(text.encode())  # bytes too: json.loads would decode them with surrogatepass


def test_an_escaped_surrogate_pair_and_a_literal_backslash_u_are_ordinary_text() -> None:
    assert load_json('{"text": "\\ud83d\\ude00"}') == {"text": "\U0001f600"}
    assert load_json('{"text": "\\\\ud800"}') == {"text": "\\ud800"}
    json.dumps(load_json('{"é": ["\\u00e9", "\\ud83d\\ude00"]}'), ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"timestamp": 1e999}', "a JSON number out of range"),
        ('{"timestamp": -1e400}', "a JSON number out of range"),
        ('{"timestamp": NaN}', "JSON that does not parse"),
        ('{"timestamp": Infinity}', "JSON that does not parse"),
        ('{"timestamp": -Infinity}', "JSON that does not parse"),
        ('{"timestamp": ' + "9" * 5000 + "}", "JSON that does not parse"),  # past int's 4,300-digit limit
        ("{nope", "JSON that does not parse"),
        ("", "JSON that does not parse"),
        ("\ufeff{}", "JSON that does not parse"),
        ("[" * 65 + "]" * 65, "JSON nested too deep"),
        ("[" * 50_000 + "]" * 50_000, "JSON nested too deep"),
    ],
)
def test_every_json_text_load_json_refuses_raises_malformed_with_a_fixed_reason(text: str, reason: str) -> None:
    with pytest.raises(Malformed) as raised:
        load_json(text)
    assert raised.value.reason == reason


def test_numbers_json_allows_are_read_as_json_means_them() -> None:
    assert load_json('{"a": -0, "b": -0.0, "c": 1e308, "d": 1e-999, "e": 123456789012345678901234567890}') == {
        "a": 0,
        "b": -0.0,
        "c": 1e308,
        "d": 0.0,
        "e": 123456789012345678901234567890,
    }


def test_too_deep_is_a_malformed_body() -> None:
    assert issubclass(TooDeep, Malformed)
    assert load_json("[" * 64 + "]" * 64) is not None
