"""A small Routr-style Processor built into edgeport: registrar, location, routing.

Runs standalone (``edgeport builtin-processor --bind 0.0.0.0:51904``), served
over gRPC with grpcio, as the processor of any EdgePort; edgeport itself calls
the same handler in process when ``processor.addr`` is ``builtin``
(:func:`builtin_processor`). What it decides is described in
``router.py``; its optional static peers file in ``config.py``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import signal
from typing import Final

import trio

from edgeport.builtin.config import PeersConfigError, StaticPeer, load_peers
from edgeport.builtin.service import (
    builtin_processor,
    serve_builtin_processor,
    serve_processor_service,
)
from edgeport.processor import parse_processor_addr

__all__ = [
    "builtin_processor",
    "cli_main",
    "serve_builtin_processor",
    "serve_processor_service",
]

logger = logging.getLogger(__name__)

DEFAULT_BIND: Final = "0.0.0.0:51904"
EXIT_OK: Final = 0
EXIT_USAGE: Final = 2
EXIT_FAILED: Final = 1
STOP_GRACE: Final = 2.0  # seconds calls in flight get to finish on SIGTERM


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeport builtin-processor",
        description="Serve edgeport's built-in Routr Processor over gRPC.",
    )
    parser.add_argument(
        "--bind",
        default=DEFAULT_BIND,
        metavar="HOST:PORT",
        help=f"address to serve on (default {DEFAULT_BIND}; port 0 picks one)",
    )
    parser.add_argument("--peers", metavar="FILE", help="YAML file of static peers")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="when logging is not already set up by the caller (default INFO)",
    )
    return parser


async def _run(host: str, port: int, peers: dict[str, StaticPeer]) -> None:
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            serve = functools.partial(serve_builtin_processor, peers=peers, grace=STOP_GRACE)
            await nursery.start(serve, host, port)
            async for signum in signals:
                logger.info("%s received, stopping", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def cli_main(argv: list[str]) -> int:
    """``edgeport builtin-processor [--bind HOST:PORT] [--peers FILE]``; returns the exit code."""
    args = _parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    try:
        host, port = parse_processor_addr(args.bind, allow_port_zero=True)
    except ValueError as error:
        logger.error("--bind: %s", error)
        return EXIT_USAGE
    peers: dict[str, StaticPeer] = {}
    if args.peers:
        try:
            peers = load_peers(args.peers)
        except PeersConfigError as error:
            for problem in error.problems:
                logger.error("peers: %s", problem)
            return EXIT_USAGE
        logger.info("%d static peers from %s", len(peers), args.peers)
    failed = False
    try:
        trio.run(_run, host, port, peers)
    except* OSError as group:
        for failure in group.exceptions:
            logger.error("cannot serve on %s: %s", args.bind, failure)
        failed = True
    return EXIT_FAILED if failed else EXIT_OK
