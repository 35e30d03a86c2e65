"""Incidents and their transitions: at most one open incident per subject, and every change of
state a compare-and-set written together with its transition row and the messages it causes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Row, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.core.model import Incident, IncidentState, NewMessage, Severity, Step, Transition
from bot.store.base import Database
from bot.store.outbox import insert_messages
from bot.store.schema import incident_transitions, incidents

_FIELDS = frozenset(field.name for field in dataclasses.fields(Incident))
_SET_AT_OPENING = frozenset({"id", "subject", "problem", "state", "opened_at", "updated_at"})
_NEVER_CHANGED = frozenset({"id", "subject", "opened_at"})
_RESOLVED = IncidentState.RESOLVED.value


class IncidentsStore(Database):
    def open_incident(
        self,
        *,
        subject: str,
        problem: str,
        fields: dict[str, Any],
        at: dt.datetime,
        reason: str,
        actor: str,
        messages: Sequence[NewMessage] = (),
    ) -> tuple[Incident, bool]:
        fixed = _SET_AT_OPENING & fields.keys()
        if fixed:
            raise ValueError(f"open_incident sets {', '.join(sorted(fixed))} itself")
        values = {"details": [], "diagnosis": [], "announced": False, **_columns(fields)}
        missing = {"severity", "summary"} - values.keys()
        if missing:
            raise ValueError(f"a new incident needs {', '.join(sorted(missing))}")
        values.update(subject=subject, problem=problem, state=IncidentState.OPEN.value, opened_at=at, updated_at=at)
        try:
            return self._open(values, at, reason, actor, messages)
        except IntegrityError:
            # the partial unique index refused a second open incident: a writer this transaction
            # could not see (another replica, on a backend without a database-wide write lock)
            # opened one first, and that one is the answer
            existing = self.open_incidents(subject)
            if not existing:
                raise
            return existing[0], False

    def _open(
        self, values: dict[str, Any], at: dt.datetime, reason: str, actor: str, messages: Sequence[NewMessage]
    ) -> tuple[Incident, bool]:
        with self._write() as connection:
            existing = _open_row(connection, str(values["subject"]))
            if existing is not None:
                return _incident(existing), False
            # the id comes from the seq the insert is given; a unique placeholder holds its place
            inserted = connection.execute(incidents.insert().values(id=f"new-{uuid.uuid4()}", **values))
            key = inserted.inserted_primary_key
            assert key is not None, "an insert of one row has its primary key"
            seq = int(key[0])
            incident_id = f"INC-{seq:04d}"
            connection.execute(incidents.update().where(incidents.c.seq == seq).values(id=incident_id))
            _record(connection, incident_id, at, None, IncidentState.OPEN, Step.DETECTED, reason, actor)
            insert_messages(connection, messages, at, incident_id)
            row = connection.execute(select(incidents).where(incidents.c.seq == seq)).one()
        return _incident(row), True

    def transition(
        self,
        incident_id: str,
        *,
        expected: Sequence[IncidentState],
        new: IncidentState,
        step: Step,
        reason: str,
        actor: str,
        at: dt.datetime,
        changes: dict[str, Any] | None = None,
        messages: Sequence[NewMessage] = (),
    ) -> Incident | None:
        changes = changes or {}
        fixed = _NEVER_CHANGED & changes.keys()
        if fixed:
            raise ValueError(f"an incident's {', '.join(sorted(fixed))} never change")
        new = IncidentState(new)
        # `new` and `at` are the move itself: they win over the same fields in `changes`
        values = {**_columns(changes), "state": new.value, "updated_at": at}
        if new is IncidentState.RESOLVED:
            values["resolved_at"] = at
        key = incident_id.upper()
        allowed = {IncidentState(state).value for state in expected}
        with self._write() as connection:
            current = connection.execute(
                select(incidents.c.state).where(incidents.c.id == key).with_for_update()
            ).scalar_one_or_none()
            if current not in allowed:
                return None
            moved = connection.execute(
                incidents.update().where(incidents.c.id == key, incidents.c.state == current).values(values)
            )
            if moved.rowcount != 1:
                return None
            _record(connection, key, at, IncidentState(current), new, step, reason, actor)
            insert_messages(connection, messages, at, key)
            row = connection.execute(select(incidents).where(incidents.c.id == key)).one()
        return _incident(row)

    def incident(self, incident_id: str) -> Incident | None:
        with self._read() as connection:
            row = connection.execute(select(incidents).where(incidents.c.id == incident_id.upper())).first()
        return None if row is None else _incident(row)

    def open_incidents(self, subject: str | None = None) -> list[Incident]:
        query = select(incidents).where(incidents.c.state != _RESOLVED).order_by(incidents.c.seq)
        if subject is not None:
            query = query.where(incidents.c.subject == subject)
        with self._read() as connection:
            return [_incident(row) for row in connection.execute(query)]

    def incidents(self, *, since: dt.datetime | None = None, limit: int = 100) -> list[Incident]:
        """`since`: the incidents open at some moment since then (still open, or resolved after it)."""
        query = select(incidents).order_by(incidents.c.seq.desc()).limit(limit)
        if since is not None:
            query = query.where(or_(incidents.c.resolved_at.is_(None), incidents.c.resolved_at >= since))
        with self._read() as connection:
            return [_incident(row) for row in connection.execute(query)]

    def transitions(self, incident_id: str) -> list[Transition]:
        query = (
            select(incident_transitions)
            .where(incident_transitions.c.incident_id == incident_id.upper())
            .order_by(incident_transitions.c.seq)
        )
        with self._read() as connection:
            return [_transition(row) for row in connection.execute(query)]


def _open_row(connection: Connection, subject: str) -> Row[Any] | None:
    return connection.execute(
        select(incidents).where(incidents.c.subject == subject, incidents.c.state != _RESOLVED).with_for_update()
    ).first()


def _record(
    connection: Connection,
    incident_id: str,
    at: dt.datetime,
    old: IncidentState | None,
    new: IncidentState,
    step: Step,
    reason: str,
    actor: str,
) -> None:
    connection.execute(
        incident_transitions.insert().values(
            incident_id=incident_id,
            at=at,
            old_state=None if old is None else old.value,
            new_state=new.value,
            step=Step(step).value,
            reason=reason,
            actor=actor,
        )
    )


def _columns(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Incident field values as column values: enums as their strings, tuples as JSON lists."""
    columns: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in _FIELDS:
            raise ValueError(f"an incident has no field {name!r}")
        if name in ("severity", "notified_severity"):
            columns[name] = None if value is None else Severity(value).value
        elif name == "state":
            columns[name] = IncidentState(value).value
        elif name in ("details", "diagnosis"):
            if isinstance(value, str):  # a lone string would become a tuple of its characters
                raise TypeError(f"{name} is a sequence of lines, not one string")
            columns[name] = [str(line) for line in value]
        elif name == "announced":
            columns[name] = bool(value)
        else:
            columns[name] = value
    return columns


def _incident(row: Row[Any]) -> Incident:
    return Incident(
        id=row.id,
        subject=row.subject,
        problem=row.problem,
        severity=Severity(row.severity),
        state=IncidentState(row.state),
        summary=row.summary,
        details=tuple(row.details),
        opened_at=row.opened_at,
        updated_at=row.updated_at,
        site=row.site,
        host=row.host,
        acked_by=row.acked_by,
        failing_since=row.failing_since,
        acted_at=row.acted_at,
        resolved_at=row.resolved_at,
        resolution=row.resolution,
        announced=bool(row.announced),
        notified_at=row.notified_at,
        notified_severity=None if row.notified_severity is None else Severity(row.notified_severity),
        diagnosis=tuple(row.diagnosis),
    )


def _transition(row: Row[Any]) -> Transition:
    return Transition(
        incident_id=row.incident_id,
        seq=row.seq,
        at=row.at,
        old_state=None if row.old_state is None else IncidentState(row.old_state),
        new_state=IncidentState(row.new_state),
        step=Step(row.step),
        reason=row.reason,
        actor=row.actor,
    )
