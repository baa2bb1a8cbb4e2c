"""The `seaport` command line.

Each command lives in its own module, which exposes `add_arguments(parser)` and
`run(args) -> int`. Modules are imported only when their command runs, so `--help`
stays fast and a broken optional dependency breaks only its own command.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

from seaport.errors import SeaportError
from seaport.options import configure_logging

# command -> (module, one-line help, the stores it touches: checked for residency before it runs)
COMMANDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "broker": ("seaport.devtools.broker", "start, stop or inspect a local single-node Kafka broker (KRaft)", ("kafka",)),
    "topics": ("seaport.commands.topics", "create seaport's topics (idempotent)", ("kafka",)),
    "produce": ("seaport.commands.produce", "send each line of a JSON-lines file to a topic, as it is", ("kafka",)),
    "collect": ("seaport.collector.app", "the HTTP collector for tracking pixels and SDK batches", ("kafka",)),
    "simulate": ("seaport.devtools.simulate", "generate realistic, seeded traffic into files or Kafka", ()),
    "ingest": (
        "pipelines.ingest",
        "the Beam pipeline: Kafka to the warehouse",
        ("kafka", "key", "state", "security", "analytics"),
    ),
    "erase": (
        "seaport.commands.erase",
        "file an erasure request for a subject, or list requests (--status)",
        ("kafka", "state"),
    ),
    "subject-report": (
        "seaport.commands.subject_report",
        "what the restricted stores hold about one person (R6), masked",
        ("key", "state", "security"),
    ),
    "report": (
        "pipelines.security_report",
        "reports; `report security --date D` is the nightly anomaly report",
        ("security",),
    ),
    "dashboard": ("dashboards.dashboard", "build the product dashboard (HTML) from the warehouse", ("analytics",)),
    "export": (
        "seaport.commands.export",
        "copy the de-identified aggregates to a declared partner, after an audit",
        ("analytics",),
    ),
    "eval": (
        "seaport.devtools.eval_security",
        "`eval security`: the detectors' precision and recall on labelled attack scenarios",
        ("security", "key"),
    ),
    "audit": ("sinks.audit", "scan every file of a warehouse for personal identifiers; --trail checks the trail", ()),
    "bench": ("seaport.devtools.bench", "the throughput benchmark", ()),
    "sql": ("seaport.commands.sql", "a read-only SQL query of the analysts' database and Parquet", ("analytics",)),
    "summary": (
        "seaport.commands.summary",
        "a short account of a warehouse: what came in, what was rejected and why, what was published",
        ("analytics",),
    ),
    # developer tools
    "replay": ("seaport.devtools.replay", "send simulated traffic files through a running collector over HTTP", ()),
    "loadtest": ("seaport.devtools.loadtest", "load-test the collector with wrk (a broker must be running)", ()),
    "runners": (
        "seaport.devtools.runners",
        "`runners setup flink|spark|prism`: build Beam's portable runners on this machine, once",
        (),
    ),
    "bench-security": (
        "seaport.devtools.bench_security",
        "time the nightly security report on a day of N synthetic events against 28 days of baseline",
        (),
    ),
}

# Commands that touch personal data or its key: each invocation leaves an entry in the audit trail
# of its warehouse (R12).
AUDITED = frozenset({"ingest", "erase", "subject-report", "report", "export"})

class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors as one line, like every other error (`--help` shows the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _parser_for(command: str | None) -> argparse.ArgumentParser:
    parser = _OneLineErrors(
        prog="seaport",
        description="seaport: privacy-aware analytics ingestion (Kafka -> Beam -> DuckDB/Parquet).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text, _stores) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    command = command if command in COMMANDS else None
    parser = _parser_for(command)
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    module_name, _help, stores = COMMANDS[args.command]
    outcome = "error"
    try:
        from seaport.residency import PERSONAL_STORES, check_stores

        check_stores(stores)  # R10: before anything is read or written
        if PERSONAL_STORES & set(stores):
            os.umask(0o077)  # R12: what a command on personal data creates is its owner's only
        module = importlib.import_module(module_name)
        code = int(module.run(args) or 0)
        outcome = "ok" if code == 0 else f"exit {code}"
        return code
    except SeaportError as e:
        outcome = f"refused: {e}"
        print(f"seaport {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        outcome = "interrupted"
        print(f"seaport {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a fault we did not foresee: still one line, never personal data
        outcome = f"failed: {type(e).__name__}"
        if os.environ.get("SEAPORT_DEBUG"):
            raise
        from transforms.redact import redact_text

        message = redact_text(str(e).splitlines()[0] if str(e) else "")[0][:300]
        print(
            f"seaport {args.command}: error: unexpected {type(e).__name__}: {message} (SEAPORT_DEBUG=1 shows the trace)",
            file=sys.stderr,
        )
        return 1
    finally:
        if args.command in AUDITED and not outcome.startswith("refused: residency"):
            _record_in_trail(args, outcome)


def _record_in_trail(args: argparse.Namespace, outcome: str) -> None:
    """R12: one entry per invocation in the trail of the warehouse it used (a residency refusal
    writes nothing anywhere, this entry included)."""
    from pathlib import Path

    from sinks import trail

    facts = getattr(args, "trail", {})
    folder = Path(getattr(args, "warehouse", None) or "warehouse")
    if outcome != "ok" and not any((folder / f).exists() for f in ("analytics.duckdb", trail.TRAIL_FILE)):
        return  # refused where no warehouse is: nothing was touched, and no store is made to say so
    try:
        trail.record(
            folder,
            args.command,
            trail.options_of(args),
            facts.get("outcome", outcome) if outcome == "ok" else outcome,
            facts.get("policy_version"),
            facts.get("key_id"),
        )
    except Exception as e:  # the command's own outcome stands; the operator learns the entry is missing
        reason = str(e) if isinstance(e, SeaportError) else type(e).__name__
        print(f"seaport {args.command}: warning: the audit trail was not written: {reason}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
