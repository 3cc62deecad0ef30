"""Inputs that once ended or broke edgeport, replayed first in every live run.

Each is sent once, on a fresh connection from 127.0.0.1 (behind a valid PROXY
v2 header naming 127.0.0.1 on a PROXY listener), before the generated inputs;
a process that ends then is a finding that names the reproducer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tests.fuzz.listeners import Listener
from tests.support.ua import sip


@dataclass(frozen=True)
class Reproducer:
    name: str
    listener: Listener
    data: bytes


def _with_body(head: str, body_bytes: int) -> bytes:
    """``head`` (its Content-Length says ``body_bytes``), then that many bytes of body."""
    return sip(head) + b"a" * body_bytes


# With HEP capture on, the copy of a received message of 65,530 bytes or more does not
# fit one HEP chunk: struct.pack raised struct.error in edgeport/capture/hep.py (_chunk),
# which escaped the capture task into the root nursery and ended the process (a worker,
# with --workers: restarted by its supervisor). 65,530 = 65,535 - 6 + 1.
_OPTIONS_HEAD: Final = """OPTIONS sip:fuzz@127.0.0.1 SIP/2.0
Via: SIP/2.0/{transport} 127.0.0.1:5070;branch=z9hG4bK-hep-oversized
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=hep1
To: <sip:fuzz@127.0.0.1>
Call-ID: hep-oversized@fuzz
CSeq: 1 OPTIONS
Content-Type: text/plain
Content-Length: {length}

"""
HEP_OVERSIZED_BYTES: Final = 65_530


def _hep_oversized(listener: Listener) -> Reproducer:
    transport = listener.transport.value.upper()
    head_bytes = len(sip(_OPTIONS_HEAD.format(transport=transport, length=65_000)))
    length = HEP_OVERSIZED_BYTES - head_bytes
    return Reproducer(
        f"HEP capture of a {HEP_OVERSIZED_BYTES:,}-byte message ({listener.value})",
        listener,
        _with_body(_OPTIONS_HEAD.format(transport=transport, length=length), length),
    )


REPRODUCERS: Final = (_hep_oversized(Listener.TCP), _hep_oversized(Listener.PROXY_WS))
