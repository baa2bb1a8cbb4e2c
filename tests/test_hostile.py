"""No input stops the pipeline or loses what comes after it (issue 7).

Hostile messages of every class (`tests/hostile.py`) against each path that parses outside
input: validation and dead letters (no Kafka, many examples), `seaport ingest` over real Kafka
with good messages around them, the collector, and `seaport produce`.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.stage import protect_batch
from schemas.safejson import MAX_JSON_DEPTH, loads, too_deep
from seaport.devtools.loadtest import running_collector, topic_events
from seaport.kafka.clients import Record, make_client
from seaport.kafka.topics import create_topics, message_key, topic_name
from tests.helpers import read_all
from tests.hostile import GOOD, hostile_message
from tests.model import build_dataset, expected_tables, rounded
from tests.pipelines.test_ingest import TABLE_COLUMNS, ingest, produce, read_tables
from tests.pipelines.test_ingest_transforms import POLICY, PSEUDONYMS

ROOT = Path(__file__).resolve().parents[1]
ENDPOINTS = {"beacons.raw": "/collect", "consent.events": "/consent", "access_logs.raw": "/logs"}


def test_depth_is_measured_without_recursion_and_ignores_brackets_in_strings():
    assert not too_deep(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    assert too_deep(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))
    assert too_deep(b'{"a":' * 100_000 + b"1" + b"}" * 100_000)  # far beyond Python's recursion limit
    assert not too_deep(json.dumps({"page": "[" * 5000, "q": '\\"{' * 500}).encode())
    assert not too_deep(json.dumps(["{" * 100, "]" * 100]))  # str as well as bytes
    deep = "[" * 5000 + "]" * 5000
    for parse in (loads, lambda d: message_key("beacons.raw", d.encode())):
        try:
            assert parse(deep) is None  # message_key: no key
        except ValueError as e:  # loads: TooDeep, a ValueError
            assert "deeper" in str(e)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile_message())
def test_every_hostile_message_is_a_dead_letter_with_a_reason(message):
    topic, raw = message
    good = Record(topic, 0, 1, None, json.dumps(GOOD[topic]).encode(), 0)
    staged = protect_batch(topic, [Record(topic, 0, 0, None, raw, 0), good], POLICY, PSEUDONYMS)
    assert staged.valid == 1  # the good message after it still counts
    [letter] = staged.tables["deadletter"].to_pylist()
    assert letter["source_offset"] == 0 and letter["reason"]
    json.dumps(letter, ensure_ascii=False).encode()  # a dead letter is always writable as UTF-8
    assert isinstance(POLICY.redact_payload(raw), str)
    message_key(topic, raw)  # produce's key: never raises


def test_deep_nesting_has_its_own_reason():
    for topic, doc in GOOD.items():
        for raw in (
            b"[" * 3000 + b"]" * 3000,
            json.dumps(doc | {"x": "@"}).replace('"@"', "[" * 40 + "]" * 40).encode(),
        ):
            staged = protect_batch(topic, [Record(topic, 0, 0, None, raw, 0)], POLICY, PSEUDONYMS)
            assert staged.tables["deadletter"].to_pylist()[0]["reason"] == "too_deep"


# Each example is a real Kafka + ingest round trip: few examples, no shrinking.
@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.lists(hostile_message(), min_size=60, max_size=120), st.integers(0, 2**32 - 1))
def test_ingest_routes_every_hostile_message_and_counts_every_good_one(
    kafka_bootstrap, tmp_path_factory, key_file, hostile, seed
):
    tmp = tmp_path_factory.mktemp("hostile")
    prefix = f"h{uuid.uuid4().hex[:8]}."
    create_topics(kafka_bootstrap, prefix)
    ds = build_dataset(seed=seed % 1000, subjects=12, days=1)
    mixed = {topic: list(values) for topic, values in ds.messages.items()}
    for i, (topic, raw) in enumerate(hostile):  # spread among the good ones
        values = mixed.setdefault(topic, [])
        values.insert((i * 7919) % (len(values) + 1), raw)
    produce(kafka_bootstrap, prefix, mixed)

    warehouse = tmp / "wh"
    # through Beam: a poison message must not fail a worker either
    out = ingest(kafka_bootstrap, prefix, warehouse, key_file, "--k", "1", "--in-process-below", "0")
    assert "Traceback" not in out
    expected = {t: rounded(rows) for t, rows in expected_tables(ds, k=1).items()}
    assert read_tables(warehouse) == expected  # every good event counted exactly, no bad one
    assert set(TABLE_COLUMNS) == set(expected)

    kafka = make_client("confluent", kafka_bootstrap)
    letters = [json.loads(r.value) for r in read_all(kafka, topic_name("deadletter", prefix))]
    kafka.close()
    assert len(letters) == len(hostile) + len(ds.bad_reasons)
    assert all(d["reason"] for d in letters)
    # a second run finds nothing new: no poison message was left behind
    assert "nothing new" in ingest(kafka_bootstrap, prefix, warehouse, key_file, "--k", "1")


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(message=hostile_message())
def test_the_collector_refuses_hostile_bodies_with_a_4xx_and_produces_nothing(collector_url, message):
    base_url, prefix, bootstrap = collector_url
    topic, raw = message
    path = ENDPOINTS.get(topic, "/collect")
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", path, body=raw, headers={"Content-Type": "application/json"})
        answer = conn.getresponse()
        status, body = answer.status, answer.read()
    finally:
        conn.close()
    assert 400 <= status < 500, (status, body[:200])
    reason = json.loads(body)["error"]
    assert reason and len(reason) < 100
    if too_deep(raw):
        assert reason == "too_deep"


def test_the_collector_produced_nothing_for_the_hostile_bodies(collector_url):
    """Runs after the property test above (same module-scoped collector and topics)."""
    _, prefix, bootstrap = collector_url
    for topic in ENDPOINTS:
        assert topic_events(bootstrap, topic_name(topic, prefix)) == 0, topic


def test_produce_sends_every_line_around_hostile_and_oversized_ones(kafka_bootstrap, topic_prefix, tmp_path):
    lines = [json.dumps(GOOD["beacons.raw"] | {"event_id": f"e-{i}"}).encode() for i in range(20)]
    lines[3] = b"[" * 5000 + b"]" * 5000
    lines[5] = b'{"anonymous_id": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    lines[8] = b"\xff\xfe not utf-8"
    lines[11] = b'{"page": "' + b"x" * 2_000_000 + b'"}'  # larger than the broker takes
    lines[14] = b'{"anonymous_id": {"deep": 1}}'
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    done = subprocess.run(
        [sys.executable, "-m", "seaport.cli", "produce", "--topic", "beacons.raw", "--bootstrap", kafka_bootstrap,
         "--topic-prefix", topic_prefix, str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "line 12 not sent" in done.stderr and "1 of 20 lines not sent" in done.stderr
    assert "Traceback" not in done.stderr and "sent 19 messages" in done.stdout
    kafka = make_client("confluent", kafka_bootstrap)
    sent = read_all(kafka, topic_name("beacons.raw", topic_prefix))
    kafka.close()
    assert sorted(r.value for r in sent) == sorted(line for i, line in enumerate(lines) if i != 11)
    keys = {r.value: r.key for r in sent}
    assert keys[lines[3]] is None and keys[lines[5]] is None and keys[lines[0]] == b"c-hostile"


# --- a collector for the module ----------------------------------------------------------------
@pytest.fixture(scope="module")
def collector_url(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory):
    prefix = f"c{uuid.uuid4().hex[:8]}."
    create_topics(kafka_bootstrap, prefix)
    log = Path(tmp_path_factory.mktemp("collector")) / "collector.log"
    with running_collector(kafka_bootstrap, prefix, "--rate-limit", "0", log=log) as base_url:
        yield base_url, prefix, kafka_bootstrap


def test_redaction_is_linear_in_its_input_on_crafted_free_text():
    """Free text shaped against the detectors (long runs with and without "@", dots, digits) is
    redacted in one pass: the quadratic e-mail pattern took minutes on 200 KB (a poison message
    for the dead-letter path, which redacts up to 1 MB). Run in a child with a deadline, so a
    regression fails instead of hanging."""
    code = """
import sys
from transforms.policy import FieldPolicy
from transforms.redact import clean_page_cached, redact_cached
POLICY = FieldPolicy.load()
n = 200_000
for text in ("x" * n + "@" + "y" * n, "a." * n + "@" + "b." * n, "1" * n, "x" * n, "a@" * n, "1." * n):
    redact_cached(text)
    clean_page_cached("/" + text)
    POLICY.redact_payload(text.encode())
    POLICY.redact_payload(('{"page": "' + text + '"}').encode())
print("done")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr[-2000:]
