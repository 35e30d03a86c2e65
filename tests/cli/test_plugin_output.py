"""`certops check` as a monitoring plugin: the first line is the worst state and a summary, then
` | ` and perfdata in the guidelines' syntax; the long output has no `|`; `--json` validates
against docs/probe-json.schema.json; the smoother command line of a first hour."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from bot.cli import main
from bot.probe.plugin import label
from tests.cli.test_check_command import check, resolve
from tests.fakes.hostile_targets import HostileServers
from tests.fakes.tls import Behaviour, Lab, MiniCA

HOST = "www.example.test"
SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "probe-json.schema.json"

# The Monitoring Plugins development guidelines, "Performance data":
#   'label'=value[UOM];[warn];[crit];[min];[max]
# a label with spaces or "=" or quotes is quoted in single quotes, a quote inside doubled;
# UOM is none, s/ms/us, %, B/KB/MB/TB or c; the trailing fields may be empty or left out.
_NUMBER = r"-?\d+(?:\.\d+)?"
_PAIR = re.compile(
    rf"(?P<label>'(?:[^']|'')+'|[^'=\s]+)=(?P<value>{_NUMBER})(?P<uom>s|ms|us|%|B|KB|MB|TB|c)?"
    rf"(?:;(?P<warn>{_NUMBER})?(?:;(?P<crit>{_NUMBER})?(?:;(?P<min>{_NUMBER})?(?:;(?P<max>{_NUMBER})?)?)?)?)?"
)


def parse_perfdata(text: str) -> list[dict[str, str | None]]:
    """Every pair of a perfdata string; fails on anything the guidelines don't allow."""
    pairs = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _PAIR.match(text, position)
        assert match is not None, f"not perfdata at {text[position:]!r}"
        found = match.groupdict()
        raw = found["label"] or ""
        found["label"] = raw[1:-1].replace("''", "'") if raw.startswith("'") else raw
        pairs.append(found)
        position = match.end()
        assert position == len(text) or text[position] == " ", f"junk after a pair: {text[position:]!r}"
        position += 1
    return pairs


def test_the_first_line_is_the_worst_state_with_perfdata_for_every_target(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    good, broken = lab.serve(days_left=80), lab.serve(behaviour=Behaviour.RESET_IN_HANDSHAKE)
    code, out, _ = check(
        capsys, f"https://{HOST}:{good.port}/", f"https://{HOST}:{broken.port}/",
        *resolve(good.port), *resolve(broken.port), "--ca-file", lab.ca_file, "--warn-days", "30", "--crit-days", "10",
    )  # fmt: skip
    status, *long_output = out.rstrip("\n").split("\n")
    assert code == 2
    text, bar, perfdata = status.partition(" | ")
    assert bar
    assert text.startswith("CERTOPS CRITICAL - www.example.test via origin 127.0.0.1:")
    assert "reset the connection" in text
    assert out.count("|") == 1  # the long output must not start more perfdata
    assert [line.split()[0] for line in long_output] == ["OK", "CRITICAL"]
    pairs = parse_perfdata(perfdata)
    assert [p["label"] for p in pairs] == [
        "www.example.test_origin_127.0.0.1_days_left",
        "www.example.test_origin_127.0.0.1_time",
        "www.example.test_origin_127.0.0.1_time",
    ]
    days = pairs[0]
    assert (days["value"], days["uom"], days["warn"], days["crit"], days["min"]) == ("79", None, "30", "10", "0")
    assert all(p["uom"] == "s" and p["min"] == "0" for p in pairs[1:])
    assert perfdata.startswith("'www.example.test_origin_127.0.0.1_days_left'=79;30;10;0;")


@pytest.mark.parametrize(("days_left", "code", "state"), [(80, 0, "OK"), (15, 1, "WARNING"), (3, 2, "CRITICAL")])
def test_the_state_on_the_first_line_is_the_exit_code_s(
    lab: Lab, capsys: pytest.CaptureFixture[str], days_left: int, code: int, state: str
) -> None:
    endpoint = lab.serve(days_left=days_left)
    got, out, _ = check(capsys, f"https://{HOST}:{endpoint.port}/", *resolve(endpoint.port), "--ca-file", lab.ca_file)
    assert got == code
    assert out.startswith(f"CERTOPS {state} - ")
    if state == "OK":
        assert out.startswith(f"CERTOPS OK - 1 target OK, certificates valid for {days_left - 1} days or more | ")


def test_the_summary_names_three_of_the_worst_targets_and_counts_the_rest(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoints = [lab.serve(behaviour=Behaviour.RESET_IN_HANDSHAKE) for _ in range(5)]
    urls = [f"https://{HOST}:{e.port}/" for e in endpoints]
    resolves = [arg for e in endpoints for arg in resolve(e.port)]
    code, out, _ = check(capsys, *urls, *resolves, "--ca-file", lab.ca_file)
    first = out.split("\n")[0]
    assert code == 2
    assert first.split(" | ")[0].endswith("; and 2 more CRITICAL")
    assert first.count("www.example.test via origin") == 3


def test_a_label_is_quoted_unless_plain_and_a_quote_in_it_is_doubled() -> None:
    assert label("www_public_dns_days_left") == "www_public_dns_days_left"
    assert label("www_origin_2001:db8::1_time") == "'www_origin_2001:db8::1_time'"
    assert label("it's") == "'it''s'"
    assert label("a=b c") == "'a_b c'"
    assert parse_perfdata(f"{label('it' + chr(39) + 's')}=1;;;0;")[0]["label"] == "it's"


def test_json_output_validates_against_the_published_schema(
    lab: Lab, hostile: HostileServers, capsys: pytest.CaptureFixture[str]
) -> None:
    good, broken = lab.serve(days_left=45, headers={"Age": "3"}), lab.serve(behaviour=Behaviour.RESET_IN_HANDSHAKE)
    untrusted = lab.servers.add(type(good)(MiniCA("stranger").issue(HOST)))
    moved = hostile.http(b"HTTP/1.1 302 Found\r\nLocation: https://elsewhere.test/x\r\nContent-Length: 0\r\n\r\n")
    urls = [f"https://{HOST}:{e.port}/" for e in (good, broken, untrusted)]
    resolves = [arg for e in (good, broken, untrusted) for arg in resolve(e.port)]
    _code, out, _ = check(capsys, *urls, *resolves, "--ca-file", lab.ca_file, "--json")
    results = json.loads(out)
    _code, out, _ = check(
        capsys, f"https://{HOST}:{moved.port}/", *resolve(moved.port), "--ca-file", hostile.ca_file, "--json"
    )
    results += json.loads(out)
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(results, schema, cls=jsonschema.Draft202012Validator)
    assert {r["status"] for r in results} == {"warning", "critical"}
    assert all(r["schema_version"] == 1 for r in results)
    broken_copy = [dict(results[0], status="fine")]
    with pytest.raises(jsonschema.ValidationError):  # the schema can fail: it is not a formality
        jsonschema.validate(broken_copy, schema, cls=jsonschema.Draft202012Validator)


def test_check_without_urls_or_config_uses_certops_toml_here(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = lab.serve(days_left=80)
    monkeypatch.chdir(tmp_path)
    code, _, err = check(capsys)
    assert code == 3
    assert "give URLs to probe, or -c FILE for configured sites (certops.toml is not here)" in err
    code, _, err = check(capsys, "--site", "shop")
    assert code == 3
    assert "--site picks sites from a config, or -c FILE for configured sites (certops.toml is not here)" in err
    (tmp_path / "certops.toml").write_text(
        f'[[sites]]\nname = "shop"\nurl = "https://{HOST}:{endpoint.port}/"\norigins = ["127.0.0.1:{endpoint.port}"]\n'
        f'ca_file = "{lab.ca_file}"\n',
        encoding="utf-8",
    )
    code, out, _ = check(capsys)
    assert code == 2, out  # the public name does not resolve here; the origin answers
    assert "'shop_origin_127.0.0.1_days_left'=79;21;7;0;" in out  # the configured site was probed
    assert "shop_public_dns_time=" in out


def test_site_with_urls_says_it_picks_configured_sites(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = check(capsys, "https://x.test/", "--site", "shop")
    assert code == 3
    assert "--site picks configured sites; it does not go with URLs." in err


def test_timeout_takes_a_duration_as_the_config_does(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = lab.serve(days_left=80)
    url = f"https://{HOST}:{endpoint.port}/"
    assert check(capsys, url, *resolve(endpoint.port), "--ca-file", lab.ca_file, "--timeout", "5s")[0] == 0
    assert check(capsys, url, *resolve(endpoint.port), "--ca-file", lab.ca_file, "--timeout", "2.5")[0] == 0
    with pytest.raises(SystemExit) as exited:
        main(["check", url, "--timeout", "soon"])
    assert exited.value.code == 3
    assert "'soon' is not a duration: give seconds (10) or a unit (5s, 1m)" in capsys.readouterr().err


def test_resolve_refuses_an_address_that_is_not_an_ip(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = check(capsys, "https://x.test:8443/", "--resolve", "x.test:8443:127.0.0.1:8443")
    assert code == 3
    assert "'127.0.0.1:8443' is not an IP address" in err
    code, _, err = check(capsys, "https://x.test/", "--resolve", "x.test:443:origin.example.net")
    assert code == 3
    assert "'origin.example.net' is not an IP address" in err
