"""`seaport runners setup flink|spark|prism`: Beam's portable runners on this machine, built once.

    seaport runners setup flink     # prints the `seaport ingest` options that use it
    seaport ingest --until-caught-up --runner FlinkRunner --flink_master=[local] \\
        --flink_job_server_jar=.cache/flink-job-server/job-server.jar \\
        --environment_type=LOOPBACK --parallelism=2 --job_server_jvm_properties=-Xmx512m

- flink: Beam's Flink job server (beam-runners-flink-1.19 2.62.0 and its ~160 jars, ~150 MB)
  resolved from Maven Central into `.cache/flink-job-server/`, with a small `job-server.jar`
  whose manifest starts `FlinkJobServerDriver` on them. `--flink_master=[local]` runs a Flink
  mini cluster inside it; `--flink_master=HOST:PORT` submits to a real cluster.
- spark: Beam's Spark job server (beam-runners-spark-3 2.62.0 with Spark 3.5.0, ~260 jars,
  ~300 MB) in `.cache/spark-job-server/`; `--spark_master_url=local[2]` runs Spark inside it.
- prism: Beam's portable runner in Go, built at the SDK's version (2.77.0) with `go install` into
  `.cache/prism-2.77.0/`; `--runner PrismRunner --prism_location=BIN`.

Nothing is downloaded when a pipeline runs: `seaport ingest` refuses a portable runner that was
not given its job server or binary (Beam would try to download one).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from seaport.devtools.maven import cache_dir, require, resolve_jars
from seaport.errors import SeaportError

# runner -> (its pom, the job server's main class, a jar the resolution must hold)
JOB_SERVERS = {
    "flink": ("flink-job-server.pom.xml", "org.apache.beam.runners.flink.FlinkJobServerDriver", "beam-runners-flink-1.19-*.jar"),
    "spark": ("spark-job-server.pom.xml", "org.apache.beam.runners.spark.SparkJobServerDriver", "beam-runners-spark-3-*.jar"),
}
PRISM_VERSION = "2.77.0"  # the Python SDK's: Prism builds at exactly this version
PRISM_MODULE = f"github.com/apache/beam/sdks/v2/go/cmd/prism@v{PRISM_VERSION}"
RUNNERS = ("flink", "spark", "prism")


def _manifest_line(text: str) -> bytes:
    """A manifest line: at most 72 bytes, continued on lines that start with a space."""
    raw = text.encode()
    parts = [raw[:72]] + [b" " + raw[i : i + 71] for i in range(72, len(raw), 71)]
    return b"\r\n".join(parts) + b"\r\n"


def job_server(runner: str) -> Path:
    """The launcher jar of `runner`'s job server (flink, spark), built on the first call."""
    pom, main, expected = JOB_SERVERS[runner]
    libs = resolve_jars(Path(__file__).with_name(pom), f"{runner}-job-server", f"Beam's {runner} job server", expected)
    jar = libs / "job-server.jar"
    if not jar.is_file():
        jars = sorted(p.name for p in libs.glob("*.jar") if p.name != jar.name)
        manifest = (
            _manifest_line("Manifest-Version: 1.0")
            + _manifest_line(f"Main-Class: {main}")
            + _manifest_line("Class-Path: " + " ".join(jars))
            + b"\r\n"
        )
        partial = jar.with_suffix(".partial")
        with zipfile.ZipFile(partial, "w") as z:
            z.writestr("META-INF/MANIFEST.MF", manifest)
        partial.rename(jar)
    return jar


def prism_binary() -> Path:
    """Beam's Prism runner, built with Go on the first call."""
    folder = cache_dir() / f"prism-{PRISM_VERSION}"
    binary = folder / "prism"
    if binary.is_file():
        return binary
    go = require("go", "build Beam's Prism runner")
    print(f"building Beam's Prism runner {PRISM_VERSION} with Go into {folder} (once) ...", file=sys.stderr, flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder.with_name(f"prism-{PRISM_VERSION}.go.log")
    with open(log, "w") as out:
        done = subprocess.run([go, "install", PRISM_MODULE], env=os.environ | {"GOBIN": str(folder)},
                              stdout=out, stderr=subprocess.STDOUT, check=False)  # fmt: skip
    if done.returncode != 0 or not binary.is_file():
        raise SeaportError(f"go could not build Prism {PRISM_VERSION} (exit {done.returncode}); see {log}")
    return binary


def ingest_options(runner: str, parallelism: int = 2) -> list[str]:
    """The `seaport ingest` options that run it on `runner`, built first if needed."""
    if runner in JOB_SERVERS:
        require("java", f"run Beam's {runner} job server")
    if runner == "flink":
        return ["--runner", "FlinkRunner", "--flink_master=[local]", f"--flink_job_server_jar={job_server('flink')}",
                "--environment_type=LOOPBACK", f"--parallelism={parallelism}",
                "--job_server_jvm_properties=-Xmx512m"]  # fmt: skip
    if runner == "spark":
        return ["--runner", "SparkRunner", f"--spark_master_url=local[{parallelism}]",
                f"--spark_job_server_jar={job_server('spark')}", "--environment_type=LOOPBACK"]  # fmt: skip
    return ["--runner", "PrismRunner", f"--prism_location={prism_binary()}", "--environment_type=LOOPBACK"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n\n", 1)[1] if __doc__ else None
    parser.add_argument("action", choices=["setup"], help="build the runner's job server or binary (once)")
    parser.add_argument("runner", choices=RUNNERS, help="flink or spark (Java and Maven needed), prism (Go needed)")


def run(args: argparse.Namespace) -> int:
    options = ingest_options(args.runner)
    print("ready; run ingest on it with:\n  seaport ingest " + " ".join(options))
    return 0
