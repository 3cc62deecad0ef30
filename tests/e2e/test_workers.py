"""``edgeport --workers 2``: a supervisor and two worker processes behind the same ports.

Real processes on 127.0.0.1: the kernel spreads the user agents' source
ports over the workers (SO_REUSEPORT), so a callee's responses often reach
the worker that does not hold the INVITE and must be handed over.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
import trio
import trio_websocket

from tests.e2e.flows import response_to
from tests.support.edgeport_process import edgeport_env, open_edgeport
from tests.support.http_get import http_get
from tests.support.ports import free_port, listening_addresses, stop_process
from tests.support.ua import TcpUA, UdpUA, WsUA, sip

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

pytestmark = pytest.mark.slow

START_TIMEOUT = 30.0  # seconds for the supervisor and both workers to be healthy
WAIT_TIMEOUT = 15.0  # seconds for a condition observed through /healthz or /metrics
CALLS = 12  # pairs of user agents, each on its own source ports
BROWSER_CALLERS = 10  # UDP callers of one browser: some land on the worker without its socket
BROWSER_HOST = "w7q2m4k8z1x5.invalid"


@dataclass
class Running:
    process: trio.Process
    sip_port: int
    ws_port: int
    health_port: int
    log: Path

    async def get(self, path: str) -> tuple[int, str]:
        return await http_get(self.health_port, path)

    def worker_pids(self, index: int) -> list[int]:
        """PIDs the supervisor logged for worker ``index``, oldest first."""
        pattern = re.compile(rf"worker {index} started \(pid (\d+)\)")
        return [int(pid) for pid in pattern.findall(self.log.read_text())]

    async def wait_health(self, status: int) -> str:
        """Poll ``/healthz`` until it answers ``status``; that answer's body."""
        with trio.fail_after(WAIT_TIMEOUT):
            while True:
                answered, body = await self.get("/healthz")
                if answered == status:
                    return body
                assert self.process.poll() is None, self.log.read_text()
                await trio.sleep(0.05)


def write_config(tmp_path: Path, port: int, ws_port: int, extra: str = "") -> Path:
    path = tmp_path / "edgeport.yaml"
    path.write_text(
        f"""kind: EdgePort
apiVersion: v2beta1
ref: edgeport-workers-test
spec:
  bindAddr: 127.0.0.1
  transport:
    - protocol: udp
      port: {port}
    - protocol: tcp
      port: {port}
    - protocol: ws
      port: {ws_port}
  methods: [REGISTER, INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE]
  processor:
    addr: builtin
{extra}"""
    )
    return path


@pytest.fixture
async def edgeport_workers(tmp_path: Path) -> AsyncIterator[Running]:
    async with run_workers(tmp_path) as running:
        yield running


@asynccontextmanager
async def run_workers(
    tmp_path: Path, *, spec: str = "", localnets: str = "127.0.0.0/8"
) -> AsyncIterator[Running]:
    """``edgeport --workers 2``; ``spec`` is more of the configuration's spec, indented."""
    sip_port = free_port()
    ws_port = free_port()
    health_port = free_port()
    config = write_config(tmp_path, sip_port, ws_port, spec)
    env = edgeport_env(
        LOCALNETS=localnets, ENABLE_HEALTHCHECKS="true", HEALTHCHECK_PORT=str(health_port)
    )
    log = tmp_path / "edgeport.log"
    process = await open_edgeport(config, log, env, "--workers", "2")
    running = Running(process, sip_port, ws_port, health_port, log)
    try:
        with trio.fail_after(START_TIMEOUT):
            await running.wait_health(200)
        yield running
    finally:
        await stop_process(process)


def register(user: str, port: int, n: int) -> bytes:
    return sip(
        f"""REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-wreg-{user}-{n};rport
Max-Forwards: 70
From: <sip:{user}@127.0.0.1>;tag=reg-{user}
To: <sip:{user}@127.0.0.1>
Call-ID: wreg-{user}-{n}
CSeq: {n} REGISTER
Contact: <sip:{user}@127.0.0.1:{port}>
Expires: 300
Content-Length: 0

"""
    )


async def call(caller: UdpUA, callee: UdpUA, n: int, attempt: int = 0) -> int:
    """caller{n} calls callee{n}: INVITE, 180, 200, ACK, BYE, 200. The INVITE's final status.

    ``attempt`` tells apart calls of the same pair (Call-ID, tags, branches).
    """
    k = f"{n}-{attempt}"
    call_id = f"wcall-{k}"
    await caller.send(
        sip(
            f"""INVITE sip:callee{n}@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bK-winv-{k};rport
Max-Forwards: 70
From: <sip:caller{n}@127.0.0.1>;tag=caller-{k}
To: <sip:callee{n}@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:caller{n}@127.0.0.1:{caller.port}>
Content-Length: 0

"""
        )
    )
    invite = await callee.receive_until(lambda m: m.method == "INVITE")
    await callee.send(response_to(invite, "180 Ringing", to_tag=f"callee-{k}"))
    await callee.send(
        response_to(
            invite,
            "200 OK",
            to_tag=f"callee-{k}",
            extra=f"Contact: <sip:callee{n}@127.0.0.1:{callee.port}>\n",
        )
    )
    final = await caller.receive_until(lambda m: m.status is not None and m.status >= 200)
    if final.status != 200:
        return final.status or 0
    routes = "".join(f"Route: {r}\n" for r in final.headers("Record-Route"))
    for method, cseq in (("ACK", 1), ("BYE", 2)):
        await caller.send(
            sip(
                f"""{method} sip:callee{n}@127.0.0.1:{callee.port} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bK-w{method}-{k};rport
{routes}Max-Forwards: 70
From: <sip:caller{n}@127.0.0.1>;tag=caller-{k}
To: {final.header("To")}
Call-ID: {call_id}
CSeq: {cseq} {method}
Content-Length: 0

"""
            )
        )
    bye = await callee.receive_until(lambda m: m.method == "BYE")
    await callee.send(response_to(bye, "200 OK", to_tag=f"callee-{k}"))
    bye_ok = await caller.receive_until(
        lambda m: m.status is not None and m.header("CSeq") == "2 BYE"
    )
    assert bye_ok.status == 200
    return 200


def samples(exposition: str, name: str) -> dict[str, float]:
    """``name``'s samples in an exposition: label text -> value."""
    found: dict[str, float] = {}
    for line in exposition.splitlines():
        match = re.fullmatch(rf"{name}(\{{.*\}})? (\S+)", line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


def check_exposition(exposition: str) -> None:
    """One HELP and one TYPE per family; every edgeport sample of a worker is labelled."""
    helps = re.findall(r"^# HELP (\S+)", exposition, re.M)
    types = re.findall(r"^# TYPE (\S+)", exposition, re.M)
    assert len(helps) == len(set(helps)), helps
    assert len(types) == len(set(types)), types
    for line in exposition.splitlines():
        if line.startswith("#") or line.startswith("edgeport_worker"):
            continue
        assert re.match(r'[a-z_]+\{worker="[01]"', line), line


async def test_calls_from_many_source_ports_all_complete_with_responses_handed_off(
    edgeport_workers: Running,
) -> None:
    server = ("127.0.0.1", edgeport_workers.sip_port)
    callers = [await UdpUA.open(server) for _ in range(CALLS)]
    callees = [await UdpUA.open(server) for _ in range(CALLS)]
    try:
        for n, (caller, callee) in enumerate(zip(callers, callees, strict=True)):
            for user, ua in ((f"caller{n}", caller), (f"callee{n}", callee)):
                await ua.send(register(user, ua.port, 1))
                assert (await ua.receive_until(lambda m: m.status is not None)).status == 200
        finals: list[int] = []

        async def one(n: int) -> None:
            finals.append(await call(callers[n], callees[n], n))

        async with trio.open_nursery() as nursery:
            for n in range(CALLS):
                nursery.start_soon(one, n)
        assert finals == [200] * CALLS
    finally:
        for ua in callers + callees:
            ua.close()
    status, exposition = await edgeport_workers.get("/metrics")
    assert status == 200
    check_exposition(exposition)
    received = samples(exposition, "edgeport_messages_received_total")
    # Both workers took messages: the kernel spread the source ports over them.
    assert any('worker="0"' in labels for labels in received)
    assert any('worker="1"' in labels for labels in received)
    handoffs = samples(exposition, "edgeport_handoffs_total")
    assert sum(value for labels, value in handoffs.items() if 'kind="response"' in labels) > 0
    # No response was lost between workers (an announcement at start-up may find a
    # sibling not listening yet: it says hello itself once it is).
    drops = samples(exposition, "edgeport_handoff_drops_total")
    assert sum(value for labels, value in drops.items() if 'kind="response"' in labels) == 0


async def test_a_killed_worker_is_restarted_and_registrations_go_on(
    edgeport_workers: Running,
) -> None:
    (first,) = edgeport_workers.worker_pids(0)
    os.kill(first, signal.SIGKILL)
    body = await edgeport_workers.wait_health(503)
    assert "worker 0 is not running" in body
    await edgeport_workers.wait_health(200)
    pids = edgeport_workers.worker_pids(0)
    assert len(pids) == 2
    assert pids[1] != first
    _, exposition = await edgeport_workers.get("/metrics")
    assert samples(exposition, "edgeport_worker_restarts_total") == {'{worker="0"}': 1.0}
    server = ("127.0.0.1", edgeport_workers.sip_port)
    uas = [await UdpUA.open(server) for _ in range(8)]
    try:
        for n, ua in enumerate(uas):
            await ua.send(register(f"after{n}", ua.port, 1))
            assert (await ua.receive_until(lambda m: m.status is not None)).status == 200
    finally:
        for ua in uas:
            ua.close()


async def test_the_supervisors_health_port_listens_only_on_spec_bind_addr(
    edgeport_workers: Running,
) -> None:
    # spec.bindAddr is 127.0.0.1: the supervisor's health port must not be
    # open on every interface (it listened on 0.0.0.0).
    assert listening_addresses(edgeport_workers.health_port) == {"127.0.0.1"}


async def test_sigterm_drains_every_worker_and_exits_0(edgeport_workers: Running) -> None:
    process = edgeport_workers.process
    process.send_signal(signal.SIGTERM)
    with trio.fail_after(WAIT_TIMEOUT):
        assert await process.wait() == 0
    log = edgeport_workers.log.read_text()
    assert "draining 2 workers" in log
    for index in (0, 1):
        (pid,) = edgeport_workers.worker_pids(index)
        assert f"worker {index} (pid {pid}) exited with 0" in log
    assert "Traceback" not in log


def process_ended(pid: int) -> bool:
    """``pid`` exited (gone, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def test_workers_drain_and_exit_when_their_supervisor_is_killed(
    edgeport_workers: Running,
) -> None:
    pids = [edgeport_workers.worker_pids(index)[0] for index in (0, 1)]
    edgeport_workers.process.kill()  # SIGKILL: the supervisor tells nobody
    await edgeport_workers.process.wait()
    with trio.fail_after(WAIT_TIMEOUT):
        while not all(process_ended(pid) for pid in pids):
            await trio.sleep(0.05)
    log = edgeport_workers.log.read_text()
    supervisor = edgeport_workers.process.pid
    assert log.count(f"the supervisor (pid {supervisor}) is gone: draining") == 2
    assert "Traceback" not in log


async def call_stream_callee(
    caller: UdpUA, browser: WsUA | TcpUA, n: int, user: str, contact: str
) -> None:
    """caller{n} calls ``user``, reachable only over the stream ``browser`` opened
    (Contact ``contact``); it answers 200; caller ACKs and hangs up; all arrive."""
    call_id = f"w{user}-{n}"
    await caller.send(
        sip(
            f"""INVITE sip:{user}@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bK-wwsinv-{n};rport
Max-Forwards: 70
From: <sip:caller{n}@127.0.0.1>;tag=wscaller-{n}
To: <sip:{user}@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:caller{n}@127.0.0.1:{caller.port}>
Content-Length: 0

"""
        )
    )
    invite = await browser.receive_until(lambda m: m.method == "INVITE")
    assert invite.header("Call-ID") == call_id
    await browser.send(
        response_to(
            invite,
            "200 OK",
            to_tag=f"browser-{n}",
            extra=f"Contact: <{contact}>\n",
        )
    )
    ok = await caller.receive_until(lambda m: m.status is not None and m.status >= 200)
    assert ok.status == 200
    routes = "".join(f"Route: {r}\n" for r in ok.headers("Record-Route"))
    for method, cseq in (("ACK", 1), ("BYE", 2)):
        await caller.send(
            sip(
                f"""{method} {contact} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bK-wws{method}-{n};rport
{routes}Max-Forwards: 70
From: <sip:caller{n}@127.0.0.1>;tag=wscaller-{n}
To: {ok.header("To")}
Call-ID: {call_id}
CSeq: {cseq} {method}
Content-Length: 0

"""
            )
        )
        got = await browser.receive_until(lambda m, method=method: m.method == method)
        assert got.header("Call-ID") == call_id
    await browser.send(response_to(got, "200 OK", to_tag=f"browser-{n}"))
    bye_ok = await caller.receive_until(
        lambda m: m.status is not None and m.header("CSeq") == "2 BYE"
    )
    assert bye_ok.status == 200


async def test_udp_callers_on_either_worker_reach_a_browser_held_by_one(
    edgeport_workers: Running,
) -> None:
    server = ("127.0.0.1", edgeport_workers.sip_port)
    async with trio_websocket.open_websocket_url(
        f"ws://127.0.0.1:{edgeport_workers.ws_port}/", subprotocols=["sip"]
    ) as ws:
        browser = WsUA(ws)
        await browser.send(
            sip(
                f"""REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/WS {BROWSER_HOST};branch=z9hG4bK-wwsreg
Max-Forwards: 70
From: <sip:browser@127.0.0.1>;tag=wwsreg
To: <sip:browser@127.0.0.1>
Call-ID: wws-register@test
CSeq: 1 REGISTER
Contact: <sip:browser@{BROWSER_HOST};transport=ws>
Expires: 600
Content-Length: 0

"""
            )
        )
        assert (await browser.receive()).status == 200
        callers = [await UdpUA.open(server) for _ in range(BROWSER_CALLERS)]
        try:
            for n, caller in enumerate(callers):
                contact = f"sip:browser@{BROWSER_HOST};transport=ws"
                await call_stream_callee(caller, browser, n, "browser", contact)
        finally:
            for caller in callers:
                caller.close()
    _, exposition = await edgeport_workers.get("/metrics")
    handoffs = samples(exposition, "edgeport_handoffs_total")
    # The worker without the browser's connection handed requests to the one with it,
    # and the browser's responses back.
    assert sum(value for labels, value in handoffs.items() if 'kind="send"' in labels) > 0
    assert sum(value for labels, value in handoffs.items() if 'kind="response"' in labels) > 0


async def test_a_port_in_use_stops_the_supervisor_with_exit_2(tmp_path: Path) -> None:
    sip_port = free_port()
    config = write_config(tmp_path, sip_port, free_port())
    env = {k: v for k, v in os.environ.items() if k not in {"CONFIG_PATH", "HOSTNAME", "WORKERS"}}
    env.update(LOCALNETS="127.0.0.0/8", PYTHONPATH=os.getcwd())
    taken = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await taken.bind(("127.0.0.1", sip_port))  # no SO_REUSEPORT: nobody may share it
    log = tmp_path / "edgeport.log"
    try:
        with log.open("wb") as sink:
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "edgeport", "--config", str(config), "--workers", "2"],
                stdout=sink,
                stderr=sink,
                env=env,
            )
        try:
            with trio.fail_after(START_TIMEOUT):
                assert await process.wait() == 2
        finally:
            await stop_process(process)
    finally:
        taken.close()
    text = log.read_text()
    assert f"unable to bind udp://127.0.0.1:{sip_port}: Address already in use" in text
    assert "could not start (exit 2): stopping" in text


async def test_calls_go_on_when_a_worker_is_killed_under_load(edgeport_workers: Running) -> None:
    server = ("127.0.0.1", edgeport_workers.sip_port)
    pairs = 6
    callers = [await UdpUA.open(server) for _ in range(pairs)]
    callees = [await UdpUA.open(server) for _ in range(pairs)]
    try:
        for n, (caller, callee) in enumerate(zip(callers, callees, strict=True)):
            for user, ua in ((f"caller{n}", caller), (f"callee{n}", callee)):
                await ua.send(register(user, ua.port, 1))
                assert (await ua.receive_until(lambda m: m.status is not None)).status == 200
        (first,) = edgeport_workers.worker_pids(0)
        completed_before_kill = 0

        async def load(n: int, stop: trio.Event) -> None:
            nonlocal completed_before_kill
            round_ = 0
            while not stop.is_set() and round_ < 200:
                round_ += 1
                with trio.move_on_after(3):  # a call of the killed worker is lost
                    if await call(callers[n], callees[n], n, round_) == 200:
                        completed_before_kill += 0 if killed.is_set() else 1

        stop, killed = trio.Event(), trio.Event()
        async with trio.open_nursery() as nursery:
            for n in range(pairs):
                nursery.start_soon(load, n, stop)
            with trio.fail_after(WAIT_TIMEOUT):
                while completed_before_kill < pairs:
                    await trio.sleep(0.05)
            os.kill(first, signal.SIGKILL)
            killed.set()
            await edgeport_workers.wait_health(503)
            await edgeport_workers.wait_health(200)
            stop.set()
        assert edgeport_workers.worker_pids(0)[-1] != first
        # The registrations outlived the worker (one registrar, in the supervisor), and
        # every pair calls again through both workers.
        for caller, callee in zip(callers, callees, strict=True):
            for _ in range(100):  # skip what the load left on the sockets
                with trio.move_on_after(0.2):
                    await caller.receive()
                    continue
                with trio.move_on_after(0.2):
                    await callee.receive()
                    continue
                break
        for n in range(pairs):
            assert await call(callers[n], callees[n], n, 1000) == 200
    finally:
        for ua in callers + callees:
            ua.close()


async def test_udp_callers_on_either_worker_reach_a_tcp_phone_held_by_one(
    edgeport_workers: Running,
) -> None:
    server = ("127.0.0.1", edgeport_workers.sip_port)
    phone = await TcpUA.open(server)
    try:
        await phone.send(
            sip(
                f"""REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/TCP 127.0.0.1:{phone.port};branch=z9hG4bK-wtcpreg
Max-Forwards: 70
From: <sip:phone@127.0.0.1>;tag=wtcpreg
To: <sip:phone@127.0.0.1>
Call-ID: wtcp-register@test
CSeq: 1 REGISTER
Contact: <sip:phone@127.0.0.1:{phone.port};transport=tcp>
Expires: 600
Content-Length: 0

"""
            )
        )
        assert (await phone.receive()).status == 200
        callers = [await UdpUA.open(server) for _ in range(BROWSER_CALLERS)]
        try:
            for n, caller in enumerate(callers):
                contact = f"sip:phone@127.0.0.1:{phone.port};transport=tcp"
                await call_stream_callee(caller, phone, n, "phone", contact)
        finally:
            for caller in callers:
                caller.close()
    finally:
        await phone.close()
    _, exposition = await edgeport_workers.get("/metrics")
    handoffs = samples(exposition, "edgeport_handoffs_total")
    # The worker without the phone's connection handed it the requests for the phone.
    assert sum(value for labels, value in handoffs.items() if 'kind="send"' in labels) > 0


HIJACKED_HOST = "h2j4k6m8n0p1.invalid"
MAX_ATTACKERS = 20  # WebSocket connections tried until both workers hold one


def options_claiming(contact: str, n: int) -> bytes:
    return sip(
        f"""OPTIONS sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/WS attacker{n}.invalid;branch=z9hG4bK-wattack-{n}
Max-Forwards: 70
From: <sip:mallory@127.0.0.1>;tag=wattack-{n}
To: <sip:mallory@127.0.0.1>
Call-ID: wattack-{n}@test
CSeq: 1 OPTIONS
Contact: <{contact}>
Content-Length: 0

"""
    )


async def test_websocket_alias_hijack_clients_on_either_worker_presenting_a_browsers_contact_get_none_of_its_calls(  # noqa: E501
    edgeport_workers: Running,
) -> None:
    server = ("127.0.0.1", edgeport_workers.sip_port)
    url = f"ws://127.0.0.1:{edgeport_workers.ws_port}/"
    contact = f"sip:victim@{HIJACKED_HOST};transport=ws"
    async with AsyncExitStack() as stack:
        browser = WsUA(
            await stack.enter_async_context(
                trio_websocket.open_websocket_url(url, subprotocols=["sip"])
            )
        )
        await browser.send(
            sip(
                f"""REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/WS {HIJACKED_HOST};branch=z9hG4bK-wvictimreg
Max-Forwards: 70
From: <sip:victim@127.0.0.1>;tag=wvictimreg
To: <sip:victim@127.0.0.1>
Call-ID: wvictim-register@test
CSeq: 1 REGISTER
Contact: <{contact}>
Expires: 600
Content-Length: 0

"""
            )
        )
        assert (await browser.receive()).status == 200
        # Attackers present the browser's Contact until both workers hold one: the
        # kernel spreads the connections, so some land on the worker without the browser.
        attackers: list[WsUA] = []
        for n in range(MAX_ATTACKERS):
            attacker = WsUA(
                await stack.enter_async_context(
                    trio_websocket.open_websocket_url(url, subprotocols=["sip"])
                )
            )
            attackers.append(attacker)
            await attacker.send(options_claiming(contact, n))
            assert (await attacker.receive()).status is not None
            _, exposition = await edgeport_workers.get("/metrics")
            connections = samples(exposition, "edgeport_active_connections")
            if all(connections.get(f'{{worker="{i}",transport="ws"}}', 0) > 0 for i in (0, 1)):
                break
        callers = [await UdpUA.open(server) for _ in range(BROWSER_CALLERS)]
        try:
            for n, caller in enumerate(callers):
                await call_stream_callee(caller, browser, 100 + n, "victim", contact)
        finally:
            for caller in callers:
                caller.close()
        for attacker in attackers:
            with trio.move_on_after(0.1):
                got = await attacker.receive()
                raise AssertionError(f"an attacker got:\n{got.text}")
    # Every claim was refused, on the browser's worker and on the other one.
    _, exposition = await edgeport_workers.get("/metrics")
    refused = samples(exposition, "edgeport_alias_claims_refused_total")
    assert sorted(refused) == ['{worker="0"}', '{worker="1"}'], refused
    assert sum(refused.values()) == len(attackers)


FLOOD_LIMIT = 30  # requests per source per window, for the whole edgeport
FLOOD_SLACK = 6  # answers past the limit allowed while the workers' counts cross
FLOOD_PORTS = 16  # source ports of one flooding address: the kernel spreads them
QUIET = 0.5  # seconds to listen for an answer that must not come
PROTECTION = f"""  protection:
    flood:
      requests: {FLOOD_LIMIT}
      window: 60
      banTime: 120
"""
CONNECTION_CAP = 2
CAPPED = f"""  protection:
    maxConnectionsPerSource: {CONNECTION_CAP}
"""
UNTRUSTED = "10.99.0.0/16"  # localnets: the 127.0.0.x test sources are not trusted
MAX_PHONES = 20  # connections from one address until both workers refused one


def options_to_edge(port: int, n: int, transport: str = "UDP") -> bytes:
    return sip(
        f"""OPTIONS sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bK-wflood-{port}-{n};rport
Max-Forwards: 70
From: <sip:flood@127.0.0.1>;tag=wflood-{n}
To: <sip:127.0.0.1>
Call-ID: wflood-{port}-{n}@test
CSeq: 1 OPTIONS
Content-Length: 0

"""
    )


async def udp_from(host: str) -> trio.socket.SocketType:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind((host, 0))
    return sock


async def count_answers(sock: trio.socket.SocketType, answers: list[int]) -> None:
    while True:
        data, _ = await sock.recvfrom(65535)
        if data.startswith(b"SIP/2.0 200 "):
            answers.append(1)


async def dropped_as_banned(running: Running) -> dict[str, float]:
    _, exposition = await running.get("/metrics")
    dropped = samples(exposition, "edgeport_dropped_messages_total")
    return {worker: dropped.get(f'{{worker="{worker}",reason="banned"}}', 0.0) for worker in "01"}


async def test_protection_is_per_worker_a_flood_over_many_source_ports_is_banned_at_the_limit(
    tmp_path: Path,
) -> None:
    async with run_workers(tmp_path, spec=PROTECTION, localnets=UNTRUSTED) as running:
        server = ("127.0.0.1", running.sip_port)
        sockets = [await udp_from("127.0.0.2") for _ in range(FLOOD_PORTS)]
        answers: list[int] = []
        with trio.fail_after(WAIT_TIMEOUT):
            async with trio.open_nursery() as nursery:
                for sock in sockets:
                    nursery.start_soon(count_answers, sock, answers)
                for n in range(3 * FLOOD_LIMIT):  # 100 a second, over both workers
                    sock = sockets[n % FLOOD_PORTS]
                    await sock.sendto(options_to_edge(sock.getsockname()[1], n), server)
                    await trio.sleep(0.01)
                await trio.sleep(QUIET)  # the last answers
                nursery.cancel_scope.cancel()
        # Not twice the limit: the workers counted the source together.
        assert FLOOD_LIMIT - 2 <= len(answers) <= FLOOD_LIMIT + FLOOD_SLACK, len(answers)
        banned = await dropped_as_banned(running)
        # Both dropped the rest.
        assert banned["0"] > 0, banned
        assert banned["1"] > 0, banned
        for sock in sockets:
            sock.close()


async def test_protection_is_per_worker_a_ban_reaches_the_worker_that_did_not_see_the_flood(
    tmp_path: Path,
) -> None:
    async with run_workers(tmp_path, spec=PROTECTION, localnets=UNTRUSTED) as running:
        server = ("127.0.0.1", running.sip_port)
        flooder = UdpUA(await udp_from("127.0.0.3"), server)  # one port: one worker
        with trio.fail_after(WAIT_TIMEOUT):
            for n in range(FLOOD_LIMIT):
                await flooder.send(options_to_edge(flooder.port, n))
                assert (await flooder.receive()).status == 200, n
            await flooder.send(options_to_edge(flooder.port, FLOOD_LIMIT))
            await flooder.nothing_within(QUIET)
        before = await dropped_as_banned(running)
        # The same address from other ports: some land on the other worker, which
        # never saw the flood. None is answered.
        others = [UdpUA(await udp_from("127.0.0.3"), server) for _ in range(FLOOD_PORTS)]
        for n, ua in enumerate(others):
            await ua.send(options_to_edge(ua.port, 1000 + n))
        for ua in others:
            await ua.nothing_within(0.05)
        with trio.fail_after(WAIT_TIMEOUT):
            while True:
                after = await dropped_as_banned(running)
                if sum(after.values()) - sum(before.values()) == FLOOD_PORTS:
                    break
                await trio.sleep(0.05)
        assert after["0"] > before["0"], (before, after)
        assert after["1"] > before["1"], (before, after)
        for ua in [flooder, *others]:
            ua.close()


async def tcp_ua_from(host: str, server: tuple[str, int]) -> TcpUA:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    await sock.bind((host, 0))
    await sock.connect(server)
    return TcpUA(trio.SocketStream(sock))


async def answers_options(ua: TcpUA, n: int) -> bool:
    """True when ``ua``'s connection answers an OPTIONS; False when edgeport closed it."""
    try:
        await ua.send(options_to_edge(ua.port, n, "TCP"))
        return (await ua.receive()).status == 200
    except (EOFError, trio.BrokenResourceError, trio.ClosedResourceError):
        return False


async def closed_over_the_cap(running: Running) -> dict[str, float]:
    _, exposition = await running.get("/metrics")
    closed = samples(exposition, "edgeport_protection_closed_connections_total")
    return {
        worker: closed.get(f'{{worker="{worker}",reason="per_source_limit"}}', 0.0)
        for worker in "01"
    }


async def test_protection_is_per_worker_the_per_source_connection_cap_holds_across_workers(
    tmp_path: Path,
) -> None:
    cap = CONNECTION_CAP
    async with run_workers(tmp_path, spec=CAPPED, localnets=UNTRUSTED) as running:
        server = ("127.0.0.1", running.sip_port)
        phones: list[TcpUA] = []
        alive: list[bool] = []
        with trio.fail_after(WAIT_TIMEOUT):
            # Connections from one address until both workers closed one over the cap
            # (the kernel spreads them over the workers).
            for n in range(MAX_PHONES):
                phone = await tcp_ua_from("127.0.0.4", server)
                phones.append(phone)
                alive.append(await answers_options(phone, n))
                closed = await closed_over_the_cap(running)
                if closed["0"] > 0 and closed["1"] > 0:
                    break
            assert alive[:cap] == [True] * cap
            assert closed["0"] > 0, closed
            assert closed["1"] > 0, closed
            # A connection admitted by a worker that had not yet heard of the others
            # is closed once it has: exactly the first ones stay.
            for round_ in range(100):
                alive = [
                    was and await answers_options(phone, 100 * round_ + n)
                    for n, (phone, was) in enumerate(zip(phones, alive, strict=True))
                ]
                if sum(alive) == cap:
                    break
                await trio.sleep(0.05)
        assert alive == [True] * cap + [False] * (len(phones) - cap)
        closed = await closed_over_the_cap(running)
        assert sum(closed.values()) == len(phones) - cap
        for phone in phones:
            await phone.close()
