"""A WS-Management (WinRS) server on 127.0.0.1 that pywinrm really talks to, over HTTP with
Basic authentication, or with NTLM and WinRM message encryption (`auth="ntlm"`, see ntlm.py).

It follows the message flow in facts/windows-host.md §6: Create / Command / Send / Receive /
Signal / Delete, `RelatesTo` echoing the request's MessageID, base64 streams, and
CommandState Done with an ExitCode. The command it accepts is our bootstrap; the job on stdin
is decoded, each script is recognised by its marker line and answered from the HostModel.
Test and demo use only: it listens on loopback and never talks to a real host.
"""

from __future__ import annotations

import base64
import binascii
import json
import socket
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from host_actions.scripts import bootstrap_command, decode_job, encode_part_output, script_text
from host_actions.scripts import script_marker as marker_of
from host_actions.simulator import contract
from host_actions.simulator.model import HostModel
from host_actions.simulator.ntlm import ENCRYPTED_CONTENT_TYPE, ConnectionAuth, NTLMAcceptor, SealError, is_encrypted
from host_actions.simulator.ntlm import seal as ntlm_seal
from host_actions.simulator.ntlm import unseal as ntlm_unseal
from host_actions.simulator.scripts import HANDLERS, ScriptError
from host_actions.target import EnvSecret, Host

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
}
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
DONE = f"{SHELL}/CommandState/Done"
RUNNING = f"{SHELL}/CommandState/Running"
TIMED_OUT_CODE = 2150858793
PROGRESS_CLIXML = (
    b"#< CLIXML\r\n"
    b'<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
    b'<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject'
    b'</T><T>System.Object</T></TN><MS><I64 N="SourceId">1</I64><PR N="Record">'
    b"<AV>Preparing modules for first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC>"
    b"<T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj></Objs>"
)
SOAP_CONTENT_TYPE = "application/soap+xml;charset=UTF-8"
Auth = Literal["basic", "ntlm"]


@dataclass
class Faults:
    """Switches for the failures a real host or network produces."""

    script_seconds: float = 0.0  # how long each command runs on the "host"
    round_trip_delay: float = 0.0  # added to every answer (network + WinRM service latency)
    operation_timeout_once: bool = False  # the first Receive answers with the w:TimedOut fault
    # the first N Sends answer with the w:TimedOut fault without taking their input (a host under
    # heavy load); each later Send is taken as usual
    send_timeouts: int = 0
    reject_all: bool = False  # 401 to everything, whatever the credentials
    fault_on: str | None = None  # "Create", "Command", "Receive": HTTP 500 WSMan fault there
    garbled: bool = False  # stdout is not what the bootstrap prints
    split_stdout: int = 1  # stdout spread over this many Receives
    clixml_progress: bool = False  # progress records on stderr, as PowerShell does on first use
    hang_http: float = 0.0  # the HTTP answer to Receive is delayed this long (socket-level stall)


@dataclass(frozen=True)
class Exchange:
    """One POST to /wsman and its answer as they crossed the wire, before decryption / after
    encryption. The Authorization value is not kept, only its scheme."""

    content_type: str
    auth_scheme: str | None  # "Basic", "Negotiate", "NTLM" or None
    body: bytes
    status: int
    answer_content_type: str
    answer: bytes


@dataclass
class _Command:
    stdin: bytearray = field(default_factory=bytearray)
    started: float | None = None  # when stdin was closed and the job "ran"
    stdout: list[bytes] = field(default_factory=list)
    stderr: bytes = b""
    exit_code: int = 0
    sent_stderr: bool = False


@dataclass
class _Shell:
    codepage: str
    commands: dict[str, _Command] = field(default_factory=dict)


class WinRMSimulator:
    """Start with `with WinRMSimulator(model) as sim:`; point a Host at `sim.host_config()`."""

    def __init__(
        self,
        model: HostModel | None = None,
        *,
        username: str = "certops",
        password: str = "s3cret-Passw0rd",  # noqa: S107 - a loopback simulator's fixture
        faults: Faults | None = None,
        auth: Auth = "basic",
        port: int = 0,  # on 127.0.0.1; 0: a free one
    ) -> None:
        if auth not in ("basic", "ntlm"):
            raise ValueError(f"auth must be 'basic' or 'ntlm', not {auth!r}")
        self.model = model or HostModel()
        self.username = username
        self.password = password
        self.faults = faults or Faults()
        self.auth: Auth = auth
        self.port = port
        self.lock = threading.RLock()
        self.requests: list[str] = []  # the a:Action suffix of every request, in order
        self.wire: list[Exchange] = []  # every POST to /wsman and its answer, handshakes included
        self.scripts_run: list[str] = []
        self.shells: dict[str, _Shell] = {}
        self._stop = threading.Event()
        self._timed_out_once = False
        self._send_timeouts = 0  # Sends answered with w:TimedOut so far
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._acceptor: NTLMAcceptor | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> WinRMSimulator:
        if self.auth == "ntlm" and self._acceptor is None:
            self._acceptor = NTLMAcceptor(self.username, self.password)
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        # a short poll keeps stop() (and so every test's teardown) quick
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._acceptor is not None:
            self._acceptor.close()
            self._acceptor = None

    def __enter__(self) -> WinRMSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the simulator first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/wsman"

    def host_config(
        self,
        name: str = "iis-sim",
        *,
        timeout: float = 10.0,
        password_env: str = "CERTOPS_SIM_PW",  # noqa: S107 - the name of a variable, not a secret
    ) -> Host:
        """A Host for this simulator; the caller puts the password in `password_env`.

        Its transport is the simulator's `auth`: "basic" (allowed over http:// for the simulator)
        or "ntlm", which pywinrm encrypts over http:// (message_encryption "auto").
        """
        return Host(
            name=name,
            address=self.url,
            transport=self.auth,
            username=self.username,
            password=EnvSecret(password_env),
            allow_insecure_basic=self.auth == "basic",
            timeout=timeout,
            wacs_path=self.model.wacs_path,
        )

    # -- HTTP --------------------------------------------------------------------------------

    def respond(
        self, conn: ConnectionAuth, authorization: str | None, content_type: str, body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        """Status, body and headers for one POST to /wsman on the connection `conn`."""
        if self.auth == "basic":
            status, payload = self.handle(authorization, body)
            headers = {"WWW-Authenticate": 'Basic realm="WSMAN"'} if status == 401 else {}
        else:
            status, payload, headers = self._respond_ntlm(conn, authorization, content_type, body)
        headers = {"Content-Type": SOAP_CONTENT_TYPE, **headers}
        scheme = authorization.split(" ", 1)[0] if authorization else None
        with self.lock:
            self.wire.append(Exchange(content_type, scheme, body, status, headers["Content-Type"], payload))
        return status, payload, headers

    def _respond_ntlm(
        self, conn: ConnectionAuth, authorization: str | None, content_type: str, body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        assert self._acceptor is not None, "start() the simulator first"
        if authorization is not None or not conn.authenticated:
            if self.faults.round_trip_delay:
                self._stop.wait(self.faults.round_trip_delay)
            step = self._acceptor.step(conn, authorization, refuse=self.faults.reject_all)
            if step.refused:
                with self.lock:
                    self.requests.append("(rejected)")
            if step.status != 200:
                return step.status, b"", {"WWW-Authenticate": step.www_authenticate or "Negotiate"}
            if not body:
                return 200, b"", {}  # pywinrm's empty POST that sets up the security context
        context = conn.context
        assert context is not None
        if not is_encrypted(content_type):
            # a host with AllowUnencrypted=false refuses SOAP in clear over http://
            return 400, b"", {}
        try:
            soap = ntlm_unseal(context, body)
        except SealError:
            return 400, b"", {}
        status, payload = self._handle_soap(soap)
        if not payload:
            return status, b"", {}
        return status, ntlm_seal(context, payload), {"Content-Type": ENCRYPTED_CONTENT_TYPE}

    # -- WS-Man ------------------------------------------------------------------------------

    def handle(self, authorization: str | None, body: bytes) -> tuple[int, bytes]:
        """One Basic-authenticated SOAP request."""
        if self.faults.round_trip_delay:
            self._stop.wait(self.faults.round_trip_delay)
        if self.faults.reject_all or not self._authorised(authorization):
            with self.lock:
                self.requests.append("(rejected)")
            return 401, b""
        return self._handle_soap(body)

    def _handle_soap(self, body: bytes) -> tuple[int, bytes]:
        try:
            # the peer is pywinrm on loopback; this server never faces untrusted input
            root = ET.fromstring(body)  # noqa: S314
        except ET.ParseError:
            return 400, b""
        action = _text(root, "s:Header/a:Action").rsplit("/", 1)[-1]
        message_id = _text(root, "s:Header/a:MessageID")
        timeout = _operation_timeout(_text(root, "s:Header/w:OperationTimeout"))
        with self.lock:
            self.requests.append(action)
        if self.faults.fault_on == action:
            return 500, _fault(message_id, "s:Receiver", "w:InternalError", 5, "Access is denied.")
        shell_id = _selector(root)
        if action == "Create":
            return self._create(root, message_id)
        with self.lock:
            shell = self.shells.get(shell_id or "")
        if shell is None:
            return 500, _fault(
                message_id,
                "s:Sender",
                "w:InvalidSelectors",
                2150858843,
                "The request for the Windows Remote Shell with ShellId failed because the shell "
                "was not found on the server.",
            )
        if action == "Command":
            return self._command(root, message_id, shell)
        if action == "Send":
            return self._send(root, message_id, shell)
        if action == "Receive":
            return self._receive(root, message_id, shell, timeout)
        if action == "Signal":
            command_id = _attr(root, "s:Body/rsp:Signal", "CommandId")
            with self.lock:
                shell.commands.pop(command_id, None)
            return 200, _envelope(message_id, f"{SHELL}/SignalResponse", "<rsp:SignalResponse/>")
        if action == "Delete":
            with self.lock:
                self.shells.pop(shell_id or "", None)
            return 200, _envelope(message_id, "http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse", "")
        return 500, _fault(message_id, "s:Sender", "w:ActionNotSupported", 2150858754, action)

    def _authorised(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == self.username and password == self.password

    def _create(self, root: ET.Element, message_id: str) -> tuple[int, bytes]:
        codepage = "437"
        for option in root.iterfind("s:Header/w:OptionSet/w:Option", NS):
            if option.get("Name") == "WINRS_CODEPAGE":
                codepage = option.text or codepage
        shell_id = str(uuid.uuid4()).upper()
        with self.lock:
            self.shells[shell_id] = _Shell(codepage)
        body = (
            "<x:ResourceCreated><a:Address>http://windows-host:5985/wsman</a:Address>"
            "<a:ReferenceParameters><w:ResourceURI>"
            "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI>"
            f'<w:SelectorSet><w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet>'
            "</a:ReferenceParameters></x:ResourceCreated>"
        )
        return 200, _envelope(message_id, "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse", body)

    def _command(self, root: ET.Element, message_id: str, shell: _Shell) -> tuple[int, bytes]:
        command = _text(root, "s:Body/rsp:CommandLine/rsp:Command")
        command_id = str(uuid.uuid4()).upper()
        entry = _Command()
        if command != bootstrap_command():
            # The simulator only runs our bootstrap; anything else is what cmd.exe would say.
            entry.started = time.monotonic()
            entry.stderr = b"'command' is not recognized as an internal or external command\r\n"
            entry.exit_code = 1
        with self.lock:
            shell.commands[command_id] = entry
        body = f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"
        return 200, _envelope(message_id, f"{SHELL}/CommandResponse", body)

    def _send(self, root: ET.Element, message_id: str, shell: _Shell) -> tuple[int, bytes]:
        stream = root.find("s:Body/rsp:Send/rsp:Stream", NS)
        assert stream is not None
        with self.lock:
            if self._send_timeouts < self.faults.send_timeouts:
                self._send_timeouts += 1
                return 500, _timed_out(message_id)
            entry = shell.commands[stream.get("CommandId", "")]
            entry.stdin += base64.b64decode(stream.text or "")
            if stream.get("End") == "true" and entry.started is None:
                self._run_job(entry)
        return 200, _envelope(message_id, f"{SHELL}/SendResponse", "<rsp:SendResponse/>")

    def _run_job(self, entry: _Command) -> None:
        entry.started = time.monotonic()
        if self.model.language_mode != "FullLanguage":
            # bootstrap.ps1's first check: one line naming the mode, exit 3, no part runs
            entry.stdout = [f"CERTOPS-LANGUAGE-MODE {self.model.language_mode}\r\n".encode("ascii")]
            entry.exit_code = 3
            return
        try:
            parts = decode_job(bytes(entry.stdin))
        except (ValueError, KeyError, binascii.Error):
            entry.stderr, entry.exit_code = b"certops: the job on stdin could not be read\r\n", 2
            return
        lines = [self._run_part(part) for part in parts]
        stdout = ("\r\n".join(lines) + "\r\n").encode("ascii")
        if self.faults.garbled:
            stdout = b"CERTOPS " + base64.b64encode(b'{"name": "certs", "ok": tru') + b"\r\n"
        pieces = max(1, self.faults.split_stdout)
        size = -(-len(stdout) // pieces)
        entry.stdout = [stdout[i : i + size] for i in range(0, len(stdout), size)] or [b""]
        if self.faults.clixml_progress:
            entry.stderr = PROGRESS_CLIXML

    def _run_part(self, part: dict[str, Any]) -> str:
        name = str(part.get("name"))
        script = str(part.get("script", ""))
        params = part.get("params") or {}
        doc: dict[str, Any] = {"name": name, "ok": True, "result": None}
        marker = marker_of(script)
        if marker not in HANDLERS or script != script_text(marker):
            doc.update(ok=False, error="unknown script", hresult="0x80131501")
            return encode_part_output(doc)
        self.scripts_run.append(marker)
        problem = contract.check(marker, params)
        if problem:
            doc.update(ok=False, error=problem, hresult="0x80131501")
            return encode_part_output(doc)
        try:
            result = HANDLERS[marker](self.model, params)
            # a round trip through JSON, as ConvertTo-Json would flatten it
            doc["result"] = json.loads(json.dumps(result))
        except ScriptError as exc:
            doc.update(ok=False, error=str(exc), hresult=f"0x{exc.hresult:08X}")
        return encode_part_output(doc)

    def _receive(self, root: ET.Element, message_id: str, shell: _Shell, timeout: float) -> tuple[int, bytes]:
        command_id = _attr(root, "s:Body/rsp:Receive/rsp:DesiredStream", "CommandId")
        with self.lock:
            entry = shell.commands.get(command_id)
            first_timeout = self.faults.operation_timeout_once and not self._timed_out_once
            self._timed_out_once = self._timed_out_once or first_timeout
        if entry is None:
            return 500, _fault(message_id, "s:Sender", "w:InvalidParameter", 2150858843, "The command was not found.")
        if self.faults.hang_http:
            self._stop.wait(self.faults.hang_http)
        if first_timeout:
            return 500, _timed_out(message_id)
        ready_at = (entry.started or time.monotonic()) + self.faults.script_seconds
        wait = ready_at - time.monotonic()
        if wait > 0:
            # WinRM holds a Receive until there is output or OperationTimeout passes.
            self._stop.wait(min(wait, timeout))
            if time.monotonic() < ready_at:
                return 500, _timed_out(message_id)
        with self.lock:
            chunk = entry.stdout.pop(0) if entry.stdout else b""
            done = not entry.stdout
            stderr = b"" if entry.sent_stderr else entry.stderr
            entry.sent_stderr = True
        streams = []
        if chunk:
            streams.append(_stream("stdout", command_id, chunk))
        if stderr:
            streams.append(_stream("stderr", command_id, stderr))
        if done:
            streams.append(f'<rsp:Stream Name="stdout" CommandId="{command_id}" End="true"/>')
            streams.append(f'<rsp:Stream Name="stderr" CommandId="{command_id}" End="true"/>')
            state = (
                f'<rsp:CommandState CommandId="{command_id}" State="{DONE}">'
                f"<rsp:ExitCode>{entry.exit_code}</rsp:ExitCode></rsp:CommandState>"
            )
        else:
            state = f'<rsp:CommandState CommandId="{command_id}" State="{RUNNING}"/>'
        body = "<rsp:ReceiveResponse>" + "".join(streams) + state + "</rsp:ReceiveResponse>"
        return 200, _envelope(message_id, f"{SHELL}/ReceiveResponse", body)


def send_answer(handler: BaseHTTPRequestHandler, status: int, payload: bytes, headers: dict[str, str]) -> None:
    """One framed HTTP answer, as a WinRM listener sends it."""
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def _handler_for(sim: WinRMSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as requests expects from WinRM
        conn_auth: ConnectionAuth  # NTLM authenticates the connection; one handler per connection

        def setup(self) -> None:
            super().setup()
            self.conn_auth = ConnectionAuth()
            # headers and body leave in two writes; without this, Nagle + delayed ACK add ~40 ms
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if sim.stopped:
                # a stopped host is gone: drop kept-alive connections instead of answering from a dead model
                self.close_connection = True
                self.request.close()
                return
            if self.path != "/wsman":
                status, payload, headers = 404, b"", {"Content-Type": SOAP_CONTENT_TYPE}
            else:
                status, payload, headers = sim.respond(
                    self.conn_auth, self.headers.get("Authorization"), self.headers.get("Content-Type") or "", body
                )
            send_answer(self, status, payload, headers)

        def log_message(self, format: str, *args: Any) -> None:
            return  # tests read sim.requests instead of stderr noise

    return Handler


def _text(root: ET.Element, path: str) -> str:
    node = root.find(path, NS)
    return (node.text or "").strip() if node is not None else ""


def _attr(root: ET.Element, path: str, name: str) -> str:
    node = root.find(path, NS)
    return node.get(name, "") if node is not None else ""


def _selector(root: ET.Element) -> str | None:
    for node in root.iterfind("s:Header/w:SelectorSet/w:Selector", NS):
        if node.get("Name") == "ShellId":
            return (node.text or "").strip()
    return None


def _operation_timeout(value: str) -> float:
    try:
        return float(value.removeprefix("PT").removesuffix("S"))
    except ValueError:
        return 60.0


def _stream(name: str, command_id: str, data: bytes) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<rsp:Stream Name="{name}" CommandId="{command_id}">{encoded}</rsp:Stream>'


def _envelope(relates_to: str, action: str, body: str) -> bytes:
    return (
        f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:a="{NS["a"]}" xmlns:w="{NS["w"]}" '
        f'xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" xmlns:rsp="{NS["rsp"]}" '
        'xml:lang="en-US"><s:Header>'
        f"<a:Action>{action}</a:Action>"
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        f"<a:RelatesTo>{relates_to}</a:RelatesTo>"
        f"</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def _fault(relates_to: str, code: str, subcode: str, wsman_code: int, reason: str) -> bytes:
    body = (
        f"<s:Fault><s:Code><s:Value>{code}</s:Value><s:Subcode><s:Value>{subcode}</s:Value>"
        f'</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{reason}</s:Text></s:Reason>'
        '<s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" '
        f'Code="{wsman_code}" Machine="iis-sim"><f:Message>{reason}</f:Message></f:WSManFault>'
        "</s:Detail></s:Fault>"
    )
    return _envelope(relates_to, "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", body)


def _timed_out(relates_to: str) -> bytes:
    return _fault(
        relates_to,
        "s:Receiver",
        "w:TimedOut",
        TIMED_OUT_CODE,
        "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.",
    )
