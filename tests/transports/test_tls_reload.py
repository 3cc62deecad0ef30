"""A reload's TLS contexts: new outbound connections verify with the new trust."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import pytest
import trio
from transport_helpers import running_layer, sip_request

from edgeport.config import ClientAuthType, WebSocketConfig
from edgeport.sip.transport import Transport
from edgeport.transports import Peer, SendError
from edgeport.transports.tls import build_client_context, build_server_context

if TYPE_CHECKING:
    from collections.abc import Callable

    from edgeport.config import SecurityContext


async def test_outbound_tls_verifies_with_the_trust_a_reload_gives(
    security_context: Callable[[ClientAuthType], SecurityContext],
) -> None:
    sc = security_context(ClientAuthType.DISABLED)
    received: list[bytes] = []
    got = trio.Event()

    async def next_hop(stream: trio.SSLStream[trio.SocketStream]) -> None:
        try:
            received.append(bytes(await stream.receive_some(65536)))
            got.set()
        except trio.BrokenResourceError:
            pass

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                partial(
                    trio.serve_ssl_over_tcp,
                    next_hop,
                    0,
                    build_server_context(sc),
                    host="127.0.0.1",
                )
            )
            port = listeners[0].transport_listener.socket.getsockname()[1]
            target = Peer(Transport.TLS, "127.0.0.1", port)
            untrusting = build_client_context(None)  # system CAs only: not the next hop's
            async with running_layer([Transport.TCP], tls_client_context=untrusting) as (
                layer,
                _,
            ):
                with pytest.raises(SendError):
                    await layer.send(target, sip_request())
                layer.reconfigure(
                    tls=None,
                    tls_client_context=build_client_context(sc),  # its trust store: the CA
                    websocket=WebSocketConfig(),
                    trusted_proxies=(),
                )
                await layer.send(target, sip_request())
                await got.wait()
                assert received == [sip_request()]
            nursery.cancel_scope.cancel()


async def test_a_tls_listener_cannot_be_left_without_a_server_context(
    security_context: Callable[[ClientAuthType], SecurityContext],
) -> None:
    sc = security_context(ClientAuthType.DISABLED)
    async with running_layer([Transport.TLS], tls=build_server_context(sc)) as (layer, _):
        with pytest.raises(ValueError, match="needs a server TLS context"):
            layer.reconfigure(
                tls=None, tls_client_context=None, websocket=WebSocketConfig(), trusted_proxies=()
            )
