"""Snowplow tracker endpoints: decoding and mapping, then a real collector against the real broker.

`POST /com.snowplowanalytics.snowplow/tp2` and `GET /i` must land exactly one beacon per mapped
event, one page_leave per page view from its pings, acknowledge what is not mapped, strip every
identifier under `SP-Anonymous`, answer 400 (never 5xx, never 413) to hostile input, and never
write an identifier of the query to the log. Identifiers are made by a seeded RNG at run time.
"""

from __future__ import annotations

import base64
import http.client
import json
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from schemas.safejson import MAX_JSON_DEPTH
from seaport.collector.events import Rejected, RequestFacts, beacon_message
from seaport.collector.snowplow import IDLE_ENV, PageLeaves, decode
from seaport.devtools.broker import free_port
from seaport.devtools.loadtest import running_collector, topic_events
from seaport.kafka.clients import make_client
from seaport.kafka.topics import topic_name
from tests.helpers import read_all

RNG = random.Random(20261202)
ORIGIN = "https://shop.example.cn"
TP2 = "/com.snowplowanalytics.snowplow/tp2"
IGLU = "iglu:com.snowplowanalytics.snowplow/"
PV_MS = 1_795_000_000_000  # 2026-11-18T11:06:40Z, client time of the page views


def fake_uuid() -> str:
    return str(uuid.UUID(int=RNG.getrandbits(128), version=4))


def contexts(page_id: str) -> dict:
    return {
        "schema": IGLU + "contexts/jsonschema/1-0-0",
        "data": [{"schema": IGLU + "web_page/jsonschema/1-0-0", "data": {"id": page_id}}],
    }


def link_click(**data: str) -> dict:
    return {
        "schema": IGLU + "unstruct_event/jsonschema/1-0-0",
        "data": {"schema": IGLU + "link_click/jsonschema/1-0-1", "data": data},
    }


def b64url(doc: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


class Visitor:
    """One browser: the tracker's ids, made at run time."""

    def __init__(self) -> None:
        self.duid, self.sid = fake_uuid(), fake_uuid()
        self.uid = f"test-openid-{RNG.getrandbits(64):016x}"

    def event(self, e: str, ms: int, page_id: str | None = None, get: bool = False, **extra: object) -> dict:
        """An event as the tracker builds it: POST bodies carry JSON text, GETs base64url."""
        fields = {
            "e": e, "eid": fake_uuid(), "dtm": str(ms), "tv": "js-4.6.8", "tna": "sp", "aid": "seaport-test",
            "p": "web", "url": "https://www.example.cn/products/health?plan=gold#faq",
            "refr": "https://search.example.com/", "duid": self.duid, "sid": self.sid, "vid": "1",
            "uid": self.uid, "lang": "zh-CN", "res": "390x844", "vp": "390x700", "cookie": "1",
        }  # fmt: skip
        if page_id:
            fields["cx" if get else "co"] = b64url(contexts(page_id)) if get else json.dumps(contexts(page_id))
        for name, doc in extra.items():
            if name == "ue":
                fields["ue_px" if get else "ue_pr"] = b64url(doc) if get else json.dumps(doc)
            else:
                fields[name] = doc  # type: ignore[assignment]
        return fields


def facts() -> RequestFacts:
    return RequestFacts("198.51.100.7", "Mozilla/5.0 test", False, datetime.now(UTC))


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def ms_of(ts: str) -> int:
    return round(datetime.fromisoformat(ts).timestamp() * 1000)


# --- decoding and mapping (no Kafka) -------------------------------------------------------------


def test_page_view_and_link_click_map_to_beacons_in_both_encodings() -> None:
    v = Visitor()
    for get in (False, True):
        pv = v.event("pv", PV_MS, fake_uuid(), get=get)
        d = decode(pv, facts(), login_id_is_openid=True)
        assert d.kind == "page_view" and d.ms == PV_MS and d.beacon is not None
        assert d.beacon == {
            "schema": "beacon/1", "event": "page_view", "event_id": "sp-" + pv["eid"], "ts": iso(PV_MS),
            "page": "/products/health?plan=gold", "referrer": "https://search.example.com/",
            "anonymous_id": v.duid, "session_id": v.sid, "user": {"openid": v.uid},
        }  # fmt: skip
        message = json.loads(beacon_message(d.beacon, facts()).value)
        assert ms_of(message["ts"]) == PV_MS and message["network"]["ip"] == "198.51.100.7"
        for data, element in [
            ({"targetUrl": "https://www.example.cn/buy", "elementId": "buy-now", "elementContent": "Buy"}, "buy-now"),
            ({"targetUrl": "https://www.example.cn/buy", "elementContent": "Buy <b>now</b>"}, "Buy <b>now</b>"),
            ({"targetUrl": "https://www.example.cn/buy", "elementId": ""}, "https://www.example.cn/buy"),
        ]:
            click = decode(v.event("ue", PV_MS + 5, get=get, ue=link_click(**data)), facts())
            assert click.kind == "click" and click.beacon is not None and click.beacon["element"] == element
            assert "user" not in click.beacon  # the login id is dropped unless it is the OpenId


def test_unmapped_events_are_ignored_and_ids_fall_back_or_vanish() -> None:
    v = Visitor()
    other = {"schema": IGLU + "unstruct_event/jsonschema/1-0-0", "data": {"schema": "iglu:com.acme/x/jsonschema/1-0-0", "data": {}}}  # fmt: skip
    assert decode(v.event("se", PV_MS, se_ca="video", se_ac="play"), facts()).kind == "ignored"
    assert decode(v.event("tr", PV_MS), facts()).kind == "ignored"
    assert decode(v.event("ue", PV_MS, ue=other), facts()).kind == "ignored"
    assert decode(v.event("pp", PV_MS), facts()).kind == "ignored"  # a ping without a web_page context
    no_duid = v.event("pv", PV_MS)
    del no_duid["duid"]
    assert decode(no_duid, facts()).beacon["anonymous_id"] == v.sid  # type: ignore[index]
    anonymous = [decode(v.event("pv", PV_MS, fake_uuid()), facts(), anonymous=True, login_id_is_openid=True).beacon for _ in range(3)]  # fmt: skip
    for beacon in anonymous:
        assert beacon is not None and "user" not in beacon and "session_id" not in beacon
        assert beacon["anonymous_id"].startswith("sp-anon-")
        assert v.duid not in json.dumps(beacon) and v.uid not in json.dumps(beacon) and v.sid not in json.dumps(beacon)
    assert len({b["anonymous_id"] for b in anonymous if b}) == 3  # nothing links two events


def hostile_events(v: Visitor) -> list[tuple[str, object, str]]:
    """(name, event fields, reason): events no tracker sends."""
    deep = "[" * (MAX_JSON_DEPTH + 5) + "]" * (MAX_JSON_DEPTH + 5)
    return [
        ("not an object", ["e", "pv"], "not_an_object"),
        ("a number value", {**v.event("pv", PV_MS), "dtm": PV_MS}, "not_a_string"),
        ("no event type", {"url": "https://www.example.cn/"}, "missing_field:e"),
        ("bad base64url cx", {**v.event("pv", PV_MS), "cx": "***"}, "bad_base64:cx"),
        ("base64url of no JSON", {**v.event("pv", PV_MS), "cx": b64url("x")[:-2] + "!!"}, "bad_base64:cx"),
        ("cx not JSON", {**v.event("pv", PV_MS), "cx": base64.urlsafe_b64encode(b"{nope").decode()}, "not_json"),
        ("cx not UTF-8", {**v.event("pv", PV_MS), "cx": base64.urlsafe_b64encode(b'{"a":"\xff"}').decode()}, "not_json"),
        ("bad ue_px", v.event("ue", PV_MS) | {"ue_px": "%%%"}, "bad_base64:ue_px"),
        ("co not JSON", {**v.event("pv", PV_MS), "co": "{"}, "not_json"),
        ("co too deep", {**v.event("pv", PV_MS), "co": deep}, "too_deep"),
        ("co not contexts", {**v.event("pv", PV_MS), "co": '{"data": 5}'}, "invalid:contexts"),
        ("ue not an event", v.event("ue", PV_MS, ue=[1]), "invalid:unstruct_event"),
        ("link_click without data", v.event("ue", PV_MS, ue={"data": {"schema": IGLU + "link_click/jsonschema/1-0-1"}}), "invalid:link_click"),
        ("click without element", v.event("ue", PV_MS, ue=link_click(targetUrl="")), "invalid:a_click_needs_an_element"),
        ("dtm not digits", v.event("pv", PV_MS) | {"dtm": "1e12"}, "wrong_field:dtm"),
        ("dtm after 9999", v.event("pv", PV_MS) | {"dtm": "999999999999999"}, "wrong_field:dtm"),
        ("dtm after 2100", v.event("pv", PV_MS) | {"dtm": "5000000000000"}, "wrong_field:ts"),
        ("no url", {k: x for k, x in v.event("pv", PV_MS).items() if k != "url"}, "missing_field:page"),
        ("bad url", v.event("pv", PV_MS) | {"url": "http://[::1/x"}, "wrong_field:url"),
        ("long eid", v.event("pv", PV_MS) | {"eid": "e" * 80}, "too_long:event_id"),
        ("lone surrogate", v.event("pv", PV_MS) | {"url": "https://www.example.cn/\ud800"}, "wrong_field:page"),
    ]  # fmt: skip


def test_hostile_events_are_refused_with_a_reason_naming_no_value() -> None:
    v = Visitor()
    for name, fields, reason in hostile_events(v):
        with pytest.raises(Rejected) as refused:
            d = decode(fields, facts())
            assert d.beacon is not None, name
            beacon_message(d.beacon, facts())
        assert (refused.value.status, refused.value.reason) == (400, reason), name


def test_page_leaves_one_per_page_view_spanning_view_to_last_ping() -> None:
    leaves, v, rejected = PageLeaves(idle_s=3600), Visitor(), []
    seen, unseen, quiet = fake_uuid(), fake_uuid(), fake_uuid()
    leaves.view(seen, PV_MS)
    leaves.view(quiet, PV_MS)  # no ping: no page_leave (its duration is unknown)
    for ms in (PV_MS + 30_000, PV_MS + 10_000, PV_MS + 20_000):  # out of order, as retries may arrive
        d = decode(v.event("pp", ms, seen), facts())
        leaves.ping(seen, d.ms, d.beacon, facts())  # type: ignore[arg-type]
    d = decode(v.event("pp", PV_MS + 10_000, unseen), facts())
    leaves.ping(unseen, d.ms, d.beacon, facts())  # type: ignore[arg-type]  # its page view went elsewhere
    leaves.close(everything=False, rejected=rejected.append)
    assert leaves.unsent == [] and len(leaves.open) == 3  # nothing idle yet
    leaves.close(everything=True, rejected=rejected.append)
    assert rejected == [] and not leaves.open
    (message,) = leaves.unsent
    leave = json.loads(message.value)
    assert leave["event"] == "page_leave" and leave["event_id"] == f"sp-pl-{seen}"
    assert leave["duration_ms"] == 30_000 and ms_of(leave["ts"]) == PV_MS + 30_000
    assert leave["page"] == "/products/health?plan=gold" and leave["anonymous_id"] == v.duid


# --- a real collector on the real broker ---------------------------------------------------------


def request(base_url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        conn.close()


def post(base_url: str, events: list, **headers: str) -> tuple[int, dict, dict]:
    body = json.dumps({"schema": IGLU + "payload_data/jsonschema/1-0-4", "data": events}).encode()
    status, answer_headers, answer = request(
        base_url, "POST", TP2, body, {"Content-Type": "application/json; charset=UTF-8", **headers}
    )
    return status, answer_headers, json.loads(answer)


def get(base_url: str, fields: dict, **headers: str) -> tuple[int, dict, bytes]:
    return request(base_url, "GET", "/i?" + urlencode(fields, quote_via=quote), headers=headers)


def beacons(bootstrap: str, prefix: str) -> list[dict]:
    client = make_client("confluent", bootstrap)
    try:
        return [json.loads(r.value) for r in read_all(client, topic_name("beacons.raw", prefix))]
    finally:
        client.close()


def wait_for_page_leaves(bootstrap: str, prefix: str, count: int, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        values = beacons(bootstrap, prefix)
        if sum(v["event"] == "page_leave" for v in values) >= count or time.monotonic() > deadline:
            return values
        time.sleep(0.3)


@pytest.fixture
def collector(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, monkeypatch) -> Iterator[tuple[str, Path]]:
    monkeypatch.setenv(IDLE_ENV, "1")  # a page view closes 1 s after its last ping
    log = tmp_path / "collector.log"
    options = ("--cors-origin", ORIGIN, "--login-id-is-openid", "--max-body-bytes", "65536", "--rate-limit", "0")
    with running_collector(kafka_bootstrap, topic_prefix, *options, log=log) as base_url:
        yield base_url, log


def visit(v: Visitor, get_mode: bool, page_id: str) -> tuple[list[dict], dict]:
    """A page view, a link click, a structured event, another self-describing event and 3 pings."""
    other = {"schema": IGLU + "unstruct_event/jsonschema/1-0-0", "data": {"schema": "iglu:com.acme/x/jsonschema/1-0-0", "data": {}}}  # fmt: skip
    events = [
        v.event("pv", PV_MS, page_id, get=get_mode),
        v.event("ue", PV_MS + 1500, page_id, get=get_mode, ue=link_click(targetUrl="https://www.example.cn/buy", elementId="buy-now")),
        v.event("se", PV_MS + 1600, page_id, get=get_mode, se_ca="video", se_ac="play"),
        v.event("ue", PV_MS + 1700, page_id, get=get_mode, ue=other),
        *(v.event("pp", PV_MS + s * 1000, page_id, get=get_mode, pp_mix="0", pp_max="0") for s in (10, 20, 30)),
    ]  # fmt: skip
    return events, {"page_view": events[0]["eid"], "click": events[1]["eid"]}


def check_visit(values: list[dict], v: Visitor, ids: dict, page_id: str) -> None:
    mine = [x for x in values if x["anonymous_id"] == v.duid]
    assert sorted(x["event"] for x in mine) == ["click", "page_leave", "page_view"]  # each exactly once
    by_event = {x["event"]: x for x in mine}
    assert by_event["page_view"]["event_id"] == "sp-" + ids["page_view"]
    assert by_event["click"]["event_id"] == "sp-" + ids["click"] and by_event["click"]["element"] == "buy-now"
    leave = by_event["page_leave"]
    assert leave["event_id"] == f"sp-pl-{page_id}" and leave["duration_ms"] == 30_000
    for x in mine:
        assert x["page"] == "/products/health?plan=gold" and x["session_id"] == v.sid
        assert x["user"] == {"openid": v.uid} and x["network"]["ip"] == "127.0.0.1"
    assert ms_of(by_event["page_view"]["ts"]) == PV_MS and ms_of(leave["ts"]) == PV_MS + 30_000


def test_post_and_get_land_each_mapped_event_once_with_one_page_leave(
    collector: tuple[str, Path], kafka_bootstrap: str, topic_prefix: str
) -> None:
    base_url, _ = collector
    post_visitor, get_visitor = Visitor(), Visitor()
    post_page, get_page = fake_uuid(), fake_uuid()
    events, post_ids = visit(post_visitor, False, post_page)
    status, headers, answer = post(base_url, events, Origin=ORIGIN)
    assert (status, answer) == (200, {"accepted": 2, "acknowledged": 5, "rejected": 0})
    assert headers["Access-Control-Allow-Origin"] == ORIGIN and headers["Access-Control-Allow-Credentials"] == "true"
    assert post(base_url, events[-3:])[0] == 200  # the tracker resends pings it saw fail: still one leave
    events, get_ids = visit(get_visitor, True, get_page)
    for fields in events:
        status, headers, body = get(base_url, fields, Origin=ORIGIN)
        assert status == 200 and body.startswith(b"GIF89a") and headers["Content-Type"] == "image/gif"
        assert headers["Access-Control-Allow-Credentials"] == "true" and "no-store" in headers["Cache-Control"]
    values = wait_for_page_leaves(kafka_bootstrap, topic_prefix, 2)
    assert len(values) == 6
    check_visit(values, post_visitor, post_ids, post_page)
    check_visit(values, get_visitor, get_ids, get_page)
    _, _, metrics = request(base_url, "GET", "/metrics")
    for line in ('endpoint="snowplow_tp2"} 2', 'endpoint="snowplow_i"} 2', 'endpoint="snowplow_page_leave"} 2'):
        assert "seaport_collector_events_accepted_total{" + line in metrics.decode()


def test_cors_preflight_allows_credentials_and_the_trackers_headers(collector: tuple[str, Path]) -> None:
    base_url, _ = collector
    for path in (TP2, "/i"):
        status, headers, _ = request(
            base_url,
            "OPTIONS",
            path,
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST" if path == TP2 else "GET",
                "Access-Control-Request-Headers": "content-type,sp-anonymous",
            },
        )
        assert status == 204 and headers["Access-Control-Allow-Origin"] == ORIGIN
        assert headers["Access-Control-Allow-Credentials"] == "true"
        allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
        assert {"content-type", "sp-anonymous"} <= allowed and "POST" in headers["Access-Control-Allow-Methods"]
        status, headers, _ = request(base_url, "OPTIONS", path, headers={"Origin": "https://evil.example.com"})
        assert status == 403 and "Access-Control-Allow-Credentials" not in headers


def test_sp_anonymous_strips_every_identifier(
    collector: tuple[str, Path], kafka_bootstrap: str, topic_prefix: str
) -> None:
    base_url, _ = collector
    v = Visitor()
    page_id = fake_uuid()
    events = [v.event("pv", PV_MS, page_id), v.event("pp", PV_MS + 10_000, page_id)]
    assert post(base_url, events, **{"SP-Anonymous": "*", "Origin": ORIGIN})[0] == 200
    assert get(base_url, v.event("pv", PV_MS + 20_000, fake_uuid(), get=True), **{"SP-Anonymous": "*"})[0] == 200
    values = wait_for_page_leaves(kafka_bootstrap, topic_prefix, 1)
    assert sorted(x["event"] for x in values) == ["page_leave", "page_view", "page_view"]
    text = json.dumps(values)
    assert v.duid not in text and v.sid not in text and v.uid not in text and "127.0.0.1" not in text
    assert all(x["anonymous_id"].startswith("sp-anon-") and "session_id" not in x and "user" not in x for x in values)
    assert len({x["anonymous_id"] for x in values}) == 3 and all(x["network"].get("ip", "") == "" for x in values)
    assert next(x for x in values if x["event"] == "page_leave")["duration_ms"] == 10_000


def test_hostile_requests_get_400_never_5xx_and_produce_nothing(
    collector: tuple[str, Path], kafka_bootstrap: str, topic_prefix: str
) -> None:
    base_url, _ = collector
    v = Visitor()
    json_type = {"Content-Type": "application/json"}
    payload = IGLU + "payload_data/jsonschema/1-0-4"
    for name, fields, reason in hostile_events(v):  # each alone, in a batch and as a GET
        assert post(base_url, [fields])[0:3:2] == (400, {"error": reason}), name
        if isinstance(fields, dict) and all(isinstance(x, str) for x in fields.values()) and name != "lone surrogate":
            status, headers, body = get(base_url, fields)
            assert (status, headers["X-Seaport-Error"]) == (400, reason) and body.startswith(b"GIF89a"), name
    bodies = [
        ("not json", b"{not json", "not_json"),
        ("not UTF-8", b'{"schema": "\xff\xfe"}', "not_json"),
        ("too deep", b"[" * 5000 + b"]" * 5000, "too_deep"),
        ("wrong schema", json.dumps({"schema": "iglu:com.acme/x/jsonschema/1-0-0", "data": []}).encode(), "wrong_schema"),
        ("data not a list", json.dumps({"schema": payload, "data": {}}).encode(), "not_a_batch"),
        ("empty batch", json.dumps({"schema": payload, "data": []}).encode(), "empty_batch"),
        ("huge batch", json.dumps({"schema": payload, "data": [{"e": "se"}] * 201}).encode(), "too_many_events"),
        ("body too large", json.dumps({"schema": payload, "data": [v.event("pv", PV_MS)] * 150}).encode(), "body_too_large"),
    ]  # fmt: skip
    for name, body, reason in bodies:
        status, _, answer = request(base_url, "POST", TP2, body, json_type)
        assert (status, json.loads(answer)) == (400, {"error": reason}), name
    for name, query, reason in [
        ("not UTF-8", "e=pv&url=%FF%FE&dtm=1", "not_utf8"),
        ("too many fields", "&".join(f"f{i}=1" for i in range(501)), "too_many_fields"),
        ("no event type", "url=https%3A%2F%2Fwww.example.cn%2F", "missing_field:e"),
    ]:
        status, headers, _ = request(base_url, "GET", "/i?" + query)
        assert (status, headers["X-Seaport-Error"]) == (400, reason), name
    assert topic_events(kafka_bootstrap, topic_name("beacons.raw", topic_prefix)) == 0

    # A batch with bad events among good ones: the good ones in, 200 (else they are resent forever).
    good = [v.event("pv", PV_MS, fake_uuid()), v.event("ue", PV_MS, ue=link_click(elementId="ok"))]
    bad = [fields for _, fields, _ in hostile_events(v)[:3]]
    status, _, answer = post(base_url, [bad[0], good[0], bad[1], good[1], bad[2]])
    assert (status, answer) == (200, {"accepted": 2, "acknowledged": 0, "rejected": 3})
    assert sorted(x["event_id"] for x in beacons(kafka_bootstrap, topic_prefix)) == sorted(
        "sp-" + g["eid"] for g in good
    )
    _, _, metrics = request(base_url, "GET", "/metrics")
    assert 'seaport_collector_requests_rejected_total{reason="not_an_object"} 2' in metrics.decode()


def test_identifiers_in_the_query_and_the_cookie_never_reach_the_log(collector: tuple[str, Path]) -> None:
    base_url, log = collector
    v = Visitor()
    cookie = f"_sp_id.1fff={fake_uuid()}.1700000000.1.1700000000..{fake_uuid()}..."
    headers = {"Cookie": cookie, "Origin": ORIGIN, "User-Agent": "Mozilla/5.0 test"}
    assert get(base_url, v.event("pv", PV_MS, fake_uuid(), get=True), **headers)[0] == 200
    assert get(base_url, v.event("pv", PV_MS, get=True) | {"cx": "***"}, **headers)[0] == 400
    assert get(base_url, {"e": "pv", "uid": v.uid, "duid": v.duid, "dtm": "x"}, **headers)[0] == 400
    assert request(base_url, "GET", f"/i/{v.uid}?duid={v.duid}")[0] == 404
    assert request(base_url, "POST", f"/i?uid={v.uid}", b"{}", headers)[0] == 405
    written = log.read_text()
    assert "GET /i 200" in written and "GET /i 400" in written  # it does log the requests, by route
    for secret in (v.uid, v.duid, v.sid, cookie.split("=")[1][:36], "_sp_id", "uid=", "duid="):
        assert secret not in written


def test_kafka_down_answers_503_with_cors_so_the_tracker_retries(tmp_path: Path) -> None:
    nobody = f"127.0.0.1:{free_port()}"  # no broker there
    options = ("--cors-origin", ORIGIN, "--delivery-timeout-ms", "1000")
    with running_collector(nobody, "nobroker.", *options, log=tmp_path / "collector.log") as base_url:
        v = Visitor()
        status, headers, answer = post(base_url, [v.event("pv", PV_MS)], Origin=ORIGIN)
        assert (status, answer) == (503, {"error": "kafka_unavailable"}) and headers["Retry-After"]
        assert headers["Access-Control-Allow-Credentials"] == "true"
        assert get(base_url, v.event("pv", PV_MS, get=True))[0] == 503
        status, _, answer = post(base_url, [v.event("se", PV_MS)])  # nothing to produce: acknowledged
        assert (status, answer) == (200, {"accepted": 0, "acknowledged": 1, "rejected": 0})
