"""Reads the facts certops shows straight from a certificate's DER, for the verified path.

When the TLS handshake verified the chain, OpenSSL has already decoded the certificate; parsing
it once more with `cryptography` (objects for every name, extension and the public key) was
about a tenth of a probe's CPU. This reader walks the DER once and renders exactly what
certinfo.inspect_certificate renders through `cryptography`: subject and issuer as its RFC 4514
strings, the SANs in order, serial, dates and key type.

It is an optimisation, never a second opinion. It is strict: it vouches only for encodings it
knows `cryptography` reads the same way (strict DER, the string types, algorithms and extensions
below) and raises NotSure on anything else, so the caller falls back to `cryptography` and the
answer stays the one it would have been (a malformation reported, a field shown as unreadable).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
import re
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

try:  # where cryptography.x509.oid takes them from, without importing all of cryptography.x509
    from cryptography.hazmat._oid import CRLEntryExtensionOID, ExtensionOID, ObjectIdentifier, OCSPExtensionOID
except ImportError:  # pragma: no cover - a cryptography that moved them
    from cryptography.x509 import ObjectIdentifier
    from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID, OCSPExtensionOID

_T = TypeVar("_T")


class NotSure(Exception):
    """The reader met something it does not vouch for: read the certificate with cryptography."""


class Fields(NamedTuple):
    """What inspect_certificate takes from a parsed certificate, before escaping and formatting.
    (A NamedTuple: built once per probe, and cheaper to build than a frozen dataclass.)"""

    subject: str  # RFC 4514, as cryptography's Name.rfc4514_string() writes it
    issuer: str
    dns_names: tuple[str, ...]  # subjectAltName dNSNames, in order
    ip_addresses: tuple[str, ...]  # subjectAltName iPAddresses, in order
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    key_type: str


# --- strict DER: what rust-asn1 (under cryptography) accepts, or less ----------------------------

_MAX_OID = 32  # bytes; real OIDs are far shorter, and cryptography caps them (63) too


def _tlv(buf: bytes, at: int, end: int) -> tuple[int, int, int]:
    """(tag, contents start, contents end) of the element at `at`; minimal lengths only."""
    if at + 2 > end:
        raise NotSure("truncated element")
    tag = buf[at]
    if tag & 0x1F == 0x1F:
        raise NotSure("high tag number")
    first = buf[at + 1]
    at += 2
    if first < 0x80:
        size = first
    else:
        count = first & 0x7F
        # indefinite lengths (count 0) are BER, not DER; 3 bytes of length is 16 MiB
        if count == 0 or count > 3 or at + count > end or buf[at] == 0:
            raise NotSure("length not in DER form")
        size = int.from_bytes(buf[at : at + count], "big")
        if size < 0x80:
            raise NotSure("length not in DER form")
        at += count
    stop = at + size
    if stop > end:
        raise NotSure("element runs past its parent")
    return tag, at, stop


def _children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, contents start, contents end) of each element in [start, end).
    _tlv's rules, written out inline: this loop is most of the reader's time."""
    out: list[tuple[int, int, int, int]] = []
    at = start
    while at < end:
        if at + 2 > end:
            raise NotSure("truncated element")
        tag = buf[at]
        first = buf[at + 1]
        if tag & 0x1F == 0x1F:
            raise NotSure("high tag number")
        if first < 0x80:
            s = at + 2
            e = s + first
        else:
            count = first & 0x7F
            s = at + 2 + count
            if count == 0 or count > 3 or s > end or buf[at + 2] == 0:
                raise NotSure("length not in DER form")
            size = int.from_bytes(buf[at + 2 : s], "big")
            if size < 0x80:
                raise NotSure("length not in DER form")
            e = s + size
        if e > end:
            raise NotSure("element runs past its parent")
        out.append((tag, at, s, e))
        at = e
    return out


def _expect(buf: bytes, at: int, end: int, tag: int) -> tuple[int, int]:
    got, s, e = _tlv(buf, at, end)
    if got != tag:
        raise NotSure(f"tag {got:#x} where {tag:#x} was expected")
    return s, e


# one sub-identifier: no leading 0x80 group, at most 9 bytes (63 bits); the whole OID non-empty
_OID = re.compile(rb"(?:[\x81-\xff][\x80-\xff]{0,7}[\x00-\x7f]|[\x00-\x7f])+")


def _check_oid(oid: bytes) -> None:
    if len(oid) > _MAX_OID or _OID.fullmatch(oid) is None:
        raise NotSure("object identifier not in DER form")


def _dotted(oid: bytes) -> str:
    arcs: list[int] = []
    value = 0
    for byte in oid:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(map(str, head + arcs[1:]))


def _oid_der(dotted: str) -> bytes:
    arcs = [int(part) for part in dotted.split(".")]
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        group = [arc & 0x7F]
        arc >>= 7
        while arc:
            group.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(group))
    return bytes(out)


def _unsigned(buf: bytes, s: int, e: int) -> int:
    """A non-negative INTEGER in minimal form (what cryptography reads as a positive number)."""
    if s == e or buf[s] & 0x80 or (e - s > 1 and buf[s] == 0 and not buf[s + 1] & 0x80):
        raise NotSure("integer not a minimal non-negative DER integer")
    return int.from_bytes(buf[s:e], "big")


def _bit_string(buf: bytes, s: int, e: int) -> bytes:
    """The bits of a BIT STRING with no padding bits left over (keys, signatures)."""
    if s == e or buf[s] != 0:
        raise NotSure("bit string with unused bits")
    return buf[s + 1 : e]


def _ascii(value: bytes) -> str:
    if not value.isascii():
        raise NotSure("not ASCII")
    return value.decode("ascii")


# --- algorithms -----------------------------------------------------------------------------

_NULL = b"\x05\x00"


def _algorithm(dotted: str, *, null: bool) -> bytes:
    """The DER of an AlgorithmIdentifier SEQUENCE: the OID, then NULL parameters or none."""
    oid = _oid_der(dotted)
    body = bytes([0x06, len(oid)]) + oid + (_NULL if null else b"")
    return bytes([0x30, len(body)]) + body


# Signature algorithms whose parameters cryptography reads without a warning or an error.
# RSA with a hash takes NULL or nothing; ECDSA and EdDSA take nothing (NULL warns); RSA-PSS
# parameters are a structure of their own and fall back.
_SIGNATURES = frozenset(
    [_algorithm(f"1.2.840.113549.1.1.{n}", null=null) for n in (5, 11, 12, 13, 14) for null in (True, False)]
    + [_algorithm(f"1.2.840.10045.4.3.{n}", null=False) for n in (1, 2, 3, 4)]
    + [_algorithm("1.3.101.112", null=False), _algorithm("1.3.101.113", null=False)]
)
_RSA_KEY = _algorithm("1.2.840.113549.1.1.1", null=True)
_ED25519_KEY = _algorithm("1.3.101.112", null=False)
_ED448_KEY = _algorithm("1.3.101.113", null=False)


@dataclass(frozen=True)
class _Curve:
    name: str  # as cryptography's EllipticCurve.name
    size: int  # bytes of one coordinate
    p: int
    b: int  # a is -3 for all three


def _ec_algorithm(curve_oid: str) -> bytes:
    key_oid, curve = _oid_der("1.2.840.10045.2.1"), _oid_der(curve_oid)
    body = bytes([0x06, len(key_oid)]) + key_oid + bytes([0x06, len(curve)]) + curve
    return bytes([0x30, len(body)]) + body


_EC_KEYS: dict[bytes, _Curve] = {
    _ec_algorithm("1.2.840.10045.3.1.7"): _Curve(
        "secp256r1",
        32,
        2**256 - 2**224 + 2**192 + 2**96 - 1,
        0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
    ),
    _ec_algorithm("1.3.132.0.34"): _Curve(
        "secp384r1",
        48,
        2**384 - 2**128 - 2**96 + 2**32 - 1,
        0xB3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF,
    ),
    _ec_algorithm("1.3.132.0.35"): _Curve(
        "secp521r1",
        66,
        2**521 - 1,
        0x0051953EB9618E1C9A1F929A21A0B68540EEA2DA725B99B315F3B8B489918EF109E156193951EC7E937B1652C0BD3BB1BF073573DF883D2C34F1EF451FD46B503F00,
    ),
}


def _key_type(buf: bytes, s: int, e: int) -> str:
    """The SubjectPublicKeyInfo's key as inspect_certificate names it ("RSA 2048", "EC secp256r1")."""
    items = _children(buf, s, e)
    if len(items) != 2 or items[0][0] != 0x30 or items[1][0] != 0x03:
        raise NotSure("subjectPublicKeyInfo")
    algorithm = buf[items[0][1] : items[0][3]]
    key = _bit_string(buf, items[1][2], items[1][3])
    if algorithm == _RSA_KEY:
        seq_s, seq_e = _expect(key, 0, len(key), 0x30)
        if seq_e != len(key):
            raise NotSure("RSA key followed by more data")
        parts = _children(key, seq_s, seq_e)
        if len(parts) != 2 or parts[0][0] != 0x02 or parts[1][0] != 0x02:
            raise NotSure("RSA key")
        n = _unsigned(key, parts[0][2], parts[0][3])
        exponent = _unsigned(key, parts[1][2], parts[1][3])
        # only keys any RSA implementation loads: odd modulus and exponent, sizes OpenSSL takes
        if not (n & 1 and exponent & 1 and exponent >= 3 and 512 <= n.bit_length() <= 16384 and exponent < n):
            raise NotSure("RSA key out of the ordinary")
        return f"RSA {n.bit_length()}"
    curve = _EC_KEYS.get(algorithm)
    if curve is not None:
        size = curve.size
        if len(key) != 1 + 2 * size or key[0] != 0x04:  # compressed points fall back
            raise NotSure("EC point not uncompressed")
        x = int.from_bytes(key[1 : 1 + size], "big")
        y = int.from_bytes(key[1 + size :], "big")
        p = curve.p
        # cryptography refuses a point off the curve; so does this check (a = -3)
        if x >= p or y >= p or (y * y - (x * x * x - 3 * x + curve.b)) % p:
            raise NotSure("EC point not on its curve")
        return f"EC {curve.name}"
    if algorithm == _ED25519_KEY and len(key) == 32:
        return "Ed25519"
    if algorithm == _ED448_KEY and len(key) == 57:
        return "Ed448"
    raise NotSure("key algorithm")


# --- names ----------------------------------------------------------------------------------

# cryptography's _NAMEOID_TO_NAME (RFC 4514's short names); any other attribute shows as its
# dotted OID, emailAddress included. tests/probe/test_cert_read_once.py checks the two agree.
ATTRIBUTE_NAMES = {
    _oid_der("2.5.4.3"): "CN",
    _oid_der("2.5.4.7"): "L",
    _oid_der("2.5.4.8"): "ST",
    _oid_der("2.5.4.10"): "O",
    _oid_der("2.5.4.11"): "OU",
    _oid_der("2.5.4.6"): "C",
    _oid_der("2.5.4.9"): "STREET",
    _oid_der("0.9.2342.19200300.100.1.25"): "DC",
    _oid_der("0.9.2342.19200300.100.1.1"): "UID",
}

_PRINTABLE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")
_NUMERIC = frozenset(b"0123456789 ")


def _string(tag: int, value: bytes) -> str:
    """An attribute's value as cryptography decodes it, for the string types it certainly takes
    as they are; T61String, BIT STRING and anything else fall back."""
    if tag == 0x0C:  # UTF8String
        return value.decode("utf-8")  # strict: invalid UTF-8 raises, and the caller falls back
    if tag == 0x13:  # PrintableString: only its own alphabet
        if not _PRINTABLE.issuperset(value):
            raise NotSure("PrintableString outside its alphabet")
        return value.decode("ascii")
    if tag == 0x16:  # IA5String
        return _ascii(value)
    if tag == 0x12:  # NumericString
        if not _NUMERIC.issuperset(value):
            raise NotSure("NumericString outside its alphabet")
        return value.decode("ascii")
    if tag == 0x1A:  # VisibleString: printing ASCII
        if any(not 0x20 <= byte <= 0x7E for byte in value):
            raise NotSure("VisibleString outside its alphabet")
        return value.decode("ascii")
    if tag == 0x1E:  # BMPString
        return value.decode("utf-16-be")  # strict: odd lengths and lone surrogates raise
    if tag == 0x1C:  # UniversalString
        return value.decode("utf-32-be")
    raise NotSure(f"string type {tag:#x}")


def _escape(value: str) -> str:
    """cryptography's _escape_dn_value (RFC 4514 section 2.4), step for step."""
    if not value:
        return ""
    value = value.replace("\\", "\\\\")
    value = value.replace('"', '\\"')
    value = value.replace("+", "\\+")
    value = value.replace(",", "\\,")
    value = value.replace(";", "\\;")
    value = value.replace("<", "\\<")
    value = value.replace(">", "\\>")
    value = value.replace("\0", "\\00")
    if value[0] == "#" or (value[0] == " " and len(value) > 1):
        value = "\\" + value
    if value[-1] == " ":
        value = value[:-1] + "\\ "
    return value


def _name(buf: bytes, s: int, e: int) -> str:
    rdns: list[str] = []
    for tag, _at, rs, rend in _children(buf, s, e):
        if tag != 0x31:
            raise NotSure("relative distinguished name not a SET")
        attributes = _children(buf, rs, rend)
        if not attributes:
            raise NotSure("empty relative distinguished name")  # cryptography raises ValueError
        if len(attributes) > 1:
            encodings = [buf[at:ae] for _t, at, _s, ae in attributes]
            if any(a >= b for a, b in itertools.pairwise(encodings)):
                raise NotSure("SET OF not in DER order")
        parts: list[str] = []
        seen: set[tuple[bytes, str]] = set()
        for tag, _at, as_, ae in attributes:
            if tag != 0x30:
                raise NotSure("attribute not a SEQUENCE")
            pair = _children(buf, as_, ae)
            if len(pair) != 2 or pair[0][0] != 0x06:
                raise NotSure("attribute not (type, value)")
            (_ot, _oa, os_, oe), (value_tag, _va, vs, ve) = pair
            oid = buf[os_:oe]
            _check_oid(oid)
            value = _string(value_tag, buf[vs:ve])
            if (oid, value) in seen:
                raise NotSure("duplicate attribute")  # cryptography raises ValueError
            seen.add((oid, value))
            label = ATTRIBUTE_NAMES.get(oid) or _dotted(oid)
            parts.append(f"{label}={_escape(value)}")
        rdns.append("+".join(parts))
    return ",".join(reversed(rdns))  # RFC 4514 order: the last RDN first


# --- dates ----------------------------------------------------------------------------------


def _time(tag: int, value: bytes) -> dt.datetime:
    """UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ; any other form falls back."""
    digits = value[:-1]
    if value[-1:] != b"Z" or not digits.isdigit():  # bytes.isdigit: ASCII digits only
        raise NotSure("time form")
    # two ASCII digits at i are worth v[i] * 10 + v[i + 1] - 528 (528 = 11 * ord("0"))
    v = value
    if tag == 0x17 and len(v) == 13:
        year = v[0] * 10 + v[1] - 528
        year += 1900 if year >= 50 else 2000
        at = 2
    elif tag == 0x18 and len(v) == 15:
        year = (v[0] * 10 + v[1] - 528) * 100 + v[2] * 10 + v[3] - 528
        at = 4
    else:
        raise NotSure("time form")
    return dt.datetime(  # ValueError for 31 April, hour 24, second 60
        year,
        v[at] * 10 + v[at + 1] - 528,
        v[at + 2] * 10 + v[at + 3] - 528,
        v[at + 4] * 10 + v[at + 5] - 528,
        v[at + 6] * 10 + v[at + 7] - 528,
        v[at + 8] * 10 + v[at + 9] - 528,
        tzinfo=dt.UTC,
    )


# --- extensions -----------------------------------------------------------------------------

_SAN = _oid_der("2.5.29.17")
_BASIC_CONSTRAINTS = _oid_der("2.5.29.19")
_KEY_USAGE = _oid_der("2.5.29.15")
_EXTENDED_KEY_USAGE = _oid_der("2.5.29.37")
_SUBJECT_KEY_ID = _oid_der("2.5.29.14")
_AUTHORITY_KEY_ID = _oid_der("2.5.29.35")
_CRL_DISTRIBUTION_POINTS = _oid_der("2.5.29.31")
_CERTIFICATE_POLICIES = _oid_der("2.5.29.32")
_AUTHORITY_INFO_ACCESS = _oid_der("1.3.6.1.5.5.7.1.1")
_SCTS = _oid_der("1.3.6.1.4.1.11129.2.4.2")
_CPS_QUALIFIER = _oid_der("1.3.6.1.5.5.7.2.1")

_CHECKED_KINDS = frozenset(
    [
        _BASIC_CONSTRAINTS,
        _KEY_USAGE,
        _EXTENDED_KEY_USAGE,
        _SUBJECT_KEY_ID,
        _AUTHORITY_KEY_ID,
        _CRL_DISTRIBUTION_POINTS,
        _CERTIFICATE_POLICIES,
        _AUTHORITY_INFO_ACCESS,
        _SCTS,
    ]
)

# Every extension cryptography has a class for: it parses those, and a bad one makes it raise
# (so inspect_certificate reports a malformation). Those this reader does not check below fall
# back; any other extension cryptography keeps as raw bytes, so its contents change nothing.
# Taken from the installed cryptography, so a new release's new extension falls back too.
_KNOWN_TO_CRYPTOGRAPHY = frozenset(
    _oid_der(value.dotted_string)
    for holder in (ExtensionOID, CRLEntryExtensionOID, OCSPExtensionOID)
    for value in vars(holder).values()
    if isinstance(value, ObjectIdentifier)
)


def _sans(buf: bytes, s: int, e: int) -> tuple[list[str], list[str]]:
    seq_s, seq_e = _expect(buf, s, e, 0x30)
    if seq_e != e:
        raise NotSure("subjectAltName followed by more data")
    names = _children(buf, seq_s, seq_e)
    if not names:
        raise NotSure("empty subjectAltName")  # cryptography raises ValueError
    dns: list[str] = []
    ips: list[str] = []
    for tag, _at, ns, ne in names:
        value = buf[ns:ne]
        if tag == 0x82:  # dNSName
            dns.append(_ascii(value))  # non-ASCII: cryptography's answer, whatever it is
        elif tag == 0x87:  # iPAddress; 8 or 32 bytes would be a network: fall back
            if len(value) not in (4, 16):
                raise NotSure("iPAddress length")
            ips.append(str(ipaddress.ip_address(value)))
        elif tag in (0x81, 0x86):  # rfc822Name, URI: read and ignored, as inspect_certificate does
            _ascii(value)
        else:
            raise NotSure(f"general name {tag:#x}")
    return dns, ips


def _uri_names(buf: bytes, s: int, e: int) -> None:
    """GeneralNames holding URIs only, at least one (AIA locations, CRL distribution points)."""
    names = _children(buf, s, e)
    if not names:
        raise NotSure("empty GeneralNames")
    for tag, _at, ns, ne in names:
        if tag != 0x86:
            raise NotSure("general name other than a URI")
        _ascii(buf[ns:ne])


def _check_extension(oid: bytes, buf: bytes, s: int, e: int) -> None:
    """Raises NotSure unless cryptography certainly parses this extension's value."""
    if oid not in _CHECKED_KINDS:
        if oid in _KNOWN_TO_CRYPTOGRAPHY:
            raise NotSure("an extension cryptography parses and this reader does not check")
        return  # cryptography keeps it as raw bytes: what they hold changes nothing it shows
    top, ts, te = _tlv(buf, s, e)
    if te != e:
        raise NotSure("extension value followed by more data")
    if oid == _BASIC_CONSTRAINTS:
        if top != 0x30:
            raise NotSure("basicConstraints")
        items = _children(buf, ts, te)
        if not items:
            return  # cA FALSE (the default), no path length
        # cA TRUE (FALSE written out is an encoded DEFAULT, which DER forbids), then a length
        if items[0][0] != 0x01 or buf[items[0][2] : items[0][3]] != b"\xff" or len(items) > 2:
            raise NotSure("basicConstraints")
        if len(items) == 2:
            if items[1][0] != 0x02 or items[1][3] - items[1][2] > 8:
                raise NotSure("basicConstraints")
            _unsigned(buf, items[1][2], items[1][3])
    elif oid == _KEY_USAGE:
        if top != 0x03 or te - ts not in (2, 3) or buf[ts] > 7:
            raise NotSure("keyUsage")
        last = buf[te - 1]
        # named bits in DER: no padding set, no trailing zero bits
        if last == 0 or (last & -last).bit_length() - 1 != buf[ts]:
            raise NotSure("keyUsage")
        bits = int.from_bytes(buf[ts + 1 : te], "big") << (8 * (3 - (te - ts)))
        key_agreement, encipher_only, decipher_only = bits & 0x0800, bits & 0x0100, bits & 0x0080
        if (encipher_only or decipher_only) and not key_agreement:
            raise NotSure("keyUsage")  # cryptography's KeyUsage raises ValueError
    elif oid == _EXTENDED_KEY_USAGE:
        items = _children(buf, ts, te)
        if top != 0x30 or not items:
            raise NotSure("extendedKeyUsage")
        for tag, _at, os_, oe in items:
            if tag != 0x06:
                raise NotSure("extendedKeyUsage")
            _check_oid(buf[os_:oe])
    elif oid == _SUBJECT_KEY_ID:
        if top != 0x04:
            raise NotSure("subjectKeyIdentifier")
    elif oid == _AUTHORITY_KEY_ID:
        items = _children(buf, ts, te)
        # a key identifier alone; an issuer and serial must come together and fall back
        if top != 0x30 or len(items) > 1 or (items and items[0][0] != 0x80):
            raise NotSure("authorityKeyIdentifier")
    elif oid == _AUTHORITY_INFO_ACCESS:
        items = _children(buf, ts, te)
        if top != 0x30 or not items:
            raise NotSure("authorityInfoAccess")
        for tag, _at, ds, de in items:
            pair = _children(buf, ds, de)
            if tag != 0x30 or len(pair) != 2 or pair[0][0] != 0x06 or pair[1][0] != 0x86:
                raise NotSure("authorityInfoAccess")
            _check_oid(buf[pair[0][2] : pair[0][3]])
            _ascii(buf[pair[1][2] : pair[1][3]])
    elif oid == _CRL_DISTRIBUTION_POINTS:
        items = _children(buf, ts, te)
        if top != 0x30 or not items:
            raise NotSure("cRLDistributionPoints")
        for tag, _at, ds, de in items:
            # DistributionPoint { [0] { [0] fullName: URIs } } and nothing else
            point = _children(buf, ds, de)
            if tag != 0x30 or len(point) != 1 or point[0][0] != 0xA0:
                raise NotSure("cRLDistributionPoints")
            name = _children(buf, point[0][2], point[0][3])
            if len(name) != 1 or name[0][0] != 0xA0:
                raise NotSure("cRLDistributionPoints")
            _uri_names(buf, name[0][2], name[0][3])
    elif oid == _CERTIFICATE_POLICIES:
        items = _children(buf, ts, te)
        if top != 0x30 or not items:
            raise NotSure("certificatePolicies")
        for tag, _at, ps, pe in items:
            policy = _children(buf, ps, pe)
            if tag != 0x30 or not 1 <= len(policy) <= 2 or policy[0][0] != 0x06:
                raise NotSure("certificatePolicies")
            _check_oid(buf[policy[0][2] : policy[0][3]])
            if len(policy) == 2:
                qualifiers = _children(buf, policy[1][2], policy[1][3])
                if policy[1][0] != 0x30 or not qualifiers:
                    raise NotSure("certificatePolicies")
                for qtag, _qa, qs, qe in qualifiers:
                    # a CPS URI only; user notices (DisplayText in four types) fall back
                    pair = _children(buf, qs, qe)
                    if qtag != 0x30 or len(pair) != 2 or pair[1][0] != 0x16:
                        raise NotSure("certificatePolicies")
                    if pair[0][0] != 0x06 or buf[pair[0][2] : pair[0][3]] != _CPS_QUALIFIER:
                        raise NotSure("certificatePolicies")
                    _ascii(buf[pair[1][2] : pair[1][3]])
    elif oid == _SCTS:
        if top != 0x04:
            raise NotSure("SCT list")
        _check_scts(buf[ts:te])


def _check_scts(data: bytes) -> None:
    """The TLS-encoded SCT list (RFC 6962 3.3) as cryptography reads it, and exactly that long."""
    if len(data) < 2 or int.from_bytes(data[:2], "big") != len(data) - 2:
        raise NotSure("SCT list length")
    at = 2
    while at < len(data):
        if at + 2 > len(data):
            raise NotSure("SCT length")
        end = at + 2 + int.from_bytes(data[at : at + 2], "big")
        at += 2
        # version 0, 32-byte log id, 8-byte timestamp, extensions, hash, signature, signature bytes
        if end > len(data) or end - at < 1 + 32 + 8 + 2 or data[at] != 0:
            raise NotSure("SCT")
        at += 1 + 32 + 8
        at += 2 + int.from_bytes(data[at : at + 2], "big")
        if at + 4 > end or not 1 <= data[at] <= 6 or not 1 <= data[at + 1] <= 3:
            raise NotSure("SCT algorithms")
        at += 2
        at += 2 + int.from_bytes(data[at : at + 2], "big")
        if at != end:
            raise NotSure("SCT length")


def _extensions(buf: bytes, s: int, e: int) -> tuple[list[str], list[str]]:
    seq_s, seq_e = _expect(buf, s, e, 0x30)
    if seq_e != e:
        raise NotSure("extensions followed by more data")
    items = _children(buf, seq_s, seq_e)
    if not items:
        raise NotSure("empty extensions")
    seen: set[bytes] = set()
    sans: tuple[list[str], list[str]] = ([], [])
    for tag, at, xs, xe in items:
        raw = buf[at:xe]
        known = _CHECKED_EXTENSIONS.get(raw)
        if known is not None:  # checked before, in this or another certificate from its CA
            if known in seen:
                raise NotSure("duplicate extension")
            seen.add(known)
            continue
        parts = _children(buf, xs, xe)
        if tag != 0x30 or not 2 <= len(parts) <= 3 or parts[0][0] != 0x06 or parts[-1][0] != 0x04:
            raise NotSure("extension")
        if len(parts) == 3 and (parts[1][0] != 0x01 or buf[parts[1][2] : parts[1][3]] != b"\xff"):
            raise NotSure("extension's critical flag")  # FALSE written out is an encoded DEFAULT
        oid = buf[parts[0][2] : parts[0][3]]
        _check_oid(oid)
        if oid in seen:
            raise NotSure("duplicate extension")  # cryptography raises DuplicateExtension
        seen.add(oid)
        vs, ve = parts[-1][2], parts[-1][3]
        if oid == _SAN:
            sans = _sans(buf, vs, ve)
        else:
            _check_extension(oid, buf, vs, ve)
            if oid not in _PER_CERTIFICATE:
                _remember(_CHECKED_EXTENSIONS, raw, oid)
    return sans


# What was checked already, by its exact bytes: a certificate authority writes the same
# basicConstraints, key usages, AIA, CRL and policy extensions and the same issuer name into
# every certificate it signs, so a round of probes checks them once per CA, not once per site.
# The answer depends on the bytes alone; the caches are small and start over when full.
_CACHE_SIZE = 512
_CHECKED_EXTENSIONS: dict[bytes, bytes] = {}  # the extension's DER -> its OID
_NAMES: dict[bytes, str] = {}  # a Name's DER -> its RFC 4514 string
# unique to each certificate: remembering them would only fill the cache
_PER_CERTIFICATE = frozenset([_SAN, _SUBJECT_KEY_ID, _SCTS])


def _remember(cache: dict[bytes, _T], key: bytes, value: _T) -> None:
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[key] = value


def _cached_name(buf: bytes, at: int, s: int, e: int) -> str:
    raw = buf[at:e]
    shown = _NAMES.get(raw)
    if shown is None:
        shown = _name(buf, s, e)
        _remember(_NAMES, raw, shown)
    return shown


# --- the certificate ------------------------------------------------------------------------

_V3 = b"\x02\x01\x02"  # cryptography knows v1 (no version field) and v3; v2 raises InvalidVersion


def read_fields(der: bytes) -> Fields:
    """The fields of a certificate, as inspect_certificate would read them through cryptography;
    raises NotSure (or ValueError, from a strict decode) where it cannot vouch for that."""
    cert_s, cert_e = _expect(der, 0, len(der), 0x30)
    if cert_e != len(der):
        raise NotSure("data after the certificate")
    outer = _children(der, cert_s, cert_e)
    if len(outer) != 3 or outer[0][0] != 0x30 or outer[2][0] != 0x03:
        raise NotSure("certificate structure")
    if der[outer[1][1] : outer[1][3]] not in _SIGNATURES:
        raise NotSure("signature algorithm")
    _bit_string(der, outer[2][2], outer[2][3])
    fields = _children(der, outer[0][2], outer[0][3])
    if fields and fields[0][0] == 0xA0:
        if der[fields[0][2] : fields[0][3]] != _V3:
            raise NotSure("certificate version")
        fields = fields[1:]
    if not 6 <= len(fields) <= 7:
        raise NotSure("TBSCertificate structure")  # unique identifiers fall back
    serial, signature, issuer, validity, subject, spki = fields[:6]
    if (serial[0], signature[0], issuer[0], validity[0], subject[0], spki[0]) != (0x02, 0x30, 0x30, 0x30, 0x30, 0x30):
        raise NotSure("TBSCertificate structure")
    if der[signature[1] : signature[3]] not in _SIGNATURES:
        raise NotSure("signature algorithm")
    dates = _children(der, validity[2], validity[3])
    if len(dates) != 2:
        raise NotSure("validity")
    sans: tuple[list[str], list[str]] = ([], [])
    if len(fields) == 7:
        if fields[6][0] != 0xA3:
            raise NotSure("TBSCertificate structure")
        sans = _extensions(der, fields[6][2], fields[6][3])
    return Fields(
        subject=_cached_name(der, *subject[1:]),
        issuer=_cached_name(der, *issuer[1:]),
        dns_names=tuple(sans[0]),
        ip_addresses=tuple(sans[1]),
        serial=_unsigned(der, serial[2], serial[3]),
        not_before=_time(dates[0][0], der[dates[0][2] : dates[0][3]]),
        not_after=_time(dates[1][0], der[dates[1][2] : dates[1][3]]),
        key_type=_key_type(der, spki[2], spki[3]),
    )
