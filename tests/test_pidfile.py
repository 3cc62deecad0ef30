"""The pid file ``edgeport reload`` signals through: written, protected, read, removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from edgeport.cli import EXIT_NOT_RUNNING, EXIT_OK, main
from edgeport.pidfile import (
    PidFileError,
    default_pid_file,
    read_pid,
    remove_pid_file,
    signal_reload,
    write_pid_file,
)

if TYPE_CHECKING:
    from pathlib import Path


def test_the_pid_file_names_this_process_and_goes_at_exit(tmp_path: Path) -> None:
    path = str(tmp_path / "edgeport.pid")
    assert write_pid_file(path)
    assert read_pid(path) == os.getpid()
    remove_pid_file(path)
    assert not os.path.exists(path)


def test_a_pid_file_of_another_running_edgeport_is_left_alone(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        path = tmp_path / "edgeport.pid"
        path.write_text(f"{other.pid}\n")
        assert not write_pid_file(str(path))
        remove_pid_file(str(path))  # not ours: stays
        assert read_pid(str(path)) == other.pid
    finally:
        other.kill()
        other.wait()


def test_a_stale_pid_file_is_taken_over(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    path = tmp_path / "edgeport.pid"
    path.write_text(f"{gone.pid}\n")
    assert write_pid_file(str(path))
    assert read_pid(str(path)) == os.getpid()


@pytest.mark.parametrize("content", [b"", b"abc\n", b"-5\n", b"0\n", b"1" * 64])
def test_a_pid_file_without_a_process_id_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "edgeport.pid"
    path.write_bytes(content)
    with pytest.raises(PidFileError, match="not a process id"):
        read_pid(str(path))


def test_edgeport_reload_sends_sighup_to_the_process_of_the_pid_file(tmp_path: Path) -> None:
    waiting = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys; signal.signal(signal.SIGHUP, lambda *_: sys.exit(7)); "
            "print('ready', flush=True); signal.pause()",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert waiting.stdout is not None
        assert waiting.stdout.readline() == b"ready\n"
        path = tmp_path / "edgeport.pid"
        path.write_text(f"{waiting.pid}\n")
        assert main(["reload", "--pid-file", str(path)]) == EXIT_OK
        assert waiting.wait(timeout=10) == 7
    finally:
        if waiting.poll() is None:
            waiting.send_signal(signal.SIGKILL)
            waiting.wait()


def test_edgeport_reload_without_a_running_edgeport_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "edgeport.pid"
    assert main(["reload", "--pid-file", str(missing)]) == EXIT_NOT_RUNNING
    assert f"{missing}: cannot read the pid file" in capsys.readouterr().err
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    missing.write_text(f"{gone.pid}\n")
    with pytest.raises(PidFileError, match="is not running"):
        signal_reload(str(missing))


def test_the_default_pid_file_is_in_the_runtime_directory(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    assert default_pid_file({"XDG_RUNTIME_DIR": str(runtime)}) == str(runtime / "edgeport.pid")
    run = tmp_path / "run"
    run.mkdir()
    assert default_pid_file({}, run_dir=str(run)) == str(run / "edgeport.pid")
    assert default_pid_file({}, run_dir=str(tmp_path / "absent")) is None
