"""Hand-made days of security events for the detector tests: a store, ordinary people, attacks.

Every identifier is a made-up pseudonym or a documentation-range-like prefix from a seeded RNG.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import duckdb
import pyarrow as pa

from schemas.tables import SECURITY_EVENTS
from transforms.anomalies import Anomaly, DayContext, DetectorConfig
from transforms.security_baselines import DayWindow, load_day_events, refresh_summaries

ZONE = "Asia/Shanghai"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
ATTACK_DAY = dt.date(2026, 11, 24)
PAGES = ["/home", "/policy/query", "/claims/status", "/products/health", "/user/profile", "/login"]


class Ev(NamedTuple):
    """One row of security_events, as the field policy writes it."""

    at: dt.datetime
    source: str  # beacon | access
    subject: str | None
    device: str | None
    prefix: str | None
    path: str
    status: str  # beacon event or HTTP status
    method: str | None = None
    agent: str | None = "Chrome 120"


def pseudonym(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def prefix(rng: random.Random) -> str:
    return f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24"


def at(day: dt.date, hour: int, minute: int = 0, second: float = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour % 24, minute), tzinfo=SHANGHAI) + dt.timedelta(seconds=second)


@dataclass
class Person:
    """A well-behaved signed-in visitor: one device, a home prefix, habitual hours."""

    subject: str
    device: str
    home: str
    hours: list[int]

    @classmethod
    def make(cls, rng: random.Random) -> Person:
        centre = rng.choice([8, 9, 10, 12, 14, 19, 20, 21])
        return cls(pseudonym(rng), pseudonym(rng), prefix(rng), [centre, centre + 1])

    def visit(self, rng: random.Random, day: dt.date, hour: int | None = None, prefix: str | None = None,
              device: str | None = None, pages: int | None = None) -> list[Ev]:  # fmt: skip
        """A session: page views with their beacons, now and then a login (a typo once in a while)."""
        hour = rng.choice(self.hours) if hour is None else hour
        where, dev = prefix or self.home, device or self.device
        t = at(day, hour, rng.randrange(50))
        rows = []
        if rng.random() < 0.3:
            if rng.random() < 0.1:
                rows.append(Ev(t, "access", self.subject, None, where, "/api/login", "401", "POST"))
            rows.append(Ev(t, "access", self.subject, None, where, "/api/login", "200", "POST"))
        for _ in range(pages or rng.randint(2, 8)):
            t += dt.timedelta(seconds=rng.expovariate(1 / 40))
            page = rng.choice(PAGES)
            status = rng.choices(["200", "404", "500"], [97, 2, 1])[0]
            rows.append(Ev(t, "access", self.subject, None, where, page, status, "GET"))
            rows.append(Ev(t, "beacon", self.subject, dev, where, page, "page_view"))
        return rows


@dataclass
class Town:
    """A population of people and the quiet days they make."""

    rng: random.Random
    people: list[Person] = field(default_factory=list)

    @classmethod
    def make(cls, seed: int, size: int = 60) -> Town:
        rng = random.Random(seed)
        return cls(rng, [Person.make(rng) for _ in range(size)])

    def day(self, day: dt.date) -> list[Ev]:
        rows = []
        for p in self.people:
            if self.rng.random() < 0.8:
                rows += p.visit(self.rng, day)
        return rows

    def days(self, last: dt.date, n: int) -> list[Ev]:
        """`n` quiet days ending the day before `last`."""
        return [e for d in range(n, 0, -1) for e in self.day(last - dt.timedelta(days=d))]


class Store:
    """A security.duckdb with hand-made events, and the detectors run on one of its days."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.con = duckdb.connect(str(path))
        self.con.execute(SECURITY_EVENTS.ddl("main"))
        self.n = 0

    def add(self, rows: list[Ev]) -> None:
        table = pa.table(
            {
                "event_id": [str(uuid.UUID(int=self.n + i)) for i in range(len(rows))],
                "source": [r.source for r in rows],
                "event_time": pa.array([r.at for r in rows], pa.timestamp("us", tz="UTC")),
                "subject_pseudonym": pa.array([r.subject for r in rows], pa.string()),
                "device_pseudonym": pa.array([r.device for r in rows], pa.string()),
                "ip_prefix": pa.array([r.prefix for r in rows], pa.string()),
                "page_or_path": [r.path for r in rows],
                "event_or_status": [r.status for r in rows],
                "method": pa.array([r.method for r in rows], pa.string()),
                "user_agent": pa.array([r.agent for r in rows], pa.string()),
            }
        )
        self.n += len(rows)
        self.con.register("staged", table)
        self.con.execute(
            "INSERT INTO security_events BY NAME SELECT *, 'v1' AS policy_version, 'k1' AS key_id FROM staged"
        )
        self.con.unregister("staged")

    def context(self, day: dt.date = ATTACK_DAY, cfg: DetectorConfig | None = None) -> DayContext:
        cfg = cfg or DetectorConfig()
        window = DayWindow(day, ZONE, cfg.baseline_days)
        refresh_summaries(self.con, window, cfg)
        load_day_events(self.con, window, cfg, day)
        return DayContext(self.con, window, cfg)

    def close(self) -> None:
        self.con.close()


def kinds(found: list[Anomaly]) -> list[str]:
    return sorted(a.kind for a in found)
