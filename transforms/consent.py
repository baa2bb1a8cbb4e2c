"""Consent at the event's own time, minors, and erasure: who counts, as SQL over the ledger.

The rules live here once, as SQL that the warehouse runs over its own tables:

- R2/R3: a subject's analytics consent at time t is the `analytics` value of its latest consent
  change with `ts <= t`; with none it is not granted. A withdrawal stops use from its moment on and
  leaves what came before as it was. A beacon sent with Sec-GPC/DNT (`opt_out`) is not granted.
- R9: the events of a minor without a guardian's consent count nowhere, and their stored rows
  are deleted: every event of the subject before a guardian's consent (or an "I am no longer a
  minor") that follows the last such mark.
- R8: an erased subject counts nowhere from the request on, replays of old offsets included;
  aggregates published before it hold no identifier and stay as they were.

Three of them also act, inside the warehouse's commit: `unlink_erased_subjects` (R8: an erased
subject's facts keep no link to the person), `withhold_profiles_without_consent` (R2: profile
dimensions only on events with consent at their time) and `forget_superseded_consent` (the late
window: the ledger keeps what still decides the open days). k-anonymity of what is published is
`transforms/cells.py`.

Each store keeps these facts under its own purpose's pseudonyms (R1: the analytics and security
pseudonyms of one person are never stored side by side), so the same SQL runs over either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    import duckdb

    # (column, day index, query of keys) -> SQL: the rows on the days the index lists for those keys
    DaysOfKeys = Callable[[str, str, str], str]


def minor_without_guardian(minor: bool | None, guardian_consent: bool | None) -> bool:
    """R9: a consent change marks a minor without a guardian's consent (what `minor_blocks_sql`
    reads), from the `minor` and `guardian_consent` the field policy kept of it."""
    return bool(minor) and guardian_consent is not True


def minor_blocks_sql(consent_table: str) -> str:
    """`(subject_pseudonym, blocked_until)` for each subject a consent change marked a minor without a
    guardian's consent (R9): its events before the first change after the last such mark (a
    guardian's consent, or no longer a minor) count nowhere and their rows are deleted; without such
    a change, all of them. Decided by event time, so a replay of every offset decides as the runs
    did. The table needs `subject_pseudonym`, `ts`, `source_partition`, `source_offset`,
    `minor_without_guardian`."""
    # only the subjects ever marked are ordered: a window over the whole ledger cost a run
    # ~0.25 s per statement at 10 M stored events
    return f"""
        WITH ordered AS (
            SELECT subject_pseudonym, ts, minor_without_guardian,
                   row_number() OVER (PARTITION BY subject_pseudonym
                                      ORDER BY ts, source_partition, source_offset) AS n
            FROM {consent_table}
            WHERE subject_pseudonym IN (SELECT subject_pseudonym FROM {consent_table} WHERE minor_without_guardian)),
        last_mark AS (
            SELECT subject_pseudonym, max(n) AS n FROM ordered WHERE minor_without_guardian
            GROUP BY subject_pseudonym)
        SELECT m.subject_pseudonym, coalesce(min(o.ts), 'infinity'::TIMESTAMPTZ) AS blocked_until
        FROM last_mark m LEFT JOIN ordered o ON o.subject_pseudonym = m.subject_pseudonym AND o.n > m.n
        GROUP BY m.subject_pseudonym"""


def blocks_sql(consent_table: str, erasure_table: str) -> str:
    """`(subject_pseudonym, blocked_until)`: whose events before when count nowhere. Erased subjects
    for good (R8, replays included), minors without a guardian's consent as `minor_blocks_sql`."""
    return f"""
        SELECT subject_pseudonym, 'infinity'::TIMESTAMPTZ AS blocked_until FROM {erasure_table}
        UNION ALL SELECT * FROM ({minor_blocks_sql(consent_table)})"""


def blocks_join(kind: str, blocks_table: str, row: str, ts_column: str) -> str:
    """`ANTI` (rows outside `blocks_table`'s blocks) or `SEMI` (rows inside) join of the rows aliased
    `row`: one hash join on the subject (a correlated NOT EXISTS costs seven times as much)."""
    return f"""{kind} JOIN {blocks_table} b
               ON b.subject_pseudonym = {row}.subject_pseudonym AND {row}.{ts_column} < b.blocked_until"""


def events_with_consent_sql(events_table: str, consent_table: str) -> str:
    """Every event of `events_table` with `granted`: whether its subject's analytics consent was
    granted at the event's own time (R2, R3). ASOF picks the latest change with `ts <= e.ts`; of
    changes with the same `ts`, the later in the topic (ASOF alone would pick any of them)."""
    return f"""
        SELECT e.*, coalesce(c.analytics = 'granted' AND NOT e.opt_out, false) AS granted
        FROM {events_table} e
        ASOF LEFT JOIN (
            SELECT * FROM {consent_table}
            WHERE subject_pseudonym IN (SELECT subject_pseudonym FROM {events_table})  -- only whom it asks about
            QUALIFY row_number() OVER (PARTITION BY subject_pseudonym, ts
                                       ORDER BY source_partition DESC, source_offset DESC) = 1) c
          ON e.subject_pseudonym = c.subject_pseudonym AND e.ts >= c.ts"""


# -- run by the warehouse's commit over its state store (`st.`) and this run's staged rows ------------


def unlink_erased_subjects(con: duckdb.DuckDBPyConnection, on_days_of: DaysOfKeys) -> None:
    """R8: an erased subject's facts lose every link to the person, while the aggregates
    published before the request stay as they were: each erased pseudonym, and each session
    it took part in, is replaced by a random token (one per subject or session, so distinct
    counts do not move), in the facts, the consent ledger and the day indexes. Nothing derives
    a token from the person or the key, so nobody can find these rows again. New events of the
    subject are kept out by the erasure record (`blocks_sql`). Only this run's requests have
    anything left to unlink."""
    erased = "SELECT analytics_pseudonym FROM staged_erasure"
    on_their_days = on_days_of("e.ts", "st.subject_days", erased)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE erased_tokens AS
            SELECT subject_pseudonym, 'erased-' || replace(uuid()::VARCHAR, '-', '') AS token
            FROM (SELECT subject_pseudonym FROM st.analytics_events e WHERE {on_their_days}
                  UNION SELECT subject_pseudonym FROM st.consent_changes
                  UNION SELECT subject_pseudonym FROM st.visitor_days)
            WHERE subject_pseudonym IN ({erased})"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE erased_sessions AS
            SELECT session_pseudonym, 'erased-' || replace(uuid()::VARCHAR, '-', '') AS token
            FROM (SELECT DISTINCT session_pseudonym FROM st.analytics_events e
                  WHERE subject_pseudonym IN (SELECT subject_pseudonym FROM erased_tokens) AND {on_their_days}
                    AND session_pseudonym IS NOT NULL)"""
    )
    on_sessions_days = on_days_of("e.ts", "st.session_days", "SELECT session_pseudonym FROM erased_sessions")
    for table, on_days in (("st.analytics_events", on_sessions_days), ("st.session_days", "true")):
        con.execute(
            f"""UPDATE {table} e SET session_pseudonym = t.token FROM erased_sessions t
                WHERE e.session_pseudonym = t.session_pseudonym AND {on_days}"""
        )
    for table, on_days in (
        ("st.analytics_events", on_their_days),
        ("st.consent_changes", "true"),
        ("st.visitor_days", "true"),
        ("st.subject_days", "true"),
    ):
        con.execute(
            f"""UPDATE {table} e SET subject_pseudonym = t.token FROM erased_tokens t
                WHERE e.subject_pseudonym = t.subject_pseudonym AND {on_days}"""
        )


def forget_superseded_consent(con: duckdb.DuckDBPyConnection, consent_table: str, before: str) -> None:
    """The late window (R2, R3, R9): of the changes before the instant `before` (SQL), each subject
    keeps its latest in the ledger's order (`ts`, then partition and offset, as `minor_blocks_sql`
    reads it). Only that one still decides anything from `before` on: consent at an event's time,
    and where a minor's block ends. The changes it supersedes go; a late change for a closed day
    comes and goes the same way."""
    con.execute(
        f"""DELETE FROM {consent_table} WHERE (source_partition, source_offset) IN (
            SELECT source_partition, source_offset FROM {consent_table} WHERE ts < {before}
            QUALIFY row_number() OVER (PARTITION BY subject_pseudonym
                                       ORDER BY ts DESC, source_partition DESC, source_offset DESC) > 1)"""
    )


def withhold_profiles_without_consent(
    con: duckdb.DuckDBPyConnection, gated_columns: list[str], on_days_of: Callable[[str, str], str],
    on_days_of_keys: DaysOfKeys,
) -> None:  # fmt: skip
    """R2: profile dimensions stay only on events whose subject had analytics consent at the
    event's own time (R3); the others lose them for good. Only this run's events and those of
    subjects whose consent changed in it can have anything to lose. `on_days_of(column, query)`
    is SQL for the rows of the days of the instants `query` gives (the warehouse's zone maps)."""
    if not gated_columns:
        return
    assignments = ", ".join(f"{c} = NULL" for c in gated_columns)
    any_set = " OR ".join(f"{c} IS NOT NULL" for c in gated_columns)
    changed = "SELECT subject_pseudonym FROM changed_subjects"
    candidate = "event_id, ts, subject_pseudonym, opt_out"  # what consent at the event's time reads
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE profile_candidates AS
            SELECT {candidate} FROM st.analytics_events
            WHERE ({any_set}) AND {on_days_of("ts", "SELECT ts FROM staged_analytics")}
              AND (event_id, ts) IN (SELECT event_id, ts FROM staged_analytics)
            UNION SELECT {candidate} FROM st.analytics_events
            WHERE ({any_set}) AND subject_pseudonym IN ({changed})
              AND {on_days_of_keys("ts", "st.subject_days", changed)}"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE profiles_withheld AS
            SELECT event_id, ts FROM ({events_with_consent_sql("profile_candidates", "st.consent_changes")})
            WHERE NOT granted"""
    )
    con.execute(
        f"""UPDATE st.analytics_events SET {assignments}
            WHERE {on_days_of("ts", "SELECT ts FROM profiles_withheld")}
              AND (event_id, ts) IN (SELECT event_id, ts FROM profiles_withheld)"""
    )
