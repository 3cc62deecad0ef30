"""Noticing that the TLS files named in ``spec.securityContext`` changed on disk.

Each path is looked at twice: the name itself (``lstat``: a symbolic link
that now points elsewhere) and the file it resolves to (``stat`` of its real
path: the content rewritten in place, or replaced). Each look keeps
(st_dev, st_ino, st_mtime_ns, st_size). A Kubernetes Secret mounted as a
volume is updated by writing a new directory and swapping the ``..data``
symbolic link to it: the name (``tls.p12 -> ..data/tls.p12``) stays the same
link, but its real path is a new file.

:class:`FileWatch` is sans-IO apart from the ``stat`` calls it is given: a
change is reported once the files have looked the same on two polls in a
row, so a file caught half written is read only when its writer is done.
:func:`tls_files` names the files of a configuration; :func:`watch_tls_files`
polls the watch every ``spec.reload.watchInterval`` seconds and reloads (a
single process reloads itself, a supervisor every worker).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Final

import trio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from edgeport.config import EdgePortConfig

logger = logging.getLogger(__name__)

MAX_WATCHED_FILES: Final = 8  # keyStore and trustStore today

Stamp = tuple[int, int, int, int]  # st_dev, st_ino, st_mtime_ns, st_size
Look = tuple[Stamp | None, Stamp | None]  # the name (lstat), the file it resolves to (stat)


def look_at(path: str) -> Look:
    """What ``path`` and the file it resolves to are now (None: not there)."""
    return _stamp(os.lstat, path), _stamp(os.stat, os.path.realpath(path))


def _stamp(stat: Callable[[str], os.stat_result], path: str) -> Stamp | None:
    try:
        result = stat(path)
    except (OSError, ValueError):
        return None
    return result.st_dev, result.st_ino, result.st_mtime_ns, result.st_size


class FileWatch:
    """Tells, poll after poll, whether the watched files changed and have settled."""

    def __init__(self, paths: Iterable[str], *, look: Callable[[str], Look] = look_at) -> None:
        self._look = look
        self.paths: tuple[str, ...] = ()
        self._seen: tuple[Look, ...] = ()
        self._pending: tuple[Look, ...] | None = None
        self.watch(paths)

    def watch(self, paths: Iterable[str]) -> None:
        """Watch ``paths`` from now on, as they are now."""
        self.paths = tuple(dict.fromkeys(paths))[:MAX_WATCHED_FILES]
        self._seen = self._take()
        self._pending = None

    def _take(self) -> tuple[Look, ...]:
        return tuple(self._look(path) for path in self.paths)

    def poll(self) -> bool:
        """True once per change: the files differ from what was last reported (or
        first seen) and look the same as on the poll before."""
        now = self._take()
        if now == self._seen:
            self._pending = None
            return False
        if now != self._pending:
            self._pending = now  # changed: report it when it holds still
            return False
        self._seen = now
        self._pending = None
        return True


def tls_files(config: EdgePortConfig) -> list[str]:
    """The files of ``spec.securityContext`` (keyStore, trustStore) to watch."""
    security = config.security_context
    if security is None:
        return []
    return [path for path in (security.key_store, security.trust_store) if path]


WATCH_IDLE: Final = 5.0  # seconds between looks at whether a file watch is wanted now


class ConfigChanges:
    """Tells whoever waits that the running configuration was replaced (a reload)."""

    def __init__(self) -> None:
        self._replaced = trio.Event()

    def replaced(self) -> None:
        self._replaced.set()
        self._replaced = trio.Event()

    async def wait(self) -> None:
        """Until the next :meth:`replaced`."""
        await self._replaced.wait()


async def watch_tls_files(
    current: Callable[[], EdgePortConfig],
    reload: Callable[[str], Awaitable[object]],
    changes: ConfigChanges | None = None,
) -> None:
    """Call ``reload`` when a file of ``spec.securityContext`` changes on disk (a
    certificate renewed, a Kubernetes Secret updated), until cancelled; the files
    and the interval follow ``current()``, the configuration each reload applied.

    With nothing to watch, it waits for ``changes`` (the next reload), or without
    them looks again every ``WATCH_IDLE``: an edgeport with no TLS file, or with
    the watch off, does not wake for it."""
    watch = FileWatch(tls_files(current()))
    while True:
        interval = current().reload.watch_interval
        if interval <= 0 or not watch.paths:
            if changes is None:
                await trio.sleep(WATCH_IDLE)
            else:
                await changes.wait()
            watch.watch(tls_files(current()))
            continue
        await trio.sleep(interval)
        if watch.poll():
            logger.info("%s changed on disk", ", ".join(watch.paths))
            await reload("TLS files changed")
            watch.watch(tls_files(current()))
