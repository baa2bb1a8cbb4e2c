"""The warehouse: three DuckDB files and the analysts' Parquet copy.

- `state.duckdb` (restricted, the pipeline's own): analytics facts per event under analytics
  pseudonyms, the consent ledger, erasures, and the Kafka positions already stored. Its
  transaction is a run's commit point.
- `security.duckdb` (restricted, the security team's): pseudonymized security events (R11), the
  anomalies found, the dead letters, and the minor/erasure flags under security pseudonyms.
- `analytics.duckdb` + `parquet/` (analysts'): de-identified aggregates only (R1, R4),
  re-materialized from `state.duckdb` after every run, so that they are always the same function
  of the stored facts: exact distinct visitors across runs, suppression that sees the whole cell,
  late events, late consent and a minor's deletion that reach every day.

A run commits in numbered steps (quix-streams' `Checkpoint.commit`; `Warehouse.commit_run` lists
them): 1. the staged files, 2. idempotent writes to `security.duckdb`, 3. `state.duckdb` with the
run's offset ranges in the same transaction (the commit point), 4. the aggregates of the dirty
days (`materialize`), 5. (by the caller) the Kafka offsets. A crash anywhere repeats at most the
uncommitted ranges, and repeating them changes nothing (keys: an event's id and time, the source
position).
The privacy rules these steps run are `transforms/`' (`cells`, `consent`): the sink stores.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from dashboards.views import create_views
from schemas.staged import STAGED_SCHEMAS, OffsetRange
from schemas.tables import ANALYTICS_EVENTS, SECURITY_EVENTS, TableSpec
from seaport.errors import SeaportError
from sinks.quality import validate_publish
from transforms.cells import (
    ANALYTICS_TABLES,
    RETENTION_WEEKS,
    cell_queries,
    count_suppressed,
    publish_retention,
    suppress_small_cells,
)
from transforms.consent import (
    blocks_join,
    blocks_sql,
    events_with_consent_sql,
    forget_superseded_consent,
    minor_blocks_sql,
    unlink_erased_subjects,
    withhold_profiles_without_consent,
)
from transforms.deadlines import due_by
from transforms.holds import held_sql, holds_table, load_holds

# DuckDB's buffers, beside the ingest's ~350 MiB of Python (Beam, Great Expectations, pandas). In
# the 10 M-event bench ingest the driver reached 1,432 MiB storing and publishing at 1 GB, and
# 1,224 MiB at 768 MB (under the ~1,330 MiB of the driver and Beam's two workers reading).
MEMORY_LIMIT = "768MB"
LATE_DAYS = 7  # the default late window (`--late-days`)
# The most stored events one step of the aggregates' rebuild reads (its days' events, with
# their sessions' events, are held in memory together).
CHUNK_EVENTS = 500_000
# The day indexes: the UTC days on which a subject (or a session) has rows in a store. A statement
# about a few subjects reads only the row groups of their days (by the zone maps of the event
# times), not a column of every stored event. An index may list a day without rows (it costs a
# little), never miss one: pairs go in with the facts, and out only with their day (the late
# window, retention) or after their key's rows were deleted or unlinked. index -> (facts, key, time)
INDEXES: dict[str, tuple[str, str, str]] = {
    "st.subject_days": ("st.analytics_events", "subject_pseudonym", "ts"),
    "st.session_days": ("st.analytics_events", "session_pseudonym", "ts"),
    "sec.subject_days": ("sec.security_events", "subject_pseudonym", "event_time"),
}

# An erasure request's receipt (R8), per store and table: the rows it deleted, scrubbed or
# unlinked, and the rows a legal hold kept (with the holds' names and reasons).
_RECEIPTS_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.erasure_receipts (
    source_partition INTEGER, source_offset BIGINT, store VARCHAR, table_name VARCHAR, action VARCHAR,
    rows BIGINT, held BIGINT, holds VARCHAR, PRIMARY KEY (source_partition, source_offset, table_name));"""

_STATE_DDL = (
    ANALYTICS_EVENTS.ddl("st")
    + """
CREATE TABLE IF NOT EXISTS st.consent_changes (
    source_partition INTEGER, source_offset BIGINT, subject_pseudonym VARCHAR, ts TIMESTAMPTZ,
    analytics VARCHAR, minor_without_guardian BOOLEAN, key_id VARCHAR,
    PRIMARY KEY (source_partition, source_offset));
CREATE TABLE IF NOT EXISTS st.erasures (
    source_partition INTEGER, source_offset BIGINT, request_id VARCHAR, subject_kind VARCHAR,
    subject_pseudonym VARCHAR, requested_at TIMESTAMPTZ, processed_at TIMESTAMPTZ, key_id VARCHAR,
    PRIMARY KEY (source_partition, source_offset));
CREATE TABLE IF NOT EXISTS st.positions (
    topic VARCHAR, partition INTEGER, next_offset BIGINT, PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS st.runs (
    run_id VARCHAR PRIMARY KEY, started_at TIMESTAMPTZ, committed_at TIMESTAMPTZ,
    offset_ranges VARCHAR, messages BIGINT, valid BIGINT, deadletters BIGINT, duplicates BIGINT,
    events_stored BIGINT, consent_changes BIGINT, erasure_requests BIGINT, redactions VARCHAR,
    kafka_client VARCHAR, runner VARCHAR, policy_version VARCHAR);
ALTER TABLE st.runs ADD COLUMN IF NOT EXISTS too_late BIGINT DEFAULT 0;
CREATE TABLE IF NOT EXISTS st.dirty_days (day DATE PRIMARY KEY);
CREATE TABLE IF NOT EXISTS st.watermark (ts TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS st.visitor_days (
    subject_pseudonym VARCHAR, day DATE, policy_version VARCHAR, PRIMARY KEY (subject_pseudonym, day));
"""
    + _RECEIPTS_DDL.format(schema="st")
)

_SECURITY_DDL = (
    SECURITY_EVENTS.ddl("sec")
    + """
CREATE TABLE IF NOT EXISTS sec.security_anomalies (
    day DATE, kind VARCHAR, subject_pseudonym VARCHAR, score DOUBLE, details VARCHAR);
CREATE TABLE IF NOT EXISTS sec.deadletters (
    source_topic VARCHAR, source_partition INTEGER, source_offset BIGINT, reason VARCHAR,
    subject_pseudonym VARCHAR, payload VARCHAR, stored_at TIMESTAMPTZ,
    PRIMARY KEY (source_topic, source_partition, source_offset));
CREATE TABLE IF NOT EXISTS sec.minor_flags (
    source_partition INTEGER, source_offset BIGINT, subject_pseudonym VARCHAR, ts TIMESTAMPTZ,
    minor_without_guardian BOOLEAN, PRIMARY KEY (source_partition, source_offset));
CREATE TABLE IF NOT EXISTS sec.erasures (
    source_partition INTEGER, source_offset BIGINT, subject_pseudonym VARCHAR, requested_at TIMESTAMPTZ,
    PRIMARY KEY (source_partition, source_offset));
"""
    + _RECEIPTS_DDL.format(schema="sec")
)

@dataclass
class RunSummary:
    """What one run read, stored and published; also its `ingest_runs` row."""

    run_id: str
    started_at: datetime
    ranges: list[OffsetRange]
    kafka_client: str = ""
    runner: str = ""
    policy_version: str = ""
    messages: int = 0
    valid: int = 0
    deadletters: int = 0
    duplicates: int = 0
    events_stored: int = 0
    consent_changes: int = 0
    erasure_requests: int = 0
    too_late: int = 0  # valid beacons of days closed before the run: counted, not applied
    redactions: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    suppressed: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase

    def ranges_json(self) -> str:
        return json.dumps(
            [{k: v for k, v in asdict(r).items() if k != "kafka_topic"} for r in self.ranges if r.end > r.start]
        )


class WarehouseBusy(SeaportError):
    """Another process has one of the warehouse's DuckDB files open (DuckDB locks whole files)."""


class QualityGateFailed(SeaportError):
    """What a run was about to publish broke an expectation: nothing of it was published."""


class Warehouse:
    """One warehouse folder, opened by one run at a time (DuckDB's file lock enforces it)."""

    def __init__(
        self,
        root: Path,
        tz: str = "Asia/Shanghai",
        k: int = 5,
        late_days: int = LATE_DAYS,
        security_dir: Path | None = None,
        chunk_events: int = CHUNK_EVENTS,
    ):
        self.root = Path(root)
        self.chunk_events = chunk_events
        self.security_dir = Path(security_dir) if security_dir else self.root
        self.tz = tz
        self.k = k
        self.late_days = late_days
        try:
            for folder in {self.root, self.security_dir}:
                folder.mkdir(parents=True, exist_ok=True)
            if self.security_dir != self.root:
                self.security_dir.chmod(0o700)
        except OSError as e:
            raise SeaportError(f"cannot use {self.root} as a warehouse folder: {e.strerror}") from None
        try:
            self.con = duckdb.connect(str(self.root / "analytics.duckdb"))
        except duckdb.IOException:
            raise WarehouseBusy(f"the warehouse {self.root} is in use by another process") from None
        try:
            for path, alias in ((self.root / "state.duckdb", "st"), (self.security_dir / "security.duckdb", "sec")):
                self.con.execute(f"ATTACH '{_sql_str(str(path))}' AS {alias}")
                path.chmod(0o600)  # R12: the owner's only (`seaport` runs with umask 0077 for the rest)
        except duckdb.IOException:
            self.con.close()
            raise WarehouseBusy(f"the warehouse {self.root} is in use by another process") from None
        self.con.execute(f"SET TimeZone = '{_sql_str(tz)}'")
        # Past this, DuckDB spills joins and sorts to `<file>.tmp` beside the store: a run's memory
        # does not grow with what it reads or with what is stored.
        self.con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        existing = {
            f"{d}.{t}" for d, t in self.con.execute("SELECT database_name, table_name FROM duckdb_tables()").fetchall()
        }
        self.con.execute(_STATE_DDL)
        self.con.execute(_SECURITY_DDL)
        for alias, spec in (("st", ANALYTICS_EVENTS), ("sec", SECURITY_EVENTS)):
            self._drop_primary_key(alias, spec)
        for index, (facts, key, _) in INDEXES.items():  # new, or new to a store of an earlier version
            if index not in existing:
                self.con.execute("BEGIN")
                self.con.execute(f"CREATE TABLE {index} ({key} VARCHAR, day DATE)")
                self._index(index, facts)
                self.con.execute("COMMIT")

    def close(self) -> None:
        self.con.close()

    def _drop_primary_key(self, alias: str, spec: TableSpec) -> None:
        """A store made by an earlier version indexed every event (a primary key on `event_id`,
        in memory, growing with the store); the commit keeps the key itself now (`insert_new`),
        so the table is copied once without it."""
        con, name = self.con, f"{alias}.{spec.name}"
        keyed = self._scalar(
            """SELECT count(*) FROM duckdb_constraints() WHERE database_name = ? AND table_name = ?
                 AND constraint_type = 'PRIMARY KEY'""",
            [alias, spec.name],
        )
        if keyed:
            con.execute("BEGIN")
            con.execute(f"CREATE TABLE {name}_unkeyed AS SELECT * FROM {name}")
            con.execute(f"DROP TABLE {name}")
            con.execute(f"ALTER TABLE {name}_unkeyed RENAME TO {spec.name}")
            con.execute("COMMIT")

    def _on_days_of(self, column: str, instants: str) -> str:
        """SQL: whether the instant `column` falls on a UTC day of an instant of the query
        `instants` (one column), as literal ranges: DuckDB reads only the row groups whose zone
        maps meet them, so a statement's cost follows the days it touches."""
        days = self.con.execute(
            f"SELECT DISTINCT CAST(timezone('UTC', i) AS DATE) FROM ({instants}) t(i) WHERE i IS NOT NULL ORDER BY 1"
        ).fetchall()
        return _days_sql(column, [d for (d,) in days])

    def _index(self, index: str, rows: str) -> None:
        """Adds to `index` the (key, UTC day) pairs of `rows` (a table or query shaped like its
        facts) that it lacks."""
        _, key, ts = INDEXES[index]
        self.con.execute(  # `rows` (staged files, a join) is read once
            f"""CREATE OR REPLACE TEMP TABLE index_pairs AS
                SELECT DISTINCT {key}, CAST(timezone('UTC', {ts}) AS DATE) AS day FROM {rows} WHERE {key} IS NOT NULL"""
        )
        self.con.execute(
            f"""INSERT INTO {index} SELECT * FROM index_pairs
                EXCEPT SELECT {key}, day FROM {index} WHERE day IN (SELECT day FROM index_pairs)"""
        )
        self.con.execute("DROP TABLE index_pairs")

    def _on_days_of_keys(self, column: str, index: str, keys: str) -> str:
        """SQL: whether the instant `column` falls on a UTC day `index` lists for a key of the
        query `keys` (as `_on_days_of`: DuckDB reads only those days' row groups)."""
        key = INDEXES[index][1]
        days = self.con.execute(f"SELECT DISTINCT day FROM {index} WHERE {key} IN ({keys}) ORDER BY 1").fetchall()
        return _days_sql(column, [d for (d,) in days])

    def _reindex(self, index: str, keys: str, on_their_days: str) -> None:
        """The pairs of the keys of query `keys` again, from their rows left (after a delete);
        `on_their_days`: `_on_days_of_keys` for them over the facts aliased `e`, taken before it."""
        facts, key, _ = INDEXES[index]
        self.con.execute(f"DELETE FROM {index} WHERE {key} IN ({keys})")
        self._index(index, f"(SELECT * FROM {facts} e WHERE {key} IN ({keys}) AND {on_their_days})")

    def insert_new(self, spec: TableSpec, schema: str, source: str) -> int:
        """Inserts the rows of `source` (a query over staged rows) whose key is not stored yet, the
        first by source position of each key; returns how many. The key names one event at its
        own time, so only the stored rows of the UTC days of `source`'s times can hold it: those
        are found by DuckDB's zone maps, and the cost follows the days touched, not the store.
        Keys sent more than once in the run (a few percent) are found by one hash aggregate; every
        other row goes in as it is, in its staged order (no sort, no window over the run)."""
        event_id, ts = spec.key
        # the repeated keys first, on their own (a few percent of the rows): in the insert, a CTE
        # read by both the aggregate and the insert held every staged row in memory, and spilled
        self.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE repeated AS
                SELECT {event_id}, {ts}, min((_partition, _offset)) AS first FROM {source}
                GROUP BY ALL HAVING count(*) > 1"""
        )
        inserted = self._scalar(
            f"""INSERT INTO {schema}.{spec.name} BY NAME
                SELECT s.* EXCLUDE (_partition, _offset) FROM {source} s
                ANTI JOIN (SELECT {event_id}, {ts} FROM {schema}.{spec.name}
                           WHERE {self._on_days_of(ts, f"SELECT {ts} FROM {source}")}) e
                       ON e.{event_id} = s.{event_id} AND e.{ts} = s.{ts}
                ANTI JOIN repeated r
                       ON r.{event_id} IS NOT DISTINCT FROM s.{event_id} AND r.{ts} IS NOT DISTINCT FROM s.{ts}
                      AND r.first <> (s._partition, s._offset)"""
        )
        self.con.execute("DROP TABLE repeated")
        return inserted

    def _scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        # fetchall, not fetchone: DuckDB 2.0 refuses other work while a result is unfinished
        return self.con.execute(sql, params or []).fetchall()[0][0]

    def positions(self) -> dict[tuple[str, int], int]:
        """The next offset to read per (topic, partition), as stored with the data."""
        rows = self.con.execute("SELECT topic, partition, next_offset FROM st.positions").fetchall()
        return {(t, p): o for t, p, o in rows}

    # -- the commit ----------------------------------------------------------------------------
    def commit_run(self, summary: RunSummary, staging: Path, gated_columns: list[str], retention_days: int) -> None:
        """Store a run's staged files, in numbered steps; a run that dies between any two is
        repeated from step 1 and ends the same (each step's writes are keyed, or replace):

        1. the staged files and the legal holds in force, as views of this connection;
        2. security.duckdb, one transaction: erasure receipts, erasures, minors' marks, dead
           letters, security events, what consent and erasure now block, retention;
        3. state.duckdb with the positions, one transaction — the commit point: receipts,
           erasures, consent changes, the watermark, analytics facts, the dirty days, minors,
           erased subjects unlinked, profiles withheld, the late window, positions and the run.

        Then `materialize` (4: the dirty days' aggregates) and the caller commits the Kafka
        offsets (5)."""
        now = datetime.now(UTC)
        self._stage(staging)
        self._store_security(summary, now, retention_days)
        self._store_state(summary, now, gated_columns)

    def _stage(self, staging: Path) -> None:
        """Step 1: views `staged_<kind>` of the run's staged files, and the legal holds in force."""
        con = self.con
        for kind, schema in STAGED_SCHEMAS.items():
            files = sorted((staging / kind).glob("*.parquet"))
            if files:
                listed = ", ".join(f"'{_sql_str(str(f))}'" for f in files)
                con.execute(f"CREATE OR REPLACE TEMP VIEW staged_{kind} AS SELECT * FROM read_parquet([{listed}])")
            else:
                con.register(f"empty_{kind}", schema.empty_table())
                con.execute(f"CREATE OR REPLACE TEMP VIEW staged_{kind} AS SELECT * FROM empty_{kind}")
        con.register("legal_holds_given", holds_table(load_holds(self.root)))
        con.execute("CREATE OR REPLACE TEMP TABLE legal_holds AS SELECT * FROM legal_holds_given")

    def _store_security(self, summary: RunSummary, now: datetime, retention_days: int) -> None:
        """Step 2: security.duckdb, in one transaction (inserts keyed: a repeat changes nothing)."""
        con = self.con
        con.execute("BEGIN")
        # receipts first: what this run's erasure requests find before anything is removed (R8)
        for table, action, day in (
            ("security_events", "deleted", self._day("t.event_time")),
            ("security_anomalies", "deleted", "t.day"),
            ("deadletters", "scrubbed", None),
            ("minor_flags", "deleted", None),
        ):
            con.execute(self._receipt_sql("sec", "security", table, action, "security_pseudonym", day))
        con.execute(
            """INSERT INTO sec.erasures SELECT source_partition, source_offset, security_pseudonym, requested_at
               FROM staged_erasure ON CONFLICT DO NOTHING"""
        )
        # A minor mark is personal data too: an erased subject's go, and a replay brings none back
        # (the erasure list blocks everything of theirs without them).
        con.execute(
            """INSERT INTO sec.minor_flags SELECT source_partition, source_offset, security_pseudonym, ts,
                   minor_without_guardian FROM staged_consent
               WHERE security_pseudonym NOT IN (SELECT subject_pseudonym FROM sec.erasures)
               ON CONFLICT DO NOTHING"""
        )
        con.execute(
            "DELETE FROM sec.minor_flags WHERE subject_pseudonym IN (SELECT subject_pseudonym FROM sec.erasures)"
        )
        con.execute("CREATE OR REPLACE TEMP TABLE blocked_sec AS " + blocks_sql("sec.minor_flags", "sec.erasures"))
        con.execute(
            """INSERT INTO sec.deadletters SELECT *, ?::TIMESTAMPTZ FROM staged_deadletter
               ORDER BY source_topic, source_partition, source_offset ON CONFLICT DO NOTHING""",
            [now],
        )
        con.execute(
            """UPDATE sec.deadletters SET subject_pseudonym = NULL, payload = NULL
               WHERE subject_pseudonym IN (SELECT subject_pseudonym FROM blocked_sec)"""
        )
        kept = f"(SELECT s.* FROM staged_security s {blocks_join('ANTI', 'blocked_sec', 's', 'event_time')})"
        inserted = self.insert_new(SECURITY_EVENTS, "sec", kept)
        self._index("sec.subject_days", kept)
        summary.duplicates = self._scalar(f"SELECT count(*) FROM {kept}") - inserted  # seen before, here or earlier
        # stored events newly blocked: only subjects named by this run's consent changes and erasures
        con.execute(
            """CREATE OR REPLACE TEMP TABLE newly_blocked_sec AS SELECT * FROM blocked_sec
               WHERE subject_pseudonym IN (SELECT security_pseudonym FROM staged_consent
                                           UNION SELECT security_pseudonym FROM staged_erasure)"""
        )
        blocked = "SELECT subject_pseudonym FROM newly_blocked_sec"
        on_their_days = self._on_days_of_keys("e.event_time", "sec.subject_days", blocked)
        con.execute(
            f"""DELETE FROM sec.security_events WHERE (event_id, event_time) IN (
                SELECT e.event_id, e.event_time FROM sec.security_events e
                {blocks_join("SEMI", "newly_blocked_sec", "e", "event_time")}
                WHERE {on_their_days}
                  AND NOT {self._held("e.subject_pseudonym", self._day("e.event_time"))})"""
        )
        self._reindex("sec.subject_days", blocked, on_their_days)
        # a finding names a subject, not a time: any block removes it (the report re-derives the rest)
        con.execute(
            f"""DELETE FROM sec.security_anomalies
                WHERE subject_pseudonym IN (SELECT subject_pseudonym FROM blocked_sec)
                  AND NOT {self._held("security_anomalies.subject_pseudonym", "security_anomalies.day")}"""
        )
        for table, column, day in (
            ("security_events", "event_time", self._day("security_events.event_time")),
            ("security_anomalies", "day", "security_anomalies.day"),
            ("deadletters", "stored_at", None),
        ):
            kept = f"AND NOT {self._held(f'{table}.subject_pseudonym', day)}" if day else ""
            con.execute(
                f"""DELETE FROM sec.{table}
                    WHERE {column} < ?::TIMESTAMPTZ - INTERVAL {int(retention_days)} DAY {kept}""",
                [now],
            )
        # the index's UTC days wholly before the cutoff, but where a hold keeps rows of the subject
        # on a local day the UTC day overlaps
        held = " OR ".join(self._held("i.subject_pseudonym", f"i.day + {d}") for d in (-1, 0, 1))
        con.execute(
            f"""DELETE FROM sec.subject_days i
                WHERE day < CAST(timezone('UTC', ?::TIMESTAMPTZ - INTERVAL {int(retention_days)} DAY) AS DATE)
                  AND NOT ({held})""",
            [now],
        )
        # the marks that decide nothing inside the retention window (as the late window trims the ledger)
        forget_superseded_consent(
            con, "sec.minor_flags", f"'{now.isoformat()}'::TIMESTAMPTZ - INTERVAL {int(retention_days)} DAY"
        )
        con.execute("COMMIT")

    def _store_state(self, summary: RunSummary, now: datetime, gated_columns: list[str]) -> None:
        """Step 3, the commit point: state.duckdb with the positions, in one transaction."""
        con = self.con
        con.execute("BEGIN")
        for table in ("analytics_events", "consent_changes", "visitor_days"):
            con.execute(self._receipt_sql("st", "state", table, "unlinked", "analytics_pseudonym", None))
        con.execute(
            """INSERT INTO st.erasures SELECT source_partition, source_offset, request_id, subject_kind,
                   analytics_pseudonym, requested_at, ?, key_id FROM staged_erasure ON CONFLICT DO NOTHING""",
            [now],
        )
        con.execute(
            """INSERT INTO st.consent_changes SELECT source_partition, source_offset, analytics_pseudonym, ts,
                   analytics, minor_without_guardian, key_id FROM staged_consent
               WHERE analytics_pseudonym NOT IN (SELECT subject_pseudonym FROM st.erasures)
               ON CONFLICT DO NOTHING"""
        )
        opened = self._advance_watermark(now)
        summary.too_late = self._scalar(f"SELECT count(*) FROM staged_analytics WHERE ts < {opened}")
        con.execute("CREATE OR REPLACE TEMP TABLE blocked_st AS " + blocks_sql("st.consent_changes", "st.erasures"))
        kept = f"(SELECT a.* FROM staged_analytics a {blocks_join('ANTI', 'blocked_st', 'a', 'ts')} WHERE a.ts >= {opened})"
        summary.events_stored = self.insert_new(ANALYTICS_EVENTS, "st", kept)
        for index in ("st.subject_days", "st.session_days"):
            self._index(index, kept)
        # What this run changes, and nothing else (its cost follows what is new): the days of its
        # events and of every event of the subjects whose consent changed (consent at event time,
        # minors, profiles), and the first day of each session among them (a session's figures
        # belong to the day it starts). Erasure unlinks rows without moving any figure (R8).
        con.execute(
            """CREATE OR REPLACE TEMP TABLE changed_subjects AS
               SELECT DISTINCT analytics_pseudonym AS subject_pseudonym FROM staged_consent"""
        )
        changed = "SELECT subject_pseudonym FROM changed_subjects"
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE changed_events AS
                SELECT ts, session_pseudonym FROM staged_analytics WHERE ts >= {opened}
                UNION ALL SELECT ts, session_pseudonym FROM st.analytics_events
                WHERE subject_pseudonym IN ({changed}) AND {self._on_days_of_keys("ts", "st.subject_days", changed)}"""
        )
        sessions = "SELECT session_pseudonym FROM changed_events"
        con.execute(
            f"""INSERT INTO st.dirty_days
                SELECT DISTINCT {self._day("ts")} FROM changed_events
                UNION SELECT min({self._day("ts")}) FROM st.analytics_events
                      WHERE session_pseudonym IN ({sessions})
                        AND {self._on_days_of_keys("ts", "st.session_days", sessions)}
                      GROUP BY session_pseudonym
                ON CONFLICT DO NOTHING"""
        )
        # minors' rows go; an erased subject's stay, unlinked below, so published aggregates stay (R8)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE minors_st AS SELECT * FROM ("
            + minor_blocks_sql("st.consent_changes")
            + ") WHERE subject_pseudonym IN (SELECT subject_pseudonym FROM changed_subjects)"
        )
        minors = "SELECT subject_pseudonym FROM minors_st"
        on_minors_days = self._on_days_of_keys("ts", "st.subject_days", minors)
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE minor_sessions AS SELECT DISTINCT session_pseudonym
                FROM st.analytics_events WHERE subject_pseudonym IN ({minors}) AND {on_minors_days}"""
        )
        minor_sessions = "SELECT session_pseudonym FROM minor_sessions"
        on_sessions_days = self._on_days_of_keys("ts", "st.session_days", minor_sessions)
        con.execute(
            f"""DELETE FROM st.analytics_events WHERE (event_id, ts) IN (SELECT e.event_id, e.ts FROM st.analytics_events e
                {blocks_join("SEMI", "minors_st", "e", "ts")} WHERE {on_minors_days})"""
        )
        self._reindex("st.subject_days", minors, on_minors_days)
        self._reindex("st.session_days", minor_sessions, on_sessions_days)
        con.execute(  # and the days they visited, kept for retention (closed days too)
            f"""DELETE FROM st.visitor_days v USING minors_st b
                WHERE v.subject_pseudonym = b.subject_pseudonym AND v.day <= {self._day("b.blocked_until")}"""
        )
        unlink_erased_subjects(con, self._on_days_of_keys)
        withhold_profiles_without_consent(con, gated_columns, self._on_days_of, self._on_days_of_keys)
        # The late window: facts of closed days are personal data with no purpose left (they can no
        # longer change a published cell), so they go.
        con.execute(f"DELETE FROM st.analytics_events WHERE ts < {opened}")
        for index in ("st.subject_days", "st.session_days"):  # the UTC days wholly before it
            con.execute(f"DELETE FROM {index} WHERE day < CAST(timezone('UTC', {opened}) AS DATE)")
        forget_superseded_consent(con, "st.consent_changes", opened)
        for r in summary.ranges:
            con.execute("INSERT OR REPLACE INTO st.positions VALUES (?, ?, ?)", [r.topic, r.partition, r.end])
        # by name: each column of st.runs that a RunSummary field of that name fills (the DDL decides)
        columns = {c for (c,) in con.execute("SELECT column_name FROM (DESCRIBE st.runs)").fetchall()}
        run = {k: v for k, v in asdict(summary).items() if k in columns}
        run |= {
            "committed_at": now,
            "offset_ranges": summary.ranges_json(),
            "redactions": json.dumps(summary.redactions, sort_keys=True),
        }
        names = ", ".join(run)
        con.execute(
            f"INSERT OR REPLACE INTO st.runs ({names}) VALUES ({', '.join('?' * len(run))})", list(run.values())
        )
        con.execute("COMMIT")

    def _held(self, subject: str, day: str) -> str:
        """SQL: whether a legal hold in force covers a security row of `subject` on `day`."""
        return f"EXISTS (SELECT 1 FROM legal_holds h WHERE {held_sql('h', subject, day)})"

    def _receipt_sql(self, schema: str, store: str, table: str, action: str, pseudonym: str, day: str | None) -> str:
        """SQL: the receipt lines of this run's erasure requests for one table (R8): the rows of
        the subject it is about to `action`, and those a legal hold keeps (if `day`, SQL for
        the day of a row `t`, says the table can be held). Of a table of facts, only the rows on
        the subjects' days are read (the day index)."""
        rows, index = f"{schema}.{table}", f"{schema}.subject_days"
        facts, _, time = INDEXES[index]
        if rows == facts:
            on_days = self._on_days_of_keys(time, index, f"SELECT {pseudonym} FROM staged_erasure")
            rows = f"(SELECT * FROM {facts} WHERE {on_days})"
        holds = (
            f"""(SELECT string_agg(DISTINCT h.name || ': ' || h.reason, '; ' ORDER BY h.name || ': ' || h.reason)
                 FROM legal_holds h WHERE {held_sql("h", "t.subject_pseudonym", day)})"""
            if day
            else "NULL"
        )
        return f"""INSERT INTO {schema}.erasure_receipts
            WITH x AS (SELECT r.source_partition, r.source_offset, t.subject_pseudonym AS s, {holds} AS holds
                       FROM staged_erasure r LEFT JOIN {rows} t ON t.subject_pseudonym = r.{pseudonym})
            SELECT source_partition, source_offset, '{store}', '{table}', '{action}',
                   count(s) FILTER (WHERE holds IS NULL), count(holds), string_agg(DISTINCT holds, '; ' ORDER BY holds)
            FROM x GROUP BY source_partition, source_offset
            ON CONFLICT DO NOTHING"""

    def _day(self, instant: str) -> str:
        """SQL: the calendar day of an instant in the warehouse's time zone."""
        return f"CAST(timezone('{_sql_str(self.tz)}', {instant}) AS DATE)"

    def _day_start(self, day: str) -> str:
        """SQL: the instant a calendar day starts in the warehouse's time zone."""
        return f"timezone('{_sql_str(self.tz)}', CAST({day} AS TIMESTAMP))"

    def _advance_watermark(self, now: datetime) -> str:
        """Moves the watermark (the latest event time seen, never past the clock) to this run's
        events; returns SQL for the instant the open days start: `late_days` days before the
        watermark's day. Events, consent and erasures for earlier days no longer change a
        published cell."""
        con = self.con
        con.execute(
            """CREATE OR REPLACE TEMP TABLE new_watermark AS
               SELECT greatest((SELECT max(ts) FROM st.watermark),
                               (SELECT max(least(ts, ?::TIMESTAMPTZ)) FROM staged_analytics)) AS ts""",
            [now],
        )
        con.execute("DELETE FROM st.watermark")
        con.execute("INSERT INTO st.watermark SELECT ts FROM new_watermark WHERE ts IS NOT NULL")
        first_open_day = f"{self._day('ts')} - {int(self.late_days)}"
        return f"coalesce((SELECT {self._day_start(first_open_day)} FROM st.watermark), '-infinity'::TIMESTAMPTZ)"

    # -- the analysts' tables --------------------------------------------------------------------
    def materialize(self, summary: RunSummary | None = None) -> dict[str, int]:
        """Rebuild the aggregates of the days the committed runs changed (`st.dirty_days`) from the
        stored facts, suppressing cells of fewer than k distinct subjects (R4), and replace those
        days' Parquet partitions. Returns rows per table.

        Exact because every figure is per hour or per day: a day's cells are a function of that
        day's facts (a session's, of its sessions' facts, on the day it starts). A crash anywhere
        leaves the dirty days listed, and rebuilding a day twice gives the same rows."""
        con = self.con
        k = int(self.k)
        con.execute(_ANALYTICS_DDL)
        settings = [k, self.tz]
        if con.execute("SELECT k, tz FROM main.materialized_with").fetchall() != [tuple(settings)]:
            # another k or time zone: every day that still has facts is rebuilt under it
            con.execute(f"INSERT INTO st.dirty_days SELECT DISTINCT {self._day('ts')} FROM st.analytics_events "
                        "ON CONFLICT DO NOTHING")  # fmt: skip
        # The days to rebuild (the commit listed the first days of the sessions it changed too),
        # a chunk of days at a time: a big run's events need not fit in memory at once.
        con.execute("CREATE OR REPLACE TEMP TABLE dirty AS SELECT day FROM st.dirty_days")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE visitors (subject_pseudonym VARCHAR, day DATE, policy_version VARCHAR)"
        )
        cells = cell_queries(k)
        run_days: list[Any] = []
        con.execute("BEGIN")
        for chunk in self._day_chunks():
            con.execute("CREATE OR REPLACE TEMP TABLE days AS SELECT unnest(?::DATE[]) AS day", [chunk])
            run_days += self._rebuild_days(cells, k)
        con.execute("CREATE OR REPLACE TEMP TABLE days AS SELECT day FROM dirty")
        # The consenting visitors per day as the state will hold them (below), for retention
        con.execute(
            """CREATE OR REPLACE TEMP TABLE retained_visitors AS
               SELECT * FROM st.visitor_days WHERE day NOT IN (SELECT day FROM days)
               UNION ALL SELECT * FROM visitors"""
        )
        con.execute(f"DELETE FROM retained_visitors WHERE day < ({self._first_retained_day('retained_visitors')})")
        publish_retention(con, k, "retained_visitors")
        listed = ", ".join(f"('{t}')" for t in ANALYTICS_TABLES)
        con.execute(
            f"""CREATE OR REPLACE TABLE main.suppressed_cells AS
                SELECT t.table_name, coalesce(sum(s.cells), 0)::BIGINT AS cells,
                       coalesce(sum(s.events), 0)::BIGINT AS events
                FROM (VALUES {listed}) t(table_name) LEFT JOIN main.suppressed_cells_daily s USING (table_name)
                GROUP BY ALL ORDER BY ALL"""
        )
        # per table and day: what its cells counted, and the share its published rows hold
        con.execute(
            """CREATE OR REPLACE TABLE main.coverage_daily AS
               SELECT table_name, day, counted, published,
                      CASE WHEN counted > 0 THEN round(published / counted, 4) END AS coverage
               FROM main.suppressed_cells_daily ORDER BY ALL"""
        )
        con.execute("DELETE FROM main.materialized_with")
        con.execute("INSERT INTO main.materialized_with VALUES (?, ?)", settings)
        self._copy_bookkeeping()
        create_views(con)  # the analysts' documented views (dashboards/sql/)
        self._quality_gate(k, run_days)
        con.execute("COMMIT")
        # The state's own transaction, after the aggregates' (one transaction writes one database):
        # a crash between the two leaves the days dirty, and their rebuild gives the same rows.
        con.execute("BEGIN")
        con.execute("DELETE FROM st.visitor_days WHERE day IN (SELECT day FROM days)")
        con.execute("INSERT INTO st.visitor_days SELECT * FROM visitors")
        con.execute(f"DELETE FROM st.visitor_days WHERE day < ({self._first_retained_day('st.visitor_days')})")
        con.execute("COMMIT")
        con.execute("DROP TABLE visitors")
        con.execute("DROP TABLE retained_visitors")
        days = [d for (d,) in con.execute("SELECT day FROM days ORDER BY day").fetchall()]
        self._export_parquet(days)
        # only now are these days done: a crash before this line rebuilds them again
        con.execute("DELETE FROM st.dirty_days WHERE day IN (SELECT day FROM days)")
        rows = {t: self._scalar(f"SELECT count(*) FROM main.{t}") for t in ANALYTICS_TABLES}
        if summary is not None:
            summary.rows = rows
            summary.suppressed = dict(con.execute("SELECT table_name, cells FROM main.suppressed_cells").fetchall())
        return rows

    def _day_chunks(self) -> list[list[Any]]:
        """The days of temp table `dirty`, in order, in chunks of at most `chunk_events` stored
        events (a bigger day is a chunk of its own); one empty chunk when there is no day."""
        con = self.con
        con.execute("CREATE OR REPLACE TEMP TABLE days AS SELECT day FROM dirty")
        counts = con.execute(
            f"""SELECT d.day, count(e.day) FROM days d
                LEFT JOIN (SELECT {self._day("ts")} AS day FROM st.analytics_events
                           WHERE {self._on_days_of("ts", self._every_hour())}) e USING (day)
                GROUP BY d.day ORDER BY d.day"""
        ).fetchall()
        chunks: list[list[Any]] = []
        size = 0
        for day, events in counts:
            if not chunks or size + events > self.chunk_events:
                chunks.append([])
                size = 0
            chunks[-1].append(day)
            size += events
        return chunks or [[]]  # no day: one empty chunk still makes the tables

    def _every_hour(self) -> str:
        """SQL: the first instant of every hour of the days of temp table `days`."""
        return f"""SELECT unnest(range({self._day_start("day")}, {self._day_start("day + 1")}, INTERVAL 1 HOUR))
                   FROM days"""

    def _rebuild_days(self, cells: dict[str, str], k: int) -> list[Any]:
        """Replace the aggregates' rows of the days of temp table `days` by their cells (k rule and
        `(other)` rows), and add their consenting visitors to temp table `visitors`; returns the
        days that hold events."""
        con = self.con
        day_events = f"(SELECT * FROM st.analytics_events WHERE {self._on_days_of('ts', self._every_hour())})"
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE ev AS SELECT * FROM ({self._with_consent_and_time(day_events)})
                WHERE day IN (SELECT day FROM days)"""
        )
        # every event of the sessions that start on those days (what `sessions_daily` reads of them)
        sessions = "SELECT session_pseudonym FROM ev WHERE session_pseudonym IS NOT NULL"
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE sev AS
                SELECT session_pseudonym, subject_pseudonym, event_id, event, duration_ms, policy_version,
                       {self._day("ts")} AS day
                FROM st.analytics_events
                WHERE session_pseudonym IN ({sessions}) AND {self._on_days_of_keys("ts", "st.session_days", sessions)}
                QUALIFY min(day) OVER (PARTITION BY session_pseudonym) IN (SELECT day FROM days)"""
        )
        con.execute(
            """INSERT INTO visitors SELECT subject_pseudonym, day,
                   string_agg(DISTINCT policy_version, ',' ORDER BY policy_version)
               FROM ev WHERE granted GROUP BY ALL"""
        )
        for table, sql in cells.items():
            day = self._row_day(table)
            con.execute(f"CREATE OR REPLACE TEMP TABLE cells AS {sql.replace('{src}', 'ev')}")
            con.execute(f"CREATE TABLE IF NOT EXISTS main.{table} AS SELECT * EXCLUDE (_subjects) FROM cells LIMIT 0")
            if day != "day":  # hourly: how many quiet hours an `(other)` row holds (below), else 1
                con.execute(f"ALTER TABLE main.{table} ADD COLUMN IF NOT EXISTS hours INTEGER DEFAULT 1")
            con.execute(f"DELETE FROM main.{table} WHERE {day} IN (SELECT day FROM days)")
            suppress_small_cells(con, table, sql, k)
            con.execute(
                f"DELETE FROM main.suppressed_cells_daily WHERE table_name = '{table}' AND day IN (SELECT day FROM days)"
            )
            count_suppressed(con, table, day, "cells", k)
        run_days = [d for (d,) in con.execute("SELECT DISTINCT day FROM ev ORDER BY day").fetchall()]
        for temp in ("cells", "ev", "sev"):
            con.execute(f"DROP TABLE {temp}")
        return run_days

    def _first_retained_day(self, visitor_days: str) -> str:
        """SQL: the first day of the RETENTION_WEEKS weeks up to the last day of `visitor_days`."""
        return f"SELECT date_trunc('week', max(day))::DATE - {7 * (RETENTION_WEEKS - 1)} FROM {visitor_days}"

    def _quality_gate(self, k: int, run_days: list[Any]) -> None:
        """Great Expectations on what this run is about to publish (the rebuilt days' rows), inside
        the aggregates' transaction: a failure rolls it back (the tables stay as they were, the
        days stay dirty), writes GX data docs under `quality/`, and stops the run in one line."""
        con = self.con
        frames = {
            table: con.execute(
                f"SELECT * FROM main.{table}"
                + ("" if table == "retention_weekly" else f" WHERE {self._row_day(table)} IN (SELECT day FROM days)")
            ).df()
            for table in ANALYTICS_TABLES
        }
        frames["coverage_daily"] = con.execute(
            "SELECT * FROM main.coverage_daily WHERE day IN (SELECT day FROM days)"
        ).df()
        report = validate_publish(
            frames,
            k=k,
            timezone=self.tz,
            days=run_days,
            events_stored=self._scalar("SELECT coalesce(sum(events_stored), 0) FROM st.runs"),
            docs_dir=self.root / "quality",
        )
        if not report.ok:
            con.execute("ROLLBACK")
            raise QualityGateFailed(report.one_line())

    def _with_consent_and_time(self, events: str) -> str:
        """SQL: `events` with `granted` (consent at the event's time), their `hour` and `day`. An
        event's hour starts the local minutes and seconds before it: unlike local time truncated
        and read back, this is one instant also in the hour the clocks go back."""
        tz = _sql_str(self.tz)
        return f"""SELECT *, ts - (timezone('{tz}', ts) - date_trunc('hour', timezone('{tz}', ts))) AS hour,
                          {self._day("ts")} AS day
                   FROM ({events_with_consent_sql(events, "st.consent_changes")})"""

    def _row_day(self, table: str) -> str:
        """SQL: the calendar day a row of an aggregate table belongs to."""
        if table == "retention_weekly":
            return "cohort_week"
        return "day" if table.endswith("_daily") else self._day("hour")

    def needs_materializing(self) -> bool:
        """Whether committed runs left days to rebuild, or the aggregates are missing or behind the
        last committed run (a crash may fall in between)."""
        exists = self._scalar(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'analytics' AND table_name = 'ingest_runs'"
        )
        if not exists or self._scalar("SELECT count(*) FROM st.dirty_days"):
            return True
        return (
            self._scalar("SELECT count(*) FROM st.runs WHERE run_id NOT IN (SELECT run_id FROM main.ingest_runs)") > 0
        )

    def _copy_bookkeeping(self) -> None:
        """The analysts' view of the pipeline's own records, without any pseudonym."""
        self.con.execute(
            """CREATE OR REPLACE TABLE main.ingest_runs AS
               SELECT run_id, started_at, committed_at AS finished_at, offset_ranges, messages, valid,
                      deadletters, duplicates, events_stored, consent_changes, erasure_requests,
                      redactions, kafka_client, runner, policy_version, too_late
               FROM st.runs ORDER BY started_at"""
        )
        self.con.execute(
            """CREATE OR REPLACE TABLE main.deadletter_counts AS
               SELECT source_topic, reason, count(*) AS messages FROM sec.deadletters
               GROUP BY ALL ORDER BY ALL"""
        )
        # R8: each request with its due date (mainland working days) and its receipt
        requests = self.con.execute("SELECT source_partition, source_offset, requested_at FROM st.erasures").fetchall()
        due = pa.table(
            {
                "source_partition": pa.array([r[0] for r in requests], pa.int32()),
                "source_offset": pa.array([r[1] for r in requests], pa.int64()),
                "due_by": pa.array([due_by(r[2]) for r in requests], pa.date32()),
            }
        )
        self.con.register("erasure_due", due)
        self.con.execute(
            """CREATE OR REPLACE TABLE main.erasure_log AS
               WITH receipts AS (SELECT * FROM st.erasure_receipts UNION ALL SELECT * FROM sec.erasure_receipts),
               receipt AS (
                   SELECT source_partition, source_offset,
                          json_group_object(store || '.' || table_name || ' (' || action || ')', rows) AS rows_removed,
                          sum(held)::BIGINT AS rows_held, string_agg(DISTINCT holds, '; ' ORDER BY holds) AS holds
                   FROM receipts GROUP BY ALL)
               SELECT e.request_id, e.subject_kind, e.requested_at, e.processed_at, d.due_by,
                      r.rows_removed::VARCHAR AS rows_removed, coalesce(r.rows_held, 0) AS rows_held, r.holds
               FROM st.erasures e JOIN erasure_due d USING (source_partition, source_offset)
               LEFT JOIN receipt r USING (source_partition, source_offset)
               ORDER BY e.requested_at, e.request_id"""
        )
        self.con.unregister("erasure_due")

    def _export_parquet(self, days: list[Any]) -> None:
        """`parquet/<table>/date=YYYY-MM-DD/data_0.parquet`, days in the warehouse's time zone: each
        rebuilt day's file is written beside and renamed over the old one (a reader sees the old
        day or the new one, never half of it); a day left without rows loses its folder.
        `retention_weekly`, rebuilt whole, is one file `parquet/retention_weekly/data_0.parquet`."""
        scratch = self.root / "parquet" / ".scratch"
        scratch.mkdir(parents=True, exist_ok=True)

        def replace(query: str, folder: Path) -> None:
            tmp = scratch / f"{folder.parent.name}-{folder.name}.parquet"
            self.con.execute(f"COPY ({query}) TO '{_sql_str(str(tmp))}' (FORMAT parquet)")
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, folder / "data_0.parquet")

        replace("SELECT * FROM main.retention_weekly", self.root / "parquet" / "retention_weekly")
        for table in ANALYTICS_TABLES:
            if table == "retention_weekly":
                continue
            for day in days:
                folder = self.root / "parquet" / table / f"date={day.isoformat()}"
                query = f"SELECT * FROM main.{table} WHERE {self._row_day(table)} = '{day.isoformat()}'::DATE"
                if self._scalar(f"SELECT count(*) FROM ({query})") == 0:
                    shutil.rmtree(folder, ignore_errors=True)
                else:
                    replace(query, folder)


_ANALYTICS_DDL = """
CREATE TABLE IF NOT EXISTS main.suppressed_cells_daily (table_name VARCHAR, day DATE, cells BIGINT);
ALTER TABLE main.suppressed_cells_daily ADD COLUMN IF NOT EXISTS events BIGINT DEFAULT 0;
ALTER TABLE main.suppressed_cells_daily ADD COLUMN IF NOT EXISTS counted BIGINT DEFAULT 0;
ALTER TABLE main.suppressed_cells_daily ADD COLUMN IF NOT EXISTS published BIGINT DEFAULT 0;
CREATE TABLE IF NOT EXISTS main.materialized_with (k INTEGER, tz VARCHAR);
"""


def _days_sql(column: str, days: list[date]) -> str:
    """SQL: whether the instant `column` falls on one of the UTC `days`, as ranges of literal
    instants (DuckDB skips the row groups outside them by their zone maps)."""
    if len(days) > 400 or date.max in days:  # many scattered days (hostile times): every row
        return "true"
    spans: list[list[date]] = []
    for day in days:
        if spans and spans[-1][1] == day:
            spans[-1][1] = day + timedelta(days=1)
        else:
            spans.append([day, day + timedelta(days=1)])
    instant = "TIMESTAMPTZ '{} 00:00:00+00'"
    ranges = " OR ".join(f"({column} >= {instant.format(a)} AND {column} < {instant.format(b)})" for a, b in spans)
    return f"({ranges})" if ranges else "false"  # in parentheses: it is ANDed with other conditions


def _sql_str(s: str) -> str:
    return s.replace("'", "''")
