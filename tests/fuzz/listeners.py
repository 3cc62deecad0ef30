"""The listener kinds the live fuzzer sends to, and how often it picks each."""

from __future__ import annotations

import enum
from typing import Final

from edgeport.sip.transport import Transport


class Listener(enum.Enum):
    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"
    WS = "ws"
    WSS = "wss"
    PROXY_TCP = "proxy-tcp"
    PROXY_TLS = "proxy-tls"
    PROXY_WS = "proxy-ws"
    PROXY_WSS = "proxy-wss"

    @property
    def transport(self) -> Transport:
        return Transport(self.value.removeprefix("proxy-"))

    @property
    def proxied(self) -> bool:
        return self.value.startswith("proxy-")

    @property
    def tls(self) -> bool:
        return self.transport in (Transport.TLS, Transport.WSS)

    @property
    def websocket(self) -> bool:
        return self.transport in (Transport.WS, Transport.WSS)


WEIGHTS: Final = {
    Listener.UDP: 20,
    Listener.TCP: 16,
    Listener.TLS: 10,
    Listener.WS: 11,
    Listener.WSS: 7,
    Listener.PROXY_TCP: 16,
    Listener.PROXY_TLS: 7,
    Listener.PROXY_WS: 8,
    Listener.PROXY_WSS: 5,
}
