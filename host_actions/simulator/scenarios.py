"""Ready-made host models: the incident from the mission, a healthy host, and a large one."""

from __future__ import annotations

from host_actions.simulator.model import HostModel

POST_RENEW = "C:\\Program Files\\win-acme\\Scripts\\certops_post_renew.ps1"
LEGACY_SCRIPT = "C:\\scripts\\ssl-post-renew.ps1"
LEGACY_SCRIPT_TEXT = "# copied from the nginx box\r\nRestart-Service nginx\r\nexit 1\r\n"


def incident_host() -> HostModel:
    """Eight days after the move to IIS: the renewal installed a certificate whose key link is
    broken, the renewal has no post-renew step, and the nginx-era task fails every day."""
    model = before_renewal_host()
    renew_breaking_the_key_link(model, days_old=0.1)
    return model


def healthy_host() -> HostModel:
    model = HostModel()
    cert = model.add_cert(["shop.example.net"], days_old=5)
    model.bind_site("Shop", "shop.example.net", cert)
    model.files[POST_RENEW.lower()] = "# certops-script: certops_post_renew"
    model.add_renewal(
        "shopRenewal01",
        ["shop.example.net"],
        1,
        thumbprint=cert.thumbprint,
        script=POST_RENEW,
        history=[model.history_entry(True, cert.thumbprint, days_ago=5)],
    )
    model.add_wacs_task()
    return model


def large_host(certs: int = 200, bindings: int = 50, tasks: int = 100) -> HostModel:
    """The benchmark's host: many certificates (most of them old renewals), sites and tasks."""
    model = HostModel()
    per_site = max(1, certs // bindings)
    for i in range(bindings):
        name = f"site{i:03d}.example.org"
        newest = None
        for age in range(per_site):
            newest = model.add_cert([name], days_old=10 + 60 * (per_site - 1 - age))
        assert newest is not None
        model.bind_site(f"Site {i:03d}", name, newest)
        model.add_renewal(f"renewal{i:03d}", [name], i + 1, thumbprint=newest.thumbprint, script=POST_RENEW)
    model.add_wacs_task()
    for i in range(tasks - 1):
        model.add_task(f"Job-{i:03d}", "C:\\Windows\\System32\\cmd.exe", f"/c C:\\jobs\\job{i:03d}.cmd", path="\\Ops\\")
        model.files[f"c:\\jobs\\job{i:03d}.cmd"] = "@echo off\r\nnet stop W3SVC\r\nnet start W3SVC\r\n"
    model.files["c:\\windows\\system32\\cmd.exe"] = ""
    model.files[POST_RENEW.lower()] = "# certops-script: certops_post_renew"
    return model


def before_renewal_host() -> HostModel:
    """The same host the day before: the old certificate is bound and healthy, the nginx-era
    task already fails daily, and the renewal has no post-renew step."""
    model = HostModel()
    old = model.add_cert(["www.example.com", "example.com"], days_old=80, friendly_name="old")
    model.bind_site("Default Web Site", "www.example.com", old)
    model.bind_site("Default Web Site", "example.com", old)
    model.add_renewal(
        "mZ3Yk1fWbkW0yJbqv7NfVw",
        ["www.example.com", "example.com"],
        1,
        thumbprint=old.thumbprint,
        history=[model.history_entry(True, old.thumbprint, days_ago=80)],
    )
    model.add_wacs_task()
    model.add_task(
        "SSL-PostRenew",
        "powershell.exe",
        f"-NoProfile -File {LEGACY_SCRIPT}",
        last_result=1,
        script=(LEGACY_SCRIPT, LEGACY_SCRIPT_TEXT),
    )
    return model


def renew_breaking_the_key_link(model: HostModel, *, days_old: float = 0) -> str:
    """What win-acme did at 08:32: a new certificate whose key link is broken, bound in place of
    the old one, and a renewal history that says it succeeded. Returns the new thumbprint.
    Hold the simulator's lock around it when it is serving."""
    new = model.add_cert(
        ["www.example.com", "example.com"], days_old=days_old, key_state="missing_keyset", friendly_name="renewed"
    )
    for site in model.sites:
        for binding in site.bindings:
            if binding.protocol == "https":
                binding.thumbprint, binding.store = new.thumbprint, "WebHosting"
    for http in model.http_bindings:
        http.thumbprint, http.store = new.thumbprint, "WebHosting"
    renewal = model.renewals[0]
    renewal.data["History"].append(model.history_entry(True, new.thumbprint, days_ago=days_old))
    return new.thumbprint


def multi_host_site() -> HostModel:
    """Several host names on one site, each with its own certificate, next to the bindings a
    rebind must leave alone: "Shop" serves www (an older and a renewed certificate on the host),
    api (its own certificate) and static (a Central Certificate Store binding, SslFlags 3);
    "Legacy" and "Intranet" have non-SNI bindings on *:443, so http.sys serves both from the one
    0.0.0.0:443 entry, today with a certificate that covers both names."""
    model = HostModel()
    www_old = model.add_cert(["www.example.net"], days_old=80, friendly_name="www old")
    model.add_cert(["www.example.net"], days_old=1, friendly_name="www renewed")
    api = model.add_cert(["api.example.net"], days_old=20, friendly_name="api")
    model.bind_site("Shop", "www.example.net", www_old)
    model.bind_site("Shop", "api.example.net", api)
    model.bind_site("Shop", "static.example.net", None, ccs=True)
    both = model.add_cert(["legacy.example.net", "intranet.example.net"], days_old=70, friendly_name="shared")
    model.add_cert(["legacy.example.net"], days_old=2, friendly_name="legacy only")
    model.bind_site("Legacy", "legacy.example.net", both, sni=False)
    model.bind_site("Intranet", "intranet.example.net", both, sni=False)
    model.add_wacs_task()
    return model
