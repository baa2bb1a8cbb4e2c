"""Hostile messages for every input topic, as hypothesis strategies: each is invalid by
construction (never a counted event), so a test can demand a dead letter for every one.

The classes: deep nesting of every shape (array or object, at the top or inside a field, just
over the limit or thousands deep), huge and non-finite numbers, invalid UTF-8, byte-order marks,
duplicate keys, lone surrogates, empty and whitespace-only messages, very many keys, numbers as
strings and strings as objects, other encodings, truncation.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from schemas.safejson import MAX_JSON_DEPTH

TOPICS = ["beacons.raw", "access_logs.raw", "consent.events", "erasure.requests"]

# A valid message of each topic, and a field of it that must be a string / must be an object.
GOOD: dict[str, dict[str, Any]] = {
    "beacons.raw": {
        "schema": "beacon/1", "event_id": "e-1", "event": "page_view", "ts": "2026-11-20T04:00:00Z",
        "anonymous_id": "c-hostile", "page": "/home", "user": {"gender": "female"},
    },
    "access_logs.raw": {
        "schema": "access/1", "ts": "2026-11-20T04:00:00Z", "ip": "198.51.100.9", "method": "GET",
        "path": "/home", "status": 200,
    },
    "consent.events": {
        "schema": "consent/1", "ts": "2026-11-20T04:00:00Z", "subject": {"anonymous_id": "c-hostile"},
        "analytics": "granted",
    },
    "erasure.requests": {
        "schema": "erasure/1", "ts": "2026-11-20T04:00:00Z", "subject": {"anonymous_id": "c-hostile"},
        "request_id": "r-1",
    },
}  # fmt: skip
# (A number where a time belongs is a Unix time to pydantic: valid. Hence no `ts` here.)
STRING_FIELD = {
    "beacons.raw": "page",
    "access_logs.raw": "path",
    "consent.events": "analytics",
    "erasure.requests": "request_id",
}
REQUIRED = {
    "beacons.raw": "event_id", "access_logs.raw": "ip", "consent.events": "analytics", "erasure.requests": "request_id",
}  # fmt: skip


def _dumps(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False)


def _nest(depth: int, shape: str, inner: str = "1") -> str:
    """`depth` arrays/objects inside each other around `inner`, built without recursion."""
    if shape == "array":
        return "[" * depth + inner + "]" * depth
    return '{"a":' * depth + inner + "}" * depth


@st.composite
def hostile_message(draw: st.DrawFn) -> tuple[str, bytes]:
    """(topic, message bytes): one message no topic's model accepts."""
    topic = draw(st.sampled_from(TOPICS))
    good = dict(GOOD[topic])
    text_field, required = STRING_FIELD[topic], REQUIRED[topic]
    kind = draw(
        st.sampled_from(
            ["deep_top", "deep_field", "huge_number", "non_finite", "bad_utf8", "bom", "duplicate_key",
             "lone_surrogate", "blank", "many_keys", "number_for_string", "object_for_string", "utf16",
             "truncated", "not_an_object", "garbage"]
        )
    )  # fmt: skip
    if kind == "deep_top":
        depth = draw(st.one_of(st.integers(MAX_JSON_DEPTH + 1, MAX_JSON_DEPTH + 40), st.integers(1000, 20000)))
        return topic, _nest(depth, draw(st.sampled_from(["array", "object"]))).encode()
    if kind == "deep_field":  # inside any field, known or not, well-formed otherwise
        depth = draw(st.one_of(st.integers(MAX_JSON_DEPTH + 1, MAX_JSON_DEPTH + 40), st.integers(1000, 20000)))
        field = draw(st.sampled_from([*good, "extra"]))
        good[field] = "@@"
        text = _dumps(good).replace('"@@"', _nest(depth, draw(st.sampled_from(["array", "object"]))))
        return topic, text.encode()
    if kind == "huge_number":
        digits = draw(st.integers(20, 6000))
        good[required] = "@@"
        return topic, _dumps(good).replace('"@@"', "9" * digits).encode()
    if kind == "non_finite":
        good[required] = "@@"
        value = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]))
        return topic, _dumps(good).replace('"@@"', value).encode()
    if kind == "bad_utf8":
        good[required] = "@@"
        junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"]))
        return topic, _dumps(good).encode().replace(b"@@", b"x" + junk + b"y")
    if kind == "bom":  # a BOM before an otherwise good message: no JSON text starts with one (RFC 8259 8.1)
        bom = draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]))
        return topic, bom + _dumps(good).encode()
    if kind == "duplicate_key":  # the last of duplicate keys wins in both parsers: make it the bad one
        text = _dumps(good)
        return topic, (text[:-1] + f', "{required}": {{"x": 1}}}}').encode()
    if kind == "lone_surrogate":
        good[required] = "@@"
        return topic, _dumps(good).replace(
            "@@", draw(st.sampled_from(["\\ud800", "x\\udfff", "\\udbff\\u0041"]))
        ).encode()
    if kind == "blank":
        return topic, draw(st.sampled_from([b"", b" ", b"\n", b"\t \r\n", b"\x00"]))
    if kind == "many_keys":  # thousands of keys, none the model needs
        n = draw(st.integers(500, 5000))
        return topic, ("{" + ",".join(f'"k{i}": {i}' for i in range(n)) + "}").encode()
    if kind == "number_for_string":
        good[text_field] = draw(st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False)))
        return topic, _dumps(good).encode()
    if kind == "object_for_string":
        good[text_field] = draw(st.sampled_from([{}, {"a": "b"}, ["x"], True]))
        return topic, _dumps(good).encode()
    if kind == "utf16":
        return topic, _dumps(good).encode(draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32"])))
    if kind == "truncated":
        raw = _dumps(good).encode()
        return topic, raw[: draw(st.integers(1, len(raw) - 1))]
    if kind == "not_an_object":
        return topic, _dumps(draw(st.one_of(st.integers(), st.text(max_size=20), st.lists(st.integers())))).encode()
    return topic, draw(st.binary(min_size=1, max_size=200))


__all__ = ["GOOD", "TOPICS", "hostile_message"]
