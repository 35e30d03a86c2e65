"""The external probe: one fresh TCP connection, the TLS handshake with the real SNI, the
certificate read off the wire (also when it fails verification), then one HTTP request with the
real Host header. Never a pooled or kept-alive connection: a reused connection could answer for
another site's certificate.

Built on asyncio streams rather than an HTTP client library: a probe needs control of each phase
(to name what failed) and costs about half as much CPU this way (see bench/probe_throughput.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from bot.probe import failures
from bot.probe.certinfo import iso_utc, matches_hostname, read_certificate
from bot.probe.http1 import Answer, HTTPProtocolError, build_request, read_answer
from bot.probe.model import (
    PROBLEM_CODES,
    CertificateInfo,
    HTTPInfo,
    ProbeResult,
    ProbeTarget,
    Problem,
    Severity,
    TLSInfo,
)

log = logging.getLogger(__name__)

CACHE_HEADERS = ("cf-cache-status", "age", "x-cache", "x-cache-status", "cdn-cache", "x-proxy-cache")
_CACHE_HIT_WORDS = ("HIT", "STALE", "UPDATING", "REVALIDATED")


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> str: ...


# getaddrinfo blocks; on the loop's small default pool a few stalled lookups would hold up every
# other probe and turn healthy sites into timeouts, so name lookups get threads of their own
_DNS_THREADS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="certops-dns")


class SystemResolver:
    async def resolve(self, host: str, port: int) -> str:
        if _is_ip(host):
            return host
        loop = asyncio.get_running_loop()
        infos = await loop.run_in_executor(_DNS_THREADS, socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
        if not infos:
            raise socket.gaierror(socket.EAI_NONAME, "no addresses")
        return str(infos[0][4][0])


class StaticResolver:
    """Answers from a fixed table, like a hosts file; any other name does not resolve."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = {k.lower(): v for k, v in table.items()}

    async def resolve(self, host: str, port: int) -> str:
        if _is_ip(host):
            return host
        try:
            return self.table[host.lower()]
        except KeyError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=64)
def verifying_context(ca_file: str | None) -> ssl.SSLContext:
    # One context per trust configuration, shared by every probe: building a default context
    # loads the whole system store, which would make each probe 20-30 times dearer.
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.check_hostname = False  # names are matched by us, so a wrong name still yields the certificate
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


@functools.lru_cache(maxsize=1)
def reading_context() -> ssl.SSLContext:
    """Only to read a certificate that failed verification, so we can say what is wrong with it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class _Failed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


PROBE_ERROR = "certops could not complete this probe (see the bot's log)"


def problem(code: str, message: str, severity: Severity | None = None) -> Problem:
    return Problem(code, severity or PROBLEM_CODES[code], message)


class _Probe:
    def __init__(self, target: ProbeTarget, resolver: Resolver, now: dt.datetime) -> None:
        self.target = target
        self.resolver = resolver
        self.now = now
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + target.timeout
        self.address: str | None = None
        self.problems: list[Problem] = []
        self.certificate: CertificateInfo | None = None
        self.tls: TLSInfo | None = None
        self.http: HTTPInfo | None = None

    def add(self, code: str, message: str, severity: Severity | None = None) -> None:
        self.problems.append(problem(code, message, severity))

    @property
    def port(self) -> int:
        return self.target.connect_port or self.target.port

    async def run(self) -> None:
        try:
            await self._run()
        except _Failed as failed:
            self.add(failed.code, failed.message)

    async def _run(self) -> None:
        target = self.target
        host = target.connect_host or target.hostname
        try:
            async with asyncio.timeout_at(self.deadline):
                self.address = await self.resolver.resolve(host, self.port)
        except TimeoutError:
            raise _Failed("dns_error", f"looking up {host} took longer than {target.timeout:g} s") from None
        except OSError as exc:
            raise _Failed("dns_error", f"{host}: {failures.describe_connect_error(exc)[1]}") from None

        try:
            reader, writer = await self._session(verifying_context(target.ca_file))
        except ssl.SSLCertVerificationError as exc:
            await self._judge_unverified(exc)
            return
        try:
            self._judge_certificate(writer, verify_error=None)
            await self._exchange(reader, writer)
        finally:
            writer.transport.abort()

    async def _session(self, ctx: ssl.SSLContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A fresh TCP connection and TLS handshake; raises _Failed or SSLCertVerificationError."""
        assert self.address is not None
        try:
            async with asyncio.timeout_at(self.deadline):
                reader, writer = await asyncio.open_connection(self.address, self.port)
        except (OSError, TimeoutError) as exc:
            code, message = failures.describe_connect_error(exc)
            raise _Failed(code, f"{self.address}:{self.port}: {message}") from None
        try:
            async with asyncio.timeout_at(self.deadline):
                await writer.start_tls(ctx, server_hostname=self.target.hostname)
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
        except Exception as exc:
            writer.transport.abort()
            verify_error = failures.find_verify_error(exc)
            if verify_error is not None:
                raise verify_error from None
            code, message = failures.describe_handshake_error(exc)
            raise _Failed(code, message) from None
        return reader, writer

    def _judge_certificate(
        self, writer: asyncio.StreamWriter, verify_error: ssl.SSLCertVerificationError | None
    ) -> None:
        sslobj: ssl.SSLObject = writer.get_extra_info("ssl_object")
        der = sslobj.getpeercert(binary_form=True)
        cipher = sslobj.cipher()
        self.tls = TLSInfo(sslobj.version() or "unknown", cipher[0] if cipher else "unknown")
        if not der:
            self.add("tls_protocol_error", "the server sent no certificate")
            return
        chain_length = _chain_length(sslobj) if verify_error is not None else None
        cert = read_certificate(der, self.now, chain_length)
        self.certificate = cert
        target = self.target

        not_after = dt.datetime.fromisoformat(cert.not_after)
        not_before = dt.datetime.fromisoformat(cert.not_before)
        if self.now >= not_after:
            self.add("cert_expired", f"certificate expired on {cert.not_after[:10]} ({_days(-cert.days_left)} ago)")
        elif self.now < not_before:
            self.add("cert_not_yet_valid", f"certificate is valid only from {cert.not_before}")
        elif cert.days_left < target.warn_days:
            severity = Severity.CRITICAL if cert.days_left < target.crit_days else Severity.WARNING
            self.add(
                "cert_expiring", f"certificate expires in {_days(cert.days_left)} ({cert.not_after[:10]})", severity
            )

        if not matches_hostname(cert.sans, target.hostname):
            names = ", ".join(cert.sans[:5]) or cert.subject
            self.add("cert_hostname_mismatch", f"certificate is for {names}, not {target.hostname}")

        if verify_error is not None:
            code = verify_error.verify_code
            reason = failures.untrusted_reason(code, verify_error.verify_message)
            if reason and code in (20, 21) and chain_length == 1:
                reason = (
                    "the server sends no intermediate certificate, and the issuer is not trusted "
                    "(missing intermediate or unknown CA)"
                )
            if reason:
                self.add("cert_untrusted", f"{reason}; issuer {cert.issuer}")
            elif not any(p.code in ("cert_expired", "cert_not_yet_valid") for p in self.problems):
                # OpenSSL saw a date problem our clock does not: still never call a failed check OK
                self.add("cert_untrusted", f"verification failed: {verify_error.verify_message}")

    async def _judge_unverified(self, verify_error: ssl.SSLCertVerificationError) -> None:
        try:
            _reader, writer = await self._session(reading_context())
        except (_Failed, ssl.SSLError):
            self.add("cert_untrusted", f"certificate failed verification: {verify_error.verify_message}")
            return
        try:
            self._judge_certificate(writer, verify_error)
        finally:
            writer.transport.abort()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = self.target
        method = "GET" if target.keyword else "HEAD"
        started = time.perf_counter()
        answer = await self._request(reader, writer, method)
        if method == "HEAD" and answer.status in (405, 501):
            method = "GET"  # HEAD refused: ask again, on a fresh connection as always
            writer.transport.abort()
            try:
                reader, writer = await self._session(verifying_context(target.ca_file))
            except ssl.SSLCertVerificationError as exc:
                raise _Failed("cert_untrusted", f"certificate failed verification: {exc.verify_message}") from None
            started = time.perf_counter()
            try:
                answer = await self._request(reader, writer, method)
            finally:
                writer.transport.abort()
        elapsed_ms = (time.perf_counter() - started) * 1000
        cache = {k: answer.headers[k] for k in CACHE_HEADERS if k in answer.headers}
        self.http = HTTPInfo(answer.status, method, elapsed_ms, cache)

        expected = target.expect_status
        if (answer.status not in expected) if expected else not 200 <= answer.status < 400:
            wanted = ", ".join(map(str, expected)) if expected else "2xx or 3xx"
            severity = Severity.CRITICAL if answer.status >= 500 else Severity.WARNING
            self.add("http_status", f"HTTP {answer.status} (expected {wanted})", severity)
        elif target.keyword and target.keyword.encode() not in answer.body:
            self.add("keyword_missing", f'the page does not contain "{target.keyword}"')
        if _from_cache(answer):
            seen = ", ".join(f"{k}: {v}" for k, v in cache.items())
            self.add(
                "served_from_cache",
                f"answered from a CDN cache ({seen}); the origin may be down without it showing here",
            )

    async def _request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str) -> Answer:
        target = self.target
        try:
            async with asyncio.timeout_at(self.deadline):
                writer.write(build_request(method, target.hostname, target.port, target.path))
                return await read_answer(reader, want_body=bool(target.keyword), method=method)
        except TimeoutError:
            raise _Failed(
                "http_timeout", f"no HTTP answer within {target.timeout:g} s after the TLS handshake"
            ) from None
        except HTTPProtocolError as exc:
            raise _Failed("http_error", str(exc)) from None
        except (OSError, ssl.SSLError) as exc:
            raise _Failed(
                "http_error", f"connection lost while waiting for the HTTP answer ({type(exc).__name__})"
            ) from None

    def result(self, started: float) -> ProbeResult:
        return ProbeResult(
            target=self.target,
            address=self.address,
            problems=tuple(self.problems),
            certificate=self.certificate,
            tls=self.tls,
            http=self.http,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            checked_at=iso_utc(self.now),
        )


def _days(count: int) -> str:
    return f"{count} day" if count == 1 else f"{count} days"


def _chain_length(sslobj: ssl.SSLObject) -> int | None:
    # Public only from Python 3.13 (get_unverified_chain); CPython 3.10-3.12 have it privately.
    inner: Any = getattr(sslobj, "_sslobj", None)
    getter = getattr(inner, "get_unverified_chain", None)
    if getter is None:
        return None
    try:
        chain = getter()
    except (ssl.SSLError, ValueError):
        return None
    return len(chain) if chain is not None else None


def _from_cache(answer: Answer) -> bool:
    headers = answer.headers
    for name in ("cf-cache-status", "x-cache", "x-cache-status", "cdn-cache", "x-proxy-cache"):
        value = headers.get(name, "").upper()
        if any(word in value for word in _CACHE_HIT_WORDS):
            return True
    age = headers.get("age", "").strip()
    return age.isdigit() and int(age) > 0


async def probe(
    target: ProbeTarget, *, resolver: Resolver | None = None, now: dt.datetime | None = None
) -> ProbeResult:
    started = time.perf_counter()
    state = _Probe(target, resolver or SystemResolver(), now or dt.datetime.now(dt.UTC))
    try:
        await state.run()
    except Exception:
        log.exception("probe of %s failed inside certops", target.url)
        state.problems.append(problem("probe_error", PROBE_ERROR))
    return state.result(started)


def failed_probe(target: ProbeTarget, now: dt.datetime | None = None) -> ProbeResult:
    """The result of a probe certops could not even start (its own failure: status unknown)."""
    at = iso_utc(now or dt.datetime.now(dt.UTC))
    return ProbeResult(target, None, (problem("probe_error", PROBE_ERROR),), None, None, None, 0.0, at)


async def probe_many(
    targets: Sequence[ProbeTarget],
    *,
    concurrency: int = 50,
    resolver: Resolver | None = None,
    on_result: Callable[[ProbeResult], None] | None = None,
    gate: asyncio.Semaphore | None = None,
) -> list[ProbeResult]:
    """Probe every target, at most `concurrency` at a time (or as a `gate` shared with other
    callers allows); results come back in target order."""
    gate = gate or asyncio.Semaphore(concurrency)
    shared = resolver or SystemResolver()

    async def one(target: ProbeTarget) -> ProbeResult:
        async with gate:
            result = await probe(target, resolver=shared)
        if on_result is not None:
            on_result(result)
        return result

    return list(await asyncio.gather(*(one(t) for t in targets)))
