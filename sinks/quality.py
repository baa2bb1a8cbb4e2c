"""Data-quality checks of the analysts' tables with Great Expectations (GX 1.x).

`check_warehouse` opens `analytics.duckdb` read-only, loads each analytics table into pandas and
validates it against expectations that hold for any correct warehouse (see `materialize` in
`sinks/warehouse.py` and "The warehouse" in the contract): keys present, counts whole and
non-negative, visitors never more than the events they come from, rates and durations in range,
hours at the start of an hour, one row per cell. With `k`, also the k-anonymity floor of
`audience_daily` (R4), the one table whose `visitors` is the suppression's subject count.

Details name counts and rows only, never cell values (R4: the report may be shown anywhere).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from seaport.errors import SeaportError

# The dimension columns of each table: one row per combination (compound uniqueness).
DIMENSIONS: dict[str, list[str]] = {
    "page_views_hourly": ["hour", "page"],
    "clicks_hourly": ["hour", "page", "element"],
    "devices_daily": ["day", "device_model", "os", "os_version_major"],
    "audience_daily": ["day", "gender", "country", "city", "language"],
    "sessions_daily": ["day"],
}
COUNTS: dict[str, list[str]] = {
    "page_views_hourly": ["views", "visitors"],
    "clicks_hourly": ["clicks", "visitors"],
    "devices_daily": ["events", "visitors"],
    "audience_daily": ["visitors"],
    "sessions_daily": ["sessions"],
}
# visitors <= the events they were counted from (each consenting subject brings at least one).
VISITORS_OF: dict[str, str] = {"page_views_hourly": "views", "clicks_hourly": "clicks", "devices_daily": "events"}
NOT_NULL: dict[str, list[str]] = {
    "page_views_hourly": ["hour", "page"],
    "clicks_hourly": ["hour", "page"],
    "devices_daily": ["day"],
    "audience_daily": ["day"],
    "sessions_daily": ["day"],
}
_INTEGER_TYPES = [f"{u}{w}" for u in ("int", "uint", "Int", "UInt") for w in (8, 16, 32, 64)]
# A helper column computed here, reported under the column it derives from.
_HOUR_OFFSET = "_hour_offset_us"
_DERIVED = {_HOUR_OFFSET: "hour"}


@dataclass(frozen=True)
class Failure:
    """One expectation that did not hold: where, which, and a short detail without cell values."""

    table: str
    expectation: str
    column: str
    detail: str


@dataclass
class QualityReport:
    """The failed expectations and how many expectations were evaluated in all."""

    failures: list[Failure] = field(default_factory=list)
    evaluated: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures


def check_warehouse(warehouse: Path, k: int | None = None, timezone: str = "Asia/Shanghai") -> QualityReport:
    """Validate the analytics tables of `warehouse/analytics.duckdb` (opened read-only). Missing or
    empty tables are skipped. `k`: the warehouse's suppression threshold, if known (R4).
    `timezone`: the warehouse's `--timezone`, in which hours start at minute zero."""
    tables = _load_tables(Path(warehouse) / "analytics.duckdb")
    _quiet_gx()  # before the import: GX logs while it imports
    import great_expectations as gx  # ~5 s to import: only when a check runs

    _quiet_gx()  # again: one GX module sets its own logger to INFO as it is imported
    context = gx.get_context(mode="ephemeral")
    _no_progress_bars(context)
    source = context.data_sources.add_pandas("analytics")
    report = QualityReport()
    for table, frame in tables.items():
        frame = _with_derived_columns(frame, timezone)
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("all")
        suite = gx.ExpectationSuite(name=table, expectations=_expectations(table, k))
        result = batch.get_batch(batch_parameters={"dataframe": frame}).validate(suite)
        report.evaluated += len(result.results)
        report.failures += [_failure(table, r) for r in result.results if not r.success]
    report.failures.sort(key=lambda f: (f.table, f.expectation, f.column))
    return report


def _load_tables(path: Path) -> dict[str, pd.DataFrame]:
    """The non-empty analytics tables that exist, as pandas frames."""
    if not path.is_file():
        raise SeaportError(f"no analytics warehouse at {path}")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise SeaportError(f"cannot open {path} read-only: {type(exc).__name__}") from None
    try:
        present = {
            row[0]
            for row in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()
        }
        frames = {t: con.execute(f'SELECT * FROM "{t}"').df() for t in DIMENSIONS if t in present}
    finally:
        con.close()
    return {t: f for t, f in frames.items() if len(f)}


def _with_derived_columns(frame: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """Add how far into its hour (µs, in the warehouse's time zone) each `hour` value lies: zero
    for a correct one. In the warehouse's zone because a zone with a :30 offset (e.g. India)
    starts its hours at :30 UTC."""
    if "hour" not in frame.columns:
        return frame
    local = pd.to_datetime(frame["hour"], utc=True).dt.tz_convert(timezone)
    offset = (local.dt.minute * 60 + local.dt.second) * 1_000_000 + local.dt.microsecond
    return frame.assign(**{_HOUR_OFFSET: offset})


def _expectations(table: str, k: int | None) -> list[Any]:
    """The expectations of one table (GX expectation objects)."""
    import great_expectations.expectations as gxe

    dims = DIMENSIONS[table]
    found: list[Any] = [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in NOT_NULL[table]]
    if len(dims) > 1:
        found.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=dims))
    else:
        found.append(gxe.ExpectColumnValuesToBeUnique(column=dims[0]))
    for count in COUNTS[table]:
        found.append(gxe.ExpectColumnValuesToBeInTypeList(column=count, type_list=_INTEGER_TYPES))
        found.append(gxe.ExpectColumnValuesToBeBetween(column=count, min_value=0))
    if table in VISITORS_OF:
        found.append(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=VISITORS_OF[table], column_B="visitors", or_equal=True)
        )
    if "hour" in dims:
        found.append(gxe.ExpectColumnValuesToBeBetween(column=_HOUR_OFFSET, min_value=0, max_value=0))
    if table == "page_views_hourly":
        found.append(gxe.ExpectColumnValuesToBeBetween(column="avg_duration_ms", min_value=0))  # nulls pass
    if table == "devices_daily":
        # a major version, or the roll-up row of the suppressed cells
        found.append(gxe.ExpectColumnValuesToMatchRegex(column="os_version_major", regex=r"^([0-9]+|\(other\))$"))
    if table == "audience_daily":
        # visitors is the cell's subject count here: at least one, and at least k (R4) if known.
        found.append(gxe.ExpectColumnValuesToBeBetween(column="visitors", min_value=max(1, k or 1)))
    if table == "sessions_daily":
        found.append(gxe.ExpectColumnValuesToBeBetween(column="bounce_rate", min_value=0, max_value=1))
        found.append(gxe.ExpectColumnValuesToBeBetween(column="avg_session_duration_ms", min_value=0))
    return found


def _failure(table: str, result: Any) -> Failure:
    """A failed GX result as a `Failure` (counts only: no cell value leaves the warehouse)."""
    config = result.expectation_config
    kwargs = config.kwargs
    if "column_A" in kwargs:
        column = f"{kwargs['column_B']}<={kwargs['column_A']}"
    else:
        column = kwargs.get("column") or ",".join(kwargs.get("column_list", []))
    column = _DERIVED.get(column, column)
    if result.exception_info.get("raised_exception") is False:
        detail = _unexpected(result.result)
    else:
        detail = _exception_message(result.exception_info)
    return Failure(table, config.type, column, detail)


def _unexpected(result: dict[str, Any]) -> str:
    if "unexpected_count" in result:
        return f"{result['unexpected_count']} of {result['element_count']} rows unexpected"
    return f"observed {result.get('observed_value')}"  # a column-level check, e.g. the dtype


def _exception_message(info: dict[str, Any]) -> str:
    """The first error GX met (e.g. a missing column), one line."""
    nested = [v for v in info.values() if isinstance(v, dict)] or [info]
    message = str(nested[0].get("exception_message") or "error")
    return "error: " + message.splitlines()[0]


def _quiet_gx() -> None:
    """GX logs at INFO/WARNING while it builds a context; the caller wants only the report."""
    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _no_progress_bars(context: Any) -> None:
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
