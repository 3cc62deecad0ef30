"""The header lines a processor's reply carries, checked and grouped for the wire (contract §4).

:func:`header_groups` writes every header of a reply's SIPMessage (typed
fields and extensions) as ``(name, lookup key, text)`` rows grouped by
lookup key, in a fixed order of the typed headers; a value the reply
returns unchanged is the original text (:class:`~.originals.Originals`),
any other is written from its fields. Every name must be a token and no
value may hold CR, LF or NUL. X-Gateway-Auth is taken out apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from edgeport._proto import sipmessage_pb2
from edgeport.convert.to_sip import (
    ReplyError,
    authorization_text,
    breaks_line,
    check_token,
    check_value,
    contact_text,
    from_to_text,
    route_text,
    via_text_parts,
    www_authenticate_text,
)
from edgeport.sip.headers import TOKEN_CHARS, header_key

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from edgeport.convert.originals import Originals

__all__ = ["ORDER", "Row", "Rows", "flatten", "header_groups", "ordered_keys"]

GATEWAY_AUTH_KEY: Final = "x-gateway-auth"
# Written in this order, each typed value first, then extensions of that name;
# the remaining extensions follow in order of first appearance.
ORDER: Final = (
    "via",
    "route",
    "record-route",
    "max-forwards",
    "from",
    "to",
    "call-id",
    "cseq",
    "contact",
    "expires",
    "authorization",
    "www-authenticate",
)
_ORDER_SET: Final = frozenset(ORDER)

# (name as written, lookup key, value): a header line ready for Headers.from_keyed.
Row = tuple[str, str, str]
Rows = list[Row]
# Extension header name -> lookup key, for names already checked to be tokens.
_EXTENSION_KEYS: Final[dict[str, str]] = {}
_EXTENSION_KEYS_MAX: Final = 1024  # entries; past it a new name is checked each time


def _extension_key(name: str) -> str:
    key = _EXTENSION_KEYS.get(name)
    if key is None:
        if not name or name.strip(TOKEN_CHARS):
            raise ReplyError(f"invalid header name {name!r}")
        key = header_key(name)
        if len(_EXTENSION_KEYS) < _EXTENSION_KEYS_MAX:
            _EXTENSION_KEYS[name] = key
    return key


# Written text of the Vias and Routes a processor adds, by their serialised
# protobuf: a processor adds the same ones (its own Via, the next hop's Route)
# to message after message. Only protobufs up to _TEXT_KEY_MAX bytes are kept.
_VIA_TEXTS: Final[dict[bytes, tuple[str, str | None, str]]] = {}
_ROUTE_TEXTS: Final[dict[bytes, str]] = {}
_TEXTS_MAX: Final = 1024  # entries per table; when full it is emptied and fills again
_TEXT_KEY_MAX: Final = 512  # bytes of a serialised Via or Route


def _without_branch(via: sipmessage_pb2.Via) -> sipmessage_pb2.Via:
    copy = sipmessage_pb2.Via()
    copy.CopyFrom(via)
    copy.branch = ""
    return copy


def _via_text(via: sipmessage_pb2.Via, via_branch: str, branch: str | None) -> str:
    """:func:`via_text` for a Via not in the original message; ``via_branch`` is ``via.branch``."""
    key = via.SerializeToString()
    parts = _VIA_TEXTS.get(key)
    if parts is None:
        head, branch_text, tail = via_text_parts(via, branch)
        if len(key) <= _TEXT_KEY_MAX:
            if len(_VIA_TEXTS) >= _TEXTS_MAX:
                _VIA_TEXTS.clear()
            # A branch of the Via's own is part of the key; one filled in is not.
            _VIA_TEXTS[key] = (head, branch_text if via_branch else None, tail)
        return f"{head}{branch_text}{tail}"
    head, fixed_branch, tail = parts
    if fixed_branch is None:
        fixed_branch = f";branch={check_token(branch, 'Via branch')}" if branch else ""
    return f"{head}{fixed_branch}{tail}"


def _route_text(route: sipmessage_pb2.Route | sipmessage_pb2.RecordRoute, what: str) -> str:
    """:func:`route_text` for a value not in the original message."""
    key = route.SerializeToString()
    text = _ROUTE_TEXTS.get(key)  # never one with parameters: see below
    if text is None:
        text = route_text(route, what)
        if route.parameters:
            # Written in the map's order, which the serialised form need not share.
            return text
        if len(key) <= _TEXT_KEY_MAX:
            if len(_ROUTE_TEXTS) >= _TEXTS_MAX:
                _ROUTE_TEXTS.clear()
            _ROUTE_TEXTS[key] = text
    return text


def header_groups(
    message: sipmessage_pb2.SIPMessage,
    originals: Originals,
    skip: frozenset[str] = frozenset(),
    branch_factory: Callable[[], str] | None = None,
    replace_branch: bool = False,
) -> tuple[dict[str, Rows], str | None]:
    """Every header line the reply carries, grouped by lookup key; X-Gateway-Auth apart.

    Groups come in :data:`ORDER` (each typed value first, then extensions
    of that name), then the other extensions in order of first appearance.
    Content-Length is left out (it is recomputed from the body). Every
    name and value is checked: a name must be a token, a value must not
    hold CR, LF or NUL.
    """
    groups: dict[str, Rows] = {}
    if "via" not in skip:
        vias = message.via
        if vias:
            rows: Rows = []
            for via in vias:
                via_branch = via.branch
                text = originals.via(via, via_branch)
                if text is None:
                    # The top Via of a forwarded request, which the processor
                    # wrote for edgeport (it is not one the request came with),
                    # gets edgeport's branch when it has none, or always with
                    # ``replace_branch``.
                    branch = None
                    if (
                        not rows
                        and branch_factory is not None
                        and (replace_branch or not via_branch)
                    ):
                        if via_branch:
                            via, via_branch = _without_branch(via), ""
                        branch = branch_factory()
                    text = _via_text(via, via_branch, branch)
                rows.append(("Via", "via", text))
            groups["via"] = rows
    if "route" not in skip:
        routes = message.route
        if routes:
            groups["route"] = [
                ("Route", "route", originals.listed("route", route) or _route_text(route, "Route"))
                for route in routes
            ]
    if "record-route" not in skip:
        record_routes = message.record_route
        if record_routes:
            groups["record-route"] = [
                (
                    "Record-Route",
                    "record-route",
                    originals.listed("record-route", route) or _route_text(route, "Record-Route"),
                )
                for route in record_routes
            ]
    has_field = message.HasField
    if "max-forwards" not in skip and has_field("max_forwards"):
        hops = message.max_forwards.max_forwards
        if not 0 <= hops <= 255:
            raise ReplyError(f"Max-Forwards {hops} out of range")
        groups["max-forwards"] = [("Max-Forwards", "max-forwards", str(hops))]
    if "from" not in skip and has_field("from"):
        header = getattr(message, "from")
        text = originals.single("from", "from", header) or from_to_text(header, "From")
        groups["from"] = [("From", "from", text)]
    if "to" not in skip and has_field("to"):
        header = message.to
        text = originals.single("to", "to", header) or from_to_text(header, "To")
        groups["to"] = [("To", "to", text)]
    if "call-id" not in skip and has_field("call_id"):
        call_id = message.call_id.call_id
        if call_id:
            check_value(call_id, "Call-ID")
            if len(call_id.split()) != 1:
                raise ReplyError("Call-ID holds whitespace")
            groups["call-id"] = [("Call-ID", "call-id", call_id)]
    # CSeq travels as an extension: its group's place is kept here, so the
    # groups come out in ORDER without sorting them again.
    cseq_rows: Rows | None = None
    if "cseq" not in skip:
        cseq_rows = groups["cseq"] = []
    if "contact" not in skip and has_field("contact"):
        contact = message.contact
        text = originals.single("contact", "contact", contact) or contact_text(contact)
        groups["contact"] = [("Contact", "contact", text)]
    if "expires" not in skip and has_field("expires"):
        if message.expires.expires < 0:
            raise ReplyError(f"Expires {message.expires.expires} is negative")
        groups["expires"] = [("Expires", "expires", str(message.expires.expires))]
    if "authorization" not in skip and has_field("authorization"):
        credentials = message.authorization
        text = originals.single(
            "authorization", "authorization", credentials
        ) or authorization_text(credentials)
        groups["authorization"] = [("Authorization", "authorization", text)]
    if "www-authenticate" not in skip and has_field("www_authenticate"):
        challenge = message.www_authenticate
        text = originals.single(
            "www-authenticate", "www_authenticate", challenge
        ) or www_authenticate_text(challenge)
        groups["www-authenticate"] = [("WWW-Authenticate", "www-authenticate", text)]

    gateway_auth: str | None = None
    extra: dict[str, Rows] = {}
    known_keys = _EXTENSION_KEYS
    out_of_order = False
    values: list[str] = []
    # One pass over the extensions (each read from the protobuf once); the
    # checks of names and values below give the first problem in order.
    for extension in message.extensions:
        name = extension.name
        value = extension.value
        values.append(value)
        key = known_keys.get(name)
        if key is None:
            try:
                key = _extension_key(name)
            except ReplyError:
                _refuse_extensions(message)
                raise
        if key == GATEWAY_AUTH_KEY:
            if gateway_auth is None:
                gateway_auth = value.strip()
            continue
        if key == "content-length" or key in skip:
            continue
        if key in _ORDER_SET:
            same_name = groups.get(key)
            if same_name is None:
                groups[key] = [(name, key, value)]
                out_of_order = True
            else:
                same_name.append((name, key, value))
            continue
        same_name = extra.get(key)
        if same_name is None:
            extra[key] = [(name, key, value)]
        else:
            same_name.append((name, key, value))
    # Typed values were checked as they were written; an extension is raw text.
    # One scan over every value finds the common case (none holds CR, LF or NUL).
    if breaks_line("".join(values)):
        _refuse_extensions(message)
    if cseq_rows is not None and not cseq_rows:
        del groups["cseq"]
    if out_of_order:
        groups = {key: groups[key] for key in ORDER if key in groups}
    groups.update(extra)
    return groups, gateway_auth


def _refuse_extensions(message: sipmessage_pb2.SIPMessage) -> None:
    """Raise ReplyError for the reply's first extension with a bad name or a value
    holding CR, LF or NUL, in order (the name of each first)."""
    for extension in message.extensions:
        _extension_key(extension.name)
        if breaks_line(extension.value):
            raise ReplyError(f"{extension.name} holds CR, LF or NUL")


def flatten(groups: Iterable[Rows]) -> Rows:
    rows: Rows = []
    for group in groups:
        rows.extend(group)
    return rows


def ordered_keys(groups: dict[str, Rows]) -> list[str]:
    known = [key for key in ORDER if key in groups]
    return known + [key for key in groups if key not in ORDER]
