"""A report from a host's own scripts, read from its JSON (docs/report-api.md) with every field
checked and bounded: what reaches the incident core is typed and small."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bot.probe.certinfo import iso_utc, parse_iso_utc

Kind = Literal["self-heal", "post-renew"]
KINDS: tuple[Kind, ...] = ("self-heal", "post-renew")
MAX_BODY = 256 * 1024
MAX_DEPTH = 8
MAX_CHECKED, MAX_BINDINGS, MAX_REPAIRED, MAX_ERRORS, MAX_TEXT = 500, 50, 100, 100, 2000


class ReportInvalid(ValueError):
    """An authentic report that cannot be used: the message says which field and why."""


@dataclass(frozen=True)
class Binding:
    binding: str
    thumbprint: str | None
    ok: bool


@dataclass(frozen=True)
class Checked:
    thumbprint: str
    store: str | None
    names: tuple[str, ...]
    not_after: str | None
    key_ok: bool | None
    bindings: tuple[Binding, ...]


@dataclass(frozen=True)
class Repaired:
    thumbprint: str | None
    store: str | None
    what: str
    detail: str


@dataclass(frozen=True)
class Report:
    host: str
    kind: Kind
    started: dt.datetime
    finished: dt.datetime
    ok: bool
    repair: bool | None = None
    checked: tuple[Checked, ...] = ()
    repaired: tuple[Repaired, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def task(self) -> str:
        """How people name the script that sent it."""
        return "self-heal task" if self.kind == "self-heal" else "post-renew step"

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "kind": self.kind,
            "started": iso_utc(self.started),
            "finished": iso_utc(self.finished),
            "ok": self.ok,
            "repair": self.repair,
            "checked": [
                {
                    "thumbprint": c.thumbprint,
                    "store": c.store,
                    "names": list(c.names),
                    "not_after": c.not_after,
                    "key_ok": c.key_ok,
                    "bindings": [{"binding": b.binding, "thumbprint": b.thumbprint, "ok": b.ok} for b in c.bindings],
                }
                for c in self.checked
            ],
            "repaired": [
                {"thumbprint": r.thumbprint, "store": r.store, "what": r.what, "detail": r.detail}
                for r in self.repaired
            ],
            "errors": list(self.errors),
        }


def parse_report(data: Any, host: str) -> Report:
    """The report in `data` (parsed JSON) sent under `X-Certops-Host: host`; ReportInvalid otherwise."""
    doc = _object(data, "the report")
    if _text(doc, "host", required=True) != host:
        raise ReportInvalid(f"host must be the X-Certops-Host header's {host!r}")
    kind = _text(doc, "kind", required=True)
    if kind not in KINDS:
        raise ReportInvalid('kind must be "self-heal" or "post-renew"')
    started, finished = _time(doc, "started"), _time(doc, "finished")
    if finished < started:
        raise ReportInvalid("finished is before started")
    return Report(
        host=host,
        kind=kind,
        started=started,
        finished=finished,
        ok=_flag(doc, "ok", required=True) is True,
        repair=_flag(doc, "repair"),
        checked=tuple(_checked(item, f"checked[{i}]") for i, item in enumerate(_list(doc, "checked", MAX_CHECKED))),
        repaired=tuple(
            _repaired(item, f"repaired[{i}]") for i, item in enumerate(_list(doc, "repaired", MAX_REPAIRED))
        ),
        errors=tuple(_string(item, f"errors[{i}]") for i, item in enumerate(_list(doc, "errors", MAX_ERRORS))),
    )


def _checked(item: Any, where: str) -> Checked:
    doc = _object(item, where)
    return Checked(
        thumbprint=_text(doc, "thumbprint", where, required=True) or "",
        store=_text(doc, "store", where),
        names=tuple(_string(n, f"{where}.names[{i}]") for i, n in enumerate(_list(doc, "names", 100, where))),
        not_after=_text(doc, "not_after", where),
        key_ok=_flag(doc, "key_ok", where),
        bindings=tuple(
            _binding(b, f"{where}.bindings[{i}]") for i, b in enumerate(_list(doc, "bindings", MAX_BINDINGS, where))
        ),
    )


def _binding(item: Any, where: str) -> Binding:
    doc = _object(item, where)
    return Binding(
        binding=_text(doc, "binding", where, required=True) or "",
        thumbprint=_text(doc, "thumbprint", where),
        ok=_flag(doc, "ok", where) is not False,
    )


def _repaired(item: Any, where: str) -> Repaired:
    doc = _object(item, where)
    return Repaired(
        thumbprint=_text(doc, "thumbprint", where),
        store=_text(doc, "store", where),
        what=_text(doc, "what", where, required=True) or "",
        detail=_text(doc, "detail", where) or "",
    )


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ReportInvalid(f"{where} must be a JSON object")
    return value


def _list(doc: Mapping[str, Any], key: str, most: int, where: str = "") -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    name = f"{where}.{key}" if where else key
    if not isinstance(value, list):
        raise ReportInvalid(f"{name} must be a list")
    if len(value) > most:
        raise ReportInvalid(f"{name} has more than {most} entries")
    return value


def _text(doc: Mapping[str, Any], key: str, where: str = "", *, required: bool = False) -> str | None:
    value = doc.get(key)
    name = f"{where}.{key}" if where else key
    if value is None:
        if required:
            raise ReportInvalid(f"{name} is missing")
        return None
    return _string(value, name)


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ReportInvalid(f"{name} must be a text")
    if len(value) > MAX_TEXT:
        raise ReportInvalid(f"{name} is longer than {MAX_TEXT} characters")
    return value


def _flag(doc: Mapping[str, Any], key: str, where: str = "", *, required: bool = False) -> bool | None:
    value = doc.get(key)
    name = f"{where}.{key}" if where else key
    if value is None:
        if required:
            raise ReportInvalid(f"{name} is missing")
        return None
    if not isinstance(value, bool):
        raise ReportInvalid(f"{name} must be true or false")
    return value


def _time(doc: Mapping[str, Any], key: str) -> dt.datetime:
    text = _text(doc, key, required=True) or ""
    try:
        moment = parse_iso_utc(text)
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None:  # a time without its zone could be any hour
        raise ReportInvalid(f"{key} must be an ISO 8601 time in UTC such as 2026-12-02T06:00:00Z")
    return moment.astimezone(dt.UTC)
