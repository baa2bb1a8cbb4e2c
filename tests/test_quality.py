"""The data-quality suite (sinks/quality.py) over real DuckDB warehouses built in tmp folders: a
correct one passes, each planted defect is reported with its table, expectation and column."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from sinks.quality import check_warehouse
from sinks.warehouse import OffsetRange, RunSummary, Warehouse, write_staged
from tests.helpers import AGGREGATES_DDL

K = 5
PAGES = ["/", "/news", "/shop", "/help"]


def build_warehouse(root: Path, seed: int = 7, tz: str = "Asia/Shanghai") -> Path:
    """A correct analytics.duckdb with generated values: hours at the start of an hour in `tz`,
    visitors <= their events, one row per cell, nulls where a dimension may be unknown."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    start = datetime(2024, 5, 1, tzinfo=ZoneInfo(tz))
    hours = [start + timedelta(hours=h) for h in range(8)]
    days = [date(2024, 5, 1), date(2024, 5, 2)]
    con = duckdb.connect(str(root / "analytics.duckdb"))
    con.execute(AGGREGATES_DDL)
    for hour in hours:
        for page in PAGES:
            views = rng.randint(K, 60)
            duration = rng.choice([None, rng.uniform(0, 90_000)])
            con.execute(
                "INSERT INTO page_views_hourly VALUES (?, ?, ?, ?, ?)",
                [hour, page, views, rng.randint(0, views), duration],
            )
            for element in rng.sample(["buy", "menu", "search"], 2):
                clicks = rng.randint(1, 30)
                con.execute(
                    "INSERT INTO clicks_hourly VALUES (?, ?, ?, ?, ?)",
                    [hour, page, element, clicks, rng.randint(0, clicks)],
                )
    for day in days:
        # the last row: the roll-up of the day's suppressed cells
        for model, os_name, major in [
            ("Pixel 8", "Android", "14"), ("iPhone15,2", "iOS", "17"), ("PC", "", None), ("(other)",) * 3
        ]:  # fmt: skip
            events = rng.randint(K, 500)
            con.execute(
                "INSERT INTO devices_daily VALUES (?, ?, ?, ?, ?, ?)",
                [day, model, os_name, major, events, rng.randint(0, events)],
            )
        for gender, country, city in [
            ("female", "CN", "Shanghai"), ("male", "CN", None), (None, None, None), ("(other)",) * 3
        ]:  # fmt: skip
            con.execute(
                "INSERT INTO audience_daily VALUES (?, ?, ?, ?, ?, ?)",
                [day, gender, country, city, rng.choice(["zh_CN", None]), rng.randint(K, 80)],
            )
        con.execute(
            "INSERT INTO sessions_daily VALUES (?, ?, ?, ?)",
            [day, rng.randint(1, 90), rng.uniform(0, 600_000), rng.random()],
        )
    con.execute("INSERT INTO suppressed_cells VALUES ('page_views_hourly', 3)")
    con.close()
    return root


def plant(root: Path, sql: str) -> None:
    con = duckdb.connect(str(root / "analytics.duckdb"))
    con.execute(sql)
    con.close()


def failed(report) -> set[tuple[str, str, str]]:
    return {(f.table, f.expectation, f.column) for f in report.failures}


def test_a_correct_warehouse_passes(tmp_path: Path) -> None:
    report = check_warehouse(build_warehouse(tmp_path / "w"), k=K)
    assert report.ok, report.failures
    # 5 tables; a dropped table would lower the count without failing anything.
    assert report.evaluated >= 35


FIRST_PAGE_ROW = "(SELECT min(hour) FROM page_views_hourly) AND page = '/'"
DEFECTS = {
    "visitors > views": (
        f"UPDATE page_views_hourly SET visitors = views + 1 WHERE hour = {FIRST_PAGE_ROW}",
        ("page_views_hourly", "expect_column_pair_values_a_to_be_greater_than_b", "visitors<=views"),
    ),
    "null hour": (
        f"UPDATE clicks_hourly SET hour = NULL WHERE hour = {FIRST_PAGE_ROW.replace('page_views', 'clicks')}",
        ("clicks_hourly", "expect_column_values_to_not_be_null", "hour"),
    ),
    "bounce_rate 1.5": (
        "UPDATE sessions_daily SET bounce_rate = 1.5 WHERE day = DATE '2024-05-02'",
        ("sessions_daily", "expect_column_values_to_be_between", "bounce_rate"),
    ),
    "duplicate (hour, page)": (
        f"INSERT INTO page_views_hourly SELECT * FROM page_views_hourly WHERE hour = {FIRST_PAGE_ROW}",
        ("page_views_hourly", "expect_compound_columns_to_be_unique", "hour,page"),
    ),
    "hour at 10:30": (
        "UPDATE page_views_hourly SET hour = TIMESTAMPTZ '2024-05-01 10:30:00+08' "
        "WHERE hour = TIMESTAMPTZ '2024-05-01 03:00:00+08' AND page = '/news'",
        ("page_views_hourly", "expect_column_values_to_be_between", "hour"),
    ),
    "os_version_major not a number": (
        "UPDATE devices_daily SET os_version_major = '14.2' WHERE os_version_major = '14'",
        ("devices_daily", "expect_column_values_to_match_regex", "os_version_major"),
    ),
    "negative count": (
        "UPDATE sessions_daily SET sessions = -1 WHERE day = DATE '2024-05-01'",
        ("sessions_daily", "expect_column_values_to_be_between", "sessions"),
    ),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_planted_defect_is_reported(tmp_path: Path, defect: str) -> None:
    sql, expected = DEFECTS[defect]
    root = build_warehouse(tmp_path / "w")
    plant(root, sql)
    report = check_warehouse(root, k=K)
    assert not report.ok
    assert failed(report) == {expected}
    (failure,) = report.failures
    assert "rows unexpected" in failure.detail and not failure.detail.startswith("0 of")


def test_counts_must_be_integers(tmp_path: Path) -> None:
    root = build_warehouse(tmp_path / "w")
    plant(root, "ALTER TABLE devices_daily ALTER events TYPE DOUBLE; UPDATE devices_daily SET events = events + 0.5")
    report = check_warehouse(root)
    assert failed(report) == {("devices_daily", "expect_column_values_to_be_in_type_list", "events")}


def test_k_floor_applies_to_audience_only_when_given(tmp_path: Path) -> None:
    root = build_warehouse(tmp_path / "w")
    plant(root, f"UPDATE audience_daily SET visitors = {K - 1} WHERE gender = 'male'")
    assert check_warehouse(root).ok  # without k only visitors >= 1 is known
    report = check_warehouse(root, k=K)
    assert failed(report) == {("audience_daily", "expect_column_values_to_be_between", "visitors")}
    # Other tables' visitors may be below k (they count consenting subjects only): no failure.
    plant(root, "UPDATE page_views_hourly SET visitors = 1")
    assert failed(check_warehouse(root, k=K)) == failed(report)


def test_missing_and_empty_tables_are_skipped(tmp_path: Path) -> None:
    root = build_warehouse(tmp_path / "w")
    full = check_warehouse(root).evaluated
    plant(root, "DROP TABLE clicks_hourly; DELETE FROM devices_daily")
    report = check_warehouse(root)
    assert report.ok
    assert 0 < report.evaluated < full


def test_hours_start_in_the_warehouse_time_zone(tmp_path: Path) -> None:
    # India is UTC+05:30: its hours start at :30 UTC, which is right there and wrong in Shanghai.
    root = build_warehouse(tmp_path / "w", tz="Asia/Kolkata")
    assert check_warehouse(root, timezone="Asia/Kolkata").ok
    assert ("page_views_hourly", "expect_column_values_to_be_between", "hour") in failed(check_warehouse(root))


def test_a_warehouse_materialized_by_the_pipeline_passes(tmp_path: Path) -> None:
    """The real producer: events staged, committed and materialized by sinks/warehouse.py. Each
    visit's page_leave falls in the hour of its page_view (see the report: a leave in the next
    hour makes `visitors > views` in that hour's row)."""
    rng = random.Random(11)
    root, staging = tmp_path / "w", tmp_path / "staging"
    subjects = [f"p{rng.getrandbits(64):016x}" for _ in range(12)]
    consent = [
        {"source_partition": 0, "source_offset": i, "ts": datetime(2024, 4, 1, tzinfo=UTC), "analytics": "granted",
         "minor_without_guardian": False, "analytics_pseudonym": s, "security_pseudonym": f"q{i}", "key_id": "k1"}
        for i, s in enumerate(subjects[:9])
    ]  # fmt: skip
    events, offset = [], 0
    for subject in subjects:
        for visit in range(rng.randint(1, 3)):
            hour = datetime(2024, 5, 1, rng.randint(0, 3), tzinfo=UTC)
            session, page = f"{subject}-{visit}", rng.choice(PAGES)
            for event, minute, element, duration in [
                ("page_view", 5, None, None),
                ("click", 20, rng.choice(["buy", "menu"]), None),
                ("page_leave", 50, None, rng.randint(1_000, 90_000)),
            ]:
                offset += 1
                events.append(
                    {"event_id": f"e{offset}", "event": event, "ts": hour + timedelta(minutes=minute),
                     "subject_pseudonym": subject, "session_pseudonym": session, "page": page, "element": element,
                     "duration_ms": duration, "device_model": "Pixel 8", "os": "Android", "os_version_major": "14",
                     "gender": None, "country": "CN", "city": None, "language": "zh_CN", "opt_out": False,
                     "policy_version": "v1", "key_id": "k1", "_partition": 0, "_offset": offset}
                )  # fmt: skip
    write_staged(staging, "analytics", "a", events)
    write_staged(staging, "consent", "c", consent)
    warehouse = Warehouse(root, k=2)
    warehouse.commit_run(
        RunSummary("run-1", datetime.now(UTC), [OffsetRange("beacons.raw", "beacons.raw", 0, 0, offset)]),
        staging,
        [],
        retention_days=3650,
    )
    rows = warehouse.materialize()
    warehouse.close()
    assert rows["page_views_hourly"] > 0 and rows["audience_daily"] > 0
    report = check_warehouse(root, k=2)
    assert report.ok, report.failures
