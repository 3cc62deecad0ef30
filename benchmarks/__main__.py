"""Run every benchmark module present, or only those named on the command line.

``python -m benchmarks`` runs codec, then transport_soak and load when those
modules exist; ``python -m benchmarks codec`` runs one.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Final

BENCHMARKS: Final = ("codec", "transport_soak", "load")


def main(argv: Sequence[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv) or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    for name in names:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"benchmarks.{name}":
                raise
            print(f"== {name}: not present, skipped")
            continue
        print(f"== {name}")
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
