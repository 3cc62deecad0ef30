"""A failure inside one message's handling stays with that message: it is
logged with its Call-ID, counted, answered where an answer is owed, and the
server goes on serving."""

from __future__ import annotations

import logging

import pytest
import trio

from edgeport.metrics import METRICS
from edgeport.proxy import Proxy
from tests.e2e.conftest import start_routed_edge
from tests.e2e.test_cancel_and_auth import invite, reply_to
from tests.support.ua import sip


def options(ua_port: int, call_id: str) -> bytes:
    return sip(
        f"""OPTIONS sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua_port};branch=z9hG4bK-{call_id};rport
Max-Forwards: 70
From: <sip:probe@127.0.0.1>;tag=p
To: <sip:127.0.0.1>
Call-ID: {call_id}
CSeq: 1 OPTIONS
Content-Length: 0

"""
    )


def internal_errors() -> float:
    return METRICS.dropped_messages.labels(reason="internal_error").value


async def test_a_failing_relay_job_answers_500_and_the_server_lives_on(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_relay(self: Proxy, *args: object) -> None:
        raise RuntimeError("relay defect")

    monkeypatch.setattr(Proxy, "_relay_upstream", broken_relay)
    before = internal_errors()
    edge = await start_routed_edge(nursery)
    caller, callee, target = edge.caller, edge.callee, edge.callee_uri
    with caplog.at_level(logging.ERROR, logger="edgeport"):
        await caller.send(invite(caller.port, target, call_id="broken@test", branch="z9hG4bK-b1"))
        incoming = await callee.receive_until(lambda m: m.method == "INVITE")
        await callee.send(reply_to(incoming, "180 Ringing"))
        answer = await caller.receive_until(lambda m: m.status != 100)
    assert answer.status == 500
    assert any("broken@test" in r.getMessage() for r in caplog.records)
    assert internal_errors() == before + 1
    assert edge.server.proxy.pending_forwards == 0
    # Every listener still answers.
    await caller.send(options(caller.port, "after@test"))
    assert (await caller.receive_until(lambda m: m.status is not None)).status == 200


async def test_a_cancel_that_cannot_be_converted_is_answered_once(
    nursery: trio.Nursery,
) -> None:
    edge = await start_routed_edge(nursery)
    caller, callee, target = edge.caller, edge.callee, edge.callee_uri
    await caller.send(invite(caller.port, target, call_id="badcancel@test", branch="z9hG4bK-bc"))
    incoming = await callee.receive_until(lambda m: m.method == "INVITE")
    await callee.send(reply_to(incoming, "180 Ringing"))
    await caller.receive_until(lambda m: m.status == 180)
    # Parses as SIP, but the Expires the conversion needs is no number.
    await caller.send(
        sip(
            f"""CANCEL {target} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bK-bc;rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=caller
To: <sip:bob@127.0.0.1>
Call-ID: badcancel@test
CSeq: 1 CANCEL
Expires: soon
Content-Length: 0

"""
        )
    )
    got = []
    with trio.move_on_after(0.8):
        while True:
            got.append(await caller.receive())
    to_cancel = [m.status for m in got if m.header("CSeq") == "1 CANCEL"]
    assert to_cancel == [200]
    # (the 487 may come twice: Timer G retransmits it until the caller ACKs)
    assert {m.status for m in got if m.header("CSeq") == "1 INVITE"} == {487}
    # The callee is cancelled all the same.
    await callee.receive_until(lambda m: m.method == "CANCEL")
