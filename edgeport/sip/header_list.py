"""The header section of a SIP message, and how a message goes on the wire (RFC 3261 §7.3).

:class:`Headers` keeps the header lines as received (name as written, raw
value, in order) with a lookup index by folded name (compact forms
expanded) built on first use. :func:`write_message` writes a start line, the
header lines with canonical names, a Content-Length recomputed from the
body, and the body; it refuses a line break in any value (no header
injection).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from edgeport.sip.errors import SipParseError, SipSerializeError
from edgeport.sip.headers import TOKEN_CHARS, canonical_name_for_key, header_key

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["Headers", "write_message"]

# Header name as written -> the start of its line on the wire ("Via: "), for
# names already checked to be tokens (a name's wire form depends on the name alone).
_WIRE_NAMES: Final[dict[str, str]] = {}
_WIRE_NAMES_MAX: Final = 1024  # entries; past it a new name is resolved each time


class Headers:
    """An ordered multi-map of header lines.

    Names compare case-insensitively with compact forms folded (``v`` is
    ``Via``); iteration gives ``(name as received or added, raw value)``.
    ``get_all`` returns one string per line: values are not comma-split here.
    """

    __slots__ = ("_index", "_items", "version")

    # Bumped on every change; typed views cached against an older one are stale.
    version: int

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        # (name as given, lookup key, raw value)
        self._items: list[tuple[str, str, str]] = (
            [(name, header_key(name), value) for name, value in items] if items != () else []
        )
        self.version = 0
        self._index: dict[str, list[str]] | None = None

    @classmethod
    def from_keyed(
        cls, items: list[tuple[str, str, str]], index: dict[str, list[str]] | None = None
    ) -> Headers:
        """Headers over ``(name as written, header_key(name), raw value)`` lines.

        The codec's fast path: the caller vouches for each key (and for
        ``index``, the values by key in order, when it gives one); the list is
        taken over, not copied.
        """
        # cls() rather than cls.__new__(cls): the compiled build's native
        # classes have no __new__ to call.
        headers = cls()
        headers._items = items
        headers._index = index
        return headers

    def _lookup(self) -> dict[str, list[str]]:
        """key -> raw values in order; built on first use, dropped on change."""
        index = self._index
        if index is None:
            index = {}
            for _, key, value in self._items:
                values = index.get(key)
                if values is None:
                    index[key] = [value]
                else:
                    values.append(value)
            self._index = index
        return index

    def _changed(self) -> None:
        self.version += 1
        self._index = None

    def drop_index(self) -> None:
        """Forget the lookup index; it is rebuilt on next use (it holds a list per name)."""
        self._index = None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for name, _, value in self._items:
            yield name, value

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return header_key(name) in self._lookup()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"

    def canonical_items(self) -> Iterator[tuple[str, str]]:
        """``(canonical name, raw value)`` per line; unknown names as received."""
        for name, key, value in self._items:
            yield canonical_name_for_key(key, name), value

    def keyed_items(self) -> list[tuple[str, str, str]]:
        """``(name as written, lookup key, raw value)`` per line, in order (a copy)."""
        return list(self._items)

    def keyed_lines_of(self, keys: frozenset[str]) -> list[tuple[str, str, str]]:
        """``(name as written, lookup key, raw value)`` of the lines whose key is in ``keys``."""
        return [item for item in self._items if item[1] in keys]

    def get(self, name: str) -> str | None:
        values = self._lookup().get(header_key(name))
        return None if values is None else values[0]

    def require(self, name: str) -> str:
        """The first value of ``name``; SipParseError ``Missing <name>`` when there is none."""
        values = self._lookup().get(header_key(name))
        if values is None:
            raise SipParseError(f"Missing {name}")
        return values[0]

    def count(self, name: str) -> int:
        """How many lines of that name (compact forms folded) the message holds."""
        values = self._lookup().get(header_key(name))
        return 0 if values is None else len(values)

    def get_all(self, name: str) -> list[str]:
        values = self._lookup().get(header_key(name))
        return [] if values is None else list(values)

    def add(self, name: str, value: str) -> None:
        self._items.append((name, header_key(name), value))
        self._changed()

    def prepend(self, name: str, value: str) -> None:
        """Insert before the first line of that name, or at the top when there is none."""
        key = header_key(name)
        index = 0
        for i, (_, k, _) in enumerate(self._items):
            if k == key:
                index = i
                break
        self._items.insert(index, (name, key, value))
        self._changed()

    def set(self, name: str, value: str) -> None:
        """Replace every line of that name by one, at the first one's place (else at the end)."""
        key = header_key(name)
        items: list[tuple[str, str, str]] = []
        placed = False
        for item in self._items:
            if item[1] != key:
                items.append(item)
            elif not placed:
                items.append((name, key, value))
                placed = True
        if not placed:
            items.append((name, key, value))
        self._items = items
        self._changed()

    def remove(self, name: str) -> None:
        key = header_key(name)
        self._items = [item for item in self._items if item[1] != key]
        self._changed()

    def replace_first(self, name: str, value: str) -> None:
        """Rewrite the first line of that name in place, keeping its name as written."""
        key = header_key(name)
        for i, (written, k, _) in enumerate(self._items):
            if k == key:
                self._items[i] = (written, key, value)
                index = self._index
                self._changed()
                if index is not None:
                    # The first line of that name is the first value of its key:
                    # the index stays right with one entry rewritten.
                    index[key][0] = value
                    self._index = index
                return
        raise KeyError(name)

    def copy(self) -> Headers:
        return Headers.from_keyed(list(self._items))


def write_message(start_line: str, headers: Headers, body: bytes) -> bytes:
    """A message on the wire: canonical names, Content-Length from the body.

    Raises SipSerializeError (a ValueError) when the start line, a header
    name or value holds CR or LF, or a header name is not a token.
    """
    body_length = len(body)
    lines = [start_line]
    append = lines.append
    length_written = False
    wire_names = _WIRE_NAMES
    for name, key, value in headers._items:
        if key == "content-length":
            if length_written:
                continue
            value = str(body_length)
            length_written = True
        prefix = wire_names.get(name)
        if prefix is None:
            canonical = canonical_name_for_key(key, name)
            if canonical is name and (not name or name.strip(TOKEN_CHARS)):
                raise SipSerializeError(f"Invalid header name {name!r}")
            prefix = f"{canonical}: "
            if len(wire_names) < _WIRE_NAMES_MAX:
                wire_names[name] = prefix
        append(prefix + value)
    if not length_written:
        lines.append(f"Content-Length: {body_length}")
    lines.append("")
    lines.append("")  # the empty line that ends the header section
    # RFC 3261 §7.3.1 lets a value span lines only by folding; a CR or LF in
    # a value would start a new header line of the sender's choosing. (The
    # lines joined without their breaks: a search for one character is far
    # quicker than counting it.)
    unbroken = "".join(lines)
    if "\n" in unbroken or "\r" in unbroken:
        raise SipSerializeError("CR or LF in a start line or header value")
    text = "\r\n".join(lines)
    return text.encode("utf-8") + body if body else text.encode("utf-8")
