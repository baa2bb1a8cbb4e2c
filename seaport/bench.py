"""`seaport bench`: the throughput benchmark, in one run on one broker.

1. generates N valid beacons (default 1,000,000) into a fresh topic set (a unique prefix);
2. times the Kafka client alone reading them all (no processing): the raw consume rate;
3. times `seaport ingest` end to end over the same messages into a fresh warehouse: read,
   validate, protect, stage, commit, materialize;
4. prints both rates, their ratio, and the peak memory (RSS) of this process.

Benchmarks are not tests: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from seaport.cli import add_kafka_options, positive_int

if TYPE_CHECKING:
    from seaport.kafka.clients import KafkaClient


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_kafka_options(parser)
    parser.add_argument(
        "--events", type=positive_int, default=1_000_000, help="beacons to generate (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default: %(default)s)")
    parser.add_argument(
        "--runner", default="FnApiRunner", help="Beam runner for the ingest part (default: %(default)s)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench warehouse (its path is printed)")
    parser.set_defaults(accepts_extra=True)


def _peak_rss_mib() -> tuple[float, float]:
    """Peak resident memory of this process, and of the largest worker process it started."""
    return (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    )


def delete_topics(bootstrap: str, prefix: str) -> None:
    """Best effort: delete every topic under the bench's own `prefix`, so a run leaves the broker as it
    found it; a failure is reported on one line, never raised (it may follow another error)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        names = [name for name in admin.list_topics(timeout=10).topics if name.startswith(prefix)]
        for future in admin.delete_topics(names, operation_timeout=30).values() if names else []:
            future.result()
    except Exception as e:  # clean-up must never hide the run's own outcome
        print(f"[bench] could not delete the topics {prefix}*: {type(e).__name__}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from pipelines.ingest import check_runner
    from seaport.kafka.clients import make_client

    check_runner(args.runner)
    client = make_client(args.kafka_client, args.bootstrap)  # no broker: one line, before any topic exists
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    try:
        return _bench(args, client, prefix)
    finally:  # also on failure and Ctrl-C
        delete_topics(args.bootstrap, prefix)


def _bench(args: argparse.Namespace, client: KafkaClient, prefix: str) -> int:
    from pipelines.ingest import ingest_once
    from seaport.kafka.topics import create_topics, topic_name
    from seaport.simulate import fast_beacons
    from sinks.warehouse import Warehouse
    from transforms.policy import FieldPolicy
    from transforms.pseudonyms import Pseudonymizer

    create_topics(args.bootstrap, prefix)
    topic = topic_name("beacons.raw", prefix)

    def progress(msg: str) -> None:
        print(f"[bench] {msg}", file=sys.stderr, flush=True)

    progress(f"producing {args.events:,} beacons to {topic}")
    t0 = time.perf_counter()
    produced = client.produce(
        topic, ((None, line) for line in fast_beacons(args.events, args.seed, date.today() - timedelta(days=1)))
    )
    produce_s = time.perf_counter() - t0

    progress("raw consume (client alone)")
    t0 = time.perf_counter()
    consumed = 0
    for partition, end in client.end_offsets(topic).items():
        for batch in client.read_range(topic, partition, 0, end, 5000):
            consumed += len(batch)
    consume_s = time.perf_counter() - t0

    progress("ingest end to end (Beam, fresh warehouse)")
    root = Path(tempfile.mkdtemp(prefix="seaport-bench-"))
    try:  # a run that fails or is stopped leaves no warehouse behind
        warehouse = Warehouse(root / "warehouse")
        t0 = time.perf_counter()
        summary = ingest_once(
            client=client,
            warehouse=warehouse,
            policy=FieldPolicy.load(),
            pseudonymizer=Pseudonymizer.from_key_bytes(uuid.uuid4().bytes * 2),
            group=f"{prefix}ingest",
            prefix=prefix,
            runner=args.runner,
            beam_args=args.extra,
            kafka_client=args.kafka_client,
            bootstrap=args.bootstrap,
            retention_days=100_000,
            verbose=True,
        )
        ingest_s = time.perf_counter() - t0
        warehouse.close()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    client.close()

    raw_rate = consumed / consume_s if consume_s else 0.0
    ingest_rate = summary.messages / ingest_s if ingest_s else 0.0
    print(f"events                {args.events:>12,}   (produced {produced:,} in {produce_s:.1f} s)")
    print(f"kafka client          {args.kafka_client:>12}")
    print(f"raw consume           {raw_rate:>12,.0f} msg/s   ({consumed:,} in {consume_s:.1f} s)")
    print(
        f"ingest end to end     {ingest_rate:>12,.0f} msg/s   ({summary.messages:,} in {ingest_s:.1f} s, runner {args.runner})"
    )
    print(f"ingest / raw          {ingest_rate / raw_rate if raw_rate else 0:>12.3f}")
    main_rss, worker_rss = _peak_rss_mib()
    print(f"peak memory (RSS)     {main_rss:>12,.0f} MiB   (largest worker process: {worker_rss:,.0f} MiB)")
    print(f"stored events         {summary.events_stored:>12,}   dead letters {summary.deadletters:,}")
    print("ingest phases         " + ", ".join(f"{phase} {seconds} s" for phase, seconds in summary.timings.items()))
    if args.keep:
        print(f"warehouse             {root / 'warehouse'}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0
