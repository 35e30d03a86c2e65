"""Renders platform-neutral replies as LINE messages: a Flex bubble per reply, text when it is too big.

LINE's limits, which every function here keeps (developers.line.biz/en/reference/messaging-api/):
at most 5 messages per reply or push request, text messages up to 5000 characters, alt text up to
400, postback data up to 300, a Flex bubble's JSON up to 30 KB. A button label is kept to 20
characters so it fits on a phone screen and in template messages alike.

The SDK ships no type information, so its message models are typed `Any` here (`LineMessage`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from linebot.v3.messaging import (  # type: ignore[import-untyped, unused-ignore]
    ConfirmTemplate,
    FlexBox,
    FlexBubble,
    FlexButton,
    FlexMessage,
    FlexSeparator,
    FlexText,
    PostbackAction,
    TemplateMessage,
    TextMessage,
)

from bot.logs import WithFields, logger
from commands.model import Button, Reply, Tone

log = logger(__name__)
log.addFilter(WithFields(platform="line"))

LineMessage = Any  # an SDK message model (TextMessage, FlexMessage, TemplateMessage)

MAX_MESSAGES = 5
TEXT_LIMIT = 5000
ALT_TEXT_LIMIT = 400
DATA_LIMIT = 300
LABEL_LIMIT = 20
CONFIRM_TEXT_LIMIT = 240
# LINE refuses a bubble over 30 KB of JSON; keep a margin for the envelope around it.
BUBBLE_LIMIT = 28_000
# A card is for reading at a glance on a phone; longer listings (an audit of many tasks) read
# better, and can be copied, as plain text.
CARD_TEXT_LIMIT = 3000

# Postback data the adapter answers itself, before anything reaches the dispatcher: a button with
# a confirm question first asks it (LINE has no confirm dialog on Flex buttons), and "Cancel"
# on that question does nothing.
ASK_PREFIX = "ask:"
ASK_SEPARATOR = "|"
CANCEL_DATA = "ask-cancel"

TONE_COLOUR = {
    Tone.INFO: "#1565C0",
    Tone.OK: "#2E7D32",
    Tone.WARNING: "#B26A00",
    Tone.CRITICAL: "#C62828",
}
DANGER_COLOUR = "#C62828"
MUTED_COLOUR = "#8C8C8C"


def clip(text: str, limit: int) -> str:
    """Cuts `text` to `limit` characters, marking the cut with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(reply: Reply) -> list[LineMessage]:
    """One Flex bubble when it fits; otherwise the text in chunks plus a small card for the buttons."""
    if _card_text_length(reply) <= CARD_TEXT_LIMIT:
        bubble = _bubble(reply, body=True)
        if len(json.dumps(bubble.to_dict(), ensure_ascii=False).encode("utf-8")) <= BUBBLE_LIMIT:
            return [FlexMessage(alt_text=alt_text(reply), contents=bubble)]
    buttons = _buttons(reply.buttons)
    room = MAX_MESSAGES - (1 if buttons else 0)
    messages: list[LineMessage] = [TextMessage(text=chunk) for chunk in text_chunks(reply.as_text(), room)]
    if buttons:
        messages.append(FlexMessage(alt_text=alt_text(reply), contents=_bubble(reply, body=False)))
    return messages


def _card_text_length(reply: Reply) -> int:
    return sum(map(len, reply.lines)) + sum(len(f.label) + len(f.value) for f in reply.fields)


def text_chunks(text: str, max_chunks: int) -> list[str]:
    """Splits into at most `max_chunks` messages of at most 5000 characters, at a line break when
    one falls in the second half of the chunk (so lines stay whole without wasting messages)."""
    chunks: list[str] = []
    rest = text
    while len(rest) > TEXT_LIMIT:
        cut = rest.rfind("\n", 0, TEXT_LIMIT + 1)
        if cut < TEXT_LIMIT // 2:
            chunks.append(rest[:TEXT_LIMIT])
            rest = rest[TEXT_LIMIT:]
        else:
            chunks.append(rest[:cut])
            rest = rest[cut + 1 :]
    chunks.append(rest)
    if len(chunks) > max_chunks:
        note = "\n… (cut here: LINE takes at most 5 messages of 5000 characters)"
        chunks = chunks[:max_chunks]
        chunks[-1] = clip(chunks[-1], TEXT_LIMIT - len(note)) + note
    return [c if c.strip() else "…" for c in chunks]


def alt_text(reply: Reply) -> str:
    """What notifications and the chat list show instead of the card."""
    parts = [reply.title]
    if reply.incident_id:
        parts.append(reply.incident_id)
    parts.extend(reply.lines[:2])
    return clip(" · ".join(p for p in parts if p) or "certops", ALT_TEXT_LIMIT)


def _bubble(reply: Reply, *, body: bool) -> Any:
    colour = TONE_COLOUR.get(reply.tone, TONE_COLOUR[Tone.INFO])
    header = FlexBox(
        layout="vertical",
        background_color=colour,
        padding_all="12px",
        contents=[FlexText(text=clip(reply.title or "certops", TEXT_LIMIT), color="#FFFFFF", weight="bold", wrap=True)],
    )
    contents: list[Any] = []
    if body:
        contents.extend(FlexText(text=clip(line, TEXT_LIMIT), size="sm", wrap=True) for line in reply.lines if line)
        if reply.fields and contents:
            contents.append(FlexSeparator(margin="md"))
        contents.extend(_field_row(f.label, f.value) for f in reply.fields)
    if reply.incident_id:
        contents.append(FlexText(text=f"Incident {reply.incident_id}", size="xs", color=MUTED_COLOUR, margin="md"))
    buttons = _buttons(reply.buttons)
    return FlexBubble(
        header=header,
        body=FlexBox(layout="vertical", spacing="sm", contents=contents) if contents else None,
        footer=FlexBox(layout="vertical", spacing="sm", contents=buttons) if buttons else None,
    )


def _field_row(label: str, value: str) -> Any:
    return FlexBox(
        layout="baseline",
        spacing="sm",
        contents=[
            FlexText(text=clip(label, 200) or "-", size="sm", color=MUTED_COLOUR, flex=2, wrap=True),
            FlexText(text=clip(value, TEXT_LIMIT) or "-", size="sm", flex=5, wrap=True),
        ],
    )


def _buttons(buttons: Sequence[Button]) -> list[Any]:
    rendered = []
    for button in buttons:
        data = button_data(button)
        if data is None:
            continue
        label = clip(button.label, LABEL_LIMIT)
        danger = button.style == "danger"
        rendered.append(
            FlexButton(
                style="primary" if button.style in ("primary", "danger") else "secondary",
                color=DANGER_COLOUR if danger else None,
                height="sm",
                action=PostbackAction(label=label, data=data, display_text=label),
            )
        )
    return rendered


def button_data(button: Button) -> str | None:
    """The postback data for a button: its token, or a question to ask first when it has one.

    The question rides in the data (it is only ever shown back to the chat it came from); what the
    press means is looked up by the token alone. A token that does not fit is left out rather
    than cut, because a cut token would point at nothing.
    """
    if len(button.token) > DATA_LIMIT:
        log.warning("left out a LINE button whose token is longer than %d characters", DATA_LIMIT)
        return None
    if not button.confirm or ASK_SEPARATOR in button.token:
        return button.token
    head = f"{ASK_PREFIX}{button.token}{ASK_SEPARATOR}"
    if len(head) >= DATA_LIMIT:
        return button.token
    return head + clip(button.confirm, DATA_LIMIT - len(head))


def confirm_prompt(data: str) -> LineMessage | None:
    """The Yes/Cancel question for an "ask:" press, or None when the data is not one."""
    if not data.startswith(ASK_PREFIX):
        return None
    token, _, question = data[len(ASK_PREFIX) :].partition(ASK_SEPARATOR)
    if not token:
        return None
    question = clip(question or "Are you sure?", CONFIRM_TEXT_LIMIT)
    return TemplateMessage(
        alt_text=clip(question, ALT_TEXT_LIMIT),
        template=ConfirmTemplate(
            text=question,
            actions=[
                PostbackAction(label="Yes", data=token, display_text=clip(f"Yes: {question}", DATA_LIMIT)),
                PostbackAction(label="Cancel", data=CANCEL_DATA),
            ],
        ),
    )


def summary(replies: Sequence[Reply], remaining: int | None) -> list[LineMessage]:
    """Many pending pushes as one request: a text digest of all, plus the newest cards with buttons.

    One push request counts once per recipient whatever it holds (up to 5 messages), so this turns
    N quota units into one while keeping the buttons of up to 4 cards usable.
    """
    with_buttons = [r for r in replies if r.buttons][-(MAX_MESSAGES - 1) :]
    left = f"{remaining} left" if remaining is not None else "little left"
    head = f"{len(replies)} updates in one message: the LINE message quota is low ({left} this month)."
    budget = max(200, (TEXT_LIMIT - len(head) - 50) // max(1, len(replies)))
    body = "\n\n".join(clip(r.as_text(), budget) for r in replies)
    messages: list[LineMessage] = [TextMessage(text=clip(f"{head}\n\n{body}", TEXT_LIMIT))]
    messages.extend(FlexMessage(alt_text=alt_text(r), contents=_bubble(r, body=False)) for r in with_buttons)
    return messages
