"""The Sensors Data (神策) endpoints `/sa` and `/sa.gif`: decoding, mapping, crc, and a real collector.

Records are built the way sa-sdk-javascript 1.27 builds them (`identities`, `distinct_id`,
`anonymous_id`, `login_id` after `login()`, `properties`, `time`, `_track_id`, `_flush_time`), with
ids from a seeded RNG. The HTTP tests run `seaport collect` against the session's Kafka broker and
read `beacons.raw` back. (The browser test drives the real SDK: tests/seaport/collector/test_sensors_browser.py.)
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
import random
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_from_bytes, urlencode

import pytest
from aiohttp import web

from seaport.collector.app import RouteOnlyAccessLogger, _WithoutClientDetails, make_app
from seaport.collector.events import Rejected
from seaport.collector.limits import Limits
from seaport.collector.sensors import beacon_from_record, decode_records, java_hash
from seaport.devtools.broker import free_port
from seaport.devtools.loadtest import running_collector
from seaport.kafka.topics import topic_name
from tests.seaport.collector.test_collector import read_topic, request

RNG = random.Random(20261202)
ORIGIN = "https://shop.example.cn"
T0 = 1_796_000_000_000  # client time, ms (2026-11-30)


# --- the SDK's wire format, written independently of the collector ---------------------------


def java_string_hash(text: str) -> int:
    """Java's String.hashCode as the SDK computes it: h = 31 * h + charCode, wrapped to int32."""
    units = text.encode("utf-16-le")
    h = 0
    for i in range(0, len(units), 2):
        h = (h * 31 + int.from_bytes(units[i : i + 2], "little")) % 2**32
    return h - 2**32 if h >= 2**31 else h


def b64(payload: object) -> str:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
    return base64.b64encode(raw).decode()


def sdk_fields(payload: object, key: str = "data", crc: bool = True, **extra: str) -> dict[str, str]:
    """`data=<base64>&ext=crc=<hash>` as the SDK's encodeTrackData; `data_list=` without crc (batch)."""
    data = b64(payload)
    fields = {key: data, **extra}
    if crc:
        fields["ext"] = f"crc={java_string_hash(data)}"
    return fields


def sa_anonymous_id() -> str:
    """Shaped like the SDK's id (first-visit time, random, user-agent hash, screen, time), made here."""
    first = 0x1A000000000 + RNG.getrandbits(36)
    return f"{first:x}-{RNG.getrandbits(56):014x}-{RNG.getrandbits(32):08x}-480000-{first + 3:x}"


def login_canary() -> str:
    return f"test-openid-{RNG.getrandbits(64):016x}"


def sa_record(event: str, aid: str | None = None, login_id: str | None = None, type_: str = "track", **props: Any):
    aid = aid or sa_anonymous_id()
    time = T0 + RNG.randrange(10**6)
    identities = {"$identity_cookie_id": aid, "$identity_anonymous_id": aid}
    record = {
        "identities": identities,
        "distinct_id": login_id or aid,
        "lib": {"$lib": "js", "$lib_method": "code", "$lib_version": "1.27.11"},
        "properties": {
            "$timezone_offset": -480,
            "$screen_height": 844,
            "$screen_width": 390,
            "$lib": "js",
            "$lib_version": "1.27.11",
            "$latest_referrer": "",
            "$url": "https://shop.example.cn/products/health?plan=2#top",
            "$url_path": "/products/health",
            "$title": "健康险",
            "$is_first_day": True,
            **props,
        },
        "anonymous_id": aid,
        "type": type_,
        "event": event,
        "time": time,
        "_track_id": RNG.randrange(10**8, 10**9),
        "_flush_time": time + 3,
    }
    if login_id:
        record["login_id"] = login_id
        identities["$identity_login_id"] = login_id
    return record


def click(aid: str | None = None, login_id: str | None = None, **props: Any) -> dict:
    element = {"$element_type": "button", "$element_id": "buy-now", "$element_content": "立即投保"}
    element |= {"$element_selector": "#buy-now", "$element_path": "button#buy-now"}
    return sa_record("$WebClick", aid, login_id, **{**element, **props})


def leave(seconds: object = 4.2, aid: str | None = None, login_id: str | None = None, **props: Any) -> dict:
    return sa_record("$WebPageLeave", aid, login_id, event_duration=seconds, **{"$viewport_position": 0}, **props)


def ms_to_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def ts_ms(value: str) -> int:
    """A beacon's `ts` as client milliseconds."""
    return round(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


# --- unit: crc, decoding, mapping ---------------------------------------------------------------


def test_crc_is_java_string_hashcode_like_the_sdk() -> None:
    assert java_hash("") == 0
    assert java_hash("hello") == 99162322 and java_hash("Hello World") == -862545276  # Java's values
    for _ in range(200):
        text = b64(RNG.randbytes(RNG.randrange(1, 300)))
        assert java_hash(text) == java_string_hash(text)
    assert java_hash("神策😀") == java_string_hash("神策😀")  # UTF-16 code units, as charCodeAt


def test_decode_data_data_list_and_gzip() -> None:
    record = sa_record("$pageview")
    assert decode_records(sdk_fields(record), 50, 1024) == [record]
    assert decode_records(sdk_fields([record, record], "data_list", crc=False), 50, 1024) == [record] * 2
    zipped = b64(gzip.compress(json.dumps([record]).encode()))  # the app SDKs: gzip=1
    fields = {"data_list": zipped, "gzip": "1", "crc": str(java_string_hash(zipped))}
    assert decode_records(fields, 50, 4096) == [record]
    unencoded_plus = sdk_fields(record)
    unencoded_plus["data"] = unencoded_plus["data"].replace("+", " ")  # a raw '+' decodes as a space
    assert decode_records(unencoded_plus, 50, 1024) == [record]


def refused(fields: dict, max_events: int = 50, max_bytes: int = 65536) -> tuple[int, str]:
    with pytest.raises(Rejected) as info:
        decode_records(fields, max_events, max_bytes)
    return info.value.status, info.value.reason


def test_decode_refuses_bad_input_with_a_reason() -> None:
    record = sa_record("$pageview")
    good = sdk_fields(record)
    assert refused({**good, "ext": "crc=12345"}) == (400, "bad_crc")
    assert refused({**good, "ext": "crc=abc"}) == (400, "bad_crc")
    assert refused({"data": "bm90IGJhc2U2NA=!*"}) == (400, "bad_base64")
    assert refused({"project": "default"}) == (400, "missing_data")
    assert refused(sdk_fields(b"\xff\xfe{}")) == (400, "not_utf8")
    assert refused(sdk_fields(b"{not json")) == (400, "not_json")
    assert refused(sdk_fields("a string")) == (400, "not_an_object")
    assert refused(sdk_fields(record, "data_list")) == (400, "not_a_batch")
    assert refused(sdk_fields([], "data_list")) == (400, "empty_batch")
    assert refused(sdk_fields([record] * 51, "data_list")) == (413, "too_many_events")
    deep = {**record, "properties": {"x": json.loads("[" * 40 + "]" * 40)}}
    assert refused(sdk_fields(deep)) == (400, "too_deep")
    assert refused({"data": b64(b"not gzip"), "gzip": "1"}) == (400, "bad_gzip")
    assert refused({"data": b64(gzip.compress(b"[1, 2, 3]")[:-6]), "gzip": "1"}) == (400, "bad_gzip")  # cut short
    bomb = b64(gzip.compress(b"\0" * (10 * 2**20)))
    assert refused({"data": bomb, "gzip": "1"}, max_bytes=65536) == (413, "gzip_too_large")
    # the encryption plugins: general/SM {pkv, ekey, payloads}; AES {key_id, key_hash, payload}, gzip=9
    envelope = json.dumps({"pkv": 1, "ekey": "a2V5", "payloads": [b64(b"\x01\x02")]})
    assert refused({"data": envelope}) == (400, "encrypted_payload")
    aes = json.dumps({"key_id": 1, "key_hash": "h", "nc": 1, "payload": "cGF5"})
    assert refused({"data": aes, "ext": f"crc={java_string_hash(aes)}", "gzip": "9"}) == (400, "encrypted_payload")
    assert refused({"data": json.dumps(record)}) == (400, "bad_base64")  # JSON is not base64


def test_page_view_click_and_page_leave_are_mapped() -> None:
    view = sa_record("$pageview", **{"$referrer": "https://www.baidu.com/s?wd=x", "$model": "iPhone15,2"})
    event = beacon_from_record(view, login_id_is_openid=False)
    assert event is not None
    assert event["event"] == "page_view" and event["page"] == "/products/health?plan=2"  # no fragment
    assert ts_ms(event["ts"]) == view["time"] and event["anonymous_id"] == view["anonymous_id"]
    assert event["referrer"] == "https://www.baidu.com/s?wd=x" and event["device"] == {"model": "iPhone15,2"}
    assert event["event_id"].startswith("sa-") and len(event["event_id"]) == 35
    assert "user" not in event and "$screen_width" not in json.dumps(event)
    assert beacon_from_record(click(), False)["element"] == "buy-now"  # type: ignore[index]
    no_id = click(**{"$element_id": None})
    assert beacon_from_record(no_id, False)["element"] == "立即投保"  # type: ignore[index]
    only_selector = click(**{"$element_id": "", "$element_content": ""})
    assert beacon_from_record(only_selector, False)["element"] == "#buy-now"  # type: ignore[index]
    left = beacon_from_record(leave(1.352), False)
    assert left is not None and left["event"] == "page_leave" and left["duration_ms"] == 1352
    assert beacon_from_record(leave(), False)["duration_ms"] == 4200  # type: ignore[index]
    hidden = leave()
    del hidden["properties"]["event_duration"]  # the SDK drops it for a page left while hidden
    assert beacon_from_record(hidden, False) is None
    mini = sa_record("$MPViewScreen", **{"$url": None, "$url_path": "pages/index/index", "$os": "iOS"})
    assert beacon_from_record(mini, False)["page"] == "/pages/index/index"  # type: ignore[index]
    assert beacon_from_record(sa_record("$MPClick", **{"$element_id": "pay"}), False)["event"] == "click"  # type: ignore[index]
    assert beacon_from_record(sa_record("$MPPageLeave", event_duration=2), False)["duration_ms"] == 2000  # type: ignore[index]


def test_other_events_are_not_stored() -> None:
    aid = sa_anonymous_id()
    for record in (
        sa_record("$SignUp", aid, login_canary(), type_="track_signup"),
        {**sa_record("x", aid, type_="profile_set"), "event": None},
        sa_record("buy_policy", aid, plan="gold"),
        sa_record("$WebStay", aid),
        sa_record("$pageview", aid, type_="track_id_bind"),
    ):
        assert beacon_from_record(record, login_id_is_openid=True) is None


def test_login_id_becomes_openid_only_when_the_site_says_so_and_distinct_id_is_never_used() -> None:
    login_id = login_canary()
    record = click()
    record.update(login_id=login_id, distinct_id=login_id)
    record["identities"]["$identity_login_id"] = login_id
    dropped = beacon_from_record(record, login_id_is_openid=False)
    assert dropped is not None and login_id not in json.dumps(dropped)
    kept = beacon_from_record(record, login_id_is_openid=True)
    assert kept is not None and kept["user"] == {"openid": login_id}
    assert json.dumps(kept).count(login_id) == 1 and kept["anonymous_id"] == record["anonymous_id"]
    # loginWithKey('wx_openid', id) sends login_id "wx_openid+<id>" and identities.wx_openid = id
    keyed = {**record, "login_id": f"wx_openid+{login_id}", "identities": {"wx_openid": login_id}}
    assert beacon_from_record(keyed, True)["user"] == {"openid": login_id}  # type: ignore[index]
    # no anonymous_id field: identities, never distinct_id (the login id after login())
    bare = {k: v for k, v in record.items() if k != "anonymous_id"}
    assert beacon_from_record(bare, True)["anonymous_id"] == record["identities"]["$identity_cookie_id"]  # type: ignore[index]
    nothing = {**bare, "identities": {}}
    assert "anonymous_id" not in beacon_from_record(nothing, True)  # type: ignore[operator]


def test_event_id_is_stable_across_resends_and_made_of_no_identifier() -> None:
    record = click()
    first = beacon_from_record(record, False)["event_id"]  # type: ignore[index]
    resent = {**record, "_flush_time": record["_flush_time"] + 60_000, "anonymous_id": sa_anonymous_id()}
    assert beacon_from_record(resent, False)["event_id"] == first  # type: ignore[index]
    assert beacon_from_record({**record, "_track_id": record["_track_id"] + 1}, False)["event_id"] != first  # type: ignore[index]
    assert beacon_from_record({**record, "time": record["time"] + 1}, False)["event_id"] != first  # type: ignore[index]
    assert "event_id" not in beacon_from_record({**record, "_track_id": None}, False)  # type: ignore[operator]


def test_wrong_types_in_a_record_are_refused() -> None:
    cases = [
        ({**click(), "properties": ["x"]}, "wrong_type:properties"),
        ({**click(), "time": "yesterday"}, "wrong_type:time"),
        ({**click(), "time": 1e300}, "invalid:time"),
        (sa_record("$pageview", **{"$url": 5}), "wrong_type:properties.$url"),
        (sa_record("$pageview", **{"$url": "http://[::1"}), "invalid:properties.$url"),
        (leave("long"), "wrong_type:properties.event_duration"),
        (leave(float("inf")), "invalid:properties.event_duration"),
        (leave(1e308), "invalid:properties.event_duration"),
        (leave(-1), "invalid:properties.event_duration"),
        ({**click(), "pkv": 1, "payloads": []}, "encrypted_payload"),
        ("a string", "not_an_object"),
    ]
    for record, reason in cases:
        with pytest.raises(Rejected) as info:
            beacon_from_record(record, True)
        assert (info.value.status, info.value.reason) == (400, reason)


# --- HTTP against a real collector and broker ---------------------------------------------------


@pytest.fixture
def collector(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path):
    with running_collector(
        kafka_bootstrap,
        topic_prefix,
        *("--cors-origin", ORIGIN, "--login-id-is-openid", "--max-events", "50"),
        log=tmp_path / "collector.log",
    ) as base_url:
        yield base_url


def beacons(bootstrap: str, prefix: str) -> list[dict]:
    return [json.loads(r.value) for r in read_topic(bootstrap, topic_name("beacons.raw", prefix))]


def get(base_url: str, fields: dict, path: str = "/sa.gif", **headers: str) -> tuple[int, dict, bytes]:
    return request(base_url, "GET", f"{path}?project=default&{urlencode(fields)}", headers=headers)


def post(base_url: str, body: str | bytes, content_type: str = "application/x-www-form-urlencoded", path="/sa.gif"):
    status, headers, answer = request(base_url, "POST", path, body, {"Content-Type": content_type, "Origin": ORIGIN})
    return status, headers, (json.loads(answer) if answer.startswith(b"{") else answer)


def test_each_send_mode_lands_one_beacon_per_mapped_event(
    collector: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    aid, login_id = sa_anonymous_id(), login_canary()
    view = sa_record("$pageview", aid, **{"$referrer": ""})
    tap = click(aid)
    left = leave(2.5, aid, login_id)
    view2 = sa_record("$pageview", aid, **{"$url": "https://shop.example.cn/claims/new"})
    unmapped = [
        sa_record("$SignUp", aid, login_id, type_="track_signup"),
        sa_record("", aid, type_="profile_set_once", **{"$first_visit_time": "2026-11-30 10:00:00.000"}),
        sa_record("buy_policy", aid, plan="gold"),
    ]
    status, headers, body = get(collector, sdk_fields(view))  # send_type 'image'
    assert status == 200 and headers["Content-Type"] == "image/gif" and body.startswith(b"GIF89a")
    assert "no-store" in headers["Cache-Control"]
    status, headers, answer = post(collector, urlencode(sdk_fields(tap)))  # 'ajax'
    assert (status, answer) == (200, {"accepted": 1, "ignored": 0, "rejected": 0})
    assert headers["Access-Control-Allow-Origin"] == ORIGIN and headers["Access-Control-Allow-Credentials"] == "true"
    batch = urlencode(sdk_fields([left, *unmapped], "data_list", crc=False))  # batch_send
    assert post(collector, batch)[::2] == (200, {"accepted": 1, "ignored": 3, "rejected": 0})
    beacon_body = urlencode(sdk_fields(view2))  # 'beacon': navigator.sendBeacon's text/plain
    assert post(collector, beacon_body, "text/plain;charset=UTF-8", path="/sa")[::2] == (
        200,
        {"accepted": 1, "ignored": 0, "rejected": 0},
    )
    only_unmapped = urlencode(sdk_fields(unmapped[0]))
    assert post(collector, only_unmapped)[::2] == (200, {"accepted": 0, "ignored": 1, "rejected": 0})

    records = read_topic(kafka_bootstrap, topic_name("beacons.raw", topic_prefix))
    values = [json.loads(r.value) for r in records]
    assert [v["event"] for v in values] == ["page_view", "click", "page_leave", "page_view"]
    assert all(r.key == aid.encode() and json.loads(r.value)["anonymous_id"] == aid for r in records)
    by_event = {v["event"]: v for v in values[:3]}
    assert by_event["page_view"]["page"] == "/products/health?plan=2" and values[3]["page"] == "/claims/new"
    assert ts_ms(by_event["page_view"]["ts"]) == view["time"] and ts_ms(by_event["click"]["ts"]) == tap["time"]
    assert by_event["click"]["element"] == "buy-now" and ts_ms(by_event["page_leave"]["ts"]) == left["time"]
    assert by_event["page_leave"]["duration_ms"] == 2500 and by_event["page_leave"]["user"] == {"openid": login_id}
    assert "user" not in by_event["click"] and "referrer" not in by_event["page_view"]
    assert all(v["network"]["ip"] == "127.0.0.1" and v["event_id"].startswith("sa-") for v in values)
    assert len({v["event_id"] for v in values}) == 4
    assert sum(value.count(login_id.encode()) for value in (r.value for r in records)) == 1  # in user.openid only


def test_a_resent_record_keeps_its_event_id(collector: str, kafka_bootstrap: str, topic_prefix: str) -> None:
    record = click()
    assert get(collector, sdk_fields(record))[0] == 200
    assert get(collector, sdk_fields(record))[0] == 200  # the image retried
    resent = {**record, "_flush_time": record["_flush_time"] + 6000}  # batch_send resends with a new flush time
    assert post(collector, urlencode(sdk_fields([resent], "data_list", crc=False)))[0] == 200
    values = beacons(kafka_bootstrap, topic_prefix)
    assert len(values) == 3 and len({v["event_id"] for v in values}) == 1  # the pipeline keeps one


def test_a_batch_keeps_its_valid_records_and_counts_the_bad_one(
    collector: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    good = [click(), leave(), sa_record("$pageview")]
    bad = {**click(), "time": "not a time"}
    status, _, answer = post(collector, urlencode(sdk_fields([good[0], bad, *good[1:]], "data_list", crc=False)))
    assert (status, answer) == (200, {"accepted": 3, "ignored": 0, "rejected": 1})
    assert sorted(v["event"] for v in beacons(kafka_bootstrap, topic_prefix)) == ["click", "page_leave", "page_view"]
    status, _, answer = post(collector, urlencode(sdk_fields([bad, bad], "data_list", crc=False)))
    assert (status, answer) == (400, {"error": "wrong_type:time", "index": 0})  # nothing valid: refused
    _, _, metrics = request(collector, "GET", "/metrics")
    assert 'seaport_collector_events_accepted_total{endpoint="sensors"} 3' in metrics.decode()


def hostile_requests() -> list[tuple[str, str | bytes, str, int, str]]:
    """(name, GET query or POST body, content type or "" for GET, status, reason)."""
    record = click()
    good = sdk_fields(record)
    bomb = b64(gzip.compress(b"\0" * (50 * 2**20), compresslevel=9))  # 50 MB of zeros, ~50 KB
    envelope = json.dumps({"pkv": 3, "ekey": "ZWtleQ==", "payloads": [b64(b"\x00\x01")]})
    form = "application/x-www-form-urlencoded"
    deep = {**record, "properties": {"$url": "https://shop.example.cn/", "x": json.loads("[" * 60 + "]" * 60)}}
    cases = [
        ("bad base64", urlencode({"data": "%%%not base64%%%"}), 400, "bad_base64"),
        ("bad crc", urlencode({**good, "ext": "crc=1"}), 400, "bad_crc"),
        ("bad gzip", urlencode({"data": b64(b"plain"), "gzip": "1"}), 400, "bad_gzip"),
        ("non-UTF-8", urlencode(sdk_fields(b'{"event": "\xff$pageview"}')), 400, "not_utf8"),
        ("not JSON", urlencode(sdk_fields(b"<xml/>")), 400, "not_json"),
        ("deep nesting", urlencode(sdk_fields(deep)), 400, "too_deep"),
        ("wrong type: data is an array", urlencode(sdk_fields([record])), 400, "not_an_object"),
        ("wrong type: data_list is an object", urlencode(sdk_fields(record, "data_list")), 400, "not_a_batch"),
        ("wrong type: time", urlencode(sdk_fields({**record, "time": [1]})), 400, "wrong_type:time"),
        ("wrong type: $url", urlencode(sdk_fields(sa_record("$pageview", **{"$url": {}}))), 400, "wrong_type:properties.$url"),
        ("wrong type: anonymous_id", urlencode(sdk_fields({**record, "anonymous_id": 7})), 400, "wrong_field:anonymous_id"),
        ("encrypted", urlencode({"data": envelope}), 400, "encrypted_payload"),
        ("no data", "project=default", 400, "missing_data"),
    ]  # fmt: skip
    requests: list[tuple[str, str | bytes, str, int, str]]
    requests = [(name, query, "", status, reason) for name, query, status, reason in cases]
    requests += [(name, body, form, status, reason) for name, body, status, reason in cases]
    requests += [
        ("gzip bomb", urlencode({"data_list": bomb, "gzip": "1"}), form, 413, "gzip_too_large"),
        ("huge data_list", urlencode(sdk_fields([click() for _ in range(51)], "data_list")), form, 413, "too_many_events"),
        ("non-UTF-8 form", b"data=\xff" + b64(click()).encode(), form, 400, "not_a_form"),
        ("json content type", urlencode(good), "application/json", 415, "unsupported_content_type"),
        ("body too large", "data=" + "A" * 300_000, "text/plain", 413, "body_too_large"),
    ]  # fmt: skip
    return requests


def test_hostile_requests_get_4xx_never_5xx_and_nothing_is_produced(
    collector: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    for name, payload, content_type, status, reason in hostile_requests():
        if content_type:
            body = payload if isinstance(payload, bytes) else payload.encode()
            got, headers, answer = request(collector, "POST", "/sa", body, {"Content-Type": content_type})
            assert (got, json.loads(answer)["error"]) == (status, reason), name
        else:
            got, headers, answer = request(collector, "GET", f"/sa.gif?project=default&{payload!s}")
            assert (got, headers.get("X-Seaport-Error")) == (status, reason), name
            assert answer.startswith(b"GIF89a") and headers["Content-Type"] == "image/gif", name
    assert beacons(kafka_bootstrap, topic_prefix) == []
    assert request(collector, "GET", "/healthz")[0] == 200  # still serving


def test_mutated_requests_are_never_a_5xx(collector: str, kafka_bootstrap: str, topic_prefix: str) -> None:
    """Random byte flips in SDK requests (GET and POST): answers < 500, and every 2xx event is on the topic."""
    rng = random.Random(7)
    form = urlencode(sdk_fields([click(), leave(), sa_record("$pageview")], "data_list")).encode()
    query = urlencode(sdk_fields(click())).encode()
    accepted = 0
    for i in range(120):
        mutated = bytearray(form if i % 2 else query)
        for _ in range(rng.randrange(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        if i % 2:
            status, _, answer = request(collector, "POST", "/sa", bytes(mutated), {"Content-Type": "text/plain"})
            accepted += json.loads(answer)["accepted"] if status == 200 else 0
        else:
            path = "/sa.gif?" + quote_from_bytes(bytes(mutated), safe="=&%+/;:@$,!*'()~")  # a flip may be a % too
            status, _, answer = request(collector, "GET", path)
            accepted += status == 200
        assert status < 500, bytes(mutated)
    assert len(beacons(kafka_bootstrap, topic_prefix)) == accepted


def test_cors_preflight_and_origins(collector: str) -> None:
    status, headers, _ = request(
        collector, "OPTIONS", "/sa", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert status == 204 and headers["Access-Control-Allow-Origin"] == ORIGIN
    assert headers["Access-Control-Allow-Credentials"] == "true" and "POST" in headers["Access-Control-Allow-Methods"]
    assert request(collector, "OPTIONS", "/sa.gif", headers={"Origin": "https://evil.example"})[0] == 403
    body = urlencode(sdk_fields(click()))
    status, headers, _ = request(
        collector, "POST", "/sa", body, {"Content-Type": "text/plain", "Origin": "https://evil.example"}
    )
    assert status == 403 and "Access-Control-Allow-Credentials" not in headers


def test_login_id_is_dropped_unless_the_collector_is_told_it_is_the_openid(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    login_id = login_canary()
    record = click()
    record.update(login_id=login_id, distinct_id=login_id)
    with running_collector(kafka_bootstrap, topic_prefix) as base_url:  # no --login-id-is-openid
        assert get(base_url, sdk_fields(record))[0] == 200
    records = read_topic(kafka_bootstrap, topic_name("beacons.raw", topic_prefix))
    assert len(records) == 1 and login_id.encode() not in records[0].value and login_id.encode() != records[0].key


def test_kafka_down_answers_503(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with running_collector(dead, "", "--delivery-timeout-ms", "1000", "--cors-origin", ORIGIN) as base_url:
        status, headers, _ = get(base_url, sdk_fields(click()))
        assert (status, headers["X-Seaport-Error"]) == (503, "kafka_unavailable")
        assert post(base_url, urlencode(sdk_fields(click())))[::2] == (503, {"error": "kafka_unavailable"})


# --- logs: an OpenId in the request line or a cookie is never written ---------------------------


def canary_requests(canary: str) -> tuple[list[bytes], list[str]]:
    """Raw requests carrying `canary` in every place a request can; and the strings no log may hold."""
    record = click(login_id=canary)
    fields = sdk_fields(record)
    cookie = "sensorsdata2015jssdkcross=" + quote(json.dumps({"distinct_id": canary, "identities": b64(canary)}))
    query = urlencode(fields)
    lines = [
        f"GET /sa.gif?project=default&{query} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}",  # 200
        f"GET /sa?openid={canary}&{query} HTTP/1.1\r\nHost: x",
        f"GET /sa.gif?data={canary} HTTP/1.1\r\nHost: x",  # bad base64
        f"GET /sa.gif?{urlencode({**fields, 'ext': 'crc=1'})}&u={canary} HTTP/1.1\r\nHost: x",  # bad crc
        f"GET /sa.gif/{canary}?{query} HTTP/1.1\r\nHost: x",  # not a route
        f"GET /sa.gif?data={canary * 400} HTTP/1.1\r\nHost: x",  # request line too long for aiohttp
        f"GET /sa.gif?o={canary}\x01 HTTP/1.1\r\nHost: x",  # a malformed request line
        f"GET /sa.gif?o={canary} HTTP/1.1\r\nHost: x\r\nCookie: {cookie * 200}",  # header too large
        f"POST /sa?openid={canary} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 9",
    ]
    raw = [line.encode() + b"\r\n\r\n" for line in lines]
    raw[-1] += b"data=%ZZ" + canary.encode()[:1]  # a body that is not one
    return raw, [canary, quote(canary), fields["data"], quote(fields["data"])]


def send_raw(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(raw)
        return sock.recv(64)  # the status line; the request is answered before the next is sent


def test_openid_in_a_get_query_or_cookie_never_reaches_the_log_file(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """The real `seaport collect`: its request log and aiohttp's own error reports, in one file."""
    canary = login_canary()
    log = tmp_path / "collector.log"
    raw, needles = canary_requests(canary)
    with running_collector(kafka_bootstrap, topic_prefix, "--login-id-is-openid", log=log) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        answers = [send_raw(port, r) for r in raw]
    assert answers[0].startswith(b"HTTP/1.1 200") and all(a.startswith(b"HTTP/1.") for a in answers)
    written = log.read_text()
    assert "GET /sa.gif 200" in written and "GET /sa.gif 400" in written  # it does log requests, by route
    for needle in needles:
        assert needle not in written
    values = beacons(kafka_bootstrap, topic_prefix)  # the two valid requests did get in
    assert [v["user"] for v in values] == [{"openid": canary}] * 2


def test_openid_is_in_no_log_record_at_any_level(
    kafka_bootstrap: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """In-process, every logger captured at DEBUG, aiohttp's server log filtered as `seaport collect` does."""
    canary = login_canary()
    raw, needles = canary_requests(canary)
    limits = Limits(login_id_is_openid=True, rate_per_ip=0)
    server_log, reduce = logging.getLogger("aiohttp.server"), _WithoutClientDetails()

    async def serve_and_send() -> None:
        app = make_app(kafka_bootstrap, limits, topic_prefix)
        runner = web.AppRunner(
            app, access_log=logging.getLogger("seaport.collector"), access_log_class=RouteOnlyAccessLogger
        )
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            for r in raw:
                await asyncio.to_thread(send_raw, port, r)
        finally:
            await runner.cleanup()

    caplog.set_level(logging.DEBUG)
    server_log.addFilter(reduce)
    try:
        asyncio.run(serve_and_send())
    finally:
        server_log.removeFilter(reduce)
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "GET /sa.gif 200" in text  # the request log was captured
    for needle in needles:
        assert needle not in text
    assert len(beacons(kafka_bootstrap, topic_prefix)) == 2  # the two valid requests (one with an extra parameter)
