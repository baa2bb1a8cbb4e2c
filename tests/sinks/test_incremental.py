"""The incremental commit (issue 8): a run rebuilds only the days it changed, and runs in pieces
give exactly the tables of one run over everything; the late window bounds the facts.

Real Kafka, real `seaport ingest`, the independent model of `tests/model.py`.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from schemas.tables import ANALYTICS_EVENTS
from seaport.kafka.topics import create_topics
from sinks.warehouse import INDEXES, Warehouse
from tests.model import build_dataset, expected_tables, normalize, rounded
from tests.pipelines.test_ingest import TABLE_COLUMNS, ingest, produce, read_tables

# audience_daily keeps profile dimensions only where consent was known when the events were
# ingested (README): a grant in a later piece makes visitors, not profiles. The other tables must
# come out exactly as from one run over everything.
EXACT = [t for t in TABLE_COLUMNS if t != "audience_daily"]


def exact(tables: dict[str, set[tuple]]) -> dict[str, set[tuple]]:
    return {t: tables[t] for t in EXACT}


def parquet_tables(warehouse: Path) -> dict[str, set[tuple]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Asia/Shanghai'")
    tables: dict[str, set[tuple]] = {}
    try:
        for t, cols in TABLE_COLUMNS.items():
            files = sorted(str(p) for p in (warehouse / "parquet" / t).rglob("*.parquet"))
            if not files:
                tables[t] = set()
                continue
            query = f"SELECT {cols} FROM read_parquet({files}, hive_partitioning = true)"
            tables[t] = normalize(con.execute(query).fetchall())
    finally:
        con.close()
    return tables


def file_stamps(warehouse: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every Parquet file, by path under the warehouse."""
    return {
        str(p.relative_to(warehouse)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in (warehouse / "parquet").rglob("*.parquet")
    }


def test_runs_in_pieces_give_the_tables_of_one_run_and_touch_only_their_days(kafka_bootstrap, tmp_path, key_file):
    prefix = f"i{uuid.uuid4().hex[:8]}."
    create_topics(kafka_bootstrap, prefix)
    ds = build_dataset(seed=31, subjects=40, days=3)
    rng = random.Random(31)
    # Each topic in three pieces, cut at random points: events arrive before and after the consent
    # changes that decide them (late consent, late minors' marks), across days.
    pieces: list[dict[str, list[bytes]]] = [{}, {}, {}]
    for topic, values in ds.messages.items():
        cuts = sorted(rng.sample(range(1, len(values)), 2)) if len(values) > 2 else [len(values)] * 2
        for i, (a, b) in enumerate(zip([0, *cuts], [*cuts, len(values)], strict=True)):
            pieces[i][topic] = values[a:b]
    warehouse = tmp_path / "wh"
    for piece in pieces:
        produce(kafka_bootstrap, prefix, piece)
        ingest(kafka_bootstrap, prefix, warehouse, key_file, "--k", "2")
    expected = {t: rounded(rows) for t, rows in expected_tables(ds, k=2).items()}
    assert sum(len(rows) for rows in expected.values()) > 20
    assert exact(read_tables(warehouse)) == exact(expected)
    assert parquet_tables(warehouse) == read_tables(warehouse)  # every day's file holds its day's rows

    # A new beacon on the last day rewrites that day's files only.
    before = file_stamps(warehouse)
    last_day = max(json.loads(m)["ts"][:10] for m in ds.messages["beacons.raw"])
    late = json.loads(ds.messages["beacons.raw"][-1]) | {"event_id": "late-1", "session_id": "s-late"}
    produce(kafka_bootstrap, prefix, {"beacons.raw": [json.dumps(late).encode()]})
    ds.add("beacons.raw", late)
    ingest(kafka_bootstrap, prefix, warehouse, key_file, "--k", "2")
    after = file_stamps(warehouse)
    local_day = datetime.fromisoformat(late["ts"].replace("Z", "+00:00")).astimezone(_shanghai()).date().isoformat()
    changed = {path for path in after if before.get(path) != after[path]}
    changed.remove("parquet/retention_weekly/data_0.parquet")  # one file, rebuilt whole by every run (README)
    assert changed and all(f"date={local_day}" in path for path in changed), changed
    assert any(f"date={local_day}" not in path for path in after)  # other days exist and stayed
    assert last_day  # the data set spans days
    expected = {t: rounded(rows) for t, rows in expected_tables(ds, k=2).items()}
    assert exact(read_tables(warehouse)) == exact(expected)
    assert parquet_tables(warehouse) == read_tables(warehouse)
    assert_day_indexes_cover_their_facts(warehouse)
    # a warehouse of an earlier version had no day indexes: opening it makes them from the facts
    for store, index in (("state", "subject_days"), ("state", "session_days"), ("security", "subject_days")):
        with duckdb.connect(str(warehouse / f"{store}.duckdb")) as con:
            con.execute(f"DROP TABLE {index}")
    Warehouse(warehouse).close()
    assert_day_indexes_cover_their_facts(warehouse)


def assert_day_indexes_cover_their_facts(warehouse: Path) -> None:
    """Each day index lists every (key, UTC day) its facts hold (a day listed without rows is
    allowed, one missing would make a run miss rows), and each key it lists has facts (an erased
    or a minor's pseudonym is gone from it with the rows)."""
    con = duckdb.connect()
    for path, alias in ((warehouse / "state.duckdb", "st"), (warehouse / "security.duckdb", "sec")):
        con.execute(f"ATTACH '{path}' AS {alias} (READ_ONLY)")
    for index, (facts, key, ts) in INDEXES.items():
        pairs = set(
            con.execute(
                f"SELECT DISTINCT {key}, CAST(timezone('UTC', {ts}) AS DATE) FROM {facts} WHERE {key} IS NOT NULL"
            ).fetchall()
        )
        listed = set(con.execute(f"SELECT {key}, day FROM {index}").fetchall())
        assert pairs, index
        assert pairs <= listed, (index, len(pairs - listed))
        assert {k for k, _ in listed} <= {k for k, _ in pairs}, index
    con.close()


def _shanghai():
    from zoneinfo import ZoneInfo

    return ZoneInfo("Asia/Shanghai")


def _view(n: int, ts: datetime, subject: str) -> bytes:
    return json.dumps(
        {"schema": "beacon/1", "event_id": f"w-{n}", "event": "page_view", "ts": ts.isoformat().replace("+00:00", "Z"),
         "anonymous_id": subject, "page": "/home"}
    ).encode()  # fmt: skip


def test_the_late_window_counts_old_events_without_applying_them_and_purges_their_facts(
    kafka_bootstrap, tmp_path, key_file
):
    prefix = f"l{uuid.uuid4().hex[:8]}."
    create_topics(kafka_bootstrap, prefix)
    day0 = datetime(2026, 11, 1, 4, tzinfo=UTC)
    warehouse = tmp_path / "wh"
    run = ("--k", "1", "--late-days", "3")
    produce(kafka_bootstrap, prefix, {"beacons.raw": [_view(i, day0, f"c-{i}") for i in range(3)]})
    ingest(kafka_bootstrap, prefix, warehouse, key_file, *run)
    first = read_tables(warehouse)["page_views_hourly"]
    assert [r[2] for r in first] == [3]

    # ten days later: day 0 closes, its facts go
    produce(kafka_bootstrap, prefix, {"beacons.raw": [_view(10, day0 + timedelta(days=10), "c-new")]})
    ingest(kafka_bootstrap, prefix, warehouse, key_file, *run)
    con = duckdb.connect(str(warehouse / "state.duckdb"), read_only=True)
    oldest = con.execute("SELECT min(ts) FROM analytics_events").fetchone()[0]
    con.close()
    assert oldest >= day0 + timedelta(days=9)

    # a late event for day 0 is counted, not applied; day 0's published row stays as it was
    produce(kafka_bootstrap, prefix, {"beacons.raw": [_view(20, day0, "c-late")]})
    out = ingest(kafka_bootstrap, prefix, warehouse, key_file, *run)
    assert "1 beacon events of days already closed" in out
    tables = read_tables(warehouse)["page_views_hourly"]
    assert {r for r in tables if r[0].date() == first.copy().pop()[0].date()} == first
    con = duckdb.connect(str(warehouse / "analytics.duckdb"), read_only=True)
    assert con.execute("SELECT sum(too_late) FROM ingest_runs").fetchone()[0] == 1
    con.close()


def test_an_event_sent_again_is_stored_once_and_its_id_at_another_time_is_another_event(
    kafka_bootstrap, tmp_path, key_file
):
    prefix = f"d{uuid.uuid4().hex[:8]}."
    create_topics(kafka_bootstrap, prefix)
    day0 = datetime(2026, 11, 1, 4, tzinfo=UTC)
    warehouse = tmp_path / "wh"
    # the store of an earlier version: a primary key on event_id; opening it drops the key, keeps the rows
    warehouse.mkdir()
    old = duckdb.connect(str(warehouse / "state.duckdb"))
    old.execute(ANALYTICS_EVENTS.ddl("main").removesuffix(");") + ", PRIMARY KEY (event_id));")
    old.close()
    # sent twice in one run, then again in a later run (with another event on another day)
    produce(kafka_bootstrap, prefix, {"beacons.raw": [_view(1, day0, "c-1"), _view(1, day0, "c-1")]})
    ingest(kafka_bootstrap, prefix, warehouse, key_file, "--k", "1")
    produce(
        kafka_bootstrap, prefix, {"beacons.raw": [_view(1, day0, "c-1"), _view(1, day0 + timedelta(days=1), "c-2")]}
    )
    ingest(kafka_bootstrap, prefix, warehouse, key_file, "--k", "1")
    con = duckdb.connect(str(warehouse / "state.duckdb"), read_only=True)
    stored = sorted(con.execute("SELECT ts FROM analytics_events").fetchall())
    ids = con.execute("SELECT count(DISTINCT event_id) FROM analytics_events").fetchone()[0]  # pseudonymized
    keys = con.execute("SELECT count(*) FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' "
                       "AND table_name = 'analytics_events'").fetchone()[0]  # fmt: skip
    con.close()
    assert stored == [(day0,), (day0 + timedelta(days=1),)] and ids == 1 and keys == 0
    con = duckdb.connect(str(warehouse / "analytics.duckdb"), read_only=True)
    assert con.execute("SELECT sum(duplicates), sum(events_stored) FROM ingest_runs").fetchone() == (2, 2)
    assert sorted(r[0] for r in con.execute("SELECT views FROM page_views_hourly").fetchall()) == [1, 1]
    con.close()


def _consent(ts: datetime, subject: str, analytics: str, **minor: object) -> bytes:
    change = {"schema": "consent/1", "ts": ts.isoformat().replace("+00:00", "Z"), "subject": {"anonymous_id": subject}}
    return json.dumps(change | {"analytics": analytics} | minor).encode()


def test_the_late_window_keeps_of_the_consent_ledger_only_what_decides_the_open_days(
    kafka_bootstrap, tmp_path, key_file
):
    """Before the open days each subject keeps its latest consent change, which still decides
    consent at the time of its events in the open days; the changes it superseded go."""
    prefix = f"c{uuid.uuid4().hex[:8]}."
    create_topics(kafka_bootstrap, prefix)
    day0 = datetime(2026, 11, 1, 4, tzinfo=UTC)
    warehouse = tmp_path / "wh"
    run = ("--k", "1", "--late-days", "3")
    hour = timedelta(hours=1)
    produce(
        kafka_bootstrap,
        prefix,
        {
            "consent.events": [
                _consent(day0, "c-a", "granted"),
                _consent(day0 + hour, "c-a", "withdrawn"),
                _consent(day0 + 2 * hour, "c-a", "granted"),  # a's latest before day 10's window
                _consent(day0 + hour, "c-b", "granted", minor=True, guardian_consent=None),
                _consent(day0 + 2 * hour, "c-b", "granted", minor=True, guardian_consent=True),
                _consent(day0 + hour, "c-c", "granted"),
                _consent(day0 + 2 * hour, "c-c", "withdrawn"),
            ],
            "beacons.raw": [_view(i, day0 + 3 * hour, s) for i, s in enumerate(("c-a", "c-b", "c-c"))],
        },
    )
    ingest(kafka_bootstrap, prefix, warehouse, key_file, *run)

    def ledger() -> list[str]:
        with duckdb.connect(str(warehouse / "state.duckdb"), read_only=True) as con:
            return [a for (a,) in con.execute("SELECT analytics FROM consent_changes ORDER BY ts").fetchall()]

    assert len(ledger()) == 7  # every change still decides an open day

    # ten days later (day 0 closes), then a late change for day 0, older than a's latest
    later = day0 + timedelta(days=10)
    produce(kafka_bootstrap, prefix, {"beacons.raw": [_view(10 + i, later, s) for i, s in enumerate(("c-a", "c-b", "c-c"))]})  # fmt: skip
    ingest(kafka_bootstrap, prefix, warehouse, key_file, *run)
    assert sorted(ledger()) == ["granted", "granted", "withdrawn"]  # one change per subject
    produce(kafka_bootstrap, prefix, {"consent.events": [_consent(day0 + hour / 2, "c-a", "withdrawn")]})
    ingest(kafka_bootstrap, prefix, warehouse, key_file, *run)
    assert sorted(ledger()) == ["granted", "granted", "withdrawn"]

    # day 10 counted a (granted), b (a minor with a guardian's consent), not c (withdrawn)
    day10 = [r for r in read_tables(warehouse)["page_views_daily"] if r[0] == later.date()]
    assert [(r[2], r[3]) for r in day10] == [(3, 2)]  # views, visitors
