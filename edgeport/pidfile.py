"""The pid file: where ``edgeport reload`` finds the running edgeport to signal.

A serving edgeport (the supervisor, with workers) writes its process id to
``--pid-file``, by default ``$XDG_RUNTIME_DIR/edgeport.pid`` when that
directory exists, else ``/run/edgeport.pid`` when ``/run`` is writable, else
nowhere. A pid file that names another live process is left alone (two
edgeports on one host: give each its own ``--pid-file``); the file is
removed at exit when it still names this process.

``edgeport reload`` reads it and sends SIGHUP (:func:`signal_reload`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

logger = logging.getLogger(__name__)

PID_FILE_NAME: Final = "edgeport.pid"
SYSTEM_RUN_DIR: Final = "/run"
MAX_PID_FILE_BYTES: Final = 32  # a process id and a newline


class PidFileError(Exception):
    """The pid file cannot be read, or names no running process."""


def default_pid_file(env: Mapping[str, str], *, run_dir: str = SYSTEM_RUN_DIR) -> str | None:
    """``$XDG_RUNTIME_DIR/edgeport.pid``, else ``/run/edgeport.pid`` if ``/run`` is
    writable, else None."""
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isdir(runtime):
        return str(Path(runtime) / PID_FILE_NAME)
    if os.path.isdir(run_dir) and os.access(run_dir, os.W_OK):
        return str(Path(run_dir) / PID_FILE_NAME)
    return None


def read_pid(path: str) -> int:
    """The process id in ``path``; raises PidFileError saying why not."""
    try:
        with open(path, "rb") as stream:
            text = stream.read(MAX_PID_FILE_BYTES + 1)
    except OSError as error:
        raise PidFileError(f"{path}: cannot read the pid file: {error.strerror or error}") from None
    stripped = text.strip()
    if len(text) > MAX_PID_FILE_BYTES or not stripped.isdigit() or int(stripped) < 1:
        raise PidFileError(f"{path}: not a process id")
    return int(stripped)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def write_pid_file(path: str) -> bool:
    """Write this process's id to ``path``; False (logged) when it cannot, or when the
    file names another live process."""
    with contextlib.suppress(PidFileError):
        pid = read_pid(path)
        if pid != os.getpid() and _alive(pid):
            logger.warning(
                "pid file %s names a running process (%d): left alone; "
                "edgeport reload needs --pid-file for this edgeport",
                path,
                pid,
            )
            return False
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        Path(temporary).write_text(f"{os.getpid()}\n")
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        logger.warning("cannot write the pid file %s: %s", path, error.strerror or error)
        return False
    logger.info("pid file %s", path)
    return True


def remove_pid_file(path: str) -> None:
    """Remove ``path`` if it still names this process."""
    with contextlib.suppress(PidFileError, OSError):
        if read_pid(path) == os.getpid():
            os.unlink(path)


def signal_reload(path: str) -> int:
    """Send SIGHUP to the edgeport of ``path``; its process id. Raises PidFileError."""
    pid = read_pid(path)
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise PidFileError(f"{path}: process {pid} is not running") from None
    except PermissionError:
        raise PidFileError(f"{path}: not allowed to signal process {pid}") from None
    return pid
