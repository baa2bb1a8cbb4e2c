"""Producing to Kafka from the event loop: a 2xx answer only once the broker has the event.

One confluent-kafka Producer, idempotent with `acks=all`. A background thread polls it for
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


class KafkaUnavailable(Exception):
    """The broker did not take the message in time: the client should retry later (503)."""


def producer_config(bootstrap: str, delivery_timeout_ms: int) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,  # implies acks=all and safe retries: no duplicates, no reorder
        "acks": "all",
        "linger.ms": 2,  # a small batch window: throughput without visible latency
        "compression.type": "lz4",
        "message.timeout.ms": delivery_timeout_ms,  # after this, answer 503; the tracker retries
        "socket.connection.setup.timeout.ms": min(delivery_timeout_ms, 5000),
        "reconnect.backoff.max.ms": 1000,
    }


class DeliverySink:
    """Sends messages and resolves an asyncio future per request when all of them are delivered."""

    def __init__(self, bootstrap: str, delivery_timeout_ms: int = 5000) -> None:
        self._config = producer_config(bootstrap, delivery_timeout_ms)
        self._config["error_cb"] = self._on_error
        self._producer = Producer(self._config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reports: list[tuple[asyncio.Future[None], str, KafkaError | None]] = []
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
                reports, self._reports = self._reports, []
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._settle, reports)

    async def send(self, topic: str, messages: Sequence[Message]) -> None:
        """Produce every message; return once all are on the broker, else raise KafkaUnavailable."""
        assert self._loop is not None, "start() first"
        futures = [self._produce_one(topic, message) for message in messages]
        if len(futures) == 1:
            await futures[0]  # the pixel's path: no gather needed
            return
        results = await asyncio.gather(*futures, return_exceptions=True)
        if any(isinstance(r, BaseException) for r in results):
            raise KafkaUnavailable("not delivered")

    def _produce_one(self, topic: str, message: Message) -> asyncio.Future[None]:
        assert self._loop is not None
        future: asyncio.Future[None] = self._loop.create_future()
        try:
            self._producer.produce(topic, message.value, message.key, on_delivery=self._reporter(future, topic))
        except (BufferError, KafkaException):
            future.set_exception(KafkaUnavailable("producer queue full"))
        return future

    def _reporter(self, future: asyncio.Future[None], topic: str) -> Callable[[KafkaError | None, Any], None]:
        def report(error: KafkaError | None, _message: Any) -> None:
            # Runs on the poll thread, inside poll(): collect, the thread hands them over in bulk.
            self._reports.append((future, topic, error))
            if error is None:
                self.brokers_down = False

        return report

    def _settle(self, reports: list[tuple[asyncio.Future[None], str, KafkaError | None]]) -> None:
        for future, topic, error in reports:
            self.on_delivered(topic, error is None)
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(KafkaUnavailable("delivery failed"))
