"""Site URLs and host:port texts as the config reads them: light enough for `certops check
URL`, which parses one without loading the rest of the config."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote, urlsplit

import idna

from bot.config.errors import mask_credentials, quoted

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def split_https_url(url: str) -> tuple[str, int, str]:
    """-> (host name as DNS spells it, port, percent-encoded path and query); ValueError says what is wrong.

    The messages go to chat too (/ssl check URL): a password in the URL is masked in every one."""
    shown = mask_credentials(quoted(url))
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed "[" of an IPv6 address
        raise ValueError(
            f'is not a URL that can be read (an IPv6 address goes in brackets: "https://[2001:db8::1]/"), got {shown}'
        ) from None
    if "@" in parts.netloc:
        raise ValueError("must not contain a user name or password: secrets never go in the config file")
    try:
        port = 443 if parts.port is None else parts.port
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise ValueError(f"has an invalid port: {shown}")
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f'must be an https:// address such as "https://www.example.com/", got {shown}')
    try:
        # as DNS, SNI and certificates spell it (IDNA 2008 with UTS 46 mapping, as browsers do)
        hostname = idna.encode(parts.hostname, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise ValueError(f"has a host name that is not valid: {shown}") from None
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~-._")
    if parts.query:
        path += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=~-._?")
    return hostname, port, path


def split_host_port(text: str, default_port: int | None = None, *, any_port: bool = False) -> tuple[str, int] | None:
    """'203.0.113.10', 'h:8443', '[2001:db8::1]:443' -> (host, port); None when malformed.

    `any_port`: accept port 0, which asks the system for a free port when listening."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            return None
    if not port_text:
        if default_port is None:
            return None
        return (host, default_port) if _valid_host(host) else None
    lowest = 0 if any_port else 1
    if not port_text.isdigit() or not lowest <= int(port_text) < 65536 or not _valid_host(host):
        return None
    return host, int(port_text)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", host)) and ".." not in host
