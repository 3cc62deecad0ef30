"""The built-in processor in a real edgeport refuses to relay, and keeps its answers small.

The EdgePort's localnets here are 192.0.2.1/32, so 127.0.0.1 (where every
socket of the test lives) is outside the networks the built-in processor
relays to: the TCP listener the attacker points at stands for a host on an
internal network that edgeport must not be made to reach. Registered user
agents and static peers must still be reached.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from edgeport.server import RunningServer
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address, make_config, start_edgeport
from tests.e2e.flows import call_and_hang_up, register, register_both, response_to
from tests.support.ua import TcpUA, UdpUA, sip

DEADLINE = 20  # seconds for one whole flow
OUTSIDE_LOCALNETS = ("192.0.2.1/32",)  # 127.0.0.1 is not inside
CARRIER_NUMBER = "2000"
DATAGRAM_BUDGET = 1300  # bytes: RFC 3261 §18.1.1, a path of unknown MTU
LONG_CONTACT = 500  # bytes of Contact URI: long, but allowed


@pytest.fixture
def victim() -> Iterator[socket.socket]:
    """A TCP listener the attacker names: it must never be connected to."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        yield listener


def assert_never_connected(listener: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        listener.accept()


async def start(nursery: trio.Nursery, *, peers: Path | None = None) -> RunningServer:
    overrides: dict[str, object] = {"localnets": OUTSIDE_LOCALNETS}
    if peers is not None:
        from edgeport.config import BuiltinConfig

        overrides["builtin"] = BuiltinConfig(peers=str(peers))
    return await start_edgeport(nursery, make_config(**overrides))


async def final_answer(ua: UdpUA) -> int:
    answer = await ua.receive_until(lambda m: m.status is not None and m.status >= 200)
    return answer.status or 0


async def ping(ua: UdpUA, edge_port: int) -> None:
    """An OPTIONS edgeport answers itself: everything sent before it has been handled."""
    await ua.send(
        sip(
            f"""OPTIONS sip:127.0.0.1:{edge_port} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua.port};branch=z9hG4bK-ping;rport
Max-Forwards: 70
From: <sip:probe@127.0.0.1>;tag=p1
To: <sip:127.0.0.1:{edge_port}>
Call-ID: ping@test
CSeq: 1 OPTIONS
Content-Length: 0

"""
        )
    )
    assert await final_answer(ua) == 200


def request_to(
    method: str,
    target: str,
    ua: UdpUA,
    *,
    call_id: str,
    to_tag: str = "",
    route: str = "",
) -> bytes:
    to = f"<{target}>" + (f";tag={to_tag}" if to_tag else "")
    return sip(
        f"""{method} {target} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua.port};branch=z9hG4bK-{call_id};rport
{route}Max-Forwards: 70
From: <sip:mallory@127.0.0.1>;tag=m1
To: {to}
Call-ID: {call_id}
CSeq: 1 {method}
Contact: <sip:mallory@127.0.0.1:{ua.port}>
Content-Length: 0

"""
    )


# -- the open relay ----------------------------------------------------------------


async def test_open_relay_invite_to_a_tcp_port_gets_403_and_no_connection(
    nursery: trio.Nursery, victim: socket.socket
) -> None:
    server = await start(nursery)
    edge = address(server, Transport.UDP)
    mallory = await UdpUA.open(edge)
    target = f"sip:x@127.0.0.1:{victim.getsockname()[1]};transport=tcp"
    with trio.fail_after(DEADLINE):
        await mallory.send(request_to("INVITE", target, mallory, call_id="scan-1"))
        refused = await mallory.receive_until(lambda m: m.status is not None and m.status >= 200)
        assert refused.first_line == "SIP/2.0 403 Not Relaying"
        await ping(mallory, edge[1])
    assert_never_connected(victim)


async def test_open_relay_preloaded_route_to_a_tcp_port_gets_403_and_no_connection(
    nursery: trio.Nursery, victim: socket.socket
) -> None:
    server = await start(nursery)
    edge = address(server, Transport.UDP)
    mallory = await UdpUA.open(edge)
    route = f"Route: <sip:127.0.0.1:{victim.getsockname()[1]};transport=tcp;lr>\n"
    with trio.fail_after(DEADLINE):
        await mallory.send(
            request_to(
                "INVITE", f"sip:bob@127.0.0.1:{edge[1]}", mallory, call_id="scan-2", route=route
            )
        )
        assert await final_answer(mallory) == 403
        await ping(mallory, edge[1])
    assert_never_connected(victim)


async def test_open_relay_to_tag_gets_no_relaying_either(
    nursery: trio.Nursery, victim: socket.socket
) -> None:
    server = await start(nursery)
    edge = address(server, Transport.UDP)
    mallory = await UdpUA.open(edge)
    target = f"sip:x@127.0.0.1:{victim.getsockname()[1]};transport=tcp"
    with trio.fail_after(DEADLINE):
        for method in ("BYE", "INVITE"):
            await mallory.send(
                request_to(method, target, mallory, call_id=f"scan-{method}", to_tag="t1")
            )
            assert await final_answer(mallory) == 403, method
        await ping(mallory, edge[1])
    assert_never_connected(victim)


async def test_call_between_two_registered_user_agents_still_completes(
    nursery: trio.Nursery,
) -> None:
    server = await start(nursery)
    edge = address(server, Transport.UDP)
    alice, bob = await UdpUA.open(edge), await UdpUA.open(edge)
    with trio.fail_after(DEADLINE):
        await register_both(alice, bob)
        assert await call_and_hang_up(alice, bob, call_id="call-ab") == 200


async def test_call_to_a_static_peer_completes_and_reaches_its_media_gateway(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    carrier = await UdpUA.open(("127.0.0.1", 0))
    gateway = await UdpUA.open(("127.0.0.1", 0))  # answers for the carrier, on another port
    peers = tmp_path / "peers.yaml"
    peers.write_text(
        f'peers:\n  - user: "{CARRIER_NUMBER}"\n    host: 127.0.0.1\n    port: {carrier.port}\n'
    )
    server = await start(nursery, peers=peers)
    edge = address(server, Transport.UDP)
    alice = await UdpUA.open(edge)
    with trio.fail_after(DEADLINE):
        await alice.send(register("alice", alice.port, call_id="reg-alice"))
        assert (await alice.receive()).status == 200
        await alice.send(
            sip(
                f"""INVITE sip:{CARRIER_NUMBER}@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{alice.port};branch=z9hG4bK-inv-pstn;rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=alice-pstn
To: <sip:{CARRIER_NUMBER}@127.0.0.1>
Call-ID: call-pstn
CSeq: 1 INVITE
Contact: <sip:alice@127.0.0.1:{alice.port}>
Content-Length: 0

"""
            )
        )
        incoming = await carrier.receive_until(lambda m: m.method == "INVITE")
        assert incoming.first_line == (
            f"INVITE sip:{CARRIER_NUMBER}@127.0.0.1:{carrier.port} SIP/2.0"
        )
        contact = f"Contact: <sip:gw@127.0.0.1:{gateway.port}>\n"
        await carrier.send(response_to(incoming, "200 OK", to_tag="pstn", extra=contact), to=edge)
        ok = await alice.receive_until(lambda m: m.status == 200)
        routes = "".join(f"Route: {r}\n" for r in ok.headers("Record-Route"))
        for method, cseq in (("ACK", 1), ("BYE", 2)):
            await alice.send(
                sip(
                    f"""{method} sip:gw@127.0.0.1:{gateway.port} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{alice.port};branch=z9hG4bK-{method}-pstn;rport
{routes}Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=alice-pstn
To: {ok.header("To")}
Call-ID: call-pstn
CSeq: {cseq} {method}
Content-Length: 0

"""
                )
            )
        assert (await gateway.receive_until(lambda m: m.method == "ACK")).header("CSeq") == "1 ACK"
        bye = await gateway.receive_until(lambda m: m.method == "BYE")
        await gateway.send(response_to(bye, "200 OK", to_tag="pstn"), to=edge)
        bye_ok = await alice.receive_until(lambda m: "BYE" in m.header("CSeq"))
        assert bye_ok.status == 200


# -- reflection ------------------------------------------------------------------------


def long_contact_register(port: int, index: int, uri_bytes: int) -> bytes:
    """A REGISTER whose Contact URI ``sip:<user>@127.0.0.1:<port>`` is ``uri_bytes`` long."""
    prefix = f"d{index}-"
    user = prefix + "x" * (uri_bytes - len(f"sip:@127.0.0.1:{port}") - len(prefix))
    return sip(
        f"""REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-reg-long-{index};rport
Max-Forwards: 70
From: <sip:carol@127.0.0.1>;tag=reg-long
To: <sip:carol@127.0.0.1>
Call-ID: reg-long@test
CSeq: {index + 1} REGISTER
Contact: <sip:{user}@127.0.0.1:{port}>
Expires: 300
Content-Length: 0

"""
    )


def query_register(port: int, transport: str = "UDP") -> bytes:
    return sip(
        f"""REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bK-query-{transport};rport
Max-Forwards: 70
From: <sip:carol@127.0.0.1>;tag=query
To: <sip:carol@127.0.0.1>
Call-ID: query-{transport}@test
CSeq: 1 REGISTER
Content-Length: 0

"""
    )


async def test_reflection_query_register_over_udp_is_answered_within_one_small_datagram(
    nursery: trio.Nursery,
) -> None:
    server = await start(nursery)
    ua = await UdpUA.open(address(server, Transport.UDP))
    with trio.fail_after(DEADLINE):
        for index in range(10):
            await ua.send(long_contact_register(ua.port, index, LONG_CONTACT))
            answer = await ua.receive_until(lambda m: m.status is not None and m.status >= 200)
            assert answer.status == 200, answer.first_line
            # The binding just registered is always in the answer.
            assert f"sip:d{index}-" in answer.headers("Contact")[0]
            assert len(answer.raw) <= DATAGRAM_BUDGET
        query = query_register(ua.port)
        await ua.send(query)
        answer = await ua.receive_until(lambda m: m.status is not None and m.status >= 200)
    assert answer.status == 200
    assert 1 <= len(answer.headers("Contact")) < 10
    assert len(answer.raw) <= DATAGRAM_BUDGET
    assert len(answer.raw) <= 5 * len(query)


async def test_reflection_query_register_over_tcp_lists_every_binding(
    nursery: trio.Nursery,
) -> None:
    server = await start(nursery)
    ua = await UdpUA.open(address(server, Transport.UDP))
    with trio.fail_after(DEADLINE):
        for index in range(10):
            await ua.send(long_contact_register(ua.port, index, LONG_CONTACT))
            answer = await ua.receive_until(lambda m: m.status is not None and m.status >= 200)
            assert answer.status == 200
        tcp = await TcpUA.open(address(server, Transport.TCP))
        await tcp.send(query_register(tcp.port, "TCP"))
        answer = await tcp.receive_until(lambda m: m.status is not None and m.status >= 200)
        await tcp.close()
    assert answer.status == 200
    assert len(answer.headers("Contact")) == 10


async def test_reflection_register_with_an_over_long_contact_is_refused(
    nursery: trio.Nursery,
) -> None:
    server = await start(nursery)
    ua = await UdpUA.open(address(server, Transport.UDP))
    with trio.fail_after(DEADLINE):
        await ua.send(long_contact_register(ua.port, 0, 5500))
        refused = await ua.receive_until(lambda m: m.status is not None and m.status >= 200)
        assert refused.first_line == "SIP/2.0 403 Contact Too Long"
        await ua.send(query_register(ua.port))
        answer = await ua.receive_until(lambda m: m.status is not None and m.status >= 200)
    assert answer.status == 200
    assert answer.headers("Contact") == []
