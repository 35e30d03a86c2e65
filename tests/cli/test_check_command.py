"""`certops check`: URLs or configured sites, human lines or JSON, monitoring-plugin exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bot.cli import _run_probes, main
from bot.probe.targets import parse_resolve, url_target
from tests.fakes.hostile_targets import HostileServers, leaf_with
from tests.fakes.tls import Behaviour, Lab

HOST = "www.example.test"


def check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def resolve(port: int) -> list[str]:
    return ["--resolve", f"{HOST}:{port}:127.0.0.1"]


def test_json_output_has_the_documented_fields(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = lab.serve(days_left=45, headers={"Age": "12"})
    code, out, _ = check(
        capsys, f"https://{HOST}:{endpoint.port}/", *resolve(endpoint.port), "--ca-file", lab.ca_file, "--json"
    )

    [item] = json.loads(out)
    assert code == 1  # the cache hit is a warning
    assert item["target"] == f"https://{HOST}:{endpoint.port}/"
    assert (item["address"], item["status"], item["via"]) == ("127.0.0.1", "warning", "origin")
    assert item["problems"] == [
        {"code": "served_from_cache", "severity": "warning", "message": item["problems"][0]["message"]}
    ]
    cert = item["certificate"]
    assert set(cert) >= {
        "sha1",
        "sha256",
        "subject",
        "sans",
        "issuer",
        "serial",
        "not_before",
        "not_after",
        "days_left",
        "key_type",
    }
    assert len(cert["sha1"]) == 40
    assert cert["sha1"].isupper()
    assert len(cert["sha256"]) == 64
    assert cert["sans"] == [HOST]
    assert cert["days_left"] in (44, 45)
    assert cert["not_after"].endswith("Z")
    assert set(item["tls"]) == {"version", "cipher"}
    assert item["http"]["status"] == 200
    assert item["http"]["cache"] == {"age": "12"}
    assert item["elapsed_ms"] > 0


def test_resolve_sends_the_real_sni_and_host_to_the_other_address(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = lab.serve()
    code, out, _ = check(
        capsys, f"https://{HOST}:{endpoint.port}/status?full=1", *resolve(endpoint.port), "--ca-file", lab.ca_file
    )
    assert code == 0, out
    request = endpoint.requests[-1]
    assert (request.sni, request.host, request.path) == (HOST, f"{HOST}:{endpoint.port}", "/status?full=1")


def test_a_human_line_per_target_names_status_days_thumbprint_and_problems(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    good, broken = lab.serve(days_left=80), lab.serve(behaviour=Behaviour.RESET_IN_HANDSHAKE)
    code, out, _ = check(
        capsys, f"https://{HOST}:{good.port}/", f"https://{HOST}:{broken.port}/",
        *resolve(good.port), *resolve(broken.port), "--ca-file", lab.ca_file,
    )  # fmt: skip
    status, first, second = out.strip().splitlines()
    assert code == 2
    assert status.startswith("CERTOPS CRITICAL - ")  # the worst state first, as a monitoring plugin says it
    assert first.startswith("OK ")
    assert "days left" in first
    assert "HTTP 200" in first
    assert second.startswith("CRITICAL ")
    assert "reset the connection (TCP RST)" in second


def test_warn_and_crit_days_decide_the_exit_code(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = lab.serve(days_left=12.5)
    args = [f"https://{HOST}:{endpoint.port}/", *resolve(endpoint.port), "--ca-file", lab.ca_file]
    assert check(capsys, *args)[0] == 1
    assert check(capsys, *args, "--warn-days", "30", "--crit-days", "14")[0] == 2
    assert check(capsys, *args, "--warn-days", "10", "--crit-days", "5")[0] == 0


def test_usage_mistakes_exit_3_with_a_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    assert check(capsys)[0] == 3
    code, _, err = check(capsys, "https://x.test/", "--resolve", "x.test:443")
    assert code == 3
    assert "expected HOST:PORT:ADDRESS" in err
    code, _, err = check(capsys, "http://x.test/")
    assert code == 3
    assert "must be an https:// address" in err
    with pytest.raises(SystemExit) as caught:
        main(["check", "--warn-days", "ten"])
    assert caught.value.code == 3


def write_config(tmp_path: Path, lab: Lab, port: int, extra: str = "") -> Path:
    path = tmp_path / "certops.toml"
    path.write_text(
        f'[[sites]]\nname = "www"\nurl = "https://localhost:{port}/"\norigins = ["127.0.0.1:{port}"]\n'
        f'ca_file = "{lab.ca_file}"\ntimeout = 3\n{extra}'
        f'[[sites]]\nname = "shop"\nurl = "https://localhost:{port}/shop"\nca_file = "{lab.ca_file}"\n'
    )
    return path


def test_configured_sites_are_probed_at_the_public_name_and_each_origin(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = lab.serve("localhost")
    config = write_config(tmp_path, lab, endpoint.port)
    code, out, _ = check(capsys, "-c", str(config), "--site", "www", "--json")
    items = json.loads(out)
    assert code == 0
    assert [(i["site"], i["via"], i["status"]) for i in items] == [("www", "public", "ok"), ("www", "origin", "ok")]
    assert {r.sni for r in endpoint.requests} == {"localhost"}


def test_an_unknown_site_gets_a_did_you_mean(lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, lab, 1)
    code, _, err = check(capsys, "-c", str(config), "--site", "shpo")
    assert code == 3
    assert 'no site named "shpo"' in err
    assert 'did you mean "shop"' in err


def test_the_installed_command_runs_and_exits_with_the_worst_status(lab: Lab) -> None:
    endpoint = lab.serve(days_left=-1)
    url = f"https://{HOST}:{endpoint.port}/"
    command = [sys.executable, "-m", "bot.cli", "check", url, *resolve(endpoint.port), "--ca-file", lab.ca_file]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stdout.startswith("CERTOPS CRITICAL - ")
    assert "expired on" in done.stdout


def test_a_terminal_sees_a_progress_count_that_is_wiped_before_the_results(lab: Lab) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    endpoints = [lab.serve(), lab.serve()]
    targets = [
        url_target(
            f"https://{HOST}:{e.port}/",
            [parse_resolve(f"{HOST}:{e.port}:127.0.0.1")],
            warn_days=21,
            crit_days=7,
            timeout=3,
            ca_file=lab.ca_file,
        )
        for e in endpoints
    ]
    screen = Terminal()
    results = asyncio.run(_run_probes(targets, 2, screen))
    assert [r.status.value for r in results] == ["ok", "ok"]
    assert "\rprobed 1/2" in screen.getvalue()
    assert "\rprobed 2/2" in screen.getvalue()
    assert screen.getvalue().endswith("\r")


# --- hostile and unreachable targets: a named problem, never exit 3 -------------------------


def test_an_unreachable_network_exits_critical_with_a_named_problem(capsys: pytest.CaptureFixture[str]) -> None:
    # Linux refuses a TCP connect to a multicast address with ENETUNREACH before sending a packet
    with socket.socket() as sock:
        found = sock.connect_ex(("224.0.0.1", 9))
    if found != errno.ENETUNREACH:
        pytest.skip(f"this system answers a TCP connect to multicast with errno {found}, not ENETUNREACH")
    code, out, _ = check(capsys, f"https://{HOST}:9/", "--resolve", f"{HOST}:9:224.0.0.1", "--timeout", "2", "--json")
    [item] = json.loads(out)
    assert code == 2
    assert [p["code"] for p in item["problems"]] == ["network_unreachable"]
    assert item["status"] == "critical"


def test_a_certificate_name_with_terminal_escapes_is_printed_escaped(
    hostile: HostileServers, capsys: pytest.CaptureFixture[str]
) -> None:
    leaf = leaf_with(hostile.ca, common_name="\x1b[2J\x1b[8mhidden\nOK fake", dns_names=("\x1b[2Jx.test",))
    server = hostile.http(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", leaf=leaf)
    args = [f"https://{HOST}:{server.port}/", *resolve(server.port), "--ca-file", hostile.ca_file]

    code, out, _ = check(capsys, *args)
    assert code == 2  # the name does not match
    assert "\x1b" not in out
    assert len(out.strip().splitlines()) == 2  # the status line and one line for the one target
    assert "\\x1b[2Jx.test" in out

    code, out, _ = check(capsys, *args, "--json")
    [item] = json.loads(out)
    assert item["certificate"]["subject"] == "CN=\\x1b[2J\\x1b[8mhidden\\x0aOK fake"


def test_a_malformed_http_answer_exits_critical_with_a_sentence(
    hostile: HostileServers, capsys: pytest.CaptureFixture[str]
) -> None:
    server = hostile.http("HTTP/1.1 2\u00b900 OK\r\n\r\n".encode())
    code, out, _ = check(capsys, f"https://{HOST}:{server.port}/", *resolve(server.port), "--ca-file", hostile.ca_file)
    assert code == 2
    assert out.startswith("CERTOPS CRITICAL - ")
    assert "the status code must be three ASCII digits" in out


def test_a_redirect_to_another_site_exits_with_a_warning_that_names_it(
    hostile: HostileServers, capsys: pytest.CaptureFixture[str]
) -> None:
    server = hostile.http(b"HTTP/1.1 302 Found\r\nLocation: https://elsewhere.test/x\r\nContent-Length: 0\r\n\r\n")
    code, out, _ = check(capsys, f"https://{HOST}:{server.port}/", *resolve(server.port), "--ca-file", hostile.ca_file)
    assert code == 1
    assert out.startswith("CERTOPS WARNING - ")
    assert "redirects to another site: https://elsewhere.test/x" in out


def test_follow_redirects_in_the_config_judges_the_final_page(
    hostile: HostileServers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    moved = b"HTTP/1.1 301 Moved\r\nLocation: /home\r\nContent-Length: 0\r\n\r\n"
    page = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nWelcome"
    server = hostile.routes({"/": moved, "/home": page}, leaf=hostile.ca.issue("localhost"))
    config = tmp_path / "certops.toml"
    config.write_text(
        f'[[sites]]\nname = "www"\nurl = "https://localhost:{server.port}/"\nca_file = "{hostile.ca_file}"\n'
        'timeout = 3\nkeyword = "Welcome"\nfollow_redirects = true\n'
    )
    code, out, _ = check(capsys, "-c", str(config), "--json")
    [item] = json.loads(out)
    assert code == 0, item["problems"]
    assert item["http"]["status"] == 200
    assert item["http"]["redirects"] == [f"https://localhost:{server.port}/home"]
    assert [h.split(b" ")[1] for h in server.seen()] == [b"/", b"/home"]


def test_follow_redirects_on_the_command_line_judges_the_final_page(
    hostile: HostileServers, capsys: pytest.CaptureFixture[str]
) -> None:
    moved = b"HTTP/1.1 302 Found\r\nLocation: /home\r\nContent-Length: 0\r\n\r\n"
    missing = b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\ngone"
    server = hostile.routes({"/": moved, "/home": missing})
    url = f"https://{HOST}:{server.port}/"
    code, _out, _ = check(capsys, url, *resolve(server.port), "--ca-file", hostile.ca_file)
    assert code == 0  # unfollowed, a redirect within the site is fine
    code, out, _ = check(capsys, url, *resolve(server.port), "--ca-file", hostile.ca_file, "--follow-redirects")
    assert (code, out.split()[:2]) == (1, ["CERTOPS", "WARNING"]), out
    assert "HTTP 404" in out


def ca_files(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "ca.fifo"
    os.mkfifo(fifo)
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.txt").write_text("no certificate here\n")
    return {
        "a named pipe": fifo,
        "a folder": tmp_path / "folder",
        "a character device": Path("/dev/zero"),
        "a system file": Path("/proc/self/environ"),
        "a file without a certificate": tmp_path / "notes.txt",
    }


@pytest.mark.parametrize(
    "kind", ["a named pipe", "a folder", "a character device", "a system file", "a file without a certificate"]
)
def test_a_ca_file_that_cannot_be_used_exits_3_with_one_sentence(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    path = ca_files(tmp_path)[kind]
    endpoint = lab.serve()
    argv = ["check", f"https://{HOST}:{endpoint.port}/", *resolve(endpoint.port), "--ca-file", str(path)]
    outcome: list[int] = []
    worker = threading.Thread(target=lambda: outcome.append(main(argv)), daemon=True)
    worker.start()
    worker.join(5.0)
    if worker.is_alive():  # the old way: ssl waited for a writer to the pipe, forever
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(5.0)
        pytest.fail("certops check --ca-file was still running after 5 s")
    out, err = capsys.readouterr()
    assert outcome == [3]
    assert out == ""
    assert err.startswith(f"certops check: --ca-file: {path}")
    assert len(err.strip().splitlines()) == 1  # one sentence, no traceback
    assert "Traceback" not in err
    assert endpoint.requests == []  # refused before anything was probed
