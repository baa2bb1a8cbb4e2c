"""Consent at the event's own time, minors, and erasure: who counts, as SQL over the ledger.

The rules live here once, as SQL that the warehouse runs over its own tables:

- R2/R3: a subject's analytics consent at time t is the `analytics` value of its latest consent
  change with `ts <= t`; with none it is not granted. A withdrawal stops use from its moment on and
  leaves what came before as it was. A beacon sent with Sec-GPC/DNT (`opt_out`) is not granted.
- R9: a subject whose latest consent change marks a minor without a guardian's consent counts
  nowhere, and its stored rows are deleted.
- R8: an erased subject counts nowhere from the request on, replays of old offsets included;
  aggregates published before it hold no identifier and stay as they were.

Each store keeps these facts under its own purpose's pseudonyms (R1: the analytics and security
pseudonyms of one person are never stored side by side), so the same SQL runs over either.
"""

from __future__ import annotations


def minor_subjects_sql(consent_table: str) -> str:
    """Pseudonyms whose latest consent change marks a minor without a guardian's consent (R9):
    they count nowhere, and their rows are deleted. The table needs `subject_pseudonym`, `ts`,
    `source_partition`, `source_offset`, `minor_without_guardian`."""
    return f"""
        SELECT subject_pseudonym FROM (
            SELECT subject_pseudonym, minor_without_guardian,
                   row_number() OVER (PARTITION BY subject_pseudonym
                                      ORDER BY ts DESC, source_partition DESC, source_offset DESC) AS latest
            FROM {consent_table})
        WHERE latest = 1 AND minor_without_guardian"""


def blocked_subjects_sql(consent_table: str, erasure_table: str) -> str:
    """Pseudonyms whose new events count nowhere: erased ones (R8, replays included) and minors
    without a guardian's consent (R9)."""
    return f"SELECT subject_pseudonym FROM {erasure_table} UNION {minor_subjects_sql(consent_table)}"


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
