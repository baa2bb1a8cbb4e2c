"""`seaport sql "SELECT ..."`: a read-only SQL query of the analysts' database and Parquet.

Opens `WAREHOUSE/analytics.duckdb` read-only: its tables and documented views (`dashboards/sql/`,
see `.tables`) by name, and each Parquet table `parquet/<table>/` as the view `parquet.<table>`
(read with hive partitioning: a day-partitioned table has an extra column `date`, the day of its
folder; a table without files yet has no view). Prints an aligned text table (default),
`--format csv` or `--format json` (an array of objects; dates and times as ISO 8601 strings).
Without a query: an interactive shell when stdin is a terminal (statements end with `;`,
`.tables`, `.quit`), else the whole of stdin is the query.

The restricted stores (`state.duckdb`, `security.duckdb`) stay out of reach: once the Parquet views
exist, DuckDB itself is told to refuse every file outside the warehouse's `parquet/` folder
(`enable_external_access = false`, `allowed_directories`), to load no extension, and to change no
setting (`lock_configuration = true`). On top of that only reads run: each statement must be of
DuckDB's type SELECT (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE) or an EXPLAIN of
one; ATTACH, COPY, INSTALL, LOAD, SET, PRAGMA, CREATE ... are refused before anything runs.
Times show in the warehouse's time zone (the one it was materialized with); spilling to disk is
off, so a query never writes a file.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import duckdb

from seaport.errors import SeaportError
from seaport.options import positive_int

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_EXPLAIN = re.compile(r"(?:\s|--[^\n]*\n|/\*.*?\*/)*explain\s+(?:analy[sz]e\s+)?(.*)", re.IGNORECASE | re.DOTALL)
READS = "SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE, or EXPLAIN [ANALYZE] of one"
BUSY = "the warehouse is in use by a running ingest; try again"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", nargs="?", help="the SQL (without it: a shell on a terminal, else stdin)")
    parser.add_argument(
        "--warehouse", type=Path, default=Path("warehouse"), metavar="DIR", help="warehouse directory (%(default)s)"
    )
    parser.add_argument("--format", choices=["text", "csv", "json"], default="text", help="output (%(default)s)")
    parser.add_argument(
        "--max-rows", type=positive_int, default=1000, metavar="N", help="rows shown at most (%(default)s)"
    )
    parser.epilog = (
        "Tables and views of analytics.duckdb by name (`.tables` in the shell lists them); each Parquet "
        "table as parquet.<table>, with its partition day as column `date`. Only reads are allowed, and "
        "no file outside the warehouse's parquet/ folder can be read."
    )


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return (lines[0] if lines else type(e).__name__)[:500]


def connect(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """The analysts' store read-only, Parquet views made, then file access and settings locked."""
    path = warehouse / "analytics.duckdb"
    if not path.is_file():
        raise SeaportError(f"no analytics.duckdb in {str(warehouse)!r} (run `seaport ingest` first)")
    config = {"autoinstall_known_extensions": False, "autoload_known_extensions": False, "temp_directory": ""}
    try:
        con = duckdb.connect(str(path), read_only=True, config=config)
    except duckdb.IOException as e:
        if "lock" in str(e).lower():
            raise SeaportError(BUSY) from None
        raise SeaportError(f"cannot open {path.name}: {_one_line(e)}") from None
    except duckdb.Error as e:
        raise SeaportError(f"cannot open {path.name}: {_one_line(e)}") from None
    try:
        materialized = con.execute(
            """SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()
               AND schema_name = 'main' AND table_name = 'materialized_with'"""
        ).fetchall()[0][0]
        tz = con.execute("SELECT max(tz) FROM main.materialized_with").fetchall()[0][0] if materialized else None
        if tz:  # times in the warehouse's time zone
            con.execute(f"SET TimeZone = '{_sql_str(tz)}'")
        root = (warehouse / "parquet").resolve()
        con.execute("ATTACH ':memory:' AS parquet (READ_WRITE)")
        for folder in sorted(root.iterdir()) if root.is_dir() else []:
            if folder.is_dir() and _NAME.fullmatch(folder.name) and next(folder.rglob("*.parquet"), None):
                files = _sql_str(str(folder / "**" / "*.parquet"))
                con.execute(
                    f"CREATE VIEW parquet.{folder.name} AS "
                    f"SELECT * FROM read_parquet('{files}', hive_partitioning = true)"
                )
        con.execute(f"SET allowed_directories = ['{_sql_str(str(root))}/']")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except duckdb.Error as e:
        con.close()
        raise SeaportError(f"cannot open the warehouse's tables: {_one_line(e)}") from None
    except BaseException:
        con.close()
        raise
    return con


def _sql_str(s: str) -> str:
    return s.replace("'", "''")


def read_statements(con: duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    """The statements of `sql`, each one a read; else a one-line refusal before any runs."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise SeaportError(_one_line(e)) from None
    if not statements:
        raise SeaportError("no SQL statement given")
    for s in statements:
        if s.type == duckdb.StatementType.SELECT or (
            s.type == duckdb.StatementType.EXPLAIN and _explains_a_read(con, s)
        ):
            continue
        what = "EXPLAIN of no SELECT" if s.type == duckdb.StatementType.EXPLAIN else s.type.name
        raise SeaportError(f"only reads are allowed ({READS}); refused: {what}")
    return statements


def _explains_a_read(con: duckdb.DuckDBPyConnection, statement: Any) -> bool:
    """EXPLAIN ANALYZE runs what it explains: only an EXPLAIN of a SELECT is a read."""
    found = _EXPLAIN.fullmatch(statement.query)
    if not found:
        return False
    try:
        inner = con.extract_statements(found.group(1))
    except duckdb.Error:
        return False
    return len(inner) == 1 and inner[0].type == duckdb.StatementType.SELECT


def run_sql(con: duckdb.DuckDBPyConnection, sql: str, fmt: str, max_rows: int, out: IO[str]) -> None:
    """Run the read statements of `sql` and print each result."""
    statements = read_statements(con, sql)
    if fmt != "text" and len(statements) > 1:
        raise SeaportError(f"--format {fmt} takes one statement at a time")
    for i, statement in enumerate(statements):
        try:
            result = con.execute(statement)
            columns = [d[0] for d in result.description or []]
            rows = result.fetchmany(max_rows + 1)
        except duckdb.Error as e:
            raise SeaportError(_one_line(e)) from None
        if i:
            out.write("\n")
        print_rows(columns, rows[:max_rows], fmt, out)
        out.flush()
        if len(rows) > max_rows:
            print(f"seaport sql: only the first {max_rows} rows are shown (--max-rows N or LIMIT)", file=sys.stderr)


def print_rows(columns: list[str], rows: list[tuple], fmt: str, out: IO[str]) -> None:
    if fmt == "json":
        out.write(json.dumps([dict(zip(columns, map(_json, row), strict=True)) for row in rows], ensure_ascii=False))
        out.write("\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else _iso(v) for v in row] for row in rows])
    elif columns == ["explain_key", "explain_value"]:
        out.write("".join(str(v) for row in rows for v in row[1:]) + "\n")
    else:
        cells = [[_text(v) for v in row] for row in rows]
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
        numeric = [
            bool(rows) and all(isinstance(r[i], int | float | Decimal) or r[i] is None for r in rows)
            for i in range(len(columns))
        ]

        def line(values: list[str]) -> str:
            return "  ".join(
                v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True)
            ).rstrip()

        out.write(line(columns) + "\n" + line(["-" * w for w in widths]) + "\n")
        out.writelines(line(r) + "\n" for r in cells)
        out.write(f"({len(rows)} row{'' if len(rows) == 1 else 's'})\n")


def _iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime | date | time) else v


def _text(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return str(round(v, 4))
    return str(v)


def _json(v: Any) -> Any:
    if isinstance(v, datetime | date | time):
        return v.isoformat()
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if v is None or isinstance(v, str | int | bool):
        return v
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, list | tuple):
        return [_json(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json(x) for k, x in v.items()}
    return str(v)


TABLES_SQL = """
SELECT CASE WHEN database_name = 'parquet' THEN 'parquet.' || name ELSE name END AS name, kind, about FROM (
    SELECT database_name, table_name AS name, 'table' AS kind, coalesce(comment, '') AS about
    FROM duckdb_tables() WHERE NOT internal AND NOT temporary
    UNION ALL
    SELECT database_name, view_name, CASE WHEN database_name = 'parquet' THEN 'parquet' ELSE 'view' END,
           coalesce(comment, '') FROM duckdb_views() WHERE NOT internal AND NOT temporary)
WHERE database_name IN (current_database(), 'parquet')
ORDER BY kind DESC, name"""


def shell(con: duckdb.DuckDBPyConnection, args: argparse.Namespace, read_line: Any = input) -> int:
    """A read-eval loop: statements end with `;`; `.tables` lists what can be read; `.quit` leaves."""
    print("seaport sql: read-only. End statements with ';'. .tables lists tables and views, .quit leaves.")
    buffer: list[str] = []
    while True:
        try:
            line = read_line("...> " if buffer else "sql> ")
        except EOFError:
            print()
            return 0
        except KeyboardInterrupt:
            print()
            buffer = []
            continue
        command = line.strip()
        if not buffer and command in (".quit", ".exit"):
            return 0
        if not buffer and command == ".tables":
            print_rows(["name", "kind", "about"], con.execute(TABLES_SQL).fetchall(), "text", sys.stdout)
            continue
        if not buffer and not command:
            continue
        buffer.append(line)
        if command.endswith(";"):
            sql, buffer = "\n".join(buffer), []
            try:
                run_sql(con, sql, args.format, args.max_rows, sys.stdout)
            except SeaportError as e:
                print(f"seaport sql: error: {e}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    interactive = args.query is None and sys.stdin.isatty()
    query = args.query
    if query is None and not interactive:
        try:
            query = sys.stdin.buffer.read().decode("utf-8")
        except UnicodeDecodeError:
            raise SeaportError("the query is not valid UTF-8") from None
    if query is not None:
        try:
            query.encode("utf-8")
        except UnicodeEncodeError:  # an argument of bytes that are no UTF-8 (argv's surrogate escapes)
            raise SeaportError("the query is not valid UTF-8") from None
    warehouse = Path(args.warehouse)
    if not warehouse.is_dir():
        raise SeaportError(f"warehouse directory {str(warehouse)!r} does not exist")
    con = connect(warehouse)
    try:
        if interactive:
            import readline  # noqa: F401  (line editing and history for input())

            return shell(con, args)
        run_sql(con, query or "", args.format, args.max_rows, sys.stdout)
        return 0
    finally:
        con.close()
