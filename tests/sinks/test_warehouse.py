"""sinks/warehouse.py on its own: staged facts in, aggregates out (real DuckDB, real files)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from schemas.staged import OffsetRange, write_staged
from sinks.warehouse import QualityGateFailed, RunSummary, Warehouse


def _materialize(root: Path, tz: str, instants: list[datetime]) -> list[tuple[datetime, int]]:
    """One consenting subject's page views at `instants`; the (hour, views) rows that come out."""
    consent = {"source_partition": 0, "source_offset": 0, "ts": datetime(2020, 1, 1, tzinfo=UTC),
               "analytics": "granted", "minor_without_guardian": False, "analytics_pseudonym": "p1",
               "security_pseudonym": "q1", "key_id": "k1"}  # fmt: skip
    events = [
        {"event_id": f"e{i}", "event": "page_view", "ts": ts, "subject_pseudonym": "p1", "session_pseudonym": f"s{i}",
         "page": "/a", "element": None, "duration_ms": None, "device_model": None, "os": None,
         "os_version_major": None, "gender": None, "country": None, "city": None, "language": None,
         "opt_out": False, "policy_version": "v1", "key_id": "k1", "_partition": 0, "_offset": i}
        for i, ts in enumerate(instants)
    ]  # fmt: skip
    staging = root / "staging"
    write_staged(staging, "analytics", "a", events)
    write_staged(staging, "consent", "c", [consent])
    warehouse = Warehouse(root / "wh", k=1, tz=tz)
    summary = RunSummary("run-1", datetime.now(UTC), [OffsetRange("beacons.raw", "beacons.raw", 0, 0, len(events))])
    warehouse.commit_run(summary, staging, [], retention_days=36500)
    warehouse.materialize()
    warehouse.close()
    with duckdb.connect(str(root / "wh" / "analytics.duckdb"), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute("SELECT hour, views FROM page_views_hourly ORDER BY hour").fetchall()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("tz", "instants", "hours"),
    [
        # clocks go back at 06:00Z: 01:10 EDT and 01:10 EST are two different hours
        ("America/New_York", [utc(2026, 11, 1, 5, 10), utc(2026, 11, 1, 6, 10)], [utc(2026, 11, 1, 5), utc(2026, 11, 1, 6)]),
        ("Europe/London", [utc(2026, 10, 25, 0, 20), utc(2026, 10, 25, 1, 20)], [utc(2026, 10, 25, 0), utc(2026, 10, 25, 1)]),
        # clocks go forward at 07:00Z: 03:30 EDT is in the hour that starts at 03:00 EDT
        ("America/New_York", [utc(2026, 3, 8, 7, 30)], [utc(2026, 3, 8, 7)]),
        # +05:45 and +05:30: local hours start at :15 and :30 UTC
        ("Asia/Kathmandu", [utc(2026, 11, 24, 0, 20), utc(2026, 11, 24, 0, 10)], [utc(2026, 11, 23, 23, 15), utc(2026, 11, 24, 0, 15)]),
        ("Asia/Kolkata", [utc(2026, 11, 24, 0, 40)], [utc(2026, 11, 24, 0, 30)]),
    ],
)  # fmt: skip
def test_each_event_counts_in_the_local_hour_that_contains_it(tmp_path: Path, tz, instants, hours):
    rows = _materialize(tmp_path, tz, instants)
    assert [hour for hour, _ in rows] == hours
    assert sum(views for _, views in rows) == len(instants)


def test_of_consent_changes_with_one_ts_the_later_in_the_topic_wins():
    """ASOF alone picks any of the changes that tie on `ts`; the rule (README) is the later offset."""
    from transforms.consent import events_with_consent_sql

    rng = random.Random(3)
    con = duckdb.connect()
    con.execute("""CREATE TABLE consent (source_partition INTEGER, source_offset BIGINT, subject_pseudonym VARCHAR,
                                         ts TIMESTAMPTZ, analytics VARCHAR)""")  # fmt: skip
    con.execute("CREATE TABLE events (event_id VARCHAR, subject_pseudonym VARCHAR, ts TIMESTAMPTZ, opt_out BOOLEAN)")
    at, expected, rows = utc(2026, 11, 24, 8, 10), {}, []
    for n in range(300):
        subject, last = f"p{n}", rng.choice(["granted", "withdrawn"])
        first = "withdrawn" if last == "granted" else "granted"
        rows += [(0, 2 * n, subject, at, first), (0, 2 * n + 1, subject, at, last)]
        con.execute("INSERT INTO events VALUES (?, ?, ?, false)", [f"e{n}", subject, utc(2026, 11, 24, 8, 15)])
        expected[f"e{n}"] = last == "granted"
    rng.shuffle(rows)  # the order rows happen to be stored in must not matter
    con.executemany("INSERT INTO consent VALUES (?, ?, ?, ?, ?)", rows)
    granted = dict(
        con.execute(f"SELECT event_id, granted FROM ({events_with_consent_sql('events', 'consent')})").fetchall()
    )
    assert granted == expected


def test_erasure_and_retention_reach_findings_and_dead_letters(tmp_path: Path):
    """R8: an erased subject's security findings go with its events; retention bounds every
    per-subject security table, not only the events."""
    root = tmp_path / "wh"
    warehouse = Warehouse(root, k=1)
    warehouse.con.execute(
        """INSERT INTO sec.security_anomalies VALUES
           (current_date, 'many_devices', 'q-erased', 1.5, '{}'),
           (current_date, 'scanning', 'q-other', 1.2, '{}'),
           (DATE '2020-01-01', 'scanning', 'q-old', 1.1, '{}')"""
    )
    warehouse.con.execute(
        "INSERT INTO sec.deadletters VALUES ('beacons.raw', 0, 1, 'not_json', 'q-other', '{}', TIMESTAMPTZ '2020-01-01')"
    )
    # consent changes as minor marks: before the retention window only each subject's latest decides
    # anything (where a minor's block ends), so only that one stays
    recent = datetime.now(UTC)
    flags = [(1, "q-adult", utc(2020, 1, 1), False), (2, "q-adult", utc(2020, 2, 1), False),
             (3, "q-minor", utc(2020, 1, 1), True), (4, "q-minor", utc(2020, 3, 1), False),
             (5, "q-minor", recent, True)]  # fmt: skip
    warehouse.con.executemany("INSERT INTO sec.minor_flags VALUES (0, ?, ?, ?, ?)", flags)
    erasure = {"request_id": "r1", "subject_kind": "openid", "requested_at": datetime.now(UTC),
               "analytics_pseudonym": "p-erased", "security_pseudonym": "q-erased", "key_id": "k1",
               "source_partition": 0, "source_offset": 0}  # fmt: skip
    staging = tmp_path / "staging"
    write_staged(staging, "erasure", "e", [erasure])
    summary = RunSummary("run-1", datetime.now(UTC), [OffsetRange("erasure.requests", "erasure.requests", 0, 0, 1)])
    warehouse.commit_run(summary, staging, [], retention_days=30)
    warehouse.close()
    with duckdb.connect(str(root / "security.duckdb"), read_only=True) as con:
        assert con.execute("SELECT subject_pseudonym FROM security_anomalies").fetchall() == [("q-other",)]
        assert con.execute("SELECT count(*) FROM deadletters").fetchall() == [(0,)]
        assert con.execute("SELECT source_offset FROM minor_flags ORDER BY 1").fetchall() == [(2,), (4,), (5,)]


def test_k_holds_for_every_figure_of_a_row(tmp_path: Path):
    """k = 5: a row stands on k subjects for each count (the events it counts and the consenting
    visitors among them), and an average from fewer than k subjects is null (issue 7)."""
    hour = utc(2026, 11, 24, 2)
    granted = ["p1", "p2", "p3", "p4", "p5"]  # p6 never consented
    plan = [  # (page, event, subjects)
        ("/a", "page_view", granted[:4]), ("/a", "page_leave", ["p5"]),  # 4 viewers + 1 leave: was published
        ("/b", "page_view", granted), ("/b", "page_leave", granted[:3]),  # average over 3: null
        ("/c", "page_view", [*granted[:4], "p6"]),  # 5 viewers, 4 consenting
        ("/d", "page_view", granted), ("/d", "page_leave", granted),  # all figures on 5
    ]  # fmt: skip
    events = []
    for page, event, subjects in plan:
        for s in subjects:
            n = len(events)
            events.append(
                {"event_id": f"e{n}", "event": event, "ts": hour.replace(minute=n), "subject_pseudonym": s,
                 "session_pseudonym": f"s-{s}", "page": page, "element": None,
                 "duration_ms": 1000 * (n + 1) if event == "page_leave" else None, "device_model": "m", "os": "o",
                 "os_version_major": "1", "gender": None, "country": None, "city": None, "language": None,
                 "opt_out": False, "policy_version": "v1", "key_id": "k1", "_partition": 0, "_offset": n}
            )  # fmt: skip
    consent = [
        {"source_partition": 0, "source_offset": i, "ts": utc(2020, 1, 1), "analytics": "granted",
         "minor_without_guardian": False, "analytics_pseudonym": s, "security_pseudonym": "q" + s, "key_id": "k1"}
        for i, s in enumerate(granted)
    ]  # fmt: skip
    staging = tmp_path / "staging"
    write_staged(staging, "analytics", "a", events)
    write_staged(staging, "consent", "c", consent)
    warehouse = Warehouse(tmp_path / "wh", k=5, tz="UTC")
    summary = RunSummary("run-1", datetime.now(UTC), [OffsetRange("beacons.raw", "beacons.raw", 0, 0, len(events))])
    warehouse.commit_run(summary, staging, [], retention_days=36500)
    warehouse.materialize()
    warehouse.close()
    with duckdb.connect(str(tmp_path / "wh" / "analytics.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT page, views, visitors, avg_duration_ms FROM page_views_hourly ORDER BY page"
        ).fetchall()
        suppressed = dict(con.execute("SELECT table_name, cells FROM suppressed_cells").fetchall())
        devices = con.execute("SELECT events, visitors FROM devices_daily").fetchall()
    leaves_d = [e["duration_ms"] for e in events if e["page"] == "/d" and e["event"] == "page_leave"]
    assert rows == [("/b", 5, 5, None), ("/d", 5, 5, sum(leaves_d) / 5)]
    assert suppressed["page_views_hourly"] == 2
    assert devices == [(len(events), 5)]  # p6 is among 6 subjects, 5 of them consenting


def test_the_quality_gate_refuses_a_publish_and_the_previous_tables_stay(tmp_path: Path):
    """Issue 11: what a run is about to publish is validated before it is published. A fact that
    slipped past the policy (planted straight into the state store) makes a cell whose page holds
    an e-mail: the gate stops that publish, the tables stay as they were, the days stay dirty,
    and GX data docs say why without the value."""
    from tests.test_privacy_e2e import email

    _materialize(tmp_path, "UTC", [utc(2026, 11, 24, 9, 5)])
    root = tmp_path / "wh"
    planted = email(random.Random(3))

    def tables() -> dict[str, list]:
        with duckdb.connect(str(root / "analytics.duckdb"), read_only=True) as con:
            return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=str) for t in ("page_views_hourly",
                    "page_views_daily", "devices_daily", "retention_weekly", "coverage_daily")}  # fmt: skip

    before = tables()
    warehouse = Warehouse(root, k=1, tz="UTC")
    warehouse.con.execute(
        """INSERT INTO st.analytics_events BY NAME
           SELECT 'e-planted' AS event_id, 'page_view' AS event, TIMESTAMPTZ '2026-11-24 10:05:00+00' AS ts,
                  'p1' AS subject_pseudonym, 's-planted' AS session_pseudonym, ? AS page, false AS opt_out,
                  'v1' AS policy_version, 'k1' AS key_id""",
        ["/u/" + planted],
    )
    warehouse.con.execute("INSERT INTO st.dirty_days VALUES (DATE '2026-11-24')")
    with pytest.raises(QualityGateFailed, match=r"quality gate: \d+ expectations failed") as refused:
        warehouse.materialize()
    assert planted not in str(refused.value)
    assert warehouse.needs_materializing()  # the day is still to be published
    warehouse.close()
    assert tables() == before
    docs = list((root / "quality").rglob("*.html"))
    assert (root / "quality" / "index.html").exists() and list((root / "quality" / "validations").rglob("*.html"))
    assert not any(planted in p.read_text(encoding="utf-8", errors="replace") for p in docs)


def test_withholding_profiles_on_scattered_days_touches_only_those_without_consent(tmp_path: Path):
    """R2: the profile of an event whose subject had no consent at its time is withheld, and
    only that one. The days of those events are scattered (day 1 and day 5): the rows of day 1 of
    a subject who consented keep theirs (the days' ranges are one condition among others)."""
    day1, day5 = utc(2026, 11, 1, 3), utc(2026, 11, 5, 3)
    plan = [("e1", day1, "p-yes"), ("e2", day1, "p-no"), ("e3", day5, "p-no")]
    events = [
        {"event_id": e, "event": "page_view", "ts": ts, "subject_pseudonym": s, "session_pseudonym": f"s-{e}",
         "page": "/a", "element": None, "duration_ms": None, "device_model": None, "os": None,
         "os_version_major": None, "gender": "female", "country": None, "city": None, "language": None,
         "opt_out": False, "policy_version": "v1", "key_id": "k1", "_partition": 0, "_offset": i}
        for i, (e, ts, s) in enumerate(plan)
    ]  # fmt: skip
    consent = {"source_partition": 0, "source_offset": 0, "ts": utc(2020, 1, 1), "analytics": "granted",
               "minor_without_guardian": False, "analytics_pseudonym": "p-yes", "security_pseudonym": "q-yes",
               "key_id": "k1"}  # fmt: skip
    staging = tmp_path / "staging"
    write_staged(staging, "analytics", "a", events)
    write_staged(staging, "consent", "c", [consent])
    warehouse = Warehouse(tmp_path / "wh", k=1, tz="UTC")
    summary = RunSummary("run-1", datetime.now(UTC), [OffsetRange("beacons.raw", "beacons.raw", 0, 0, len(events))])
    warehouse.commit_run(summary, staging, ["gender"], retention_days=36500)
    warehouse.close()
    with duckdb.connect(str(tmp_path / "wh" / "state.duckdb"), read_only=True) as con:
        kept = con.execute("SELECT subject_pseudonym, gender FROM analytics_events ORDER BY ts, subject_pseudonym")
        assert kept.fetchall() == [("p-no", None), ("p-yes", "female"), ("p-no", None)]
