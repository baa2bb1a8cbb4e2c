"""Each security detector (R11) on hand-made days: the attack it is for is found, its legitimate
look-alike is not, against baselines built from quiet days before it."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security_days import ATTACK_DAY, Ev, Person, Store, Town, at, prefix, pseudonym
from transforms.anomalies import (
    DetectorConfig,
    detect_account_takeover,
    detect_automation,
    detect_brute_force_by_account,
    detect_credential_stuffing,
    detect_day,
    detect_error_spikes,
    detect_login_abuse_by_prefix,
    detect_many_accounts_on_device,
    detect_many_devices,
    detect_scanning,
    merge_incidents,
)

D = ATTACK_DAY


@pytest.fixture
def town() -> Town:
    return Town.make(20261124)


@pytest.fixture
def store(tmp_path: Path, town: Town) -> Iterator[Store]:
    """Seven quiet days, and an ordinary attack day to add to."""
    s = Store(tmp_path / "security.duckdb")
    s.add(town.days(D, 7) + town.day(D))
    yield s
    s.close()


def test_quiet_day_has_no_finding(store: Store) -> None:
    found, per_detector = detect_day(store.context())
    assert found == []
    assert set(per_detector) >= {"login_by_prefix", "site_logins", "account_takeover", "error_windows"}


def login(t: dt.datetime, subject: str | None, where: str, status: str) -> Ev:
    return Ev(t, "access", subject, None, where, "/api/login", status, "POST", "python-requests 2")


def test_brute_force_from_one_prefix_not_an_office_enrolling(store: Store, town: Town) -> None:
    rng = random.Random(1)
    attacker, victim = prefix(rng), town.people[0].subject
    rows = [login(at(D, 3, 0, i * 5), victim, attacker, "401") for i in range(80)]
    office = prefix(rng)  # an office enrolling its staff: many good logins, a few typos
    for i in range(50):
        staff, t = pseudonym(rng), at(D, 9, i % 60)
        rows += [login(t, staff, office, "401")] if i % 3 == 0 else []
        rows += [login(t, staff, office, "200"), login(t, staff, office, "200")]
    store.add(rows)
    found = detect_login_abuse_by_prefix(store.context())
    assert [(a.kind, a.details["ip_prefix"], a.subject_pseudonym) for a in found] == [("brute_force", attacker, victim)]
    assert found[0].details["failed_logins"] == 80 and found[0].score >= 1
    assert "80 failed logins" in found[0].details["evidence"]


def test_password_spraying_many_accounts_from_one_prefix(store: Store) -> None:
    rng = random.Random(2)
    sprayer = prefix(rng)
    store.add([login(at(D, 14, i // 2), pseudonym(rng), sprayer, "401") for i in range(70)])
    [found] = detect_login_abuse_by_prefix(store.context())
    assert (found.kind, found.details["ip_prefix"], found.details["accounts_tried"]) == (
        "password_spraying",
        sprayer,
        70,
    )
    assert found.subject_pseudonym is None and len(found.details["subject_pseudonyms"]) == 20


def test_brute_force_on_one_account_from_many_prefixes(store: Store, town: Town) -> None:
    rng = random.Random(3)
    victim = town.people[5]
    store.add([login(at(D, 22, i), victim.subject, prefix(rng), "401") for i in range(40)])
    [found] = detect_brute_force_by_account(store.context())
    assert (found.kind, found.subject_pseudonym, found.details["failed_logins"]) == ("brute_force", victim.subject, 40)
    assert len(found.details["ip_prefixes"]) == 20  # listed up to 20
    # spread over 40 prefixes at one try each: no single prefix stands out
    assert detect_login_abuse_by_prefix(store.context()) == []


def test_credential_stuffing_spread_thin_not_a_busy_morning(store: Store, town: Town) -> None:
    rng = random.Random(4)
    rows, broken = [], town.people[7].subject
    for i in range(250):  # 250 prefixes, 3 tries each on made-up accounts: nothing per prefix
        where = prefix(rng)
        rows += [login(at(D, 2, rng.randrange(60)), pseudonym(rng), where, "401") for _ in range(3)]
        if i == 100:
            rows += [login(at(D, 2, 30), broken, where, "401"), login(at(D, 2, 31), broken, where, "200")]
    busy = Town.make(5, size=200)  # a busy morning: four times the usual logins, the usual share of typos
    for p in busy.people:
        rows += [e for e in p.visit(busy.rng, D, hour=10) if e.path == "/api/login"]
    store.add(rows)
    context = store.context()
    assert detect_login_abuse_by_prefix(context) == []
    [found] = detect_credential_stuffing(context)
    assert found.kind == "credential_stuffing" and found.details["hours"] == [2]
    assert found.details["failed_logins"] >= 750 and found.details["prefixes"] >= 250
    assert broken in found.details["subject_pseudonyms"]  # success after failures
    assert "02" in found.details["evidence"] and found.score >= 1


def test_account_takeover_not_a_traveller_nor_a_new_phone(store: Store, town: Town) -> None:
    rng = random.Random(6)
    victim, traveller, new_phone = town.people[10], town.people[11], town.people[12]
    for p in (victim, traveller, new_phone):  # make sure each has a history on 5 of the 7 days
        store.add([e for d in range(1, 6) for e in p.visit(rng, D - dt.timedelta(days=d))])
    thief_prefix, thief_device = prefix(rng), pseudonym(rng)
    night = (victim.hours[0] + 12) % 24
    rows = victim.visit(rng, D, hour=night, prefix=thief_prefix, device=thief_device)
    rows += [Ev(at(D, night, 55), "access", victim.subject, None, thief_prefix, "/api/user/bankcard", "200", "POST")]
    # a traveller: a new network, the own phone, the usual hour, the profile page
    away = prefix(rng)
    rows += traveller.visit(rng, D, prefix=away)
    rows += [Ev(at(D, traveller.hours[0], 55), "access", traveller.subject, None, away, "/user/profile/edit", "200",
                "POST")]  # fmt: skip
    # a new phone at home at the usual hour, changing the phone number
    rows += new_phone.visit(rng, D, device=pseudonym(rng))
    rows += [Ev(at(D, new_phone.hours[0], 55), "access", new_phone.subject, None, new_phone.home, "/api/user/phone",
                "200", "POST")]  # fmt: skip
    store.add(rows)
    [found] = detect_account_takeover(store.context())
    assert (found.kind, found.subject_pseudonym) == ("account_takeover", victim.subject)
    assert found.details["ip_prefix"] == thief_prefix and found.details["device_pseudonym"] == thief_device
    assert found.details["hour_distance"] >= 3 and "/api/user/bankcard" in found.details["sensitive_paths"]


def test_many_accounts_on_one_device_not_a_family_phone(store: Store) -> None:
    rng = random.Random(7)
    farm, family = pseudonym(rng), pseudonym(rng)
    where = prefix(rng)
    rows = [Ev(at(D, 15, i), "beacon", pseudonym(rng), farm, where, "/home", "page_view") for i in range(20)]
    rows += [Ev(at(D, 20, i), "beacon", pseudonym(rng), family, where, "/home", "page_view") for i in range(3)]
    store.add(rows)
    [found] = detect_many_accounts_on_device(store.context())
    assert (found.kind, found.details["device_pseudonym"], found.details["accounts"]) == (
        "many_accounts_one_device",
        farm,
        20,
    )


def test_one_account_on_many_devices_not_phone_and_tablet(store: Store, town: Town) -> None:
    rng = random.Random(8)
    shared, owner = town.people[20], town.people[21]
    rows = [e for _ in range(10) for e in shared.visit(rng, D, device=pseudonym(rng), prefix=prefix(rng))]
    rows += owner.visit(rng, D, device=pseudonym(rng))  # a tablet besides the phone
    store.add(rows)
    [found] = detect_many_devices(store.context())
    assert (found.kind, found.subject_pseudonym) == ("many_devices", shared.subject)
    assert found.details["devices"] >= 10


def test_scraper_found_not_a_heavy_user(store: Store, town: Town) -> None:
    rng = random.Random(9)
    scraper, bot = prefix(rng), pseudonym(rng)
    t0 = at(D, 1)
    rows = [Ev(t0 + dt.timedelta(seconds=4 * i + rng.uniform(-0.3, 0.3)), "access", bot, None, scraper,
               f"/products/health/plan-{i}", "200", "GET", "python-requests 2") for i in range(600)]  # fmt: skip
    agent = town.people[30]  # an agent: hundreds of pages by hand, with beacons, irregular gaps
    t = at(D, 9)
    for _ in range(600):
        t += dt.timedelta(seconds=rng.expovariate(1 / 40))
        page = rng.choice(["/policy/query", "/policy/detail", "/claims/status"])
        rows += [Ev(t, "access", agent.subject, None, agent.home, page, "200", "GET"),
                 Ev(t, "beacon", agent.subject, agent.device, agent.home, page, "page_view")]  # fmt: skip
    store.add(rows)
    found = detect_automation(store.context())
    assert {(a.details["by"], a.subject_pseudonym, a.details.get("ip_prefix")) for a in found} == {
        ("subject", bot, scraper),
        ("ip_prefix", None, scraper),
    }
    assert all(a.details["cadence_cv"] < 0.5 for a in found)
    [merged] = merge_incidents(found)
    assert merged.kind == "automation" and merged.details["ip_prefix"] == scraper


def test_scanning_found_not_a_broken_link(store: Store) -> None:
    rng = random.Random(10)
    scanner = prefix(rng)
    rows = [Ev(at(D, 4, i // 2), "access", None, None, scanner, f"/probe/{i}?q={i}", "404", "GET") for i in range(60)]
    # a campaign's broken link: many people, one missing path
    rows += [Ev(at(D, 20, i % 60), "access", pseudonym(rng), None, prefix(rng), "/offer", "404", "GET")
             for i in range(150)]  # fmt: skip
    store.add(rows)
    [found] = detect_scanning(store.context())
    assert (found.kind, found.details["ip_prefix"], found.details["distinct_404_paths"]) == ("scanning", scanner, 60)


def test_twenty_minute_outage_is_not_diluted_by_the_day(store: Store, town: Town) -> None:
    rng = random.Random(11)
    rows = []
    for hour in range(24):  # a busy path all day, with its usual 1 % of errors
        for i in range(60):
            status = "500" if rng.random() < 0.01 else "200"
            rows.append(Ev(at(D, hour, i), "access", rng.choice(town.people).subject, None, prefix(rng), "/api/pay",
                           status, "GET"))  # fmt: skip
    for i in range(40):  # 10:20-10:40: an outage
        rows.append(Ev(at(D, 10, 20 + i // 2), "access", rng.choice(town.people).subject, None, prefix(rng),
                       "/api/pay", "503", "GET"))  # fmt: skip
    for p in town.people[:20]:  # a flaky path with a high error rate every day, today too
        for d in range(0, 8):
            rows += [Ev(at(D - dt.timedelta(days=d), 12, j), "access", p.subject, None, p.home, "/api/legacy",
                        "502" if j % 3 == 0 else "200", "GET") for j in range(3)]  # fmt: skip
    store.add(rows)
    [found] = detect_error_spikes(store.context())
    assert (found.kind, found.details["path"]) == ("error_rate_spike", "/api/pay")
    assert found.details["from_to"].startswith("10:") and found.details["errors_5xx"] >= 40
    assert 40 / (24 * 60 + 40) < 0.05  # over the whole day the share would never have shown


def test_one_incident_gives_one_finding(store: Store, town: Town) -> None:
    rng = random.Random(12)
    attacker, victim = prefix(rng), town.people[3].subject
    store.add([login(at(D, 3, 0, i * 5), victim, attacker, "401") for i in range(60)])
    found, per_detector = detect_day(store.context())
    assert per_detector["login_by_prefix"] == 1 and per_detector["login_by_account"] == 1
    [incident] = found
    assert incident.kind == "brute_force" and incident.details["ip_prefix"] == attacker
    assert victim in incident.details["subject_pseudonyms"]
    assert [r["kind"] for r in incident.details["related"]] == ["brute_force"]
    again, _ = detect_day(store.context())
    assert again == found  # stable for the same input


def test_new_entities_fall_back_to_the_population(tmp_path: Path, town: Town) -> None:
    """Without any history the day's own population serves, robustly (median and MAD)."""
    s = Store(tmp_path / "fresh.duckdb")
    rng = random.Random(13)
    scanner = prefix(rng)
    s.add(town.day(D) + [Ev(at(D, 4), "access", None, None, scanner, f"/x/{i}", "404", "GET") for i in range(40)])
    typos = [prefix(rng) for _ in range(30)]  # thirty networks with a typo or two each
    s.add([Ev(at(D, 5), "access", None, None, where, f"/y/{i}", "404", "GET") for where in typos for i in range(2)])
    try:
        found = detect_scanning(s.context())
    finally:
        s.close()
    assert [a.details["ip_prefix"] for a in found] == [scanner]
    assert "no history yet" in found[0].details["evidence"]


def test_thresholds_are_configurable(store: Store) -> None:
    rng = random.Random(14)
    where = prefix(rng)
    store.add([Ev(at(D, 4), "access", None, None, where, f"/x/{i}", "404", "GET") for i in range(15)])
    assert detect_scanning(store.context()) == []
    assert [a.details["ip_prefix"] for a in detect_scanning(store.context(cfg=DetectorConfig(min_scan_paths=10)))] == [
        where
    ]


def test_persons_visit_is_deterministic() -> None:
    a, b = Town.make(3), Town.make(3)
    assert a.day(D) == b.day(D)
    assert isinstance(Person.make(random.Random(1)).hours[0], int)


def test_baselines_forget_minors_and_erased_subjects_not_everyone_whose_consent_changed(
    store: Store, town: Town
) -> None:
    """R8, R9: a minor without a guardian's consent, until the change that ends the block, and an
    erased subject leave the summaries; an adult who withdrew (or granted) consent stays in them,
    or account takeover could never be found for them."""
    adult, minor, erased = town.people[20], town.people[21], town.people[22]
    guardian_day = D - dt.timedelta(days=3)
    store.context()  # the summaries of the seven days before D, made before any of this was known
    store.con.execute(
        """CREATE TABLE minor_flags (source_partition INTEGER, source_offset BIGINT, subject_pseudonym VARCHAR,
               ts TIMESTAMPTZ, minor_without_guardian BOOLEAN);
           CREATE TABLE erasures (source_partition INTEGER, source_offset BIGINT, subject_pseudonym VARCHAR,
               requested_at TIMESTAMPTZ)"""
    )
    flags = [
        (0, adult.subject, at(D - dt.timedelta(days=6), 1), False),  # withdrew: an adult, no block
        (1, minor.subject, at(D - dt.timedelta(days=6), 1), True),
        (2, minor.subject, at(guardian_day, 0, 30), False),  # the guardian consents
    ]
    store.con.executemany("INSERT INTO minor_flags VALUES (0, ?, ?, ?, ?)", flags)
    store.con.execute("INSERT INTO erasures VALUES (0, 0, ?, ?)", [erased.subject, at(D, 0)])
    store.context()  # the same days' events: their summaries are reused, less whom they must forget

    def days_of(subject: str) -> set[dt.date]:
        query = "SELECT day FROM security_entity_days WHERE entity_kind = 'subject' AND entity = ?"
        return {d for (d,) in store.con.execute(query, [subject]).fetchall()}

    def link_days_of(subject: str) -> set[dt.date]:
        return {d for (d,) in store.con.execute("SELECT day FROM security_subject_links WHERE subject = ?", [subject]).fetchall()}  # fmt: skip

    assert len(days_of(adult.subject)) == 7 and link_days_of(adult.subject)
    assert days_of(erased.subject) == set() and link_days_of(erased.subject) == set()
    assert days_of(minor.subject) and min(days_of(minor.subject)) > guardian_day  # it began blocked
    assert min(link_days_of(minor.subject)) > guardian_day
