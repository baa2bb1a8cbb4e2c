"""Test helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from seaport.kafka.clients import KafkaClient, Record

# The contract's analytics tables and `suppressed_cells`, with the contract's columns only, for
# tests that plant hand-made aggregates in an analytics.duckdb. page_views_hourly comes first.
AGGREGATES_DDL = """
CREATE TABLE page_views_hourly (hour TIMESTAMPTZ, page VARCHAR, views BIGINT, visitors BIGINT,
                                avg_duration_ms DOUBLE);
CREATE TABLE clicks_hourly (hour TIMESTAMPTZ, page VARCHAR, element VARCHAR, clicks BIGINT, visitors BIGINT);
CREATE TABLE devices_daily (day DATE, device_model VARCHAR, os VARCHAR, os_version_major VARCHAR,
                            events BIGINT, visitors BIGINT);
CREATE TABLE audience_daily (day DATE, gender VARCHAR, country VARCHAR, city VARCHAR, language VARCHAR,
                             visitors BIGINT);
CREATE TABLE sessions_daily (day DATE, sessions BIGINT, avg_session_duration_ms DOUBLE, bounce_rate DOUBLE);
CREATE TABLE suppressed_cells (table_name VARCHAR, cells BIGINT);
"""


# The contract's analytics tables, as `materialize` makes them (DuckDB types).
CONTRACT_DDL = """
CREATE TABLE page_views_hourly (hour TIMESTAMPTZ, page VARCHAR, views BIGINT, visitors BIGINT,
                                avg_duration_ms DOUBLE, policy_version VARCHAR, hours INTEGER DEFAULT 1);
CREATE TABLE page_views_daily (day DATE, page VARCHAR, views BIGINT, visitors BIGINT, avg_duration_ms DOUBLE,
                               policy_version VARCHAR);
CREATE TABLE clicks_hourly (hour TIMESTAMPTZ, page VARCHAR, element VARCHAR, clicks BIGINT, visitors BIGINT,
                            policy_version VARCHAR, hours INTEGER DEFAULT 1);
CREATE TABLE clicks_daily (day DATE, page VARCHAR, element VARCHAR, clicks BIGINT, visitors BIGINT,
                           policy_version VARCHAR);
CREATE TABLE devices_daily (day DATE, device_model VARCHAR, os VARCHAR, os_version_major VARCHAR,
                            events BIGINT, visitors BIGINT, policy_version VARCHAR);
CREATE TABLE audience_daily (day DATE, gender VARCHAR, country VARCHAR, city VARCHAR, language VARCHAR,
                             visitors BIGINT, policy_version VARCHAR);
CREATE TABLE sessions_daily (day DATE, sessions BIGINT, avg_session_duration_ms DOUBLE, bounce_rate DOUBLE,
                             policy_version VARCHAR);
CREATE TABLE retention_weekly (cohort_week DATE, weeks_since INTEGER, visitors BIGINT, policy_version VARCHAR);
CREATE TABLE coverage_daily (table_name VARCHAR, day DATE, counted BIGINT, published BIGINT, coverage DOUBLE);
"""


def hold_write_lock(database: Path) -> subprocess.Popen:
    """Another process with `database` open for writing, as a running ingest would have it."""
    code = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code, str(database)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    return holder


def read_all(client: KafkaClient, topic: str) -> list[Record]:
    """Every record of `topic`, partition by partition, up to its end offsets now."""
    ends = client.end_offsets(topic)
    return [r for p, end in ends.items() for batch in client.read_range(topic, p, 0, end) for r in batch]
