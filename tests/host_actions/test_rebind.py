"""rebind through pywinrm against the simulator: only the bindings the certificate covers, never
CCS ones, shared non-SNI sockets only when asked, replaced rather than mutated, and verified."""

from __future__ import annotations

import pytest

from host_actions import actions
from host_actions.errors import HostActionError, InvalidParameter
from host_actions.scripts import script_text
from host_actions.simulator import HostModel
from host_actions.simulator.model import SimCert, SiteBinding
from host_actions.simulator.scenarios import multi_host_site
from tests.host_actions.conftest import SimFactory


def _cert(model: HostModel, friendly_name: str) -> SimCert:
    return next(c for c in model.certs if c.friendly_name == friendly_name)


def _binding(model: HostModel, site: str, info: str) -> SiteBinding:
    found = model.site(site)
    assert found is not None
    return next(b for b in found.bindings if b.information == info)


def _served(model: HostModel, endpoint: str) -> str:
    return next(h.thumbprint for h in model.http_bindings if h.endpoint == endpoint)


def test_rebind_fixes_www_and_leaves_api_on_its_own_certificate(make_sim: SimFactory) -> None:
    model = multi_host_site()
    renewed, api = _cert(model, "www renewed"), _cert(model, "api")
    sim, host = make_sim(model)
    result = actions.rebind(host, "Shop", renewed.thumbprint)
    assert result.ok, result.summary
    assert result.details["changed"] == ["*:443:www.example.net"]
    assert _served(sim.model, "www.example.net:443") == renewed.thumbprint
    assert _served(sim.model, "api.example.net:443") == api.thumbprint
    assert _binding(sim.model, "Shop", "*:443:api.example.net").thumbprint == api.thumbprint
    assert "the certificate does not cover api.example.net" in result.summary


def test_rebind_never_touches_a_central_certificate_store_binding(make_sim: SimFactory) -> None:
    model = multi_host_site()
    renewed = _cert(model, "www renewed")
    sim, host = make_sim(model)
    result = actions.rebind(host, "Shop", renewed.thumbprint)
    ccs = _binding(sim.model, "Shop", "*:443:static.example.net")
    assert (ccs.ssl_flags, ccs.thumbprint, ccs.store) == (3, "", "")
    assert {
        "binding": "*:443:static.example.net",
        "reason": "static.example.net:443 uses the Central Certificate Store",
    } in result.details["skipped"]


def test_rebind_refuses_to_name_a_central_certificate_store_binding(make_sim: SimFactory) -> None:
    model = multi_host_site()
    sim, host = make_sim(model)
    with pytest.raises(HostActionError) as caught:
        actions.rebind(host, "Shop", _cert(model, "www renewed").thumbprint, bindings=["static.example.net"])
    assert caught.value.message == (
        "iis-sim: refusing to rebind Shop: *:443:static.example.net uses the Central Certificate Store, "
        "which takes no hash."
    )
    assert sim.model.log == []


def test_rebind_of_a_named_binding_changes_that_one_and_no_other(make_sim: SimFactory) -> None:
    model = multi_host_site()
    model.add_cert(["www.example.net", "api.example.net"], days_old=0.5, friendly_name="both")
    both, api = _cert(model, "both"), _cert(model, "api")
    sim, host = make_sim(model)
    result = actions.rebind(host, "Shop", both.thumbprint, bindings=["www.example.net:443"])
    assert result.ok, result.summary
    assert result.details["changed"] == ["*:443:www.example.net"]
    assert _served(sim.model, "api.example.net:443") == api.thumbprint


def test_rebind_refuses_a_named_binding_whose_host_the_certificate_does_not_cover(make_sim: SimFactory) -> None:
    model = multi_host_site()
    sim, host = make_sim(model)
    with pytest.raises(HostActionError) as caught:
        actions.rebind(host, "Shop", _cert(model, "www renewed").thumbprint, bindings=["*:443:api.example.net"])
    assert "does not cover api.example.net" in caught.value.message
    assert sim.model.log == []


def test_rebind_refuses_a_non_sni_binding_that_shares_its_socket_unless_asked(make_sim: SimFactory) -> None:
    model = multi_host_site()
    legacy, both = _cert(model, "legacy only"), _cert(model, "shared")
    sim, host = make_sim(model)
    with pytest.raises(HostActionError) as caught:
        actions.rebind(host, "Legacy", legacy.thumbprint)
    assert caught.value.message == (
        "iis-sim: refusing to rebind Legacy legacy.example.net:443: it has no SNI, so it shares the http.sys "
        "socket 0.0.0.0:443 with Intranet intranet.example.net:443, which would serve the new certificate too. "
        "Ask for it explicitly (shared socket) to do it anyway."
    )
    assert sim.model.log == []
    assert _served(sim.model, "0.0.0.0:443") == both.thumbprint


def test_rebind_verification_catches_a_binding_left_with_a_certificate_that_does_not_cover_its_host(
    make_sim: SimFactory,
) -> None:
    model = multi_host_site()
    legacy = _cert(model, "legacy only")
    sim, host = make_sim(model)
    result = actions.rebind(host, "Legacy", legacy.thumbprint, shared_socket=True)
    assert not result.ok
    assert _served(sim.model, "0.0.0.0:443") == legacy.thumbprint
    assert result.summary == (
        f"iis-sim: after rebinding Legacy to {legacy.thumbprint}: Intranet intranet.example.net:443 is served "
        f"{legacy.thumbprint}, which does not cover intranet.example.net."
    )
    assert [(r["binding"], r["covers_host"]) for r in result.details["verified"]] == [
        ("*:443:legacy.example.net", True),
        ("*:443:intranet.example.net", False),
    ]


def test_rebind_replaces_the_binding_rather_than_mutating_it(make_sim: SimFactory) -> None:
    model = multi_host_site()
    renewed = _cert(model, "www renewed")
    original = _binding(model, "Shop", "*:443:www.example.net")
    sim, host = make_sim(model)
    actions.rebind(host, "Shop", renewed.thumbprint)
    replacement = _binding(sim.model, "Shop", "*:443:www.example.net")
    assert replacement is not original
    assert (replacement.protocol, replacement.ssl_flags, replacement.thumbprint) == ("https", 1, renewed.thumbprint)
    assert original.thumbprint != renewed.thumbprint  # the old element was removed, not edited


def test_the_rebind_script_replaces_named_bindings_and_skips_ccs_ones() -> None:
    text = script_text("rebind")
    assert "CreateElement('binding')" in text
    assert "$s.Bindings.Remove($old)" in text
    assert "-band 2" in text
    assert "AddSslCertificate" not in text
    assert "$b.CertificateHash = $hash" not in text


def test_rebind_refuses_a_binding_name_with_quoting_characters_before_any_request(make_sim: SimFactory) -> None:
    sim, host = make_sim(multi_host_site())
    with pytest.raises(InvalidParameter):
        actions.rebind(host, "Shop", "A" * 40, bindings=["*:443:x';Stop-Computer"])
    assert sim.requests == []


def test_a_site_bound_only_without_a_host_name_is_rebound_as_before(make_sim: SimFactory) -> None:
    # the classic *:443: binding serves every name on its socket: it is the site's only https door
    model = HostModel()
    old = model.add_cert(["www.example.net"], days_old=80, friendly_name="old")
    renewed = model.add_cert(["www.example.net"], days_old=1, friendly_name="renewed")
    model.bind_site("Default Web Site", "", old, sni=False)
    sim, host = make_sim(model)
    result = actions.rebind(host, "Default Web Site", renewed.thumbprint)
    assert result.ok, result.summary
    assert result.details["changed"] == ["*:443:"]
    assert _served(sim.model, "0.0.0.0:443") == renewed.thumbprint
