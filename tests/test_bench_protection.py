"""The protection benchmark's own pieces: its configuration loads, its messages parse, and
the scanner's OPTIONS is the only one the scanner filter drops."""

from __future__ import annotations

from pathlib import Path

from benchmarks.protection import (
    BAN_TIME,
    DENIED_HOST,
    FLOOD_LIMIT,
    register,
    scanner_options,
    write_config,
)
from edgeport.config import load_config
from edgeport.config.model import DEFAULT_SCANNERS
from edgeport.protection.scanners import ScannerFilter
from edgeport.sip.message import Request
from edgeport.sip.parser import parse_message


def test_benchmark_configuration_loads(tmp_path: Path) -> None:
    path = tmp_path / "edgeport.yaml"
    write_config(path, 5080, 50051)
    config = load_config(path, {})
    assert config.access_control.deny == (f"{DENIED_HOST}/32",)
    assert config.protection.flood.requests == FLOOD_LIMIT
    assert config.protection.flood.ban_time == BAN_TIME
    assert config.localnets == ("10.99.0.0/16",)


def test_benchmark_messages_parse_and_only_the_scanner_matches() -> None:
    scanners = ScannerFilter(DEFAULT_SCANNERS)
    legit = register("127.0.0.9", 5000, 5080, 3)
    scanner = scanner_options("127.0.0.5", 5000, 3)
    assert isinstance(parse_message(legit), Request)
    assert isinstance(parse_message(scanner), Request)
    assert not scanners.matches(legit)
    assert scanners.matches(scanner)
