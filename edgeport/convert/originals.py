"""The header values of the message a processor's reply is about, as they were written.

The protobuf cannot hold every parameter SIP can (a Contact's
``+sip.instance``, a Record-Route URI's ``ftag``, a Request-URI's ``ob``,
Via extension parameters). :class:`Originals` pairs each typed header value
of the message edgeport sent the processor with its protobuf form, so a
value the reply returns unchanged is written back as that header's
original text and nothing the protobuf cannot carry is lost (contract §4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeport._proto import sipmessage_pb2
from edgeport.convert.to_proto import (
    fill_challenge,
    fill_contact,
    fill_credentials,
    fill_from_to,
    fill_route,
    fill_sip_uri,
    fill_via,
)
from edgeport.sip.headers import (
    parse_digest_challenge,
    parse_digest_credentials,
    split_header_values,
)
from edgeport.sip.message import Message, Request

if TYPE_CHECKING:
    from collections.abc import Sequence

    from google.protobuf.message import Message as ProtoMessage

    from edgeport.sip.uri import Uri

__all__ = ["Originals"]


class Originals:
    """The typed header values of the message a reply is about, with their protobuf form.

    Built lazily: a reply value equal to one of them is written as that
    header's original text (the raw line when it holds one value, else the
    value written back by the codec). ``sent`` is the SIPMessage edgeport
    made from the message, when the caller kept it: its fields are then
    compared as they are instead of being made again.
    """

    __slots__ = ("_branches", "_lists", "_message", "_sent", "_via_protos", "_via_texts")

    def __init__(self, message: Message, sent: sipmessage_pb2.SIPMessage | None) -> None:
        self._message = message
        self._sent = sent
        self._lists: dict[str, list[tuple[ProtoMessage, str]]] = {}
        self._branches: dict[str, int] | None = None
        self._via_protos: Sequence[sipmessage_pb2.Via] | None = None
        self._via_texts: list[str] | None = None

    def _texts(self, key: str, values: Sequence[object]) -> list[str]:
        lines = self._message.headers.get_all(key)
        if len(lines) == len(values):
            return [line.strip() for line in lines]
        return [str(value) for value in values]

    def _lone_lines(self, key: str, sent_count: int) -> list[str] | None:
        """The lines of ``key``, stripped, when each holds one value and there are
        as many as ``sent`` has values: then they pair with ``sent``'s values in
        order, and nothing needs parsing. Else None."""
        lines = self._message.headers.get_all(key)
        if len(lines) != sent_count:
            return None
        texts = []
        for line in lines:
            if len(split_header_values(line)) != 1:
                return None
            texts.append(line.strip())
        return texts

    def _make_list(self, kind: str) -> list[tuple[ProtoMessage, str]]:
        msg = self._message
        sent = self._sent
        sent_routes = None
        if sent is not None:
            sent_routes = sent.route if kind == "route" else sent.record_route
            texts = self._lone_lines(kind, len(sent_routes))
            if texts is not None:
                return list(zip(sent_routes, texts, strict=True)) if texts else []
        addrs = msg.routes if kind == "route" else msg.record_routes
        if not addrs:
            return []
        protos: Sequence[ProtoMessage]
        if sent_routes is not None and len(sent_routes) == len(addrs):
            protos = sent_routes
        else:
            cls = sipmessage_pb2.Route if kind == "route" else sipmessage_pb2.RecordRoute
            protos = []
            for addr in addrs:
                route = cls()
                fill_route(route, addr)
                protos.append(route)
        return list(zip(protos, self._texts(kind, addrs), strict=True))

    def listed(self, kind: str, value: ProtoMessage) -> str | None:
        """The original text of a Route or Record-Route value equal to ``value``."""
        pairs = self._lists.get(kind)
        if pairs is None:
            pairs = self._lists[kind] = self._make_list(kind)
        for proto, text in pairs:
            if proto == value:
                return text
        return None

    def _index_vias(self) -> dict[str, int]:
        """Branch -> position of the first original Via with it (set up once)."""
        branches: dict[str, int] = {}
        sent = self._sent
        if sent is not None:
            # The Vias as sent pair with the lines when each line holds one:
            # their branches are read from the protobuf, nothing is parsed.
            protos = sent.via
            texts = self._lone_lines("via", len(protos))
            if texts is not None:
                # The branches as parsed, when they are (the parser parses a lone
                # Via), spare reading each protobuf: a Via's branch field is its
                # branch parameter, or "" without one.
                parsed = self._message.parsed_vias()
                if parsed is not None and len(parsed) == len(texts):
                    for position, via in enumerate(parsed):
                        branches.setdefault(via.params.get("branch") or "", position)
                else:
                    for position, proto in enumerate(protos):
                        branches.setdefault(proto.branch, position)
                self._via_protos = protos
                self._via_texts = texts
                return branches
        for position, via in enumerate(self._message.via):
            branches.setdefault(via.branch or "", position)
        return branches

    def via(self, value: sipmessage_pb2.Via, branch: str) -> str | None:
        """The original text of a Via value equal to ``value`` (whose branch is ``branch``).

        Candidates are found by branch first (a string compare), so a Via
        the processor added costs no protobuf comparison.
        """
        branches = self._branches
        if branches is None:
            branches = self._branches = self._index_vias()
        index = branches.get(branch)
        if index is None:
            return None
        protos = self._via_protos
        if protos is not None:
            texts = self._via_texts
            assert texts is not None
            return texts[index] if protos[index] == value else None
        sent = self._sent
        vias = self._message.via
        if sent is not None and len(sent.via) == len(vias):
            proto = sent.via[index]
        else:
            proto = sipmessage_pb2.Via()
            fill_via(proto, vias[index])
        if proto != value:
            return None
        texts = self._via_texts
        if texts is None:
            texts = self._via_texts = self._texts("via", vias)
        return texts[index]

    def single(self, kind: str, field: str, value: ProtoMessage) -> str | None:
        """The original text of From, To, the first Contact, WWW-Authenticate or Authorization."""
        msg = self._message
        line = msg.headers.get(kind)
        if line is None:
            return None
        sent = self._sent
        proto: ProtoMessage
        if sent is not None and sent.HasField(field):
            proto = getattr(sent, field)
        elif kind == "from" or kind == "to":
            proto = sipmessage_pb2.From() if kind == "from" else sipmessage_pb2.To()
            fill_from_to(proto, msg.from_ if kind == "from" else msg.to)
        elif kind == "contact":
            proto = sipmessage_pb2.Contact()
            fill_contact(proto, msg.contacts[0])
        elif kind == "www-authenticate":
            proto = sipmessage_pb2.WWWAuthenticate()
            fill_challenge(proto, parse_digest_challenge(line))
        else:
            proto = sipmessage_pb2.Authorization()
            fill_credentials(proto, parse_digest_credentials(line))
        if proto != value:
            return None
        if kind == "contact":
            # The raw line when the lines hold one value each (counted without
            # parsing them again), else the first value written back.
            lines = msg.headers.get_all(kind)
            if len(lines) == 1 and "," not in line:
                return line.strip()
            if all(len(split_header_values(contact_line)) == 1 for contact_line in lines):
                return lines[0].strip()
            return str(msg.contacts[0])
        return line.strip()

    def request_uri(self, uri: sipmessage_pb2.SipURI) -> Uri | None:
        """The original Request-URI when ``uri`` is its protobuf form, unchanged."""
        original = self._message
        assert isinstance(original, Request)
        sent = self._sent
        if sent is not None and sent.WhichOneof("message_type") == "request_uri":
            proto = sent.request_uri
        else:
            proto = sipmessage_pb2.SipURI()
            fill_sip_uri(proto, original.uri)
        return original.uri if proto == uri else None
