"""Events (contract §5): builders, the bus, the console publisher and a real NATS server."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import nats
import pytest
import trio
import trio_asyncio

from edgeport.config import PublisherConfig
from edgeport.events import (
    CONSOLE_PUBLISHER,
    NATS_PUBLISHER,
    Event,
    EventBus,
    call_ended,
    call_started,
    endpoint_registered,
    serve_event_publishers,
)
from edgeport.hangup import HangupCause, hangup_cause
from edgeport.metrics import EdgeportMetrics
from tests.support.nats import NatsServer, free_port, open_nats_server

STORE_POLLS = 100
STORE_POLL_INTERVAL = 0.05
NOW = datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC)


# --- builders -------------------------------------------------------------------------------


def test_call_started_body() -> None:
    event = call_started(
        "a84b4c76e66710",
        "sip:alice@sip.example.com",
        "sip:bob@sip.example.com",
        {"X-Room": "42", "User-Agent": "softphone", "x-tenant": "acme"},
        {"accessKeyId": "AC123", "direction": "inbound"},
        NOW,
    )
    assert event == Event(
        "call.started",
        {
            "accessKeyId": "AC123",
            "direction": "inbound",
            "callId": "a84b4c76e66710",
            "from": "sip:alice@sip.example.com",
            "to": "sip:bob@sip.example.com",
            "startTime": "2026-11-26T10:00:00.123Z",
            "extraHeaders": {"X-Room": "42", "x-tenant": "acme"},
        },
    )


def test_call_started_metadata_cannot_replace_contract_keys() -> None:
    event = call_started("real", "sip:a@h", "sip:b@h", {}, {"callId": "spoofed"}, NOW)
    assert event.body["callId"] == "real"


def test_call_ended_body() -> None:
    event = call_ended("a84b4c76e66710", 486, {"X-Reason": "busy"}, NOW)
    assert event == Event(
        "call.ended",
        {
            "callId": "a84b4c76e66710",
            "endTime": "2026-11-26T10:00:00.123Z",
            "hangupCause": "USER_BUSY",
            "extraHeaders": {"X-Reason": "busy"},
        },
    )


def test_endpoint_registered_body() -> None:
    event = endpoint_registered("sip:alice@sip.example.com", 3600, {}, NOW)
    assert event == Event(
        "endpoint.registered",
        {
            "aor": "sip:alice@sip.example.com",
            "registeredAt": "2026-11-26T10:00:00.123Z",
            "expires": 3600,
            "extraHeaders": {},
        },
    )


def test_timestamps_are_utc_with_milliseconds() -> None:
    paris = timezone(timedelta(hours=1))
    event = call_ended("c", 200, {}, datetime(2026, 1, 2, 3, 4, 5, 999, tzinfo=paris))
    assert event.body["endTime"] == "2026-01-02T02:04:05.000Z"


def test_event_json_is_compact() -> None:
    event = call_ended("c", 200, {"X-A": "é"}, NOW)
    assert event.to_json() == (
        '{"callId":"c","endTime":"2026-11-26T10:00:00.123Z",'
        '"hangupCause":"NORMAL_CLEARING","extraHeaders":{"X-A":"é"}}'
    )


@pytest.mark.parametrize(
    ("status_code", "cause"),
    [
        (200, HangupCause.NORMAL_CLEARING),
        (487, HangupCause.NORMAL_CLEARING),
        (401, HangupCause.CALL_REJECTED),
        (403, HangupCause.CALL_REJECTED),
        (407, HangupCause.CALL_REJECTED),
        (603, HangupCause.CALL_REJECTED),
        (404, HangupCause.UNALLOCATED),
        (485, HangupCause.UNALLOCATED),
        (604, HangupCause.UNALLOCATED),
        (408, HangupCause.NO_USER_RESPONSE),
        (420, HangupCause.NO_ROUTE_DESTINATION),
        (480, HangupCause.NO_ANSWER),
        (483, HangupCause.NO_ANSWER),
        (484, HangupCause.INVALID_NUMBER_FORMAT),
        (486, HangupCause.USER_BUSY),
        (600, HangupCause.USER_BUSY),
        (488, HangupCause.NOT_ACCEPTABLE_HERE),
        (503, HangupCause.SERVICE_UNAVAILABLE),
        (500, HangupCause.UNKNOWN),
        (302, HangupCause.UNKNOWN),
        (202, HangupCause.UNKNOWN),
        (0, HangupCause.UNKNOWN),
    ],
)
def test_hangup_cause(status_code: int, cause: HangupCause) -> None:
    assert hangup_cause(status_code) is cause


# --- the bus --------------------------------------------------------------------------------


def _ended(index: int) -> Event:
    return call_ended(f"call-{index}", 200, {}, NOW)


def test_overflow_drops_the_oldest_and_counts() -> None:
    metrics = EdgeportMetrics()
    bus = EventBus([NATS_PUBLISHER], max_queued=3, metrics=metrics)
    for index in range(5):
        bus.publish(_ended(index))
    stats = bus.stats()[NATS_PUBLISHER]
    assert (stats.published, stats.dropped, stats.depth) == (0, 2, 3)
    batch = bus.queue(NATS_PUBLISHER).take(10)
    assert [event.body["callId"] for event in batch] == ["call-2", "call-3", "call-4"]
    exposition = metrics.render()
    assert 'edgeport_events_dropped_total{publisher="nats"} 2\n' in exposition
    assert 'edgeport_event_queue_depth{publisher="nats"} 3\n' in exposition


def test_a_requeued_batch_goes_first_and_yields_to_no_newer_event() -> None:
    bus = EventBus([NATS_PUBLISHER], max_queued=3, metrics=EdgeportMetrics())
    queue = bus.queue(NATS_PUBLISHER)
    for index in range(3):
        bus.publish(_ended(index))
    assert len(queue.take(2)) == 2
    for index in range(3, 5):
        bus.publish(_ended(index))  # room for 3: call-2, call-3, call-4 queued
    queue.requeue()  # call-0 and call-1 are older than everything queued: dropped
    assert [event.body["callId"] for event in queue.take(10)] == ["call-2", "call-3", "call-4"]
    assert bus.stats()[NATS_PUBLISHER].dropped == 2


def test_publish_without_publishers_does_nothing() -> None:
    bus = EventBus()
    bus.publish(_ended(0))
    assert bus.stats() == {}
    assert bus.pending() == 0


def test_from_config_enables_the_configured_publishers() -> None:
    config = PublisherConfig(console_enabled=True, nats_enabled=True)
    bus = EventBus.from_config(config, metrics=EdgeportMetrics())
    assert bus.publishers == (CONSOLE_PUBLISHER, NATS_PUBLISHER)


async def test_console_publisher_logs_one_line_per_event(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edgeport.events")
    config = PublisherConfig(console_enabled=True)
    bus = EventBus.from_config(config, metrics=EdgeportMetrics())
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_event_publishers, config, bus)
            bus.publish(call_ended("c1", 404, {}, NOW))
            bus.publish(endpoint_registered("sip:alice@example.com", 60, {}, NOW))
            await bus.drain()
            nursery.cancel_scope.cancel()
    lines = [
        record.getMessage()
        for record in caplog.records
        if record.name == "edgeport.events" and record.levelno == logging.INFO
    ]
    assert lines == [
        'event call.ended {"callId":"c1","endTime":"2026-11-26T10:00:00.123Z",'
        '"hangupCause":"UNALLOCATED","extraHeaders":{}}',
        'event endpoint.registered {"aor":"sip:alice@example.com",'
        '"registeredAt":"2026-11-26T10:00:00.123Z","expires":60,"extraHeaders":{}}',
    ]
    assert bus.stats()[CONSOLE_PUBLISHER].published == 2


# --- NATS -----------------------------------------------------------------------------------

aio = trio_asyncio.aio_as_trio
STREAM = "EVENTS"


async def _wait_for_log(caplog: pytest.LogCaptureFixture, level: int, fragment: str) -> None:
    while not any(
        record.levelno == level and fragment in record.getMessage() for record in caplog.records
    ):
        await trio.sleep(0.05)


async def _create_stream(url: str) -> None:
    """A JetStream stream that stores every routr.* event the server receives."""
    client = await aio(nats.connect)(url)
    try:
        await aio(client.jetstream().add_stream)(name=STREAM, subjects=["routr.>"])
    finally:
        await aio(client.close)()


async def _stored_events(url: str) -> list[tuple[str, dict[str, object]]]:
    client = await aio(nats.connect)(url)
    try:
        jetstream = client.jetstream()
        info = await aio(jetstream.stream_info)(STREAM)
        stored = []
        for seq in range(1, info.state.messages + 1):
            message = await aio(jetstream.get_msg)(STREAM, seq)
            stored.append((message.subject, json.loads(message.data)))
        return stored
    finally:
        await aio(client.close)()


async def _wait_until_stored(url: str, count: int) -> None:
    """Poll until the stream holds `count` events.

    A confirmed publish means the server has read the event; JetStream stores it
    a moment later. Restarting the server in between would test JetStream, not
    the publisher, so restarts and final reads wait for the store first.
    """
    client = await aio(nats.connect)(url)
    try:
        jetstream = client.jetstream()
        for _ in range(STORE_POLLS):
            info = await aio(jetstream.stream_info)(STREAM)
            if info.state.messages >= count:
                return
            await trio.sleep(STORE_POLL_INTERVAL)
        # Not there in time: the caller's comparison of the stored events says what is missing.
    finally:
        await aio(client.close)()


async def test_nats_publisher_sends_each_event_on_its_subject() -> None:
    config = PublisherConfig(nats_enabled=True, nats_subject="edge")
    bus = EventBus.from_config(config, metrics=EdgeportMetrics())
    events = [
        call_started("c1", "sip:alice@h", "sip:bob@h", {"X-Id": "7"}, {"tenant": "acme"}, NOW),
        endpoint_registered("sip:alice@h", 300, {}, NOW),
        call_ended("c1", 603, {}, NOW),
    ]
    with trio.fail_after(30):
        async with trio_asyncio.open_loop(), open_nats_server() as server:
            subscriber = await aio(nats.connect)(server.url)
            subscription = await aio(subscriber.subscribe)("edge.>")
            await aio(subscriber.flush)()
            config = PublisherConfig(nats_enabled=True, nats_url=server.url, nats_subject="edge")
            async with trio.open_nursery() as nursery:
                await nursery.start(serve_event_publishers, config, bus)
                for event in events:
                    bus.publish(event)
                received = [await aio(subscription.next_msg)(timeout=10) for _ in events]
                await bus.drain()
                nursery.cancel_scope.cancel()
            await aio(subscriber.close)()
    assert [(message.subject, json.loads(message.data)) for message in received] == [
        (f"edge.{event.name}", event.body) for event in events
    ]
    assert bus.stats()[NATS_PUBLISHER].published == 3


async def test_nats_down_at_start_warns_queues_then_delivers(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG, logger="edgeport.events")
    # JetStream keeps what the server receives, so the check does not race the
    # publisher's reconnection; the stream is created in a first run.
    server = NatsServer(free_port(), ["-js", "-sd", str(tmp_path)])
    config = PublisherConfig(nats_enabled=True, nats_url=server.url)
    bus = EventBus.from_config(config, metrics=EdgeportMetrics())
    events = [call_ended(f"c{index}", 200, {}, NOW) for index in range(3)]
    with trio.fail_after(60):
        async with trio_asyncio.open_loop():
            await server.start()
            await _create_stream(server.url)
            await server.stop()
            try:
                async with trio.open_nursery() as nursery:
                    await nursery.start(serve_event_publishers, config, bus)
                    for event in events:
                        bus.publish(event)
                    await _wait_for_log(caplog, logging.WARNING, "is unreachable")
                    assert bus.stats()[NATS_PUBLISHER].depth == 3
                    await server.start()
                    await bus.drain()
                    nursery.cancel_scope.cancel()
                await _wait_until_stored(server.url, len(events))
                stored = await _stored_events(server.url)
            finally:
                await server.stop()
    assert stored == [("routr.call.ended", event.body) for event in events]


async def test_nats_restart_mid_stream_loses_nothing(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG, logger="edgeport.events")
    server = NatsServer(free_port(), ["-js", "-sd", str(tmp_path)])
    config = PublisherConfig(nats_enabled=True, nats_url=server.url)
    bus = EventBus.from_config(config, metrics=EdgeportMetrics())
    events = [call_ended(f"c{index}", 200, {}, NOW) for index in range(4)]
    with trio.fail_after(60):
        async with trio_asyncio.open_loop():
            await server.start()
            try:
                await _create_stream(server.url)
                async with trio.open_nursery() as nursery:
                    await nursery.start(serve_event_publishers, config, bus)
                    bus.publish(events[0])
                    await bus.drain()
                    await _wait_until_stored(server.url, 1)
                    # A quick restart: nats-py's own reconnection bridges it.
                    await server.restart()
                    bus.publish(events[1])
                    await bus.drain()
                    await _wait_until_stored(server.url, 2)
                    # A long outage: the client gives up, the publisher connects again.
                    await server.stop()
                    bus.publish(events[2])
                    await _wait_for_log(caplog, logging.WARNING, "gave up reconnecting")
                    await _wait_for_log(caplog, logging.WARNING, "is unreachable")
                    await server.start()
                    bus.publish(events[3])
                    await bus.drain()
                    nursery.cancel_scope.cancel()
                await _wait_until_stored(server.url, len(events))
                stored = await _stored_events(server.url)
            finally:
                await server.stop()
    assert stored == [("routr.call.ended", event.body) for event in events]
    assert bus.stats()[NATS_PUBLISHER].published == 4


async def test_nats_overflow_delivers_the_newest() -> None:
    bus = EventBus([NATS_PUBLISHER], max_queued=2, metrics=EdgeportMetrics())
    for index in range(5):
        bus.publish(_ended(index))
    with trio.fail_after(30):
        async with trio_asyncio.open_loop(), open_nats_server() as server:
            subscriber = await aio(nats.connect)(server.url)
            subscription = await aio(subscriber.subscribe)("routr.>")
            await aio(subscriber.flush)()
            config = PublisherConfig(nats_enabled=True, nats_url=server.url)
            async with trio.open_nursery() as nursery:
                await nursery.start(serve_event_publishers, config, bus)
                received = [await aio(subscription.next_msg)(timeout=10) for _ in range(2)]
                await bus.drain()
                nursery.cancel_scope.cancel()
            await aio(subscriber.close)()
    assert [json.loads(message.data)["callId"] for message in received] == ["call-3", "call-4"]
    stats = bus.stats()[NATS_PUBLISHER]
    assert (stats.published, stats.dropped, stats.depth) == (2, 3, 0)


async def test_an_event_too_large_for_nats_is_dropped_not_retried(tmp_path: Path) -> None:
    server_config = tmp_path / "nats.conf"
    server_config.write_text("max_payload: 512\n")
    bus = EventBus([NATS_PUBLISHER], metrics=EdgeportMetrics())
    bus.publish(call_started("big", "sip:a@h", "sip:b@h", {}, {"blob": "x" * 1000}, NOW))
    bus.publish(_ended(1))
    with trio.fail_after(30):
        async with (
            trio_asyncio.open_loop(),
            open_nats_server(extra_args=["-c", str(server_config)]) as server,
        ):
            subscriber = await aio(nats.connect)(server.url)
            subscription = await aio(subscriber.subscribe)("routr.>")
            await aio(subscriber.flush)()
            config = PublisherConfig(nats_enabled=True, nats_url=server.url)
            async with trio.open_nursery() as nursery:
                await nursery.start(serve_event_publishers, config, bus)
                received = await aio(subscription.next_msg)(timeout=10)
                await bus.drain()
                nursery.cancel_scope.cancel()
            await aio(subscriber.close)()
    assert json.loads(received.data)["callId"] == "call-1"
    stats = bus.stats()[NATS_PUBLISHER]
    assert (stats.published, stats.dropped, stats.depth) == (1, 1, 0)


async def test_the_nats_publisher_opens_its_own_asyncio_loop_when_none_is_open() -> None:
    bus = EventBus.from_config(PublisherConfig(nats_enabled=True), metrics=EdgeportMetrics())
    events = [call_ended(f"own-loop-{index}", 200, {}, NOW) for index in range(2)]
    assert trio_asyncio.current_loop.get(None) is None
    with trio.fail_after(30):
        async with open_nats_server() as server:
            config = PublisherConfig(nats_enabled=True, nats_url=server.url)
            async with trio.open_nursery() as nursery:
                await nursery.start(serve_event_publishers, config, bus)
                for event in events:
                    bus.publish(event)
                await bus.drain()  # confirmed by the server (PING/PONG), not only sent
                nursery.cancel_scope.cancel()
    assert bus.stats()[NATS_PUBLISHER].published == 2
    assert trio_asyncio.current_loop.get(None) is None  # the loop ended with the publisher


async def test_without_nats_no_asyncio_loop_is_needed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edgeport.events")
    bus = EventBus.from_config(PublisherConfig(console_enabled=True), metrics=EdgeportMetrics())
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_event_publishers, PublisherConfig(console_enabled=True), bus)
            bus.publish(call_ended("console-1", 200, {}, NOW))
            await bus.drain()
            nursery.cancel_scope.cancel()
    assert "event call.ended" in caplog.text
