"""What the probe engine leaves out to stay cheap gives the same answers: cryptography.x509 is
imported only when a certificate is parsed with it, and a name is not parsed as an IP address."""

from __future__ import annotations

import ipaddress
import subprocess
import sys

import pytest

from bot.probe import certinfo
from bot.probe.certinfo import _ip_or_none, matches_hostname
from bot.probe.engine import _is_ip


def test_importing_the_engine_and_the_command_line_leaves_cryptography_x509_unloaded() -> None:
    code = (
        "import sys, bot.probe.engine, bot.cli; "
        "print('cryptography.x509' in sys.modules); "
        "from bot.probe import certinfo; certinfo.x509.load_der_x509_certificate; "
        "print('cryptography.x509' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]  # not with the engine; there once asked for


def test_certinfo_x509_is_cryptographys_module() -> None:
    from cryptography import x509

    assert certinfo.x509 is x509
    with pytest.raises(AttributeError):
        _ = certinfo.no_such_name


CASES = [
    "1.2.3.4",
    "::1",
    "2001:db8::1",
    "::ffff:1.2.3.4",
    "fe80::1%eth0",
    "1.2.3.4a",
    "a1",
    "",
    "256.1.1.1",
    "1.2.3",
    "1.2.3.04",
    "0x1.2.3.4",
    "1.2.3.4\n",
    " 1.2.3.4",
    "\uff11.\uff12.\uff13.\uff14",
    "1.2.3.\u0664",
    "www.example.test",
    "xn--vil-9la.test",
    "host1",
    "[::1]",
]


@pytest.mark.parametrize("text", CASES)
def test_the_ip_shortcut_answers_as_ipaddress_does(text: str) -> None:
    try:
        expected: object = ipaddress.ip_address(text)
    except ValueError:
        expected = None
    assert _ip_or_none(text) == expected
    assert _is_ip(text) is (expected is not None)


def test_names_and_addresses_still_match_as_before() -> None:
    assert matches_hostname(("*.example.test",), "www.example.test")
    assert not matches_hostname(("*.example.test",), "example.test")
    assert matches_hostname(("127.0.0.1",), "127.0.0.1")
    assert matches_hostname(("::1",), "0:0::1")
    assert not matches_hostname(("127.0.0.1",), "127.0.0.2")
    assert not matches_hostname(("1.2.3.4",), "host1")
