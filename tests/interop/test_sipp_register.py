"""Registration through a real edgeport process, driven by SIPp (RFC 3261 §10).

The built-in processor is the registrar; SIPp is the client. Each test has
its own edgeport, so registrations never leak from one test to another.
"""

from __future__ import annotations

import time

import pytest

from tests.interop.harness import Edgeport, Sipp, describe, expect_success

pytestmark = pytest.mark.slow

TRANSPORTS = [pytest.param("u1", id="udp"), pytest.param("t1", id="tcp")]
EXPIRY_WAIT = 3.0  # seconds after the registration before calling; it expires after 2


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_register_gets_200_listing_the_binding(sipp: Sipp, edge: Edgeport, transport: str) -> None:
    run = sipp.run(
        "register", "register_uac", service="bob", transport=transport, keys={"expires": "60"}
    )
    expect_success(edge, run)
    token = "udp" if transport == "u1" else "tcp"
    oks = [message for message in run.received() if message.status == 200]
    assert oks, describe(edge, run)
    ok = oks[-1]
    assert ok.method == "REGISTER", describe(edge, run)
    # The registrar answers with the binding it holds, and the granted time
    # (a transport parameter compares without case, RFC 3261 §19.1.4).
    contacts = [contact.lower() for contact in ok.entries("Contact")]
    binding = f"<sip:bob@127.0.0.1:{run.port};transport={token}>;expires=60"
    assert contacts == [binding], describe(edge, run)
    # RFC 3581 §4: the server stamps where the request came from on the Via it returns.
    (via,) = ok.entries("Via")
    assert "received=127.0.0.1" in via, describe(edge, run)
    assert f"rport={run.port}" in via, describe(edge, run)


def test_reregister_refreshes_then_expires_0_removes_the_binding(
    sipp: Sipp, edge: Edgeport
) -> None:
    # REGISTER, refresh in the same dialog (one binding, not two), Expires: 0:
    # the scenario checks each 200's Contact set.
    register = sipp.run("reregister", "reregister_uac", service="carol", keys={"expires": "60"})
    expect_success(edge, register)
    oks = [message for message in register.received() if message.status == 200]
    assert [message.header("CSeq") for message in oks] == [
        "1 REGISTER",
        "2 REGISTER",
        "3 REGISTER",
    ], describe(edge, register)
    # With the binding gone, carol cannot be reached.
    unknown = sipp.run("call", "caller_unknown", service="carol")
    expect_success(edge, unknown)
    statuses = [message.status for message in unknown.received()]
    assert 404 in statuses, describe(edge, register, unknown)


def test_registration_expires_and_a_later_call_gets_404(sipp: Sipp, edge: Edgeport) -> None:
    # While the 2 s registration lasts, bob is reachable: a MESSAGE gets his 200.
    callee = sipp.start(
        "callee",
        "callee_register",
        service="bob",
        ooc_scenario="callee_message",
        keys={"expires": "2"},
    )
    callee.wait_registered()
    registered_at = time.monotonic()
    reached = sipp.run("message", "caller_message", service="bob")
    callee_run = callee.wait()
    expect_success(edge, reached, callee_run)
    granted = [m for m in callee_run.received() if m.status == 200 and m.method == "REGISTER"]
    assert granted, describe(edge, callee_run)
    assert granted[0].entries("Contact")[0].endswith(";expires=2"), describe(edge, callee_run)

    # Once it has run out, the same user is unknown.
    time.sleep(max(0.0, registered_at + EXPIRY_WAIT - time.monotonic()))
    expired = sipp.run("call", "caller_unknown", service="bob")
    expect_success(edge, expired)
    assert [m.status for m in expired.received() if m.status != 100] == [404], describe(
        edge, expired
    )
