"""The published cells, and when a cell may be shown (R4): every figure stands on k subjects.

What each analytics table counts (`cell_queries`: one SQL per table over the day's events with
their consent at event time, `granted`, and their local `hour` and `day`), and the k rule over it:

- `suppress_small_cells`: a row is published only when every figure of it stands on at least k
  distinct subjects (`_subjects`, the fewest behind any count of the row); an average over fewer
  than k is null; `visitors` counts consenting subjects only and is 0 or at least k;
- the events of suppressed cells roll up, per hour or day, into one `(other)` row under the same
  rule (`roll_up_suppressed`), quiet hours merging until they stand on k;
- `count_suppressed`: what was suppressed and what the published rows still cover
  (`suppressed_cells`, `coverage_daily`);
- `publish_retention`: weekly cohorts of consenting visitors, under the same k.

The sink (`sinks/warehouse.py`) decides which days are rebuilt and runs these over its tables.
"""

from __future__ import annotations

from typing import Any

import duckdb

# The tables whose suppressed cells roll up, per hour or day, into one row of `(other)`
# dimensions: (time column, dimension columns).
OTHER = "(other)"
ROLLUP_DIMENSIONS = {
    "page_views_hourly": ("hour", ("page",)),
    "page_views_daily": ("day", ("page",)),
    "clicks_hourly": ("hour", ("page", "element")),
    "clicks_daily": ("day", ("page", "element")),
    "devices_daily": ("day", ("device_model", "os", "os_version_major")),
    "audience_daily": ("day", ("gender", "country", "city", "language")),
}

# The aggregate tables, each with the column that counts what it stands on (coverage: the share
# of that count its published rows, `(other)` rows included, hold).
COUNTED = {
    "page_views_hourly": "views",
    "page_views_daily": "views",
    "clicks_hourly": "clicks",
    "clicks_daily": "clicks",
    "devices_daily": "events",
    "audience_daily": "visitors",
    "sessions_daily": "sessions",
    "retention_weekly": "visitors",
}
ANALYTICS_TABLES = tuple(COUNTED)
# Retention cohorts are the weeks of a consenting subject's first visit within this many weeks.
RETENTION_WEEKS = 12


def cell_queries(k: int) -> dict[str, str]:
    """Each aggregate table's cells as SQL over `{src}` (events with `granted`, `hour`, `day`),
    with `_subjects`: the fewest distinct subjects behind any figure of the cell."""
    # k holds for every figure of a row, each over its own contributors: `_subjects` is the
    # fewest subjects behind any count of the row (the row is published only at >= k), and an
    # average from fewer than k subjects is null. `visitors` stands on the consenting subjects
    # it counts: a row is published only when they are at least k, or none (a 0 stands on nobody).
    page_views = """
            SELECT {time}, page,
                   count(DISTINCT event_id) FILTER (WHERE event = 'page_view') AS views,
                   count(DISTINCT subject_pseudonym) FILTER (WHERE granted AND event = 'page_view') AS visitors,
                   CASE WHEN count(DISTINCT subject_pseudonym) FILTER (WHERE event = 'page_leave') >= {k}
                        THEN avg(duration_ms) FILTER (WHERE event = 'page_leave') END AS avg_duration_ms,
                   {versions},
                   least(count(DISTINCT subject_pseudonym) FILTER (WHERE event = 'page_view'), {visitors}) AS _subjects
            FROM {src} WHERE event IN ('page_view', 'page_leave') GROUP BY ALL"""
    clicks = """
            SELECT {time}, page, element, count(DISTINCT event_id) AS clicks,
                   count(DISTINCT subject_pseudonym) FILTER (WHERE granted) AS visitors,
                   {versions}, least(count(DISTINCT subject_pseudonym), {visitors}) AS _subjects
            FROM {src} WHERE event = 'click' GROUP BY ALL"""
    cells = {
        "page_views_hourly": page_views.replace("{time}", "hour"),
        "page_views_daily": page_views.replace("{time}", "day"),
        "clicks_hourly": clicks.replace("{time}", "hour"),
        "clicks_daily": clicks.replace("{time}", "day"),
        "devices_daily": """
            SELECT day, device_model, os, os_version_major, count(DISTINCT event_id) AS events,
                   count(DISTINCT subject_pseudonym) FILTER (WHERE granted) AS visitors,
                   {versions}, least(count(DISTINCT subject_pseudonym), {visitors}) AS _subjects
            FROM {src} GROUP BY ALL""",
        "audience_daily": """
            SELECT day, gender, country, city, language,
                   count(DISTINCT subject_pseudonym) AS visitors,
                   {versions}, count(DISTINCT subject_pseudonym) AS _subjects
            FROM {src} WHERE granted GROUP BY ALL""",
        "sessions_daily": """
            SELECT day, count(*) AS sessions, avg(duration_ms) AS avg_session_duration_ms,
                   avg(CASE WHEN views <= 1 THEN 1.0 ELSE 0.0 END) AS bounce_rate,
                   array_to_string(list_sort(list_distinct(flatten(list(versions)))), ',') AS policy_version,
                   len(list_distinct(flatten(list(subjects)))) AS _subjects
            FROM (SELECT session_pseudonym, min(day) AS day, list(DISTINCT subject_pseudonym) AS subjects,
                         list(DISTINCT policy_version) AS versions,
                         coalesce(sum(duration_ms) FILTER (WHERE event = 'page_leave'), 0) AS duration_ms,
                         count(DISTINCT event_id) FILTER (WHERE event = 'page_view') AS views
                  FROM sev GROUP BY session_pseudonym)
            GROUP BY day""",
    }
    # Every published row names the field-policy version(s) that made its events.
    versions = "string_agg(DISTINCT policy_version, ',' ORDER BY policy_version) AS policy_version"
    visitors = "CASE WHEN visitors = 0 THEN {k} ELSE visitors END"  # 0 or >= k
    cells = {
        table: sql.replace("{versions}", versions).replace("{visitors}", visitors).replace("{k}", str(k))
        for table, sql in cells.items()
    }
    return cells


def suppress_small_cells(con: duckdb.DuckDBPyConnection, table: str, sql: str, k: int) -> None:
    """Publish into `main.{table}` the cells (temp table `cells`, made by `sql` over `ev`) that
    stand on at least k subjects, and roll the others up into `(other)` rows."""
    con.execute(
        f"""INSERT INTO main.{table} BY NAME SELECT * EXCLUDE (_subjects) FROM cells
            WHERE _subjects >= {k} ORDER BY ALL"""
    )
    if table in ROLLUP_DIMENSIONS:
        roll_up_suppressed(con, table, sql, k)


def roll_up_suppressed(con: duckdb.DuckDBPyConnection, table: str, sql: str, k: int) -> None:
    """Per hour or day, the events of the suppressed cells as one row whose dimensions are all
    `(other)`, published under the same k rule (distinct counts over those events, not sums of
    the cells')."""
    time, dims = ROLLUP_DIMENSIONS[table]
    same_cell = " AND ".join([f"e.{time} = s.{time}", *(f"e.{d} IS NOT DISTINCT FROM s.{d}" for d in dims)])
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE other_ev AS
            SELECT * REPLACE ({", ".join(f"'{OTHER}' AS {d}" for d in dims)}) FROM ev e
            SEMI JOIN (SELECT * FROM cells WHERE _subjects < {k}) s ON {same_cell}"""
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE other_cells AS {sql.replace('{src}', 'other_ev')}")
    con.execute(
        f"INSERT INTO main.{table} BY NAME SELECT * EXCLUDE (_subjects) FROM other_cells WHERE _subjects >= {k}"
    )
    if time == "hour":
        _roll_up_quiet_hours(con, table, sql, k)
    con.execute("DROP TABLE other_ev")
    con.execute("DROP TABLE other_cells")


def _roll_up_quiet_hours(con: duckdb.DuckDBPyConnection, table: str, sql: str, k: int) -> None:
    """An hourly table's `(other)` rows of quiet hours that still stand on fewer than k
    subjects: per day, consecutive such hours merge (in time order) until their events stand
    on k, and publish as one `(other)` row at the block's first hour whose `hours` says how
    many hours it holds. What is left at the day's end stays suppressed. The same cell SQL
    decides, so every figure keeps the k rule.

    In few statements, whatever the number of days and hours: each step weighs, for every day
    at once, every block from the day's next quiet hour on (`_subjects` of the cell SQL over one
    row per hour, subject, consent and event kind: all a distinct count of subjects reads), and
    each day takes its shortest block that stands; a day stops when none does."""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE quiet_ev AS SELECT * FROM other_ev
            WHERE hour NOT IN (SELECT hour FROM other_cells WHERE _subjects >= {k})"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE quiet_who AS
           SELECT DISTINCT ON (hour, subject_pseudonym, granted, event) * FROM quiet_ev"""
    )
    days: dict[Any, list[Any]] = {}
    for day, hour in con.execute("SELECT DISTINCT day, hour FROM quiet_ev ORDER BY hour").fetchall():
        days.setdefault(day, []).append(hour)
    first = dict.fromkeys(days, 0)  # per day, its next quiet hour not yet in a block
    blocks: list[tuple[Any, Any, int]] = []  # (hour, block's first hour, hours in the block) of each published block
    while first:
        # every block of each day from its next quiet hour: (hour, the block's last hour)
        members = [
            (days[d][m], days[d][j]) for d, i in first.items() for j in range(i, len(days[d])) for m in range(i, j + 1)
        ]
        weighed = _weigh_blocks(con, sql, "quiet_who", members)
        for day, i in list(first.items()):
            hours = days[day]
            ends = [j for j in range(i, len(hours)) if (weighed.get(hours[j]) or 0) >= k]
            if ends:
                blocks += [(hours[m], hours[i], ends[0] - i + 1) for m in range(i, ends[0] + 1)]
            if not ends or ends[0] + 1 == len(hours):
                del first[day]  # the day's remainder stays suppressed
            else:
                first[day] = ends[0] + 1
    if blocks:
        sizes = {start: n for _, start, n in blocks}  # hours per block, by its first hour
        _put_blocks(con, [(hour, start) for hour, start, _ in blocks])
        cells = sql.replace("{src}", _blocks_source("quiet_ev"))
        con.execute(
            f"""INSERT INTO main.{table} BY NAME
                SELECT c.* EXCLUDE (_subjects), n.hours FROM ({cells}) c
                JOIN (SELECT unnest(?::TIMESTAMPTZ[]) AS hour, unnest(?::INTEGER[]) AS hours) n USING (hour)
                WHERE c._subjects >= {k}""",
            [list(sizes), list(sizes.values())],
        )
    for temp in ("quiet_ev", "quiet_who", "blocks"):
        con.execute(f"DROP TABLE IF EXISTS {temp}")


def _put_blocks(con: duckdb.DuckDBPyConnection, members: list[tuple[Any, Any]]) -> None:
    """Temp table `blocks`: (hour, block) per hour of each block, a block named by one of its hours."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE blocks AS SELECT unnest(?::TIMESTAMPTZ[]) AS hour, unnest(?::TIMESTAMPTZ[]) AS block",
        [[h for h, _ in members], [b for _, b in members]],
    )


def _blocks_source(events: str) -> str:
    """SQL: the events of `events` in the blocks of temp table `blocks`, each at its block's hour."""
    return f"(SELECT e.* REPLACE (b.block AS hour) FROM {events} e JOIN blocks b USING (hour))"


def _weigh_blocks(
    con: duckdb.DuckDBPyConnection, sql: str, events: str, members: list[tuple[Any, Any]]
) -> dict[Any, int]:
    """`_subjects` of the one `(other)` cell of each block of `members` (hour, block), by block."""
    _put_blocks(con, members)
    cells = sql.replace("{src}", _blocks_source(events))
    return dict(con.execute(f"SELECT hour, min(_subjects) FROM ({cells}) GROUP BY hour").fetchall())


def count_suppressed(con: duckdb.DuckDBPyConnection, table: str, day: str, cells: str, k: int) -> None:
    """Per day of `cells` (the table's cells before suppression, `_subjects` each): the cells
    suppressed and what they counted, what all cells counted, and what the published rows
    (`(other)` included) hold: `suppressed_cells` and `coverage_daily` come from it."""
    counted = COUNTED[table]
    con.execute(
        f"""INSERT INTO main.suppressed_cells_daily BY NAME
            SELECT '{table}' AS table_name, c.day, c.cells, c.events, c.counted,
                   coalesce(p.published, 0) AS published
            FROM (SELECT {day} AS day, count(*) FILTER (WHERE _subjects < {k}) AS cells,
                         coalesce(sum({counted}) FILTER (WHERE _subjects < {k}), 0) AS events,
                         coalesce(sum({counted}), 0) AS counted
                  FROM {cells} GROUP BY ALL) c
            LEFT JOIN (SELECT {day} AS day, sum({counted}) AS published FROM main.{table}
                       WHERE {day} IN (SELECT {day} FROM {cells}) GROUP BY ALL) p
            USING (day)"""
    )


def publish_retention(con: duckdb.DuckDBPyConnection, k: int, visitor_days: str) -> None:
    """`retention_weekly`: per cohort (the week of a consenting subject's first visit within
    the last RETENTION_WEEKS weeks) and weeks since, the cohort's subjects who visited with
    consent that week; rows under k are suppressed. Rebuilt whole from `visitor_days` (the
    consenting subjects per day of those weeks: subject_pseudonym, day, policy_version)."""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE weeks AS
            SELECT subject_pseudonym, date_trunc('week', day)::DATE AS week,
                   list_distinct(flatten(list(string_split(policy_version, ',')))) AS versions
            FROM {visitor_days} GROUP BY ALL"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE retention_cells AS
           SELECT f.cohort_week, ((w.week - f.cohort_week) // 7)::INTEGER AS weeks_since,
                  count(DISTINCT w.subject_pseudonym) AS visitors,
                  array_to_string(list_sort(list_distinct(flatten(list(w.versions)))), ',') AS policy_version,
                  count(DISTINCT w.subject_pseudonym) AS _subjects
           FROM weeks w JOIN (SELECT subject_pseudonym, min(week) AS cohort_week FROM weeks GROUP BY ALL) f
             USING (subject_pseudonym)
           GROUP BY ALL"""
    )
    con.execute(
        f"""CREATE OR REPLACE TABLE main.retention_weekly AS
            SELECT * EXCLUDE (_subjects) FROM retention_cells WHERE _subjects >= {k} ORDER BY ALL"""
    )
    con.execute("DELETE FROM main.suppressed_cells_daily WHERE table_name = 'retention_weekly'")
    count_suppressed(con, "retention_weekly", "cohort_week", "retention_cells", k)
    con.execute("DROP TABLE weeks")
    con.execute("DROP TABLE retention_cells")


__all__ = [
    "ANALYTICS_TABLES",
    "COUNTED",
    "OTHER",
    "RETENTION_WEEKS",
    "ROLLUP_DIMENSIONS",
    "cell_queries",
    "count_suppressed",
    "publish_retention",
    "suppress_small_cells",
]
