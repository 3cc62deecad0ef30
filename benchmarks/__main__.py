"""Run every benchmark module present, or only those named on the command line.

``python -m benchmarks`` runs codec, processor_hop, transport_soak, load, overload,
protection, workers, flood_memory, transactions and idle when those modules exist;
``python -m benchmarks codec load`` runs only those. A benchmark that fails is
reported and the others still run; the exit status is 1 when one failed, 2 for an unknown name.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Sequence
from typing import Final

BENCHMARKS: Final = (
    "codec",
    "processor_hop",
    "transport_soak",
    "load",
    "overload",
    "protection",
    "workers",
    "flood_memory",
    "transactions",
    "idle",
)


def main(argv: Sequence[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv) or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    failed = False
    for name in names:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"benchmarks.{name}":
                raise
            print(f"== {name}: not present, skipped")
            continue
        print(f"== {name}", flush=True)
        try:
            module.main()
        except Exception:
            traceback.print_exc()
            print(f"== {name}: FAILED")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
