"""A local single-node Apache Kafka broker (KRaft: one process is broker and controller).

    seaport broker start    # resolves the jars with Maven once, formats storage, starts, waits
    seaport broker status
    seaport broker stop

The jars come from Maven Central through `seaport/devtools/pom.xml` and are cached in
`$SEAPORT_CACHE/kafka-libs` (default `<project>/.cache/kafka-libs`). The broker listens on
127.0.0.1 only, keeps its data, logs and pid file in `--data-dir`, and is stopped by its own PID.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import random
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from seaport.devtools.maven import require, resolve_jars
from seaport.errors import SeaportError
from seaport.options import port_number, positive_float

POM = Path(__file__).with_name("pom.xml")
DEFAULT_PORT = 9092
DEFAULT_DATA_DIR = Path(".seaport/kafka")
JVM_OPTIONS = [
    "-Xms128m",
    "-Xmx512m",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]
# The format tool runs for a second or two: a quick-starting JVM beats an optimizing one there.
TOOL_JVM_OPTIONS = ["-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]

LOG4J2_PROPERTIES = """\
status = warn
shutdownHook = disable
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = warn
logger.apache.name = org.apache.kafka
logger.apache.level = warn
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = info
logger.state.name = state.change.logger
logger.state.level = warn
"""


def ensure_jars() -> Path:
    """The broker's jars, resolved with Maven once (`seaport.devtools.maven`)."""
    return resolve_jars(POM, "kafka-libs", "the Kafka broker's jars", "kafka_2.13-*.jar")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing uses right now, below the ephemeral range.

    Not `bind(0)`: that hands out an ephemeral port, which any outgoing connection may take
    while a broker that owns it is stopped, and its restart would then fail."""
    low = _ephemeral_range_start()
    for port in random.sample(range(max(1024, low - 12000), low), 50):
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port))
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ephemeral_range_start() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    return 32768


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    """True while `pid` runs; reaps it when it is our own exited child (else it stays a zombie)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _is_kafka(pid: int) -> bool:
    """Guards against a recycled PID: only a `kafka.Kafka` JVM counts as our broker."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        return _alive(pid)
    with contextlib.suppress(OSError):
        return b"kafka.Kafka" in cmdline.read_bytes() and _alive(pid)
    return False


class Broker:
    """One local broker+controller, its state in `data_dir`; see the module docstring."""

    def __init__(self, port: int = DEFAULT_PORT, data_dir: Path = DEFAULT_DATA_DIR) -> None:
        self.port = port
        self.data_dir = Path(data_dir).resolve()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    def pid(self) -> int | None:
        """The PID of this data dir's running broker, or None."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _is_kafka(pid) else None

    def status(self) -> str:
        pid = self.pid()
        if pid is None:
            return f"stopped (data in {self.data_dir})"
        return f"running (pid {pid}) on {self._running_bootstrap()}, data in {self.data_dir}"

    def _running_bootstrap(self) -> str:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return self.pid_file.read_text().split()[1]
        return self.bootstrap

    def start(self, timeout: float = 60) -> None:
        """Start the broker detached and wait until it answers metadata; no-op if already running."""
        if self.pid() is not None:
            return
        if _port_in_use(self.port):
            raise SeaportError(f"port {self.port} on 127.0.0.1 is already in use by another process")
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a file in the way, or no permission: say so before the jars are fetched
            reason = "a file is in the way" if isinstance(e, FileExistsError | NotADirectoryError) else e.strerror
            raise SeaportError(f"cannot use {self.data_dir} as the broker's data folder: {reason}") from None
        libs = ensure_jars()
        require("java", "run the Kafka broker")
        properties = self._write_config()
        if not (self.data_dir / "logs" / "meta.properties").exists():
            self._format_storage(libs, properties)
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                self._java(libs, "kafka.Kafka", str(properties)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the CLI and its terminal's Ctrl-C
            )
        self.pid_file.write_text(f"{process.pid} {self.bootstrap}\n")
        self._wait_ready(process.pid, timeout)

    def stop(self, timeout: float = 30) -> bool:
        """SIGTERM our broker (by the PID in its pid file), then SIGKILL after `timeout`.

        Returns False when it was not running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        if not _wait_exit(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_exit(pid, 10)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _java(self, libs: Path, main_class: str, *args: str, options: list[str] = JVM_OPTIONS) -> list[str]:
        log4j = f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}"
        return ["java", *options, log4j, "-cp", f"{libs}/*", main_class, *args]

    def _cluster_id(self) -> str | None:
        """The id written by `StorageTool format`: tells our broker from another one on the port."""
        with contextlib.suppress(OSError):
            for line in (self.data_dir / "logs" / "meta.properties").read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.partition("=")[2].strip()
        return None

    def _controller_port(self) -> int:
        """Chosen once per data dir: the formatted storage records the controller's endpoint."""
        saved = self.data_dir / "controller.port"
        if saved.exists():
            return int(saved.read_text())
        port = free_port()
        while port == self.port:  # the broker's port is not bound yet: it may be offered again
            port = free_port()
        saved.write_text(str(port))
        return port

    def _write_config(self) -> Path:
        controller = f"127.0.0.1:{self._controller_port()}"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": controller,
            "listeners": f"PLAINTEXT://{self.bootstrap},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{self.bootstrap}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "logs"),
            # Topics come from `seaport topics create` with their contract partition counts,
            # never from a typo in a producer.
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        (self.data_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        path = self.data_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        return path

    def _format_storage(self, libs: Path, properties: Path) -> None:
        cluster_id = new_cluster_id()
        command = self._java(libs, "kafka.tools.StorageTool", "format", "--standalone",
                             "-t", cluster_id, "-c", str(properties), options=TOOL_JVM_OPTIONS)  # fmt: skip
        with open(self.log_file, "ab") as log:
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            raise SeaportError(
                f"formatting the broker's storage failed ({_last_line(self.log_file)}); see {self.log_file}"
            )

    def _wait_ready(self, pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                self.pid_file.unlink(missing_ok=True)
                raise SeaportError(
                    f"the broker exited during start-up ({_last_line(self.log_file)}); see {self.log_file}"
                )
            if _port_in_use(self.port) and _cluster_id(self.bootstrap) == self._cluster_id():
                return
            time.sleep(0.2)
        self.stop()
        raise SeaportError(f"the broker did not answer within {timeout:g} s; see {self.log_file}")


def _last_line(log: Path) -> str:
    """The log's last line, shortened: the broker's own words on why it failed (no personal data)."""
    with contextlib.suppress(OSError, IndexError):
        return log.read_text(errors="replace").strip().splitlines()[-1][:200]
    return "no log"


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def new_cluster_id(draw: Callable[[], uuid.UUID] = uuid.uuid4) -> str:
    """A random KRaft cluster id. Like Kafka's own `Uuid.randomUuid`, never one that starts with "-":
    the storage tool would read it as an option (1 draw in 64)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(draw().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _cluster_id(bootstrap: str) -> str | None:
    """The cluster id in the metadata a broker at `bootstrap` answers with, or None."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=2)
    except KafkaException:
        return None
    return metadata.cluster_id if metadata.brokers else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["start", "stop", "status"], help="what to do")
    parser.add_argument(
        "--port",
        type=port_number,
        default=DEFAULT_PORT,
        help="listener port on 127.0.0.1 (%(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="data, logs and pid file (%(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=None,
        help="seconds to wait for start (60) or stop (30)",
    )


def run(args: argparse.Namespace) -> int:
    broker = Broker(args.port, args.data_dir)
    if args.action == "start":
        already = broker.pid() is not None
        broker.start(timeout=args.timeout or 60)
        print(f"broker {'already ' if already else ''}{broker.status()}")
        return 0
    if args.action == "stop":
        stopped = broker.stop(timeout=args.timeout or 30)
        print("broker stopped" if stopped else "broker was not running")
        return 0
    print(f"broker {broker.status()}")
    return 0 if broker.pid() is not None else 3
