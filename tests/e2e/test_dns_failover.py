"""Calls to next hops named in DNS (RFC 3263): a real dnsmasq, a Routr-like processor,
edgeport, and UAs on 127.0.0.1; failover from a target that fails to the next one."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from edgeport.config import DnsConfig, ProcessorConfig
from edgeport.metrics import METRICS
from edgeport.server import RunningServer
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address, make_config, start_edgeport
from tests.e2e.flows import response_to
from tests.support.dnsmasq import RunningDnsmasq, run_dnsmasq
from tests.support.grpc_processor import ScriptableProcessor, start_processor
from tests.support.routr_like import RoutrLikeProcessor
from tests.support.ua import UdpUA, sip

pytestmark = pytest.mark.slow


def request(
    method: str, ua: UdpUA, target: str, branch: str, *, headers: str = "", body: str = ""
) -> bytes:
    """A request from ``ua`` to ``target`` in the call ``<branch>@dns`` (its only CSeq)."""
    return sip(
        f"""{method} {target} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua.port};branch={branch};rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=a1
To: <sip:bob@trunk.test>
Call-ID: {branch}@dns
CSeq: 1 {method}
{headers}Content-Length: {len(body)}

{body}"""
    )


def message(ua: UdpUA, target: str, branch: str) -> bytes:
    return request("MESSAGE", ua, target, branch, headers="Content-Type: text/plain\n", body="hi")


def invite(ua: UdpUA, target: str, branch: str) -> bytes:
    return request(
        "INVITE", ua, target, branch, headers=f"Contact: <sip:alice@127.0.0.1:{ua.port}>\n"
    )


def cancel(ua: UdpUA, target: str, branch: str) -> bytes:
    return request("CANCEL", ua, target, branch)


async def closed_port(kind: int) -> int:
    probe = trio.socket.socket(type=kind)
    await probe.bind(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port


async def dns_edge(
    nursery: trio.Nursery, dns: RunningDnsmasq, *, failover_timeout: float = 4.0
) -> RunningServer:
    processor = ScriptableProcessor(reply=RoutrLikeProcessor())
    running = await start_processor(nursery, processor)
    config = make_config(
        processor=ProcessorConfig(running.addr),
        external_addrs=("127.0.0.1",),
        dns=DnsConfig(servers=(dns.server,), timeout=3.0, failover_timeout=failover_timeout),
    )
    return await start_edgeport(nursery, config)


def trunk(srv: Sequence[str], naptr: Sequence[str] = ()) -> list[str]:
    return ["host-record=pbx.trunk.test,127.0.0.1", *naptr, *srv]


@asynccontextmanager
async def two_udp_targets(
    nursery: trio.Nursery, tmp_path: Path, *, failover_timeout: float = 4.0
) -> AsyncIterator[tuple[UdpUA, UdpUA, UdpUA]]:
    """edgeport in front of ``trunk.test``: two UDP targets by SRV priority, 10 then 20.

    Yields the caller and the two targets, each a UA whose server is edgeport."""
    first = await UdpUA.open(("127.0.0.1", 1))  # its server is set once edgeport runs
    second = await UdpUA.open(("127.0.0.1", 1))
    records = trunk(
        srv=[
            f"srv-host=_sip._udp.trunk.test,pbx.trunk.test,{first.port},10,10",
            f"srv-host=_sip._udp.trunk.test,pbx.trunk.test,{second.port},20,10",
        ]
    )
    with run_dnsmasq(tmp_path, records) as dns:
        server = await dns_edge(nursery, dns, failover_timeout=failover_timeout)
        edge = address(server, Transport.UDP)
        first.server = second.server = edge
        caller = await UdpUA.open(edge)
        yield caller, first, second


async def test_a_call_to_a_trunk_whose_first_target_is_down_reaches_the_second(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    down = await closed_port(trio.socket.SOCK_STREAM)
    callee = await UdpUA.open(("127.0.0.1", 1))  # its server is set once edgeport runs
    records = trunk(
        # NAPTR prefers TCP (the URI names no transport): the TCP target refuses.
        naptr=[
            'naptr-record=trunk.test,10,50,"S","SIP+D2T","","_sip._tcp.trunk.test"',
            'naptr-record=trunk.test,20,50,"S","SIP+D2U","","_sip._udp.trunk.test"',
        ],
        srv=[
            f"srv-host=_sip._tcp.trunk.test,pbx.trunk.test,{down},10,10",
            f"srv-host=_sip._udp.trunk.test,pbx.trunk.test,{callee.port},10,10",
        ],
    )
    failovers = METRICS.dns_failovers.labels().value
    with run_dnsmasq(tmp_path, records) as dns:
        server = await dns_edge(nursery, dns)
        edge = address(server, Transport.UDP)
        callee.server = edge
        caller = await UdpUA.open(edge)
        await caller.send(message(caller, "sip:bob@trunk.test", "z9hG4bK-down1"))
        received = await callee.receive()
        assert received.first_line == "MESSAGE sip:bob@trunk.test SIP/2.0"
        # Sent over UDP this time: the top Via says so (it said TCP for the first target).
        assert received.headers("Via")[0].startswith(f"SIP/2.0/UDP 127.0.0.1:{edge[1]};")
        await callee.send(response_to(received, "200 OK", to_tag="b1"))
        answer = await caller.receive()
    assert answer.status == 200, answer.text
    assert answer.header("To").endswith("tag=b1")  # the second target's answer
    assert METRICS.dns_failovers.labels().value == failovers + 1
    trace = [r.getMessage() for r in caplog.records if "next hop" in r.getMessage()]
    assert trace == [
        f"z9hG4bK-down1@dns: next hop tcp://127.0.0.1:{down} (pbx.trunk.test) failed "
        f"(transport error); trying udp://127.0.0.1:{callee.port} (pbx.trunk.test)"
    ]
    nursery.cancel_scope.cancel()


async def test_a_503_from_the_first_target_fails_over_to_the_second(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async with two_udp_targets(nursery, tmp_path) as (caller, first, second):
        await caller.send(message(caller, "sip:bob@trunk.test;transport=udp", "z9hG4bK-503"))
        refused = await first.receive()
        await first.send(response_to(refused, "503 Service Unavailable", to_tag="f1"))
        received = await second.receive()
        # A new client transaction: a new branch on edgeport's Via.
        assert received.headers("Via")[0] != refused.headers("Via")[0]
        await second.send(response_to(received, "200 OK", to_tag="s1"))
        answer = await caller.receive()
        assert answer.status == 200, answer.text
        assert answer.header("To").endswith("tag=s1")
        await caller.nothing_within(0.3)  # the 503 never reaches the caller
    nursery.cancel_scope.cancel()


async def test_a_silent_first_target_is_given_up_after_the_failover_timeout(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async with two_udp_targets(nursery, tmp_path, failover_timeout=0.5) as (
        caller,
        silent,
        second,
    ):
        await caller.send(invite(caller, "sip:bob@trunk.test", "z9hG4bK-silent"))
        assert (await caller.receive()).status == 100
        late = await silent.receive()  # it says nothing
        received = await second.receive()
        assert received.first_line.startswith("INVITE sip:bob@trunk.test")
        await second.send(response_to(received, "180 Ringing", to_tag="s1"))
        assert (await caller.receive()).status == 180
        # The first target wakes up and rings: edgeport cancels it, nobody hears it.
        await silent.send(response_to(late, "180 Ringing", to_tag="late"))
        cancelled = await silent.receive_until(lambda m: m.method == "CANCEL")
        assert cancelled.header("Call-ID") == "z9hG4bK-silent@dns"
        await caller.nothing_within(0.3)
    nursery.cancel_scope.cancel()


async def test_a_cancel_during_failover_leaves_no_branch_ringing(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async with two_udp_targets(nursery, tmp_path, failover_timeout=0.5) as (
        caller,
        silent,
        second,
    ):
        await caller.send(invite(caller, "sip:bob@trunk.test", "z9hG4bK-cxl"))
        assert (await caller.receive()).status == 100
        await silent.receive()  # the INVITE reached the first target, which stays silent
        await caller.send(cancel(caller, "sip:bob@trunk.test", "z9hG4bK-cxl"))
        statuses = {(await caller.receive()).status, (await caller.receive()).status}
        assert statuses == {200, 487}
        await second.nothing_within(1.0)  # past the failover timeout: no INVITE there
    nursery.cancel_scope.cancel()


async def test_an_unresolvable_trunk_gets_503_at_once(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with run_dnsmasq(tmp_path, trunk(srv=[])) as dns:
        server = await dns_edge(nursery, dns)
        edge = address(server, Transport.UDP)
        caller = await UdpUA.open(edge)
        await caller.send(message(caller, "sip:bob@nowhere.test", "z9hG4bK-nx"))
        answer = await caller.receive(timeout=2.0)
    assert answer.status == 503, answer.text
    assert answer.header("Retry-After")
    nursery.cancel_scope.cancel()
