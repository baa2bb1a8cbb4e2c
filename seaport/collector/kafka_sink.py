"""Producing to Kafka from the event loop: a 2xx answer only once the broker has the event.

One confluent-kafka Producer, configured as every producer is (`seaport.kafka.clients.PRODUCER`:
idempotent, `acks=all`), with the collector's timeouts. A background thread polls it for
delivery reports and hands each poll's reports to the event loop in one call, so a request
can simply `await` its own delivery without a thread hop per event.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from seaport.collector.events import Message
from seaport.kafka.clients import producer_config


class KafkaUnavailable(Exception):
    """The broker did not take the message in time: the client should retry later (503)."""


def collector_producer_config(bootstrap: str, delivery_timeout_ms: int) -> dict[str, Any]:
    """The Kafka layer's producer configuration, with the collector's timeouts."""
    return producer_config(
        bootstrap,
        **{
            "message.timeout.ms": delivery_timeout_ms,  # after this, answer 503; the tracker retries
            "socket.connection.setup.timeout.ms": max(1000, min(delivery_timeout_ms, 5000)),  # librdkafka: >= 1000
            "reconnect.backoff.max.ms": 1000,
        },
    )


class DeliverySink:
    """Sends messages and resolves an asyncio future per request when all of them are delivered."""

    def __init__(self, bootstrap: str, delivery_timeout_ms: int = 5000) -> None:
        self._config = collector_producer_config(bootstrap, delivery_timeout_ms)
        self._config["error_cb"] = self._on_error
        self._producer = Producer(self._config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reports: list[tuple[_Pending, KafkaError | None]] = []
        self.brokers_down = False
        # Called on the event loop per delivery report (for metrics): (topic, delivered?)
        self.on_delivered: Callable[[str, bool], None] = lambda topic, ok: None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._poll_forever, name="kafka-delivery", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is buffered (bounded by `timeout`), then stop the poll thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._producer.flush(timeout)

    def _on_error(self, error: KafkaError) -> None:
        # Only the state, never the message: error strings name hosts, not people.
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.brokers_down = True

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)
            if self._reports:
                # Copy and clear in place: every _Pending holds this very list. Reports are appended
                # only inside poll(), on this thread, so nothing is lost between the two calls.
                reports = self._reports.copy()
                self._reports.clear()
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._settle, reports)

    async def send(self, topic: str, messages: Sequence[Message]) -> None:
        """Produce every message; return once all are on the broker, else raise KafkaUnavailable."""
        assert self._loop is not None, "start() first"
        pending = _Pending(self._loop.create_future(), len(messages), topic, self._reports)
        for message in messages:
            try:
                self._producer.produce(topic, message.value, message.key, on_delivery=pending.report)
            except (BufferError, KafkaException):
                pending.remaining -= 1  # never queued: no report will come for it
                pending.failed = True
        if pending.remaining == 0:
            pending.settle_now()
        await pending.future

    def _settle(self, reports: list[tuple[_Pending, KafkaError | None]]) -> None:
        for pending, error in reports:
            self.on_delivered(pending.topic, error is None)
            if error is not None:
                pending.failed = True
            else:
                self.brokers_down = False
            pending.remaining -= 1
            if pending.remaining == 0:
                pending.settle_now()


class _Pending:
    """One request's messages in flight: one future for all of them, settled on the event loop."""

    __slots__ = ("future", "remaining", "failed", "topic", "_reports")

    def __init__(self, future: asyncio.Future[None], count: int, topic: str, reports: list) -> None:
        self.future, self.remaining, self.failed, self.topic = future, count, False, topic
        self._reports = reports

    def report(self, error: KafkaError | None, _message: Any) -> None:
        # Runs on the poll thread inside poll(): only collect; the thread hands them over in bulk.
        self._reports.append((self, error))

    def settle_now(self) -> None:
        if self.future.done():
            return
        if self.failed:
            self.future.set_exception(KafkaUnavailable("not delivered"))
        else:
            self.future.set_result(None)
