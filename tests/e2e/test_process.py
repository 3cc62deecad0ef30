"""edgeport as its users run it: a process started from the command line, stopped by signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.ua import sip

START_TIMEOUT = 20.0  # seconds for the process to answer its first OPTIONS


def free_udp_tcp_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return int(port)
    raise RuntimeError("no free port")


def write_config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "edgeport.yaml"
    path.write_text(
        f"""kind: EdgePort
apiVersion: v2beta1
ref: edgeport-process-test
spec:
  bindAddr: 127.0.0.1
  transport:
    - protocol: udp
      port: {port}
    - protocol: tcp
      port: {port}
  methods: [REGISTER, INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE]
  processor:
    addr: builtin
"""
    )
    return path


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"CONFIG_PATH", "HOSTNAME", "LOCALNETS"}}
    env["LOCALNETS"] = "127.0.0.0/8"
    return env


def options(port: int, ua_port: int, n: int) -> bytes:
    return sip(
        f"""OPTIONS sip:127.0.0.1:{port} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua_port};branch=z9hG4bK-proc-{n}
Max-Forwards: 70
From: <sip:probe@127.0.0.1>;tag=p{n}
To: <sip:127.0.0.1>
Call-ID: process-probe-{n}@test
CSeq: {n} OPTIONS
Content-Length: 0

"""
    )


def wait_until_answering(port: int, process: subprocess.Popen[bytes]) -> socket.socket:
    ua = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ua.bind(("127.0.0.1", 0))
    ua.settimeout(0.3)
    deadline = time.monotonic() + START_TIMEOUT
    n = 0
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        n += 1
        ua.sendto(options(port, ua.getsockname()[1], n), ("127.0.0.1", port))
        try:
            data = ua.recv(65535)
        except TimeoutError:
            continue
        if data.startswith(b"SIP/2.0 200"):
            return ua
    raise AssertionError("edgeport did not answer OPTIONS")


@pytest.mark.slow
def test_sigterm_drains_a_pending_call_and_a_second_signal_stops_at_once(tmp_path: Path) -> None:
    port = free_udp_tcp_port()
    config = write_config(tmp_path, port)
    process = subprocess.Popen(
        [sys.executable, "-m", "edgeport", "--config", str(config), "--log-level", "info"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
    )
    try:
        ua = wait_until_answering(port, process)
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.0.1", 0))
        silent_port = silent.getsockname()[1]
        ua_port = ua.getsockname()[1]
        # An INVITE to a silent callee stays pending: the drain waits for it.
        ua.sendto(
            sip(
                f"""INVITE sip:bob@127.0.0.1:{silent_port} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua_port};branch=z9hG4bK-proc-invite;rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=pi
To: <sip:bob@127.0.0.1>
Call-ID: process-invite@test
CSeq: 1 INVITE
Content-Length: 0

"""
            ),
            ("127.0.0.1", port),
        )
        silent.settimeout(5)
        assert silent.recv(65535).startswith(b"INVITE ")
        process.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=1.0)  # still draining: the INVITE has no answer yet
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
        stderr = process.stderr.read().decode() if process.stderr else ""
        assert "draining" in stderr
        assert "Traceback" not in stderr
        silent.close()
        ua.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_sigterm_when_idle_exits_zero(tmp_path: Path) -> None:
    port = free_udp_tcp_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "edgeport", "--config", str(write_config(tmp_path, port))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
    )
    try:
        wait_until_answering(port, process).close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_taken_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "edgeport", "--config", str(write_config(tmp_path, port))],
            capture_output=True,
            env=clean_env(),
            timeout=30,
        )
    assert result.returncode == 2
    lines = [line for line in result.stderr.decode().splitlines() if "unable to bind" in line]
    assert lines, result.stderr.decode()
    assert lines[0].endswith(f"unable to bind udp://127.0.0.1:{port}: Address already in use")
    assert "Traceback" not in result.stderr.decode()
