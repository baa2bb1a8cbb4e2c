"""Security-anomaly detectors: day D against each entity's own baseline (R11).

R11 asks that security risks be assessed and incidents found promptly. Each detector reads the
day's events (the temp table `day_events`, see `transforms.security_baselines.load_day_events`) and
the per-entity summaries of the trailing baseline days, and returns findings. It scores counts
robustly (median/MAD of log counts against the entity's own history, the population's for a new
entity) or, for rates over short windows, by a Poisson tail with Benjamini–Hochberg across all
the windows tested. Every detector says which published rule or job it follows.

| kind | follows |
|---|---|
| `credential_stuffing` | OWASP OAT-008 Credential Stuffing; Elastic ML job `auth_high_count_logon_fails`; Sentinel "Password spray attempt" (site-wide failure volume and ratio per hour) |
| `password_spraying` | OWASP OAT-007 Credential Cracking; Elastic rule "Potential Password Spraying" (many accounts from one prefix) |
| `brute_force` | OWASP OAT-007; Elastic "Potential Brute Force"/ Sentinel "Brute force attack"; AppSensor AE2 "multiple failed passwords" (per account and per prefix, ratio-aware) |
| `account_takeover` | Elastic ML `auth_rare_source_ip_for_a_user`, `auth_rare_hour_for_a_user`; Sentinel UEBA "first time device/location"; AppSensor AE/IE "unexpected behaviour" then sensitive actions |
| `many_accounts_one_device` | Elastic "Multiple users logged in to the same host"; OWASP OAT-019 Account Creation (device farms) |
| `many_devices` | Sentinel UEBA "uncommon number of devices for user" |
| `automation` | OWASP OAT-011 Scraping, OAT-021 Denial of Inventory-like automation; AppSensor "UT" timing and "no client-side events" |
| `scanning` | OWASP OAT-014 Vulnerability Scanning; AppSensor RE "unexpected resources" (distinct 404s) |
| `error_rate_spike` | AppSensor "HT" error-rate detection points; Elastic ML `high_count_by_status`-style job per path in 10-minute windows |

A finding names entities under fixed `details` keys (the contract): `ip_prefix`, `path`,
`device_pseudonym`, `subject_pseudonyms` (a list), beside plain-words `evidence` (today against
the baseline) and numbers. Paths lose their query string and fragment (R4). `merge_incidents`
turns the findings that share an entity into one finding per incident; `score` is the detector's
statistic over its threshold, so 1.0 is "just over the line" on every detector.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import duckdb

from transforms.security_baselines import BaselineConfig, DayWindow, Scored, robust_scores

ENTITY_KEYS = ("ip_prefix", "path", "device_pseudonym")
MAX_LISTED = 20  # pseudonyms and prefixes listed in one finding's details
MAX_SCORE = 99.0


@dataclass(frozen=True)
class DetectorConfig(BaselineConfig):
    """When a pattern becomes a finding. Thresholds on counts are floors under the robust scores."""

    z_threshold: float = 4.0  # robust z of log(1 + count) against the baseline
    min_failed_logins: int = 10  # per prefix or account, before its z is looked at
    min_failure_ratio: float = 0.5  # failures / attempts: an office with many good logins is no attack
    spray_accounts: int = 8  # distinct accounts failing from one prefix: spraying, not brute force
    site_min_failures: int = 30  # failed logins in an hour, site-wide, before the tail is looked at
    site_min_excess: float = 3.0  # ... and at least this many times what the hour's good logins predict
    fdr_q: float = 1e-4  # Benjamini–Hochberg level of the Poisson tests
    unusual_hour_distance: int = 3  # hours from any hour the subject used in its baseline
    min_device_accounts: int = 5
    min_subject_devices: int = 5
    min_automation_requests: int = 200
    min_automation_pages: int = 40
    max_beacon_share: float = 0.05  # beacons per access request of a prefix: browsers send many
    max_cadence_cv: float = 0.5  # coefficient of variation of the gaps between requests
    min_cadence_gaps: int = 50
    min_scan_paths: int = 20
    error_window_minutes: int = 10
    min_window_errors: int = 10
    min_window_error_share: float = 0.2


@dataclass(frozen=True)
class Anomaly:
    """One finding: a row of the contract table `security_anomalies` (without its day)."""

    kind: str
    subject_pseudonym: str | None
    score: float
    details: dict[str, Any]

    def entities(self) -> set[tuple[str, str]]:
        """The entities it names, for merging findings into incidents."""
        named = {(key, str(self.details[key])) for key in ENTITY_KEYS if self.details.get(key)}
        named |= {("subject", s) for s in self.details.get("subject_pseudonyms", [])}
        if self.subject_pseudonym:
            named.add(("subject", self.subject_pseudonym))
        return named


@dataclass
class DayContext:
    """What detectors share: the open store (with `day_events`), the day, the settings, and the
    entities earlier detectors already explained (the site-wide view leaves them out)."""

    con: duckdb.DuckDBPyConnection
    window: DayWindow
    cfg: DetectorConfig
    flagged_prefixes: set[str] = field(default_factory=set)

    def rows(self, query: str, params: Iterable[Any] = ()) -> list[tuple]:
        return self.con.execute(query, list(params)).fetchall()


def _score(strength: float, threshold: float) -> float:
    return round(min(strength / threshold, MAX_SCORE), 2)


def _entity_row(ctx: DayContext, kind: str, entity: str, *metrics: str) -> tuple:
    rows = ctx.rows(
        f"SELECT {', '.join(metrics)} FROM security_entity_days WHERE day = ? AND entity_kind = ? AND entity = ?",
        [ctx.window.day, kind, entity],
    )
    return tuple(0 if v is None else v for v in rows[0]) if rows else (0,) * len(metrics)


def _entity_rows(ctx: DayContext, kind: str, entities: list[str], *metrics: str) -> dict[str, tuple]:
    """Day D's `metrics` of many entities of `kind` in one query."""
    if not entities:
        return {}
    rows = ctx.rows(
        f"""SELECT entity, {", ".join(f"coalesce({m}, 0)" for m in metrics)} FROM security_entity_days
            WHERE day = ? AND entity_kind = ? AND entity IN (SELECT unnest(?))""",
        [ctx.window.day, kind, entities],
    )
    return {r[0]: tuple(r[1:]) for r in rows}


def _baseline_words(s: Scored) -> str:
    return f"typical {s.baseline:g} ({s.against}), robust z {s.z:g}"


# --- logins -----------------------------------------------------------------------------------------


def detect_login_abuse_by_prefix(ctx: DayContext) -> list[Anomaly]:
    """Failed logins from one IP prefix far above its baseline, mostly failures: brute force
    (few accounts) or password spraying (many accounts). OAT-007; Elastic "Potential Password
    Spraying"; AppSensor AE2."""
    cfg = ctx.cfg
    found = []
    scored = [s for s in robust_scores(ctx.con, ctx.window, cfg, "ip_prefix", "login_fail", cfg.min_failed_logins)
              if s.z >= cfg.z_threshold]  # fmt: skip
    known = _entity_rows(ctx, "ip_prefix", [s.entity for s in scored], "login_ok", "fail_accounts")
    for s in scored:
        ok, accounts = known.get(s.entity, (0, 0))
        ratio = s.value / (s.value + ok)
        if ratio < cfg.min_failure_ratio:
            continue
        ctx.flagged_prefixes.add(s.entity)
        targeted = [r[0] for r in ctx.rows(
            """SELECT subject FROM day_events WHERE login_fail AND prefix = ? AND subject IS NOT NULL
               GROUP BY subject ORDER BY count(*) DESC, subject LIMIT ?""", [s.entity, MAX_LISTED])]  # fmt: skip
        broken = _success_after_failure(ctx, "prefix = ?", [s.entity])
        kind = "password_spraying" if accounts >= cfg.spray_accounts else "brute_force"
        evidence = (
            f"{s.value:,} failed logins from {s.entity} today against a {_baseline_words(s)}; "
            f"failure ratio {ratio:.0%} ({ok:,} good logins); {accounts:,} accounts tried"
        )
        if broken:
            evidence += f"; {len(broken)} of them logged in after failing"
        details = {
            "detector": "login_by_prefix", "ip_prefix": s.entity, "failed_logins": s.value, "good_logins": ok,
            "failure_ratio": round(ratio, 3), "accounts_tried": accounts, "baseline": s.baseline, "z": s.z,
            "subject_pseudonyms": sorted(set(targeted) | set(broken))[:MAX_LISTED],
            "success_after_failure": len(broken), "evidence": evidence,
        }  # fmt: skip
        only = targeted[0] if accounts == 1 and targeted else None
        found.append(Anomaly(kind, only, _score(s.z, cfg.z_threshold), details))
    return found


def _success_after_failure(ctx: DayContext, where: str, params: list[Any]) -> list[str]:
    """Accounts that logged in after a failed login (under the same condition): possibly broken into."""
    rows = ctx.rows(
        f"""SELECT subject FROM day_events WHERE subject IS NOT NULL AND (login_fail OR login_ok) AND {where}
            GROUP BY subject
            HAVING max(event_time) FILTER (login_ok) > min(event_time) FILTER (login_fail)
            ORDER BY subject LIMIT {MAX_LISTED}""",
        params,
    )
    return [r[0] for r in rows]


def detect_brute_force_by_account(ctx: DayContext) -> list[Anomaly]:
    """Failed logins on one account far above its baseline, from one or many prefixes. OAT-007;
    Sentinel "Brute force attack against user credentials"; AppSensor AE2."""
    cfg = ctx.cfg
    found = []
    scored = [s for s in robust_scores(ctx.con, ctx.window, cfg, "subject", "login_fail", cfg.min_failed_logins)
              if s.z >= cfg.z_threshold]  # fmt: skip
    known = _entity_rows(ctx, "subject", [s.entity for s in scored], "login_ok")
    for s in scored:
        (ok,) = known.get(s.entity, (0,))
        ratio = s.value / (s.value + ok)
        if ratio < cfg.min_failure_ratio:
            continue
        prefixes = [r[0] for r in ctx.rows(
            """SELECT prefix FROM day_events WHERE login_fail AND subject = ? AND prefix IS NOT NULL
               GROUP BY prefix ORDER BY count(*) DESC, prefix""", [s.entity])]  # fmt: skip
        broken = bool(_success_after_failure(ctx, "subject = ?", [s.entity]))
        evidence = (
            f"{s.value:,} failed logins on one account today against a {_baseline_words(s)}; "
            f"failure ratio {ratio:.0%}; from {len(prefixes)} IP prefix(es)"
            + ("; then a successful login" if broken else "")
        )
        details: dict[str, Any] = {
            "detector": "login_by_account", "failed_logins": s.value, "good_logins": ok,
            "failure_ratio": round(ratio, 3), "ip_prefixes": prefixes[:MAX_LISTED], "baseline": s.baseline,
            "z": s.z, "success_after_failure": broken, "evidence": evidence,
        }  # fmt: skip
        if len(prefixes) == 1:
            details["ip_prefix"] = prefixes[0]
        found.append(Anomaly("brute_force", s.entity, _score(s.z, cfg.z_threshold), details))
    return found


def detect_credential_stuffing(ctx: DayContext) -> list[Anomaly]:
    """Site-wide: hours whose failed logins stand far above what the hour's good logins predict at
    the baseline's failure ratio (Poisson tail, Benjamini–Hochberg over the day's hours), once the
    prefixes other detectors explained are left out. OAT-008; Elastic ML
    `auth_high_count_logon_fails`; Sentinel "Password spray attempt"."""
    from scipy.stats import false_discovery_control, poisson

    cfg, w = ctx.cfg, ctx.window
    [(fails_base, ok_base)] = ctx.rows(
        """SELECT sum(login_fail), sum(login_ok) FROM security_entity_days
           WHERE entity_kind = 'site' AND day >= ? AND day < ?""",
        [w.first_baseline_day, w.day],
    )
    if not ok_base:
        return []  # no history of logins: no ratio to hold the day to
    base_ratio = (fails_base or 0) / ok_base  # failures per good login
    skip = sorted(ctx.flagged_prefixes)
    hours = ctx.rows(
        f"""SELECT hour, count(*) FILTER (login_fail), count(*) FILTER (login_ok) FROM day_events
            WHERE login_try {"AND (prefix IS NULL OR prefix NOT IN (SELECT unnest(?)))" if skip else ""}
            GROUP BY hour ORDER BY hour""",
        [skip] if skip else [],
    )
    if not hours:
        return []
    expected = [max(1.0, base_ratio * ok) for _, _, ok in hours]
    pvalues = [float(poisson.sf(f - 1, lam)) for (_, f, _), lam in zip(hours, expected, strict=True)]
    adjusted = false_discovery_control(pvalues) if len(pvalues) > 1 else pvalues
    flagged = [
        (h, f, ok, lam, p)
        for (h, f, ok), lam, p in zip(hours, expected, adjusted, strict=True)
        if p <= cfg.fdr_q and f >= cfg.site_min_failures and f >= cfg.site_min_excess * lam
    ]
    if not flagged:
        return []
    flagged_hours = [h for h, *_ in flagged]
    fails = sum(f for _, f, *_ in flagged)
    ok = sum(o for _, _, o, *_ in flagged)
    lam = sum(x for *_, x, _ in flagged)
    p_min = max(min(p for *_, p in flagged), 1e-300)
    where = f"hour IN ({', '.join(str(h) for h in flagged_hours)})"
    [(accounts, prefixes)] = ctx.rows(
        f"SELECT count(DISTINCT subject), count(DISTINCT prefix) FROM day_events WHERE login_fail AND {where}"
    )
    top = [r[0] for r in ctx.rows(
        f"""SELECT prefix FROM day_events WHERE login_fail AND {where} AND prefix IS NOT NULL
            GROUP BY prefix ORDER BY count(*) DESC, prefix LIMIT {MAX_LISTED}""")]  # fmt: skip
    broken = _success_after_failure(ctx, where, [])
    ratio = fails / max(fails + ok, 1)
    evidence = (
        f"{fails:,} failed logins in local hour(s) {', '.join(f'{h:02d}' for h in flagged_hours)} where "
        f"{lam:,.0f} were expected from {ok:,} good logins at the baseline's {base_ratio:.2f} failures per good "
        f"login; failure ratio {ratio:.0%}; {accounts:,} accounts tried from {prefixes:,} IP prefixes"
        + (f"; {len(broken)} account(s) logged in after failing" if broken else "")
    )
    details = {
        "detector": "site_logins", "hours": flagged_hours, "failed_logins": fails, "expected": round(lam, 1),
        "good_logins": ok, "failure_ratio": round(ratio, 3), "baseline_failures_per_good_login": round(base_ratio, 3),
        "accounts_tried": accounts, "prefixes": prefixes, "top_ip_prefixes": top, "subject_pseudonyms": broken,
        "p_adjusted": float(f"{p_min:.3g}"), "evidence": evidence,
    }  # fmt: skip
    kind = "credential_stuffing" if prefixes >= 10 else "password_spraying"
    score = _score(-math.log10(p_min), -math.log10(cfg.fdr_q))
    return [Anomaly(kind, None, score, details)]


# --- accounts and devices ---------------------------------------------------------------------------


def _circular_distance(hour: int, hours: Iterable[int]) -> int:
    return min((min(abs(hour - h), 24 - abs(hour - h)) for h in hours), default=12)


def detect_account_takeover(ctx: DayContext) -> list[Anomaly]:
    """An account with a history seen today from a device (or client) AND an IP prefix it never
    used in its baseline, at an hour far from its usual ones, then reaching sensitive paths (profile,
    bank card, phone, password, claims, policy transfers: `sensitive_paths`). Elastic ML
    `auth_rare_source_ip_for_a_user` and `auth_rare_hour_for_a_user`; Sentinel UEBA first-time
    device and location; AppSensor "unexpected behaviour" followed by sensitive actions."""
    cfg, w = ctx.cfg, ctx.window
    # one query for every candidate: the new links, the usual hours, the day's requests from new prefixes.
    # Only accounts with a sensitive request today can qualify, so only their links are read.
    candidates = ctx.rows(
        """WITH sensitive AS (SELECT DISTINCT subject FROM day_events WHERE sensitive AND subject IS NOT NULL),
                today AS (SELECT subject, link_kind, value FROM security_subject_links
                          WHERE day = ? AND subject IN (SELECT subject FROM sensitive)),
                hist AS (SELECT subject, link_kind, value, day FROM security_subject_links
                         WHERE day >= ? AND day < ? AND subject IN (SELECT subject FROM today)),
                history AS (SELECT subject, count(DISTINCT day) AS days FROM hist GROUP BY subject),
                new AS (SELECT t.* FROM today t ANTI JOIN hist h
                        ON t.subject = h.subject AND t.link_kind = h.link_kind AND t.value = h.value),
                cand AS (
                    SELECT n.subject,
                           list(DISTINCT n.value ORDER BY n.value) FILTER (n.link_kind = 'ip_prefix') AS prefixes,
                           count(DISTINCT n.value) FILTER (n.link_kind IN ('device', 'agent')) AS clients,
                           list(DISTINCT n.value ORDER BY n.value) FILTER (n.link_kind = 'device') AS devices
                    FROM new n JOIN history USING (subject) WHERE history.days >= ?
                    GROUP BY n.subject
                    HAVING count(*) FILTER (n.link_kind = 'ip_prefix') > 0
                       AND count(*) FILTER (n.link_kind IN ('device', 'agent')) > 0),
                cand_prefix AS (SELECT subject, unnest(prefixes) AS prefix FROM cand),
                acts AS (
                    SELECT e.subject, min(e.hour) AS first_hour, count(*) FILTER (e.sensitive) AS sensitive,
                           list(DISTINCT e.path ORDER BY e.path) FILTER (e.sensitive) AS paths,
                           arg_min(e.prefix, (e.event_time, e.prefix)) FILTER (e.sensitive) AS prefix
                    FROM day_events e JOIN cand_prefix c ON e.subject = c.subject AND e.prefix = c.prefix
                    GROUP BY e.subject HAVING count(*) FILTER (e.sensitive) > 0),
                usual AS (
                    SELECT subject, list(DISTINCT value::INTEGER ORDER BY value::INTEGER) AS hours FROM hist
                    WHERE link_kind = 'hour' AND subject IN (SELECT subject FROM acts) GROUP BY subject)
           SELECT c.subject, c.prefixes, c.clients, c.devices, a.first_hour, a.sensitive, a.paths, a.prefix,
                  coalesce(u.hours, [])
           FROM cand c JOIN acts a USING (subject) LEFT JOIN usual u USING (subject) ORDER BY c.subject""",
        [w.day, w.first_baseline_day, w.day, cfg.min_history_days],
    )
    found = []
    for subject, new_prefixes, new_clients, new_devices, first_hour, sensitive, paths, where, usual in candidates:
        distance = _circular_distance(first_hour, usual)
        if distance < cfg.unusual_hour_distance:
            continue
        strength = distance + min(sensitive, 10)
        evidence = (
            f"seen from a new IP prefix ({where}) and a new device or client at {first_hour:02d}h, "
            f"{distance} h from any hour it used in its baseline (usual: {', '.join(f'{h:02d}' for h in usual)}), "
            f"then {sensitive} sensitive request(s): {', '.join(paths or [])}"
        )
        details: dict[str, Any] = {
            "detector": "account_takeover", "ip_prefix": where, "new_ip_prefixes": new_prefixes,
            "hour": first_hour, "usual_hours": usual, "hour_distance": distance, "sensitive_requests": sensitive,
            "sensitive_paths": paths or [], "new_clients": new_clients, "evidence": evidence,
        }  # fmt: skip
        if new_devices:
            details["device_pseudonym"] = new_devices[0]
        found.append(Anomaly("account_takeover", subject, _score(strength, cfg.unusual_hour_distance + 1), details))
    return found


def detect_many_accounts_on_device(ctx: DayContext) -> list[Anomaly]:
    """One device used by many accounts in a day, against the device's (or the population's)
    baseline. Elastic "multiple users logged in to the same host"; OAT-019 (device farms)."""
    cfg = ctx.cfg
    found = []
    for s in robust_scores(ctx.con, ctx.window, cfg, "device", "subjects", cfg.min_device_accounts):
        if s.z < cfg.z_threshold:
            continue
        accounts = [r[0] for r in ctx.rows(
            f"""SELECT DISTINCT subject FROM day_events WHERE device = ? AND subject IS NOT NULL
                ORDER BY subject LIMIT {MAX_LISTED}""", [s.entity])]  # fmt: skip
        details = {
            "detector": "device_accounts", "device_pseudonym": s.entity, "accounts": s.value,
            "baseline": s.baseline, "z": s.z, "subject_pseudonyms": accounts,
            "evidence": f"{s.value} accounts on one device today against a {_baseline_words(s)}",
        }  # fmt: skip
        found.append(Anomaly("many_accounts_one_device", None, _score(s.z, cfg.z_threshold), details))
    return found


def detect_many_devices(ctx: DayContext) -> list[Anomaly]:
    """One account on many devices in a day, against its (or the population's) baseline.
    Sentinel UEBA "uncommon number of devices for a user"."""
    cfg = ctx.cfg
    found = []
    for s in robust_scores(ctx.con, ctx.window, cfg, "subject", "devices", cfg.min_subject_devices):
        if s.z < cfg.z_threshold:
            continue
        (prefixes,) = _entity_row(ctx, "subject", s.entity, "prefixes")
        details = {
            "detector": "account_devices", "devices": s.value, "ip_prefixes": prefixes, "baseline": s.baseline,
            "z": s.z,
            "evidence": f"one account on {s.value} devices from {prefixes} IP prefixes today against a "
            f"{_baseline_words(s)}",
        }  # fmt: skip
        found.append(Anomaly("many_devices", s.entity, _score(s.z, cfg.z_threshold), details))
    return found


# --- automation, scanning, errors -------------------------------------------------------------------

_AUTOMATION_COLUMN = {"subject": "subject", "ip_prefix": "prefix", "device": "device"}


def detect_automation(ctx: DayContext) -> list[Anomaly]:
    """Scraping and bots: a subject, prefix or device whose requests or page coverage no human
    reaches (against its baseline), AND a machine's signature: requests at a regular cadence (low
    variance of the gaps) or, for a prefix, access logs without the beacons a browser sends.
    OWASP OAT-011 Scraping; AppSensor timing ("UT") and missing client-side events."""
    cfg = ctx.cfg
    found = []
    for kind, column in _AUTOMATION_COLUMN.items():
        volume_metric = "beacons" if kind == "device" else "access"
        volume = {s.entity: s for s in robust_scores(ctx.con, ctx.window, cfg, kind, volume_metric,
                                                     cfg.min_automation_requests)}  # fmt: skip
        pages = {s.entity: s for s in robust_scores(ctx.con, ctx.window, cfg, kind, "pages", cfg.min_automation_pages)}
        hot = sorted(e for e in set(volume) | set(pages) if max(
            volume[e].z if e in volume else 0, pages[e].z if e in pages else 0) >= cfg.z_threshold)  # fmt: skip
        source = "beacon" if kind == "device" else "access"
        measured = {
            r[0]: r[1:]
            for r in ctx.rows(
                f"""WITH mine AS (SELECT {column} AS entity, source, path, event_time FROM day_events
                                  WHERE {column} IN (SELECT unnest(?))),
                        gaps AS (SELECT entity, epoch(event_time) - lag(epoch(event_time))
                                     OVER (PARTITION BY entity ORDER BY event_time) AS gap
                                 FROM mine WHERE source = ?),
                        cadence AS (SELECT entity, count(gap) AS gaps, stddev_pop(gap) / nullif(avg(gap), 0) AS cv
                                    FROM gaps GROUP BY entity)
                    SELECT entity, count(*) FILTER (source = ?), count(*) FILTER (source = 'beacon'),
                           count(DISTINCT path) FILTER (source = ?), any_value(c.gaps), any_value(c.cv)
                    FROM mine LEFT JOIN cadence c USING (entity) GROUP BY entity""",
                [hot, source, source, source],
            )
        } if hot else {}  # fmt: skip
        for entity in hot:
            requests, beacons, distinct, gaps, cv = measured[entity]
            gaps = gaps or 0
            regular = gaps >= cfg.min_cadence_gaps and cv is not None and cv <= cfg.max_cadence_cv
            silent = kind == "ip_prefix" and beacons <= cfg.max_beacon_share * requests
            if not (regular or silent):
                continue
            best = max((s for s in (volume.get(entity), pages.get(entity)) if s), key=lambda s: s.z)
            signs = []
            if regular:
                signs.append(f"requests at a regular cadence (gap variation {cv:.2f})")
            if silent:
                signs.append(f"{beacons} beacons for {requests:,} requests (a browser sends several per page)")
            v, p = volume.get(entity), pages.get(entity)
            what = [f"{requests:,} requests" + (f" against a {_baseline_words(v)}" if v else "")]
            what.append(f"{distinct:,} distinct paths" + (f" against a {_baseline_words(p)}" if p else ""))
            details: dict[str, Any] = {
                "detector": "automation", "by": kind, "requests": requests, "distinct_paths": distinct,
                "beacons": beacons, "cadence_cv": None if cv is None else round(cv, 3), "z": best.z,
                "evidence": f"{'; '.join(what)} today; " + " and ".join(signs),
            }  # fmt: skip
            subject = entity if kind == "subject" else None
            if kind == "ip_prefix":
                details["ip_prefix"] = entity
            elif kind == "device":
                details["device_pseudonym"] = entity
            else:
                prefixes = [r[0] for r in ctx.rows(
                    "SELECT DISTINCT prefix FROM day_events WHERE subject = ? AND prefix IS NOT NULL ORDER BY 1",
                    [entity])]  # fmt: skip
                if len(prefixes) == 1:
                    details["ip_prefix"] = prefixes[0]
            found.append(Anomaly("automation", subject, _score(best.z, cfg.z_threshold), details))
    return found


def detect_scanning(ctx: DayContext) -> list[Anomaly]:
    """One IP prefix asking for many distinct missing paths (404), against its (or the
    population's) baseline. OWASP OAT-014 Vulnerability Scanning; AppSensor RE."""
    cfg = ctx.cfg
    found = []
    for s in robust_scores(ctx.con, ctx.window, cfg, "ip_prefix", "not_found", cfg.min_scan_paths):
        if s.z < cfg.z_threshold:
            continue
        [(subjects,)] = ctx.rows(
            "SELECT count(DISTINCT subject) FROM day_events WHERE prefix = ? AND status = '404'", [s.entity]
        )
        details = {
            "detector": "scanning", "ip_prefix": s.entity, "distinct_404_paths": s.value, "baseline": s.baseline,
            "z": s.z, "subjects": subjects,
            "evidence": f"{s.value} distinct missing paths (404) asked for from {s.entity} today against a "
            f"{_baseline_words(s)}",
        }  # fmt: skip
        found.append(Anomaly("scanning", None, _score(s.z, cfg.z_threshold), details))
    return found


def detect_error_spikes(ctx: DayContext) -> list[Anomaly]:
    """Server errors (5xx) on one path in short windows (default 10 minutes) far above the path's
    baseline error rate: a Poisson tail per window, Benjamini–Hochberg over every window tested,
    so a 20-minute outage stands out and is not diluted by the day. AppSensor "HT"."""
    from scipy.stats import false_discovery_control, poisson

    cfg, w = ctx.cfg, ctx.window
    minutes = cfg.error_window_minutes
    windows = ctx.rows(
        f"""SELECT path, (hour * 60 + minute(timezone(?, event_time))) // {minutes} AS slot,
                   count(*), count(*) FILTER (status LIKE '5%')
            FROM day_events WHERE source = 'access' GROUP BY path, slot
            HAVING count(*) FILTER (status LIKE '5%') > 0 ORDER BY path, slot""",
        [w.timezone],
    )
    if not windows:
        return []
    base = dict(
        (path, (errors, requests))
        for path, errors, requests in ctx.rows(
            """SELECT entity, sum(errors_5xx), sum(access) FROM security_entity_days
               WHERE entity_kind = 'path' AND day >= ? AND day < ? GROUP BY entity""",
            [w.first_baseline_day, w.day],
        )
    )
    site_errors = sum(e for e, _ in base.values())
    site_requests = sum(r for _, r in base.values())
    site_rate = (site_errors + 1) / (site_requests + 100)
    if not base:  # no history: the day's own rate per path, robust enough against one short outage
        site_rate = 0.02

    def rate(path: str) -> float:
        errors, requests = base.get(path, (0, 0))
        return (errors + 100 * site_rate) / (requests + 100)  # shrunk towards the site's rate

    lams = [max(requests * rate(path), 0.05) for path, _, requests, _ in windows]
    pvalues = [float(p) for p in poisson.sf([e - 1 for *_, e in windows], lams)]
    adjusted = false_discovery_control(pvalues) if len(pvalues) > 1 else pvalues
    hits: dict[str, list[tuple[int, int, int, float, float]]] = defaultdict(list)
    for (path, slot, requests, errors), lam, p in zip(windows, lams, adjusted, strict=True):
        if p <= cfg.fdr_q and errors >= cfg.min_window_errors and errors >= cfg.min_window_error_share * requests:
            hits[path].append((slot, requests, errors, lam, p))
    found = []
    for path, slots in sorted(hits.items()):
        errors = sum(e for _, _, e, _, _ in slots)
        requests = sum(r for _, r, _, _, _ in slots)
        p_min = max(min(p for *_, p in slots), 1e-300)
        start, end = slots[0][0] * minutes, (slots[-1][0] + 1) * minutes
        when = f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
        details = {
            "detector": "error_windows", "path": path, "errors_5xx": errors, "requests": requests,
            "share": round(errors / requests, 3), "baseline_share": round(rate(path), 4), "windows": len(slots),
            "from_to": when, "p_adjusted": float(f"{p_min:.3g}"),
            "evidence": f"{errors} server errors in {requests} requests ({errors / requests:.0%}) on {path} between "
            f"{when} local time, against a baseline error rate of {rate(path):.1%} on this path",
        }  # fmt: skip
        found.append(Anomaly("error_rate_spike", None, _score(-math.log10(p_min), -math.log10(cfg.fdr_q)), details))
    return found


Detector = Callable[[DayContext], list[Anomaly]]

# Order matters once: the per-prefix login detector runs before the site-wide one, which leaves
# out the prefixes it already explained.
DETECTORS: dict[str, Detector] = {
    "login_by_prefix": detect_login_abuse_by_prefix,
    "login_by_account": detect_brute_force_by_account,
    "site_logins": detect_credential_stuffing,
    "account_takeover": detect_account_takeover,
    "device_accounts": detect_many_accounts_on_device,
    "account_devices": detect_many_devices,
    "automation": detect_automation,
    "scanning": detect_scanning,
    "error_windows": detect_error_spikes,
}


def worst_first(anomalies: Iterable[Anomaly]) -> list[Anomaly]:
    """Findings by descending score, then kind, pseudonym and details: a stable order."""
    import json

    return sorted(
        anomalies,
        key=lambda a: (-a.score, a.kind, a.subject_pseudonym or "", json.dumps(a.details, sort_keys=True)),
    )


def merge_incidents(findings: Iterable[Anomaly]) -> list[Anomaly]:
    """One finding per incident: findings that name a common entity (subject, IP prefix, device,
    path, or a listed subject) join; the strongest gives the kind and score, the others are kept
    under `related`, and the named subjects are united in `subject_pseudonyms`."""
    ordered = worst_first(findings)
    parent = list(range(len(ordered)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[tuple[str, str], int] = {}
    for i, finding in enumerate(ordered):
        for entity in sorted(finding.entities()):
            if entity in owner:
                a, b = root(owner[entity]), root(i)
                parent[max(a, b)] = min(a, b)  # the earlier (stronger) finding leads
            else:
                owner[entity] = i
    groups: dict[int, list[Anomaly]] = defaultdict(list)
    for i, finding in enumerate(ordered):
        groups[root(i)].append(finding)
    merged = []
    for lead, *others in groups.values():
        if not others:
            merged.append(lead)
            continue
        details = dict(lead.details)
        subjects = set(details.get("subject_pseudonyms", []))
        for other in others:
            subjects |= set(other.details.get("subject_pseudonyms", []))
            if other.subject_pseudonym:
                subjects.add(other.subject_pseudonym)
            for key in ENTITY_KEYS:
                details.setdefault(key, other.details.get(key))
        if lead.subject_pseudonym:
            subjects.add(lead.subject_pseudonym)
        details = {k: v for k, v in details.items() if v is not None}
        details["subject_pseudonyms"] = sorted(subjects)[:MAX_LISTED]
        # each merged finding keeps the entities it named itself (the lists above are cut short)
        details["related"] = [
            {"kind": o.kind, "score": o.score, **{k: o.details[k] for k in ENTITY_KEYS if o.details.get(k)},
             "subject_pseudonym": o.subject_pseudonym, "evidence": o.details.get("evidence", "")}
            for o in others
        ]  # fmt: skip
        details["evidence"] = "; ".join(
            [str(lead.details.get("evidence", ""))]
            + [f"also {o.kind}: {o.details.get('evidence', '')}" for o in others]
        )
        merged.append(replace(lead, details=details))
    return worst_first(merged)


def detect_day(ctx: DayContext, only: Iterable[str] | None = None) -> tuple[list[Anomaly], dict[str, int]]:
    """Every detector (or those named) over the loaded day; the merged incidents, worst first, and
    the raw findings per detector."""
    raw: list[Anomaly] = []
    per_detector: dict[str, int] = {}
    for name, detector in DETECTORS.items():
        if only is not None and name not in only:
            continue
        found = detector(ctx)
        per_detector[name] = len(found)
        raw.extend(found)
    return merge_incidents(raw), per_detector


__all__ = ["DETECTORS", "Anomaly", "DayContext", "DetectorConfig", "detect_day", "merge_incidents", "worst_first"]
