"""Block Kit rendering stays inside Slack's limits, which slack_sdk does not check for a whole
message: at most 50 blocks, 3000 characters a section, 10 fields a section, 75 a button."""

from __future__ import annotations

from bot.chat.slack_blocks import MAX_BLOCKS, chunk_lines, fit, render
from commands.model import Button, Field, Reply, Tone


def test_a_long_list_of_lines_is_cut_to_fifty_blocks_and_says_how_many_more() -> None:
    lines = tuple(f"site-{i:04d}: OK · 60 days left · checked 08:3{i % 10} UTC · " + "x" * 150 for i in range(2000))
    buttons = tuple(Button(f"Action {i}", f"act:{i}") for i in range(30))
    fields = tuple(Field(f"F{i}", "v") for i in range(25))

    rendered = render(Reply("TLS status: 2000 sites", Tone.WARNING, lines, fields, buttons, "INC-0042"))

    blocks = rendered.blocks  # built with slack_sdk models, whose to_dict() checks each element's limits
    assert len(blocks) <= MAX_BLOCKS
    sections = [b for b in blocks if b["type"] == "section" and "text" in b]
    assert all(len(b["text"]["text"]) <= 3000 for b in sections)
    [more] = [b for b in blocks if b["type"] == "context" and "more line" in b["elements"][0]["text"]]
    shown = sum(b["text"]["text"].count("\n") + 1 for b in sections)
    assert more["elements"][0]["text"] == f"…and {2000 - shown} more lines"
    assert [len(b["fields"]) for b in blocks if "fields" in b] == [10, 10, 5]
    assert [len(b["elements"]) for b in blocks if b["type"] == "actions"] == [25, 5]
    assert len(rendered.text) <= 4000


def test_lines_are_joined_into_sections_without_splitting_a_line() -> None:
    chunks = chunk_lines(["a" * 1000, "b" * 1000, "c" * 1000, "d" * 10])
    assert [n for _, n in chunks] == [2, 2]
    assert chunks[0][0] == "a" * 1000 + "\n" + "b" * 1000
    [(huge, count)] = chunk_lines(["e" * 5000])
    assert count == 1
    assert len(huge) == 3000
    assert huge.endswith("…")


def test_buttons_carry_only_the_token_and_are_cut_to_slacks_limits() -> None:
    button = Button("Repair the certificate store " * 5, "act:tok123", "danger", confirm="Repair store on iis01?")

    [actions] = [b for b in render(Reply("x", buttons=(button,))).blocks if b["type"] == "actions"]

    [element] = actions["elements"]
    assert element["value"] == "act:tok123"
    assert element["style"] == "danger"
    assert element["action_id"] == "certops_btn_0"
    assert len(element["text"]["text"]) == 75
    assert element["confirm"]["text"]["text"] == "Repair store on iis01?"


def test_markup_from_probe_output_is_escaped_and_cannot_ping_anyone() -> None:
    reply = Reply("a & b", lines=("<!channel> served <cert> & more",), fields=(Field("<x>", "y & z"),))

    blocks = render(reply).blocks

    assert blocks[1]["text"]["text"] == "&lt;!channel&gt; served &lt;cert&gt; &amp; more"
    assert blocks[2]["fields"][0]["text"] == "*&lt;x&gt;*\ny &amp; z"
    assert "<!channel>" not in render(reply).text


def test_press_notes_are_shown_under_the_card_and_pressed_buttons_are_hidden() -> None:
    card = Reply("www: needs repair", buttons=(Button("Repair", "act:a"), Button("Verify", "act:b")))
    note = Reply("repair-store on iis01: done", Tone.OK, ("serving 7C…09",))

    blocks = render(card, hidden={"act:a"}, statuses=[note]).blocks

    assert [e["value"] for b in blocks if b["type"] == "actions" for e in b["elements"]] == ["act:b"]
    assert blocks[-2]["type"] == "divider"
    assert blocks[-1]["text"]["text"] == "*:white_check_mark: repair-store on iis01: done*\nserving 7C…09"


def test_escape_heavy_text_is_cut_to_the_limit_without_being_lost() -> None:
    html = "<td>&nbsp;</td>" * 300
    out = fit(html, 3000)
    assert len(out) <= 3000
    assert out.startswith("&lt;td&gt;&amp;nbsp;&lt;/td&gt;")
    assert out.endswith("…")
    assert fit("&" * 10, 3000) == "&amp;" * 10
