"""`seaport dashboard` on real DuckDB analytics stores: content, escaping, empty and partial warehouses."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import re
from pathlib import Path

import duckdb
import pytest

from dashboards.dashboard import build_dashboard
from seaport.cli import main
from tests.helpers import AGGREGATES_DDL, hold_write_lock

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
HOSTILE_PAGE = "/promo/<script>alert('x')</script>"
HOSTILE_ELEMENT = '"><img src=x onerror=alert(1)>'

ANALYTICS_DDL = (
    AGGREGATES_DDL
    + """
CREATE TABLE ingest_runs (run_id VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, messages BIGINT);
CREATE TABLE deadletter_counts (source_topic VARCHAR, reason VARCHAR, messages BIGINT);
CREATE TABLE erasure_log (request_id VARCHAR, subject_kind VARCHAR, requested_at TIMESTAMPTZ,
                          processed_at TIMESTAMPTZ);
"""
)


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


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sections(html: str) -> dict[str, str]:
    """Each <h2> section's HTML, by title."""
    parts = re.split(r"<h2>(.*?)</h2>", html)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_dashboard_shows_the_tables(tmp_path: Path, capsys) -> None:
    views = fill_analytics(tmp_path, random.Random(7))
    before = digest(tmp_path / "analytics.duckdb")
    assert main(["dashboard", "--warehouse", str(tmp_path)]) == 0
    out = tmp_path / "dashboard.html"
    assert str(out) in capsys.readouterr().out
    html = out.read_text(encoding="utf-8")
    by_title = sections(html)
    assert f"{views['/home']:,}" in by_title["Top pages"]  # summed over hours
    assert "2026-11-24 00:00" in by_title["Page views per hour"]  # hours labelled in Shanghai time
    assert by_title["Page views per hour"].count("<rect") == 24  # the missing hour shows as zero
    assert "2026-11-24 05:00: 0</title>" in by_title["Page views per hour"]
    assert "37.5" in by_title["Sessions"] and "61.5" in by_title["Sessions"]
    assert "HarmonyOS 4" in by_title["Operating systems (events)"]
    assert "Shanghai" in by_title["Audience"] and "female" in by_title["Audience"]
    bookkeeping = by_title["Bookkeeping"]
    assert "invalid_json" in bookkeeping and "17" in bookkeeping and "run-1" in bookkeeping
    assert "page_views_hourly" in bookkeeping and "audience_daily" in bookkeeping
    assert "no data yet" not in html
    assert digest(tmp_path / "analytics.duckdb") == before  # opened read-only


def test_dashboard_escapes_page_names(tmp_path: Path) -> None:
    fill_analytics(tmp_path, random.Random(8))
    html = build_dashboard(tmp_path, tmp_path / "out" / "d.html").read_text(encoding="utf-8")
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r"(src|href)=\"?https?:", html) and "@import" not in html


def test_empty_warehouse_says_no_data_yet(tmp_path: Path) -> None:
    html = build_dashboard(tmp_path, tmp_path / "dashboard.html").read_text(encoding="utf-8")
    by_title = sections(html)
    assert len(by_title) == 8
    assert all("no data yet" in part for part in by_title.values())
    assert not (tmp_path / "analytics.duckdb").exists()  # a dashboard never creates the store


def test_partial_warehouse_shows_what_exists(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "analytics.duckdb"))
    con.execute(ANALYTICS_DDL.split(";")[0])  # only page_views_hourly, and it is empty
    con.execute("CREATE TABLE suppressed_cells (table_name VARCHAR, cells BIGINT)")
    con.execute("INSERT INTO suppressed_cells VALUES ('clicks_hourly', 3)")
    con.close()
    by_title = sections(build_dashboard(tmp_path, tmp_path / "d.html").read_text(encoding="utf-8"))
    assert "no data yet" in by_title["Page views per hour"] and "no data yet" in by_title["Clicks"]
    assert "clicks_hourly" in by_title["Bookkeeping"]


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
    ],
)
def test_bad_input_is_one_line_error(tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    assert main(["dashboard", "--warehouse", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("seaport dashboard: error: ") and message in err
