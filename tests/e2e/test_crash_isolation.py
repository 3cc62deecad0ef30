"""A failure inside one message's handling stays with that message: it is
logged with its Call-ID, counted, answered where an answer is owed, and the
server goes on serving."""

from __future__ import annotations

import logging

import pytest
import trio

from edgeport.metrics import METRICS
from edgeport.proxy import Responder
from edgeport.proxy.upstream import UpstreamRelay
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
    async def broken_relay(self: UpstreamRelay, *args: object) -> None:
        raise RuntimeError("relay defect")

    monkeypatch.setattr(UpstreamRelay, "relay", broken_relay)
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


async def test_a_failing_outbound_connection_reader_ends_only_its_connection(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A defect met while reading a connection edgeport opened (to a TCP callee)
    # closes that connection and fails its transactions; the transport layer
    # and every listener go on.
    from edgeport.transports.running import ConnectionRunner
    from tests.support.ua import TcpUA

    deliver_on = ConnectionRunner.deliver_on

    def broken_on_outbound(self: ConnectionRunner, data: bytes, conn: object) -> None:
        if getattr(conn, "outbound", False):
            raise RuntimeError("reader defect")
        deliver_on(self, data, conn)  # type: ignore[arg-type]

    monkeypatch.setattr(ConnectionRunner, "deliver_on", broken_on_outbound)
    edge = await start_routed_edge(nursery)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    target = f"sip:bob@127.0.0.1:{port};transport=tcp"
    caller = edge.caller
    with caplog.at_level(logging.ERROR, logger="edgeport"):
        await caller.send(invite(caller.port, target, call_id="reader@test", branch="z9hG4bK-rd1"))
        with trio.fail_after(5):
            callee = TcpUA(await listeners[0].accept())
        incoming = await callee.receive_until(lambda m: m.method == "INVITE")
        await callee.send(reply_to(incoming, "180 Ringing"))
        # The reader fails on the 180: the connection closes, the INVITE fails.
        answer = await caller.receive_until(lambda m: m.status not in (100, None))
    assert answer.status == 503
    await callee.close()
    await listeners[0].aclose()
    # Every listener still answers, and the defect was logged.
    await caller.send(options(caller.port, "after-reader@test"))
    assert (await caller.receive_until(lambda m: m.status is not None)).status == 200
    assert any(r.exc_info and "reader defect" in str(r.exc_info[1]) for r in caplog.records)


async def test_a_defect_in_a_background_send_is_logged_and_the_server_lives_on(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The ACK edgeport sends again for a retransmitted 2xx of a dialog it ended
    # (a 2xx that crossed a CANCEL) goes out from a task of its own: a defect
    # there (not a send error) must not end the server.
    from tests.e2e.test_cancel_races import answer_200, ringing_call, send_cancel

    edge = await start_routed_edge(nursery)
    incoming = await ringing_call(edge, "crossed@test", "z9hG4bK-x1")
    await edge.callee.send(reply_to(incoming, "180 Ringing"))
    await edge.caller.receive_until(lambda m: m.status == 180)
    await send_cancel(edge, "crossed@test", "z9hG4bK-x1")
    await edge.callee.receive_until(lambda m: m.method == "CANCEL")
    ok = answer_200(incoming, contact_port=edge.callee.port)
    await edge.callee.send(ok)
    await edge.callee.receive_until(lambda m: m.method == "ACK")
    bye = await edge.callee.receive_until(lambda m: m.method == "BYE")
    await edge.callee.send(reply_to(bye, "200 OK"))

    async def broken_send(self: Responder, data: bytes, destination: object) -> bool:
        raise RuntimeError("send defect")

    monkeypatch.setattr(Responder, "send_quietly", broken_send)
    before = internal_errors()
    with caplog.at_level(logging.ERROR, logger="edgeport"):
        await edge.callee.send(ok)  # retransmitted: edgeport would ACK it again
        with trio.fail_after(5):
            while internal_errors() == before:
                await trio.sleep(0.01)
    assert any(r.exc_info and "send defect" in str(r.exc_info[1]) for r in caplog.records)
    monkeypatch.undo()
    await edge.caller.send(options(edge.caller.port, "after-send@test"))
    assert (await edge.caller.receive_until(lambda m: m.status is not None)).status == 200
