"""Reads a certificate off the wire into the facts we judge and show: thumbprints, names, dates.

The certificate comes from the server we are judging, so it is read tolerantly: a name that
cryptography refuses (a subjectAltName with invalid UTF-8, a subject with an undecodable
string) is decoded by hand with the bad bytes escaped, and reported as a malformation, so the
probe can still say which certificate was served. Every text field is escaped for printing
(see text.printable): a common name with ANSI escapes must not reach a terminal raw.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from bot.probe.der import NotSure, read_fields
from bot.probe.model import CertificateInfo
from bot.probe.text import printable

MAX_NAME = 256  # characters of one name shown; a 64 KiB common name says nothing more

# cryptography.x509 is imported when a certificate is first parsed with it, not with this module:
# it is about 45 ms of CPU and 6 MiB that a `certops check` of a site whose certificate verified
# never needs (that path reads the DER itself, bot.probe.der)
if TYPE_CHECKING:
    from cryptography import x509 as x509


def __getattr__(name: str) -> Any:
    if name == "x509":  # certinfo.x509, as before the import was deferred
        from cryptography import x509

        return x509
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class UnreadableCertificate(ValueError):
    """Not even the dates or the names' structure can be read: only the thumbprints are known."""

    def __init__(self, der: bytes, reason: str) -> None:
        super().__init__(reason)
        self.sha1 = hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()
        self.reason = reason


_FIRST = dt.datetime.min.replace(tzinfo=dt.UTC)
_LAST = dt.datetime.max.replace(microsecond=0, tzinfo=dt.UTC)


def iso_utc(moment: dt.datetime) -> str:
    """The short form every result, card and request shows: 2025-01-31T09:00:00Z.

    Always four digits of year (strftime's %Y writes year 51 as "51", which no ISO reader takes
    back), and never an exception: a certificate may say it is valid from year 51 or until
    9999-12-31, and a time that would leave years 1-9999 once moved to UTC is written as the
    nearest moment that can be written."""
    try:
        at = moment.astimezone(dt.UTC)
    except (OverflowError, ValueError, OSError):  # past year 9999 or before year 1 in UTC
        at = _LAST if moment.year > 5000 else _FIRST
    return f"{at.year:04d}-{at.month:02d}-{at.day:02d}T{at.hour:02d}:{at.minute:02d}:{at.second:02d}Z"


def parse_iso_utc(text: str) -> dt.datetime:
    """Reads iso_utc's form (and any ISO 8601 time with an offset); ValueError for anything else.
    parse_iso_utc(iso_utc(t)) == t for every aware t in UTC years 1-9999, to the second."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_certificate(der: bytes, now: dt.datetime, chain_length: int | None = None) -> CertificateInfo:
    return inspect_certificate(der, now, chain_length)[0]


# The verified path reads the DER once (bot.probe.der) instead of parsing it again with
# cryptography; False forces the cryptography path everywhere (bench/cert_read.py compares the two).
FAST_READ = True


def inspect_verified_certificate(
    der: bytes, now: dt.datetime, chain_length: int | None = None
) -> tuple[CertificateInfo, list[str]]:
    """inspect_certificate for a certificate the TLS handshake verified: the same answer, read
    straight from the DER. Anything the DER reader does not vouch for (a string type, an
    extension, a key it does not check) goes through inspect_certificate instead, which also
    names what is malformed; so a certificate read here is never malformed."""
    if FAST_READ:
        try:
            fields = read_fields(der)
        except (NotSure, ValueError):  # ValueError: a strict UTF-8/UTF-16 decode or date refused
            pass
        else:
            sans = [printable(n, MAX_NAME) for n in fields.dns_names] + list(fields.ip_addresses)
            return _info(
                der,
                now,
                chain_length,
                subject=printable(fields.subject, MAX_NAME),
                issuer=printable(fields.issuer, MAX_NAME),
                sans=sans,
                serial=format(fields.serial, "X"),
                not_before=fields.not_before,
                not_after=fields.not_after,
                key_type=fields.key_type,
            ), []
    return inspect_certificate(der, now, chain_length)


def inspect_certificate(
    der: bytes, now: dt.datetime, chain_length: int | None = None
) -> tuple[CertificateInfo, list[str]]:
    """-> (the facts, what is malformed in it: sentences, empty for a well-formed certificate).
    Raises UnreadableCertificate when the certificate cannot be parsed at all."""
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(der)
        not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
        serial = format(cert.serial_number, "X")
    except ValueError as exc:
        raise UnreadableCertificate(der, str(exc)) from None
    malformed: list[str] = []
    subject = _name(cert, "subject", malformed)
    issuer = _name(cert, "issuer", malformed)
    sans = _sans(cert, malformed)
    info = _info(
        der,
        now,
        chain_length,
        subject=subject,
        issuer=issuer,
        sans=sans,
        serial=serial,
        not_before=not_before,
        not_after=not_after,
        key_type=_key_type(cert),
    )
    return info, malformed


def _info(
    der: bytes,
    now: dt.datetime,
    chain_length: int | None,
    *,
    subject: str,
    issuer: str,
    sans: list[str],
    serial: str,
    not_before: dt.datetime,
    not_after: dt.datetime,
    key_type: str,
) -> CertificateInfo:
    # one place that formats the facts, whichever reader found them: both paths give one answer
    return CertificateInfo(
        sha1=hashlib.sha1(der, usedforsecurity=False).hexdigest().upper(),  # Windows thumbprints are SHA-1
        sha256=hashlib.sha256(der).hexdigest().upper(),
        subject=subject,
        sans=tuple(sans),
        issuer=issuer,
        serial=serial,
        not_before=iso_utc(not_before),
        not_after=iso_utc(not_after),
        days_left=int((not_after - now).total_seconds() // 86400),
        key_type=key_type,
        chain_length=chain_length,
    )


def _name(cert: x509.Certificate, which: str, malformed: list[str]) -> str:
    try:
        name: x509.Name = getattr(cert, which)
        return printable(name.rfc4514_string(), MAX_NAME)
    except ValueError:
        pass
    tbs = _tbs_fields(cert.tbs_certificate_bytes)
    index = 2 if which == "issuer" else 4  # serial, signature, issuer, validity, subject
    raw = tbs[index] if tbs is not None and len(tbs) > index else None
    shown = _decode_name(raw) if raw is not None else None
    malformed.append(f"its {which} holds a string that is not valid for its type")
    return printable(shown if shown is not None else "(unreadable)", MAX_NAME)


def _sans(cert: x509.Certificate, malformed: list[str]) -> list[str]:
    from cryptography import x509

    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    except ValueError:
        raw = _raw_sans(cert.tbs_certificate_bytes)
        if raw is None:
            malformed.append("its extensions cannot be parsed")
            return []
        malformed.append("its subjectAltName holds a name that is not plain ASCII, which browsers refuse")
        return [printable(n, MAX_NAME) for n in raw]
    names: list[str] = [printable(n, MAX_NAME) for n in ext.get_values_for_type(x509.DNSName)]
    names += [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
    return names


def _key_type(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    try:
        key = cert.public_key()
    except (ValueError, TypeError):  # cryptography raises both for keys it cannot load
        return "unknown"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    return type(key).__name__


def _ip_or_none(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # an IPv4 address ends in a digit and an IPv6 one holds a colon: a name such as www.example.test
    # is neither, and is not parsed (a refused parse raises, the dearest part of the name check)
    if ":" not in text and not text[-1:].isdigit():
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def matches_hostname(sans: tuple[str, ...], hostname: str) -> bool:
    """RFC 6125 matching as browsers do it: SANs only, one left-most wildcard label."""
    wanted = hostname.rstrip(".").lower()
    wanted_ip = _ip_or_none(wanted)
    for san in sans:
        if wanted_ip is not None:
            try:
                if ipaddress.ip_address(san) == wanted_ip:
                    return True
            except ValueError:
                continue
            continue
        pattern = san.rstrip(".").lower()
        if pattern == wanted:
            return True
        if pattern.startswith("*.") and "." in wanted:
            label, rest = wanted.split(".", 1)
            if label and rest == pattern[2:] and rest.count(".") >= 1:
                return True
    return False


# --- a small, bounds-checked DER reader for the parts cryptography refuses ---------------------

_SAN_OID = bytes.fromhex("551d11")  # 2.5.29.17
_NAME_OIDS = {
    bytes.fromhex("550403"): "CN",
    bytes.fromhex("55040a"): "O",
    bytes.fromhex("55040b"): "OU",
    bytes.fromhex("550406"): "C",
    bytes.fromhex("550407"): "L",
    bytes.fromhex("550408"): "ST",
}


def _tlvs(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(tag, contents) of each DER element in `data`; stops at the first malformed length."""
    at = 0
    while at + 2 <= len(data):
        tag, first = data[at], data[at + 1]
        at += 2
        if first < 0x80:
            size = first
        else:
            count = first & 0x7F
            if count == 0 or count > 4 or at + count > len(data):
                return
            size = int.from_bytes(data[at : at + count], "big")
            at += count
        if at + size > len(data):
            return
        yield tag, data[at : at + size]
        at += size


def _tbs_fields(tbs: bytes) -> list[bytes] | None:
    outer = next(_tlvs(tbs), None)
    if outer is None or outer[0] != 0x30:
        return None
    fields = [contents for tag, contents in _tlvs(outer[1]) if tag != 0xA0]  # without the version
    return fields or None


def _decode_name(name: bytes) -> str | None:
    parts: list[str] = []
    for _set_tag, rdn in _tlvs(name):
        for _seq_tag, attribute in _tlvs(rdn):
            items = list(_tlvs(attribute))
            if len(items) != 2:
                return None
            (_oid_tag, oid), (value_tag, value) = items
            label = _NAME_OIDS.get(oid, "OID." + oid.hex())
            parts.append(f"{label}={_decode_string(value_tag, value)}")
    return ",".join(reversed(parts))  # RFC 4514 order: the last RDN first


def _decode_string(tag: int, value: bytes) -> str:
    if tag == 0x1E:  # BMPString
        return value.decode("utf-16-be", "backslashreplace")
    return value.decode("utf-8", "backslashreplace")


def _raw_sans(tbs: bytes) -> list[str] | None:
    outer = next(_tlvs(tbs), None)
    if outer is None:
        return None
    extensions = next((contents for tag, contents in _tlvs(outer[1]) if tag == 0xA3), None)
    if extensions is None:
        return None
    sequence = next(_tlvs(extensions), None)
    if sequence is None:
        return None
    for _tag, extension in _tlvs(sequence[1]):
        items = list(_tlvs(extension))
        if not items or items[0] != (0x06, _SAN_OID):
            continue
        general_names = next(_tlvs(items[-1][1]), None)
        if general_names is None:
            return None
        names: list[str] = []
        for tag, value in _tlvs(general_names[1]):
            if tag == 0x82:  # dNSName, an IA5String: escape what is not ASCII
                names.append(value.decode("ascii", "backslashreplace"))
            elif tag == 0x87 and len(value) in (4, 16):  # iPAddress
                names.append(str(ipaddress.ip_address(value)))
        return names
    return None
