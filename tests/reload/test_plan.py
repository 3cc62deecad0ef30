"""What a reload applies live and what it names as waiting for a restart, sans IO."""

from __future__ import annotations

import dataclasses

from edgeport.config import (
    AccessControlConfig,
    ConnectionLimits,
    ProcessorConfig,
    TransportConfig,
    UnknownMethodAction,
)
from edgeport.reload.plan import after_reload, restart_keys
from edgeport.sip.transport import Transport
from tests.e2e.conftest import make_config


def test_the_settings_applied_live_need_no_restart() -> None:
    running = make_config("10.0.0.1:51901")
    loaded = dataclasses.replace(
        running,
        methods=("REGISTER", "INVITE"),
        unknown_method_action=UnknownMethodAction.RESPOND,
        external_addrs=("203.0.113.7",),
        localnets=("10.0.0.0/8",),
        access_control=AccessControlConfig(deny=("192.0.2.0/24",)),
        processor=ProcessorConfig("10.0.0.2:51901", timeout=9.0),
    )
    assert restart_keys(running, loaded) == []
    assert after_reload(running, loaded) == loaded


def test_a_new_port_a_bind_address_and_a_table_size_wait_for_a_restart() -> None:
    running = make_config()
    loaded = dataclasses.replace(
        running,
        transports=(TransportConfig(Transport.UDP, 5099, "127.0.0.1"),),
        bind_addr="0.0.0.0",
        connections=ConnectionLimits(max_connections=5),
        workers=4,
        access_control=AccessControlConfig(deny=("192.0.2.0/24",)),
    )
    assert restart_keys(running, loaded) == [
        "spec.transport",
        "spec.bindAddr",
        "spec.connections.max",
        "spec.workers",
    ]
    after = after_reload(running, loaded)
    # The running listeners, bind address, limits and processes stay what they are, so
    # the next reload names them again; the access list is the new one.
    assert after.transports == running.transports
    assert after.bind_addr == running.bind_addr
    assert after.connections == running.connections
    assert after.workers == running.workers
    assert after.access_control == loaded.access_control


def test_moving_to_or_from_the_built_in_processor_waits_for_a_restart() -> None:
    builtin = make_config("builtin")
    remote = make_config("10.0.0.1:51901")
    assert restart_keys(builtin, remote) == ["spec.processor.addr"]
    assert restart_keys(remote, builtin) == ["spec.processor.addr"]
    assert after_reload(builtin, remote).processor == builtin.processor
