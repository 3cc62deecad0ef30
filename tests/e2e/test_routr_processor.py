"""edgeport in front of Routr's own processor library (@routr/processor on Node).

tests/routr_processor/processor.js stores routes as Routr's location service
does and routes with the alterations Routr's connect processor applies. Through
it: a browser without rport registers and is called (ACK and BYE reach it over
its WebSocket), and a trunk INVITE with a forged Via is judged by the trunk's
ACL on ``sender``, the packet's real source.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
import trio_websocket

from edgeport.config import ProcessorConfig
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address, make_config, start_edgeport
from tests.e2e.flows import response_to
from tests.support.node_processor import running_routr_processor
from tests.support.ua import UdpUA, WsUA, sip

BROWSER_HOST = "z1x2c3v4b5n6.invalid"
WAIT = 60.0  # seconds: Node start-up included
NUMBERS = {
    "+15550100": {"aor": "sip:bob@127.0.0.1", "acl": ["127.0.0.0/8"]},
    "+15550199": {"aor": "sip:bob@127.0.0.1", "acl": ["10.9.9.0/24"]},
}


def invite(ua: UdpUA, target: str, *, via: str, call_id: str, from_: str) -> bytes:
    return sip(
        f"""INVITE {target} SIP/2.0
Via: {via}
Max-Forwards: 70
From: <{from_}>;tag=from-{call_id}
To: <{target}>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:caller@127.0.0.1:{ua.port}>
Content-Length: 0

"""
    )


async def test_register_browser_call_and_forged_trunk_via(tmp_path: Path) -> None:
    with trio.fail_after(WAIT):
        async with (
            running_routr_processor(tmp_path, numbers=NUMBERS) as processor,
            trio.open_nursery() as nursery,
        ):
            config = make_config(
                processor=ProcessorConfig(processor.addr, timeout=5.0),
                localnets=("127.0.0.1/8",),
                # Routr's library places the EdgePort towards a browser's
                # .invalid Via host from the external address.
                external_addrs=("127.0.0.1",),
            )
            server = await start_edgeport(nursery, config)
            ws_port = address(server, Transport.WS)[1]
            caller = await UdpUA.open(address(server, Transport.UDP))
            trunk = await UdpUA.open(address(server, Transport.UDP))
            async with trio_websocket.open_websocket_url(
                f"ws://127.0.0.1:{ws_port}/", subprotocols=["sip"]
            ) as ws:
                browser = WsUA(ws)
                await register_browser(browser)
                registered = [
                    line
                    for line in processor.log_lines()
                    if line["method"] == "REGISTER" and line["type"] == "request"
                ]
                assert registered[-1]["via"]["rPort"] == ws.local.port
                assert registered[-1]["sender"]["port"] == ws.local.port

                await call_browser(caller, browser)
                await trunk_calls(trunk, browser, processor.log_lines)
            caller.close()
            trunk.close()
            nursery.cancel_scope.cancel()


async def register_browser(browser: WsUA) -> None:
    await browser.send(
        sip(
            f"""REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/WS {BROWSER_HOST};branch=z9hG4bK-routr-reg
Max-Forwards: 70
From: <sip:bob@127.0.0.1>;tag=routr-reg
To: <sip:bob@127.0.0.1>
Call-ID: routr-reg@test
CSeq: 1 REGISTER
Contact: <sip:bob@{BROWSER_HOST};transport=ws>;expires=600
Content-Length: 0

"""
        )
    )
    answer = await browser.receive()
    assert answer.status == 200, answer.text


async def call_browser(caller: UdpUA, browser: WsUA) -> None:
    """INVITE, 200, ACK, BYE, 200: every request reaches the browser over its WebSocket."""
    await caller.send(
        invite(
            caller,
            "sip:bob@127.0.0.1",
            via=f"SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bK-routr-inv;rport",
            call_id="routr-call@test",
            from_="sip:alice@127.0.0.1",
        )
    )
    incoming = await browser.receive_until(lambda m: m.method == "INVITE")
    contact = f"Contact: <sip:bob@{BROWSER_HOST};transport=ws>\n"
    await browser.send(response_to(incoming, "200 OK", to_tag="bob-routr", extra=contact))
    ok = await caller.receive_until(lambda m: (m.status or 0) >= 200)
    assert ok.status == 200, ok.text
    routes = "".join(f"Route: {r}\n" for r in reversed(ok.headers("Record-Route")))
    for method, cseq in (("ACK", 1), ("BYE", 2)):
        await caller.send(
            sip(
                f"""{method} {ok.header("Contact").strip("<>")} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bK-routr-{method};rport
{routes}Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=from-routr-call@test
To: {ok.header("To")}
Call-ID: routr-call@test
CSeq: {cseq} {method}
Content-Length: 0

"""
            )
        )
        got = await browser.receive_until(lambda m, method=method: m.method == method)
        assert got.header("CSeq") == f"{cseq} {method}"
    await browser.send(response_to(got, "200 OK", to_tag="bob-routr"))
    bye_ok = await caller.receive_until(lambda m: (m.status or 0) >= 200)
    assert (bye_ok.status, bye_ok.header("CSeq")) == (200, "2 BYE")


async def trunk_calls(
    trunk: UdpUA, browser: WsUA, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    """The Via claims the carrier's 10.9.9.9; the packet comes from 127.0.0.1."""
    forged = "SIP/2.0/UDP 10.9.9.9:5099;branch=z9hG4bK-{};rport"
    # The trunk whose ACL holds the real source: routed to the browser.
    await trunk.send(
        invite(
            trunk,
            "sip:+15550100@127.0.0.1",
            via=forged.format("trunk-ok"),
            call_id="trunk-ok@test",
            from_="sip:+15557777@10.9.9.9",
        )
    )
    incoming = await browser.receive_until(lambda m: m.method == "INVITE")
    assert incoming.header("Call-ID") == "trunk-ok@test"
    await browser.send(response_to(incoming, "486 Busy Here", to_tag="bob-busy"))
    busy = await trunk.receive_until(lambda m: (m.status or 0) >= 200)
    assert busy.status == 486
    # The trunk whose ACL holds only the forged address: refused.
    await trunk.send(
        invite(
            trunk,
            "sip:+15550199@127.0.0.1",
            via=forged.format("trunk-forged"),
            call_id="trunk-forged@test",
            from_="sip:+15557777@10.9.9.9",
        )
    )
    refused = await trunk.receive_until(lambda m: (m.status or 0) >= 200)
    assert refused.status == 401
    assert refused.headers("WWW-Authenticate") == []
    seen = [
        line
        for line in log_lines()
        if line["method"] == "INVITE"
        and line["type"] == "request"
        and line["via"]["host"] == "10.9.9.9"
    ]
    assert len(seen) == 2
    assert {(s["sender"]["host"], s["sender"]["port"]) for s in seen} == {("127.0.0.1", trunk.port)}
