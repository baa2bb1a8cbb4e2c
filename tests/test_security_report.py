"""The security detectors (pure, R11) and the `seaport report security` pipeline on real DuckDB files."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from pipelines.security_report import mask_pseudonym
from seaport.cli import main
from sinks.warehouse import Warehouse
from tests.helpers import hold_write_lock
from transforms.anomalies import (
    EVENT_COLUMNS,
    SecurityEvent,
    Thresholds,
    detect_all,
    detect_brute_force,
    detect_error_spikes,
    detect_many_devices,
    detect_many_ip_prefixes,
    detect_rate_spikes,
    detect_scanning,
)

DAY = dt.date(2026, 11, 24)
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
NORMAL_PATHS = ["/home", "/policy/query", "/policy/detail", "/claims", "/api/quote", "/login"]


def pseudonym(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def prefix(rng: random.Random) -> str:
    return f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24"


class Subject:
    """A well-behaved visitor: one device, one or two networks, a few dozen events."""

    def __init__(self, rng: random.Random) -> None:
        self.pseudonym = pseudonym(rng)
        self.device = pseudonym(rng)
        self.prefixes = [prefix(rng) for _ in range(rng.randint(1, 2))]


def normal_day(rng: random.Random, subjects: int = 80) -> tuple[list[Subject], list[SecurityEvent]]:
    """Ordinary traffic: page views and clicks, successful requests, the odd typo 404 and failed login."""
    people = [Subject(rng) for _ in range(subjects)]
    events = []
    for s in people:
        for _ in range(rng.randint(10, 30)):
            page = rng.choice(NORMAL_PATHS)
            ip = rng.choice(s.prefixes)
            events.append(SecurityEvent("beacon", s.pseudonym, s.device, ip, page, rng.choice(["page_view", "click"])))
            status = rng.choices(["200", "404", "401", "500"], weights=[95, 2, 2, 1])[0]
            events.append(SecurityEvent("access", s.pseudonym, None, ip, page, status, "GET"))
    return people, events


@pytest.fixture
def rng() -> random.Random:
    return random.Random(20261124)


def test_normal_traffic_raises_no_anomaly(rng: random.Random) -> None:
    _, events = normal_day(rng)
    assert detect_all(events) == []


def test_brute_force_from_one_prefix_is_found(rng: random.Random) -> None:
    _, events = normal_day(rng)
    attacker = prefix(rng)
    events += [SecurityEvent("access", None, None, attacker, "/api/login", "401", "POST") for _ in range(40)]
    found = detect_brute_force(events)
    assert [(a.kind, a.subject_pseudonym, a.details["ip_prefix"]) for a in found] == [("brute_force", None, attacker)]
    assert found[0].details["failed_logins"] == 40
    assert found[0].score == pytest.approx(40 / Thresholds().failed_logins)


def test_brute_force_from_one_prefix_names_its_subject_when_there_is_exactly_one(rng: random.Random) -> None:
    _, events = normal_day(rng)
    attacker, one, other = prefix(rng), pseudonym(rng), pseudonym(rng)
    events += [SecurityEvent("access", one, None, attacker, "/api/login", "401", "POST") for _ in range(6)]
    events += [SecurityEvent("access", None, None, attacker, "/api/login", "401", "POST") for _ in range(6)]
    [found] = [a for a in detect_brute_force(events) if a.details["by"] == "ip_prefix"]
    assert (found.subject_pseudonym, found.details["subjects"]) == (one, 1)
    events += [SecurityEvent("access", other, None, attacker, "/api/login", "401", "POST")]
    [found] = [a for a in detect_brute_force(events) if a.details["by"] == "ip_prefix"]
    assert (found.subject_pseudonym, found.details["subjects"]) == (None, 2)


def test_brute_force_on_one_subject_is_found(rng: random.Random) -> None:
    people, events = normal_day(rng)
    victim = people[3]
    events += [
        SecurityEvent("access", victim.pseudonym, None, prefix(rng), "/auth/token?x=1", "403", "POST")
        for _ in range(12)
    ]
    found = [a for a in detect_brute_force(events) if a.details["by"] == "subject"]
    assert [a.subject_pseudonym for a in found] == [victim.pseudonym]
    assert found[0].details["failed_logins"] >= 12


def test_failures_off_login_paths_are_not_brute_force(rng: random.Random) -> None:
    _, events = normal_day(rng)
    events += [SecurityEvent("access", None, None, prefix(rng), "/claims", "403", "GET")] * 50
    assert detect_brute_force(events) == []


def test_subject_on_many_prefixes_and_devices_is_found(rng: random.Random) -> None:
    people, events = normal_day(rng)
    shared = people[7]
    for _ in range(6):
        events.append(SecurityEvent("beacon", shared.pseudonym, pseudonym(rng), prefix(rng), "/home", "page_view"))
    prefixes = detect_many_ip_prefixes(events)
    devices = detect_many_devices(events)
    assert [a.subject_pseudonym for a in prefixes] == [shared.pseudonym]
    assert [a.subject_pseudonym for a in devices] == [shared.pseudonym]
    assert devices[0].details == {"devices": 7}


def test_request_rate_spike_is_found(rng: random.Random) -> None:
    people, events = normal_day(rng)
    bot = people[11]
    events += [SecurityEvent("access", bot.pseudonym, None, bot.prefixes[0], "/api/quote", "200")] * 600
    found = detect_rate_spikes(events)
    assert [a.subject_pseudonym for a in found] == [bot.pseudonym]
    assert found[0].details["z"] >= Thresholds().rate_z


def test_error_rate_spike_on_one_path_is_found(rng: random.Random) -> None:
    people, events = normal_day(rng)
    for i in range(60):
        status = "503" if i % 2 else "200"
        events.append(SecurityEvent("access", rng.choice(people).pseudonym, None, prefix(rng), "/api/pay", status))
    found = detect_error_spikes(events)
    assert [(a.kind, a.details["path"]) for a in found] == [("error_rate_spike", "/api/pay")]
    assert found[0].details["errors_5xx"] == 30


def test_scanning_from_one_prefix_is_found(rng: random.Random) -> None:
    _, events = normal_day(rng)
    scanner = prefix(rng)
    events += [SecurityEvent("access", None, None, scanner, f"/probe/{i}", "404", "GET") for i in range(35)]
    found = detect_scanning(events)
    assert [(a.subject_pseudonym, a.details["ip_prefix"], a.details["distinct_404_paths"]) for a in found] == [
        (None, scanner, 35)
    ]


def test_thresholds_are_configurable(rng: random.Random) -> None:
    _, events = normal_day(rng)
    strict = Thresholds(ip_prefixes_per_subject=2)
    assert detect_many_ip_prefixes(events, strict)  # some normal subjects use two networks
    assert not detect_many_ip_prefixes(events)


# --- the pipeline, on a real DuckDB warehouse -------------------------------------------------------

SECURITY_DDL_IF_MISSING = """CREATE TABLE IF NOT EXISTS security_events (
    event_id VARCHAR PRIMARY KEY, source VARCHAR, event_time TIMESTAMPTZ, subject_pseudonym VARCHAR,
    device_pseudonym VARCHAR, ip_prefix VARCHAR, page_or_path VARCHAR, event_or_status VARCHAR,
    method VARCHAR, user_agent VARCHAR, policy_version VARCHAR, key_id VARCHAR)"""


def write_security_events(warehouse: Path, rows: list[tuple[dt.datetime, SecurityEvent, str | None]]) -> None:
    """Rows of (event_time, event, user_agent) into DIR/security.duckdb, as the ingest pipeline would."""
    con = duckdb.connect(str(warehouse / "security.duckdb"))
    con.execute(SECURITY_DDL_IF_MISSING)
    start = con.execute("SELECT count(*) FROM security_events").fetchall()[0][0]
    staged = pa.table(
        {
            "event_id": [str(uuid.UUID(int=start + i)) for i in range(len(rows))],
            "event_time": pa.array([t for t, _, _ in rows], pa.timestamp("us", tz="UTC")),
            "user_agent": pa.array([ua for _, _, ua in rows], pa.string()),
            **{c: pa.array([getattr(e, c) for _, e, _ in rows], pa.string()) for c in EVENT_COLUMNS},
        }
    )
    con.register("staged", staged)
    con.execute(
        """INSERT INTO security_events BY NAME
           SELECT *, 'v1' AS policy_version, 'k1' AS key_id FROM staged"""
    )
    con.close()


def at(hour: int, minute: int = 0, day: dt.date = DAY) -> dt.datetime:
    """A Shanghai wall-clock time on `day`."""
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=SHANGHAI)


@pytest.fixture
def attacked_warehouse(tmp_path: Path, rng: random.Random) -> dict:
    """A day of normal traffic, a planted brute force and scan carrying raw-IP canaries, plus neighbours."""
    people, events = normal_day(rng, subjects=40)
    rows = [(at(rng.randrange(24), rng.randrange(60)), e, "Chrome 120") for e in events]
    canary_ip = f"198.51.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    attacker = prefix(rng)
    # raw IPs in a path's query string and in the user agent: neither may leave the warehouse
    for i in range(30):
        attack = SecurityEvent("access", None, None, attacker, f"/login?client_ip={canary_ip}", "401", "POST")
        rows.append((at(0, 30), attack, f"curl {canary_ip}"))
        scan = SecurityEvent("access", None, None, attacker, f"/scan/{i}?from={canary_ip}", "404", "GET")
        rows.append((at(23, 59), scan, f"curl {canary_ip}"))
    # just outside the Shanghai day on both sides: must not count
    other = SecurityEvent("access", None, None, prefix(rng), "/login", "401", "POST")
    rows += [(at(23, 59, DAY - dt.timedelta(days=1)), other, None)] * 30
    rows += [(at(0, 0, DAY + dt.timedelta(days=1)), other, None)] * 30
    write_security_events(tmp_path, rows)
    return {"warehouse": tmp_path, "people": people, "attacker": attacker, "canary_ip": canary_ip}


def run_report(warehouse: Path, *extra: str) -> int:
    return main(["report", "security", "--date", DAY.isoformat(), "--warehouse", str(warehouse), *extra])


def anomaly_rows(warehouse: Path) -> list[tuple]:
    con = duckdb.connect(str(warehouse / "security.duckdb"), read_only=True)
    try:
        return con.execute(
            "SELECT day, kind, subject_pseudonym, score, details FROM security_anomalies ORDER BY kind, details"
        ).fetchall()
    finally:
        con.close()


def test_report_finds_planted_attack_and_is_idempotent(attacked_warehouse: dict, capsys) -> None:
    warehouse = attacked_warehouse["warehouse"]
    assert run_report(warehouse) == 0
    report = warehouse / "reports" / f"security-{DAY.isoformat()}.html"
    assert str(report) in capsys.readouterr().out
    first = anomaly_rows(warehouse)
    kinds = {(kind, json.loads(details).get("ip_prefix")) for _, kind, _, _, details in first}
    assert kinds == {
        ("brute_force", attacked_warehouse["attacker"]),
        ("scanning", attacked_warehouse["attacker"]),
    }
    assert {row[0] for row in first} == {DAY}
    brute = next(json.loads(d) for _, k, _, _, d in first if k == "brute_force")
    assert brute["failed_logins"] == 30  # the neighbours' days did not leak in

    assert run_report(warehouse) == 0
    assert anomaly_rows(warehouse) == first

    # the day's events change (e.g. an erasure): a re-run replaces the day's findings, not adds to them
    con = duckdb.connect(str(warehouse / "security.duckdb"))
    con.execute("DELETE FROM security_events WHERE page_or_path LIKE '/scan/%'")
    con.close()
    assert run_report(warehouse) == 0
    assert [kind for _, kind, _, _, _ in anomaly_rows(warehouse)] == ["brute_force"]


def test_report_holds_no_raw_identifier(attacked_warehouse: dict) -> None:
    warehouse = attacked_warehouse["warehouse"]
    people = attacked_warehouse["people"]
    shared = people[0]
    # make one subject anomalous so a pseudonym appears in the report
    extra = [
        (at(12), SecurityEvent("beacon", shared.pseudonym, pseudonym(random.Random(i)), f"10.9.{i}.0/24", "/x", "click"),
         None)
        for i in range(8)
    ]  # fmt: skip
    write_security_events(warehouse, extra)
    assert run_report(warehouse) == 0
    html = (warehouse / "reports" / f"security-{DAY.isoformat()}.html").read_text(encoding="utf-8")
    canary = attacked_warehouse["canary_ip"]
    assert canary not in html
    assert all(canary not in row[4] for row in anomaly_rows(warehouse))
    assert attacked_warehouse["attacker"] in html  # prefixes are what the security team works with
    assert mask_pseudonym(shared.pseudonym) in html  # R5: masked on display…
    assert all(p.pseudonym not in html for p in people)  # …never whole
    assert shared.pseudonym in {row[2] for row in anomaly_rows(warehouse)}  # the restricted table keeps it


@pytest.fixture
def empty_warehouse(tmp_path: Path) -> Path:
    """A warehouse as `seaport ingest` leaves it before any message arrived."""
    Warehouse(tmp_path).close()
    return tmp_path


def test_day_without_data_gives_empty_report(empty_warehouse: Path, capsys) -> None:
    assert run_report(empty_warehouse) == 0
    html = (empty_warehouse / "reports" / f"security-{DAY.isoformat()}.html").read_text(encoding="utf-8")
    assert "no data yet" in html
    assert anomaly_rows(empty_warehouse) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--date", "2026-13-01"], "--date must be a calendar date"),
        (["--date", "yesterday"], "--date must be a calendar date"),
        (["--date", "20261124"], "--date must be a calendar date"),
        (["--date", "2026-11-24", "--timezone", "Mars/Olympus"], "unknown --timezone"),
        (["--date", "2026-11-24", "--runner", "NoSuchRunner"], "unknown Beam runner"),
    ],
)
def test_bad_input_is_one_line_error(empty_warehouse: Path, capsys, argv: list[str], message: str) -> None:
    assert main(["report", "security", "--warehouse", str(empty_warehouse), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("seaport report: error: ") and message in err


def test_store_locked_by_another_process_is_one_line_error(tmp_path: Path, capsys) -> None:
    holder = hold_write_lock(tmp_path / "security.duckdb")
    try:
        assert run_report(tmp_path) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot open security.duckdb" in err


def test_missing_warehouse_is_one_line_error(tmp_path: Path, capsys) -> None:
    assert run_report(tmp_path / "nowhere") == 2
    assert "does not exist" in capsys.readouterr().err
