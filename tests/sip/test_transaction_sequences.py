"""Any sequence of events keeps every transaction machine consistent."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeport.sip.message import Request, Response
from edgeport.sip.parser import parse_message
from edgeport.sip.timers import Timer, TimerConfig
from edgeport.sip.transaction import (
    Action,
    ClientTransaction,
    Deliver,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Resend,
    Send,
    ServerTransaction,
    StartTimer,
    Terminated,
    TransactionError,
    TransactionState,
)
from edgeport.transaction_layer.timer_heap import FIELD_OF


def request(method: str) -> Request:
    message = parse_message(
        (
            f"{method} sip:bob@biloxi.example.com SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKseq\r\n"
            "Max-Forwards: 70\r\n"
            "To: <sip:bob@biloxi.example.com>\r\n"
            "From: <sip:alice@atlanta.example.com>;tag=1\r\n"
            "Call-ID: seq@192.0.2.10\r\n"
            f"CSeq: 1 {method}\r\n"
            "Content-Length: 0\r\n"
            "\r\n"
        ).encode()
    )
    assert isinstance(message, Request)
    return message


def response(code: int, method: str) -> Response:
    message = parse_message(
        (
            f"SIP/2.0 {code} Whatever\r\n"
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKseq\r\n"
            "To: <sip:bob@biloxi.example.com>;tag=2\r\n"
            "From: <sip:alice@atlanta.example.com>;tag=1\r\n"
            "Call-ID: seq@192.0.2.10\r\n"
            f"CSeq: 1 {method}\r\n"
            "Content-Length: 0\r\n"
            "\r\n"
        ).encode()
    )
    assert isinstance(message, Response)
    return message


CODES = [100, 180, 200, 302, 486, 503]
event = st.one_of(
    st.tuples(st.just("timer"), st.sampled_from(list(Timer))),
    st.tuples(st.just("transport error"), st.none()),
    st.tuples(st.just("response"), st.sampled_from(CODES)),
    st.tuples(st.just("request"), st.sampled_from(["again", "ACK"])),
)
MACHINES = [
    InviteClientTransaction,
    NonInviteClientTransaction,
    InviteServerTransaction,
    NonInviteServerTransaction,
]


@settings(max_examples=300, deadline=None)
@given(
    machine=st.sampled_from(MACHINES),
    reliable=st.booleans(),
    events=st.lists(event, max_size=25),
)
def test_event_sequences(
    machine: type[ClientTransaction | ServerTransaction],
    reliable: bool,
    events: list[tuple[str, object]],
) -> None:
    method = "INVITE" if machine in (InviteClientTransaction, InviteServerTransaction) else "BYE"
    txn = machine(request(method), reliable=reliable, timers=TimerConfig())
    batches: list[list[Action]] = [txn.start()]
    finals_delivered = 0
    for kind, value in events:
        was_terminated = txn.state is TransactionState.TERMINATED
        actions: list[Action] = []
        if kind == "timer":
            assert isinstance(value, Timer)
            actions = txn.on_timer(value)
        elif kind == "transport error":
            actions = txn.on_transport_error()
        elif kind == "response":
            assert isinstance(value, int)
            if isinstance(txn, ClientTransaction):
                actions = txn.on_response(response(value, method))
            else:
                allowed = txn.can_send_response
                try:
                    actions = txn.send_response(response(value, method))
                except TransactionError:
                    assert not allowed
                else:
                    assert allowed
        elif isinstance(txn, ServerTransaction):
            actions = txn.on_request(request("ACK" if value == "ACK" else method))
        if was_terminated:
            # Nothing happens to a terminated transaction.
            assert actions == []
        finals_delivered += sum(
            1 for a in actions if isinstance(a, Deliver) and a.response.status_code >= 200
        )
        batches.append(actions)
    # A final response reaches the TU at most once (RFC 3261 §17.1.1.2, §17.1.2.2).
    assert finals_delivered <= 1
    flat = [a for batch in batches for a in batch]
    terminations = [i for i, a in enumerate(flat) if isinstance(a, Terminated)]
    # Terminated comes once, last, and only when the state says so.
    assert len(terminations) <= 1
    if terminations:
        assert terminations[0] == len(flat) - 1
        assert txn.state is TransactionState.TERMINATED
    else:
        assert txn.state is not TransactionState.TERMINATED


def feed(
    txn: ClientTransaction | ServerTransaction, method: str, kind: str, value: object
) -> list[Action]:
    """One event, as test_event_sequences feeds it."""
    if kind == "timer":
        assert isinstance(value, Timer)
        return txn.on_timer(value)
    if kind == "transport error":
        return txn.on_transport_error()
    if kind == "response":
        assert isinstance(value, int)
        if isinstance(txn, ClientTransaction):
            return txn.on_response(response(value, method))
        try:
            return txn.send_response(response(value, method))
        except TransactionError:
            return []
    if isinstance(txn, ServerTransaction):
        return txn.on_request(request("ACK" if value == "ACK" else method))
    return []


def as_resends(actions: list[Action]) -> list[object]:
    """A retransmission as a caller that keeps the bytes gets it; a message by its bytes."""
    seen: list[object] = []
    for action in actions:
        if isinstance(action, Send):
            seen.append(Resend() if action.retransmission else action.message.to_bytes())
        elif isinstance(action, Deliver):
            seen.append(("deliver", action.response.to_bytes()))
        else:
            seen.append(action)
    return seen


@settings(max_examples=300, deadline=None)
@given(
    machine=st.sampled_from(MACHINES),
    reliable=st.booleans(),
    events=st.lists(event, max_size=25),
)
def test_a_transaction_whose_caller_keeps_the_bytes_acts_alike_and_keeps_no_message(
    machine: type[ClientTransaction | ServerTransaction],
    reliable: bool,
    events: list[tuple[str, object]],
) -> None:
    # The transaction layer keeps the bytes of what it sent: the machine then
    # asks for a retransmission with Resend, and keeps a message only while
    # it builds something from it (an INVITE client transaction its request,
    # until the ACK is built).
    method = "INVITE" if machine in (InviteClientTransaction, InviteServerTransaction) else "BYE"
    keeping = machine(request(method), reliable=reliable, timers=TimerConfig())
    lean = machine(
        request(method), reliable=reliable, timers=TimerConfig(), caller_keeps_bytes=True
    )
    started: set[Timer] = set()
    pairs = [(keeping.start(), lean.start())]
    pairs += [(feed(keeping, method, *e), feed(lean, method, *e)) for e in events]
    for kept, lean_actions in pairs:
        assert as_resends(kept) == as_resends(lean_actions)
        started |= {a.timer for a in lean_actions if isinstance(a, StartTimer)}
        assert lean.state is keeping.state
        if isinstance(lean, ServerTransaction):
            assert lean.last_response is None
        if isinstance(lean, InviteClientTransaction):
            assert lean.ack is None
        still_building = isinstance(lean, InviteClientTransaction) and lean.state in (
            TransactionState.CALLING,
            TransactionState.PROCEEDING,
        )
        assert (lean.request is not None) is still_building
    # One timer of each kind at most: the timer heap keeps one per kind.
    assert len({FIELD_OF[timer] for timer in started}) == len(started)
