"""Shared fixtures: ONE real Kafka broker per test session (per xdist worker: `run_tests.sh` runs
two), and isolated topics per test.

    kafka_broker      (session)  the real KRaft `Broker` on a free port, temp data dir
    kafka_bootstrap   (session)  its "127.0.0.1:<port>"
    topic_prefix      (function) a unique prefix, e.g. "t1a2b3c4.", with the contract's topics
                                 created under it: `topic_name("beacons.raw", topic_prefix)`
    kafka_client      (function) factory: kafka_client("confluent" | "kafka-python") -> KafkaClient,
                                 closed after the test
    browser           (function) headless Debian Chromium driven by selenium, a new empty profile,
                                 the console log kept (`driver.get_log("browser")`)

The broker is started only by tests that ask for it, and stopped at the end of the session
(also when tests fail). Never port 9092: that one belongs to the user's own broker.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))  # the package is importable without being installed

from seaport.devtools.broker import Broker, free_port  # noqa: E402
from seaport.kafka.clients import KafkaClient, make_client  # noqa: E402
from seaport.kafka.topics import create_topics  # noqa: E402


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A real single-node broker for the whole session, stopped by its PID at the end."""
    broker = Broker(free_port(), tmp_path_factory.mktemp("kafka"))
    try:
        broker.start(timeout=120)
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Broker) -> str:
    """The session broker's bootstrap address, "127.0.0.1:<port>"."""
    return kafka_broker.bootstrap


@pytest.fixture
def topic_prefix(kafka_bootstrap: str) -> str:
    """A prefix no other test uses, with every contract topic created under it."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    create_topics(kafka_bootstrap, prefix)
    return prefix


@pytest.fixture
def kafka_client(kafka_bootstrap: str) -> Iterator[Callable[[str], KafkaClient]]:
    """Factory of clients on the session broker; every client made is closed after the test."""
    made: list[KafkaClient] = []

    def make(kind: str = "confluent") -> KafkaClient:
        made.append(make_client(kind, kafka_bootstrap))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """A fresh pseudonymization key (32 random bytes) for SEAPORT_PSEUDONYM_KEY_FILE."""
    path = tmp_path / "pseudonym.key"
    path.write_bytes(os.urandom(32))
    return path


# Debian's Chromium as this machine runs it headless: without the background-networking flags its
# connections are refused by the closed network, many at a time.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator:
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")  # new and empty
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
