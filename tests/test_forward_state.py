"""The forward state machine, driven with plain calls (no sockets, no clock)."""

from __future__ import annotations

import pytest

from edgeport.forward_state import Action, Event, ForwardMachine, ForwardState

S = ForwardState


def machine_in(state: ForwardState) -> ForwardMachine:
    return ForwardMachine(state)


def test_a_cancel_while_routing_abandons_the_request() -> None:
    m = ForwardMachine()
    assert m.handle(Event.CANCEL) == (Action.ANSWER_487,)
    assert m.state is S.ABANDONED
    # The routing reply that comes later cannot send it.
    assert m.handle(Event.ROUTED) == ()
    assert m.state is S.ABANDONED
    assert not m.upstream_waiting


def test_the_happy_path_relays_every_response() -> None:
    m = ForwardMachine()
    assert m.handle(Event.ROUTED) == ()
    assert m.state is S.SENDING
    assert m.handle(Event.SENT) == ()
    assert m.response(180) == (Action.RELAY,)
    assert m.response(183) == (Action.RELAY,)
    assert m.response(200) == (Action.RELAY,)
    assert m.state is S.DONE
    assert m.response(200) == ()  # later ones go nowhere through the forward


def test_a_100_counts_for_cancel_but_is_never_relayed() -> None:
    m = machine_in(S.CALLING)
    assert m.response(100) == ()
    assert m.state is S.PROCEEDING
    waiting = machine_in(S.CANCEL_WAITING)
    assert waiting.response(100) == (Action.SEND_CANCEL,)
    assert waiting.state is S.CANCELLED


@pytest.mark.parametrize("state", [S.SENDING, S.CALLING])
def test_a_cancel_before_any_provisional_waits_for_one(state: ForwardState) -> None:
    m = machine_in(state)
    assert m.handle(Event.CANCEL) == (Action.ANSWER_487,)
    assert m.state is S.CANCEL_WAITING
    assert m.handle(Event.SENT) == ()  # the send that the CANCEL raced completes
    assert m.response(180) == (Action.SEND_CANCEL,)
    assert m.response(487) == ()
    assert m.state is S.DONE


def test_a_cancel_after_a_provisional_goes_downstream_at_once() -> None:
    m = machine_in(S.PROCEEDING)
    assert m.handle(Event.CANCEL) == (Action.SEND_CANCEL, Action.ANSWER_487)
    assert m.response(180) == ()  # never relayed to a caller told 487
    assert m.response(487) == ()
    assert m.state is S.DONE


@pytest.mark.parametrize("state", [S.CANCEL_WAITING, S.CANCELLED])
def test_a_2xx_after_the_cancel_ends_the_dialog_instead_of_going_upstream(
    state: ForwardState,
) -> None:
    m = machine_in(state)
    assert m.response(200) == (Action.END_DIALOG,)
    assert m.state is S.DONE


def test_a_cancel_after_the_final_response_does_nothing() -> None:
    m = machine_in(S.DONE)
    assert m.handle(Event.CANCEL) == ()
    assert m.state is S.DONE


def test_timer_c_cancels_a_ringing_invite_and_answers_408() -> None:
    m = machine_in(S.PROCEEDING)
    assert m.handle(Event.TIMEOUT) == (Action.SEND_CANCEL, Action.ANSWER_408)
    assert m.cancelled
    assert m.response(200) == (Action.END_DIALOG,)


@pytest.mark.parametrize(
    ("state", "event", "actions"),
    [
        (S.CALLING, Event.TIMEOUT, (Action.ANSWER_408,)),
        (S.CALLING, Event.TRANSPORT_ERROR, (Action.ANSWER_503,)),
        (S.SENDING, Event.SEND_FAILED, (Action.ANSWER_503,)),
        (S.CANCEL_WAITING, Event.SEND_FAILED, ()),
        (S.CANCEL_WAITING, Event.TIMEOUT, ()),
        (S.CANCELLED, Event.TRANSPORT_ERROR, ()),
    ],
)
def test_failures_answer_only_a_caller_that_still_waits(
    state: ForwardState, event: Event, actions: tuple[Action, ...]
) -> None:
    m = machine_in(state)
    assert m.handle(event) == actions
    assert m.state is S.DONE


def test_only_live_forwards_keep_a_draining_server_waiting() -> None:
    waiting = {s for s in S if machine_in(s).upstream_waiting}
    assert waiting == {S.ROUTING, S.SENDING, S.CALLING, S.PROCEEDING}


def test_auth_on_behalf_sends_again_from_a_live_state_only() -> None:
    m = machine_in(S.PROCEEDING)
    m.handle(Event.RETRY)
    assert m.state is S.SENDING
    cancelled = machine_in(S.CANCELLED)
    assert cancelled.handle(Event.RETRY) == ()
    assert cancelled.state is S.CANCELLED


def test_no_event_leaves_a_terminal_state() -> None:
    for terminal in (S.DONE, S.ABANDONED):
        for event in Event:
            m = machine_in(terminal)
            assert m.handle(event) == ()
            assert m.state is terminal


@pytest.mark.parametrize("state", [S.SENDING, S.CALLING, S.PROCEEDING])
def test_a_failed_target_sends_the_request_to_the_next_one(state: ForwardState) -> None:
    m = machine_in(state)
    assert m.handle(Event.TARGET_FAILED) == (Action.NEXT_TARGET,)
    assert m.state is S.SENDING
    assert m.upstream_waiting
    assert m.handle(Event.SENT) == ()
    assert m.state is S.CALLING


@pytest.mark.parametrize("state", [S.CANCEL_WAITING, S.CANCELLED])
def test_no_next_target_once_the_caller_cancelled(state: ForwardState) -> None:
    m = machine_in(state)
    assert m.handle(Event.TARGET_FAILED) == ()
    assert m.state is S.DONE


@pytest.mark.parametrize("state", [S.ROUTING, S.ABANDONED, S.DONE])
def test_a_target_failure_outside_a_send_changes_nothing(state: ForwardState) -> None:
    m = machine_in(state)
    assert m.handle(Event.TARGET_FAILED) == ()
    assert m.state is state
