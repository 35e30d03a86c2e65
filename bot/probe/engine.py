"""The external probe: one fresh TCP connection, the TLS handshake with the real SNI, the
certificate read off the wire (also when it fails verification), then one HTTP request with the
real Host header. Never a pooled or kept-alive connection: a reused connection could answer for
another site's certificate.

Built on asyncio streams rather than an HTTP client library: a probe needs control of each phase
(to name what failed) and costs about half as much CPU this way (see bench/probe_throughput.py).
TLS runs through tlsio.TLSStream, which counts what the server sends, so a server that streams
records forever is named within a few hundred KiB instead of burning CPU until the timeout.

Redirects: a 3xx within the probed site (https, same host and port) is a good answer; one to
another site or to http:// is `redirect_elsewhere`, naming where it points. With
`follow_redirects`, up to MAX_REDIRECTS hops are followed, each on a fresh connection: within the
site to the same address (an origin probe stays on its origin), to another site only from a
public probe and only as a browser would go there (its own DNS, SNI and certificate, checked);
the final answer is then judged for status and keyword.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol
from urllib.parse import quote, urljoin, urlsplit

import idna

from bot.logs import logger
from bot.probe import failures
from bot.probe.certinfo import (
    UnreadableCertificate,
    inspect_certificate,
    inspect_verified_certificate,
    iso_utc,
    matches_hostname,
    parse_iso_utc,
)
from bot.probe.http1 import Answer, HTTPProtocolError, build_request, page_contains, read_answer
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
from bot.probe.text import printable
from bot.probe.tlsio import TLSFlood, TLSStream
from bot.probe.trust import TrustUnavailable, verifying_context

log = logger(__name__)

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
    if ":" not in host and not host[-1:].isdigit():
        return False  # no IPv4 address ends in a letter, and every IPv6 one holds a colon
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


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
MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
_AGE = re.compile(r"[0-9]{1,18}")


def problem(code: str, message: str, severity: Severity | None = None) -> Problem:
    # an unregistered code is a bug of ours, but it must not turn the target's failure into ours
    return Problem(code, severity or PROBLEM_CODES.get(code, Severity.CRITICAL), message)


@dataclass(frozen=True)
class _Place:
    """Where a request goes: scheme, host (lower-case), port, and the path with its query."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def key(self) -> tuple[str, str, int, str]:
        return (self.scheme, self.host.lower(), self.port, self.path)

    @property
    def shown(self) -> str:
        """For messages: no user info, the query cut (it may carry a session token), escaped."""
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        netloc = host if self.port == default else f"{host}:{self.port}"
        path, query, _ = self.path.partition("?")
        return printable(f"{self.scheme}://{netloc}{path}{'?…' if query else ''}", 200)

    def same_origin(self, other: _Place) -> bool:
        return self.key[:3] == other.key[:3]

    @staticmethod
    def of_location(location: bytes, base: _Place) -> _Place | None:
        """The absolute place a Location header (its bytes as sent) points to, or None when it is
        no usable URL.

        The bytes are read as UTF-8, any byte that is not UTF-8 kept as it is (surrogateescape),
        so the path sent is the server's own bytes percent-encoded: /café sent in UTF-8 is asked
        as /caf%C3%A9, never double-encoded. A host is turned into the A-labels DNS, SNI and Host use."""
        text = location.decode("utf-8", "surrogateescape").strip().replace("\t", "")
        # browsers read a backslash before the query as "/": "https://a\@b/" stays on a, so do we
        before, mark, query = text.partition("?")
        text = before.replace("\\", "/") + mark + query
        try:
            parts = urlsplit(urljoin(f"{base.scheme}://{_netloc(base.host, base.port)}{base.path}", text))
            port = parts.port
            hostname = parts.hostname or ""
        except ValueError:
            return None
        if port == 0:
            return None  # no server listens on port 0: ":0" is not "the default port"
        if "[" in parts.netloc.rpartition("@")[2]:
            host = _ipv6(hostname)  # brackets hold an IPv6 address, nothing else (no IPvFuture)
        else:
            host = _dns_name(hostname) if ":" not in hostname else None
        if parts.scheme not in ("http", "https") or host is None:
            return None
        path = quote(parts.path or "/", safe=_PATH_SAFE, errors="surrogateescape")
        if parts.query:
            path += "?" + quote(parts.query, safe=_PATH_SAFE + "?", errors="surrogateescape")
        default = 443 if parts.scheme == "https" else 80
        return _Place(parts.scheme, host, port or default, path)


# what may stay as it is in a path sent on the request line; anything else is percent-encoded,
# so a Location with spaces, CR/LF or non-ASCII cannot split or break our request
_PATH_SAFE = "/%:@!$&'()*+,;=~-._"


def _dns_name(host: str) -> str | None:
    """A Location's host as DNS, SNI and the Host header spell it (A-labels: évil.test is
    xn--vil-9la.test); None when it is not a name."""
    host = host.rstrip(".")
    if _is_ip(host):
        return host
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return None


def _ipv6(host: str) -> str | None:
    """The IPv6 address in a Location's brackets, or None (an IPvFuture such as [v1.x], a zone)."""
    try:
        return str(ipaddress.IPv6Address(host)) if "%" not in host else None
    except ValueError:
        return None


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
        self.context: ssl.SSLContext | None = None  # the verifying context, once the CA file is read
        self._unverified: _Seen | None = None  # what the last handshake that failed verification showed
        self._elapsed_ms = 0.0

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
        self.context = await self._trust()
        host = target.connect_host or target.hostname
        self.address = await self._resolve(host, self.port)
        try:
            stream = await self._session(self.context)
        except ssl.SSLCertVerificationError as exc:
            await self._judge_unverified(exc)
            return
        try:
            self._judge_certificate(stream, verify_error=None)
            await self._exchange(stream)
        finally:
            stream.abort()

    async def _trust(self) -> ssl.SSLContext:
        """The verifying context for the target's CA file, read off the loop within the probe's time."""
        ca_file = self.target.ca_file
        what = f"reading the CA file {printable(ca_file, 200)}" if ca_file else "loading the system's CA store"
        try:
            async with asyncio.timeout_at(self.deadline):
                return await verifying_context(ca_file)
        except TimeoutError:
            raise _Failed(
                "ca_file_unreadable",
                f"cannot verify certificates: {what} took longer than {self.target.timeout:g} s",
            ) from None
        except TrustUnavailable as exc:
            raise _Failed("ca_file_unreadable", f"cannot verify certificates: {exc}") from None

    async def _resolve(self, host: str, port: int) -> str:
        try:
            async with asyncio.timeout_at(self.deadline):
                return await self.resolver.resolve(host, port)
        except TimeoutError:
            raise _Failed("dns_error", f"looking up {host} took longer than {self.target.timeout:g} s") from None
        except OSError as exc:
            raise _Failed("dns_error", f"{host}: {failures.describe_connect_error(exc)[1]}") from None

    async def _session(
        self, ctx: ssl.SSLContext, address: str | None = None, port: int | None = None, hostname: str | None = None
    ) -> TLSStream:
        """A fresh TCP connection and TLS handshake; raises _Failed or SSLCertVerificationError."""
        address = address or self.address
        port = port or self.port
        assert address is not None
        self._unverified = None
        try:
            async with asyncio.timeout_at(self.deadline):
                source = self.target.source_address
                reader, writer = await asyncio.open_connection(
                    address, port, local_addr=(source, 0) if source else None
                )
        except (OSError, TimeoutError) as exc:
            failures.forget_tracebacks(exc)
            code, message = failures.describe_connect_error(exc)
            shown = f"[{address}]" if ":" in address else address
            raise _Failed(code, f"{shown}:{port}: {message}") from None
        stream = TLSStream(reader, writer, ctx, hostname or self.target.hostname)
        try:
            async with asyncio.timeout_at(self.deadline):
                await stream.handshake()
        except asyncio.CancelledError:
            stream.abort()
            raise
        except Exception as exc:
            stream.abort()
            failures.forget_tracebacks(exc)
            verify_error = failures.find_verify_error(exc)
            if verify_error is not None:
                self._unverified = _Seen.of(stream)
                try:
                    raise verify_error from None
                finally:
                    del verify_error  # this frame is in the traceback it raises with: no cycle
            code, message = failures.describe_handshake_error(exc)
            raise _Failed(code, message) from None
        return stream

    def _judge_certificate(self, stream: TLSStream, verify_error: ssl.SSLCertVerificationError | None) -> None:
        sslobj = stream.sslobj
        cipher = sslobj.cipher()
        self.tls = TLSInfo(sslobj.version() or "unknown", cipher[0] if cipher else "unknown")
        self.certificate, found = self._certificate_problems(stream, self.target.hostname, verify_error)
        self.problems += found

    def _certificate_problems(
        self, stream: TLSStream, hostname: str, verify_error: ssl.SSLCertVerificationError | None
    ) -> tuple[CertificateInfo | None, list[Problem]]:
        """What is wrong with the certificate `stream` was served, for `hostname`."""
        sslobj = stream.sslobj
        der = sslobj.getpeercert(binary_form=True)
        if not der:
            return None, [problem("tls_protocol_error", "the server sent no certificate")]
        chain_length = _chain_length(stream) if verify_error is not None else None
        return self._der_problems(der, chain_length, hostname, verify_error)

    def _der_problems(
        self, der: bytes, chain_length: int | None, hostname: str, verify_error: ssl.SSLCertVerificationError | None
    ) -> tuple[CertificateInfo | None, list[Problem]]:
        """What is wrong with the certificate `der` (the server's own) for `hostname`."""
        # a verified handshake has had OpenSSL decode the certificate: read its DER once more,
        # cheaply, rather than parse it again with cryptography (which reads the unverified ones)
        inspect = inspect_certificate if verify_error is not None else inspect_verified_certificate
        try:
            cert, malformed = inspect(der, self.now, chain_length)
        except UnreadableCertificate as exc:
            return None, [
                problem("cert_malformed", f"the certificate {exc.sha1} cannot be parsed: {printable(exc.reason, 200)}")
            ]
        target = self.target
        found: list[Problem] = []
        if malformed:
            found.append(problem("cert_malformed", f"the certificate is malformed: {'; '.join(malformed)}"))

        not_after = parse_iso_utc(cert.not_after)  # iso_utc's form, four-digit year and all
        not_before = parse_iso_utc(cert.not_before)
        if self.now >= not_after:
            found.append(
                problem("cert_expired", f"certificate expired on {cert.not_after[:10]} ({_days(-cert.days_left)} ago)")
            )
        elif self.now < not_before:
            found.append(problem("cert_not_yet_valid", f"certificate is valid only from {cert.not_before}"))
        elif cert.days_left < target.warn_days:
            severity = Severity.CRITICAL if cert.days_left < target.crit_days else Severity.WARNING
            found.append(
                problem(
                    "cert_expiring",
                    f"certificate expires in {_days(cert.days_left)} ({cert.not_after[:10]})",
                    severity,
                )
            )

        if not matches_hostname(cert.sans, hostname):
            names = ", ".join(cert.sans[:5]) or cert.subject
            found.append(problem("cert_hostname_mismatch", f"certificate is for {names}, not {hostname}"))

        if verify_error is not None:
            code = verify_error.verify_code
            reason = failures.untrusted_reason(code, verify_error.verify_message)
            if reason and code in (20, 21) and chain_length == 1:
                reason = (
                    "the server sends no intermediate certificate, and the issuer is not trusted "
                    "(missing intermediate or unknown CA)"
                )
            if reason:
                found.append(problem("cert_untrusted", f"{reason}; issuer {cert.issuer}"))
            elif not any(p.code in ("cert_expired", "cert_not_yet_valid") for p in found):
                # OpenSSL saw a date problem our clock does not: still never call a failed check OK
                found.append(problem("cert_untrusted", f"verification failed: {verify_error.verify_message}"))
        return cert, found

    async def _judge_unverified(self, verify_error: ssl.SSLCertVerificationError) -> None:
        seen, self._unverified = self._unverified, None
        if seen is not None:  # the failed handshake showed all we read: no second connection
            self.tls = seen.tls
            hostname = self.target.hostname
            self.certificate, found = self._der_problems(seen.der, seen.chain_length, hostname, verify_error)
            self.problems += found
            return
        try:
            stream = await self._session(reading_context())
        except (_Failed, ssl.SSLError):
            self.add("cert_untrusted", f"certificate failed verification: {verify_error.verify_message}")
            return
        try:
            self._judge_certificate(stream, verify_error)
        finally:
            stream.abort()

    async def _exchange(self, stream: TLSStream) -> None:
        target = self.target
        method = "GET" if target.keyword else "HEAD"
        home = _Place("https", target.hostname, target.port, target.path)
        place = home
        answer, method = await self._ask(stream, method, place, self._reopen_home)
        asked = {place.key}
        followed: list[str] = []
        # set once a problem about the redirect is reported: that answer is not judged again
        reported = False
        while answer.status in _REDIRECTS:
            location = answer.headers.get("location")
            raw_location = answer.raw_headers.get("location")
            nxt = _Place.of_location(raw_location, place) if raw_location is not None else None
            if nxt is not None:
                self._record(answer, method, followed, location=nxt.shown)
            if target.expect_status and not target.follow_redirects:
                break  # the operator listed the right statuses: expect_status alone judges the answer
            if location is None:
                self.add("http_status", f"HTTP {answer.status} redirects, but there is no Location header")
                reported = True
                break
            if nxt is None:
                self.add(
                    "http_error",
                    f"HTTP {answer.status} redirects to '{printable(location, 120)}', which is not a usable URL",
                )
                reported = True
                break
            reported = True
            if nxt.key in asked:
                self.add(
                    "redirect_loop", f"HTTP {answer.status} redirects back to {nxt.shown}, which was asked already"
                )
                break
            if nxt.scheme != "https":
                self.add("redirect_elsewhere", f"HTTP {answer.status} redirects to plain HTTP: {nxt.shown}")
                break
            if not target.follow_redirects:
                if nxt.same_origin(home):
                    reported = False  # a redirect within the site is a good answer by default
                else:
                    self.add(
                        "redirect_elsewhere",
                        f"HTTP {answer.status} redirects to another site: {nxt.shown} "
                        "(not followed; follow_redirects = true follows and checks it)",
                    )
                break
            if len(followed) == MAX_REDIRECTS:
                self.add(
                    "too_many_redirects",
                    f"more than {MAX_REDIRECTS} redirects; the last one, to {nxt.shown}, was not followed",
                )
                break
            if not nxt.same_origin(home) and target.connect_host is not None:
                self.add(
                    "redirect_elsewhere",
                    f"HTTP {answer.status} redirects to another site: {nxt.shown} "
                    "(not followed: a probe of an origin address stays on that address)",
                )
                break
            asked.add(nxt.key)
            followed.append(nxt.shown)
            try:
                hop = await self._hop(nxt, method, same=nxt.same_origin(home))
            except _Failed as failed:
                raise _Failed(failed.code, f"after the redirect to {nxt.shown}: {failed.message}") from None
            if hop is None:
                break  # the other site's certificate is bad: reported, and a browser stops there too
            answer, method = hop
            self._record(answer, method, followed)
            place = nxt
            reported = False

        expected = target.expect_status
        if reported:
            pass
        elif (answer.status not in expected) if expected else not 200 <= answer.status < 400:
            wanted = ", ".join(map(str, expected)) if expected else "2xx or 3xx"
            severity = Severity.CRITICAL if answer.status >= 500 else Severity.WARNING
            location = self.http.location if self.http is not None else None
            pointed = f" to {location}" if location else ""
            self.add("http_status", f"HTTP {answer.status}{pointed} (expected {wanted})", severity)
        elif target.keyword and not page_contains(answer, target.keyword):  # the text, by its charset
            self.add("keyword_missing", f'the page does not contain "{target.keyword}"')
        if _from_cache(answer) and self.http is not None:
            seen = ", ".join(f"{k}: {v}" for k, v in self.http.cache.items())
            self.add(
                "served_from_cache",
                f"answered from a CDN cache ({seen}); the origin may be down without it showing here",
            )

    async def _reopen_home(self) -> TLSStream:
        assert self.context is not None
        try:
            return await self._session(self.context)
        except ssl.SSLCertVerificationError as exc:
            raise _Failed("cert_untrusted", f"certificate failed verification: {exc.verify_message}") from None

    async def _hop(self, place: _Place, method: str, *, same: bool) -> tuple[Answer, str] | None:
        """Ask `place` on a fresh connection: the probed address when it is the probed site; else
        the other site's own address, name and certificate, checked as a browser would."""
        if same:
            return await self._ask(await self._reopen_home(), method, place, self._reopen_home)
        address = await self._resolve(place.host, place.port)
        ctx = self.context
        assert ctx is not None
        prefix = f"after the redirect to {place.shown}: "
        try:
            stream = await self._session(ctx, address, place.port, place.host)
        except ssl.SSLCertVerificationError as exc:
            self.problems += [
                replace(p, message=prefix + p.message) for p in await self._read_elsewhere(place, address, exc)
            ]
            return None
        _cert, found = self._certificate_problems(stream, place.host, None)
        self.problems += [replace(p, message=prefix + p.message) for p in found]
        if any(p.severity is Severity.CRITICAL for p in found):
            stream.abort()
            return None

        async def reopen() -> TLSStream:
            try:
                return await self._session(ctx, address, place.port, place.host)
            except ssl.SSLCertVerificationError as exc:
                raise _Failed("cert_untrusted", f"certificate failed verification: {exc.verify_message}") from None

        return await self._ask(stream, method, place, reopen)

    async def _read_elsewhere(self, place: _Place, address: str, error: ssl.SSLCertVerificationError) -> list[Problem]:
        seen, self._unverified = self._unverified, None
        if seen is not None:
            return self._der_problems(seen.der, seen.chain_length, place.host, error)[1]
        try:
            stream = await self._session(reading_context(), address, place.port, place.host)
        except (_Failed, ssl.SSLError):
            return [problem("cert_untrusted", f"certificate failed verification: {error.verify_message}")]
        try:
            return self._certificate_problems(stream, place.host, error)[1]
        finally:
            stream.abort()

    async def _ask(
        self, stream: TLSStream, method: str, place: _Place, reopen: Callable[[], Awaitable[TLSStream]]
    ) -> tuple[Answer, str]:
        """One request and its answer (recorded); a refused HEAD is asked again with GET, on a
        fresh connection as always."""
        try:
            started = time.perf_counter()
            answer = await self._request(stream, method, place)
        finally:
            stream.abort()
        if method == "HEAD" and answer.status in (405, 501):
            method = "GET"
            stream = await reopen()
            try:
                started = time.perf_counter()
                answer = await self._request(stream, method, place)
            finally:
                stream.abort()
        self._elapsed_ms = (time.perf_counter() - started) * 1000
        self._record(answer, method, [])
        return answer, method

    def _record(self, answer: Answer, method: str, followed: list[str], location: str | None = None) -> None:
        cache = {k: printable(answer.headers[k], 200) for k in CACHE_HEADERS if k in answer.headers}
        redirects = tuple(followed) if followed else (self.http.redirects if self.http else ())
        self.http = HTTPInfo(answer.status, method, self._elapsed_ms, cache, location, redirects)

    async def _request(self, stream: TLSStream, method: str, place: _Place) -> Answer:
        target = self.target
        try:
            async with asyncio.timeout_at(self.deadline):
                stream.write(build_request(method, place.host, place.port, place.path))
                return await read_answer(stream, want_body=bool(target.keyword), method=method)
        except TimeoutError:
            if stream.delivered:
                raise _Failed(
                    "http_timeout",
                    f"the answer began to arrive but did not finish within {target.timeout:g} s "
                    f"({stream.delivered:,} bytes received)",
                ) from None
            raise _Failed(
                "http_timeout", f"no HTTP answer within {target.timeout:g} s after the TLS handshake"
            ) from None
        except HTTPProtocolError as exc:
            raise _Failed("http_error", str(exc)) from None
        except TLSFlood as exc:
            raise _Failed("tls_protocol_error", str(exc)) from None
        except (OSError, ssl.SSLError) as exc:
            failures.forget_tracebacks(exc)
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


def _chain_length(stream: TLSStream) -> int | None:
    chain = stream.peer_chain()
    return len(chain) if chain is not None else None


@dataclass(frozen=True)
class _Seen:
    """What a handshake that failed verification showed: the server's certificate, how many it
    sent, and the TLS version and cipher, as the second, non-verifying handshake would read them."""

    der: bytes
    chain_length: int
    tls: TLSInfo

    @staticmethod
    def of(stream: TLSStream) -> _Seen | None:
        """None when the failed handshake does not show it all: then a second handshake reads it.
        SSLObject.version() stays None until a handshake completes; a TLS 1.3 cipher suite means
        TLS 1.3 (they are used by no other version). A TLS 1.2 handshake that failed shows no
        cipher yet, so it takes the second handshake, as before."""
        cipher = stream.sslobj.cipher()
        if cipher is None or cipher[1] != "TLSv1.3":
            return None
        chain = stream.peer_chain()
        if not chain:
            return None
        return _Seen(chain[0], len(chain), TLSInfo("TLSv1.3", cipher[0]))


def _from_cache(answer: Answer) -> bool:
    headers = answer.headers
    for name in ("cf-cache-status", "x-cache", "x-cache-status", "cdn-cache", "x-proxy-cache"):
        value = headers.get(name, "").upper()
        if any(word in value for word in _CACHE_HIT_WORDS):
            return True
    age = headers.get("age", "").strip()
    return bool(_AGE.fullmatch(age)) and int(age) > 0  # a garbled Age claims nothing


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
