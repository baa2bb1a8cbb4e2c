"""The nightly security-anomaly report (R11): one day of `security_events` -> anomalies + a report.

It reads the day's pseudonymized events from `DIR/security.duckdb` (the day is a calendar day in
`--timezone`), runs every detector of `transforms.anomalies` as its own labelled Beam step, and
publishes the findings twice: as that day's rows of the contract table `security_anomalies`
(replaced, so a re-run changes nothing) and as a human report `DIR/reports/security-DAY.html`
where pseudonyms are masked (R5).

    .venv/bin/python -m seaport.cli report security --date 2026-11-24 --warehouse warehouse/

Extra flags go to Beam's `PipelineOptions`. The default runner is the in-process FnApiRunner: the
plain "DirectRunner" may try to download the Prism binary, which fails offline.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import zoneinfo
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from seaport.cli import add_security_dir_option, check_timezone
from seaport.errors import SeaportError
from seaport.progress import Progress
from transforms.anomalies import DETECTORS, EVENT_COLUMNS, Anomaly, SecurityEvent, Thresholds, worst_first

if TYPE_CHECKING:  # heavy imports only when the command runs
    import apache_beam as beam
    import duckdb

DEFAULT_RUNNER = "FnApiRunner"  # in-process; "DirectRunner" may try to download Prism offline
DEFAULT_TIMEZONE = "Asia/Shanghai"
SECURITY_DB = "security.duckdb"

ANOMALIES_DDL = """
CREATE TABLE IF NOT EXISTS security_anomalies (
    day DATE, kind VARCHAR, subject_pseudonym VARCHAR, score DOUBLE, details VARCHAR
)"""


@dataclass(frozen=True)
class ReportDay:
    """The calendar day being reported, and where its inputs and outputs live."""

    day: dt.date
    timezone: str
    warehouse: Path
    security_dir: Path | None = None

    @property
    def database(self) -> Path:
        return (self.security_dir or self.warehouse) / SECURITY_DB

    @property
    def report_path(self) -> Path:
        return (self.security_dir or self.warehouse) / "reports" / f"security-{self.day.isoformat()}.html"

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """Start (inclusive) and end (exclusive) of the local calendar day, as aware datetimes."""
        zone = zoneinfo.ZoneInfo(self.timezone)
        start = dt.datetime.combine(self.day, dt.time(), tzinfo=zone)
        end = dt.datetime.combine(self.day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
        return start, end


def mask_pseudonym(pseudonym: str | None) -> str:
    """R5: a pseudonym shown on screen keeps only its first 6 characters."""
    return "—" if not pseudonym else pseudonym[:6] + "…"


def read_day_events(report_day: ReportDay) -> list[SecurityEvent]:
    """The day's rows of `security_events`; none when the store or the table does not exist yet."""
    import duckdb

    if not report_day.database.exists():
        return []
    start, end = report_day.bounds()
    con = _connect(report_day.database, read_only=True)
    try:
        if not _has_table(con, "security_events"):
            return []
        rows = con.execute(
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM security_events WHERE event_time >= ? AND event_time < ?",
            [start, end],
        ).fetchall()
    except duckdb.Error as e:
        raise SeaportError(f"cannot read security_events: {type(e).__name__}") from None
    finally:
        con.close()
    return [SecurityEvent(*row) for row in rows]


def write_day_anomalies(report_day: ReportDay, anomalies: list[Anomaly]) -> None:
    """Replace the day's rows of `security_anomalies` in one transaction (idempotent re-runs)."""
    con = _connect(report_day.database, read_only=False)
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(ANOMALIES_DDL)
        con.execute("DELETE FROM security_anomalies WHERE day = ?", [report_day.day])
        if anomalies:
            con.executemany(
                "INSERT INTO security_anomalies VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        report_day.day,
                        a.kind,
                        a.subject_pseudonym,
                        a.score,
                        json.dumps(a.details, sort_keys=True),
                    )
                    for a in anomalies
                ],
            )
        con.execute("COMMIT")
    finally:
        con.close()


def render_report(report_day: ReportDay, summary: dict[str, int], anomalies: list[Anomaly]) -> str:
    """The human report: summary counts, then each finding with its pseudonym masked (R5)."""
    from dashboards.html import esc, page, table

    title = f"Security anomalies — {report_day.day.isoformat()}"
    kinds = Counter(a.kind for a in anomalies)
    cards = "".join(
        f'<div class="card">{esc(label)}<b>{value:,}</b></div>'
        for label, value in [("events", summary.get("events", 0))]
        + [(f"{source} events", n) for source, n in sorted(summary.items()) if source != "events"]
        + [("anomalies", len(anomalies))]
    )
    by_kind = table(["kind", "anomalies"], sorted(kinds.items()))
    findings = table(
        ["kind", "subject", "score", "details"],
        [(a.kind, mask_pseudonym(a.subject_pseudonym), round(a.score, 2), _details_text(a)) for a in anomalies],
        max_cell=400,
    )
    body = (
        f"<h1>{esc(title)}</h1>"
        f'<p class="note">Calendar day in {esc(report_day.timezone)}. Subjects are pseudonyms, masked on '
        "display (R5); a score of 1.0 is just over the detector's threshold.</p>"
        f'<div class="cards">{cards}</div><h2>By kind</h2>{by_kind}<h2>Findings</h2>{findings}'
    )
    return page(title, body)


def _details_text(anomaly: Anomaly) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(anomaly.details.items()))


def summarize_day(events: list[SecurityEvent]) -> dict[str, int]:
    """Counts for the report's header: all events and events per source."""
    summary = dict(Counter(e.source for e in events))
    summary["events"] = len(events)
    return summary


def publish(anomalies: list[Anomaly], summary: dict[str, int], report_day: ReportDay) -> str:
    """Write the anomalies table, then the report file (atomically); return the report's path."""
    ordered = worst_first(anomalies)
    write_day_anomalies(report_day, ordered)
    path = report_day.report_path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render_report(report_day, summary, ordered), encoding="utf-8")
    os.replace(tmp, path)
    return str(path)


def build_pipeline(pipeline: beam.Pipeline, report_day: ReportDay, thresholds: Thresholds) -> None:
    """Read the day, run each detector as its own step, publish the union of their findings."""
    import apache_beam as beam

    day_events = pipeline | "Day" >> beam.Create([report_day]) | "ReadDayEvents" >> beam.Map(read_day_events)
    findings = [
        day_events | f"Detect{name}" >> beam.FlatMap(detector, thresholds) for name, detector in DETECTORS.items()
    ]
    summary = day_events | "Summarize" >> beam.Map(summarize_day)
    (
        findings
        | "AllFindings" >> beam.Flatten()
        | "GatherFindings" >> beam.combiners.ToList()
        | "Publish" >> beam.Map(publish, beam.pvalue.AsSingleton(summary), report_day)
    )


def parse_day(text: str) -> dt.date:
    """Exactly YYYY-MM-DD, as `--help` says: `fromisoformat` alone would also take 20261124 or 2026-W48-2."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text, re.ASCII):
        with contextlib.suppress(ValueError):  # e.g. 2026-13-01
            return dt.date.fromisoformat(text)
    raise SeaportError(f"--date must be a calendar date YYYY-MM-DD, got {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", choices=["security"], help="which report (only `security` exists)")
    parser.add_argument("--date", required=True, metavar="YYYY-MM-DD", help="the calendar day to report")
    parser.add_argument("--warehouse", default="warehouse", metavar="DIR", help="warehouse (default: %(default)s/)")
    parser.add_argument(
        "--timezone", default=DEFAULT_TIMEZONE, help="time zone of calendar days (default: %(default)s)"
    )
    parser.add_argument("--runner", default=DEFAULT_RUNNER, help="Beam runner (default: the in-process %(default)s)")
    add_security_dir_option(parser)
    parser.epilog = (
        "Writes the day's rows of security_anomalies in DIR/security.duckdb (replacing earlier ones) and "
        "DIR/reports/security-DAY.html; other flags are passed to Beam's PipelineOptions."
    )
    parser.set_defaults(accepts_extra=True)


def run(args: argparse.Namespace) -> int:
    report_day = ReportDay(parse_day(args.date), check_timezone(args.timezone), Path(args.warehouse), args.security_dir)
    if not report_day.warehouse.is_dir():
        raise SeaportError(f"warehouse directory {str(report_day.warehouse)!r} does not exist")
    if not report_day.database.is_file():  # never create a store in a folder that is no warehouse
        raise SeaportError(
            f"no warehouse in {str(report_day.warehouse)!r} (no {SECURITY_DB}); run `seaport ingest` first"
        )
    _check_writable(report_day.database)

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions([f"--runner={args.runner}", *getattr(args, "extra", [])])
    try:
        pipeline = beam.Pipeline(options=options)
    except ValueError:
        raise SeaportError(f"unknown Beam runner {args.runner!r}") from None
    events = _count_day_events(report_day)
    # Beam's steps may run on other machines: the bar shows elapsed time, then the events reported.
    with Progress(f"security report of {report_day.day}", total=events, unit="event") as bar:
        with pipeline:
            build_pipeline(pipeline, report_day, Thresholds())
        bar.update(events)
    print(f"security report: {report_day.report_path}")
    return 0


def _count_day_events(report_day: ReportDay) -> int:
    start, end = report_day.bounds()
    con = _connect(report_day.database, read_only=True)
    try:
        if not _has_table(con, "security_events"):
            return 0
        query = "SELECT count(*) FROM security_events WHERE event_time >= ? AND event_time < ?"
        return int(con.execute(query, [start, end]).fetchall()[0][0])
    finally:
        con.close()


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    import duckdb

    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as e:
        # typically the ingest pipeline holding the file's write lock
        raise SeaportError(f"cannot open {path.name}: {type(e).__name__} (is another process writing it?)") from None


def _check_writable(path: Path) -> None:
    """Fail early, with one line, when the store can't be opened for writing (e.g. locked)."""
    _connect(path, read_only=False).close()


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    query = "SELECT count(*) FROM information_schema.tables WHERE table_name = ?"
    return bool(con.execute(query, [name]).fetchall()[0][0])
