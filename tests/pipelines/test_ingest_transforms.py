"""The Beam pieces of `pipelines/graph.py` and the steps of `pipelines/stage.py`, without Kafka: TestPipeline and assert_that."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.graph import ValidateAndProtect
from pipelines.ingest import (
    IN_PROCESS_BELOW,
    POOL_FROM_BATCHES,
    RunParams,
    _in_process_below,
    _pooled,
    add_arguments,
    uses_beam,
)
from pipelines.stage import PROTECT_CHUNK, protect_batch, split_range, stage_batch
from schemas.staged import OffsetRange
from seaport.kafka.clients import Record
from transforms.policy import POLICY_PATH, FieldPolicy
from transforms.pseudonyms import Pseudonymizer

POLICY = FieldPolicy.load()
POLICY_TEXT = POLICY_PATH.read_text(encoding="utf-8")
PSEUDONYMS = Pseudonymizer.from_key_bytes(bytes(range(32)))


def beacon(n: int, **extra: object) -> bytes:
    doc = {
        "schema": "beacon/1",
        "event_id": f"e-{n}",
        "event": "page_view",
        "ts": "2026-11-24T08:15:30.123Z",
        "anonymous_id": f"c-test-{n}",
        "page": "/policy/query?tab=a",
        "device": {"os": "iOS", "os_version": "17.1.2"},
    }
    return json.dumps(doc | extra).encode()


def records(values: list[bytes], topic: str = "beacons.raw") -> list[Record]:
    return [Record(topic, 0, i, None, v, 0) for i, v in enumerate(values)]


def test_split_range_covers_the_range_exactly():
    with TestPipeline(runner="FnApiRunner") as p:
        pieces = (
            p
            | beam.Create([OffsetRange("beacons.raw", "x.beacons.raw", 1, 10, 125)])
            | beam.FlatMap(split_range, 50)
            | beam.Map(lambda r: (r.partition, r.start, r.end))
        )
        assert_that(pieces, equal_to([(1, 10, 60), (1, 60, 110), (1, 110, 125)]))


def test_a_batch_protected_in_chunks_stages_what_it_does_in_one(tmp_path: Path):
    """stage_batch protects a read batch PROTECT_CHUNK messages at a time: its staged rows and
    counts are those of the whole batch protected at once, dead letters and redactions included."""
    values = []
    for n in range(2 * PROTECT_CHUNK + PROTECT_CHUNK // 2):
        if n % 97 == 0:
            values.append(b"not json" if n % 2 else b"[]")
        elif n % 89 == 0:
            values.append(beacon(n, page=f"/claims?phone=1380013{n:04d}"))  # a redacted identifier
        else:
            values.append(beacon(n, event="click" if n % 3 else "page_view", element=f"b{n % 5}"))
    r = OffsetRange("beacons.raw", "beacons.raw", 0, 0, len(values))
    counts, rows = stage_batch(r, records(values), POLICY, PSEUDONYMS, str(tmp_path))
    whole = protect_batch("beacons.raw", records(values), POLICY, PSEUDONYMS)
    assert rows == {kind: t.num_rows for kind, t in whole.tables.items()}
    for kind, table in whole.tables.items():
        assert pq.read_table(tmp_path / kind).to_pylist() == table.to_pylist()
    assert counts["valid"] == whole.valid and counts["deadletter"] == rows["deadletter"] > 2
    assert {k.removeprefix("redacted_"): n for k, n in counts.items() if k.startswith("redacted_")} == dict(
        whole.redactions
    )
    assert sum(whole.redactions.values()) > 0


def test_validate_and_protect_stages_rows_and_dead_letters(tmp_path: Path):
    values = [beacon(1), beacon(2, event="click"), b"not json", beacon(3), b"[]", beacon(1)]
    element = (OffsetRange("beacons.raw", "beacons.raw", 0, 0, len(values)), records(values))
    with TestPipeline(runner="FnApiRunner") as p:
        staged = (
            p
            | beam.Create([element])
            | beam.ParDo(ValidateAndProtect(POLICY, PSEUDONYMS, str(tmp_path)))
            | beam.CombinePerKey(sum)
        )
        # the duplicate event_id is staged: the store drops it (its key), so repeats change nothing
        assert_that(staged, equal_to([("analytics", 3), ("security", 3), ("deadletter", 3)]))
    letters = pq.read_table(next((tmp_path / "deadletter").glob("*.parquet"))).to_pylist()
    assert sorted((d["source_offset"], d["reason"]) for d in letters) == [
        (1, "invalid:a_click_needs_an_element"),
        (2, "not_json"),
        (4, "not_an_object"),
    ]
    analytics = pq.read_table(next((tmp_path / "analytics").glob("*.parquet"))).to_pylist()
    assert {a["page"] for a in analytics} == {"/policy/query?tab=a"}
    assert all(a["os_version_major"] == "17" and a["subject_pseudonym"] != "c-test-1" for a in analytics)


def test_protect_batch_routes_each_topic():
    consent = json.dumps(
        {
            "schema": "consent/1",
            "ts": "2026-11-24T08:00:00Z",
            "subject": {"openid": "o-x"},
            "analytics": "granted",
            "minor": True,
        }
    ).encode()
    out = protect_batch("consent.events", records([consent, b"{}"], "consent.events"), POLICY, PSEUDONYMS)
    [row] = out.tables["consent"].to_pylist()
    assert row["minor_without_guardian"] is True
    assert row["analytics_pseudonym"] != row["security_pseudonym"]
    assert [d["reason"] for d in out.tables["deadletter"].to_pylist()] == ["missing_field:schema"]
    # what is stored is the policy's output: with a guardian's consent kept, or `minor` dropped by
    # the policy, nothing marks the subject a minor without one (R9)
    guarded = json.loads(consent) | {"guardian_consent": True}
    out = protect_batch("consent.events", records([json.dumps(guarded).encode()], "consent.events"), POLICY, PSEUDONYMS)
    assert out.tables["consent"].to_pylist()[0]["minor_without_guardian"] is False
    text = POLICY_TEXT.replace(
        'analytics = "keep -> minor"\nsecurity = "keep -> minor"', 'analytics = "drop"\nsecurity = "drop"'
    )
    assert text != POLICY_TEXT
    out = protect_batch("consent.events", records([consent], "consent.events"), FieldPolicy.parse(text), PSEUDONYMS)
    assert out.tables["consent"].to_pylist()[0]["minor_without_guardian"] is False
    access = json.dumps(
        {
            "schema": "access/1",
            "ts": "2026-11-24T08:00:00Z",
            "ip": "203.0.113.7",
            "method": "GET",
            "path": "/login?phone=13812345678",
            "status": 401,
        }
    ).encode()
    out = protect_batch("access_logs.raw", records([access], "access_logs.raw"), POLICY, PSEUDONYMS)
    row = out.tables["security"].to_pylist()[0]
    assert row["event_id"] == "access_logs.raw/0/0" and row["ip_prefix"] == "203.0.113.0/24"
    assert "13812345678" not in row["page_or_path"] and out.redactions["phone"] == 1


def test_poison_messages_become_dead_letters_and_the_batch_goes_on(tmp_path: Path):
    """A message that once stopped every run: a time beyond UTC's range, a lone surrogate (JSON may
    escape one; UTF-8 can't carry it), and one the checks miss (the policy raises): each a dead letter."""

    class Brittle(FieldPolicy):
        def protect_many(self, kind, purpose, messages, pseudonymizer):  # type: ignore[no-untyped-def]
            if any(m.event_id == "e-brittle" for m in messages):
                raise OverflowError("something no check foresaw")
            return super().protect_many(kind, purpose, messages, pseudonymizer)

    brittle = Brittle.load()
    values = [
        beacon(1, ts="9999-12-31T23:00:00-05:00"),
        beacon(2, ts="0001-01-01T00:30:00+14:00"),
        json.dumps(json.loads(beacon(3)) | {"referrer": "/a\ud800", "user": {"openid": "o-canary-\udfff"}}).encode(),
        beacon(4, event_id="e-brittle"),
        beacon(5),
    ]
    element = (OffsetRange("beacons.raw", "beacons.raw", 0, 0, len(values)), records(values))
    with TestPipeline(runner="FnApiRunner") as p:
        staged = (
            p
            | beam.Create([element])
            | beam.ParDo(ValidateAndProtect(brittle, PSEUDONYMS, str(tmp_path)))
            | beam.CombinePerKey(sum)
        )
        assert_that(staged, equal_to([("analytics", 1), ("security", 1), ("deadletter", 4)]))
    letters = pq.read_table(next((tmp_path / "deadletter").glob("*.parquet"))).to_pylist()
    assert sorted((d["source_offset"], d["reason"]) for d in letters) == [
        (0, "wrong_field:ts"),
        (1, "wrong_field:ts"),
        (2, "not_json"),
        (3, "unprocessable"),
    ]
    written = json.dumps(letters, default=str)
    assert "c-test-" not in written and "o-canary" not in written and all(d["subject_pseudonym"] for d in letters)


def test_a_streaming_ingest_runs_every_poll_on_its_kept_workers_unless_told_otherwise() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)

    def beam_for(messages: int, *argv: str) -> bool:
        args = parser.parse_args(list(argv))
        params = RunParams(
            bootstrap="127.0.0.1:1", group="g", runner=args.runner, in_process_below=_in_process_below(args)
        )
        return uses_beam(params, messages)

    big = 10 * IN_PROCESS_BELOW
    assert beam_for(IN_PROCESS_BELOW, "--until-caught-up") and not beam_for(IN_PROCESS_BELOW - 1, "--until-caught-up")
    assert not beam_for(big, "--streaming")
    assert beam_for(big, "--streaming", "--in-process-below", "1000")
    assert beam_for(1, "--streaming", "--in-process-below", "0")
    assert beam_for(1, "--streaming", "--runner", "DirectRunner")


def test_a_run_starts_the_local_workers_only_when_they_pay_and_uses_running_ones_from_two_batches(
    monkeypatch,
) -> None:
    import pipelines.ingest as ingest

    params = RunParams(bootstrap="127.0.0.1:1", group="g", max_batch=100)
    monkeypatch.setattr(ingest.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(ingest, "_pool", None)
    start = POOL_FROM_BATCHES * 100
    assert [_pooled(params, n) for n in (199, 200, start - 1, start)] == [False, False, False, True]
    monkeypatch.setattr(ingest, "_pool", ("a setup", "its workers"))  # a long-lived ingest's
    assert [_pooled(params, n) for n in (199, 200, start)] == [False, True, True]
    monkeypatch.setattr(ingest.os, "cpu_count", lambda: 1)  # one core: never
    assert not _pooled(params, start)
