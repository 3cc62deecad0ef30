"""Loop detection through the Via branch (RFC 3261 §16.3 item 4, §16.6 item 8).

RFC 3261 §16.6 item 8: "A proxy choosing to detect loops SHOULD create a
branch parameter separable into two parts by the implementation. The first
part MUST satisfy the constraints of Section 8.1.1.7 as described above. The
second is used to perform loop detection and distinguish loops from
spirals."

edgeport's branch is ``<unique part>.l<mark>``: the mark is 8 hex digits of a
keyed hash (BLAKE2b, keyed by the edgeport instance, so another edgeport's
Via never matches) over what decides where a request goes, read from the
request *as edgeport received it*: the Request-URI, the From and To tags, the
Call-ID, the CSeq number, every Proxy-Require and Proxy-Authorization value,
and the branch and sent-by of the top Via (the one below edgeport's own once
forwarded).

RFC 3261 §16.3 item 4: "If the request contains a Via header field with a
sent-by value that equals a value placed into previous requests by the
proxy, the request has been forwarded by this element before. The request
has either looped or is legitimately spiraling through the element. To
determine if the request has looped, the element MAY perform the branch
parameter calculation described in Section 16.6 on this message and compare
it to the parameter received in that Via header field. If the parameters
match, the request has looped. If they differ, the request is spiraling".
:func:`has_looped` does that for each Via that carries edgeport's mark: the
mark of the request as it arrives now, taking the Via just below that one
as the top Via it had then, equal to the mark in that Via means a loop
(482); a different one means a spiral (the Request-URI or another input
changed), which goes on.

Sans-IO: no clock, no randomness; the key is given.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Final

from edgeport.sip.errors import SipParseError

if TYPE_CHECKING:
    from edgeport.sip.headers import Via
    from edgeport.sip.message import Request

MARK_SEPARATOR: Final = ".l"
MARK_HEX_DIGITS: Final = 8
MAX_VIAS_CHECKED: Final = 70  # a request has at most 70 hops (Max-Forwards)
KEY_BYTES: Final = 16

# A branch edgeport wrote: the magic cookie, a unique part, then the mark.
_MARKED: Final = re.compile(r"z9hG4bK[^;,\s]*\.l([0-9a-f]{8})\Z")
_RAW_MARK: Final = re.compile(r"\.l[0-9a-f]{8}(?:[;,\s]|\Z)")


def loop_mark(request: Request, key: bytes, *, top_via: Via | None = None) -> str:
    """The mark of ``request`` as received, ``top_via`` standing for its top Via.

    Raises SipParseError when a header the mark reads is malformed.
    """
    top = top_via if top_via is not None else request.top_via
    headers = request.headers
    parts = (
        str(request.uri),
        request.from_.tag or "",
        request.to.tag or "",
        request.call_id,
        str(request.cseq.seq),
        "\x1f".join(headers.get_all("Proxy-Require")),
        "\x1f".join(headers.get_all("Proxy-Authorization")),
        top.branch or "",
        top.host.lower(),
        str(top.port or ""),
    )
    digest = hashlib.blake2b(
        "\x00".join(parts).encode("utf-8", "surrogateescape"),
        key=key,
        digest_size=MARK_HEX_DIGITS // 2,
    )
    return digest.hexdigest()


def is_marked_branch(branch: str) -> bool:
    """Whether ``branch`` has the form of edgeport's branches (a loop mark at the end)."""
    return _MARKED.match(branch) is not None


def marked_branch(unique: str, mark: str) -> str:
    """``unique`` (which starts with the RFC 3261 magic cookie) with the loop mark."""
    return f"{unique}{MARK_SEPARATOR}{mark}"


def has_looped(request: Request, key: bytes) -> bool:
    """True when a Via of ``request`` carries edgeport's mark for this very request.

    A Via without the mark (another element's) is ignored, and so is one
    marked by another edgeport instance (its key differs).
    """
    if not any(_RAW_MARK.search(value) for value in request.headers.get_all("Via")):
        return False  # the usual case: no Via of ours, nothing parsed
    try:
        vias = request.via[: MAX_VIAS_CHECKED + 1]
        for index, via in enumerate(vias[:-1]):
            match = _MARKED.match(via.branch or "")
            if match is not None and loop_mark(request, key, top_via=vias[index + 1]) == (
                match.group(1)
            ):
                return True
    except SipParseError:
        return False  # a request too broken to tell is refused elsewhere
    return False
