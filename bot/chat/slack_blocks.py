"""Renders the platform-neutral Reply as Slack Block Kit, within Slack's limits.

slack_sdk's models check per-element limits (and raise when one is exceeded) but not the
50-blocks-per-message limit, so everything is cut to size here before a model is built: a long
list of lines becomes a few sections and a "…and N more" note instead of a rejected message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from commands.model import Button, Reply, Tone

MAX_BLOCKS = 50  # per message (Block Kit reference); not validated by slack_sdk
MAX_LINE_SECTIONS = 12  # ~36k characters of lines is already more than anyone reads in a card
SECTION_TEXT = 3000
FIELD_TEXT = 2000
FIELDS_PER_SECTION = 10
BUTTONS_PER_ACTIONS = 25
BUTTON_TEXT = 75
HEADER_TEXT = 150
FALLBACK_TEXT = 4000  # the notification text; the blocks carry the full card
ACTION_PREFIX = "certops_btn_"  # action_id prefix the adapter listens for

ICONS = {
    Tone.INFO: ":information_source:",
    Tone.OK: ":white_check_mark:",
    Tone.WARNING: ":warning:",
    Tone.CRITICAL: ":rotating_light:",
}


@dataclass(frozen=True)
class Rendered:
    text: str  # plain fallback, always set (notifications, screen readers, old clients)
    blocks: list[dict[str, Any]]  # the JSON the Web API takes


def render(reply: Reply, *, hidden: Iterable[str] = (), statuses: Sequence[Reply] = ()) -> Rendered:
    """The whole card: the reply, minus buttons whose token is in `hidden`, plus status notes
    (progress and results of presses) at the bottom."""
    hidden_tokens = set(hidden)
    buttons = [b for b in reply.buttons if b.token not in hidden_tokens]
    status_blocks = _statuses(statuses)
    head: list[Block] = [HeaderBlock(text=PlainTextObject(text=clip(_title(reply), HEADER_TEXT), emoji=True))]
    tail: list[Block] = [*_field_sections(reply), *_incident(reply), *_actions(buttons)]
    room = MAX_BLOCKS - len(head) - len(tail) - len(status_blocks)
    blocks = [*head, *_line_sections(reply.lines, room), *tail, *status_blocks]
    text = "\n\n".join([reply.as_text(), *(s.as_text() for s in statuses)])
    return Rendered(fit(text, FALLBACK_TEXT), as_dicts(blocks[:MAX_BLOCKS]))


def render_copy(
    blocks: Sequence[dict[str, Any]], text: str, *, hidden: Iterable[str] = (), statuses: Sequence[Reply] = ()
) -> Rendered:
    """A card known only from Slack's copy of it (the message a press arrives with, e.g. after
    a restart): its blocks as they are, minus pressed buttons, plus status notes."""
    hidden_tokens = set(hidden)
    kept: list[dict[str, Any]] = []
    for block in blocks:
        if block.get("type") == "actions":
            elements = [e for e in block.get("elements") or [] if e.get("value") not in hidden_tokens]
            if not elements:
                continue
            block = {**block, "elements": elements}
        kept.append(block)
    notes = as_dicts(_statuses(statuses))
    fallback = "\n\n".join([text, *(s.as_text() for s in statuses)])
    return Rendered(fit(fallback, FALLBACK_TEXT), kept[: MAX_BLOCKS - len(notes)] + notes)


def as_dicts(blocks: Sequence[Block]) -> list[dict[str, Any]]:
    """The JSON the Web API takes; to_dict() also checks each element's own limits."""
    return [b.to_dict() for b in blocks]


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: str) -> str:
    """mrkdwn treats &, < and > as control characters; probe output may contain them."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(text: str, limit: int) -> str:
    """Escaped mrkdwn of at most `limit` characters, cut between characters so that no
    &amp;-style entity is ever cut in half."""
    out = escape(text)
    if len(out) <= limit:
        return out
    kept, size = [], 0
    for char in text:
        piece = escape(char)
        if size + len(piece) > limit - 1:
            break
        kept.append(piece)
        size += len(piece)
    return "".join(kept) + "…"


def _title(reply: Reply) -> str:
    return f"{ICONS[reply.tone]} {reply.title}"


def chunk_lines(lines: Sequence[str], limit: int = SECTION_TEXT) -> list[tuple[str, int]]:
    """Joins lines into (text, number of lines) chunks of at most `limit` characters, never
    splitting a line that fits."""
    chunks: list[tuple[str, int]] = []
    current, count = "", 0
    for raw in lines:
        line = fit(raw, limit)
        if count and len(current) + 1 + len(line) > limit:
            chunks.append((current, count))
            current, count = "", 0
        current = f"{current}\n{line}" if count else line
        count += 1
    if count:
        chunks.append((current, count))
    return chunks


def _line_sections(lines: Sequence[str], room: int) -> list[Block]:
    chunks = chunk_lines(lines)
    room = max(1, min(room, MAX_LINE_SECTIONS))
    if len(chunks) <= room:
        return [SectionBlock(text=MarkdownTextObject(verbatim=True, text=c)) for c, _ in chunks]
    shown = chunks[: room - 1]
    left = len(lines) - sum(n for _, n in shown)
    note = ContextBlock(
        elements=[MarkdownTextObject(verbatim=True, text=f"…and {left} more line{'s' if left != 1 else ''}")]
    )
    return [*(SectionBlock(text=MarkdownTextObject(verbatim=True, text=c)) for c, _ in shown), note]


def _field_sections(reply: Reply) -> list[Block]:
    fields = [
        MarkdownTextObject(verbatim=True, text=f"*{fit(f.label, 200)}*\n{fit(f.value, FIELD_TEXT - 210)}")
        for f in reply.fields
    ]
    return [SectionBlock(fields=fields[i : i + FIELDS_PER_SECTION]) for i in range(0, len(fields), FIELDS_PER_SECTION)]


def _incident(reply: Reply) -> list[Block]:
    if not reply.incident_id:
        return []
    return [ContextBlock(elements=[MarkdownTextObject(verbatim=True, text=f"Incident *{escape(reply.incident_id)}*")])]


def _actions(buttons: Sequence[Button]) -> list[Block]:
    elements = [_button(i, b) for i, b in enumerate(buttons)]
    return [
        ActionsBlock(elements=elements[i : i + BUTTONS_PER_ACTIONS])
        for i in range(0, len(elements), BUTTONS_PER_ACTIONS)
    ]


def _button(index: int, button: Button) -> ButtonElement:
    confirm = None
    if button.confirm:
        confirm = ConfirmObject(
            title=clip(button.label, 100), text=fit(button.confirm, 300), confirm="Yes, go ahead", deny="Cancel"
        )
    return ButtonElement(
        text=PlainTextObject(text=clip(button.label, BUTTON_TEXT), emoji=True),
        action_id=f"{ACTION_PREFIX}{index}",  # unique within the message, as Slack requires
        value=button.token,  # opaque; the core looks up what it means and who may press it
        style=button.style if button.style in ("primary", "danger") else None,
        confirm=confirm,
    )


def _statuses(statuses: Sequence[Reply]) -> list[Block]:
    if not statuses:
        return []
    blocks: list[Block] = [DividerBlock()]
    for status in statuses[-10:]:  # a card sees a handful of presses; keep the newest if ever more
        title = f"*{fit(_title(status), 300)}*"
        body = fit("\n".join(status.lines), SECTION_TEXT - len(title) - 1)
        blocks.append(SectionBlock(text=MarkdownTextObject(verbatim=True, text=f"{title}\n{body}" if body else title)))
    return blocks
