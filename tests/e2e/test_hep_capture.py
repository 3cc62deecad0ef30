"""A REGISTER through a running edgeport reaches a HEP collector as two packets."""

from __future__ import annotations

import trio

from edgeport.config import HepConfig
from edgeport.metrics import METRICS
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


def _message(edge_port: int, alice_port: int, call_id: str, body: bytes) -> bytes:
    head = sip(
        f"""MESSAGE sip:bob@127.0.0.1:{edge_port};transport=tcp SIP/2.0
Via: SIP/2.0/TCP 127.0.0.1:{alice_port};branch=z9hG4bK-{call_id}
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=big
To: <sip:bob@127.0.0.1>
Call-ID: {call_id}@127.0.0.1
CSeq: 1 MESSAGE
Content-Type: text/plain
Content-Length: {len(body)}

"""
    )
    return head + body


async def test_oversized_stream_message_with_hep_capture_does_not_end_edgeport(
    nursery: trio.Nursery,
) -> None:
    # A 70 KB MESSAGE over TCP is a valid SIP message (under the 1 MiB limit)
    # whose copy cannot fit one HEP packet (16-bit length fields): the copy is
    # dropped and counted, the message is still answered, and edgeport goes
    # on serving and capturing.
    collector = await Collector.open()
    server = await start_edgeport(nursery, make_config(hep=HepConfig(addr=collector.addr)))
    dropped_before = _metric("edgeport_hep_dropped_total")
    edge = address(server, Transport.TCP)
    alice = await TcpUA.open(edge)
    big = _message(edge[1], alice.port, "hep-big", b"x" * 70_000)
    assert len(big) > 70_000
    with trio.fail_after(20):
        await alice.send(big)
        answer = await alice.receive_until(lambda m: m.status is not None and m.status >= 200)
        assert answer.header("Call-ID") == "hep-big@127.0.0.1"
        # The answer to the big MESSAGE reaches the collector; the MESSAGE does not.
        first = await collector.receive()

        # Another request afterwards: edgeport still serves, and still captures.
        small = _message(edge[1], alice.port, "hep-small", b"hello")
        await alice.send(small)
        again = await alice.receive_until(lambda m: m.status is not None and m.status >= 200)
        assert again.header("Call-ID") == "hep-small@127.0.0.1"
        packets = [first, await collector.receive(), await collector.receive()]
    await alice.close()
    collector.close()

    assert _metric("edgeport_hep_dropped_total") == dropped_before + 1
    payloads = [decoded["payload"] for decoded in decode_with_hep_js(packets) if decoded]
    assert len(payloads) == 3
    assert payloads[0].startswith(f"SIP/2.0 {answer.status} ")
    assert "Call-ID: hep-big@127.0.0.1" in payloads[0]
    assert payloads[1].encode() == small
    assert payloads[2].encode() == again.raw


def _metric(name: str) -> float:
    for line in METRICS.render().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0
