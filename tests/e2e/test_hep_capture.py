"""A REGISTER through a running edgeport reaches a HEP collector as two packets."""

from __future__ import annotations

import trio

from edgeport.config import HepConfig
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address, make_config, start_edgeport
from tests.support.hep_collector import Collector, decode_with_hep_js
from tests.support.ua import TcpUA, UdpUA, sip


async def test_register_and_its_200_are_captured_with_their_addresses(
    nursery: trio.Nursery,
) -> None:
    collector = await Collector.open()
    config = make_config(hep=HepConfig(addr=collector.addr, agent_id=77))
    server = await start_edgeport(nursery, config)
    edge = address(server, Transport.UDP)
    alice = await UdpUA.open(edge)
    register = sip(
        f"""REGISTER sip:127.0.0.1:{edge[1]} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{alice.port};branch=z9hG4bK-hep-e2e;rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=hepe2e
To: <sip:alice@127.0.0.1>
Call-ID: hep-e2e@127.0.0.1
CSeq: 1 REGISTER
Contact: <sip:alice@127.0.0.1:{alice.port}>
Expires: 300
Content-Length: 0

"""
    )
    with trio.fail_after(20):
        await alice.send(register)
        ok = await alice.receive()
        assert ok.status == 200, ok.text
        packets = [await collector.receive(), await collector.receive()]
    collector.close()

    received, sent = decode_with_hep_js(packets)
    assert received is not None
    assert sent is not None
    assert received["payload"].encode() == register
    assert received["payload"].startswith("REGISTER ")
    assert sent["payload"].startswith("SIP/2.0 200 ")
    assert sent["payload"].encode() == ok.raw
    for decoded in (received, sent):
        assert decoded["rcinfo"]["protocol"] == 17
        assert decoded["rcinfo"]["captureId"] == 77
        assert decoded["rcinfo"]["correlation_id"] == "hep-e2e@127.0.0.1"
    alice_addr = ("127.0.0.1", alice.port)
    edge_addr = ("127.0.0.1", edge[1])
    info = received["rcinfo"]
    assert ((info["srcIp"], info["srcPort"]), (info["dstIp"], info["dstPort"])) == (
        alice_addr,
        edge_addr,
    )
    info = sent["rcinfo"]
    assert ((info["srcIp"], info["srcPort"]), (info["dstIp"], info["dstPort"])) == (
        edge_addr,
        alice_addr,
    )


async def test_a_register_over_tcp_is_captured_as_tcp_with_the_connections_ports(
    nursery: trio.Nursery,
) -> None:
    collector = await Collector.open()
    server = await start_edgeport(nursery, make_config(hep=HepConfig(addr=collector.addr)))
    edge = address(server, Transport.TCP)
    alice = await TcpUA.open(edge)
    register = sip(
        f"""REGISTER sip:127.0.0.1:{edge[1]};transport=tcp SIP/2.0
Via: SIP/2.0/TCP 127.0.0.1:{alice.port};branch=z9hG4bK-hep-tcp
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=heptcp
To: <sip:alice@127.0.0.1>
Call-ID: hep-tcp@127.0.0.1
CSeq: 1 REGISTER
Contact: <sip:alice@127.0.0.1:{alice.port};transport=tcp>
Expires: 300
Content-Length: 0

"""
    )
    with trio.fail_after(20):
        await alice.send(register)
        ok = await alice.receive()
        assert ok.status == 200, ok.text
        packets = [await collector.receive(), await collector.receive()]
    alice_addr = ("127.0.0.1", alice.port)
    await alice.close()
    collector.close()

    received, sent = decode_with_hep_js(packets)
    assert received is not None
    assert sent is not None
    assert received["payload"].encode() == register
    assert sent["payload"].encode() == ok.raw
    edge_addr = ("127.0.0.1", edge[1])
    for decoded, src, dst in ((received, alice_addr, edge_addr), (sent, edge_addr, alice_addr)):
        info = decoded["rcinfo"]
        assert info["protocol"] == 6
        assert info["correlation_id"] == "hep-tcp@127.0.0.1"
        assert ((info["srcIp"], info["srcPort"]), (info["dstIp"], info["dstPort"])) == (src, dst)
