"""``python -m tests.fuzz [--seed N] [--count N] [--inprocess-count N] [--time-limit S]``:
run the fuzzer (in-process through the parser, conversion and framing, then live into
real edgeport processes with everything on), print its figures, exit 1 on any finding."""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import trio

from tests.fuzz.edges import REPO_ROOT
from tests.fuzz.inprocess import Findings, check_one, check_stun
from tests.fuzz.live import run_live
from tests.fuzz.mutate import generate
from tests.fuzz.report import format_live

MAX_RSS_GROWTH_MIB: Final = 300  # in-process: beyond this the run fails, memory is not bounded
DEFAULT_COUNT: Final = 1_000_000
STUN_EVERY: Final = 5  # in-process: one STUN datagram through the decoder per this many inputs
# The live part's time limit: start-up and probes, and 5 ms an input (it sends about
# 650 a second on a shared 2-core machine), so that a stuck or crawling run ends.
LIVE_SETUP_SECONDS: Final = 120.0
LIVE_SECONDS_PER_INPUT: Final = 0.005


def rss_mib() -> float:
    """Current resident set size of this process, MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def run_inprocess(seed: int, count: int, progress: bool = False) -> Findings:
    rng = random.Random(seed)
    stun_rng = random.Random(f"stun-{seed}")  # the SIP inputs stay those of the seed
    findings = Findings()
    for index in range(count):
        check_one(generate(rng), rng, findings)
        if index % STUN_EVERY == 0:
            check_stun(stun_rng, findings)
        if progress and index and index % 100_000 == 0:
            print(f"  {index} messages, {findings.exceptions} exceptions, {rss_mib():.0f} MiB")
    return findings


def live_time_limit(count: int) -> float:
    return LIVE_SETUP_SECONDS + count * LIVE_SECONDS_PER_INPUT


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--count",
        type=int,
        default=DEFAULT_COUNT,
        help="inputs sent over sockets into the edgeport processes (default 10^6)",
    )
    parser.add_argument(
        "--inprocess-count",
        type=int,
        help="inputs through the parser, conversion and framing (default: --count)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        help="seconds the live part may take to send its inputs "
        f"(default {LIVE_SETUP_SECONDS:.0f} + {LIVE_SECONDS_PER_INPUT} per input)",
    )
    parser.add_argument(
        "--edgeport-tree",
        type=Path,
        default=REPO_ROOT,
        help="the checkout whose edgeport the live part runs (default: this one)",
    )
    args = parser.parse_args(argv)
    inprocess_count = args.count if args.inprocess_count is None else args.inprocess_count
    print(f"seed {args.seed}")
    started = time.perf_counter()
    rss_before = rss_mib()
    findings = run_inprocess(args.seed, inprocess_count, progress=True)
    inprocess_time = time.perf_counter() - started
    growth = rss_mib() - rss_before
    print(
        f"in-process: {findings.messages:,} messages in {inprocess_time:.1f} s "
        f"({findings.parsed:,} parsed, {findings.converted:,} converted, "
        f"{findings.frames:,} frames), {findings.exceptions} unexpected exceptions; "
        f"STUN decoder: {findings.stun:,} datagrams, {findings.stun_answered:,} answered, "
        f"{findings.wrong_answers} wrong answers; "
        f"RSS +{growth:.0f} MiB (bound {MAX_RSS_GROWTH_MIB})"
    )
    for stage, data in findings.examples:
        print(f"--- {stage}\n{data!r}")
    workdir = Path(tempfile.mkdtemp(prefix="edgeport-fuzz-"))
    time_limit = args.time_limit or live_time_limit(args.count)
    live = trio.run(
        lambda: run_live(
            args.seed,
            args.count,
            workdir=workdir,
            time_limit=time_limit,
            tree=args.edgeport_tree.resolve(),
            progress=print,
        )
    )
    print("\n".join(format_live(live)))
    inprocess_ok = findings.exceptions == 0 and findings.wrong_answers == 0
    ok = inprocess_ok and growth < MAX_RSS_GROWTH_MIB and live.passed
    if live.passed:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"logs and configuration kept in {workdir}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
