"""The analysts' documented views (dashboards/sql/) and `seaport sql`, on a warehouse built by
`seaport ingest` from a seeded dataset through the real broker: every view against figures
computed here from the independent model, output formats, and hostile input refused."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import select
import shlex
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from dashboards.views import SQL_DIR, create_views
from seaport.commands.sql import BUSY
from seaport.kafka.topics import create_topics
from sinks.warehouse import Warehouse
from tests.helpers import hold_write_lock
from tests.model import build_dataset, expected_duplicates, expected_tables
from tests.pipelines.test_ingest import ingest, produce

K = 3  # suppresses some cells: the `(other)` rows take part
VIEWS = [
    "audience_share",
    "daily_traffic",
    "data_quality",
    "device_share",
    "os_share",
    "page_funnel",
    "retention_matrix",
    "top_pages",
    "weekly_traffic",
]
# One example per view, as a user types it (the final report quotes these).
# The README's example queries, exactly as a user copies them
README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLES = [line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith('seaport sql "')]


def seaport_sql(warehouse: Path, *args: str | bytes, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "seaport.cli", "sql", "--warehouse", str(warehouse), *args]
    return subprocess.run(command, input=stdin or b"", capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def built(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory):
    """(warehouse, dataset): a seeded dataset of 4 days through Kafka and `seaport ingest`, k = 3."""
    root = tmp_path_factory.mktemp("sql")
    prefix = f"tsql{os.getpid()}."
    create_topics(kafka_bootstrap, prefix)
    key = root / "pseudonym.key"
    key.write_bytes(os.urandom(32))
    ds = build_dataset(seed=29, subjects=60, days=4, bad=12)
    produce(kafka_bootstrap, prefix, ds.messages)
    warehouse = root / "wh"
    ingest(kafka_bootstrap, prefix, warehouse, key, "--k", str(K))
    with duckdb.connect(str(warehouse / "analytics.duckdb"), read_only=True) as con:  # every run makes them
        made = {name for (name,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert made == set(VIEWS)
    return warehouse, ds


@pytest.fixture(scope="module")
def expected(built) -> dict[str, set[tuple]]:
    return expected_tables(built[1], k=K)


def query(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse / "analytics.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-9 * max(1, abs(b)))


def same_rows(actual: list[tuple], wanted: list[tuple]) -> bool:
    return len(actual) == len(wanted) and all(
        len(x) == len(y) and all(close(u, v) if isinstance(v, float) else u == v for u, v in zip(x, y, strict=True))
        for x, y in zip(actual, wanted, strict=True)
    )


def totals(rows, key, value) -> dict:
    out: dict = defaultdict(int)
    for r in rows:
        out[key(r)] += value(r)
    return out


# -- the views, against the model ------------------------------------------------------------
def test_every_view_has_a_documented_header_and_reads_analytics_tables_only():
    assert sorted(p.stem for p in SQL_DIR.glob("*.sql")) == VIEWS
    for path in SQL_DIR.glob("*.sql"):
        text = path.read_text(encoding="utf-8")
        header = [line for line in text.splitlines() if line.startswith("--")]
        assert header[0].startswith(f"-- {path.stem}: ") and len(header) >= 5, path.name
        assert "Caveats" in text, path.name
        body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
        assert not re.search(r"\b(st|sec)\.", body, re.IGNORECASE), path.name
        assert not re.search(r"\b(attach|read_\w+|copy)\b", body, re.IGNORECASE), path.name
    for name in ("daily_traffic", "weekly_traffic", "top_pages", "page_funnel", "audience_share", "retention_matrix"):
        assert "not additive" in (SQL_DIR / f"{name}.sql").read_text(), name


def test_daily_and_weekly_traffic(built, expected):
    warehouse, _ = built
    views = totals(expected["page_views_daily"], lambda r: r[0], lambda r: r[2])
    clicks = totals(expected["clicks_daily"], lambda r: r[0], lambda r: r[3])
    sessions = {r[0]: r for r in expected["sessions_daily"]}
    days = sorted(set(views) | set(clicks) | set(sessions))
    wanted = []
    for d in days:
        _, n, duration, bounce = sessions.get(d, (d, 0, None, None))
        wanted.append((d, views.get(d, 0), clicks.get(d, 0), n, bounce, duration))
    assert len(days) >= 4 and any(p == "(other)" for _, p, *_ in expected["page_views_daily"])
    assert same_rows(query(warehouse, "SELECT * FROM daily_traffic"), wanted)

    week = lambda d: d - timedelta(days=d.weekday())  # noqa: E731
    weekly = defaultdict(lambda: [set(), 0, 0, 0])
    for d, v, c, s, *_ in wanted:
        w = weekly[week(d)]
        w[0].add(d)
        w[1], w[2], w[3] = w[1] + v, w[2] + c, w[3] + s
    wanted_weeks = [
        (w, f"{w.isocalendar()[0]}-W{w.isocalendar()[1]:02d}", len(x[0]), *x[1:]) for w, x in sorted(weekly.items())
    ]
    assert len(wanted_weeks) == 2  # Friday to Tuesday: two ISO weeks
    assert query(warehouse, "SELECT * FROM weekly_traffic") == wanted_weeks


def test_page_funnel_and_top_pages(built, expected):
    warehouse, _ = built
    views = {(r[0], r[1]): r[2] for r in expected["page_views_daily"]}
    clicks = totals(expected["clicks_daily"], lambda r: (r[0], r[1]), lambda r: r[3])
    wanted = [
        (d, p, views.get((d, p), 0), clicks.get((d, p), 0), clicks.get((d, p), 0) / views[(d, p)] if views.get((d, p)) else None)
        for d, p in sorted(set(views) | set(clicks))
    ]  # fmt: skip
    assert same_rows(query(warehouse, "SELECT * FROM page_funnel"), wanted)

    pages = defaultdict(list)
    for _day, page, v, _visitors, avg in expected["page_views_daily"]:
        pages[page].append((v, avg))
    top = []
    for page, rows in pages.items():
        weighted = [(v, a) for v, a in rows if a is not None]
        avg = sum(v * a for v, a in weighted) / sum(v for v, _ in weighted) if weighted else None
        top.append((page, sum(v for v, _ in rows), len(rows), avg))
    top.sort(key=lambda r: (-r[1], r[0]))
    assert any(r[3] is not None for r in top)
    assert same_rows(query(warehouse, "SELECT * FROM top_pages"), top)


def test_device_os_and_audience_shares(built, expected):
    warehouse, _ = built
    devices = expected["devices_daily"]  # (day, model, os, os_major, events, visitors)
    day_total = totals(devices, lambda r: r[0], lambda r: r[4])
    by_model = totals(devices, lambda r: (r[0], r[2], r[1]), lambda r: r[4])
    wanted = sorted(
        [(d, os_, model, n, n / day_total[d]) for (d, os_, model), n in by_model.items()], key=lambda r: (r[0], -r[3], r[1], r[2])
    )  # fmt: skip
    assert same_rows(query(warehouse, "SELECT * FROM device_share"), wanted)
    by_os = totals(devices, lambda r: (r[0], r[2]), lambda r: r[4])
    wanted = sorted([(d, os_, n, n / day_total[d]) for (d, os_), n in by_os.items()], key=lambda r: (r[0], -r[2], r[1]))
    assert same_rows(query(warehouse, "SELECT * FROM os_share"), wanted)

    audience = expected["audience_daily"]  # (day, gender, country, city, language, visitors)
    got = {(d, dim, v): (n, share) for d, dim, v, n, share in query(warehouse, "SELECT * FROM audience_share")}
    wanted_audience = {}
    for i, dim in enumerate(("gender", "country", "city", "language"), start=1):
        per_value = totals(audience, lambda r, i=i: (r[0], r[i]), lambda r: r[5])
        per_day = totals(audience, lambda r: r[0], lambda r: r[5])
        wanted_audience |= {(d, dim, v): (n, n / per_day[d]) for (d, v), n in per_value.items()}
    assert got.keys() == wanted_audience.keys() and len(got) > 8
    assert all(got[key][0] == n and close(got[key][1], s) for key, (n, s) in wanted_audience.items())


def test_retention_matrix(built, expected):
    warehouse, _ = built
    cohort = {c: n for c, w, n in expected["retention_weekly"] if w == 0}
    wanted = sorted(
        (c, w, n, cohort.get(c), n / cohort[c] if c in cohort else None) for c, w, n in expected["retention_weekly"]
    )
    assert any(w == 1 for _, w, *_ in wanted)
    assert same_rows(query(warehouse, "SELECT * FROM retention_matrix"), wanted)


def test_data_quality(built):
    warehouse, ds = built
    # what the cells counted (k = 1 publishes every cell that counts anything) and what k = 3 publishes
    counted_column = {"page_views_hourly": 2, "page_views_daily": 2, "clicks_hourly": 3, "clicks_daily": 3,
                      "devices_daily": 4, "audience_daily": 5, "sessions_daily": 1, "retention_weekly": 2}  # fmt: skip
    every, published = expected_tables(ds, k=1), expected_tables(ds, k=K)
    counted = sum(r[i] for t, i in counted_column.items() for r in every[t])
    kept = sum(r[i] for t, i in counted_column.items() for r in published[t])
    messages = sum(len(m) for m in ds.messages.values())
    rows = query(
        warehouse,
        "SELECT messages, valid, deadletters, duplicates, too_late, deadletter_share, suppressed_share FROM data_quality",
    )
    assert len(rows) == 1
    m, valid, dead, dup, late, dead_share, suppressed_share = rows[0]
    assert (m, valid, dead, dup, late) == (messages, messages - len(ds.bad_reasons), len(ds.bad_reasons), expected_duplicates(ds), 0)  # fmt: skip
    assert close(dead_share, dead / m)
    assert 0 < suppressed_share < 1 and close(suppressed_share, 1 - kept / counted)


def test_views_on_an_empty_warehouse(tmp_path: Path):
    warehouse = Warehouse(tmp_path / "wh")
    warehouse.materialize()
    assert create_views(warehouse.con) == VIEWS
    warehouse.close()
    for view in VIEWS:
        assert query(tmp_path / "wh", f"SELECT * FROM {view}") == []
        done = seaport_sql(tmp_path / "wh", f"SELECT * FROM {view}", "--format", "json")
        assert done.returncode == 0 and json.loads(done.stdout) == [], done.stderr


# -- seaport sql -------------------------------------------------------------------------------
def test_the_readme_shows_one_example_per_view():
    assert len(EXAMPLES) >= len(VIEWS) and all(any(f"FROM {v}" in e or f"PIVOT {v}" in e for e in EXAMPLES)
                                               for v in VIEWS)  # fmt: skip


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_query_runs_as_written(built, example):
    warehouse, _ = built
    argv = shlex.split(example)
    assert argv[:2] == ["seaport", "sql"]
    done = seaport_sql(warehouse, *argv[2:])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() and not done.stderr
    if "--format" not in argv:
        assert re.search(rb"\(\d+ rows?\)\n$", done.stdout)
        assert not done.stdout.endswith(b"(0 rows)\n")


def test_parquet_tables_equal_the_database_tables(built):
    """Read after file access is locked: parquet.<table> holds the table's rows (and `date`)."""
    warehouse, _ = built
    for table in ("page_views_daily", "clicks_hourly", "devices_daily", "retention_weekly"):
        parquet = (
            f"(SELECT * EXCLUDE (date) FROM parquet.{table})" if table != "retention_weekly" else f"parquet.{table}"
        )
        sql = f"""SELECT (SELECT count(*) FROM {table}) AS n,
                         (SELECT count(*) FROM (FROM {parquet} EXCEPT ALL FROM {table})) AS extra,
                         (SELECT count(*) FROM (FROM {table} EXCEPT ALL FROM {parquet})) AS missing"""
        done = seaport_sql(warehouse, sql, "--format", "json")
        assert done.returncode == 0, done.stderr
        (row,) = json.loads(done.stdout)
        assert row["n"] > 0 and row["extra"] == row["missing"] == 0, (table, row)
    done = seaport_sql(
        warehouse, "SELECT count(*) AS n FROM parquet.page_views_daily WHERE date <> day", "--format", "csv"
    )
    assert done.stdout == b"n\n0\n"


def test_csv_and_json_parse_back_to_the_same_rows(built):
    warehouse, _ = built
    sql = "SELECT day, page, views, click_through_rate, now() AS at FROM page_funnel"
    with duckdb.connect(str(warehouse / "analytics.duckdb"), read_only=True) as con:
        con.execute("SET TimeZone = 'Asia/Shanghai'")
        rows = con.execute(sql.replace("now() AS at", "NULL AS at")).fetchall()
    as_json = json.loads(seaport_sql(warehouse, sql, "--format", "json").stdout)
    as_csv = list(csv.DictReader(io.StringIO(seaport_sql(warehouse, sql, "--format", "csv").stdout.decode())))
    assert len(rows) == len(as_json) == len(as_csv) > 10
    assert datetime.fromisoformat(as_json[0]["at"]).utcoffset() == timedelta(hours=8)  # the warehouse's zone
    for (day, page, views, ctr, _), j, c in zip(rows, as_json, as_csv, strict=True):
        assert (date.fromisoformat(j["day"]), j["page"], j["views"], j["click_through_rate"]) == (day, page, views, ctr)
        parsed_ctr = float(c["click_through_rate"]) if c["click_through_rate"] else None
        assert (date.fromisoformat(c["day"]), c["page"], int(c["views"]), parsed_ctr) == (day, page, views, ctr)


def test_text_output_and_max_rows(built):
    warehouse, _ = built
    done = seaport_sql(warehouse, "SELECT * FROM range(5) t(n)", "--max-rows", "3")
    assert done.returncode == 0
    assert done.stdout.decode().splitlines() == ["n", "-", "0", "1", "2", "(3 rows)"]
    assert done.stderr.decode().count("\n") == 1 and "first 3 rows" in done.stderr.decode()
    piped = seaport_sql(warehouse, stdin=b"SELECT 'a' AS x, 12 AS y;\n")  # stdin not a terminal: the query
    assert piped.returncode == 0 and piped.stdout.decode().splitlines() == ["x   y", "-  --", "a  12", "(1 row)"]


def snapshot(warehouse: Path) -> tuple:
    files = {str(p.relative_to(warehouse)): (p.stat().st_mtime_ns, p.stat().st_size) for p in warehouse.rglob("*")}
    return files, query(warehouse, "SELECT database_name, table_name FROM duckdb_tables() ORDER BY ALL")


def test_hostile_input_is_refused_in_one_line_and_changes_nothing(built, tmp_path: Path):
    warehouse, _ = built
    state = warehouse / "state.duckdb"
    with duckdb.connect(str(state), read_only=True) as con:  # what must never come out
        secrets = [
            s for (s,) in con.execute("SELECT DISTINCT subject_pseudonym FROM analytics_events LIMIT 20").fetchall()
        ]
    assert secrets
    copy_target = tmp_path / "x.csv"
    hostile: list[str | bytes] = [
        f"ATTACH '{state}' AS s",
        f"ATTACH '{state}' AS s (READ_ONLY); SELECT * FROM s.analytics_events",
        "SELECT * FROM read_csv('/etc/hostname')",
        f"SELECT * FROM read_blob('{state}')",
        f"SELECT * FROM read_parquet('{warehouse}/parquet/../state.duckdb')",
        f"SELECT * FROM glob('{warehouse}/*')",
        f"COPY page_views_daily TO '{copy_target}'",
        "CREATE TABLE x AS SELECT 1",
        "CREATE VIEW parquet.x AS SELECT 1",
        "EXPLAIN ANALYZE CREATE TABLE parquet.x AS SELECT 1",
        "SELECT 1; DROP TABLE page_views_daily",
        "DROP TABLE page_views_daily",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access=true",
        "RESET lock_configuration",
        "PRAGMA database_list",
        f"EXPORT DATABASE '{tmp_path / 'out'}'",
        "SELECT * FROM query('SET enable_external_access = true')",
        "",
        "  -- nothing but a comment\n",
        "SELEC 1",
        "SELECT " + "(" * 10_000 + "1" + ")" * 10_000,
        b"SELECT '\xff\xfe'",
    ]
    before = snapshot(warehouse)
    for sql in hostile:
        done = seaport_sql(warehouse, sql)
        err = done.stderr.decode()
        assert done.returncode == 2, (sql, err)
        assert done.stdout == b"" and err.count("\n") == 1 and err.startswith("seaport sql: error: "), (sql, err)
        assert "Traceback" not in err and not any(s in err for s in secrets), sql
    piped = seaport_sql(warehouse, stdin=b"SELECT '\xff'")  # not UTF-8 on stdin either
    assert piped.returncode == 2 and piped.stderr == b"seaport sql: error: the query is not valid UTF-8\n"
    assert not copy_target.exists() and not (tmp_path / "out").exists()
    assert snapshot(warehouse) == before


def test_a_running_ingest_is_said_in_one_line(built, tmp_path: Path):
    copy = tmp_path / "wh"
    shutil.copytree(built[0], copy)
    holder = hold_write_lock(copy / "analytics.duckdb")
    try:
        done = seaport_sql(copy, "SELECT 1")
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2 and done.stderr.decode() == f"seaport sql: error: {BUSY}\n"


def test_the_interactive_shell_through_a_terminal(built):
    warehouse, _ = built
    pid, fd = pty.fork()
    if pid == 0:  # the child: `seaport sql` with a terminal on stdin
        os.execv(sys.executable, [sys.executable, "-m", "seaport.cli", "sql", "--warehouse", str(warehouse)])
    output = b""

    def read_until(marker: bytes, timeout: float = 30) -> None:
        nonlocal output
        deadline = time.monotonic() + timeout
        while marker not in output and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # the child has exited
                    break
                if not chunk:
                    break
                output += chunk

    read_until(b"sql> ")
    os.write(fd, b".tables\n")
    read_until(b"parquet.page_views_daily")
    os.write(fd, b"SELECT 41 + 1\n")
    read_until(b"...> ")
    os.write(fd, b"AS answer;\n")
    read_until(b"(1 row)")
    os.write(fd, b"DROP TABLE page_views_daily;\n")
    read_until(b"refused")
    os.write(fd, b"SELECT count(*) AS n FROM page_views_daily;\n.quit\n")
    read_until(b"__until the end__")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "daily_traffic" in text and "answer" in text and "42" in text
    assert "seaport sql: error: only reads are allowed" in text
    assert re.search(r"\n\s*n\r?\n", text), text  # the table is still there after the refused DROP


def test_summary_accounts_for_every_message_and_table(built, tmp_path: Path):
    """`seaport summary`: what came in, what was rejected, what each table holds; no warehouse is
    a one-line error."""
    warehouse, ds = built
    done = subprocess.run([sys.executable, "-m", "seaport.cli", "summary", "--warehouse", str(warehouse)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    with duckdb.connect(str(warehouse / "analytics.duckdb"), read_only=True) as con:
        messages, dead = con.execute("SELECT sum(messages), sum(deadletters) FROM ingest_runs").fetchone()
        daily = con.execute("SELECT count(*) FROM page_views_daily").fetchone()[0]
    sent = sum(len(values) for values in ds.messages.values())
    assert messages == sent and dead > 0
    assert f"messages read: {messages};" in done.stdout and f"dead letters: {dead}" in done.stdout
    assert re.search(rf"page_views_daily\s+{daily} rows", done.stdout)
    assert "audit trail:" in done.stdout and "chain intact" in done.stdout
    missing = subprocess.run([sys.executable, "-m", "seaport.cli", "summary", "--warehouse", str(tmp_path / "none")],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.count("\n") == 1 and "no analytics.duckdb in" in missing.stderr
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "analytics.duckdb").write_bytes(b"\xff\xfe not a database" * 100)
    garbage = subprocess.run([sys.executable, "-m", "seaport.cli", "summary", "--warehouse", str(tmp_path / "garbage")],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert garbage.returncode == 2 and garbage.stderr.count("\n") == 1 and "cannot open analytics.duckdb" in garbage.stderr

