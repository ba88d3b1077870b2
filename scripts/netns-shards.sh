#!/usr/bin/env bash
# Multi-host sharded run, simulated with network namespaces (issue 15).
#
# Creates, with names unique to this run (suffix = PID):
#   <p>-sw   a namespace holding only a bridge (the "switch");
#   <p>-gw   kafka-mock + gateway-tokio, 192.0.2.1/24 (TEST-NET-1, RFC 5737);
#   <p>-c0…  one namespace per client shard, 192.0.2.11, .12, .13/24;
# each joined to the bridge by a veth pair. Nothing is added to the caller's namespace:
# every interface, address and route lives in the namespaces created here, and all of
# them (with the processes in them) are removed on exit, failure or interrupt (trap).
#
# Then it runs SHARDS `bench-client run --start-at T --shard I/N` (one per client
# namespace, common start), merges them with `bench-client merge`, and checks: merged
# totals.ok = sum of the shards' ok, merged latency.count = sum of counts, merged p50
# between the shards' p50s, every shard did work, N shards listed in the manifest, and
# `bench-client verify` finds every acknowledged id of every shard in kafka-mock exactly once.
#
# Needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN) and iproute2; where namespaces cannot be made
# it prints SKIP and exits 0. Load: a few seconds, inside the namespaces only.
# Env: BIN_DIR (default target/debug), SHARDS (default 3), DURATION (default 2s).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN_DIR="${BIN_DIR:-target/debug}"
SHARDS="${SHARDS:-3}"
DURATION="${DURATION:-2s}"
WARMUP_MS=500
P="bcs$$"
SW="$P-sw"
GW="$P-gw"
NSS=()
PIDS=()
WORK="$(mktemp -d "${TMPDIR:-/tmp}/netns-shards.XXXXXX")"

skip() { echo "netns-shards: SKIP: $*"; rm -rf "$WORK"; exit 0; }
fail() { echo "netns-shards: FAIL: $*" >&2; exit 1; }

cleanup() {
  local rc=$?
  set +e
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  done
  for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null; done
  if [ "$rc" -ne 0 ]; then
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }; done >&2
  fi
  rm -rf "$WORK"
  local left; left="$(ip netns list 2>/dev/null | grep -c "^$P-" || true)"
  [ "$left" -eq 0 ] || echo "netns-shards: WARNING: $left namespace(s) of $P left behind" >&2
  exit "$rc"
}

[ "$(id -u)" -eq 0 ] || skip "needs root to create network namespaces"
command -v ip >/dev/null || skip "iproute2 (ip) not installed"
command -v python3 >/dev/null || skip "python3 (for the checks) not installed"
for b in bench-client gateway-tokio kafka-mock; do
  [ -x "$BIN_DIR/$b" ] || fail "$BIN_DIR/$b not found: cargo build --workspace --bins first"
done
trap cleanup EXIT INT TERM

ip netns add "$SW" 2>/dev/null || skip "cannot create a network namespace here (no CAP_SYS_ADMIN?)"
NSS+=("$SW")
ip -n "$SW" link add br0 type bridge
ip -n "$SW" link set br0 up
ip -n "$SW" link set lo up

# join NS ADDR: a namespace with eth0 = ADDR/24, wired to the bridge.
join() {
  local ns="$1" addr="$2" port="p${#NSS[@]}"
  ip netns add "$ns"
  NSS+=("$ns")
  ip link add eth0 netns "$ns" type veth peer name "$port" netns "$SW"
  ip -n "$SW" link set "$port" master br0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
}

GW_ADDR=192.0.2.1
join "$GW" "$GW_ADDR"
for k in $(seq 0 $((SHARDS - 1))); do join "$P-c$k" "192.0.2.$((11 + k))"; done

# kafka-mock and the gateway, both in the gateway namespace (broker on its loopback).
ip netns exec "$GW" "$BIN_DIR/kafka-mock" --topic bench --bootstrap-file "$WORK/bootstrap" \
  >"$WORK/kafka-mock.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/bootstrap" ] && break; sleep 0.1; done
[ -s "$WORK/bootstrap" ] || fail "kafka-mock wrote no bootstrap list"
ip netns exec "$GW" "$BIN_DIR/gateway-tokio" --listen "$GW_ADDR:8080" --threads 1 \
  --brokers "$(head -n1 "$WORK/bootstrap")" >"$WORK/gateway.log" 2>&1 &
PIDS+=($!)

# Ready when /readyz answers 200 from a client namespace (through the bridge).
ready=""
for _ in $(seq 150); do
  if ip netns exec "$P-c0" bash -c "exec 3<>/dev/tcp/$GW_ADDR/8080 && printf 'GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3 && head -n1 <&3" 2>/dev/null | grep -q ' 200'; then
    ready=1; break
  fi
  sleep 0.2
done
[ -n "$ready" ] || fail "gateway at $GW_ADDR:8080 not ready (GET /readyz) from $P-c0"

now_ms() { python3 -c 'import time; print(int(time.time()*1000))'; }
START_AT=$(( $(now_ms) + WARMUP_MS + 1500 ))
echo "netns-shards: $SHARDS shards in $P-c0..c$((SHARDS - 1)) -> http://$GW_ADDR:8080, --start-at $START_AT"
CLIENTS=()
for k in $(seq 0 $((SHARDS - 1))); do
  ip netns exec "$P-c$k" "$BIN_DIR/bench-client" run --target "http://$GW_ADDR:8080" \
    --start-at "$START_AT" --shard "$k/$SHARDS" --duration "$DURATION" --warmup "${WARMUP_MS}ms" \
    --connections 4 --threads 1 --ack kafka --json "$WORK/shard-$k.json" --quiet \
    --acked-file "$WORK/shard-$k.acked" \
    >"$WORK/client-$k.log" 2>&1 &
  CLIENTS+=($!)
  PIDS+=($!)
done
for k in "${!CLIENTS[@]}"; do
  wait "${CLIENTS[$k]}" || fail "shard $k/$SHARDS failed (see $WORK/client-$k.log)"
done

"$BIN_DIR/bench-client" merge "$WORK"/shard-*.json --json "$WORK/merged.json"

# Every id the shards saw acknowledged is in Kafka once: the shards' ids never collided.
cat "$WORK"/shard-*.acked > "$WORK/all.acked"
ip netns exec "$GW" "$BIN_DIR/bench-client" verify --brokers "$(head -n1 "$WORK/bootstrap")" \
  --topic bench --acked-file "$WORK/all.acked" --timeout 30s --json "$WORK/verify.json" \
  || fail "verify: acknowledged records missing from Kafka"

python3 - "$WORK" "$SHARDS" <<'PY'
import json, sys, glob, os
work, n = sys.argv[1], int(sys.argv[2])
shards = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(work, "shard-*.json")))]
m = json.load(open(os.path.join(work, "merged.json")))
assert len(shards) == n, f"{len(shards)} shard files, expected {n}"
for s in shards:
    assert s["totals"]["ok"] > 0, f"shard {s['config'].get('shard')} made no request"
    assert s["manifest"]["hostname"] is not None
ok = sum(s["totals"]["ok"] for s in shards)
cnt = sum(s["latency"]["count"] for s in shards)
p50s = [s["latency"]["p50_us"] for s in shards]
assert m["totals"]["ok"] == ok, f"merged ok {m['totals']['ok']} != sum {ok}"
assert m["latency"]["count"] == cnt, f"merged count {m['latency']['count']} != sum {cnt}"
assert min(p50s) <= m["latency"]["p50_us"] <= max(p50s), f"merged p50 {m['latency']['p50_us']} outside {p50s}"
assert len(m["manifest"]["shards"]) == n
assert sorted(e["shard"] for e in m["manifest"]["shards"]) == [f"{k}/{n}" for k in range(n)]
v = json.load(open(os.path.join(work, "verify.json")))
lines = sum(1 for f in glob.glob(os.path.join(work, "shard-*.acked")) for l in open(f) if l.strip())
assert v["acked"] == lines > 0, f"verify saw {v['acked']} distinct ids of {lines} acked lines (collision?)"
assert v["missing"] == 0 and v["duplicates"] == 0, v
starts = [s["measured_start_unix_ms"] for s in shards]
assert max(starts) - min(starts) < 100, f"shards started {max(starts)-min(starts):.1f} ms apart"
print(f"netns-shards: PASS: {n} shards, ok {ok} = merged, latency count {cnt} = merged, "
      f"merged p50 {m['latency']['p50_us']:.0f} us within shards' {min(p50s):.0f}..{max(p50s):.0f} us, "
      f"starts within {max(starts)-min(starts):.1f} ms; verify: {v['found']} of {lines} acked ids in Kafka, 0 missing, 0 duplicates")
PY
