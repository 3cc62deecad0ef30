"""What a processor receives as the top Via of a ``.invalid`` sent-by, client by client.

A real gRPC processor records every MessageRequest. Only a request that came
over a WebSocket, to an edgeport without externalAddrs, shows the connection's
address instead of the ``.invalid`` host; a UDP or TCP client that writes such
a host, and any client of an edgeport with externalAddrs, are shown as before.
"""

from __future__ import annotations

import trio
import trio_websocket

from edgeport._proto import sipmessage_pb2
from edgeport.config import ProcessorConfig
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address, make_config, start_edgeport
from tests.support.grpc_processor import ScriptableProcessor, answer, start_processor
from tests.support.ua import TcpUA, UdpUA, WsUA, sip

HOST = "m1n2b3v4c5x6.invalid"


def register(transport: str, call_id: str) -> bytes:
    return sip(
        f"""REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/{transport} {HOST};branch=z9hG4bK-{call_id}
Max-Forwards: 70
From: <sip:dave@127.0.0.1>;tag=t-{call_id}
To: <sip:dave@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 REGISTER
Contact: <sip:dave@{HOST};transport={transport.lower()}>;expires=60
Content-Length: 0

"""
    )


def via(host: str, transport: str, call_id: str, port: int) -> sipmessage_pb2.Via:
    """The top Via a processor gets: received and rport stamped by edgeport (contract §2)."""
    return sipmessage_pb2.Via(
        host=host,
        port=-1,
        branch=f"z9hG4bK-{call_id}",
        transport=transport,
        r_port_flag=transport != "UDP",
        r_port=port if transport != "UDP" else -1,
        received="127.0.0.1",
        ttl=-1,
    )


def registered_via(processor: ScriptableProcessor, call_id: str) -> sipmessage_pb2.Via:
    for request in processor.requests:
        if request.ref == call_id:
            return request.message.via[0]
    raise AssertionError(f"the processor got no {call_id}")


async def test_a_udp_or_tcp_client_s_invalid_via_host_reaches_the_processor_unchanged(
    nursery: trio.Nursery,
) -> None:
    with trio.fail_after(20):
        processor = ScriptableProcessor(reply=answer(sipmessage_pb2.OK))
        running = await start_processor(nursery, processor)
        server = await start_edgeport(nursery, make_config(processor=ProcessorConfig(running.addr)))
        udp = await UdpUA.open(address(server, Transport.UDP))
        await udp.send(register("UDP", "shown-udp"))
        assert (await udp.receive()).status == 200
        tcp = await TcpUA.open(address(server, Transport.TCP))
        await tcp.send(register("TCP", "shown-tcp"))
        assert (await tcp.receive()).status == 200
        assert registered_via(processor, "shown-udp") == via(HOST, "UDP", "shown-udp", -1)
        assert registered_via(processor, "shown-tcp") == via(HOST, "TCP", "shown-tcp", tcp.port)
        udp.close()
        await tcp.close()


async def test_a_browser_is_shown_by_its_address_only_without_external_addrs(
    nursery: trio.Nursery,
) -> None:
    with trio.fail_after(20):
        processor = ScriptableProcessor(reply=answer(sipmessage_pb2.OK))
        running = await start_processor(nursery, processor)
        ports = {}
        for external_addrs, call_id in (((), "shown-lan"), (("127.0.0.1",), "shown-external")):
            config = make_config(
                processor=ProcessorConfig(running.addr), external_addrs=external_addrs
            )
            server = await start_edgeport(nursery, config)
            ws_port = address(server, Transport.WS)[1]
            async with trio_websocket.open_websocket_url(
                f"ws://127.0.0.1:{ws_port}/", subprotocols=["sip"]
            ) as ws:
                browser = WsUA(ws)
                await browser.send(register("WS", call_id))
                ok = await browser.receive()
                assert ok.status == 200
                # The answer carries the Via as the browser wrote it.
                assert ok.header("Via").startswith(f"SIP/2.0/WS {HOST};"), ok.text
                ports[call_id] = ws.local.port
        # Without externalAddrs: the connection's address; with them: as written.
        assert registered_via(processor, "shown-lan") == via(
            "127.0.0.1", "WS", "shown-lan", ports["shown-lan"]
        )
        assert registered_via(processor, "shown-external") == via(
            HOST, "WS", "shown-external", ports["shown-external"]
        )
