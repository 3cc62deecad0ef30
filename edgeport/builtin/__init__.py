"""A small Routr-style Processor built into edgeport: registrar, location, routing.

Runs standalone (``edgeport builtin-processor --bind 0.0.0.0:51904``), served
over gRPC with grpcio, as the processor of any EdgePort; edgeport itself calls
the same handler in process when ``processor.addr`` is ``builtin``
(:func:`builtin_processor`). What it decides is described in
``router.py``, where it may relay in ``relay.py``; its optional static peers
file in ``config.py``. ``--relay-to CIDR`` (repeatable; ``none`` for no
network) replaces the file's ``relayTo``; with neither, each request's
localnets.
"""

from __future__ import annotations

import argparse
import functools
import logging
import signal
from typing import TYPE_CHECKING, Final

import trio

from edgeport.builtin.config import (
    RELAY_TO_NONE,
    BuiltinSettings,
    PeersConfigError,
    load_builtin_file,
    parse_network,
)
from edgeport.builtin.service import (
    builtin_processor,
    serve_builtin_processor,
    serve_processor_service,
)
from edgeport.processor import parse_processor_addr

if TYPE_CHECKING:
    from edgeport.builtin.edge import Network

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
        "--relay-to",
        action="append",
        metavar="CIDR",
        help="a network requests may be relayed to, repeatable; 'none' for none "
        "(default: the file's relayTo, else each EdgePort's localnets)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="when logging is not already set up by the caller (default INFO)",
    )
    return parser


async def _run(host: str, port: int, settings: BuiltinSettings) -> None:
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            serve = functools.partial(
                serve_builtin_processor,
                peers=settings.peers,
                relay_to=settings.relay_to,
                grace=STOP_GRACE,
            )
            await nursery.start(serve, host, port)
            async for signum in signals:
                logger.info("%s received, stopping", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def cli_main(argv: list[str]) -> int:
    """``edgeport builtin-processor [--bind HOST:PORT] [--peers FILE] [--relay-to CIDR]...``;
    returns the exit code."""
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
    settings = BuiltinSettings(peers={})
    if args.peers:
        try:
            settings = load_builtin_file(args.peers)
        except PeersConfigError as error:
            for problem in error.problems:
                logger.error("peers: %s", problem)
            return EXIT_USAGE
        logger.info("%d static peers from %s", len(settings.peers), args.peers)
    if args.relay_to is not None:
        try:
            relay_to = _relay_networks(args.relay_to)
        except ValueError as error:
            logger.error("--relay-to: %s", error)
            return EXIT_USAGE
        settings = BuiltinSettings(peers=settings.peers, relay_to=relay_to)
    shown = "the localnets of each request"
    if settings.relay_to is not None:
        shown = ", ".join(str(network) for network in settings.relay_to) or "no network"
    logger.info("relaying to registered contacts, static peers and %s", shown)
    failed = False
    try:
        trio.run(_run, host, port, settings)
    except* OSError as group:
        for failure in group.exceptions:
            logger.error("cannot serve on %s: %s", args.bind, failure)
        failed = True
    return EXIT_FAILED if failed else EXIT_OK


def _relay_networks(values: list[str]) -> tuple[Network, ...]:
    """``--relay-to`` values; ``none`` alone means no network. Raises ValueError."""
    if RELAY_TO_NONE in values:
        if len(values) > 1:
            raise ValueError(f"{RELAY_TO_NONE!r} cannot be combined with networks")
        return ()
    return tuple(dict.fromkeys(parse_network(value) for value in values))
