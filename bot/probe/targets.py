"""Turns configured sites, or URLs from the command line, into probe targets."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from bot.config.site import Site
from bot.config.urls import split_host_port, split_https_url
from bot.probe.model import ProbeTarget


class TargetError(ValueError):
    """A URL or --resolve entry the user typed is not usable; the message says how to fix it."""


def site_targets(site: Site) -> list[ProbeTarget]:
    """The public name (through DNS, maybe a CDN), then each origin reached directly with the real SNI and Host."""
    public = ProbeTarget(
        url=site.url,
        hostname=site.hostname,
        port=site.port,
        path=site.path,
        site=site.name,
        via="public",
        expect_status=site.expect_status,
        keyword=site.keyword,
        warn_days=site.warn_days,
        crit_days=site.crit_days,
        timeout=site.timeout,
        ca_file=site.ca_file,
        follow_redirects=site.follow_redirects,
    )
    targets = [public]
    for origin in site.origins:
        parsed = split_host_port(origin, default_port=site.port)
        assert parsed is not None  # validated with the config
        targets.append(replace(public, via="origin", connect_host=parsed[0], connect_port=parsed[1]))
    return targets


@dataclass(frozen=True)
class Resolve:
    host: str
    port: int
    address: str


def parse_resolve(text: str) -> Resolve:
    """curl's --resolve: HOST:PORT:ADDRESS (an IPv6 address may be in brackets)."""
    host, sep, rest = text.partition(":")
    port_text, sep2, address = rest.partition(":")
    address = address.strip("[]")
    if not (sep and sep2 and host and address and port_text.isdigit() and 0 < int(port_text) < 65536):
        raise TargetError(f"--resolve {text!r}: expected HOST:PORT:ADDRESS, e.g. www.example.com:443:203.0.113.10")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        # "127.0.0.1:8443" or a name would otherwise go to DNS as a host name
        raise TargetError(
            f"--resolve {text!r}: {address!r} is not an IP address; ADDRESS is where to connect "
            "(203.0.113.10 or [2001:db8::1]), and the port is the one in HOST:PORT"
        ) from None
    return Resolve(host.lower(), int(port_text), address)


def url_target(
    text: str,
    resolves: list[Resolve],
    *,
    warn_days: int,
    crit_days: int,
    timeout: float,
    ca_file: str | None,
    follow_redirects: bool = False,
) -> ProbeTarget:
    url = text if "://" in text else f"https://{text}"
    try:
        hostname, port, path = split_https_url(url)
    except ValueError as exc:
        raise TargetError(f"{text}: {exc}") from None
    match = next((r for r in resolves if r.host == hostname.lower() and r.port == port), None)
    return ProbeTarget(
        url=url,
        hostname=hostname,
        port=port,
        path=path,
        connect_host=match.address if match else None,
        via="origin" if match else "public",
        warn_days=warn_days,
        crit_days=crit_days,
        timeout=timeout,
        ca_file=ca_file,
        follow_redirects=follow_redirects,
    )
