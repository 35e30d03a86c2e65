"""Replies rendered as LINE messages stay inside LINE's documented limits."""

from __future__ import annotations

import json
from typing import Any

from bot.chat import line_flex
from bot.chat.line import command_text, inbound
from commands.model import Button, Field, Reply, Tone


def as_json(messages: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(m.to_json()) for m in messages]


def actions(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") == "postback":
            found.append(node)
        for value in node.values():
            found.extend(actions(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(actions(item))
    return found


def test_a_reply_becomes_one_flex_bubble_coloured_by_its_tone() -> None:
    reply = Reply(
        "shop: CRITICAL",
        Tone.CRITICAL,
        ("TLS handshake reset at origin 203.0.113.10",),
        (Field("Host", "iis01"),),
        (Button("Repair store", "act:abc", "primary"), Button("Disable legacy task", "act:def", "danger")),
        incident_id="INC-0007",
    )
    [flex] = as_json(line_flex.render(reply))
    assert flex["type"] == "flex"
    bubble = flex["contents"]
    assert bubble["header"]["backgroundColor"] == line_flex.TONE_COLOUR[Tone.CRITICAL]
    assert bubble["header"]["contents"][0]["text"] == "shop: CRITICAL"
    body = json.dumps(bubble["body"])
    assert "TLS handshake reset" in body
    assert "iis01" in body
    assert "Incident INC-0007" in body
    primary, danger = bubble["footer"]["contents"]
    assert primary["style"] == "primary"
    assert danger["color"] == line_flex.DANGER_COLOUR
    assert danger["action"]["label"] == "Disable legacy task"


def test_button_labels_alt_text_and_postback_data_respect_lines_limits() -> None:
    reply = Reply(
        "x" * 1000,
        lines=("y" * 1000,),
        buttons=(Button("A label far longer than twenty characters", "act:" + "t" * 280, confirm="q" * 500),),
    )
    [flex] = as_json(line_flex.render(reply))
    assert len(flex["altText"]) <= 400
    [action] = actions(flex)
    assert len(action["label"]) <= 20
    assert len(action["data"]) <= 300
    assert action["data"].startswith("ask:act:" + "t" * 280)


def test_a_token_too_long_for_postback_data_leaves_the_button_out_rather_than_cutting_it() -> None:
    reply = Reply("card", buttons=(Button("Too long", "act:" + "t" * 400), Button("Fine", "act:ok")))
    [flex] = as_json(line_flex.render(reply))
    assert [a["data"] for a in actions(flex)] == ["act:ok"]


def test_a_confirm_question_rides_in_the_data_and_comes_back_as_a_yes_cancel_template() -> None:
    data = line_flex.button_data(Button("Repair store", "act:abc", confirm="Repair store on iis01?"))
    assert data == "ask:act:abc|Repair store on iis01?"
    assert data is not None
    prompt = json.loads(line_flex.confirm_prompt(data).to_json())  # type: ignore[union-attr]
    assert prompt["template"]["text"] == "Repair store on iis01?"
    assert [a["data"] for a in prompt["template"]["actions"]] == ["act:abc", line_flex.CANCEL_DATA]
    assert line_flex.confirm_prompt("act:abc") is None


def test_content_too_big_for_a_bubble_becomes_text_of_at_most_5000_characters_plus_a_button_card() -> None:
    reply = Reply(
        "A very long audit",
        lines=tuple(f"task {n}: " + "z" * 300 for n in range(200)),
        buttons=(Button("Disable legacy task", "act:abc"),),
    )
    messages = as_json(line_flex.render(reply))
    assert len(messages) == 5
    *texts, card = messages
    assert all(m["type"] == "text" and len(m["text"]) <= 5000 for m in texts)
    assert texts[0]["text"].startswith("A very long audit\ntask 0: ")
    assert "cut here: LINE takes at most 5 messages" in texts[-1]["text"]
    assert [a["data"] for a in actions(card)] == ["act:abc"]
    assert "body" not in card["contents"]


def test_a_long_reply_without_buttons_uses_up_to_five_text_messages() -> None:
    reply = Reply("t", lines=("w" * 12_000,))
    messages = as_json(line_flex.render(reply))
    assert [m["type"] for m in messages] == ["text", "text", "text"]
    assert "".join(m["text"] for m in messages).count("w") == 12_000


def test_a_summary_keeps_every_title_and_the_buttons_of_the_newest_four_cards() -> None:
    replies = [Reply(f"update {n}", buttons=(Button("Go", f"act:{n}"),)) for n in range(6)]
    text, *cards = as_json(line_flex.summary(replies, remaining=7))
    assert text["text"].startswith("6 updates in one message: the LINE message quota is low (7 left this month).")
    assert all(f"update {n}" in text["text"] for n in range(6))
    assert [actions(card)[0]["data"] for card in cards] == ["act:2", "act:3", "act:4", "act:5"]


def test_only_messages_that_start_with_ssl_are_commands() -> None:
    assert command_text("/ssl status www") == "status www"
    assert command_text("  /SSL   heal shop ") == "heal shop"
    assert command_text("/ssl") == ""
    assert command_text("/sslstatus") is None
    assert command_text("hello /ssl status") is None


def test_sources_map_to_principals_and_conversations() -> None:
    from linebot.v3.webhooks import PostbackEvent  # type: ignore[import-untyped, unused-ignore]

    def press(source: dict[str, str]) -> Any:
        return PostbackEvent.from_dict(
            {
                "type": "postback",
                "mode": "active",
                "timestamp": 1,
                "webhookEventId": "01HX",
                "deliveryContext": {"isRedelivery": False},
                "replyToken": "r",
                "source": source,
                "postback": {"data": "act:x"},
            }
        )

    group = inbound(press({"type": "group", "groupId": "Cg"}))
    assert group is not None
    assert (group.who.user_id, group.who.key, group.where.id, group.where.is_group) == (None, None, "Cg", True)
    room = inbound(press({"type": "room", "roomId": "Rr", "userId": "Uu"}))
    assert room is not None
    assert (room.who.key, room.where.id, room.where.is_group) == ("line:Uu", "Rr", True)
    direct = inbound(press({"type": "user", "userId": "Uu"}))
    assert direct is not None
    assert (direct.who.key, direct.where.id, direct.where.is_group, direct.data) == ("line:Uu", "Uu", False, "act:x")
