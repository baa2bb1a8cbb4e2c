"""The security report's benchmark: one day of N security events against a 28-day baseline (R11).

    seaport bench-security --events 10000000 [--dir DIR]

Builds, outside the timing, a security.duckdb with day D-1 and day D of N synthetic events each
(made-up subject, device and prefix labels with heavy-tailed activity, no real-looking
identifier), summarizes D-1 and copies its summaries to the 26 days before it, as 27 earlier
nightly runs would have left them (the baselines are incremental: a night summarizes only its own
day). Then it times what a night does: `seaport report security` of day D (refresh the summaries,
summarize D, run every detector against the baselines, write the table and the page).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from seaport.options import positive_int

DAY = dt.date(2026, 11, 24)


def build_store(path: Path, events: int, baseline_days: int = 28) -> None:
    import duckdb

    from schemas.tables import SECURITY_EVENTS
    from transforms.anomalies import DetectorConfig
    from transforms.security_baselines import SUMMARY_DDL, DayWindow, summarize_day

    con = duckdb.connect(str(path))
    con.execute(SECURITY_EVENTS.ddl("main"))
    for offset, day in enumerate((DAY - dt.timedelta(days=1), DAY)):
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone(dt.timedelta(hours=8)))
        # activity is heavy-tailed: subject k is drawn with weight ~ 1/k (Zipf-like via exp of a uniform)
        # activity is heavy-tailed (subject k drawn with weight ~ 1/k); each subject keeps its own
        # device and home prefix, with one request in twenty from a mobile address elsewhere
        con.execute(
            f"""INSERT INTO security_events
            WITH draws AS (SELECT i, (floor(exp(random() * ln(300000))))::BIGINT AS s, random() AS r
                           FROM range({events}) t(i))
            SELECT 'ev-{offset}-' || i,
                   CASE WHEN i % 2 = 0 THEN 'beacon' ELSE 'access' END,
                   ?::TIMESTAMPTZ + to_microseconds((i * 86400000000 // {events})::BIGINT),
                   'subject-' || s,
                   CASE WHEN i % 2 = 0 THEN 'device-' || s END,
                   CASE WHEN r < 0.05 THEN '10.' || (i % 251) || '.' || (i % 241) || '.0/24'
                        ELSE '10.' || (s % 251) || '.' || (s // 251 % 256) || '.0/24' END,
                   '/page/' || (floor(exp(random() * ln(300))))::BIGINT,
                   CASE WHEN i % 2 = 0 THEN 'page_view'
                        ELSE ['200', '200', '200', '200', '200', '200', '304', '404', '401', '500'][1 + i % 10] END,
                   CASE WHEN i % 20 = 1 THEN 'POST' ELSE 'GET' END, 'Chrome 120', 'v1', 'k1'
            FROM draws""",
            [start],
        )
    cfg = DetectorConfig()
    con.execute(SUMMARY_DDL)
    window = DayWindow(DAY, "Asia/Shanghai", baseline_days)
    summarize_day(con, window, cfg, DAY - dt.timedelta(days=1))
    for k in range(2, baseline_days + 1):
        for table in ("security_entity_days", "security_subject_links"):
            con.execute(
                f"INSERT INTO {table} SELECT * REPLACE (day - {k - 1} AS day) FROM {table} WHERE day = ?",
                [DAY - dt.timedelta(days=1)],
            )
        con.execute("INSERT INTO security_summary_days VALUES (?, ?, 'Asia/Shanghai', now())",
                    [DAY - dt.timedelta(days=k), events])  # fmt: skip
    con.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events", type=positive_int, default=10_000_000, help="events of day D (default: %(default)s)"
    )
    parser.add_argument("--dir", type=Path, help="where to build the store (default: a temporary folder)")


def run(args: argparse.Namespace) -> int:
    from pipelines.security_report import ReportDay, report_security_day
    from transforms.anomalies import DetectorConfig

    with tempfile.TemporaryDirectory(prefix="seaport-bench-security-", dir=args.dir) as tmp:
        folder = Path(tmp)
        t0 = time.monotonic()
        build_store(folder / "security.duckdb", args.events)
        print(f"built: 2 days of {args.events:,} events and 28 days of summaries in {time.monotonic() - t0:.1f} s")
        t0 = time.monotonic()
        result = report_security_day(ReportDay(DAY, "Asia/Shanghai", folder), DetectorConfig())
        took = time.monotonic() - t0
        print(f"report security of a day of {result.sources.get('events', 0):,} events against a 28-day baseline: "
              f"{took:.1f} s ({len(result.anomalies)} findings, summaries {result.summaries})")  # fmt: skip
    return 0
