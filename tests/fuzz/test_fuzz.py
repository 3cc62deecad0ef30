"""A bounded slice of the fuzzer, run with the suite (``python -m tests.fuzz`` runs more)."""

from __future__ import annotations

import pytest

from tests.fuzz.__main__ import MAX_RSS_GROWTH_MIB, rss_mib, run_inprocess
from tests.fuzz.inprocess import Findings, check_one
from tests.fuzz.live import run_live
from tests.fuzz.mutate import MUTATIONS, SEEDS, generate

SEED = 20261204
INPROCESS_COUNT = 50_000
LIVE_COUNT = 3_000


def test_every_mutation_changes_some_seed() -> None:
    import random

    rng = random.Random(SEED)
    for mutation in MUTATIONS:
        assert any(mutation(rng, seed) != seed for seed in SEEDS for _ in range(3)), mutation


def test_the_generator_is_deterministic_per_seed() -> None:
    import random

    first = [generate(random.Random(7)) for _ in range(50)]
    again = [generate(random.Random(7)) for _ in range(50)]
    assert first == again


def test_an_unexpected_exception_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    # The harness itself must be able to fail: a refused message is fine, any other
    # exception is recorded with its input.
    import random

    findings = Findings()
    check_one(b"\x00garbage", random.Random(1), findings)
    assert findings.exceptions == 0

    def broken(data: bytes) -> object:
        raise RuntimeError("defect")

    monkeypatch.setattr("tests.fuzz.inprocess.parse_message", broken)
    check_one(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n", random.Random(1), findings)
    assert findings.exceptions == 1
    assert "RuntimeError: defect" in findings.examples[0][0]


@pytest.mark.fuzz
def test_fuzz_parser_conversion_and_framing() -> None:
    before = rss_mib()
    findings = run_inprocess(SEED, INPROCESS_COUNT)
    assert findings.examples == []
    assert findings.exceptions == 0
    assert findings.parsed > 0  # the mix holds messages that parse...
    assert findings.parsed < findings.messages  # ...and many that do not
    assert rss_mib() - before < MAX_RSS_GROWTH_MIB


@pytest.mark.fuzz
async def test_fuzz_over_udp_tcp_and_websocket() -> None:
    report = await run_live(SEED, LIVE_COUNT)
    assert set(report.sent) == {"udp", "tcp", "ws"}
    assert report.listeners_answering == {"udp": True, "tcp": True, "ws": True}
    assert report.unexpected == []
    assert report.logged_errors == []
    assert report.handler_errors == 0
    assert report.internal_errors == 0
    assert report.processor_requests > 0  # well-formed inputs do get through
