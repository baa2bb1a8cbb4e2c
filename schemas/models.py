"""The messages that enter seaport, exactly as `docs/contract.md` defines them.

Unknown fields are ignored (dropped), never passed through: nothing that the field
policy has not named can reach a store. Every string has a length bound, so one
message cannot carry a document.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

MAX_MESSAGE_BYTES = 64 * 1024

Short = Annotated[str, Field(max_length=256)]
Text = Annotated[str, Field(max_length=2048)]
Millis = Annotated[int, Field(ge=0, le=7 * 24 * 3600 * 1000)]

# Tracking data is about now; an instant outside these years is a broken clock or a crafted message
# (year 9999 at -05:00 is not even a representable UTC time). Compared as instants, in pydantic-core.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
Timestamp = Annotated[AwareDatetime, Field(ge=EARLIEST, lt=LATEST)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class User(_Message):
    openid: Short | None = None
    unionid: Short | None = None
    nickname: Short | None = None
    avatar_url: Text | None = None
    gender: Short | None = None
    country: Short | None = None
    city: Short | None = None
    language: Short | None = None


class Device(_Message):
    model: Short | None = None
    mac: Short | None = None
    os: Short | None = None
    os_version: Short | None = None


class Network(_Message):
    ip: Short | None = None
    user_agent: Text | None = None


BeaconEvent = Literal["page_view", "click", "page_leave", "app_launch"]


class Beacon(_Message):
    """`beacon/1`: one tracking event from a page, a pixel or an SDK."""

    schema_: Literal["beacon/1"] = Field(alias="schema")
    event_id: Annotated[str, Field(min_length=1, max_length=64)]
    event: BeaconEvent
    ts: Timestamp
    anonymous_id: Annotated[Short, Field(min_length=1)]
    session_id: Short | None = None
    page: Text
    referrer: Text | None = None
    element: Text | None = None
    duration_ms: Millis | None = None
    user: User | None = None
    device: Device | None = None
    network: Network | None = None
    # Added by the collector (fields may be added, never renamed):
    received_at: Timestamp | None = None
    opt_out: bool = False  # Sec-GPC: 1 or DNT: 1 was sent: analytics consent is not granted

    @model_validator(mode="after")
    def _event_fields(self) -> Beacon:
        if self.event == "click" and not self.element:
            raise ValueError("a click needs an element")
        if self.event == "page_leave" and self.duration_ms is None:
            raise ValueError("a page_leave needs duration_ms")
        return self


class AccessLog(_Message):
    """`access/1`: one access-log record."""

    schema_: Literal["access/1"] = Field(alias="schema")
    ts: Timestamp
    ip: Short
    method: Annotated[str, Field(min_length=1, max_length=16)]
    path: Text
    status: Annotated[int, Field(ge=100, le=599)]
    bytes: Annotated[int, Field(ge=0)] = 0
    duration_ms: Millis | None = None
    user_agent: Text | None = None
    referrer: Text | None = None
    openid: Short | None = None


class Subject(_Message):
    """Whom a consent change or an erasure request is about: exactly one identifier."""

    openid: Short | None = None
    anonymous_id: Short | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Subject:
        if bool(self.openid) == bool(self.anonymous_id):
            raise ValueError("subject names exactly one of openid, anonymous_id")
        return self

    @property
    def kind(self) -> str:
        return "openid" if self.openid else "anonymous_id"

    @property
    def value(self) -> str:
        return self.openid or self.anonymous_id or ""


class ConsentChange(_Message):
    """`consent/1`: one change of a subject's analytics consent."""

    schema_: Literal["consent/1"] = Field(alias="schema")
    ts: Timestamp
    subject: Subject
    analytics: Literal["granted", "withdrawn"]
    minor: bool = False
    guardian_consent: bool | None = None


class ErasureRequest(_Message):
    """`erasure/1`: delete a subject's data (R8)."""

    schema_: Literal["erasure/1"] = Field(alias="schema")
    ts: Timestamp
    subject: Subject
    request_id: Annotated[str, Field(min_length=1, max_length=128)]


# topic -> the model of its messages
TOPIC_MODELS: dict[str, type[_Message]] = {
    "beacons.raw": Beacon,
    "access_logs.raw": AccessLog,
    "consent.events": ConsentChange,
    "erasure.requests": ErasureRequest,
}


# Why a message is refused: one vocabulary for the collector's 4xx answers and the pipeline's
# dead letters (besides these, `validation_reason` names the field a model refused).
EMPTY = "empty"  # no bytes at all
TOO_LARGE = "message_too_large"  # above MAX_MESSAGE_BYTES
TOO_DEEP = "too_deep"  # JSON nested deeper than schemas.safejson allows
NOT_JSON = "not_json"
NOT_AN_OBJECT = "not_an_object"
UNPROCESSABLE = "unprocessable"  # valid, yet protecting it failed: never stops a run


def validation_reason(error: ValidationError) -> str:
    """A short, stable reason for a rejected message, naming fields but never values."""
    first = error.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "message"
    kind = first["type"]
    if kind == "string_too_long":
        return f"too_long:{loc}"
    if kind == "value_error" and not first["loc"]:
        # A whole-message rule of the model ("a click needs an element"): fixed text, no values.
        text = str(first.get("ctx", {}).get("error", "invalid"))
        return "invalid:" + "_".join(text.lower().split())[:60]
    if kind == "missing":
        return f"missing_field:{loc}"
    if kind == "json_invalid":
        return NOT_JSON
    if kind in ("literal_error",) and loc == "schema":
        return "wrong_schema"
    if kind == "model_type" or kind == "model_attributes_type":
        return NOT_AN_OBJECT if loc == "message" else f"wrong_type:{loc}"
    if kind == "value_error":
        return f"invalid:{loc}"
    return f"wrong_field:{loc}"


__all__ = [
    "AccessLog",
    "Beacon",
    "ConsentChange",
    "Device",
    "ErasureRequest",
    "MAX_MESSAGE_BYTES",
    "Network",
    "Subject",
    "TOPIC_MODELS",
    "User",
    "validation_reason",
]
