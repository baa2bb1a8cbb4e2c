"""Producing to Kafka from the event loop: a 2xx answer only once the broker has the event.

One confluent-kafka Producer, configured as every producer is (`seaport.kafka.clients.PRODUCER`:
idempotent, `acks=all`), with the collector's own linger (`LINGER_MS`) and timeouts. The event
loop itself polls it for delivery reports, every millisecond while messages are in flight (every
100 ms otherwise, for the broker state `/healthz` shows): each report settles its request's
future right there. No thread: a polling thread took the GIL from the event loop for every
poll's reports (with a 0.5 ms switch interval, to keep that wait short) and handed them over
through the loop's wake-up pipe; the loop's own polls cost less (4,000 pixels/s: 220 instead of
240 µs of worker CPU per request, on two cores that also run the broker and the load).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from seaport.collector.events import Message
from seaport.kafka.clients import producer_config


class KafkaUnavailable(Exception):
    """The broker did not take the message in time: the client should retry later (503)."""


# How long the producer waits to fill a batch (the Kafka layer's 5 ms suits bulk producers): every
# answer waits for its delivery report, so each millisecond of it is a millisecond of every answer.
# Pixels at a fixed 5,000/s, two workers, two rounds: p50/p99 4.3/8.2 and 5.1/14.7 ms against
# 7.6/12.7 and 7.4/11.9 ms at 5 ms; a closed loop of pixels 10,540 and 9,519/s against 7,372 and
# 6,751/s. Batches of 20 pay for it in produce requests: 43,930 and 37,754 events/s against
# 60,328 and 58,260. 0 ms was worse for both (5,759-8,003 pixels/s, 27,152-27,972 events/s).
LINGER_MS = 1


def collector_producer_config(bootstrap: str, delivery_timeout_ms: int) -> dict[str, Any]:
    """The Kafka layer's producer configuration, with the collector's linger and timeouts."""
    return producer_config(
        bootstrap,
        **{
            "linger.ms": LINGER_MS,
            "message.timeout.ms": delivery_timeout_ms,  # after this, answer 503; the tracker retries
            "socket.connection.setup.timeout.ms": max(1000, min(delivery_timeout_ms, 5000)),  # librdkafka: >= 1000
            "reconnect.backoff.max.ms": 1000,
        },
    )


POLL_BUSY_S = 0.001  # while messages are in flight: at most this much added to an answer
POLL_IDLE_S = 0.1  # otherwise: error callbacks (brokers down or back) still arrive


class DeliverySink:
    """Sends messages and resolves an asyncio future per request when all of them are delivered."""

    def __init__(self, bootstrap: str, delivery_timeout_ms: int = 5000) -> None:
        self._config = collector_producer_config(bootstrap, delivery_timeout_ms)
        self._config["error_cb"] = self._on_error
        self._producer = Producer(self._config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.Handle | None = None
        self._busy = False  # the next poll is POLL_BUSY_S away
        self.in_flight = 0  # messages produced, not yet reported
        self.brokers_down = False
        # Called on the event loop per delivery report (for metrics): (topic, delivered?)
        self.on_delivered: Callable[[str, bool], None] = lambda topic, ok: None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start polling on `loop`, the loop `send` is awaited on."""
        self._loop = loop
        self._timer = loop.call_soon(self._poll)

    async def close(self, timeout: float = 10.0) -> None:
        """Stop polling, then deliver what is buffered (bounded by `timeout`), on the event loop."""
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self._producer) > 0 and loop.time() < deadline:
            self._producer.poll(0)
            await asyncio.sleep(0.01)
        self._producer.poll(0)

    def _on_error(self, error: KafkaError) -> None:
        # Only the state, never the message: error strings name hosts, not people.
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.brokers_down = True

    def _poll(self) -> None:
        try:
            self._producer.poll(0)  # runs the delivery callbacks, here on the event loop
        finally:  # a callback that raised must not end the polling
            self._busy = self.in_flight > 0
            assert self._loop is not None
            self._timer = self._loop.call_later(POLL_BUSY_S if self._busy else POLL_IDLE_S, self._poll)

    async def send(self, topic: str, messages: Sequence[Message]) -> None:
        """Produce every message; return once all are on the broker, else raise KafkaUnavailable."""
        assert self._loop is not None, "start() first"
        pending = _Pending(self, self._loop.create_future(), len(messages), topic)
        for message in messages:
            try:
                self._producer.produce(topic, message.value, message.key, on_delivery=pending.report)
            except (BufferError, KafkaException):
                pending.remaining -= 1  # never queued: no report will come for it
                pending.failed = True
            else:
                self.in_flight += 1
        if pending.remaining == 0:
            pending.settle_now()
        elif not self._busy:  # idle until now: poll soon, not in up to POLL_IDLE_S
            assert self._timer is not None
            self._timer.cancel()
            self._busy = True
            self._timer = self._loop.call_later(POLL_BUSY_S, self._poll)
        await pending.future


class _Pending:
    """One request's messages in flight: one future for all of them, settled on the event loop."""

    __slots__ = ("sink", "future", "remaining", "failed", "topic")

    def __init__(self, sink: DeliverySink, future: asyncio.Future[None], count: int, topic: str) -> None:
        self.sink, self.future, self.remaining, self.failed, self.topic = sink, future, count, False, topic

    def report(self, error: KafkaError | None, _message: Any) -> None:
        # Runs inside poll(), which only the event loop calls.
        sink = self.sink
        sink.in_flight -= 1
        sink.on_delivered(self.topic, error is None)
        if error is not None:
            self.failed = True
        else:
            sink.brokers_down = False
        self.remaining -= 1
        if self.remaining == 0:
            self.settle_now()

    def settle_now(self) -> None:
        if self.future.done():
            return
        if self.failed:
            self.future.set_exception(KafkaUnavailable("not delivered"))
        else:
            self.future.set_result(None)
