"""What the health server exposes, and where: bounded metric labels, the bind address."""

from __future__ import annotations

import re

import pytest
import trio

from edgeport.config import HealthConfig, UnknownMethodAction
from edgeport.metrics import METRICS
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address, make_config, start_edgeport
from tests.support.ports import listening_addresses
from tests.support.ua import UdpUA, sip

FLOOD_REQUESTS = 60
METHOD_BYTES = 8192


async def http_get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, str]:
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def _value(exposition: str, series: str) -> float:
    match = re.search("^" + re.escape(series) + r" (\S+)$", exposition, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_long_method_names_leave_metrics_small(nursery: trio.Nursery) -> None:
    # Each request carries its own 8 KB method token; edgeport answers 405,
    # and both the request and the answer are counted. Before, each token
    # became a label value of its own: 60 of them made /metrics 490 KB.
    config = make_config(
        health=HealthConfig(enabled=True, port=0),
        unknown_method_action=UnknownMethodAction.RESPOND,
    )
    server = await start_edgeport(nursery, config)
    assert server.health_port
    labels = 'transport="udp",method="other",status_class'
    received = f'edgeport_messages_received_total{{{labels}="request"}}'
    sent = f'edgeport_messages_sent_total{{{labels}="4xx"}}'
    before = METRICS.render()
    alice = await UdpUA.open(address(server, Transport.UDP))
    with trio.fail_after(30):
        for n in range(FLOOD_REQUESTS):
            method = f"F{n:03d}" + "X" * (METHOD_BYTES - 4)
            await alice.send(
                sip(
                    f"""{method} sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{alice.port};branch=z9hG4bK-flood-{n};rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=flood
To: <sip:bob@127.0.0.1>
Call-ID: flood-{n}@127.0.0.1
CSeq: 1 {method}
Content-Length: 0

"""
                )
            )
            answer = await alice.receive()
            assert answer.status == 405, answer.first_line
        status, exposition = await http_get(server.health_port, "/metrics")
    alice.close()
    assert status == 200
    assert len(exposition.encode()) < 64 * 1024, len(exposition)
    assert max(len(line) for line in exposition.splitlines()) < 512
    assert "XXXXXXXX" not in exposition
    assert _value(exposition, received) - _value(before, received) == FLOOD_REQUESTS
    assert _value(exposition, sent) - _value(before, sent) == FLOOD_REQUESTS


async def _connects(host: str, port: int) -> bool:
    """True when a TCP connect to ``host:port`` is accepted, False when it is refused."""
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM) as sock:
        try:
            await sock.connect((host, port))
        except ConnectionRefusedError:
            return False
    return True


@pytest.mark.parametrize(
    ("health", "listening", "refused"),
    [
        (HealthConfig(enabled=True, port=0), "127.0.0.1", "127.0.0.2"),
        (HealthConfig(enabled=True, port=0, bind_addr="127.0.0.2"), "127.0.0.2", "127.0.0.1"),
    ],
    ids=["spec.bindAddr", "HEALTHCHECK_BIND_ADDR"],
)
async def test_health_server_listens_only_on_the_configured_address(
    nursery: trio.Nursery, health: HealthConfig, listening: str, refused: str
) -> None:
    # spec.bindAddr is 127.0.0.1 (make_config). Every 127/8 address is local
    # on Linux, so a socket bound to 0.0.0.0 would also answer on the other.
    server = await start_edgeport(nursery, make_config(health=health))
    port = server.health_port
    assert port
    assert listening_addresses(port) == {listening}
    with trio.fail_after(10):
        status, _ = await http_get(port, "/healthz", host=listening)
        assert status == 200
        assert not await _connects(refused, port)
