"""The registrar's bounds: stored URI length, and the size of its answers over UDP.

Decided on protobuf MessageRequests, as in test_builtin_routing.py; the
datagram itself is measured end to end in tests/e2e/test_builtin_relay.py.
"""

from __future__ import annotations

from edgeport._proto.common_pb2 import TCP, UDP
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse, Method
from edgeport.builtin.edge import format_uri
from edgeport.builtin.registrar import Registrar
from edgeport.builtin.router import Router
from tests.builtin.test_builtin_routing import RT, FakeClock, request, uri, via

SOURCE = ("198.51.100.7", 40123)
URI_CAP = 512  # bytes of a stored Contact or AOR URI
DATAGRAM_BUDGET = 1300  # bytes: RFC 3261 §18.1.1


def register(
    user_part: str, *, transport: int = UDP, contact: bool = True, aor: str = "alice"
) -> MessageRequest:
    return request(
        Method.REGISTER,
        uri("", "203.0.113.5"),
        vias=[via(SOURCE[0], SOURCE[1], "TCP" if transport == TCP else "UDP", rport=SOURCE[1])],
        to=uri(aor, "203.0.113.5"),
        contact=uri(user_part, "198.51.100.7", 5060) if contact else None,
        expires=600,
        sender=(SOURCE[0], SOURCE[1], transport),
    )


def contacts(reply: MessageResponse) -> list[str]:
    listed = []
    if reply.message.HasField("contact"):
        listed.append(format_uri(reply.message.contact.address.uri))
    listed.extend(e.value for e in reply.message.extensions if e.name == "Contact")
    return listed


def long_user(index: int, length: int) -> str:
    """A user part making ``sip:<user>@198.51.100.7:5060`` exactly ``length`` bytes."""
    prefix = f"u{index}-"
    return prefix + "x" * (length - len("sip:@198.51.100.7:5060") - len(prefix))


def test_reflection_contact_longer_than_the_cap_is_refused_and_not_stored() -> None:
    router = Router(Registrar(FakeClock()))
    reply = router.process(register(long_user(0, URI_CAP + 1)))
    assert reply.message.response_type == RT.FORBIDDEN
    assert reply.message.reason_phrase == "Contact Too Long"
    assert contacts(router.process(register("", contact=False))) == []
    at_cap = router.process(register(long_user(1, URI_CAP)))
    assert at_cap.message.response_type == RT.OK


def test_reflection_aor_longer_than_the_cap_is_refused() -> None:
    router = Router(Registrar(FakeClock()))
    reply = router.process(register("alice", aor="a" * URI_CAP))
    assert reply.message.response_type == RT.FORBIDDEN
    assert len(router.registrar) == 0


def test_reflection_query_over_udp_lists_only_the_bindings_that_fit_one_datagram() -> None:
    router = Router(Registrar(FakeClock()))
    for index in range(10):
        assert router.process(register(long_user(index, 400))).message.response_type == RT.OK
    listed = contacts(router.process(register("", contact=False)))
    assert 1 <= len(listed) < 10
    assert sum(len(f"Contact: {c};expires=600\r\n") for c in listed) <= DATAGRAM_BUDGET
    # The most recent first: u9, then u8...
    assert listed[0].startswith("sip:u9-")


def test_reflection_query_over_a_stream_lists_every_binding() -> None:
    router = Router(Registrar(FakeClock()))
    for index in range(10):
        router.process(register(long_user(index, 400)))
    assert len(contacts(router.process(register("", contact=False, transport=TCP)))) == 10


def test_the_binding_just_registered_is_listed_first_over_udp() -> None:
    router = Router(Registrar(FakeClock()))
    for index in range(9):
        router.process(register(long_user(index, 500)))
    router.process(register("short"))
    # Refreshing an old, long binding: the answer still lists it, first.
    refreshed = contacts(router.process(register(long_user(3, 500))))
    assert refreshed[0].startswith("sip:u3-")


def test_ordinary_contacts_all_fit_one_datagram() -> None:
    router = Router(Registrar(FakeClock()))
    for index in range(10):
        router.process(register(f"alice-device-{index}"))
    assert len(contacts(router.process(register("", contact=False)))) == 10
