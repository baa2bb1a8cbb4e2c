#!/usr/bin/env bash
# Shared set-up of ./run_local.sh and ./run_tests.sh: installs what is missing, and only that.
#   - .venv/ with the pinned Python packages and seaport itself (editable)
#   - the Kafka broker's jars, resolved from Maven Central into .cache/ (git ignores it)
#   - with SEAPORT_SETUP_TEST_TOOLS=1: the Debian packages the tests drive (chromium, wrk)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
"$python" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
command -v java >/dev/null || { echo "[setup] java (JDK 17+) is needed for the Kafka broker" >&2; exit 1; }
command -v mvn >/dev/null || { echo "[setup] mvn (Maven) is needed to fetch the Kafka broker's jars" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$python" -m venv .venv
fi
stamp=.venv/.seaport-installed
want=$(cat requirements.txt requirements-dev.txt setup.py | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python packages (pinned in requirements*.txt)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements-dev.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi

if [ "${SEAPORT_SETUP_TEST_TOOLS:-0}" = 1 ]; then
  missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  command -v wrk >/dev/null || missing+=(wrk)
  dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing+=(fonts-noto-cjk)  # Chinese glyphs in the dashboard's browser test
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  # The third-party trackers (Sensors Data, Snowplow) the collector's browser tests drive, pinned
  # by tests/sdk/package-lock.json, into .cache/sdk/ (git ignores it).
  sdk_want=$(cat tests/sdk/package.json tests/sdk/package-lock.json | sha256sum | cut -c1-16)
  if [ "$(cat .cache/sdk/.installed 2>/dev/null)" != "$sdk_want" ]; then
    command -v npm >/dev/null || { echo "[setup] npm (Node.js) is needed for the tracker SDK tests" >&2; exit 1; }
    say "installing the tracker SDKs for the browser tests (npm ci)"
    mkdir -p .cache/sdk
    cp tests/sdk/package.json tests/sdk/package-lock.json .cache/sdk/
    (cd .cache/sdk && npm ci --no-audit --no-fund --silent >/dev/null)
    echo "$sdk_want" > .cache/sdk/.installed
  fi
fi

say "Kafka jars: $(.venv/bin/python -c 'from seaport.devtools.broker import ensure_jars; print(ensure_jars().name)')"
