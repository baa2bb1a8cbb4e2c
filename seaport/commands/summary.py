"""A short account of a warehouse: what came in, what was rejected and why, what was published.

    seaport summary --warehouse warehouse/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import duckdb

from seaport.commands.sql import connect
from transforms.cells import ANALYTICS_TABLES


def summarize(root: Path) -> str:
    con = connect(root)  # `seaport sql`'s: read-only, one-line errors (missing, busy, not DuckDB)
    try:
        runs, messages, valid, dead = con.execute(
            "SELECT count(*), sum(messages), sum(valid), sum(deadletters) FROM ingest_runs"
        ).fetchone()
        lines = [f"ingest runs: {runs}; messages read: {messages or 0}; valid: {valid or 0}; dead letters: {dead or 0}"]
        reasons = con.execute(
            "SELECT source_topic, reason, messages FROM deadletter_counts ORDER BY messages DESC, 1, 2"
        ).fetchall()
        if reasons:
            lines.append("dead letters by reason:")
            lines += [f"  {topic:<18} {reason:<32} {n}" for topic, reason, n in reasons]
        lines.append("analytics tables (rows; cells suppressed below k):")
        suppressed = dict(con.execute("SELECT table_name, cells FROM suppressed_cells").fetchall())
        for table in ANALYTICS_TABLES:
            n = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            lines.append(f"  {table:<18} {n:>7} rows   {suppressed.get(table, 0):>6} suppressed")
        lines += _coverage(con)
        lines += _erasures(con)
    finally:
        con.close()
    lines.append(_quality(root))
    lines.append(_trail(root))
    lines.append("files:")
    for rel in ("analytics.duckdb", "security.duckdb", "parquet/", "dashboard.html", "reports/"):
        if (root / rel).exists():
            lines.append(f"  {root / rel}")
    return "\n".join(lines)


def _coverage(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The share of the busiest day's counts that published rows (`(other)` rows included) hold."""
    rows = con.execute(
        """WITH busiest AS (SELECT day FROM coverage_daily WHERE table_name = 'devices_daily'
                            ORDER BY counted DESC, day DESC LIMIT 1)
           SELECT table_name, day, counted, published, coverage FROM coverage_daily
           WHERE day = (SELECT day FROM busiest) ORDER BY table_name"""
    ).fetchall()
    if not rows:
        return []
    lines = [f"coverage of {rows[0][1]} (share of each table's count in published rows, (other) included):"]
    lines += [f"  {t:<18} {p:>7,} of {c:>7,}  {cov:.1%}" for t, _, c, p, cov in rows if cov is not None]
    return lines


def _erasures(con: duckdb.DuckDBPyConnection) -> list[str]:
    """R8: the requests applied, and the receipts of the latest (up to three)."""
    done = con.execute(
        """SELECT request_id, requested_at, due_by, processed_at, rows_removed, rows_held, holds
           FROM erasure_log ORDER BY processed_at DESC, request_id"""
    ).fetchall()
    if not done:
        return ["erasure requests: none applied"]
    from transforms.deadlines import LEGAL_ZONE

    lines = [f"erasure requests applied: {len(done)}; receipts of the latest (times in mainland China):"]
    for request_id, received, due, processed, removed, held, holds in done[:3]:
        received, processed = received.astimezone(LEGAL_ZONE), processed.astimezone(LEGAL_ZONE)
        rows = ", ".join(f"{table} {n}" for table, n in json.loads(removed or "{}").items() if n)
        lines.append(
            f"  {request_id}: received {received:%Y-%m-%d %H:%M}, due by {due}, done {processed:%Y-%m-%d %H:%M}; "
            f"rows removed: {rows or 'none'}; kept under legal hold: {held}" + (f" ({holds})" if holds else "")
        )
    return lines


def _trail(root: Path) -> str:
    from sinks import trail

    count, problems = trail.verify(root)
    return f"audit trail: {count} entries, " + ("chain intact" if not problems else f"NOT intact: {problems[0]}")


def _quality(root: Path) -> str:
    from sinks.quality import check_warehouse

    report = check_warehouse(root)
    if report.ok:
        return f"data quality (Great Expectations): all {report.evaluated} expectations met"
    failed = "; ".join(f"{f.table} {f.expectation} {f.column}: {f.detail}" for f in report.failures)
    return f"data quality (Great Expectations): {len(report.failures)} of {report.evaluated} failed: {failed}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--warehouse", type=Path, default=Path("warehouse"), help="the warehouse (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    print(summarize(args.warehouse))
    return 0
