"""A request too large for UDP goes to a UDP next hop over TCP (RFC 3261 §18.1.1).

A browser calls over WebSocket with a WebRTC-sized offer (about 5 KB of SDP)
a phone reached over UDP; the phone also listens on TCP on the same port, as
RFC 3261 §18 asks of every element. edgeport in front of a test processor
that routes like the built-in one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio
import trio_websocket

from edgeport.builtin.registrar import Registrar
from edgeport.builtin.router import Router
from edgeport.config import ProcessorConfig
from edgeport.proxy.large_requests import LARGE_REQUESTS
from edgeport.server import RunningServer
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address, make_config, start_edgeport
from tests.e2e.flows import response_to
from tests.support.grpc_processor import ScriptableProcessor, start_processor
from tests.support.ua import Received, TcpUA, UdpUA, WsUA, sip

BROWSER = "df7jal23ls0d.invalid"
FINGERPRINT = ":".join(["4F"] * 32)
# A browser's offer: audio and video, ICE candidates, DTLS, many codecs.
_AUDIO_CODECS = "".join(
    f"a=rtpmap:{pt} {name}\r\na=rtcp-fb:{pt} transport-cc\r\n"
    for pt, name in (
        (111, "opus/48000/2"),
        (63, "red/48000/2"),
        (9, "G722/8000"),
        (0, "PCMU/8000"),
        (8, "PCMA/8000"),
        (13, "CN/8000"),
        (110, "telephone-event/48000"),
        (126, "telephone-event/8000"),
    )
)
_VIDEO_CODECS = "".join(
    f"a=rtpmap:{pt} {name}/90000\r\na=rtcp-fb:{pt} goog-remb\r\na=rtcp-fb:{pt} transport-cc\r\n"
    f"a=rtcp-fb:{pt} ccm fir\r\na=rtcp-fb:{pt} nack\r\na=rtcp-fb:{pt} nack pli\r\n"
    f"a=fmtp:{pt} level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
    for pt, name in (
        (96, "VP8"),
        (98, "VP9"),
        (100, "H264"),
        (102, "H264"),
        (104, "AV1"),
        (106, "H264"),
        (108, "H264"),
        (112, "H264"),
    )
)
_CANDIDATES = "".join(
    f"a=candidate:{n} 1 udp {2122260223 - n} 192.0.2.{n} {50000 + n} typ host generation 0\r\n"
    for n in range(1, 13)
)
SDP = (
    "v=0\r\n"
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 0 1\r\n"
    "a=msid-semantic: WMS stream\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\n"
    f"{_CANDIDATES}"
    "a=ice-ufrag:Hk3d\r\n"
    "a=ice-pwd:x3S9fLq0d2kP1zN8vBw7tRyU\r\n"
    "a=ice-options:trickle\r\n"
    f"a=fingerprint:sha-256 {FINGERPRINT}\r\n"
    "a=setup:actpass\r\n"
    "a=mid:0\r\n"
    "a=sendrecv\r\n"
    "a=rtcp-mux\r\n"
    f"{_AUDIO_CODECS}"
    "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
    "a=ssrc:3735928559 cname:k2Hd8sLq0aPz\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96 98 100 102 104 106 108 112\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\n"
    f"{_CANDIDATES}"
    "a=ice-ufrag:Hk3d\r\n"
    "a=ice-pwd:x3S9fLq0d2kP1zN8vBw7tRyU\r\n"
    f"a=fingerprint:sha-256 {FINGERPRINT}\r\n"
    "a=setup:actpass\r\n"
    "a=mid:1\r\n"
    "a=sendrecv\r\n"
    "a=rtcp-mux\r\n"
    "a=rtcp-rsize\r\n"
    f"{_VIDEO_CODECS}"
    "a=ssrc:4008636142 cname:k2Hd8sLq0aPz\r\n"
)


def browser_invite(target: str, *, call_id: str, sdp: str = SDP) -> bytes:
    return (
        sip(
            f"""INVITE {target} SIP/2.0
Via: SIP/2.0/WS {BROWSER};branch=z9hG4bK-{call_id}
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=alice-{call_id}
To: <sip:bob@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:alice@{BROWSER};transport=ws;ob>
Allow: INVITE, ACK, CANCEL, BYE, UPDATE, MESSAGE, OPTIONS, REFER, INFO, NOTIFY
Supported: ice, replaces, outbound
User-Agent: JsSIP 3.10.1
Content-Type: application/sdp
Content-Length: {len(sdp.encode())}

"""
        )
        + sdp.encode()
    )


def in_dialog(method: str, cseq: int, final: Received, *, call_id: str, callee: int) -> bytes:
    routes = "".join(f"Route: {r}\n" for r in final.headers("Record-Route"))
    return sip(
        f"""{method} sip:bob@127.0.0.1:{callee} SIP/2.0
Via: SIP/2.0/WS {BROWSER};branch=z9hG4bK-{method}-{call_id}
{routes}Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=alice-{call_id}
To: {final.header("To")}
Call-ID: {call_id}
CSeq: {cseq} {method}
Content-Length: 0

"""
    )


def cancel_of(target: str, *, call_id: str) -> bytes:
    return sip(
        f"""CANCEL {target} SIP/2.0
Via: SIP/2.0/WS {BROWSER};branch=z9hG4bK-{call_id}
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=alice-{call_id}
To: <sip:bob@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 CANCEL
Content-Length: 0

"""
    )


def counted(result: str) -> float:
    return LARGE_REQUESTS.labels(result=result).value


@dataclass
class Phone:
    """A phone on 127.0.0.1: a UDP socket and, optionally, a TCP listener on the same port."""

    udp: UdpUA
    listener: trio.SocketListener | None

    @property
    def port(self) -> int:
        return self.udp.port

    @property
    def uri(self) -> str:
        return f"sip:bob@127.0.0.1:{self.port}"

    async def accept(self) -> TcpUA:
        """The connection edgeport opens to the phone's TCP port."""
        assert self.listener is not None
        with trio.fail_after(5):
            return TcpUA(await self.listener.accept())


async def open_phone(edge: tuple[str, int], *, tcp: bool) -> Phone:
    for _ in range(20):  # bounded: a free UDP port whose TCP twin is free too
        udp = await UdpUA.open(edge)
        if not tcp:
            return Phone(udp, None)
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
        try:
            await sock.bind(("127.0.0.1", udp.port))
        except OSError:
            sock.close()
            udp.close()
            continue
        sock.listen(8)
        return Phone(udp, trio.SocketListener(sock))
    raise AssertionError("no UDP port with a free TCP twin")


@asynccontextmanager
async def routed_edge(**overrides: object) -> AsyncIterator[RunningServer]:
    async with trio.open_nursery() as nursery:
        processor = ScriptableProcessor(reply=Router(Registrar(time.monotonic)).process)
        running = await start_processor(nursery, processor)
        config = make_config(processor=ProcessorConfig(running.addr), **overrides)
        yield await start_edgeport(nursery, config)
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def browser(server: RunningServer) -> AsyncIterator[WsUA]:
    ws_port = address(server, Transport.WS)[1]
    async with trio_websocket.open_websocket_url(
        f"ws://127.0.0.1:{ws_port}/", subprotocols=["sip"]
    ) as ws:
        yield WsUA(ws)


async def test_a_browser_invite_too_large_for_udp_reaches_a_udp_phone_over_tcp() -> None:
    async with routed_edge() as server:
        edge_udp = address(server, Transport.UDP)
        edge_tcp = address(server, Transport.TCP)
        phone = await open_phone(edge_udp, tcp=True)
        before = counted("tcp")
        async with browser(server) as alice:
            with trio.fail_after(20):
                invite = browser_invite(phone.uri, call_id="big-call")
                assert len(invite) > 5000
                await alice.send(invite)
                bob = await phone.accept()
                incoming = await bob.receive()
                assert incoming.method == "INVITE"
                top = incoming.headers("Via")[0]
                # RFC 3261 §18.1.1: the top Via says TCP and names edgeport's TCP listener.
                assert top.startswith(f"SIP/2.0/TCP 127.0.0.1:{edge_tcp[1]};"), top
                assert "branch=z9hG4bK" in top
                assert incoming.body == SDP.encode()
                assert counted("tcp") == before + 1

                # Answers go back over the connection edgeport opened.
                await bob.send(response_to(incoming, "180 Ringing", to_tag="bob1"))
                contact = f"Contact: <sip:bob@127.0.0.1:{phone.port}>\n"
                await bob.send(response_to(incoming, "200 OK", to_tag="bob1", extra=contact))
                ringing = await alice.receive_until(lambda m: m.status != 100)
                assert ringing.status == 180
                ok = await alice.receive_until(lambda m: m.status == 200)
                assert ok.header("CSeq") == "1 INVITE"

                # ACK and BYE are small: they reach the phone's Contact over UDP.
                await alice.send(in_dialog("ACK", 1, ok, call_id="big-call", callee=phone.port))
                ack = await phone.udp.receive_until(lambda m: m.method == "ACK")
                assert ack.headers("Via")[0].startswith("SIP/2.0/UDP ")
                await alice.send(in_dialog("BYE", 2, ok, call_id="big-call", callee=phone.port))
                bye = await phone.udp.receive_until(lambda m: m.method == "BYE")
                assert bye.headers("Via")[0].startswith("SIP/2.0/UDP ")
                await phone.udp.send(response_to(bye, "200 OK", to_tag="bob1"))
                bye_ok = await alice.receive_until(lambda m: m.header("CSeq") == "2 BYE")
                assert bye_ok.status == 200
                await bob.close()


async def test_the_cancel_and_the_ack_of_a_487_follow_a_large_invite_over_tcp() -> None:
    async with routed_edge() as server:
        phone = await open_phone(address(server, Transport.UDP), tcp=True)
        async with browser(server) as alice:
            with trio.fail_after(20):
                await alice.send(browser_invite(phone.uri, call_id="big-cancel"))
                bob = await phone.accept()
                incoming = await bob.receive()
                await bob.send(response_to(incoming, "180 Ringing", to_tag="bob2"))
                assert (await alice.receive_until(lambda m: m.status != 100)).status == 180
                await alice.send(cancel_of(phone.uri, call_id="big-cancel"))
                # RFC 3261 §9.1: the CANCEL goes where the INVITE went, with its top Via.
                cancel = await bob.receive()
                assert cancel.method == "CANCEL"
                assert cancel.headers("Via")[0] == incoming.headers("Via")[0]
                await bob.send(response_to(cancel, "200 OK", to_tag="bob2"))
                await bob.send(response_to(incoming, "487 Request Terminated", to_tag="bob2"))
                # RFC 3261 §17.1.1.3: the ACK of the 487 too.
                ack = await bob.receive()
                assert ack.method == "ACK"
                assert ack.headers("Via")[0] == incoming.headers("Via")[0]
                await phone.udp.nothing_within(0.2)
                await bob.close()


async def test_a_large_request_falls_back_to_udp_when_the_phone_takes_no_tcp() -> None:
    async with routed_edge() as server:
        phone = await open_phone(address(server, Transport.UDP), tcp=False)
        before = counted("udp_fallback"), counted("tcp")
        async with browser(server) as alice:
            with trio.fail_after(20):
                await alice.send(browser_invite(phone.uri, call_id="big-fallback"))
                incoming = await phone.udp.receive_until(lambda m: m.method == "INVITE")
                assert incoming.headers("Via")[0].startswith("SIP/2.0/UDP ")
                assert incoming.body == SDP.encode()
                assert (counted("udp_fallback"), counted("tcp")) == (before[0] + 1, before[1])
                await phone.udp.send(response_to(incoming, "486 Busy Here", to_tag="bob3"))
                busy = await alice.receive_until(lambda m: m.status != 100)
                assert busy.status == 486


async def test_a_small_request_stays_on_udp_though_the_phone_takes_tcp() -> None:
    async with routed_edge() as server:
        phone = await open_phone(address(server, Transport.UDP), tcp=True)
        assert phone.listener is not None
        before = counted("tcp"), counted("udp_fallback")
        async with browser(server) as alice:
            with trio.fail_after(20):
                await alice.send(browser_invite(phone.uri, call_id="small", sdp="v=0\r\n"))
                incoming = await phone.udp.receive_until(lambda m: m.method == "INVITE")
                assert incoming.headers("Via")[0].startswith("SIP/2.0/UDP ")
                assert (counted("tcp"), counted("udp_fallback")) == before
                with trio.move_on_after(0.2):
                    await phone.listener.accept()
                    raise AssertionError("edgeport opened a TCP connection for a small request")


async def test_large_requests_stay_on_udp_when_large_requests_over_tcp_is_false() -> None:
    async with routed_edge(large_requests_over_tcp=None) as server:
        phone = await open_phone(address(server, Transport.UDP), tcp=True)
        assert phone.listener is not None
        before = counted("tcp"), counted("udp_fallback")
        async with browser(server) as alice:
            with trio.fail_after(20):
                await alice.send(browser_invite(phone.uri, call_id="big-off"))
                incoming = await phone.udp.receive_until(lambda m: m.method == "INVITE")
                assert incoming.headers("Via")[0].startswith("SIP/2.0/UDP ")
                assert incoming.body == SDP.encode()
                assert (counted("tcp"), counted("udp_fallback")) == before
                with trio.move_on_after(0.2):
                    await phone.listener.accept()
                    raise AssertionError("edgeport opened a TCP connection with the feature off")


async def test_a_large_ack_for_a_2xx_goes_over_tcp_too() -> None:
    """A late offer: the browser's answer SDP rides on the ACK, forwarded statelessly."""
    async with routed_edge() as server:
        phone = await open_phone(address(server, Transport.UDP), tcp=True)
        async with browser(server) as alice:
            with trio.fail_after(20):
                await alice.send(browser_invite(phone.uri, call_id="late-offer", sdp=""))
                incoming = await phone.udp.receive_until(lambda m: m.method == "INVITE")
                contact = f"Contact: <sip:bob@127.0.0.1:{phone.port}>\n"
                await phone.udp.send(response_to(incoming, "200 OK", to_tag="bob4", extra=contact))
                ok = await alice.receive_until(lambda m: m.status == 200)
                ack = in_dialog("ACK", 1, ok, call_id="late-offer", callee=phone.port)
                head, _, _ = ack.partition(b"Content-Length: 0\r\n\r\n")
                body = SDP.encode()
                await alice.send(
                    head
                    + b"Content-Type: application/sdp\r\n"
                    + b"Content-Length: %d\r\n\r\n" % len(body)
                    + body
                )
                bob = await phone.accept()
                got = await bob.receive()
                assert got.method == "ACK"
                assert got.headers("Via")[0].startswith("SIP/2.0/TCP 127.0.0.1:")
                assert got.body == body
                await bob.close()
