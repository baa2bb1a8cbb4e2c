"""Per-entity daily summaries of `security_events`: the detectors' baselines (R11).

Counts per entity per day are heavy-tailed, so a detector never compares an entity with the day's
crowd by mean and standard deviation; it compares day D with the same entity's own trailing
history (default 28 days), or with the population of its kind when the entity is new. That
history lives in the security store beside the events, as small derived tables:

- `security_entity_days(day, entity_kind, entity, <counts>)`: one row per subject, device, IP
  prefix and path active on a day, and one per local hour of the whole site (`entity_kind =
  'site'`, `entity = '00'..'23'`);
- `security_subject_links(day, subject, link_kind, value)`: the devices, IP prefixes, user-agent
  families and local hours each subject was seen with on a day (what "new for this subject" means);
- `security_summary_days(day, events, timezone, computed_at)`: which days are summarized, from how
  many events.

Cost follows what is new: a report summarizes its own day and only those baseline days that are
missing or whose number of events changed since (an erasure or a late batch); 28 days of history
are then read from the summaries, never from the events. Rows of erased subjects and of minors
without guardian consent leave the summaries at every report (R8, R9), and summaries older than the
retention go.

Scoring is robust: the median and the MAD of log(1 + count) over the entity's active baseline days
(`robust_scores`); below `min_history_days` the population's median and MAD over the same days.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from dataclasses import dataclass

import duckdb

from transforms.consent import blocks_sql

SUMMARY_DDL = """
CREATE TABLE IF NOT EXISTS security_entity_days (
    day DATE, entity_kind VARCHAR, entity VARCHAR,
    events BIGINT, access BIGINT, beacons BIGINT, login_fail BIGINT, login_ok BIGINT, fail_accounts BIGINT,
    pages BIGINT, not_found BIGINT, errors_5xx BIGINT, subjects BIGINT, devices BIGINT, prefixes BIGINT,
    hours BIGINT, sensitive BIGINT,
    PRIMARY KEY (day, entity_kind, entity));
CREATE TABLE IF NOT EXISTS security_subject_links (day DATE, subject VARCHAR, link_kind VARCHAR, value VARCHAR);
CREATE TABLE IF NOT EXISTS security_summary_days (
    day DATE PRIMARY KEY, events BIGINT, timezone VARCHAR, computed_at TIMESTAMPTZ);
"""

METRICS = (
    "events", "access", "beacons", "login_fail", "login_ok", "fail_accounts", "pages", "not_found", "errors_5xx",
    "subjects", "devices", "prefixes", "hours", "sensitive",
)  # fmt: skip
ENTITY_KINDS = ("subject", "device", "ip_prefix", "path", "site")
# entity kind -> the column of day_events it groups by
_GROUP_COLUMN = {"subject": "subject", "device": "device", "ip_prefix": "prefix", "path": "path"}
# Metrics worth computing per kind (the others stay NULL): distinct counts are the costly part.
_KIND_METRICS = {
    "subject": ("events", "access", "beacons", "login_fail", "login_ok", "pages", "not_found", "errors_5xx",
                "devices", "prefixes", "hours", "sensitive"),
    "device": ("events", "beacons", "subjects", "prefixes", "pages"),
    "ip_prefix": ("events", "access", "beacons", "login_fail", "login_ok", "fail_accounts", "pages", "not_found",
                  "errors_5xx", "subjects"),
    "path": ("events", "access", "errors_5xx", "subjects"),
}  # fmt: skip
_METRIC_SQL = {
    "events": "count(*)",
    "access": "count(*) FILTER (source = 'access')",
    "beacons": "count(*) FILTER (source = 'beacon')",
    "login_fail": "count(*) FILTER (login_fail)",
    "login_ok": "count(*) FILTER (login_ok)",
    "fail_accounts": "count(DISTINCT subject) FILTER (login_fail)",
    "pages": "count(DISTINCT path)",
    "not_found": "count(DISTINCT path) FILTER (status = '404')",
    "errors_5xx": "count(*) FILTER (status LIKE '5%')",
    "subjects": "count(DISTINCT subject)",
    "devices": "count(DISTINCT device)",
    "prefixes": "count(DISTINCT prefix)",
    "hours": "count(DISTINCT hour)",
    "sensitive": "count(*) FILTER (sensitive)",
}
LINK_KINDS = {"device": "device", "ip_prefix": "prefix", "agent": "agent", "hour": "lpad(hour::VARCHAR, 2, '0')"}
MAD_TO_SIGMA = 1.4826  # the MAD of a normal distribution times this is its standard deviation


@dataclass(frozen=True)
class BaselineConfig:
    """How much history a detector compares with, and what a login and a sensitive action are."""

    baseline_days: int = 28
    min_history_days: int = 3  # active baseline days an entity needs to be judged against itself
    min_population: int = 20  # entity-days the population needs to serve as a fallback
    sigma_floor: float = 0.4  # in log(1 + count) units: a flat history does not make every change huge
    retention_days: int = 180
    login_markers: tuple[str, ...] = ("login", "signin", "sign-in", "auth", "token", "otp")
    # Paths an account takeover goes for (a prefix match on the path without its query).
    sensitive_paths: tuple[str, ...] = (
        "/user/profile/edit", "/user/bankcard", "/user/phone", "/user/password", "/api/user/bankcard",
        "/api/user/phone", "/api/user/password", "/api/user/profile", "/claims/new", "/api/claims",
        "/policy/transfer", "/api/policy/transfer",
    )  # fmt: skip
    failed_auth_statuses: tuple[str, ...] = ("401", "403")


@dataclass(frozen=True)
class DayWindow:
    """Day D in a time zone, and the trailing baseline days before it."""

    day: dt.date
    timezone: str
    baseline_days: int

    def bounds(self, day: dt.date | None = None) -> tuple[dt.datetime, dt.datetime]:
        zone = zoneinfo.ZoneInfo(self.timezone)
        d = day or self.day
        start = dt.datetime.combine(d, dt.time(), tzinfo=zone)
        return start, dt.datetime.combine(d + dt.timedelta(days=1), dt.time(), tzinfo=zone)

    @property
    def first_baseline_day(self) -> dt.date:
        return self.day - dt.timedelta(days=self.baseline_days)

    def baseline(self) -> list[dt.date]:
        return [self.first_baseline_day + dt.timedelta(days=i) for i in range(self.baseline_days)]


def path_sql(column: str) -> str:
    """The path without query string or fragment: those may carry identifiers (R4)."""
    return f"split_part(split_part(coalesce({column}, ''), '?', 1), '#', 1)"


def _regex_any(markers: tuple[str, ...], anchored: bool) -> str:
    body = "|".join(re.escape(m) for m in markers) or "(?!)"
    return f"^({body})" if anchored else f"({body})"


def load_day_events(con: duckdb.DuckDBPyConnection, window: DayWindow, cfg: BaselineConfig, day: dt.date,
                    name: str = "day_events") -> int:  # fmt: skip
    """The day's events as a temp table with the derived columns every summary and detector uses."""
    start, end = window.bounds(day)
    fails = ", ".join(f"'{s}'" for s in cfg.failed_auth_statuses if s.isdigit())
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {name} AS
        SELECT source, subject_pseudonym AS subject, device_pseudonym AS device, ip_prefix AS prefix,
               {path_sql("page_or_path")} AS path, event_or_status AS status, method, user_agent AS agent,
               event_time, hour(timezone(?, event_time)) AS hour,
               source = 'access' AND upper(coalesce(method, '')) = 'POST'
                 AND regexp_matches(lower({path_sql("page_or_path")}), ?) AS login_try,
               source = 'access' AND regexp_matches({path_sql("page_or_path")}, ?) AS sensitive
        FROM security_events WHERE event_time >= ? AND event_time < ?""",
        [window.timezone, _regex_any(cfg.login_markers, False), _regex_any(cfg.sensitive_paths, True), start, end],
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {name} AS
        SELECT *, login_try AND status IN ({fails or "''"}) AS login_fail,
               login_try AND status LIKE '2%' AS login_ok FROM {name}"""
    )
    return int(con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0])


def summarize_day(con: duckdb.DuckDBPyConnection, window: DayWindow, cfg: BaselineConfig, day: dt.date,
                  loaded: str | None = None) -> int:  # fmt: skip
    """(Re)write one day's summaries from its events; returns the day's event count.

    `loaded` names a temp table that already holds the day's events (`load_day_events`), which
    is then read instead of loading them again, and kept."""
    events_table = loaded or "summary_events"
    if loaded:
        events = int(con.execute(f"SELECT count(*) FROM {events_table}").fetchall()[0][0])
    else:
        events = load_day_events(con, window, cfg, day, events_table)
    con.execute("BEGIN TRANSACTION")
    try:
        for table in ("security_entity_days", "security_subject_links"):
            con.execute(f"DELETE FROM {table} WHERE day = ?", [day])
        for kind, column in _GROUP_COLUMN.items():
            wanted = _KIND_METRICS[kind]
            selects = ", ".join(f"{_METRIC_SQL[m] if m in wanted else 'NULL'} AS {m}" for m in METRICS)
            con.execute(
                f"""INSERT INTO security_entity_days BY NAME
                    SELECT ?::DATE AS day, ? AS entity_kind, {column} AS entity, {selects}
                    FROM {events_table} WHERE {column} IS NOT NULL AND {column} <> '' GROUP BY {column}""",
                [day, kind],
            )
        site = ("events", "access", "login_fail", "login_ok", "fail_accounts", "errors_5xx", "subjects", "prefixes")
        selects = ", ".join(f"{_METRIC_SQL[m] if m in site else 'NULL'} AS {m}" for m in METRICS)
        con.execute(
            f"""INSERT INTO security_entity_days BY NAME
                SELECT ?::DATE AS day, 'site' AS entity_kind, lpad(hour::VARCHAR, 2, '0') AS entity, {selects}
                FROM {events_table} GROUP BY hour""",
            [day],
        )
        links = " UNION ".join(
            f"SELECT DISTINCT subject, '{kind}' AS link_kind, {expr} AS value FROM {events_table} "
            f"WHERE subject IS NOT NULL AND {expr} IS NOT NULL"
            for kind, expr in LINK_KINDS.items()
        )
        con.execute(f"INSERT INTO security_subject_links SELECT ?::DATE, * FROM ({links})", [day])
        con.execute(
            "INSERT OR REPLACE INTO security_summary_days VALUES (?, ?, ?, now())", [day, events, window.timezone]
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    if not loaded:
        con.execute(f"DROP TABLE IF EXISTS {events_table}")
    return events


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    query = "SELECT count(*) FROM information_schema.tables WHERE table_name = ?"
    return bool(con.execute(query, [name]).fetchall()[0][0])


def forget_blocked_subjects(con: duckdb.DuckDBPyConnection, timezone: str) -> None:
    """R8, R9: summaries hold rows per subject, so an erased subject leaves them, and a minor
    without a guardian's consent leaves every day up to the end of the block (`blocks_sql`, as
    the warehouse deletes their events). Anyone else whose consent changed stays."""
    if not (_has_table(con, "erasures") and _has_table(con, "minor_flags")):
        return  # not a store the warehouse made (it makes both at once): nobody is blocked
    con.execute("CREATE OR REPLACE TEMP TABLE summary_blocks AS " + blocks_sql("minor_flags", "erasures"))
    # a day that began before the block ended may hold blocked events: its row goes
    began_blocked = "day::TIMESTAMP < timezone(?, b.blocked_until)"
    con.execute(
        f"""DELETE FROM security_entity_days USING summary_blocks b
            WHERE entity_kind = 'subject' AND entity = b.subject_pseudonym AND {began_blocked}""",
        [timezone],
    )
    con.execute(
        f"""DELETE FROM security_subject_links USING summary_blocks b
            WHERE subject = b.subject_pseudonym AND {began_blocked}""",
        [timezone],
    )


def refresh_summaries(con: duckdb.DuckDBPyConnection, window: DayWindow, cfg: BaselineConfig) -> dict[str, int]:
    """Summaries of day D (always) and of the baseline days that are missing or stale.

    A baseline day is stale when its number of events differs from the one it was summarized
    from. A day whose events are all gone (retention) keeps its summary: it is all that is left.
    Day D's events are loaded once, as the temp table `day_events` the detectors read, and
    summarized from there."""
    con.execute(SUMMARY_DDL)
    forget_blocked_subjects(con, window.timezone)
    first, end = window.bounds(window.first_baseline_day)[0], window.bounds()[1]
    counts: dict[dt.date, int] = {}
    if _has_table(con, "security_events"):
        rows = con.execute(
            """SELECT timezone(?, event_time)::DATE AS d, count(*) FROM security_events
               WHERE event_time >= ? AND event_time < ? GROUP BY d""",
            [window.timezone, first, end],
        ).fetchall()
        counts = {d: int(n) for d, n in rows}
    stored = dict(con.execute("SELECT day, events FROM security_summary_days").fetchall())
    done = {"summarized": 0, "reused": 0}
    for day in window.baseline():
        n = counts.get(day, 0)
        if n == 0 or stored.get(day) == n:
            done["reused"] += day in stored
            continue
        summarize_day(con, window, cfg, day)
        done["summarized"] += 1
    if _has_table(con, "security_events"):
        load_day_events(con, window, cfg, window.day)
        summarize_day(con, window, cfg, window.day, loaded="day_events")
        done["summarized"] += 1
    oldest = window.day - dt.timedelta(days=max(cfg.retention_days, window.baseline_days))
    for table in ("security_entity_days", "security_subject_links", "security_summary_days"):
        con.execute(f"DELETE FROM {table} WHERE day < ?", [oldest])
    return done


@dataclass(frozen=True)
class Scored:
    """An entity's value of a metric on day D, against its baseline."""

    entity: str
    value: int
    baseline: float  # the typical count: exp(median of log(1 + count)) - 1
    z: float  # robust z of log(1 + value)
    own_days: int  # its own active baseline days; 0: the population's; -1: the day's crowd; -2: a prior

    @property
    def against(self) -> str:
        if self.own_days > 0:
            return f"its own {self.own_days} active days"
        if self.own_days == 0:
            return "the population's baseline"
        return (
            "the day's population (no history yet)" if self.own_days == -1 else "a prior of 1 (too few to learn from)"
        )


def robust_scores(con: duckdb.DuckDBPyConnection, window: DayWindow, cfg: BaselineConfig, kind: str, metric: str,
                  minimum: int, extra_where: str = "") -> list[Scored]:  # fmt: skip
    """Entities of `kind` whose `metric` on day D is at least `minimum`, each with its robust z.

    The baseline is the median and MAD of log(1 + metric) over the entity's baseline days on which
    the metric was above zero (its typical active day); an entity with fewer than
    `min_history_days` such days is compared with the population of its kind over the same days.
    Without history, the day's own population serves (robustly); when too few entities do this
    at all, a prior of one a day, so only the count floors of the detectors stand."""
    if metric not in METRICS or kind not in ENTITY_KINDS:
        raise ValueError(f"unknown metric {kind}.{metric}")
    lo, hi = window.first_baseline_day, window.day
    rows = con.execute(
        f"""WITH today AS (
                SELECT entity, {metric} AS value FROM security_entity_days
                WHERE day = ? AND entity_kind = ? AND {metric} >= ? {extra_where}),
            hist AS (
                SELECT h.entity, median(ln(1 + h.{metric})) AS med, mad(ln(1 + h.{metric})) AS mad, count(*) AS n
                FROM security_entity_days h SEMI JOIN today t ON h.entity = t.entity
                WHERE h.entity_kind = ? AND h.day >= ? AND h.day < ? AND h.{metric} > 0 GROUP BY h.entity),
            pop AS (
                SELECT median(ln(1 + {metric})) AS med, mad(ln(1 + {metric})) AS mad, count(*) AS n
                FROM security_entity_days WHERE entity_kind = ? AND day >= ? AND day < ? AND {metric} > 0),
            pop_today AS (
                SELECT median(ln(1 + {metric})) AS med, mad(ln(1 + {metric})) AS mad, count(*) AS n
                FROM security_entity_days WHERE entity_kind = ? AND day = ? AND {metric} > 0)
            SELECT t.entity, t.value, h.med, h.mad, coalesce(h.n, 0), pop.med, pop.mad, pop.n,
                   pop_today.med, pop_today.mad, pop_today.n
            FROM today t LEFT JOIN hist h USING (entity) CROSS JOIN pop CROSS JOIN pop_today
            ORDER BY t.entity""",
        [window.day, kind, minimum, kind, lo, hi, kind, lo, hi, kind, window.day],
    ).fetchall()
    scored = []
    for entity, value, med, mad, n, pop_med, pop_mad, pop_n, day_med, day_mad, day_n in rows:
        if n >= cfg.min_history_days:
            centre, spread, own = float(med), float(mad), int(n)
        elif pop_n and pop_n >= cfg.min_population:
            centre, spread, own = float(pop_med), float(pop_mad), 0
        elif day_n and day_n >= cfg.min_population:  # no history yet: the day's own crowd, robustly
            centre, spread, own = float(day_med), float(day_mad), -1
        else:  # too few entities do this at all to learn from: against a prior of one a day
            centre, spread, own = math.log(2), 0.0, -2
        z = (math.log1p(value) - centre) / max(MAD_TO_SIGMA * spread, cfg.sigma_floor)
        scored.append(Scored(entity, int(value), round(math.expm1(centre), 1), round(z, 2), own))
    return scored


__all__ = [
    "BaselineConfig",
    "DayWindow",
    "Scored",
    "load_day_events",
    "refresh_summaries",
    "robust_scores",
    "summarize_day",
]
