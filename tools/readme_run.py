"""Run the README's first command on the distribution's Python, as a newcomer would.

The README starts with ``python3 -m venv .venv && .venv/bin/pip install . &&
.venv/bin/edgeport``. This script copies the checkout's files (tracked and
new, as git lists them) to a temporary directory, runs that command there
with ``/usr/bin`` first on PATH, so ``python3`` is the distribution's (on
Debian 12 and Ubuntu 24.04 an "externally managed" one, PEP 668, where a bare
``pip install .`` is refused), and checks that the installed ``edgeport``
answers an OPTIONS over UDP on 127.0.0.1. edgeport gets a free port through
``CONFIG_PATH`` instead of the default 5060 on every interface; it is
stopped by its PID with SIGTERM and must exit 0.

Standard library only: it runs before anything is installed. .ci/run calls
it as ``PATH=/usr/bin:$PATH /usr/bin/python3 tools/readme_run.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
INSTALL_TIMEOUT: Final = 900.0  # seconds for the venv and `pip install .`
ANSWER_TIMEOUT: Final = 60.0  # seconds for edgeport to start and answer
PROBE_INTERVAL: Final = 0.5  # seconds between two OPTIONS
STOP_TIMEOUT: Final = 10.0  # seconds for edgeport to exit after SIGTERM
MAX_ANSWER_BYTES: Final = 65535
INSTALL_COMMAND: Final = "python3 -m venv .venv && .venv/bin/pip install ."
RUN_COMMAND: Final = ".venv/bin/edgeport"
SKIPPED_PARTS: Final = frozenset({".git", ".venv", ".nox", "node_modules", "__pycache__"})


def log(line: str) -> None:
    print(f"readme run: {line}", flush=True)


def copy_checkout(target: Path) -> None:
    """The checkout's files as a fresh clone has them, plus new ones not yet committed."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        names = [name for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        names = [str(path.relative_to(ROOT)) for path in ROOT.rglob("*") if path.is_file()]
    for name in names:
        source = ROOT / name
        if SKIPPED_PARTS & set(Path(name).parts) or name.startswith(".ci/venv/"):
            continue
        if not source.is_file():  # deleted in the work tree
            continue
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def options(port: int, local_port: int, attempt: int) -> bytes:
    lines = [
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK-readme-{attempt};rport",
        "Max-Forwards: 70",
        "From: <sip:newcomer@127.0.0.1>;tag=readme",
        "To: <sip:127.0.0.1>",
        f"Call-ID: readme-run-{attempt}@127.0.0.1",
        f"CSeq: {attempt} OPTIONS",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


def wait_answer(process: subprocess.Popen[bytes], port: int) -> str:
    """The status line edgeport answers an OPTIONS with; sent again until it answers."""
    deadline = time.monotonic() + ANSWER_TIMEOUT
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(PROBE_INTERVAL)
        local_port = int(sock.getsockname()[1])
        attempt = 0
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"edgeport exited with {process.returncode} before answering")
            attempt += 1
            sock.sendto(options(port, local_port, attempt), ("127.0.0.1", port))
            try:
                data = sock.recv(MAX_ANSWER_BYTES)
            except TimeoutError:
                continue
            except ConnectionRefusedError:  # ICMP: nothing listens yet
                time.sleep(PROBE_INTERVAL)
                continue
            return data.split(b"\r\n", 1)[0].decode(errors="replace")
    raise SystemExit(f"edgeport did not answer an OPTIONS within {ANSWER_TIMEOUT:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM the edgeport this script started (by its PID); SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def main() -> int:
    python3 = shutil.which("python3")
    log(f"python3 is {python3} (Python {sys.version.split()[0]} runs this script)")
    marker = Path(sysconfig.get_path("stdlib")) / "EXTERNALLY-MANAGED"
    log(f"{marker}: {'present' if marker.exists() else 'absent'} (PEP 668)")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("PYENV", "VIRTUAL_ENV", "PYTHON", "PIP_", "CONFIG_PATH", "EDGEPORT_COMPILE")
        )
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    with tempfile.TemporaryDirectory(prefix="edgeport-readme-") as temporary:
        tree = Path(temporary) / "edgeport"
        tree.mkdir()
        copy_checkout(tree)
        started = time.monotonic()
        log(f"$ {INSTALL_COMMAND}   (in a clean copy, {tree})")
        installed = subprocess.run(
            ["bash", "-c", INSTALL_COMMAND],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
        if installed.returncode != 0:
            print(installed.stdout[-4000:], installed.stderr[-4000:], sep="\n", file=sys.stderr)
            log(f"FAILED: exit {installed.returncode}")
            return 1
        log(f"installed in {time.monotonic() - started:.0f} s")
        port = free_udp_port()
        config = Path(temporary) / "edgeport.yaml"
        config.write_text(
            "kind: EdgePort\napiVersion: v2beta1\nref: readme-run\nspec:\n"
            "  bindAddr: 127.0.0.1\n"
            f"  transport:\n    - protocol: udp\n      port: {port}\n"
            "  methods: [REGISTER, INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE]\n"
            "  processor:\n    addr: builtin\n"
        )
        output = Path(temporary) / "edgeport.log"
        log(f"$ CONFIG_PATH={config.name} {RUN_COMMAND}   (UDP 127.0.0.1:{port})")
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [RUN_COMMAND],
                cwd=tree,
                env={**env, "CONFIG_PATH": str(config)},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        started = time.monotonic()
        try:
            status_line = wait_answer(process, port)
        except SystemExit as failure:
            status_line = f"no answer: {failure}"
        else:
            log(f"OPTIONS answered in {time.monotonic() - started:.1f} s: {status_line}")
        finally:
            code = stop(process)
        log(f"edgeport (pid {process.pid}) stopped by SIGTERM: exit {code}")
        if not status_line.startswith("SIP/2.0 200") or code != 0:
            print(output.read_text(errors="replace")[-4000:], file=sys.stderr)
            log(f"FAILED: {status_line}, exit {code}")
            return 1
    log("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
