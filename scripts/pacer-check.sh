#!/usr/bin/env bash
# The open-loop pacer's acceptance check (issue 12): one client core sends 100k req/s over
# 256 connections to a null-sink gateway on the other core; each run is judged against
# "sent >= 99% of the asked rate and corrected p50 < 5 ms".
#
#   scripts/pacer-check.sh [RUNS] [GATEWAY [GATEWAY ARGS...]]
#   e.g. scripts/pacer-check.sh 5 gateway-uring
#
# Pinning: gateway `--threads 1` on CPU 1, bench-client `--threads 1` on CPU 0 (taskset).
# Needs release binaries (cargo build --release --workspace --bins). Each run is 5 s + 1 s
# warmup, on 127.0.0.1 only; every process started here is ended by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
shift || true
gw=${1:-gateway-uring}
shift || true
bin=target/release
port=${PACER_PORT:-18480}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
pass=0
for i in $(seq 1 "$runs"); do
  taskset -c 1 "$bin/$gw" --listen "127.0.0.1:$port" --sink null --threads 1 "$@" >"$out/gw.log" 2>&1 &
  gpid=$!
  for _ in $(seq 1 50); do
    grep -q "listening on" "$out/gw.log" && break
    sleep 0.1
  done
  taskset -c 0 "$bin/bench-client" run --target "http://127.0.0.1:$port" --rate 100000 \
    --connections 256 --threads 1 --duration 5s --warmup 1s --target-pid "$gpid" ${PACER_ACK:+--ack "$PACER_ACK"} \
    --json "$out/r$i.json" >/dev/null 2>&1 || true
  kill -TERM "$gpid" 2>/dev/null || true
  wait "$gpid" 2>/dev/null || true
  python3 - "$out/r$i.json" "$i" <<'PY' && pass=$((pass + 1)) || true
import json, sys
r = json.load(open(sys.argv[1]))
t = r["totals"]
sent_frac = t["sent_per_sec"] / r["config"]["rate"]
p50 = r["latency"]["p50_us"] / 1000
ok = sent_frac >= 0.99 and p50 < 5
reasons = "; ".join(r["binding"]["reasons"][:2])
print(f"run {sys.argv[2]}: sent {sent_frac:.1%} of 100k/s, {t['ok_per_sec']:.0f} ok/s, "
      f"p50 {p50:.2f} ms, p99 {r['latency']['p99_us'] / 1000:.2f} ms, binding {r['binding']['bound']} "
      f"({reasons}) -> {'PASS' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
PY
done
echo "$pass of $runs runs met sent >= 99% and p50 < 5 ms ($gw $*)"
