"""The staged files of a run: the Arrow schema of each kind of staged row, what one offset
range of one partition is (`OffsetRange`), and how a batch of rows is written.

Beam's workers and the local worker processes write them (`pipelines/stage.py`), the commit reads
them (`sinks/warehouse.py`). Nothing here imports Beam, DuckDB or pandas: a local worker process
starts without them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.tables import ANALYTICS_EVENTS, POSITION, SECURITY_EVENTS

# The staged Parquet files of a run, by kind, with their Arrow schemas (pipelines/stage.py
# writes them; the columns `_partition`, `_offset` give the source position for a stable order).
STAGED_SCHEMAS: dict[str, pa.Schema] = {
    "analytics": ANALYTICS_EVENTS.arrow_schema(POSITION),
    "security": SECURITY_EVENTS.arrow_schema(POSITION),
    "consent": pa.schema(
        [
            ("source_partition", pa.int32()),
            ("source_offset", pa.int64()),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("analytics", pa.string()),
            ("minor_without_guardian", pa.bool_()),
            ("analytics_pseudonym", pa.string()),
            ("security_pseudonym", pa.string()),
            ("key_id", pa.string()),
        ]
    ),
    "erasure": pa.schema(
        [
            ("request_id", pa.string()),
            ("subject_kind", pa.string()),
            ("requested_at", pa.timestamp("us", tz="UTC")),
            ("analytics_pseudonym", pa.string()),
            ("security_pseudonym", pa.string()),
            ("key_id", pa.string()),
            ("source_partition", pa.int32()),
            ("source_offset", pa.int64()),
        ]
    ),
    "deadletter": pa.schema(
        [
            ("source_topic", pa.string()),
            ("source_partition", pa.int32()),
            ("source_offset", pa.int64()),
            ("reason", pa.string()),
            ("subject_pseudonym", pa.string()),
            ("payload", pa.string()),
        ]
    ),
}


@dataclass(frozen=True)
class OffsetRange:
    """Offsets `start <= o < end` of one partition; `topic` is the contract name, `kafka_topic`
    the name on the broker (with a test prefix, if any)."""

    topic: str
    kafka_topic: str
    partition: int
    start: int
    end: int


def write_staged(staging: Path | str, kind: str, name: str, rows: pa.Table | list[dict[str, Any]]) -> None:
    """Write one batch of staged rows (atomically: a crash leaves no half file behind). On a
    cluster `staging` is a location every worker and the driver reach (object storage, HDFS: a
    URL), written through Beam's `FileSystems`; a local folder is written directly (Beam, seconds
    to import, is then not imported at all)."""
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=STAGED_SCHEMAS[kind])
    if not table.num_rows:
        return
    if "://" not in str(staging):
        folder = Path(staging) / kind
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / f".{name}.tmp")
        os.replace(folder / f".{name}.tmp", folder / f"{name}.parquet")
        return
    from apache_beam.io.filesystems import CompressionTypes, FileSystems

    remote = FileSystems.join(str(staging), kind)
    tmp = FileSystems.join(remote, f".{name}.tmp")
    with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        pq.write_table(table, f)
    FileSystems.rename([tmp], [FileSystems.join(remote, f"{name}.parquet")])
