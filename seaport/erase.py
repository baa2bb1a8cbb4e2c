"""`seaport erase`: file an erasure request (R8) on `erasure.requests`.

The next `seaport ingest` deletes the subject's rows from every store that holds rows per
subject and keeps the subject out of every table from then on, replays included.
"""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import UTC, datetime

from schemas.models import ErasureRequest
from seaport.cli import add_kafka_options
from seaport.errors import SeaportError
from seaport.kafka.topics import add_prefix_option, topic_name


def identifier(text: str) -> str:
    """argparse type for ids: surrounding spaces stripped (a pasted id often carries some), and a blank
    id or one with a newline or another control or invisible character refused: no subject has such
    an id, so the request would erase nothing (R8). The message never repeats the id."""
    value = text.strip(" ")
    if not value or not value.isprintable():
        raise argparse.ArgumentTypeError("must be a non-blank id without control or invisible characters")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--openid", type=identifier, metavar="X", help="the subject's WeChat OpenId")
    who.add_argument("--anonymous-id", type=identifier, metavar="X", help="the subject's anonymous cookie id")
    parser.add_argument("--request-id", type=identifier, help="the request's id (default: a new UUID)")
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
    from seaport.kafka.clients import make_client

    request = erasure_request(args.openid, args.anonymous_id, args.request_id)
    value = json.dumps(request.model_dump(mode="json", by_alias=True, exclude_none=True)).encode()
    client = make_client(args.kafka_client, args.bootstrap)
    try:
        client.produce(topic_name("erasure.requests", args.topic_prefix), [(request.subject.value.encode(), value)])
    finally:
        client.close()
    print(f"erasure request {request.request_id} filed ({request.subject.kind}); the next ingest applies it")
    return 0
