"""The HEP sender: real UDP to a collector on 127.0.0.1, packets read by sipcapture's hep-js."""

from __future__ import annotations

import logging
import time

import pytest
import trio

from edgeport.capture.sender import HepCapture
from edgeport.config import HepConfig
from edgeport.metrics import METRICS
from edgeport.sip.transport import Transport
from edgeport.transports.base import InboundMessage, Peer
from edgeport.transports.stream import StreamConnection
from edgeport.transports.udp import DatagramSocket
from tests.support.hep_collector import Collector, decode_with_hep_js

REGISTER = (
    b"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-hep-1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:alice@127.0.0.1>;tag=h1\r\n"
    b"To: <sip:alice@127.0.0.1>\r\n"
    b"Call-ID: hep-reg-1@127.0.0.1\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sip:alice@127.0.0.1:5090>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-hep-1;rport=5090;received=127.0.0.1\r\n"
    b"From: <sip:alice@127.0.0.1>;tag=h1\r\n"
    b"To: <sip:alice@127.0.0.1>;tag=e1\r\n"
    b"Call-ID: hep-reg-1@127.0.0.1\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
PEER = Peer(Transport.UDP, "127.0.0.1", 5090)
LOCAL = Peer(Transport.UDP, "127.0.0.1", 5060)


def metric(name: str) -> float:
    for line in METRICS.render().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def inbound(data: bytes = REGISTER, peer: Peer = PEER, local: Peer = LOCAL) -> InboundMessage:
    return InboundMessage(data, peer, None, local, trio.current_time())


async def test_hep_js_reads_every_chunk_of_a_received_and_a_sent_message() -> None:
    collector = await Collector.open()
    capture = HepCapture(HepConfig(addr=collector.addr, agent_id=2001, password="homer-pass"))
    sent_before = metric("edgeport_hep_sent_total")
    before = time.time()
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    udp = DatagramSocket(sock)
    local = Peer(Transport.UDP, "127.0.0.1", sock.getsockname()[1])
    async with trio.open_nursery() as nursery:
        await nursery.start(capture.serve)
        capture.received(inbound(local=local))
        capture.sent_datagram(OK, udp, "127.0.0.1", 5090)
        with trio.fail_after(10):
            packets = [await collector.receive(), await collector.receive()]
        nursery.cancel_scope.cancel()
    after = time.time()
    collector.close()
    udp.close()
    sock.close()
    assert capture.sent == 2
    assert metric("edgeport_hep_sent_total") == sent_before + 2

    received, sent = decode_with_hep_js(packets)
    assert received is not None
    assert sent is not None
    for decoded, payload in ((received, REGISTER), (sent, OK)):
        info = decoded["rcinfo"]
        assert info["protocolFamily"] == 2
        assert info["protocol"] == 17
        assert info["payloadType"] == 1
        assert info["captureId"] == 2001
        assert info["capturePass"] == "homer-pass"
        assert info["correlation_id"] == "hep-reg-1@127.0.0.1"
        stamp = info["timeSeconds"] + info["timeUseconds"] / 1e6
        assert before - 1e-6 <= stamp <= after + 1e-6
        assert 0 <= info["timeUseconds"] < 1_000_000
        assert decoded["payload"].encode() == payload
    assert (received["rcinfo"]["srcIp"], received["rcinfo"]["srcPort"]) == ("127.0.0.1", 5090)
    assert (received["rcinfo"]["dstIp"], received["rcinfo"]["dstPort"]) == ("127.0.0.1", local.port)
    assert (sent["rcinfo"]["srcIp"], sent["rcinfo"]["srcPort"]) == ("127.0.0.1", local.port)
    assert (sent["rcinfo"]["dstIp"], sent["rcinfo"]["dstPort"]) == ("127.0.0.1", 5090)


async def test_a_stream_connection_shows_its_sockets_own_addresses() -> None:
    # An outbound connection leaves from an ephemeral port, not the listening
    # point's; an inbound one arrives on the listener's port at the address
    # the client used, even when the listener is bound to 0.0.0.0.
    collector = await Collector.open()
    capture = HepCapture(HepConfig(addr=collector.addr))
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    server_port = listener.socket.getsockname()[1]
    client_stream = await trio.open_tcp_stream("127.0.0.1", server_port)
    server_stream = await listener.accept()
    client_port = client_stream.socket.getsockname()[1]
    outbound = StreamConnection(
        "tcp-1",
        Transport.TCP,
        client_stream,
        Peer(Transport.TCP, "127.0.0.1", server_port),
        Peer(Transport.TCP, "0.0.0.0", 5060),  # the listening point
        outbound=True,
    )
    inbound_conn = StreamConnection(
        "tcp-2",
        Transport.TCP,
        server_stream,
        Peer(Transport.TCP, "127.0.0.1", client_port),
        Peer(Transport.TCP, "0.0.0.0", server_port),
        outbound=False,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(capture.serve)
        capture.sent_on(OK, outbound)
        capture.received(
            InboundMessage(REGISTER, inbound_conn.peer, inbound_conn, inbound_conn.local, 0.0)
        )
        with trio.fail_after(10):
            packets = [await collector.receive(), await collector.receive()]
        nursery.cancel_scope.cancel()
    collector.close()
    for stream in (client_stream, server_stream, listener):
        await stream.aclose()
    sent, received = decode_with_hep_js(packets)
    assert sent is not None
    assert received is not None
    assert sent["rcinfo"]["protocol"] == 6
    assert (sent["rcinfo"]["srcIp"], sent["rcinfo"]["srcPort"]) == ("127.0.0.1", client_port)
    assert (sent["rcinfo"]["dstIp"], sent["rcinfo"]["dstPort"]) == ("127.0.0.1", server_port)
    assert (received["rcinfo"]["srcIp"], received["rcinfo"]["srcPort"]) == (
        "127.0.0.1",
        client_port,
    )
    assert (received["rcinfo"]["dstIp"], received["rcinfo"]["dstPort"]) == (
        "127.0.0.1",
        server_port,
    )


async def test_a_stream_message_is_tcp_and_a_wildcard_listener_shows_the_routed_address() -> None:
    collector = await Collector.open()
    capture = HepCapture(HepConfig(addr=collector.addr))
    async with trio.open_nursery() as nursery:
        await nursery.start(capture.serve)
        capture.received(
            inbound(
                peer=Peer(Transport.TLS, "127.0.0.1", 40000),
                local=Peer(Transport.TLS, "0.0.0.0", 5061),
            )
        )
        with trio.fail_after(10):
            packet = await collector.receive()
        nursery.cancel_scope.cancel()
    collector.close()
    (decoded,) = decode_with_hep_js([packet])
    assert decoded is not None
    info = decoded["rcinfo"]
    assert info["protocol"] == 6
    assert (info["dstIp"], info["dstPort"]) == ("127.0.0.1", 5061)
    assert "capturePass" not in info
    assert info["captureId"] == 1


async def test_the_queue_is_bounded_and_overflow_is_counted() -> None:
    collector = await Collector.open()
    capture = HepCapture(HepConfig(addr=collector.addr), queue_size=3)
    dropped_before = metric("edgeport_hep_dropped_total")
    for _ in range(5):  # the sender is not running yet: nothing leaves the queue
        capture.received(inbound())
    assert capture.dropped == 2
    assert metric("edgeport_hep_dropped_total") == dropped_before + 2
    async with trio.open_nursery() as nursery:
        await nursery.start(capture.serve)
        with trio.fail_after(10):
            packets = [await collector.receive() for _ in range(3)]
        nursery.cancel_scope.cancel()
    collector.close()
    assert capture.sent == 3
    assert all(p is not None for p in decode_with_hep_js(packets))


async def test_a_collector_that_is_down_costs_dropped_copies_and_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = await Collector.open()
    addr = gone.addr
    gone.close()  # nothing listens there: the kernel answers port unreachable
    capture = HepCapture(HepConfig(addr=addr))
    dropped_before = metric("edgeport_hep_dropped_total")
    with caplog.at_level(logging.WARNING, logger="edgeport.capture.sender"):
        async with trio.open_nursery() as nursery:
            await nursery.start(capture.serve)
            with trio.fail_after(10):
                for _ in range(20):
                    handled = capture.sent + capture.dropped
                    capture.received(inbound())
                    while capture.sent + capture.dropped == handled:
                        await trio.sleep(0.01)
                    if capture.dropped >= 2:
                        break
                    await trio.sleep(0.05)  # time for the ICMP answer to come back
            nursery.cancel_scope.cancel()
    assert capture.dropped >= 2
    assert metric("edgeport_hep_dropped_total") >= dropped_before + 2
    warnings = [r for r in caplog.records if "HEP collector" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert warnings[0].levelno == logging.WARNING


def test_queue_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="queue_size"):
        HepCapture(HepConfig(addr="127.0.0.1:9060"), queue_size=0)


async def test_copies_too_large_for_one_hep_packet_are_dropped_counted_and_warned_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Three sizes, three places the copy is refused: 70,000 bytes before it is
    # queued; 65,500 bytes when encoding (the packet would pass 65,535 bytes);
    # 65,420 bytes when sending (a 65,519-byte packet, over the 65,507 bytes of
    # one UDP datagram). Each is counted; the warning is rate-limited.
    collector = await Collector.open()
    capture = HepCapture(HepConfig(addr=collector.addr))
    dropped_before = metric("edgeport_hep_dropped_total")
    with caplog.at_level(logging.WARNING, logger="edgeport.capture.sender"):
        async with trio.open_nursery() as nursery:
            await nursery.start(capture.serve)
            for size in (70_000, 65_500, 65_420):
                head = b"MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\n"
                capture.received(inbound(head + b"x" * (size - len(head))))
            capture.received(inbound())
            with trio.fail_after(10):
                packet = await collector.receive()
            nursery.cancel_scope.cancel()
    collector.close()
    assert capture.dropped == 3
    assert capture.sent == 1
    assert metric("edgeport_hep_dropped_total") == dropped_before + 3
    (decoded,) = decode_with_hep_js([packet])
    assert decoded is not None
    assert decoded["payload"].encode() == REGISTER
    warnings = [r.getMessage() for r in caplog.records if "HEP capture" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "70000-byte message dropped" in warnings[0]
    assert "larger than one HEP packet" in warnings[0]


async def test_an_unexpected_failure_costs_one_copy_not_the_sender(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A defect in the capture path, simulated for one message: the sender logs
    # it, counts the copy as dropped and sends the next one.
    from edgeport.capture import sender

    real = sender.find_call_id

    def defective(data: bytes) -> str | None:
        if b"poison" in data:
            raise RuntimeError("a defect")
        return real(data)

    monkeypatch.setattr(sender, "find_call_id", defective)
    collector = await Collector.open()
    capture = HepCapture(HepConfig(addr=collector.addr))
    dropped_before = metric("edgeport_hep_dropped_total")
    with caplog.at_level(logging.WARNING, logger="edgeport.capture.sender"):
        async with trio.open_nursery() as nursery:
            await nursery.start(capture.serve)
            capture.received(inbound(b"OPTIONS sip:poison SIP/2.0\r\n\r\n"))
            capture.received(inbound())
            with trio.fail_after(10):
                packet = await collector.receive()
            nursery.cancel_scope.cancel()
    collector.close()
    assert (capture.dropped, capture.sent) == (1, 1)
    assert metric("edgeport_hep_dropped_total") == dropped_before + 1
    (decoded,) = decode_with_hep_js([packet])
    assert decoded is not None
    assert decoded["payload"].encode() == REGISTER
    (failure,) = [r for r in caplog.records if "failed" in r.getMessage()]
    assert failure.levelno == logging.ERROR
    assert failure.exc_info is not None
    assert isinstance(failure.exc_info[1], RuntimeError)


async def test_a_hook_that_fails_never_raises_into_the_transport() -> None:
    # The hooks run on the SIP path (a listener's read loop): a socket closed
    # under them costs the copy, not the listener.
    capture = HepCapture(HepConfig(addr="127.0.0.1:9"))
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    udp = DatagramSocket(sock)
    sock.close()
    capture.sent_datagram(OK, udp, "127.0.0.1", 5090)  # getsockname fails: EBADF
    assert capture.dropped == 1
