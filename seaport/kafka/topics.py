"""seaport's Kafka topics, as `docs/contract.md` fixes them: names, partitions, configs, keys.

Every topic may carry a prefix (`--topic-prefix`, `$SEAPORT_TOPIC_PREFIX`) so tests and
side-by-side runs do not share data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from schemas import safejson


@dataclass(frozen=True)
class TopicSpec:
    """A topic's partition count and the configs it is created with."""

    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)
    # Where the contract's message key sits in a JSON message: paths tried in order ...
    key_paths: tuple[tuple[str, ...], ...] = ()
    # ... or the subject the field policy finds in a message of this kind (its subject rule).
    key_is_subject_of: str | None = None


# Consent and erasure history must outlive every event they govern (R3, R8): never deleted by
# age, and not compacted, since every change is evidence, not just the latest one.
_KEPT_FOREVER = {"retention.ms": "-1", "cleanup.policy": "delete"}

TOPICS: dict[str, TopicSpec] = {
    "beacons.raw": TopicSpec(4, key_paths=(("anonymous_id",),)),
    "access_logs.raw": TopicSpec(2, key_paths=(("ip",),)),
    "consent.events": TopicSpec(2, _KEPT_FOREVER, key_is_subject_of="consent"),
    "erasure.requests": TopicSpec(1, _KEPT_FOREVER, key_is_subject_of="erasure"),
    "deadletter": TopicSpec(1, key_paths=(("source_topic",),)),
}


def topic_name(base: str, prefix: str = "") -> str:
    """The full topic name of contract topic `base` under `prefix` (test isolation)."""
    return f"{prefix}{base}"


@cache
def key_paths(base: str) -> tuple[tuple[str, ...], ...]:
    """Where the key of a message of topic `base` sits, paths tried in order."""
    spec = TOPICS[base]
    if spec.key_is_subject_of is None:
        return spec.key_paths
    from transforms.policy import FieldPolicy

    return tuple(path for path, _kind in FieldPolicy.load().subject_fields(spec.key_is_subject_of))


def key_of(base: str, message: Any) -> bytes | None:
    """The contract's key for a (parsed) message of topic `base`, or None when it lacks one.

    beacons: anonymous_id; access logs: client IP; consent and erasure: their subject, by the
    field policy's subject rule (openid, else anonymous_id); dead letters: the source topic. Keys
    spread a subject's messages to one partition, which keeps its consent changes in order (R3).
    """
    if base not in TOPICS:
        return None
    for path in key_paths(base):
        value = message
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        if isinstance(value, str) and value:
            return value.encode("utf-8", "surrogatepass")  # a lone surrogate is a bad message, not a crash
    return None


def message_key(base: str, payload: bytes) -> bytes | None:
    """`key_of` a message as it travels: JSON bytes; None when they are not JSON."""
    if base not in TOPICS:
        return None
    try:
        message = safejson.loads(payload)
    except ValueError:  # not JSON, not UTF-8, too deep: sent without a key
        return None
    return key_of(base, message)


def create_topics(bootstrap: str, prefix: str = "", kind: str = "confluent") -> list[str]:
    """Create the contract's topics under `prefix` where missing; returns the names created.

    Idempotent: an existing topic is left as it is."""
    from seaport.kafka.clients import make_client

    client = make_client(kind, bootstrap)
    try:
        return client.ensure_topics({topic_name(base, prefix): spec for base, spec in TOPICS.items()})
    finally:
        client.close()
