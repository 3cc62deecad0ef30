"""Probes: does a listener answer an OPTIONS from the trusted source 127.0.0.1?

Each probe uses a fresh socket (with ``--workers`` the kernel spreads them over
the workers), behind a valid PROXY header naming 127.0.0.1 on a PROXY
listener; edgeport answers an OPTIONS to its own address itself.
"""

from __future__ import annotations

import ssl
from collections import Counter
from typing import Final

import trio

from tests.fuzz.listeners import Listener
from tests.fuzz.proxy_headers import v1, v2
from tests.fuzz.senders import HOST, TRUSTED_SOURCE
from tests.fuzz.wsclient import ClientStream, WsClient, WsRefused
from tests.support.ua import sip

PROBES_PER_LISTENER: Final = 4
PROBE_TIMEOUT: Final = 10.0  # seconds for one answer; a round of probes runs at once
CONNECTION_ERRORS: Final = (
    OSError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    WsRefused,
)


def probe_message(listener: Listener, port: int, n: str) -> bytes:
    # An OPTIONS to edgeport's own address: answered by edgeport itself.
    return sip(
        f"""OPTIONS sip:{HOST}:{port} SIP/2.0
Via: SIP/2.0/{listener.transport.value.upper()} {HOST}:9;branch=z9hG4bK-probe-{n};rport
Max-Forwards: 70
From: <sip:probe@{HOST}>;tag=probe-{n}
To: <sip:{HOST}>
Call-ID: probe-{n}@fuzz
CSeq: 1 OPTIONS
Content-Length: 0

"""
    )


async def probe_all(
    ports: dict[Listener, int], client_tls: ssl.SSLContext, n: int
) -> dict[str, str]:
    """Each listener's probes answered 200, as "answered/asked". The probes run at
    once, so the whole round takes at most :data:`PROBE_TIMEOUT`."""
    ok: Counter[Listener] = Counter()

    async def one(listener: Listener, port: int, k: int) -> None:
        if await probe(listener, port, client_tls, f"{listener.value}-{n}-{k}", k % 2 + 1):
            ok[listener] += 1

    async with trio.open_nursery() as nursery:
        for listener, port in ports.items():
            for k in range(PROBES_PER_LISTENER):
                nursery.start_soon(one, listener, port, k)
    return {listener.value: f"{ok[listener]}/{PROBES_PER_LISTENER}" for listener in ports}


async def probe(
    listener: Listener, port: int, client_tls: ssl.SSLContext, n: str, version: int = 2
) -> bool:
    """An OPTIONS from 127.0.0.1 on a fresh socket (behind a PROXY header of ``version``
    naming 127.0.0.1 on a PROXY listener) is answered 200."""
    message = probe_message(listener, port, n)
    with trio.move_on_after(PROBE_TIMEOUT):
        try:
            answer = await exchange(listener, port, client_tls, message, version)
            return answer.startswith(b"SIP/2.0 200")
        except CONNECTION_ERRORS:
            return False
    return False


async def open_client(
    listener: Listener,
    port: int,
    client_tls: ssl.SSLContext,
    version: int = 2,
    *,
    answer_pings: bool = False,
) -> tuple[ClientStream, WsClient | None]:
    """A fresh connection from 127.0.0.1 to a stream listener: behind a PROXY header of
    ``version`` naming 127.0.0.1 on a PROXY listener, TLS and the WebSocket upgrade
    done where the listener has them. The caller sets the deadline and closes it."""
    tcp = await trio.open_tcp_stream(HOST, port, local_address=TRUSTED_SOURCE)
    stream: ClientStream = tcp
    try:
        if listener.proxied:
            local_port = tcp.socket.getsockname()[1]
            claimed = (TRUSTED_SOURCE, local_port)
            header = v1(claimed, (HOST, port)) if version == 1 else v2(claimed, (HOST, port))
            await tcp.send_all(header)
        if listener.tls:
            stream = trio.SSLStream(tcp, client_tls, server_hostname=HOST)
            await stream.do_handshake()
        ws = None
        if listener.websocket:
            ws = WsClient(stream, answer_pings=answer_pings)
            await ws.handshake(HOST, "/", ["sip"])
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream, ws


async def exchange(
    listener: Listener, port: int, client_tls: ssl.SSLContext, message: bytes, version: int = 2
) -> bytes:
    """Send ``message`` from 127.0.0.1 on a fresh socket (behind a PROXY header of
    ``version`` naming 127.0.0.1 on a PROXY listener); the start of the first answer.
    The caller sets the deadline."""
    if listener is Listener.UDP:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock:
            await sock.bind((TRUSTED_SOURCE, 0))
            await sock.sendto(message, (HOST, port))
            data: bytes = await sock.recv(65535)
        return data
    stream, ws = await open_client(listener, port, client_tls, version)
    try:
        if ws is not None:
            try:
                await ws.send_message(message.decode())
            except UnicodeDecodeError:
                await ws.send_message(message)
            return await ws.get_message()
        await stream.send_all(message)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            data += chunk
        return data
    finally:
        await trio.aclose_forcefully(stream)
