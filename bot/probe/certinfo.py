"""Reads a certificate off the wire into the facts we judge and show: thumbprints, names, dates."""

from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from bot.probe.model import CertificateInfo


def iso_utc(moment: dt.datetime) -> str:
    """The short form every result, card and request shows: 2025-01-31T09:00:00Z."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso_utc(text: str) -> dt.datetime:
    """Reads iso_utc's form (and any ISO 8601 time with an offset)."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_certificate(der: bytes, now: dt.datetime, chain_length: int | None = None) -> CertificateInfo:
    cert = x509.load_der_x509_certificate(der)
    return CertificateInfo(
        sha1=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - Windows thumbprints are SHA-1
        sha256=cert.fingerprint(hashes.SHA256()).hex().upper(),
        subject=cert.subject.rfc4514_string(),
        sans=tuple(_sans(cert)),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "X"),
        not_before=iso_utc(cert.not_valid_before_utc),
        not_after=iso_utc(cert.not_valid_after_utc),
        days_left=int((cert.not_valid_after_utc - now).total_seconds() // 86400),
        key_type=_key_type(cert),
        chain_length=chain_length,
    )


def _sans(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = list(ext.get_values_for_type(x509.DNSName))
    names += [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
    return names


def _key_type(cert: x509.Certificate) -> str:
    key = cert.public_key()
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


def matches_hostname(sans: tuple[str, ...], hostname: str) -> bool:
    """RFC 6125 matching as browsers do it: SANs only, one left-most wildcard label."""
    wanted = hostname.rstrip(".").lower()
    try:
        wanted_ip = ipaddress.ip_address(wanted)
    except ValueError:
        wanted_ip = None
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
