"""``python -m tests.fuzz [--seed N] [--count N] [--live-share F]``: run the fuzzer, print
its figures, exit 1 on any finding."""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import trio

from tests.fuzz.inprocess import Findings, check_one
from tests.fuzz.live import LiveReport, run_live
from tests.fuzz.mutate import generate

MAX_RSS_GROWTH_MIB = 300  # beyond this the run fails: memory is not bounded


def rss_mib() -> float:
    """Current resident set size of this process, MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def run_inprocess(seed: int, count: int, progress: bool = False) -> Findings:
    rng = random.Random(seed)
    findings = Findings()
    for index in range(count):
        check_one(generate(rng), rng, findings)
        if progress and index and index % 100_000 == 0:
            print(f"  {index} messages, {findings.exceptions} exceptions, {rss_mib():.0f} MiB")
    return findings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=1_000_000, help="messages in all")
    parser.add_argument(
        "--live-share", type=float, default=0.02, help="share of --count sent over sockets"
    )
    args = parser.parse_args(argv)
    live_count = int(args.count * args.live_share)
    started = time.perf_counter()
    rss_before = rss_mib()
    findings = run_inprocess(args.seed, args.count - live_count, progress=True)
    inprocess_time = time.perf_counter() - started
    rss_inprocess = rss_mib()
    live_started = time.perf_counter()
    live: LiveReport = trio.run(run_live, args.seed, live_count)
    live_time = time.perf_counter() - live_started
    rss_after = rss_mib()
    print(f"seed {args.seed}")
    print(
        f"in-process: {findings.messages} messages in {inprocess_time:.1f} s "
        f"({findings.parsed} parsed, {findings.converted} converted, {findings.frames} frames), "
        f"{findings.exceptions} unexpected exceptions"
    )
    for stage, data in findings.examples:
        print(f"--- {stage}\n{data!r}")
    print(
        f"sockets: {sum(live.sent.values())} messages {live.sent} in {live_time:.1f} s; "
        f"{live.well_formed} well-formed, processor got {live.processor_requests} "
        f"({live.ambiguous} with a Call-ID also sent malformed); "
        f"unexpected at processor: {len(live.unexpected)}; handler errors {live.handler_errors}; "
        f"internal errors {live.internal_errors:.0f}; logged errors {len(live.logged_errors)}; "
        f"listeners answering {live.listeners_answering}"
    )
    for line in live.unexpected + live.logged_errors:
        print(f"  {line}")
    growth = rss_after - rss_before
    print(
        f"RSS: {rss_before:.0f} MiB before, {rss_inprocess:.0f} after in-process, "
        f"{rss_after:.0f} after sockets (+{growth:.0f} MiB)"
    )
    ok = findings.exceptions == 0 and live.passed and growth < MAX_RSS_GROWTH_MIB
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
