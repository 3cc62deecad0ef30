"""The inbox, without sockets: lanes from the first bytes, bounds, stale and newest-first."""

from __future__ import annotations

import pytest

from edgeport.memory import INBOX_MESSAGE_OVERHEAD_BYTES, Account
from edgeport.sip.transport import Transport
from edgeport.transports import InboundMessage, Peer
from edgeport.transports.inbox import Inbox, InboxLimits, Lane, lane_of

PEER = Peer(Transport.UDP, "192.0.2.1", 5060)
LOCAL = Peer(Transport.UDP, "127.0.0.1", 5060)

REGISTER = (
    b"REGISTER sip:example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-r1\r\n"
    b"From: <sip:alice@example.com>;tag=a1\r\n"
    b"To: <sip:alice@example.com>\r\n"
    b"Call-ID: r1\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Content-Length: 0\r\n\r\n"
)
RINGING = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-e1\r\n"
    b"From: <sip:alice@example.com>;tag=a1\r\n"
    b"To: <sip:bob@example.com>;tag=b1\r\n"
    b"Call-ID: c1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def at(data: bytes, received_at: float, port: int = 5060) -> InboundMessage:
    return InboundMessage(data, Peer(Transport.UDP, "192.0.2.1", port), None, LOCAL, received_at)


@pytest.mark.parametrize(
    ("data", "lane"),
    [
        (RINGING, Lane.ADMITTED),
        (b"SIP/2.0 200 OK\r\n\r\n", Lane.ADMITTED),
        (b"ACK sip:bob@example.com SIP/2.0\r\n\r\n", Lane.ADMITTED),
        (b"CANCEL sip:bob@example.com SIP/2.0\r\n\r\n", Lane.ADMITTED),
        (b"\r\n\r\nCANCEL sip:bob@example.com SIP/2.0\r\n\r\n", Lane.ADMITTED),
        (REGISTER, Lane.NEW),
        (b"INVITE sip:bob@example.com SIP/2.0\r\n\r\n", Lane.NEW),
        (b"BYE sip:bob@example.com SIP/2.0\r\n\r\n", Lane.NEW),
        # Methods are case-sensitive: "ack" is an unknown method, new work.
        (b"ack sip:bob@example.com SIP/2.0\r\n\r\n", Lane.NEW),
        (b"ACKNOWLEDGE sip:bob@example.com SIP/2.0\r\n\r\n", Lane.NEW),
        (b"SIP/3.0 200 OK\r\n\r\n", Lane.NEW),
        (b"garbage", Lane.NEW),
        (b"", Lane.NEW),
    ],
)
def test_lane_from_the_first_bytes(data: bytes, lane: Lane) -> None:
    assert lane_of(data) is lane


def test_arrival_order_across_lanes_when_not_behind() -> None:
    inbox = Inbox()
    invite = at(b"INVITE sip:bob@example.com SIP/2.0\r\n\r\n", 10.0)
    cancel = at(b"CANCEL sip:bob@example.com SIP/2.0\r\n\r\n", 10.001)
    register = at(REGISTER, 10.002)
    for message in (invite, cancel, register):
        assert inbox.offer(message, lane_of(message.data)) == []

    taken = [inbox.pop(10.01)[0] for _ in range(3)]

    assert taken == [(invite, Lane.NEW), (cancel, Lane.ADMITTED), (register, Lane.NEW)]
    assert inbox.pop(10.01) == (None, [])


def test_full_new_lane_sheds_its_oldest_and_keeps_the_newcomer() -> None:
    inbox = Inbox(InboxLimits(max_new=3))
    messages = [at(REGISTER, 1.0 + n / 1000, port=6000 + n) for n in range(5)]

    shed = [inbox.offer(m, Lane.NEW) for m in messages]

    assert [[s.message for s in each] for each in shed] == [
        [],
        [],
        [],
        [messages[0]],
        [messages[1]],
    ]
    assert {s.reason for each in shed for s in each} == {"full"}
    assert len(inbox) == 3
    assert inbox.peaks[Lane.NEW] == 3
    assert [inbox.pop(1.01)[0] for _ in range(3)] == [(m, Lane.NEW) for m in messages[2:]]


def test_full_admitted_lane_sheds_the_newcomer() -> None:
    inbox = Inbox(InboxLimits(max_admitted=2))
    first, second, third = (at(RINGING, 1.0 + n / 1000, port=6000 + n) for n in range(3))
    assert inbox.offer(first, Lane.ADMITTED) == []
    assert inbox.offer(second, Lane.ADMITTED) == []

    (shed,) = inbox.offer(third, Lane.ADMITTED)

    assert (shed.message, shed.lane, shed.reason) == (third, Lane.ADMITTED, "full")
    assert inbox.peaks[Lane.ADMITTED] == 2


def test_new_requests_waiting_too_long_are_shed_as_stale() -> None:
    inbox = Inbox(InboxLimits(max_new_wait=0.5))
    old = at(REGISTER, 1.0, port=6001)
    fresh = at(REGISTER, 1.4, port=6002)
    response = at(RINGING, 1.0, port=6003)
    inbox.offer(old, Lane.NEW)
    inbox.offer(fresh, Lane.NEW)
    inbox.offer(response, Lane.ADMITTED)

    taken, stale = inbox.pop(1.6)

    # Admitted work is never stale; the old request is gone.
    assert [(s.message, s.reason) for s in stale] == [(old, "stale")]
    assert taken == (response, Lane.ADMITTED)
    assert inbox.pop(1.6) == ((fresh, Lane.NEW), [])


def test_when_behind_admitted_work_first_then_the_newest_request() -> None:
    inbox = Inbox(InboxLimits(lifo_after=0.1, max_new_wait=1.0))
    requests = [at(REGISTER, 1.0 + n / 100, port=6000 + n) for n in range(3)]
    for request in requests:
        inbox.offer(request, Lane.NEW)
    response = at(RINGING, 1.05)
    inbox.offer(response, Lane.ADMITTED)

    assert inbox.behind(1.2)
    order = [inbox.pop(1.2)[0] for _ in range(4)]

    assert order == [
        (response, Lane.ADMITTED),
        (requests[2], Lane.NEW),
        (requests[1], Lane.NEW),
        (requests[0], Lane.NEW),
    ]


def test_a_lane_without_a_free_handler_is_skipped() -> None:
    inbox = Inbox()
    request = at(REGISTER, 1.0)
    response = at(RINGING, 1.001)
    inbox.offer(request, Lane.NEW)
    inbox.offer(response, Lane.ADMITTED)

    assert inbox.pop(1.01, new_ok=False) == ((response, Lane.ADMITTED), [])
    assert inbox.pop(1.01, new_ok=False) == (None, [])
    assert inbox.pop(1.01, admitted_ok=False) == ((request, Lane.NEW), [])


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="at least one"):
        InboxLimits(max_new=0)
    with pytest.raises(ValueError, match="positive"):
        InboxLimits(max_new_wait=0)


def test_waiting_bytes_are_bounded_by_the_inbox_share_of_the_memory_budget() -> None:
    # Ten 8 KB requests fit a 100 KB share; the eleventh pushes the oldest out.
    account = Account("inbox", 100_000)
    inbox = Inbox(InboxLimits(max_new=1000), account)
    big = REGISTER + b"X" * 8000
    messages = [at(big, 1.0 + n / 1000, port=6000 + n) for n in range(12)]
    shed = [s for m in messages for s in inbox.offer(m, Lane.NEW)]
    assert [s.message for s in shed] == messages[:1]
    assert {s.reason for s in shed} == {"memory"}
    assert account.used <= account.limit
    assert len(inbox) == 11
    # A response that does not fit pushes out new requests, never an admitted one.
    response = at(RINGING + b"Y" * 30_000, 1.02, port=7000)
    pushed = inbox.offer(response, Lane.ADMITTED)
    assert pushed
    assert {(s.lane, s.reason) for s in pushed} == {(Lane.NEW, "memory")}
    assert [s.message for s in pushed] == messages[1 : 1 + len(pushed)]
    assert inbox.waiting(Lane.ADMITTED) == 1
    assert account.used <= account.limit
    # Taking a message gives its bytes back.
    used = account.used
    taken, _ = inbox.pop(1.03)
    assert taken is not None
    assert account.used == used - len(taken[0].data) - INBOX_MESSAGE_OVERHEAD_BYTES


def test_a_message_larger_than_the_whole_share_is_shed_itself() -> None:
    account = Account("inbox", 10_000)
    inbox = Inbox(InboxLimits(), account)
    small = at(REGISTER, 1.0)
    assert inbox.offer(small, Lane.NEW) == []
    huge = at(RINGING + b"Z" * 20_000, 1.001, port=7001)
    shed = inbox.offer(huge, Lane.ADMITTED)
    assert [(s.message, s.reason) for s in shed] == [(small, "memory"), (huge, "memory")]
    assert len(inbox) == 0
    assert account.used == 0
