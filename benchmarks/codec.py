"""Codec cost per message: SIP bytes -> protobuf bytes, and protobuf bytes -> SIP bytes.

(a) ``parse_message`` + ``to_message_request`` + ``SerializeToString``: what
    edgeport spends on a message before the processor call. The loop runs
    over distinct messages (each its own branch, Call-ID and From tag, as
    in real traffic), so only lines that recur message after message (a
    client's Contact, User-Agent, Allow) find their bytes already encoded.
(b) ``MessageResponse.FromString`` + ``build_forward_*`` + ``to_bytes``: what
    it spends on the processor's reply before sending.

Measured with ``time.perf_counter_ns`` over a bounded loop, best of 5, next
to a bare protobuf encode of the same MessageRequest in the same run (the
floor any pure-Python codec sits on). Budget (architecture.md): 40 µs each
way for an INVITE.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Final

from edgeport._proto import common_pb2, processor_pb2
from edgeport.convert import (
    MessageRequestBuilder,
    build_forward_request,
    build_forward_response,
    to_sip_message,
)
from edgeport.sip.message import Request
from edgeport.sip.parser import parse_message

ITERATIONS: Final = 20_000
ROUNDS: Final = 5
BUDGET_US: Final = 40.0

REGISTER: Final = (
    b"REGISTER sip:sip.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKreg1;rport=5062;received=203.0.113.9\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:alice@sip.example.com>;tag=f1\r\n'
    b"To: <sip:alice@sip.example.com>\r\n"
    b"Call-ID: reg-1@192.168.1.20\r\n"
    b"CSeq: 2 REGISTER\r\n"
    b"Contact: <sip:alice@192.168.1.20:5062;transport=udp>;expires=600\r\n"
    b"Expires: 600\r\n"
    b'Authorization: Digest username="alice", realm="sip.example.com", nonce="n1", '
    b'uri="sip:sip.example.com", response="0123456789abcdef0123456789abcdef", algorithm=MD5\r\n'
    b"User-Agent: softphone/1.0\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

_SDP: Final = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 192.168.1.20\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.168.1.20\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=sendrecv\r\n"
)
INVITE: Final = (
    b"INVITE sip:bob@sip.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKinv1;rport=5062;received=203.0.113.9\r\n"
    b"Max-Forwards: 70\r\n"
    b'f: "Alice" <sip:alice@sip.example.com>;tag=f2\r\n'
    b"t: <sip:bob@sip.example.com>\r\n"
    b"i: inv-1@192.168.1.20\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"m: <sip:alice@192.168.1.20:5062;transport=udp>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n"
    b"k: replaces, timer\r\n"
    b"User-Agent: softphone/1.0\r\n"
    b"c: application/sdp\r\n"
    b"l: " + str(len(_SDP)).encode() + b"\r\n"
    b"\r\n" + _SDP
)

OK_WITH_RECORD_ROUTE: Final = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKedge;rport=5060\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKinv1;rport=5062;received=203.0.113.9\r\n"
    b"Record-Route: <sip:198.51.100.1;lr;r2=on>\r\n"
    b"Record-Route: <sip:10.1.0.1;transport=tcp;lr;r2=on>\r\n"
    b'From: "Alice" <sip:alice@sip.example.com>;tag=f2\r\n'
    b"To: <sip:bob@sip.example.com>;tag=b7\r\n"
    b"Call-ID: inv-1@192.168.1.20\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:bob@10.1.0.9:5060>\r\n"
    b"Server: gw/2\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

_SENDER: Final = processor_pb2.NetInterface(
    host="192.168.1.20", port=5062, transport=common_pb2.Transport.UDP
)
_LISTENING: Final = (
    processor_pb2.NetInterface(host="0.0.0.0", port=5060, transport=common_pb2.Transport.UDP),
    processor_pb2.NetInterface(host="0.0.0.0", port=5060, transport=common_pb2.Transport.TCP),
)
_EXTERNAL: Final = ("198.51.100.1",)
_LOCALNETS: Final = ("10.0.0.0/8", "192.168.0.0/16")


def _branch() -> str:
    return "z9hG4bKbench"


_BUILDER: Final = MessageRequestBuilder(
    edge_port_ref="edgeport-01",
    listening_points=_LISTENING,
    external_addrs=_EXTERNAL,
    localnets=_LOCALNETS,
)


VARIANTS: Final = 1_000  # distinct messages (a) cycles through


def variants(data: bytes, count: int = VARIANTS) -> list[bytes]:
    """``data`` with a fresh top branch, Call-ID and From tag in each copy.

    Only header values change, so the Content-Length of the body stays right.
    """
    out = []
    for number in range(count):
        mark = b"%04d" % number
        copy = re.sub(rb"(branch=z9hG4bK)\w{4}", rb"\g<1>" + mark, data, count=1)
        copy = re.sub(rb"(;tag=f)\w", rb"\g<1>" + mark, copy, count=1)
        copy = re.sub(rb"((?:Call-ID|i): )\w{3}", rb"\g<1>" + mark[1:], copy, count=1)
        out.append(copy)
    return out


def encode(data: bytes) -> bytes:
    """(a): SIP bytes -> MessageRequest bytes, as the proxy does it (one builder)."""
    return _BUILDER.build(parse_message(data), sender=_SENDER).SerializeToString()


def _processor_reply(data: bytes) -> bytes:
    """A reply shaped like a Routr processor's: own Via on requests, top Via off responses."""
    msg = parse_message(data)
    reply = processor_pb2.MessageResponse()
    reply.message.CopyFrom(to_sip_message(msg))
    message = reply.message
    if isinstance(msg, Request):
        vias = list(message.via)
        del message.via[:]
        message.via.add(host="10.0.0.1", port=5060, transport="UDP", r_port_flag=True)
        message.via.extend(vias)
        route = message.route.add()
        route.address.uri.host = "10.1.0.1"
        route.address.uri.port = 5060
        route.address.uri.transport_param = "UDP"
        route.address.uri.lr_param = True
        message.max_forwards.max_forwards -= 1
        message.extensions.add(name="X-EdgePort-Ref", value="edgeport-01")
    else:
        del message.via[0]
    return reply.SerializeToString()


def _decoder(data: bytes) -> Callable[[bytes], bytes]:
    """(b): MessageResponse bytes -> SIP bytes, against the message the reply is about."""
    original = parse_message(data)
    # The proxy keeps the SIPMessage it sent; passing it spares re-deriving it.
    sent = to_sip_message(original)
    if isinstance(original, Request):
        request = original

        def forward_request(reply_bytes: bytes) -> bytes:
            reply = processor_pb2.MessageResponse.FromString(reply_bytes)
            forwarded = build_forward_request(reply, request, branch_factory=_branch, sent=sent)
            return forwarded.request.to_bytes()

        return forward_request
    response = original

    def forward_response(reply_bytes: bytes) -> bytes:
        reply = processor_pb2.MessageResponse.FromString(reply_bytes)
        return build_forward_response(reply, response, sent=sent).to_bytes()

    return forward_response


def _best_us(func: Callable[[bytes], object], arg: bytes | list[bytes], iterations: int) -> float:
    """µs per call, best of ROUNDS; a list of arguments is cycled through."""
    args = arg if isinstance(arg, list) else [arg]
    best = None
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for index in range(iterations):
            func(args[index % len(args)])
        elapsed = time.perf_counter_ns() - start
        best = elapsed if best is None or elapsed < best else best
    assert best is not None
    return best / iterations / 1000.0


def measure(
    name: str, data: bytes, iterations: int = ITERATIONS
) -> tuple[str, float, float, float, float]:
    """µs per message: (a) SIP -> protobuf bytes, of which parse_message alone,
    (b) reply -> SIP bytes, and a bare protobuf encode of the same request."""
    distinct = variants(data)
    to_proto_us = _best_us(encode, distinct, iterations)
    parse_us = _best_us(parse_message, distinct, iterations)
    reply_bytes = _processor_reply(data)
    to_sip_us = _best_us(_decoder(data), reply_bytes, iterations)
    request = processor_pb2.MessageRequest.FromString(encode(data))
    encode_us = _best_us(lambda _: request.SerializeToString(), b"", iterations)
    return name, to_proto_us, parse_us, to_sip_us, encode_us


def main(iterations: int = ITERATIONS) -> None:
    rows = [
        measure("REGISTER", REGISTER, iterations),
        measure("INVITE+SDP", INVITE, iterations),
        measure("200 OK+RR", OK_WITH_RECORD_ROUTE, iterations),
    ]
    print(f"codec, µs per message (best of {ROUNDS} x {iterations:,}):")
    print(
        f"{'message':<12} {'(a) SIP->pb':>12} {'of it parse':>12} {'(b) pb->SIP':>12}"
        f" {'pb encode':>10} {'a/enc':>6} {'b/enc':>6}"
    )
    for name, to_proto_us, parse_us, to_sip_us, encode_us in rows:
        a_ratio = to_proto_us / encode_us if encode_us else float("inf")
        b_ratio = to_sip_us / encode_us if encode_us else float("inf")
        print(
            f"{name:<12} {to_proto_us:>12.1f} {parse_us:>12.1f} {to_sip_us:>12.1f}"
            f" {encode_us:>10.2f} {a_ratio:>5.0f}x {b_ratio:>5.0f}x"
        )
    invite = rows[1]
    verdict = "within" if max(invite[1], invite[3]) <= BUDGET_US else "OVER"
    print(f"INVITE budget {BUDGET_US:.0f} µs each way: {verdict}")


if __name__ == "__main__":
    main()
