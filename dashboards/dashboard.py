"""The product dashboard: one self-contained HTML page built from `DIR/analytics.duckdb`.

It shows what analysts may see (R4: de-identified aggregates only, cells under k already
suppressed by the pipeline) and the bookkeeping that explains the numbers: ingest runs, dead
letters, and how many cells were suppressed. The store is opened read-only; a missing table or an
empty one shows "no data yet". Inline CSS and SVG only: no CDN, no JavaScript.

    .venv/bin/python -m seaport.cli dashboard --warehouse warehouse/ [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import zoneinfo
from pathlib import Path
from typing import Any

from dashboards.html import NO_DATA, column_chart, esc, fmt, hbar_chart, page, table
from seaport.cli import check_timezone
from seaport.errors import SeaportError

ANALYTICS_DB = "analytics.duckdb"
TOP = 15


class Warehouse:
    """Read-only queries on the analytics store; a missing store or table reads as empty."""

    def __init__(self, path: Path, timezone: str) -> None:
        import duckdb

        self.con = None
        self.tables: set[str] = set()
        if not path.exists():
            return
        try:
            self.con = duckdb.connect(str(path), read_only=True)
            # hours are TIMESTAMPTZ: label them in the analysts' time zone
            quoted = timezone.replace("'", "''")
            self.con.execute(f"SET TimeZone = '{quoted}'")
            self.tables = {
                r[0] for r in self.con.execute("SELECT table_name FROM information_schema.tables").fetchall()
            }
        except duckdb.Error as e:
            raise SeaportError(f"cannot open {path.name} read-only: {type(e).__name__}") from None

    def rows(self, table_name: str, sql: str) -> list[tuple[Any, ...]]:
        """`sql`'s rows, or none when `table_name` does not exist (yet)."""
        if self.con is None or table_name not in self.tables:
            return []
        return self.con.execute(sql).fetchall()

    def columns_and_rows(self, table_name: str, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Like `rows`, with the column names, for tables whose extra columns we show as they are."""
        if self.con is None or table_name not in self.tables:
            return [], []
        result = self.con.execute(sql)
        columns = [d[0] for d in result.description]
        return columns, result.fetchall()

    def close(self) -> None:
        if self.con is not None:
            self.con.close()


def section(title: str, *parts: str, note: str = "") -> str:
    note_html = f'<p class="note">{esc(note)}</p>' if note else ""
    return f"<h2>{esc(title)}</h2>{note_html}{''.join(parts)}"


def bars(rows: list[tuple[Any, ...]]) -> str:
    """A bar chart of (label, value) rows; missing labels read as "unknown"."""
    return hbar_chart([("unknown" if label is None else str(label), float(value or 0)) for label, value in rows])


def page_views_section(wh: Warehouse) -> str:
    per_hour = wh.rows(
        "page_views_hourly",
        # every hour between the first and the last, so gaps (suppressed or quiet hours) show as zero
        """WITH views AS (SELECT hour, sum(views) AS views FROM page_views_hourly GROUP BY hour),
                hours AS (SELECT unnest(generate_series(min(hour), max(hour), INTERVAL 1 HOUR)) AS hour FROM views)
           SELECT strftime(hours.hour, '%Y-%m-%d %H:00'), coalesce(views.views, 0)
           FROM hours LEFT JOIN views USING (hour) ORDER BY hours.hour""",
    )
    top_pages = wh.rows(
        "page_views_hourly",
        f"""SELECT page, sum(views) AS views, sum(visitors),
                   sum(avg_duration_ms * views) / nullif(sum(views) FILTER (WHERE avg_duration_ms IS NOT NULL), 0)
                         / 1000
            FROM page_views_hourly GROUP BY page ORDER BY views DESC, page LIMIT {TOP}""",
    )
    return section(
        "Page views per hour",
        column_chart([(label, float(v)) for label, v in per_hour]),
        note="Hours whose every cell was suppressed (fewer than k people) show as zero.",
    ) + section(
        "Top pages",
        bars([(p, v) for p, v, _, _ in top_pages]),
        table(["page", "views", "visitors (summed over hours)", "avg duration (s)"], top_pages),
    )


def clicks_section(wh: Warehouse) -> str:
    clicks = wh.rows(
        "clicks_hourly",
        f"""SELECT page, element, sum(clicks) AS clicks, sum(visitors) FROM clicks_hourly
            GROUP BY page, element ORDER BY clicks DESC, page, element LIMIT {TOP}""",
    )
    return section(
        "Clicks",
        bars([(f"{p} · {e}", c) for p, e, c, _ in clicks]),
        table(["page", "element", "clicks", "visitors (summed over hours)"], clicks),
    )


def devices_section(wh: Warehouse) -> str:
    by_os = wh.rows(
        "devices_daily",
        f"""SELECT coalesce(os, 'unknown') || ' ' || coalesce(CAST(os_version_major AS VARCHAR), ''), sum(events) AS n
            FROM devices_daily GROUP BY 1 ORDER BY n DESC, 1 LIMIT {TOP}""",
    )
    by_model = wh.rows(
        "devices_daily",
        f"""SELECT device_model, sum(events) AS n FROM devices_daily
            GROUP BY 1 ORDER BY n DESC, 1 LIMIT {TOP}""",
    )
    return section("Operating systems (events)", bars(by_os)) + section("Device models (events)", bars(by_model))


def audience_section(wh: Warehouse) -> str:
    parts = []
    for dimension in ("gender", "country", "city", "language"):
        rows = wh.rows(
            "audience_daily",
            f"""SELECT {dimension}, sum(visitors) AS n FROM audience_daily
                GROUP BY 1 ORDER BY n DESC, 1 LIMIT {TOP}""",
        )
        parts.append(f"<h3>{esc(dimension)}</h3>{bars(rows)}")
    return section(
        "Audience",
        *parts,
        note="Consenting visitors only (R2), summed over days.",
    )


def sessions_section(wh: Warehouse) -> str:
    days = wh.rows(
        "sessions_daily",
        """SELECT day, sessions, avg_session_duration_ms / 1000, 100 * bounce_rate
           FROM sessions_daily ORDER BY day""",
    )
    return section(
        "Sessions",
        bars([(str(day), n) for day, n, _, _ in days]),
        table(["day", "sessions", "avg session duration (s)", "bounce rate (%)"], days),
    )


def bookkeeping_section(wh: Warehouse) -> str:
    runs_cols, runs = wh.columns_and_rows("ingest_runs", "SELECT * FROM ingest_runs ORDER BY started_at DESC LIMIT 10")
    dead = wh.rows(
        "deadletter_counts",
        "SELECT source_topic, reason, sum(messages) AS n FROM deadletter_counts GROUP BY 1, 2 ORDER BY n DESC, 1, 2",
    )
    suppressed = wh.rows(
        "suppressed_cells",
        "SELECT table_name, sum(cells) AS n FROM suppressed_cells GROUP BY 1 ORDER BY 1",
    )
    erasures = wh.rows("erasure_log", "SELECT count(*) FROM erasure_log")
    return section(
        "Bookkeeping",
        "<h3>Latest ingest runs</h3>",
        table(runs_cols, runs) if runs else NO_DATA,
        "<h3>Rejected messages (dead letters)</h3>",
        table(["source topic", "reason", "messages"], dead),
        "<h3>Suppressed cells (fewer than k people)</h3>",
        table(["table", "cells"], suppressed),
        "<h3>Erasure requests handled</h3>",
        f"<p>{esc(fmt(erasures[0][0]))}</p>" if erasures else NO_DATA,
    )


def render_dashboard(wh: Warehouse, timezone: str) -> str:
    """The whole page, section by section."""
    generated = dt.datetime.now(zoneinfo.ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z")
    body = (
        "<h1>seaport — product dashboard</h1>"
        f'<p class="note">Generated {esc(generated)}. De-identified aggregates only; times in {esc(timezone)}.</p>'
        + page_views_section(wh)
        + clicks_section(wh)
        + devices_section(wh)
        + audience_section(wh)
        + sessions_section(wh)
        + bookkeeping_section(wh)
    )
    return page("seaport dashboard", body)


def build_dashboard(warehouse: Path, out: Path, timezone: str = "Asia/Shanghai") -> Path:
    """Render the dashboard of `warehouse` into `out` (written atomically) and return its path."""
    wh = Warehouse(warehouse / ANALYTICS_DB, timezone)
    try:
        html = render_dashboard(wh, timezone)
    finally:
        wh.close()
    tmp = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as e:  # a file where a folder should be, a read-only place, /proc…
        reason = "a file is in the way" if isinstance(e, FileExistsError | NotADirectoryError) else e.strerror
        raise SeaportError(f"cannot write the dashboard to {out}: {reason}") from None
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--warehouse", default="warehouse", metavar="DIR", help="warehouse (default: %(default)s/)")
    parser.add_argument("--out", metavar="FILE", help="where to write the page (default: DIR/dashboard.html)")
    parser.add_argument("--timezone", default="Asia/Shanghai", help="time zone of hour labels (default: %(default)s)")
    parser.epilog = "Reads DIR/analytics.duckdb read-only; a missing or empty table shows 'no data yet'."


def run(args: argparse.Namespace) -> int:
    warehouse = Path(args.warehouse)
    if not warehouse.is_dir():
        raise SeaportError(f"warehouse directory {str(warehouse)!r} does not exist")
    check_timezone(args.timezone)
    out = Path(args.out) if args.out else warehouse / "dashboard.html"
    print(f"dashboard: {build_dashboard(warehouse, out, args.timezone)}")
    return 0
