"""Protobuf header values -> SIP header text (contract §2 conventions, read backwards).

A processor's reply is untrusted input: every value that ends up on the wire
goes through here. A value holding CR, LF or NUL would start a new header
line or end the header section (header injection), so it is refused with
:class:`ReplyError`, and the proxy answers 500. The conventions are those
of the forward direction: a port of -1 (or 0, a field the processor never
set) is absent, ``ttl`` below 1 is absent, ``Contact.expires`` and
``Contact.q_value`` below 0 are absent, ``r_port_flag`` without a positive
``r_port`` is a bare ``;rport`` (RFC 3581 §3).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from edgeport.convert.errors import ReplyError
from edgeport.sip.headers import is_token, quote_string
from edgeport.sip.uri import SipUri

if TYPE_CHECKING:
    from collections.abc import Iterable

    from edgeport._proto import sipmessage_pb2 as pb

__all__ = [
    "ReplyError",
    "address_text",
    "authorization_text",
    "breaks_line",
    "check_header_name",
    "check_token",
    "check_value",
    "contact_text",
    "from_to_text",
    "route_text",
    "sip_uri",
    "sip_uri_text",
    "via_text",
    "via_text_parts",
    "www_authenticate_text",
]

# Characters that would break the message framing (see breaks_line): RFC 3261
# §7.3.1 header lines end at CRLF; NUL has no place in a SIP message.
# Inside a URI or a Via, whitespace would also end the Request-URI of the
# start line or split the value; quotes and angle brackets would end a name-addr.
_URI_BREAKER: Final = re.compile('[\x00- <>"\x7f]')
# A host, or a token-valued parameter (transport, branch, received, maddr...):
# RFC 3261 §25.1 token and host characters only, so a value cannot open another
# parameter (";"), another list element (",") or a different part of the URI.
_NOT_TOKEN_OR_HOST: Final = re.compile(r"[^A-Za-z0-9\-.!%*_+`'~:\[\]]")
# A user or password: RFC 3261 §25.1 userinfo has no unescaped "@", ":" or brackets.
_NOT_USERINFO: Final = re.compile(r"[^A-Za-z0-9\-_.!~*'()%&=+$,;?/]")
# A generic parameter value that is not a quoted-string: token / host.
_QUOTED: Final = re.compile(r'"(?:[^"\\\x00-\x1f]|\\[^\r\n\x00])*"')
_DEFAULT_VIA_TRANSPORT: Final = "UDP"
_MAX_PORT: Final = 65535


def breaks_line(value: str) -> bool:
    """Whether ``value`` holds CR, LF or NUL (three scans for one character beat a regex)."""
    return "\r" in value or "\n" in value or "\x00" in value


def check_value(value: str, what: str) -> str:
    """Return ``value`` when it holds no CR, LF or NUL; raise ReplyError otherwise."""
    if "\r" in value or "\n" in value or "\x00" in value:
        raise ReplyError(f"{what} holds CR, LF or NUL")
    return value


def check_header_name(name: str) -> str:
    """RFC 3261 §7.3: ``field-name = token``; anything else is refused."""
    if not is_token(name):
        raise ReplyError(f"invalid header name {name!r}")
    return name


def _bracket(host: str) -> str:
    # RFC 3261 §25.1: an IPv6 address in a URI or Via is an IPv6reference, in brackets.
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def _port(port: int, what: str) -> int | None:
    if port <= 0:
        return None
    if port > _MAX_PORT:
        raise ReplyError(f"{what} port {port} out of range")
    return port


def check_token(value: str, what: str) -> str:
    """A host or token-valued parameter: token and host characters only."""
    if _NOT_TOKEN_OR_HOST.search(value) is not None:
        raise ReplyError(f"{what} {value!r} is not a token or host")
    return value


def _uri_parts(
    uri: pb.SipURI, what: str
) -> tuple[str, str | None, str | None, str, int | None, dict[str, str | None]]:
    host = uri.host
    if not host:
        raise ReplyError(f"{what} has no host")
    check_token(host, f"{what} host")
    params: dict[str, str | None] = {}
    if uri.transport_param:
        params["transport"] = check_token(uri.transport_param.lower(), f"{what} transport")
    if uri.user_param:
        params["user"] = check_token(uri.user_param, f"{what} user parameter")
    if uri.method_param:
        params["method"] = check_token(uri.method_param, f"{what} method")
    if uri.ttl_param > 0:
        params["ttl"] = str(uri.ttl_param)
    if uri.m_addr_param:
        params["maddr"] = check_token(uri.m_addr_param, f"{what} maddr")
    if uri.lr_param:
        params["lr"] = None
    if uri.bnc_param:
        params["bnc"] = None
    user = uri.user or None
    password = uri.user_password or None if user else None
    for part in (user, password):
        if part is not None and _NOT_USERINFO.search(part) is not None:
            raise ReplyError(f"{what} user part {part!r} holds a character it cannot")
    return (
        "sips" if uri.secure else "sip",
        user,
        password,
        _bracket(host),
        _port(uri.port, what),
        params,
    )


def sip_uri(uri: pb.SipURI, what: str = "URI") -> SipUri:
    """A ``SipURI`` message as a :class:`SipUri` (for a Request-URI); see :func:`sip_uri_text`."""
    result = SipUri(*_uri_parts(uri, what))
    _check_uri_text(str(result), what)
    return result


def sip_uri_text(uri: pb.SipURI, what: str = "URI") -> str:
    """``sip:user:pw@host:port;transport=tcp;...`` from a ``SipURI`` message.

    Parameters come out in a fixed order: transport, user, method, ttl,
    maddr, lr, bnc. A transport is written lower case (Routr processors set
    ``TCP``). An empty host, or whitespace, quotes, angle brackets or
    control characters anywhere, are refused.
    """
    scheme, user, password, host, port, params = _uri_parts(uri, what)
    parts = [scheme, ":"]
    if user is not None:
        parts.append(user)
        if password is not None:
            parts.append(":")
            parts.append(password)
        parts.append("@")
    parts.append(host)
    if port is not None:
        parts.append(f":{port}")
    for name, value in params.items():
        parts.append(f";{name}" if value is None else f";{name}={value}")
    return _check_uri_text("".join(parts), what)


def _check_uri_text(text: str, what: str) -> str:
    if _URI_BREAKER.search(text) is not None:
        raise ReplyError(f"{what} holds whitespace, quotes, angle brackets or control characters")
    return text


def address_text(address: pb.Address, what: str) -> str:
    """``"Display" <uri>``; the display name is a quoted-string (RFC 3261 §25.1)."""
    uri = sip_uri_text(address.uri, what)
    if address.display_name:
        name = check_value(address.display_name, f"{what} display name")
        return f"{quote_string(name)} <{uri}>"
    return f"<{uri}>"


def _param_value(value: str, what: str) -> str:
    """RFC 3261 §25.1 ``gen-value = token / host / quoted-string``."""
    if value.startswith('"') and _QUOTED.fullmatch(value) is not None:
        return value
    return check_token(value, f"{what} parameter value")


def _param_text(name: str, value: str, what: str) -> str:
    if not is_token(name):
        raise ReplyError(f"{what} parameter name {name!r} is not a token")
    if not value:
        return f";{name}"
    return f";{name}={_param_value(value, what)}"


def _params_text(params: Iterable[tuple[str, str]], what: str) -> str:
    return "".join(_param_text(name, value, what) for name, value in params)


def from_to_text(header: pb.From | pb.To, what: str) -> str:
    """From / To: the address, every parameter, and ``tag`` from its own field.

    ``tag`` is both a field and a parameter in the protobuf; the field wins,
    and the tag is written once, after the other parameters.
    """
    tag = header.tag
    parts = [address_text(header.address, what)]
    for name, value in header.parameters.items():
        if name == "tag":
            continue
        parts.append(_param_text(name, value, what))
    if not tag:
        tag = header.parameters.get("tag", "")
    if tag:
        parts.append(f";tag={check_token(tag, f'{what} tag')}")
    return "".join(parts)


def _q_text(q: float) -> str:
    # RFC 3261 §20.10: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
    text = f"{min(q, 1.0):.3f}".rstrip("0").rstrip(".")
    return text or "0"


def contact_text(contact: pb.Contact) -> str:
    """Contact: ``*`` for a wildcard, else the address with ``expires`` and ``q`` when set."""
    if contact.address.wildcard:
        return "*"
    text = address_text(contact.address, "Contact")
    if contact.expires >= 0:
        text += f";expires={contact.expires}"
    if contact.q_value >= 0.0:
        text += f";q={_q_text(contact.q_value)}"
    return text


def route_text(route: pb.Route | pb.RecordRoute, what: str) -> str:
    text = address_text(route.address, what)
    if route.parameters:
        text += _params_text(route.parameters.items(), what)
    return text


def via_text(via: pb.Via, branch: str | None = None) -> str:
    """``SIP/2.0/UDP host:port;branch=...;rport=...;received=...;maddr=...;ttl=...``.

    ``branch`` replaces an empty branch (the top Via of a forwarded request).
    Host, transport and parameter values are tokens or hosts: nothing that
    could open another parameter or another Via value.
    """
    return "".join(via_text_parts(via, branch))


def via_text_parts(via: pb.Via, branch: str | None = None) -> tuple[str, str, str]:
    """:func:`via_text` in three: protocol and sent-by, ``;branch=...``, the other parameters.

    Apart, a Via made once can take a new branch each time it is written.
    """
    host = via.host
    if not host:
        raise ReplyError("Via has no host")
    transport = via.transport.upper() or _DEFAULT_VIA_TRANSPORT
    if not is_token(transport):
        raise ReplyError(f"invalid Via transport {transport!r}")
    head = f"SIP/2.0/{transport} {check_token(_bracket(host), 'Via host')}"
    port = _port(via.port, "Via")
    if port is not None:
        head = f"{head}:{port}"
    branch = via.branch or branch
    branch_text = f";branch={check_token(branch, 'Via branch')}" if branch else ""
    parts = []
    if via.r_port > 0:
        parts.append(f";rport={_port(via.r_port, 'Via rport')}")
    elif via.r_port_flag:
        parts.append(";rport")
    if via.received:
        parts.append(f";received={check_token(via.received, 'Via received')}")
    if via.m_addr:
        parts.append(f";maddr={check_token(via.m_addr, 'Via maddr')}")
    if via.ttl > 0:
        parts.append(f";ttl={via.ttl}")
    return head, branch_text, "".join(parts)


def _auth_params(pairs: Iterable[tuple[str, str, bool]]) -> str:
    items = []
    for name, value, quoted in pairs:
        if value:
            check_value(value, name)
            items.append(f"{name}={quote_string(value) if quoted else value}")
    return ", ".join(items)


def www_authenticate_text(challenge: pb.WWWAuthenticate) -> str:
    """``Digest realm="...", nonce="...", opaque="...", stale=true, algorithm=MD5, qop="auth"``.

    RFC 2617 §3.2.1: realm, domain, nonce, opaque and qop-options are quoted;
    stale and algorithm are tokens. ``stale`` is written only when true.
    """
    scheme = check_header_name(challenge.scheme or "Digest")
    params = _auth_params(
        (
            ("realm", challenge.realm, True),
            ("domain", challenge.domain, True),
            ("nonce", challenge.nonce, True),
            ("opaque", challenge.opaque, True),
            ("stale", "true" if challenge.stale else "", False),
            ("algorithm", challenge.algorithm, False),
            ("qop", challenge.qop, True),
        )
    )
    return f"{scheme} {params}" if params else scheme


def authorization_text(credentials: pb.Authorization) -> str:
    """``Digest username="...", realm="...", nonce="...", uri="...", response="...", ...``.

    RFC 2617 §3.2.2: qop, nc and algorithm are tokens; nc is 8 hex digits.
    ``method`` is not a digest parameter and is not written.
    """
    scheme = check_header_name(credentials.scheme or "Digest")
    nc = f"{credentials.nonce_count:08x}" if credentials.nonce_count > 0 else ""
    params = _auth_params(
        (
            ("username", credentials.username, True),
            ("realm", credentials.realm, True),
            ("nonce", credentials.nonce, True),
            ("uri", credentials.uri, True),
            ("response", credentials.response, True),
            ("algorithm", credentials.algorithm, False),
            ("cnonce", credentials.c_nonce, True),
            ("opaque", credentials.opaque, True),
            ("qop", credentials.qop, False),
            ("nc", nc, False),
        )
    )
    return f"{scheme} {params}" if params else scheme
