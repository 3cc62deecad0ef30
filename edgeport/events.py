"""Events for operators (contract §5): builders, the event bus, console and NATS publishers.

The proxy builds an :class:`Event` with one of the pure builders and hands it
to :meth:`EventBus.publish`, which never blocks and never raises: SIP handling
must not wait on a slow or absent NATS. Each enabled publisher has its own
bounded queue; when a queue is full the oldest event is dropped and counted.

One task per publisher drains its queue. The console publisher writes one log
line per event. The NATS publisher is the only place here that crosses into
asyncio (nats-py, through ``trio_asyncio.aio_as_trio``), and the only module
of edgeport that does: :func:`serve_event_publishers` opens the trio-asyncio
loop when the NATS publisher is enabled, and only then. It publishes in
batches and confirms each batch with a PING/PONG round trip before counting
it as published, so a batch written to a connection that was dying is sent
again after the reconnect: delivery is at least once. nats-py reconnects by
itself after a short outage; when it gives up, this module connects again
with a bounded backoff, while events keep queueing (bounded).
"""

from __future__ import annotations

import collections
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import nats
import trio
import trio_asyncio

from edgeport.hangup import hangup_cause
from edgeport.metrics import METRICS, EdgeportMetrics

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from nats.aio.client import Client as NatsClient

    from edgeport.config import PublisherConfig

logger = logging.getLogger(__name__)

CALL_STARTED: Final = "call.started"
CALL_ENDED: Final = "call.ended"
ENDPOINT_REGISTERED: Final = "endpoint.registered"

CONSOLE_PUBLISHER: Final = "console"
NATS_PUBLISHER: Final = "nats"

# An event is a small dict (a few hundred bytes): 10,000 of them per publisher
# is a few MB, and minutes of call events while NATS is away.
MAX_QUEUED_EVENTS: Final = 10_000
MAX_BATCH_EVENTS: Final = 256  # events published per NATS round trip or per console pass

NATS_BACKOFF_INITIAL: Final = 0.5  # seconds before the first new connection attempt
NATS_BACKOFF_MAX: Final = 5.0  # seconds, the cap of the doubling backoff
NATS_CONNECT_TIMEOUT: Final = 2  # seconds per TCP connection attempt (nats-py takes an int)
NATS_RECONNECT_WAIT: Final = 0.5  # seconds between nats-py's own reconnection attempts
# nats-py's own attempts after a disconnection (and on the first connection,
# one more): brief restarts are bridged by the client, longer outages by the
# backoff loop here.
NATS_CLIENT_RECONNECT_ATTEMPTS: Final = 2
NATS_FLUSH_TIMEOUT: Final = 2  # seconds to confirm a batch with PING/PONG (nats-py takes an int)
NATS_CLOSE_TIMEOUT: Final = 2.0  # seconds for a graceful close of the client
NATS_RETRY_DELAY: Final = 0.1  # seconds before sending a batch again after a failure
NATS_STATE_WAIT_MAX: Final = 1.0  # seconds between looks at the client while it reconnects


@dataclass(frozen=True, slots=True)
class Event:
    """One event: its name (``call.started``...) and its JSON body."""

    name: str
    body: dict[str, object]

    def to_json(self) -> str:
        """The body as compact JSON, as both publishers send it."""
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False, default=str)


def format_timestamp(now: datetime) -> str:
    """UTC ISO-8601 with milliseconds and ``Z``: ``2026-11-26T10:00:00.123Z``.

    A naive datetime is taken as UTC.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    utc = now.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def sip_aor(user: str | None, host: str) -> str:
    """``sip:user@host`` (``sip:host`` without a user), the form events carry."""
    return f"sip:{user}@{host}" if user else f"sip:{host}"


def x_headers(extensions: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The ``X-`` extensions of a processor reply as an object; a later repeat wins."""
    return {name: value for name, value in extensions if name[:2].lower() == "x-"}


def call_started(
    call_id: str,
    from_uri: str,
    to_uri: str,
    extra_headers: Mapping[str, str],
    metadata: Mapping[str, str],
    now: datetime,
) -> Event:
    """``call.started``: an INVITE was forwarded.

    Every key of the reply's metadata joins the body; the contract keys win
    over a metadata key of the same name.
    """
    body: dict[str, object] = dict(metadata)
    body.update(
        {
            "callId": call_id,
            "from": from_uri,
            "to": to_uri,
            "startTime": format_timestamp(now),
            "extraHeaders": x_headers(extra_headers.items()),
        }
    )
    return Event(CALL_STARTED, body)


def call_ended(
    call_id: str, status_code: int, extra_headers: Mapping[str, str], now: datetime
) -> Event:
    """``call.ended``, with the hangup cause of ``status_code`` (200 for a forwarded CANCEL)."""
    return Event(
        CALL_ENDED,
        {
            "callId": call_id,
            "endTime": format_timestamp(now),
            "hangupCause": hangup_cause(status_code).value,
            "extraHeaders": x_headers(extra_headers.items()),
        },
    )


def endpoint_registered(
    aor: str, expires: int, extra_headers: Mapping[str, str], now: datetime
) -> Event:
    """``endpoint.registered``: the processor answered a REGISTER with 200."""
    return Event(
        ENDPOINT_REGISTERED,
        {
            "aor": aor,
            "registeredAt": format_timestamp(now),
            "expires": expires,
            "extraHeaders": x_headers(extra_headers.items()),
        },
    )


@dataclass(frozen=True, slots=True)
class PublisherStats:
    published: int
    dropped: int
    depth: int  # queued plus taken but not yet confirmed


class EventQueue:
    """One publisher's bounded queue: drop-oldest on overflow, take/confirm/requeue batches."""

    def __init__(self, publisher: str, max_queued: int, metrics: EdgeportMetrics) -> None:
        self.publisher = publisher
        self._events: collections.deque[Event] = collections.deque()
        self.max_queued = max_queued
        self._in_flight: list[Event] = []
        self.published = 0
        self.dropped = 0
        self._changed = trio.lowlevel.ParkingLot()
        self._published_total = metrics.events_published.labels(publisher)
        self._dropped_total = metrics.events_dropped.labels(publisher)
        metrics.event_queue_depth.labels(publisher).set_function(lambda: self.depth)

    @property
    def depth(self) -> int:
        return len(self._events) + len(self._in_flight)

    def stats(self) -> PublisherStats:
        return PublisherStats(self.published, self.dropped, self.depth)

    def put(self, event: Event) -> None:
        if len(self._events) >= self.max_queued:
            self._events.popleft()
            self._count_dropped(1)
        self._events.append(event)
        self._changed.unpark_all()

    def take(self, limit: int) -> list[Event]:
        """Move up to ``limit`` of the oldest events in flight; confirm or requeue them next."""
        if self._in_flight:
            raise RuntimeError("the previous batch is neither confirmed nor requeued")
        count = min(limit, len(self._events))
        self._in_flight = [self._events.popleft() for _ in range(count)]
        return self._in_flight

    def confirm(self, undeliverable: int = 0) -> None:
        """The batch in flight is done: published, but for ``undeliverable`` dropped ones."""
        count = len(self._in_flight) - undeliverable
        self._in_flight = []
        self.published += count
        self._published_total.inc(count)
        self._count_dropped(undeliverable)
        self._changed.unpark_all()

    def requeue(self) -> None:
        """Put the batch in flight back at the head; the oldest go first if there is no room."""
        batch, self._in_flight = self._in_flight, []
        room = max(0, self.max_queued - len(self._events))
        kept = batch[len(batch) - room :] if room < len(batch) else batch
        self._count_dropped(len(batch) - len(kept))
        self._events.extendleft(reversed(kept))

    def _count_dropped(self, count: int) -> None:
        if count:
            self.dropped += count
            self._dropped_total.inc(count)

    async def wait_nonempty(self) -> None:
        while not self._events:
            await self._changed.park()

    async def wait_empty(self) -> None:
        while self.depth:
            await self._changed.park()


class EventBus:
    """Fans each event out to one bounded queue per enabled publisher."""

    def __init__(
        self,
        publishers: Iterable[str] = (),
        *,
        max_queued: int = MAX_QUEUED_EVENTS,
        metrics: EdgeportMetrics = METRICS,
    ) -> None:
        if max_queued < 1:
            raise ValueError("max_queued must be at least 1")
        self._queues: dict[str, EventQueue] = {}
        for publisher in publishers:
            if publisher not in (CONSOLE_PUBLISHER, NATS_PUBLISHER):
                raise ValueError(f"unknown event publisher {publisher!r}")
            self._queues[publisher] = EventQueue(publisher, max_queued, metrics)

    @classmethod
    def from_config(
        cls,
        config: PublisherConfig,
        *,
        max_queued: int = MAX_QUEUED_EVENTS,
        metrics: EdgeportMetrics = METRICS,
    ) -> EventBus:
        publishers = [
            name
            for name, enabled in (
                (CONSOLE_PUBLISHER, config.console_enabled),
                (NATS_PUBLISHER, config.nats_enabled),
            )
            if enabled
        ]
        return cls(publishers, max_queued=max_queued, metrics=metrics)

    @property
    def publishers(self) -> tuple[str, ...]:
        return tuple(self._queues)

    @property
    def enabled(self) -> bool:
        """Whether any publisher is enabled: without one, events need not be built."""
        return bool(self._queues)

    def publish(self, event: Event) -> None:
        """Queue ``event`` for every publisher; never blocks, never raises."""
        for queue in self._queues.values():
            queue.put(event)

    def stats(self) -> dict[str, PublisherStats]:
        return {name: queue.stats() for name, queue in self._queues.items()}

    def queue(self, publisher: str) -> EventQueue:
        return self._queues[publisher]

    def pending(self) -> int:
        """Events queued or in flight, over every publisher."""
        return sum(queue.depth for queue in self._queues.values())

    async def drain(self) -> None:
        """Wait until every queued event is published.

        For a graceful shutdown: call it under a deadline while the publishers
        still run, then cancel them; ``pending()`` tells what was left::

            with trio.move_on_after(drain_timeout):
                await bus.drain()
        """
        for queue in self._queues.values():
            await queue.wait_empty()


async def serve_event_publishers(
    config: PublisherConfig,
    bus: EventBus,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one task per publisher of ``bus`` until cancelled.

    ``config`` gives the NATS URL and subject prefix. With the NATS publisher
    enabled, this opens the trio-asyncio loop nats-py runs on (unless the
    caller runs inside one already); without it, no asyncio loop exists.
    """
    if NATS_PUBLISHER in bus.publishers:
        prefix = config.nats_subject
        if not prefix or any(char.isspace() for char in prefix):
            raise ValueError(f"invalid NATS subject prefix {prefix!r}")
        if trio_asyncio.current_loop.get(None) is None:
            async with trio_asyncio.open_loop():
                await _serve_publishers(config, bus, task_status)
            return
    await _serve_publishers(config, bus, task_status)


async def _serve_publishers(
    config: PublisherConfig, bus: EventBus, task_status: trio.TaskStatus[None]
) -> None:
    async with trio.open_nursery() as nursery:
        for publisher in bus.publishers:
            queue = bus.queue(publisher)
            if publisher == CONSOLE_PUBLISHER:
                nursery.start_soon(_serve_console, queue, name="console event publisher")
            else:
                nats_publisher = _NatsPublisher(config.nats_url, config.nats_subject, queue)
                nursery.start_soon(nats_publisher.serve, name="NATS event publisher")
        task_status.started()
        await trio.sleep_forever()


async def _serve_console(queue: EventQueue) -> None:
    while True:
        await queue.wait_nonempty()
        for event in queue.take(MAX_BATCH_EVENTS):
            logger.info("event %s %s", event.name, event.to_json())
        queue.confirm()
        await trio.lowlevel.checkpoint()


async def _publish_confirmed(client: NatsClient, messages: list[tuple[str, bytes]]) -> None:
    """asyncio side: publish a batch, then PING/PONG so the server has surely read it."""
    for subject, payload in messages:
        await client.publish(subject, payload)
    await client.flush(NATS_FLUSH_TIMEOUT)


class _NatsPublisher:
    def __init__(self, url: str, subject_prefix: str, queue: EventQueue) -> None:
        self._url = url
        self._subject_prefix = subject_prefix
        self._queue = queue
        self._closing = False
        self._connected = False
        self._last_error: Exception | None = None
        self._state_changed = trio.lowlevel.ParkingLot()

    async def serve(self) -> None:
        backoff = NATS_BACKOFF_INITIAL
        outage_reported = False
        while True:
            try:
                client = await trio_asyncio.aio_as_trio(self._connect)()
            except Exception as exc:
                # nats-py ends with NoServersError; the error before it says why.
                reason = self._last_error or exc
                if outage_reported:
                    logger.debug("NATS at %s still unreachable: %r", self._url, reason)
                else:
                    outage_reported = True
                    logger.warning(
                        "NATS at %s is unreachable (%r); queueing events (at most %d) and retrying",
                        self._url,
                        reason,
                        self._queue.max_queued,
                    )
                await trio.sleep(backoff)
                backoff = min(backoff * 2, NATS_BACKOFF_MAX)
                continue
            logger.info("publishing events to NATS at %s", self._url)
            self._connected = True
            outage_reported = False
            backoff = NATS_BACKOFF_INITIAL
            try:
                await self._pump(client)
            finally:
                await self._close(client)
            logger.warning("NATS client for %s gave up reconnecting; connecting again", self._url)

    async def _connect(self) -> NatsClient:
        options: dict[str, Any] = {
            "name": "edgeport",
            "allow_reconnect": True,
            "max_reconnect_attempts": NATS_CLIENT_RECONNECT_ATTEMPTS,
            "reconnect_time_wait": NATS_RECONNECT_WAIT,
            "connect_timeout": NATS_CONNECT_TIMEOUT,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
            "closed_cb": self._on_closed,
        }
        self._last_error = None
        client: NatsClient = await nats.connect(self._url, **options)
        return client

    async def _pump(self, client: NatsClient) -> None:
        """Publish batches until the client is closed (nats-py gave up reconnecting)."""
        while True:
            await self._queue.wait_nonempty()
            while client.is_reconnecting:
                # nats-py is reconnecting by itself; its callbacks wake us.
                with trio.move_on_after(NATS_STATE_WAIT_MAX):
                    await self._state_changed.park()
            if client.is_closed:
                return
            batch = self._queue.take(MAX_BATCH_EVENTS)
            messages = []
            for event in batch:
                payload = event.to_json().encode()
                if len(payload) > client.max_payload:
                    # Sending it again would fail again and hold up every later event.
                    logger.warning(
                        "dropping %s event of %d bytes: NATS takes at most %d",
                        event.name,
                        len(payload),
                        client.max_payload,
                    )
                    continue
                messages.append((f"{self._subject_prefix}.{event.name}", payload))
            try:
                await trio_asyncio.aio_as_trio(_publish_confirmed)(client, messages)
            except BaseException as exc:
                # Not confirmed: the batch goes back to the head of the queue, and
                # the exception (trio.Cancelled among them) is not swallowed
                # unless it is an ordinary publishing failure.
                self._queue.requeue()
                if not isinstance(exc, Exception):
                    raise
                logger.debug("publishing %d events to NATS failed: %r", len(batch), exc)
                await trio.sleep(NATS_RETRY_DELAY)
                continue
            self._queue.confirm(undeliverable=len(batch) - len(messages))

    async def _close(self, client: NatsClient) -> None:
        self._closing = True
        try:
            with trio.CancelScope(shield=True), trio.move_on_after(NATS_CLOSE_TIMEOUT):
                await trio_asyncio.aio_as_trio(client.close)()
        except Exception as exc:
            logger.debug("closing the NATS client failed: %r", exc)
        finally:
            self._closing = False

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = exc
        logger.debug("NATS client error: %r", exc)

    async def _on_disconnected(self) -> None:
        if self._connected and not self._closing:
            logger.warning("lost the connection to NATS at %s; reconnecting", self._url)
        self._connected = False

    async def _on_reconnected(self) -> None:
        self._connected = True
        logger.info("reconnected to NATS at %s", self._url)
        self._state_changed.unpark_all()

    async def _on_closed(self) -> None:
        self._state_changed.unpark_all()
