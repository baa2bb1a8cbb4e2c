"""Proof of "no behaviour change": build a warehouse from fixed traffic and key, dump every table.

    # in a checkout of each revision (its own code runs: the current directory comes first)
    python scripts/warehouse_fingerprint.py build --out /tmp/before
    python scripts/warehouse_fingerprint.py build --out /tmp/after
    python scripts/warehouse_fingerprint.py diff /tmp/before /tmp/after

`build` starts its own broker on a free port, simulates `--users` visitors over `--days` days
(seeded: consent changes, access logs, malformed and duplicate messages, erasure requests) and a
labelled attack run, produces them, ingests with a key derived from the seed, erases, ingests
again, writes the security report of the last day, and dumps, one sorted text file each: every
table and view of every DuckDB file in the warehouse, every Parquet file, and the dead letters on
Kafka. `diff` names every dump that differs and shows its first differing rows; exit 1 if any.

Columns that record when a run happened differ between any two builds, even of the same code;
they are left out by name (`VOLATILE`). Nothing else is.
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

# What differs between any two builds, even of the same code (found by building one revision twice
# and diffing): when things ran, and where Kafka put a message. Unkeyed messages (access logs) land
# on partitions at random, so their offsets, and the access-log event ids made of them, move; an
# erased subject's token is random by design (R8).
VOLATILE = {
    "processed_at", "recorded_at", "stored_at", "computed_at", "received_at", "due_by", "started_at",
    "finished_at", "committed_at", "run_id", "source_partition", "source_offset", "partition", "offset",
    "next_offset", "offset_ranges", "prev_hash", "hash",  # the audit trail's chain covers its times
}  # fmt: skip
_MOVING = [
    (re.compile(r"erased-[0-9a-f]{32}"), "erased-*"),
    (re.compile(r"\b(access_logs\.raw|beacons\.raw|consent\.events|erasure\.requests)/\d+/\d+"), r"\1/*/*"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:*"),  # each build's own broker
    (re.compile(r"run [0-9a-f]{16}"), "run *"),
    (re.compile(r"[^\"' ]*seaport-fingerprint-\w+"), "BUILD"),  # and its own folder
]


def _steady(text: str) -> str:
    for pattern, replacement in _MOVING:
        text = pattern.sub(replacement, text)
    return text


def _seaport(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "seaport.cli", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"seaport {args[0]} failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")


def build(out: Path, users: int, days: int, seed: int) -> None:
    sys.path.insert(0, os.getcwd())
    try:
        from seaport.devtools.broker import Broker, free_port
    except ImportError:  # a revision from before the broker moved to the developer tools
        from seaport.kafka.broker import Broker, free_port  # type: ignore[no-redef]

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="seaport-fingerprint-") as tmp:
        work = Path(tmp)
        key = work / "pseudonym.key"
        key.write_bytes(hashlib.sha256(f"fingerprint:{seed}".encode()).digest())
        broker = Broker(free_port(), work / "kafka")
        broker.start(timeout=120)
        try:
            env = os.environ | {"SEAPORT_PSEUDONYM_KEY_FILE": str(key), "PYTHONPATH": os.getcwd()}
            kafka = ["--bootstrap", broker.bootstrap, "--topic-prefix", "fp."]
            wh = work / "warehouse"
            last = dt.date.today() - dt.timedelta(days=2)
            first = last - dt.timedelta(days=days - 1)
            traffic = work / "traffic.jsonl"
            _seaport("topics", "create", *kafka, env=env)
            _seaport("simulate", "--users", str(users), "--days", str(days), "--seed", str(seed),
                     "--start", first.isoformat(), "--out", str(traffic), env=env)  # fmt: skip
            erasures = work / "traffic.erasure.requests.jsonl"
            for path in sorted(work.glob("traffic*.jsonl")):
                topic = "beacons.raw" if path == traffic else path.name.removeprefix("traffic.").removesuffix(".jsonl")
                if path != erasures:
                    _seaport("produce", "--topic", topic, *kafka, str(path), env=env)
            ingest = ["ingest", "--until-caught-up", *kafka, "--warehouse", str(wh)]
            _seaport(*ingest, env=env)
            if erasures.exists():
                _seaport("produce", "--topic", "erasure.requests", *kafka, str(erasures), env=env)
                _seaport(*ingest, env=env)
            attacks = work / "attacks.jsonl"
            _seaport("simulate", "--attacks", "--users", "300", "--days", "9", "--seed", str(seed),
                     "--start", (last - dt.timedelta(days=8)).isoformat(), "--out", str(attacks), env=env)  # fmt: skip
            _seaport("produce", "--topic", "beacons.raw", *kafka, str(attacks), env=env)
            _seaport("produce", "--topic", "access_logs.raw", *kafka, str(work / "attacks.access_logs.raw.jsonl"),
                     env=env)  # fmt: skip
            _seaport(*ingest, env=env)
            _seaport("report", "security", "--date", last.isoformat(), "--warehouse", str(wh), env=env)
            dump_warehouse(wh, out)
            dump_dead_letters(broker.bootstrap, out)
        finally:
            broker.stop()


def _lines(columns: list[str], rows: list[tuple]) -> list[str]:
    return ["\t".join(columns), *sorted("\t".join(repr(v) for v in r) for r in rows)]


def _comparable(lines: list[str], volatile: set[str]) -> list[str]:
    """A dump without what moves between builds: `volatile` columns (keys, for JSON lines), and the
    `_MOVING` patterns, sorted again."""
    if not lines or lines[0].startswith("{"):
        docs = [json.loads(line) for line in lines if line]
        return sorted(_steady(json.dumps({k: v for k, v in d.items() if k not in volatile}, sort_keys=True))
                      for d in docs)  # fmt: skip
    columns = lines[0].split("\t")
    keep = [i for i, c in enumerate(columns) if c not in volatile]
    rows = [line.split("\t") for line in lines[1:]]
    return ["\t".join(columns[i] for i in keep), *sorted(_steady("\t".join(r[i] for i in keep)) for r in rows)]


def dump_warehouse(warehouse: Path, out: Path) -> None:
    import duckdb

    for db in sorted(warehouse.rglob("*.duckdb")):
        con = duckdb.connect(str(db), read_only=True)
        names = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1"
        ).fetchall()
        for (name,) in names:
            cur = con.execute(f'SELECT * FROM "{name}"')
            columns = [d[0] for d in cur.description]
            _write(out / f"{db.relative_to(warehouse)}.{name}.txt", _lines(columns, cur.fetchall()))
        con.close()
    con = duckdb.connect()
    for parquet in sorted(warehouse.rglob("*.parquet")):
        cur = con.execute("SELECT * FROM read_parquet(?)", [str(parquet)])
        _write(out / f"{parquet.relative_to(warehouse)}.txt", _lines([d[0] for d in cur.description], cur.fetchall()))


def dump_dead_letters(bootstrap: str, out: Path) -> None:
    from seaport.kafka.clients import make_client

    client = make_client("confluent", bootstrap)
    try:
        ends = client.end_offsets("fp.deadletter")
        records = [
            r for p, end in ends.items() for batch in client.read_range("fp.deadletter", p, 0, end) for r in batch
        ]
    finally:
        client.close()
    _write(out / "kafka.deadletter.txt", sorted(json.dumps(json.loads(r.value), sort_keys=True) for r in records))


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def diff(a: Path, b: Path, volatile: set[str] = VOLATILE) -> int:
    """Print every dump that differs between `a` and `b` (`volatile` columns left out); 1 if any."""
    names = sorted({p.relative_to(a) for p in a.rglob("*.txt")} | {p.relative_to(b) for p in b.rglob("*.txt")})
    differing = 0
    for name in names:
        left = _comparable((a / name).read_text().splitlines(), volatile) if (a / name).exists() else ["(missing)"]
        right = _comparable((b / name).read_text().splitlines(), volatile) if (b / name).exists() else ["(missing)"]
        if left != right:
            differing += 1
            print(f"DIFFERS {name} ({len(left) - 1} vs {len(right) - 1} rows)")
            for line in list(difflib.unified_diff(left, right, lineterm="", n=0))[2:8]:
                print("   ", line[:200])
    print(f"{len(names)} dumps compared, {differing} differ")
    return 1 if differing else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build a warehouse from fixed traffic with this checkout's code and dump it")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--users", type=int, default=300)
    b.add_argument("--days", type=int, default=2)
    b.add_argument("--seed", type=int, default=7)
    d = sub.add_parser("diff", help="compare two dumps")
    d.add_argument("a", type=Path)
    d.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.out, args.users, args.days, args.seed)
        return 0
    return diff(args.a, args.b)


if __name__ == "__main__":
    raise SystemExit(main())
