"""Transactions: what the layer holds per transaction, and what it costs in CPU.

No sockets, no processor: the transaction layer alone, as the server builds
it (memory budget, per-source shares, streams indexed), with a send callback
that does nothing. Messages are parsed before anything is measured.

- **Memory** (tracemalloc, bytes still held per transaction after a
  collection, and what the budget was charged for it): ``--count`` REGISTER
  server transactions over UDP answered 200 and left lingering for Timer J,
  the TU done with them (as the proxy leaves a REGISTER its processor
  answered); INVITE server transactions over UDP, live (100 Trying sent),
  their views parsed as the message path parses them; INVITE client
  transactions over UDP, live (Calling: Timers A, B and C).
- **CPU** (``time.process_time``, garbage collector off while timed):
  ``--count`` REGISTERs received and answered 200 (``receive_request`` +
  ``respond``), then their Timer J on a mock clock; and call set-ups (an
  INVITE received, forwarded, its 180 and 200 received and relayed up).

``--tree PATH`` also measures the edgeport of another source tree (a
checkout of an older commit), each figure in its own process, the two trees
interleaved ``--runs`` times; each process is pinned to CPU 0 when
``taskset`` is there.

Run: ``python -m benchmarks transactions`` (``nox -s bench -- transactions``),
or ``python -m benchmarks.transactions --count 20000 --runs 3 --tree /tmp/old``.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final

import trio
import trio.testing

COUNT: Final = 5_000  # transactions per figure
RUNS: Final = 3  # runs of each tree, interleaved, with --tree
SDP: Final = (
    "v=0\r\no=user1 53655765 2353687637 IN IP4 192.0.2.10\r\ns=-\r\n"
    "c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
FIGURES: Final = ("register-memory", "invite-memory", "client-memory", "register-cpu", "call-cpu")


def _via(n: int) -> str:
    host = f"192.0.2.{n % 200}"
    return f"Via: SIP/2.0/UDP {host}:5061;branch=z9hG4bK-{n}-1;rport=5061;received={host}\r\n"


def _register(n: int) -> bytes:
    user = f"user{n % 100}"
    return (
        "REGISTER sip:192.0.2.1:5060 SIP/2.0\r\n"
        f"{_via(n)}"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{user}@192.0.2.1>;tag={n}reg1\r\n"
        f"To: <sip:{user}@192.0.2.1>\r\n"
        f"Call-ID: {n}-1234@192.0.2.10\r\n"
        "CSeq: 1 REGISTER\r\n"
        f"Contact: <sip:{user}@192.0.2.10:5061>\r\n"
        "Expires: 3600\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _invite(n: int, vias: str) -> bytes:
    return (
        "INVITE sip:bob@192.0.2.1:5060 SIP/2.0\r\n"
        f"{vias}"
        "Max-Forwards: 70\r\n"
        f"From: sipp <sip:alice@192.0.2.10:5061>;tag={n}SIPpTag00\r\n"
        "To: <sip:bob@192.0.2.1:5060>\r\n"
        f"Call-ID: {n}-1234@192.0.2.10\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: sip:alice@192.0.2.10:5061\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(SDP)}\r\n\r\n{SDP}"
    ).encode()


def _response(n: int, status: str, vias: str) -> bytes:
    return (
        f"SIP/2.0 {status}\r\n"
        f"{vias}"
        f"From: sipp <sip:alice@192.0.2.10:5061>;tag={n}SIPpTag00\r\n"
        "To: <sip:bob@192.0.2.1:5060>;tag=callee1\r\n"
        f"Call-ID: {n}-1234@192.0.2.10\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: sip:bob@198.51.100.7:5060\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


class _Parts:
    """edgeport's parts, imported when measuring (from whichever tree is on the path)."""

    def __init__(self) -> None:
        from edgeport.convert.to_proto import to_sip_message
        from edgeport.memory import Account
        from edgeport.proxy.model import Destination, on_stream
        from edgeport.server import source_of
        from edgeport.sip.message import make_response
        from edgeport.sip.parser import parse_message
        from edgeport.sip.timers import TimerConfig
        from edgeport.sip.transport import Transport
        from edgeport.transaction_layer import TransactionLayer
        from edgeport.transports import Peer

        self.to_sip_message = to_sip_message
        self.parse = parse_message
        self.make_response = make_response
        self.account = Account("transactions", 2**31)

        async def send(outgoing: object, destination: object) -> None:
            return None

        def layer() -> Any:
            self.account.used = 0
            return TransactionLayer(
                TimerConfig(),
                send,
                fails_whole=on_stream,
                budget=self.account,
                source_of=source_of,
                on_evicted=lambda: None,
            )

        self.layer = layer
        self.source = lambda n: Destination(Peer(Transport.UDP, f"192.0.2.{n % 200}", 5061))
        self.callee = Destination(Peer(Transport.UDP, "198.51.100.7", 5060))


class _TU:
    def on_response(self, handle: object, response: object, source: object) -> None:
        return None

    def on_timeout(self, handle: object) -> None:
        return None

    def on_transport_error(self, handle: object) -> None:
        return None


# ---------------------------------------------------------------- memory


async def _answer_registers(parts: _Parts, layer: Any, first: int, count: int) -> None:
    for n in range(first, first + count):
        raw = _register(n)
        request = parts.parse(raw)
        handle = await layer.receive_request(
            request, parts.source(n), reliable=False, size=len(raw)
        )
        response = parts.make_response(request, 200, to_tag="5a8f2b1c")
        response.headers.add("Contact", f"<sip:user{n % 100}@192.0.2.10:5061>;expires=3600")
        await handle.respond(response)
        handle.release_views()


async def _open_invites(parts: _Parts, layer: Any, first: int, count: int) -> None:
    for n in range(first, first + count):
        raw = _invite(n, _via(n))
        request = parts.parse(raw)
        parts.to_sip_message(request)
        await layer.receive_request(request, parts.source(n), reliable=False, size=len(raw))


async def _send_invites(parts: _Parts, layer: Any, first: int, count: int) -> None:
    for n in range(first, first + count):
        vias = f"Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bK-edge-{n}\r\n{_via(n)}"
        request = parts.parse(_invite(n, vias))
        await layer.send_request(request, parts.callee, reliable=False, tu=_TU())


async def _memory(
    run: Callable[[_Parts, Any, int, int], Awaitable[None]], count: int
) -> tuple[float, float]:
    """Bytes held and charged per transaction."""
    from edgeport.convert import to_proto

    parts = _Parts()
    await run(parts, parts.layer(), count, 100)  # caches warm
    layer = parts.layer()
    outside = [tracemalloc.Filter(False, "*/edgeport/convert/*")]  # its own bounded cache
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces(outside)
        await run(parts, layer, 0, count)
        to_proto_cache: dict[object, object] | None = getattr(to_proto, "_CHUNKS", None)
        if to_proto_cache is not None:
            to_proto_cache.clear()
        gc.collect()
        after = tracemalloc.take_snapshot().filter_traces(outside)
    finally:
        tracemalloc.stop()
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return held / count, parts.account.used / count


# ---------------------------------------------------------------- CPU


async def _register_cpu(count: int, clock: trio.testing.MockClock) -> tuple[float, float]:
    """Microseconds per REGISTER: received and answered; its Timer J."""
    parts = _Parts()
    layer = parts.layer()
    work = []
    for n in range(count):
        raw = _register(n)
        request = parts.parse(raw)
        response = parts.make_response(request, 200, to_tag="5a8f2b1c")
        response.headers.add("Contact", "<sip:user@192.0.2.10:5061>;expires=3600")
        work.append((request, parts.source(n), len(raw), response))
    async with trio.open_nursery() as nursery:
        await nursery.start(layer.serve)
        gc.collect()
        gc.disable()
        try:
            start = time.process_time()
            for request, source, size, response in work:
                handle = await layer.receive_request(request, source, reliable=False, size=size)
                await handle.respond(response)
                handle.release_views()
            answered = time.process_time()
            del work
            clock.jump(40)
            await trio.testing.wait_all_tasks_blocked()
            ended = time.process_time()
        finally:
            gc.enable()
        assert layer.active_server_transactions == 0
        nursery.cancel_scope.cancel()
    return (answered - start) / count * 1e6, (ended - answered) / count * 1e6


async def _call_cpu(count: int) -> float:
    """Microseconds per call set-up: INVITE in and forwarded, 180 and 200 back and up."""
    parts = _Parts()
    layer = parts.layer()
    work = []
    for n in range(count):
        up = _via(n)
        down = f"Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bK-edge-{n}\r\n{up}"
        raw = _invite(n, up)
        work.append(
            (
                parts.parse(raw),
                len(raw),
                parts.source(n),
                parts.parse(_invite(n, down)),
                [parts.parse(_response(n, status, down)) for status in ("180 Ringing", "200 OK")],
                [parts.parse(_response(n, status, up)) for status in ("180 Ringing", "200 OK")],
            )
        )
    tu = _TU()
    gc.collect()
    gc.disable()
    try:
        start = time.process_time()
        for request, size, source, forwarded, downstream, upstream in work:
            server = await layer.receive_request(request, source, reliable=False, size=size)
            await layer.send_request(forwarded, parts.callee, reliable=False, tu=tu)
            for received, relayed in zip(downstream, upstream, strict=True):
                await layer.receive_response(received, parts.callee)
                await server.respond(relayed)
        ended = time.process_time()
    finally:
        gc.enable()
    assert layer.active_server_transactions == layer.active_client_transactions == 0
    return (ended - start) / count * 1e6


def measure(figure: str, count: int) -> str:
    """One figure, as a line of text."""
    if figure == "register-cpu":
        clock = trio.testing.MockClock()
        answered, timer_j = trio.run(_register_cpu, count, clock, clock=clock)
        return f"{answered:.2f} us received and answered, {timer_j:.2f} us its Timer J"
    if figure == "call-cpu":
        return f"{trio.run(_call_cpu, count):.2f} us per call set-up (6 messages)"
    run = {
        "register-memory": _answer_registers,
        "invite-memory": _open_invites,
        "client-memory": _send_invites,
    }[figure]
    held, charged = trio.run(_memory, run, count)
    return f"{held:.0f} B held, {charged:.0f} B charged per transaction"


def _in_process(tree: Path, figure: str, count: int) -> str:
    """``figure`` measured in a process of its own, with ``tree``'s edgeport."""
    command = [sys.executable, __file__, "--figure", figure, "--count", str(count)]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"failed: {done.stderr.strip().splitlines()[-1:]}"
    return done.stdout.strip()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=COUNT, help="transactions per figure")
    parser.add_argument("--runs", type=int, default=RUNS, help="runs per tree, with --tree")
    parser.add_argument("--tree", type=Path, help="another source tree to compare with")
    parser.add_argument("--figure", choices=FIGURES, help="one figure, in this process")
    args = parser.parse_args(argv)
    if args.figure is not None:
        print(measure(args.figure, args.count))
        return
    here = Path(__file__).resolve().parent.parent
    trees = [("this tree", here)] + ([("--tree", args.tree.resolve())] if args.tree else [])
    runs = args.runs if args.tree else 1
    for figure in FIGURES:
        for run in range(1, runs + 1):
            for name, tree in trees:
                print(f"{figure:16} {name:10} run {run}: {_in_process(tree, figure, args.count)}")


if __name__ == "__main__":
    main()
