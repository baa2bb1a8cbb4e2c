"""The Kafka layer against a real broker: both client libraries must behave the same."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from seaport import cli
from seaport.devtools.broker import Broker, ensure_jars, free_port, new_cluster_id
from seaport.errors import SeaportError
from seaport.kafka import clients
from seaport.kafka.topics import TOPICS, create_topics, message_key, topic_name
from tests.helpers import read_all

KINDS = ["confluent", "kafka-python"]
PROJECT_DIR = Path(__file__).resolve().parents[2]


def _payloads(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [json.dumps({"n": i, "junk": rng.getrandbits(64)}).encode() for i in range(n)]


@pytest.mark.parametrize("kind", KINDS)
def test_produce_spreads_keys_and_end_offsets_count_them(kind, kafka_client, topic_prefix):
    client = kafka_client(kind)
    topic = topic_name("beacons.raw", topic_prefix)
    rng = random.Random(7)
    keys = [f"anon-{rng.getrandbits(32):08x}".encode() for _ in range(20)]
    messages = [(keys[i % len(keys)], value) for i, value in enumerate(_payloads(400, seed=1))]

    assert client.produce(topic, messages) == 400

    assert client.partitions(topic) == [0, 1, 2, 3]
    assert client.beginning_offsets(topic) == {0: 0, 1: 0, 2: 0, 3: 0}
    assert sum(client.end_offsets(topic).values()) == 400
    records = read_all(client, topic)
    assert sorted(r.value for r in records) == sorted(v for _, v in messages)
    partition_of_key = {}
    for r in records:
        assert partition_of_key.setdefault(r.key, r.partition) == r.partition  # one key, one partition
    assert len(set(partition_of_key.values())) > 1


@pytest.mark.parametrize("kind", KINDS)
def test_read_range_returns_exactly_the_offsets_asked_for(kind, kafka_client, topic_prefix):
    client, other = kafka_client(kind), kafka_client(KINDS[1 - KINDS.index(kind)])
    topic = topic_name("erasure.requests", topic_prefix)
    values = _payloads(300, seed=2)
    other.produce(topic, [(None, v) for v in values])  # each library reads what the other wrote
    assert client.end_offsets(topic) == {0: 300}

    for start, end in [(0, 300), (0, 1), (299, 300), (17, 213), (150, 151), (40, 40), (50, 10)]:
        batches = list(client.read_range(topic, 0, start, end, max_batch=64))
        records = [r for batch in batches for r in batch]
        assert [r.offset for r in records] == list(range(start, end))
        assert [r.value for r in records] == values[start:end]
        assert all(0 < len(batch) <= 64 for batch in batches)
        assert all(r.topic == topic and r.partition == 0 and r.key is None for r in records)
        assert all(abs(r.timestamp_ms / 1000 - time.time()) < 600 for r in records)


@pytest.mark.parametrize("kind", KINDS)
def test_read_range_passes_transaction_markers_and_skips_aborted_records(kind, kafka_client, topic_prefix):
    client = kafka_client(kind)
    topic = topic_name("deadletter", topic_prefix)
    producer = Producer({"bootstrap.servers": client.bootstrap, "transactional.id": f"tx-{topic_prefix}{kind}"})
    producer.init_transactions()
    for label, count, commit in [(b"kept", 5, True), (b"aborted", 3, False), (b"kept", 2, True)]:
        producer.begin_transaction()
        for i in range(count):
            producer.produce(topic, label + b"-%d" % i)
        producer.flush()  # the aborted records really reach the log, then get marked aborted
        producer.commit_transaction() if commit else producer.abort_transaction()

    # The coordinator writes the last commit marker a moment after commit_transaction() returns;
    # until then the end offset (the last stable offset) stops before that transaction.
    deadline = time.monotonic() + 30
    while (end := client.end_offsets(topic)[0]) != 13 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert end == 5 + 1 + 3 + 1 + 2 + 1  # records plus one control marker per transaction
    started = time.monotonic()
    values = [r.value for batch in client.read_range(topic, 0, 0, end) for r in batch]
    assert values == [b"kept-%d" % i for i in range(5)] + [b"kept-%d" % i for i in range(2)]
    assert list(client.read_range(topic, 0, end - 1, end)) == []  # only a marker in the range
    assert time.monotonic() - started < 60  # ended, not hung


@pytest.mark.parametrize("kind", KINDS)
def test_read_range_beyond_the_log_end_fails_in_bounded_time(kind, kafka_client, topic_prefix, monkeypatch):
    monkeypatch.setattr(clients, "STALL_TIMEOUT_S", 1.0)
    client = kafka_client(kind)
    topic = topic_name("erasure.requests", topic_prefix)
    client.produce(topic, [(None, b"only")])
    started = time.monotonic()
    with pytest.raises(SeaportError, match="stalled at offset 1 before end offset 5"):
        list(client.read_range(topic, 0, 0, 5))
    assert time.monotonic() - started < 60  # ended, not hung


@pytest.mark.parametrize("kind", KINDS)
def test_commit_then_committed_round_trip(kind, kafka_client, topic_prefix):
    client, other = kafka_client(kind), kafka_client(KINDS[1 - KINDS.index(kind)])
    topic = topic_name("access_logs.raw", topic_prefix)
    group = f"{topic_prefix}group"
    client.produce(topic, [(b"k", b"x")] * 3)
    assert client.committed(group, topic) == {0: None, 1: None}

    client.commit(group, {(topic, 0): 5, (topic, 1): 7})
    assert client.committed(group, topic) == {0: 5, 1: 7}
    assert other.committed(group, topic) == {0: 5, 1: 7}  # the same offsets, whichever library

    client.commit(group, {(topic, 1): 9})
    assert client.committed(group, topic) == {0: 5, 1: 9}
    assert client.committed(f"{group}-other", topic) == {0: None, 1: None}


@pytest.mark.parametrize("kind", KINDS)
def test_missing_topic_is_a_clear_error(kind, kafka_client, topic_prefix):
    client = kafka_client(kind)
    missing = topic_name("no.such.topic", topic_prefix)
    for call in (lambda: client.partitions(missing), lambda: client.produce(missing, [(None, b"x")])):
        with pytest.raises(SeaportError, match="does not exist"):
            call()


@pytest.mark.parametrize("kind", KINDS)
def test_topics_create_is_idempotent_with_contract_partitions_and_configs(kind, kafka_bootstrap, capsys):
    prefix = f"c{random.getrandbits(32):08x}."
    argv = ["topics", "create", "--bootstrap", kafka_bootstrap, "--topic-prefix", prefix, "--kafka-client", kind]

    assert cli.main(argv) == 0
    assert capsys.readouterr().out.count("created") == len(TOPICS)
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.count("exists") == len(TOPICS)
    assert create_topics(kafka_bootstrap, prefix, kind) == []

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    listed = admin.list_topics(timeout=10).topics
    expected = {"beacons.raw": 4, "access_logs.raw": 2, "consent.events": 2, "erasure.requests": 1, "deadletter": 1}
    assert {base: len(listed[topic_name(base, prefix)].partitions) for base in TOPICS} == expected
    resources = [ConfigResource(ResourceType.TOPIC, topic_name(base, prefix)) for base in TOPICS]
    configs = {r.name: f.result() for r, f in admin.describe_configs(resources).items()}
    for base in ("consent.events", "erasure.requests"):  # never deleted by age, never compacted
        assert configs[topic_name(base, prefix)]["retention.ms"].value == "-1"
        assert configs[topic_name(base, prefix)]["cleanup.policy"].value == "delete"
    assert configs[topic_name("beacons.raw", prefix)]["retention.ms"].value != "-1"


def test_cluster_id_never_starts_with_a_dash():
    # 0xF8.. encodes to "-" in URL-safe base64; the storage tool would take such an id for an option
    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x00" * 16)])
    cluster_id = new_cluster_id(lambda: next(draws))
    assert cluster_id == "AAAAAAAAAAAAAAAAAAAAAA"
    assert not any(new_cluster_id().startswith("-") for _ in range(2000))


def test_message_key_follows_the_contract():
    rng = random.Random(3)
    anon, openid, ip = f"anon-{rng.getrandbits(32):x}", f"o-{rng.getrandbits(48):x}", f"198.51.100.{rng.randrange(256)}"
    assert message_key("beacons.raw", json.dumps({"anonymous_id": anon}).encode()) == anon.encode()
    assert message_key("access_logs.raw", json.dumps({"ip": ip}).encode()) == ip.encode()
    consent = {"subject": {"openid": openid}, "analytics": "granted"}
    assert message_key("consent.events", json.dumps(consent).encode()) == openid.encode()
    assert message_key("erasure.requests", json.dumps({"subject": {"anonymous_id": anon}}).encode()) == anon.encode()
    for bad in (b"{broken", b"[1, 2]", b'{"anonymous_id": 42}', b'{"anonymous_id": ""}', b"\xff\xfe", b"null"):
        assert message_key("beacons.raw", bad) is None
    assert message_key("consent.events", b'{"subject": "x"}') is None
    assert message_key("not.a.contract.topic", json.dumps({"anonymous_id": anon}).encode()) is None


def _odd_lines(anon: str) -> list[bytes]:
    beacon = json.dumps({"schema": "beacon/1", "anonymous_id": anon, "event": "page_view"}).encode()
    return [beacon, b'{"broken', b"\xff\xfe not utf-8", b"[1, 2, 3]", b'  {"spaces": true}  ', b"plain text"]


@pytest.mark.parametrize("kind", KINDS)
def test_produce_command_sends_bad_lines_unchanged(kind, kafka_bootstrap, kafka_client, topic_prefix, tmp_path, capsys):
    anon = f"anon-{random.getrandbits(32):08x}"
    lines = _odd_lines(anon)
    source = tmp_path / "mixed.jsonl"
    # empty and blank lines are skipped; CRLF line ends are line breaks, not payload
    source.write_bytes(b"\n".join(lines[:3]) + b"\n\n   \n" + b"\r\n".join(lines[3:]) + b"\r\n")
    argv = ["produce", "--topic", "beacons.raw", str(source), "--bootstrap", kafka_bootstrap]

    assert cli.main([*argv, "--topic-prefix", topic_prefix, "--kafka-client", kind]) == 0

    topic = topic_name("beacons.raw", topic_prefix)
    assert capsys.readouterr().out == f"sent {len(lines)} messages to {topic}\n"
    records = read_all(kafka_client(kind), topic)
    assert sorted(r.value for r in records) == sorted(lines)
    assert {r.value: r.key for r in records} == {
        line: (anon.encode() if i == 0 else None) for i, line in enumerate(lines)
    }


def test_produce_command_reads_stdin_and_fails_in_one_line(kafka_bootstrap, topic_prefix):
    lines = _odd_lines(f"anon-{random.getrandbits(32):08x}")
    command = [sys.executable, "-m", "seaport.cli", "produce", "--topic", "consent.events", "-"]
    env = {"PATH": "/usr/bin:/bin", "SEAPORT_BOOTSTRAP": kafka_bootstrap, "SEAPORT_TOPIC_PREFIX": topic_prefix}
    done = subprocess.run(command, input=b"\n".join(lines), capture_output=True, cwd=PROJECT_DIR, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == f"sent {len(lines)} messages to {topic_prefix}consent.events\n"

    missing = subprocess.run(
        [*command[:4], "--topic", "nope", "/no/such/file.jsonl"], capture_output=True, cwd=PROJECT_DIR, env=env
    )
    assert missing.returncode == 2
    assert missing.stderr.decode().strip().count("\n") == 0
    assert missing.stderr.decode().startswith("seaport produce: error: cannot read /no/such/file.jsonl")


def test_session_broker_status_and_start_are_idempotent(kafka_broker, capsys):
    pid = kafka_broker.pid()
    assert pid is not None
    again = Broker(kafka_broker.port, kafka_broker.data_dir)
    again.start()
    assert again.pid() == pid
    assert again.status().startswith(f"running (pid {pid}) on {kafka_broker.bootstrap}")
    argv = ["broker", "status", "--port", str(kafka_broker.port), "--data-dir", str(kafka_broker.data_dir)]
    assert cli.main(argv) == 0
    assert "running" in capsys.readouterr().out


def test_broker_refuses_a_port_taken_by_another_process(tmp_path):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        broker = Broker(other.getsockname()[1], tmp_path / "kafka")
        with pytest.raises(SeaportError, match="already in use by another process"):
            broker.start()
    assert broker.pid() is None


def test_broker_stops_restarts_and_keeps_its_data(tmp_path, capsys):
    broker = Broker(free_port(), tmp_path / "kafka")
    try:
        broker.start()
        create_topics(broker.bootstrap, "keep.")
        client = clients.make_client("confluent", broker.bootstrap)
        client.produce("keep.erasure.requests", [(None, b"survives a restart")])
        client.close()
        pid = broker.pid()
        assert broker.stop() is True
        assert broker.pid() is None and broker.status().startswith("stopped")
        argv = ["broker", "status", "--port", str(broker.port), "--data-dir", str(broker.data_dir)]
        assert cli.main(argv) == 3
        assert broker.stop() is False

        broker.start()
        assert broker.pid() not in (None, pid)
        # right after a start the group coordinator is still loading: group calls must wait for it
        client = clients.make_client("confluent", broker.bootstrap)
        client.commit("g", {("keep.erasure.requests", 0): 1})
        assert client.committed("g", "keep.erasure.requests") == {0: 1}
        client.close()
        client = clients.make_client("kafka-python", broker.bootstrap)
        assert client.committed("g", "keep.erasure.requests") == {0: 1}
        assert [r.value for r in read_all(client, "keep.erasure.requests")] == [b"survives a restart"]
        client.close()
        assert "Kafka Server started" in broker.log_file.read_text()  # the slf4j binding works
    finally:
        broker.stop()


def test_ensure_jars_without_maven_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAPORT_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SeaportError, match="`mvn` not found on PATH"):
        ensure_jars()


@pytest.mark.parametrize("kind", KINDS)
def test_no_broker_is_a_fast_one_line_error(kind):
    started = time.monotonic()
    with pytest.raises(SeaportError, match="no Kafka broker answers at 127.0.0.1:"):
        clients.make_client(kind, f"127.0.0.1:{free_port()}")
    assert time.monotonic() - started < 60  # ended, not hung


@pytest.mark.parametrize("kind", KINDS)
def test_a_message_larger_than_the_broker_takes_is_a_one_line_error(kind, kafka_client, topic_prefix):
    client = kafka_client(kind)
    topic = topic_name("deadletter", topic_prefix)
    with pytest.raises(SeaportError, match=r"1 of 2 delivered \(message 2 refused"):
        client.produce(topic, [(None, b"small"), (None, b"x" * 2_000_000)])
    assert [r.value for r in read_all(client, topic)] == [b"small"]
