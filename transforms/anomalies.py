"""Security-anomaly detectors over one day of pseudonymized security events (R11).

R11 asks that security risks be assessed and incidents found promptly; these detectors turn a day
of `security_events` rows into findings for the nightly report. They are pure functions over a list
of `SecurityEvent`s, so they are tested without Beam; `pipelines/security_report.py` only wires them.

Every finding names at most a subject *pseudonym*; its `details` hold only IP prefixes, counts and
paths without their query string (R4: the report must not re-identify anyone).

Scores are comparable across kinds: the detector's statistic divided by its threshold, so a
score of 1.0 is "just over the line" and bigger is worse.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# Column order of `security_events` as read by the report pipeline.
EVENT_COLUMNS = (
    "source",
    "subject_pseudonym",
    "device_pseudonym",
    "ip_prefix",
    "page_or_path",
    "event_or_status",
    "method",
)


class SecurityEvent(NamedTuple):
    """The columns of one `security_events` row that the detectors look at."""

    source: str  # 'beacon' | 'access'
    subject_pseudonym: str | None
    device_pseudonym: str | None
    ip_prefix: str | None
    page_or_path: str | None
    event_or_status: str | None  # beacon event name, or HTTP status as text for access logs
    method: str | None = None


@dataclass(frozen=True)
class Anomaly:
    """One finding: a row of the contract table `security_anomalies` (without its day)."""

    kind: str
    subject_pseudonym: str | None
    score: float
    details: dict[str, Any]


@dataclass(frozen=True)
class Thresholds:
    """When a pattern becomes an anomaly. Defaults suit a day of a mid-sized service."""

    # brute force: failed authentications (401/403) on login-like paths, per subject or IP prefix
    failed_logins: int = 10
    login_path_markers: tuple[str, ...] = ("login", "signin", "sign-in", "auth", "token", "password", "otp")
    # one subject seen from many networks or many devices in one day (account sharing or takeover)
    ip_prefixes_per_subject: int = 5
    devices_per_subject: int = 4
    # request-rate spike: z-score of a subject's event count against the day's subjects
    rate_z: float = 4.0
    rate_min_events: int = 50  # a z-score among tiny counts means nothing
    rate_min_subjects: int = 10
    # error-rate spike: share of 5xx answers on one path
    error_share: float = 0.2
    error_min_errors: int = 10
    # scanning: many distinct missing paths asked for from one IP prefix
    scan_distinct_404_paths: int = 20
    failed_auth_statuses: frozenset[str] = field(default_factory=lambda: frozenset({"401", "403"}))


def path_only(path: str | None) -> str:
    """The path without query string or fragment: those may carry identifiers (R4)."""
    return (path or "").split("?", 1)[0].split("#", 1)[0]


def _is_login_path(path: str | None, thresholds: Thresholds) -> bool:
    lowered = path_only(path).lower()
    return any(marker in lowered for marker in thresholds.login_path_markers)


def _access(events: Iterable[SecurityEvent]) -> list[SecurityEvent]:
    return [e for e in events if e.source == "access"]


def detect_brute_force(events: list[SecurityEvent], thresholds: Thresholds = Thresholds()) -> list[Anomaly]:
    """Many failed authentications (401/403) on login-like paths from one subject or one IP prefix."""
    failures = [
        e
        for e in _access(events)
        if e.event_or_status in thresholds.failed_auth_statuses and _is_login_path(e.page_or_path, thresholds)
    ]
    found = []
    by_subject = Counter(e.subject_pseudonym for e in failures if e.subject_pseudonym)
    for subject, count in by_subject.items():
        if count >= thresholds.failed_logins:
            prefixes = {e.ip_prefix for e in failures if e.subject_pseudonym == subject and e.ip_prefix}
            details = {"by": "subject", "failed_logins": count, "ip_prefixes": len(prefixes)}
            found.append(Anomaly("brute_force", subject, count / thresholds.failed_logins, details))
    by_prefix = Counter(e.ip_prefix for e in failures if e.ip_prefix)
    for prefix, count in by_prefix.items():
        if count >= thresholds.failed_logins:
            subjects = {e.subject_pseudonym for e in failures if e.ip_prefix == prefix and e.subject_pseudonym}
            details = {
                "by": "ip_prefix",
                "ip_prefix": prefix,
                "failed_logins": count,
                "subjects": len(subjects),
            }
            only = next(iter(subjects)) if len(subjects) == 1 else None
            found.append(Anomaly("brute_force", only, count / thresholds.failed_logins, details))
    return found


def _distinct_per_subject(events: list[SecurityEvent], column: str) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for e in events:
        value = getattr(e, column)
        if e.subject_pseudonym and value:
            seen[e.subject_pseudonym].add(value)
    return seen


def detect_many_ip_prefixes(events: list[SecurityEvent], thresholds: Thresholds = Thresholds()) -> list[Anomaly]:
    """One subject seen from many IP prefixes in a day: a shared or taken-over account."""
    limit = thresholds.ip_prefixes_per_subject
    return [
        Anomaly("many_ip_prefixes", subject, len(prefixes) / limit, {"ip_prefixes": len(prefixes)})
        for subject, prefixes in _distinct_per_subject(events, "ip_prefix").items()
        if len(prefixes) >= limit
    ]


def detect_many_devices(events: list[SecurityEvent], thresholds: Thresholds = Thresholds()) -> list[Anomaly]:
    """One subject seen on many devices in a day."""
    limit = thresholds.devices_per_subject
    return [
        Anomaly("many_devices", subject, len(devices) / limit, {"devices": len(devices)})
        for subject, devices in _distinct_per_subject(events, "device_pseudonym").items()
        if len(devices) >= limit
    ]


def detect_rate_spikes(events: list[SecurityEvent], thresholds: Thresholds = Thresholds()) -> list[Anomaly]:
    """Subjects whose event count stands far above the day's distribution (z-score over subjects)."""
    counts = Counter(e.subject_pseudonym for e in events if e.subject_pseudonym)
    if len(counts) < thresholds.rate_min_subjects:
        return []
    mean = statistics.fmean(counts.values())
    stdev = statistics.pstdev(counts.values())
    if stdev == 0:
        return []
    found = []
    for subject, count in counts.items():
        z = (count - mean) / stdev
        if z >= thresholds.rate_z and count >= thresholds.rate_min_events:
            details = {"events": count, "day_mean": round(mean, 2), "z": round(z, 2)}
            found.append(Anomaly("request_rate_spike", subject, z / thresholds.rate_z, details))
    return found


def detect_error_spikes(events: list[SecurityEvent], thresholds: Thresholds = Thresholds()) -> list[Anomaly]:
    """Paths where a large share of requests failed with a server error (5xx)."""
    requests: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for e in _access(events):
        path = path_only(e.page_or_path)
        requests[path] += 1
        if (e.event_or_status or "").startswith("5"):
            errors[path] += 1
    found = []
    for path, error_count in errors.items():
        share = error_count / requests[path]
        if error_count >= thresholds.error_min_errors and share >= thresholds.error_share:
            details = {
                "path": path,
                "errors_5xx": error_count,
                "requests": requests[path],
                "share": round(share, 3),
            }
            found.append(Anomaly("error_rate_spike", None, share / thresholds.error_share, details))
    return found


def detect_scanning(events: list[SecurityEvent], thresholds: Thresholds = Thresholds()) -> list[Anomaly]:
    """One IP prefix asking for many distinct missing (404) paths: a vulnerability scanner."""
    missing: dict[str, set[str]] = defaultdict(set)
    subjects: dict[str, set[str]] = defaultdict(set)
    for e in _access(events):
        if e.event_or_status == "404" and e.ip_prefix:
            missing[e.ip_prefix].add(path_only(e.page_or_path))
            if e.subject_pseudonym:
                subjects[e.ip_prefix].add(e.subject_pseudonym)
    limit = thresholds.scan_distinct_404_paths
    found = []
    for prefix, paths in missing.items():
        if len(paths) >= limit:
            # a scan from a single signed-in subject is attributed to it; otherwise to the prefix only
            subject = next(iter(subjects[prefix])) if len(subjects[prefix]) == 1 else None
            details = {
                "ip_prefix": prefix,
                "distinct_404_paths": len(paths),
                "subjects": len(subjects[prefix]),
            }
            found.append(Anomaly("scanning", subject, len(paths) / limit, details))
    return found


Detector = Callable[[list[SecurityEvent], Thresholds], list[Anomaly]]

DETECTORS: dict[str, Detector] = {
    "BruteForce": detect_brute_force,
    "ManyIpPrefixes": detect_many_ip_prefixes,
    "ManyDevices": detect_many_devices,
    "RateSpikes": detect_rate_spikes,
    "ErrorSpikes": detect_error_spikes,
    "Scanning": detect_scanning,
}


def worst_first(anomalies: Iterable[Anomaly]) -> list[Anomaly]:
    """Findings by descending score, then kind and pseudonym: a stable order for the table and report."""
    return sorted(anomalies, key=lambda a: (-a.score, a.kind, a.subject_pseudonym or ""))


def detect_all(events: list[SecurityEvent], thresholds: Thresholds = Thresholds()) -> list[Anomaly]:
    """Every detector over one day's events, worst first."""
    return worst_first(a for detector in DETECTORS.values() for a in detector(events, thresholds))
