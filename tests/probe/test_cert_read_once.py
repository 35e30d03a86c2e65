"""Issue 10: the verified path reads the certificate once.

The DER reader (bot.probe.der) must give exactly what inspect_certificate gives through
cryptography, field for field, or step aside: these tests build many certificates with
cryptography (keys, names, SANs, serials, dates and extensions of every kind the reader knows,
and some it must refuse), then damage some byte by byte, and compare the two readers on each.
A loopback probe then shows the verified path no longer calls cryptography's loader, and the
unverified path still does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import ipaddress
import random
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.name import _NAMEOID_TO_NAME, _ASN1Type, _escape_dn_value
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from bot.probe import certinfo, der, probe
from bot.probe.certinfo import UnreadableCertificate, inspect_certificate, inspect_verified_certificate
from bot.probe.model import CertificateInfo, Status
from tests.fakes.tls import Lab, MiniCA
from tests.probe.helpers import HOST, run, target

NOW = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)

_PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey


@functools.cache
def key(kind: str) -> _PrivateKey:
    """One key of each kind for the whole run: RSA 4096 takes a second to make."""
    if kind.startswith("rsa"):
        return rsa.generate_private_key(65537, int(kind[3:]))
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ed448":
        return ed448.Ed448PrivateKey.generate()
    curves: dict[str, ec.EllipticCurve] = {
        "p256": ec.SECP256R1(),
        "p384": ec.SECP384R1(),
        "p521": ec.SECP521R1(),
        "k256": ec.SECP256K1(),
        "brainpool": ec.BrainpoolP256R1(),
    }
    return ec.generate_private_key(curves[kind])


def cn(value: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, value)])


ISSUER = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certops test CA, Inc."),
        x509.NameAttribute(NameOID.COMMON_NAME, "certops test CA R1"),
    ]
)


def build(
    *,
    subject: x509.Name | None = None,
    issuer: x509.Name = ISSUER,
    subject_key: str = "p256",
    signer: str = "p256",
    sans: list[x509.GeneralName] | None = None,
    serial: int = 0x1234,
    not_before: dt.datetime = dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    not_after: dt.datetime = dt.datetime(2027, 1, 1, 12, 30, 59, tzinfo=dt.UTC),
    extensions: list[tuple[x509.ExtensionType, bool]] = (),  # type: ignore[assignment]
    pss: bool = False,
) -> bytes:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject if subject is not None else cn("www.example.test"))
        .issuer_name(issuer)
        .public_key(key(subject_key).public_key())  # type: ignore[arg-type]
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    signing = key(signer)
    algorithm = None if isinstance(signing, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) else hashes.SHA256()
    rsa_padding = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH) if pss else None
    cert = builder.sign(signing, algorithm, rsa_padding=rsa_padding)  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.DER)


def outcome(read: Callable[[bytes, dt.datetime], tuple[CertificateInfo, list[str]]], data: bytes) -> Any:
    """What a reader answers, or the kind of exception it raises (and what it says of it)."""
    try:
        return read(data, NOW)
    except UnreadableCertificate as exc:
        return ("unreadable", exc.sha1, exc.reason)
    except Exception as exc:  # whatever else cryptography raises, both readers must raise it
        return ("raises", type(exc))


def assert_same(data: bytes, *, fast: bool | None = True) -> None:
    """The verified reader answers as inspect_certificate does; `fast` says whether the DER
    reader is expected to vouch for this certificate itself (None: either way)."""
    expected = outcome(inspect_certificate, data)
    assert outcome(inspect_verified_certificate, data) == expected
    try:
        der.read_fields(data)
        vouched = True
    except (der.NotSure, ValueError):
        vouched = False
    if fast is not None:
        assert vouched is fast, expected
    if vouched:  # what the reader vouches for is never a malformed certificate
        assert isinstance(expected, tuple)
        assert expected[1] == []


# --- keys and signatures ---------------------------------------------------------------------

KEY_TYPES = {
    "rsa2048": "RSA 2048",
    "rsa3072": "RSA 3072",
    "rsa4096": "RSA 4096",
    "p256": "EC secp256r1",
    "p384": "EC secp384r1",
    "p521": "EC secp521r1",
    "ed25519": "Ed25519",
    "ed448": "Ed448",
}


@pytest.mark.parametrize("kind", sorted(KEY_TYPES))
def test_every_key_type_reads_the_same(kind: str) -> None:
    data = build(subject_key=kind, sans=[x509.DNSName("www.example.test")])
    assert_same(data)
    assert inspect_verified_certificate(data, NOW)[0].key_type == KEY_TYPES[kind]


@pytest.mark.parametrize("signer", ["rsa2048", "p256", "p384", "ed25519", "ed448"])
def test_every_signature_algorithm_reads_the_same(signer: str) -> None:
    assert_same(build(signer=signer, sans=[x509.DNSName("a.test")]))


@pytest.mark.parametrize("kind", ["k256", "brainpool"])
def test_curves_it_does_not_check_fall_back(kind: str) -> None:
    assert_same(build(subject_key=kind), fast=False)


def test_rsa_pss_signatures_fall_back() -> None:
    assert_same(build(signer="rsa2048", pss=True), fast=False)


# --- names -----------------------------------------------------------------------------------

TRICKY_VALUES = [
    "Example, Inc.",
    "a+b",
    'say "hi"',
    " leading space",
    "trailing space ",
    " ",
    "#hash",
    "in#side",
    "semi;colon<angle>",
    "back\\slash",
    "eq=uals",
    "nul\x00byte",
    "new\nline",
    "\x1b[31mred",
    "right\u202eleft",
    "café",
    "日本語のサイト",
    "emoji 🔒",
    "x" * 300,
    "",
]


@pytest.mark.parametrize("value", TRICKY_VALUES)
def test_names_are_escaped_as_cryptography_escapes_them(value: str) -> None:
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, value, _validate=False)])
    assert_same(build(subject=subject, issuer=subject))


def test_many_attribute_types_multi_valued_rdns_and_an_empty_subject() -> None:
    attributes = [
        (NameOID.COUNTRY_NAME, "DE"),
        (NameOID.STATE_OR_PROVINCE_NAME, "Bayern"),
        (NameOID.LOCALITY_NAME, "München"),
        (NameOID.STREET_ADDRESS, "Hauptstraße 1"),
        (NameOID.ORGANIZATION_NAME, "Beispiel GmbH"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "IT"),
        (NameOID.COMMON_NAME, "*.example.test"),
        (NameOID.DOMAIN_COMPONENT, "example"),
        (NameOID.USER_ID, "uid42"),
        (NameOID.EMAIL_ADDRESS, "hostmaster@example.test"),
        (NameOID.SERIAL_NUMBER, "0042"),
        (NameOID.SURNAME, "Muster"),
        (NameOID.GIVEN_NAME, "Max"),
        (NameOID.TITLE, "Admin"),
        (NameOID.BUSINESS_CATEGORY, "Private Organization"),
        (NameOID.JURISDICTION_COUNTRY_NAME, "DE"),
        (NameOID.POSTAL_CODE, "80331"),
        (NameOID.ORGANIZATION_IDENTIFIER, "VATDE-123"),
        (ObjectIdentifier("2.999.1.2"), "private attribute"),
        (ObjectIdentifier("1.3.6.1.4.1.311.60.2.1.3"), "DE"),
    ]
    subject = x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])
    assert_same(build(subject=subject))
    multi = x509.Name(
        [
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "US")]),
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Org"),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Unit+One"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "multi.example.test"),
                ]
            ),
        ]
    )
    assert_same(build(subject=multi, issuer=multi))
    assert_same(build(subject=x509.Name([]), issuer=x509.Name([]), sans=[x509.DNSName("empty.test")]))


@pytest.mark.parametrize(
    ("string_type", "value", "fast"),
    [
        (_ASN1Type.PrintableString, "Example Ltd. (UK) 1+1=2?", True),
        (_ASN1Type.PrintableString, "under_score@at", None),  # outside its alphabet: cryptography's call
        (_ASN1Type.IA5String, "ia5 string", True),
        (_ASN1Type.NumericString, "0123 456", True),
        (_ASN1Type.VisibleString, "visible ~ string", True),
        (_ASN1Type.BMPString, "BMP 日本", True),
        (_ASN1Type.BMPString, "BMP 🔒 astral", True),
        (_ASN1Type.UniversalString, "universal 🔒", True),
        (_ASN1Type.T61String, "t61 string", False),
        (_ASN1Type.UTF8String, "utf8 ✓", True),
    ],
)
def test_string_types(string_type: _ASN1Type, value: str, fast: bool | None) -> None:
    # cryptography will not write a PrintableString outside its alphabet: write "X" and patch it
    written = value.replace("_", "X").replace("@", "X") if string_type is _ASN1Type.PrintableString else value
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, written, string_type)])
    data = build(subject=subject)
    if written != value:
        data = data.replace(written.encode(), value.encode())
    assert_same(data, fast=fast)


def test_the_short_names_are_cryptographys() -> None:
    ours = {der._dotted(oid): name for oid, name in der.ATTRIBUTE_NAMES.items()}
    assert ours == {oid.dotted_string: name for oid, name in _NAMEOID_TO_NAME.items()}


def test_escaping_is_cryptographys_on_random_strings() -> None:
    rng = random.Random(10)  # noqa: S311 - a reproducible sequence, not a secret
    alphabet = ' #+,;<>"\\=\x00a é\n🔒'
    for _ in range(2000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 6)))
        assert der._escape(value) == _escape_dn_value(value)


def test_dotted_oids_are_cryptographys() -> None:
    for dotted in ["0.9.2342.19200300.100.1.1", "1.2.840.113549.1.9.1", "2.5.4.3", "2.999.3", "2.1079", "1.39.1"]:
        assert der._dotted(der._oid_der(dotted)) == ObjectIdentifier(dotted).dotted_string


# --- subjectAltName --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sans", "fast"),
    [
        (None, True),
        ([x509.DNSName("www.example.test")], True),
        ([x509.DNSName("*.example.test"), x509.DNSName("example.test")], True),
        ([x509.DNSName("xn--caf-dma.example"), x509.DNSName("xn--80ak6aa92e.com")], True),
        (
            [x509.IPAddress(ipaddress.ip_address("192.0.2.1")), x509.IPAddress(ipaddress.ip_address("2001:db8::9"))],
            True,
        ),
        (
            [
                x509.RFC822Name("hostmaster@example.test"),
                x509.DNSName("b.test"),
                x509.UniformResourceIdentifier("https://example.test/"),
                x509.IPAddress(ipaddress.ip_address("::ffff:192.0.2.1")),
                x509.DNSName("a.test"),
            ],
            True,
        ),
        ([x509.DNSName(f"host{i}.example.test") for i in range(150)], True),
        ([x509.DirectoryName(cn("dir")), x509.DNSName("a.test")], False),
        ([x509.OtherName(ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x03upn"), x509.DNSName("a.test")], False),
        ([x509.RegisteredID(ObjectIdentifier("1.2.3.4"))], False),
        ([x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))], False),
    ],
)
def test_subject_alt_names(sans: list[x509.GeneralName] | None, fast: bool) -> None:
    assert_same(build(sans=sans), fast=fast)


# --- serials and dates -----------------------------------------------------------------------


@pytest.mark.parametrize("serial", [1, 0x7F, 0x80, 0xFF, 0x8000, 0x00FF00, 2**64, 2**159 - 1, 2**158 + 12345])
def test_serials(serial: int) -> None:
    data = build(serial=serial)
    assert_same(data)
    assert inspect_verified_certificate(data, NOW)[0].serial == format(serial, "X")


def _patch_year(data: bytes, old: bytes, new: bytes) -> bytes:
    """GeneralizedTime years the builder will not write (before 1950), in place: same length."""
    assert data.count(b"\x18\x0f" + old) == 1
    return data.replace(b"\x18\x0f" + old, b"\x18\x0f" + new)


@pytest.mark.parametrize(
    ("not_before", "not_after"),
    [
        (dt.datetime(1950, 1, 1, tzinfo=dt.UTC), dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC)),
        (dt.datetime(1999, 12, 31, tzinfo=dt.UTC), dt.datetime(2050, 1, 1, tzinfo=dt.UTC)),
        (dt.datetime(2026, 2, 28, 1, 2, 3, tzinfo=dt.UTC), dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)),
        (dt.datetime(2024, 2, 29, tzinfo=dt.UTC), dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)),
        (dt.datetime(2020, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 11, 30, tzinfo=dt.UTC)),  # expired
    ],
)
def test_dates(not_before: dt.datetime, not_after: dt.datetime) -> None:
    assert_same(build(not_before=not_before, not_after=not_after))


@pytest.mark.parametrize("year", [b"1949", b"1900", b"0001", b"2030", b"2049"])
def test_generalized_times_the_builder_will_not_write(year: bytes) -> None:
    data = build(not_before=dt.datetime(2060, 1, 1, tzinfo=dt.UTC), not_after=dt.datetime(2070, 1, 1, tzinfo=dt.UTC))
    assert_same(_patch_year(data, b"2060", year))


# --- extensions ------------------------------------------------------------------------------


def _sct(log_byte: int) -> bytes:
    sct = bytes([0]) + bytes([log_byte]) * 32 + (1_700_000_000_000).to_bytes(8, "big") + b"\x00\x00"
    sct += bytes([4, 3]) + (6).to_bytes(2, "big") + b"sig..."
    return len(sct).to_bytes(2, "big") + sct


def _sct_list(*scts: bytes) -> bytes:
    body = b"".join(scts)
    inner = len(body).to_bytes(2, "big") + body
    return bytes([0x04, 0x81, len(inner)]) + inner if len(inner) >= 0x80 else bytes([0x04, len(inner)]) + inner


SCT_OID = x509.oid.ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS
SAN_OID = x509.oid.ExtensionOID.SUBJECT_ALTERNATIVE_NAME
UNKNOWN_OID = ObjectIdentifier("1.3.6.1.4.1.99999.1")
CA_KEY = key("p384")
AKI = x509.AuthorityKeyIdentifier.from_issuer_public_key(CA_KEY.public_key())  # type: ignore[arg-type]

EXTENSIONS: dict[str, tuple[list[tuple[x509.ExtensionType, bool]], bool]] = {
    "a web server's": (
        [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.KeyUsage(True, False, True, False, False, False, False, False, False), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False),
            (x509.SubjectKeyIdentifier.from_public_key(key("p256").public_key()), False),
            (AKI, False),
            (
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier("http://ocsp.test")
                        ),
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.CA_ISSUERS,
                            x509.UniformResourceIdentifier("http://ca.test/r1.der"),
                        ),
                    ]
                ),
                False,
            ),
            (
                x509.CRLDistributionPoints(
                    [x509.DistributionPoint([x509.UniformResourceIdentifier("http://crl.test/r")], None, None, None)]
                ),
                False,
            ),
            (
                x509.CertificatePolicies(
                    [
                        x509.PolicyInformation(ObjectIdentifier("2.23.140.1.2.1"), None),
                        x509.PolicyInformation(ObjectIdentifier("1.3.6.1.4.1.44947.1.1.1"), ["http://cps.test/"]),
                    ]
                ),
                False,
            ),
            (x509.UnrecognizedExtension(SCT_OID, _sct_list(_sct(1), _sct(2))), False),
        ],
        True,
    ),
    "a CA's": (
        [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (x509.KeyUsage(False, False, False, False, True, True, True, True, True), True),
        ],
        True,
    ),
    "key agreement with encipher only": (
        [(x509.KeyUsage(False, False, False, False, True, False, False, True, False), True)],
        True,
    ),
    "an unknown extension": ([(x509.UnrecognizedExtension(UNKNOWN_OID, b"\xff"), False)], True),
    "an MS template name": (
        [(x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.311.20.2"), b"\x1e\x04\x00W\x00S"), False)],
        True,
    ),
    "a broken SCT list": ([(x509.UnrecognizedExtension(SCT_OID, b"\x04\x03\x00\x05\x00"), False)], False),
    "an SCT of version 1": (
        [(x509.UnrecognizedExtension(SCT_OID, _sct_list(b"\x00\x2f\x01" + _sct(1)[3:])), False)],
        False,
    ),
    "a user notice": (
        [
            (
                x509.CertificatePolicies(
                    [x509.PolicyInformation(ObjectIdentifier("2.5.29.32.0"), [x509.UserNotice(None, "hello")])]
                ),
                False,
            )
        ],
        False,
    ),
    "an AKI with issuer and serial": (
        [(x509.AuthorityKeyIdentifier(b"\x01\x02", [x509.DirectoryName(ISSUER)], 7), False)],
        False,
    ),
    "a TLS feature": ([(x509.TLSFeature([x509.TLSFeatureType.status_request]), False)], False),
    "name constraints": (
        [(x509.NameConstraints([x509.DNSName("example.test")], None), True)],
        False,
    ),
    "a broken basicConstraints": (
        [(x509.UnrecognizedExtension(x509.oid.ExtensionOID.BASIC_CONSTRAINTS, b"\x30\x03\x02\x01\x05"), True)],
        False,
    ),
    "a broken keyUsage": (
        [(x509.UnrecognizedExtension(x509.oid.ExtensionOID.KEY_USAGE, b"\x03\x02\x07\x01"), True)],
        False,
    ),
    "a subjectAltName that is not plain ASCII": (
        [(x509.UnrecognizedExtension(SAN_OID, b"\x30\x04\x82\x02\xc3\xa9"), False)],
        False,
    ),
    "a subjectAltName with invalid UTF-8": (
        [(x509.UnrecognizedExtension(SAN_OID, b"\x30\x03\x82\x01\xff"), False)],
        False,
    ),
    "an empty subjectAltName": (
        [(x509.UnrecognizedExtension(SAN_OID, b"\x30\x00"), False)],
        False,
    ),
}


@pytest.mark.parametrize("name", sorted(EXTENSIONS))
def test_extensions(name: str) -> None:
    extensions, fast = EXTENSIONS[name]
    assert_same(build(extensions=extensions, sans=None), fast=fast)
    if fast and name != "a web server's":
        assert_same(build(extensions=extensions, sans=[x509.DNSName("a.test")]), fast=True)


def test_checked_parts_are_remembered_by_their_bytes_only() -> None:
    """The second certificate from one CA reads its CA's parts from the cache, and still gets
    its own answer: a cached part is found by its exact bytes, nothing else."""
    extensions = EXTENSIONS["a web server's"][0]
    first = build(extensions=extensions, subject=cn("one.test"), sans=[x509.DNSName("one.test")], serial=1)
    second = build(extensions=extensions, subject=cn("two.test"), sans=[x509.DNSName("two.test")], serial=2)
    assert_same(first)
    assert_same(second)
    assert inspect_verified_certificate(second, NOW)[0].sans == ("two.test",)


# --- many at random, then damaged ------------------------------------------------------------


def _random_name(rng: random.Random) -> x509.Name:
    oids = [
        NameOID.COMMON_NAME,
        NameOID.ORGANIZATION_NAME,
        NameOID.ORGANIZATIONAL_UNIT_NAME,
        NameOID.LOCALITY_NAME,
        NameOID.EMAIL_ADDRESS,
        NameOID.DOMAIN_COMPONENT,
        ObjectIdentifier("2.999.7"),
    ]
    pieces = [" ", "#", "+", ",", '"', "\\", "=", ";", "a", "Z", "9", ".", "é", "ß", "日", "🔒", "\x00", "-"]
    rdns: list[x509.RelativeDistinguishedName] = []
    for _ in range(rng.randrange(0, 5)):
        chosen = rng.sample(oids, rng.choice([1, 1, 1, 2, 3]))
        rdns.append(
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(
                        oid, "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 9))), _validate=False
                    )
                    for oid in chosen
                ]
            )
        )
    return x509.Name(rdns)


def _random_sans(rng: random.Random) -> list[x509.GeneralName] | None:
    if rng.random() < 0.15:
        return None
    names: list[x509.GeneralName] = []
    for i in range(rng.randrange(1, 6)):
        kind = rng.randrange(6)
        if kind == 0:
            names.append(x509.IPAddress(ipaddress.IPv4Address(rng.getrandbits(32))))
        elif kind == 1:
            names.append(x509.IPAddress(ipaddress.IPv6Address(rng.getrandbits(128))))
        elif kind == 2:
            names.append(x509.RFC822Name(f"user{i}@example.test"))
        elif kind == 3:
            names.append(x509.UniformResourceIdentifier(f"https://example.test/{i}"))
        else:
            names.append(x509.DNSName(rng.choice(["*.", "", "xn--bcher-kva."]) + f"h{i}.example.test"))
    return names


def _random_certificates(count: int, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)  # noqa: S311 - a reproducible sequence, not a secret
    kinds = sorted(KEY_TYPES)
    for _ in range(count):
        start = dt.datetime(1950, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=rng.randrange(0, 150 * 365 * 86400))
        yield build(
            subject=_random_name(rng),
            issuer=_random_name(rng),
            subject_key=rng.choice(kinds),
            signer=rng.choice(["p256", "ed25519", "rsa2048"]),
            sans=_random_sans(rng),
            serial=rng.getrandbits(rng.randrange(1, 159)) | 1,
            not_before=start,
            not_after=start + dt.timedelta(seconds=rng.randrange(0, 40 * 365 * 86400)),
            extensions=rng.sample(EXTENSIONS["a web server's"][0], rng.randrange(0, 5)),
        )


def test_many_random_certificates_read_the_same() -> None:
    for data in _random_certificates(300, seed=1):
        assert_same(data, fast=None)


def test_damaged_certificates_read_the_same() -> None:
    """Every byte flip the DER reader lets through must read exactly as cryptography reads it;
    the rest must fall back (and then read the same by construction)."""
    rng = random.Random(2)  # noqa: S311 - a reproducible sequence, not a secret
    bases = [
        *_random_certificates(12, seed=3),
        build(extensions=EXTENSIONS["a web server's"][0], sans=[x509.DNSName("www.example.test")]),
    ]
    for data in bases:
        for _ in range(250):
            damaged = bytearray(data)
            for _ in range(rng.choice([1, 1, 2])):
                at = rng.randrange(len(damaged))
                damaged[at] = rng.randrange(256) if rng.random() < 0.5 else damaged[at] ^ (1 << rng.randrange(8))
            assert_same(bytes(damaged), fast=None)
        for cut in range(0, len(data), 7):  # and cut short anywhere
            assert_same(data[:cut], fast=None)


# --- through a real handshake ----------------------------------------------------------------


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The DER of every certificate cryptography's loader is asked to parse (observed, not replaced)."""
    calls: list[bytes] = []
    original = certinfo.x509.load_der_x509_certificate

    def counting(data: bytes, *args: Any, **kwargs: Any) -> x509.Certificate:
        calls.append(bytes(data))
        return original(data, *args, **kwargs)

    monkeypatch.setattr(certinfo.x509, "load_der_x509_certificate", counting)
    return calls


def test_the_verified_path_does_not_parse_with_cryptography(lab: Lab, loads: list[bytes]) -> None:
    endpoint = lab.serve(HOST, days_left=60)
    leaf = endpoint.leaf.cert.public_bytes(serialization.Encoding.DER)
    loads.clear()
    result = run(lab, endpoint)
    assert result.status is Status.OK, result.problems
    assert leaf not in loads
    assert loads == []
    assert result.certificate is not None
    expected, malformed = inspect_certificate(leaf, NOW)
    assert malformed == []
    assert replace(result.certificate, days_left=0) == replace(expected, days_left=0)


def test_the_unverified_path_still_parses_with_cryptography(lab: Lab, loads: list[bytes], tmp_path: Path) -> None:
    endpoint = lab.serve(HOST, days_left=60)
    leaf = endpoint.leaf.cert.public_bytes(serialization.Encoding.DER)
    other_ca = str(MiniCA("another root").write_ca(tmp_path / "other.pem"))
    loads.clear()
    result = run(lab, endpoint, ca_file=other_ca)
    assert [p.code for p in result.problems] == ["cert_untrusted"]
    assert leaf in loads
    assert result.certificate is not None
    assert result.certificate.sha256 == inspect_certificate(leaf, NOW)[0].sha256


def test_the_fast_read_can_be_switched_off(lab: Lab, loads: list[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = lab.serve(HOST, days_left=60)
    leaf = endpoint.leaf.cert.public_bytes(serialization.Encoding.DER)
    monkeypatch.setattr(certinfo, "FAST_READ", False)
    loads.clear()
    result = asyncio.run(probe(target(lab, endpoint)))
    assert result.status is Status.OK, result.problems
    assert leaf in loads
