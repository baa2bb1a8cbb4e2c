"""`seaport erase`: file an erasure request (R8) on `erasure.requests`, or list requests.

The next `seaport ingest` deletes the subject's rows from every store that holds rows per
subject and keeps the subject out of every table from then on, replays included; its receipt
(rows removed per store, rows kept under a legal hold) is in `erasure_log`.

`seaport erase --status` lists the open requests (on the topic, not yet applied by an ingest run)
and those done in the last 30 days, overdue ones first, with their due dates: 15 working days
after receipt on mainland China's calendar (`transforms/deadlines.py`). It exits 1 when one is
overdue, for a cron job to alert on.

    seaport erase --openid X --warehouse warehouse/
    seaport erase --status --warehouse warehouse/
"""

from __future__ import annotations

import argparse
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from schemas.models import ErasureRequest
from seaport.errors import SeaportError
from seaport.kafka.topics import topic_name
from seaport.options import add_kafka_options, add_prefix_option


def identifier(text: str) -> str:
    """argparse type for ids: surrounding spaces stripped (a pasted id often carries some), and a blank
    id or one with a newline or another control or invisible character refused: no subject has such
    an id, so the request would erase nothing (R8). The message never repeats the id."""
    value = text.strip(" ")
    if not value or not value.isprintable():
        raise argparse.ArgumentTypeError("must be a non-blank id without control or invisible characters")
    return value


RECENT_DAYS = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__.split("\n\n", 1)[1]
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--openid", type=identifier, metavar="X", help="the subject's WeChat OpenId")
    who.add_argument("--anonymous-id", type=identifier, metavar="X", help="the subject's anonymous cookie id")
    who.add_argument(
        "--status",
        action="store_true",
        help=f"list open requests and those done in the last {RECENT_DAYS} days; exit 1 when one is overdue",
    )
    parser.add_argument("--request-id", type=identifier, help="the request's id (default: a new UUID)")
    parser.add_argument(
        "--warehouse",
        type=Path,
        default=Path("warehouse"),
        help="the warehouse the request is for: its audit trail, and its state for --status (default: %(default)s)",
    )
    add_kafka_options(parser)
    add_prefix_option(parser)


def erasure_request(openid: str | None, anonymous_id: str | None, request_id: str | None) -> ErasureRequest:
    subject = {"openid": openid} if openid else {"anonymous_id": anonymous_id}
    try:
        return ErasureRequest.model_validate(
            {
                "schema": "erasure/1",
                "ts": datetime.now(UTC),
                "subject": subject,
                "request_id": request_id or str(uuid.uuid4()),
            }
        )
    except ValueError:
        raise SeaportError("the subject id is empty or too long (at most 256 characters)") from None


def run(args: argparse.Namespace) -> int:
    if args.status:
        return show_status(args)
    from seaport.kafka.clients import make_client

    request = erasure_request(args.openid, args.anonymous_id, args.request_id)
    value = json.dumps(request.model_dump(mode="json", by_alias=True, exclude_none=True)).encode()
    client = make_client(args.kafka_client, args.bootstrap)
    try:
        client.produce(topic_name("erasure.requests", args.topic_prefix), [(request.subject.value.encode(), value)])
    finally:
        client.close()
    print(f"erasure request {request.request_id} filed ({request.subject.kind}); the next ingest applies it")
    args.trail = {"outcome": f"filed request {request.request_id}"}
    return 0


@dataclass(frozen=True)
class Request:
    request_id: str
    subject_kind: str
    received: datetime
    done_at: datetime | None

    @property
    def due(self) -> date:
        from transforms.deadlines import due_by

        return due_by(self.received)


def _done(warehouse: Path, topic: str) -> tuple[list[Request], dict[int, int]]:
    """The requests the warehouse has applied, and its next offset per partition of the topic."""
    import duckdb

    path = warehouse / "state.duckdb"
    if not path.exists():
        return [], {}
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException:
        raise SeaportError(f"cannot read {path.name}: an ingest run is writing it; try again") from None
    except duckdb.Error:
        raise SeaportError(f"{path.name} is not a readable DuckDB store") from None
    try:
        rows = con.execute(
            "SELECT request_id, subject_kind, requested_at, processed_at FROM erasures ORDER BY requested_at"
        ).fetchall()
        positions = con.execute("SELECT partition, next_offset FROM positions WHERE topic = ?", [topic]).fetchall()
    except duckdb.CatalogException:
        return [], {}
    finally:
        con.close()
    return [Request(*r) for r in rows], dict(positions)


def _open(args: argparse.Namespace, topic: str, stored: dict[int, int]) -> list[Request]:
    """Requests on the topic past the warehouse's stored positions: filed, not yet applied."""
    from pydantic import ValidationError

    from schemas.models import ErasureRequest
    from seaport.kafka.clients import make_client

    client = make_client(args.kafka_client, args.bootstrap)
    found = []
    try:
        ends = client.end_offsets(topic)
        for partition, end in ends.items():
            for batch in client.read_range(topic, partition, stored.get(partition, 0), end):
                for record in batch:
                    try:
                        r = ErasureRequest.model_validate_json(record.value or b"")
                    except ValidationError:
                        continue  # a dead letter for the ingest, not a request
                    found.append(Request(r.request_id, r.subject.kind, r.ts, None))
    finally:
        client.close()
    return found


def show_status(args: argparse.Namespace) -> int:
    from transforms.deadlines import LEGAL_ZONE, legal_day, working_days_left

    done, stored = _done(args.warehouse, "erasure.requests")  # positions are kept by contract name
    pending = _open(args, topic_name("erasure.requests", args.topic_prefix), stored)
    now = datetime.now(UTC)
    today = legal_day(now)
    recent = [r for r in done if r.done_at and r.done_at >= now - timedelta(days=RECENT_DAYS)]
    overdue = [r for r in pending if r.due < today]
    rows = sorted(pending, key=lambda r: (r.due, r.received)) + sorted(
        recent, key=lambda r: r.done_at or now, reverse=True
    )

    def local(t: datetime) -> str:
        return t.astimezone(LEGAL_ZONE).strftime("%Y-%m-%d %H:%M")

    print(f"{'request':<36}  {'kind':<12}  {'received (CST)':<16}  {'due by':<10}  {'state':<24}")
    for r in rows:
        left = working_days_left(r.due, today)
        if r.done_at is None:
            state = f"OVERDUE by {-left} working days" if r.due < today else f"open, {left} working days left"
        else:
            state = f"done {local(r.done_at)}" + ("" if legal_day(r.done_at) <= r.due else " (late)")
        print(
            f"{r.request_id[:36]:<36}  {r.subject_kind:<12}  {local(r.received):<16}  {r.due.isoformat():<10}  {state}"
        )
    print(
        f"{len(pending)} open ({len(overdue)} overdue), {len(recent)} done in the last {RECENT_DAYS} days; "
        f"today is {today.isoformat()} in mainland China"
    )
    args.trail = {"outcome": f"{len(pending)} open, {len(overdue)} overdue"}
    return 1 if overdue else 0
