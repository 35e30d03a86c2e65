"""The trust a probe verifies certificates against: the system's CA store, or the CA file a site
(or `certops check --ca-file`) names.

ssl.create_default_context(cafile=...) reads the file with no limit of its own, on the calling
thread: a named pipe blocks it until someone writes (forever, in practice), /dev/zero until memory
runs out, and a file on a network share that stopped answering would stop the bot's event loop
with it. So the file is read here with the config's bounded reader (bot.config.files: regular
files only, at most CERT_CAP, within a deadline), on a thread of its own, and the context is built
from the bytes read (cadata=). Building a context from a bundle is dear, so one is kept per file
version (path, inode, mtime, size) and shared by every probe; a file replaced on disk is read again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import re
import ssl
import threading

from bot.config import files
from bot.probe.text import printable

WHAT = "a CA file"
_MAX_KEPT = 64  # CA files remembered; a config names a handful
_PEM_CERTIFICATE = re.compile(
    r"-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----[A-Za-z0-9+/=\s]*-----END (?:X509 |TRUSTED )?CERTIFICATE-----"
)

# few threads: a context is read once per file version, and a stuck read gives its thread back
# after files.DEADLINE (the reader's own daemon thread is the one left waiting)
_THREADS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="certops-ca-file")
_lock = threading.RLock()
_kept: dict[str, tuple[tuple[int, int, int, int], ssl.SSLContext]] = {}
_loading: dict[str | None, concurrent.futures.Future[ssl.SSLContext]] = {}


class TrustUnavailable(Exception):
    """The CA file cannot be used; str() is one sentence naming the file and saying what to do."""


def _prepared(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.check_hostname = False  # names are matched by the probe, so a wrong name still yields the certificate
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


@functools.lru_cache(maxsize=1)
def system_context() -> ssl.SSLContext:
    """The system's CA store, loaded once: loading it is 20-30 times dearer than a probe."""
    return _prepared(ssl.create_default_context())


def load_ca_file(path: str, deadline: float = files.DEADLINE) -> ssl.SSLContext:
    """A verifying context trusting only the CA certificates of the PEM file `path`; blocks for at
    most about `deadline` seconds per step; raises TrustUnavailable with a sentence."""
    name = os.fspath(path)
    shown = printable(name, 200)
    try:
        # stat never waits for a named pipe's writer, but may for a network share that hangs
        info: os.stat_result | None = files.within(
            deadline, lambda: os.stat(name), f"{shown} did not answer within {deadline:g}s"
        )
    except files.FileRefused as exc:
        raise TrustUnavailable(str(exc)) from None
    except (OSError, ValueError):  # no such file, a NUL in the name...: problem_with says which
        info = None
    version = (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size) if info is not None else None
    with _lock:
        kept = _kept.get(name)
    if kept is not None and kept[0] == version:
        return kept[1]  # the version read before: only that file is ever kept, so it was a regular one
    problem = files.problem_with(name, cap=files.CERT_CAP, what=WHAT, deadline=deadline)
    if problem:
        raise TrustUnavailable(problem)
    try:
        # PEM blocks are ASCII; a bundle's comments may be in any encoding, as OpenSSL allows
        text = files.read_bytes(name, cap=files.CERT_CAP, what=WHAT, deadline=deadline).decode("latin-1")
    except files.FileRefused as exc:
        raise TrustUnavailable(str(exc)) from None
    ctx = _context_from(text, shown)
    if version is not None:
        with _lock:
            _kept.pop(name, None)
            _kept[name] = (version, ctx)
            while len(_kept) > _MAX_KEPT:
                del _kept[next(iter(_kept))]
    return ctx


def ca_file_problem(path: str) -> str | None:
    """What keeps `path` from being used as a CA file (a sentence), or None; blocks for at most
    about files.DEADLINE seconds. For the command line, before any probe starts."""
    try:
        load_ca_file(path)
    except TrustUnavailable as exc:
        return str(exc)
    return None


async def verifying_context(ca_file: str | None) -> ssl.SSLContext:
    """The context that verifies against `ca_file` (or the system store), built off the event
    loop; probes asking for the same file at once share one read. Raises TrustUnavailable; the
    caller bounds the wait with its own deadline."""
    if ca_file is None and system_context.cache_info().currsize:
        return system_context()  # loaded already: nothing left that could block
    with _lock:
        loading = _loading.get(ca_file)
        if loading is None:
            loading = _THREADS.submit(system_context if ca_file is None else functools.partial(load_ca_file, ca_file))
            _loading[ca_file] = loading
            loading.add_done_callback(functools.partial(_done, ca_file))
    # shielded: one probe giving up (its timeout) must not cancel the read the others wait for
    return await asyncio.shield(asyncio.wrap_future(loading))


def _done(ca_file: str | None, loading: concurrent.futures.Future[ssl.SSLContext]) -> None:
    with _lock:
        if _loading.get(ca_file) is loading:
            del _loading[ca_file]


def _context_from(text: str, shown: str) -> ssl.SSLContext:
    # only the certificates: OpenSSL's own file reader skips the text around them (a bundle's
    # comments may be UTF-8), while cadata= takes ASCII alone
    blocks = _PEM_CERTIFICATE.findall(text)
    if not blocks:
        raise TrustUnavailable(
            f"{shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----); "
            "give a PEM file of the CA certificates to trust"
        )
    try:
        return _prepared(ssl.create_default_context(cadata="\n".join(blocks)))
    except (ssl.SSLError, ValueError) as exc:
        reason = printable(str(getattr(exc, "reason", None) or exc), 120)
        raise TrustUnavailable(f"{shown} holds a certificate OpenSSL cannot read ({reason}); check the file") from None
