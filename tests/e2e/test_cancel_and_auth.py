"""CANCEL of a ringing call, and auth on behalf of the caller (X-Gateway-Auth)."""

from __future__ import annotations

import base64
import hashlib
import re
import time

import trio

from edgeport._proto import sipmessage_pb2
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse
from edgeport.builtin.registrar import Registrar
from edgeport.builtin.router import Router
from edgeport.config import ProcessorConfig
from edgeport.sip.timers import Timer
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address, make_config, start_edgeport
from tests.support.grpc_processor import ScriptableProcessor, start_processor
from tests.support.ua import Received, UdpUA, sip


def invite(ua_port: int, target: str, *, call_id: str, branch: str, cseq: int = 1) -> bytes:
    return sip(
        f"""INVITE {target} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua_port};branch={branch};rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=caller
To: <sip:bob@127.0.0.1>
Call-ID: {call_id}
CSeq: {cseq} INVITE
Contact: <sip:alice@127.0.0.1:{ua_port}>
Content-Length: 0

"""
    )


def reply_to(request: Received, status: str, *, to_tag: str = "callee", extra: str = "") -> bytes:
    vias = "".join(f"Via: {v}\n" for v in request.headers("Via"))
    to = request.header("To")
    if "tag=" not in to:
        to += f";tag={to_tag}"
    return sip(
        f"""SIP/2.0 {status}
{vias}From: {request.header("From")}
To: {to}
Call-ID: {request.header("Call-ID")}
CSeq: {request.header("CSeq")}
{extra}Content-Length: 0

"""
    )


async def test_cancel_of_a_ringing_call(nursery: trio.Nursery) -> None:
    router = Router(Registrar(time.monotonic))
    processor = ScriptableProcessor(reply=router.process)
    async with trio.open_nursery() as inner:
        running = await start_processor(inner, processor)
        server = await start_edgeport(inner, make_config(processor=ProcessorConfig(running.addr)))
        edge = address(server, Transport.UDP)
        caller = await UdpUA.open(edge)
        callee = await UdpUA.open(edge)
        target = f"sip:bob@127.0.0.1:{callee.port}"
        await caller.send(invite(caller.port, target, call_id="cancel@test", branch="z9hG4bK-c1"))
        assert (await caller.receive()).status == 100
        incoming = await callee.receive()
        assert incoming.method == "INVITE"
        await callee.send(reply_to(incoming, "180 Ringing"))
        ringing = await caller.receive_until(lambda m: m.status != 100)
        assert ringing.status == 180

        await caller.send(
            sip(
                f"""CANCEL {target} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bK-c1;rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=caller
To: <sip:bob@127.0.0.1>
Call-ID: cancel@test
CSeq: 1 CANCEL
Content-Length: 0

"""
            )
        )
        upstream = [await caller.receive(), await caller.receive()]
        by_method = {m.header("CSeq"): m.status for m in upstream}
        assert by_method == {"1 CANCEL": 200, "1 INVITE": 487}
        # RFC 3261 §9.2: the 487 carries the To tag the caller saw in the 180.
        terminated = next(m for m in upstream if m.status == 487)
        assert terminated.header("To") == ringing.header("To")

        cancel = await callee.receive_until(lambda m: m.method == "CANCEL")
        # RFC 3261 §9.1: the CANCEL has the INVITE's top Via branch.
        assert cancel.headers("Via")[0] == incoming.headers("Via")[0]
        assert cancel.header("CSeq") == "1 CANCEL"
        await callee.send(reply_to(cancel, "200 OK"))
        await callee.send(reply_to(incoming, "487 Request Terminated"))
        ack = await callee.receive_until(lambda m: m.method == "ACK")
        assert ack.header("CSeq") == "1 ACK"
        assert ack.header("To").endswith("tag=callee")
        # The downstream 487 is absorbed: the caller sees nothing more but
        # retransmissions of the 487 it already has, until it ACKs.
        await caller.send(
            sip(
                f"""ACK {target} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bK-c1;rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=caller
To: {next(m for m in upstream if m.status == 487).header("To")}
Call-ID: cancel@test
CSeq: 1 ACK
Content-Length: 0

"""
            )
        )
        with trio.move_on_after(0.7):
            while True:
                late = await caller.receive()
                assert late.status == 487, late.text
        # The caller's ACK for the 487 was absorbed, not forwarded.
        with trio.move_on_after(0.3):
            while True:
                late = await callee.receive()
                assert late.method != "ACK" or late.header("Via") == ack.header("Via")
        inner.cancel_scope.cancel()


def expected_digest(
    user: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    nc: str,
    cnonce: str,
    algorithm: str,
) -> str:
    h = (
        (lambda b: hashlib.sha256(b).hexdigest())
        if algorithm == "SHA-256"
        else (lambda b: hashlib.md5(b).hexdigest())
    )
    ha1 = h(f"{user}:{realm}:{password}".encode())
    ha2 = h(f"{method}:{uri}".encode())
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode())


async def test_auth_on_behalf_answers_the_challenge(nursery: trio.Nursery) -> None:
    credentials = base64.b64encode(b"trunkuser:s3cret").decode()

    router = Router(Registrar(time.monotonic))

    def with_gateway_auth(request: MessageRequest) -> MessageResponse:
        reply = router.process(request)
        if reply.message.WhichOneof("message_type") == "request_uri" and request.method == 2:
            reply.message.extensions.append(
                sipmessage_pb2.Extension(name="X-Gateway-Auth", value=credentials)
            )
        return reply

    processor = ScriptableProcessor(reply=with_gateway_auth)
    async with trio.open_nursery() as inner:
        running = await start_processor(inner, processor)
        server = await start_edgeport(inner, make_config(processor=ProcessorConfig(running.addr)))
        edge = address(server, Transport.UDP)
        caller = await UdpUA.open(edge)
        trunk = await UdpUA.open(edge)
        target = f"sip:+15550100@127.0.0.1:{trunk.port}"
        await caller.send(
            invite(caller.port, target, call_id="auth@test", branch="z9hG4bK-a1", cseq=7)
        )
        first = await trunk.receive_until(lambda m: m.method == "INVITE")
        assert "X-Gateway-Auth" not in first.text
        assert first.header("CSeq") == "7 INVITE"
        await trunk.send(
            reply_to(
                first,
                "407 Proxy Authentication Required",
                extra='Proxy-Authenticate: Digest realm="trunk", nonce="abc123", '
                'algorithm=SHA-256, qop="auth"\n',
            )
        )
        ack = await trunk.receive_until(lambda m: m.method == "ACK")
        assert ack.header("CSeq") == "7 ACK"
        second = await trunk.receive_until(lambda m: m.method == "INVITE")
        assert second.header("CSeq") == "8 INVITE"
        assert second.headers("Via")[0] != first.headers("Via")[0]
        auth = second.header("Proxy-Authorization")
        params = dict(re.findall(r'(\w+)="?([^",]+)"?', auth))
        assert params["username"] == "trunkuser"
        assert params["realm"] == "trunk"
        assert params["algorithm"] == "SHA-256"
        assert params["response"] == expected_digest(
            "trunkuser", "trunk", "s3cret", "INVITE", params["uri"], "abc123",
            params["nc"], params["cnonce"], "SHA-256",
        )  # fmt: skip
        assert params["uri"] == target

        await trunk.send(
            reply_to(second, "200 OK", extra=f"Contact: <sip:trunk@127.0.0.1:{trunk.port}>\n")
        )
        upstream = await caller.receive_until(lambda m: m.status is not None and m.status >= 200)
        # The challenge never reached the caller; its CSeq is restored.
        assert upstream.status == 200
        assert upstream.header("CSeq") == "7 INVITE"
        # The processor saw the 200 (from the trunk's address) but never the 407.
        responses = [
            r for r in processor.requests if r.message.WhichOneof("message_type") == "response_type"
        ]
        assert [r.metadata["statusCode"] for r in responses] == ["200"]
        assert (responses[0].sender.host, responses[0].sender.port) == ("127.0.0.1", trunk.port)

        # The caller's ACK for the 2xx follows the dialog's shifted CSeq.
        await caller.send(
            sip(
                f"""ACK sip:trunk@127.0.0.1:{trunk.port} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bK-a1ack;rport
Route: {first.header("Record-Route")}
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=caller
To: {upstream.header("To")}
Call-ID: auth@test
CSeq: 7 ACK
Content-Length: 0

"""
            )
        )
        ack2xx = await trunk.receive_until(
            lambda m: (
                m.method == "ACK"
                and "a1ack" not in m.headers("Via")[0]
                and m.header("CSeq") != "7 ACK"
            )
        )
        assert ack2xx.header("CSeq") == "8 ACK"
        assert ack2xx.first_line == f"ACK sip:trunk@127.0.0.1:{trunk.port} SIP/2.0"
        inner.cancel_scope.cancel()


async def test_timer_c_cancels_a_ringing_call_and_absorbs_its_487(nursery: trio.Nursery) -> None:
    router = Router(Registrar(time.monotonic))
    processor = ScriptableProcessor(reply=router.process)
    async with trio.open_nursery() as inner:
        running = await start_processor(inner, processor)
        server = await start_edgeport(inner, make_config(processor=ProcessorConfig(running.addr)))
        edge = address(server, Transport.UDP)
        caller = await UdpUA.open(edge)
        callee = await UdpUA.open(edge)
        target = f"sip:bob@127.0.0.1:{callee.port}"
        await caller.send(invite(caller.port, target, call_id="timerc@test", branch="z9hG4bK-tc"))
        incoming = await callee.receive_until(lambda m: m.method == "INVITE")
        await callee.send(reply_to(incoming, "180 Ringing"))
        assert (await caller.receive_until(lambda m: m.status != 100)).status == 180
        # Timer C (185 s) firing, without waiting for it: the client
        # transaction tells its TU it timed out.
        (forward,) = server.proxy.forwarder.forwards()
        client = forward.client
        assert client is not None
        assert client.expire_timer(Timer.C)
        timeout = await caller.receive_until(lambda m: m.status is not None and m.status >= 200)
        assert timeout.status == 408
        assert client.timed_out is Timer.C
        cancel = await callee.receive_until(lambda m: m.method == "CANCEL")
        assert cancel.headers("Via")[0] == incoming.headers("Via")[0]
        await callee.send(reply_to(cancel, "200 OK"))
        await callee.send(reply_to(incoming, "487 Request Terminated"))
        ack = await callee.receive_until(lambda m: m.method == "ACK")
        assert ack.header("CSeq") == "1 ACK"
        # The 487 was absorbed: the caller only sees its 408 again, if anything.
        with trio.move_on_after(0.5):
            while True:
                late = await caller.receive()
                assert late.status == 408, late.text
        inner.cancel_scope.cancel()
