"""Names a failed connection, handshake or HTTP exchange with one of the product's problem codes.

Library exception classes say little (a reset, an early close and plain HTTP on the TLS port can
all surface as the same class), so we walk the cause chain down to the OS or SSL error.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
from collections.abc import Iterator

from bot.probe.tlsio import TLSFlood

# OpenSSL verify codes (X509_V_ERR_*) that mean "the chain does not lead to a trusted root"
_UNTRUSTED_REASONS = {
    2: "the issuer certificate could not be found (unknown CA)",
    18: "the certificate is self-signed",
    19: "the chain ends in a self-signed root that is not trusted",
    20: "the issuer is not trusted: unknown CA, or the server does not send the intermediate certificate",
    21: "the certificate cannot be verified: the server does not send the intermediate certificate",
    24: "an intermediate certificate is not a valid CA",
    26: "the certificate is not meant for TLS servers",
    27: "the root certificate is not trusted",
    28: "the root certificate is rejected",
}
VERIFY_EXPIRED = 10
VERIFY_NOT_YET_VALID = 9


def causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def forget_tracebacks(exc: BaseException) -> None:
    """Drops the tracebacks of `exc` and its causes once only their messages are needed. A
    StreamReader keeps the error it raised, and the error's traceback keeps the reader's frames:
    a cycle that held each failed probe's buffers (about 70 KiB) until a full collection."""
    for error in causes(exc):
        error.__traceback__ = None


def untrusted_reason(verify_code: int, verify_message: str) -> str | None:
    if verify_code in _UNTRUSTED_REASONS:
        return _UNTRUSTED_REASONS[verify_code]
    if verify_code in (VERIFY_EXPIRED, VERIFY_NOT_YET_VALID):
        return None
    return f"verification failed: {verify_message}"


def find_verify_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    return next((e for e in causes(exc) if isinstance(e, ssl.SSLCertVerificationError)), None)


def alert_name(reason: str) -> str | None:
    """'SSLV3_ALERT_HANDSHAKE_FAILURE' -> 'handshake_failure'; None when it is no alert."""
    upper = reason.upper()
    if "ALERT_" in upper:
        return upper.split("ALERT_", 1)[1].lower()
    if upper.startswith("TLSV1_UNRECOGNIZED_NAME"):
        return "unrecognized_name"
    return None


def describe_connect_error(exc: BaseException) -> tuple[str, str]:
    """-> (code, message) for a failed TCP connect. Total: any exception gets a named code, so a
    way of being down we did not foresee is still reported as the target's failure, not ours."""
    for err in causes(exc):
        if isinstance(err, socket.gaierror):
            return "dns_error", f"name does not resolve ({err.strerror or err})"
        if isinstance(err, ConnectionRefusedError):
            return "connect_refused", "connection refused: nothing listens on that port"
        if isinstance(err, TimeoutError):
            return "connect_timeout", "no answer to the TCP connection attempt"
        if isinstance(err, OSError) and err.errno == errno.ENETUNREACH:
            return "network_unreachable", "network is unreachable: no route from here to the address's network"
        if isinstance(err, OSError) and err.errno == errno.EHOSTUNREACH:
            return "host_unreachable", "host is unreachable: the network answers, the host does not (down, or filtered)"
        if isinstance(err, OSError) and err.errno is not None:
            name = errno.errorcode.get(err.errno, f"errno {err.errno}")
            return "connect_error", f"connection failed: {err.strerror or os.strerror(err.errno)} ({name})"
    return "connect_error", f"connection failed ({type(exc).__name__})"


def describe_handshake_error(exc: BaseException) -> tuple[str, str]:
    """-> (code, message) for a TLS handshake that failed for a reason other than the certificate."""
    for err in causes(exc):
        if isinstance(err, TLSFlood):
            return "tls_protocol_error", str(err)
        if isinstance(err, TimeoutError):
            return "tls_handshake_timeout", "the server accepted the connection but never completed the TLS handshake"
        if isinstance(err, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return "tls_handshake_reset", "the server closed the connection during the TLS handshake"
        if isinstance(err, ssl.SSLError):
            reason = err.reason or str(err)
            alert = alert_name(reason)
            if alert:
                return "tls_alert", f"the server refused the handshake with TLS alert {alert}"
            if reason == "UNEXPECTED_EOF_WHILE_READING":
                return "tls_handshake_reset", "the server closed the connection during the TLS handshake"
            if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"):
                return "tls_protocol_error", f"the server does not speak TLS on this port ({reason})"
            return "tls_protocol_error", f"TLS protocol error: {reason}"
        if isinstance(err, ConnectionResetError) and err.errno is None:
            # asyncio reports an orderly close (FIN) mid-handshake as a ConnectionResetError without errno
            return "tls_handshake_reset", "the server closed the connection during the TLS handshake"
        if isinstance(err, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
            return "tls_handshake_reset", "the server reset the connection (TCP RST) during the TLS handshake"
        if isinstance(err, EOFError):
            return "tls_handshake_reset", "the server closed the connection during the TLS handshake"
    return "tls_protocol_error", f"TLS handshake failed ({type(exc).__name__})"
