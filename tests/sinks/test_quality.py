"""The data-quality suite (sinks/quality.py): the gate `validate_publish` over the frames a run is
about to publish, and `check_warehouse` over real DuckDB warehouses built in tmp folders. A
correct set passes; each planted defect is reported with its table, expectation and column, and
nothing else; a planted identifier is caught and shown nowhere, not even in the data docs."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import pytest

from schemas.staged import OffsetRange, write_staged
from sinks import quality
from sinks.quality import COLUMNS, QualityReport, check_warehouse, validate_publish
from sinks.warehouse import RunSummary, Warehouse
from tests.helpers import CONTRACT_DDL

K = 5
TZ = "Asia/Shanghai"
PAGES = ["/", "/news", "/shop", "/help"]
DAYS = [date(2024, 5, 1), date(2024, 5, 2)]


# Generators of identifier-shaped values (as in tests/test_privacy_e2e.py): never real ones.
def phone(rng: random.Random) -> str:
    return "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))


def email(rng: random.Random) -> str:
    return f"{''.join(rng.choice('abcdefghijklmnop') for _ in range(8))}{rng.randrange(100)}@example.cn"


def mac(rng: random.Random) -> str:
    return ":".join(f"{rng.randrange(256):02x}" for _ in range(6))


def build_warehouse(root: Path, seed: int = 7, tz: str = TZ) -> Path:
    """A correct analytics.duckdb with generated values: hours at the start of an hour in `tz`,
    counts >= K, visitors 0 or >= K and never above their events, one row per cell, nulls where a
    dimension may be unknown, `(other)` roll-up rows, coverage for every day."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(root / "analytics.duckdb"))
    con.execute(CONTRACT_DDL)

    def visitors(of: int) -> int:
        return rng.choice([0, rng.randint(K, of)])

    def insert(table: str, *row: object) -> None:
        con.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(row))})", list(row))

    start = datetime(2024, 5, 1, 20, tzinfo=ZoneInfo(tz))  # 8 hours over both days
    for hour in [start + timedelta(hours=h) for h in range(8)]:
        for page in [*PAGES, "(other)"]:
            views = rng.randint(K, 60)
            insert(
                "page_views_hourly",
                hour,
                page,
                views,
                visitors(views),
                rng.choice([None, rng.uniform(0, 9e4)]),
                "v1",
                1,
            )
            for element in rng.sample(["buy", "menu", "search"], 2):
                clicks = rng.randint(K, 30)
                insert("clicks_hourly", hour, page, element, clicks, visitors(clicks), "v1", 1)
    for day in DAYS:
        for page in PAGES:
            views = rng.randint(K, 300)
            insert("page_views_daily", day, page, views, visitors(views), rng.uniform(0, 9e4), "v1,v2")
            clicks = rng.randint(K, 100)
            insert("clicks_daily", day, page, "buy", clicks, visitors(clicks), "v1")
        # the last row: the roll-up of the day's suppressed cells
        for model, os_name, major in [
            ("Pixel 8", "Android", "14"), ("iPhone15,2", "iOS", "17"), ("PC", "", None), ("(other)",) * 3
        ]:  # fmt: skip
            events = rng.randint(K, 500)
            insert("devices_daily", day, model, os_name, major, events, visitors(events), "v1")
        for gender, country, city in [
            ("female", "CN", "Shanghai"), ("male", "CN", None), (None, None, None), ("(other)",) * 3
        ]:  # fmt: skip
            insert("audience_daily", day, gender, country, city, rng.choice(["zh_CN", None]), rng.randint(K, 80), "v1")
        insert("sessions_daily", day, rng.randint(K, 90), rng.uniform(0, 6e5), rng.random(), "v1")
    for cohort in (date(2024, 4, 22), date(2024, 4, 29)):
        for weeks_since in range(2):
            insert("retention_weekly", cohort, weeks_since, rng.randint(K, 50), "v1")
    # coverage: what the published rows hold, plus some suppressed
    con.execute(
        """INSERT INTO coverage_daily
           SELECT table_name, day, published + extra, published, round(published / (published + extra), 4)
           FROM (SELECT 'devices_daily' AS table_name, day, sum(events)::BIGINT AS published, 3 AS extra
                 FROM devices_daily GROUP BY ALL
                 UNION ALL SELECT 'audience_daily', day, sum(visitors)::BIGINT, 0 FROM audience_daily GROUP BY ALL
                 UNION ALL SELECT 'retention_weekly', cohort_week, sum(visitors)::BIGINT, 2 FROM retention_weekly
                 GROUP BY ALL)"""
    )
    con.close()
    return root


def frames_of(root: Path, tz: str = TZ) -> dict[str, pd.DataFrame]:
    """The tables of a warehouse as the gate gets them: DuckDB's `.df()` in the warehouse's zone."""
    con = duckdb.connect(str(root / "analytics.duckdb"), read_only=True)
    con.execute("SET TimeZone = ?", [tz])
    present = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    frames = {t: con.execute(f"SELECT * FROM {t}").df() for t in COLUMNS if t in present}
    con.close()
    return frames


def events_counted(frames: dict[str, pd.DataFrame]) -> int:
    coverage = frames["coverage_daily"]
    return int(coverage.loc[coverage["table_name"] == "devices_daily", "counted"].sum())


def gate(frames: dict[str, pd.DataFrame], docs_dir: Path, **kwargs) -> QualityReport:
    if "events_stored" not in kwargs:
        kwargs["events_stored"] = events_counted(frames) + 10
    given = {"k": K, "timezone": TZ, "days": DAYS} | kwargs
    return validate_publish(frames, docs_dir=docs_dir, **given)


def plant(root: Path, sql: str) -> None:
    con = duckdb.connect(str(root / "analytics.duckdb"))
    con.execute(sql)
    con.close()


def failed(report) -> set[tuple[str, str, str]]:
    return {(f.table, f.expectation, f.column) for f in report.failures}


@pytest.fixture(scope="module")
def correct(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    return frames_of(build_warehouse(tmp_path_factory.mktemp("w")))


# --------------------------------------------------------------------------- the gate


# Run in a fresh interpreter: this process may already hold GX and scipy.stats.
DEFERRED_IMPORTS = """
import sys
from sinks import quality
quality.warm_up()
print(sorted(name for name in ("scipy.stats", "altair") if name in sys.modules))
from great_expectations.expectations.core import expect_column_kl_divergence_to_be_less_than as kl
import altair, scipy.stats
print(kl.stats.entropy is scipy.stats.entropy, kl.alt.Chart is altair.Chart)
print(type(sys.modules["scipy.stats"]).__name__, type(sys.modules["altair"]).__name__)
"""


def test_gx_is_imported_without_the_modules_it_never_uses_here_which_still_work_when_used() -> None:
    done = subprocess.run([sys.executable, "-c", DEFERRED_IMPORTS], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    # not imported by GX's import; GX's own references and a later import reach the real modules
    assert done.stdout.splitlines() == ["[]", "True True", "module module"]


def test_correct_frames_pass(correct, tmp_path: Path) -> None:
    report = gate(correct, tmp_path / "quality")
    assert report.ok, report.failures
    # 9 tables and the run's checks; a dropped table would lower the count without failing anything.
    assert report.evaluated >= 110
    assert report.docs is None and not (tmp_path / "quality").exists()  # docs only when something fails
    assert report.one_line() == f"quality gate: all {report.evaluated} expectations met"


def first_row(table: str, column: str, value: object) -> Callable[[dict[str, pd.DataFrame]], None]:
    def change(frames: dict[str, pd.DataFrame]) -> None:
        frames[table].loc[0, column] = value

    return change


def apply(table: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[dict[str, pd.DataFrame]], None]:
    def edit(frames: dict[str, pd.DataFrame]) -> None:
        frames[table] = change(frames[table])

    return edit


def drop_coverage_of(day: date) -> Callable[[dict[str, pd.DataFrame]], None]:
    def edit(frames: dict[str, pd.DataFrame]) -> None:
        cov = frames["coverage_daily"]
        frames["coverage_daily"] = cov[~((cov["table_name"] == "devices_daily") & (cov["day"].dt.date == day))]

    return edit


def under_k_views(frames: dict[str, pd.DataFrame]) -> None:
    frames["page_views_hourly"].loc[0, ["views", "visitors"]] = [K - 1, 0]


def identifier_in(table: str, column: str, make: Callable[[random.Random], str]):
    return first_row(table, column, "/u/" + make(random.Random(column)) if column == "page" else make(random.Random(3)))


BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"
TYPE = "expect_column_values_to_be_of_type"
DEFECTS: dict[str, tuple[Callable[[dict[str, pd.DataFrame]], None], tuple[str, str, str]]] = {
    # 1. schema and types
    "an extra column": (
        apply("clicks_daily", lambda f: f.assign(note="x")),
        ("clicks_daily", "expect_table_columns_to_match_set", "(columns)"),
    ),
    "policy_version missing": (
        apply("sessions_daily", lambda f: f.drop(columns="policy_version")),
        ("sessions_daily", "expect_table_columns_to_match_set", "(columns)"),
    ),
    "a count not whole": (
        apply("devices_daily", lambda f: f.assign(events=f["events"] + 0.5)),
        ("devices_daily", "expect_column_values_to_be_in_type_list", "events"),
    ),
    "hour without a time zone": (
        apply("clicks_hourly", lambda f: f.assign(hour=f["hour"].dt.tz_localize(None))),
        ("clicks_hourly", TYPE, "hour"),
    ),
    "day as text": (
        apply("page_views_daily", lambda f: f.assign(day=f["day"].dt.strftime("%Y-%m-%d"))),
        ("page_views_daily", TYPE, "day"),
    ),
    "cohort_week zoned": (
        apply("retention_weekly", lambda f: f.assign(cohort_week=f["cohort_week"].dt.tz_localize(TZ))),
        ("retention_weekly", TYPE, "cohort_week"),
    ),
    # 2. non-negative counts; visitors <= their events
    "negative visitors": (first_row("page_views_daily", "visitors", -1), ("page_views_daily", BETWEEN, "visitors")),
    "negative weeks_since": (
        first_row("retention_weekly", "weeks_since", -1),
        ("retention_weekly", BETWEEN, "weeks_since"),
    ),
    "negative published": (first_row("coverage_daily", "published", -1), ("coverage_daily", BETWEEN, "published")),
    "visitors > clicks": (
        apply("clicks_daily", lambda f: f.assign(visitors=f["clicks"] + 1)),
        ("clicks_daily", "expect_column_pair_values_a_to_be_greater_than_b", "visitors<=clicks"),
    ),
    # 3. no figure under k
    "views under k": (under_k_views, ("page_views_hourly", BETWEEN, "views")),
    "sessions under k": (first_row("sessions_daily", "sessions", K - 1), ("sessions_daily", BETWEEN, "sessions")),
    "visitors under k": (first_row("clicks_hourly", "visitors", K - 1), ("clicks_hourly", IN_SET, "visitors")),
    "audience under k": (first_row("audience_daily", "visitors", K - 1), ("audience_daily", BETWEEN, "visitors")),
    "retention under k": (first_row("retention_weekly", "visitors", K - 1), ("retention_weekly", BETWEEN, "visitors")),
    # 4. no identifier-shaped value in a text column
    "a phone in a page": (identifier_in("page_views_daily", "page", phone), ("page_views_daily", IN_SET, "page")),
    "an e-mail in an element": (identifier_in("clicks_hourly", "element", email), ("clicks_hourly", IN_SET, "element")),
    "a MAC as a device model": (
        identifier_in("devices_daily", "device_model", mac),
        ("devices_daily", IN_SET, "device_model"),
    ),
    "a phone as a city": (identifier_in("audience_daily", "city", phone), ("audience_daily", IN_SET, "city")),
    # 5. every day of the run counted
    "a day without coverage": (
        drop_coverage_of(DAYS[1]),
        ("coverage_daily", "expect_column_unique_value_count_to_be_between", "day"),
    ),
    # the expectations of check_warehouse, on the new tables
    "null cohort_week": (
        first_row("retention_weekly", "cohort_week", pd.NaT),
        ("retention_weekly", "expect_column_values_to_not_be_null", "cohort_week"),
    ),
    "duplicate (cohort_week, weeks_since)": (
        apply("retention_weekly", lambda f: pd.concat([f, f.iloc[:1]], ignore_index=True)),
        ("retention_weekly", "expect_compound_columns_to_be_unique", "cohort_week,weeks_since"),
    ),
    "duplicate (day, page, element)": (
        apply("clicks_daily", lambda f: pd.concat([f, f.iloc[:1]], ignore_index=True)),
        ("clicks_daily", "expect_compound_columns_to_be_unique", "day,page,element"),
    ),
    "hour at :30": (
        apply(
            "page_views_hourly",
            lambda f: f.assign(hour=f["hour"].where(f.index != 3, f["hour"] + pd.Timedelta("30min"))),
        ),
        ("page_views_hourly", BETWEEN, "hour"),
    ),
}


def test_the_gate_on_batches_judges_as_the_recorded_validation_does(correct) -> None:
    # The gate validates GX batches with each expectation's configuration built once
    # (`_configurations_memoized`); the data docs' run records validation definitions, building
    # them as GX does. Every defect at once: the same failures, the same details, the same count.
    frames = {t: f.copy() for t, f in correct.items()}
    for change, _ in DEFECTS.values():
        change(frames)
    coverage = frames["coverage_daily"]
    run = (coverage, quality._Run(tuple(DAYS), events_counted(correct) - 1))
    fast = quality._validate(frames, K, TZ, run=run)
    recorded = quality._validate(frames, K, TZ, run=run, record=True)
    assert len(fast.failures) >= len(DEFECTS) and fast.failures == recorded.failures
    assert fast.evaluated == recorded.evaluated >= 110
    # the memo holds only inside a validation
    from great_expectations.expectations.expectation import Expectation

    expectation = quality._expectations("sessions_daily", K, [])[0]
    assert isinstance(expectation, Expectation) and expectation.configuration is not expectation.configuration
    with quality._configurations_memoized():
        assert expectation.configuration is expectation.configuration
    assert expectation.configuration is not expectation.configuration


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_broken_expectation_is_named(correct, tmp_path: Path, defect: str) -> None:
    change, expected = DEFECTS[defect]
    frames = {t: f.copy() for t, f in correct.items()}
    change(frames)
    report = gate(frames, tmp_path / "quality")
    assert failed(report) == {expected}
    (failure,) = report.failures
    assert not failure.detail.startswith("0 of") and "error" not in failure.detail, failure


def test_more_events_counted_than_stored(correct, tmp_path: Path) -> None:
    # 6. coverage_daily's counts of devices_daily over the run's days <= the events all runs stored
    report = gate(correct, tmp_path / "quality", events_stored=events_counted(correct) - 1)
    assert failed(report) == {("coverage_daily", "expect_column_sum_to_be_between", "counted")}
    assert gate(correct, tmp_path / "ok", events_stored=events_counted(correct)).ok


def test_missing_days_are_counted_not_named(correct, tmp_path: Path) -> None:
    days = [*DAYS, date(2024, 5, 3), date(2024, 5, 4)]
    report = gate(correct, tmp_path / "quality", days=days)
    (failure,) = report.failures
    assert failure.detail.startswith("2 of 4 days missing") and "2024" not in report.one_line()


def test_absent_and_empty_tables_are_skipped_but_not_the_days(correct, tmp_path: Path) -> None:
    only = {"audience_daily": correct["audience_daily"], "devices_daily": correct["devices_daily"].iloc[:0]}
    report = gate({**only, "coverage_daily": correct["coverage_daily"]}, tmp_path / "a")
    assert report.ok and report.evaluated < gate(correct, tmp_path / "b").evaluated
    # without coverage, no day of the run is known to be counted
    report = gate(only, tmp_path / "c", events_stored=0)
    assert failed(report) == {("coverage_daily", "expect_column_unique_value_count_to_be_between", "day")}
    assert report.failures[0].detail.startswith("2 of 2 days missing")
    assert gate(only, tmp_path / "d", days=[], events_stored=0).ok  # a run that rebuilt no day


def test_a_planted_identifier_is_caught_and_shown_nowhere(correct, tmp_path: Path) -> None:
    rng = random.Random(2024)
    frames = {t: f.copy() for t, f in correct.items()}
    planted = {"page_views_hourly": phone(rng), "clicks_daily": email(rng), "page_views_daily": mac(rng)}
    for table, value in planted.items():
        frames[table].loc[1, "page"] = f"/p/{value}"
    docs = tmp_path / "quality"
    report = gate(frames, docs)
    assert failed(report) == {(t, IN_SET, "page") for t in planted}
    files = [p for p in docs.rglob("*") if p.is_file()]
    assert len(files) > 5  # the site was written: index, validation and suite pages, assets
    text = repr(report) + report.one_line() + "".join(p.read_bytes().decode("utf-8", "replace") for p in files)
    for value in planted.values():
        assert value not in text and value.replace(":", "") not in text
    assert "/p/" not in text  # nor the rest of the row's page


def test_data_docs_name_the_failing_table(correct, tmp_path: Path) -> None:
    frames = {t: f.copy() for t, f in correct.items()}
    frames["sessions_daily"].loc[0, "bounce_rate"] = 1.5
    docs = tmp_path / "quality"
    report = gate(frames, docs)
    assert failed(report) == {("sessions_daily", BETWEEN, "bounce_rate")}
    assert report.docs == docs / "index.html" and report.docs.is_file()
    index = report.docs.read_text()
    assert "sessions_daily" in index
    pages = [p for p in (docs / "validations").rglob("*.html")]
    assert {p.relative_to(docs / "validations").parts[0] for p in pages} >= {"sessions_daily", "coverage_daily_run"}
    assert report.one_line() == (
        "quality gate: 1 expectation failed, first: sessions_daily expect_column_values_to_be_between bounce_rate: "
        f"1 of 2 rows unexpected; data docs: {docs / 'index.html'}"
    )
    # a second failure in the same process writes its own docs
    frames["sessions_daily"].loc[0, "bounce_rate"] = 0.5
    frames["audience_daily"].loc[0, "visitors"] = 1
    again = gate(frames, tmp_path / "again")
    assert failed(again) == {("audience_daily", BETWEEN, "visitors")}
    assert "audience_daily" in (tmp_path / "again" / "index.html").read_text()


def test_one_line_names_the_first_failure_and_the_count(correct, tmp_path: Path) -> None:
    frames = {t: f.copy() for t, f in correct.items()}
    under_k_views(frames)
    frames["clicks_hourly"].loc[0, "visitors"] = K - 1
    line = gate(frames, tmp_path / "quality").one_line()
    assert line.startswith(
        "quality gate: 2 expectations failed, first: clicks_hourly expect_column_values_to_be_in_set visitors: "
        "1 of 80 rows unexpected (between 1 and k - 1); data docs: "
    )


# --------------------------------------------------------------------------- check_warehouse


def test_a_correct_warehouse_passes(tmp_path: Path) -> None:
    report = check_warehouse(build_warehouse(tmp_path / "w"), k=K)
    assert report.ok, report.failures
    # 9 tables; a dropped table would lower the count without failing anything.
    assert report.evaluated >= 105
    assert report.docs is None


FIRST_PAGE_ROW = "(SELECT min(hour) FROM page_views_hourly) AND page = '/'"
WAREHOUSE_DEFECTS = {
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
        ("sessions_daily", BETWEEN, "bounce_rate"),
    ),
    "duplicate (hour, page)": (
        f"INSERT INTO page_views_hourly SELECT * FROM page_views_hourly WHERE hour = {FIRST_PAGE_ROW}",
        ("page_views_hourly", "expect_compound_columns_to_be_unique", "hour,page"),
    ),
    "hour at 10:30": (
        "UPDATE page_views_hourly SET hour = TIMESTAMPTZ '2024-05-02 10:30:00+08' "
        "WHERE hour = TIMESTAMPTZ '2024-05-01 23:00:00+08' AND page = '/news'",
        ("page_views_hourly", BETWEEN, "hour"),
    ),
    "os_version_major not a number": (
        "UPDATE devices_daily SET os_version_major = '14.2' WHERE os_version_major = '14'",
        ("devices_daily", "expect_column_values_to_match_regex", "os_version_major"),
    ),
    "negative count": (
        "UPDATE coverage_daily SET counted = -1 WHERE table_name = 'audience_daily'",
        ("coverage_daily", BETWEEN, "counted"),
    ),
    "an extra column": (
        "ALTER TABLE sessions_daily ADD COLUMN _subjects BIGINT DEFAULT 9",
        ("sessions_daily", "expect_table_columns_to_match_set", "(columns)"),
    ),
}


@pytest.mark.parametrize("defect", list(WAREHOUSE_DEFECTS))
def test_each_planted_defect_is_reported(tmp_path: Path, defect: str) -> None:
    sql, expected = WAREHOUSE_DEFECTS[defect]
    root = build_warehouse(tmp_path / "w")
    plant(root, sql)
    report = check_warehouse(root, k=K)
    assert not report.ok
    assert failed(report) == {expected}
    (failure,) = report.failures
    assert not failure.detail.startswith("0 of") and "error" not in failure.detail


def test_counts_must_be_integers(tmp_path: Path) -> None:
    root = build_warehouse(tmp_path / "w")
    plant(root, "ALTER TABLE devices_daily ALTER events TYPE DOUBLE; UPDATE devices_daily SET events = events + 0.5")
    report = check_warehouse(root)
    assert failed(report) == {("devices_daily", "expect_column_values_to_be_in_type_list", "events")}


def test_the_k_rule_applies_only_when_k_is_given(tmp_path: Path) -> None:
    root = build_warehouse(tmp_path / "w")
    plant(root, f"UPDATE audience_daily SET visitors = {K - 1} WHERE gender = 'male'")
    plant(root, f"UPDATE page_views_hourly SET visitors = {K - 1} WHERE page = '/help' AND views >= {K - 1}")
    assert check_warehouse(root).ok  # without k only visitors >= 1 (audience) is known
    assert failed(check_warehouse(root, k=K)) == {
        ("audience_daily", BETWEEN, "visitors"),
        ("page_views_hourly", IN_SET, "visitors"),  # R4: visitors 0 or >= k everywhere
    }


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
    assert ("page_views_hourly", BETWEEN, "hour") in failed(check_warehouse(root))


def test_a_warehouse_materialized_by_the_pipeline_passes(tmp_path: Path) -> None:
    """The real producer: events staged, committed and materialized by sinks/warehouse.py, then
    checked published (check_warehouse) and as the gate sees the rebuilt days. Each visit's
    page_leave falls in the hour of its page_view (see the report: a leave in the next hour makes
    `visitors > views` in that hour's row)."""
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
    summary = RunSummary("run-1", datetime.now(UTC), [OffsetRange("beacons.raw", "beacons.raw", 0, 0, offset)])
    warehouse.commit_run(summary, staging, [], retention_days=3650)
    rows = warehouse.materialize()
    warehouse.close()
    assert rows["page_views_hourly"] > 0 and rows["audience_daily"] > 0 and rows["retention_weekly"] > 0
    report = check_warehouse(root, k=2)
    assert report.ok, report.failures
    frames = frames_of(root)
    days = sorted(set(frames["devices_daily"]["day"].dt.date))
    report = validate_publish(
        frames, k=2, timezone=TZ, days=days, events_stored=summary.events_stored, docs_dir=tmp_path / "q"
    )
    assert report.ok, report.failures
    assert summary.events_stored == len(events) == events_counted(frames)
