"""Jars from Maven Central, resolved once with the machine's Maven into the project's cache.

The cache is `$SEAPORT_CACHE`, default `<project>/.cache` (git ignores it). A folder is resolved
from a pom's runtime dependencies (`mvn dependency:copy-dependencies`); a stamp holding the pom's
digest marks a complete download, so an edited pom or an interrupted run resolves again, and a
file lock keeps concurrent callers from racing. Used by the local Kafka broker and the local
portable runners' job servers.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from seaport.errors import SeaportError

PROJECT_DIR = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Where downloaded things live: `$SEAPORT_CACHE` or `<project>/.cache` (git-ignored)."""
    return Path(os.environ.get("SEAPORT_CACHE") or PROJECT_DIR / ".cache")


def require(tool: str, purpose: str) -> str:
    """The path of `tool` on PATH, else a one-line error saying what it is `purpose`d for."""
    path = shutil.which(tool)
    if path is None:
        raise SeaportError(f"`{tool}` not found on PATH; it is needed to {purpose}")
    return path


def resolve_jars(pom: Path, name: str, what: str, expected: str) -> Path:
    """`cache_dir() / name`, holding `pom`'s runtime dependencies; resolved with Maven on the
    first call (saying so on stderr), at once on later ones. `what` names the jars in messages;
    a resolution without a jar matching the glob `expected` is an error."""
    libs = cache_dir() / name
    stamp = libs / ".pom.sha256"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest:
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    with open(libs.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text() == digest:
            return libs
        mvn = require("mvn", f"download {what}")
        print(f"resolving {what} with Maven into {libs} (once) ...", file=sys.stderr, flush=True)
        staging = libs.with_name(f"{name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        log = libs.with_name(f"{name}.mvn.log")
        command = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
                   f"-DoutputDirectory={staging}", "-DincludeScope=runtime"]  # fmt: skip
        with open(log, "w") as out:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0 or not any(staging.glob(expected)):
            raise SeaportError(f"Maven could not resolve {what} (exit {done.returncode}); see {log}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        stamp.write_text(digest)
        print(f"resolved {len(list(libs.glob('*.jar')))} jars", file=sys.stderr, flush=True)
    return libs
