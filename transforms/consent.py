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

Each store keeps these facts under its own purpose's pseudonyms (R1: the analytics and security
pseudonyms of one person are never stored side by side), so the same SQL runs over either.
"""

from __future__ import annotations


def minor_blocks_sql(consent_table: str) -> str:
    """`(subject_pseudonym, blocked_until)` for each subject a consent change marked a minor without a
    guardian's consent (R9): its events before the first change after the last such mark (a
    guardian's consent, or no longer a minor) count nowhere and their rows are deleted; without such
    a change, all of them. Decided by event time, so a replay of every offset decides as the runs
    did. The table needs `subject_pseudonym`, `ts`, `source_partition`, `source_offset`,
    `minor_without_guardian`."""
    return f"""
        WITH ordered AS (
            SELECT subject_pseudonym, ts, minor_without_guardian,
                   row_number() OVER (PARTITION BY subject_pseudonym
                                      ORDER BY ts, source_partition, source_offset) AS n
            FROM {consent_table}),
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
            QUALIFY row_number() OVER (PARTITION BY subject_pseudonym, ts
                                       ORDER BY source_partition DESC, source_offset DESC) = 1) c
          ON e.subject_pseudonym = c.subject_pseudonym AND e.ts >= c.ts"""
