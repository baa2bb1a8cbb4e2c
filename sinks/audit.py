"""`seaport audit --warehouse DIR [--canaries FILE]`: prove a warehouse holds no identifier (R4, R5).

Walks every file of the warehouse: every table of every schema of each DuckDB file, every column
of each Parquet file, and the bytes of every other file. A value is a finding when it holds
something that looks like a personal identifier (MAC in any common notation, full IPv4/IPv6
address, mainland phone, resident ID number, e-mail, OpenId-like token, bank card: the detectors
of transforms/redact.py), or contains an identifier listed in `--canaries` (one per line) as is,
in any case, in any MAC notation, or as its unkeyed MD5/SHA-1/SHA-256 hex digest.

Findings name the file, table and column, and the kind; the value is shown masked at most (R5).
Exit 1 on any finding, else print "clean: N files, M values scanned" and exit 0.

DuckDB does the heavy lifting: each column is cast to text and pre-filtered with one regular
expression in SQL (a superset of the detectors), and only those values are confirmed in Python.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from seaport.errors import SeaportError
from transforms.masking import mask
from transforms.redact import SENSITIVE_QUERY_KEYS, find_identifiers

# A superset of transforms/redact.py's detectors, in RE2 syntax (no look-around) over lowercased
# text: what it lets through is confirmed in Python with checksums and boundaries.
PREFILTER = "|".join(
    [
        r"[a-z0-9._%+-]@[a-z0-9-]+\.",  # e-mail
        r"(^|[^0-9])(\+|00)?(86)?[\s-]?1[3-9]([\s.+-]?[0-9]){9}",  # phone
        r"(^|[^0-9])[1-8][0-9]{5}[ -]?[0-9]{8}[ -]?[0-9]{3}[0-9x]",  # resident ID number
        r"(^|[^0-9])[0-9]([ -]?[0-9]){12}",  # bank card (13+ digits)
        r"[0-9a-f]{2}[:-][0-9a-f]{2}[:-][0-9a-f]{2}[:-][0-9a-f]{2}[:-][0-9a-f]{2}[:-][0-9a-f]{2}",  # MAC
        r"[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}",  # MAC, Cisco notation
        r"(^|[^0-9a-z:-])[0-9a-f]{12}([^0-9a-z:-]|$)",  # MAC, bare
        r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}",  # IPv4
        r"::|([0-9a-f]{1,4}:){7}",  # IPv6
        r"(^|[^a-z0-9_-])o[a-z0-9_-]{27}([^a-z0-9_-]|$)",  # OpenId
        r"[?&;](" + "|".join(re.escape(k) for k in SENSITIVE_QUERY_KEYS) + ")=",  # keyed query values
        r"%[0-9a-f]{2}",  # URL-encoded: decoded and checked in Python
    ]
)
_PREFILTER_PY = re.compile(PREFILTER)
# Column types that cannot hold an identifier: not worth a scan.
_SKIPPED_TYPES = ("BOOLEAN", "DATE", "TIME", "TIMESTAMP", "INTERVAL", "UUID")
_TEXT_CHUNK = 1 << 22


# A canary is matched as a whole token of a value: a broad token keeps the separators of MACs,
# addresses and e-mails, a narrow one those of ids; both trimmed of edge punctuation. Tokens join
# the canary list in SQL (a hash join: fast for any number of canaries), and the same rule
# confirms the match in Python.
TOKEN_PATTERNS = (r"[0-9a-z_.:@+-]+", r"[0-9a-z_-]+")
TOKEN_TRIM = ".:_+@-"
_TOKENS = [re.compile(p) for p in TOKEN_PATTERNS]


def tokens(lowered: str) -> set[str]:
    """The tokens of a lowercased value that a canary form must equal."""
    return {t.strip(TOKEN_TRIM) for pattern in _TOKENS for t in pattern.findall(lowered)}


@dataclass
class Canaries:
    """Known identifiers to look for: lowercase form -> what it is (never the identifier itself)."""

    forms: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> Canaries:
        forms: dict[str, str] = {}
        for line in lines:
            value = line.strip()
            if not value or value.startswith("#"):
                continue
            for variant in _variants(value):
                forms.setdefault(variant.lower().strip(TOKEN_TRIM), "canary")
                for algorithm in ("md5", "sha1", "sha256"):
                    digest = hashlib.new(algorithm, variant.encode()).hexdigest()
                    forms.setdefault(digest, f"canary_{algorithm}")
        return cls(forms)

    @classmethod
    def load(cls, path: Path) -> Canaries:
        try:
            return cls.from_lines(path.read_text(encoding="utf-8", errors="replace").splitlines())
        except OSError as e:
            raise SeaportError(f"cannot read the canaries file {path}: {e.strerror}") from None

    def find(self, lowered: str) -> list[str]:
        """The kinds of the canary forms among the tokens of `lowered` (a lowercased value)."""
        return [self.forms[t] for t in tokens(lowered) if t in self.forms]


def _variants(value: str) -> set[str]:
    """The spellings of an identifier a store may hold: as given, lower/upper case, MAC notations."""
    variants = {value, value.lower(), value.upper()}
    digits = re.sub(r"[:\-.\s]", "", value).lower()
    if re.fullmatch(r"[0-9a-f]{12}", digits):
        pairs = [digits[i : i + 2] for i in range(0, 12, 2)]
        quads = [digits[i : i + 4] for i in range(0, 12, 4)]
        for mac in (":".join(pairs), "-".join(pairs), digits, ".".join(quads)):
            variants |= {mac, mac.upper()}
    return variants


@dataclass
class Finding:
    """Identifiers of one kind found at one place: how many values, and one masked example."""

    file: str
    location: str
    kind: str
    values: int
    example: str

    def line(self) -> str:
        return f"{self.file}\t{self.location}\t{self.kind}\t{self.values} value(s)\te.g. {self.example}"


@dataclass
class AuditReport:
    files: int = 0
    values: int = 0
    findings: dict[tuple[str, str, str], Finding] = field(default_factory=dict)

    def add(self, file: str, location: str, kind: str, example: str, values: int = 1) -> None:
        key = (file, location, kind)
        if key in self.findings:
            self.findings[key].values += values
        else:
            self.findings[key] = Finding(file, location, kind, values, example)


def _value_findings(value: str, canaries: Canaries) -> list[tuple[str, str]]:
    """(kind, masked example) of everything in one value that must not be in a warehouse."""
    found = [(kind, mask(matched)) for kind, matched in find_identifiers(value)]
    if canaries.forms:
        # A canary is never shown, not even masked: the kind alone says enough.
        found += [(kind, "[canary]") for kind in canaries.find(value.lower())]
    return found


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _scan_relation(con, relation: str, columns: list[tuple[str, str]], canaries: Canaries, report: AuditReport,
                   file: str, prefix: str) -> None:  # fmt: skip
    """Scan the text of every column of `relation` (a table or a read_parquet(...) call)."""
    rows = con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]
    for name, data_type in columns:
        if data_type.upper().startswith(_SKIPPED_TYPES):
            continue
        report.values += rows
        # Distinct values once (pages, prefixes repeat a lot), then both checks run on those.
        values = (
            f"SELECT CAST({_quote(name)} AS VARCHAR) AS v, count(*) AS n FROM {relation} "
            f"WHERE {_quote(name)} IS NOT NULL GROUP BY v"
        )
        looks_personal = f"regexp_matches(lower(v), {_sql_literal(PREFILTER)})"
        if canaries.forms:
            query = f"WITH vals AS MATERIALIZED ({values}), hits AS ({_canary_hits()}) "
            query += f"SELECT v, n FROM vals WHERE {looks_personal} OR v IN (SELECT v FROM hits)"
        else:
            query = f"SELECT v, n FROM ({values}) WHERE {looks_personal}"
        suspects = con.execute(query).fetchall()
        for value, count in suspects:
            for kind, example in _value_findings(value, canaries):
                report.add(file, f"{prefix}{name}", kind, example, count)


def _canary_hits() -> str:
    """Values of `vals` with a token among the registered `canary_forms` table."""
    tokenized = " UNION ALL ".join(
        f"SELECT v, trim(unnest(regexp_extract_all(lower(v), {_sql_literal(p)})), {_sql_literal(TOKEN_TRIM)}) AS tok "
        "FROM vals"
        for p in TOKEN_PATTERNS
    )
    return f"SELECT DISTINCT v FROM ({tokenized}) JOIN canary_forms ON tok = form"


def _register_canaries(con, canaries: Canaries) -> None:
    import pyarrow as pa

    con.register("canary_forms", pa.table({"form": pa.array(list(canaries.forms), pa.string())}))


def _scan_duckdb(path: Path, shown: str, canaries: Canaries, report: AuditReport) -> None:
    import duckdb

    # A copy of a restricted store must not outlive the scan: the folder goes when it ends.
    with tempfile.TemporaryDirectory(prefix="seaport-audit-") as spare:
        try:
            con = duckdb.connect(str(path), read_only=True)
        except duckdb.Error:
            con = _open_copy(path, Path(spare))  # locked by a running writer: scan a copy
        try:
            _register_canaries(con, canaries)
            tables = con.execute(
                "SELECT table_catalog, table_schema, table_name FROM information_schema.tables "
                "WHERE table_type = 'BASE TABLE' ORDER BY ALL"
            ).fetchall()
            for catalog, schema, table in tables:
                columns = con.execute(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_catalog = ? AND table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                    [catalog, schema, table],
                ).fetchall()
                relation = ".".join(_quote(n) for n in (catalog, schema, table))
                _scan_relation(con, relation, columns, canaries, report, shown, f"{schema}.{table}.")
        finally:
            con.close()


def _open_copy(path: Path, tmp: Path):
    """`path` (and its WAL) copied into `tmp`, opened read-only."""
    import duckdb

    copy = tmp / path.name
    shutil.copy2(path, copy)
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        shutil.copy2(wal, tmp / wal.name)
    try:
        return duckdb.connect(str(copy), read_only=True)
    except duckdb.Error as e:
        raise SeaportError(f"cannot open the DuckDB file {path.name}: {type(e).__name__}") from None


def _scan_parquet(con, path: Path, shown: str, canaries: Canaries, report: AuditReport) -> None:
    relation = f"read_parquet({_sql_literal(str(path))}, hive_partitioning = false)"
    columns = [(row[0], row[1]) for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
    _scan_relation(con, relation, columns, canaries, report, shown, "")


def _scan_bytes(path: Path, shown: str, canaries: Canaries, report: AuditReport) -> None:
    """Any other file: its bytes as text (latin-1 maps every byte), line by line."""
    with path.open("rb") as f:
        number = 0
        tail = b""
        while chunk := f.read(_TEXT_CHUNK):
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            for raw in lines:
                number += 1
                _scan_line(raw, number, shown, canaries, report)
        if tail:
            _scan_line(tail, number + 1, shown, canaries, report)
            number += 1
    report.values += number


def _scan_line(raw: bytes, number: int, shown: str, canaries: Canaries, report: AuditReport) -> None:
    text = raw.decode("latin-1")
    lowered = text.lower()
    if not _PREFILTER_PY.search(lowered) and not canaries.find(lowered):
        return
    for kind, example in _value_findings(text, canaries):
        report.add(shown, f"line {number}", kind, example)


def _is_duckdb(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(12)[8:12] == b"DUCK"


def _is_parquet(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"PAR1"


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


def audit_warehouse(warehouse: Path, canaries: Canaries | None = None) -> AuditReport:
    """Scan every file under `warehouse`; the report lists the findings (R4: nothing identifies)."""
    import duckdb

    if not warehouse.is_dir():
        raise SeaportError(f"no warehouse directory at {warehouse}")
    canaries = canaries or Canaries()
    report = AuditReport()
    parquet_con = duckdb.connect()
    _register_canaries(parquet_con, canaries)
    try:
        for path in _files(warehouse):
            shown = str(path.relative_to(warehouse))
            report.files += 1
            try:
                if _is_duckdb(path):
                    _scan_duckdb(path, shown, canaries, report)
                elif _is_parquet(path):
                    _scan_parquet(parquet_con, path, shown, canaries, report)
                else:
                    _scan_bytes(path, shown, canaries, report)
            except (duckdb.Error, OSError) as e:
                # What can't be read can't be vouched for: a finding, not a silent pass.
                report.add(shown, "file", f"unreadable ({type(e).__name__})", "-")
    finally:
        parquet_con.close()
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Scan every file of a warehouse (DuckDB tables, Parquet columns, other files' bytes) for "
        "personal identifiers: MACs, IP addresses, phone numbers, ID numbers, e-mails, OpenIds, bank "
        "cards, and the identifiers of --canaries as is or as MD5/SHA-1/SHA-256 digests. Exits 1 on "
        "any finding; values are never printed, at most masked."
    )
    parser.add_argument("--warehouse", type=Path, default=Path("warehouse"), help="warehouse directory (%(default)s)")
    parser.add_argument("--canaries", type=Path, metavar="FILE", help="known identifiers to look for, one per line")
    parser.add_argument(
        "--trail",
        action="store_true",
        help="instead, check the warehouse's audit trail: exit 1 if an entry was edited, removed or inserted",
    )


def check_trail(warehouse: Path) -> int:
    from sinks import trail

    if not (warehouse / trail.TRAIL_FILE).exists():
        raise SeaportError(f"no audit trail in {warehouse}")
    try:
        count, problems = trail.verify(warehouse)
    except Exception as e:  # an unreadable trail is a finding, said in one line
        print(f"seaport audit: the audit trail cannot be read ({type(e).__name__})", file=sys.stderr)
        return 1
    for problem in problems:
        print(problem)
    if problems:
        print(f"seaport audit: the audit trail of {count} entries is not intact", file=sys.stderr)
        return 1
    print(f"audit trail intact: {count} entries, each chained to the one before")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.trail:
        return check_trail(args.warehouse)
    canaries = Canaries.load(args.canaries) if args.canaries else Canaries()
    report = audit_warehouse(args.warehouse, canaries)
    if report.findings:
        for finding in sorted(report.findings.values(), key=lambda f: (f.file, f.location, f.kind)):
            print(finding.line())
        print(
            f"seaport audit: {len(report.findings)} finding(s) in {report.files} files "
            f"({report.values} values scanned)",
            file=sys.stderr,
        )
        return 1
    print(f"clean: {report.files} files, {report.values} values scanned")
    return 0
