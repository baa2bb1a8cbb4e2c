"""An independent model of what the analytics tables must hold, for the integration tests.

It reads the same raw messages the broker carries and computes, in plain Python, the cells the
contract defines ("What consent means, event by event" and "The warehouse"). It shares no code
with the pipeline, so the two can disagree. Pages here carry no query strings or personal data
(that is the redaction tests' business), so the page dimension passes through unchanged.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
PAGES = ["/home", "/policy/query", "/claims/new", "/claims/status", "/products/health", "/service/contact"]
ELEMENTS = ["btn-submit", "link-detail", "tab-compare", "btn-call"]
DEVICES = [("iPhone15,2", "iOS", "17.1.2"), ("M2012K11AC", "Android", "13"), ("ALN-AL00", "HarmonyOS", "4.0.0")]
PROFILES = [
    ("female", "CN", "Shanghai", "zh_CN"),
    ("male", "CN", "Beijing", "zh_CN"),
    ("female", "CN", "Shenzhen", "en"),
]


@dataclass
class Dataset:
    """Raw messages per contract topic, and which of them are malformed (with the reason kind)."""

    messages: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    bad_reasons: list[tuple[str, str]] = field(default_factory=list)  # (topic, reason prefix)

    def add(self, topic: str, doc: dict | bytes) -> None:
        self.messages[topic].append(doc if isinstance(doc, bytes) else json.dumps(doc).encode())


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def build_dataset(seed: int, subjects: int = 30, days: int = 2, bad: int = 0) -> Dataset:
    """Sessions of page views, clicks and page leaves for `subjects` people over `days` days,
    with consent changes (grants, withdrawals, re-grants, minors), exact duplicates, and `bad`
    malformed messages of every kind."""
    rng = random.Random(seed)
    ds = Dataset()
    start = datetime(2026, 11, 20, tzinfo=SHANGHAI)
    people = []
    for i in range(subjects):
        signed_in = i % 3 != 0
        people.append(
            {
                "anonymous_id": f"c-{seed}-{i:04d}",
                "openid": f"o{seed}x{i:026d}" if signed_in else None,
                "device": rng.choice(DEVICES),
                "profile": rng.choice(PROFILES),
            }
        )
    for i, p in enumerate(people):
        subject = {"openid": p["openid"]} if p["openid"] else {"anonymous_id": p["anonymous_id"]}
        if i % 4 != 3:  # a quarter never consent
            t = start + timedelta(hours=rng.randint(0, 24 * days))
            ds.add("consent.events", {"schema": "consent/1", "ts": _iso(t), "subject": subject, "analytics": "granted"})
            if i % 5 == 0:
                t2 = t + timedelta(hours=rng.randint(1, 12))
                ds.add(
                    "consent.events",
                    {"schema": "consent/1", "ts": _iso(t2), "subject": subject, "analytics": "withdrawn"},
                )
                if i % 10 == 0:
                    ds.add(
                        "consent.events",
                        {
                            "schema": "consent/1",
                            "ts": _iso(t2 + timedelta(hours=3)),
                            "subject": subject,
                            "analytics": "granted",
                        },
                    )
        if i % 11 == 7:  # a minor without a guardian's consent
            ds.add(
                "consent.events",
                {
                    "schema": "consent/1",
                    "ts": _iso(start),
                    "subject": subject,
                    "analytics": "granted",
                    "minor": True,
                    "guardian_consent": None,
                },
            )
        if i % 13 == 5:  # a minor with one
            ds.add(
                "consent.events",
                {
                    "schema": "consent/1",
                    "ts": _iso(start),
                    "subject": subject,
                    "analytics": "granted",
                    "minor": True,
                    "guardian_consent": True,
                },
            )
    for p in people:
        for _ in range(rng.randint(1, 4)):
            t = start + timedelta(minutes=rng.randint(0, 24 * 60 * days - 60))
            session = f"s-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}"
            for _ in range(rng.randint(1, 4)):
                page = rng.choice(PAGES)
                ds.add("beacons.raw", _beacon(rng, p, "page_view", t, session, page))
                if rng.random() < 0.5:
                    t += timedelta(seconds=rng.randint(1, 30))
                    ds.add("beacons.raw", _beacon(rng, p, "click", t, session, page, element=rng.choice(ELEMENTS)))
                duration = rng.randint(500, 120_000)
                t += timedelta(milliseconds=duration)
                ds.add("beacons.raw", _beacon(rng, p, "page_leave", t, session, page, duration_ms=duration))
                t += timedelta(seconds=rng.randint(1, 20))
    beacons = ds.messages["beacons.raw"]
    for dup in rng.sample(beacons, max(1, len(beacons) // 50)):
        beacons.append(dup)
    for j in range(bad):
        topic, raw, reason = _malformed(rng, j, people)
        ds.add(topic, raw)
        ds.bad_reasons.append((topic, reason))
    rng.shuffle(beacons)
    return ds


def _beacon(rng: random.Random, p: dict, event: str, t: datetime, session: str, page: str, **extra: object) -> dict:
    model, os_name, os_version = p["device"]
    doc = {
        "schema": "beacon/1",
        "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "event": event,
        "ts": _iso(t),
        "anonymous_id": p["anonymous_id"],
        "session_id": session,
        "page": page,
        "referrer": "/home",
        "element": None,
        "duration_ms": None,
        "device": {
            "model": model,
            "mac": "02:00:00:{:02x}:{:02x}:{:02x}".format(*tuple(rng.randrange(256) for _ in range(3))),
            "os": os_name,
            "os_version": os_version,
        },
        "network": {"ip": f"198.51.100.{rng.randrange(1, 255)}", "user_agent": "Mozilla/5.0 Chrome/120.0.0.0"},
    }
    if p["openid"]:
        gender, country, city, language = p["profile"]
        doc["user"] = {
            "openid": p["openid"],
            "unionid": "u" + p["openid"][1:],
            "nickname": "nick",
            "avatar_url": "https://a/x.png",
            "gender": gender,
            "country": country,
            "city": city,
            "language": language,
        }
    doc.update(extra)
    return doc


def _malformed(rng: random.Random, j: int, people: list[dict]) -> tuple[str, bytes, str]:
    """One malformed message, and the prefix of the dead-letter reason it must get."""
    good = _beacon(rng, rng.choice(people), "page_view", datetime(2026, 11, 20, 12, tzinfo=SHANGHAI), "s-x", "/home")
    kind = j % 12
    if kind == 0:
        return "beacons.raw", b"this is not json {", "not_json"
    if kind == 1:
        return "beacons.raw", json.dumps(good).encode()[:-7], "not_json"
    if kind == 2:
        return "beacons.raw", b"[1, 2, 3]", "not_an_object"
    if kind == 3:
        return "beacons.raw", json.dumps(good | {"schema": "beacon/9"}).encode(), "wrong_schema"
    if kind == 4:
        return "beacons.raw", json.dumps({k: v for k, v in good.items() if k != "event_id"}).encode(), "missing_field"
    if kind == 5:
        return "beacons.raw", json.dumps(good | {"duration_ms": "long"}).encode(), "wrong_field"
    if kind == 6:
        return "beacons.raw", json.dumps(good | {"ts": "2026-11-20T12:00:00"}).encode(), "wrong_field"
    if kind == 7:
        return "beacons.raw", json.dumps(good | {"event": "click", "element": None}).encode(), "invalid"
    if kind == 8:
        return "beacons.raw", json.dumps(good | {"page": "/x" * 40_000}).encode(), "message_too_large"
    if kind == 10:  # not a representable UTC time
        return "beacons.raw", json.dumps(good | {"ts": "9999-12-31T23:00:00-05:00"}).encode(), "wrong_field"
    if kind == 11:  # a lone surrogate, escaped: Python's json accepts it, UTF-8 can't carry it
        return "beacons.raw", json.dumps(good | {"referrer": "/x\ud800"}).encode(), "not_json"
    return (
        "consent.events",
        json.dumps(
            {"schema": "consent/1", "ts": "2026-11-20T00:00:00Z", "subject": {}, "analytics": "granted"}
        ).encode(),
        "invalid",
    )


# --------------------------------------------------------------------------------------------
def expected_tables(ds: Dataset, k: int) -> dict[str, set[tuple]]:
    """Each analytics table as a set of row tuples in the contract's column order."""
    return _expected(ds, k)[0]


def expected_duplicates(ds: Dataset) -> int:
    """Valid beacons of subjects that count, minus their distinct event ids."""
    return _expected(ds, 1)[1]


def _expected(ds: Dataset, k: int) -> tuple[dict[str, set[tuple]], int]:
    consent: dict[tuple, list] = defaultdict(list)
    for raw in ds.messages["consent.events"]:
        doc = _loads(raw)
        if doc is None or not doc.get("subject"):
            continue
        subj = (
            ("openid", doc["subject"]["openid"])
            if "openid" in doc["subject"]
            else ("anonymous_id", doc["subject"]["anonymous_id"])
        )
        minor_blocked = bool(doc.get("minor")) and doc.get("guardian_consent") is not True
        consent[subj].append((_ts(doc["ts"]), doc["analytics"], minor_blocked))
    for changes in consent.values():
        changes.sort(key=lambda c: c[0])
    # a minor without a guardian's consent: every event before the first change after the last such
    # mark counts nowhere (all of them when there is none)
    blocked_until: dict[tuple, datetime] = {}
    for s, changes in consent.items():
        marks = [i for i, c in enumerate(changes) if c[2]]
        if marks:
            after = changes[marks[-1] + 1 :]
            blocked_until[s] = after[0][0] if after else datetime.max.replace(tzinfo=UTC)

    events: dict[str, dict] = {}
    duplicates = 0
    for raw in ds.messages["beacons.raw"]:
        doc = _loads(raw)
        if doc is None or not _valid_beacon(raw, doc):
            continue
        user = doc.get("user") or {}
        subj = ("openid", user["openid"]) if user.get("openid") else ("anonymous_id", doc["anonymous_id"])
        if subj in blocked_until and _ts(doc["ts"]) < blocked_until[subj]:
            continue
        if doc["event_id"] in events:
            duplicates += 1
            continue
        t = _ts(doc["ts"])
        state = [c for c in consent.get(subj, []) if c[0] <= t]
        granted = bool(state) and state[-1][1] == "granted" and not doc.get("opt_out", False)
        local = t.astimezone(SHANGHAI)
        device = doc.get("device") or {}
        events[doc["event_id"]] = {
            "event": doc["event"],
            "subject": subj,
            "granted": granted,
            "page": doc["page"],
            "element": doc.get("element"),
            "duration_ms": doc.get("duration_ms"),
            "hour": local.replace(minute=0, second=0, microsecond=0),
            "day": local.date(),
            "session": doc.get("session_id"),
            "device": (device.get("model"), device.get("os"), (device.get("os_version") or "").split(".")[0] or None),
            "profile": (user.get("gender"), user.get("country"), user.get("city"), user.get("language")),
        }
    ev = list(events.values())

    def visitors(rows: list[dict]) -> int:
        return len({e["subject"] for e in rows if e["granted"]})

    def subjects(rows: list[dict]) -> int:
        return len({e["subject"] for e in rows})

    def stands(rows: list[dict], counted) -> bool:
        """Every count of a row stands on k subjects: the events it counts (`counted`), and the
        consenting subjects among them (visitors), unless they are none."""
        rows = [e for e in rows if counted(e)]
        return subjects(rows) >= k and (visitors(rows) == 0 or visitors(rows) >= k)

    def others(rows: list[dict], key, counted) -> tuple[dict, dict]:
        """(the cells that stand, the `(other)` roll-up of each time's suppressed cells)."""
        out = defaultdict(list)
        for e in rows:
            out[key(e)].append(e)
        kept = {k_: v for k_, v in out.items() if stands(v, counted)}
        other = defaultdict(list)
        for k_, v in out.items():
            if k_ not in kept:
                other[(k_[0], *["(other)"] * (len(k_) - 1))].extend(v)
        return kept, other

    def cells(rows: list[dict], key, counted=lambda e: True) -> dict:
        """Cells whose every count stands on k subjects; `key` is (time, *dimensions); the
        suppressed cells of each time roll up into one (time, "(other)", ...) cell, kept under the
        same rule."""
        kept, other = others(rows, key, counted)
        return kept | {k_: v for k_, v in other.items() if stands(v, counted)}

    def hourly(rows: list[dict], key, counted=lambda e: True) -> dict:
        """An hourly table's cells as (rows, hours): 1 hour each, except the `(other)` rows of
        quiet hours that stand on fewer than k subjects, merged per day in time order until they
        stand (at the block's first hour); the day's remainder stays suppressed."""
        kept, other = others(rows, key, counted)
        published = {k_: (v, 1) for k_, v in kept.items()}
        published |= {k_: (v, 1) for k_, v in other.items() if stands(v, counted)}
        quiet = sorted((k_, v) for k_, v in other.items() if not stands(v, counted))
        block: list = []
        for i, (k_, v) in enumerate(quiet):
            block.append(v)
            merged = [e for v_ in block for e in v_]
            if len(block) == 1:
                first = k_
            if stands(merged, counted):
                published[first] = (merged, len(block))
                block = []
            elif i + 1 == len(quiet) or quiet[i + 1][0][0].date() != k_[0].date():
                block = []
        return published

    def views(e: dict) -> bool:
        return e["event"] == "page_view"

    def average_of(rows: list[dict]) -> float | None:
        """An average stands on the subjects it averages: null below k."""
        return _mean([e["duration_ms"] for e in rows]) if subjects(rows) >= k else None

    tables: dict[str, set[tuple]] = {}
    tables["page_views_hourly"] = {
        (
            *key,
            sum(views(e) for e in rows),
            visitors([e for e in rows if views(e)]),
            average_of([e for e in rows if e["event"] == "page_leave"]),
            hours,
        )
        for key, (rows, hours) in hourly(
            [e for e in ev if e["event"] in ("page_view", "page_leave")], lambda e: (e["hour"], e["page"]), views
        ).items()
    }
    tables["page_views_daily"] = {
        (
            *key,
            sum(views(e) for e in rows),
            visitors([e for e in rows if views(e)]),
            average_of([e for e in rows if e["event"] == "page_leave"]),
        )
        for key, rows in cells(
            [e for e in ev if e["event"] in ("page_view", "page_leave")], lambda e: (e["day"], e["page"]), views
        ).items()
    }
    clicks = [e for e in ev if e["event"] == "click"]
    tables["clicks_hourly"] = {
        (*key, len(rows), visitors(rows), hours)
        for key, (rows, hours) in hourly(clicks, lambda e: (e["hour"], e["page"], e["element"])).items()
    }
    tables["clicks_daily"] = {
        (*key, len(rows), visitors(rows))
        for key, rows in cells(clicks, lambda e: (e["day"], e["page"], e["element"])).items()
    }
    # retention: cohort = the Monday of a consenting subject's first visit (within the last 12
    # weeks of the data), and the cohort's subjects who visited with consent each week after
    weeks = defaultdict(set)
    for e in ev:
        if e["granted"]:
            weeks[e["subject"]].add(e["day"] - timedelta(days=e["day"].weekday()))
    if weeks:
        horizon = max(w for ws in weeks.values() for w in ws) - timedelta(weeks=11)
        weeks = defaultdict(set, {s: {w for w in ws if w >= horizon} for s, ws in weeks.items()})
    cohorts = defaultdict(set)
    for subject, ws in weeks.items():
        if ws:
            first = min(ws)
            for w in ws:
                cohorts[(first, (w - first).days // 7)].add(subject)
    tables["retention_weekly"] = {(*key, len(s)) for key, s in cohorts.items() if len(s) >= k}
    tables["devices_daily"] = {
        (*key, len(rows), visitors(rows)) for key, rows in cells(ev, lambda e: (e["day"], *e["device"])).items()
    }
    tables["audience_daily"] = {
        (*key, subjects(rows))
        for key, rows in cells([e for e in ev if e["granted"]], lambda e: (e["day"], *e["profile"])).items()
    }
    sessions = defaultdict(list)
    for e in ev:
        if e["session"]:
            sessions[e["session"]].append(e)
    by_day = defaultdict(list)
    for rows in sessions.values():
        by_day[min(e["day"] for e in rows)].append(rows)
    tables["sessions_daily"] = set()
    for d, day_sessions in by_day.items():
        if len({e["subject"] for rows in day_sessions for e in rows}) < k:
            continue
        durations = [sum(e["duration_ms"] for e in rows if e["event"] == "page_leave") for rows in day_sessions]
        bounces = [sum(e["event"] == "page_view" for e in rows) <= 1 for rows in day_sessions]
        tables["sessions_daily"].add((d, len(day_sessions), _mean(durations), _mean([float(b) for b in bounces])))
    return tables, duplicates


def _valid_beacon(raw: bytes, doc: dict) -> bool:
    required = ("event_id", "event", "ts", "anonymous_id", "page")
    if len(raw) > 64 * 1024 or doc.get("schema") != "beacon/1" or any(f not in doc for f in required):
        return False
    if doc["event"] == "click" and not doc.get("element"):
        return False
    if doc.get("duration_ms") is not None and not isinstance(doc["duration_ms"], int):
        return False
    try:
        json.dumps(doc, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate
        return False
    if not (doc["ts"].endswith("Z") or "+" in doc["ts"][10:] or "-" in doc["ts"][19:]):
        return False
    return datetime(1970, 1, 1, tzinfo=UTC) <= _ts(doc["ts"]) < datetime(2100, 1, 1, tzinfo=UTC)


def _loads(raw: bytes) -> dict | None:
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _mean(values: list) -> float | None:
    return sum(values) / len(values) if values else None


def normalize(rows: list[tuple]) -> set[tuple]:
    """Rows read from DuckDB, made comparable: instants in Asia/Shanghai, floats rounded."""
    out = set()
    for row in rows:
        out.add(
            tuple(
                v.astimezone(SHANGHAI) if isinstance(v, datetime) else round(v, 6) if isinstance(v, float) else v
                for v in row
            )
        )
    return out


def rounded(table: set[tuple]) -> set[tuple]:
    return normalize(list(table))
