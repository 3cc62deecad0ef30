"""What operators see: events on a real NATS server, health, readiness, metrics, shutdown."""

from __future__ import annotations

import json
import re

import nats
import trio
import trio_asyncio

from edgeport.config import HealthConfig, PublisherConfig
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address, make_config, start_edgeport
from tests.e2e.flows import call_and_hang_up, register_both
from tests.support.nats import open_nats_server
from tests.support.ua import UdpUA

aio = trio_asyncio.aio_as_trio
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def http_get(port: int, path: str) -> tuple[int, str]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


async def test_events_reach_nats_for_a_real_call_flow() -> None:
    with trio.fail_after(60):
        async with trio_asyncio.open_loop(), open_nats_server() as nats_server:
            subscriber = await aio(nats.connect)(nats_server.url)
            subscription = await aio(subscriber.subscribe)("routr.>")
            await aio(subscriber.flush)()
            config = make_config(
                publishers=PublisherConfig(nats_enabled=True, nats_url=nats_server.url),
            )
            async with trio.open_nursery() as nursery:
                server = await start_edgeport(nursery, config)
                edge = address(server, Transport.UDP)
                alice, bob = await UdpUA.open(edge), await UdpUA.open(edge)
                await register_both(alice, bob)
                assert await call_and_hang_up(alice, bob, call_id="evt-1") == 200
                assert (
                    await call_and_hang_up(
                        alice, bob, call_id="evt-2", callee_status="486 Busy Here"
                    )
                    == 486
                )
                received = []
                for _ in range(6):
                    message = await aio(subscription.next_msg)(timeout=10)
                    received.append((message.subject, json.loads(message.data)))
                nursery.cancel_scope.cancel()
            await aio(subscriber.close)()

    subjects = [subject for subject, _ in received]
    assert subjects.count("routr.endpoint.registered") == 2
    assert subjects.count("routr.call.started") == 2
    assert subjects.count("routr.call.ended") == 2
    registered = [body for subject, body in received if subject == "routr.endpoint.registered"]
    assert {body["aor"] for body in registered} == {"sip:alice@127.0.0.1", "sip:bob@127.0.0.1"}
    assert all(body["expires"] == 300 and ISO_MS.match(body["registeredAt"]) for body in registered)
    started = [body for subject, body in received if subject == "routr.call.started"]
    assert started[0]["callId"] == "evt-1"
    assert started[0]["from"] == "sip:alice@127.0.0.1"
    assert started[0]["to"] == "sip:bob@127.0.0.1"
    assert ISO_MS.match(started[0]["startTime"])
    ended = {body["callId"]: body for subject, body in received if subject == "routr.call.ended"}
    assert ended["evt-1"]["hangupCause"] == "NORMAL_CLEARING"
    assert ended["evt-2"]["hangupCause"] == "USER_BUSY"
    assert ISO_MS.match(ended["evt-2"]["endTime"])


async def test_health_readiness_and_metrics(nursery: trio.Nursery) -> None:
    config = make_config(health=HealthConfig(enabled=True, port=0))
    server = await start_edgeport(nursery, config)
    assert server.health_port
    status, body = await http_get(server.health_port, "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "OK"})
    status, _ = await http_get(server.health_port, "/readyz")
    assert status == 200

    edge = address(server, Transport.UDP)
    alice, bob = await UdpUA.open(edge), await UdpUA.open(edge)
    await register_both(alice, bob)
    assert await call_and_hang_up(alice, bob, call_id="metrics-1") == 200
    status, metrics = await http_get(server.health_port, "/metrics")
    assert status == 200

    def value(pattern: str) -> float:
        match = re.search("^" + re.escape(pattern) + r" (\S+)$", metrics, re.MULTILINE)
        assert match, f"{pattern} not in metrics:\n{metrics}"
        return float(match.group(1))

    assert (
        value(
            'edgeport_messages_received_total{transport="udp",method="REGISTER",status_class="request"}'
        )
        >= 2
    )
    assert (
        value(
            'edgeport_messages_received_total{transport="udp",method="INVITE",status_class="2xx"}'
        )
        >= 1
    )
    assert value('edgeport_processor_calls_total{outcome="ok"}') >= 8
    assert value("edgeport_processor_latency_seconds_count") >= 8
    assert value('edgeport_active_connections{transport="tcp"}') == 0
    assert "edgeport_active_transactions " in metrics
    nursery.cancel_scope.cancel()


async def test_shutdown_during_a_call_loses_nothing() -> None:
    from tests.e2e.flows import response_to
    from tests.support.ua import sip

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            server = await start_edgeport(nursery, make_config())
            edge = address(server, Transport.UDP)
            alice, bob, late = (
                await UdpUA.open(edge),
                await UdpUA.open(edge),
                await UdpUA.open(edge),
            )
            await register_both(alice, bob)
            await alice.send(
                sip(
                    f"""INVITE sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{alice.port};branch=z9hG4bK-drain;rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=drain
To: <sip:bob@127.0.0.1>
Call-ID: drain@test
CSeq: 1 INVITE
Contact: <sip:alice@127.0.0.1:{alice.port}>
Content-Length: 0

"""
                )
            )
            incoming = await bob.receive_until(lambda m: m.method == "INVITE")
            server.shutdown()
            await trio.sleep(0.05)
            # A new request during the drain is refused, not dropped.
            await late.send(
                sip(
                    f"""MESSAGE sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{late.port};branch=z9hG4bK-late;rport
Max-Forwards: 70
From: <sip:carol@127.0.0.1>;tag=late
To: <sip:bob@127.0.0.1>
Call-ID: late@test
CSeq: 1 MESSAGE
Content-Length: 0

"""
                )
            )
            refused = await late.receive()
            assert refused.status == 503
            assert refused.header("Retry-After")
            # The call in progress completes through the draining edge.
            await bob.send(
                response_to(
                    incoming,
                    "200 OK",
                    to_tag="drained",
                    extra=f"Contact: <sip:bob@127.0.0.1:{bob.port}>\n",
                )
            )
            ok = await alice.receive_until(lambda m: m.status == 200)
            assert ok.header("Call-ID") == "drain@test"
            # serve() returned by itself once the call's transaction was answered.


async def test_health_turns_503_when_a_listener_dies(nursery: trio.Nursery) -> None:
    config = make_config(health=HealthConfig(enabled=True, port=0))
    server = await start_edgeport(nursery, config)
    assert server.health_port
    assert (await http_get(server.health_port, "/healthz"))[0] == 200
    # Kill the UDP listener the way a fatal socket error would: close its socket.
    udp = next(p for p in server.listening_points if p.transport is Transport.UDP)
    for sock in server.transports.sender.udp_sockets:
        sock.close()
    with trio.fail_after(5):
        while server.transports.listener_alive(udp):
            await trio.sleep(0.05)
    status, body = await http_get(server.health_port, "/healthz")
    assert status == 503
    assert f"listener {udp}" in body
    nursery.cancel_scope.cancel()
