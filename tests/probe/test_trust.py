"""The CA file a probe verifies against is read with the config's bounded reader, off the event
loop: a named pipe, a folder, a device or a system file is a named problem (ca_file_unreadable),
never a probe that hangs or ends as certops's own failure; a file replaced on disk is read again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from bot.probe import ProbeResult, ProbeTarget, Status, probe
from bot.probe.trust import load_ca_file
from bot.testbed.pki import MiniCA
from tests.fakes.hostile_targets import HOST, HostileServers, Target

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
T = TypeVar("T")


def within_seconds(seconds: float, work: Callable[[], T], fifo: Path | None = None) -> T:
    """`work()`'s result, or a failed test (not a hung one) when it takes longer than `seconds`;
    a reader stuck on `fifo` is then let go by opening and closing its other end."""
    box: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            box.append(work())
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        if fifo is not None:
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(seconds)
        pytest.fail(f"still running after {seconds:g} s")
    if failure:
        raise failure[0]
    return box[0]


def probe_with(target: Target, ca_file: str, timeout: float = 2.0) -> ProbeResult:
    fields = ProbeTarget(
        url=f"https://{HOST}:{target.port}/",
        hostname=HOST,
        port=target.port,
        connect_host="127.0.0.1",
        ca_file=ca_file,
        timeout=timeout,
    )
    return asyncio.run(probe(fields))


def unusable_files(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "ca.fifo"
    os.mkfifo(fifo)
    (tmp_path / "empty.pem").write_bytes(b"")
    (tmp_path / "text.pem").write_text("not a certificate\n")
    (tmp_path / "latin1.pem").write_bytes(b"# Issuer: caf\xe9\n")  # no certificate in it
    (tmp_path / "garbled.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    (tmp_path / "folder").mkdir()
    return {
        "a named pipe": fifo,
        "a folder": tmp_path / "folder",
        "a character device": Path("/dev/zero"),
        "a system file": Path("/proc/self/environ"),
        "no file": tmp_path / "missing.pem",
        "an empty file": tmp_path / "empty.pem",
        "a text file": tmp_path / "text.pem",
        "a file that is not UTF-8": tmp_path / "latin1.pem",
        "a garbled certificate": tmp_path / "garbled.pem",
    }


KINDS = {
    "a named pipe": "named pipe (FIFO), not a regular file",
    "a folder": "is a folder, not a regular file",
    "a character device": "is a character device",
    "a system file": "one of the system's own files",
    "no file": "file not found",
    "an empty file": "holds no PEM certificate",
    "a text file": "holds no PEM certificate",
    "a file that is not UTF-8": "holds no PEM certificate",
    "a garbled certificate": "OpenSSL cannot read",
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_ca_file_that_cannot_be_used_is_ca_file_unreadable_and_nothing_is_probed(
    hostile: HostileServers, tmp_path: Path, kind: str
) -> None:
    path = unusable_files(tmp_path)[kind]
    target = hostile.http(OK)
    result = within_seconds(5.0, lambda: probe_with(target, str(path)), fifo=path if "pipe" in kind else None)
    assert [p.code for p in result.problems] == ["ca_file_unreadable"]
    assert result.status is Status.CRITICAL  # not unknown: a named problem, not certops failing
    message = result.problems[0].message
    assert message.startswith("cannot verify certificates: ")
    assert KINDS[kind] in message
    assert str(path) in message
    assert target.connections == 0  # nothing was judged against a trust that could not be read


def test_a_ca_file_replaced_on_disk_is_read_again(hostile: HostileServers, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(Path(hostile.ca_file).read_bytes())
    target = hostile.http(OK)
    assert [p.code for p in probe_with(target, str(ca_file)).problems] == []
    ca_file.write_bytes(MiniCA("another root").cert_pem + b"\n")  # another size, another version
    assert [p.code for p in probe_with(target, str(ca_file)).problems] == ["cert_untrusted"]


def test_one_version_of_a_ca_file_is_built_into_a_context_once(hostile: HostileServers) -> None:
    assert load_ca_file(hostile.ca_file) is load_ca_file(hostile.ca_file)


def test_a_bundle_with_latin1_comments_is_trusted_as_openssl_trusts_it(hostile: HostileServers, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(b"# \xc9metteur : racine de test\n" + hostile.ca.cert_pem)
    assert [p.code for p in probe_with(hostile.http(OK), str(bundle)).problems] == []


def test_a_bundle_with_utf8_comments_between_its_certificates_is_trusted(
    hostile: HostileServers, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle.pem"
    other = MiniCA("another root").cert_pem
    bundle.write_bytes(
        "# Émetteur : racine de test\n".encode() + other + "\n# ünïcode\n".encode() + hostile.ca.cert_pem
    )
    assert [p.code for p in probe_with(hostile.http(OK), str(bundle)).problems] == []
