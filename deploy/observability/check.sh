#!/usr/bin/env bash
# The dashboard and the alert rules against a real Prometheus (CI runs it from .ci/run):
#  1. promtool check rules alerts.yaml; promtool test rules alerts.test.yaml (each alert
#     firing and resolving);
#  2. dashboard.json against dashboard.schema.json (jsonschema, in a venv under target/) plus
#     layout/variable consistency;
#  3. two gateways (target/debug/gateway-tokio with librdkafka statistics on, and
#     target/debug/gateway-uring for the io_uring series; each with its embedded Kafka, on
#     loopback) scraped every second by a Prometheus (Debian's package) with a temporary
#     config and storage, which also loads alerts.yaml; every panel query, variable query
#     and alert expression evaluated through /api/v1/query — once idle, before any request,
#     and once after a short bench-client load: an empty result fails either time (every
#     series is there from the first scrape); every metric name used must be in a
#     gateway's /metrics; every rule's health must be ok.
# Bounded (each wait has a deadline); stops what it started by PID and removes its temp dir.
# Usage: deploy/observability/check.sh   Env: BIN_DIR (default target/debug),
# OBS_VENV (default target/obs-venv).
set -euo pipefail
cd "$(dirname "$0")/../.."
OBS=deploy/observability
BIN_DIR="${BIN_DIR:-target/debug}"
VENV="${OBS_VENV:-target/obs-venv}"
start=$(date +%s)

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  # --no-install-recommends: no node exporter; the package's service is not started here.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus
fi
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import jsonschema, yaml' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "jsonschema>=4.18" "pyyaml>=6"
fi
PY="$VENV/bin/python"
# get URL: the body of a 2xx answer on stdout, else a failure (no curl needed).
get() { "$PY" -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"; }

echo "== promtool"
promtool check rules "$OBS/alerts.yaml"
(cd "$OBS" && promtool test rules alerts.test.yaml)

echo "== dashboard schema"
"$PY" "$OBS/check.py" schema "$OBS/dashboard.json" "$OBS/dashboard.schema.json"

echo "== live Prometheus scraping a gateway"
TMP=$(mktemp -d /tmp/obs-check.XXXXXX)
GW_PID=""; URING_PID=""; PROM_PID=""
cleanup() {
  for pid in $PROM_PID $GW_PID $URING_PID; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $PROM_PID $GW_PID $URING_PID; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
# wait_for DEADLINE_S DESCRIPTION COMMAND...: poll COMMAND every 0.2 s.
wait_for() {
  local deadline=$(( $(date +%s) + $1 )) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "observability: FAIL: timed out waiting for $what" >&2
      tail -20 "$TMP"/*.log >&2 || true
      exit 1
    fi
    sleep 0.2
  done
}

"$BIN_DIR/gateway-tokio" --listen 127.0.0.1:0 --threads 2 -X statistics.interval.ms=1000 \
  > "$TMP/gateway.log" 2>&1 &
GW_PID=$!
"$BIN_DIR/gateway-uring" --listen 127.0.0.1:0 --threads 2 > "$TMP/gateway-uring.log" 2>&1 &
URING_PID=$!
listen_addr() { sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' "$1" | head -1; }
wait_for 30 "gateway-tokio's listening line" grep -q "listening on " "$TMP/gateway.log"
wait_for 30 "gateway-uring's listening line" grep -q "listening on " "$TMP/gateway-uring.log"
GW=$(listen_addr "$TMP/gateway.log")
URING=$(listen_addr "$TMP/gateway-uring.log")
wait_for 30 "gateway-tokio's /readyz" get "http://$GW/readyz"
wait_for 30 "gateway-uring's /readyz" get "http://$URING/readyz"

PROM_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PROM="http://127.0.0.1:$PROM_PORT"
cp "$OBS/alerts.yaml" "$TMP/alerts.yaml"
cat > "$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [alerts.yaml]
scrape_configs:
  - job_name: gateway
    static_configs:
      - targets: ["$GW", "$URING"]
EOF
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --storage.tsdb.retention.time=1h \
  > "$TMP/prometheus.log" 2>&1 &
PROM_PID=$!
wait_for 30 "Prometheus ready" get "$PROM/-/ready"
# Both targets up, and gateway-tokio's first librdkafka statistics report scraped.
up_twice() {
  get "$PROM/api/v1/query?query=count(up%7Bjob%3D%22gateway%22%7D%3D%3D1)%3D%3D2" | grep -q '"value"' &&
    get "$PROM/api/v1/query?query=gateway_kafka_tx_messages_total" | grep -q '"value"'
}
wait_for 30 "both gateways' first scrapes" up_twice
sleep 3 # rate() needs two samples

"$PY" "$OBS/check.py" live idle "$PROM" "http://$GW/metrics,http://$URING/metrics" "$OBS/dashboard.json" "$OBS/alerts.yaml"

for target in "$GW" "$URING"; do
  timeout 60 "$BIN_DIR/bench-client" run "http://$target/topics/obs-check" -c 8 -d 3s --quiet > "$TMP/bench.log" 2>&1 \
    || { echo "observability: FAIL: bench-client run against $target failed" >&2; tail -20 "$TMP/bench.log" >&2; exit 1; }
done
sleep 3 # the last samples scraped, the rules evaluated

"$PY" "$OBS/check.py" live loaded "$PROM" "http://$GW/metrics,http://$URING/metrics" "$OBS/dashboard.json" "$OBS/alerts.yaml"
rules_ok() {
  get "$PROM/api/v1/rules" | "$PY" -c '
import json, sys
rules = [r for g in json.load(sys.stdin)["data"]["groups"] for r in g["rules"]]
bad = [r["name"] for r in rules if r.get("health") != "ok"]
sys.exit(1 if bad or len(rules) == 0 else 0)'
}
wait_for 10 "every loaded rule healthy" rules_ok
echo "observability: Prometheus loaded alerts.yaml, every rule healthy; all checks passed ($(( $(date +%s) - start )) s)"
