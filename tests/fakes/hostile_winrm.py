"""A WinRM host that misbehaves on purpose, on 127.0.0.1 and a free port.

The requests it targets (by default every Receive) get a hostile answer; everything else is
answered by a WinRMSimulator behind it (Basic authentication, SOAP in clear), so pywinrm really
opens a shell, sends the job and cleans up. The modes are what the issue observed and what a
broken or hostile host would do next:

  trickle            the whole answer, status line included, one byte every `interval` seconds
  slow_body          the status line and headers at once, then the body one byte at a time
  endless            a chunked answer that never ends, as fast as the socket takes it
  huge               a well-formed answer of `size` bytes (100 MB by default), Content-Length declared
  huge_chunked       the same answer without a Content-Length, so only reading it shows its size
  compressed         a Receive answer sent gzip-encoded although nobody asked for it
  running_forever    "Running", no output, at once, for ever
  output_flood       "Running" with `size` bytes of stdout in every answer, for ever
  deep_json          a finished command whose one document is nested 50,000 levels deep
  wide_json          a finished command whose one document is a list of 600,000 short strings
  xml_bomb           an answer whose DTD nests entities (billion laughs)
  redirect           307 to a second listener, which records whatever reaches it
  plain_http_on_tls  a plain HTTP 400 to whatever arrives (the Host uses https://)
  tiny_streams       a finished answer just under 16 MiB made of ~290,000 Stream elements of 3 bytes each
  many_lines         a finished answer whose one stream is 11.9 MiB of "ab\n" (4 million lines)
  tiny_output        "Running" with 1 byte of stdout, at once, for ever
  attribute_bomb     a finished answer whose one Stream start tag carries a million attributes
  deep_xml           an answer of 2 million nested elements
  fault_flood        HTTP 500 whose SOAP fault holds ~290,000 elements (pywinrm parses faults itself)
  huge_header_line   a status line, then a header line of 1 MB
  many_headers       a status line, then 100,000 headers
  cut_mid_chunk      a chunked answer whose connection is closed in the middle of a chunk
  tiny_chunks        a chunked answer of 2.5 MB sent in chunks of one byte (15 MB on the wire)
  no_ntlm_challenge  HTTP 401 to every request, offering Negotiate and Basic but no NTLM token
                     (the Host uses transport ntlm)

Nothing here can hang a test: every hostile answer stops after `limit` seconds whatever the
client does, a client that hangs up ends it at once, and stop() shuts every open connection.
Test and bench use only.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, get_args

from host_actions.simulator import HostModel, WinRMSimulator
from host_actions.simulator.ntlm import ConnectionAuth
from host_actions.simulator.scenarios import incident_host
from host_actions.simulator.server import DONE, NS, RUNNING, SOAP_CONTENT_TYPE, send_answer
from host_actions.target import EnvSecret, Host

Mode = Literal[
    "trickle",
    "slow_body",
    "endless",
    "huge",
    "huge_chunked",
    "compressed",
    "running_forever",
    "output_flood",
    "deep_json",
    "wide_json",
    "xml_bomb",
    "redirect",
    "plain_http_on_tls",
    "tiny_streams",
    "many_lines",
    "tiny_output",
    "attribute_bomb",
    "deep_xml",
    "fault_flood",
    "huge_header_line",
    "many_headers",
    "cut_mid_chunk",
    "tiny_chunks",
    "no_ntlm_challenge",
]
MODES: tuple[Mode, ...] = get_args(Mode)
LIMIT_SECONDS = 10.0  # no hostile answer lasts longer, whatever the client does
DEEP = 50_000  # the nesting that makes json.loads raise RecursionError
WIDE = 600_000  # values in one document: a few MB of JSON, a hundred MB of Python objects
PIECE = 1 << 20  # bytes per write of a big answer
TINY_STREAM = '<rsp:Stream Name="stdout" CommandId="C">YWIK</rsp:Stream>'  # "ab\n"
TINY_STREAMS = (16 * 1024 * 1024 - 2000) // len(TINY_STREAM)  # ~290,000: just under 16 MiB
MANY_LINES = int(11.9 * 1024 * 1024) // 3  # "ab\n" lines: 4 million
_ANY_REQUEST = ("redirect", "plain_http_on_tls", "no_ntlm_challenge")
_ACTION = re.compile(rb"<[^>]*Action[^>]*>\s*([^<\s]+)\s*</")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # the client hanging up on a hostile answer is the expected end, not a fault to print
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class HostileWinRM:
    """Use as `with HostileWinRM("trickle") as host:`; point a Host at `host.host_config()`."""

    def __init__(
        self,
        mode: Mode,
        model: HostModel | None = None,
        *,
        target: str | None = None,
        after: int = 0,
        times: int | None = None,
        interval: float = 0.2,
        size: int | None = None,
        limit: float = LIMIT_SECONDS,
    ) -> None:
        """`target`: the WS-Man action that gets the hostile answer ("Receive"; "*" for every
        request; a redirect targets every request unless told otherwise). `after`: the first so
        many targeted requests are answered normally; `times`: then only so many are hostile, and
        the rest are answered normally again."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.mode: Mode = mode
        self.sim = WinRMSimulator(model or incident_host())  # the brain; never started, never listens
        self.target = target or ("*" if mode in _ANY_REQUEST else "Receive")
        self.after = after
        self.times = times
        self._targeted = 0
        self.interval = interval
        # huge: the whole answer (the 100 MB); output_flood: the stdout in each answer
        self.size = size if size is not None else (1 << 20 if mode == "output_flood" else 100 * 1000 * 1000)
        self.limit = limit
        self.lock = threading.Lock()
        self.requests: list[str] = []  # the action of every request that arrived, in order
        self.hostile = 0  # how many hostile answers were started
        self.sent = 0  # bytes of hostile answers that the socket accepted
        self.decoy_hits: list[bytes] = []  # the request heads that reached the redirect's target
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._servers: list[ThreadingHTTPServer] = []
        self._raw: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._port = 0
        self._decoy_port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> HostileWinRM:
        if self.mode == "plain_http_on_tls":
            listener = socket.create_server(("127.0.0.1", 0))
            listener.settimeout(0.05)  # short accept waits keep stop() quick
            self._raw = listener
            self._port = listener.getsockname()[1]
            self._spawn(self._plain_http_loop, listener)
            return self
        self._port = self._serve(_handler_for(self))
        if self.mode == "redirect":
            self._decoy_port = self._serve(_decoy_for(self))
        return self

    def stop(self) -> None:
        self._stop.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        with self.lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=2)

    def __enter__(self) -> HostileWinRM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        scheme = "https" if self.mode == "plain_http_on_tls" else "http"
        return f"{scheme}://127.0.0.1:{self._port}/wsman"

    @property
    def decoy_url(self) -> str:
        return f"http://127.0.0.1:{self._decoy_port}/wsman"

    def host_config(
        self,
        name: str = "iis-hostile",
        *,
        timeout: float = 2.0,
        max_response_bytes: int = 16 * 1024 * 1024,
        password_env: str = "CERTOPS_HOSTILE_PW",  # noqa: S107 - the name of a variable, not a secret
    ) -> Host:
        """A Host for this server; the caller puts `self.sim.password` in `password_env`."""
        ntlm = self.mode == "no_ntlm_challenge"
        return Host(
            name=name,
            address=self.url,
            transport="ntlm" if ntlm else "basic",
            username=self.sim.username,
            password=EnvSecret(password_env),
            allow_insecure_basic=not ntlm,
            verify_tls=False,  # the mismatch is the point, not the certificate
            timeout=timeout,
            max_response_bytes=max_response_bytes,
            wacs_path=self.sim.model.wacs_path,
        )

    def count(self, action: str) -> int:
        with self.lock:
            return self.requests.count(action)

    # -- what is answered --------------------------------------------------------------------

    def takes(self, action: str) -> bool:
        """Whether this request gets the hostile answer (and counts it)."""
        with self.lock:
            self.requests.append(action)
            if self.target not in ("*", action):
                return False
            self._targeted += 1
            if self._targeted <= self.after or (self.times is not None and self.hostile >= self.times):
                return False
            self.hostile += 1
            return True

    def bounded(self) -> Iterator[None]:
        """Yields until the answer has run `limit` seconds or the server stops."""
        end = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < end:
            yield

    def pause(self) -> None:
        self._stop.wait(self.interval)

    def record_sent(self, count: int) -> None:
        with self.lock:
            self.sent += count

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self.lock:
            if alive:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    # -- internals ---------------------------------------------------------------------------

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> int:
        server = _QuietServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        self._servers.append(server)
        self._spawn(server.serve_forever, 0.05)
        return int(server.server_address[1])

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _plain_http_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by stop()
            self._spawn(self._plain_http_answer, conn)

    def _plain_http_answer(self, conn: socket.socket) -> None:
        # what http.sys (or any HTTP server) says to a TLS ClientHello: it is not a request line
        self.track(conn, True)
        try:
            conn.settimeout(self.limit)
            with contextlib.suppress(OSError):
                if conn.recv(4096):
                    self.takes("(TLS ClientHello)")
                    answer = (
                        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 11\r\n"
                        b"Connection: close\r\n\r\nBad Request"
                    )
                    conn.sendall(answer)
                    self.record_sent(len(answer))
        finally:
            self.track(conn, False)
            conn.close()


def _handler_for(server: HostileWinRM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        conn_auth: ConnectionAuth

        def setup(self) -> None:
            super().setup()
            self.conn_auth = ConnectionAuth()
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each trickled byte leaves at once
            server.track(self.request, True)

        def finish(self) -> None:
            server.track(self.request, False)
            with contextlib.suppress(OSError):
                super().finish()

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            found = _ACTION.search(body)
            action = found.group(1).rsplit(b"/", 1)[-1].decode("ascii", "replace") if found else "(none)"
            if server.takes(action):
                # OSError: the client hung up, which is how a guarded client ends most of these
                with contextlib.suppress(OSError):
                    _HOSTILE[server.mode](server, self)
                # an answer cut short leaves the connection unusable; a well-framed one keeps it
                self.close_connection = server.mode in _CUT_SHORT
                return
            status, payload, headers = server.sim.respond(
                self.conn_auth, self.headers.get("Authorization"), self.headers.get("Content-Type") or "", body
            )
            send_answer(self, status, payload, headers)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def _decoy_for(server: HostileWinRM) -> type[BaseHTTPRequestHandler]:
    class Decoy(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            with server.lock:
                server.decoy_hits.append(self.requestline.encode("latin-1", "replace"))
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Decoy


# -- the hostile answers ---------------------------------------------------------------------


def _send(server: HostileWinRM, handler: BaseHTTPRequestHandler, data: bytes) -> None:
    handler.wfile.write(data)
    server.record_sent(len(data))


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _chunk(data: bytes) -> bytes:
    return f"{len(data):X}\r\n".encode("ascii") + data + b"\r\n"


def _envelope(body: str, *, doctype: str = "") -> tuple[bytes, bytes]:
    """The text of a ReceiveResponse around `body`, split where a stream's text may go."""
    head = (
        f'{doctype}<s:Envelope xmlns:s="{NS["s"]}" xmlns:a="{NS["a"]}" xmlns:w="{NS["w"]}" '
        f'xmlns:rsp="{NS["rsp"]}"><s:Header><a:Action>{NS["rsp"]}/ReceiveResponse</a:Action>'
        f"</s:Header><s:Body><rsp:ReceiveResponse>{body}"
    )
    return head.encode(), b"</rsp:ReceiveResponse></s:Body></s:Envelope>"


def _state(done: bool) -> str:
    if done:
        return f'<rsp:CommandState CommandId="C" State="{DONE}"><rsp:ExitCode>0</rsp:ExitCode></rsp:CommandState>'
    return f'<rsp:CommandState CommandId="C" State="{RUNNING}"/>'


def _answer(streams: str, done: bool) -> bytes:
    head, tail = _envelope(streams + _state(done))
    return head + tail


def _stdout(data: bytes) -> str:
    return f'<rsp:Stream Name="stdout" CommandId="C">{base64.b64encode(data).decode("ascii")}</rsp:Stream>'


def _ok_head(length: int | None = None, **extra: str) -> bytes:
    headers = {"Content-Type": SOAP_CONTENT_TYPE, **extra}
    if length is None:
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers["Content-Length"] = str(length)
    return _head("200 OK", headers)


def _trickle(server: HostileWinRM, handler: BaseHTTPRequestHandler, *, headers_at_once: bool) -> None:
    # a correct answer, so only its pace is wrong: what the simulator would have said
    payload = _answer(_stdout(b"CERTOPS e30=\r\n"), True)
    head = _ok_head(len(payload))
    data = payload if headers_at_once else head + payload
    if headers_at_once:
        _send(server, handler, head)
    for position, _ in enumerate(server.bounded()):
        if position >= len(data):
            return
        _send(server, handler, data[position : position + 1])
        server.pause()


def _endless(server: HostileWinRM, handler: BaseHTTPRequestHandler) -> None:
    head, _tail = _envelope('<rsp:Stream Name="stdout" CommandId="C">')
    _send(server, handler, _ok_head(None) + _chunk(head))
    piece = _chunk(b"QUFB" * (PIECE // 4))  # base64 of "AAA", for ever
    for _ in server.bounded():
        _send(server, handler, piece)


def _huge(server: HostileWinRM, handler: BaseHTTPRequestHandler, *, declared: bool) -> None:
    head, tail = _envelope('<rsp:Stream Name="stdout" CommandId="C">')
    tail = b"</rsp:Stream>" + _state(True).encode() + tail
    text = server.size - len(head) - len(tail)
    text -= text % 4
    length = len(head) + text + len(tail)
    frame = (lambda data: data) if declared else _chunk
    _send(server, handler, _ok_head(length if declared else None) + frame(head))
    piece = b"A" * PIECE
    left = text
    for _ in server.bounded():
        if left <= 0:
            _send(server, handler, frame(tail) + (b"" if declared else b"0\r\n\r\n"))
            return
        step = piece if left >= PIECE else piece[:left]
        _send(server, handler, frame(step))
        left -= len(step)


def _compressed(server: HostileWinRM, handler: BaseHTTPRequestHandler) -> None:
    payload = gzip.compress(_answer(_stdout(b"CERTOPS e30=\r\n"), True))
    _send(server, handler, _ok_head(len(payload), **{"Content-Encoding": "gzip"}) + payload)


def _running(server: HostileWinRM, handler: BaseHTTPRequestHandler, *, output: int) -> None:
    payload = _answer(_stdout(b"\0" * output) if output else "", False)
    _send(server, handler, _ok_head(len(payload)) + payload)


def _deep_json(server: HostileWinRM, handler: BaseHTTPRequestHandler) -> None:
    _document(server, handler, b"[" * DEEP + b"]" * DEEP)


def _wide_json(server: HostileWinRM, handler: BaseHTTPRequestHandler) -> None:
    _document(server, handler, b"[" + b",".join(b'"%x"' % i for i in range(WIDE)) + b"]")


def _document(server: HostileWinRM, handler: BaseHTTPRequestHandler, doc: bytes) -> None:
    line = b"CERTOPS " + base64.b64encode(doc) + b"\r\n"
    payload = _answer(_stdout(line), True)
    _send(server, handler, _ok_head(len(payload)) + payload)


def _xml_bomb(server: HostileWinRM, handler: BaseHTTPRequestHandler) -> None:
    entities = ['<!ENTITY e0 "CERTOPSCERTOPS">']
    entities += [f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10)]
    doctype = "<!DOCTYPE s:Envelope [" + "".join(entities) + "]>"
    head, tail = _envelope('<rsp:Stream Name="stdout" CommandId="C">&e9;</rsp:Stream>' + _state(True), doctype=doctype)
    payload = head + tail
    _send(server, handler, _ok_head(len(payload)) + payload)


def _redirect(server: HostileWinRM, handler: BaseHTTPRequestHandler) -> None:
    _send(server, handler, _head("307 Temporary Redirect", {"Location": server.decoy_url, "Content-Length": "0"}))


def _tiny_streams(server: HostileWinRM, handler: BaseHTTPRequestHandler) -> None:
    payload = _answer(TINY_STREAM * TINY_STREAMS, True)
    _send(server, handler, _ok_head(len(payload)) + payload)


def _many_lines(server: HostileWinRM, handler: BaseHTTPRequestHandler) -> None:
    payload = _answer(_stdout(b"ab\n" * MANY_LINES), True)
    _send(server, handler, _ok_head(len(payload)) + payload)


def _attribute_bomb(server: HostileWinRM, handler: BaseHTTPRequestHandler) -> None:
    attributes = " ".join(f'a{i:x}="x"' for i in range(1_000_000))
    payload = _answer(f'<rsp:Stream Name="stdout" CommandId="C" {attributes}>YWIK</rsp:Stream>', True)
    _send(server, handler, _ok_head(len(payload)) + payload)


def _deep_xml(server: HostileWinRM, handler: BaseHTTPRequestHandler) -> None:
    depth = 2_000_000
    payload = _answer("<a>" * depth + "</a>" * depth, True)
    _send(server, handler, _ok_head(len(payload)) + payload)


def _fault_flood(server: HostileWinRM, handler: BaseHTTPRequestHandler) -> None:
    detail = "<w:M>a</w:M>" * ((16 * 1024 * 1024 - 4000) // 12)
    payload = (
        f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:w="{NS["w"]}"><s:Body><s:Fault><s:Code><s:Value>s:Receiver'
        f"</s:Value></s:Code><s:Reason><s:Text>flood</s:Text></s:Reason><s:Detail>{detail}</s:Detail>"
        "</s:Fault></s:Body></s:Envelope>"
    ).encode()
    _send(
        server,
        handler,
        _head("500 Internal Server Error", {"Content-Type": SOAP_CONTENT_TYPE, "Content-Length": str(len(payload))})
        + payload,
    )


def _huge_header_line(server: HostileWinRM, handler: BaseHTTPRequestHandler) -> None:
    _send(server, handler, b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (1 << 20) + b"\r\nContent-Length: 0\r\n\r\n")


def _many_headers(server: HostileWinRM, handler: BaseHTTPRequestHandler) -> None:
    headers = b"".join(b"X-%d: a\r\n" % i for i in range(100_000))
    _send(server, handler, b"HTTP/1.1 200 OK\r\n" + headers + b"Content-Length: 0\r\n\r\n")


def _cut_mid_chunk(server: HostileWinRM, handler: BaseHTTPRequestHandler) -> None:
    head, _tail = _envelope('<rsp:Stream Name="stdout" CommandId="C">')
    _send(server, handler, _ok_head(None) + b"1000\r\n" + head[:100])
    handler.wfile.flush()
    handler.request.shutdown(socket.SHUT_RDWR)


def _tiny_chunks(server: HostileWinRM, handler: BaseHTTPRequestHandler) -> None:
    payload = _answer(_stdout(b"ab\n" * (1900 * 1000 // 3)), True)  # 2.5 MB, 15 MB as chunks of one byte
    framed = b"".join(b"1\r\n%c\r\n" % byte for byte in payload)
    _send(server, handler, _ok_head(None) + framed + b"0\r\n\r\n")


def _no_ntlm_challenge(server: HostileWinRM, handler: BaseHTTPRequestHandler) -> None:
    # two WWW-Authenticate headers, as IIS sends them; neither carries an NTLM token
    _send(
        server,
        handler,
        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\n"
        b'WWW-Authenticate: Basic realm="WSMAN"\r\nContent-Length: 0\r\n\r\n',
    )


_CUT_SHORT = (
    "trickle",
    "slow_body",
    "endless",
    "huge",
    "huge_chunked",
    "huge_header_line",
    "many_headers",
    "cut_mid_chunk",
)
_HOSTILE: dict[str, Callable[[HostileWinRM, BaseHTTPRequestHandler], None]] = {
    "trickle": lambda s, h: _trickle(s, h, headers_at_once=False),
    "slow_body": lambda s, h: _trickle(s, h, headers_at_once=True),
    "endless": _endless,
    "huge": lambda s, h: _huge(s, h, declared=True),
    "huge_chunked": lambda s, h: _huge(s, h, declared=False),
    "compressed": _compressed,
    "running_forever": lambda s, h: _running(s, h, output=0),
    "output_flood": lambda s, h: _running(s, h, output=s.size),
    "deep_json": _deep_json,
    "wide_json": _wide_json,
    "xml_bomb": _xml_bomb,
    "redirect": _redirect,
    "tiny_streams": _tiny_streams,
    "many_lines": _many_lines,
    "tiny_output": lambda s, h: _running(s, h, output=1),
    "attribute_bomb": _attribute_bomb,
    "deep_xml": _deep_xml,
    "fault_flood": _fault_flood,
    "huge_header_line": _huge_header_line,
    "many_headers": _many_headers,
    "cut_mid_chunk": _cut_mid_chunk,
    "tiny_chunks": _tiny_chunks,
    "no_ntlm_challenge": _no_ntlm_challenge,
}
