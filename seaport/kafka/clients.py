"""One small Kafka interface, two libraries behind it.

`confluent-kafka` (librdkafka) is the data path: about 20x faster than `kafka-python`, which is
kept working for platforms without librdkafka (`--kafka-client kafka-python`). Both pass the
same tests. Reads are bounded offset ranges on an explicitly assigned partition (no consumer
group join, which costs kafka-python ~23 s); offsets are committed for a group without any
member running, so a pipeline commits only after its stores have committed.

Clients are cheap to describe and costly to open: pass `(kind, bootstrap)` around (e.g. to a
Beam DoFn, picklable) and call `make_client(kind, bootstrap)` in `setup()`.

Reads use `read_committed`: records of aborted transactions never reach the pipeline, and
`end_offsets` is the last stable offset (the high watermark when no transaction is open).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, Protocol

from seaport.errors import SeaportError

if TYPE_CHECKING:
    from seaport.kafka.topics import TopicSpec

# kafka-python logs each refused connection; with no logging set up (the CLI), Python would print
# them all. Our errors say what failed in one line; apps that configure logging still see them.
logging.getLogger("kafka").addHandler(logging.NullHandler())

KINDS = ("confluent", "kafka-python")
TIMEOUT_S = 30.0  # any single offset, commit or produce request
METADATA_TIMEOUT_S = 10.0  # the first contact: a broker that is down fails this fast
STALL_TIMEOUT_S = 30.0  # a range read that makes no progress for this long fails
POLL_S = 0.5

# The one producer configuration (librdkafka's names; the kafka-python client maps them): each
# message is written once and in order per partition, acknowledged by every in-sync replica. No
# compression: kafka-python reads lz4/snappy/zstd only with extra packages.
PRODUCER: dict[str, Any] = {"enable.idempotence": True, "acks": "all", "linger.ms": 5, "compression.type": "none"}


def producer_config(bootstrap: str, **settings: Any) -> dict[str, Any]:
    """A confluent-kafka Producer's configuration: `PRODUCER`, then `settings` (timeouts, logging)."""
    return {"bootstrap.servers": bootstrap, **PRODUCER, **settings}


class Record(NamedTuple):
    """One Kafka message, as read: bytes in, no decoding here.

    Immutable and picklable like a frozen dataclass, but built about 3x faster, which counts
    at hundreds of thousands of records per second."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


class KafkaClient(Protocol):
    """What seaport needs from Kafka; see `make_client`."""

    def partitions(self, topic: str) -> list[int]: ...
    def end_offsets(self, topic: str) -> dict[int, int]: ...
    def beginning_offsets(self, topic: str) -> dict[int, int]: ...
    def committed(self, group: str, topic: str) -> dict[int, int | None]: ...
    def commit(self, group: str, offsets: dict[tuple[str, int], int]) -> None: ...
    def read_range(
        self, topic: str, partition: int, start: int, end: int, max_batch: int = 5000
    ) -> Iterator[list[Record]]: ...
    def produce(
        self, topic: str, messages: Iterable[tuple[bytes | None, bytes]], refused: list[Refusal] | None = None
    ) -> int: ...
    def ensure_topics(self, specs: Mapping[str, TopicSpec]) -> list[str]: ...
    def close(self) -> None: ...


def make_client(kind: str, bootstrap: str) -> KafkaClient:
    """A client of library `kind` ("confluent" or "kafka-python") for the cluster at `bootstrap`."""
    if kind not in KINDS:
        raise SeaportError(f"unknown Kafka client {kind!r}; choose one of {', '.join(KINDS)}")
    _probe(bootstrap)
    if kind == "confluent":
        return ConfluentClient(bootstrap)
    return KafkaPythonClient(bootstrap)


def _probe(bootstrap: str) -> None:
    """Fail at once when no bootstrap server accepts a connection (the usual: broker not started)."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=2).close()
            return
        except (OSError, ValueError):
            continue
    raise _no_answer(bootstrap)


def _no_answer(bootstrap: str, detail: str = "") -> SeaportError:
    hint = f" ({detail})" if detail else ""
    return SeaportError(f"no Kafka broker answers at {bootstrap}{hint}; is it running? (`seaport broker start`)")


def _missing_topic(topic: str) -> SeaportError:
    return SeaportError(f"topic {topic} does not exist (run `seaport topics create`)")


def _within(batch: list[Record], low: int, end: int) -> list[Record]:
    """The records of an offset-ordered batch with `low <= offset < end` (a fetch may overrun)."""
    if batch and (batch[0].offset < low or batch[-1].offset >= end):
        return [r for r in batch if low <= r.offset < end]
    return batch


Refusal = tuple[int, str]  # (index of the message in the produce call, from 0; Kafka's reason)


@dataclass
class _Deliveries:
    """What the delivery callbacks of one `produce` call reported.

    Without a `refused` list the first failure fails the call; with one, each message Kafka
    refuses (too large, say) is listed there and the others are still sent."""

    topic: str
    refused: list[Refusal] | None
    delivered: int = 0
    error: str = ""  # the first failure's reason (a Kafka error, never a payload)

    def failed(self, index: int, reason: str) -> None:
        if self.refused is None:
            self.error = self.error or reason
        else:
            self.refused.append((index, reason))

    def refuse_now(self, index: int, reason: str, flush: Callable[[], object]) -> None:
        """A message refused before it was sent."""
        if self.refused is None:
            flush()
            self.fail(index + 1, f"message {index + 1} refused: {reason}")
        self.refused.append((index, reason))

    def check(self, sent: int, unfinished: str) -> None:
        """After the flush: every message delivered, or listed as refused."""
        done = self.delivered + len(self.refused or ())
        if self.error or done != sent:
            self.fail(sent, self.error or unfinished)

    def fail(self, sent: int, reason: str) -> NoReturn:
        raise SeaportError(f"producing to {self.topic}: {self.delivered} of {sent} delivered ({reason})")


class _RangeProgress:
    """Where a range read stands, and whether it stalled (so a read can never loop forever).

    Offsets may have gaps (compaction, transaction markers): the read ends when the reader's
    position reaches `end`, not when it has seen a record at `end - 1`.
    """

    def __init__(self, topic: str, partition: int, start: int, end: int) -> None:
        self.where = f"{topic}[{partition}]"
        self.position, self.end = start, end
        self.last_progress = time.monotonic()

    @property
    def done(self) -> bool:
        return self.position >= self.end

    def advance(self, position: int) -> None:
        if position > self.position:
            self.position = position
            self.last_progress = time.monotonic()
        elif time.monotonic() - self.last_progress > STALL_TIMEOUT_S:
            raise SeaportError(f"reading {self.where} stalled at offset {self.position} before end offset {self.end}")

    def batches(self, fetch: Callable[[], list[Record]], position: Callable[[], int]) -> Iterator[list[Record]]:
        """The read loop of both clients: `fetch()` the next records (offset order, may overrun the
        range), yield those inside it, until the reader's `position()` reaches the end."""
        while not self.done:
            fetched = fetch()
            batch = _within(fetched, self.position, self.end)
            if batch:
                yield batch
            if fetched and fetched[-1].offset >= self.end - 1:
                return
            self.advance(position())


def _know_topic(handle: Any, topic: str, known: set[tuple[int, str]]) -> None:
    """Ask for `topic`'s metadata once per librdkafka handle before using it: left to itself, the
    handle learns a topic new to it only at its next metadata refresh, about a second later (a
    second per topic for every small run)."""
    if (id(handle), topic) not in known:
        handle.list_topics(topic, timeout=TIMEOUT_S)
        known.add((id(handle), topic))


class ConfluentClient:
    """`KafkaClient` over confluent-kafka (librdkafka)."""

    def __init__(self, bootstrap: str) -> None:
        from confluent_kafka.admin import AdminClient

        self.bootstrap = bootstrap
        # Quiet: a broker that is down becomes one SeaportError, not a page of connection logs.
        self._admin: Any = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        self._reader: Any = None  # the libraries' own classes, imported lazily
        self._producer: Any = None
        self._known: set[tuple[int, str]] = set()  # (id of the reader or producer, topic)

    def partitions(self, topic: str) -> list[int]:
        from confluent_kafka import KafkaException

        try:
            found = self._admin.list_topics(topic, timeout=METADATA_TIMEOUT_S).topics.get(topic)
        except KafkaException:
            raise _no_answer(self.bootstrap) from None
        if found is None or found.error is not None:
            raise _missing_topic(topic)
        return sorted(found.partitions)

    def _list_offsets(self, topic: str, spec: object) -> dict[int, int]:
        from confluent_kafka import IsolationLevel, TopicPartition

        request = {TopicPartition(topic, p): spec for p in self.partitions(topic)}

        def list_offsets() -> dict[int, int]:
            futures = self._admin.list_offsets(
                request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=TIMEOUT_S
            )
            return {tp.partition: future.result().offset for tp, future in futures.items()}

        return _until_coordinator_ready(list_offsets, _confluent_transient, f"the leader of {topic}")

    def end_offsets(self, topic: str) -> dict[int, int]:
        from confluent_kafka.admin import OffsetSpec

        return self._list_offsets(topic, OffsetSpec.latest())

    def beginning_offsets(self, topic: str) -> dict[int, int]:
        from confluent_kafka.admin import OffsetSpec

        return self._list_offsets(topic, OffsetSpec.earliest())

    def committed(self, group: str, topic: str) -> dict[int, int | None]:
        from confluent_kafka import Consumer, TopicPartition

        partitions = [TopicPartition(topic, p) for p in self.partitions(topic)]
        # Not AdminClient.list_consumer_group_offsets: on a broker whose group coordinator is
        # still loading, librdkafka 2.16 crashes the process (SIGSEGV) in that call.
        consumer = Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": group, "enable.auto.commit": False, "log_level": 0}
        )
        try:
            answer = _until_coordinator_ready(
                lambda: consumer.committed(partitions, timeout=TIMEOUT_S), _confluent_transient
            )
        finally:
            consumer.close()
        return {tp.partition: tp.offset if tp.offset >= 0 else None for tp in answer}

    def commit(self, group: str, offsets: dict[tuple[str, int], int]) -> None:
        """Commit `offsets` (next offset to read) for `group`; needs no running group member."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": group, "enable.auto.commit": False, "log_level": 0}
        )
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            answer = _until_coordinator_ready(
                lambda: consumer.commit(offsets=tps, asynchronous=False), _confluent_transient
            )
            failed = [tp for tp in answer if tp.error]
        finally:
            consumer.close()
        if failed:
            raise SeaportError(f"committing offsets for group {group} failed: {failed[0].error}")

    def _range_reader(self):  # noqa: ANN202 - confluent_kafka.Consumer, imported lazily
        if self._reader is None:
            from confluent_kafka import Consumer

            self._reader = Consumer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "group.id": "seaport-range-reader",  # required by librdkafka; never joined
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",  # a range start already deleted by retention
                    "isolation.level": "read_committed",
                    "fetch.max.bytes": 64 * 1024 * 1024,
                    "max.partition.fetch.bytes": 16 * 1024 * 1024,
                    # A fetch in flight on the previous range waits this long before the next one
                    # starts: 100 ms cost a run of small ranges a tenth of a second per partition.
                    "fetch.wait.max.ms": 10,
                    # A partition whose local queue is full waits this long before its next fetch
                    # (librdkafka's default is 1 s): a new range on a reused reader stalled a second
                    # before its first batch.
                    "fetch.queue.backoff.ms": 10,
                }
            )
        return self._reader

    def read_range(
        self, topic: str, partition: int, start: int, end: int, max_batch: int = 5000
    ) -> Iterator[list[Record]]:
        """Batches of the records with `start <= offset < end` of one partition, in order."""
        from confluent_kafka import TopicPartition

        if start >= end:
            return
        reader = self._range_reader()
        _know_topic(reader, topic, self._known)
        progress = _RangeProgress(topic, partition, start, end)

        def fetch() -> list[Record]:
            # consume() waits for all `num_messages` or the timeout: ask for no more than remain.
            wanted = max(1, min(max_batch, end - progress.position))
            messages = reader.consume(num_messages=wanted, timeout=POLL_S)
            for message in messages:
                if message.error() is not None:
                    raise SeaportError(f"reading {topic}[{partition}] failed: {message.error()}")
            return [Record(topic, partition, m.offset(), m.key(), m.value(), m.timestamp()[1]) for m in messages]

        reader.assign([TopicPartition(topic, partition, start)])
        try:
            yield from progress.batches(fetch, lambda: reader.position([TopicPartition(topic, partition)])[0].offset)
        finally:
            reader.unassign()

    def produce(
        self, topic: str, messages: Iterable[tuple[bytes | None, bytes]], refused: list[Refusal] | None = None
    ) -> int:
        """Send (key, value) pairs idempotently with acks=all; returns how many were sent."""
        from confluent_kafka import KafkaException, Producer

        self.partitions(topic)  # fail at once on a missing topic, not after the delivery timeout
        if self._producer is None:
            self._producer = Producer(
                producer_config(
                    self.bootstrap,
                    **{
                        "queue.buffering.max.messages": 500_000,
                        "log_level": 3,  # errors only: retries while a new broker loads are not the user's news
                    },
                )
            )
        producer = self._producer
        _know_topic(producer, topic, self._known)
        outcome = _Deliveries(topic, refused)

        def delivery_of(index: int) -> Callable[[Any, object], None]:
            def on_delivery(error: Any, _message: object) -> None:
                if error is None:
                    outcome.delivered += 1
                else:
                    outcome.failed(index, error.str() if hasattr(error, "str") else str(error))

            return on_delivery

        # One callback per message only when refusals are listed by index; otherwise one for all.
        shared = delivery_of(-1) if refused is None else None

        sent = 0
        for key, value in messages:
            while True:
                try:
                    producer.produce(topic, value, key, on_delivery=shared or delivery_of(sent))
                    break
                except BufferError:  # local queue full: let deliveries drain it
                    producer.poll(0.1)
                except KafkaException as e:  # refused before sending, e.g. larger than the broker allows
                    outcome.refuse_now(sent, e.args[0].str(), lambda: producer.flush(TIMEOUT_S))
                    break
            sent += 1
            if sent % 10_000 == 0:
                producer.poll(0)
        remaining = producer.flush(TIMEOUT_S)
        outcome.check(sent, f"{remaining} message(s) still queued")
        return sent

    def ensure_topics(self, specs: Mapping[str, TopicSpec]) -> list[str]:
        """Create the topics of `specs` that are missing; returns the names created."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import NewTopic

        try:
            existing = self._admin.list_topics(timeout=METADATA_TIMEOUT_S).topics
        except KafkaException:
            raise _no_answer(self.bootstrap) from None
        wanted = [
            NewTopic(name, num_partitions=spec.partitions, replication_factor=1, config=dict(spec.configs))
            for name, spec in specs.items()
            if name not in existing
        ]
        created = []
        for name, future in (self._admin.create_topics(wanted, request_timeout=TIMEOUT_S) if wanted else {}).items():
            try:
                future.result()
                created.append(name)
            except KafkaException as e:  # created meanwhile by someone else: fine
                if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise SeaportError(f"creating topic {name} failed: {e.args[0].str()}") from None
        _wait_until_visible(self, created)
        return created

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._producer is not None:
            self._producer.flush(TIMEOUT_S)
            self._producer = None
        self._admin = None  # librdkafka has no close: the handle ends when released


class KafkaPythonClient:
    """`KafkaClient` over kafka-python (pure Python; slower, no native library)."""

    def __init__(self, bootstrap: str) -> None:
        from kafka.admin import KafkaAdminClient
        from kafka.errors import KafkaError

        self.bootstrap = bootstrap
        try:
            self._admin = KafkaAdminClient(
                bootstrap_servers=bootstrap,
                request_timeout_ms=int(TIMEOUT_S * 1000),
                bootstrap_timeout_ms=int(METADATA_TIMEOUT_S * 1000),
            )
        except KafkaError as e:
            raise _no_answer(bootstrap, type(e).__name__) from None
        self._reader: Any = None
        self._producer: Any = None

    def partitions(self, topic: str) -> list[int]:
        (found,) = self._admin.describe_topics([topic])
        if found["error_code"] != 0:
            raise _missing_topic(topic)
        return sorted(p["partition_index"] for p in found["partitions"])

    def _list_offsets(self, topic: str, spec: object) -> dict[int, int]:
        from kafka import TopicPartition
        from kafka.protocol.consumer import IsolationLevel

        request = {TopicPartition(topic, p): spec for p in self.partitions(topic)}
        answer = _until_coordinator_ready(
            lambda: self._admin.list_partition_offsets(request, isolation_level=IsolationLevel.READ_COMMITTED),
            _kafka_python_transient,
            f"the leader of {topic}",
        )
        return {tp.partition: found.offset for tp, found in answer.items()}

    def end_offsets(self, topic: str) -> dict[int, int]:
        from kafka.admin import OffsetSpec

        return self._list_offsets(topic, OffsetSpec.LATEST)

    def beginning_offsets(self, topic: str) -> dict[int, int]:
        from kafka.admin import OffsetSpec

        return self._list_offsets(topic, OffsetSpec.EARLIEST)

    def committed(self, group: str, topic: str) -> dict[int, int | None]:
        from kafka import TopicPartition

        partitions = [TopicPartition(topic, p) for p in self.partitions(topic)]
        answer = _until_coordinator_ready(
            lambda: self._admin.list_group_offsets({group: partitions}), _kafka_python_transient
        )[group]
        return {tp.partition: found.offset if found.offset >= 0 else None for tp, found in answer.items()}

    def commit(self, group: str, offsets: dict[tuple[str, int], int]) -> None:
        """Commit `offsets` (next offset to read) for `group`; needs no running group member."""
        from kafka import TopicPartition
        from kafka.errors import NoError
        from kafka.structs import OffsetAndMetadata

        request = {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}
        answer = _until_coordinator_ready(
            lambda: self._admin.alter_group_offsets(group, request), _kafka_python_transient
        )
        failed = [error for error in answer.values() if error is not NoError]
        if failed:
            raise SeaportError(f"committing offsets for group {group} failed: {failed[0].__name__}")

    def _range_reader(self):  # noqa: ANN202 - kafka.KafkaConsumer, imported lazily
        if self._reader is None:
            from kafka import KafkaConsumer

            self._reader = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed",
                fetch_max_bytes=64 * 1024 * 1024,
                max_partition_fetch_bytes=16 * 1024 * 1024,
                fetch_max_wait_ms=100,
            )
        return self._reader

    def read_range(
        self, topic: str, partition: int, start: int, end: int, max_batch: int = 5000
    ) -> Iterator[list[Record]]:
        """Batches of the records with `start <= offset < end` of one partition, in order."""
        from kafka import TopicPartition
        from kafka.errors import UnsupportedCodecError

        if start >= end:
            return
        reader = self._range_reader()
        tp = TopicPartition(topic, partition)
        progress = _RangeProgress(topic, partition, start, end)

        def fetch() -> list[Record]:
            try:
                messages = reader.poll(timeout_ms=int(POLL_S * 1000), max_records=max_batch).get(tp, [])
            except UnsupportedCodecError as e:  # e.g. lz4 batches without the `lz4` package
                raise SeaportError(
                    f"reading {topic}[{partition}]: {e.args[0] if e.args else e}; use --kafka-client confluent"
                ) from None
            return [Record(topic, partition, m.offset, m.key, m.value, m.timestamp) for m in messages]

        reader.assign([tp])
        reader.seek(tp, start)
        try:
            yield from progress.batches(fetch, lambda: reader.position(tp))
        finally:
            reader.unsubscribe()

    def produce(
        self, topic: str, messages: Iterable[tuple[bytes | None, bytes]], refused: list[Refusal] | None = None
    ) -> int:
        """Send (key, value) pairs idempotently with acks=all; returns how many were sent."""
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        self.partitions(topic)
        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap,
                acks=PRODUCER["acks"],
                enable_idempotence=PRODUCER["enable.idempotence"],
                linger_ms=PRODUCER["linger.ms"],
            )
        producer = self._producer
        outcome = _Deliveries(topic, refused)

        def delivered(_metadata: object) -> None:
            outcome.delivered += 1

        sent = 0
        for key, value in messages:
            try:
                future = producer.send(topic, value=value, key=key).add_callback(delivered)
                future.add_errback(lambda error, index=sent: outcome.failed(index, type(error).__name__))
            except KafkaError as e:  # refused before sending, e.g. larger than the broker allows
                outcome.refuse_now(sent, type(e).__name__, lambda: producer.flush(TIMEOUT_S))
            sent += 1
        producer.flush(TIMEOUT_S)
        outcome.check(sent, "delivery timed out")
        return sent

    def ensure_topics(self, specs: Mapping[str, TopicSpec]) -> list[str]:
        """Create the topics of `specs` that are missing; returns the names created."""
        existing = set(self._admin.list_topics())
        wanted = {
            name: {"num_partitions": spec.partitions, "replication_factor": 1, "configs": dict(spec.configs)}
            for name, spec in specs.items()
            if name not in existing
        }
        created = []
        answer = self._admin.create_topics(wanted, raise_errors=False) if wanted else {"topics": []}
        for result in answer["topics"]:
            if result["error_code"] == 0:
                created.append(result["name"])
            elif result["error_code"] != 36:  # TOPIC_ALREADY_EXISTS: created meanwhile, fine
                raise SeaportError(f"creating topic {result['name']} failed: {result['error_message']}")
        _wait_until_visible(self, created)
        return created

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._producer is not None:
            self._producer.close(timeout=TIMEOUT_S)
            self._producer = None
        self._admin.close()


def _wait_until_visible(client: KafkaClient, topics: list[str]) -> None:
    """A new topic reaches the broker's metadata a moment after the controller acknowledges it."""
    deadline = time.monotonic() + TIMEOUT_S
    for topic in topics:
        while True:
            try:
                client.partitions(topic)
                break
            except SeaportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def _until_coordinator_ready(call, transient, waiting_for: str = "the Kafka group coordinator"):  # noqa: ANN001, ANN202
    """Run a call, retrying while the broker is not ready for it: the group coordinator
    (`__consumer_offsets`) loads or moves right after a broker starts, and a new topic's partitions
    have no leader for a moment (`transient(error)` says which errors those are)."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            return call()
        except Exception as e:
            if not transient(e):
                raise
        if time.monotonic() > deadline:
            raise SeaportError(f"{waiting_for} is not available") from None
        time.sleep(0.2)


def _confluent_transient(error: BaseException) -> bool:
    from confluent_kafka import KafkaError, KafkaException

    not_ready = {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
    }
    return isinstance(error, KafkaException) and (error.args[0].retriable() or error.args[0].code() in not_ready)


def _kafka_python_transient(error: BaseException) -> bool:
    from kafka.errors import (
        CoordinatorLoadInProgressError,
        CoordinatorNotAvailableError,
        LeaderNotAvailableError,
        NotCoordinatorError,
        NotLeaderForPartitionError,
    )

    return isinstance(
        error,
        (
            CoordinatorNotAvailableError,
            CoordinatorLoadInProgressError,
            NotCoordinatorError,
            LeaderNotAvailableError,
            NotLeaderForPartitionError,
        ),
    )
