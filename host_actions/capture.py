"""Captures: what the read-only inventory scripts printed on one host, kept as one JSON document.

A capture lets what certops saw on a real host be judged anywhere, later, and turned into a test:
`diagnose_capture()` judges it exactly as `actions.diagnose_host()` judges a live host (both go
through `judge()`), and `host_actions.simulator.scenario_file.model_from_capture()` rebuilds a
simulated host from it. Format and rules: docs/simulator.md.

What a capture holds, as the host printed it: each part's result document (certificates with
their public RawData and the *facts* of the key test, http.sys and IIS bindings, win-acme renewal
files, scheduled tasks with the first 16 KiB of the scripts they run), its ok/error/hresult, and
the parameters sent (only `WacsPath`). What it never holds, checked in code before it is
returned and again when a file is loaded:

- a private key: the scripts never read one, and a PEM private-key block found in any text (a
  task's script, a renewal file) is cut out; a string that still says "PRIVATE KEY" is dropped
  whole, and a capture that would still hold one is refused, never written;
- the host's WinRM password: every occurrence is cut out (the Host's address is not kept either);
- the values of win-acme renewal fields named like secrets (…Password, …Secret, …Token, ApiKey,
  …Credential).

Other secrets a task's script may spell out (a password in a command line) cannot be recognised:
a user reads the file before sending it, as docs/simulator.md says.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from host_actions.actions.diagnosis import judge
from host_actions.actions.result import ActionResult
from host_actions.diagnose import OVERDUE_GRACE, Finding, ProbeLike
from host_actions.inventory import INVENTORY_SCRIPTS, inventory_parts
from host_actions.model import Inventory
from host_actions.parsers import MAX_JSON_VALUES, JSONRefused, load_json, parse_time
from host_actions.scripts import script_text
from host_actions.target import Host, SecretUnavailable
from host_actions.winrm_client import HostSession, PartResult

FORMAT = "certops-capture"
FORMAT_VERSION = 1
MAX_CAPTURE_BYTES = 32 * 1024 * 1024  # four parts, each held to 16 MiB by the client, rarely past 1 MiB
REMOVED = "[removed by certops]"
PRIVATE_KEY = "PRIVATE KEY"
_PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S
)
_SECRET_FIELD = re.compile(r"password|secret|token|apikey|api_key|credential", re.I)


class CaptureError(ValueError):
    """A capture that cannot be taken or read; the message is one sentence that says what to do."""


@dataclass(frozen=True)
class CapturedPart:
    name: str
    params: dict[str, Any]
    ok: bool
    result: Any  # the script's result document exactly as printed (None when it failed)
    error: str | None = None
    hresult: str | None = None

    def to_result(self) -> PartResult:
        return PartResult(self.name, self.ok, self.result, self.error, self.hresult)


@dataclass(frozen=True)
class CaptureDoc:
    host: str
    taken_at: dt.datetime
    certops_version: str
    scripts: dict[str, str]  # script name -> sha256 of its text as sent
    parts: tuple[CapturedPart, ...]
    # where secrets were cut out and what: "tasks.tasks[2].actions[0].files[1].text: a private key"
    removed: tuple[str, ...] = field(default=())

    def results(self) -> list[PartResult]:
        """The parts as HostSession.run() returned them when the capture was taken."""
        return [p.to_result() for p in self.parts]

    def part(self, name: str) -> CapturedPart | None:
        return next((p for p in self.parts if p.name == name), None)

    def document(self, name: str) -> dict[str, Any] | None:
        """A part's result document, or None when it failed or is absent."""
        part = self.part(name)
        return part.result if part is not None and part.ok and isinstance(part.result, dict) else None


# -- taking a capture ------------------------------------------------------------------------


def capture(host: Host, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Run the read-only inventory scripts in one session and keep what each printed."""
    parts = inventory_parts(host)  # validates before any traffic
    with HostSession(host, "capture") as session:
        results = session.run(parts)
    password = _password(host)
    removed: list[str] = []
    documents = [
        {
            "name": r.name,
            "params": dict(p.params),
            "ok": r.ok,
            "error": r.error,
            "hresult": r.hresult,
            "result": _scrub(_without_renewal_secrets(r.name, r.result, removed), r.name, password, removed),
        }
        for p, r in zip(parts, results, strict=True)
    ]
    doc: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "certops_version": certops_version(),
        "host": host.name,
        "taken_at": (now or dt.datetime.now(dt.UTC)).isoformat(),
        "scripts": {name: script_sha256(name) for name in INVENTORY_SCRIPTS},
        "removed": removed,
        "parts": documents,
    }
    problem = secret_problem(doc, password)
    if problem:  # a check, not a hope: the scrub above must have left nothing
        raise CaptureError(f"{host.name}: the capture was not kept because {problem}.")
    return doc


def certops_version() -> str:
    # host_actions never imports bot, so the version comes from the installed distribution
    try:
        return metadata.version("certops")
    except metadata.PackageNotFoundError:
        return "unknown"


def script_sha256(name: str) -> str:
    return hashlib.sha256(script_text(name).encode("utf-8")).hexdigest()


def dump_capture(doc: dict[str, Any]) -> str:
    """The capture as its file holds it: UTF-8 JSON, one key a line, so a diff of two reads well."""
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def _password(host: Host) -> str | None:
    if host.password is None:
        return None
    try:
        return host.password.resolve() or None
    except SecretUnavailable:  # the session opened with it a moment ago; if it is gone now, nothing to find
        return None


def _without_renewal_secrets(name: str, result: Any, removed: list[str]) -> Any:
    """The winacme document with secret-looking fields of each renewal file emptied."""
    if name != "winacme" or not isinstance(result, dict):
        return result
    for index, renewal in enumerate(result.get("renewals") or ()):
        if not isinstance(renewal, dict) or not isinstance(renewal.get("text"), str):
            continue
        try:
            data = load_json(renewal["text"].lstrip("\ufeff"))
        except ValueError:
            continue  # an unreadable file is judged as such; the scrub still removes keys and passwords
        where = f"winacme.renewals[{index}].text"
        before = len(removed)
        cleaned = _empty_secret_fields(data, where, removed)
        if len(removed) > before:  # rewritten only when a field was emptied, so the text stays as printed
            renewal["text"] = json.dumps(cleaned, indent=2, ensure_ascii=False)
    return result


def _empty_secret_fields(value: Any, where: str, removed: list[str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(item, str) and item and _SECRET_FIELD.search(str(key)):
                removed.append(f"{where}: {key}")  # the field's name, never its value
                out[key] = REMOVED
            else:
                out[key] = _empty_secret_fields(item, where, removed)
        return out
    if isinstance(value, list):
        return [_empty_secret_fields(item, where, removed) for item in value]
    return value


def _scrub(value: Any, where: str, password: str | None, removed: list[str]) -> Any:
    """A copy without PEM private keys and without the password, noting each place in `removed`."""
    if isinstance(value, dict):
        return {
            _scrub(key, where, password, removed): _scrub(item, f"{where}.{key}", password, removed)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_scrub(item, f"{where}[{i}]", password, removed) for i, item in enumerate(value)]
    if not isinstance(value, str):
        return value
    text = value
    if PRIVATE_KEY in text:
        text = _PEM_PRIVATE_KEY.sub(REMOVED, text)
        if PRIVATE_KEY in text:  # not a whole PEM block, but it says what it is: drop all of it
            text = REMOVED
        removed.append(f"{where}: a private key")
    if password and password in text:
        text = text.replace(password, REMOVED)
        removed.append(f"{where}: the WinRM password")
    return text


def secret_problem(value: Any, password: str | None = None) -> str | None:
    """Why this document must not be kept (a private key, the password in it), or None."""
    for text in _strings(value):
        if PRIVATE_KEY in text:
            return "it holds what looks like a private key (" + PRIVATE_KEY + ")"
        if password and password in text:
            return "the WinRM password appears in it"
    return None


def _strings(value: Any) -> list[str]:
    found, stack = [], [value]
    while stack:  # iterative: a deep document must not cost a RecursionError
        current = stack.pop()
        if isinstance(current, str):
            found.append(current)
        elif isinstance(current, dict):
            stack.extend(current.keys())
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return found


# -- reading a capture -----------------------------------------------------------------------


def read_bounded(path: str | os.PathLike[str], cap: int, what: str, error: Callable[[str], Exception]) -> bytes:
    """A regular file's bytes, at most `cap`; `error(sentence)` for anything else.

    Opened without blocking and checked with fstat, so a named pipe or a device never hangs us."""
    shown = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise error(f"{shown}: file not found; give the path of {what}.") from None
    except OSError as exc:
        raise error(f"{shown} cannot be read ({exc.strerror}); check the path and its permissions.") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise error(f"{shown} is not a regular file; give the path of {what}, not a folder, pipe or device.")
    with os.fdopen(fd, "rb") as f:
        too_big = f"{shown} is more than {cap:,} bytes, more than {what} can be; check that it is the right file."
        if info.st_size > cap:
            raise error(too_big)
        data = f.read(cap + 1)
    if len(data) > cap:  # it grew while we read it
        raise error(too_big)
    return data


def load_capture(path: str | os.PathLike[str]) -> CaptureDoc:
    """A capture file, read with limits and checked; CaptureError with one sentence otherwise."""
    data = read_bounded(path, MAX_CAPTURE_BYTES, "a certops capture file (JSON)", CaptureError)
    shown = str(path)
    try:
        # four parts, each held to MAX_JSON_VALUES when it was read from the host
        value = load_json(data, max_values=len(INVENTORY_SCRIPTS) * MAX_JSON_VALUES)
    except JSONRefused as exc:
        raise CaptureError(f"{shown} is not read because {exc}; take the capture again.") from None
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CaptureError(
            f"{shown} is not complete JSON (was it cut short?); send or copy the whole file again."
        ) from None
    return parse_capture(value, source=shown)


def parse_capture(value: Any, *, source: str = "the capture") -> CaptureDoc:
    """A capture document (as capture() returns it) checked and typed."""

    def refuse(sentence: str) -> CaptureError:
        return CaptureError(f"{source} {sentence}")

    if not isinstance(value, dict) or value.get("format") != FORMAT:
        shown = value.get("format") if isinstance(value, dict) else None
        raise refuse(
            f"is not a certops capture (its format is {json.dumps(shown)}, not {json.dumps(FORMAT)}); "
            "make one with `certops capture HOST`."
        )
    version = value.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise refuse(
            f"is capture format version {json.dumps(version)}, and this certops reads version {FORMAT_VERSION}; "
            "read it with the certops version that took it, or take the capture again."
        )
    problem = secret_problem(value)
    if problem:
        raise refuse(f"is refused because {problem}; delete it and take the capture again with `certops capture`.")
    host = value.get("host")
    taken_at = parse_time(value.get("taken_at"))
    if not isinstance(host, str) or not host:
        raise refuse('has no "host" name; take the capture again.')
    if taken_at is None:
        raise refuse('has no readable "taken_at" time (ISO 8601); take the capture again.')
    scripts = value.get("scripts")
    if not isinstance(scripts, dict) or not all(isinstance(v, str) for v in scripts.values()):
        raise refuse('has no "scripts" table of script names and SHA-256 sums; take the capture again.')
    parts = value.get("parts")
    if not isinstance(parts, list):
        raise refuse('has no "parts" list; take the capture again.')
    seen: set[str] = set()
    read = [_part(p, i, seen, refuse) for i, p in enumerate(parts)]
    removed = value.get("removed") or []
    return CaptureDoc(
        host=host,
        taken_at=taken_at,
        certops_version=str(value.get("certops_version") or "unknown"),
        scripts={str(k): v for k, v in scripts.items()},
        parts=tuple(read),
        removed=tuple(str(r) for r in removed) if isinstance(removed, list) else (),
    )


def _part(value: Any, index: int, seen: set[str], refuse: Callable[[str], CaptureError]) -> CapturedPart:
    where = f"parts[{index}]"
    if not isinstance(value, dict):
        raise refuse(f"has a {where} that is not an object; take the capture again.")
    name = value.get("name")
    if name not in INVENTORY_SCRIPTS:
        raise refuse(
            f"has {where} named {json.dumps(name)}, not one of {', '.join(INVENTORY_SCRIPTS)}; take the capture again."
        )
    if name in seen:
        raise refuse(f"has the {name} part twice ({where}); keep one of them.")
    seen.add(name)
    ok, params = value.get("ok"), value.get("params") or {}
    error, hresult = value.get("error"), value.get("hresult")
    if not isinstance(ok, bool) or not isinstance(params, dict):
        raise refuse(f'has {where} ({name}) without a true/false "ok" or with "params" that are not an object.')
    if not all(v is None or isinstance(v, str) for v in (error, hresult)):
        raise refuse(f'has {where} ({name}) whose "error" or "hresult" is not text.')
    return CapturedPart(name, params, ok, value.get("result"), error, hresult)


# -- judging ---------------------------------------------------------------------------------


def diagnose_capture(
    doc: CaptureDoc, probe: ProbeLike | None = None, *, overdue_grace: dt.timedelta = OVERDUE_GRACE
) -> tuple[Inventory, list[Finding], ActionResult]:
    """The capture judged offline, as diagnose_host judged the host when it was taken (its clock
    is the capture's `taken_at`, so an old capture does not grow new expiry findings)."""
    return judge(doc.host, doc.results(), probe, overdue_grace, now=doc.taken_at)


def describe(doc: CaptureDoc) -> str:
    """One line about a capture, for the command line."""
    certs = doc.document("certs") or {}
    failed = [p.name for p in doc.parts if not p.ok]
    return (
        f"{doc.host} at {doc.taken_at.isoformat()}: {len(certs.get('certs') or ())} certificate(s), "
        f"{len(doc.parts)} part(s)" + (f", failed: {', '.join(failed)}" if failed else "")
    )
