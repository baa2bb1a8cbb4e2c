"""`seaport bench --state-days N`: whether the stored state stays bounded under a long stream.

N simulated days of `--users` visitors, the last ending yesterday, go into a fresh topic set one
day at a time; after each day, a `seaport ingest` run (in a process of its own, as the bench's
other runs) takes that day into one warehouse with the late window of `--late-days` (default 7,
as `seaport ingest`). After each run it prints what the warehouse holds: the per-event facts
under pseudonyms (`state.duckdb`: events, consent changes, the visitors per day kept for
retention) and the pseudonymized security events (`security.duckdb`, kept for the security
retention of 90 days, longer than any bench), with the size of each file. Once the window is
full, the facts stop growing: a day in, a day purged.

Benchmarks are not tests: nothing here asserts a size.
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from seaport.devtools.bench import _Days, _ingest, _progress, _send_day

if TYPE_CHECKING:
    from seaport.devtools.bench import PeakMemory
    from seaport.kafka.clients import KafkaClient

STATE_TABLES = ("analytics_events", "consent_changes", "visitor_days")


def measure_state(
    args: argparse.Namespace, client: KafkaClient, prefix: str, root: Path, memory: PeakMemory
) -> int:
    from seaport.kafka.topics import create_topics

    create_topics(args.bootstrap, prefix)
    warehouse = root / "warehouse-state"
    days = _Days(args.users, args.seed, date.today() - timedelta(days=args.state_days))
    _progress(f"{args.state_days} days of {args.users:,} visitors, one ingest run per day, --late-days {args.late_days}")
    print(
        f"== state over {args.state_days} simulated days (--late-days {args.late_days}), after each day's run",
        flush=True,
    )
    print(f"{'day':>4} {'date':>10} {'messages':>9} {'run s':>6}  " + "".join(f"{t:>17}" for t in STATE_TABLES)
          + f"{'state MiB':>10}{'security events':>16}{'security MiB':>13}")  # fmt: skip
    try:
        for n in range(1, args.state_days + 1):
            memory.phase = "producing"
            (simulated,) = days.take(1)
            _send_day(client, prefix, simulated)
            memory.phase = f"state: a day's run on top of up to {args.late_days} days"
            summary = _ingest(memory, args, warehouse, prefix, verbose=False, late_days=args.late_days)
            rows, security = _held(warehouse)
            print(
                f"{n:>4} {days.day - timedelta(days=1)!s:>10} {summary.messages:>9,} "
                f"{summary.timings['end to end']:>6.1f}  " + "".join(f"{rows[t]:>17,}" for t in STATE_TABLES)
                + f"{_mib(warehouse / 'state.duckdb'):>10.1f}{security:>16,}{_mib(warehouse / 'security.duckdb'):>13.1f}",
                flush=True,
            )  # fmt: skip
    finally:
        days.close()
    return 0


def _held(warehouse: Path) -> tuple[dict[str, int], int]:
    """Rows of the state's fact tables, and the security events, read after the run closed them."""
    import duckdb

    with duckdb.connect(str(warehouse / "state.duckdb"), read_only=True) as con:
        rows = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in STATE_TABLES}
    with duckdb.connect(str(warehouse / "security.duckdb"), read_only=True) as con:
        security = con.execute("SELECT count(*) FROM security_events").fetchall()[0][0]
    return rows, security


def _mib(path: Path) -> float:
    return path.stat().st_size / (1 << 20) if path.exists() else 0.0
