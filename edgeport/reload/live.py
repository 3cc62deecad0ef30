"""Handing a reloaded configuration to the parts of a running edgeport.

:class:`LiveParts` is the reloader's :class:`~edgeport.reload.reloader.Apply`
for a server (:func:`edgeport.server.serve`). What it changes, each from the
next message, connection or call on (nothing in progress is dropped):

- the transports: the TLS server context of the TLS and WSS listeners (new
  handshakes; an open connection keeps its own), the outbound TLS client
  context, the WebSocket Origin list, the trusted PROXY protocol sources;
- the edge guard: ``accessControl`` and ``protection`` (bans in force kept);
- the proxy: ``methods``, ``unknownMethodAction``, ``externalAddrs``,
  ``localnets``, ``ref``;
- the processor: a new gRPC channel for new calls when ``spec.processor.addr``
  changes (the calls in flight finish on the old one, then it is closed); a
  new ``timeout`` for the next calls;
- the HEP capture's collector;
- ``edgeport_tls_certificate_expiry_seconds`` of each TLS and WSS listener.
"""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING

from edgeport.config import BUILTIN_PROCESSOR
from edgeport.metrics import METRICS
from edgeport.processor import new_processor_client

if TYPE_CHECKING:
    from collections.abc import Sequence

    import trio

    from edgeport.capture.sender import HepCapture
    from edgeport.config import EdgePortConfig
    from edgeport.metrics import EdgeportMetrics
    from edgeport.processor_switch import SwitchingProcessorClient
    from edgeport.protection import EdgeGuard
    from edgeport.proxy import Proxy
    from edgeport.transports import Peer, TransportLayer
    from edgeport.transports.tls import TlsSet

logger = logging.getLogger(__name__)


def listener_label(point: Peer) -> str:
    """The ``listener`` label of a listening point: ``tls:127.0.0.1:5061``."""
    return f"{point.transport.value}:{point.host}:{point.port}"


def show_certificate(tls: TlsSet) -> str:
    not_after = datetime.datetime.fromtimestamp(tls.not_after, tz=datetime.UTC)
    return f"serial {tls.serial:x}, notAfter {not_after:%Y-%m-%dT%H:%M:%SZ}"


class LiveParts:
    """The running parts a reload reaches, and the TLS set they use now."""

    def __init__(
        self,
        *,
        config: EdgePortConfig,
        transports: TransportLayer,
        guard: EdgeGuard,
        proxy: Proxy,
        processor: SwitchingProcessorClient,
        capture: HepCapture | None,
        tls: TlsSet | None,
        nursery: trio.Nursery,
        metrics: EdgeportMetrics = METRICS,
    ) -> None:
        self._config = config
        self._transports = transports
        self._guard = guard
        self._proxy = proxy
        self._processor = processor
        self._capture = capture
        self._tls = tls
        self._nursery = nursery
        self._metrics = metrics
        self._secure_points: Sequence[Peer] = [
            point for point in transports.listening_points if point.transport.secure
        ]
        self._show_expiry(tls)

    def __call__(self, config: EdgePortConfig, tls: TlsSet | None) -> None:
        old = self._config
        self._apply_tls(config, tls)
        self._apply_processor(old, config)
        self._guard.reconfigure(config, config.processor.addr)
        self._proxy.reconfigure(config)
        if self._capture is not None and config.hep is not None and config.hep != old.hep:
            self._capture.reconfigure(config.hep)
        self._config = config

    def _apply_tls(self, config: EdgePortConfig, tls: TlsSet | None) -> None:
        self._transports.reconfigure(
            tls=None if tls is None else tls.server,
            tls_client_context=None if tls is None else tls.client,
            websocket=config.websocket,
            trusted_proxies=config.proxy_protocol.trusted_proxies,
        )
        old = self._tls
        self._tls = tls
        if tls is not None and (old is None or old.serial != tls.serial):
            was = "none" if old is None else show_certificate(old)
            logger.info(
                "TLS certificate for new handshakes: %s (was %s); open connections keep theirs",
                show_certificate(tls),
                was,
            )
        self._show_expiry(tls)

    def _show_expiry(self, tls: TlsSet | None) -> None:
        if tls is None:
            return
        for point in self._secure_points:
            self._metrics.tls_certificate_expiry.labels(listener=listener_label(point)).set(
                tls.not_after
            )

    def _apply_processor(self, old: EdgePortConfig, new: EdgePortConfig) -> None:
        if new.processor == old.processor or new.processor.addr == BUILTIN_PROCESSOR:
            return
        if new.processor.addr == old.processor.addr:
            self._processor.set_timeout(new.processor.timeout)
            return
        client = new_processor_client(new.processor.addr, timeout=new.processor.timeout)
        retired = self._processor.switch(client, timeout=new.processor.timeout)
        self._nursery.start_soon(self._processor.retire, retired)
