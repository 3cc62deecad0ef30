"""The bare processor hop: calls/s and client CPU per call, edgeport's grpcio client vs the old one.

The built-in processor runs as its own process (``python -m edgeport
builtin-processor``, served with grpcio) on 127.0.0.1. Each measurement is a
fresh client process that sends the REGISTER ``MessageRequest`` edgeport
would send (literal SIP converted by edgeport, see ``load.bare_messages``)
flat out, ``--concurrency`` trio tasks for ``--seconds`` seconds, after a
warm-up, and reports calls/s, the median call time and its own CPU time
(user + system, ``resource.getrusage``) per call.

Two clients, measured alternately in the same run, ``--rounds`` times each:

- ``grpcio``: :func:`edgeport.processor.open_processor_client` of this tree
  (grpcio futures woken through the trio token);
- ``grpclib``: the client this tree replaced (grpclib under trio-asyncio),
  loaded from git history (``--old-rev``, by default the last commit that
  had it) with its generated grpclib stub. It needs grpclib and
  trio-asyncio installed; without them it is skipped. grpclib is no runtime
  dependency of edgeport.

With ``taskset`` and two CPUs or more, the client runs on CPU 0 and the
processor on CPU 1. Run: ``python -m benchmarks processor_hop`` (options
from ``EDGEPORT_HOP_ARGS``, shell words, e.g. ``--seconds 10 --rounds 3``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLIENT_CPU = 0
PROCESSOR_CPU = 1
WARMUP_CALLS = 500
START_TIMEOUT = 20.0  # seconds for the processor to listen
MEASURE_TIMEOUT_EXTRA = 60.0  # seconds beyond --seconds for one client process
CLIENTS = ("grpcio", "grpclib")


def parse_options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks processor_hop")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--concurrency", type=int, default=50, help="calls in flight")
    parser.add_argument("--rounds", type=int, default=2, help="measurements per client")
    parser.add_argument("--warmup", type=int, default=WARMUP_CALLS, help="calls before timing")
    parser.add_argument("--old-rev", default="", help="git revision of the grpclib client")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    # Internal: one measurement in a child process.
    parser.add_argument("--measure", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--addr", help=argparse.SUPPRESS)
    parser.add_argument("--old-dir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


@dataclass(frozen=True, slots=True)
class Result:
    client: str
    calls: int
    errors: int
    seconds: float
    cpu_seconds: float
    median_ms: float

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds

    @property
    def cpu_us_per_call(self) -> float:
        return self.cpu_seconds / self.calls * 1e6 if self.calls else float("nan")


# -- one measurement, in a child process ---------------------------------------------


def load_old_client(old_dir: Path) -> Any:
    """The grpclib-era ``edgeport.processor``, written out of git by :func:`write_old_client`."""
    sys.path.insert(0, str(old_dir))
    spec = importlib.util.spec_from_file_location("old_processor", old_dir / "old_processor.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(
    client_kind: str, addr: str, seconds: float, concurrency: int, old_dir: str, warmup: int
) -> Result:
    import trio

    from benchmarks.load import bare_messages

    register, _call = bare_messages(5060)
    if client_kind == "grpcio":
        from edgeport.processor import open_processor_client

        def open_client() -> Any:
            return open_processor_client(addr)
    else:
        import trio_asyncio

        old = load_old_client(Path(old_dir))

        def open_client() -> Any:
            return _old_client(trio_asyncio, old, addr)

    async def run() -> Result:
        async with open_client() as client:
            for _ in range(warmup):
                await client.process(register)
            samples: list[float] = []
            errors = 0
            usage = resource.getrusage(resource.RUSAGE_SELF)
            start = time.perf_counter()
            end = start + seconds

            async def worker() -> None:
                nonlocal errors
                while (began := time.perf_counter()) < end:
                    try:
                        await client.process(register)
                    except Exception:  # either client's ProcessorError
                        errors += 1
                        continue
                    samples.append(time.perf_counter() - began)

            async with trio.open_nursery() as nursery:
                for _ in range(concurrency):
                    nursery.start_soon(worker)
            elapsed = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
        median = statistics.median(samples) * 1e3 if samples else float("nan")
        return Result(client_kind, len(samples), errors, elapsed, cpu, median)

    result: Result = trio.run(run)
    return result


class _old_client:
    """``trio_asyncio.open_loop()`` around the old ``open_processor_client``."""

    def __init__(self, trio_asyncio: Any, old: Any, addr: str) -> None:
        self._loop = trio_asyncio.open_loop()
        self._client = old.open_processor_client(addr)

    async def __aenter__(self) -> Any:
        await self._loop.__aenter__()
        return await self._client.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        await self._client.__aexit__(*exc)
        await self._loop.__aexit__(*exc)


# -- the run ------------------------------------------------------------------------


def default_old_rev() -> str:
    """The last commit with the grpclib stub: the parent of the one that removed it."""
    removed = subprocess.run(
        ["git", "rev-list", "-1", "HEAD", "--", "edgeport/_proto/processor_grpc.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not removed:
        raise RuntimeError("no commit touched edgeport/_proto/processor_grpc.py")
    return f"{removed}^"


def write_old_client(rev: str, directory: Path) -> None:
    """Write the old client and its grpclib stub from ``rev``, imports pointed at them."""

    def show(path: str) -> str:
        return subprocess.run(
            ["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout

    stub = show("edgeport/_proto/processor_grpc.py")
    stub = stub.replace("from . import ", "from edgeport._proto import ")
    (directory / "old_processor_grpc.py").write_text(stub)
    client = show("edgeport/processor.py").replace(
        "from edgeport._proto import processor_grpc",
        "import old_processor_grpc as processor_grpc",
    )
    (directory / "old_processor.py").write_text(client)


def grpclib_available() -> bool:
    return all(importlib.util.find_spec(name) for name in ("grpclib", "trio_asyncio"))


def start_processor(prefix: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    """The built-in processor on a free port, logging warnings only (not a line per call)."""
    from benchmarks.load import free_port

    addr = f"127.0.0.1:{free_port((socket.SOCK_STREAM,))}"
    command = [sys.executable, "-m", "edgeport", "--log-level", "WARNING"]
    proc = subprocess.Popen(
        [*prefix, *command, "builtin-processor", "--bind", addr],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    host, port = addr.split(":")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection((host, int(port)), timeout=1.0).close()
        except OSError:
            time.sleep(0.1)
            continue
        return proc, addr
    proc.kill()
    proc.wait()
    raise RuntimeError("the built-in processor did not start")


def run_child(
    prefix: list[str], kind: str, addr: str, opts: argparse.Namespace, old: str
) -> Result:
    args = [*prefix, sys.executable, "-m", "benchmarks.processor_hop", "--measure", kind]
    args += ["--addr", addr, "--seconds", str(opts.seconds)]
    args += ["--concurrency", str(opts.concurrency), "--old-dir", old]
    args += ["--warmup", str(opts.warmup)]
    done = subprocess.run(
        args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=opts.seconds + MEASURE_TIMEOUT_EXTRA,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{kind} measurement failed:\n{done.stderr[-2000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return Result(**data)


def report(results: list[Result], opts: argparse.Namespace, pinned: bool) -> str:
    placement = "client on CPU 0, processor on CPU 1" if pinned else "unpinned"
    lines = [
        f"processor hop: REGISTER MessageRequest, concurrency {opts.concurrency}, "
        f"{opts.seconds:g} s per run, {placement}",
        f"{'client':<8} {'calls/s':>9} {'CPU µs/call':>12} {'median ms':>10} {'errors':>7}",
    ]
    for r in results:
        lines.append(
            f"{r.client:<8} {r.per_second:>9.0f} {r.cpu_us_per_call:>12.1f} "
            f"{r.median_ms:>10.2f} {r.errors:>7}"
        )
    for kind in CLIENTS:
        mine = [r for r in results if r.client == kind]
        if mine:
            rate = statistics.mean(r.per_second for r in mine)
            cpu = statistics.mean(r.cpu_us_per_call for r in mine)
            lines.append(f"{kind} mean: {rate:.0f} calls/s, {cpu:.1f} µs client CPU per call")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    if argv is None:
        argv = shlex.split(os.environ.get("EDGEPORT_HOP_ARGS", ""))
    opts = parse_options(argv)
    if opts.measure:
        result = measure(
            opts.measure, opts.addr, opts.seconds, opts.concurrency, opts.old_dir, opts.warmup
        )
        print(json.dumps(_as_dict(result)))
        return
    pinned, results = run(opts)
    print(report(results, opts, pinned))


def run(opts: argparse.Namespace) -> tuple[bool, list[Result]]:
    """Start the processor, measure each client ``opts.rounds`` times; (pinned, results)."""
    pinned = not opts.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1
    client_prefix = ["taskset", "-c", str(CLIENT_CPU)] if pinned else []
    processor_prefix = ["taskset", "-c", str(PROCESSOR_CPU)] if pinned else []
    kinds = ["grpcio"]
    with tempfile.TemporaryDirectory(prefix="edgeport-hop-") as old:
        if grpclib_available():
            write_old_client(opts.old_rev or default_old_rev(), Path(old))
            kinds.append("grpclib")
        else:
            print("grpclib or trio-asyncio not installed: the old client is skipped")
        processor, addr = start_processor(processor_prefix)
        try:
            results = [
                run_child(client_prefix, kind, addr, opts, old)
                for _ in range(opts.rounds)
                for kind in kinds
            ]
        finally:
            processor.send_signal(signal.SIGTERM)
            try:
                processor.wait(10)
            except subprocess.TimeoutExpired:
                processor.kill()
                processor.wait()
    return pinned, results


def _as_dict(result: Result) -> dict[str, Any]:
    return {name: getattr(result, name) for name in Result.__slots__}


if __name__ == "__main__":
    main(sys.argv[1:])
