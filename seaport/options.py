"""The options and argument types the `seaport` commands share.

Only the CLI and the command modules (with `add_arguments`) import this; the Kafka layer,
transforms and sinks never do.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from seaport.errors import SeaportError

T = TypeVar("T", int, float)

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def configure_logging() -> None:
    """A command's logging: errors only, unless $SEAPORT_LOG_LEVEL says otherwise (libraries, Beam
    on import and librdkafka among them, warn about what does not concern users)."""
    import logging

    logging.basicConfig(level=os.environ.get("SEAPORT_LOG_LEVEL", "ERROR").upper(), format="%(levelname)s %(message)s")


def add_kafka_options(parser: argparse.ArgumentParser) -> None:
    """The options every command that talks to Kafka takes."""
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("SEAPORT_BOOTSTRAP", DEFAULT_BOOTSTRAP),
        metavar="HOST:PORT",
        help="Kafka bootstrap server (default: $SEAPORT_BOOTSTRAP or %(default)s)",
    )
    parser.add_argument(
        "--kafka-client",
        choices=["confluent", "kafka-python"],
        default="confluent",
        help="Kafka client library (default: %(default)s; kafka-python where librdkafka is missing)",
    )


def add_security_dir_option(parser: argparse.ArgumentParser) -> None:
    """Where the security store lives when not in the warehouse folder (R12: it can be given to
    the security team alone)."""
    parser.add_argument(
        "--security-dir",
        type=Path,
        metavar="DIR",
        default=os.environ.get("SEAPORT_SECURITY_DIR") or None,
        help="folder of security.duckdb (default: $SEAPORT_SECURITY_DIR, else the warehouse folder)",
    )


def number_type(parse: Callable[[str], T], within: Callable[[T], bool], wanted: str) -> Callable[[str], T]:
    """An argparse type: `parse(text)` if `within` holds for it, else a one-line usage error saying
    what is `wanted` (NaN fails every comparison, so it is never within)."""

    def checked(text: str) -> T:
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not within(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value

    return checked


positive_int = number_type(int, lambda n: n >= 1, "a whole number above 0")  # counts
positive_float = number_type(float, lambda x: 0 < x < math.inf, "a number of seconds above 0")  # intervals
port_number = number_type(int, lambda n: 1 <= n <= 65535, "a port number 1-65535")


def check_timezone(name: str) -> str:
    """`name` if it is a known IANA time zone (the `--timezone` option), else a one-line error."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SeaportError(f"unknown --timezone {name!r}") from None
    return name


def default_prefix() -> str:
    return os.environ.get("SEAPORT_TOPIC_PREFIX", "")


def add_prefix_option(parser: argparse.ArgumentParser) -> None:
    """`--topic-prefix P`, taken by every command that talks to Kafka."""
    parser.add_argument(
        "--topic-prefix",
        default=default_prefix(),
        metavar="P",
        help="prefix of every topic name, for isolated runs (default: $SEAPORT_TOPIC_PREFIX or empty)",
    )
