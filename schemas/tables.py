"""The per-event facts seaport stores, one spec per table.

Each spec drives everything that names the table's columns: the rows the field policy builds
(`transforms/policy.py`), the Arrow schema of the staged Parquet files, and the DuckDB DDL
(`sinks/warehouse.py`); rows are inserted by name. A column is added here, once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TEXT = pa.string()
INSTANT = pa.timestamp("us", tz="UTC")
INT = pa.int64()
FLAG = pa.bool_()

_DUCKDB_TYPES = {TEXT: "VARCHAR", INSTANT: "TIMESTAMPTZ", INT: "BIGINT", pa.int32(): "INTEGER", FLAG: "BOOLEAN"}

# Where a staged row came from in Kafka: a stable order for inserts, not stored.
POSITION = (("_partition", pa.int32()), ("_offset", pa.int64()))


@dataclass(frozen=True)
class TableSpec:
    """A stored table: its columns in order, with their Arrow types, and its key: the columns
    that name one row. The commit keeps the key (an event sent again is not stored again), not
    an index: an index of every stored event would grow with the store, in memory."""

    name: str
    columns: tuple[tuple[str, pa.DataType], ...]
    key: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def arrow_schema(self, extra: tuple[tuple[str, pa.DataType], ...] = ()) -> pa.Schema:
        return pa.schema([*self.columns, *extra])

    def ddl(self, schema: str) -> str:
        """`CREATE TABLE IF NOT EXISTS schema.name (...)`."""
        columns = [f"{name} {_DUCKDB_TYPES[kind]}" for name, kind in self.columns]
        return f"CREATE TABLE IF NOT EXISTS {schema}.{self.name} ({', '.join(columns)});"


# The analytics facts of one beacon event, under analytics pseudonyms (state.duckdb). An event is
# its id at its own time: a resend carries both.
ANALYTICS_EVENTS = TableSpec(
    "analytics_events",
    (
        ("event_id", TEXT), ("event", TEXT), ("ts", INSTANT), ("subject_pseudonym", TEXT),
        ("session_pseudonym", TEXT), ("page", TEXT), ("element", TEXT), ("duration_ms", INT),
        ("device_model", TEXT), ("os", TEXT), ("os_version_major", TEXT), ("gender", TEXT), ("country", TEXT),
        ("city", TEXT), ("language", TEXT), ("opt_out", FLAG), ("policy_version", TEXT), ("key_id", TEXT),
    ),
    key=("event_id", "ts"),
)  # fmt: skip

# The security facts of one beacon or access-log record, under security pseudonyms (security.duckdb).
SECURITY_EVENTS = TableSpec(
    "security_events",
    (
        ("event_id", TEXT), ("source", TEXT), ("event_time", INSTANT), ("subject_pseudonym", TEXT),
        ("device_pseudonym", TEXT), ("ip_prefix", TEXT), ("page_or_path", TEXT), ("event_or_status", TEXT),
        ("method", TEXT), ("user_agent", TEXT), ("policy_version", TEXT), ("key_id", TEXT),
    ),
    key=("event_id", "event_time"),
)  # fmt: skip

__all__ = ["ANALYTICS_EVENTS", "POSITION", "SECURITY_EVENTS", "TableSpec"]
