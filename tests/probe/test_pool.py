"""The probe workers (bot.probe.pool) against real loopback TLS servers: what they answer is what
probing in process answers, they are real processes, a dead or stuck worker costs no site its
round, and no worker outlives the pool or the bot's process."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bot.config import parse_config
from bot.config.model import usable_cores
from bot.probe import ProbeResult, ProbeTarget, StaticResolver, Status, probe_many
from bot.probe.pool import ProbePool
from bot.services import SiteProber
from tests.fakes.processes import probe_workers_of
from tests.fakes.tls import Behaviour, Endpoint, Lab
from tests.probe.helpers import HOST, target

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def same_apart_from_timing(result: ProbeResult) -> ProbeResult:
    """A result with what differs between any two runs (durations, the time it was made) blanked."""
    http = dataclasses.replace(result.http, elapsed_ms=0.0) if result.http else None
    return dataclasses.replace(result, http=http, elapsed_ms=0.0, checked_at="")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def hold_first_connection() -> tuple[threading.Event, threading.Event, object]:
    """An on_connect hook that holds the first connection until released; later ones pass."""
    arrived, release = threading.Event(), threading.Event()
    calls = itertools.count()

    def hook(_endpoint: Endpoint) -> None:
        if next(calls) == 0:
            arrived.set()
            release.wait(20)

    return arrived, release, hook


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")


def test_targets_and_results_cross_a_pipe_as_pickles_unchanged(lab: Lab) -> None:
    endpoint = lab.serve(HOST)
    every_field = ProbeTarget(
        url="https://www.example.test:8443/x?y=1", hostname=HOST, port=8443, path="/x?y=1",
        connect_host="127.0.0.1", connect_port=9443, site="www", via="origin", expect_status=(200, 301),
        keyword="café", warn_days=30, crit_days=3, timeout=4.5, ca_file="/etc/ca.pem", follow_redirects=True,
    )  # fmt: skip
    [result] = asyncio.run(probe_many([target(lab, endpoint, keyword="nowhere")]))
    assert result.certificate is not None
    assert result.tls is not None
    assert result.http is not None
    assert result.problems  # the keyword is missing: a Problem crosses too

    assert pickle.loads(pickle.dumps(every_field)) == every_field  # noqa: S301 - our own pickle
    assert pickle.loads(pickle.dumps(result)) == result  # noqa: S301


def test_workers_answer_byte_for_byte_what_probing_in_process_answers(lab: Lab) -> None:
    refused = free_port()
    cases = [
        target(lab, lab.serve(HOST)),
        target(lab, lab.serve(HOST, days_left=10)),
        target(lab, lab.serve(HOST, days_left=-2)),
        target(lab, lab.serve("other.example.test")),
        target(lab, lab.serve(HOST), ca_file=None),  # not trusted by the system store
        target(lab, lab.serve(HOST, status=503)),
        target(lab, lab.serve(HOST), keyword="not on the page"),
        target(lab, lab.serve(HOST, headers={"Age": "120", "X-Cache": "HIT"})),
        target(lab, lab.serve(HOST, behaviour=Behaviour.RESET_IN_HANDSHAKE)),
        target(lab, lab.serve(HOST, behaviour=Behaviour.CLOSE_IN_HANDSHAKE)),
        target(lab, lab.serve(HOST, behaviour=Behaviour.PLAIN_HTTP)),
        target(lab, lab.serve(HOST, behaviour=Behaviour.ALERT)),
        target(lab, lab.serve(HOST, behaviour=Behaviour.SILENT), timeout=1.0),
        target(lab, lab.serve(HOST, behaviour=Behaviour.SILENT_AFTER_HANDSHAKE), timeout=1.0),
        target(lab, lab.serve(HOST), ca_file=str(REPO / "no-such-ca.pem")),
        dataclasses.replace(target(lab, lab.serve(HOST)), port=refused, connect_port=refused),
    ]

    async def both() -> tuple[list[ProbeResult], list[ProbeResult]]:
        pool = ProbePool(2)
        try:
            return await probe_many(cases), await pool.probe_many(cases)
        finally:
            await pool.close()

    in_process, in_workers = both_runs = asyncio.run(both())
    assert len({code for r in in_process for code in (p.code for p in r.problems)}) >= 10, both_runs
    for here, there in zip(in_process, in_workers, strict=True):
        assert same_apart_from_timing(there) == same_apart_from_timing(here)
        assert pickle.dumps(same_apart_from_timing(there)) == pickle.dumps(same_apart_from_timing(here))


@needs_proc
def test_two_workers_are_two_processes_of_this_one_and_both_probe(lab: Lab) -> None:
    endpoint = lab.serve(HOST)
    sites = [dataclasses.replace(target(lab, endpoint), site=f"site-{n}") for n in range(24)]

    async def scenario() -> tuple[list[int], dict[int, int], list[ProbeResult]]:
        pool = ProbePool(2)
        try:
            await pool.start()
            results = await pool.probe_many(sites)
            return pool.pids(), pool.answered(), results
        finally:
            await pool.close()

    pids, answered, results = asyncio.run(scenario())
    assert len(set(pids)) == 2
    assert os.getpid() not in pids
    assert all(r.status is Status.OK for r in results)
    assert sorted(answered) == sorted(pids)
    assert all(count > 0 for count in answered.values()), answered  # sites spread over both
    assert sum(answered.values()) == len(sites)


@needs_proc
def test_a_worker_killed_mid_probe_is_restarted_and_its_probe_runs_again_at_once_elsewhere(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    arrived, release, hook = hold_first_connection()
    endpoint = lab.serve(HOST, on_connect=hook)
    restarts: list[int] = []

    async def scenario() -> None:
        pool = ProbePool(2, on_restart=lambda: restarts.append(1))
        try:
            await pool.start()
            probing = asyncio.ensure_future(pool.probe_many([target(lab, endpoint, timeout=10.0)]))
            assert await asyncio.to_thread(arrived.wait, 10), "the probe never reached the server"
            [busy] = [pid for pid, count in pool.in_flight().items() if count]
            [other] = [pid for pid in pool.pids() if pid != busy]
            killed_at = time.monotonic()
            os.kill(busy, signal.SIGKILL)
            [result] = await probing
            took = time.monotonic() - killed_at

            assert result.status is Status.OK, result.problems  # probed again, not failed
            assert took < 5.0, f"the re-run waited {took:.1f} s: it should not wait for the probe's timeout"
            assert pool.answered()[other] == 1  # on the worker that was alive
            for _ in range(100):
                if len(pool.pids()) == 2 and busy not in pool.pids():
                    break
                await asyncio.sleep(0.1)
            assert len(pool.pids()) == 2
            assert busy not in pool.pids()
            assert other in pool.pids()
            [replacement] = [pid for pid in pool.pids() if pid != other]
            assert alive(replacement)
            [again] = await pool.probe_many([dataclasses.replace(target(lab, endpoint), site="another")])
            assert again.status is Status.OK
        finally:
            release.set()
            await pool.close()

    with caplog.at_level(logging.WARNING, logger="certops.probe.pool"):
        asyncio.run(scenario())
    deaths = [r.getMessage() for r in caplog.records if r.name == "certops.probe.pool"]
    assert len(deaths) == 1, deaths  # logged once
    assert "was killed by SIGKILL" in deaths[0]
    assert "1 probe(s) it had in flight run again" in deaths[0]
    assert restarts == [1]


def test_a_worker_that_stops_answering_fails_its_probe_within_its_timeout_and_is_replaced(lab: Lab) -> None:
    endpoint = lab.serve(HOST)
    restarts: list[int] = []

    async def scenario() -> None:
        pool = ProbePool(2, on_restart=lambda: restarts.append(1), margin=0.5)
        await pool.start()
        stopped = pool.pids()
        try:
            for pid in stopped:
                os.kill(pid, signal.SIGSTOP)  # alive, holding its pipe, answering nothing
            started = time.monotonic()
            [result] = await pool.probe_many([target(lab, endpoint, timeout=1.0)])
            took = time.monotonic() - started
            assert [p.code for p in result.problems] == ["probe_error"]
            assert result.status is Status.UNKNOWN
            assert 1.4 < took < 4.0, took
            for _ in range(100):
                if len(set(pool.pids()) - set(stopped)) == 1:
                    break
                await asyncio.sleep(0.1)
            assert len(set(pool.pids()) - set(stopped)) == 1  # the stuck one was ended and replaced
        finally:
            for pid in stopped:
                with contextlib.suppress(ProcessLookupError):  # the stuck one was killed
                    os.kill(pid, signal.SIGCONT)
            await pool.close()

    asyncio.run(scenario())
    assert restarts == [1]


def test_the_gate_bounds_probes_in_flight_across_all_workers(lab: Lab) -> None:
    lock = threading.Lock()
    now = {"in": 0, "most": 0}

    def slow(_endpoint: Endpoint) -> None:
        with lock:
            now["in"] += 1
            now["most"] = max(now["most"], now["in"])
        time.sleep(0.3)
        with lock:
            now["in"] -= 1

    endpoint = lab.serve(HOST, on_connect=slow)
    sites = [dataclasses.replace(target(lab, endpoint), site=f"site-{n}") for n in range(8)]

    async def scenario() -> list[ProbeResult]:
        pool = ProbePool(2)
        try:
            return await pool.probe_many(sites, gate=asyncio.Semaphore(3))
        finally:
            await pool.close()

    results = asyncio.run(scenario())
    assert all(r.status is Status.OK for r in results)
    assert now["most"] == 3


@needs_proc
def test_close_leaves_no_child_process() -> None:
    async def scenario() -> list[int]:
        pool = ProbePool(3)
        await pool.start()
        pids = pool.pids()
        assert sorted(probe_workers_of(os.getpid())) == sorted(pids)
        await pool.close()
        assert pool.pids() == [] or not any(alive(pid) for pid in pool.pids())
        return pids

    pids = asyncio.run(scenario())
    assert len(pids) == 3
    assert probe_workers_of(os.getpid()) == []
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)  # exited and reaped


@needs_proc
def test_workers_exit_when_the_bot_process_is_killed_outright() -> None:
    script = (
        "import asyncio\n"
        "from bot.probe.pool import ProbePool\n"
        "async def main():\n"
        "    pool = ProbePool(2)\n"
        "    await pool.start()\n"
        "    print(*pool.pids(), flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    bot = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert bot.stdout is not None
        pids = [int(p) for p in bot.stdout.readline().split()]
        assert len(pids) == 2
        assert all(alive(pid) for pid in pids)
    finally:
        bot.kill()  # SIGKILL: no close(), no atexit, nothing runs in the bot's process
        bot.wait()
        if bot.stdout is not None:
            bot.stdout.close()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in pids), "a probe worker outlived the bot's process"


def test_the_prober_uses_one_worker_per_core_by_default_and_probes_in_process_when_told_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CERTOPS_PROBE_WORKERS", raising=False)

    async def probers() -> tuple[SiteProber, SiteProber, SiteProber]:
        default = SiteProber(parse_config(""))
        one = SiteProber(parse_config("[bot]\nprobe_workers = 1\n"))
        resolved = SiteProber(parse_config("[bot]\nprobe_workers = 4\n"), StaticResolver({}))
        return default, one, resolved

    default, one, resolved = asyncio.run(probers())
    assert default.config.bot.probe_workers == min(64, usable_cores())
    if usable_cores() > 1:
        assert default.pool is not None
        assert default.pool.workers == usable_cores()
    assert one.pool is None
    assert resolved.pool is None  # a resolver object can't cross into a worker: probed in process


def test_the_prober_probes_a_site_through_its_workers(lab: Lab) -> None:
    endpoint = lab.serve("127.0.0.1")
    config = parse_config(
        f'[bot]\nprobe_workers = 2\n[[sites]]\nname = "www"\nurl = "https://127.0.0.1:{endpoint.port}/"\n'
        f'ca_file = "{lab.ca_file}"\ntimeout = 3\n'
    )

    async def scenario() -> tuple[list[ProbeResult], dict[int, int], list[ProbeResult]]:
        prober = SiteProber(config)
        await prober.start()
        results = await prober.probe_site(config.sites[0])
        assert prober.pool is not None
        answered = prober.pool.answered()
        await prober.close()
        late = await prober.probe_site(config.sites[0])  # after close: in process, still answered
        return results, answered, late

    results, answered, late = asyncio.run(scenario())
    assert [r.status for r in results] == [Status.OK]
    assert sum(answered.values()) == 1
    assert [r.status for r in late] == [Status.OK]
