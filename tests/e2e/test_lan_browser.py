"""A browser on the local network, through Routr's own processor library, with no externalAddrs.

tests/routr_processor/processor.js stores routes as Routr's location service
does: the route's ``advertisedHost`` is the REGISTER's top Via host, which a
browser sets to a random ``.invalid`` name (RFC 7118 §5.2). When the library
places the EdgePort towards that host (``getEdgeInterface``) it finds it in
no localnet and, with no externalAddrs, fails the call (500). edgeport shows
a WebSocket client's ``.invalid`` Via host to the processor as the address
the connection comes from, and writes the Via back as the browser sent it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio
import trio_websocket

from edgeport.config import ProcessorConfig
from edgeport.server import RunningServer
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address, make_config, start_edgeport
from tests.e2e.flows import response_to
from tests.support.jssip_agent import running_jssip_agent
from tests.support.node_processor import RunningRoutrProcessor, running_routr_processor
from tests.support.ua import Received, TcpUA, UdpUA, WsUA, sip

BROWSER_HOST = "q8w7e6r5t4y3.invalid"
INSTANCE = '+sip.instance="<urn:uuid:7f1c9a52-3a8e-4f7e-9d55-0c3b6f1e2a10>"'
WAIT = 60.0  # seconds: Node start-up included


def from_tag(call_id: str) -> str:
    """The caller's From tag for a call: a token (RFC 3261 §25.1), so no "@"."""
    return "alice-" + call_id.partition("@")[0]


def register(call_id: str) -> bytes:
    """A REGISTER as JsSIP writes it: .invalid Via host without a port, ``;ob`` Contact."""
    return sip(
        f"""REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/WS {BROWSER_HOST};branch=z9hG4bK-lan-reg
Max-Forwards: 69
To: <sip:bob@127.0.0.1>
From: <sip:bob@127.0.0.1>;tag=lan-reg
Call-ID: {call_id}
CSeq: 1 REGISTER
Contact: <sip:bob@{BROWSER_HOST};transport=ws;ob>;+sip.ice;reg-id=1;{INSTANCE};expires=600
Expires: 600
Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY
Supported: path,gruu,outbound
User-Agent: JsSIP 3.10.1
Content-Length: 0

"""
    )


def invite(caller_port: int, transport: str, call_id: str) -> bytes:
    return sip(
        f"""INVITE sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/{transport} 127.0.0.1:{caller_port};branch=z9hG4bK-lan-inv-{call_id};rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag={from_tag(call_id)}
To: <sip:bob@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:alice@127.0.0.1:{caller_port};transport={transport.lower()}>
Content-Length: 0

"""
    )


def in_dialog(method: str, cseq: int, ok: Received, caller_port: int, transport: str) -> bytes:
    routes = "".join(f"Route: {r}\n" for r in reversed(ok.headers("Record-Route")))
    call_id = ok.header("Call-ID")
    return sip(
        f"""{method} {ok.header("Contact").strip("<>")} SIP/2.0
Via: SIP/2.0/{transport} 127.0.0.1:{caller_port};branch=z9hG4bK-lan-{method}-{call_id};rport
{routes}Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag={from_tag(call_id)}
To: {ok.header("To")}
Call-ID: {call_id}
CSeq: {cseq} {method}
Content-Length: 0

"""
    )


async def register_browser(browser: WsUA) -> None:
    await browser.send(register("lan-reg@test"))
    answer = await browser.receive()
    assert answer.status == 200, answer.text
    # The answer carries the browser's Via as it sent it (JsSIP drops a
    # response whose Via sent-by is not its own .invalid host).
    assert answer.header("Via").startswith(f"SIP/2.0/WS {BROWSER_HOST};"), answer.text


async def call_the_browser(
    caller: UdpUA | TcpUA, transport: str, browser: WsUA, processor: RunningRoutrProcessor
) -> None:
    """INVITE, 180, 200, ACK, BYE, 200: the browser rings and answers, the caller hangs up."""
    call_id = f"lan-call-{transport.lower()}@test"
    await caller.send(invite(caller.port, transport, call_id))
    try:
        incoming = await browser.receive_until(lambda m: m.method == "INVITE")
    except trio.TooSlowError:
        answer = await caller.receive_until(lambda m: (m.status or 0) >= 200)
        raise AssertionError(
            f"no INVITE reached the browser; the caller got {answer.first_line!r}; "
            f"the processor logged {failures(processor)}"
        ) from None
    assert incoming.header("Call-ID") == call_id
    await browser.send(response_to(incoming, "180 Ringing", to_tag="bob-lan"))
    ringing = await caller.receive_until(lambda m: (m.status or 0) > 100)
    assert ringing.status == 180, ringing.text
    contact = f"Contact: <sip:bob@{BROWSER_HOST};transport=ws;ob>\n"
    await browser.send(response_to(incoming, "200 OK", to_tag="bob-lan", extra=contact))
    ok = await caller.receive_until(lambda m: (m.status or 0) >= 200)
    assert ok.status == 200, ok.text
    for method, cseq in (("ACK", 1), ("BYE", 2)):
        await caller.send(in_dialog(method, cseq, ok, caller.port, transport))
        got = await browser.receive_until(lambda m, method=method: m.method == method)
        assert got.header("CSeq") == f"{cseq} {method}"
    await browser.send(response_to(got, "200 OK", to_tag="bob-lan"))
    bye_ok = await caller.receive_until(lambda m: (m.status or 0) >= 200)
    assert (bye_ok.status, bye_ok.header("CSeq")) == (200, "2 BYE")


def register_phone(phone: UdpUA) -> bytes:
    return sip(
        f"""REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{phone.port};branch=z9hG4bK-lan-carol;rport
Max-Forwards: 70
From: <sip:carol@127.0.0.1>;tag=carol-reg
To: <sip:carol@127.0.0.1>
Call-ID: lan-carol-reg@test
CSeq: 1 REGISTER
Contact: <sip:carol@127.0.0.1:{phone.port}>;expires=600
Content-Length: 0

"""
    )


async def browser_calls_a_phone(browser: WsUA, phone: UdpUA) -> None:
    """The browser's Via reaches the phone and comes back to it as the browser wrote it."""
    via = f"SIP/2.0/WS {BROWSER_HOST};branch=z9hG4bK-lan-out"
    await browser.send(
        sip(
            f"""INVITE sip:carol@127.0.0.1 SIP/2.0
Via: {via}
Max-Forwards: 69
To: <sip:carol@127.0.0.1>
From: <sip:bob@127.0.0.1>;tag=bob-out
Call-ID: lan-out@test
CSeq: 7 INVITE
Contact: <sip:bob@{BROWSER_HOST};transport=ws;ob>
Content-Length: 0

"""
        )
    )
    incoming = await phone.receive_until(lambda m: m.method == "INVITE")
    assert incoming.headers("Via")[1].startswith(f"{via};"), incoming.text
    await phone.send(response_to(incoming, "180 Ringing", to_tag="carol-out"))
    ringing = await browser.receive_until(lambda m: (m.status or 0) > 100)
    assert ringing.status == 180, ringing.text
    assert len(ringing.headers("Via")) == 1
    assert ringing.header("Via").startswith(f"{via};"), ringing.text
    await phone.send(response_to(incoming, "486 Busy Here", to_tag="carol-out"))
    busy = await browser.receive_until(lambda m: (m.status or 0) >= 200)
    assert busy.status == 486, busy.text
    assert busy.header("Via").startswith(f"{via};"), busy.text


def failures(processor: RunningRoutrProcessor) -> list[str]:
    """What the processor logged besides its one JSON line per message."""
    return [line for line in processor.log.read_text().splitlines() if line and line[0] not in "{ "]


@asynccontextmanager
async def lan_edge(tmp_path: Path) -> AsyncIterator[tuple[RunningRoutrProcessor, RunningServer]]:
    """@routr/processor, and edgeport in front of it with 127.0.0.0/8 as its LAN and no
    externalAddrs. Once the case is done, the processor must have logged no failure."""
    with trio.fail_after(WAIT):
        async with (
            running_routr_processor(tmp_path) as processor,
            trio.open_nursery() as nursery,
        ):
            config = make_config(
                processor=ProcessorConfig(processor.addr, timeout=5.0),
                localnets=("127.0.0.1/8",),
            )
            assert config.external_addrs == ()
            server = await start_edgeport(nursery, config)
            yield processor, server
            assert failures(processor) == []
            nursery.cancel_scope.cancel()


async def test_a_lan_browser_is_called_through_routr_processor_without_external_addrs(
    tmp_path: Path,
) -> None:
    async with lan_edge(tmp_path) as (processor, server):
        udp_caller = await UdpUA.open(address(server, Transport.UDP))
        tcp_caller = await TcpUA.open(address(server, Transport.TCP))
        ws_port = address(server, Transport.WS)[1]
        async with trio_websocket.open_websocket_url(
            f"ws://127.0.0.1:{ws_port}/", subprotocols=["sip"]
        ) as ws:
            browser = WsUA(ws)
            await register_browser(browser)
            await call_the_browser(udp_caller, "UDP", browser, processor)
            await call_the_browser(tcp_caller, "TCP", browser, processor)
            phone = await UdpUA.open(address(server, Transport.UDP))
            await phone.send(register_phone(phone))
            assert (await phone.receive()).status == 200
            await browser_calls_a_phone(browser, phone)
            phone.close()
        # What the processor saw: the browser's address where it wrote a .invalid host.
        browser_vias = {
            (line["method"], line["via"]["host"])
            for line in processor.log_lines()
            if line["type"] == "request" and line["sender"]["transport"] == "WS"
        }
        assert browser_vias == {("REGISTER", "127.0.0.1"), ("INVITE", "127.0.0.1")}
        udp_caller.close()
        await tcp_caller.close()


OFFER = """v=0
o=alice 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
"""


def invite_with_offer(caller: UdpUA, call_id: str) -> bytes:
    body = OFFER.replace("\n", "\r\n")
    return (
        sip(
            f"""INVITE sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bK-jssip-inv;rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag={from_tag(call_id)}
To: <sip:bob@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:alice@127.0.0.1:{caller.port}>
Content-Type: application/sdp
Content-Length: {len(body)}

"""
        )
        + body.encode()
    )


async def test_a_jssip_browser_on_the_lan_registers_and_answers_a_call(tmp_path: Path) -> None:
    """The real JsSIP, over a WebSocket, with no externalAddrs, through @routr/processor."""
    async with lan_edge(tmp_path) as (processor, server):
        ws_port = address(server, Transport.WS)[1]
        caller = await UdpUA.open(address(server, Transport.UDP))
        async with running_jssip_agent(
            tmp_path, ws_url=f"ws://127.0.0.1:{ws_port}", uri="sip:bob@127.0.0.1"
        ) as agent:
            started = await agent.wait_for("starting")
            via_host = started["viaHost"]
            assert via_host.endswith(".invalid")
            # JsSIP takes the 200 only when its Via comes back as it wrote it.
            registered = await agent.wait_for("registered")
            assert registered["status"] == 200
            assert registered["via"].startswith(f"SIP/2.0/WS {via_host};")

            call_id = "jssip-call@test"
            await caller.send(invite_with_offer(caller, call_id))
            ringing = await caller.receive_until(lambda m: (m.status or 0) > 100)
            assert ringing.status == 180, (ringing.first_line, failures(processor))
            await agent.wait_for("newRTCSession", originator="remote", callId=call_id)
            ok = await caller.receive_until(lambda m: (m.status or 0) >= 200)
            assert ok.status == 200, ok.text
            assert ok.header("Contact").endswith(".invalid;transport=ws>"), ok.text
            await caller.send(in_dialog("ACK", 1, ok, caller.port, "UDP"))
            await agent.wait_for("confirmed", callId=call_id)
            await caller.send(in_dialog("BYE", 2, ok, caller.port, "UDP"))
            bye_ok = await caller.receive_until(lambda m: (m.status or 0) >= 200)
            assert (bye_ok.status, bye_ok.header("CSeq")) == (200, "2 BYE")
            ended = await agent.wait_for("ended", callId=call_id)
            assert ended["originator"] == "remote"
        caller.close()


async def test_a_jssip_browser_on_the_lan_calls_a_phone(tmp_path: Path) -> None:
    """JsSIP confirms the call only if every response carries its Via as it wrote it."""
    async with lan_edge(tmp_path) as (_, server):
        ws_port = address(server, Transport.WS)[1]
        phone = await UdpUA.open(address(server, Transport.UDP))
        await phone.send(register_phone(phone))
        assert (await phone.receive()).status == 200
        async with running_jssip_agent(
            tmp_path,
            ws_url=f"ws://127.0.0.1:{ws_port}",
            uri="sip:bob@127.0.0.1",
            call_target="sip:carol@127.0.0.1",
        ) as agent:
            via_host = (await agent.wait_for("starting"))["viaHost"]
            incoming = await phone.receive_until(lambda m: m.method == "INVITE")
            assert incoming.headers("Via")[1].startswith(f"SIP/2.0/WS {via_host};")
            call_id = incoming.header("Call-ID")
            await phone.send(response_to(incoming, "180 Ringing", to_tag="carol-js"))
            await agent.wait_for("progress", callId=call_id, status=180)
            body = OFFER.replace("\n", "\r\n")
            answer = response_to(
                incoming,
                "200 OK",
                to_tag="carol-js",
                extra=f"Contact: <sip:carol@127.0.0.1:{phone.port}>\n"
                "Content-Type: application/sdp\n",
            ).replace(b"Content-Length: 0", f"Content-Length: {len(body)}".encode())
            await phone.send(answer + body.encode())
            await agent.wait_for("confirmed", callId=call_id)
            ack = await phone.receive_until(lambda m: m.method == "ACK")
            assert ack.header("Call-ID") == call_id
            bye = await phone.receive_until(lambda m: m.method == "BYE")
            await phone.send(response_to(bye, "200 OK", to_tag="carol-js"))
            ended = await agent.wait_for("ended", callId=call_id)
            assert ended["originator"] == "local"
        phone.close()
