"""Calls between two SIPp user agents through a real edgeport process.

The callee SIPp REGISTERs bob at the edge, then handles whatever the edge
forwards to it; the caller SIPp calls bob through the edge, over UDP, TCP
or both (the edge bridging them). The scenarios check the message flow
each side sees; these tests also look at the traces for what RFC 3261 asks
of a stateful proxy: §16.6 Via, Record-Route and Max-Forwards, §16.7 the
edge's Via off the responses, §9.1 and §16.10 CANCEL, §17.1.1.3 and
§17.2.1 the ACK of a non-2xx final response, §16.12 routing in-dialog
requests from either side.
"""

from __future__ import annotations

import pytest

from tests.interop.harness import Edgeport, Sipp, SippRun, call, describe, expect_success

pytestmark = pytest.mark.slow

TRANSPORTS = [pytest.param("u1", id="udp"), pytest.param("t1", id="tcp")]


def _received(run: SippRun, method: str) -> list[str]:
    """What arrived at this SIPp for one method: "INVITE", "200 INVITE"..."""
    return [m.summary() for m in run.received() if m.method == method]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_call_is_set_up_and_torn_down(sipp: Sipp, edge: Edgeport, transport: str) -> None:
    caller, callee = call(
        sipp, callee_scenario="callee_answer", caller_scenario="caller_call", transport=transport
    )
    expect_success(edge, caller, callee)
    context = describe(edge, caller, callee)
    token = "udp" if transport == "u1" else "tcp"

    assert _received(callee, "INVITE") == ["INVITE"], context
    assert _received(callee, "ACK") == ["ACK"], context
    assert _received(callee, "BYE") == ["BYE"], context
    (invite,) = [m for m in callee.received() if m.method == "INVITE"]
    # §16.6 step 8: the edge's Via on top; the caller's below it.
    vias = invite.entries("Via")
    assert len(vias) == 2, context
    assert vias[0].startswith(f"SIP/2.0/{token.upper()} 127.0.0.1:{edge.port};"), context
    assert f"127.0.0.1:{caller.port}" in vias[1], context
    # §16.6 step 3 and step 4.
    assert invite.header("Max-Forwards") == "69", context
    (record_route,) = invite.entries("Record-Route")
    assert f"127.0.0.1:{edge.port}" in record_route, context
    assert ";lr" in record_route, context
    # The request reached bob's registered Contact.
    assert invite.start_line.startswith(f"INVITE sip:bob@127.0.0.1:{callee.port}"), context

    ringing = [m for m in caller.received() if m.status == 180]
    answers = [m for m in caller.received() if m.status == 200 and m.method == "INVITE"]
    assert ringing, context
    assert answers, context
    # §16.7 step 3: the edge took its own Via off the responses.
    assert len(answers[0].entries("Via")) == 1, context
    assert answers[0].entries("Record-Route") == [record_route], context
    assert _received(caller, "BYE") == ["200 BYE"], context


def test_call_from_udp_to_a_tcp_callee(sipp: Sipp, edge: Edgeport) -> None:
    caller, callee = call(
        sipp,
        callee_scenario="callee_answer",
        caller_scenario="caller_call",
        transport="u1",
        callee_transport="t1",
    )
    expect_success(edge, caller, callee)
    context = describe(edge, caller, callee)

    (invite,) = [m for m in callee.received() if m.method == "INVITE"]
    assert invite.transport == "TCP", context
    assert invite.entries("Via")[0].startswith(f"SIP/2.0/TCP 127.0.0.1:{edge.port};"), context
    # One Record-Route per side of the edge (RFC 5658 double record-routing), so
    # that in-dialog requests from either side come back through it.
    assert len(invite.entries("Record-Route")) == 2, context
    assert [m.transport for m in caller.received()] == ["UDP"] * len(caller.received()), context
    assert _received(callee, "BYE") == ["BYE"], context


def test_tcp_callee_is_reached_on_a_new_connection(sipp: Sipp, edge: Edgeport) -> None:
    # bob registers over TCP and goes away, closing that connection; a UAS
    # then listens on his Contact's port: the edge must connect to it.
    register = sipp.run(
        "register", "register_uac", service="bob", transport="t1", keys={"expires": "60"}
    )
    expect_success(edge, register)
    callee = sipp.start(
        "callee", "callee_answer", service="bob", transport="t1", port=register.port
    )
    callee.wait_listening()
    caller = sipp.run("caller", "caller_call", service="bob", transport="t1")
    callee_run = callee.wait()
    expect_success(edge, caller, callee_run)
    context = describe(edge, register, caller, callee_run)

    assert _received(callee_run, "INVITE") == ["INVITE"], context
    assert _received(callee_run, "BYE") == ["BYE"], context
    assert _received(caller, "BYE") == ["200 BYE"], context


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_callee_hangs_up_through_the_edge(sipp: Sipp, edge: Edgeport, transport: str) -> None:
    caller, callee = call(
        sipp,
        callee_scenario="callee_answer_hangup",
        caller_scenario="caller_call_hungup",
        transport=transport,
    )
    expect_success(edge, caller, callee)
    context = describe(edge, caller, callee)

    # The callee's BYE went to the edge (its Route, from the Record-Route) ...
    (bye_sent,) = [m for m in callee.sent() if m.method == "BYE"]
    assert f"127.0.0.1:{edge.port}" in bye_sent.header("Route"), context
    # ... which removed its own Route and sent it to the caller's Contact (§16.4, §16.12).
    (bye,) = [m for m in caller.received() if m.method == "BYE"]
    assert bye.start_line.startswith(f"BYE sip:alice@127.0.0.1:{caller.port}"), context
    assert not bye.values("Route"), context
    assert bye.header("Max-Forwards") == "69", context
    assert _received(callee, "BYE") == ["200 BYE"], context


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancel_of_a_ringing_call(sipp: Sipp, edge: Edgeport, transport: str) -> None:
    caller, callee = call(
        sipp, callee_scenario="callee_cancel", caller_scenario="caller_cancel", transport=transport
    )
    expect_success(edge, caller, callee)
    context = describe(edge, caller, callee)

    # The caller: 200 for its CANCEL and one 487 for its INVITE, both from the edge;
    # the callee's own 487 was acknowledged and absorbed there (§16.10, contract §4).
    assert [m.summary() for m in caller.received() if m.status != 100] == [
        "180 INVITE",
        "200 CANCEL",
        "487 INVITE",
    ], context

    # The callee: the edge's CANCEL in the INVITE's transaction (§9.1: same
    # branch as the request it cancels), then the ACK for its 487 (§17.1.1.3).
    assert [m.method for m in callee.received() if m.is_request] == [
        "INVITE",
        "CANCEL",
        "ACK",
    ], context
    (invite,) = [m for m in callee.received() if m.method == "INVITE"]
    (cancel,) = [m for m in callee.received() if m.method == "CANCEL"]
    (ack,) = [m for m in callee.received() if m.method == "ACK"]
    assert cancel.top_branch == invite.top_branch, context
    assert ack.top_branch == invite.top_branch, context
    # §9.1: "The Request-URI, Call-ID, To, the numeric part of CSeq, and From
    # header fields in the CANCEL request MUST be identical to those in the
    # request being cancelled, including tags."
    assert cancel.start_line.split()[1] == invite.start_line.split()[1], context
    for name in ("Call-ID", "To", "From"):
        assert cancel.header(name) == invite.header(name), context
    assert len(cancel.entries("Via")) == 1, context  # §9.1: only the top Via
    assert cancel.header("CSeq") == "1 CANCEL", context
    assert ack.header("CSeq") == "1 ACK", context
    # §17.2.1: the edge's INVITE server transaction took the caller's ACK, so its
    # 487 was not retransmitted during the second the caller stayed.
    assert caller.times_received("487 INVITE") == 1, context


def test_cancel_before_the_callee_rings_waits_for_its_180(sipp: Sipp, edge: Edgeport) -> None:
    caller, callee = call(
        sipp,
        callee_scenario="callee_cancel_late_ring",
        caller_scenario="caller_cancel_early",
        transport="u1",
    )
    expect_success(edge, caller, callee)
    context = describe(edge, caller, callee)

    # The caller is answered at once by the edge, and never sees the late 180.
    assert [m.summary() for m in caller.received() if m.status != 100] == [
        "200 CANCEL",
        "487 INVITE",
    ], context
    # §9.1: the edge's CANCEL reached the callee only after the callee's 180.
    order = [(m.direction, m.summary()) for m in callee.messages if m.summary() != "INVITE"]
    assert order.index(("sent", "180 INVITE")) < order.index(("received", "CANCEL")), context


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_busy_callee_486_reaches_the_caller(sipp: Sipp, edge: Edgeport, transport: str) -> None:
    caller, callee = call(
        sipp, callee_scenario="callee_busy", caller_scenario="caller_busy", transport=transport
    )
    expect_success(edge, caller, callee)
    context = describe(edge, caller, callee)

    assert [m.summary() for m in caller.received() if m.status != 100] == ["486 INVITE"], context
    (invite,) = [m for m in callee.received() if m.method == "INVITE"]
    (ack,) = [m for m in callee.received() if m.method == "ACK"]
    # The edge's INVITE client transaction acknowledges the 486 itself (§17.1.1.3),
    # and its server transaction takes the caller's ACK: no 486 retransmission.
    assert ack.top_branch == invite.top_branch, context
    assert caller.times_received("486 INVITE") == 1, context


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_message_is_delivered(sipp: Sipp, edge: Edgeport, transport: str) -> None:
    caller, callee = call(
        sipp,
        callee_scenario="callee_message",
        caller_scenario="caller_message",
        transport=transport,
    )
    expect_success(edge, caller, callee)
    context = describe(edge, caller, callee)

    (message,) = [m for m in callee.received() if m.method == "MESSAGE"]
    assert message.header("Content-Type") == "text/plain", context
    assert message.header("Max-Forwards") == "69", context
    assert [m.summary() for m in caller.received() if m.status != 100] == ["200 MESSAGE"], context


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unknown_user_gets_404(sipp: Sipp, edge: Edgeport, transport: str) -> None:
    run = sipp.run("caller", "caller_unknown", service="nobody", transport=transport)
    expect_success(edge, run)
    context = describe(edge, run)
    assert [m.summary() for m in run.received() if m.status != 100] == ["404 INVITE"], context
    # The ACK for the 404 ended the edge's INVITE server transaction (§17.2.1).
    assert run.times_received("404 INVITE") == 1, context
