"""A bounded slice of the fuzzer, run with the suite (``python -m tests.fuzz`` runs more),
and the checks that its parts judge what they are meant to."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
from collections.abc import Sequence
from pathlib import Path

import pytest

from edgeport.sip.errors import MAX_MESSAGE_BYTES
from edgeport.sip.framing import FramingError, StreamFramer
from edgeport.transports.proxy_protocol import ProxyProtocolError, parse_proxy_header
from edgeport.transports.stun import answer as stun_answer
from tests.fuzz import stun
from tests.fuzz.__main__ import MAX_RSS_GROWTH_MIB, rss_mib, run_inprocess
from tests.fuzz.edges import WORKERS, EdgeProcess, FloodSettings, alive
from tests.fuzz.inprocess import Findings, check_one, well_formed
from tests.fuzz.listeners import Listener
from tests.fuzz.live import run_live
from tests.fuzz.logscan import scan_log
from tests.fuzz.mutate import MUTATIONS, OPTIONS, SEEDS, generate
from tests.fuzz.probes import PROBES_PER_LISTENER
from tests.fuzz.proxy_headers import INVALID_HEADERS, HeaderVerdict, every_invalid, valid
from tests.fuzz.reloads import reload_findings
from tests.fuzz.report import LiveReport
from tests.fuzz.reproducers import HEP_OVERSIZED_BYTES, REPRODUCERS
from tests.fuzz.sizes import (
    DATAGRAM_WEIGHTS,
    HEP_CHUNK_PAYLOAD_BYTES,
    MAX_UDP_PAYLOAD_BYTES,
    STREAM_WEIGHTS,
    SizeClass,
    pick_size,
    resize,
)
from tests.fuzz.verdicts import MALFORMED, UNJUDGED, WELL_FORMED, Judgement, Verdicts

SEED = 20261204
INPROCESS_COUNT = 50_000
LIVE_COUNT = 4_000
LIVE_TIME_LIMIT = 60.0  # seconds to send the slice: about 10 s on this machine
# A low request limit, so that the one flooding source is banned at any speed while each
# of the 200 pool sources (about 10 requests each in the whole slice) never is.
SLICE_FLOOD = FloodSettings(requests=20, window=10.0, ban_time=5.0)


def test_every_mutation_changes_some_seed() -> None:
    rng = random.Random(SEED)
    for mutation in MUTATIONS:
        assert any(mutation(rng, seed) != seed for seed in SEEDS for _ in range(3)), mutation


def test_the_generator_is_deterministic_per_seed() -> None:
    first = [generate(random.Random(7)) for _ in range(50)]
    again = [generate(random.Random(7)) for _ in range(50)]
    assert first == again


def test_an_unexpected_exception_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    # The harness itself must be able to fail: a refused message is fine, any other
    # exception is recorded with its input.
    findings = Findings()
    check_one(b"\x00garbage", random.Random(1), findings)
    assert findings.exceptions == 0

    def broken(data: bytes) -> object:
        raise RuntimeError("defect")

    monkeypatch.setattr("tests.fuzz.inprocess.parse_message", broken)
    check_one(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n", random.Random(1), findings)
    assert findings.exceptions == 1
    assert "RuntimeError: defect" in findings.examples[0][0]


# -- sizes ------------------------------------------------------------------------------


def test_resize_gives_exactly_the_size_asked() -> None:
    rng = random.Random(SEED)
    for _ in range(300):
        data = generate(rng, "fz-1-1")
        for weights, datagram in ((STREAM_WEIGHTS, False), (DATAGRAM_WEIGHTS, True)):
            for size_class in weights:
                size = pick_size(rng, size_class, datagram)
                if size is not None:
                    assert len(resize(rng, data, size)) == size


def test_the_size_classes_reach_every_limit() -> None:
    rng = random.Random(SEED)
    stream = {pick_size(rng, c, False) for c in STREAM_WEIGHTS for _ in range(400)}
    datagram = {pick_size(rng, c, True) for c in DATAGRAM_WEIGHTS for _ in range(400)}
    for size in (0, 1, 16, HEP_CHUNK_PAYLOAD_BYTES, HEP_CHUNK_PAYLOAD_BYTES + 1, 65_536):
        assert size in stream, size
    for size in (MAX_MESSAGE_BYTES - 1, MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES + 1):
        assert size in stream, size
    assert {0, MAX_UDP_PAYLOAD_BYTES} <= datagram
    assert max(size for size in datagram if size is not None) == MAX_UDP_PAYLOAD_BYTES


@pytest.mark.parametrize("size", [HEP_CHUNK_PAYLOAD_BYTES + 1, MAX_MESSAGE_BYTES])
def test_a_message_grown_by_its_body_stays_one_well_formed_frame(size: int) -> None:
    # The inputs that reach HEP capture at its limit and edgeport at its 1 MiB limit
    # are whole, well-formed messages, cut from the stream as one frame.
    rng = random.Random(SEED)
    grown = None
    for _ in range(50):  # the growth is chosen at random: body, header or tail
        candidate = resize(rng, OPTIONS, size)
        if well_formed(candidate) is not None:
            grown = candidate
            break
    assert grown is not None
    assert len(grown) == size
    assert StreamFramer().feed(grown) == [grown]


def test_one_byte_past_1_mib_is_refused_by_the_framer() -> None:
    rng = random.Random(SEED)
    grown = (resize(rng, OPTIONS, MAX_MESSAGE_BYTES + 1) for _ in range(50))
    over = next(data for data in grown if _body_matches_content_length(data))
    assert len(over) == MAX_MESSAGE_BYTES + 1
    with pytest.raises(FramingError) as refused:
        StreamFramer().feed(over)
    assert refused.value.status_code == 513


def _body_matches_content_length(data: bytes) -> bool:
    """Grown by its body: a body, and one Content-Length at the end of the header section
    that says how long it is."""
    head, _, body = data.partition(b"\r\n\r\n")
    return bool(body) and head.endswith(b"\r\nContent-Length: %d" % len(body))


# -- PROXY headers ----------------------------------------------------------------------


def test_the_fuzzers_valid_and_invalid_proxy_headers_are_read_as_the_spec_says() -> None:
    # The fuzzer's own headers, built from the spec, against edgeport's parser: a
    # valid header is taken whole, an invalid one refused.
    rng = random.Random(SEED)
    sources = [("192.0.2.7", 40000), ("2001:db8::7", 40001), ("127.0.0.1", 5060)]
    kinds = set()
    for _ in range(200):
        header = valid(rng, rng.choice(sources), 5060)
        kinds.add(header.kind)
        assert header.verdict is HeaderVerdict.VALID
        parsed = parse_proxy_header(header.data + b"OPTIONS sip:a@b SIP/2.0\r\n")
        assert parsed is not None, header
        assert parsed[1] == len(header.data), header
    assert kinds == {"v1", "v1-unknown", "v2", "v2-local", "v2-tlvs"}
    refused = every_invalid(sources[0], 5060)
    assert len(refused) == len(INVALID_HEADERS)
    for header in refused:
        with pytest.raises(ProxyProtocolError):
            parse_proxy_header(header.data)


# -- STUN -------------------------------------------------------------------------------


def test_the_stun_generator_makes_every_kind_and_tells_binding_requests_apart() -> None:
    rng = random.Random(SEED)
    made: dict[str, list[bytes]] = {}
    for _ in range(2_000):
        kind, data = stun.generate(rng, OPTIONS)
        made.setdefault(kind, []).append(data)
        assert len(data) <= stun.MAX_UDP_PAYLOAD_BYTES
    assert set(made) == set(stun.KINDS)
    assert all(stun.sent(d).binding_request for d in made["binding"])
    assert all(stun.sent(d).binding_request for d in made["binding-many-unknown"])
    assert not any(stun.looks_like_stun(d) for d in made["wrong-cookie"])
    assert not any(stun.sent(d).binding_request for d in made["other-type"])
    assert all(d.endswith(OPTIONS) for d in made["sip-after-zero-bytes"])
    assert max(len(d) for d in made["binding-huge-attribute"]) > stun.MAX_UDP_PAYLOAD_BYTES - 8


# A Binding request from RFC 5769 §2.1's layout: no attributes, transaction 0x00..0x0b.
BINDING = bytes.fromhex("000100002112a442") + bytes(range(12))


def test_the_stun_verdict_takes_edgeports_answers_from_ipv4_and_ipv6() -> None:
    for host, port in (("192.0.2.1", 32853), ("2001:db8:1234:5678:11:2233:4455:6677", 32853)):
        answer = stun_answer(BINDING, host, port)
        assert answer is not None
        assert stun.judge_answer(stun.sent(BINDING), answer, host, port) is None
        assert len(answer) <= stun.MAX_SUCCESS_BYTES


def test_the_stun_verdict_refuses_wrong_answers() -> None:
    # The verdict must be able to fail: each answer here breaks one rule.
    request = stun.sent(BINDING)
    tid = BINDING[8:20]
    good = stun_answer(BINDING, "192.0.2.1", 5060)
    assert good is not None
    padded = stun.message(stun.BINDING_SUCCESS, tid, good[20:] + stun.attribute(0x8022, b"x" * 16))
    wrong_port = stun_answer(BINDING, "192.0.2.1", 5061)
    assert wrong_port is not None
    other = stun.sent(stun.message(0x0011, tid, b""))  # an indication
    big_error = stun.message(
        stun.BINDING_ERROR,
        tid,
        stun.attribute(stun.ERROR_CODE, bytes((0, 0, 4, 20)))
        + stun.attribute(stun.UNKNOWN_ATTRIBUTES, b"\x40\x00" * 20),
    )
    not_420 = stun.message(
        stun.BINDING_ERROR, tid, stun.attribute(stun.ERROR_CODE, bytes((0, 0, 5, 0)))
    )
    cases = {
        "never sent": stun.judge_answer(None, good, "192.0.2.1", 5060),
        "no Binding request": stun.judge_answer(other, good, "192.0.2.1", 5060),
        "over 44 bytes": stun.judge_answer(request, padded, "192.0.2.1", 5060),
        "another port": stun.judge_answer(request, wrong_port, "192.0.2.1", 5060),
        "error larger than the request": stun.judge_answer(request, big_error, "192.0.2.1", 5060),
        "error not 420": stun.judge_answer(request, not_420, "192.0.2.1", 5060),
        "not STUN": stun.judge_answer(request, b"SIP/2.0 200 OK\r\n" * 2, "192.0.2.1", 5060),
        "length field": stun.judge_answer(request, good + b"\x00" * 4, "192.0.2.1", 5060),
    }
    assert all(problem is not None for problem in cases.values()), cases


def test_the_stun_ledger_judges_answers_by_transaction_and_source() -> None:
    ledger = stun.StunLedger()
    ledger.record("binding", "127.0.1.7", BINDING)
    good = stun_answer(BINDING, "127.0.1.7", 40000)
    assert good is not None
    ledger.answer(good, "127.0.1.7", 40000, keep=5)
    ledger.answer(good, "127.0.1.8", 40000, keep=5)  # came to another source's socket
    assert ledger.answers == {"success": 1, "judged wrong": 1}
    assert ledger.wrong == ["an answer to a request from 127.0.1.7 came to 127.0.1.8"]


# -- reloads ----------------------------------------------------------------------------


def test_reloads_applied_must_be_the_sighups_times_the_workers() -> None:
    counted = {"reloads_applied": 3.0 * WORKERS, "reloads_partial": 0.0, "reloads_failed": 0.0}
    assert reload_findings("edge", 3, counted) == []
    assert reload_findings("edge", 4, counted) == [
        f"edge: {3 * WORKERS} reloads applied counted for 4 SIGHUPs to {WORKERS} workers "
        f"(expected {4 * WORKERS})"
    ]
    assert reload_findings("edge", 3, {**counted, "reloads_failed": 1.0}) == [
        "edge: 1 reloads failed"
    ]


# -- verdicts ---------------------------------------------------------------------------


def test_verdicts_judge_what_reaches_the_processor() -> None:
    verdicts = Verdicts(seed=3, count=10)
    verdicts.mark("fz-3-1", WELL_FORMED)
    verdicts.mark("fz-3-2", MALFORMED)
    verdicts.mark("fz-3-3", WELL_FORMED)
    verdicts.mark("fz-3-3", MALFORMED)
    verdicts.mark("fz-3-4", UNJUDGED)
    verdicts.mark("a-seeds-own@call-id", WELL_FORMED)
    assert verdicts.judge("fz-3-1") is Judgement.EXPECTED
    assert verdicts.judge("fz-3-2") is Judgement.UNEXPECTED
    assert verdicts.judge("fz-3-3") is Judgement.AMBIGUOUS
    assert verdicts.judge("fz-3-4") is Judgement.UNJUDGED
    assert verdicts.judge("fz-3-5") is Judgement.UNEXPECTED  # never sent
    assert verdicts.judge("fz-4-1") is Judgement.UNEXPECTED  # another seed's
    assert verdicts.judge("a-seeds-own@call-id") is Judgement.EXPECTED
    # A Call-ID grown by a mutation: far more digits than int() takes, or lone surrogates.
    huge = "fz-3-" + "0123456789" * 6_600
    verdicts.mark(huge, MALFORMED)
    assert verdicts.judge(huge) is Judgement.UNEXPECTED
    verdicts.mark("fz-\udcff-1", WELL_FORMED)
    assert verdicts.judge("fz-\udcff-1") is Judgement.EXPECTED


# -- the log scan and the reproducers ---------------------------------------------------

WORKER_CRASH_LOG = """\
2026-12-07T09:14:47.287Z WARNING edgeport.transports.stream tcp-9 framing error worker=0
  + Exception Group Traceback (most recent call last):
  |   File "/src/edgeport/workers/worker.py", line 101, in run_worker
  |     async with trio.open_nursery() as nursery:
  | ExceptionGroup: Exceptions from Trio nursery (1 sub-exception)
  +-+---------------- 1 ----------------
      | Traceback (most recent call last):
      |   File "/src/edgeport/capture/sender.py", line 131, in serve
      |     packet = self._encode(capture)
      |   File "/src/edgeport/capture/hep.py", line 94, in _chunk
      |     return struct.pack("!HHH", 0, chunk_type, CHUNK_HEADER_SIZE + len(value)) + value
      | struct.error: 'H' format requires 0 <= number <= 65535
      +------------------------------------
2026-12-07T09:14:47.426Z WARNING edgeport.workers.supervisor worker 0 (pid 22005) died (exit 1)
2026-12-07T09:14:48.001Z ERROR edgeport.proxy.core handling failed worker=1
"""


def test_the_log_scan_names_a_workers_traceback_by_its_innermost_frame(tmp_path: Path) -> None:
    log = tmp_path / "edge.log"
    log.write_text(WORKER_CRASH_LOG)
    scan = scan_log(log)
    assert (scan.errors, scan.tracebacks) == (1, 1)
    assert scan.lines == [
        "traceback at edgeport/capture/hep.py:94 in _chunk: "
        "struct.error: 'H' format requires 0 <= number <= 65535",
        "ERROR edgeport.proxy.core handling failed worker=1",
    ]


def test_the_saved_reproducers_are_the_messages_they_claim_to_be() -> None:
    assert REPRODUCERS
    for reproducer in REPRODUCERS:
        assert len(reproducer.data) == HEP_OVERSIZED_BYTES
        assert well_formed(reproducer.data) is not None
        assert StreamFramer().feed(reproducer.data) == [reproducer.data]


# -- the fuzzer ---------------------------------------------------------------------------


@pytest.mark.fuzz
def test_fuzz_parser_conversion_and_framing() -> None:
    before = rss_mib()
    findings = run_inprocess(SEED, INPROCESS_COUNT)
    assert findings.examples == []
    assert findings.exceptions == 0
    assert findings.wrong_answers == 0
    assert 0 < findings.stun_answered < findings.stun  # STUN answered and refused
    assert findings.parsed > 0  # the mix holds messages that parse...
    assert findings.parsed < findings.messages  # ...and many that do not
    assert rss_mib() - before < MAX_RSS_GROWTH_MIB


@pytest.mark.fuzz
async def test_fuzz_every_listener_of_two_workers_with_hep_proxy_protocol_and_flood_limits(
    tmp_path: Path,
) -> None:
    report = await run_live(
        SEED, LIVE_COUNT, workdir=tmp_path, time_limit=LIVE_TIME_LIMIT, flood=SLICE_FLOOD
    )
    assert report.findings == [], "\n".join(report.findings)
    assert_exercised_everything(report)


def assert_exercised_everything(report: LiveReport) -> None:
    # What the slice exercised: every listener kind, the sizes at the limits...
    assert set(report.sent) == {listener.value for listener in Listener}
    for size_class in (SizeClass.EMPTY, SizeClass.TINY, SizeClass.NEAR_HEP, SizeClass.NEAR_LIMIT):
        assert report.sizes[f"stream {size_class.value}"] > 0, size_class
    assert report.sizes[f"datagram {SizeClass.NEAR_UDP_MAX.value}"] > 0
    assert report.largest_stream > MAX_MESSAGE_BYTES
    assert report.largest_datagram == MAX_UDP_PAYLOAD_BYTES
    # ...PROXY headers of every kind, and edgeport refused the bad ones...
    assert {"v1", "v2", "v2-local", "mutated"} <= set(report.proxy_headers)
    assert any(kind.startswith("invalid: ") for kind in report.proxy_headers)
    assert sum(report.refused.values()) > 0
    proxied = report.metrics["proxied"]
    assert proxied["proxy_protocol_invalid"] > 0
    assert proxied["proxy_protocol_untrusted"] > 0
    # ...HEP capture, both workers of each process, the flood limit, the processor.
    assert report.hep_received > 0
    for name in ("edge", "proxied"):
        figures = report.metrics[name]
        assert figures["hep_sent"] > 0, name
        assert figures["received_worker_0"] > 0, name
        assert figures["received_worker_1"] > 0, name
    assert report.metrics["edge"]["bans"] > 0
    assert report.judged.get(Judgement.EXPECTED.value, 0) > 0
    assert report.rss_before_kib
    assert report.rss_after_kib
    assert report.replayed == len(REPRODUCERS)
    assert_exercised_the_newer_paths(report)


def assert_exercised_the_newer_paths(report: LiveReport) -> None:
    # STUN, ping bursts, quiet WebSockets, forwarding by IP and DNS, large requests over
    # TCP, reloads: each one reached, in both processes where it applies.
    assert set(report.inputs_by_kind) == {"sip", "stun", "crlf burst", "ws ping burst"}
    assert report.stun_answers.get("success", 0) > 0
    edge, proxied = report.metrics["edge"], report.metrics["proxied"]
    assert edge["stun_answered"] >= sum(report.stun_answers.values())
    assert edge["stun_dropped"] > 0
    assert report.ws_keepalives["pongs received"] > 0
    assert report.burst_checks >= 2 * len(Listener) - 2  # at the start and in reloads
    assert edge["ws_ping_timeouts"] > 0
    assert proxied["ws_ping_timeouts"] > 0
    assert len(report.quiet_websockets) == 8
    assert set(report.forwarded) == {"127.0.0.1", "a.sink.test", "sink.test", "nowhere.test"}
    assert edge["dns_answer"] > 0
    assert edge["dns_negative"] > 0
    assert report.next_hop["queries to the silent resolver"] > 0
    assert proxied["dns_failure"] > 0  # its lookups time out
    assert edge["large_requests_tcp"] > 0
    assert report.next_hop["tcp connections"] > 0
    for figures in (edge, proxied):
        assert figures["reloads_applied"] == 2 * WORKERS  # two SIGHUPs each
    assert report.reload_probes["answered"] == report.reload_probes["asked"] > 0


@pytest.mark.fuzz
async def test_a_killed_worker_and_dead_listeners_are_findings(tmp_path: Path) -> None:
    # The harness must be able to fail: SIGKILL one worker of the plain process (its
    # supervisor restarts it), then the PROXY process's supervisor and its workers.
    killed: dict[str, int] = {}

    async def kill(index: int, edges: Sequence[EdgeProcess]) -> None:
        edge, proxied = edges
        if index == 100:
            killed["worker"] = next(pid for pid in sorted(edge.children()) if alive(pid))
            os.kill(killed["worker"], signal.SIGKILL)
        elif index == 200:
            killed["supervisor"] = proxied.pid
            workers = proxied.children()  # before they lose their parent
            os.kill(proxied.pid, signal.SIGKILL)
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):  # gone already
                    os.kill(pid, signal.SIGKILL)

    # Inputs are kept under the HEP chunk limit, so that nothing else ends a process.
    report = await run_live(
        SEED,
        400,
        workdir=tmp_path,
        time_limit=LIVE_TIME_LIMIT,
        hook=kill,
        replay=(),
        max_input_bytes=60_000,
        reloads=0,  # a SIGHUP must not go to a supervisor killed here
    )
    assert not report.passed
    text = "\n".join(report.findings)
    assert re.search(rf"^edge worker \d \(pid {killed['worker']}\) ended", text, re.M), text
    assert re.search(r"^edge: \d+ worker restarts$", text, re.M), text
    assert f"proxied supervisor (pid {killed['supervisor']}) ended" in text, text
    assert f"proxied: supervisor exited {-signal.SIGKILL}" in text, text
    for listener in (Listener.PROXY_TCP, Listener.PROXY_TLS, Listener.PROXY_WS):
        assert report.listeners_answering[listener.value] == f"0/{PROBES_PER_LISTENER}"
        assert f"listener {listener.value} answered 0/{PROBES_PER_LISTENER}" in text
    assert report.listeners_answering[Listener.UDP.value] == f"{PROBES_PER_LISTENER}/4"
