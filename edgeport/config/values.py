"""Checks of one value of the file or the environment, as cattrs structure hooks.

Each check takes the raw value (and the type cattrs passes, unused) and
returns it typed and normalised, or raises :class:`~edgeport.config.errors.Invalid`
with one message per problem; the message quotes the bad value (shortened to
a line) but never its key path, which the caller knows. :func:`list_of`
checks every item of a list and reports each bad one by index.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

from cattrs.errors import IterableValidationError, IterableValidationNote

from edgeport.config.errors import Invalid
from edgeport.config.model import (
    API_VERSIONS,
    BUILTIN_PROCESSOR,
    DEFAULT_DNS_PORT,
    DEFAULT_LARGE_REQUEST_BYTES,
    KIND,
    MAX_LARGE_REQUEST_BYTES,
    MAX_RELOAD_WATCH_INTERVAL,
    MAX_WORKERS,
    MIN_LARGE_REQUEST_BYTES,
    MIN_RELOAD_WATCH_INTERVAL,
    MIN_WEBSOCKET_PING_INTERVAL,
    TLS_PROTOCOLS,
    UNIX_PROCESSOR_PREFIX,
    WORKERS_AUTO,
)
from edgeport.keystore import KEYSTORE_TYPES
from edgeport.memory import MIN_MEMORY_BYTES, parse_byte_size
from edgeport.sip.methods import SIP_METHODS
from edgeport.sip.transport import Transport

INSECURE_TLS_PROTOCOLS: Final = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1")
MAX_SHOWN_CHARS: Final = 60  # a bad value is quoted in the message up to this length
PORT_RE: Final = re.compile(r"[0-9]{1,5}")
_HOSTNAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")

Hook = Callable[[Any, Any], Any]


def camel(name: str) -> str:
    """The file's key for a field name: ``bind_addr`` is ``bindAddr``."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def show(value: Any) -> str:
    """``value`` quoted for a one-line message, shortened past MAX_SHOWN_CHARS."""
    text = repr(value)
    if len(text) > MAX_SHOWN_CHARS:
        text = text[: MAX_SHOWN_CHARS - 3] + "..."
    return text


def one_of(values: Sequence[str]) -> str:
    """``a, b or c``."""
    return ", ".join(values[:-1]) + " or " + values[-1] if len(values) > 1 else values[0]


def string(value: Any, _: Any = None) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected a string, got {show(value)}")
    return value


def nonempty_string(value: Any, _: Any = None) -> str:
    text = string(value).strip()
    if not text:
        raise Invalid("must not be empty")
    return text


def integer(value: Any, _: Any = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"expected an integer, got {show(value)}")
    return value


def number(value: Any, _: Any = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"expected a number of seconds, got {show(value)}")
    return float(value)


def boolean(value: Any, _: Any = None) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {show(value)}")
    return value


def port(value: Any, _: Any = None) -> int:
    checked = integer(value)
    if not 1 <= checked <= 65535:
        raise Invalid(f"expected a port from 1 to 65535, got {checked}")
    return checked


def positive_integer(value: Any, _: Any = None) -> int:
    checked = integer(value)
    if checked <= 0:
        raise Invalid(f"expected a positive integer, got {checked}")
    return checked


def memory_size(value: Any, _: Any = None) -> int:
    """``spec.limits.memory``: bytes, or a size such as ``256Mi`` or ``1Gi``."""
    try:
        size = parse_byte_size(value)
    except ValueError as error:
        raise Invalid(str(error)) from None
    if size < MIN_MEMORY_BYTES:
        raise Invalid(f"{show(value)} is below the minimum of {MIN_MEMORY_BYTES // 2**20}Mi")
    return size


def parse_workers(value: Any, _: Any = None) -> int:
    """``spec.workers``, ``WORKERS`` or ``--workers``: a count, or ``auto`` (one per core)."""
    if isinstance(value, str) and value.strip().lower() == WORKERS_AUTO:
        return len(os.sched_getaffinity(0))
    expected = f"expected {WORKERS_AUTO!r} or a count from 1 to {MAX_WORKERS}"
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise Invalid(f"{expected}, got {value.strip()!r}")
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{expected}, got {show(value)}")
    count = value
    if not 1 <= count <= MAX_WORKERS:
        raise Invalid(f"{expected}, got {count}")
    return count


def positive_seconds(value: Any, _: Any = None) -> float:
    seconds = number(value)
    if not seconds > 0 or seconds == float("inf"):
        raise Invalid(f"expected a positive number of seconds, got {show(value)}")
    return seconds


def non_negative_seconds(value: Any, _: Any = None) -> float:
    seconds = number(value)
    if not seconds >= 0 or seconds == float("inf"):
        raise Invalid(f"expected zero or a positive number of seconds, got {show(value)}")
    return seconds


def watch_interval(value: Any, _: Any = None) -> float:
    """0 (off), or seconds between MIN_ and MAX_RELOAD_WATCH_INTERVAL."""
    seconds = number(value)
    if seconds != 0 and not (MIN_RELOAD_WATCH_INTERVAL <= seconds <= MAX_RELOAD_WATCH_INTERVAL):
        raise Invalid(
            f"expected 0 (off) or {MIN_RELOAD_WATCH_INTERVAL:g} to "
            f"{MAX_RELOAD_WATCH_INTERVAL:g} seconds, got {show(value)}"
        )
    return seconds


def ping_interval(value: Any, _: Any = None) -> float:
    """``spec.connections.webSocketPingInterval``: 0 (off) or at least a second."""
    seconds = non_negative_seconds(value)
    if 0 < seconds < MIN_WEBSOCKET_PING_INTERVAL:
        least = f"{MIN_WEBSOCKET_PING_INTERVAL:g}"
        raise Invalid(f"expected 0 (off) or at least {least} seconds, got {show(value)}")
    return seconds


def large_request_bytes(value: Any, _: Any = None) -> int | None:
    """``spec.largeRequestsOverTcp``: a byte count, ``true`` (the default) or ``false`` (off)."""
    if value is False:
        return None
    if value is True:
        return DEFAULT_LARGE_REQUEST_BYTES
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"expected a number of bytes, or false, got {show(value)}")
    if not MIN_LARGE_REQUEST_BYTES <= value <= MAX_LARGE_REQUEST_BYTES:
        raise Invalid(
            f"expected {MIN_LARGE_REQUEST_BYTES} to {MAX_LARGE_REQUEST_BYTES} bytes, "
            f"or false, got {value}"
        )
    return value


def kind(value: Any, _: Any = None) -> str:
    if value != KIND:
        raise Invalid(f"expected {KIND!r}, got {show(value)}")
    return KIND


def api_version(value: Any, _: Any = None) -> str:
    if value not in API_VERSIONS:
        raise Invalid(f"expected {one_of(API_VERSIONS)}, got {show(value)}")
    return str(value)


def protocol(value: Any, _: Any = None) -> Transport:
    names = [item.value for item in Transport]
    text = string(value)
    if text.lower() not in names:
        raise Invalid(f"unknown protocol {text!r} (expected {one_of(names)})")
    return Transport(text.lower())


def method(value: Any, _: Any = None) -> str:
    name = string(value).strip().upper()
    if name not in SIP_METHODS:
        raise Invalid(f"unknown SIP method {value!r}")
    return name


def ip_address(value: Any, _: Any = None) -> str:
    text = string(value).strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise Invalid(f"expected an IPv4 or IPv6 address, got {text!r}") from None


def cidr(value: Any, _: Any = None) -> str:
    text = string(value).strip()
    try:
        if "/" not in text:
            raise ValueError(text)
        ipaddress.ip_interface(text)
    except ValueError:
        raise Invalid(f"expected a network like 10.0.0.0/8, got {text!r}") from None
    return text


def network(value: Any, _: Any = None) -> str:
    """A network (10.0.0.0/8, 2001:db8::/32) or one address; host bits are dropped."""
    text = string(value).strip()
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise Invalid(
            f"expected a network like 10.0.0.0/8 or an IP address, got {text!r}"
        ) from None


def processor_addr(value: Any, _: Any = None) -> str:
    text = string(value).strip()
    if text == BUILTIN_PROCESSOR:
        return text
    if text.startswith(UNIX_PROCESSOR_PREFIX) and len(text) > len(UNIX_PROCESSOR_PREFIX):
        return text  # gRPC over a Unix socket: unix:/path
    host, _sep, port_text = text.rpartition(":")
    valid_port = PORT_RE.fullmatch(port_text) is not None and 1 <= int(port_text) <= 65535
    if host.startswith("[") and host.endswith("]"):
        try:
            valid_host = isinstance(ipaddress.ip_address(host[1:-1]), ipaddress.IPv6Address)
        except ValueError:
            valid_host = False
    else:
        valid_host = _HOSTNAME_RE.fullmatch(host) is not None
    if not (valid_host and valid_port):
        raise Invalid(f"expected host:port or {BUILTIN_PROCESSOR!r}, got {text!r}")
    return text


def hep_addr(value: Any, _: Any = None) -> str:
    text = string(value).strip()
    if text == BUILTIN_PROCESSOR:
        raise Invalid(f"expected host:port of a HEP collector, got {text!r}")
    try:
        return processor_addr(text)
    except Invalid:
        raise Invalid(f"expected host:port of a HEP collector, got {text!r}") from None


def split_dns_server(text: str) -> tuple[str, int]:
    """``ip``, ``ip:port``, ``[v6]:port`` or a bare IPv6 address -> (address, port).

    Raises ValueError. A name is refused: the resolver's own servers cannot be
    looked up in DNS.
    """
    host, port_text = text, ""
    if text.startswith("["):
        host, _sep, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(text)
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    address = str(ipaddress.ip_address(host))
    if not port_text:
        return address, DEFAULT_DNS_PORT
    if PORT_RE.fullmatch(port_text) is None or not 1 <= int(port_text) <= 65535:
        raise ValueError(text)
    return address, int(port_text)


def dns_server(value: Any, _: Any = None) -> str:
    """``spec.dns.servers[*]``: a DNS server's IP address, with an optional port."""
    text = string(value).strip()
    try:
        address, number = split_dns_server(text)
    except ValueError:
        raise Invalid(
            f"expected a DNS server as ip or ip:port (e.g. 10.0.0.2:53), got {text!r}"
        ) from None
    return f"[{address}]:{number}" if ":" in address else f"{address}:{number}"


def agent_id(value: Any, _: Any = None) -> int:
    checked = integer(value)
    if not 0 <= checked <= 0xFFFFFFFF:
        raise Invalid(f"expected an integer from 0 to 4294967295, got {checked}")
    return checked


def tls_protocol(value: Any, _: Any = None) -> str:
    text = string(value).strip()
    if text in INSECURE_TLS_PROTOCOLS:
        raise Invalid(f"{text} is insecure and not supported (use {one_of(TLS_PROTOCOLS)})")
    if text not in TLS_PROTOCOLS:
        raise Invalid(f"unknown TLS protocol {text!r} (expected {one_of(TLS_PROTOCOLS)})")
    return text


def store_type(value: Any, _: Any = None) -> str:
    text = string(value).strip().lower()
    if text == "jks":
        raise Invalid(
            "jks is not supported: convert the keystore to PKCS#12 "
            "(keytool -importkeystore -deststoretype pkcs12) or use pem"
        )
    if text not in KEYSTORE_TYPES:
        raise Invalid(f"expected {one_of(KEYSTORE_TYPES)}, got {value!r}")
    return text


def enum_of(enum_type: type[enum.Enum]) -> Hook:
    """One of the enum's values, spelled exactly."""
    values = [str(item.value) for item in enum_type]

    def structure(value: Any, _: Any = None) -> enum.Enum:
        if not isinstance(value, str) or value not in values:
            raise Invalid(f"expected {one_of(values)}, got {show(value)}")
        return enum_type(value)

    return structure


def optional(hook: Hook) -> Hook:
    """``hook``, or None for a null value."""

    def structure(value: Any, type_: Any = None) -> Any:
        return None if value is None else hook(value, type_)

    return structure


def list_of(
    item_hook: Hook,
    *,
    unique: bool = True,
    non_empty: str | None = None,
    check: Callable[[tuple[Any, ...]], list[str]] | None = None,
) -> Hook:
    """A list whose items go through ``item_hook``; every bad item is reported by index.

    Then, on the whole list once every item is good: ``non_empty`` is the
    message when it is empty, ``unique`` reports repeated items, and
    ``check`` returns messages of its own.
    """

    def structure(value: Any, type_: Any = None) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise Invalid(f"expected a list, got {show(value)}")
        items: list[Any] = []
        errors: list[Exception] = []
        for index, raw in enumerate(value):
            try:
                items.append(item_hook(raw, None))
            except Exception as exc:  # collected and reported with its index
                note = IterableValidationNote(f"Structuring item @ index {index}", index, None)
                exc.add_note(note)
                errors.append(exc)
        if errors:
            raise IterableValidationError("While structuring a list", errors, tuple)
        result = tuple(items)
        problems: list[str] = []
        if non_empty is not None and not result:
            problems.append(non_empty)
        if unique:
            seen: list[Any] = []
            repeated: list[Any] = []
            for item in result:
                if item in seen and item not in repeated:
                    shown = item.value if isinstance(item, enum.Enum) else item
                    problems.append(f"{shown!r} appears twice")
                    repeated.append(item)
                seen.append(item)
        if check is not None and not problems:
            problems.extend(check(result))
        if problems:
            raise Invalid(*problems)
        return result

    return structure
