"""The outbox: chat messages written in the same transaction as the change that causes them,
delivered in order per platform by the sender, and the card each incident has on a platform."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.engine import Connection

from bot.core.model import MessageKind, MessageState, NewMessage, OutboxMessage
from bot.store.base import Database
from bot.store.dialect import upsert
from bot.store.schema import card_refs, outbox

_PENDING = MessageState.PENDING.value


def insert_messages(
    connection: Connection, messages: Sequence[NewMessage], at: dt.datetime, incident_id: str | None = None
) -> None:
    """Queues `messages`, due at `at`. A message that names no incident gets `incident_id`: the
    caller of open_incident cannot know the new incident's id yet."""
    for message in messages:
        connection.execute(
            outbox.insert().values(
                platform=message.platform,
                kind=MessageKind(message.kind).value,
                incident_id=message.incident_id.upper() if message.incident_id else incident_id,
                payload=dict(message.payload),
                state=_PENDING,
                attempts=0,
                created_at=at,
                next_attempt_at=at,
                # the same on every attempt, so a platform that deduplicates (LINE) delivers a retry once
                retry_key=str(uuid.uuid4()),
            )
        )


class OutboxStore(Database):
    def enqueue(self, messages: Sequence[NewMessage], at: dt.datetime) -> None:
        with self._write() as connection:
            insert_messages(connection, messages, at)

    def next_due(self, platform: str, now: dt.datetime) -> OutboxMessage | None:
        with self._read() as connection:
            head = connection.execute(
                select(outbox)
                .where(outbox.c.platform == platform, outbox.c.state == _PENDING)
                .order_by(outbox.c.seq)
                .limit(1)
            ).first()
        # only the head: a message waiting for its retry holds back those behind it
        return _message(head) if head is not None and head.next_attempt_at <= now else None

    def pending(self, platform: str | None = None) -> list[OutboxMessage]:
        query = select(outbox).where(outbox.c.state == _PENDING).order_by(outbox.c.seq)
        if platform is not None:
            query = query.where(outbox.c.platform == platform)
        with self._read() as connection:
            return [_message(row) for row in connection.execute(query)]

    def pending_cards(self, platform: str, incident_id: str) -> list[OutboxMessage]:
        query = (
            select(outbox)
            .where(
                outbox.c.platform == platform,
                outbox.c.state == _PENDING,
                outbox.c.kind == MessageKind.CARD.value,
                outbox.c.incident_id == incident_id.upper(),
            )
            .order_by(outbox.c.seq)
        )
        with self._read() as connection:
            return [_message(row) for row in connection.execute(query)]

    def pending_count(self, platform: str | None = None) -> int:
        query = select(func.count()).select_from(outbox).where(outbox.c.state == _PENDING)
        if platform is not None:
            query = query.where(outbox.c.platform == platform)
        with self._read() as connection:
            return int(connection.execute(query).scalar_one())

    def mark_sent(self, seq: int, at: dt.datetime) -> bool:
        with self._write() as connection:
            done = connection.execute(
                outbox.update()
                .where(outbox.c.seq == seq, outbox.c.state == _PENDING)
                .values(state=MessageState.SENT.value, sent_at=at)
            )
        return done.rowcount == 1

    def mark_tried(self, seq: int, at: dt.datetime) -> None:
        with self._write() as connection:
            connection.execute(
                outbox.update()
                .where(outbox.c.seq == seq, outbox.c.state == _PENDING, outbox.c.tried_at.is_(None))
                .values(tried_at=at)
            )

    def mark_retry(self, seq: int, error: str, next_attempt_at: dt.datetime) -> None:
        with self._write() as connection:
            connection.execute(
                outbox.update()
                .where(outbox.c.seq == seq, outbox.c.state == _PENDING)
                .values(attempts=outbox.c.attempts + 1, last_error=error, next_attempt_at=next_attempt_at)
            )

    def mark_failed(self, seq: int, error: str, at: dt.datetime) -> None:
        with self._write() as connection:
            connection.execute(
                outbox.update()
                .where(outbox.c.seq == seq, outbox.c.state == _PENDING)
                # the failed attempt counts too; with nothing left to attempt, next_attempt_at keeps
                # when the last one was made
                .values(
                    state=MessageState.FAILED.value,
                    attempts=outbox.c.attempts + 1,
                    last_error=error,
                    next_attempt_at=at,
                )
            )

    def supersede(self, platform: str, incident_id: str, before_seq: int) -> int:
        with self._write() as connection:
            done = connection.execute(
                outbox.update()
                .where(
                    outbox.c.platform == platform,
                    outbox.c.incident_id == incident_id.upper(),
                    outbox.c.kind == MessageKind.CARD.value,
                    outbox.c.state == _PENDING,
                    outbox.c.seq < before_seq,
                )
                .values(state=MessageState.SUPERSEDED.value)
            )
        return done.rowcount

    def failed_count(self) -> int:
        with self._read() as connection:
            count = connection.execute(
                select(func.count()).select_from(outbox).where(outbox.c.state == MessageState.FAILED.value)
            ).scalar_one()
        return int(count)

    def card_ref(self, incident_id: str, platform: str) -> str | None:
        with self._read() as connection:
            ref = connection.execute(
                select(card_refs.c.ref).where(
                    card_refs.c.incident_id == incident_id.upper(), card_refs.c.platform == platform
                )
            ).scalar_one_or_none()
        return None if ref is None else str(ref)

    def save_card_ref(self, incident_id: str, platform: str, ref: str) -> None:
        with self._write() as connection:
            upsert(
                connection,
                card_refs,
                {"incident_id": incident_id.upper(), "platform": platform, "ref": ref},
                keys=("incident_id", "platform"),
            )


def _message(row: Row[Any]) -> OutboxMessage:
    return OutboxMessage(
        seq=row.seq,
        platform=row.platform,
        kind=MessageKind(row.kind),
        incident_id=row.incident_id,
        payload=row.payload,
        state=MessageState(row.state),
        attempts=row.attempts,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        retry_key=row.retry_key,
        last_error=row.last_error,
        sent_at=row.sent_at,
        tried_at=row.tried_at,
    )
