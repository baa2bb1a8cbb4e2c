"""`seaport produce --topic T FILE`: send each line of a JSON-lines file to a topic, as it is.

    seaport produce --topic beacons.raw day.jsonl
    seaport simulate ... | seaport produce --topic beacons.raw -

No validation: a bad line must reach the pipeline, which counts it and routes it to the dead
letters. Only empty lines are skipped. The key is the contract's key for the topic when the
line is a JSON object carrying it (`topics.message_key`), else none. A line Kafka refuses (larger
than the broker accepts, say) is reported with its line number and the rest is still sent; the
exit code is then 1, after a one-line count.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, BinaryIO

from seaport.errors import SeaportError
from seaport.kafka.topics import message_key, topic_name
from seaport.options import add_kafka_options, add_prefix_option

if TYPE_CHECKING:
    from seaport.kafka.clients import Refusal


def keyed_lines(
    base: str, lines: Iterable[bytes], numbers: list[int] | None = None
) -> Iterator[tuple[bytes | None, bytes]]:
    """(key, line) for each non-empty line, the line without its line break, bytes unchanged;
    the line number (from 1) of each message yielded is appended to `numbers`."""
    for number, line in enumerate(lines, 1):
        payload = line.rstrip(b"\r\n")
        if payload.strip():
            if numbers is not None:
                numbers.append(number)
            yield message_key(base, payload), payload


def _open(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as e:
        raise SeaportError(f"cannot read {path}: {e.strerror}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", required=True, metavar="T", help="topic name, e.g. beacons.raw (prefix added)")
    parser.add_argument("file", metavar="FILE", help="JSON-lines file, or - for standard input")
    add_kafka_options(parser)
    add_prefix_option(parser)


def run(args: argparse.Namespace) -> int:
    from seaport.kafka.clients import make_client

    topic = topic_name(args.topic, args.topic_prefix)
    source = _open(args.file)
    client = make_client(args.kafka_client, args.bootstrap)
    numbers: list[int] = []
    refused: list[Refusal] = []
    try:
        sent = client.produce(topic, keyed_lines(args.topic, source, numbers), refused)
    finally:
        client.close()
        if source is not sys.stdin.buffer:
            source.close()
    for index, reason in sorted(refused):
        print(f"line {numbers[index]} not sent: {reason}", file=sys.stderr)
    print(f"sent {sent - len(refused)} messages to {topic}")
    if refused:
        print(f"produce: {len(refused)} of {sent} lines not sent (see above)", file=sys.stderr)
        return 1
    return 0
