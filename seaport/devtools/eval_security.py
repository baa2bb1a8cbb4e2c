"""`seaport eval security`: the security detectors' precision and recall on labelled scenarios (R11).

It runs the real path: `simulate --attacks` traffic (quiet days, then a day of labelled attacks
and legitimate look-alikes) -> the security events exactly as ingest writes them (the same
`protect_batch` of `pipelines/stage.py`, under a throw-away key, into a fresh warehouse) -> the
nightly report of every day, in order (so the baselines build up as they would night after night)
-> the findings compared with the labels. The labels never enter the store: they are turned into
pseudonyms and prefixes with the same key, only to compare.

    seaport eval security --users 700 --days 9 --seeds 1,2,3

A finding is true when it names an entity of an attack scenario (its IP prefix, an account or
the IP-derived subject, a device, a path); it is false otherwise, look-alikes included. Printed:
recall per scenario kind, precision on the attack day, false findings per quiet day, and which
look-alikes were flagged. With `--warehouse DIR --labels FILE` it evaluates a warehouse that
`seaport ingest` filled from `simulate --attacks --out FILE` traffic instead (the key from
`SEAPORT_PSEUDONYM_KEY_FILE`, or `--dev` for ingest's development key).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seaport.errors import SeaportError

TARGETS = {"recall": 0.9, "precision": 0.8, "false_per_quiet_day": 1.0}
LOAD_CHUNK = 50_000


@dataclass
class Evaluation:
    """One run's figures."""

    seed: int | None
    found: dict[str, int] = field(default_factory=dict)  # attack kind -> scenarios found
    total: dict[str, int] = field(default_factory=dict)  # attack kind -> scenarios
    attack_day_findings: int = 0
    true_findings: int = 0
    quiet_day_findings: list[int] = field(default_factory=list)
    lookalikes_flagged: Counter[str] = field(default_factory=Counter)
    false_kinds: Counter[str] = field(default_factory=Counter)

    @property
    def precision(self) -> float:
        return self.true_findings / self.attack_day_findings if self.attack_day_findings else 1.0

    @property
    def recall(self) -> float:
        return sum(self.found.values()) / max(sum(self.total.values()), 1)

    def recall_of(self, kind: str) -> float:
        return self.found.get(kind, 0) / self.total[kind] if self.total.get(kind) else 1.0

    @property
    def false_per_quiet_day(self) -> float:
        return sum(self.quiet_day_findings) / max(len(self.quiet_day_findings), 1)

    def meets_targets(self) -> bool:
        return (
            all(self.recall_of(k) >= TARGETS["recall"] for k in self.total)
            and self.precision >= TARGETS["precision"]
            and self.false_per_quiet_day <= TARGETS["false_per_quiet_day"]
        )


def load_security_events(traffic: Any, warehouse: Path, pseudonymizer: Any) -> int:
    """The traffic's security rows as `seaport ingest` stores them: validated and protected by
    ingest's own `protect_batch` under the field policy, deduplicated by the commit's key, into a fresh
    warehouse's security_events. (Minors' and erased subjects' rows would be removed by ingest;
    attack traffic has neither.)"""

    from pipelines.stage import protect_batch
    from schemas.tables import POSITION, SECURITY_EVENTS
    from seaport.kafka.clients import Record
    from sinks.warehouse import Warehouse
    from transforms.policy import FieldPolicy

    policy = FieldPolicy.load()
    schema = SECURITY_EVENTS.arrow_schema(POSITION)
    store = Warehouse(warehouse)
    try:
        for partition, (topic, lines) in enumerate(
            (("beacons.raw", traffic.beacons), ("access_logs.raw", traffic.access_logs))
        ):
            for at in range(0, len(lines), LOAD_CHUNK):
                records = [Record(topic, partition, at + i, None, line, 0) for i, line in
                           enumerate(lines[at : at + LOAD_CHUNK])]  # fmt: skip
                staged = protect_batch(topic, records, policy, pseudonymizer).tables.get("security")
                store.con.register("staged", staged if staged is not None else schema.empty_table())
                store.insert_new(SECURITY_EVENTS, "sec", "(SELECT * FROM staged)")  # the commit's own key
                store.con.unregister("staged")
        stored = int(store.con.execute("SELECT count(*) FROM sec.security_events").fetchall()[0][0])
    finally:
        store.close()
    return stored


def scenario_entities(scenario: Any, pseudonymizer: Any) -> set[tuple[str, str]]:
    """A scenario's identifiers as the store names them: prefixes, pseudonyms, paths."""
    from transforms.generalize import ip_prefix
    from transforms.policy import FieldPolicy
    from transforms.pseudonyms import Purpose

    policy = FieldPolicy.load()

    def pseudonym(kind: str, value: str) -> str:
        return policy.pseudonym(pseudonymizer, Purpose.SECURITY, kind, value)

    named: set[tuple[str, str]] = set()
    for ip in scenario.ips:
        named.add(("ip_prefix", str(ip_prefix(ip))))
        named.add(("subject", pseudonym("ip", ip)))  # the subject of its unauthenticated requests
    named |= {("subject", pseudonym("openid", o)) for o in scenario.openids}
    named |= {("device_pseudonym", pseudonym("mac", m)) for m in scenario.macs}
    named |= {("path", p) for p in scenario.paths}
    return named


def finding_entities(kind: str, subject: str | None, details: dict[str, Any]) -> set[tuple[str, str]]:
    """Every entity a finding names, its evidence lists included (for matching only)."""
    named = {(key, str(details[key])) for key in ("ip_prefix", "path", "device_pseudonym") if details.get(key)}
    for key in ("top_ip_prefixes", "ip_prefixes", "new_ip_prefixes"):
        if isinstance(details.get(key), list):
            named |= {("ip_prefix", str(p)) for p in details[key]}
    named |= {("subject", str(s)) for s in details.get("subject_pseudonyms", [])}
    if subject:
        named.add(("subject", subject))
    for related in details.get("related", []):  # the findings merged into this incident
        named |= finding_entities(related.get("kind", ""), related.get("subject_pseudonym"), related)
    return named


def evaluate_warehouse(warehouse: Path, scenarios: list[Any], days: list[dt.date], pseudonymizer: Any,
                       timezone: str = "Asia/Shanghai", seed: int | None = None) -> Evaluation:  # fmt: skip
    """Report every day in order, then compare the findings with the labels."""
    from pipelines.security_report import ReportDay, report_security_day
    from transforms.anomalies import DetectorConfig

    cfg = DetectorConfig()
    attack_days = {dt.date.fromisoformat(s.day) for s in scenarios}
    attacks = [(s, scenario_entities(s, pseudonymizer)) for s in scenarios if not s.benign]
    benign = [(s, scenario_entities(s, pseudonymizer)) for s in scenarios if s.benign]
    result = Evaluation(seed, total=dict(Counter(s.kind for s, _ in attacks)))
    found: set[int] = set()
    for day in days:
        report = report_security_day(ReportDay(day, timezone, warehouse), cfg)
        if day not in attack_days:
            result.quiet_day_findings.append(len(report.anomalies))
            result.false_kinds.update(f"{a.kind} (quiet day)" for a in report.anomalies)
            continue
        for a in report.anomalies:
            result.attack_day_findings += 1
            named = finding_entities(a.kind, a.subject_pseudonym, a.details)
            hits = [i for i, (s, ents) in enumerate(attacks) if s.day == day.isoformat() and named & ents]
            if hits:
                result.true_findings += 1
                found.update(hits)
                continue
            result.false_kinds[a.kind] += 1
            for s, ents in benign:
                if named & ents:
                    result.lookalikes_flagged[s.kind] += 1
    result.found = dict(Counter(attacks[i][0].kind for i in found))
    return result


def evaluate_seed(users: int, days: int, seed: int, start: dt.date) -> Evaluation:
    """Simulate, load, report and compare for one seed, in a temporary warehouse."""
    import hashlib

    from seaport.devtools.attacks import simulate_attacks
    from transforms.pseudonyms import Pseudonymizer

    traffic, scenarios = simulate_attacks(users, days, seed, start)
    # Throw-away (nothing outlives the run), and the seed's own: which subjects a finding lists,
    # and so which findings merge, follows the pseudonyms' order; one seed, one figure.
    pseudonymizer = Pseudonymizer(hashlib.sha256(f"seaport eval security {seed}".encode()).digest())
    with tempfile.TemporaryDirectory(prefix="seaport-eval-") as tmp:
        warehouse = Path(tmp)
        load_security_events(traffic, warehouse, pseudonymizer)
        all_days = [start + dt.timedelta(days=d) for d in range(days)]
        return evaluate_warehouse(warehouse, scenarios, all_days, pseudonymizer, seed=seed)


def format_evaluation(results: list[Evaluation]) -> str:
    """The figures per seed and together, as the command prints them."""
    from seaport.devtools.attacks import ATTACK_KINDS

    lines = []
    header = f"{'scenario kind':<26}" + "".join(f"{_label(r):>10}" for r in results)
    lines.append("recall per scenario kind (found/scenarios)")
    lines.append(header)
    for kind in ATTACK_KINDS:
        cells = "".join(f"{str(r.found.get(kind, 0)) + '/' + str(r.total.get(kind, 0)):>10}" for r in results)
        lines.append(f"{kind:<26}{cells}")
    lines.append("")
    rows = [
        ("recall (all scenarios)", [f"{r.recall:.2f}" for r in results]),
        ("precision (attack day)", [f"{r.precision:.2f} ({r.true_findings}/{r.attack_day_findings})" for r in results]),
        ("false findings / quiet day", [f"{r.false_per_quiet_day:.2f}" for r in results]),
        ("meets the targets", ["yes" if r.meets_targets() else "NO" for r in results]),
    ]
    width = max(16, *(len(c) + 2 for _, cells in rows for c in cells))
    for label, cells in rows:
        lines.append(f"{label:<26}" + "".join(f"{c:>{width}}" for c in cells))
    for r in results:
        if r.false_kinds or r.lookalikes_flagged:
            false = ", ".join(f"{k} x{n}" for k, n in sorted(r.false_kinds.items()))
            looks = ", ".join(f"{k} x{n}" for k, n in sorted(r.lookalikes_flagged.items())) or "none"
            lines.append(f"{_label(r)}: false findings: {false or 'none'}; look-alikes flagged: {looks}")
    lines.append(
        f"targets: recall >= {TARGETS['recall']} on every kind, precision >= {TARGETS['precision']}, "
        f"<= {TARGETS['false_per_quiet_day']:g} false finding per quiet day"
    )
    return "\n".join(lines)


def _label(r: Evaluation) -> str:
    """A column's name: the seed simulated, or the warehouse evaluated (`--warehouse`)."""
    return "warehouse" if r.seed is None else f"seed {r.seed}"


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be whole numbers separated by commas, got {text!r}") from None
    if not seeds or len(seeds) > 20:
        raise argparse.ArgumentTypeError("give 1 to 20 seeds")
    return seeds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from seaport.options import positive_int

    parser.description = (
        "Measure the security detectors: simulate quiet days and a day of labelled attacks with legitimate "
        "look-alikes, store them as ingest does, run the nightly report of every day, and print recall per "
        "scenario kind, precision and false findings per quiet day."
    )
    parser.add_argument("what", choices=["security"], help="what to evaluate (only `security` exists)")
    parser.add_argument("--users", type=positive_int, default=700, help="visitors (default: %(default)s)")
    parser.add_argument(
        "--days", type=positive_int, default=9, help="days, the last one attacked (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, help="one seed (default: --seeds)")
    parser.add_argument("--seeds", type=_seeds, default=[1, 2, 3], help="seeds, e.g. 1,2,3 (default: 1,2,3)")
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2026, 11, 16), metavar="YYYY-MM-DD",
                        help="first day (default: %(default)s)")  # fmt: skip
    parser.add_argument("--warehouse", type=Path, metavar="DIR",
                        help="evaluate this warehouse (filled by `seaport ingest`) instead of a fresh one")  # fmt: skip
    parser.add_argument("--labels", type=Path, metavar="FILE",
                        help="with --warehouse: the labels file of `simulate --attacks --out`")  # fmt: skip
    parser.add_argument("--dev", action="store_true", help="with --warehouse: ingest's development key in .seaport/")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")


def run(args: argparse.Namespace) -> int:
    from seaport.progress import Progress

    if (args.warehouse is None) != (args.labels is None):
        raise SeaportError("--warehouse and --labels go together")
    if args.warehouse is not None:
        from seaport.devtools.attacks import read_labels
        from transforms.pseudonyms import Pseudonymizer

        scenarios = read_labels(args.labels)
        if not (args.warehouse / "security.duckdb").is_file():
            raise SeaportError(f"no security.duckdb in {str(args.warehouse)!r}; run `seaport ingest` first")
        pseudonymizer = Pseudonymizer.from_environment(dev=args.dev, dev_dir=Path(".seaport"))
        last = max(dt.date.fromisoformat(s.day) for s in scenarios)
        days = [last - dt.timedelta(days=d) for d in reversed(range(args.days))]
        results = [evaluate_warehouse(args.warehouse, scenarios, days, pseudonymizer)]
        from sinks import trail  # R12: it read the security store and used the key

        trail.record(
            args.warehouse, "eval", {"days": args.days, "labels": "(given)"}, "ok", key_id=pseudonymizer.key_id
        )
    else:
        if args.days < 2 or args.users < 50:
            raise SeaportError("--days must be at least 2 and --users at least 50")
        seeds = [args.seed] if args.seed is not None else args.seeds
        results = []
        with Progress("evaluating seeds", total=len(seeds), unit="seed") as bar:
            for seed in seeds:
                results.append(evaluate_seed(args.users, args.days, seed, args.start))
                bar.update(1)
    print(format_evaluation(results))
    return 1 if args.check and not all(r.meets_targets() for r in results) else 0
