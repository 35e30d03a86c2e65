"""A WinRM session with a deadline: one shell, a few commands, always cleaned up.

pywinrm has no overall timeout (its get_command_output retries WS-Man operation timeouts for
ever), so we drive `Protocol` ourselves: one raw Receive at a time, each bounded by what is left
of the action's deadline, then Signal + Delete when time runs out. Every call blocks, so actions
run in worker threads (`run_in_thread`, `arun`), never on an event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar
from urllib.parse import urlsplit

import requests
from winrm import transport as winrm_transport
from winrm.exceptions import (
    InvalidCredentialsError,
    WinRMError,
    WinRMOperationTimeoutError,
    WinRMTransportError,
    WSManFaultError,
)
from winrm.protocol import Protocol

from host_actions.errors import HostActionError
from host_actions.scripts import OUTPUT_PREFIX, Part, bootstrap_command, chunks, encode_job
from host_actions.target import Host, SecretUnavailable

log = logging.getLogger("certops.host_actions")

P = ParamSpec("P")
T = TypeVar("T")

MAX_OPERATION_TIMEOUT = 20  # WS-Man's usual default; a Receive returns at least this often
CLEANUP_SECONDS = 5  # seconds allowed for Signal + Delete after a failure
UTF8_CODEPAGE = 65001
_TRANSPORTS: dict[str, Literal["basic", "certificate", "ntlm", "kerberos", "credssp"]] = {
    "basic": "basic",
    "certificate": "certificate",
    "ntlm": "ntlm",
    "kerberos": "kerberos",
    "credssp": "credssp",
}
# pywinrm only finds out at the first request; checking up front gives a sentence, not "failed"
_MISSING_LIBRARY = {
    "kerberos": ("HAVE_KERBEROS", "pykerberos"),
    "credssp": ("HAVE_CREDSSP", "requests-credssp"),
    "ntlm": ("HAVE_NTLM", "requests-ntlm"),
}
_WORKERS = ThreadPoolExecutor(max_workers=64, thread_name_prefix="certops-winrm")


@dataclass(frozen=True)
class PartResult:
    name: str
    ok: bool
    result: Any
    error: str | None = None
    hresult: str | None = None


@dataclass
class SessionStats:
    round_trips: int = 0  # HTTP POSTs to /wsman
    commands: int = 0
    shells: int = 0


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0


def build_protocol(host: Host) -> Protocol:
    """A pywinrm Protocol for the host. The password is read here and held only by pywinrm."""
    scheme = urlsplit(host.address).scheme
    if host.transport == "basic" and scheme != "https" and not host.allow_insecure_basic:
        raise HostActionError(
            "auth_failed",
            f"{host.name}: Basic authentication over http:// would send the password in clear; "
            "use https:// or set allow_insecure_basic.",
            host=host.name,
        )
    if host.transport == "certificate" and scheme != "https":
        raise HostActionError(
            "tls_failed",
            f"{host.name}: certificate authentication needs an https:// address.",
            host=host.name,
        )
    library = _MISSING_LIBRARY.get(host.transport)
    if library and not getattr(winrm_transport, library[0]):
        raise HostActionError(
            "auth_failed",
            f"{host.name}: transport {host.transport} needs {library[1]}, which is not installed "
            f"(pip install 'pywinrm[{host.transport}]').",
            host=host.name,
        )
    password: str | None = None
    if host.password is not None:
        try:
            password = host.password.resolve()
        except SecretUnavailable:
            raise HostActionError(
                "auth_failed",
                f"{host.name}: the WinRM password is not available ({host.password.describe()}).",
                host=host.name,
            ) from None
    try:
        return Protocol(
            endpoint=host.address,
            transport=_TRANSPORTS[host.transport],
            username=host.username,
            password=password,
            cert_pem=host.cert_file,
            cert_key_pem=host.key_file,
            server_cert_validation="validate" if host.verify_tls else "ignore",
            # None: do not fall back to REQUESTS_CA_BUNDLE (pywinrm warns about that path)
            ca_trust_path=host.ca_file if host.ca_file else None,  # type: ignore[arg-type]
            proxy=None,  # WinRM goes straight to the host; environment proxies are not ours to use
            operation_timeout_sec=MAX_OPERATION_TIMEOUT,
            read_timeout_sec=MAX_OPERATION_TIMEOUT + 10,
        )
    except WinRMError:
        raise HostActionError(
            "auth_failed",
            f"{host.name}: the WinRM client cannot be set up for transport {host.transport} "
            "(missing credentials or support library).",
            host=host.name,
        ) from None


class HostSession:
    """One WinRM shell on one host, under one deadline. Use as a context manager."""

    def __init__(self, host: Host, action: str, *, timeout: float | None = None) -> None:
        self.host = host
        self.action = action
        self.deadline = Deadline(timeout if timeout is not None else host.timeout)
        self.stats = SessionStats()
        self._protocol: Protocol | None = None
        self._shell_id: str | None = None
        self._started = time.monotonic()

    def __repr__(self) -> str:
        return f"HostSession(host={self.host.name!r}, action={self.action!r})"

    def __enter__(self) -> HostSession:
        protocol = build_protocol(self.host)
        self._count_round_trips(protocol)
        self._protocol = protocol
        try:
            self._shell_id = self._call(lambda: protocol.open_shell(codepage=UTF8_CODEPAGE, noprofile=True))
        except BaseException:
            protocol.transport.close_session()  # no shell to delete; just drop the connection
            raise
        self.stats.shells += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close_shell()
        log.info(
            "host action finished",
            extra={
                "host": self.host.name,
                "action": self.action,
                "ok": exc is None,
                "round_trips": self.stats.round_trips,
                "seconds": round(time.monotonic() - self._started, 3),
            },
        )

    def run(self, parts: Sequence[Part]) -> list[PartResult]:
        """Run the scripts as one command; one PartResult per part, in order."""
        protocol, shell_id = self._require_shell()
        job = encode_job(parts)
        command_id: str = self._call(
            lambda: protocol.run_command(shell_id, bootstrap_command(), console_mode_stdin=False)
        )
        self.stats.commands += 1
        try:
            pieces = list(chunks(job))
            for index, piece in enumerate(pieces):
                self._send(protocol, shell_id, command_id, piece, index == len(pieces) - 1)
            stdout, stderr, exit_code = self._receive(protocol, shell_id, command_id)
        except BaseException:
            self._cleanup_command(protocol, shell_id, command_id)
            raise
        self._cleanup_command(protocol, shell_id, command_id)
        return self._parse(parts, stdout, stderr, exit_code)

    # -- internals ---------------------------------------------------------------------------

    def _require_shell(self) -> tuple[Protocol, str]:
        if self._protocol is None or self._shell_id is None:
            raise RuntimeError("HostSession used outside its with-block")
        return self._protocol, self._shell_id

    def _send(self, protocol: Protocol, shell_id: str, command_id: str, data: bytes, end: bool) -> None:
        self._call(lambda: protocol.send_command_input(shell_id, command_id, data, end))

    def _count_round_trips(self, protocol: Protocol) -> None:
        transport = protocol.transport
        send = transport.send_message

        def counted(message: str | bytes) -> bytes:
            self.stats.round_trips += 1
            result: bytes = send(message)
            return result

        # wrapping the instance attribute counts every POST, whichever Protocol method sends it
        setattr(transport, "send_message", counted)  # noqa: B010 - mypy forbids assigning a method

    def _receive(self, protocol: Protocol, shell_id: str, command_id: str) -> tuple[bytes, bytes, int]:
        out: list[bytes] = []
        err: list[bytes] = []
        while True:
            remaining = self.deadline.remaining()
            if remaining <= 0:
                raise self._timeout()
            # The host holds a Receive open for up to OperationTimeout when there is no output;
            # bounding it by the time left keeps the overrun to about a second.
            operation = max(1, min(MAX_OPERATION_TIMEOUT, int(remaining)))
            protocol.operation_timeout_sec = operation
            # pywinrm needs read > operation; past that, a stalled socket may eat at most ~1 s
            protocol.transport.read_timeout_sec = min(operation + 5, max(operation + 1, math.ceil(remaining) + 1))
            try:
                stdout, stderr, code, done = protocol.get_command_output_raw(shell_id, command_id)
            except WinRMOperationTimeoutError:
                continue  # nothing new yet: ask again while the deadline allows
            except BaseException as exc:
                raise self._translate(exc) from None
            finally:
                protocol.operation_timeout_sec = MAX_OPERATION_TIMEOUT
            out.append(stdout)
            err.append(stderr)
            if done:
                return b"".join(out), b"".join(err), int(code)

    def _call(self, fn: Callable[[], T]) -> T:
        remaining = self.deadline.remaining()
        if remaining <= 0:
            raise self._timeout()
        assert self._protocol is not None
        self._protocol.transport.read_timeout_sec = max(1, math.ceil(min(remaining, 30)))
        try:
            return fn()
        except HostActionError:
            raise
        except BaseException as exc:
            raise self._translate(exc) from None

    def _cleanup_command(self, protocol: Protocol, shell_id: str, command_id: str) -> None:
        protocol.transport.read_timeout_sec = CLEANUP_SECONDS
        try:
            protocol.cleanup_command(shell_id, command_id)
        except Exception:  # best effort; the shell's Delete follows
            log.debug("command cleanup failed", extra={"host": self.host.name})

    def _close_shell(self) -> None:
        if self._protocol is None or self._shell_id is None:
            return
        protocol, shell_id = self._protocol, self._shell_id
        self._shell_id = None
        protocol.transport.read_timeout_sec = CLEANUP_SECONDS
        try:
            protocol.close_shell(shell_id)
        except Exception:  # the host drops idle shells itself after IdleTimeOut
            log.debug("shell close failed", extra={"host": self.host.name})
        finally:
            protocol.transport.close_session()  # close_shell skips this when its POST fails

    def _timeout(self) -> HostActionError:
        return HostActionError(
            "timeout",
            f"{self.host.name}: {self.action} did not finish within {self.deadline.seconds:g} s and was stopped.",
            host=self.host.name,
        )

    def _translate(self, exc: BaseException) -> HostActionError:
        name = self.host.name
        if isinstance(exc, HostActionError):
            return exc
        if isinstance(exc, InvalidCredentialsError):
            return HostActionError(
                "auth_failed",
                f"{name}: the host refused the WinRM credentials (wrong user name or password, "
                "or this account may not use WinRM).",
                host=name,
            )
        if isinstance(exc, WinRMOperationTimeoutError):
            return self._timeout()
        if isinstance(exc, WSManFaultError):
            code = exc.wsman_fault_code
            reason = _short(exc.reason or "")
            return HostActionError(
                "script_failed",
                f"{name}: WinRM refused the request"
                + (f" (fault {code})" if code is not None else "")
                + (f": {reason}" if reason else "."),
                host=name,
            )
        if isinstance(exc, WinRMTransportError):
            return HostActionError("unreachable", f"{name}: WinRM answered with HTTP {exc.code}.", host=name)
        if isinstance(exc, requests.exceptions.SSLError):
            return HostActionError(
                "tls_failed",
                f"{name}: the TLS connection to WinRM failed (certificate not trusted, wrong name, or TLS mismatch).",
                host=name,
            )
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return HostActionError("unreachable", f"{name}: WinRM did not accept a connection in time.", host=name)
        if isinstance(exc, requests.exceptions.Timeout):
            return self._timeout()
        if isinstance(exc, requests.exceptions.ConnectionError):
            return HostActionError(
                "unreachable",
                f"{name}: cannot connect to WinRM at {_endpoint(self.host.address)}.",
                host=name,
            )
        if isinstance(exc, (ET.ParseError, StopIteration, AssertionError, ValueError, KeyError)):
            return HostActionError("bad_output", f"{name}: WinRM sent an answer that could not be read.", host=name)
        if isinstance(exc, WinRMError):
            return HostActionError("unreachable", f"{name}: WinRM failed.", host=name)
        if isinstance(exc, Exception):
            log.exception("unexpected WinRM failure", extra={"host": name})
            return HostActionError("unreachable", f"{name}: WinRM failed unexpectedly.", host=name)
        raise exc  # KeyboardInterrupt, SystemExit

    def _parse(self, parts: Sequence[Part], stdout: bytes, stderr: bytes, exit_code: int) -> list[PartResult]:
        name = self.host.name
        docs: list[PartResult] = []
        for line in stdout.decode("utf-8", "replace").splitlines():
            line = line.strip()
            if not line.startswith(OUTPUT_PREFIX):
                continue  # stray console output (Write-Host) is not ours to judge
            try:
                raw = json.loads(base64.b64decode(line[len(OUTPUT_PREFIX) :], validate=True))
            except (binascii.Error, ValueError):
                raise HostActionError(
                    "bad_output",
                    f"{name}: a script printed output that could not be read.",
                    host=name,
                ) from None
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise HostActionError("bad_output", f"{name}: a script printed an unexpected document.", host=name)
            docs.append(
                PartResult(
                    name=raw["name"],
                    ok=bool(raw.get("ok")),
                    result=raw.get("result"),
                    error=_short(str(raw["error"])) if raw.get("error") else None,
                    hresult=str(raw["hresult"]) if raw.get("hresult") else None,
                )
            )
        if exit_code != 0 and not docs:
            detail = clixml_errors(stderr)
            raise HostActionError(
                "script_failed",
                f"{name}: the script runner exited with code {exit_code}" + (f": {detail}" if detail else "."),
                host=name,
            )
        if [d.name for d in docs] != [p.name for p in parts]:
            raise HostActionError(
                "bad_output",
                f"{name}: expected results for {len(parts)} script(s), got {len(docs)}.",
                host=name,
            )
        return docs


def clixml_errors(stderr: bytes) -> str:
    """The error text in stderr, with PowerShell's CLIXML progress records dropped."""
    text = stderr.decode("utf-8", "replace")
    if not text.startswith("#< CLIXML"):
        return _short(text.strip())
    messages = []
    for kind, body in re.findall(r'<S S="(\w+)">(.*?)</S>', text, flags=re.S):
        if kind.lower() == "error":
            body = body.replace("_x000D__x000A_", " ").replace("_x000A_", " ")
            messages.append(body.strip())
    return _short(" ".join(m for m in messages if m))


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _endpoint(address: str) -> str:
    parts = urlsplit(address)
    return f"{parts.hostname}:{parts.port or (5986 if parts.scheme == 'https' else 5985)}"


def run_in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """Submit a blocking host action to the shared WinRM worker pool."""
    return _WORKERS.submit(fn, *args, **kwargs)


async def arun(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Await a blocking host action from async code without blocking the event loop."""
    loop = asyncio.get_running_loop()
    return await asyncio.wrap_future(loop.run_in_executor(_WORKERS, lambda: fn(*args, **kwargs)))
