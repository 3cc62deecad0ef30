"""Protobuf values written as SIP text parse back to the same protobuf values.

Whatever a processor puts in a typed field must reach the wire faithfully:
serialise with ``edgeport.convert.to_sip``, parse with the SIP codec,
convert back with ``edgeport.convert.to_proto``, and compare.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeport._proto import processor_pb2
from edgeport._proto import sipmessage_pb2 as pb
from edgeport.convert import ReplyError, build_forward_request, to_sip_message
from edgeport.convert.to_proto import fill_contact, fill_from_to, fill_route, fill_via
from edgeport.convert.to_sip import contact_text, from_to_text, route_text, via_text
from edgeport.sip.headers import parse_name_addr, parse_via
from edgeport.sip.message import Request
from edgeport.sip.parser import parse_message

TOKEN = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+~",
    min_size=1,
    max_size=12,
)
LOWER_TOKEN = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10)
HOST = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
)
PORT = st.one_of(st.just(-1), st.integers(1, 65535))
TTL = st.one_of(st.just(-1), st.integers(1, 255))
DISPLAY = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\r\n\x00"),
    max_size=12,
)


@st.composite
def sip_uris(draw: st.DrawFn) -> pb.SipURI:
    user = draw(st.one_of(st.just(""), TOKEN))
    return pb.SipURI(
        user=user,
        user_password=draw(st.one_of(st.just(""), TOKEN)) if user else "",
        host=draw(HOST),
        port=draw(PORT),
        transport_param=draw(st.sampled_from(["", "udp", "tcp", "tls", "ws", "wss"])),
        user_param=draw(st.sampled_from(["", "phone", "ip"])),
        method_param=draw(st.sampled_from(["", "INVITE", "REGISTER"])),
        m_addr_param=draw(st.one_of(st.just(""), st.ip_addresses(v=4).map(str))),
        ttl_param=draw(TTL),
        lr_param=draw(st.booleans()),
        bnc_param=draw(st.booleans()),
        secure=draw(st.booleans()),
    )


PARAMS = st.dictionaries(
    LOWER_TOKEN.filter(lambda k: k not in ("tag", "expires", "q")),
    st.one_of(st.just(""), TOKEN),
    max_size=3,
)


@settings(max_examples=150, deadline=None)
@given(uri=sip_uris(), display=DISPLAY, tag=st.one_of(st.just(""), TOKEN), params=PARAMS)
def test_from_round_trip(uri: pb.SipURI, display: str, tag: str, params: dict[str, str]) -> None:
    header = pb.From(address=pb.Address(uri=uri, display_name=display), tag=tag, parameters=params)
    if tag:
        header.parameters["tag"] = tag
    back = pb.From()
    fill_from_to(back, parse_name_addr(from_to_text(header, "From")))
    assert back == header


@settings(max_examples=100, deadline=None)
@given(
    uri=sip_uris(),
    expires=st.one_of(st.just(-1), st.integers(0, 2**31 - 1)),
    q=st.one_of(st.just(-1.0), st.sampled_from([0.0, 0.1, 0.5, 0.75, 1.0])),
)
def test_contact_round_trip(uri: pb.SipURI, expires: int, q: float) -> None:
    contact = pb.Contact(address=pb.Address(uri=uri), expires=expires, q_value=q)
    back = pb.Contact()
    fill_contact(back, parse_name_addr(contact_text(contact)))
    assert back == contact


@settings(max_examples=100, deadline=None)
@given(uri=sip_uris(), params=PARAMS)
def test_route_round_trip(uri: pb.SipURI, params: dict[str, str]) -> None:
    route = pb.RecordRoute(address=pb.Address(uri=uri), parameters=params)
    back = pb.RecordRoute()
    fill_route(back, parse_name_addr(route_text(route, "Record-Route")))
    assert back == route


@settings(max_examples=150, deadline=None)
@given(
    host=HOST,
    port=PORT,
    transport=st.sampled_from(["UDP", "TCP", "TLS", "WS", "WSS"]),
    branch=st.one_of(st.just(""), TOKEN.map(lambda t: "z9hG4bK" + t)),
    rport=st.one_of(
        st.just((False, -1)), st.just((True, -1)), st.integers(1, 65535).map(lambda p: (True, p))
    ),
    received=st.one_of(st.just(""), st.ip_addresses().map(str)),
    maddr=st.one_of(st.just(""), st.ip_addresses(v=4).map(str)),
    ttl=TTL,
)
def test_via_round_trip(
    host: str,
    port: int,
    transport: str,
    branch: str,
    rport: tuple[bool, int],
    received: str,
    maddr: str,
    ttl: int,
) -> None:
    via = pb.Via(
        host=host,
        port=port,
        transport=transport,
        branch=branch,
        r_port_flag=rport[0],
        r_port=rport[1],
        received=received,
        m_addr=maddr,
        ttl=ttl,
    )
    back = pb.Via()
    fill_via(back, parse_via(via_text(via)))
    assert back == via


ANY_TEXT = st.text(max_size=16)


@settings(max_examples=200, deadline=None)
@given(
    ext_name=st.one_of(TOKEN, ANY_TEXT),
    ext_value=ANY_TEXT,
    display=ANY_TEXT,
    user=st.one_of(TOKEN, ANY_TEXT),
    host=st.one_of(HOST, ANY_TEXT),
    param=st.tuples(st.one_of(LOWER_TOKEN, ANY_TEXT), ANY_TEXT),
    tag=st.one_of(TOKEN, ANY_TEXT),
    call_id=st.one_of(TOKEN, ANY_TEXT),
    via_host=st.one_of(HOST, ANY_TEXT),
)
def test_no_reply_can_inject_a_line(
    ext_name: str,
    ext_value: str,
    display: str,
    user: str,
    host: str,
    param: tuple[str, str],
    tag: str,
    call_id: str,
    via_host: str,
) -> None:
    """Whatever a processor returns: a ReplyError, or a message with exactly its own lines."""
    original = parse_message(
        b"MESSAGE sip:b@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK1\r\n"
        b"From: <sip:a@example.com>;tag=1\r\n"
        b"To: <sip:b@example.com>\r\n"
        b"Call-ID: m1\r\n"
        b"CSeq: 1 MESSAGE\r\n"
        b"\r\n"
    )
    assert isinstance(original, Request)
    reply = processor_pb2.MessageResponse()
    reply.message.CopyFrom(to_sip_message(original))
    message = reply.message
    message.extensions.add(name=ext_name, value=ext_value)
    message.to.address.display_name = display
    message.to.address.uri.user = user
    message.to.address.uri.host = host
    message.to.parameters[param[0]] = param[1]
    message.to.tag = tag
    message.call_id.call_id = call_id
    message.via.add(host=via_host)
    try:
        request = build_forward_request(reply, original, branch_factory=lambda: "z9hG4bKx").request
    except ReplyError:
        return
    data = request.to_bytes()
    head, _, body = data.partition(b"\r\n\r\n")
    assert body == b""
    # The start line, then one line per header, then Content-Length: nothing more.
    assert head.count(b"\r\n") == len(request.headers) + 1
    assert head.count(b"\n") == head.count(b"\r") == head.count(b"\r\n")
    assert b"\x00" not in head
