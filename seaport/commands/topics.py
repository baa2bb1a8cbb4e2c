"""`seaport topics create`: create the contract's topics where missing (idempotent).

    seaport topics create --bootstrap 127.0.0.1:9092 [--topic-prefix P]
"""

from __future__ import annotations

import argparse

from seaport.kafka.topics import TOPICS, create_topics, topic_name
from seaport.options import add_kafka_options, add_prefix_option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["create"], help="create the contract's topics where missing")
    add_kafka_options(parser)
    add_prefix_option(parser)


def run(args: argparse.Namespace) -> int:
    created = create_topics(args.bootstrap, args.topic_prefix, args.kafka_client)
    for base, spec in TOPICS.items():
        name = topic_name(base, args.topic_prefix)
        state = "created" if name in created else "exists"
        print(f"{name}: {spec.partitions} partition(s), {state}")
    return 0
