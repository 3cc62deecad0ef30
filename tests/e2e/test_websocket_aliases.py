"""A browser's ``.invalid`` Contact host (RFC 7118 §5.2) belongs to the connection that
first presented it: another WebSocket client that presents it cannot take the browser's
calls, and a browser that reconnects gets it back once its old connection fails a probe."""

from __future__ import annotations

import re

import trio
import trio_websocket

from edgeport.metrics import METRICS
from edgeport.server import RunningServer
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address
from tests.e2e.flows import response_to
from tests.support.silent_ws import SilentWebSocket
from tests.support.ua import TcpUA, WsUA, sip

BROWSER = "abc.invalid"
CONTACT = f"sip:a@{BROWSER};transport=ws"
PROBE_WAIT = 15.0  # seconds: edgeport gives a probed connection 5 s to answer


def metric(name: str, labels: str = "") -> float:
    """A sample of edgeport's metrics as /metrics shows it (0 when absent)."""
    pattern = re.compile(rf"{name}{re.escape(labels)} (\S+)")
    for line in METRICS.render().splitlines():
        match = pattern.fullmatch(line)
        if match:
            return float(match.group(1))
    return 0.0


REFUSED = "edgeport_alias_claims_refused_total"
PROBES = "edgeport_alias_probes_total"


def register(user: str, contact: str, call_id: str) -> bytes:
    return sip(
        f"""REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/WS {BROWSER};branch=z9hG4bK-{call_id}
Max-Forwards: 70
From: <sip:{user}@127.0.0.1>;tag={call_id}
To: <sip:{user}@127.0.0.1>
Call-ID: {call_id}@test
CSeq: 1 REGISTER
Contact: <{contact}>
Expires: 600
Content-Length: 0

"""
    )


def options_claiming(contact: str, call_id: str) -> bytes:
    return sip(
        f"""OPTIONS sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/WS attacker.invalid;branch=z9hG4bK-{call_id}
Max-Forwards: 70
From: <sip:mallory@127.0.0.1>;tag={call_id}
To: <sip:mallory@127.0.0.1>
Call-ID: {call_id}@test
CSeq: 1 OPTIONS
Contact: <{contact}>
Content-Length: 0

"""
    )


async def call_browser(caller: TcpUA, browser: WsUA | SilentWebSocket, n: int) -> None:
    """The TCP caller calls a (INVITE, 200, ACK, BYE, 200): every request to a reaches
    ``browser``; the in-dialog ones go straight to the ``.invalid`` Contact."""
    call_id = f"alias-call-{n}@test"
    await caller.send(
        sip(
            f"""INVITE sip:a@127.0.0.1 SIP/2.0
Via: SIP/2.0/TCP 127.0.0.1:{caller.port};branch=z9hG4bK-ainv-{n}
Max-Forwards: 70
From: <sip:carol@127.0.0.1>;tag=carol-{n}
To: <sip:a@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:carol@127.0.0.1:{caller.port};transport=tcp>
Content-Length: 0

"""
        )
    )
    invite = await browser.receive_until(lambda m: m.method == "INVITE")
    assert invite.first_line == f"INVITE {CONTACT} SIP/2.0"
    await browser.send(
        response_to(invite, "200 OK", to_tag=f"a-{n}", extra=f"Contact: <{CONTACT}>\n")
    )
    ok = await caller.receive_until(lambda m: m.status == 200)
    routes = "".join(f"Route: {r}\n" for r in ok.headers("Record-Route"))
    for method, cseq in (("ACK", 1), ("BYE", 2)):
        await caller.send(
            sip(
                f"""{method} {CONTACT} SIP/2.0
Via: SIP/2.0/TCP 127.0.0.1:{caller.port};branch=z9hG4bK-a{method}-{n}
{routes}Max-Forwards: 70
From: <sip:carol@127.0.0.1>;tag=carol-{n}
To: {ok.header("To")}
Call-ID: {call_id}
CSeq: {cseq} {method}
Content-Length: 0

"""
            )
        )
        got = await browser.receive_until(lambda m, method=method: m.method == method)
        assert got.header("Call-ID") == call_id
    await browser.send(response_to(got, "200 OK", to_tag=f"a-{n}"))
    bye_ok = await caller.receive_until(lambda m: m.header("CSeq") == "2 BYE")
    assert bye_ok.status == 200


async def nothing_for(client: WsUA, seconds: float) -> None:
    with trio.move_on_after(seconds):
        message = await client.receive(seconds)
        raise AssertionError(f"unexpected message:\n{message.text}")


async def test_websocket_alias_hijack_another_client_presenting_the_contact_gets_no_calls(
    edgeport: RunningServer,
) -> None:
    ws_port = address(edgeport, Transport.WS)[1]
    caller = await TcpUA.open(address(edgeport, Transport.TCP))
    refused_before = metric(REFUSED)
    answered_before = metric(PROBES, '{result="answered"}')
    with trio.fail_after(30):
        async with (
            trio_websocket.open_websocket_url(
                f"ws://127.0.0.1:{ws_port}/", subprotocols=["sip"]
            ) as browser_ws,
            trio_websocket.open_websocket_url(
                f"ws://127.0.0.1:{ws_port}/", subprotocols=["sip"]
            ) as attacker_ws,
        ):
            browser, attacker = WsUA(browser_ws), WsUA(attacker_ws)
            await browser.send(register("a", CONTACT, "a-reg"))
            assert (await browser.receive()).status == 200
            # The attacker presents the browser's Contact, in a request of its own
            # and in a registration of its own.
            await attacker.send(options_claiming(CONTACT, "attack-options"))
            assert (await attacker.receive()).status is not None
            await attacker.send(register("mallory", CONTACT, "attack-reg"))
            assert (await attacker.receive()).status == 200
            for n in range(2):
                await call_browser(caller, browser, n)
            await nothing_for(attacker, 0.5)
            # Each claim was refused and counted; the browser answered the probe the
            # first one started, and kept its alias.
            assert metric(REFUSED) == refused_before + 2
            assert metric(PROBES, '{result="answered"}') == answered_before + 1
    await caller.close()


async def test_websocket_alias_a_reconnected_browser_takes_over_once_the_old_connection_fails_the_probe(  # noqa: E501
    edgeport: RunningServer,
) -> None:
    ws_port = address(edgeport, Transport.WS)[1]
    caller = await TcpUA.open(address(edgeport, Transport.TCP))
    unanswered_before = metric(PROBES, '{result="unanswered"}')
    with trio.fail_after(30 + PROBE_WAIT):
        # The browser's first connection: registered, then its network goes away
        # (the connection stays open on edgeport's side, and answers nothing).
        old = await SilentWebSocket.connect("127.0.0.1", ws_port)
        await old.send(register("a", CONTACT, "a-reg-1"))
        assert (await old.receive()).status == 200
        async with trio_websocket.open_websocket_url(
            f"ws://127.0.0.1:{ws_port}/", subprotocols=["sip"]
        ) as new_ws:
            browser = WsUA(new_ws)
            await browser.send(register("a", CONTACT, "a-reg-2"))
            assert (await browser.receive()).status == 200
            # edgeport pinged the old connection; with no Pong it closed it.
            assert await old.closed_by_peer(within=PROBE_WAIT)
            assert old.pings == 1
            assert metric(PROBES, '{result="unanswered"}') == unanswered_before + 1
            await call_browser(caller, browser, 10)
        await old.aclose()
    await caller.close()
