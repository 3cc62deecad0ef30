"""Noticing a change of the TLS files: in place, replaced, and a Kubernetes symlink swap;
no wake-up while there is nothing to watch."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import trio
import trio.testing

from edgeport.config import EdgePortConfig, SecurityContext, default_config
from edgeport.reload.watch import ConfigChanges, FileWatch, look_at, watch_tls_files
from tests.support.kubernetes_secret import FILE_NAME, update_secret


def kubernetes_secret(root: Path, version: str, content: bytes) -> Path:
    """A Secret volume as the kubelet writes it, at ``version``; the keystore's name."""
    update_secret(root, version, lambda path: path.write_bytes(content))
    return root / FILE_NAME


def test_a_kubernetes_secret_update_is_seen_through_its_symlinks(tmp_path: Path) -> None:
    keystore = kubernetes_secret(tmp_path, "2026_01", b"first certificate")
    watch = FileWatch([str(keystore)])
    assert not watch.poll()
    link_before = look_at(str(keystore))[0]
    kubernetes_secret(tmp_path, "2026_02", b"next certificate")  # same size, new file
    # The name is still the same link; only what it resolves to is new.
    assert look_at(str(keystore))[0] == link_before
    assert not watch.poll()  # changed: reported once it holds still for one poll
    assert watch.poll()
    assert not watch.poll()  # once per change


def test_a_file_rewritten_in_place_is_a_change(tmp_path: Path) -> None:
    keystore = tmp_path / "edge.pem"
    keystore.write_bytes(b"a" * 100)
    watch = FileWatch([str(keystore)])
    keystore.write_bytes(b"b" * 101)
    assert [watch.poll(), watch.poll()] == [False, True]


def test_a_file_still_being_written_is_reported_when_it_holds_still(tmp_path: Path) -> None:
    keystore = tmp_path / "edge.pem"
    keystore.write_bytes(b"a" * 100)
    watch = FileWatch([str(keystore)])
    keystore.write_bytes(b"b" * 50)  # the writer's first part
    assert not watch.poll()
    keystore.write_bytes(b"b" * 150)  # and the rest, before the next poll
    assert not watch.poll()
    assert watch.poll()


def test_nothing_changed_is_never_reported(tmp_path: Path) -> None:
    keystore = tmp_path / "edge.pem"
    keystore.write_bytes(b"a")
    watch = FileWatch([str(keystore), str(tmp_path / "missing.pem")])
    assert [watch.poll() for _ in range(5)] == [False] * 5


def test_a_file_that_appears_or_goes_is_a_change(tmp_path: Path) -> None:
    keystore = tmp_path / "edge.pem"
    watch = FileWatch([str(keystore)])
    keystore.write_bytes(b"now here")
    assert [watch.poll(), watch.poll()] == [False, True]
    keystore.unlink()
    assert [watch.poll(), watch.poll()] == [False, True]


def tls_config(key_store: str | None) -> EdgePortConfig:
    config = default_config()
    if key_store is None:
        return config
    return dataclasses.replace(config, security_context=SecurityContext(key_store=key_store))


async def test_with_no_file_to_watch_the_watch_sleeps_until_a_reload_names_one(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    key_store = tmp_path / "tls.p12"
    key_store.write_bytes(b"one")
    config = tls_config(None)
    changes = ConfigChanges()
    reloads: list[str] = []

    async def reload(why: str) -> None:
        reloads.append(why)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_tls_files, lambda: config, reload, changes)
        await trio.testing.wait_all_tasks_blocked()
        # Nothing to watch: no timer, the watch waits for the next configuration.
        statistics = trio.lowlevel.current_statistics()
        assert statistics.seconds_to_next_deadline == math.inf
        config = tls_config(str(key_store))
        changes.replaced()
        await trio.sleep(1)
        key_store.write_bytes(b"two: renewed")
        await trio.sleep(config.reload.watch_interval * 3)
        assert reloads == ["TLS files changed"]
        nursery.cancel_scope.cancel()
