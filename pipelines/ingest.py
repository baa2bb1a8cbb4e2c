"""Ingest: Kafka to the warehouse, as an Apache Beam pipeline.

What it computes: every message that stands in `beacons.raw`, `access_logs.raw`,
`consent.events` and `erasure.requests` between the positions already stored and the end
offsets seen at the start of the run is parsed and validated (the bad ones go to `deadletter`,
redacted), protected by the field policy (pseudonymized, generalized, redacted, dropped), staged
as Parquet, and committed to the warehouse; then the analysts' aggregates are re-materialized and
the Kafka offsets committed (see `sinks/warehouse.py` for the commit order and why it is
exactly-once in effect).

The graph (`pipelines/graph.py`, imported only for a run through Beam):

    OffsetRanges ▸ SplitRanges ▸ Distribute ▸ ReadAndProtect

`ReadAndProtect` reads its piece of a partition in batches of records (`ReadOffsetRange`) and
stages each batch as Arrow/Parquet files (`ValidateAndProtect`) in one step: the records never
cross a Beam boundary (they would be pickled and sent between processes), and no per-element
Beam overhead sits on the hot path. What a run is
asked to do is one frozen `RunParams`.

Run it (a broker on 127.0.0.1:9092 with traffic in it):

    seaport ingest --until-caught-up --dev --warehouse warehouse/
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.stage import read_batches, split_range, stage_batch, stage_piece, worker_setup
from seaport.errors import SeaportError
from seaport.kafka.clients import KafkaClient, make_client
from seaport.kafka.topics import TOPICS, topic_name
from seaport.options import (
    add_kafka_options,
    add_prefix_option,
    add_security_dir_option,
    check_timezone,
    number_type,
    positive_float,
    positive_int,
)
from seaport.progress import Progress
from sinks import quality, trail
from sinks.warehouse import (
    CHUNK_EVENTS,
    LATE_DAYS,
    OffsetRange,
    RunSummary,
    Warehouse,
    WarehouseBusy,
)
from transforms.policy import FieldPolicy
from transforms.pseudonyms import Pseudonymizer

INPUT_TOPICS = ("consent.events", "erasure.requests", "beacons.raw", "access_logs.raw")
BUSY_WAIT_S = 10.0  # how long a run waits for a reader to let go of the warehouse
SPLIT_OFFSETS = 50_000  # offsets per unit of parallel work
PARALLEL_FROM = 200_000  # messages in a run from which the local runner uses every core
# Below PARALLEL_FROM the local runner would run Beam in one process: the same work on one core,
# plus seconds of start-up. So such runs call the steps directly.
IN_PROCESS_BELOW = PARALLEL_FROM


@dataclass(frozen=True)
class RunParams:
    """What one ingest run is asked to do: where it reads, how it runs, what it keeps."""

    bootstrap: str
    group: str  # the consumer group whose offsets the run commits
    prefix: str = ""  # of every topic name
    kafka_client: str = "confluent"
    runner: str = "FnApiRunner"
    beam_args: tuple[str, ...] = ()  # given to Beam as they are (`--runner FlinkRunner --flink_master ...`)
    retention_days: int = 90  # of the security events
    max_batch: int = 5000  # records per batch read from Kafka
    in_process_below: int = IN_PROCESS_BELOW
    verbose: bool = False  # say each phase on stderr


EPILOG = """\
Reads beacons.raw, access_logs.raw, consent.events and erasure.requests from the positions stored
in the warehouse to the end offsets that stand at the start, and writes:
  WAREHOUSE/analytics.duckdb, WAREHOUSE/parquet/   de-identified aggregates (analysts)
  WAREHOUSE/security.duckdb                        pseudonymized security events, dead letters
  WAREHOUSE/state.duckdb                           the pipeline's own facts and positions
Rejected messages go to the deadletter topic. Pseudonyms are keyed by the file named in
SEAPORT_PSEUDONYM_KEY_FILE (at least 32 random bytes); without it, only --dev runs.

example:
  seaport ingest --until-caught-up --dev --warehouse warehouse/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    add_kafka_options(parser)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--until-caught-up",
        action="store_true",
        help="read up to the end offsets that stand at the start, then exit (the default)",
    )
    mode.add_argument("--streaming", action="store_true", help="run again and again until stopped (Ctrl-C)")
    parser.add_argument(
        "--warehouse", type=Path, default=Path("warehouse"), help="warehouse folder (default: %(default)s)"
    )
    parser.add_argument("--group", default="seaport-ingest", help="Kafka consumer group (default: %(default)s)")
    parser.add_argument(
        "--k", type=int, default=5, help="k-anonymity threshold for published cells (default: %(default)s)"
    )
    parser.add_argument("--timezone", default="Asia/Shanghai", help="the zone of days and hours (default: %(default)s)")
    parser.add_argument(
        "--security-retention-days", type=int, default=180, help="keep security events this long (default: %(default)s)"
    )
    parser.add_argument(
        "--late-days",
        type=positive_int,
        default=LATE_DAYS,
        help="days before the latest event time seen that events, consent changes and erasures still "
        "change published cells; older ones are counted (ingest_runs.too_late), not applied, and the "
        "per-event facts of those days are purged (default: %(default)s)",
    )
    parser.add_argument(
        "--runner",
        default="FnApiRunner",
        help="any Beam runner (default: %(default)s, in-process); other Beam "
        "pipeline options may follow, e.g. --direct_num_workers=2",
    )
    add_prefix_option(parser)
    add_security_dir_option(parser)
    parser.add_argument(
        "--dev", action="store_true", help="without SEAPORT_PSEUDONYM_KEY_FILE: a throw-away key in .seaport/"
    )
    parser.add_argument(
        "--poll-seconds",
        type=positive_float,
        default=2.0,
        help="--streaming: pause between runs (default: %(default)s)",
    )
    parser.add_argument("--max-batch", type=positive_int, default=5000, help=argparse.SUPPRESS)
    # the most stored events one step of the aggregates' rebuild holds (tests make it small)
    parser.add_argument("--chunk-events", type=positive_int, default=CHUNK_EVENTS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--in-process-below",
        type=number_type(int, lambda n: n >= 0, "a whole number, 0 or more"),
        default=None,
        metavar="N",
        help="on the in-process runner, a run of fewer than N messages calls the pipeline's steps "
        "directly instead of starting Beam (seconds of start-up a streaming poll must not pay); "
        f"0: always Beam (default: {IN_PROCESS_BELOW:,}; with --streaming every run, on the "
        "local worker processes it keeps between runs)",
    )
    parser.set_defaults(accepts_extra=True)


def run(args: argparse.Namespace) -> int:
    from transforms.policy import FieldPolicy
    from transforms.pseudonyms import Pseudonymizer

    if args.k < 1:
        raise SeaportError("--k must be at least 1")
    if args.security_retention_days < 1:
        raise SeaportError("--security-retention-days must be at least 1")
    if not args.group.strip():
        raise SeaportError("--group must name a consumer group")
    check_runner(args.runner, args.extra)
    prefix = args.topic_prefix
    # Everything that can refuse to run does so before a single message is read.
    policy = FieldPolicy.load()
    pseudonymizer = Pseudonymizer.from_environment(dev=args.dev, dev_dir=Path(".seaport"))
    check_timezone(args.timezone)
    client = make_client(args.kafka_client, args.bootstrap)
    open_warehouse = functools.partial(
        Warehouse,
        args.warehouse,
        tz=args.timezone,
        k=args.k,
        late_days=args.late_days,
        security_dir=args.security_dir,
        chunk_events=args.chunk_events,
    )
    args.trail = {"key_id": pseudonymizer.key_id, "policy_version": policy.version}
    try:
        # refuses an unusable folder before any read; a reader (an analyst, the dashboard's rebuild)
        # holding the files for a moment is waited for, briefly
        warehouse: Warehouse | None = _open_waiting(open_warehouse, BUSY_WAIT_S)
    except SeaportError:
        client.close()
        raise
    params = RunParams(
        bootstrap=args.bootstrap,
        group=args.group,
        prefix=prefix,
        kafka_client=args.kafka_client,
        runner=args.runner,
        beam_args=tuple(args.extra),
        retention_days=args.security_retention_days,
        max_batch=args.max_batch,
        in_process_below=_in_process_below(args),
        verbose=sys.stderr.isatty(),
    )
    stop = _StopFlag()
    was_idle = False
    try:
        # A topic that does not exist yet has nothing to read: make it, as `seaport topics create` would.
        created = client.ensure_topics({topic_name(base, prefix): spec for base, spec in TOPICS.items()})
        if created:
            print(
                f"ingest: created the missing topics {', '.join(created)} (is --topic-prefix right?)", file=sys.stderr
            )
        while warehouse is not None:
            summary = ingest_once(client, warehouse, policy, pseudonymizer, params)
            idle = not summary.rows
            if not (args.streaming and idle and was_idle):  # streaming: say "caught up" once, not every poll
                print(format_summary(summary, warehouse.root), flush=True)
            was_idle = idle
            outcome = f"run {summary.run_id}: {summary.messages} messages" if not idle else "caught up"
            args.trail["outcome"] = outcome  # the invocation's entry (seaport/cli.py)
            if args.streaming and not idle:  # R12: each committed run of a long-lived ingest
                trail.record(
                    warehouse.root, "ingest run", trail.options_of(args), outcome, policy.version, pseudonymizer.key_id
                )
            if not args.streaming:
                break
            # Between runs the stores are free: analysts, the dashboard and the nightly report open them.
            warehouse.close()
            warehouse = _reopen_when_free(open_warehouse, stop, args.poll_seconds)
        return 0
    finally:
        if warehouse is not None:
            warehouse.close()
        client.close()
        shutdown_local_workers()


def _open_waiting(open_warehouse: Any, seconds: float) -> Warehouse:
    deadline = time.monotonic() + seconds
    said = False
    while True:
        try:
            return open_warehouse()
        except WarehouseBusy as e:
            if time.monotonic() > deadline:
                raise
            if not said:
                print(f"ingest: {e}; waiting up to {seconds:.0f} s", file=sys.stderr, flush=True)
                said = True
            time.sleep(0.2)


def _reopen_when_free(open_warehouse: Any, stop: _StopFlag, poll_seconds: float) -> Warehouse | None:
    """--streaming: the warehouse again after a pause, waiting while a reader holds it; None once
    stopped."""
    said = False
    while not stop.wait(poll_seconds):
        try:
            return open_warehouse()
        except WarehouseBusy as e:
            if not said:
                print(f"ingest: {e}; waiting", file=sys.stderr, flush=True)
                said = True
    return None


def ingest_once(
    client: KafkaClient, warehouse: Warehouse, policy: FieldPolicy, pseudonymizer: Pseudonymizer, params: RunParams
) -> RunSummary:
    """One bounded run: plan ranges, read+protect+stage with Beam, commit, materialize, commit offsets."""
    summary = RunSummary(
        run_id=uuid.uuid4().hex[:16],
        started_at=datetime.now(UTC),
        ranges=plan_ranges(client, warehouse.positions(), params.group, params.prefix),
        kafka_client=params.kafka_client,
        runner=params.runner,
        policy_version=policy.version,
    )
    pending = [r for r in summary.ranges if r.end > r.start]
    if not pending and not warehouse.needs_materializing():
        return summary
    staging_root = warehouse.root / ".staging"
    shutil.rmtree(staging_root, ignore_errors=True)  # left by a run that died: never committed
    staging = staging_root / summary.run_id
    staging.mkdir(parents=True)
    clock = _Clock(summary.timings, params.verbose)
    if pending:
        messages = sum(r.end - r.start for r in pending)
        how = (
            f"Beam, {params.runner}"
            if uses_beam(params, messages)
            else "in-process, local worker processes"
            if _pooled(params, messages)
            else "in-process"
        )
        clock.start(f"reading and protecting {messages:,} messages ({how})")
        counts = run_pipeline(pending, staging, policy, pseudonymizer, params)
        summary.messages = counts.pop("messages", 0)
        summary.valid = counts.pop("valid", 0)
        summary.deadletters = counts.pop("deadletter", 0)
        summary.consent_changes = counts.pop("consent", 0)
        summary.erasure_requests = counts.pop("erasure", 0)
        summary.redactions = {
            k.removeprefix("redacted_"): v for k, v in sorted(counts.items()) if k.startswith("redacted_")
        }
        publish_deadletters(client, staging, params.prefix)
    clock.start("storing (security, then state with the offsets)")
    warehouse.commit_run(summary, staging, policy.consent_gated_columns(), params.retention_days)
    # The quality gate's seconds of imports (once a process) ran beside the reading and storing
    # of a run without Beam (`warm_up_in_background`, which those steps' imports never meet).
    clock.start("publishing the aggregates (analytics.duckdb, parquet/)")
    quality.warm_up()
    warehouse.materialize(summary)
    clock.stop()
    if pending:
        client.commit(params.group, {(r.kafka_topic, r.partition): r.end for r in pending})
    shutil.rmtree(staging_root, ignore_errors=True)
    return summary


class _Clock:
    """Times the phases of a run into `timings`; on long runs, says what it is doing (stderr)."""

    def __init__(self, timings: dict[str, float], verbose: bool) -> None:
        self.timings, self.verbose = timings, verbose
        self.phase: str | None = None
        self.started = 0.0

    def start(self, phase: str) -> None:
        self.stop()
        self.phase, self.started = phase, time.perf_counter()
        if self.verbose:
            print(f"ingest: {phase} ...", file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self.phase is not None:
            self.timings[self.phase.split(" (")[0]] = round(time.perf_counter() - self.started, 1)
            self.phase = None


def plan_ranges(client: KafkaClient, stored: dict[tuple[str, int], int], group: str, prefix: str) -> list[OffsetRange]:
    """Per partition: from the position stored with the data (else the group's committed offset,
    else the beginning) to the end offset that stands now."""
    ranges = []
    for topic in INPUT_TOPICS:
        kafka_topic = topic_name(topic, prefix)
        ends = client.end_offsets(kafka_topic)
        begins = client.beginning_offsets(kafka_topic)
        # the group's offsets only where the warehouse holds no position (a consumer and a
        # round trip a topic, ~45 ms: a streaming poll's every run would pay them)
        unstored = any((topic, partition) not in stored for partition in ends)
        committed = client.committed(group, kafka_topic) if unstored else {}
        for partition, end in sorted(ends.items()):
            start = stored.get((topic, partition))
            if start is None:
                start = committed.get(partition)
            if start is None:
                start = begins.get(partition, 0)
            start = max(start, begins.get(partition, 0))  # what retention deleted cannot be read
            ranges.append(OffsetRange(topic, kafka_topic, partition, start, max(start, end)))
    return ranges


def run_pipeline(
    ranges: list[OffsetRange], staging: Path, policy: FieldPolicy, pseudonymizer: Pseudonymizer, params: RunParams
) -> dict[str, int]:
    """The Beam part: read the ranges, validate and protect, stage. Returns the run's counters.

    A small run on the in-process runner calls the same steps directly, in order: building and
    starting a Beam pipeline costs seconds, which a `--streaming` poll of a few messages must not pay."""
    messages = sum(r.end - r.start for r in ranges)
    bar = Progress("reading and protecting", total=messages)
    if not uses_beam(params, messages):
        total: Counter[str] = Counter()
        try:
            for counts_of_piece in _run_in_process(ranges, staging, policy, pseudonymizer, params, messages):
                total.update(counts_of_piece)
                bar.update(counts_of_piece.get("messages", 0))
        finally:
            bar.close()
        return dict(total)
    shutdown_local_workers()  # idle while Beam's own workers run: their memory is freed
    from pipelines.graph import run_beam  # Beam takes seconds to import: only for a run through it

    counts = run_beam(ranges, staging, policy, pseudonymizer, params, messages)
    # Beam's workers count into metrics, which the runner reports when the pipeline ends (a
    # worker may be another machine): the bar shows elapsed time while it runs, then the count.
    bar.update(counts.get("messages", 0))
    bar.close()
    return counts


def _run_in_process(
    ranges: list[OffsetRange],
    staging: Path,
    policy: FieldPolicy,
    pseudonymizer: Pseudonymizer,
    params: RunParams,
    messages: int,
) -> Iterator[Counter[str]]:
    """The steps called directly, without Beam: a small run in this process, a larger one in
    pieces over the local worker processes (`_pooled`; one per core, started once and kept for the
    life of the process: a streaming poll does not start them again)."""
    if not _pooled(params, messages):
        quality.warm_up_in_background()
        client = make_client(params.kafka_client, params.bootstrap)
        try:
            for piece in (p for r in ranges for p in split_range(r, SPLIT_OFFSETS)):
                for batch in read_batches(client, piece, params.max_batch):
                    yield stage_batch(piece, batch, policy, pseudonymizer, staging)[0]
        finally:
            client.close()
        return
    cores = os.cpu_count() or 1
    size = max(params.max_batch, min(SPLIT_OFFSETS, -(-messages // (2 * cores))))
    pool = _local_workers(cores, (params.kafka_client, params.bootstrap, params.max_batch, policy, pseudonymizer))
    pieces = [p for r in ranges for p in split_range(r, size)]
    started = [pool.submit(stage_piece, piece, str(staging)) for piece in pieces]
    quality.warm_up_in_background()  # after the pool's own imports
    for done in as_completed(started):
        yield done.result()


# Starting the local workers (~0.7 s, one per core at once) pays from about 10 batches: a 10,568-
# message run read in 0.7-0.9 s in this process against 1.5-2.5 s on new workers, 32,093 in
# 2.0-2.1 against 2.7-3.0 s, 66,709 in 4.0-4.7 against 3.7 s.
POOL_FROM_BATCHES = 8


def _pooled(params: RunParams, messages: int) -> bool:
    """Whether an in-process run uses the local worker processes (on two cores or more): from
    two batches once they are running (a long-lived ingest keeps them), from POOL_FROM_BATCHES
    batches to start them."""
    if (os.cpu_count() or 1) < 2 or messages < 2 * params.max_batch:
        return False
    return _pool is not None or messages >= POOL_FROM_BATCHES * params.max_batch


_pool: tuple[Any, Any] | None = None  # (the worker setup it was made for, the pool)


def _local_workers(cores: int, setup: tuple[Any, ...]) -> Any:
    """The process's pool of local worker processes for `setup` (made anew when it changes)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    global _pool
    if _pool is not None and _pool[0] == setup:
        return _pool[1]
    shutdown_local_workers()
    context = multiprocessing.get_context("spawn")  # not fork: this process runs Kafka and DuckDB threads
    workers = ProcessPoolExecutor(cores, mp_context=context, initializer=worker_setup, initargs=(os.getpid(), *setup))
    _pool = (setup, workers)
    return _pool[1]


def shutdown_local_workers() -> None:
    global _pool
    if _pool is not None:
        _pool[1].shutdown(cancel_futures=True)
        _pool = None


def _in_process_below(args: argparse.Namespace) -> int:
    """`--in-process-below` as given; by default 200,000, and under `--streaming` every run: a
    long-lived ingest keeps its local workers, so a big poll neither pays Beam's start-up nor stops
    the workers the next poll needs (265,450 messages, each in a fresh process: reading 7.2–7.3 s
    on the workers, 7.8–9.6 s through Beam)."""
    if args.in_process_below is not None:
        return int(args.in_process_below)
    return sys.maxsize if args.streaming else IN_PROCESS_BELOW


def uses_beam(params: RunParams, messages: int) -> bool:
    """Whether a run builds a Beam pipeline, or (small, on the in-process runner, no Beam options)
    calls its steps directly."""
    return not (params.runner == "FnApiRunner" and messages < params.in_process_below and not params.beam_args)


# Portable runners and the option that names their job server or binary (without it, Beam would
# try to download one when the pipeline runs); `seaport runners setup` builds them.
IN_PROCESS_RUNNERS = ("FnApiRunner", "DirectRunner")  # Beam's own, in this process
PORTABLE_RUNNERS = {
    "FlinkRunner": ("--flink_job_server_jar", "flink"),
    "SparkRunner": ("--spark_job_server_jar", "spark"),
    "PrismRunner": ("--prism_location", "prism"),
}


def check_runner(name: str, beam_args: tuple[str, ...] | list[str] = ()) -> None:
    """A one-line error for a runner Beam does not know, or a portable one without its job
    server, before anything is read."""
    if name in IN_PROCESS_RUNNERS:
        return  # known without importing Beam (seconds)
    from apache_beam.runners.runner import create_runner

    try:
        create_runner(name)
    except (ValueError, ImportError):
        raise SeaportError(f"unknown Beam runner {name!r} (e.g. FnApiRunner, DirectRunner, FlinkRunner)") from None
    option, setup = PORTABLE_RUNNERS.get(name, ("", ""))
    given = {arg.split("=", 1)[0] for arg in beam_args}
    if option and not given & {option, "--job_endpoint"}:
        raise SeaportError(
            f"{name} needs {option}=... or --job_endpoint=HOST:PORT "
            f"(`seaport runners setup {setup}` builds one and prints the options)"
        )


def local_parallelism(runner: str, beam_args: tuple[str, ...], messages: int) -> list[str]:
    """On the in-process runner, a large run uses every core, one worker process each (the hot
    path is Python, so threads would share one core). Small runs stay in one process: starting
    workers costs seconds. Explicit `--direct_num_workers` wins."""
    if runner != "FnApiRunner" or messages < PARALLEL_FROM or any("direct_num_workers" in a for a in beam_args):
        return []
    return [
        f"--direct_num_workers={os.cpu_count() or 1}",
        "--direct_running_mode=multi_processing",
        "--default_sdk_harness_log_level=WARNING",
    ]


def publish_deadletters(client: KafkaClient, staging: Path, prefix: str) -> int:
    """Send the run's rejected messages to `deadletter`: reason, position, redacted payload.
    At least once: a run that dies before its commit sends them again."""
    import pyarrow.parquet as pq

    files = sorted((staging / "deadletter").glob("*.parquet"))
    messages = []
    for f in files:
        for row in pq.read_table(f).to_pylist():
            value = {
                "reason": row["reason"],
                "source_topic": row["source_topic"],
                "partition": row["source_partition"],
                "offset": row["source_offset"],
                "payload": row["payload"],
            }
            messages.append((row["source_topic"].encode(), json.dumps(value, ensure_ascii=False).encode()))
    return client.produce(topic_name("deadletter", prefix), messages) if messages else 0


def format_summary(s: RunSummary, root: Path) -> str:
    read = sum(r.end - r.start for r in s.ranges)
    if not read and not s.rows:
        return f"ingest: caught up, nothing new (warehouse {root})"
    lines = [
        f"ingest run {s.run_id}: {s.messages} messages read, {s.valid} valid, {s.deadletters} dead letters, "
        f"{s.duplicates} duplicates, {s.events_stored} new beacon events, {s.consent_changes} consent changes, "
        f"{s.erasure_requests} erasure requests",
    ]
    if s.too_late:
        lines.append(f"  {s.too_late} beacon events of days already closed (--late-days): counted, not applied")
    if s.redactions:
        lines.append(
            "  redacted or dropped (personal data in free text, registration fields): "
            + ", ".join(f"{k} {v}" for k, v in s.redactions.items())
        )
    if s.rows:
        lines.append("  analytics rows: " + ", ".join(f"{t} {n}" for t, n in s.rows.items()))
        lines.append("  suppressed cells (< k subjects): " + ", ".join(f"{t} {n}" for t, n in s.suppressed.items()))
    if s.timings:
        lines.append("  took: " + ", ".join(f"{phase} {seconds} s" for phase, seconds in s.timings.items()))
    lines.append(f"  warehouse: {root}/analytics.duckdb, {root}/security.duckdb, {root}/parquet/")
    return "\n".join(lines)


class _StopFlag:
    """SIGINT/SIGTERM end `--streaming` after the run in progress has committed."""

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._request)

    def _request(self, *_: Any) -> None:
        if self.requested:
            sys.exit(130)
        self.requested = True

    def wait(self, seconds: float) -> bool:
        """Sleep `seconds`, or less once a stop is requested; whether one was."""
        deadline = time.monotonic() + seconds
        while not self.requested and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.requested
