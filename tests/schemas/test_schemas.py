"""The message models: exactly the contract, clear reasons for what they reject."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from schemas.models import AccessLog, Beacon, ConsentChange, ErasureRequest, validation_reason

BEACON = {
    "schema": "beacon/1",
    "event_id": "0b6f1f8e-6a54-4f64-9a25-8a3d7f0f2f41",
    "event": "page_view",
    "ts": "2026-11-24T08:15:30.123Z",
    "anonymous_id": "c-6f9a2e",
    "session_id": "s-19ab",
    "page": "/policy/query",
    "referrer": "/home",
    "element": None,
    "duration_ms": None,
    "user": {
        "openid": "o-test",
        "unionid": "u-test",
        "nickname": "n",
        "avatar_url": "a",
        "gender": "female",
        "country": "CN",
        "city": "Shanghai",
        "language": "zh_CN",
    },
    "device": {"model": "iPhone15,2", "mac": "02:00:00:00:00:01", "os": "iOS", "os_version": "17.1.2"},
    "network": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0"},
}


def reason(model, doc) -> str:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    with pytest.raises(ValidationError) as e:
        model.model_validate_json(raw)
    return validation_reason(e.value)


def test_the_contract_example_validates_and_names_its_subject():
    # the subject rule is the field policy's (the fields that fill subject_pseudonym, in order)
    from transforms.policy import FieldPolicy

    policy = FieldPolicy.load()
    b = Beacon.model_validate_json(json.dumps(BEACON))
    assert policy.subject_of("beacon", b.model_dump(mode="json", by_alias=True)) == ("openid", "o-test")
    anonymous = {k: v for k, v in BEACON.items() if k != "user"}
    assert policy.subject_of("beacon", anonymous) == ("anonymous_id", "c-6f9a2e")
    assert policy.subject_of("beacon", BEACON | {"user": {"gender": "male"}}) == ("anonymous_id", "c-6f9a2e")
    assert policy.subject_of("access", {"ip": "10.0.0.1"}) == ("ip", "10.0.0.1")
    assert policy.subject_of("consent", {"subject": {"openid": "o-1"}}) == ("openid", "o-1")
    assert policy.subject_of("beacon", ["not", "an", "object"]) is None


def test_unknown_fields_are_dropped_not_passed_through():
    b = Beacon.model_validate_json(json.dumps(BEACON | {"phone": "x", "user": BEACON["user"] | {"email": "y"}}))
    assert "phone" not in b.model_dump() and "email" not in b.model_dump()["user"]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (b"{nope", "not_json"),
        (b"[1]", "not_an_object"),
        (BEACON | {"schema": "beacon/2"}, "wrong_schema"),
        ({k: v for k, v in BEACON.items() if k != "ts"}, "missing_field:ts"),
        (BEACON | {"ts": "2026-11-24T08:15:30"}, "wrong_field:ts"),
        (BEACON | {"event": "scroll"}, "wrong_field:event"),
        (BEACON | {"event": "click"}, "invalid:a_click_needs_an_element"),
        (BEACON | {"event": "page_leave"}, "invalid:a_page_leave_needs_duration_ms"),
        (BEACON | {"duration_ms": -1}, "wrong_field:duration_ms"),
        (BEACON | {"page": "x" * 3000}, "too_long:page"),
        (BEACON | {"user": "o-test"}, "wrong_type:user"),
        (BEACON | {"anonymous_id": "c" * 257}, "too_long:anonymous_id"),
        (BEACON | {"ts": "9999-12-31T23:00:00-05:00"}, "wrong_field:ts"),  # beyond what UTC can represent
        (BEACON | {"ts": "0001-01-01T00:30:00+14:00"}, "wrong_field:ts"),
        (BEACON | {"ts": "1969-12-31T23:59:59Z"}, "wrong_field:ts"),
        (BEACON | {"ts": "2100-01-01T08:00:00+08:00"}, "wrong_field:ts"),
    ],
)
def test_beacon_rejections_have_stable_reasons(doc, expected):
    assert reason(Beacon, doc) == expected


def test_bounds_agree_so_any_subject_a_beacon_names_can_be_erased():
    longest = "c" * 256
    beacon = Beacon.model_validate_json(json.dumps(BEACON | {"anonymous_id": longest, "user": None}))
    erasure = {"schema": "erasure/1", "ts": "2026-11-24T09:00:00Z", "subject": {"anonymous_id": longest},
               "request_id": "r-1"}  # fmt: skip
    subject = ErasureRequest.model_validate_json(json.dumps(erasure)).subject
    assert (subject.kind, subject.value) == ("anonymous_id", beacon.anonymous_id)
    assert Beacon.model_validate_json(json.dumps(BEACON | {"ts": "2099-12-31T23:59:59Z"})).ts.year == 2099


def test_click_and_page_leave_carry_their_fields():
    assert Beacon.model_validate_json(json.dumps(BEACON | {"event": "click", "element": "btn"})).element == "btn"
    leave = Beacon.model_validate_json(json.dumps(BEACON | {"event": "page_leave", "duration_ms": 1500}))
    assert leave.duration_ms == 1500


def test_access_consent_and_erasure_messages():
    access = {
        "schema": "access/1",
        "ts": "2026-11-24T08:00:00+08:00",
        "ip": "203.0.113.7",
        "method": "GET",
        "path": "/",
        "status": 200,
        "bytes": 5,
        "duration_ms": 3,
        "user_agent": "x",
        "referrer": None,
    }
    assert AccessLog.model_validate_json(json.dumps(access)).status == 200
    assert reason(AccessLog, access | {"status": 700}) == "wrong_field:status"
    consent = {
        "schema": "consent/1",
        "ts": "2026-11-24T08:00:00Z",
        "subject": {"openid": "o"},
        "analytics": "granted",
        "minor": True,
        "guardian_consent": None,
    }
    assert ConsentChange.model_validate_json(json.dumps(consent)).minor
    assert reason(ConsentChange, consent | {"analytics": "maybe"}) == "wrong_field:analytics"
    assert reason(ConsentChange, consent | {"subject": {"openid": "o", "anonymous_id": "c"}}) == "invalid:subject"
    erasure = {
        "schema": "erasure/1",
        "ts": "2026-11-24T08:00:00Z",
        "subject": {"anonymous_id": "c"},
        "request_id": "r1",
    }
    assert ErasureRequest.model_validate_json(json.dumps(erasure)).subject.kind == "anonymous_id"
    assert reason(ErasureRequest, erasure | {"subject": {}}) == "invalid:subject"
