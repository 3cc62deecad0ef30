"""Parser properties: generated messages round-trip; junk raises only SipParseError.

The generator below writes SIP text itself (its own quoting, its own
header spelling), so the parser is checked against an independent writer.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeport.sip import (
    NameAddr,
    Request,
    Response,
    SipParseError,
    SipUri,
    parse_message,
    parse_name_addr,
    parse_uri,
)

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
TOKEN = ALNUM + "-.!%*_+`'~"

tokens = st.text(alphabet=TOKEN, min_size=1, max_size=12)
labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
hostnames = st.lists(labels, min_size=1, max_size=4).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.sampled_from(["[2001:db8::1]", "[::1]", "[fe80::a:b:c:d]", "[2001:db8:0:0:1:0:0:1]"])
hosts = st.one_of(hostnames, ipv4, ipv6)
ports = st.one_of(st.none(), st.integers(1, 65535))
users = st.one_of(
    st.none(),
    st.text(alphabet=ALNUM + "-_.!~*'()&=+$,;?/", min_size=1, max_size=10),
    st.sampled_from(["%61lice", "a%20b", "+15551234"]),
)
uri_params = st.dictionaries(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=8),
    st.one_of(st.none(), st.text(alphabet=ALNUM + "-_.", min_size=1, max_size=8)),
    max_size=3,
)
display_names = st.one_of(
    st.none(),
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters="\x7f"),
        max_size=12,
    ),
)
methods = st.one_of(
    st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "MESSAGE"]),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=9),
)
ext_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30
).map(str.strip)


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class GenUri:
    scheme: str
    user: str | None
    host: str
    port: int | None
    params: dict[str, str | None]

    def text(self) -> str:
        out = f"{self.scheme}:"
        if self.user is not None:
            out += f"{self.user}@"
        out += self.host
        if self.port is not None:
            out += f":{self.port}"
        for name, value in self.params.items():
            out += f";{name}" if value is None else f";{name}={value}"
        return out


gen_uris = st.builds(GenUri, st.sampled_from(["sip", "sips"]), users, hosts, ports, uri_params)


@dataclass
class GenMessage:
    request: bool
    method: str
    status: int
    uri: GenUri
    vias: list[tuple[str, str, int | None, str, bool]]
    vias_on_one_line: bool
    from_display: str | None
    from_uri: GenUri
    from_tag: str
    to_uri: GenUri
    call_id: str
    cseq: int
    compact: bool
    extensions: list[tuple[str, str]]
    body: bytes
    with_length: bool

    def wire(self) -> bytes:
        names = (
            {"via": "v", "from": "f", "to": "t", "call-id": "i", "length": "l"}
            if self.compact
            else {
                "via": "VIA",
                "from": "From",
                "to": "to",
                "call-id": "Call-Id",
                "length": "Content-Length",
            }
        )
        lines = [
            f"{self.method} {self.uri.text()} SIP/2.0"
            if self.request
            else f"SIP/2.0 {self.status} Some Reason"
        ]
        via_texts = [
            f"SIP/2.0/{t} {h}{'' if p is None else f':{p}'};branch=z9hG4bK{b}"
            + (";rport" if r else "")
            for t, h, p, b, r in self.vias
        ]
        if self.vias_on_one_line:
            lines.append(f"{names['via']}: {', '.join(via_texts)}")
        else:
            lines.extend(f"{names['via']}: {v}" for v in via_texts)
        display = "" if self.from_display is None else quote(self.from_display) + " "
        lines.append(f"{names['from']}: {display}<{self.from_uri.text()}>;tag={self.from_tag}")
        lines.append(f"{names['to']}: <{self.to_uri.text()}>")
        lines.append(f"{names['call-id']}: {self.call_id}")
        lines.append(f"CSeq: {self.cseq} {self.method}")
        lines.extend(f"X-{name}: {value}" for name, value in self.extensions)
        if self.with_length:
            lines.append(f"{names['length']}: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


gen_messages = st.builds(
    GenMessage,
    request=st.booleans(),
    method=methods,
    status=st.integers(100, 699),
    uri=gen_uris,
    vias=st.lists(
        st.tuples(
            st.sampled_from(["UDP", "TCP", "TLS", "WS", "WSS"]), hosts, ports, tokens, st.booleans()
        ),
        min_size=1,
        max_size=3,
    ),
    vias_on_one_line=st.booleans(),
    from_display=display_names,
    from_uri=gen_uris,
    from_tag=tokens,
    to_uri=gen_uris,
    call_id=st.text(alphabet=ALNUM + "-.!%*_+`'~()<>:\\\"/[]?{}@", min_size=1, max_size=20),
    cseq=st.integers(0, 2**31 - 1),
    compact=st.booleans(),
    extensions=st.lists(st.tuples(tokens, ext_values), max_size=3),
    body=st.binary(max_size=40),
    with_length=st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gen_messages)
def test_generated_messages_parse_and_round_trip(gen: GenMessage) -> None:
    raw = gen.wire()
    first = parse_message(raw)
    assert isinstance(first, Request if gen.request else Response)
    if isinstance(first, Request):
        assert first.method == gen.method
        assert str(first.uri) == gen.uri.text()
    assert [(v.transport, v.host, v.port, v.branch, v.has_rport) for v in first.via] == [
        (t, h, p, f"z9hG4bK{b}", r) for t, h, p, b, r in gen.vias
    ]
    assert first.from_.display_name == gen.from_display
    assert first.from_.tag == gen.from_tag
    from_uri = first.from_.uri
    assert isinstance(from_uri, SipUri)
    assert (from_uri.user, from_uri.host, from_uri.port) == (
        gen.from_uri.user,
        gen.from_uri.host,
        gen.from_uri.port,
    )
    assert from_uri.params == gen.from_uri.params
    assert first.call_id == gen.call_id
    assert (first.cseq.seq, first.cseq.method) == (gen.cseq, gen.method)
    assert first.body == gen.body
    for name, value in gen.extensions:
        assert value in first.headers.get_all(f"x-{name}")

    wire = first.to_bytes()
    second = parse_message(wire)
    assert second.to_bytes() == wire
    assert second.via == first.via
    assert second.from_ == first.from_
    assert second.to == first.to
    assert second.body == first.body


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_parse_errors(data: bytes) -> None:
    with contextlib.suppress(SipParseError):
        parse_message(data)


SEED = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKseed;rport\r\n"
    b'From: "Al" <sip:al@example.com>;tag=1\r\n'
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: seed\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:al@10.0.0.1>;expires=60\r\n"
    b"Content-Length: 3\r\n"
    b"\r\n"
    b"abc"
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(0, len(SEED)),
)
def test_mutated_messages_parse_or_raise_parse_errors(
    edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(SEED)
    for index, byte in edits:
        data[index] = byte
    try:
        msg = parse_message(bytes(data[:cut] if cut % 3 == 0 else data))
    except SipParseError:
        return
    # Whatever parsed serialises, and what it serialises parses the same way.
    wire = msg.to_bytes()
    assert parse_message(wire).to_bytes() == wire
    with contextlib.suppress(SipParseError):
        _ = (msg.via, msg.contacts, msg.routes, msg.expires)


@settings(max_examples=200, deadline=None)
@given(gen_uris)
def test_generated_uris_round_trip(gen: GenUri) -> None:
    text = gen.text()
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    assert (uri.scheme, uri.user, uri.host, uri.port, uri.params) == (
        gen.scheme,
        gen.user,
        gen.host,
        gen.port,
        gen.params,
    )
    assert str(uri) == text
    assert parse_uri(str(uri)) == uri


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_uri_parser_raises_only_parse_errors(text: str) -> None:
    try:
        uri = parse_uri(text)
    except SipParseError:
        return
    assert parse_uri(str(uri)) == uri


@settings(max_examples=200, deadline=None)
@given(display_names, gen_uris, st.dictionaries(tokens.map(str.lower), tokens, max_size=3))
def test_name_addr_str_round_trip(display: str | None, uri: GenUri, params: dict[str, str]) -> None:
    addr = NameAddr(display, parse_uri(uri.text()), dict(params))
    assert parse_name_addr(str(addr)) == addr
