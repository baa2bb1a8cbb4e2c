"""`seaport bench --streaming`: how fresh the warehouse stays under a sustained stream.

On top of the bench's largest warehouse, a real `seaport ingest --streaming` process runs while
this process produces realistic traffic at `--rate` messages/s for `--seconds` (one simulated day
of today, replayed with new event ids: `beacon/1`'s `event_id` gets the replay's number, so no
event is a duplicate of another). Every tick (0.1 s) plants a mark: its time and the end offsets
of `beacons.raw` right after the tick's messages are on the broker. A message is queryable once
the ingest has published a run whose offset ranges (`ingest_runs`) reach its offset; the ingest
says each run on stdout after publishing it, and this process notes when it reads that line. The
freshness of a tick is that moment minus the tick's start (so it is never understated).

Benchmarks are not tests: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seaport.devtools.bench import phase_name
from seaport.errors import SeaportError
from seaport.progress import Progress

if TYPE_CHECKING:
    from seaport.devtools.bench import PeakMemory
    from seaport.kafka.clients import KafkaClient

TICK_S = 0.1
CATCH_UP_S = 300  # after producing, how long the ingest may take to publish the last tick


def measure_freshness(
    args: argparse.Namespace, client: KafkaClient, warehouse: Path, prefix: str, root: Path, memory: PeakMemory
) -> None:
    from seaport.devtools.bench import (
        BENCH_KEY,
        BENCH_LATE_DAYS,
        BENCH_RETENTION_DAYS,
        _progress,
        _simulate_day,
    )
    from seaport.kafka.topics import message_key, topic_name

    _progress(f"streaming: one simulated day to replay at {args.rate:,} messages/s for {args.seconds} s")
    day = _simulate_day(args.users, args.seed + 20_000, date.today())
    pool = [(topic_name(t, prefix), message_key(t, v), v) for t, values in day.items() for v in values]
    key = root / "bench.key"
    key.write_bytes(BENCH_KEY)
    command = [
        sys.executable, "-m", "seaport.cli", "ingest", "--streaming",
        "--bootstrap", args.bootstrap, "--kafka-client", args.kafka_client, "--topic-prefix", prefix,
        "--warehouse", str(warehouse), "--group", f"{prefix}streaming",
        "--late-days", str(BENCH_LATE_DAYS), "--security-retention-days", str(BENCH_RETENTION_DAYS),
        "--poll-seconds", str(args.poll_seconds), "--runner", args.runner, *args.extra,
    ]  # fmt: skip
    env = os.environ | {"SEAPORT_PSEUDONYM_KEY_FILE": str(key)}
    log = (root / "streaming-ingest.log").open("w")
    ingest = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    memory.root = ingest.pid  # the phase's peak: the streaming ingest's own
    published: list[tuple[str, float, int]] = []  # (run id, when its line was read, messages)
    phases: list[dict[str, float]] = []  # per run that read messages: seconds per phase
    first = threading.Event()
    reader = threading.Thread(target=_read_runs, args=(ingest, published, phases, first, log), daemon=True)
    reader.start()
    beacons = topic_name("beacons.raw", prefix)
    marks: list[tuple[float, dict[int, int]]] = []
    try:
        if not first.wait(120):
            said = (root / "streaming-ingest.log").read_text().strip().splitlines()
            raise SeaportError(f"the streaming ingest did not start: {said[-1] if said else 'no output in 120 s'}")
        _progress("streaming: producing; the ingest publishes as it goes")
        per_tick = max(1, round(args.rate * TICK_S))
        started, sent = time.monotonic(), 0
        with Progress("[bench] streaming", total=args.rate * args.seconds) as bar:
            for tick in range(round(args.seconds / TICK_S)):
                due = started + tick * TICK_S
                time.sleep(max(0.0, due - time.monotonic()))
                begun = time.monotonic()
                by_topic: dict[str, list[tuple[bytes | None, bytes]]] = {}
                for i in range(sent, sent + per_tick):
                    name, k, v = pool[i % len(pool)]
                    by_topic.setdefault(name, []).append((k, _replayed(v, i // len(pool))))
                for name, messages in by_topic.items():
                    client.produce(name, messages)
                sent += per_tick
                marks.append((begun, client.end_offsets(beacons)))
                bar.update(per_tick)
        produce_s = time.monotonic() - started
        _progress("streaming: waiting for the ingest to publish the last tick")
        deadline = time.monotonic() + CATCH_UP_S
        while time.monotonic() < deadline and sum(n for _, _, n in list(published)) < sent:
            time.sleep(0.5)
    finally:
        ingest.send_signal(signal.SIGINT)  # ends after the run in progress has committed
        try:
            ingest.wait(120)
        except subprocess.TimeoutExpired:
            ingest.kill()
            ingest.wait()
        memory.root = None
        reader.join(5)
        log.close()
    _report(args, warehouse, published, marks, sent, produce_s)
    _report_runs(published, phases)


def _replayed(value: bytes, replay: int) -> bytes:
    return value.replace(b'"event_id":"', b'"event_id":"r%d-' % replay, 1) if replay else value


def _read_runs(
    ingest: subprocess.Popen[str],
    published: list[tuple[str, float, int]],
    phases: list[dict[str, float]],
    first: threading.Event,
    log: Any,
) -> None:
    """Notes when each run's line ("ingest run ID: N messages read, ...") appears: after the run
    has published; and its phases ("  took: reading and protecting N messages 1.2 s, storing
    0.3 s, ..."). Every line goes to the log too."""
    assert ingest.stdout is not None
    for line in ingest.stdout:
        log.write(line)
        words = line.split()
        if line.startswith("ingest run ") and len(words) > 3 and words[3].isdigit():
            published.append((words[2].rstrip(":"), time.monotonic(), int(words[3])))
        elif line.startswith("  took: "):
            took = (re.fullmatch(r"(.+) ([\d.]+) s", part) for part in line[8:].strip().split(", "))
            phases.append({phase_name(m[1]): float(m[2]) for m in took if m})
        first.set()  # its first line: started, and caught up


def _report_runs(published: list[tuple[str, float, int]], phases: list[dict[str, float]]) -> None:
    """The median run that read messages: how many, and its phases (where a poll's time goes)."""
    sizes = sorted(n for _, _, n in published if n)
    if not sizes or not phases:
        return
    names = list(dict.fromkeys(name for run in phases for name in run))
    medians = {name: statistics.median(run.get(name, 0.0) for run in phases) for name in names}
    print(f"a run (medians of {len(sizes)}): {statistics.median(sizes):,.0f} messages; "
          + ", ".join(f"{name} {s:.1f} s" for name, s in medians.items()))  # fmt: skip


def _positions(warehouse: Path) -> dict[str, dict[int, int]]:
    """Per run id: the end offset of each `beacons.raw` partition it read (from `ingest_runs`)."""
    import duckdb

    con = duckdb.connect(str(warehouse / "analytics.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT run_id, offset_ranges FROM ingest_runs").fetchall()
    finally:
        con.close()
    return {
        run_id: {r["partition"]: r["end"] for r in json.loads(ranges or "[]") if r["topic"] == "beacons.raw"}
        for run_id, ranges in rows
    }


def _report(
    args: argparse.Namespace,
    warehouse: Path,
    published: list[tuple[str, float, int]],
    marks: list[tuple[float, dict[int, int]]],
    sent: int,
    produce_s: float,
) -> None:
    """Per tick: the first published run after which every partition's position reaches the
    tick's end offsets; its time minus the tick's start."""
    ranges = _positions(warehouse)
    reached: dict[int, int] = {}
    moments: list[tuple[float, dict[int, int]]] = []  # (published at, positions after it)
    for run_id, at, _ in published:
        for partition, end in ranges.get(run_id, {}).items():
            reached[partition] = max(reached.get(partition, 0), end)
        moments.append((at, dict(reached)))
    waits: list[float] = []
    for begun, ends in marks:
        for at, positions in moments:
            if at >= begun and all(positions.get(p, 0) >= end for p, end in ends.items() if end):
                waits.append(at - begun)
                break
    runs = sum(1 for run_id, _, n in published if n)
    print(f"== streaming on top of the warehouse above: {sent:,} messages in {produce_s:.1f} s "
          f"({sent / produce_s:,.0f} msg/s asked {args.rate:,}), poll {args.poll_seconds} s, {runs} runs")  # fmt: skip
    if waits:
        waits.sort()
        p50, p95 = waits[len(waits) // 2], waits[min(len(waits) - 1, int(len(waits) * 0.95))]
        print(f"produce to queryable  p50 {p50:.2f} s   p95 {p95:.2f} s   max {waits[-1]:.2f} s   "
              f"({len(waits):,} of {len(marks):,} ticks published)")  # fmt: skip
    else:
        print(f"produce to queryable  none of {len(marks):,} ticks was published within {CATCH_UP_S} s")
