"""`seaport dashboard` on real DuckDB analytics stores: content, escaping, empty and partial
warehouses, the locked store, bad input, and `--serve` (tests/dashboards/test_dashboard_browser.py runs the
page's script in Chromium)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import re
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dashboards.dashboard import ECHARTS, Site, build_dashboard
from seaport.cli import main
from tests.helpers import AGGREGATES_DDL, CONTRACT_DDL, hold_write_lock

PROJECT_DIR = Path(__file__).resolve().parents[2]
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
HOSTILE_PAGE = "/promo/<script>alert('x')</script>"
HOSTILE_ELEMENT = '"><img src=x onerror=alert(1)>'
OTHER = "(other)"
PANEL_COUNT = 9

ANALYTICS_DDL = (
    AGGREGATES_DDL
    + """
CREATE TABLE ingest_runs (run_id VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, messages BIGINT);
CREATE TABLE deadletter_counts (source_topic VARCHAR, reason VARCHAR, messages BIGINT);
CREATE TABLE erasure_log (request_id VARCHAR, subject_kind VARCHAR, requested_at TIMESTAMPTZ,
                          processed_at TIMESTAMPTZ);
"""
)

# The contract's columns, the new optional tables, and today's bookkeeping (as sinks/warehouse.py makes it).
FULL_DDL = (
    CONTRACT_DDL
    + """
CREATE TABLE ingest_runs (run_id VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, offset_ranges VARCHAR,
    messages BIGINT, valid BIGINT, deadletters BIGINT, duplicates BIGINT, events_stored BIGINT,
    consent_changes BIGINT, erasure_requests BIGINT, redactions VARCHAR, kafka_client VARCHAR, runner VARCHAR,
    policy_version VARCHAR, too_late BIGINT);
CREATE TABLE deadletter_counts (source_topic VARCHAR, reason VARCHAR, messages BIGINT);
CREATE TABLE suppressed_cells (table_name VARCHAR, cells BIGINT, events BIGINT);
CREATE TABLE erasure_log (request_id VARCHAR, subject_kind VARCHAR, requested_at TIMESTAMPTZ,
                          processed_at TIMESTAMPTZ);
CREATE TABLE materialized_with (k INTEGER, tz VARCHAR);
"""
)

DAYS = [dt.date(2026, 11, 20) + dt.timedelta(days=i) for i in range(5)]
DAILY_DAYS = DAYS[:3]  # page_views_daily and clicks_daily hold only these (added later): the rest comes from hours


def fill_analytics(warehouse: Path, rng: random.Random) -> dict[str, int]:
    """A day of plausible aggregates, one page named like an injection; returns the totals planted."""
    day = dt.date(2026, 11, 24)
    start = dt.datetime.combine(day, dt.time(), tzinfo=SHANGHAI)
    pages = ["/home", "/policy/query", HOSTILE_PAGE]
    con = duckdb.connect(str(warehouse / "analytics.duckdb"))
    con.execute(ANALYTICS_DDL)
    views = {p: 0 for p in pages}
    for h in range(24):
        if h == 5:
            continue  # an hour whose every cell was suppressed
        for p in pages:
            n = rng.randint(5, 50) * (3 if p == "/home" else 1)
            views[p] += n
            con.execute(
                "INSERT INTO page_views_hourly VALUES (?, ?, ?, ?, ?)",
                [start + dt.timedelta(hours=h), p, n, n // 2, rng.uniform(1000, 9000)],
            )
    con.execute(
        "INSERT INTO clicks_hourly VALUES (?, ?, ?, 77, 20), (?, '/home', 'buy', 12, 6)",
        [start, HOSTILE_PAGE, HOSTILE_ELEMENT, start],
    )
    con.execute(
        """INSERT INTO devices_daily VALUES (?, 'iPhone15,2', 'iOS', '17', 300, 40),
           (?, 'Mate60', 'HarmonyOS', '4', 120, 15)""",
        [day, day],
    )
    con.execute(
        "INSERT INTO audience_daily VALUES (?, 'female', 'CN', 'Shanghai', 'zh_CN', 31), "
        "(?, 'male', 'CN', 'Beijing', 'zh_CN', 22)",
        [day, day],
    )
    con.execute("INSERT INTO sessions_daily VALUES (?, 250, 61500.0, 0.375)", [day])
    con.execute("INSERT INTO ingest_runs VALUES ('run-1', ?, ?, 5000)", [start, start + dt.timedelta(minutes=2)])
    con.execute("INSERT INTO deadletter_counts VALUES ('beacons.raw', 'invalid_json', 17)")
    con.execute("INSERT INTO suppressed_cells VALUES ('page_views_hourly', 9), ('audience_daily', 4)")
    con.execute("INSERT INTO erasure_log VALUES ('req-1', 'openid', ?, ?)", [start, start])
    con.close()
    return views


def fill_full_analytics(
    warehouse: Path, rng: random.Random, page: str = HOSTILE_PAGE, element: str = HOSTILE_ELEMENT
) -> Path:
    """Five days of generated aggregates with every table the dashboard reads, (other) roll-ups,
    daily tables that cover only the first three days, and a page and an element named like an
    injection. Returns the store."""
    path = warehouse / "analytics.duckdb"
    con = duckdb.connect(str(path))
    con.execute(FULL_DDL)
    pages = ["/home", "/policy/query", "/claims/new", page, OTHER]
    elements = {p: ["buy", "quote", element] if p == page else ["buy", "quote"] for p in pages}
    elements[OTHER] = [OTHER]
    version = "fields-v3"
    for day in DAYS:
        start = dt.datetime.combine(day, dt.time(), tzinfo=SHANGHAI)
        daily_views: dict[str, list[int]] = {p: [] for p in pages}
        daily_clicks: dict[tuple[str, str], int] = {}
        for h in range(24):
            if h in (3, 4):
                continue  # quiet hours: every cell suppressed
            for p in pages:
                if rng.random() < 0.15:
                    continue
                n = rng.randint(5, 60) * (3 if p == "/home" else 1)
                daily_views[p].append(n)
                duration = None if rng.random() < 0.1 else round(rng.uniform(1000, 90000), 1)
                con.execute(
                    "INSERT INTO page_views_hourly VALUES (?, ?, ?, ?, ?, ?, 1)",
                    [start + dt.timedelta(hours=h), p, n, rng.randint(5, n) if n >= 5 else 0, duration, version],
                )
                if h % 3 == 0:
                    for e in elements[p]:
                        c = rng.randint(5, 40)
                        daily_clicks[p, e] = daily_clicks.get((p, e), 0) + c
                        con.execute(
                            "INSERT INTO clicks_hourly VALUES (?, ?, ?, ?, ?, ?, 1)",
                            [start + dt.timedelta(hours=h), p, e, c, rng.randint(5, c), version],
                        )
        if day in DAILY_DAYS:
            for p, hourly in daily_views.items():
                if hourly:  # a day's cell may publish more than its hours did (fewer suppressed)
                    views = sum(hourly) + rng.randint(0, 20)
                    con.execute(
                        "INSERT INTO page_views_daily VALUES (?, ?, ?, ?, ?, ?)",
                        [
                            day,
                            p,
                            views,
                            rng.randint(max(hourly) // 2, views // 2 + 5),
                            rng.uniform(2000, 60000),
                            version,
                        ],
                    )
            for (p, e), c in daily_clicks.items():
                con.execute(
                    "INSERT INTO clicks_daily VALUES (?, ?, ?, ?, ?, ?)",
                    [day, p, e, c + rng.randint(0, 5), rng.randint(5, c), version],
                )
        for model, os_name, major in [
            ("iPhone15,2", "iOS", "17"), ("Mate60", "HarmonyOS", "4"), ("Pixel 8", "Android", "14"),
            ("PC", "", None), (OTHER, OTHER, OTHER),
        ]:  # fmt: skip
            events = rng.randint(20, 900)
            con.execute(
                "INSERT INTO devices_daily VALUES (?, ?, ?, ?, ?, ?, ?)",
                [day, model, os_name, major, events, rng.randint(5, events // 3), version],
            )
        for gender, country, city, language in [
            ("female", "CN", "Shanghai", "zh_CN"), ("male", "CN", "Beijing", "zh_CN"),
            ("female", "CN", "Guangzhou", "zh_CN"), (None, None, None, None), (OTHER, OTHER, OTHER, OTHER),
        ]:  # fmt: skip
            con.execute(
                "INSERT INTO audience_daily VALUES (?, ?, ?, ?, ?, ?, ?)",
                [day, gender, country, city, language, rng.randint(5, 80), version],
            )
        con.execute(
            "INSERT INTO sessions_daily VALUES (?, ?, ?, ?, ?)",
            [day, rng.randint(50, 400), rng.uniform(10_000, 300_000), round(rng.random(), 3), version],
        )
    for cohort, weeks in ((dt.date(2026, 11, 9), 3), (dt.date(2026, 11, 16), 2), (dt.date(2026, 11, 23), 1)):
        base = rng.randint(200, 500)
        for w in range(weeks):
            con.execute(
                "INSERT INTO retention_weekly VALUES (?, ?, ?, 'v1')", [cohort, w, base if w == 0 else base // (w + 2)]
            )
    for i, day in enumerate(DAYS):
        started = dt.datetime.combine(day, dt.time(23, 10), tzinfo=SHANGHAI)
        messages = rng.randint(5000, 9000)
        con.execute(
            "INSERT INTO ingest_runs VALUES (?, ?, ?, '[]', ?, ?, ?, ?, ?, 3, ?, '{}', 'confluent', 'DirectRunner', ?, ?)",
            [f"run-{i}", started, started + dt.timedelta(minutes=3), messages, messages - 40, 40, 7,
             messages - 47, i % 2, version, i],
        )  # fmt: skip
    con.execute(
        "INSERT INTO deadletter_counts VALUES ('beacons.raw', 'invalid_json', 170), ('beacons.raw', ?, 30)", [page]
    )
    con.execute(
        """INSERT INTO suppressed_cells VALUES ('page_views_hourly', 9, 31), ('clicks_hourly', 4, 12),
           ('devices_daily', 0, 0), ('audience_daily', 6, 19), ('sessions_daily', 0, 0)"""
    )
    con.execute(
        "INSERT INTO erasure_log VALUES ('req-1', 'openid', ?, ?)", [dt.datetime(2026, 11, 21, tzinfo=SHANGHAI)] * 2
    )
    con.execute("INSERT INTO materialized_with VALUES (5, 'Asia/Shanghai')")
    con.close()
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sections(html: str) -> dict[str, str]:
    """Each panel's HTML (up to the next panel or the end of the grid), by the English part of its title."""
    parts = re.split(r'<section class="panel[^"]*" id="([a-z]+)">', html)
    return {panel_id: body.split("</section>")[0] for panel_id, body in zip(parts[1::2], parts[2::2], strict=True)}


def embedded(html: str) -> dict[str, Any]:
    """The JSON the page's script reads."""
    found = re.findall(r'<script id="seaport-data" type="application/json">(.*?)</script>', html, re.S)
    assert len(found) == 1
    return json.loads(found[0])


def table_rows(payload: dict[str, Any], name: str) -> list[dict[str, Any]]:
    table = payload["tables"][name]
    return [dict(zip(table["columns"], row, strict=True)) for row in table["rows"]]


def test_dashboard_shows_the_tables(tmp_path: Path, capsys) -> None:
    views = fill_analytics(tmp_path, random.Random(7))
    before = digest(tmp_path / "analytics.duckdb")
    assert main(["dashboard", "--warehouse", str(tmp_path)]) == 0
    out = tmp_path / "dashboard.html"
    assert str(out) in capsys.readouterr().out
    html = out.read_text(encoding="utf-8")
    data = embedded(html)
    hours = table_rows(data, "page_views_hourly")
    assert {p: sum(r["views"] for r in hours if r["page"] == p) for p in views} == views
    assert min(r["hour"] for r in hours) == "2026-11-24 00:00"  # hours labelled in Shanghai time
    assert "2026-11-24 05:00" not in {r["hour"] for r in hours}  # a suppressed hour: the page shows it as zero
    assert table_rows(data, "sessions_daily") == [
        {"day": "2026-11-24", "sessions": 250, "avg_session_duration_ms": 61500.0, "bounce_rate": 0.375}
    ]
    assert {(r["os"], r["os_version_major"]) for r in table_rows(data, "devices_daily")} == {
        ("iOS", "17"),
        ("HarmonyOS", "4"),
    }
    assert {r["city"] for r in table_rows(data, "audience_daily")} == {"Shanghai", "Beijing"}
    assert table_rows(data, "deadletter_counts") == [
        {"source_topic": "beacons.raw", "reason": "invalid_json", "messages": 17}
    ]
    # an older warehouse: columns it lacks read as null (the page shows "–")
    assert table_rows(data, "ingest_runs")[0] == {
        "run_id": "run-1", "started_at": "2026-11-24 00:00", "finished_at": "2026-11-24 00:02", "messages": 5000,
        "valid": None, "deadletters": None, "duplicates": None, "events_stored": None, "erasure_requests": None,
        "too_late": None, "policy_version": None,
    }  # fmt: skip
    assert {r["table_name"]: (r["cells"], r["events"]) for r in table_rows(data, "suppressed_cells")} == {
        "page_views_hourly": (9, None),
        "audience_daily": (4, None),
    }
    by_panel = sections(html)
    assert len(by_panel) == PANEL_COUNT
    assert [p for p, part in by_panel.items() if "no data yet" in part] == ["retention"]  # no such table here
    assert all('<div class="body">' in part for p, part in by_panel.items() if p != "retention")
    # the page says which figures are sums and which are not
    assert "Views are sums" in by_panel["traffic"] and "cannot be added up" in by_panel["traffic"]
    assert "is marked Σ" in html  # visitor figures that add cells up (tables of pages, clicks, devices…)
    assert "weighted by sessions" in by_panel["sessions"] and "stops at clicks" in by_panel["funnel"]
    assert "(other)" in html and "they are in every total" in html
    # Chinese labels and a font that has them; the controls
    assert "浏览量与访客 Views and visitors over time" in html and '"Noto Sans CJK SC"' in html
    for control in ('type="date" id="from"', 'type="date" id="to"', '<select id="page">', '<select id="device">',
                    '<select id="os">'):  # fmt: skip
        assert control in html
    assert ECHARTS.read_text(encoding="utf-8") in html  # ECharts inlined as vendored
    assert digest(tmp_path / "analytics.duckdb") == before  # opened read-only


def test_dashboard_escapes_page_names(tmp_path: Path) -> None:
    fill_analytics(tmp_path, random.Random(8))
    html = build_dashboard(tmp_path, tmp_path / "out" / "d.html").read_text(encoding="utf-8")
    # the names are data, never markup: only in the JSON block, with every "<" escaped
    assert HOSTILE_PAGE not in html and HOSTILE_ELEMENT not in html
    assert "alert('x')" in html and "<img src=x" not in html
    assert html.count("<script") == 3 and html.count("</script>") == 3  # data, ECharts, dashboard.js
    data = embedded(html)
    assert HOSTILE_PAGE in {r["page"] for r in table_rows(data, "page_views_hourly")}
    assert HOSTILE_ELEMENT in {r["element"] for r in table_rows(data, "clicks_hourly")}
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r"(src|href)=\"?https?:", html) and "@import" not in html and "<link" not in html
    assert not re.search(r"<script[^>]+src=", html)


def test_data_cannot_close_the_script_element(tmp_path: Path) -> None:
    fill_full_analytics(tmp_path, random.Random(3), page="/x</script><script>alert(1)//", element="<!--")
    html = build_dashboard(tmp_path, tmp_path / "d.html").read_text(encoding="utf-8")
    assert html.count("</script>") == 3 and "<!--" not in html
    assert "/x</script><script>alert(1)//" in {r["page"] for r in table_rows(embedded(html), "page_views_daily")}


def test_new_tables_and_columns_are_embedded(tmp_path: Path) -> None:
    fill_full_analytics(tmp_path, random.Random(5))
    html = build_dashboard(tmp_path, tmp_path / "d.html").read_text(encoding="utf-8")
    data = embedded(html)
    assert all('<div class="body">' in part and "no data yet" not in part for part in sections(html).values())
    assert {r["day"] for r in table_rows(data, "page_views_daily")} == {d.isoformat() for d in DAILY_DAYS}
    assert {r["day"] for r in table_rows(data, "clicks_daily")} == {d.isoformat() for d in DAILY_DAYS}
    retention = table_rows(data, "retention_weekly")
    assert {(r["cohort_week"], r["weeks_since"]) for r in retention} >= {("2026-11-09", 0), ("2026-11-09", 2)}
    assert all(isinstance(r["visitors"], int) for r in retention)
    runs = table_rows(data, "ingest_runs")
    assert len(runs) == 5 and all(r["valid"] and r["policy_version"] == "fields-v3" for r in runs)
    assert all("offset_ranges" not in r and "redactions" not in r for r in runs)  # only what the page shows
    suppressed = {r["table_name"]: r["events"] for r in table_rows(data, "suppressed_cells")}
    assert suppressed["page_views_hourly"] == 31
    # (other) roll-ups are data like any other row: kept, never filtered out
    assert OTHER in {r["page"] for r in table_rows(data, "page_views_hourly")}
    assert (OTHER, OTHER) in {(r["device_model"], r["os"]) for r in table_rows(data, "devices_daily")}
    assert None in {r["gender"] for r in table_rows(data, "audience_daily")}
    # the same data, the same version; another time zone, other labels
    assert build_dashboard(tmp_path, tmp_path / "again.html").read_text(encoding="utf-8").count(data["version"]) == 1
    utc = embedded(build_dashboard(tmp_path, tmp_path / "utc.html", timezone="UTC").read_text(encoding="utf-8"))
    assert min(r["hour"] for r in table_rows(utc, "page_views_hourly")) == "2026-11-19 16:00"
    assert utc["version"] != data["version"]
    assert "Daily tables count days in Asia/Shanghai" in (tmp_path / "utc.html").read_text(encoding="utf-8")


def test_empty_warehouse_says_no_data_yet(tmp_path: Path) -> None:
    html = build_dashboard(tmp_path, tmp_path / "dashboard.html").read_text(encoding="utf-8")
    by_panel = sections(html)
    assert len(by_panel) == PANEL_COUNT
    assert all("no data yet" in part and 'class="body"' not in part for part in by_panel.values())
    assert embedded(html)["tables"] == {}
    assert not (tmp_path / "analytics.duckdb").exists()  # a dashboard never creates the store


def test_partial_warehouse_shows_what_exists(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "analytics.duckdb"))
    con.execute(ANALYTICS_DDL.split(";")[0])  # only page_views_hourly, and it is empty
    con.execute("CREATE TABLE suppressed_cells (table_name VARCHAR, cells BIGINT)")
    con.execute("INSERT INTO suppressed_cells VALUES ('clicks_hourly', 3)")
    con.close()
    html = build_dashboard(tmp_path, tmp_path / "d.html").read_text(encoding="utf-8")
    by_panel = sections(html)
    assert "no data yet" in by_panel["traffic"] and "no data yet" in by_panel["clicks"]
    assert 'class="body"' in by_panel["quality"]
    data = embedded(html)
    assert table_rows(data, "suppressed_cells") == [{"table_name": "clicks_hourly", "cells": 3, "events": None}]
    assert data["tables"]["page_views_hourly"]["rows"] == []


def test_store_locked_by_running_ingest_is_one_line_error(tmp_path: Path, capsys) -> None:
    fill_analytics(tmp_path, random.Random(9))
    holder = hold_write_lock(tmp_path / "analytics.duckdb")
    try:
        assert main(["dashboard", "--warehouse", str(tmp_path)]) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot open analytics.duckdb" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--warehouse", "/nonexistent/seaport-warehouse"], "does not exist"),
        (["--timezone", "Nowhere/Else"], "unknown --timezone"),
        (["--out", "/proc/seaport-dashboard.html"], "cannot write the dashboard"),
    ],
)
def test_bad_input_is_one_line_error(tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    assert main(["dashboard", "--warehouse", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("seaport dashboard: error: ") and message in err


def test_bad_port_is_one_line_usage_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["dashboard", "--warehouse", str(tmp_path), "--serve", "--port", "70000"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("seaport dashboard: error: ") and "must be a port number" in err


# -- --serve ---------------------------------------------------------------------------------------
def get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.headers["Content-Type"], response.read().decode("utf-8")


def wait_until(check, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@contextmanager
def served(warehouse: Path, out: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`seaport dashboard --serve --port 0` on `warehouse` (polling it every 0.2 s): its base URL
    and process. Stopped with Ctrl-C (SIGINT) at the end; the caller reads its exit."""
    server = subprocess.Popen(
        [sys.executable, "-m", "seaport.cli", "dashboard", "--warehouse", str(warehouse), "--out", str(out),
         "--serve", "--port", "0", "--poll", "0.2"],
        cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        assert select.select([server.stdout], [], [], 30)[0], "the server printed nothing"
        line = server.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert url and url.group(1) != "0", line
        yield url.group(0), server
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_serve_rebuilds_when_the_warehouse_changes(tmp_path: Path) -> None:
    store = fill_full_analytics(tmp_path, random.Random(11))
    out = tmp_path / "site" / "dashboard.html"
    writer = None
    with served(tmp_path, out) as (base, server):
        try:
            status, content_type, html = get(base)
            assert status == 200 and content_type.startswith("text/html")
            assert embedded(html)["tables"]["retention_weekly"]["rows"]
            first = get(base + "version")[2]
            assert first == embedded(html)["version"] and out.read_text(encoding="utf-8") == html  # the built file
            with pytest.raises(urllib.error.HTTPError):
                get(base + "analytics.duckdb")  # only the page and its version

            # An ingest holds the store and writes to it: the last page stays up.
            code = (
                "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                "c.execute(\"INSERT INTO sessions_daily VALUES ('2026-11-25', 99, 1000.0, 0.5, 'fields-v3')\"); "
                "print('ready', flush=True); sys.stdin.readline(); c.close()"
            )
            writer = subprocess.Popen([sys.executable, "-c", code, str(store)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)  # fmt: skip
            assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
            time.sleep(1.0)  # several polls against the locked store
            assert get(base)[0] == 200 and get(base + "version")[2] == first
            assert server.poll() is None

            # The ingest is done: a new build, a new version.
            writer.communicate("done\n", timeout=10)
            second = wait_until(lambda: (v := get(base + "version")[2]) != first and v)
            assert second, "/version did not change after the warehouse changed"
            html = get(base)[2]
            assert embedded(html)["version"] == second
            assert "2026-11-25" in {r["day"] for r in table_rows(embedded(html), "sessions_daily")}
            assert embedded(out.read_text(encoding="utf-8"))["version"] == second
        finally:
            if writer is not None and writer.poll() is None:
                writer.kill()
                writer.wait()
    assert server.stdout is not None and server.stderr is not None
    stdout, stderr = server.stdout.read(), server.stderr.read()
    assert server.returncode == 0, stderr
    assert stdout.strip().splitlines() == ["dashboard: stopped"] and stderr == ""  # Ctrl-C: one line, exit 0


def test_serve_started_while_the_store_is_locked_waits_for_it(tmp_path: Path) -> None:
    fill_analytics(tmp_path, random.Random(4))
    out = tmp_path / "d.html"
    site = Site(tmp_path, out, "Asia/Shanghai")
    holder = hold_write_lock(tmp_path / "analytics.duckdb")
    try:
        assert site.refresh()  # a page that says why it is empty, and no version for it
        assert site.version == "" and b"retrying (an ingest may be running)" in site.html and not out.exists()
        assert not site.refresh()  # still locked: the same page
    finally:
        holder.kill()
        holder.wait()
    assert site.refresh() and site.version and out.exists()
    assert embedded(site.html.decode("utf-8"))["version"] == site.version
    assert not site.refresh()  # nothing changed since


def test_serve_refuses_a_port_in_use(tmp_path: Path, capsys) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["dashboard", "--warehouse", str(tmp_path), "--serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot serve on 127.0.0.1:{port}" in err
