"""Codec cost per message: SIP bytes -> protobuf bytes, and protobuf bytes -> SIP bytes.

(a) ``parse_message`` + ``to_message_request`` + ``SerializeToString``: what
    edgeport spends on a message before the processor call. The loop runs
    over distinct messages (each its own branch, Call-ID and From tag, as
    in real traffic), so only lines that recur message after message (a
    client's Contact, User-Agent, Allow) find their bytes already encoded.
(b) ``MessageResponse.FromString`` + ``build_forward_*`` + ``to_bytes``: what
    it spends on the processor's reply before sending.

Measured with ``time.perf_counter_ns`` over a bounded loop, best of 5, next
to a bare protobuf encode of the same MessageRequest in the same run (the
floor any pure-Python codec sits on). Budget (architecture.md): 40 µs each
way for an INVITE. The first line says which codec build runs (``pure``, or
``compiled`` for ``EDGEPORT_COMPILE=1``).

``python -m benchmarks.codec --builds pure,compiled`` measures both builds in
one run: this tree as it is, and a copy with the codec compiled in place in a
temporary directory (``tools/compiled_tree.py``; the running Python needs
mypyc, ``MYPYC_REQUIREMENTS`` in ``edgeport/compiled.py``), each measured in
a subprocess of its own, pinned to CPU 0 with ``taskset`` when present, the
builds taking turns ``--rounds`` times; each figure is the best of its
build's rounds. ``python -m benchmarks codec`` takes the same options from
``EDGEPORT_CODEC_ARGS``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from edgeport._proto import common_pb2, processor_pb2
from edgeport.compiled import codec_build
from edgeport.convert import (
    MessageRequestBuilder,
    build_forward_request,
    build_forward_response,
    to_sip_message,
)
from edgeport.sip.message import Request
from edgeport.sip.parser import parse_message

ITERATIONS: Final = 20_000
ROUNDS: Final = 5
BUDGET_US: Final = 40.0
BUILDS: Final = ("pure", "compiled")
BUILD_ROUNDS: Final = 2  # turns each build takes with --builds
MEASURE_TIMEOUT: Final = 900.0  # seconds for one build's measurement subprocess
ROOT: Final = Path(__file__).resolve().parent.parent

Row = tuple[str, float, float, float, float]

REGISTER: Final = (
    b"REGISTER sip:sip.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKreg1;rport=5062;received=203.0.113.9\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:alice@sip.example.com>;tag=f1\r\n'
    b"To: <sip:alice@sip.example.com>\r\n"
    b"Call-ID: reg-1@192.168.1.20\r\n"
    b"CSeq: 2 REGISTER\r\n"
    b"Contact: <sip:alice@192.168.1.20:5062;transport=udp>;expires=600\r\n"
    b"Expires: 600\r\n"
    b'Authorization: Digest username="alice", realm="sip.example.com", nonce="n1", '
    b'uri="sip:sip.example.com", response="0123456789abcdef0123456789abcdef", algorithm=MD5\r\n'
    b"User-Agent: softphone/1.0\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

_SDP: Final = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 192.168.1.20\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.168.1.20\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=sendrecv\r\n"
)
INVITE: Final = (
    b"INVITE sip:bob@sip.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKinv1;rport=5062;received=203.0.113.9\r\n"
    b"Max-Forwards: 70\r\n"
    b'f: "Alice" <sip:alice@sip.example.com>;tag=f2\r\n'
    b"t: <sip:bob@sip.example.com>\r\n"
    b"i: inv-1@192.168.1.20\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"m: <sip:alice@192.168.1.20:5062;transport=udp>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n"
    b"k: replaces, timer\r\n"
    b"User-Agent: softphone/1.0\r\n"
    b"c: application/sdp\r\n"
    b"l: " + str(len(_SDP)).encode() + b"\r\n"
    b"\r\n" + _SDP
)

OK_WITH_RECORD_ROUTE: Final = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKedge;rport=5060\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKinv1;rport=5062;received=203.0.113.9\r\n"
    b"Record-Route: <sip:198.51.100.1;lr;r2=on>\r\n"
    b"Record-Route: <sip:10.1.0.1;transport=tcp;lr;r2=on>\r\n"
    b'From: "Alice" <sip:alice@sip.example.com>;tag=f2\r\n'
    b"To: <sip:bob@sip.example.com>;tag=b7\r\n"
    b"Call-ID: inv-1@192.168.1.20\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:bob@10.1.0.9:5060>\r\n"
    b"Server: gw/2\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

_SENDER: Final = processor_pb2.NetInterface(
    host="192.168.1.20", port=5062, transport=common_pb2.Transport.UDP
)
_LISTENING: Final = (
    processor_pb2.NetInterface(host="0.0.0.0", port=5060, transport=common_pb2.Transport.UDP),
    processor_pb2.NetInterface(host="0.0.0.0", port=5060, transport=common_pb2.Transport.TCP),
)
_EXTERNAL: Final = ("198.51.100.1",)
_LOCALNETS: Final = ("10.0.0.0/8", "192.168.0.0/16")


def _branch() -> str:
    return "z9hG4bKbench"


_BUILDER: Final = MessageRequestBuilder(
    edge_port_ref="edgeport-01",
    listening_points=_LISTENING,
    external_addrs=_EXTERNAL,
    localnets=_LOCALNETS,
)


VARIANTS: Final = 1_000  # distinct messages (a) cycles through


def variants(data: bytes, count: int = VARIANTS) -> list[bytes]:
    """``data`` with a fresh top branch, Call-ID and From tag in each copy.

    Only header values change, so the Content-Length of the body stays right.
    """
    out = []
    for number in range(count):
        mark = b"%04d" % number
        copy = re.sub(rb"(branch=z9hG4bK)\w{4}", rb"\g<1>" + mark, data, count=1)
        copy = re.sub(rb"(;tag=f)\w", rb"\g<1>" + mark, copy, count=1)
        copy = re.sub(rb"((?:Call-ID|i): )\w{3}", rb"\g<1>" + mark[1:], copy, count=1)
        out.append(copy)
    return out


def encode(data: bytes) -> bytes:
    """(a): SIP bytes -> MessageRequest bytes, as the proxy does it (one builder)."""
    return _BUILDER.build(parse_message(data), sender=_SENDER).SerializeToString()


def _processor_reply(data: bytes) -> bytes:
    """A reply shaped like a Routr processor's: own Via on requests, top Via off responses."""
    msg = parse_message(data)
    reply = processor_pb2.MessageResponse()
    reply.message.CopyFrom(to_sip_message(msg))
    message = reply.message
    if isinstance(msg, Request):
        vias = list(message.via)
        del message.via[:]
        message.via.add(host="10.0.0.1", port=5060, transport="UDP", r_port_flag=True)
        message.via.extend(vias)
        route = message.route.add()
        route.address.uri.host = "10.1.0.1"
        route.address.uri.port = 5060
        route.address.uri.transport_param = "UDP"
        route.address.uri.lr_param = True
        message.max_forwards.max_forwards -= 1
        message.extensions.add(name="X-EdgePort-Ref", value="edgeport-01")
    else:
        del message.via[0]
    return reply.SerializeToString()


def _decoder(data: bytes) -> Callable[[bytes], bytes]:
    """(b): MessageResponse bytes -> SIP bytes, against the message the reply is about."""
    original = parse_message(data)
    # The proxy keeps the SIPMessage it sent; passing it spares re-deriving it.
    sent = to_sip_message(original)
    if isinstance(original, Request):
        request = original

        def forward_request(reply_bytes: bytes) -> bytes:
            reply = processor_pb2.MessageResponse.FromString(reply_bytes)
            forwarded = build_forward_request(reply, request, branch_factory=_branch, sent=sent)
            return forwarded.request.to_bytes()

        return forward_request
    response = original

    def forward_response(reply_bytes: bytes) -> bytes:
        reply = processor_pb2.MessageResponse.FromString(reply_bytes)
        return build_forward_response(reply, response, sent=sent).to_bytes()

    return forward_response


def _best_us(func: Callable[[bytes], object], arg: bytes | list[bytes], iterations: int) -> float:
    """µs per call, best of ROUNDS; a list of arguments is cycled through."""
    args = arg if isinstance(arg, list) else [arg]
    best = None
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for index in range(iterations):
            func(args[index % len(args)])
        elapsed = time.perf_counter_ns() - start
        best = elapsed if best is None or elapsed < best else best
    assert best is not None
    return best / iterations / 1000.0


def measure(
    name: str, data: bytes, iterations: int = ITERATIONS
) -> tuple[str, float, float, float, float]:
    """µs per message: (a) SIP -> protobuf bytes, of which parse_message alone,
    (b) reply -> SIP bytes, and a bare protobuf encode of the same request."""
    distinct = variants(data)
    to_proto_us = _best_us(encode, distinct, iterations)
    parse_us = _best_us(parse_message, distinct, iterations)
    reply_bytes = _processor_reply(data)
    to_sip_us = _best_us(_decoder(data), reply_bytes, iterations)
    request = processor_pb2.MessageRequest.FromString(encode(data))
    encode_us = _best_us(lambda _: request.SerializeToString(), b"", iterations)
    return name, to_proto_us, parse_us, to_sip_us, encode_us


def measure_all(iterations: int = ITERATIONS) -> list[Row]:
    return [
        measure("REGISTER", REGISTER, iterations),
        measure("INVITE+SDP", INVITE, iterations),
        measure("200 OK+RR", OK_WITH_RECORD_ROUTE, iterations),
    ]


def _ratios(row: Row) -> tuple[float, float]:
    _, to_proto_us, _, to_sip_us, encode_us = row
    if not encode_us:
        return float("inf"), float("inf")
    return to_proto_us / encode_us, to_sip_us / encode_us


def print_table(rows: list[Row], heading: str) -> None:
    print(heading)
    print(
        f"{'message':<12} {'(a) SIP->pb':>12} {'of it parse':>12} {'(b) pb->SIP':>12}"
        f" {'pb encode':>10} {'a/enc':>6} {'b/enc':>6}"
    )
    for row in rows:
        name, to_proto_us, parse_us, to_sip_us, encode_us = row
        a_ratio, b_ratio = _ratios(row)
        print(
            f"{name:<12} {to_proto_us:>12.1f} {parse_us:>12.1f} {to_sip_us:>12.1f}"
            f" {encode_us:>10.2f} {a_ratio:>5.0f}x {b_ratio:>5.0f}x"
        )


def parse_options(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.codec", description=__doc__)
    parser.add_argument(
        "--builds",
        default="",
        help="comma-separated builds to measure in turn, of: pure, compiled",
    )
    parser.add_argument("--iterations", type=int, default=ITERATIONS, help="per timed loop")
    parser.add_argument("--rounds", type=int, default=BUILD_ROUNDS, help="turns per build")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(list(argv))
    builds = [build.strip() for build in args.builds.split(",") if build.strip()]
    unknown = [build for build in builds if build not in BUILDS]
    if unknown:
        parser.error(f"--builds: unknown build(s) {', '.join(unknown)}; known: pure, compiled")
    if len(set(builds)) != len(builds):
        parser.error("--builds: a build is named twice")
    if not 1 <= args.iterations <= 1_000_000 or not 1 <= args.rounds <= 10:
        parser.error("--iterations must be 1..1000000 and --rounds 1..10")
    args.builds = builds
    return args


def _measure_in(tree: Path, build: str, iterations: int, pin: bool) -> list[Row]:
    """One measurement of the codec of ``tree`` in a Python of its own (best of ROUNDS)."""
    command = [sys.executable, "-m", "benchmarks.codec", "--json", "--iterations", str(iterations)]
    if pin and shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run(
        command,
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=MEASURE_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {build} measurement failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout)
    if result["build"] != build:
        raise RuntimeError(f"{tree} runs the {result['build']} codec, not the {build} one")
    return [(str(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4])) for r in result["rows"]]


def _best_rows(kept: list[Row], rows: list[Row]) -> list[Row]:
    """Each figure the smaller of the two measurements."""
    return [
        (old[0], min(old[1], new[1]), min(old[2], new[2]), min(old[3], new[3]), min(old[4], new[4]))
        for old, new in zip(kept, rows, strict=True)
    ]


def compare_builds(builds: list[str], iterations: int, rounds: int, pin: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="edgeport-codec-") as temporary:
        trees: dict[str, Path] = {}
        for build in builds:
            if build == "pure":
                trees[build] = ROOT
            else:
                tree = Path(temporary) / "edgeport"
                print(f"compiling the codec into {tree} ...", flush=True)
                tools = runpy.run_path(str(ROOT / "tools" / "compiled_tree.py"))
                tools["build_compiled_tree"](tree, root=ROOT, python=sys.executable)
                trees[build] = tree
        best: dict[str, list[Row]] = {}
        for turn in range(rounds):
            for build in builds:
                print(f"round {turn + 1}/{rounds}: {build} ...", flush=True)
                rows = _measure_in(trees[build], build, iterations, pin)
                kept = best.get(build)
                best[build] = rows if kept is None else _best_rows(kept, rows)
    # The bare protobuf encode is the same C code under both builds: each build's
    # ratios use the best encode of all their rounds.
    encodes = [min(best[build][i][4] for build in builds) for i in range(len(best[builds[0]]))]
    pinned = "pinned to CPU 0" if pin and shutil.which("taskset") else "not pinned"
    for build in builds:
        print_table(
            [(*row[:4], encode) for row, encode in zip(best[build], encodes, strict=True)],
            f"codec build: {build}, µs per message (best of {rounds} rounds x {ROUNDS} x "
            f"{iterations:,}, {pinned}):",
        )
    if set(builds) == set(BUILDS):
        print("compiled / pure, time per message:")
        for pure_row, compiled_row in zip(best["pure"], best["compiled"], strict=True):
            print(
                f"{pure_row[0]:<12} (a) {compiled_row[1] / pure_row[1]:.2f}"
                f"  (b) {compiled_row[3] / pure_row[3]:.2f}"
            )


def main(argv: Sequence[str] | None = None, iterations: int | None = None) -> None:
    if argv is None:
        argv = shlex.split(os.environ.get("EDGEPORT_CODEC_ARGS", ""))
    args = parse_options(argv)
    count = args.iterations if iterations is None else iterations
    if args.json:
        rows = measure_all(count)
        print(json.dumps({"build": codec_build(), "rows": rows}))
        return
    if args.builds:
        compare_builds(args.builds, count, args.rounds, not args.no_pin)
        return
    print(f"codec build: {codec_build()}")
    rows = measure_all(count)
    print_table(rows, f"codec, µs per message (best of {ROUNDS} x {count:,}):")
    invite = rows[1]
    verdict = "within" if max(invite[1], invite[3]) <= BUDGET_US else "OVER"
    print(f"INVITE budget {BUDGET_US:.0f} µs each way: {verdict}")


if __name__ == "__main__":
    main(sys.argv[1:])
