"""The collector against a real broker: what a 2xx promises, every 4xx, Kafka down and back, load.

Each test runs `seaport collect` as a real process on a free port, writing under its own topic
prefix, and reads the topics back with `seaport.kafka.clients`. Identifiers are made at run time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import random
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

import pytest

from seaport.collector.app import _WithoutClientDetails
from seaport.collector.events import beacon_from_query
from seaport.collector.limits import RateLimiter, client_ip, parse_networks
from seaport.collector.metrics import CollectorMetrics
from seaport.devtools.broker import Broker, free_port
from seaport.devtools.loadtest import load_test, report, running_collector, topic_events
from seaport.devtools.replay import replay_over_http
from seaport.kafka.clients import make_client
from seaport.kafka.topics import create_topics, topic_name
from tests.helpers import read_all

RNG = random.Random(4)


# --- helpers ---------------------------------------------------------------------------------


def request(
    base_url: str,
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    source: str | None = None,
) -> tuple[int, dict, bytes]:
    """One HTTP request with http.client (optionally from another loopback source address)."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30, source_address=(source, 0) if source else None)
    try:
        data = body.encode() if isinstance(body, str) else body
        conn.request(method, path, body=data, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        conn.close()


def post_json(
    base_url: str, path: str, payload: object, content_type: str = "application/json", **headers: str
) -> tuple[int, dict]:
    status, _, body = request(base_url, "POST", path, json.dumps(payload), {"Content-Type": content_type, **headers})
    return status, json.loads(body) if body else {}


def read_topic(bootstrap: str, topic: str) -> list:
    """Every record of a topic, all partitions."""
    client = make_client("confluent", bootstrap)
    try:
        return read_all(client, topic)
    finally:
        client.close()


def anonymous_id() -> str:
    return f"c-{RNG.getrandbits(64):016x}"


def beacon(**fields: object) -> dict:
    event = {
        "schema": "beacon/1",
        "event_id": str(uuid.uuid4()),
        "event": "page_view",
        "ts": "2026-11-24T08:15:30.123Z",
        "anonymous_id": anonymous_id(),
        "page": "/policy/query",
    }
    event.update(fields)
    return event


def fake_ip() -> str:
    return f"203.0.113.{RNG.randrange(1, 255)}"  # TEST-NET-3, made at run time


@pytest.fixture
def collector(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path):
    """A collector process on the session broker, under this test's topic prefix."""
    with running_collector(
        kafka_bootstrap,
        topic_prefix,
        "--cors-origin",
        "https://shop.example.cn",
        "--trusted-proxy",
        "127.0.0.2",
        "--max-events",
        "50",
        "--max-body-bytes",
        "65536",
        log=tmp_path / "collector.log",
    ) as base_url:
        yield base_url


# --- 2xx: on the topic exactly once ---------------------------------------------------------


def test_every_accepted_event_is_on_the_topic_exactly_once(
    collector: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    sent: list[dict] = []
    for i in range(15):  # pixels: the query is the event
        event = beacon(event="page_view", page=f"/products/health?i={i}")
        sent.append(event)
        query = urlencode({k: v for k, v in event.items() if k != "schema"})
        status, headers, body = request(collector, "GET", "/p.gif?" + query)
        assert status == 200 and headers["Content-Type"] == "image/gif" and body.startswith(b"GIF89a")
        assert "no-store" in headers["Cache-Control"]
    for content_type in ("application/json", "text/plain"):  # text/plain: what sendBeacon sends
        batch = [
            beacon(event="click", element="buy-now"),
            beacon(event="page_leave", duration_ms=4200),
            beacon(event="app_launch", user={"openid": "o" + uuid.uuid4().hex[:27], "city": "Shanghai"}),
        ]
        sent += batch
        status, answer = post_json(collector, "/collect", batch, content_type)
        assert (status, answer) == (200, {"accepted": 3})
    assert post_json(collector, "/collect", {"events": [beacon()]})[0] == 200  # the object form
    status, answer = post_json(collector, "/collect", [beacon(event_id="", ts="")] * 2)  # ids filled in
    assert (status, answer) == (200, {"accepted": 2})

    records = read_topic(kafka_bootstrap, topic_name("beacons.raw", topic_prefix))
    values = [json.loads(r.value) for r in records]
    counts = Counter(v["event_id"] for v in values)
    assert all(counts[e["event_id"]] == 1 for e in sent)
    assert len(values) == len(sent) + 1 + 2 and len(counts) == len(values)  # filled ids are distinct uuids
    for record, value in zip(records, values, strict=True):
        assert record.key == value["anonymous_id"].encode()  # the contract's key
        assert value["network"]["ip"] == "127.0.0.1" and value["received_at"] and value["opt_out"] is False
    by_id = {v["event_id"]: v for v in values}
    for event in sent:
        assert by_id[event["event_id"]]["page"] == event["page"]
        assert by_id[event["event_id"]]["event"] == event["event"]


def test_consent_and_access_logs_reach_their_topics(collector: str, kafka_bootstrap: str, topic_prefix: str) -> None:
    openid = "o" + uuid.uuid4().hex[:27]
    status, _ = post_json(collector, "/consent", {"subject": {"openid": openid}, "analytics": "granted"}, "text/plain")
    assert status == 200
    ips = [fake_ip() for _ in range(3)]
    lines = "\n".join(
        json.dumps(
            {
                "schema": "access/1",
                "ts": "2026-11-24T08:00:00+08:00",
                "ip": ip,
                "method": "POST",
                "path": "/api/login",
                "status": 401,
                "bytes": 12,
            }
        )
        for ip in ips
    )
    status, _, body = request(collector, "POST", "/logs", lines + "\n\n", {"Content-Type": "application/x-ndjson"})
    assert (status, json.loads(body)) == (200, {"accepted": 3})

    consent = read_topic(kafka_bootstrap, topic_name("consent.events", topic_prefix))
    assert len(consent) == 1 and consent[0].key == openid.encode()
    change = json.loads(consent[0].value)
    assert change["schema"] == "consent/1" and change["analytics"] == "granted" and change["ts"]
    logs = read_topic(kafka_bootstrap, topic_name("access_logs.raw", topic_prefix))
    assert sorted(r.key.decode() for r in logs) == sorted(ips)  # a log keeps the IP it logged


def test_gpc_and_dnt_mark_events_as_opted_out(collector: str, kafka_bootstrap: str, topic_prefix: str) -> None:
    gpc, dnt, plain = beacon(), beacon(), beacon()
    assert post_json(collector, "/collect", [gpc], **{"Sec-GPC": "1"})[0] == 200
    assert post_json(collector, "/collect", [dnt], DNT="1")[0] == 200
    assert post_json(collector, "/collect", [plain], DNT="0")[0] == 200
    status, _, _ = request(
        collector, "GET", f"/p.gif?event=page_view&anonymous_id={anonymous_id()}&page=/x", headers={"Sec-GPC": "1"}
    )
    assert status == 200
    values = [json.loads(r.value) for r in read_topic(kafka_bootstrap, topic_name("beacons.raw", topic_prefix))]
    opt_out = {v["event_id"]: v["opt_out"] for v in values}
    assert opt_out[gpc["event_id"]] is True and opt_out[dnt["event_id"]] is True
    assert opt_out[plain["event_id"]] is False
    assert sum(opt_out.values()) == 3


def test_client_ip_comes_from_the_socket_or_a_trusted_proxy_only(
    collector: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    real, spoofed = fake_ip(), fake_ip()
    via_proxy = beacon(network={"ip": spoofed, "user_agent": "Mozilla/5.0 test"})
    direct = beacon(network={"ip": spoofed})
    # 127.0.0.2 is the configured trusted proxy; 127.0.0.1 is not.
    status, _ = _post_from(collector, [via_proxy], "127.0.0.2", f"{spoofed}, {real}")
    assert status == 200
    assert _post_from(collector, [direct], "127.0.0.1", real)[0] == 200
    values = {
        json.loads(r.value)["event_id"]: json.loads(r.value)
        for r in read_topic(kafka_bootstrap, topic_name("beacons.raw", topic_prefix))
    }
    assert values[via_proxy["event_id"]]["network"] == {"ip": real, "user_agent": "Mozilla/5.0 test"}
    assert values[direct["event_id"]]["network"]["ip"] == "127.0.0.1"


def _post_from(base_url: str, events: list, source: str, forwarded_for: str) -> tuple[int, bytes]:
    status, _, body = request(
        base_url,
        "POST",
        "/collect",
        json.dumps(events),
        {"Content-Type": "application/json", "X-Forwarded-For": forwarded_for},
        source,
    )
    return status, body


# --- 4xx: refused, and nothing produced ---------------------------------------------------------

BAD_REQUESTS = [
    # (name, method, path, body, headers, status, reason)
    ("not json", "POST", "/collect", "{not json", {"Content-Type": "application/json"}, 400, "not_json"),
    (
        "wrong content type",
        "POST",
        "/collect",
        "[]",
        {"Content-Type": "application/xml"},
        415,
        "unsupported_content_type",
    ),
    ("a json string", "POST", "/collect", '"hello"', {"Content-Type": "application/json"}, 400, "not_a_batch"),
    ("empty batch", "POST", "/collect", "[]", {"Content-Type": "application/json"}, 400, "empty_batch"),
    (
        "too many events",
        "POST",
        "/collect",
        lambda: json.dumps([beacon() for _ in range(51)]),
        {"Content-Type": "application/json"},
        413,
        "too_many_events",
    ),
    (
        "body too large",
        "POST",
        "/collect",
        lambda: json.dumps([beacon(page="/" + "x" * 70_000)]),
        {"Content-Type": "application/json"},
        413,
        "body_too_large",
    ),
    (
        "field too long",
        "POST",
        "/collect",
        lambda: json.dumps([beacon(page="/" + "p" * 3000)]),
        {"Content-Type": "application/json"},
        400,
        "too_long:page",
    ),
    (
        "missing field",
        "POST",
        "/collect",
        lambda: json.dumps([{"event": "page_view", "page": "/x"}]),
        {"Content-Type": "application/json"},
        400,
        "missing_field:anonymous_id",
    ),
    (
        "wrong type",
        "POST",
        "/collect",
        lambda: json.dumps([beacon(duration_ms="long")]),
        {"Content-Type": "application/json"},
        400,
        "wrong_field:duration_ms",
    ),
    (
        "naive timestamp",
        "POST",
        "/collect",
        lambda: json.dumps([beacon(ts="2026-11-24T08:15:30")]),
        {"Content-Type": "application/json"},
        400,
        "wrong_field:ts",
    ),
    (
        "click without element",
        "POST",
        "/collect",
        lambda: json.dumps([beacon(event="click")]),
        {"Content-Type": "application/json"},
        400,
        "invalid:a_click_needs_an_element",
    ),
    (
        "one bad event in a batch",
        "POST",
        "/collect",
        lambda: json.dumps([beacon(), beacon(), beacon(event="fly"), beacon()]),
        {"Content-Type": "application/json"},
        400,
        "wrong_field:event",
    ),
    (
        "pixel without anonymous id",
        "GET",
        "/p.gif?event=page_view&page=/x",
        None,
        {},
        400,
        "missing_field:anonymous_id",
    ),
    (
        "pixel with unknown event",
        "GET",
        "/p.gif?event=jump&anonymous_id=c-1&page=/x",
        None,
        {},
        400,
        "wrong_field:event",
    ),
    (
        "consent without subject",
        "POST",
        "/consent",
        '{"analytics": "granted"}',
        {"Content-Type": "application/json"},
        400,
        "missing_field:subject",
    ),
    (
        "consent with two subjects",
        "POST",
        "/consent",
        '{"analytics": "granted", "subject": {"openid": "o1", "anonymous_id": "c-1"}}',
        {"Content-Type": "application/json"},
        400,
        "invalid:subject",
    ),
    (
        "log line not json",
        "POST",
        "/logs",
        '{"schema": "access/1"\n',
        {"Content-Type": "application/x-ndjson"},
        400,
        "not_json",
    ),
    (
        "log record with bad status",
        "POST",
        "/logs",
        '{"schema": "access/1", "ts": "2026-11-24T08:00:00Z", "ip": "203.0.113.9", "method": "GET", '
        '"path": "/", "status": 999}',
        {"Content-Type": "application/x-ndjson"},
        400,
        "wrong_field:status",
    ),
    (
        "foreign origin",
        "POST",
        "/collect",
        lambda: json.dumps([beacon()]),
        {"Content-Type": "application/json", "Origin": "https://evil.example.com"},
        403,
        "origin_not_allowed",
    ),
    (
        "foreign preflight",
        "OPTIONS",
        "/collect",
        None,
        {"Origin": "https://evil.example.com"},
        403,
        "origin_not_allowed",
    ),
]


def test_every_kind_of_bad_request_gets_its_4xx_and_nothing_is_produced(
    collector: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    for name, method, path, body, headers, expected, reason in BAD_REQUESTS:
        payload = body() if callable(body) else body
        status, answer_headers, answer = request(collector, method, path, payload, headers)
        assert status == expected, name
        if path.startswith("/p.gif"):
            assert answer.startswith(b"GIF89a") and answer_headers["X-Seaport-Error"] == reason, name
        else:
            assert json.loads(answer)["error"] == reason, name
    for topic in ("beacons.raw", "consent.events", "access_logs.raw"):
        assert topic_events(kafka_bootstrap, topic_name(topic, topic_prefix)) == 0, topic
    _, _, metrics = request(collector, "GET", "/metrics")
    assert 'seaport_collector_requests_rejected_total{reason="body_too_large"} 1' in metrics.decode()
    assert 'seaport_collector_requests_rejected_total{reason="wrong_field:event"} 2' in metrics.decode()


def test_cors_allows_configured_origins_only(collector: str) -> None:
    origin = "https://shop.example.cn"
    status, headers, _ = request(
        collector,
        "OPTIONS",
        "/collect",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert status == 204 and headers["Access-Control-Allow-Origin"] == origin
    assert "POST" in headers["Access-Control-Allow-Methods"]
    status, headers, _ = request(
        collector, "POST", "/collect", json.dumps([beacon()]), {"Content-Type": "text/plain", "Origin": origin}
    )
    assert status == 200 and headers["Access-Control-Allow-Origin"] == origin


def test_per_ip_rate_limit_answers_429(kafka_bootstrap: str, topic_prefix: str) -> None:
    with running_collector(kafka_bootstrap, topic_prefix, "--rate-limit", "1", "--rate-burst", "5") as base_url:
        statuses = [
            request(base_url, "POST", "/collect", json.dumps([beacon()]), {"Content-Type": "application/json"})[0]
            for _ in range(8)
        ]
        pixel_status, headers, body = request(base_url, "GET", "/p.gif?event=page_view&anonymous_id=c-1&page=/")
    assert statuses[:5] == [200] * 5 and 429 in statuses[5:]
    assert pixel_status == 429 and body.startswith(b"GIF89a") and headers["X-Seaport-Error"] == "rate_limited"
    assert topic_events(kafka_bootstrap, topic_name("beacons.raw", topic_prefix)) == statuses.count(200)


def test_health_metrics_and_request_log_carry_no_identifiers(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    log = tmp_path / "collector.log"
    secret_aid, secret_openid = anonymous_id(), "o" + uuid.uuid4().hex[:27]
    with running_collector(kafka_bootstrap, topic_prefix, "--trusted-proxy", "127.0.0.1", log=log) as base_url:
        assert json.loads(request(base_url, "GET", "/healthz")[2]) == {"status": "ok", "kafka": "up"}
        ip = fake_ip()
        request(
            base_url,
            "GET",
            f"/p.gif?event=page_view&anonymous_id={secret_aid}&page=/x&user.openid={secret_openid}",
            headers={"X-Forwarded-For": ip},
        )
        status, answer = post_json(
            base_url, "/collect", [beacon(anonymous_id=secret_aid, event="click")], **{"X-Forwarded-For": ip}
        )
        assert status == 400
        status, headers, metrics = request(base_url, "GET", "/metrics")
    text = metrics.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'seaport_collector_events_accepted_total{endpoint="pixel"} 1' in text
    assert 'seaport_collector_messages_produced_total{topic="' + topic_prefix + 'beacons.raw"} 1' in text
    assert 'seaport_collector_request_duration_seconds_count{endpoint="pixel"} 1' in text
    assert 'seaport_collector_request_duration_seconds_bucket{endpoint="collect",le="+Inf"} 1' in text
    written = log.read_text()
    assert "GET /p.gif 200" in written and "POST /collect 400" in written  # it does log requests
    for secret in (secret_aid, secret_openid, ip, "anonymous_id="):
        assert secret not in written and secret not in text


# --- Kafka down and back ----------------------------------------------------------------------


def test_kafka_stopped_answers_503_and_restarted_accepts_again_nothing_lost(tmp_path: Path) -> None:
    broker = Broker(free_port(), tmp_path / "own-broker")  # our own: never stop the session broker
    broker.start(timeout=120)
    try:
        create_topics(broker.bootstrap, "")
        topic = topic_name("beacons.raw")
        accepted: list[dict] = []
        with running_collector(
            broker.bootstrap, "", "--delivery-timeout-ms", "2000", log=tmp_path / "collector.log"
        ) as base_url:
            first = [beacon() for _ in range(5)]
            assert post_json(base_url, "/collect", first)[0] == 200
            accepted += first

            broker.stop()
            refused = [beacon() for _ in range(3)]
            assert post_json(base_url, "/collect", refused)[0] == 503
            assert request(base_url, "GET", "/p.gif?event=page_view&anonymous_id=c-1&page=/")[0] == 503

            broker.start(timeout=120)
            deadline = time.monotonic() + 60
            while (status := post_json(base_url, "/collect", refused)[0]) != 200:  # the tracker's retry
                assert status == 503 and time.monotonic() < deadline
                time.sleep(0.5)
            accepted += refused
            later = [beacon() for _ in range(5)]
            assert post_json(base_url, "/collect", later)[0] == 200
            accepted += later
        ids = Counter(json.loads(r.value)["event_id"] for r in read_topic(broker.bootstrap, topic))
        assert all(ids[e["event_id"]] == 1 for e in accepted), "an accepted event is missing or doubled"
        assert sum(ids.values()) == len(accepted)  # nothing produced for the 503 answers
    finally:
        broker.stop()


# --- load: wrk on loopback --------------------------------------------------------------------


def test_load_events_on_topic_equal_2xx_answers(kafka_bootstrap: str) -> None:
    """Short, bounded wrk runs, the warm-up first: each of the 2xx answers wrk got is one event (or 20)
    on the topic, and the report has a row per run."""
    # 200 event requests a run: a loaded CI machine answered 245 pixels/s in a cold warm-up, and a run
    # that ends by its time, not by its count, leaves requests in flight that reach Kafka uncounted
    results = load_test(kafka_bootstrap, duration_s=4, connections=8, workers=1, requests_per_thread=200, warmup_s=2)
    assert list(results) == ["warmup", "pixel", "batch"]
    warmup, warmup_on_topic = results["warmup"]
    assert warmup_on_topic == warmup.event_answers >= 199 and warmup.errors == 0
    pixel, pixel_on_topic = results["pixel"]
    batch, batch_on_topic = results["batch"]
    assert pixel.event_answers == 200 - 1 or pixel.event_answers == 200
    assert pixel_on_topic == pixel.event_answers and pixel.errors == 0
    assert batch_on_topic == batch.event_answers * 20 and batch.event_answers >= 199
    assert pixel.p99_ms > 0 and pixel.requests_per_s > 0
    rows = report(results).splitlines()
    assert [row.split("  ")[0] for row in rows[1:]] == [
        "pixel GET, warm-up",
        "pixel GET, closed loop",
        "POST /collect ×20, closed loop",
    ]


def test_load_pixels_come_from_many_visitors_each_a_unique_event(kafka_bootstrap: str) -> None:
    """The load test's pixels, from wrk and at a fixed rate, are page views of many visitors."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    results = load_test(
        kafka_bootstrap, 8, 4, workers=1, requests_per_thread=300, rate=0, visitors=40, kinds=("pixel",), prefix=prefix
    )
    pixel, on_topic = results["pixel"]
    beacons = [json.loads(r.value) for r in read_topic(kafka_bootstrap, topic_name("beacons.raw", prefix))]
    assert len(beacons) == on_topic == pixel.event_answers >= 299
    assert len({b["event_id"] for b in beacons}) == len(beacons)
    assert len({b["anonymous_id"] for b in beacons}) == 40


def test_fixed_rate_load_sends_what_it_says_and_every_2xx_is_on_the_topic(kafka_bootstrap: str) -> None:
    """`--rate 300` for 2 s: 600 requests due, sent and answered, each a 2xx GIF and one event on the
    topic, with unique event ids from the given number of visitors (no timing is asserted)."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    results = load_test(kafka_bootstrap, 2, 4, workers=1, rate=300, visitors=50, kinds=(), prefix=prefix)
    paced, on_topic = results["paced"]
    assert isinstance(paced, dict)
    assert paced["due"] == paced["sent"] == paced["answered"] == paced["gifs_2xx"] == 600
    assert paced["statuses"] == {"200": 600} and paced["failed"] == 0
    assert 0 < paced["p50_ms"] <= paced["p99_ms"] <= paced["max_ms"]
    beacons = [json.loads(r.value) for r in read_topic(kafka_bootstrap, topic_name("beacons.raw", prefix))]
    assert len(beacons) == on_topic == 600
    assert len({b["event_id"] for b in beacons}) == 600
    assert len({b["anonymous_id"] for b in beacons}) == 50


# --- replay of simulated traffic --------------------------------------------------------------


def test_replay_over_http_sends_simulated_traffic_through_the_collector(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    from datetime import date

    from seaport.devtools.simulate import simulate

    traffic = simulate(users=12, days=1, seed=7, start=date(2026, 11, 20))
    files = []
    for topic, lines in traffic.by_topic().items():
        path = tmp_path / f"traffic.{topic}.jsonl"
        path.write_bytes(b"".join(line + b"\n" for line in lines))
        files.append(path)
    with running_collector(
        kafka_bootstrap, topic_prefix, "--trusted-proxy", "127.0.0.1", "--rate-limit", "0"
    ) as base_url:
        result = replay_over_http(base_url, files)
    for path in files:
        topic = path.name.removeprefix("traffic.").removesuffix(".jsonl")
        if topic == "erasure.requests":
            assert path in result.skipped_files
            continue
        sent = [line for line in path.read_bytes().splitlines() if line.strip()]
        on_topic = topic_events(kafka_bootstrap, topic_name(topic, topic_prefix))
        assert on_topic == result.accepted[topic] > 0, topic
        assert result.accepted[topic] + result.rejected[topic] == len(sent), topic
    assert result.rejected["beacons.raw"] > 0  # the simulated malformed lines were refused one by one
    simulated_ips = {ip for line in traffic.beacons if (ip := _simulated_ip(line))}
    replayed_ips = {
        json.loads(r.value)["network"]["ip"]
        for r in read_topic(kafka_bootstrap, topic_name("beacons.raw", topic_prefix))
    }
    assert len(replayed_ips) > 1 and replayed_ips <= simulated_ips | {"127.0.0.1"}  # via X-Forwarded-For


def _simulated_ip(line: bytes) -> str | None:
    try:
        return json.loads(line)["network"]["ip"]
    except (ValueError, KeyError, TypeError):
        return None


# --- small pure parts -----------------------------------------------------------------------


def test_client_ip_trusts_forwarded_for_only_from_trusted_proxies() -> None:
    trusted = parse_networks(["10.0.0.0/8", "127.0.0.1"])
    assert client_ip("198.51.100.4", "203.0.113.9", trusted) == "198.51.100.4"
    assert client_ip("127.0.0.1", "203.0.113.9", trusted) == "203.0.113.9"
    assert client_ip("127.0.0.1", "198.51.100.1, 203.0.113.9, 10.1.2.3", trusted) == "203.0.113.9"
    assert client_ip("127.0.0.1", "not-an-ip", trusted) == "127.0.0.1"
    assert client_ip("127.0.0.1", "203.0.113.9", ()) == "127.0.0.1"


def test_rate_limiter_refills_over_time() -> None:
    limiter = RateLimiter(rate=2, burst=3)
    assert [limiter.allow("a", now=0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b", now=0.0)  # per IP
    assert limiter.allow("a", now=0.5) and not limiter.allow("a", now=0.5)
    assert RateLimiter(rate=0, burst=1).allow("a")


def test_pixel_query_nests_dotted_fields_and_reads_numbers() -> None:
    event = beacon_from_query(
        {"event": "page_leave", "duration_ms": "1500", "device.model": "iPhone15,2", "unknown.x": "dropped"}
    )
    assert event == {
        "schema": "beacon/1",
        "event": "page_leave",
        "duration_ms": 1500,
        "device": {"model": "iPhone15,2"},
    }


def test_metrics_histogram_is_cumulative() -> None:
    metrics = CollectorMetrics()
    for seconds in (0.0005, 0.003, 0.003, 20.0):
        metrics.observe_latency("pixel", seconds)
    text = metrics.render()
    assert 'le="0.001"} 1' in text and 'le="0.005"} 3' in text and 'le="10.0"} 3' in text
    assert 'le="+Inf"} 4' in text and 'seaport_collector_request_duration_seconds_count{endpoint="pixel"} 4' in text


def test_pixel_without_anonymous_id_uses_the_tracker_cookie(
    collector: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    cookie_id = anonymous_id()
    status, _, _ = request(
        collector, "GET", "/p.gif?event=page_view&page=/home", headers={"Cookie": f"other=1; _sp_aid={cookie_id}"}
    )
    assert status == 200
    (record,) = read_topic(kafka_bootstrap, topic_name("beacons.raw", topic_prefix))
    assert record.key == cookie_id.encode() and json.loads(record.value)["anonymous_id"] == cookie_id


# --- defects an outside tester found --------------------------------------------------------


def test_pixel_opt_out_parameter_opts_out_never_in(collector: str, kafka_bootstrap: str, topic_prefix: str) -> None:
    """`opt_out=true|1|yes|on` (any case) on a pixel opts out, as `"opt_out": true` does on /collect;
    a header's opt-out stands whatever the query says; a value that is not a yes is no opt-out."""
    cases = [(spelling, {}, True) for spelling in ("true", "1", "yes", "on", "TRUE", "Yes", "On")]
    cases += [("false", {"Sec-GPC": "1"}, True), ("0", {"DNT": "1"}, True), ("no", {}, False), ("maybe", {}, False)]
    expected = {}
    for value, headers, opted_out in cases:
        event_id = str(uuid.uuid4())
        expected[event_id] = opted_out
        query = urlencode(
            {"event": "page_view", "event_id": event_id, "anonymous_id": anonymous_id(), "page": "/x", "opt_out": value}
        )
        assert request(collector, "GET", "/p.gif?" + query, headers=headers)[0] == 200
    values = [json.loads(r.value) for r in read_topic(kafka_bootstrap, topic_name("beacons.raw", topic_prefix))]
    assert {v["event_id"]: v["opt_out"] for v in values} == expected


def test_request_log_names_the_route_never_the_path_as_sent(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    log = tmp_path / "collector.log"
    canaries = [uuid.uuid4().hex for _ in range(9)]
    pixel_query = urlencode({"event": "page_view", "anonymous_id": anonymous_id(), "page": "/x"})
    with running_collector(kafka_bootstrap, topic_prefix, log=log) as base_url:
        assert request(base_url, "GET", f"/demo/user/{canaries[0]}")[0] == 200
        request(base_url, "GET", f"/p.gif;openid={canaries[1]}?{pixel_query}")
        assert request(base_url, "GET", f"/{canaries[2]}@example.com")[0] == 404
        request(base_url, "POST", f"/collect;{canaries[3]}", json.dumps([beacon()]), {"Content-Type": "text/plain"})
        assert request(base_url, "POST", f"/p.gif/{canaries[4]}")[0] in (404, 405)
        assert request(base_url, "GET", f"/healthz/{canaries[5]}")[0] == 404
        assert request(base_url, "GET", "/p.gif?" + pixel_query)[0] == 200
        for raw in (
            f"GET /{canaries[6]}\x01 HTTP/1.1",
            f"GET /{canaries[7]} HTTP/9.9",
            f"X{canaries[8].upper()} /p.gif HTTP/1.1",  # a made-up method
        ):
            assert _raw_request(base_url, raw + "\r\nHost: x\r\n\r\n").startswith((b"HTTP/1.0 4", b"HTTP/1.1 4")), raw
    written = log.read_text()
    assert "GET /p.gif 200" in written and "GET unknown 404" in written  # it does log requests, by route
    for canary in canaries:
        assert canary not in written.lower()


def _raw_request(base_url: str, raw: str) -> bytes:
    """Bytes as sent, for requests http.client would refuse to write; the answer's first bytes."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(raw.encode())
        return sock.recv(64)


def test_several_forwarded_for_lines_are_one_list(collector: str, kafka_bootstrap: str, topic_prefix: str) -> None:
    """RFC 7230 §3.2.2: header lines of one name are one comma-joined list, in order; the right-most
    hop that is not a trusted proxy is the client, so the first (client-written) line can't choose."""
    forged, real = fake_ip(), f"198.51.100.{RNG.randrange(1, 255)}"
    event = beacon()
    host, port = collector.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30, source_address=("127.0.0.2", 0))
    try:
        body = json.dumps([event]).encode()
        conn.putrequest("POST", "/collect")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(body)))
        conn.putheader("X-Forwarded-For", forged)
        conn.putheader("X-Forwarded-For", real)
        conn.endheaders(body)
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    (record,) = read_topic(kafka_bootstrap, topic_name("beacons.raw", topic_prefix))
    assert json.loads(record.value)["network"]["ip"] == real


COLLECT_NUMBERS_REFUSED = [
    ("--max-events", "0"),
    ("--max-events", "-5"),
    ("--max-events", "ten"),
    ("--max-body-bytes", "0"),
    ("--rate-burst", "0"),
    ("--delivery-timeout-ms", "0"),
    ("--workers", "0"),
    ("--port", "0"),
    ("--port", "65536"),
    ("--rate-limit", "-1"),
    ("--rate-limit", "nan"),
]


def test_collect_refuses_numbers_that_must_be_positive() -> None:
    from seaport.collector.app import add_arguments

    for option, value in COLLECT_NUMBERS_REFUSED:
        parser = argparse.ArgumentParser(prog="seaport collect")
        add_arguments(parser)
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([option, value])
        assert exit_info.value.code == 2, option
    parser = argparse.ArgumentParser(prog="seaport collect")
    add_arguments(parser)
    args = parser.parse_args(["--rate-limit", "0", "--max-events", "1", "--port", "65535"])  # 0 = no limit
    assert (args.rate_limit, args.max_events, args.port) == (0.0, 1, 65535)


def test_collect_max_events_zero_is_a_one_line_usage_error(kafka_bootstrap: str) -> None:
    command = [sys.executable, "-m", "seaport.cli", "collect", "--bootstrap", kafka_bootstrap]
    command += ["--port", str(free_port()), "--max-events", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=Path(__file__).parents[3])
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("seaport collect: error: argument --max-events")


def test_aiohttp_error_reports_are_reduced_to_the_exception_class():
    canary = f"o-canary-{uuid.uuid4().hex[:12]}"
    try:
        raise KeyError(canary)
    except KeyError:
        record = logging.LogRecord(
            "aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s", ("203.0.113.9",),
            sys.exc_info(),
        )  # fmt: skip
    assert _WithoutClientDetails().filter(record)
    text = logging.Formatter("%(name)s %(message)s").format(record)
    assert text == "aiohttp.server error handling a request: KeyError"


@pytest.mark.parametrize("timeout_ms", [100, 500, 999, 5000, 60000])
def test_any_delivery_timeout_makes_a_producer_librdkafka_accepts(timeout_ms):
    """`--delivery-timeout-ms 500` once crashed at start: librdkafka wants a connection set-up
    timeout of at least 1000 ms."""
    from confluent_kafka import Producer

    from seaport.collector.kafka_sink import collector_producer_config

    config = collector_producer_config("127.0.0.1:1", timeout_ms)
    Producer(config).flush(0)
    # its own linger (every answer waits for it), never at the cost of the delivery guarantee
    assert (config["acks"], config["enable.idempotence"], config["linger.ms"]) == ("all", True, 1)
