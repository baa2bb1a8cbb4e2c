#!/usr/bin/env bash
# The main job, end to end, on a fresh machine:
#   set-up -> a local Kafka broker -> a day of simulated traffic through the HTTP collector into
#   Kafka -> the Beam ingestion pipeline -> the security report and the dashboard -> an audit of
#   the warehouse for personal identifiers -> erasure requests' status -> where each result is
#   (with an erasure receipt and the audit trail's check).
# A second run does not redo what is done: the day's traffic is sent once, ingest reads only
# what is new.
# Settings (environment): SEAPORT_PORT (broker, default 9092), SEAPORT_COLLECTOR_PORT (8080),
# SEAPORT_USERS (300), SEAPORT_SEED (7), SEAPORT_WAREHOUSE (warehouse), SEAPORT_PSEUDONYM_KEY_FILE
# (else a throw-away development key in .seaport/).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh

port=${SEAPORT_PORT:-9092}
collector_port=${SEAPORT_COLLECTOR_PORT:-8080}
users=${SEAPORT_USERS:-300}
seed=${SEAPORT_SEED:-7}
warehouse=${SEAPORT_WAREHOUSE:-warehouse}
export SEAPORT_BOOTSTRAP=127.0.0.1:$port
seaport=.venv/bin/seaport
key_flag=()
[ -n "${SEAPORT_PSEUDONYM_KEY_FILE:-}" ] || key_flag=(--dev)

say() { printf '\n== %s\n' "$*"; }

say "Kafka broker on $SEAPORT_BOOTSTRAP"
$seaport broker start --port "$port"
$seaport topics create

day=$(TZ=Asia/Shanghai date -d yesterday +%F)
traffic=.seaport/traffic/$day.jsonl
sent=.seaport/traffic/$day.sent
if [ ! -f "$sent" ]; then
  say "simulating $day: $users users, seed $seed"
  mkdir -p .seaport/traffic
  $seaport simulate --users "$users" --days 1 --seed "$seed" --start "$day" --out "$traffic"
  say "sending the traffic through the collector (http://127.0.0.1:$collector_port)"
  # The replayer plays a reverse proxy: each simulated client's IP travels in X-Forwarded-For.
  $seaport collect --port "$collector_port" --trusted-proxy 127.0.0.1 > .seaport/collector.log 2>&1 &
  collector=$!
  trap 'kill $collector 2>/dev/null || true' EXIT
  $seaport replay --url "http://127.0.0.1:$collector_port" \
    --refused-out ".seaport/traffic/$day.refused" .seaport/traffic/"$day".{consent.events,access_logs.raw}.jsonl "$traffic"
  kill "$collector"; wait "$collector" 2>/dev/null || true
  trap - EXIT
  say "what the collector refused, straight into Kafka (the pipeline's dead letters)"
  for f in .seaport/traffic/"$day".refused.*.jsonl; do
    [ -f "$f" ] || continue
    topic=${f%.jsonl}; topic=${topic##*/"$day".}; topic=${topic#refused.}
    $seaport produce --topic "$topic" "$f"
  done
  touch "$sent"
else
  say "traffic of $day was sent already"
fi

say "ingest (Beam) into $warehouse/"
$seaport ingest --until-caught-up "${key_flag[@]}" --warehouse "$warehouse"

erased=.seaport/traffic/$day.erased
if [ ! -f "$erased" ] && [ -f .seaport/traffic/"$day".erasure.requests.jsonl ]; then
  say "erasure requests arrive after the day's events (R8); the next ingest applies them"
  $seaport produce --topic erasure.requests .seaport/traffic/"$day".erasure.requests.jsonl
  $seaport ingest --until-caught-up "${key_flag[@]}" --warehouse "$warehouse"
  touch "$erased"
fi

attacks=.seaport/traffic/attacks-$day.jsonl
if [ ! -f "$attacks.sent" ]; then
  say "labelled attacks for the security report (R11): 8 quiet days of 700 users, then $day under attack"
  $seaport simulate --attacks --users 700 --days 9 --seed "$seed" --start "$(TZ=Asia/Shanghai date -d "$day -8 days" +%F)" --out "$attacks"
  $seaport produce --topic beacons.raw "$attacks"
  $seaport produce --topic access_logs.raw "${attacks%.jsonl}.access_logs.raw.jsonl"
  $seaport ingest --until-caught-up "${key_flag[@]}" --warehouse "$warehouse"
  touch "$attacks.sent"
fi

say "security report and dashboard"
$seaport report security --date "$day" --warehouse "$warehouse"
$seaport dashboard --warehouse "$warehouse"

say "how the detectors did on the labelled attacks of this run (the labels stay in .seaport/traffic/)"
$seaport eval security --warehouse "$warehouse" --labels "${attacks%.jsonl}.labels.json" "${key_flag[@]}" --days 9

say "audit: no personal identifier anywhere in $warehouse/"
$seaport audit --warehouse "$warehouse"

say "people's rights: erasure requests with their receipts and due dates (R8)"
$seaport erase --status --warehouse "$warehouse" || echo "(exit 1: an erasure request is overdue)"

say "results"
$seaport summary --warehouse "$warehouse"
echo "broker: $SEAPORT_BOOTSTRAP (stop it with: $seaport broker stop --port $port)"
