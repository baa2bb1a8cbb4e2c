"""`seaport bench`: the throughput benchmark, in one run on one broker.

1. generates about N messages of realistic traffic (`seaport simulate`'s generator: beacons with
   free text holding personal data, access logs, consent changes, erasure requests, 2 %
   duplicates, late events, 0.1 % malformed) into a fresh topic set (a unique prefix), one
   simulated day after another;
2. times the Kafka client alone reading every message of those topics: the raw consume rate;
3. times `seaport ingest` end to end over the same messages into a fresh warehouse, phase by
   phase (events/s and share of each);
4. times the same small increment (a later day of a few hundred visitors) ingested into an empty
   warehouse and on top of the N stored messages, `--increment-runs` times each (on copies of the
   warehouse as it stands; medians, and the spread of the whole run): with the incremental commit
   its cost should not depend on what is stored;
5. prints the peak memory (RSS) summed over this process and every process it started, overall
   and per phase; each timed ingest runs in a process of its own, so its phase's peak is the
   ingest's alone (its driver, its workers, DuckDB).

Benchmarks are not tests: nothing here asserts a speed.

    seaport bench --bootstrap 127.0.0.1:9092 --events 1000000
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seaport.errors import SeaportError
from seaport.options import add_kafka_options, configure_logging, positive_float, positive_int
from seaport.progress import Progress
from sinks.warehouse import LATE_DAYS

if TYPE_CHECKING:
    from seaport.kafka.clients import KafkaClient

INPUT_TOPICS = ("beacons.raw", "access_logs.raw", "consent.events", "erasure.requests")
MESSAGES_PER_VISITOR_DAY = 13  # what simulate makes, on average, of one visitor in one day
INCREMENT_USERS = 400
# Every generated day stays open: a bench of many days in one run measures throughput, and its
# increment then lands on top of everything stored.
BENCH_LATE_DAYS = 36_500
BENCH_RETENTION_DAYS = 100_000
BENCH_KEY = b"seaport-bench-key-not-secret-32b!"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Time seaport ingest against the Kafka client's own read rate, on realistic traffic."
    add_kafka_options(parser)
    parser.add_argument(
        "--events",
        type=positive_int,
        nargs="+",
        default=[1_000_000],
        metavar="N",
        help="messages to generate, about; several sizes (e.g. 1000000 3000000 10000000) give the "
        "cost curve: each size is ingested into a fresh warehouse (default: 1000000)",
    )
    parser.add_argument(
        "--users", type=positive_int, default=20_000, help="visitors per simulated day (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default: %(default)s)")
    parser.add_argument(
        "--runner", default="FnApiRunner", help="Beam runner for the ingest part (default: %(default)s)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench warehouse (its path is printed)")
    parser.add_argument(
        "--increment-runs",
        type=positive_int,
        default=3,
        metavar="N",
        help="times the increment is ingested into each warehouse, each time on a copy of it as it stands: "
        "one run's time is noisy (default: %(default)s)",
    )
    parser.add_argument(
        "--streaming",
        action="store_true",
        help="then run `seaport ingest --streaming` on top of the largest warehouse while producing at "
        "--rate for --seconds, and print the time from produce to queryable (p50/p95/max)",
    )
    parser.add_argument(
        "--rate", type=positive_int, default=20_000, help="--streaming: messages/s to produce (default: %(default)s)"
    )
    parser.add_argument(
        "--seconds", type=positive_int, default=600, help="--streaming: how long to produce (default: %(default)s)"
    )
    parser.add_argument(
        "--poll-seconds",
        type=positive_float,
        default=0.5,
        help="--streaming: the ingest's pause between runs (default: %(default)s)",
    )
    parser.add_argument(
        "--state-days",
        type=positive_int,
        metavar="N",
        help="instead of the sizes and --streaming: N simulated days of --users visitors, one ingest run per day into one "
        "warehouse, and what it stores after each (the facts stay bounded by the late window)",
    )
    parser.add_argument(
        "--late-days",
        type=positive_int,
        default=LATE_DAYS,
        help="--state-days: the ingest's late window (default: %(default)s, as seaport ingest)",
    )
    parser.set_defaults(accepts_extra=True)


class PeakMemory:
    """Samples the resident memory of this process and all its descendants, summed (while a timed
    ingest runs, of the ingest's process and its descendants); keeps the peak, overall and per
    phase (`phase` names what the bench is doing)."""

    def __init__(self, every_s: float = 0.25) -> None:
        self.peak_mib = 0.0
        self.phase = "setting up"
        self.root: int | None = None  # a process whose tree alone the phase measures (a timed ingest)
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            mib, phase = _tree_rss_mib(self.root or os.getpid()), self.phase
            self.peak_mib = max(self.peak_mib, mib)
            self.peaks[phase] = max(self.peaks.get(phase, 0.0), mib)

    def report(self) -> None:
        print(f"peak memory (RSS)     {self.peak_mib:>12,.0f} MiB   (this process and every process it started)")
        for phase, mib in self.peaks.items():
            print(f"  {phase:<40} {mib:>8,.0f} MiB")


def _tree_rss_mib(root: int) -> float:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):  # a process that ended meanwhile
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total / (1 << 20)


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

    check_runner(args.runner, args.extra)
    client = make_client(args.kafka_client, args.bootstrap)  # no broker: one line, before any topic exists
    prefixes = [f"bench-{uuid.uuid4().hex[:8]}.", f"bench-{uuid.uuid4().hex[:8]}."]
    root = Path(tempfile.mkdtemp(prefix="seaport-bench-"))
    try:
        with PeakMemory() as memory:
            if args.state_days:
                from seaport.devtools.bench_state import measure_state

                code = measure_state(args, client, prefixes[0], root, memory)
            else:
                code = _bench(args, client, prefixes, root, memory)
        memory.report()
        if args.keep:
            print(f"warehouses            {root}   (warehouse-N per size, warehouse-state for --state-days)")
        return code
    finally:  # also on failure and Ctrl-C
        client.close()
        for prefix in prefixes:
            delete_topics(args.bootstrap, prefix)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def _progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _simulate_day(users: int, seed: int, day: date) -> dict[str, list[bytes]]:
    from seaport.devtools.simulate import simulate

    return simulate(users, 1, seed, day, malformed_rate=0.001, duplicate_rate=0.02).by_topic()


def _ignore_sigint() -> None:
    """A generating process leaves Ctrl-C to the bench, which stops it (no trace of its own)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Days:
    """Simulated days, one after another, made by one process per core; nothing is made ahead
    of what is asked (it would take the cores from what the bench times next)."""

    def __init__(self, users: int, seed: int, first: date) -> None:
        self.users, self.seed, self.first, self.day = users, seed, first, first
        self.pool: Any = None

    def take(self, n: int) -> Iterator[dict[str, list[bytes]]]:
        """The next `n` days, in order (the processes start on first use, and again after `close`)."""
        import multiprocessing

        if self.pool is None:
            self.pool = multiprocessing.get_context("spawn").Pool(os.cpu_count() or 1, initializer=_ignore_sigint)
        days = [self.day + timedelta(days=i) for i in range(n)]
        self.day += timedelta(days=n)
        jobs = [(self.users, self.seed + (day - self.first).days, day) for day in days]
        yield from self.pool.imap(_simulate_star, jobs)

    def close(self) -> None:
        """Ends the generating processes (their memory is not the ingest's)."""
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


def _simulate_star(job: tuple[int, int, date]) -> dict[str, list[bytes]]:
    return _simulate_day(*job)


def _produce(client: KafkaClient, prefix: str, days: _Days, messages: int, label: str) -> int:
    """Simulated days into the topics under `prefix` until about `messages` more are sent."""
    sent = 0
    with Progress(f"[bench] {label}", total=messages) as bar:
        while sent < messages:
            for day in days.take(max(1, -(-(messages - sent) // (days.users * MESSAGES_PER_VISITOR_DAY)))):
                n = _send_day(client, prefix, day)
                sent += n
                bar.update(n)
    return sent


def _send_day(client: KafkaClient, prefix: str, day: dict[str, list[bytes]]) -> int:
    """One simulated day's messages to their topics under `prefix`; returns how many."""
    from seaport.kafka.topics import message_key, topic_name

    return sum(
        client.produce(topic_name(topic, prefix), [(message_key(topic, v), v) for v in values])
        for topic, values in day.items()
        if values
    )


def _ingest(
    memory: PeakMemory,
    args: argparse.Namespace,
    warehouse_dir: Path,
    prefix: str,
    verbose: bool,
    late_days: int = BENCH_LATE_DAYS,
) -> Any:
    """One timed ingest run (`ingest_once`, as `seaport ingest` makes it) in a process of its own,
    so that the phase's peak memory is the ingest's alone (its driver, workers and DuckDB), not
    the bench's. Returns its RunSummary."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    job = (args.bootstrap, args.kafka_client, args.runner, tuple(args.extra), warehouse_dir, prefix, verbose, late_days)
    child = context.Process(target=_ingest_child, args=(send, *job))
    child.start()
    send.close()
    memory.root = child.pid
    try:
        outcome = receive.recv()
    except EOFError:
        outcome = None
    finally:
        memory.root = None
        child.join()
    if outcome is None:
        outcome = f"the ingest process ended without a summary (exit {child.exitcode})"
    if isinstance(outcome, str):
        raise SeaportError(outcome)
    return outcome


def _ingest_child(
    send: Any, bootstrap: str, kafka_client: str, runner: str, extra: tuple[str, ...], warehouse_dir: Path,
    prefix: str, verbose: bool, late_days: int,
) -> None:  # fmt: skip
    """In the ingest's own process: the run, its summary sent back (or its error, one line)."""
    configure_logging()  # as `seaport ingest`
    from pipelines.ingest import RunParams, ingest_once, shutdown_local_workers
    from sinks import quality

    quality.warm_up()  # GX's import and context: made once by a long-lived ingest, not timed
    from seaport.kafka.clients import make_client
    from sinks.warehouse import Warehouse
    from transforms.policy import FieldPolicy
    from transforms.pseudonyms import Pseudonymizer

    try:
        client = make_client(kafka_client, bootstrap)
        warehouse = Warehouse(warehouse_dir, late_days=late_days)
        try:
            started = time.perf_counter()
            params = RunParams(
                bootstrap=bootstrap,
                group=f"{prefix}ingest-{warehouse_dir.name}",
                prefix=prefix,
                kafka_client=kafka_client,
                runner=runner,
                beam_args=extra,
                retention_days=BENCH_RETENTION_DAYS,
                verbose=verbose,
            )
            pseudonymizer = Pseudonymizer.from_key_bytes(BENCH_KEY)
            summary = ingest_once(client, warehouse, FieldPolicy.load(), pseudonymizer, params)
            summary.timings["end to end"] = time.perf_counter() - started
        finally:
            warehouse.close()
            client.close()
            shutdown_local_workers()  # as `seaport ingest` does: the process ends after
        send.send(summary)
    except KeyboardInterrupt:
        pass  # the bench stops too
    except Exception as e:  # noqa: BLE001 - reported by the bench, in one line
        send.send(str(e) if isinstance(e, SeaportError) else f"{type(e).__name__} in the ingest")


def _raw_consume(client: KafkaClient, prefix: str, total: int) -> tuple[int, float]:
    """Every message of the input topics under `prefix`, read by the Kafka client alone."""
    from seaport.kafka.topics import topic_name

    started, consumed = time.perf_counter(), 0
    with Progress("[bench] raw consume", total=total) as bar:
        for topic in INPUT_TOPICS:
            name = topic_name(topic, prefix)
            for partition, end in client.end_offsets(name).items():
                for batch in client.read_range(name, partition, 0, end, 5000):
                    consumed += len(batch)
                    bar.update(len(batch))
    return consumed, time.perf_counter() - started


def _bench(args: argparse.Namespace, client: KafkaClient, prefixes: list[str], root: Path, memory: PeakMemory) -> int:
    """Per size (ascending, on one growing topic set): produce up to it, raw consume, ingest into
    a fresh warehouse, then the increment on top of that warehouse."""
    from seaport.kafka.topics import create_topics

    main, increment = prefixes
    for prefix in prefixes:
        create_topics(args.bootstrap, prefix)
    sizes = sorted(set(args.events))
    users = max(1, min(args.users, sizes[0] // MESSAGES_PER_VISITOR_DAY))
    first_day = date.today() - timedelta(days=sizes[-1] // (users * MESSAGES_PER_VISITOR_DAY) + 3)
    _progress(f"producing the increment: a day of {INCREMENT_USERS} visitors after every generated day")
    memory.phase = "producing"
    later = _Days(INCREMENT_USERS, args.seed + 10_000, date.today() - timedelta(days=1))
    try:
        _produce(client, increment, later, INCREMENT_USERS * MESSAGES_PER_VISITOR_DAY, "producing the increment")
    finally:
        later.close()
    memory.phase = "the increment into an empty warehouse"
    _report_increments(_increments(memory, args, root / "increment-alone", increment), "into an empty warehouse")

    days = _Days(users, args.seed, first_day)
    produced, rows, warehouse = 0, [], root / "warehouse-0"
    try:
        for size in sizes:
            _progress(f"producing about {size:,} messages of realistic traffic from {first_day}")
            memory.phase, started = "producing", time.perf_counter()
            produced += _produce(client, main, days, size - produced, "producing simulated days")
            produce_s = time.perf_counter() - started
            days.close()
            _progress("raw consume (client alone, every input topic)")
            memory.phase = "raw consume"
            consumed, consume_s = _raw_consume(client, main, produced)
            _progress("ingest end to end (Beam, fresh warehouse)")
            if not args.keep:
                shutil.rmtree(warehouse, ignore_errors=True)  # the smaller size's: done with it
            warehouse = root / f"warehouse-{size}"
            memory.phase = f"ingest of {size:,}"
            summary = _ingest(memory, args, warehouse, main, verbose=True)
            _progress("the increment on top of it")
            memory.phase = f"the increment on top of {size:,}"
            on_top = _increment_on_top(memory, client, args, warehouse, main, increment)
            produced += on_top[-1].messages  # the increment is now part of the main topics too
            rows.append(_report_size(args, consumed, consume_s, produce_s, summary, on_top))
    finally:
        days.close()
    if len(rows) > 1:
        _report_curve(rows)
    if args.streaming:
        from seaport.devtools.bench_streaming import measure_freshness

        memory.phase = "streaming"
        measure_freshness(args, client, warehouse, main, root, memory)
    return 0


def _increments(memory: PeakMemory, args: argparse.Namespace, warehouse_dir: Path, prefix: str) -> list[Any]:
    """The increment's run into `warehouse_dir`, `--increment-runs` times: each but the last on a
    copy of the warehouse as it stands, the last on the warehouse itself, which keeps it. Each copy
    has a name of its own: an empty warehouse reads from its consumer group's committed offsets,
    named after the folder, and a stored one from its positions. Returns their RunSummaries."""
    runs = []
    for n in range(1, args.increment_runs):
        trial = warehouse_dir.with_name(f"{warehouse_dir.name}-trial-{n}")
        if warehouse_dir.exists():
            shutil.copytree(warehouse_dir, trial)
        try:
            runs.append(_ingest(memory, args, trial, prefix, verbose=False))
        finally:
            shutil.rmtree(trial, ignore_errors=True)
    runs.append(_ingest(memory, args, warehouse_dir, prefix, verbose=False))
    if len({r.messages for r in runs}) > 1:  # the copies must have read what the warehouse did
        raise SeaportError(f"the increment's runs read different messages: {[r.messages for r in runs]}")
    return runs


def _report_increments(runs: list[Any], label: str) -> None:
    """Each phase's median over the runs, and the whole run's spread."""
    phases = ", ".join(
        f"{p} {statistics.median(r.timings.get(p, 0.0) for r in runs):.2f} s"
        for p in runs[-1].timings
        if p != "end to end"
    )
    whole = sorted(r.timings["end to end"] for r in runs)
    spread = f" (runs {whole[0]:.2f}–{whole[-1]:.2f} s)" if len(runs) > 1 else ""
    median = f"median of {len(runs)}: " if len(runs) > 1 else ""
    print(
        f"increment of {runs[-1].messages:,} {label}: {median}{phases}, end to end "
        f"{statistics.median(whole):.2f} s{spread}",
        flush=True,
    )


def _report_size(
    args: argparse.Namespace, consumed: int, consume_s: float, produce_s: float, summary: Any, on_top: list[Any]
) -> dict[str, Any]:
    ingest_s = summary.timings.pop("end to end")
    summary.timings = {phase_name(p): t for p, t in summary.timings.items()}
    raw_rate = consumed / consume_s if consume_s else 0.0
    ingest_rate = summary.messages / ingest_s if ingest_s else 0.0
    print(f"== {consumed:,} messages (realistic traffic)", flush=True)
    print(f"produced in           {produce_s:>12.1f} s   (what this size added)")
    print(f"kafka client          {args.kafka_client:>12}")
    print(f"raw consume           {raw_rate:>12,.0f} msg/s   ({consumed:,} in {consume_s:.1f} s)")
    print(
        f"ingest end to end     {ingest_rate:>12,.0f} msg/s   ({summary.messages:,} in {ingest_s:.1f} s, runner {args.runner})"
    )
    print(f"ingest / raw          {ingest_rate / raw_rate if raw_rate else 0:>12.3f}")
    print(f"stored events         {summary.events_stored:>12,}   dead letters {summary.deadletters:,}")
    print(
        "phases                "
        + "   ".join(_phase(p, s, summary.messages, ingest_s) for p, s in summary.timings.items())
    )
    _report_increments(on_top, f"on top of {summary.messages:,} messages")
    return {"messages": summary.messages, "end to end": ingest_s, **summary.timings}


def phase_name(label: str) -> str:
    """A phase of a run's timings without its message count ("reading and protecting 1,000
    messages" -> "reading and protecting"), so runs of any size compare."""
    return re.sub(r" [\d,]+ messages", "", label)


def _report_curve(rows: list[dict[str, Any]]) -> None:
    """The cost curve: per stage, seconds per million messages at each size (flat = linear)."""
    print("== cost curve: seconds per million messages (the same at every size = linear cost)")
    stages = [k for k in rows[-1] if k != "messages"]
    print("messages      " + "".join(f"{s.split(' (')[0][:24]:>26}" for s in stages))
    for row in rows:
        cells = "".join(f"{row.get(s, 0.0) / row['messages'] * 1e6:>26.1f}" for s in stages)
        print(f"{row['messages']:>12,}  {cells}")


def _phase(name: str, seconds: float, messages: int, total_s: float) -> str:
    rate = messages / seconds if seconds else 0
    share = seconds / total_s * 100 if total_s else 0
    return f"{name}: {seconds:.1f} s ({rate:,.0f}/s, {share:.0f} %)"


def _increment_on_top(
    memory: PeakMemory, client: KafkaClient, args: argparse.Namespace, warehouse_dir: Path, main: str, increment: str
) -> list[Any]:
    """Ingests the increment's topics into the big warehouse: its positions there are for `main`'s
    topic names, which are the same contract topics, so the increment is read under `main`'s prefix
    by copying its messages there first (produced before timing starts)."""
    from seaport.kafka.topics import topic_name

    for topic in INPUT_TOPICS:
        source = topic_name(topic, increment)
        values = [
            (r.key, r.value)
            for partition, end in client.end_offsets(source).items()
            for batch in client.read_range(source, partition, 0, end, 5000)
            for r in batch
        ]
        if values:
            client.produce(topic_name(topic, main), values)
    return _increments(memory, args, warehouse_dir, main)
