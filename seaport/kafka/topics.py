"""seaport's Kafka topics, as `docs/contract.md` fixes them, and `seaport topics create`.

    seaport topics create --bootstrap 127.0.0.1:9092 [--topic-prefix P]

Every topic may carry a prefix (`--topic-prefix`, `$SEAPORT_TOPIC_PREFIX`) so tests and
side-by-side runs do not share data.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas import safejson
from seaport.cli import add_kafka_options


@dataclass(frozen=True)
class TopicSpec:
    """A topic's partition count and the configs it is created with."""

    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)
    # Where the contract's message key sits in a JSON message: paths tried in order.
    key_paths: tuple[tuple[str, ...], ...] = ()


# Consent and erasure history must outlive every event they govern (R3, R8): never deleted by
# age, and not compacted, since every change is evidence, not just the latest one.
_KEPT_FOREVER = {"retention.ms": "-1", "cleanup.policy": "delete"}
_SUBJECT = (("subject", "openid"), ("subject", "anonymous_id"))

TOPICS: dict[str, TopicSpec] = {
    "beacons.raw": TopicSpec(4, key_paths=(("anonymous_id",),)),
    "access_logs.raw": TopicSpec(2, key_paths=(("ip",),)),
    "consent.events": TopicSpec(2, _KEPT_FOREVER, key_paths=_SUBJECT),
    "erasure.requests": TopicSpec(1, _KEPT_FOREVER, key_paths=_SUBJECT),
    "deadletter": TopicSpec(1, key_paths=(("source_topic",),)),
}


def topic_name(base: str, prefix: str = "") -> str:
    """The full topic name of contract topic `base` under `prefix` (test isolation)."""
    return f"{prefix}{base}"


def default_prefix() -> str:
    return os.environ.get("SEAPORT_TOPIC_PREFIX", "")


def add_prefix_option(parser: argparse.ArgumentParser) -> None:
    """`--topic-prefix P`, taken by every command that talks to Kafka."""
    parser.add_argument(
        "--topic-prefix",
        default=default_prefix(),
        metavar="P",
        help="prefix of every topic name, for isolated runs (default: $SEAPORT_TOPIC_PREFIX or empty)",
    )


def message_key(base: str, payload: bytes) -> bytes | None:
    """The contract's key for a message of topic `base`, or None when the payload lacks it.

    beacons: anonymous_id; access logs: client IP; consent and erasure: the subject's openid,
    else its anonymous_id; dead letters: the source topic. Keys spread a subject's messages to
    one partition, which keeps its consent changes in order (R3).
    """
    spec = TOPICS.get(base)
    if spec is None:
        return None
    try:
        message = safejson.loads(payload)
    except ValueError:  # not JSON, not UTF-8, too deep: sent without a key
        return None
    for path in spec.key_paths:
        value = message
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        if isinstance(value, str) and value:
            return value.encode("utf-8", "surrogatepass")  # a lone surrogate is a bad message, not a crash
    return None


def create_topics(bootstrap: str, prefix: str = "", kind: str = "confluent") -> list[str]:
    """Create the contract's topics under `prefix` where missing; returns the names created.

    Idempotent: an existing topic is left as it is."""
    from seaport.kafka.clients import make_client

    client = make_client(kind, bootstrap)
    try:
        return client.ensure_topics({topic_name(base, prefix): spec for base, spec in TOPICS.items()})
    finally:
        client.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["create"], help="create the contract's topics where missing")
    add_kafka_options(parser)
    add_prefix_option(parser)


def run(args: argparse.Namespace) -> int:
    created = create_topics(args.bootstrap, args.topic_prefix, args.kafka_client)
    for base, spec in TOPICS.items():
        name = topic_name(base, args.topic_prefix)
        state = "created" if name in created else "exists"
        print(f"{name}: {spec.partitions} partition(s), {state}")
    return 0
