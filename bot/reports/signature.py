"""The report signature (docs/report-api.md): HMAC-SHA256 of "v1:{timestamp}:{raw body}" with the
host's own secret, sent as `X-Certops-Signature: v1=<hex>` beside `X-Certops-Host` and
`X-Certops-Timestamp`. Probe agents sign their requests the same way."""

from __future__ import annotations

import hashlib
import hmac
import re

SCHEME = "v1"
MAX_SKEW = 300.0  # seconds a timestamp may be from the bot's clock, either way
HOST_HEADER = "X-Certops-Host"
AGENT_HEADER = "X-Certops-Agent"  # instead of HOST_HEADER on a probe agent's requests
TIMESTAMP_HEADER = "X-Certops-Timestamp"
SIGNATURE_HEADER = "X-Certops-Signature"

_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit takes "²" too
_SIGNATURE = re.compile(r"v1=([0-9a-fA-F]{64})")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The header value for `body` sent at `timestamp` (whole Unix seconds, as sent)."""
    message = f"{SCHEME}:{timestamp}:".encode() + body
    return f"{SCHEME}=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def headers(host: str, secret: str, body: bytes, now: float) -> dict[str, str]:
    """The three headers of a signed request: what the host scripts send, for tests and agents."""
    timestamp = str(int(now))
    return {HOST_HEADER: host, TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body)}


def timestamp_problem(timestamp: str, now: float) -> str | None:
    """Why a timestamp header cannot be accepted (a fixed phrase), or None."""
    if not _TIMESTAMP.fullmatch(timestamp):
        return "timestamp is not whole seconds"
    if abs(int(timestamp) - now) > MAX_SKEW:
        return "timestamp more than 5 minutes off"
    return None


def signature_matches(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """In constant time; hex of either case is accepted."""
    found = _SIGNATURE.fullmatch(signature)
    if found is None:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body)[3:], found.group(1).lower())
