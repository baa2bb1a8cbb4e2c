"""The product dashboard: one self-contained, interactive HTML page built from `DIR/analytics.duckdb`.

It shows what analysts may see (R4: de-identified aggregates only, cells under k already
suppressed by the pipeline) and the bookkeeping that explains the numbers: ingest runs, dead
letters, and how many cells were suppressed. The store is opened read-only; a panel whose tables
are missing or empty says "no data yet".

Python only reads the aggregate rows and embeds them in the page as JSON; the page's own script
(`static/dashboard.js`, with Apache ECharts from `vendor/`, both inlined: no CDN, no server) filters
them by date range, page, device model and OS, and draws the charts.

    .venv/bin/python -m seaport.cli dashboard --warehouse warehouse/ [--out FILE]
    .venv/bin/python -m seaport.cli dashboard --warehouse warehouse/ --serve [--port 8050]

`--serve` serves the page on 127.0.0.1, rebuilds it when analytics.duckdb changes (a store locked
by a running ingest keeps the last page), and the page reloads itself when `/version` changes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import sys
import threading
import zoneinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dashboards.html import NO_DATA, esc, page
from seaport.errors import SeaportError
from seaport.options import check_timezone, number_type, positive_float

ANALYTICS_DB = "analytics.duckdb"
HERE = Path(__file__).resolve().parent
ECHARTS = HERE / "vendor" / "echarts.min.js"  # Apache ECharts 5.6.0 (vendor/README.md)
SCRIPT = HERE / "static" / "dashboard.js"

# The rows the page embeds: per table, the columns it reads. A column an older warehouse lacks
# reads as null; a missing table is left out (its panel says "no data yet").
TABLES: dict[str, tuple[str, ...]] = {
    "page_views_hourly": ("hour", "page", "views", "visitors", "avg_duration_ms"),
    "page_views_daily": ("day", "page", "views", "visitors", "avg_duration_ms"),
    "clicks_hourly": ("hour", "page", "element", "clicks", "visitors"),
    "clicks_daily": ("day", "page", "element", "clicks", "visitors"),
    "devices_daily": ("day", "device_model", "os", "os_version_major", "events", "visitors"),
    "audience_daily": ("day", "gender", "country", "city", "language", "visitors"),
    "sessions_daily": ("day", "sessions", "avg_session_duration_ms", "bounce_rate"),
    "retention_weekly": ("cohort_week", "weeks_since", "visitors"),
    "ingest_runs": (
        "run_id",
        "started_at",
        "finished_at",
        "messages",
        "valid",
        "deadletters",
        "duplicates",
        "events_stored",
        "erasure_requests",
        "too_late",
        "policy_version",
    ),  # fmt: skip
    "deadletter_counts": ("source_topic", "reason", "messages"),
    "suppressed_cells": ("table_name", "cells", "events"),
    "erasure_log": ("processed_at",),
    "materialized_with": ("k", "tz"),
}

PAGE_VIEWS = ("page_views_daily", "page_views_hourly")
CLICKS = ("clicks_daily", "clicks_hourly")
SUM_NOTE = (
    "Views, clicks, events and sessions are sums. Visitors are distinct consenting people per cell "
    "(a page and an hour or a day, a device and a day…): a visitor figure that adds several cells "
    "is marked Σ and counts a person once per cell."
)
# (id, title, the tables it needs: one of each group, what its figures mean)
PANELS: list[tuple[str, str, tuple[tuple[str, ...], ...], str]] = [
    (
        "traffic",
        "浏览量与访客 Views and visitors over time",
        (PAGE_VIEWS,),
        "One day selected: per hour (page_views_hourly). Longer ranges: per day (page_views_daily where it "
        "has the day, else the day's hours added up). Views are sums. Visitors are distinct per page and "
        "hour or day and cannot be added up: the line shows them for one page, where one row holds them.",
    ),
    (
        "pages",
        "热门页面 Top pages",
        (PAGE_VIEWS,),
        "Views summed over the range; visitors marked Σ are sums over days or hours; average time on "
        "page is the page leaves' average duration weighted by views (≈).",
    ),
    (
        "clicks",
        "点击 Clicks by element",
        (CLICKS,),
        "Clicks summed over the range (clicks_daily where it has the day, else clicks_hourly); visitors Σ.",
    ),
    (
        "funnel",
        "转化漏斗 Funnel: page view → click",
        (PAGE_VIEWS, CLICKS),
        "Per page: views, then clicks. The warehouse publishes no count of page leaves (page_views only "
        "keeps their average duration), so the funnel stops at clicks. One view can bring several clicks.",
    ),
    (
        "devices",
        "设备与系统 Devices and operating systems",
        (("devices_daily",),),
        "Events summed over days; visitors per device, OS and day, summed (Σ).",
    ),
    (
        "audience",
        "受众 Audience",
        (("audience_daily",),),
        "Consenting visitors only (R2), per day and gender × country × city × language cell, summed (Σ).",
    ),
    (
        "sessions",
        "会话与跳出率 Sessions and bounce rate",
        (("sessions_daily",),),
        "Sessions summed (a session belongs to the day it starts). Average duration and bounce rate are "
        "weighted by sessions, so they are exact for the range, not sums.",
    ),
    (
        "retention",
        "留存 Retention by weekly cohort",
        (("retention_weekly",),),
        "Distinct visitors of each first-week cohort seen again N weeks later (never summed); the cohorts "
        "with a week of activity in the selected range.",
    ),
    (
        "quality",
        "数据质量 Data quality",
        (("ingest_runs", "deadletter_counts", "suppressed_cells", "erasure_log"),),
        "Every ingest run, not filtered by the controls above.",
    ),
]

CSS = """
body{max-width:1280px;font-family:"Noto Sans CJK SC","Noto Sans SC","Source Han Sans SC","PingFang SC",
"Microsoft YaHei",system-ui,sans-serif}
.controls{display:flex;gap:.8rem 1.2rem;flex-wrap:wrap;align-items:end;position:sticky;top:0;z-index:5;
background:#fff;padding:.6rem 0;border-bottom:1px solid #dde3ea}
.controls label{display:flex;flex-direction:column;font-size:.85rem;color:#55606c}
.controls select{max-width:16rem}.controls input,.controls select,.controls button{font:inherit;padding:.15rem .3rem}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:0 2rem}
.panel.wide{grid-column:1/-1}.chart{width:100%;height:320px}.chart.tall{height:420px}
.subgrid{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:0 1rem}.grid>*,.subgrid>*{min-width:0}
.panel h3{font-size:1rem;margin:.8rem 0 .2rem}.filters-note{color:#9a5b00;font-size:.85rem}
table{max-height:360px;overflow-y:auto}
"""


class Warehouse:
    """Read-only queries on the analytics store; a missing store or table reads as absent."""

    def __init__(self, path: Path, timezone: str) -> None:
        import duckdb

        self.con = None
        self.columns: dict[str, dict[str, str]] = {}  # table -> column -> type
        self.timezone = timezone
        if not path.exists():
            return
        try:
            self.con = duckdb.connect(str(path), read_only=True)
            self.con.execute(f"SET TimeZone = '{sql_str(timezone)}'")
            for table, column, data_type in self.con.execute(
                """SELECT table_name, column_name, data_type FROM information_schema.columns
                   WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"""
            ).fetchall():
                self.columns.setdefault(table, {})[column] = data_type
        except duckdb.Error as e:
            raise SeaportError(f"cannot open {path.name} read-only: {type(e).__name__}") from None

    def table(self, name: str, wanted: tuple[str, ...]) -> dict[str, Any] | None:
        """{"columns", "rows"} of `name`'s `wanted` columns, times as text in the time zone; None
        when the table does not exist (yet)."""
        have = self.columns.get(name)
        if self.con is None or have is None:
            return None
        selected = ", ".join(self._select(c, have.get(c)) for c in wanted)
        rows = self.con.execute(f'SELECT {selected} FROM "{name}" ORDER BY ALL').fetchall()
        return {"columns": list(wanted), "rows": [[json_value(v) for v in row] for row in rows]}

    def _select(self, column: str, data_type: str | None) -> str:
        quoted = f'"{column}"'
        if data_type is None:
            return f"NULL AS {quoted}"
        if data_type == "TIMESTAMP WITH TIME ZONE":  # hours and run times: in the analysts' zone
            return f"strftime(timezone('{sql_str(self.timezone)}', {quoted}), '%Y-%m-%d %H:%M') AS {quoted}"
        if data_type.startswith("TIMESTAMP"):
            return f"strftime({quoted}, '%Y-%m-%d %H:%M') AS {quoted}"
        if data_type == "DATE":
            return f"strftime({quoted}, '%Y-%m-%d') AS {quoted}"
        if data_type.startswith(("DECIMAL", "HUGEINT", "UBIGINT")):
            return f"CAST({quoted} AS DOUBLE) AS {quoted}"
        return quoted

    def close(self) -> None:
        if self.con is not None:
            self.con.close()


def sql_str(s: str) -> str:
    return s.replace("'", "''")


def json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def embed_json(value: Any) -> str:
    """JSON safe inside <script>: no `<` at all, so neither `</script>` nor `<!--` can end it early."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def inline_script(path: Path) -> str:
    code = path.read_text(encoding="utf-8")
    if "</script" in code.lower():  # would end the <script> element early
        raise SeaportError(f"{path.name} cannot be inlined: it contains '</script'")
    return f"<script>{code}</script>"


def read_tables(warehouse: Path, timezone: str) -> dict[str, dict[str, Any]]:
    """Every table the page uses that exists in `warehouse`'s analytics store."""
    import duckdb

    wh = Warehouse(warehouse / ANALYTICS_DB, timezone)
    try:
        tables = {name: wh.table(name, columns) for name, columns in TABLES.items()}
    except duckdb.Error as e:
        raise SeaportError(f"cannot read {ANALYTICS_DB}: {type(e).__name__}") from None
    finally:
        wh.close()
    return {name: t for name, t in tables.items() if t is not None}


def data_version(tables: dict[str, Any], timezone: str) -> str:
    """Changes exactly when the page's figures would: a served page reloads when it does."""
    return hashlib.sha256(json.dumps([timezone, tables], sort_keys=True).encode()).hexdigest()[:16]


def panel(panel_id: str, title: str, needs: tuple[tuple[str, ...], ...], note: str, tables: dict) -> str:
    filled = all(any(tables.get(t, {}).get("rows") for t in group) for group in needs)
    body = '<p class="filters-note" hidden></p><div class="body"></div>' if filled else NO_DATA
    wide = " wide" if panel_id in ("traffic", "quality") else ""
    return (
        f'<section class="panel{wide}" id="{panel_id}"><h2>{esc(title)}</h2>'
        f'<p class="note">{esc(note)}</p>{body}</section>'
    )


def render_dashboard(tables: dict[str, dict[str, Any]], timezone: str, notice: str = "") -> str:
    """The whole page: header, controls, one section per panel, the data and the scripts."""
    generated = dt.datetime.now(zoneinfo.ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z")
    payload = {"version": data_version(tables, timezone), "timezone": timezone, "tables": tables}
    warehouse_tz = (tables.get("materialized_with", {}).get("rows") or [[None, None]])[0][1]
    zone_note = (
        f" Daily tables count days in {warehouse_tz}, the zone the warehouse was built in."
        if warehouse_tz and warehouse_tz != timezone
        else ""
    )
    body = (
        "<h1>seaport — 产品看板 product dashboard</h1>"
        + (f'<p class="filters-note">{esc(notice)}</p>' if notice else "")
        + f'<p class="note">Generated {esc(generated)}. De-identified aggregates only; days and hours in '
        f"{esc(timezone)}.{esc(zone_note)} {esc(SUM_NOTE)} Rows shown as (other) roll up the cells "
        "suppressed below k (published only when they stand on at least k people): they are in every "
        "total.</p>"
        '<noscript><p class="filters-note">The charts need JavaScript; the data is embedded in this '
        "page.</p></noscript>"
        '<form class="controls" id="controls" onsubmit="return false">'
        '<label>从 from <input type="date" id="from"></label><label>到 to <input type="date" id="to"></label>'
        '<label>页面 page <select id="page"><option value="">all 全部</option></select></label>'
        '<label>设备型号 device model <select id="device"><option value="">all 全部</option></select></label>'
        '<label>操作系统 OS <select id="os"><option value="">all 全部</option></select></label>'
        '<button type="button" id="reset">reset 重置</button></form>'
        '<div class="cards" id="kpis"></div><div class="grid">'
        + "".join(panel(*p, tables) for p in PANELS)
        + "</div>"
        + f'<script id="seaport-data" type="application/json">{embed_json(payload)}</script>'
        + inline_script(ECHARTS)
        + inline_script(SCRIPT)
    )
    return page("seaport 看板 dashboard", body, extra_css=CSS, lang="zh-CN")


def write_atomically(out: Path, html: str) -> None:
    tmp = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as e:  # a file where a folder should be, a read-only place, /proc…
        reason = "a file is in the way" if isinstance(e, FileExistsError | NotADirectoryError) else e.strerror
        raise SeaportError(f"cannot write the dashboard to {out}: {reason}") from None


def build_dashboard(warehouse: Path, out: Path, timezone: str = "Asia/Shanghai") -> Path:
    """Render the dashboard of `warehouse` into `out` (written atomically) and return its path."""
    write_atomically(out, render_dashboard(read_tables(warehouse, timezone), timezone))
    return out


# -- --serve ----------------------------------------------------------------------------------------
class Site:
    """The page being served, rebuilt by `watch` when the store changes."""

    def __init__(self, warehouse: Path, out: Path, timezone: str) -> None:
        self.warehouse, self.out, self.timezone = warehouse, out, timezone
        self.html = b""
        self.version = ""
        self.built_for: tuple[Any, ...] | None = None
        self.lock = threading.Lock()

    def signature(self) -> tuple[Any, ...]:
        """What changes when an ingest writes the store: its file's and its WAL's mtime and size."""
        db = self.warehouse / ANALYTICS_DB
        stats = []
        for path in (db, db.with_name(db.name + ".wal")):
            try:
                s = path.stat()
                stats.append((s.st_mtime_ns, s.st_size))
            except OSError:
                stats.append(None)
        return tuple(stats)

    def refresh(self) -> bool:
        """Rebuild if the store changed since the last build; a locked store keeps the last page
        (and is tried again next time). Returns whether a new page was built."""
        signature = self.signature()
        if signature == self.built_for:
            return False
        try:
            tables = read_tables(self.warehouse, self.timezone)
        except SeaportError as e:
            if self.html:
                return False
            tables = {}  # nothing to keep yet: an empty page that says why, and reloads later
            notice = f"{e}; retrying (an ingest may be running)."
        else:
            notice = ""
        html = render_dashboard(tables, self.timezone, notice)
        version = "" if notice else data_version(tables, self.timezone)
        if not notice:
            write_atomically(self.out, html)
            self.built_for = signature
        with self.lock:
            changed = version != self.version or not self.html
            self.html, self.version = html.encode("utf-8"), version
        return changed

    def watch(self, stop: threading.Event, every: float) -> None:
        said = ""
        while not stop.wait(every):
            try:
                self.refresh()
                said = ""
            except Exception as e:  # e.g. the output folder went away: say so once, keep serving the last page
                warning = f"seaport dashboard: warning: {str(e) or type(e).__name__}"
                if warning != said:
                    print(warning, file=sys.stderr, flush=True)
                said = warning


def handler_for(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            with site.lock:
                html, version = site.html, site.version
            if path in ("/", "/index.html", "/" + site.out.name):
                self.send(200, "text/html; charset=utf-8", html)
            elif path == "/version":
                self.send(200, "text/plain; charset=utf-8", version.encode())
            elif path == "/favicon.ico":  # browsers ask; a 404 would be an error in their console
                self.send(204, "image/x-icon", b"")
            else:
                self.send(404, "text/plain; charset=utf-8", b"not found\n")

        def send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per request is noise
            pass

    return Handler


def serve(warehouse: Path, out: Path, timezone: str, port: int, poll: float) -> int:
    site = Site(warehouse, out, timezone)
    site.refresh()
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(site))
    except OSError as e:
        raise SeaportError(f"cannot serve on 127.0.0.1:{port}: {e.strerror}") from None
    server.daemon_threads = True
    stop = threading.Event()
    watcher = threading.Thread(target=site.watch, args=(stop, poll), daemon=True)
    watcher.start()
    print(f"dashboard: serving http://127.0.0.1:{server.server_port}/ (built into {out}; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("dashboard: stopped", flush=True)
    finally:
        stop.set()
        server.server_close()
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--warehouse", default="warehouse", metavar="DIR", help="warehouse (default: %(default)s/)")
    parser.add_argument("--out", metavar="FILE", help="where to write the page (default: DIR/dashboard.html)")
    parser.add_argument(
        "--timezone", default="Asia/Shanghai", help="time zone of days and hours (default: %(default)s)"
    )
    parser.add_argument("--serve", action="store_true", help="serve the page on 127.0.0.1 and rebuild it as data comes")
    parser.add_argument(
        "--port",
        type=number_type(int, lambda n: 0 <= n <= 65535, "a port number 0-65535 (0: any free port)"),
        default=8050,
        help="port of --serve (default: %(default)s; 0 picks a free one)",
    )
    parser.add_argument("--poll", type=positive_float, default=2.0, help=argparse.SUPPRESS)  # seconds; tests
    parser.epilog = "Reads DIR/analytics.duckdb read-only; a missing or empty table shows 'no data yet'."


def run(args: argparse.Namespace) -> int:
    warehouse = Path(args.warehouse)
    if not warehouse.is_dir():
        raise SeaportError(f"warehouse directory {str(warehouse)!r} does not exist")
    check_timezone(args.timezone)
    out = Path(args.out) if args.out else warehouse / "dashboard.html"
    if args.serve:
        return serve(warehouse, out, args.timezone, args.port, args.poll)
    print(f"dashboard: {build_dashboard(warehouse, out, args.timezone)}")
    return 0
