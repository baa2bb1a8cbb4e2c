"""Turning HTTP requests into validated messages: the collector's only judgement of content.

Every message is validated with the same `schemas/` models the pipeline uses, then
re-serialized from the model, so fields the models do not name never reach Kafka.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from schemas import safejson
from schemas.models import (
    MAX_MESSAGE_BYTES,
    NOT_AN_OBJECT,
    NOT_JSON,
    TOO_DEEP,
    TOO_LARGE,
    AccessLog,
    Beacon,
    ConsentChange,
    validation_reason,
)
from seaport.kafka.topics import key_of

# Query parameters of the pixel that name a nested field, e.g. `device.model=iPhone15,2`.
_NESTED = ("user", "device", "network")
_NUMERIC = ("duration_ms",)
_YES = frozenset({"true", "1", "yes", "on"})  # the pixel's `opt_out=` spellings that opt out


class Rejected(Exception):
    """A request the collector refuses: an HTTP status and a short reason naming no value."""

    def __init__(self, status: int, reason: str, index: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.index = index  # which event of a batch, when the request held several


@dataclass(frozen=True)
class RequestFacts:
    """What the collector itself knows about a request, stamped onto each event."""

    client_ip: str
    user_agent: str | None
    opt_out: bool  # Sec-GPC: 1 or DNT: 1
    received_at: datetime
    anonymous_cookie: str | None = None


@dataclass(frozen=True)
class Message:
    """One validated message, ready to produce: its Kafka key and JSON value."""

    key: bytes | None
    value: bytes


def now_utc() -> datetime:
    return datetime.now(UTC)


def beacon_from_query(query: Any) -> dict[str, Any]:
    """The pixel's query parameters as a beacon dict (`user.openid=…` -> `{"user": {"openid": …}}`)."""
    event: dict[str, Any] = {"schema": "beacon/1"}
    for name, value in query.items():
        group, _, field = name.partition(".")
        if field and group in _NESTED:
            event.setdefault(group, {})[field] = value
        elif name == "opt_out":  # a client may opt out, never opt in: only a yes counts, and sticks
            event["opt_out"] = event.get("opt_out") is True or value.lower() in _YES
        elif not field:
            event[name] = value
    for name in _NUMERIC:
        if isinstance(event.get(name), str) and event[name].isdigit():
            event[name] = int(event[name])
    return event


def stamp_beacon(event: Any, facts: RequestFacts) -> dict[str, Any]:
    """Add what the collector knows: receive time, client IP, user agent, the opt-out mark (R13).

    Fills `event_id` (uuid4) and `ts` (receive time) when the client sent none. The client IP
    always comes from the connection (or a trusted proxy), never from the event: a client can't
    choose the IP that security analysis sees.
    """
    if not isinstance(event, dict):
        raise Rejected(400, NOT_AN_OBJECT)
    received_at = facts.received_at.isoformat()
    event.setdefault("schema", "beacon/1")
    if not event.get("event_id"):
        event["event_id"] = str(uuid.uuid4())
    if not event.get("ts"):
        event["ts"] = received_at
    if not event.get("anonymous_id") and facts.anonymous_cookie:
        event["anonymous_id"] = facts.anonymous_cookie
    network = event.get("network")
    network = dict(network) if isinstance(network, dict) else {}
    network["ip"] = facts.client_ip
    if not network.get("user_agent") and facts.user_agent:
        network["user_agent"] = facts.user_agent[:2048]
    event["network"] = network
    event["received_at"] = received_at
    # Sec-GPC / DNT: the pipeline treats the event's analytics consent as not granted.
    event["opt_out"] = bool(facts.opt_out or event.get("opt_out") is True)
    return event


def _validated(model: type[BaseModel], data: Any) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise Rejected(400, validation_reason(e)) from None


def _serialized(model: BaseModel) -> bytes:
    value = model.model_dump_json(by_alias=True, exclude_none=True).encode()
    if len(value) > MAX_MESSAGE_BYTES:
        raise Rejected(413, TOO_LARGE)
    return value


def beacon_message(event: Any, facts: RequestFacts) -> Message:
    """One beacon: stamped, validated, keyed by `anonymous_id` (the contract's key)."""
    stamped = stamp_beacon(event, facts)
    beacon = _validated(Beacon, stamped)
    return Message(key_of("beacons.raw", stamped), _serialized(beacon))


def access_log_message(record: Any) -> Message:
    """One access-log record, as a web server logged it, keyed by its client IP."""
    log = _validated(AccessLog, record)
    return Message(key_of("access_logs.raw", record), _serialized(log))


def consent_message(change: Any, facts: RequestFacts) -> Message:
    """One consent change (`consent/1`), keyed by its subject id; `ts` defaults to receive time."""
    if isinstance(change, dict):
        change.setdefault("schema", "consent/1")
        change.setdefault("ts", facts.received_at.isoformat())
    consent = _validated(ConsentChange, change)
    return Message(key_of("consent.events", change), _serialized(consent))


def parse_json(body: bytes) -> Any:
    try:
        return safejson.loads(body)
    except safejson.TooDeep:
        raise Rejected(400, TOO_DEEP) from None
    except ValueError:  # UnicodeDecodeError is one
        raise Rejected(400, NOT_JSON) from None


def batch_events(body: bytes, max_events: int) -> list[Any]:
    """A tracker batch: a JSON array of events, or `{"events": [...]}`, or one event object."""
    data = parse_json(body)
    if isinstance(data, dict):
        data = data.get("events", [data])
    return checked_batch(data, max_events)


def checked_batch(data: Any, max_events: int) -> list[Any]:
    """`data` if it is a non-empty list of at most `max_events` items, else the refusal."""
    if not isinstance(data, list):
        raise Rejected(400, "not_a_batch")
    if not data:
        raise Rejected(400, "empty_batch")
    if len(data) > max_events:
        raise Rejected(413, "too_many_events")
    return data


def log_records(body: bytes, max_events: int) -> list[Any]:
    """Access-log records in JSON lines; blank lines are skipped."""
    lines = [line for line in body.splitlines() if line.strip()]
    if not lines:
        raise Rejected(400, "empty_batch")
    if len(lines) > max_events:
        raise Rejected(413, "too_many_events")
    return [parse_json(line) for line in lines]
