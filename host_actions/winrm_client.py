"""A WinRM session with a deadline: one shell, a few commands, always cleaned up.

pywinrm has no overall timeout (its get_command_output retries WS-Man operation timeouts for
ever), so we drive `Protocol` ourselves: one raw Receive at a time, each bounded by what is left
of the action's deadline, then Signal + Delete when time runs out. Every call blocks, so actions
run in worker threads (`run_in_thread`, `arun`), never on an event loop.

requests only bounds each socket read, so a host that answers one byte a second, or with an
endless chunked body, would hold a read open for ever. Each session therefore mounts its own
HTTP adapter on pywinrm's requests session: it refuses redirects, reads the body in pieces up
to the host's max_response_bytes, and registers every socket with a watchdog timer that shuts
them down when the wall-clock deadline passes, which unblocks the worker thread wherever it
waits (status line, headers, TLS records, body).

Receive answers are read as they are parsed (`_ReceiveReader`: no element tree, streams decoded
into one bytearray each), the answers pywinrm parses itself are held to a few thousand elements,
and the scripts' output lines are found with bytes.find, so no answer within the size cap costs
more than a few times its size in memory.

Actions run on threads of their own, not on a fixed pool: a host runs at most HOST_SESSIONS
sessions at once and further actions for it wait in its queue without holding a thread, so hosts
that never answer cannot delay a healthy one. An action's deadline starts when it is submitted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import http.client
import logging
import math
import re
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
import xmltodict  # type: ignore[import-untyped]
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import ConnectionPool, HTTPConnectionPool, HTTPSConnectionPool
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
from host_actions.parsers import JSONRefused, load_json
from host_actions.scripts import OUTPUT_PREFIX, Part, bootstrap_command, chunks, encode_job
from host_actions.target import Host, SecretUnavailable

log = logging.getLogger("certops." + __name__)  # the certops.* tree (host_actions imports nothing from bot)

P = ParamSpec("P")
T = TypeVar("T")

MAX_OPERATION_TIMEOUT = 20  # WS-Man's usual default; a Receive returns at least this often
CLEANUP_SECONDS = 5  # for Signal + Delete: each at most this long, and all done this long after the deadline
GRACE_SECONDS = 2.0  # past the deadline before the watchdog cuts: a Receive's own timeout may end up to ~1 s late
POLL_FIRST = 0.05  # the least time between two Receives of one command (at most 20 a second),
POLL_MAX = 2.0  # and the most: a Receive that came back at once with less than BUSY_OUTPUT doubles it
BUSY_OUTPUT = 4096  # bytes of output in one Receive that reset the pause to POLL_FIRST
READ_SIZE = 64 * 1024  # one socket read of an answer body; also one piece fed to the XML parser
HOST_SESSIONS = 2  # sessions one host may run at once; its further actions wait in its queue
SEND_ATTEMPTS = 3  # a Send answered with the OperationTimeout fault is tried this often in all
SEND_RETRY_PAUSE = 0.5  # seconds before the second attempt, twice that before the third
LANGUAGE_MODE_EXIT = 3  # the bootstrap's exit code when PowerShell is not in FullLanguage mode
LANGUAGE_MODE_PREFIX = b"CERTOPS-LANGUAGE-MODE "
MAX_THREADS = 256  # threads for running sessions; a host with none running always gets one at once
# what an answer may hold before any XML parser sees it (see _check_answer)
MAX_TAG = 8 * 1024  # bytes of one tag (its attributes): expat and ElementTree build it whole
MAX_ELEMENTS = 10_000  # elements in an answer pywinrm parses into a tree (all but Receive answers)
MAX_ATTRIBUTES = 20_000  # attributes in such an answer
MAX_DEPTH = 32  # nesting of a Receive answer (a real one nests 5 deep)
_ENCODINGS = {"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1"}
_DECLARED_ENCODING = re.compile(rb"""^\s*(?:\xef\xbb\xbf)?<\?xml[^>]*?encoding\s*=\s*["']([^"']*)["']""")
_LONG_TAG = re.compile(rb"<[^<>]{%d}" % MAX_TAG)
SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
# what OpenSSL says when the bytes after a ClientHello are not TLS at all (plain HTTP, usually)
_NOT_TLS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL", "HTTP_REQUEST"}
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
    def __init__(self, seconds: float, *, start: float | None = None) -> None:
        """`start`: the time.monotonic() the clock started at (an action's submission); now if None."""
        self.seconds = seconds
        self.start = time.monotonic() if start is None else start
        self.end = self.start + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0


class _Watchdog:
    """The wall clock of one session, enforced from outside the thread doing the I/O.

    Every socket the session's connections open is duplicated and kept here; when the current
    deadline passes, a timer thread shuts them all down. shutdown() acts on the socket, not on
    one descriptor, so a read blocked in another thread returns at once. Keeping our own
    duplicate means we never shut a descriptor number the kernel has handed to someone else.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: dict[int, socket.socket] = {}
        self._end = math.inf  # time.monotonic() at which the sockets are shut
        self._generation = 0
        self._timer: threading.Timer | None = None
        self.fired = False  # the current deadline passed and the sockets were shut
        self.ever_fired = False

    def arm(self, end: float) -> None:
        """Shut every socket at `end` (a time.monotonic() value), unless re-armed before."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._generation += 1
            self._end = end
            self.fired = False
            timer = threading.Timer(max(0.0, end - time.monotonic()), self._fire, (self._generation,))
            timer.daemon = True
            self._timer = timer
        timer.start()

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def watch(self, sock: socket.socket) -> socket.socket | None:
        try:
            twin = sock.dup()
        except OSError:
            return None
        with self._lock:
            self._sockets[id(twin)] = twin
            late = self.fired
        if late:
            _shut(twin)
        return twin

    def release(self, twin: socket.socket | None) -> None:
        if twin is None:
            return
        with self._lock:
            self._sockets.pop(id(twin), None)
        twin.close()

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._generation += 1
            twins, self._sockets = list(self._sockets.values()), {}
        for twin in twins:
            twin.close()

    def _fire(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return  # re-armed (or closed) since this timer was set
            self.fired = self.ever_fired = True
            twins = list(self._sockets.values())
        for twin in twins:
            _shut(twin)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the peer or by urllib3
        sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTPConnection(HTTPConnection):
    """A urllib3 connection whose socket the session's watchdog can shut from another thread."""

    def __init__(self, *args: Any, watchdog: _Watchdog, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watchdog = watchdog
        self._twin: socket.socket | None = None

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        # registered before any TLS handshake: a host can stall that too
        self._watchdog.release(self._twin)
        self._twin = self._watchdog.watch(sock)
        return sock

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._watchdog.release(self._twin)
            self._twin = None


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    pass


class _GuardedAdapter(HTTPAdapter):
    """requests' adapter for one session: deadline-bounded, size-capped, no redirects."""

    def __init__(self, watchdog: _Watchdog, host: str, max_bytes: int) -> None:
        super().__init__(pool_connections=1, pool_maxsize=1)
        self.watchdog = watchdog
        self.host = host
        self.max_bytes = max_bytes

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: Mapping[str, str] | None = None,
        cert: tuple[str, str] | str | None = None,
    ) -> ConnectionPool:
        pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
        if isinstance(pool, HTTPConnectionPool) and pool.conn_kw.get("watchdog") is not self.watchdog:
            secure = isinstance(pool, HTTPSConnectionPool)
            pool.ConnectionCls = _WatchedHTTPSConnection if secure else _WatchedHTTPConnection
            pool.conn_kw["watchdog"] = self.watchdog
        return pool

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        per_read = timeout[1] if isinstance(timeout, tuple) else timeout
        wait = self._wait(per_read)
        response = super().send(request, stream=True, timeout=(wait, wait), verify=verify, cert=cert, proxies=proxies)
        try:
            self._refuse_unwanted(response)
            if not self._left_for_auth(request, response):
                response._content = self._read_body(response, per_read)
                response.raw.release_conn()  # back to the pool: NTLM authenticates the connection
        except BaseException:
            response.close()
            raise
        return response

    def _left_for_auth(self, request: requests.PreparedRequest, response: requests.Response) -> bool:
        """NTLM, Kerberos and CredSSP answer a 401 from a response hook that reads the server's
        certificate off the unread response (channel binding), so such a challenge stays unread
        here. It must declare its length, which _refuse_unwanted has held to max_bytes, so the
        hook's own read is bounded too (and the watchdog bounds its time)."""
        if response.status_code != 401 or not request.hooks.get("response"):
            return False
        if response.headers.get("Content-Length", "").strip().isdigit():
            return True
        raise HostActionError(
            "auth_failed",
            f"{self.host}: WinRM sent an authentication challenge without a Content-Length, which certops "
            "does not read.",
            host=self.host,
        )

    def _wait(self, per_read: float | None) -> float:
        remaining = self.watchdog.remaining()
        if remaining <= 0 or self.watchdog.fired:
            raise _DeadlinePassed()
        return max(0.05, min(remaining, per_read or MAX_OPERATION_TIMEOUT + 10))

    def _refuse_unwanted(self, response: requests.Response) -> None:
        name = self.host
        if 300 <= response.status_code < 400:
            # requests would re-send the SOAP body (and the Authorization header) wherever it points
            raise HostActionError(
                "redirected",
                f"{name}: WinRM answered with a redirect (HTTP {response.status_code}), which certops does not "
                "follow; set [[hosts]] address to the WinRM listener itself.",
                host=name,
            )
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise HostActionError(
                "bad_output", f"{name}: WinRM sent a compressed answer, which certops does not accept.", host=name
            )
        length = response.headers.get("Content-Length", "")
        if length.strip().isdigit() and int(length) > self.max_bytes:
            raise self.too_large()

    def _read_body(self, response: requests.Response, per_read: float | None) -> bytes:
        raw = response.raw
        body = bytearray()  # not a list of pieces: a body sent in one-byte chunks would cost 40 bytes a byte
        try:
            while True:
                wait = self._wait(per_read)
                connection = getattr(raw, "connection", None)
                sock = getattr(connection, "sock", None)
                if sock is not None:
                    sock.settimeout(wait)  # one slow read may not outlast the deadline
                piece = raw.read1(READ_SIZE, decode_content=False)
                if not piece:
                    break
                if len(body) + len(piece) > self.max_bytes:
                    raise self.too_large()
                body += piece
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise requests.exceptions.ReadTimeout(exc) from exc
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
            raise requests.exceptions.ConnectionError(exc) from exc
        return bytes(body)

    def too_large(self) -> HostActionError:
        return HostActionError(
            "too_large",
            f"{self.host}: WinRM sent an answer larger than {_size(self.max_bytes)} ([[hosts]] max_response_bytes) "
            "and it was refused; check the host, or raise the limit if such answers are expected.",
            host=self.host,
        )


class _DeadlinePassed(Exception):
    """Raised inside the adapter when the wall clock has run out; becomes the session's timeout."""


class _BadAnswer(Exception):
    """An answer refused before or while it was parsed; args[0] is our own phrase saying why."""


class _TooMuchOutput(Exception):
    """A Receive answer took the command's output past max_response_bytes."""


def _check_answer(body: bytes, *, tree: bool) -> None:
    """Refuses an answer whose shape alone would cost far more memory than its size once parsed.

    expat and ElementTree build each tag whole before anyone sees it (a tag of a million
    attributes is 200 MB), and pywinrm parses every answer but Receive into a tree of all its
    elements (`tree`); a Receive answer goes through _ReceiveReader, which keeps nothing. The
    checks are on bytes, so the markup must be ASCII-compatible: no UTF-16 or UTF-32.
    """
    if b"\0" in body:
        raise _BadAnswer("it is not UTF-8")
    declared = _DECLARED_ENCODING.match(body, 0, 256)
    if declared and declared.group(1).decode("ascii", "replace").lower() not in _ENCODINGS:
        raise _BadAnswer("it is not UTF-8")
    if b"<!DOCTYPE" in body:
        raise _BadAnswer("it declares a DTD")
    if _LONG_TAG.search(body):  # linear: [^<>] stops at the next "<"
        raise _BadAnswer(f"it holds a tag longer than {_size(MAX_TAG)}")
    if tree and body.count(b"<") > 2 * MAX_ELEMENTS:
        raise _BadAnswer(f"it holds more than {MAX_ELEMENTS:,} elements")
    if tree and body.count(b"=") > MAX_ATTRIBUTES:
        raise _BadAnswer(f"it holds more than {MAX_ATTRIBUTES:,} attributes")


class _ReceiveReader:
    """An ElementTree parser target for one ReceiveResponse that builds no tree: each Stream's
    base64 text is decoded as it arrives, into one bytearray per stream."""

    def __init__(self, stdout: bytearray, stderr: bytearray, limit: int) -> None:
        self._streams = {"stdout": stdout, "stderr": stderr}
        self._limit = limit  # bytes of stdout and stderr together, over all the command's Receives
        self._in_stream = False
        self._into: bytearray | None = None  # the stream whose text is being read, if it is one we keep
        self._text: list[str] = []  # base64 not decoded yet: less than a piece, or not a multiple of 4
        self._pending = 0
        self._exit: list[str] | None = None
        self._depth = 0
        self.done = False
        self.exit_code: int | None = None
        self.added = 0  # bytes of output this answer carried

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _BadAnswer(f"it is nested deeper than {MAX_DEPTH} levels")
        name = tag.rpartition("}")[2]
        if name == "Stream":
            if self._in_stream:
                raise _BadAnswer("a stream holds another")
            self._in_stream = True
            self._into = self._streams.get(attrib.get("Name", ""))  # others ("pr") are dropped, as pywinrm does
        elif name == "CommandState" and attrib.get("State", "").endswith("CommandState/Done"):
            self.done = True
        elif name == "ExitCode":
            self._exit = []

    def data(self, text: str) -> None:
        if self._into is not None:
            self._text.append(text)
            self._pending += len(text)
            if self._pending >= READ_SIZE:
                self._decode(final=False)
        elif self._exit is not None and sum(map(len, self._exit)) < 64:
            self._exit.append(text)

    def end(self, tag: str) -> None:
        self._depth -= 1
        name = tag.rpartition("}")[2]
        if name == "Stream":
            if self._into is not None:
                self._decode(final=True)
            self._in_stream, self._into = False, None
        elif name == "ExitCode" and self._exit is not None:
            text = "".join(self._exit).strip()
            self._exit = None
            if self.exit_code is None:  # the first one, as pywinrm reads it
                try:
                    self.exit_code = int(text) if text else -1
                except ValueError:
                    raise _BadAnswer("its exit code is not a number") from None

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise _BadAnswer("it declares a DTD")  # before expat reads the internal subset, so no entity exists

    def close(self) -> None:
        if self.done and self.exit_code is None:
            raise _BadAnswer("it says the command is done but not how it exited")

    def _decode(self, *, final: bool) -> None:
        assert self._into is not None
        text = "".join("".join(self._text).split())  # base64 may be wrapped; nothing else may be in it
        self._text.clear()
        keep = 0 if final else len(text) % 4
        self._pending = keep
        if keep:
            self._text.append(text[-keep:])
            text = text[:-keep]
        if not text:
            return
        try:
            piece = base64.b64decode(text, validate=True)
        except binascii.Error:
            raise _BadAnswer("a stream is not base64") from None
        self._into += piece
        self.added += len(piece)
        if sum(map(len, self._streams.values())) > self._limit:
            raise _TooMuchOutput()


def _receive_message(protocol: Protocol, shell_id: str, command_id: str) -> str:
    """The WS-Man Receive request, as pywinrm's get_command_output_raw builds it."""
    envelope = protocol.build_wsman_header(
        resource_uri=f"{SHELL_URI}/cmd", action=f"{SHELL_URI}/Receive", shell_id=shell_id
    )
    envelope["env:Body"] = {"rsp:Receive": {"rsp:DesiredStream": {"@CommandId": command_id, "#text": "stdout stderr"}}}
    message: str = xmltodict.unparse({"env:Envelope": envelope})
    return message


def _read_receive(answer: bytes, reader: _ReceiveReader, deadline: Deadline) -> None:
    # S314: the answer passed _check_answer (no DTD, so no entities), and the reader refuses a DTD itself
    parser = ET.XMLParser(target=reader)  # noqa: S314
    view = memoryview(answer)
    for at in range(0, len(answer), READ_SIZE):
        if deadline.expired():
            raise _DeadlinePassed()
        parser.feed(view[at : at + READ_SIZE])
    parser.close()


def _output_lines(stdout: bytes | bytearray, prefix: bytes) -> Iterator[bytes | bytearray]:
    """The lines of stdout that start with `prefix` (after whitespace), stripped; found with
    find, so output of millions of other lines costs no objects. Line ends: \\n, \\r, \\r\\n."""
    position = 0  # where the current line starts, or the line break before it
    size = len(stdout)
    while True:
        at = stdout.find(prefix, position)
        if at < 0:
            return
        start = max(position, stdout.rfind(b"\n", position, at) + 1, stdout.rfind(b"\r", position, at) + 1)
        newline = stdout.find(b"\n", at)
        end = newline if newline >= 0 else size
        carriage = stdout.find(b"\r", at, end)  # searched only up to the \n: linear, however many lines
        end = carriage if carriage >= 0 else end
        position = end  # a prefix later in this line is not at its start either
        if stdout[start:at].strip():
            continue  # the prefix inside some other line
        line = stdout[at:end].strip()
        if line.startswith(prefix):
            yield line


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
        # submitted through run_in_thread/arun: the clock started then, waiting in the queue counts
        self.deadline = Deadline(timeout if timeout is not None else host.timeout, start=_submitted(host))
        self.stats = SessionStats()
        self._protocol: Protocol | None = None
        self._shell_id: str | None = None
        self._started = time.monotonic()
        self._watchdog = _Watchdog()
        self._streamed = False  # the answer on its way goes to _ReceiveReader, not to pywinrm's tree

    def __repr__(self) -> str:
        return f"HostSession(host={self.host.name!r}, action={self.action!r})"

    def __enter__(self) -> HostSession:
        self._arm_main()
        try:
            protocol = build_protocol(self.host)
            self._guard(protocol)
            self._count_round_trips(protocol)
            self._protocol = protocol
            try:
                self._shell_id = self._call(lambda: protocol.open_shell(codepage=UTF8_CODEPAGE, noprofile=True))
            except BaseException:
                protocol.transport.close_session()  # no shell to delete; just drop the connection
                raise
        except BaseException:
            self._watchdog.close()
            raise
        self.stats.shells += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._close_shell()
        finally:
            self._watchdog.close()
        outcome = _outcome(exc, self._watchdog.ever_fired)
        seconds = round(time.monotonic() - self._started, 3)
        log.info(
            "%s on %s: %s in %.1f s, %d round trips",
            self.action,
            self.host.name,
            outcome,
            seconds,
            self.stats.round_trips,
            extra={
                "host": self.host.name,
                "action": self.action,
                "outcome": outcome,
                "ok": exc is None,
                "round_trips": self.stats.round_trips,
                "seconds": seconds,
                "cut_at_deadline": self._watchdog.ever_fired,
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
        """One piece of the job on stdin. A host under load may answer a Send with the w:TimedOut
        (OperationTimeout) fault; that Send is sent again, at most SEND_ATTEMPTS times in all and
        never past the deadline. If the host had taken the piece after all, the job arrives twice,
        the bootstrap cannot decode it and exits 2 (script_failed): never a wrong action."""
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                self._call(lambda: protocol.send_command_input(shell_id, command_id, data, end), timeouts=True)
                return
            except WinRMOperationTimeoutError:
                log.warning(
                    "%s: WS-Man Send timed out (attempt %d of %d)",
                    self.host.name,
                    attempt,
                    SEND_ATTEMPTS,
                    extra={"host": self.host.name, "action": self.action, "attempt": attempt, "outcome": "timeout"},
                )
                pause = min(SEND_RETRY_PAUSE * attempt, self.deadline.remaining())
                if attempt == SEND_ATTEMPTS or pause <= 0:
                    break
                time.sleep(pause)
        raise HostActionError(
            "timeout",
            f"{self.host.name}: the host did not take the job on stdin: {SEND_ATTEMPTS} WS-Man Sends timed "
            "out (OperationTimeout); the host may be under heavy load.",
            host=self.host.name,
        )

    def _guard(self, protocol: Protocol) -> None:
        """Mounts this session's adapter on whichever requests session pywinrm builds. NTLM with
        encryption sends its first request from inside build_session (setup_encryption), so the
        adapter goes on there too, before that request."""
        transport = protocol.transport
        build, setup = transport.build_session, transport.setup_encryption
        adapter = _GuardedAdapter(self._watchdog, self.host.name, self.host.max_response_bytes)

        def guarded(session: requests.Session) -> requests.Session:
            if session.adapters.get("https://") is not adapter:
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                session.headers["Accept-Encoding"] = "identity"
                session.max_redirects = 0
            return session

        def setup_encryption(session: requests.Session) -> None:
            setup(guarded(session))

        def build_session() -> requests.Session:
            return guarded(build())

        # instance attributes, as with send_message below: pywinrm calls both through self
        setattr(transport, "setup_encryption", setup_encryption)  # noqa: B010
        setattr(transport, "build_session", build_session)  # noqa: B010

    def _count_round_trips(self, protocol: Protocol) -> None:
        """Counts every POST and checks every answer (and HTTP error body, which pywinrm parses
        for a fault) before anything parses it, whichever Protocol method sent it."""
        transport = protocol.transport
        send = transport.send_message

        def counted(message: str | bytes) -> bytes:
            self.stats.round_trips += 1
            try:
                result: bytes = send(message)
            except WinRMTransportError as exc:
                _check_answer(str(exc.response_text).encode("utf-8", "replace"), tree=True)
                raise
            _check_answer(result, tree=not self._streamed)
            return result

        # wrapping the instance attribute counts every POST, whichever Protocol method sends it
        setattr(transport, "send_message", counted)  # noqa: B010 - mypy forbids assigning a method

    def _receive(self, protocol: Protocol, shell_id: str, command_id: str) -> tuple[bytearray, bytearray, int]:
        stdout, stderr = bytearray(), bytearray()
        pause = POLL_FIRST
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
            asked = time.monotonic()
            reader = _ReceiveReader(stdout, stderr, self.host.max_response_bytes)
            try:
                self._streamed = True
                try:
                    answer = protocol.send_message(_receive_message(protocol, shell_id, command_id))
                finally:
                    self._streamed = False
                _read_receive(answer, reader, self.deadline)
                del answer
            except WinRMOperationTimeoutError:
                pass  # nothing new yet: ask again while time allows
            except _TooMuchOutput:
                raise HostActionError(
                    "too_large",
                    f"{self.host.name}: {self.action} printed more than {_size(self.host.max_response_bytes)} of "
                    "output ([[hosts]] max_response_bytes) and was stopped.",
                    host=self.host.name,
                ) from None
            except BaseException as exc:
                raise self._translate(exc) from None
            finally:
                protocol.operation_timeout_sec = MAX_OPERATION_TIMEOUT
            if reader.done:
                return stdout, stderr, reader.exit_code if reader.exit_code is not None else -1
            # Paced by what comes back, so no host can make us ask in a tight loop: "Running" at
            # once for ever, or with a byte of output each time. Only an answer that carried some
            # KiB of output keeps the pause at its floor; anything else doubles it.
            took = time.monotonic() - asked
            busy = reader.added >= BUSY_OUTPUT
            nap = min((POLL_FIRST if busy else pause) - took, self.deadline.remaining())
            if nap > 0:
                time.sleep(nap)
            pause = POLL_FIRST if busy else min(pause * 2, POLL_MAX)

    def _call(self, fn: Callable[[], T], *, timeouts: bool = False) -> T:
        """`timeouts`: let a WS-Man OperationTimeout through for the caller to retry."""
        remaining = self.deadline.remaining()
        if remaining <= 0:
            raise self._timeout()
        assert self._protocol is not None
        self._protocol.transport.read_timeout_sec = max(1, math.ceil(min(remaining, 30)))
        try:
            return fn()
        except HostActionError:
            raise
        except WinRMOperationTimeoutError:
            if timeouts and not self._watchdog.fired and not self.deadline.expired():
                raise
            raise self._timeout() from None
        except BaseException as exc:
            raise self._translate(exc) from None

    def _cleanup_command(self, protocol: Protocol, shell_id: str, command_id: str) -> None:
        if not self._arm_cleanup(protocol):
            return
        try:
            protocol.cleanup_command(shell_id, command_id)
        except Exception:  # best effort; the shell's Delete follows
            log.debug("%s: command cleanup failed", self.host.name, extra={"host": self.host.name})
        finally:
            if not self.deadline.expired():
                self._arm_main()  # the next command, if any, runs on the action's own clock

    def _close_shell(self) -> None:
        if self._protocol is None or self._shell_id is None:
            return
        protocol, shell_id = self._protocol, self._shell_id
        self._shell_id = None
        try:
            if self._arm_cleanup(protocol):
                protocol.close_shell(shell_id)
        except Exception:  # the host drops idle shells itself after IdleTimeOut
            log.debug("%s: shell close failed", self.host.name, extra={"host": self.host.name})
        finally:
            protocol.transport.close_session()  # close_shell skips this when its POST fails

    def _arm_cleanup(self, protocol: Protocol) -> bool:
        """Each cleanup request gets at most CLEANUP_SECONDS, and all of them end CLEANUP_SECONDS
        after the deadline at the latest, whatever the host does. False when that allowance is
        spent (the host drops the shell itself after its IdleTimeOut)."""
        budget = min(CLEANUP_SECONDS, self.deadline.end + CLEANUP_SECONDS - time.monotonic())
        if budget < 0.1:
            log.debug("%s: no time left to clean up", self.host.name, extra={"host": self.host.name})
            return False
        self._watchdog.arm(time.monotonic() + budget)
        protocol.transport.read_timeout_sec = max(1, math.ceil(budget))
        return True

    def _arm_main(self) -> None:
        # the grace lets a Receive that the host holds up to the deadline answer on a healthy
        # connection, so Signal and Delete can still use it (NTLM cannot re-seal on a new one)
        self._watchdog.arm(self.deadline.end + GRACE_SECONDS)

    def _timeout(self) -> HostActionError:
        queued = self._started - self.deadline.start
        waited = f" ({queued:.1f} s of it waiting for the host's earlier actions)" if queued >= 0.1 else ""
        return HostActionError(
            "timeout",
            f"{self.host.name}: {self.action} did not finish within {self.deadline.seconds:g} s{waited} "
            "and was stopped.",
            host=self.host.name,
        )

    def _translate(self, exc: BaseException) -> HostActionError:
        name = self.host.name
        if isinstance(exc, HostActionError):
            return exc
        cut = self._watchdog.fired or (self._watchdog.ever_fired and self.deadline.expired())
        if cut or isinstance(exc, _DeadlinePassed):
            # whatever the cut socket raised, the cause is the deadline (also when a cleanup has
            # re-armed the watchdog since it cut the socket this error came from)
            return self._timeout()
        if isinstance(exc, _BadAnswer):
            return HostActionError(
                "bad_output", f"{name}: WinRM sent an answer that could not be read ({exc.args[0]}).", host=name
            )
        if isinstance(exc, PermissionError) and self.host.transport == "ntlm":
            # requests_ntlm's own refusal: the 401 offered other schemes but no NTLM token
            return HostActionError(
                "auth_failed",
                f"{name}: WinRM refused NTLM authentication: its HTTP 401 carried no NTLM challenge "
                "(is Negotiate/NTLM enabled for the WinRM service on the host?).",
                host=name,
            )
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
        if isinstance(exc, requests.exceptions.ConnectionError) and _not_tls(exc):
            return HostActionError(
                "tls_mismatch",
                f"{name}: {_endpoint(self.host.address)} answered in plain HTTP, not TLS; check the address "
                "(https:// is usually port 5986, http:// port 5985).",
                host=name,
            )
        if isinstance(exc, requests.exceptions.SSLError):
            return HostActionError(
                "tls_failed",
                f"{name}: the TLS connection to WinRM failed (certificate not trusted, or issued for another name).",
                host=name,
            )
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return HostActionError("unreachable", f"{name}: WinRM did not accept a connection in time.", host=name)
        if isinstance(exc, requests.exceptions.Timeout):
            return self._timeout()
        broken = _broken_http(exc)
        if broken == "closed":
            return HostActionError(
                "unreachable",
                f"{name}: WinRM at {_endpoint(self.host.address)} closed the connection without answering.",
                host=name,
            )
        if broken:
            return HostActionError("bad_output", f"{name}: the host answered with broken HTTP ({broken}).", host=name)
        if isinstance(exc, requests.exceptions.ConnectionError):
            return HostActionError(
                "unreachable",
                f"{name}: cannot connect to WinRM at {_endpoint(self.host.address)}.",
                host=name,
            )
        if isinstance(exc, (ET.ParseError, StopIteration, AssertionError, ValueError, KeyError)):
            log.warning(
                "%s: unreadable WinRM answer (%s)",
                name,
                type(exc).__name__,
                exc_info=exc,
                extra={"host": name, "action": self.action, "outcome": "bad_output", "error": type(exc).__name__},
            )
            return HostActionError(
                "bad_output", f"{name}: WinRM sent an answer that could not be read ({type(exc).__name__}).", host=name
            )
        if isinstance(exc, WinRMError):
            return HostActionError("unreachable", f"{name}: WinRM failed.", host=name)
        if isinstance(exc, Exception):
            log.exception(
                "%s: unexpected WinRM failure",
                name,
                extra={"host": name, "action": self.action, "outcome": "unreachable"},
            )
            return HostActionError("unreachable", f"{name}: WinRM failed unexpectedly.", host=name)
        raise exc  # KeyboardInterrupt, SystemExit

    def _parse(
        self, parts: Sequence[Part], stdout: bytes | bytearray, stderr: bytes | bytearray, exit_code: int
    ) -> list[PartResult]:
        name = self.host.name
        docs: list[PartResult] = []
        prefix = OUTPUT_PREFIX.encode("ascii")
        # only our own lines are looked at (stray console output, Write-Host, is not ours to judge),
        # found in place: splitting millions of other lines would cost a hundred bytes each
        for line in _output_lines(stdout, prefix):
            if len(docs) == len(parts):
                raise HostActionError(
                    "bad_output", f"{name}: expected results for {len(parts)} script(s), got more.", host=name
                )
            try:
                raw = load_json(base64.b64decode(line[len(prefix) :], validate=True))
            except JSONRefused as refused:
                raise HostActionError(
                    "bad_output",
                    f"{name}: a script printed a document that was not read: {refused}.",
                    host=name,
                ) from None
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
        if exit_code == LANGUAGE_MODE_EXIT and not docs:
            mode = _language_mode(stdout)
            if mode is not None:
                raise HostActionError(
                    "constrained_language",
                    f"{name}: PowerShell on this host runs in {mode} mode (AppLocker or WDAC script "
                    "enforcement), where certops's scripts cannot run. Give the WinRM account's sessions "
                    "FullLanguage (an AppLocker/WDAC rule that allows them, or a JEA endpoint), or act on "
                    "this host by hand.",
                    host=name,
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


def _language_mode(stdout: bytes | bytearray) -> str | None:
    """The mode the bootstrap named ("ConstrainedLanguage", "RestrictedLanguage", "NoLanguage")."""
    for line in _output_lines(stdout, LANGUAGE_MODE_PREFIX):
        mode = bytes(line[len(LANGUAGE_MODE_PREFIX) :]).decode("ascii", "replace").strip()
        return mode if mode.isalpha() and len(mode) < 40 else "a restricted language"
    return None


SHORT = 300  # characters of a message taken from the host
_CLIXML_STRING = re.compile(rb'<S S="(\w+)">([^<]*)</S>')  # [^<]: no backtracking over the whole text
_NOT_SPACE = re.compile(rb"\S")


def clixml_errors(stderr: bytes | bytearray) -> str:
    """The error text in stderr, with PowerShell's CLIXML progress records dropped. Only the
    first few hundred characters are kept, so only those are decoded, however long stderr is."""
    begin = _NOT_SPACE.search(stderr)
    if begin is None:
        return ""
    if not stderr.startswith(b"#< CLIXML"):
        return _short(bytes(stderr[begin.start() : begin.start() + 4 * SHORT]).decode("utf-8", "replace"))
    messages: list[str] = []
    kept = 0
    for found in _CLIXML_STRING.finditer(stderr):
        if found.group(1).lower() != b"error":
            continue
        body = found.group(2)[: 4 * SHORT].decode("utf-8", "replace")
        body = body.replace("_x000D__x000A_", " ").replace("_x000A_", " ").strip()
        if body:
            messages.append(body)
            kept += len(body)
        if kept > SHORT:
            break
    return _short(" ".join(messages))


def _outcome(exc: BaseException | None, cut: bool) -> str:
    """How a session ended, one word for its log line: done, or the error's kind (timeout,
    unreachable, auth_failed...), or the exception's type for anything else."""
    if exc is None:
        return "done"
    if isinstance(exc, HostActionError):
        return exc.kind
    return "timeout" if cut else type(exc).__name__


def _short(text: str, limit: int = SHORT) -> str:
    if len(text) > 8 * limit:
        text = text.lstrip()[: 8 * limit]  # splitting megabytes would build a string per word
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _size(count: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:g} {unit}"
    return f"{count} bytes"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps: causes, contexts, urllib3's `reason`, requests' args."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo.extend(e for e in linked if isinstance(e, BaseException))


def _broken_http(exc: BaseException) -> str | None:
    """What was wrong with an HTTP answer that http.client could not read, in our words; "closed"
    when the host hung up before its status line; None when the failure was not that."""
    for cause in _chain(exc):
        if isinstance(cause, http.client.RemoteDisconnected):
            return "closed"
        if isinstance(cause, http.client.LineTooLong):
            return "a status or header line longer than 64 KiB"
        if isinstance(cause, (http.client.IncompleteRead, urllib3.exceptions.InvalidChunkLength)):
            return "the connection closed in the middle of an answer"
        if isinstance(cause, http.client.UnknownProtocol):
            return "an unknown HTTP version"
        if isinstance(cause, http.client.BadStatusLine):
            return "a status line that is not HTTP"
        if type(cause) is http.client.HTTPException and "headers" in str(cause):
            return "more than 100 headers"
        if isinstance(cause, http.client.HTTPException):
            return "an answer that is not HTTP/1.1"
    return None


def _not_tls(exc: BaseException) -> bool:
    return any(isinstance(e, ssl.SSLError) and e.reason in _NOT_TLS for e in _chain(exc))


def _endpoint(address: str) -> str:
    parts = urlsplit(address)
    return f"{parts.hostname}:{parts.port or (5986 if parts.scheme == 'https' else 5985)}"


# -- threads ----------------------------------------------------------------------------------


@dataclass(eq=False)
class _Job:
    call: Callable[[], Any]
    future: Future[Any]
    host: Host | None
    label: str
    submitted: float
    end: float  # when its deadline passes: the host's timeout after submission


@dataclass
class _HostQueue:
    running: int = 0
    waiting: deque[_Job] = field(default_factory=deque)


class _Scheduler:
    """Runs each host action on a thread of its own, at most HOST_SESSIONS at once per host.

    A host's further actions wait in its queue, holding no thread, and fail with `timeout` if
    their deadline passes before they start. A host with nothing running always gets a thread at
    once, so no number of stuck hosts delays a healthy one; a host's second session waits while
    MAX_THREADS are busy. A thread that finishes takes the next job it may run before it ends.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._hosts: dict[str, _HostQueue] = {}
        self._threads = 0
        self._reaper: threading.Thread | None = None

    def submit(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[T]:
        host = next((a for a in (*args, *kwargs.values()) if isinstance(a, Host)), None)
        label = str(getattr(fn, "__name__", ""))
        now = time.monotonic()
        future: Future[T] = Future()
        job = _Job(
            call=lambda: fn(*args, **kwargs),
            future=future,
            host=host,
            label=label.replace("_", "-") if label.isidentifier() else "the action",
            submitted=now,
            end=now + host.timeout if host is not None else math.inf,
        )
        with self._lock:
            if self._may_start(job):
                self._start(job)
            else:
                self._queue(job).waiting.append(job)
                self._watch_deadlines()
        return future

    # with self._lock held: _queue, _may_start, _start, _next, _late

    def _queue(self, job: _Job) -> _HostQueue:
        key = job.host.name if job.host is not None else ""
        return self._hosts.setdefault(key, _HostQueue())

    def _may_start(self, job: _Job) -> bool:
        if job.host is None:
            return True  # not a host action: nothing to queue it behind
        queue = self._queue(job)
        return queue.running < HOST_SESSIONS and (queue.running == 0 or self._threads < MAX_THREADS)

    def _start(self, job: _Job, *, thread: bool = True) -> None:
        if job.host is not None:
            self._queue(job).running += 1
        if thread:
            self._threads += 1
            threading.Thread(target=self._work, args=(job,), name="certops-winrm", daemon=True).start()

    def _work(self, job: _Job | None) -> None:
        while job is not None:
            self._run(job)
            with self._lock:
                if job.host is not None:
                    queue = self._queue(job)
                    queue.running -= 1
                    if not queue.running and not queue.waiting:
                        del self._hosts[job.host.name]
                job = self._next()
                if job is None:
                    self._threads -= 1
                else:
                    self._start(job, thread=False)

    def _next(self) -> _Job | None:
        """The longest-waiting job that may start now, its queue's first."""
        ready = [q.waiting[0] for q in self._hosts.values() if q.waiting and self._may_start(q.waiting[0])]
        if not ready:
            return None
        job = min(ready, key=lambda j: j.submitted)
        self._queue(job).waiting.popleft()
        return job

    def _run(self, job: _Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return  # cancelled while it waited (an awaiting task was cancelled)
        if time.monotonic() >= job.end:  # a slot freed just as its deadline passed
            job.future.set_exception(self._full(job, HOST_SESSIONS))
            return
        _local.job = job
        try:
            result = job.call()
        except BaseException as exc:
            job.future.set_exception(exc)
        else:
            job.future.set_result(result)
        finally:
            _local.job = None

    def _watch_deadlines(self) -> None:
        if self._reaper is None:
            self._reaper = threading.Thread(target=self._reap, name="certops-winrm-queue", daemon=True)
            self._reaper.start()
        else:
            self._lock.notify_all()

    def _reap(self) -> None:
        """Fails every queued job whose deadline passes before it could start, at its deadline."""
        while True:
            with self._lock:
                late = self._late()
                while not late:
                    soonest = min((job.end for q in self._hosts.values() for job in q.waiting), default=None)
                    if soonest is None:
                        self._reaper = None
                        return
                    self._lock.wait(soonest - time.monotonic())
                    late = self._late()
            for job, error in late:  # outside the lock: done-callbacks may submit again
                if job.future.set_running_or_notify_cancel():
                    job.future.set_exception(error)

    def _late(self) -> list[tuple[_Job, HostActionError]]:
        now = time.monotonic()
        late: list[tuple[_Job, HostActionError]] = []
        for key, queue in list(self._hosts.items()):
            if any(job.end <= now for job in queue.waiting):
                late += [(job, self._full(job, queue.running)) for job in queue.waiting if job.end <= now]
                queue.waiting = deque(job for job in queue.waiting if job.end > now)
            if not queue.waiting and not queue.running:
                del self._hosts[key]
        return late

    @staticmethod
    def _full(job: _Job, running: int) -> HostActionError:
        assert job.host is not None
        name = job.host.name
        why = (
            f"{running} earlier actions on it were still running"
            if running >= HOST_SESSIONS
            else f"certops was already running {MAX_THREADS} sessions"
        )
        return HostActionError(
            "timeout",
            f"{name}: {job.label} could not start within {job.host.timeout:g} s: the host's queue was full "
            f"({why}), so it was not run.",
            host=name,
        )


_SCHEDULER = _Scheduler()
_local = threading.local()


def _submitted(host: Host) -> float | None:
    """When the action running on this thread was submitted, if it was submitted for `host`; only
    its first session starts its clock then."""
    job: _Job | None = getattr(_local, "job", None)
    if job is None or job.host is None or job.host.name != host.name:
        return None
    _local.job = None
    return job.submitted


def run_in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """Run a blocking host action on a thread; its first Host argument decides its queue, and its
    deadline (the host's timeout) starts now."""
    return _SCHEDULER.submit(fn, args, kwargs)


async def arun(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Await a blocking host action from async code without blocking the event loop."""
    return await asyncio.wrap_future(run_in_thread(fn, *args, **kwargs))
