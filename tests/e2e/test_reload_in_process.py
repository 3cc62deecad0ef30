"""Reloads of an edgeport served in this process: the message path's settings and the
health port, through real UDP sockets and a real gRPC processor."""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING

import trio

from edgeport._proto import sipmessage_pb2
from edgeport.reload.reloader import ConfigSource
from edgeport.server import RunningServer, serve
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address
from tests.support.grpc_processor import ScriptableProcessor, answer, start_processor
from tests.support.ports import free_port
from tests.support.ua import UdpUA, sip

if TYPE_CHECKING:
    from pathlib import Path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_text(processor: str, methods: str, external: str, port: int) -> str:
    return f"""kind: EdgePort
apiVersion: v2beta1
ref: edgeport-reload-test
spec:
  bindAddr: 127.0.0.1
  transport:
    - protocol: udp
      port: {port}
  methods: {methods}
  unknownMethodAction: Respond
  externalAddrs: {external}
  localnets: [127.0.0.0/8]
  processor:
    addr: {processor}
"""


def message(port: int, call_id: str) -> bytes:
    return sip(
        f"""MESSAGE sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id};rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=a-{call_id}
To: <sip:bob@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 MESSAGE
Content-Length: 0

"""
    )


async def start(nursery: trio.Nursery, path: Path, env: dict[str, str]) -> RunningServer:
    source = ConfigSource(str(path), env)
    config, _ = source.load()
    with trio.fail_after(10):
        server: RunningServer = await nursery.start(
            lambda task_status: serve(config, source=source, task_status=task_status)
        )
    return server


async def test_methods_and_external_addresses_apply_to_the_next_message(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    processor = ScriptableProcessor(reply=answer(sipmessage_pb2.OK))
    running = await start_processor(nursery, processor)
    path = tmp_path / "edgeport.yaml"
    port = free_udp_port()
    path.write_text(config_text(running.addr, "[REGISTER, MESSAGE, OPTIONS]", "[192.0.2.10]", port))
    server = await start(nursery, path, {})
    ua = await UdpUA.open(address(server, Transport.UDP))
    await ua.send(message(ua.port, "before"))
    assert (await ua.receive_until(lambda m: (m.status or 0) >= 200)).status == 200
    assert list(processor.requests[-1].external_addrs) == ["192.0.2.10"]

    path.write_text(config_text(running.addr, "[REGISTER, OPTIONS]", "[198.51.100.20]", port))
    assert server.reloader is not None
    result = await server.reloader.reload("test")
    assert (result.result, result.generation) == ("applied", 2)

    await ua.send(message(ua.port, "after"))
    refused = await ua.receive_until(lambda m: (m.status or 0) >= 200)
    assert refused.status == 405
    assert refused.header("Allow") == "OPTIONS, REGISTER"
    await ua.send(
        sip(
            f"""OPTIONS sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua.port};branch=z9hG4bK-options-after;rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=a-options
To: <sip:bob@127.0.0.1>
Call-ID: options-after
CSeq: 1 OPTIONS
Content-Length: 0

"""
        )
    )
    assert (await ua.receive_until(lambda m: (m.status or 0) >= 200)).status == 200
    assert processor.requests[-1].ref == "options-after"
    assert list(processor.requests[-1].external_addrs) == ["198.51.100.20"]
    ua.close()
    nursery.cancel_scope.cancel()


async def test_the_health_port_shows_the_generation_and_takes_no_reload_from_the_network(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "edgeport.yaml"
    path.write_text(config_text("builtin", "[REGISTER]", "[]", free_udp_port()))
    port = free_port()
    server = await start(
        nursery, path, {"ENABLE_HEALTHCHECKS": "true", "HEALTHCHECK_PORT": str(port)}
    )
    assert server.health_port == port

    async def request(method: str, target: str) -> tuple[int, dict[str, object]]:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(
                f"{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode()
            )
            data = b""
            with trio.fail_after(5):
                while chunk := await stream.receive_some(65536):
                    data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split(b" ")[1]), json.loads(body)

    assert await request("GET", "/healthz") == (200, {"status": "OK", "configGeneration": 1})
    # Anyone who reaches the health port could make edgeport reload: only SIGHUP, the
    # pid file and the supervisor's own socket can.
    status, _ = await request("POST", "/reload")
    assert status == 404
    assert server.reloader is not None
    assert server.reloader.generation == 1
    await server.reloader.reload("test")
    assert await request("GET", "/healthz") == (200, {"status": "OK", "configGeneration": 2})
    nursery.cancel_scope.cancel()
