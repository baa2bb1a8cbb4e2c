"""`seaport simulate --attacks`: quiet days, then a day of labelled attacks and legitimate look-alikes.

The traffic the security detectors are measured on (R11). Every day has the same population of
visitors with habits: their usual hours, a home and sometimes a work network, now and then a
mobile address, their device; signed-in visitors log in now and then (a typo once in a while),
and a few insurance agents browse hundreds of pages every day. The last day adds, at once:

attacks (`benign: false`), one of each kind the detectors look for —
  credential_stuffing, password_spraying, brute_force, account_takeover, many_accounts_one_device,
  many_devices, scraping, path_scanning, error_spike;
look-alikes (`benign: true`), legitimate traffic that resembles them —
  heavy_users (a new agent), office_nat (an office enrolling its staff behind one address),
  campaign (a marketing push with a broken link), travellers (accounts on new networks and phones).

The labels name each scenario's identifiers (IPs, openids, MAC addresses, paths) and go to a side
file (`--out traffic.jsonl` -> `traffic.labels.json`), never into the topics: the pipeline sees only
the traffic. No consent changes or erasures are generated, so the security store holds every valid
event. Every identifier is made up from the seed.

    seaport simulate --attacks --users 700 --days 9 --seed 1 --out traffic.jsonl
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

from seaport.devtools.simulate import (
    CHINA_FIRST_OCTETS,
    HOUR,
    HOURLY_WEIGHTS,
    MINUTE,
    SECOND,
    Recorder,
    Traffic,
    Visitor,
    _day_start_ms,
    _device_and_agent,
    _dumps,
    _ip,
    _mac,
    _wechat_id,
    make_visitors,
    record_session,
)
from seaport.errors import SeaportError

ATTACK_KINDS = (
    "credential_stuffing", "password_spraying", "brute_force", "account_takeover", "many_accounts_one_device",
    "many_devices", "scraping", "path_scanning", "error_spike",
)  # fmt: skip
LOOKALIKE_KINDS = ("heavy_users", "office_nat", "campaign", "travellers")
TOOL_AGENTS = ["python-requests/2.31.0", "Go-http-client/1.1", "okhttp/4.12.0", "curl/8.4.0"]
SENSITIVE_STEPS = [
    ("GET", "/user/profile/edit"), ("POST", "/api/user/phone"), ("POST", "/api/user/bankcard"),
    ("GET", "/claims/new"), ("POST", "/api/claims"), ("POST", "/api/policy/transfer"),
]  # fmt: skip
SCAN_PATHS = [".env", "wp-admin/", "wp-login.php", "phpmyadmin/", ".git/config", "admin/config.php", "server-status",
              "actuator/env", "api/v1/debug", "config.json", "backup.zip", "db.sql", "console", "solr/admin",
              "cgi-bin/test.cgi", "vendor/phpunit", ".DS_Store", "jenkins/script", "manager/html", "owa/auth"]  # fmt: skip
OUTAGE_PATH = "/policy/query"


@dataclass
class Scenario:
    """One labelled scenario of the attack day, with the raw identifiers that name it."""

    kind: str
    benign: bool
    day: str
    ips: list[str] = field(default_factory=list)
    openids: list[str] = field(default_factory=list)
    macs: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@dataclass
class Habit:
    """What makes a visitor's day look like their other days."""

    hours: list[int]
    work_ip: str | None


def _random_ip(rng: random.Random) -> str:
    return f"{rng.choice(CHINA_FIRST_OCTETS)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _habit(rng: random.Random) -> Habit:
    centre = rng.choices(range(24), HOURLY_WEIGHTS)[0]
    hours = [centre] + ([rng.choices(range(24), HOURLY_WEIGHTS)[0]] if rng.random() < 0.4 else [])
    return Habit(hours, _random_ip(rng) if rng.random() < 0.4 else None)


def _start_at(rng: random.Random, day_ms: int, hour: int) -> int:
    return day_ms + (hour % 24) * HOUR + rng.randrange(HOUR)


def _login(rec: Recorder, v: Visitor, ms: int, ip: str, typo: bool) -> int:
    """A signed-in visitor's login call (the access log names the account it was for)."""
    rng = rec.rng
    if typo:
        rec.access(ms, ip, "POST", "/api/login", 401, user_agent=v.user_agent, openid=v.openid)
        ms += rng.randrange(5 * SECOND, 40 * SECOND)
    rec.access(ms, ip, "POST", "/api/login", 200, user_agent=v.user_agent, openid=v.openid)
    return ms + rng.randrange(SECOND, 5 * SECOND)


def ordinary_session(rec: Recorder, v: Visitor, habit: Habit, day_ms: int, hour: int | None = None,
                     ip: str | None = None, max_pages: int = 12) -> None:  # fmt: skip
    rng = rec.rng
    if hour is None:
        hour = rng.choice(habit.hours) + round(rng.gauss(0, 1.0))
    if ip is None:
        roll = rng.random()
        ip = habit.work_ip if habit.work_ip and roll < 0.3 else _ip(rng) if roll > 0.96 else v.ip
    ms = _start_at(rng, day_ms, hour)
    if v.user and rng.random() < 0.2:
        ms = _login(rec, v, ms, ip, typo=rng.random() < 0.08)
    record_session(rec, v, ms, max_pages=max_pages, ip=ip)


def agent_day(rec: Recorder, v: Visitor, habit: Habit, day_ms: int) -> None:
    """An insurance agent: policy look-ups for clients all working day, by hand (irregular gaps)."""
    rng = rec.rng
    ms = _login(rec, v, _start_at(rng, day_ms, 9), v.ip, typo=False)
    for _ in range(rng.randint(12, 20)):
        record_session(rec, v, ms, max_pages=12)
        ms += int(rng.expovariate(1 / (25 * MINUTE)))


@dataclass
class Cast:
    visitors: list[Visitor]
    habits: list[Habit]

    def signed(self, channel: str | None = None) -> list[tuple[Visitor, Habit]]:
        return [(v, h) for v, h in zip(self.visitors, self.habits, strict=True)
                if v.user and v.anonymous_pages == 0 and (channel is None or v.channel == channel)]  # fmt: skip


def _attacker(rng: random.Random, channel: str = "miniprogram") -> Visitor:
    device, agent = _device_and_agent(rng, channel)
    return Visitor(
        anonymous_id="c-" + f"{rng.getrandbits(64):016x}", channel=channel, device=device, ip=_random_ip(rng),
        user_agent=agent, user=None, anonymous_pages=0, opt_out=False, activity=1.0,
    )  # fmt: skip


def _as(victim: Visitor, device_of: Visitor, ip: str) -> Visitor:
    """The victim's account in someone else's hands: their profile, another device and network."""
    return Visitor(
        anonymous_id=device_of.anonymous_id, channel=device_of.channel, device=device_of.device, ip=ip,
        user_agent=device_of.user_agent, user=victim.user, anonymous_pages=0, opt_out=False, activity=1.0,
    )  # fmt: skip


def _attack_day(rec: Recorder, cast: Cast, day_ms: int, label_day: str) -> list[Scenario]:
    rng = rec.rng
    scenarios: list[Scenario] = []
    signed = cast.signed()
    mini = cast.signed("miniprogram")
    used = set()

    def pick(pool: list[tuple[Visitor, Habit]]) -> tuple[Visitor, Habit]:
        choice = rng.choice([p for p in pool if p[0].anonymous_id not in used])
        used.add(choice[0].anonymous_id)
        return choice

    # credential stuffing: hundreds of addresses, a few tries each, mostly unknown accounts
    s = Scenario("credential_stuffing", False, label_day)
    real = [v for v, _ in rng.sample(signed, min(12, len(signed)))]
    start = day_ms + 1 * HOUR + rng.randrange(HOUR)
    for i in range(rng.randint(220, 300)):
        ip = _random_ip(rng)
        s.ips.append(ip)
        agent = rng.choice(TOOL_AGENTS)
        for _ in range(rng.randint(2, 4)):
            ms = start + rng.randrange(2 * HOUR)
            if i % 25 == 0 and real:  # a real account whose leaked password still works
                victim = real.pop()
                rec.access(ms, ip, "POST", "/api/login", 401, user_agent=agent, openid=victim.openid)
                rec.access(ms + 3 * SECOND, ip, "POST", "/api/login", 200, user_agent=agent, openid=victim.openid)
                s.openids.append(str(victim.openid))
                continue
            rec.access(ms, ip, "POST", "/api/login", 401, user_agent=agent, openid=_wechat_id(rng))
    scenarios.append(s)

    # password spraying: a few addresses, each trying one password on many accounts
    s = Scenario("password_spraying", False, label_day)
    for _ in range(3):
        ip, ms = _random_ip(rng), day_ms + rng.randrange(24) * HOUR
        s.ips.append(ip)
        for _ in range(rng.randint(50, 80)):
            ms += rng.randrange(10 * SECOND, 60 * SECOND)
            account = rng.choice(signed)[0].openid if rng.random() < 0.3 else _wechat_id(rng)
            rec.access(ms, ip, "POST", "/api/login", 401, user_agent="Go-http-client/1.1", openid=account)
    scenarios.append(s)

    # brute force: one address, one account, hundreds of passwords
    victim, _ = pick(signed)
    ip, ms = _random_ip(rng), day_ms + rng.randrange(24) * HOUR
    for _ in range(rng.randint(150, 350)):
        ms += rng.randrange(500, 6 * SECOND)
        rec.access(ms, ip, "POST", "/api/login", 401, user_agent="python-requests/2.31.0", openid=victim.openid)
    scenarios.append(Scenario("brute_force", False, label_day, ips=[ip], openids=[str(victim.openid)]))

    # account takeover: a known account (a regular: its history is what tells), someone else's phone
    # and network, at the hour farthest from its habits
    victim, habit = pick([(v, h) for v, h in mini if v.activity >= 0.9] or mini)
    thief = _attacker(rng)
    hour = max(range(24), key=lambda h: (min(min(abs(h - u), 24 - abs(h - u)) for u in habit.hours), -h))
    ms = _start_at(rng, day_ms, hour)
    ms = _login(rec, victim, ms, thief.ip, typo=rng.random() < 0.5)
    taken = _as(victim, thief, thief.ip)
    record_session(rec, taken, ms, max_pages=2)
    ms += 3 * MINUTE
    for method, path in rng.sample(SENSITIVE_STEPS, rng.randint(2, 4)):
        ms += rng.randrange(20 * SECOND, 2 * MINUTE)
        rec.access(ms, thief.ip, method, path, 200, user_agent=thief.user_agent, openid=victim.openid)
        if method == "GET":
            rec.beacon(taken, ms + 300, "page_view", path, "s-" + f"{rng.getrandbits(48):012x}", ip=thief.ip)
    scenarios.append(Scenario("account_takeover", False, label_day, ips=[thief.ip], openids=[str(victim.openid)],
                              macs=[thief.device["mac"]] if thief.device else []))  # fmt: skip

    # many accounts on one device: a phone cycling through farmed accounts
    farm = _attacker(rng)
    s = Scenario("many_accounts_one_device", False, label_day, macs=[str(farm.device["mac"])] if farm.device else [])
    ms = day_ms + rng.randrange(8, 20) * HOUR
    for _ in range(rng.randint(15, 30)):
        account = Visitor(**{**asdict(farm), "user": {"openid": _wechat_id(rng)}, "pages": 0})
        s.openids.append(str(account.openid))
        ms = _login(rec, account, ms, farm.ip, typo=False)
        record_session(rec, account, ms, max_pages=3)
        ms += rng.randrange(2 * MINUTE, 10 * MINUTE)
    s.ips.append(farm.ip)
    scenarios.append(s)

    # one account on many devices: a shared or resold account
    owner, habit = pick(signed)
    s = Scenario("many_devices", False, label_day, openids=[str(owner.openid)])
    for _ in range(rng.randint(10, 16)):
        other = _attacker(rng)
        s.macs.append(str(other.device["mac"]) if other.device else "")
        record_session(rec, _as(owner, other, other.ip), _start_at(rng, day_ms, rng.randrange(24)), max_pages=2)
    s.macs = [m for m in s.macs if m]
    scenarios.append(s)

    # scraping: an HTTP client walking the catalogue at a steady pace, no beacons
    ip = _random_ip(rng)
    ms, gap = day_ms + rng.randrange(0, 12) * HOUR, rng.randrange(2 * SECOND, 6 * SECOND)
    for i in range(rng.randint(800, 1500)):
        ms += int(gap * rng.uniform(0.85, 1.15))
        path = f"/products/{rng.choice(['health', 'auto', 'travel'])}/plan-{i % 600}"
        rec.access(ms, ip, "GET", path, 200, user_agent=rng.choice(TOOL_AGENTS))
    scenarios.append(Scenario("scraping", False, label_day, ips=[ip]))

    # path scanning: many distinct missing paths from one address
    ip, ms = _random_ip(rng), day_ms + rng.randrange(24) * HOUR
    for probe in SCAN_PATHS * 4:
        ms += rng.randrange(100, 2 * SECOND)
        rec.access(ms, ip, "GET", f"/{probe}?v={rng.randrange(1000)}", 404, user_agent="Go-http-client/1.1")
    for n in range(rng.randint(40, 80)):
        rec.access(ms + n * 300, ip, "GET", f"/static/{rng.getrandbits(32):08x}.bak", 404, user_agent="nuclei/3.1")
    scenarios.append(Scenario("path_scanning", False, label_day, ips=[ip]))

    # an outage: 20 minutes of 5xx on one busy path, with the clients' retries
    start = day_ms + rng.randrange(9, 20) * HOUR + rng.randrange(40) * MINUTE
    for v, _ in rng.sample(signed, min(30, len(signed))):
        for _ in range(rng.randint(2, 4)):
            ms = start + rng.randrange(20 * MINUTE)
            rec.access(ms, v.ip, "GET", OUTAGE_PATH, rng.choice([500, 502, 503, 503]), user_agent=v.user_agent,
                       openid=v.openid)  # fmt: skip
    scenarios.append(Scenario("error_spike", False, label_day, paths=[OUTAGE_PATH]))

    # look-alikes ------------------------------------------------------------------------------------
    agent = _attacker(rng, "browser")
    agent.user = {"openid": _wechat_id(rng)}
    agent_day(rec, agent, Habit([9], None), day_ms)
    scenarios.append(Scenario("heavy_users", True, label_day, ips=[agent.ip], openids=[str(agent.openid)]))

    office_ip = _random_ip(rng)
    s = Scenario("office_nat", True, label_day, ips=[office_ip])
    ms = day_ms + 9 * HOUR
    for _ in range(rng.randint(40, 60)):
        staff = _attacker(rng, "browser")
        staff.user = {"openid": _wechat_id(rng)}
        staff.ip = office_ip
        s.openids.append(str(staff.openid))
        at = ms + rng.randrange(3 * HOUR)
        at = _login(rec, staff, at, office_ip, typo=rng.random() < 0.35)
        record_session(rec, staff, at, max_pages=4)
    scenarios.append(s)

    s = Scenario("campaign", True, label_day, paths=["/products/health/spring-offer"])
    ms = day_ms + 20 * HOUR
    for _ in range(rng.randint(250, 350)):
        fan = _attacker(rng, rng.choice(["wechat_h5", "browser"]))
        s.ips.append(fan.ip)
        at = ms + rng.randrange(HOUR)
        rec.access(at, fan.ip, "GET", "/products/health/spring-offer", 404, user_agent=fan.user_agent)
        record_session(rec, fan, at + 2 * SECOND, max_pages=2)
    scenarios.append(s)

    s = Scenario("travellers", True, label_day)
    for v, habit in [pick(signed) for _ in range(8)]:
        ip = _random_ip(rng)
        s.ips.append(ip)
        s.openids.append(str(v.openid))
        away = _as(v, _attacker(rng, v.channel), ip) if rng.random() < 0.4 else v
        if away is not v and away.device and away.device.get("mac"):
            s.macs.append(away.device["mac"])
        ms = _login(rec, v, _start_at(rng, day_ms, habit.hours[0]), ip, typo=False)
        record_session(rec, away, ms, max_pages=5, ip=ip)
        if rng.random() < 0.5:
            rec.access(ms + 5 * MINUTE, ip, "GET", "/user/profile", 200, user_agent=away.user_agent, openid=v.openid)
    scenarios.append(s)
    return scenarios


def simulate_attacks(users: int, days: int, seed: int, start: date) -> tuple[Traffic, list[Scenario]]:
    """`days - 1` quiet days, then the attack day; deterministic. Returns the traffic and its labels."""
    if users < 50 or days < 2:
        raise SeaportError("--attacks needs at least 50 --users and 2 --days (quiet days, then the attack day)")
    # Its own people: `seaport simulate --seed N` makes the same visitors from the same seed, and an
    # attack's victim must not also be one of that traffic's visitors (run_local sends both).
    rng = random.Random(f"attacks:{seed}")
    visitors = make_visitors(rng, users)
    for v in visitors:  # the mini-program always knows its device; keep every visitor's client stable
        if v.channel == "miniprogram" and v.device and "mac" not in v.device:
            v.device["mac"] = _mac(rng, v.device.get("model", ""))
    cast = Cast(visitors, [_habit(rng) for _ in visitors])
    agents = [v for v, _ in cast.signed("browser")][:4]
    rec = Recorder(rng, late_rate=0)
    scenarios: list[Scenario] = []
    for d in range(days):
        day = start + timedelta(days=d)
        day_ms = _day_start_ms(day)
        for v, habit in zip(cast.visitors, cast.habits, strict=True):
            if v in agents:
                if day.weekday() < 5:
                    agent_day(rec, v, habit, day_ms)
                continue
            if rng.random() < v.activity:
                for _ in range(rng.choices([1, 2, 3], [70, 22, 8])[0]):
                    ordinary_session(rec, v, habit, day_ms)
        if d == days - 1:
            scenarios = _attack_day(rec, cast, day_ms, day.isoformat())
    beacons = [_dumps(m) for _, _, m in sorted(rec.beacons, key=lambda b: (b[0], b[1]))]
    access = [_dumps(m) for _, _, m in sorted(rec.access_logs, key=lambda a: (a[0], a[1]))]
    traffic = Traffic(beacons=beacons, access_logs=access, consent=[], erasures=[],
                      malformed={"beacons.raw": 0, "access_logs.raw": 0, "consent.events": 0, "erasure.requests": 0})  # fmt: skip
    return traffic, scenarios


def labels_path(out: Path) -> Path:
    stem = out.with_suffix("") if out.suffix == ".jsonl" else out
    return stem.with_name(f"{stem.name}.labels.json")


def write_labels(scenarios: list[Scenario], path: Path) -> None:
    path.write_text(json.dumps([asdict(s) for s in scenarios], indent=1, sort_keys=True) + "\n", encoding="utf-8")


def read_labels(path: Path) -> list[Scenario]:
    """Labels written by `simulate --attacks --out`; a one-line error for anything else."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        scenarios = [Scenario(**item) for item in raw]
    except OSError as e:
        raise SeaportError(f"cannot read the labels file {path.name}: {e.strerror}") from None
    except (ValueError, TypeError, RecursionError):
        raise SeaportError(f"{path.name} is not a labels file of `seaport simulate --attacks --out`") from None
    if not all(isinstance(s.kind, str) and isinstance(s.day, str) for s in scenarios):
        raise SeaportError(f"{path.name} is not a labels file of `seaport simulate --attacks --out`")
    return scenarios


__all__ = ["ATTACK_KINDS", "LOOKALIKE_KINDS", "Scenario", "read_labels", "simulate_attacks", "write_labels"]
