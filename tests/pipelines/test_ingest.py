"""`seaport ingest` against the real broker: every table cell against an independent model,
bad input routed and counted, and restart safety under SIGKILL."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from seaport.kafka.clients import make_client
from seaport.kafka.topics import message_key, topic_name
from sinks.quality import check_warehouse
from tests.helpers import read_all
from tests.model import build_dataset, expected_duplicates, expected_tables, normalize, rounded

TABLE_COLUMNS = {
    "page_views_hourly": "hour, page, views, visitors, avg_duration_ms, hours",
    "page_views_daily": "day, page, views, visitors, avg_duration_ms",
    "clicks_hourly": "hour, page, element, clicks, visitors, hours",
    "clicks_daily": "day, page, element, clicks, visitors",
    "devices_daily": "day, device_model, os, os_version_major, events, visitors",
    "audience_daily": "day, gender, country, city, language, visitors",
    "sessions_daily": "day, sessions, avg_session_duration_ms, bounce_rate",
    "retention_weekly": "cohort_week, weeks_since, visitors",
}


def produce(bootstrap: str, prefix: str, messages: dict[str, list[bytes]], client: str = "confluent") -> None:
    """Each message under the contract's key, as the collector and `seaport produce` send it (one
    subject's consent changes in one partition, in order)."""
    kafka = make_client(client, bootstrap)
    try:
        for topic, values in messages.items():
            kafka.produce(topic_name(topic, prefix), [(message_key(topic, v), v) for v in values])
    finally:
        kafka.close()


def ingest_command(bootstrap: str, prefix: str, warehouse: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "seaport.cli",
        "ingest",
        "--until-caught-up",
        "--bootstrap",
        bootstrap,
        "--topic-prefix",
        prefix,
        "--warehouse",
        str(warehouse),
        "--group",
        f"g-{warehouse.name}",
        *extra,
    ]


def ingest(bootstrap: str, prefix: str, warehouse: Path, key: Path, *extra: str) -> str:
    env = os.environ | {"SEAPORT_PSEUDONYM_KEY_FILE": str(key)}
    done = subprocess.run(
        ingest_command(bootstrap, prefix, warehouse, *extra), env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def read_tables(warehouse: Path, tables=TABLE_COLUMNS) -> dict[str, set[tuple]]:
    con = duckdb.connect(str(warehouse / "analytics.duckdb"), read_only=True)
    try:
        return {t: normalize(con.execute(f"SELECT {cols} FROM {t}").fetchall()) for t, cols in tables.items()}
    finally:
        con.close()


def bookkeeping(warehouse: Path) -> dict[str, set[tuple]]:
    return read_tables(
        warehouse, {"deadletter_counts": "source_topic, reason, messages", "suppressed_cells": "table_name, cells"}
    )


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_every_cell_matches_the_independent_model(kafka_bootstrap, topic_prefix, tmp_path, key_file, client):
    ds = build_dataset(seed=11, subjects=36)
    produce(kafka_bootstrap, topic_prefix, ds.messages)
    for k in (1, 3):
        warehouse = tmp_path / f"wh-k{k}"
        # kafka-python's runs go through Beam even at this size; confluent's call the steps directly,
        # in this process (k = 1) or, in batches of 50, over the local worker processes (k = 3);
        # k = 3 rebuilds the aggregates a few days at a time
        mode = {"kafka-python": ["--in-process-below", "0"], "confluent": ["--max-batch", "50"] if k == 3 else []}
        chunks = ["--chunk-events", "150"] if k == 3 else []
        out = ingest(
            kafka_bootstrap, topic_prefix, warehouse, key_file, "--k", str(k), "--kafka-client", client,
            *mode[client], *chunks,
        )  # fmt: skip
        assert "messages read" in out
        expected = {t: rounded(rows) for t, rows in expected_tables(ds, k=k).items()}
        actual = read_tables(warehouse)
        for table in TABLE_COLUMNS:
            assert actual[table] == expected[table], table
        assert sum(len(rows) for rows in expected.values()) > (200 if k == 1 else 10)
    for k in (1, 3):  # k = 3 has (other) rows
        quality = check_warehouse(tmp_path / f"wh-k{k}", k=k)
        assert quality.ok and quality.evaluated > 30, (k, quality.failures)
    con = duckdb.connect(str(tmp_path / "wh-k1" / "analytics.duckdb"), read_only=True)
    duplicates = con.execute("SELECT sum(duplicates) FROM ingest_runs").fetchone()[0]
    con.close()
    assert duplicates == expected_duplicates(ds) > 0
    # k=3 suppresses what k=1 publishes, and says how much (k=1 suppresses the hours of a page
    # with page leaves but no view: `views` stands on no viewer)
    suppressed = dict(bookkeeping(tmp_path / "wh-k3")["suppressed_cells"])
    suppressed_k1 = dict(bookkeeping(tmp_path / "wh-k1")["suppressed_cells"])
    assert sum(suppressed.values()) > sum(suppressed_k1.values())

    def published_cells(k: int) -> int:  # the roll-up rows of suppressed cells are no cells of their own
        return len([r for r in expected_tables(ds, k)["page_views_hourly"] if r[1] != "(other)"])

    cells = published_cells(1) + suppressed_k1["page_views_hourly"]
    assert suppressed["page_views_hourly"] == cells - published_cells(3)
    assert any(r[1] == "(other)" for r in expected_tables(ds, 3)["page_views_hourly"])  # roll-ups were tested


def test_second_run_reads_nothing_and_changes_nothing(kafka_bootstrap, topic_prefix, tmp_path, key_file):
    ds = build_dataset(seed=5, subjects=12)
    produce(kafka_bootstrap, topic_prefix, ds.messages)
    warehouse = tmp_path / "wh"
    ingest(kafka_bootstrap, topic_prefix, warehouse, key_file, "--k", "1")
    first = read_tables(warehouse)
    assert "nothing new" in ingest(kafka_bootstrap, topic_prefix, warehouse, key_file, "--k", "1")
    assert read_tables(warehouse) == first


def test_a_run_starts_at_the_stored_positions_and_asks_the_group_only_where_none_is_stored(
    kafka_bootstrap, topic_prefix, kafka_client
):
    from pipelines.ingest import INPUT_TOPICS, plan_ranges

    client = kafka_client()
    beacons = topic_name("beacons.raw", topic_prefix)
    client.produce(beacons, [(f"k{i}".encode(), b"{}") for i in range(40)])
    ends = {t: client.end_offsets(topic_name(t, topic_prefix)) for t in INPUT_TOPICS}
    partition = next(p for p, end in ends["beacons.raw"].items() if end >= 2)
    group = f"{topic_prefix}planner"
    client.commit(group, {(beacons, partition): 1})
    asked: list[str] = []
    committed = client.committed
    client.committed = lambda g, t: asked.append(t) or committed(g, t)  # type: ignore[method-assign]

    stored = {(t, p): end for t in INPUT_TOPICS for p, end in ends[t].items()}
    stored[("beacons.raw", partition)] = 2  # the warehouse's position wins over the group's offset
    ranges = {(r.topic, r.partition): (r.start, r.end) for r in plan_ranges(client, stored, group, topic_prefix)}
    assert asked == []  # every position stored: no consumer, no round trip for the group's offsets
    assert ranges == {key: (start, ends[key[0]][key[1]]) for key, start in stored.items()}

    del stored[("beacons.raw", partition)]
    ranges = {(r.topic, r.partition): (r.start, r.end) for r in plan_ranges(client, stored, group, topic_prefix)}
    assert asked == [beacons]
    assert ranges[("beacons.raw", partition)] == (1, ends["beacons.raw"][partition])  # the group's offset


def test_bad_input_is_routed_counted_and_redacted(kafka_bootstrap, topic_prefix, tmp_path, key_file):
    ds = build_dataset(seed=23, subjects=30, bad=3000)
    produce(kafka_bootstrap, topic_prefix, ds.messages)
    warehouse = tmp_path / "wh"
    ingest(kafka_bootstrap, topic_prefix, warehouse, key_file, "--k", "1")

    expected = {t: rounded(rows) for t, rows in expected_tables(ds, k=1).items()}
    assert read_tables(warehouse) == expected  # every good message counted, none of the bad

    counts = bookkeeping(warehouse)["deadletter_counts"]
    assert sum(n for _, _, n in counts) == len(ds.bad_reasons)
    by_prefix: dict[tuple[str, str], int] = {}
    for topic, reason, n in counts:
        key = (topic, reason.split(":")[0])
        by_prefix[key] = by_prefix.get(key, 0) + n
    wanted: dict[tuple[str, str], int] = {}
    for topic, reason in ds.bad_reasons:
        wanted[(topic, reason)] = wanted.get((topic, reason), 0) + 1
    assert by_prefix == wanted

    kafka = make_client("confluent", kafka_bootstrap)
    dl_topic = topic_name("deadletter", topic_prefix)
    letters = [json.loads(r.value) for r in read_all(kafka, dl_topic)]
    kafka.close()
    assert len({(d["source_topic"], d["partition"], d["offset"]) for d in letters}) == len(ds.bad_reasons)
    assert {d["reason"].split(":")[0] for d in letters} == {r for _, r in ds.bad_reasons}
    # the payloads carry no identifier of the data set
    identifiers = {doc_id for raw in ds.messages["beacons.raw"] for doc_id in _identifiers(raw)}
    blob = json.dumps(letters)
    assert identifiers and not [i for i in identifiers if i in blob]


def _identifiers(raw: bytes) -> list[str]:
    try:
        doc = json.loads(raw)
    except ValueError:
        return []
    if not isinstance(doc, dict):
        return []
    found = [doc.get("anonymous_id"), ((doc.get("device") or {}).get("mac")), ((doc.get("network") or {}).get("ip"))]
    found.append((doc.get("user") or {}).get("openid"))
    return [f for f in found if isinstance(f, str)]


def test_sigkill_at_random_points_changes_nothing(kafka_bootstrap, topic_prefix, tmp_path, key_file):
    ds = build_dataset(seed=31, subjects=30, bad=200)
    later = build_dataset(seed=32, subjects=20)  # a second batch of traffic, produced later
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    rng = random.Random(4)
    # TMPDIR: a process killed mid-run leaves Beam's temporary folder behind; keep it in the test's own
    env = os.environ | {"SEAPORT_PSEUDONYM_KEY_FILE": str(key_file), "TMPDIR": str(tmp_path)}
    # the crashed warehouse rebuilds its aggregates a few days at a time, the reference all at once
    chunks = ["--chunk-events", "100"]

    def kill_and_restart(kills: int) -> None:
        for i in range(kills):  # in turn through Beam, calling its steps directly, over local workers
            mode = [[], ["--in-process-below", "0"], ["--max-batch", "50"]][i % 3]
            proc = subprocess.Popen(
                ingest_command(kafka_bootstrap, topic_prefix, crashed, "--k", "1", *chunks, *mode),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(rng.uniform(0.5, 7.0))
            workers = children(proc.pid)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
            deadline = time.monotonic() + 60  # a worker still starting exits once it has started
            while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not any(Path(f"/proc/{w}").exists() for w in workers), "a local worker outlived its ingest"
        ingest(kafka_bootstrap, topic_prefix, crashed, key_file, "--k", "1", *chunks)

    produce(kafka_bootstrap, topic_prefix, ds.messages)
    ingest(kafka_bootstrap, topic_prefix, reference, key_file, "--k", "1")
    kill_and_restart(4)
    assert read_tables(crashed) == read_tables(reference)

    produce(kafka_bootstrap, topic_prefix, {"beacons.raw": later.messages["beacons.raw"]})
    ingest(kafka_bootstrap, topic_prefix, reference, key_file, "--k", "1")
    kill_and_restart(3)
    assert read_tables(crashed) == read_tables(reference)
    assert bookkeeping(crashed) == bookkeeping(reference)
    assert security_event_ids(crashed) == security_event_ids(reference)
    assert len(security_event_ids(reference)) > 300


def children(pid: int) -> set[int]:
    """The child processes of `pid`, as Linux lists them per thread (none once it has ended)."""
    found: set[int] = set()
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found |= {int(c) for c in listing.read_text().split()}
    return found


def security_event_ids(warehouse: Path) -> set[str]:
    con = duckdb.connect(str(warehouse / "security.duckdb"), read_only=True)
    try:
        return {r[0] for r in con.execute("SELECT event_id FROM security_events").fetchall()}
    finally:
        con.close()


def test_ingest_before_any_topic_exists_makes_them_and_an_empty_warehouse(kafka_bootstrap, tmp_path, key_file):
    prefix = f"fresh{os.getpid()}{random.randrange(10**6)}."
    out = ingest(kafka_bootstrap, prefix, tmp_path / "wh", key_file)
    assert "0 messages read" in out
    assert all(rows == set() for rows in read_tables(tmp_path / "wh").values())
    kafka = make_client("confluent", kafka_bootstrap)
    try:
        assert kafka.partitions(topic_name("beacons.raw", prefix)) == [0, 1, 2, 3]
    finally:
        kafka.close()
    assert "nothing new" in ingest(kafka_bootstrap, prefix, tmp_path / "wh", key_file)


def _read_when_free(warehouse: Path, deadline: float) -> dict[str, set[tuple]] | None:
    """The tables, or None while a run of the streaming ingest has the files (DuckDB locks them)."""
    try:
        return read_tables(warehouse)
    except duckdb.IOException:
        assert time.monotonic() < deadline, "the warehouse stayed locked between streaming runs"
        return None


def _wait_for_tables(warehouse: Path, wanted: dict[str, set[tuple]], proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
    while (tables := _read_when_free(warehouse, deadline)) != wanted:
        assert proc.poll() is None, "the streaming ingest stopped"
        assert time.monotonic() < deadline, "the streaming ingest did not catch up" if tables else "no tables"
        time.sleep(0.3)


def test_streaming_ingests_what_arrives_frees_the_warehouse_between_runs_and_stops_on_sigint(
    kafka_bootstrap, topic_prefix, tmp_path, key_file
):
    ds = build_dataset(seed=41, subjects=16)
    beacons = ds.messages["beacons.raw"]
    first = {topic: values for topic, values in ds.messages.items() if topic != "beacons.raw"}
    first["beacons.raw"] = beacons[: len(beacons) // 2]
    expected_first = expected_tables(type(ds)(messages=first), k=1)
    expected_all = expected_tables(ds, k=1)
    warehouse = tmp_path / "wh"
    command = ingest_command(kafka_bootstrap, topic_prefix, warehouse, "--k", "1", "--poll-seconds", "0.3")
    command[command.index("--until-caught-up")] = "--streaming"
    env = os.environ | {"SEAPORT_PSEUDONYM_KEY_FILE": str(key_file)}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        produce(kafka_bootstrap, topic_prefix, first)
        _wait_for_tables(warehouse, {t: rounded(rows) for t, rows in expected_first.items()}, proc)
        # an analyst holds the warehouse open: the next run waits for it instead of failing
        deadline = time.monotonic() + 60
        while (reader := _connect_when_free(warehouse / "analytics.duckdb", deadline)) is None:
            time.sleep(0.1)
        produce(kafka_bootstrap, topic_prefix, {"beacons.raw": beacons[len(beacons) // 2 :]})
        time.sleep(2)  # several polls with the reader there
        assert proc.poll() is None
        reader.close()
        _wait_for_tables(warehouse, {t: rounded(rows) for t, rows in expected_all.items()}, proc)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "in use by another process; waiting" in err and "Traceback" not in err
    assert out.count("messages read") >= 2
    assert read_tables(warehouse) == {t: rounded(rows) for t, rows in expected_all.items()}
    # R12: each committed run is in the audit trail, then the invocation, chained intact
    from sinks import trail

    commands = [e["command"] for e in trail.entries(warehouse)]
    assert commands.count("ingest run") >= 2 and commands[-1] == "ingest"
    assert trail.verify(warehouse) == (len(commands), [])


def _connect_when_free(database: Path, deadline: float) -> duckdb.DuckDBPyConnection | None:
    try:
        return duckdb.connect(str(database), read_only=True)
    except duckdb.IOException:
        assert time.monotonic() < deadline, "the warehouse stayed locked between streaming runs"
        return None


def test_a_mistyped_topic_prefix_shows(kafka_bootstrap, tmp_path, key_file):
    prefix = f"typo{random.getrandbits(32):08x}."
    env = os.environ | {"SEAPORT_PSEUDONYM_KEY_FILE": str(key_file)}
    done = subprocess.run(
        ingest_command(kafka_bootstrap, prefix, tmp_path / "wh"), env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"created the missing topics {prefix}beacons.raw" in done.stderr and "0 messages read" in done.stdout


def test_the_beam_graph_on_testpipeline(kafka_bootstrap, tmp_path: Path):
    """The ingest graph on Beam's TestPipeline stages what its steps called directly stage, and
    reads every offset of the ranges exactly once (split in pieces smaller than themselves)."""
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from pipelines import graph
    from pipelines.stage import split_range, stage_batch
    from schemas.staged import OffsetRange
    from seaport.kafka.topics import create_topics
    from transforms.policy import FieldPolicy
    from transforms.pseudonyms import Pseudonymizer

    prefix = f"tbeam{os.getpid()}."
    create_topics(kafka_bootstrap, prefix)
    ds = build_dataset(seed=41, subjects=12, days=1, bad=6)
    beacons = ds.messages["beacons.raw"]
    bad = sum(1 for topic, _ in ds.bad_reasons if topic == "beacons.raw")
    assert bad and len(beacons) > 4 * bad
    produce(kafka_bootstrap, prefix, {"beacons.raw": beacons})
    kafka = make_client("confluent", kafka_bootstrap)
    try:
        name = topic_name("beacons.raw", prefix)
        ranges = [OffsetRange("beacons.raw", name, p, 0, end) for p, end in sorted(kafka.end_offsets(name).items())]
    finally:
        kafka.close()
    assert sum(r.end for r in ranges) == len(beacons)
    piece = max(r.end for r in ranges) // 3 + 1  # every partition read in several pieces
    policy, pseudonymizer = FieldPolicy.load(), Pseudonymizer.from_key_bytes(os.urandom(32))
    # what the same steps stage called directly, in order (the in-process path of small runs)
    reader = graph.ReadOffsetRange("confluent", kafka_bootstrap, 7)
    reader.setup()
    try:
        direct: dict[str, int] = {}
        for r in ranges:
            for element in reader.process(r):
                for kind, n in stage_batch(*element, policy, pseudonymizer, tmp_path / "direct")[1].items():
                    direct[kind] = direct.get(kind, 0) + n
    finally:
        reader.teardown()
    assert direct["deadletter"] == bad and direct["security"] == len(beacons) - bad
    with TestPipeline(runner="FnApiRunner") as p:
        read_and_protect = graph.ReadAndProtect(
            graph.ReadOffsetRange("confluent", kafka_bootstrap, 7),
            graph.ValidateAndProtect(policy, pseudonymizer, str(tmp_path / "beam")),
        )
        staged = (
            p
            | beam.Create(ranges)
            | beam.FlatMap(split_range, piece)
            | beam.Reshuffle()
            | beam.ParDo(read_and_protect)
            | beam.CombinePerKey(sum)
        )
        assert_that(staged, equal_to(sorted(direct.items())), label="every message staged")
    # every offset read once: each is one staged row, protected or a dead letter
    security = pq.read_table(tmp_path / "beam" / "security", columns=["_partition", "_offset"]).to_pylist()
    letters = pq.read_table(tmp_path / "beam" / "deadletter").to_pylist()
    offsets = [(r["_partition"], r["_offset"]) for r in security]
    offsets += [(r["source_partition"], r["source_offset"]) for r in letters]
    assert sorted(offsets) == [(r.partition, o) for r in ranges for o in range(r.start, r.end)]
