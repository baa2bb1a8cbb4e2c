"""Data-quality checks of the analysts' tables with Great Expectations (GX 1.x).

Two entry points share one set of expectations per table (`_expectations`):

- `validate_publish(frames, ...)`: the gate. It runs on the rows a run is about to publish (the
  rebuilt days' rows, `retention_weekly` whole), before they are published; on a failure it
  writes GX data docs and the caller rolls the run's aggregates back.
- `check_warehouse(warehouse, ...)`: the same expectations over the published tables of
  `analytics.duckdb`, opened read-only (the run summary).

The expectations hold for any correct warehouse (see `materialize` in `sinks/warehouse.py`):
exactly the contract's columns, counts whole and non-negative, time columns of the right type,
keys present, one row per cell, visitors never more than the events they come from, rates and
durations in range, hours at the start of an hour; with `k`, the k rule (R4): counts (`views`,
`clicks`, `events`, `sessions`) >= k, `visitors` 0 or >= k (>= k where it is the cell's subject
count: `audience_daily`, `retention_weekly`); no value shaped like an identifier in a text column
(the detector of `seaport audit`, `transforms.redact.find_identifiers`). The gate also checks
the run as a whole on `coverage_daily`: every rebuilt day counted, and no more events counted
than the runs stored.

Details name counts only, never cell values (R4: the report may be shown anywhere); results are
kept in GX's BASIC format without unexpected-value samples, so the data docs hold none either.
"""

from __future__ import annotations

import datetime
import importlib
import logging
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from seaport.errors import SeaportError
from transforms.redact import find_identifiers

# The contract's columns of each table (exactly these, in any order).
COLUMNS: dict[str, list[str]] = {
    "page_views_hourly": ["hour", "page", "views", "visitors", "avg_duration_ms", "policy_version", "hours"],
    "page_views_daily": ["day", "page", "views", "visitors", "avg_duration_ms", "policy_version"],
    "clicks_hourly": ["hour", "page", "element", "clicks", "visitors", "policy_version", "hours"],
    "clicks_daily": ["day", "page", "element", "clicks", "visitors", "policy_version"],
    "devices_daily": ["day", "device_model", "os", "os_version_major", "events", "visitors", "policy_version"],
    "audience_daily": ["day", "gender", "country", "city", "language", "visitors", "policy_version"],
    "sessions_daily": ["day", "sessions", "avg_session_duration_ms", "bounce_rate", "policy_version"],
    "retention_weekly": ["cohort_week", "weeks_since", "visitors", "policy_version"],
    "coverage_daily": ["table_name", "day", "counted", "published", "coverage"],
}
# The dimension columns of each table: one row per combination (compound uniqueness).
DIMENSIONS: dict[str, list[str]] = {
    "page_views_hourly": ["hour", "page"],
    "page_views_daily": ["day", "page"],
    "clicks_hourly": ["hour", "page", "element"],
    "clicks_daily": ["day", "page", "element"],
    "devices_daily": ["day", "device_model", "os", "os_version_major"],
    "audience_daily": ["day", "gender", "country", "city", "language"],
    "sessions_daily": ["day"],
    "retention_weekly": ["cohort_week", "weeks_since"],
    "coverage_daily": ["table_name", "day"],
}
NOT_NULL: dict[str, list[str]] = {
    "page_views_hourly": ["hour", "page"],
    "page_views_daily": ["day", "page"],
    "clicks_hourly": ["hour", "page"],
    "clicks_daily": ["day", "page"],
    "devices_daily": ["day"],
    "audience_daily": ["day"],
    "sessions_daily": ["day"],
    "retention_weekly": ["cohort_week"],
    "coverage_daily": ["table_name", "day"],
}
# Whole, non-negative numbers.
COUNTS: dict[str, list[str]] = {
    "page_views_hourly": ["views", "visitors", "hours"],
    "page_views_daily": ["views", "visitors"],
    "clicks_hourly": ["clicks", "visitors", "hours"],
    "clicks_daily": ["clicks", "visitors"],
    "devices_daily": ["events", "visitors"],
    "audience_daily": ["visitors"],
    "sessions_daily": ["sessions"],
    "retention_weekly": ["weeks_since", "visitors"],
    "coverage_daily": ["counted", "published"],
}
# Counts of events from >= k subjects: >= k themselves (R4).
K_COUNTS = ("views", "clicks", "events", "sessions")
# Tables whose `visitors` is the cell's subject count: >= k (>= 1 without k). Elsewhere `visitors`
# counts the consenting subjects only: 0 or >= k.
SUBJECT_COUNTS = ("audience_daily", "retention_weekly")
# visitors <= the events they were counted from (each consenting subject brings at least one).
VISITORS_OF: dict[str, str] = {
    "page_views_hourly": "views",
    "page_views_daily": "views",
    "clicks_hourly": "clicks",
    "clicks_daily": "clicks",
    "devices_daily": "events",
}
# Text columns: no value shaped like an identifier.
TEXT_COLUMNS = ("page", "element", "device_model", "os", "os_version_major", "gender", "country", "city", "language",
                "policy_version")  # fmt: skip
DATE_COLUMNS = ("day", "cohort_week")
_INTEGER_TYPES = [f"{u}{w}" for u in ("int", "uint", "Int", "UInt") for w in (8, 16, 32, 64)]
# DuckDB's DATE comes as datetime64 (`.dtype.type` numpy.datetime64), TIMESTAMPTZ as a zoned
# datetime64 (`.dtype.type` pandas.Timestamp; a naive one is numpy.datetime64).
_DATE_TYPE = "datetime64"
_ZONED_TYPE = "Timestamp"
# Without unexpected-value samples: neither the results nor the data docs show a cell's value.
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0, "include_unexpected_rows": False}

# Helper columns computed here, reported under the column they derive from (with a hint).
_HOUR_OFFSET = "_hour_offset_us"
_VISITORS_UNDER_K = "_visitors_under_k"
_IDENTIFIER_IN = "_identifier_in_"
_RUN_DAY = "_run_day_counted"
_RUN_COUNTED = "_run_devices_counted"
_DERIVED = {
    _HOUR_OFFSET: ("hour", "not at the start of an hour"),
    _VISITORS_UNDER_K: ("visitors", "between 1 and k - 1"),
    _RUN_DAY: ("day", "days of the run without devices_daily coverage"),
    _RUN_COUNTED: ("counted", "devices_daily events counted over the run's days, at most the events stored"),
}
# The gate's checks of the run as a whole (on `coverage_daily`, the one table that says what all
# cells counted): a suite of its own, run also when the table is absent or empty.
_RUN_SUITE = "coverage_daily_run"
_RUN_TABLE = "coverage_daily"  # what those failures are reported under
_DOCS_SITE = "seaport_quality"


@dataclass(frozen=True)
class Failure:
    """One expectation that did not hold: where, which, and a short detail without cell values."""

    table: str
    expectation: str
    column: str
    detail: str


@dataclass
class QualityReport:
    """The failed expectations, how many expectations were evaluated in all, and where the data
    docs of a failed gate are (`index.html`), if written."""

    failures: list[Failure] = field(default_factory=list)
    evaluated: int = 0
    docs: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    def one_line(self) -> str:
        """The gate's verdict in one line (counts only), e.g. for an exit message."""
        if self.ok:
            return f"quality gate: all {self.evaluated} expectations met"
        first = self.failures[0]
        n = len(self.failures)
        line = (
            f"quality gate: {n} expectation{'s' if n > 1 else ''} failed, first: "
            f"{first.table} {first.expectation} {first.column}: {first.detail}"
        )
        return line + (f"; data docs: {self.docs}" if self.docs else "")


@dataclass(frozen=True)
class _Run:
    """What the gate knows of the run: the rebuilt days and the events all runs stored."""

    days: tuple[datetime.date, ...]
    events_stored: int


def validate_publish(
    frames: dict[str, pd.DataFrame],
    *,
    k: int,
    timezone: str,
    days: list[datetime.date],
    events_stored: int,
    docs_dir: Path,
) -> QualityReport:
    """The quality gate over what a run is about to publish: `frames` per table (the rebuilt
    `days`' rows; `retention_weekly` whole). Tables absent or empty are skipped, except the check
    that each of `days` has a `coverage_daily` row for `devices_daily`. `k`: the suppression
    threshold (R4); `timezone`: the warehouse's, in which hours start at minute zero;
    `events_stored`: the events all runs stored (`ingest_runs`). On a failure, GX data docs are
    written under `docs_dir` (`report.docs` is their index.html)."""
    run = _Run(tuple(days), int(events_stored))
    tables = {t: f for t, f in frames.items() if t in COLUMNS and len(f)}
    coverage = tables.get(_RUN_TABLE, pd.DataFrame(columns=COLUMNS[_RUN_TABLE]))
    report = _validate(tables, k, timezone, run=(coverage, run))
    if not report.ok:  # again, into GX's results store, which its data docs are built from
        _validate(tables, k, timezone, run=(coverage, run), record=True)
        report.docs = _write_docs(Path(docs_dir))
    return report


def check_warehouse(warehouse: Path, k: int | None = None, timezone: str = "Asia/Shanghai") -> QualityReport:
    """Validate the analytics tables of `warehouse/analytics.duckdb` (opened read-only). Missing or
    empty tables are skipped. `k`: the warehouse's suppression threshold, if known (R4).
    `timezone`: the warehouse's `--timezone`, in which hours start at minute zero."""
    return _validate(_load_tables(Path(warehouse) / "analytics.duckdb", timezone), k, timezone)


def _validate(
    tables: dict[str, pd.DataFrame],
    k: int | None,
    timezone: str,
    run: tuple[pd.DataFrame, _Run] | None = None,
    record: bool = False,
) -> QualityReport:
    """Validate each table's frame against its suite (and the run's checks, if `run`). With
    `record`, as GX validation definitions whose results stay in the context's (in-memory) results
    store, for the data docs; else on GX batches, which store nothing (~40 % cheaper a run)."""
    context = _context()  # first: it waits for the warm-up thread's import
    import great_expectations as gx

    if record:
        for key in context.validation_results_store.list_keys():  # only this validation's results
            context.validation_results_store.remove_key(key)
    jobs = []
    for table, frame in tables.items():
        frame, derived = _with_derived_columns(table, frame, k, timezone)
        jobs.append((table, table, frame, _expectations(table, k, derived)))
    if run is not None:
        coverage, facts = run
        jobs.append((_RUN_SUITE, _RUN_TABLE, _with_run_columns(coverage, facts), _run_expectations(facts)))
    report = QualityReport()
    for suite_name, table, frame, expectations in jobs:
        if record:
            result = _definition(suite_name, expectations).run(
                batch_parameters={"dataframe": frame}, result_format=RESULT_FORMAT
            )
        else:
            batch = _batch_definition(suite_name).get_batch(batch_parameters={"dataframe": frame})
            suite = gx.ExpectationSuite(name=suite_name, expectations=expectations)
            with _configurations_memoized():
                result = batch.validate(suite, result_format=RESULT_FORMAT)
        report.evaluated += len(result.results)
        report.failures += [_failure(table, r) for r in result.results if not r.success]
    report.failures.sort(key=lambda f: (f.table, f.expectation, f.column))
    return report


def _load_tables(path: Path, timezone: str) -> dict[str, pd.DataFrame]:
    """The non-empty analytics tables that exist, as pandas frames (times in `timezone`)."""
    if not path.is_file():
        raise SeaportError(f"no analytics warehouse at {path}")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise SeaportError(f"cannot open {path} read-only: {type(exc).__name__}") from None
    try:
        con.execute("SET TimeZone = ?", [timezone])
        present = {
            row[0]
            for row in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()
        }
        frames = {t: con.execute(f'SELECT * FROM "{t}"').df() for t in COLUMNS if t in present}
    finally:
        con.close()
    return {t: f for t, f in frames.items() if len(f)}


def _with_derived_columns(
    table: str, frame: pd.DataFrame, k: int | None, timezone: str
) -> tuple[pd.DataFrame, list[str]]:
    """`frame` with the helper columns of its table's checks, and their names. A helper whose
    source column is missing or can't be read is left out, with its check (the schema or the
    type check reports the cause)."""
    derived: dict[str, pd.Series] = {}
    if "hour" in frame.columns:
        # How far into its hour (µs, in the warehouse's time zone) each `hour` lies: zero for a
        # correct one. In the warehouse's zone because a zone with a :30 offset (e.g. India)
        # starts its hours at :30 UTC.
        try:
            local = pd.to_datetime(frame["hour"], utc=True).dt.tz_convert(timezone)
            derived[_HOUR_OFFSET] = (local.dt.minute * 60 + local.dt.second) * 1_000_000 + local.dt.microsecond
        except (TypeError, ValueError):
            pass
    if k is not None and table in VISITORS_OF and "visitors" in frame.columns:
        visitors = pd.to_numeric(frame["visitors"], errors="coerce")
        derived[_VISITORS_UNDER_K] = ((visitors > 0) & (visitors < k)).fillna(False).astype(bool)
    for column in _text_columns(table):
        if column in frame.columns:
            values = frame[column]
            flagged = {v for v in values.dropna().unique() if find_identifiers(str(v))}
            derived[_IDENTIFIER_IN + column] = values.isin(flagged).astype(bool)
    return frame.assign(**derived), list(derived)


def _with_run_columns(coverage: pd.DataFrame, run: _Run) -> pd.DataFrame:
    """`coverage_daily` with the day (else null) and the count (else 0) of each `devices_daily`
    row of the run's days (every stored event is counted in `devices_daily`)."""
    try:
        days = pd.to_datetime(coverage["day"]).dt.date
        of_run = (coverage["table_name"] == "devices_daily") & days.isin(set(run.days))
        counted = pd.to_numeric(coverage["counted"], errors="coerce").fillna(0)
    except (KeyError, TypeError, ValueError):  # the table's own suite reports what is wrong
        return pd.DataFrame({_RUN_DAY: pd.Series([], dtype="object"), _RUN_COUNTED: pd.Series([], dtype="int64")})
    return pd.DataFrame(
        {
            _RUN_DAY: days.where(of_run, None).astype("object"),
            _RUN_COUNTED: counted.where(of_run, 0).astype("int64"),
        }
    )


def _text_columns(table: str) -> list[str]:
    return [c for c in COLUMNS[table] if c in TEXT_COLUMNS]


def _expectations(table: str, k: int | None, derived: list[str]) -> list[Any]:
    """The expectations of one table (GX expectation objects), the one place for each; `derived`:
    the helper columns added to its frame (`_with_derived_columns`)."""
    import great_expectations.expectations as gxe

    columns = COLUMNS[table]
    # 1. schema and types: exactly the contract's columns (and the helpers added here)
    found: list[Any] = [gxe.ExpectTableColumnsToMatchSet(column_set=columns + derived, exact_match=True)]
    if "hour" in columns:
        found.append(gxe.ExpectColumnValuesToBeOfType(column="hour", type_=_ZONED_TYPE))
    found += [gxe.ExpectColumnValuesToBeOfType(column=c, type_=_DATE_TYPE) for c in columns if c in DATE_COLUMNS]
    found += [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in NOT_NULL[table]]
    dims = DIMENSIONS[table]
    if len(dims) > 1:
        found.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=dims))
    else:
        found.append(gxe.ExpectColumnValuesToBeUnique(column=dims[0]))
    # 2. and 3. counts whole, non-negative, and with k not under k (R4)
    for count in COUNTS[table]:
        found.append(gxe.ExpectColumnValuesToBeInTypeList(column=count, type_list=_INTEGER_TYPES))
        if count in K_COUNTS:
            floor = k or 0
        elif count == "visitors" and table in SUBJECT_COUNTS:
            floor = max(1, k or 1)
        elif count == "hours":  # the hours an hourly row holds: 1, or a block of quiet hours
            floor = 1
        else:
            floor = 0
        found.append(gxe.ExpectColumnValuesToBeBetween(column=count, min_value=floor))
    if _VISITORS_UNDER_K in derived:  # visitors: 0 (stands on nobody) or >= k
        found.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=_VISITORS_UNDER_K, value_set=[False], description=f"visitors is 0 or at least k = {k} (R4)"
            )
        )
    if table in VISITORS_OF:
        found.append(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=VISITORS_OF[table], column_B="visitors", or_equal=True)
        )
    if _HOUR_OFFSET in derived:
        found.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=_HOUR_OFFSET, min_value=0, max_value=0, description="hour starts at minute 0 (local time)"
            )
        )
    if "avg_duration_ms" in columns:
        found.append(gxe.ExpectColumnValuesToBeBetween(column="avg_duration_ms", min_value=0))  # nulls pass
    if table == "devices_daily":
        # a major version, or the roll-up row of the suppressed cells
        found.append(gxe.ExpectColumnValuesToMatchRegex(column="os_version_major", regex=r"^([0-9]+|\(other\))$"))
    if table == "sessions_daily":
        found.append(gxe.ExpectColumnValuesToBeBetween(column="bounce_rate", min_value=0, max_value=1))
        found.append(gxe.ExpectColumnValuesToBeBetween(column="avg_session_duration_ms", min_value=0))
    # 4. no value shaped like an identifier (R4; the detector of `seaport audit`)
    found += [
        gxe.ExpectColumnValuesToBeInSet(
            column=c,
            value_set=[False],
            description=f"no value of {c.removeprefix(_IDENTIFIER_IN)} is shaped like an identifier (R4)",
        )
        for c in derived
        if c.startswith(_IDENTIFIER_IN)
    ]
    return found


def _run_expectations(run: _Run) -> list[Any]:
    """5. every day of the run counted in `coverage_daily` (for `devices_daily`); 6. no more events
    counted over those days than all runs stored."""
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnUniqueValueCountToBeBetween(
            column=_RUN_DAY,
            min_value=len(set(run.days)),
            description="each day of the run has a coverage_daily row for devices_daily",
        ),
        gxe.ExpectColumnSumToBeBetween(
            column=_RUN_COUNTED,
            max_value=run.events_stored,
            description="devices_daily counted over the run's days <= the events stored by all runs (ingest_runs)",
        ),
    ]


def _failure(table: str, result: Any) -> Failure:
    """A failed GX result as a `Failure` (counts only: no cell value leaves the warehouse)."""
    config = result.expectation_config
    kwargs = config.kwargs
    if "column_A" in kwargs:
        column = f"{kwargs['column_B']}<={kwargs['column_A']}"
    else:
        column = kwargs.get("column") or ",".join(kwargs.get("column_list", [])) or "(columns)"
    hint = ""
    if column.startswith(_IDENTIFIER_IN):
        column, hint = column.removeprefix(_IDENTIFIER_IN), "identifier-shaped"
    elif column in _DERIVED:
        column, hint = _DERIVED[column]
    if result.exception_info.get("raised_exception") is False:
        detail = _unexpected(result.result, kwargs)
    else:
        detail = _exception_message(result.exception_info)
    return Failure(table, config.type, column, detail + (f" ({hint})" if hint else ""))


def _unexpected(result: dict[str, Any], kwargs: dict[str, Any]) -> str:
    if "unexpected_count" in result:
        return f"{result['unexpected_count']} of {result['element_count']} rows unexpected"
    observed = result.get("observed_value")
    if kwargs.get("column") == _RUN_DAY:
        days = kwargs["min_value"]
        return f"{days - (observed or 0)} of {days} days missing"
    if isinstance(observed, list):  # column names (the schema): the ones out of contract
        expected = set(kwargs.get("column_set") or [])
        extra, missing = sorted(set(observed) - expected), sorted(expected - set(observed))
        return f"extra columns {extra}, missing columns {missing}"
    return f"observed {observed}"  # a column-level check: a dtype, a sum of counts


def _exception_message(info: dict[str, Any]) -> str:
    """The first error GX met (e.g. a missing column), one line."""
    nested = [v for v in info.values() if isinstance(v, dict)] or [info]
    message = str(nested[0].get("exception_message") or "error")
    return "error: " + message.splitlines()[0]


# -- GX: one ephemeral context per process -------------------------------------------------------


_warming: list[threading.Thread] = []


def warm_up_in_background() -> None:
    """Start importing GX and making the process's context in a thread (seconds, once a process),
    so that a run's gate finds both ready. Until `warm_up()` joins it, the caller must import
    nothing new: two threads importing at once can deadlock on a circular import."""
    if not _warming and _new_context.cache_info().currsize == 0:
        _warming.append(threading.Thread(target=_new_context, name="gx-warm-up", daemon=True))
        _warming[0].start()


def warm_up() -> None:
    """GX imported and the context made: waits for `warm_up_in_background`, else does it now."""
    _context()


def _context() -> Any:
    """The process's GX context, once any warm-up in progress is done: every use goes through
    here, so none makes a second context beside the warm-up thread."""
    while _warming:
        _warming.pop().join()
    return _new_context()


# GX imports these at the top of the one expectation we never use (KL divergence): ~40 % of its
# import (scipy.stats alone ~2.5 s). While GX imports, each is a stand-in that imports the real
# module on its first use, so nothing changes for code that does use them.
UNUSED_AT_IMPORT = ("scipy.stats", "altair")


class _OnFirstUse(types.ModuleType):
    """A module's stand-in: its first attribute read imports the real module and reads from it."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # the import system's probes (__path__, __spec__…): not a use
            raise AttributeError(attr)
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


@contextmanager
def _deferred(names: tuple[str, ...]) -> Iterator[None]:
    """Stand-ins for the modules `names` not yet imported, in `sys.modules` only while the block
    runs: an import after it gets the real module."""
    held = {name: _OnFirstUse(name) for name in names if name not in sys.modules}
    sys.modules.update(held)
    try:
        yield
    finally:
        for name, module in held.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


@lru_cache(maxsize=1)
def _new_context() -> Any:
    """The process's GX context (ephemeral: nothing written but the data docs asked for), with
    one pandas data source."""
    _quiet_gx()  # before the import: GX logs while it imports
    with _deferred(UNUSED_AT_IMPORT):
        import great_expectations as gx  # ~2-5 s to import: only when a check runs
        from great_expectations.data_context.types.base import ProgressBarsConfig

    from great_expectations.expectations.expectation import Expectation

    _quiet_gx()  # again: one GX module sets its own logger to INFO as it is imported
    _memoize_configurations(Expectation)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("analytics")
    for name in (*COLUMNS, _RUN_SUITE):  # a data frame asset per suite, while the warm-up runs
        source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
    return context


_definitions: dict[str, tuple[list[tuple[str, dict[str, Any], str | None]], Any]] = {}


def _definition(name: str, expectations: list[Any]) -> Any:
    """The validation definition `name` (a data frame asset and a suite of that name), re-made
    only when its expectations change."""
    import great_expectations as gx

    configs = [(e.expectation_type, dict(e.configuration.kwargs), e.description) for e in expectations]
    cached = _definitions.get(name)
    if cached is not None and cached[0] == configs:
        return cached[1]
    context = _context()
    suite = context.suites.add_or_update(gx.ExpectationSuite(name=name, expectations=expectations))
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=_batch_definition(name), suite=suite)
    )
    _definitions[name] = (configs, definition)
    return definition


@cache
def _batch_definition(name: str) -> Any:
    """The whole-dataframe batch definition of the suite `name`'s data frame asset."""
    return _context().data_sources.get("analytics").get_asset(name).get_batch_definition("all")


# GX reads an expectation's `configuration`, a new object built from its pydantic fields each
# time, once per keyword argument it looks up: ~80 times an expectation a validation, ~25 % of the
# gate. While a validation runs, nothing changes an expectation, so each is built once then.
_memo = threading.local()


def _memoize_configurations(expectation: type) -> None:
    """Make `expectation.configuration` (GX's base class) built once per object inside
    `_configurations_memoized()`, and as before outside it."""
    build = expectation.configuration.fget  # type: ignore[attr-defined]

    def configuration(self: Any) -> Any:
        built = getattr(_memo, "built", None)
        if built is None:
            return build(self)
        held = built.get(id(self))
        if held is None:  # (object, its configuration): the object held, so its id stays its own
            held = built[id(self)] = (self, build(self))
        return held[1]

    expectation.configuration = property(configuration)  # type: ignore[attr-defined]


@contextmanager
def _configurations_memoized() -> Iterator[None]:
    _memo.built = {}
    try:
        yield
    finally:
        _memo.built = None


def _write_docs(docs_dir: Path) -> Path:
    """GX data docs of the context's validation results (the last validation's) under
    `docs_dir`: a filesystem site built by GX; returns its index.html."""
    context = _context()
    site = {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir.resolve())},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    if _DOCS_SITE in context.list_data_docs_sites():
        context.update_data_docs_site(_DOCS_SITE, site)
    else:
        context.add_data_docs_site(_DOCS_SITE, site)
    context.build_data_docs(site_names=[_DOCS_SITE])
    return docs_dir / "index.html"


def _quiet_gx() -> None:
    """GX logs at INFO/WARNING while it builds a context; the caller wants only the report."""
    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.ERROR)
