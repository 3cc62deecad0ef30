"""``edgeport builtin-processor`` standalone: a real process, stopped and restarted.

The client side keeps one ProcessorClient across the restart: the next call
after the new process listens on the same port must succeed.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from edgeport._proto import sipmessage_pb2
from edgeport._proto.common_pb2 import UDP
from edgeport._proto.processor_pb2 import MessageRequest, Method
from edgeport.builtin import cli_main
from edgeport.processor import ProcessorUnavailable, open_processor_client

DEADLINE = 30  # seconds: two interpreter start-ups
LISTENING = re.compile(rb"processor listening on 127\.0\.0\.1:(\d+)")
CLI = "import sys; from edgeport.builtin import cli_main; sys.exit(cli_main(sys.argv[1:]))"
MAX_LOG_BYTES = 1 << 20
RETRIES = 200
RETRY_INTERVAL = 0.05  # seconds


@dataclass
class Standalone:
    process: trio.Process
    port: int = 0
    log: bytearray = field(default_factory=bytearray)


async def start_standalone(nursery: trio.Nursery, bind: str, *args: str) -> Standalone:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", CLI, "--bind", bind, *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    standalone = Standalone(process)
    listening = trio.Event()

    async def drain() -> None:
        assert process.stderr is not None
        async for chunk in process.stderr:
            if len(standalone.log) < MAX_LOG_BYTES:
                standalone.log.extend(chunk)
            found = LISTENING.search(standalone.log)
            if found and not listening.is_set():
                standalone.port = int(found.group(1))
                listening.set()
        listening.set()  # exited: let the caller see it

    nursery.start_soon(drain)
    await listening.wait()
    assert standalone.port, standalone.log.decode(errors="replace")
    return standalone


async def stop(standalone: Standalone) -> int:
    standalone.process.send_signal(signal.SIGTERM)
    return await standalone.process.wait()


def options_to_edgeport() -> MessageRequest:
    message = sipmessage_pb2.SIPMessage(
        request_uri={"host": "10.0.0.1", "port": 5060, "ttl_param": -1},
        via=[{"host": "10.0.0.60", "port": 5060, "transport": "UDP", "branch": "z9hG4bKk1"}],
    )
    return MessageRequest(
        ref="options-1@10.0.0.60",
        method=Method.OPTIONS,
        sender={"host": "10.0.0.60", "port": 5060, "transport": UDP},
        listening_points=[{"host": "10.0.0.1", "port": 5060, "transport": UDP}],
        message=message,
    )


@pytest.mark.slow
async def test_standalone_processor_survives_a_restart_on_the_same_port() -> None:
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            first = await start_standalone(nursery, "127.0.0.1:0")
            addr = f"127.0.0.1:{first.port}"
            async with open_processor_client(addr, timeout=3.0) as client:
                reply = await client.process(options_to_edgeport())
                assert reply.message.response_type == sipmessage_pb2.ResponseType.OK
                assert await stop(first) == 0
                with pytest.raises(ProcessorUnavailable):
                    await client.process(options_to_edgeport())
                second = await start_standalone(nursery, addr)
                assert second.port == first.port
                # UNAVAILABLE until the channel's reconnection backoff (at most 2 s) ends.
                for _ in range(RETRIES):
                    try:
                        reply = await client.process(options_to_edgeport())
                        break
                    except ProcessorUnavailable:
                        await trio.sleep(RETRY_INTERVAL)
                assert reply.message.response_type == sipmessage_pb2.ResponseType.OK
                assert await stop(second) == 0
    assert b"SIGTERM received, stopping" in second.log


def test_bad_arguments_exit_2_with_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert cli_main(["--bind", "nowhere"]) == 2
    assert "--bind" in caplog.text
    assert cli_main(["--peers", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in caplog.text


def test_port_in_use_exits_1(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli_main(["--bind", f"127.0.0.1:{port}"]) == 1
    assert "cannot serve on" in caplog.text


def invite_to(host: str) -> MessageRequest:
    message = sipmessage_pb2.SIPMessage(
        request_uri={"user": "x", "host": host, "port": 5060, "ttl_param": -1},
        via=[{"host": "10.0.0.60", "port": 5060, "transport": "UDP", "branch": "z9hG4bKk2"}],
        extensions=[{"name": "CSeq", "value": "1 INVITE"}],
    )
    return MessageRequest(
        ref="invite-1@10.0.0.60",
        method=Method.INVITE,
        sender={"host": "10.0.0.60", "port": 5060, "transport": UDP},
        listening_points=[{"host": "10.0.0.1", "port": 5060, "transport": UDP}],
        localnets=["10.0.0.1/24"],
        message=message,
    )


@pytest.mark.slow
async def test_standalone_relay_to_replaces_the_localnets() -> None:
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            standalone = await start_standalone(
                nursery, "127.0.0.1:0", "--relay-to", "192.0.2.0/24"
            )
            async with open_processor_client(f"127.0.0.1:{standalone.port}", timeout=3.0) as client:
                inside_localnets = await client.process(invite_to("10.0.0.44"))
                inside_relay_to = await client.process(invite_to("192.0.2.44"))
            assert await stop(standalone) == 0
    assert inside_localnets.message.response_type == sipmessage_pb2.ResponseType.FORBIDDEN
    assert inside_relay_to.message.request_uri.host == "192.0.2.44"
    assert b"relaying to registered contacts, static peers and 192.0.2.0/24" in standalone.log


def test_bad_relay_to_exits_2_with_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    assert cli_main(["--relay-to", "10.0.0.0/33"]) == 2
    assert "--relay-to: expected a network like 10.0.0.0/8 or an IP address" in caplog.text
    caplog.clear()
    assert cli_main(["--relay-to", "none", "--relay-to", "10.0.0.0/8"]) == 2
    assert "--relay-to: 'none' cannot be combined with networks" in caplog.text
